#ifndef NN_DECODER_H
#define NN_DECODER_H

#include "caption_batch.h"
#include "model.h"

/* Training-time decoder: teacher forcing over a batch of captions, keeping
 * every step's activations for backpropagation through time. Several
 * captions may share one image (row_image), so the CNN runs once per image
 * however many of its captions are trained on. Activations are stored
 * step-major and packed: step t computes only rows 0 .. active[t]-1 (up to the
 * last caption still running; sort rows longest first and no padding is
 * computed), held at offset[t] .. offset[t] + active[t] - 1 of each per-step
 * buffer, like PyTorch's PackedSequence. */
typedef struct {
    int row_capacity, step_capacity;
    float *z, *projection, *z_mean;          /* per caption row */
    float *h, *c;                            /* initial state [rows], then packed steps */
    float *gates, *x;                        /* LSTM gates and input [emb; zhat] (after input dropout) */
    float *input_mask;                       /* input dropout's scales, packed like x */
    int input_dropped;                       /* the last forward applied input dropout */
    float *alpha, *context, *beta, *zhat, *attention_cache, *coverage;
    float *embedded, *out_pre, *out_drop, *dropout_mask, *logits, *probs;
    int *input_tokens, *targets;             /* packed */
    float *target_weights;                   /* packed: the row weight of each target (DecoderBatch) */
    int *active;                             /* [steps]: rows computed at each step */
    long *offset;                            /* [steps + 1]: first packed row of each step */
    /* backward scratch */
    float *d_logits, *d_out_drop, *d_out_pre, *d_embedded, *d_h_all, *d_zhat_all;
    float *d_h, *d_c, *d_h_prev, *d_c_prev, *d_x, *d_x_dropped, *d_context, *d_alpha, *d_gate;
    float *d_z, *d_projection, *d_z_mean, *lstm_workspace, *attention_workspace;
    float *sentinel_cache, *sentinel_workspace, *d_lse; /* adaptive attention only */
    size_t attention_cache_stride, sentinel_cache_stride;
    int rows, steps; /* of the last forward */
    int penalty_rows; /* rows the attention penalty is averaged over (DecoderBatch.total_rows) */
} DecoderBuffers;


int decoder_buffers_alloc(DecoderBuffers *buffers, const SatModel *model, int row_capacity,
                          int step_capacity, Error *err);
void decoder_buffers_free(DecoderBuffers *buffers);

/* z_images: [images, cells, features]. Token ids must be < vocab_size (the
 * caller validates). rng drives dropout (may be NULL when not training). */
SatLoss decoder_forward_train(const SatModel *model, DecoderBuffers *buffers,
                              const float *z_images, const DecoderBatch *batch, Rng *rng);

/* Where the last forward keeps step `step` of caption row `row` in the packed
 * per-step buffers (logits, alpha, beta, ...), or -1 if it computed nothing
 * there (the caption had ended and no later row was still running). */
long decoder_packed_row(const DecoderBuffers *buffers, int step, int row);

/* A word drawn from probs (a softmax row, changed in place), never <pad> or
 * <start>; with rng NULL the most probable such word (the lowest id on a tie). */
int decoder_draw_word(float *probs, int vocab, Rng *rng);

/* Samples one caption per row from the model's distribution (no dropout), as
 * self-critical training needs: row r describes image row_image[r] of
 * z_images ([images, cells, features]). Words are drawn from the softmax over
 * the whole vocabulary except <pad> and <start>, which are never targets, so
 * the training loss sees the distribution sampled from; <unk> may be drawn.
 * captions ([rows, max_words + 2]) receives <start> w1 .. wn <end> <pad>...;
 * a caption still running after max_words words has no <end>, its last
 * target being <pad>. Returns the steps a DecoderBatch of these captions
 * needs (the longest caption's words plus its <end>). With rng NULL each
 * word is the most probable instead (greedy decoding: the model's mode word
 * by word, as self-critical training's --scst-mode-penalty needs). The
 * buffers' forward state is overwritten; they need rows and max_words + 1
 * steps of capacity. */
int decoder_sample(const SatModel *model, DecoderBuffers *buffers, const float *z_images, const int *row_image,
                   int rows, int max_words, Rng *rng, int *captions);

/* Accumulates parameter gradients into grads and dL/dz into d_z_images. */
void decoder_backward(const SatModel *model, const SatTensors *grads, DecoderBuffers *buffers,
                      float *d_z_images, const DecoderBatch *batch);

#endif
