#ifndef NN_BINARY_CROSS_ENTROPY_H
#define NN_BINARY_CROSS_ENTROPY_H

/* Binary cross-entropy with logits over [rows, classes] against targets in
 * [0, 1], as PyTorch's F.binary_cross_entropy_with_logits (reduction mean):
 *   l(a, t) = max(a, 0) - a t + log(1 + exp(-|a|))
 * (the stable form of -t log s(a) - (1 - t) log(1 - s(a))). class_mask
 * ([classes], may be NULL = all count) leaves out whole columns: an entry
 * (r, c) counts only where class_mask[c] is nonzero, and the loss is the mean
 * over rows x counted classes. probs = sigmoid(logits) ([rows, classes]) is
 * saved for backward. Returns the mean loss (0 when nothing counts). */
float binary_cross_entropy_forward(float *probs, const float *logits, const float *targets,
                                   const unsigned char *class_mask, int rows, int classes);

/* Accumulates d_loss * dL/dlogits = d_loss * (probs - t) / count into d_logits. */
void binary_cross_entropy_backward(float *d_logits, const float *probs, const float *targets,
                                   const unsigned char *class_mask, int rows, int classes, float d_loss);

#endif
