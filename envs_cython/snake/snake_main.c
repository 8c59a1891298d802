/* Standalone Snake driver: runs the C core without Python.
 *
 * Check mode (default): three boards of different shapes (one of them so crowded that it fills up), 1M random
 * agent-steps in all, every invariant checked after every step (body links and cell counts, observations against
 * a bounds-checked crop, rewards, flags, respawns, statistics); exit 0 when all hold. Meant to run under the
 * sanitizers:
 *   gcc -std=c99 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
 *       envs_cython/snake/snake_main.c -o snake_main && ./snake_main
 *
 * Bench mode: `./snake_main --bench [--reps N]` prints the median agent-steps/s of c_step on one board of 256
 * snakes and on 16 such boards (over N timed repetitions, 15 by default), with the default parameters and random
 * actions (build with -O3 for that).
 */
#define THRUST_DRIVER "snake_main"
#include "../thrust_driver.h"

#include "snake.h"

#define CHECK_AGENT_STEPS 1000000
#define BENCH_SNAKES 256
#define BENCH_ACTION_SETS 64

typedef struct Params {
    int32_t width, height, vision, num_snakes, num_food, max_steps;
    float reward_food, reward_death, reward_step;
} Params;

/* One board with the buffers Python would own, allocated in one place so they are freed in one place. */
typedef struct Board {
    Snake env;
    Params p;
    int32_t side;
    int32_t* actions;
    float* rewards;
    unsigned char* terminals;
    unsigned char* truncations;
    int32_t* length; /* main's own count of each snake's episode length */
    double* ret;     /* and return */
} Board;

static void board_free(Board* b) {
    free(b->env.grid);
    free(b->env.cell_dirs);
    free(b->env.observations);
    free(b->env.final_observations);
    free(b->env.agents);
    free(b->env.ended);
    free(b->actions);
    free(b->rewards);
    free(b->terminals);
    free(b->truncations);
    free(b->length);
    free(b->ret);
}

/* What the binding does for one board, then c_seed and c_reset. Returns 0 when out of memory. */
static int board_make(Board* b, Params p, uint64_t seed) {
    memset(b, 0, sizeof(*b));
    b->p = p;
    b->side = 2 * p.vision + 1;
    size_t cells = (size_t)(p.height + 2 * p.vision) * (size_t)(p.width + 2 * p.vision);
    size_t n = (size_t)p.num_snakes, view = (size_t)b->side * (size_t)b->side;
    Snake* env = &b->env;
    env->grid = calloc(cells, 1);
    env->cell_dirs = calloc(cells, 1);
    env->observations = calloc(n * view, 1);
    env->final_observations = calloc(n * view, 1);
    env->agents = calloc(n, sizeof(SnakeAgent));
    env->ended = calloc(n, sizeof(int32_t));
    b->actions = calloc(n, sizeof(int32_t));
    b->rewards = calloc(n, sizeof(float));
    b->terminals = calloc(n, 1);
    b->truncations = calloc(n, 1);
    b->length = calloc(n, sizeof(int32_t));
    b->ret = calloc(n, sizeof(double));
    if (!(env->grid && env->cell_dirs && env->observations && env->final_observations && env->agents && env->ended
          && b->actions && b->rewards && b->terminals && b->truncations && b->length && b->ret)) {
        return 0;
    }
    env->actions = b->actions;
    env->rewards = b->rewards;
    env->terminals = b->terminals;
    env->truncations = b->truncations;
    env->width = p.width;
    env->height = p.height;
    env->vision = p.vision;
    env->stride = p.width + 2 * p.vision;
    env->num_snakes = p.num_snakes;
    env->num_food = p.num_food;
    env->max_steps = p.max_steps;
    env->reward_food = p.reward_food;
    env->reward_death = p.reward_death;
    env->reward_step = p.reward_step;
    c_seed(env, seed);
    c_reset(env);
    return 1;
}

/* The code of playable cell (row, col), WALL outside the board: the slow, bounds-checked view. */
static int8_t cell_code(const Snake* env, int32_t row, int32_t col) {
    if (row < 0 || row >= env->height || col < 0 || col >= env->width) {
        return SNAKE_WALL;
    }
    return env->grid[snake_cell(env, row, col)];
}

static int view_matches(const Snake* env, int32_t head, const int8_t* view) {
    const int32_t v = env->vision, side = 2 * v + 1;
    const int32_t row = head / env->stride - v, col = head % env->stride - v;
    for (int32_t r = 0; r < side; r++) {
        for (int32_t c = 0; c < side; c++) {
            if (view[r * side + c] != cell_code(env, row - v + r, col - v + c)) {
                return 0;
            }
        }
    }
    return 1;
}

static int playable(const Snake* env, int32_t cell) {
    const int32_t row = cell / env->stride - env->vision, col = cell % env->stride - env->vision;
    return row >= 0 && row < env->height && col >= 0 && col < env->width;
}

/* Body links, codes and counts of the whole board. */
static void check_board(const Snake* env, int t) {
    const int32_t v = env->vision, rows = env->height + 2 * v;
    long counts[SNAKE_MAX_CODE + 1] = {0};
    for (int32_t r = 0; r < rows; r++) {
        for (int32_t c = 0; c < env->stride; c++) {
            int8_t code = env->grid[r * env->stride + c];
            int inside = r >= v && r < v + env->height && c >= v && c < v + env->width;
            EXPECT(code >= 0 && code <= SNAKE_MAX_CODE, "step %d cell (%d, %d) code %d", t, r, c, code);
            EXPECT(inside || code == SNAKE_WALL, "step %d padding cell (%d, %d) is %d", t, r, c, code);
            EXPECT(!inside || code != SNAKE_WALL, "step %d wall inside the board at (%d, %d)", t, r, c);
            if (code >= 0 && code <= SNAKE_MAX_CODE) {
                counts[code]++;
            }
        }
    }
    long body = 0;
    for (int32_t i = 0; i < env->num_snakes; i++) {
        const SnakeAgent* a = &env->agents[i];
        EXPECT(a->length >= 1 && a->length <= env->width * env->height, "step %d snake %d length %d", t, i, a->length);
        int32_t cell = a->tail;
        for (int32_t j = 1; j < a->length && playable(env, cell); j++) {
            EXPECT(env->grid[cell] == SNAKE_BODY, "step %d snake %d segment %d is %d", t, i, j, env->grid[cell]);
            EXPECT(env->cell_dirs[cell] < 4, "step %d snake %d segment %d link %d", t, i, j, env->cell_dirs[cell]);
            cell += (int32_t[4]){-env->stride, env->stride, -1, 1}[env->cell_dirs[cell] & 3];
        }
        EXPECT(cell == a->head && env->grid[cell] == SNAKE_HEAD, "step %d snake %d body does not end at its head", t,
               i);
        body += a->length - 1;
    }
    EXPECT(counts[SNAKE_HEAD] == env->num_snakes, "step %d: %ld heads", t, counts[SNAKE_HEAD]);
    EXPECT(counts[SNAKE_BODY] == body, "step %d: %ld body cells, snakes have %ld", t, counts[SNAKE_BODY], body);
    EXPECT(counts[SNAKE_FOOD] == env->num_food - env->food_deficit, "step %d: %ld food, deficit %d", t,
           counts[SNAKE_FOOD], env->food_deficit);
    EXPECT(env->food_deficit == 0 || counts[SNAKE_EMPTY] == 0, "step %d: food missing with %ld empty cells", t,
           counts[SNAKE_EMPTY]);
}

/* A random move onto food or an empty cell when there is one (so the snakes grow long), else a random move. */
static int32_t cautious_action(const Snake* env, int32_t i, uint64_t bits) {
    const int32_t side = 2 * env->vision + 1, centre = side * side / 2;
    const int32_t offset[4] = {-side, side, -1, 1};
    const int8_t* obs = &env->observations[(size_t)i * side * side];
    int32_t safe[4], num_safe = 0;
    for (int32_t d = 0; d < 4; d++) {
        int8_t code = obs[centre + offset[d]];
        if (code == SNAKE_EMPTY || code == SNAKE_FOOD) {
            safe[num_safe++] = d;
        }
    }
    return num_safe > 0 ? safe[(bits >> 32) % (uint64_t)num_safe] : (int32_t)(bits >> 62);
}

static int run_check(void) {
    const Params params[3] = {
        {32, 32, 5, 24, 40, 50, 1.0f, -1.0f, 0.0f},    /* the default view on a mid-size board */
        {5, 5, 2, 2, 10, 1000, 0.5f, -2.0f, 0.0f},     /* crowded, and cautious snakes: it fills up */
        {16, 12, 1, 10, 20, 7, 1.0f, -1.0f, -0.01f},   /* short time limit, step shaping */
    };
    Board boards[3];
    int ok = 1;
    for (int k = 0; k < 3; k++) {
        ok &= board_make(&boards[k], params[k], 100 + (uint64_t)k);
    }
    if (!ok) {
        fprintf(stderr, THRUST_DRIVER ": out of memory\n");
        for (int k = 0; k < 3; k++) {
            board_free(&boards[k]);
        }
        return 1;
    }
    int agents = 0;
    for (int k = 0; k < 3; k++) {
        agents += params[k].num_snakes;
    }
    const int steps = CHECK_AGENT_STEPS / agents + 1;
    uint64_t action_rng = 12345;
    double episodes = 0.0, episode_steps = 0.0, episode_return = 0.0;
    long long terminals = 0, truncations = 0, eaten = 0, full_boards = 0;
    int32_t prev_length[64], prev_dir[64];

    for (int t = 0; t < steps; t++) {
        for (int k = 0; k < 3; k++) {
            Board* b = &boards[k];
            Snake* env = &b->env;
            const Params* p = &b->p;
            for (int32_t i = 0; i < p->num_snakes; i++) {
                uint64_t bits = thrust_next_u64(&action_rng);
                /* one action in 16 is an arbitrary int32 (read as a & 3) */
                b->actions[i] = (bits >> 60) == 0 ? (int32_t)(uint32_t)bits : (int32_t)(bits >> 62);
                if (k == 1) {
                    b->actions[i] = cautious_action(env, i, bits);
                }
                prev_length[i] = env->agents[i].length;
                prev_dir[i] = env->agents[i].dir;
            }
            c_step(env);
            check_board(env, t);
            full_boards += env->food_deficit > 0;
            for (int32_t i = 0; i < p->num_snakes; i++) {
                const SnakeAgent* a = &env->agents[i];
                const int8_t* obs = &env->observations[(size_t)i * b->side * b->side];
                const int8_t* final_obs = &env->final_observations[(size_t)i * b->side * b->side];
                int term = b->terminals[i], trunc = b->truncations[i];
                const float step_reward = p->reward_step, r = b->rewards[i];
                int ate = r == step_reward + p->reward_food, died = r == step_reward + p->reward_death;
                b->length[i]++;
                b->ret[i] += b->rewards[i];
                EXPECT(r == step_reward || ate || died, "board %d snake %d step %d reward %g", k, i, t, r);
                EXPECT(term == died && term <= 1 && trunc <= 1, "board %d snake %d step %d flags %d %d reward %g", k,
                       i, t, term, trunc, b->rewards[i]);
                EXPECT(trunc == (b->length[i] >= p->max_steps), "board %d snake %d step %d truncation at %d", k, i, t,
                       b->length[i]);
                EXPECT(view_matches(env, a->head, obs), "board %d snake %d step %d observation", k, i, t);
                EXPECT(obs[(b->side * b->side) / 2] == SNAKE_HEAD, "board %d snake %d step %d centre", k, i, t);
                eaten += ate;
                if (term || trunc) {
                    EXPECT(final_obs[(b->side * b->side) / 2] == SNAKE_HEAD, "board %d snake %d step %d final centre",
                           k, i, t);
                    EXPECT(a->length == 1 && a->tick == 0 && a->food_eaten == 0 && a->episode_return == 0.0,
                           "board %d snake %d step %d not respawned", k, i, t);
                    episodes += 1.0;
                    episode_steps += b->length[i];
                    episode_return += b->ret[i];
                    terminals += term;
                    truncations += trunc;
                    b->length[i] = 0;
                    b->ret[i] = 0.0;
                } else {
                    int32_t action = (int32_t)((uint32_t)b->actions[i] & 3u);
                    int reversed = prev_length[i] > 1 && action == (prev_dir[i] ^ 1);
                    EXPECT(a->length == prev_length[i] + ate, "board %d snake %d step %d length %d -> %d", k, i, t,
                           prev_length[i], a->length);
                    EXPECT(a->dir == (reversed ? prev_dir[i] : action), "board %d snake %d step %d direction", k, i, t);
                    EXPECT(a->tick == b->length[i], "board %d snake %d step %d tick %d != %d", k, i, t, a->tick,
                           b->length[i]);
                }
            }
        }
    }

    double log_n = 0.0, log_return = 0.0, log_length = 0.0, log_food = 0.0, running_steps = 0.0, running_food = 0.0;
    for (int k = 0; k < 3; k++) {
        const Snake* env = &boards[k].env;
        log_n += env->log.n;
        log_return += env->log.episode_return;
        log_length += env->log.episode_length;
        log_food += env->log.food_eaten;
        for (int32_t i = 0; i < env->num_snakes; i++) {
            running_steps += env->agents[i].tick;
            running_food += env->agents[i].food_eaten;
        }
    }
    EXPECT(log_n == episodes, "log counts %.0f episodes, main counted %.0f", log_n, episodes);
    EXPECT(log_length == episode_steps, "log length sum %.0f, main counted %.0f", log_length, episode_steps);
    EXPECT(log_return > episode_return - 1e-6 * episodes && log_return < episode_return + 1e-6 * episodes,
           "log return sum %f, main counted %f", log_return, episode_return);
    EXPECT(log_length + running_steps == (double)agents * steps, "steps not accounted for");
    EXPECT(log_food + running_food == (double)eaten, "food: log %.0f + running %.0f != %lld eaten", log_food,
           running_food, eaten);
    EXPECT(terminals > 0 && truncations > 0 && eaten > 0 && full_boards > 0,
           "seen: %lld terminal, %lld truncation, %lld eaten, %lld steps with a full board", terminals, truncations,
           eaten, full_boards);

    printf("snake_main: %d agent-steps, 3 boards, %.0f episodes (%lld terminated, %lld truncated), %lld food eaten, "
           "%lld steps with a full board: %s\n",
           agents * steps, episodes, terminals, truncations, eaten, full_boards, failures ? "FAILED" : "ok");
    for (int k = 0; k < 3; k++) {
        board_free(&boards[k]);
    }
    return failures ? 1 : 0;
}

/* ---- bench ---------------------------------------------------------------------------------------------- */

/* The boards of one bench and the action sets they share. */
typedef struct BenchContext {
    int num_boards;
    Board* boards;
    const int32_t* action_sets;
} BenchContext;

/* Step every board once with action set t. */
static void bench_step(void* context, int k, long t) {
    (void)k;
    BenchContext* c = context;
    const int32_t* actions = &c->action_sets[(size_t)(t % BENCH_ACTION_SETS) * BENCH_SNAKES];
    for (int i = 0; i < c->num_boards; i++) {
        /* As the Python class does: copy the actions into the buffer, then step. */
        memcpy(c->boards[i].actions, actions, sizeof(int32_t) * BENCH_SNAKES);
        c_step(&c->boards[i].env);
    }
}

/* Median agent-steps/s of c_step over `num_boards` default boards of BENCH_SNAKES snakes, random actions. */
static int bench_boards(int num_boards) {
    const Params p = {128, 128, 5, BENCH_SNAKES, 512, 1000, 1.0f, -1.0f, 0.0f};
    Board* boards = calloc((size_t)num_boards, sizeof(Board));
    int32_t* action_sets = malloc(sizeof(int32_t) * BENCH_ACTION_SETS * BENCH_SNAKES);
    int ok = boards != NULL && action_sets != NULL;
    for (int k = 0; ok && k < num_boards; k++) {
        ok &= board_make(&boards[k], p, (uint64_t)k);
    }
    if (ok) {
        uint64_t action_rng = 7;
        for (int j = 0; j < BENCH_ACTION_SETS * BENCH_SNAKES; j++) {
            action_sets[j] = (int32_t)(thrust_next_u64(&action_rng) >> 62);
        }
        const int steps = 20000 / num_boards; /* about 5M agent-steps per repetition */
        BenchContext ctx = {num_boards, boards, action_sets};
        double median;
        thrust_bench_interleaved(1, steps, (double)num_boards * BENCH_SNAKES, bench_step, &ctx, &median);
        char name[64];
        snprintf(name, sizeof(name), "core c_step, %d board%s x %d snakes", num_boards, num_boards > 1 ? "s" : "",
                 BENCH_SNAKES);
        printf("%-36s %6.2fM steps/s (median of %d, %dx%d, %d food)\n", name, median / 1e6, thrust_bench_reps,
               p.width, p.height, p.num_food);
    } else {
        fprintf(stderr, THRUST_DRIVER ": out of memory\n");
    }
    for (int k = 0; boards != NULL && k < num_boards; k++) {
        board_free(&boards[k]);
    }
    free(boards);
    free(action_sets);
    return ok ? 0 : 1;
}

static int run_bench(void) {
    return bench_boards(1) | bench_boards(16);
}

int main(int argc, char** argv) {
    return thrust_driver_main(argc, argv, run_check, run_bench, NULL, 0);
}
