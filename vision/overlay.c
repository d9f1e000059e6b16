/* Attention overlays: colormaps, the smoothed attention map, blending. */
#include "overlay.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- colormaps ------------------------------------------------------------ */

/* matplotlib's viridis and inferno (lib/matplotlib/_cm_listed.py, 256
 * entries of float RGB), each component rounded to 8 bits: 0xRRGGBB.
 * 8 bits is all a PNG keeps, and interpolating between 256 entries is
 * visually indistinguishable from the float table. */
static const uint32_t VIRIDIS[256] = {
    0x440154, 0x440256, 0x450457, 0x450559, 0x46075a, 0x46085c, 0x460a5d, 0x460b5e, 0x470d60, 0x470e61,
    0x471063, 0x471164, 0x471365, 0x481467, 0x481668, 0x481769, 0x48186a, 0x481a6c, 0x481b6d, 0x481c6e,
    0x481d6f, 0x481f70, 0x482071, 0x482173, 0x482374, 0x482475, 0x482576, 0x482677, 0x482878, 0x482979,
    0x472a7a, 0x472c7a, 0x472d7b, 0x472e7c, 0x472f7d, 0x46307e, 0x46327e, 0x46337f, 0x463480, 0x453581,
    0x453781, 0x453882, 0x443983, 0x443a83, 0x443b84, 0x433d84, 0x433e85, 0x423f85, 0x424086, 0x424186,
    0x414287, 0x414487, 0x404588, 0x404688, 0x3f4788, 0x3f4889, 0x3e4989, 0x3e4a89, 0x3e4c8a, 0x3d4d8a,
    0x3d4e8a, 0x3c4f8a, 0x3c508b, 0x3b518b, 0x3b528b, 0x3a538b, 0x3a548c, 0x39558c, 0x39568c, 0x38588c,
    0x38598c, 0x375a8c, 0x375b8d, 0x365c8d, 0x365d8d, 0x355e8d, 0x355f8d, 0x34608d, 0x34618d, 0x33628d,
    0x33638d, 0x32648e, 0x32658e, 0x31668e, 0x31678e, 0x31688e, 0x30698e, 0x306a8e, 0x2f6b8e, 0x2f6c8e,
    0x2e6d8e, 0x2e6e8e, 0x2e6f8e, 0x2d708e, 0x2d718e, 0x2c718e, 0x2c728e, 0x2c738e, 0x2b748e, 0x2b758e,
    0x2a768e, 0x2a778e, 0x2a788e, 0x29798e, 0x297a8e, 0x297b8e, 0x287c8e, 0x287d8e, 0x277e8e, 0x277f8e,
    0x27808e, 0x26818e, 0x26828e, 0x26828e, 0x25838e, 0x25848e, 0x25858e, 0x24868e, 0x24878e, 0x23888e,
    0x23898e, 0x238a8d, 0x228b8d, 0x228c8d, 0x228d8d, 0x218e8d, 0x218f8d, 0x21908d, 0x21918c, 0x20928c,
    0x20928c, 0x20938c, 0x1f948c, 0x1f958b, 0x1f968b, 0x1f978b, 0x1f988b, 0x1f998a, 0x1f9a8a, 0x1e9b8a,
    0x1e9c89, 0x1e9d89, 0x1f9e89, 0x1f9f88, 0x1fa088, 0x1fa188, 0x1fa187, 0x1fa287, 0x20a386, 0x20a486,
    0x21a585, 0x21a685, 0x22a785, 0x22a884, 0x23a983, 0x24aa83, 0x25ab82, 0x25ac82, 0x26ad81, 0x27ad81,
    0x28ae80, 0x29af7f, 0x2ab07f, 0x2cb17e, 0x2db27d, 0x2eb37c, 0x2fb47c, 0x31b57b, 0x32b67a, 0x34b679,
    0x35b779, 0x37b878, 0x38b977, 0x3aba76, 0x3bbb75, 0x3dbc74, 0x3fbc73, 0x40bd72, 0x42be71, 0x44bf70,
    0x46c06f, 0x48c16e, 0x4ac16d, 0x4cc26c, 0x4ec36b, 0x50c46a, 0x52c569, 0x54c568, 0x56c667, 0x58c765,
    0x5ac864, 0x5cc863, 0x5ec962, 0x60ca60, 0x63cb5f, 0x65cb5e, 0x67cc5c, 0x69cd5b, 0x6ccd5a, 0x6ece58,
    0x70cf57, 0x73d056, 0x75d054, 0x77d153, 0x7ad151, 0x7cd250, 0x7fd34e, 0x81d34d, 0x84d44b, 0x86d549,
    0x89d548, 0x8bd646, 0x8ed645, 0x90d743, 0x93d741, 0x95d840, 0x98d83e, 0x9bd93c, 0x9dd93b, 0xa0da39,
    0xa2da37, 0xa5db36, 0xa8db34, 0xaadc32, 0xaddc30, 0xb0dd2f, 0xb2dd2d, 0xb5de2b, 0xb8de29, 0xbade28,
    0xbddf26, 0xc0df25, 0xc2df23, 0xc5e021, 0xc8e020, 0xcae11f, 0xcde11d, 0xd0e11c, 0xd2e21b, 0xd5e21a,
    0xd8e219, 0xdae319, 0xdde318, 0xdfe318, 0xe2e418, 0xe5e419, 0xe7e419, 0xeae51a, 0xece51b, 0xefe51c,
    0xf1e51d, 0xf4e61e, 0xf6e620, 0xf8e621, 0xfbe723, 0xfde725,
};
static const uint32_t INFERNO[256] = {
    0x000004, 0x010005, 0x010106, 0x010108, 0x02010a, 0x02020c, 0x02020e, 0x030210, 0x040312, 0x040314,
    0x050417, 0x060419, 0x07051b, 0x08051d, 0x09061f, 0x0a0722, 0x0b0724, 0x0c0826, 0x0d0829, 0x0e092b,
    0x10092d, 0x110a30, 0x120a32, 0x140b34, 0x150b37, 0x160b39, 0x180c3c, 0x190c3e, 0x1b0c41, 0x1c0c43,
    0x1e0c45, 0x1f0c48, 0x210c4a, 0x230c4c, 0x240c4f, 0x260c51, 0x280b53, 0x290b55, 0x2b0b57, 0x2d0b59,
    0x2f0a5b, 0x310a5c, 0x320a5e, 0x340a5f, 0x360961, 0x380962, 0x390963, 0x3b0964, 0x3d0965, 0x3e0966,
    0x400a67, 0x420a68, 0x440a68, 0x450a69, 0x470b6a, 0x490b6a, 0x4a0c6b, 0x4c0c6b, 0x4d0d6c, 0x4f0d6c,
    0x510e6c, 0x520e6d, 0x540f6d, 0x550f6d, 0x57106e, 0x59106e, 0x5a116e, 0x5c126e, 0x5d126e, 0x5f136e,
    0x61136e, 0x62146e, 0x64156e, 0x65156e, 0x67166e, 0x69166e, 0x6a176e, 0x6c186e, 0x6d186e, 0x6f196e,
    0x71196e, 0x721a6e, 0x741a6e, 0x751b6e, 0x771c6d, 0x781c6d, 0x7a1d6d, 0x7c1d6d, 0x7d1e6d, 0x7f1e6c,
    0x801f6c, 0x82206c, 0x84206b, 0x85216b, 0x87216b, 0x88226a, 0x8a226a, 0x8c2369, 0x8d2369, 0x8f2469,
    0x902568, 0x922568, 0x932667, 0x952667, 0x972766, 0x982766, 0x9a2865, 0x9b2964, 0x9d2964, 0x9f2a63,
    0xa02a63, 0xa22b62, 0xa32c61, 0xa52c60, 0xa62d60, 0xa82e5f, 0xa92e5e, 0xab2f5e, 0xad305d, 0xae305c,
    0xb0315b, 0xb1325a, 0xb3325a, 0xb43359, 0xb63458, 0xb73557, 0xb93556, 0xba3655, 0xbc3754, 0xbd3853,
    0xbf3952, 0xc03a51, 0xc13a50, 0xc33b4f, 0xc43c4e, 0xc63d4d, 0xc73e4c, 0xc83f4b, 0xca404a, 0xcb4149,
    0xcc4248, 0xce4347, 0xcf4446, 0xd04545, 0xd24644, 0xd34743, 0xd44842, 0xd54a41, 0xd74b3f, 0xd84c3e,
    0xd94d3d, 0xda4e3c, 0xdb503b, 0xdd513a, 0xde5238, 0xdf5337, 0xe05536, 0xe15635, 0xe25734, 0xe35933,
    0xe45a31, 0xe55c30, 0xe65d2f, 0xe75e2e, 0xe8602d, 0xe9612b, 0xea632a, 0xeb6429, 0xeb6628, 0xec6726,
    0xed6925, 0xee6a24, 0xef6c23, 0xef6e21, 0xf06f20, 0xf1711f, 0xf1731d, 0xf2741c, 0xf3761b, 0xf37819,
    0xf47918, 0xf57b17, 0xf57d15, 0xf67e14, 0xf68013, 0xf78212, 0xf78410, 0xf8850f, 0xf8870e, 0xf8890c,
    0xf98b0b, 0xf98c0a, 0xf98e09, 0xfa9008, 0xfa9207, 0xfa9407, 0xfb9606, 0xfb9706, 0xfb9906, 0xfb9b06,
    0xfb9d07, 0xfc9f07, 0xfca108, 0xfca309, 0xfca50a, 0xfca60c, 0xfca80d, 0xfcaa0f, 0xfcac11, 0xfcae12,
    0xfcb014, 0xfcb216, 0xfcb418, 0xfbb61a, 0xfbb81d, 0xfbba1f, 0xfbbc21, 0xfbbe23, 0xfac026, 0xfac228,
    0xfac42a, 0xfac62d, 0xf9c72f, 0xf9c932, 0xf9cb35, 0xf8cd37, 0xf8cf3a, 0xf7d13d, 0xf7d340, 0xf6d543,
    0xf6d746, 0xf5d949, 0xf5db4c, 0xf4dd4f, 0xf4df53, 0xf4e156, 0xf3e35a, 0xf3e55d, 0xf2e661, 0xf2e865,
    0xf2ea69, 0xf1ec6d, 0xf1ed71, 0xf1ef75, 0xf1f179, 0xf2f27d, 0xf2f482, 0xf3f586, 0xf3f68a, 0xf4f88e,
    0xf5f992, 0xf6fa96, 0xf8fb9a, 0xf9fc9d, 0xfafda1, 0xfcffa4,
};

#define TABLE_SIZE 256

void overlay_options_default(OverlayOptions *opts) {
    *opts = (OverlayOptions){.colormap = COLORMAP_VIRIDIS,
                             .opacity = OVERLAY_DEFAULT_OPACITY,
                             .sigma = OVERLAY_DEFAULT_SIGMA,
                             .normalize = OVERLAY_NORMALIZE_RANGE};
}

static const char *const COLORMAP_NAMES[COLORMAP_COUNT] = {"viridis", "inferno", "jet"};

int colormap_parse(const char *name, Colormap *out, Error *err) {
    for (int i = 0; name && i < COLORMAP_COUNT; i++) {
        if (strcasecmp(name, COLORMAP_NAMES[i]) == 0) {
            *out = (Colormap)i;
            return 0;
        }
    }
    return error_set(err, "unknown colormap '%s' (choose viridis, inferno or jet)", name ? name : "(null)");
}

const char *colormap_name(Colormap colormap) {
    return (unsigned)colormap < COLORMAP_COUNT ? COLORMAP_NAMES[colormap] : "unknown";
}

static const char *const NORMALIZE_NAMES[OVERLAY_NORMALIZE_COUNT] = {"range", "max", "none"};

int overlay_normalize_parse(const char *name, OverlayNormalize *out, Error *err) {
    for (int i = 0; name && i < OVERLAY_NORMALIZE_COUNT; i++) {
        if (strcasecmp(name, NORMALIZE_NAMES[i]) == 0) {
            *out = (OverlayNormalize)i;
            return 0;
        }
    }
    return error_set(err, "unknown normalisation '%s' (choose range, max or none)", name ? name : "(null)");
}

const char *overlay_normalize_name(OverlayNormalize normalize) {
    return (unsigned)normalize < OVERLAY_NORMALIZE_COUNT ? NORMALIZE_NAMES[normalize] : "unknown";
}

/* t in [0, 1] -> one 8-bit channel (as float) of a table, interpolated. */
static void table_color(const uint32_t *table, float t, float rgb[3]) {
    float position = t * (TABLE_SIZE - 1);
    int i = (int)position;
    if (i > TABLE_SIZE - 2) i = TABLE_SIZE - 2;
    float f = position - (float)i;
    for (int c = 0; c < 3; c++) {
        int shift = 16 - 8 * c;
        float a = (float)((table[i] >> shift) & 0xff), b = (float)((table[i + 1] >> shift) & 0xff);
        rgb[c] = a + f * (b - a);
    }
}

/* Piecewise-linear ramp through (x[k], y[k]), x increasing. */
static float ramp(float t, const float *x, const float *y, int count) {
    if (t <= x[0]) return y[0];
    for (int k = 1; k < count; k++)
        if (t <= x[k]) return y[k - 1] + (t - x[k - 1]) / (x[k] - x[k - 1]) * (y[k] - y[k - 1]);
    return y[count - 1];
}

/* matplotlib's _jet_data segments (lib/matplotlib/_cm.py). */
static void jet_color(float t, float rgb[3]) {
    static const float rx[] = {0.0f, 0.35f, 0.66f, 0.89f, 1.0f}, ry[] = {0.0f, 0.0f, 1.0f, 1.0f, 0.5f};
    static const float gx[] = {0.0f, 0.125f, 0.375f, 0.64f, 0.91f, 1.0f}, gy[] = {0, 0, 1, 1, 0, 0};
    static const float bx[] = {0.0f, 0.11f, 0.34f, 0.65f, 1.0f}, by[] = {0.5f, 1.0f, 1.0f, 0.0f, 0.0f};
    rgb[0] = 255.0f * ramp(t, rx, ry, 5);
    rgb[1] = 255.0f * ramp(t, gx, gy, 6);
    rgb[2] = 255.0f * ramp(t, bx, by, 5);
}

/* The colour as floats in 0..255 (blending keeps the precision). */
static void colormap_rgb(Colormap colormap, float t, float rgb[3]) {
    t = t > 0.0f ? (t < 1.0f ? t : 1.0f) : 0.0f; /* NaN -> 0 too */
    if (colormap == COLORMAP_JET) jet_color(t, rgb);
    else table_color(colormap == COLORMAP_INFERNO ? INFERNO : VIRIDIS, t, rgb);
}

static unsigned char to_byte(float v) { return (unsigned char)(v <= 0.0f ? 0 : v >= 255.0f ? 255 : (int)(v + 0.5f)); }

Rgb colormap_color(Colormap colormap, float t) {
    float rgb[3];
    colormap_rgb(colormap, t, rgb);
    return (Rgb){to_byte(rgb[0]), to_byte(rgb[1]), to_byte(rgb[2])};
}

/* ---- upsampling and smoothing -------------------------------------------- */

/* A normalised Gaussian over whole-pixel offsets k, kept for |k| <= reach,
 * with its cumulative sum (mass of offsets <= k, including taps beyond
 * reach). Only offsets below the axis length matter, so reach <= length
 * even when the kernel is wider. */
typedef struct {
    int reach;
    float *g;     /* [2 * reach + 1], g[k + reach] */
    double *cdf;  /* [2 * reach + 1] */
} Kernel;

static void kernel_free(Kernel *k) {
    free(k->g);
    free(k->cdf);
    *k = (Kernel){0};
}

static int kernel_make(Kernel *k, float sigma_px, int length, Error *err) {
    *k = (Kernel){0};
    /* 3 sigma keeps all but 0.3% of the mass; sigma below 0.05 px is identity. */
    long radius = sigma_px >= 0.05f ? (long)ceilf(3.0f * sigma_px) : 0;
    k->reach = (int)(radius < length ? radius : length);
    k->g = malloc(sizeof(float) * (size_t)(2 * k->reach + 1));
    k->cdf = malloc(sizeof(double) * (size_t)(2 * k->reach + 1));
    if (!k->g || !k->cdf) {
        kernel_free(k);
        return error_set(err, "out of memory for the attention smoothing kernel");
    }
    double total = 0.0, below = 0.0;
    for (long i = -radius; i <= radius; i++) {
        double v = radius ? exp(-0.5 * (double)i * (double)i / ((double)sigma_px * sigma_px)) : 1.0;
        total += v;
        if (i < -k->reach) below += v;
    }
    double running = below;
    for (int i = -k->reach; i <= k->reach; i++) {
        double v = radius ? exp(-0.5 * (double)i * (double)i / ((double)sigma_px * sigma_px)) : 1.0;
        running += v;
        k->g[i + k->reach] = (float)(v / total);
        k->cdf[i + k->reach] = running / total;
    }
    return 0;
}

static float kernel_at(const Kernel *k, int offset) {
    return offset < -k->reach || offset > k->reach ? 0.0f : k->g[offset + k->reach];
}

static double kernel_cdf(const Kernel *k, int offset) {
    return offset < -k->reach ? 0.0 : offset > k->reach ? 1.0 : k->cdf[offset + k->reach];
}

/* How much source pixel s contributes to blurred pixel x when the borders
 * replicate the edge pixels: every tap falling off an end lands on that end. */
static double blur_weight(const Kernel *k, int length, int x, int s) {
    if (length == 1) return 1.0;
    if (s == 0) return kernel_cdf(k, -x);
    if (s == length - 1) return 1.0 - kernel_cdf(k, length - 2 - x);
    return kernel_at(k, s - x);
}

/* Bilinear position of pixel s: the left neighbour cell and the fraction
 * towards the right one; cell centres at (j + 0.5) / cells of the axis. */
static void bilinear_cell(int s, int length, int cells, int *left, float *frac) {
    float u = ((float)s + 0.5f) * (float)cells / (float)length - 0.5f;
    if (u < 0.0f) u = 0.0f;
    if (u > (float)(cells - 1)) u = (float)(cells - 1);
    int j = (int)u;
    if (j > cells - 2) j = cells > 1 ? cells - 2 : 0;
    *left = j;
    *frac = cells > 1 ? u - (float)j : 0.0f;
}

static float hat(int j, int left, float frac) {
    return left == j ? 1.0f - frac : left == j - 1 ? frac : 0.0f;
}

/* weights[x * cells + j]: the share of cell j in pixel x along one axis after
 * bilinear upsampling and then the Gaussian blur. Both are linear and the 2-D
 * versions separable, so the 2-D map is sum_ij a_ij wy_i(y) wx_j(x) exactly. */
static int axis_weights(float **out, int length, int cells, float sigma_cells, Error *err) {
    int *left = malloc(sizeof(int) * (size_t)length);
    float *frac = malloc(sizeof(float) * (size_t)length);
    float *w = calloc((size_t)length * (size_t)cells, sizeof(float));
    Kernel k = {0};
    if (!left || !frac || !w || kernel_make(&k, sigma_cells * (float)length / (float)cells, length, err) != 0) {
        free(left), free(frac), free(w);
        *out = NULL;
        return error_set(err, "out of memory for attention weights (%d pixels x %d cells)", length, cells);
    }
    for (int s = 0; s < length; s++) bilinear_cell(s, length, cells, &left[s], &frac[s]);
    for (int j = 0, lo = 0; j < cells; j++) {
        while (lo < length - 1 && left[lo] < j - 1) lo++; /* cell j's hat covers lo..hi */
        int hi = lo;
        while (hi + 1 < length && left[hi + 1] <= j) hi++;
        int x0 = lo - k.reach > 0 ? lo - k.reach : 0, x1 = hi + k.reach < length ? hi + k.reach : length - 1;
        for (int x = x0; x <= x1; x++) {
            double sum = 0.0;
            for (int s = lo; s <= hi; s++) sum += hat(j, left[s], frac[s]) * blur_weight(&k, length, x, s);
            w[(size_t)x * (size_t)cells + (size_t)j] = (float)sum;
        }
    }
    kernel_free(&k);
    free(left), free(frac);
    *out = w;
    return 0;
}

static int check_map_inputs(int width, int height, const float *alpha, int grid_h, int grid_w,
                            const OverlayOptions *o, Error *err) {
    if (width < 1 || height < 1) return error_set(err, "attention overlay: invalid size %dx%d", width, height);
    if (!alpha) return error_set(err, "attention overlay: no attention map given");
    if (grid_h < 1 || grid_w < 1 || grid_h > 4096 || grid_w > 4096)
        return error_set(err, "attention overlay: invalid attention grid %dx%d", grid_h, grid_w);
    for (int i = 0; i < grid_h * grid_w; i++)
        if (!(alpha[i] >= 0.0f) || isinf(alpha[i]))
            return error_set(err, "attention overlay: attention weight %d is %g (need finite values >= 0)", i,
                             (double)alpha[i]);
    if (!(o->opacity >= 0.0f && o->opacity <= 1.0f))
        return error_set(err, "attention overlay: opacity %g is outside 0..1", (double)o->opacity);
    if (!(o->sigma >= 0.0f && o->sigma <= OVERLAY_MAX_SIGMA))
        return error_set(err, "attention overlay: smoothing %g is outside 0..%g grid cells", (double)o->sigma,
                         (double)OVERLAY_MAX_SIGMA);
    if ((unsigned)o->colormap >= COLORMAP_COUNT)
        return error_set(err, "attention overlay: unknown colormap %d", (int)o->colormap);
    if ((unsigned)o->normalize >= OVERLAY_NORMALIZE_COUNT)
        return error_set(err, "attention overlay: unknown normalisation %d", (int)o->normalize);
    return 0;
}

/* Step 3 under NONE: log(v L) / log(L), so the uniform weight 1/L is 0 and
 * all the attention on one cell is 1, whatever the grid's size. */
static void absolute_scale(float *map, size_t count, int cells) {
    float inverse_log = cells > 1 ? 1.0f / logf((float)cells) : 0.0f;
    for (size_t i = 0; i < count; i++) {
        float v = cells > 1 ? (map[i] > 0.0f ? logf(map[i] * (float)cells) * inverse_log : 0.0f) : map[i];
        map[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    }
}

/* Step 3: (v - low) / (peak - low), clamped to [0, 1], or absolute_scale. */
static void normalise_map(float *map, size_t count, OverlayNormalize normalize, int cells) {
    if (normalize == OVERLAY_NORMALIZE_NONE) {
        absolute_scale(map, count, cells);
        return;
    }
    float peak = map[0], low = map[0];
    for (size_t i = 1; i < count; i++) {
        peak = map[i] > peak ? map[i] : peak;
        low = map[i] < low ? map[i] : low;
    }
    float offset = normalize == OVERLAY_NORMALIZE_RANGE ? low : 0.0f;
    float span = peak - offset;
    /* Rounding leaves a flat map a few ulps uneven: under RANGE that noise
     * would be stretched over the whole colormap, so treat it as flat (0). */
    int flat = normalize == OVERLAY_NORMALIZE_RANGE ? span <= 1e-5f * peak : !(span > 0.0f);
    float scale = flat ? (normalize == OVERLAY_NORMALIZE_RANGE ? 0.0f : 1.0f) : 1.0f / span;
    for (size_t i = 0; i < count; i++) {
        float v = (map[i] - offset) * scale;
        map[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    }
}

int overlay_attention_map(float *map, int width, int height, const float *alpha, int grid_h, int grid_w,
                          const OverlayOptions *opts, Error *err) {
    OverlayOptions defaults;
    overlay_options_default(&defaults);
    const OverlayOptions *o = opts ? opts : &defaults;
    if (!map) return error_set(err, "attention overlay: no output map given");
    if (check_map_inputs(width, height, alpha, grid_h, grid_w, o, err) != 0) return -1;
    float *wx = NULL, *wy = NULL, *row = malloc(sizeof(float) * (size_t)grid_w);
    if (!row || axis_weights(&wx, width, grid_w, o->sigma, err) != 0 ||
        axis_weights(&wy, height, grid_h, o->sigma, err) != 0) {
        free(row), free(wx);
        return error_set(err, "attention overlay: out of memory for a %dx%d map", width, height);
    }
    for (int y = 0; y < height; y++) {
        const float *wyy = wy + (size_t)y * (size_t)grid_h;
        for (int j = 0; j < grid_w; j++) {
            float sum = 0.0f;
            for (int i = 0; i < grid_h; i++) sum += wyy[i] * alpha[i * grid_w + j];
            row[j] = sum;
        }
        float *dst = map + (size_t)y * (size_t)width;
        for (int x = 0; x < width; x++) {
            const float *wxx = wx + (size_t)x * (size_t)grid_w;
            float sum = 0.0f;
            for (int j = 0; j < grid_w; j++) sum += wxx[j] * row[j];
            dst[x] = sum;
        }
    }
    free(row), free(wx), free(wy);
    normalise_map(map, (size_t)width * (size_t)height, o->normalize, grid_h * grid_w);
    return 0;
}

float attention_peak(const float *alpha, int cells) {
    float peak = 0.0f;
    for (int i = 0; i < cells; i++) peak = alpha[i] > peak ? alpha[i] : peak;
    return peak;
}

/* ---- blending ------------------------------------------------------------- */

static void read_rgb(const Image *img, size_t pixel, float rgb[3]) {
    const unsigned char *p = img->pixels + pixel * (size_t)img->channels;
    int gray = img->channels < 3;
    for (int c = 0; c < 3; c++) rgb[c] = (float)p[gray ? 0 : c];
}

int overlay_attention(Image *out, const Image *image, const float *alpha, int grid_h, int grid_w,
                      const OverlayOptions *opts, Error *err) {
    *out = (Image){0};
    OverlayOptions defaults;
    overlay_options_default(&defaults);
    const OverlayOptions *o = opts ? opts : &defaults;
    if (!image || !image->pixels || image->channels < 1 || image->channels > 4)
        return error_set(err, "attention overlay: the picture has no pixels or an invalid channel count");
    size_t count = (size_t)image->width * (size_t)image->height;
    float *map = malloc(sizeof(float) * (count ? count : 1));
    if (!map) return error_set(err, "attention overlay: out of memory for a %dx%d map", image->width, image->height);
    if (overlay_attention_map(map, image->width, image->height, alpha, grid_h, grid_w, o, err) != 0 ||
        image_alloc(out, image->width, image->height, 3, err) != 0) {
        free(map);
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        float pic[3], color[3];
        read_rgb(image, i, pic);
        colormap_rgb(o->colormap, map[i], color);
        float a = o->opacity * map[i], shade = 1.0f - OVERLAY_DIM * o->opacity * (1.0f - map[i]);
        for (int c = 0; c < 3; c++)
            out->pixels[i * 3 + (size_t)c] = to_byte((1.0f - a) * shade * pic[c] + a * color[c]);
    }
    free(map);
    return 0;
}
