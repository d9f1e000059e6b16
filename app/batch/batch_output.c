#include "batch_output.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "caption_json.h"
#include "collections.h"
#include "json_utf8.h"

int batch_format_parse(const char *name, BatchFormat *out, Error *err) {
    static const char *const names[] = {"jsonl", "csv", "tsv", "coco"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (BatchFormat)i;
            return 0;
        }
    return error_set(err, "unknown format '%s' (jsonl, csv, tsv or coco)", name);
}

/* ---- text building ------------------------------------------------------ */

typedef struct {
    char *data;
    size_t length, capacity;
    int failed; /* out of memory: the text is unusable */
} Text;

static void text_append(Text *t, const char *s, size_t n) {
    if (n == 0 && t->data) return; /* s may be NULL then, which memcpy must not get */
    if (t->failed || ARRAY_RESERVE(t->data, t->capacity, t->length + n + 1) != 0) {
        t->failed = 1;
        return;
    }
    memcpy(t->data + t->length, s, n);
    t->length += n;
    t->data[t->length] = '\0';
}

static void text_add(Text *t, const char *s) { text_append(t, s, strlen(s)); }

/* Hands the text over (NULL if building it failed). */
static char *text_take(Text *t) {
    if (t->failed) free(t->data);
    return t->failed ? NULL : t->data;
}

/* ---- writing records ---------------------------------------------------- */

static void csv_field(Text *t, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        text_add(t, s);
        return;
    }
    text_add(t, "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"') text_add(t, "\""); /* a quote is doubled */
        text_append(t, p, 1);
    }
    text_add(t, "\"");
}

static void tsv_field(Text *t, const char *s) {
    for (const char *p = s; *p; p++) {
        const char *escaped = *p == '\t' ? "\\t" : *p == '\n' ? "\\n" : *p == '\r' ? "\\r" : *p == '\\' ? "\\\\" : NULL;
        if (escaped) text_add(t, escaped);
        else text_append(t, p, 1);
    }
}

/* One csv or tsv row of the columns path, caption, logprob, ms, error. */
static char *table_row(BatchFormat format, const char *path, const char *caption, const char *logprob,
                       const char *ms, const char *error) {
    const char *fields[5] = {path, caption, logprob, ms, error};
    Text t = {0};
    for (int i = 0; i < 5; i++) {
        if (i > 0) text_add(&t, format == BATCH_FORMAT_CSV ? "," : "\t");
        if (format == BATCH_FORMAT_CSV) csv_field(&t, fields[i]);
        else tsv_field(&t, fields[i]);
    }
    text_add(&t, "\n");
    return text_take(&t);
}

static char *json_line(cJSON *record) {
    char *json = record ? json_print_utf8(record) : NULL;
    cJSON_Delete(record);
    if (!json) return NULL;
    Text t = {0};
    text_add(&t, json);
    text_add(&t, "\n");
    free(json);
    return text_take(&t);
}

char *batch_record_caption(BatchFormat format, const SatModel *model, const char *path, const Caption *caption,
                           int with_attention, double ms) {
    if (format == BATCH_FORMAT_JSONL || format == BATCH_FORMAT_COCO) {
        cJSON *record = caption_to_json(model, path, caption, with_attention);
        if (record) cJSON_AddNumberToObject(record, "ms", round(ms * 10.0) / 10.0);
        return json_line(record);
    }
    char text[4096], logprob[32], milliseconds[32];
    snprintf(logprob, sizeof logprob, "%.6f", caption->logprob);
    snprintf(milliseconds, sizeof milliseconds, "%.1f", ms);
    return table_row(format, path, caption_text(model, caption, text, sizeof text), logprob, milliseconds, "");
}

char *batch_record_error(BatchFormat format, const char *path, const char *message) {
    if (format == BATCH_FORMAT_JSONL || format == BATCH_FORMAT_COCO) {
        cJSON *record = cJSON_CreateObject();
        json_add_path(record, path);
        cJSON_AddStringToObject(record, "error", message);
        return json_line(record);
    }
    return table_row(format, path, "", "", "", message);
}

int batch_output_append(BatchOutput *out, const char *line, Error *err) {
    size_t size = strlen(line);
    ssize_t written;
    do written = write(out->fd, line, size);
    while (written < 0 && errno == EINTR);
    if (written < 0) return error_set(err, "%s: cannot write: %s", out->log_path, strerror(errno));
    if ((size_t)written != size)
        return error_set(err, "%s: wrote only %zd of %zu bytes (disk full?); --resume will complete the file",
                         out->log_path, written, size);
    return 0;
}

/* ---- reading records back (--resume, the coco array) ----------------------- */

typedef struct {
    char *path;
    char *caption; /* NULL: an error record */
} StoredRecord;

typedef struct {
    StoredRecord *items;
    size_t count, capacity;
} StoredRecords;

static void stored_records_free(StoredRecords *r) {
    for (size_t i = 0; i < r->count; i++) free(r->items[i].path), free(r->items[i].caption);
    free(r->items);
    memset(r, 0, sizeof *r);
}

static const char *const TABLE_COLUMNS[5] = {"path", "caption", "logprob", "ms", "error"};

/* Parsing one record: 1 = parsed, 0 = incomplete (the data ends before the
 * record's newline: a torn write), -1 = malformed. *next is set after the
 * newline when 1 or -1. fields[] are malloc'ed. */
typedef int (*RecordParser)(const char *text, size_t size, size_t pos, size_t *next, char *fields[5]);

static int parse_json_line(const char *text, size_t size, size_t pos, size_t *next, char *fields[5]) {
    const char *newline = memchr(text + pos, '\n', size - pos);
    if (!newline) return 0;
    *next = (size_t)(newline - text) + 1;
    cJSON *record = cJSON_ParseWithLength(text + pos, (size_t)(newline - text) - pos);
    const cJSON *caption = cJSON_GetObjectItemCaseSensitive(record, "caption");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(record, "error");
    /* The exact bytes of the path (path_bytes), so that --resume matches names that are not UTF-8. */
    char *path = cJSON_IsObject(record) ? json_record_path(record) : NULL;
    int ok = path && (cJSON_IsString(caption) || cJSON_IsString(error));
    if (!ok) free(path);
    if (ok) {
        fields[0] = path;
        fields[1] = cJSON_IsString(caption) ? strdup(caption->valuestring) : NULL;
        fields[4] = cJSON_IsString(error) ? strdup(error->valuestring) : NULL;
    }
    cJSON_Delete(record);
    return ok ? 1 : -1;
}

/* Unescapes \t \n \r \\ in place; -1 on any other escape. */
static int tsv_unescape(char *s) {
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r != '\\') {
            *w++ = *r;
            continue;
        }
        r++;
        if (*r == 't') *w++ = '\t';
        else if (*r == 'n') *w++ = '\n';
        else if (*r == 'r') *w++ = '\r';
        else if (*r == '\\') *w++ = '\\';
        else return -1;
    }
    *w = '\0';
    return 0;
}

static int parse_tsv_line(const char *text, size_t size, size_t pos, size_t *next, char *fields[5]) {
    const char *newline = memchr(text + pos, '\n', size - pos);
    if (!newline) return 0;
    *next = (size_t)(newline - text) + 1;
    const char *start = text + pos;
    for (int i = 0; i < 5; i++) {
        const char *end = i < 4 ? memchr(start, '\t', (size_t)(newline - start)) : newline;
        if (!end) return -1;
        if (memchr(start, '\0', (size_t)(end - start))) return -1; /* garbage, e.g. after a crash */
        fields[i] = strndup(start, (size_t)(end - start));
        if (!fields[i] || tsv_unescape(fields[i]) != 0) return -1;
        start = end + 1;
    }
    return 1;
}

/* One RFC 4180 field from *pos; returns the character that ended it (',' or
 * '\n'; "\r\n" is read as '\n'), 0 at the end of the data, -1 if malformed. */
static int csv_read_field(const char *text, size_t size, size_t *pos, Text *field) {
    size_t p = *pos;
    if (p < size && text[p] == '"') {
        for (p++;; p++) {
            if (p >= size) return 0;
            if (text[p] == '"' && (p + 1 >= size || text[p + 1] != '"')) break;
            text_append(field, text + p, 1);
            if (text[p] == '"') p++; /* "" is one quote */
        }
        p++; /* the closing quote */
    } else {
        for (; p < size && !strchr(",\n\r\"", text[p]); p++) text_append(field, text + p, 1);
    }
    if (p < size && text[p] == '\r') {
        if (p + 1 < size && text[p + 1] != '\n') return -1;
        p++;
    }
    if (p >= size) return 0;
    if (text[p] != ',' && text[p] != '\n') return -1;
    *pos = p + 1;
    return text[p];
}

/* After a malformed record: -1 with *next after the line, or 0 (torn) when
 * the data ends first. */
static int skip_line(const char *text, size_t size, size_t pos, size_t *next) {
    const char *newline = memchr(text + pos, '\n', size - pos);
    if (!newline) return 0;
    *next = (size_t)(newline - text) + 1;
    return -1;
}

static int parse_csv_row(const char *text, size_t size, size_t pos, size_t *next, char *fields[5]) {
    for (int i = 0;; i++) {
        Text field = {0};
        text_add(&field, "");
        int end = csv_read_field(text, size, &pos, &field);
        if (end > 0 && i < 5) {
            if (!(fields[i] = text_take(&field))) return -1;
        } else {
            free(field.data);
        }
        if (end == 0) return 0;
        if (end < 0) return skip_line(text, size, pos, next);
        if (end == '\n') {
            *next = pos;
            return i == 4 ? 1 : -1;
        }
    }
}

static int is_header(char *const fields[5]) {
    for (int i = 0; i < 5; i++)
        if (!fields[i] || strcmp(fields[i], TABLE_COLUMNS[i]) != 0) return 0;
    return 1;
}

static const char *format_name(BatchFormat format) {
    return format == BATCH_FORMAT_CSV ? "csv" : format == BATCH_FORMAT_TSV ? "tsv" : "JSON Lines";
}

/* One whole record of the file as the scanner hands it over: its fields
 * (taken by the callee when it sets them to NULL), its bytes and where they
 * are in the file. */
typedef struct {
    char **fields;
    int header;
    const char *bytes;
    size_t start, end; /* file offsets, newline included */
} ScannedRecord;

typedef int (*RecordVisitor)(void *context, ScannedRecord *record, Error *err);

/* The file seen through a window of whole records: memory grows with the
 * longest record, never with the file. */
typedef struct {
    FILE *f;
    char *data;
    size_t length, capacity, base; /* data holds the file's bytes [base, base + length) */
    int eof;
} Window;

/* Drops the bytes before file offset keep and reads at least one more chunk
 * (growing the window for a record longer than it); -1 on a read error. */
static int window_more(Window *w, size_t keep) {
    size_t drop = keep - w->base;
    if (drop > 0) memmove(w->data, w->data + drop, w->length - drop); /* (data is NULL before the first read) */
    w->length -= drop, w->base = keep;
    if (w->capacity - w->length < 65536 && ARRAY_RESERVE(w->data, w->capacity, w->length + 65536 + 1) != 0)
        return -1;
    size_t got = fread(w->data + w->length, 1, w->capacity - w->length - 1, w->f);
    w->length += got;
    w->data[w->length] = '\0';
    if (got == 0) w->eof = 1;
    return ferror(w->f) ? -1 : 0;
}

/* Reads every whole record of the file at path, in order, handing each to
 * visit, and stops at a torn tail (an unfinished line, or a malformed last
 * line), setting *torn_at to its offset (the file's size when there is
 * none). A malformed line before the last, or as the first line, is an
 * error: that file is something else than this format's output, and
 * appending to it would hide the mistake. */
static int scan_file(FILE *f, const char *path, BatchFormat format, RecordVisitor visit, void *context,
                     size_t *torn_at, Error *err) {
    int table = format == BATCH_FORMAT_CSV || format == BATCH_FORMAT_TSV;
    RecordParser parse = format == BATCH_FORMAT_CSV ? parse_csv_row : table ? parse_tsv_line : parse_json_line;
    Window w = {.f = f};
    int status = window_more(&w, 0) == 0 ? 0 : error_set(err, "%s: cannot read: %s", path, strerror(errno));
    size_t pos = 0, line = 1;
    for (size_t index = 0; status == 0; index++) {
        if (pos == w.base + w.length) { /* every byte in the window used */
            if (w.eof) break;
            if (window_more(&w, pos) != 0) status = error_set(err, "%s: cannot read: %s", path, strerror(errno));
            index--;
            continue;
        }
        char *fields[5] = {0};
        size_t next = w.base + w.length;
        int parsed = parse(w.data, w.length, pos - w.base, &next, fields);
        next += w.base;
        int at_window_end = next >= w.base + w.length;
        if ((parsed == 0 || (parsed < 0 && at_window_end)) && !w.eof) { /* it may go on past the window */
            for (int i = 0; i < 5; i++) free(fields[i]);
            if (window_more(&w, pos) != 0) status = error_set(err, "%s: cannot read: %s", path, strerror(errno));
            index--;
            continue;
        }
        int header = table && index == 0;
        if (parsed == 1 && header && !is_header(fields)) parsed = -1;
        if (parsed < 0 && (!at_window_end || index == 0))
            status = error_set(err, "%s:%zu: not a caption batch %s record; refusing to append to this file "
                                    "(check -o and --format)", path, line, format_name(format));
        if (parsed == 1) {
            ScannedRecord record = {fields, header, w.data + (pos - w.base), pos, next};
            status = visit(context, &record, err);
            for (const char *c = record.bytes; c < w.data + (next - w.base); c++) line += *c == '\n';
        }
        for (int i = 0; i < 5; i++) free(fields[i]);
        if (parsed != 1) break;
        pos = next;
    }
    *torn_at = pos;
    free(w.data);
    return status;
}

static int scan_path(const char *path, BatchFormat format, RecordVisitor visit, void *context, size_t *torn_at,
                     int *missing, Error *err) {
    *missing = 0;
    FILE *f = fopen(path, "rb");
    if (!f && errno == ENOENT) return *missing = 1, 0;
    if (!f) return error_set(err, "%s: cannot read: %s", path, strerror(errno));
    int status = scan_file(f, path, format, visit, context, torn_at, err);
    fclose(f);
    return status;
}

/* Keeps caption records (path and caption) for the COCO array. */
static int store_record(void *context, ScannedRecord *record, Error *err) {
    StoredRecords *r = context;
    char **fields = record->fields;
    if (record->header || !fields[1] || (fields[4] && fields[4][0])) return 0;
    if (ARRAY_RESERVE(r->items, r->capacity, r->count + 1) != 0) return error_set(err, "out of memory");
    r->items[r->count++] = (StoredRecord){fields[0], fields[1]};
    fields[0] = fields[1] = NULL;
    return 0;
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* --resume's first pass: remembers the captioned paths and whether the
 * records to keep (the header and caption records) are a prefix of the file. */
typedef struct {
    BatchOutput *out;
    size_t prefix;  /* end of the kept records while they are contiguous */
    int contiguous, has_header;
} ResumeScan;

static int remember_done(void *context, ScannedRecord *record, Error *err) {
    ResumeScan *r = context;
    int keep = record->header || (record->fields[1] && !(record->fields[4] && record->fields[4][0]));
    r->has_header = r->has_header || record->header;
    if (keep && !record->header) {
        BatchOutput *out = r->out;
        if (ARRAY_RESERVE(out->done, out->done_capacity, out->done_count + 1) != 0)
            return error_set(err, "out of memory");
        out->done[out->done_count++] = record->fields[0];
        record->fields[0] = NULL;
    }
    if (keep) {
        r->contiguous = r->contiguous && record->start == r->prefix;
        if (r->contiguous) r->prefix = record->end;
    }
    return 0;
}

/* The second pass, when error records sit between caption records: copies
 * the kept records into the replacement file. */
static int copy_kept(void *context, ScannedRecord *record, Error *err) {
    (void)err;
    int keep = record->header || (record->fields[1] && !(record->fields[4] && record->fields[4][0]));
    if (keep) fwrite(record->bytes, 1, record->end - record->start, context); /* errors show at commit */
    return 0;
}

/* Keeps the header and caption records in the file and drops the rest: a
 * truncation when what is kept is a prefix, else an atomic rewrite. */
static int drop_unkept(BatchOutput *out, const ResumeScan *scan, size_t size, Error *err) {
    if (scan->contiguous) {
        if (scan->prefix < size && truncate(out->log_path, (off_t)scan->prefix) != 0)
            return error_set(err, "%s: cannot cut the unfinished last record: %s", out->log_path, strerror(errno));
        return 0;
    }
    AtomicFile a;
    size_t torn_at;
    int missing;
    int status = atomic_file_open(&a, out->log_path, err);
    if (status == 0) status = scan_path(out->log_path, out->format, copy_kept, a.file, &torn_at, &missing, err);
    if (status == 0) status = atomic_file_commit(&a, err);
    atomic_file_close(&a);
    return status;
}

/* --resume: reads the existing records (see batch_output_open), streaming:
 * memory holds the captioned paths and one record at a time. */
static int resume_records(BatchOutput *out, int *has_header, Error *err) {
    ResumeScan scan = {.out = out, .contiguous = 1};
    size_t torn_at;
    int missing;
    int status = scan_path(out->log_path, out->format, remember_done, &scan, &torn_at, &missing, err);
    if (missing && out->format == BATCH_FORMAT_COCO && access(out->path, F_OK) == 0) out->already_complete = 1;
    if (status == 0 && !missing) {
        struct stat st;
        status = stat(out->log_path, &st) == 0 ? drop_unkept(out, &scan, (size_t)st.st_size, err)
                                              : error_set(err, "%s: cannot read: %s", out->log_path, strerror(errno));
    }
    array_sort(out->done, out->done_count, sizeof *out->done, compare_strings);
    *has_header = scan.has_header;
    return status;
}

int batch_output_open(BatchOutput *out, const char *path, BatchFormat format, int resume, Error *err) {
    *out = (BatchOutput){.format = format, .fd = -1};
    size_t n = strlen(path) + sizeof ".partial";
    out->path = strdup(path);
    out->log_path = malloc(n);
    if (!out->path || !out->log_path) return batch_output_free(out), error_set(err, "out of memory");
    snprintf(out->log_path, n, "%s%s", path, format == BATCH_FORMAT_COCO ? ".partial" : "");
    int has_header = 0;
    if (resume && resume_records(out, &has_header, err) != 0) return batch_output_free(out), -1;
    if (out->already_complete) return 0;
    out->fd = open(out->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (resume ? 0 : O_TRUNC), 0644);
    if (out->fd < 0) {
        error_set(err, "%s: cannot open for writing: %s", out->log_path, strerror(errno));
        return batch_output_free(out), -1;
    }
    if ((format == BATCH_FORMAT_CSV || format == BATCH_FORMAT_TSV) && !has_header) {
        char *header = table_row(format, "path", "caption", "logprob", "ms", "error");
        int status = header ? batch_output_append(out, header, err) : error_set(err, "out of memory");
        free(header);
        if (status != 0) return batch_output_free(out), -1;
    }
    return 0;
}

int batch_output_is_done(const BatchOutput *out, const char *path) {
    return out->done_count && bsearch(&path, out->done, out->done_count, sizeof *out->done, compare_strings) != NULL;
}

/* ---- the COCO results array -------------------------------------------------- */

long long batch_coco_image_id(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    const char *dot = strrchr(name, '.');
    const char *stem_end = dot && dot != name ? dot : name + strlen(name);
    const char *p = name;
    while (p < stem_end && isdigit((unsigned char)*p)) p++;
    const char *start = name, *end = p;
    if (p == name) { /* no leading run: the trailing one */
        for (start = stem_end; start > name && isdigit((unsigned char)start[-1]);) start--;
        end = stem_end;
    }
    if (end == start || end - start > 18) return -1;
    long long id = 0;
    for (const char *q = start; q < end; q++) id = id * 10 + (*q - '0');
    return id;
}

static int compare_by_path(const void *a, const void *b) {
    return strcmp(((const StoredRecord *)a)->path, ((const StoredRecord *)b)->path);
}

/* One array entry; the id is written as digits (not through a double) so
 * 17- and 18-digit ids stay exact. */
static char *coco_entry(const StoredRecord *s) {
    cJSON *entry = cJSON_CreateObject();
    long long id = batch_coco_image_id(s->path);
    if (id >= 0) {
        char digits[32];
        snprintf(digits, sizeof digits, "%lld", id);
        cJSON_AddRawToObject(entry, "image_id", digits);
    } else {
        const char *slash = strrchr(s->path, '/');
        cJSON_AddStringToObject(entry, "image_id", slash ? slash + 1 : s->path);
    }
    cJSON_AddStringToObject(entry, "caption", s->caption);
    char *text = json_print_utf8(entry); /* an image_id from a name that is not UTF-8 gets U+FFFD */
    cJSON_Delete(entry);
    return text;
}

static int write_coco_array(const BatchOutput *out, Error *err) {
    StoredRecords r = {0};
    size_t torn_at;
    int missing;
    int status = scan_path(out->log_path, BATCH_FORMAT_JSONL, store_record, &r, &torn_at, &missing, err);
    array_sort(r.items, r.count, sizeof *r.items, compare_by_path);
    Text array = {0};
    text_add(&array, "[");
    size_t written = 0;
    for (size_t i = 0; status == 0 && i < r.count; i++) {
        if (!r.items[i].caption || (i > 0 && strcmp(r.items[i].path, r.items[i - 1].path) == 0)) continue;
        char *entry = coco_entry(&r.items[i]);
        if (!entry) array.failed = 1;
        text_add(&array, written++ ? ",\n " : "\n ");
        if (entry) text_add(&array, entry);
        free(entry);
    }
    text_add(&array, "\n]\n");
    if (status == 0 && array.failed) status = error_set(err, "out of memory writing %s", out->path);
    if (status == 0) status = atomic_file_write(out->path, array.data, array.length, err);
    free(array.data);
    stored_records_free(&r);
    return status;
}

int batch_output_finish(BatchOutput *out, int all_captioned, Error *err) {
    if (out->fd >= 0 && close(out->fd) != 0) {
        out->fd = -1;
        return error_set(err, "%s: cannot write: %s", out->log_path, strerror(errno));
    }
    out->fd = -1;
    if (out->format != BATCH_FORMAT_COCO || out->already_complete) return 0;
    if (write_coco_array(out, err) != 0) return -1;
    if (all_captioned && unlink(out->log_path) != 0)
        return error_set(err, "%s: cannot remove: %s", out->log_path, strerror(errno));
    return 0;
}

void batch_output_free(BatchOutput *out) {
    if (out->fd >= 0) close(out->fd);
    for (size_t i = 0; i < out->done_count; i++) free(out->done[i]);
    free(out->done);
    free(out->path);
    free(out->log_path);
    memset(out, 0, sizeof *out);
    out->fd = -1;
}
