/* An objective (cross-entropy) that reports an error on its third call. */
#include <pag/plugin.h>
static const pag_host *H;
static int calls;
static pag_status loss(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o) {
    (void)s;
    if (++calls == 3) {
        pag_set_errorf(H, c, "gradient exploded at call %d", calls);
        return PAG_ERROR;
    }
    *o = H->cross_entropy(c, H->forward(c, m, x, 1), y, 0.0f, PAG_REDUCTION_MEAN);
    return *o ? PAG_OK : PAG_ERROR;
}
static const pag_objective_vtable vt = {sizeof vt, NULL, loss, NULL};
static const pag_plugin_descriptor d = {sizeof d, PAG_ABI_VERSION, "fails_mid_training", PAG_KIND_OBJECTIVE, "1.0",
                                        "fails on the third call", NULL, 0, NULL, 0, {.objective = &vt}};
PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) { H = h; return h->register_plugin(r, &d); }
