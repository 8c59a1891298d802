/* The harness every standalone <env>_main.c shares: invariant checks, timing, and the command line.
 *
 * A driver defines THRUST_DRIVER (its name, e.g. "cartpole_main", which prefixes every message) and includes
 * this header before anything else (it sets _POSIX_C_SOURCE for clock_gettime), then its env's header. Only C99
 * and POSIX; builds with -Wall -Wextra -Werror under the sanitizers (tests/conftest.py: run_under_sanitizers).
 */
#ifndef THRUST_DRIVER_H
#define THRUST_DRIVER_H

#ifndef THRUST_DRIVER
#error "define THRUST_DRIVER, the driver's name, before including thrust_driver.h"
#endif

#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Checks that failed so far; a driver exits 1 when any did. */
static int failures = 0;

/* Count a failed check; print the first ten, with printf-style detail. */
#define EXPECT(cond, ...)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            if (failures++ < 10) {                                            \
                fprintf(stderr, THRUST_DRIVER ": check failed: %s: ", #cond); \
                fprintf(stderr, __VA_ARGS__);                                 \
                fprintf(stderr, "\n");                                        \
            }                                                                 \
        }                                                                     \
    } while (0)

/* Seconds on the monotonic clock. */
static inline double thrust_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int thrust_cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

/* Sort v[0..n) in place and return its median (the upper one for even n). */
static inline double thrust_median(double* v, int n) {
    qsort(v, (size_t)n, sizeof(double), thrust_cmp_double);
    return v[n / 2];
}

/* Timed repetitions of a bench mode, each driver's medians are over these: THRUST_BENCH_MAX_REPS unless
 * `--bench --reps N` asks for fewer (`thrust bench --seconds 0.05` does, to stay quick). */
#define THRUST_BENCH_MAX_REPS 15
static int thrust_bench_reps = THRUST_BENCH_MAX_REPS;

/* Bench contenders timed against each other; a driver passes at most this many to thrust_bench_interleaved. */
#define THRUST_BENCH_MAX_CASES 4

/* Median agent-steps/s of each of `cases` contenders into medians[0..cases): repetition -1 warms up, then
 * thrust_bench_reps timed repetitions, in each of which every contender in turn (interleaved, so a change of
 * load hits all alike) runs `steps` calls of step(ctx, k, t) with the global step index t (the same sequence for
 * every contender, so they can pick the same actions); one call steps `agents` agents. */
static inline void thrust_bench_interleaved(int cases, int steps, double agents, void (*step)(void*, int, long),
                                            void* ctx, double* medians) {
    double sps[THRUST_BENCH_MAX_CASES][THRUST_BENCH_MAX_REPS];
    long t = 0;
    for (int rep = -1; rep < thrust_bench_reps; rep++) {
        for (int k = 0; k < cases; k++) {
            double t0 = thrust_now_s();
            for (int i = 0; i < steps; i++) {
                step(ctx, k, t + i);
            }
            if (rep >= 0) {
                sps[k][rep] = agents * steps / (thrust_now_s() - t0);
            }
        }
        t += steps;
    }
    for (int k = 0; k < cases; k++) {
        medians[k] = thrust_median(sps[k], thrust_bench_reps);
    }
}

/* A `--name VALUE` option of a bench mode: an int in [lo, hi] stored into *value. */
typedef struct ThrustOption {
    const char* name;
    int* value;
    int lo, hi;
} ThrustOption;

static inline void thrust_usage(const char* program, const ThrustOption* options, int count) {
    fprintf(stderr, "usage: %s [--bench [--reps 1..%d]", program, THRUST_BENCH_MAX_REPS);
    for (int k = 0; k < count; k++) {
        fprintf(stderr, " [%s %d..%d]", options[k].name, options[k].lo, options[k].hi);
    }
    fprintf(stderr, "]\n");
}

/* Parse argv[first..argc) as `--name VALUE` pairs of `options` or `--reps`; 0 (after saying why) on a name
 * that is neither, a missing value, or a value that is not a decimal int in range. */
static inline int thrust_parse_options(int argc, char** argv, int first, const ThrustOption* options, int count) {
    for (int i = first; i < argc; i += 2) {
        ThrustOption option = {"--reps", &thrust_bench_reps, 1, THRUST_BENCH_MAX_REPS};
        int known = strcmp(argv[i], option.name) == 0;
        for (int k = 0; k < count && !known; k++) {
            if (strcmp(argv[i], options[k].name) == 0) {
                option = options[k];
                known = 1;
            }
        }
        if (!known || i + 1 >= argc) {
            fprintf(stderr, THRUST_DRIVER ": %s '%s'\n", known ? "no value after" : "unknown option", argv[i]);
            return 0;
        }
        char* end = NULL;
        long value = strtol(argv[i + 1], &end, 10);
        if (end == argv[i + 1] || *end != '\0' || value < option.lo || value > option.hi) {
            fprintf(stderr, THRUST_DRIVER ": %s %s: expected an integer in [%d, %d]\n", option.name, argv[i + 1],
                    option.lo, option.hi);
            return 0;
        }
        *option.value = (int)value;
    }
    return 1;
}

/* main() of a driver with a check mode (no arguments) and a bench mode (`--bench`, then `--reps N` and the
 * driver's own `options`, which set the variables they point to before run_bench runs); 2 on other arguments. */
static inline int thrust_driver_main(int argc, char** argv, int (*run_check)(void), int (*run_bench)(void),
                                     const ThrustOption* options, int count) {
    if (argc >= 2 && strcmp(argv[1], "--bench") == 0) {
        if (!thrust_parse_options(argc, argv, 2, options, count)) {
            thrust_usage(argv[0], options, count);
            return 2;
        }
        return run_bench();
    }
    if (argc != 1) {
        thrust_usage(argv[0], options, count);
        return 2;
    }
    return run_check();
}

#endif /* THRUST_DRIVER_H */
