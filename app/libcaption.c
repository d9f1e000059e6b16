/* libcaption (caption.h): the public face of the captioning pipeline
 * (pipeline.h), with opaque handles, status codes and self-contained
 * results. `caption IMAGE...` goes through these functions too. */
#include "caption.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caption_internal.h"
#include "model_path.h"
#include "pipeline.h"

#ifndef CAPTION_VERSION
#define CAPTION_VERSION CAPTION_VERSION_STRING
#endif

struct caption_model {
    CaptionPipeline pipeline; /* not movable (its captioner points at its model): hence a handle */
    caption_options defaults;
    int beam_capacity, length_capacity; /* what the captioner's buffers were made for */
    int helper_thread;                  /* CAPTION_OPEN_HELPER_THREAD was given (and applies) */
    char *path;                         /* the file loaded: copied, as a caller's path may be any length */
};

struct caption_result {
    Caption caption;
    char *text;   /* the words joined by spaces */
    char **words; /* [length], NUL-terminated copies of the vocabulary's words in one block */
    int has_beta; /* the decoder has a beta worth reporting (caption_result_beta) */
};

const char *caption_version(void) { return CAPTION_VERSION; }

const char *caption_status_string(caption_status status) {
    switch (status) {
    case CAPTION_OK: return "success";
    case CAPTION_ERROR_ARGUMENT: return "invalid argument";
    case CAPTION_ERROR_MODEL_NOT_FOUND: return "model not found";
    case CAPTION_ERROR_MODEL: return "model could not be loaded";
    case CAPTION_ERROR_IMAGE: return "image could not be read";
    case CAPTION_ERROR_MEMORY: return "out of memory";
    }
    return "unknown status";
}

/* The one place errors leave the library: code and message into err (when
 * the caller gave one), code returned. */
static caption_status fail(caption_error *err, caption_status code, const Error *internal) {
    if (err) {
        err->code = code;
        memcpy(err->message, internal->message, sizeof err->message);
        err->message[sizeof err->message - 1] = '\0';
    }
    return code;
}

static caption_status failf(caption_error *err, caption_status code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static caption_status failf(caption_error *err, caption_status code, const char *format, ...) {
    if (err) {
        err->code = code;
        va_list args;
        va_start(args, format);
        vsnprintf(err->message, sizeof err->message, format, args);
        va_end(args);
    }
    return code;
}

void caption_options_init(caption_options *o) {
    if (o) *o = (caption_options)CAPTION_OPTIONS_INIT;
}

/* The ranges `caption` checks its options against (cli.c), so that a value
 * the CLI refuses is refused here too, with the field's C name. */
static caption_status check_options(const caption_options *o, caption_error *err) {
    if (o->beam < 1 || o->beam > CAPTION_MAX_BEAM)
        return failf(err, CAPTION_ERROR_ARGUMENT, "beam %d is out of range (1 to %d)", o->beam, CAPTION_MAX_BEAM);
    if (o->max_length < 1 || o->max_length > CAPTION_MAX_LENGTH)
        return failf(err, CAPTION_ERROR_ARGUMENT, "max_length %d is out of range (1 to %d)", o->max_length,
                     CAPTION_MAX_LENGTH);
    if (!(o->length_penalty >= 0.0f && o->length_penalty <= CAPTION_MAX_LENGTH_PENALTY)) /* NaN too */
        return failf(err, CAPTION_ERROR_ARGUMENT, "length_penalty %g is out of range (0 to %d)",
                     (double)o->length_penalty, CAPTION_MAX_LENGTH_PENALTY);
    if (o->max_pixels < 0)
        return failf(err, CAPTION_ERROR_ARGUMENT, "max_pixels %lld is negative (0 means the default, %lld)",
                     o->max_pixels, (long long)IMAGE_DEFAULT_MAX_PIXELS);
    return CAPTION_OK;
}

/* The helper thread when asked for and useful: cli_pipeline_open's rule. */
static int start_helper(Captioner *captioner, caption_model *m, Error *e) {
    return m->helper_thread ? captioner_use_second_thread(captioner, e) : 0;
}

caption_status caption_model_open(caption_model **out, const char *name_or_path, const caption_options *options,
                                  unsigned flags, caption_error *err) {
    if (!out) return failf(err, CAPTION_ERROR_ARGUMENT, "caption_model_open: the model pointer is NULL");
    *out = NULL;
    caption_options o = CAPTION_OPTIONS_INIT;
    if (options) o = *options;
    caption_status status = check_options(&o, err);
    if (status != CAPTION_OK) return status;
    if (flags & ~CAPTION_OPEN_HELPER_THREAD)
        return failf(err, CAPTION_ERROR_ARGUMENT, "caption_model_open: unknown flags 0x%x",
                     flags & ~CAPTION_OPEN_HELPER_THREAD);
    caption_model *m = calloc(1, sizeof *m);
    if (!m) return failf(err, CAPTION_ERROR_MEMORY, "out of memory");
    Error e;
    char found[4096]; /* a bundled model's path, built from folders of known length */
    const char *path = model_path_resolve(name_or_path, found, sizeof found, &e);
    if (!path) {
        free(m);
        return fail(err, CAPTION_ERROR_MODEL_NOT_FOUND, &e);
    }
    m->path = strdup(path);
    if (!m->path) {
        free(m);
        return failf(err, CAPTION_ERROR_MEMORY, "out of memory");
    }
    /* Loading and the buffers apart, so that a bad file and a lack of memory get different codes. */
    status = pipeline_load(&m->pipeline, m->path, &e) != 0                   ? CAPTION_ERROR_MODEL
             : pipeline_prepare(&m->pipeline, o.beam, o.max_length, &e) != 0 ? CAPTION_ERROR_MEMORY
                                                                              : CAPTION_OK;
    if (status != CAPTION_OK) { /* both leave nothing behind to close */
        free(m->path);
        free(m);
        return fail(err, status, &e);
    }
    m->defaults = o;
    m->beam_capacity = o.beam;
    m->length_capacity = o.max_length;
    m->helper_thread = (flags & CAPTION_OPEN_HELPER_THREAD) && sysconf(_SC_NPROCESSORS_ONLN) > 1;
    if (start_helper(m->pipeline.captioner, m, &e) != 0) {
        caption_model_close(m);
        return fail(err, CAPTION_ERROR_MEMORY, &e);
    }
    *out = m;
    return CAPTION_OK;
}

void caption_model_close(caption_model *m) {
    if (!m) return;
    pipeline_close(&m->pipeline);
    free(m->path);
    free(m);
}

const char *caption_model_path(const caption_model *m) { return m ? m->path : NULL; }

const char *caption_model_decoder(const caption_model *m) {
    return m ? sat_decoder_name(&m->pipeline.model.config) : NULL;
}

void caption_model_grid(const caption_model *m, int *grid_h, int *grid_w) {
    if (grid_h) *grid_h = m ? m->pipeline.model.grid_h : 0;
    if (grid_w) *grid_w = m ? m->pipeline.model.grid_w : 0;
}

const SatModel *caption_internal_model(const caption_model *m) { return &m->pipeline.model; }

/* The captioner's buffers are sized for a beam width and a length; a call
 * that asks for more gets a bigger captioner (the old one is kept until the
 * new one exists, so a failure leaves the handle usable). */
static caption_status ensure_capacity(caption_model *m, const caption_options *o, caption_error *err) {
    if (o->beam <= m->beam_capacity && o->max_length <= m->length_capacity) return CAPTION_OK;
    int beam = o->beam > m->beam_capacity ? o->beam : m->beam_capacity;
    int length = o->max_length > m->length_capacity ? o->max_length : m->length_capacity;
    Captioner *bigger = NULL;
    Error e;
    if (pipeline_captioner_create(&m->pipeline, beam, length, &bigger, &e) != 0 || start_helper(bigger, m, &e) != 0) {
        captioner_free(bigger);
        return fail(err, CAPTION_ERROR_MEMORY, &e);
    }
    captioner_free(m->pipeline.captioner);
    m->pipeline.captioner = bigger;
    m->beam_capacity = beam;
    m->length_capacity = length;
    return CAPTION_OK;
}

/* The words of a finished search, copied so that the result outlives the model. */
static int copy_words(caption_result *r, const SatModel *model) {
    const Caption *c = &r->caption;
    size_t bytes = 1;
    for (int i = 0; i < c->length; i++) bytes += strlen(model->vocab[c->tokens[i]]) + 1;
    r->text = malloc(2 * bytes); /* the joined text, then the words one by one */
    r->words = malloc(sizeof *r->words * (size_t)(c->length > 0 ? c->length : 1));
    if (!r->text || !r->words) return -1;
    char *joined = r->text, *word = r->text + bytes;
    joined[0] = '\0';
    for (int i = 0; i < c->length; i++) {
        const char *w = model->vocab[c->tokens[i]];
        size_t n = strlen(w);
        if (i > 0) *joined++ = ' ';
        memcpy(joined, w, n + 1);
        joined += n;
        memcpy(word, w, n + 1);
        r->words[i] = word;
        word += n + 1;
    }
    return 0;
}

/* Captions a decoded image with o (validated, capacity ensured); name (may
 * be NULL) is prefixed to a failure's message, as pipeline_caption_file does. */
static caption_status caption_image(caption_model *m, const Image *image, const caption_options *o, const char *name,
                                    caption_result **out, caption_error *err) {
    caption_result *r = calloc(1, sizeof *r);
    if (!r) return failf(err, CAPTION_ERROR_MEMORY, "out of memory");
    m->pipeline.decode = (DecodeOptions){o->beam, o->max_length, o->length_penalty};
    Error e;
    /* What can fail past the checks is an allocation (resizing, the caption's arrays). */
    if (pipeline_caption_image(&m->pipeline, image, &r->caption, &e) != 0) {
        if (name) error_prefix(&e, "%s", name);
        free(r);
        return fail(err, CAPTION_ERROR_MEMORY, &e);
    }
    /* A Transformer's Caption carries a beta of ones (decode.c: no gate, it
     * always looks), which the JSON output keeps; the API reports it absent,
     * since it says nothing about the image. */
    const SatConfig *c = &m->pipeline.model.config;
    r->has_beta = c->use_attention && !c->transformer && r->caption.beta;
    if (copy_words(r, &m->pipeline.model) != 0) {
        caption_result_free(r);
        return failf(err, CAPTION_ERROR_MEMORY, "out of memory");
    }
    *out = r;
    return CAPTION_OK;
}

/* What every caption call checks first; *o receives the options to use. */
static caption_status begin(caption_model *m, const caption_options *options, caption_result **out,
                            caption_options *o, caption_error *err) {
    if (!out) return failf(err, CAPTION_ERROR_ARGUMENT, "the result pointer is NULL");
    *out = NULL;
    if (!m) return failf(err, CAPTION_ERROR_ARGUMENT, "the model is NULL (caption_model_open failed?)");
    *o = options ? *options : m->defaults;
    caption_status status = check_options(o, err);
    return status != CAPTION_OK ? status : ensure_capacity(m, o, err);
}

caption_status caption_model_caption_rgb(caption_model *m, const uint8_t *rgb, int width, int height, size_t stride,
                                         const caption_options *options, caption_result **out, caption_error *err) {
    caption_options o;
    caption_status status = begin(m, options, out, &o, err);
    if (status != CAPTION_OK) return status;
    if (!rgb) return failf(err, CAPTION_ERROR_ARGUMENT, "the pixel buffer is NULL");
    /* stb_image_resize takes row sizes as int. */
    if (width < 1 || height < 1 || width > INT_MAX / 3 || height > INT_MAX / 3)
        return failf(err, CAPTION_ERROR_ARGUMENT, "image size %dx%d is out of range (1 to %d each way)", width,
                     height, INT_MAX / 3);
    size_t row = (size_t)width * 3;
    if (stride != 0 && stride < row)
        return failf(err, CAPTION_ERROR_ARGUMENT, "stride %zu is less than a row of %d RGB pixels (%zu bytes)",
                     stride, width, row);
    Image image = {.width = width, .height = height, .channels = 3};
    if (stride == 0 || stride == row) {
        /* Packed already: read in place. The cast drops const only for the
         * Image type; preprocessing reads the pixels and never writes. */
        image.pixels = (unsigned char *)(uintptr_t)rgb;
        return caption_image(m, &image, &o, NULL, out, err);
    }
    /* The project's Image has no row padding: pack a copy. */
    Error e;
    if (image_alloc(&image, width, height, 3, &e) != 0) return fail(err, CAPTION_ERROR_MEMORY, &e);
    for (int y = 0; y < height; y++) memcpy(image.pixels + (size_t)y * row, rgb + (size_t)y * stride, row);
    status = caption_image(m, &image, &o, NULL, out, err);
    image_free(&image);
    return status;
}

caption_status caption_model_caption_file(caption_model *m, const char *path, const caption_options *options,
                                          caption_result **out, caption_error *err) {
    caption_options o;
    caption_status status = begin(m, options, out, &o, err);
    if (status != CAPTION_OK) return status;
    if (!path) return failf(err, CAPTION_ERROR_ARGUMENT, "the image path is NULL");
    Image image = {0};
    Error e;
    /* image_load's messages name the file already. */
    if (image_load(&image, path, &(ImageLoadOptions){.max_pixels = o.max_pixels}, &e) != 0)
        return fail(err, CAPTION_ERROR_IMAGE, &e);
    status = caption_image(m, &image, &o, path, out, err);
    image_free(&image);
    return status;
}

caption_status caption_image_load(const char *path, long long max_pixels, uint8_t **rgb, int *width, int *height,
                                  caption_error *err) {
    if (!rgb || !width || !height) return failf(err, CAPTION_ERROR_ARGUMENT, "caption_image_load: an output is NULL");
    *rgb = NULL;
    *width = *height = 0;
    if (!path) return failf(err, CAPTION_ERROR_ARGUMENT, "the image path is NULL");
    if (max_pixels < 0)
        return failf(err, CAPTION_ERROR_ARGUMENT, "max_pixels %lld is negative (0 means the default, %lld)",
                     max_pixels, (long long)IMAGE_DEFAULT_MAX_PIXELS);
    Image image = {0};
    Error e;
    if (image_load(&image, path, &(ImageLoadOptions){.max_pixels = max_pixels}, &e) != 0)
        return fail(err, CAPTION_ERROR_IMAGE, &e);
    /* image_load gives packed RGB in malloc'ed memory: hand it over as it is. */
    *rgb = image.pixels;
    *width = image.width;
    *height = image.height;
    return CAPTION_OK;
}

void caption_image_free(uint8_t *rgb) { free(rgb); }

void caption_result_free(caption_result *r) {
    if (!r) return;
    caption_free(&r->caption);
    free(r->text);
    free(r->words);
    free(r);
}

const Caption *caption_internal_caption(const caption_result *r) { return &r->caption; }

const char *caption_result_text(const caption_result *r) { return r ? r->text : NULL; }

int caption_result_length(const caption_result *r) { return r ? r->caption.length : 0; }

static int in_range(const caption_result *r, int i) { return r && i >= 0 && i < r->caption.length; }

const char *caption_result_word(const caption_result *r, int i) { return in_range(r, i) ? r->words[i] : NULL; }

float caption_result_word_logprob(const caption_result *r, int i) {
    return in_range(r, i) ? r->caption.token_logprobs[i] : 0.0f;
}

float caption_result_word_probability(const caption_result *r, int i) {
    return in_range(r, i) ? expf(r->caption.token_logprobs[i]) : 0.0f;
}

float caption_result_logprob(const caption_result *r) { return r ? r->caption.logprob : 0.0f; }

int caption_result_finished(const caption_result *r) { return r ? r->caption.finished : 0; }

int caption_result_grid(const caption_result *r, int *grid_h, int *grid_w) {
    if (grid_h) *grid_h = r ? r->caption.grid_h : 0;
    if (grid_w) *grid_w = r ? r->caption.grid_w : 0;
    return r && r->caption.alpha ? 1 : 0;
}

const float *caption_result_alpha(const caption_result *r, int i) {
    return in_range(r, i) && r->caption.alpha ? r->caption.alpha + (size_t)i * r->caption.cells : NULL;
}

const float *caption_result_beta(const caption_result *r) { return r && r->has_beta ? r->caption.beta : NULL; }
