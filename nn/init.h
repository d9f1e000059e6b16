#ifndef NN_INIT_H
#define NN_INIT_H

#include <stddef.h>

#include "rng.h"

/* Initialisation as PyTorch's defaults: Linear and Conv2d weights and biases
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5)),
 * LSTM U(-1/sqrt(hidden), 1/sqrt(hidden)), Embedding N(0, 1). */
void init_uniform(float *x, size_t n, float bound, Rng *rng);
void init_normal(float *x, size_t n, float std, Rng *rng);
void init_constant(float *x, size_t n, float value);

#endif
