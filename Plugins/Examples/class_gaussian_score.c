/*
 * class_gaussian_score — a score estimator as a pag plugin in plain C: the data modelled as a Gaussian
 * with a diagonal covariance, one per class. For noise level sigma the smoothed density is again
 * Gaussian, so the score is exact for that model:
 *
 *     s(x) = -(x - mean) / (var + sigma^2)        (per element; per class when labels are given)
 *
 * Lifecycle (docs/ABI.md, "Estimators"): the host calls create, then fit once with the data set
 * the instance is for, then score any number of times, then destroy. fit runs again on every
 * `pag measure` and once per `pag run`: set `cache` to a file name to keep an expensive fit
 * (the statistics are written there after the first fit and read back by later ones).
 *
 * The statistics live in plugin memory (self), not in tensors: tensors made in fit are released
 * when fit returns (use host->keep for a tensor that must outlive the call).
 *
 * Build: cc -std=c99 -Wall -Wextra -Werror -shared -fPIC -Iinclude \
 *           Plugins/Examples/class_gaussian_score.c -o class_gaussian_score.so
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pag/plugin.h>

static const pag_host *host;

typedef struct {
    int64_t d;       /* elements of one sample */
    int32_t classes; /* statistics per class, then the unconditional ones at index `classes` */
    float *mean;     /* [(classes + 1) * d] */
    float *var;      /* [(classes + 1) * d] */
} gaussian;

static pag_status create(pag_ctx *ctx, void **self) {
    (void)ctx;
    *self = calloc(1, sizeof(gaussian));
    return *self ? PAG_OK : PAG_ERROR;
}

static void destroy(void *self) {
    gaussian *g = self;
    free(g->mean);
    free(g->var);
    free(g);
}

/* Reads the statistics from `path` when it holds them for the same d and classes. */
static int load_cache(gaussian *g, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int64_t header[2];
    size_t n = (size_t)(g->classes + 1) * (size_t)g->d;
    int ok = fread(header, sizeof header, 1, f) == 1 && header[0] == g->d && header[1] == g->classes
          && fread(g->mean, sizeof(float), n, f) == n && fread(g->var, sizeof(float), n, f) == n;
    fclose(f);
    return ok;
}

static void save_cache(const gaussian *g, const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    int64_t header[2] = {g->d, g->classes};
    size_t n = (size_t)(g->classes + 1) * (size_t)g->d;
    fwrite(header, sizeof header, 1, f);
    fwrite(g->mean, sizeof(float), n, f);
    fwrite(g->var, sizeof(float), n, f);
    fclose(f);
}

static pag_status fit(pag_ctx *ctx, void *self, pag_dataset *data) {
    gaussian *g = self;
    const char *cache;
    if (host->get_string(ctx, "cache", &cache)) return PAG_ERROR;
    int64_t count = host->dataset_count(ctx, data);
    int32_t classes = host->dataset_classes(ctx, data);
    if (count < 1 || classes < 1) {
        pag_set_errorf(host, ctx, "fit needs samples and classes (got %lld samples, %d classes)", (long long)count, (int)classes);
        return PAG_ERROR;
    }
    pag_tensor first = host->dataset_images(ctx, data, 0, 1);
    if (!first) return PAG_ERROR;
    int64_t d = host->numel(ctx, first);
    size_t n = (size_t)(classes + 1) * (size_t)d;
    free(g->mean);
    free(g->var);
    g->d = d;
    g->classes = classes;
    g->mean = calloc(n, sizeof(float));
    g->var = calloc(n, sizeof(float));
    double *sum = calloc(n, sizeof(double)), *sq = calloc(n, sizeof(double)), *seen = calloc((size_t)classes + 1, sizeof(double));
    float *batch = malloc((size_t)(256 * d) * sizeof(float));
    int32_t *labels = malloc(256 * sizeof(int32_t));
    pag_status status = PAG_ERROR;
    if (!g->mean || !g->var || !sum || !sq || !seen || !batch || !labels) { host->set_error(ctx, "out of memory"); goto done; }
    if (cache[0] && load_cache(g, cache)) {
        host->log_message(ctx, "statistics read from the cache");
        status = PAG_OK;
        goto done;
    }
    for (int64_t start = 0; start < count; start += 256) {
        int64_t m = count - start < 256 ? count - start : 256;
        pag_tensor x = host->dataset_images(ctx, data, start, m);
        if (host->copy_out(ctx, x, batch, m * d) || host->dataset_labels(ctx, data, start, m, labels)) goto done;
        host->release(ctx, x); /* many batches: free each one early */
        for (int64_t i = 0; i < m; i++) {
            int32_t c = labels[i] >= 0 && labels[i] < classes ? labels[i] : classes;
            int32_t targets[2] = {c, classes};
            for (int t = 0; t < (c == classes ? 1 : 2); t++) {
                seen[targets[t]] += 1;
                for (int64_t j = 0; j < d; j++) {
                    double v = batch[i * d + j];
                    sum[targets[t] * d + j] += v;
                    sq[targets[t] * d + j] += v * v;
                }
            }
        }
    }
    for (int32_t c = 0; c <= classes; c++) {
        for (int64_t j = 0; j < d; j++) {
            /* A class without samples takes the unconditional statistics. */
            int32_t s = seen[c] > 0 ? c : classes;
            double mean = sum[s * d + j] / seen[s];
            double var = sq[s * d + j] / seen[s] - mean * mean;
            g->mean[c * d + j] = (float)mean;
            g->var[c * d + j] = (float)(var > 1e-6 ? var : 1e-6);
        }
    }
    if (cache[0]) save_cache(g, cache);
    status = PAG_OK;
done:
    free(sum); free(sq); free(seen); free(batch); free(labels);
    return status;
}

static pag_status score(pag_ctx *ctx, void *self, pag_tensor x, double sigma, const int32_t *labels, pag_tensor *out) {
    gaussian *g = self;
    if (!g->mean) { host->set_error(ctx, "score called before fit"); return PAG_ERROR; }
    int64_t n = host->dim(ctx, x, 0), d = host->numel(ctx, x) / (n > 0 ? n : 1);
    if (d != g->d) {
        pag_set_errorf(host, ctx, "x has %lld elements per sample, fit saw %lld", (long long)d, (long long)g->d);
        return PAG_ERROR;
    }
    /* mean and var + sigma^2 for each sample, by its label (or unconditional), as [N, D]. */
    float *mean = malloc((size_t)(n * d) * sizeof(float)), *var = malloc((size_t)(n * d) * sizeof(float));
    if (!mean || !var) { free(mean); free(var); host->set_error(ctx, "out of memory"); return PAG_ERROR; }
    for (int64_t i = 0; i < n; i++) {
        int32_t c = labels && labels[i] >= 0 && labels[i] < g->classes ? labels[i] : g->classes;
        for (int64_t j = 0; j < d; j++) {
            mean[i * d + j] = g->mean[c * d + j];
            var[i * d + j] = g->var[c * d + j] + (float)(sigma * sigma);
        }
    }
    int64_t shape[2] = {n, d};
    pag_tensor m = host->from_data(ctx, mean, shape, 2), v = host->from_data(ctx, var, shape, 2);
    free(mean);
    free(var);
    pag_tensor s = host->neg(ctx, host->div(ctx, host->sub(ctx, host->flatten(ctx, x), m), v));
    int32_t ndim = host->ndim(ctx, x);
    int64_t xshape[8];
    if (ndim < 1 || ndim > 8) { host->set_error(ctx, "x has an unexpected rank"); return PAG_ERROR; }
    for (int32_t a = 0; a < ndim; a++) xshape[a] = host->dim(ctx, x, a);
    *out = host->reshape(ctx, s, xshape, ndim);
    return *out ? PAG_OK : PAG_ERROR;
}

static const pag_hyperparameter hyperparameters[] = {
    {"cache", PAG_HP_STRING, "", 0, 0, NULL, "file that keeps the fitted statistics across runs; empty: fit every time"},
};

static const pag_score_vtable vtable = {sizeof(pag_score_vtable), create, fit, score, NULL, destroy};

static const pag_plugin_descriptor descriptor = {
    sizeof(pag_plugin_descriptor), PAG_ABI_VERSION,
    "class_gaussian_score", PAG_KIND_SCORE, "1.0.0",
    "score of a per-class diagonal Gaussian (C example)",
    hyperparameters, sizeof hyperparameters / sizeof hyperparameters[0], NULL, 0,
    {.score = &vtable},
};

PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *reg) {
    host = h;
    return host->register_plugin(reg, &descriptor);
}
