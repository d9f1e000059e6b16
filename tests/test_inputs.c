/* Broken and hostile inputs through the built executable: `caption`,
 * `caption export` and `caption batch` given a file that is not an image, an
 * empty file, a folder, a symbolic link loop, an unreadable file (as root the
 * command runs as nobody, for whom permissions count), names that are not
 * UTF-8 or hold a newline, and an image over --max-pixels. Each problem is
 * exactly one line on stderr naming the file, the exit status says some
 * image failed, nothing crashes, and a good image given beside it is still
 * captioned (an error record and a caption record for batch). A name that is
 * not UTF-8 comes out of every JSON output as valid JSON in valid UTF-8, with
 * "path" (U+FFFD) and "path_bytes" (the exact bytes) as README.md describes. */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <cJSON.h>

#include "check.h"
#include "image.h"
#include "json_utf8.h"
#include "model.h"
#include "test_util.h"

static const char *const VOCAB[] = {"<pad>", "<start>", "<end>", "<unk>", "dog", "runs"};
enum { NOBODY = 65534, SKIPPED = 123 };

typedef struct {
    const char *exe;
    char dir[64];
    char model[128], good[128];
} Fixture;

typedef struct {
    int exited, code;           /* exited normally with code (no signal, no sanitizer abort) */
    char out[16384], err[16384];
    int out_lines, err_lines;
} Result;

static int make_model(const char *path) {
    SatConfig c;
    sat_config_defaults(&c);
    c.image_size = 16;
    snprintf(c.encoder_spec, sizeof c.encoder_spec, "4,6p");
    c.vocab_size = 6, c.embed_dim = 5, c.hidden_dim = 7, c.attention_dim = 4;
    SatModel m;
    Error err;
    int status = sat_model_create(&m, &c, VOCAB, &err);
    if (status == 0) {
        sat_model_init_params(&m, 5);
        status = sat_model_save(&m, path, 0, &err);
        sat_model_free(&m);
    }
    if (status != 0) fprintf(stderr, "%s\n", err.message);
    return status;
}

static void write_bytes(const char *path, const char *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (f) fwrite(data, 1, size, f), fclose(f);
}

static int count_lines(const char *text) {
    int n = 0;
    for (const char *p = text; *p; p++) n += *p == '\n';
    return n;
}

static void read_text(const char *path, char *buffer, size_t size) {
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(buffer, 1, size - 1, f) : 0;
    buffer[got] = '\0';
    if (f) fclose(f);
}

/* Runs argv in the fixture's folder, as nobody when asked (root only). */
static void run(const Fixture *f, int as_nobody, char *const argv[], Result *r) {
    char out_path[128], err_path[128];
    snprintf(out_path, sizeof out_path, "%s/stdout.txt", f->dir);
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", f->dir);
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644), err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t child = fork();
    if (child == 0) {
        dup2(out, 1), dup2(err, 2);
        if (chdir(f->dir) != 0) _exit(120);
        if (as_nobody && (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)) _exit(121);
        if (as_nobody && access(f->exe, X_OK) != 0) _exit(SKIPPED); /* the build folder is private */
        execv(f->exe, argv);
        _exit(122);
    }
    close(out), close(err);
    r->code = wait_exit_code(child);
    r->exited = r->code >= 0; /* a signal comes back negative */
    read_text(out_path, r->out, sizeof r->out);
    read_text(err_path, r->err, sizeof r->err);
    r->out_lines = count_lines(r->out);
    r->err_lines = count_lines(r->err);
}

typedef struct {
    const char *name;   /* the bad input, in the fixture's folder */
    const char *shown;  /* how its error line shows it */
    const char *reason; /* a phrase of the error */
    int as_nobody;
} Case;

static int report(const Case *k, const char *tool, const Result *r, int ok) {
    if (k->as_nobody && r->exited && r->code == SKIPPED) {
        printf("%s on %s: skipped (nobody cannot run the caption executable here)\n", tool, k->shown);
        return 1;
    }
    if (!ok)
        fprintf(stderr, "%s on %s: exit %d, stdout:\n%sstderr:\n%s", tool, k->shown, r->code, r->out, r->err);
    return ok;
}

static int has(const char *text, const char *a, const char *b) { return strstr(text, a) && strstr(text, b); }

/* caption BAD GOOD: one error line, the good image captioned, exit 1. */
static void check_caption(CheckCounts *c, const Fixture *f, const Case *k, const char *max_pixels) {
    Result r;
    char *argv[] = {"caption", "--model", (char *)f->model, "--max-pixels", (char *)max_pixels, (char *)k->name,
                    (char *)f->good, NULL};
    run(f, k->as_nobody, argv, &r);
    CHECK(c, report(k, "caption", &r, r.exited && r.code == 1 && r.err_lines == 1 && has(r.err, k->shown, k->reason) &&
                                          r.out_lines == 1 && strstr(r.out, "good.png\t")));
}

/* caption export BAD -o fig.png: one error line, no figure, exit 1. */
static void check_export(CheckCounts *c, const Fixture *f, const Case *k, const char *max_pixels) {
    Result r;
    char figure[160];
    snprintf(figure, sizeof figure, "%s/fig.png", f->dir);
    unlink(figure);
    char *argv[] = {"caption", "export", "--model", (char *)f->model, "--max-pixels", (char *)max_pixels,
                    (char *)k->name, "-o", "fig.png", NULL};
    run(f, k->as_nobody, argv, &r);
    CHECK(c, report(k, "caption export", &r, r.exited && r.code == 1 && r.err_lines == 1 &&
                                                 has(r.err, k->shown, k->reason) && access(figure, F_OK) != 0));
}

/* caption batch BAD GOOD: an error record and a caption record, the error
 * line and the closing count on stderr, exit 1. */
static void check_batch(CheckCounts *c, const Fixture *f, const Case *k, const char *max_pixels) {
    Result r;
    char out[160], records[4096];
    snprintf(out, sizeof out, "%s/out.jsonl", f->dir);
    unlink(out);
    char *argv[] = {"caption", "batch", "--model", (char *)f->model, "--max-pixels", (char *)max_pixels, (char *)k->name,
                    (char *)f->good, "-o", "out.jsonl", NULL};
    run(f, k->as_nobody, argv, &r);
    read_text(out, records, sizeof records);
    int ok = r.exited && r.code == 1 && r.err_lines == 2 && has(r.err, k->shown, k->reason) &&
             strstr(r.err, "1 of 2 images failed") && count_lines(records) == 2 && strstr(records, "\"error\":") &&
             strstr(records, "\"caption\":");
    CHECK(c, report(k, "caption batch", &r, ok));
}

static int setup(Fixture *f) {
    snprintf(f->dir, sizeof f->dir, "/tmp/caption-test-inputs-XXXXXX");
    if (!mkdtemp(f->dir) || chmod(f->dir, 01777) != 0) return -1; /* nobody writes outputs there too */
    snprintf(f->model, sizeof f->model, "%s/model.safetensors", f->dir);
    snprintf(f->good, sizeof f->good, "%s/good.png", f->dir);
    Image picture;
    Error err;
    if (make_model(f->model) != 0 || image_alloc(&picture, 20, 12, 3, &err) != 0) return -1;
    for (int i = 0; i < 20 * 12 * 3; i++) picture.pixels[i] = (unsigned char)(i * 7);
    int status = image_write_png(&picture, f->good, &err);
    char path[300];
    const char *garbage = "this is not a picture\n";
    snprintf(path, sizeof path, "%s/notes.png", f->dir), write_bytes(path, garbage, strlen(garbage));
    snprintf(path, sizeof path, "%s/empty.png", f->dir), write_bytes(path, "", 0);
    snprintf(path, sizeof path, "%s/folder.png", f->dir), mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/loop-a.png", f->dir);
    if (symlink("loop-b.png", path) != 0) status = -1;
    snprintf(path, sizeof path, "%s/loop-b.png", f->dir);
    if (symlink("loop-a.png", path) != 0) status = -1;
    snprintf(path, sizeof path, "%s/locked.png", f->dir);
    if (status == 0) status = image_write_png(&picture, path, &err);
    chmod(path, 0);
    snprintf(path, sizeof path, "%s/not-utf8-\xff\xfe.png", f->dir), write_bytes(path, garbage, strlen(garbage));
    snprintf(path, sizeof path, "%s/new\nline.png", f->dir), write_bytes(path, garbage, strlen(garbage));
    snprintf(path, sizeof path, "%s/photo-\xe9t\xe9.png", f->dir); /* Latin-1, a valid image */
    if (link(f->good, path) != 0) status = -1;
    snprintf(path, sizeof path, "%s/caf\xe9.png", f->dir); /* the same, for the JSON outputs */
    if (link(f->good, path) != 0) status = -1;
    image_free(&picture);
    return status;
}

/* --max-pixels on caption and batch (export is in the cases): the good
 * image alone, refused. */
static void test_max_pixels(CheckCounts *c, Fixture *f) {
    Result r;
    char *argv[] = {"caption", "--model", f->model, "--max-pixels", "100", "good.png", NULL};
    run(f, 0, argv, &r);
    CHECK(c, r.exited && r.code == 1 && r.out_lines == 0 && r.err_lines == 1 && strstr(r.err, "limit of 100 pixels"));
    char *batch[] = {"caption", "batch", "--model", f->model, "--max-pixels", "100", "good.png", "-o", "limit.jsonl", NULL};
    run(f, 0, batch, &r);
    char records[4096], path[160];
    snprintf(path, sizeof path, "%s/limit.jsonl", f->dir);
    read_text(path, records, sizeof records);
    CHECK(c, r.exited && r.code == 1 && count_lines(records) == 1 && strstr(records, "limit of 100 pixels"));
}

/* A valid image whose name is not UTF-8 is captioned like any other. */
static void test_non_utf8_image(CheckCounts *c, Fixture *f) {
    Result r;
    char *argv[] = {"caption", "--model", f->model, "photo-\xe9t\xe9.png", NULL};
    run(f, 0, argv, &r);
    CHECK(c, r.exited && r.code == 0 && r.out_lines == 1 && strstr(r.out, "photo-\xe9t\xe9.png\t"));
    char *batch[] = {"caption", "batch", "--model", f->model, "photo-\xe9t\xe9.png", "-o", "latin1.jsonl", NULL};
    run(f, 0, batch, &r);
    CHECK(c, r.exited && r.code == 0 && r.err_lines == 0);
    char *resume[] = {"caption", "batch", "--model", f->model, "photo-\xe9t\xe9.png", "-o", "latin1.jsonl", "--resume", NULL};
    run(f, 0, resume, &r); /* the record is recognised: nothing left to do */
    char records[4096], path[160];
    snprintf(path, sizeof path, "%s/latin1.jsonl", f->dir);
    read_text(path, records, sizeof records);
    CHECK(c, r.exited && r.code == 0 && count_lines(records) == 1 &&
                 strstr(records, "\"path_bytes\":\"photo-%E9t%E9.png\""));
}

/* ---- JSON outputs of names that are not UTF-8 ---------------------------- */

#define REPLACEMENT "\xEF\xBF\xBD" /* U+FFFD in UTF-8 */

/* Well-formed UTF-8 (RFC 3629), judged by decoding each code point: written
 * apart from app/json_utf8.c so that the output is not checked by the code
 * that made it. */
static int is_utf8(const char *text) {
    static const unsigned long least[4] = {0, 0x80, 0x800, 0x10000}; /* below: an overlong form */
    for (const unsigned char *s = (const unsigned char *)text; *s;) {
        int n = *s < 0x80 ? 0 : (*s & 0xE0) == 0xC0 ? 1 : (*s & 0xF0) == 0xE0 ? 2 : (*s & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0) return 0;
        unsigned long code = *s & (n ? 0x3Fu >> n : 0x7Fu);
        for (int i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80) return 0; /* also stops at the NUL */
            code = code << 6 | (s[i] & 0x3Fu);
        }
        if (code < least[n] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
        s += n + 1;
    }
    return 1;
}

/* Each line of text parsed (cJSON_Parse) into records[], after checking that
 * it is valid UTF-8; the count, or -1 when a line is not valid UTF-8 or not
 * JSON (printed), or there are more than max. */
static int parse_json_lines(char *text, cJSON **records, int max) {
    int count = 0;
    for (char *line = text, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        if (!end) end = line + strlen(line) - 1; /* an unterminated last line */
        char saved = end[1];
        end[1] = '\0';
        cJSON *record = count < max && is_utf8(line) ? cJSON_Parse(line) : NULL;
        if (!record) fprintf(stderr, "not a JSON line in valid UTF-8: %s", line);
        end[1] = saved;
        if (!record) return -1;
        records[count++] = record;
        if (!saved) break;
    }
    return count;
}

static int has_string(const cJSON *record, const char *key, const char *value) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(record, key);
    return cJSON_IsString(item) && (!value || strcmp(item->valuestring, value) == 0);
}

/* A record of the file f->dir/name: caf\xe9.png captioned, or the
 * not-utf8-\xff\xfe.png error naming it, each with "path" as text and
 * "path_bytes" exact. */
static int is_caf_record(const cJSON *r) {
    return has_string(r, "path", "caf" REPLACEMENT ".png") && has_string(r, "path_bytes", "caf%E9.png") &&
           has_string(r, "caption", NULL) && !cJSON_GetObjectItemCaseSensitive(r, "error");
}

static int is_garbage_record(const cJSON *r) {
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(r, "error");
    return has_string(r, "path", "not-utf8-" REPLACEMENT REPLACEMENT ".png") &&
           has_string(r, "path_bytes", "not-utf8-%FF%FE.png") && cJSON_IsString(error) &&
           strstr(error->valuestring, "not-utf8-" REPLACEMENT REPLACEMENT ".png") &&
           !cJSON_GetObjectItemCaseSensitive(r, "caption");
}

/* Reads f->dir/name and parses its lines into records[]; the count or -1. */
static int read_json_lines(const Fixture *f, const char *name, cJSON **records, int max) {
    char path[160], text[16384];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    read_text(path, text, sizeof text);
    return parse_json_lines(text, records, max);
}

static void free_records(cJSON **records, int count) {
    for (int i = 0; i < count; i++) cJSON_Delete(records[i]);
}

/* The replacement and escaping themselves, on the cases where decoders have
 * differed: U+FFFD per maximal ill-formed subpart, as Python's
 * bytes.decode("utf-8", "replace") gives (the expected texts are its output). */
static void test_utf8_repair(CheckCounts *c) {
    static const char *const cases[][2] = {
        {"a\xe9" "b", "a" REPLACEMENT "b"},
        {"\xe0\x80\x80", REPLACEMENT REPLACEMENT REPLACEMENT},          /* overlong */
        {"\xed\xa0\x80", REPLACEMENT REPLACEMENT REPLACEMENT},          /* a surrogate */
        {"\xe2\x82x", REPLACEMENT "x"},                                  /* a truncated euro sign */
        {"\xf0\x9f\x98!", REPLACEMENT "!"},                             /* a truncated emoji */
        {"\xf4\x90\x80\x80", REPLACEMENT REPLACEMENT REPLACEMENT REPLACEMENT}, /* above U+10FFFF */
        {"\xc0\xaf\xff\xfe", REPLACEMENT REPLACEMENT REPLACEMENT REPLACEMENT},
        {"caf\xc3\xa9 \xf0\x9f\x98\x80", "caf\xc3\xa9 \xf0\x9f\x98\x80"}, /* valid: kept */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *repaired = utf8_replace_invalid(cases[i][0]);
        CHECK(c, repaired && strcmp(repaired, cases[i][1]) == 0 && is_utf8(repaired));
        CHECK(c, utf8_is_valid(cases[i][0]) == (strcmp(cases[i][0], cases[i][1]) == 0));
        char *escaped = percent_escape(cases[i][0]);
        CHECK(c, escaped && is_utf8(escaped) && percent_unescape(escaped) == 0 && strcmp(escaped, cases[i][0]) == 0);
        free(repaired), free(escaped);
    }
    char *escaped = percent_escape("100% caf\xe9\n.png");
    CHECK(c, escaped && strcmp(escaped, "100%25 caf%E9%0A.png") == 0);
    free(escaped);
    char bad[][8] = {"%", "%4", "%4G", "%00"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) CHECK(c, percent_unescape(bad[i]) == -1);
}

/* caption --json, caption batch (jsonl, --resume, coco, csv) and caption eval
 * on caf\xe9.png (an image) and not-utf8-\xff\xfe.png (not one). */
static void test_json_names(CheckCounts *c, Fixture *f) {
    cJSON *records[8];
    int n;
    Result r;
    char *caption[] = {"caption", "--model", f->model, "--json", "caf\xe9.png", "not-utf8-\xff\xfe.png", NULL};
    run(f, 0, caption, &r);
    CHECK(c, r.exited && r.code == 1 && r.err_lines == 1);
    n = parse_json_lines(r.out, records, 8);
    CHECK(c, n == 1 && is_caf_record(records[0]));
    free_records(records, n);
    char hyps[160];
    snprintf(hyps, sizeof hyps, "%s/names-hyps.jsonl", f->dir);
    write_bytes(hyps, r.out, strlen(r.out));

    char *batch[] = {"caption", "batch", "--model", f->model, "caf\xe9.png", "not-utf8-\xff\xfe.png",
                     "-o", "names.jsonl", NULL, NULL};
    run(f, 0, batch, &r);
    CHECK(c, r.exited && r.code == 1);
    n = read_json_lines(f, "names.jsonl", records, 8); /* taken in byte order: caf\xe9 first */
    CHECK(c, n == 2 && is_caf_record(records[0]) && is_garbage_record(records[1]));
    free_records(records, n);
    batch[8] = "--resume"; /* finds caf\xe9.png done by its exact name; tries the other again */
    run(f, 0, batch, &r);
    n = read_json_lines(f, "names.jsonl", records, 8);
    CHECK(c, r.exited && r.code == 1 && n == 2 && is_caf_record(records[0]) && is_garbage_record(records[1]));
    free_records(records, n);

    char *coco[] = {"caption", "batch", "--model", f->model, "caf\xe9.png", "-o", "names.json", "--format", "coco",
                    NULL};
    run(f, 0, coco, &r);
    char text[16384], path[160];
    snprintf(path, sizeof path, "%s/names.json", f->dir);
    read_text(path, text, sizeof text);
    cJSON *array = is_utf8(text) ? cJSON_Parse(text) : NULL; /* one JSON array over several lines */
    const cJSON *entry = cJSON_GetArrayItem(array, 0);
    CHECK(c, r.exited && r.code == 0 && cJSON_GetArraySize(array) == 1 &&
                 has_string(entry, "image_id", "caf" REPLACEMENT ".png") && has_string(entry, "caption", NULL));
    cJSON_Delete(array);

    char *csv[] = {"caption", "batch", "--model", f->model, "caf\xe9.png", "-o", "names.csv", "--format", "csv", NULL};
    run(f, 0, csv, &r);
    snprintf(path, sizeof path, "%s/names.csv", f->dir);
    read_text(path, text, sizeof text);
    CHECK(c, r.exited && r.code == 0 && strstr(text, "\ncaf\xe9.png,")); /* tables keep the bytes */

    /* caption eval matches the hypothesis to its reference by the exact name. */
    char refs[160];
    snprintf(refs, sizeof refs, "%s/names-refs.txt", f->dir);
    write_bytes(refs, "caf\xe9.png#0\tdog runs\n", strlen("caf\xe9.png#0\tdog runs\n"));
    char *eval[] = {"caption", "eval", "--refs", refs, "--hyps", hyps, "--json", NULL};
    run(f, 0, eval, &r);
    cJSON *scores = cJSON_Parse(r.out);
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(scores, "images");
    CHECK(c, r.exited && r.code == 0 && cJSON_IsNumber(images) && images->valueint == 1);
    cJSON_Delete(scores);

    /* eval --model takes a bundled model's name as the captioning commands
     * do: "default" is found (the dataset is what fails), an unknown name
     * is refused with the names there are, before any dataset is read. */
    char *named[] = {"caption", "eval", "--model", "default", "--data", "no-such-dataset", NULL};
    run(f, 0, named, &r);
    CHECK(c, r.exited && r.code == 1 && strstr(r.err, "dataset no-such-dataset") && !strstr(r.err, "default:"));
    char *unknown[] = {"caption", "eval", "--model", "no-such-model", "--data", "no-such-dataset", NULL};
    run(f, 0, unknown, &r);
    CHECK(c, r.exited && r.code == 1 && strstr(r.err, "--model no-such-model: no such file, and no bundled model of that name") &&
                 !strstr(r.err, "no-such-dataset"));
}

int main(int argc, char **argv) {
    CheckCounts c = {0};
    Fixture f = {.exe = argc > 1 ? argv[1] : NULL};
    if (!f.exe) return fprintf(stderr, "usage: test_inputs CAPTION\n"), 2;
    if (setup(&f) != 0) return fprintf(stderr, "test_inputs: setup failed in %s: %s\n", f.dir, strerror(errno)), 1;
    int root = geteuid() == 0;
    const Case cases[] = {
        {"notes.png", "notes.png", "not an image", 0},
        {"empty.png", "empty.png", "empty (0 bytes)", 0},
        {"folder.png", "folder.png", "is a directory", 0},
        {"loop-a.png", "loop-a.png", "symbolic links", 0},
        {"locked.png", "locked.png", "Permission denied", root},
        {"not-utf8-\xff\xfe.png", "not-utf8-\xff\xfe.png", "not an image", 0},
        {"new\nline.png", "new\\nline.png", "not an image", 0},
        {"good.png", "good.png", "more than the limit of 100 pixels", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const Case *k = &cases[i];
        /* good.png over the limit: caption and batch would fail on it twice (test_max_pixels). */
        int limit = strcmp(k->name, "good.png") == 0;
        const char *max_pixels = limit ? "100" : "67108864";
        check_export(&c, &f, k, max_pixels);
        if (limit) continue;
        if (strcmp(k->name, "folder.png") != 0) check_batch(&c, &f, k, max_pixels); /* batch walks folders */
        check_caption(&c, &f, k, max_pixels);
    }
    test_max_pixels(&c, &f);
    test_non_utf8_image(&c, &f);
    test_utf8_repair(&c);
    test_json_names(&c, &f);
    char command[200];
    snprintf(command, sizeof command, "rm -rf '%s'", f.dir);
    if (c.failed) printf("inputs kept in %s\n", f.dir);
    else if (system(command) != 0) fprintf(stderr, "could not remove %s\n", f.dir);
    return check_summary(&c);
}
