#ifndef APP_VIEWER_INTERNAL_H
#define APP_VIEWER_INTERNAL_H

/* The viewer's state, shared by viewer.c (window and events),
 * viewer_render.c (drawing the frame) and viewer_session.c (the script). */
#include <SDL.h>

#include "overlay.h"
#include "text.h"
#include "viewer.h"
#include "viewer_draw.h"
#include "viewer_script.h"
#include "viewer_worker.h"

/* Script-injected mouse moves carry this device id: in script mode real
 * pointer motion is ignored, since Xvfb's pointer may rest over a word and
 * would change the step under the script's feet. */
#define VIEWER_SCRIPT_MOUSE_ID 0x5c219u

typedef struct {
    int x, y, w, h;
} ViewRect;

/* A rendered picture and what it was rendered from, so it is redrawn only
 * when something it depends on changed. */
typedef struct {
    Image image;
    unsigned long serial;
    int width, height, step, overlay_on;
    OverlayOptions overlay;
} ViewCache;

typedef struct {
    const char *screenshot_dir;
    const char *note;         /* shown where the picture goes while there is none (ViewerOptions) */
    int scripted;
    ViewerScript script;
    int script_failed;

    SDL_Window *window;
    SDL_Renderer *renderer;
    SDL_Texture *texture;
    int texture_w, texture_h;
    Uint32 result_event;
    CaptionWorker *worker;
    Font *font;

    ImageList *files;
    long current;             /* index into files; -1 = none yet */

    /* the image shown */
    int pending;              /* a caption request is out */
    unsigned long pending_id;
    int has_result;           /* result holds the picture and caption shown */
    CaptionResult result;
    unsigned long serial;     /* changes with result, for the caches */
    int failed;               /* the image could not be captioned: failure says why */
    Error failure;

    /* what the user chose */
    int step;                 /* the word shown; -1 = none */
    int playing;
    Uint32 next_step_at;
    int overlay_on, grid, help, beam;
    int layer, head;          /* a Transformer's map shown: decoder layer (0-based), head (-1 = their mean) */
    OverlayOptions overlay;

    char message[512];        /* shown in the status line until message_until */
    Uint32 message_until;
    int quit, dirty, sdl_started;

    /* the last frame: exactly what the window shows */
    Image frame;
    ViewRect picture_rect;    /* where the picture is in the frame; w = 0: not shown */
    ViewRect *word_boxes;     /* [word_box_count], for hovering */
    int word_box_count;
    ViewCache scaled, overlaid, figure;
    char last_report[512];
    char last_status[1700];   /* script mode: the status line last printed on stderr */
} Viewer;

/* viewer_render.c: draws everything into v->frame (width x height). */
int viewer_compose(Viewer *v, int width, int height, Error *err);
void viewer_render_free(Viewer *v);
/* 1 if the cache holds an image made for key's settings. */
int viewer_cache_valid(const ViewCache *cache, const ViewCache *key);

/* viewer_panels.c: the status line's two ends; the text shown where the
 * picture goes while there is none (returns its colour); the grid of all
 * words (g); the keys (h). */
void viewer_status_text(const Viewer *v, char *left, size_t left_size, char *right, size_t right_size);
Rgb viewer_placeholder_text(const Viewer *v, char *text, size_t size);
int viewer_draw_grid(Viewer *v, const ViewMetrics *m, Error *err);
void viewer_draw_help(Viewer *v, const ViewMetrics *m);

/* viewer_session.c: runs script commands until one has to wait; returns the
 * milliseconds until it wants to run again (-1: nothing to do until an event). */
int viewer_script_step(Viewer *v);
/* Says on stderr which cell the current word attends to most and where that
 * is in the window (script mode), once per change, as one line:
 *   caption view: step=K word=W prob=P beta=B cell=X,Y grid=WxH
 *   region=X0,Y0,X1,Y1 (that cell's frame pixels, half-open)
 *   picture=X,Y,W,H (where the picture is drawn) overlay=on|off
 *   [layer=L head=H (a Transformer's map shown; head 0 = the heads' mean)]
 * so tests can check the pixels where the model looked. */
void viewer_report_step(Viewer *v);

/* viewer.c */
int viewer_save_frame(Viewer *v, const char *path);
void viewer_present(Viewer *v);
void viewer_set_message(Viewer *v, const char *format, ...) __attribute__((format(printf, 2, 3)));

#endif
