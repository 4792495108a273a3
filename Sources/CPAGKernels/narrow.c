// narrow.c: convolutions with fewer than 8 output channels (a U-Net's output layer, an image
// decoder's last layer), stride 1. oneDNN's blocked kernels pad O to 8 or 16 and reorder around
// the primitive, so such a layer costs as much as a 16-channel one; here each (c, kh, kw) tap is
// one multiply-add over a whole zero-padded plane, read as one flat row (the columns that wrap
// into the next row are computed and dropped). NCHW / OIHW as in pag_kernels.h.
#include "pag_narrow.h"

#include "pag_kernels.h"
#include "pag_simd.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

int pag_narrow_supports(const pag_conv_shape *s) {
    return pag_conv_is_ordinary(s) && s->o >= 1 && s->o < 8 && s->sh == 1 && s->sw == 1 && s->ph < s->kh && s->pw < s->kw &&
           s->oh == s->h + 2 * s->ph - s->kh + 1 && s->ow == s->w + 2 * s->pw - s->kw + 1;
}

// A plane of `rows` x `cols` copied into a zeroed one of (top + rows + extra_rows) x
// (left + cols + extra_cols), followed by `slack` zeros (the wrapped columns of the last row
// read up to kw floats past the plane).
static void pad_plane(const float *src, int64_t rows, int64_t cols, int64_t top, int64_t left,
                      int64_t extra_rows, int64_t extra_cols, int64_t slack, float *dst) {
    int64_t pcols = cols + left + extra_cols;
    memset(dst, 0, sizeof(float) * (size_t)((rows + top + extra_rows) * pcols + slack));
    for (int64_t r = 0; r < rows; r++) memcpy(dst + (r + top) * pcols + left, src + r * cols, sizeof(float) * (size_t)cols);
}

typedef struct narrow_job {
    const pag_conv_shape *s;
    const float *in, *w, *bias;  // in: x (forward) or gy (backward-data)
    float *out;
    int backward_data;
    atomic_int failed;  // set by any worker that cannot allocate; read after the parallel region
} narrow_job;

// out[image] = sum over taps of w * shifted padded input planes (forward, or backward-data with
// the kernel turned 180 degrees and the roles of C and O swapped).
static void narrow_image(void *ctx, int64_t n) {
    narrow_job *j = ctx;
    const pag_conv_shape *s = j->s;
    int bd = j->backward_data;
    // Input planes (ci of them, ih x iw), padded by (py, px); output planes co x (oh2 x ow2).
    int64_t ci = bd ? s->o : s->c, co = bd ? s->c : s->o;
    int64_t ih = bd ? s->oh : s->h, iw = bd ? s->ow : s->w, oh2 = bd ? s->h : s->oh, ow2 = bd ? s->w : s->ow;
    int64_t py = bd ? s->kh - 1 - s->ph : s->ph, px = bd ? s->kw - 1 - s->pw : s->pw;
    int64_t pcols = iw + 2 * px, prows = ih + 2 * py, plane = prows * pcols + s->kw;
    float *pad = malloc(sizeof(float) * (size_t)plane);
    float *acc = malloc(sizeof(float) * (size_t)(co * oh2 * pcols));
    if (!pad || !acc) {
        j->failed = 1;
        free(pad);
        free(acc);
        return;
    }
    memset(acc, 0, sizeof(float) * (size_t)(co * oh2 * pcols));
    int64_t len = oh2 * pcols;
    for (int64_t c = 0; c < ci; c++) {
        pad_plane(j->in + (n * ci + c) * ih * iw, ih, iw, py, px, py, px, s->kw, pad);
        for (int64_t o = 0; o < co; o++)
            for (int64_t kh = 0; kh < s->kh; kh++)
                for (int64_t kw = 0; kw < s->kw; kw++) {
                    float wt = bd ? j->w[((c * s->c + o) * s->kh + s->kh - 1 - kh) * s->kw + s->kw - 1 - kw]
                                  : j->w[((o * s->c + c) * s->kh + kh) * s->kw + kw];
                    pag_simd_axpy(len, wt, pad + kh * pcols + kw, acc + o * len);
                }
    }
    for (int64_t o = 0; o < co; o++) {
        float b = j->bias ? j->bias[o] : 0.f;
        for (int64_t r = 0; r < oh2; r++) {
            float *dst = j->out + ((n * co + o) * oh2 + r) * ow2;
            const float *src = acc + o * len + r * pcols;
            for (int64_t q = 0; q < ow2; q++) dst[q] = src[q] + b;
        }
    }
    free(pad);
    free(acc);
}

static int run_images(narrow_job *job) {
    pag_parallel_for(job->s->n, narrow_image, job);
    return job->failed ? PAG_KERNELS_OUT_OF_MEMORY : 0;
}

int pag_narrow_forward(const pag_conv_shape *s, const float *x, const float *w, const float *bias, float *y) {
    narrow_job job = {s, x, w, bias, y, 0, 0};
    return run_images(&job);
}

int pag_narrow_backward_data(const pag_conv_shape *s, const float *gy, const float *w, float *gx) {
    narrow_job job = {s, gy, w, NULL, gx, 1, 0};
    return run_images(&job);
}

typedef struct weights_job {
    const pag_conv_shape *s;
    const float *x, *gy;
    float *parts;  // one O x C x KH x KW partial sum per chunk
    int64_t chunks;
    atomic_int failed;  // set by any worker that cannot allocate; read after the parallel region
} weights_job;

// gw partial sum over the images of chunk k: dot products of each output-gradient plane (zero in
// the wrapped columns) with the shifted padded input planes.
static void weights_chunk(void *ctx, int64_t k) {
    weights_job *j = ctx;
    const pag_conv_shape *s = j->s;
    int64_t pcols = s->w + 2 * s->pw, prows = s->h + 2 * s->ph, plane = prows * pcols + s->kw;
    int64_t len = s->oh * pcols, taps = s->kh * s->kw;
    float *pad = malloc(sizeof(float) * (size_t)plane);
    float *g = malloc(sizeof(float) * (size_t)(s->o * len));
    float *part = j->parts + k * s->o * s->c * taps;
    memset(part, 0, sizeof(float) * (size_t)(s->o * s->c * taps));
    if (!pad || !g) {
        j->failed = 1;
        free(pad);
        free(g);
        return;
    }
    for (int64_t n = s->n * k / j->chunks; n < s->n * (k + 1) / j->chunks; n++) {
        for (int64_t o = 0; o < s->o; o++)
            pad_plane(j->gy + (n * s->o + o) * s->oh * s->ow, s->oh, s->ow, 0, 0, 0, pcols - s->ow, 0, g + o * len);
        for (int64_t c = 0; c < s->c; c++) {
            pad_plane(j->x + (n * s->c + c) * s->h * s->w, s->h, s->w, s->ph, s->pw, s->ph, s->pw, s->kw, pad);
            for (int64_t o = 0; o < s->o; o++)
                for (int64_t t = 0; t < taps; t++)
                    part[(o * s->c + c) * taps + t] +=
                        pag_simd_dot(g + o * len, 0.f, pad + (t / s->kw) * pcols + t % s->kw, 0.f, len);
        }
    }
    free(pad);
    free(g);
}

int pag_narrow_backward_weights(const pag_conv_shape *s, const float *x, const float *gy, float *gw, float *gbias) {
    // Chunks fixed by the shape and summed in order: the result does not depend on the threads.
    int64_t size = s->o * s->c * s->kh * s->kw;
    weights_job job = {s, x, gy, NULL, s->n < 8 ? s->n : 8, 0};
    job.parts = malloc(sizeof(float) * (size_t)(size * job.chunks));
    if (!job.parts) return PAG_KERNELS_OUT_OF_MEMORY;
    pag_parallel_for(job.chunks, weights_chunk, &job);
    if (!job.failed) {
        for (int64_t i = 0; i < size; i++) {
            float acc = 0.f;
            for (int64_t k = 0; k < job.chunks; k++) acc += job.parts[k * size + i];
            gw[i] = acc;
        }
        if (gbias) pag_conv_bias_gradient(s, gy, gbias);
    }
    free(job.parts);
    return job.failed ? PAG_KERNELS_OUT_OF_MEMORY : 0;
}
