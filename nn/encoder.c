#include "encoder.h"

#include <stdlib.h>
#include <string.h>

#include "activation.h"
#include "batchnorm.h"
#include "conv2d.h"
#include "maxpool.h"

static Conv2dShape conv_shape(const SatModel *m, int l, int batch) {
    const SatEncoderLayout *e = &m->encoder;
    return (Conv2dShape){.batch = batch, .in_channels = e->in_channels[l], .in_height = e->in_size[l],
                         .in_width = e->in_size[l], .out_channels = e->channels[l], .kernel = 3,
                         .stride = e->stride[l], .padding = 1};
}

static int conv_size(const SatModel *m, int l) {
    Conv2dShape s = conv_shape(m, l, 1);
    return conv2d_out_height(&s);
}

static MaxPoolShape pool_shape(const SatModel *m, int l, int batch) {
    int size = conv_size(m, l);
    return (MaxPoolShape){.planes = batch * m->encoder.channels[l], .in_height = size,
                          .in_width = size, .kernel = 2, .stride = 2};
}

static BatchNormShape bn_shape(const SatModel *m, const EncoderBuffers *b, int l, int batch) {
    int size = conv_size(m, l);
    return (BatchNormShape){.batch = batch, .channels = m->encoder.channels[l],
                            .spatial = size * size, .eps = 1e-5f, .momentum = 0.1f,
                            .replicas = b->replicas, .replica_scratch = b->replica_scratch};
}

int encoder_buffers_alloc(EncoderBuffers *b, const SatModel *m, int capacity, Error *err) {
    memset(b, 0, sizeof *b);
    b->capacity = capacity;
    size_t workspace = 0, largest = 0;
    int failed = 0, widest = 1;
    for (int l = 0; l < m->encoder.count; l++) {
        Conv2dShape s = conv_shape(m, l, 1);
        size_t w = conv2d_workspace_floats(&s);
        workspace = w > workspace ? w : workspace;
        size_t conv_floats = (size_t)capacity * m->encoder.channels[l] * conv_size(m, l) * conv_size(m, l);
        size_t in_floats = (size_t)capacity * m->encoder.in_channels[l] * m->encoder.in_size[l] * m->encoder.in_size[l];
        largest = conv_floats > largest ? conv_floats : largest;
        widest = m->encoder.channels[l] > widest ? m->encoder.channels[l] : widest;
        largest = in_floats > largest ? in_floats : largest;
        b->conv_out[l] = malloc(conv_floats * sizeof(float));
        b->relu_out[l] = malloc(conv_floats * sizeof(float));
        b->bn_mean[l] = malloc(m->encoder.channels[l] * sizeof(float));
        b->bn_inv_std[l] = malloc(m->encoder.channels[l] * sizeof(float));
        failed |= !b->conv_out[l] || !b->relu_out[l] || !b->bn_mean[l] || !b->bn_inv_std[l];
        if (m->encoder.pool[l]) {
            size_t pooled = conv_floats / 4 + 1;
            b->pool_out[l] = malloc(pooled * sizeof(float));
            b->argmax[l] = malloc(pooled * sizeof(int));
            failed |= !b->pool_out[l] || !b->argmax[l];
        }
    }
    b->workspace = malloc(workspace * sizeof(float));
    b->grad_a = malloc(largest * sizeof(float));
    b->grad_b = malloc(largest * sizeof(float));
    b->grad_c = malloc(largest * sizeof(float));
    b->grad_skip = malloc(largest * sizeof(float));
    b->replica_scratch = malloc((2 * (size_t)widest + 1) * sizeof(double));
    if (failed || !b->workspace || !b->grad_a || !b->grad_b || !b->grad_c || !b->grad_skip || !b->replica_scratch) {
        encoder_buffers_free(b);
        return error_set(err, "out of memory for encoder buffers (batch %d)", capacity);
    }
    return 0;
}

void encoder_buffers_free(EncoderBuffers *b) {
    for (int l = 0; l < SAT_MAX_CONV; l++) {
        free(b->conv_out[l]);
        free(b->relu_out[l]);
        free(b->pool_out[l]);
        free(b->argmax[l]);
        free(b->bn_mean[l]);
        free(b->bn_inv_std[l]);
    }
    free(b->workspace);
    free(b->grad_a);
    free(b->grad_b);
    free(b->grad_c);
    free(b->grad_skip);
    free(b->replica_scratch);
    memset(b, 0, sizeof *b);
}

static long conv_floats(const SatModel *m, int l, int batch) {
    return (long)batch * m->encoder.channels[l] * conv_size(m, l) * conv_size(m, l);
}

static const float *layer_output(const SatModel *m, const EncoderBuffers *b, int l) {
    return m->encoder.pool[l] ? b->pool_out[l] : b->relu_out[l];
}

/* The input of layer l: the images, or the layer below's output. */
static const float *layer_input(const SatModel *m, const EncoderBuffers *b, const float *images, int l) {
    return l == 0 ? images : layer_output(m, b, l - 1);
}

const float *encoder_forward_train(const SatModel *m, EncoderBuffers *b, const float *images,
                                   int batch, int update_running_stats) {
    const float *in = images;
    for (int l = 0; l < m->encoder.count; l++) {
        Conv2dShape cs = conv_shape(m, l, batch);
        BatchNormShape bs = bn_shape(m, b, l, batch);
        conv2d_forward(b->conv_out[l], in, m->p.conv_weight[l], NULL, &cs, b->workspace);
        batchnorm_forward_train(b->relu_out[l], b->bn_mean[l], b->bn_inv_std[l],
                                update_running_stats ? m->p.bn_running_mean[l] : NULL,
                                update_running_stats ? m->p.bn_running_var[l] : NULL,
                                b->conv_out[l], m->p.bn_weight[l], m->p.bn_bias[l], &bs);
        long n = conv_floats(m, l, batch);
        if (m->encoder.skip[l]) { /* a residual block's shortcut: its input, the input of layer l - 1 */
            const float *shortcut = layer_input(m, b, images, l - 1);
            for (long i = 0; i < n; i++) b->relu_out[l][i] += shortcut[i];
        }
        relu_forward(b->relu_out[l], b->relu_out[l], n);
        if (m->encoder.pool[l]) {
            MaxPoolShape ps = pool_shape(m, l, batch);
            maxpool_forward(b->pool_out[l], b->argmax[l], b->relu_out[l], &ps);
        }
        in = layer_output(m, b, l);
    }
    return in;
}

/* One of the three gradient buffers that is neither a nor b. */
static float *free_buffer(EncoderBuffers *b, const float *avoid1, const float *avoid2) {
    float *candidates[3] = {b->grad_a, b->grad_b, b->grad_c};
    for (int i = 0; i < 3; i++)
        if (candidates[i] != avoid1 && candidates[i] != avoid2) return candidates[i];
    return NULL;
}

void encoder_backward(const SatModel *m, const SatTensors *g, EncoderBuffers *b,
                      const float *images, const float *d_features, int batch) {
    const float *d_out = d_features;
    for (int l = m->encoder.count - 1; l >= 0; l--) {
        long n = conv_floats(m, l, batch);
        float *d_relu = free_buffer(b, d_out, NULL);
        if (m->encoder.pool[l]) {
            MaxPoolShape ps = pool_shape(m, l, batch);
            memset(d_relu, 0, n * sizeof(float));
            maxpool_backward(d_relu, d_out, b->argmax[l], &ps);
        } else {
            memcpy(d_relu, d_out, n * sizeof(float));
        }
        /* ReLU's gradient in place: zero where the output was clipped. */
        for (long i = 0; i < n; i++)
            if (b->relu_out[l][i] <= 0.0f) d_relu[i] = 0.0f;
        /* The shortcut's share reaches the block's input after layer l - 1's convolution. */
        if (m->encoder.skip[l]) memcpy(b->grad_skip, d_relu, n * sizeof(float));
        BatchNormShape bs = bn_shape(m, b, l, batch);
        float *d_conv = free_buffer(b, d_relu, d_out);
        memset(d_conv, 0, n * sizeof(float));
        batchnorm_backward(d_conv, g->bn_weight[l], g->bn_bias[l], d_relu, b->conv_out[l],
                           b->bn_mean[l], b->bn_inv_std[l], m->p.bn_weight[l], &bs);
        Conv2dShape cs = conv_shape(m, l, batch);
        const float *in = layer_input(m, b, images, l);
        float *d_in = NULL;
        size_t in_floats = (size_t)batch * cs.in_channels * cs.in_height * cs.in_width;
        if (l > 0) {
            d_in = d_relu; /* consumed by batch norm: free for the layer below */
            memset(d_in, 0, in_floats * sizeof(float));
        }
        conv2d_backward(d_in, g->conv_weight[l], NULL, d_conv, in, m->p.conv_weight[l], &cs, b->workspace);
        if (d_in && l + 1 < m->encoder.count && m->encoder.skip[l + 1])
            for (size_t i = 0; i < in_floats; i++) d_in[i] += b->grad_skip[i];
        d_out = d_in;
    }
}

/* ReLU and max-pool of a block of one image's output (conv2d's epilogue),
 * run by the thread that just computed it. */
typedef struct {
    const SatModel *model;
    EncoderBuffers *buffers;
    int layer;
    const float *shortcut; /* a residual block's input, added before the ReLU; NULL for other layers */
} InferLayer;

static void relu_and_pool(void *context, int image, int first_channel, int channels, int first_row, int rows) {
    const InferLayer *j = context;
    int l = j->layer, size = conv_size(j->model, l);
    long plane = (long)size * size, first_plane = (long)image * j->model->encoder.channels[l] + first_channel;
    for (int c = 0; c < channels; c++) {
        long at = (first_plane + c) * plane + (long)first_row * size;
        float *block = j->buffers->relu_out[l] + at;
        if (j->shortcut)
            for (long i = 0; i < (long)rows * size; i++) block[i] += j->shortcut[at + i];
        relu_forward(block, block, (long)rows * size);
    }
    if (!j->model->encoder.pool[l]) return;
    MaxPoolShape ps = pool_shape(j->model, l, 1);
    ps.planes = channels;
    long pooled_plane = (long)maxpool_out_height(&ps) * maxpool_out_width(&ps);
    /* Pooled rows whose windows lie in these rows (first_row is even). */
    int first_out = first_row / 2, end_out = (first_row + rows) / 2;
    if (end_out > maxpool_out_height(&ps)) end_out = maxpool_out_height(&ps);
    maxpool_forward_infer(j->buffers->pool_out[l] + first_plane * pooled_plane,
                          j->buffers->relu_out[l] + first_plane * plane, &ps, first_out, end_out - first_out);
}

const float *encoder_forward_infer(const SatModel *m, EncoderBuffers *b, const float *images, int batch,
                                   CoreHelper *helper) {
    const float *in = images;
    for (int l = 0; l < m->encoder.count; l++) {
        Conv2dShape cs = conv_shape(m, l, batch);
        InferLayer layer = {m, b, l, m->encoder.skip[l] ? layer_input(m, b, images, l - 1) : NULL};
        Conv2dEpilogue epilogue = {relu_and_pool, &layer};
        conv2d_forward_shared(helper, b->relu_out[l], in, m->folded_weight[l], m->folded_bias[l], &cs,
                              b->workspace, &epilogue);
        in = layer_output(m, b, l);
    }
    return in;
}

void features_to_annotations(float *z, const float *features, int batch, int D, int cells) {
    for (int b = 0; b < batch; b++)
        for (int d = 0; d < D; d++)
            for (int i = 0; i < cells; i++)
                z[((long)b * cells + i) * D + d] = features[((long)b * D + d) * cells + i];
}

void annotations_to_features_grad(float *d_features, const float *d_z, int batch, int D, int cells) {
    for (int b = 0; b < batch; b++)
        for (int d = 0; d < D; d++)
            for (int i = 0; i < cells; i++)
                d_features[((long)b * D + d) * cells + i] += d_z[((long)b * cells + i) * D + d];
}
