#ifndef NN_LINEAR_H
#define NN_LINEAR_H

#include "core_helper.h"

/* Fully connected layer with PyTorch's weight layout [out_features, in_features]:
 *   out[r, o] = sum_i in[r, i] * weight[o, i] + bias[o]
 * Forward overwrites out. Backward accumulates (+=) into every gradient it is
 * given; pass NULL for a gradient that is not needed (d_in of a model input,
 * d_bias of a layer without bias). */
void linear_forward(float *out, const float *in, const float *weight, const float *bias,
                    int rows, int in_features, int out_features);

/* out[r, o] = beta * out[r, o] + sum_i in[r, i] * weight[o, i]: the product of
 * linear_forward, for callers that add to what out holds (the LSTM's W_hh h). */
void matmul_weight_t(float *out, const float *in, const float *weight, int rows, int in_features,
                     int out_features, float beta);

/* matmul_weight_t and linear_forward with a second core's help (core_helper.h:
 * half of the output features each, the same result bit for bit); helper
 * may be NULL, and products of more than 4 rows or too few weights run
 * alone. */
void matmul_weight_t_shared(CoreHelper *helper, float *out, const float *in, const float *weight, int rows,
                            int in_features, int out_features, float beta);
void linear_forward_shared(CoreHelper *helper, float *out, const float *in, const float *weight,
                           const float *bias, int rows, int in_features, int out_features);

void linear_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out,
                     const float *in, const float *weight,
                     int rows, int in_features, int out_features);

#endif
