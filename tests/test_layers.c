/* Finite-difference gradient checks for every backward function in nn/, plus
 * forward values against hand-computed or double-precision references, the
 * optimiser, and batch-norm inference and folding.
 *
 * Method. Each layer gets a scalar loss L = sum(out * R) for a fixed random R
 * (so dL/dout = R), summed in double. The analytic gradient comes from the
 * layer's backward into zeroed buffers; calling backward a second time must
 * double it (backward accumulates). The numerical gradient is the central
 * difference (L(x + eps) - L(x - eps)) / (2 eps) of the layer's own float
 * forward, element by element. The error of one element is
 *     |a - n| / max(|a| + |n|, 1e-3)
 * and each table row is the maximum over a tensor. Central differences of a
 * float32 forward rarely get much below 1e-3 (each output carries a rounding
 * error of ~6e-8 relative, divided by 2 eps), so gradients must agree within
 * 1e-2; a wrong formula typically gives errors of order 0.1 to 1.
 *
 * Where a layer's gradients are small sums with heavy cancellation (attention:
 * the score gradients sum to zero over the cells; the LSTM recurrences), the
 * float forward's rounding dominates the central difference (the error grows
 * as eps shrinks). There the numerical gradient is taken from a double
 * precision reference forward written from the formulas in the headers
 * ("f64 fd" in the table; eps 1e-4), and the layer's own float forward is
 * checked against that same reference ("vs f64"). That numerical gradient is
 * exact to ~1e-8, so what remains is the float rounding of backward itself
 * (up to ~3e-5 on the cancelling sums) and the tolerance tightens to 1e-3.
 * Elsewhere it is the layer's own float forward ("f32 fd", eps 1e-2).
 *
 * Prints one row per check and a final line "N passed, M failed"; exits
 * nonzero when anything failed. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
/* cblas.h brings complex.h, whose I would shadow the tests' own variables. */
#undef I

#include "activation.h"
#include "attention.h"
#include "batchnorm.h"
#include "binary_cross_entropy.h"
#include "conv2d.h"
#include "core_helper.h"
#include "cross_entropy.h"
#include "dropout.h"
#include "embedding.h"
#include "layernorm.h"
#include "linear.h"
#include "lstm.h"
#include "maxpool.h"
#include "multihead_attention.h"
#include "optimizer.h"
#include "positional.h"
#include "rng.h"
#include "sentinel.h"
#include "softmax.h"

#define GRAD_TOL 1e-2  /* numerical vs analytic gradient */
/* A second backward call must double every gradient. Overwriting instead of
 * accumulating gives an error of 1/3; float reordering of sums that cancel
 * gives up to ~1e-4. */
#define ACC_TOL 1e-3
#define FWD_TOL 1e-4   /* float forward vs double reference */
#define EXACT_TOL 1e-6 /* float result vs a hand-computed value */
#define REF_EPS 1e-4f  /* central-difference step on a double reference forward */
#define REF_TOL 1e-3   /* numerical gradient of the double reference vs analytic */

enum { MAX_PARAMS = 12, POOL_MAX = 128, LABEL_MAX = 64 };

/* ------------------------------------------------------------------------ */
/* Reporting */

typedef struct {
    int passed, failed;
} Report;

static void record(Report *rep, const char *layer, const char *tensor, const char *method,
                   double err, double tol) {
    int ok = err <= tol; /* NaN fails */
    if (ok)
        rep->passed++;
    else
        rep->failed++;
    printf("%-30s %-18s %-10s %9.2e  %7.0e  %s\n", layer, tensor, method, err, tol,
           ok ? "ok" : "FAIL");
}

static void record_bool(Report *rep, const char *layer, const char *what, int ok) {
    record(rep, layer, what, "exact", ok ? 0.0 : INFINITY, 0.0);
}

static double rel_err(double a, double n) {
    double denom = fabs(a) + fabs(n);
    if (denom < 1e-3) denom = 1e-3;
    return fabs(a - n) / denom;
}

static double worse(double worst, double e) {
    if (e != e) return INFINITY;
    return e > worst ? e : worst;
}

static double max_rel_fd(const float *a, const double *ref, long n) {
    double worst = 0.0;
    for (long i = 0; i < n; i++) worst = worse(worst, rel_err(a[i], ref[i]));
    return worst;
}

static double max_rel_ff(const float *a, const float *b, long n) {
    double worst = 0.0;
    for (long i = 0; i < n; i++) worst = worse(worst, rel_err(a[i], b[i]));
    return worst;
}

/* ------------------------------------------------------------------------ */
/* Allocation: every buffer of a test comes from its pool and is freed at once. */

typedef struct {
    void *ptr[POOL_MAX];
    int count;
} Pool;

static void *pool_alloc(Pool *pool, size_t bytes) {
    if (pool->count == POOL_MAX) {
        fprintf(stderr, "test_layers: pool full\n");
        exit(2);
    }
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "test_layers: out of memory\n");
        exit(2);
    }
    pool->ptr[pool->count++] = p;
    return p;
}

static float *pool_floats(Pool *pool, long n) {
    return pool_alloc(pool, sizeof(float) * (size_t)(n > 0 ? n : 1));
}

static double *pool_doubles(Pool *pool, long n) {
    return pool_alloc(pool, sizeof(double) * (size_t)(n > 0 ? n : 1));
}

static int *pool_ints(Pool *pool, long n) {
    return pool_alloc(pool, sizeof(int) * (size_t)(n > 0 ? n : 1));
}

static float *pool_normal(Pool *pool, Rng *rng, long n, float scale) {
    float *x = pool_floats(pool, n);
    for (long i = 0; i < n; i++) x[i] = scale * rng_normal(rng);
    return x;
}

static void pool_free(Pool *pool) {
    for (int i = 0; i < pool->count; i++) free(pool->ptr[i]);
    pool->count = 0;
}

static double dot_double(const float *a, const float *b, long n) {
    double sum = 0.0;
    for (long i = 0; i < n; i++) sum += (double)a[i] * b[i];
    return sum;
}

static double dot_df(const double *a, const float *b, long n) {
    double sum = 0.0;
    for (long i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

static void to_double(double *dst, const float *src, long n) {
    for (long i = 0; i < n; i++) dst[i] = src[i];
}

/* ------------------------------------------------------------------------ */
/* The generic gradient check */

typedef struct {
    const char *name;
    float *value, *grad;
    long n;
} Param;

typedef struct {
    const char *layer;
    double (*loss)(void *ctx);     /* runs forward at the current values, returns L */
    double (*loss_ref)(void *ctx); /* optional: L from a double-precision reference forward */
    void (*backward)(void *ctx);   /* accumulates dL/dvalue into every grad */
    void *ctx;
    float eps; /* for loss; loss_ref uses REF_EPS */
    int count;
    Param params[MAX_PARAMS];
} Check;

static void add_param(Check *c, const char *name, float *value, float *grad, long n) {
    if (c->count == MAX_PARAMS) {
        fprintf(stderr, "test_layers: too many parameters in %s\n", c->layer);
        exit(2);
    }
    c->params[c->count++] = (Param){name, value, grad, n};
}

static void check_gradients(Report *rep, const Check *c) {
    Pool pool = {0};
    float *analytic[MAX_PARAMS];
    for (int k = 0; k < c->count; k++)
        memset(c->params[k].grad, 0, sizeof(float) * (size_t)c->params[k].n);
    c->loss(c->ctx);
    c->backward(c->ctx);
    for (int k = 0; k < c->count; k++) {
        analytic[k] = pool_floats(&pool, c->params[k].n);
        memcpy(analytic[k], c->params[k].grad, sizeof(float) * (size_t)c->params[k].n);
    }
    c->backward(c->ctx);
    double acc = 0.0;
    for (int k = 0; k < c->count; k++)
        for (long i = 0; i < c->params[k].n; i++)
            acc = worse(acc, rel_err(c->params[k].grad[i], 2.0 * analytic[k][i]));
    record(rep, c->layer, "accumulate x2", "2x", acc, ACC_TOL);

    double (*loss)(void *) = c->loss_ref ? c->loss_ref : c->loss;
    float eps = c->loss_ref ? REF_EPS : c->eps;
    for (int k = 0; k < c->count; k++) {
        const Param *p = &c->params[k];
        double worst = 0.0;
        for (long i = 0; i < p->n; i++) {
            float saved = p->value[i];
            float plus = saved + eps, minus = saved - eps;
            p->value[i] = plus;
            double loss_plus = loss(c->ctx);
            p->value[i] = minus;
            double loss_minus = loss(c->ctx);
            p->value[i] = saved;
            double numeric = (loss_plus - loss_minus) / ((double)plus - (double)minus);
            worst = worse(worst, rel_err(analytic[k][i], numeric));
        }
        if (c->loss_ref)
            record(rep, c->layer, p->name, "f64 fd", worst, REF_TOL);
        else
            record(rep, c->layer, p->name, "f32 fd", worst, GRAD_TOL);
    }
    c->loss(c->ctx); /* leave the forward state of the unperturbed values */
    pool_free(&pool);
}

/* ------------------------------------------------------------------------ */
/* linear */

typedef struct {
    int rows, in, out;
    float *x, *w, *b, *y, *r, *dx, *dw, *db;
} LinearCtx;

static double linear_loss(void *p) {
    LinearCtx *c = p;
    linear_forward(c->y, c->x, c->w, c->b, c->rows, c->in, c->out);
    return dot_double(c->y, c->r, (long)c->rows * c->out);
}

static void linear_back(void *p) {
    LinearCtx *c = p;
    linear_backward(c->dx, c->dw, c->db, c->r, c->x, c->w, c->rows, c->in, c->out);
}

/* Few rows take sgemv, more take sgemm: both against a double-precision product,
 * on either side of the switch, with and without accumulating into out. */
static void test_linear_row_counts(Report *rep) {
    enum { IN = 37, OUT = 29, MAX_ROWS = 9 };
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 102);
    float *x = pool_normal(&pool, &rng, (long)MAX_ROWS * IN, 1.0f);
    float *w = pool_normal(&pool, &rng, (long)OUT * IN, 0.5f);
    float *b = pool_normal(&pool, &rng, OUT, 0.5f);
    float *y = pool_floats(&pool, (long)MAX_ROWS * OUT);
    double expect[MAX_ROWS * OUT];
    double worst = 0.0;
    for (int rows = 1; rows <= MAX_ROWS; rows++) {
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < OUT; o++) {
                double sum = b[o];
                for (int i = 0; i < IN; i++) sum += (double)x[r * IN + i] * w[o * IN + i];
                expect[r * OUT + o] = 2.0 * sum - b[o]; /* linear_forward then += the product again */
            }
        linear_forward(y, x, w, b, rows, IN, OUT);
        matmul_weight_t(y, x, w, rows, IN, OUT, 1.0f);
        worst = worse(worst, max_rel_fd(y, expect, (long)rows * OUT));
        /* Without bias (beta 0) what out held must not matter, NaN included. */
        for (long i = 0; i < (long)rows * OUT; i++) y[i] = NAN;
        linear_forward(y, x, w, NULL, rows, IN, OUT);
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < OUT; o++) expect[r * OUT + o] = (expect[r * OUT + o] + b[o]) / 2.0 - b[o];
        worst = worse(worst, max_rel_fd(y, expect, (long)rows * OUT));
    }
    record(rep, "linear 1..9 rows x37->29", "fwd, beta 0 and 1", "double", worst, FWD_TOL);
    pool_free(&pool);
}

static double normwise_fd(const float *a, const double *ref, long n);

/* The products split over two cores (core_helper.h) give the very bits of the
 * one-thread products: few rows (both the AVX2 kernel and, with
 * CAPTION_PORTABLE, the sgemv fallback; odd widths for the tails) and
 * one-image convolutions. OpenBLAS on one thread, as captioner_use_second_thread
 * sets it: its own threads split an sgemv where they like, and a product whose
 * split lands inside a block of 4 outputs rounds those differently. */
static void test_second_core(Report *rep) {
    enum { IN = 301, OUT = 517, ROWS = 5 };
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 103);
    float *x = pool_normal(&pool, &rng, (long)ROWS * IN, 1.0f), *w = pool_normal(&pool, &rng, (long)OUT * IN, 0.5f);
    float *alone = pool_floats(&pool, (long)ROWS * OUT), *shared = pool_floats(&pool, (long)ROWS * OUT);
    CoreHelper *helper = NULL;
    Error err;
    if (core_helper_create(&helper, &err) != 0) {
        record_bool(rep, "second core", err.message, 0);
        return;
    }
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    const char *was = getenv("CAPTION_PORTABLE");
    char saved[64] = "";
    if (was) snprintf(saved, sizeof saved, "%s", was);
    for (int portable = 0; portable <= 1; portable++) {
        if (portable) setenv("CAPTION_PORTABLE", "1", 1);
        else unsetenv("CAPTION_PORTABLE");
        int same = 1;
        for (int rows = 1; rows <= ROWS; rows++)
            for (int beta = 0; beta <= 1; beta++) {
                for (long i = 0; i < (long)rows * OUT; i++) alone[i] = shared[i] = 0.25f * (float)(i % 7);
                matmul_weight_t(alone, x, w, rows, IN, OUT, (float)beta);
                matmul_weight_t_shared(helper, shared, x, w, rows, IN, OUT, (float)beta);
                same &= memcmp(alone, shared, sizeof(float) * rows * OUT) == 0;
            }
        record_bool(rep, portable ? "split few rows (portable)" : "split few rows", "1..5 rows, same bits", same);
    }
    if (was) setenv("CAPTION_PORTABLE", saved, 1);
    else unsetenv("CAPTION_PORTABLE");

    /* Odd sizes, a stride-2 first layer, a late small map, a 1x1 convolution. */
    const Conv2dShape convs[] = {
        {.batch = 1, .in_channels = 5, .in_height = 29, .in_width = 31, .out_channels = 7, .kernel = 3, .stride = 1, .padding = 1},
        {.batch = 1, .in_channels = 3, .in_height = 96, .in_width = 96, .out_channels = 32, .kernel = 3, .stride = 2, .padding = 1},
        {.batch = 1, .in_channels = 64, .in_height = 12, .in_width = 12, .out_channels = 48, .kernel = 3, .stride = 1, .padding = 1},
        {.batch = 1, .in_channels = 40, .in_height = 20, .in_width = 21, .out_channels = 33, .kernel = 1, .stride = 1, .padding = 0},
    };
    int conv_same = 1;
    double conv_worst = 0.0;
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++) {
        const Conv2dShape *cs = &convs[i];
        long nx = (long)cs->in_channels * cs->in_height * cs->in_width;
        long ny = (long)cs->out_channels * conv2d_out_height(cs) * conv2d_out_width(cs);
        long nw = (long)cs->out_channels * cs->in_channels * cs->kernel * cs->kernel;
        float *image = pool_normal(&pool, &rng, nx, 1.0f), *kernel = pool_normal(&pool, &rng, nw, 0.5f);
        float *bias = pool_normal(&pool, &rng, cs->out_channels, 0.5f);
        float *ws = pool_floats(&pool, (long)conv2d_workspace_floats(cs));
        float *y_whole = pool_floats(&pool, ny), *y_alone = pool_floats(&pool, ny);
        float *y_shared = pool_floats(&pool, ny);
        conv2d_forward(y_whole, image, kernel, bias, cs, ws);
        conv2d_forward_shared(NULL, y_alone, image, kernel, bias, cs, ws, NULL);
        conv2d_forward_shared(helper, y_shared, image, kernel, bias, cs, ws, NULL);
        conv_same &= memcmp(y_alone, y_shared, sizeof(float) * ny) == 0;
        /* Halves and the whole product may round differently (up to 4e-7 seen, Haswell), no more. */
        double *whole = pool_doubles(&pool, ny);
        for (long k = 0; k < ny; k++) whole[k] = y_whole[k];
        conv_worst = worse(conv_worst, normwise_fd(y_alone, whole, ny));
    }
    record_bool(rep, "split conv2d, 4 shapes", "helper = halves", conv_same);
    record(rep, "split conv2d, 4 shapes", "halves vs whole", "normwise", conv_worst, FWD_TOL);
    core_helper_free(helper);
    openblas_set_num_threads(blas_threads);
    pool_free(&pool);
}

static void test_linear(Report *rep) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 101);
    LinearCtx c = {.rows = 3, .in = 5, .out = 4};
    long nx = (long)c.rows * c.in, nw = (long)c.out * c.in, ny = (long)c.rows * c.out;
    c.x = pool_normal(&pool, &rng, nx, 1.0f);
    c.w = pool_normal(&pool, &rng, nw, 0.5f);
    c.b = pool_normal(&pool, &rng, c.out, 0.5f);
    c.r = pool_normal(&pool, &rng, ny, 1.0f);
    c.y = pool_floats(&pool, ny);
    c.dx = pool_floats(&pool, nx);
    c.dw = pool_floats(&pool, nw);
    c.db = pool_floats(&pool, c.out);
    Check chk = {.layer = "linear 3x5->4", .loss = linear_loss, .backward = linear_back,
                 .ctx = &c, .eps = 1e-2f};
    add_param(&chk, "d_in", c.x, c.dx, nx);
    add_param(&chk, "d_weight", c.w, c.dw, nw);
    add_param(&chk, "d_bias", c.b, c.db, c.out);
    check_gradients(rep, &chk);

    /* Forward by hand: in [1, 2], W [[1, 0], [0.5, -1], [2, 3]], b [0.1, 0.2, 0.3]. */
    const float in[2] = {1.0f, 2.0f}, weight[6] = {1.0f, 0.0f, 0.5f, -1.0f, 2.0f, 3.0f};
    const float bias[3] = {0.1f, 0.2f, 0.3f};
    const double expect[3] = {1.1, -1.3, 8.3};
    float out[3];
    linear_forward(out, in, weight, bias, 1, 2, 3);
    record(rep, "linear 1x2->3", "forward", "vs hand", max_rel_fd(out, expect, 3), EXACT_TOL);
    pool_free(&pool);
    test_linear_row_counts(rep);
}

/* ------------------------------------------------------------------------ */
/* activations */

typedef enum { ACT_RELU, ACT_TANH, ACT_SIGMOID } ActKind;

typedef struct {
    ActKind kind;
    long n;
    float *x, *y, *r, *dx;
} ActCtx;

static double act_loss(void *p) {
    ActCtx *c = p;
    if (c->kind == ACT_RELU)
        relu_forward(c->y, c->x, c->n);
    else if (c->kind == ACT_TANH)
        tanh_forward(c->y, c->x, c->n);
    else
        sigmoid_forward(c->y, c->x, c->n);
    return dot_double(c->y, c->r, c->n);
}

static void act_back(void *p) {
    ActCtx *c = p;
    if (c->kind == ACT_RELU)
        relu_backward(c->dx, c->r, c->y, c->n);
    else if (c->kind == ACT_TANH)
        tanh_backward(c->dx, c->r, c->y, c->n);
    else
        sigmoid_backward(c->dx, c->r, c->y, c->n);
}

static void test_activations(Report *rep) {
    static const char *const names[3] = {"relu", "tanh", "sigmoid"};
    for (int k = 0; k < 3; k++) {
        Pool pool = {0};
        Rng rng;
        rng_seed(&rng, 200 + k);
        ActCtx c = {.kind = (ActKind)k, .n = 24};
        c.x = pool_normal(&pool, &rng, c.n, 1.5f);
        /* Keep relu inputs away from its kink at 0 (eps is 1e-2). */
        for (long i = 0; i < c.n; i++)
            if (fabsf(c.x[i]) < 0.05f) c.x[i] = c.x[i] < 0.0f ? -0.05f : 0.05f;
        c.y = pool_floats(&pool, c.n);
        c.r = pool_normal(&pool, &rng, c.n, 1.0f);
        c.dx = pool_floats(&pool, c.n);
        Check chk = {.layer = names[k], .loss = act_loss, .backward = act_back, .ctx = &c,
                     .eps = 1e-2f};
        add_param(&chk, "d_in", c.x, c.dx, c.n);
        check_gradients(rep, &chk);
        pool_free(&pool);
    }
    /* In place, and values by hand. */
    float v[4] = {-1.0f, 0.0f, 0.5f, 2.0f};
    relu_forward(v, v, 4);
    const double relu_expect[4] = {0.0, 0.0, 0.5, 2.0};
    double err = max_rel_fd(v, relu_expect, 4);
    float s[3] = {0.0f, 100.0f, -100.0f};
    sigmoid_forward(s, s, 3);
    const double sig_expect[3] = {0.5, 1.0, 1.0 / (1.0 + exp(100.0))};
    err = worse(err, max_rel_fd(s, sig_expect, 3));
    record(rep, "relu/sigmoid in place", "forward", "vs hand", err, EXACT_TOL);
}

/* Error of a float result in units in the last place of the correctly rounded one. */
static double ulps(float got, double exact) {
    float rounded = (float)exact;
    if (got == rounded) return 0.0;
    if (isinf(rounded) || isinf(got) || got != got) return INFINITY;
    float ulp = nextafterf(fabsf(rounded), INFINITY) - fabsf(rounded);
    return fabs((double)got - exact) / ulp;
}

typedef enum { FN_EXP, FN_TANH, FN_SIGMOID, FN_ERF } FastFn;

static double fast_fn_worst_ulps(FastFn fn, float lo, float hi, long samples) {
    double worst = 0.0;
    for (long i = 0; i <= samples; i++) {
        float x = lo + (hi - lo) * (float)((double)i / (double)samples);
        double xd = x;
        double got = fn == FN_EXP ? fast_expf(x) : fn == FN_TANH ? fast_tanhf(x) : fn == FN_ERF ? fast_erff(x) : sigmoid(x);
        double exact = fn == FN_EXP    ? exp(xd)
                       : fn == FN_TANH ? tanh(xd)
                       : fn == FN_ERF  ? erf(xd)
                                       : 1.0 / (1.0 + exp(-xd));
        worst = worse(worst, ulps((float)got, exact));
    }
    return worst;
}

/* The vectorisable exp/tanh/sigmoid against libm in double, over the ranges
 * where their float results are neither 0 nor 1 nor inf, and the edges. */
static void test_fast_math(Report *rep) {
    record(rep, "fast_expf [-104, 88.7]", "ulps", "vs exp", fast_fn_worst_ulps(FN_EXP, -103.9f, 88.7f, 400000), 2.0);
    record(rep, "fast_expf [-1, 1]", "ulps", "vs exp", fast_fn_worst_ulps(FN_EXP, -1.0f, 1.0f, 200000), 2.0);
    record(rep, "fast_tanhf [-10, 10]", "ulps", "vs tanh", fast_fn_worst_ulps(FN_TANH, -10.0f, 10.0f, 400000), 3.0);
    record(rep, "fast_tanhf [-0.7, 0.7]", "ulps", "vs tanh", fast_fn_worst_ulps(FN_TANH, -0.7f, 0.7f, 200000), 3.0);
    record(rep, "sigmoid [-100, 20]", "ulps", "vs 1/(1+e^-x)", fast_fn_worst_ulps(FN_SIGMOID, -100.0f, 20.0f, 400000), 4.0);
    /* Measured 2.5 ulps at -0.98 (the polynomials' seam at 1). */
    record(rep, "fast_erff [-6, 6]", "ulps", "vs erf", fast_fn_worst_ulps(FN_ERF, -6.0f, 6.0f, 400000), 4.0);
    int edges = fast_erff(0.0f) == 0.0f && fast_erff(10.0f) == 1.0f && fast_erff(-10.0f) == -1.0f &&
                isnan(fast_erff(NAN)) && fast_expf(-200.0f) == 0.0f && isinf(fast_expf(100.0f)) && fast_expf(0.0f) == 1.0f &&
                isnan(fast_expf(NAN)) && fast_tanhf(50.0f) == 1.0f && fast_tanhf(-50.0f) == -1.0f &&
                fast_tanhf(0.0f) == 0.0f && isnan(fast_tanhf(NAN)) && sigmoid(200.0f) == 1.0f &&
                sigmoid(-200.0f) == 0.0f && isnan(sigmoid(NAN)) && fast_expf(-INFINITY) == 0.0f &&
                isinf(fast_expf(INFINITY));
    record_bool(rep, "fast exp/tanh/sigmoid/erf", "0, 1, inf, NaN", edges);
}

/* ------------------------------------------------------------------------ */
/* conv2d */

typedef struct {
    Conv2dShape s;
    long nx, nw, ny;
    float *x, *w, *b, *y, *r, *dx, *dw, *db, *ws;
} ConvCtx;

static double conv_loss(void *p) {
    ConvCtx *c = p;
    conv2d_forward(c->y, c->x, c->w, c->b, &c->s, c->ws);
    return dot_double(c->y, c->r, c->ny);
}

static void conv_back(void *p) {
    ConvCtx *c = p;
    conv2d_backward(c->dx, c->dw, c->db, c->r, c->x, c->w, &c->s, c->ws);
}

/* Direct convolution in double. */
static void conv_reference(double *out, const float *in, const float *w, const float *b,
                           const Conv2dShape *s) {
    int oh = conv2d_out_height(s), ow = conv2d_out_width(s), k = s->kernel;
    for (int n = 0; n < s->batch; n++)
        for (int o = 0; o < s->out_channels; o++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double sum = b ? b[o] : 0.0;
                    for (int ci = 0; ci < s->in_channels; ci++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy * s->stride - s->padding + ky;
                                int ix = ox * s->stride - s->padding + kx;
                                if (iy < 0 || iy >= s->in_height || ix < 0 || ix >= s->in_width)
                                    continue;
                                long at = ((long)n * s->in_channels + ci) * s->in_height + iy;
                                double xv = in[at * s->in_width + ix];
                                double wv = w[(((long)o * s->in_channels + ci) * k + ky) * k + kx];
                                sum += xv * wv;
                            }
                    out[(((long)n * s->out_channels + o) * oh + oy) * ow + ox] = sum;
                }
}

static void test_conv_shape(Report *rep, Conv2dShape shape, unsigned seed) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, seed);
    ConvCtx c = {.s = shape};
    const Conv2dShape *s = &c.s;
    c.nx = (long)s->batch * s->in_channels * s->in_height * s->in_width;
    c.nw = (long)s->out_channels * s->in_channels * s->kernel * s->kernel;
    c.ny = (long)s->batch * s->out_channels * conv2d_out_height(s) * conv2d_out_width(s);
    c.x = pool_normal(&pool, &rng, c.nx, 1.0f);
    c.w = pool_normal(&pool, &rng, c.nw, 0.5f);
    c.b = pool_normal(&pool, &rng, s->out_channels, 0.5f);
    c.r = pool_normal(&pool, &rng, c.ny, 1.0f);
    c.y = pool_floats(&pool, c.ny);
    c.dx = pool_floats(&pool, c.nx);
    c.dw = pool_floats(&pool, c.nw);
    c.db = pool_floats(&pool, s->out_channels);
    c.ws = pool_floats(&pool, (long)conv2d_workspace_floats(s));
    char label[LABEL_MAX];
    snprintf(label, sizeof label, "conv2d k%d s%d p%d %dx%dx%dx%d->%d", s->kernel, s->stride,
             s->padding, s->batch, s->in_channels, s->in_height, s->in_width, s->out_channels);

    double *ref = pool_doubles(&pool, c.ny);
    conv_loss(&c);
    conv_reference(ref, c.x, c.w, c.b, s);
    record(rep, label, "forward", "vs f64", max_rel_fd(c.y, ref, c.ny), FWD_TOL);

    Check chk = {.layer = label, .loss = conv_loss, .backward = conv_back, .ctx = &c,
                 .eps = 1e-2f};
    add_param(&chk, "d_in", c.x, c.dx, c.nx);
    add_param(&chk, "d_weight", c.w, c.dw, c.nw);
    add_param(&chk, "d_bias", c.b, c.db, s->out_channels);
    check_gradients(rep, &chk);

    /* d_in and d_bias may be NULL: d_weight must not change. */
    float *dw_full = pool_floats(&pool, c.nw);
    memset(c.dw, 0, sizeof(float) * (size_t)c.nw);
    conv_back(&c);
    memcpy(dw_full, c.dw, sizeof(float) * (size_t)c.nw);
    memset(c.dw, 0, sizeof(float) * (size_t)c.nw);
    conv2d_backward(NULL, c.dw, NULL, c.r, c.x, c.w, s, c.ws);
    record(rep, label, "d_weight alone", "vs full", max_rel_ff(c.dw, dw_full, c.nw), ACC_TOL);
    pool_free(&pool);
}

/* Gradients of sum(out * r) in double, by the direct loops of conv_reference. */
static void conv_backward_reference(double *d_in, double *d_w, double *d_b, const float *r,
                                    const float *in, const float *w, const Conv2dShape *s) {
    int oh = conv2d_out_height(s), ow = conv2d_out_width(s), k = s->kernel;
    for (int n = 0; n < s->batch; n++)
        for (int o = 0; o < s->out_channels; o++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double g = r[(((long)n * s->out_channels + o) * oh + oy) * ow + ox];
                    d_b[o] += g;
                    for (int ci = 0; ci < s->in_channels; ci++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy * s->stride - s->padding + ky;
                                int ix = ox * s->stride - s->padding + kx;
                                if (iy < 0 || iy >= s->in_height || ix < 0 || ix >= s->in_width)
                                    continue;
                                long at = (((long)n * s->in_channels + ci) * s->in_height + iy)
                                              * s->in_width + ix;
                                long wat = (((long)o * s->in_channels + ci) * k + ky) * k + kx;
                                d_in[at] += g * w[wat];
                                d_w[wat] += g * in[at];
                            }
                }
}

/* max_i |a_i - ref_i| / max_i |ref_i|: long float sums that cancel stay comparable. */
static double normwise_fd(const float *a, const double *ref, long n) {
    double diff = 0.0, scale = 0.0;
    for (long i = 0; i < n; i++) {
        diff = worse(diff, fabs(a[i] - ref[i]));
        scale = worse(scale, fabs(ref[i]));
    }
    return scale > 0.0 ? diff / scale : diff;
}

/* Shapes too big for finite differences, so that images go in several chunks
 * (the last one short) or a 1x1 convolution skips im2col; workspace sized with
 * a batch-1 shape, as the encoder does. */
static void test_conv_chunks(Report *rep, Conv2dShape shape, unsigned seed) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, seed);
    const Conv2dShape *s = &shape;
    Conv2dShape one = shape;
    one.batch = 1;
    long nx = (long)s->batch * s->in_channels * s->in_height * s->in_width;
    long nw = (long)s->out_channels * s->in_channels * s->kernel * s->kernel;
    long ny = (long)s->batch * s->out_channels * conv2d_out_height(s) * conv2d_out_width(s);
    float *x = pool_normal(&pool, &rng, nx, 1.0f), *w = pool_normal(&pool, &rng, nw, 0.5f);
    float *b = pool_normal(&pool, &rng, s->out_channels, 0.5f);
    float *r = pool_normal(&pool, &rng, ny, 1.0f), *y = pool_floats(&pool, ny);
    float *dx = pool_floats(&pool, nx), *dw = pool_floats(&pool, nw);
    float *db = pool_floats(&pool, s->out_channels);
    float *ws = pool_floats(&pool, (long)conv2d_workspace_floats(&one));
    double *y_ref = pool_doubles(&pool, ny), *dx_ref = pool_doubles(&pool, nx);
    double *dw_ref = pool_doubles(&pool, nw), *db_ref = pool_doubles(&pool, s->out_channels);
    char label[LABEL_MAX];
    snprintf(label, sizeof label, "conv2d k%d s%d p%d %dx%dx%dx%d->%d", s->kernel, s->stride,
             s->padding, s->batch, s->in_channels, s->in_height, s->in_width, s->out_channels);

    conv2d_forward(y, x, w, b, s, ws);
    conv_reference(y_ref, x, w, b, s);
    record(rep, label, "forward", "vs f64", normwise_fd(y, y_ref, ny), FWD_TOL);
    conv2d_backward(dx, dw, db, r, x, w, s, ws);
    conv_backward_reference(dx_ref, dw_ref, db_ref, r, x, w, s);
    record(rep, label, "d_in", "vs f64", normwise_fd(dx, dx_ref, nx), FWD_TOL);
    record(rep, label, "d_weight", "vs f64", normwise_fd(dw, dw_ref, nw), FWD_TOL);
    record(rep, label, "d_bias", "vs f64", normwise_fd(db, db_ref, s->out_channels), FWD_TOL);
    pool_free(&pool);
}

static void test_conv(Report *rep) {
    const Conv2dShape shapes[] = {
        {.batch = 2, .in_channels = 2, .in_height = 5, .in_width = 6, .out_channels = 3,
         .kernel = 3, .stride = 1, .padding = 1},
        {.batch = 2, .in_channels = 2, .in_height = 7, .in_width = 6, .out_channels = 3,
         .kernel = 3, .stride = 2, .padding = 0},
        {.batch = 2, .in_channels = 2, .in_height = 6, .in_width = 5, .out_channels = 3,
         .kernel = 3, .stride = 2, .padding = 1},
        {.batch = 2, .in_channels = 3, .in_height = 5, .in_width = 4, .out_channels = 2,
         .kernel = 1, .stride = 1, .padding = 0},
        {.batch = 2, .in_channels = 2, .in_height = 5, .in_width = 7, .out_channels = 2,
         .kernel = 1, .stride = 2, .padding = 1},
        {.batch = 2, .in_channels = 2, .in_height = 4, .in_width = 6, .out_channels = 2,
         .kernel = 3, .stride = 1, .padding = 0},
    };
    for (unsigned i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        test_conv_shape(rep, shapes[i], 300 + i);
    const Conv2dShape chunked[] = {
        {.batch = 5, .in_channels = 2, .in_height = 26, .in_width = 27, .out_channels = 3,
         .kernel = 3, .stride = 1, .padding = 1},
        {.batch = 3, .in_channels = 2, .in_height = 48, .in_width = 48, .out_channels = 3,
         .kernel = 3, .stride = 1, .padding = 1},
        {.batch = 7, .in_channels = 2, .in_height = 63, .in_width = 63, .out_channels = 3,
         .kernel = 3, .stride = 2, .padding = 1},
        {.batch = 3, .in_channels = 2, .in_height = 19, .in_width = 23, .out_channels = 2,
         .kernel = 5, .stride = 1, .padding = 3},
        {.batch = 3, .in_channels = 3, .in_height = 64, .in_width = 64, .out_channels = 2,
         .kernel = 1, .stride = 1, .padding = 0},
    };
    for (unsigned i = 0; i < sizeof chunked / sizeof chunked[0]; i++)
        test_conv_chunks(rep, chunked[i], 320 + i);

    /* By hand: 1 channel, 3x3 kernel over the 4x4 image 1..16. Window with top-left
     * value v holds v + 4r + c, so with kernel K the output is
     * v * sum(K) + sum K[r][c] (4r + c) + bias = 4v + 9 + 0.5. */
    float image[16], out[4], ws[2 * 9 * 4];
    for (int i = 0; i < 16; i++) image[i] = (float)(i + 1);
    const float kernel[9] = {1, 2, 0, 0, 1, 0, -1, 0, 1}, bias = 0.5f;
    Conv2dShape s = {.batch = 1, .in_channels = 1, .in_height = 4, .in_width = 4,
                     .out_channels = 1, .kernel = 3, .stride = 1, .padding = 0};
    conv2d_forward(out, image, kernel, &bias, &s, ws);
    const double expect[4] = {13.5, 17.5, 29.5, 33.5};
    double err = conv2d_out_height(&s) == 2 && conv2d_out_width(&s) == 2
                     ? max_rel_fd(out, expect, 4) : INFINITY;
    /* Padding 1, stride 2: out 2x2; the top-left window sees image[0][0] under
     * K[1][1] = 1 and image[1][1] = 6 under K[2][2] = 1: 7 + 0.5. The others:
     * (0,1) centred on image[0][2]=3: K[1][0..2]*[2,3,4] + K[2][0..2]*[6,7,8]
     *   = 3 + (-6 + 8) = 5 -> 5.5
     * (1,0) centred on image[2][0]=9: rows 1..3, cols -1..1:
     *   K[0][1]*5 + K[0][2]*6 + K[1][1]*9 + K[1][2]*10 + K[2][1]*13 + K[2][2]*14
     *   = 10 + 0 + 9 + 0 + 0 + 14 = 33 -> 33.5
     * (1,1) centred on image[2][2]=11: rows 1..3, cols 1..3:
     *   6 + 2*7 + 11 - 14 + 16 = 33 -> 33.5 */
    s.padding = 1;
    s.stride = 2;
    conv2d_forward(out, image, kernel, &bias, &s, ws);
    const double expect_padded[4] = {7.5, 5.5, 33.5, 33.5};
    err = conv2d_out_height(&s) == 2 && conv2d_out_width(&s) == 2
              ? worse(err, max_rel_fd(out, expect_padded, 4)) : INFINITY;
    record(rep, "conv2d 1x1x4x4 k3", "forward", "vs hand", err, EXACT_TOL);
}

/* ------------------------------------------------------------------------ */
/* maxpool */

typedef struct {
    MaxPoolShape s;
    long nx, ny;
    float *x, *y, *r, *dx;
    int *argmax;
} PoolCtx;

static double maxpool_loss(void *p) {
    PoolCtx *c = p;
    maxpool_forward(c->y, c->argmax, c->x, &c->s);
    return dot_double(c->y, c->r, c->ny);
}

static void maxpool_back(void *p) {
    PoolCtx *c = p;
    maxpool_backward(c->dx, c->r, c->argmax, &c->s);
}

static void test_maxpool(Report *rep) {
    const MaxPoolShape shapes[2] = {
        {.planes = 4, .in_height = 6, .in_width = 7, .kernel = 2, .stride = 2},
        {.planes = 4, .in_height = 7, .in_width = 6, .kernel = 3, .stride = 2}, /* overlapping */
    };
    for (int k = 0; k < 2; k++) {
        Pool pool = {0};
        Rng rng;
        rng_seed(&rng, 400 + k);
        PoolCtx c = {.s = shapes[k]};
        c.nx = (long)c.s.planes * c.s.in_height * c.s.in_width;
        c.ny = (long)c.s.planes * maxpool_out_height(&c.s) * maxpool_out_width(&c.s);
        /* Distinct values 0.1 apart, shuffled: eps = 1e-2 never reorders them. */
        c.x = pool_floats(&pool, c.nx);
        for (long i = 0; i < c.nx; i++) c.x[i] = 0.1f * (float)(i - c.nx / 2);
        for (long i = c.nx - 1; i > 0; i--) {
            long j = (long)rng_below(&rng, (uint32_t)(i + 1));
            float t = c.x[i];
            c.x[i] = c.x[j];
            c.x[j] = t;
        }
        c.y = pool_floats(&pool, c.ny);
        c.argmax = pool_ints(&pool, c.ny);
        c.r = pool_normal(&pool, &rng, c.ny, 1.0f);
        c.dx = pool_floats(&pool, c.nx);
        char label[LABEL_MAX];
        snprintf(label, sizeof label, "maxpool k%d s%d %dx%dx%d", c.s.kernel, c.s.stride,
                 c.s.planes, c.s.in_height, c.s.in_width);
        Check chk = {.layer = label, .loss = maxpool_loss, .backward = maxpool_back, .ctx = &c,
                     .eps = 1e-2f};
        add_param(&chk, "d_in", c.x, c.dx, c.nx);
        check_gradients(rep, &chk);
        pool_free(&pool);
    }

    /* Inference pooling (no argmax, branch-free) gives maxpool_forward's values,
     * whole or as two blocks of output rows, on odd sizes, ties, -inf and NaN. */
    {
        MaxPoolShape s = {.planes = 3, .in_height = 9, .in_width = 11, .kernel = 2, .stride = 2};
        Pool pool = {0};
        Rng rng;
        rng_seed(&rng, 402);
        long nx = 3L * 9 * 11, ny = 3L * maxpool_out_height(&s) * maxpool_out_width(&s);
        float *x = pool_floats(&pool, nx), *y = pool_floats(&pool, ny), *z = pool_floats(&pool, ny);
        int *argmax = pool_ints(&pool, ny);
        for (long i = 0; i < nx; i++) x[i] = (float)(int)(4.0f * rng_uniform(&rng)); /* many ties */
        x[5] = -INFINITY, x[40] = NAN, x[41] = NAN;
        int same = 1;
        for (int k = 2; k <= 3; k++) {
            s.kernel = k;
            ny = 3L * maxpool_out_height(&s) * maxpool_out_width(&s);
            maxpool_forward(y, argmax, x, &s);
            maxpool_forward_infer(z, x, &s, 0, 2);
            maxpool_forward_infer(z, x, &s, 2, maxpool_out_height(&s) - 2);
            same &= memcmp(y, z, sizeof(float) * ny) == 0;
        }
        record_bool(rep, "maxpool infer k2/k3 s2 3x9x11", "= forward, 2 blocks", same);
        pool_free(&pool);
    }

    /* By hand: 4x4, kernel 2 stride 2; a tie goes to the first element. */
    const float in[16] = {1, 5, 2, 0, 3, 4, 2, 1, -1, -2, 7, 7, 0, -3, 6, 7};
    float out[4], d_in[16] = {0};
    int argmax[4];
    MaxPoolShape s = {.planes = 1, .in_height = 4, .in_width = 4, .kernel = 2, .stride = 2};
    maxpool_forward(out, argmax, in, &s);
    const double expect[4] = {5, 2, 0, 7};
    const float d_out[4] = {1, 2, 3, 4};
    maxpool_backward(d_in, d_out, argmax, &s);
    int ok = max_rel_fd(out, expect, 4) == 0.0 && argmax[0] == 1 && argmax[1] == 2 &&
             argmax[2] == 12 && argmax[3] == 10 && d_in[1] == 1 && d_in[2] == 2 &&
             d_in[12] == 3 && d_in[10] == 4;
    record_bool(rep, "maxpool 4x4 k2 s2", "forward, argmax", ok);
}

/* ------------------------------------------------------------------------ */
/* batchnorm */

typedef struct {
    BatchNormShape s;
    long n;
    float *x, *gamma, *beta, *y, *mean, *inv_std, *r, *dx, *dgamma, *dbeta;
} BnCtx;

static double bn_loss(void *p) {
    BnCtx *c = p;
    batchnorm_forward_train(c->y, c->mean, c->inv_std, NULL, NULL, c->x, c->gamma, c->beta, &c->s);
    return dot_double(c->y, c->r, c->n);
}

static void bn_back(void *p) {
    BnCtx *c = p;
    batchnorm_backward(c->dx, c->dgamma, c->dbeta, c->r, c->x, c->mean, c->inv_std, c->gamma,
                       &c->s);
}

static void test_batchnorm_grad(Report *rep) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 500);
    BnCtx c = {.s = {.batch = 2, .channels = 3, .spatial = 6, .eps = 1e-5f, .momentum = 0.1f}};
    int C = c.s.channels;
    c.n = (long)c.s.batch * C * c.s.spatial;
    c.x = pool_normal(&pool, &rng, c.n, 2.0f);
    for (long i = 0; i < c.n; i++) c.x[i] += 0.5f;
    c.gamma = pool_normal(&pool, &rng, C, 0.3f);
    for (int i = 0; i < C; i++) c.gamma[i] += 1.0f;
    c.beta = pool_normal(&pool, &rng, C, 0.5f);
    c.y = pool_floats(&pool, c.n);
    c.mean = pool_floats(&pool, C);
    c.inv_std = pool_floats(&pool, C);
    c.r = pool_normal(&pool, &rng, c.n, 1.0f);
    c.dx = pool_floats(&pool, c.n);
    c.dgamma = pool_floats(&pool, C);
    c.dbeta = pool_floats(&pool, C);
    Check chk = {.layer = "batchnorm train 2x3x6", .loss = bn_loss, .backward = bn_back,
                 .ctx = &c, .eps = 1e-2f};
    add_param(&chk, "d_in", c.x, c.dx, c.n);
    add_param(&chk, "d_gamma", c.gamma, c.dgamma, C);
    add_param(&chk, "d_beta", c.beta, c.dbeta, C);
    check_gradients(rep, &chk);

    /* Forward statistics and running averages against double. */
    float *running_mean = pool_floats(&pool, C), *running_var = pool_floats(&pool, C);
    for (int i = 0; i < C; i++) {
        running_mean[i] = 0.2f * (float)i;
        running_var[i] = 1.0f + 0.5f * (float)i;
    }
    batchnorm_forward_train(c.y, c.mean, c.inv_std, running_mean, running_var, c.x, c.gamma,
                            c.beta, &c.s);
    double *ref_mean = pool_doubles(&pool, C), *ref_inv = pool_doubles(&pool, C);
    double *ref_rm = pool_doubles(&pool, C), *ref_rv = pool_doubles(&pool, C);
    double *ref_y = pool_doubles(&pool, c.n);
    long count = (long)c.s.batch * c.s.spatial;
    for (int ch = 0; ch < C; ch++) {
        double sum = 0.0, sq = 0.0;
        for (int b = 0; b < c.s.batch; b++)
            for (int i = 0; i < c.s.spatial; i++) sum += c.x[((long)b * C + ch) * c.s.spatial + i];
        double mean = sum / count;
        for (int b = 0; b < c.s.batch; b++)
            for (int i = 0; i < c.s.spatial; i++) {
                double d = c.x[((long)b * C + ch) * c.s.spatial + i] - mean;
                sq += d * d;
            }
        ref_mean[ch] = mean;
        ref_inv[ch] = 1.0 / sqrt(sq / count + c.s.eps);
        ref_rm[ch] = 0.9 * (0.2 * ch) + 0.1 * mean;
        ref_rv[ch] = 0.9 * (1.0 + 0.5 * ch) + 0.1 * sq / (count - 1);
        for (int b = 0; b < c.s.batch; b++)
            for (int i = 0; i < c.s.spatial; i++) {
                long at = ((long)b * C + ch) * c.s.spatial + i;
                ref_y[at] = (c.x[at] - mean) * ref_inv[ch] * c.gamma[ch] + c.beta[ch];
            }
    }
    double err = max_rel_fd(c.y, ref_y, c.n);
    err = worse(err, max_rel_fd(c.mean, ref_mean, C));
    err = worse(err, max_rel_fd(c.inv_std, ref_inv, C));
    record(rep, "batchnorm train 2x3x6", "forward + stats", "vs f64", err, FWD_TOL);
    err = worse(max_rel_fd(running_mean, ref_rm, C), max_rel_fd(running_var, ref_rv, C));
    record(rep, "batchnorm train 2x3x6", "running mean/var", "vs f64", err, FWD_TOL);
    pool_free(&pool);
}

/* Synchronised batch norm: a batch of 5 split over 2 replicas (threads that
 * sum through a barrier, as MPI_Allreduce would) gives the outputs, saved
 * statistics, running averages and input gradients of the whole batch in one
 * piece, and the replicas' d_gamma and d_beta sum to the whole batch's. */
typedef struct {
    pthread_barrier_t barrier;
    double *slot[2];
} TwoReplicas;

typedef struct {
    TwoReplicas *shared;
    int index;
    ReplicaSum sum;
    BatchNormShape s;
    const float *x, *gamma, *beta, *d_out;
    float *y, *mean, *inv_std, *running_mean, *running_var, *dx, *dgamma, *dbeta;
} ReplicaRun;

static void two_replica_sum(void *context, double *values, int count) {
    ReplicaRun *run = context;
    TwoReplicas *shared = run->shared;
    shared->slot[run->index] = values;
    pthread_barrier_wait(&shared->barrier);
    double *other = shared->slot[1 - run->index];
    double *sum = malloc(sizeof(double) * count);
    for (int i = 0; i < count; i++) sum[i] = run->index == 0 ? values[i] + other[i] : other[i] + values[i];
    pthread_barrier_wait(&shared->barrier); /* both have read both */
    memcpy(values, sum, sizeof(double) * count);
    free(sum);
}

static void *replica_batchnorm(void *p) {
    ReplicaRun *r = p;
    batchnorm_forward_train(r->y, r->mean, r->inv_std, r->running_mean, r->running_var, r->x, r->gamma, r->beta, &r->s);
    batchnorm_backward(r->dx, r->dgamma, r->dbeta, r->d_out, r->x, r->mean, r->inv_std, r->gamma, &r->s);
    return NULL;
}

static void test_batchnorm_replicas(Report *rep) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 520);
    BatchNormShape whole = {.batch = 5, .channels = 3, .spatial = 7, .eps = 1e-5f, .momentum = 0.1f};
    int C = whole.channels, split = 2; /* images 0..1 and 2..4 */
    long n = (long)whole.batch * C * whole.spatial, first = (long)split * C * whole.spatial;
    float *x = pool_normal(&pool, &rng, n, 2.0f), *d_out = pool_normal(&pool, &rng, n, 1.0f);
    float *gamma = pool_normal(&pool, &rng, C, 0.3f), *beta = pool_normal(&pool, &rng, C, 0.5f);
    float *y = pool_floats(&pool, n), *mean = pool_floats(&pool, C), *inv_std = pool_floats(&pool, C);
    float *rm = pool_floats(&pool, C), *rv = pool_floats(&pool, C), *dx = pool_floats(&pool, n);
    float *dgamma = pool_floats(&pool, C), *dbeta = pool_floats(&pool, C);
    for (int c = 0; c < C; c++) rv[c] = 1.0f, gamma[c] += 1.0f;
    batchnorm_forward_train(y, mean, inv_std, rm, rv, x, gamma, beta, &whole);
    batchnorm_backward(dx, dgamma, dbeta, d_out, x, mean, inv_std, gamma, &whole);

    TwoReplicas shared;
    pthread_barrier_init(&shared.barrier, NULL, 2);
    ReplicaRun runs[2];
    pthread_t threads[2];
    float *ry = pool_floats(&pool, n), *rdx = pool_floats(&pool, n);
    for (int k = 0; k < 2; k++) {
        ReplicaRun *r = &runs[k];
        long at = k == 0 ? 0 : first;
        *r = (ReplicaRun){.shared = &shared, .index = k, .s = whole, .x = x + at, .gamma = gamma, .beta = beta,
                          .d_out = d_out + at, .y = ry + at, .dx = rdx + at};
        r->s.batch = k == 0 ? split : whole.batch - split;
        r->sum = (ReplicaSum){two_replica_sum, r};
        r->s.replicas = &r->sum;
        r->s.replica_scratch = pool_doubles(&pool, 2 * C + 1);
        r->mean = pool_floats(&pool, C), r->inv_std = pool_floats(&pool, C);
        r->running_mean = pool_floats(&pool, C), r->running_var = pool_floats(&pool, C);
        r->dgamma = pool_floats(&pool, C), r->dbeta = pool_floats(&pool, C);
        for (int c = 0; c < C; c++) r->running_var[c] = 1.0f;
    }
    for (int k = 0; k < 2; k++) pthread_create(&threads[k], NULL, replica_batchnorm, &runs[k]);
    for (int k = 0; k < 2; k++) pthread_join(threads[k], NULL);
    pthread_barrier_destroy(&shared.barrier);
    double err = 0.0;
    for (long i = 0; i < n; i++) err = worse(err, rel_err(ry[i], y[i]));
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < C; c++) {
            err = worse(err, rel_err(runs[k].mean[c], mean[c]));
            err = worse(err, rel_err(runs[k].inv_std[c], inv_std[c]));
            err = worse(err, rel_err(runs[k].running_mean[c], rm[c]));
            err = worse(err, rel_err(runs[k].running_var[c], rv[c]));
        }
    record(rep, "batchnorm 2 replicas 2+3x3x7", "forward + stats", "vs whole", err, FWD_TOL);
    err = 0.0;
    for (long i = 0; i < n; i++) err = worse(err, rel_err(rdx[i], dx[i]));
    for (int c = 0; c < C; c++) {
        err = worse(err, rel_err(runs[0].dgamma[c] + runs[1].dgamma[c], dgamma[c]));
        err = worse(err, rel_err(runs[0].dbeta[c] + runs[1].dbeta[c], dbeta[c]));
    }
    record(rep, "batchnorm 2 replicas 2+3x3x7", "d_in, sum d_gamma/beta", "vs whole", err, FWD_TOL);
    pool_free(&pool);
}

static void test_batchnorm_infer_fold(Report *rep) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 510);
    Conv2dShape cs = {.batch = 2, .in_channels = 3, .in_height = 5, .in_width = 4,
                      .out_channels = 4, .kernel = 3, .stride = 1, .padding = 1};
    int C = cs.out_channels;
    BatchNormShape bs = {.batch = cs.batch, .channels = C,
                         .spatial = conv2d_out_height(&cs) * conv2d_out_width(&cs),
                         .eps = 1e-5f, .momentum = 0.1f};
    long nx = (long)cs.batch * cs.in_channels * cs.in_height * cs.in_width;
    long per_channel = (long)cs.in_channels * cs.kernel * cs.kernel, nw = C * per_channel;
    long ny = (long)bs.batch * C * bs.spatial;
    float *x = pool_normal(&pool, &rng, nx, 1.0f);
    float *w = pool_normal(&pool, &rng, nw, 0.5f);
    float *b = pool_normal(&pool, &rng, C, 0.5f);
    float *gamma = pool_normal(&pool, &rng, C, 0.5f), *beta = pool_normal(&pool, &rng, C, 0.5f);
    float *rmean = pool_normal(&pool, &rng, C, 0.5f), *rvar = pool_floats(&pool, C);
    for (int i = 0; i < C; i++) {
        gamma[i] += 1.0f;
        rvar[i] = 0.5f + rng_uniform(&rng);
    }
    float *ws = pool_floats(&pool, (long)conv2d_workspace_floats(&cs));
    float *conv_out = pool_floats(&pool, ny), *y_bn = pool_floats(&pool, ny);
    float *y_fold = pool_floats(&pool, ny);
    float *fw = pool_floats(&pool, nw), *fb = pool_floats(&pool, C);

    /* Inference against double. */
    conv2d_forward(conv_out, x, w, b, &cs, ws);
    batchnorm_forward_infer(y_bn, conv_out, gamma, beta, rmean, rvar, &bs);
    double *ref = pool_doubles(&pool, ny);
    for (int n = 0; n < bs.batch; n++)
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < bs.spatial; i++) {
                long at = ((long)n * C + ch) * bs.spatial + i;
                ref[at] = (conv_out[at] - (double)rmean[ch]) / sqrt((double)rvar[ch] + bs.eps) *
                              gamma[ch] + beta[ch];
            }
    record(rep, "batchnorm infer 2x4x20", "forward", "vs f64", max_rel_fd(y_bn, ref, ny), FWD_TOL);

    /* Folded convolution equals convolution then inference batch norm. */
    batchnorm_fold_into_conv(fw, fb, w, b, gamma, beta, rmean, rvar, C, per_channel, bs.eps);
    conv2d_forward(y_fold, x, fw, fb, &cs, ws);
    record(rep, "batchnorm fold into conv", "folded conv+bias", "vs conv+bn",
           max_rel_ff(y_fold, y_bn, ny), FWD_TOL);
    conv2d_forward(conv_out, x, w, NULL, &cs, ws);
    batchnorm_forward_infer(y_bn, conv_out, gamma, beta, rmean, rvar, &bs);
    batchnorm_fold_into_conv(fw, fb, w, NULL, gamma, beta, rmean, rvar, C, per_channel, bs.eps);
    conv2d_forward(y_fold, x, fw, fb, &cs, ws);
    record(rep, "batchnorm fold into conv", "folded, NULL bias", "vs conv+bn",
           max_rel_ff(y_fold, y_bn, ny), FWD_TOL);
    pool_free(&pool);
}

/* ------------------------------------------------------------------------ */
/* embedding */

typedef struct {
    int rows, dim, vocab;
    const int *tokens;
    float *table, *y, *r, *dtable;
} EmbCtx;

static double emb_loss(void *p) {
    EmbCtx *c = p;
    embedding_forward(c->y, c->tokens, c->table, c->rows, c->dim);
    return dot_double(c->y, c->r, (long)c->rows * c->dim);
}

static void emb_back(void *p) {
    EmbCtx *c = p;
    embedding_backward(c->dtable, c->r, c->tokens, c->rows, c->dim);
}

static void test_embedding(Report *rep) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 600);
    static const int tokens[6] = {2, 5, 2, 0, 6, 2}; /* repeats accumulate; 1, 3, 4 unused */
    EmbCtx c = {.rows = 6, .dim = 3, .vocab = 7, .tokens = tokens};
    long nt = (long)c.vocab * c.dim, ny = (long)c.rows * c.dim;
    c.table = pool_normal(&pool, &rng, nt, 1.0f);
    c.y = pool_floats(&pool, ny);
    c.r = pool_normal(&pool, &rng, ny, 1.0f);
    c.dtable = pool_floats(&pool, nt);
    Check chk = {.layer = "embedding 7x3, 6 tokens", .loss = emb_loss, .backward = emb_back,
                 .ctx = &c, .eps = 1e-2f};
    add_param(&chk, "d_table", c.table, c.dtable, nt);
    check_gradients(rep, &chk);
    pool_free(&pool);
}

/* ------------------------------------------------------------------------ */
/* LSTM: one step */

static double sigmoid_d(double x) { return 1.0 / (1.0 + exp(-x)); }

static void lstm_reference(double *h, double *c, const double *x, const double *h_prev,
                           const double *c_prev, const float *w_ih, const float *w_hh,
                           const float *bias, const LstmShape *s) {
    int H = s->hidden, I = s->input;
    for (int b = 0; b < s->batch; b++)
        for (int j = 0; j < H; j++) {
            double pre[4];
            for (int k = 0; k < 4; k++) {
                int row = k * H + j;
                double sum = bias[row];
                for (int i = 0; i < I; i++) sum += x[(long)b * I + i] * w_ih[(long)row * I + i];
                for (int i = 0; i < H; i++)
                    sum += h_prev[(long)b * H + i] * w_hh[(long)row * H + i];
                pre[k] = sum;
            }
            double cell = sigmoid_d(pre[1]) * c_prev[(long)b * H + j] +
                          sigmoid_d(pre[0]) * tanh(pre[2]);
            c[(long)b * H + j] = cell;
            h[(long)b * H + j] = sigmoid_d(pre[3]) * tanh(cell);
        }
}

typedef struct {
    LstmShape s;
    int steps;
    long nx, nh, nwih, nwhh, ng;
    float *x, *h0, *c0, *wih, *whh, *bias, *h, *c, *gates, *rh, *rc, *ws;
    float *dx, *dh0, *dc0, *dwih, *dwhh, *dbias;
    double *xd, *hd, *cd; /* reference: x of every step; h, c [steps + 1][batch * hidden] */
} LstmCtx;

/* L = sum_t h_t . R_t + c_T . Rc in double, for 1 or more steps. */
static double lstm_loss_ref(void *p) {
    LstmCtx *c = p;
    to_double(c->xd, c->x, c->nx * c->steps);
    to_double(c->hd, c->h0, c->nh);
    to_double(c->cd, c->c0, c->nh);
    double loss = 0.0;
    for (int t = 0; t < c->steps; t++) {
        double *h_prev = c->hd + t * c->nh, *c_prev = c->cd + t * c->nh;
        lstm_reference(h_prev + c->nh, c_prev + c->nh, c->xd + t * c->nx, h_prev, c_prev, c->wih,
                       c->whh, c->bias, &c->s);
        loss += dot_df(h_prev + c->nh, c->rh + t * c->nh, c->nh);
    }
    return loss + dot_df(c->cd + c->steps * c->nh, c->rc, c->nh);
}

static double lstm_loss(void *p) {
    LstmCtx *c = p;
    lstm_cell_forward(c->h, c->c, c->gates, c->x, c->h0, c->c0, c->wih, c->whh, c->bias, &c->s);
    return dot_double(c->h, c->rh, c->nh) + dot_double(c->c, c->rc, c->nh);
}

static void lstm_back(void *p) {
    LstmCtx *c = p;
    lstm_cell_backward(c->dx, c->dh0, c->dc0, c->dwih, c->dwhh, c->dbias, c->rh, c->rc, c->gates,
                       c->c, c->x, c->h0, c->c0, c->wih, c->whh, &c->s, c->ws);
}

static void lstm_alloc(LstmCtx *c, Pool *pool, Rng *rng, int steps) {
    const LstmShape *s = &c->s;
    c->steps = steps;
    c->nx = (long)s->batch * s->input;
    c->nh = (long)s->batch * s->hidden;
    c->nwih = 4L * s->hidden * s->input;
    c->nwhh = 4L * s->hidden * s->hidden;
    c->ng = 4L * s->batch * s->hidden;
    c->x = pool_normal(pool, rng, c->nx * steps, 1.0f);
    c->h0 = pool_normal(pool, rng, c->nh, 0.5f);
    c->c0 = pool_normal(pool, rng, c->nh, 0.5f);
    c->wih = pool_normal(pool, rng, c->nwih, 0.5f);
    c->whh = pool_normal(pool, rng, c->nwhh, 0.5f);
    c->bias = pool_normal(pool, rng, 4L * s->hidden, 0.3f);
    c->h = pool_floats(pool, c->nh * steps);
    c->c = pool_floats(pool, c->nh * steps);
    c->gates = pool_floats(pool, c->ng * steps);
    c->rh = pool_normal(pool, rng, c->nh * steps, 1.0f);
    c->rc = pool_normal(pool, rng, c->nh, 1.0f);
    c->ws = pool_floats(pool, c->ng);
    c->dx = pool_floats(pool, c->nx * steps);
    c->dh0 = pool_floats(pool, c->nh);
    c->dc0 = pool_floats(pool, c->nh);
    c->dwih = pool_floats(pool, c->nwih);
    c->dwhh = pool_floats(pool, c->nwhh);
    c->dbias = pool_floats(pool, 4L * s->hidden);
    c->xd = pool_doubles(pool, c->nx * steps);
    c->hd = pool_doubles(pool, c->nh * (steps + 1));
    c->cd = pool_doubles(pool, c->nh * (steps + 1));
}

static void lstm_add_params(Check *chk, LstmCtx *c, int steps) {
    add_param(chk, "d_x", c->x, c->dx, c->nx * steps);
    add_param(chk, "d_h_prev", c->h0, c->dh0, c->nh);
    add_param(chk, "d_c_prev", c->c0, c->dc0, c->nh);
    add_param(chk, "d_w_ih", c->wih, c->dwih, c->nwih);
    add_param(chk, "d_w_hh", c->whh, c->dwhh, c->nwhh);
    add_param(chk, "d_bias", c->bias, c->dbias, 4L * c->s.hidden);
}

static void test_lstm_step(Report *rep) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 700);
    LstmCtx c = {.s = {.batch = 2, .input = 3, .hidden = 4}};
    lstm_alloc(&c, &pool, &rng, 1);
    lstm_loss(&c);
    lstm_loss_ref(&c);
    record(rep, "lstm cell b2 i3 h4", "forward", "vs f64",
           worse(max_rel_fd(c.h, c.hd + c.nh, c.nh), max_rel_fd(c.c, c.cd + c.nh, c.nh)), FWD_TOL);
    Check chk = {.layer = "lstm cell b2 i3 h4", .loss = lstm_loss, .loss_ref = lstm_loss_ref,
                 .backward = lstm_back, .ctx = &c, .eps = 1e-2f};
    lstm_add_params(&chk, &c, 1);
    check_gradients(rep, &chk);
    pool_free(&pool);
}

/* LSTM: 4 steps, h and c flowing from step to step, L = sum_t h_t . R_t + c_T . Rc. */

enum { LSTM_STEPS = 4 };

typedef struct {
    LstmCtx cell;
    float *hs, *cs; /* [steps + 1][batch * hidden]: slot 0 holds h0 / c0 */
    float *dh, *dc; /* BPTT scratch, same layout */
} LstmChainCtx;

static double lstm_chain_loss(void *p) {
    LstmChainCtx *k = p;
    LstmCtx *c = &k->cell;
    memcpy(k->hs, c->h0, sizeof(float) * (size_t)c->nh);
    memcpy(k->cs, c->c0, sizeof(float) * (size_t)c->nh);
    double loss = 0.0;
    for (int t = 0; t < LSTM_STEPS; t++) {
        float *h_prev = k->hs + t * c->nh, *c_prev = k->cs + t * c->nh;
        float *h = h_prev + c->nh, *cell = c_prev + c->nh;
        lstm_cell_forward(h, cell, c->gates + t * c->ng, c->x + t * c->nx, h_prev, c_prev, c->wih,
                          c->whh, c->bias, &c->s);
        loss += dot_double(h, c->rh + t * c->nh, c->nh);
    }
    return loss + dot_double(k->cs + LSTM_STEPS * c->nh, c->rc, c->nh);
}

static void lstm_chain_back(void *p) {
    LstmChainCtx *k = p;
    LstmCtx *c = &k->cell;
    size_t bytes = sizeof(float) * (size_t)c->nh * (LSTM_STEPS + 1);
    memset(k->dh, 0, bytes);
    memset(k->dc, 0, bytes);
    for (int t = 1; t <= LSTM_STEPS; t++)
        memcpy(k->dh + t * c->nh, c->rh + (t - 1) * c->nh, sizeof(float) * (size_t)c->nh);
    memcpy(k->dc + LSTM_STEPS * c->nh, c->rc, sizeof(float) * (size_t)c->nh);
    /* Back through time: each step adds its d_h_prev, d_c_prev to the step before. */
    for (int t = LSTM_STEPS; t >= 1; t--) {
        long cur = t * c->nh, prev = (t - 1) * c->nh;
        lstm_cell_backward(c->dx + (t - 1) * c->nx, k->dh + prev, k->dc + prev, c->dwih, c->dwhh,
                           c->dbias, k->dh + cur, k->dc + cur, c->gates + (t - 1) * c->ng,
                           k->cs + cur, c->x + (t - 1) * c->nx, k->hs + prev, k->cs + prev,
                           c->wih, c->whh, &c->s, c->ws);
    }
    for (long i = 0; i < c->nh; i++) {
        c->dh0[i] += k->dh[i];
        c->dc0[i] += k->dc[i];
    }
}

static double lstm_chain_loss_ref(void *p) {
    LstmChainCtx *k = p;
    return lstm_loss_ref(&k->cell);
}

static void test_lstm_chain(Report *rep) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 710);
    LstmChainCtx k = {.cell = {.s = {.batch = 2, .input = 3, .hidden = 4}}};
    lstm_alloc(&k.cell, &pool, &rng, LSTM_STEPS);
    long slots = k.cell.nh * (LSTM_STEPS + 1);
    k.hs = pool_floats(&pool, slots);
    k.cs = pool_floats(&pool, slots);
    k.dh = pool_floats(&pool, slots);
    k.dc = pool_floats(&pool, slots);
    const char *label = "lstm 4-step BPTT b2 i3 h4";
    record(rep, label, "loss", "vs f64", rel_err(lstm_chain_loss(&k), lstm_chain_loss_ref(&k)),
           FWD_TOL);
    Check chk = {.layer = label, .loss = lstm_chain_loss, .loss_ref = lstm_chain_loss_ref,
                 .backward = lstm_chain_back, .ctx = &k, .eps = 1e-2f};
    lstm_add_params(&chk, &k.cell, LSTM_STEPS);
    check_gradients(rep, &chk);
    pool_free(&pool);
}

/* ------------------------------------------------------------------------ */
/* dropout */

typedef struct {
    long n;
    float p;
    uint64_t seed;
    float *x, *y, *mask, *r, *dx;
} DropCtx;

static double dropout_loss(void *p) {
    DropCtx *c = p;
    Rng rng; /* reseeded every call: the same mask each time */
    rng_seed(&rng, c->seed);
    dropout_forward(c->y, c->mask, c->x, c->n, c->p, &rng);
    return dot_double(c->y, c->r, c->n);
}

static void dropout_back(void *p) {
    DropCtx *c = p;
    dropout_backward(c->dx, c->r, c->mask, c->n);
}

static void test_dropout(Report *rep) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 800);
    DropCtx c = {.n = 40, .p = 0.3f, .seed = 801};
    c.x = pool_normal(&pool, &rng, c.n, 1.0f);
    c.y = pool_floats(&pool, c.n);
    c.mask = pool_floats(&pool, c.n);
    c.r = pool_normal(&pool, &rng, c.n, 1.0f);
    c.dx = pool_floats(&pool, c.n);
    dropout_loss(&c);
    int zeros = 0, ok = 1;
    float keep = 1.0f / (1.0f - c.p);
    for (long i = 0; i < c.n; i++) {
        zeros += c.mask[i] == 0.0f;
        ok &= (c.mask[i] == 0.0f || c.mask[i] == keep) && c.y[i] == c.x[i] * c.mask[i];
    }
    record_bool(rep, "dropout p=0.3 n=40", "mask 0 or 1/(1-p)", ok && zeros > 0 && zeros < c.n);
    Check chk = {.layer = "dropout p=0.3 n=40", .loss = dropout_loss, .backward = dropout_back,
                 .ctx = &c, .eps = 1e-2f};
    add_param(&chk, "d_in", c.x, c.dx, c.n);
    check_gradients(rep, &chk);

    /* p = 0 copies. */
    c.p = 0.0f;
    dropout_loss(&c);
    ok = 1;
    for (long i = 0; i < c.n; i++) ok &= c.y[i] == c.x[i] && c.mask[i] == 1.0f;
    record_bool(rep, "dropout p=0", "identity", ok);
    pool_free(&pool);
}

/* ------------------------------------------------------------------------ */
/* softmax */

typedef struct {
    int rows, cols;
    float *x, *y, *r, *dx;
} SoftmaxCtx;

static double softmax_loss(void *p) {
    SoftmaxCtx *c = p;
    softmax_forward(c->y, c->x, c->rows, c->cols);
    return dot_double(c->y, c->r, (long)c->rows * c->cols);
}

static void softmax_back(void *p) {
    SoftmaxCtx *c = p;
    softmax_backward(c->dx, c->r, c->y, c->rows, c->cols);
}

static void test_softmax(Report *rep) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 900);
    SoftmaxCtx c = {.rows = 3, .cols = 6};
    long n = (long)c.rows * c.cols;
    c.x = pool_normal(&pool, &rng, n, 1.5f);
    c.y = pool_floats(&pool, n);
    c.r = pool_normal(&pool, &rng, n, 1.0f);
    c.dx = pool_floats(&pool, n);
    Check chk = {.layer = "softmax 3x6", .loss = softmax_loss, .backward = softmax_back,
                 .ctx = &c, .eps = 1e-2f};
    add_param(&chk, "d_in", c.x, c.dx, n);
    check_gradients(rep, &chk);

    /* By hand: softmax(0, ln 2, ln 3) = (1, 2, 3) / 6, also shifted by 1000
     * (max subtraction) and in place; log_softmax = log of it. */
    float v[6] = {0.0f, logf(2.0f), logf(3.0f), 1000.0f, 1000.0f + logf(2.0f),
                  1000.0f + logf(3.0f)};
    float logv[6];
    log_softmax_forward(logv, v, 2, 3);
    softmax_forward(v, v, 2, 3);
    const double expect[6] = {1.0 / 6, 2.0 / 6, 3.0 / 6, 1.0 / 6, 2.0 / 6, 3.0 / 6};
    double log_expect[6];
    for (int i = 0; i < 6; i++) log_expect[i] = log(expect[i]);
    record(rep, "softmax 2x3", "forward", "vs hand", max_rel_fd(v, expect, 6), FWD_TOL);
    /* The shifted row has inputs rounded to float at 1000 (ulp 6e-5). */
    record(rep, "log_softmax 2x3", "forward", "vs hand", max_rel_fd(logv, log_expect, 6), 1e-3);
    pool_free(&pool);
}

/* ------------------------------------------------------------------------ */
/* cross entropy */

typedef struct {
    int rows, classes, ignore_index;
    float smoothing, d_loss;
    const int *targets;
    const float *weights; /* NULL: unweighted */
    float *logits, *probs, *dlogits;
} CeCtx;

static double ce_loss(void *p) {
    CeCtx *c = p;
    return c->d_loss * (double)cross_entropy_forward(c->probs, c->logits, c->targets, c->weights,
                                                     c->rows, c->classes, c->ignore_index,
                                                     c->smoothing, NULL);
}

static void ce_back(void *p) {
    CeCtx *c = p;
    cross_entropy_backward(c->dlogits, c->probs, c->targets, c->weights, c->rows, c->classes,
                           c->ignore_index, c->smoothing, c->d_loss);
}

static double ce_reference(const float *logits, const int *targets, const float *weights, int rows,
                           int classes, int ignore, double smoothing) {
    double total = 0.0;
    int valid = 0;
    for (int r = 0; r < rows; r++) {
        if (targets[r] == ignore) continue;
        const float *x = logits + (long)r * classes;
        double sum = 0.0;
        for (int k = 0; k < classes; k++) sum += exp((double)x[k]);
        double lse = log(sum), mean = 0.0;
        for (int k = 0; k < classes; k++) mean += lse - x[k];
        mean /= classes;
        double weight = weights ? weights[r] : 1.0;
        total += weight * ((1.0 - smoothing) * (lse - x[targets[r]]) + smoothing * mean);
        valid++;
    }
    return valid ? total / valid : 0.0;
}

static double ce_loss_ref(void *p) {
    CeCtx *c = p;
    return c->d_loss * ce_reference(c->logits, c->targets, c->weights, c->rows, c->classes,
                                    c->ignore_index, c->smoothing);
}

static void test_cross_entropy(Report *rep) {
    static const int targets[6] = {3, 0, 1, 4, 0, 2}; /* 0 is <pad>: rows 1 and 4 ignored */
    static const int all_pad[2] = {0, 0};
    /* Self-critical advantages: of either sign, one zero, one on an ignored row. */
    static const float advantages[6] = {0.7f, 5.0f, -1.3f, 0.0f, 2.0f, 0.25f};
    const float smoothings[3] = {0.0f, 0.1f, 0.0f};
    for (int k = 0; k < 3; k++) {
        Pool pool = {0};
        Rng rng;
        rng_seed(&rng, 1000 + k);
        CeCtx c = {.rows = 6, .classes = 5, .ignore_index = 0, .smoothing = smoothings[k],
                   .d_loss = 1.5f, .targets = targets, .weights = k == 2 ? advantages : NULL};
        long n = (long)c.rows * c.classes;
        c.logits = pool_normal(&pool, &rng, n, 1.5f);
        c.probs = pool_floats(&pool, n);
        c.dlogits = pool_floats(&pool, n);
        char label[LABEL_MAX];
        snprintf(label, sizeof label, "cross_entropy 6x5 ls=%.1f%s", (double)c.smoothing,
                 c.weights ? " weighted" : "");
        int valid = -1;
        float loss = cross_entropy_forward(c.probs, c.logits, c.targets, c.weights, c.rows,
                                           c.classes, c.ignore_index, c.smoothing, &valid);
        double ref = ce_reference(c.logits, c.targets, c.weights, c.rows, c.classes,
                                  c.ignore_index, c.smoothing);
        record(rep, label, "loss", "vs f64", valid == 4 ? rel_err(loss, ref) : INFINITY, FWD_TOL);
        Check chk = {.layer = label, .loss = ce_loss, .loss_ref = ce_loss_ref,
                     .backward = ce_back, .ctx = &c, .eps = 1e-2f};
        add_param(&chk, "d_logits", c.logits, c.dlogits, n);
        check_gradients(rep, &chk);

        /* Every row ignored: loss 0, no gradient. */
        memset(c.dlogits, 0, sizeof(float) * (size_t)n);
        loss = cross_entropy_forward(c.probs, c.logits, all_pad, c.weights, 2, c.classes, 0,
                                     c.smoothing, &valid);
        cross_entropy_backward(c.dlogits, c.probs, all_pad, c.weights, 2, c.classes, 0, c.smoothing,
                               1.0f);
        int ok = loss == 0.0f && valid == 0;
        for (long i = 0; i < n; i++) ok &= c.dlogits[i] == 0.0f;
        record_bool(rep, label, "all rows ignored", ok);
        pool_free(&pool);
    }
}

/* ------------------------------------------------------------------------ */
/* binary cross entropy with logits */

typedef struct {
    int rows, classes;
    float d_loss;
    const float *targets;
    const unsigned char *mask;
    float *logits, *probs, *dlogits;
} BceCtx;

static double bce_loss(void *p) {
    BceCtx *c = p;
    return c->d_loss * (double)binary_cross_entropy_forward(c->probs, c->logits, c->targets, c->mask,
                                                            c->rows, c->classes);
}

static void bce_back(void *p) {
    BceCtx *c = p;
    binary_cross_entropy_backward(c->dlogits, c->probs, c->targets, c->mask, c->rows, c->classes,
                                  c->d_loss);
}

/* The textbook form, -t log s - (1 - t) log(1 - s): not the stable one the
 * layer uses, so the two are independent (fine for moderate logits). */
static double bce_reference(const float *logits, const float *targets, const unsigned char *mask,
                            int rows, int classes) {
    double total = 0.0;
    int counted = 0;
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < classes; k++) {
            if (mask && !mask[k]) continue;
            double s = 1.0 / (1.0 + exp(-(double)logits[r * classes + k])), t = targets[r * classes + k];
            total += -t * log(s) - (1.0 - t) * log(1.0 - s);
            counted++;
        }
    return counted ? total / counted : 0.0;
}

static double bce_loss_ref(void *p) {
    BceCtx *c = p;
    return c->d_loss * bce_reference(c->logits, c->targets, c->mask, c->rows, c->classes);
}

/* Logits of +-40, where the textbook form takes log(0): the loss is |a| for a
 * wrong sign and ~0 for a right one, the gradient (s - t) / count. Then every
 * column masked: loss 0, no gradient. */
static void test_bce_extremes(Report *rep) {
    const float logits[4] = {40.0f, -40.0f, 40.0f, -40.0f}, targets[4] = {0.0f, 1.0f, 1.0f, 0.0f};
    const double expect_grad[4] = {0.25, -0.25, 0.0, 0.0};
    const unsigned char none[4] = {0, 0, 0, 0};
    float probs[4], d[4] = {0};
    float loss = binary_cross_entropy_forward(probs, logits, targets, NULL, 1, 4);
    binary_cross_entropy_backward(d, probs, targets, NULL, 1, 4, 1.0f);
    double err = worse(rel_err(loss, 20.0), max_rel_fd(d, expect_grad, 4));
    record(rep, "binary_cross_entropy +-40", "loss, d_logits", "vs hand", err, EXACT_TOL);
    memset(d, 0, sizeof d);
    loss = binary_cross_entropy_forward(probs, logits, targets, none, 1, 4);
    binary_cross_entropy_backward(d, probs, targets, none, 1, 4, 1.0f);
    record_bool(rep, "binary_cross_entropy", "all masked",
                loss == 0.0f && d[0] == 0.0f && d[1] == 0.0f && d[2] == 0.0f && d[3] == 0.0f);
}

static void test_binary_cross_entropy(Report *rep) {
    /* Columns 0 and 1 masked out (as the model masks its special tokens). */
    static const unsigned char mask[6] = {0, 1, 0, 1, 1, 1};
    const unsigned char *masks[2] = {NULL, mask};
    for (int k = 0; k < 2; k++) {
        Pool pool = {0};
        Rng rng;
        rng_seed(&rng, 1100 + k);
        BceCtx c = {.rows = 4, .classes = 6, .d_loss = 1.5f, .mask = masks[k]};
        long n = (long)c.rows * c.classes;
        c.logits = pool_normal(&pool, &rng, n, 2.0f);
        c.probs = pool_floats(&pool, n);
        c.dlogits = pool_floats(&pool, n);
        float *targets = pool_floats(&pool, n);
        for (long i = 0; i < n; i++) targets[i] = rng_normal(&rng) > 0.3f ? 1.0f : 0.0f;
        targets[5] = 0.3f; /* soft targets are allowed too */
        c.targets = targets;
        char label[LABEL_MAX];
        snprintf(label, sizeof label, "binary_cross_entropy 4x6%s", k ? " mask" : "");
        float loss = binary_cross_entropy_forward(c.probs, c.logits, c.targets, c.mask, c.rows, c.classes);
        double ref = bce_reference(c.logits, c.targets, c.mask, c.rows, c.classes);
        record(rep, label, "loss", "vs f64", rel_err(loss, ref), FWD_TOL);
        Check chk = {.layer = label, .loss = bce_loss, .loss_ref = bce_loss_ref,
                     .backward = bce_back, .ctx = &c, .eps = 1e-2f};
        add_param(&chk, "d_logits", c.logits, c.dlogits, n);
        check_gradients(rep, &chk);
        pool_free(&pool);
    }
    test_bce_extremes(rep);
}

/* ------------------------------------------------------------------------ */
/* attention */

/* The score of one vector against h, in double, from the formulas in attention.h. */
static double score_reference(const double *hb, const double *zi, const AttentionParams *p, const AttentionShape *s) {
    int D = s->features, H = s->hidden, A = s->attention;
    double e = 0.0;
    if (s->score == ATTENTION_ADDITIVE) {
        for (int a = 0; a < A; a++) {
            double pre = p->feature_bias[a];
            for (int d = 0; d < D; d++) pre += p->feature_weight[(long)a * D + d] * zi[d];
            for (int k = 0; k < H; k++) pre += p->query_weight[(long)a * H + k] * hb[k];
            e += p->score_vector[a] * tanh(pre);
        }
    } else if (s->score == ATTENTION_DOT) {
        for (int d = 0; d < D; d++) {
            double q = 0.0;
            for (int k = 0; k < H; k++) q += p->query_weight[(long)d * H + k] * hb[k];
            e += q * zi[d];
        }
        e /= sqrt((double)D);
    } else {
        for (int k = 0; k < H; k++)
            for (int d = 0; d < D; d++) e += hb[k] * p->query_weight[(long)k * D + d] * zi[d];
    }
    return e;
}

/* Alpha and context in double; lse (may be NULL) gets log sum_i exp(e_i). */
static void attention_reference_lse(double *alpha, double *context, double *lse, const double *h, const double *z,
                                    const AttentionParams *p, const AttentionShape *s) {
    int L = s->cells, D = s->features, H = s->hidden;
    for (int b = 0; b < s->batch; b++) {
        double *al = alpha + (long)b * L, max = -INFINITY;
        for (int i = 0; i < L; i++) {
            al[i] = score_reference(h + (long)b * H, z + ((long)b * L + i) * D, p, s);
            if (al[i] > max) max = al[i];
        }
        double sum = 0.0;
        for (int i = 0; i < L; i++) sum += al[i] = exp(al[i] - max);
        for (int i = 0; i < L; i++) al[i] /= sum;
        if (lse) lse[b] = max + log(sum);
        for (int d = 0; d < D; d++) {
            double acc = 0.0;
            for (int i = 0; i < L; i++) acc += al[i] * z[((long)b * L + i) * D + d];
            context[(long)b * D + d] = acc;
        }
    }
}

static void attention_reference(double *alpha, double *context, const double *h, const double *z,
                                const AttentionParams *p, const AttentionShape *s) {
    attention_reference_lse(alpha, context, NULL, h, z, p, s);
}

typedef struct {
    AttentionShape s;
    AttentionParams p, g;
    long nh, nz, nalpha, nctx, nproj;
    float *h, *z, *proj, *alpha, *context, *cache, *ws, *r_ctx, *r_alpha, *dh, *dz, *dproj;
    double *hd, *zd, *alpha_d, *ctx_d; /* reference */
} AttnCtx;

static void attn_params_alloc(AttentionParams *p, AttentionParams *g, Pool *pool, Rng *rng,
                              const AttentionShape *s) {
    long D = s->features, H = s->hidden, A = s->attention;
    *p = (AttentionParams){0};
    *g = (AttentionParams){0};
    if (s->score == ATTENTION_ADDITIVE) {
        p->feature_weight = pool_normal(pool, rng, A * D, 0.5f);
        p->feature_bias = pool_normal(pool, rng, A, 0.3f);
        p->query_weight = pool_normal(pool, rng, A * H, 0.5f);
        p->score_vector = pool_normal(pool, rng, A, 1.0f);
        g->feature_weight = pool_floats(pool, A * D);
        g->feature_bias = pool_floats(pool, A);
        g->query_weight = pool_floats(pool, A * H);
        g->score_vector = pool_floats(pool, A);
    } else {
        p->query_weight = pool_normal(pool, rng, D * H, 0.6f);
        g->query_weight = pool_floats(pool, D * H);
    }
}

static void attn_add_params(Check *chk, AttentionParams *p, AttentionParams *g,
                            const AttentionShape *s) {
    long D = s->features, H = s->hidden, A = s->attention;
    if (s->score == ATTENTION_ADDITIVE) {
        add_param(chk, "d_feature_weight", p->feature_weight, g->feature_weight, A * D);
        add_param(chk, "d_feature_bias", p->feature_bias, g->feature_bias, A);
        add_param(chk, "d_query_weight", p->query_weight, g->query_weight, A * H);
        add_param(chk, "d_score_vector", p->score_vector, g->score_vector, A);
    } else {
        add_param(chk, "d_query_weight", p->query_weight, g->query_weight, D * H);
    }
}

static double attn_loss(void *ptr) {
    AttnCtx *c = ptr;
    attention_precompute_forward(c->proj, c->z, &c->p, &c->s);
    attention_step_forward(c->alpha, c->context, c->cache, c->h, c->z, c->proj, &c->p, &c->s);
    double loss = dot_double(c->context, c->r_ctx, c->nctx);
    if (c->r_alpha) loss += dot_double(c->alpha, c->r_alpha, c->nalpha);
    return loss;
}

static double attn_loss_ref(void *ptr) {
    AttnCtx *c = ptr;
    to_double(c->hd, c->h, c->nh);
    to_double(c->zd, c->z, c->nz);
    attention_reference(c->alpha_d, c->ctx_d, c->hd, c->zd, &c->p, &c->s);
    double loss = dot_df(c->ctx_d, c->r_ctx, c->nctx);
    if (c->r_alpha) loss += dot_df(c->alpha_d, c->r_alpha, c->nalpha);
    return loss;
}

static void attn_back(void *ptr) {
    AttnCtx *c = ptr;
    memset(c->dproj, 0, sizeof(float) * (size_t)(c->nproj > 0 ? c->nproj : 1));
    attention_step_backward(c->dh, c->dz, c->dproj, &c->g, c->r_ctx, c->r_alpha, NULL, c->alpha,
                            c->cache, c->h, c->z, &c->p, &c->s, c->ws);
    attention_precompute_backward(c->dz, &c->g, c->dproj, c->z, &c->p, &c->s);
}

static void test_attention_score(Report *rep, AttentionScore score, int with_alpha) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 1100 + 10 * (unsigned)score + (unsigned)with_alpha);
    AttnCtx c = {.s = {.score = score, .batch = 2, .cells = 5, .features = 4, .hidden = 3,
                       .attention = 6}};
    const AttentionShape *s = &c.s;
    c.nh = (long)s->batch * s->hidden;
    c.nz = (long)s->batch * s->cells * s->features;
    c.nalpha = (long)s->batch * s->cells;
    c.nctx = (long)s->batch * s->features;
    c.nproj = (long)attention_projection_floats(s);
    c.h = pool_normal(&pool, &rng, c.nh, 1.0f);
    c.z = pool_normal(&pool, &rng, c.nz, 1.0f);
    attn_params_alloc(&c.p, &c.g, &pool, &rng, s);
    c.proj = pool_floats(&pool, c.nproj);
    c.dproj = pool_floats(&pool, c.nproj);
    c.alpha = pool_floats(&pool, c.nalpha);
    c.context = pool_floats(&pool, c.nctx);
    c.cache = pool_floats(&pool, (long)attention_cache_floats(s));
    c.ws = pool_floats(&pool, (long)attention_workspace_floats(s));
    c.r_ctx = pool_normal(&pool, &rng, c.nctx, 1.0f);
    c.r_alpha = with_alpha ? pool_normal(&pool, &rng, c.nalpha, 1.0f) : NULL;
    c.dh = pool_floats(&pool, c.nh);
    c.dz = pool_floats(&pool, c.nz);
    c.hd = pool_doubles(&pool, c.nh);
    c.zd = pool_doubles(&pool, c.nz);
    c.alpha_d = pool_doubles(&pool, c.nalpha);
    c.ctx_d = pool_doubles(&pool, c.nctx);
    char label[LABEL_MAX];
    snprintf(label, sizeof label, "attention %s%s", attention_score_name(score),
             with_alpha ? " +d_alpha" : "");

    if (!with_alpha) {
        attn_loss(&c);
        attn_loss_ref(&c);
        record(rep, label, "alpha, context", "vs f64",
               worse(max_rel_fd(c.alpha, c.alpha_d, c.nalpha),
                     max_rel_fd(c.context, c.ctx_d, c.nctx)),
               FWD_TOL);
    }
    Check chk = {.layer = label, .loss = attn_loss, .loss_ref = attn_loss_ref,
                 .backward = attn_back, .ctx = &c, .eps = 1e-2f};
    add_param(&chk, "d_h", c.h, c.dh, c.nh);
    add_param(&chk, "d_z", c.z, c.dz, c.nz);
    attn_add_params(&chk, &c.p, &c.g, s);
    check_gradients(rep, &chk);
    pool_free(&pool);
}

/* Attention + LSTM, 3 steps, as the decoder runs it:
 *   alpha_t, ctx_t = attention(h_{t-1}, z);  x_t = [emb_t, ctx_t]
 *   h_t, c_t = lstm(x_t, h_{t-1}, c_{t-1})
 *   L = sum_t h_t . R_t + alpha_t . Ra_t */

enum { CHAIN_STEPS = 3 };

typedef struct {
    AttentionShape as;
    LstmShape ls;
    AttentionParams p, g;
    int E; /* embedding width; lstm input = E + features */
    long nh, nz, nalpha, nctx, nproj, nemb, nx, ng, nwih, nwhh;
    float *emb, *z, *h0, *c0, *wih, *whh, *bias, *proj, *hs, *cs, *xs, *gates, *alphas, *ctxs,
        *caches, *rh, *ralpha, *attn_ws, *lstm_ws;
    long ncache;
    float *demb, *dz, *dh0, *dc0, *dwih, *dwhh, *dbias, *dproj, *dh, *dc, *dx, *dctx;
    double *zd, *hd, *cd, *xd, *alpha_d, *ctx_d; /* reference; hd, cd [steps + 1][batch * hidden] */
} ChainCtx;

static double chain_loss(void *ptr) {
    ChainCtx *c = ptr;
    int B = c->as.batch, D = c->as.features, E = c->E, I = E + D;
    attention_precompute_forward(c->proj, c->z, &c->p, &c->as);
    memcpy(c->hs, c->h0, sizeof(float) * (size_t)c->nh);
    memcpy(c->cs, c->c0, sizeof(float) * (size_t)c->nh);
    double loss = 0.0;
    for (int t = 0; t < CHAIN_STEPS; t++) {
        float *h_prev = c->hs + t * c->nh, *c_prev = c->cs + t * c->nh;
        float *alpha = c->alphas + t * c->nalpha, *ctx = c->ctxs + t * c->nctx;
        float *x = c->xs + t * c->nx;
        attention_step_forward(alpha, ctx, c->caches + t * c->ncache, h_prev, c->z, c->proj,
                               &c->p, &c->as);
        for (int b = 0; b < B; b++) {
            memcpy(x + (long)b * I, c->emb + t * c->nemb + (long)b * E, sizeof(float) * (size_t)E);
            memcpy(x + (long)b * I + E, ctx + (long)b * D, sizeof(float) * (size_t)D);
        }
        lstm_cell_forward(h_prev + c->nh, c_prev + c->nh, c->gates + t * c->ng, x, h_prev, c_prev,
                          c->wih, c->whh, c->bias, &c->ls);
        loss += dot_double(h_prev + c->nh, c->rh + t * c->nh, c->nh);
        loss += dot_double(alpha, c->ralpha + t * c->nalpha, c->nalpha);
    }
    return loss;
}

static double chain_loss_ref(void *ptr) {
    ChainCtx *c = ptr;
    int B = c->as.batch, D = c->as.features, E = c->E, I = E + D;
    to_double(c->zd, c->z, c->nz);
    to_double(c->hd, c->h0, c->nh);
    to_double(c->cd, c->c0, c->nh);
    double loss = 0.0;
    for (int t = 0; t < CHAIN_STEPS; t++) {
        double *h_prev = c->hd + t * c->nh, *c_prev = c->cd + t * c->nh;
        attention_reference(c->alpha_d, c->ctx_d, h_prev, c->zd, &c->p, &c->as);
        for (int b = 0; b < B; b++) {
            to_double(c->xd + (long)b * I, c->emb + t * c->nemb + (long)b * E, E);
            memcpy(c->xd + (long)b * I + E, c->ctx_d + (long)b * D, sizeof(double) * (size_t)D);
        }
        lstm_reference(h_prev + c->nh, c_prev + c->nh, c->xd, h_prev, c_prev, c->wih, c->whh,
                       c->bias, &c->ls);
        loss += dot_df(h_prev + c->nh, c->rh + t * c->nh, c->nh);
        loss += dot_df(c->alpha_d, c->ralpha + t * c->nalpha, c->nalpha);
    }
    return loss;
}

static void chain_back(void *ptr) {
    ChainCtx *c = ptr;
    int B = c->as.batch, D = c->as.features, E = c->E, I = E + D;
    size_t slots = sizeof(float) * (size_t)c->nh * (CHAIN_STEPS + 1);
    memset(c->dh, 0, slots);
    memset(c->dc, 0, slots);
    memset(c->dproj, 0, sizeof(float) * (size_t)(c->nproj > 0 ? c->nproj : 1));
    for (int t = 1; t <= CHAIN_STEPS; t++)
        memcpy(c->dh + t * c->nh, c->rh + (t - 1) * c->nh, sizeof(float) * (size_t)c->nh);
    for (int t = CHAIN_STEPS; t >= 1; t--) {
        long cur = t * c->nh, prev = (t - 1) * c->nh;
        memset(c->dx, 0, sizeof(float) * (size_t)c->nx);
        lstm_cell_backward(c->dx, c->dh + prev, c->dc + prev, c->dwih, c->dwhh, c->dbias,
                           c->dh + cur, c->dc + cur, c->gates + (t - 1) * c->ng, c->cs + cur,
                           c->xs + (t - 1) * c->nx, c->hs + prev, c->cs + prev, c->wih, c->whh,
                           &c->ls, c->lstm_ws);
        for (int b = 0; b < B; b++) {
            float *demb = c->demb + (t - 1) * c->nemb + (long)b * E;
            for (int e = 0; e < E; e++) demb[e] += c->dx[(long)b * I + e];
            memcpy(c->dctx + (long)b * D, c->dx + (long)b * I + E, sizeof(float) * (size_t)D);
        }
        attention_step_backward(c->dh + prev, c->dz, c->dproj, &c->g, c->dctx,
                                c->ralpha + (t - 1) * c->nalpha, NULL, c->alphas + (t - 1) * c->nalpha,
                                c->caches + (t - 1) * c->ncache, c->hs + prev, c->z, &c->p, &c->as,
                                c->attn_ws);
    }
    attention_precompute_backward(c->dz, &c->g, c->dproj, c->z, &c->p, &c->as);
    for (long i = 0; i < c->nh; i++) {
        c->dh0[i] += c->dh[i];
        c->dc0[i] += c->dc[i];
    }
}

static void test_attention_chain(Report *rep, AttentionScore score) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 1200 + (unsigned)score);
    ChainCtx c = {.as = {.score = score, .batch = 2, .cells = 4, .features = 3, .hidden = 4,
                         .attention = 5},
                  .E = 2};
    c.ls = (LstmShape){.batch = c.as.batch, .input = c.E + c.as.features, .hidden = c.as.hidden};
    int T = CHAIN_STEPS, B = c.as.batch, H = c.as.hidden;
    c.nh = (long)B * H;
    c.nz = (long)B * c.as.cells * c.as.features;
    c.nalpha = (long)B * c.as.cells;
    c.nctx = (long)B * c.as.features;
    c.nproj = (long)attention_projection_floats(&c.as);
    c.ncache = (long)attention_cache_floats(&c.as);
    c.nemb = (long)B * c.E;
    c.nx = (long)B * c.ls.input;
    c.ng = 4L * B * H;
    c.nwih = 4L * H * c.ls.input;
    c.nwhh = 4L * H * H;
    c.emb = pool_normal(&pool, &rng, c.nemb * T, 1.0f);
    c.z = pool_normal(&pool, &rng, c.nz, 1.0f);
    c.h0 = pool_normal(&pool, &rng, c.nh, 0.5f);
    c.c0 = pool_normal(&pool, &rng, c.nh, 0.5f);
    c.wih = pool_normal(&pool, &rng, c.nwih, 0.5f);
    c.whh = pool_normal(&pool, &rng, c.nwhh, 0.5f);
    c.bias = pool_normal(&pool, &rng, 4L * H, 0.3f);
    attn_params_alloc(&c.p, &c.g, &pool, &rng, &c.as);
    c.rh = pool_normal(&pool, &rng, c.nh * T, 1.0f);
    c.ralpha = pool_normal(&pool, &rng, c.nalpha * T, 1.0f);
    c.proj = pool_floats(&pool, c.nproj);
    c.hs = pool_floats(&pool, c.nh * (T + 1));
    c.cs = pool_floats(&pool, c.nh * (T + 1));
    c.xs = pool_floats(&pool, c.nx * T);
    c.gates = pool_floats(&pool, c.ng * T);
    c.alphas = pool_floats(&pool, c.nalpha * T);
    c.ctxs = pool_floats(&pool, c.nctx * T);
    c.caches = pool_floats(&pool, c.ncache * T);
    c.attn_ws = pool_floats(&pool, (long)attention_workspace_floats(&c.as));
    c.lstm_ws = pool_floats(&pool, c.ng);
    c.demb = pool_floats(&pool, c.nemb * T);
    c.dz = pool_floats(&pool, c.nz);
    c.dh0 = pool_floats(&pool, c.nh);
    c.dc0 = pool_floats(&pool, c.nh);
    c.dwih = pool_floats(&pool, c.nwih);
    c.dwhh = pool_floats(&pool, c.nwhh);
    c.dbias = pool_floats(&pool, 4L * H);
    c.dproj = pool_floats(&pool, c.nproj);
    c.dh = pool_floats(&pool, c.nh * (T + 1));
    c.dc = pool_floats(&pool, c.nh * (T + 1));
    c.dx = pool_floats(&pool, c.nx);
    c.dctx = pool_floats(&pool, c.nctx);
    c.zd = pool_doubles(&pool, c.nz);
    c.hd = pool_doubles(&pool, c.nh * (T + 1));
    c.cd = pool_doubles(&pool, c.nh * (T + 1));
    c.xd = pool_doubles(&pool, c.nx);
    c.alpha_d = pool_doubles(&pool, c.nalpha);
    c.ctx_d = pool_doubles(&pool, c.nctx);
    char label[LABEL_MAX];
    snprintf(label, sizeof label, "attn+lstm 3-step %s", attention_score_name(score));
    record(rep, label, "loss", "vs f64", rel_err(chain_loss(&c), chain_loss_ref(&c)), FWD_TOL);
    Check chk = {.layer = label, .loss = chain_loss, .loss_ref = chain_loss_ref,
                 .backward = chain_back, .ctx = &c, .eps = 1e-2f};
    add_param(&chk, "d_emb", c.emb, c.demb, c.nemb * T);
    add_param(&chk, "d_z", c.z, c.dz, c.nz);
    add_param(&chk, "d_h0", c.h0, c.dh0, c.nh);
    add_param(&chk, "d_c0", c.c0, c.dc0, c.nh);
    add_param(&chk, "d_w_ih", c.wih, c.dwih, c.nwih);
    add_param(&chk, "d_w_hh", c.whh, c.dwhh, c.nwhh);
    add_param(&chk, "d_bias", c.bias, c.dbias, 4L * H);
    attn_add_params(&chk, &c.p, &c.g, &c.as);
    check_gradients(rep, &chk);
    pool_free(&pool);
}

/* Adaptive attention's visual sentinel with the attention step it mixes
 * into: L = r . zhat, against a double reference of sentinel.h's formulas,
 * through x, h, c, z and every parameter of both layers. */
typedef struct {
    AttentionShape as;
    SentinelShape ss;
    AttentionParams p, g;
    SentinelParams sp, sg;
    long nh, nz, nx, nctx, nalpha;
    float *x, *h, *c, *z, *proj, *dproj, *alpha, *context, *att_cache, *cache, *zhat, *beta, *r;
    float *dx, *dh, *dc, *dz, *dctx, *dlse, *att_ws, *ws;
    double *xd, *hd, *cd, *zd, *alpha_d, *ctx_d, *lse_d;
} SentinelCtx;

static double sentinel_loss(void *ptr) {
    SentinelCtx *c = ptr;
    attention_precompute_forward(c->proj, c->z, &c->p, &c->as);
    attention_step_forward(c->alpha, c->context, c->att_cache, c->h, c->z, c->proj, &c->p, &c->as);
    sentinel_forward(c->zhat, c->beta, c->cache, c->x, c->h, c->c, c->context, c->att_cache, &c->sp, &c->p, &c->ss,
                     &c->as);
    return dot_double(c->zhat, c->r, c->nctx);
}

static double sentinel_loss_ref(void *ptr) {
    SentinelCtx *c = ptr;
    int B = c->ss.batch, E = c->ss.embed, H = c->ss.hidden, D = c->ss.features;
    to_double(c->xd, c->x, c->nx);
    to_double(c->hd, c->h, c->nh);
    to_double(c->cd, c->c, c->nh);
    to_double(c->zd, c->z, c->nz);
    attention_reference_lse(c->alpha_d, c->ctx_d, c->lse_d, c->hd, c->zd, &c->p, &c->as);
    double loss = 0.0;
    for (int b = 0; b < B; b++) {
        double sv[64], u[64];
        for (int k = 0; k < H; k++) {
            double pre = c->sp.bias[k];
            for (int e = 0; e < E; e++) pre += c->sp.input_weight[(long)k * E + e] * c->xd[(long)b * E + e];
            for (int j = 0; j < H; j++) pre += c->sp.hidden_weight[(long)k * H + j] * c->hd[(long)b * H + j];
            sv[k] = 1.0 / (1.0 + exp(-pre)) * tanh(c->cd[(long)b * H + k]);
        }
        for (int d = 0; d < D; d++) {
            u[d] = 0.0;
            for (int k = 0; k < H; k++) u[d] += c->sp.projection[(long)d * H + k] * sv[k];
        }
        double score = score_reference(c->hd + (long)b * H, u, &c->p, &c->as);
        double beta = 1.0 / (1.0 + exp(-(c->lse_d[b] - score)));
        for (int d = 0; d < D; d++)
            loss += (beta * c->ctx_d[(long)b * D + d] + (1.0 - beta) * u[d]) * c->r[(long)b * D + d];
    }
    return loss;
}

static void sentinel_back(void *ptr) {
    SentinelCtx *c = ptr;
    memset(c->dproj, 0, sizeof(float) * (attention_projection_floats(&c->as) + 1));
    sentinel_backward(c->dx, c->dh, c->dc, c->dctx, c->dlse, &c->sg, &c->g, c->r, c->beta, c->cache, c->x, c->h,
                      c->context, c->att_cache, &c->sp, &c->p, &c->ss, &c->as, c->ws);
    attention_step_backward(c->dh, c->dz, c->dproj, &c->g, c->dctx, NULL, c->dlse, c->alpha, c->att_cache, c->h, c->z,
                            &c->p, &c->as, c->att_ws);
    attention_precompute_backward(c->dz, &c->g, c->dproj, c->z, &c->p, &c->as);
}

static void test_sentinel(Report *rep, AttentionScore score) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 1700 + (unsigned)score);
    SentinelCtx c = {.as = {.score = score, .batch = 2, .cells = 5, .features = 4, .hidden = 3, .attention = 6},
                     .ss = {.batch = 2, .embed = 3, .hidden = 3, .features = 4}};
    int B = 2, E = 3, H = 3, D = 4;
    c.nh = (long)B * H, c.nx = (long)B * E, c.nctx = (long)B * D, c.nalpha = (long)B * c.as.cells;
    c.nz = c.nalpha * D;
    c.x = pool_normal(&pool, &rng, c.nx, 1.0f);
    c.h = pool_normal(&pool, &rng, c.nh, 1.0f);
    c.c = pool_normal(&pool, &rng, c.nh, 1.0f);
    c.z = pool_normal(&pool, &rng, c.nz, 1.0f);
    attn_params_alloc(&c.p, &c.g, &pool, &rng, &c.as);
    c.sp = (SentinelParams){pool_normal(&pool, &rng, (long)H * E, 0.7f), pool_normal(&pool, &rng, (long)H * H, 0.7f),
                            pool_normal(&pool, &rng, H, 0.5f), pool_normal(&pool, &rng, (long)D * H, 0.8f)};
    c.sg = (SentinelParams){pool_floats(&pool, (long)H * E), pool_floats(&pool, (long)H * H), pool_floats(&pool, H),
                            pool_floats(&pool, (long)D * H)};
    c.proj = pool_floats(&pool, (long)attention_projection_floats(&c.as) + 1);
    c.dproj = pool_floats(&pool, (long)attention_projection_floats(&c.as) + 1);
    c.alpha = pool_floats(&pool, c.nalpha);
    c.context = pool_floats(&pool, c.nctx);
    c.att_cache = pool_floats(&pool, (long)attention_cache_floats(&c.as));
    c.cache = pool_floats(&pool, (long)sentinel_cache_floats(&c.ss, &c.as));
    c.zhat = pool_floats(&pool, c.nctx);
    c.beta = pool_floats(&pool, B);
    c.r = pool_normal(&pool, &rng, c.nctx, 1.0f);
    c.dx = pool_floats(&pool, c.nx);
    c.dh = pool_floats(&pool, c.nh);
    c.dc = pool_floats(&pool, c.nh);
    c.dz = pool_floats(&pool, c.nz);
    c.dctx = pool_floats(&pool, c.nctx);
    c.dlse = pool_floats(&pool, B);
    c.att_ws = pool_floats(&pool, (long)attention_workspace_floats(&c.as));
    c.ws = pool_floats(&pool, (long)sentinel_workspace_floats(&c.ss, &c.as));
    c.xd = pool_doubles(&pool, c.nx);
    c.hd = pool_doubles(&pool, c.nh);
    c.cd = pool_doubles(&pool, c.nh);
    c.zd = pool_doubles(&pool, c.nz);
    c.alpha_d = pool_doubles(&pool, c.nalpha);
    c.ctx_d = pool_doubles(&pool, c.nctx);
    c.lse_d = pool_doubles(&pool, B);
    char label[LABEL_MAX];
    snprintf(label, sizeof label, "sentinel %s", attention_score_name(score));
    double forward = fabs(sentinel_loss(&c) - sentinel_loss_ref(&c)) / fmax(1.0, fabs(sentinel_loss_ref(&c)));
    record(rep, label, "zhat . r", "vs f64", forward, FWD_TOL);
    Check chk = {.layer = label, .loss = sentinel_loss, .loss_ref = sentinel_loss_ref, .backward = sentinel_back,
                 .ctx = &c, .eps = 1e-2f};
    add_param(&chk, "d_x", c.x, c.dx, c.nx);
    add_param(&chk, "d_h", c.h, c.dh, c.nh);
    add_param(&chk, "d_c", c.c, c.dc, c.nh);
    add_param(&chk, "d_z", c.z, c.dz, c.nz);
    add_param(&chk, "d_input_weight", c.sp.input_weight, c.sg.input_weight, (long)H * E);
    add_param(&chk, "d_hidden_weight", c.sp.hidden_weight, c.sg.hidden_weight, (long)H * H);
    add_param(&chk, "d_bias", c.sp.bias, c.sg.bias, H);
    add_param(&chk, "d_projection", c.sp.projection, c.sg.projection, (long)D * H);
    attn_add_params(&chk, &c.p, &c.g, &c.as);
    check_gradients(rep, &chk);
    pool_free(&pool);
}

static void test_attention(Report *rep) {
    const AttentionScore scores[3] = {ATTENTION_ADDITIVE, ATTENTION_DOT, ATTENTION_GENERAL};
    for (int k = 0; k < 3; k++) {
        test_attention_score(rep, scores[k], 0);
        test_attention_score(rep, scores[k], 1);
    }
    for (int k = 0; k < 3; k++) test_attention_chain(rep, scores[k]);
    for (int k = 0; k < 3; k++) test_sentinel(rep, scores[k]);

    AttentionScore parsed = ATTENTION_ADDITIVE;
    int ok = attention_score_parse("general", &parsed) == 0 && parsed == ATTENTION_GENERAL &&
             attention_score_parse("dot", &parsed) == 0 && parsed == ATTENTION_DOT &&
             attention_score_parse("bogus", &parsed) == -1 &&
             strcmp(attention_score_name(ATTENTION_ADDITIVE), "additive") == 0;
    record_bool(rep, "attention score names", "parse/name", ok);
}

/* ------------------------------------------------------------------------ */
/* optimiser */

static void test_adam(Report *rep) {
    enum { N = 6 };
    const float p0[N] = {1.0f, -0.5f, 0.25f, 2.0f, -3.0f, 0.0f};
    const float g1[N] = {0.1f, -0.2f, 0.0f, 3.0f, -1e-4f, 0.5f};
    const float g2[N] = {-0.3f, -0.1f, 0.05f, 2.5f, 2e-4f, -0.5f};
    const AdamConfig cfg = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    const float lr = 0.05f, wd = 0.1f;
    float p[N], m[N] = {0}, v[N] = {0};
    double rp[N], rm[N] = {0}, rv[N] = {0};
    memcpy(p, p0, sizeof p);
    for (int i = 0; i < N; i++) rp[i] = p0[i];
    for (long step = 1; step <= 2; step++) {
        const float *g = step == 1 ? g1 : g2;
        adam_update(p, g, m, v, N, lr, wd, step, &cfg);
        double b1 = cfg.beta1, b2 = cfg.beta2;
        for (int i = 0; i < N; i++) {
            rp[i] -= (double)lr * wd * rp[i];
            rm[i] = b1 * rm[i] + (1.0 - b1) * g[i];
            rv[i] = b2 * rv[i] + (1.0 - b2) * (double)g[i] * g[i];
            double mhat = rm[i] / (1.0 - pow(b1, (double)step));
            double vhat = rv[i] / (1.0 - pow(b2, (double)step));
            rp[i] -= lr * mhat / (sqrt(vhat) + (double)cfg.eps);
        }
    }
    double err = worse(max_rel_fd(p, rp, N), max_rel_fd(m, rm, N));
    err = worse(err, max_rel_fd(v, rv, N));
    record(rep, "adam 2 steps (AdamW)", "params, m, v", "vs f64", err, 1e-5);

    /* Step 1 without decay moves each parameter by lr * sign(g) (|g| >> eps). */
    float q[2] = {1.0f, 1.0f}, qm[2] = {0}, qv[2] = {0};
    const float qg[2] = {0.5f, -2.0f};
    adam_update(q, qg, qm, qv, 2, 0.01f, 0.0f, 1, &cfg);
    const double qexpect[2] = {0.99, 1.01};
    record(rep, "adam step 1", "p - lr sign(g)", "vs hand", max_rel_fd(q, qexpect, 2), 1e-6);
}

/* Polyak averaging: average + (1 - decay) (params - average), by hand. */
static void test_ema_update(Report *rep) {
    float average[3] = {1.0f, 2.0f, -4.0f};
    const float params[3] = {3.0f, 6.0f, 4.0f};
    ema_update(average, params, 3, 0.75f);
    const double expect[3] = {1.5, 3.0, -2.0};
    record(rep, "ema_update", "average", "vs hand", max_rel_fd(average, expect, 3), EXACT_TOL);
}

static void test_clip(Report *rep) {
    float g[5] = {3.0f, 0.0f, -4.0f, 0.0f, 0.0f};
    float norm = grad_clip_global_norm(g, 5, 1.0f);
    double factor = 1.0 / (5.0 + 1e-6);
    const double expect[5] = {3.0 * factor, 0.0, -4.0 * factor, 0.0, 0.0};
    double err = worse(rel_err(norm, 5.0), max_rel_fd(g, expect, 5));
    float h[3] = {0.3f, -0.4f, 1.2f};
    const double unchanged[3] = {0.3f, -0.4f, 1.2f};
    norm = grad_clip_global_norm(h, 3, 10.0f);
    err = worse(err, rel_err(norm, 1.3));
    err = worse(err, max_rel_fd(h, unchanged, 3));
    norm = grad_clip_global_norm(h, 3, 1.0f); /* a factor just below 1 */
    double mild = 1.0 / (1.3 + 1e-6);
    const double mild_expect[3] = {0.3f * mild, -0.4f * mild, 1.2f * mild};
    err = worse(err, rel_err(norm, 1.3));
    err = worse(err, max_rel_fd(h, mild_expect, 3));
    record(rep, "grad_clip_global_norm", "5->1, 1.3->10, ->1", "vs hand", err, 1e-6);

    Rng rng;
    rng_seed(&rng, 1300);
    float big[1000];
    double sum = 0.0;
    for (int i = 0; i < 1000; i++) {
        big[i] = rng_normal(&rng);
        sum += (double)big[i] * big[i];
    }
    record(rep, "grad_global_norm", "1000 normals", "vs f64",
           rel_err(grad_global_norm(big, 1000), sqrt(sum)),
           1e-6);
}

/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Transformer layers: layer norm, GELU, multi-head attention */

typedef struct {
    int rows, dim;
    float *x, *w, *b, *y, *mean, *rstd, *r, *dx, *dw, *db;
    double *xd;
} LayerNormCtx;

static double layernorm_loss(void *ptr) {
    LayerNormCtx *c = ptr;
    layernorm_forward(c->y, c->mean, c->rstd, c->x, c->w, c->b, c->rows, c->dim, 1e-5f);
    return dot_double(c->y, c->r, (long)c->rows * c->dim);
}

static double layernorm_loss_ref(void *ptr) {
    LayerNormCtx *c = ptr;
    double loss = 0.0;
    for (int r = 0; r < c->rows; r++) {
        const float *x = c->x + (long)r * c->dim;
        double mean = 0.0, var = 0.0;
        for (int i = 0; i < c->dim; i++) mean += x[i];
        mean /= c->dim;
        for (int i = 0; i < c->dim; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
        double rstd = 1.0 / sqrt(var / c->dim + 1e-5);
        for (int i = 0; i < c->dim; i++)
            loss += (((double)x[i] - mean) * rstd * c->w[i] + c->b[i]) * c->r[(long)r * c->dim + i];
    }
    return loss;
}

static void layernorm_back(void *ptr) {
    LayerNormCtx *c = ptr;
    layernorm_backward(c->dx, c->dw, c->db, c->r, c->x, c->mean, c->rstd, c->w, c->rows, c->dim);
}

static void test_layernorm(Report *rep) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 2100);
    LayerNormCtx c = {.rows = 3, .dim = 7};
    long n = (long)c.rows * c.dim;
    c.x = pool_normal(&pool, &rng, n, 2.0f);
    for (long i = 0; i < n; i++) c.x[i] += 1.5f; /* a mean far from 0 */
    c.w = pool_normal(&pool, &rng, c.dim, 1.0f);
    c.b = pool_normal(&pool, &rng, c.dim, 1.0f);
    c.y = pool_floats(&pool, n);
    c.mean = pool_floats(&pool, c.rows);
    c.rstd = pool_floats(&pool, c.rows);
    c.r = pool_normal(&pool, &rng, n, 1.0f);
    c.dx = pool_floats(&pool, n);
    c.dw = pool_floats(&pool, c.dim);
    c.db = pool_floats(&pool, c.dim);
    double fwd = fabs(layernorm_loss(&c) - layernorm_loss_ref(&c)) / fmax(1.0, fabs(layernorm_loss_ref(&c)));
    record(rep, "layernorm 3x7", "out . r", "vs f64", fwd, FWD_TOL);
    Check chk = {.layer = "layernorm 3x7", .loss = layernorm_loss, .loss_ref = layernorm_loss_ref,
                 .backward = layernorm_back, .ctx = &c, .eps = 1e-2f};
    add_param(&chk, "d_in", c.x, c.dx, n);
    add_param(&chk, "d_weight", c.w, c.dw, c.dim);
    add_param(&chk, "d_bias", c.b, c.db, c.dim);
    check_gradients(rep, &chk);
    /* A constant row normalises to the bias (variance 0: rstd = 1/sqrt(eps), no NaN). */
    float flat[4] = {3.0f, 3.0f, 3.0f, 3.0f}, one[4] = {1, 1, 1, 1}, bias[4] = {0.5f, -1, 2, 0}, out[4], m, sd;
    layernorm_forward(out, &m, &sd, flat, one, bias, 1, 4, 1e-5f);
    const double expect[4] = {0.5, -1.0, 2.0, 0.0};
    record(rep, "layernorm constant row", "out = bias", "vs hand", max_rel_fd(out, expect, 4), EXACT_TOL);
    pool_free(&pool);
}

typedef struct {
    long n;
    float *x, *y, *r, *dx;
} GeluCtx;

static double gelu_loss(void *ptr) {
    GeluCtx *c = ptr;
    gelu_forward(c->y, c->x, c->n);
    return dot_double(c->y, c->r, c->n);
}

static double gelu_loss_ref(void *ptr) {
    GeluCtx *c = ptr;
    double loss = 0.0;
    for (long i = 0; i < c->n; i++) loss += 0.5 * c->x[i] * (1.0 + erf(c->x[i] / sqrt(2.0))) * c->r[i];
    return loss;
}

static void gelu_back(void *ptr) {
    GeluCtx *c = ptr;
    gelu_backward(c->dx, c->r, c->x, c->n);
}

static void test_gelu(Report *rep) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 2200);
    GeluCtx c = {.n = 40};
    c.x = pool_normal(&pool, &rng, c.n, 2.5f);
    c.y = pool_floats(&pool, c.n);
    c.r = pool_normal(&pool, &rng, c.n, 1.0f);
    c.dx = pool_floats(&pool, c.n);
    double fwd = fabs(gelu_loss(&c) - gelu_loss_ref(&c)) / fmax(1.0, fabs(gelu_loss_ref(&c)));
    record(rep, "gelu", "out . r", "vs f64", fwd, FWD_TOL);
    Check chk = {.layer = "gelu", .loss = gelu_loss, .loss_ref = gelu_loss_ref, .backward = gelu_back, .ctx = &c,
                 .eps = 1e-2f};
    add_param(&chk, "d_in", c.x, c.dx, c.n);
    check_gradients(rep, &chk);
    pool_free(&pool);
}

/* Multi-head attention in double, straight from multihead_attention.h. */
/* loss = out . r + probs . r_probs (r_probs NULL: out . r alone). */
static double mha_loss_reference(const float *q, const float *k, const float *v, const int *key_lengths,
                                 const MhaShape *s, const float *r, const float *r_probs) {
    int dh = s->channels / s->heads;
    double loss = 0.0;
    for (int b = 0; b < s->batch; b++)
        for (int h = 0; h < s->heads; h++)
            for (int i = 0; i < s->queries; i++) {
                int visible = key_lengths ? key_lengths[b] : s->keys;
                if (s->causal && i + s->query_offset + 1 < visible) visible = i + s->query_offset + 1;
                double e[64], top = -INFINITY, sum = 0.0;
                const float *qi = q + ((long)b * s->queries + i) * s->q_stride + h * dh;
                for (int j = 0; j < visible; j++) {
                    long item = s->kv_items ? s->kv_items[b] : b;
                    const float *kj = k + (item * s->keys + j) * s->kv_stride + h * dh;
                    e[j] = 0.0;
                    for (int d = 0; d < dh; d++) e[j] += (double)qi[d] * kj[d];
                    e[j] /= sqrt((double)dh);
                    top = fmax(top, e[j]);
                }
                for (int j = 0; j < visible; j++) sum += e[j] = exp(e[j] - top);
                const float *rp = r_probs ? r_probs + (((long)b * s->heads + h) * s->queries + i) * s->keys : NULL;
                for (int j = 0; rp && j < visible; j++) loss += e[j] / sum * rp[j];
                for (int d = 0; d < dh; d++) {
                    double out = 0.0;
                    long item = s->kv_items ? s->kv_items[b] : b;
                    for (int j = 0; j < visible; j++) out += e[j] / sum * v[(item * s->keys + j) * s->kv_stride + h * dh + d];
                    loss += out * r[((long)b * s->queries + i) * s->channels + h * dh + d];
                }
            }
    return loss;
}

typedef struct {
    MhaShape s;
    const int *key_lengths;
    long nq, nkv;
    float *q, *k, *v, *out, *probs, *r, *r_probs, *dq, *dk, *dv, *ws;
} MhaCtx;

static double mha_loss(void *ptr) {
    MhaCtx *c = ptr;
    mha_forward(c->out, c->probs, c->q, c->k, c->v, c->key_lengths, &c->s);
    double loss = dot_double(c->out, c->r, (long)c->s.batch * c->s.queries * c->s.channels);
    long probs = (long)c->s.batch * c->s.heads * c->s.queries * c->s.keys;
    return c->r_probs ? loss + dot_double(c->probs, c->r_probs, probs) : loss;
}

static double mha_loss_ref(void *ptr) {
    MhaCtx *c = ptr;
    return mha_loss_reference(c->q, c->k, c->v, c->key_lengths, &c->s, c->r, c->r_probs);
}

static void mha_back(void *ptr) {
    MhaCtx *c = ptr;
    mha_backward(c->dq, c->dk, c->dv, c->r, c->r_probs, c->probs, c->q, c->k, c->v, &c->s, c->ws);
}

/* fused: q, k and v are the thirds of one [batch, T, 3C] buffer (self-attention);
 * otherwise the loss also weighs the probabilities (as an attention penalty
 * does), so both of mha_backward's paths are checked. */
static void test_mha_case(Report *rep, const char *label, MhaShape s, const int *key_lengths, int fused,
                          int kv_count, unsigned seed) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, seed);
    MhaCtx c = {.s = s, .key_lengths = key_lengths};
    long C = s.channels;
    if (fused) {
        long n = (long)s.batch * s.keys * 3 * C;
        float *qkv = pool_normal(&pool, &rng, n, 1.0f), *d = pool_floats(&pool, n);
        c.q = qkv, c.k = qkv + C, c.v = qkv + 2 * C, c.dq = d, c.dk = d + C, c.dv = d + 2 * C;
        c.s.q_stride = c.s.kv_stride = 3 * (int)C;
        c.nq = n;
    } else {
        c.nq = (long)s.batch * s.queries * C, c.nkv = (long)kv_count * s.keys * C;
        c.q = pool_normal(&pool, &rng, c.nq, 1.0f), c.k = pool_normal(&pool, &rng, c.nkv, 1.0f);
        c.v = pool_normal(&pool, &rng, c.nkv, 1.0f);
        c.dq = pool_floats(&pool, c.nq), c.dk = pool_floats(&pool, c.nkv), c.dv = pool_floats(&pool, c.nkv);
        c.s.q_stride = c.s.kv_stride = (int)C;
    }
    c.out = pool_floats(&pool, (long)s.batch * s.queries * C);
    c.probs = pool_floats(&pool, (long)s.batch * s.heads * s.queries * s.keys);
    c.r = pool_normal(&pool, &rng, (long)s.batch * s.queries * C, 1.0f);
    if (!fused) c.r_probs = pool_normal(&pool, &rng, (long)s.batch * s.heads * s.queries * s.keys, 1.0f);
    c.ws = pool_floats(&pool, (long)mha_workspace_floats(&c.s));
    double fwd = fabs(mha_loss(&c) - mha_loss_ref(&c)) / fmax(1.0, fabs(mha_loss_ref(&c)));
    record(rep, label, fused ? "out . r" : "out.r + P.r_P", "vs f64", fwd, FWD_TOL);
    /* Every row of probs sums to 1 over the keys it may see and is 0 beyond. */
    double row_err = 0.0;
    for (int b = 0; b < s.batch; b++)
        for (int h = 0; h < s.heads; h++)
            for (int i = 0; i < s.queries; i++) {
                const float *p = c.probs + (((long)b * s.heads + h) * s.queries + i) * s.keys;
                int visible = key_lengths ? key_lengths[b] : s.keys;
                if (s.causal && i + s.query_offset + 1 < visible) visible = i + s.query_offset + 1;
                double sum = 0.0;
                for (int j = 0; j < s.keys; j++) {
                    sum += p[j];
                    if (j >= visible) row_err = fmax(row_err, fabs(p[j]));
                }
                row_err = fmax(row_err, fabs(sum - 1.0));
            }
    record(rep, label, "probs: rows, mask", "sum 1, 0", row_err, FWD_TOL);
    Check chk = {.layer = label, .loss = mha_loss, .loss_ref = mha_loss_ref, .backward = mha_back, .ctx = &c,
                 .eps = 1e-2f};
    if (fused) {
        add_param(&chk, "d_qkv", c.q, c.dq, c.nq);
    } else {
        add_param(&chk, "d_q", c.q, c.dq, c.nq);
        add_param(&chk, "d_k", c.k, c.dk, c.nkv);
        add_param(&chk, "d_v", c.v, c.dv, c.nkv);
    }
    check_gradients(rep, &chk);
    pool_free(&pool);
}

/* With a key/value cache, one new query at position t (query_offset t, keys
 * 0..t) gives row t of the whole causal self-attention: the same bits. */
static void test_mha_cache(Report *rep) {
    enum { B = 2, T = 5, C = 6, HEADS = 3 };
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 2340);
    float *q = pool_normal(&pool, &rng, B * T * C, 1.0f), *k = pool_normal(&pool, &rng, B * T * C, 1.0f);
    float *v = pool_normal(&pool, &rng, B * T * C, 1.0f);
    float *whole = pool_floats(&pool, B * T * C), *probs = pool_floats(&pool, B * HEADS * T * T);
    MhaShape all = {.batch = B, .queries = T, .keys = T, .channels = C, .heads = HEADS, .causal = 1,
                    .q_stride = C, .kv_stride = C};
    mha_forward(whole, probs, q, k, v, NULL, &all);
    int same = 1;
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            float one[C], p[HEADS * T];
            /* Keys 0..t of item b, the query of step t: a batch of one. */
            MhaShape step = {.batch = 1, .queries = 1, .keys = t + 1, .channels = C, .heads = HEADS, .causal = 1,
                             .query_offset = t, .q_stride = C, .kv_stride = C};
            mha_forward(one, p, q + ((long)b * T + t) * C, k + (long)b * T * C, v + (long)b * T * C, NULL, &step);
            same &= memcmp(one, whole + ((long)b * T + t) * C, sizeof one) == 0;
        }
    record_bool(rep, "mha cache: step t alone", "row t, bit for bit", same);
    pool_free(&pool);
}

static void test_multihead_attention(Report *rep) {
    static const int lengths[2] = {4, 2}, shared[3] = {1, 0, 1};
    test_mha_case(rep, "mha cross, padded keys", (MhaShape){.batch = 2, .queries = 3, .keys = 4, .channels = 4,
                                                            .heads = 2}, lengths, 0, 2, 2300);
    test_mha_case(rep, "mha cross, shared grids", (MhaShape){.batch = 3, .queries = 2, .keys = 5, .channels = 4,
                                                             .heads = 2, .kv_items = shared}, NULL, 0, 2, 2305);
    test_mha_case(rep, "mha self, causal, fused", (MhaShape){.batch = 2, .queries = 4, .keys = 4, .channels = 6,
                                                             .heads = 3, .causal = 1}, NULL, 1, 2, 2310);
    test_mha_case(rep, "mha causal, offset 2", (MhaShape){.batch = 1, .queries = 2, .keys = 4, .channels = 4,
                                                          .heads = 1, .causal = 1, .query_offset = 2}, NULL, 0, 1, 2320);
    test_mha_cache(rep);
}

typedef struct {
    int batch, height, width, dim;
    float *x0, *x, *rows, *columns, *r, *d_rows, *d_columns;
} GridPosCtx;

static double grid_position_loss(void *ptr) {
    GridPosCtx *c = ptr;
    long n = (long)c->batch * c->height * c->width * c->dim;
    memcpy(c->x, c->x0, sizeof(float) * n);
    grid_position_forward(c->x, c->rows, c->columns, c->batch, c->height, c->width, c->dim);
    return dot_double(c->x, c->r, n);
}

static void grid_position_back(void *ptr) {
    GridPosCtx *c = ptr;
    grid_position_backward(c->d_rows, c->d_columns, c->r, c->batch, c->height, c->width, c->dim);
}

static void test_positional(Report *rep) {
    Pool pool = {0};
    Rng rng;
    rng_seed(&rng, 2400);
    GridPosCtx c = {.batch = 2, .height = 3, .width = 4, .dim = 5};
    long n = (long)c.batch * c.height * c.width * c.dim;
    c.x0 = pool_normal(&pool, &rng, n, 1.0f);
    c.x = pool_floats(&pool, n);
    c.rows = pool_normal(&pool, &rng, (long)c.height * c.dim, 1.0f);
    c.columns = pool_normal(&pool, &rng, (long)c.width * c.dim, 1.0f);
    c.r = pool_normal(&pool, &rng, n, 1.0f);
    c.d_rows = pool_floats(&pool, (long)c.height * c.dim);
    c.d_columns = pool_floats(&pool, (long)c.width * c.dim);
    grid_position_loss(&c);
    /* Cell (b, y, x), channel d: x0 + rows[y, d] + columns[x, d]. */
    double value_err = 0.0;
    for (int b = 0; b < c.batch; b++)
        for (int y = 0; y < c.height; y++)
            for (int x = 0; x < c.width; x++)
                for (int d = 0; d < c.dim; d++) {
                    long i = (((long)b * c.height + y) * c.width + x) * c.dim + d;
                    value_err = fmax(value_err, fabs(c.x[i] - ((double)c.x0[i] + c.rows[y * c.dim + d] +
                                                               c.columns[x * c.dim + d])));
                }
    record(rep, "grid positions 3x4", "cell = x + row + col", "vs hand", value_err, FWD_TOL);
    Check chk = {.layer = "grid positions 3x4", .loss = grid_position_loss, .backward = grid_position_back,
                 .ctx = &c, .eps = 1e-2f};
    add_param(&chk, "d_rows", c.rows, c.d_rows, (long)c.height * c.dim);
    add_param(&chk, "d_columns", c.columns, c.d_columns, (long)c.width * c.dim);
    check_gradients(rep, &chk);
    /* Sinusoids: the formula in double, positions 3..6 of a 7-wide (odd) encoding, rows 9 apart. */
    enum { B = 2, T = 4, DIM = 7, STRIDE = 9 };
    float pe[B * T * STRIDE] = {0};
    sinusoid_position_add(pe, B, 3, T, DIM, STRIDE);
    double pe_err = 0.0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int d = 0; d < STRIDE; d++) {
                int i = d / 2;
                double angle = (3 + t) / pow(10000.0, 2.0 * i / DIM);
                double expect = d >= DIM ? 0.0 : d % 2 ? cos(angle) : sin(angle);
                pe_err = fmax(pe_err, fabs(pe[(b * T + t) * STRIDE + d] - expect));
            }
    record(rep, "sinusoid positions", "PE[p, 2i], [p, 2i+1]", "vs f64", pe_err, 1e-6);
    pool_free(&pool);
}

int main(void) {
    Report rep = {0};
    printf("%-30s %-18s %-10s %9s  %7s\n", "layer", "tensor / check", "reference", "max err",
           "tol");
    test_linear(&rep);
    test_second_core(&rep);
    test_activations(&rep);
    test_fast_math(&rep);
    test_conv(&rep);
    test_maxpool(&rep);
    test_batchnorm_grad(&rep);
    test_batchnorm_replicas(&rep);
    test_batchnorm_infer_fold(&rep);
    test_embedding(&rep);
    test_lstm_step(&rep);
    test_lstm_chain(&rep);
    test_dropout(&rep);
    test_softmax(&rep);
    test_cross_entropy(&rep);
    test_binary_cross_entropy(&rep);
    test_attention(&rep);
    test_layernorm(&rep);
    test_gelu(&rep);
    test_multihead_attention(&rep);
    test_positional(&rep);
    test_adam(&rep);
    test_clip(&rep);
    test_ema_update(&rep);
    printf("%d passed, %d failed\n", rep.passed, rep.failed);
    return rep.failed ? 1 : 0;
}
