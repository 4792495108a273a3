/* A library whose pag_plugin_init segfaults. */
#include <pag/plugin.h>
PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) {
    (void)h; (void)r;
    volatile int *p = NULL;
    return (pag_status)*p;
}
