#include "cmd_batch.h"

#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "batch_output.h"
#include "cmd_export.h"
#include "collections.h"
#include "figure.h"
#include "folders.h"
#include "pipeline.h"
#include "progress.h"
#include "text.h"

typedef struct {
    const char *output, *export_dir;
    char **paths;
    int path_count;
    BatchFormat format;
    CaptionOptions caption;
    int threads, attention, resume;
    int shard, shards; /* this run takes images i with i % shards == shard */
    FigureOptions figure;
} BatchArgs;

/* ---- arguments ------------------------------------------------------------- */

static void print_help(FILE *out) {
    cli_print_help(out,
            "usage: caption batch PATH... -o OUT [options]\n"
            "\n"
            "Captions every image under the given folders (recursively) and the files\n"
            "given directly, into OUT, one record per image. Images are recognised by\n"
            "their content, not their extension, and taken in byte order of their paths;\n"
            "with --threads > 1 the records appear in the order the images finish. Each\n"
            "record is written whole as soon as its image is done, so an interrupted run\n"
            "leaves a valid file that --resume completes.\n"
            "\n"
            "options:\n"
            "  -o, --output OUT      the results file (required)\n"
            "  --format FORMAT       jsonl (default): one JSON object per line with path,\n"
            "                          caption, tokens, logprob, finished, ms (milliseconds for\n"
            "                          the image, decoding included); a failed image is\n"
            "                          {\"path\": ..., \"error\": \"reason\"}\n"
            "                        csv, tsv: a header, then path,caption,logprob,ms,error\n"
            "                          (csv quoted as RFC 4180; tsv writes tab, newline, CR\n"
            "                          and backslash in a field as \\t \\n \\r \\\\)\n"
            "                        coco: the COCO results array [{\"image_id\", \"caption\"}]\n"
            "                          of the captioned images, image_id from the file name's\n"
            "                          digits (as caption eval reads them) or else the file\n"
            "                          name; records go to OUT.partial (JSON Lines) while the\n"
            "                          run goes on, OUT is written atomically at the end and\n"
            "                          OUT.partial removed once every image is captioned\n"
            "  --attention           jsonl: add each word's attention map and gate\n"
            "  --model FILE          model weights (.safetensors), a bundled model's name, or A,B: an\n"
            "                        ensemble (caption --help); default: the bundled model\n"
            "  --threads N           worker threads, each with its own copy of the model (default 1)\n"
            "  --beam N              beam width (default 3; 1 = greedy)\n"
            "  --max-length N        at most N words (default 30)\n"
            "  --max-pixels N        refuse images larger than N pixels (default 67108864)\n"
            "  --resume              keep the images OUT already has captions for and do the\n"
            "                        rest; its error records (those images are tried again)\n"
            "                        and an unfinished last line are dropped first\n"
            "                        (paths are compared as written: give the same PATHs\n"
            "                        from the same folder)\n"
            "  --shard K/N           only images K, K+N, K+2N, ... of the sorted list\n"
            "                        (0 <= K < N), for N machines or array jobs, each with\n"
            "                        its own OUT\n"
            "  --export-dir DIR      also draw each image's attention figure (as caption export)\n"
            "                        into DIR/NAME-HASH.png: NAME the file name, HASH of its path\n"
            "  --colormap NAME       figures: viridis (default), inferno or jet\n"
            "  --opacity A           figures: heatmap opacity where attention peaks, 0..1 (default %.2g)\n"
            "  -h, --help            this help\n"
            "\n"
            "A progress bar with images/s and the time left is shown on a terminal; in a\n"
            "log (Slurm, nohup) a progress line every 30 s instead. Problems are printed\n"
            "one line each on stderr. Folders reached a second time (symbolic link loops)\n"
            "are skipped with a note.\n"
            "\n"
            "exit status: 0 every image captioned, 1 some image failed (each has an error\n"
            "record) or a folder or OUT could not be read or written, 2 usage error\n",
            (double)OVERLAY_DEFAULT_OPACITY);
}

/* Prints "caption batch: <message> (see caption batch --help)"; returns -1. */
#define usage_error(...) cli_usage_error("caption batch", __VA_ARGS__)

/* "K/N" with 0 <= K < N. */
static int parse_shard(const char *text, int *shard, int *shards) {
    const char *slash = strchr(text, '/');
    char first[32];
    if (!slash || (size_t)(slash - text) >= sizeof first) return -1;
    memcpy(first, text, (size_t)(slash - text));
    first[slash - text] = '\0';
    if (cli_parse_int(slash + 1, 1, 1000000, shards) != 0) return -1;
    return cli_parse_int(first, 0, *shards - 1, shard);
}

static const unsigned OPTIONS = CLI_MODEL | CLI_BEAM | CLI_MAX_LENGTH | CLI_MAX_PIXELS | CLI_COLORMAP | CLI_OPACITY;

/* Options that take a value; returns 0, or -1 after printing the problem. */
static int parse_value(BatchArgs *a, const char *arg, const char *value) {
    Error err;
    int taken = cli_take_option(&a->caption, &a->figure, OPTIONS, arg, value, &err);
    if (taken != 0) return taken < 0 ? usage_error("%s", err.message) : 0;
    if (strcmp(arg, "-o") == 0 || strcmp(arg, "--output") == 0) a->output = value;
    else if (strcmp(arg, "--export-dir") == 0) a->export_dir = value;
    else if (strcmp(arg, "--format") == 0) {
        if (batch_format_parse(value, &a->format, &err)) return usage_error("%s: %s", arg, err.message);
    } else if (strcmp(arg, "--threads") == 0) {
        if (cli_parse_int(value, 1, 256, &a->threads)) return usage_error("%s takes a whole number from 1 to 256, not '%s'", arg, value);
    } else if (strcmp(arg, "--shard") == 0) {
        if (parse_shard(value, &a->shard, &a->shards))
            return usage_error("%s takes K/N with 0 <= K < N (e.g. 0/4), not '%s'", arg, value);
    } else {
        return usage_error("unknown option %s", arg);
    }
    return 0;
}

static int parse_args(int argc, char **argv, BatchArgs *a) {
    *a = (BatchArgs){.caption = CAPTION_OPTIONS_DEFAULT, .threads = 1, .shards = 1, .paths = argv};
    figure_options_default(&a->figure);
    int only_paths = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (only_paths || arg[0] != '-' || arg[1] == '\0') a->paths[a->path_count++] = argv[i]; /* compacts argv */
        else if (strcmp(arg, "--") == 0) only_paths = 1;
        else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            print_help(stdout);
            exit(0);
        } else if (strcmp(arg, "--attention") == 0) a->attention = 1;
        else if (strcmp(arg, "--resume") == 0) a->resume = 1;
        else if (i + 1 >= argc) return usage_error("%s needs a value", arg);
        else if (parse_value(a, arg, argv[++i]) != 0) return -1;
    }
    if (a->path_count == 0) return usage_error("no folders or images given (usage: caption batch PATH... -o OUT)");
    if (!a->output) return usage_error("no output file given: add -o OUT");
    if (a->attention && a->format != BATCH_FORMAT_JSONL)
        return usage_error("--attention needs --format jsonl (the maps do not fit a table or COCO results)");
    return 0;
}

/* ---- finding the images --------------------------------------------------- */

typedef struct {
    dev_t dev;
    ino_t ino;
    int used;
} FolderId;

typedef struct {
    char **paths;
    size_t count, capacity;
    FolderId *seen; /* folders entered: an open-addressing set, so links can't loop */
    size_t seen_count, seen_capacity;
    char **linked; /* symbolic links to folders, entered after the real tree */
    size_t linked_count, linked_capacity;
    FolderId export_dir; /* never captioned: the figures of an earlier run */
    int problems;        /* folders that could not be read */
    int out_of_memory;
} Listing;

static size_t folder_slot(const FolderId *set, size_t capacity, dev_t dev, ino_t ino) {
    uint64_t key[2] = {(uint64_t)dev, (uint64_t)ino};
    size_t slot = (size_t)hash_bytes((const char *)key, sizeof key) & (capacity - 1);
    while (set[slot].used && (set[slot].dev != dev || set[slot].ino != ino)) slot = (slot + 1) & (capacity - 1);
    return slot;
}

/* Adds the folder to the set; returns 1 if it is new, 0 if seen, -1 out of memory. */
static int visit_folder(Listing *l, const struct stat *st) {
    if (2 * (l->seen_count + 1) > l->seen_capacity) { /* keep the set half empty */
        size_t capacity = l->seen_capacity ? 2 * l->seen_capacity : 64;
        FolderId *grown = calloc(capacity, sizeof *grown);
        if (!grown) return -1;
        for (size_t i = 0; i < l->seen_capacity; i++)
            if (l->seen[i].used) grown[folder_slot(grown, capacity, l->seen[i].dev, l->seen[i].ino)] = l->seen[i];
        free(l->seen);
        l->seen = grown, l->seen_capacity = capacity;
    }
    FolderId *slot = &l->seen[folder_slot(l->seen, l->seen_capacity, st->st_dev, st->st_ino)];
    if (slot->used) return 0;
    *slot = (FolderId){st->st_dev, st->st_ino, 1};
    l->seen_count++;
    return 1;
}

static int push_path(char ***array, size_t *count, size_t *capacity, const char *path) {
    char *copy = strdup(path);
    if (!copy || ARRAY_RESERVE(*array, *capacity, *count + 1) != 0) {
        free(copy);
        return -1;
    }
    (*array)[(*count)++] = copy;
    return 0;
}

static int compare_paths(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b); /* strcmp compares bytes as unsigned char */
}

/* The folder's entries but . and .., sorted, so the walk (and which of two
 * links to one folder is followed) does not depend on the file system. */
static int read_names(const char *folder, char ***names, size_t *count, Error *err) {
    size_t capacity = 0;
    *names = NULL, *count = 0;
    DIR *dir = opendir(folder);
    if (!dir) return error_set(err, "cannot read folder %s: %s", folder, strerror(errno));
    struct dirent *entry;
    int status = 0;
    errno = 0;
    while (status == 0 && (entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
        if (push_path(names, count, &capacity, entry->d_name) != 0) status = error_set(err, "out of memory");
        errno = 0;
    }
    if (status == 0 && errno != 0) status = error_set(err, "cannot read folder %s: %s", folder, strerror(errno));
    closedir(dir);
    if (status == 0) array_sort(*names, *count, sizeof **names, compare_paths);
    return status;
}

static char *join_path(const char *folder, const char *name) {
    size_t n = strlen(folder);
    int slash = n > 0 && folder[n - 1] != '/';
    char *path = malloc(n + slash + strlen(name) + 1);
    if (path) sprintf(path, "%s%s%s", folder, slash ? "/" : "", name);
    return path;
}

static void list_entry(Listing *l, const char *path);

static void list_folder(Listing *l, const char *folder, const struct stat *st) {
    if (l->export_dir.used && st->st_dev == l->export_dir.dev && st->st_ino == l->export_dir.ino) return;
    int new_folder = visit_folder(l, st);
    if (new_folder < 0) l->out_of_memory = 1;
    Error err;
    if (new_folder == 0) {
        error_set(&err, "skipping %s: that folder was already visited "
                        "(a symbolic link loop, another link to it, or named twice)", folder);
        error_print(stderr, "caption batch", &err);
    }
    if (new_folder <= 0) return;
    char **names;
    size_t count;
    if (read_names(folder, &names, &count, &err) != 0) {
        error_print(stderr, "caption batch", &err);
        l->problems++;
    }
    for (size_t i = 0; i < count; i++) {
        char *child = join_path(folder, names[i]);
        if (child) list_entry(l, child);
        else l->out_of_memory = 1;
        free(child);
        free(names[i]);
    }
    free(names);
}

/* An entry of a folder: a folder is walked, a readable file kept if its
 * content is an image; a file that cannot be read is kept too, so that it
 * gets an error record rather than vanishing. Links to folders wait until
 * the real tree is done, so images get their real paths when both lead to them. */
static void list_entry(Listing *l, const char *path) {
    struct stat st, link;
    int is_link = lstat(path, &link) == 0 && S_ISLNK(link.st_mode);
    if (stat(path, &st) != 0) {
        Error err;
        if (is_link)
            error_set(&err, "skipping %s: %s", path, errno == ELOOP ? "a symbolic link loop" : "a broken symbolic link");
        else
            error_set(&err, "cannot read %s: %s", path, strerror(errno)), l->problems++;
        error_print(stderr, "caption batch", &err);
        return;
    }
    if (S_ISDIR(st.st_mode) && is_link) {
        if (push_path(&l->linked, &l->linked_count, &l->linked_capacity, path) != 0) l->out_of_memory = 1;
    } else if (S_ISDIR(st.st_mode)) {
        list_folder(l, path, &st);
    } else if (S_ISREG(st.st_mode) && (access(path, R_OK) != 0 || image_is_image_file(path))) {
        if (push_path(&l->paths, &l->count, &l->capacity, path) != 0) l->out_of_memory = 1;
    }
}

/* Links found while walking may lead to more links: first in, first walked. */
static void list_linked_folders(Listing *l) {
    for (size_t i = 0; i < l->linked_count; i++) {
        struct stat st;
        if (stat(l->linked[i], &st) == 0) list_folder(l, l->linked[i], &st);
    }
}

/* Every image under the arguments, sorted, each path once. A path given
 * that is not a folder is kept whatever it is: naming it asks for it, and a
 * missing or broken file gets its error record. */
static void list_images(Listing *l, const BatchArgs *a) {
    struct stat st;
    if (a->export_dir && stat(a->export_dir, &st) == 0) l->export_dir = (FolderId){st.st_dev, st.st_ino, 1};
    for (int i = 0; i < a->path_count; i++) {
        if (stat(a->paths[i], &st) == 0 && S_ISDIR(st.st_mode)) list_folder(l, a->paths[i], &st);
        else if (push_path(&l->paths, &l->count, &l->capacity, a->paths[i]) != 0) l->out_of_memory = 1;
    }
    list_linked_folders(l);
    array_sort(l->paths, l->count, sizeof *l->paths, compare_paths);
    size_t kept = 0;
    for (size_t i = 0; i < l->count; i++) {
        if (kept > 0 && strcmp(l->paths[kept - 1], l->paths[i]) == 0) free(l->paths[i]);
        else l->paths[kept++] = l->paths[i];
    }
    l->count = kept;
}

static void listing_free(Listing *l) {
    for (size_t i = 0; i < l->count; i++) free(l->paths[i]);
    for (size_t i = 0; i < l->linked_count; i++) free(l->linked[i]);
    free(l->paths);
    free(l->linked);
    free(l->seen);
    memset(l, 0, sizeof *l);
}

/* ---- captioning ----------------------------------------------------------------- */

typedef struct {
    const BatchArgs *args;
    BatchOutput *output;
    const char **todo;
    size_t todo_count;
    pthread_mutex_t lock; /* guards the fields below, the output file and stderr */
    size_t next, finished, failed;
    int stopped; /* the output could not be written: no point going on */
    Error stop_error;
    Progress progress;
} Shared;

typedef struct {
    Shared *shared;
    CaptionPipeline pipeline;
    Font *font; /* --export-dir; one per worker, so drawing needs no lock */
    pthread_t thread;
} Worker;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* "DIR/photo.jpg-0123456789abcdef.png": readable, and unique per path
 * through the hash of the whole path (two folders may hold a photo.jpg). */
static void figure_path(char *buffer, size_t size, const char *dir, const char *image_path) {
    const char *slash = strrchr(image_path, '/');
    const char *name = slash ? slash + 1 : image_path;
    char clean[81];
    size_t n = 0;
    for (const char *p = name; *p && n < sizeof clean - 1; p++) {
        unsigned char ch = (unsigned char)*p;
        int keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                   (ch == '.' && n > 0); /* no hidden files */
        clean[n++] = keep ? (char)ch : '_';
    }
    clean[n] = '\0';
    unsigned long long hash = (unsigned long long)hash_bytes(image_path, strlen(image_path));
    snprintf(buffer, size, "%s/%s-%016llx.png", dir, clean, hash);
}

/* The attention figure of one image: exactly what `caption export` draws. */
static int write_figure(Worker *w, const char *path, const Caption *c, const Image *image, Error *err) {
    char out_path[4600];
    figure_path(out_path, sizeof out_path, w->shared->args->export_dir, path);
    int status = export_caption(&w->pipeline.model, c, image, out_path, NULL, NULL, NULL, &w->shared->args->figure,
                                w->font, err);
    return status == 0 ? 0 : error_prefix(err, "%s: its figure", path);
}

/* Captions one image; returns its record line (NULL: out of memory). */
static char *process_image(Worker *w, const char *path, int *failed, Error *err) {
    const BatchArgs *a = w->shared->args;
    Caption caption = {0};
    Image image = {0};
    double start = now_ms();
    int status = pipeline_caption_file(&w->pipeline, path, &caption, a->export_dir ? &image : NULL, err);
    double ms = now_ms() - start;
    if (status == 0 && a->export_dir) status = write_figure(w, path, &caption, &image, err);
    *failed = status != 0;
    char *line = status == 0 ? batch_record_caption(a->format, &w->pipeline.model, path, &caption, a->attention, ms)
                             : batch_record_error(a->format, path, err->message);
    caption_free(&caption);
    image_free(&image);
    return line;
}

static const char *take_next(Shared *s) {
    pthread_mutex_lock(&s->lock);
    const char *path = !s->stopped && s->next < s->todo_count ? s->todo[s->next++] : NULL;
    pthread_mutex_unlock(&s->lock);
    return path;
}

/* Appends the record, reports a failure, moves the bar; one at a time. */
static void record(Shared *s, const char *path, const char *line, int failed, const Error *image_err) {
    pthread_mutex_lock(&s->lock);
    if (!s->stopped && !line) {
        s->stopped = 1;
        error_set(&s->stop_error, "out of memory writing the record of %s", path);
    } else if (!s->stopped && batch_output_append(s->output, line, &s->stop_error) != 0) {
        s->stopped = 1;
    }
    s->finished++;
    if (failed) {
        s->failed++;
        progress_finish(&s->progress); /* the message on a line of its own, the bar below */
        error_print(stderr, "caption batch", image_err);
    }
    /* On a terminal a live bar; in a log (Slurm, nohup) a line every 30 s. */
    progress_update(&s->progress, 0, 1, (long)s->finished, (long)s->todo_count, -1.0, 0.0);
    pthread_mutex_unlock(&s->lock);
}

static void *work(void *arg) {
    Worker *w = arg;
    for (const char *path; (path = take_next(w->shared)) != NULL;) {
        Error err;
        int failed = 0;
        char *line = process_image(w, path, &failed, &err);
        record(w->shared, path, line, failed, &err);
        free(line);
    }
    return NULL;
}

static int open_worker(Worker *w, Shared *shared, const char *model, Error *err) {
    const BatchArgs *a = shared->args;
    *w = (Worker){.shared = shared};
    if (cli_pipeline_open(&w->pipeline, model, &a->caption, 1, 0, err) != 0) return -1;
    char font_path[4096];
    if (a->export_dir && !w->pipeline.model.config.use_attention)
        error_set(err, "%s is a bottleneck model (no attention): there are no attention maps for --export-dir", model);
    else if (a->export_dir && !font_default_path(font_path, sizeof font_path))
        error_set(err, "the bundled font (assets/fonts/DejaVuSans.ttf) was not found; it is needed for --export-dir");
    else if (!a->export_dir || font_load(&w->font, font_path, err) == 0)
        return 0;
    pipeline_close(&w->pipeline);
    *w = (Worker){0};
    return -1;
}

static void close_worker(Worker *w) {
    font_free(w->font);
    pipeline_close(&w->pipeline);
}

/* Runs the workers over s->todo; the first (already open) worker is the
 * calling thread itself. */
static int run_workers(Shared *s, Worker *workers, int count, const char *model, Error *err) {
    int opened = 1, status = 0;
    workers[0].shared = s;
    for (; opened < count && status == 0; opened++) status = open_worker(&workers[opened], s, model, err);
    if (status != 0) opened--;
    int started = 1;
    /* The workers are the parallelism; and with OpenBLAS on one thread every
     * worker count gives the bits `caption` gives (its threads would split
     * products where they like and round them differently). */
    openblas_set_num_threads(1);
    for (; status == 0 && started < count; started++)
        if (pthread_create(&workers[started].thread, NULL, work, &workers[started]) != 0) break;
    if (status == 0) work(&workers[0]);
    for (int i = 1; i < started; i++) pthread_join(workers[i].thread, NULL);
    for (int i = 1; i < opened; i++) close_worker(&workers[i]);
    return status;
}

/* ---- the command ---------------------------------------------------------------- */

/* The images of this shard that OUT does not have yet. */
static const char **select_todo(const Listing *l, const BatchArgs *a, const BatchOutput *out, size_t *count) {
    const char **todo = malloc(sizeof *todo * (l->count ? l->count : 1));
    *count = 0;
    for (size_t i = 0; todo && i < l->count; i++)
        if ((int)(i % (size_t)a->shards) == a->shard && !batch_output_is_done(out, l->paths[i])) todo[(*count)++] = l->paths[i];
    return todo;
}

/* Captions s->todo with up to --threads workers, then finishes the record
 * file (the coco array). */
static int caption_all(Shared *s, Worker *workers, const char *model, Error *err) {
    size_t threads = (size_t)s->args->threads < s->todo_count ? (size_t)s->args->threads : s->todo_count;
    progress_init(&s->progress, stderr);
    pthread_mutex_init(&s->lock, NULL);
    int status = run_workers(s, workers, threads > 1 ? (int)threads : 1, model, err);
    progress_finish(&s->progress);
    pthread_mutex_destroy(&s->lock);
    if (status == 0 && s->stopped) *err = s->stop_error, status = -1;
    int all = status == 0 && s->failed == 0 && s->finished == s->todo_count;
    if (status == 0 && batch_output_finish(s->output, all, err) != 0) status = -1;
    if (s->failed)
        fprintf(stderr, "caption batch: %zu of %zu images failed; --resume tries them again\n", s->failed, s->todo_count);
    return status;
}

/* Lists, opens the output and captions: 0 all captioned, 1 some image or
 * folder failed, -1 with err when the run itself failed. */
static int run_batch(const BatchArgs *a, const char *model, Worker *workers, Error *err) {
    Listing listing = {0};
    list_images(&listing, a);
    if (listing.out_of_memory) return listing_free(&listing), error_set(err, "out of memory listing the images");
    BatchOutput output;
    if (batch_output_open(&output, a->output, a->format, a->resume, err) != 0) return listing_free(&listing), -1;
    Shared s = {.args = a, .output = &output};
    s.todo = select_todo(&listing, a, &output, &s.todo_count);
    int status = 0;
    if (!s.todo) status = error_set(err, "out of memory");
    else if (output.already_complete)
        fprintf(stderr, "caption batch: %s is complete (there is no %s.partial): nothing to resume\n", a->output, a->output);
    else {
        if (a->resume) /* what the scan of OUT found, so a log shows where the run picks up */
            fprintf(stderr, "caption batch: resuming: %zu images already captioned in %s, %zu to do\n",
                    output.done_count, output.log_path, s.todo_count);
        status = caption_all(&s, workers, model, err);
    }
    int failed = s.failed || listing.problems;
    free(s.todo);
    batch_output_free(&output);
    listing_free(&listing);
    return status != 0 ? -1 : failed;
}

int cmd_batch(int argc, char **argv) {
    BatchArgs a;
    if (parse_args(argc, argv, &a) != 0) return 2;
    char default_path[4096];
    const char *model = cli_model_path(&a.caption, "caption batch", default_path, sizeof default_path);
    if (!model) return 2;
    Worker *workers = calloc((size_t)a.threads, sizeof *workers);
    Shared setup = {.args = &a}; /* run_batch gives the workers the real one */
    Error err;
    /* One model first, so a bad model fails before OUT is touched. */
    int status = !workers ? error_set(&err, "out of memory") : open_worker(&workers[0], &setup, model, &err);
    if (status == 0 && a.export_dir) status = make_folders(a.export_dir, &err);
    if (status == 0) status = run_batch(&a, model, workers, &err);
    if (status < 0) error_print(stderr, "caption batch", &err);
    if (workers && workers[0].shared) close_worker(&workers[0]);
    free(workers);
    return status < 0 ? 1 : status;
}
