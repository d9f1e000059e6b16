#include "cmd_eval.h"

#include <cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "caption_json.h"
#include "cli.h"
#include "dataset.h"
#include "json_utf8.h"
#include "pipeline.h"
#include "progress.h"
#include "shapes.h"

static const char *const METRIC_NAMES[] = {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4",
                                           "ROUGE-L", "CIDEr-D"};
#define METRIC_COUNT (sizeof METRIC_NAMES / sizeof *METRIC_NAMES)

/* The scores in METRIC_NAMES order. */
static void metric_values(const MetricScores *scores, double values[METRIC_COUNT]) {
    for (int k = 0; k < METRICS_BLEU_ORDER; k++) values[k] = scores->bleu[k];
    values[4] = scores->rouge_l;
    values[5] = scores->cider_d;
}

void eval_result_free(EvalResult *result) {
    if (!result) return;
    caption_pairing_free(&result->pairing);
    free(result->per_image);
    memset(result, 0, sizeof *result);
}

/* Counts the agreement of a caption as the metrics tokenise it. */
static int count_agreement(AgreementCounts *counts, const char *caption, Error *err) {
    char *tokens = metrics_tokenize(caption, err);
    if (!tokens) return -1;
    agreement_count(counts, tokens);
    free(tokens);
    return 0;
}

int eval_score(const CaptionSet *refs, const CaptionSet *hyps, bool intersection,
               EvalResult *result, Error *err) {
    memset(result, 0, sizeof *result);
    if (caption_sets_pair(refs, hyps, intersection, &result->pairing, err) < 0) return -1;
    MetricsScorer *scorer = metrics_scorer_new(err);
    if (!scorer) {
        eval_result_free(result);
        return -1;
    }
    const CaptionPairing *pairing = &result->pairing;
    int rc = 0;
    for (size_t i = 0; i < pairing->count && rc == 0; i++) {
        const ImageCaptions *references = &refs->images[pairing->refs_index[i]];
        const ImageCaptions *hypothesis = &hyps->images[pairing->hyps_index[i]];
        rc = metrics_scorer_add(scorer, hypothesis->captions[0],
                                (const char *const *)references->captions,
                                references->caption_count, err);
        if (rc == 0) rc = count_agreement(&result->agreement, hypothesis->captions[0], err);
        for (size_t k = 0; rc == 0 && k < references->caption_count; k++)
            rc = count_agreement(&result->reference_agreement, references->captions[k], err);
    }
    if (rc == 0) {
        result->per_image = malloc(pairing->count * sizeof *result->per_image);
        if (!result->per_image)
            rc = error_set(err, "out of memory scoring %zu images", pairing->count);
    }
    if (rc == 0) rc = metrics_scorer_compute(scorer, &result->corpus, result->per_image, err);
    result->distinct_hypotheses = metrics_scorer_distinct_hypotheses(scorer);
    result->most_frequent_images = metrics_scorer_most_frequent(scorer, &result->most_frequent_pair);
    metrics_scorer_free(scorer);
    if (rc < 0) eval_result_free(result);
    return rc;
}

/* A caption on one TSV field: tabs and line breaks become spaces. */
static void write_tsv_field(FILE *file, const char *text) {
    for (; *text; text++) fputc(*text == '\t' || *text == '\n' || *text == '\r' ? ' ' : *text, file);
}

static int write_per_image(const EvalResult *result, const CaptionSet *refs,
                           const CaptionSet *hyps, const char *path, Error *err) {
    FILE *file = fopen(path, "w");
    if (!file) return error_set(err, "cannot write per-image scores to %s: %s", path, strerror(errno));
    fputs("image", file);
    for (size_t m = 0; m < METRIC_COUNT; m++) fprintf(file, "\t%s", METRIC_NAMES[m]);
    fputs("\thypothesis\n", file);
    for (size_t i = 0; i < result->pairing.count; i++) {
        double values[METRIC_COUNT];
        metric_values(&result->per_image[i], values);
        write_tsv_field(file, refs->images[result->pairing.refs_index[i]].image);
        for (size_t m = 0; m < METRIC_COUNT; m++) fprintf(file, "\t%.6f", values[m]);
        fputc('\t', file);
        write_tsv_field(file, hyps->images[result->pairing.hyps_index[i]].captions[0]);
        fputc('\n', file);
    }
    int failed = ferror(file);
    if (fclose(file) != 0 || failed)
        return error_set(err, "cannot write per-image scores to %s: %s", path, strerror(errno));
    return 0;
}

/* The attention keys of the JSON report, in the order of the table's rows. */
static bool add_grounding_json(cJSON *object, const Grounding *g) {
    const char *names[] = {"attention_objects", "attention_named", "attention_named_share", "attention_named_min",
                           "attention_color", "attention_other", "attention_other_share", "attention_noun_beta"};
    double values[] = {g->objects, grounding_named_mean(g), grounding_named_share(g), g->objects ? g->min_named_mass : 0.0,
                       grounding_color_mean(g), grounding_other_mean(g), grounding_other_share(g),
                       grounding_noun_beta_mean(g)};
    bool ok = true;
    for (size_t k = 0; ok && k < sizeof names / sizeof *names; k++)
        ok = cJSON_AddNumberToObject(object, names[k], values[k]) != NULL;
    return ok;
}

/* The most frequent hypothesis, as the hypotheses file gives it. */
static const char *most_frequent_text(const EvalResult *result, const CaptionSet *hyps) {
    if (!result->most_frequent_images) return "";
    return hyps->images[result->pairing.hyps_index[result->most_frequent_pair]].captions[0];
}

static int print_json(const EvalResult *result, const CaptionSet *hyps, const Grounding *grounding, FILE *out,
                      Error *err) {
    double values[METRIC_COUNT];
    metric_values(&result->corpus, values);
    cJSON *object = cJSON_CreateObject();
    bool ok = object != NULL;
    for (size_t m = 0; ok && m < METRIC_COUNT; m++)
        ok = cJSON_AddNumberToObject(object, METRIC_NAMES[m], values[m]) != NULL;
    if (ok) ok = cJSON_AddNumberToObject(object, "images", (double)result->pairing.count) != NULL;
    if (ok) ok = cJSON_AddNumberToObject(object, "distinct", (double)result->distinct_hypotheses) != NULL;
    if (ok) ok = cJSON_AddNumberToObject(object, "most_frequent_images", (double)result->most_frequent_images) != NULL;
    if (ok) ok = cJSON_AddStringToObject(object, "most_frequent_caption", most_frequent_text(result, hyps)) != NULL;
    const char *agreement_keys[] = {"agreement_judged", "agreement_errors", "agreement_references_judged",
                                    "agreement_references_errors"};
    const int agreement_values[] = {result->agreement.judged, result->agreement.errors,
                                    result->reference_agreement.judged, result->reference_agreement.errors};
    for (int k = 0; ok && k < 4; k++) ok = cJSON_AddNumberToObject(object, agreement_keys[k], agreement_values[k]) != NULL;
    if (ok && grounding) ok = add_grounding_json(object, grounding);
    char *text = ok ? cJSON_Print(object) : NULL;
    cJSON_Delete(object);
    if (!text) return error_set(err, "out of memory formatting the JSON report");
    fprintf(out, "%s\n", text);
    free(text);
    return 0;
}

static void print_table(const EvalResult *result, const CaptionSet *hyps, FILE *out) {
    double values[METRIC_COUNT];
    metric_values(&result->corpus, values);
    fprintf(out, "%-20s %10s\n", "metric", "score");
    for (size_t m = 0; m < METRIC_COUNT; m++) fprintf(out, "%-20s %10.4f\n", METRIC_NAMES[m], values[m]);
    fprintf(out, "%-20s %10zu\n", "images", result->pairing.count);
    fprintf(out, "%-20s %10zu\n", "distinct hypotheses", result->distinct_hypotheses);
    size_t images = result->pairing.count ? result->pairing.count : 1;
    fprintf(out, "%-20s %10zu   (%.1f%% of the images: \"%s\")\n", "most frequent", result->most_frequent_images,
            100.0 * (double)result->most_frequent_images / (double)images, most_frequent_text(result, hyps));
    const AgreementCounts *a = &result->agreement, *r = &result->reference_agreement;
    fprintf(out, "%-20s %10d   (%.1f%% of the %d judged, subject-verb; references: %.1f%% of %d)\n",
            "agreement errors", a->errors, a->judged ? 100.0 * a->errors / a->judged : 0.0, a->judged,
            r->judged ? 100.0 * r->errors / r->judged : 0.0, r->judged);
}

static void print_grounding_table(const Grounding *g, size_t images, FILE *out) {
    fprintf(out, "\nattention at each noun's step, on the %d objects of the %d images captioned exactly (of %zu):\n",
            g->objects, g->images, images);
    fprintf(out, "%-28s %10.4f\n", "on the named object (mean)", grounding_named_mean(g));
    fprintf(out, "%-28s %10.4f\n", "objects with >= 0.5 on it", grounding_named_share(g));
    fprintf(out, "%-28s %10.4f\n", "least on its object", g->objects ? g->min_named_mass : 0.0);
    fprintf(out, "%-28s %10.4f\n", "at the colour word (mean)", grounding_color_mean(g));
    fprintf(out, "%-28s %10.4f   (the control: low when attention follows the word)\n",
            "on the other objects (mean)", grounding_other_mean(g));
    fprintf(out, "%-28s %10.4f\n", "objects with >= 0.5 there", grounding_other_share(g));
    fprintf(out, "%-28s %10.4f   (how much it looks at the image when it names the object)\n",
            "beta at the noun (mean)", grounding_noun_beta_mean(g));
}

int eval_report(const EvalResult *result, const CaptionSet *refs, const CaptionSet *hyps,
                const EvalOptions *options, FILE *out, Error *err) {
    const CaptionPairing *pairing = &result->pairing;
    if (options->notes && (pairing->refs_without_hypothesis || pairing->hyps_without_refs))
        fprintf(options->notes,
                "caption eval: scored the %zu images present in both; skipped %zu reference "
                "images without a hypothesis and %zu hypotheses without references\n",
                pairing->count, pairing->refs_without_hypothesis, pairing->hyps_without_refs);
    if (options->json) {
        if (print_json(result, hyps, options->grounding, out, err) < 0) return -1;
        if (options->notes)
            fprintf(options->notes, "caption eval: %zu distinct hypotheses\n",
                    result->distinct_hypotheses);
    } else {
        print_table(result, hyps, out);
        if (options->grounding) print_grounding_table(options->grounding, pairing->count, out);
    }
    if (fflush(out) != 0 || ferror(out)) return error_set(err, "cannot write the report");
    if (options->per_image_path &&
        write_per_image(result, refs, hyps, options->per_image_path, err) < 0)
        return -1;
    return 0;
}

int eval_score_and_report(const CaptionSet *refs, const CaptionSet *hyps,
                          const EvalOptions *options, FILE *out, Error *err) {
    EvalResult result;
    if (eval_score(refs, hyps, options->intersection, &result, err) < 0) return -1;
    int rc = eval_report(&result, refs, hyps, options, out, err);
    eval_result_free(&result);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Command line                                                             */
/* ------------------------------------------------------------------------ */

static const char USAGE[] =
    "Usage: caption eval --refs REFS --hyps HYPS [--json] [--per-image FILE]\n"
    "                    [--intersection] [--split NAME]\n"
    "       caption eval --model MODEL --data DATASET [--split dev] [--beam N]\n"
    "                    [--length-penalty A] [--hyps-out FILE] [--json] ...\n"
    "\n"
    "Scores hypothesis captions against reference captions with the COCO caption\n"
    "metrics (coco-caption): corpus BLEU-1..4, ROUGE-L and CIDEr-D.\n"
    "\n"
    "  --refs REFS       reference captions, format detected from the content:\n"
    "                    Flickr8k token file (image.jpg#N<TAB>caption lines),\n"
    "                    COCO captions JSON, or Karpathy-split JSON\n"
    "  --hyps HYPS       one hypothesis per image: image<TAB>caption lines,\n"
    "                    JSON Lines with \"path\" and \"caption\", or COCO results\n"
    "                    JSON [{\"image_id\": ..., \"caption\": ...}]\n"
    "  --json            print one JSON object with the keys BLEU-1 BLEU-2 BLEU-3\n"
    "                    BLEU-4 ROUGE-L CIDEr-D images (other remarks go to stderr)\n"
    "  --per-image FILE  also write per-image scores as TSV: image, BLEU-1..4,\n"
    "                    ROUGE-L, CIDEr-D, hypothesis\n"
    "  --intersection    score only the images present in both files (otherwise an\n"
    "                    image without hypothesis, or a hypothesis for an unknown\n"
    "                    image, is an error)\n"
    "  --split NAME      with Karpathy-split REFS, use only the images of split NAME;\n"
    "                    with --data, the split to caption (default dev)\n"
    "  --model MODEL     caption the images of --data with this model (a weights\n"
    "                    file, or a bundled model's name: caption --help lists\n"
    "                    them; A,B an ensemble), then score them (instead of\n"
    "                    --refs/--hyps)\n"
    "  --data DATASET    a Flickr8k-layout folder, or a Karpathy / COCO captions JSON\n"
    "  --images DIR      image folder of a JSON dataset (default: images/ beside it)\n"
    "  --beam N          beam width for --model (default 3)\n"
    "  --length-penalty A  rank beams by logprob / (words+1)^A (default 0)\n"
    "  --hyps-out FILE   with --model, also write the captions as JSON Lines\n"
    "  -h, --help        show this help\n"
    "\n"
    "On a shapes dataset (`caption shapes`: its objects.tsv gives every object's\n"
    "box), --model also measures where attention lands: over the images captioned\n"
    "exactly, the share of the attention map at each noun's step that falls on\n"
    "the named object, and (the control) on the scene's other objects.\n"
    "\n"
    "Images are matched by base file name. Captions are lower-cased and stripped of\n"
    "punctuation before scoring. CIDEr-D document frequencies come from the\n"
    "references of the images scored, as in coco-caption.\n"
    "\n"
    "Exit status: 0 on success, 1 on a data error, 2 on a usage error.\n";

static int usage_error(const char *format, const char *detail) {
    fputs("caption eval: ", stderr);
    fprintf(stderr, format, detail);
    fputs(" (see 'caption eval --help')\n", stderr);
    return 2;
}

typedef struct {
    const char *refs_path;
    const char *hyps_path;
    const char *split;
    const char *model_path, *data_path, *images_path, *beam, *length_penalty, *hyps_out;
    EvalOptions options;
} EvalArguments;

/* Returns 0, 2 (usage error, reported) or -1 (help shown). */
static int parse_arguments(int argc, char **argv, EvalArguments *arguments) {
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(USAGE, stdout);
            return -1;
        }
        if (strcmp(arg, "--json") == 0) {
            arguments->options.json = true;
            continue;
        }
        if (strcmp(arg, "--intersection") == 0) {
            arguments->options.intersection = true;
            continue;
        }
        static const char *const valued[] = {"--refs", "--hyps", "--per-image", "--split", "--model",
                                             "--data", "--images", "--beam", "--length-penalty", "--hyps-out"};
        const char **targets[] = {&arguments->refs_path, &arguments->hyps_path,
                                  &arguments->options.per_image_path, &arguments->split,
                                  &arguments->model_path, &arguments->data_path, &arguments->images_path,
                                  &arguments->beam, &arguments->length_penalty, &arguments->hyps_out};
        bool matched = false;
        for (size_t v = 0; v < sizeof valued / sizeof *valued && !matched; v++) {
            size_t n = strlen(valued[v]);
            if (strncmp(arg, valued[v], n) != 0 || (arg[n] != '\0' && arg[n] != '=')) continue;
            const char *value = arg[n] == '=' ? arg + n + 1 : NULL;
            if (!value) {
                if (i + 1 >= argc) return usage_error("%s needs a value", valued[v]);
                value = argv[++i];
            }
            if (!*value) return usage_error("%s needs a non-empty value", valued[v]);
            *targets[v] = value;
            matched = true;
        }
        if (matched) continue;
        if (arg[0] == '-') return usage_error("unknown option %s", arg);
        return usage_error("unexpected argument %s", arg);
    }
    if (arguments->model_path || arguments->data_path) {
        if (!arguments->model_path || !arguments->data_path)
            return usage_error("%s go together", "--model and --data");
        if (arguments->refs_path || arguments->hyps_path)
            return usage_error("%s", "--model/--data replace --refs/--hyps: give one pair");
        return 0;
    }
    if (!arguments->refs_path) return usage_error("%s is required", "--refs");
    if (!arguments->hyps_path) return usage_error("%s is required", "--hyps");
    return 0;
}

/* One JSON Lines record per captioned image, as `caption --json` writes. */
static void write_hypothesis(FILE *out, const CaptionPipeline *p, const char *path, const Caption *caption) {
    if (!out) return;
    cJSON *record = caption_to_json(&p->model, path, caption, 0);
    char *text = json_print_utf8(record);
    if (text) fprintf(out, "%s\n", text);
    free(text);
    cJSON_Delete(record);
}

/* A word tokenising drops whole (",", "."): it has no word byte. */
static bool is_punctuation(const char *word, size_t length) {
    for (size_t i = 0; i < length; i++)
        if (metrics_is_word_byte((unsigned char)word[i])) return false;
    return length > 0;
}

/* objects.tsv counts words without punctuation; a model whose vocabulary
 * kept "," emits it as a step of its own. Copies the scene's objects into
 * named with noun_index moved to the step of the model's caption (text,
 * space-separated) that emitted the noun. False when a noun is past the end. */
static bool map_nouns_to_steps(const ShapesImageObjects *scene, const char *text, ShapeObject *named) {
    int steps[64], words = 0, step = 0;
    for (const char *p = text; *p && words < 64; step++) {
        size_t length = strcspn(p, " ");
        if (!is_punctuation(p, length)) steps[words++] = step;
        p += length;
        p += *p == ' ';
    }
    for (int o = 0; o < scene->object_count; o++) {
        named[o] = scene->objects[o];
        if (named[o].noun_index >= words) return false;
        named[o].noun_index = steps[named[o].noun_index];
    }
    return true;
}

/* Where the caption's attention lands, for an image of a shapes dataset that
 * the model captioned exactly as its reference (so that each object's noun
 * is the word at its noun_index). */
static int measure_grounding(Grounding *g, const ShapesObjectTable *objects, const DatasetImage *image,
                             const Caption *caption, const char *text, const Image *picture, Error *err) {
    const ShapesImageObjects *scene = shapes_find_objects(objects, image->name);
    if (!scene || !caption->alpha || !caption->finished || picture->width != picture->height) return 0;
    char *tokens = metrics_tokenize(text, err);
    if (!tokens) return -1;
    bool exact = false;
    for (int c = 0; c < image->caption_count && !exact; c++) exact = strcmp(tokens, image->captions[c]) == 0;
    free(tokens);
    if (!exact) return 0;
    ShapeObject named[SHAPES_MAX_OBJECTS];
    if (!map_nouns_to_steps(scene, text, named)) return 0;
    if (grounding_add(g, named, scene->object_count, picture->width, caption->alpha, caption->beta, caption->length,
                      caption->grid_h, caption->grid_w))
        return error_set(err, "out of memory measuring attention on %s", image->name);
    return 0;
}

/* Captions every image of the dataset split into hyps; refs get its captions.
 * On a shapes dataset (objects.tsv beside the captions) *grounded is set and
 * grounding measures where attention lands. */
static int caption_dataset(const EvalArguments *a, CaptionSet *refs, CaptionSet *hyps, Grounding *grounding,
                           bool *grounded, Error *err) {
    /* Checked here, when there is something to caption: a bad value exits
     * with status 1 like the other errors of this mode (the options mean
     * nothing to --refs/--hyps scoring, which has never checked them). */
    CaptionOptions options = CAPTION_OPTIONS_DEFAULT;
    if (a->beam && cli_take_option(&options, NULL, CLI_BEAM, "--beam", a->beam, err) < 0) return -1;
    if (a->length_penalty &&
        cli_take_option(&options, NULL, CLI_LENGTH_PENALTY, "--length-penalty", a->length_penalty, err) < 0)
        return -1;
    char named[4096];
    const char *model = cli_resolve_model(a->model_path, named, sizeof named, err);
    if (!model) return -1;
    Dataset data;
    if (dataset_load(&data, a->data_path, a->images_path, a->split ? a->split : "dev", err) != 0) return -1;
    ShapesObjectTable objects;
    int has_objects = shapes_read_objects(a->data_path, &objects, err);
    CaptionPipeline pipeline;
    if (has_objects < 0 || cli_pipeline_open(&pipeline, model, &options, 1, 1, err) != 0) {
        shapes_object_table_free(&objects);
        dataset_free(&data);
        return -1;
    }
    grounding_init(grounding);
    *grounded = objects.count > 0 && pipeline.model.config.use_attention;
    if (objects.count > 0 && !*grounded)
        fprintf(stderr, "caption eval: the model has no attention maps (bottleneck decoder): attention on the "
                        "named objects is not measured\n");
    FILE *hyps_out = a->hyps_out ? fopen(a->hyps_out, "w") : NULL;
    int status = a->hyps_out && !hyps_out ? error_set(err, "%s: %s", a->hyps_out, strerror(errno)) : 0;
    Progress progress;
    progress_init(&progress, stderr);
    for (int i = 0; i < data.count && status == 0; i++) {
        const DatasetImage *image = &data.images[i];
        Caption caption;
        Image picture = {0};
        char text[4096];
        if ((status = pipeline_caption_file(&pipeline, image->path, &caption, *grounded ? &picture : NULL, err)) != 0)
            break;
        caption_text(&pipeline.model, &caption, text, sizeof text);
        if (*grounded) status = measure_grounding(grounding, &objects, image, &caption, text, &picture, err);
        image_free(&picture);
        write_hypothesis(hyps_out, &pipeline, image->path, &caption);
        caption_free(&caption);
        if (status == 0) status = caption_set_add(hyps, image->name, text, (size_t)i + 1, err);
        for (int c = 0; c < image->caption_count && status == 0; c++)
            status = caption_set_add(refs, image->name, image->captions[c], (size_t)i + 1, err);
        progress_update(&progress, 1, 1, i + 1, data.count, -1.0, 0.0);
    }
    progress_finish(&progress);
    if (hyps_out && fclose(hyps_out) != 0 && status == 0) status = error_set(err, "%s: write failed", a->hyps_out);
    pipeline_close(&pipeline);
    shapes_object_table_free(&objects);
    dataset_free(&data);
    return status;
}

int cmd_eval(int argc, char **argv) {
    EvalArguments arguments = {0};
    arguments.options.notes = stderr;
    int parsed = parse_arguments(argc, argv, &arguments);
    if (parsed != 0) return parsed < 0 ? 0 : parsed;

    Error err = {{0}};
    CaptionSet refs, hyps;
    caption_set_init(&refs);
    caption_set_init(&hyps);
    int rc;
    Grounding grounding;
    bool grounded = false;
    if (arguments.model_path) {
        rc = caption_dataset(&arguments, &refs, &hyps, &grounding, &grounded, &err);
        if (grounded) arguments.options.grounding = &grounding;
    } else {
        rc = caption_sets_read_refs(arguments.refs_path, &refs, &err);
        if (rc == 0 && arguments.split) rc = caption_set_keep_split(&refs, arguments.split, &err);
        if (rc == 0) rc = caption_sets_read_hyps(arguments.hyps_path, &refs, &hyps, &err);
    }
    if (rc == 0) rc = eval_score_and_report(&refs, &hyps, &arguments.options, stdout, &err);
    caption_set_free(&refs);
    caption_set_free(&hyps);
    if (rc < 0) {
        fprintf(stderr, "caption eval: %s\n", err.message);
        return 1;
    }
    return 0;
}
