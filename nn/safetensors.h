#ifndef NN_SAFETENSORS_H
#define NN_SAFETENSORS_H

#include <stddef.h>

#include "error.h"
#include "tensor_table.h"

/* The safetensors format (huggingface/safetensors): an 8-byte little-endian
 * header length N, N bytes of JSON
 *   {"__metadata__": {"key": "string", ...},
 *    "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
 * then the raw little-endian row-major tensor data, offsets relative to its
 * start. The only file format in nn/: model weights and training checkpoints. */
typedef enum {
    SAFETENSORS_F32,
    SAFETENSORS_F16,
    SAFETENSORS_BF16,
    SAFETENSORS_F64,
    SAFETENSORS_I32,
    SAFETENSORS_I64,
    SAFETENSORS_U8,
} SafetensorsDtype;

/* One tensor to write. data points to floats when dtype is F32 or F16 (stored
 * as half precision, rounded to nearest even), to int32_t when dtype is I32. */
typedef struct {
    const char *name;
    SafetensorsDtype dtype;
    int ndim;
    const long *shape;
    const void *data;
} SafetensorsTensor;

/* Writes atomically: a temporary file in the same folder, fsync, rename. A
 * failure (disk full, no permission) leaves any previous file at path intact.
 * metadata: NULL-terminated list of key, value, key, value, ... (may be NULL). */
int safetensors_write(const char *path, const SafetensorsTensor *tensors, int count,
                      const char *const *metadata, Error *err);

typedef struct {
    char name[TENSOR_NAME_MAX];
    SafetensorsDtype dtype;
    int ndim;
    long shape[TENSOR_MAX_DIMS];
    size_t numel, begin, end;
} SafetensorsEntry;

typedef struct {
    unsigned char *bytes; /* the whole file */
    size_t size, data_start;
    SafetensorsEntry *entries;
    int count;
    void *metadata; /* cJSON object, or NULL */
} SafetensorsFile;

/* Reads and validates the whole file: header length, JSON, every dtype, shape
 * and offset; reports the first problem with the file name. */
int safetensors_open(SafetensorsFile *file, const char *path, Error *err);
/* The same from bytes in memory (copied: the file owns its bytes); name (may
 * be NULL) stands for the path in messages. */
int safetensors_open_memory(SafetensorsFile *file, const void *data, size_t size, const char *name, Error *err);
void safetensors_close(SafetensorsFile *file);

const SafetensorsEntry *safetensors_find(const SafetensorsFile *file, const char *name);
/* A __metadata__ value, or NULL when absent. */
const char *safetensors_metadata(const SafetensorsFile *file, const char *key);

/* Copies a float tensor (stored F32, F16, BF16 or F64) into dst, checking that
 * its shape is exactly ndim/shape (pass ndim = 0 to accept any shape of
 * capacity floats or fewer) and that every value is finite. */
int safetensors_read_floats(const SafetensorsFile *file, const char *name, float *dst, int ndim,
                            const long *shape, size_t capacity, Error *err);
/* Same for an integer tensor (stored I32 or I64) into int. */
int safetensors_read_ints(const SafetensorsFile *file, const char *name, int *dst, int ndim,
                          const long *shape, size_t capacity, Error *err);

/* Every tensor of the table, into its place in block. */
int safetensors_read_table(const SafetensorsFile *file, const TensorTable *table, float *block,
                           Error *err);

float half_to_float(unsigned short half);
unsigned short float_to_half(float value);

#endif
