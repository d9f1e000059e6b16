/* `caption batch`: a folder tree with images (PNG, JPEG, one without an
 * extension, names needing CSV quoting and TSV escaping), a text file, a
 * broken image, a nested folder and a symbolic link loop, captioned by a
 * small random model through the built executable: every image exactly once,
 * the broken one an error record, csv/tsv/coco readable, shards that add up,
 * --resume after a torn last record, --threads 2 = --threads 1, figures. */
#include <cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stb_image_write.h>

#include "batch_output.h"
#include "bench_measure.h"
#include "check.h"
#include "image.h"
#include "model.h"
#include "test_util.h"

static const char *const VOCAB[] = {"<pad>", "<start>", "<end>", "<unk>", "dog", "runs", "red", "ball"};
enum { VOCAB_SIZE = 8 };

/* The images of the tree, relative to it; BROKEN is the one that fails. */
static const char *const GOOD[] = {
    "a.png", "b.jpg", "c \"quoted\", comma.png", "tab\there.png", "sub/d.png",
    "sub/deeper/COCO_val2014_000000000042.png", "sub/noext",
};
enum { GOOD_COUNT = sizeof GOOD / sizeof *GOOD };
#define BROKEN "broken.png"

typedef struct {
    char root[200];  /* the temporary folder */
    char tree[300];  /* the images */
    char model[300];
    const char *exe;
} Fixture;

static int make_model(const char *path) {
    SatConfig c;
    sat_config_defaults(&c);
    c.image_size = 16;
    snprintf(c.encoder_spec, sizeof c.encoder_spec, "4,6p,8p");
    c.vocab_size = VOCAB_SIZE;
    c.embed_dim = 5;
    c.hidden_dim = 7;
    c.attention_dim = 4;
    SatModel m;
    Error err;
    int status = sat_model_create(&m, &c, VOCAB, &err);
    if (status == 0) {
        /* Seed and scale chosen so that the pictures below get captions that
         * differ, which makes comparing runs meaningful. */
        sat_model_init_params(&m, 19);
        for (long i = 0; i < 5 * 8; i++) m.p.out_context_weight[i] *= 20.0f;
        status = sat_model_prepare_inference(&m, &err);
        if (status == 0) status = sat_model_save(&m, path, 0, &err);
        sat_model_free(&m);
    }
    if (status != 0) fprintf(stderr, "%s\n", err.message);
    return status;
}

static void write_text(const char *path, const char *text, size_t size) {
    FILE *f = fopen(path, "wb");
    if (f) fwrite(text, 1, size, f), fclose(f);
}

/* A picture of its own for each seed (a colour of its own, and noise), so
 * the captions differ. */
static int write_picture(const char *path, int seed, int jpeg) {
    Image img;
    Error err;
    if (image_alloc(&img, 24 + seed, 20, 3, &err) != 0) return -1;
    uint32_t state = 2166136261u + (uint32_t)seed * 16777619u;
    for (size_t i = 0; i < (size_t)img.width * img.height * 3; i++) {
        state = state * 1664525u + 1013904223u;
        img.pixels[i] = (unsigned char)((state >> 26) + (i % 3 == 0 ? seed * 37 : i % 3 == 1 ? 255 - seed * 29 : seed * 61 % 192));
    }
    int status = jpeg ? (stbi_write_jpg(path, img.width, img.height, 3, img.pixels, 90) ? 0 : -1)
                      : image_write_png(&img, path, &err);
    image_free(&img);
    return status;
}

static int make_tree(Fixture *f) {
    char path[600];
    mkdir(f->tree, 0755);
    snprintf(path, sizeof path, "%s/sub", f->tree);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/sub/deeper", f->tree);
    mkdir(path, 0755);
    int status = 0;
    for (int i = 0; i < GOOD_COUNT; i++) {
        snprintf(path, sizeof path, "%s/%s", f->tree, GOOD[i]);
        status |= write_picture(path, i, strstr(GOOD[i], ".jpg") != NULL);
    }
    snprintf(path, sizeof path, "%s/notes.txt", f->tree);
    write_text(path, "not an image\n", 13);
    snprintf(path, sizeof path, "%s/" BROKEN, f->tree);
    write_text(path, "\x89PNG\r\n\x1a\nnot really", 18);
    snprintf(path, sizeof path, "%s/sub/loop", f->tree);
    status |= symlink("..", path);
    return status;
}

/* Runs `caption batch ARGS` with the test model; the exit status (-1 if it
 * did not exit). stderr goes to ROOT/stderr.txt. */
static int run_batch(const Fixture *f, const char *args) {
    char command[4096];
    snprintf(command, sizeof command, "'%s' batch --model '%s' --max-length 8 %s 2>'%s/stderr.txt'", f->exe, f->model, args, f->root);
    return shell_exit_code(command);
}

static int stderr_mentions(const Fixture *f, const char *text) {
    char path[300];
    snprintf(path, sizeof path, "%s/stderr.txt", f->root);
    char *data = read_whole_file(path, NULL);
    int found = data && strstr(data, text) != NULL;
    free(data);
    return found;
}

/* ---- what a run wrote ------------------------------------------------------------ */

typedef struct {
    char *path[64], *caption[64], *error[64];
    int count;
    int malformed; /* lines or rows that did not parse */
} Records;

static void records_free(Records *r) {
    for (int i = 0; i < r->count; i++) free(r->path[i]), free(r->caption[i]), free(r->error[i]);
    memset(r, 0, sizeof *r);
}

static void records_add(Records *r, const char *path, const char *caption, const char *error) {
    if (r->count >= 64) return;
    r->path[r->count] = strdup(path);
    r->caption[r->count] = caption ? strdup(caption) : NULL;
    r->error[r->count++] = error && *error ? strdup(error) : NULL;
}

static void read_jsonl(const char *path, Records *r) {
    char *data = read_whole_file(path, NULL);
    memset(r, 0, sizeof *r);
    if (!data) return;
    if (*data && data[strlen(data) - 1] != '\n') r->malformed++; /* a torn last line */
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *p = cJSON_GetObjectItem(j, "path"), *c = cJSON_GetObjectItem(j, "caption");
        const cJSON *e = cJSON_GetObjectItem(j, "error");
        if (cJSON_IsString(p) && (cJSON_IsString(c) || cJSON_IsString(e)))
            records_add(r, p->valuestring, cJSON_IsString(c) ? c->valuestring : NULL,
                        cJSON_IsString(e) ? e->valuestring : NULL);
        else r->malformed++;
        if (cJSON_IsString(c) && !(cJSON_IsArray(cJSON_GetObjectItem(j, "tokens")) &&
                                   cJSON_IsNumber(cJSON_GetObjectItem(j, "logprob")) &&
                                   cJSON_IsNumber(cJSON_GetObjectItem(j, "ms"))))
            r->malformed++;
        cJSON_Delete(j);
    }
    free(data);
}

/* An RFC 4180 reader of its own, to check the writer against. */
static void read_csv(const char *path, Records *r) {
    size_t size;
    char *data = read_whole_file(path, &size);
    memset(r, 0, sizeof *r);
    if (!data) return;
    char field[5][512];
    int nfield = 0, row = 0;
    size_t len = 0;
    for (size_t i = 0; i < size;) {
        if (data[i] == '"') {
            for (i++; i < size && !(data[i] == '"' && data[i + 1] != '"'); i++) {
                if (data[i] == '"') i++;
                if (len < 511) field[nfield < 5 ? nfield : 4][len++] = data[i];
            }
            i++;
        } else {
            while (i < size && data[i] != ',' && data[i] != '\n') {
                if (len < 511) field[nfield < 5 ? nfield : 4][len++] = data[i];
                i++;
            }
        }
        field[nfield < 5 ? nfield : 4][len] = '\0';
        len = 0;
        nfield++;
        if (i >= size || data[i] == '\n') {
            if (nfield != 5) r->malformed++;
            else if (row > 0) records_add(r, field[0], field[4][0] ? NULL : field[1], field[4]);
            else if (strcmp(field[0], "path") != 0 || strcmp(field[4], "error") != 0) r->malformed++;
            row++;
            nfield = 0;
        }
        i++;
    }
    free(data);
}

static void unescape_tsv(char *s) {
    char *w = s;
    for (char *p = s; *p; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            *w++ = *p == 't' ? '\t' : *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
}

static void read_tsv(const char *path, Records *r) {
    char *data = read_whole_file(path, NULL);
    memset(r, 0, sizeof *r);
    if (!data) return;
    int row = 0;
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n"), row++) {
        char *field[5] = {0};
        int n = 0;
        for (char *p = line; n < 5; n++) {
            field[n] = p;
            char *tab = strchr(p, '\t');
            if (!tab) {
                n++;
                break;
            }
            *tab = '\0';
            p = tab + 1;
        }
        if (n != 5 || strchr(field[4], '\t')) {
            r->malformed++;
            continue;
        }
        for (int i = 0; i < 5; i++) unescape_tsv(field[i]);
        if (row == 0) r->malformed += strcmp(field[0], "path") != 0;
        else records_add(r, field[0], field[4][0] ? NULL : field[1], field[4]);
    }
    free(data);
}

/* How often the record of tree-relative `name` appears. */
static int occurrences(const Fixture *f, const Records *r, const char *name) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", f->tree, name);
    int n = 0;
    for (int i = 0; i < r->count; i++) n += strcmp(r->path[i], path) == 0;
    return n;
}

/* Every good image once with a caption, the broken one once as an error,
 * nothing else. */
static int complete(const Fixture *f, const Records *r) {
    int ok = r->count == GOOD_COUNT + 1 && r->malformed == 0 && occurrences(f, r, BROKEN) == 1;
    for (int i = 0; i < GOOD_COUNT; i++) ok = ok && occurrences(f, r, GOOD[i]) == 1;
    for (int i = 0; i < r->count; i++) ok = ok && (strstr(r->path[i], BROKEN) ? r->error[i] != NULL : r->caption[i] != NULL);
    return ok;
}

/* ---- the tests ----------------------------------------------------------------------- */

static void test_jsonl(CheckCounts *c, const Fixture *f) {
    char args[2048], out[300];
    snprintf(out, sizeof out, "%s/out.jsonl", f->root);
    snprintf(args, sizeof args, "'%s' -o '%s'", f->tree, out);
    CHECK(c, run_batch(f, args) == 1);
    CHECK(c, stderr_mentions(f, "sub/loop") && stderr_mentions(f, BROKEN));
    Records r;
    read_jsonl(out, &r);
    CHECK(c, complete(f, &r));
    int distinct = 0; /* the random model does tell the pictures apart */
    for (int i = 1; i < r.count; i++) distinct += r.caption[i] && r.caption[0] && strcmp(r.caption[i], r.caption[0]);
    CHECK(c, distinct > 0);
    records_free(&r);
}

static void test_formats(CheckCounts *c, const Fixture *f) {
    char args[2048], out[300];
    Records r;
    snprintf(out, sizeof out, "%s/out.csv", f->root);
    snprintf(args, sizeof args, "'%s' -o '%s' --format csv", f->tree, out);
    CHECK(c, run_batch(f, args) == 1);
    read_csv(out, &r);
    CHECK(c, complete(f, &r));
    records_free(&r);
    snprintf(out, sizeof out, "%s/out.tsv", f->root);
    snprintf(args, sizeof args, "'%s' -o '%s' --format tsv", f->tree, out);
    CHECK(c, run_batch(f, args) == 1);
    read_tsv(out, &r);
    CHECK(c, complete(f, &r));
    records_free(&r);

    snprintf(out, sizeof out, "%s/out.json", f->root);
    snprintf(args, sizeof args, "'%s' -o '%s' --format coco", f->tree, out);
    CHECK(c, run_batch(f, args) == 1);
    char *data = read_whole_file(out, NULL);
    cJSON *array = data ? cJSON_Parse(data) : NULL;
    CHECK(c, cJSON_IsArray(array) && cJSON_GetArraySize(array) == GOOD_COUNT);
    int id_42 = 0, named = 0;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, array) {
        const cJSON *id = cJSON_GetObjectItem(entry, "image_id");
        CHECK(c, cJSON_IsString(cJSON_GetObjectItem(entry, "caption")));
        id_42 += cJSON_IsNumber(id) && id->valuedouble == 42.0;
        named += cJSON_IsString(id) && strcmp(id->valuestring, "a.png") == 0;
    }
    CHECK(c, id_42 == 1 && named == 1);
    cJSON_Delete(array);
    free(data);
    /* A failure remains, so the record log stays for --resume. */
    snprintf(out, sizeof out, "%s/out.json.partial", f->root);
    CHECK(c, access(out, F_OK) == 0);
    CHECK(c, batch_coco_image_id("x/1000268201_693b08cb0e.jpg") == 1000268201LL);
    CHECK(c, batch_coco_image_id("COCO_val2014_000000391895.jpg") == 391895LL);
    CHECK(c, batch_coco_image_id("dog.jpg") == -1);
}

static void test_shards(CheckCounts *c, const Fixture *f) {
    char args[2048], out[2][300];
    Records all = {0}, part;
    for (int k = 0; k < 2; k++) {
        snprintf(out[k], sizeof out[k], "%s/shard%d.jsonl", f->root, k);
        snprintf(args, sizeof args, "--shard %d/2 '%s' -o '%s'", k, f->tree, out[k]);
        int status = run_batch(f, args);
        CHECK(c, status == 0 || status == 1);
        read_jsonl(out[k], &part);
        CHECK(c, part.count >= GOOD_COUNT / 2); /* 8 images: 4 each */
        for (int i = 0; i < part.count; i++) records_add(&all, part.path[i], part.caption[i], part.error[i]);
        records_free(&part);
    }
    CHECK(c, complete(f, &all));
    records_free(&all);
}

/* Cuts the file in the middle of its fourth line: a record torn by a kill. */
static void tear(const char *path) {
    size_t size;
    char *data = read_whole_file(path, &size);
    char *at = data;
    for (int line = 0; at && line < 3; line++) at = strchr(at, '\n') ? strchr(at, '\n') + 1 : NULL;
    if (at) write_text(path, data, (size_t)(at - data) + strcspn(at, "\n") / 2);
    free(data);
}

static void test_resume(CheckCounts *c, const Fixture *f) {
    char args[2048], out[300], full[300];
    snprintf(full, sizeof full, "%s/out.jsonl", f->root);
    snprintf(out, sizeof out, "%s/resumed.jsonl", f->root);
    size_t size;
    char *data = read_whole_file(full, &size);
    write_text(out, data ? data : "", data ? size : 0);
    tear(out);
    size_t kept_size;
    char *kept = read_whole_file(out, &kept_size);
    Records r;
    read_jsonl(out, &r);
    CHECK(c, r.count == 3 && r.malformed > 0);
    records_free(&r);
    snprintf(args, sizeof args, "--resume '%s' -o '%s'", f->tree, out);
    CHECK(c, run_batch(f, args) == 1); /* the broken image fails again */
    CHECK(c, stderr_mentions(f, "resuming: 2 images already captioned")); /* said in the log, not silent */
    read_jsonl(out, &r);
    CHECK(c, complete(f, &r));
    records_free(&r);
    /* The whole caption records are kept as they were (the error record is
     * replaced by the new attempt's). */
    char *after = read_whole_file(out, NULL);
    int kept_lines = 0;
    for (char *line = kept ? strtok(kept, "\n") : NULL; line && after; line = strtok(NULL, "\n"))
        if (strstr(line, "\"caption\"") && line + strlen(line) < kept + kept_size) {
            char whole[4096];
            snprintf(whole, sizeof whole, "%s\n", line);
            kept_lines += strstr(after, whole) != NULL;
        }
    CHECK(c, kept_lines == 2); /* a.png and b.jpg; broken.png was the third */
    /* Again: nothing left but the broken image, whose error record is replaced. */
    CHECK(c, run_batch(f, args) == 1);
    read_jsonl(out, &r);
    CHECK(c, complete(f, &r));
    records_free(&r);
    free(after), free(kept), free(data);
    /* csv: the header is kept and not repeated. */
    snprintf(out, sizeof out, "%s/resumed.csv", f->root);
    snprintf(full, sizeof full, "%s/out.csv", f->root);
    data = read_whole_file(full, &size);
    write_text(out, data ? data : "", data ? size : 0);
    tear(out);
    snprintf(args, sizeof args, "--resume --format csv '%s' -o '%s'", f->tree, out);
    CHECK(c, run_batch(f, args) == 1);
    read_csv(out, &r);
    CHECK(c, complete(f, &r));
    records_free(&r);
    free(data);
}

static int same_captions(const Records *a, const Records *b) {
    if (a->count != b->count) return 0;
    for (int i = 0; i < a->count; i++) {
        int found = 0;
        for (int j = 0; j < b->count; j++)
            found += strcmp(a->path[i], b->path[j]) == 0 &&
                     (a->caption[i] && b->caption[j] ? strcmp(a->caption[i], b->caption[j]) == 0 : a->caption[i] == b->caption[j]);
        if (found != 1) return 0;
    }
    return 1;
}

static void test_threads(CheckCounts *c, const Fixture *f) {
    char args[2048], one[300], two[300];
    snprintf(one, sizeof one, "%s/out.jsonl", f->root);
    snprintf(two, sizeof two, "%s/threads.jsonl", f->root);
    snprintf(args, sizeof args, "--threads 2 '%s' -o '%s'", f->tree, two);
    CHECK(c, run_batch(f, args) == 1);
    Records a, b;
    read_jsonl(one, &a);
    read_jsonl(two, &b);
    CHECK(c, complete(f, &b) && same_captions(&a, &b));
    records_free(&a), records_free(&b);
}

static void test_usage(CheckCounts *c, const Fixture *f) {
    char args[2048];
    snprintf(args, sizeof args, "'%s'", f->tree); /* no -o */
    CHECK(c, run_batch(f, args) == 2);
    const char *bad[] = {"--shard 2/2", "--shard x", "--format xml", "--threads 0", "--format csv --attention"};
    for (int i = 0; i < 5; i++) {
        snprintf(args, sizeof args, "%s '%s' -o '%s/never.jsonl'", bad[i], f->tree, f->root);
        CHECK(c, run_batch(f, args) == 2);
    }
    snprintf(args, sizeof args, "%s/never.jsonl", f->root);
    CHECK(c, access(args, F_OK) != 0);
}

static int count_png(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) n += strstr(e->d_name, ".png") != NULL;
    if (d) closedir(d);
    return n;
}

/* The batch figure of a.png is byte for byte what `caption export` writes with
 * the same settings: one renderer for every tool. */
static int same_as_caption_export(const Fixture *f, const char *figures) {
    char command[2048], single[300], batch_figure[700] = "";
    snprintf(single, sizeof single, "%s/single.png", f->root);
    snprintf(command, sizeof command,
             "'%s' export '%s/a.png' -o '%s' --model '%s' --max-length 8 --colormap jet --opacity 0.5 --beam 1 >/dev/null 2>&1",
             f->exe, f->tree, single, f->model);
    if (system(command) != 0) return 0;
    DIR *d = opendir(figures);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        if (strncmp(e->d_name, "a.png-", 6) == 0) snprintf(batch_figure, sizeof batch_figure, "%s/%s", figures, e->d_name);
    if (d) closedir(d);
    size_t size_a = 0, size_b = 0;
    char *a = read_whole_file(single, &size_a);
    char *b = batch_figure[0] ? read_whole_file(batch_figure, &size_b) : NULL;
    int same = a && b && size_a == size_b && memcmp(a, b, size_a) == 0;
    free(a);
    free(b);
    return same;
}

/* Figures go to --export-dir, one per image; inside the tree they are not
 * captioned by a later run. */
static void test_export(CheckCounts *c, const Fixture *f) {
    char args[2048], out[300], figures[400];
    snprintf(out, sizeof out, "%s/export.jsonl", f->root);
    snprintf(figures, sizeof figures, "%s/figures", f->tree);
    snprintf(args, sizeof args, "'%s' -o '%s' --export-dir '%s' --colormap jet --opacity 0.5 --beam 1", f->tree, out, figures);
    CHECK(c, run_batch(f, args) == 1);
    CHECK(c, count_png(figures) == GOOD_COUNT);
    CHECK(c, same_as_caption_export(f, figures));
    snprintf(args, sizeof args, "'%s' -o '%s' --export-dir '%s'", f->tree, out, figures);
    CHECK(c, run_batch(f, args) == 1);
    Records r;
    read_jsonl(out, &r);
    CHECK(c, complete(f, &r));
    records_free(&r);
}

/* A folder that cannot be read is reported and fails the run. */
static void test_unreadable_folder(CheckCounts *c, const Fixture *f) {
    if (geteuid() == 0) {
        printf("unreadable folder: skipped (root reads every folder)\n");
        return;
    }
    char locked[400], args[2048];
    snprintf(locked, sizeof locked, "%s/locked", f->root);
    mkdir(locked, 0755);
    snprintf(args, sizeof args, "%s/ok.png", locked);
    write_picture(args, 3, 0);
    chmod(locked, 0);
    snprintf(args, sizeof args, "'%s' '%s/a.png' -o '%s/locked.jsonl'", locked, f->tree, f->root);
    CHECK(c, run_batch(f, args) == 1);
    CHECK(c, stderr_mentions(f, "locked"));
    chmod(locked, 0755);
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ADDRESS_SANITIZER 1
#endif
#endif
#ifndef UNDER_ADDRESS_SANITIZER
#define UNDER_ADDRESS_SANITIZER 0
#endif

/* --resume streams the record file: a 32 MB file (3000 records with 10 kB
 * attention payloads, failed images in between, so the file is rewritten,
 * and a torn last line) is resumed in a child process whose peak memory may
 * grow by at most 8 MB; holding the file in memory, as it once did (three
 * copies: 600 MB for a 290 MB file), would take 64 MB or more. */
static void test_resume_memory(CheckCounts *c, const Fixture *f) {
    char path[400];
    snprintf(path, sizeof path, "%s/big.jsonl", f->root);
    FILE *out = fopen(path, "w");
    char *payload = malloc(10001);
    if (!out || !payload) {
        CHECK(c, 0);
        if (out) fclose(out);
        free(payload);
        return;
    }
    memset(payload, '7', 10000);
    payload[10000] = '\0';
    enum { RECORDS = 3200 };
    int captioned = 0;
    for (int i = 0; i < RECORDS; i++) {
        if (i % 10 == 3) fprintf(out, "{\"path\": \"img/%05d.png\", \"error\": \"broken\"}\n", i);
        else fprintf(out, "{\"path\": \"img/%05d.png\", \"caption\": \"a dog\", \"attention\": \"%s\"}\n", i, payload), captioned++;
    }
    fprintf(out, "{\"path\": \"img/torn.png\", \"capt");
    fclose(out);
    free(payload);
    int pipe_fds[2];
    CHECK(c, pipe(pipe_fds) == 0);
    pid_t child = fork();
    if (child == 0) {
        double before = bench_peak_rss_mib();
        BatchOutput o;
        Error err;
        long result[3] = {-1, -1, -1};
        if (batch_output_open(&o, path, BATCH_FORMAT_JSONL, 1, &err) == 0) {
            result[0] = (long)o.done_count;
            result[1] = batch_output_is_done(&o, "img/00004.png") && !batch_output_is_done(&o, "img/00003.png") &&
                        !batch_output_is_done(&o, "img/torn.png");
            result[2] = (long)((bench_peak_rss_mib() - before) * 1024.0); /* kB */
            batch_output_free(&o);
        } else {
            fprintf(stderr, "%s\n", err.message);
        }
        ssize_t written = write(pipe_fds[1], result, sizeof result);
        _exit(written == (ssize_t)sizeof result ? 0 : 1);
    }
    long result[3] = {-1, -1, -1};
    close(pipe_fds[1]);
    CHECK(c, read(pipe_fds[0], result, sizeof result) == (ssize_t)sizeof result);
    close(pipe_fds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    printf("resume of a 32 MB record file: %ld captioned kept, peak memory +%ld kB\n", result[0], result[2]);
    CHECK(c, result[0] == captioned && result[1] == 1);
#if UNDER_ADDRESS_SANITIZER
    /* AddressSanitizer keeps freed memory in quarantine: the peak says nothing here. */
    printf("(built with AddressSanitizer: the memory bound is not checked)\n");
#else
    CHECK(c, result[2] >= 0 && result[2] < 8 * 1024);
#endif
    /* What is left: the caption records only, each whole. */
    FILE *in = fopen(path, "r");
    long lines = 0, errors = 0;
    int ch, last = '\n';
    while (in && (ch = fgetc(in)) != EOF) lines += ch == '\n', last = ch;
    if (in) fclose(in);
    char command[500];
    snprintf(command, sizeof command, "grep -c error '%s' > /dev/null", path);
    errors = system(command) == 0;
    CHECK(c, lines == captioned && last == '\n' && !errors);
}

int main(int argc, char **argv) {
    CheckCounts c = {0};
    if (argc < 2) {
        fprintf(stderr, "usage: test_batch CAPTION_EXECUTABLE\n");
        return 1;
    }
    Fixture f = {.exe = argv[1]};
    snprintf(f.root, sizeof f.root, "/tmp/caption-test-batch-XXXXXX");
    if (!mkdtemp(f.root)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(f.tree, sizeof f.tree, "%s/tree", f.root);
    snprintf(f.model, sizeof f.model, "%s/model.safetensors", f.root);
    CHECK(&c, make_model(f.model) == 0);
    CHECK(&c, make_tree(&f) == 0);
    test_jsonl(&c, &f);
    test_formats(&c, &f);
    test_shards(&c, &f);
    test_resume(&c, &f);
    test_resume_memory(&c, &f);
    test_threads(&c, &f);
    test_usage(&c, &f);
    test_unreadable_folder(&c, &f);
    test_export(&c, &f);
    char command[400];
    snprintf(command, sizeof command, "rm -rf '%s'", f.root);
    if (system(command) != 0) fprintf(stderr, "could not remove %s\n", f.root);
    return check_summary(&c);
}
