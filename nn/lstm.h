#ifndef NN_LSTM_H
#define NN_LSTM_H

/* One step of an LSTM cell over a batch, PyTorch's gate order (i, f, g, o):
 *   [i f g o] = x W_ih^T + h_prev W_hh^T + bias
 *   c = sigmoid(f) * c_prev + sigmoid(i) * tanh(g)
 *   h = sigmoid(o) * tanh(c)
 * W_ih is [4*hidden, input], W_hh is [4*hidden, hidden]; one bias of 4*hidden
 * (PyTorch's b_ih + b_hh, which only ever appear summed).
 * gates ([batch, 4*hidden]) receives the activated gates, saved for backward. */
typedef struct {
    int batch, input, hidden;
} LstmShape;

void lstm_cell_forward(float *h, float *c, float *gates, const float *x, const float *h_prev,
                       const float *c_prev, const float *w_ih, const float *w_hh,
                       const float *bias, const LstmShape *shape);

/* The second half of lstm_cell_forward: gates holds the pre-activations
 * (the two products and the bias) and receives the activated gates. For
 * callers that compute the products their own way (beam search). */
void lstm_cell_activate(float *h, float *c, float *gates, const float *c_prev, const LstmShape *shape);

/* Given dL/dh and dL/dc of this step's outputs, accumulates into d_x (may be
 * NULL), d_h_prev, d_c_prev and the weight gradients. workspace holds
 * batch * 4 * hidden floats. */
void lstm_cell_backward(float *d_x, float *d_h_prev, float *d_c_prev, float *d_w_ih,
                        float *d_w_hh, float *d_bias, const float *d_h, const float *d_c,
                        const float *gates, const float *c, const float *x,
                        const float *h_prev, const float *c_prev, const float *w_ih,
                        const float *w_hh, const LstmShape *shape, float *workspace);

#endif
