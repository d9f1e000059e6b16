/* Fuzz target: the weights-file loader (safetensors header, offsets, dtypes,
 * the model metadata, every tensor's shape and values). A model it accepts
 * and that is small enough to run quickly also captions a blank image, so
 * weights that are finite but absurd (1e38) cannot break decoding either. */
#include "decode.h"
#include "fuzz.h"
#include "model.h"

static void caption_blank_image(const SatModel *model) {
    Captioner *captioner;
    Error err;
    if (captioner_create(&captioner, model, 2, 6, &err) != 0) return;
    int size = model->config.image_size;
    float *image = calloc((size_t)3 * size * size, sizeof *image);
    Caption caption = {0};
    DecodeOptions options = {2, 6, 0.5f};
    if (image && captioner_run(captioner, image, &options, &caption, &err) == 0) {
        FUZZ_ASSERT(caption.length >= 0 && caption.length <= 6);
        for (int i = 0; i < caption.length; i++)
            FUZZ_ASSERT(caption.tokens[i] > TOKEN_UNK && caption.tokens[i] < model->config.vocab_size);
        char text[256];
        caption_text(model, &caption, text, sizeof text);
        caption_free(&caption);
    }
    free(image);
    captioner_free(captioner);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    SatModel model;
    Error err;
    if (sat_model_load_memory(&model, data, size, "fuzz-input", &err) != 0) return 0;
    int small = model.table.total < 200000 && model.config.image_size <= 64;
    if (small) caption_blank_image(&model);
    sat_model_free(&model);
    return 0;
}
