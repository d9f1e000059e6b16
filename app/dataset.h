#ifndef APP_DATASET_H
#define APP_DATASET_H

#include "error.h"

/* A captioning dataset split: images with their reference captions.
 * Sources:
 *   - a folder in the Flickr8k layout: images/, captions.txt
 *     (`image#N<TAB>caption`), and one `<split>.txt` per split (image names);
 *   - a Karpathy-split JSON (splits "train", "val"/"dev", "test"); images in
 *     image_dir, or the folder `images/` beside the JSON;
 *   - a COCO captions JSON (the whole file is one split); images likewise.
 * Captions are kept tokenised as the evaluation tokenises them (lowercase,
 * punctuation removed), so training targets and scores agree. */
typedef struct {
    char *name;      /* file name as the captions file gives it */
    char *path;      /* where the image file is */
    char **captions; /* tokenised, space-separated */
    int caption_count;
} DatasetImage;

typedef struct {
    DatasetImage *images;
    int count;
    char *source; /* for messages */
} Dataset;

int dataset_load(Dataset *dataset, const char *source, const char *image_dir, const char *split, Error *err);
/* Several splits of one source, its captions file parsed once: datasets[k]
 * gets splits[k]. On failure every one is left empty. */
int dataset_load_splits(Dataset *datasets, const char *const *splits, int count, const char *source,
                        const char *image_dir, Error *err);
void dataset_free(Dataset *dataset);

#endif
