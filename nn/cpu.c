#include "cpu.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cpu_portable_mode(void) {
    const char *value = getenv("CAPTION_PORTABLE");
    return value && value[0] && strcmp(value, "0") != 0;
}

static int cpu_has(const char *feature) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    /* __builtin_cpu_supports takes a string literal only. */
    if (strcmp(feature, "avx512f") == 0) return __builtin_cpu_supports("avx512f");
    if (strcmp(feature, "avx2") == 0) return __builtin_cpu_supports("avx2");
    if (strcmp(feature, "fma") == 0) return __builtin_cpu_supports("fma");
    if (strcmp(feature, "avx") == 0) return __builtin_cpu_supports("avx");
    if (strcmp(feature, "sse4.2") == 0) return __builtin_cpu_supports("sse4.2");
#endif
    (void)feature;
    return 0;
}

int cpu_use_avx2_fma(void) { return !cpu_portable_mode() && cpu_has("avx2") && cpu_has("fma"); }

void cpu_describe_paths(char *buffer, size_t size) {
    static const char *const features[] = {"avx512f", "avx2", "fma", "avx", "sse4.2"};
    char present[64] = "";
    for (size_t i = 0; i < sizeof features / sizeof features[0]; i++)
        if (cpu_has(features[i]))
            snprintf(present + strlen(present), sizeof present - strlen(present), "%s%s", present[0] ? " " : "",
                     features[i]);
    snprintf(buffer, size,
             "CPU has %s; few-row products (beam search): %s; second decoding thread: %s; "
             "GELU and softmax: %s (same results); other activations, attention, im2col: compiled for the "
             "x86-64 baseline (sse2); matrix products (CNN, training, attention): OpenBLAS's %s kernels",
             present[0] ? present : "no AVX", cpu_use_avx2_fma() ? "own avx2+fma kernel" : "OpenBLAS sgemv",
             cpu_portable_mode() ? "off (CAPTION_PORTABLE)" : "on in single-image commands",
             cpu_wide_loops() ? "avx2 copies" : "sse2 baseline",
             openblas_get_corename() ? openblas_get_corename() : "?");
}
