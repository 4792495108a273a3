/* An objective (cross-entropy) that reports a NaN metric on every call. */
#include <math.h>
#include <pag/plugin.h>
static const pag_host *H;
static pag_status loss(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o) {
    (void)s;
    *o = H->cross_entropy(c, H->forward(c, m, x, 1), y, 0.0f, PAG_REDUCTION_MEAN);
    if (!*o) return PAG_ERROR;
    if (H->report_metric(c, "ratio", NAN) != PAG_OK) return PAG_ERROR;
    return H->report_metric(c, "fine", 1.5);
}
static const pag_objective_vtable vt = {sizeof vt, NULL, loss, NULL};
static const pag_plugin_descriptor d = {sizeof d, PAG_ABI_VERSION, "nan_metric", PAG_KIND_OBJECTIVE, "1.0",
                                        "reports a NaN metric", NULL, 0, NULL, 0, {.objective = &vt}};
PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) { H = h; return h->register_plugin(r, &d); }
