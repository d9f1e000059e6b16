/* bench_write_chart: three horizontal bar charts stacked in one PNG. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench_report.h"
#include "bench_results.h"
#include "plot.h"
#include "text.h"

enum { CHART_WIDTH = 960, PANEL_BARS = 4 };

static const Rgb MET = {46, 139, 87}, MISSED = {200, 55, 45}, PLAIN = {70, 110, 180}, OTHER = {150, 150, 150};

typedef struct {
    char title[128];
    const char *x_label;
    int count;
    char labels[PANEL_BARS][96];
    float values[PANEL_BARS];
    Rgb colors[PANEL_BARS];
} Panel;

static void add_bar(Panel *p, const char *label, double value, Rgb color) {
    snprintf(p->labels[p->count], sizeof p->labels[0], "%s", label);
    p->values[p->count] = (float)value;
    p->colors[p->count] = color;
    p->count++;
}

static Rgb target_color(const BenchTarget *t) { return t->met < 0 ? PLAIN : t->met ? MET : MISSED; }

static void speedup_panel(Panel *p, const BenchResults *r, const BenchTarget *t) {
    snprintf(p->title, sizeof p->title, "C speed-up over PyTorch (green: goal met, red: missed)");
    p->x_label = "times faster than PyTorch";
    add_bar(p, "CNN forward, batch 1", r->v[BENCH_TORCH_CNN_MS] / r->v[BENCH_CNN_MS], PLAIN);
    add_bar(p, "caption beam 3 (goal 3x)", t[1].value, target_color(&t[1]));
    add_bar(p, "training (goal 2x)", t[0].value, target_color(&t[0]));
}

static void gflops_panel(Panel *p, const BenchResults *r, const BenchTarget *t) {
    snprintf(p->title, sizeof p->title, "GFLOPS, %.0f threads", r->v[BENCH_THREADS]);
    p->x_label = "GFLOPS";
    char label[96];
    snprintf(label, sizeof label, "sgemm %.0f^3", r->v[BENCH_SGEMM_SIZE]);
    add_bar(p, label, r->v[BENCH_SGEMM_GFLOPS], OTHER);
    snprintf(label, sizeof label, "sgemm %.0fx%.0fx%.0f (conv)", r->v[BENCH_CONV_GEMM_M], r->v[BENCH_CONV_GEMM_N],
             r->v[BENCH_CONV_GEMM_K]);
    add_bar(p, label, r->v[BENCH_SGEMM_CONV_GFLOPS], OTHER);
    add_bar(p, "CNN forward (goal 60% of sgemm)", r->v[BENCH_CNN_GFLOPS], target_color(&t[2]));
    add_bar(p, "training step", r->v[BENCH_TRAIN_GFLOPS], PLAIN);
}

static void throughput_panel(Panel *p, const BenchResults *r) {
    snprintf(p->title, sizeof p->title, "Throughput");
    p->x_label = "images/s";
    add_bar(p, "caption JPEGs, 1 thread", r->v[BENCH_BATCH_1T], PLAIN);
    add_bar(p, "caption JPEGs, 2 threads", r->v[BENCH_BATCH_2T], PLAIN);
    add_bar(p, "training, C", r->v[BENCH_TRAIN_IMG_PER_S], PLAIN);
    add_bar(p, "training, PyTorch", r->v[BENCH_TORCH_TRAIN_IMG_PER_S], OTHER);
}

static int render_panel(Image *out, const Panel *p, const Font *font, Error *err) {
    const char *labels[PANEL_BARS];
    for (int i = 0; i < p->count; i++) labels[i] = p->labels[i];
    PlotOptions o = {.title = p->title, .x_label = p->x_label, .width = CHART_WIDTH};
    return plot_bars(out, labels, p->values, p->colors, p->count, &o, font, err);
}

/* Copies the panels one under the other into *out. */
static int stack(Image *out, const Image *panels, int count, Error *err) {
    int height = 0;
    for (int i = 0; i < count; i++) {
        if (panels[i].width != CHART_WIDTH || panels[i].channels != 3)
            return error_set(err, "chart panel %d is %dx%dx%d, not %d wide RGB", i, panels[i].width,
                             panels[i].height, panels[i].channels, CHART_WIDTH);
        height += panels[i].height;
    }
    if (image_alloc(out, CHART_WIDTH, height, 3, err) != 0) return -1;
    size_t row = (size_t)CHART_WIDTH * 3, offset = 0;
    for (int i = 0; i < count; i++) {
        memcpy(out->pixels + offset, panels[i].pixels, row * panels[i].height);
        offset += row * panels[i].height;
    }
    return 0;
}

int bench_write_chart(const BenchResults *r, const char *path, Error *err) {
    char font_path[4096];
    Font *font = NULL;
    if (!font_default_path(font_path, sizeof font_path))
        return error_set(err, "no font for the chart (assets/fonts/DejaVuSans.ttf)");
    if (font_load(&font, font_path, err) != 0) return -1;
    BenchTarget t[BENCH_TARGET_COUNT];
    bench_targets(r, t);
    Panel panels[3] = {0};
    speedup_panel(&panels[0], r, t);
    gflops_panel(&panels[1], r, t);
    throughput_panel(&panels[2], r);
    Image images[3] = {0}, chart = {0};
    int status = 0;
    for (int i = 0; i < 3 && status == 0; i++) status = render_panel(&images[i], &panels[i], font, err);
    if (status == 0) status = stack(&chart, images, 3, err);
    if (status == 0) status = image_write_png(&chart, path, err);
    for (int i = 0; i < 3; i++) image_free(&images[i]);
    image_free(&chart);
    font_free(font);
    return status;
}
