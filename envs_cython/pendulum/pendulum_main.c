/* Standalone Pendulum driver: runs the C core without Python.
 *
 * Check mode (default): 80 envs, 1M random agent-steps (torques uniform in [-4, 4), some ±inf, so the clipping
 * is exercised), invariants checked after every step and every state checked bit for bit against a plain
 * reference loop; exit 0 when all hold. Meant to run under the sanitizers:
 *   gcc -std=c99 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -ffp-contract=off \
 *       envs_cython/pendulum/pendulum_main.c -lm -o pendulum_main && ./pendulum_main
 *
 * Bench mode: the plain reference loop (the simplest bit-exact Pendulum over flat arrays: physics, reward,
 * truncation, reset) against the core's c_step_all, both over 4096 envs with the same pre-generated random
 * torques, interleaved; prints the median steps/s of each and checks that both end in the same state:
 *   gcc -std=c99 -O3 -ffp-contract=off envs_cython/pendulum/pendulum_main.c -lm -o pendulum_bench \
 *       && ./pendulum_bench --bench
 * `--bench --reps N` takes medians of N timed repetitions instead of 15.
 */
#define THRUST_DRIVER "pendulum_main"
#include "../thrust_driver.h"

#include "pendulum.h"

#define CHECK_ENVS 80
#define CHECK_STEPS (1000000 / CHECK_ENVS) /* step_all calls: 1M agent-steps */
#define BENCH_ENVS 4096
#define BENCH_ACTION_SETS 64
#define BENCH_STEPS 250 /* step_all calls per timed repetition */
/* A hair below the lowest reward, -(pi^2 + 0.1 * 8^2 + 0.001 * 2^2) = -16.2736044 (Gymnasium's docstring). */
#define MIN_REWARD -16.27361f

/* The buffers Python would own, allocated in one place so main can free them in one place. */
typedef struct Buffers {
    double* state;
    float* observations;
    float* actions;
    float* rewards;
    unsigned char* terminals;
    unsigned char* truncations;
    float* final_observations;
} Buffers;

static int buffers_alloc(Buffers* b, int n) {
    b->state = calloc((size_t)n * 2, sizeof(double));
    b->observations = calloc((size_t)n * 3, sizeof(float));
    b->actions = calloc((size_t)n, sizeof(float));
    b->rewards = calloc((size_t)n, sizeof(float));
    b->terminals = calloc((size_t)n, 1);
    b->truncations = calloc((size_t)n, 1);
    b->final_observations = calloc((size_t)n * 3, sizeof(float));
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

/* What the binding does: one struct per env, borrowing row i of every buffer. */
static Pendulum* envs_make(Buffers* b, int n, uint64_t seed, const int32_t* max_steps) {
    Pendulum* envs = calloc((size_t)n, sizeof(Pendulum));
    if (envs == NULL) {
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        Pendulum* env = &envs[i];
        env->state = &b->state[2 * i];
        env->observations = &b->observations[3 * i];
        env->actions = &b->actions[i];
        env->rewards = &b->rewards[i];
        env->terminals = &b->terminals[i];
        env->truncations = &b->truncations[i];
        env->final_observations = &b->final_observations[3 * i];
        env->max_steps = max_steps[i];
        env->g = PENDULUM_G;
        c_seed(env, seed + (uint64_t)i);
        c_reset(env);
    }
    return envs;
}

/* The plain reference: flat arrays, physics, reward, truncation, reset on an end. No structs, final
 * observations or statistics. Same seeds and PRNG as the core, so both must end in the same state. */
static void plain_step(int n, double* restrict state, float* restrict obs, const float* restrict actions,
                       float* restrict rewards, unsigned char* restrict truncations, int32_t* restrict ticks,
                       const int32_t* restrict max_steps, uint64_t* restrict rngs) {
    const double two = pendulum_two;
    const float two_f = pendulum_two_f;
    for (int i = 0; i < n; i++) {
        double* s = &state[2 * i];
        float u = fminf(fmaxf(actions[i], -2.0f), 2.0f); /* no NaN torques here */
        double costs = pow(pendulum_angle_normalize(s[0]), two) + 0.1 * pow(s[1], two)
            + (double)(0.001f * powf(u, two_f));
        double thdot = s[1] + (15.0 * sin(s[0]) + (double)(3.0f * u)) * 0.05;
        thdot = fmin(fmax(thdot, -8.0), 8.0);
        s[0] = s[0] + thdot * 0.05;
        s[1] = thdot;
        rewards[i] = (float)(-costs);
        truncations[i] = ++ticks[i] >= max_steps[i];
        if (truncations[i]) {
            s[0] = pendulum_uniform(&rngs[i], PENDULUM_PI);
            s[1] = pendulum_uniform(&rngs[i], 1.0);
            ticks[i] = 0;
        }
        pendulum_write_obs(s[0], s[1], &obs[3 * i]);
    }
}

/* The plain loop's own state: step counters, time limits, PRNG states. */
typedef struct Plain {
    Buffers b;
    int32_t* ticks;
    int32_t* max_steps;
    uint64_t* rngs;
} Plain;

static int plain_alloc(Plain* p, const Buffers* core_b, const Pendulum* envs, int n) {
    p->ticks = calloc((size_t)n, sizeof(int32_t));
    p->max_steps = calloc((size_t)n, sizeof(int32_t));
    p->rngs = calloc((size_t)n, sizeof(uint64_t));
    if (!(buffers_alloc(&p->b, n) & (p->ticks != NULL) & (p->max_steps != NULL) & (p->rngs != NULL))) {
        return 0;
    }
    /* Start from the core's states and PRNG streams. */
    memcpy(p->b.state, core_b->state, sizeof(double) * 2 * n);
    for (int i = 0; i < n; i++) {
        p->max_steps[i] = envs[i].max_steps;
        p->rngs[i] = envs[i].rng;
    }
    return 1;
}

static void plain_free(Plain* p) {
    buffers_free(&p->b);
    free(p->ticks);
    free(p->max_steps);
    free(p->rngs);
}

static void plain_run(Plain* p, int n, const float* actions) {
    plain_step(n, p->b.state, p->b.observations, actions, p->b.rewards, p->b.truncations, p->ticks, p->max_steps,
               p->rngs);
}

/* An observation the env can deliver: (cos, sin) on the unit circle, |thdot| <= 8. */
static int valid_obs(const float* v) {
    float r2 = v[0] * v[0] + v[1] * v[1];
    return fabsf(v[0]) <= 1.0f && fabsf(v[1]) <= 1.0f && r2 > 0.9999f && r2 < 1.0001f && fabsf(v[2]) <= 8.0f;
}

/* Uniform torque in [-4, 4); one in 64 is ±inf. */
static float random_torque(uint64_t* rng) {
    uint64_t bits = thrust_next_u64(rng);
    if ((bits >> 58) == 0) {
        return (bits & 1) ? INFINITY : -INFINITY;
    }
    return (float)(bits >> 40) * 0x1.0p-21f - 4.0f;
}

static int run_check(void) {
    const int n = CHECK_ENVS;
    Buffers b;
    Plain plain = {0};
    int32_t max_steps[CHECK_ENVS];
    int32_t length[CHECK_ENVS] = {0};
    double episode_return[CHECK_ENVS] = {0.0};
    for (int i = 0; i < n; i++) {
        /* Half the envs get short time limits so truncation happens often; env 0 ends every step. */
        max_steps[i] = i % 2 ? PENDULUM_MAX_STEPS : 1 + i;
    }
    Pendulum* envs = NULL;
    int ok = buffers_alloc(&b, n);
    if (ok) {
        envs = envs_make(&b, n, 42, max_steps);
        ok = envs != NULL && plain_alloc(&plain, &b, envs, n);
    }
    if (!ok) {
        fprintf(stderr, THRUST_DRIVER ": out of memory\n");
        free(envs);
        buffers_free(&b);
        plain_free(&plain);
        return 1;
    }
    uint64_t action_rng = 12345;
    double episodes = 0.0, episode_steps = 0.0, returns = 0.0;
    long long clipped = 0;
    float min_reward = 0.0f;

    for (int t = 0; t < CHECK_STEPS; t++) {
        for (int i = 0; i < n; i++) {
            b.actions[i] = random_torque(&action_rng);
            clipped += fabsf(b.actions[i]) > 2.0f;
        }
        c_step_all(envs, n);
        plain_run(&plain, n, b.actions);
        EXPECT(memcmp(b.state, plain.b.state, sizeof(double) * 2 * n) == 0
                   && memcmp(b.observations, plain.b.observations, sizeof(float) * 3 * n) == 0
                   && memcmp(b.rewards, plain.b.rewards, sizeof(float) * n) == 0
                   && memcmp(b.truncations, plain.b.truncations, n) == 0,
               "step %d: the core and the plain loop differ", t);
        for (int i = 0; i < n; i++) {
            const float* obs = &b.observations[3 * i];
            const float* final_obs = &b.final_observations[3 * i];
            int trunc = b.truncations[i];
            float reward = b.rewards[i];
            length[i]++;
            episode_return[i] += (double)reward;
            min_reward = fminf(min_reward, reward);
            EXPECT(reward <= 0.0f && reward >= MIN_REWARD, "env %d step %d reward %g", i, t, reward);
            EXPECT(b.terminals[i] == 0, "env %d step %d terminal %d", i, t, b.terminals[i]);
            EXPECT(trunc == (length[i] >= max_steps[i]), "env %d step %d truncation at length %d", i, t, length[i]);
            EXPECT(valid_obs(obs), "env %d step %d observation (%g, %g, %g)", i, t, obs[0], obs[1], obs[2]);
            EXPECT(fabs(b.state[2 * i + 1]) <= PENDULUM_MAX_SPEED, "env %d step %d speed %g", i, t,
                   b.state[2 * i + 1]);
            if (trunc) {
                EXPECT(valid_obs(final_obs), "env %d step %d final observation", i, t);
                EXPECT(fabs(b.state[2 * i]) <= PENDULUM_PI && fabsf(obs[2]) <= 1.0f,
                       "env %d step %d new episode starts at (%g, %g)", i, t, b.state[2 * i], b.state[2 * i + 1]);
                EXPECT(envs[i].tick == 0 && envs[i].episode_return == 0.0, "env %d step %d counters after reset",
                       i, t);
                episodes += 1.0;
                episode_steps += length[i];
                returns += episode_return[i];
                length[i] = 0;
                episode_return[i] = 0.0;
            } else {
                EXPECT(envs[i].tick == length[i], "env %d step %d tick %d != %d", i, t, envs[i].tick, length[i]);
                EXPECT(envs[i].episode_return == episode_return[i], "env %d step %d running return", i, t);
            }
        }
    }

    double log_n = 0.0, log_return = 0.0, log_length = 0.0, running = 0.0;
    for (int i = 0; i < n; i++) {
        log_n += envs[i].log.n;
        log_return += envs[i].log.episode_return;
        log_length += envs[i].log.episode_length;
        running += envs[i].tick;
    }
    EXPECT(log_n == episodes, "log counts %.0f episodes, main counted %.0f", log_n, episodes);
    EXPECT(log_length == episode_steps, "log length sum %.0f, main counted %.0f", log_length, episode_steps);
    EXPECT(fabs(log_return - returns) <= 1e-9 * fabs(returns), "log return sum %.17g, main %.17g", log_return,
           returns);
    EXPECT(log_length + running == (double)n * CHECK_STEPS, "steps not accounted for");
    EXPECT(clipped > 0, "no torque beyond the limits");
    EXPECT(min_reward < -10.0f, "lowest reward %g: the rollout never swung far from upright", min_reward);

    printf("pendulum_main: %d agent-steps, %d envs, %.0f episodes, %lld clipped torques, mean return %.2f, "
           "lowest reward %.4f: %s\n",
           n * CHECK_STEPS, n, episodes, clipped, log_return / log_n, min_reward, failures ? "FAILED" : "ok");
    free(envs);
    buffers_free(&b);
    plain_free(&plain);
    return failures ? 1 : 0;
}

/* ---- bench ---------------------------------------------------------------------------------------------- */

/* What one timed step of the bench needs: the plain loop's state, the core's envs and buffers. */
typedef struct BenchContext {
    int n;
    const float* action_sets;
    Buffers* b;
    Plain* plain;
    Pendulum* envs;
} BenchContext;

/* Contender k (0: the plain loop, 1: the core) steps all envs with action set t. */
static void bench_step(void* context, int k, long t) {
    BenchContext* c = context;
    const float* actions = &c->action_sets[(size_t)(t % BENCH_ACTION_SETS) * c->n];
    if (k == 0) {
        plain_run(c->plain, c->n, actions);
    } else {
        /* As the Python class does: copy the actions into the env's buffer, one call steps all. */
        memcpy(c->b->actions, actions, sizeof(float) * c->n);
        c_step_all(c->envs, c->n);
    }
}

static int run_bench(void) {
    const int n = BENCH_ENVS;
    Buffers b;
    Plain plain = {0};
    Pendulum* envs = NULL;
    float* action_sets = malloc(sizeof(float) * BENCH_ACTION_SETS * n);
    int32_t* max_steps = malloc(sizeof(int32_t) * n);
    int ok = buffers_alloc(&b, n) && action_sets != NULL && max_steps != NULL;
    if (ok) {
        uint64_t action_rng = 7;
        for (int k = 0; k < BENCH_ACTION_SETS * n; k++) {
            action_sets[k] = (float)(thrust_next_u64(&action_rng) >> 40) * 0x1.0p-22f - 2.0f;
        }
        for (int i = 0; i < n; i++) {
            max_steps[i] = PENDULUM_MAX_STEPS;
        }
        envs = envs_make(&b, n, 0, max_steps);
        ok = envs != NULL && plain_alloc(&plain, &b, envs, n);
    }
    if (!ok) {
        fprintf(stderr, THRUST_DRIVER ": out of memory\n");
    } else {
        const char* names[2] = {"plain C loop", "core c_step_all"};
        BenchContext ctx = {n, action_sets, &b, &plain, envs};
        double median[2];
        thrust_bench_interleaved(2, BENCH_STEPS, n, bench_step, &ctx, median);
        for (int k = 0; k < 2; k++) {
            printf("%-16s %6.2fM steps/s (median of %d, %d envs)\n", names[k], median[k] / 1e6, thrust_bench_reps, n);
        }
        printf("ratio core / plain C loop: %.3f\n", median[1] / median[0]);
        ok = memcmp(plain.b.state, b.state, sizeof(double) * 2 * n) == 0
            && memcmp(plain.b.observations, b.observations, sizeof(float) * 3 * n) == 0;
        printf("both loops end in the same state: %s\n", ok ? "yes" : "NO");
    }
    free(envs);
    buffers_free(&b);
    plain_free(&plain);
    free(action_sets);
    free(max_steps);
    return ok ? 0 : 1;
}

int main(int argc, char** argv) {
    return thrust_driver_main(argc, argv, run_check, run_bench, NULL, 0);
}
