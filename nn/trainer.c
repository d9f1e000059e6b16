#include "trainer.h"

#include <stdlib.h>
#include <string.h>

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
    if (!t->grads || !t->adam_m || !t->adam_v || !t->z || !t->d_z || !t->d_features) {
        sat_trainer_free(t);
        return error_set(err, "out of memory for training state (%zu parameters)", total);
    }
    if (encoder_buffers_alloc(&t->encoder, m, image_capacity, err) != 0 ||
        decoder_buffers_alloc(&t->decoder, m, row_capacity, step_capacity, err) != 0) {
        sat_trainer_free(t);
        return -1;
    }
    sat_tensors_bind(m, t->grads, &t->g);
    return 0;
}

void sat_trainer_free(SatTrainer *t) {
    free(t->grads);
    free(t->adam_m);
    free(t->adam_v);
    free(t->z);
    free(t->d_z);
    free(t->d_features);
    encoder_buffers_free(&t->encoder);
    decoder_buffers_free(&t->decoder);
    memset(t, 0, sizeof *t);
}

SatLoss sat_forward_backward(SatTrainer *t, const float *images, int image_count,
                             const DecoderBatch *batch, Rng *rng) {
    const SatModel *m = t->model;
    size_t grid = (size_t)image_count * m->cells * m->features;
    const float *features = encoder_forward_train(m, &t->encoder, images, image_count, 1);
    features_to_annotations(t->z, features, image_count, m->features, m->cells);
    SatLoss loss = decoder_forward_train(m, &t->decoder, t->z, batch, rng);
    memset(t->grads, 0, m->table.total * sizeof(float));
    memset(t->d_z, 0, grid * sizeof(float));
    decoder_backward(m, &t->g, &t->decoder, t->d_z, batch);
    memset(t->d_features, 0, grid * sizeof(float));
    annotations_to_features_grad(t->d_features, t->d_z, image_count, m->features, m->cells);
    encoder_backward(m, &t->g, &t->encoder, images, t->d_features, image_count);
    return loss;
}

SatLoss sat_evaluate_loss(SatTrainer *t, const float *images, int image_count, const DecoderBatch *batch) {
    const SatModel *m = t->model;
    const float *features = encoder_forward_infer(m, &t->encoder, images, image_count);
    features_to_annotations(t->z, features, image_count, m->features, m->cells);
    DecoderBatch eval = *batch;
    eval.training = 0;
    return decoder_forward_train(m, &t->decoder, t->z, &eval, NULL);
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
