#ifndef NN_CAPTION_BATCH_H
#define NN_CAPTION_BATCH_H

/* What every decoder (the LSTMs of decoder.h, the Transformer of
 * transformer.h) trains on, and the loss it reports. */
typedef struct {
    float loss;          /* cross_entropy + penalty + aux: what backward differentiates */
    float cross_entropy; /* mean over non-pad target tokens */
    float penalty;       /* lambda * mean_rows sum_i (1 - sum_t alpha_ti)^2 */
    float aux;           /* aux_weight * the word-presence BCE (trainer.h); the decoder leaves it 0 */
    int tokens;          /* non-pad target tokens */
} SatLoss;

typedef struct {
    const int *captions;  /* [rows, steps + 1]: <start> w1 .. wn <end> <pad>...; inputs are
                             columns 0..steps-1, targets columns 1..steps */
    const int *row_image; /* [rows]: which image each caption belongs to */
    int rows, steps;
    float label_smoothing;
    int training;         /* 1: dropout active */
    const float *row_weight; /* [rows]: each caption's loss weight (self-critical training's
                                advantage); NULL = 1 for all */
    /* Data-parallel training: this batch is one replica's share of a global
     * batch, and each loss term's gradient is normalised by the global count
     * (non-pad target tokens, caption rows, images), so that the replicas'
     * gradients sum to the global batch's. 0: this batch's own count. The
     * losses reported stay this batch's means. */
    int total_tokens, total_rows, total_images;
} DecoderBatch;

#endif
