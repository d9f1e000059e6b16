/* The parts of the viewer's frame besides the picture and caption: the
 * status line, the placeholder text, the grid of all words and the keys. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "figure.h"
#include "viewer_internal.h"

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

void viewer_status_text(const Viewer *v, char *left, size_t left_size, char *right, size_t right_size) {
    int n = 0;
    if (v->current >= 0)
        n = snprintf(left, left_size, "%s  (%ld/%zu)  \xc2\xb7  ", base_name(v->files->paths[v->current]),
                     v->current + 1, v->files->count);
    if (n < 0 || (size_t)n >= left_size) n = 0;
#define DOT "  \xc2\xb7  "
    char maps[64] = "";
    const Caption *c = &v->result.caption;
    if (v->has_result && c->head_alpha && v->head < 0)
        snprintf(maps, sizeof maps, DOT "layer %d/%d, heads' mean", v->layer + 1, c->layers);
    else if (v->has_result && c->head_alpha)
        snprintf(maps, sizeof maps, DOT "layer %d/%d, head %d/%d", v->layer + 1, c->layers, v->head + 1, c->heads);
    /* The beam of the caption shown: after `b` the new one is still on its way. */
    int shown_beam = v->has_result ? v->result.beam : v->beam;
    snprintf(left + n, left_size - (size_t)n, "beam %d%s" DOT "%s" DOT "opacity %.2f%s%s%s", shown_beam, maps,
             colormap_name(v->overlay.colormap), (double)v->overlay.opacity, v->overlay_on ? "" : DOT "overlay off",
             v->grid ? DOT "grid" : "", v->playing ? DOT "playing" : "");
#undef DOT
    if (v->message_until) snprintf(right, right_size, "%s", v->message);
    else if (v->pending) snprintf(right, right_size, "captioning with beam %d\xe2\x80\xa6", v->beam);
    else snprintf(right, right_size, "h: keys");
}

Rgb viewer_placeholder_text(const Viewer *v, char *text, size_t size) {
    if (v->failed) {
        snprintf(text, size, "%s", v->failure.message);
        return VIEW_ERROR;
    }
    if (v->pending && v->current >= 0) {
        snprintf(text, size, "captioning %s\xe2\x80\xa6", base_name(v->files->paths[v->current]));
        return VIEW_TEXT;
    }
    if (v->note && *v->note) snprintf(text, size, "%s \xe2\x80\x94 drop an image or a folder here (h: keys)", v->note);
    else snprintf(text, size, "Drop an image or a folder here (h: keys)");
    return VIEW_DIM;
}

/* ---- the grid (g) ----------------------------------------------------------- */

static int render_figure(Viewer *v, int width, int height, Image *out, Error *err) {
    const Caption *c = &v->result.caption;
    size_t n = (size_t)(c->length > 0 ? c->length : 1);
    float *prob = malloc(sizeof *prob * n), *peak = malloc(sizeof *peak * n);
    if (!prob || !peak) {
        free(prob), free(peak);
        return error_set(err, "out of memory");
    }
    for (int k = 0; k < c->length; k++) {
        prob[k] = expf(c->token_logprobs[k]);
        peak[k] = attention_peak(c->alpha + (size_t)k * (size_t)c->cells, c->cells);
    }
    FigureOptions o;
    figure_options_default(&o);
    o.overlay = v->overlay;
    if (!v->overlay_on) o.overlay.opacity = 0.0f;
    o.title = v->result.text, o.show_beta = c->beta != NULL, o.beta = c->beta, o.prob = prob, o.peak = peak;
    o.highlight = v->step + 1; /* ← and → move it */
    const char *const *words = (const char *const *)v->result.words;
    /* Text is rendered at the fitted size, not scaled afterwards. In a small
     * window the numbers under each word would leave thumbnails of a few
     * pixels: then the words alone. */
    int status = figure_fit(&o, &v->result.picture, words, c->length, v->font, width, height, 480, err);
    if (status == 0 && o.panel_height < 64) {
        FigureOptions bare = o;
        bare.show_beta = 0, bare.prob = bare.peak = NULL;
        status = figure_fit(&bare, &v->result.picture, words, c->length, v->font, width, height, 480, err);
        if (bare.panel_height > o.panel_height) o = bare;
    }
    if (status == 0)
        status = figure_render(out, &v->result.picture, words, c->alpha, c->grid_h, c->grid_w, c->length, &o, v->font,
                               err);
    free(prob), free(peak);
    if (status != 0 || (out->width <= width && out->height <= height)) return status;
    /* Even the smallest panels are too big: shrink the pixels. */
    double scale = fmin((double)width / out->width, (double)height / out->height);
    Image small;
    status = image_resize(&small, out, (int)fmax(1, out->width * scale), (int)fmax(1, out->height * scale), err);
    image_free(out);
    if (status == 0) *out = small;
    return status;
}

int viewer_draw_grid(Viewer *v, const ViewMetrics *m, Error *err) {
    int width = v->frame.width - 2 * m->margin;
    int height = v->frame.height - m->margin - m->status_lh - m->gap - m->margin / 2;
    if (width < 1 || height < 1) return 0;
    ViewCache key = {.serial = v->serial, .width = width, .height = height, .step = v->step,
                     .overlay_on = v->overlay_on, .overlay = v->overlay};
    if (!viewer_cache_valid(&v->figure, &key)) {
        Image figure;
        if (render_figure(v, width, height, &figure, err) != 0) return -1;
        image_free(&v->figure.image);
        v->figure = key;
        v->figure.image = figure;
    }
    const Image *f = &v->figure.image;
    draw_blit(&v->frame, f, m->margin + (width - f->width) / 2, m->margin + (height - f->height) / 2);
    return 0;
}

/* ---- the keys (h) ------------------------------------------------------------- */

void viewer_draw_help(Viewer *v, const ViewMetrics *m) {
    static const char *const keys[][2] = {
        {"\xe2\x86\x90  \xe2\x86\x92", "previous / next word (or hover a word)"},
        {"Home  End", "first / last word"},
        {"Space", "play the words as an animation"},
        {"a", "attention overlay on / off"},
        {"+  \xe2\x88\x92", "overlay opacity"},
        {"c", "colormap: viridis, inferno, jet"},
        {"b", "beam width 1 \xe2\x86\x92 3 \xe2\x86\x92 5, captions again"},
        {"l  k", "Transformer: next layer / next head (then the heads' mean)"},
        {"g", "grid of all the words"},
        {"s", "save what is shown as PNG"},
        {"n  p  PgDn  PgUp", "next / previous image"},
        {"drop a file", "open it"},
        {"h", "show / hide these keys"},
        {"q  Esc", "quit"},
    };
    const int count = (int)(sizeof keys / sizeof *keys);
    float px = m->info_px;
    int lh = font_line_height(v->font, px) + m->pad, key_w = 0, what_w = 0;
    for (int i = 0; i < count; i++) {
        int kw = font_text_width(v->font, keys[i][0], px), ww = font_text_width(v->font, keys[i][1], px);
        key_w = kw > key_w ? kw : key_w;
        what_w = ww > what_w ? ww : what_w;
    }
    int pad = 2 * m->gap, w = key_w + what_w + 3 * pad, h = (count + 2) * lh + pad;
    int x = (v->frame.width - w) / 2, y = (v->frame.height - h) / 2;
    draw_shade(&v->frame, 0, 0, v->frame.width, v->frame.height, (Rgb){0, 0, 0}, 0.45f);
    draw_shade(&v->frame, x, y, x + w, y + h, (Rgb){10, 10, 12}, 0.85f);
    draw_rect_outline(&v->frame, x, y, x + w, y + h, 2, VIEW_ACCENT);
    font_draw_text(&v->frame, v->font, "Keys", x + pad, y + pad / 2, m->caption_px, VIEW_ACCENT);
    for (int i = 0; i < count; i++) {
        int row = y + pad / 2 + 2 * lh + i * lh;
        font_draw_text(&v->frame, v->font, keys[i][0], x + pad, row, px, VIEW_ACCENT);
        font_draw_text(&v->frame, v->font, keys[i][1], x + 2 * pad + key_w, row, px, VIEW_TEXT);
    }
}
