#include "init.h"

void init_uniform(float *x, size_t n, float bound, Rng *rng) {
    for (size_t i = 0; i < n; i++) x[i] = (2.0f * rng_uniform(rng) - 1.0f) * bound;
}

void init_normal(float *x, size_t n, float std, Rng *rng) {
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(rng) * std;
}

void init_constant(float *x, size_t n, float value) {
    for (size_t i = 0; i < n; i++) x[i] = value;
}
