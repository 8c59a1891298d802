/* Snake: many snakes share one board; a header-only C99 core, one `Snake` struct per board.
 *
 * The board is `height` x `width` playable cells surrounded by walls. It is stored as a grid of int8 cell codes
 * padded by `vision` wall cells on every side, so that the egocentric (2 * vision + 1)^2 window of any playable
 * cell lies inside the array: an observation is `side` memcpy's of `side` bytes, with no bounds checks.
 *
 *   cell codes         EMPTY 0, WALL 1, FOOD 2, BODY 3 (any snake's body), HEAD 4 (any snake's head)
 *   actions            absolute directions: 0 up (row - 1), 1 down, 2 left (column - 1), 3 right; a value a is
 *                      read as a & 3. Reversing into the neck (the opposite of the last move, length >= 2) is
 *                      ignored: the snake keeps its direction.
 *
 * Every array the core touches is *borrowed* from buffers the caller (Python) owns:
 *
 *   grid               [(height + 2 vision) * stride] int8   stride = width + 2 vision
 *   cell_dirs          [same] uint8   for a body cell, the direction of the next cell toward the head: the
 *                                     body is a linked list threaded through the grid (no length cap, O(1) moves)
 *   observations       [num_snakes * side * side] int8   the window centred on each snake's head
 *   actions            [num_snakes] int32
 *   rewards            [num_snakes] float   reward_step, plus reward_food for eating, plus reward_death for dying
 *   terminals          [num_snakes] uint8   the snake hit a wall, a body or a head
 *   truncations        [num_snakes] uint8   the episode reached max_steps steps (also set when it dies then)
 *   final_observations [num_snakes * side * side] int8   see "Step" below
 *   agents, ended      [num_snakes] per-snake state and scratch, allocated by the binding
 *
 * Step (c_step), in this order; every choice is deterministic given the seed and the actions:
 *   1. Snakes move one at a time in agent order; each sees the board as the lower-indexed snakes left it. A
 *      snake moving onto food grows by one (its tail stays) and the food is gone; onto an empty cell, or onto
 *      its own tail cell (which moves away in the same step), it moves; onto anything else it dies and does not
 *      move: its body stays on the board, as an obstacle, until phase 2.
 *   2. For each snake whose episode ended (died or truncated), in agent order: its final observation is the
 *      window centred on its head, with every ended snake still on the board. Then the bodies of all ended
 *      snakes are removed, and each respawns, in agent order, as a length-1 snake at a random empty cell.
 *   3. Eaten food respawns at random empty cells (num_food stay on the board while there is room).
 *   4. Every snake's observation is written.
 * A random empty cell: up to SNAKE_SPAWN_TRIES uniform draws of a playable cell, then a row-major scan
 * (wrapping) from the last cell drawn. A respawn always finds one: the ended snakes' own cells were freed.
 *
 * Build without Python: see snake_main.c.
 */
#ifndef THRUST_SNAKE_H
#define THRUST_SNAKE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../thrust_rng.h"

#define SNAKE_EMPTY 0
#define SNAKE_WALL 1
#define SNAKE_FOOD 2
#define SNAKE_BODY 3
#define SNAKE_HEAD 4
#define SNAKE_MAX_CODE SNAKE_HEAD

#define SNAKE_UP 0
#define SNAKE_DOWN 1
#define SNAKE_LEFT 2
#define SNAKE_RIGHT 3 /* the opposite of direction d is d ^ 1 */

#define SNAKE_SPAWN_TRIES 64

/* Episode statistics, summed over the episodes finished since the binding last read and zeroed them. */
typedef struct Log {
    double episode_return;
    double episode_length;
    double food_eaten;
    double n;
} Log;

/* One snake. Cells are indices into the padded grid. */
typedef struct SnakeAgent {
    double episode_return;
    int32_t head;
    int32_t tail;
    int32_t length;
    int32_t tick;       /* steps taken in the current episode */
    int32_t food_eaten; /* in the current episode */
    int32_t dir;        /* direction of the last move (meaningful once length >= 2) */
} SnakeAgent;

/* One board and its snakes. */
typedef struct Snake {
    int8_t* grid;
    uint8_t* cell_dirs;
    int8_t* observations;
    const int32_t* actions;
    float* rewards;
    unsigned char* terminals;
    unsigned char* truncations;
    int8_t* final_observations;
    SnakeAgent* agents;
    int32_t* ended;
    Log log;
    uint64_t rng; /* splitmix64 state, one stream per board */
    int32_t width;
    int32_t height;
    int32_t vision;
    int32_t stride; /* width + 2 * vision */
    int32_t num_snakes;
    int32_t num_food;
    int32_t food_deficit; /* food eaten and not yet respawned */
    int32_t max_steps;
    float reward_food;
    float reward_death;
    float reward_step;
} Snake;

/* Seed the board's PRNG (the binding passes the object's seed plus the board's index). Draws nothing. */
static inline void c_seed(Snake* env, uint64_t seed) {
    env->rng = thrust_mix64(seed ^ 0xA54FF53A5F1D36F1ULL);
}

/* Index in the padded grid of playable cell (row, col). */
static inline int32_t snake_cell(const Snake* env, int32_t row, int32_t col) {
    return (row + env->vision) * env->stride + col + env->vision;
}

/* Copy the (2 * vision + 1)^2 window centred on grid cell `center` to `out`. The padding keeps it in bounds. */
static inline void snake_window(const Snake* env, int32_t center, int8_t* out) {
    const int32_t vision = env->vision, stride = env->stride;
    const int8_t* src = env->grid + center - vision * stride - vision;
    if (vision == 5) { /* the default: constant-size copies that the compiler turns into a few moves */
        for (int32_t r = 0; r < 11; r++) {
            memcpy(out + 11 * r, src + (ptrdiff_t)r * stride, 11);
        }
    } else {
        const int32_t side = 2 * vision + 1;
        for (int32_t r = 0; r < side; r++) {
            memcpy(out + side * r, src + (ptrdiff_t)r * stride, (size_t)side);
        }
    }
}

/* A random empty playable cell (see the header comment), or -1 when there is none. */
static inline int32_t snake_find_empty(Snake* env) {
    const int32_t width = env->width, height = env->height;
    int32_t row = 0, col = 0;
    for (int k = 0; k < SNAKE_SPAWN_TRIES; k++) {
        uint64_t bits = thrust_next_u64(&env->rng);
        /* Lemire's multiply-shift: the high 32 bits pick the row, the low 32 bits the column. */
        row = (int32_t)(((bits >> 32) * (uint64_t)height) >> 32);
        col = (int32_t)(((bits & 0xFFFFFFFFULL) * (uint64_t)width) >> 32);
        int32_t cell = snake_cell(env, row, col);
        if (env->grid[cell] == SNAKE_EMPTY) {
            return cell;
        }
    }
    const int32_t cells = width * height;
    const int32_t start = row * width + col;
    for (int32_t k = 1; k <= cells; k++) {
        int32_t p = (start + k) % cells;
        int32_t cell = snake_cell(env, p / width, p % width);
        if (env->grid[cell] == SNAKE_EMPTY) {
            return cell;
        }
    }
    return -1;
}

/* Start a new episode for one snake: length 1 at a random empty cell. The caller guarantees there is one. */
static inline void snake_spawn(Snake* env, SnakeAgent* agent) {
    int32_t cell = snake_find_empty(env);
    env->grid[cell] = SNAKE_HEAD;
    agent->head = cell;
    agent->tail = cell;
    agent->length = 1;
    agent->tick = 0;
    agent->food_eaten = 0;
    agent->dir = SNAKE_UP;
    agent->episode_return = 0.0;
}

/* Put back eaten food while there is room. */
static inline void snake_spawn_food(Snake* env) {
    while (env->food_deficit > 0) {
        int32_t cell = snake_find_empty(env);
        if (cell < 0) {
            return; /* the board is full: retried after the next step */
        }
        env->grid[cell] = SNAKE_FOOD;
        env->food_deficit--;
    }
}

/* Start a new episode on the whole board: walls, snakes (in agent order), then food; write the observations. */
static inline void c_reset(Snake* env) {
    const int32_t side = 2 * env->vision + 1;
    const int32_t rows = env->height + 2 * env->vision;
    memset(env->grid, SNAKE_WALL, (size_t)rows * (size_t)env->stride);
    memset(env->cell_dirs, 0, (size_t)rows * (size_t)env->stride);
    for (int32_t r = 0; r < env->height; r++) {
        memset(env->grid + snake_cell(env, r, 0), SNAKE_EMPTY, (size_t)env->width);
    }
    for (int32_t i = 0; i < env->num_snakes; i++) {
        snake_spawn(env, &env->agents[i]);
    }
    env->food_deficit = env->num_food;
    snake_spawn_food(env);
    for (int32_t i = 0; i < env->num_snakes; i++) {
        snake_window(env, env->agents[i].head, env->observations + (ptrdiff_t)i * side * side);
    }
}

/* Step every snake on the board once with its action (the four phases in the header comment). No allocation. */
static inline void c_step(Snake* env) {
    /* Locals, not env fields: a store to the grid (a char type) could alias any field, forcing reloads. */
    int8_t* grid = env->grid;
    uint8_t* cell_dirs = env->cell_dirs;
    SnakeAgent* agents = env->agents;
    const int32_t* actions = env->actions;
    float* rewards = env->rewards;
    unsigned char* terminals = env->terminals;
    unsigned char* truncations = env->truncations;
    int32_t* ended = env->ended;
    const int32_t num_snakes = env->num_snakes, max_steps = env->max_steps;
    const float reward_step = env->reward_step, reward_food = env->reward_food, reward_death = env->reward_death;
    const int32_t delta[4] = {-env->stride, env->stride, -1, 1};
    const int32_t side = 2 * env->vision + 1;
    int32_t num_ended = 0, num_eaten = 0;

    /* 1. moves, in agent order */
    for (int32_t i = 0; i < num_snakes; i++) {
        SnakeAgent* a = &agents[i];
        int32_t dir = (int32_t)((uint32_t)actions[i] & 3u);
        if (dir == (a->dir ^ 1) && a->length > 1) {
            dir = a->dir; /* no reversing into the neck */
        }
        const int32_t head = a->head;
        const int32_t target = head + delta[dir];
        const int8_t code = grid[target];
        float reward = reward_step;
        int died = 0;
        if (code == SNAKE_FOOD) {
            /* grow: the tail stays */
            grid[head] = SNAKE_BODY;
            cell_dirs[head] = (uint8_t)dir;
            grid[target] = SNAKE_HEAD;
            a->head = target;
            a->length++;
            a->food_eaten++;
            a->dir = dir;
            num_eaten++;
            reward += reward_food;
        } else if (code == SNAKE_EMPTY || target == a->tail) {
            /* move: the tail cell empties first, so a snake may follow its own tail */
            const int32_t tail = a->tail;
            grid[tail] = SNAKE_EMPTY;
            if (a->length > 1) {
                a->tail = tail + delta[cell_dirs[tail]];
                grid[head] = SNAKE_BODY;
                cell_dirs[head] = (uint8_t)dir;
            } else {
                a->tail = target;
            }
            grid[target] = SNAKE_HEAD;
            a->head = target;
            a->dir = dir;
        } else {
            died = 1;
            reward += reward_death;
        }
        const int32_t tick = a->tick + 1;
        const int truncated = tick >= max_steps;
        a->tick = tick;
        a->episode_return += (double)reward;
        rewards[i] = reward;
        terminals[i] = (unsigned char)died;
        truncations[i] = (unsigned char)truncated;
        if (died | truncated) {
            ended[num_ended++] = i;
        }
    }
    env->food_deficit += num_eaten;

    if (num_ended > 0) {
        /* 2. final observations with every ended snake still on the board, then remove and respawn them */
        for (int32_t k = 0; k < num_ended; k++) {
            const int32_t i = ended[k];
            const SnakeAgent* a = &agents[i];
            snake_window(env, a->head, env->final_observations + (ptrdiff_t)i * side * side);
            env->log.episode_return += a->episode_return;
            env->log.episode_length += (double)a->tick;
            env->log.food_eaten += (double)a->food_eaten;
            env->log.n += 1.0;
        }
        for (int32_t k = 0; k < num_ended; k++) {
            const SnakeAgent* a = &agents[ended[k]];
            int32_t cell = a->tail;
            for (int32_t j = 1; j < a->length; j++) {
                grid[cell] = SNAKE_EMPTY;
                cell += delta[cell_dirs[cell]];
            }
            grid[cell] = SNAKE_EMPTY; /* the head */
        }
        for (int32_t k = 0; k < num_ended; k++) {
            snake_spawn(env, &agents[ended[k]]);
        }
    }

    /* 3. food */
    if (env->food_deficit > 0) {
        snake_spawn_food(env);
    }

    /* 4. observations */
    int8_t* obs = env->observations;
    for (int32_t i = 0; i < num_snakes; i++) {
        snake_window(env, agents[i].head, obs + (ptrdiff_t)i * side * side);
    }
}

/* Step boards[0..n) once each, in one call (the entry point every binding uses). */
static inline void c_step_all(Snake* envs, int n) {
    for (int i = 0; i < n; i++) {
        c_step(&envs[i]);
    }
}

#endif /* THRUST_SNAKE_H */
