// winograd.c: pag's own Winograd F(4x4, 3x3) convolutions (see winograd_loops.h for the method).
// kernels.c uses them for the `fast` policy (everywhere below AVX-512, where oneDNN 2.6 has no
// Winograd; for layers of at most 32 x 64 channels on AVX-512): 3x3, stride 1, padding at most 2,
// C and O >= 16, outputs of at least 64 pixels. A baseline and an AVX2 variant, and on AVX-512
// the AVX2 transforms with 16-wide products (winograd_avx512.h), chosen from pag_isa() on every
// call, like the engine's other loops.
#include "pag_winograd.h"

#include "pag_kernels.h"
#include "pag_simd.h"
#include "pag_storage.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

// The baseline copy passes 8-float vectors between its static functions; no ABI crosses here.
#pragma clang diagnostic ignored "-Wpsabi"

struct wino_loops {
    void (*to_hwc)(const float *, int64_t, int64_t, int64_t, float *, int64_t, int64_t, int64_t, int64_t, int64_t);
    void (*transform_inputs)(const float *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float *);
    void (*multiply)(const float *, const float *, int64_t, int64_t, int64_t, float *);
    void (*transform_outputs)(const float *, int64_t, int64_t, const float *, int64_t, int64_t, int64_t, int64_t,
                              int64_t, int64_t, float *);
    void (*transform_outputs_pooled)(const float *, int64_t, int64_t, const float *, int64_t, int64_t, int64_t,
                                     int64_t, int64_t, int64_t, float *, int32_t *);
    void (*transform_output_grads)(const float *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                   float *);
    void (*accumulate_products)(const float *, const float *, int64_t, int64_t, int64_t, int, float *);
    void (*transform_filters)(const float *, float *, int64_t);
    void (*gather_filters)(const float *, int64_t, int64_t, int64_t, float *);
};

// The tile-major layout of V, M and Z (winograd_loops.h): [t][channel / 8][xi][channel % 8].
#define VEC_AT(buf, t, k8, n8, xi) ((buf) + (((t) * (n8) + (k8)) * 36 + (xi)) * 8)

#define V(name) name##_baseline
#include "winograd_loops.h"
#undef V

#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define V(name) name##_avx2
#include "winograd_loops.h"
#undef V
#pragma clang attribute pop

#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx2,fma"))), apply_to = function)
#include "winograd_avx512.h"
#pragma clang attribute pop

// The AVX2 transforms with the AVX-512 products.
static const struct wino_loops wino_loops_avx512 = {
    to_hwc_avx2, transform_inputs_avx2, multiply_avx512, transform_outputs_avx2, transform_outputs_pooled_avx2,
    transform_output_grads_avx2, accumulate_products_avx512, transform_filters_avx2, gather_filters_avx2,
};
#endif

static const struct wino_loops *loops(void) {
#if defined(__x86_64__)
    if (pag_isa() >= PAG_ISA_AVX512) return &wino_loops_avx512;
    if (pag_isa() >= PAG_ISA_AVX2) return &wino_loops_avx2;
#endif
    return &wino_loops_baseline;
}

int pag_winograd_supports(const pag_conv_shape *s) {
    return pag_conv_is_ordinary(s) && s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1 && s->ph >= 0 && s->ph <= 2 &&
           s->pw >= 0 && s->pw <= 2 && s->c >= 16 && s->o >= 16 && s->oh == s->h + 2 * s->ph - 2 &&
           s->ow == s->w + 2 * s->pw - 2 && s->oh * s->ow >= 64;  // smaller: transforms outweigh the gain
}

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Geometry of one Winograd pass: input channels ci (padded to cs), output channels co (to os),
// th x tw tiles per image, blocks of tb tiles (spanning several images when these are small).
typedef struct pass {
    int64_t n, ci, h, w, co, ph, pw, oh, ow;
    int64_t cs, os, th, tw, tb;
} pass;

static pass make_pass(int64_t n, int64_t ci, int64_t h, int64_t w, int64_t co, int64_t ph, int64_t pw) {
    pass p = {n, ci, h, w, co, ph, pw, h + 2 * ph - 2, w + 2 * pw - 2, round_up(ci, 8), round_up(co, 16), 0, 0, 0};
    p.th = (p.oh + 3) / 4;
    p.tw = (p.ow + 3) / 4;
    // The V and M blocks (36 x tb x (cs + os)) together about 256 KB, so they stay in L2 beside U;
    // but at least 48 tiles when U itself is larger than L2 (128 channels and more), as each block
    // reads U whole.
    int64_t tb = 65536 / (36 * (p.cs + p.os));
    if (36 * p.cs * p.os > 262144 && tb < 48) tb = 48;
    p.tb = tb < 6 ? 6 : tb / 6 * 6;
    return p;
}

// Items (images, channels) split into at most `chunks` contiguous ranges; chunk k is [first(k), first(k + 1)).
static int64_t chunk_start(int64_t n, int64_t chunks, int64_t k) { return n * k / chunks; }

// How chunk k (of `chunks`) of a pass's images is walked: its images [first, end), in groups of
// `group` copied to HWC (prows x pcols x cs floats each, `stride` apart), tpi tiles per image.
typedef struct chunk_walk {
    int64_t first, end, group, prows, pcols, stride, tpi;
} chunk_walk;

static chunk_walk walk_chunk(const pass *p, int64_t chunks, int64_t k) {
    chunk_walk c = {chunk_start(p->n, chunks, k), chunk_start(p->n, chunks, k + 1), 0, p->th * 4 + 2, p->tw * 4 + 2, 0,
                    p->th * p->tw};
    c.stride = c.prows * c.pcols * p->cs;
    c.group = p->tb / c.tpi;  // enough images for a block of tiles, at least one, at most the chunk's
    if (c.group < 1) c.group = 1;
    if (c.group > c.end - c.first) c.group = c.end - c.first;
    return c;
}

// The input images [i, i + images) of the pass into the group's HWC buffer.
static void copy_inputs(const struct wino_loops *L, const pass *p, const chunk_walk *c, const float *x, int64_t i,
                        int64_t images, float *hwc) {
    for (int64_t g = 0; g < images; g++)
        L->to_hwc(x + (i + g) * p->ci * p->h * p->w, p->ci, p->h, p->w, hwc + g * c->stride, c->prows, c->pcols, p->cs,
                  p->ph, p->pw);
}

// A buffer of the calling thread's, kept between calls: U and S of ResNet's 512-channel layers
// are 38 MB, and fresh pages for them on every call cost more than the arithmetic.
enum { BUF_U, BUF_S, BUF_COUNT };
static pthread_key_t g_buffers_key;
static pthread_once_t g_buffers_once = PTHREAD_ONCE_INIT;
typedef struct buffers { pag_buffer b[BUF_COUNT]; } buffers;

static void buffers_free(void *ptr) {
    buffers *b = ptr;
    for (int i = 0; i < BUF_COUNT; i++) pag_buffer_release(&b->b[i]);
    free(b);
}
static void buffers_init(void) { pthread_key_create(&g_buffers_key, buffers_free); }

static float *thread_buffer(int slot, size_t floats) {
    pthread_once(&g_buffers_once, buffers_init);
    buffers *b = pthread_getspecific(g_buffers_key);
    if (!b) {
        if (!(b = calloc(1, sizeof *b))) return NULL;
        if (pthread_setspecific(g_buffers_key, b) != 0) {
            free(b);
            return NULL;
        }
    }
    return pag_buffer_reserve(&b->b[slot], floats * sizeof(float));
}

typedef struct filters_job {
    const pass *p;
    const struct wino_loops *L;
    const float *w;
    float *u;
    int flip;
} filters_job;

// U[xi][c][o] for the input channels of chunk k (of 8), 8 output channels at a time.
static void filters_chunk(void *ctx, int64_t k) {
    const filters_job *j = ctx;
    const pass *p = j->p;
    float taps[72];
    for (int64_t c = chunk_start(p->ci, 8, k); c < chunk_start(p->ci, 8, k + 1); c++)
        for (int64_t o = 0; o < p->os; o += 8) {
            for (int k = 0; k < 9; k++)
                for (int64_t l = 0; l < 8; l++)
                    taps[8 * k + l] = o + l >= p->co ? 0.f
                                      : j->flip      ? j->w[(c * p->co + o + l) * 9 + 8 - k]
                                                     : j->w[((o + l) * p->ci + c) * 9 + k];
            j->L->transform_filters(taps, j->u + c * p->os + o, p->cs * p->os);
        }
}

// U[xi][c][o] = (G g G^T)[xi] for g = w[o][c] (OIHW, or CIHW turned 180 degrees when flip is set,
// for backward-data), zero in the padding.
static float *transform_weights(const pass *p, const float *w, int flip) {
    float *u = thread_buffer(BUF_U, (size_t)(36 * p->cs * p->os));
    if (!u) return NULL;
    filters_job job = {p, loops(), w, u, flip};
    pag_parallel_for(8, filters_chunk, &job);
    for (int xi = 0; xi < 36; xi++)  // the padding channels
        memset(u + (xi * p->cs + p->ci) * p->os, 0, (size_t)((p->cs - p->ci) * p->os) * sizeof(float));
    return u;
}


typedef struct forward_job {
    const pass *p;
    const struct wino_loops *L;
    const float *x, *u, *bias;
    float *y;
    int32_t *idx;  // with pool: the winners' positions (or NULL)
    int pool;      // 1: y is the output max-pooled 2x2
    int64_t chunks;
    atomic_int failed;  // set by any worker that cannot allocate; read after the parallel region
} forward_job;

static void forward_chunk(void *ctx, int64_t k) {
    forward_job *j = ctx;
    const pass *p = j->p;
    chunk_walk c = walk_chunk(p, j->chunks, k);
    float *hwc = malloc((size_t)(c.group * c.stride) * sizeof(float));
    float *vb = calloc((size_t)(36 * p->tb * p->cs), sizeof(float));
    float *mb = malloc((size_t)(36 * p->tb * p->os) * sizeof(float));
    if (hwc && vb && mb) {
        for (int64_t i = c.first; i < c.end; i += c.group) {
            int64_t images = c.end - i < c.group ? c.end - i : c.group, tiles = images * c.tpi;
            copy_inputs(j->L, p, &c, j->x, i, images, hwc);
            int64_t image = j->pool ? p->co * (p->oh / 2) * (p->ow / 2) : p->co * p->oh * p->ow;
            float *yi = j->y + i * image;
            for (int64_t t0 = 0; t0 < tiles; t0 += p->tb) {
                int64_t nt = tiles - t0 < p->tb ? tiles - t0 : p->tb;
                j->L->transform_inputs(hwc, c.stride, c.pcols, p->cs, p->tw, c.tpi, t0, nt, vb);
                j->L->multiply(vb, j->u, nt, p->cs, p->os, mb);
                if (j->pool)
                    j->L->transform_outputs_pooled(mb, p->os, p->co, j->bias, p->tw, c.tpi, t0, nt, p->oh, p->ow, yi,
                                                   j->idx ? j->idx + i * image : NULL);
                else
                    j->L->transform_outputs(mb, p->os, p->co, j->bias, p->tw, c.tpi, t0, nt, p->oh, p->ow, yi);
            }
        }
    } else {
        j->failed = 1;
    }
    free(hwc);
    free(vb);
    free(mb);
}

static int run_forward(const pass *p, const float *x, const float *u, const float *bias, float *y, int pool,
                       int32_t *idx) {
    int64_t threads = pag_parallel_threads();
    forward_job job = {p, loops(), x, u, bias, y, idx, pool, p->n < threads ? p->n : threads, 0};
    pag_parallel_for(job.chunks, forward_chunk, &job);
    return job.failed ? PAG_KERNELS_OUT_OF_MEMORY : 0;
}

static int forward(const pag_conv_shape *s, const float *x, const float *w, const float *bias, float *y, int pool,
                   int32_t *idx) {
    pass p = make_pass(s->n, s->c, s->h, s->w, s->o, s->ph, s->pw);
    float *u = transform_weights(&p, w, 0);
    if (!u) return PAG_KERNELS_OUT_OF_MEMORY;
    return run_forward(&p, x, u, bias, y, pool, idx);
}

int pag_winograd_forward(const pag_conv_shape *s, const float *x, const float *w, const float *bias, float *y) {
    return forward(s, x, w, bias, y, 0, NULL);
}

int pag_winograd_forward_maxpool2x2(const pag_conv_shape *s, const float *x, const float *w, const float *bias,
                                    float *y, int32_t *idx) {
    return forward(s, x, w, bias, y, 1, idx);
}

int pag_winograd_backward_data(const pag_conv_shape *s, const float *gy, const float *w, float *gx) {
    // The gradient of a stride-1 3x3 convolution is the convolution of gy, padded by 2 - p, with
    // the weights turned 180 degrees and O, C swapped.
    pass p = make_pass(s->n, s->o, s->oh, s->ow, s->c, 2 - s->ph, 2 - s->pw);
    float *u = transform_weights(&p, w, 1);
    if (!u) return PAG_KERNELS_OUT_OF_MEMORY;
    return run_forward(&p, gy, u, NULL, gx, 0, NULL);
}

typedef struct weights_job {
    const pass *p;
    const struct wino_loops *L;
    const float *x, *gy;
    float *s;  // one S[36][cs][os] per chunk
    int64_t chunks;
    atomic_int failed;  // set by any worker that cannot allocate; read after the parallel region
} weights_job;

static void weights_chunk(void *ctx, int64_t k) {
    weights_job *j = ctx;
    const pass *p = j->p;
    chunk_walk c = walk_chunk(p, j->chunks, k);
    int64_t gstride = p->th * 4 * p->tw * 4 * p->os;  // gy's HWC copy: the output grid, no border
    float *hwc = malloc((size_t)(c.group * c.stride) * sizeof(float));
    float *ghwc = malloc((size_t)(c.group * gstride) * sizeof(float));
    float *vb = calloc((size_t)(36 * p->tb * p->cs), sizeof(float));
    float *zb = calloc((size_t)(36 * p->tb * p->os), sizeof(float));
    float *s = j->s + k * 36 * p->cs * p->os;
    if (hwc && ghwc && vb && zb) {
        for (int64_t i = c.first; i < c.end; i += c.group) {
            int64_t images = c.end - i < c.group ? c.end - i : c.group, tiles = images * c.tpi;
            copy_inputs(j->L, p, &c, j->x, i, images, hwc);
            for (int64_t g = 0; g < images; g++)
                j->L->to_hwc(j->gy + (i + g) * p->co * p->oh * p->ow, p->co, p->oh, p->ow, ghwc + g * gstride,
                             p->th * 4, p->tw * 4, p->os, 0, 0);
            for (int64_t t0 = 0; t0 < tiles; t0 += p->tb) {
                int64_t nt = tiles - t0 < p->tb ? tiles - t0 : p->tb;
                j->L->transform_inputs(hwc, c.stride, c.pcols, p->cs, p->tw, c.tpi, t0, nt, vb);
                j->L->transform_output_grads(ghwc, gstride, p->tw * 4, p->os, p->tw, c.tpi, t0, nt, zb);
                j->L->accumulate_products(vb, zb, nt, p->cs, p->os, i == c.first && t0 == 0, s);
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
    // Each block reads and writes S whole, so when S is larger than L2 blocks take 192 tiles.
    // Chunks of images get their own S, summed in order at the end; their number depends on the
    // shape alone, so the result does not depend on the thread count: 8, or 2 for a large S.
    size_t per = (size_t)(36 * p.cs * p.os);
    int large = per * sizeof(float) > (1u << 20);
    if (large && p.tb < 192) p.tb = 192;
    int64_t chunks = large ? 2 : 8;
    weights_job job = {&p, loops(), x, gy, NULL, p.n < chunks ? p.n : chunks, 0};
    job.s = thread_buffer(BUF_S, per * (size_t)job.chunks);
    if (!job.s) return PAG_KERNELS_OUT_OF_MEMORY;
    pag_parallel_for(job.chunks, weights_chunk, &job);
    if (job.failed) return PAG_KERNELS_OUT_OF_MEMORY;
    // gw = G^T S G for every (o, c), with S the chunks' sum; 8 output channels at a time.
    float taps[72];
    for (int64_t c = 0; c < p.ci; c++)
        for (int64_t o = 0; o < p.co; o += 8) {
            job.L->gather_filters(job.s + c * p.os + o, p.cs * p.os, job.chunks, (int64_t)per, taps);
            for (int64_t l = 0; l < 8 && o + l < p.co; l++)
                for (int k = 0; k < 9; k++) gw[((o + l) * p.ci + c) * 9 + k] = taps[8 * k + l];
        }
    if (gbias) pag_conv_bias_gradient(sh, gy, gbias);
    return 0;
}
