#include "cpu.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int cpu_portable_mode(void) {
    const char *value = getenv("CAPTION_PORTABLE");
    return value && value[0] && strcmp(value, "0") != 0;
}

static int cpu_has(const char *feature) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    /* __builtin_cpu_supports takes a string literal only. */
    if (strcmp(feature, "avx512f") == 0) return __builtin_cpu_supports("avx512f");
    if (strcmp(feature, "avx512cd") == 0) return __builtin_cpu_supports("avx512cd");
    if (strcmp(feature, "avx512bw") == 0) return __builtin_cpu_supports("avx512bw");
    if (strcmp(feature, "avx512dq") == 0) return __builtin_cpu_supports("avx512dq");
    if (strcmp(feature, "avx512vl") == 0) return __builtin_cpu_supports("avx512vl");
    if (strcmp(feature, "avx2") == 0) return __builtin_cpu_supports("avx2");
    if (strcmp(feature, "fma") == 0) return __builtin_cpu_supports("fma");
    if (strcmp(feature, "avx") == 0) return __builtin_cpu_supports("avx");
    if (strcmp(feature, "sse4.2") == 0) return __builtin_cpu_supports("sse4.2");
#endif
    (void)feature;
    return 0;
}

int cpu_slower_blas_kernel_note(char *buffer, size_t size) {
    static const char *const avx512_kernels[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    static const char *const avx512_features[] = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"};
    const char *forced = getenv("OPENBLAS_CORETYPE"), *running = openblas_get_corename();
    buffer[0] = '\0';
    if (!forced || !forced[0] || !running) return 0;
    for (size_t i = 0; i < sizeof avx512_kernels / sizeof avx512_kernels[0]; i++)
        if (strcasecmp(running, avx512_kernels[i]) == 0) return 0;
    for (size_t i = 0; i < sizeof avx512_features / sizeof avx512_features[0]; i++)
        if (!cpu_has(avx512_features[i])) return 0;
    snprintf(buffer, size,
             "OpenBLAS runs its %s kernels because OPENBLAS_CORETYPE=%s, on a CPU with AVX-512: without that "
             "setting it would pick AVX-512 kernels (on a Zen 5 machine they trained 1.4 to 1.6 times as fast)",
             running, forced);
    return 1;
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
