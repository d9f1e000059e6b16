/* The progress line of long jobs (app/progress.h): the time left is computed
 * from a rate in images/s while the bar counts batches, so it must scale by
 * the batch size (it once did not: "ETA 2:05" for 27 minutes), and in a log
 * (not a terminal) it still prints. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "progress.h"

/* The last line progress_update wrote to f. */
static void last_line(FILE *f, char *line, size_t size) {
    rewind(f);
    line[0] = '\0';
    char buffer[512];
    while (fgets(buffer, sizeof buffer, f)) snprintf(line, size, "%s", buffer);
}

static void test_time_left(CheckCounts *c) {
    FILE *f = tmpfile();
    CHECK(c, f != NULL);
    if (!f) return;
    Progress p;
    progress_init(&p, f);
    p.live = 0, p.interval = 1e-9, p.items_per_unit = 32; /* batches of 32 images */
    /* Epoch 1 of 3, batch 10 of 100, at a known 320 images/s (10 batches/s):
     * 90 batches left = 9 s; the run has 200 more = 29 s. */
    progress_update(&p, 1, 3, 10, 100, -1.0, 320.0);
    char line[512];
    last_line(f, line, sizeof line);
    printf("progress line: %s", line);
    CHECK(c, strstr(line, "320.0/s") != NULL);
    CHECK(c, strstr(line, "ETA 0:09, run 0:29") != NULL);
    CHECK(c, progress_seconds_left(&p, 1, 3, 10, 100, 0) > 8.999 && progress_seconds_left(&p, 1, 3, 10, 100, 0) < 9.001);
    CHECK(c, progress_seconds_left(&p, 1, 3, 10, 100, 1) > 28.999 && progress_seconds_left(&p, 1, 3, 10, 100, 1) < 29.001);
    /* The control: counting batches as if they were images is 32x short. */
    p.items_per_unit = 0;
    CHECK(c, progress_seconds_left(&p, 1, 3, 10, 100, 0) < 0.3);
    /* Hours are written as h:mm:ss: 100 batches x 32 / 0.5 images/s. */
    Progress slow;
    progress_init(&slow, f);
    slow.live = 0, slow.interval = 1e-9, slow.items_per_unit = 32;
    progress_update(&slow, 1, 1, 0, 100, 2.5, 0.5);
    last_line(f, line, sizeof line);
    CHECK(c, strstr(line, "ETA 1:46:40") != NULL && strstr(line, "loss 2.5000") != NULL && !strstr(line, "run"));
    fclose(f);
}

/* In a log, a job of 20 items or more ends with a line even if it took less
 * than the 30 s between lines (a Slurm log then shows that it finished). */
static void test_log_lines(CheckCounts *c) {
    FILE *f = tmpfile();
    CHECK(c, f != NULL);
    if (!f) return;
    Progress p;
    progress_init(&p, f);
    p.live = 0;
    for (long i = 1; i <= 25; i++) progress_update(&p, 0, 1, i, 25, -1.0, 0.0);
    char line[512];
    last_line(f, line, sizeof line);
    CHECK(c, strncmp(line, "25/25", 5) == 0 && !strchr(line, '\r'));
    fclose(f);
}

int main(void) {
    CheckCounts c = {0};
    test_time_left(&c);
    test_log_lines(&c);
    return check_summary(&c);
}
