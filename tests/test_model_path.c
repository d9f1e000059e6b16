/* Bundled model names, and bundled ensembles (NAME-ensemble.txt): this
 * program is built with its own two "bundled" folders (tests/meson.build),
 * which it fills with files, so what --model NAME resolves to is checked
 * without touching the project's assets/. Model files are empty here: the
 * lookup only checks that they can be read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "model_path.h"

static void write_file(const char *folder, const char *name, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", folder, name);
    FILE *file = fopen(path, "w");
    if (file) {
        fputs(text, file);
        fclose(file);
    }
}

static void remove_file(const char *folder, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", folder, name);
    unlink(path);
}

/* What NAME resolves to, each folder's prefix written as S (source tree)
 * or I (install prefix), so the checks read "S/small-model.safetensors". */
static const char *resolved(const char *name, char *out, size_t size, Error *err) {
    static const struct {
        const char *folder;
        char letter;
    } folders[2] = {{CAPTION_SOURCE_ASSETS, 'S'}, {CAPTION_INSTALLED_ASSETS, 'I'}};
    char buffer[8192];
    err->message[0] = '\0';
    const char *p = model_path_resolve(name, buffer, sizeof buffer, err);
    if (!p) return NULL;
    size_t used = 0;
    while (*p && used + 2 < size) {
        int shortened = 0;
        for (int f = 0; f < 2 && !shortened; f++)
            if (strncmp(p, folders[f].folder, strlen(folders[f].folder)) == 0) {
                out[used++] = folders[f].letter;
                p += strlen(folders[f].folder);
                shortened = 1;
            }
        if (!shortened) out[used++] = *p++;
    }
    out[used] = '\0';
    return out;
}

static void test_members_of_the_same_folder(CheckCounts *c) {
    const char *s = CAPTION_SOURCE_ASSETS;
    char out[8192], names[512];
    Error err;
    write_file(s, "small-model.safetensors", "");
    write_file(s, "big-model.safetensors", "");
    write_file(s, "pair-ensemble.txt", "# the two bundled models\n\n  small,big \t\n");
    const char *path = resolved("pair", out, sizeof out, &err);
    CHECK(c, path && strcmp(path, "S/small-model.safetensors,S/big-model.safetensors") == 0);
    model_path_list_names(names, sizeof names);
    CHECK(c, strcmp(names, "big, pair, small") == 0);
    /* A model file of the name wins over an ensemble of the same name in its folder. */
    write_file(s, "pair-model.safetensors", "");
    path = resolved("pair", out, sizeof out, &err);
    CHECK(c, path && strcmp(path, "S/pair-model.safetensors") == 0);
    model_path_list_names(names, sizeof names);
    CHECK(c, strcmp(names, "big, pair, small") == 0);
    remove_file(s, "pair-model.safetensors");
    /* In a --model list, a bundled ensemble's name stands for its models. */
    path = resolved("pair,small", out, sizeof out, &err);
    CHECK(c, path && strcmp(path, "S/small-model.safetensors,S/big-model.safetensors,S/small-model.safetensors") == 0);
}

static void test_the_source_tree_first(CheckCounts *c) {
    const char *s = CAPTION_SOURCE_ASSETS, *i = CAPTION_INSTALLED_ASSETS;
    char out[8192];
    Error err;
    write_file(i, "small-model.safetensors", "");
    write_file(i, "big-model.safetensors", "");
    write_file(i, "duo-ensemble.txt", "big,small\n");
    const char *path = resolved("duo", out, sizeof out, &err);
    CHECK(c, path && strcmp(path, "I/big-model.safetensors,I/small-model.safetensors") == 0);
    write_file(s, "duo-ensemble.txt", "small,small\n");
    path = resolved("duo", out, sizeof out, &err);
    CHECK(c, path && strcmp(path, "S/small-model.safetensors,S/small-model.safetensors") == 0);
    remove_file(s, "duo-ensemble.txt");
    /* The default may be an ensemble too, unless $CAPTION_MODEL names a file. */
    write_file(i, "default-ensemble.txt", "small,big\n");
    unsetenv("CAPTION_MODEL");
    char buffer[8192];
    CHECK(c, model_path_default(buffer, sizeof buffer) != NULL);
    /* --help names the ensemble file as the folder's default, found. */
    char places[8192], expected[4200];
    model_path_describe(places, sizeof places);
    snprintf(expected, sizeof expected, "%s/default-ensemble.txt  [found]", i);
    CHECK(c, strstr(places, expected) != NULL);
    path = resolved(NULL, out, sizeof out, &err);
    CHECK(c, path && strcmp(path, "I/small-model.safetensors,I/big-model.safetensors") == 0);
    char own[4096];
    snprintf(own, sizeof own, "%s/big-model.safetensors", i);
    setenv("CAPTION_MODEL", own, 1);
    path = resolved(NULL, out, sizeof out, &err);
    CHECK(c, path && strcmp(path, "I/big-model.safetensors") == 0);
    unsetenv("CAPTION_MODEL");
    remove_file(i, "default-ensemble.txt");
}

static void test_broken_ensemble_files(CheckCounts *c) {
    const char *s = CAPTION_SOURCE_ASSETS;
    char out[8192];
    Error err;
    write_file(s, "bad-ensemble.txt", "small,gone\n");
    CHECK(c, !resolved("bad", out, sizeof out, &err));
    CHECK_MESSAGE(c, err, "bad: ");
    CHECK_MESSAGE(c, err, "bad-ensemble.txt: its model 'gone' is not bundled (no readable ");
    CHECK_MESSAGE(c, err, "gone-model.safetensors)");
    write_file(s, "bad-ensemble.txt", "# nothing but comments\n\n");
    CHECK(c, !resolved("bad", out, sizeof out, &err));
    CHECK_MESSAGE(c, err, "bad-ensemble.txt: holds no list of models");
    write_file(s, "bad-ensemble.txt", "small,,big\n");
    CHECK(c, !resolved("bad", out, sizeof out, &err));
    CHECK_MESSAGE(c, err, "'small,,big' is not a list of bundled model names separated by single commas");
    write_file(s, "bad-ensemble.txt", "small,../big\n");
    CHECK(c, !resolved("bad", out, sizeof out, &err));
    CHECK_MESSAGE(c, err, "is not a list of bundled model names");
    /* A member that is itself an ensemble is refused: members are model files. */
    write_file(s, "bad-ensemble.txt", "small,pair\n");
    CHECK(c, !resolved("bad", out, sizeof out, &err));
    CHECK_MESSAGE(c, err, "its model 'pair' is not bundled");
    remove_file(s, "bad-ensemble.txt");
    /* A name with no file of either kind is still reported as before. */
    CHECK(c, !resolved("absent", out, sizeof out, &err));
    CHECK_MESSAGE(c, err, "absent: no such file, and no bundled model of that name (bundled: big, duo, pair, small)");
}

int main(void) {
    CheckCounts counts = {0};
    mkdir(CAPTION_SOURCE_ASSETS, 0755);
    mkdir(CAPTION_INSTALLED_ASSETS, 0755);
    test_members_of_the_same_folder(&counts);
    test_the_source_tree_first(&counts);
    test_broken_ensemble_files(&counts);
    static const char *const leftovers[] = {"small-model.safetensors", "big-model.safetensors", "pair-ensemble.txt",
                                            "duo-ensemble.txt"};
    for (int f = 0; f < 2; f++)
        for (size_t k = 0; k < sizeof leftovers / sizeof leftovers[0]; k++)
            remove_file(f ? CAPTION_INSTALLED_ASSETS : CAPTION_SOURCE_ASSETS, leftovers[k]);
    rmdir(CAPTION_SOURCE_ASSETS);
    rmdir(CAPTION_INSTALLED_ASSETS);
    return check_summary(&counts);
}
