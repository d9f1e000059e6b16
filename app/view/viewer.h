#ifndef APP_VIEWER_H
#define APP_VIEWER_H

#include "error.h"
#include "overlay.h"
#include "pipeline.h"
#include "viewer_files.h"

/* `caption view`: an SDL2 window showing an image, its caption and where the
 * model looked for each word (see cmd_view.h for the keys). Only built when
 * SDL2 is found (CAPTION_HAVE_VIEWER). */

typedef struct {
    ImageList *files;           /* shown in this order; dropped files are appended */
    int beam;                   /* the beam width to start with */
    const char *script;         /* a scripted session (viewer_script.h); NULL = interactive */
    const char *screenshot_dir; /* where `s` saves; NULL = the current folder */
    const OverlayOptions *overlay; /* colormap, opacity, normalisation, smoothing to start with; NULL = defaults */
    const char *note;              /* said in the window while no image is shown, e.g. "no images in DIR"; may be NULL */
} ViewerOptions;

/* Opens the window and runs until the user (or the script) quits. The
 * pipeline is used by the captioning thread only; the caller closes it
 * afterwards. Returns 0,
 * or -1 with err when the window cannot be opened (no display), the font or
 * script cannot be read, or a scripted screenshot failed. */
int viewer_run(CaptionPipeline *pipeline, const ViewerOptions *options, Error *err);

#endif
