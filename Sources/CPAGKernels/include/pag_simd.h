// pag_simd.h: the engine's own loops (elementwise, broadcast, reductions, pooling, batch norm,
// softmax, optimizer updates) with one variant per instruction set, chosen once through one
// dispatch table (simd.c). Private to the host, not part of the plugin ABI.
//
// Variants: baseline (x86-64 SSE2), avx2 (AVX2 + FMA), avx512 (AVX-512 F/BW/DQ/VL). At load time
// the best one the CPU reports is chosen; the environment variable PAG_ISA=baseline|avx2|avx512
// picks a lower one (capped at what the CPU has). Every variant is the same C source compiled for
// its target, with the same summation order (16-wide vector accumulators), so variants differ
// only by rounding (fused multiply-adds) and each is bit-reproducible for a fixed thread count.
// All pointers are float32 arrays; a range is [0, n) and the caller splits work over threads.
#ifndef PAG_SIMD_H
#define PAG_SIMD_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { PAG_ISA_BASELINE = 0, PAG_ISA_AVX2 = 1, PAG_ISA_AVX512 = 2 };

/// The variant in use.
int pag_isa(void);
/// The best variant this CPU supports.
int pag_isa_cpu(void);
/// "baseline", "avx2" or "avx512".
const char *pag_isa_name(int isa);
/// Switches the variant (capped at pag_isa_cpu()); returns the one now in use. For tests and
/// benchmarks; not meant to be called while other threads run kernels.
int pag_isa_set(int isa);

/// y[i] = f(x[i]); p0, p1 are the op's parameters (see each op). x may equal y.
enum {
    PAG_U_SCALE = 0,        // x * p0
    PAG_U_ADD_SCALAR,       // x + p0
    PAG_U_EXP,
    PAG_U_LOG,
    PAG_U_SQRT,
    PAG_U_SQUARE,
    PAG_U_POW,              // powf(x, p0)
    PAG_U_ABS,
    PAG_U_RELU,             // x > 0 ? x : 0 (NaN -> 0)
    PAG_U_CLAMP,            // min(max(x, p0), p1), NaN propagates
    PAG_U_TANH,
    PAG_U_SIGMOID,          // 1 / (1 + exp(-x))
    PAG_U_SOFTPLUS,         // p0 = beta, p1 = threshold: beta x > threshold ? x : log1p(exp(beta x)) / beta
    PAG_U_THRESHOLD_MASK,   // beta x > threshold ? 1 : 0 (p0 = beta, p1 = threshold)
    PAG_U_SIN,
    PAG_U_COS,
    PAG_U_SILU,             // x / (1 + exp(-x))
};
void pag_simd_unary(int op, int64_t n, const float *x, float *y, float p0, float p1);

/// o[r * n + i] = f(a[r * ra + i * sa], b[r * rb + i * sb]) for r < rows, i < n (strides in
/// elements, 0 broadcasts; o is contiguous).
enum {
    PAG_B_ADD = 0,
    PAG_B_SUB,
    PAG_B_MUL,
    PAG_B_DIV,
    PAG_B_MASK_POSITIVE,    // b > 0 ? a : 0
    PAG_B_MASK_RANGE,       // p0 <= b <= p1 ? a : 0
    PAG_B_MUL_SIGN,         // b > 0 ? a : (b < 0 ? -a : 0)
    PAG_B_TAKE_A,           // a
    PAG_B_SILU_BACKWARD,    // a * silu'(b) = a s (1 + b (1 - s)), s = sigmoid(b)
};
void pag_simd_binary(int op, int64_t rows, int64_t n, const float *a, int64_t ra, int64_t sa,
                     const float *b, int64_t rb, int64_t sb, float *o, float p0, float p1);

/// Sum of p[0..n).
float pag_simd_sum(const float *p, int64_t n);
/// Sum of (a[i] - ma) * (b[i] - mb).
float pag_simd_dot(const float *a, float ma, const float *b, float mb, int64_t n);
/// dst[i * so] += src[i * si] for i < n; with so == 0, dst[0] += the sum of the n values.
void pag_simd_accumulate(int64_t n, const float *src, int64_t si, float *dst, int64_t so);
/// y[i] += a * x[i] for i < n (x and y do not overlap).
void pag_simd_axpy(int64_t n, float a, const float *x, float *y);
/// A dropout mask: out[i] = 0 where the i-th uniform of the xoshiro256** generator `state`
/// (RandomGenerator's s0..s3, advanced in place by n draws) is below p, else keep. Scalar
/// integer code, the same on every machine: the stream RandomGenerator.nextFloat gives.
void pag_dropout_mask(uint64_t state[4], int64_t n, float p, float keep, float *out);

/// Batch-norm style per-channel affine combination over `planes` planes of `hw` values starting at
/// plane index `first` of an [N, C, HW] layout: dst = k0[c] s0 + k1[c] s1 + k2[c] s2 + z[c]
/// (nterms 1 to 3; unused sources and coefficients may be NULL).
void pag_simd_lincomb(int64_t first, int64_t planes, int64_t c, int64_t hw, int nterms,
                      const float *s0, const float *k0, const float *s1, const float *k1,
                      const float *s2, const float *k2, const float *z, float *dst);

/// Max pool 2x2 stride 2 over `planes` planes of h x w: out and idx (flat index in the plane of the
/// window's winner; NaN wins its window) are planes of oh x ow.
void pag_simd_maxpool2x2(int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow,
                         const float *x, float *out, int32_t *idx);

/// Pooling window geometry for the average-pool kernels.
typedef struct pag_pool_shape {
    int64_t h, w, kh, kw, sh, sw, ph, pw, oh, ow;
} pag_pool_shape;
/// Average pool (zero padding counts) over `planes` planes.
void pag_simd_avgpool(const pag_pool_shape *s, int64_t planes, const float *x, float *out);
/// Its adjoint: adds g / (kh kw) into every input of each window; gx must be zeroed by the caller.
void pag_simd_avgpool_adjoint(const pag_pool_shape *s, int64_t planes, const float *g, float *gx);

/// log_softmax over `n` values spaced `inner` apart, for columns [col0, col1) of an
/// [outer, n, inner] layout (column = o * inner + i).
void pag_simd_log_softmax(int64_t col0, int64_t col1, int64_t n, int64_t inner, const float *x, float *y);

/// SGD (torch.optim.SGD) over n parameters: buf is NULL without momentum; first is 1 on the first
/// step with momentum (buf = d).
void pag_simd_sgd(int64_t n, float *p, const float *g, float *buf, float lr, float momentum,
                  float dampening, float weight_decay, int nesterov, int first);
/// Adam (torch.optim.Adam) over n parameters.
void pag_simd_adam(int64_t n, float *p, const float *g, float *m, float *v, float b1, float b2,
                   float eps, float weight_decay, float step_size, float bc2_sqrt);

#ifdef __cplusplus
}
#endif
#endif
