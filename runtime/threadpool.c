/* The worker pool (see threadpool.h).
 *
 * Design: one job at a time (a submit mutex), published under a mutex with a
 * generation counter and a broadcast; the chunks are claimed from an atomic
 * counter by the caller and the workers alike (dynamic scheduling, so a slow
 * core does not hold the loop back), and the caller waits on a condition
 * variable until every worker that joined the job has left it.  Chunks are
 * about total / (4 x threads) points, never fewer than `grain`, so each
 * thread takes a few and the load evens out; a job only enlists as many
 * workers as it has chunks.  The cost of a loop is one broadcast and one
 * wake-up per enlisted worker (a few microseconds), against a kernel that
 * the launcher only parallelises when it is worth tens of microseconds. */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

struct ThreadPool {
    int n; /* threads counting the caller */
    pthread_t *threads;
    int nstarted;
    pthread_mutex_t submit; /* one job at a time */
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    uint64_t gen; /* job generation, under mu */
    bool stop;
    /* the current job (written under mu before gen changes) */
    ParallelFn fn;
    void *ctx;
    int64_t total, chunk;
    int enlisted; /* workers 0..enlisted-1 take part */
    int active;   /* enlisted workers not yet finished, under mu */
    _Atomic int64_t next;
};

typedef struct {
    ThreadPool *p;
    int index;
} WorkerArg;

static _Thread_local const ThreadPool *tls_in_pool; /* the pool whose task this thread runs */

static void run_chunks(ThreadPool *p, ParallelFn fn, void *ctx, int64_t total, int64_t chunk) {
    const ThreadPool *saved = tls_in_pool;
    tls_in_pool = p;
    for (;;) {
        int64_t b = atomic_fetch_add_explicit(&p->next, chunk, memory_order_relaxed);
        if (b >= total) break;
        int64_t e = total - b < chunk ? total : b + chunk;
        fn(ctx, b, e);
    }
    tls_in_pool = saved;
}

static void *worker(void *arg) {
    WorkerArg *wa = arg;
    ThreadPool *p = wa->p;
    int index = wa->index;
    free(wa);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && (p->gen == seen || index >= p->enlisted)) {
            if (p->gen != seen) seen = p->gen; /* a job without us */
            pthread_cond_wait(&p->wake, &p->mu);
        }
        if (p->stop) break;
        seen = p->gen;
        ParallelFn fn = p->fn;
        void *ctx = p->ctx;
        int64_t total = p->total, chunk = p->chunk;
        pthread_mutex_unlock(&p->mu);
        run_chunks(p, fn, ctx, total, chunk);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int rt_threadpool_default_size(void) {
    const char *v = getenv("DSC_THREADS");
    if (v && *v) {
        long n = strtol(v, NULL, 10);
        if (n > 0) return n > 1024 ? 1024 : (int)n;
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

ThreadPool *rt_threadpool_create(int nthreads) {
    if (nthreads <= 0) nthreads = rt_threadpool_default_size();
    ThreadPool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = nthreads;
    pthread_mutex_init(&p->submit, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    if (nthreads > 1) {
        p->threads = calloc((size_t)nthreads - 1, sizeof(pthread_t));
        if (!p->threads) {
            rt_threadpool_destroy(p);
            return NULL;
        }
        for (int i = 0; i < nthreads - 1; i++) {
            WorkerArg *wa = malloc(sizeof *wa);
            if (!wa) break;
            wa->p = p;
            wa->index = i;
            if (pthread_create(&p->threads[i], NULL, worker, wa) != 0) {
                free(wa);
                break;
            }
            p->nstarted++;
        }
        if (p->nstarted != nthreads - 1) {
            rt_threadpool_destroy(p);
            return NULL;
        }
    }
    return p;
}

void rt_threadpool_destroy(ThreadPool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nstarted; i++) pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->submit);
    free(p);
}

int rt_threadpool_size(const ThreadPool *p) { return p ? p->n : 1; }

static ThreadPool *global_pool;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void make_global(void) { global_pool = rt_threadpool_create(0); }

ThreadPool *rt_threadpool_global(void) {
    pthread_once(&global_once, make_global);
    return global_pool;
}

void rt_parallel_for(ThreadPool *p, int64_t total, int64_t grain, ParallelFn fn, void *ctx) {
    if (total <= 0) return;
    if (grain < 1) grain = 1;
    if (!p || p->n <= 1 || total <= grain || tls_in_pool == p) {
        fn(ctx, 0, total);
        return;
    }
    int64_t chunk = (total + 4 * (int64_t)p->n - 1) / (4 * (int64_t)p->n);
    if (chunk < grain) chunk = grain;
    int64_t nchunks = (total + chunk - 1) / chunk;
    if (nchunks <= 1) {
        fn(ctx, 0, total);
        return;
    }
    int workers = nchunks - 1 < p->n - 1 ? (int)(nchunks - 1) : p->n - 1;
    pthread_mutex_lock(&p->submit);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->total = total;
    p->chunk = chunk;
    p->enlisted = workers;
    p->active = workers;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    p->gen++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_chunks(p, fn, ctx, total, chunk);
    pthread_mutex_lock(&p->mu);
    while (p->active > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->submit);
}
