/*
 * linear_model — a small classifier as a pag model plugin in plain C: softmax regression, or
 * a one-hidden-layer MLP when `hidden` > 0. Parameters use PyTorch's names and layouts
 * (fc1.weight [hidden, in], fc1.bias, fc2.weight [classes, hidden], fc2.bias) and PyTorch's
 * default initialization, uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)).
 *
 * The input shape and the number of classes come from the data the instance is created for
 * (host->data_info, ABI 1.2); without data (a unit test, `pag plugins train`) it falls back to
 * 1x28x28 samples and 10 classes. Its hyperparameters are choices only: hidden, activation.
 *
 * Build: cc -std=c99 -Wall -Wextra -Werror -shared -fPIC -Iinclude \
 *           Plugins/Examples/linear_model.c -o linear_model.so -lm
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <pag/plugin.h>

static const pag_host *host;

typedef struct {
    pag_tensor w1, b1, w2, b2; /* kept for the instance's life; w2, b2 NULL without hidden layer */
    int activation;            /* 0 relu, 1 softplus, 2 tanh */
} model;

/* Declares a Linear layer's weight [out, in] and bias [out] under prefix (e.g. "fc1"). */
static pag_status linear_layer(pag_ctx *ctx, const char *prefix, int64_t in, int64_t out, pag_tensor *w, pag_tensor *b) {
    float bound = (float)(1.0 / sqrt((double)in));
    int64_t wshape[2] = {out, in}, bshape[1] = {out};
    char name[64];
    strcpy(name, prefix); strcat(name, ".weight");
    *w = host->declare_parameter(ctx, name, host->rand(ctx, wshape, 2, -bound, bound));
    strcpy(name, prefix); strcat(name, ".bias");
    *b = host->declare_parameter(ctx, name, host->rand(ctx, bshape, 1, -bound, bound));
    return *w && *b ? PAG_OK : PAG_ERROR;
}

static pag_status create(pag_ctx *ctx, void **self) {
    int64_t hidden;
    const char *activation;
    if (host->get_int(ctx, "hidden", &hidden) || host->get_string(ctx, "activation", &activation))
        return PAG_ERROR;
    /* The data's sample shape and classes; the defaults when the host gave no data. */
    int64_t default_input[3] = {1, 28, 28};
    const int64_t *input = default_input;
    int32_t ndim = 3;
    int64_t classes = 10;
    const pag_data_info *data = PAG_HOST_HAS(host, data_info) ? host->data_info(ctx) : NULL;
    if (data) {
        if (data->sample_ndim < 1 || data->classes < 1) {
            pag_set_errorf(host, ctx, "data set '%s' has no sample shape or no classes", data->name);
            return PAG_ERROR;
        }
        input = data->sample_shape;
        ndim = data->sample_ndim;
        classes = data->classes;
    }
    int64_t features = 1;
    for (int32_t i = 0; i < ndim; i++) features *= input[i];
    if (host->declare_io(ctx, input, ndim, classes) != PAG_OK) return PAG_ERROR;

    model *m = calloc(1, sizeof *m);
    if (!m) { host->set_error(ctx, "out of memory"); return PAG_ERROR; }
    *self = m; /* set before any failure so destroy frees it */
    m->activation = strcmp(activation, "softplus") == 0 ? 1 : strcmp(activation, "tanh") == 0 ? 2 : 0;
    if (hidden > 0) {
        if (linear_layer(ctx, "fc1", features, hidden, &m->w1, &m->b1)) return PAG_ERROR;
        return linear_layer(ctx, "fc2", hidden, classes, &m->w2, &m->b2);
    }
    return linear_layer(ctx, "fc", features, classes, &m->w1, &m->b1);
}

static pag_status forward(pag_ctx *ctx, void *self, pag_tensor x, int32_t train, pag_tensor *out) {
    (void)train;
    model *m = self;
    pag_tensor h = host->linear(ctx, host->flatten(ctx, x), m->w1, m->b1);
    if (m->w2) {
        h = m->activation == 1 ? host->softplus(ctx, h, 1.0f, 20.0f)
          : m->activation == 2 ? host->tanh(ctx, h) : host->relu(ctx, h);
        h = host->linear(ctx, h, m->w2, m->b2);
    }
    *out = h;
    return h ? PAG_OK : PAG_ERROR;
}

static void destroy(void *self) { free(self); }

static const pag_hyperparameter hyperparameters[] = {
    {"hidden", PAG_HP_INT, "0", 0, 100000, NULL, "hidden units; 0 gives softmax regression"},
    {"activation", PAG_HP_CHOICE, "relu", 0, 0, "relu|softplus|tanh", "activation of the hidden layer"},
};

static const pag_model_vtable vtable = {sizeof(pag_model_vtable), create, forward, destroy};

static const pag_plugin_descriptor descriptor = {
    sizeof(pag_plugin_descriptor), PAG_ABI_VERSION,
    "linear_model", PAG_KIND_MODEL, "1.0.0",
    "softmax regression or one-hidden-layer MLP (C example)",
    hyperparameters, sizeof hyperparameters / sizeof hyperparameters[0], NULL, 0,
    {.model = &vtable},
};

PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *reg) {
    host = h;
    return host->register_plugin(reg, &descriptor);
}
