/* Standalone Busy driver: runs the C core without Python.
 *
 * Check mode (default): 50 envs with different time limits, 1M random agent-steps, invariants checked after
 * every step; exit 0 when all hold. Meant to run under the sanitizers:
 *   gcc -std=c99 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
 *       envs_cython/busy/busy_main.c -o busy_main && ./busy_main
 *
 * Bench mode: a plain C reference loop (the same chain, PRNG draws, reward, flags and reset over flat arrays, no
 * structs, no statistics) against the core's c_step_all, both over 4096 envs with the same pre-generated random
 * actions, interleaved; prints the median steps/s of each and checks that both end in the same state.
 * `--work`, `--obs-dim` and `--max-steps` set the env's parameters (defaults: conf/env/busy.yaml's), `--reps`
 * the timed repetitions (15):
 *   gcc -std=c99 -O3 envs_cython/busy/busy_main.c -o busy_bench && ./busy_bench --bench --work 500
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
#define BENCH_ENVS 4096
#define BENCH_ACTION_SETS 64
#define BENCH_ITERATIONS 4000 /* step_all calls x (16 + work) per timed repetition: ~20 ms at any work */

/* Bench mode's env parameters, set by its options. */
static int bench_work = 1000;
static int bench_obs_dim = 4;
static int bench_max_steps = 100;

typedef struct Buffers {
    float* observations;
    int32_t* actions;
    float* rewards;
    unsigned char* terminals;
    unsigned char* truncations;
    float* final_observations;
} Buffers;

static int buffers_alloc(Buffers* b, int n, int obs_dim) {
    b->observations = calloc((size_t)n * obs_dim, sizeof(float));
    b->actions = calloc((size_t)n, sizeof(int32_t));
    b->rewards = calloc((size_t)n, sizeof(float));
    b->terminals = calloc((size_t)n, 1);
    b->truncations = calloc((size_t)n, 1);
    b->final_observations = calloc((size_t)n * obs_dim, sizeof(float));
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

/* What the binding does: one struct per env, borrowing row i of every buffer. `max_steps`: one limit per env, or
 * NULL for `default_max_steps` in all. */
static Busy* envs_make(Buffers* b, int n, int obs_dim, uint64_t seed, int32_t work, const int32_t* max_steps,
                       int32_t default_max_steps) {
    Busy* envs = calloc((size_t)n, sizeof(Busy));
    if (envs == NULL) {
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        Busy* env = &envs[i];
        env->observations = &b->observations[(size_t)obs_dim * i];
        env->actions = &b->actions[i];
        env->rewards = &b->rewards[i];
        env->terminals = &b->terminals[i];
        env->truncations = &b->truncations[i];
        env->final_observations = &b->final_observations[(size_t)obs_dim * i];
        env->max_steps = max_steps == NULL ? default_max_steps : max_steps[i];
        env->obs_dim = obs_dim;
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
    Busy* envs = buffers_alloc(&b, n, OBS_DIM) ? envs_make(&b, n, OBS_DIM, 7, 3, max_steps, 0) : NULL;
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
    Busy* envs = buffers_alloc(&b, COST_ENVS, OBS_DIM) ? envs_make(&b, COST_ENVS, OBS_DIM, 0, work, NULL, 100) : NULL;
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

/* ---- bench ---------------------------------------------------------------------------------------------- */

/* The plain reference: flat arrays, the chain, the PRNG draws in the core's order (the final observation's too,
 * discarded), reward, flags, reset. Same seeds as the core, so both loops must end in the same state. */
static void plain_step(int n, int obs_dim, int32_t work, int32_t max_steps, float* restrict obs,
                       const int32_t* restrict actions, float* restrict rewards, unsigned char* restrict terminals,
                       unsigned char* restrict truncations, int32_t* restrict ticks, uint64_t* restrict rngs,
                       uint64_t* restrict sinks) {
    for (int i = 0; i < n; i++) {
        uint64_t h = sinks[i] ^ rngs[i];
        for (int32_t k = 0; k < work; k++) {
            h = (h ^ (h >> 29)) * 0xBF58476D1CE4E5B9ULL;
        }
        sinks[i] = h;
        float* o = &obs[(size_t)obs_dim * i];
        rewards[i] = actions[i] == (o[0] >= 0.0f) ? 1.0f : 0.0f;
        int term = (thrust_next_u64(&rngs[i]) >> 58) == 0;
        int trunc = ++ticks[i] >= max_steps;
        if (term | trunc) {
            for (int j = 0; j < obs_dim; j++) {
                (void)thrust_next_u64(&rngs[i]);
            }
            ticks[i] = 0;
        }
        for (int j = 0; j < obs_dim; j++) {
            o[j] = busy_uniform(&rngs[i]);
        }
        terminals[i] = (unsigned char)term;
        truncations[i] = (unsigned char)trunc;
    }
}

/* What one timed step of the bench needs: the plain loop's state and buffers, the core's envs and buffers. */
typedef struct BenchContext {
    int n, d;
    const int32_t* action_sets;
    Buffers *b, *pb;
    Busy* envs;
    int32_t* ticks;
    uint64_t *rngs, *sinks;
} BenchContext;

/* Contender k (0: the plain loop, 1: the core) steps all envs with action set t. */
static void bench_step(void* context, int k, long t) {
    BenchContext* c = context;
    const int32_t* actions = &c->action_sets[(size_t)(t % BENCH_ACTION_SETS) * c->n];
    if (k == 0) {
        plain_step(c->n, c->d, bench_work, bench_max_steps, c->pb->observations, actions, c->pb->rewards,
                   c->pb->terminals, c->pb->truncations, c->ticks, c->rngs, c->sinks);
    } else {
        /* As the Python class does: copy the actions into the env's buffer, one call steps all. */
        memcpy(c->b->actions, actions, sizeof(int32_t) * c->n);
        c_step_all(c->envs, c->n);
    }
}

static int run_bench(void) {
    const int n = BENCH_ENVS, d = bench_obs_dim;
    const int steps = BENCH_ITERATIONS / (16 + bench_work) + 1; /* step_all calls per timed repetition */
    Buffers b, pb;                                               /* the core's, the plain loop's */
    Busy* envs = NULL;
    int32_t* action_sets = malloc(sizeof(int32_t) * BENCH_ACTION_SETS * n);
    int32_t* ticks = calloc((size_t)n, sizeof(int32_t));
    uint64_t* rngs = calloc((size_t)n, sizeof(uint64_t));
    uint64_t* sinks = calloc((size_t)n, sizeof(uint64_t));
    int ok = buffers_alloc(&b, n, d) & buffers_alloc(&pb, n, d);
    ok = ok && action_sets != NULL && ticks != NULL && rngs != NULL && sinks != NULL;
    if (ok) {
        uint64_t action_rng = 7;
        for (int k = 0; k < BENCH_ACTION_SETS * n; k++) {
            action_sets[k] = (int32_t)(thrust_next_u64(&action_rng) >> 63);
        }
        envs = envs_make(&b, n, d, 0, bench_work, NULL, bench_max_steps);
        ok = envs != NULL;
    }
    if (!ok) {
        fprintf(stderr, THRUST_DRIVER ": out of memory\n");
    } else {
        /* The plain loop starts from the core's observations and PRNG streams. */
        memcpy(pb.observations, b.observations, sizeof(float) * (size_t)d * n);
        for (int i = 0; i < n; i++) {
            rngs[i] = envs[i].rng;
        }
        const char* names[2] = {"plain C loop", "core c_step_all"};
        BenchContext ctx = {n, d, action_sets, &b, &pb, envs, ticks, rngs, sinks};
        double median[2];
        thrust_bench_interleaved(2, steps, n, bench_step, &ctx, median);
        for (int k = 0; k < 2; k++) {
            printf("%-16s %6.2fM steps/s (median of %d, %d envs, work %d)\n", names[k], median[k] / 1e6,
                   thrust_bench_reps, n, bench_work);
        }
        printf("ratio core / plain C loop: %.3f\n", median[1] / median[0]);
        for (int i = 0; i < n; i++) {
            ok &= envs[i].rng == rngs[i] && envs[i].sink == sinks[i] && envs[i].tick == ticks[i];
        }
        ok = ok && memcmp(pb.observations, b.observations, sizeof(float) * (size_t)d * n) == 0
            && memcmp(pb.rewards, b.rewards, sizeof(float) * n) == 0
            && memcmp(pb.terminals, b.terminals, n) == 0 && memcmp(pb.truncations, b.truncations, n) == 0;
        printf("both loops end in the same state: %s\n", ok ? "yes" : "NO");
    }
    free(envs);
    buffers_free(&b);
    buffers_free(&pb);
    free(action_sets);
    free(ticks);
    free(rngs);
    free(sinks);
    return ok ? 0 : 1;
}

int main(int argc, char** argv) {
    if (argc == 3 && strcmp(argv[1], "--cost") == 0) {
        return run_cost((int32_t)atoi(argv[2]));
    }
    const ThrustOption options[] = {
        {"--work", &bench_work, 0, 100000000},
        {"--obs-dim", &bench_obs_dim, 1, 4096},
        {"--max-steps", &bench_max_steps, 1, 1000000000},
    };
    return thrust_driver_main(argc, argv, run_check, run_bench, options, 3);
}
