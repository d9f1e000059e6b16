#include "conv2d.h"

#include <cblas.h>
#include <string.h>

/* Images are processed in chunks: im2col of the whole chunk into one
 * [C*K*K, chunk*HW] matrix and one sgemm per chunk, so that late layers with
 * few output pixels (12x12, 6x6) still give the GEMM enough columns to run
 * near peak. The chunk is sized for about TARGET_COLUMNS columns, and its
 * workspace capped at WORKSPACE_CAP_FLOATS (64 MB), falling back to smaller
 * chunks (at least one image). Bigger targets (8192+) measured slower: the
 * column matrix then no longer stays in cache between im2col and the sgemm. */
#define TARGET_COLUMNS 2048L
#define WORKSPACE_CAP_FLOATS (16L * 1024 * 1024)

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

/* A 1x1, stride-1, unpadded convolution: an image is already its own column
 * matrix [C, HW], so a one-image chunk needs no im2col. */
static int is_pointwise(const Conv2dShape *s) {
    return s->kernel == 1 && s->stride == 1 && s->padding == 0;
}

/* The most images per chunk; independent of the batch (callers size the
 * workspace with a batch-1 shape and run it with the full batch). A chunk of
 * n > 1 images needs n * (rows + out_channels) * HW floats: the column matrix
 * plus the [out_channels, n*HW] GEMM result (forward) or gathered output
 * gradient (backward). One image needs only the column matrix. */
static long max_chunk(const Conv2dShape *s) {
    long pixels = out_pixels(s);
    long per_image = (col_rows(s) + s->out_channels) * pixels;
    long chunk = (TARGET_COLUMNS + pixels - 1) / pixels;
    long cap = WORKSPACE_CAP_FLOATS / per_image;
    if (chunk > cap) chunk = cap;
    return chunk < 1 ? 1 : chunk;
}

size_t conv2d_workspace_floats(const Conv2dShape *s) {
    long chunk = max_chunk(s), pixels = out_pixels(s), rows = col_rows(s);
    if (chunk > 1) return (size_t)chunk * (size_t)(rows + s->out_channels) * (size_t)pixels;
    /* At least one float, so that allocating it never looks like a failure. */
    return is_pointwise(s) ? 1 : (size_t)rows * (size_t)pixels;
}

/* This call's chunk: the batch split evenly into as few chunks as allowed. */
static int call_chunk(const Conv2dShape *s) {
    long limit = max_chunk(s);
    long chunks = (s->batch + limit - 1) / limit;
    if (chunks < 1) return 1;
    return (int)((s->batch + chunks - 1) / chunks);
}

/* The output positions o in [0, count) whose input coordinate o * stride +
 * offset lies in [0, size): [*lo, *hi). */
static void valid_range(int count, int stride, int offset, int size, int *lo, int *hi) {
    int first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    int end = size - 1 - offset < 0 ? 0 : (size - 1 - offset) / stride + 1;
    if (first > count) first = count;
    if (end > count) end = count;
    if (end < first) end = first;
    *lo = first;
    *hi = end;
}

/* col[(c, ky, kx), i * HW + (oy, ox)] = image_i[c, oy*stride - pad + ky, ox*stride - pad + kx]
 * or 0, for the images i < n of a chunk; ld is the column matrix's row length. */
static void im2col(float *col, long ld, const float *images, int n, const Conv2dShape *s) {
    int out_h = conv2d_out_height(s), out_w = conv2d_out_width(s), k = s->kernel;
    int stride = s->stride;
    long pixels = (long)out_h * out_w, plane_size = (long)s->in_height * s->in_width;
    long image_size = s->in_channels * plane_size;
    for (int c = 0; c < s->in_channels; c++)
        for (int ky = 0; ky < k; ky++) {
            int y0 = ky - s->padding, y_lo, y_hi;
            valid_range(out_h, stride, y0, s->in_height, &y_lo, &y_hi);
            for (int kx = 0; kx < k; kx++) {
                int x0 = kx - s->padding, x_lo, x_hi;
                valid_range(out_w, stride, x0, s->in_width, &x_lo, &x_hi);
                float *row = col + (((long)c * k + ky) * k + kx) * ld;
                for (int i = 0; i < n; i++) {
                    float *dst_image = row + i * pixels;
                    const float *plane = images + i * image_size + c * plane_size;
                    if (y_lo > 0) memset(dst_image, 0, sizeof(float) * (size_t)y_lo * out_w);
                    if (y_hi < out_h)
                        memset(dst_image + (long)y_hi * out_w, 0,
                               sizeof(float) * (size_t)(out_h - y_hi) * out_w);
                    for (int oy = y_lo; oy < y_hi; oy++) {
                        float *dst = dst_image + (long)oy * out_w;
                        const float *src = plane + (long)(oy * stride + y0) * s->in_width;
                        if (x_lo > 0) memset(dst, 0, sizeof(float) * (size_t)x_lo);
                        if (stride == 1)
                            memcpy(dst + x_lo, src + x_lo + x0, sizeof(float) * (size_t)(x_hi - x_lo));
                        else
                            for (int ox = x_lo; ox < x_hi; ox++) dst[ox] = src[ox * stride + x0];
                        if (x_hi < out_w) memset(dst + x_hi, 0, sizeof(float) * (size_t)(out_w - x_hi));
                    }
                }
            }
        }
}

/* The adjoint of im2col: scatters column gradients back, accumulating. */
static void col2im_add(float *images, const float *col, long ld, int n, const Conv2dShape *s) {
    int out_h = conv2d_out_height(s), out_w = conv2d_out_width(s), k = s->kernel;
    int stride = s->stride;
    long pixels = (long)out_h * out_w, plane_size = (long)s->in_height * s->in_width;
    long image_size = s->in_channels * plane_size;
    for (int c = 0; c < s->in_channels; c++)
        for (int ky = 0; ky < k; ky++) {
            int y0 = ky - s->padding, y_lo, y_hi;
            valid_range(out_h, stride, y0, s->in_height, &y_lo, &y_hi);
            for (int kx = 0; kx < k; kx++) {
                int x0 = kx - s->padding, x_lo, x_hi;
                valid_range(out_w, stride, x0, s->in_width, &x_lo, &x_hi);
                const float *row = col + (((long)c * k + ky) * k + kx) * ld;
                for (int i = 0; i < n; i++) {
                    float *plane = images + i * image_size + c * plane_size;
                    for (int oy = y_lo; oy < y_hi; oy++) {
                        const float *restrict src = row + i * pixels + (long)oy * out_w;
                        float *restrict dst = plane + (long)(oy * stride + y0) * s->in_width;
                        if (stride == 1)
                            for (int ox = x_lo; ox < x_hi; ox++) dst[ox + x0] += src[ox];
                        else
                            for (int ox = x_lo; ox < x_hi; ox++) dst[ox * stride + x0] += src[ox];
                    }
                }
            }
        }
}

/* out[M, N] = weight[M, K] col[K, N], row-major, columns [first, first+count). */
typedef struct {
    float *out;
    const float *weight, *col;
    int m, n, k, split;
} GemmColumns;

static void gemm_columns(const GemmColumns *g, int first, int count) {
    if (count > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->m, count, g->k, 1.0f, g->weight, g->k,
                    g->col + first, g->n, 0.0f, g->out + first, g->n);
}

static void gemm_part(void *context, int part) {
    const GemmColumns *g = context;
    if (part == 0) gemm_columns(g, 0, g->split);
    else gemm_columns(g, g->split, g->n - g->split);
}

/* Below this many columns a product is over before the helper would start. */
enum { SHARED_MIN_COLUMNS = 256 };

static void gemm_shared(CoreHelper *helper, const GemmColumns *g) {
    if (!helper || g->n < SHARED_MIN_COLUMNS) {
        gemm_columns(g, 0, g->n);
        return;
    }
    GemmColumns split = *g;
    split.split = (g->n / 2) & ~15; /* whole vectors of columns on each side */
    core_helper_split(helper, gemm_part, &split);
}

void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    const Conv2dShape *s, float *workspace) {
    conv2d_forward_shared(NULL, out, in, weight, bias, s, workspace);
}

void conv2d_forward_shared(CoreHelper *helper, float *out, const float *in, const float *weight,
                           const float *bias, const Conv2dShape *s, float *workspace) {
    long rows = col_rows(s), pixels = out_pixels(s);
    long in_size = (long)s->in_channels * s->in_height * s->in_width;
    long out_size = (long)s->out_channels * pixels;
    int chunk = call_chunk(s);
    for (int b0 = 0; b0 < s->batch; b0 += chunk) {
        int n = s->batch - b0 < chunk ? s->batch - b0 : chunk;
        long cols = n * pixels;
        const float *col = workspace;
        if (n == 1 && is_pointwise(s))
            col = in + b0 * in_size;
        else
            im2col(workspace, cols, in + b0 * in_size, n, s);
        /* One image: straight into the output; more: [out_channels, n*HW], then scattered. */
        float *result = n == 1 ? out + b0 * out_size : workspace + rows * cols;
        gemm_shared(helper, &(GemmColumns){result, weight, col, s->out_channels, (int)cols, (int)rows, 0});
        if (n == 1) {
            if (bias)
                for (int o = 0; o < s->out_channels; o++)
                    for (long p = 0; p < pixels; p++) result[o * pixels + p] += bias[o];
            continue;
        }
        for (int i = 0; i < n; i++)
            for (int o = 0; o < s->out_channels; o++) {
                float *dst = out + (b0 + i) * out_size + o * pixels;
                const float *src = result + o * cols + i * pixels;
                if (bias) {
                    float bo = bias[o];
                    for (long p = 0; p < pixels; p++) dst[p] = src[p] + bo;
                } else {
                    memcpy(dst, src, sizeof(float) * (size_t)pixels);
                }
            }
    }
}

void conv2d_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out,
                     const float *in, const float *weight, const Conv2dShape *s,
                     float *workspace) {
    long rows = col_rows(s), pixels = out_pixels(s);
    long in_size = (long)s->in_channels * s->in_height * s->in_width;
    long out_size = (long)s->out_channels * pixels;
    int chunk = call_chunk(s);
    if (d_bias)
        for (int b = 0; b < s->batch; b++)
            for (int o = 0; o < s->out_channels; o++)
                for (long p = 0; p < pixels; p++) d_bias[o] += d_out[b * out_size + o * pixels + p];
    if (!d_weight && !d_in) return;
    for (int b0 = 0; b0 < s->batch; b0 += chunk) {
        int n = s->batch - b0 < chunk ? s->batch - b0 : chunk;
        long cols = n * pixels;
        int direct = n == 1 && is_pointwise(s);
        /* d_out of the chunk as [out_channels, n*HW]: gathered unless one image. */
        const float *grad = d_out + b0 * out_size;
        if (n > 1) {
            float *gathered = workspace + rows * cols;
            for (int o = 0; o < s->out_channels; o++)
                for (int i = 0; i < n; i++)
                    memcpy(gathered + o * cols + i * pixels, grad + i * out_size + o * pixels,
                           sizeof(float) * (size_t)pixels);
            grad = gathered;
        }
        if (d_weight) {
            const float *col = workspace;
            if (direct)
                col = in + b0 * in_size;
            else
                im2col(workspace, cols, in + b0 * in_size, n, s);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->out_channels, (int)rows,
                        (int)cols, 1.0f, grad, (int)cols, col, (int)cols, 1.0f, d_weight,
                        (int)rows);
        }
        if (d_in) {
            /* d_col = W^T grad, then col2im; a pointwise image is its own column matrix,
             * so there the GEMM accumulates into d_in directly. */
            float *d_col = direct ? d_in + b0 * in_size : workspace;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)rows, (int)cols,
                        s->out_channels, 1.0f, weight, (int)rows, grad, (int)cols,
                        direct ? 1.0f : 0.0f, d_col, (int)cols);
            if (!direct) col2im_add(d_in + b0 * in_size, d_col, cols, n, s);
        }
    }
}
