#ifndef APP_COLLECTIONS_H
#define APP_COLLECTIONS_H

/* The small containers app/ builds on: growable arrays and a string hash. */
#include <stddef.h>
#include <stdint.h>

/* Makes room for `needed` elements of `element_size` bytes in *data, doubling
 * so appends are amortised O(1). Returns -1 when out of memory (or on size
 * overflow), leaving *data as it was. */
int array_reserve(void **data, size_t *capacity, size_t needed, size_t element_size);

#define ARRAY_RESERVE(array, capacity, needed) \
    array_reserve((void **)&(array), &(capacity), (needed), sizeof *(array))

/* qsort, also for an empty array that was never allocated: qsort's pointer
 * must not be NULL even when count is 0. */
void array_sort(void *base, size_t count, size_t size, int (*compare)(const void *, const void *));

/* FNV-1a of `length` bytes. */
uint64_t hash_bytes(const char *bytes, size_t length);

#endif
