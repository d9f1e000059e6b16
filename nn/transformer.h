#ifndef NN_TRANSFORMER_H
#define NN_TRANSFORMER_H

#include <stddef.h>

#include "caption_batch.h"
#include "error.h"
#include "rng.h"

/* The Transformer captioner's decoder (issue 14; Vaswani et al. 2017, pre-norm
 * as PyTorch's norm_first=True), fed by the CNN grid:
 *
 * Grid encoder: m = z W_g^T + b_g (the D-dim cells into the model width C),
 * plus learned row and column embeddings (positional.h), then N_enc
 * self-attention layers over the H*W cells and a final layer norm (none
 * when N_enc = 0):
 *   m = m + SelfAttention(LN1(m));  m = m + FF(LN2(m))
 * Decoder, over the words y_0 .. y_{T-1} (y_0 = <start>):
 *   x = sqrt(C) E y + PE(positions)             (sinusoids, positional.h; the
 *                                               scale of Vaswani et al.)
 *   x = x + dropout(CausalSelfAttention(LN1(x)))
 *   x = x + dropout(CrossAttention(LN2(x), m))  (every cell of the image)
 *   x = x + dropout(FF(LN3(x)))                 FF = W2 dropout(act(W1 x + b1)) + b2, act ReLU or GELU
 * then LN(x) and the logits (x W_out^T + b_out; with tied weights W_out = E).
 * Each attention is PyTorch's nn.MultiheadAttention: in_proj [3C, C] (the
 * q, k, v rows), per-head scaled dot products (multihead_attention.h),
 * out_proj [C, C]. The parameter names follow PyTorch's TransformerEncoder /
 * TransformerDecoder state dicts (model.c), so the file loads into them. */

enum { TRANSFORMER_MAX_LAYERS = 12 };

typedef struct {
    int grid_h, grid_w, features;   /* the CNN grid: H, W, D */
    int dim, heads, ff, vocab;      /* C, heads, FF width, V */
    int encoder_layers, decoder_layers;
    int gelu;                       /* 0: ReLU */
    int tied;                       /* output weights = the embedding */
    float dropout;
    float doubly_stochastic;        /* lambda of Xu et al.'s penalty on the last layer's head-averaged cross-attention */
    int penalty_excess_only;        /* on the mass beyond 1 only (attention_coverage_gap) */
} TransformerShape;

/* One layer's weights (or gradients). An encoder layer has no cross
 * attention and no norm3. */
typedef struct {
    float *norm1_weight, *norm1_bias;
    float *self_in_weight, *self_in_bias, *self_out_weight, *self_out_bias;
    float *norm2_weight, *norm2_bias;
    float *cross_in_weight, *cross_in_bias, *cross_out_weight, *cross_out_bias;
    float *norm3_weight, *norm3_bias;
    float *ff1_weight, *ff1_bias, *ff2_weight, *ff2_bias;
} TransformerLayer;

typedef struct {
    float *grid_weight, *grid_bias, *grid_rows, *grid_columns;
    TransformerLayer encoder[TRANSFORMER_MAX_LAYERS];
    float *encoder_norm_weight, *encoder_norm_bias; /* NULL without encoder layers */
    float *embedding;
    TransformerLayer decoder[TRANSFORMER_MAX_LAYERS];
    float *decoder_norm_weight, *decoder_norm_bias;
    float *out_weight;  /* NULL when tied */
    float *out_bias;
} TransformerParams;

typedef struct TransformerBuffers TransformerBuffers;

/* Activations for up to `images` grids and `rows` captions of `steps` words. */
int transformer_buffers_create(TransformerBuffers **buffers, const TransformerShape *shape, int images, int rows,
                               int steps, Error *err);
void transformer_buffers_free(TransformerBuffers *buffers);

/* Teacher-forced forward of a batch (DecoderBatch as for the LSTM: captions
 * [rows, steps + 1], row_image, label smoothing, training = dropout, row
 * weights): z_images [images, H*W, D]. The loss is the (weighted,
 * smoothed) cross-entropy over non-pad targets; penalty and aux are 0. */
SatLoss transformer_forward_train(const TransformerShape *shape, const TransformerParams *params,
                                  TransformerBuffers *buffers, const float *z_images, int images,
                                  const DecoderBatch *batch, Rng *rng);

/* After transformer_forward_train: accumulates into grads and d_z_images. */
void transformer_backward(const TransformerShape *shape, const TransformerParams *params,
                          const TransformerParams *grads, TransformerBuffers *buffers, const float *z_images,
                          float *d_z_images, const DecoderBatch *batch);

/* The grid encoder alone (m = its output [images, H*W, C]), as an LSTM
 * decoder's front (model.h): buffers made with decoder_layers = 0, rows = 0
 * and steps = 0 hold what it needs. rng NULL: no dropout (inference). The
 * returned memory lives in the buffers until their next forward. */
const float *transformer_encode(const TransformerShape *shape, const TransformerParams *params,
                               TransformerBuffers *buffers, const float *z_images, int images, Rng *rng);
/* After transformer_encode: accumulates into grads (the grid encoder's
 * tensors) and d_z_images, from d_memory [images, H*W, C]. */
void transformer_encode_backward(const TransformerShape *shape, const TransformerParams *params,
                                 const TransformerParams *grads, TransformerBuffers *buffers, const float *z_images,
                                 const float *d_memory, float *d_z_images, int images);

/* The last forward's logits [rows, steps, V], and the attention
 * probabilities of decoder layer l: self [rows, heads, steps, steps] and
 * cross [rows, heads, steps, H*W]. */
const float *transformer_logits(const TransformerBuffers *buffers);
const float *transformer_self_attention(const TransformerBuffers *buffers, int layer);
const float *transformer_cross_attention(const TransformerBuffers *buffers, int layer);

/* ---- inference, one position at a time ----
 * A key/value cache keeps, for each decoder layer and hypothesis row, the
 * self-attention keys and values of the positions so far, so a step
 * computes only the new position; the cross-attention's keys and values of
 * the image are projected once per image. */
typedef struct TransformerCache TransformerCache;

/* For up to `rows` hypotheses of up to `max_steps` positions, over up to
 * `images` grids. */
int transformer_cache_create(TransformerCache **cache, const TransformerShape *shape, int rows, int max_steps,
                             int images, Error *err);
void transformer_cache_free(TransformerCache *cache);

/* The grid encoder on the annotations z [images, H*W, D]; row r < rows reads
 * image row_image[r], the cache's other rows (all of them with row_image
 * NULL) image 0. */
void transformer_cache_encode(TransformerCache *cache, const TransformerParams *params, const float *z, int images,
                              const int *row_image, int rows);

/* Position t (0-based) of `rows` hypotheses whose previous tokens are prev:
 * log-probabilities [rows, V], and (alpha, may be NULL) each row's
 * cross-attention map of the last layer averaged over its heads [rows,
 * H*W]. Positions 0 .. t-1 must be in the cache. */
void transformer_cache_step(TransformerCache *cache, const TransformerParams *params, const int *prev, int rows, int t,
                            float *log_probs, float *alpha);

/* Samples one caption per row as decoder_sample does for the LSTMs (the same
 * rules, decoder.h), with the cache: row r describes image row_image[r] of
 * z_images (rng NULL: greedy). scratch holds rows x V floats. Returns the
 * steps the captions need. */
int transformer_sample(TransformerCache *cache, const TransformerParams *params, const float *z_images, int images,
                       const int *row_image, int rows, int max_words, Rng *rng, int *captions, float *scratch);

/* Row r of the cache becomes what row parents[r] was, for positions 0 .. t. */
void transformer_cache_reorder(TransformerCache *cache, const int *parents, int rows, int t);

/* Every layer's cross-attention of the last step [rows, heads, H*W] and
 * self-attention of row r [heads, t + 1]. */
const float *transformer_cache_cross_attention(const TransformerCache *cache, int layer);
const float *transformer_cache_self_attention(const TransformerCache *cache, int layer, int row);

#endif
