#ifndef NN_DECODE_H
#define NN_DECODE_H

#include "encoder.h"
#include "model.h"

/* Inference: encode one image, then greedy (beam_width 1) or beam search.
 * Special tokens (<pad> <start> <unk>) are never emitted as words, and a
 * caption never ends right after a/an/the/in/of/with/... (decode.c lists
 * them), unless it reaches max_length. */
typedef struct {
    int beam_width;       /* 1 = greedy */
    int max_length;       /* words, without <end> */
    float length_penalty; /* rank hypotheses by logprob / (words + 1)^length_penalty; 0 = raw */
} DecodeOptions;

typedef struct {
    int length;            /* words, <end> excluded */
    int *tokens;           /* [length] */
    float *token_logprobs; /* [length] */
    float logprob;         /* sum of the words' log p (full softmax), plus <end>'s when finished */
    float score;           /* what beam search ranked by: words and <end>, even when cut */
    int finished;          /* 0: cut at max_length words, where <end> was not the most likely next word */
    int cells, grid_h, grid_w;
    float *alpha;          /* [length, cells]: attention when emitting each word; NULL for the bottleneck */
    float *beta;           /* [length]: the gate beta_t; NULL for the bottleneck */
    /* A Transformer's maps (NULL otherwise); alpha is then the last layer's cross-attention averaged over its heads. */
    int layers, heads;
    float *head_alpha;     /* [length, layers, heads, cells]: every layer's and head's cross-attention */
    float *self_attention; /* [length, layers, heads, length]: word t's row over the inputs <start> w_1 .. w_t
                              (its first t + 1 entries; the rest 0) */
} Caption;

typedef struct Captioner Captioner;

/* Buffers for captioning with one model; reusable across images. The model
 * must stay alive and prepared (sat_model_prepare_inference). */
int captioner_create(Captioner **captioner, const SatModel *model, int max_beam, int max_length, Error *err);
void captioner_free(Captioner *captioner);

/* Lets the captioner use a second thread (core_helper.h) for the CNN's and
 * the beam steps' products: for one caption at a time on a machine with a
 * core to spare. The helper takes the place of OpenBLAS's threads, so this
 * sets OpenBLAS to one thread for the process (three busy threads on two
 * cores made latency depend on the scheduler's luck). Results are the same
 * either way, bit for bit. With CAPTION_PORTABLE set (cpu.h) it does
 * nothing: the portable paths run on one thread plus OpenBLAS's. */
int captioner_use_second_thread(Captioner *captioner, Error *err);

/* Transformer models: keep the key/value cache between steps (on, the
 * default) or rebuild it from the hypotheses' words at every step (off; the
 * two give the same bits, which the tests check). */
void captioner_use_kv_cache(Captioner *cap, int on);

/* Makes an ensemble: `member` (same vocabulary, prepared, kept alive by
 * the caller) takes every step with the captioner's model, and the words
 * are chosen by the mean of their distributions. */
int captioner_add_member(Captioner *captioner, const SatModel *member, Error *err);
/* Whether `member` can join an ensemble whose first model is `first`: the
 * same vocabulary and input (captioner_add_member checks it too). */
int ensemble_check_member(const SatModel *first, const SatModel *member, Error *err);

/* Only the CNN of captioner_run, with the captioner's buffers and second
 * thread: returns the feature map [D, H, W] (owned by the captioner). For
 * timing the CNN as captioning runs it. */
const float *captioner_encode_only(Captioner *captioner, const float *image);

/* image: [3, S, S], normalised as the model's preprocessing says. */
int captioner_run(Captioner *captioner, const float *image, const DecodeOptions *options,
                  Caption *caption, Error *err);
void caption_free(Caption *caption);

/* A Transformer caption's maps of decoder layer `layer` (0-based) and head
 * `head` (0-based, or -1 for the mean of the layer's heads): cross-attention
 * [length, cells] into alpha and, when self_attention is not NULL, the
 * self-attention rows [length, length]. -1 when the caption has no such
 * maps (an LSTM model's) or the layer or head does not exist. */
int caption_attention_map(const Caption *caption, int layer, int head, float *alpha, float *self_attention);

/* Joins the words with spaces into buffer (truncating safely). */
const char *caption_text(const SatModel *model, const Caption *caption, char *buffer, size_t size);
/* The same for people to read in figures and the viewer: a caption cut at
 * max_length (unfinished) ends in " \u2026" so it does not look complete. */
const char *caption_display_text(const SatModel *model, const Caption *caption, char *buffer, size_t size);

#endif
