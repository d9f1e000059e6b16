#include "positional.h"

#include <math.h>

void grid_position_forward(float *x, const float *rows, const float *columns, int batch, int height, int width,
                           int dim) {
    for (int b = 0; b < batch; b++)
        for (int y = 0; y < height; y++)
            for (int c = 0; c < width; c++) {
                float *cell = x + (((long)b * height + y) * width + c) * dim;
                const float *row = rows + (long)y * dim, *column = columns + (long)c * dim;
                for (int d = 0; d < dim; d++) cell[d] += row[d] + column[d];
            }
}

void grid_position_backward(float *d_rows, float *d_columns, const float *d_x, int batch, int height, int width,
                            int dim) {
    for (int b = 0; b < batch; b++)
        for (int y = 0; y < height; y++)
            for (int c = 0; c < width; c++) {
                const float *cell = d_x + (((long)b * height + y) * width + c) * dim;
                float *row = d_rows + (long)y * dim, *column = d_columns + (long)c * dim;
                for (int d = 0; d < dim; d++) {
                    row[d] += cell[d];
                    column[d] += cell[d];
                }
            }
}

void sinusoid_position_add(float *x, int batch, int first, int count, int dim, int stride) {
    for (int t = 0; t < count; t++) {
        double position = first + t;
        for (int i = 0; 2 * i < dim; i++) {
            double angle = position / pow(10000.0, (2.0 * i) / dim);
            float s = (float)sin(angle), c = (float)cos(angle);
            for (int b = 0; b < batch; b++) {
                float *row = x + ((long)b * count + t) * stride;
                row[2 * i] += s;
                if (2 * i + 1 < dim) row[2 * i + 1] += c;
            }
        }
    }
}
