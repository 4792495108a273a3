// kernels.c: the host's fast path over oneDNN 2.6 (see include/pag_kernels.h).
//
// Design notes
// - One CPU engine for the process, created lazily (pthread_once).
// - Per thread: a oneDNN stream and a small workspace (reordered tensors, scratchpads), so
//   concurrent calls from different threads never share mutable state. Primitives use the
//   user scratchpad mode because oneDNN's library mode ties a primitive to the thread that
//   created it, and Swift calls us from whatever thread it likes.
// - Convolution primitives (plus the reorders around them) are cached per shape, op, bias and
//   policy. Entries are immutable once built and reference-counted, so clear_cache is safe
//   while other threads are executing.
#define _POSIX_C_SOURCE 200809L
#include "pag_kernels.h"
#include "pag_narrow.h"
#include "pag_simd.h"
#include "pag_storage.h"
#include "pag_winograd.h"

#include <dnnl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ---------------------------------------------------------------------------------------------
// sgemm

int pag_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
              float *c, int64_t ldc) {
    if (m < 0 || n < 0 || k < 0) return dnnl_invalid_arguments;
    if (m == 0 || n == 0) return dnnl_success;
    if (k == 0 || alpha == 0.0f) {
        // Nothing to multiply: C = beta * C (beta == 0 overwrites, even NaN, as BLAS does).
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return dnnl_success;
    }
    // dnnl_sgemm is row-major, like us.
    return (int)dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb,
                           beta, c, ldc);
}

// ---------------------------------------------------------------------------------------------
// Engine, per-thread stream and workspace

enum { WS_X, WS_W, WS_Y, WS_SCRATCH, WS_COUNT };

typedef struct thread_state {
    dnnl_stream_t stream;
    pag_buffer ws[WS_COUNT];
    int generation;  // compared with g_generation: clear_cache asks every thread to free buffers
} thread_state;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t g_engine;
static dnnl_status_t g_engine_status;
static pthread_key_t g_tls_key;
static atomic_int g_generation;
static atomic_int g_policy;  // 0 = PAG_CONV_AUTO

static void free_buffers(thread_state *ts) {
    for (int i = 0; i < WS_COUNT; i++) pag_buffer_release(&ts->ws[i]);
}

static void thread_state_destroy(void *p) {
    thread_state *ts = p;
    free_buffers(ts);
    if (ts->stream) dnnl_stream_destroy(ts->stream);
    free(ts);
}

static void init_once(void) {
    g_engine_status = dnnl_engine_create(&g_engine, dnnl_cpu, 0);
    if (pthread_key_create(&g_tls_key, thread_state_destroy) != 0 && g_engine_status == dnnl_success)
        g_engine_status = dnnl_out_of_memory;
}

static dnnl_status_t get_thread_state(thread_state **out) {
    pthread_once(&g_once, init_once);
    if (g_engine_status != dnnl_success) return g_engine_status;
    thread_state *ts = pthread_getspecific(g_tls_key);
    if (!ts) {
        ts = calloc(1, sizeof *ts);
        if (!ts) return dnnl_out_of_memory;
        dnnl_status_t st = dnnl_stream_create(&ts->stream, g_engine, dnnl_stream_default_flags);
        if (st != dnnl_success) {
            free(ts);
            return st;
        }
        ts->generation = atomic_load(&g_generation);
        if (pthread_setspecific(g_tls_key, ts) != 0) {
            thread_state_destroy(ts);
            return dnnl_out_of_memory;
        }
    }
    int gen = atomic_load(&g_generation);
    if (ts->generation != gen) {
        free_buffers(ts);
        ts->generation = gen;
    }
    *out = ts;
    return dnnl_success;
}

// A buffer of at least `bytes` bytes, kept between calls so large activations are not
// page-faulted in again on every call.
static void *workspace(thread_state *ts, int slot, size_t bytes) {
    return pag_buffer_reserve(&ts->ws[slot], bytes < 64 ? 64 : bytes);
}

int64_t pag_kernels_workspace_bytes(void) {
    thread_state *ts;
    if (get_thread_state(&ts) != dnnl_success) return 0;
    int64_t total = 0;
    for (int i = 0; i < WS_COUNT; i++) total += (int64_t)ts->ws[i].cap;
    return total;
}

// ---------------------------------------------------------------------------------------------
// Convolution plans: which layouts the primitive gets and which algorithm.

enum { OP_FWD, OP_BWD_DATA, OP_BWD_WEIGHTS };

typedef struct plan {
    int x_any, w_any, y_any;  // 1: let oneDNN choose (format_tag_any), 0: plain NCHW / OIHW
    dnnl_alg_kind_t alg;
} plan;

static const plan PLAN_PLAIN = {0, 0, 0, dnnl_convolution_direct};
static const plan PLAN_BLOCKED = {1, 1, 1, dnnl_convolution_direct};
static const plan PLAN_WINOGRAD = {1, 1, 1, dnnl_convolution_winograd};

static int winograd_shape(const pag_conv_shape *s) {
    return pag_conv_is_ordinary(s) && s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1 && s->c >= 16 && s->o >= 16;
}

// Candidates in order of preference; the last one (plain direct) is always implemented.
// AUTO's rules come from timing both layouts over C, O in {1..64} (N=64, 32x32) and the LeNet /
// 64-channel benchmark shapes on this machine (AVX-512, 2 cores):
// - blocked (oneDNN's nChw16c / OIhw16i16o kernels, reorders around them) wins for forward and
//   backward-weights by 1.3-5x; forward with C = 1 is close (LeNet conv1: 0.77 vs 0.86 ms; only
//   C = 1, O = 64 measured plain ahead, by 15%);
// - backward-data with fewer than 8 input channels is 1.5-4x faster plain: the blocked kernel
//   pads C to 16 and its diff_src reorder back costs more than the plain gemm kernel.
// With oneDNN's AVX2 kernels (AVX2-emulated, 1 thread), layers with 1 or 2 input channels run
// plain for every op: forward 1.2-1.7x and backward-weights 1.4-2x faster than blocked (LeNet's
// conv1 on 56x28, batch 64: 1.4 / 3.5 ms against 1.9 / 7.1 ms); from 3 or 4 channels even.
static int onednn_avx512(void) {
    return (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
}

static int plans_for(int policy, const pag_conv_shape *s, int op, plan out[3]) {
    int n = 0;
    switch (policy) {
    case PAG_CONV_PLAIN: break;
    case PAG_CONV_BLOCKED: out[n++] = PLAN_BLOCKED; break;
    case PAG_CONV_WINOGRAD: out[n++] = PLAN_WINOGRAD; out[n++] = PLAN_BLOCKED; break;
    default:  // PAG_CONV_AUTO, PAG_CONV_FAST
        if (policy == PAG_CONV_FAST && winograd_shape(s)) out[n++] = PLAN_WINOGRAD;
        if (!(op == OP_BWD_DATA && s->c < 8) && !(s->c <= 2 && !onednn_avx512())) out[n++] = PLAN_BLOCKED;
    }
    out[n++] = PLAN_PLAIN;
    return n;
}

// ---------------------------------------------------------------------------------------------
// Convolution cache

// Explicit int64 fields only, so the struct has no padding and memcmp is a valid equality.
typedef struct conv_key {
    pag_conv_shape s;
    int64_t op, bias, policy;
} conv_key;

// One tensor of the op as the caller holds it (plain) and as the primitive wants it.
typedef struct conv_arg {
    dnnl_memory_desc_t user, prim;
    dnnl_primitive_t reorder;  // NULL when the layouts are equal
    dnnl_memory_desc_t reorder_scratch;
} conv_arg;

typedef struct conv_entry {
    conv_key key;
    struct conv_entry *next;
    int refs;  // 1 for the cache + 1 per call in flight
    dnnl_primitive_t prim;
    conv_arg x, w, y;  // x: src or diff_src, w: weights or diff_weights, y: dst or diff_dst
    dnnl_memory_desc_t bias, scratch;
    size_t scratch_bytes;  // max over the primitive and its reorders (they share one buffer)
} conv_entry;

enum { CACHE_CAPACITY = 128 };
static pthread_mutex_t g_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static conv_entry *g_cache;  // most recently used first
static int64_t g_cache_count;

static void entry_destroy(conv_entry *e) {
    if (e->prim) dnnl_primitive_destroy(e->prim);
    conv_arg *args[3] = {&e->x, &e->w, &e->y};
    for (int i = 0; i < 3; i++)
        if (args[i]->reorder) dnnl_primitive_destroy(args[i]->reorder);
    free(e);
}

static void entry_release(conv_entry *e) {
    pthread_mutex_lock(&g_cache_lock);
    int last = --e->refs == 0;
    pthread_mutex_unlock(&g_cache_lock);
    if (last) entry_destroy(e);
}

static dnnl_status_t make_pd(dnnl_primitive_desc_t *pd, const void *op_desc,
                             const_dnnl_primitive_desc_t hint) {
    dnnl_primitive_attr_t attr;
    dnnl_status_t st = dnnl_primitive_attr_create(&attr);
    if (st != dnnl_success) return st;
    st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(pd, op_desc, attr, g_engine, hint);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

static size_t md_size(const dnnl_memory_desc_t *md) { return md ? dnnl_memory_desc_get_size(md) : 0; }

// The scratchpad a primitive wants (a zero descriptor, size 0, when it needs none).
static dnnl_memory_desc_t scratch_md(const_dnnl_primitive_desc_t pd) {
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    dnnl_memory_desc_t out;
    if (md) out = *md;
    else memset(&out, 0, sizeof out);
    return out;
}

// Sets a->prim from the primitive's choice and builds the reorder between it and the plain layout
// (user -> prim for inputs, prim -> user for the output).
static dnnl_status_t make_arg(conv_arg *a, const dnnl_memory_desc_t *chosen, int is_output,
                              size_t *scratch_bytes) {
    if (!chosen) return dnnl_runtime_error;
    a->prim = *chosen;
    if (dnnl_memory_desc_equal(&a->user, &a->prim)) return dnnl_success;
    dnnl_primitive_attr_t attr;
    dnnl_status_t st = dnnl_primitive_attr_create(&attr);
    if (st != dnnl_success) return st;
    st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_primitive_desc_t pd = NULL;
    if (st == dnnl_success) {
        const dnnl_memory_desc_t *src = is_output ? &a->prim : &a->user;
        const dnnl_memory_desc_t *dst = is_output ? &a->user : &a->prim;
        st = dnnl_reorder_primitive_desc_create(&pd, src, g_engine, dst, g_engine, attr);
    }
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return st;
    a->reorder_scratch = scratch_md(pd);
    size_t sb = md_size(&a->reorder_scratch);
    if (sb > *scratch_bytes) *scratch_bytes = sb;
    st = dnnl_primitive_create(&a->reorder, pd);
    dnnl_primitive_desc_destroy(pd);
    return st;
}

// Builds the primitive for one plan. On failure the caller destroys the partial entry.
static dnnl_status_t build_plan(conv_entry *e, const plan *p) {
    const pag_conv_shape *s = &e->key.s;
    int op = (int)e->key.op;
    // Grouped weights are [G, O/G, C/G, KH, KW] to oneDNN: the same memory as [O, C/G, KH, KW].
    int grouped = s->groups > 1, wn = grouped ? 5 : 4;
    dnnl_dims_t xd = {s->n, s->c, s->h, s->w}, wd = {s->o, s->c, s->kh, s->kw};
    if (grouped) {
        wd[0] = s->groups; wd[1] = s->o / s->groups; wd[2] = s->c / s->groups; wd[3] = s->kh; wd[4] = s->kw;
    }
    dnnl_dims_t yd = {s->n, s->o, s->oh, s->ow}, bd = {s->o};
    dnnl_dims_t strides = {s->sh, s->sw}, pad = {s->ph, s->pw}, pad_r = {s->pb, s->pr};
    dnnl_dims_t dilates = {s->dh - 1, s->dw - 1};  // oneDNN counts the gaps between taps
    dnnl_format_tag_t wtag = grouped ? dnnl_goihw : dnnl_oihw;
    dnnl_memory_desc_t xq, wq, yq;  // what we ask the primitive for
    dnnl_status_t st;
    if ((st = dnnl_memory_desc_init_by_tag(&e->x.user, 4, xd, dnnl_f32, dnnl_nchw)) ||
        (st = dnnl_memory_desc_init_by_tag(&e->w.user, wn, wd, dnnl_f32, wtag)) ||
        (st = dnnl_memory_desc_init_by_tag(&e->y.user, 4, yd, dnnl_f32, dnnl_nchw)) ||
        (st = dnnl_memory_desc_init_by_tag(&e->bias, 1, bd, dnnl_f32, dnnl_x)) ||
        (st = dnnl_memory_desc_init_by_tag(&xq, 4, xd, dnnl_f32, p->x_any ? dnnl_format_tag_any : dnnl_nchw)) ||
        (st = dnnl_memory_desc_init_by_tag(&wq, wn, wd, dnnl_f32, p->w_any ? dnnl_format_tag_any : wtag)) ||
        (st = dnnl_memory_desc_init_by_tag(&yq, 4, yd, dnnl_f32, p->y_any ? dnnl_format_tag_any : dnnl_nchw)))
        return st;
    const dnnl_memory_desc_t *bias = e->key.bias ? &e->bias : NULL;

    // Forward descriptor: the primitive itself for OP_FWD, the hint for the backward ops.
    dnnl_convolution_desc_t fwd, bwd;
    st = dnnl_dilated_convolution_forward_desc_init(&fwd, dnnl_forward_training, p->alg, &xq, &wq, bias, &yq,
                                                    strides, dilates, pad, pad_r);
    if (st != dnnl_success) return st;
    dnnl_primitive_desc_t fwd_pd = NULL, pd = NULL;
    st = make_pd(&fwd_pd, &fwd, NULL);
    if (st != dnnl_success) return st;
    if (op == OP_FWD) {
        pd = fwd_pd;
        fwd_pd = NULL;
    } else {
        if (op == OP_BWD_DATA)
            st = dnnl_dilated_convolution_backward_data_desc_init(&bwd, p->alg, &xq, &wq, &yq, strides, dilates,
                                                                  pad, pad_r);
        else
            st = dnnl_dilated_convolution_backward_weights_desc_init(&bwd, p->alg, &xq, &wq, bias, &yq, strides,
                                                                     dilates, pad, pad_r);
        if (st == dnnl_success) st = make_pd(&pd, &bwd, fwd_pd);
        dnnl_primitive_desc_destroy(fwd_pd);
        if (st != dnnl_success) return st;
    }

    dnnl_query_t qx = op == OP_BWD_DATA ? dnnl_query_diff_src_md : dnnl_query_src_md;
    dnnl_query_t qw = op == OP_BWD_WEIGHTS ? dnnl_query_diff_weights_md : dnnl_query_weights_md;
    dnnl_query_t qy = op == OP_FWD ? dnnl_query_dst_md : dnnl_query_diff_dst_md;
    e->scratch = scratch_md(pd);
    e->scratch_bytes = md_size(&e->scratch);
    if ((st = make_arg(&e->x, dnnl_primitive_desc_query_md(pd, qx, 0), op == OP_BWD_DATA, &e->scratch_bytes)) ||
        (st = make_arg(&e->w, dnnl_primitive_desc_query_md(pd, qw, 0), op == OP_BWD_WEIGHTS, &e->scratch_bytes)) ||
        (st = make_arg(&e->y, dnnl_primitive_desc_query_md(pd, qy, 0), op == OP_FWD, &e->scratch_bytes))) {
        dnnl_primitive_desc_destroy(pd);
        return st;
    }
    st = dnnl_primitive_create(&e->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    return st;
}

static dnnl_status_t build_entry(const conv_key *key, conv_entry **out) {
    plan plans[3];
    int count = plans_for((int)key->policy, &key->s, (int)key->op, plans);
    dnnl_status_t st = dnnl_unimplemented;
    for (int i = 0; i < count; i++) {
        conv_entry *e = calloc(1, sizeof *e);
        if (!e) return dnnl_out_of_memory;
        e->key = *key;
        e->refs = 1;
        st = build_plan(e, &plans[i]);
        if (st == dnnl_success) {
            *out = e;
            return st;
        }
        entry_destroy(e);  // try the next plan (e.g. Winograd is not implemented for this shape)
    }
    return st;
}

// Returns the entry for key with a reference the caller must release.
static dnnl_status_t acquire_entry(const conv_key *key, conv_entry **out) {
    pthread_mutex_lock(&g_cache_lock);
    for (conv_entry **pp = &g_cache; *pp; pp = &(*pp)->next) {
        conv_entry *e = *pp;
        if (memcmp(&e->key, key, sizeof *key) == 0) {
            *pp = e->next;  // move to front
            e->next = g_cache;
            g_cache = e;
            e->refs++;
            pthread_mutex_unlock(&g_cache_lock);
            *out = e;
            return dnnl_success;
        }
    }
    pthread_mutex_unlock(&g_cache_lock);

    // Build outside the lock (it takes milliseconds); another thread may race us to it.
    conv_entry *fresh;
    dnnl_status_t st = build_entry(key, &fresh);
    if (st != dnnl_success) return st;

    conv_entry *evicted = NULL;
    pthread_mutex_lock(&g_cache_lock);
    conv_entry *found = NULL;
    for (conv_entry *e = g_cache; e; e = e->next)
        if (memcmp(&e->key, key, sizeof *key) == 0) found = e;
    if (found) {
        found->refs++;
    } else {
        fresh->refs = 2;  // the cache's and the caller's
        fresh->next = g_cache;
        g_cache = fresh;
        if (++g_cache_count > CACHE_CAPACITY) {  // drop the least recently used
            conv_entry **pp = &g_cache;
            while ((*pp)->next) pp = &(*pp)->next;
            conv_entry *last = *pp;
            *pp = NULL;
            g_cache_count--;
            if (--last->refs == 0) evicted = last;
        }
    }
    pthread_mutex_unlock(&g_cache_lock);
    if (evicted) entry_destroy(evicted);
    if (found) {
        entry_destroy(fresh);
        *out = found;
    } else {
        *out = fresh;
    }
    return dnnl_success;
}

void pag_kernels_clear_cache(void) {
    pthread_mutex_lock(&g_cache_lock);
    conv_entry *list = g_cache;
    g_cache = NULL;
    g_cache_count = 0;
    conv_entry *dead = NULL;
    while (list) {
        conv_entry *next = list->next;
        if (--list->refs == 0) {
            list->next = dead;
            dead = list;
        }
        list = next;
    }
    pthread_mutex_unlock(&g_cache_lock);
    while (dead) {
        conv_entry *next = dead->next;
        entry_destroy(dead);
        dead = next;
    }
    atomic_fetch_add(&g_generation, 1);  // threads free their workspaces on their next call
}

int64_t pag_kernels_cache_size(void) {
    pthread_mutex_lock(&g_cache_lock);
    int64_t n = g_cache_count;
    pthread_mutex_unlock(&g_cache_lock);
    return n;
}

void pag_kernels_set_conv_policy(int policy) {
    if (policy >= PAG_CONV_AUTO && policy <= PAG_CONV_MEASURED) atomic_store(&g_policy, policy);
}

int pag_kernels_get_conv_policy(void) { return atomic_load(&g_policy); }

// ---------------------------------------------------------------------------------------------
// Execution

typedef struct exec_mem {
    dnnl_memory_t m[16];
    int count;
} exec_mem;

static dnnl_memory_t new_mem(exec_mem *em, const dnnl_memory_desc_t *md, void *ptr, dnnl_status_t *st) {
    dnnl_memory_t m = NULL;
    if (*st != dnnl_success) return NULL;
    *st = dnnl_memory_create(&m, md, g_engine, ptr);
    if (*st == dnnl_success) em->m[em->count++] = m;
    return m;
}

static void free_mems(exec_mem *em) {
    for (int i = 0; i < em->count; i++) dnnl_memory_destroy(em->m[i]);
    em->count = 0;
}

static dnnl_status_t run_reorder(const conv_arg *a, dnnl_stream_t stream, dnnl_memory_t from,
                                 dnnl_memory_t to, void *scratch, exec_mem *em) {
    dnnl_status_t st = dnnl_success;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}, {DNNL_ARG_SCRATCHPAD, NULL}};
    int n = 2;
    if (md_size(&a->reorder_scratch) > 0) {
        args[n++].memory = new_mem(em, &a->reorder_scratch, scratch, &st);
        if (st != dnnl_success) return st;
    }
    return dnnl_primitive_execute(a->reorder, stream, n, args);
}

// Memory the primitive reads or writes for one tensor: the user's own pointer when the layouts
// agree, otherwise a workspace buffer (filled by a reorder for inputs).
static dnnl_status_t bind_arg(const conv_arg *a, thread_state *ts, int slot, void *user_ptr,
                              int is_output, void *scratch, exec_mem *em, dnnl_memory_t *user_mem,
                              dnnl_memory_t *prim_mem) {
    dnnl_status_t st = dnnl_success;
    *user_mem = new_mem(em, &a->user, user_ptr, &st);
    if (!a->reorder) {
        *prim_mem = *user_mem;
        return st;
    }
    void *buf = workspace(ts, slot, md_size(&a->prim));
    if (!buf) return dnnl_out_of_memory;
    *prim_mem = new_mem(em, &a->prim, buf, &st);
    if (st == dnnl_success && !is_output) st = run_reorder(a, ts->stream, *user_mem, *prim_mem, scratch, em);
    return st;
}

static dnnl_status_t conv_execute(const pag_conv_shape *s, int op, int policy, int want_bias, void *xp, void *wp, void *yp, void *bp) {
    thread_state *ts;
    dnnl_status_t st = get_thread_state(&ts);
    if (st != dnnl_success) return st;
    conv_key key;
    memset(&key, 0, sizeof key);
    key.s = *s;
    key.op = op;
    key.bias = want_bias;
    key.policy = policy;
    conv_entry *e;
    st = acquire_entry(&key, &e);
    if (st != dnnl_success) return st;

    exec_mem em = {{0}, 0};
    void *scratch = workspace(ts, WS_SCRATCH, e->scratch_bytes);
    if (!scratch) st = dnnl_out_of_memory;
    dnnl_memory_t xu = NULL, xm = NULL, wu = NULL, wm = NULL, yu = NULL, ym = NULL, bm = NULL, sm = NULL;
    if (st == dnnl_success) st = bind_arg(&e->x, ts, WS_X, xp, op == OP_BWD_DATA, scratch, &em, &xu, &xm);
    if (st == dnnl_success) st = bind_arg(&e->w, ts, WS_W, wp, op == OP_BWD_WEIGHTS, scratch, &em, &wu, &wm);
    if (st == dnnl_success) st = bind_arg(&e->y, ts, WS_Y, yp, op == OP_FWD, scratch, &em, &yu, &ym);
    if (want_bias) bm = new_mem(&em, &e->bias, bp, &st);
    if (e->scratch_bytes > 0 && md_size(&e->scratch) > 0) sm = new_mem(&em, &e->scratch, scratch, &st);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[5];
        int n = 0;
        switch (op) {
        case OP_FWD:
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, xm};
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, wm};
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DST, ym};
            if (want_bias) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, bm};
            break;
        case OP_BWD_DATA:
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, xm};
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, wm};
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, ym};
            break;
        default:
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, xm};
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_WEIGHTS, wm};
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, ym};
            if (want_bias) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, bm};
        }
        if (sm) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, sm};
        st = dnnl_primitive_execute(e->prim, ts->stream, n, args);
    }
    // Bring the output back to the caller's plain layout.
    if (st == dnnl_success) {
        if (op == OP_FWD && e->y.reorder) st = run_reorder(&e->y, ts->stream, ym, yu, scratch, &em);
        if (op == OP_BWD_DATA && e->x.reorder) st = run_reorder(&e->x, ts->stream, xm, xu, scratch, &em);
        if (op == OP_BWD_WEIGHTS && e->w.reorder) st = run_reorder(&e->w, ts->stream, wm, wu, scratch, &em);
    }
    if (st == dnnl_success) st = dnnl_stream_wait(ts->stream);
    free_mems(&em);
    entry_release(e);
    return st;
}

// ---------------------------------------------------------------------------------------------
// Measured choices (PAG_CONV_MEASURED): per (shape, op) the fastest kernel, timed once on the
// first call's own arguments, the way cudnn.benchmark does; preloadable so a run can repeat
// another's choices exactly.

typedef struct conv_call {
    int op;
    const pag_conv_shape *s;
    const float *x, *w, *gy, *bias;  // inputs (those of op; others NULL)
    float *y, *gx, *gw, *gbias;      // outputs
} conv_call;

static int shape_ok(const pag_conv_shape *s);

int pag_conv_kernel_supports(const pag_conv_shape *s, int op, int kernel) {
    if (!shape_ok(s) || op < OP_FWD || op > OP_BWD_WEIGHTS) return 0;
    switch (kernel) {
    case PAG_KERNEL_DIRECT: return 1;
    case PAG_KERNEL_PAG_WINOGRAD: return pag_winograd_supports(s);
    case PAG_KERNEL_ONEDNN_WINOGRAD: return onednn_avx512() && winograd_shape(s);
    case PAG_KERNEL_PLAIN: return !pag_narrow_supports(s);
    default: return 0;
    }
}

static dnnl_status_t run_kernel(int kernel, const conv_call *c) {
    const pag_conv_shape *s = c->s;
    switch (kernel) {
    case PAG_KERNEL_PAG_WINOGRAD:
        if (c->op == OP_FWD) return pag_winograd_forward(s, c->x, c->w, c->bias, c->y);
        if (c->op == OP_BWD_DATA) return pag_winograd_backward_data(s, c->gy, c->w, c->gx);
        return pag_winograd_backward_weights(s, c->x, c->gy, c->gw, c->gbias);
    case PAG_KERNEL_ONEDNN_WINOGRAD:
    case PAG_KERNEL_PLAIN: {
        int p = kernel == PAG_KERNEL_PLAIN ? PAG_CONV_PLAIN : PAG_CONV_WINOGRAD;
        if (c->op == OP_FWD) return conv_execute(s, OP_FWD, p, c->bias != NULL, (void *)c->x, (void *)c->w, c->y, (void *)c->bias);
        if (c->op == OP_BWD_DATA) return conv_execute(s, OP_BWD_DATA, p, 0, c->gx, (void *)c->w, (void *)c->gy, NULL);
        return conv_execute(s, OP_BWD_WEIGHTS, p, c->gbias != NULL, (void *)c->x, c->gw, (void *)c->gy, c->gbias);
    }
    default: {  // PAG_CONV_AUTO's path
        int p = PAG_CONV_AUTO, nar = pag_narrow_supports(s);
        if (c->op == OP_FWD) return nar ? pag_narrow_forward(s, c->x, c->w, c->bias, c->y)
                                        : conv_execute(s, OP_FWD, p, c->bias != NULL, (void *)c->x, (void *)c->w, c->y, (void *)c->bias);
        if (c->op == OP_BWD_DATA) return nar ? pag_narrow_backward_data(s, c->gy, c->w, c->gx)
                                             : conv_execute(s, OP_BWD_DATA, p, 0, c->gx, (void *)c->w, (void *)c->gy, NULL);
        return nar ? pag_narrow_backward_weights(s, c->x, c->gy, c->gw, c->gbias)
                   : conv_execute(s, OP_BWD_WEIGHTS, p, c->gbias != NULL, (void *)c->x, c->gw, (void *)c->gy, c->gbias);
    }
    }
}

static pthread_mutex_t g_choice_lock = PTHREAD_MUTEX_INITIALIZER;
static pag_conv_choice *g_choices;  // in the order made
static unsigned char *g_choice_used;  // per choice: looked up or made since the last usage reset
static int64_t g_choice_count, g_choice_cap;

// The choice for (s, op), or -1. Caller holds g_choice_lock.
static int64_t find_choice(const pag_conv_shape *s, int op) {
    for (int64_t i = 0; i < g_choice_count; i++)
        if (g_choices[i].op == op && memcmp(&g_choices[i].s, s, sizeof *s) == 0) return i;
    return -1;
}

// Adds a choice unless (s, op) has one already; returns the kernel in effect.
static int add_choice(const pag_conv_choice *c) {
    pthread_mutex_lock(&g_choice_lock);
    int64_t i = find_choice(&c->s, (int)c->op);
    int kernel = (int)c->kernel;
    if (i >= 0) {
        kernel = (int)g_choices[i].kernel;
    } else {
        if (g_choice_count == g_choice_cap) {
            int64_t cap = g_choice_cap ? 2 * g_choice_cap : 64;
            pag_conv_choice *grown = realloc(g_choices, (size_t)cap * sizeof *grown);
            if (grown) g_choices = grown;
            unsigned char *used = grown ? realloc(g_choice_used, (size_t)cap) : NULL;
            if (used) { g_choice_used = used; g_choice_cap = cap; }
        }
        if (g_choice_count < g_choice_cap) {  // else: chosen, not kept
            g_choice_used[g_choice_count] = 0;
            g_choices[g_choice_count++] = *c;
        }
    }
    pthread_mutex_unlock(&g_choice_lock);
    return kernel;
}

// The kernel chosen for (s, op), or -1; `use` marks the choice as used (a call runs with it).
static int chosen_kernel(const pag_conv_shape *s, int op, int use) {
    pthread_mutex_lock(&g_choice_lock);
    int64_t i = find_choice(s, op);
    int kernel = i >= 0 ? (int)g_choices[i].kernel : -1;
    if (i >= 0 && use) g_choice_used[i] = 1;
    pthread_mutex_unlock(&g_choice_lock);
    return kernel;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static dnnl_status_t run_measured(const conv_call *c) {
    int kernel = chosen_kernel(c->s, c->op, 1);
    if (kernel < 0) {
        pag_conv_choice made;
        memset(&made, 0, sizeof made);
        made.s = *c->s;
        made.op = c->op;
        made.kernel = PAG_KERNEL_DIRECT;
        for (int k = 0; k < PAG_KERNEL_COUNT; k++) {
            made.ms[k] = -1;
            if (!pag_conv_kernel_supports(c->s, c->op, k)) continue;
            if (run_kernel(k, c) != dnnl_success) continue;  // warm-up: builds primitives, faults pages in
            double t[3];
            int ok = 1;
            for (int r = 0; r < 3 && ok; r++) {
                double t0 = now_ms();
                ok = run_kernel(k, c) == dnnl_success;
                t[r] = now_ms() - t0;
            }
            if (!ok) continue;
            double lo = t[0] < t[1] ? t[0] : t[1], hi = t[0] < t[1] ? t[1] : t[0];
            made.ms[k] = t[2] < lo ? lo : t[2] > hi ? hi : t[2];  // the median of three
        }
        // Direct unless a Winograd is clearly faster: direct rounds least.
        double best = made.ms[PAG_KERNEL_DIRECT];
        for (int k = 1; k < PAG_KERNEL_COUNT; k++)
            if (made.ms[k] >= 0 && (best < 0 || made.ms[k] < 0.95 * best)) { best = made.ms[k]; made.kernel = k; }
        add_choice(&made);
        kernel = chosen_kernel(c->s, c->op, 1);  // another thread's choice if it came first
        if (kernel < 0) kernel = (int)made.kernel;  // not kept (out of memory)
    }
    return run_kernel(kernel, c);
}

int pag_conv_choice_set(const pag_conv_shape *s, int op, int kernel) {
    if (!shape_ok(s) || op < OP_FWD || op > OP_BWD_WEIGHTS || !pag_conv_kernel_supports(s, op, kernel))
        return dnnl_invalid_arguments;
    pag_conv_choice c;
    memset(&c, 0, sizeof c);
    c.s = *s;
    c.op = op;
    c.kernel = kernel;
    for (int k = 0; k < PAG_KERNEL_COUNT; k++) c.ms[k] = -1;
    pthread_mutex_lock(&g_choice_lock);
    int64_t i = find_choice(s, op);
    if (i >= 0) g_choices[i] = c;
    pthread_mutex_unlock(&g_choice_lock);
    if (i < 0) add_choice(&c);
    return dnnl_success;
}

int64_t pag_conv_choice_count(void) {
    pthread_mutex_lock(&g_choice_lock);
    int64_t n = g_choice_count;
    pthread_mutex_unlock(&g_choice_lock);
    return n;
}

int pag_conv_choice_used(int64_t index) {
    pthread_mutex_lock(&g_choice_lock);
    int used = index >= 0 && index < g_choice_count && g_choice_used[index];
    pthread_mutex_unlock(&g_choice_lock);
    return used;
}

void pag_conv_choice_reset_usage(void) {
    pthread_mutex_lock(&g_choice_lock);
    if (g_choice_count > 0) memset(g_choice_used, 0, (size_t)g_choice_count);
    pthread_mutex_unlock(&g_choice_lock);
}

int pag_conv_choice_get(int64_t index, pag_conv_choice *out) {
    pthread_mutex_lock(&g_choice_lock);
    int ok = index >= 0 && index < g_choice_count && out;
    if (ok) *out = g_choices[index];
    pthread_mutex_unlock(&g_choice_lock);
    return ok ? dnnl_success : dnnl_invalid_arguments;
}

void pag_conv_choice_clear(void) {
    pthread_mutex_lock(&g_choice_lock);
    g_choice_count = 0;
    pthread_mutex_unlock(&g_choice_lock);
}

// ---------------------------------------------------------------------------------------------
// Public convolution entry points

// 1 when the geometry is valid, following pag_conv_shape's contract.
static int shape_ok(const pag_conv_shape *s) {
    if (!s) return 0;
    if (s->n < 0 || s->c < 0 || s->h < 0 || s->w < 0 || s->o < 0 || s->kh < 1 || s->kw < 1) return 0;
    if (s->sh < 1 || s->sw < 1 || s->ph < 0 || s->pw < 0 || s->pb < 0 || s->pr < 0) return 0;
    if (s->groups < 1 || s->c % s->groups || s->o % s->groups || s->dh < 1 || s->dw < 1) return 0;
    int64_t ekh = s->dh * (s->kh - 1) + 1, ekw = s->dw * (s->kw - 1) + 1;  // the dilated kernel's extent
    if (s->h + s->ph + s->pb < ekh || s->w + s->pw + s->pr < ekw) return 0;
    return s->oh == (s->h + s->ph + s->pb - ekh) / s->sh + 1 && s->ow == (s->w + s->pw + s->pr - ekw) / s->sw + 1;
}

// oneDNN rejects zero-sized tensors; the results are trivial then.
static int degenerate(const pag_conv_shape *s) { return s->n == 0 || s->c == 0 || s->o == 0; }

// oneDNN 2.6 has its Winograd exactly where it has its AVX-512 kernels.
int pag_kernels_onednn_has_winograd(void) { return onednn_avx512(); }

// 1 when this call goes to narrow.c: fewer than 8 output channels, unless a strategy is forced.
static int narrow(const pag_conv_shape *s) {
    int policy = atomic_load(&g_policy);
    return (policy == PAG_CONV_AUTO || policy == PAG_CONV_FAST || policy == PAG_CONV_PAG_WINOGRAD) &&
           pag_narrow_supports(s);
}

// 1 when this call goes to pag's own Winograd (pag_winograd.h) instead of oneDNN. Under FAST:
// always where oneDNN has no Winograd; where it has one (AVX-512), for layers of at most 32 x 64
// channels, where pag's (no reorders) measured 5-25% faster than oneDNN's with its reorders
// (LeNet's conv2, the denoiser's 32-channel layers), while oneDNN's wins from 64 x 64 up.
static int own_winograd(const pag_conv_shape *s) {
    int policy = atomic_load(&g_policy);
    if (policy != PAG_CONV_PAG_WINOGRAD && policy != PAG_CONV_FAST) return 0;
    if (!pag_winograd_supports(s)) return 0;
    return policy == PAG_CONV_PAG_WINOGRAD || !pag_kernels_onednn_has_winograd() || s->c * s->o <= 2048;
}

int pag_conv2d_forward(const pag_conv_shape *s, const float *x, const float *w, const float *bias,
                       float *y) {
    if (!shape_ok(s)) return dnnl_invalid_arguments;
    if (degenerate(s)) {  // y = bias (no input channels) or nothing to write
        int64_t plane = s->oh * s->ow;
        if (!y && s->n * s->o * plane > 0) return dnnl_invalid_arguments;
        for (int64_t n = 0; n < s->n; n++)
            for (int64_t o = 0; o < s->o; o++)
                for (int64_t i = 0; i < plane; i++) y[(n * s->o + o) * plane + i] = bias ? bias[o] : 0.0f;
        return dnnl_success;
    }
    if (!x || !w || !y) return dnnl_invalid_arguments;
    if (atomic_load(&g_policy) == PAG_CONV_MEASURED)
        return run_measured(&(conv_call){OP_FWD, s, x, w, NULL, bias, y, NULL, NULL, NULL});
    if (own_winograd(s)) return pag_winograd_forward(s, x, w, bias, y);
    if (narrow(s)) return pag_narrow_forward(s, x, w, bias, y);
    return conv_execute(s, OP_FWD, atomic_load(&g_policy), bias != NULL, (void *)x, (void *)w, y, (void *)bias);
}

int pag_conv2d_forward_maxpool2x2(const pag_conv_shape *s, const float *x, const float *w, const float *bias,
                                  float *y, int32_t *idx) {
    if (!shape_ok(s) || degenerate(s) || s->oh < 2 || s->ow < 2) return PAG_KERNELS_UNFUSED;
    if (!x || !w || !y) return dnnl_invalid_arguments;
    if (atomic_load(&g_policy) == PAG_CONV_MEASURED) {
        // Fused only where the forward's choice is pag's Winograd; an unmeasured shape is measured
        // here first (into a scratch output), so the first call fuses or not like every later one.
        int k = chosen_kernel(s, OP_FWD, 1);
        if (k < 0) {
            float *scratch = malloc(sizeof(float) * (size_t)(s->n * s->o * s->oh * s->ow));
            if (!scratch) return PAG_KERNELS_UNFUSED;
            dnnl_status_t st = run_measured(&(conv_call){OP_FWD, s, x, w, NULL, bias, scratch, NULL, NULL, NULL});
            free(scratch);
            if (st != dnnl_success) return st;
            k = chosen_kernel(s, OP_FWD, 1);
        }
        if (k != PAG_KERNEL_PAG_WINOGRAD) return PAG_KERNELS_UNFUSED;
    } else if (!own_winograd(s)) {
        return PAG_KERNELS_UNFUSED;
    }
    return pag_winograd_forward_maxpool2x2(s, x, w, bias, y, idx);
}

int pag_conv2d_backward_data(const pag_conv_shape *s, const float *gy, const float *w, float *gx) {
    if (!shape_ok(s)) return dnnl_invalid_arguments;
    if (degenerate(s)) {
        if (s->n * s->c * s->h * s->w > 0 && !gx) return dnnl_invalid_arguments;
        if (s->n * s->c * s->h * s->w > 0) memset(gx, 0, sizeof(float) * (size_t)(s->n * s->c * s->h * s->w));
        return dnnl_success;
    }
    if (!gy || !w || !gx) return dnnl_invalid_arguments;
    if (atomic_load(&g_policy) == PAG_CONV_MEASURED)
        return run_measured(&(conv_call){OP_BWD_DATA, s, NULL, w, gy, NULL, NULL, gx, NULL, NULL});
    if (own_winograd(s)) return pag_winograd_backward_data(s, gy, w, gx);
    if (narrow(s)) return pag_narrow_backward_data(s, gy, w, gx);
    return conv_execute(s, OP_BWD_DATA, atomic_load(&g_policy), 0, gx, (void *)w, (void *)gy, NULL);
}

int pag_conv2d_backward_weights(const pag_conv_shape *s, const float *x, const float *gy, float *gw,
                                float *gbias) {
    if (!shape_ok(s)) return dnnl_invalid_arguments;
    if (degenerate(s)) {
        int64_t wcount = s->o * (s->c / s->groups) * s->kh * s->kw;
        if ((wcount > 0 && !gw) || (gbias && s->n * s->o * s->oh * s->ow > 0 && !gy))
            return dnnl_invalid_arguments;
        if (wcount > 0) memset(gw, 0, sizeof(float) * (size_t)wcount);
        if (gbias) pag_conv_bias_gradient(s, gy, gbias);  // gy is empty unless only C is zero
        return dnnl_success;
    }
    if (!x || !gy || !gw) return dnnl_invalid_arguments;
    if (atomic_load(&g_policy) == PAG_CONV_MEASURED)
        return run_measured(&(conv_call){OP_BWD_WEIGHTS, s, x, NULL, gy, NULL, NULL, NULL, gw, gbias});
    if (own_winograd(s)) return pag_winograd_backward_weights(s, x, gy, gw, gbias);
    if (narrow(s)) return pag_narrow_backward_weights(s, x, gy, gw, gbias);
    return conv_execute(s, OP_BWD_WEIGHTS, atomic_load(&g_policy), gbias != NULL, (void *)x, gw, (void *)gy, gbias);
}

void pag_conv_bias_gradient(const pag_conv_shape *s, const float *gy, float *gbias) {
    int64_t plane = s->oh * s->ow;
    for (int64_t o = 0; o < s->o; o++) {
        double acc = 0;
        for (int64_t n = 0; n < s->n; n++) acc += pag_simd_sum(gy + (n * s->o + o) * plane, plane);
        gbias[o] = (float)acc;
    }
}

// ---------------------------------------------------------------------------------------------
// Parallel loops on libgomp's thread team (the one oneDNN uses). GOMP_parallel is the entry
// point gcc emits for `#pragma omp parallel`; calling it directly avoids needing -fopenmp here.

extern void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
extern int omp_get_thread_num(void);
extern int omp_get_num_threads(void);
extern int omp_get_max_threads(void);

typedef struct parallel_job {
    void (*fn)(void *ctx, int64_t chunk);
    void *ctx;
    int64_t n;
} parallel_job;

static void parallel_trampoline(void *data) {
    const parallel_job *job = data;
    int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    for (int64_t i = t; i < job->n; i += nt) job->fn(job->ctx, i);
}

void pag_parallel_for(int64_t n_chunks, void (*fn)(void *ctx, int64_t chunk), void *ctx) {
    if (n_chunks <= 0) return;
    if (n_chunks == 1) { fn(ctx, 0); return; }
    parallel_job job = {fn, ctx, n_chunks};
    int64_t threads = omp_get_max_threads();
    GOMP_parallel(parallel_trampoline, &job, (unsigned)(threads < n_chunks ? threads : n_chunks), 0);
}

int pag_parallel_threads(void) { return omp_get_max_threads(); }

// ---------------------------------------------------------------------------------------------
// oneDNN's instruction set

const char *pag_kernels_onednn_isa(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "all";
    }
}
