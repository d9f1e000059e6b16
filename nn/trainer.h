#ifndef NN_TRAINER_H
#define NN_TRAINER_H

#include "decoder.h"
#include "encoder.h"
#include "model.h"
#include "optimizer.h"

/* Everything one training step of the whole model needs besides the data:
 * gradient and Adam moment blocks (the model's layout) and the activations. */
typedef struct {
    SatModel *model;
    float *grads, *adam_m, *adam_v; /* model->table.total floats each */
    SatTensors g;
    EncoderBuffers encoder;
    DecoderBuffers decoder;
    float *z, *d_z, *d_features;    /* [images, cells, features] and [images, D, H, W] */
    int image_capacity;
    long step;                      /* optimiser steps taken */
    AdamConfig adam;
} SatTrainer;

int sat_trainer_init(SatTrainer *trainer, SatModel *model, int image_capacity, int row_capacity,
                     int step_capacity, Error *err);
void sat_trainer_free(SatTrainer *trainer);

/* Forward and backward of the whole model on a batch: images [images, 3, S, S]
 * (normalised), captions as in DecoderBatch. Zeroes, then fills, the gradients.
 * Batch norm uses batch statistics and updates its running averages. */
SatLoss sat_forward_backward(SatTrainer *trainer, const float *images, int image_count,
                             const DecoderBatch *batch, Rng *rng);

/* The loss in inference mode (running batch-norm statistics, no dropout). */
SatLoss sat_evaluate_loss(SatTrainer *trainer, const float *images, int image_count,
                          const DecoderBatch *batch);

/* Clips the gradients to max_norm (<= 0: no clipping), then one AdamW step
 * (weight decay only on TENSOR_DECAY tensors). Returns the norm before clipping. */
float sat_optimizer_step(SatTrainer *trainer, float lr, float weight_decay, float max_norm);

#endif
