/* Running a --script: each command that stands for user input is pushed as
 * an SDL event and the loop handles it before the next command runs, so a
 * `screenshot` always sees the effect of the keys before it. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "viewer_internal.h"

static void push_key(Viewer *v, SDL_Keycode key) {
    SDL_Event e;
    SDL_zero(e);
    e.type = SDL_KEYDOWN;
    e.key.windowID = SDL_GetWindowID(v->window);
    e.key.state = SDL_PRESSED;
    e.key.keysym.sym = key;
    e.key.keysym.scancode = SDL_GetScancodeFromKey(key);
    SDL_PushEvent(&e);
}

static void push_mouse(Viewer *v, int x, int y) {
    SDL_Event e;
    SDL_zero(e);
    e.type = SDL_MOUSEMOTION;
    e.motion.windowID = SDL_GetWindowID(v->window);
    e.motion.which = VIEWER_SCRIPT_MOUSE_ID;
    e.motion.x = x, e.motion.y = y;
    SDL_PushEvent(&e);
}

static void push_drop(Viewer *v, const char *path) {
    SDL_Event e;
    SDL_zero(e);
    e.type = SDL_DROPFILE;
    e.drop.windowID = SDL_GetWindowID(v->window);
    e.drop.file = SDL_strdup(path); /* freed by the handler, as SDL's own drops are */
    if (e.drop.file) SDL_PushEvent(&e);
}

static void push_quit(void) {
    SDL_Event e;
    SDL_zero(e);
    e.type = SDL_QUIT;
    SDL_PushEvent(&e);
}

static void screenshot(Viewer *v, const ScriptCommand *c) {
    if (v->dirty) viewer_present(v);
    if (viewer_save_frame(v, c->path) != 0) v->script_failed = 1;
    else fprintf(stderr, "caption view: screenshot %s\n", c->path);
}

/* Runs one command; returns 1 when it is done, 0 to stay on it. *wait gets
 * the milliseconds to sleep before trying again (-1: until an event). */
static int run_command(Viewer *v, const ScriptCommand *c, int *wait) {
    ViewerScript *s = &v->script;
    Uint32 now = SDL_GetTicks();
    *wait = 0;
    switch (c->op) {
    case SCRIPT_WAIT:
        if (!s->wait_until) s->wait_until = (now + (Uint32)c->ms) | 1u; /* 0 means "not waiting" */
        if (!SDL_TICKS_PASSED(now, s->wait_until)) return *wait = (int)(s->wait_until - now), 0;
        s->wait_until = 0;
        return 1;
    case SCRIPT_WAIT_CAPTION:
        if (v->pending) return *wait = -1, 0; /* the result's event wakes the loop */
        return 1;
    case SCRIPT_KEY: push_key(v, c->key); break;
    case SCRIPT_MOUSE: push_mouse(v, c->x, c->y); break;
    case SCRIPT_DROP: push_drop(v, c->path); break;
    case SCRIPT_RESIZE: SDL_SetWindowSize(v->window, c->x, c->y), v->dirty = 1; break;
    case SCRIPT_QUIT: push_quit(); break;
    case SCRIPT_SCREENSHOT: screenshot(v, c); return 1;
    }
    return 1;
}

int viewer_script_step(Viewer *v) {
    ViewerScript *s = &v->script;
    while (s->next < s->count) {
        const ScriptCommand *c = &s->commands[s->next];
        int wait;
        if (!run_command(v, c, &wait)) return wait;
        s->next++;
        /* An injected event must be handled before the next command runs. */
        if (c->op != SCRIPT_SCREENSHOT) return 0;
    }
    return -1;
}

void viewer_report_step(Viewer *v) {
    const Caption *c = &v->result.caption;
    const ViewRect *r = &v->picture_rect;
    if (!v->scripted || !v->has_result || !c->alpha || v->step < 0 || v->step >= c->length || r->w == 0) return;
    const float *alpha = c->alpha + (size_t)v->step * (size_t)c->cells;
    int best = 0;
    for (int i = 1; i < c->cells; i++)
        if (alpha[i] > alpha[best]) best = i;
    int cx = best % c->grid_w, cy = best / c->grid_w;
    char line[sizeof v->last_report];
    int x0 = r->x + cx * r->w / c->grid_w, y0 = r->y + cy * r->h / c->grid_h;
    int x1 = r->x + (cx + 1) * r->w / c->grid_w, y1 = r->y + (cy + 1) * r->h / c->grid_h;
    char map[48] = "";
    if (c->head_alpha) snprintf(map, sizeof map, " layer=%d head=%d", v->layer + 1, v->head + 1); /* head 0: the mean */
    snprintf(line, sizeof line,
             "caption view: step=%d word=%s prob=%.4f beta=%.4f cell=%d,%d grid=%dx%d region=%d,%d,%d,%d "
             "picture=%d,%d,%d,%d overlay=%s%s",
             v->step, v->result.words[v->step], (double)expf(c->token_logprobs[v->step]),
             c->beta ? (double)c->beta[v->step] : -1.0, cx, cy, c->grid_w, c->grid_h, x0, y0, x1, y1, r->x, r->y,
             r->w, r->h, v->overlay_on ? "on" : "off", map);
    if (strcmp(line, v->last_report) == 0) return;
    fprintf(stderr, "%s\n", line);
    memcpy(v->last_report, line, sizeof line);
}
