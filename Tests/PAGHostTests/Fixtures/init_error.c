/* A plugin whose init fails with a message. */
#include <pag/plugin.h>
PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) {
    h->registry_error(r, "needs a GPU, none found");
    return PAG_ERROR;
}
