#include "viewer_draw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float clampf(float v, float low, float high) { return v < low ? low : v > high ? high : v; }

ViewMetrics view_metrics(const Font *font, int width, int height) {
    ViewMetrics m;
    float base = clampf(fminf(height / 28.0f, width / 30.0f), 13.0f, 40.0f);
    m.caption_px = base;
    m.info_px = fmaxf(12.0f, base * 0.72f);
    m.status_px = fmaxf(11.0f, base * 0.62f);
    m.caption_lh = font_line_height(font, m.caption_px);
    m.info_lh = font_line_height(font, m.info_px);
    m.status_lh = font_line_height(font, m.status_px);
    m.margin = (int)lroundf(base * 0.6f);
    m.gap = (int)lroundf(base * 0.4f);
    m.pad = (int)lroundf(base * 0.22f);
    m.caption_advance = m.caption_lh + 2 * m.pad;
    return m;
}

void draw_blit(Image *dst, const Image *src, int x, int y) {
    int x0 = x < 0 ? -x : 0, x1 = src->width;
    if (x + x1 > dst->width) x1 = dst->width - x;
    if (x1 <= x0) return;
    for (int row = 0; row < src->height; row++) {
        int ty = y + row;
        if (ty < 0 || ty >= dst->height) continue;
        memcpy(dst->pixels + ((size_t)ty * dst->width + x + x0) * 3, src->pixels + ((size_t)row * src->width + x0) * 3,
               (size_t)(x1 - x0) * 3);
    }
}

void draw_shade(Image *dst, int x0, int y0, int x1, int y1, Rgb color, float a) {
    x0 = x0 < 0 ? 0 : x0, y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > dst->width ? dst->width : x1, y1 = y1 > dst->height ? dst->height : y1;
    const float c[3] = {color.r, color.g, color.b};
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            unsigned char *p = dst->pixels + ((size_t)y * dst->width + x) * 3;
            for (int i = 0; i < 3; i++) p[i] = (unsigned char)lroundf(p[i] * (1.0f - a) + c[i] * a);
        }
}

int draw_text_at(Image *img, const Font *font, const char *text, int x, int y, float px, Rgb color) {
    if (img) font_draw_text(img, font, text, x, y, px, color);
    return x + font_text_width(font, text, px);
}

void draw_text_centered(Image *img, const Font *font, const char *text, int centre_x, int y, float px, Rgb color) {
    font_draw_text(img, font, text, centre_x - font_text_width(font, text, px) / 2, y, px, color);
}

int draw_bar(Image *img, int x, int y, const ViewMetrics *m, float value, Rgb color) {
    int w = (int)lroundf(m->info_px * 4.0f), h = (int)lroundf(m->info_px * 0.45f);
    int top = y + (m->info_lh - h) / 2 + 1;
    if (img) {
        int fill = (int)lroundf(w * clampf(value, 0.0f, 1.0f));
        draw_fill_rect(img, x, top, x + w, top + h, VIEW_BAR_BACK);
        draw_fill_rect(img, x, top, x + fill, top + h, color);
    }
    return x + w;
}

/* The longest run of whole words from text + *pos that fits max_width (at
 * least one word), copied into line; advances *pos. 0 when none are left. */
static int next_line(const Font *font, const char *text, size_t *pos, float px, int max_width, char *line,
                     size_t size) {
    size_t s = *pos;
    while (text[s] == ' ') s++;
    if (!text[s]) return 0;
    size_t end = s, fitted = 0;
    while (text[end]) {
        size_t next = end;
        while (text[next] == ' ') next++;
        while (text[next] && text[next] != ' ') next++;
        if (next - s >= size) break;
        memcpy(line, text + s, next - s);
        line[next - s] = '\0';
        if (fitted && font_text_width(font, line, px) > max_width) break;
        end = fitted = next;
    }
    if (!fitted) end = s + (strlen(text + s) < size - 1 ? strlen(text + s) : size - 1);
    memcpy(line, text + s, end - s);
    line[end - s] = '\0';
    *pos = end;
    return 1;
}

void draw_wrapped(Image *img, const Font *font, const char *text, int x, int y, int w, int h, float px,
                  Rgb color) {
    char line[1024];
    size_t pos = 0;
    int lines = 0, lh = font_line_height(font, px);
    while (next_line(font, text, &pos, px, w, line, sizeof line)) lines++;
    int top = y + (h - lines * lh) / 2;
    pos = 0;
    for (int i = 0; next_line(font, text, &pos, px, w, line, sizeof line); i++)
        draw_text_centered(img, font, line, x + w / 2, top + i * lh, px, color);
}

const char *elide_text(const Font *font, const char *text, float px, int max_width, char *out, size_t size) {
    static const char ellipsis[] = "\xe2\x80\xa6";
    snprintf(out, size, "%s", text);
    if (font_text_width(font, out, px) <= max_width) return out;
    size_t keep = strlen(out);
    while (keep > 0) {
        do keep--;
        while (keep > 0 && ((unsigned char)out[keep] & 0xC0) == 0x80); /* a whole character */
        if (keep + sizeof ellipsis > size) continue;
        memcpy(out + keep, ellipsis, sizeof ellipsis);
        if (font_text_width(font, out, px) <= max_width) return out;
    }
    snprintf(out, size, "%s", font_text_width(font, ellipsis, px) <= max_width ? ellipsis : "");
    return out;
}
