/* Standalone CartPole driver: runs the C core without Python.
 *
 * Check mode (default): 80 envs, 1M random agent-steps, invariants checked after every step; exit 0 when
 * all hold. Meant to run under the sanitizers:
 *   gcc -std=c99 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -ffp-contract=off \
 *       envs_cython/cartpole/cartpole_main.c -lm -o cartpole_main && ./cartpole_main
 *
 * Bench mode: plain C reference loops (the simplest bit-exact CartPole loop over flat arrays: physics, flags,
 * reset; once with the obvious ternary for the force, once with a table lookup) against the core's
 * c_step_all, all over 4096 envs with the same pre-generated random actions, interleaved; prints the median
 * steps/s of each and checks that all end in the same state, bit for bit:
 *   gcc -std=c99 -O3 -ffp-contract=off envs_cython/cartpole/cartpole_main.c -lm -o cartpole_bench \
 *       && ./cartpole_bench --bench
 * `--bench --reps N` takes medians of N timed repetitions instead of 15.
 */
#define THRUST_DRIVER "cartpole_main"
#include "../thrust_driver.h"

#include "cartpole.h"

#define CHECK_ENVS 80 /* not a multiple of CARTPOLE_CHUNK: the last chunk is partial */
#define CHECK_STEPS (1000000 / CHECK_ENVS) /* step_all calls: 1M agent-steps */
#define BENCH_ENVS 4096
#define BENCH_ACTION_SETS 64
#define BENCH_STEPS 250 /* step_all calls per timed repetition */

/* The buffers Python would own, allocated in one place so main can free them in one place. */
typedef struct Buffers {
    double* state;
    float* observations;
    int32_t* actions;
    float* rewards;
    unsigned char* terminals;
    unsigned char* truncations;
    float* final_observations;
} Buffers;

static int buffers_alloc(Buffers* b, int n) {
    b->state = calloc((size_t)n * 4, sizeof(double));
    b->observations = calloc((size_t)n * 4, sizeof(float));
    b->actions = calloc((size_t)n, sizeof(int32_t));
    b->rewards = calloc((size_t)n, sizeof(float));
    b->terminals = calloc((size_t)n, 1);
    b->truncations = calloc((size_t)n, 1);
    b->final_observations = calloc((size_t)n * 4, sizeof(float));
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
static CartPole* envs_make(Buffers* b, int n, uint64_t seed, const int32_t* max_steps) {
    CartPole* envs = calloc((size_t)n, sizeof(CartPole));
    if (envs == NULL) {
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        CartPole* env = &envs[i];
        env->state = &b->state[4 * i];
        env->observations = &b->observations[4 * i];
        env->actions = &b->actions[i];
        env->rewards = &b->rewards[i];
        env->terminals = &b->terminals[i];
        env->truncations = &b->truncations[i];
        env->final_observations = &b->final_observations[4 * i];
        env->max_steps = max_steps[i];
        c_seed(env, seed + (uint64_t)i);
        c_reset(env);
    }
    return envs;
}

static int finite4(const float* v) {
    return isfinite(v[0]) && isfinite(v[1]) && isfinite(v[2]) && isfinite(v[3]);
}

static int is_initial_obs(const float* v) {
    for (int k = 0; k < 4; k++) {
        if (!(v[k] >= -0.05f && v[k] <= 0.05f)) {
            return 0;
        }
    }
    return 1;
}

static int buffers_equal(const Buffers* a, const Buffers* b, int n) {
    return memcmp(a->state, b->state, sizeof(double) * 4 * n) == 0
        && memcmp(a->observations, b->observations, sizeof(float) * 4 * n) == 0
        && memcmp(a->rewards, b->rewards, sizeof(float) * n) == 0 && memcmp(a->terminals, b->terminals, n) == 0
        && memcmp(a->truncations, b->truncations, n) == 0
        && memcmp(a->final_observations, b->final_observations, sizeof(float) * 4 * n) == 0;
}

static int run_check(void) {
    const int n = CHECK_ENVS;
    Buffers b, twin_b; /* the twins step one env at a time with c_step: same results as c_step_all */
    int32_t max_steps[CHECK_ENVS];
    int32_t length[CHECK_ENVS] = {0};
    for (int i = 0; i < n; i++) {
        /* Half the envs get short time limits so truncation (and truncation + termination) happens often. */
        max_steps[i] = i % 2 ? CARTPOLE_MAX_STEPS : 5 + i;
    }
    CartPole* envs = NULL;
    CartPole* twins = NULL;
    if (buffers_alloc(&b, n) & buffers_alloc(&twin_b, n)) {
        envs = envs_make(&b, n, 42, max_steps);
        twins = envs_make(&twin_b, n, 42, max_steps);
    }
    if (envs == NULL || twins == NULL) {
        fprintf(stderr, THRUST_DRIVER ": out of memory\n");
        free(envs);
        free(twins);
        buffers_free(&b);
        buffers_free(&twin_b);
        return 1;
    }
    const float x_limit = (float)CARTPOLE_X_THRESHOLD;
    const float theta_limit = (float)CARTPOLE_THETA_THRESHOLD;
    uint64_t action_rng = 12345;
    double episodes = 0.0, episode_steps = 0.0;
    long long terminals = 0, truncations = 0, both = 0;

    for (int t = 0; t < CHECK_STEPS; t++) {
        for (int i = 0; i < n; i++) {
            b.actions[i] = (int32_t)(thrust_next_u64(&action_rng) >> 63);
        }
        c_step_all(envs, n);
        memcpy(twin_b.actions, b.actions, sizeof(int32_t) * n);
        for (int i = 0; i < n; i++) {
            c_step(&twins[i]);
        }
        EXPECT(buffers_equal(&b, &twin_b, n), "step %d: c_step_all and c_step differ", t);
        for (int i = 0; i < n; i++) {
            const float* obs = &b.observations[4 * i];
            const float* final_obs = &b.final_observations[4 * i];
            int term = b.terminals[i], trunc = b.truncations[i];
            length[i]++;
            EXPECT(b.rewards[i] == 1.0f, "env %d step %d reward %g", i, t, b.rewards[i]);
            EXPECT(term <= 1 && trunc <= 1, "env %d step %d flags %d %d", i, t, term, trunc);
            EXPECT(finite4(obs), "env %d step %d observation not finite", i, t);
            EXPECT(trunc == (length[i] >= max_steps[i]), "env %d step %d truncation at length %d", i, t, length[i]);
            if (term || trunc) {
                EXPECT(finite4(final_obs), "env %d step %d final observation not finite", i, t);
                EXPECT(is_initial_obs(obs), "env %d step %d new episode starts outside [-0.05, 0.05)", i, t);
                EXPECT(envs[i].tick == 0, "env %d step %d tick %d after reset", i, t, envs[i].tick);
                if (term) {
                    EXPECT(fabsf(final_obs[0]) >= x_limit || fabsf(final_obs[2]) >= theta_limit,
                           "env %d step %d terminated inside the limits", i, t);
                }
                episodes += 1.0;
                episode_steps += length[i];
                terminals += term;
                truncations += trunc;
                both += term && trunc;
                length[i] = 0;
            } else {
                EXPECT(fabsf(obs[0]) <= x_limit && fabsf(obs[2]) <= theta_limit,
                       "env %d step %d outside the limits without terminating", i, t);
                EXPECT(envs[i].tick == length[i], "env %d step %d tick %d != %d", i, t, envs[i].tick, length[i]);
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
    EXPECT(log_return == log_length, "return sum %.0f != length sum %.0f", log_return, log_length);
    EXPECT(log_length + running == (double)n * CHECK_STEPS, "steps not accounted for");
    EXPECT(terminals > 0 && truncations > 0 && both > 0, "ends seen: %lld terminal, %lld truncation, %lld both",
           terminals, truncations, both);

    printf("cartpole_main: %d agent-steps, %d envs, %.0f episodes (%lld terminated, %lld truncated, %lld both), "
           "mean length %.2f: %s\n",
           n * CHECK_STEPS, n, episodes, terminals, truncations, both, log_length / log_n,
           failures ? "FAILED" : "ok");
    free(envs);
    free(twins);
    buffers_free(&b);
    buffers_free(&twin_b);
    return failures ? 1 : 0;
}

/* ---- bench ---------------------------------------------------------------------------------------------- */

/* The plain reference: flat arrays, the physics, flags, reset on an end. No structs, no final observations, no
 * statistics. Same seeds and PRNG as the core, so all loops must end in the same state. `force_table` picks the
 * force with a table lookup instead of the obvious ternary (which gcc compiles to a branch that random actions
 * mispredict half the time); each caller passes a constant, so gcc compiles one specialised loop for each. */
static inline void plain_step(int force_table, int n, double* restrict state, float* restrict obs,
                              const int32_t* restrict actions, float* restrict rewards,
                              unsigned char* restrict terminals, unsigned char* restrict truncations,
                              int32_t* restrict ticks, uint64_t* restrict rngs) {
    static const double forces[2] = {-10.0, 10.0};
    const double pml = 0.1 * 0.5, mt = 0.1 + 1.0;
    for (int i = 0; i < n; i++) {
        double* s = &state[4 * i];
        double force = force_table ? forces[actions[i] == 1] : actions[i] == 1 ? 10.0 : -10.0;
        double c = cos(s[2]), sn = sin(s[2]);
        double temp = (force + pml * (s[3] * s[3]) * sn) / mt;
        double thacc = (9.8 * sn - c * temp) / (0.5 * (4.0 / 3.0 - 0.1 * (c * c) / mt));
        double xacc = temp - pml * thacc * c / mt;
        s[0] += 0.02 * s[1];
        s[1] += 0.02 * xacc;
        s[2] += 0.02 * s[3];
        s[3] += 0.02 * thacc;
        int term = s[0] < -2.4 || s[0] > 2.4 || s[2] < -CARTPOLE_THETA_THRESHOLD || s[2] > CARTPOLE_THETA_THRESHOLD;
        int trunc = ++ticks[i] >= CARTPOLE_MAX_STEPS;
        if (term || trunc) {
            for (int k = 0; k < 4; k++) {
                s[k] = cartpole_uniform(&rngs[i]);
            }
            ticks[i] = 0;
        }
        for (int k = 0; k < 4; k++) {
            obs[4 * i + k] = (float)s[k];
        }
        rewards[i] = 1.0f;
        terminals[i] = (unsigned char)term;
        truncations[i] = (unsigned char)trunc;
    }
}

/* One benchmarked loop: its buffers, and for the plain loops the per-env step counters and PRNG states. */
typedef struct Contender {
    const char* name;
    int force_table; /* plain loops: pick the force by table lookup */
    Buffers b;
    int32_t* ticks;
    uint64_t* rngs;
    CartPole* envs; /* the core only */
} Contender;

static void contender_step(Contender* c, int n, const int32_t* actions) {
    Buffers* b = &c->b;
    if (c->envs != NULL) {
        /* As the Python class does: copy the actions into the env's buffer, one call steps all. */
        memcpy(b->actions, actions, sizeof(int32_t) * n);
        c_step_all(c->envs, n);
    } else if (c->force_table) {
        plain_step(1, n, b->state, b->observations, actions, b->rewards, b->terminals, b->truncations, c->ticks,
                   c->rngs);
    } else {
        plain_step(0, n, b->state, b->observations, actions, b->rewards, b->terminals, b->truncations, c->ticks,
                   c->rngs);
    }
}

/* The bench's contenders and the action sets they share. */
typedef struct BenchContext {
    int n;
    const int32_t* action_sets;
    Contender* cs;
} BenchContext;

/* Contender k steps all envs with action set t. */
static void bench_step(void* context, int k, long t) {
    BenchContext* c = context;
    contender_step(&c->cs[k], c->n, &c->action_sets[(size_t)(t % BENCH_ACTION_SETS) * c->n]);
}

static int run_bench(void) {
    const int n = BENCH_ENVS;
    Contender cs[3] = {
        {.name = "plain C loop"},
        {.name = "plain C loop, table force", .force_table = 1},
        {.name = "core c_step_all"},
    };
    Contender* core = &cs[2];
    int32_t* action_sets = malloc(sizeof(int32_t) * BENCH_ACTION_SETS * n);
    int32_t* max_steps = malloc(sizeof(int32_t) * n);
    int ok = action_sets != NULL && max_steps != NULL;
    for (int k = 0; k < 3; k++) {
        ok &= buffers_alloc(&cs[k].b, n);
        cs[k].ticks = calloc((size_t)n, sizeof(int32_t));
        cs[k].rngs = calloc((size_t)n, sizeof(uint64_t));
        ok &= cs[k].ticks != NULL && cs[k].rngs != NULL;
    }
    if (ok) {
        uint64_t action_rng = 7;
        for (int k = 0; k < BENCH_ACTION_SETS * n; k++) {
            action_sets[k] = (int32_t)(thrust_next_u64(&action_rng) >> 63);
        }
        for (int i = 0; i < n; i++) {
            max_steps[i] = CARTPOLE_MAX_STEPS;
        }
        core->envs = envs_make(&core->b, n, 0, max_steps);
        ok = core->envs != NULL;
    }
    if (!ok) {
        fprintf(stderr, THRUST_DRIVER ": out of memory\n");
    } else {
        /* The plain loops start from the core's states and PRNG streams. */
        for (int k = 0; k < 2; k++) {
            memcpy(cs[k].b.state, core->b.state, sizeof(double) * 4 * n);
            for (int i = 0; i < n; i++) {
                cs[k].rngs[i] = core->envs[i].rng;
            }
        }
        BenchContext ctx = {n, action_sets, cs};
        double median[3];
        thrust_bench_interleaved(3, BENCH_STEPS, n, bench_step, &ctx, median);
        for (int k = 0; k < 3; k++) {
            printf("%-26s %6.2fM steps/s (median of %d, %d envs)\n", cs[k].name, median[k] / 1e6, thrust_bench_reps, n);
        }
        for (int k = 0; k < 2; k++) {
            printf("ratio core / %s: %.3f\n", cs[k].name, median[2] / median[k]);
            ok &= memcmp(cs[k].b.state, core->b.state, sizeof(double) * 4 * n) == 0
                && memcmp(cs[k].b.observations, core->b.observations, sizeof(float) * 4 * n) == 0;
        }
        printf("all loops end in the same state: %s\n", ok ? "yes" : "NO");
    }
    free(core->envs);
    for (int k = 0; k < 3; k++) {
        buffers_free(&cs[k].b);
        free(cs[k].ticks);
        free(cs[k].rngs);
    }
    free(action_sets);
    free(max_steps);
    return ok ? 0 : 1;
}

int main(int argc, char** argv) {
    return thrust_driver_main(argc, argv, run_check, run_bench, NULL, 0);
}
