#ifndef APP_BATCH_OUTPUT_H
#define APP_BATCH_OUTPUT_H

#include <stddef.h>

#include "decode.h"
#include "error.h"
#include "model.h"

/* The output file of `caption batch`: one record per image, each appended
 * with a single write() on an O_APPEND descriptor, so a run that is killed
 * leaves whole records and at most one torn last line, which --resume cuts
 * away. Formats:
 *   jsonl  one JSON object per line: path, caption, tokens, logprob,
 *          finished, ms (and attention with --attention), as caption_to_json;
 *          a failed image is {"path": ..., "error": "reason"}; a path that
 *          is not UTF-8 also gets "path_bytes", which --resume reads
 *          (json_utf8.h), and the line is always valid UTF-8;
 *   csv    a header `path,caption,logprob,ms,error`, then one row per image
 *          (paths written as their bytes, whatever they are),
 *          RFC 4180 quoting (fields holding , " CR or LF are quoted, quotes
 *          doubled); the error column is empty for a captioned image;
 *   tsv    the same columns separated by tabs; tab, newline, CR and
 *          backslash inside a field are written \t \n \r \\;
 *   coco   the records go to OUT.partial as JSON Lines while the run goes
 *          on (a JSON array cannot be appended to record by record);
 *          batch_output_finish then writes OUT, the COCO results array
 *          [{"image_id": ..., "caption": ...}] of the captioned images sorted
 *          by path, atomically, and removes OUT.partial when every image was
 *          captioned (it is kept for --resume otherwise). */

typedef enum { BATCH_FORMAT_JSONL, BATCH_FORMAT_CSV, BATCH_FORMAT_TSV, BATCH_FORMAT_COCO } BatchFormat;

/* "jsonl", "csv", "tsv", "coco" -> *out; -1 with err listing them. */
int batch_format_parse(const char *name, BatchFormat *out, Error *err);

typedef struct {
    BatchFormat format;
    char *path;      /* OUT */
    char *log_path;  /* the file records are appended to: OUT, or OUT.partial for coco */
    int fd;
    char **done;     /* sorted: paths with a caption record already in the file (--resume) */
    size_t done_count, done_capacity;
    int already_complete; /* coco --resume: OUT exists and OUT.partial does not, so the earlier run finished */
} BatchOutput;

/* Opens the record file for appending. resume = 0: starts it empty (csv and
 * tsv with their header). resume = 1: reads what is there (a missing file is
 * an empty one), remembers the paths of caption records, drops error records
 * (those images are tried again) and a torn last line (no newline, or not a
 * valid record), truncating the file or rewriting it atomically, and appends
 * after what is kept. A file with a malformed line anywhere but at the end is
 * refused, naming the line: it is not this format's output. */
int batch_output_open(BatchOutput *out, const char *path, BatchFormat format, int resume, Error *err);

/* 1 if path already has a caption record (resume). */
int batch_output_is_done(const BatchOutput *out, const char *path);

/* The record of one image as a whole '\n'-terminated line (malloc'ed; NULL
 * when out of memory). ms: the time spent on the image, decoding included. */
char *batch_record_caption(BatchFormat format, const SatModel *model, const char *path, const Caption *caption,
                           int with_attention, double ms);
char *batch_record_error(BatchFormat format, const char *path, const char *message);

/* Appends one record with one write(), so concurrent writers and a killed
 * process never interleave or split records (short of a full disk). */
int batch_output_append(BatchOutput *out, const char *line, Error *err);

/* Closes the record file; for coco writes OUT (see above). */
int batch_output_finish(BatchOutput *out, int all_captioned, Error *err);
void batch_output_free(BatchOutput *out);

/* The COCO image_id of an image, resolved the way `caption eval` resolves
 * them: the leading digit run of the file name without extension, else its
 * trailing one (at most 18 digits), as a number; -1 when there is none (the
 * base file name is then used as a string image_id). */
long long batch_coco_image_id(const char *path);

#endif
