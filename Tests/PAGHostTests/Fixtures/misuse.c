/* Objectives that misuse the runtime table; each must get a clear error, never a crash.
 *   shape_error:   matmul of logits [N, C] with a [C + 1, 3] tensor
 *   stale_handle:  uses a local handle from its previous call (released when that call returned)
 *   kept_handle:   keeps a constant across calls, correctly, with keep
 *   bad_config:    reads a hyperparameter it did not declare */
#include <pag/plugin.h>
static const pag_host *H;

static pag_status shape_error(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o) {
    (void)s; (void)y;
    pag_tensor z = H->forward(c, m, x, 1);
    int64_t shape[2] = {H->dim(c, z, 1) + 1, 3};
    *o = H->mean(c, H->matmul(c, z, H->full(c, shape, 2, 1.0f), 0, 0), NULL, 0, 0);
    return *o ? PAG_OK : PAG_ERROR;
}

static pag_tensor previous;
static pag_status stale_handle(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o) {
    (void)s;
    pag_tensor loss = H->cross_entropy(c, H->forward(c, m, x, 1), y, 0.0f, PAG_REDUCTION_MEAN);
    if (previous) loss = H->add(c, loss, previous); /* wrong: previous died with the last call */
    previous = H->scalar(c, 0.0f);
    *o = loss;
    return *o ? PAG_OK : PAG_ERROR;
}

static pag_tensor constant;
static pag_status kept_handle(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o) {
    (void)s;
    if (!constant) constant = H->keep(c, H->scalar(c, 0.5f));
    *o = H->add(c, H->cross_entropy(c, H->forward(c, m, x, 1), y, 0.0f, PAG_REDUCTION_MEAN), constant);
    return *o ? PAG_OK : PAG_ERROR;
}

static pag_status bad_config(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o) {
    (void)s; (void)m; (void)x; (void)y; (void)o;
    double v;
    return H->get_float(c, "temperature", &v);
}

#define OBJECTIVE(fn) \
    static const pag_objective_vtable fn##_vt = {sizeof(pag_objective_vtable), NULL, fn, NULL}; \
    static const pag_plugin_descriptor fn##_d = {sizeof(pag_plugin_descriptor), PAG_ABI_VERSION, #fn, \
        PAG_KIND_OBJECTIVE, "1.0", "misuses the runtime table", NULL, 0, NULL, 0, {.objective = &fn##_vt}};
OBJECTIVE(shape_error)
OBJECTIVE(stale_handle)
OBJECTIVE(kept_handle)
OBJECTIVE(bad_config)

PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) {
    H = h;
    if (h->register_plugin(r, &shape_error_d) || h->register_plugin(r, &stale_handle_d) ||
        h->register_plugin(r, &kept_handle_d) || h->register_plugin(r, &bad_config_d))
        return PAG_ERROR;
    return PAG_OK;
}
