/* Standalone Busy driver: runs the C core without Python.
 *
 * Check mode (default): 50 envs with different time limits, 1M random agent-steps, invariants checked after
 * every step; exit 0 when all hold. Meant to run under the sanitizers:
 *   gcc -std=c99 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
 *       envs_cython/busy/busy_main.c -o busy_main && ./busy_main
 *
 * Cost mode: `./busy_main --cost WORK` prints the time of one step of 4096 envs with that much work, to pick
 * `work` for a benchmark (build with -O3 for that).
 */
#define THRUST_DRIVER "busy_main"
#include "../thrust_driver.h"

#include "busy.h"

#define CHECK_ENVS 50
#define CHECK_STEPS (1000000 / CHECK_ENVS)
#define OBS_DIM 3
#define COST_ENVS 4096

typedef struct Buffers {
    float* observations;
    int32_t* actions;
    float* rewards;
    unsigned char* terminals;
    unsigned char* truncations;
    float* final_observations;
} Buffers;

static int buffers_alloc(Buffers* b, int n) {
    b->observations = calloc((size_t)n * OBS_DIM, sizeof(float));
    b->actions = calloc((size_t)n, sizeof(int32_t));
    b->rewards = calloc((size_t)n, sizeof(float));
    b->terminals = calloc((size_t)n, 1);
    b->truncations = calloc((size_t)n, 1);
    b->final_observations = calloc((size_t)n * OBS_DIM, sizeof(float));
    return b->observations && b->actions && b->rewards && b->terminals && b->truncations && b->final_observations;
}

static void buffers_free(Buffers* b) {
    free(b->observations);
    free(b->actions);
    free(b->rewards);
    free(b->terminals);
    free(b->truncations);
    free(b->final_observations);
}

/* What the binding does: one struct per env, borrowing row i of every buffer. */
static Busy* envs_make(Buffers* b, int n, uint64_t seed, int32_t work, const int32_t* max_steps) {
    Busy* envs = calloc((size_t)n, sizeof(Busy));
    if (envs == NULL) {
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        Busy* env = &envs[i];
        env->observations = &b->observations[OBS_DIM * i];
        env->actions = &b->actions[i];
        env->rewards = &b->rewards[i];
        env->terminals = &b->terminals[i];
        env->truncations = &b->truncations[i];
        env->final_observations = &b->final_observations[OBS_DIM * i];
        env->max_steps = max_steps == NULL ? 100 : max_steps[i];
        env->obs_dim = OBS_DIM;
        env->work = work;
        c_seed(env, seed + (uint64_t)i);
        c_reset(env);
    }
    return envs;
}

static int in_range(const float* v) {
    for (int j = 0; j < OBS_DIM; j++) {
        if (!(v[j] >= -1.0f && v[j] < 1.0f)) {
            return 0;
        }
    }
    return 1;
}

static int run_check(void) {
    const int n = CHECK_ENVS;
    Buffers b;
    int32_t max_steps[CHECK_ENVS];
    int32_t length[CHECK_ENVS] = {0};
    double ret[CHECK_ENVS] = {0.0};
    for (int i = 0; i < n; i++) {
        max_steps[i] = 1 + i * 3; /* from 1 (every step truncates) to 148 */
    }
    Busy* envs = buffers_alloc(&b, n) ? envs_make(&b, n, 7, 3, max_steps) : NULL;
    if (envs == NULL) {
        fprintf(stderr, THRUST_DRIVER ": out of memory\n");
        buffers_free(&b);
        return 1;
    }
    uint64_t action_rng = 12345;
    double episodes = 0.0, episode_steps = 0.0, episode_return = 0.0;
    long long terminals = 0, truncations = 0;
    float prev_obs0[CHECK_ENVS];
    for (int t = 0; t < CHECK_STEPS; t++) {
        for (int i = 0; i < n; i++) {
            b.actions[i] = (int32_t)(thrust_next_u64(&action_rng) >> 63);
            prev_obs0[i] = b.observations[OBS_DIM * i];
            c_step(&envs[i]);
        }
        for (int i = 0; i < n; i++) {
            int term = b.terminals[i], trunc = b.truncations[i];
            float expected = b.actions[i] == (prev_obs0[i] >= 0.0f) ? 1.0f : 0.0f;
            length[i]++;
            ret[i] += b.rewards[i];
            EXPECT(b.rewards[i] == expected, "env %d step %d reward %g", i, t, b.rewards[i]);
            EXPECT(term <= 1 && trunc <= 1, "env %d step %d flags %d %d", i, t, term, trunc);
            EXPECT(in_range(&b.observations[OBS_DIM * i]), "env %d step %d observation outside [-1, 1)", i, t);
            EXPECT(trunc == (length[i] >= max_steps[i]), "env %d step %d truncation at length %d", i, t, length[i]);
            if (term || trunc) {
                EXPECT(in_range(&b.final_observations[OBS_DIM * i]), "env %d step %d final observation", i, t);
                EXPECT(envs[i].tick == 0, "env %d step %d tick %d after reset", i, t, envs[i].tick);
                episodes += 1.0;
                episode_steps += length[i];
                episode_return += ret[i];
                terminals += term;
                truncations += trunc;
                length[i] = 0;
                ret[i] = 0.0;
            } else {
                EXPECT(envs[i].tick == length[i], "env %d step %d tick %d != %d", i, t, envs[i].tick, length[i]);
            }
        }
    }
    double log_n = 0.0, log_return = 0.0, log_length = 0.0;
    for (int i = 0; i < n; i++) {
        log_n += envs[i].log.n;
        log_return += envs[i].log.episode_return;
        log_length += envs[i].log.episode_length;
    }
    EXPECT(log_n == episodes, "log counts %.0f episodes, main counted %.0f", log_n, episodes);
    EXPECT(log_length == episode_steps, "log length sum %.0f, main counted %.0f", log_length, episode_steps);
    EXPECT(log_return == episode_return, "log return sum %.0f, main counted %.0f", log_return, episode_return);
    /* random actions match the target half the time; a hazard of 1/64 terminates */
    EXPECT(episode_return > 0.45 * episode_steps && episode_return < 0.55 * episode_steps, "return rate %.3f",
           episode_return / episode_steps);
    EXPECT(terminals > 0 && truncations > 0, "ends seen: %lld terminal, %lld truncation", terminals, truncations);
    printf("busy_main: %d agent-steps, %d envs, %.0f episodes (%lld terminated, %lld truncated): %s\n",
           n * CHECK_STEPS, n, episodes, terminals, truncations, failures ? "FAILED" : "ok");
    free(envs);
    buffers_free(&b);
    return failures ? 1 : 0;
}

static int run_cost(int32_t work) {
    Buffers b;
    Busy* envs = buffers_alloc(&b, COST_ENVS) ? envs_make(&b, COST_ENVS, 0, work, NULL) : NULL;
    if (envs == NULL) {
        fprintf(stderr, THRUST_DRIVER ": out of memory\n");
        buffers_free(&b);
        return 1;
    }
    const int steps = 20;
    double t0 = thrust_now_s();
    for (int t = 0; t < steps; t++) {
        for (int i = 0; i < COST_ENVS; i++) {
            c_step(&envs[i]);
        }
    }
    double per_step = (thrust_now_s() - t0) / steps;
    printf("busy_main: work %d: %.3f ms per step of %d envs (%.2f ns per iteration)\n", work, per_step * 1e3,
           COST_ENVS, per_step * 1e9 / ((double)COST_ENVS * (work > 0 ? work : 1)));
    free(envs);
    buffers_free(&b);
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 3 && strcmp(argv[1], "--cost") == 0) {
        return run_cost((int32_t)atoi(argv[2]));
    }
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--cost WORK]\n", argv[0]);
        return 2;
    }
    return run_check();
}
