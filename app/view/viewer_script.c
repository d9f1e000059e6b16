#include "viewer_script.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "collections.h"

SDL_Keycode viewer_script_key(const char *name) {
    static const struct {
        const char *name;
        SDL_Keycode key;
    } named[] = {
        {"left", SDLK_LEFT},         {"right", SDLK_RIGHT},   {"up", SDLK_UP},         {"down", SDLK_DOWN},
        {"space", SDLK_SPACE},       {"pageup", SDLK_PAGEUP}, {"pagedown", SDLK_PAGEDOWN},
        {"escape", SDLK_ESCAPE},     {"esc", SDLK_ESCAPE},    {"home", SDLK_HOME},     {"end", SDLK_END},
        {"plus", SDLK_PLUS},         {"minus", SDLK_MINUS},   {"return", SDLK_RETURN},
    };
    for (size_t i = 0; i < sizeof named / sizeof *named; i++)
        if (strcasecmp(name, named[i].name) == 0) return named[i].key;
    /* A single printable character is its own keycode in SDL (SDLK_a == 'a'). */
    if (name[0] && !name[1] && isgraph((unsigned char)name[0])) return (SDL_Keycode)tolower((unsigned char)name[0]);
    return SDLK_UNKNOWN;
}

static int parse_number(const char *text, int low, int high, int *out) {
    char *end;
    errno = 0;
    long v = text ? strtol(text, &end, 10) : 0;
    if (!text || errno || *end || end == text || v < low || v > high) return -1;
    *out = (int)v;
    return 0;
}

/* Splits line in place into at most 3 words; returns how many. */
static int split(char *line, char *words[3]) {
    int n = 0;
    for (char *p = strtok(line, " \t\r\n"); p; p = strtok(NULL, " \t\r\n")) {
        if (n == 3) return 4;
        words[n++] = p;
    }
    for (int i = n; i < 3; i++) words[i] = NULL;
    return n;
}

/* Parses one non-empty line; -1 with the reason in err (without the location). */
static int parse_command(ScriptCommand *c, char *line, Error *err) {
    char *w[3];
    int n = split(line, w);
    const char *op = w[0];
    int args = n - 1;
    if (strcmp(op, "key") == 0 && args == 1) {
        c->op = SCRIPT_KEY;
        c->key = viewer_script_key(w[1]);
        if (c->key == SDLK_UNKNOWN) return error_set(err, "unknown key '%s'", w[1]);
    } else if (strcmp(op, "mouse") == 0 && args == 2) {
        c->op = SCRIPT_MOUSE;
        if (parse_number(w[1], 0, 100000, &c->x) || parse_number(w[2], 0, 100000, &c->y))
            return error_set(err, "mouse takes two pixel coordinates X Y");
    } else if (strcmp(op, "resize") == 0 && args == 2) {
        c->op = SCRIPT_RESIZE;
        if (parse_number(w[1], 320, 10000, &c->x) || parse_number(w[2], 240, 10000, &c->y))
            return error_set(err, "resize takes a width from 320 and a height from 240 in pixels");
    } else if ((strcmp(op, "drop") == 0 || strcmp(op, "screenshot") == 0) && args == 1) {
        c->op = op[0] == 'd' ? SCRIPT_DROP : SCRIPT_SCREENSHOT;
        c->path = strdup(w[1]);
        if (!c->path) return error_set(err, "out of memory");
    } else if (strcmp(op, "wait") == 0 && args == 1) {
        c->op = SCRIPT_WAIT;
        if (parse_number(w[1], 0, 600000, &c->ms)) return error_set(err, "wait takes milliseconds, 0 to 600000");
    } else if (strcmp(op, "wait-caption") == 0 && args == 0) {
        c->op = SCRIPT_WAIT_CAPTION;
    } else if (strcmp(op, "quit") == 0 && args == 0) {
        c->op = SCRIPT_QUIT;
    } else {
        return error_set(err, "expected key NAME, mouse X Y, drop PATH, resize W H, wait-caption, wait MS, "
                              "screenshot PATH or quit, not '%s' with %d argument(s)", op, args);
    }
    return 0;
}

static int parse_lines(ViewerScript *s, FILE *f, const char *path, Error *err) {
    char line[4096];
    for (int number = 1; fgets(line, sizeof line, f); number++) {
        const char *p = line;
        while (isspace((unsigned char)*p)) p++;
        if (*p == '\0' || *p == '#') continue;
        if (ARRAY_RESERVE(s->commands, s->capacity, s->count + 1) != 0) return error_set(err, "out of memory");
        ScriptCommand *c = &s->commands[s->count];
        *c = (ScriptCommand){.line = number};
        if (parse_command(c, line, err) != 0) return error_prefix(err, "%s:%d", path, number);
        s->count++;
    }
    if (ferror(f)) return error_set(err, "%s: cannot read: %s", path, strerror(errno));
    return 0;
}

int viewer_script_load(ViewerScript *s, const char *path, Error *err) {
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "r");
    if (!f) return error_set(err, "%s: cannot open the script: %s", path, strerror(errno));
    int status = parse_lines(s, f, path, err);
    fclose(f);
    if (status != 0) viewer_script_free(s);
    return status;
}

void viewer_script_free(ViewerScript *s) {
    for (size_t i = 0; i < s->count; i++) free(s->commands[i].path);
    free(s->commands);
    memset(s, 0, sizeof *s);
}
