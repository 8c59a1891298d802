/* Asteroids as a wasm32 reactor module: the unchanged C core (asteroids.h) over static buffers, for the browser
 * and for the native/wasm parity test (tests/unit/test_asteroids_wasm.py). Named *_main.c, as the entry file of
 * its build, so that .gitignore keeps it (every other .c under envs_cython/ is Cython output).
 *
 *   python -m ziglang cc --target=wasm32-wasi -mexec-model=reactor -O2 -ffp-contract=off -Wl,--no-entry \
 *       -Wl,--export=init -Wl,--export=step -Wl,--export=state_ptr -Wl,--export=observations_ptr \
 *       -Wl,--export=actions_ptr -Wl,--export=rewards_ptr -Wl,--export=terminals_ptr \
 *       -Wl,--export=truncations_ptr -Wl,--export=final_observations_ptr \
 *       -o asteroids.wasm envs_cython/asteroids/asteroids_wasm_main.c
 *
 * The module exports `memory` and `_initialize` (call it once); then init(n, seed, max_steps, num_lives) builds n
 * envs seeded seed + i, exactly as the Python class does (so env i follows the native env i bit for bit), and
 * step() steps them all with the int32 actions the host wrote at actions_ptr(). The buffers have the native
 * layout: observations [n, ASTEROIDS_OBS_SIZE] float32, rewards [n] float32, flags [n] uint8, states [n]
 * AsteroidsState.
 */
#include "asteroids.h"

#define WASM_MAX_ENVS 64

static Asteroids envs[WASM_MAX_ENVS];
static AsteroidsState states[WASM_MAX_ENVS];
static float observations[WASM_MAX_ENVS * ASTEROIDS_OBS_SIZE];
static float final_observations[WASM_MAX_ENVS * ASTEROIDS_OBS_SIZE];
static int32_t actions[WASM_MAX_ENVS];
static float rewards[WASM_MAX_ENVS];
static unsigned char terminals[WASM_MAX_ENVS];
static unsigned char truncations[WASM_MAX_ENVS];
static int num_envs = 0;

/* Build n envs (1..WASM_MAX_ENVS) seeded seed + i and reset them; 0 (and nothing built) for a bad argument. */
int init(int n, uint64_t seed, int max_steps, int num_lives) {
    if (n < 1 || n > WASM_MAX_ENVS || max_steps < 1 || num_lives < 1) {
        return 0;
    }
    num_envs = n;
    for (int i = 0; i < n; i++) {
        Asteroids* env = &envs[i];
        *env = (Asteroids){0};
        env->state = &states[i];
        env->observations = &observations[i * ASTEROIDS_OBS_SIZE];
        env->actions = &actions[i];
        env->rewards = &rewards[i];
        env->terminals = &terminals[i];
        env->truncations = &truncations[i];
        env->final_observations = &final_observations[i * ASTEROIDS_OBS_SIZE];
        env->max_steps = max_steps;
        env->num_lives = num_lives;
        c_seed(env, seed + (uint64_t)i);
        c_reset(env);
    }
    return 1;
}

void step(void) {
    c_step_all(envs, num_envs);
}

AsteroidsState* state_ptr(void) {
    return states;
}

float* observations_ptr(void) {
    return observations;
}

int32_t* actions_ptr(void) {
    return actions;
}

float* rewards_ptr(void) {
    return rewards;
}

unsigned char* terminals_ptr(void) {
    return terminals;
}

unsigned char* truncations_ptr(void) {
    return truncations;
}

float* final_observations_ptr(void) {
    return final_observations;
}
