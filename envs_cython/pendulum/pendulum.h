/* Pendulum: a header-only C99 core, bit-exact with Gymnasium's Pendulum-v1 (gymnasium 1.4.0, NumPy 2).
 *
 * One `Pendulum` struct per env instance. It owns nothing but its PRNG state, step counter, running return
 * and episode statistics; every array it touches is *borrowed* from buffers the caller (Python) owns:
 *
 *   state              [2] double   th, thdot (float64, like Gymnasium's self.state; th is not wrapped)
 *   observations       [3] float    cos th, sin th, thdot, computed in float64 and cast to float32
 *   actions            [1] float    torque u, clipped to [-2, 2] (positive is counter-clockwise)
 *   rewards            [1] float    -(angle_normalize(th)^2 + 0.1 thdot^2 + 0.001 u^2) of the state *before*
 *                                   the step and the clipped torque; computed in float64, cast to float32
 *   terminals          [1] uint8    always 0: the pendulum never terminates
 *   truncations        [1] uint8    the episode reached max_steps steps (Gymnasium's TimeLimit: 200)
 *   final_observations [3] float    the last observation of the episode that ended this step
 *
 * c_step() and c_step_all() auto-reset: where an episode ends they set the flag, write the last observation
 * to final_observations, draw a new initial state and write its observation to observations.
 *
 * Bit-exactness with Gymnasium means following NumPy's types step by step (Gymnasium computes with NumPy
 * scalars):
 *   - np.clip of the float32 action leaves u a float32 scalar, and under NumPy 2's promotion rules (NEP 50) a
 *     Python float times a float32 scalar is a float32 product: `0.001 * (u**2)` and `3.0 / (m * l**2) * u` are
 *     float32 multiplications by the constant rounded to float32, widened to float64 only where they meet a
 *     float64 term.
 *   - `x**2` of a NumPy scalar is libm pow(x, 2.0) (powf(u, 2.0f) for u), which glibc does not always round
 *     like x * x (about 1 argument in 1,500 differs by an ulp). gcc folds pow(x, 2.0) into x * x even without
 *     -ffast-math, so the exponent is read through a volatile. For u the difference shows in the reward; for the
 *     float64 terms only in the float64 cost, which the float32 reward almost never reveals, but the cost stays
 *     Gymnasium's. The two pow calls take a third of the step's throughput (docs/envs.md).
 *   - Python's float `%` in angle_normalize (NumPy's remainder) is fmod plus a sign fix-up.
 *   - The bracketing below is Python's left-to-right order; sin/cos/pow/powf/fmod are the libm functions NumPy
 *     calls; no -ffast-math, and -ffp-contract=off.
 *
 * Build without Python: see pendulum_main.c.
 */
#ifndef THRUST_PENDULUM_H
#define THRUST_PENDULUM_H

#include <math.h>
#include <stdint.h>

#include "../thrust_rng.h"

/* Gymnasium's constants. */
#define PENDULUM_PI 3.141592653589793 /* np.pi */
#define PENDULUM_G 10.0               /* default gravity (Pendulum-v1's g) */
#define PENDULUM_M 1.0
#define PENDULUM_L 1.0
#define PENDULUM_DT 0.05
#define PENDULUM_MAX_SPEED 8.0  /* np.clip(newthdot, -8, 8) */
#define PENDULUM_MAX_TORQUE 2.0f /* np.clip of a float32 action: float32 bounds */
#define PENDULUM_RESET_THDOT 1.0 /* reset: th ~ U(-pi, pi), thdot ~ U(-1, 1) */
#define PENDULUM_MAX_STEPS 200

/* Episode statistics, summed over the episodes finished since the binding last read and zeroed them. */
typedef struct Log {
    double episode_return;
    double episode_length;
    double n;
} Log;

typedef struct Pendulum {
    double* state;
    float* observations;
    const float* actions;
    float* rewards;
    unsigned char* terminals;
    unsigned char* truncations;
    float* final_observations;
    Log log;
    uint64_t rng;          /* splitmix64 state, one stream per env */
    double episode_return; /* sum of the float32 rewards of the current episode */
    double g;              /* gravity */
    int32_t tick;          /* steps taken in the current episode */
    int32_t max_steps;
} Pendulum;

/* The exponent of Gymnasium's `x**2`, opaque to the compiler so that pow(x, 2.0) stays a libm call. */
static volatile double pendulum_two = 2.0;
static volatile float pendulum_two_f = 2.0f;

/* Uniform in [-high, high): 2u - 1 is exact for u = k * 2^-53, and (1 - 2^-52) * high rounds below high for
 * high = 1 and high = pi. */
static inline double pendulum_uniform(uint64_t* rng, double high) {
    double u = (double)(thrust_next_u64(rng) >> 11) * 0x1.0p-53;
    return (2.0 * u - 1.0) * high;
}

/* Gymnasium's angle_normalize: ((x + pi) % (2 * pi)) - pi, with Python's (and NumPy's) floor-mod. */
static inline double pendulum_angle_normalize(double x) {
    const double two_pi = 2.0 * PENDULUM_PI;
    double mod = fmod(x + PENDULUM_PI, two_pi);
    if (mod != 0.0) {
        if (mod < 0.0) { /* the divisor is positive: the remainder takes its sign */
            mod += two_pi;
        }
    } else {
        mod = 0.0; /* copysign(0, 2 pi) */
    }
    return mod - PENDULUM_PI;
}

/* Seed the env's PRNG with `seed` (the binding passes the object's seed plus the env's index, so env i of
 * an object seeded s and env 0 of an object seeded s + i follow the same trajectory). Draws nothing. */
static inline void c_seed(Pendulum* env, uint64_t seed) {
    env->rng = thrust_mix64(seed ^ 0x510E527FADE682D1ULL);
}

/* Gymnasium's _get_obs: np.array([np.cos(th), np.sin(th), thdot], dtype=np.float32). */
static inline void pendulum_write_obs(double th, double thdot, float* obs) {
    obs[0] = (float)cos(th);
    obs[1] = (float)sin(th);
    obs[2] = (float)thdot;
}

/* Start a new episode: draw the state, zero the counters, write the observation. */
static inline void c_reset(Pendulum* env) {
    double* s = env->state;
    s[0] = pendulum_uniform(&env->rng, PENDULUM_PI);
    s[1] = pendulum_uniform(&env->rng, PENDULUM_RESET_THDOT);
    env->tick = 0;
    env->episode_return = 0.0;
    pendulum_write_obs(s[0], s[1], env->observations);
}

/* Step one env with its action: physics, reward, flags, statistics, and the auto-reset where the episode
 * ends. No allocation. */
static inline void c_step(Pendulum* env) {
    double* s = env->state;
    double th = s[0], thdot = s[1];
    const double two = pendulum_two;
    const float two_f = pendulum_two_f;

    /* u = np.clip(u, -max_torque, max_torque)[0]: a float32; NaN passes through, as in np.clip. */
    float u = env->actions[0];
    u = u < -PENDULUM_MAX_TORQUE ? -PENDULUM_MAX_TORQUE : (u > PENDULUM_MAX_TORQUE ? PENDULUM_MAX_TORQUE : u);

    /* costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2); the last term is float32. */
    float torque_cost = (float)0.001 * powf(u, two_f);
    double costs = pow(pendulum_angle_normalize(th), two) + 0.1 * pow(thdot, two) + (double)torque_cost;

    /* newthdot = thdot + (3 * g / (2 * l) * np.sin(th) + 3.0 / (m * l**2) * u) * dt; the u term is float32. */
    float torque_acc = (float)(3.0 / (PENDULUM_M * (PENDULUM_L * PENDULUM_L))) * u;
    double newthdot = thdot + (3.0 * env->g / (2.0 * PENDULUM_L) * sin(th) + (double)torque_acc) * PENDULUM_DT;
    /* np.clip(newthdot, -max_speed, max_speed); NaN passes through. */
    newthdot = newthdot < -PENDULUM_MAX_SPEED ? -PENDULUM_MAX_SPEED
        : (newthdot > PENDULUM_MAX_SPEED ? PENDULUM_MAX_SPEED : newthdot);
    double newth = th + newthdot * PENDULUM_DT;

    float reward = (float)(-costs);
    int32_t tick = env->tick + 1;
    int truncation = tick >= env->max_steps;
    env->rewards[0] = reward;
    env->terminals[0] = 0;
    env->truncations[0] = (unsigned char)truncation;
    env->episode_return += (double)reward;

    if (truncation) {
        env->log.episode_return += env->episode_return;
        env->log.episode_length += (double)tick;
        env->log.n += 1.0;
        pendulum_write_obs(newth, newthdot, env->final_observations);
        c_reset(env);
        return;
    }
    env->tick = tick;
    s[0] = newth;
    s[1] = newthdot;
    pendulum_write_obs(newth, newthdot, env->observations);
}

/* Step envs[0..n) once each, in one call. */
static inline void c_step_all(Pendulum* envs, int n) {
    for (int i = 0; i < n; i++) {
        c_step(&envs[i]);
    }
}

#endif /* THRUST_PENDULUM_H */
