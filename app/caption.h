#ifndef CAPTION_H
#define CAPTION_H

/* libcaption: Show, Attend and Tell image captioning for other programs.
 *
 *     caption_model *model;
 *     caption_result *result;
 *     caption_error err;
 *     if (caption_model_open(&model, NULL, NULL, 0, &err) != CAPTION_OK ||
 *         caption_model_caption_file(model, "photo.jpg", NULL, &result, &err) != CAPTION_OK)
 *         ... err.message says what went wrong ...
 *     puts(caption_result_text(result));
 *     caption_result_free(result);
 *     caption_model_close(model);
 *
 * Build: cc app.c $(pkg-config --cflags --libs caption).
 *
 * Errors. Every function that can fail returns a caption_status (CAPTION_OK
 * is 0) and, when its last argument err is not NULL, fills err with the same
 * code and a one-line message a user can act on (which file, what is wrong,
 * what to do). err is left alone on success. The library never prints and
 * never exits.
 *
 * Threads. A caption_model holds its scratch memory (the search's
 * hypotheses, the network's activations, the resized image), so calls on one
 * handle must not overlap: use one handle per thread (each loads its own
 * copy of the weights, ~17.5 MB for the bundled model), or serialise the
 * calls with a lock of your own. Different handles share nothing and may be
 * used at the same time (as `caption batch` does). A caption_result belongs
 * to no handle: it may be read from any thread, and outlives the model that
 * made it. The library keeps no global state of its own; the process-wide
 * exceptions are OpenBLAS's thread count, which CAPTION_OPEN_HELPER_THREAD
 * sets, and the environment, which caption_model_open reads
 * ($CAPTION_MODEL, below).
 *
 * Only <stddef.h> and <stdint.h> types appear here; the handles are opaque. */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; caption_version() gives the library's. */
#define CAPTION_VERSION_MAJOR 0
#define CAPTION_VERSION_MINOR 1
#define CAPTION_VERSION_PATCH 0
#define CAPTION_VERSION_STRING "0.1.0"

/* "MAJOR.MINOR.PATCH" of the library loaded at run time. */
const char *caption_version(void);

typedef enum {
    CAPTION_OK = 0,
    CAPTION_ERROR_ARGUMENT = 1,        /* a NULL handle or pointer, an option out of range, a bad image size
                                          or stride: a mistake in the calling program */
    CAPTION_ERROR_MODEL_NOT_FOUND = 2, /* no bundled model of that name, or no default model anywhere */
    CAPTION_ERROR_MODEL = 3,           /* the model file is missing, unreadable or not a valid model (or
                                          too large for the memory left: the message says which) */
    CAPTION_ERROR_IMAGE = 4,           /* the image file is missing, unreadable, not an image, corrupt or
                                          larger than max_pixels */
    CAPTION_ERROR_MEMORY = 5           /* out of memory (or no thread for CAPTION_OPEN_HELPER_THREAD) */
} caption_status;

/* A short fixed description of a status ("out of memory", ...), never NULL. */
const char *caption_status_string(caption_status status);

typedef struct {
    caption_status code;
    char message[1024]; /* one line, no trailing newline */
} caption_error;

/* The limits of caption_options, which `caption` enforces too. */
#define CAPTION_MAX_BEAM 64
#define CAPTION_MAX_LENGTH 1000
#define CAPTION_MAX_LENGTH_PENALTY 10

/* How to caption: the options of `caption` (--beam, --max-length,
 * --length-penalty, --max-pixels). Start from CAPTION_OPTIONS_INIT or
 * caption_options_init, then change what you need. */
typedef struct {
    int beam;             /* beam width, 1 (greedy) to CAPTION_MAX_BEAM; default 3 */
    int max_length;       /* at most this many words, 1 to CAPTION_MAX_LENGTH; default 30 */
    float length_penalty; /* rank finished beams by logprob / (words + 1)^A, 0 to
                             CAPTION_MAX_LENGTH_PENALTY; default 0 (raw logprob) */
    long long max_pixels; /* image files larger than this (width * height) are refused before
                             decoding; 0: the default, 64 Mi pixels. Buffers are not limited. */
} caption_options;

#define CAPTION_OPTIONS_INIT {3, 30, 0.0f, 0}
void caption_options_init(caption_options *options);

/* ---- Models ---------------------------------------------------------- */

typedef struct caption_model caption_model;

/* Flags of caption_model_open. CAPTION_OPEN_HELPER_THREAD: caption on two
 * cores, with a helper thread owned by the handle, which is what `caption`
 * does for one image at a time (the same words and numbers, bit for bit,
 * in less time when a core is free). The helper takes the place of OpenBLAS's
 * threads, so this sets OpenBLAS to one thread for the whole process: leave
 * it out when your program runs several handles in parallel or uses OpenBLAS
 * itself. Ignored on a one-core machine and under $CAPTION_PORTABLE. */
#define CAPTION_OPEN_HELPER_THREAD 1u

/* Opens a model into *model. model_name_or_path is resolved as `caption
 * --model` resolves its value:
 *   NULL       the bundled default model: $CAPTION_MODEL if set, else
 *              the source tree's assets/ (a library used from its build
 *              tree), else the install prefix's share/caption/, each as
 *              default-model.safetensors or else default-ensemble.txt (the
 *              bundled default is an ensemble of two Transformers);
 *   a name     (lower-case letters, digits and '-', and no file of that name
 *              in the current directory) the bundled NAME-model.safetensors
 *              in those folders, e.g. "lstm" or "transformer", or the
 *              ensemble NAME-ensemble.txt there lists, e.g. "default";
 *   "A,B"      (a comma and no file of that name) an ensemble: each of A,
 *              B, ... resolved as here; every word is chosen by the mean of
 *              their distributions, and the maps, grid, decoder and
 *              vocabulary are A's (the models must share the vocabulary
 *              and the input, or the open fails with CAPTION_ERROR_MODEL);
 *   otherwise  a .safetensors file.
 * $CAPTION_MODEL is how a program finds the model when the installed files
 * are not where the library was configured to look (a staged `meson install
 * --destdir`, a relocated tree); passing the file's path works too.
 * options (NULL: CAPTION_OPTIONS_INIT) are the defaults of every caption
 * call that passes NULL options; they also size the scratch memory, which
 * grows when a call asks for a wider beam or more words. flags: 0 or
 * CAPTION_OPEN_HELPER_THREAD. On failure *model is NULL. */
caption_status caption_model_open(caption_model **model, const char *model_name_or_path,
                                  const caption_options *options, unsigned flags, caption_error *err);

/* Frees the model and its scratch memory; NULL is fine. Results stay valid. */
void caption_model_close(caption_model *model);

/* The file the model was loaded from (after the resolution above); an
 * ensemble's files joined with commas. */
const char *caption_model_path(const caption_model *model);

/* Which decoder the model has: "attention" (Xu et al.'s soft attention with
 * the gate beta), "adaptive" (a visual sentinel; beta is the weight given to
 * the image), "bottleneck" (no attention: no alpha and no beta) or
 * "transformer" (alpha is the last layer's cross-attention averaged over its
 * heads; no beta). */
const char *caption_model_decoder(const caption_model *model);

/* The attention grid the model's CNN produces: alpha maps are
 * grid_h x grid_w. Either pointer may be NULL. */
void caption_model_grid(const caption_model *model, int *grid_h, int *grid_w);

/* ---- Captioning ------------------------------------------------------ */

typedef struct caption_result caption_result;

/* Captions an RGB image in memory: width x height pixels of 3 bytes (R, G,
 * B, 0-255), rows top to bottom, each `stride` bytes apart (0: packed,
 * width * 3). The pixels are only read, and not kept. The image is
 * stretched to the model's square input as in training, so callers do no
 * preprocessing of their own. options NULL: those given at open. On
 * success *result is the caller's, to free with caption_result_free; on
 * failure it is NULL. */
caption_status caption_model_caption_rgb(caption_model *model, const uint8_t *rgb, int width, int height,
                                         size_t stride, const caption_options *options, caption_result **result,
                                         caption_error *err);

/* The same from an image file (JPEG, PNG, BMP, GIF, PSD, TGA, HDR, PIC,
 * PNM), decoded as `caption` decodes it: grey replicated, alpha over white,
 * JPEG EXIF orientation applied. The file's name is in every message. */
caption_status caption_model_caption_file(caption_model *model, const char *path, const caption_options *options,
                                          caption_result **result, caption_error *err);

/* Decodes an image file as caption_model_caption_file does, into a packed
 * RGB buffer (*rgb, width * height * 3 bytes) that the caller frees with
 * caption_image_free: for programs that want the pixels too. max_pixels as
 * in caption_options (0: the default). */
caption_status caption_image_load(const char *path, long long max_pixels, uint8_t **rgb, int *width, int *height,
                                  caption_error *err);
void caption_image_free(uint8_t *rgb);

/* ---- Results --------------------------------------------------------- */

/* Frees a result; NULL is fine. */
void caption_result_free(caption_result *result);

/* The words joined by single spaces ("" for an empty caption). */
const char *caption_result_text(const caption_result *result);

/* The number of words (<end> not counted). */
int caption_result_length(const caption_result *result);

/* Word i (0 <= i < length); NULL when i is out of range. */
const char *caption_result_word(const caption_result *result, int i);

/* The natural log of word i's probability given the words before it (the
 * full softmax over the vocabulary), and that probability; 0 when i is out
 * of range. */
float caption_result_word_logprob(const caption_result *result, int i);
float caption_result_word_probability(const caption_result *result, int i);

/* The caption's log probability: the words' logprobs summed, plus <end>'s
 * when the caption finished. */
float caption_result_logprob(const caption_result *result);

/* 1 when the caption ended with <end>; 0 when it was cut at max_length
 * words (the model had not finished the sentence). */
int caption_result_finished(const caption_result *result);

/* The attention grid (either pointer may be NULL); returns 1 when the result
 * has alpha maps, 0 when the decoder has none (a bottleneck model; the grid
 * is then still the CNN's). */
int caption_result_grid(const caption_result *result, int *grid_h, int *grid_w);

/* Word i's attention map alpha: grid_h * grid_w floats, row-major (cell
 * (y, x) at y * grid_w + x), summing to 1, owned by the result. NULL when
 * the decoder has no attention (bottleneck) or i is out of range. */
const float *caption_result_alpha(const caption_result *result, int i);

/* beta, one float per word, owned by the result: the gate (how much word t
 * looked at the image at all, 0 to 1) of an "attention" model, the weight
 * of the image against the sentinel of an "adaptive" one. NULL when the
 * decoder has no beta ("bottleneck" and "transformer"); check for NULL
 * before reading. */
const float *caption_result_beta(const caption_result *result);

#ifdef __cplusplus
}
#endif

#endif
