#include "cpng.h"

#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Where libpng's error handler leaves its message before jumping back.
typedef struct {
    char *error;
    size_t error_size;
} cpng_context;

static void cpng_error(png_structp png, png_const_charp message) {
    cpng_context *context = (cpng_context *)png_get_error_ptr(png);
    if (context && context->error && context->error_size > 0)
        snprintf(context->error, context->error_size, "%s", message);
    png_longjmp(png, 1);
}

// Warnings (e.g. a bad CRC in an ancillary chunk) are not fatal and must not reach stderr.
static void cpng_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;
}

typedef struct {
    unsigned char *data;
    size_t size, capacity;
    int failed;
} cpng_output;

static void cpng_write_data(png_structp png, png_bytep data, png_size_t length) {
    cpng_output *out = (cpng_output *)png_get_io_ptr(png);
    if (out->size + length > out->capacity) {
        size_t capacity = out->capacity ? out->capacity : 4096;
        while (capacity < out->size + length) capacity *= 2;
        unsigned char *grown = realloc(out->data, capacity);
        if (!grown) {
            out->failed = 1;
            png_error(png, "out of memory while encoding PNG");
        }
        out->data = grown;
        out->capacity = capacity;
    }
    memcpy(out->data + out->size, data, length);
    out->size += length;
}

static void cpng_flush(png_structp png) { (void)png; }

int cpng_encode(const unsigned char *pixels, int width, int height, int channels,
                unsigned char **out, size_t *out_size, char *error, size_t error_size) {
    static const int color_types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                       PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    cpng_context context = {error, error_size};
    if (width <= 0 || height <= 0 || channels < 1 || channels > 4) {
        snprintf(error, error_size, "cannot encode a %dx%d image with %d channels",
                 width, height, channels);
        return -1;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &context,
                                              cpng_error, cpng_warning);
    if (!png) {
        snprintf(error, error_size, "libpng could not create a write struct");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    // `rows` is volatile: it changes after setjmp and is read on the error path.
    cpng_output output = {NULL, 0, 0, 0};
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(output.data);
        free(rows);
        return -1;
    }
    if (!info) png_error(png, "libpng could not create an info struct");
    png_set_write_fn(png, &output, cpng_write_data, cpng_flush);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, color_types[channels],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    rows = malloc(sizeof(png_bytep) * (size_t)height);
    if (!rows) png_error(png, "out of memory while encoding PNG");
    size_t stride = (size_t)width * (size_t)channels;
    for (int y = 0; y < height; y++) rows[y] = (png_bytep)(pixels + (size_t)y * stride);
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    *out = output.data;
    *out_size = output.size;
    return 0;
}

typedef struct {
    const unsigned char *data;
    size_t size, offset;
} cpng_input;

static void cpng_read_data(png_structp png, png_bytep data, png_size_t length) {
    cpng_input *in = (cpng_input *)png_get_io_ptr(png);
    if (length > in->size - in->offset) png_error(png, "file is truncated");
    memcpy(data, in->data + in->offset, length);
    in->offset += length;
}

int cpng_decode(const unsigned char *bytes, size_t size, unsigned char **pixels,
                int *width, int *height, int *channels, char *error, size_t error_size) {
    cpng_context context = {error, error_size};
    if (size < 8 || png_sig_cmp((png_const_bytep)bytes, 0, 8) != 0) {
        snprintf(error, error_size, "not a PNG file (bad signature)");
        return -1;
    }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &context,
                                             cpng_error, cpng_warning);
    if (!png) {
        snprintf(error, error_size, "libpng could not create a read struct");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    cpng_input input = {bytes, size, 0};
    unsigned char *volatile data = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(data);
        free(rows);
        return -1;
    }
    if (!info) png_error(png, "libpng could not create an info struct");
    png_set_read_fn(png, &input, cpng_read_data);
    png_read_info(png, info);
    // Normalize every PNG flavour to 8-bit gray, gray+alpha, RGB or RGBA.
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int c = png_get_channels(png, info);
    size_t stride = png_get_rowbytes(png, info);
    if (stride != (size_t)w * (size_t)c) png_error(png, "unexpected row layout after conversion");
    if (h != 0 && stride > SIZE_MAX / h) png_error(png, "image is too large");
    data = malloc(stride * h ? stride * h : 1);
    rows = malloc(sizeof(png_bytep) * (h ? h : 1));
    if (!data || !rows) png_error(png, "out of memory while decoding PNG");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = data + (size_t)y * stride;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    *pixels = data;
    *width = (int)w;
    *height = (int)h;
    *channels = c;
    return 0;
}

void cpng_free(void *pointer) { free(pointer); }
