/* CartPole for the browser demo: the unchanged core (envs_cython/cartpole/cartpole.h) and the policy forward pass
 * in one wasm module (the exports and render layout are in demo.h). Agent i of init(N, seed) is env i of
 * envs_cython.cartpole.CartPole(num_envs=N, seed=seed) after its first reset(): seeded seed + i, max_steps 500.
 */
#include "cartpole/cartpole.h"

#define DEMO_OBS_SIZE 4
#define DEMO_NUM_ACTIONS 2
#define DEMO_OBS_INT8 0
#include "demo.h"

static CartPole* envs = NULL;
static double* states = NULL; /* [N, 4] x, x_dot, theta, theta_dot */

static void game_free(void) {
    free(envs);
    free(states);
    envs = NULL;
    states = NULL;
}

static int game_build(int32_t n, uint64_t seed) {
    envs = (CartPole*)calloc((size_t)n, sizeof(CartPole));
    states = (double*)calloc((size_t)n * 4, sizeof(double));
    if (envs == NULL || states == NULL) {
        return 0;
    }
    for (int32_t i = 0; i < n; i++) {
        CartPole* env = &envs[i];
        env->state = &states[4 * i];
        env->observations = &demo_observations[4 * i];
        env->actions = &demo_actions[i];
        env->rewards = &demo_rewards[i];
        env->terminals = &demo_terminals[i];
        env->truncations = &demo_truncations[i];
        env->final_observations = &demo_final_observations[4 * i];
        env->max_steps = CARTPOLE_MAX_STEPS;
        c_seed(env, seed + (uint64_t)i);
    }
    for (int32_t i = 0; i < n; i++) {
        c_reset(&envs[i]);
    }
    return 1;
}

static void game_step(void) {
    c_step_all(envs, demo_n);
}

int render(int agent) {
    if (agent < 0 || agent >= demo_n) {
        return 0;
    }
    demo_render[0] = (float)states[4 * agent];
    demo_render[1] = (float)states[4 * agent + 2];
    demo_render[2] = (float)envs[agent].tick;
    return 3;
}
