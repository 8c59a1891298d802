/* Standalone Walk driver: runs the C core without Python, under the sanitizers.
 *
 *   gcc -std=c99 -Wall -Wextra -Werror -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
 *       -I "$(python -c 'import envs_cython, os; print(os.path.dirname(envs_cython.__file__))')" \
 *       walk/walk_main.c -o walk_main && ./walk_main
 *
 * 64 envs, 1M random agent-steps; after every step it checks what the binding's users rely on: observations in
 * bounds, one of the three rewards, a terminal exactly at the ends, auto-reset to the middle. Exit 0 when all
 * hold. Allocates the buffers Python would own, points one struct per env into them, as walk.pyx does.
 */
#define THRUST_DRIVER "walk_main"
#include "thrust_driver.h"

#include "walk.h"

#define NUM_ENVS 64
#define STEPS (1000000 / NUM_ENVS)
#define LENGTH 8
#define MAX_STEPS 100

int main(void) {
    float* observations = calloc(NUM_ENVS * 2, sizeof(float));
    int32_t* actions = calloc(NUM_ENVS, sizeof(int32_t));
    float* rewards = calloc(NUM_ENVS, sizeof(float));
    unsigned char* terminals = calloc(NUM_ENVS, 1);
    unsigned char* truncations = calloc(NUM_ENVS, 1);
    float* final_observations = calloc(NUM_ENVS * 2, sizeof(float));
    Walk* envs = calloc(NUM_ENVS, sizeof(Walk));
    if (!observations || !actions || !rewards || !terminals || !truncations || !final_observations || !envs) {
        fprintf(stderr, THRUST_DRIVER ": out of memory\n");
        return 1;
    }
    for (int i = 0; i < NUM_ENVS; i++) {
        Walk* env = &envs[i];
        env->observations = &observations[2 * i];
        env->actions = &actions[i];
        env->rewards = &rewards[i];
        env->terminals = &terminals[i];
        env->truncations = &truncations[i];
        env->final_observations = &final_observations[2 * i];
        env->length = LENGTH;
        env->max_steps = MAX_STEPS;
        c_seed(env, (uint64_t)i);
        c_reset(env);
    }
    uint64_t rng = 12345;
    double start = thrust_now_s();
    for (int t = 0; t < STEPS; t++) {
        for (int i = 0; i < NUM_ENVS; i++) {
            actions[i] = (int32_t)(thrust_next_u64(&rng) & 1);
        }
        c_step_all(envs, NUM_ENVS);
        for (int i = 0; i < NUM_ENVS; i++) {
            const float* obs = &observations[2 * i];
            const float* last = &final_observations[2 * i];
            EXPECT(obs[0] >= -1.0f && obs[0] <= 1.0f && (obs[1] == 1.0f || obs[1] == -1.0f), "env %d obs %g %g", i,
                   obs[0], obs[1]);
            EXPECT(rewards[i] == 1.0f || rewards[i] == -1.0f || rewards[i] == WALK_STEP_REWARD, "reward %g",
                   rewards[i]);
            if (terminals[i]) {
                EXPECT(last[0] == 1.0f || last[0] == -1.0f, "env %d terminal away from the ends: %g", i, last[0]);
                EXPECT((rewards[i] > 0) == (last[0] == last[1]), "env %d goal reward %g at %g", i, rewards[i], last[0]);
            } else {
                EXPECT(rewards[i] == WALK_STEP_REWARD, "env %d reward %g without an end", i, rewards[i]);
            }
            if (terminals[i] || truncations[i]) {
                EXPECT(obs[0] == 0.0f && envs[i].tick == 0, "env %d did not reset: %g", i, obs[0]);
            }
        }
    }
    double seconds = thrust_now_s() - start;
    double episodes = 0.0, returns = 0.0;
    for (int i = 0; i < NUM_ENVS; i++) {
        episodes += envs[i].log.n;
        returns += envs[i].log.episode_return;
    }
    EXPECT(episodes > 0, "no episode finished");
    printf(THRUST_DRIVER ": %d agent-steps, %.0f episodes, mean return %.3f, %.1f M steps/s, %d failed checks\n",
           STEPS * NUM_ENVS, episodes, returns / episodes, STEPS * NUM_ENVS / seconds / 1e6, failures);
    free(observations);
    free(actions);
    free(rewards);
    free(terminals);
    free(truncations);
    free(final_observations);
    free(envs);
    return failures ? 1 : 0;
}
