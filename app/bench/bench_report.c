#include "bench_report.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *label;
    BenchValue c, torch; /* torch = BENCH_VALUE_COUNT: no PyTorch counterpart */
    int lower_is_better; /* times: the speed-up is PyTorch / C */
    int decimals;
} RowSpec;

static const RowSpec ROWS[] = {
    {"CNN forward, batch 1 (ms)", BENCH_CNN_MS, BENCH_TORCH_CNN_MS, 1, 2},
    {"caption one image, beam 1 (ms)", BENCH_CAPTION_MS_BEAM1, BENCH_VALUE_COUNT, 1, 2},
    {"caption one image, beam 3 (ms)", BENCH_CAPTION_MS_BEAM3, BENCH_TORCH_CAPTION_MS_BEAM3, 1, 2},
    {"  words in the beam-3 caption", BENCH_CAPTION_WORDS_BEAM3, BENCH_TORCH_CAPTION_WORDS_BEAM3, -1, 0},
    {"batch incl. JPEG decode, 1 thread (img/s)", BENCH_BATCH_1T, BENCH_VALUE_COUNT, 0, 1},
    {"batch incl. JPEG decode, 2 threads (img/s)", BENCH_BATCH_2T, BENCH_VALUE_COUNT, 0, 1},
    {"training (img/s)", BENCH_TRAIN_IMG_PER_S, BENCH_TORCH_TRAIN_IMG_PER_S, 0, 2},
    {"peak RSS, captioning one image (MiB)", BENCH_RSS_CAPTION_MB, BENCH_VALUE_COUNT, -1, 1},
    {"peak RSS, one training step (MiB)", BENCH_RSS_TRAIN_MB, BENCH_VALUE_COUNT, -1, 1},
    {"CNN forward (GFLOPS)", BENCH_CNN_GFLOPS, BENCH_VALUE_COUNT, -1, 1},
    {"training step (GFLOPS)", BENCH_TRAIN_GFLOPS, BENCH_VALUE_COUNT, -1, 1},
    {"OpenBLAS sgemm, square (GFLOPS)", BENCH_SGEMM_GFLOPS, BENCH_VALUE_COUNT, -1, 1},
    {"OpenBLAS sgemm, largest conv GEMM (GFLOPS)", BENCH_SGEMM_CONV_GFLOPS, BENCH_VALUE_COUNT, -1, 1},
};
#define ROW_COUNT ((int)(sizeof ROWS / sizeof ROWS[0]))
_Static_assert(sizeof ROWS / sizeof ROWS[0] <= BENCH_ROW_MAX, "BENCH_ROW_MAX too small");

static void format_value(char *out, size_t size, double v, int decimals) {
    if (isfinite(v)) snprintf(out, size, "%.*f", decimals, v);
    else snprintf(out, size, "n/a");
}

int bench_rows(const BenchResults *r, BenchRow rows[BENCH_ROW_MAX]) {
    for (int i = 0; i < ROW_COUNT; i++) {
        const RowSpec *s = &ROWS[i];
        BenchRow *row = &rows[i];
        double c = r->v[s->c], t = s->torch < BENCH_VALUE_COUNT ? r->v[s->torch] : NAN;
        snprintf(row->label, sizeof row->label, "%s", s->label);
        if (s->c == BENCH_TRAIN_IMG_PER_S && isfinite(r->v[BENCH_TRAIN_BATCH]))
            snprintf(row->label, sizeof row->label, "training, batch %.0f%s (img/s)", r->v[BENCH_TRAIN_BATCH],
                     r->v[BENCH_TRAIN_REPLICAS] > 1 ? ", 1 replica per thread" : "");
        if (s->c == BENCH_SGEMM_GFLOPS && isfinite(r->v[BENCH_SGEMM_SIZE]))
            snprintf(row->label, sizeof row->label, "OpenBLAS sgemm %.0f^3 (GFLOPS)", r->v[BENCH_SGEMM_SIZE]);
        if (s->c == BENCH_SGEMM_CONV_GFLOPS && isfinite(r->v[BENCH_CONV_GEMM_K]))
            snprintf(row->label, sizeof row->label, "OpenBLAS sgemm %.0fx%.0fx%.0f, largest conv (GFLOPS)",
                     r->v[BENCH_CONV_GEMM_M], r->v[BENCH_CONV_GEMM_N], r->v[BENCH_CONV_GEMM_K]);
        format_value(row->c, sizeof row->c, c, s->decimals);
        if (s->torch < BENCH_VALUE_COUNT) format_value(row->torch, sizeof row->torch, t, s->decimals);
        else snprintf(row->torch, sizeof row->torch, "-");
        double speedup = s->lower_is_better == 1 ? t / c : s->lower_is_better == 0 ? c / t : NAN;
        if (isfinite(speedup)) snprintf(row->ratio, sizeof row->ratio, "%.2fx", speedup);
        else snprintf(row->ratio, sizeof row->ratio, "-");
    }
    return ROW_COUNT;
}

static void set_target(BenchTarget *t, const char *key, double value, double threshold, int at_least) {
    t->key = key;
    t->value = value;
    t->threshold = threshold;
    t->at_least = at_least;
    t->met = !isfinite(value) ? -1 : at_least ? value >= threshold : value <= threshold;
}

void bench_targets(const BenchResults *r, BenchTarget out[BENCH_TARGET_COUNT]) {
    const double *v = r->v;
    BenchTarget *t = out;
    set_target(&t[0], "train_vs_torch", v[BENCH_TRAIN_IMG_PER_S] / v[BENCH_TORCH_TRAIN_IMG_PER_S], 2.0, 1);
    snprintf(t[0].label, sizeof t[0].label, "training img/s, C / PyTorch");
    snprintf(t[0].goal, sizeof t[0].goal, ">= 2.00x");
    set_target(&t[1], "caption_beam3_vs_torch", v[BENCH_TORCH_CAPTION_MS_BEAM3] / v[BENCH_CAPTION_MS_BEAM3], 3.0, 1);
    snprintf(t[1].label, sizeof t[1].label, "caption beam 3 latency, PyTorch / C");
    snprintf(t[1].goal, sizeof t[1].goal, ">= 3.00x");
    set_target(&t[2], "cnn_vs_sgemm", v[BENCH_CNN_GFLOPS] / v[BENCH_SGEMM_GFLOPS], 0.6, 1);
    snprintf(t[2].label, sizeof t[2].label, "CNN forward GFLOPS / sgemm GFLOPS");
    snprintf(t[2].goal, sizeof t[2].goal, ">= 60%%");
    set_target(&t[3], "peak_rss_caption", v[BENCH_RSS_CAPTION_MB], 100.0, 0);
    snprintf(t[3].label, sizeof t[3].label, "peak RSS captioning one image");
    snprintf(t[3].goal, sizeof t[3].goal, "<= 100 MiB");
    for (int i = 0; i < BENCH_TARGET_COUNT; i++) {
        if (!isfinite(t[i].value)) snprintf(t[i].shown, sizeof t[i].shown, "n/a");
        else if (i == 2) snprintf(t[i].shown, sizeof t[i].shown, "%.0f%%", 100.0 * t[i].value);
        else if (i == 3) snprintf(t[i].shown, sizeof t[i].shown, "%.1f MiB", t[i].value);
        else snprintf(t[i].shown, sizeof t[i].shown, "%.2fx", t[i].value);
    }
}

static const char *met_text(int met) { return met < 0 ? "not measured" : met ? "yes" : "NO"; }

static void print_header(FILE *out, const BenchResults *r, const char *prefix) {
    fprintf(out, "%smodel: %s\n", prefix, r->model);
    fprintf(out, "%smachine: %s; %.0f threads for single-stream timings\n", prefix, r->cpu, r->v[BENCH_THREADS]);
    fprintf(out, "%sBLAS: %s\n", prefix, r->blas);
    if (r->paths[0]) fprintf(out, "%scode paths: %s\n", prefix, r->paths);
    fprintf(out, "%sPyTorch: %s\n", prefix, r->torch);
    fprintf(out, "%smeasured: %s%s\n", prefix, r->date,
            r->quick ? " (--quick: few repeats, small training batch; not for comparison)" : "");
}

void bench_print_table(FILE *out, const BenchResults *r) {
    BenchRow rows[BENCH_ROW_MAX];
    int count = bench_rows(r, rows);
    print_header(out, r, "");
    fprintf(out, "\n%-52s %10s %10s %12s\n", "measurement", "C", "PyTorch", "C speed-up");
    for (int i = 0; i < count; i++)
        fprintf(out, "%-52s %10s %10s %12s\n", rows[i].label, rows[i].c, rows[i].torch, rows[i].ratio);
    BenchTarget targets[BENCH_TARGET_COUNT];
    bench_targets(r, targets);
    fprintf(out, "\n%-52s %10s %12s %12s\n", "target", "measured", "goal", "met");
    for (int i = 0; i < BENCH_TARGET_COUNT; i++)
        fprintf(out, "%-52s %10s %12s %12s\n", targets[i].label, targets[i].shown, targets[i].goal,
                met_text(targets[i].met));
}

/* How the numbers are made, for the markdown report. */
static const char NOTES[] =
    "## How it is measured\n\n"
    "- **CNN forward**: `captioner_encode_only` (`encoder_forward_infer` as captioning runs it, with the second thread when there are 2+ threads), batch 1, batch norm folded, median of repeats.\n"
    "- **Caption latency**: one 224x224 RGB picture already decoded in memory (`assets/examples/chelsea.png`\n"
    "  resized to 224x224): resize to the model's input size, normalise, CNN, then greedy (beam 1) or beam\n"
    "  search (beam 3, at most 30 words); file I/O and PNG decoding excluded; median of repeats. PyTorch starts\n"
    "  from the same normalised tensor (no resize), and runs the same beam search (same stopping rule).\n"
    "- **Batch throughput**: read, JPEG-decode, resize and caption (beam 3) N files (the bundled JPEGs,\n"
    "  cycled), one `CaptionPipeline` per worker thread, OpenBLAS at 1 thread per worker.\n"
    "- **Training**: `sat_forward_backward` + `sat_optimizer_step` (AdamW, clip 5, dropout 0.5, label smoothing\n"
    "  0.1, lambda 0.005: `tools/flickr8k.json`) on random images, 5 captions per image of 12 words + `<end>`;\n"
    "  with 2+ threads the batch is split over one replica per thread (`caption train --replicas N`,\n"
    "  `nn/replica_pool.h`: synchronised batch norm, gradients summed), each running OpenBLAS on one thread;\n"
    "  one warm-up step, then the median of 9 timed steps (1 with --quick). PyTorch: the same model in float32 with autograd,\n"
    "  `torch.optim.AdamW` and `clip_grad_norm_`, on as many threads.\n"
    "- **Peak RSS**: VmHWM of a forked child that does only that job (load the model, decode and caption\n"
    "  one file with beam 3; or load the model, allocate the trainer and run one step), forked before the\n"
    "  benchmark process allocates anything large. Training excludes `caption train`'s decoded-image cache.\n"
    "- **FLOPs** (2 per multiply-add): CNN = sum over conv layers of 2 x C_out x C_in x 9 x H_out x W_out.\n"
    "  Training step = conv forward + conv backward (weight gradient, and input gradient except for the\n"
    "  first layer: 2x forward) + 3 x the decoder's forward matrix products (init_h/init_c, attention\n"
    "  projection, query, scores and context, gate, LSTM W_ih and W_hh, L_h, L_z, L_o per caption and\n"
    "  step; backward = 2x forward). Element-wise work (batch norm, activations, softmax, Adam) is not\n"
    "  counted, so the GFLOPS are a lower bound on the arithmetic done.\n"
    "- **sgemm**: `cblas_sgemm` row-major, no transposes, median of repeats, at the same thread count.\n";

int bench_write_markdown(const BenchResults *r, const char *path, const char *chart, Error *err) {
    FILE *f = fopen(path, "w");
    if (!f) return error_set(err, "%s: %s", path, strerror(errno));
    BenchRow rows[BENCH_ROW_MAX];
    int count = bench_rows(r, rows);
    fprintf(f, "# `caption bench`: C vs PyTorch\n\n");
    print_header(f, r, "- ");
    fprintf(f, "\n| measurement | C | PyTorch | C speed-up |\n|---|---:|---:|---:|\n");
    for (int i = 0; i < count; i++) {
        const char *label = rows[i].label;
        while (*label == ' ') label++;
        fprintf(f, "| %s | %s | %s | %s |\n", label, rows[i].c, rows[i].torch, rows[i].ratio);
    }
    BenchTarget targets[BENCH_TARGET_COUNT];
    bench_targets(r, targets);
    fprintf(f, "\n| target | measured | goal | met |\n|---|---:|---:|:---:|\n");
    for (int i = 0; i < BENCH_TARGET_COUNT; i++)
        fprintf(f, "| %s | %s | %s | %s |\n", targets[i].label, targets[i].shown, targets[i].goal,
                met_text(targets[i].met));
    if (chart) {
        const char *name = strrchr(chart, '/');
        fprintf(f, "\n![C vs PyTorch, GFLOPS and throughput](%s)\n", name ? name + 1 : chart);
    }
    fprintf(f, "\n%s", NOTES);
    if (fclose(f) != 0) return error_set(err, "%s: %s", path, strerror(errno));
    return 0;
}
