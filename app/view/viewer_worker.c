#include "viewer_worker.h"

#include <stdlib.h>
#include <string.h>

struct CaptionWorker {
    CaptionPipeline *pipeline;
    Uint32 event_type;
    SDL_Thread *thread;
    SDL_mutex *lock;
    SDL_cond *wake;
    /* guarded by lock */
    int quit;
    int has_request;
    char *request_path;
    int request_beam;
    unsigned long request_id, last_id;
    int has_result;
    CaptionResult result;
};

void caption_worker_result_free(CaptionResult *r) {
    if (r->words)
        for (int k = 0; k < r->caption.length; k++) free(r->words[k]);
    free(r->words);
    if (r->status == 0) caption_free(&r->caption);
    image_free(&r->picture);
    memset(r, 0, sizeof *r);
}

/* The words as separate strings, so the UI never reads the worker's model. */
static int copy_words(CaptionResult *r, const SatModel *model) {
    int n = r->caption.length;
    r->words = calloc((size_t)(n > 0 ? n : 1), sizeof *r->words);
    if (!r->words) return error_set(&r->err, "out of memory");
    for (int k = 0; k < n; k++) {
        int t = r->caption.tokens[k];
        r->words[k] = strdup(t >= 0 && t < model->config.vocab_size ? model->vocab[t] : "?");
        if (!r->words[k]) return error_set(&r->err, "out of memory");
    }
    caption_display_text(model, &r->caption, r->text, sizeof r->text);
    return 0;
}

static void run_request(CaptionWorker *w, const char *path, int beam, CaptionResult *r) {
    if (!path) {
        r->status = error_set(&r->err, "out of memory");
        return;
    }
    w->pipeline->decode.beam_width = beam;
    r->beam = beam;
    r->status = pipeline_caption_file(w->pipeline, path, &r->caption, &r->picture, &r->err);
    if (r->status == 0 && copy_words(r, &w->pipeline->model) != 0) {
        char message[sizeof r->err.message];
        memcpy(message, r->err.message, sizeof message);
        caption_worker_result_free(r);
        r->status = error_set(&r->err, "%s: %s", path, message);
    }
}

static void publish(CaptionWorker *w, CaptionResult *r) {
    SDL_LockMutex(w->lock);
    if (w->has_result) caption_worker_result_free(&w->result); /* the UI never took it: superseded */
    w->result = *r;
    w->has_result = 1;
    SDL_UnlockMutex(w->lock);
    SDL_Event e = {.type = w->event_type};
    SDL_PushEvent(&e);
}

static int worker_main(void *data) {
    CaptionWorker *w = data;
    for (;;) {
        SDL_LockMutex(w->lock);
        while (!w->quit && !w->has_request) SDL_CondWait(w->wake, w->lock);
        if (w->quit) {
            SDL_UnlockMutex(w->lock);
            return 0;
        }
        char *path = w->request_path;
        int beam = w->request_beam;
        CaptionResult r = {.id = w->request_id};
        w->request_path = NULL;
        w->has_request = 0;
        SDL_UnlockMutex(w->lock);
        run_request(w, path, beam, &r);
        free(path);
        publish(w, &r);
    }
}

int caption_worker_start(CaptionWorker **out, CaptionPipeline *pipeline, Uint32 event_type, Error *err) {
    *out = NULL;
    CaptionWorker *w = calloc(1, sizeof *w);
    if (!w) return error_set(err, "out of memory");
    w->event_type = event_type;
    w->lock = SDL_CreateMutex();
    w->wake = SDL_CreateCond();
    if (!w->lock || !w->wake) {
        error_set(err, "cannot create the captioning thread's lock: %s", SDL_GetError());
        caption_worker_stop(w);
        return -1;
    }
    w->pipeline = pipeline;
    w->thread = SDL_CreateThread(worker_main, "caption", w);
    if (!w->thread) {
        error_set(err, "cannot start the captioning thread: %s", SDL_GetError());
        caption_worker_stop(w);
        return -1;
    }
    *out = w;
    return 0;
}

unsigned long caption_worker_request(CaptionWorker *w, const char *path, int beam) {
    char *copy = strdup(path);
    SDL_LockMutex(w->lock);
    free(w->request_path);
    w->request_path = copy;
    w->request_beam = beam;
    w->request_id = ++w->last_id;
    w->has_request = 1; /* even without the copy: its result then says "out of memory" */
    unsigned long id = w->request_id;
    SDL_CondSignal(w->wake);
    SDL_UnlockMutex(w->lock);
    return id;
}

int caption_worker_take(CaptionWorker *w, CaptionResult *out) {
    SDL_LockMutex(w->lock);
    int got = w->has_result;
    if (got) {
        *out = w->result;
        memset(&w->result, 0, sizeof w->result);
        w->has_result = 0;
    }
    SDL_UnlockMutex(w->lock);
    return got;
}

void caption_worker_stop(CaptionWorker *w) {
    if (!w) return;
    if (w->thread) {
        SDL_LockMutex(w->lock);
        w->quit = 1;
        SDL_CondSignal(w->wake);
        SDL_UnlockMutex(w->lock);
        SDL_WaitThread(w->thread, NULL);
    }
    if (w->has_result) caption_worker_result_free(&w->result);
    free(w->request_path);
    if (w->wake) SDL_DestroyCond(w->wake);
    if (w->lock) SDL_DestroyMutex(w->lock);
    free(w);
}
