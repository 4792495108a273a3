#define _GNU_SOURCE
#include "pag_safety.h"
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint32_t generation_counter;
static uint64_t context_counter;

/* Each thread takes generations in blocks of 4096 from the shared counter, so the common case
 * is a thread-local increment. Generations are 31 bits and never 0; they repeat only after
 * 2^31 handles, and a stale handle then still has to hit the very same slot to alias. */
static _Thread_local uint32_t gen_next_, gen_limit_;

uint32_t pag_safety_next_generation(void) {
    for (;;) {
        if (gen_next_ == gen_limit_) {
            uint32_t block = __atomic_fetch_add(&generation_counter, 4096u, __ATOMIC_RELAXED);
            gen_next_ = block;
            gen_limit_ = block + 4096u;
        }
        uint32_t g = gen_next_++ & 0x7FFFFFFFu;
        if (g != 0) return g;
    }
}

uint64_t pag_safety_next_context_id(void) {
    return __atomic_add_fetch(&context_counter, 1, __ATOMIC_RELAXED);
}

#define MAX_DEPTH 256
typedef struct { uint64_t id; void *object; const char *label; } entry;
static _Thread_local entry stack_[MAX_DEPTH];
static _Thread_local int depth_;
static _Thread_local int altstack_ready_;
static int handler_installed_;

/* The label of the call most recently entered or returned to on any thread: the crash line's
 * fallback when a host worker thread crashes while a plugin's call is running. */
static char last_label_[256];

static void copy_label(const char *label) {
    if (!label) { last_label_[0] = 0; return; }
    size_t n = strlen(label);
    if (n >= sizeof last_label_) n = sizeof last_label_ - 1;
    memcpy(last_label_, label, n);
    last_label_[n] = 0;
}

static void setup_altstack(void) {
    if (altstack_ready_) return;
    altstack_ready_ = 1;
    stack_t ss;
    ss.ss_size = 1 << 16;
    ss.ss_sp = malloc(ss.ss_size);
    ss.ss_flags = 0;
    if (ss.ss_sp) sigaltstack(&ss, NULL);
}

int pag_safety_enter(uint64_t id, void *object, const char *label) {
    if (depth_ >= MAX_DEPTH) return 0;
    if (__atomic_load_n(&handler_installed_, __ATOMIC_RELAXED)) setup_altstack();
    stack_[depth_].id = id;
    stack_[depth_].object = object;
    stack_[depth_].label = label;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    depth_++;
    copy_label(label);
    return 1;
}

void pag_safety_leave(uint64_t id) {
    for (int i = depth_ - 1; i >= 0; i--) {
        if (stack_[i].id == id) {
            depth_ = i;
            copy_label(i > 0 ? stack_[i - 1].label : NULL);
            return;
        }
    }
}

void *pag_safety_lookup(uint64_t id) {
    for (int i = depth_ - 1; i >= 0; i--)
        if (stack_[i].id == id) return stack_[i].object;
    return NULL;
}

void *pag_safety_innermost(void) {
    for (int i = depth_ - 1; i >= 0; i--)
        if (stack_[i].object) return stack_[i].object;
    return NULL;
}

/* ---- the crash handler ---- */

static char hint_[1024];
static int reraise_;

static void put(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0) return;
        s += w; n -= (size_t)w;
    }
}

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGABRT: return "SIGABRT";
    default: return "signal";
    }
}

static void handler(int sig, siginfo_t *info, void *uc) {
    (void)info; (void)uc;
    char num[16];
    int n = 0, s = sig;
    char rev[16];
    do { rev[n++] = (char)('0' + s % 10); s /= 10; } while (s > 0 && n < 15);
    for (int i = 0; i < n; i++) num[i] = rev[n - 1 - i];
    num[n] = 0;

    const char *label = depth_ > 0 ? stack_[depth_ - 1].label : NULL;
    put("\nError: ");
    if (label) {
        put(label);
    } else if (last_label_[0]) {
        put(last_label_);
        put(" (on another thread)");
    } else {
        put("pag crashed outside any plugin call");
    }
    put(" (signal "); put(num); put(", "); put(signal_name(sig)); put(")");
    if (label || last_label_[0]) put("; a plugin shares pag's process, so pag stopped too");
    put(".");
    if (hint_[0]) { put(" "); put(hint_); }
    put("\n");
    if (reraise_) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    _exit(70);
}

void pag_safety_install_crash_handler(int reraise) {
    reraise_ = reraise;
    __atomic_store_n(&handler_installed_, 1, __ATOMIC_RELAXED);
    setup_altstack();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT};
    for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}

void pag_safety_set_crash_hint(const char *hint) {
    if (!hint) { hint_[0] = 0; return; }
    size_t n = strlen(hint);
    if (n >= sizeof hint_) n = sizeof hint_ - 1;
    memcpy(hint_, hint, n);
    hint_[n] = 0;
}

static volatile sig_atomic_t stop_flag = 0;

static void *stop_signal_waiter(void *unused) {
    (void)unused;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) == 0) stop_flag = 1;
    }
    return NULL;
}

int pag_safety_route_stop_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 1 << 16);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, stop_signal_waiter, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        return -1;
    }
    return 0;
}

int pag_safety_stop_requested(void) { return stop_flag != 0; }
