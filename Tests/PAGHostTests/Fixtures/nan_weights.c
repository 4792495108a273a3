/* An objective whose loss stays finite but whose gradient is NaN from its third call on
 * (d sqrt(x)/dx at x = 0 times 0), so the weights go NaN while every loss is finite. */
#include <pag/plugin.h>
static const pag_host *H;
static int calls;
static pag_status loss(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o) {
    (void)s;
    pag_tensor ce = H->cross_entropy(c, H->forward(c, m, x, 1), y, 0.0f, PAG_REDUCTION_MEAN);
    if (!ce) return PAG_ERROR;
    *o = ++calls < 3 ? ce : H->sqrt(c, H->mul_scalar(c, ce, 0.0f));
    return *o ? PAG_OK : PAG_ERROR;
}
static const pag_objective_vtable vt = {sizeof vt, NULL, loss, NULL};
static const pag_plugin_descriptor d = {sizeof d, PAG_ABI_VERSION, "nan_weights", PAG_KIND_OBJECTIVE, "1.0",
                                        "finite loss, NaN gradient from call 3", NULL, 0, NULL, 0, {.objective = &vt}};
PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) { H = h; return h->register_plugin(r, &d); }
