#include <zlib.h>

/* inflateInit2 is a macro that passes ZLIB_VERSION and sizeof(z_stream); Swift cannot call
   macros, so this wraps it. windowBits 15 + 32 accepts both gzip and zlib headers. */
static inline int pag_inflate_init(z_stream *stream) {
    return inflateInit2(stream, 15 + 32);
}

/* Raw deflate (no header), as in zip entries (.npz files). */
static inline int pag_inflate_init_raw(z_stream *stream) {
    return inflateInit2(stream, -15);
}
