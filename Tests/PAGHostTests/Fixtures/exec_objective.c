/* Cross-entropy under a name chosen at compile time (-DNAME="..."), with a version
 * (-DVERSION="...") and a fault (-DFAULT=0 none, 1 segfault in loss, 2 loop forever in loss):
 * the task-graph tests build the broken plugins, then the fixed ones. */
#include <pag/plugin.h>
#ifndef NAME
#define NAME "exec_ce"
#endif
#ifndef VERSION
#define VERSION "1.0"
#endif
#ifndef FAULT
#define FAULT 0
#endif
static const pag_host *H;
static pag_status loss(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o) {
    (void)s;
#if FAULT == 1
    volatile int *p = NULL;
    *p = 42;
#elif FAULT == 2
    volatile unsigned long spin = 0;
    for (;;) spin++;
#endif
    *o = H->cross_entropy(c, H->forward(c, m, x, 1), y, 0.0f, PAG_REDUCTION_MEAN);
    return *o ? PAG_OK : PAG_ERROR;
}
static const pag_objective_vtable vt = {sizeof vt, NULL, loss, NULL};
static const pag_plugin_descriptor d = {sizeof d, PAG_ABI_VERSION, NAME, PAG_KIND_OBJECTIVE, VERSION,
                                        "cross-entropy (task-graph test fixture)", NULL, 0, NULL, 0, {.objective = &vt}};
PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) { H = h; return h->register_plugin(r, &d); }
