/* An objective whose loss is NaN (log of a negative number). */
#include <pag/plugin.h>
static const pag_host *H;
static pag_status loss(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o) {
    (void)s; (void)y;
    pag_tensor z = H->mean(c, H->forward(c, m, x, 1), NULL, 0, 0);
    *o = H->log(c, H->add_scalar(c, H->mul_scalar(c, z, 0.0f), -1.0f));
    return *o ? PAG_OK : PAG_ERROR;
}
static const pag_objective_vtable vt = {sizeof vt, NULL, loss, NULL};
static const pag_plugin_descriptor d = {sizeof d, PAG_ABI_VERSION, "nan_loss", PAG_KIND_OBJECTIVE, "1.0",
                                        "returns NaN", NULL, 0, NULL, 0, {.objective = &vt}};
PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) { H = h; return h->register_plugin(r, &d); }
