#ifndef APP_ATOMIC_FILE_H
#define APP_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "error.h"

/* A file replaced atomically: written under a temporary name beside it
 * (mode 0644), flushed to disk and renamed over it when complete, so an
 * interrupted writer never leaves a plausible-looking partial file and the
 * previous version stays until the new one is whole. */
typedef struct {
    char *path;
    char *temp_path;
    FILE *file; /* write through this; NULL once committed or closed */
} AtomicFile;

/* Creates the temporary file for path; -1 with err naming path. */
int atomic_file_open(AtomicFile *out, const char *path, Error *err);
/* Flushes, syncs and renames the temporary over path; on any failure
 * (a write error included) removes it and says why. */
int atomic_file_commit(AtomicFile *out, Error *err);
/* Releases everything; removes the temporary if it was not committed. */
void atomic_file_close(AtomicFile *out);
/* The whole of data as path's new content. */
int atomic_file_write(const char *path, const char *data, size_t size, Error *err);

#endif
