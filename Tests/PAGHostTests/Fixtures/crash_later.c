/* Cross-entropy that segfaults on call number $PAG_TEST_CRASH_AT of its process (never when the
 * variable is unset): a plugin that crashes pag in the middle of `pag train`. */
#include <pag/plugin.h>
#include <stdlib.h>
static const pag_host *H;
static int calls;
static pag_status loss(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o) {
    (void)s;
    const char *at = getenv("PAG_TEST_CRASH_AT");
    if (at && ++calls == atoi(at)) {
        volatile int *p = NULL;
        *p = 42;
    }
    *o = H->cross_entropy(c, H->forward(c, m, x, 1), y, 0.0f, PAG_REDUCTION_MEAN);
    return *o ? PAG_OK : PAG_ERROR;
}
static const pag_objective_vtable vt = {sizeof vt, NULL, loss, NULL};
static const pag_plugin_descriptor d = {sizeof d, PAG_ABI_VERSION, "crash_later", PAG_KIND_OBJECTIVE, "1.0",
                                        "cross-entropy that segfaults on call $PAG_TEST_CRASH_AT", NULL, 0, NULL, 0, {.objective = &vt}};
PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) { H = h; return h->register_plugin(r, &d); }
