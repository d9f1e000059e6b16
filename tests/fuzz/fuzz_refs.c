/* Fuzz target: the reference readers of `caption eval` and the dataset
 * (Flickr8k token file, COCO captions JSON, Karpathy-split JSON; the format
 * is detected from the content), then what evaluation does with a set:
 * look images up, describe where they were read, keep a split. */
#include <string.h>

#include "caption_sets.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    CaptionSet refs;
    Error err;
    caption_set_init(&refs);
    if (caption_sets_read_refs_memory((const char *)data, size, "fuzz-input", &refs, &err) == 0) {
        FUZZ_ASSERT(refs.image_count > 0);
        for (size_t i = 0; i < refs.image_count; i++) {
            const ImageCaptions *image = &refs.images[i];
            FUZZ_ASSERT(caption_set_find(&refs, image->image) == image);
            FUZZ_ASSERT(image->caption_count > 0);
            char where[700];
            caption_set_describe(&refs, image->where, where, sizeof where);
        }
        if (refs.format == CAPTION_FORMAT_KARPATHY) caption_set_keep_split(&refs, "test", &err);
    }
    caption_set_free(&refs);
    return 0;
}
