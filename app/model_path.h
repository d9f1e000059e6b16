#ifndef APP_MODEL_PATH_H
#define APP_MODEL_PATH_H

#include <stddef.h>

#include "error.h"

/* Where the bundled default model is looked for, in order:
 *   1. $CAPTION_MODEL
 *   2. the source tree's assets/ (running from a build directory)
 *   3. the install prefix's share/caption/ (after `meson install`)
 * in each folder as default-model.safetensors, else default-ensemble.txt
 * (the bundled default is an ensemble: model_path_named). Returns the
 * first that exists (for an ensemble, its members' paths joined by
 * commas), or NULL. */
const char *model_path_default(char *buffer, size_t size);

/* A bundled model by name: NAME-model.safetensors in the source tree's
 * assets/ or the install prefix's share/caption/ ("default" also honours
 * $CAPTION_MODEL first), or a bundled ensemble, NAME-ensemble.txt in one of
 * those folders: one line naming models of its folder as --model A,B does
 * ('#' lines are comments), which becomes their paths joined by commas.
 * Returns the first found, or NULL: with err set when an ensemble file is
 * malformed or names a model its folder lacks. */
const char *model_path_named(const char *name, char *buffer, size_t size, Error *err);

/* Whether --model's value names a bundled model rather than a file: only
 * lower-case letters, digits and '-', and no file of that name here. */
int model_path_is_name(const char *text);

/* Whether --model's value is an ensemble, "A,B[,...]" (pipeline.h): a
 * comma, and no file of that name. */
int model_path_is_list(const char *text);

/* The model of an ensemble list at *cursor (up to the next comma) into
 * out; moves *cursor past it and its comma, or to NULL after the last.
 * -1 (nothing moved) when it is empty or does not fit in size bytes. */
int model_path_list_next(const char **cursor, char *out, size_t size);

/* What `--model VALUE` (or no --model: value NULL) means, for callers that
 * word their own messages: NULL -> model_path_default, a name
 * (model_path_is_name) -> model_path_named, an ensemble (model_path_is_list)
 * -> each of its models resolved so, joined with commas into buffer,
 * anything else -> value itself (which may not exist: loading it says so).
 * Returns the path (buffer, or value), or NULL with err saying what was looked for and where. */
const char *model_path_resolve(const char *value, char *buffer, size_t size, Error *err);

/* The names of the bundled models found (", "-separated, sorted), or "" . */
void model_path_list_names(char *buffer, size_t size);

/* Writes the candidate list (one per line, with whether each exists) for --help. */
void model_path_describe(char *buffer, size_t size);

#endif
