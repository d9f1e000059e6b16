/* Tests for vision/image: loading (formats, conversions, every error path),
 * resize, tensor conversion, PNG writing and EXIF orientation. Test inputs
 * are generated here with stb_image_write into a fresh temporary folder. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image_write.h>

#include "check.h"
#include "image.h"
#include "test_util.h"

typedef struct {
    char dir[64];
    char path[256];
} TempDir;

static const char *temp_path(TempDir *temp, const char *name) {
    snprintf(temp->path, sizeof temp->path, "%s/%s", temp->dir, name);
    return temp->path;
}

static void remove_temp_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *entry;
    char path[512];
    while ((entry = readdir(d)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
        struct stat info;
        if (stat(path, &info) == 0 && S_ISDIR(info.st_mode))
            remove_temp_dir(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static int write_bytes(const char *path, const unsigned char *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t written = fwrite(data, 1, size, f);
    return (fclose(f) == 0 && written == size) ? 0 : -1;
}

/* A deterministic pattern different in every pixel and channel. */
static unsigned char *make_pattern(int width, int height, int channels) {
    unsigned char *p = malloc((size_t)width * height * channels);
    for (int i = 0; i < width * height * channels; i++) p[i] = (unsigned char)(i * 37 + 11);
    return p;
}

static int near(int a, int b, int tolerance) { return abs(a - b) <= tolerance; }

static const unsigned char *pixel_at(const Image *img, int x, int y) {
    return img->pixels + ((size_t)y * img->width + x) * img->channels;
}

static void test_lossless_formats(CheckCounts *c, TempDir *temp) {
    unsigned char *rgb = make_pattern(7, 5, 3);
    Error err = {0};
    Image img;
    CHECK(c, stbi_write_png(temp_path(temp, "rgb.png"), 7, 5, 3, rgb, 7 * 3));
    CHECK(c, image_load(&img, temp->path, NULL, &err) == 0);
    CHECK(c, img.width == 7 && img.height == 5 && img.channels == 3);
    CHECK(c, img.pixels && memcmp(img.pixels, rgb, 7 * 5 * 3) == 0);
    image_free(&img);
    CHECK(c, img.pixels == NULL);

    CHECK(c, stbi_write_bmp(temp_path(temp, "rgb.bmp"), 7, 5, 3, rgb));
    CHECK(c, image_load(&img, temp->path, NULL, &err) == 0);
    CHECK(c, img.width == 7 && img.height == 5 && img.pixels && memcmp(img.pixels, rgb, 7 * 5 * 3) == 0);
    image_free(&img);

    CHECK(c, stbi_write_tga(temp_path(temp, "rgb.tga"), 7, 5, 3, rgb));
    CHECK(c, image_is_image_file(temp->path));
    CHECK(c, image_load(&img, temp->path, NULL, &err) == 0);
    CHECK(c, img.width == 7 && img.height == 5 && img.pixels && memcmp(img.pixels, rgb, 7 * 5 * 3) == 0);
    image_free(&img);
    free(rgb);
}

static void test_jpeg(CheckCounts *c, TempDir *temp) {
    unsigned char flat[16 * 16 * 3];
    for (int i = 0; i < 16 * 16; i++) {
        flat[i * 3] = 200;
        flat[i * 3 + 1] = 100;
        flat[i * 3 + 2] = 50;
    }
    Error err = {0};
    Image img;
    CHECK(c, stbi_write_jpg(temp_path(temp, "flat.jpg"), 16, 16, 3, flat, 95));
    CHECK(c, image_is_image_file(temp->path));
    CHECK(c, image_load(&img, temp->path, NULL, &err) == 0);
    CHECK(c, img.width == 16 && img.height == 16 && img.channels == 3);
    if (img.pixels) {
        const unsigned char *p = pixel_at(&img, 8, 8);
        CHECK(c, near(p[0], 200, 4) && near(p[1], 100, 4) && near(p[2], 50, 4));
    }
    image_free(&img);
}

static void test_channel_conversion(CheckCounts *c, TempDir *temp) {
    Error err = {0};
    Image img;
    unsigned char gray[4] = {0, 60, 200, 255};
    CHECK(c, stbi_write_png(temp_path(temp, "gray.png"), 2, 2, 1, gray, 2));
    CHECK(c, image_load(&img, temp->path, NULL, &err) == 0);
    CHECK(c, img.channels == 3);
    for (int i = 0; img.pixels && i < 4; i++)
        CHECK(c, img.pixels[i * 3] == gray[i] && img.pixels[i * 3 + 1] == gray[i] && img.pixels[i * 3 + 2] == gray[i]);
    image_free(&img);

    /* Opaque red, transparent red, half-transparent black, opaque blue. */
    unsigned char rgba[16] = {255, 0, 0, 255, 255, 0, 0, 0, 0, 0, 0, 128, 0, 0, 255, 255};
    CHECK(c, stbi_write_png(temp_path(temp, "rgba.png"), 2, 2, 4, rgba, 8));
    CHECK(c, image_load(&img, temp->path, NULL, &err) == 0);
    CHECK(c, img.channels == 3);
    if (img.pixels) {
        const unsigned char *p = img.pixels;
        CHECK(c, p[0] == 255 && p[1] == 0 && p[2] == 0);
        CHECK(c, p[3] == 255 && p[4] == 255 && p[5] == 255); /* transparent -> white */
        CHECK(c, near(p[6], 127, 1) && near(p[7], 127, 1) && near(p[8], 127, 1));
        CHECK(c, p[9] == 0 && p[10] == 0 && p[11] == 255);
    }
    image_free(&img);

    unsigned char gray_alpha[4] = {0, 0, 100, 255};
    CHECK(c, stbi_write_png(temp_path(temp, "graya.png"), 2, 1, 2, gray_alpha, 4));
    CHECK(c, image_load(&img, temp->path, NULL, &err) == 0);
    if (img.pixels) {
        CHECK(c, img.pixels[0] == 255 && img.pixels[1] == 255 && img.pixels[2] == 255);
        CHECK(c, img.pixels[3] == 100 && img.pixels[4] == 100 && img.pixels[5] == 100);
    }
    image_free(&img);
}

static void put_be32(unsigned char *p, unsigned value) {
    p[0] = (unsigned char)(value >> 24);
    p[1] = (unsigned char)(value >> 16);
    p[2] = (unsigned char)(value >> 8);
    p[3] = (unsigned char)value;
}

static void test_pixel_cap(CheckCounts *c, TempDir *temp) {
    /* A PNG that is nothing but a header claiming 100000 x 100000: decoding
     * it would need 40 GB, so it must be refused from the header alone. */
    unsigned char png[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    put_be32(png + 16, 100000);
    put_be32(png + 20, 100000);
    png[24] = 8; /* bit depth */
    png[25] = 2; /* RGB */
    Error err = {0};
    Image img;
    CHECK(c, write_bytes(temp_path(temp, "huge.png"), png, sizeof png) == 0);
    CHECK(c, image_load(&img, temp->path, NULL, &err) == -1);
    CHECK(c, img.pixels == NULL);
    CHECK_MESSAGE(c, err, "huge.png");
    CHECK_MESSAGE(c, err, "100000x100000");
    CHECK_MESSAGE(c, err, "limit");

    /* A claim stb itself accepts, refused by our cap. */
    put_be32(png + 16, 10000);
    put_be32(png + 20, 10000);
    CHECK(c, write_bytes(temp_path(temp, "big.png"), png, sizeof png) == 0);
    CHECK(c, image_load(&img, temp->path, NULL, &err) == -1);
    CHECK_MESSAGE(c, err, "10000x10000");
    CHECK_MESSAGE(c, err, "limit");

    /* A real image over a caller's small cap. */
    unsigned char *rgb = make_pattern(16, 16, 3);
    CHECK(c, stbi_write_png(temp_path(temp, "small.png"), 16, 16, 3, rgb, 16 * 3));
    ImageLoadOptions options = {.max_pixels = 100};
    CHECK(c, image_load(&img, temp->path, &options, &err) == -1);
    CHECK_MESSAGE(c, err, "more than the limit of 100 pixels");
    options.max_pixels = 256;
    CHECK(c, image_load(&img, temp->path, &options, &err) == 0);
    image_free(&img);
    free(rgb);
}

static void test_file_errors(CheckCounts *c, TempDir *temp) {
    Error err = {0};
    Image img;
    CHECK(c, write_bytes(temp_path(temp, "empty.png"), (const unsigned char *)"", 0) == 0);
    CHECK(c, image_load(&img, temp->path, NULL, &err) == -1);
    CHECK_MESSAGE(c, err, "empty.png");
    CHECK_MESSAGE(c, err, "empty (0 bytes)");

    CHECK(c, image_load(&img, temp->dir, NULL, &err) == -1);
    CHECK_MESSAGE(c, err, "is a directory");

    CHECK(c, image_load(&img, temp_path(temp, "missing.jpg"), NULL, &err) == -1);
    CHECK_MESSAGE(c, err, "missing.jpg");
    CHECK_MESSAGE(c, err, "No such file or directory");

    const char *text = "this is a caption file, not a picture\n";
    CHECK(c, write_bytes(temp_path(temp, "notes.jpg"), (const unsigned char *)text, strlen(text)) == 0);
    CHECK(c, !image_is_image_file(temp->path));
    CHECK(c, image_load(&img, temp->path, NULL, &err) == -1);
    CHECK_MESSAGE(c, err, "notes.jpg");
    CHECK_MESSAGE(c, err, "not an image");
    CHECK_MESSAGE(c, err, "JPEG, PNG");

    /* Permissions do not stop root, so this only runs as a normal user. */
    unsigned char *rgb = make_pattern(4, 4, 3);
    CHECK(c, stbi_write_png(temp_path(temp, "locked.png"), 4, 4, 3, rgb, 12));
    chmod(temp->path, 0);
    if (access(temp->path, R_OK) != 0) {
        CHECK(c, image_load(&img, temp->path, NULL, &err) == -1);
        CHECK_MESSAGE(c, err, "locked.png");
        CHECK_MESSAGE(c, err, "Permission denied");
    }
    free(rgb);
    CHECK(c, image_load_from_memory(&img, (const unsigned char *)text, strlen(text), NULL, NULL, &err) == -1);
    CHECK_MESSAGE(c, err, "not an image");
}

static void test_truncated(CheckCounts *c, TempDir *temp) {
    unsigned char *rgb = make_pattern(32, 32, 3);
    Error err = {0};
    Image img;
    size_t size = 0;
    CHECK(c, stbi_write_jpg(temp_path(temp, "whole.jpg"), 32, 32, 3, rgb, 90));
    unsigned char *jpeg = (unsigned char *)read_whole_file(temp->path, &size);
    CHECK(c, jpeg && size > 400);
    CHECK(c, write_bytes(temp_path(temp, "cut.jpg"), jpeg, size * 2 / 3) == 0);
    CHECK(c, image_load(&img, temp->path, NULL, &err) == -1);
    CHECK(c, img.pixels == NULL);
    CHECK_MESSAGE(c, err, "cut.jpg");
    CHECK_MESSAGE(c, err, "truncated");
    free(jpeg);

    CHECK(c, stbi_write_png(temp_path(temp, "whole.png"), 32, 32, 3, rgb, 32 * 3));
    unsigned char *png = (unsigned char *)read_whole_file(temp->path, &size);
    CHECK(c, png && size > 100);
    CHECK(c, write_bytes(temp_path(temp, "cut.png"), png, size / 2) == 0);
    CHECK(c, image_load(&img, temp->path, NULL, &err) == -1);
    CHECK_MESSAGE(c, err, "cut.png");
    CHECK_MESSAGE(c, err, "corrupt or truncated");
    free(png);
    free(rgb);
}

static void test_resize_and_tensor(CheckCounts *c) {
    Error err = {0};
    Image in, out;
    CHECK(c, image_alloc(&in, 40, 20, 3, &err) == 0);
    for (int i = 0; i < 40 * 20; i++) {
        in.pixels[i * 3] = 10;
        in.pixels[i * 3 + 1] = 120;
        in.pixels[i * 3 + 2] = 250;
    }
    CHECK(c, image_resize(&out, &in, 10, 5, &err) == 0);
    CHECK(c, out.width == 10 && out.height == 5 && out.channels == 3);
    if (out.pixels) {
        const unsigned char *p = pixel_at(&out, 3, 2);
        CHECK(c, near(p[0], 10, 1) && near(p[1], 120, 1) && near(p[2], 250, 1));
    }
    image_free(&out);
    CHECK(c, image_resize(&out, &in, 0, 5, &err) == -1);
    image_free(&in);

    Image two;
    CHECK(c, image_alloc(&two, 2, 1, 3, &err) == 0);
    const unsigned char values[6] = {0, 51, 255, 255, 102, 0};
    memcpy(two.pixels, values, 6);
    const float mean[3] = {0.5f, 0.25f, 0.0f}, std[3] = {0.5f, 0.25f, 2.0f};
    float chw[6];
    image_to_tensor(chw, &two, mean, std);
    /* Plane c, pixel i at chw[c * 2 + i]. */
    const float expected[6] = {-1.0f, 1.0f, (0.2f - 0.25f) / 0.25f, (0.4f - 0.25f) / 0.25f, 0.5f, 0.0f};
    for (int i = 0; i < 6; i++) CHECK(c, chw[i] > expected[i] - 1e-5f && chw[i] < expected[i] + 1e-5f);
    image_free(&two);
    image_free(&two); /* idempotent */
    Image zeroed = {0};
    image_free(&zeroed);
}

/* Colour jitter: 1,1,1 changes nothing; each factor does what torchvision's
 * ColorJitter does, computed here by hand on two pixels. */
static void test_adjust_color(CheckCounts *c) {
    Error err = {0};
    Image img;
    const unsigned char values[6] = {200, 100, 50, 20, 40, 60};
    CHECK(c, image_alloc(&img, 2, 1, 3, &err) == 0);
    memcpy(img.pixels, values, 6);
    image_adjust_color(&img, 1.0f, 1.0f, 1.0f);
    CHECK(c, memcmp(img.pixels, values, 6) == 0);
    image_adjust_color(&img, 1.5f, 1.0f, 1.0f); /* 300 clamps to 255 */
    const unsigned char brighter[6] = {255, 150, 75, 30, 60, 90};
    CHECK(c, memcmp(img.pixels, brighter, 6) == 0);
    memcpy(img.pixels, values, 6);
    image_adjust_color(&img, 1.0f, 1.0f, 0.0f); /* greyscale: the 601 luma of each pixel */
    CHECK(c, img.pixels[0] == 124 && img.pixels[1] == 124 && img.pixels[2] == 124); /* 123.5 */
    CHECK(c, img.pixels[3] == 36 && img.pixels[4] == 36 && img.pixels[5] == 36);    /* 36.26 */
    memcpy(img.pixels, values, 6);
    image_adjust_color(&img, 1.0f, 0.0f, 1.0f); /* no contrast: the mean grey level everywhere */
    for (int k = 0; k < 6; k++) CHECK(c, img.pixels[k] == 80); /* (123.5 + 36.26) / 2 = 79.88 */
    memcpy(img.pixels, values, 6);
    image_adjust_color(&img, 1.0f, 0.5f, 1.0f); /* halfway to it */
    CHECK(c, img.pixels[0] == 140 && img.pixels[3] == 50 && img.pixels[5] == 70);
    image_free(&img);
}

static int count_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    int count = 0;
    struct dirent *entry;
    while (d && (entry = readdir(d)) != NULL) count += strstr(entry->d_name, ".tmp-") != NULL;
    if (d) closedir(d);
    return count;
}

static void test_write_png(CheckCounts *c, TempDir *temp) {
    Error err = {0};
    Image img, back;
    CHECK(c, image_alloc(&img, 9, 6, 3, &err) == 0);
    unsigned char *pattern = make_pattern(9, 6, 3);
    memcpy(img.pixels, pattern, 9 * 6 * 3);
    CHECK(c, image_write_png(&img, temp_path(temp, "written.png"), &err) == 0);
    CHECK(c, image_is_image_file(temp->path));
    CHECK(c, image_load(&back, temp->path, NULL, &err) == 0);
    CHECK(c, back.width == 9 && back.height == 6 && back.pixels && memcmp(back.pixels, pattern, 9 * 6 * 3) == 0);
    image_free(&back);
    /* Overwriting replaces the file in one step. */
    img.pixels[0] ^= 0xFF;
    CHECK(c, image_write_png(&img, temp->path, &err) == 0);
    CHECK(c, image_load(&back, temp->path, NULL, &err) == 0);
    CHECK(c, back.pixels && back.pixels[0] == img.pixels[0]);
    image_free(&back);
    CHECK(c, count_temporaries(temp->dir) == 0);

    CHECK(c, image_write_png(&img, temp_path(temp, "no-such-folder/x.png"), &err) == -1);
    CHECK_MESSAGE(c, err, "no-such-folder/x.png");
    CHECK_MESSAGE(c, err, "No such file or directory");
    image_free(&img);
    free(pattern);
}

/* Inserts an APP1 Exif segment holding only an Orientation tag right after
 * the SOI marker, as cameras do. */
static unsigned char *splice_exif_orientation(const unsigned char *jpeg, size_t size, int orientation,
                                              int little_endian, size_t *out_size) {
    unsigned char app1[4 + 6 + 8 + 2 + 12 + 4];
    size_t n = 0;
    app1[n++] = 0xFF;
    app1[n++] = 0xE1;
    app1[n++] = 0;
    app1[n++] = (unsigned char)(sizeof app1 - 2);
    memcpy(app1 + n, "Exif\0\0", 6);
    n += 6;
    /* TIFF header, IFD0 with one entry: tag 0x0112, type SHORT, count 1. */
    const unsigned char big[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1,
                                 0, (unsigned char)orientation, 0, 0, 0, 0, 0, 0};
    const unsigned char little[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0,
                                    (unsigned char)orientation, 0, 0, 0, 0, 0, 0, 0};
    memcpy(app1 + n, little_endian ? little : big, sizeof big);
    n += sizeof big;
    unsigned char *out = malloc(size + n);
    memcpy(out, jpeg, 2);
    memcpy(out + 2, app1, n);
    memcpy(out + 2 + n, jpeg + 2, size - 2);
    *out_size = size + n;
    return out;
}

static int is_red(const Image *img, int x, int y) {
    const unsigned char *p = pixel_at(img, x, y);
    return p[0] > 180 && p[1] < 80 && p[2] < 80;
}

static int is_white(const Image *img, int x, int y) {
    const unsigned char *p = pixel_at(img, x, y);
    return p[0] > 200 && p[1] > 200 && p[2] > 200;
}

static void test_exif_orientation(CheckCounts *c, TempDir *temp) {
    /* 32 wide, 16 high, white with a red 8x8 block in the top-left corner. */
    unsigned char rgb[32 * 16 * 3];
    memset(rgb, 255, sizeof rgb);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            rgb[(y * 32 + x) * 3 + 1] = 0;
            rgb[(y * 32 + x) * 3 + 2] = 0;
        }
    size_t size = 0, spliced_size = 0;
    CHECK(c, stbi_write_jpg(temp_path(temp, "plain.jpg"), 32, 16, 3, rgb, 95));
    unsigned char *jpeg = (unsigned char *)read_whole_file(temp->path, &size);
    Error err = {0};
    Image img;

    /* 6: stored image must turn 90 degrees clockwise; top-left -> top-right. */
    unsigned char *rotated = splice_exif_orientation(jpeg, size, 6, 0, &spliced_size);
    CHECK(c, write_bytes(temp_path(temp, "exif6.jpg"), rotated, spliced_size) == 0);
    CHECK(c, image_load(&img, temp->path, NULL, &err) == 0);
    CHECK(c, img.width == 16 && img.height == 32);
    if (img.pixels) {
        CHECK(c, is_red(&img, 12, 4));
        CHECK(c, is_white(&img, 3, 4));
        CHECK(c, is_white(&img, 12, 28));
    }
    image_free(&img);
    free(rotated);

    /* 8 (little-endian TIFF): 90 counter-clockwise; top-left -> bottom-left. */
    rotated = splice_exif_orientation(jpeg, size, 8, 1, &spliced_size);
    CHECK(c, image_load_from_memory(&img, rotated, spliced_size, "exif8.jpg", NULL, &err) == 0);
    CHECK(c, img.width == 16 && img.height == 32);
    if (img.pixels) {
        CHECK(c, is_red(&img, 4, 28));
        CHECK(c, is_white(&img, 4, 4));
    }
    image_free(&img);
    free(rotated);

    /* 3: rotated 180; top-left -> bottom-right, size unchanged. */
    rotated = splice_exif_orientation(jpeg, size, 3, 0, &spliced_size);
    CHECK(c, image_load_from_memory(&img, rotated, spliced_size, "exif3.jpg", NULL, &err) == 0);
    CHECK(c, img.width == 32 && img.height == 16);
    if (img.pixels) {
        CHECK(c, is_red(&img, 28, 12));
        CHECK(c, is_white(&img, 4, 4));
    }
    image_free(&img);
    free(rotated);

    /* All eight, every pixel: the same decoder on the same compressed data,
     * so each oriented image is exactly the plain one's pixels rearranged as
     * the EXIF table says (x, y: the shown pixel; W x H: the stored image). */
    Image plain;
    CHECK(c, image_load_from_memory(&plain, jpeg, size, "plain.jpg", NULL, &err) == 0);
    int all_exact = plain.pixels != NULL;
    for (int o = 1; all_exact && o <= 8; o++) {
        rotated = splice_exif_orientation(jpeg, size, o, o % 2, &spliced_size);
        all_exact &= image_load_from_memory(&img, rotated, spliced_size, "exif.jpg", NULL, &err) == 0;
        int W = plain.width, H = plain.height, swapped = o >= 5;
        all_exact &= img.width == (swapped ? H : W) && img.height == (swapped ? W : H);
        for (int y = 0; all_exact && y < img.height; y++)
            for (int x = 0; x < img.width; x++) {
                int sx = x, sy = y;
                switch (o) {
                case 2: sx = W - 1 - x; break;
                case 3: sx = W - 1 - x, sy = H - 1 - y; break;
                case 4: sy = H - 1 - y; break;
                case 5: sx = y, sy = x; break;
                case 6: sx = y, sy = H - 1 - x; break;
                case 7: sx = W - 1 - y, sy = H - 1 - x; break;
                case 8: sx = W - 1 - y, sy = x; break;
                }
                all_exact &= memcmp(img.pixels + ((size_t)y * img.width + x) * 3,
                                    plain.pixels + ((size_t)sy * W + sx) * 3, 3) == 0;
            }
        if (!all_exact) fprintf(stderr, "EXIF orientation %d: pixels differ from the table's rearrangement\n", o);
        image_free(&img);
        free(rotated);
    }
    CHECK(c, all_exact);
    image_free(&plain);

    /* Out-of-range orientation is ignored rather than trusted. */
    rotated = splice_exif_orientation(jpeg, size, 9, 0, &spliced_size);
    CHECK(c, image_load_from_memory(&img, rotated, spliced_size, "exif9.jpg", NULL, &err) == 0);
    CHECK(c, img.width == 32 && img.height == 16);
    if (img.pixels) CHECK(c, is_red(&img, 4, 4));
    image_free(&img);
    free(rotated);
    free(jpeg);
}

int main(void) {
    CheckCounts c = {0};
    TempDir temp;
    snprintf(temp.dir, sizeof temp.dir, "/tmp/test_image_XXXXXX");
    if (!mkdtemp(temp.dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_lossless_formats(&c, &temp);
    test_jpeg(&c, &temp);
    test_channel_conversion(&c, &temp);
    test_pixel_cap(&c, &temp);
    test_file_errors(&c, &temp);
    test_truncated(&c, &temp);
    test_resize_and_tensor(&c);
    test_adjust_color(&c);
    test_write_png(&c, &temp);
    test_exif_orientation(&c, &temp);
    remove_temp_dir(temp.dir);
    return check_summary(&c);
}
