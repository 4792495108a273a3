// pag_winograd.h: pag's own Winograd F(4x4, 3x3) convolutions, for machines where oneDNN has none
// (below AVX-512). NCHW / OIHW like pag_kernels.h; private to the host. kernels.c picks them.
#ifndef PAG_WINOGRAD_H
#define PAG_WINOGRAD_H
#include "pag_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when the shape is one these functions compute: 3x3, stride 1, padding 0...2, C and O >= 16.
int pag_winograd_supports(const pag_conv_shape *s);
/// The same contracts as pag_conv2d_forward / _backward_data / _backward_weights.
int pag_winograd_forward(const pag_conv_shape *s, const float *x, const float *w, const float *bias, float *y);
/// pag_conv2d_forward_maxpool2x2's contract, for a shape pag_winograd_supports.
int pag_winograd_forward_maxpool2x2(const pag_conv_shape *s, const float *x, const float *w, const float *bias,
                                    float *y, int32_t *idx);
int pag_winograd_backward_data(const pag_conv_shape *s, const float *gy, const float *w, float *gx);
int pag_winograd_backward_weights(const pag_conv_shape *s, const float *x, const float *gy, float *gw,
                                  float *gbias);

#ifdef __cplusplus
}
#endif
#endif
