#include "image.h"

#include <errno.h>
#include <math.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* libstb already contains the implementations: include declarations only. */
#include <stb_image.h>
#include <stb_image_resize.h>
#include <stb_image_write.h>

typedef enum {
    FORMAT_UNKNOWN,
    FORMAT_JPEG,
    FORMAT_PNG,
    FORMAT_BMP,
    FORMAT_GIF,
    FORMAT_PSD,
    FORMAT_HDR,
    FORMAT_PIC,
    FORMAT_PNM,
} ImageFormat;

static const char *display_name(const char *name) { return name ? name : "<image in memory>"; }

static int starts_with(const unsigned char *data, size_t size, const char *magic, size_t magic_size) {
    return size >= magic_size && memcmp(data, magic, magic_size) == 0;
}

/* Same signatures stb_image's own *_test functions look for. */
static ImageFormat detect_format(const unsigned char *data, size_t size) {
    if (starts_with(data, size, "\xFF\xD8\xFF", 3)) return FORMAT_JPEG;
    if (starts_with(data, size, "\x89PNG\r\n\x1A\n", 8)) return FORMAT_PNG;
    if (starts_with(data, size, "GIF87a", 6) || starts_with(data, size, "GIF89a", 6)) return FORMAT_GIF;
    if (starts_with(data, size, "BM", 2)) return FORMAT_BMP;
    if (starts_with(data, size, "8BPS", 4)) return FORMAT_PSD;
    if (starts_with(data, size, "#?RADIANCE\n", 11) || starts_with(data, size, "#?RGBE\n", 7)) return FORMAT_HDR;
    if (starts_with(data, size, "\x53\x80\xF6\x34", 4) && size >= 92 && memcmp(data + 88, "PICT", 4) == 0)
        return FORMAT_PIC;
    if (size >= 3 && data[0] == 'P' && (data[1] == '5' || data[1] == '6') &&
        (data[2] == ' ' || data[2] == '\n' || data[2] == '\r' || data[2] == '\t'))
        return FORMAT_PNM;
    return FORMAT_UNKNOWN;
}

static const char *format_name(ImageFormat format) {
    static const char *const names[] = {"an unknown format", "a JPEG", "a PNG", "a BMP", "a GIF",
                                        "a PSD",             "an HDR", "a PIC", "a PNM"};
    return names[format];
}

/* ---- JPEG segment walking (EXIF orientation, truncation check) ---- */

static unsigned read_u16(const unsigned char *p, int little_endian) {
    return little_endian ? (unsigned)p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | (unsigned)p[1];
}

static uint32_t read_u32(const unsigned char *p, int little_endian) {
    if (little_endian)
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

typedef struct {
    unsigned char marker;
    size_t marker_offset;        /* of the 0xFF byte */
    const unsigned char *payload; /* after the length field */
    size_t payload_size;
} JpegSegment;

/* Advances *pos over the header segments of a JPEG (the ones before the
 * entropy-coded data). Returns 1 with *segment filled, 0 at the end or when
 * the structure is broken. Start with *pos = 2 (after SOI). Start-of-scan
 * is returned with no payload: what follows it is not segment-structured. */
static int jpeg_next_segment(const unsigned char *data, size_t size, size_t *pos, JpegSegment *segment) {
    size_t p = *pos;
    while (p + 1 < size && data[p] == 0xFF && data[p + 1] == 0xFF) p++; /* fill bytes */
    if (p + 1 >= size || data[p] != 0xFF) return 0;
    unsigned char marker = data[p + 1];
    segment->marker = marker;
    segment->marker_offset = p;
    segment->payload = NULL;
    segment->payload_size = 0;
    if (marker == 0xDA || marker == 0xD9) {
        *pos = p + 2;
        return 1;
    }
    if ((marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) { /* no length field */
        *pos = p + 2;
        return 1;
    }
    if (p + 4 > size) return 0;
    size_t length = read_u16(data + p + 2, 0);
    if (length < 2 || length > size - (p + 2)) return 0;
    segment->payload = data + p + 4;
    segment->payload_size = length - 2;
    *pos = p + 2 + length;
    return 1;
}

/* Reads the Orientation tag (0x0112) of IFD0 from an APP1 payload; 0 if the
 * payload is not Exif or has no valid orientation. Every read is bounds
 * checked against the payload because the bytes come from the file. */
static int exif_orientation_from_app1(const unsigned char *payload, size_t size) {
    if (size < 6 || memcmp(payload, "Exif\0\0", 6) != 0) return 0;
    const unsigned char *tiff = payload + 6;
    size_t tiff_size = size - 6;
    if (tiff_size < 8) return 0;
    int little_endian;
    if (tiff[0] == 'I' && tiff[1] == 'I')
        little_endian = 1;
    else if (tiff[0] == 'M' && tiff[1] == 'M')
        little_endian = 0;
    else
        return 0;
    if (read_u16(tiff + 2, little_endian) != 42) return 0;
    uint32_t ifd = read_u32(tiff + 4, little_endian);
    if (ifd > tiff_size || tiff_size - ifd < 2) return 0;
    unsigned entry_count = read_u16(tiff + ifd, little_endian);
    for (unsigned i = 0; i < entry_count; i++) {
        size_t entry = (size_t)ifd + 2 + 12 * (size_t)i;
        if (entry + 12 > tiff_size) return 0;
        if (read_u16(tiff + entry, little_endian) != 0x0112) continue;
        const unsigned short_type = 3;
        if (read_u16(tiff + entry + 2, little_endian) != short_type) return 0;
        unsigned value = read_u16(tiff + entry + 8, little_endian);
        return value >= 1 && value <= 8 ? (int)value : 0;
    }
    return 0;
}

/* EXIF orientation 1..8 of a JPEG; 1 (upright) when there is none. */
static int jpeg_exif_orientation(const unsigned char *data, size_t size) {
    size_t pos = 2;
    JpegSegment segment;
    while (jpeg_next_segment(data, size, &pos, &segment)) {
        if (segment.marker == 0xDA || segment.marker == 0xD9) break;
        if (segment.marker != 0xE1) continue;
        int orientation = exif_orientation_from_app1(segment.payload, segment.payload_size);
        if (orientation) return orientation;
    }
    return 1;
}

/* stb_image decodes a JPEG cut short without complaint (it pads the missing
 * data with gray), so look for the end-of-image marker after the first scan
 * ourselves. Byte stuffing guarantees FF D9 cannot occur inside scan data;
 * an EXIF thumbnail's EOI lies inside a skipped APP1 segment. */
static int jpeg_has_end_marker(const unsigned char *data, size_t size) {
    size_t pos = 2;
    JpegSegment segment;
    while (jpeg_next_segment(data, size, &pos, &segment)) {
        if (segment.marker == 0xD9) return 1;
        if (segment.marker != 0xDA) continue;
        for (size_t i = pos; i + 1 < size; i++)
            if (data[i] == 0xFF && data[i + 1] == 0xD9) return 1;
        return 0;
    }
    return 0;
}

/* One DHT payload of `length` declared bytes, of which `available` are in
 * the file (stb reads zeros past the end): every table's 16 code counts must
 * add up to at most 256. */
static int jpeg_dht_valid(const unsigned char *payload, size_t length, size_t available) {
    size_t i = 0;
    while (i < length) {
        i++; /* table class and id: stb checks those */
        unsigned sum = 0;
        for (int k = 0; k < 16; k++, i++) sum += i < available ? payload[i] : 0;
        if (sum > 256) return 0;
        i += sum;
    }
    return 1;
}

/* stb_image 2.27 writes past its 257-byte code-size table when a Huffman
 * table's counts add up to more than 256 (fixed upstream in 2.28), so every
 * DHT segment stb would read is checked first: the header ones and those
 * between the scans of a progressive JPEG (scan data is walked byte by
 * byte to the next marker, as stb does). */
static int jpeg_huffman_tables_valid(const unsigned char *data, size_t size) {
    /* stb takes FF, any more FF fill bytes, then D8 as the start of a JPEG. */
    size_t p = 0;
    while (p < size && data[p] == 0xFF) p++;
    if (p == 0 || p >= size || data[p] != 0xD8) return 1; /* not a JPEG to stb */
    p++;
    while (p + 1 < size) {
        unsigned char m = data[p + 1];
        if (data[p] != 0xFF || m == 0xFF) { /* scan data, or fill before a marker */
            p++;
            continue;
        }
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { /* stuffed byte, TEM, restart */
            p += 2;
            continue;
        }
        if (m == 0xD9 || p + 4 > size) return 1;
        size_t length = read_u16(data + p + 2, 0);
        if (length < 2) return 1; /* stb refuses that itself */
        if (m == 0xC4 && !jpeg_dht_valid(data + p + 4, length - 2, size - (p + 4))) return 0;
        p += 2 + length;
    }
    return 1;
}

/* Maps an output pixel of the upright image back to the stored pixel, per
 * the EXIF definition of orientations 1..8 (5..8 swap width and height). */
static void oriented_source(int orientation, int width, int height, int ox, int oy, int *sx, int *sy) {
    switch (orientation) {
    case 2: *sx = width - 1 - ox; *sy = oy; break;                    /* mirrored */
    case 3: *sx = width - 1 - ox; *sy = height - 1 - oy; break;       /* rotated 180 */
    case 4: *sx = ox; *sy = height - 1 - oy; break;                   /* flipped vertically */
    case 5: *sx = oy; *sy = ox; break;                                /* transposed */
    case 6: *sx = oy; *sy = height - 1 - ox; break;                   /* needs 90 clockwise */
    case 7: *sx = width - 1 - oy; *sy = height - 1 - ox; break;       /* transversed */
    case 8: *sx = width - 1 - oy; *sy = ox; break;                    /* needs 90 counter-clockwise */
    default: *sx = ox; *sy = oy; break;
    }
}

static int apply_orientation(Image *img, int orientation, Error *err) {
    if (orientation <= 1 || orientation > 8) return 0;
    int swaps = orientation >= 5;
    Image upright = {0};
    if (image_alloc(&upright, swaps ? img->height : img->width, swaps ? img->width : img->height,
                    img->channels, err))
        return -1;
    size_t channels = (size_t)img->channels;
    for (int oy = 0; oy < upright.height; oy++) {
        for (int ox = 0; ox < upright.width; ox++) {
            int sx, sy;
            oriented_source(orientation, img->width, img->height, ox, oy, &sx, &sy);
            memcpy(upright.pixels + ((size_t)oy * (size_t)upright.width + (size_t)ox) * channels,
                   img->pixels + ((size_t)sy * (size_t)img->width + (size_t)sx) * channels, channels);
        }
    }
    image_free(img);
    *img = upright;
    return 0;
}

/* ---- decoding ---- */

/* Width and height as a JPEG's start-of-frame states them. */
static int jpeg_header_dimensions(const unsigned char *data, size_t size, long long *width, long long *height) {
    size_t pos = 2;
    JpegSegment segment;
    while (jpeg_next_segment(data, size, &pos, &segment)) {
        unsigned char m = segment.marker;
        int is_frame = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (m == 0xDA || m == 0xD9) return 0;
        if (!is_frame || segment.payload_size < 5) continue;
        *height = read_u16(segment.payload + 1, 0);
        *width = read_u16(segment.payload + 3, 0);
        return 1;
    }
    return 0;
}

/* ---- PNM headers ---- */

static int pnm_is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* The next number of a PNM header from *pos, after whitespace and '#'
 * comments (stb's grammar). Returns its digit count (0: none); *value
 * saturates, so a hostile digit string cannot overflow here. */
static int pnm_number(const unsigned char *data, size_t size, size_t *pos, long long *value) {
    size_t p = *pos;
    while (p < size && (pnm_is_space(data[p]) || data[p] == '#')) {
        if (data[p] == '#')
            while (p < size && data[p] != '\n' && data[p] != '\r') p++;
        else
            p++;
    }
    int digits = 0;
    long long v = 0;
    for (; p < size && data[p] >= '0' && data[p] <= '9'; p++, digits++)
        if (v < 1000000000LL) v = v * 10 + (data[p] - '0');
    *pos = p;
    *value = v;
    return digits;
}

/* stb_image (2.27) reads PNM header numbers into an int without checking
 * for overflow, and reads past its buffer converting 16-bit PNM, so neither
 * may reach it: width and height of a P5/P6 header, or -1 when a number is
 * missing or out of range (a side at most 2^24 like stb's own cap, the
 * maximum sample value at most 255: 8 bits). */
static int pnm_header(const unsigned char *data, size_t size, long long *width, long long *height) {
    size_t pos = 2;
    long long maxval = 0;
    if (!pnm_number(data, size, &pos, width) || !pnm_number(data, size, &pos, height) ||
        !pnm_number(data, size, &pos, &maxval))
        return -1;
    if (*width > (1LL << 24) || *height > (1LL << 24) || maxval > 255) return -1;
    return 0;
}

static int is_pnm(const unsigned char *data, size_t size) {
    return size >= 2 && data[0] == 'P' && (data[1] == '5' || data[1] == '6');
}

/* The dimensions a header claims, read directly for the common formats.
 * stb_image's own header reader refuses very large claims with a reason it
 * then overwrites ("unknown image type"), so the size check cannot rely on
 * it. Returns 0 when the format is not probed here or the header is short. */
static int header_dimensions(ImageFormat format, const unsigned char *data, size_t size, long long *width,
                             long long *height) {
    switch (format) {
    case FORMAT_PNG:
        if (size < 24 || memcmp(data + 12, "IHDR", 4) != 0) return 0;
        *width = read_u32(data + 16, 0);
        *height = read_u32(data + 20, 0);
        return 1;
    case FORMAT_GIF:
        if (size < 10) return 0;
        *width = read_u16(data + 6, 1);
        *height = read_u16(data + 8, 1);
        return 1;
    case FORMAT_BMP:
        if (size < 26 || read_u32(data + 14, 1) < 40) return 0; /* old OS/2 headers: leave to stb */
        *width = llabs((long long)(int32_t)read_u32(data + 18, 1));
        *height = llabs((long long)(int32_t)read_u32(data + 22, 1)); /* negative = top-down */
        return 1;
    case FORMAT_PSD:
        if (size < 22) return 0;
        *height = read_u32(data + 14, 0);
        *width = read_u32(data + 18, 0);
        return 1;
    case FORMAT_JPEG:
        return jpeg_header_dimensions(data, size, width, height);
    case FORMAT_PNM:
        return pnm_header(data, size, width, height) == 0;
    default:
        return 0;
    }
}

/* Headers state each side in at most 32 bits, so the product of two is
 * exact in 64 unsigned bits (a signed product could overflow). */
static unsigned long long pixel_count(long long width, long long height) {
    return (unsigned long long)width * (unsigned long long)height;
}

static int too_large_error(const char *name, long long width, long long height, long long max_pixels, Error *err) {
    return error_set(err,
                     "image '%s' is %lldx%lld (%llu pixels), more than the limit of %lld pixels; "
                     "shrink the image first or raise ImageLoadOptions.max_pixels",
                     name, width, height, pixel_count(width, height), max_pixels);
}

/* Checks the dimensions stated in the header, before any pixel is decoded. */
static int check_header(const unsigned char *data, size_t size, const char *name, ImageFormat format,
                        long long max_pixels, int *channels_in_file, Error *err) {
    long long claimed_width, claimed_height;
    /* stb tries PNM on any "P5"/"P6" start, whatever follows. */
    if (is_pnm(data, size) && pnm_header(data, size, &claimed_width, &claimed_height) != 0)
        return error_set(err, "image '%s' looks like a PNM but its header is corrupt or out of range "
                              "or unsupported (a side above 16777216, or 16-bit samples); re-export or replace the file",
                         name);
    if (header_dimensions(format, data, size, &claimed_width, &claimed_height) &&
        pixel_count(claimed_width, claimed_height) > (unsigned long long)max_pixels)
        return too_large_error(name, claimed_width, claimed_height, max_pixels, err);
    int width = 0, height = 0;
    if (stbi_info_from_memory(data, (int)size, &width, &height, channels_in_file)) {
        if ((long long)width * height > max_pixels) return too_large_error(name, width, height, max_pixels, err);
        return 0;
    }
    if (format == FORMAT_UNKNOWN)
        return error_set(err, "'%s' is not an image in a supported format (%s); pass an image file", name,
                         IMAGE_SUPPORTED_FORMATS);
    /* stb's reason is useless here (see header_dimensions). */
    return error_set(err, "image '%s' looks like %s but its header is corrupt, truncated or unsupported; "
                          "re-export or replace the file", name, format_name(format));
}

/* Composites stb's RGBA or RGB output onto white, producing tight RGB. */
static void to_rgb_on_white(unsigned char *rgb, const unsigned char *decoded, size_t pixel_count, int decoded_channels) {
    for (size_t i = 0; i < pixel_count; i++) {
        const unsigned char *src = decoded + i * (size_t)decoded_channels;
        unsigned char *dst = rgb + i * 3;
        if (decoded_channels == 3) {
            memcpy(dst, src, 3);
            continue;
        }
        unsigned alpha = src[3];
        for (int c = 0; c < 3; c++) dst[c] = (unsigned char)((src[c] * alpha + 255u * (255u - alpha) + 127u) / 255u);
    }
}

/* stb's reason can quote bytes from the file (an unknown PNG chunk name);
 * keep messages printable. */
static void printable_reason(char *out, size_t size) {
    const char *reason = stbi_failure_reason();
    snprintf(out, size, "%s", reason ? reason : "unknown reason");
    for (char *c = out; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7E) *c = '?';
}

static uint32_t read_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* stb_image 2.27 does pointer arithmetic on a NULL buffer when a PNG's first
 * IDAT chunk is empty (undefined behaviour, found by fuzzing). Empty IDAT
 * chunks carry nothing, so a copy without them decodes to the same image.
 * Returns NULL when there is none to drop (or on a malformed chunk list,
 * which stb then reports); the caller frees the copy. */
static unsigned char *png_without_empty_idat(const unsigned char *data, size_t size, size_t *copy_size) {
    size_t pos = 8, empty = 0;
    while (pos + 12 <= size) {
        uint32_t length = read_be32(data + pos);
        if (length > size - pos - 12) break;
        empty += length == 0 && memcmp(data + pos + 4, "IDAT", 4) == 0;
        pos += 12 + (size_t)length;
    }
    if (empty == 0) return NULL;
    unsigned char *copy = malloc(size);
    if (!copy) return NULL;
    memcpy(copy, data, 8);
    size_t in = 8, out = 8;
    while (in + 12 <= size) {
        uint32_t length = read_be32(data + in);
        if (length > size - in - 12) break;
        int drop = length == 0 && memcmp(data + in + 4, "IDAT", 4) == 0;
        if (!drop) {
            memcpy(copy + out, data + in, 12 + (size_t)length);
            out += 12 + (size_t)length;
        }
        in += 12 + (size_t)length;
    }
    memcpy(copy + out, data + in, size - in); /* whatever trails, as it was */
    *copy_size = out + (size - in);
    return copy;
}

/* stb_image 2.27 grows its buffer to a chunk's declared length before reading
 * it, so a 100-byte PNG declaring a 2 GiB IDAT would make it allocate 2 GiB
 * (found by fuzzing). Every chunk up to IEND must fit in the file. */
static int check_png_chunks(const unsigned char *data, size_t size, const char *name, Error *err) {
    size_t pos = 8;
    while (pos + 12 <= size) {
        uint32_t length = read_be32(data + pos);
        if (length > size - pos - 12)
            return error_set(err, "image '%s' is corrupt or truncated (a PNG chunk declares %u bytes, %zu remain); "
                                  "re-export or replace the file", name, (unsigned)length, size - pos - 12);
        if (memcmp(data + pos + 4, "IEND", 4) == 0) return 0;
        pos += 12 + (size_t)length;
    }
    return 0; /* no IEND: stb reports the truncation */
}

static int decode_to_rgb(Image *out, const unsigned char *data, size_t size, const char *name,
                         int channels_in_file, Error *err) {
    if (detect_format(data, size) == FORMAT_PNG && check_png_chunks(data, size, name, err) != 0) return -1;
    /* Ask stb for the alpha channel only when there is one to composite. */
    int has_alpha = channels_in_file == 2 || channels_in_file == 4;
    int decoded_channels = has_alpha ? 4 : 3;
    int width = 0, height = 0, ignored = 0;
    size_t cleaned_size = 0;
    unsigned char *cleaned = detect_format(data, size) == FORMAT_PNG ? png_without_empty_idat(data, size, &cleaned_size) : NULL;
    if (cleaned) {
        data = cleaned;
        size = cleaned_size;
    }
    unsigned char *decoded = stbi_load_from_memory(data, (int)size, &width, &height, &ignored, decoded_channels);
    free(cleaned);
    if (!decoded) {
        char reason[64];
        printable_reason(reason, sizeof reason);
        return error_set(err, "image '%s' is corrupt or truncated (%s); re-export or replace the file", name,
                         reason);
    }
    if (image_alloc(out, width, height, 3, err)) {
        stbi_image_free(decoded);
        return error_prefix(err, "image '%s'", name);
    }
    to_rgb_on_white(out->pixels, decoded, (size_t)width * (size_t)height, decoded_channels);
    stbi_image_free(decoded);
    return 0;
}

int image_load_from_memory(Image *out, const unsigned char *data, size_t size, const char *name_for_errors,
                           const ImageLoadOptions *options, Error *err) {
    const char *name = display_name(name_for_errors);
    *out = (Image){0};
    if (!data || size == 0) return error_set(err, "image '%s' is empty (0 bytes); pass a non-empty image file", name);
    if (size > INT_MAX)
        return error_set(err, "image '%s' is %zu bytes, more than the decoder's 2 GiB limit", name, size);
    long long max_pixels = options && options->max_pixels > 0 ? options->max_pixels : IMAGE_DEFAULT_MAX_PIXELS;
    ImageFormat format = detect_format(data, size);
    int channels_in_file = 0;
    /* Before stb sees the header, whatever the format looks like. */
    if (!jpeg_huffman_tables_valid(data, size))
        return error_set(err, "image '%s' is a corrupt JPEG (a Huffman table defines more than 256 codes); "
                              "re-export or replace the file", name);
    if (check_header(data, size, name, format, max_pixels, &channels_in_file, err)) return -1;
    if (format == FORMAT_JPEG && !jpeg_has_end_marker(data, size))
        return error_set(err, "image '%s' is a truncated JPEG (no end-of-image marker); re-download or re-export it",
                         name);
    if (decode_to_rgb(out, data, size, name, channels_in_file, err)) return -1;
    if (format == FORMAT_JPEG && apply_orientation(out, jpeg_exif_orientation(data, size), err)) {
        image_free(out);
        return error_prefix(err, "image '%s'", name);
    }
    return 0;
}

/* ---- files ---- */

/* Reads the whole file, with a message for each way that can fail. */
static int read_file(const char *path, unsigned char **data_out, size_t *size_out, Error *err) {
    *data_out = NULL;
    *size_out = 0;
    struct stat info;
    if (stat(path, &info) != 0)
        return error_set(err, "cannot open image '%s': %s; check the path", path, strerror(errno));
    if (S_ISDIR(info.st_mode))
        return error_set(err, "'%s' is a directory, not an image file; pass the path of an image file", path);
    if (!S_ISREG(info.st_mode))
        return error_set(err, "'%s' is not a regular file; pass the path of an image file", path);
    if (info.st_size == 0)
        return error_set(err, "image '%s' is empty (0 bytes); replace it with a valid image file", path);
    if ((unsigned long long)info.st_size > INT_MAX)
        return error_set(err, "image '%s' is %lld bytes, more than the decoder's 2 GiB limit", path,
                         (long long)info.st_size);
    FILE *file = fopen(path, "rb");
    if (!file) return error_set(err, "cannot open image '%s': %s; check its permissions", path, strerror(errno));
    size_t size = (size_t)info.st_size;
    unsigned char *data = malloc(size);
    if (!data) {
        fclose(file);
        return error_set(err, "out of memory reading image '%s' (%zu bytes)", path, size);
    }
    size_t got = fread(data, 1, size, file);
    int read_error = ferror(file) ? errno : 0;
    fclose(file);
    if (got != size) {
        free(data);
        if (read_error) return error_set(err, "cannot read image '%s': %s", path, strerror(read_error));
        return error_set(err, "image '%s' shrank while being read (%zu of %zu bytes); is another program writing it?",
                         path, got, size);
    }
    *data_out = data;
    *size_out = size;
    return 0;
}

int image_load(Image *out, const char *path, const ImageLoadOptions *options, Error *err) {
    *out = (Image){0};
    unsigned char *data;
    size_t size;
    if (read_file(path, &data, &size, err)) return -1;
    int status = image_load_from_memory(out, data, size, path, options, err);
    free(data);
    return status;
}

static int has_tga_extension(const char *path) {
    size_t length = strlen(path);
    return length >= 4 && strcasecmp(path + length - 4, ".tga") == 0;
}

int image_is_image_file(const char *path) {
    unsigned char head[96];
    FILE *file = fopen(path, "rb");
    if (!file) return 0;
    size_t got = fread(head, 1, sizeof head, file);
    fclose(file);
    if (detect_format(head, got) != FORMAT_UNKNOWN) return 1;
    return got > 0 && has_tga_extension(path);
}

/* ---- allocation, resize, tensor ---- */

int image_alloc(Image *out, int width, int height, int channels, Error *err) {
    *out = (Image){0};
    if (width <= 0 || height <= 0 || channels < 1 || channels > 4)
        return error_set(err, "invalid image size %dx%d with %d channels (need positive size and 1-4 channels)",
                         width, height, channels);
    size_t bytes = (size_t)width * (size_t)height * (size_t)channels;
    if (bytes / (size_t)width / (size_t)height != (size_t)channels)
        return error_set(err, "image size %dx%dx%d overflows memory size", width, height, channels);
    unsigned char *pixels = calloc(bytes, 1);
    if (!pixels) return error_set(err, "out of memory allocating a %dx%dx%d image", width, height, channels);
    *out = (Image){.width = width, .height = height, .channels = channels, .pixels = pixels};
    return 0;
}

void image_free(Image *img) {
    if (!img) return;
    free(img->pixels);
    img->pixels = NULL;
}

int image_resize(Image *out, const Image *in, int width, int height, Error *err) {
    *out = (Image){0};
    if (!in || !in->pixels) return error_set(err, "image_resize: the input image has no pixels");
    if (image_alloc(out, width, height, in->channels, err)) return error_prefix(err, "image_resize");
    /* The alpha index lets stb weight colour by coverage so transparent
     * pixels do not bleed their (meaningless) colour into the edges. */
    int alpha_channel = in->channels == 4 ? 3 : in->channels == 2 ? 1 : STBIR_ALPHA_CHANNEL_NONE;
    if (!stbir_resize_uint8_generic(in->pixels, in->width, in->height, 0, out->pixels, width, height, 0,
                                    in->channels, alpha_channel, 0, STBIR_EDGE_CLAMP, STBIR_FILTER_DEFAULT,
                                    STBIR_COLORSPACE_LINEAR, NULL)) {
        image_free(out);
        return error_set(err, "image_resize: stb_image_resize failed to resize %dx%d to %dx%d (out of memory?)",
                         in->width, in->height, width, height);
    }
    return 0;
}

int image_resize_region(Image *out, const Image *in, float x0, float y0, float x1, float y1, int width,
                        int height, Error *err) {
    *out = (Image){0};
    if (!in || !in->pixels) return error_set(err, "image_resize_region: the input image has no pixels");
    if (!(0.0f <= x0 && x0 < x1 && x1 <= 1.0f && 0.0f <= y0 && y0 < y1 && y1 <= 1.0f))
        return error_set(err, "image_resize_region: region [%g, %g) x [%g, %g) is not inside the image", x0, x1, y0, y1);
    if (image_alloc(out, width, height, in->channels, err)) return error_prefix(err, "image_resize_region");
    int alpha_channel = in->channels == 4 ? 3 : in->channels == 2 ? 1 : STBIR_ALPHA_CHANNEL_NONE;
    if (!stbir_resize_region(in->pixels, in->width, in->height, 0, out->pixels, width, height, 0, STBIR_TYPE_UINT8,
                             in->channels, alpha_channel, 0, STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP, STBIR_FILTER_DEFAULT,
                             STBIR_FILTER_DEFAULT, STBIR_COLORSPACE_LINEAR, NULL, x0, y0, x1, y1)) {
        image_free(out);
        return error_set(err, "image_resize_region: stb_image_resize failed (out of memory?)");
    }
    return 0;
}

void image_flip_horizontal(Image *img) {
    int c = img->channels;
    for (int y = 0; y < img->height; y++) {
        unsigned char *row = img->pixels + (size_t)y * img->width * c;
        for (int left = 0, right = img->width - 1; left < right; left++, right--)
            for (int k = 0; k < c; k++) {
                unsigned char t = row[left * c + k];
                row[left * c + k] = row[right * c + k];
                row[right * c + k] = t;
            }
    }
}

static float luma(const float *rgb) { return 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2]; }

static unsigned char clamp_byte(float v) { return (unsigned char)(v <= 0.0f ? 0 : v >= 255.0f ? 255 : v + 0.5f); }

void image_adjust_color(Image *img, float brightness, float contrast, float saturation) {
    if (img->channels != 3) return;
    size_t count = (size_t)img->width * (size_t)img->height;
    double grey_sum = 0.0;
    for (size_t i = 0; i < count; i++) {
        float rgb[3];
        for (int k = 0; k < 3; k++) rgb[k] = fminf(255.0f, img->pixels[3 * i + k] * brightness);
        grey_sum += luma(rgb);
    }
    float mean_grey = count ? (float)(grey_sum / (double)count) : 0.0f;
    for (size_t i = 0; i < count; i++) {
        float rgb[3];
        for (int k = 0; k < 3; k++) {
            float v = fminf(255.0f, img->pixels[3 * i + k] * brightness);
            rgb[k] = fminf(255.0f, fmaxf(0.0f, contrast * v + (1.0f - contrast) * mean_grey));
        }
        float grey = luma(rgb);
        for (int k = 0; k < 3; k++) img->pixels[3 * i + k] = clamp_byte(saturation * rgb[k] + (1.0f - saturation) * grey);
    }
}

void image_to_tensor(float *chw, const Image *img, const float mean[3], const float std[3]) {
    size_t plane = (size_t)img->width * (size_t)img->height;
    size_t channels = (size_t)img->channels;
    for (int c = 0; c < 3; c++) {
        size_t source_channel = channels >= 3 ? (size_t)c : 0;
        float scale = 1.0f / (255.0f * std[c]);
        float offset = mean[c] / std[c];
        float *out = chw + (size_t)c * plane;
        for (size_t i = 0; i < plane; i++) out[i] = (float)img->pixels[i * channels + source_channel] * scale - offset;
    }
}

/* ---- PNG writing ---- */

typedef struct {
    FILE *file;
    int error; /* first errno seen, 0 if none */
} PngSink;

static void png_sink_write(void *context, void *data, int size) {
    PngSink *sink = context;
    if (sink->error || size <= 0) return;
    if (fwrite(data, 1, (size_t)size, sink->file) != (size_t)size) sink->error = errno ? errno : EIO;
}

/* Encodes into the already-open temporary file and makes it durable.
 * Closes the file in every case. */
typedef enum { WRITE_PNG, WRITE_JPEG } WriteFormat;

static const char *write_format_name(WriteFormat format) { return format == WRITE_PNG ? "PNG" : "JPEG"; }

static int write_stream(FILE *file, const Image *img, const char *path, WriteFormat format, Error *err) {
    PngSink sink = {.file = file, .error = 0};
    errno = 0;
    int encoded = format == WRITE_PNG ? stbi_write_png_to_func(png_sink_write, &sink, img->width, img->height,
                                                               img->channels, img->pixels, img->width * img->channels)
                                      : stbi_write_jpg_to_func(png_sink_write, &sink, img->width, img->height,
                                                               img->channels, img->pixels, 92);
    if (!sink.error && fflush(file) != 0) sink.error = errno;
    if (!sink.error && fsync(fileno(file)) != 0) sink.error = errno;
    if (fclose(file) != 0 && !sink.error) sink.error = errno ? errno : EIO;
    if (sink.error)
        return error_set(err, "cannot write %s '%s': %s%s", write_format_name(format), path, strerror(sink.error),
                         sink.error == ENOSPC ? "; free some disk space and retry" : "");
    if (!encoded)
        return error_set(err, "cannot write %s '%s': the encoder failed (out of memory?)", write_format_name(format), path);
    return 0;
}

/* Encodes into a temporary file beside path, then renames it into place. */
static int write_atomically(const Image *img, const char *path, WriteFormat format, Error *err) {
    const char *name = write_format_name(format);
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0 || img->channels < 1 || img->channels > 4)
        return error_set(err, "cannot write %s '%s': the image is empty or malformed", name, path);
    if ((long long)img->width * img->channels > INT_MAX)
        return error_set(err, "cannot write %s '%s': rows of %d pixels are too wide for the encoder", name, path,
                         img->width);
    size_t temp_size = strlen(path) + sizeof ".tmp-XXXXXX";
    char *temp_path = malloc(temp_size);
    if (!temp_path) return error_set(err, "out of memory writing %s '%s'", name, path);
    snprintf(temp_path, temp_size, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(temp_path);
    if (fd < 0) {
        int saved = errno;
        free(temp_path);
        return error_set(err, "cannot create a temporary file next to '%s': %s; check that the folder exists "
                              "and is writable", path, strerror(saved));
    }
    /* mkstemp creates 0600; an image is ordinarily readable by others. */
    (void)fchmod(fd, 0644);
    FILE *file = fdopen(fd, "wb");
    if (!file) {
        int saved = errno;
        close(fd);
        unlink(temp_path);
        free(temp_path);
        return error_set(err, "cannot write %s '%s': %s", name, path, strerror(saved));
    }
    int status = write_stream(file, img, path, format, err);
    if (status == 0 && rename(temp_path, path) != 0)
        status = error_set(err, "cannot move the finished %s into place at '%s': %s", name, path, strerror(errno));
    if (status != 0) unlink(temp_path);
    free(temp_path);
    return status;
}

int image_write_png(const Image *img, const char *path, Error *err) { return write_atomically(img, path, WRITE_PNG, err); }

static int has_extension(const char *path, const char *extension) {
    size_t n = strlen(path), k = strlen(extension);
    return n > k && strcasecmp(path + n - k, extension) == 0;
}

int image_write_by_extension(const Image *img, const char *path, Error *err) {
    if (has_extension(path, ".png")) return write_atomically(img, path, WRITE_PNG, err);
    if (has_extension(path, ".jpg") || has_extension(path, ".jpeg")) return write_atomically(img, path, WRITE_JPEG, err);
    return error_set(err, "'%s': the format follows the file name; end it in .png (lossless) or .jpg", path);
}
