#include "embedding.h"

#include <string.h>

void embedding_forward(float *out, const int *tokens, const float *table, int rows, int dim) {
    for (int r = 0; r < rows; r++)
        memcpy(out + (long)r * dim, table + (long)tokens[r] * dim, sizeof(float) * dim);
}

void embedding_backward(float *d_table, const float *d_out, const int *tokens, int rows, int dim) {
    for (int r = 0; r < rows; r++) {
        float *dst = d_table + (long)tokens[r] * dim;
        const float *src = d_out + (long)r * dim;
        for (int i = 0; i < dim; i++) dst[i] += src[i];
    }
}
