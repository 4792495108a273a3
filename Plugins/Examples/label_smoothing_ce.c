/*
 * label_smoothing_ce — cross-entropy with label smoothing, as a pag objective in plain C.
 *
 * The loss of logits z for label y among C classes, with smoothing eps, is
 *     -sum_k q_k log softmax(z)_k,   q = (1 - eps) one_hot(y) + eps / C,
 * averaged over the batch (PyTorch's F.cross_entropy(z, y, label_smoothing=eps)). It is built
 * here from the host's differentiable operations, so the host can differentiate it (also twice).
 *
 * Build (outside any build system):
 *     cc -std=c99 -Wall -Wextra -Werror -shared -fPIC -Iinclude \
 *        Plugins/Examples/label_smoothing_ce.c -o label_smoothing_ce.so -lm
 */
#include <math.h>
#include <stdlib.h>

#include <pag/plugin.h>

static const pag_host *host; /* valid while the library is loaded */

/* The smallest loss reachable with smoothing eps and C classes: the entropy of the smoothed
 * target q. Exported for `pag plugins call label_smoothing_ce min_loss 0.1 10`. */
static double min_loss(double eps, int32_t classes) {
    if (classes < 1 || !(eps >= 0.0 && eps <= 1.0)) return NAN;
    double on = 1.0 - eps + eps / classes, off = eps / classes;
    double h = on > 0 ? -on * log(on) : 0.0;
    if (off > 0) h -= (classes - 1) * off * log(off);
    return h;
}

/* Reports the fraction of rows of logits [n, c] whose largest entry is the label. */
static pag_status report_accuracy(pag_ctx *ctx, pag_tensor logits, const int32_t *labels, int64_t n, int64_t c) {
    float *z = malloc((size_t)(n * c) * sizeof *z);
    if (!z) { host->set_error(ctx, "out of memory"); return PAG_ERROR; }
    if (host->copy_out(ctx, logits, z, n * c) != PAG_OK) { free(z); return PAG_ERROR; }
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t best = 0;
        for (int64_t k = 1; k < c; k++) if (z[i * c + k] > z[i * c + best]) best = k;
        correct += best == labels[i];
    }
    free(z);
    return host->report_metric(ctx, "accuracy", n > 0 ? (double)correct / (double)n : 0.0);
}

static pag_status loss(pag_ctx *ctx, void *self, pag_model *model, pag_tensor x, const int32_t *labels,
                       pag_tensor *out) {
    (void)self;
    double eps;
    if (host->get_float(ctx, "smoothing", &eps) != PAG_OK) return PAG_ERROR;

    pag_tensor logits = host->forward(ctx, model, x, 1);
    if (!logits) return PAG_ERROR;
    int64_t n = host->dim(ctx, logits, 0), c = host->dim(ctx, logits, 1);

    /* q = (1 - eps) one_hot(y) + eps / C; loss = mean_i( -sum_k q_ik log p_ik ). */
    pag_tensor log_p = host->log_softmax(ctx, logits, 1);
    pag_tensor target = host->add_scalar(ctx, host->mul_scalar(ctx, host->one_hot(ctx, labels, n, (int32_t)c),
                                                               (float)(1.0 - eps)), (float)(eps / (double)c));
    const int32_t class_axis[1] = {1};
    pag_tensor per_sample = host->neg(ctx, host->sum(ctx, host->mul(ctx, target, log_p), class_axis, 1, 0));
    *out = host->mean(ctx, per_sample, NULL, 0, 0);
    if (!*out) return PAG_ERROR; /* errors are sticky: the first failing operation's message is kept */

    return report_accuracy(ctx, logits, labels, n, c);
}

static const pag_hyperparameter hyperparameters[] = {
    {"smoothing", PAG_HP_FLOAT, "0.1", 0.0, 1.0, NULL,
     "probability mass spread uniformly over all classes (0 = plain cross-entropy)"},
};

static const pag_function functions[] = {
    {"min_loss", (pag_any_function)min_loss, "f64 (f64, i32)",
     "lowest reachable loss for (smoothing, classes): the entropy of the smoothed target"},
};

static const pag_objective_vtable vtable = {
    sizeof(pag_objective_vtable), NULL, loss, NULL,
};

static const pag_plugin_descriptor descriptor = {
    sizeof(pag_plugin_descriptor), PAG_ABI_VERSION,
    "label_smoothing_ce", PAG_KIND_OBJECTIVE, "1.0.0",
    "cross-entropy with label smoothing (C example)",
    hyperparameters, 1, functions, 1,
    {.objective = &vtable},
};

PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *reg) {
    host = h;
    return host->register_plugin(reg, &descriptor);
}
