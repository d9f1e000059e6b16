/* Fuzz target: image decoding through the project's own loader
 * (image_load_from_memory: format detection, the size check from the header,
 * JPEG structure and EXIF orientation, stb_image), then what the captioning
 * pipeline does with the pixels (resize, to-tensor). */
#include <string.h>

#include "fuzz.h"
#include "image.h"

/* Smaller than the default cap (64 Mi pixels) so that each input decodes in
 * milliseconds: the check is the same code whatever the limit. */
enum { FUZZ_MAX_PIXELS = 1 << 20 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ImageLoadOptions options = {.max_pixels = FUZZ_MAX_PIXELS};
    Image img;
    Error err;
    if (image_load_from_memory(&img, data, size, "fuzz-input", &options, &err) != 0) {
        FUZZ_ASSERT(img.pixels == NULL);
        FUZZ_ASSERT(memchr(err.message, '\0', sizeof err.message) != NULL);
        return 0;
    }
    FUZZ_ASSERT(img.width > 0 && img.height > 0 && img.channels == 3);
    FUZZ_ASSERT((long long)img.width * img.height <= FUZZ_MAX_PIXELS);
    Image small;
    if (image_resize(&small, &img, 8, 8, &err) == 0) {
        const float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.25f, 0.25f, 0.25f};
        float tensor[3 * 8 * 8];
        image_to_tensor(tensor, &small, mean, std);
        image_free(&small);
    }
    image_free(&img);
    return 0;
}
