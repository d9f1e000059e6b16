#include "conv2d.h"

#include <cblas.h>
#include <string.h>

int conv2d_out_height(const Conv2dShape *s) {
    return (s->in_height + 2 * s->padding - s->kernel) / s->stride + 1;
}

int conv2d_out_width(const Conv2dShape *s) {
    return (s->in_width + 2 * s->padding - s->kernel) / s->stride + 1;
}

static long col_rows(const Conv2dShape *s) { return (long)s->in_channels * s->kernel * s->kernel; }

static long out_pixels(const Conv2dShape *s) {
    return (long)conv2d_out_height(s) * conv2d_out_width(s);
}

size_t conv2d_workspace_floats(const Conv2dShape *s) {
    return 2 * (size_t)col_rows(s) * (size_t)out_pixels(s);
}

/* col[(c, ky, kx), (oy, ox)] = image[c, oy*stride - pad + ky, ox*stride - pad + kx] or 0. */
static void im2col(float *col, const float *image, const Conv2dShape *s) {
    int out_h = conv2d_out_height(s), out_w = conv2d_out_width(s);
    for (int c = 0; c < s->in_channels; c++)
        for (int ky = 0; ky < s->kernel; ky++)
            for (int kx = 0; kx < s->kernel; kx++) {
                float *row = col + (((long)c * s->kernel + ky) * s->kernel + kx) * out_h * out_w;
                const float *plane = image + (long)c * s->in_height * s->in_width;
                for (int oy = 0; oy < out_h; oy++) {
                    int iy = oy * s->stride - s->padding + ky;
                    float *dst = row + (long)oy * out_w;
                    if (iy < 0 || iy >= s->in_height) {
                        memset(dst, 0, sizeof(float) * out_w);
                        continue;
                    }
                    const float *src = plane + (long)iy * s->in_width;
                    for (int ox = 0; ox < out_w; ox++) {
                        int ix = ox * s->stride - s->padding + kx;
                        dst[ox] = (ix >= 0 && ix < s->in_width) ? src[ix] : 0.0f;
                    }
                }
            }
}

/* The adjoint of im2col: scatters column gradients back, accumulating. */
static void col2im_add(float *image, const float *col, const Conv2dShape *s) {
    int out_h = conv2d_out_height(s), out_w = conv2d_out_width(s);
    for (int c = 0; c < s->in_channels; c++)
        for (int ky = 0; ky < s->kernel; ky++)
            for (int kx = 0; kx < s->kernel; kx++) {
                const float *row = col + (((long)c * s->kernel + ky) * s->kernel + kx) * out_h * out_w;
                float *plane = image + (long)c * s->in_height * s->in_width;
                for (int oy = 0; oy < out_h; oy++) {
                    int iy = oy * s->stride - s->padding + ky;
                    if (iy < 0 || iy >= s->in_height) continue;
                    float *dst = plane + (long)iy * s->in_width;
                    const float *src = row + (long)oy * out_w;
                    for (int ox = 0; ox < out_w; ox++) {
                        int ix = ox * s->stride - s->padding + kx;
                        if (ix >= 0 && ix < s->in_width) dst[ix] += src[ox];
                    }
                }
            }
}

void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    const Conv2dShape *s, float *workspace) {
    long rows = col_rows(s), pixels = out_pixels(s);
    long in_size = (long)s->in_channels * s->in_height * s->in_width;
    for (int b = 0; b < s->batch; b++) {
        float *out_b = out + (long)b * s->out_channels * pixels;
        im2col(workspace, in + b * in_size, s);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->out_channels, (int)pixels,
                    (int)rows, 1.0f, weight, (int)rows, workspace, (int)pixels, 0.0f, out_b,
                    (int)pixels);
        if (bias)
            for (int o = 0; o < s->out_channels; o++)
                for (long p = 0; p < pixels; p++) out_b[o * pixels + p] += bias[o];
    }
}

void conv2d_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out,
                     const float *in, const float *weight, const Conv2dShape *s,
                     float *workspace) {
    long rows = col_rows(s), pixels = out_pixels(s);
    long in_size = (long)s->in_channels * s->in_height * s->in_width;
    float *col = workspace, *d_col = workspace + rows * pixels;
    for (int b = 0; b < s->batch; b++) {
        const float *d_out_b = d_out + (long)b * s->out_channels * pixels;
        if (d_weight) {
            im2col(col, in + b * in_size, s);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->out_channels, (int)rows,
                        (int)pixels, 1.0f, d_out_b, (int)pixels, col, (int)pixels, 1.0f,
                        d_weight, (int)rows);
        }
        if (d_bias)
            for (int o = 0; o < s->out_channels; o++)
                for (long p = 0; p < pixels; p++) d_bias[o] += d_out_b[o * pixels + p];
        if (d_in) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)rows, (int)pixels,
                        s->out_channels, 1.0f, weight, (int)rows, d_out_b, (int)pixels, 0.0f,
                        d_col, (int)pixels);
            col2im_add(d_in + b * in_size, d_col, s);
        }
    }
}
