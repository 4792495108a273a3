/* Two plugins in one library: one with a default outside its range (rejected), one fine. */
#include <pag/plugin.h>
static pag_status loss(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o) {
    (void)s; (void)x; (void)y;
    extern const pag_host *fixture_host;
    pag_tensor z = fixture_host->forward(c, m, x, 1);
    *o = fixture_host->mean(c, z, NULL, 0, 0);
    return *o ? PAG_OK : PAG_ERROR;
}
const pag_host *fixture_host;
static const pag_objective_vtable vt = {sizeof vt, NULL, loss, NULL};
static const pag_hyperparameter bad[] = {{"smoothing", PAG_HP_FLOAT, "1.5", 0.0, 1.0, NULL, "out of range"}};
static const pag_plugin_descriptor d1 = {sizeof d1, PAG_ABI_VERSION, "bad_default", PAG_KIND_OBJECTIVE, "1.0",
                                         "default outside range", bad, 1, NULL, 0, {.objective = &vt}};
static const pag_plugin_descriptor d2 = {sizeof d2, PAG_ABI_VERSION, "mean_logit", PAG_KIND_OBJECTIVE, "1.0",
                                         "mean of the logits", NULL, 0, NULL, 0, {.objective = &vt}};
PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) {
    fixture_host = h;
    (void)h->register_plugin(r, &d1); /* fails; the host reports it and d2 still loads */
    return h->register_plugin(r, &d2);
}
