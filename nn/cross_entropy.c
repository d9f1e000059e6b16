#include "cross_entropy.h"

#include <math.h>

#include "softmax.h"

static int count_valid(const int *targets, int rows, int ignore_index) {
    int valid = 0;
    for (int r = 0; r < rows; r++) valid += targets[r] != ignore_index;
    return valid;
}

float cross_entropy_forward(float *probs, const float *logits, const int *targets, int rows,
                            int classes, int ignore_index, float label_smoothing,
                            int *valid_rows) {
    softmax_forward(probs, logits, rows, classes);
    int valid = count_valid(targets, rows, ignore_index);
    if (valid_rows) *valid_rows = valid;
    if (valid == 0) return 0.0f;
    double total = 0.0;
    for (int r = 0; r < rows; r++) {
        if (targets[r] == ignore_index) continue;
        /* log p from the logits directly: exact even when p underflows. */
        const float *x = logits + (long)r * classes;
        float max = x[0];
        for (int c = 1; c < classes; c++) max = x[c] > max ? x[c] : max;
        double sum = 0.0;
        for (int c = 0; c < classes; c++) sum += exp((double)x[c] - max);
        double log_sum = log(sum) + max;
        double nll = log_sum - x[targets[r]];
        if (label_smoothing > 0.0f) {
            double mean_nll = 0.0;
            for (int c = 0; c < classes; c++) mean_nll += log_sum - x[c];
            mean_nll /= classes;
            nll = (1.0 - label_smoothing) * nll + label_smoothing * mean_nll;
        }
        total += nll;
    }
    return (float)(total / valid);
}

void cross_entropy_backward(float *d_logits, const float *probs, const int *targets, int rows,
                            int classes, int ignore_index, float label_smoothing, float d_loss) {
    int valid = count_valid(targets, rows, ignore_index);
    if (valid == 0) return;
    float scale = d_loss / valid, smooth = label_smoothing / classes;
    for (int r = 0; r < rows; r++) {
        if (targets[r] == ignore_index) continue;
        const float *p = probs + (long)r * classes;
        float *d = d_logits + (long)r * classes;
        for (int c = 0; c < classes; c++) d[c] += scale * (p[c] - smooth);
        d[targets[r]] -= scale * (1.0f - label_smoothing);
    }
}
