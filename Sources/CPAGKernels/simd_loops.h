// simd_loops.h: the loops behind pag_simd.h, written once. simd.c includes this file once per
// instruction set with V(name) naming the variant (name_baseline, name_avx2, ...) and a clang
// target pragma around it, so each copy is vectorized for its target. Do not include elsewhere.
//
// Reductions use explicit 16-wide vector accumulators (GCC vector extensions) so the summation
// order is the same in every variant; plain elementwise loops are left to the auto-vectorizer.

typedef float V(f16) __attribute__((vector_size(64), aligned(4)));

// 16 floats from p (unaligned), and the sum of a vector's lanes in lane order (the same order in
// every variant). Macros, not functions: a 64-byte vector argument has a different ABI per target.
#define LOAD16(p) ({ V(f16) v_; __builtin_memcpy(&v_, (p), sizeof v_); v_; })
#define HSUM16(v) ({ V(f16) h_ = (v); float s_ = 0; for (int l_ = 0; l_ < 16; l_++) s_ += h_[l_]; s_; })

static float V(sum)(const float *p, int64_t n) {
    V(f16) acc0 = {0}, acc1 = {0};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 += LOAD16(p + i);
        acc1 += LOAD16(p + i + 16);
    }
    float s = HSUM16(acc0 + acc1);
    for (; i < n; i++) s += p[i];
    return s;
}

static float V(dot)(const float *a, float ma, const float *b, float mb, int64_t n) {
    V(f16) acc0 = {0}, acc1 = {0};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 += (LOAD16(a + i) - ma) * (LOAD16(b + i) - mb);
        acc1 += (LOAD16(a + i + 16) - ma) * (LOAD16(b + i + 16) - mb);
    }
    if (i + 16 <= n) {
        acc0 += (LOAD16(a + i) - ma) * (LOAD16(b + i) - mb);
        i += 16;
    }
    float s = HSUM16(acc0 + acc1);
    for (; i < n; i++) s += (a[i] - ma) * (b[i] - mb);
    return s;
}

static void V(axpy)(int64_t n, float a, const float *restrict x, float *restrict y) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

static void V(accumulate)(int64_t n, const float *restrict src, int64_t si, float *restrict dst, int64_t so) {
    if (so == 0) {
        if (si == 1 && n >= 16) {
            dst[0] += V(sum)(src, n);
        } else {
            float acc = 0;
            for (int64_t i = 0; i < n; i++) acc += src[i * si];
            dst[0] += acc;
        }
    } else if (si == 1 && so == 1) {
        for (int64_t i = 0; i < n; i++) dst[i] += src[i];
    } else {
        for (int64_t i = 0; i < n; i++) dst[i * so] += src[i * si];
    }
}

// Swift's min / max, NaN behavior included: max(x, y) = y >= x ? y : x, min(x, y) = y < x ? y : x.
#define PAG_MAX(x, y) ((y) >= (x) ? (y) : (x))
#define PAG_MIN(x, y) ((y) < (x) ? (y) : (x))

#define UNARY_LOOP(expr)                                          \
    for (int64_t i = 0; i < n; i++) {                             \
        float x = src[i];                                         \
        dst[i] = (expr);                                          \
    }                                                             \
    return;

static void V(unary)(int op, int64_t n, const float *src, float *dst, float p0, float p1) {
    switch (op) {
    case PAG_U_SCALE: UNARY_LOOP(x * p0)
    case PAG_U_ADD_SCALAR: UNARY_LOOP(x + p0)
    case PAG_U_EXP: UNARY_LOOP(expf(x))
    case PAG_U_LOG: UNARY_LOOP(logf(x))
    case PAG_U_SQRT: UNARY_LOOP(sqrtf(x))
    case PAG_U_SQUARE: UNARY_LOOP(x * x)
    case PAG_U_POW: UNARY_LOOP(powf(x, p0))
    case PAG_U_ABS: UNARY_LOOP(fabsf(x))
    case PAG_U_RELU: UNARY_LOOP(x > 0 ? x : 0.0f)
    case PAG_U_CLAMP: UNARY_LOOP(PAG_MIN(PAG_MAX(x, p0), p1))
    case PAG_U_TANH: UNARY_LOOP(tanhf(x))
    case PAG_U_SIGMOID: UNARY_LOOP(1.0f / (1.0f + expf(-x)))
    case PAG_U_SOFTPLUS: UNARY_LOOP(p0 * x > p1 ? x : log1pf(expf(p0 * x)) / p0)
    case PAG_U_THRESHOLD_MASK: UNARY_LOOP(p0 * x > p1 ? 1.0f : 0.0f)
    case PAG_U_SIN: UNARY_LOOP(sinf(x))
    case PAG_U_COS: UNARY_LOOP(cosf(x))
    case PAG_U_SILU: UNARY_LOOP(x / (1.0f + expf(-x)))
    default: __builtin_trap();
    }
}

// The four stride cases of one binary op over `rows` rows of n outputs: both contiguous, b
// broadcast, a broadcast, general.
#define BINARY_CASES(expr)                                                                   \
    for (int64_t r = 0; r < rows; r++) {                                                     \
        const float *restrict a = a0 + r * ra, *restrict b = b0 + r * rb;                    \
        float *restrict o = o0 + r * n;                                                      \
        if (sa == 1 && sb == 1) {                                                            \
            for (int64_t i = 0; i < n; i++) { float x = a[i], y = b[i]; o[i] = (expr); }     \
        } else if (sa == 1 && sb == 0) {                                                     \
            const float y = b[0];                                                            \
            for (int64_t i = 0; i < n; i++) { float x = a[i]; o[i] = (expr); }               \
        } else if (sa == 0 && sb == 1) {                                                     \
            const float x = a[0];                                                            \
            for (int64_t i = 0; i < n; i++) { float y = b[i]; o[i] = (expr); }               \
        } else {                                                                             \
            for (int64_t i = 0; i < n; i++) { float x = a[i * sa], y = b[i * sb]; o[i] = (expr); } \
        }                                                                                    \
    }                                                                                        \
    return;

static void V(binary)(int op, int64_t rows, int64_t n, const float *a0, int64_t ra, int64_t sa,
                      const float *b0, int64_t rb, int64_t sb, float *o0, float p0, float p1) {
    switch (op) {
    case PAG_B_ADD: BINARY_CASES(x + y)
    case PAG_B_SUB: BINARY_CASES(x - y)
    case PAG_B_MUL: BINARY_CASES(x * y)
    case PAG_B_DIV: BINARY_CASES(x / y)
    case PAG_B_MASK_POSITIVE: BINARY_CASES(y > 0 ? x : 0.0f)
    case PAG_B_MASK_RANGE: BINARY_CASES((y >= p0 && y <= p1) ? x : 0.0f)
    case PAG_B_MUL_SIGN: BINARY_CASES(y > 0 ? x : (y < 0 ? -x : 0.0f))
    case PAG_B_TAKE_A: BINARY_CASES(((void)y, x))
    case PAG_B_SILU_BACKWARD: BINARY_CASES(x * (1.0f / (1.0f + expf(-y))) * (1.0f + y * (1.0f - 1.0f / (1.0f + expf(-y)))))
    default: __builtin_trap();
    }
}

static void V(lincomb)(int64_t first, int64_t planes, int64_t c, int64_t hw, int nterms,
                       const float *s0, const float *k0, const float *s1, const float *k1,
                       const float *s2, const float *k2, const float *z, float *dst) {
    for (int64_t plane = first; plane < first + planes; plane++) {
        int64_t ch = plane % c, off = plane * hw;
        const float *restrict x0 = s0 + off;
        float *restrict d = dst + off;
        const float a = k0[ch], zz = z[ch];
        if (nterms == 1) {
            for (int64_t i = 0; i < hw; i++) d[i] = a * x0[i] + zz;
        } else if (nterms == 2) {
            const float *restrict x1 = s1 + off;
            const float b = k1[ch];
            for (int64_t i = 0; i < hw; i++) d[i] = a * x0[i] + b * x1[i] + zz;
        } else {
            const float *restrict x1 = s1 + off, *restrict x2 = s2 + off;
            const float b = k1[ch], e = k2[ch];
            for (int64_t i = 0; i < hw; i++) d[i] = a * x0[i] + b * x1[i] + e * x2[i] + zz;
        }
    }
}

static void V(maxpool2x2)(int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow,
                          const float *x, float *out, int32_t *idx) {
    const int64_t in_plane = h * w, out_plane = oh * ow;
    for (int64_t p = 0; p < planes; p++) {
        const float *src = x + p * in_plane;
        float *dst = out + p * out_plane;
        int32_t *di = idx + p * out_plane;
        for (int64_t oy = 0; oy < oh; oy++) {
            const int32_t row0 = (int32_t)(2 * oy * w);
            const float *restrict r0 = src + row0, *restrict r1 = r0 + w;
            float *restrict o = dst + oy * ow;
            int32_t *restrict oi = di + oy * ow;
            for (int64_t ox = 0; ox < ow; ox++) {
                const int32_t i = (int32_t)(2 * ox);
                float a = r0[i], b = r0[i + 1], c = r1[i], d = r1[i + 1];
                float best = a;
                int32_t bi = row0 + i;
                bi = b > best ? row0 + i + 1 : bi;
                best = b > best ? b : best;
                bi = c > best ? row0 + (int32_t)w + i : bi;
                best = c > best ? c : best;
                bi = d > best ? row0 + (int32_t)w + i + 1 : bi;
                best = d > best ? d : best;
                // NaN wins its window, as in PyTorch (the comparisons above skip NaN).
                int nan = (a != a) | (b != b) | (c != c) | (d != d);
                o[ox] = nan ? __builtin_nanf("") : best;
                oi[ox] = bi;
            }
        }
    }
}

static void V(avgpool)(const pag_pool_shape *s, int64_t planes, const float *x, float *out) {
    const int64_t in_plane = s->h * s->w, out_plane = s->oh * s->ow;
    const float scale = 1.0f / (float)(s->kh * s->kw);
    const int simple2 = s->kh == 2 && s->kw == 2 && s->sh == 2 && s->sw == 2 && s->ph == 0 && s->pw == 0;
    for (int64_t p = 0; p < planes; p++) {
        const float *src = x + p * in_plane;
        float *dst = out + p * out_plane;
        if (simple2) {
            for (int64_t oy = 0; oy < s->oh; oy++) {
                const float *restrict r0 = src + 2 * oy * s->w, *restrict r1 = r0 + s->w;
                float *restrict o = dst + oy * s->ow;
                for (int64_t ox = 0; ox < s->ow; ox++)
                    o[ox] = (((0.0f + r0[2 * ox]) + r0[2 * ox + 1]) + r1[2 * ox] + r1[2 * ox + 1]) * scale;
            }
            continue;
        }
        for (int64_t oy = 0; oy < s->oh; oy++) {
            const int64_t y0 = oy * s->sh - s->ph;
            const int64_t ky0 = y0 < 0 ? -y0 : 0, ky1 = s->kh < s->h - y0 ? s->kh : s->h - y0;
            for (int64_t ox = 0; ox < s->ow; ox++) {
                const int64_t x0 = ox * s->sw - s->pw;
                const int64_t kx0 = x0 < 0 ? -x0 : 0, kx1 = s->kw < s->w - x0 ? s->kw : s->w - x0;
                float acc = 0;
                for (int64_t ky = ky0; ky < ky1; ky++) {
                    const float *row = src + (y0 + ky) * s->w + x0;
                    for (int64_t kx = kx0; kx < kx1; kx++) acc += row[kx];
                }
                dst[oy * s->ow + ox] = acc * scale;
            }
        }
    }
}

static void V(avgpool_adjoint)(const pag_pool_shape *s, int64_t planes, const float *g, float *gx) {
    const int64_t in_plane = s->h * s->w, out_plane = s->oh * s->ow;
    const float scale = 1.0f / (float)(s->kh * s->kw);
    const int simple2 = s->kh == 2 && s->kw == 2 && s->sh == 2 && s->sw == 2 && s->ph == 0 && s->pw == 0;
    for (int64_t p = 0; p < planes; p++) {
        const float *src = g + p * out_plane;
        float *dst = gx + p * in_plane;
        if (simple2) {
            // Windows do not overlap: every input gets exactly one value (gx is zero, so 0 + v = v).
            for (int64_t oy = 0; oy < s->oh; oy++) {
                float *restrict r0 = dst + 2 * oy * s->w, *restrict r1 = r0 + s->w;
                const float *restrict gi = src + oy * s->ow;
                for (int64_t ox = 0; ox < s->ow; ox++) {
                    const float v = gi[ox] * scale;
                    r0[2 * ox] += v; r0[2 * ox + 1] += v;
                    r1[2 * ox] += v; r1[2 * ox + 1] += v;
                }
            }
            continue;
        }
        for (int64_t oy = 0; oy < s->oh; oy++) {
            const int64_t y0 = oy * s->sh - s->ph;
            const int64_t ky0 = y0 < 0 ? -y0 : 0, ky1 = s->kh < s->h - y0 ? s->kh : s->h - y0;
            for (int64_t ox = 0; ox < s->ow; ox++) {
                const int64_t x0 = ox * s->sw - s->pw;
                const int64_t kx0 = x0 < 0 ? -x0 : 0, kx1 = s->kw < s->w - x0 ? s->kw : s->w - x0;
                const float v = src[oy * s->ow + ox] * scale;
                for (int64_t ky = ky0; ky < ky1; ky++) {
                    float *row = dst + (y0 + ky) * s->w + x0;
                    for (int64_t kx = kx0; kx < kx1; kx++) row[kx] += v;
                }
            }
        }
    }
}

static void V(log_softmax)(int64_t col0, int64_t col1, int64_t n, int64_t inner, const float *x, float *y) {
    for (int64_t col = col0; col < col1; col++) {
        const int64_t o = col / inner, i = col % inner;
        const float *src = x + o * n * inner + i;
        float *dst = y + o * n * inner + i;
        float m = -__builtin_inff();
        for (int64_t k = 0; k < n; k++) m = PAG_MAX(m, src[k * inner]);
        float s = 0;
        for (int64_t k = 0; k < n; k++) s += expf(src[k * inner] - m);
        const float lse = m + logf(s);
        for (int64_t k = 0; k < n; k++) dst[k * inner] = src[k * inner] - lse;
    }
}

static void V(sgd)(int64_t n, float *restrict p, const float *restrict g, float *restrict buf, float lr,
                   float mom, float damp, float wd, int nesterov, int first) {
    if (!buf) {
        for (int64_t j = 0; j < n; j++) p[j] -= lr * (g[j] + wd * p[j]);
        return;
    }
    if (first) {
        for (int64_t j = 0; j < n; j++) buf[j] = g[j] + wd * p[j];
    } else {
        for (int64_t j = 0; j < n; j++) buf[j] = mom * buf[j] + (1 - damp) * (g[j] + wd * p[j]);
    }
    if (nesterov) {
        for (int64_t j = 0; j < n; j++) p[j] -= lr * (g[j] + wd * p[j] + mom * buf[j]);
    } else {
        for (int64_t j = 0; j < n; j++) p[j] -= lr * buf[j];
    }
}

static void V(adam)(int64_t n, float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                    float b1, float b2, float eps, float wd, float step_size, float bc2_sqrt) {
    for (int64_t j = 0; j < n; j++) {
        const float d = g[j] + wd * p[j];
        m[j] = b1 * m[j] + (1 - b1) * d;
        v[j] = b2 * v[j] + (1 - b2) * d * d;
        p[j] -= step_size * m[j] / (sqrtf(v[j]) / bc2_sqrt + eps);
    }
}

static const pag_simd_ops V(ops) = {
    V(unary), V(binary), V(sum), V(dot), V(axpy), V(accumulate), V(lincomb), V(maxpool2x2),
    V(avgpool), V(avgpool_adjoint), V(log_softmax), V(sgd), V(adam),
};

#undef PAG_MAX
#undef PAG_MIN
#undef UNARY_LOOP
#undef BINARY_CASES
#undef LOAD16
#undef HSUM16
