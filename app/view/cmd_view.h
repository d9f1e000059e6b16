#ifndef APP_CMD_VIEW_H
#define APP_CMD_VIEW_H

/* `caption view [--model FILE] [--beam N] [--script FILE] [--screenshot-dir DIR] [IMAGE|DIR...]`:
 * the interactive viewer (app/view/viewer.h): the image, its caption with the
 * current word highlighted, and that word's attention over the image.
 * Folders are expanded into their image files, sorted by name. In a build
 * without SDL2 it says so and how to get it (exit 1). Exit 0 when closed,
 * 1 when the model or window cannot be opened or a scripted step failed,
 * 2 on a usage error. */
int cmd_view(int argc, char **argv);

#endif
