/* Smoke test of `caption bench`: a quick run on a random model prints one
 * JSON object with every required key and finite values; the saved JSON
 * renders as markdown and a PNG chart; --latency-only measures only the
 * latencies; usage errors exit 2. Speed goals are
 * the benchmark's business, never checked here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "test_util.h"

static const char *const REQUIRED[] = {
    "cnn_ms",          "caption_ms_beam1",    "caption_ms_beam3",  "batch_img_per_s_1t",
    "batch_img_per_s_2t", "train_img_per_s",  "peak_rss_caption_mb", "peak_rss_train_mb",
    "cnn_gflops",      "sgemm_gflops",
};

/* Runs command; its stdout (up to size - 1 bytes) into out; returns the exit status. */
static int run(const char *command, char *out, size_t size) {
    FILE *p = popen(command, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    return exit_code_of(pclose(p));
}

static void check_json(CheckCounts *c, const char *text) {
    cJSON *root = cJSON_Parse(text);
    CHECK(c, cJSON_IsObject(root));
    for (size_t i = 0; i < sizeof REQUIRED / sizeof REQUIRED[0]; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, REQUIRED[i]);
        int ok = cJSON_IsNumber(item) && isfinite(item->valuedouble) && item->valuedouble > 0.0;
        if (!ok) fprintf(stderr, "missing or not a positive finite number: %s\n", REQUIRED[i]);
        CHECK(c, ok);
    }
    /* A result names its machine and code paths, so it can be read later. */
    const char *texts[] = {"cpu", "blas", "code_paths"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, texts[i]);
        CHECK(c, cJSON_IsString(item) && strlen(item->valuestring) > 5);
    }
    const char *paths = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "code_paths"));
    CHECK(c, paths && strstr(paths, "few-row products") && strstr(paths, "OpenBLAS"));
    /* Without --torch no PyTorch numbers may appear. */
    CHECK(c, cJSON_GetObjectItemCaseSensitive(root, "torch_cnn_ms") == NULL);
    const cJSON *targets = cJSON_GetObjectItemCaseSensitive(root, "targets");
    CHECK(c, cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(targets, "cnn_vs_sgemm")));
    cJSON_Delete(root);
}

static int file_starts_with(const char *path, const char *prefix) {
    char head[32] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(head, 1, sizeof head - 1, f);
    fclose(f);
    return n >= strlen(prefix) && memcmp(head, prefix, strlen(prefix)) == 0;
}

static void check_report(CheckCounts *c, const char *exe, const char *json) {
    char dir[] = "/tmp/test-bench-XXXXXX", command[8192], out[1 << 16];
    if (!mkdtemp(dir)) {
        CHECK(c, !"mkdtemp");
        return;
    }
    char saved[64], chart[64], md[64]; /* dir is 22 characters */
    snprintf(saved, sizeof saved, "%s/results.json", dir);
    snprintf(chart, sizeof chart, "%s/results.png", dir);
    snprintf(md, sizeof md, "%s/results.md", dir);
    FILE *f = fopen(saved, "w");
    CHECK(c, f != NULL);
    if (f) fputs(json, f), fclose(f);
    snprintf(command, sizeof command, "'%s' bench --from '%s' --chart '%s' --markdown '%s'", exe, saved, chart, md);
    CHECK(c, run(command, out, sizeof out) == 0);
    CHECK(c, strstr(out, "C speed-up") != NULL);
    CHECK(c, file_starts_with(chart, "\x89PNG"));
    CHECK(c, file_starts_with(md, "# `caption bench`"));
    unlink(saved), unlink(chart), unlink(md), rmdir(dir);
}

int main(int argc, char **argv) {
    CheckCounts counts = {0}, *c = &counts;
    if (argc < 2) {
        fprintf(stderr, "usage: test_bench CAPTION_EXECUTABLE\n");
        return 2;
    }
    const char *exe = argv[1];
    static char out[1 << 16];
    char command[4096];
    snprintf(command, sizeof command, "'%s' bench --quick --json --random-model 2>/dev/null", exe);
    CHECK(c, run(command, out, sizeof out) == 0);
    check_json(c, out);
    check_report(c, exe, out);
    /* --latency-only: the CNN and the caption latencies, nothing else; the
     * portable switch shows in the code paths. */
    snprintf(command, sizeof command, "CAPTION_PORTABLE=1 '%s' bench --latency-only --json --random-model 2>/dev/null",
             exe);
    CHECK(c, run(command, out, sizeof out) == 0);
    cJSON *latency = cJSON_Parse(out);
    const cJSON *beam3 = cJSON_GetObjectItemCaseSensitive(latency, "caption_ms_beam3");
    CHECK(c, cJSON_IsNumber(beam3) && beam3->valuedouble > 0.0);
    CHECK(c, cJSON_GetObjectItemCaseSensitive(latency, "train_img_per_s") == NULL);
    const char *portable = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(latency, "code_paths"));
    CHECK(c, portable && strstr(portable, "CAPTION_PORTABLE"));
    cJSON_Delete(latency);
    /* --model takes a bundled model's name as the captioning commands do;
     * an unknown name is refused with the names there are. */
    snprintf(command, sizeof command, "'%s' bench --latency-only --json --model default 2>/dev/null", exe);
    CHECK(c, run(command, out, sizeof out) == 0);
    cJSON *named = cJSON_Parse(out);
    const char *model = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(named, "model"));
    CHECK(c, model && strstr(model, "deep-transformer-model.safetensors,") &&
                 strstr(model, "second-transformer-model.safetensors"));
    cJSON_Delete(named);
    /* PyTorch times one model: an ensemble, the default among them, is
     * refused before anything is measured, saying which models to pass. */
    snprintf(command, sizeof command, "'%s' bench --torch 2>&1", exe);
    CHECK(c, run(command, out, sizeof out) == 2 && strstr(out, "the default model is an ensemble") &&
                 strstr(out, "--model lstm"));
    snprintf(command, sizeof command, "'%s' bench --torch --model lstm,lstm 2>&1", exe);
    CHECK(c, run(command, out, sizeof out) == 2 && strstr(out, "lstm,lstm is an ensemble"));
    snprintf(command, sizeof command, "'%s' bench --model no-such-model 2>&1", exe);
    CHECK(c, run(command, out, sizeof out) == 1 && strstr(out, "no such file, and no bundled model of that name"));
    snprintf(command, sizeof command, "'%s' bench --threads 0 2>/dev/null", exe);
    CHECK(c, run(command, out, sizeof out) == 2);
    snprintf(command, sizeof command, "'%s' bench --bogus 2>/dev/null", exe);
    CHECK(c, run(command, out, sizeof out) == 2);
    snprintf(command, sizeof command, "'%s' bench --help", exe);
    CHECK(c, run(command, out, sizeof out) == 0 && strstr(out, "--random-model") != NULL);
    return check_summary(c);
}
