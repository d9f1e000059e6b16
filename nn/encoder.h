#ifndef NN_ENCODER_H
#define NN_ENCODER_H

#include "core_helper.h"
#include "model.h"
#include "replica.h"

/* The CNN encoder of the model: conv3x3 -> batch norm -> ReLU [-> max-pool 2x2]
 * per layer. Buffers for a batch of up to `capacity` images. */
typedef struct {
    int capacity;
    float *conv_out[SAT_MAX_CONV]; /* before batch norm (training) */
    float *relu_out[SAT_MAX_CONV];
    float *pool_out[SAT_MAX_CONV];
    int *argmax[SAT_MAX_CONV];
    float *bn_mean[SAT_MAX_CONV], *bn_inv_std[SAT_MAX_CONV];
    float *workspace;             /* im2col */
    float *grad_a, *grad_b, *grad_c; /* backward: three, so no step reads what it writes */
    float *grad_skip;             /* backward: a residual block's shortcut gradient, until the block's input */
    const ReplicaSum *replicas;   /* data-parallel training: batch norm over the global batch
                                     (batchnorm.h); NULL: over this batch */
    double *replica_scratch;      /* 2 * widest layer + 1 */
} EncoderBuffers;

int encoder_buffers_alloc(EncoderBuffers *buffers, const SatModel *model, int capacity, Error *err);
void encoder_buffers_free(EncoderBuffers *buffers);

/* Training mode (batch statistics; running statistics updated when
 * update_running_stats). images: [batch, 3, S, S]. Returns the final feature
 * map [batch, D, H, W], owned by buffers. */
const float *encoder_forward_train(const SatModel *model, EncoderBuffers *buffers,
                                   const float *images, int batch, int update_running_stats);

/* Accumulates parameter gradients into grads given dL/dfeatures. */
void encoder_backward(const SatModel *model, const SatTensors *grads, EncoderBuffers *buffers,
                      const float *images, const float *d_features, int batch);

/* Inference with batch norm folded into the convolutions (needs
 * sat_model_prepare_inference). Returns [batch, D, H, W], owned by buffers.
 * helper (may be NULL): a second core for the convolutions' products. */
const float *encoder_forward_infer(const SatModel *model, EncoderBuffers *buffers,
                                   const float *images, int batch, CoreHelper *helper);

/* [batch, D, L] -> [batch, L, D]: the annotation vectors z_i, one row per cell. */
void features_to_annotations(float *z, const float *features, int batch, int features_dim, int cells);
/* The adjoint: accumulates dL/dz into dL/dfeatures. */
void annotations_to_features_grad(float *d_features, const float *d_z, int batch, int features_dim,
                                  int cells);

#endif
