/* Snake for the browser demo: the unchanged core (envs_cython/snake/snake.h) and the policy forward pass in one
 * wasm module (the exports, render layout and cell codes are in demo.h). init(N, seed) builds ONE board shared by
 * the N snakes, as envs_cython.snake.Snake(num_envs=1, num_snakes=N, width=W, height=W, num_food=2 N, vision=5,
 * max_steps=1000, seed=seed) with W = max(16, ceil(sqrt(64 N))) (128 for 256 snakes, as in training): the same
 * padded grid (W + 10)^2, seeded seed, reset once (as the class's constructor does).
 */
#include "snake/snake.h"

#define DEMO_VISION 5
#define DEMO_SIDE (2 * DEMO_VISION + 1)
#define DEMO_OBS_SIZE (DEMO_SIDE * DEMO_SIDE)
#define DEMO_NUM_ACTIONS 4
#define DEMO_OBS_INT8 1
#include "demo.h"

#define DEMO_MAX_STEPS 1000

static Snake board;
static int8_t* grid = NULL;
static uint8_t* cell_dirs = NULL;
static SnakeAgent* agents = NULL;
static int32_t* ended = NULL;

/* max(16, ceil(sqrt(64 n))) without floating point */
static int32_t demo_width(int32_t n) {
    int32_t w = 16;
    while ((int64_t)w * w < (int64_t)64 * n) {
        w++;
    }
    return w;
}

static void game_free(void) {
    free(grid);
    free(cell_dirs);
    free(agents);
    free(ended);
    grid = NULL;
    cell_dirs = NULL;
    agents = NULL;
    ended = NULL;
}

static int game_build(int32_t n, uint64_t seed) {
    const int32_t w = demo_width(n), stride = w + 2 * DEMO_VISION;
    const size_t cells = (size_t)stride * (size_t)stride;
    grid = (int8_t*)calloc(cells, 1);
    cell_dirs = (uint8_t*)calloc(cells, 1);
    agents = (SnakeAgent*)calloc((size_t)n, sizeof(SnakeAgent));
    ended = (int32_t*)calloc((size_t)n, sizeof(int32_t));
    if (grid == NULL || cell_dirs == NULL || agents == NULL || ended == NULL) {
        return 0;
    }
    board = (Snake){0};
    board.grid = grid;
    board.cell_dirs = cell_dirs;
    board.observations = demo_observations;
    board.actions = demo_actions;
    board.rewards = demo_rewards;
    board.terminals = demo_terminals;
    board.truncations = demo_truncations;
    board.final_observations = demo_final_observations;
    board.agents = agents;
    board.ended = ended;
    board.width = w;
    board.height = w;
    board.vision = DEMO_VISION;
    board.stride = stride;
    board.num_snakes = n;
    board.num_food = 2 * n;
    board.max_steps = DEMO_MAX_STEPS;
    board.reward_food = 1.0f;
    board.reward_death = -1.0f;
    board.reward_step = 0.0f;
    c_seed(&board, seed);
    c_reset(&board);
    return 1;
}

static void game_step(void) {
    c_step_all(&board, 1);
}

int8_t* grid_ptr(void) {
    return grid;
}

int grid_width(void) {
    return demo_n > 0 ? board.stride : 0;
}

int grid_height(void) {
    return demo_n > 0 ? board.height + 2 * DEMO_VISION : 0;
}

int grid_pad(void) {
    return DEMO_VISION;
}

/* [head_row, head_col, length, direction] of snake `agent`, in padded-grid coordinates. */
int render(int agent) {
    if (agent < 0 || agent >= demo_n) {
        return 0;
    }
    const SnakeAgent* a = &agents[agent];
    demo_render[0] = (float)(a->head / board.stride);
    demo_render[1] = (float)(a->head % board.stride);
    demo_render[2] = (float)a->length;
    demo_render[3] = (float)a->dir;
    return 4;
}
