/* Process safety for the pag host: handle generations, the registry of live plugin call
 * contexts, and the last words of a process that a plugin crashed. Written in C because the
 * crash handler must only touch async-signal-safe state (thread-locals and static buffers). */
#ifndef PAG_SAFETY_H
#define PAG_SAFETY_H
#include <stdint.h>

/* A process-wide, never-repeating (until 2^31 stores) handle generation in 1...2^31-1. */
uint32_t pag_safety_next_generation(void);

/* A process-wide serial for call contexts (1, 2, 3, ...): what a pag_ctx pointer holds. */
uint64_t pag_safety_next_context_id(void);

/* The live call contexts of the calling thread, innermost last. `label` (kept by the caller
 * while the entry is live) says "plugin 'NAME' crashed in CALL" for the crash handler.
 * Returns 0 when the thread's stack of calls is full (the call must fail). */
int pag_safety_enter(uint64_t id, void *object, const char *label);
/* Removes the entry `id` (and anything above it, should a nested call not have left). */
void pag_safety_leave(uint64_t id);
/* The object of live context `id` on this thread, or NULL. */
void *pag_safety_lookup(uint64_t id);
/* The innermost live context object on this thread, or NULL. */
void *pag_safety_innermost(void);

/* Installs handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP and SIGABRT on an alternate
 * stack. They write one line naming the plugin call that was running ("Error: plugin 'X'
 * crashed in loss (signal 11, SIGSEGV)") and the hint, then exit with status 70, or, with
 * `reraise`, die of the signal as before (for child processes whose parent reads the signal). */
void pag_safety_install_crash_handler(int reraise);
/* A sentence appended to the crash line (copied; at most 1023 bytes). NULL clears it. */
void pag_safety_set_crash_hint(const char *hint);

/* A graceful stop on SIGUSR1 and SIGTERM (Slurm's warning before a time limit or a requeue),
 * taken by a thread of its own: the signals are blocked in the calling thread, and so in every
 * thread it starts later, and that thread takes them with sigwait and sets the flag that the
 * trainer reads after each step. No compute thread ever runs a handler: oneDNN 2.x's JIT sgemm
 * kernels point rsp into the heap while they run (oneDNN issue 4845, fixed in 3.11), so a
 * handler run inside one writes its signal frame over heap memory ("corrupted size vs.
 * prev_size" later). Call before any other thread starts. Returns 0, or -1 when no thread
 * could be started (the signals then keep their default action). */
int pag_safety_route_stop_signals(void);
int pag_safety_stop_requested(void);

#endif
