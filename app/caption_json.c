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
    }
    return root;
}
