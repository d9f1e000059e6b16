#ifndef TESTS_TEST_PIXELS_H
#define TESTS_TEST_PIXELS_H

/* Pixel counting shared by the tests that look at rendered images (plots,
 * figures): static inline, as test_util.h. */
#include <stddef.h>

#include "draw.h"
#include "image.h"

/* How many pixels of the RGB image are exactly the colour. */
static inline long count_color(const Image *img, Rgb color) {
    long n = 0;
    for (size_t i = 0; i < (size_t)img->width * (size_t)img->height; i++) {
        const unsigned char *p = img->pixels + i * 3;
        n += p[0] == color.r && p[1] == color.g && p[2] == color.b;
    }
    return n;
}

#endif
