#include "binary_cross_entropy.h"

#include <math.h>

#include "activation.h"

static int counted_classes(const unsigned char *class_mask, int classes) {
    if (!class_mask) return classes;
    int counted = 0;
    for (int c = 0; c < classes; c++) counted += class_mask[c] != 0;
    return counted;
}

float binary_cross_entropy_forward(float *probs, const float *logits, const float *targets,
                                   const unsigned char *class_mask, int rows, int classes) {
    long n = (long)rows * classes;
    sigmoid_forward(probs, logits, n);
    long count = (long)rows * counted_classes(class_mask, classes);
    if (count == 0) return 0.0f;
    double total = 0.0;
    for (long i = 0; i < n; i++) {
        if (class_mask && !class_mask[i % classes]) continue;
        /* From the logit, not from log(sigmoid): exact where sigmoid rounds to 0 or 1. */
        double a = logits[i];
        total += fmax(a, 0.0) - a * targets[i] + log1p(exp(-fabs(a)));
    }
    return (float)(total / count);
}

void binary_cross_entropy_backward(float *d_logits, const float *probs, const float *targets,
                                   const unsigned char *class_mask, int rows, int classes, float d_loss) {
    long count = (long)rows * counted_classes(class_mask, classes);
    if (count == 0) return;
    float scale = d_loss / (float)count;
    for (long i = 0; i < (long)rows * classes; i++)
        if (!class_mask || class_mask[i % classes]) d_logits[i] += scale * (probs[i] - targets[i]);
}
