#ifndef NN_MAXPOOL_H
#define NN_MAXPOOL_H

/* Max pooling over planes of NCHW activations (planes = batch * channels),
 * PyTorch semantics without padding (floor of the output size). The index of
 * each maximum is saved so backward routes the gradient to it. */
typedef struct {
    int planes, in_height, in_width, kernel, stride;
} MaxPoolShape;

int maxpool_out_height(const MaxPoolShape *shape);
int maxpool_out_width(const MaxPoolShape *shape);

void maxpool_forward(float *out, int *argmax, const float *in, const MaxPoolShape *shape);
/* Inference: output rows [first_row, first_row + rows) of every plane, no
 * argmax (the same maxima, ties and NaN as maxpool_forward; branch-free, so
 * it vectorises). */
void maxpool_forward_infer(float *out, const float *in, const MaxPoolShape *shape, int first_row, int rows);
/* Accumulates into d_in. */
void maxpool_backward(float *d_in, const float *d_out, const int *argmax, const MaxPoolShape *shape);

#endif
