#ifndef NN_TRAINER_H
#define NN_TRAINER_H

#include "decoder.h"
#include "encoder.h"
#include "model.h"
#include "optimizer.h"

/* The auxiliary word loss (model->config.aux_weight > 0; all NULL otherwise):
 * per image, the mean annotation vector zbar, logits W_aux zbar + b_aux over
 * the vocabulary, and targets t_v = 1 where word v occurs in any of the
 * image's caption rows of the batch. The special tokens (ids 0..3) are
 * neither targets nor counted in the loss. */
typedef struct {
    float *z_mean, *d_z_mean;                      /* [images, D] */
    float *logits, *probs, *targets, *d_logits;    /* [images, V] */
    unsigned char *class_mask;                     /* [V] */
} AuxBuffers;

/* Everything one training step of the whole model needs besides the data:
 * gradient and Adam moment blocks (the model's layout) and the activations. */
typedef struct {
    SatModel *model;
    float *grads, *adam_m, *adam_v; /* model->table.total floats each */
    float *ema;                     /* moving average of the trainable tensors; NULL: off */
    SatTensors g;
    EncoderBuffers encoder;
    DecoderBuffers decoder;          /* the LSTM decoders' */
    TransformerBuffers *transformer; /* the Transformer's; NULL for the LSTMs */
    TransformerBuffers *grid;        /* an LSTM's grid encoder; NULL without one */
    float *cnn_z, *d_cnn_z;          /* with a grid encoder: the CNN's annotations (z is then its output) */
    AuxBuffers aux;
    float *z, *d_z, *d_features;    /* [images, cells, features] and [images, D, H, W] */
    int image_capacity;
    long step;                      /* optimiser steps taken */
    int follower;                   /* 1: a replica whose batch norm leaves the running statistics to
                                       replica 0 (replica_pool.h) */
    int frozen_encoder;             /* 1: the CNN runs as at inference (running batch-norm statistics,
                                       folded: needs sat_model_prepare_inference) and is not trained */
    AdamConfig adam;
} SatTrainer;

int sat_trainer_init(SatTrainer *trainer, SatModel *model, int image_capacity, int row_capacity,
                     int step_capacity, Error *err);
void sat_trainer_free(SatTrainer *trainer);

/* Forward and backward of the whole model on a batch: images [images, 3, S, S]
 * (normalised), captions as in DecoderBatch. Zeroes, then fills, the gradients.
 * Batch norm uses batch statistics and updates its running averages. The
 * loss includes the auxiliary term when the model has one. */
SatLoss sat_forward_backward(SatTrainer *trainer, const float *images, int image_count,
                             const DecoderBatch *batch, Rng *rng);

/* The two halves of sat_forward_backward, for self-critical training, which
 * samples captions from the image features in between. sat_encode_train runs
 * the CNN in training mode (batch statistics; unless frozen_encoder) and
 * leaves the annotation vectors in trainer->z (an LSTM's grid encoder's output
 * when it has one); sat_decode_backward runs the decoder on batch over
 * them, then backward through the decoder and the CNN (with the auxiliary term
 * only when with_aux: it needs the image's reference captions as targets). */
void sat_encode_train(SatTrainer *trainer, const float *images, int image_count);
SatLoss sat_decode_backward(SatTrainer *trainer, const float *images, int image_count, const DecoderBatch *batch,
                            int with_aux, Rng *rng);

/* The whole batch's mean losses from the sums over its shares (data-parallel
 * replicas): sums = {cross-entropy x tokens, penalty x rows, aux x images}. */
SatLoss sat_loss_from_sums(const double sums[3], int tokens, int rows, int images);

/* The loss in inference mode (running batch-norm statistics, no dropout),
 * auxiliary term included. */
SatLoss sat_evaluate_loss(SatTrainer *trainer, const float *images, int image_count,
                          const DecoderBatch *batch);

/* Clips the gradients to max_norm (<= 0: no clipping), then one AdamW step
 * (weight decay only on TENSOR_DECAY tensors). Returns the norm before clipping. */
float sat_optimizer_step(SatTrainer *trainer, float lr, float weight_decay, float max_norm);

/* Starts an exponential moving average of the weights from their current
 * values (its trainable tensors; the rest of the block is unused). */
int sat_trainer_enable_ema(SatTrainer *trainer, Error *err);

/* After an optimiser step: average = d average + (1 - d) params with
 * d = min(decay, (1 + step) / (10 + step)), so that the first steps, far from
 * any useful weights, fade out quickly. */
void sat_ema_update(SatTrainer *trainer, float decay);

/* Exchanges the model's trainable tensors with their averages: call it to
 * evaluate or save the averaged model, and again to go on training. */
void sat_ema_swap(SatTrainer *trainer);

#endif
