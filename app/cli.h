#ifndef APP_CLI_H
#define APP_CLI_H

/* Option values of the command-line tools: the whole text must be a number
 * in [low, high]; returns 0 and stores it, or -1 and leaves *out alone. */
int cli_parse_int(const char *text, int low, int high, int *out);
int cli_parse_float(const char *text, float low, float high, float *out);
/* A whole number of at least 1 (a count, e.g. --max-pixels). */
int cli_parse_count(const char *text, long long *out);

#endif
