// simd_micro.c: times the engine's loops (Sources/CPAGKernels/simd.c) per instruction-set variant,
// single thread, on L2-resident buffers. Build and run:
//   cc -O3 -fno-math-errno -ISources/CPAGKernels/include bench/simd_micro.c Sources/CPAGKernels/simd.c -lm -o /tmp/simd_micro && /tmp/simd_micro
// Prints the best of 7 runs of each loop in ns per element for every variant the CPU has.
#define _POSIX_C_SOURCE 200809L
#include "pag_simd.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { N = 1 << 15 };
static float a[N], b[N], o[N], m[N], v[N];
static int32_t idx[N];
static volatile float sink;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define TIME(label, stmt)                                                     \
    do {                                                                      \
        double best = 1e9;                                                    \
        for (int rep = 0; rep < 7; rep++) {                                   \
            double t0 = now();                                                \
            for (int it = 0; it < 200; it++) { stmt; }                        \
            double t = (now() - t0) / 200 / N * 1e9;                          \
            if (t < best) best = t;                                           \
        }                                                                     \
        printf("  %-22s %7.3f ns/elem\n", label, best);                       \
    } while (0)

int main(void) {
    for (int i = 0; i < N; i++) { a[i] = (float)((i * 37) % 101) / 17.0f - 3; b[i] = (float)((i * 13) % 29) / 7.0f - 2; }
    const float k[64] = {1.5f}, z[64] = {0.25f};
    pag_pool_shape ps = {64, 64, 2, 2, 2, 2, 0, 0, 32, 32};
    for (int isa = 0; isa <= pag_isa_cpu(); isa++) {
        pag_isa_set(isa);
        printf("%s\n", pag_isa_name(pag_isa()));
        TIME("add", pag_simd_binary(PAG_B_ADD, 1, N, a, 0, 1, b, 0, 1, o, 0, 0));
        TIME("add bias (row bcast)", pag_simd_binary(PAG_B_ADD, N / 256, 256, a, 256, 1, b, 1, 0, o, 0, 0));
        TIME("relu_backward", pag_simd_binary(PAG_B_MASK_POSITIVE, 1, N, a, 0, 1, b, 0, 1, o, 0, 0));
        TIME("relu", pag_simd_unary(PAG_U_RELU, N, a, o, 0, 0));
        TIME("scale", pag_simd_unary(PAG_U_SCALE, N, a, o, 0.5f, 0));
        TIME("sqrt", pag_simd_unary(PAG_U_SQRT, N, b, o, 0, 0));
        TIME("exp (libm)", pag_simd_unary(PAG_U_EXP, N, a, o, 0, 0));
        TIME("sum", sink = pag_simd_sum(a, N));
        TIME("dot", sink = pag_simd_dot(a, 0.5f, b, 0.1f, N));
        TIME("lincomb 3 terms", pag_simd_lincomb(0, N / 1024, 32, 1024, 3, a, k, b, k, m, k, z, o));
        TIME("maxpool2x2 (per in)", pag_simd_maxpool2x2(N / 4096, 64, 64, 32, 32, a, o, idx));
        TIME("avgpool2x2 (per in)", pag_simd_avgpool(&ps, N / 4096, a, o));
        TIME("sgd momentum", pag_simd_sgd(N, m, a, v, 0.01f, 0.9f, 0, 0, 0, 0));
        TIME("adam", pag_simd_adam(N, m, a, v, o, 0.9f, 0.999f, 1e-8f, 0, 1e-3f, 1));
    }
    return 0;
}
