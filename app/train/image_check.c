#include "image_check.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "atomic_file.h"
#include "collections.h"
#include "image.h"
#include "progress.h"

/* ---- the verdicts file ------------------------------------------------------- */

static int compare_verdicts(const void *a, const void *b) {
    return strcmp(((const ImageVerdict *)a)->path, ((const ImageVerdict *)b)->path);
}

void image_verdicts_free(ImageVerdicts *v) {
    for (size_t i = 0; i < v->count; i++) free(v->items[i].path), free(v->items[i].error);
    free(v->items);
    memset(v, 0, sizeof *v);
}

/* Records a verdict: over the file's entry for the path if it has one (the
 * file changed since), else at the end (then sorted when saved). */
static int add_verdict(ImageVerdicts *v, const char *path, const struct stat *st, const char *error) {
    ImageVerdict key = {.path = (char *)path};
    ImageVerdict *old = v->sorted ? bsearch(&key, v->items, v->sorted, sizeof key, compare_verdicts) : NULL;
    if (!old && ARRAY_RESERVE(v->items, v->capacity, v->count + 1) != 0) return -1;
    ImageVerdict fresh = {old ? old->path : strdup(path), (long long)st->st_size, (long long)st->st_mtim.tv_sec,
                          (long long)st->st_mtim.tv_nsec, error ? strdup(error) : NULL};
    if (!fresh.path || (error && !fresh.error)) {
        if (!old) free(fresh.path);
        free(fresh.error);
        return -1;
    }
    if (old) free(old->error), *old = fresh;
    else v->items[v->count++] = fresh;
    return 0;
}

/* One line: path TAB size TAB seconds TAB nanoseconds TAB error (may be empty).
 * Paths and messages hold no tab or newline here: they are replaced. */
static int parse_verdict(char *line, ImageVerdict *item) {
    char *fields[5];
    for (int i = 0; i < 5; i++) {
        fields[i] = strsep(&line, "\t");
        if (!fields[i]) return -1;
    }
    if (line) return -1;
    char *end;
    long long numbers[3];
    for (int i = 0; i < 3; i++) {
        errno = 0;
        numbers[i] = strtoll(fields[i + 1], &end, 10);
        if (errno || *end || end == fields[i + 1]) return -1;
    }
    *item = (ImageVerdict){strdup(fields[0]), numbers[0], numbers[1], numbers[2],
                           fields[4][0] ? strdup(fields[4]) : NULL};
    return item->path && (!fields[4][0] || item->error) ? 0 : -1;
}

int image_verdicts_load(ImageVerdicts *v, const char *path, Error *err) {
    memset(v, 0, sizeof *v);
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? 0 : error_set(err, "%s: cannot read: %s", path, strerror(errno));
    char *line = NULL;
    size_t size = 0;
    ssize_t length;
    int status = 0;
    while (status == 0 && (length = getline(&line, &size, f)) > 0) {
        if (line[length - 1] != '\n') break; /* a torn last line: those images are checked again */
        line[length - 1] = '\0';
        ImageVerdict item;
        if (parse_verdict(line, &item) != 0) continue;
        if (ARRAY_RESERVE(v->items, v->capacity, v->count + 1) != 0) {
            free(item.path), free(item.error);
            status = error_set(err, "out of memory reading %s", path);
        } else {
            v->items[v->count++] = item;
        }
    }
    free(line);
    fclose(f);
    array_sort(v->items, v->count, sizeof *v->items, compare_verdicts);
    v->sorted = v->count;
    return status;
}

static void write_field(FILE *f, const char *text) {
    for (const char *c = text; *c; c++) fputc(*c == '\t' || *c == '\n' || *c == '\r' ? ' ' : *c, f);
}

int image_verdicts_save(ImageVerdicts *v, const char *path, Error *err) {
    array_sort(v->items, v->count, sizeof *v->items, compare_verdicts);
    v->sorted = v->count;
    AtomicFile out;
    int status = atomic_file_open(&out, path, err);
    for (size_t i = 0; status == 0 && i < v->count; i++) {
        const ImageVerdict *item = &v->items[i];
        write_field(out.file, item->path);
        fprintf(out.file, "\t%lld\t%lld\t%lld\t", item->size, item->mtime_sec, item->mtime_nsec);
        if (item->error) write_field(out.file, item->error);
        fputc('\n', out.file);
    }
    if (status == 0) status = atomic_file_commit(&out, err);
    atomic_file_close(&out);
    return status;
}

/* The verdict read from the file for this path, if the file is unchanged. */
static const ImageVerdict *known_verdict(const ImageVerdicts *v, const char *path, const struct stat *st) {
    ImageVerdict key = {.path = (char *)path};
    const ImageVerdict *found = v->sorted ? bsearch(&key, v->items, v->sorted, sizeof key, compare_verdicts) : NULL;
    if (!found || found->size != (long long)st->st_size || found->mtime_sec != (long long)st->st_mtim.tv_sec ||
        found->mtime_nsec != (long long)st->st_mtim.tv_nsec)
        return NULL;
    return found;
}

/* ---- checking ------------------------------------------------------------------ */

typedef struct {
    Dataset *dataset;
    const ImageVerdicts *verdicts;
    int first, step;
    char *bad;         /* 1 per image that failed */
    char **messages;   /* its error */
    char *decoded;     /* 1 per image decoded now (not known from the file) */
    struct stat *stats; /* each file's, for the new verdicts */
    atomic_int *done;
} CheckJob;

static void *check_images(void *arg) {
    CheckJob *job = arg;
    for (int i = job->first; i < job->dataset->count; i += job->step) {
        const char *path = job->dataset->images[i].path;
        const ImageVerdict *known = NULL;
        if (stat(path, &job->stats[i]) == 0) known = known_verdict(job->verdicts, path, &job->stats[i]);
        else memset(&job->stats[i], 0, sizeof job->stats[i]);
        if (known) {
            job->bad[i] = known->error != NULL;
            job->messages[i] = known->error ? strdup(known->error) : NULL;
        } else {
            Image image = {0};
            Error err;
            job->decoded[i] = 1;
            if (image_load(&image, path, NULL, &err) != 0) {
                job->bad[i] = 1;
                job->messages[i] = strdup(err.message);
            }
            image_free(&image);
        }
        atomic_fetch_add(job->done, 1);
    }
    return NULL;
}

/* Runs the jobs, printing progress (unless progress_out is NULL) from this
 * thread until they finish. */
static void run_checks(CheckJob *jobs, int threads, int total, FILE *progress_out) {
    pthread_t ids[16];
    int started = 0;
    for (int t = 0; t < threads; t++) {
        if (pthread_create(&ids[t], NULL, check_images, &jobs[t]) != 0) break;
        started++;
    }
    if (started == 0) {
        jobs[0].first = 0, jobs[0].step = 1;
        check_images(&jobs[0]);
        return;
    }
    Progress progress;
    if (progress_out) progress_init(&progress, progress_out);
    for (int done = 0; progress_out && started == threads && done < total;) {
        nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
        done = atomic_load(jobs[0].done);
        progress_update(&progress, 0, 1, done, total, -1.0, 0.0);
    }
    for (int t = 0; t < started; t++) pthread_join(ids[t], NULL);
    if (started < threads) /* the jobs of threads that did not start */
        for (int t = started; t < threads; t++) check_images(&jobs[t]);
    if (progress_out) progress_finish(&progress);
}

/* Removes the bad images from the dataset, reporting each. */
static int drop_bad(Dataset *d, const char *bad, char **messages, void (*report)(const char *, void *),
                    void *context) {
    int kept = 0, dropped = 0, original = d->count;
    for (int i = 0; i < original; i++) {
        DatasetImage image = d->images[i];
        if (!bad[i]) {
            d->images[kept++] = image;
            continue;
        }
        dropped++;
        if (report) report(messages[i] ? messages[i] : image.path, context);
        for (int c = 0; c < image.caption_count; c++) free(image.captions[c]);
        free(image.captions);
        free(image.name);
        free(image.path);
    }
    d->count = kept;
    return dropped;
}

int dataset_drop_unreadable(Dataset *d, int threads, FILE *progress_out, ImageVerdicts *verdicts,
                            void (*report)(const char *message, void *context), void *context, int *decoded,
                            Error *err) {
    threads = threads < 1 ? 1 : threads > 16 ? 16 : threads;
    size_t n = d->count ? (size_t)d->count : 1;
    char *bad = calloc(n, 1), *fresh = calloc(n, 1);
    char **messages = calloc(n, sizeof *messages);
    struct stat *stats = calloc(n, sizeof *stats);
    atomic_int done = 0;
    int status = bad && fresh && messages && stats ? 0 : error_set(err, "out of memory checking the images");
    if (status == 0) {
        CheckJob jobs[16];
        for (int t = 0; t < threads; t++) jobs[t] = (CheckJob){d, verdicts, t, threads, bad, messages, fresh, stats, &done};
        run_checks(jobs, threads, d->count, progress_out);
    }
    int count = 0;
    for (int i = 0; status == 0 && i < d->count; i++) {
        if (!fresh[i]) continue;
        count++;
        if (stats[i].st_mtim.tv_sec == 0 && stats[i].st_size == 0) continue; /* stat failed: nothing to key it by */
        if (add_verdict(verdicts, d->images[i].path, &stats[i], bad[i] ? messages[i] : NULL) != 0)
            status = error_set(err, "out of memory checking the images");
    }
    if (decoded) *decoded = count;
    int dropped = status == 0 ? drop_bad(d, bad, messages, report, context) : -1;
    for (size_t i = 0; messages && i < n; i++) free(messages[i]);
    free(messages), free(bad), free(fresh), free(stats);
    return dropped;
}
