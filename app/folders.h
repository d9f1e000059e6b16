#ifndef APP_FOLDERS_H
#define APP_FOLDERS_H

#include "error.h"

/* Creates the folder and any missing parents, as mkdir -p does (an existing
 * folder is fine). The error names the folder and what was in the way. */
int make_folders(const char *path, Error *err);

#endif
