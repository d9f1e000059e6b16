#ifndef APP_CAPTION_JSON_H
#define APP_CAPTION_JSON_H

#include <cJSON.h>

#include "decode.h"
#include "model.h"

/* The JSON record of one captioned image, shared by `caption --json` and
 * `caption batch`: path (and path_bytes when the name is not UTF-8, see
 * json_utf8.h), caption, tokens, logprob, and with attention the per-step
 * maps (grid [H, W], alpha [steps][H*W], beta [steps]). Print it with
 * json_print_utf8. */
cJSON *caption_to_json(const SatModel *model, const char *path, const Caption *caption, int with_attention);

#endif
