/* Text rendering with stb_truetype. Debian's libstb (pkg-config stb, linked
 * as -lstb) already contains the stb_truetype implementation, so only the
 * header is included here; STB_TRUETYPE_IMPLEMENTATION must not be defined. */
#include "text.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_truetype.h>

#ifndef CAPTION_SOURCE_ASSETS
#define CAPTION_SOURCE_ASSETS "assets"
#endif
#ifndef CAPTION_INSTALLED_ASSETS
#define CAPTION_INSTALLED_ASSETS "/usr/local/share/caption"
#endif

#define FONT_FILE "fonts/DejaVuSans.ttf"
#define SYSTEM_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
#define FONT_MAX_FILE_BYTES (64L * 1024 * 1024)

struct Font {
    unsigned char *data; /* the whole file; info points into it */
    stbtt_fontinfo info;
    int ascent, descent; /* font units, descent negative */
    int fallback_glyph;  /* drawn for characters the font lacks */
};

/* ---- loading ------------------------------------------------------------ */

static unsigned read_be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }
static unsigned long read_be32(const unsigned char *p) {
    return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
}

/* stb_truetype trusts the table directory; check that it and every table it
 * names lie inside the file, so a truncated file is an error, not a crash. */
static int table_directory_fits(const unsigned char *data, size_t size, size_t offset) {
    if (offset > size || size - offset < 12) return 0;
    size_t tables = read_be16(data + offset + 4);
    if (tables == 0 || (size - offset - 12) / 16 < tables) return 0;
    for (size_t i = 0; i < tables; i++) {
        const unsigned char *entry = data + offset + 12 + 16 * i;
        unsigned long start = read_be32(entry + 8), length = read_be32(entry + 12);
        if (start > size || length > size - start) return 0;
    }
    return 1;
}

int font_load(Font **font, const char *path, Error *err) {
    if (!font) return error_set(err, "font_load: no place to store the font (NULL pointer)");
    *font = NULL;
    if (!path || !*path) return error_set(err, "font_load: no font file path given");

    struct stat info;
    if (stat(path, &info) != 0)
        return error_set(err, "cannot open font file %s: %s", path, strerror(errno));
    if (S_ISDIR(info.st_mode))
        return error_set(err, "font file %s is a directory, not a TrueType (.ttf) file", path);
    if (!S_ISREG(info.st_mode))
        return error_set(err, "font file %s is not a regular file", path);
    if (info.st_size == 0) return error_set(err, "font file %s is empty", path);
    if (info.st_size > FONT_MAX_FILE_BYTES)
        return error_set(err, "font file %s is too large (%lld bytes; at most %ld are accepted)", path,
                         (long long)info.st_size, FONT_MAX_FILE_BYTES);

    size_t size = (size_t)info.st_size;
    Font *f = calloc(1, sizeof *f);
    unsigned char *data = malloc(size);
    if (!f || !data) {
        free(f);
        free(data);
        return error_set(err, "out of memory loading font file %s (%zu bytes)", path, size);
    }
    f->data = data;

    FILE *file = fopen(path, "rb");
    if (!file) {
        int code = errno;
        font_free(f);
        return error_set(err, "cannot open font file %s: %s", path, strerror(code));
    }
    size_t got = fread(data, 1, size, file);
    int read_error = ferror(file) ? errno : 0;
    fclose(file);
    if (got != size) {
        font_free(f);
        return error_set(err, "cannot read font file %s: %s", path,
                         read_error ? strerror(read_error) : "file shrank while being read");
    }

    int offset = stbtt_GetFontOffsetForIndex(data, 0);
    if (size < 12 || offset < 0) {
        font_free(f);
        return error_set(err, "%s is not a TrueType font file (expected a .ttf, .otf or .ttc font)", path);
    }
    if (!table_directory_fits(data, size, (size_t)offset)) {
        font_free(f);
        return error_set(err, "font file %s is truncated or corrupt (its tables run past the end of the file)",
                         path);
    }
    if (!stbtt_InitFont(&f->info, data, offset)) {
        font_free(f);
        return error_set(err, "font file %s is not a usable TrueType font (required tables missing)", path);
    }
    int line_gap;
    stbtt_GetFontVMetrics(&f->info, &f->ascent, &f->descent, &line_gap);
    if (f->ascent - f->descent <= 0) {
        font_free(f);
        return error_set(err, "font file %s has invalid vertical metrics (ascent %d, descent %d)", path,
                         f->ascent, f->descent);
    }
    f->fallback_glyph = stbtt_FindGlyphIndex(&f->info, 0xFFFD);
    if (f->fallback_glyph == 0) f->fallback_glyph = stbtt_FindGlyphIndex(&f->info, '?');
    *font = f;
    return 0;
}

void font_free(Font *font) {
    if (!font) return;
    free(font->data);
    free(font);
}

const char *font_default_path(char *buf, size_t size) {
    if (!buf || size == 0) return NULL;
    const char *const candidates[] = {CAPTION_SOURCE_ASSETS "/" FONT_FILE, CAPTION_INSTALLED_ASSETS "/" FONT_FILE,
                                      SYSTEM_FONT};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        int written = snprintf(buf, size, "%s", candidates[i]);
        if (written < 0 || (size_t)written >= size) continue;
        struct stat info;
        if (stat(buf, &info) == 0 && S_ISREG(info.st_mode) && access(buf, R_OK) == 0) return buf;
    }
    buf[0] = '\0';
    return NULL;
}

/* ---- UTF-8 and glyph walking -------------------------------------------- */

#define REPLACEMENT_CHARACTER 0xFFFDu

/* Decodes one code point at *p and advances *p. A byte that does not start a
 * valid, complete, shortest-form sequence yields U+FFFD and advances by one.
 * Never reads past a NUL (a NUL is never a continuation byte). */
static unsigned decode_utf8(const unsigned char **p) {
    const unsigned char *s = *p;
    unsigned c = s[0], code, minimum;
    int more;
    if (c < 0x80) {
        *p = s + 1;
        return c;
    } else if (c >= 0xC2 && c <= 0xDF) {
        more = 1, code = c & 0x1F, minimum = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        more = 2, code = c & 0x0F, minimum = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        more = 3, code = c & 0x07, minimum = 0x10000;
    } else {
        *p = s + 1;
        return REPLACEMENT_CHARACTER;
    }
    for (int i = 1; i <= more; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *p = s + 1;
            return REPLACEMENT_CHARACTER;
        }
        code = code << 6 | (s[i] & 0x3Fu);
    }
    if (code < minimum || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
        *p = s + 1;
        return REPLACEMENT_CHARACTER;
    }
    *p = s + more + 1;
    return code;
}

/* Next glyph of the string, or -1 at its end; control characters are
 * skipped, tab is a space, missing characters get the fallback glyph. */
static int next_glyph(const Font *font, const unsigned char **p) {
    while (**p) {
        unsigned code = decode_utf8(p);
        if (code == '\t') code = ' ';
        if (code < 0x20 || (code >= 0x7F && code < 0xA0)) continue;
        int glyph = stbtt_FindGlyphIndex(&font->info, (int)code);
        return glyph ? glyph : font->fallback_glyph;
    }
    return -1;
}

static int valid_height(float pixel_height) { return pixel_height > 0.0f && pixel_height <= FONT_MAX_PIXEL_HEIGHT; }

static float font_scale(const Font *font, float pixel_height) {
    return pixel_height / (float)(font->ascent - font->descent);
}

int font_line_height(const Font *font, float pixel_height) {
    if (!font || !valid_height(pixel_height)) return 0;
    return (int)ceilf(pixel_height);
}

int font_ascent(const Font *font, float pixel_height) {
    if (!font || !valid_height(pixel_height)) return 0;
    return (int)lroundf((float)font->ascent * font_scale(font, pixel_height));
}

int font_text_width(const Font *font, const char *utf8, float pixel_height) {
    if (!font || !utf8 || !valid_height(pixel_height)) return 0;
    float scale = font_scale(font, pixel_height), pen = 0.0f;
    const unsigned char *p = (const unsigned char *)utf8;
    int previous = -1, glyph;
    while ((glyph = next_glyph(font, &p)) >= 0) {
        if (previous >= 0) pen += scale * (float)stbtt_GetGlyphKernAdvance(&font->info, previous, glyph);
        int advance, bearing;
        stbtt_GetGlyphHMetrics(&font->info, glyph, &advance, &bearing);
        pen += scale * (float)advance;
        previous = glyph;
    }
    return pen > 0.0f ? (int)ceilf(pen - 1e-3f) : 0;
}

/* ---- drawing ------------------------------------------------------------- */

static unsigned char mix(unsigned char under, unsigned char over, unsigned alpha) {
    return (unsigned char)(((unsigned)under * (255u - alpha) + (unsigned)over * alpha + 127u) / 255u);
}

static void blend_pixel(Image *img, int x, int y, Rgb color, unsigned alpha) {
    unsigned char *p = img->pixels + ((size_t)y * (size_t)img->width + (size_t)x) * (size_t)img->channels;
    if (img->channels >= 3) {
        p[0] = mix(p[0], color.r, alpha);
        p[1] = mix(p[1], color.g, alpha);
        p[2] = mix(p[2], color.b, alpha);
    } else {
        unsigned char luma = (unsigned char)((299u * color.r + 587u * color.g + 114u * color.b + 500u) / 1000u);
        p[0] = mix(p[0], luma, alpha);
    }
}

/* Lays the glyphs out along a line whose box starts at text-space (0, 0),
 * u to the right and v down, and blends each covered pixel into the image
 * at (x0 + u, y0 + v) or, rotated, at (x0 + v, y0 - 1 - u). */
static void draw_line(Image *img, const Font *font, const char *utf8, int x0, int y0, float pixel_height,
                      Rgb color, int rotated) {
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0 || !font || !utf8 ||
        !valid_height(pixel_height))
        return;
    float scale = font_scale(font, pixel_height), pen = 0.0f;
    int baseline = font_ascent(font, pixel_height);
    unsigned char *scratch = NULL;
    size_t scratch_size = 0;
    const unsigned char *p = (const unsigned char *)utf8;
    int previous = -1, glyph;
    while ((glyph = next_glyph(font, &p)) >= 0) {
        if (previous >= 0) pen += scale * (float)stbtt_GetGlyphKernAdvance(&font->info, previous, glyph);
        int advance, bearing;
        stbtt_GetGlyphHMetrics(&font->info, glyph, &advance, &bearing);
        float whole = floorf(pen), fraction = pen - whole;
        pen += scale * (float)advance;
        previous = glyph;

        int gx0, gy0, gx1, gy1;
        stbtt_GetGlyphBitmapBoxSubpixel(&font->info, glyph, scale, scale, fraction, 0.0f, &gx0, &gy0, &gx1, &gy1);
        int w = gx1 - gx0, h = gy1 - gy0;
        if (w <= 0 || h <= 0) continue; /* a space */
        /* The glyph's box in text space, then in the image. */
        long u0 = (long)whole + gx0, v0 = (long)baseline + gy0;
        long ix0, iy0, ix1, iy1;
        if (!rotated) {
            ix0 = x0 + u0, ix1 = ix0 + w, iy0 = y0 + v0, iy1 = iy0 + h;
        } else {
            ix0 = x0 + v0, ix1 = ix0 + h, iy1 = y0 - u0, iy0 = iy1 - w;
        }
        if (ix1 <= 0 || iy1 <= 0 || ix0 >= img->width || iy0 >= img->height) continue;
        if ((size_t)w * (size_t)h > scratch_size) {
            unsigned char *bigger = realloc(scratch, (size_t)w * (size_t)h);
            if (!bigger) break;
            scratch = bigger;
            scratch_size = (size_t)w * (size_t)h;
        }
        stbtt_MakeGlyphBitmapSubpixel(&font->info, scratch, w, h, w, scale, scale, fraction, 0.0f, glyph);
        for (int j = 0; j < h; j++) {
            for (int i = 0; i < w; i++) {
                unsigned alpha = scratch[(size_t)j * (size_t)w + (size_t)i];
                if (!alpha) continue;
                long x = rotated ? x0 + v0 + j : x0 + u0 + i;
                long y = rotated ? (long)y0 - 1 - (u0 + i) : y0 + v0 + j;
                if (x < 0 || y < 0 || x >= img->width || y >= img->height) continue;
                blend_pixel(img, (int)x, (int)y, color, alpha);
            }
        }
    }
    free(scratch);
}

void font_draw_text(Image *img, const Font *font, const char *utf8, int x, int y_top, float pixel_height,
                    Rgb color) {
    draw_line(img, font, utf8, x, y_top, pixel_height, color, 0);
}

void font_draw_text_vertical(Image *img, const Font *font, const char *utf8, int x_left, int y_bottom,
                             float pixel_height, Rgb color) {
    draw_line(img, font, utf8, x_left, y_bottom, pixel_height, color, 1);
}
