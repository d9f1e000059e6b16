#ifndef NN_DROPOUT_H
#define NN_DROPOUT_H

#include "rng.h"

/* Inverted dropout: each element is kept with probability 1 - p and scaled by
 * 1 / (1 - p), so inference is the identity. The per-element scale (0 or
 * 1/(1-p)) is saved in mask for backward. p = 0 copies. */
void dropout_forward(float *out, float *mask, const float *in, long n, float p, Rng *rng);
/* Accumulates d_out * mask into d_in. */
void dropout_backward(float *d_in, const float *d_out, const float *mask, long n);

#endif
