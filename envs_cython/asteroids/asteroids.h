/* Asteroids: a header-only, freestanding C99 core; one `Asteroids` struct per env (one ship per field).
 *
 * The field is ASTEROIDS_WIDTH x ASTEROIDS_HEIGHT units (256 x 192) and wraps around on both axes; y points up.
 * A step is one frame. The ship rotates through 32 headings (heading h points at angle 2 pi h / 32, 0 along +x,
 * counter-clockwise), thrusts with inertia and drag, and fires bullets with a lifetime and a cooldown. Rocks
 * drift; a shot splits a large rock into 2 medium ones, a medium one into 2 small ones, and destroys a small
 * one, for 20 / 50 / 100 points (the arcade game's). The reward of a step is its points / 100.
 *
 * Every array the core touches is *borrowed* from buffers the caller (Python) owns:
 *
 *   state              [1] AsteroidsState   ship, bullets, rocks, lives, score, wave, step count (only 4-byte
 *                                           fields, no padding: Python views it as a NumPy structured array)
 *   observations       [ASTEROIDS_OBS_SIZE] float   see "Observation" below
 *   actions            [1] int32   ASTEROIDS_NUM_ACTIONS actions (asteroids_actions below); others act as noop
 *   rewards            [1] float   points scored this step / 100
 *   terminals          [1] uint8   the ship lost its last life
 *   truncations        [1] uint8   the episode reached max_steps steps (also set when it terminates then)
 *   final_observations [ASTEROIDS_OBS_SIZE] float   the last observation of the episode that ended this step
 *
 * Step (c_step), in this order:
 *   1. Turn (heading +-1 mod 32), thrust (velocity += ASTEROIDS_THRUST along the heading), drag (velocity *=
 *      ASTEROIDS_DRAG), speed clamp (ASTEROIDS_MAX_SPEED), move, wrap.
 *   2. The fire cooldown and the invulnerability counter drop by one where positive: each says in how many steps
 *      the ship can fire again, and can crash again.
 *   3. Bullets age by one step; those that reach age ASTEROIDS_BULLET_LIFE vanish.
 *   4. Fire, when asked, with cooldown 0 and a free bullet slot: a bullet at the ship's nose with the ship's
 *      velocity plus ASTEROIDS_BULLET_SPEED along the heading; the cooldown becomes ASTEROIDS_FIRE_COOLDOWN.
 *   5. Bullets and rocks move and wrap.
 *   6. Hits: each bullet, in slot order, hits the first rock, in slot order, not hit yet this step whose circle its
 *      path during the step (swept in the rock's frame, so fast bullets cannot tunnel) touched; the bullet
 *      vanishes and the rock's points are scored. Then every hit rock splits, from the last slot down: the two
 *      halves start at its centre with new random velocities, the first in its slot, the second in the first free
 *      slot; a small rock vanishes and the last rock moves into its slot.
 *   7. Crash: unless invulnerable, the ship crashes into the first rock, in slot order, that overlaps it. That rock
 *      splits as in 6 (no points) and the ship loses a life; with lives left it respawns at the centre, at rest,
 *      heading up, invulnerable for ASTEROIDS_INVULNERABLE_STEPS steps; with none the episode terminates.
 *   8. A cleared field starts the next wave: ASTEROIDS_FIRST_ROCKS + wave - 1 large rocks (at most
 *      ASTEROIDS_MAX_LARGE), at least ASTEROIDS_SAFE_DISTANCE from the ship along x or y, their speeds scaled by
 *      1 + 0.15 (wave - 1) (at most 2).
 *   9. Flags, statistics; where the episode ended, its last observation goes to final_observations and a new
 *      episode starts (auto-reset); then the observation is written.
 * Every random choice comes from the env's own splitmix64 stream, so a trajectory depends only on the seed and
 * the actions. The rocks fill a prefix of the ASTEROIDS_MAX_ROCKS slots (the first free slot ends the list, so
 * the loops test no slot for life), and the slots always suffice: a large rock never has more than 4 pieces.
 *
 * Observation (ASTEROIDS_OBS_SIZE = 56 floats, all in [-1, 1]); "ship frame" means (forward, left) along and
 * across the heading:
 *   0, 1   cos, sin of the heading
 *   2, 3   ship velocity in the ship frame / 8
 *   4      fire cooldown / ASTEROIDS_FIRE_COOLDOWN        5   invulnerability / ASTEROIDS_INVULNERABLE_STEPS
 *   6      lives left / num_lives                         7   rocks on the field / ASTEROIDS_MAX_ROCKS
 *   8 + 6k .. 13 + 6k, for the k-th nearest rock (k < ASTEROIDS_NEAREST = 8, nearest first by centre distance
 *          on the torus, ties by slot): its wrap-aware displacement from the ship in the ship frame / 160 (half
 *          the field's diagonal), its velocity relative to the ship in the ship frame / 12, its centre distance
 *          / 160, its radius / 16. Zeros where fewer rocks are on the field.
 *
 * Bit-identical across targets that evaluate float arithmetic in float (FLT_EVAL_METHOD 0: x86-64, aarch64,
 * wasm32; tests/unit/test_web_wasm.py checks native against wasm32): float32 state, only + - * / and sqrtf
 * (correctly rounded everywhere), the rotation from a table of float literals (no sin/cos/atan2/fmod/pow at run time),
 * wrap-around by comparisons; compile with -ffp-contract=off and without -ffast-math. No allocation, no stdio,
 * no globals but constants: the caller allocates the structs and every buffer.
 *
 * Build without Python: see asteroids_main.c (native) and thrust_cli/web/wasm/asteroids_demo.c (wasm32).
 */
#ifndef THRUST_ASTEROIDS_H
#define THRUST_ASTEROIDS_H

#include <math.h>
#include <stdint.h>

#include "../thrust_rng.h"

#define ASTEROIDS_WIDTH 256.0f
#define ASTEROIDS_HEIGHT 192.0f
#define ASTEROIDS_HALF_DIAGONAL 160.0f /* sqrt(128^2 + 96^2): the longest wrap-aware displacement */
#define ASTEROIDS_HEADINGS 32
#define ASTEROIDS_SHIP_RADIUS 5.0f
#define ASTEROIDS_THRUST 0.25f
#define ASTEROIDS_DRAG 0.985f
#define ASTEROIDS_MAX_SPEED 6.0f
#define ASTEROIDS_BULLET_SPEED 7.0f
#define ASTEROIDS_BULLET_RADIUS 1.0f
#define ASTEROIDS_BULLET_LIFE 20
#define ASTEROIDS_FIRE_COOLDOWN 5
#define ASTEROIDS_MAX_BULLETS 4 /* BULLET_LIFE / FIRE_COOLDOWN: a free slot whenever the cooldown allows a shot */
#define ASTEROIDS_INVULNERABLE_STEPS 60
#define ASTEROIDS_FIRST_ROCKS 4
#define ASTEROIDS_MAX_LARGE 10
#define ASTEROIDS_MAX_ROCKS (4 * ASTEROIDS_MAX_LARGE)
#define ASTEROIDS_SAFE_DISTANCE 48.0f
#define ASTEROIDS_NEAREST 8
#define ASTEROIDS_OBS_SHIP 8
#define ASTEROIDS_OBS_ROCK 6
#define ASTEROIDS_OBS_SIZE (ASTEROIDS_OBS_SHIP + ASTEROIDS_OBS_ROCK * ASTEROIDS_NEAREST)
#define ASTEROIDS_SHIP_SPEED_SCALE 8.0f /* > ASTEROIDS_MAX_SPEED, so rounding cannot push |obs| past 1 */
#define ASTEROIDS_REL_SPEED_SCALE 12.0f /* > max ship speed 6 + max rock speed 4 */
#define ASTEROIDS_NUM_ACTIONS 10

/* Rock sizes (the `size` field; 0 marks a free slot) and their radius, points and speed range (units/step,
 * before the wave's factor). */
#define ASTEROIDS_NONE 0
#define ASTEROIDS_SMALL 1
#define ASTEROIDS_MEDIUM 2
#define ASTEROIDS_LARGE 3
static const float asteroids_radius[4] = {0.0f, 4.0f, 8.0f, 16.0f};
static const int32_t asteroids_points[4] = {0, 100, 50, 20};
static const float asteroids_speed_lo[4] = {0.0f, 1.0f, 0.6f, 0.3f};
static const float asteroids_speed_hi[4] = {0.0f, 2.0f, 1.4f, 0.9f};

/* cos(2 pi h / 32) rounded to float32, h = 0..31 (printed once by numpy: str(np.float32(math.cos(...))), with
 * the exact zeros at h = 8 and 24); sin(2 pi h / 32) is entry (h + 24) mod 32. */
static const float asteroids_cos[ASTEROIDS_HEADINGS] = {
    1.0f,         0.98078525f,  0.9238795f,   0.8314696f,   0.70710677f,  0.55557024f,  0.38268343f,  0.19509032f,
    0.0f,         -0.19509032f, -0.38268343f, -0.55557024f, -0.70710677f, -0.8314696f,  -0.9238795f,  -0.98078525f,
    -1.0f,        -0.98078525f, -0.9238795f,  -0.8314696f,  -0.70710677f, -0.55557024f, -0.38268343f, -0.19509032f,
    0.0f,         0.19509032f,  0.38268343f,  0.55557024f,  0.70710677f,  0.8314696f,   0.9238795f,   0.98078525f,
};

/* What each action does: heading change (+1 left, counter-clockwise), thrust, fire. */
typedef struct AsteroidsAction {
    int8_t turn, thrust, fire;
} AsteroidsAction;
static const AsteroidsAction asteroids_actions[ASTEROIDS_NUM_ACTIONS] = {
    {0, 0, 0},  /* 0 noop */
    {0, 1, 0},  /* 1 thrust */
    {1, 0, 0},  /* 2 left */
    {-1, 0, 0}, /* 3 right */
    {0, 0, 1},  /* 4 fire */
    {1, 1, 0},  /* 5 thrust + left */
    {-1, 1, 0}, /* 6 thrust + right */
    {1, 0, 1},  /* 7 fire + left */
    {-1, 0, 1}, /* 8 fire + right */
    {0, 1, 1},  /* 9 thrust + fire */
};

/* Episode statistics, summed over the episodes finished since the binding last read and zeroed them. */
typedef struct Log {
    double episode_return;
    double episode_length;
    double score;
    double n;
} Log;

typedef struct AsteroidsBullet {
    float x, y, vx, vy;
    int32_t life; /* steps left; 0 marks a free slot */
} AsteroidsBullet;

typedef struct AsteroidsRock {
    float x, y, vx, vy;
    int32_t size;  /* SMALL, MEDIUM or LARGE; ASTEROIDS_NONE in a free slot, which ends the list of rocks */
    int32_t shape; /* 0..3, which outline render() draws */
} AsteroidsRock;

/* The game state of one env. Only 4-byte fields, so the layout has no padding and Python mirrors it. */
typedef struct AsteroidsState {
    float ship_x, ship_y, ship_vx, ship_vy;
    int32_t heading;      /* 0..31 */
    int32_t cooldown;     /* the ship can fire again this many steps later */
    int32_t invulnerable; /* the ship can crash again this many steps later */
    int32_t lives;
    int32_t thrusting; /* the last action thrust (render() draws the flame) */
    int32_t score;
    int32_t wave; /* 1 in the first wave */
    int32_t tick; /* steps taken in the current episode */
    AsteroidsBullet bullets[ASTEROIDS_MAX_BULLETS];
    AsteroidsRock rocks[ASTEROIDS_MAX_ROCKS];
} AsteroidsState;

typedef struct Asteroids {
    AsteroidsState* state;
    float* observations;
    const int32_t* actions;
    float* rewards;
    unsigned char* terminals;
    unsigned char* truncations;
    float* final_observations;
    Log log;
    double episode_return; /* of the current episode */
    uint64_t rng;          /* splitmix64 state, one stream per env */
    int32_t max_steps;
    int32_t num_lives;
} Asteroids;

static inline float asteroids_sin(int32_t heading) {
    return asteroids_cos[(heading + 24) & (ASTEROIDS_HEADINGS - 1)];
}

/* Uniform in [0, 1): the top 24 bits of `bits` times 2^-24 (exact in float32). */
static inline float asteroids_unit(uint64_t bits) {
    return (float)(bits >> 40) * 0x1.0p-24f;
}

/* Bring a coordinate that moved less than one period back into [0, period). */
static inline float asteroids_wrap(float v, float period) {
    if (v < 0.0f) {
        v += period;
    }
    if (v >= period) { /* also catches -tiny + period rounding to period */
        v -= period;
    }
    return v;
}

/* The shortest displacement b - a on a circle of `period`, for a, b in [0, period). */
static inline float asteroids_delta(float a, float b, float period) {
    float d = b - a;
    /* selects, not branches: a quarter of random pairs are more than half a period apart */
    d = d > 0.5f * period ? d - period : d;
    d = d < -0.5f * period ? d + period : d;
    return d;
}

/* The number of rocks: they fill the slots before the first free one. */
static inline int32_t asteroids_count(const AsteroidsState* s) {
    int32_t n = 0;
    while (n < ASTEROIDS_MAX_ROCKS && s->rocks[n].size != ASTEROIDS_NONE) {
        n++;
    }
    return n;
}

/* Seed the env's PRNG (the binding passes the object's seed plus the env's index). Draws nothing. */
static inline void c_seed(Asteroids* env, uint64_t seed) {
    env->rng = thrust_mix64(seed ^ 0x3C6EF372FE94F82BULL);
}

/* A random velocity for a rock of `size` (one of 32 directions, a uniform speed in its range times the wave's
 * factor) and a random outline. */
static inline void asteroids_launch(Asteroids* env, AsteroidsRock* rock, int32_t size, float factor) {
    uint64_t bits = thrust_next_u64(&env->rng);
    int32_t dir = (int32_t)(bits & (ASTEROIDS_HEADINGS - 1));
    float lo = asteroids_speed_lo[size], hi = asteroids_speed_hi[size];
    float speed = (lo + (hi - lo) * asteroids_unit(bits)) * factor;
    rock->vx = asteroids_cos[dir] * speed;
    rock->vy = asteroids_sin(dir) * speed;
    rock->size = size;
    rock->shape = (int32_t)((bits >> 5) & 3);
}

static inline float asteroids_wave_factor(int32_t wave) {
    float factor = 1.0f + 0.15f * (float)(wave - 1);
    return factor < 2.0f ? factor : 2.0f;
}

/* Fill the (empty) field with the rocks of the state's wave, away from the ship. */
static inline void asteroids_spawn_wave(Asteroids* env) {
    AsteroidsState* s = env->state;
    int32_t count = ASTEROIDS_FIRST_ROCKS + s->wave - 1;
    count = count < ASTEROIDS_MAX_LARGE ? count : ASTEROIDS_MAX_LARGE;
    float factor = asteroids_wave_factor(s->wave);
    for (int32_t j = 0; j < count; j++) {
        AsteroidsRock* rock = &s->rocks[j];
        uint64_t bits = thrust_next_u64(&env->rng);
        float x = asteroids_wrap(asteroids_unit(bits) * ASTEROIDS_WIDTH, ASTEROIDS_WIDTH);
        float y = asteroids_wrap(asteroids_unit(bits << 24) * ASTEROIDS_HEIGHT, ASTEROIDS_HEIGHT);
        float dx = asteroids_delta(s->ship_x, x, ASTEROIDS_WIDTH);
        float dy = asteroids_delta(s->ship_y, y, ASTEROIDS_HEIGHT);
        if (dx < ASTEROIDS_SAFE_DISTANCE && dx > -ASTEROIDS_SAFE_DISTANCE && dy < ASTEROIDS_SAFE_DISTANCE
            && dy > -ASTEROIDS_SAFE_DISTANCE) {
            /* too close: the point half a field away is at least 80 along x and 48 along y from the ship */
            x = asteroids_wrap(x + 0.5f * ASTEROIDS_WIDTH, ASTEROIDS_WIDTH);
            y = asteroids_wrap(y + 0.5f * ASTEROIDS_HEIGHT, ASTEROIDS_HEIGHT);
        }
        rock->x = x;
        rock->y = y;
        asteroids_launch(env, rock, ASTEROIDS_LARGE, factor);
    }
}

/* The ship at the centre, at rest, heading up. */
static inline void asteroids_place_ship(AsteroidsState* s) {
    s->ship_x = 0.5f * ASTEROIDS_WIDTH;
    s->ship_y = 0.5f * ASTEROIDS_HEIGHT;
    s->ship_vx = 0.0f;
    s->ship_vy = 0.0f;
    s->heading = ASTEROIDS_HEADINGS / 4;
}

/* A new episode into env->state (every field written), without the observation. */
static inline void asteroids_new_episode(Asteroids* env) {
    AsteroidsState* s = env->state;
    asteroids_place_ship(s);
    s->cooldown = 0;
    s->invulnerable = 0;
    s->lives = env->num_lives;
    s->thrusting = 0;
    s->score = 0;
    s->wave = 1;
    s->tick = 0;
    for (int32_t b = 0; b < ASTEROIDS_MAX_BULLETS; b++) {
        s->bullets[b] = (AsteroidsBullet){0.0f, 0.0f, 0.0f, 0.0f, 0};
    }
    for (int32_t j = 0; j < ASTEROIDS_MAX_ROCKS; j++) {
        s->rocks[j] = (AsteroidsRock){0.0f, 0.0f, 0.0f, 0.0f, ASTEROIDS_NONE, 0};
    }
    env->episode_return = 0.0;
    asteroids_spawn_wave(env);
}

/* The observation of state `s` (the layout in the header comment). */
static inline void asteroids_write_obs(const AsteroidsState* s, int32_t num_lives, float* obs) {
    const int32_t h = s->heading & (ASTEROIDS_HEADINGS - 1);
    const float c = asteroids_cos[h], sn = asteroids_sin(h);
    const float vx = s->ship_vx, vy = s->ship_vy;
    /* the nearest rocks, sorted by squared distance; a later rock goes after an equally near one */
    float best_d2[ASTEROIDS_NEAREST], best_dx[ASTEROIDS_NEAREST], best_dy[ASTEROIDS_NEAREST];
    int32_t best[ASTEROIDS_NEAREST];
    const int32_t num_rocks = asteroids_count(s);
    int32_t found = 0;
    for (int32_t j = 0; j < num_rocks; j++) {
        const AsteroidsRock* rock = &s->rocks[j];
        float dx = asteroids_delta(s->ship_x, rock->x, ASTEROIDS_WIDTH);
        float dy = asteroids_delta(s->ship_y, rock->y, ASTEROIDS_HEIGHT);
        float d2 = dx * dx + dy * dy;
        int32_t k = found < ASTEROIDS_NEAREST ? found++ : ASTEROIDS_NEAREST;
        if (k == ASTEROIDS_NEAREST) {
            if (!(d2 < best_d2[ASTEROIDS_NEAREST - 1])) {
                continue;
            }
            k = ASTEROIDS_NEAREST - 1;
        }
        for (; k > 0 && best_d2[k - 1] > d2; k--) {
            best_d2[k] = best_d2[k - 1];
            best_dx[k] = best_dx[k - 1];
            best_dy[k] = best_dy[k - 1];
            best[k] = best[k - 1];
        }
        best_d2[k] = d2;
        best_dx[k] = dx;
        best_dy[k] = dy;
        best[k] = j;
    }
    obs[0] = c;
    obs[1] = sn;
    obs[2] = (vx * c + vy * sn) / ASTEROIDS_SHIP_SPEED_SCALE;
    obs[3] = (vy * c - vx * sn) / ASTEROIDS_SHIP_SPEED_SCALE;
    obs[4] = (float)s->cooldown / (float)ASTEROIDS_FIRE_COOLDOWN;
    obs[5] = (float)s->invulnerable / (float)ASTEROIDS_INVULNERABLE_STEPS;
    obs[6] = (float)s->lives / (float)num_lives;
    obs[7] = (float)num_rocks / (float)ASTEROIDS_MAX_ROCKS;
    for (int32_t k = 0; k < ASTEROIDS_NEAREST; k++) {
        float* o = obs + ASTEROIDS_OBS_SHIP + ASTEROIDS_OBS_ROCK * k;
        if (k >= found) {
            for (int32_t f = 0; f < ASTEROIDS_OBS_ROCK; f++) {
                o[f] = 0.0f;
            }
            continue;
        }
        const AsteroidsRock* rock = &s->rocks[best[k]];
        const float dx = best_dx[k], dy = best_dy[k];
        const float rvx = rock->vx - vx, rvy = rock->vy - vy;
        o[0] = (dx * c + dy * sn) / ASTEROIDS_HALF_DIAGONAL;
        o[1] = (dy * c - dx * sn) / ASTEROIDS_HALF_DIAGONAL;
        o[2] = (rvx * c + rvy * sn) / ASTEROIDS_REL_SPEED_SCALE;
        o[3] = (rvy * c - rvx * sn) / ASTEROIDS_REL_SPEED_SCALE;
        o[4] = sqrtf(best_d2[k]) / ASTEROIDS_HALF_DIAGONAL;
        o[5] = asteroids_radius[rock->size & 3] / asteroids_radius[ASTEROIDS_LARGE];
    }
}

/* Start a new episode: draw the field, write the observation. */
static inline void c_reset(Asteroids* env) {
    asteroids_new_episode(env);
    asteroids_write_obs(env->state, env->num_lives, env->observations);
}

/* Split rock j of the num_rocks in the list (step 6); returns the new number of rocks. */
static inline int32_t asteroids_split(Asteroids* env, int32_t j, int32_t num_rocks) {
    AsteroidsState* s = env->state;
    AsteroidsRock* rock = &s->rocks[j];
    int32_t size = (rock->size & 3) - 1;
    if (size == ASTEROIDS_NONE) {
        num_rocks--;
        *rock = s->rocks[num_rocks];
        s->rocks[num_rocks] = (AsteroidsRock){0.0f, 0.0f, 0.0f, 0.0f, ASTEROIDS_NONE, 0};
        return num_rocks;
    }
    float factor = asteroids_wave_factor(s->wave);
    asteroids_launch(env, rock, size, factor);
    if (num_rocks < ASTEROIDS_MAX_ROCKS) { /* always, for a field the core made */
        AsteroidsRock* half = &s->rocks[num_rocks++];
        half->x = rock->x;
        half->y = rock->y;
        asteroids_launch(env, half, size, factor);
    }
    return num_rocks;
}

/* Did a bullet's path during the step touch the rock? Both are at their new positions; in the rock's frame the
 * bullet moved by (bullet v - rock v), so its closest approach is over the segment back from its position. */
static inline int asteroids_bullet_hits(const AsteroidsBullet* bullet, const AsteroidsRock* rock) {
    float rx = asteroids_delta(bullet->x, rock->x, ASTEROIDS_WIDTH);
    float ry = asteroids_delta(bullet->y, rock->y, ASTEROIDS_HEIGHT);
    float wx = rock->vx - bullet->vx, wy = rock->vy - bullet->vy;
    float reach = asteroids_radius[rock->size & 3] + ASTEROIDS_BULLET_RADIUS;
    /* Quick rejection, which never changes the answer: along either axis the path stays farther than reach plus
     * a unit of slack (far more than any rounding below) from the centre. */
    float ax = rx < 0.0f ? -rx : rx, ay = ry < 0.0f ? -ry : ry;
    float awx = wx < 0.0f ? -wx : wx, awy = wy < 0.0f ? -wy : wy;
    if (ax > reach + awx + 1.0f || ay > reach + awy + 1.0f) {
        return 0;
    }
    float ww = wx * wx + wy * wy;
    float u = 0.0f; /* how far back along the step, in [0, 1] */
    if (ww > 0.0f) {
        u = (rx * wx + ry * wy) / ww;
        u = u < 0.0f ? 0.0f : (u > 1.0f ? 1.0f : u);
    }
    float px = rx - u * wx, py = ry - u * wy;
    return px * px + py * py < reach * reach;
}

/* Step one env with its action (the phases in the header comment); auto-reset where the episode ends. */
static inline void c_step(Asteroids* env) {
    AsteroidsState* s = env->state;
    const int32_t a = env->actions[0];
    const AsteroidsAction act = asteroids_actions[(uint32_t)a < ASTEROIDS_NUM_ACTIONS ? a : 0];

    /* 1. the ship */
    const int32_t h = (s->heading + act.turn) & (ASTEROIDS_HEADINGS - 1);
    const float c = asteroids_cos[h], sn = asteroids_sin(h);
    float vx = s->ship_vx, vy = s->ship_vy;
    if (act.thrust) {
        vx += ASTEROIDS_THRUST * c;
        vy += ASTEROIDS_THRUST * sn;
    }
    vx *= ASTEROIDS_DRAG;
    vy *= ASTEROIDS_DRAG;
    float speed2 = vx * vx + vy * vy;
    if (speed2 > ASTEROIDS_MAX_SPEED * ASTEROIDS_MAX_SPEED) {
        float scale = ASTEROIDS_MAX_SPEED / sqrtf(speed2);
        vx *= scale;
        vy *= scale;
    }
    s->heading = h;
    s->ship_vx = vx;
    s->ship_vy = vy;
    s->ship_x = asteroids_wrap(s->ship_x + vx, ASTEROIDS_WIDTH);
    s->ship_y = asteroids_wrap(s->ship_y + vy, ASTEROIDS_HEIGHT);
    s->thrusting = act.thrust;

    /* 2. timers */
    s->cooldown -= s->cooldown > 0;
    s->invulnerable -= s->invulnerable > 0;

    /* 3. bullets age */
    for (int32_t b = 0; b < ASTEROIDS_MAX_BULLETS; b++) {
        s->bullets[b].life -= s->bullets[b].life > 0;
    }

    /* 4. fire */
    if (act.fire && s->cooldown == 0) {
        for (int32_t b = 0; b < ASTEROIDS_MAX_BULLETS; b++) {
            AsteroidsBullet* bullet = &s->bullets[b];
            if (bullet->life <= 0) {
                bullet->x = asteroids_wrap(s->ship_x + ASTEROIDS_SHIP_RADIUS * c, ASTEROIDS_WIDTH);
                bullet->y = asteroids_wrap(s->ship_y + ASTEROIDS_SHIP_RADIUS * sn, ASTEROIDS_HEIGHT);
                bullet->vx = vx + ASTEROIDS_BULLET_SPEED * c;
                bullet->vy = vy + ASTEROIDS_BULLET_SPEED * sn;
                bullet->life = ASTEROIDS_BULLET_LIFE;
                s->cooldown = ASTEROIDS_FIRE_COOLDOWN;
                break;
            }
        }
    }

    /* 5. motion */
    for (int32_t b = 0; b < ASTEROIDS_MAX_BULLETS; b++) {
        AsteroidsBullet* bullet = &s->bullets[b];
        if (bullet->life > 0) {
            bullet->x = asteroids_wrap(bullet->x + bullet->vx, ASTEROIDS_WIDTH);
            bullet->y = asteroids_wrap(bullet->y + bullet->vy, ASTEROIDS_HEIGHT);
        }
    }
    int32_t num_rocks = asteroids_count(s);
    for (int32_t j = 0; j < num_rocks; j++) {
        AsteroidsRock* rock = &s->rocks[j];
        rock->x = asteroids_wrap(rock->x + rock->vx, ASTEROIDS_WIDTH);
        rock->y = asteroids_wrap(rock->y + rock->vy, ASTEROIDS_HEIGHT);
    }

    /* 6. hits, then splits */
    unsigned char hit[ASTEROIDS_MAX_ROCKS] = {0};
    int32_t points = 0, num_hit = 0;
    for (int32_t b = 0; b < ASTEROIDS_MAX_BULLETS; b++) {
        AsteroidsBullet* bullet = &s->bullets[b];
        if (bullet->life <= 0) {
            continue;
        }
        for (int32_t j = 0; j < num_rocks; j++) {
            if (!hit[j] && asteroids_bullet_hits(bullet, &s->rocks[j])) {
                hit[j] = 1;
                num_hit++;
                points += asteroids_points[s->rocks[j].size & 3];
                bullet->life = 0;
                break;
            }
        }
    }
    for (int32_t j = num_rocks - 1; num_hit > 0 && j >= 0; j--) {
        if (hit[j]) {
            num_rocks = asteroids_split(env, j, num_rocks);
            num_hit--;
        }
    }

    /* 7. crash */
    if (s->invulnerable == 0) {
        for (int32_t j = 0; j < num_rocks; j++) {
            const AsteroidsRock* rock = &s->rocks[j];
            float dx = asteroids_delta(s->ship_x, rock->x, ASTEROIDS_WIDTH);
            float dy = asteroids_delta(s->ship_y, rock->y, ASTEROIDS_HEIGHT);
            float reach = asteroids_radius[rock->size & 3] + ASTEROIDS_SHIP_RADIUS;
            if (dx * dx + dy * dy < reach * reach) {
                num_rocks = asteroids_split(env, j, num_rocks);
                s->lives--;
                if (s->lives > 0) {
                    asteroids_place_ship(s);
                    s->invulnerable = ASTEROIDS_INVULNERABLE_STEPS;
                }
                break;
            }
        }
    }
    const int terminal = s->lives <= 0;

    /* 8. the next wave */
    if (!terminal && num_rocks == 0) {
        s->wave++;
        asteroids_spawn_wave(env);
    }

    /* 9. flags, statistics, auto-reset, observation */
    s->score += points;
    s->tick++;
    const float reward = (float)points / 100.0f;
    const int truncation = s->tick >= env->max_steps;
    env->episode_return += (double)reward;
    env->rewards[0] = reward;
    env->terminals[0] = (unsigned char)terminal;
    env->truncations[0] = (unsigned char)truncation;
    if (terminal | truncation) {
        env->log.episode_return += env->episode_return;
        env->log.episode_length += (double)s->tick;
        env->log.score += (double)s->score;
        env->log.n += 1.0;
        asteroids_write_obs(s, env->num_lives, env->final_observations);
        asteroids_new_episode(env);
    }
    asteroids_write_obs(s, env->num_lives, env->observations);
}

/* Step envs[0..n) once each, in one call (the entry point every binding uses). */
static inline void c_step_all(Asteroids* envs, int n) {
    for (int i = 0; i < n; i++) {
        c_step(&envs[i]);
    }
}

#endif /* THRUST_ASTEROIDS_H */
