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
uint32_t rng_next_u32(Rng *rng);
/* Uniform in [0, 1). */
float rng_uniform(Rng *rng);
/* Uniform integer in [0, bound). */
uint32_t rng_below(Rng *rng, uint32_t bound);
/* Standard normal (Box-Muller). */
float rng_normal(Rng *rng);

#endif
