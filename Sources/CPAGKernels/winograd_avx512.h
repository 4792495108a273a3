// winograd_avx512.h: the two matrix products of pag's Winograd (multiply and
// accumulate_products, see winograd_loops.h) with 16-float vectors, for AVX-512 machines; the
// transforms stay 8 floats wide (winograd.c takes them from the AVX2 copy). Each output value
// is the same chain of fused multiply-adds in the same order as in the AVX2 copy, so the two
// give bit-identical results (ConvolutionChoiceTests); only more lanes run at once. On 2 Zen
// cores the product of LeNet's conv2 (32 x 64 channels) went from 134 to 207 GFLOP/s a core.
// Included once by winograd.c inside a target("avx512f,...") region, after the AVX2 copy.

typedef float w16 __attribute__((vector_size(64), aligned(4)));

static inline w16 w16_load(const float *p) {
    w16 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline w16 w16_splat(float f) { return (w16){f, f, f, f, f, f, f, f, f, f, f, f, f, f, f, f}; }
// Two 8-float vectors (a, b) as one 16-float vector, and back: M and Z keep 8 channels per vector.
static inline w16 w16_join(const float *a, const float *b) {
    float t[16];
    memcpy(t, a, 32);
    memcpy(t + 8, b, 32);
    return w16_load(t);
}
static inline void w16_split(w16 v, float *a, float *b) {
    memcpy(a, &v, 32);
    memcpy(b, (const float *)&v + 8, 32);
}

// As multiply_avx2: M[xi][t][o] = sum_c V[xi][t][c] U[xi][c][o]. Blocks of 6 tiles x 32 output
// channels (12 accumulators), then for a last 16 channels 12 tiles x 16 (or 6 at the end).
static void multiply_avx512(const float *vb, const float *u, int64_t nt, int64_t cs, int64_t os, float *mb) {
    int64_t c8s = cs / 8, o8s = os / 8, tile = 36 * 8 * c8s;
    for (int xi = 0; xi < 36; xi++) {
        const float *ux = u + xi * cs * os;
        int64_t o = 0;
        for (; o + 32 <= os; o += 32) {
            for (int64_t t = 0; t < nt; t += 6) {
                w16 acc[6][2];
                for (int i = 0; i < 6; i++) acc[i][0] = acc[i][1] = w16_splat(0.f);
                for (int64_t c8 = 0; c8 < c8s; c8++) {
                    const float *v0 = VEC_AT(vb, t, c8, c8s, xi), *uc = ux + c8 * 8 * os + o;
#pragma clang loop unroll(disable)
                    for (int cc = 0; cc < 8; cc++) {
                        w16 u0 = w16_load(uc + cc * os), u1 = w16_load(uc + cc * os + 16);
                        for (int i = 0; i < 6; i++) {
                            w16 v = w16_splat(v0[i * tile + cc]);
                            acc[i][0] += v * u0;
                            acc[i][1] += v * u1;
                        }
                    }
                }
                for (int i = 0; i < 6; i++)
                    for (int h = 0; h < 2; h++)
                        w16_split(acc[i][h], VEC_AT(mb, t + i, o / 8 + 2 * h, o8s, xi),
                                  VEC_AT(mb, t + i, o / 8 + 2 * h + 1, o8s, xi));
            }
        }
        for (; o < os; o += 16) {
            int tiles;
            for (int64_t t = 0; t < nt; t += tiles) {
                tiles = nt - t > 6 ? 12 : 6;  // tiles up to nt rounded up to 6 exist
                w16 acc[12];
                for (int i = 0; i < 12; i++) acc[i] = w16_splat(0.f);
                for (int64_t c8 = 0; c8 < c8s; c8++) {
                    const float *v0 = VEC_AT(vb, t, c8, c8s, xi), *uc = ux + c8 * 8 * os + o;
#pragma clang loop unroll(disable)
                    for (int cc = 0; cc < 8; cc++) {
                        w16 u0 = w16_load(uc + cc * os);
                        if (tiles == 12) {
                            for (int i = 0; i < 12; i++) acc[i] += w16_splat(v0[i * tile + cc]) * u0;
                        } else {
                            for (int i = 0; i < 6; i++) acc[i] += w16_splat(v0[i * tile + cc]) * u0;
                        }
                    }
                }
                for (int i = 0; i < tiles; i++)
                    w16_split(acc[i], VEC_AT(mb, t + i, o / 8, o8s, xi), VEC_AT(mb, t + i, o / 8 + 1, o8s, xi));
            }
        }
    }
}

// As accumulate_products_avx2: S[xi][c][o] (+)= sum_t V[xi][t][c] Z[xi][t][o], in blocks of 8
// input channels x 16 output channels (8 accumulators; cs is a multiple of 8, os of 16).
static void accumulate_products_avx512(const float *vb, const float *zb, int64_t nt, int64_t cs, int64_t os, int first,
                                       float *s) {
    int64_t c8s = cs / 8, o8s = os / 8;
    for (int xi = 0; xi < 36; xi++) {
        float *sx = s + xi * cs * os;
        for (int64_t c = 0; c < cs; c += 8) {
            for (int64_t o = 0; o < os; o += 16) {
                w16 acc[8];
                for (int i = 0; i < 8; i++) acc[i] = first ? w16_splat(0.f) : w16_load(sx + (c + i) * os + o);
                const float *vt = VEC_AT(vb, 0, c / 8, c8s, xi), *zt = VEC_AT(zb, 0, o / 8, o8s, xi);
                for (int64_t t = 0; t < nt; t++, vt += 36 * 8 * c8s, zt += 36 * 8 * o8s) {
                    w16 z = w16_join(zt, zt + 36 * 8);
                    for (int i = 0; i < 8; i++) acc[i] += w16_splat(vt[i]) * z;
                }
                for (int i = 0; i < 8; i++) memcpy(sx + (c + i) * os + o, &acc[i], sizeof acc[i]);
            }
        }
    }
}
