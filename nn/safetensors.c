#include "safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header this big would be a corrupt length, not a real model. */
enum { MAX_HEADER_BYTES = 100 * 1024 * 1024 };

static const struct {
    const char *name;
    SafetensorsDtype dtype;
    size_t size;
} dtype_info[] = {
    {"F32", SAFETENSORS_F32, 4}, {"F16", SAFETENSORS_F16, 2}, {"BF16", SAFETENSORS_BF16, 2},
    {"F64", SAFETENSORS_F64, 8}, {"I32", SAFETENSORS_I32, 4}, {"I64", SAFETENSORS_I64, 8},
    {"U8", SAFETENSORS_U8, 1},
};
enum { DTYPE_COUNT = sizeof dtype_info / sizeof dtype_info[0] };

static size_t dtype_size(SafetensorsDtype dtype) {
    for (int i = 0; i < DTYPE_COUNT; i++)
        if (dtype_info[i].dtype == dtype) return dtype_info[i].size;
    return 0;
}

static const char *dtype_name(SafetensorsDtype dtype) {
    for (int i = 0; i < DTYPE_COUNT; i++)
        if (dtype_info[i].dtype == dtype) return dtype_info[i].name;
    return "?";
}

float half_to_float(unsigned short h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
    uint32_t bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exponent = 127 - 15 + 1;
            while (!(mantissa & 0x400u)) {
                mantissa <<= 1;
                exponent--;
            }
            bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent - 15 + 127) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

unsigned short float_to_half(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    uint32_t sign = (bits >> 16) & 0x8000u;
    int32_t exponent = (int32_t)((bits >> 23) & 0xffu) - 127 + 15;
    uint32_t mantissa = bits & 0x7fffffu;
    if (((bits >> 23) & 0xffu) == 0xffu) /* inf or nan */
        return (unsigned short)(sign | 0x7c00u | (mantissa ? 0x200u : 0));
    if (exponent >= 31) return (unsigned short)(sign | 0x7c00u);
    if (exponent <= 0) {
        if (exponent < -10) return (unsigned short)sign;
        mantissa |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exponent);
        uint32_t half_mantissa = mantissa >> shift;
        uint32_t remainder = mantissa & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (remainder > halfway || (remainder == halfway && (half_mantissa & 1u))) half_mantissa++;
        return (unsigned short)(sign | half_mantissa);
    }
    uint32_t half = sign | ((uint32_t)exponent << 10) | (mantissa >> 13);
    uint32_t remainder = mantissa & 0x1fffu;
    if (remainder > 0x1000u || (remainder == 0x1000u && (half & 1u))) half++; /* may carry into the exponent: correct */
    return (unsigned short)half;
}

/* ---- writing ---- */

static char *build_header(const SafetensorsTensor *tensors, int count, const char *const *metadata,
                          size_t *data_size, Error *err) {
    cJSON *root = cJSON_CreateObject();
    if (metadata && metadata[0]) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; metadata[i] && metadata[i + 1]; i += 2)
            cJSON_AddStringToObject(meta, metadata[i], metadata[i + 1]);
    }
    size_t offset = 0;
    for (int i = 0; i < count; i++) {
        const SafetensorsTensor *t = &tensors[i];
        size_t numel = 1;
        cJSON *entry = cJSON_AddObjectToObject(root, t->name);
        cJSON_AddStringToObject(entry, "dtype", dtype_name(t->dtype));
        cJSON *shape = cJSON_AddArrayToObject(entry, "shape");
        for (int d = 0; d < t->ndim; d++) {
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
            numel *= (size_t)t->shape[d];
        }
        size_t bytes = numel * dtype_size(t->dtype);
        cJSON *offsets = cJSON_AddArrayToObject(entry, "data_offsets");
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)(offset + bytes)));
        offset += bytes;
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) error_set(err, "out of memory building the safetensors header");
    *data_size = offset;
    return text;
}

static int write_tensor_data(FILE *f, const SafetensorsTensor *t) {
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
    if (t->dtype == SAFETENSORS_F16) {
        const float *src = t->data;
        unsigned short buffer[4096];
        for (size_t i = 0; i < numel;) {
            size_t n = numel - i < 4096 ? numel - i : 4096;
            for (size_t j = 0; j < n; j++) buffer[j] = float_to_half(src[i + j]);
            if (fwrite(buffer, 2, n, f) != n) return -1;
            i += n;
        }
        return 0;
    }
    /* F32 and I32 are written as they are: this project only builds for
     * little-endian machines (checked in safetensors_write). */
    size_t bytes = numel * dtype_size(t->dtype);
    return fwrite(t->data, 1, bytes, f) == bytes ? 0 : -1;
}

static int is_little_endian(void) {
    uint16_t probe = 1;
    unsigned char first;
    memcpy(&first, &probe, 1);
    return first == 1;
}

static int fsync_parent_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return -1;
    int fd = open(dirname(copy), O_RDONLY);
    free(copy);
    if (fd < 0) return -1;
    fsync(fd);
    close(fd);
    return 0;
}

int safetensors_write(const char *path, const SafetensorsTensor *tensors, int count,
                      const char *const *metadata, Error *err) {
    if (!is_little_endian()) return error_set(err, "%s: writing safetensors needs a little-endian machine", path);
    for (int i = 0; i < count; i++)
        if (tensors[i].dtype != SAFETENSORS_F32 && tensors[i].dtype != SAFETENSORS_F16 &&
            tensors[i].dtype != SAFETENSORS_I32)
            return error_set(err, "%s: tensor %s: only F32, F16 and I32 can be written", path,
                             tensors[i].name);
    size_t data_size = 0;
    char *header = build_header(tensors, count, metadata, &data_size, err);
    if (!header) return -1;
    size_t header_len = strlen(header);
    size_t padded = (header_len + 7) / 8 * 8; /* data starts 8-byte aligned */
    size_t tmp_len = strlen(path) + 16;
    char *tmp_path = malloc(tmp_len);
    if (!tmp_path) {
        free(header);
        return error_set(err, "%s: out of memory", path);
    }
    snprintf(tmp_path, tmp_len, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp_path);
    if (fd >= 0) fchmod(fd, 0644); /* mkstemp's 0600 would make models private by accident */
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    int failed = f == NULL;
    if (!failed) {
        unsigned char length[8];
        for (int i = 0; i < 8; i++) length[i] = (unsigned char)((uint64_t)padded >> (8 * i));
        failed |= fwrite(length, 1, 8, f) != 8;
        failed |= fwrite(header, 1, header_len, f) != header_len;
        for (size_t i = header_len; i < padded && !failed; i++) failed |= fputc(' ', f) == EOF;
        for (int i = 0; i < count && !failed; i++) failed |= write_tensor_data(f, &tensors[i]) != 0;
        failed |= fflush(f) != 0;
        failed |= fsync(fileno(f)) != 0;
    }
    int saved_errno = errno;
    if (f) failed |= fclose(f) != 0;
    else if (fd >= 0) close(fd);
    if (!failed && rename(tmp_path, path) != 0) {
        failed = 1;
        saved_errno = errno;
    }
    if (failed) {
        if (fd >= 0) unlink(tmp_path);
        error_set(err, "%s: could not write (%s); any previous file there is unchanged", path,
                  strerror(saved_errno));
    } else {
        fsync_parent_dir(path);
    }
    free(tmp_path);
    free(header);
    return failed ? -1 : 0;
}

/* ---- reading ---- */

static int read_whole_file(const char *path, unsigned char **bytes, size_t *size, Error *err) {
    struct stat st;
    if (stat(path, &st) != 0)
        return error_set(err, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return error_set(err, "%s: is a directory, not a model file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return error_set(err, "%s: %s", path, strerror(errno));
    size_t capacity = st.st_size > 0 ? (size_t)st.st_size : 1;
    *bytes = malloc(capacity);
    if (!*bytes) {
        fclose(f);
        return error_set(err, "%s: out of memory reading %zu bytes", path, capacity);
    }
    *size = fread(*bytes, 1, capacity, f);
    int read_error = ferror(f);
    fclose(f);
    if (read_error) {
        free(*bytes);
        *bytes = NULL;
        return error_set(err, "%s: read error", path);
    }
    return 0;
}

static int parse_dtype(const char *name, SafetensorsDtype *dtype) {
    for (int i = 0; i < DTYPE_COUNT; i++)
        if (strcmp(name, dtype_info[i].name) == 0) {
            *dtype = dtype_info[i].dtype;
            return 0;
        }
    return -1;
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_size(const cJSON *item, size_t *value) {
    if (!cJSON_IsNumber(item)) return -1;
    double v = item->valuedouble;
    if (!(v >= 0.0) || v > 9007199254740992.0 || v != floor(v)) return -1;
    *value = (size_t)v;
    return 0;
}

static int parse_entry(SafetensorsEntry *e, const cJSON *item, size_t data_size, const char *path,
                       Error *err) {
    const char *name = item->string;
    if (strlen(name) >= TENSOR_NAME_MAX)
        return error_set(err, "%s: tensor name longer than %d bytes: %.60s...", path, TENSOR_NAME_MAX - 1, name);
    snprintf(e->name, sizeof e->name, "%s", name);
    if (!cJSON_IsObject(item)) return error_set(err, "%s: tensor %s: header entry is not an object", path, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype) || parse_dtype(dtype->valuestring, &e->dtype) != 0)
        return error_set(err, "%s: tensor %s: missing or unsupported dtype (supported: F32 F16 BF16 F64 I32 I64 U8)", path, name);
    if (!cJSON_IsArray(shape)) return error_set(err, "%s: tensor %s: missing shape", path, name);
    e->ndim = cJSON_GetArraySize(shape);
    if (e->ndim > TENSOR_MAX_DIMS)
        return error_set(err, "%s: tensor %s: %d dimensions (at most %d supported)", path, name, e->ndim, TENSOR_MAX_DIMS);
    e->numel = 1;
    for (int d = 0; d < e->ndim; d++) {
        size_t extent;
        if (json_size(cJSON_GetArrayItem(shape, d), &extent) != 0 || extent > ((size_t)1 << 40))
            return error_set(err, "%s: tensor %s: shape entry %d is not a valid size", path, name, d);
        e->shape[d] = (long)extent;
        if (extent && e->numel > ((size_t)1 << 40) / extent)
            return error_set(err, "%s: tensor %s: shape is impossibly large", path, name);
        e->numel *= extent;
    }
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        json_size(cJSON_GetArrayItem(offsets, 0), &e->begin) != 0 ||
        json_size(cJSON_GetArrayItem(offsets, 1), &e->end) != 0)
        return error_set(err, "%s: tensor %s: data_offsets must be two non-negative integers", path, name);
    if (e->begin > e->end || e->end > data_size)
        return error_set(err, "%s: tensor %s: data_offsets [%zu, %zu] lie outside the %zu data bytes (truncated file?)",
                         path, name, e->begin, e->end, data_size);
    if (e->end - e->begin != e->numel * dtype_size(e->dtype))
        return error_set(err, "%s: tensor %s: %zu data bytes for %zu %s values", path, name,
                         e->end - e->begin, e->numel, dtype_name(e->dtype));
    return 0;
}

static int compare_begin(const void *a, const void *b) {
    const SafetensorsEntry *x = a, *y = b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

static int check_no_overlap(const SafetensorsFile *file, const char *path, Error *err) {
    SafetensorsEntry *sorted = malloc(sizeof *sorted * (file->count ? file->count : 1));
    if (!sorted) return error_set(err, "%s: out of memory", path);
    memcpy(sorted, file->entries, sizeof *sorted * file->count);
    qsort(sorted, file->count, sizeof *sorted, compare_begin);
    int status = 0;
    for (int i = 1; i < file->count && status == 0; i++)
        if (sorted[i].begin < sorted[i - 1].end && sorted[i].begin != sorted[i].end)
            status = error_set(err, "%s: tensors %s and %s overlap", path, sorted[i - 1].name, sorted[i].name);
    free(sorted);
    return status;
}

static int parse_header(SafetensorsFile *file, const char *path, Error *err) {
    if (file->size < 8) return error_set(err, "%s: %zu bytes is too short to be a safetensors file", path, file->size);
    uint64_t header_len = 0;
    for (int i = 0; i < 8; i++) header_len |= (uint64_t)file->bytes[i] << (8 * i);
    if (header_len > MAX_HEADER_BYTES || header_len > file->size - 8)
        return error_set(err, "%s: not a safetensors file (header length %llu does not fit in the %zu-byte file)",
                         path, (unsigned long long)header_len, file->size);
    file->data_start = 8 + (size_t)header_len;
    cJSON *root = cJSON_ParseWithLength((const char *)file->bytes + 8, (size_t)header_len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return error_set(err, "%s: the safetensors header is not a JSON object", path);
    }
    int members = cJSON_GetArraySize(root);
    file->entries = calloc(members ? members : 1, sizeof *file->entries);
    if (!file->entries) {
        cJSON_Delete(root);
        return error_set(err, "%s: out of memory", path);
    }
    size_t data_size = file->size - file->data_start;
    int status = 0;
    for (cJSON *item = root->child; item && status == 0; item = item->next) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(item)) status = error_set(err, "%s: __metadata__ is not an object", path);
            for (cJSON *kv = item->child; kv && status == 0; kv = kv->next)
                if (!cJSON_IsString(kv))
                    status = error_set(err, "%s: __metadata__ value of %s is not a string", path, kv->string);
            continue;
        }
        status = parse_entry(&file->entries[file->count], item, data_size, path, err);
        if (status == 0) file->count++;
    }
    if (status == 0) status = check_no_overlap(file, path, err);
    cJSON *meta = cJSON_DetachItemFromObjectCaseSensitive(root, "__metadata__");
    file->metadata = meta;
    cJSON_Delete(root);
    return status;
}

/* The one parsing path of both entry points; takes ownership of bytes. */
static int open_bytes(SafetensorsFile *file, unsigned char *bytes, size_t size, const char *name, Error *err) {
    file->bytes = bytes;
    file->size = size;
    if (parse_header(file, name, err) != 0) {
        safetensors_close(file);
        return -1;
    }
    return 0;
}

int safetensors_open(SafetensorsFile *file, const char *path, Error *err) {
    memset(file, 0, sizeof *file);
    unsigned char *bytes = NULL;
    size_t size = 0;
    if (read_whole_file(path, &bytes, &size, err) != 0) return -1;
    return open_bytes(file, bytes, size, path, err);
}

int safetensors_open_memory(SafetensorsFile *file, const void *data, size_t size, const char *name, Error *err) {
    memset(file, 0, sizeof *file);
    const char *shown = name ? name : "<safetensors in memory>";
    unsigned char *bytes = malloc(size ? size : 1);
    if (!bytes) return error_set(err, "%s: out of memory copying %zu bytes", shown, size);
    if (size) memcpy(bytes, data, size);
    return open_bytes(file, bytes, size, shown, err);
}

void safetensors_close(SafetensorsFile *file) {
    free(file->bytes);
    free(file->entries);
    cJSON_Delete(file->metadata);
    memset(file, 0, sizeof *file);
}

const SafetensorsEntry *safetensors_find(const SafetensorsFile *file, const char *name) {
    for (int i = 0; i < file->count; i++)
        if (strcmp(file->entries[i].name, name) == 0) return &file->entries[i];
    return NULL;
}

const char *safetensors_metadata(const SafetensorsFile *file, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive((const cJSON *)file->metadata, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static int check_shape(const SafetensorsEntry *e, int ndim, const long *shape, size_t capacity, Error *err) {
    char want[96], have[96];
    tensor_shape_string(e->ndim, e->shape, have, sizeof have);
    if (ndim > 0) {
        int same = e->ndim == ndim;
        for (int d = 0; d < ndim && same; d++) same = e->shape[d] == shape[d];
        if (!same)
            return error_set(err, "tensor %s has shape %s, expected %s", e->name, have,
                             tensor_shape_string(ndim, shape, want, sizeof want));
    } else if (e->numel > capacity) {
        return error_set(err, "tensor %s has shape %s, more than the %zu values expected", e->name, have, capacity);
    }
    return 0;
}

static const SafetensorsEntry *find_required(const SafetensorsFile *file, const char *name, Error *err) {
    const SafetensorsEntry *e = safetensors_find(file, name);
    if (!e) error_set(err, "tensor %s is missing", name);
    return e;
}

int safetensors_read_floats(const SafetensorsFile *file, const char *name, float *dst, int ndim,
                            const long *shape, size_t capacity, Error *err) {
    const SafetensorsEntry *e = find_required(file, name, err);
    if (!e || check_shape(e, ndim, shape, capacity, err) != 0) return -1;
    const unsigned char *src = file->bytes + file->data_start + e->begin;
    for (size_t i = 0; i < e->numel; i++) {
        float value;
        if (e->dtype == SAFETENSORS_F32) {
            memcpy(&value, src + 4 * i, 4);
        } else if (e->dtype == SAFETENSORS_F16 || e->dtype == SAFETENSORS_BF16) {
            unsigned short h = (unsigned short)(src[2 * i] | (src[2 * i + 1] << 8));
            if (e->dtype == SAFETENSORS_F16) {
                value = half_to_float(h);
            } else {
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&value, &bits, 4);
            }
        } else if (e->dtype == SAFETENSORS_F64) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            value = (float)d;
        } else {
            return error_set(err, "tensor %s is %s, expected a floating-point dtype", name, dtype_name(e->dtype));
        }
        if (!isfinite(value))
            return error_set(err, "tensor %s holds a non-finite value (NaN or Inf) at index %zu", name, i);
        dst[i] = value;
    }
    return 0;
}

int safetensors_read_ints(const SafetensorsFile *file, const char *name, int *dst, int ndim,
                          const long *shape, size_t capacity, Error *err) {
    const SafetensorsEntry *e = find_required(file, name, err);
    if (!e || check_shape(e, ndim, shape, capacity, err) != 0) return -1;
    const unsigned char *src = file->bytes + file->data_start + e->begin;
    for (size_t i = 0; i < e->numel; i++) {
        int64_t value;
        if (e->dtype == SAFETENSORS_I32) {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            value = v;
        } else if (e->dtype == SAFETENSORS_I64) {
            memcpy(&value, src + 8 * i, 8);
        } else {
            return error_set(err, "tensor %s is %s, expected I32 or I64", name, dtype_name(e->dtype));
        }
        if (value < -2147483647 || value > 2147483647)
            return error_set(err, "tensor %s: value %lld at index %zu is out of range", name, (long long)value, i);
        dst[i] = (int)value;
    }
    return 0;
}

int safetensors_read_table(const SafetensorsFile *file, const TensorTable *table, float *block,
                           Error *err) {
    for (int i = 0; i < table->count; i++) {
        const TensorSpec *s = &table->specs[i];
        if (safetensors_read_floats(file, s->name, block + s->offset, s->ndim, s->shape, s->numel, err) != 0)
            return -1;
    }
    return 0;
}
