/* Fuzz target: `caption batch --resume` reading back an existing output file
 * (JSON Lines, CSV with RFC 4180 quoting, TSV with escapes, COCO's
 * OUT.partial), cutting a torn tail, rewriting it without error records and,
 * for coco, writing the results array. The first byte of the input picks the
 * format; the rest is the file. Each input gets a fresh temporary folder. */
#include <dirent.h>
#include <string.h>
#include <unistd.h>

#include "batch_output.h"
#include "fuzz.h"

static void remove_folder(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *entry;
    char path[512];
    while (d && (entry = readdir(d)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static int write_file(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    BatchFormat format = (BatchFormat)(data[0] % 4);
    /* In memory where there is /dev/shm: the rewrite fsyncs, slow on a disk. */
    char dir[64] = "/dev/shm/caption-fuzz-resume-XXXXXX", out_path[128], log_path[160];
    if (!mkdtemp(dir) && (snprintf(dir, sizeof dir, "/tmp/caption-fuzz-resume-XXXXXX"), !mkdtemp(dir))) return 0;
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    snprintf(log_path, sizeof log_path, "%s%s", out_path, format == BATCH_FORMAT_COCO ? ".partial" : "");
    BatchOutput out;
    Error err;
    if (write_file(log_path, data + 1, size - 1) == 0 && batch_output_open(&out, out_path, format, 1, &err) == 0) {
        for (size_t i = 0; i < out.done_count; i++) FUZZ_ASSERT(batch_output_is_done(&out, out.done[i]));
        batch_output_finish(&out, 0, &err);
        batch_output_free(&out);
    }
    remove_folder(dir);
    return 0;
}
