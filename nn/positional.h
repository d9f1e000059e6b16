#ifndef NN_POSITIONAL_H
#define NN_POSITIONAL_H

/* Positional encodings for the Transformer decoder (issue 14).
 *
 * The grid: learned row and column embeddings (as DETR's "learned" spatial
 * encoding), added to each cell's vector so the cells, which attention
 * otherwise treats as an unordered set, know where they are:
 *   x[b, y*W + x, :] += rows[y, :] + columns[x, :]
 * The words: the fixed sinusoids of Vaswani et al. 2017, which need no
 * table and so no maximum caption length:
 *   PE[p, 2i] = sin(p / 10000^(2i / dim)),  PE[p, 2i + 1] = cos(p / 10000^(2i / dim)) */

/* x [batch, height*width, dim], in place. */
void grid_position_forward(float *x, const float *rows, const float *columns, int batch, int height, int width, int dim);
/* Accumulates into d_rows [height, dim] and d_columns [width, dim]; the
 * gradient of x itself passes through unchanged. */
void grid_position_backward(float *d_rows, float *d_columns, const float *d_x, int batch, int height, int width,
                            int dim);

/* x [batch, count, dim] (rows `stride` floats apart; dim when packed) gets
 * PE of positions first .. first + count - 1, in place. */
void sinusoid_position_add(float *x, int batch, int first, int count, int dim, int stride);

#endif
