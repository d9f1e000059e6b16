#include "trainer.h"

#include <stdlib.h>
#include <string.h>

#include "binary_cross_entropy.h"
#include "linear.h"

static void aux_buffers_free(AuxBuffers *a) {
    free(a->z_mean);
    free(a->d_z_mean);
    free(a->logits);
    free(a->probs);
    free(a->targets);
    free(a->d_logits);
    free(a->class_mask);
    memset(a, 0, sizeof *a);
}

static int aux_buffers_alloc(AuxBuffers *a, const SatModel *m, int images) {
    memset(a, 0, sizeof *a);
    if (m->config.aux_weight <= 0.0f) return 0;
    size_t V = m->config.vocab_size, means = (size_t)images * m->features, words = (size_t)images * V;
    a->z_mean = malloc(means * sizeof(float));
    a->d_z_mean = malloc(means * sizeof(float));
    a->logits = malloc(words * sizeof(float));
    a->probs = malloc(words * sizeof(float));
    a->targets = malloc(words * sizeof(float));
    a->d_logits = malloc(words * sizeof(float));
    a->class_mask = malloc(V);
    if (!a->z_mean || !a->d_z_mean || !a->logits || !a->probs || !a->targets || !a->d_logits || !a->class_mask) {
        aux_buffers_free(a);
        return -1;
    }
    for (size_t v = 0; v < V; v++) a->class_mask[v] = v > TOKEN_UNK;
    return 0;
}

int sat_trainer_init(SatTrainer *t, SatModel *m, int image_capacity, int row_capacity,
                     int step_capacity, Error *err) {
    memset(t, 0, sizeof *t);
    t->model = m;
    t->image_capacity = image_capacity;
    t->adam = (AdamConfig){.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    size_t total = m->table.total, grid = (size_t)image_capacity * m->cells * m->features;
    t->grads = calloc(total, sizeof(float));
    t->adam_m = calloc(total, sizeof(float));
    t->adam_v = calloc(total, sizeof(float));
    t->z = malloc(grid * sizeof(float));
    t->d_z = malloc(grid * sizeof(float));
    t->d_features = malloc(grid * sizeof(float));
    int grid_encoder = sat_has_grid_encoder(m);
    if (grid_encoder) {
        t->cnn_z = malloc(grid * sizeof(float));
        t->d_cnn_z = malloc(grid * sizeof(float));
    }
    if (!t->grads || !t->adam_m || !t->adam_v || !t->z || !t->d_z || !t->d_features ||
        (grid_encoder && (!t->cnn_z || !t->d_cnn_z)) ||
        aux_buffers_alloc(&t->aux, m, image_capacity) != 0) {
        sat_trainer_free(t);
        return error_set(err, "out of memory for training state (%zu parameters)", total);
    }
    TransformerShape shape = sat_transformer_shape(m);
    if (encoder_buffers_alloc(&t->encoder, m, image_capacity, err) != 0 ||
        (m->config.transformer
             ? transformer_buffers_create(&t->transformer, &shape, image_capacity, row_capacity, step_capacity, err)
             : decoder_buffers_alloc(&t->decoder, m, row_capacity, step_capacity, err)) != 0 ||
        (grid_encoder && sat_grid_encoder_buffers_create(&t->grid, m, image_capacity, err) != 0)) {
        sat_trainer_free(t);
        return -1;
    }
    sat_tensors_bind(m, t->grads, &t->g);
    return 0;
}

void sat_trainer_free(SatTrainer *t) {
    free(t->ema);
    free(t->grads);
    free(t->adam_m);
    free(t->adam_v);
    free(t->z);
    free(t->d_z);
    free(t->d_features);
    free(t->cnn_z);
    free(t->d_cnn_z);
    transformer_buffers_free(t->grid);
    encoder_buffers_free(&t->encoder);
    decoder_buffers_free(&t->decoder);
    transformer_buffers_free(t->transformer);
    aux_buffers_free(&t->aux);
    memset(t, 0, sizeof *t);
}

/* t_v = 1 for every word v of every caption row of the image. */
static void aux_targets(const SatModel *m, AuxBuffers *a, const DecoderBatch *batch, int images) {
    int V = m->config.vocab_size, columns = batch->steps + 1;
    memset(a->targets, 0, (size_t)images * V * sizeof(float));
    for (int r = 0; r < batch->rows; r++) {
        float *t = a->targets + (size_t)batch->row_image[r] * V;
        for (int k = 0; k < columns; k++) {
            int token = batch->captions[r * columns + k];
            if (token > TOKEN_UNK) t[token] = 1.0f;
        }
    }
}

/* aux_weight * BCE(W_aux zbar + b_aux, t); 0 without the aux head. z: [images, L, D]. */
static float aux_forward(const SatModel *m, AuxBuffers *a, const float *z, int images, const DecoderBatch *batch) {
    if (m->config.aux_weight <= 0.0f) return 0.0f;
    int L = m->cells, D = m->features, V = m->config.vocab_size;
    memset(a->z_mean, 0, (size_t)images * D * sizeof(float));
    for (int n = 0; n < images; n++) {
        float *mean = a->z_mean + (size_t)n * D;
        for (int i = 0; i < L; i++)
            for (int d = 0; d < D; d++) mean[d] += z[((size_t)n * L + i) * D + d];
        for (int d = 0; d < D; d++) mean[d] /= (float)L;
    }
    linear_forward(a->logits, a->z_mean, m->p.aux_weight, m->p.aux_bias, images, D, V);
    aux_targets(m, a, batch, images);
    return m->config.aux_weight * binary_cross_entropy_forward(a->probs, a->logits, a->targets, a->class_mask,
                                                               images, V);
}

/* Accumulates the aux head's gradients, and through zbar = mean_i z_i into d_z. */
static void aux_backward(const SatModel *m, const SatTensors *g, AuxBuffers *a, float *d_z, int images,
                         int total_images) {
    if (m->config.aux_weight <= 0.0f) return;
    int L = m->cells, D = m->features, V = m->config.vocab_size;
    memset(a->d_logits, 0, (size_t)images * V * sizeof(float));
    binary_cross_entropy_backward(a->d_logits, a->probs, a->targets, a->class_mask, images, V,
                                  m->config.aux_weight * replica_share(images, total_images));
    memset(a->d_z_mean, 0, (size_t)images * D * sizeof(float));
    linear_backward(a->d_z_mean, g->aux_weight, g->aux_bias, a->d_logits, a->z_mean, m->p.aux_weight, images, D, V);
    for (int n = 0; n < images; n++)
        for (int i = 0; i < L; i++)
            for (int d = 0; d < D; d++) d_z[((size_t)n * L + i) * D + d] += a->d_z_mean[(size_t)n * D + d] / (float)L;
}

/* The CNN's annotations, which the auxiliary loss reads: t->z, unless an
 * LSTM's grid encoder turns them into the decoder's t->z. */
static float *cnn_annotations(const SatTrainer *t) { return t->grid ? t->cnn_z : t->z; }

/* The CNN's annotations, then (an LSTM's grid encoder) its output, in t->z. */
static void annotate(SatTrainer *t, const float *features, int image_count) {
    const SatModel *m = t->model;
    features_to_annotations(cnn_annotations(t), features, image_count, m->features, m->cells);
    if (!t->grid) return;
    TransformerShape shape = sat_grid_encoder_shape(m);
    const float *memory = transformer_encode(&shape, &m->p.transformer, t->grid, t->cnn_z, image_count, NULL);
    memcpy(t->z, memory, (size_t)image_count * m->cells * m->features * sizeof(float));
}

void sat_encode_train(SatTrainer *t, const float *images, int image_count) {
    const SatModel *m = t->model;
    const float *features = t->frozen_encoder ? encoder_forward_infer(m, &t->encoder, images, image_count, NULL)
                                              : encoder_forward_train(m, &t->encoder, images, image_count,
                                                                      !t->follower);
    annotate(t, features, image_count);
}

SatLoss sat_decode_backward(SatTrainer *t, const float *images, int image_count, const DecoderBatch *batch,
                            int with_aux, Rng *rng) {
    const SatModel *m = t->model;
    size_t grid = (size_t)image_count * m->cells * m->features;
    TransformerShape shape = sat_transformer_shape(m);
    SatLoss loss = m->config.transformer
                       ? transformer_forward_train(&shape, &m->p.transformer, t->transformer, t->z, image_count, batch, rng)
                       : decoder_forward_train(m, &t->decoder, t->z, batch, rng);
    if (with_aux) loss.aux = aux_forward(m, &t->aux, cnn_annotations(t), image_count, batch);
    loss.loss += loss.aux;
    memset(t->grads, 0, m->table.total * sizeof(float));
    memset(t->d_z, 0, grid * sizeof(float));
    if (m->config.transformer)
        transformer_backward(&shape, &m->p.transformer, &t->g.transformer, t->transformer, t->z, t->d_z, batch);
    else
        decoder_backward(m, &t->g, &t->decoder, t->d_z, batch);
    float *d_annotations = t->d_z;
    if (t->grid) { /* trained with the decoder, also when the CNN is frozen */
        TransformerShape shape = sat_grid_encoder_shape(m);
        memset(t->d_cnn_z, 0, grid * sizeof(float));
        transformer_encode_backward(&shape, &m->p.transformer, &t->g.transformer, t->grid, t->cnn_z, t->d_z,
                                    t->d_cnn_z, image_count);
        d_annotations = t->d_cnn_z;
    }
    if (with_aux) aux_backward(m, &t->g, &t->aux, d_annotations, image_count, batch->total_images);
    if (t->frozen_encoder) return loss;
    memset(t->d_features, 0, grid * sizeof(float));
    annotations_to_features_grad(t->d_features, d_annotations, image_count, m->features, m->cells);
    encoder_backward(m, &t->g, &t->encoder, images, t->d_features, image_count);
    return loss;
}

SatLoss sat_forward_backward(SatTrainer *t, const float *images, int image_count,
                             const DecoderBatch *batch, Rng *rng) {
    sat_encode_train(t, images, image_count);
    return sat_decode_backward(t, images, image_count, batch, 1, rng);
}

SatLoss sat_evaluate_loss(SatTrainer *t, const float *images, int image_count, const DecoderBatch *batch) {
    const SatModel *m = t->model;
    const float *features = encoder_forward_infer(m, &t->encoder, images, image_count, NULL);
    annotate(t, features, image_count);
    DecoderBatch eval = *batch;
    eval.training = 0;
    TransformerShape shape = sat_transformer_shape(m);
    SatLoss loss = m->config.transformer
                       ? transformer_forward_train(&shape, &m->p.transformer, t->transformer, t->z, image_count, &eval, NULL)
                       : decoder_forward_train(m, &t->decoder, t->z, &eval, NULL);
    loss.aux = aux_forward(m, &t->aux, cnn_annotations(t), image_count, batch);
    loss.loss += loss.aux;
    return loss;
}

SatLoss sat_loss_from_sums(const double sums[3], int tokens, int rows, int images) {
    SatLoss loss = {.tokens = tokens};
    loss.cross_entropy = tokens ? (float)(sums[0] / tokens) : 0.0f;
    loss.penalty = rows ? (float)(sums[1] / rows) : 0.0f;
    loss.aux = images ? (float)(sums[2] / images) : 0.0f;
    loss.loss = loss.cross_entropy + loss.penalty + loss.aux;
    return loss;
}

float sat_optimizer_step(SatTrainer *t, float lr, float weight_decay, float max_norm) {
    const TensorTable *table = &t->model->table;
    /* Padding between tensors holds zero gradients, so whole-block norms are exact. */
    float norm = max_norm > 0.0f ? grad_clip_global_norm(t->grads, table->total, max_norm)
                                 : grad_global_norm(t->grads, table->total);
    t->step++;
    for (int i = 0; i < table->count; i++) {
        const TensorSpec *s = &table->specs[i];
        if (!(s->flags & TENSOR_TRAINABLE)) continue;
        float decay = (s->flags & TENSOR_DECAY) ? weight_decay : 0.0f;
        adam_update(t->model->params + s->offset, t->grads + s->offset, t->adam_m + s->offset,
                    t->adam_v + s->offset, s->numel, lr, decay, t->step, &t->adam);
    }
    return norm;
}

int sat_trainer_enable_ema(SatTrainer *t, Error *err) {
    size_t total = t->model->table.total;
    if (!t->ema && !(t->ema = malloc(total * sizeof(float))))
        return error_set(err, "out of memory for the weight average (%zu parameters)", total);
    memcpy(t->ema, t->model->params, total * sizeof(float));
    return 0;
}

void sat_ema_update(SatTrainer *t, float decay) {
    const TensorTable *table = &t->model->table;
    float warmup = (1.0f + (float)t->step) / (10.0f + (float)t->step);
    float d = decay < warmup ? decay : warmup;
    for (int i = 0; i < table->count; i++) {
        const TensorSpec *s = &table->specs[i];
        if (s->flags & TENSOR_TRAINABLE) ema_update(t->ema + s->offset, t->model->params + s->offset, s->numel, d);
    }
}

void sat_ema_swap(SatTrainer *t) {
    const TensorTable *table = &t->model->table;
    for (int i = 0; i < table->count; i++) {
        const TensorSpec *s = &table->specs[i];
        if (!(s->flags & TENSOR_TRAINABLE)) continue;
        float *a = t->model->params + s->offset, *b = t->ema + s->offset;
        for (size_t k = 0; k < s->numel; k++) {
            float keep = a[k];
            a[k] = b[k];
            b[k] = keep;
        }
    }
}
