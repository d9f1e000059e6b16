#ifndef NN_BATCHNORM_H
#define NN_BATCHNORM_H

#include "replica.h"

#include "replica.h"

/* Batch normalisation over the channels of NCHW activations, as PyTorch's
 * BatchNorm2d: training normalises with the batch statistics (biased variance)
 * and updates running averages (unbiased variance); inference uses the running
 * averages, or the layer is folded into the preceding convolution. */
typedef struct {
    int batch, channels, spatial; /* spatial = height * width */
    float eps, momentum;          /* PyTorch defaults: 1e-5, 0.1 */
    /* Data-parallel training (synchronised batch norm): the statistics of
     * forward and backward are those of the global batch, summed over the
     * replicas, so N replicas normalise as one process with the whole batch
     * would. replica_scratch holds 2 * channels + 1 doubles. NULL: this
     * batch alone. */
    const ReplicaSum *replicas;
    double *replica_scratch;
} BatchNormShape;

/* saved_mean and saved_inv_std ([channels]) are kept for backward. The running
 * statistics are updated unless they are NULL. */
void batchnorm_forward_train(float *out, float *saved_mean, float *saved_inv_std,
                             float *running_mean, float *running_var, const float *in,
                             const float *gamma, const float *beta, const BatchNormShape *shape);

void batchnorm_forward_infer(float *out, const float *in, const float *gamma, const float *beta,
                             const float *running_mean, const float *running_var,
                             const BatchNormShape *shape);

/* Accumulates into d_in, d_gamma and d_beta (batch-statistics mode). With
 * replicas, d_gamma and d_beta get this replica's part (the gradient sum over
 * replicas completes them); d_in uses the global batch's sums. */
void batchnorm_backward(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                        const float *in, const float *saved_mean, const float *saved_inv_std,
                        const float *gamma, const BatchNormShape *shape);

/* Folds inference-mode batch norm into the convolution before it:
 * w' = w * gamma / sqrt(var + eps), b' = (b - mean) * gamma / sqrt(var + eps) + beta.
 * conv_bias may be NULL (treated as zero). */
void batchnorm_fold_into_conv(float *folded_weight, float *folded_bias, const float *conv_weight,
                              const float *conv_bias, const float *gamma, const float *beta,
                              const float *running_mean, const float *running_var,
                              int out_channels, long weights_per_channel, float eps);

#endif
