#include "cross_entropy.h"

#include <math.h>

#include "softmax.h"

int cross_entropy_count_valid(const int *targets, int rows, int ignore_index) {
    int valid = 0;
    for (int r = 0; r < rows; r++) valid += targets[r] != ignore_index;
    return valid;
}

float cross_entropy_forward(float *probs, const float *logits, const int *targets, const float *row_weights,
                            int rows, int classes, int ignore_index, float label_smoothing, int *valid_rows) {
    int valid = cross_entropy_count_valid(targets, rows, ignore_index);
    if (valid_rows) *valid_rows = valid;
    double total = 0.0;
    for (int r = 0; r < rows; r++) {
        const float *x = logits + (long)r * classes;
        double log_sum = softmax_row(probs + (long)r * classes, x, classes);
        if (targets[r] == ignore_index) continue;
        /* -log p from the logits and the log-partition: exact even when p underflows. */
        double nll = log_sum - x[targets[r]];
        if (label_smoothing > 0.0f) {
            double sum_x = 0.0;
            for (int c = 0; c < classes; c++) sum_x += x[c];
            nll = (1.0 - label_smoothing) * nll + label_smoothing * (log_sum - sum_x / classes);
        }
        total += row_weights ? row_weights[r] * nll : nll;
    }
    return valid ? (float)(total / valid) : 0.0f;
}

void cross_entropy_backward(float *d_logits, const float *probs, const int *targets, const float *row_weights,
                            int rows, int classes, int ignore_index, float label_smoothing, float d_loss) {
    int valid = cross_entropy_count_valid(targets, rows, ignore_index);
    if (valid == 0) return;
    float smooth = label_smoothing / classes;
    for (int r = 0; r < rows; r++) {
        if (targets[r] == ignore_index) continue;
        float scale = (row_weights ? row_weights[r] : 1.0f) * d_loss / valid;
        const float *p = probs + (long)r * classes;
        float *d = d_logits + (long)r * classes;
        for (int c = 0; c < classes; c++) d[c] += scale * (p[c] - smooth);
        d[targets[r]] -= scale * (1.0f - label_smoothing);
    }
}
