#include "progress.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

void progress_init(Progress *p, FILE *out) {
    *p = (Progress){.out = out, .live = isatty(fileno(out)), .start = now_seconds()};
    p->last_print = p->start;
}

static void format_duration(char *buffer, size_t size, double seconds) {
    long s = seconds > 0 ? (long)(seconds + 0.5) : 0;
    if (s >= 3600) snprintf(buffer, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else snprintf(buffer, size, "%ld:%02ld", s / 60, s % 60);
}

double progress_seconds_left(const Progress *p, long epoch, long epochs, long done, long total, int run) {
    if (p->smoothed_rate <= 0.0) return 0.0;
    double units = (double)(total - done) + (run && epochs > epoch ? (double)(epochs - epoch) * total : 0.0);
    return units * (p->items_per_unit > 0.0 ? p->items_per_unit : 1.0) / p->smoothed_rate;
}

void progress_update(Progress *p, long epoch, long epochs, long done, long total, double loss, double rate) {
    double now = now_seconds();
    double per_unit = p->items_per_unit > 0.0 ? p->items_per_unit : 1.0;
    if (rate <= 0.0) rate = done * per_unit / (now - p->start > 1e-9 ? now - p->start : 1e-9); /* average so far */
    /* Smoothed, so the numbers are readable rather than jittery. */
    p->smoothed_rate = p->smoothed_rate > 0 ? 0.9 * p->smoothed_rate + 0.1 * rate : rate;
    if (loss >= 0) {
        p->smoothed_loss = p->has_loss ? 0.95 * p->smoothed_loss + 0.05 * loss : loss;
        p->has_loss = 1;
    }
    double interval = p->interval > 0.0 ? p->interval : p->live ? 0.2 : 30.0;
    if (done < total && now - p->last_print < interval) return;
    if (!p->live && done == total && total < 20) return; /* a short job needs no log line */
    p->last_print = now;
    char eta[64], run_eta[32], where[64] = "", loss_text[32] = "";
    format_duration(eta, sizeof eta, progress_seconds_left(p, epoch, epochs, done, total, 0));
    if (epochs > 1) {
        snprintf(where, sizeof where, "epoch %ld/%ld ", epoch, epochs);
        format_duration(run_eta, sizeof run_eta, progress_seconds_left(p, epoch, epochs, done, total, 1));
        size_t n = strlen(eta);
        snprintf(eta + n, sizeof eta - n, ", run %s", run_eta);
    }
    if (p->has_loss)
        snprintf(loss_text, sizeof loss_text, "  %s %.4f", p->loss_name ? p->loss_name : "loss", p->smoothed_loss);
    if (p->live) {
        enum { WIDTH = 24 };
        char bar[WIDTH + 1];
        int filled = total > 0 ? (int)(WIDTH * done / total) : 0;
        for (int i = 0; i < WIDTH; i++) bar[i] = i < filled ? '=' : i == filled ? '>' : ' ';
        bar[WIDTH] = '\0';
        fprintf(p->out, "\r%s[%s] %ld/%ld%s  %.1f/s  ETA %s   ", where, bar, done, total, loss_text, p->smoothed_rate, eta);
        p->drawn = 1;
    } else {
        fprintf(p->out, "%s%ld/%ld%s  %.1f/s  ETA %s\n", where, done, total, loss_text, p->smoothed_rate, eta);
    }
    fflush(p->out);
}

void progress_finish(Progress *p) {
    if (p->live && p->drawn) fputc('\n', p->out);
    p->drawn = 0;
}
