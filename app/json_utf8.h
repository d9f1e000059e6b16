#ifndef APP_JSON_UTF8_H
#define APP_JSON_UTF8_H

#include <cJSON.h>

/* JSON text must be UTF-8 (RFC 8259 section 8.1), but file names are bytes:
 * on Linux a name may be any bytes but '/' and NUL, e.g. Latin-1 "caf\xe9.png".
 * cJSON copies the bytes of a string as they are, so such a name would make
 * the output invalid JSON that strict readers (Python's json.loads on bytes,
 * jq, serde_json) refuse. Everything app/ prints as JSON goes through here:
 *
 *   - json_print_utf8 prints an item with every ill-formed UTF-8 subsequence
 *     in its strings replaced by U+FFFD, so no output is ever invalid;
 *   - a path is written with json_add_path: "path" is the name as text (U+FFFD
 *     for what is not UTF-8) and, only when the name is not valid UTF-8,
 *     "path_bytes" holds its exact bytes, percent-escaped, so nothing is lost.
 *
 * Why this and not something else: JSON strings hold Unicode text, not bytes,
 * so invalid bytes cannot pass through; escapes such as Python's
 * surrogateescape ("\udce9") are lone surrogates, which are not Unicode
 * either and which many parsers refuse or mangle. U+FFFD keeps "path"
 * readable and is what every UTF-8 decoder shows for such a name; the
 * replacement follows the Unicode Standard's "maximal subpart" practice
 * (chapter 3, U+FFFD substitution), as Python's bytes.decode("utf-8",
 * "replace") and the WHATWG decoder do, so a script can reproduce "path" from
 * the bytes. Two different names may then show the same "path", which is why
 * "path_bytes" exists; percent-escaping keeps its ASCII readable, is undone
 * by urllib.parse.unquote_to_bytes, and is unambiguous because '%' itself is
 * escaped. Valid names get no "path_bytes", so ordinary output is unchanged. */

/* 1 when the NUL-terminated text is well-formed UTF-8 (no overlong forms,
 * surrogates or code points above U+10FFFF). */
int utf8_is_valid(const char *text);

/* A malloc'ed copy of text with each maximal ill-formed subsequence replaced
 * by U+FFFD (EF BF BD); NULL when out of memory. */
char *utf8_replace_invalid(const char *text);

/* A malloc'ed copy of bytes with '%' and every byte outside printable ASCII
 * (0x20..0x7E) written %XX, upper-case hex; NULL when out of memory. */
char *percent_escape(const char *bytes);

/* Undoes percent_escape in place: 0, or -1 when a '%' is not followed by two
 * hex digits or stands for NUL. */
int percent_unescape(char *text);

/* cJSON_PrintUnformatted, made valid UTF-8 (see above); NULL when out of
 * memory. free() the result. */
char *json_print_utf8(const cJSON *item);

/* Adds "path" and, when path is not valid UTF-8, "path_bytes" (see above) to
 * object. 0, or -1 when out of memory. */
int json_add_path(cJSON *object, const char *path);

/* The exact path of a record written with json_add_path, malloc'ed:
 * "path_bytes" decoded when there is one, else "path" (files from before
 * "path_bytes" existed hold the raw bytes there). NULL when the record has no
 * string "path", its "path_bytes" is not percent-escaped text, or memory ran
 * out. */
char *json_record_path(const cJSON *record);

#endif
