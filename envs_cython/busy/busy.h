/* Busy: a test env whose cost per step is a parameter, for benchmarking vectorizers.
 *
 * Every step spends `work` iterations of a dependent integer chain (multiply, xor-shift: about 1.5 ns each on
 * a 2020s x86 core, and no compiler can skip or vectorise it, since each iteration needs the previous one and
 * the result is stored), then writes a pseudo-random observation drawn from the env's own PRNG. So a step of
 * N envs costs about N * work * 1.5 ns, and trajectories are a deterministic function of the seed, the actions
 * and the parameters.
 *
 * One `Busy` struct per env instance; the arrays it touches are *borrowed* from buffers the caller owns:
 *
 *   observations       [obs_dim] float  uniform in [-1, 1) from the env's PRNG
 *   actions            [1] int32        Discrete(2)
 *   rewards            [1] float        1.0 when the action equals the sign bit of the previous observation's
 *                                       first component (obs[0] >= 0 -> 1), else 0.0: learnable, cheap
 *   terminals          [1] uint8        a hazard of 1/64 per step, drawn from the PRNG
 *   truncations        [1] uint8        the episode reached max_steps steps (set even when it also terminates)
 *   final_observations [obs_dim] float  the last observation of the episode that ended this step
 *
 * c_step() auto-resets: where an episode ends it sets the flags, copies the observation to final_observations
 * and writes the first observation of the next episode.
 *
 * Build without Python: see busy_main.c.
 */
#ifndef THRUST_BUSY_H
#define THRUST_BUSY_H

#include <stdint.h>

#include "../thrust_rng.h"

/* Episode statistics, summed over the episodes finished since the binding last read and zeroed them. */
typedef struct Log {
    double episode_return;
    double episode_length;
    double n;
} Log;

typedef struct Busy {
    float* observations;
    const int32_t* actions;
    float* rewards;
    unsigned char* terminals;
    unsigned char* truncations;
    float* final_observations;
    Log log;
    uint64_t rng;    /* splitmix64 state, one stream per env */
    uint64_t sink;   /* result of the busy chain: stored, so the compiler must compute it */
    double episode_return;
    int32_t tick;    /* steps taken in the current episode */
    int32_t max_steps;
    int32_t obs_dim;
    int32_t work;    /* iterations of the busy chain per step */
} Busy;

/* Uniform in [-1, 1): k * 2^-23 - 1 for k in [0, 2^24), exact in float32. */
static inline float busy_uniform(uint64_t* rng) {
    return (float)(thrust_next_u64(rng) >> 40) * 0x1.0p-23f - 1.0f;
}

/* Seed the env's PRNG (the binding passes the object's seed plus the env's index) and clear its busy chain.
 * Draws nothing. */
static inline void c_seed(Busy* env, uint64_t seed) {
    env->rng = thrust_mix64(seed ^ 0x3C6EF372FE94F82BULL);
    env->sink = 0;
}

static inline void busy_write_obs(Busy* env) {
    for (int32_t j = 0; j < env->obs_dim; j++) {
        env->observations[j] = busy_uniform(&env->rng);
    }
}

/* Start a new episode: zero the counters, write the first observation. */
static inline void c_reset(Busy* env) {
    env->tick = 0;
    env->episode_return = 0.0;
    busy_write_obs(env);
}

/* Advance one env by one step; auto-reset where the episode ends. No allocation. */
static inline void c_step(Busy* env) {
    /* The configurable cost: a dependent chain the compiler can neither drop nor vectorise. */
    uint64_t h = env->sink ^ env->rng;
    for (int32_t i = 0; i < env->work; i++) {
        h = (h ^ (h >> 29)) * 0xBF58476D1CE4E5B9ULL;
    }
    env->sink = h;

    int32_t target = env->observations[0] >= 0.0f;
    float reward = env->actions[0] == target ? 1.0f : 0.0f;
    int terminal = (thrust_next_u64(&env->rng) >> 58) == 0; /* top 6 bits zero: probability 1/64 */
    int32_t tick = env->tick + 1;
    int truncation = tick >= env->max_steps;
    env->rewards[0] = reward;
    env->terminals[0] = (unsigned char)terminal;
    env->truncations[0] = (unsigned char)truncation;
    env->episode_return += (double)reward;
    env->tick = tick;
    if (terminal | truncation) {
        env->log.episode_return += env->episode_return;
        env->log.episode_length += (double)tick;
        env->log.n += 1.0;
        for (int32_t j = 0; j < env->obs_dim; j++) {
            env->final_observations[j] = busy_uniform(&env->rng);
        }
        c_reset(env);
    } else {
        busy_write_obs(env);
    }
}

/* Step envs[0..n) once each, in one call (the entry point every binding uses). */
static inline void c_step_all(Busy* envs, int n) {
    for (int i = 0; i < n; i++) {
        c_step(&envs[i]);
    }
}

#endif /* THRUST_BUSY_H */
