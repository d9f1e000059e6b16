#include "json_utf8.h"

#include <stdlib.h>
#include <string.h>

/* The length of the UTF-8 sequence at s when it is well formed (*valid = 1),
 * else that of its maximal subpart: the longest prefix that could still
 * begin a well-formed sequence, at least 1 byte (*valid = 0). The ranges are
 * those of the Unicode Standard's table 3-7 (well-formed byte sequences).
 * Never reads past a NUL, which ends every partial sequence. */
static size_t utf8_sequence(const unsigned char *s, int *valid) {
    unsigned char lead = s[0], low = 0x80, high = 0xBF;
    size_t trailing;
    *valid = 0;
    if (lead < 0x80) return *valid = 1, 1;
    if (lead >= 0xC2 && lead <= 0xDF) {
        trailing = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        trailing = 2;
        if (lead == 0xE0) low = 0xA0;  /* no overlong forms */
        if (lead == 0xED) high = 0x9F; /* no surrogates */
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        trailing = 3;
        if (lead == 0xF0) low = 0x90;  /* no overlong forms */
        if (lead == 0xF4) high = 0x8F; /* nothing above U+10FFFF */
    } else {
        return 1; /* 80..BF (a continuation byte), C0, C1 (overlong) or F5..FF */
    }
    for (size_t i = 1; i <= trailing; i++) {
        if (s[i] < low || s[i] > high) return i;
        low = 0x80, high = 0xBF; /* only the second byte has narrower bounds */
    }
    return *valid = 1, trailing + 1;
}

int utf8_is_valid(const char *text) {
    const unsigned char *s = (const unsigned char *)text;
    int valid = 1;
    while (*s && valid) s += utf8_sequence(s, &valid);
    return valid;
}

char *utf8_replace_invalid(const char *text) {
    const unsigned char *s = (const unsigned char *)text;
    /* A replaced subpart is at least 1 byte and becomes 3. */
    char *out = malloc(3 * strlen(text) + 1), *w = out;
    if (!out) return NULL;
    while (*s) {
        int valid;
        size_t n = utf8_sequence(s, &valid);
        if (valid) memcpy(w, s, n), w += n;
        else memcpy(w, "\xEF\xBF\xBD", 3), w += 3;
        s += n;
    }
    *w = '\0';
    return out;
}

char *percent_escape(const char *bytes) {
    static const char HEX[] = "0123456789ABCDEF";
    char *out = malloc(3 * strlen(bytes) + 1), *w = out;
    if (!out) return NULL;
    for (const unsigned char *s = (const unsigned char *)bytes; *s; s++) {
        if (*s >= 0x20 && *s <= 0x7E && *s != '%') {
            *w++ = (char)*s;
        } else {
            *w++ = '%';
            *w++ = HEX[*s >> 4];
            *w++ = HEX[*s & 15];
        }
    }
    *w = '\0';
    return out;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int percent_unescape(char *text) {
    char *w = text;
    for (const char *r = text; *r; r++) {
        if (*r != '%') {
            *w++ = *r;
            continue;
        }
        int high = hex_digit(r[1]), low = high < 0 ? -1 : hex_digit(r[2]);
        if (low < 0 || (high | low) == 0) return -1;
        *w++ = (char)(high * 16 + low);
        r += 2;
    }
    *w = '\0';
    return 0;
}

/* cJSON writes every byte of 0x80 and above as it is and escapes only ASCII,
 * so the bytes that are not UTF-8 are all inside strings (keys or values),
 * and an ill-formed subsequence never reaches past the '"' that closes its
 * string: repairing the printed text is repairing each string. */
char *json_print_utf8(const cJSON *item) {
    char *text = cJSON_PrintUnformatted(item);
    if (!text || utf8_is_valid(text)) return text;
    char *repaired = utf8_replace_invalid(text);
    free(text);
    return repaired;
}

int json_add_path(cJSON *object, const char *path) {
    if (utf8_is_valid(path)) return cJSON_AddStringToObject(object, "path", path) ? 0 : -1;
    char *text = utf8_replace_invalid(path), *bytes = percent_escape(path);
    int ok = text && bytes && cJSON_AddStringToObject(object, "path", text) &&
             cJSON_AddStringToObject(object, "path_bytes", bytes);
    free(text);
    free(bytes);
    return ok ? 0 : -1;
}

char *json_record_path(const cJSON *record) {
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(record, "path");
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(record, "path_bytes");
    if (!cJSON_IsString(path) || (bytes && !cJSON_IsString(bytes))) return NULL;
    char *exact = strdup(bytes ? bytes->valuestring : path->valuestring);
    if (exact && bytes && percent_unescape(exact) != 0) {
        free(exact);
        return NULL;
    }
    return exact;
}
