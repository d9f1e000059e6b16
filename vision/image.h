#ifndef VISION_IMAGE_H
#define VISION_IMAGE_H

#include <stddef.h>

#include "error.h"

/* The project's one image type: 8-bit samples, interleaved, row-major, no
 * row padding (stride = width * channels), 1 to 4 channels
 * (gray, gray+alpha, RGB, RGBA). The Image owns `pixels`. */
typedef struct {
    int width, height, channels;
    unsigned char *pixels;
} Image;

/* Decoding allocates width*height*4 bytes before anything can be checked, so
 * a hostile or corrupt header could ask for gigabytes: refuse up front. */
#define IMAGE_DEFAULT_MAX_PIXELS (64LL * 1024 * 1024)

typedef struct {
    long long max_pixels; /* 0 = IMAGE_DEFAULT_MAX_PIXELS */
} ImageLoadOptions;

/* Formats stb_image decodes, for messages. */
#define IMAGE_SUPPORTED_FORMATS "JPEG, PNG, BMP, GIF, PSD, TGA, HDR, PIC, PNM (8-bit P5/P6)"

/* Loads an image file as RGB (channels = 3): grayscale is replicated, alpha is
 * composited on white, JPEG EXIF orientation is applied so the result is
 * upright. The size is checked against options->max_pixels (options may be
 * NULL) from the header, before decoding. On failure *out is left zeroed and
 * err says which file and what is wrong (missing, a directory, unreadable,
 * empty, not an image, corrupt or truncated, too large). */
int image_load(Image *out, const char *path, const ImageLoadOptions *options, Error *err);

/* As image_load, from encoded bytes in memory. name_for_errors (may be NULL)
 * names the source in messages. */
int image_load_from_memory(Image *out, const unsigned char *data, size_t size,
                           const char *name_for_errors, const ImageLoadOptions *options,
                           Error *err);

/* 1 if the file's first bytes are the signature of a format stb decodes
 * (JPEG, PNG, BMP, GIF, PSD, HDR, PIC, PNM); 0 otherwise, or if it cannot be
 * read. TGA has no signature, so it is recognised by its extension (.tga)
 * alone. */
int image_is_image_file(const char *path);

/* Allocates a zeroed width x height x channels image into *out. */
int image_alloc(Image *out, int width, int height, int channels, Error *err);

/* Frees the pixels; safe on a zeroed Image and idempotent. */
void image_free(Image *img);

/* Resamples `in` to width x height (same channel count) into *out, which is
 * allocated here. Uses stb_image_resize's default filters (Mitchell when
 * shrinking, Catmull-Rom when enlarging); alpha is treated as alpha. */
int image_resize(Image *out, const Image *in, int width, int height, Error *err);

/* Resizes the region [x0, x1) x [y0, y1) of in (fractions of its width and
 * height, 0..1) to width x height: a crop and a resize in one filtering pass,
 * for random-crop augmentation. */
int image_resize_region(Image *out, const Image *in, float x0, float y0, float x1, float y1, int width,
                        int height, Error *err);

/* Mirrors the image left-right in place. */
void image_flip_horizontal(Image *img);

/* Colour jitter of an RGB image in place, as torchvision's ColorJitter
 * without hue, in a fixed order: brightness (pixels x brightness), contrast
 * (blend with the mean grey level: 0 = flat grey, 1 = unchanged) and
 * saturation (blend with each pixel's grey level: 0 = greyscale). Results
 * are rounded and clamped to 0..255; grey levels are the ITU-R 601 luma.
 * Images without 3 channels are left as they are. */
void image_adjust_color(Image *img, float brightness, float contrast, float saturation);

/* Writes planar CHW floats (3 x height x width) computed as
 * (sample / 255 - mean[c]) / std[c]. Meant for RGB images; a 1- or 2-channel
 * image has its gray replicated into all three planes, alpha is ignored. */
void image_to_tensor(float *chw, const Image *img, const float mean[3], const float std[3]);

/* Writes img as PNG. The data goes to a temporary file in the same folder,
 * which is flushed and renamed over `path` only when complete, so a failed
 * write (disk full, permission) never leaves a torn file behind. */
int image_write_png(const Image *img, const char *path, Error *err);
/* The same, in the format the name says: .png, or .jpg / .jpeg (JPEG,
 * quality 92); any other name is refused with a message saying so. */
int image_write_by_extension(const Image *img, const char *path, Error *err);

#endif
