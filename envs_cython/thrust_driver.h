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

/* main() of a driver with a check mode (no arguments) and a bench mode (`--bench`); 2 on other arguments. */
static inline int thrust_driver_main(int argc, char** argv, int (*run_check)(void), int (*run_bench)(void)) {
    if (argc == 2 && strcmp(argv[1], "--bench") == 0) {
        return run_bench();
    }
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--bench]\n", argv[0]);
        return 2;
    }
    return run_check();
}

#endif /* THRUST_DRIVER_H */
