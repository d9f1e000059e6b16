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
 * or 0, for the images i < n of a chunk and the output rows oy in [oy_begin,
 * oy_end) (a part of the columns, for two threads); ld is the column matrix's
 * row length. */
static void im2col_rows(float *col, long ld, const float *images, int n, const Conv2dShape *s, int oy_begin,
                        int oy_end) {
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
                /* Rows of this part above and below the image are zeros. */
                int lo = y_lo > oy_begin ? y_lo : oy_begin, hi = y_hi < oy_end ? y_hi : oy_end;
                if (hi < lo) hi = lo = oy_begin;
                for (int i = 0; i < n; i++) {
                    float *dst_image = row + i * pixels;
                    const float *plane = images + i * image_size + c * plane_size;
                    if (lo > oy_begin)
                        memset(dst_image + (long)oy_begin * out_w, 0, sizeof(float) * (size_t)(lo - oy_begin) * out_w);
                    if (hi < oy_end)
                        memset(dst_image + (long)hi * out_w, 0, sizeof(float) * (size_t)(oy_end - hi) * out_w);
                    for (int oy = lo; oy < hi; oy++) {
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

static void im2col(float *col, long ld, const float *images, int n, const Conv2dShape *s) {
    im2col_rows(col, ld, images, n, s, 0, conv2d_out_height(s));
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

/* One image's convolution in two halves. With a helper the halves run at
 * once, without it one after the other: the same sgemm calls either way, so
 * the helper changes no bit (one product on one thread and two halves on two
 * need not round alike: OpenBLAS's Haswell kernels tile and block a product
 * by its size). A map with more pixels than channels is halved by output
 * rows: each thread builds the column matrix of its rows and multiplies it,
 * so the big column matrix is packed once (half by each). A small late map is
 * halved by output channels: each thread multiplies half of the weights,
 * after both have built half of the column matrix. */
typedef struct {
    float *out, *workspace;
    const float *image, *weight, *bias;
    const Conv2dShape *shape;
    const Conv2dEpilogue *epilogue; /* may be NULL */
    int image_index;
    int split_row;     /* by rows: part 0 computes the output rows above it, part 1 the rest */
    int split_channel; /* by channels: part 0 computes the channels below it, part 1 the rest */
} ConvImage;

/* Output channels [first, + count), every output row; the column matrix is built. */
static void conv_image_channels(const ConvImage *j, int first, int count) {
    const Conv2dShape *s = j->shape;
    long rows = col_rows(s), pixels = out_pixels(s);
    if (count <= 0) return;
    const float *col = is_pointwise(s) ? j->image : j->workspace;
    float *out = j->out + first * pixels;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, count, (int)pixels, (int)rows, 1.0f,
                j->weight + first * rows, (int)rows, col, (int)pixels, 0.0f, out, (int)pixels);
    if (j->bias)
        for (int o = 0; o < count; o++)
            for (long p = 0; p < pixels; p++) out[o * pixels + p] += j->bias[first + o];
    if (j->epilogue)
        j->epilogue->run(j->epilogue->context, j->image_index, first, count, 0, conv2d_out_height(s));
}

/* Output rows [first_row, end_row) of every channel, column matrix included. */
static void conv_image_rows(const ConvImage *j, int first_row, int end_row) {
    const Conv2dShape *s = j->shape;
    long rows = col_rows(s), pixels = out_pixels(s);
    long first = (long)first_row * conv2d_out_width(s), count = (long)(end_row - first_row) * conv2d_out_width(s);
    if (count <= 0) return;
    const float *col = j->image;
    if (!is_pointwise(s)) {
        im2col_rows(j->workspace, pixels, j->image, 1, s, first_row, end_row);
        col = j->workspace;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->out_channels, (int)count, (int)rows, 1.0f,
                j->weight, (int)rows, col + first, (int)pixels, 0.0f, j->out + first, (int)pixels);
    if (j->bias)
        for (int o = 0; o < s->out_channels; o++)
            for (long p = first; p < first + count; p++) j->out[o * pixels + p] += j->bias[o];
    if (j->epilogue)
        j->epilogue->run(j->epilogue->context, j->image_index, 0, s->out_channels, first_row, end_row - first_row);
}

static void rows_part(void *context, int part) {
    const ConvImage *j = context;
    if (part == 0) conv_image_rows(j, 0, j->split_row);
    else conv_image_rows(j, j->split_row, conv2d_out_height(j->shape));
}

static void im2col_part(void *context, int part) {
    const ConvImage *j = context;
    if (part == 0) im2col_rows(j->workspace, out_pixels(j->shape), j->image, 1, j->shape, 0, j->split_row);
    else im2col_rows(j->workspace, out_pixels(j->shape), j->image, 1, j->shape, j->split_row,
                     conv2d_out_height(j->shape));
}

static void channels_part(void *context, int part) {
    const ConvImage *j = context;
    if (part == 0) conv_image_channels(j, 0, j->split_channel);
    else conv_image_channels(j, j->split_channel, j->shape->out_channels - j->split_channel);
}

/* Below this many multiply-adds a convolution is over before the helper would start. */
enum { SHARED_MIN_MACS = 1 << 18 };

static void conv_image(CoreHelper *helper, int may_halve, ConvImage *j) {
    const Conv2dShape *s = j->shape;
    long pixels = out_pixels(s);
    int out_h = conv2d_out_height(s);
    int halves = may_halve && out_h >= 4 && s->out_channels >= 16 &&
                 col_rows(s) * pixels * s->out_channels >= SHARED_MIN_MACS;
    j->split_row = (out_h / 2) & ~1; /* even: pooling windows stay whole */
    if (!halves) {
        conv_image_rows(j, 0, out_h);
    } else if (pixels >= s->out_channels) {
        core_helper_split(helper, rows_part, j);
    } else {
        j->split_channel = (s->out_channels / 2) & ~7;
        if (!is_pointwise(s)) core_helper_split(helper, im2col_part, j);
        core_helper_split(helper, channels_part, j);
    }
}

/* may_halve 0: every one-image product whole (training: OpenBLAS's threads
 * split it); 1: large ones in two halves, on two threads with a helper. */
static void forward(CoreHelper *helper, int may_halve, float *out, const float *in, const float *weight,
                    const float *bias, const Conv2dShape *s, float *workspace, const Conv2dEpilogue *epilogue) {
    long rows = col_rows(s), pixels = out_pixels(s);
    long in_size = (long)s->in_channels * s->in_height * s->in_width;
    long out_size = (long)s->out_channels * pixels;
    int chunk = call_chunk(s);
    for (int b0 = 0; b0 < s->batch; b0 += chunk) {
        int n = s->batch - b0 < chunk ? s->batch - b0 : chunk;
        if (n == 1) {
            /* One image: straight into the output. */
            ConvImage job = {out + b0 * out_size, workspace, in + b0 * in_size, weight, bias, s, epilogue, b0, 0, 0};
            conv_image(helper, may_halve, &job);
            continue;
        }
        /* More: im2col of the chunk, one product [out_channels, n*HW], then scattered. */
        long cols = n * pixels;
        im2col(workspace, cols, in + b0 * in_size, n, s);
        float *result = workspace + rows * cols;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->out_channels, (int)cols, (int)rows, 1.0f,
                    weight, (int)rows, workspace, (int)cols, 0.0f, result, (int)cols);
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
        for (int i = 0; epilogue && i < n; i++)
            epilogue->run(epilogue->context, b0 + i, 0, s->out_channels, 0, conv2d_out_height(s));
    }
}

void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    const Conv2dShape *s, float *workspace) {
    forward(NULL, 0, out, in, weight, bias, s, workspace, NULL);
}

void conv2d_forward_shared(CoreHelper *helper, float *out, const float *in, const float *weight,
                           const float *bias, const Conv2dShape *s, float *workspace,
                           const Conv2dEpilogue *epilogue) {
    forward(helper, 1, out, in, weight, bias, s, workspace, epilogue);
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
