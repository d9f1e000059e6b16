#ifndef APP_CLI_H
#define APP_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "error.h"
#include "figure.h"
#include "pipeline.h"

/* Option values of the command-line tools: the whole text must be a number
 * in [low, high]; returns 0 and stores it, or -1 and leaves *out alone. */
int cli_parse_int(const char *text, int low, int high, int *out);
int cli_parse_float(const char *text, float low, float high, float *out);
/* A whole number of at least 1 (a count, e.g. --max-pixels). */
int cli_parse_count(const char *text, long long *out);

/* Prints a command's --help: the text (a printf format and its arguments),
 * then where the default model is looked for and which places exist. */
void cli_print_help(FILE *out, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* Prints "COMMAND: MESSAGE (see COMMAND --help)" and a newline on stderr;
 * returns -1. */
int cli_usage_error(const char *command, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* The captioning options that several subcommands share, parsed in one place
 * (cli_take_option) so that they mean, and are checked, the same
 * everywhere. Each command takes the subset its --help lists. */
typedef struct {
    const char *model;    /* --model FILE; NULL: the default model (model_path.h) */
    int beam;             /* --beam N, 1..64 */
    int max_length;       /* --max-length N, 1..1000 */
    float length_penalty; /* --length-penalty A, 0..10 */
    long long max_pixels; /* --max-pixels N, >= 1; 0: the image loader's own limit */
} CaptionOptions;

/* The defaults every command starts from: beam 3, 30 words, no penalty. */
#define CAPTION_OPTIONS_DEFAULT ((CaptionOptions){.beam = 3, .max_length = 30})

/* Which of the shared options a command takes (or'ed together): the
 * captioning ones, stored in a CaptionOptions, and those of the attention
 * figure (`caption export`, `caption batch --export-dir`), stored in a
 * FigureOptions. */
enum {
    CLI_MODEL = 1 << 0,
    CLI_BEAM = 1 << 1,
    CLI_MAX_LENGTH = 1 << 2,
    CLI_LENGTH_PENALTY = 1 << 3,
    CLI_MAX_PIXELS = 1 << 4,
    CLI_COLORMAP = 1 << 5,
    CLI_NORMALIZE = 1 << 6,
    CLI_OPACITY = 1 << 7,
    CLI_SMOOTH = 1 << 8,
    CLI_PANEL_SIZE = 1 << 9,
    CLI_COLUMNS = 1 << 10,
};

/* 1 when arg is one of the options in `taken` (each takes a value). */
int cli_takes_option(unsigned taken, const char *arg);

/* Consumes one option and its value when arg is one of `taken`, into o or
 * figure (which may be NULL when `taken` has no figure option). Returns 1
 * when stored, 0 when arg is none of them (nothing changed), -1 when the
 * value is not valid: err then says e.g. "--beam takes a whole number from 1
 * to 64, not '0'" or "--colormap: unknown colormap ...", and the caller
 * prints it after its command's name. */
int cli_take_option(CaptionOptions *o, FigureOptions *figure, unsigned taken, const char *arg, const char *value,
                    Error *err);

/* model_path_resolve for a command's --model option (value NULL: none
 * given), its message worded as every tool words it: "--model VALUE: no such
 * file, and no bundled model of that name (bundled: ...); ...". */
const char *cli_resolve_model(const char *value, char *buffer, size_t size, Error *err);

/* The model to open: --model, else the default model (into buffer). NULL
 * after printing "COMMAND: no model given and no default model found; ..." on
 * stderr, a usage error (exit status 2). */
const char *cli_model_path(const CaptionOptions *o, const char *command, char *buffer, size_t size);

/* Prints cli_model_path's message for a model that could not be found
 * (o->model is not a file and no bundled model of that name, or no default
 * model): for a command that resolved the model another way (libcaption's
 * caption_model_open, in `caption`). */
void cli_model_not_found(const CaptionOptions *o, const char *command);

/* pipeline_open with room for o->max_length words and o->beam beams, or
 * min_beam when that is more (the viewer's `b` key goes up to 5 without
 * reloading), then o's decoding options and --max-pixels. single_stream: the
 * command captions one image at a time, so beam search may take a second
 * core when there is one (not for `caption batch`'s parallel workers). */
int cli_pipeline_open(CaptionPipeline *p, const char *model, const CaptionOptions *o, int min_beam,
                      int single_stream, Error *err);

#endif
