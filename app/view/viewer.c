/* The viewer's window and event loop. Keys, mouse, drops and the script's
 * injected events all go through handle_event; the frame is recomposed only
 * when something changed (dirty), and the loop sleeps in
 * SDL_WaitEventTimeout, so an idle viewer costs no CPU. */
#include "viewer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "viewer_internal.h"

#define VIEW_STEP_MS 900      /* one word of the animation */
#define VIEW_MESSAGE_MS 4000  /* how long a status message stays */

void viewer_set_message(Viewer *v, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(v->message, sizeof v->message, format, args);
    va_end(args);
    v->message_until = SDL_GetTicks() + VIEW_MESSAGE_MS;
    if (v->message_until == 0) v->message_until = 1; /* 0 means "no message" */
    v->dirty = 1;
}

/* ---- images and captions -------------------------------------------------------- */

static void request_caption(Viewer *v) {
    v->pending = 1;
    v->pending_id = caption_worker_request(v->worker, v->files->paths[v->current], v->beam);
    v->dirty = 1;
}

static void open_image(Viewer *v, long index) {
    caption_worker_result_free(&v->result);
    v->has_result = 0, v->failed = 0, v->step = -1, v->playing = 0;
    v->serial++;
    v->current = index;
    char title[600];
    const char *path = v->files->paths[index], *slash = strrchr(path, '/');
    snprintf(title, sizeof title, "caption view \xe2\x80\x94 %s", slash && slash[1] ? slash + 1 : path);
    SDL_SetWindowTitle(v->window, title);
    request_caption(v);
}

/* A Transformer's caption: the map shown for each word becomes that of the
 * chosen layer and head (the caption keeps every layer's and head's). */
static void show_layer_head(Viewer *v) {
    Caption *c = &v->result.caption;
    if (!v->has_result || !c->head_alpha || caption_attention_map(c, v->layer, v->head, c->alpha, NULL) != 0) return;
    v->serial++, v->dirty = 1;
}

static void on_result(Viewer *v) {
    CaptionResult r;
    if (!caption_worker_take(v->worker, &r)) return;
    if (!v->pending || r.id != v->pending_id) { /* for an image or beam no longer wanted */
        caption_worker_result_free(&r);
        return;
    }
    v->pending = 0, v->dirty = 1, v->serial++;
    if (r.status != 0) {
        error_print(stderr, "caption view", &r.err);
        caption_worker_result_free(&v->result);
        v->has_result = 0, v->failed = 1, v->step = -1, v->playing = 0;
        v->failure = r.err;
        caption_worker_result_free(&r);
        return;
    }
    int step = v->has_result ? v->step : 0; /* a new beam width keeps the word position */
    caption_worker_result_free(&v->result);
    v->result = r;
    v->has_result = 1, v->failed = 0;
    if (v->result.caption.head_alpha) {
        if (v->layer >= v->result.caption.layers) v->layer = v->result.caption.layers - 1;
        show_layer_head(v);
    }
    v->step = r.caption.length == 0 ? -1 : step < 0 ? 0 : step >= r.caption.length ? r.caption.length - 1 : step;
    if (v->scripted)
        fprintf(stderr, "caption view: captioned %s (beam %d): %s\n", v->files->paths[v->current], r.beam, r.text);
}

/* ---- keys, mouse, drops --------------------------------------------------------------- */

/* l: the next decoder layer; k: the next head, then the heads' mean. */
static void change_layer_head(Viewer *v, int layer_key) {
    const Caption *c = &v->result.caption;
    if (!v->has_result || !c->head_alpha) {
        viewer_set_message(v, "layers and heads: a Transformer model's");
        return;
    }
    if (layer_key) v->layer = (v->layer + 1) % c->layers;
    else v->head = v->head + 1 >= c->heads ? -1 : v->head + 1;
    show_layer_head(v);
    if (v->head < 0) viewer_set_message(v, "layer %d of %d, mean of %d heads", v->layer + 1, c->layers, c->heads);
    else viewer_set_message(v, "layer %d of %d, head %d of %d", v->layer + 1, c->layers, v->head + 1, c->heads);
}

static void set_step(Viewer *v, int step) {
    int count = v->has_result ? v->result.caption.length : 0;
    if (count == 0) return;
    step = step < 0 ? 0 : step >= count ? count - 1 : step;
    if (step != v->step) v->step = step, v->dirty = 1;
}

static void toggle_play(Viewer *v) {
    if (!v->has_result || v->result.caption.length == 0) return;
    v->playing = !v->playing;
    if (v->playing && v->step >= v->result.caption.length - 1) v->step = 0; /* replay from the start */
    v->next_step_at = SDL_GetTicks() + VIEW_STEP_MS;
    v->dirty = 1;
}

static void change_image(Viewer *v, int delta) {
    long count = (long)v->files->count;
    if (count == 0) return;
    long next = v->current < 0 ? 0 : ((v->current + delta) % count + count) % count;
    if (count == 1) viewer_set_message(v, "only one image");
    else open_image(v, next);
}

/* The first free DIR/caption-view-NNNN.png: never overwrites an earlier save. */
static void save_shown(Viewer *v) {
    const char *dir = v->screenshot_dir ? v->screenshot_dir : ".";
    char path[4200];
    for (int n = 1; n < 100000; n++) {
        snprintf(path, sizeof path, "%s/caption-view-%04d.png", dir, n);
        if (access(path, F_OK) != 0) break;
    }
    if (v->dirty) viewer_present(v);
    if (viewer_save_frame(v, path) == 0) {
        fprintf(stderr, "caption view: saved %s\n", path);
        viewer_set_message(v, "saved %s", path);
    }
}

static void change_opacity(Viewer *v, float delta) {
    float o = roundf((v->overlay.opacity + delta) * 20.0f) / 20.0f; /* steps of 0.05 that do not drift */
    v->overlay.opacity = o < 0.0f ? 0.0f : o > 1.0f ? 1.0f : o;
    v->overlay_on = 1;
    v->dirty = 1;
}

static void change_beam(Viewer *v) {
    v->beam = v->beam < 3 ? 3 : v->beam < 5 ? 5 : 1;
    /* With an image the status line says "captioning with beam N" until the caption comes. */
    if (v->current >= 0) request_caption(v);
    else viewer_set_message(v, "beam %d", v->beam);
}

static void on_key(Viewer *v, SDL_Keycode key) {
    switch (key) {
    case SDLK_ESCAPE: case SDLK_q: v->quit = 1; break;
    case SDLK_RIGHT: v->playing = 0, set_step(v, v->step + 1); break;
    case SDLK_LEFT: v->playing = 0, set_step(v, v->step - 1); break;
    case SDLK_HOME: v->playing = 0, set_step(v, 0); break;
    case SDLK_END: v->playing = 0, set_step(v, v->has_result ? v->result.caption.length - 1 : 0); break;
    case SDLK_SPACE: toggle_play(v); break;
    case SDLK_a: v->overlay_on = !v->overlay_on, v->dirty = 1; break;
    case SDLK_PLUS: case SDLK_EQUALS: case SDLK_KP_PLUS: change_opacity(v, 0.1f); break;
    case SDLK_MINUS: case SDLK_KP_MINUS: change_opacity(v, -0.1f); break;
    case SDLK_c: v->overlay.colormap = (Colormap)((v->overlay.colormap + 1) % COLORMAP_COUNT), v->dirty = 1; break;
    case SDLK_b: change_beam(v); break;
    case SDLK_l: change_layer_head(v, 1); break;
    case SDLK_k: change_layer_head(v, 0); break;
    case SDLK_g: v->grid = !v->grid, v->dirty = 1; break;
    case SDLK_s: save_shown(v); break;
    case SDLK_PAGEDOWN: case SDLK_n: change_image(v, 1); break;
    case SDLK_PAGEUP: case SDLK_p: change_image(v, -1); break;
    case SDLK_h: v->help = !v->help, v->dirty = 1; break;
    default: break;
    }
}

/* Hovering a word shows its attention. Mouse coordinates are in window
 * points, the frame in pixels (they differ on high-DPI screens). */
static void on_hover(Viewer *v, int x, int y) {
    int window_w, window_h;
    SDL_GetWindowSize(v->window, &window_w, &window_h);
    if (window_w > 0 && window_h > 0) {
        x = (int)((long)x * v->frame.width / window_w);
        y = (int)((long)y * v->frame.height / window_h);
    }
    for (int k = 0; k < v->word_box_count; k++) {
        const ViewRect *b = &v->word_boxes[k];
        if (x >= b->x && x < b->x + b->w && y >= b->y && y < b->y + b->h && k != v->step) {
            v->playing = 0;
            set_step(v, k);
        }
    }
}

static void on_drop(Viewer *v, const char *path) {
    Error err;
    size_t first = v->files->count;
    int added = image_list_add(v->files, path, &err);
    if (added < 0) {
        error_print(stderr, "caption view", &err);
        viewer_set_message(v, "%s", err.message);
    } else if (added == 0) {
        viewer_set_message(v, "no images in %s", path);
    } else {
        open_image(v, (long)first);
    }
}

static void handle_event(Viewer *v, const SDL_Event *e) {
    if (e->type == v->result_event) on_result(v);
    else if (e->type == SDL_QUIT) v->quit = 1;
    else if (e->type == SDL_KEYDOWN) on_key(v, e->key.keysym.sym);
    else if (e->type == SDL_MOUSEMOTION && (!v->scripted || e->motion.which == VIEWER_SCRIPT_MOUSE_ID))
        on_hover(v, e->motion.x, e->motion.y);
    else if (e->type == SDL_DROPFILE) {
        on_drop(v, e->drop.file);
        SDL_free(e->drop.file);
    } else if (e->type == SDL_WINDOWEVENT) v->dirty = 1;
    else if (e->type == SDL_RENDER_TARGETS_RESET || e->type == SDL_RENDER_DEVICE_RESET) {
        if (v->texture) SDL_DestroyTexture(v->texture);
        v->texture = NULL, v->dirty = 1;
    }
}

/* ---- the frame on screen -------------------------------------------------------------- */

int viewer_save_frame(Viewer *v, const char *path) {
    Error err;
    if (image_write_png(&v->frame, path, &err) == 0) return 0;
    error_print(stderr, "caption view", &err);
    viewer_set_message(v, "%s", err.message);
    return -1;
}

static int upload(Viewer *v) {
    int w = v->frame.width, h = v->frame.height;
    if (!v->texture || v->texture_w != w || v->texture_h != h) {
        if (v->texture) SDL_DestroyTexture(v->texture);
        v->texture = SDL_CreateTexture(v->renderer, SDL_PIXELFORMAT_RGB24, SDL_TEXTUREACCESS_STREAMING, w, h);
        v->texture_w = w, v->texture_h = h;
        if (!v->texture) return -1;
    }
    return SDL_UpdateTexture(v->texture, NULL, v->frame.pixels, w * 3);
}

void viewer_present(Viewer *v) {
    int w, h;
    Error err;
    v->dirty = 0; /* even on failure: a frame that cannot be drawn must not be retried in a busy loop */
    if (SDL_GetRendererOutputSize(v->renderer, &w, &h) != 0 || w < 1 || h < 1) return;
    if (viewer_compose(v, w, h, &err) != 0) error_print(stderr, "caption view", &err);
    if (!v->frame.pixels) return;
    if (upload(v) != 0) {
        fprintf(stderr, "caption view: cannot show the frame: %s\n", SDL_GetError());
        return;
    }
    SDL_RenderClear(v->renderer);
    SDL_RenderCopy(v->renderer, v->texture, NULL, NULL);
    SDL_RenderPresent(v->renderer);
    viewer_report_step(v);
}

/* Advances the animation and expires the status message. */
static void tick(Viewer *v) {
    Uint32 now = SDL_GetTicks();
    if (v->playing && SDL_TICKS_PASSED(now, v->next_step_at)) {
        int count = v->has_result ? v->result.caption.length : 0;
        if (count > 0) v->step = (v->step + 1) % count;
        v->next_step_at = now + VIEW_STEP_MS;
        v->dirty = 1;
    }
    if (v->message_until && SDL_TICKS_PASSED(now, v->message_until)) v->message_until = 0, v->dirty = 1;
}

/* How long the loop may sleep: until the next animation step, message
 * expiry or script command (script_wait; -1 = none). */
static int sleep_ms(const Viewer *v, int script_wait) {
    Uint32 now = SDL_GetTicks();
    int ms = 1000;
    if (v->playing) ms = SDL_TICKS_PASSED(now, v->next_step_at) ? 0 : (int)(v->next_step_at - now);
    if (v->message_until) {
        int left = SDL_TICKS_PASSED(now, v->message_until) ? 0 : (int)(v->message_until - now);
        ms = left < ms ? left : ms;
    }
    if (script_wait >= 0 && script_wait < ms) ms = script_wait;
    return ms;
}

static void run_loop(Viewer *v) {
    int script_wait = v->scripted ? 0 : -1;
    while (!v->quit) {
        SDL_Event e;
        if (SDL_WaitEventTimeout(&e, sleep_ms(v, script_wait))) {
            handle_event(v, &e);
            while (!v->quit && SDL_PollEvent(&e)) handle_event(v, &e);
        }
        tick(v);
        if (v->dirty && !v->quit) viewer_present(v);
        if (v->scripted && !v->quit) script_wait = viewer_script_step(v);
    }
}

/* ---- opening and closing -------------------------------------------------------------- */

static int open_window(Viewer *v, Error *err) {
    if (SDL_Init(SDL_INIT_VIDEO) != 0)
        return error_set(err, "cannot open a window: %s (without a display, run it under xvfb-run -a)",
                         SDL_GetError());
    v->sdl_started = 1;
    /* Without a display SDL falls back to a window nobody can see; only take
     * that when asked for by name (SDL_VIDEODRIVER=offscreen, for scripts). */
    const char *driver = SDL_GetCurrentVideoDriver(), *asked = SDL_getenv("SDL_VIDEODRIVER");
    int invisible = driver && (strcmp(driver, "offscreen") == 0 || strcmp(driver, "dummy") == 0);
    if (invisible && !(asked && strstr(asked, driver)))
        return error_set(err, "cannot open a window: no display found (is DISPLAY or WAYLAND_DISPLAY set? "
                              "without a display, run it under xvfb-run -a)");
    v->result_event = SDL_RegisterEvents(1);
    if (v->result_event == (Uint32)-1) return error_set(err, "cannot register an SDL event: %s", SDL_GetError());
    SDL_Rect usable = {0, 0, 1280, 960};
    SDL_GetDisplayUsableBounds(0, &usable);
    int w = usable.w * 9 / 10 < 1000 ? usable.w * 9 / 10 : 1000;
    int h = usable.h * 9 / 10 < 780 ? usable.h * 9 / 10 : 780;
    v->window = SDL_CreateWindow("caption view", SDL_WINDOWPOS_CENTERED, SDL_WINDOWPOS_CENTERED, w, h,
                                 SDL_WINDOW_RESIZABLE | SDL_WINDOW_ALLOW_HIGHDPI);
    if (!v->window) return error_set(err, "cannot open a window: %s", SDL_GetError());
    SDL_SetWindowMinimumSize(v->window, 320, 240);
    v->renderer = SDL_CreateRenderer(v->window, -1, 0);
    if (!v->renderer) v->renderer = SDL_CreateRenderer(v->window, -1, SDL_RENDERER_SOFTWARE);
    if (!v->renderer) return error_set(err, "cannot draw in the window: %s", SDL_GetError());
    return 0;
}

static int viewer_open(Viewer *v, CaptionPipeline *pipeline, const ViewerOptions *o, Error *err) {
    char font_path[4096];
    if (!font_default_path(font_path, sizeof font_path))
        return error_set(err, "the bundled font assets/fonts/DejaVuSans.ttf was not found (reinstall caption, "
                              "or install fonts-dejavu-core)");
    if (font_load(&v->font, font_path, err) != 0) return -1;
    if (o->script && viewer_script_load(&v->script, o->script, err) != 0) return -1;
    if (open_window(v, err) != 0) return -1;
    if (caption_worker_start(&v->worker, pipeline, v->result_event, err) != 0) return -1;
    if (v->files->count > 0) open_image(v, 0);
    return 0;
}

static void viewer_close(Viewer *v) {
    caption_worker_stop(v->worker); /* before SDL_Quit: it uses SDL's threads */
    caption_worker_result_free(&v->result);
    viewer_render_free(v);
    if (v->texture) SDL_DestroyTexture(v->texture);
    if (v->renderer) SDL_DestroyRenderer(v->renderer);
    if (v->window) SDL_DestroyWindow(v->window);
    if (v->sdl_started) SDL_Quit();
    font_free(v->font);
    viewer_script_free(&v->script);
    free(v);
}

int viewer_run(CaptionPipeline *pipeline, const ViewerOptions *o, Error *err) {
    Viewer *v = calloc(1, sizeof *v);
    if (!v) return error_set(err, "out of memory");
    v->files = o->files, v->current = -1, v->step = -1, v->beam = o->beam, v->dirty = 1;
    v->layer = TRANSFORMER_MAX_LAYERS, v->head = -1; /* the last layer, the heads' mean */
    v->screenshot_dir = o->screenshot_dir, v->scripted = o->script != NULL;
    v->overlay_on = 1;
    v->note = o->note;
    if (o->overlay) v->overlay = *o->overlay;
    else overlay_options_default(&v->overlay);
    int status = viewer_open(v, pipeline, o, err);
    if (status == 0) {
        run_loop(v);
        if (v->script_failed) status = error_set(err, "the script failed (see the messages above)");
    }
    viewer_close(v);
    return status;
}
