#ifndef NN_EMBEDDING_H
#define NN_EMBEDDING_H

/* Token embedding: out[r, :] = table[tokens[r], :]. */
void embedding_forward(float *out, const int *tokens, const float *table, int rows, int dim);
/* Accumulates rows of d_out into the rows of d_table they came from. */
void embedding_backward(float *d_table, const float *d_out, const int *tokens, int rows, int dim);

#endif
