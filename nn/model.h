#ifndef NN_MODEL_H
#define NN_MODEL_H

#include <stddef.h>

#include "attention.h"
#include "error.h"
#include "rng.h"
#include "safetensors.h"
#include "sentinel.h"
#include "transformer.h"
#include "tensor_table.h"

/* Show, Attend and Tell (Xu et al. 2015), sections 3.1.2 and 4.2.
 *
 * Encoder: a stack of 3x3 convolutions (padding 1), each followed by batch
 * norm and ReLU and optionally a 2x2 max-pool, turns a [3, S, S] image into
 * a [D, H, W] map, read as L = H*W annotation vectors z_i of D dims. A
 * residual block ("256r", He et al. 2016's basic block with an identity
 * shortcut) is two of them, the second adding the block's input before its
 * ReLU: relu(BN(conv(relu(BN(conv(x))))) + x).
 *
 * Decoder, per caption, with y_{-1} = <start>:
 *   h_0 = tanh(W_ih0 mean_i z_i + b),  c_0 = tanh(W_ic0 mean_i z_i + b)
 *   alpha_t = softmax_i score(h_{t-1}, z_i)          (attention.h)
 *   beta_t  = sigmoid(w_beta . h_{t-1} + b_beta)      (scalar gate)
 *   zhat_t  = beta_t * sum_i alpha_ti z_i
 *   h_t, c_t = LSTM(dropout_in([E y_{t-1}; zhat_t]), h_{t-1}, c_{t-1})
 *   p(y_t) = softmax(L_o dropout(E y_{t-1} + L_h h_t + L_z zhat_t))   (tied: L_o = E)
 *   loss = mean token cross-entropy + lambda * mean_b sum_i (1 - sum_t alpha_ti)^2
 *          + aux_weight * mean_{images, v >= 4} BCE(W_aux zbar + b_aux, t)
 * Adaptive attention (sentinel = 1; decoder "adaptive") replaces the gate by
 * a visual sentinel (sentinel.h): zhat_t = beta_t * sum_i alpha_ti z_i +
 * (1 - beta_t) * u_t, beta_t the weight of the cells in a softmax over the
 * cells and the sentinel u_t.
 * Grid encoder (LSTMs, encoder_layers > 0): z is first replaced by the
 * Transformer's grid encoder output of width D (transformer.h: projection,
 * learned row and column embeddings, pre-norm self-attention layers over the
 * cells, final layer norm; no dropout), so every cell can carry the context
 * of the others, as the Transformer's cross attention sees them.
 * The bottleneck baseline (use_attention = 0) feeds zhat_t = mean_i z_i at
 * every step: no alpha, no beta, no penalty. The auxiliary term (training
 * only; its two tensors exist only when aux_weight > 0) predicts from each
 * image's mean annotation zbar which words occur in its captions of the
 * batch (t_v = 1), so the CNN gets a direct signal besides the one that
 * reaches it through the decoder. */

enum { SAT_MAX_CONV = 16, SAT_SPEC_MAX = 128 };

/* The special tokens, always the first four of the vocabulary. */
enum { TOKEN_PAD = 0, TOKEN_START = 1, TOKEN_END = 2, TOKEN_UNK = 3 };

typedef struct {
    int image_size;                    /* input is [3, image_size, image_size] */
    char encoder_spec[SAT_SPEC_MAX];   /* e.g. "32s2,64p,128p,256p": channels, s2 = stride 2, p = then max-pool,
                                          r = a residual block of two (128r: 128 channels in and out) */
    int vocab_size, embed_dim, hidden_dim, attention_dim;
    int use_attention;                 /* 0: the single-context bottleneck baseline */
    int sentinel;                      /* 1: adaptive attention (a visual sentinel instead of the gate) */
    int transformer;                   /* 1: the Transformer decoder (transformer.h); its width is embed_dim */
    int heads, encoder_layers, decoder_layers, ff_dim; /* the Transformer's; heads, encoder_layers and ff_dim
                                                          also an LSTM's grid encoder (encoder_layers -1 = the
                                                          decoder's default: 1 for the Transformer, 0 for LSTMs) */
    int gelu;                          /* the Transformer's feed-forward activation (0: ReLU) */
    int tied;                          /* output weights = the word embedding; -1 = the decoder's default (Transformer 1, LSTMs 0) */
    AttentionScore score;
    float dropout;                     /* before L_o, training only */
    float input_dropout;               /* LSTMs: on the LSTM's input [E y; zhat] each step, training only */
    float doubly_stochastic;           /* lambda; -1 = the decoder's default (LSTMs 0.005, Transformer 0) */
    int penalty_excess_only;           /* the penalty on a cell's mass beyond 1 only (attention_coverage_gap) */
    float aux_weight;                  /* weight of the auxiliary word loss; 0 = no aux head */
    float image_mean[3], image_std[3]; /* input normalisation: (pixel/255 - mean) / std */
} SatConfig;

/* The encoder spec parsed. */
typedef struct {
    int count;
    int channels[SAT_MAX_CONV], stride[SAT_MAX_CONV], pool[SAT_MAX_CONV];
    int out_size[SAT_MAX_CONV]; /* spatial size after the layer (and its pool) */
    int skip[SAT_MAX_CONV];     /* 1: the second convolution of a residual block ("256r"), which adds the
                                   block's input (the input of layer l - 1) after its batch norm, before ReLU */
    int in_channels[SAT_MAX_CONV], in_size[SAT_MAX_CONV];
} SatEncoderLayout;

/* Named views into a parameter block (or a gradient block of the same layout). */
typedef struct {
    float *conv_weight[SAT_MAX_CONV];
    float *bn_weight[SAT_MAX_CONV], *bn_bias[SAT_MAX_CONV];
    float *bn_running_mean[SAT_MAX_CONV], *bn_running_var[SAT_MAX_CONV];
    float *init_h_weight, *init_h_bias, *init_c_weight, *init_c_bias;
    float *embedding;
    AttentionParams attention;
    float *gate_weight, *gate_bias;       /* NULL with a sentinel */
    SentinelParams sentinel;              /* all NULL without one */
    TransformerParams transformer;        /* the Transformer decoder's (the LSTM's views above are then NULL);
                                             an LSTM's grid encoder uses its grid and encoder views */
    float *lstm_weight_ih, *lstm_weight_hh, *lstm_bias;
    float *out_hidden_weight, *out_hidden_bias;
    float *out_context_weight, *out_context_bias;
    float *out_weight, *out_bias;
    float *aux_weight, *aux_bias; /* NULL unless config.aux_weight > 0 */
} SatTensors;

typedef struct {
    SatConfig config;
    SatEncoderLayout encoder;
    int grid_h, grid_w, cells, features; /* H, W, L = H*W, D */
    TensorTable table;
    float *params;       /* table.total floats */
    SatTensors p;
    char **vocab;        /* vocab_size words; the weights file stores them */
    /* Inference: convolutions with batch norm folded in (sat_model_prepare_inference). */
    float *folded;
    float *folded_weight[SAT_MAX_CONV], *folded_bias[SAT_MAX_CONV];
} SatModel;

/* Sets use_attention, sentinel and transformer from a decoder name:
 * "attention", "adaptive", "bottleneck" or "transformer"; -1 for anything
 * else. */
int sat_decoder_parse(const char *name, SatConfig *config);
/* The reverse: the decoder name of a configuration. */
const char *sat_decoder_name(const SatConfig *config);
/* Sets penalty_excess_only from a penalty name: "doubly_stochastic" (Xu et
 * al.'s) or "excess"; -1 for anything else. */
int sat_penalty_parse(const char *name, SatConfig *config);
const char *sat_penalty_name(const SatConfig *config);

/* The shapes the layers of a model's decoder run with, for `rows` captions
 * (or hypotheses) at a time. */
AttentionShape sat_attention_shape(const SatModel *model, int rows);
SentinelShape sat_sentinel_shape(const SatModel *model, int rows);
/* The Transformer decoder's shape of a model whose config has transformer set. */
TransformerShape sat_transformer_shape(const SatModel *model);
/* An LSTM's grid encoder (config encoder_layers > 0): the Transformer's, of
 * width D, without dropout, in front of the decoder. */
TransformerShape sat_grid_encoder_shape(const SatModel *model);
/* Whether the model is an LSTM with a grid encoder in front. */
int sat_has_grid_encoder(const SatModel *model);
/* Activations of that grid encoder for up to `images` grids (transformer_encode). */
int sat_grid_encoder_buffers_create(TransformerBuffers **buffers, const SatModel *model, int images, Error *err);

/* Sensible defaults for everything but vocab_size. A few depend on the
 * decoder (-1 until then): sat_config_resolve_defaults sets them once the
 * decoder is chosen (sat_model_create does it on its copy). */
void sat_config_defaults(SatConfig *config);
void sat_config_resolve_defaults(SatConfig *config);
int sat_encoder_layout(const SatConfig *config, SatEncoderLayout *layout, Error *err);

/* Builds the tensor table and allocates the parameters (zeroed). vocab may be
 * NULL (then words are "<pad> <start> <end> <unk> w4 w5 ..."); it is copied. */
int sat_model_create(SatModel *model, const SatConfig *config, const char *const *vocab, Error *err);
void sat_model_free(SatModel *model);
/* PyTorch-default initialisation from a seed. */
void sat_model_init_params(SatModel *model, uint64_t seed);
/* Binds named views to any block of the model's layout (params or grads). */
void sat_tensors_bind(const SatModel *model, float *block, SatTensors *views);
/* Folds batch norm into the convolutions; call after the weights change. */
int sat_model_prepare_inference(SatModel *model, Error *err);

/* Weight averaging (a "model soup"): out becomes a copy of models[0] whose
 * every tensor, batch-norm statistics included, is sum_i weights[i] *
 * models[i]'s (the caller chooses the weights, e.g. summing to 1). The models
 * must have the same architecture and vocabulary; err names the first that
 * differs by its index in names. The training settings a file records
 * (dropout, input dropout, the attention penalty) may differ: out has
 * models[0]'s. Call sat_model_prepare_inference on out before captioning
 * with it. */
int sat_model_average(SatModel *out, const SatModel *models, const float *weights, int count,
                      const char *const *names, Error *err);

/* Weights file: safetensors with the configuration, vocabulary and
 * preprocessing in __metadata__ (see README for the tensor names). */
int sat_model_save(const SatModel *model, const char *path, int half_precision, Error *err);
/* The same file with extra tensors and metadata (a training checkpoint: the
 * optimiser state is stored under names beginning with SAT_OPTIMIZER_PREFIX,
 * which sat_model_load skips, so a checkpoint is also a usable model). */
#define SAT_OPTIMIZER_PREFIX "optimizer."
int sat_model_write(const SatModel *model, const char *path, int half_precision,
                    const SafetensorsTensor *extra, int extra_count, const char *const *extra_metadata,
                    Error *err);
int sat_model_load(SatModel *model, const char *path, Error *err);
/* The same from the bytes of a weights file in memory; name (may be NULL)
 * stands for the path in messages. */
int sat_model_load_memory(SatModel *model, const void *data, size_t size, const char *name, Error *err);
/* The configuration as JSON text (the "config" metadata value); caller frees. */
char *sat_config_to_json(const SatConfig *config);
int sat_config_from_json(SatConfig *config, const char *json, Error *err);

#endif
