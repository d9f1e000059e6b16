#ifndef APP_CAPTION_JSON_H
#define APP_CAPTION_JSON_H

#include <cJSON.h>

#include "decode.h"
#include "model.h"

/* The JSON record of one captioned image, shared by `caption --json` and
 * `caption batch`: path, caption, tokens, logprob, and with attention the
 * per-step maps (grid [H, W], alpha [steps][H*W], beta [steps]). */
cJSON *caption_to_json(const SatModel *model, const char *path, const Caption *caption, int with_attention);

#endif
