/* The image check of training (app/train/image_check.h): every image is
 * decoded once and the verdicts are kept by path, size and modification
 * time, so a second start decodes nothing unless a file changed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "image.h"
#include "image_check.h"

static int write_picture(const char *path, int size) {
    Image img;
    Error err;
    if (image_alloc(&img, size, size, 3, &err) != 0) return -1;
    memset(img.pixels, 90, (size_t)size * size * 3);
    int status = image_write_png(&img, path, &err);
    image_free(&img);
    return status;
}

static void make_dataset(Dataset *d, char paths[4][300]) {
    memset(d, 0, sizeof *d);
    d->images = calloc(4, sizeof *d->images);
    d->source = strdup("test");
    for (int i = 0; i < 4; i++) {
        d->images[i].name = strdup(paths[i]);
        d->images[i].path = strdup(paths[i]);
    }
    d->count = 4;
}

static int count_dropped;
static void note_dropped(const char *message, void *context) {
    (void)context;
    count_dropped++;
    printf("dropped: %s\n", message);
}

/* Checks a fresh dataset of the four files; returns how many were decoded. */
static int check(CheckCounts *c, char paths[4][300], ImageVerdicts *v, int expect_kept) {
    Dataset d;
    Error err;
    int decoded = -1;
    make_dataset(&d, paths);
    count_dropped = 0;
    int dropped = dataset_drop_unreadable(&d, 2, stderr, v, note_dropped, NULL, &decoded, &err);
    CHECK(c, dropped == 4 - expect_kept && d.count == expect_kept && count_dropped == dropped);
    dataset_free(&d);
    return decoded;
}

int main(void) {
    CheckCounts c = {0};
    char dir[] = "/tmp/caption-test-check-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char paths[4][300], cache[300];
    for (int i = 0; i < 4; i++) snprintf(paths[i], sizeof paths[i], "%s/%d.png", dir, i);
    snprintf(cache, sizeof cache, "%s/image-check.tsv", dir);
    for (int i = 0; i < 3; i++) CHECK(&c, write_picture(paths[i], 8 + i) == 0);
    FILE *broken = fopen(paths[3], "w");
    CHECK(&c, broken && fputs("not a picture", broken) >= 0 && fclose(broken) == 0);

    ImageVerdicts v;
    Error err;
    CHECK(&c, image_verdicts_load(&v, cache, &err) == 0 && v.count == 0); /* no file yet: empty */
    CHECK(&c, check(&c, paths, &v, 3) == 4);
    CHECK(&c, image_verdicts_save(&v, cache, &err) == 0);
    image_verdicts_free(&v);

    /* Second start: everything known, the broken file still dropped. */
    CHECK(&c, image_verdicts_load(&v, cache, &err) == 0 && v.count == 4);
    int decoded = check(&c, paths, &v, 3);
    printf("second start: %d decoded\n", decoded);
    CHECK(&c, decoded == 0);
    image_verdicts_free(&v);

    /* The broken file repaired (new size and time): decoded again, now kept. */
    CHECK(&c, write_picture(paths[3], 12) == 0);
    CHECK(&c, image_verdicts_load(&v, cache, &err) == 0);
    CHECK(&c, check(&c, paths, &v, 4) == 1);
    CHECK(&c, image_verdicts_save(&v, cache, &err) == 0 && v.count == 4); /* replaced, not added */
    image_verdicts_free(&v);

    /* The control: without the verdicts every file is decoded again. */
    ImageVerdicts none = {0};
    CHECK(&c, check(&c, paths, &none, 4) == 4);
    image_verdicts_free(&none);

    /* A torn last line and a malformed one are skipped, not trusted. */
    FILE *f = fopen(cache, "a");
    CHECK(&c, f && fputs("garbage line\n/x.png\t1\t2", f) >= 0 && fclose(f) == 0);
    CHECK(&c, image_verdicts_load(&v, cache, &err) == 0 && v.count == 4);
    image_verdicts_free(&v);

    char command[400];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    if (system(command) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary(&c);
}
