#ifndef NN_RNG_H
#define NN_RNG_H

#include <stdint.h>

/* PCG32 (O'Neill 2014): small, fast, and its whole state is two integers, so
 * a checkpoint can store it and training resumes bit-exactly. */
typedef struct {
    uint64_t state;
    uint64_t increment;
} Rng;

void rng_seed(Rng *rng, uint64_t seed);
/* Derives an independent stream (e.g. one per worker or per image index). */
void rng_seed_stream(Rng *rng, uint64_t seed, uint64_t stream);

/* Inline: dropout draws one number per activation, and a call each was 3 %
 * of a Transformer training step. */
static inline uint32_t rng_next_u32(Rng *rng) {
    uint64_t old = rng->state;
    rng->state = old * 6364136223846793005ULL + rng->increment;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31u));
}

/* Uniform in [0, 1). */
static inline float rng_uniform(Rng *rng) { return (float)(rng_next_u32(rng) >> 8) * (1.0f / 16777216.0f); }

/* Uniform integer in [0, bound). */
uint32_t rng_below(Rng *rng, uint32_t bound);
/* Standard normal (Box-Muller). */
float rng_normal(Rng *rng);

#endif
