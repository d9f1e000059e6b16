#ifndef NN_ACTIVATION_H
#define NN_ACTIVATION_H

/* Elementwise activations. Forward may run in place (out == in). Backward
 * takes the forward *output* (cheaper than the input for all three) and
 * accumulates into d_in. */
void relu_forward(float *out, const float *in, long n);
void relu_backward(float *d_in, const float *d_out, const float *out, long n);

void tanh_forward(float *out, const float *in, long n);
void tanh_backward(float *d_in, const float *d_out, const float *out, long n);

float sigmoid(float x);
void sigmoid_forward(float *out, const float *in, long n);
void sigmoid_backward(float *d_in, const float *d_out, const float *out, long n);

#endif
