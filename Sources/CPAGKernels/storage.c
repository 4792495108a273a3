// storage.c: see pag_storage.h.
#define _GNU_SOURCE
#include "pag_storage.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

enum { LARGE = 1 << 20, PAGE = 4096, CLASSES = 4 * 48 };

static _Atomic int64_t g_live, g_peak, g_cached;

// Free mappings of one size class, linked through their first bytes.
typedef struct cached { struct cached *next; } cached;
static cached *g_free[CLASSES];
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

// Size classes: four per octave (1, 1.25, 1.5, 1.75 times a power of two, at least 1 MiB, in
// whole pages). A request takes a free mapping of its class or of the next two (at most 1.5
// times its size); untouched pages of a mapping are not resident anyway.
static int size_class(size_t bytes) {
    int octave = 63 - __builtin_clzll((unsigned long long)bytes);
    size_t base = (size_t)1 << octave, step = base / 4;
    size_t k = (bytes - base + step - 1) / step;  // 0...4 quarters above base
    return (octave - 20) * 4 + (int)k;
}
static size_t class_size(int cls) { return ((size_t)1 << (20 + cls / 4)) / 4 * (4 + cls % 4); }

static void note(int64_t delta) {
    int64_t now = atomic_fetch_add_explicit(&g_live, delta, memory_order_relaxed) + delta;
    if (delta <= 0) return;
    int64_t peak = atomic_load_explicit(&g_peak, memory_order_relaxed);
    while (now > peak &&
           !atomic_compare_exchange_weak_explicit(&g_peak, &peak, now, memory_order_relaxed, memory_order_relaxed)) {
    }
}

// How large live + cached may grow: the most ever live at once plus a slack the cache learns.
// A step of a training loop needs a little more than its peak of live bytes (mappings it frees
// early wait for its later requests while it asks for other sizes), so an eviction that a
// request of the same class answers later (the same sizes unmapped and mapped again) adds that
// class's size to the slack, up to the peak itself. Under g_lock.
static int64_t g_slack;
static int g_evicted[CLASSES];
static int64_t footprint_limit(int64_t peak) { return peak + (g_slack < peak ? g_slack : peak); }

// Under g_lock: unmaps cached mappings, largest first, until live + cached + `more` bytes fit
// in footprint_limit (or nothing is cached): mappings of other sizes sitting idle go before a
// new mapping takes the footprint past it.
static void evict_for(int64_t more) {
    int64_t live = atomic_load_explicit(&g_live, memory_order_relaxed);
    int64_t peak = atomic_load_explicit(&g_peak, memory_order_relaxed);
    if (live + more > peak) peak = live + more;
    int64_t limit = footprint_limit(peak);
    for (int cls = CLASSES - 1; cls >= 0; cls--) {
        while (g_free[cls] && live + atomic_load_explicit(&g_cached, memory_order_relaxed) + more > limit) {
            cached *c = g_free[cls];
            g_free[cls] = c->next;
            atomic_fetch_sub_explicit(&g_cached, (int64_t)class_size(cls), memory_order_relaxed);
            g_evicted[cls]++;
            munmap(c, class_size(cls));
        }
    }
}

void *pag_storage_alloc(size_t bytes, size_t *capacity) {
    if (bytes < 64) bytes = 64;
    if (bytes < LARGE || size_class(bytes) + 2 >= CLASSES) {
        void *p = NULL;
        if (posix_memalign(&p, 64, bytes) != 0) return NULL;
        *capacity = bytes;
        note((int64_t)bytes);
        return p;
    }
    int want = size_class(bytes);
    void *p = NULL;
    size_t size = class_size(want);
    pthread_mutex_lock(&g_lock);
    for (int cls = want; cls <= want + 2 && !p; cls++) {
        cached *c = g_free[cls];
        if (!c) continue;
        g_free[cls] = c->next;
        size = class_size(cls);
        atomic_fetch_sub_explicit(&g_cached, (int64_t)size, memory_order_relaxed);
        p = c;
    }
    if (!p) {
        if (g_evicted[want] > 0) {  // churn: this class was unmapped to make room, and is wanted again
            g_evicted[want]--;
            g_slack += (int64_t)size;
        }
        evict_for((int64_t)size);
    }
    pthread_mutex_unlock(&g_lock);
    if (!p) {
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
    }
    *capacity = size;
    note((int64_t)size);
    return p;
}

void pag_storage_free(void *p, size_t capacity) {
    if (!p) return;
    note(-(int64_t)capacity);
    if (capacity < LARGE || size_class(capacity) + 2 >= CLASSES) {
        free(p);
        return;
    }
    // Freeing moves bytes from live to cached: the footprint stays; misses bound it (evict_for).
    int cls = size_class(capacity);
    cached *c = p;
    pthread_mutex_lock(&g_lock);
    c->next = g_free[cls];
    g_free[cls] = c;
    atomic_fetch_add_explicit(&g_cached, (int64_t)capacity, memory_order_relaxed);
    pthread_mutex_unlock(&g_lock);
}

int64_t pag_storage_live(void) { return atomic_load_explicit(&g_live, memory_order_relaxed); }
int64_t pag_storage_peak(void) { return atomic_load_explicit(&g_peak, memory_order_relaxed); }
int64_t pag_storage_cached(void) { return atomic_load_explicit(&g_cached, memory_order_relaxed); }
void pag_storage_reset_peak(void) {
    atomic_store_explicit(&g_peak, atomic_load_explicit(&g_live, memory_order_relaxed), memory_order_relaxed);
}

void *pag_buffer_reserve(pag_buffer *b, size_t bytes) {
    if (b->p && b->cap >= bytes) return b->p;
    pag_buffer_release(b);
    size_t cap = 0;
    void *p = pag_storage_alloc(bytes, &cap);
    if (!p) return NULL;
    b->p = p;
    b->cap = cap;
    return p;
}

void pag_buffer_release(pag_buffer *b) {
    if (b->p) pag_storage_free(b->p, b->cap);
    b->p = NULL;
    b->cap = 0;
}
