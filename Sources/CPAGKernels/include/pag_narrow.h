// pag_narrow.h: convolutions with fewer than 8 output channels, stride 1 (narrow.c), where
// oneDNN's blocked kernels would pad O to 8 or 16. NCHW / OIHW like pag_kernels.h; private to the
// host. kernels.c picks them.
#ifndef PAG_NARROW_H
#define PAG_NARROW_H
#include "pag_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when the shape is one these functions compute: O < 8, stride 1, padding below the kernel size.
int pag_narrow_supports(const pag_conv_shape *s);
/// The same contracts as pag_conv2d_forward / _backward_data / _backward_weights.
int pag_narrow_forward(const pag_conv_shape *s, const float *x, const float *w, const float *bias, float *y);
int pag_narrow_backward_data(const pag_conv_shape *s, const float *gy, const float *w, float *gx);
int pag_narrow_backward_weights(const pag_conv_shape *s, const float *x, const float *gy, float *gw, float *gbias);

#ifdef __cplusplus
}
#endif
#endif
