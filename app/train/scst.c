#include "scst.h"

#include <stdlib.h>
#include <string.h>

#include "cider_reward.h"

struct Scst {
    CiderReward *cider;
    int samples, max_words, row_capacity;
    float xe_weight; /* weight of the reference captions' rows; 0 = none */
    float contrast;  /* the contrastive reward's weight; 0 = plain CIDEr-D */
    int *others;     /* [batch images]: the batch's other images, for the contrastive reward */
    float duplicate_penalty; /* the weight of a caption's share among the batch's other images; 0 = none */
    float *shared;           /* [rows]: that share, scst_shared_caption_fraction */
    float mode_penalty;      /* the weight that unlearns a greedy caption other images share; 0 = none */
    float repeat_penalty;    /* the weight of a sample's share of repeated trigrams; 0 = none */
    int *mode;               /* [batch images, max_words + 2]: each image's greedy caption */
    int *image_rows;         /* [batch images]: 0, 1, ...: one greedy row per image */
    float *mode_shared;      /* [batch images]: the share of the other images with the same greedy caption */
    int *sampled;    /* [rows, max_words + 2] as decoder_sample writes them, then the references */
    int *captions;   /* the same, longest first, [rows, steps + 1] */
    int *row_image, *sorted_row_image, *length, *order;
    float *reward, *advantage, *sorted_advantage;
    TransformerCache *sampler; /* a Transformer model's sampling state; NULL for the LSTMs */
    float *sample_scratch;     /* its [rows, V] log-probabilities */
};

void scst_free(Scst *s) {
    if (!s) return;
    cider_reward_free(s->cider);
    free(s->sampled);
    free(s->captions);
    free(s->row_image);
    free(s->sorted_row_image);
    free(s->length);
    free(s->order);
    free(s->reward);
    free(s->advantage);
    free(s->sorted_advantage);
    free(s->others);
    free(s->shared);
    free(s->mode);
    free(s->image_rows);
    free(s->mode_shared);
    transformer_cache_free(s->sampler);
    free(s->sample_scratch);
    free(s);
}

int scst_create(Scst **out, const SatModel *model, const Dataset *train, const Vocab *vocab, int batch_images,
                const ScstOptions *options, Error *err) {
    *out = NULL;
    int samples = options->samples, max_words = options->max_words, captions_per_image = options->captions_per_image;
    float xe_weight = options->xe_weight;
    if (samples < 2)
        return error_set(err, "--scst-samples %d: self-critical training needs at least 2 samples per image "
                              "(each sample's baseline is the mean reward of the others)", samples);
    Scst *s = calloc(1, sizeof *s);
    if (!s) return error_set(err, "out of memory");
    s->samples = samples;
    s->max_words = max_words;
    s->xe_weight = xe_weight;
    s->contrast = options->contrast;
    s->duplicate_penalty = options->duplicate_penalty;
    s->mode_penalty = options->mode_penalty;
    s->repeat_penalty = options->repeat_penalty;
    s->row_capacity = batch_images * (samples + (xe_weight > 0.0f ? captions_per_image : 0) +
                                      (s->mode_penalty > 0.0f ? 1 : 0));
    size_t rows = (size_t)s->row_capacity, columns = (size_t)max_words + 2;
    s->sampled = malloc(rows * columns * sizeof(int));
    s->captions = malloc(rows * columns * sizeof(int));
    s->row_image = malloc(rows * sizeof(int));
    s->sorted_row_image = malloc(rows * sizeof(int));
    s->length = malloc(rows * sizeof(int));
    s->order = malloc(rows * sizeof(int));
    s->reward = malloc(rows * sizeof(float));
    s->advantage = malloc(rows * sizeof(float));
    s->sorted_advantage = malloc(rows * sizeof(float));
    s->others = malloc((size_t)batch_images * sizeof(int));
    s->shared = malloc(rows * sizeof(float));
    s->mode = malloc((size_t)batch_images * columns * sizeof(int));
    s->image_rows = malloc((size_t)batch_images * sizeof(int));
    s->mode_shared = malloc((size_t)batch_images * sizeof(float));
    if (!s->mode || !s->image_rows || !s->mode_shared || !s->others || !s->shared || !s->sampled || !s->captions ||
        !s->row_image || !s->sorted_row_image || !s->length || !s->order || !s->reward || !s->advantage ||
        !s->sorted_advantage) {
        scst_free(s);
        return error_set(err, "out of memory for self-critical training (%zu sampled captions)", rows);
    }
    for (int i = 0; i < batch_images; i++) s->image_rows[i] = i;
    TransformerShape shape = sat_transformer_shape(model);
    if (model->config.transformer) {
        int status = transformer_cache_create(&s->sampler, &shape, batch_images * samples, max_words + 1,
                                              batch_images, err);
        size_t scratch = (size_t)batch_images * samples * model->config.vocab_size;
        if (status == 0 && !(s->sample_scratch = malloc(scratch * sizeof(float))))
            status = error_set(err, "out of memory for sampling");
        if (status != 0) {
            scst_free(s);
            return -1;
        }
    }
    if (cider_reward_create(&s->cider, train, vocab, err) != 0) {
        scst_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

/* Words of a sampled caption (after <start>, up to <end> or <pad>). */
static int word_count(const int *caption, int max_words) {
    int n = 0;
    while (n < max_words && caption[1 + n] != TOKEN_END && caption[1 + n] != TOKEN_PAD) n++;
    return n;
}

/* Targets of a sampled caption: its words, then <end> if it was drawn. */
static int target_count(const int *caption, int max_words) {
    int words = word_count(caption, max_words);
    return words + (caption[1 + words] == TOKEN_END);
}

static int same_words(const int *a, const int *b, int max_words) {
    int n = word_count(a, max_words);
    return n == word_count(b, max_words) && memcmp(a + 1, b + 1, (size_t)n * sizeof(int)) == 0;
}

/* Whether any of image j's samples has the words of row r. */
static int image_drew(const int *sampled, int r, int image, int samples, int columns, int max_words) {
    const int *caption = sampled + (size_t)r * columns;
    for (int k = 0; k < samples; k++)
        if (same_words(caption, sampled + (size_t)(image * samples + k) * columns, max_words)) return 1;
    return 0;
}

void scst_shared_caption_fraction(const int *sampled, int rows, int samples, int columns, int max_words,
                                  float *fraction) {
    int images = rows / samples;
    for (int r = 0; r < rows; r++) {
        int drew = 0;
        for (int j = 0; j < images; j++)
            if (j != r / samples) drew += image_drew(sampled, r, j, samples, columns, max_words);
        fraction[r] = images > 1 ? (float)drew / (float)(images - 1) : 0.0f;
    }
}

float scst_repeated_trigram_fraction(const int *words, int count) {
    int trigrams = count - 2, repeated = 0;
    for (int i = 1; i < trigrams; i++)
        for (int j = 0; j < i; j++)
            if (memcmp(words + i, words + j, 3 * sizeof(int)) == 0) {
                repeated++;
                break;
            }
    return trigrams > 0 ? (float)repeated / (float)trigrams : 0.0f;
}

/* Rewards, and each sample's advantage over the mean of its image's other
 * samples; returns the samples' mean CIDEr-D against their own images. */
static double score_samples(Scst *s, const TrainBatch *batch, int rows) {
    int columns = s->max_words + 2, K = s->samples;
    double total = 0.0;
    for (int r = 0; r < rows; r++) {
        const int *caption = s->sampled + (size_t)r * columns;
        int words = word_count(caption, s->max_words), image = r / K, others = 0;
        s->length[r] = target_count(caption, s->max_words);
        double own = cider_reward_score(s->cider, batch->image_index[image], caption + 1, words);
        for (int j = 0; s->contrast > 0.0f && j < batch->image_count; j++)
            if (j != image) s->others[others++] = batch->image_index[j];
        s->reward[r] = (float)cider_reward_contrastive(s->cider, batch->image_index[image], s->others, others,
                                                       s->contrast, caption + 1, words);
        if (s->repeat_penalty > 0.0f)
            s->reward[r] -= s->repeat_penalty * scst_repeated_trigram_fraction(caption + 1, words);
        total += own;
    }
    if (s->duplicate_penalty > 0.0f) {
        scst_shared_caption_fraction(s->sampled, rows, K, columns, s->max_words, s->shared);
        for (int r = 0; r < rows; r++) s->reward[r] -= s->duplicate_penalty * s->shared[r];
    }
    for (int image = 0; image < rows / K; image++) {
        double sum = 0.0;
        for (int k = 0; k < K; k++) sum += s->reward[image * K + k];
        for (int k = 0; k < K; k++) {
            float own = s->reward[image * K + k];
            s->advantage[image * K + k] = own - (float)((sum - own) / (K - 1));
        }
    }
    return rows ? total / rows : 0.0;
}

/* Row order longest first (the decoder computes only the captions still
 * running at each step), stable: a counting sort over the few lengths. */
static void order_longest_first(Scst *s, int rows) {
    int buckets = s->max_words + 2, position = 0;
    for (int length = buckets - 1; length >= 0; length--)
        for (int r = 0; r < rows; r++)
            if (s->length[r] == length) s->order[position++] = r;
}

/* The sampled captions in that order, cut to the steps the longest needs. */
static DecoderBatch sorted_batch(Scst *s, int rows, int steps) {
    int columns = s->max_words + 2;
    for (int i = 0; i < rows; i++) {
        int r = s->order[i];
        memcpy(s->captions + (size_t)i * (steps + 1), s->sampled + (size_t)r * columns, (size_t)(steps + 1) * sizeof(int));
        s->sorted_row_image[i] = s->row_image[r];
        s->sorted_advantage[i] = s->advantage[r];
    }
    return (DecoderBatch){.captions = s->captions, .row_image = s->sorted_row_image, .rows = rows, .steps = steps,
                          .label_smoothing = 0.0f, .training = 0, .row_weight = s->sorted_advantage};
}

/* Appends the batch's reference captions after the samples, each weighted
 * xe_weight (cross-entropy alongside the self-critical term); returns the
 * rows in all and raises *steps to the longest reference. */
static int append_references(Scst *s, const TrainBatch *batch, int rows, int *steps) {
    int columns = s->max_words + 2, width = batch->steps + 1;
    if (s->xe_weight <= 0.0f || width > columns) return rows; /* the loader cuts captions to max_words */
    for (int k = 0; k < batch->rows; k++) {
        int *row = s->sampled + (size_t)(rows + k) * columns;
        memcpy(row, batch->captions + (size_t)k * width, (size_t)width * sizeof(int));
        for (int i = width; i < columns; i++) row[i] = TOKEN_PAD;
        int tokens = 0;
        while (tokens < width && row[tokens] != TOKEN_PAD) tokens++;
        s->length[rows + k] = tokens - 1; /* targets: the words and <end> */
        s->row_image[rows + k] = batch->row_image[k];
        s->advantage[rows + k] = s->xe_weight;
    }
    if (batch->steps > *steps) *steps = batch->steps;
    return rows + batch->rows;
}

/* One caption per row for the encoded batch in t->z: drawn, or greedy with
 * rng NULL; returns the steps they need. */
static int draw_captions(Scst *s, SatTrainer *t, int images, const int *row_image, int rows, Rng *rng,
                         int *captions) {
    if (t->model->config.transformer)
        return transformer_sample(s->sampler, &t->model->p.transformer, t->z, images, row_image, rows, s->max_words,
                                  rng, captions, s->sample_scratch);
    return decoder_sample(t->model, &t->decoder, t->z, row_image, rows, s->max_words, rng, captions);
}

/* Appends each image's greedy caption that other images of the batch share,
 * weighted -mode_penalty times their share: a negative weight on its
 * cross-entropy lowers its likelihood. Returns the rows in all and raises
 * *steps to the longest caption appended. */
static int append_shared_modes(Scst *s, int images, int rows, int *steps) {
    int columns = s->max_words + 2;
    scst_shared_caption_fraction(s->mode, images, 1, columns, s->max_words, s->mode_shared);
    for (int i = 0; i < images; i++) {
        if (s->mode_shared[i] <= 0.0f) continue;
        const int *caption = s->mode + (size_t)i * columns;
        memcpy(s->sampled + (size_t)rows * columns, caption, (size_t)columns * sizeof(int));
        s->length[rows] = target_count(caption, s->max_words);
        s->row_image[rows] = i;
        s->advantage[rows] = -s->mode_penalty * s->mode_shared[i];
        if (s->length[rows] > *steps) *steps = s->length[rows];
        rows++;
    }
    return rows;
}

float scst_shared_mode_fraction(const Scst *s, int images) {
    int shared = 0;
    for (int i = 0; s->mode_penalty > 0.0f && i < images; i++) shared += s->mode_shared[i] > 0.0f;
    return images > 0 ? (float)shared / (float)images : 0.0f;
}

SatLoss scst_forward_backward(Scst *s, SatTrainer *t, const TrainBatch *batch, Rng *rng, double *mean_reward) {
    int images = batch->image_count, rows = images * s->samples;
    for (int r = 0; r < rows; r++) s->row_image[r] = r / s->samples;
    sat_encode_train(t, batch->images, images);
    int steps = draw_captions(s, t, images, s->row_image, rows, rng, s->sampled);
    *mean_reward = score_samples(s, batch, rows);
    if (s->mode_penalty > 0.0f) {
        draw_captions(s, t, images, s->image_rows, images, NULL, s->mode);
        rows = append_shared_modes(s, images, rows, &steps);
    }
    rows = append_references(s, batch, rows, &steps);
    order_longest_first(s, rows);
    DecoderBatch db = sorted_batch(s, rows, steps > 0 ? steps : 1);
    return sat_decode_backward(t, batch->images, batch->image_count, &db, 0, rng);
}
