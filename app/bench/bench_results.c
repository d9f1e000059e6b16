#include "bench_results.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bench_report.h"
#include "json_utf8.h"

static const char *const NAMES[BENCH_VALUE_COUNT] = {
    [BENCH_CNN_MS] = "cnn_ms",
    [BENCH_CAPTION_MS_BEAM1] = "caption_ms_beam1",
    [BENCH_CAPTION_MS_BEAM3] = "caption_ms_beam3",
    [BENCH_CAPTION_WORDS_BEAM1] = "caption_words_beam1",
    [BENCH_CAPTION_WORDS_BEAM3] = "caption_words_beam3",
    [BENCH_BATCH_1T] = "batch_img_per_s_1t",
    [BENCH_BATCH_2T] = "batch_img_per_s_2t",
    [BENCH_TRAIN_IMG_PER_S] = "train_img_per_s",
    [BENCH_RSS_CAPTION_MB] = "peak_rss_caption_mb",
    [BENCH_RSS_TRAIN_MB] = "peak_rss_train_mb",
    [BENCH_CNN_GFLOPS] = "cnn_gflops",
    [BENCH_TRAIN_GFLOPS] = "train_gflops",
    [BENCH_SGEMM_GFLOPS] = "sgemm_gflops",
    [BENCH_SGEMM_CONV_GFLOPS] = "sgemm_conv_gflops",
    [BENCH_CNN_MFLOP] = "cnn_mflop_per_image",
    [BENCH_TRAIN_GFLOP_PER_IMAGE] = "train_gflop_per_image",
    [BENCH_CONV_GEMM_M] = "conv_gemm_m",
    [BENCH_CONV_GEMM_N] = "conv_gemm_n",
    [BENCH_CONV_GEMM_K] = "conv_gemm_k",
    [BENCH_SGEMM_SIZE] = "sgemm_size",
    [BENCH_THREADS] = "threads",
    [BENCH_TRAIN_BATCH] = "train_batch",
    [BENCH_TRAIN_REPLICAS] = "train_replicas",
    [BENCH_BATCH_IMAGES] = "batch_images",
    [BENCH_TORCH_CNN_MS] = "torch_cnn_ms",
    [BENCH_TORCH_CAPTION_MS_BEAM3] = "torch_caption_ms_beam3",
    [BENCH_TORCH_CAPTION_WORDS_BEAM3] = "torch_caption_words_beam3",
    [BENCH_TORCH_TRAIN_IMG_PER_S] = "torch_train_img_per_s",
    [BENCH_TORCH_THREADS] = "torch_threads",
};

/* The descriptive strings, by JSON key. */
typedef struct {
    const char *key;
    size_t offset, size;
} TextField;

static const TextField TEXTS[] = {
    {"model", offsetof(BenchResults, model), sizeof(((BenchResults *)0)->model)},
    {"cpu", offsetof(BenchResults, cpu), sizeof(((BenchResults *)0)->cpu)},
    {"blas", offsetof(BenchResults, blas), sizeof(((BenchResults *)0)->blas)},
    {"code_paths", offsetof(BenchResults, paths), sizeof(((BenchResults *)0)->paths)},
    {"torch", offsetof(BenchResults, torch), sizeof(((BenchResults *)0)->torch)},
    {"date", offsetof(BenchResults, date), sizeof(((BenchResults *)0)->date)},
};
enum { TEXT_COUNT = sizeof TEXTS / sizeof TEXTS[0] };

const char *bench_value_name(BenchValue v) { return (unsigned)v < BENCH_VALUE_COUNT ? NAMES[v] : "?"; }

void bench_results_init(BenchResults *r) {
    memset(r, 0, sizeof *r);
    for (int i = 0; i < BENCH_VALUE_COUNT; i++) r->v[i] = NAN;
}

static void add_targets(cJSON *root, const BenchResults *r) {
    BenchTarget targets[BENCH_TARGET_COUNT];
    bench_targets(r, targets);
    cJSON *object = cJSON_AddObjectToObject(root, "targets");
    for (int i = 0; i < BENCH_TARGET_COUNT; i++) {
        const BenchTarget *t = &targets[i];
        cJSON *entry = cJSON_AddObjectToObject(object, t->key);
        if (isfinite(t->value)) cJSON_AddNumberToObject(entry, "value", t->value);
        cJSON_AddStringToObject(entry, "goal", t->goal);
        if (t->met >= 0) cJSON_AddBoolToObject(entry, "met", t->met);
    }
}

char *bench_results_to_json(const BenchResults *r) {
    cJSON *root = cJSON_CreateObject();
    for (int i = 0; i < BENCH_VALUE_COUNT; i++)
        if (isfinite(r->v[i])) cJSON_AddNumberToObject(root, NAMES[i], r->v[i]);
    cJSON_AddBoolToObject(root, "quick", r->quick);
    for (int i = 0; i < TEXT_COUNT; i++)
        cJSON_AddStringToObject(root, TEXTS[i].key, (const char *)r + TEXTS[i].offset);
    add_targets(root, r);
    char *text = json_print_utf8(root); /* the model path may be any bytes */
    cJSON_Delete(root);
    return text;
}

int bench_results_from_json(BenchResults *r, const char *text, Error *err) {
    bench_results_init(r);
    cJSON *root = cJSON_Parse(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return error_set(err, "not a JSON object (expected what `caption bench --json` prints)");
    }
    for (int i = 0; i < BENCH_VALUE_COUNT; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, NAMES[i]);
        if (cJSON_IsNumber(item)) r->v[i] = item->valuedouble;
    }
    r->quick = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "quick"));
    for (int i = 0; i < TEXT_COUNT; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, TEXTS[i].key);
        if (cJSON_IsString(item))
            snprintf((char *)r + TEXTS[i].offset, TEXTS[i].size, "%s", item->valuestring);
    }
    cJSON_Delete(root);
    return 0;
}
