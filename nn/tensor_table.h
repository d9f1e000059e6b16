#ifndef NN_TENSOR_TABLE_H
#define NN_TENSOR_TABLE_H

#include <stddef.h>

#include "error.h"

/* The layout of a model's parameters: every tensor lives at an offset in one
 * float block, so parameters, gradients and the optimiser moments are four
 * blocks of the same layout and whole-model operations are single loops. */
enum {
    TENSOR_NAME_MAX = 96,
    TENSOR_MAX_DIMS = 4,
};

enum {
    TENSOR_TRAINABLE = 1, /* updated by the optimiser (batch-norm running stats are not) */
    TENSOR_DECAY = 2,     /* gets weight decay (matrices and kernels, not biases or norms) */
};

typedef struct {
    char name[TENSOR_NAME_MAX];
    int ndim;
    long shape[TENSOR_MAX_DIMS];
    size_t offset, numel;
    int flags;
} TensorSpec;

typedef struct {
    TensorSpec *specs;
    int count, capacity;
    size_t total; /* floats in the block, alignment padding included */
} TensorTable;

/* Appends a tensor; returns its index, or -1 with err set. */
int tensor_table_add(TensorTable *table, const char *name, int ndim, const long *shape, int flags,
                     Error *err);
const TensorSpec *tensor_table_find(const TensorTable *table, const char *name);
void tensor_table_free(TensorTable *table);
/* "[4, 3, 3, 3]" into buffer. */
const char *tensor_shape_string(int ndim, const long *shape, char *buffer, size_t size);

#endif
