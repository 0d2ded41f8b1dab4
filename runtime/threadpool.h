/* A fixed pool of worker threads for data-parallel loops.
 *
 * The pool is created once (the runtime owns one for the process,
 * rt_threadpool_global) and every kernel launch reuses it: no thread is
 * created per kernel.  rt_parallel_for splits [0, total) into chunks that the
 * calling thread and the workers take from a shared counter until none is
 * left, then returns when every chunk has run.  Small loops (total <= grain)
 * run on the caller alone, and a loop started from inside a pool task runs
 * inline too (no nested parallelism, so no deadlock). */
#ifndef DSC_RUNTIME_THREADPOOL_H
#define DSC_RUNTIME_THREADPOOL_H

#include <stdint.h>

typedef struct ThreadPool ThreadPool;

/* Runs the points [begin, end) of a loop. */
typedef void (*ParallelFn)(void *ctx, int64_t begin, int64_t end);

/* A pool of `nthreads` threads counting the caller (so nthreads - 1
 * workers); nthreads <= 0 means rt_threadpool_default_size().  NULL only if
 * memory or thread creation fails. */
ThreadPool *rt_threadpool_create(int nthreads);
void rt_threadpool_destroy(ThreadPool *p);
/* Threads that run a loop, the caller included. */
int rt_threadpool_size(const ThreadPool *p);
/* $DSC_THREADS if set to a positive number, else the CPUs this process may
 * run on. */
int rt_threadpool_default_size(void);
/* The process's pool, created on first use with the default size and kept
 * until exit. */
ThreadPool *rt_threadpool_global(void);

/* Calls fn(ctx, b, e) over disjoint chunks covering [0, total), each at least
 * `grain` points long (but the last), on the pool's threads; returns when all
 * are done.  Only one loop runs on a pool at a time (others wait).  p may be
 * NULL: everything runs on the caller. */
void rt_parallel_for(ThreadPool *p, int64_t total, int64_t grain, ParallelFn fn, void *ctx);

#endif
