/* The fuzz build of the image harness compiles stb_image from the same
 * header libstb is built from, so the decoder gets coverage feedback and
 * sanitizer checks too (its definitions take precedence over libstb.so's). */
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
