#ifndef APP_CAPTION_INTERNAL_H
#define APP_CAPTION_INTERNAL_H

#include "caption.h"
#include "decode.h"
#include "model.h"

/* What is behind libcaption's opaque handles, for the programs of this
 * project only (never installed): `caption --json` formats a result with
 * caption_json.c, which reads the internal Caption (a Transformer's
 * per-head maps, the vocabulary) rather than the public accessors, so that
 * its output stays exactly what it was before the library existed. */
/* Named outside caption.h's prefixes (caption_model_, caption_result_), which
 * the shared library exports (libcaption.map): these stay internal. */
const SatModel *caption_internal_model(const caption_model *model);
const Caption *caption_internal_caption(const caption_result *result);

#endif
