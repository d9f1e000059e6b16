#ifndef APP_VIEWER_FILES_H
#define APP_VIEWER_FILES_H

#include <stddef.h>

#include "error.h"

/* The images the viewer steps through with n/p. */
typedef struct {
    char **paths;
    size_t count, capacity;
} ImageList;

/* Adds path: a folder adds its image files (recognised by content with
 * image_is_image_file, hidden files skipped, not recursive) sorted by name;
 * anything else is added as given, so a missing or broken file shows its
 * error in the window like any other. Returns the number added (0 for a
 * folder without images), or -1 with err (an unreadable folder, no memory). */
int image_list_add(ImageList *list, const char *path, Error *err);

void image_list_free(ImageList *list);

#endif
