// winograd_loops.h: pag's own Winograd F(4x4, 3x3) convolution (winograd.c includes it once per
// instruction set, like simd_loops.h; V(name) gives each copy its own names). It exists for
// machines where oneDNN 2.6 has no Winograd (everything below AVX-512).
//
// Layouts: x NCHW, w OIHW, y NCHW, as the caller holds them, so no reorders. Work is split into
// blocks of TB output tiles (4x4 pixels of one image each). Per block:
//   V[xi][t][c]  = (B^T d B)[xi]  input transform of each 6x6 input patch d (c padded to 8)
//   M[xi][t][o]  = sum_c V[xi][t][c] U[xi][c][o]        36 small matrix products
//   y tile       = A^T M A (+ bias)                     output transform
// V, M (and Z below) are stored tile-major, [t][channel / 8][xi][channel % 8] (VEC_AT): the 36
// vectors a transform reads or writes are contiguous, at offsets the compiler knows, instead of
// 36 pointers a block apart that spill out of the registers.
// with U[xi][c][o] = (G g G^T)[xi] computed once per call. Backward-data is the same forward
// with the weights turned 180 degrees and transposed (O <-> C) and padding 2 - p. Backward-weights
// is the adjoint of the forward's arithmetic:
//   S[xi][c][o] += sum_t V[xi][t][c] Z[xi][t][o],  Z = A gy_tile A^T,  gw = G^T S G.
// Vectors are 8 floats (GCC vector extension): AVX2 registers, two SSE registers in the baseline.

typedef float V(v8) __attribute__((vector_size(32), aligned(4)));

static inline V(v8) V(load8)(const float *p) {
    V(v8) v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void V(store8)(float *p, V(v8) v) { memcpy(p, &v, sizeof v); }
static inline V(v8) V(splat)(float f) { return (V(v8)){f, f, f, f, f, f, f, f}; }

// d (36 vectors, 6x6 row-major) -> B^T d B, in place. Rows first, then columns.
static inline void V(input_transform)(V(v8) *d) {
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 6; i++) {
            // One line of 6 (a row on pass 0, a column on pass 1).
            int s0 = pass == 0 ? 6 * i : i, st = pass == 0 ? 1 : 6;
            V(v8) a0 = d[s0], a1 = d[s0 + st], a2 = d[s0 + 2 * st], a3 = d[s0 + 3 * st],
                  a4 = d[s0 + 4 * st], a5 = d[s0 + 5 * st];
            V(v8) f4 = V(splat)(4.f), f5 = V(splat)(5.f), f2 = V(splat)(2.f);
            d[s0] = f4 * a0 - f5 * a2 + a4;
            d[s0 + st] = -f4 * (a1 + a2) + a3 + a4;
            d[s0 + 2 * st] = f4 * (a1 - a2) - a3 + a4;
            d[s0 + 3 * st] = -f2 * (a1 - a3) - a2 + a4;
            d[s0 + 4 * st] = f2 * (a1 - a3) - a2 + a4;
            d[s0 + 5 * st] = f4 * a1 - f5 * a3 + a5;
        }
    }
}

// m (36 vectors, 6x6, vector xi at m + xi * stride floats) -> A^T m A (16 vectors, 4x4
// row-major). Each column is loaded as it is used, so few values are live at a time.
static inline void V(output_transform)(const float *m, int64_t stride, V(v8) *y) {
    V(v8) t[24];  // A^T m: 4 rows of 6
    V(v8) f2 = V(splat)(2.f), f4 = V(splat)(4.f), f8 = V(splat)(8.f);
    for (int j = 0; j < 6; j++) {
        V(v8) a0 = V(load8)(m + j * stride), a1 = V(load8)(m + (6 + j) * stride), a2 = V(load8)(m + (12 + j) * stride),
              a3 = V(load8)(m + (18 + j) * stride), a4 = V(load8)(m + (24 + j) * stride), a5 = V(load8)(m + (30 + j) * stride);
        V(v8) p12 = a1 + a2, m12 = a1 - a2, p34 = a3 + a4, m34 = a3 - a4;
        t[j] = a0 + p12 + p34;
        t[6 + j] = m12 + f2 * m34;
        t[12 + j] = p12 + f4 * p34;
        t[18 + j] = m12 + f8 * m34 + a5;
    }
    for (int i = 0; i < 4; i++) {
        const V(v8) *r = t + 6 * i;
        V(v8) p12 = r[1] + r[2], m12 = r[1] - r[2], p34 = r[3] + r[4], m34 = r[3] - r[4];
        y[4 * i] = r[0] + p12 + p34;
        y[4 * i + 1] = m12 + f2 * m34;
        y[4 * i + 2] = p12 + f4 * p34;
        y[4 * i + 3] = m12 + f8 * m34 + r[5];
    }
}

// g (16 vectors, 4x4) -> A g A^T (36 vectors, 6x6): the adjoint of output_transform.
static inline void V(output_adjoint)(const V(v8) *g, V(v8) *z) {
    V(v8) t[24];  // g A^T: 4 rows of 6
    V(v8) f2 = V(splat)(2.f), f4 = V(splat)(4.f), f8 = V(splat)(8.f);
    for (int i = 0; i < 4; i++) {
        V(v8) b0 = g[4 * i], b1 = g[4 * i + 1], b2 = g[4 * i + 2], b3 = g[4 * i + 3];
        V(v8) e = b0 + b2, o = b1 + b3, e4 = b0 + f4 * b2, o8 = f2 * b1 + f8 * b3;
        t[6 * i] = b0;
        t[6 * i + 1] = e + o;
        t[6 * i + 2] = e - o;
        t[6 * i + 3] = e4 + o8;
        t[6 * i + 4] = e4 - o8;
        t[6 * i + 5] = b3;
    }
    for (int j = 0; j < 6; j++) {
        V(v8) b0 = t[j], b1 = t[6 + j], b2 = t[12 + j], b3 = t[18 + j];
        V(v8) e = b0 + b2, o = b1 + b3, e4 = b0 + f4 * b2, o8 = f2 * b1 + f8 * b3;
        z[j] = b0;
        z[6 + j] = e + o;
        z[12 + j] = e - o;
        z[18 + j] = e4 + o8;
        z[24 + j] = e4 - o8;
        z[30 + j] = b3;
    }
}

// r[i][j] -> r[j][i] for an 8 x 8 block (unpack, shuffle, then swap 128-bit halves).
static inline void V(transpose8)(V(v8) *r) {
    V(v8) t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int i = 0; i < 8; i += 4)
        for (int k = 0; k < 2; k++) {
            u[i + 2 * k] = __builtin_shufflevector(t[i + k], t[i + 2 + k], 0, 1, 8, 9, 4, 5, 12, 13);
            u[i + 2 * k + 1] = __builtin_shufflevector(t[i + k], t[i + 2 + k], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    for (int j = 0; j < 4; j++) {
        r[j] = __builtin_shufflevector(u[j], u[4 + j], 0, 1, 2, 3, 8, 9, 10, 11);
        r[4 + j] = __builtin_shufflevector(u[j], u[4 + j], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

// Copies channels [0, ch) of one NCHW image (ch x rows x cols) into an HWC buffer of
// prows x pcols x cstride floats with its top-left pixel at (top, left); everything else 0.
// Blocks of 8 channels x 8 pixels are transposed in registers; the ragged edges go one by one.
static void V(to_hwc)(const float *img, int64_t ch, int64_t rows, int64_t cols, float *buf,
                      int64_t prows, int64_t pcols, int64_t cstride, int64_t top, int64_t left) {
    int64_t r0 = top < 0 ? -top : 0, r1 = rows < prows - top ? rows : prows - top;  // rows kept
    int64_t q0 = left < 0 ? -left : 0, q1 = cols < pcols - left ? cols : pcols - left;
    size_t pixel = (size_t)cstride * sizeof(float);
    // Zero what the copy leaves: rows above and below, the columns beside, the padding channels.
    memset(buf, 0, (size_t)((r0 + top) * pcols) * pixel);
    memset(buf + (r1 + top) * pcols * cstride, 0, (size_t)((prows - r1 - top) * pcols) * pixel);
    for (int64_t r = r0; r < r1; r++) {
        float *line = buf + (r + top) * pcols * cstride;
        memset(line, 0, (size_t)(q0 + left) * pixel);
        memset(line + (q1 + left) * cstride, 0, (size_t)(pcols - q1 - left) * pixel);
        if (ch < cstride)
            for (int64_t q = q0; q < q1; q++)
                memset(line + (q + left) * cstride + ch, 0, (size_t)(cstride - ch) * sizeof(float));
    }
    // 8 channel planes at a time, each read front to back (8 long streams for the prefetcher).
    int64_t c8 = ch / 8 * 8, plane = rows * cols;
    for (int64_t c = 0; c < c8; c += 8)
        for (int64_t r = r0; r < r1; r++) {
            const float *src = img + c * plane + r * cols;
            float *dst = buf + ((r + top) * pcols + left) * cstride + c;
            for (int64_t q = q0; q < q1; q += 8) {
                // The last block of a row overlaps the one before it rather than going pixel by
                // pixel (it rewrites the same values); only rows under 8 pixels go one by one.
                if (q + 8 > q1) {
                    if (q1 - q0 < 8) {
                        for (; q < q1; q++)
                            for (int64_t k = 0; k < 8; k++) dst[q * cstride + k] = src[k * plane + q];
                        break;
                    }
                    q = q1 - 8;
                }
                V(v8) b[8];
                for (int k = 0; k < 8; k++) b[k] = V(load8)(src + k * plane + q);
                V(transpose8)(b);
                for (int k = 0; k < 8; k++) V(store8)(dst + (q + k) * cstride, b[k]);
            }
        }
    for (int64_t c = c8; c < ch; c++)
        for (int64_t r = r0; r < r1; r++) {
            const float *src = img + c * plane + r * cols;
            float *dst = buf + ((r + top) * pcols + left) * cstride + c;
            for (int64_t q = q0; q < q1; q++) dst[q * cstride] = src[q];
        }
}

// Where tile t of a block lies: images of tpi tiles each (tw per row), one after the other.
#define TILE_AT(t, tpi, tw, g, ty, tx) int64_t g = (t) / (tpi), ty = (t) % (tpi) / (tw), tx = (t) % (tpi) % (tw)

// Vector xi of tile t, channels [8 k8, 8 k8 + 8), in a tile-major block of n8 channel octets.
// VEC_AT(buf, t, k8, n8, xi) (winograd.c): vector xi of tile t's channels [8 k8, 8 k8 + 8), n8 per tile.

// V[xi][t][c] for the tiles [t0, t0 + nt) of a group of images, from their HWC copies (cs channels
// per pixel, image_stride floats from one image to the next).
static void V(transform_inputs)(const float *hwc, int64_t image_stride, int64_t pcols, int64_t cs, int64_t tw,
                                int64_t tpi, int64_t t0, int64_t nt, float *vb) {
    V(v8) d[36];
    for (int64_t t = 0; t < nt; t++) {
        TILE_AT(t0 + t, tpi, tw, g, ty, tx);
        const float *img = hwc + g * image_stride;
        for (int64_t c = 0; c < cs; c += 8) {
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 6; j++) d[6 * i + j] = V(load8)(img + ((ty * 4 + i) * pcols + tx * 4 + j) * cs + c);
            V(input_transform)(d);
            float *v = VEC_AT(vb, t, c / 8, cs / 8, 0);
            for (int xi = 0; xi < 36; xi++) V(store8)(v + 8 * xi, d[xi]);
        }
    }
}

// M[xi][t][o] = sum_c V[xi][t][c] U[xi][c][o] for t < nt rounded up to 6 (at most the block), o < os
// (of 16). Output channels outermost, so a column block of U[xi] (cs x 16) stays in L1 while every
// tile of the block passes; the V block is sized to stay in L2. The sum runs over c in order.
static void V(multiply)(const float *vb, const float *u, int64_t nt, int64_t cs, int64_t os, float *mb) {
    int64_t c8s = cs / 8, o8s = os / 8;
    for (int xi = 0; xi < 36; xi++) {
        const float *ux = u + xi * cs * os;
        for (int64_t o = 0; o < os; o += 16) {
            for (int64_t t = 0; t < nt; t += 6) {
                V(v8) acc[6][2];
                for (int i = 0; i < 6; i++) acc[i][0] = acc[i][1] = V(splat)(0.f);
                for (int64_t c8 = 0; c8 < c8s; c8++) {
                    const float *v0 = VEC_AT(vb, t, c8, c8s, xi), *uc = ux + c8 * 8 * os + o;
                    int64_t tile = 36 * 8 * c8s;  // from one tile's vector to the next tile's
                    // Unrolled, some clang versions keep several channels' loads live and spill
                    // the 12 accumulators.
#pragma clang loop unroll(disable)
                    for (int cc = 0; cc < 8; cc++) {
                        V(v8) u0 = V(load8)(uc + cc * os), u1 = V(load8)(uc + cc * os + 8);
                        for (int i = 0; i < 6; i++) {
                            V(v8) v = V(splat)(v0[i * tile + cc]);
                            acc[i][0] += v * u0;
                            acc[i][1] += v * u1;
                        }
                    }
                }
                for (int i = 0; i < 6; i++) {
                    V(store8)(VEC_AT(mb, t + i, o / 8, o8s, xi), acc[i][0]);
                    V(store8)(VEC_AT(mb, t + i, o / 8 + 1, o8s, xi), acc[i][1]);
                }
            }
        }
    }
}

// Tile t's 16 pixels (r[4 i + j] is pixel (i, j)) for the output channels [o, o + 8): A^T M A,
// plus bias. Returns how many of the 8 channels exist (o_count - o, at most 8).
static inline int64_t V(output_tile)(const float *mb, int64_t os, int64_t o_count, const float *bias, int64_t t,
                                     int64_t o, V(v8) *r) {
    V(output_transform)(VEC_AT(mb, t, o / 8, os / 8, 0), 8, r);
    int64_t lanes = o_count - o < 8 ? o_count - o : 8;
    if (bias) {
        float b[8] = {0};
        memcpy(b, bias + o, (size_t)lanes * sizeof(float));
        V(v8) bv = V(load8)(b);
        for (int p = 0; p < 16; p++) r[p] += bv;
    }
    return lanes;
}

// The output tiles [t0, t0 + nt) of a group of NCHW images (o_count channels, oh x ow each) from
// M, plus bias.
static void V(transform_outputs)(const float *mb, int64_t os, int64_t o_count,
                                 const float *bias, int64_t tw, int64_t tpi, int64_t t0, int64_t nt,
                                 int64_t oh, int64_t ow, float *y) {
    typedef float v4 __attribute__((vector_size(16), aligned(4)));
    V(v8) r[16];
    for (int64_t t = 0; t < nt; t++) {
        TILE_AT(t0 + t, tpi, tw, g, ty, tx);
        int64_t rows = oh - ty * 4 < 4 ? oh - ty * 4 : 4, cols = ow - tx * 4 < 4 ? ow - tx * 4 : 4;
        float *img = y + g * o_count * oh * ow + ty * 4 * ow + tx * 4;
        for (int64_t o = 0; o < o_count; o += 8) {
            int64_t lanes = V(output_tile)(mb, os, o_count, bias, t, o, r);
            // Pixels x channels -> channels x pixels: r[k] holds rows 0-1 of channel k, r[8 + k] rows 2-3.
            V(transpose8)(r);
            V(transpose8)(r + 8);
            float *plane = img + o * oh * ow;
            if (rows == 4 && cols == 4 && lanes == 8) {
                // A whole tile: four 128-bit stores per channel. Not unrolled: unrolled, the 32
                // store addresses become 32 pointers that spill out of the registers.
#pragma clang loop unroll(disable)
                for (int k = 0; k < 8; k++, plane += oh * ow) {
                    v4 q0 = __builtin_shufflevector(r[k], r[k], 0, 1, 2, 3), q1 = __builtin_shufflevector(r[k], r[k], 4, 5, 6, 7),
                       q2 = __builtin_shufflevector(r[8 + k], r[8 + k], 0, 1, 2, 3),
                       q3 = __builtin_shufflevector(r[8 + k], r[8 + k], 4, 5, 6, 7);
                    memcpy(plane, &q0, 16);
                    memcpy(plane + ow, &q1, 16);
                    memcpy(plane + 2 * ow, &q2, 16);
                    memcpy(plane + 3 * ow, &q3, 16);
                }
                continue;
            }
            float edge[16][8];  // an edge tile or the last channels: through memory, as far as they reach
            memcpy(edge, r, sizeof edge);
            for (int64_t k = 0; k < lanes; k++, plane += oh * ow)
                for (int64_t i = 0; i < rows; i++)
                    for (int64_t j = 0; j < cols; j++) plane[i * ow + j] = edge[(i / 2) * 8 + k][(i % 2) * 4 + j];
        }
    }
}

// The pairs of lo (channels 0, 1, 4, 5) and hi (2, 3, 6, 7) to 8 channel planes, `plane` floats
// apart: 8 bytes each, bits as they are (transform_outputs_pooled stores positions this way too).
static inline void V(store_pairs)(float *dst, int64_t plane, const float *lo, const float *hi) {
    static const int lane[8] = {0, 2, 0, 2, 4, 6, 4, 6};  // channel k's pair in lo (k % 4 < 2) or hi
    for (int k = 0; k < 8; k++) memcpy(dst + k * plane, ((k & 2) ? hi : lo) + lane[k], 8);
}

// transform_outputs with a 2x2 max pool (stride 2) behind it: the tiles [t0, t0 + nt) of a group
// of images go, pooled, into NCHW images of (oh / 2) x (ow / 2), and the winners' positions in the
// oh x ow plane into idx (unless NULL). The same rule as maxpool2x2 in simd_loops.h: the first
// largest in row-major window order, and a NaN wins its window. A tile's 4x4 pixels hold its
// 2x2 windows whole (tiles start at multiples of 4), so only a quarter of the output is stored.
static inline __attribute__((always_inline)) void V(pooled_tiles)(const float *mb, int64_t os, int64_t o_count,
                                                                  const float *bias, int64_t tw, int64_t tpi,
                                                                  int64_t t0, int64_t nt, int64_t oh, int64_t ow,
                                                                  float *y, int32_t *idx, const int with_idx) {
    typedef int32_t i8 __attribute__((vector_size(32), aligned(4)));
    const int64_t ph = oh / 2, pw = ow / 2, plane = ph * pw;
    V(v8) r[16];
    for (int64_t t = 0; t < nt; t++) {
        TILE_AT(t0 + t, tpi, tw, g, ty, tx);
        // The pooled rows and columns of this tile: 2, or fewer at the bottom and right edges.
        int64_t prows = ph - ty * 2 < 2 ? ph - ty * 2 : 2, pcols = pw - tx * 2 < 2 ? pw - tx * 2 : 2;
        if (prows <= 0 || pcols <= 0) continue;
        int64_t at = g * o_count * plane + ty * 2 * pw + tx * 2;
        for (int64_t o = 0; o < o_count; o += 8) {
            int64_t lanes = V(output_tile)(mb, os, o_count, bias, t, o, r);
            V(v8) best[4];
            i8 won[4];
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++) {  // the window at pooled (a, b)
                    // The window's 4 pixels in row-major order: in the tile (4 per row) and in the plane.
                    const V(v8) *q = r + 8 * a + 2 * b;
                    const int pixel[4] = {0, 1, 4, 5};
                    int32_t first = (int32_t)((ty * 4 + 2 * a) * ow + tx * 4 + 2 * b);
                    const int32_t offset[4] = {0, 1, (int32_t)ow, (int32_t)ow + 1};
                    V(v8) m = q[0];
                    i8 w = (i8){0, 0, 0, 0, 0, 0, 0, 0} + first, nan = (i8)(q[0] != q[0]);
                    for (int k = 1; k < 4; k++) {
                        V(v8) v = q[pixel[k]];
                        i8 gt = (i8)(v > m);
                        m = (V(v8))(((i8)v & gt) | ((i8)m & ~gt));
                        if (with_idx) w = ((first + offset[k]) & gt) | (w & ~gt);
                        nan |= (i8)(v != v);
                    }
                    m = (V(v8))(((i8)m & ~nan) | ((i8)V(splat)(__builtin_nanf("")) & nan));
                    best[2 * a + b] = m;
                    won[2 * a + b] = w;
                }
            if (prows == 2 && pcols == 2 && lanes == 8) {
                // Each channel's two pooled rows are pairs of (left, right): interleave the
                // windows, then one 64-bit store per row and channel (values, then positions).
                for (int a = 0; a < 2; a++) {
                    V(v8) lo = __builtin_shufflevector(best[2 * a], best[2 * a + 1], 0, 8, 1, 9, 4, 12, 5, 13),
                          hi = __builtin_shufflevector(best[2 * a], best[2 * a + 1], 2, 10, 3, 11, 6, 14, 7, 15);
                    float *row = y + at + o * plane + a * pw;
                    V(store_pairs)(row, plane, (const float *)&lo, (const float *)&hi);
                    if (with_idx) {
                        i8 wl = __builtin_shufflevector(won[2 * a], won[2 * a + 1], 0, 8, 1, 9, 4, 12, 5, 13),
                           wh = __builtin_shufflevector(won[2 * a], won[2 * a + 1], 2, 10, 3, 11, 6, 14, 7, 15);
                        V(store_pairs)((float *)(idx + at + o * plane + a * pw), plane, (const float *)&wl,
                                       (const float *)&wh);
                    }
                }
                continue;
            }
            for (int64_t k = 0; k < lanes; k++) {  // an edge tile or the last channels
                int64_t c = at + (o + k) * plane;
                for (int64_t a = 0; a < prows; a++)
                    for (int64_t b = 0; b < pcols; b++) {
                        y[c + a * pw + b] = best[2 * a + b][k];
                        if (with_idx) idx[c + a * pw + b] = won[2 * a + b][k];
                    }
            }
        }
    }
}

static void V(transform_outputs_pooled)(const float *mb, int64_t os, int64_t o_count, const float *bias, int64_t tw,
                                        int64_t tpi, int64_t t0, int64_t nt, int64_t oh, int64_t ow, float *y,
                                        int32_t *idx) {
    // Two copies: without positions (no gradient wanted) the blends for them go too.
    if (idx)
        V(pooled_tiles)(mb, os, o_count, bias, tw, tpi, t0, nt, oh, ow, y, idx, 1);
    else
        V(pooled_tiles)(mb, os, o_count, bias, tw, tpi, t0, nt, oh, ow, y, NULL, 0);
}

// Z[xi][t][o] = (A g A^T)[xi] for the tiles [t0, t0 + nt), from the HWC copies of gy (os per
// pixel, zero beyond the output's edge, image_stride floats apart).
static void V(transform_output_grads)(const float *hwc, int64_t image_stride, int64_t pcols, int64_t os,
                                      int64_t tw, int64_t tpi, int64_t t0, int64_t nt, float *zb) {
    V(v8) g[16], z[36];
    for (int64_t t = 0; t < nt; t++) {
        TILE_AT(t0 + t, tpi, tw, im, ty, tx);
        const float *img = hwc + im * image_stride;
        for (int64_t o = 0; o < os; o += 8) {
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) g[4 * i + j] = V(load8)(img + ((ty * 4 + i) * pcols + tx * 4 + j) * os + o);
            V(output_adjoint)(g, z);
            float *zt = VEC_AT(zb, t, o / 8, os / 8, 0);
            for (int xi = 0; xi < 36; xi++) V(store8)(zt + 8 * xi, z[xi]);
        }
    }
}

// S[xi][c][o] += sum_t V[xi][t][c] Z[xi][t][o] over t < nt in order (S = that sum when `first`).
static void V(accumulate_products)(const float *vb, const float *zb, int64_t nt, int64_t cs, int64_t os, int first,
                                   float *s) {
    int64_t c8s = cs / 8, o8s = os / 8;
    for (int xi = 0; xi < 36; xi++) {
        float *sx = s + xi * cs * os;
        for (int64_t c = 0; c < cs; c += 4) {
            for (int64_t o = 0; o < os; o += 16) {
                V(v8) acc[4][2];
                for (int i = 0; i < 4; i++) {
                    acc[i][0] = first ? V(splat)(0.f) : V(load8)(sx + (c + i) * os + o);
                    acc[i][1] = first ? V(splat)(0.f) : V(load8)(sx + (c + i) * os + o + 8);
                }
                const float *vt = VEC_AT(vb, 0, c / 8, c8s, xi) + c % 8, *zt = VEC_AT(zb, 0, o / 8, o8s, xi);
                for (int64_t t = 0; t < nt; t++, vt += 36 * 8 * c8s, zt += 36 * 8 * o8s) {
                    V(v8) z0 = V(load8)(zt), z1 = V(load8)(zt + 36 * 8);
                    for (int i = 0; i < 4; i++) {
                        V(v8) v = V(splat)(vt[i]);
                        acc[i][0] += v * z0;
                        acc[i][1] += v * z1;
                    }
                }
                for (int i = 0; i < 4; i++) {
                    V(store8)(sx + (c + i) * os + o, acc[i][0]);
                    V(store8)(sx + (c + i) * os + o + 8, acc[i][1]);
                }
            }
        }
    }
}


// U[xi][c][o .. o + 8) = (G g G^T)[xi] for 8 filters g (lanes), gathered by the caller:
// taps[8 k + l] is tap k (row-major 3x3) of lane l's filter. u points at U[0][c][o]; xi_stride = cs * os.
static void V(transform_filters)(const float *taps, float *u, int64_t xi_stride) {
    V(v8) t[18], g[9];
    for (int k = 0; k < 9; k++) g[k] = V(load8)(taps + 8 * k);
    V(v8) q4 = V(splat)(0.25f), s6 = V(splat)(1.f / 6), s24 = V(splat)(1.f / 24), f2 = V(splat)(2.f),
          f4 = V(splat)(4.f);
    for (int j = 0; j < 3; j++) {  // G g: 6 rows of 3
        V(v8) g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
        t[j] = g0 * q4;
        t[3 + j] = -(g0 + g1 + g2) * s6;
        t[6 + j] = -(g0 - g1 + g2) * s6;
        t[9 + j] = (g0 + f2 * g1 + f4 * g2) * s24;
        t[12 + j] = (g0 - f2 * g1 + f4 * g2) * s24;
        t[15 + j] = g2;
    }
    for (int i = 0; i < 6; i++) {  // (G g) G^T
        V(v8) g0 = t[3 * i], g1 = t[3 * i + 1], g2 = t[3 * i + 2];
        V(v8) r[6] = {g0 * q4, -(g0 + g1 + g2) * s6, -(g0 - g1 + g2) * s6, (g0 + f2 * g1 + f4 * g2) * s24,
                      (g0 - f2 * g1 + f4 * g2) * s24, g2};
        for (int j = 0; j < 6; j++) V(store8)(u + (6 * i + j) * xi_stride, r[j]);
    }
}

// The adjoint of transform_filters: 9 taps (G^T S G) for 8 lanes, from S[xi][c][o .. o + 8)
// summed over `parts` partial sums chunk_stride floats apart (in order).
// taps[8 k + l] receives tap k of lane l.
static void V(gather_filters)(const float *s, int64_t xi_stride, int64_t parts, int64_t part_stride, float *taps) {
    V(v8) t[18], sum[36], gw[9];
    V(v8) s6 = V(splat)(1.f / 6), s12 = V(splat)(1.f / 12), s24 = V(splat)(1.f / 24), q4 = V(splat)(0.25f);
    for (int xi = 0; xi < 36; xi++) {
        sum[xi] = V(load8)(s + xi * xi_stride);
        for (int64_t k = 1; k < parts; k++) sum[xi] += V(load8)(s + k * part_stride + xi * xi_stride);
    }
    for (int j = 0; j < 6; j++) {  // G^T S: 3 rows of 6
        V(v8) s0 = sum[j], s1 = sum[6 + j], s2 = sum[12 + j], s3 = sum[18 + j], s4 = sum[24 + j], s5 = sum[30 + j];
        t[j] = s0 * q4 - (s1 + s2) * s6 + (s3 + s4) * s24;
        t[6 + j] = (s2 - s1) * s6 + (s3 - s4) * s12;
        t[12 + j] = (s3 + s4 - s1 - s2) * s6 + s5;
    }
    for (int i = 0; i < 3; i++) {
        const V(v8) *r = t + 6 * i;
        gw[3 * i] = r[0] * q4 - (r[1] + r[2]) * s6 + (r[3] + r[4]) * s24;
        gw[3 * i + 1] = (r[2] - r[1]) * s6 + (r[3] - r[4]) * s12;
        gw[3 * i + 2] = (r[3] + r[4] - r[1] - r[2]) * s6 + r[5];
    }
    for (int k = 0; k < 9; k++) V(store8)(taps + 8 * k, gw[k]);
}

#undef TILE_AT

static const struct wino_loops V(wino_loops) = {
    V(to_hwc), V(transform_inputs), V(multiply), V(transform_outputs), V(transform_outputs_pooled), V(transform_output_grads),
    V(accumulate_products), V(transform_filters), V(gather_filters),
};
