#ifndef TESTS_FUZZ_FUZZ_H
#define TESTS_FUZZ_FUZZ_H

/* The entry point every harness defines: libFuzzer's, so the same file is a
 * fuzz target (clang -fsanitize=fuzzer, tools/fuzz) and, linked with
 * replay.c, a regression test that feeds it the committed inputs (any
 * compiler). A harness returns 0 whether the input was accepted or refused:
 * only a crash, a sanitizer report, a hang or a broken invariant (abort) is
 * a finding. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a finding: abort so the fuzzer keeps the input. */
#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
