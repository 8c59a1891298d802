/* The glue every browser-demo wasm module shares (thrust_cli/web/wasm/<game>_demo.c): the agents' buffers, the
 * episode statistics, the policy exports and act(). One module holds every agent of a page; the page calls
 * _initialize() once, init(N, seed), then per frame act(mode) and step() (docs/demo.md;
 * thrust_cli/web/wasm_build.py builds it with zig cc for wasm32-wasi as a reactor with no imports).
 *
 * A game file defines DEMO_OBS_SIZE, DEMO_NUM_ACTIONS, DEMO_OBS_INT8 (1: int8 observations), includes this header,
 * then defines game_build(n, seed) (allocate and reset n agents into the demo_* buffers; 0 on failure),
 * game_free(), game_step() (step every agent once, auto-resetting ended episodes) and the render() export.
 *
 * Exports (all agents i in [0, N)):
 *   int   init(int N, unsigned seed)   1 ok, 0 bad args (N outside 1..4096) or out of memory; rebuilds every
 *         agent exactly as the native Python env built with that seed (see each game file), zeroes the stats,
 *         the LSTM state and reseeds the policy's RNG (splitmix64 of seed); keeps the loaded policy.
 *   step(), actions_ptr() int32 [N], rewards_ptr() float [N], terminals_ptr(), truncations_ptr() uint8 [N],
 *   observations_ptr() float32 [N, obs] (cartpole, asteroids) or int8 [N, 121] (snake), num_agents(),
 *   obs_size(), num_actions().
 *   stats_ptr() double[8], kept current after every step: [0] episodes finished, [1] sum of their returns,
 *         [2] sum of their lengths, [3] agent steps taken, [4] mean return of the last (up to) 100 finished
 *         episodes (NaN if none), [5] episodes in that window, [6] best return (NaN if none), [7] 0.
 *         Returns and lengths are tracked per agent from the rewards (summed in double, as the cores do).
 *         stats_reset() zeroes them; episodes running then count in full when they end.
 *   name_buffer() char[256]; policy_config(arch, hidden, num_layers, activation, shared, num_codes) 1/0;
 *   policy_tensor(numel) float* or 0; policy_ready(); logits_ptr() float [N, A]; policy_reset_state().
 *         For an LSTM num_layers/activation/shared are ignored; num_codes > 0 only for int8 observations.
 *   act(mode): 0 greedy (first argmax), 1 sample from softmax(logits), 2 uniform random; writes actions_ptr().
 *         Modes 0/1 without a ready policy act as mode 2 (logits untouched). An LSTM's state of agent i is
 *         zeroed first when the step before this act() ended its episode (terminals | truncations), once per step.
 *   render_ptr() float[256]; render(agent) fills it and returns the count (0 for a bad agent).
 * Memory: init(), policy_config() and the first act() after new tensors malloc, which may grow the wasm memory and
 * detach the host's views of it (JS: make new typed arrays over memory.buffer after these calls, and re-read every
 * *_ptr() after init). Buffers stay where they are until the next init() / policy_config().
 * Speed (wasmtime, 2 busy cores): act(0) + step() ~1.3-1.9 us per agent for a 2 x 64 tanh MLP, ~20 us for a
 * 128-unit LSTM; the forward pass runs agents in blocks of POLICY_BLOCK so each weight row is read once per block.
 *
 * Render layouts (floats):
 *   cartpole : [x, theta, episode_step]; x in metres (track +-2.4, x right), theta in radians from upright,
 *              positive leaning toward +x (Gymnasium: pole tip at x + l sin theta), episode_step 0..499.
 *   asteroids: [ship_x, ship_y, heading_rad, thrusting, invulnerable, lives, score, wave, num_rocks,
 *              num_rocks x (x, y, radius, shape, angle), num_bullets, num_bullets x (x, y)]  (<= 219 floats).
 *              Canvas coordinates: field 256 x 192, x right, y DOWN (y = 192 - the core's y, which points up).
 *              heading_rad is also in canvas coordinates: the nose points along (cos, sin) with y down, i.e.
 *              ctx.rotate(heading_rad) turns a ship drawn along +x into place; = -2 pi h / 32 mod 2 pi for the
 *              core's heading h (the core's table turns counter-clockwise with y up, so on screen action 2
 *              "left" turns the ship counter-clockwise). Spawn heading (up on screen) = 3 pi / 2.
 *              thrusting, invulnerable: 0/1. shape 0..3 selects the outline (envs_cython/asteroids _SHAPES);
 *              angle (canvas radians) is cosmetic: the rock's direction of motion plus a slow spin with the
 *              episode tick. radius 16 / 8 / 4 for large / medium / small. The field wraps on both axes.
 *   snake    : render(agent) = [head_row, head_col, length, direction] of that snake (padded-grid coordinates,
 *              direction 0 up 1 down 2 left 3 right); draw the board from grid_ptr(): int8 codes
 *              [grid_height()][grid_width()] of the padded grid, grid_pad() = 5 wall cells on each side (the
 *              playable board is W x W inside). Codes: 0 empty, 1 wall, 2 food, 3 body (any snake's), 4 head
 *              (any snake's). The observation of snake i is the 11 x 11 window of these codes around its head.
 */
#ifndef THRUST_WEB_DEMO_H
#define THRUST_WEB_DEMO_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "thrust_rng.h" /* envs_cython/, on the include path */
#include "policy.h"

#define DEMO_MAX_AGENTS 4096
#define DEMO_WINDOW 100
#define DEMO_RENDER_FLOATS 256

#if DEMO_OBS_INT8
typedef int8_t DemoObs;
#else
typedef float DemoObs;
#endif

static int32_t demo_n = 0;
static int32_t* demo_actions = NULL;
static float* demo_rewards = NULL;
static unsigned char* demo_terminals = NULL;
static unsigned char* demo_truncations = NULL;
static DemoObs* demo_observations = NULL;
static DemoObs* demo_final_observations = NULL;
static float* demo_logits = NULL;
static double* demo_returns = NULL; /* of each agent's running episode */
static int32_t* demo_lengths = NULL;
static double demo_stats[8];
static double demo_window[DEMO_WINDOW];
static int32_t demo_window_next = 0;
static uint64_t demo_rng = 0;
static int demo_pending_reset = 0; /* the flags are those of a step no act() has seen yet */
static Policy demo_policy;
static char demo_name[POLICY_NAME_BYTES];
static float demo_render[DEMO_RENDER_FLOATS];

typedef char demo_actions_fit_policy_sample[DEMO_NUM_ACTIONS <= 64 ? 1 : -1]; /* policy_sample's buffer */

static int game_build(int32_t n, uint64_t seed);
static void game_free(void);
static void game_step(void);

void stats_reset(void) {
    memset(demo_stats, 0, sizeof(demo_stats));
    demo_stats[4] = NAN;
    demo_stats[6] = NAN;
    demo_window_next = 0;
}

static void demo_free(void) {
    game_free();
    free(demo_actions);
    free(demo_rewards);
    free(demo_terminals);
    free(demo_truncations);
    free(demo_observations);
    free(demo_final_observations);
    free(demo_logits);
    free(demo_returns);
    free(demo_lengths);
    demo_actions = NULL;
    demo_rewards = NULL;
    demo_terminals = demo_truncations = NULL;
    demo_observations = demo_final_observations = NULL;
    demo_logits = NULL;
    demo_returns = NULL;
    demo_lengths = NULL;
    demo_n = 0;
}

int init(int num_agents, unsigned int seed) {
    if (num_agents < 1 || num_agents > DEMO_MAX_AGENTS) {
        return 0;
    }
    demo_free();
    const size_t n = (size_t)num_agents;
    demo_actions = (int32_t*)calloc(n, sizeof(int32_t));
    demo_rewards = (float*)calloc(n, sizeof(float));
    demo_terminals = (unsigned char*)calloc(n, 1);
    demo_truncations = (unsigned char*)calloc(n, 1);
    demo_observations = (DemoObs*)calloc(n * DEMO_OBS_SIZE, sizeof(DemoObs));
    demo_final_observations = (DemoObs*)calloc(n * DEMO_OBS_SIZE, sizeof(DemoObs));
    demo_logits = (float*)calloc(n * DEMO_NUM_ACTIONS, sizeof(float));
    demo_returns = (double*)calloc(n, sizeof(double));
    demo_lengths = (int32_t*)calloc(n, sizeof(int32_t));
    if (demo_actions == NULL || demo_rewards == NULL || demo_terminals == NULL || demo_truncations == NULL
        || demo_observations == NULL || demo_final_observations == NULL || demo_logits == NULL
        || demo_returns == NULL || demo_lengths == NULL || !game_build(num_agents, (uint64_t)seed)) {
        demo_free();
        return 0;
    }
    demo_n = num_agents;
    if (!policy_state_alloc(&demo_policy, demo_n)) {
        policy_free(&demo_policy);
    }
    demo_rng = thrust_mix64((uint64_t)seed ^ 0x510E527FADE682D1ULL);
    demo_pending_reset = 0;
    stats_reset();
    return 1;
}

int num_agents(void) {
    return demo_n;
}

int obs_size(void) {
    return DEMO_OBS_SIZE;
}

int num_actions(void) {
    return DEMO_NUM_ACTIONS;
}

int32_t* actions_ptr(void) {
    return demo_actions;
}

float* rewards_ptr(void) {
    return demo_rewards;
}

unsigned char* terminals_ptr(void) {
    return demo_terminals;
}

unsigned char* truncations_ptr(void) {
    return demo_truncations;
}

void* observations_ptr(void) {
    return demo_observations;
}

double* stats_ptr(void) {
    return demo_stats;
}

float* logits_ptr(void) {
    return demo_logits;
}

char* name_buffer(void) {
    return demo_name;
}

float* render_ptr(void) {
    return demo_render;
}

/* One finished episode into the statistics. */
static void demo_record(double episode_return, int32_t length) {
    demo_stats[0] += 1.0;
    demo_stats[1] += episode_return;
    demo_stats[2] += (double)length;
    if (!(demo_stats[6] >= episode_return)) { /* also replaces the NaN of "none yet" */
        demo_stats[6] = episode_return;
    }
    demo_window[demo_window_next % DEMO_WINDOW] = episode_return;
    demo_window_next++;
}

void step(void) {
    if (demo_n == 0) {
        return;
    }
    game_step();
    int ended = 0;
    for (int32_t i = 0; i < demo_n; i++) {
        demo_returns[i] += (double)demo_rewards[i];
        demo_lengths[i]++;
        if (demo_terminals[i] | demo_truncations[i]) {
            demo_record(demo_returns[i], demo_lengths[i]);
            demo_returns[i] = 0.0;
            demo_lengths[i] = 0;
            ended = 1;
        }
    }
    demo_stats[3] += (double)demo_n;
    if (ended) {
        const int32_t count = demo_window_next < DEMO_WINDOW ? demo_window_next : DEMO_WINDOW;
        double sum = 0.0;
        for (int32_t k = 0; k < count; k++) {
            sum += demo_window[k];
        }
        demo_stats[4] = sum / (double)count;
        demo_stats[5] = (double)count;
    }
    demo_pending_reset = 1;
}

int policy_config(int arch, int hidden, int num_layers, int activation, int shared, int num_codes) {
    if (!policy_configure(&demo_policy, arch, hidden, num_layers, activation, shared, num_codes, DEMO_OBS_SIZE,
                          DEMO_NUM_ACTIONS, DEMO_OBS_INT8)) {
        return 0;
    }
    if (!policy_state_alloc(&demo_policy, demo_n)) {
        policy_free(&demo_policy);
        return 0;
    }
    return 1;
}

float* policy_tensor(int numel) {
    demo_name[POLICY_NAME_BYTES - 1] = '\0';
    return policy_tensor_for(&demo_policy, demo_name, numel);
}

int policy_ready(void) {
    return policy_is_ready(&demo_policy);
}

void policy_reset_state(void) {
    const size_t floats = (size_t)demo_policy.state_n * (size_t)demo_policy.hidden;
    if (demo_policy.state_h != NULL) {
        memset(demo_policy.state_h, 0, floats * sizeof(float));
        memset(demo_policy.state_c, 0, floats * sizeof(float));
    }
}

/* A uniform action in [0, DEMO_NUM_ACTIONS) (Lemire's multiply-shift on 32 random bits). */
static inline int32_t demo_random_action(void) {
    return (int32_t)(((thrust_next_u64(&demo_rng) >> 32) * (uint64_t)DEMO_NUM_ACTIONS) >> 32);
}

void act(int mode) {
    Policy* p = &demo_policy;
    if (mode < 0 || mode > 2 || demo_n == 0) {
        return;
    }
    if (mode != 2 && policy_is_ready(p) && p->dirty && !policy_prepare(p)) {
        mode = 2;
    }
    if (mode == 2 || !policy_is_ready(p)) {
        for (int32_t i = 0; i < demo_n; i++) {
            demo_actions[i] = demo_random_action();
        }
        return;
    }
    const int lstm = p->arch == POLICY_LSTM;
    if (lstm && p->state_n != demo_n && !policy_state_alloc(p, demo_n)) {
        return;
    }
    const size_t H = (size_t)p->hidden;
    if (lstm && demo_pending_reset) {
        for (int32_t i = 0; i < demo_n; i++) {
            if (demo_terminals[i] | demo_truncations[i]) {
                memset(p->state_h + (size_t)i * H, 0, sizeof(float) * H);
                memset(p->state_c + (size_t)i * H, 0, sizeof(float) * H);
            }
        }
    }
    for (int32_t first = 0; first < demo_n; first += POLICY_BLOCK) {
        const int32_t count = demo_n - first < POLICY_BLOCK ? demo_n - first : POLICY_BLOCK;
        float* h = lstm ? p->state_h + (size_t)first * H : NULL;
        float* c = lstm ? p->state_c + (size_t)first * H : NULL;
        float* logits = demo_logits + (size_t)first * DEMO_NUM_ACTIONS;
        policy_forward(p, demo_observations + (size_t)first * DEMO_OBS_SIZE, DEMO_OBS_INT8, count, h, c, logits);
        for (int32_t b = 0; b < count; b++) {
            const float* l = logits + (size_t)b * DEMO_NUM_ACTIONS;
            demo_actions[first + b] = mode == 0 ? policy_argmax(l, DEMO_NUM_ACTIONS)
                                                : policy_sample(l, DEMO_NUM_ACTIONS, thrust_next_u64(&demo_rng));
        }
    }
    demo_pending_reset = 0;
}

#endif /* THRUST_WEB_DEMO_H */
