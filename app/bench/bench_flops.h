#ifndef APP_BENCH_FLOPS_H
#define APP_BENCH_FLOPS_H

#include "model.h"

/* Floating-point operations of the model's matrix products, 2 per
 * multiply-add, counted from its configuration (not measured):
 *   CNN forward: sum over conv layers of 2 * C_out * C_in * 9 * H_out * W_out.
 *   Training step: conv forward, conv backward (weight gradient, and input
 *   gradient for every layer but the first: the image needs none), and 3x
 *   the decoder's forward matrix products (backward computes a gradient for
 *   both operands of each). Decoder, per caption: init_h and init_c, the
 *   additive attention's feature projection; per caption and step: query,
 *   scores and context (matrix-vector products over the L cells), gate, the
 *   LSTM's W_ih and W_hh, L_h, L_z and L_o. Element-wise work (batch norm,
 *   activations, softmax, the optimiser) is not counted. */
typedef struct {
    double cnn_forward;   /* per image */
    double train_step;    /* the whole batch */
    int gemm_m, gemm_n, gemm_k; /* the conv layer whose forward GEMM is largest: M = C_out, N = pixels, K = C_in * 9 */
} BenchFlops;

void bench_count_flops(const SatModel *model, int images, int rows, int steps, BenchFlops *out);

#endif
