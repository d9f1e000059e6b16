#include "tensor_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 64-byte alignment of every tensor keeps vector loads aligned. */
enum { ALIGN_FLOATS = 16 };

int tensor_table_add(TensorTable *t, const char *name, int ndim, const long *shape, int flags,
                     Error *err) {
    if (strlen(name) >= TENSOR_NAME_MAX) return error_set(err, "tensor name too long: %s", name);
    if (ndim < 1 || ndim > TENSOR_MAX_DIMS)
        return error_set(err, "tensor %s: %d dimensions (1 to %d allowed)", name, ndim, TENSOR_MAX_DIMS);
    if (t->count == t->capacity) {
        int capacity = t->capacity ? 2 * t->capacity : 32;
        TensorSpec *specs = realloc(t->specs, sizeof *specs * capacity);
        if (!specs) return error_set(err, "out of memory adding tensor %s", name);
        t->specs = specs;
        t->capacity = capacity;
    }
    TensorSpec *s = &t->specs[t->count];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->ndim = ndim;
    s->numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0) return error_set(err, "tensor %s: dimension %d is %ld", name, d, shape[d]);
        s->shape[d] = shape[d];
        s->numel *= (size_t)shape[d];
    }
    s->flags = flags;
    s->offset = t->total;
    t->total += (s->numel + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    return t->count++;
}

const TensorSpec *tensor_table_find(const TensorTable *t, const char *name) {
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->specs[i].name, name) == 0) return &t->specs[i];
    return NULL;
}

void tensor_table_free(TensorTable *t) {
    free(t->specs);
    memset(t, 0, sizeof *t);
}

const char *tensor_shape_string(int ndim, const long *shape, char *buffer, size_t size) {
    size_t used = (size_t)snprintf(buffer, size, "[");
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(buffer + used, size - used, d ? ", %ld" : "%ld", shape[d]);
    if (used < size) snprintf(buffer + used, size - used, "]");
    return buffer;
}
