/* An objective that dereferences NULL. */
#include <pag/plugin.h>
static pag_status loss(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o) {
    (void)c; (void)s; (void)m; (void)x; (void)y; (void)o;
    volatile int *p = NULL;
    *p = 42;
    return PAG_OK;
}
static const pag_objective_vtable vt = {sizeof vt, NULL, loss, NULL};
static const pag_plugin_descriptor d = {sizeof d, PAG_ABI_VERSION, "crasher", PAG_KIND_OBJECTIVE, "1.0",
                                        "segfaults in loss", NULL, 0, NULL, 0, {.objective = &vt}};
PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) { return h->register_plugin(r, &d); }
