/* A manifold estimator, a score estimator and a conv/batch-norm model, to exercise fit, data
 * sets, kept handles, buffers and evaluation mode through the runtime table.
 *   flat_manifold:  the manifold is the line through the data's mean direction; its tangent
 *                   space at every point is spanned by that unit vector u.
 *   gaussian_score: the data as N(0, s^2 I), s^2 = the data's mean square; the score of the
 *                   data smoothed with noise sigma is -x / (s^2 + sigma^2).
 *   conv_bn:        conv 3x3 -> batch norm -> relu -> max pool -> global average -> linear.
 *   learned_score:  score -a x with a learned by denoising score matching at noise `sigma`:
 *                   train_loss = mean (-a (x + sigma e) + e / sigma)^2, minimized by
 *                   a = 1 / (E[x^2] + sigma^2). */
#include <stdlib.h>
#include <pag/plugin.h>

static const pag_host *H;

typedef struct { pag_tensor u; int64_t d; } flat;

static pag_status flat_create(pag_ctx *c, void **self) {
    (void)c;
    *self = calloc(1, sizeof(flat));
    return *self ? PAG_OK : PAG_ERROR;
}

static pag_status flat_fit(pag_ctx *c, void *self, pag_dataset *data) {
    flat *f = self;
    int64_t n = H->dataset_count(c, data);
    pag_tensor x = H->flatten(c, H->dataset_images(c, data, 0, n));
    f->d = H->dim(c, x, 1);
    pag_tensor m = H->mean(c, x, (const int32_t[]){0}, 1, 0);
    pag_tensor u = H->div(c, m, H->sqrt(c, H->sum(c, H->square(c, m), NULL, 0, 0)));
    int32_t labels[2];
    if (H->dataset_labels(c, data, 0, 2, labels) != PAG_OK || H->dataset_classes(c, data) != 2) return PAG_ERROR;
    f->u = H->keep(c, u);
    return f->u ? PAG_OK : PAG_ERROR;
}

static pag_status flat_basis(pag_ctx *c, void *self, pag_tensor x, pag_tensor *out) {
    flat *f = self;
    int64_t shape[3] = {H->dim(c, x, 0), 1, f->d};
    *out = H->broadcast_to(c, H->reshape(c, f->u, shape + 1, 2), shape, 3);
    return *out ? PAG_OK : PAG_ERROR;
}

static pag_status flat_project(pag_ctx *c, void *self, pag_tensor x, pag_tensor v, int32_t which, pag_tensor *out) {
    flat *f = self;
    int64_t n = H->dim(c, v, 0), flat_shape[2] = {n, f->d};
    pag_tensor vf = H->reshape(c, v, flat_shape, 2);
    const int32_t axis1[1] = {1};
    pag_tensor coef = H->sum(c, H->mul(c, vf, f->u), axis1, 1, 1);          /* [n, 1] */
    pag_tensor tangent = H->mul(c, coef, f->u);                            /* [n, d] */
    pag_tensor part = which == PAG_PROJECT_NORMAL ? H->sub(c, vf, tangent) : tangent;
    int64_t shape[8];
    int32_t nd = H->ndim(c, v);
    for (int32_t i = 0; i < nd && i < 8; i++) shape[i] = H->dim(c, v, i);
    (void)x;
    *out = H->reshape(c, part, shape, nd);
    return *out ? PAG_OK : PAG_ERROR;
}

static void flat_destroy(void *self) { free(self); }

static double variance; /* one instance at a time in this fixture */
static pag_status gauss_fit(pag_ctx *c, void *self, pag_dataset *data) {
    (void)self;
    float v;
    pag_tensor x = H->dataset_images(c, data, 0, H->dataset_count(c, data));
    if (H->item(c, H->mean(c, H->square(c, x), NULL, 0, 0), &v) != PAG_OK) return PAG_ERROR;
    variance = v;
    return PAG_OK;
}

static pag_status gauss_score(pag_ctx *c, void *self, pag_tensor x, double sigma, const int32_t *labels, pag_tensor *out) {
    (void)self; (void)labels;
    *out = H->mul_scalar(c, x, (float)(-1.0 / (variance + sigma * sigma)));
    return *out ? PAG_OK : PAG_ERROR;
}

typedef struct { pag_tensor w, b, gamma, beta, mean, var, fw, fb; } convbn;

static pag_status cb_create(pag_ctx *c, void **self) {
    convbn *m = calloc(1, sizeof *m);
    if (!m) return PAG_ERROR;
    *self = m;
    int64_t in[3] = {1, 8, 8}, w[4] = {4, 1, 3, 3}, ch[1] = {4}, fw[2] = {3, 4}, fb[1] = {3};
    m->w = H->declare_parameter(c, "conv.weight", H->randn(c, w, 4, 0.0f, 0.3f));
    m->b = H->declare_parameter(c, "conv.bias", H->full(c, ch, 1, 0.0f));
    m->gamma = H->declare_parameter(c, "bn.weight", H->full(c, ch, 1, 1.0f));
    m->beta = H->declare_parameter(c, "bn.bias", H->full(c, ch, 1, 0.0f));
    m->mean = H->declare_buffer(c, "bn.running_mean", H->full(c, ch, 1, 0.0f));
    m->var = H->declare_buffer(c, "bn.running_var", H->full(c, ch, 1, 1.0f));
    m->fw = H->declare_parameter(c, "fc.weight", H->rand(c, fw, 2, -0.5f, 0.5f));
    m->fb = H->declare_parameter(c, "fc.bias", H->full(c, fb, 1, 0.0f));
    return H->declare_io(c, in, 3, 3);
}

static pag_status cb_forward(pag_ctx *c, void *self, pag_tensor x, int32_t train, pag_tensor *out) {
    convbn *m = self;
    pag_tensor h = H->conv2d(c, x, m->w, m->b, 1, 1, 1, 1);
    h = H->batch_norm(c, h, m->gamma, m->beta, m->mean, m->var, train, 0.1f, 1e-5f);
    h = H->global_avg_pool2d(c, H->max_pool2d(c, H->relu(c, h), 2, 0, 0));
    *out = H->linear(c, H->flatten(c, h), m->fw, m->fb);
    return *out ? PAG_OK : PAG_ERROR;
}

static void cb_destroy(void *self) { free(self); }

static pag_status ls_create(pag_ctx *c, void **self) {
    int64_t one[1] = {1};
    pag_tensor a = H->declare_parameter(c, "a", H->full(c, one, 1, 0.1f));
    *self = (void *)a; /* a kept handle: valid for the instance's life */
    return a ? PAG_OK : PAG_ERROR;
}

static pag_status ls_score(pag_ctx *c, void *self, pag_tensor x, double sigma, const int32_t *labels, pag_tensor *out) {
    (void)sigma; (void)labels;
    *out = H->neg(c, H->mul(c, x, (pag_tensor)self));
    return *out ? PAG_OK : PAG_ERROR;
}

static pag_status ls_train_loss(pag_ctx *c, void *self, pag_tensor x, const int32_t *labels, pag_tensor *out) {
    (void)labels;
    double sigma;
    if (H->get_float(c, "sigma", &sigma) != PAG_OK) return PAG_ERROR;
    int64_t shape[8];
    int32_t nd = H->ndim(c, x);
    for (int32_t i = 0; i < nd && i < 8; i++) shape[i] = H->dim(c, x, i);
    pag_tensor e = H->randn(c, shape, nd, 0.0f, 1.0f);
    pag_tensor noisy = H->add(c, x, H->mul_scalar(c, e, (float)sigma));
    pag_tensor s = H->neg(c, H->mul(c, noisy, (pag_tensor)self));
    *out = H->mse(c, s, H->mul_scalar(c, e, (float)(-1.0 / sigma)), PAG_REDUCTION_MEAN);
    return *out ? PAG_OK : PAG_ERROR;
}

static const pag_hyperparameter ls_hp[] = {{"sigma", PAG_HP_FLOAT, "1", 0.01, 10, NULL, "training noise level"}};
static const pag_score_vtable ls_vt = {sizeof ls_vt, ls_create, NULL, ls_score, ls_train_loss, NULL};

static const pag_manifold_vtable flat_vt = {sizeof flat_vt, flat_create, flat_fit, flat_basis, flat_project, NULL, flat_destroy};
static const pag_score_vtable gauss_vt = {sizeof gauss_vt, NULL, gauss_fit, gauss_score, NULL, NULL};
static const pag_model_vtable cb_vt = {sizeof cb_vt, cb_create, cb_forward, cb_destroy};
static const pag_plugin_descriptor ds[4] = {
    {sizeof(pag_plugin_descriptor), PAG_ABI_VERSION, "flat_manifold", PAG_KIND_MANIFOLD, "1.0", "line through the mean",
     NULL, 0, NULL, 0, {.manifold = &flat_vt}},
    {sizeof(pag_plugin_descriptor), PAG_ABI_VERSION, "gaussian_score", PAG_KIND_SCORE, "1.0", "isotropic Gaussian score",
     NULL, 0, NULL, 0, {.score = &gauss_vt}},
    {sizeof(pag_plugin_descriptor), PAG_ABI_VERSION, "conv_bn", PAG_KIND_MODEL, "1.0", "conv, batch norm, pooling",
     NULL, 0, NULL, 0, {.model = &cb_vt}},
    {sizeof(pag_plugin_descriptor), PAG_ABI_VERSION, "learned_score", PAG_KIND_SCORE, "1.0", "denoising score matching",
     ls_hp, 1, NULL, 0, {.score = &ls_vt}},
};

PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) {
    H = h;
    for (int i = 0; i < 4; i++)
        if (h->register_plugin(r, &ds[i]) != PAG_OK) return PAG_ERROR;
    return PAG_OK;
}
