#include "maxpool.h"

int maxpool_out_height(const MaxPoolShape *s) { return (s->in_height - s->kernel) / s->stride + 1; }
int maxpool_out_width(const MaxPoolShape *s) { return (s->in_width - s->kernel) / s->stride + 1; }

void maxpool_forward(float *out, int *argmax, const float *in, const MaxPoolShape *s) {
    int out_h = maxpool_out_height(s), out_w = maxpool_out_width(s);
    long in_plane = (long)s->in_height * s->in_width, out_plane = (long)out_h * out_w;
    for (int p = 0; p < s->planes; p++) {
        const float *src = in + p * in_plane;
        for (int oy = 0; oy < out_h; oy++)
            for (int ox = 0; ox < out_w; ox++) {
                int best = (oy * s->stride) * s->in_width + ox * s->stride;
                for (int ky = 0; ky < s->kernel; ky++)
                    for (int kx = 0; kx < s->kernel; kx++) {
                        int idx = (oy * s->stride + ky) * s->in_width + ox * s->stride + kx;
                        /* Strictly greater: ties go to the first, as in PyTorch. */
                        if (src[idx] > src[best]) best = idx;
                    }
                long o = p * out_plane + (long)oy * out_w + ox;
                out[o] = src[best];
                argmax[o] = best;
            }
    }
}

void maxpool_forward_infer(float *out, const float *in, const MaxPoolShape *s, int first_row, int rows) {
    int out_h = maxpool_out_height(s), out_w = maxpool_out_width(s), k = s->kernel, stride = s->stride;
    long in_plane = (long)s->in_height * s->in_width, out_plane = (long)out_h * out_w;
    for (int p = 0; p < s->planes; p++)
        for (int oy = first_row; oy < first_row + rows; oy++) {
            float *restrict dst = out + p * out_plane + (long)oy * out_w;
            const float *restrict top = in + p * in_plane + (long)oy * stride * s->in_width;
            for (int ox = 0; ox < out_w; ox++) dst[ox] = top[ox * stride];
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    const float *restrict src = top + (long)ky * s->in_width + kx;
                    /* Strictly greater, in maxpool_forward's order: the same element wins. */
                    for (int ox = 0; ox < out_w; ox++) {
                        float v = src[ox * stride];
                        dst[ox] = v > dst[ox] ? v : dst[ox];
                    }
                }
        }
}

void maxpool_backward(float *d_in, const float *d_out, const int *argmax, const MaxPoolShape *s) {
    long in_plane = (long)s->in_height * s->in_width;
    long out_plane = (long)maxpool_out_height(s) * maxpool_out_width(s);
    for (int p = 0; p < s->planes; p++)
        for (long o = 0; o < out_plane; o++)
            d_in[p * in_plane + argmax[p * out_plane + o]] += d_out[p * out_plane + o];
}
