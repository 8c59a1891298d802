/* Asteroids for the browser demo: the unchanged core (envs_cython/asteroids/asteroids.h) and the policy forward
 * pass in one wasm module (the exports and render layout are in demo.h). Agent i of init(N, seed) is field i of
 * envs_cython.asteroids.Asteroids(num_envs=N, seed=seed): seeded seed + i, max_steps 4500, 3 lives.
 */
#include "asteroids/asteroids.h"

#define DEMO_OBS_SIZE ASTEROIDS_OBS_SIZE
#define DEMO_NUM_ACTIONS ASTEROIDS_NUM_ACTIONS
#define DEMO_OBS_INT8 0
#include "demo.h"

#define DEMO_MAX_STEPS 4500
#define DEMO_NUM_LIVES 3
#define DEMO_TWO_PI 6.28318530717958647692f

static Asteroids* envs = NULL;
static AsteroidsState* states = NULL;

static void game_free(void) {
    free(envs);
    free(states);
    envs = NULL;
    states = NULL;
}

static int game_build(int32_t n, uint64_t seed) {
    envs = (Asteroids*)calloc((size_t)n, sizeof(Asteroids));
    states = (AsteroidsState*)calloc((size_t)n, sizeof(AsteroidsState));
    if (envs == NULL || states == NULL) {
        return 0;
    }
    for (int32_t i = 0; i < n; i++) {
        Asteroids* env = &envs[i];
        env->state = &states[i];
        env->observations = &demo_observations[(size_t)i * ASTEROIDS_OBS_SIZE];
        env->actions = &demo_actions[i];
        env->rewards = &demo_rewards[i];
        env->terminals = &demo_terminals[i];
        env->truncations = &demo_truncations[i];
        env->final_observations = &demo_final_observations[(size_t)i * ASTEROIDS_OBS_SIZE];
        env->max_steps = DEMO_MAX_STEPS;
        env->num_lives = DEMO_NUM_LIVES;
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

/* Field i in canvas coordinates (demo.h: y down, angles clockwise on screen). */
int render(int agent) {
    if (agent < 0 || agent >= demo_n) {
        return 0;
    }
    const AsteroidsState* s = &states[agent];
    float* out = demo_render;
    int32_t k = 0;
    out[k++] = s->ship_x;
    out[k++] = ASTEROIDS_HEIGHT - s->ship_y;
    out[k++] = (float)((ASTEROIDS_HEADINGS - (s->heading & (ASTEROIDS_HEADINGS - 1))) & (ASTEROIDS_HEADINGS - 1))
        * (DEMO_TWO_PI / (float)ASTEROIDS_HEADINGS);
    out[k++] = s->thrusting ? 1.0f : 0.0f;
    out[k++] = s->invulnerable > 0 ? 1.0f : 0.0f;
    out[k++] = (float)s->lives;
    out[k++] = (float)s->score;
    out[k++] = (float)s->wave;
    const int32_t num_rocks = asteroids_count(s);
    out[k++] = (float)num_rocks;
    for (int32_t j = 0; j < num_rocks; j++) {
        const AsteroidsRock* rock = &s->rocks[j];
        const float spin = (rock->shape & 1 ? 0.01f : -0.01f) * (float)(1 + (rock->shape >> 1));
        out[k++] = rock->x;
        out[k++] = ASTEROIDS_HEIGHT - rock->y;
        out[k++] = asteroids_radius[rock->size & 3];
        out[k++] = (float)rock->shape;
        out[k++] = fmodf(atan2f(-rock->vy, rock->vx) + spin * (float)s->tick, DEMO_TWO_PI);
    }
    int32_t num_bullets = 0;
    for (int32_t b = 0; b < ASTEROIDS_MAX_BULLETS; b++) {
        num_bullets += s->bullets[b].life > 0;
    }
    out[k++] = (float)num_bullets;
    for (int32_t b = 0; b < ASTEROIDS_MAX_BULLETS; b++) {
        if (s->bullets[b].life > 0) {
            out[k++] = s->bullets[b].x;
            out[k++] = ASTEROIDS_HEIGHT - s->bullets[b].y;
        }
    }
    return k;
}
