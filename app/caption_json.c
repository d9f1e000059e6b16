#include "caption_json.h"

#include <stdio.h>
#include <stdlib.h>

#include "json_utf8.h"

/* Six significant digits: attention maps stay readable and a fifth the size. */
static cJSON *rounded_array(const float *values, int count) {
    cJSON *array = cJSON_CreateArray();
    for (int i = 0; i < count; i++) {
        char text[32];
        snprintf(text, sizeof text, "%.6g", values[i]);
        cJSON_AddItemToArray(array, cJSON_CreateNumber(strtod(text, NULL)));
    }
    return array;
}

/* A Transformer's maps: per word, every layer's and head's cross-attention
 * over the grid, and its self-attention row over the inputs so far, whose
 * words are listed once. */
static void add_transformer_maps(const SatModel *m, cJSON *attention, const Caption *c) {
    cJSON *heads = cJSON_AddArrayToObject(attention, "alpha_heads");
    cJSON *rows = cJSON_AddArrayToObject(attention, "self_attention");
    size_t pairs = (size_t)c->layers * c->heads;
    for (int t = 0; t < c->length; t++) {
        cJSON *word_heads = cJSON_CreateArray(), *word_rows = cJSON_CreateArray();
        for (int l = 0; l < c->layers; l++) {
            cJSON *layer_heads = cJSON_CreateArray(), *layer_rows = cJSON_CreateArray();
            for (int h = 0; h < c->heads; h++) {
                size_t pair = (size_t)t * pairs + (size_t)l * c->heads + h;
                cJSON_AddItemToArray(layer_heads, rounded_array(c->head_alpha + pair * c->cells, c->cells));
                cJSON_AddItemToArray(layer_rows, rounded_array(c->self_attention + pair * c->length, t + 1));
            }
            cJSON_AddItemToArray(word_heads, layer_heads);
            cJSON_AddItemToArray(word_rows, layer_rows);
        }
        cJSON_AddItemToArray(heads, word_heads);
        cJSON_AddItemToArray(rows, word_rows);
    }
    cJSON *inputs = cJSON_AddArrayToObject(attention, "self_attention_inputs");
    cJSON_AddItemToArray(inputs, cJSON_CreateString(m->vocab[TOKEN_START]));
    for (int t = 0; t + 1 < c->length; t++) cJSON_AddItemToArray(inputs, cJSON_CreateString(m->vocab[c->tokens[t]]));
}

cJSON *caption_to_json(const SatModel *m, const char *path, const Caption *c, int with_attention) {
    char text[4096];
    cJSON *root = cJSON_CreateObject();
    json_add_path(root, path);
    cJSON_AddStringToObject(root, "caption", caption_text(m, c, text, sizeof text));
    cJSON *tokens = cJSON_AddArrayToObject(root, "tokens");
    for (int i = 0; i < c->length; i++) cJSON_AddItemToArray(tokens, cJSON_CreateString(m->vocab[c->tokens[i]]));
    cJSON_AddNumberToObject(root, "logprob", c->logprob);
    cJSON_AddBoolToObject(root, "finished", c->finished);
    if (with_attention && c->alpha) {
        cJSON *attention = cJSON_AddObjectToObject(root, "attention");
        const int grid[2] = {c->grid_h, c->grid_w};
        cJSON_AddItemToObject(attention, "grid", cJSON_CreateIntArray(grid, 2));
        cJSON *alpha = cJSON_AddArrayToObject(attention, "alpha");
        for (int t = 0; t < c->length; t++)
            cJSON_AddItemToArray(alpha, rounded_array(c->alpha + (size_t)t * c->cells, c->cells));
        cJSON_AddItemToObject(attention, "beta", rounded_array(c->beta, c->length));
        if (c->head_alpha) add_transformer_maps(m, attention, c);
    }
    return root;
}
