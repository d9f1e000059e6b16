#include "lstm.h"

#include <cblas.h>
#include <math.h>

#include "activation.h"
#include "linear.h"

void lstm_cell_forward(float *h, float *c, float *gates, const float *x, const float *h_prev,
                       const float *c_prev, const float *w_ih, const float *w_hh,
                       const float *bias, const LstmShape *s) {
    int H = s->hidden, G = 4 * s->hidden;
    linear_forward(gates, x, w_ih, bias, s->batch, s->input, G);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->batch, G, H, 1.0f, h_prev, H, w_hh, H,
                1.0f, gates, G);
    for (int b = 0; b < s->batch; b++) {
        float *g = gates + (long)b * G;
        for (int j = 0; j < H; j++) {
            float in_gate = sigmoid(g[j]), forget = sigmoid(g[H + j]);
            float cell_in = tanhf(g[2 * H + j]), out_gate = sigmoid(g[3 * H + j]);
            g[j] = in_gate;
            g[H + j] = forget;
            g[2 * H + j] = cell_in;
            g[3 * H + j] = out_gate;
            float cell = forget * c_prev[(long)b * H + j] + in_gate * cell_in;
            c[(long)b * H + j] = cell;
            h[(long)b * H + j] = out_gate * tanhf(cell);
        }
    }
}

void lstm_cell_backward(float *d_x, float *d_h_prev, float *d_c_prev, float *d_w_ih,
                        float *d_w_hh, float *d_bias, const float *d_h, const float *d_c,
                        const float *gates, const float *c, const float *x,
                        const float *h_prev, const float *c_prev, const float *w_ih,
                        const float *w_hh, const LstmShape *s, float *workspace) {
    int H = s->hidden, G = 4 * s->hidden;
    float *d_pre = workspace; /* gradient wrt the gate pre-activations */
    for (int b = 0; b < s->batch; b++)
        for (int j = 0; j < H; j++) {
            long i = (long)b * H + j;
            const float *g = gates + (long)b * G;
            float in_gate = g[j], forget = g[H + j], cell_in = g[2 * H + j], out_gate = g[3 * H + j];
            float tanh_c = tanhf(c[i]);
            float dc = d_c[i] + d_h[i] * out_gate * (1.0f - tanh_c * tanh_c);
            float *dp = d_pre + (long)b * G;
            dp[j] = dc * cell_in * in_gate * (1.0f - in_gate);
            dp[H + j] = dc * c_prev[i] * forget * (1.0f - forget);
            dp[2 * H + j] = dc * in_gate * (1.0f - cell_in * cell_in);
            dp[3 * H + j] = d_h[i] * tanh_c * out_gate * (1.0f - out_gate);
            d_c_prev[i] += dc * forget;
        }
    linear_backward(d_x, d_w_ih, d_bias, d_pre, x, w_ih, s->batch, s->input, G);
    linear_backward(d_h_prev, d_w_hh, NULL, d_pre, h_prev, w_hh, s->batch, H, G);
}
