#include "lstm.h"

#include <stddef.h>

#include "activation.h"
#include "linear.h"

/* One batch row; restrict lets the compiler vectorise without runtime alias checks. */
static void cell_update(float *restrict h, float *restrict c, const float *restrict in_gate,
                        const float *restrict forget, const float *restrict cell_in,
                        const float *restrict out_gate, const float *restrict c_prev, int H) {
    for (int j = 0; j < H; j++) {
        c[j] = forget[j] * c_prev[j] + in_gate[j] * cell_in[j];
        h[j] = out_gate[j] * fast_tanhf(c[j]);
    }
}

void lstm_cell_activate(float *h, float *c, float *gates, const float *c_prev, const LstmShape *s) {
    int H = s->hidden, G = 4 * s->hidden;
    for (int b = 0; b < s->batch; b++) {
        /* Gate by gate, then the cell: loops the compiler vectorises. */
        float *g = gates + (long)b * G;
        sigmoid_forward(g, g, 2L * H);
        tanh_forward(g + 2 * H, g + 2 * H, H);
        sigmoid_forward(g + 3 * H, g + 3 * H, H);
        cell_update(h + (long)b * H, c + (long)b * H, g, g + H, g + 2 * H, g + 3 * H,
                    c_prev + (long)b * H, H);
    }
}

void lstm_cell_forward(float *h, float *c, float *gates, const float *x, const float *h_prev,
                       const float *c_prev, const float *w_ih, const float *w_hh,
                       const float *bias, const LstmShape *s) {
    int H = s->hidden, G = 4 * s->hidden;
    linear_forward(gates, x, w_ih, bias, s->batch, s->input, G);
    matmul_weight_t(gates, h_prev, w_hh, s->batch, H, G, 1.0f);
    lstm_cell_activate(h, c, gates, c_prev, s);
}

/* One batch row: d = the gradients wrt the four gate pre-activations [i f g o], and d_c_prev. */
static void cell_backward(float *restrict d, float *restrict d_c_prev, const float *restrict gates,
                          const float *restrict d_h, const float *restrict d_c,
                          const float *restrict c, const float *restrict c_prev, int H) {
    for (int j = 0; j < H; j++) {
        float in_gate = gates[j], forget = gates[H + j];
        float cell_in = gates[2 * H + j], out_gate = gates[3 * H + j];
        float tanh_c = fast_tanhf(c[j]);
        float dc = d_c[j] + d_h[j] * out_gate * (1.0f - tanh_c * tanh_c);
        d[j] = dc * cell_in * in_gate * (1.0f - in_gate);
        d[H + j] = dc * c_prev[j] * forget * (1.0f - forget);
        d[2 * H + j] = dc * in_gate * (1.0f - cell_in * cell_in);
        d[3 * H + j] = d_h[j] * tanh_c * out_gate * (1.0f - out_gate);
        d_c_prev[j] += dc * forget;
    }
}

void lstm_cell_backward(float *d_x, float *d_h_prev, float *d_c_prev, float *d_w_ih,
                        float *d_w_hh, float *d_bias, const float *d_h, const float *d_c,
                        const float *gates, const float *c, const float *x,
                        const float *h_prev, const float *c_prev, const float *w_ih,
                        const float *w_hh, const LstmShape *s, float *workspace) {
    int H = s->hidden, G = 4 * s->hidden;
    float *d_pre = workspace; /* gradient wrt the gate pre-activations */
    for (int b = 0; b < s->batch; b++) {
        long row = (long)b * H;
        cell_backward(d_pre + (long)b * G, d_c_prev + row, gates + (long)b * G, d_h + row, d_c + row,
                      c + row, c_prev + row, H);
    }
    linear_backward(d_x, d_w_ih, d_bias, d_pre, x, w_ih, s->batch, s->input, G);
    linear_backward(d_h_prev, d_w_hh, NULL, d_pre, h_prev, w_hh, s->batch, H, G);
}
