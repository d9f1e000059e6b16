#ifndef NN_LINEAR_H
#define NN_LINEAR_H

#include "error.h"

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

/* A second thread for the products of a few rows (beam search): each
 * *_shared call gives it half of the output features while the caller
 * computes the other half. Between calls it spins briefly, then sleeps. For a
 * decoder that runs alone on the machine: captioners that already run one per
 * core would only fight over the cores. */
typedef struct RowHelper RowHelper;
int row_helper_create(RowHelper **helper, Error *err);
void row_helper_free(RowHelper *helper);

/* matmul_weight_t and linear_forward with the helper's help; helper may be
 * NULL, and products of more than 4 rows or too few weights run alone. */
void matmul_weight_t_shared(RowHelper *helper, float *out, const float *in, const float *weight, int rows,
                            int in_features, int out_features, float beta);
void linear_forward_shared(RowHelper *helper, float *out, const float *in, const float *weight,
                           const float *bias, int rows, int in_features, int out_features);

void linear_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out,
                     const float *in, const float *weight,
                     int rows, int in_features, int out_features);

#endif
