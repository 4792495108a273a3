/* Plugins built for ABI 1.1, before pag_host.data_info: they learn the data's shape from
 * hyperparameters that pag fills in (the legacy shim, PluginData.legacySettings), which 1.2
 * plugins never get. The descriptors say abi_version 1.1 and the code uses only what 1.1 had.
 *   legacy_model: softmax regression; `input_shape` ("CxHxW", the data's sample shape) and
 *                 `classes` (logits) are filled in by pag from the data set.
 *   legacy_score: the score of N(0, I), -x, for inputs of [channels, height, width] only;
 *                 `channels`, `height`, `width`, `classes` are filled in by pag. */
#include <stdio.h>
#include <stdlib.h>
#include <pag/plugin.h>

static const pag_host *H;

/* ---- legacy_model ---- */

typedef struct { pag_tensor w, b; } linear;

static pag_status model_create(pag_ctx *c, void **self) {
    const char *text;
    int64_t classes, shape[3];
    if (H->get_string(c, "input_shape", &text) || H->get_int(c, "classes", &classes)) return PAG_ERROR;
    long long s0, s1, s2;
    if (sscanf(text, "%lldx%lldx%lld", &s0, &s1, &s2) != 3) {
        pag_set_errorf(H, c, "input_shape '%s' is not CxHxW", text);
        return PAG_ERROR;
    }
    shape[0] = s0; shape[1] = s1; shape[2] = s2;
    if (H->declare_io(c, shape, 3, classes) != PAG_OK) return PAG_ERROR;
    linear *m = calloc(1, sizeof *m);
    if (!m) return PAG_ERROR;
    *self = m;
    int64_t w[2] = {classes, shape[0] * shape[1] * shape[2]}, b[1] = {classes};
    m->w = H->declare_parameter(c, "fc.weight", H->randn(c, w, 2, 0.0f, 0.01f));
    m->b = H->declare_parameter(c, "fc.bias", H->full(c, b, 1, 0.0f));
    return m->w && m->b ? PAG_OK : PAG_ERROR;
}

static pag_status model_forward(pag_ctx *c, void *self, pag_tensor x, int32_t train, pag_tensor *out) {
    (void)train;
    linear *m = self;
    *out = H->linear(c, H->flatten(c, x), m->w, m->b);
    return *out ? PAG_OK : PAG_ERROR;
}

static void model_destroy(void *self) { free(self); }

static const pag_hyperparameter model_hps[] = {
    {"input_shape", PAG_HP_STRING, "1x28x28", 0, 0, NULL, "sample shape CxHxW (pag fills it in)"},
    {"classes", PAG_HP_INT, "10", 1, 100000, NULL, "number of classes (pag fills it in)"},
};
static const pag_model_vtable model_vt = {sizeof(pag_model_vtable), model_create, model_forward, model_destroy};
static const pag_plugin_descriptor model_desc = {
    sizeof(pag_plugin_descriptor), PAG_MAKE_VERSION(1, 1), "legacy_model", PAG_KIND_MODEL, "1.0.0",
    "softmax regression built for ABI 1.1 (shape from filled-in hyperparameters)",
    model_hps, 2, NULL, 0, {.model = &model_vt},
};

/* ---- legacy_score ---- */

typedef struct { int64_t c, h, w, classes; } dims;

static pag_status score_create(pag_ctx *c, void **self) {
    dims *d = calloc(1, sizeof *d);
    if (!d) return PAG_ERROR;
    *self = d;
    if (H->get_int(c, "channels", &d->c) || H->get_int(c, "height", &d->h) || H->get_int(c, "width", &d->w) ||
        H->get_int(c, "classes", &d->classes))
        return PAG_ERROR;
    return PAG_OK;
}

static pag_status score_score(pag_ctx *c, void *self, pag_tensor x, double sigma, const int32_t *labels, pag_tensor *out) {
    (void)sigma; (void)labels;
    dims *d = self;
    if (H->ndim(c, x) != 4 || H->dim(c, x, 1) != d->c || H->dim(c, x, 2) != d->h || H->dim(c, x, 3) != d->w) {
        pag_set_errorf(H, c, "input does not match [N, %lld, %lld, %lld]", (long long)d->c, (long long)d->h, (long long)d->w);
        return PAG_ERROR;
    }
    *out = H->neg(c, x);
    return *out ? PAG_OK : PAG_ERROR;
}

static void score_destroy(void *self) { free(self); }

static const pag_hyperparameter score_hps[] = {
    {"channels", PAG_HP_INT, "3", 1, 4096, NULL, "image channels (pag fills it in)"},
    {"height", PAG_HP_INT, "32", 1, 4096, NULL, "image height (pag fills it in)"},
    {"width", PAG_HP_INT, "32", 1, 4096, NULL, "image width (pag fills it in)"},
    {"classes", PAG_HP_INT, "100", 1, 100000, NULL, "classes (pag fills it in)"},
};
static const pag_score_vtable score_vt = {sizeof(pag_score_vtable), score_create, NULL, score_score, NULL, score_destroy};
static const pag_plugin_descriptor score_desc = {
    sizeof(pag_plugin_descriptor), PAG_MAKE_VERSION(1, 1), "legacy_score", PAG_KIND_SCORE, "1.0.0",
    "score of N(0, I) built for ABI 1.1 (shape from filled-in hyperparameters)",
    score_hps, 4, NULL, 0, {.score = &score_vt},
};

PAG_EXPORT pag_status pag_plugin_init(const pag_host *host, pag_registry *reg) {
    H = host;
    host->register_plugin(reg, &model_desc);
    host->register_plugin(reg, &score_desc);
    return PAG_OK;
}
