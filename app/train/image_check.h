#ifndef APP_IMAGE_CHECK_H
#define APP_IMAGE_CHECK_H

#include <stdio.h>

#include "dataset.h"
#include "error.h"

/* Training decodes every image before the first step, so that an unreadable
 * one is reported and skipped at start rather than stopping the run hours
 * later. The verdicts are kept in the run folder (image-check.tsv: path,
 * size, modification time, and the error or nothing), so a --resume, or a
 * second run into the same folder, decodes only the files that changed. */
typedef struct {
    char *path;
    long long size, mtime_sec, mtime_nsec;
    char *error; /* NULL: the image decoded */
} ImageVerdict;

typedef struct {
    ImageVerdict *items;
    size_t count, capacity;
    size_t sorted; /* items[0 .. sorted) are sorted by path (the ones read from the file) */
} ImageVerdicts;

/* Reads the verdicts file; a missing one is an empty set, an unreadable or
 * malformed line is skipped (the image is then decoded again). */
int image_verdicts_load(ImageVerdicts *verdicts, const char *path, Error *err);
/* Writes every verdict, atomically. */
int image_verdicts_save(ImageVerdicts *verdicts, const char *path, Error *err);
void image_verdicts_free(ImageVerdicts *verdicts);

/* Decodes every image of the dataset whose file is not in verdicts with the
 * same size and modification time (in `threads` threads, with a progress
 * line on progress_out unless it is NULL: counts, images/s and ETA), records the new verdicts, and drops the
 * images that fail, reporting each on `report` (may be NULL). Returns how
 * many were dropped, or -1 (out of memory, with err). decoded (may be NULL)
 * receives how many files were decoded, the rest being known already. */
int dataset_drop_unreadable(Dataset *dataset, int threads, FILE *progress_out, ImageVerdicts *verdicts,
                            void (*report)(const char *message, void *context), void *context, int *decoded,
                            Error *err);

#endif
