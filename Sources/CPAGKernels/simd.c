// simd.c: the dispatch table of the engine's loops (pag_simd.h). simd_loops.h is compiled three
// times, for x86-64 baseline, AVX2 + FMA and AVX-512, and one table is chosen at load time from
// what the CPU reports, capped by PAG_ISA. This file is the only place a variant is chosen.
#include "pag_simd.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pag_simd_ops {
    void (*unary)(int, int64_t, const float *, float *, float, float);
    void (*binary)(int, int64_t, int64_t, const float *, int64_t, int64_t, const float *, int64_t, int64_t, float *, float, float);
    float (*sum)(const float *, int64_t);
    float (*dot)(const float *, float, const float *, float, int64_t);
    void (*axpy)(int64_t, float, const float *, float *);
    void (*accumulate)(int64_t, const float *, int64_t, float *, int64_t);
    void (*lincomb)(int64_t, int64_t, int64_t, int64_t, int, const float *, const float *, const float *,
                    const float *, const float *, const float *, const float *, float *);
    void (*maxpool2x2)(int64_t, int64_t, int64_t, int64_t, int64_t, const float *, float *, int32_t *);
    void (*avgpool)(const pag_pool_shape *, int64_t, const float *, float *);
    void (*avgpool_adjoint)(const pag_pool_shape *, int64_t, const float *, float *);
    void (*log_softmax)(int64_t, int64_t, int64_t, int64_t, const float *, float *);
    void (*sgd)(int64_t, float *, const float *, float *, float, float, float, float, int, int);
    void (*adam)(int64_t, float *, const float *, float *, float *, float, float, float, float, float, float);
} pag_simd_ops;

#define V(name) name##_baseline
#include "simd_loops.h"
#undef V

#if defined(__x86_64__)
#define PAG_HAVE_X86_VARIANTS 1
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define V(name) name##_avx2
#include "simd_loops.h"
#undef V
#pragma clang attribute pop

#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"))), apply_to = function)
#define V(name) name##_avx512
#include "simd_loops.h"
#undef V
#pragma clang attribute pop
#endif

static const pag_simd_ops *const g_tables[3] = {
    &ops_baseline,
#ifdef PAG_HAVE_X86_VARIANTS
    &ops_avx2, &ops_avx512,
#else
    &ops_baseline, &ops_baseline,
#endif
};

static int g_cpu_isa;
static _Atomic(const pag_simd_ops *) g_ops = &ops_baseline;
static atomic_int g_isa;

static int detect_cpu(void) {
#ifdef PAG_HAVE_X86_VARIANTS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return PAG_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return PAG_ISA_AVX2;
#endif
    return PAG_ISA_BASELINE;
}

int pag_isa_set(int isa) {
    if (isa < PAG_ISA_BASELINE) isa = PAG_ISA_BASELINE;
    if (isa > g_cpu_isa) isa = g_cpu_isa;
    atomic_store(&g_ops, g_tables[isa]);
    atomic_store(&g_isa, isa);
    return isa;
}

// Chosen once, before main: the best variant the CPU has, or PAG_ISA's if lower.
__attribute__((constructor)) static void pag_simd_init(void) {
    g_cpu_isa = detect_cpu();
    int isa = g_cpu_isa;
    const char *env = getenv("PAG_ISA");
    if (env && *env) {
        if (!strcmp(env, "baseline")) isa = PAG_ISA_BASELINE;
        else if (!strcmp(env, "avx2")) isa = PAG_ISA_AVX2;
        else if (!strcmp(env, "avx512")) isa = PAG_ISA_AVX512;
        else fprintf(stderr, "pag: PAG_ISA='%s' is not one of baseline, avx2, avx512; using %s\n", env, pag_isa_name(isa));
    }
    pag_isa_set(isa);
}

int pag_isa(void) { return atomic_load(&g_isa); }
int pag_isa_cpu(void) { return g_cpu_isa; }
const char *pag_isa_name(int isa) {
    switch (isa) {
    case PAG_ISA_AVX2: return "avx2";
    case PAG_ISA_AVX512: return "avx512";
    default: return "baseline";
    }
}

#define OPS atomic_load_explicit(&g_ops, memory_order_relaxed)

void pag_simd_unary(int op, int64_t n, const float *x, float *y, float p0, float p1) {
    OPS->unary(op, n, x, y, p0, p1);
}
void pag_simd_binary(int op, int64_t rows, int64_t n, const float *a, int64_t ra, int64_t sa, const float *b,
                     int64_t rb, int64_t sb, float *o, float p0, float p1) {
    OPS->binary(op, rows, n, a, ra, sa, b, rb, sb, o, p0, p1);
}
float pag_simd_sum(const float *p, int64_t n) { return OPS->sum(p, n); }
float pag_simd_dot(const float *a, float ma, const float *b, float mb, int64_t n) { return OPS->dot(a, ma, b, mb, n); }
void pag_simd_axpy(int64_t n, float a, const float *x, float *y) { OPS->axpy(n, a, x, y); }

void pag_dropout_mask(uint64_t state[4], int64_t n, float p, float keep, float *out) {
    // RandomGenerator.nextFloat, n times: xoshiro256**, the top 24 bits of each output.
    uint64_t s0 = state[0], s1 = state[1], s2 = state[2], s3 = state[3];
    for (int64_t i = 0; i < n; i++) {
        uint64_t x = s1 * 5, r = ((x << 7) | (x >> 57)) * 9, t = s1 << 17;
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t;
        s3 = (s3 << 45) | (s3 >> 19);
        out[i] = (float)(r >> 40) * (1.0f / 16777216.0f) < p ? 0.f : keep;
    }
    state[0] = s0; state[1] = s1; state[2] = s2; state[3] = s3;
}

void pag_simd_accumulate(int64_t n, const float *src, int64_t si, float *dst, int64_t so) {
    OPS->accumulate(n, src, si, dst, so);
}
void pag_simd_lincomb(int64_t first, int64_t planes, int64_t c, int64_t hw, int nterms, const float *s0,
                      const float *k0, const float *s1, const float *k1, const float *s2, const float *k2,
                      const float *z, float *dst) {
    OPS->lincomb(first, planes, c, hw, nterms, s0, k0, s1, k1, s2, k2, z, dst);
}
void pag_simd_maxpool2x2(int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow, const float *x,
                         float *out, int32_t *idx) {
    OPS->maxpool2x2(planes, h, w, oh, ow, x, out, idx);
}
void pag_simd_avgpool(const pag_pool_shape *s, int64_t planes, const float *x, float *out) {
    OPS->avgpool(s, planes, x, out);
}
void pag_simd_avgpool_adjoint(const pag_pool_shape *s, int64_t planes, const float *g, float *gx) {
    OPS->avgpool_adjoint(s, planes, g, gx);
}
void pag_simd_log_softmax(int64_t col0, int64_t col1, int64_t n, int64_t inner, const float *x, float *y) {
    OPS->log_softmax(col0, col1, n, inner, x, y);
}
void pag_simd_sgd(int64_t n, float *p, const float *g, float *buf, float lr, float momentum, float dampening,
                  float weight_decay, int nesterov, int first) {
    OPS->sgd(n, p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first);
}
void pag_simd_adam(int64_t n, float *p, const float *g, float *m, float *v, float b1, float b2, float eps,
                   float weight_decay, float step_size, float bc2_sqrt) {
    OPS->adam(n, p, g, m, v, b1, b2, eps, weight_decay, step_size, bc2_sqrt);
}
