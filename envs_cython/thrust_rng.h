/* The PRNG every Thrust C env uses: splitmix64, one 64-bit state per env (never rand()).
 *
 * splitmix64: Steele, Lea & Flood 2014, "Fast splittable pseudorandom number generators"; constants from
 * Vigna's reference implementation (https://prng.di.unimi.it/splitmix64.c). Each env seeds its state by
 * mixing its seed with a per-env-type constant, so env types never share streams for the same seed.
 */
#ifndef THRUST_RNG_H
#define THRUST_RNG_H

#include <stdint.h>

/* The splitmix64 finalizer: a bijective mix of 64 bits. */
static inline uint64_t thrust_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Advance the state and return the next 64 random bits. */
static inline uint64_t thrust_next_u64(uint64_t* state) {
    *state += 0x9E3779B97F4A7C15ULL;
    return thrust_mix64(*state);
}

#endif /* THRUST_RNG_H */
