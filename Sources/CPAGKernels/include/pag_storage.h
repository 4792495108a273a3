// pag_storage.h: the memory behind tensors. Buffers of 1 MiB and more are mappings of their
// own, so that freeing one hands it back whole: no heap fragmentation, and the resident set
// follows the live tensors (the heap's high-water mark does not). Freed mappings are kept in a
// cache by size class, so loops that allocate the same sizes every step reuse them without
// page faults; before a new mapping would take live + cached past the most ever live at once
// (plus a slack learned from sizes unmapped and then wanted again, at most as much again), idle
// mappings of other sizes are unmapped. Smaller buffers
// come from malloc. Counts of live, peak and cached bytes are kept with atomics.
#ifndef PAG_STORAGE_H
#define PAG_STORAGE_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// At least `bytes` bytes, 64-byte aligned, uninitialized; NULL when the system has no memory.
/// *capacity receives the size of what was given, which pag_storage_free takes back.
void *pag_storage_alloc(size_t bytes, size_t *capacity);
/// Frees what pag_storage_alloc returned, with the capacity it gave.
void pag_storage_free(void *p, size_t capacity);
/// Bytes of tensor storage live now; the most live at once (since the start or the last reset);
/// bytes of freed mappings kept for reuse.
int64_t pag_storage_live(void);
int64_t pag_storage_peak(void);
int64_t pag_storage_cached(void);
/// Sets the peak to the live bytes now.
void pag_storage_reset_peak(void);

/// A buffer kept between calls that only grows (the kernels' per-thread workspaces), from
/// pag_storage_alloc: a grown one hands its old memory back instead of leaving a hole in the heap.
typedef struct pag_buffer { void *p; size_t cap; } pag_buffer;
/// b's memory, grown to at least `bytes` (old contents not kept); NULL when out of memory.
void *pag_buffer_reserve(pag_buffer *b, size_t bytes);
/// Frees b's memory (b is then empty).
void pag_buffer_release(pag_buffer *b);

#ifdef __cplusplus
}
#endif
#endif
