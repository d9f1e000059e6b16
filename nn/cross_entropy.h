#ifndef NN_CROSS_ENTROPY_H
#define NN_CROSS_ENTROPY_H

/* The targets the loss averages over: those that are not ignore_index. */
int cross_entropy_count_valid(const int *targets, int rows, int ignore_index);

/* Cross-entropy of logits [rows, classes] against integer targets, over a
 * padded batch: rows whose target equals ignore_index (the <pad> token) count
 * for nothing, and the loss is the mean over the remaining rows, as PyTorch's
 * F.cross_entropy(ignore_index=..., label_smoothing=...). With label smoothing
 * e the per-row loss is (1 - e) * -log p[target] + e * mean_c(-log p[c]).
 * row_weights ([rows], NULL = all 1) scales each row's loss, still divided by
 * the count of rows that counted: with a sampled caption's advantage as the
 * weight this is the self-critical policy-gradient loss.
 * probs ([rows, classes]) is saved for backward. Returns the mean loss; sets
 * *valid_rows (may be NULL) to the number of rows that counted. */
float cross_entropy_forward(float *probs, const float *logits, const int *targets, const float *row_weights,
                            int rows, int classes, int ignore_index, float label_smoothing, int *valid_rows);

/* Accumulates d_loss * dL/dlogits into d_logits. */
void cross_entropy_backward(float *d_logits, const float *probs, const int *targets, const float *row_weights,
                            int rows, int classes, int ignore_index, float label_smoothing, float d_loss);

#endif
