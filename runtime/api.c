/* The public C API (include/dsc.h) on the runtime.
 *
 * A model is loaded once: a DSG file through the frontend and the -O2 pass
 * pipeline, or a compiled model (.dsm, runtime/dsm.h: told apart by content,
 * or by the extension for a file too damaged to tell) as it is; its params
 * through rt_model_data_load (the weights file mapped -- a .dsm holds its
 * own -- or seeded random values); then, by device:
 *   cpu:  lowered to kernel IR (cg_lower), every kernel compiled ahead of
 *         time by the host JIT (rt_host_prepare, through the kernel cache) and
 *         the load-time constants computed once (rt_exec_constants);
 *   cuda: lowered and loaded onto the GPU (rt_cuda_model_load: NVRTC through
 *         the cache, params uploaded, constants computed);
 *   ref:  nothing more: the reference interpreter runs the optimized graph.
 * After the load the model is never written: graph, kernel program, params,
 * constant block and host backend are only read by runs.
 *
 * A session is one thread's state: an arena for the memory plan (sized by
 * rt_exec_layout at the dims the inputs bind, re-allocated only when a run
 * needs more than it has), the previous run's outputs, the error message and
 * the counters.  A run wraps the caller's buffers as tensors (no copy),
 * checks them (count, dtype, rank, sizes; then the dims with rt_bind_dims),
 * and runs with rt_exec_run_mem in the session's arena.
 *
 * Why many sessions on many threads work at once: rt_exec_run_mem keeps no
 * state; rt_host_launch looks kernel variants up in a table under the
 * backend's mutex and compiles a missing variant outside it (a variant two
 * threads compile at once is linked once, host_jit.c finish_job); the thread
 * pool serialises loops from different threads on its submit mutex
 * (threadpool.c); the kernel cache keeps its counters under a mutex
 * (kcache.c); LLVM and the CUDA driver are initialised under pthread_once.
 * The CUDA model (runtime/cuda_exec.h) is used by one thread at a time, so
 * the sessions of a cuda model take turns on a mutex of the model: a stream
 * per session (and CUDA Graph capture per binding) is deferred.
 *
 * Lifetimes: handles are reference counted (a model holds its context, a
 * session its model), so they may be destroyed in any order.  Error
 * messages: the diagnostics of a failed call, printed as `dsc` prints them,
 * kept in the handle until its next call. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../codegen/lower.h"
#include "../frontend/frontend.h"
#include "../passes/passes.h"
#include "cuda_exec.h"
#include "dsm.h"
#include "dsc.h"
#include "exec.h"
#include "host_jit.h"
#include "interp.h"
#include "run.h"
#include "sparse.h"
#include "threadpool.h"

_Static_assert(DSC_F32 == (int)DT_F32 && DSC_F16 == (int)DT_F16 && DSC_BF16 == (int)DT_BF16 &&
                   DSC_I8 == (int)DT_I8 && DSC_I32 == (int)DT_I32 && DSC_I64 == (int)DT_I64 &&
                   DSC_BOOL == (int)DT_BOOL && DSC_DTYPE_COUNT == (int)DT_COUNT,
               "dsc_dtype follows DType");
_Static_assert((int)DSC_MAX_RANK >= (int)IR_MAX_RANK, "DSC_MAX_RANK holds every rank");

struct dsc_context {
    atomic_int refs;
    pthread_mutex_t mu; /* errmsg */
    char *errmsg;
    dsc_device device;
    char *cache_dir;
    bool no_cache;
    ThreadPool *pool; /* owned; NULL: the process's pool */
};

struct dsc_model {
    atomic_int refs;
    dsc_context *ctx;
    Arena *arena; /* the graph, its kernel IR, the info strings */
    Graph *g;
    RtDsm dsm;      /* a compiled model: the open file (its metadata holds the graph text) */
    RtModelData md; /* the params (views into the mapped weights file, or random) */
    KProgram prog;
    dsc_device device;
    HostBackend *hb;          /* cpu */
    unsigned char *constants; /* cpu: the load-time constant block */
    CudaModel *cuda;          /* cuda */
    pthread_mutex_t cuda_mu;  /* one run at a time on the CUDA model */
    int nin;
    dsc_tensor_info *inputs, *outputs;
};

struct dsc_session {
    dsc_model *model;
    char *errmsg;
    unsigned char *arena;
    size_t arena_bytes;
    Tensor **outs; /* the previous run's outputs (session-owned) */
    Tensor **in;   /* wrappers of the caller's inputs, one per input */
    Tensor *in_store;
    int64_t *syms;
    dsc_stats stats;
};

/* ---- names --------------------------------------------------------------------- */

const char *dsc_dtype_name(dsc_dtype t) {
    return (unsigned)t < DSC_DTYPE_COUNT ? dtype_name((DType)t) : NULL;
}

size_t dsc_dtype_size(dsc_dtype t) {
    return (unsigned)t < DSC_DTYPE_COUNT ? (size_t)dtype_size((DType)t) : 0;
}

const char *dsc_device_name(dsc_device dev) {
    static const char *names[DSC_DEVICE_COUNT] = {"auto", "cpu", "cuda", "ref"};
    return (unsigned)dev < DSC_DEVICE_COUNT ? names[dev] : NULL;
}

/* ---- messages ------------------------------------------------------------------ */

/* The diagnostics as `dsc` prints them (malloc'd), or `fallback`. */
static char *diag_text(const Diag *d, const char *fallback) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = diag_count(d) > 0 ? open_memstream(&buf, &len) : NULL;
    if (f) {
        diag_print(d, f, true);
        fclose(f);
        while (len > 0 && buf[len - 1] == '\n')
            buf[--len] = 0;
    }
    return buf && *buf ? buf : (free(buf), strdup(fallback));
}

static char *vformat(const char *fmt, va_list ap) {
    char *s = NULL;
    return vasprintf(&s, fmt, ap) < 0 ? NULL : s;
}

/* The status of a failure the runtime reported as text: running out of host
 * or device memory (the interpreter's "cannot allocate f32[...]", the
 * driver's CUDA_ERROR_OUT_OF_MEMORY) is DSC_ERR_NO_MEMORY, the rest `other`. */
static dsc_status failure_status(const char *msg, dsc_status other) {
    if (msg &&
        (strstr(msg, "out of memory") || strstr(msg, "OUT_OF_MEMORY") || strstr(msg, "cannot allocate")))
        return DSC_ERR_NO_MEMORY;
    return other;
}

/* Replaces the message in *slot (under mu when given) with msg (taken). */
static dsc_status fail_msg(char **slot, pthread_mutex_t *mu, dsc_status st, char *msg) {
    if (mu) pthread_mutex_lock(mu);
    free(*slot);
    *slot = msg;
    if (mu) pthread_mutex_unlock(mu);
    return st;
}

static dsc_status fail_fmt(char **slot, pthread_mutex_t *mu, dsc_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static dsc_status fail_fmt(char **slot, pthread_mutex_t *mu, dsc_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *m = vformat(fmt, ap);
    va_end(ap);
    return fail_msg(slot, mu, st, m);
}

/* A failure the runtime reported into d: its diagnostics are the message,
 * and running out of memory is DSC_ERR_NO_MEMORY (else `st`). */
static dsc_status fail_diag(char **slot, pthread_mutex_t *mu, dsc_status st, const Diag *d,
                            const char *what) {
    char *m = diag_text(d, what);
    return fail_msg(slot, mu, failure_status(m, st), m);
}

/* A context's message is under its mutex (loads may run on several threads);
 * a session belongs to one thread. */
#define ctx_fail(c, st, msg) fail_msg(&(c)->errmsg, &(c)->mu, st, msg)
#define ctx_failf(c, st, ...) fail_fmt(&(c)->errmsg, &(c)->mu, st, __VA_ARGS__)
#define ctx_fail_diag(c, st, d, what) fail_diag(&(c)->errmsg, &(c)->mu, st, d, what)
#define sess_fail(s, st, msg) fail_msg(&(s)->errmsg, NULL, st, msg)
#define sess_failf(s, st, ...) fail_fmt(&(s)->errmsg, NULL, st, __VA_ARGS__)
#define sess_fail_diag(s, st, d, what) fail_diag(&(s)->errmsg, NULL, st, d, what)

/* ---- contexts ------------------------------------------------------------------- */

dsc_status dsc_context_create(const dsc_context_options *opts, dsc_context **out) {
    static const dsc_context_options defaults = {0};
    if (!out) return DSC_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!opts) opts = &defaults;
    if ((unsigned)opts->device >= DSC_DEVICE_COUNT) return DSC_ERR_INVALID_ARGUMENT;
    dsc_context *c = calloc(1, sizeof *c);
    if (!c) return DSC_ERR_NO_MEMORY;
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->mu, NULL);
    c->device = opts->device;
    c->no_cache = opts->no_cache != 0;
    bool ok = true;
    if (opts->cache_dir && !(c->cache_dir = strdup(opts->cache_dir))) ok = false;
    if (ok && opts->threads > 0 && !(c->pool = rt_threadpool_create(opts->threads))) ok = false;
    if (!ok) {
        dsc_context_destroy(c);
        return DSC_ERR_NO_MEMORY;
    }
    *out = c;
    return DSC_OK;
}

void dsc_context_destroy(dsc_context *c) {
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
    rt_threadpool_destroy(c->pool);
    free(c->cache_dir);
    free(c->errmsg);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

const char *dsc_context_errmsg(const dsc_context *c) {
    if (!c) return "no context (NULL)";
    return c->errmsg ? c->errmsg : "";
}

/* ---- models ---------------------------------------------------------------------- */

static void model_free(dsc_model *m) {
    if (!m) return;
    if (m->cuda) {
        Diag *d = diag_create();
        rt_cuda_model_free(m->cuda, d); /* release failures have nowhere to go: the model is gone */
        diag_destroy(d);
    }
    free(m->constants);
    rt_host_destroy(m->hb);
    rt_model_data_free(&m->md);
    rt_dsm_close(&m->dsm);
    free(m->inputs);
    free(m->outputs);
    pthread_mutex_destroy(&m->cuda_mu);
    arena_destroy(m->arena);
    dsc_context_destroy(m->ctx);
    free(m);
}

static void fill_info(dsc_model *m, dsc_tensor_info *info, const char *name, const Type *t) {
    *info = (dsc_tensor_info){.name = name, .dtype = (dsc_dtype)t->dtype, .rank = t->rank};
    for (int i = 0; i < t->rank; i++) {
        int64_t v;
        if (dim_is_const(m->g->dims, t->dim[i], &v)) {
            info->shape[i] = v;
        } else {
            info->shape[i] = -1;
            info->dim_names[i] = dim_str(m->g->dims, t->dim[i], m->arena);
        }
    }
}

static bool make_info(dsc_model *m) {
    const Graph *g = m->g;
    for (int i = 0; i < g->nnodes; i++)
        m->nin += g->nodes[i]->op == OP_INPUT;
    m->inputs = calloc((size_t)m->nin + 1, sizeof *m->inputs);
    m->outputs = calloc((size_t)g->noutputs + 1, sizeof *m->outputs);
    if (!m->inputs || !m->outputs) return false;
    for (int i = 0, k = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_INPUT) fill_info(m, &m->inputs[k++], g->nodes[i]->name, &g->nodes[i]->type);
    for (int i = 0; i < g->noutputs; i++)
        fill_info(m, &m->outputs[i], g->outputs[i].name, &g->outputs[i].node->type);
    return true;
}

/* Whether `path` can be read; else the reason in ctx. */
static dsc_status check_readable(dsc_context *ctx, const char *what, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return ctx_failf(ctx, DSC_ERR_IO, "%s: cannot open %s: %s", path, what, strerror(errno));
    fclose(f);
    return DSC_OK;
}

static bool has_params(const Graph *g) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_PARAM) return true;
    return false;
}

/* Lowers the graph and compiles its kernels for the host; constants once. */
static bool load_cpu(dsc_model *m, Diag *d) {
    HostOptions ho = {.pool = m->ctx->pool, .cache_dir = m->ctx->cache_dir, .no_cache = m->ctx->no_cache};
    size_t bytes;
    return (m->hb = rt_host_create(&ho, d)) && rt_host_prepare(m->hb, m->g, &m->prog, d) &&
           rt_exec_constants(m->g, &m->prog, m->md.params, rt_host_launch, m->hb, &m->constants, &bytes, d);
}

static bool load_cuda(dsc_model *m, Diag *d) {
    CudaModelOptions co = {.device = 0,
                           .cache_dir = m->ctx->cache_dir,
                           .no_cache = m->ctx->no_cache,
                           .threads = m->ctx->pool ? rt_threadpool_size(m->ctx->pool) : 0};
    return rt_cuda_model_load(m->g, &m->prog, m->md.params, &co, &m->cuda, d);
}

/* Everything after the graph is parsed: passes, params, device. */
static dsc_status load_model(dsc_model *m, const char *path, const dsc_model_options *opts, Diag *d) {
    dsc_context *ctx = m->ctx;
    PipelineOptions po = {.opt_level = 2};
    if (!m->dsm.graph && !pass_run_pipeline(m->g, d, &po)) /* a .dsm is optimized already */
        return ctx_fail(ctx, DSC_ERR_DIAGNOSTICS, diag_text(d, "the passes failed"));

    /* params */
    RunOptions ro = {.params_only = true,
                     .random_weights = opts->random_weights != 0,
                     .seed = opts->seed,
                     .weights = opts->weights};
    if (ro.random_weights) {
        /* a copy as written chooses the random ranges, as `dsc run --random-weights` does */
        if (!(ro.as_written = fe_compile_file(m->arena, d, path)))
            return ctx_fail(ctx, DSC_ERR_DIAGNOSTICS, diag_text(d, "cannot compile the model"));
    } else if (has_params(m->g)) {
        char *wpath = rt_weights_path(m->g, path, opts->weights);
        dsc_status st = wpath ? check_readable(ctx, "the weights file", wpath) : DSC_OK;
        free(wpath);
        if (st != DSC_OK) return st;
    }
    if (!rt_model_data_load(m->g, path, &ro, &m->md, d) || !rt_check_params(m->g, m->md.params, d))
        return ctx_fail(ctx, DSC_ERR_FORMAT, diag_text(d, "cannot load the weights"));

    /* the device */
    dsc_device dev = ctx->device;
    char why[600] = "";
    bool cuda_ok = dev == DSC_DEVICE_AUTO || dev == DSC_DEVICE_CUDA ? rt_cuda_usable(why, sizeof why) : false;
    if (dev == DSC_DEVICE_CUDA && !cuda_ok)
        return ctx_failf(ctx, DSC_ERR_NO_DEVICE, "%s: device 'cuda' is not available: %s", path, why);
    if (dev == DSC_DEVICE_CPU && !rt_host_available())
        return ctx_failf(ctx, DSC_ERR_NO_DEVICE,
                         "%s: device 'cpu' is not available: the host backend is not built "
                         "(dsc was configured with -DDSC_WITH_LLVM=OFF)",
                         path);
    if (dev == DSC_DEVICE_AUTO)
        dev = cuda_ok ? DSC_DEVICE_CUDA : rt_host_available() ? DSC_DEVICE_CPU : DSC_DEVICE_REF;
    if (dev != DSC_DEVICE_REF) rt_sparse_decide_hwdb(m->g, dev == DSC_DEVICE_CUDA); /* sparse vs dense per layer */
    if (dev != DSC_DEVICE_REF && !cg_lower(m->g, &m->prog, d))
        return ctx_fail_diag(ctx, DSC_ERR_RUNTIME, d, "lowering failed");
    if (dev == DSC_DEVICE_CUDA && !load_cuda(m, d)) {
        if (ctx->device == DSC_DEVICE_CUDA || !rt_host_available())
            return ctx_fail_diag(ctx, DSC_ERR_RUNTIME, d, "the GPU cannot load the model");
        diag_clear(d); /* auto: the host instead */
        dev = DSC_DEVICE_CPU;
    }
    if (dev == DSC_DEVICE_CPU && !load_cpu(m, d))
        return ctx_fail_diag(ctx, DSC_ERR_RUNTIME, d, "the host backend cannot compile the model");
    m->device = dev;
    if (!make_info(m)) return ctx_failf(ctx, DSC_ERR_NO_MEMORY, "%s: out of memory", path);
    return DSC_OK;
}

dsc_status dsc_model_load(dsc_context *ctx, const char *path, const dsc_model_options *opts,
                          dsc_model **out) {
    static const dsc_model_options defaults = {0};
    if (out) *out = NULL;
    if (!ctx) return DSC_ERR_INVALID_ARGUMENT;
    if (!path || !out)
        return ctx_failf(ctx, DSC_ERR_INVALID_ARGUMENT, "dsc_model_load: %s is NULL",
                         path ? "model" : "path");
    if (!opts) opts = &defaults;
    dsc_status st = check_readable(ctx, "the model", path);
    if (st != DSC_OK) return st;
    dsc_model *m = calloc(1, sizeof *m);
    Diag *d = diag_create();
    if (!m || !d || !(m->arena = arena_create())) {
        free(m);
        diag_destroy(d);
        return ctx_failf(ctx, DSC_ERR_NO_MEMORY, "%s: out of memory", path);
    }
    atomic_init(&m->refs, 1);
    pthread_mutex_init(&m->cuda_mu, NULL);
    atomic_fetch_add(&ctx->refs, 1);
    m->ctx = ctx;
    size_t n = strlen(path);
    if (rt_dsm_is(path) || (n > 4 && strcmp(path + n - 4, ".dsm") == 0)) { /* a compiled model */
        if (opts->weights || opts->random_weights)
            st = ctx_failf(ctx, DSC_ERR_INVALID_ARGUMENT,
                           "%s: a compiled model (.dsm) carries its weights: give neither weights nor "
                           "random_weights",
                           path);
        else if (!rt_dsm_open(path, m->arena, &m->dsm, d))
            st = ctx_fail(ctx, DSC_ERR_FORMAT, diag_text(d, "not a usable compiled model"));
        else
            m->g = m->dsm.graph;
    } else if (!(m->g = fe_compile_file(m->arena, d, path))) {
        st = ctx_fail(ctx, DSC_ERR_DIAGNOSTICS, diag_text(d, "cannot compile the model"));
    }
    if (st == DSC_OK) st = load_model(m, path, opts, d);
    diag_destroy(d);
    if (st != DSC_OK) {
        model_free(m);
        return st;
    }
    ctx_fail(ctx, DSC_OK, NULL); /* the message of this call: none */
    *out = m;
    return DSC_OK;
}

void dsc_model_destroy(dsc_model *m) {
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) model_free(m);
}

const char *dsc_model_name(const dsc_model *m) { return m ? m->g->name : NULL; }

dsc_device dsc_model_device(const dsc_model *m) { return m ? m->device : DSC_DEVICE_COUNT; }

int dsc_model_input_count(const dsc_model *m) { return m ? m->nin : -1; }

int dsc_model_output_count(const dsc_model *m) { return m ? m->g->noutputs : -1; }

dsc_status dsc_model_input_info(const dsc_model *m, int i, dsc_tensor_info *info) {
    if (!m || !info || i < 0 || i >= m->nin) return DSC_ERR_INVALID_ARGUMENT;
    *info = m->inputs[i];
    return DSC_OK;
}

dsc_status dsc_model_output_info(const dsc_model *m, int i, dsc_tensor_info *info) {
    if (!m || !info || i < 0 || i >= m->g->noutputs) return DSC_ERR_INVALID_ARGUMENT;
    *info = m->outputs[i];
    return DSC_OK;
}

int dsc_model_dim_count(const dsc_model *m) { return m ? dim_sym_count(m->g->dims) : -1; }

dsc_status dsc_model_dim_info(const dsc_model *m, int i, const char **name, int64_t *bound) {
    if (!m || i < 0 || i >= dim_sym_count(m->g->dims)) return DSC_ERR_INVALID_ARGUMENT;
    int64_t b = dim_sym_bound(m->g->dims, i);
    if (name) *name = dim_sym_name(m->g->dims, i);
    if (bound) *bound = b > 0 ? b : -1;
    return DSC_OK;
}

/* ---- sessions ---------------------------------------------------------------------- */

static void free_outputs(dsc_session *s) {
    for (int i = 0; i < s->model->g->noutputs; i++) {
        rt_tensor_free(s->outs[i]);
        s->outs[i] = NULL;
    }
}

dsc_status dsc_session_create(dsc_model *m, dsc_session **out) {
    if (!out) return DSC_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!m) return DSC_ERR_INVALID_ARGUMENT;
    dsc_session *s = calloc(1, sizeof *s);
    if (!s) return DSC_ERR_NO_MEMORY;
    s->model = m;
    s->outs = calloc((size_t)m->g->noutputs + 1, sizeof *s->outs);
    s->in = calloc((size_t)m->nin + 1, sizeof *s->in);
    s->in_store = calloc((size_t)m->nin + 1, sizeof *s->in_store);
    s->syms = calloc((size_t)dim_sym_count(m->g->dims) + 1, sizeof *s->syms);
    if (!s->outs || !s->in || !s->in_store || !s->syms) {
        free(s->outs);
        free(s->in);
        free(s->in_store);
        free(s->syms);
        free(s);
        return DSC_ERR_NO_MEMORY;
    }
    atomic_fetch_add(&m->refs, 1);
    *out = s;
    return DSC_OK;
}

void dsc_session_destroy(dsc_session *s) {
    if (!s) return;
    free_outputs(s);
    free(s->outs);
    free(s->in);
    free(s->in_store);
    free(s->syms);
    free(s->arena);
    free(s->errmsg);
    dsc_model_destroy(s->model);
    free(s);
}

const char *dsc_session_errmsg(const dsc_session *s) {
    if (!s) return "no session (NULL)";
    return s->errmsg ? s->errmsg : "";
}

dsc_status dsc_session_stats(const dsc_session *s, dsc_stats *stats) {
    if (!s || !stats) return DSC_ERR_INVALID_ARGUMENT;
    *stats = s->stats;
    return DSC_OK;
}

/* Checks the caller's inputs against the declarations (count, dtype, rank,
 * buffer size) and wraps them as tensors in s->in. */
static dsc_status wrap_inputs(dsc_session *s, const dsc_tensor *inputs, int ninputs) {
    const dsc_model *m = s->model;
    if (ninputs != m->nin)
        return sess_failf(s, DSC_ERR_INVALID_ARGUMENT, "model '%s' has %d input%s, %d given", m->g->name,
                          m->nin, m->nin == 1 ? "" : "s", ninputs);
    if (ninputs > 0 && !inputs) return sess_failf(s, DSC_ERR_INVALID_ARGUMENT, "inputs is NULL");
    for (int i = 0; i < ninputs; i++) {
        const dsc_tensor *t = &inputs[i];
        const dsc_tensor_info *want = &m->inputs[i];
        if ((unsigned)t->dtype >= DSC_DTYPE_COUNT || t->dtype != want->dtype)
            return sess_failf(s, DSC_ERR_INVALID_ARGUMENT, "input %d ('%s'): dtype %s, the model declares %s",
                              i, want->name,
                              dsc_dtype_name(t->dtype) ? dsc_dtype_name(t->dtype) : "(invalid)",
                              dsc_dtype_name(want->dtype));
        if (t->rank != want->rank)
            return sess_failf(s, DSC_ERR_INVALID_ARGUMENT,
                              "input %d ('%s'): rank %d, the model declares rank %d", i, want->name, t->rank,
                              want->rank);
        for (int k = 0; k < t->rank; k++)
            if (t->shape[k] < 0)
                return sess_failf(s, DSC_ERR_SHAPE, "input %d ('%s'): dimension %d is negative (%lld)", i,
                                  want->name, k, (long long)t->shape[k]);
        int64_t n = rt_numel(t->rank, t->shape);
        size_t need;
        if (n < 0 || __builtin_mul_overflow((size_t)n, dsc_dtype_size(t->dtype), &need))
            return sess_failf(s, DSC_ERR_SHAPE, "input %d ('%s'): the shape is too large", i, want->name);
        if (t->nbytes != need)
            return sess_failf(s, DSC_ERR_INVALID_ARGUMENT,
                              "input %d ('%s'): nbytes is %zu, its shape needs %zu", i, want->name, t->nbytes,
                              need);
        if (!t->data && need > 0)
            return sess_failf(s, DSC_ERR_INVALID_ARGUMENT, "input %d ('%s'): data is NULL", i, want->name);
        Tensor *w = &s->in_store[i];
        *w = (Tensor){
            .dtype = (DType)t->dtype, .rank = t->rank, .data = t->data, .nbytes = need, .owned = false};
        memcpy(w->shape, t->shape, sizeof(int64_t) * (size_t)t->rank);
        s->in[i] = w;
    }
    return DSC_OK;
}

/* Makes the arena big enough for the layout at s->syms (cpu). */
static dsc_status grow_arena(dsc_session *s, Diag *d) {
    const dsc_model *m = s->model;
    RtExecLayout L = {0};
    bool ok = rt_exec_layout(m->g, &m->prog, s->syms, &L, d);
    size_t need = L.arena_bytes;
    rt_exec_layout_free(&L);
    if (!ok) return sess_fail_diag(s, DSC_ERR_RUNTIME, d, "cannot lay the run out");
    if (need <= s->arena_bytes) return DSC_OK;
    free(s->arena);
    s->arena_bytes = 0;
    if (!(s->arena = aligned_alloc(RT_EXEC_ALIGN, need)))
        return sess_failf(s, DSC_ERR_NO_MEMORY, "%s: out of memory: the run needs an arena of %zu bytes",
                          m->g->name, need);
    s->arena_bytes = need;
    s->stats.arena_bytes = need;
    if (need > s->stats.peak_arena_bytes) s->stats.peak_arena_bytes = need;
    s->stats.arena_grows++;
    return DSC_OK;
}

static dsc_status run_device(dsc_session *s, Diag *d) {
    dsc_model *m = s->model;
    bool ok;
    if (m->device == DSC_DEVICE_CPU) {
        dsc_status st = grow_arena(s, d);
        if (st != DSC_OK) return st;
        RtExecMem mem = {.arena = s->arena, .arena_bytes = s->arena_bytes, .constants = m->constants};
        ok = rt_exec_run_mem(m->g, &m->prog, s->in, m->nin, m->md.params, &mem, s->outs, rt_host_launch,
                             m->hb, d);
    } else if (m->device == DSC_DEVICE_CUDA) {
        pthread_mutex_lock(&m->cuda_mu);
        ok = rt_cuda_model_run(m->cuda, s->in, m->nin, s->outs, d);
        pthread_mutex_unlock(&m->cuda_mu);
    } else {
        ok = rt_interp_run(m->g, s->in, m->nin, m->md.params, s->outs, d);
    }
    return ok ? DSC_OK : sess_fail_diag(s, DSC_ERR_RUNTIME, d, "the run failed");
}

/* Hands output i to the caller: the session's tensor, or copied into the
 * caller's buffer. */
static dsc_status give_output(dsc_session *s, int i, dsc_tensor *o) {
    const Tensor *t = s->outs[i];
    const dsc_tensor_info *want = &s->model->outputs[i];
    if (o->data) {
        if (o->dtype != (dsc_dtype)t->dtype)
            return sess_failf(s, DSC_ERR_INVALID_ARGUMENT,
                              "output %d ('%s'): the buffer is %s, the output is %s", i, want->name,
                              dsc_dtype_name(o->dtype) ? dsc_dtype_name(o->dtype) : "(invalid)",
                              dsc_dtype_name((dsc_dtype)t->dtype));
        if (o->nbytes < t->nbytes) {
            size_t have = o->nbytes;
            o->nbytes = t->nbytes;
            return sess_failf(s, DSC_ERR_INVALID_ARGUMENT,
                              "output %d ('%s'): the buffer has %zu bytes, %zu needed", i, want->name, have,
                              t->nbytes);
        }
        if (t->nbytes) memcpy(o->data, t->data, t->nbytes);
    } else {
        o->data = t->data;
        o->dtype = (dsc_dtype)t->dtype;
    }
    o->rank = t->rank;
    memset(o->shape, 0, sizeof o->shape);
    memcpy(o->shape, t->shape, sizeof(int64_t) * (size_t)t->rank);
    o->nbytes = t->nbytes;
    return DSC_OK;
}

dsc_status dsc_session_run(dsc_session *s, const dsc_tensor *inputs, int ninputs, dsc_tensor *outputs,
                           int noutputs) {
    if (!s) return DSC_ERR_INVALID_ARGUMENT;
    free(s->errmsg);
    s->errmsg = NULL;
    free_outputs(s);
    const dsc_model *m = s->model;
    if (noutputs != m->g->noutputs)
        return sess_failf(s, DSC_ERR_INVALID_ARGUMENT, "model '%s' has %d output%s, %d given", m->g->name,
                          m->g->noutputs, m->g->noutputs == 1 ? "" : "s", noutputs);
    if (noutputs > 0 && !outputs) return sess_failf(s, DSC_ERR_INVALID_ARGUMENT, "outputs is NULL");
    dsc_status st = wrap_inputs(s, inputs, ninputs);
    if (st != DSC_OK) return st;
    Diag *d = diag_create();
    if (!d) return sess_failf(s, DSC_ERR_NO_MEMORY, "out of memory");
    if (!rt_bind_dims(m->g, s->in, m->nin, s->syms, d))
        st = sess_fail(s, DSC_ERR_SHAPE, diag_text(d, "the inputs do not fit the model"));
    else
        st = run_device(s, d);
    diag_destroy(d);
    for (int i = 0; st == DSC_OK && i < noutputs; i++)
        st = give_output(s, i, &outputs[i]);
    if (st != DSC_OK) {
        free_outputs(s);
        return st;
    }
    s->stats.runs++;
    return DSC_OK;
}
