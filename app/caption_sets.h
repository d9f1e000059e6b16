#ifndef APP_CAPTION_SETS_H
#define APP_CAPTION_SETS_H

/* Reference and hypothesis caption files, keyed by image file name.
 *
 * References (caption_sets_read_refs), format detected from the content:
 *   - Flickr8k token file: `image.jpg#N<TAB>caption` lines (the `#N` is
 *     optional);
 *   - COCO captions JSON: {"images":[{"id","file_name"}],
 *                          "annotations":[{"image_id","caption"}]};
 *   - Karpathy-split JSON: {"images":[{"filename","split",
 *                          "sentences":[{"raw","tokens"}]}]}.
 * Hypotheses (caption_sets_read_hyps):
 *   - `image<TAB>caption` lines;
 *   - JSON Lines, one object per line with at least "path" and "caption";
 *   - COCO results JSON: [{"image_id":..., "caption":...}].
 * Images are named by their base file name, so hypotheses written with full
 * paths match references written with bare names. Blank lines are skipped;
 * anything else malformed is an error naming the file and line. */

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef enum {
    CAPTION_FORMAT_FLICKR_TOKENS, /* references: image#N<TAB>caption */
    CAPTION_FORMAT_COCO,          /* references: COCO captions JSON */
    CAPTION_FORMAT_KARPATHY,      /* references: Karpathy-split JSON */
    CAPTION_FORMAT_TSV,           /* hypotheses: image<TAB>caption */
    CAPTION_FORMAT_JSON_LINES,    /* hypotheses: {"path","caption"} per line */
    CAPTION_FORMAT_COCO_RESULTS,  /* hypotheses: [{"image_id","caption"}] */
} CaptionFormat;

typedef struct {
    char *image;     /* base file name, e.g. "1000268201_693b08cb0e.jpg" */
    char **captions; /* as written in the file */
    size_t caption_count, caption_capacity;
    size_t where;    /* line of first appearance, or 1-based entry number in JSON */
    long long coco_id; /* COCO image id when the file gives one, else -1 */
    char *split;     /* Karpathy split ("train", "val", "test", ...) or NULL */
} ImageCaptions;

typedef struct {
    char *path;           /* the file read, for messages */
    CaptionFormat format;
    ImageCaptions *images; /* in file order */
    size_t image_count, image_capacity;
    size_t *slots;        /* name index: open addressing, image index + 1 */
    size_t slot_capacity;
} CaptionSet;

void caption_set_init(CaptionSet *set);
void caption_set_free(CaptionSet *set);

/* The image's entry, or NULL. */
const ImageCaptions *caption_set_find(const CaptionSet *set, const char *image);

/* Appends a caption to the image, creating the image (at `where`) if new. */
int caption_set_add(CaptionSet *set, const char *image, const char *caption, size_t where,
                    Error *err);

/* Total number of captions over all images. */
size_t caption_set_caption_count(const CaptionSet *set);

/* Where an image was read: "file:12" for line-based files, "file: images[11]"
 * or "file: [11]" for JSON ones. */
void caption_set_describe(const CaptionSet *set, size_t where, char *buffer, size_t size);

/* Reads a reference file (format detected from content) into an initialised,
 * empty set. For the Flickr8k token file the images come in file order with
 * their captions in file order, which is what a dataset reader needs. */
int caption_sets_read_refs(const char *path, CaptionSet *refs, Error *err);
/* The same from the file's bytes in memory; name (may be NULL) stands for
 * the path in messages. */
int caption_sets_read_refs_memory(const char *data, size_t size, const char *name, CaptionSet *refs, Error *err);

/* Reads a Flickr8k token file (`image#N<TAB>caption`) only. */
int caption_sets_read_flickr_tokens(const char *path, CaptionSet *refs, Error *err);

/* Keeps only the images of a Karpathy split; fails if the set has no split
 * information or no image is in that split. */
int caption_set_keep_split(CaptionSet *set, const char *split, Error *err);

/* Reads a hypothesis file (format detected from content); exactly one
 * caption per image, a second one is an error. refs (may be NULL) maps COCO
 * results' numeric image ids to file names: through the COCO ids of the
 * references when they have them, else through the digits of the file
 * names ("COCO_val2014_000000391895.jpg" and "391895.jpg" are id 391895,
 * "1000268201_693b08cb0e.jpg" is 1000268201). A string image_id is taken as
 * a file name. An id matching no reference is kept under the name
 * "image_id N" so that pairing reports it. */
int caption_sets_read_hyps(const char *path, const CaptionSet *refs, CaptionSet *hyps,
                           Error *err);
/* The same from the file's bytes in memory (name as above). */
int caption_sets_read_hyps_memory(const char *data, size_t size, const char *name, const CaptionSet *refs,
                                  CaptionSet *hyps, Error *err);

typedef struct {
    size_t count;        /* images scored */
    size_t *refs_index;  /* count entries: index into refs->images */
    size_t *hyps_index;  /* count entries: index into hyps->images */
    size_t refs_without_hypothesis; /* skipped (intersection only) */
    size_t hyps_without_refs;       /* skipped (intersection only) */
} CaptionPairing;

/* Pairs every reference image with its hypothesis, in reference order. An
 * image with references but no hypothesis, or a hypothesis for an image
 * without references, is an error naming it, unless `intersection` is set:
 * then only images present in both are paired and the others counted. */
int caption_sets_pair(const CaptionSet *refs, const CaptionSet *hyps, bool intersection,
                      CaptionPairing *pairing, Error *err);

void caption_pairing_free(CaptionPairing *pairing);

#endif
