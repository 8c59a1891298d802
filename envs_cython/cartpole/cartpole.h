/* CartPole: a header-only C99 core, bit-exact with Gymnasium's CartPole-v1 (gymnasium 1.4.0).
 *
 * One `CartPole` struct per env instance. It owns nothing but its PRNG state, step counter and episode
 * statistics; every array it touches is *borrowed* from buffers the caller (Python) owns:
 *
 *   state              [4] double   x, x_dot, theta, theta_dot (float64, like Gymnasium's self.state)
 *   observations       [4] float    the state cast to float32
 *   actions            [1] int32    0 pushes left (-10 N), 1 pushes right (+10 N)
 *   rewards            [1] float    1.0 on every step, the terminating one included
 *   terminals          [1] uint8    the pole fell or the cart left the track (strict >, on the new state)
 *   truncations        [1] uint8    the episode reached max_steps steps (Gymnasium's TimeLimit: set even
 *                                   when the same step also terminates)
 *   final_observations [4] float    the last observation of the episode that ended this step
 *
 * c_step() and c_step_all() auto-reset: where an episode ends they set the flags, write the last observation
 * to final_observations, draw a new initial state and write its observation to observations.
 *
 * Bit-exactness with Gymnasium needs float64 state, the bracketing below (it is Python's left-to-right
 * order of Gymnasium's expressions), libm sin/cos, no -ffast-math and -ffp-contract=off (gcc fuses
 * multiply-adds otherwise, e.g. with -march=native).
 *
 * Build without Python: see cartpole_main.c.
 */
#ifndef THRUST_CARTPOLE_H
#define THRUST_CARTPOLE_H

#include <math.h>
#include <stdint.h>

#include "../thrust_rng.h"

/* Gymnasium's constants, computed the way Gymnasium computes them (same float64 rounding). */
#define CARTPOLE_GRAVITY 9.8
#define CARTPOLE_MASSCART 1.0
#define CARTPOLE_MASSPOLE 0.1
#define CARTPOLE_TOTAL_MASS (CARTPOLE_MASSPOLE + CARTPOLE_MASSCART)
#define CARTPOLE_LENGTH 0.5 /* half the pole's length */
#define CARTPOLE_POLEMASS_LENGTH (CARTPOLE_MASSPOLE * CARTPOLE_LENGTH)
#define CARTPOLE_FORCE_MAG 10.0
#define CARTPOLE_TAU 0.02
#define CARTPOLE_X_THRESHOLD 2.4
#define CARTPOLE_THETA_THRESHOLD (12 * 2 * 3.141592653589793 / 360) /* 12 * 2 * math.pi / 360 */
#define CARTPOLE_MAX_STEPS 500

/* Episode statistics, summed over the episodes finished since the binding last read and zeroed them. */
typedef struct Log {
    double episode_return;
    double episode_length;
    double n;
} Log;

typedef struct CartPole {
    double* state;
    float* observations;
    const int32_t* actions;
    float* rewards;
    unsigned char* terminals;
    unsigned char* truncations;
    float* final_observations;
    Log log;
    uint64_t rng;  /* splitmix64 state, one stream per env */
    int32_t tick;  /* steps taken in the current episode */
    int32_t max_steps;
} CartPole;

/* Uniform in [-0.05, 0.05): u - 0.5 is exact for u = k * 2^-53, and (0.5 - 2^-53) * 0.1 rounds below 0.05. */
static inline double cartpole_uniform(uint64_t* rng) {
    double u = (double)(thrust_next_u64(rng) >> 11) * 0x1.0p-53;
    return (u - 0.5) * 0.1;
}

/* Seed the env's PRNG with `seed` (the binding passes the object's seed plus the env's index, so env i of
 * an object seeded s and env 0 of an object seeded s + i follow the same trajectory). Draws nothing. */
static inline void c_seed(CartPole* env, uint64_t seed) {
    env->rng = thrust_mix64(seed ^ 0x6A09E667F3BCC909ULL);
}

static inline void cartpole_write_obs(const double* s, float* obs) {
    obs[0] = (float)s[0];
    obs[1] = (float)s[1];
    obs[2] = (float)s[2];
    obs[3] = (float)s[3];
}

/* Start a new episode: draw the state, zero the step counter, write the observation. */
static inline void c_reset(CartPole* env) {
    double* s = env->state;
    s[0] = cartpole_uniform(&env->rng);
    s[1] = cartpole_uniform(&env->rng);
    s[2] = cartpole_uniform(&env->rng);
    s[3] = cartpole_uniform(&env->rng);
    env->tick = 0;
    cartpole_write_obs(s, env->observations);
}

/* Advance one env by one step, given cos and sin of its pole angle: physics, flags, statistics, and the
 * auto-reset where the episode ends. No allocation. */
static inline void cartpole_advance(CartPole* env, double costheta, double sintheta) {
    /* A table lookup, not a branch: random actions would mispredict half the time. */
    static const double forces[2] = {-CARTPOLE_FORCE_MAG, CARTPOLE_FORCE_MAG};
    double* s = env->state;
    double x = s[0], x_dot = s[1], theta = s[2], theta_dot = s[3];
    double force = forces[env->actions[0] == 1];

    /* Gymnasium's expressions, bracketed as Python evaluates them. */
    double temp = (force + CARTPOLE_POLEMASS_LENGTH * (theta_dot * theta_dot) * sintheta) / CARTPOLE_TOTAL_MASS;
    double thetaacc = (CARTPOLE_GRAVITY * sintheta - costheta * temp)
        / (CARTPOLE_LENGTH * (4.0 / 3.0 - CARTPOLE_MASSPOLE * (costheta * costheta) / CARTPOLE_TOTAL_MASS));
    double xacc = temp - CARTPOLE_POLEMASS_LENGTH * thetaacc * costheta / CARTPOLE_TOTAL_MASS;

    /* Explicit Euler: positions move with the old velocities. */
    x = x + CARTPOLE_TAU * x_dot;
    x_dot = x_dot + CARTPOLE_TAU * xacc;
    theta = theta + CARTPOLE_TAU * theta_dot;
    theta_dot = theta_dot + CARTPOLE_TAU * thetaacc;

    /* Non-short-circuit | avoids a branch per comparison; NaN compares false, as in Gymnasium. */
    int terminal = (x < -CARTPOLE_X_THRESHOLD) | (x > CARTPOLE_X_THRESHOLD)
        | (theta < -CARTPOLE_THETA_THRESHOLD) | (theta > CARTPOLE_THETA_THRESHOLD);
    int32_t tick = env->tick + 1;
    int truncation = tick >= env->max_steps;
    env->rewards[0] = 1.0f;
    env->terminals[0] = (unsigned char)terminal;
    env->truncations[0] = (unsigned char)truncation;

    if (terminal | truncation) {
        /* Reward is 1.0 on every step, so the return equals the length. */
        env->log.episode_return += (double)tick;
        env->log.episode_length += (double)tick;
        env->log.n += 1.0;
        float* final_obs = env->final_observations;
        final_obs[0] = (float)x;
        final_obs[1] = (float)x_dot;
        final_obs[2] = (float)theta;
        final_obs[3] = (float)theta_dot;
        x = cartpole_uniform(&env->rng);
        x_dot = cartpole_uniform(&env->rng);
        theta = cartpole_uniform(&env->rng);
        theta_dot = cartpole_uniform(&env->rng);
        tick = 0;
    }
    env->tick = tick;
    s[0] = x;
    s[1] = x_dot;
    s[2] = theta;
    s[3] = theta_dot;
    cartpole_write_obs(s, env->observations);
}

/* Step one env with its action; auto-reset where the episode ends. */
static inline void c_step(CartPole* env) {
    double theta = env->state[2];
    cartpole_advance(env, cos(theta), sin(theta));
}

#define CARTPOLE_CHUNK 32

/* Step envs[0..n) once each, in one call. Same results as c_step on each env, faster: per chunk, first all the
 * libm calls (gcc merges each cos/sin pair into one sincos), then the arithmetic. Kept apart, the arithmetic
 * loop holds its constants in registers, which every libm call would clobber (all xmm registers are
 * caller-saved on x86-64). */
static inline void c_step_all(CartPole* envs, int n) {
    double costheta[CARTPOLE_CHUNK], sintheta[CARTPOLE_CHUNK];
    for (int start = 0; start < n; start += CARTPOLE_CHUNK) {
        int m = n - start < CARTPOLE_CHUNK ? n - start : CARTPOLE_CHUNK;
        CartPole* chunk = &envs[start];
        for (int j = 0; j < m; j++) {
            double theta = chunk[j].state[2];
            costheta[j] = cos(theta);
            sintheta[j] = sin(theta);
        }
        for (int j = 0; j < m; j++) {
            cartpole_advance(&chunk[j], costheta[j], sintheta[j]);
        }
    }
}

#endif /* THRUST_CARTPOLE_H */
