#ifndef APP_CMD_EXPORT_H
#define APP_CMD_EXPORT_H

#include "decode.h"
#include "error.h"
#include "figure.h"
#include "image.h"
#include "model.h"
#include "text.h"

/* `caption export IMAGE -o OUT.png [options]`: captions one image and writes
 * the attention figure (vision/figure.h); --frames DIR also writes one PNG
 * per word. A bottleneck model has no attention to draw: that is reported
 * as an error (exit 1). Exit 0 on success, 1 on a data error (unreadable
 * image or model, no attention, failed write), 2 on a usage error; errors
 * are one line on stderr starting with "caption export: ". */
int cmd_export(int argc, char **argv);

/* The figure of one captioned image, the way `caption export` makes it:
 * words from the model's vocabulary, the caption text as title, beta and
 * word probabilities (exp of token_logprobs) passed on, so only the layout
 * and overlay settings of opts are used (its title/beta/prob are replaced).
 * Writes it to out_path (atomically; NULL = don't) and, when frames_dir is
 * not NULL, one frame per word there (created if missing) named by
 * export_frame_name. only_words (NULL = all) keeps the panels of the
 * comma-separated words listed, the title still the whole caption; label
 * (NULL = none) goes before it as "LABEL: caption", e.g. which attention
 * head the maps are. -1 with
 * err (naming the file) on failure, e.g. a caption without attention maps,
 * or none of only_words in it. */
int export_caption(const SatModel *model, const Caption *caption, const Image *image, const char *out_path,
                   const char *frames_dir, const char *only_words, const char *label, const FigureOptions *opts,
                   const Font *font, Error *err);

/* "07-dog.png": the step, zero-padded to at least two digits (more when
 * count > 100), and the word reduced to letters, digits, '-' and '_' (other
 * bytes become '_', leading/trailing '_' dropped, at most 40 bytes; "word"
 * if nothing is left). */
void export_frame_name(char *buf, size_t size, int step, int count, const char *word);

#endif
