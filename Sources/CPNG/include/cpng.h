// Small C layer over libpng (Debian libpng-dev). libpng reports errors with longjmp, which
// Swift cannot catch, so every libpng call happens here behind a setjmp and returns a status.
#ifndef CPNG_H
#define CPNG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Encodes 8-bit pixels (row-major, interleaved, `channels` 1 gray, 2 gray+alpha, 3 RGB or
/// 4 RGBA) as PNG into a malloc'ed buffer (`*out`, `*out_size`; free with cpng_free).
/// Returns 0, or -1 with a message in `error`.
int cpng_encode(const unsigned char *pixels, int width, int height, int channels,
                unsigned char **out, size_t *out_size, char *error, size_t error_size);

/// Decodes a PNG held in memory to 8-bit interleaved pixels: palette becomes RGB, transparency
/// becomes an alpha channel, 16-bit samples are reduced to 8 bits, low bit depths expanded.
/// `*pixels` is malloc'ed (free with cpng_free). Returns 0, or -1 with a message in `error`.
int cpng_decode(const unsigned char *bytes, size_t size, unsigned char **pixels,
                int *width, int *height, int *channels, char *error, size_t error_size);

/// Frees a buffer returned by cpng_encode or cpng_decode.
void cpng_free(void *pointer);

#ifdef __cplusplus
}
#endif
#endif
