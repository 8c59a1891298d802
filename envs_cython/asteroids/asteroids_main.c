/* Standalone Asteroids driver: runs the C core without Python.
 *
 * Check mode (default): 64 envs, 1M agent-steps (half the envs random, half a scripted gunner that turns toward
 * the nearest rock and fires, so waves get cleared), every invariant checked after every step; exit 0 when all
 * hold. Meant to run under the sanitizers:
 *   gcc -std=c99 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -ffp-contract=off \
 *       envs_cython/asteroids/asteroids_main.c -lm -o asteroids_main && ./asteroids_main
 *
 * Bench mode: `./asteroids_main --bench [--reps N]` prints the median agent-steps/s of the core's c_step_all over
 * 4096 envs with pre-generated random actions (over N timed repetitions, 15 by default; build with -O3):
 *   gcc -std=c99 -O3 -ffp-contract=off envs_cython/asteroids/asteroids_main.c -lm -o asteroids_bench \
 *       && ./asteroids_bench --bench
 */
#define THRUST_DRIVER "asteroids_main"
#include "../thrust_driver.h"

#include "asteroids.h"

#define CHECK_ENVS 64
#define CHECK_STEPS (1000000 / CHECK_ENVS) /* step_all calls: 1M agent-steps */
#define BENCH_ENVS 4096
#define BENCH_ACTION_SETS 64
#define BENCH_STEPS 100 /* step_all calls per timed repetition */

/* The buffers Python would own, allocated in one place so main can free them in one place. */
typedef struct Buffers {
    AsteroidsState* state;
    float* observations;
    int32_t* actions;
    float* rewards;
    unsigned char* terminals;
    unsigned char* truncations;
    float* final_observations;
} Buffers;

static int buffers_alloc(Buffers* b, int n) {
    b->state = calloc((size_t)n, sizeof(AsteroidsState));
    b->observations = calloc((size_t)n * ASTEROIDS_OBS_SIZE, sizeof(float));
    b->actions = calloc((size_t)n, sizeof(int32_t));
    b->rewards = calloc((size_t)n, sizeof(float));
    b->terminals = calloc((size_t)n, 1);
    b->truncations = calloc((size_t)n, 1);
    b->final_observations = calloc((size_t)n * ASTEROIDS_OBS_SIZE, sizeof(float));
    return b->state && b->observations && b->actions && b->rewards && b->terminals && b->truncations
        && b->final_observations;
}

static void buffers_free(Buffers* b) {
    free(b->state);
    free(b->observations);
    free(b->actions);
    free(b->rewards);
    free(b->terminals);
    free(b->truncations);
    free(b->final_observations);
}

/* What the binding does: one struct per env, borrowing row i of every buffer; then c_seed and c_reset. */
static Asteroids* envs_make(Buffers* b, int n, uint64_t seed, const int32_t* max_steps, const int32_t* num_lives) {
    Asteroids* envs = calloc((size_t)n, sizeof(Asteroids));
    if (envs == NULL) {
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        Asteroids* env = &envs[i];
        env->state = &b->state[i];
        env->observations = &b->observations[(size_t)i * ASTEROIDS_OBS_SIZE];
        env->actions = &b->actions[i];
        env->rewards = &b->rewards[i];
        env->terminals = &b->terminals[i];
        env->truncations = &b->truncations[i];
        env->final_observations = &b->final_observations[(size_t)i * ASTEROIDS_OBS_SIZE];
        env->max_steps = max_steps[i];
        env->num_lives = num_lives[i];
        c_seed(env, seed + (uint64_t)i);
        c_reset(env);
    }
    return envs;
}

/* Every observation entry finite and in [-1, 1]. */
static int obs_in_bounds(const float* obs) {
    for (int k = 0; k < ASTEROIDS_OBS_SIZE; k++) {
        if (!(obs[k] >= -1.0f && obs[k] <= 1.0f)) {
            return 0;
        }
    }
    return 1;
}

/* A scripted gunner: turn toward the nearest rock (observation 9, its offset to the left) and fire; thrust now
 * and then. */
static int32_t gunner_action(const float* obs, uint64_t bits) {
    const float left = obs[ASTEROIDS_OBS_SHIP + 1];
    if ((bits >> 60) == 0) {
        return 9; /* thrust + fire */
    }
    return left > 0.01f ? 7 : (left < -0.01f ? 8 : 4);
}

/* The field of one env is consistent: counts, sizes, timers and positions in range. */
static void check_state(const Asteroids* env, int i, int t) {
    const AsteroidsState* s = env->state;
    int rocks = 0, large = 0, bullets = 0;
    for (int j = 0; j < ASTEROIDS_MAX_ROCKS; j++) {
        const AsteroidsRock* r = &s->rocks[j];
        EXPECT(r->size >= ASTEROIDS_NONE && r->size <= ASTEROIDS_LARGE, "env %d step %d rock %d size %d", i, t, j,
               r->size);
        if (r->size != ASTEROIDS_NONE) {
            rocks++;
            large += r->size == ASTEROIDS_LARGE;
            EXPECT(r->x >= 0.0f && r->x < ASTEROIDS_WIDTH && r->y >= 0.0f && r->y < ASTEROIDS_HEIGHT,
                   "env %d step %d rock %d at (%g, %g)", i, t, j, r->x, r->y);
            EXPECT(r->vx * r->vx + r->vy * r->vy <= 4.0f * 4.0f * 1.001f, "env %d step %d rock %d too fast", i, t, j);
            EXPECT(r->shape >= 0 && r->shape <= 3, "env %d step %d rock %d shape %d", i, t, j, r->shape);
        }
    }
    for (int b = 0; b < ASTEROIDS_MAX_BULLETS; b++) {
        const AsteroidsBullet* u = &s->bullets[b];
        EXPECT(u->life >= 0 && u->life <= ASTEROIDS_BULLET_LIFE, "env %d step %d bullet %d life %d", i, t, b, u->life);
        if (u->life > 0) {
            bullets++;
            EXPECT(u->x >= 0.0f && u->x < ASTEROIDS_WIDTH && u->y >= 0.0f && u->y < ASTEROIDS_HEIGHT,
                   "env %d step %d bullet %d at (%g, %g)", i, t, b, u->x, u->y);
        }
    }
    EXPECT(rocks > 0, "env %d step %d: an empty field (the next wave did not start)", i, t);
    EXPECT(large <= ASTEROIDS_MAX_LARGE, "env %d step %d: %d large rocks", i, t, large);
    EXPECT(bullets <= ASTEROIDS_MAX_BULLETS, "env %d step %d: %d bullets", i, t, bullets);
    EXPECT(s->ship_x >= 0.0f && s->ship_x < ASTEROIDS_WIDTH && s->ship_y >= 0.0f && s->ship_y < ASTEROIDS_HEIGHT,
           "env %d step %d ship at (%g, %g)", i, t, s->ship_x, s->ship_y);
    EXPECT(s->ship_vx * s->ship_vx + s->ship_vy * s->ship_vy <= ASTEROIDS_MAX_SPEED * ASTEROIDS_MAX_SPEED * 1.001f,
           "env %d step %d ship too fast", i, t);
    EXPECT(s->heading >= 0 && s->heading < ASTEROIDS_HEADINGS, "env %d step %d heading %d", i, t, s->heading);
    EXPECT(s->cooldown >= 0 && s->cooldown <= ASTEROIDS_FIRE_COOLDOWN, "env %d step %d cooldown %d", i, t,
           s->cooldown);
    EXPECT(s->invulnerable >= 0 && s->invulnerable <= ASTEROIDS_INVULNERABLE_STEPS, "env %d step %d invulnerable %d",
           i, t, s->invulnerable);
    EXPECT(s->lives >= 1 && s->lives <= env->num_lives, "env %d step %d lives %d", i, t, s->lives);
    EXPECT(s->score >= 0 && s->score % 10 == 0, "env %d step %d score %d", i, t, s->score);
    EXPECT(s->wave >= 1, "env %d step %d wave %d", i, t, s->wave);
}

static int run_check(void) {
    const int n = CHECK_ENVS;
    int32_t max_steps[CHECK_ENVS], num_lives[CHECK_ENVS];
    for (int i = 0; i < n; i++) {
        /* a quarter with short time limits, so truncations happen often; lives 1 to 4 */
        max_steps[i] = i % 4 == 0 ? 50 + i : 100000;
        num_lives[i] = 1 + i % 4;
    }
    Buffers b;
    Asteroids* envs = NULL;
    if (buffers_alloc(&b, n)) {
        envs = envs_make(&b, n, 42, max_steps, num_lives);
    }
    if (envs == NULL) {
        fprintf(stderr, THRUST_DRIVER ": out of memory\n");
        buffers_free(&b);
        return 1;
    }
    uint64_t action_rng = 12345;
    int32_t length[CHECK_ENVS] = {0}, score[CHECK_ENVS] = {0}, lives[CHECK_ENVS], wave[CHECK_ENVS];
    double ret[CHECK_ENVS] = {0.0};
    double episodes = 0.0, episode_steps = 0.0, episode_return = 0.0, episode_score = 0.0;
    long long terminals = 0, truncations = 0, crashes = 0, waves = 0, points_seen[4] = {0};
    int max_wave = 1;

    for (int t = 0; t < CHECK_STEPS; t++) {
        for (int i = 0; i < n; i++) {
            uint64_t bits = thrust_next_u64(&action_rng);
            const float* obs = &b.observations[(size_t)i * ASTEROIDS_OBS_SIZE];
            /* odd envs: the gunner; even ones: uniform actions, and now and then an arbitrary int32 (a noop) */
            b.actions[i] = i % 2 ? gunner_action(obs, bits)
                : (bits >> 59) == 0 ? (int32_t)(uint32_t)bits : (int32_t)((bits >> 32) % ASTEROIDS_NUM_ACTIONS);
            lives[i] = envs[i].state->lives;
            wave[i] = envs[i].state->wave;
        }
        double log_score_before[CHECK_ENVS];
        for (int i = 0; i < n; i++) {
            log_score_before[i] = envs[i].log.score;
        }
        c_step_all(envs, n);
        for (int i = 0; i < n; i++) {
            const AsteroidsState* s = envs[i].state;
            const float* obs = &b.observations[(size_t)i * ASTEROIDS_OBS_SIZE];
            const float* final_obs = &b.final_observations[(size_t)i * ASTEROIDS_OBS_SIZE];
            int term = b.terminals[i], trunc = b.truncations[i];
            length[i]++;
            check_state(&envs[i], i, t);
            EXPECT(obs_in_bounds(obs), "env %d step %d observation outside [-1, 1]", i, t);
            EXPECT(term <= 1 && trunc <= 1, "env %d step %d flags %d %d", i, t, term, trunc);
            EXPECT(trunc == (length[i] >= max_steps[i]), "env %d step %d truncation at length %d", i, t, length[i]);
            /* this step's points: from the score, or, where the episode ended, from the score the log received */
            int32_t final_score = term || trunc ? (int32_t)(envs[i].log.score - log_score_before[i]) : s->score;
            int32_t points = final_score - score[i];
            EXPECT(points >= 0 && points % 10 == 0, "env %d step %d points %d", i, t, points);
            EXPECT(b.rewards[i] == (float)points / 100.0f, "env %d step %d reward %g for %d points", i, t,
                   b.rewards[i], points);
            for (int size = ASTEROIDS_SMALL; size <= ASTEROIDS_LARGE; size++) {
                points_seen[size] += points == asteroids_points[size];
            }
            ret[i] += b.rewards[i];
            if (term || trunc) {
                EXPECT(obs_in_bounds(final_obs), "env %d step %d final observation outside [-1, 1]", i, t);
                EXPECT(!term || final_obs[6] == 0.0f, "env %d step %d terminated with lives left", i, t);
                EXPECT(term || final_obs[6] > 0.0f, "env %d step %d no lives left but not terminated", i, t);
                EXPECT(s->tick == 0 && s->score == 0 && s->wave == 1 && s->lives == num_lives[i],
                       "env %d step %d not reset", i, t);
                episodes += 1.0;
                episode_steps += length[i];
                episode_return += ret[i];
                episode_score += final_score;
                terminals += term;
                truncations += trunc;
                crashes += term;
                length[i] = 0;
                score[i] = 0;
                ret[i] = 0.0;
            } else {
                EXPECT(s->tick == length[i], "env %d step %d tick %d != %d", i, t, s->tick, length[i]);
                EXPECT(s->lives == lives[i] || (s->lives == lives[i] - 1 && s->invulnerable == 60),
                       "env %d step %d lives %d -> %d", i, t, lives[i], s->lives);
                EXPECT(s->wave == wave[i] || s->wave == wave[i] + 1, "env %d step %d wave %d -> %d", i, t, wave[i],
                       s->wave);
                EXPECT(obs[6] == (float)s->lives / (float)num_lives[i], "env %d step %d lives observation", i, t);
                crashes += s->lives < lives[i];
                waves += s->wave > wave[i];
                max_wave = s->wave > max_wave ? s->wave : max_wave;
                score[i] = s->score;
            }
        }
    }

    double log_n = 0.0, log_return = 0.0, log_length = 0.0, log_score = 0.0, running = 0.0;
    for (int i = 0; i < n; i++) {
        log_n += envs[i].log.n;
        log_return += envs[i].log.episode_return;
        log_length += envs[i].log.episode_length;
        log_score += envs[i].log.score;
        running += envs[i].state->tick;
    }
    EXPECT(log_n == episodes, "log counts %.0f episodes, main counted %.0f", log_n, episodes);
    EXPECT(log_length == episode_steps, "log length sum %.0f, main counted %.0f", log_length, episode_steps);
    EXPECT(log_score == episode_score, "log score sum %.0f, main counted %.0f", log_score, episode_score);
    EXPECT(log_return > episode_return - 1e-6 * episodes && log_return < episode_return + 1e-6 * episodes,
           "log return sum %f, main counted %f", log_return, episode_return);
    EXPECT(log_return > 0.01 * log_score - 1e-4 * episodes && log_return < 0.01 * log_score + 1e-4 * episodes,
           "return sum %f is not score sum / 100 = %f", log_return, 0.01 * log_score);
    EXPECT(log_length + running == (double)n * CHECK_STEPS, "steps not accounted for");
    EXPECT(terminals > 0 && truncations > 0 && crashes > terminals && waves > 0 && max_wave >= 3,
           "seen: %lld terminal, %lld truncation, %lld crashes, %lld waves cleared, wave %d reached", terminals,
           truncations, crashes, waves, max_wave);
    EXPECT(points_seen[1] > 0 && points_seen[2] > 0 && points_seen[3] > 0,
           "steps scoring 100 / 50 / 20 points: %lld / %lld / %lld", points_seen[1], points_seen[2], points_seen[3]);

    printf("asteroids_main: %d agent-steps, %d envs, %.0f episodes (%lld terminated, %lld truncated), %lld crashes, "
           "%lld waves cleared (up to wave %d), mean score %.1f: %s\n",
           n * CHECK_STEPS, n, episodes, terminals, truncations, crashes, waves, max_wave, log_score / log_n,
           failures ? "FAILED" : "ok");
    free(envs);
    buffers_free(&b);
    return failures ? 1 : 0;
}

/* ---- bench ---------------------------------------------------------------------------------------------- */

/* The envs of the bench and the action sets they share. */
typedef struct BenchContext {
    int n;
    Asteroids* envs;
    int32_t* actions;
    const int32_t* action_sets;
} BenchContext;

/* Step all envs with action set t. */
static void bench_step(void* context, int k, long t) {
    (void)k;
    BenchContext* c = context;
    /* As the Python class does: copy the actions into the env's buffer, one call steps all. */
    memcpy(c->actions, &c->action_sets[(size_t)(t % BENCH_ACTION_SETS) * c->n], sizeof(int32_t) * c->n);
    c_step_all(c->envs, c->n);
}

static int run_bench(void) {
    const int n = BENCH_ENVS;
    Buffers b;
    int32_t* action_sets = malloc(sizeof(int32_t) * BENCH_ACTION_SETS * n);
    int32_t* max_steps = malloc(sizeof(int32_t) * n);
    int32_t* num_lives = malloc(sizeof(int32_t) * n);
    Asteroids* envs = NULL;
    int ok = buffers_alloc(&b, n) && action_sets != NULL && max_steps != NULL && num_lives != NULL;
    if (ok) {
        uint64_t action_rng = 7;
        for (int k = 0; k < BENCH_ACTION_SETS * n; k++) {
            action_sets[k] = (int32_t)((thrust_next_u64(&action_rng) >> 32) % ASTEROIDS_NUM_ACTIONS);
        }
        for (int i = 0; i < n; i++) {
            max_steps[i] = 4500;
            num_lives[i] = 3;
        }
        envs = envs_make(&b, n, 0, max_steps, num_lives);
        ok = envs != NULL;
    }
    if (ok) {
        BenchContext ctx = {n, envs, b.actions, action_sets};
        double median;
        thrust_bench_interleaved(1, BENCH_STEPS, n, bench_step, &ctx, &median);
        printf("%-26s %6.2fM steps/s (median of %d, %d envs)\n", "core c_step_all", median / 1e6, thrust_bench_reps,
               n);
    } else {
        fprintf(stderr, THRUST_DRIVER ": out of memory\n");
    }
    free(envs);
    buffers_free(&b);
    free(action_sets);
    free(max_steps);
    free(num_lives);
    return ok ? 0 : 1;
}

int main(int argc, char** argv) {
    return thrust_driver_main(argc, argv, run_check, run_bench, NULL, 0);
}
