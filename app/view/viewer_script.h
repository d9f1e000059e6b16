#ifndef APP_VIEWER_SCRIPT_H
#define APP_VIEWER_SCRIPT_H

#include <SDL.h>
#include <stddef.h>

#include "error.h"

/* `caption view --script FILE`: a scripted session, for tests and demos.
 * One command per line; blank lines and lines starting with # are skipped:
 *   key NAME          press a key: a letter or symbol (a, s, +, -), or left,
 *                     right, up, down, space, pageup, pagedown, escape, home, end
 *   mouse X Y         move the mouse to window pixel (X, Y) (hovering a word)
 *   drop PATH         drop a file or folder on the window
 *   resize W H        resize the window to W x H
 *   wait-caption      wait until the image shown is captioned (or has failed)
 *   wait MS           wait MS milliseconds
 *   screenshot PATH   save what is shown as a PNG
 *   quit              close the viewer
 * Keys, mouse moves and drops are pushed with SDL_PushEvent, so they take
 * the very path real input takes (a resize goes through the window system). The whole file is checked when loaded. */

typedef enum {
    SCRIPT_KEY,
    SCRIPT_MOUSE,
    SCRIPT_DROP,
    SCRIPT_RESIZE,
    SCRIPT_WAIT_CAPTION,
    SCRIPT_WAIT,
    SCRIPT_SCREENSHOT,
    SCRIPT_QUIT,
} ScriptOp;

typedef struct {
    ScriptOp op;
    SDL_Keycode key;
    int x, y, ms;
    char *path;
    int line;
} ScriptCommand;

typedef struct {
    ScriptCommand *commands;
    size_t count, capacity;
    size_t next;          /* the command to run next */
    Uint32 wait_until;    /* SDL_GetTicks() time a `wait` ends; 0 = not waiting */
} ViewerScript;

/* Reads and checks the whole script; an error names the file and line. */
int viewer_script_load(ViewerScript *script, const char *path, Error *err);
void viewer_script_free(ViewerScript *script);

/* The key a script name stands for, or SDLK_UNKNOWN. */
SDL_Keycode viewer_script_key(const char *name);

#endif
