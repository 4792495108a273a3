/* ABI 1.2 probes: pag_host.data_info and pag_host.descriptor, seen from C.
 *   data_probe, data_probe_b: two descriptors sharing one create function, which asks
 *   host->descriptor(ctx) which one it serves. create reads host->data_info(ctx) and declares
 *   its input from it (without data: [1, 2, 2] and 3 classes); forward checks that data_info
 *   returns the same pointer in a later call. `pag plugins call data_probe seen` returns what
 *   the last create saw, e.g. "descriptor=data_probe data=test 1x6x5 classes=3 error=none". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pag/plugin.h>

static const pag_host *H;
static char seen_text[512] = "nothing";

typedef struct { pag_tensor w; const pag_data_info *info; } probe;

static const pag_plugin_descriptor desc_a, desc_b;

static pag_status create(pag_ctx *c, void **self) {
    if (!PAG_HOST_HAS(H, descriptor) || !PAG_HOST_HAS(H, data_info)) {
        H->set_error(c, "the host has no data_info / descriptor (ABI < 1.2)");
        return PAG_ERROR;
    }
    const pag_plugin_descriptor *d = H->descriptor(c);
    if (d != &desc_a && d != &desc_b) {
        H->set_error(c, "descriptor() returned a pointer this library did not register");
        return PAG_ERROR;
    }
    const pag_data_info *info = H->data_info(c);
    const char *error = H->get_error(c);
    int64_t fallback[3] = {1, 2, 2};
    const int64_t *shape = fallback;
    int32_t ndim = 3, classes = 3;
    char data[256];
    if (info) {
        if (info->struct_size < sizeof(pag_data_info)) {
            H->set_error(c, "pag_data_info.struct_size is too small");
            return PAG_ERROR;
        }
        int n = snprintf(data, sizeof data, "%s ", info->name);
        for (int32_t i = 0; i < info->sample_ndim && n > 0 && (size_t)n < sizeof data; i++)
            n += snprintf(data + n, sizeof data - (size_t)n, "%s%lld", i ? "x" : "", (long long)info->sample_shape[i]);
        if (n > 0 && (size_t)n < sizeof data) snprintf(data + n, sizeof data - (size_t)n, " classes=%d", (int)info->classes);
        shape = info->sample_shape; ndim = info->sample_ndim; classes = info->classes;
    } else {
        strcpy(data, "NULL");
    }
    snprintf(seen_text, sizeof seen_text, "descriptor=%s data=%s error=%s", d->name, data, error ? error : "none");
    if (H->declare_io(c, shape, ndim, classes) != PAG_OK) return PAG_ERROR;
    probe *p = calloc(1, sizeof *p);
    if (!p) return PAG_ERROR;
    *self = p;
    p->info = info;
    int64_t numel = 1;
    for (int32_t i = 0; i < ndim; i++) numel *= shape[i];
    int64_t w[2] = {classes, numel};
    p->w = H->declare_parameter(c, "fc.weight", H->full(c, w, 2, 0.5f));
    return p->w ? PAG_OK : PAG_ERROR;
}

static pag_status forward(pag_ctx *c, void *self, pag_tensor x, int32_t train, pag_tensor *out) {
    (void)train;
    probe *p = self;
    if (H->data_info(c) != p->info) {
        H->set_error(c, "data_info returned another pointer in forward than in create");
        return PAG_ERROR;
    }
    *out = H->linear(c, H->flatten(c, x), p->w, NULL);
    return *out ? PAG_OK : PAG_ERROR;
}

static void destroy(void *self) { free(self); }

static const char *seen(void) { return seen_text; }

static const pag_function functions[] = {
    {"seen", (pag_any_function)seen, "str ()", "what the last create saw"},
};
static const pag_model_vtable vt = {sizeof(pag_model_vtable), create, forward, destroy};
static const pag_plugin_descriptor desc_a = {
    sizeof(pag_plugin_descriptor), PAG_ABI_VERSION, "data_probe", PAG_KIND_MODEL, "1.0.0",
    "reports what data_info and descriptor gave its create", NULL, 0, functions, 1, {.model = &vt},
};
static const pag_plugin_descriptor desc_b = {
    sizeof(pag_plugin_descriptor), PAG_ABI_VERSION, "data_probe_b", PAG_KIND_MODEL, "1.0.0",
    "the same create as data_probe, another descriptor", NULL, 0, NULL, 0, {.model = &vt},
};

PAG_EXPORT pag_status pag_plugin_init(const pag_host *host, pag_registry *reg) {
    H = host;
    host->register_plugin(reg, &desc_a);
    host->register_plugin(reg, &desc_b);
    return PAG_OK;
}
