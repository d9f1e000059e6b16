#ifndef NN_CONV2D_H
#define NN_CONV2D_H

#include "core_helper.h"

#include <stddef.h>

/* 2-D convolution, NCHW activations and PyTorch's weight layout
 * [out_channels, in_channels, kernel, kernel]. Images go in chunks: im2col of
 * the chunk, then one sgemm per chunk (enough columns for late, small layers). */
typedef struct {
    int batch;
    int in_channels, in_height, in_width;
    int out_channels;
    int kernel, stride, padding;
} Conv2dShape;

int conv2d_out_height(const Conv2dShape *shape);
int conv2d_out_width(const Conv2dShape *shape);
/* Scratch floats the caller provides to forward and backward. It does not
 * depend on shape->batch (one size serves any batch) and stays under 64 MB
 * unless a single image needs more. */
size_t conv2d_workspace_floats(const Conv2dShape *shape);

/* out[batch, out_channels, out_h, out_w]; bias may be NULL. Each product is
 * one sgemm call (OpenBLAS's threads split it), as training wants. */
void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    const Conv2dShape *shape, float *workspace);
/* What to do with a block of the output of image `image` (the channels
 * [first_channel, + channels), the output rows [first_row, + rows)) as soon as
 * it is computed, by the thread that computed it, while it is in its cache:
 * the encoder's ReLU and max-pool. first_row is even when rows < the output
 * height, so 2x2 pooling windows never straddle two blocks. */
typedef struct {
    void (*run)(void *context, int image, int first_channel, int channels, int first_row, int rows);
    void *context;
} Conv2dEpilogue;

/* The same with a second core's help (core_helper.h; may be NULL), and an
 * optional epilogue (may be NULL): a large one-image convolution is computed
 * in two halves, of the output rows (a map with more pixels than channels) or
 * of the output channels, on two threads with the helper and one after the
 * other without: the same sgemm calls either way, so the result is the same
 * bit for bit. */
void conv2d_forward_shared(CoreHelper *helper, float *out, const float *in, const float *weight,
                           const float *bias, const Conv2dShape *shape, float *workspace,
                           const Conv2dEpilogue *epilogue);

/* Accumulates into d_in (may be NULL: the image needs no gradient), d_weight
 * and d_bias (may be NULL). */
void conv2d_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out,
                     const float *in, const float *weight, const Conv2dShape *shape,
                     float *workspace);

#endif
