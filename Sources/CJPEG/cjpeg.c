#include "cjpeg.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

struct cjpeg_error {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char *message;
    size_t message_size;
};

static void cjpeg_error_exit(j_common_ptr info) {
    struct cjpeg_error *err = (struct cjpeg_error *)info->err;
    char text[JMSG_LENGTH_MAX];
    (*info->err->format_message)(info, text);
    snprintf(err->message, err->message_size, "%s", text);
    longjmp(err->jump, 1);
}

// Warnings (e.g. "premature end of data") would go to stderr; a truncated file is an error.
static void cjpeg_emit(j_common_ptr info, int level) {
    if (level < 0) {
        struct cjpeg_error *err = (struct cjpeg_error *)info->err;
        if (err->mgr.num_warnings++ == 0) {
            char text[JMSG_LENGTH_MAX];
            (*info->err->format_message)(info, text);
            snprintf(err->message, err->message_size, "%s", text);
        }
    }
}

int cjpeg_decode(const unsigned char *bytes, size_t size, unsigned char **pixels,
                 int *width, int *height, int *channels, char *error, size_t error_size) {
    struct jpeg_decompress_struct info;
    struct cjpeg_error err;
    unsigned char *volatile out = NULL;
    *pixels = NULL;
    if (error_size) error[0] = 0;
    memset(&info, 0, sizeof info);
    info.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = cjpeg_error_exit;
    err.mgr.emit_message = cjpeg_emit;
    err.message = error;
    err.message_size = error_size;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&info);
        free(out);
        return -1;
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, bytes, (unsigned long)size);
    jpeg_read_header(&info, TRUE);
    if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) {
        snprintf(error, error_size, "CMYK JPEG files are not supported");
        jpeg_destroy_decompress(&info);
        return -1;
    }
    info.out_color_space = info.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&info);
    size_t row = (size_t)info.output_width * (size_t)info.output_components;
    if (info.output_width == 0 || info.output_height == 0 || row > (1u << 28) / info.output_height) {
        snprintf(error, error_size, "image of %ux%u pixels is empty or too large", info.output_width, info.output_height);
        jpeg_destroy_decompress(&info);
        return -1;
    }
    out = malloc(row * info.output_height);
    if (!out) {
        snprintf(error, error_size, "out of memory");
        jpeg_destroy_decompress(&info);
        return -1;
    }
    while (info.output_scanline < info.output_height) {
        JSAMPROW line = out + row * info.output_scanline;
        jpeg_read_scanlines(&info, &line, 1);
    }
    if (err.mgr.num_warnings > 0) {  // corrupt or truncated data: libjpeg filled in grey
        jpeg_destroy_decompress(&info);
        free(out);
        return -1;
    }
    jpeg_finish_decompress(&info);
    *width = (int)info.output_width;
    *height = (int)info.output_height;
    *channels = info.output_components;
    *pixels = out;
    jpeg_destroy_decompress(&info);
    return 0;
}

void cjpeg_free(void *pointer) { free(pointer); }
