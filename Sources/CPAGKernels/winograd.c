// winograd.c: pag's own Winograd F(4x4, 3x3) convolutions (see winograd_loops.h for the method).
// kernels.c uses them for the `fast` policy where oneDNN 2.6 has no Winograd (below AVX-512):
// 3x3, stride 1, padding at most 2, C and O >= 16. One variant per instruction set, chosen from
// pag_isa() on every call, like the engine's other loops.
#include "pag_winograd.h"

#include "pag_kernels.h"
#include "pag_simd.h"

#include <stdlib.h>
#include <string.h>

// The baseline copy passes 8-float vectors between its static functions; no ABI crosses here.
#pragma clang diagnostic ignored "-Wpsabi"

struct wino_loops {
    void (*to_hwc)(const float *, int64_t, int64_t, int64_t, float *, int64_t, int64_t, int64_t, int64_t, int64_t);
    void (*transform_inputs)(const float *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float *);
    void (*multiply)(const float *, const float *, int64_t, int64_t, int64_t, float *);
    void (*transform_outputs)(const float *, int64_t, int64_t, int64_t, const float *, int64_t, int64_t, int64_t,
                              int64_t, int64_t, float *);
    void (*transform_output_grads)(const float *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float *);
    void (*accumulate_products)(const float *, const float *, int64_t, int64_t, int64_t, int64_t, float *);
};

#define V(name) name##_baseline
#include "winograd_loops.h"
#undef V

#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define V(name) name##_avx2
#include "winograd_loops.h"
#undef V
#pragma clang attribute pop
#endif

static const struct wino_loops *loops(void) {
#if defined(__x86_64__)
    if (pag_isa() >= PAG_ISA_AVX2) return &wino_loops_avx2;
#endif
    return &wino_loops_baseline;
}

int pag_winograd_supports(const pag_conv_shape *s) {
    return s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1 && s->ph >= 0 && s->ph <= 2 &&
           s->pw >= 0 && s->pw <= 2 && s->c >= 16 && s->o >= 16 && s->oh == s->h + 2 * s->ph - 2 &&
           s->ow == s->w + 2 * s->pw - 2 && s->oh > 0 && s->ow > 0;
}

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Geometry of one Winograd pass: input channels ci (padded to cs), output channels co (to os).
typedef struct pass {
    int64_t n, ci, h, w, co, ph, pw, oh, ow;
    int64_t cs, os, th, tw, tb;
} pass;

static pass make_pass(int64_t n, int64_t ci, int64_t h, int64_t w, int64_t co, int64_t ph, int64_t pw) {
    pass p = {n, ci, h, w, co, ph, pw, h + 2 * ph - 2, w + 2 * pw - 2, round_up(ci, 8), round_up(co, 16), 0, 0, 0};
    p.th = (p.oh + 3) / 4;
    p.tw = (p.ow + 3) / 4;
    // Tiles per block: V and M blocks together about 256 KB, so they stay in L2.
    int64_t tb = 65536 / (36 * (p.cs + p.os)) / 6 * 6;
    p.tb = tb < 6 ? 6 : tb;
    return p;
}

// U[xi][c][o] = (G g G^T)[xi] for g = w[o][c] (OIHW, or CIHW turned 180 degrees when flip is set,
// for backward-data), zero in the padding.
static float *transform_weights(const pass *p, const float *w, int flip) {
    float *u = calloc((size_t)(36 * p->cs * p->os), sizeof(float));
    if (!u) return NULL;
    for (int64_t o = 0; o < p->co; o++)
        for (int64_t c = 0; c < p->ci; c++) {
            float g[9], t[18];
            for (int k = 0; k < 9; k++)
                g[k] = flip ? w[(c * p->co + o) * 9 + 8 - k] : w[(o * p->ci + c) * 9 + k];
            for (int j = 0; j < 3; j++) {  // G g: 6 rows of 3
                float g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
                t[j] = g0 / 4;
                t[3 + j] = -(g0 + g1 + g2) / 6;
                t[6 + j] = -(g0 - g1 + g2) / 6;
                t[9 + j] = (g0 + 2 * g1 + 4 * g2) / 24;
                t[12 + j] = (g0 - 2 * g1 + 4 * g2) / 24;
                t[15 + j] = g2;
            }
            for (int i = 0; i < 6; i++) {  // (G g) G^T
                float g0 = t[3 * i], g1 = t[3 * i + 1], g2 = t[3 * i + 2];
                float r[6] = {g0 / 4, -(g0 + g1 + g2) / 6, -(g0 - g1 + g2) / 6, (g0 + 2 * g1 + 4 * g2) / 24,
                              (g0 - 2 * g1 + 4 * g2) / 24, g2};
                for (int j = 0; j < 6; j++) u[((6 * i + j) * p->cs + c) * p->os + o] = r[j];
            }
        }
    return u;
}

// Images split into at most `chunks` contiguous ranges; chunk k is [first(k), first(k + 1)).
static int64_t chunk_start(int64_t n, int64_t chunks, int64_t k) { return n * k / chunks; }

typedef struct forward_job {
    const pass *p;
    const struct wino_loops *L;
    const float *x, *u, *bias;
    float *y;
    int64_t chunks;
    int failed;
} forward_job;

static void forward_chunk(void *ctx, int64_t k) {
    forward_job *j = ctx;
    const pass *p = j->p;
    int64_t prows = p->th * 4 + 2, pcols = p->tw * 4 + 2;
    float *hwc = malloc((size_t)(prows * pcols * p->cs) * sizeof(float));
    float *vb = calloc((size_t)(36 * p->tb * p->cs), sizeof(float));
    float *mb = malloc((size_t)(36 * p->tb * p->os) * sizeof(float));
    if (hwc && vb && mb) {
        int64_t tiles = p->th * p->tw;
        for (int64_t i = chunk_start(p->n, j->chunks, k); i < chunk_start(p->n, j->chunks, k + 1); i++) {
            j->L->to_hwc(j->x + i * p->ci * p->h * p->w, p->ci, p->h, p->w, hwc, prows, pcols, p->cs, p->ph, p->pw);
            float *yi = j->y + i * p->co * p->oh * p->ow;
            for (int64_t t0 = 0; t0 < tiles; t0 += p->tb) {
                int64_t nt = tiles - t0 < p->tb ? tiles - t0 : p->tb;
                j->L->transform_inputs(hwc, pcols, p->cs, p->tw, t0, nt, p->tb, vb);
                j->L->multiply(vb, j->u, p->tb, p->cs, p->os, mb);
                j->L->transform_outputs(mb, p->tb, p->os, p->co, j->bias, p->tw, t0, nt, p->oh, p->ow, yi);
            }
        }
    } else {
        j->failed = 1;  // a plain int: only ever set, read after the parallel region
    }
    free(hwc);
    free(vb);
    free(mb);
}

static int run_forward(const pass *p, const float *x, const float *u, const float *bias, float *y) {
    int64_t threads = pag_parallel_threads();
    forward_job job = {p, loops(), x, u, bias, y, p->n < threads ? p->n : threads, 0};
    pag_parallel_for(job.chunks, forward_chunk, &job);
    return job.failed ? PAG_WINOGRAD_OUT_OF_MEMORY : 0;
}

int pag_winograd_forward(const pag_conv_shape *s, const float *x, const float *w, const float *bias, float *y) {
    pass p = make_pass(s->n, s->c, s->h, s->w, s->o, s->ph, s->pw);
    float *u = transform_weights(&p, w, 0);
    if (!u) return PAG_WINOGRAD_OUT_OF_MEMORY;
    int st = run_forward(&p, x, u, bias, y);
    free(u);
    return st;
}

int pag_winograd_backward_data(const pag_conv_shape *s, const float *gy, const float *w, float *gx) {
    // The gradient of a stride-1 3x3 convolution is the convolution of gy, padded by 2 - p, with
    // the weights turned 180 degrees and O, C swapped.
    pass p = make_pass(s->n, s->o, s->oh, s->ow, s->c, 2 - s->ph, 2 - s->pw);
    float *u = transform_weights(&p, w, 1);
    if (!u) return PAG_WINOGRAD_OUT_OF_MEMORY;
    int st = run_forward(&p, gy, u, NULL, gx);
    free(u);
    return st;
}

typedef struct weights_job {
    const pass *p;
    const struct wino_loops *L;
    const float *x, *gy;
    float *s;  // one S[36][cs][os] per chunk
    int64_t chunks;
    int failed;
} weights_job;

static void weights_chunk(void *ctx, int64_t k) {
    weights_job *j = ctx;
    const pass *p = j->p;
    int64_t prows = p->th * 4 + 2, pcols = p->tw * 4 + 2;
    float *hwc = malloc((size_t)(prows * pcols * p->cs) * sizeof(float));
    float *ghwc = malloc((size_t)(p->th * 4 * p->tw * 4 * p->os) * sizeof(float));
    float *vb = calloc((size_t)(36 * p->tb * p->cs), sizeof(float));
    float *zb = calloc((size_t)(36 * p->tb * p->os), sizeof(float));
    float *s = j->s + k * 36 * p->cs * p->os;
    if (hwc && ghwc && vb && zb) {
        int64_t tiles = p->th * p->tw;
        for (int64_t i = chunk_start(p->n, j->chunks, k); i < chunk_start(p->n, j->chunks, k + 1); i++) {
            j->L->to_hwc(j->x + i * p->ci * p->h * p->w, p->ci, p->h, p->w, hwc, prows, pcols, p->cs, p->ph, p->pw);
            j->L->to_hwc(j->gy + i * p->co * p->oh * p->ow, p->co, p->oh, p->ow, ghwc, p->th * 4, p->tw * 4, p->os, 0, 0);
            for (int64_t t0 = 0; t0 < tiles; t0 += p->tb) {
                int64_t nt = tiles - t0 < p->tb ? tiles - t0 : p->tb;
                j->L->transform_inputs(hwc, pcols, p->cs, p->tw, t0, nt, p->tb, vb);
                j->L->transform_output_grads(ghwc, p->tw * 4, p->os, p->tw, t0, nt, p->tb, zb);
                j->L->accumulate_products(vb, zb, p->tb, nt, p->cs, p->os, s);
            }
        }
    } else {
        j->failed = 1;
    }
    free(hwc);
    free(ghwc);
    free(vb);
    free(zb);
}

int pag_winograd_backward_weights(const pag_conv_shape *sh, const float *x, const float *gy, float *gw,
                                  float *gbias) {
    pass p = make_pass(sh->n, sh->c, sh->h, sh->w, sh->o, sh->ph, sh->pw);
    // A fixed number of chunks, summed in order: the result does not depend on the thread count.
    weights_job job = {&p, loops(), x, gy, NULL, p.n < 8 ? p.n : 8, 0};
    size_t per = (size_t)(36 * p.cs * p.os);
    job.s = calloc(per * (size_t)job.chunks, sizeof(float));
    if (!job.s) return PAG_WINOGRAD_OUT_OF_MEMORY;
    pag_parallel_for(job.chunks, weights_chunk, &job);
    if (job.failed) {
        free(job.s);
        return PAG_WINOGRAD_OUT_OF_MEMORY;
    }
    for (int64_t k = 1; k < job.chunks; k++)
        for (size_t i = 0; i < per; i++) job.s[i] += job.s[k * per + i];
    // gw = G^T S G for every (o, c).
    for (int64_t o = 0; o < p.co; o++)
        for (int64_t c = 0; c < p.ci; c++) {
            float t[18];  // G^T S: 3 rows of 6
            for (int j = 0; j < 6; j++) {
                float s0 = job.s[((0 + j) * p.cs + c) * p.os + o], s1 = job.s[((6 + j) * p.cs + c) * p.os + o],
                      s2 = job.s[((12 + j) * p.cs + c) * p.os + o], s3 = job.s[((18 + j) * p.cs + c) * p.os + o],
                      s4 = job.s[((24 + j) * p.cs + c) * p.os + o], s5 = job.s[((30 + j) * p.cs + c) * p.os + o];
                t[j] = s0 / 4 - (s1 + s2) / 6 + (s3 + s4) / 24;
                t[6 + j] = (s2 - s1) / 6 + (s3 - s4) / 12;
                t[12 + j] = -(s1 + s2) / 6 + (s3 + s4) / 6 + s5;
            }
            for (int i = 0; i < 3; i++) {
                const float *r = t + 6 * i;
                float *out = gw + (o * p.ci + c) * 9 + 3 * i;
                out[0] = r[0] / 4 - (r[1] + r[2]) / 6 + (r[3] + r[4]) / 24;
                out[1] = (r[2] - r[1]) / 6 + (r[3] - r[4]) / 12;
                out[2] = -(r[1] + r[2]) / 6 + (r[3] + r[4]) / 6 + r[5];
            }
        }
    free(job.s);
    if (gbias) {
        int64_t plane = p.oh * p.ow;
        for (int64_t o = 0; o < p.co; o++) {
            double acc = 0;
            for (int64_t i = 0; i < p.n; i++) {
                const float *g = gy + (i * p.co + o) * plane;
                for (int64_t q = 0; q < plane; q++) acc += g[q];
            }
            gbias[o] = (float)acc;
        }
    }
    return 0;
}
