/*
 * pca_manifold — a manifold estimator as a pag plugin in plain C: the data manifold taken as
 * the span of the top `dim` principal directions of (up to `samples` of) the training set, the
 * same tangent space at every point. It provides both tangent_basis and project; the host uses
 * project for measurements, and `pag plugins check` verifies that the two agree.
 *
 * Lifecycle (docs/ABI.md, "Estimators"): create, then fit once with the data set the instance
 * is for, then tangent_basis / project any number of times, then destroy. The principal
 * directions are computed in fit by power iteration and kept in plugin memory (self); in each
 * call they become a tensor with from_data (a tensor made in fit would die when fit returns,
 * unless kept with host->keep).
 *
 * Build: cc -std=c99 -Wall -Wextra -Werror -shared -fPIC -Iinclude \
 *           Plugins/Examples/pca_manifold.c -o pca_manifold.so -lm
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pag/plugin.h>

static const pag_host *host;

typedef struct {
    int64_t d, k;
    float *basis; /* [k, d], orthonormal rows; NULL before fit */
} pca;

static pag_status create(pag_ctx *ctx, void **self) {
    (void)ctx;
    *self = calloc(1, sizeof(pca));
    return *self ? PAG_OK : PAG_ERROR;
}

static void destroy(void *self) {
    pca *p = self;
    free(p->basis);
    free(p);
}

static double dot(const double *a, const double *b, int64_t d) {
    double s = 0;
    for (int64_t j = 0; j < d; j++) s += a[j] * b[j];
    return s;
}

/* Removes from v its components along the first `rows` rows of b, then normalizes; 0 if v vanished. */
static int orthonormalize(double *v, const double *b, int64_t rows, int64_t d) {
    for (int64_t r = 0; r < rows; r++) {
        double c = dot(v, b + r * d, d);
        for (int64_t j = 0; j < d; j++) v[j] -= c * b[r * d + j];
    }
    double n = sqrt(dot(v, v, d));
    if (n < 1e-12) return 0;
    for (int64_t j = 0; j < d; j++) v[j] /= n;
    return 1;
}

static pag_status fit(pag_ctx *ctx, void *self, pag_dataset *data) {
    pca *p = self;
    int64_t dim, samples;
    if (host->get_int(ctx, "dim", &dim) || host->get_int(ctx, "samples", &samples)) return PAG_ERROR;
    int64_t count = host->dataset_count(ctx, data);
    if (count < 2) { host->set_error(ctx, "fit needs at least 2 samples"); return PAG_ERROR; }
    int64_t n = count < samples ? count : samples;
    pag_tensor images = host->dataset_images(ctx, data, 0, n);
    if (!images) return PAG_ERROR;
    int64_t d = host->numel(ctx, images) / n;
    if (dim > d) dim = d;
    float *xf = malloc((size_t)(n * d) * sizeof(float));
    double *x = malloc((size_t)(n * d) * sizeof(double)), *b = calloc((size_t)(dim * d), sizeof(double));
    double *v = malloc((size_t)d * sizeof(double)), *w = malloc((size_t)d * sizeof(double)), *xv = malloc((size_t)n * sizeof(double));
    pag_status status = PAG_ERROR;
    if (!xf || !x || !b || !v || !w || !xv) { host->set_error(ctx, "out of memory"); goto done; }
    if (host->copy_out(ctx, images, xf, n * d)) goto done;
    /* Center. */
    for (int64_t j = 0; j < d; j++) {
        double mean = 0;
        for (int64_t i = 0; i < n; i++) mean += xf[i * d + j];
        mean /= (double)n;
        for (int64_t i = 0; i < n; i++) x[i * d + j] = xf[i * d + j] - mean;
    }
    /* Power iteration on X^T X, one direction at a time, orthogonal to the ones found. */
    for (int64_t r = 0; r < dim; r++) {
        for (int64_t j = 0; j < d; j++) v[j] = 1.0 + 0.37 * (double)((j * 7 + r * 13) % 11);
        if (!orthonormalize(v, b, r, d)) { host->set_error(ctx, "power iteration: bad start"); goto done; }
        for (int it = 0; it < 200; it++) {
            for (int64_t i = 0; i < n; i++) xv[i] = dot(x + i * d, v, d);
            for (int64_t j = 0; j < d; j++) w[j] = 0;
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < d; j++) w[j] += xv[i] * x[i * d + j];
            if (!orthonormalize(w, b, r, d)) break; /* no variance left: keep v */
            memcpy(v, w, (size_t)d * sizeof(double));
        }
        memcpy(b + r * d, v, (size_t)d * sizeof(double));
    }
    free(p->basis);
    p->basis = malloc((size_t)(dim * d) * sizeof(float));
    if (!p->basis) { host->set_error(ctx, "out of memory"); goto done; }
    for (int64_t j = 0; j < dim * d; j++) p->basis[j] = (float)b[j];
    p->d = d;
    p->k = dim;
    char line[96];
    snprintf(line, sizeof line, "fitted %lld directions on %lld samples of %lld elements", (long long)dim, (long long)n, (long long)d);
    host->log_message(ctx, line);
    status = PAG_OK;
done:
    free(xf); free(x); free(b); free(v); free(w); free(xv);
    return status;
}

/* The fitted basis [k, d] as a tensor of this call; NULL (with an error) before fit or for x of another size. */
static pag_tensor basis_for(pag_ctx *ctx, pca *p, pag_tensor x, int64_t *n) {
    if (!p->basis) { host->set_error(ctx, "called before fit"); return NULL; }
    *n = host->dim(ctx, x, 0);
    if (*n < 1 || host->numel(ctx, x) != *n * p->d) {
        pag_set_errorf(host, ctx, "x has %lld elements per sample, fit saw %lld",
                       (long long)(host->numel(ctx, x) / (*n > 0 ? *n : 1)), (long long)p->d);
        return NULL;
    }
    int64_t shape[2] = {p->k, p->d};
    return host->from_data(ctx, p->basis, shape, 2);
}

static pag_status tangent_basis(pag_ctx *ctx, void *self, pag_tensor x, pag_tensor *out) {
    pca *p = self;
    int64_t n;
    pag_tensor b = basis_for(ctx, p, x, &n);
    if (!b) return PAG_ERROR;
    int64_t one[3] = {1, p->k, p->d}, shape[3] = {n, p->k, p->d};
    *out = host->broadcast_to(ctx, host->reshape(ctx, b, one, 3), shape, 3);
    return *out ? PAG_OK : PAG_ERROR;
}

static pag_status project(pag_ctx *ctx, void *self, pag_tensor x, pag_tensor v, int32_t which, pag_tensor *out) {
    pca *p = self;
    int64_t n;
    pag_tensor b = basis_for(ctx, p, x, &n);
    if (!b) return PAG_ERROR;
    /* tangent = (v B^T) B, per sample; normal = v - tangent. */
    pag_tensor flat = host->flatten(ctx, v);
    pag_tensor tangent = host->matmul(ctx, host->matmul(ctx, flat, b, 0, 1), b, 0, 0);
    pag_tensor part = which == PAG_PROJECT_NORMAL ? host->sub(ctx, flat, tangent) : tangent;
    int32_t ndim = host->ndim(ctx, v);
    int64_t shape[8];
    if (ndim < 1 || ndim > 8) { host->set_error(ctx, "v has an unexpected rank"); return PAG_ERROR; }
    for (int32_t a = 0; a < ndim; a++) shape[a] = host->dim(ctx, v, a);
    *out = host->reshape(ctx, part, shape, ndim);
    return *out ? PAG_OK : PAG_ERROR;
}

static const pag_hyperparameter hyperparameters[] = {
    {"dim", PAG_HP_INT, "2", 1, 4096, NULL, "number of principal directions (the manifold's dimension)"},
    {"samples", PAG_HP_INT, "2000", 2, 1000000, NULL, "samples of the training set the directions are computed from"},
};

static const pag_manifold_vtable vtable = {sizeof(pag_manifold_vtable), create, fit, tangent_basis, project, NULL, destroy};

static const pag_plugin_descriptor descriptor = {
    sizeof(pag_plugin_descriptor), PAG_ABI_VERSION,
    "pca_manifold", PAG_KIND_MANIFOLD, "1.0.0",
    "global PCA subspace as the tangent space (C example)",
    hyperparameters, sizeof hyperparameters / sizeof hyperparameters[0], NULL, 0,
    {.manifold = &vtable},
};

PAG_EXPORT pag_status pag_plugin_init(const pag_host *h, pag_registry *reg) {
    host = h;
    return host->register_plugin(reg, &descriptor);
}
