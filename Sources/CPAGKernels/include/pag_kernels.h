// pag_kernels.h: the host's thin C layer over oneDNN (private to the host, not part of the plugin ABI).
// All tensors are float32, contiguous, row-major; convolutions use NCHW activations and OIHW weights.
// Every function returns 0 on success and a non-zero oneDNN status on failure.
// All functions are thread-safe; concurrent calls each run their own OpenMP team (2 threads here).
// Give them 64-byte-aligned buffers: the NCHW <-> blocked reorders run up to 1.5x slower otherwise.
#ifndef PAG_KERNELS_H
#define PAG_KERNELS_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// C[M,N] = alpha * op(A) * op(B) + beta * C, row-major; trans_a / trans_b are 0 or 1.
int pag_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
              float *c, int64_t ldc);

/// Geometry of one 2-D convolution. The weight is [O, C / groups, KH, KW] (groups divides C and
/// O); dilation dh, dw >= 1 spaces the kernel's taps; zero padding ph, pw (top, left) and pb, pr
/// (bottom, right). oh = (h + ph + pb - dh (kh - 1) - 1) / sh + 1, likewise ow.
typedef struct pag_conv_shape {
    int64_t n, c, h, w;      // input  N C H W
    int64_t o, kh, kw;       // weight O C/groups KH KW
    int64_t sh, sw, ph, pw;  // stride, top and left zero padding
    int64_t oh, ow;          // output spatial size (computed by the caller)
    int64_t groups, dh, dw;  // channel groups and dilation (1, 1, 1: an ordinary convolution)
    int64_t pb, pr;          // bottom and right zero padding
} pag_conv_shape;

/// 1 for an ordinary convolution (groups 1, no dilation, symmetric padding): the only geometry
/// pag's own kernels (pag_winograd.h, pag_narrow.h) compute; oneDNN computes every other one.
static inline int pag_conv_is_ordinary(const pag_conv_shape *s) {
    return s->groups == 1 && s->dh == 1 && s->dw == 1 && s->pb == s->ph && s->pr == s->pw;
}

/// y[N,O,OH,OW] = conv(x, w) + bias (bias may be NULL).
int pag_conv2d_forward(const pag_conv_shape *s, const float *x, const float *w,
                       const float *bias, float *y);
/// y[N,O,OH/2,OW/2] = 2x2 max pool (stride 2) of conv(x, w) + bias, in one pass: only where pag's
/// Winograd computes the convolution, whose output tiles are pooled before they are stored.
/// idx (NULL when not wanted) receives each window's winner as its flat position in the OH x OW
/// plane, by pag_simd_maxpool2x2's rule. Returns PAG_KERNELS_UNFUSED, writing nothing, for a shape
/// or policy without the fused kernel: the caller then runs the convolution and the pool.
int pag_conv2d_forward_maxpool2x2(const pag_conv_shape *s, const float *x, const float *w,
                                  const float *bias, float *y, int32_t *idx);
/// gx[N,C,H,W] = gradient of conv wrt its input, given gy[N,O,OH,OW] and w (overwrites gx).
int pag_conv2d_backward_data(const pag_conv_shape *s, const float *gy, const float *w, float *gx);
/// gw[O,C,KH,KW] = gradient of conv wrt its weight, given x and gy (overwrites gw);
/// gbias[O] = sum of gy over N, OH, OW when gbias is not NULL.
int pag_conv2d_backward_weights(const pag_conv_shape *s, const float *x, const float *gy,
                                float *gw, float *gbias);

/// The status pag's own kernels (pag_winograd.h, pag_narrow.h) return when they cannot allocate:
/// dnnl_out_of_memory's value, so callers read every kernel's status the same way.
enum { PAG_KERNELS_OUT_OF_MEMORY = 1 };
/// pag_conv2d_forward_maxpool2x2's answer when it has no fused kernel for the call (no oneDNN
/// status is negative).
enum { PAG_KERNELS_UNFUSED = -1 };

/// gbias[o] = sum of gy[N, O, OH, OW] over N, OH, OW (each plane with the SIMD sum, in Double
/// across images): the bias gradient every backward-weights path shares.
void pag_conv_bias_gradient(const pag_conv_shape *s, const float *gy, float *gbias);

/// Drops every cached oneDNN primitive (tests use it to check that caching is not required).
void pag_kernels_clear_cache(void);
/// Number of cached primitives (for tests and the benchmark report).
int64_t pag_kernels_cache_size(void);

/// How convolutions are computed. PAG_CONV_AUTO (the default) uses oneDNN's direct algorithm and
/// picks, per shape and op, the layout that measured fastest: oneDNN's blocked layouts with
/// reorders from/to NCHW/OIHW almost everywhere, plain NCHW for backward-data with C < 8.
/// PAG_CONV_FAST is AUTO plus Winograd F(4,3) for 3x3 stride-1 layers with C, O >= 16: pag's own
/// (pag_winograd.h, no reorders) where oneDNN has none (below AVX-512) and for layers of at most
/// 32 x 64 channels, oneDNN's for larger ones on AVX-512; 1.2-2.5x faster there, with rounding
/// error a few times direct's (~1e-6 relative). As with any Winograd, a NaN or infinity in the
/// input spreads to the whole 4x4 output tile around it (direct: to the outputs that see it). The others force one
/// strategy everywhere, for benchmarks and tests; a forced strategy the shape does not support
/// falls back to the next (Winograd -> blocked -> plain; pag's Winograd -> AUTO).
enum {
    PAG_CONV_AUTO = 0,
    PAG_CONV_FAST = 1,
    PAG_CONV_PLAIN = 2,     // NCHW/OIHW memory for the primitive, no reorders
    PAG_CONV_BLOCKED = 3,   // oneDNN picks every layout; reorders around the primitive
    PAG_CONV_WINOGRAD = 4,  // oneDNN's Winograd
    PAG_CONV_PAG_WINOGRAD = 5,  // pag's own Winograd, whatever oneDNN has
    PAG_CONV_MEASURED = 6,  // per shape and op the fastest kernel, measured once (below)
};

/// The kernels PAG_CONV_MEASURED chooses among. DIRECT is PAG_CONV_AUTO's path (oneDNN's direct
/// algorithm, pag's narrow kernels under 8 output channels); the Winograds compute 3x3 stride-1
/// layers with C, O >= 16 (oneDNN's on AVX-512 only), with rounding error a few times direct's.
/// PLAIN is oneDNN on NCHW / OIHW memory (PAG_CONV_PLAIN: no reorders; for few channels its
/// im2col + sgemm kernel), for layers without pag's narrow kernels: where DIRECT's reorder of a
/// blocked output costs more than the convolution (LeNet's conv1, 1 -> 32 channels).
enum {
    PAG_KERNEL_DIRECT = 0,
    PAG_KERNEL_PAG_WINOGRAD = 1,
    PAG_KERNEL_ONEDNN_WINOGRAD = 2,
    PAG_KERNEL_PLAIN = 3,
    PAG_KERNEL_COUNT = 4
};
/// The three convolution ops (the second-order passes are these ops of other shapes).
enum { PAG_CONV_OP_FORWARD = 0, PAG_CONV_OP_BACKWARD_DATA = 1, PAG_CONV_OP_BACKWARD_WEIGHTS = 2 };

/// One choice of PAG_CONV_MEASURED: the kernel for (shape, op), and the median times (ms) that
/// chose it (-1: not measured, e.g. a preloaded choice, or a kernel that does not support it).
typedef struct pag_conv_choice {
    pag_conv_shape s;
    int64_t op, kernel;
    double ms[PAG_KERNEL_COUNT];
} pag_conv_choice;

/// 1 when `kernel` computes `op` of this shape on this machine.
int pag_conv_kernel_supports(const pag_conv_shape *s, int op, int kernel);
/// Under PAG_CONV_MEASURED, a (shape, op) without a choice is measured on its first call: every
/// supported kernel runs on that call's own arguments (1 warm-up, 3 timed runs each), the fastest
/// is kept (DIRECT unless another takes under 0.95 of its time) and the call's result is the
/// chosen kernel's. Choices can be preloaded (a cache, a run's record): then nothing is
/// measured and the choice is exactly the one given. Returns 0, or dnnl_invalid_arguments for a
/// bad shape, op or a kernel that does not support it.
int pag_conv_choice_set(const pag_conv_shape *s, int op, int kernel);
/// The choices made or preloaded so far (in the order they were made); get returns 0, or
/// dnnl_invalid_arguments for an index out of range.
int64_t pag_conv_choice_count(void);
int pag_conv_choice_get(int64_t index, pag_conv_choice *out);
/// Forgets every choice.
void pag_conv_choice_clear(void);
/// 1 when choice `index` was used (a convolution ran with it, or it was made) since the last
/// pag_conv_choice_reset_usage: what a run records as the choices it used.
int pag_conv_choice_used(int64_t index);
void pag_conv_choice_reset_usage(void);
/// 1 when oneDNN has a Winograd convolution on this machine (AVX-512), so PAG_CONV_FAST uses it.
int pag_kernels_onednn_has_winograd(void);
/// Sets the strategy for later calls (thread-safe; primitives are cached per strategy).
void pag_kernels_set_conv_policy(int policy);
int pag_kernels_get_conv_policy(void);
/// Runs fn(ctx, i) for i in 0..<n_chunks on oneDNN's own OpenMP thread team. The engine's
/// elementwise loops use this instead of a second thread pool: two pools on two cores fight
/// (OpenMP threads spin after each oneDNN call while the other pool's threads wait for a core).
void pag_parallel_for(int64_t n_chunks, void (*fn)(void *ctx, int64_t chunk), void *ctx);
/// Number of threads in that team.
int pag_parallel_threads(void);

/// The instruction set oneDNN's kernels use ("avx2", "avx512_core", ...; capped by ONEDNN_MAX_CPU_ISA).
const char *pag_kernels_onednn_isa(void);

/// Bytes held by the calling thread's workspace (reordered tensors and oneDNN scratchpads).
int64_t pag_kernels_workspace_bytes(void);

#ifdef __cplusplus
}
#endif
#endif
