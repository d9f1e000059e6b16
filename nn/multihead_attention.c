#include "multihead_attention.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "softmax.h"

/* Keys query i of item b may see: 0 .. visible - 1. */
static int visible_keys(const MhaShape *s, const int *key_lengths, int b, int i) {
    int n = key_lengths ? key_lengths[b] : s->keys;
    if (n > s->keys) n = s->keys;
    if (s->causal && i + s->query_offset + 1 < n) n = i + s->query_offset + 1;
    return n > 0 ? n : 0;
}

/* The softmax over the first `visible` keys; the others get 0. */
static void masked_softmax_row(float *p, int visible, int keys) {
    if (visible > 0) softmax_row(p, p, visible);
    memset(p + visible, 0, sizeof(float) * (size_t)(keys - visible));
}

void mha_forward(float *out, float *probs, const float *q, const float *k, const float *v, const int *key_lengths,
                 const MhaShape *s) {
    int Tq = s->queries, Tk = s->keys, C = s->channels, dh = C / s->heads;
    float scale = 1.0f / sqrtf((float)dh);
    for (int b = 0; b < s->batch; b++)
        for (int h = 0; h < s->heads; h++) {
            size_t kv_item = s->kv_items ? (size_t)s->kv_items[b] : (size_t)b;
            const float *qh = q + (size_t)b * Tq * s->q_stride + h * dh;
            const float *kh = k + kv_item * Tk * s->kv_stride + h * dh;
            const float *vh = v + kv_item * Tk * s->kv_stride + h * dh;
            float *p = probs + ((size_t)b * s->heads + h) * Tq * Tk;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, dh, scale, qh, s->q_stride, kh,
                        s->kv_stride, 0.0f, p, Tk);
            for (int i = 0; i < Tq; i++) masked_softmax_row(p + (size_t)i * Tk, visible_keys(s, key_lengths, b, i), Tk);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, dh, Tk, 1.0f, p, Tk, vh, s->kv_stride, 0.0f,
                        out + (size_t)b * Tq * C + h * dh, C);
        }
}

size_t mha_workspace_floats(const MhaShape *s) { return (size_t)s->queries * s->keys; }

void mha_backward(float *d_q, float *d_k, float *d_v, const float *d_out, const float *d_probs, const float *probs,
                  const float *q, const float *k, const float *v, const MhaShape *s, float *workspace) {
    int Tq = s->queries, Tk = s->keys, C = s->channels, dh = C / s->heads;
    float scale = 1.0f / sqrtf((float)dh);
    float *dp = workspace;
    for (int b = 0; b < s->batch; b++)
        for (int h = 0; h < s->heads; h++) {
            size_t kv_item = s->kv_items ? (size_t)s->kv_items[b] : (size_t)b;
            size_t q_at = (size_t)b * Tq * s->q_stride + h * dh, kv_at = kv_item * Tk * s->kv_stride + h * dh;
            const float *p = probs + ((size_t)b * s->heads + h) * Tq * Tk;
            const float *dout = d_out + (size_t)b * Tq * C + h * dh;
            /* dV += P^T dOut;  dP = dOut V^T (+ the loss's own gradient on P) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, dh, Tq, 1.0f, p, Tk, dout, C, 1.0f,
                        d_v + kv_at, s->kv_stride);
            if (d_probs) memcpy(dp, d_probs + ((size_t)b * s->heads + h) * Tq * Tk, (size_t)Tq * Tk * sizeof(float));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, dh, 1.0f, dout, C, v + kv_at, s->kv_stride,
                        d_probs ? 1.0f : 0.0f, dp, Tk);
            /* dS = P * (dP - sum_j P dP): masked keys have P = 0 and get nothing. */
            for (int i = 0; i < Tq; i++) {
                const float *pi = p + (size_t)i * Tk;
                float *di = dp + (size_t)i * Tk;
                double dot = 0.0;
                for (int j = 0; j < Tk; j++) dot += (double)pi[j] * di[j];
                for (int j = 0; j < Tk; j++) di[j] = pi[j] * (di[j] - (float)dot);
            }
            /* dQ += dS K / sqrt(dh);  dK += dS^T Q / sqrt(dh) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, dh, Tk, scale, dp, Tk, k + kv_at, s->kv_stride,
                        1.0f, d_q + q_at, s->q_stride);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, dh, Tq, scale, dp, Tk, q + q_at, s->q_stride,
                        1.0f, d_k + kv_at, s->kv_stride);
        }
}
