/* Drawing the viewer's frame: everything the window shows is composed into
 * one RGB Image (v->frame) and uploaded as one texture, so `s` can save
 * exactly what is on screen. The picture part is overlay_attention on the
 * picture resized to its display size: the same renderer `caption export`
 * uses, so the same settings give the same pixels. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "figure.h"
#include "viewer_draw.h"
#include "viewer_internal.h"

/* ---- caches -------------------------------------------------------------- */

int viewer_cache_valid(const ViewCache *c, const ViewCache *key) {
    const OverlayOptions *a = &c->overlay, *b = &key->overlay;
    return c->image.pixels && c->serial == key->serial && c->width == key->width && c->height == key->height &&
           c->step == key->step && c->overlay_on == key->overlay_on && a->colormap == b->colormap &&
           a->opacity == b->opacity && a->sigma == b->sigma && a->normalize == b->normalize;
}

static void cache_store(ViewCache *c, const ViewCache *key, Image image) {
    image_free(&c->image);
    *c = *key;
    c->image = image;
}

void viewer_render_free(Viewer *v) {
    image_free(&v->scaled.image);
    image_free(&v->overlaid.image);
    image_free(&v->figure.image);
    image_free(&v->frame);
    free(v->word_boxes);
    v->word_boxes = NULL;
    v->word_box_count = 0;
}

/* ---- the picture ----------------------------------------------------------- */

static const float *step_alpha(const Viewer *v) {
    const Caption *c = &v->result.caption;
    if (!c->alpha || v->step < 0 || v->step >= c->length) return NULL;
    return c->alpha + (size_t)v->step * (size_t)c->cells;
}

/* The picture at its display size, with the current word's attention over
 * it when the overlay is on. */
static const Image *picture_at(Viewer *v, int width, int height, Error *err) {
    ViewCache key = {.serial = v->serial, .width = width, .height = height};
    if (!viewer_cache_valid(&v->scaled, &key)) {
        Image scaled;
        if (image_resize(&scaled, &v->result.picture, width, height, err) != 0) return NULL;
        cache_store(&v->scaled, &key, scaled);
    }
    const float *alpha = step_alpha(v);
    if (!v->overlay_on || !alpha) return &v->scaled.image;
    key.step = v->step, key.overlay_on = 1, key.overlay = v->overlay;
    if (!viewer_cache_valid(&v->overlaid, &key)) {
        const Caption *c = &v->result.caption;
        Image out;
        if (overlay_attention(&out, &v->scaled.image, alpha, c->grid_h, c->grid_w, &v->overlay, err) != 0)
            return NULL;
        cache_store(&v->overlaid, &key, out);
    }
    return &v->overlaid.image;
}

static int draw_picture(Viewer *v, ViewRect area, Error *err) {
    const Image *p = &v->result.picture;
    double scale = fmin((double)area.w / p->width, (double)area.h / p->height);
    int w = (int)lround(p->width * scale), h = (int)lround(p->height * scale);
    if (w < 1 || h < 1) return 0; /* a window too small to show anything */
    const Image *shown = picture_at(v, w, h, err);
    if (!shown) return -1;
    v->picture_rect = (ViewRect){area.x + (area.w - w) / 2, area.y + (area.h - h) / 2, w, h};
    draw_blit(&v->frame, shown, v->picture_rect.x, v->picture_rect.y);
    return 0;
}

/* A picture shown much larger than it is looks like a blurry photo: say so. */
static void draw_enlargement_note(Viewer *v, const ViewMetrics *m) {
    const Image *p = &v->result.picture;
    const ViewRect *r = &v->picture_rect;
    double scale = r->w > 0 ? (double)r->w / p->width : 0.0;
    if (scale < 4.0) return;
    char text[96];
    snprintf(text, sizeof text, "%d\xc3\x97%d pixels, shown %.0f\xc3\x97", p->width, p->height, scale);
    int w = font_text_width(v->font, text, m->info_px) + 2 * m->pad, h = m->info_lh + m->pad;
    draw_shade(&v->frame, r->x, r->y, r->x + w, r->y + h, (Rgb){0, 0, 0}, 0.6f);
    font_draw_text(&v->frame, v->font, text, r->x + m->pad, r->y + m->pad / 2, m->info_px, VIEW_TEXT);
}

/* ---- the caption -------------------------------------------------------- */

/* Places the words in centred lines max_width wide, tops from y = 0, into
 * v->word_boxes (the highlight rectangles, also what hovering hits).
 * Returns the number of lines. */
static int layout_words(Viewer *v, const ViewMetrics *m, int max_width) {
    const Caption *c = &v->result.caption;
    ViewRect *boxes = realloc(v->word_boxes, sizeof *boxes * (size_t)(c->length > 0 ? c->length : 1));
    if (!boxes) return v->word_box_count = 0;
    v->word_boxes = boxes;
    v->word_box_count = c->length;
    int space = font_text_width(v->font, " ", m->caption_px); /* between highlight boxes */
    int x = 0, line = 0, line_start = 0;
    for (int k = 0; k <= c->length; k++) {
        int w = k < c->length ? font_text_width(v->font, v->result.words[k], m->caption_px) + 2 * m->pad : 0;
        if (k == c->length || (x > 0 && x + w > max_width)) {
            int shift = (max_width - (x - space)) / 2; /* centre the finished line */
            for (int j = line_start; j < k; j++) boxes[j].x += shift > 0 ? shift : 0;
            if (k == c->length) break;
            line++, x = 0, line_start = k;
        }
        boxes[k] = (ViewRect){x, line * m->caption_advance, w, m->caption_lh + m->pad};
        x += w + space;
    }
    return line + 1;
}

static void draw_words(Viewer *v, const ViewMetrics *m, int x0, int y0) {
    for (int k = 0; k < v->word_box_count; k++) {
        ViewRect *b = &v->word_boxes[k];
        b->x += x0, b->y += y0;
        int current = k == v->step;
        if (current) draw_fill_rect(&v->frame, b->x, b->y, b->x + b->w, b->y + b->h, VIEW_ACCENT);
        font_draw_text(&v->frame, v->font, v->result.words[k], b->x + m->pad, b->y + m->pad / 2, m->caption_px,
                       current ? VIEW_ON_ACCENT : VIEW_TEXT);
    }
    /* A caption cut at --max-length does not look finished. */
    if (!v->result.caption.finished && v->word_box_count > 0) {
        const ViewRect *last = &v->word_boxes[v->word_box_count - 1];
        font_draw_text(&v->frame, v->font, "\xe2\x80\xa6", last->x + last->w, last->y + m->pad / 2, m->caption_px,
                       VIEW_DIM);
    }
}

/* "word 2 of 7   probability 0.93 ▆▆▆   β 0.81 ▆▆▆ (how much it looks at the image)
 *  peak 0.09 (uniform 0.03)", with less as the window narrows: detail 3 is all
 * of it, 2 without the explanations, 1 without "word 2 of 7", 0 without the
 * bars. draw = 0 only measures; returns the x after the last piece. */
static int info_pieces(Viewer *v, const ViewMetrics *m, int x, int y, int draw, int detail) {
    const Caption *c = &v->result.caption;
    Image *f = draw ? &v->frame : NULL;
    char text[64];
    int gap = 2 * m->status_px;
    if (detail >= 2) {
        snprintf(text, sizeof text, "word %d of %d", v->step + 1, c->length);
        x = draw_text_at(f, v->font, text, x, y, m->info_px, VIEW_DIM) + gap;
    }
    float p = expf(c->token_logprobs[v->step]);
    snprintf(text, sizeof text, "probability %.2f", (double)p);
    x = draw_text_at(f, v->font, text, x, y, m->info_px, VIEW_TEXT) + m->pad;
    if (detail >= 1) x = draw_bar(f, x, y, m, p, VIEW_ACCENT);
    x += gap;
    if (c->beta && !c->head_alpha) { /* a gate: not a bottleneck, not a Transformer */
        snprintf(text, sizeof text, "\xce\xb2 %.2f", (double)c->beta[v->step]);
        x = draw_text_at(f, v->font, text, x, y, m->info_px, VIEW_TEXT) + m->pad;
        if (detail >= 1) x = draw_bar(f, x, y, m, c->beta[v->step], VIEW_BETA);
        if (detail >= 3)
            x = draw_text_at(f, v->font, "(how much it looks at the image)", x + m->pad, y, m->info_px, VIEW_DIM);
        x += gap;
    }
    const float *alpha = step_alpha(v);
    if (!alpha) return x - gap;
    /* The colours are scaled per word: the peak tells focus from noise. */
    snprintf(text, sizeof text, "peak %.2f", (double)attention_peak(alpha, c->cells));
    x = draw_text_at(f, v->font, text, x, y, m->info_px, VIEW_TEXT);
    if (detail < 3) return x;
    snprintf(text, sizeof text, "(uniform %.3f)", 1.0 / c->cells);
    return draw_text_at(f, v->font, text, x + m->pad, y, m->info_px, VIEW_DIM);
}

static void draw_info(Viewer *v, const ViewMetrics *m, int y) {
    const Caption *c = &v->result.caption;
    const char *note = c->length == 0 ? "the model said nothing (an empty caption)"
                       : !c->alpha    ? "a bottleneck model: no attention maps to show"
                                      : NULL;
    if (note) {
        draw_text_centered(&v->frame, v->font, note, v->frame.width / 2, y, m->info_px, VIEW_DIM);
        if (c->length == 0) return;
        y += m->info_lh;
    }
    if (v->step < 0 || v->step >= c->length) return;
    int detail = 3, room = v->frame.width - 2 * m->margin;
    while (detail > 0 && info_pieces(v, m, 0, y, 0, detail) > room) detail--;
    int width = info_pieces(v, m, 0, y, 0, detail);
    info_pieces(v, m, (v->frame.width - width) / 2, y, 1, detail);
}

/* ---- the whole frame ---------------------------------------------------------- */

static void draw_status(Viewer *v, const ViewMetrics *m) {
    char left[1024], right[600];
    int y = v->frame.height - m->margin / 2 - m->status_lh;
    viewer_status_text(v, left, sizeof left, right, sizeof right);
    if (v->scripted) { /* tests read what the status line says */
        char line[sizeof v->last_status];
        snprintf(line, sizeof line, "%s | %s", left, right);
        if (strcmp(line, v->last_status) != 0) {
            fprintf(stderr, "caption view: status: %s\n", line);
            memcpy(v->last_status, line, sizeof line);
        }
    }
    /* Both parts fit, elided with "\u2026" if need be and never overlapping: the
     * right one (keys, messages) keeps up to half the line, the left one the rest. */
    int room = v->frame.width - 2 * m->margin, gap = 2 * m->status_lh;
    char left_shown[1100], right_shown[700];
    elide_text(v->font, right, m->status_px, room / 2, right_shown, sizeof right_shown);
    int right_w = font_text_width(v->font, right_shown, m->status_px);
    elide_text(v->font, left, m->status_px, room - right_w - gap, left_shown, sizeof left_shown);
    draw_text_at(&v->frame, v->font, left_shown, m->margin, y, m->status_px, VIEW_DIM);
    Rgb color = v->message_until ? VIEW_ACCENT : VIEW_DIM;
    draw_text_at(&v->frame, v->font, right_shown, v->frame.width - m->margin - right_w, y, m->status_px, color);
}

/* The picture, the caption under it and the numbers of the current word. */
static int draw_main(Viewer *v, const ViewMetrics *m, Error *err) {
    int width = v->frame.width, status_top = v->frame.height - m->margin / 2 - m->status_lh;
    int lines = v->has_result ? layout_words(v, m, width - 2 * m->margin) : 1;
    int info_lines = v->has_result && !v->result.caption.alpha ? 2 : 1;
    int info_y = status_top - m->gap - info_lines * m->info_lh;
    int caption_y = info_y - m->gap - lines * m->caption_advance;
    ViewRect area = {m->margin, m->margin, width - 2 * m->margin, caption_y - m->gap - m->margin};
    v->picture_rect = (ViewRect){0, 0, 0, 0};
    if (v->has_result) {
        draw_words(v, m, m->margin, caption_y);
        draw_info(v, m, info_y);
        if (area.w < 1 || area.h < 1) return 0;
        if (draw_picture(v, area, err) != 0) return -1;
        draw_enlargement_note(v, m);
        return 0;
    }
    v->word_box_count = 0;
    char text[1200];
    Rgb color = viewer_placeholder_text(v, text, sizeof text);
    draw_wrapped(&v->frame, v->font, text, area.x, area.y, area.w, area.h, m->caption_px, color);
    return 0;
}

int viewer_compose(Viewer *v, int width, int height, Error *err) {
    if (v->frame.width != width || v->frame.height != height) {
        image_free(&v->frame);
        if (image_alloc(&v->frame, width, height, 3, err) != 0) return -1;
    }
    draw_fill(&v->frame, VIEW_BACKGROUND);
    ViewMetrics m = view_metrics(v->font, width, height);
    int status = 0;
    if (v->grid && v->has_result && v->result.caption.alpha) {
        v->word_box_count = 0;
        v->picture_rect = (ViewRect){0, 0, 0, 0};
        status = viewer_draw_grid(v, &m, err);
    } else {
        status = draw_main(v, &m, err);
    }
    draw_status(v, &m);
    if (v->help) viewer_draw_help(v, &m);
    return status;
}
