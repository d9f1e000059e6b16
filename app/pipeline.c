#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "model_path.h"

int pipeline_load(CaptionPipeline *p, const char *model_path, Error *err) {
    memset(p, 0, sizeof *p);
    if (!model_path_is_list(model_path)) return sat_model_load(&p->model, model_path, err);
    int count = 1;
    for (const char *c = model_path; (c = strchr(c, ',')) != NULL; c++) count++;
    p->members = calloc((size_t)count - 1, sizeof *p->members);
    if (!p->members) return error_set(err, "out of memory");
    int status = 0;
    for (const char *cursor = model_path; status == 0 && cursor;) {
        char path[4096];
        int first = cursor == model_path;
        SatModel *model = first ? &p->model : &p->members[p->member_count];
        if (model_path_list_next(&cursor, path, sizeof path) != 0)
            status = error_set(err, "%s: an ensemble is model files separated by single commas", model_path);
        else if ((status = sat_model_load(model, path, err)) == 0 && !first) {
            p->member_count++;
            if (ensemble_check_member(&p->model, model, err) != 0)
                status = error_prefix(err, "ensemble model %d of %d (%s)", p->member_count + 1, count, path);
        }
    }
    if (status != 0) pipeline_close(p);
    return status;
}

int pipeline_captioner_create(const CaptionPipeline *p, int max_beam, int max_length, Captioner **out, Error *err) {
    if (captioner_create(out, &p->model, max_beam, max_length, err) != 0) return -1;
    for (int i = 0; i < p->member_count; i++)
        if (captioner_add_member(*out, &p->members[i], err) != 0) {
            captioner_free(*out);
            *out = NULL;
            return -1;
        }
    return 0;
}

int pipeline_open(CaptionPipeline *p, const char *model_path, int max_beam, int max_length, Error *err) {
    if (pipeline_load(p, model_path, err) != 0) return -1;
    return pipeline_prepare(p, max_beam, max_length, err);
}

int pipeline_prepare(CaptionPipeline *p, int max_beam, int max_length, Error *err) {
    int size = p->model.config.image_size;
    p->input = malloc(sizeof(float) * 3 * size * size);
    if (!p->input || pipeline_captioner_create(p, max_beam, max_length, &p->captioner, err) != 0) {
        if (!p->input) error_set(err, "out of memory");
        pipeline_close(p);
        return -1;
    }
    p->decode = (DecodeOptions){.beam_width = 1, .max_length = max_length, .length_penalty = 0.0f};
    return 0;
}

void pipeline_close(CaptionPipeline *p) {
    captioner_free(p->captioner);
    free(p->input);
    sat_model_free(&p->model);
    for (int i = 0; i < p->member_count; i++) sat_model_free(&p->members[i]);
    free(p->members);
    memset(p, 0, sizeof *p);
}

int pipeline_preprocess(CaptionPipeline *p, const Image *image, Error *err) {
    const SatConfig *c = &p->model.config;
    Image resized = {0};
    if (image_resize(&resized, image, c->image_size, c->image_size, err) != 0) return -1;
    image_to_tensor(p->input, &resized, c->image_mean, c->image_std);
    image_free(&resized);
    return 0;
}

int pipeline_caption_image(CaptionPipeline *p, const Image *image, Caption *caption, Error *err) {
    if (pipeline_preprocess(p, image, err) != 0) return -1;
    return captioner_run(p->captioner, p->input, &p->decode, caption, err);
}

int pipeline_caption_file(CaptionPipeline *p, const char *path, Caption *caption, Image *image_out,
                          Error *err) {
    Image image = {0};
    if (image_load(&image, path, &p->load, err) != 0) return -1;
    int status = pipeline_caption_image(p, &image, caption, err);
    if (status != 0) error_prefix(err, "%s", path);
    if (status == 0 && image_out) *image_out = image;
    else image_free(&image);
    return status;
}
