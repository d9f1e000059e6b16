#ifndef NN_LAYERNORM_H
#define NN_LAYERNORM_H

/* Layer normalisation over the last dimension (Ba et al. 2016), as PyTorch's
 * nn.LayerNorm(dim, eps):
 *   out[r, :] = (in[r, :] - mean_r) * rstd_r * weight + bias,
 *   rstd_r = 1 / sqrt(var_r + eps), var the biased variance.
 * mean and rstd ([rows]) are kept for the backward. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *weight, const float *bias,
                       int rows, int dim, float eps);

/* Accumulates into d_in, d_weight and d_bias (any may be NULL). */
void layernorm_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out, const float *in,
                        const float *mean, const float *rstd, const float *weight, int rows, int dim);

#endif
