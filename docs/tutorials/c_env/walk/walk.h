/* Walk: a 1-D corridor, the smallest C env of Thrust's tutorials (docs/tutorials/c-env.md).
 *
 * The corridor has cells -length .. +length. Each episode the agent starts in cell 0 and the goal is drawn at
 * one end (+length or -length), a pit at the other. The agent sees where it is and which end is the goal, and
 * steps left (action 0) or right (any other action).
 *
 *   observations       [2] float    position / length in [-1, 1], goal side (-1 or +1)
 *   actions            [1] int32    0: left, otherwise right
 *   rewards            [1] float    +1 on reaching the goal, -1 on falling into the pit, -0.01 on every other step
 *   terminals          [1] uint8    the agent reached either end
 *   truncations        [1] uint8    the episode reached max_steps steps
 *   final_observations [2] float    the last observation of the episode that ended this step
 *
 * One `Walk` struct per env. It owns its PRNG state and counters; every array is *borrowed* from buffers
 * Python owns. c_step() auto-resets: where an episode ends it sets the flags, writes the last observation to
 * final_observations and the next episode's first observation to observations. No allocation anywhere.
 */
#ifndef WALK_H
#define WALK_H

#include <stdint.h>

#include "thrust_rng.h" /* splitmix64, shipped in envs_cython/ */

#define WALK_STEP_REWARD -0.01f

/* Episode statistics, summed over the episodes finished since the binding last read and zeroed them. The
 * binding reads the struct as an array of doubles, so the episode count `n` comes last. */
typedef struct Log {
    double episode_return;
    double episode_length;
    double n;
} Log;

typedef struct Walk {
    float* observations;
    const int32_t* actions;
    float* rewards;
    unsigned char* terminals;
    unsigned char* truncations;
    float* final_observations;
    Log log;
    uint64_t rng;          /* splitmix64 state, one stream per env */
    double episode_return; /* sum of the rewards of the current episode */
    int32_t position;      /* -length .. +length */
    int32_t goal;          /* -1 or +1: the end that pays */
    int32_t tick;          /* steps taken in the current episode */
    int32_t length;
    int32_t max_steps;
} Walk;

/* Seed the env's PRNG (the binding passes the object's seed plus the env's index). Draws nothing. */
static inline void c_seed(Walk* env, uint64_t seed) {
    env->rng = thrust_mix64(seed ^ 0x57A1C0FFEE5EED00ULL);
}

static inline void walk_write_obs(const Walk* env, float* obs) {
    obs[0] = (float)env->position / (float)env->length;
    obs[1] = (float)env->goal;
}

/* Start a new episode: draw the goal's side, put the agent in the middle, write the observation. */
static inline void c_reset(Walk* env) {
    env->goal = (thrust_next_u64(&env->rng) >> 63) ? 1 : -1;
    env->position = 0;
    env->tick = 0;
    env->episode_return = 0.0;
    walk_write_obs(env, env->observations);
}

/* Step one env with its action: move, reward, flags, statistics, and the auto-reset where the episode ends. */
static inline void c_step(Walk* env) {
    env->position += env->actions[0] == 0 ? -1 : 1;
    env->tick += 1;
    int at_end = env->position == env->length || env->position == -env->length;
    float reward = at_end ? (env->position * env->goal > 0 ? 1.0f : -1.0f) : WALK_STEP_REWARD;
    int truncation = env->tick >= env->max_steps;
    env->rewards[0] = reward;
    env->terminals[0] = (unsigned char)at_end;
    env->truncations[0] = (unsigned char)truncation;
    env->episode_return += (double)reward;
    if (at_end || truncation) {
        env->log.episode_return += env->episode_return;
        env->log.episode_length += (double)env->tick;
        env->log.n += 1.0;
        walk_write_obs(env, env->final_observations);
        c_reset(env);
        return;
    }
    walk_write_obs(env, env->observations);
}

/* Step envs[0..n) once each, in one call (the binding runs it without the GIL). */
static inline void c_step_all(Walk* envs, int n) {
    for (int i = 0; i < n; i++) {
        c_step(&envs[i]);
    }
}

#endif /* WALK_H */
