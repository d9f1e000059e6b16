/* Captions an image and says where the model looked for each word.
 * Build: cc example.c $(pkg-config --cflags --libs caption)
 * Run:   ./a.out IMAGE [MODEL]   (no MODEL: the bundled one) */
#include <caption.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: %s IMAGE [MODEL]\n", argv[0]), 2;
    caption_model *model = NULL;
    caption_result *result = NULL;
    caption_error err;
    uint8_t *rgb = NULL;
    int width, height, grid_h, grid_w;
    if (caption_model_open(&model, argc > 2 ? argv[2] : NULL, NULL, 0, &err) != CAPTION_OK ||
        caption_image_load(argv[1], 0, &rgb, &width, &height, &err) != CAPTION_OK ||
        caption_model_caption_rgb(model, rgb, width, height, 0, NULL, &result, &err) != CAPTION_OK) {
        fprintf(stderr, "example: %s\n", err.message);
        caption_image_free(rgb);
        caption_model_close(model);
        return 1;
    }
    printf("%s\n", caption_result_text(result));
    caption_result_grid(result, &grid_h, &grid_w);
    for (int i = 0; i < caption_result_length(result); i++) {
        const float *alpha = caption_result_alpha(result, i); /* NULL: a model without attention */
        int best = 0;
        for (int cell = 1; alpha && cell < grid_h * grid_w; cell++) best = alpha[cell] > alpha[best] ? cell : best;
        printf("%-10s p=%.2f  row %d, column %d of %dx%d\n", caption_result_word(result, i),
               caption_result_word_probability(result, i), best / grid_w, best % grid_w, grid_h, grid_w);
    }
    caption_result_free(result);
    caption_image_free(rgb);
    caption_model_close(model);
    return 0;
}
