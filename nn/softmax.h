#ifndef NN_SOFTMAX_H
#define NN_SOFTMAX_H

/* Row-wise softmax of a [rows, cols] matrix (max-subtracted, so it never
 * overflows). out may equal in. */
void softmax_forward(float *out, const float *in, int rows, int cols);
/* One row of it; returns log sum_c exp(in_c) (double), which cross-entropy
 * needs as well. */
double softmax_row(float *out, const float *in, int cols);
/* Accumulates into d_in: d_in = y * (d_out - sum(d_out * y)), y the output. */
void softmax_backward(float *d_in, const float *d_out, const float *out, int rows, int cols);
/* Row-wise log-softmax, for decoding. */
void log_softmax_forward(float *out, const float *in, int rows, int cols);

#endif
