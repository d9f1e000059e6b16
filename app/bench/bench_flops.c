#include "bench_flops.h"

/* Forward multiply-adds of conv layer l for one image; its GEMM shape too. */
static double conv_macs(const SatEncoderLayout *e, int l, int *m, int *n, int *k) {
    int out = (e->in_size[l] + 2 - 3) / e->stride[l] + 1; /* 3x3, padding 1, before any pool */
    *m = e->channels[l];
    *n = out * out;
    *k = e->in_channels[l] * 9;
    return (double)*m * *n * *k;
}

/* Decoder forward multiply-adds per caption (once) and per caption and step. */
static void decoder_macs(const SatModel *model, double *per_row, double *per_step) {
    const SatConfig *c = &model->config;
    double L = model->cells, D = model->features, H = c->hidden_dim, E = c->embed_dim;
    double V = c->vocab_size, A = c->attention_dim;
    *per_row = 2 * H * D;
    *per_step = 4 * H * (E + D) + 4 * H * H + E * H + E * D + V * E;
    if (!c->use_attention) return;
    *per_step += H + L * D; /* gate, context */
    if (c->score == ATTENTION_ADDITIVE) {
        *per_row += L * D * A;
        *per_step += H * A + L * A;
    } else {
        *per_step += H * D + L * D; /* W h (or h^T W), then the dot with each z_i */
    }
}

void bench_count_flops(const SatModel *model, int images, int rows, int steps, BenchFlops *out) {
    const SatEncoderLayout *e = &model->encoder;
    double cnn = 0.0, cnn_backward = 0.0, largest = 0.0;
    *out = (BenchFlops){0};
    for (int l = 0; l < e->count; l++) {
        int m, n, k;
        double macs = conv_macs(e, l, &m, &n, &k);
        cnn += macs;
        cnn_backward += l == 0 ? macs : 2 * macs;
        if (macs > largest) {
            largest = macs;
            out->gemm_m = m, out->gemm_n = n, out->gemm_k = k;
        }
    }
    double per_row, per_step;
    decoder_macs(model, &per_row, &per_step);
    double decoder = rows * (per_row + (double)steps * per_step);
    out->cnn_forward = 2 * cnn;
    out->train_step = 2 * (images * (cnn + cnn_backward) + 3 * decoder);
}
