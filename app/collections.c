#include "collections.h"

#include <stdlib.h>

int array_reserve(void **data, size_t *capacity, size_t needed, size_t element_size) {
    if (needed <= *capacity) return 0;
    size_t new_capacity = *capacity ? *capacity : 16;
    while (new_capacity < needed) {
        if (new_capacity > SIZE_MAX / 2) return -1;
        new_capacity *= 2;
    }
    if (new_capacity > SIZE_MAX / element_size) return -1;
    void *grown = realloc(*data, new_capacity * element_size);
    if (!grown) return -1;
    *data = grown;
    *capacity = new_capacity;
    return 0;
}

void array_sort(void *base, size_t count, size_t size, int (*compare)(const void *, const void *)) {
    if (count > 0) qsort(base, count, size, compare);
}

uint64_t hash_bytes(const char *bytes, size_t length) {
    uint64_t hash = 14695981039346656037ULL;
    for (size_t i = 0; i < length; i++) {
        hash ^= (unsigned char)bytes[i];
        hash *= 1099511628211ULL;
    }
    return hash;
}
