/* The host backend: kernels rendered to LLVM IR (codegen/llvm), optimized at
 * -O3 for the CPU found at run time, JIT-compiled with ORC LLJIT, cached on
 * disk as object files, and run in parallel on the runtime's thread pool.
 *
 * A HostBackend is the KernelLauncher context for rt_exec_run
 * (runtime/exec.h): pass rt_host_launch and the backend.  Kernels are
 * compiled on first launch, or ahead of time, in parallel, with
 * rt_host_prepare.
 *
 * Built only with LLVM (DSC_WITH_LLVM); otherwise rt_host_available() is
 * false and rt_host_create reports that the backend is not built, so
 * callers fall back to the interpreter.  See host_jit.c for the cache key
 * and what is cached. */
#ifndef DSC_RUNTIME_HOST_JIT_H
#define DSC_RUNTIME_HOST_JIT_H

#include <stdbool.h>
#include <stdint.h>

#include "../ir/kir.h"
#include "threadpool.h"

typedef struct HostBackend HostBackend;

typedef struct {
    ThreadPool *pool;      /* NULL: rt_threadpool_global() */
    const char *cache_dir; /* NULL: where the environment says (runtime/kcache.h) */
    bool no_cache;         /* no persistent cache (DSC_CACHE=0 does the same) */
    bool no_f16c;          /* do not use the CPU's f16 conversions (tests the integer path) */
} HostOptions;

typedef struct {
    int kernels;         /* kernel variants made ready (compiled or found) */
    int compiled;        /* of which optimized and code-generated here */
    int cache_hits;      /* of which loaded from the disk cache */
    int cache_corrupt;   /* cache entries found damaged (and rebuilt) */
    int cache_stores;    /* entries written */
    int shared;          /* variants whose code another variant already had */
    double compile_s;    /* wall time spent making kernels ready */
} HostStats;

/* Whether this build has the host backend. */
bool rt_host_available(void);

/* A backend for this machine's CPU.  Reports and returns NULL when the
 * backend is not built or LLVM cannot target the host.  opt may be NULL. */
HostBackend *rt_host_create(const HostOptions *opt, Diag *d);
void rt_host_destroy(HostBackend *hb);

/* Compiles every kernel of the program that is not ready yet, in parallel on
 * the pool (each as the launch will most likely need it: buffers that the
 * memory plan puts in one buffer share a pointer). */
bool rt_host_prepare(HostBackend *hb, const Graph *g, const KProgram *p, Diag *d);

/* The KernelLauncher (ctx is a HostBackend). */
bool rt_host_launch(void *ctx, const Graph *g, const Kernel *k, void *const *bufs, const int64_t *dims, Diag *d);

HostStats rt_host_stats(const HostBackend *hb);
/* "x86_64-pc-linux-gnu, cpu znver4, 512-bit vectors" and so on. */
const char *rt_host_describe(const HostBackend *hb);

/* The kernel's LLVM IR as text, before (optimized false) or after the -O3
 * pipeline; a malloc'd string, or NULL with an error.  For tests and dumps. */
char *rt_host_kernel_ir(HostBackend *hb, const Graph *g, const Kernel *k, bool optimized, Diag *d);

#endif
