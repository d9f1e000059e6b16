#include "model_path.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CAPTION_SOURCE_ASSETS
#define CAPTION_SOURCE_ASSETS "assets"
#endif
#ifndef CAPTION_INSTALLED_ASSETS
#define CAPTION_INSTALLED_ASSETS "/usr/local/share/caption"
#endif

static const char MODEL_FILE[] = "default-model.safetensors";

/* Candidate i (0..2) into buffer; returns 0 when it does not apply. */
static int candidate(int i, char *buffer, size_t size) {
    const char *env = getenv("CAPTION_MODEL");
    if (i == 0 && (!env || !*env)) return 0;
    int written = i == 0 ? snprintf(buffer, size, "%s", env)
                  : snprintf(buffer, size, "%s/%s", i == 1 ? CAPTION_SOURCE_ASSETS : CAPTION_INSTALLED_ASSETS,
                             MODEL_FILE);
    return written > 0 && (size_t)written < size;
}

const char *model_path_default(char *buffer, size_t size) {
    for (int i = 0; i < 3; i++)
        if (candidate(i, buffer, size) && access(buffer, R_OK) == 0) return buffer;
    return NULL;
}

void model_path_describe(char *out, size_t size) {
    static const char *const labels[] = {"$CAPTION_MODEL", "source tree", "install prefix"};
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < 3 && used < size; i++) {
        char path[4096];
        int applies = candidate(i, path, sizeof path);
        used += (size_t)snprintf(out + used, size - used, "    %-15s %s%s\n", labels[i], applies ? path : "(not set)",
                                 !applies ? "" : access(path, R_OK) == 0 ? "  [found]" : "  [missing]");
    }
}
