#ifndef APP_CMD_TRAIN_H
#define APP_CMD_TRAIN_H

/* `caption train [--config FILE] [--resume CKPT] [--OPTION VALUE]...` */
int cmd_train(int argc, char **argv);

/* `caption shapes --out DIR [--train N] [--dev N] [--seed N]`: writes a
 * procedural shapes dataset in the Flickr8k layout. */
int cmd_shapes(int argc, char **argv);

#endif
