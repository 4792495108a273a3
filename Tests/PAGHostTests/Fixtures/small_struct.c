/* A descriptor whose struct_size is smaller than ABI 1.0's pag_plugin_descriptor. */
#include <pag/plugin.h>
static const pag_plugin_descriptor d = {16, PAG_ABI_VERSION, "tiny", PAG_KIND_OBJECTIVE, "1.0", "too small",
                                        NULL, 0, NULL, 0, {NULL}};
PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) { return h->register_plugin(r, &d); }
