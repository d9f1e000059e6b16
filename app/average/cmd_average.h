#ifndef APP_CMD_AVERAGE_H
#define APP_CMD_AVERAGE_H

/* `caption average`: a weights file whose every tensor is the weighted mean
 * of the given models' (weight averaging: the epochs of one run, or a model
 * and the one it was fine-tuned from). */
int cmd_average(int argc, char **argv);

#endif
