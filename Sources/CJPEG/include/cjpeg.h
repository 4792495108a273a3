// Small C layer over libjpeg (Debian libjpeg62-turbo-dev). libjpeg reports errors through an
// error_exit callback that must not return, so decoding happens here behind a setjmp and
// returns a status, as cpng does for libpng.
#ifndef CJPEG_H
#define CJPEG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Decodes a baseline or progressive JPEG held in memory to 8-bit interleaved pixels (1 channel
/// for gray files, 3 for colour; CMYK is refused). `*pixels` is malloc'ed (free with
/// cjpeg_free). Returns 0, or -1 with a message in `error`.
int cjpeg_decode(const unsigned char *bytes, size_t size, unsigned char **pixels,
                 int *width, int *height, int *channels, char *error, size_t error_size);

/// Frees a buffer returned by cjpeg_decode.
void cjpeg_free(void *pointer);

#ifdef __cplusplus
}
#endif
#endif
