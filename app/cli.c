#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caption.h"
#include "model_path.h"

int cli_parse_int(const char *text, int low, int high, int *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || end == text || v < low || v > high) return -1;
    *out = (int)v;
    return 0;
}

/* errno is not consulted: strtof's ERANGE on underflow comes with the nearest
 * float (0 or a subnormal), which is what was asked for, and on overflow with
 * +-HUGE_VALF, which no finite [low, high] contains. */
int cli_parse_float(const char *text, float low, float high, float *out) {
    char *end;
    float v = strtof(text, &end);
    if (*end || end == text || !(v >= low && v <= high)) return -1;
    *out = v;
    return 0;
}

int cli_parse_count(const char *text, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || end == text || v < 1) return -1;
    *out = v;
    return 0;
}

void cli_print_help(FILE *out, const char *format, ...) {
    /* Never NULL; the test keeps GCC 12's -Wformat-overflow quiet under -fsanitize=undefined. */
    if (!format) return;
    char places[8192];
    model_path_describe(places, sizeof places);
    va_list args;
    va_start(args, format);
    vfprintf(out, format, args);
    va_end(args);
    fprintf(out, "\nthe default model is looked for in:\n%s", places);
}

int cli_usage_error(const char *command, const char *format, ...) {
    va_list args;
    va_start(args, format);
    fprintf(stderr, "%s: ", command);
    vfprintf(stderr, format, args);
    fprintf(stderr, " (see %s --help)\n", command);
    va_end(args);
    return -1;
}

static const struct {
    unsigned flag;
    const char *name;
} OPTION_NAMES[] = {
    {CLI_MODEL, "--model"},       {CLI_BEAM, "--beam"},           {CLI_MAX_LENGTH, "--max-length"},
    {CLI_LENGTH_PENALTY, "--length-penalty"},                     {CLI_MAX_PIXELS, "--max-pixels"},
    {CLI_COLORMAP, "--colormap"}, {CLI_NORMALIZE, "--normalize"}, {CLI_OPACITY, "--opacity"},
    {CLI_SMOOTH, "--smooth"},     {CLI_PANEL_SIZE, "--panel-size"}, {CLI_COLUMNS, "--columns"},
};

/* The flag of arg among `taken`, or 0. */
static unsigned option_flag(unsigned taken, const char *arg) {
    for (size_t i = 0; i < sizeof OPTION_NAMES / sizeof *OPTION_NAMES; i++)
        if ((taken & OPTION_NAMES[i].flag) && strcmp(arg, OPTION_NAMES[i].name) == 0) return OPTION_NAMES[i].flag;
    return 0;
}

int cli_takes_option(unsigned taken, const char *arg) { return option_flag(taken, arg) != 0; }

/* The figure options of cli_take_option. */
static int take_figure_option(FigureOptions *f, unsigned flag, const char *arg, const char *value, Error *err) {
    switch (flag) {
    case CLI_COLORMAP:
        if (colormap_parse(value, &f->overlay.colormap, err) == 0) return 1;
        return error_prefix(err, "%s", arg);
    case CLI_NORMALIZE:
        if (overlay_normalize_parse(value, &f->overlay.normalize, err) == 0) return 1;
        return error_prefix(err, "%s", arg);
    case CLI_OPACITY:
        if (cli_parse_float(value, 0.0f, 1.0f, &f->overlay.opacity) == 0) return 1;
        return error_set(err, "%s takes a number from 0 to 1, not '%s'", arg, value);
    case CLI_SMOOTH:
        if (cli_parse_float(value, 0.0f, OVERLAY_MAX_SIGMA, &f->overlay.sigma) == 0) return 1;
        return error_set(err, "%s takes a number of grid cells from 0 to %g, not '%s'", arg, (double)OVERLAY_MAX_SIGMA,
                         value);
    case CLI_PANEL_SIZE:
        if (cli_parse_int(value, FIGURE_MIN_PANEL_HEIGHT, FIGURE_MAX_PANEL_HEIGHT, &f->panel_height) == 0) return 1;
        return error_set(err, "%s takes a whole number of pixels from %d to %d, not '%s'", arg, FIGURE_MIN_PANEL_HEIGHT,
                         FIGURE_MAX_PANEL_HEIGHT, value);
    default: /* CLI_COLUMNS */
        if (cli_parse_int(value, 1, FIGURE_MAX_COLUMNS, &f->columns) == 0) return 1;
        return error_set(err, "%s takes a whole number from 1 to %d, not '%s'", arg, FIGURE_MAX_COLUMNS, value);
    }
}

int cli_take_option(CaptionOptions *o, FigureOptions *figure, unsigned taken, const char *arg, const char *value,
                    Error *err) {
    unsigned flag = option_flag(taken, arg);
    switch (flag) {
    case 0:
        return 0;
    case CLI_MODEL:
        o->model = value;
        return 1;
    case CLI_BEAM:
        if (cli_parse_int(value, 1, CAPTION_MAX_BEAM, &o->beam) == 0) return 1;
        return error_set(err, "%s takes a whole number from 1 to %d, not '%s'", arg, CAPTION_MAX_BEAM, value);
    case CLI_MAX_LENGTH:
        if (cli_parse_int(value, 1, CAPTION_MAX_LENGTH, &o->max_length) == 0) return 1;
        return error_set(err, "%s takes a whole number from 1 to %d, not '%s'", arg, CAPTION_MAX_LENGTH, value);
    case CLI_LENGTH_PENALTY:
        if (cli_parse_float(value, 0.0f, CAPTION_MAX_LENGTH_PENALTY, &o->length_penalty) == 0) return 1;
        return error_set(err, "%s takes a number from 0 to %d, not '%s'", arg, CAPTION_MAX_LENGTH_PENALTY, value);
    case CLI_MAX_PIXELS:
        if (cli_parse_count(value, &o->max_pixels) == 0) return 1;
        return error_set(err, "%s takes a positive whole number, not '%s'", arg, value);
    default:
        return take_figure_option(figure, flag, arg, value, err);
    }
}

const char *cli_resolve_model(const char *value, char *buffer, size_t size, Error *err) {
    Error unresolved;
    const char *model = model_path_resolve(value, buffer, size, &unresolved);
    if (model) return model;
    if (value) error_set(err, "--model %s", unresolved.message);
    else error_set(err, "%s", unresolved.message);
    return NULL;
}

void cli_model_not_found(const CaptionOptions *o, const char *command) {
    char unused[4096];
    Error err;
    if (o->model && !cli_resolve_model(o->model, unused, sizeof unused, &err)) {
        fprintf(stderr, "%s: %s\n", command, err.message);
    } else {
        fprintf(stderr, "%s: no model given and no default model found; pass --model FILE "
                        "(%s --help lists where the default is looked for)\n", command, command);
    }
}

const char *cli_model_path(const CaptionOptions *o, const char *command, char *buffer, size_t size) {
    const char *model = model_path_resolve(o->model, buffer, size, &(Error){0});
    if (!model) cli_model_not_found(o, command);
    return model;
}

int cli_pipeline_open(CaptionPipeline *p, const char *model, const CaptionOptions *o, int min_beam,
                      int single_stream, Error *err) {
    if (pipeline_open(p, model, o->beam > min_beam ? o->beam : min_beam, o->max_length, err) != 0) return -1;
    p->decode = (DecodeOptions){o->beam, o->max_length, o->length_penalty};
    p->load.max_pixels = o->max_pixels;
    if (single_stream && sysconf(_SC_NPROCESSORS_ONLN) > 1 && captioner_use_second_thread(p->captioner, err) != 0) {
        pipeline_close(p);
        return -1;
    }
    return 0;
}
