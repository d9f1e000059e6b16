#ifndef APP_CMD_BATCH_H
#define APP_CMD_BATCH_H

/* `caption batch PATH... -o OUT [options]`: captions every image under the
 * given folders (recursively; files named directly too) into OUT, one record
 * per image (app/batch/batch_output.h), with worker threads, sharding, --resume and
 * optional attention figures. Images are recognised by content
 * (image_is_image_file), listed in byte order of their paths; folders already
 * visited (symbolic link loops) are skipped with a note on stderr.
 * Exit status: 0 every image captioned, 1 some image, folder or the output
 * failed (each reported on stderr; failed images also get an error record),
 * 2 usage error. */
int cmd_batch(int argc, char **argv);

#endif
