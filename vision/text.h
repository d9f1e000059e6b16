#ifndef VISION_TEXT_H
#define VISION_TEXT_H

#include <stddef.h>

#include "draw.h"
#include "error.h"
#include "image.h"

/* Anti-aliased text on Images, rendered with stb_truetype from a TrueType
 * font file (the project bundles DejaVu Sans: assets/fonts/DejaVuSans.ttf).
 *
 * Text is one line of UTF-8. Invalid UTF-8 (stray continuation bytes,
 * truncated or overlong sequences, surrogates, values past U+10FFFF) is drawn
 * as U+FFFD, one per offending byte; characters the font has no glyph for are
 * drawn with the font's own U+FFFD glyph (or its '?' if it has none), never
 * with an undefined glyph. Tab is drawn as a space; other control characters
 * (U+0000..U+001F, U+007F) are skipped.
 *
 * Geometry: pixel_height is the height of the line box in pixels (the font's
 * ascent + descent, so capital letters are about 0.73 * pixel_height tall
 * with DejaVu Sans). It must lie in (0, FONT_MAX_PIXEL_HEIGHT]; otherwise
 * nothing is drawn and widths are 0. Drawing coordinates name the TOP-LEFT
 * corner of the line box (not the baseline): the text occupies rows
 * y .. y + font_line_height() - 1; a few accents on capitals may rise a pixel
 * or two above y.
 *
 * Drawing blends the colour over the existing pixels with the glyph coverage
 * as alpha (r, g, b of 3- and 4-channel images, alpha left alone; the luma on
 * 1- and 2-channel images) and is clipped to the image; coordinates may be
 * anywhere, including off the image. Drawing functions cannot report errors:
 * if memory runs out they draw nothing. */

#define FONT_MAX_PIXEL_HEIGHT 1024.0f

typedef struct Font Font;

/* Loads a TrueType (.ttf) font file (the first face of a collection). On
 * failure *font is NULL and err says which file and what is wrong (missing,
 * a directory, unreadable, empty, too large, not a TrueType font). Like
 * stb_truetype itself, this is meant for trusted font files such as the
 * bundled one: a malicious font file can crash the parser. */
int font_load(Font **font, const char *path, Error *err);

/* Frees the font; NULL is fine. */
void font_free(Font *font);

/* Advance width of the text in pixels, kerning included (rounded up): the
 * pen moves from x to x + width. 0 for NULL or "". */
int font_text_width(const Font *font, const char *utf8, float pixel_height);

/* Height of the line box in pixels (pixel_height rounded up), and the
 * distance from its top to the baseline. */
int font_line_height(const Font *font, float pixel_height);
int font_ascent(const Font *font, float pixel_height);

/* Draws the text with the top-left corner of its line box at (x, y_top). */
void font_draw_text(Image *img, const Font *font, const char *utf8, int x, int y_top,
                    float pixel_height, Rgb color);

/* Draws the text rotated 90 degrees counter-clockwise, reading from bottom to
 * top (like a y-axis label). The rotated line box has its bottom-left corner
 * at (x_left, y_bottom): it covers columns x_left .. x_left + line height - 1
 * and rows y_bottom - width .. y_bottom - 1, the text starting at y_bottom
 * and the tops of the letters facing left. */
void font_draw_text_vertical(Image *img, const Font *font, const char *utf8, int x_left,
                             int y_bottom, float pixel_height, Rgb color);

/* Finds the bundled font: <source tree>/assets/fonts/DejaVuSans.ttf, then
 * <prefix>/<datadir>/caption/fonts/DejaVuSans.ttf (where meson install puts
 * it), then the system's /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
 * (Debian fonts-dejavu-core). Writes the first readable one into buf and
 * returns buf, or returns NULL if none is readable. */
const char *font_default_path(char *buf, size_t size);

#endif
