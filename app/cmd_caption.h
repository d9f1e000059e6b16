#ifndef APP_CMD_CAPTION_H
#define APP_CMD_CAPTION_H

/* `caption [--model FILE] IMAGE...`: prints `path<TAB>caption` per image, or
 * JSON Lines with --json. Exit 0 if all were captioned, 1 if some failed,
 * 2 on usage errors. */
int cmd_caption(int argc, char **argv);

#endif
