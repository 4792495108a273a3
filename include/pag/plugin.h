/*
 * pag/plugin.h — the C ABI between pag and its plugins.
 *
 * This header is the whole contract: a plugin includes it and nothing else of pag. It is C99 and
 * depends only on the C standard library. docs/ABI.md explains the rules in prose; this file is
 * the reference.
 *
 * Shape of the contract (modelled on CLAP, SQLite's extension table and JNI local references):
 *
 *   - A plugin library exports one function, pag_plugin_init(). pag calls it once after loading
 *     the library and hands it the host table (pag_host) and a registry. The library registers
 *     one or more plugin descriptors (pag_plugin_descriptor) and returns PAG_OK.
 *   - A descriptor names the plugin, its kind (model, objective, manifold, score), its
 *     hyperparameters and optional extra functions, and points to the vtable of its kind.
 *   - The host owns every tensor. A plugin holds opaque handles (pag_tensor) and computes with
 *     the functions of pag_host, which records each operation for automatic differentiation.
 *   - Every host call takes the call context (pag_ctx) of the plugin call it is made from.
 *     Handles created during a call are released when that call returns, unless the plugin
 *     returns them through an out-parameter or keeps them with pag_host.keep (then they live
 *     until pag_host.release or the end of the plugin instance).
 *   - Errors: functions returning pag_tensor return NULL on failure, functions returning
 *     pag_status return PAG_ERROR; either way the message is stored in the context. Errors are
 *     sticky: once a context holds an error, host functions given a NULL handle return NULL,
 *     and no failing host function replaces the first message, so a chain of operations can be
 *     checked once at its end.
 *
 * Versioning: PAG_ABI_VERSION_MAJOR changes only for incompatible changes; pag loads plugins
 * built for the same major version and a minor version no newer than its own. Structs that may
 * grow start with `struct_size` (and the top-level ones with `abi_version`); new fields are only
 * ever added at the end, so the host can tell from struct_size which fields a plugin filled in
 * and a plugin can tell from pag_host.struct_size which functions the host provides (see
 * PAG_HOST_HAS). Structs without struct_size (pag_hyperparameter, pag_function) are frozen for a
 * major version.
 */
#ifndef PAG_PLUGIN_H
#define PAG_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <math.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Versions, status codes, constants                                                           */
/* ------------------------------------------------------------------------------------------ */

/** Major version of the ABI: bumped only for incompatible changes. */
#define PAG_ABI_VERSION_MAJOR 1
/** Minor version of the ABI: bumped when fields or functions are added at the end of structs. */
#define PAG_ABI_VERSION_MINOR 5
/** Packs a major and minor version into one uint32_t (major in the high 16 bits). */
#define PAG_MAKE_VERSION(major, minor) ((uint32_t)(((uint32_t)(major) << 16) | (uint32_t)(minor)))
/** The ABI version this header describes; store it in pag_plugin_descriptor.abi_version. */
#define PAG_ABI_VERSION PAG_MAKE_VERSION(PAG_ABI_VERSION_MAJOR, PAG_ABI_VERSION_MINOR)
/** Major part of a packed version. */
#define PAG_VERSION_MAJOR(v) ((uint32_t)(v) >> 16)
/** Minor part of a packed version. */
#define PAG_VERSION_MINOR(v) ((uint32_t)(v) & 0xFFFFu)

/** Marks the entry point as exported from the shared library. */
#if defined(_WIN32)
#define PAG_EXPORT __declspec(dllexport)
#elif defined(__GNUC__)
#define PAG_EXPORT __attribute__((visibility("default")))
#else
#define PAG_EXPORT
#endif

/** Result of a call: PAG_OK or PAG_ERROR (the message is in the context or registry). */
typedef int32_t pag_status;
/** Success. */
#define PAG_OK 0
/** Failure; the message was set with pag_host.set_error (or pag_host.registry_error). */
#define PAG_ERROR 1

/** Plugin kinds (pag_plugin_descriptor.kind). */
typedef enum pag_kind {
    PAG_KIND_MODEL = 1,     /**< a classifier: parameters and a forward pass (pag_model_vtable) */
    PAG_KIND_OBJECTIVE = 2, /**< a training loss for a model (pag_objective_vtable) */
    PAG_KIND_MANIFOLD = 3,  /**< a data-manifold estimator (pag_manifold_vtable) */
    PAG_KIND_SCORE = 4      /**< a score estimator, grad log p(x) (pag_score_vtable) */
} pag_kind;

/** Hyperparameter types (pag_hyperparameter.type). */
typedef enum pag_hp_type {
    PAG_HP_INT = 1,    /**< integer (int64); min/max apply */
    PAG_HP_FLOAT = 2,  /**< real number (double); min/max apply */
    PAG_HP_BOOL = 3,   /**< true/false (also accepted: 1/0, yes/no, on/off) */
    PAG_HP_STRING = 4, /**< free text */
    PAG_HP_CHOICE = 5, /**< one of the '|'-separated words in pag_hyperparameter.choices */
    /** A file path, read like a string (get_string). pag checks that a non-empty value names a
     *  readable regular file, and a result made with it is identified by the file's contents
     *  too, not only by its path (reuse, experiments, run records). Added in ABI 1.5. */
    PAG_HP_FILE = 6
} pag_hp_type;

/** How a loss combines per-sample values (cross_entropy, mse). */
typedef enum pag_reduction {
    PAG_REDUCTION_MEAN = 0, /**< mean over the batch: a scalar */
    PAG_REDUCTION_SUM = 1,  /**< sum over the batch: a scalar */
    PAG_REDUCTION_NONE = 2  /**< one value per sample: shape [N] (mse: the input's shape) */
} pag_reduction;

/** Which part of a vector pag_manifold_vtable.project keeps. */
typedef enum pag_projection {
    PAG_PROJECT_TANGENT = 0, /**< the component in the tangent space of the manifold at x */
    PAG_PROJECT_NORMAL = 1   /**< the component orthogonal to it (v minus the tangent part) */
} pag_projection;

/** No bound, for pag_hyperparameter.min and .max. */
#define PAG_NO_LIMIT HUGE_VAL

/* ------------------------------------------------------------------------------------------ */
/* Opaque types                                                                                */
/* ------------------------------------------------------------------------------------------ */

/** A tensor handle (float32, contiguous, row-major; NCHW for images). NULL means "none" or
 *  "failed". Handles are only meaningful to the host; never dereference one. */
typedef struct pag_tensor_s *pag_tensor;
/** The context of one plugin call: its handles, its random generator, its error. Passed to
 *  every vtable function and to every host function called from it. Valid only during that
 *  call and only on the thread that made it. */
typedef struct pag_ctx_s pag_ctx;
/** A model as seen by an objective: call it with pag_host.forward. Valid during the call. */
typedef struct pag_model_s pag_model;
/** A data set handed to an estimator's fit: read it with pag_host.dataset_*. Valid during the
 *  call. */
typedef struct pag_dataset_s pag_dataset;
/** Collects the descriptors of a library during pag_plugin_init. */
typedef struct pag_registry_s pag_registry;

typedef struct pag_host pag_host;

/* ------------------------------------------------------------------------------------------ */
/* Descriptor                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/**
 * One declared hyperparameter. Users set it with `--set name=value`; the host checks the value
 * against the type, range and choices before any plugin code runs, and the plugin reads the
 * result with pag_host.get_int / get_float / get_bool / get_string.
 * Frozen for ABI major version 1 (arrays of it have no per-element struct_size).
 */
typedef struct pag_hyperparameter {
    /** Name: a lowercase letter, then lowercase letters, digits or '_'. Unique in the plugin. */
    const char *name;
    /** One of pag_hp_type. */
    int32_t type;
    /** Default value as text, parsed like a `--set` value (e.g. "0.1", "32", "true", "relu").
     *  Must be valid for the type and inside [min, max]. */
    const char *default_value;
    /** Inclusive bounds for PAG_HP_INT and PAG_HP_FLOAT; -PAG_NO_LIMIT / PAG_NO_LIMIT for none.
     *  Ignored for other types. min <= max. */
    double min, max;
    /** PAG_HP_CHOICE only: the allowed words separated by '|', e.g. "relu|softplus". NULL
     *  otherwise. */
    const char *choices;
    /** One line of help shown by `pag plugins info`. */
    const char *help;
} pag_hyperparameter;

/** A function pointer of any type: the real type is given by pag_function.signature. */
typedef void (*pag_any_function)(void);

/**
 * An extra function a plugin exports for `pag plugins call NAME FUNC ARGS...`. The host parses
 * the signature, checks the user's arguments against it and calls the function through libffi.
 * It receives no context and must not call the host table.
 *
 * Signature grammar: `RET (ARG, ARG, ...)` or `RET ()`, where each type is one of
 *   i32 (int32_t)  i64 (int64_t)  f32 (float)  f64 (double)  bool (_Bool)  str (const char *)
 * and RET may also be `void`. Example: "f64 (f64, i32)". A returned str must stay valid after
 * the call (static storage); the host copies it at once.
 * Frozen for ABI major version 1.
 */
typedef struct pag_function {
    /** Name: a C identifier, unique in the plugin. */
    const char *name;
    /** The function, cast to pag_any_function. */
    pag_any_function fn;
    /** Its C signature in the grammar above. */
    const char *signature;
    /** One line of help shown by `pag plugins info`. */
    const char *help;
} pag_function;

/* Vtables, one per kind. Each starts with struct_size = sizeof(the struct) so it can grow.
 * `self` is the plugin's own instance pointer, made by create (NULL when create is NULL). */

/** A model: parameters, buffers and a forward pass producing logits. */
typedef struct pag_model_vtable {
    uint32_t struct_size;
    /** Required. Builds an instance: reads hyperparameters (pag_host.get_*) and the data it is
     *  made for (pag_host.data_info, ABI 1.2), declares every parameter and buffer
     *  (pag_host.declare_parameter / declare_buffer) and the input and output shapes
     *  (pag_host.declare_io, required), and stores its own state in *self. */
    pag_status (*create)(pag_ctx *ctx, void **self);
    /** Required. Logits [N, outputs] for a batch x [N, ...input shape]. `train` is 1 in
     *  training (dropout active, batch norm on batch statistics) and 0 in evaluation. The
     *  result goes to *out. */
    pag_status (*forward)(pag_ctx *ctx, void *self, pag_tensor x, int32_t train, pag_tensor *out);
    /** Optional. Frees what create allocated. Parameters are released by the host. */
    void (*destroy)(void *self);
} pag_model_vtable;

/** A training objective: the loss of a model on a labelled batch. */
typedef struct pag_objective_vtable {
    uint32_t struct_size;
    /** Optional. Builds an instance (read hyperparameters, keep constants). */
    pag_status (*create)(pag_ctx *ctx, void **self);
    /** Required. A scalar loss (shape []) for inputs x [N, ...] with integer labels[N], written
     *  to *loss. Call the model with pag_host.forward; report extra numbers with
     *  pag_host.report_metric. The host differentiates the loss wrt the model's parameters. */
    pag_status (*loss)(pag_ctx *ctx, void *self, pag_model *model, pag_tensor x,
                       const int32_t *labels, pag_tensor *loss);
    /** Optional. */
    void (*destroy)(void *self);
} pag_objective_vtable;

/** A data-manifold estimator. Provide tangent_basis, project, or both. */
typedef struct pag_manifold_vtable {
    uint32_t struct_size;
    /** Optional. Builds an instance; an estimator that learns declares parameters here. */
    pag_status (*create)(pag_ctx *ctx, void **self);
    /** Optional. Fits the estimator to a data set (e.g. local PCA, or nothing for an oracle). */
    pag_status (*fit)(pag_ctx *ctx, void *self, pag_dataset *data);
    /** Optional. An orthonormal basis of the tangent space at each sample of x [N, ...]:
     *  *basis has shape [N, k, D] with D the number of elements of one sample. */
    pag_status (*tangent_basis)(pag_ctx *ctx, void *self, pag_tensor x, pag_tensor *basis);
    /** Optional. The tangent or normal component (pag_projection) of v at x; same shape as v. */
    pag_status (*project)(pag_ctx *ctx, void *self, pag_tensor x, pag_tensor v, int32_t which,
                          pag_tensor *out);
    /** Optional. For estimators with parameters: a scalar training loss on a batch; the host's
     *  trainer minimizes it. labels may be NULL. */
    pag_status (*train_loss)(pag_ctx *ctx, void *self, pag_tensor x, const int32_t *labels,
                             pag_tensor *loss);
    /** Optional. */
    void (*destroy)(void *self);
} pag_manifold_vtable;

/** A score estimator: an estimate of grad_x log p_sigma(x), the score of the data smoothed with
 *  Gaussian noise of standard deviation sigma. */
typedef struct pag_score_vtable {
    uint32_t struct_size;
    /** Optional. Builds an instance; an estimator that learns declares parameters here. */
    pag_status (*create)(pag_ctx *ctx, void **self);
    /** Optional. Fits the estimator to a data set. */
    pag_status (*fit)(pag_ctx *ctx, void *self, pag_dataset *data);
    /** Required. The score at x [N, ...] for noise level sigma, same shape as x, into *out.
     *  labels (N entries) is NULL for the unconditional score. */
    pag_status (*score)(pag_ctx *ctx, void *self, pag_tensor x, double sigma,
                        const int32_t *labels, pag_tensor *out);
    /** Optional. For estimators with parameters: a scalar training loss on a batch. */
    pag_status (*train_loss)(pag_ctx *ctx, void *self, pag_tensor x, const int32_t *labels,
                             pag_tensor *loss);
    /** Optional. */
    void (*destroy)(void *self);
} pag_score_vtable;

/**
 * A plugin. Registered from pag_plugin_init with pag_host.register_plugin. The descriptor, its
 * strings, arrays and vtable must stay valid while the library is loaded (use static storage).
 */
typedef struct pag_plugin_descriptor {
    /** sizeof(pag_plugin_descriptor) as compiled by the plugin. */
    uint32_t struct_size;
    /** PAG_ABI_VERSION as compiled by the plugin. */
    uint32_t abi_version;
    /** Unique name across all loaded plugins: lowercase letters, digits, '_', '-' and '.',
     *  starting with a letter or digit (e.g. "label_smoothing_ce"). */
    const char *name;
    /** One of pag_kind. */
    int32_t kind;
    /** The plugin's own version, e.g. "1.0.0". */
    const char *version;
    /** One line saying what it does. */
    const char *summary;
    /** Declared hyperparameters (NULL when count is 0). */
    const pag_hyperparameter *hyperparameters;
    int32_t hyperparameter_count;
    /** Extra functions for `pag plugins call` (NULL when count is 0). */
    const pag_function *functions;
    int32_t function_count;
    /** The vtable of `kind`; set the member that matches it. */
    union {
        const pag_model_vtable *model;
        const pag_objective_vtable *objective;
        const pag_manifold_vtable *manifold;
        const pag_score_vtable *score;
    } vtable;
} pag_plugin_descriptor;

/* ------------------------------------------------------------------------------------------ */
/* The data contract (ABI 1.2)                                                                 */
/* ------------------------------------------------------------------------------------------ */

/**
 * The data an instance is created for, as pag_host.data_info returns it: the shape of one
 * sample and the number of classes of the data set the host will train, fit or call the
 * instance on. This is how a plugin learns the data's shape: the host never fills in
 * hyperparameters for a plugin built for ABI 1.2 or later (hyperparameters are the user's
 * choices only). Owned by the host and valid as long as the instance; read-only.
 * It may grow at its end: read a field only when struct_size covers it.
 */
typedef struct pag_data_info {
    /** sizeof(pag_data_info) of the host. */
    uint32_t struct_size;
    /** The data set's name, e.g. "fashion-mnist-distractor" (for messages; never NULL). */
    const char *name;
    /** Number of dimensions of one sample (3 for images: C, H, W). */
    int32_t sample_ndim;
    /** The shape of one sample, sample_ndim entries, e.g. {1, 56, 28}. */
    const int64_t *sample_shape;
    /** Number of classes; labels are 0..classes-1. */
    int32_t classes;
} pag_data_info;

/* ------------------------------------------------------------------------------------------ */
/* The host table                                                                              */
/* ------------------------------------------------------------------------------------------ */

/**
 * Functions the host provides, handed to pag_plugin_init and valid until the library is
 * unloaded (keep the pointer in a static variable). Unless said otherwise, a function:
 *   - takes the context of the plugin call it is made from;
 *   - returns a new handle local to that call, or NULL with the error set in ctx;
 *   - returns NULL at once when given a NULL handle while ctx already holds an error, and
 *     never replaces a pending error with its own (so chains can be checked once at the end);
 *   - checks shapes and arguments itself and reports a mismatch as an error naming the
 *     operation and the shapes; it never aborts the process;
 *   - does not modify its inputs.
 * Shapes are passed as (const int64_t *shape, int32_t ndim). Binary elementwise operations
 * broadcast like NumPy. Axes may be negative (counted from the end).
 * Functions added in later minor versions are appended; test with PAG_HOST_HAS.
 */
struct pag_host {
    /** sizeof(pag_host) of the host. */
    uint32_t struct_size;
    /** PAG_ABI_VERSION of the host. */
    uint32_t abi_version;
    /** The pag release, e.g. "0.1.0". */
    const char *host_version;

    /* -- Registration: only inside pag_plugin_init ---------------------------------------- */

    /** Registers a descriptor (see pag_plugin_descriptor for the lifetime rule). The host
     *  reads and validates it at once; an invalid descriptor is skipped and reported by the
     *  host (naming the library and the problem) and this returns PAG_ERROR, which the plugin
     *  may ignore: its other descriptors still load. Also PAG_ERROR when reg is not the
     *  registry of a running pag_plugin_init. */
    pag_status (*register_plugin)(pag_registry *reg, const pag_plugin_descriptor *desc);
    /** Sets the message reported when pag_plugin_init returns PAG_ERROR. */
    void (*registry_error)(pag_registry *reg, const char *message);

    /* -- Errors and logging --------------------------------------------------------------- */

    /** Sets the error of this call (copied). The plugin then returns PAG_ERROR; pag stops the
     *  run with "plugin 'NAME': MESSAGE". A call that returns with an error set fails even if
     *  it returned PAG_OK. Replaces an earlier message. See also pag_set_errorf below. */
    void (*set_error)(pag_ctx *ctx, const char *message);
    /** The current error message of ctx, or NULL when there is none. Valid until the next host
     *  call with ctx. */
    const char *(*get_error)(pag_ctx *ctx);
    /** Clears the error of ctx (to recover from a failed operation). */
    void (*clear_error)(pag_ctx *ctx);
    /** Writes one line to pag's log (stderr), prefixed with the plugin's name. */
    void (*log_message)(pag_ctx *ctx, const char *message);

    /* -- Hyperparameters of the instance being called ------------------------------------- */

    /** The value of integer hyperparameter `name`. PAG_ERROR if it is not declared as int. */
    pag_status (*get_int)(pag_ctx *ctx, const char *name, int64_t *out);
    /** The value of a float (or int) hyperparameter. */
    pag_status (*get_float)(pag_ctx *ctx, const char *name, double *out);
    /** The value of a bool hyperparameter, 0 or 1. */
    pag_status (*get_bool)(pag_ctx *ctx, const char *name, int32_t *out);
    /** The value of a string or choice hyperparameter; the text lives as long as the instance. */
    pag_status (*get_string)(pag_ctx *ctx, const char *name, const char **out);

    /* -- Handle lifetimes (JNI-style) ------------------------------------------------------ */

    /** A handle to the same tensor that outlives the call: valid in every later call on the
     *  same plugin instance until released or the instance is destroyed. */
    pag_tensor (*keep)(pag_ctx *ctx, pag_tensor t);
    /** Releases a local or kept handle early. Releasing NULL does nothing. Using a released
     *  handle is an error (reported, not a crash). */
    void (*release)(pag_ctx *ctx, pag_tensor t);

    /* -- Creation ------------------------------------------------------------------------- */

    /** A tensor with a copy of `data` (row-major, as many floats as the shape has elements). */
    pag_tensor (*from_data)(pag_ctx *ctx, const float *data, const int64_t *shape, int32_t ndim);
    /** A tensor filled with `value`. */
    pag_tensor (*full)(pag_ctx *ctx, const int64_t *shape, int32_t ndim, float value);
    /** A scalar (shape []). */
    pag_tensor (*scalar)(pag_ctx *ctx, float value);
    /** Normal draws with the given mean and standard deviation, from the call's generator. */
    pag_tensor (*randn)(pag_ctx *ctx, const int64_t *shape, int32_t ndim, float mean, float std);
    /** Uniform draws in [low, high), from the call's generator. */
    pag_tensor (*rand)(pag_ctx *ctx, const int64_t *shape, int32_t ndim, float low, float high);
    /** One-hot rows [n, classes] for integer labels in [0, classes). */
    pag_tensor (*one_hot)(pag_ctx *ctx, const int32_t *labels, int64_t n, int32_t classes);

    /* -- Inspection and read-out ----------------------------------------------------------- */

    /** Number of dimensions, or -1 on error. */
    int32_t (*ndim)(pag_ctx *ctx, pag_tensor t);
    /** Size of dimension `axis` (negative counts from the end), or -1 on error. */
    int64_t (*dim)(pag_ctx *ctx, pag_tensor t, int32_t axis);
    /** Number of elements, or -1 on error. */
    int64_t (*numel)(pag_ctx *ctx, pag_tensor t);
    /** Copies the elements into dst (capacity floats, at least numel). */
    pag_status (*copy_out)(pag_ctx *ctx, pag_tensor t, float *dst, int64_t capacity);
    /** Overwrites the elements of t in place with count (= numel) floats from src, without
     *  recording anything for differentiation. t must be a parameter or buffer of the instance
     *  being called (custom initialization, buffer updates); build other tensors with
     *  from_data. */
    pag_status (*copy_in)(pag_ctx *ctx, pag_tensor t, const float *src, int64_t count);
    /** The value of a one-element tensor. */
    pag_status (*item)(pag_ctx *ctx, pag_tensor t, float *out);

    /* -- Random numbers from the call's seeded generator ----------------------------------- */

    /** 64 random bits. Each call's generator is seeded by the host from the run's seed, so
     *  runs are reproducible. */
    uint64_t (*random_u64)(pag_ctx *ctx);
    /** Uniform in [0, 1). */
    double (*random_uniform)(pag_ctx *ctx);

    /* -- Elementwise (differentiable) ----------------------------------------------------- */

    pag_tensor (*add)(pag_ctx *ctx, pag_tensor a, pag_tensor b);  /**< a + b */
    pag_tensor (*sub)(pag_ctx *ctx, pag_tensor a, pag_tensor b);  /**< a - b */
    pag_tensor (*mul)(pag_ctx *ctx, pag_tensor a, pag_tensor b);  /**< a * b */
    pag_tensor (*div)(pag_ctx *ctx, pag_tensor a, pag_tensor b);  /**< a / b */
    pag_tensor (*add_scalar)(pag_ctx *ctx, pag_tensor x, float s); /**< x + s */
    pag_tensor (*mul_scalar)(pag_ctx *ctx, pag_tensor x, float s); /**< x * s */
    pag_tensor (*neg)(pag_ctx *ctx, pag_tensor x);                 /**< -x */
    pag_tensor (*exp)(pag_ctx *ctx, pag_tensor x);                 /**< e^x */
    pag_tensor (*log)(pag_ctx *ctx, pag_tensor x);                 /**< natural logarithm */
    pag_tensor (*sqrt)(pag_ctx *ctx, pag_tensor x);                /**< square root */
    pag_tensor (*square)(pag_ctx *ctx, pag_tensor x);              /**< x^2 */
    pag_tensor (*pow)(pag_ctx *ctx, pag_tensor x, float p);        /**< x^p, constant p */
    pag_tensor (*abs)(pag_ctx *ctx, pag_tensor x);                 /**< |x| (gradient 0 at 0) */
    /** Clamps into [low, high] (use -HUGE_VALF / HUGE_VALF for no bound). */
    pag_tensor (*clamp)(pag_ctx *ctx, pag_tensor x, float low, float high);
    pag_tensor (*relu)(pag_ctx *ctx, pag_tensor x);                /**< max(x, 0) */
    /** log(1 + e^(beta x)) / beta, x where beta x > threshold (PyTorch's softplus). */
    pag_tensor (*softplus)(pag_ctx *ctx, pag_tensor x, float beta, float threshold);
    pag_tensor (*tanh)(pag_ctx *ctx, pag_tensor x);                /**< hyperbolic tangent */
    pag_tensor (*sigmoid)(pag_ctx *ctx, pag_tensor x);             /**< logistic sigmoid */

    /* -- Linear algebra and layers (differentiable) --------------------------------------- */

    /** op(a) . op(b) for 2-D tensors (or 3-D with equal batch), op = transpose when set. */
    pag_tensor (*matmul)(pag_ctx *ctx, pag_tensor a, pag_tensor b, int32_t transpose_a,
                         int32_t transpose_b);
    /** x [..., in] . weight[out, in]^T + bias[out] (bias may be NULL): PyTorch's layout. */
    pag_tensor (*linear)(pag_ctx *ctx, pag_tensor x, pag_tensor weight, pag_tensor bias);
    /** 2-D convolution (cross-correlation): x [N,C,H,W], weight [O,C,KH,KW], bias [O] or NULL. */
    pag_tensor (*conv2d)(pag_ctx *ctx, pag_tensor x, pag_tensor weight, pag_tensor bias,
                         int32_t stride_h, int32_t stride_w, int32_t pad_h, int32_t pad_w);
    /** Max pooling over kernel x kernel windows of NCHW input; stride 0 means the kernel size;
     *  padding at most half the kernel. */
    pag_tensor (*max_pool2d)(pag_ctx *ctx, pag_tensor x, int32_t kernel, int32_t stride,
                             int32_t padding);
    /** Average pooling (zero padding counts in the average); arguments as max_pool2d. */
    pag_tensor (*avg_pool2d)(pag_ctx *ctx, pag_tensor x, int32_t kernel, int32_t stride,
                             int32_t padding);
    /** Mean over H and W: [N,C,H,W] -> [N,C,1,1]. */
    pag_tensor (*global_avg_pool2d)(pag_ctx *ctx, pag_tensor x);
    /** Batch normalization of [N,C] or [N,C,H,W] input, PyTorch semantics. weight, bias: [C] or
     *  NULL. In training it uses batch statistics and updates running_mean / running_var (your
     *  buffers) in place; in evaluation it needs and uses them. */
    pag_tensor (*batch_norm)(pag_ctx *ctx, pag_tensor x, pag_tensor weight, pag_tensor bias,
                             pag_tensor running_mean, pag_tensor running_var, int32_t training,
                             float momentum, float eps);
    /** Dropout with probability p in [0, 1) when training (draws from the call's generator);
     *  the identity when training is 0. */
    pag_tensor (*dropout)(pag_ctx *ctx, pag_tensor x, float p, int32_t training);

    /* -- Reductions and shapes (differentiable) ------------------------------------------- */

    /** Sum over `naxes` axes (all axes when axes is NULL), keeping them as size 1 if keepdims. */
    pag_tensor (*sum)(pag_ctx *ctx, pag_tensor x, const int32_t *axes, int32_t naxes,
                      int32_t keepdims);
    /** Mean over axes, like sum. */
    pag_tensor (*mean)(pag_ctx *ctx, pag_tensor x, const int32_t *axes, int32_t naxes,
                       int32_t keepdims);
    /** Same elements, new shape; one dimension may be -1. */
    pag_tensor (*reshape)(pag_ctx *ctx, pag_tensor x, const int64_t *shape, int32_t ndim);
    /** [N, ...] -> [N, prod(...)]. */
    pag_tensor (*flatten)(pag_ctx *ctx, pag_tensor x);
    /** Reorders axes: out.shape[i] = x.shape[perm[i]]. */
    pag_tensor (*permute)(pag_ctx *ctx, pag_tensor x, const int32_t *perm, int32_t n);
    /** Elements start..end-1 along axis. */
    pag_tensor (*slice)(pag_ctx *ctx, pag_tensor x, int32_t axis, int64_t start, int64_t end);
    /** Zero padding: `before` and `after` elements along axis. */
    pag_tensor (*pad)(pag_ctx *ctx, pag_tensor x, int32_t axis, int64_t before, int64_t after);
    /** Joins n tensors along axis; other dimensions must agree. */
    pag_tensor (*concat)(pag_ctx *ctx, const pag_tensor *parts, int32_t n, int32_t axis);
    /** Repeats size-1 (or missing leading) dimensions up to shape. */
    pag_tensor (*broadcast_to)(pag_ctx *ctx, pag_tensor x, const int64_t *shape, int32_t ndim);

    /* -- Softmax and losses (differentiable) ---------------------------------------------- */

    pag_tensor (*log_softmax)(pag_ctx *ctx, pag_tensor x, int32_t axis); /**< stable log-softmax */
    pag_tensor (*softmax)(pag_ctx *ctx, pag_tensor x, int32_t axis);     /**< softmax */
    /** Cross-entropy of logits [N, C] against labels[N] in [0, C) with label smoothing in
     *  [0, 1] (PyTorch's F.cross_entropy); reduction is a pag_reduction. */
    pag_tensor (*cross_entropy)(pag_ctx *ctx, pag_tensor logits, const int32_t *labels,
                                float smoothing, int32_t reduction);
    /** Mean squared error of equal shapes; reduction is a pag_reduction. */
    pag_tensor (*mse)(pag_ctx *ctx, pag_tensor a, pag_tensor b, int32_t reduction);
    /** The L1 (p = 1) or L2 (p = 2) norm of each sample: [N, ...] -> [N]. */
    pag_tensor (*norm_per_sample)(pag_ctx *ctx, pag_tensor x, int32_t p);

    /* -- Automatic differentiation -------------------------------------------------------- */

    /** The same values, cut from the graph. */
    pag_tensor (*detach)(pag_ctx *ctx, pag_tensor x);
    /** A new leaf with x's values that gradients can be taken with respect to (for input
     *  gradients: leaf = requires_grad(x); loss = f(leaf); grad(loss, leaf)). */
    pag_tensor (*requires_grad)(pag_ctx *ctx, pag_tensor x);
    /** Gradients of the outputs (weighted by grad_outputs, or ones when it is NULL) with
     *  respect to the inputs, written to grads[n_inputs]. An input the outputs do not depend
     *  on gets zeros. With create_graph = 1 the gradients are themselves differentiable
     *  (gradient penalties, double backpropagation). */
    pag_status (*grad)(pag_ctx *ctx, const pag_tensor *outputs, int32_t n_outputs,
                       const pag_tensor *grad_outputs, const pag_tensor *inputs,
                       int32_t n_inputs, int32_t create_graph, pag_tensor *grads);
    /** Switches recording for later operations of this call off (0) or on (1); returns the
     *  previous setting. Off saves memory where no gradient is needed. */
    int32_t (*set_grad_enabled)(pag_ctx *ctx, int32_t enabled);

    /* -- Models: declaring (in pag_model_vtable.create) and calling (from objectives) ------ */

    /** Declares a trainable parameter with PyTorch's state_dict name (e.g. "fc1.weight") and
     *  initial values copied from init. Returns a handle that lives as long as the instance.
     *  Only during create. */
    pag_tensor (*declare_parameter)(pag_ctx *ctx, const char *name, pag_tensor init);
    /** Declares a buffer (saved with the model, not trained; e.g. "bn1.running_mean"). */
    pag_tensor (*declare_buffer)(pag_ctx *ctx, const char *name, pag_tensor init);
    /** Declares the shape of one input sample (e.g. {1, 28, 28}) and the number of outputs
     *  (logits per sample). Required, once, in a model's create. */
    pag_status (*declare_io)(pag_ctx *ctx, const int64_t *input_shape, int32_t ndim,
                             int64_t outputs);
    /** Runs the model on x: logits [N, outputs] as a local handle of this call. */
    pag_tensor (*forward)(pag_ctx *ctx, pag_model *model, pag_tensor x, int32_t train);
    /** Number of trainable parameters of the model, or -1 on error. */
    int32_t (*parameter_count)(pag_ctx *ctx, pag_model *model);
    /** The index-th parameter of the model (declaration order) as a local handle; its name
     *  goes to *name when name is not NULL (valid until this call returns). */
    pag_tensor (*parameter)(pag_ctx *ctx, pag_model *model, int32_t index, const char **name);

    /* -- Metrics ---------------------------------------------------------------------------- */

    /** Reports a named number for this call (e.g. "accuracy"); the trainer logs and averages
     *  it. Names: letters, digits, '_', '.', '/'. */
    pag_status (*report_metric)(pag_ctx *ctx, const char *name, double value);

    /* -- Data sets (in estimators' fit) -------------------------------------------------- */

    /** Number of samples, or -1 on error. */
    int64_t (*dataset_count)(pag_ctx *ctx, pag_dataset *data);
    /** Number of classes, or -1 on error. */
    int32_t (*dataset_classes)(pag_ctx *ctx, pag_dataset *data);
    /** Samples start..start+count-1 as one tensor [count, ...sample shape]. */
    pag_tensor (*dataset_images)(pag_ctx *ctx, pag_dataset *data, int64_t start, int64_t count);
    /** Their labels, written to out[count]. */
    pag_status (*dataset_labels)(pag_ctx *ctx, pag_dataset *data, int64_t start, int64_t count,
                                 int32_t *out);

    /* -- Oracle facts (ABI 1.1; check with PAG_HOST_HAS) ------------------------------------ */

    /** The exact signal subspace of a data set handed to fit, when the data set knows it (the
     *  synthetic set): [D, k] with orthonormal columns, D the elements of one sample. NULL with
     *  an error when the data set has none. Added in ABI 1.1. */
    pag_tensor (*dataset_signal_basis)(pag_ctx *ctx, pag_dataset *data);
    /** The exact signal mask of the batch x this manifold call (tangent_basis or project) was
     *  given, when the caller knows it (the distractor data sets know which half of each image
     *  holds the object): x's shape, 1 on signal elements, 0 elsewhere. NULL with an error when
     *  the caller passed none. Added in ABI 1.1. */
    pag_tensor (*signal_mask)(pag_ctx *ctx);

    /* -- The instance's data and descriptor (ABI 1.2; check with PAG_HOST_HAS) --------------- */

    /** The data this instance was created for (see pag_data_info): valid in create and in
     *  every later call of the instance, the same pointer each time, owned by the host. NULL,
     *  without an error, when the host created the instance without data (unit tests,
     *  benchmarks, `pag plugins check` for models, `pag plugins train`): fall back to your own
     *  defaults, or set an error saying what you need. Added in ABI 1.2. */
    const pag_data_info *(*data_info)(pag_ctx *ctx);
    /** The descriptor the plugin registered for the instance this call belongs to: the very
     *  pointer passed to register_plugin. Lets one create function serve several descriptors
     *  (e.g. a language binding that registers plugins generated at run time). NULL only for a
     *  context that is not a live call. Added in ABI 1.2. */
    const pag_plugin_descriptor *(*descriptor)(pag_ctx *ctx);

    /* -- Diffusion U-Net operations (ABI 1.3; check with PAG_HOST_HAS) ---------------------- */
    /* The layers of EDM's DDPM++ and ADM networks. All differentiable to any order. */

    /** x * sigmoid(x) (SiLU, swish). Added in ABI 1.3. */
    pag_tensor (*silu)(pag_ctx *ctx, pag_tensor x);
    /** Sine. Added in ABI 1.3. */
    pag_tensor (*sin)(pag_ctx *ctx, pag_tensor x);
    /** Cosine. Added in ABI 1.3. */
    pag_tensor (*cos)(pag_ctx *ctx, pag_tensor x);
    /** Group normalization of [N, C, ...] input over `groups` groups of C / groups channels
     *  (PyTorch's F.group_norm: biased variance, eps inside the square root). weight, bias: [C]
     *  or NULL. groups must divide C. Added in ABI 1.3. */
    pag_tensor (*group_norm)(pag_ctx *ctx, pag_tensor x, int32_t groups, pag_tensor weight,
                             pag_tensor bias, float eps);
    /** Dot-product attention in channel-first layout: q, k [B, C, L], v [B, C', Lk] (B = batch
     *  x heads, L = positions); returns v . softmax(q^T k / sqrt(C))^T, shape [B, C', Lq]
     *  (EDM's UNetBlock attention). Added in ABI 1.3. */
    pag_tensor (*attention)(pag_ctx *ctx, pag_tensor q, pag_tensor k, pag_tensor v);
    /** Nearest-neighbour upsampling of NCHW input by an integer factor >= 1 (each pixel becomes
     *  a factor x factor block; EDM's up-resampling with the [1, 1] filter). Down-resampling
     *  with that filter is avg_pool2d(x, 2, 2, 0). Added in ABI 1.3. */
    pag_tensor (*upsample_nearest2d)(pag_ctx *ctx, pag_tensor x, int32_t factor);
    /** Sinusoidal embedding of noise labels x [N]: [N, channels] = [cos(x f_j) for j < h,
     *  sin(x f_j) for j < h], h = channels / 2, f_j = (1 / max_positions)^(j / (h - endpoint))
     *  (EDM's PositionalEmbedding). channels even; endpoint 0 or 1. Added in ABI 1.3. */
    pag_tensor (*positional_embedding)(pag_ctx *ctx, pag_tensor x, int32_t channels,
                                       double max_positions, int32_t endpoint);

    /* -- Fused operations (ABI 1.4; check with PAG_HOST_HAS) -------------------------------- */

    /** max_pool2d(conv2d(x, weight, bias, stride_h, stride_w, pad_h, pad_w), 2, 2, 0): the same
     *  values and gradients, bit for bit, in one pass where the host's Winograd computes the
     *  convolution (3x3, stride 1): its output tiles are pooled before they are stored, so the
     *  full-size output is never written (LeNet's conv2: 20-30% faster). The output must be at
     *  least 2x2. Added in ABI 1.4. */
    pag_tensor (*conv2d_max_pool2x2)(pag_ctx *ctx, pag_tensor x, pag_tensor weight, pag_tensor bias,
                                     int32_t stride_h, int32_t stride_w, int32_t pad_h, int32_t pad_w);

    /* -- General windows, erf and extrema (ABI 1.5; check with PAG_HOST_HAS) -------------------- */
    /* What imported networks (ONNX's Conv, MaxPool, AveragePool, Erf, ReduceMax, ReduceMin) need.
     * Arrays: stride[2], dilation[2] (height, width; each >= 1) and pads[4] (top, left, bottom,
     * right; each >= 0). All differentiable to any order. */

    /** 2-D convolution with channel groups, dilation and asymmetric zero padding: x [N,C,H,W],
     *  weight [O, C / groups, KH, KW], bias [O] or NULL; groups divides C and O (groups = C = O:
     *  depthwise). Output size (H + top + bottom - dilation (KH - 1) - 1) / stride + 1, likewise
     *  W. conv2d(x, w, b, sh, sw, ph, pw) is conv2d_ex with dilation 1, pads {ph, pw, ph, pw},
     *  groups 1, and computes the same values. Added in ABI 1.5. */
    pag_tensor (*conv2d_ex)(pag_ctx *ctx, pag_tensor x, pag_tensor weight, pag_tensor bias,
                            const int32_t *stride, const int32_t *dilation, const int32_t *pads,
                            int32_t groups);
    /** Max (PAG_POOL_MAX) or average (PAG_POOL_AVG) pooling of NCHW input over kernel[2]
     *  windows with stride[2], dilation[2] and pads[4] (each pad smaller than the dilated
     *  window). ceil_mode 1 keeps the last partial window when it starts inside the input or its
     *  top/left padding (PyTorch's and ONNX's rule). Averages divide by the window's taps inside
     *  the padded input when count_include_pad is 1, else by its taps on the input (the overhang
     *  of ceil mode never counts); max ignores count_include_pad. Added in ABI 1.5. */
    pag_tensor (*pool2d)(pag_ctx *ctx, pag_tensor x, int32_t mode, const int32_t *kernel,
                         const int32_t *stride, const int32_t *dilation, const int32_t *pads,
                         int32_t ceil_mode, int32_t count_include_pad);
    /** The error function (exact GELU is x (1 + erf(x / sqrt 2)) / 2). Added in ABI 1.5. */
    pag_tensor (*erf)(pag_ctx *ctx, pag_tensor x);
    /** Largest element over axes, like sum (PyTorch's amax): the gradient is shared evenly
     *  among the elements tying for the maximum; a NaN makes its group NaN. Added in ABI 1.5. */
    pag_tensor (*amax)(pag_ctx *ctx, pag_tensor x, const int32_t *axes, int32_t naxes,
                       int32_t keepdims);
    /** Smallest element over axes, like amax (PyTorch's amin). Added in ABI 1.5. */
    pag_tensor (*amin)(pag_ctx *ctx, pag_tensor x, const int32_t *axes, int32_t naxes,
                       int32_t keepdims);
};

/** pag_host.pool2d's modes. */
typedef enum pag_pool_mode {
    PAG_POOL_MAX = 0,
    PAG_POOL_AVG = 1
} pag_pool_mode;

/** True when the host table provides `field` (it was added in a minor version the host has). */
#define PAG_HOST_HAS(host, field) \
    ((host)->struct_size >= offsetof(pag_host, field) + sizeof((host)->field))

/** printf-style convenience over pag_host.set_error (formats into a 1 KiB buffer). */
static inline void pag_set_errorf(const pag_host *host, pag_ctx *ctx, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static inline void pag_set_errorf(const pag_host *host, pag_ctx *ctx, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    host->set_error(ctx, buf);
}

/* ------------------------------------------------------------------------------------------ */
/* Entry point                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/**
 * The one symbol a plugin library exports. pag calls it once, right after loading the library,
 * on the main thread. Register every plugin with host->register_plugin(reg, &descriptor) and
 * return PAG_OK; on failure call host->registry_error(reg, "why") and return PAG_ERROR (the
 * library is then skipped with that message). Keep `host` in a static variable: it is valid
 * until the library is unloaded. Do not call tensor functions here.
 */
PAG_EXPORT pag_status pag_plugin_init(const pag_host *host, pag_registry *reg);

/** The type of pag_plugin_init, for hosts that look it up with dlsym. */
typedef pag_status (*pag_plugin_init_fn)(const pag_host *host, pag_registry *reg);

#ifdef __cplusplus
}
#endif

#endif /* PAG_PLUGIN_H */
