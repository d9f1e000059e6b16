/* Faults through the built executable: kill -9 and a full disk.
 *  - `caption batch` on 40 images is killed with SIGKILL at random moments,
 *    five times, each time followed by --resume: in the end every image
 *    appears exactly once, with the caption an uninterrupted run gives, and
 *    no torn line remains;
 *  - `caption train` (tiny shapes model, --checkpoint-every 2) is killed the
 *    same way and resumed, with a torn row added to steps.csv as a kill can
 *    leave it: steps.csv then holds exactly the (step, loss) rows of an
 *    uninterrupted run;
 *  - a full disk (RLIMIT_FSIZE, which fails a write just like one) while
 *    batch appends records: exit 1 naming the file, the records before it
 *    intact, and --resume completes the file; while training writes a
 *    checkpoint: exit 1 with the reason, the previous checkpoint byte for
 *    byte, no temporary file left.
 * The random delays come from a seed printed first (CAPTION_FAULTS_SEED
 * repeats a run). */
#include <cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "image.h"
#include "model.h"
#include "shapes.h"
#include "test_util.h"

enum { IMAGES = 40, KILL_ROUNDS = 5, TRAIN_KILL_ROUNDS = 3 };
static const char *const VOCAB[] = {"<pad>", "<start>", "<end>", "<unk>", "dog", "runs", "red", "ball"};

typedef struct {
    const char *exe;
    char dir[64];
    uint64_t rng;
} Fixture;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* xorshift64: reproducible from the printed seed. */
static double uniform(Fixture *f) {
    f->rng ^= f->rng << 13, f->rng ^= f->rng >> 7, f->rng ^= f->rng << 17;
    return (double)(f->rng >> 11) / 9007199254740992.0;
}

/* Starts argv (argv[0] ignored: the caption executable) with stderr to
 * err_path; file_limit > 0 caps the size of any file it writes. */
static pid_t start(const Fixture *f, char *const argv[], const char *err_path, long file_limit) {
    pid_t child = fork();
    if (child == 0) {
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644), null = open("/dev/null", O_WRONLY);
        dup2(null, 1), dup2(err, 2);
        if (chdir(f->dir) != 0) _exit(120);
        if (file_limit > 0) {
            signal(SIGXFSZ, SIG_IGN); /* then a write past the limit fails with EFBIG, as on a full disk */
            struct rlimit limit = {(rlim_t)file_limit, (rlim_t)file_limit};
            setrlimit(RLIMIT_FSIZE, &limit);
        }
        execv(f->exe, argv);
        _exit(122);
    }
    return child;
}

static int run(const Fixture *f, char *const argv[], const char *err_path, long file_limit) {
    return wait_exit_code(start(f, argv, err_path, file_limit));
}

static void kill_after(pid_t child, double ms) {
    usleep((useconds_t)(ms * 1000.0));
    kill(child, SIGKILL);
    wait_exit_code(child);
}

static int contains(const char *path, const char *phrase) {
    char *text = read_whole_file(path, NULL);
    int found = text && strstr(text, phrase);
    if (!found) fprintf(stderr, "expected \"%s\" in %s: %s\n", phrase, path, text ? text : "(missing)");
    free(text);
    return found;
}

/* ---- caption batch ------------------------------------------------------------ */

static int make_model(const char *path) {
    SatConfig c;
    sat_config_defaults(&c);
    c.image_size = 16;
    snprintf(c.encoder_spec, sizeof c.encoder_spec, "4,6p,8p");
    c.vocab_size = 8, c.embed_dim = 5, c.hidden_dim = 7, c.attention_dim = 4;
    SatModel m;
    Error err;
    int status = sat_model_create(&m, &c, VOCAB, &err);
    if (status == 0) {
        sat_model_init_params(&m, 19);
        for (long i = 0; i < 5 * 8; i++) m.p.out_context_weight[i] *= 20.0f; /* captions that differ */
        status = sat_model_save(&m, path, 0, &err);
        sat_model_free(&m);
    }
    if (status != 0) fprintf(stderr, "%s\n", err.message);
    return status;
}

static int make_images(const char *dir) {
    for (int n = 0; n < IMAGES; n++) {
        Image img;
        Error err;
        char path[200];
        if (image_alloc(&img, 16 + n, 12 + n % 7, 3, &err) != 0) return -1;
        uint32_t state = 2166136261u + (uint32_t)n * 16777619u;
        for (size_t i = 0; i < (size_t)img.width * img.height * 3; i++) {
            state = state * 1664525u + 1013904223u;
            img.pixels[i] = (unsigned char)(state >> 24);
        }
        snprintf(path, sizeof path, "%s/img-%02d.png", dir, n);
        int status = image_write_png(&img, path, &err);
        image_free(&img);
        if (status != 0) return -1;
    }
    return 0;
}

typedef struct {
    char *path[IMAGES * 2];
    char *caption[IMAGES * 2];
    int count;
    int torn; /* a last line without its newline */
    int invalid; /* lines that are not caption records */
} Records;

static void records_free(Records *r) {
    for (int i = 0; i < r->count; i++) free(r->path[i]), free(r->caption[i]);
    memset(r, 0, sizeof *r);
}

static void read_records(const char *path, Records *r) {
    memset(r, 0, sizeof *r);
    char *text = read_whole_file(path, NULL);
    for (char *line = text; line && *line;) {
        char *newline = strchr(line, '\n');
        if (!newline) {
            r->torn = 1;
            break;
        }
        *newline = '\0';
        cJSON *record = cJSON_Parse(line);
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(record, "path");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(record, "caption");
        if (cJSON_IsString(p) && cJSON_IsString(c) && r->count < IMAGES * 2) {
            r->path[r->count] = strdup(p->valuestring);
            r->caption[r->count++] = strdup(c->valuestring);
        } else {
            r->invalid++;
        }
        cJSON_Delete(record);
        line = newline + 1;
    }
    free(text);
}

/* Every image exactly once, with the reference caption, and nothing else. */
static int same_records(const Records *got, const Records *want) {
    if (got->torn || got->invalid || got->count != want->count) {
        fprintf(stderr, "records: %d (want %d), torn %d, invalid %d\n", got->count, want->count, got->torn, got->invalid);
        return 0;
    }
    for (int i = 0; i < want->count; i++) {
        int found = 0;
        for (int j = 0; j < got->count; j++)
            if (strcmp(got->path[j], want->path[i]) == 0) found += strcmp(got->caption[j], want->caption[i]) == 0 ? 1 : 100;
        if (found != 1) return fprintf(stderr, "%s: %d records (or a different caption)\n", want->path[i], found), 0;
    }
    return 1;
}

static void test_batch_kills(CheckCounts *c, Fixture *f, const Records *want, double full_ms) {
    for (int round = 0; round < KILL_ROUNDS; round++) {
        char *argv[] = {"caption", "batch", "images", "--model", "model.safetensors", "--threads", "2",
                        "-o", "killed.jsonl", round > 0 ? "--resume" : NULL, NULL};
        double delay = uniform(f) * full_ms;
        printf("batch round %d: SIGKILL after %.1f ms\n", round + 1, delay);
        kill_after(start(f, argv, "batch-kill.txt", 0), delay);
    }
    char *argv[] = {"caption", "batch", "images", "--model", "model.safetensors", "-o", "killed.jsonl", "--resume", NULL};
    CHECK(c, run(f, argv, "batch-kill.txt", 0) == 0);
    Records got;
    read_records("killed.jsonl", &got);
    CHECK(c, same_records(&got, want));
    records_free(&got);
}

/* The file size limit stops the run part-way, as a full disk would. */
static void test_batch_disk_full(CheckCounts *c, Fixture *f, const Records *want, long full_size) {
    char *argv[] = {"caption", "batch", "images", "--model", "model.safetensors", "-o", "full.jsonl", NULL};
    CHECK(c, run(f, argv, "batch-full.txt", full_size / 2) == 1);
    CHECK(c, contains("batch-full.txt", "full.jsonl") && contains("batch-full.txt", "--resume will complete"));
    Records partial;
    read_records("full.jsonl", &partial);
    printf("disk full: %d whole records kept, torn tail %d\n", partial.count, partial.torn);
    CHECK(c, partial.invalid == 0 && partial.count > 0 && partial.count < IMAGES);
    records_free(&partial);
    char *resume[] = {"caption", "batch", "images", "--model", "model.safetensors", "-o", "full.jsonl", "--resume", NULL};
    CHECK(c, run(f, resume, "batch-full.txt", 0) == 0);
    Records got;
    read_records("full.jsonl", &got);
    CHECK(c, same_records(&got, want));
    records_free(&got);
}

static void test_batch(CheckCounts *c, Fixture *f) {
    char *argv[] = {"caption", "batch", "images", "--model", "model.safetensors", "-o", "reference.jsonl", NULL};
    double t0 = now_ms();
    CHECK(c, run(f, argv, "batch-reference.txt", 0) == 0);
    double full_ms = now_ms() - t0;
    Records want;
    read_records("reference.jsonl", &want);
    CHECK(c, want.count == IMAGES && !want.torn && !want.invalid);
    size_t size = 0;
    free(read_whole_file("reference.jsonl", &size));
    printf("uninterrupted batch: %.0f ms, %d records\n", full_ms, want.count);
    test_batch_kills(c, f, &want, full_ms);
    test_batch_disk_full(c, f, &want, (long)size);
    records_free(&want);
}

/* ---- caption train ------------------------------------------------------------ */

typedef struct {
    char rows[64][64]; /* "step,loss" */
    int count;
} Losses;

static void read_losses(const char *path, Losses *out) {
    char *text = read_whole_file(path, NULL);
    out->count = 0;
    for (char *line = text ? strchr(text, '\n') : NULL; line && line[1] && out->count < 64;) {
        line++;
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        /* step,epoch,batch,loss,... -> "step,loss" */
        char *fields[4] = {line, NULL, NULL, NULL};
        for (int i = 1; i < 4 && fields[i - 1]; i++) fields[i] = strchr(fields[i - 1], ',') ? strchr(fields[i - 1], ',') + 1 : NULL;
        if (fields[3]) {
            size_t step = strcspn(fields[0], ","), loss = strcspn(fields[3], ",");
            snprintf(out->rows[out->count++], sizeof out->rows[0], "%.*s,%.*s", (int)step, fields[0], (int)loss, fields[3]);
        }
        line = end;
    }
    free(text);
}

static int same_losses(const Losses *a, const Losses *b) {
    int same = a->count == b->count && a->count > 0;
    for (int i = 0; same && i < a->count; i++) same = strcmp(a->rows[i], b->rows[i]) == 0;
    if (!same) {
        fprintf(stderr, "steps.csv differs: %d rows against %d\n", a->count, b->count);
        for (int i = 0; i < a->count || i < b->count; i++)
            fprintf(stderr, "  %-24s %s\n", i < a->count ? a->rows[i] : "", i < b->count ? b->rows[i] : "");
    }
    return same;
}

/* The options of tests/test_train.c's small run, checkpoints every 2 steps. */
static void train_argv(char **argv, const char *data, const char *out, const char *stop_at) {
    const char *fixed[] = {"caption", "train", "--data", data, "--out", out, "--image-size", "32", "--encoder", "8,16p,16p",
                           "--embed", "16", "--hidden", "32", "--attention-dim", "16", "--batch", "16", "--epochs", "3",
                           "--min-count", "1", "--checkpoint-every", "2", "--warmup-steps", "2", "--lr", "0.01",
                           "--eval-beam", "1", "--threads", "1", "--dropout", "0.2", "--patience", "0", "--stop-at-step",
                           stop_at, NULL};
    for (int i = 0;; i++)
        if (!(argv[i] = (char *)fixed[i])) break;
}

static int wait_for_file(const char *path, double timeout_ms) {
    double until = now_ms() + timeout_ms;
    while (access(path, F_OK) != 0 && now_ms() < until) usleep(2000);
    return access(path, F_OK) == 0;
}

static void test_train_kills(CheckCounts *c, Fixture *f, const char *data, const Losses *want, double full_ms) {
    char *argv[64];
    train_argv(argv, data, "killed", "0");
    pid_t child = start(f, argv, "train-kill.txt", 0);
    CHECK(c, wait_for_file("killed/checkpoint.safetensors", 120000.0));
    for (int round = 0; round < TRAIN_KILL_ROUNDS; round++) {
        double delay = uniform(f) * full_ms / 2;
        printf("train round %d: SIGKILL after %.1f ms\n", round + 1, delay);
        kill_after(child, delay);
        char *resume[] = {"caption", "train", "--resume", "killed/checkpoint.safetensors", NULL};
        if (round + 1 < TRAIN_KILL_ROUNDS) child = start(f, resume, "train-kill.txt", 0);
    }
    /* stdio writes steps.csv in blocks, so a kill can leave a torn row; its
     * "1" must not pass for step 1 and run into the next row. */
    FILE *steps = fopen("killed/steps.csv", "a");
    if (steps) fputs("1", steps), fclose(steps);
    char *resume[] = {"caption", "train", "--resume", "killed/checkpoint.safetensors", NULL};
    CHECK(c, run(f, resume, "train-kill.txt", 0) == 0);
    Losses got;
    read_losses("killed/steps.csv", &got);
    CHECK(c, same_losses(&got, want));
}

static int count_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    int count = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) count += strstr(e->d_name, ".tmp") != NULL;
    if (d) closedir(d);
    return count;
}

/* A checkpoint write that hits the size limit fails with the reason and
 * leaves the previous checkpoint as it was. */
static void test_train_disk_full(CheckCounts *c, Fixture *f, const char *data, const Losses *want) {
    char *argv[64];
    train_argv(argv, data, "full", "4");
    CHECK(c, run(f, argv, "train-full.txt", 0) == 0);
    size_t before_size = 0, after_size = 0;
    char *before = read_whole_file("full/checkpoint.safetensors", &before_size);
    char *resume[] = {"caption", "train", "--resume", "full/checkpoint.safetensors", "--stop-at-step", "0", NULL};
    /* Half a checkpoint: the next checkpoint (step 6) fails, whatever its exact
     * size; the model files (a third of it) and the logs would still fit. */
    CHECK(c, before && run(f, resume, "train-full.txt", (long)before_size / 2) == 1);
    CHECK(c, contains("train-full.txt", "checkpoint.safetensors") && contains("train-full.txt", "unchanged"));
    char *after = read_whole_file("full/checkpoint.safetensors", &after_size);
    CHECK(c, before && after && before_size == after_size && memcmp(before, after, before_size) == 0);
    CHECK(c, count_temporaries("full") == 0);
    free(before), free(after);
    CHECK(c, run(f, resume, "train-full.txt", 0) == 0); /* and it still resumes exactly */
    Losses got;
    read_losses("full/steps.csv", &got);
    CHECK(c, same_losses(&got, want));
}

static void test_train(CheckCounts *c, Fixture *f) {
    char data[128];
    snprintf(data, sizeof data, "%s/shapes", f->dir);
    ShapesOptions shapes;
    shapes_options_default(&shapes);
    Error err;
    CHECK(c, shapes_write_dataset(data, 96, 16, 5, &shapes, &err) == 0);
    char *argv[64];
    train_argv(argv, data, "reference", "0");
    double t0 = now_ms();
    CHECK(c, run(f, argv, "train-reference.txt", 0) == 0);
    double full_ms = now_ms() - t0;
    Losses want;
    read_losses("reference/steps.csv", &want);
    printf("uninterrupted training: %.0f ms, %d steps\n", full_ms, want.count);
    CHECK(c, want.count == 18);
    test_train_kills(c, f, data, &want, full_ms);
    test_train_disk_full(c, f, data, &want);
}

int main(int argc, char **argv) {
    CheckCounts c = {0};
    Fixture f = {.exe = argc > 1 ? argv[1] : NULL};
    if (!f.exe) return fprintf(stderr, "usage: test_faults CAPTION\n"), 2;
    const char *seed = getenv("CAPTION_FAULTS_SEED");
    f.rng = seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    if (f.rng == 0) f.rng = 1;
    printf("seed %llu (CAPTION_FAULTS_SEED repeats this run)\n", (unsigned long long)f.rng);
    snprintf(f.dir, sizeof f.dir, "/tmp/caption-test-faults-XXXXXX");
    char images[128], model[128];
    if (!mkdtemp(f.dir)) return perror("mkdtemp"), 1;
    snprintf(images, sizeof images, "%s/images", f.dir);
    snprintf(model, sizeof model, "%s/model.safetensors", f.dir);
    if (mkdir(images, 0755) != 0 || make_images(images) != 0 || make_model(model) != 0 || chdir(f.dir) != 0)
        return fprintf(stderr, "test_faults: setup failed in %s\n", f.dir), 1;
    test_batch(&c, &f);
    test_train(&c, &f);
    char command[200];
    snprintf(command, sizeof command, "rm -rf '%s'", f.dir);
    if (c.failed) printf("the files are in %s\n", f.dir);
    else if (system(command) != 0) fprintf(stderr, "could not remove %s\n", f.dir);
    return check_summary(&c);
}
