#include "bench_setup.h"

#include <cblas.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu.h"
#include "model.h"

#ifndef CAPTION_SOURCE_ASSETS
#define CAPTION_SOURCE_ASSETS "assets"
#endif

/* The files the scratch folder may hold (removed with it). */
static const char *const SCRATCH_FILES[] = {"model.safetensors", "input.f32"};

const char BENCH_RANDOM_MODEL_DESCRIPTION[] =
    "random weights, tools/flickr8k.json architecture (96x96 input, encoder 32s2,64p,128p,256p, embed 256, "
    "hidden 512, additive attention 256, vocabulary 2500; <end> made unlikely so captions run to the "
    "maximum length)";

void bench_setup_defaults(BenchSetup *s, int quick, int threads) {
    *s = (BenchSetup){
        .threads = threads, .quick = quick, .train_batch = 32, .captions_per_image = 5, .words = 12,
        .batch_images = 24, .cnn_repeats = 31, .caption_repeats = 11, .train_steps = 9,
        .sgemm_size = 1024, .sgemm_repeats = 7, .max_length = 30,
    };
    if (quick) {
        s->train_batch = 8, s->batch_images = 2, s->cnn_repeats = 3, s->caption_repeats = 1;
        s->train_steps = 1, s->sgemm_size = 512, s->sgemm_repeats = 2;
    }
}

static int is_jpeg_name(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    char ext[8] = {0};
    for (int i = 0; i < 7 && dot[i + 1]; i++) ext[i] = (char)tolower((unsigned char)dot[i + 1]);
    return strcmp(ext, "jpg") == 0 || strcmp(ext, "jpeg") == 0;
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_jpegs(BenchSetup *s, const char *dir, Error *err) {
    DIR *d = opendir(dir);
    if (!d) return error_set(err, "%s: %s (the bundled example pictures)", dir, strerror(errno));
    struct dirent *entry;
    int capacity = 0;
    while ((entry = readdir(d)) != NULL) {
        if (!is_jpeg_name(entry->d_name)) continue;
        if (s->jpeg_count == capacity) {
            capacity = capacity ? 2 * capacity : 8;
            char **bigger = realloc(s->jpegs, sizeof(char *) * capacity);
            if (!bigger) break;
            s->jpegs = bigger;
        }
        size_t size = strlen(dir) + strlen(entry->d_name) + 2;
        if (!(s->jpegs[s->jpeg_count] = malloc(size))) break;
        snprintf(s->jpegs[s->jpeg_count++], size, "%s/%s", dir, entry->d_name);
    }
    int complete = entry == NULL;
    closedir(d);
    if (!complete) return error_set(err, "out of memory listing %s", dir);
    if (s->jpeg_count == 0) return error_set(err, "%s: no .jpg files for the batch benchmark", dir);
    qsort(s->jpegs, (size_t)s->jpeg_count, sizeof(char *), compare_strings);
    return 0;
}

int bench_setup_inputs(BenchSetup *s, Error *err) {
    static const char examples[] = CAPTION_SOURCE_ASSETS "/examples";
    static const char picture[] = CAPTION_SOURCE_ASSETS "/examples/chelsea.png";
    if (access(picture, R_OK) != 0) return error_set(err, "%s: %s (the latency picture)", picture, strerror(errno));
    s->picture = picture;
    return list_jpegs(s, examples, err);
}

void bench_setup_free(BenchSetup *s) {
    for (int i = 0; i < s->jpeg_count; i++) free(s->jpegs[i]);
    free(s->jpegs);
    s->jpegs = NULL;
    s->jpeg_count = 0;
}

int bench_scratch_create(char *dir, size_t size, Error *err) {
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(dir, size, "%s/caption-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (n < 0 || (size_t)n >= size) return error_set(err, "temporary folder name too long");
    if (!mkdtemp(dir)) return error_set(err, "%s: %s", dir, strerror(errno));
    return 0;
}

const char *bench_scratch_file(const char *dir, const char *name, char *buffer, size_t size) {
    snprintf(buffer, size, "%s/%s", dir, name);
    return buffer;
}

void bench_scratch_remove(const char *dir) {
    char path[4096];
    for (size_t i = 0; i < sizeof SCRATCH_FILES / sizeof SCRATCH_FILES[0]; i++)
        unlink(bench_scratch_file(dir, SCRATCH_FILES[i], path, sizeof path));
    rmdir(dir);
}

int bench_write_random_model(const char *path, Error *err) {
    SatConfig c;
    sat_config_defaults(&c);
    c.image_size = 96;
    snprintf(c.encoder_spec, sizeof c.encoder_spec, "32s2,64p,128p,256p");
    c.vocab_size = 2500, c.embed_dim = 256, c.hidden_dim = 512, c.attention_dim = 256;
    c.score = ATTENTION_ADDITIVE, c.use_attention = 1, c.dropout = 0.5f, c.doubly_stochastic = 0.005f;
    SatModel m;
    if (sat_model_create(&m, &c, NULL, err) != 0) return -1;
    sat_model_init_params(&m, 1);
    /* Random weights give near-uniform words, so <end> would be picked at a
     * random step and C and PyTorch could stop at different lengths; making it
     * unlikely fixes every caption at the maximum length on both sides. */
    m.p.out_bias[TOKEN_END] = -20.0f;
    int status = sat_model_save(&m, path, 0, err);
    sat_model_free(&m);
    return status;
}

/* The value of /proc/cpuinfo's first "key : value" line for key, or fallback. */
static void cpuinfo_field(const char *key, char *value, size_t size, const char *fallback) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(value, size, "%s", fallback);
    size_t length = strlen(key);
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (colon && strncmp(line, key, length) == 0 && (line[length] == ' ' || line[length] == '\t')) {
            snprintf(value, size, "%s", colon + 2);
            value[strcspn(value, "\n")] = '\0';
            break;
        }
    }
    if (f) fclose(f);
}

/* A virtual machine's model name may be just "AMD EPYC": the family and model
 * numbers tell the generation (AMD family 25 = Zen 3/4, Intel family 6 model
 * 85 = Skylake-SP to Cascade Lake). */
static void describe_cpu(char *out, size_t size) {
    char name[128], vendor[32], family[8], model[8];
    cpuinfo_field("model name", name, sizeof name, "unknown CPU");
    cpuinfo_field("vendor_id", vendor, sizeof vendor, "?");
    cpuinfo_field("cpu family", family, sizeof family, "?");
    cpuinfo_field("model", model, sizeof model, "?");
    snprintf(out, size, "%s (%s family %s model %s), %ld CPUs", name, vendor, family, model,
             sysconf(_SC_NPROCESSORS_ONLN));
}

void bench_describe_machine(BenchResults *r) {
    describe_cpu(r->cpu, sizeof r->cpu);
    const char *config = openblas_get_config(), *core = openblas_get_corename();
    snprintf(r->blas, sizeof r->blas, "%s, core %s", config ? config : "?", core ? core : "?");
    cpu_describe_paths(r->paths, sizeof r->paths);
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(r->date, sizeof r->date, "%Y-%m-%d %H:%M UTC", &utc);
}
