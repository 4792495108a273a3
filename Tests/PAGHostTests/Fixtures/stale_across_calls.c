/* Objectives that keep what dies with a call and use it in the next one; each must get the
 * documented error naming the plugin, never a crash or a silent alias:
 *   stale_ctx:     calls a host function with the pag_ctx of its previous call
 *   alias_handle:  its previous call's local handle sits in the same slot as a new tensor now */
#include <pag/plugin.h>
static const pag_host *H;

static pag_ctx *old_ctx;
static pag_status stale_ctx(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o) {
    (void)s;
    if (old_ctx) (void)H->scalar(old_ctx, 1.0f); /* wrong: that context ended with its call */
    old_ctx = c;
    *o = H->cross_entropy(c, H->forward(c, m, x, 1), y, 0.0f, PAG_REDUCTION_MEAN);
    return *o ? PAG_OK : PAG_ERROR;
}

static pag_tensor previous;
static pag_status alias_handle(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o) {
    (void)s;
    pag_tensor a = H->scalar(c, 0.25f); /* the same slot as `previous` had in the last call */
    if (previous) a = H->add(c, a, previous); /* wrong: previous died with the first call */
    else previous = a;
    *o = H->add(c, H->cross_entropy(c, H->forward(c, m, x, 1), y, 0.0f, PAG_REDUCTION_MEAN), a);
    return *o ? PAG_OK : PAG_ERROR;
}

#define OBJECTIVE(fn) \
    static const pag_objective_vtable fn##_vt = {sizeof(pag_objective_vtable), NULL, fn, NULL}; \
    static const pag_plugin_descriptor fn##_d = {sizeof(pag_plugin_descriptor), PAG_ABI_VERSION, #fn, \
        PAG_KIND_OBJECTIVE, "1.0", "keeps what dies with a call", NULL, 0, NULL, 0, {.objective = &fn##_vt}};
OBJECTIVE(stale_ctx)
OBJECTIVE(alias_handle)

PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) {
    H = h;
    if (h->register_plugin(r, &stale_ctx_d) || h->register_plugin(r, &alias_handle_d)) return PAG_ERROR;
    return PAG_OK;
}
