/* Extra functions of every signature type, for pag plugins call. */
#include <stdbool.h>
#include <string.h>
#include <pag/plugin.h>

static const char *shout(const char *s, bool loud) { return loud && strcmp(s, "hi") == 0 ? "HI!" : s; }
static int64_t twice(int64_t x) { return 2 * x; }
static float half(float x) { return x / 2; }
static bool is_even(int32_t x) { return x % 2 == 0; }
static int calls;
static void touch(void) { calls++; }
static int32_t touched(void) { return calls; }

static pag_status loss(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o);
static const pag_host *H;
static pag_status loss(pag_ctx *c, void *s, pag_model *m, pag_tensor x, const int32_t *y, pag_tensor *o) {
    (void)s;
    *o = H->cross_entropy(c, H->forward(c, m, x, 1), y, 0.0f, PAG_REDUCTION_MEAN);
    return *o ? PAG_OK : PAG_ERROR;
}

static const pag_function fns[] = {
    {"shout", (pag_any_function)shout, "str (str, bool)", "echo, loudly for hi"},
    {"twice", (pag_any_function)twice, "i64 (i64)", "2x"},
    {"half", (pag_any_function)half, "f32 (f32)", "x/2"},
    {"is_even", (pag_any_function)is_even, "bool (i32)", "parity"},
    {"touch", (pag_any_function)touch, "void ()", "count a call"},
    {"touched", (pag_any_function)touched, "i32 ()", "calls so far"},
};
static const pag_objective_vtable vt = {sizeof vt, NULL, loss, NULL};
static const pag_plugin_descriptor d = {sizeof d, PAG_ABI_VERSION, "ffi_types", PAG_KIND_OBJECTIVE, "1.0",
                                        "extra functions of every type", NULL, 0, fns, 6, {.objective = &vt}};
PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *r) { H = h; return h->register_plugin(r, &d); }
