#include "rng.h"

#include <math.h>

void rng_seed_stream(Rng *rng, uint64_t seed, uint64_t stream) {
    rng->state = 0;
    rng->increment = (stream << 1u) | 1u;
    rng_next_u32(rng);
    rng->state += seed;
    rng_next_u32(rng);
}

void rng_seed(Rng *rng, uint64_t seed) { rng_seed_stream(rng, seed, 0x5851f42d4c957f2dULL); }

uint32_t rng_below(Rng *rng, uint32_t bound) {
    /* Rejection keeps the distribution exactly uniform. */
    uint32_t threshold = (0u - bound) % bound;
    for (;;) {
        uint32_t r = rng_next_u32(rng);
        if (r >= threshold) return r % bound;
    }
}

float rng_normal(Rng *rng) {
    double u1 = ((double)rng_next_u32(rng) + 1.0) / 4294967297.0;
    double u2 = (double)rng_next_u32(rng) / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
