#ifndef APP_VIEWER_WORKER_H
#define APP_VIEWER_WORKER_H

#include <SDL.h>

#include "decode.h"
#include "error.h"
#include "image.h"
#include "pipeline.h"

/* The viewer's captioning thread. Decoding and captioning a large image takes
 * seconds, so they run here and the window keeps answering meanwhile. The
 * worker has its own CaptionPipeline (nothing else touches it meanwhile); requests and
 * results each pass through one mutex-protected slot, and a finished result
 * is announced with an SDL user event so the UI thread can sleep in
 * SDL_WaitEvent instead of polling. */

typedef struct {
    unsigned long id;     /* the request this answers */
    int status;           /* 0: picture and caption are valid; -1: err says why */
    Error err;
    Image picture;        /* decoded RGB, as pipeline_caption_file returns it */
    Caption caption;
    char **words;         /* [caption.length], copied from the vocabulary */
    char text[4096];      /* the caption as one line */
    int beam;             /* the beam width it was made with */
} CaptionResult;

typedef struct CaptionWorker CaptionWorker;

/* Starts the thread, which uses *pipeline alone until caption_worker_stop
 * (the caller keeps it alive, does not touch it meanwhile, and closes it
 * afterwards; it cannot be moved, as its captioner points into it).
 * event_type is pushed once per result. */
int caption_worker_start(CaptionWorker **worker, CaptionPipeline *pipeline, Uint32 event_type, Error *err);

/* Asks for path to be captioned with beam width `beam`. A request the worker
 * has not started yet is replaced (only the latest matters to the user).
 * Returns the request id, which the matching result carries. */
unsigned long caption_worker_request(CaptionWorker *worker, const char *path, int beam);

/* Moves the finished result, if any, into *out: 1 if one was there, else 0. */
int caption_worker_take(CaptionWorker *worker, CaptionResult *out);

/* Waits for the current caption (if any) to finish, ends the thread and
 * frees everything; NULL is fine. */
void caption_worker_stop(CaptionWorker *worker);

/* Frees a result's caption, picture and words (named apart from caption.h's
 * caption_result_free, which the same executable links). */
void caption_worker_result_free(CaptionResult *result);

#endif
