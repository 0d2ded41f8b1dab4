/* The CUDA backend's executor (see cuda_exec.h).
 *
 * Why an executor of its own rather than a KernelLauncher for rt_exec_run:
 * rt_exec_run is one whole run in host memory (the launcher gets host
 * pointers, load-time kernels run every time).  On a GPU the memory is the
 * device's, the weights stay resident between runs and the constant groups
 * are computed once, so the loop differs; what must not differ is where each
 * value lives.  So the placement rules moved into rt_exec_layout (exec.c):
 * a layout gives every value a home (an input, a param, an offset in the
 * constant block or in the run arena) and says nothing of addresses; the
 * host executor and this one each turn homes into addresses of their memory.
 *
 * Device memory, two blocks:
 *   weights: the params (each 256-byte aligned, uploaded at load), then the
 *            constant block of the layout (values of load-time constant
 *            groups, computed at load by the load-time kernels);
 *   run:     the inputs (each 256-byte aligned), then the layout's arena (the
 *            memory plan's buffers and the values of their own).  Allocated
 *            for the first run and again only when a binding of the dims
 *            needs more; zeroed when allocated.
 * Two allocations per model, whatever its size: no allocator of our own.
 *
 * Ordering: every copy and kernel goes on the model's one stream (a
 * non-blocking stream, so work on the legacy default stream never
 * interleaves).  Inputs are copied with cuMemcpyHtoDAsync from the caller's
 * (pageable) memory, which the driver stages before returning, so the caller
 * may reuse it at once; outputs are copied with cuMemcpyDtoHAsync into the new
 * host tensors and the stream is synchronised before they are returned.  The
 * one synchronous call is cuMemsetD8 (zeroing a new block), followed by a
 * context synchronisation because it runs on the legacy stream.
 *
 * Launches follow the kernel ABI (codegen/cuda/render.h): the argument list
 * of the kernel record (a device pointer per Kernel.bufs entry, then a long
 * long per dim symbol), 1-D, blockDim = the record's block, gridDim from
 * cg_cuda_grid capped at four waves of the device (the kernels are
 * grid-stride loops). */
#include "cuda_exec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../codegen/cuda/render.h"
#include "../codegen/cuda/schedule.h"
#include "../ir/trap.h"
#include "cublaslt.h"
#include "cuda_driver.h"
#include "exec.h"
#include "hwdb.h"
#include "interp.h"
#include "nvrtc.h"

enum { DEV_ALIGN = 256, WAVES = 4 };

/* cuBLASLt's workspace: 32 MiB, what NVIDIA recommends for Hopper. */
#define BLAS_WORKSPACE ((size_t)32 << 20)

/* A kernel that may run through cuBLASLt (docs/cuda.md, "cuBLASLt"). */
typedef struct {
    bool on; /* cg_cuda_blas_plan fits and the tactic uses the library */
    CudaBlasPlan plan;
    /* the binding the op was made for: the dims and the pointers' alignment */
    bool have_key;
    int64_t *key;
    unsigned key_align;
    RtGemmOp *op;       /* NULL at this binding: the generated kernel runs (why says why) */
    bool empty;         /* nothing to compute at this binding */
    int64_t outer;      /* calls of the op (a second batch dimension) */
    int64_t oa, ob, od; /* their element strides */
    char why[400];
    bool warned; /* the fallback of this binding was reported */
    bool used;   /* the last run went through cuBLASLt */
} BlasKernel;

struct CudaModel {
    const Graph *g;
    const KProgram *p;
    CudaDevice dev;
    CudaLoadStats stats;
    Diag *tmp;           /* a scratch Diag: driver messages are relayed from it with context */
    Diag *quiet;         /* where failures of releases after a fault go (dropped) */
    bool ctx_held;       /* the primary context is retained */
    bool fault_reported; /* this call reported a failed launch or synchronisation (see sink) */
    RtCuStream stream;
    bool have_stream;
    CudaBuild build;
    bool have_build;
    RtCuModule *mods; /* per kernel; NULL where not loaded */
    RtCuFunction *funcs;
    int64_t max_blocks; /* grid cap */
    int nsym, ninputs, nparams;
    Tensor *param_hdr;   /* the params' dtypes and shapes (data NULL), for the per-run check */
    Tensor **param_ptrs; /* pointers to param_hdr[i] (what rt_check_params_bound takes) */
    size_t *param_off;   /* in the weights block */
    size_t const_base;   /* where the constant block starts in the weights block */
    size_t trap_off;     /* the KTrapRecord (ir/trap.h) at the end of the weights block */
    KTrapRecord trap;    /* its copy on the host */
    RtCuDevptr weights;
    size_t weights_bytes;
    RtExecLayout cl; /* the load-time layout: constant homes */
    RtCuDevptr run;  /* the run block */
    size_t run_bytes;
    size_t *in_off;    /* inputs in the run block */
    size_t arena_base; /* the arena in the run block */
    RtExecLayout L;    /* the layout of the current binding */
    int64_t *syms;     /* the current binding */
    /* launch scratch, as long as the longest argument list */
    int maxargs;
    void **args;
    RtCuDevptr *ptrs;
    long long *dimv;
    int since_sync; /* first kernel launched since the last synchronisation, or -1 */
    int last_launched;
    /* the cuBLASLt tactic */
    CudaGemmTactic gemm;
    BlasKernel *blas; /* per kernel, NULL when no kernel uses the library */
    RtBlasHandle *blas_handle;
    RtCuDevptr blas_ws;
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

/* Reports the errors and warnings of `from` into d, each as "<what>: message".
 * Returns false (for use as `return relay(...)` after a failed call). */
static bool relay(Diag *from, Diag *d, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool relay(Diag *from, Diag *d, const char *fmt, ...) {
    char what[512] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
    }
    for (int i = 0; i < diag_count(from); i++) {
        DiagLevel level;
        Loc loc;
        const char *msg = diag_message(from, i, &level, &loc);
        if (*what)
            diag_report(d, level, loc, "%s: %s", what, msg);
        else
            diag_report(d, level, loc, "%s", msg);
    }
    diag_clear(from);
    return false;
}

/* ---- the device ---------------------------------------------------------------- */

bool rt_cuda_usable(char *why, size_t n) {
    if (!rt_cuda_available(why, n)) return false;
    return rt_nvrtc_available(why, n);
}

bool rt_cuda_device_select(int ordinal, CudaDevice *out, Diag *d) {
    memset(out, 0, sizeof *out);
    out->ordinal = ordinal;
    out->block = CG_CUDA_DEFAULT_BLOCK;
    int count = 0;
    if (!rt_cuda_init(d) || !rt_cuda_device_count(&count, d)) return false;
    if (ordinal < 0 || ordinal >= count) {
        diag_error(d, (Loc){0}, "there is no CUDA device %d (the driver lists %d)", ordinal, count);
        return false;
    }
    RtCudaDeviceInfo info;
    if (!rt_cuda_device_info(ordinal, &info, d) || !rt_cuda_driver_version(&out->driver_version, d))
        return false;
    snprintf(out->name, sizeof out->name, "%s", info.name);
    out->cc_major = info.cc_major;
    out->cc_minor = info.cc_minor;
    out->sm = info.cc_major * 10 + info.cc_minor;
    out->sm_count = info.sm_count;
    out->max_threads_per_sm = info.max_threads_per_sm;
    out->total_mem = info.total_mem;

    Diag *quiet = diag_create();
    HwDb *db = rt_hwdb_open_default(NULL, 0, quiet);
    if (!db) {
        snprintf(out->hwdb_how, sizeof out->hwdb_how, "no hardware database (%s)",
                 diag_count(quiet) ? diag_message(quiet, 0, NULL, NULL) : "not found");
        diag_destroy(quiet);
        return true; /* the builder warns and uses its default block */
    }
    diag_clear(quiet);
    HwSelection sel;
    HwQuery q = {
        .name = out->name, .cc_major = out->cc_major, .cc_minor = out->cc_minor, .sms = out->sm_count};
    bool ok = rt_hwdb_select(db, &q, &sel, quiet);
    if (!ok) {
        relay(quiet, d, "CUDA device %d (%s, compute capability %d.%d) cannot be used", ordinal, out->name,
              out->cc_major, out->cc_minor);
    } else {
        snprintf(out->hwdb_arch, sizeof out->hwdb_arch, "%s", sel.entry->arch);
        snprintf(out->hwdb_how, sizeof out->hwdb_how, "%s", sel.reason);
        const HwKernelConfig *kc = rt_hwdb_kernel_class(sel.entry, HW_K_ELEMENTWISE);
        int threads = kc ? (int)rt_hwdb_param(kc, "threads", CG_CUDA_DEFAULT_BLOCK) : CG_CUDA_DEFAULT_BLOCK;
        if (threads >= 32 && threads <= 1024) out->block = threads;
        if (sel.caveat[0])
            diag_warning(d, loc_file(rt_hwdb_path(db)), "CUDA device %d (%s): %s", ordinal, out->name,
                         sel.caveat);
    }
    diag_destroy(quiet);
    rt_hwdb_free(db);
    return ok;
}

/* ---- the context ------------------------------------------------------------------ */

/* Where the failures of the closing calls (synchronisation, releases) go: d,
 * or, once a failed launch or synchronisation was reported, nowhere.  After an
 * asynchronous fault the context is unusable and every later call fails with
 * the same error; the fault was reported, repeating it per call is noise. */
static Diag *sink(CudaModel *m, Diag *d) {
    diag_clear(m->quiet);
    return m->fault_reported ? m->quiet : d;
}

/* Retains the device's primary context and makes it current on this thread:
 * one retain on success, none on failure (a retain whose set-current failed
 * is undone). */
static bool acquire(CudaModel *m, Diag *d) {
    RtCuContext ctx;
    if (rt_cuda_context_acquire(m->dev.ordinal, &ctx, m->tmp)) return true;
    bool retained = false;
    for (int i = 0; i < diag_count(m->tmp); i++)
        retained |= strstr(diag_message(m->tmp, i, NULL, NULL), "cuCtxSetCurrent") != NULL;
    relay(m->tmp, d, "CUDA device %d (%s)", m->dev.ordinal, m->dev.name);
    if (retained) rt_cuda_context_release(m->dev.ordinal, sink(m, d));
    return false;
}

/* ---- freeing --------------------------------------------------------------------- */

void rt_cuda_model_free(CudaModel *m, Diag *d) {
    if (!m) return;
    bool entered = m->ctx_held && acquire(m, m->quiet); /* current on this thread */
    /* a context broken by a fault: the releases fail as every call does */
    diag_clear(m->quiet);
    m->fault_reported = m->have_stream && !rt_cuda_stream_synchronize(m->stream, m->quiet);
    for (int i = 0; m->mods && i < m->p->nkernels; i++)
        if (m->mods[i] && !rt_cuda_module_unload(m->mods[i], m->tmp))
            relay(m->tmp, sink(m, d), "kernel %s", m->p->kernels[i]->name);
    for (int i = 0; m->blas && i < m->p->nkernels; i++) {
        if (m->blas[i].op && !rt_gemm_op_destroy(m->blas[i].op, m->tmp))
            relay(m->tmp, sink(m, d), "kernel %s (cuBLASLt)", m->p->kernels[i]->name);
        free(m->blas[i].key);
    }
    if (m->blas_handle && !rt_cublaslt_destroy(m->blas_handle, m->tmp)) relay(m->tmp, sink(m, d), NULL);
    if (m->blas_ws) rt_cuda_mem_free(m->blas_ws, sink(m, d));
    free(m->blas);
    if (m->run) rt_cuda_mem_free(m->run, sink(m, d));
    if (m->weights) rt_cuda_mem_free(m->weights, sink(m, d));
    if (m->have_stream) rt_cuda_stream_destroy(m->stream, sink(m, d));
    if (entered) rt_cuda_context_release(m->dev.ordinal, sink(m, d));
    if (m->ctx_held) rt_cuda_context_release(m->dev.ordinal, sink(m, d)); /* the load's */
    if (m->have_build) rt_cuda_build_free(&m->build);
    rt_exec_layout_free(&m->cl);
    rt_exec_layout_free(&m->L);
    free(m->mods);
    free(m->funcs);
    free(m->param_hdr);
    free(m->param_ptrs);
    free(m->param_off);
    free(m->in_off);
    free(m->syms);
    free(m->args);
    free(m->ptrs);
    free(m->dimv);
    diag_destroy(m->tmp);
    diag_destroy(m->quiet);
    free(m);
}

const CudaDevice *rt_cuda_model_device(const CudaModel *m) { return &m->dev; }

const CudaLoadStats *rt_cuda_model_load_stats(const CudaModel *m) { return &m->stats; }

/* ---- launching -------------------------------------------------------------------- */

/* The device address of a home. */
static RtCuDevptr dev_addr(const CudaModel *m, const RtHome *h) {
    switch (h->kind) {
    case RT_HOME_INPUT: return m->run + m->in_off[h->index];
    case RT_HOME_PARAM: return m->weights + m->param_off[h->index];
    case RT_HOME_CONSTANT: return m->weights + m->const_base + h->offset;
    case RT_HOME_ARENA: return m->run + m->arena_base + h->offset;
    default: return 0;
    }
}

/* The kernels launched since the last synchronisation ("a, b, c"), for a
 * failure the driver reports later; returns how many. */
static int pending_kernels(const CudaModel *m, char *buf, size_t n) {
    buf[0] = 0;
    if (m->since_sync < 0) return 0;
    int first = m->since_sync, last = m->last_launched, shown = 0;
    size_t off = 0;
    for (int i = first; i <= last && off < n; i++) {
        if (shown == 6 && last - i > 1) {
            off += (size_t)snprintf(buf + off, n - off, ", ... (%d more), %s", last - i - 1,
                                    m->p->kernels[last]->name);
            break;
        }
        off += (size_t)snprintf(buf + off, n - off, "%s%s", shown ? ", " : "", m->p->kernels[i]->name);
        shown++;
    }
    return last - first + 1;
}

/* Reports the failure in m->tmp of a call that synchronises (the stream, an
 * event), naming the kernels that may have caused it. */
static bool sync_failed(CudaModel *m, Diag *d) {
    char who[1024];
    int n = pending_kernels(m, who, sizeof who);
    m->since_sync = -1;
    m->fault_reported = true;
    if (n == 0) return relay(m->tmp, d, NULL);
    if (n == 1) return relay(m->tmp, d, "kernel %s", who);
    return relay(m->tmp, d, "one of the kernels %s (set DSC_CUDA_SYNC=1 to name the one that failed)", who);
}

static bool sync_stream(CudaModel *m, Diag *d) {
    if (!rt_cuda_stream_synchronize(m->stream, m->tmp)) return sync_failed(m, d);
    m->since_sync = -1;
    return true;
}

/* The closing synchronisation of a call: always made (nothing may still write
 * into memory that is freed or returned), its failure reported unless one
 * was already. */
static bool finish(CudaModel *m, bool ok, Diag *d) {
    if (!m->fault_reported) return sync_stream(m, d) && ok;
    rt_cuda_stream_synchronize(m->stream, sink(m, d));
    m->since_sync = -1;
    return false;
}

static bool sync_each_kernel(void) {
    const char *e = getenv("DSC_CUDA_SYNC");
    return e && *e && strcmp(e, "0") != 0;
}

/* ---- the cuBLASLt tactic ------------------------------------------------------------ */

const char *rt_cuda_gemm_name(CudaGemmTactic t) {
    switch (t) {
    case CUDA_GEMM_DEFAULT: return "default";
    case CUDA_GEMM_GENERATED: return "generated";
    case CUDA_GEMM_CUBLAS: return "cublas";
    case CUDA_GEMM_AUTO: return "auto";
    }
    return "?";
}

bool rt_cuda_gemm_from_name(const char *name, CudaGemmTactic *out) {
    static const CudaGemmTactic all[] = {CUDA_GEMM_GENERATED, CUDA_GEMM_CUBLAS, CUDA_GEMM_AUTO};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(name, rt_cuda_gemm_name(all[i])) == 0) {
            *out = all[i];
            return true;
        }
    return false;
}

const char *rt_cuda_model_kernel_tactic(const CudaModel *m, int ki) {
    return m->blas && ki >= 0 && ki < m->p->nkernels && m->blas[ki].on && m->blas[ki].used ? "cublaslt"
                                                                                           : "generated";
}

static size_t elem_bytes(DType t) { return t == DT_F32 ? 4 : 2; }

/* The lowest set bit of p, at most 256. */
static unsigned ptr_align(RtCuDevptr p) {
    unsigned a = 256;
    while (a > 1 && p % a)
        a /= 2;
    return a;
}

/* One dimension of the GEMM's index space: element strides in A, B, D, extent. */
typedef struct {
    int64_t sa, sb, sd, ext;
} Dim;

static int cmp_dim(const void *x, const void *y) {
    const Dim *a = x, *b = y;
    return a->sd < b->sd ? -1 : a->sd > b->sd;
}

/* Merges dims (sorted by D stride) where each is the next one's inner part
 * (strides times extent); returns how many are left. */
static int collapse(Dim *v, int n) {
    if (n == 0) return 0;
    int out = 1;
    for (int i = 1; i < n; i++) {
        Dim *last = &v[out - 1];
        if (v[i].sa == last->sa * last->ext && v[i].sb == last->sb * last->ext &&
            v[i].sd == last->sd * last->ext) {
            last->ext *= v[i].ext;
        } else {
            v[out++] = v[i];
        }
    }
    return out;
}

/* The GEMM of kernel ki at dims syms with the homes of L: 1 with the shape
 * and the pointers filled, 0 when it does not fit (why), 2 when there is
 * nothing to compute. */
static int blas_shape(const CudaModel *m, int ki, const RtExecLayout *L, const int64_t *syms, RtGemmShape *s,
                      RtCuDevptr ptr[4], int64_t outer[4], char *why, size_t n) {
    const Kernel *k = m->p->kernels[ki];
    const CudaBlasPlan *p = &m->blas[ki].plan;
    int nv = k->nvars;
    if (nv > 64) return snprintf(why, n, "too many loop variables"), 0;
    int64_t E[64], K, ca[64], cb[64], cd[64], cbias[64], oa, ob, od, obias = 0;
    for (int v = 0; v < k->npar; v++)
        if (!cg_cuda_eval_i64(k->par_extent[v], syms, &E[v]))
            return snprintf(why, n, "an extent is not known"), 0;
    if (!cg_cuda_eval_i64(p->k_extent, syms, &K)) return snprintf(why, n, "the k extent is not known"), 0;
    if (!cg_cuda_affine(p->a_index, nv, syms, &oa, ca) || !cg_cuda_affine(p->b_index, nv, syms, &ob, cb) ||
        !cg_cuda_affine(p->d_index, nv, syms, &od, cd) ||
        (p->bias >= 0 && !cg_cuda_affine(p->bias_index, nv, syms, &obias, cbias)))
        return snprintf(why, n, "an index is not affine at these dims"), 0;
    for (int v = 0; v < k->npar; v++)
        if (E[v] == 0) return 2;
    /* A reads (m, k) and batch, B (k, n) and batch, D (m, n) and batch; the bias n only */
    for (int v = k->npar; v < nv; v++)
        if (v != p->k && (ca[v] || cb[v] || cd[v])) return snprintf(why, n, "an index uses another loop"), 0;
    if (ca[p->n] || cb[p->m] || cd[p->k]) return snprintf(why, n, "an operand uses the other's variable"), 0;
    if (cd[p->n] != 1) return snprintf(why, n, "the output is not contiguous along n"), 0;
    if (p->bias >= 0) {
        for (int v = 0; v < nv; v++)
            if (cbias[v] != (v == p->n)) return snprintf(why, n, "the bias is not a vector along n"), 0;
    }
    /* the m dimension: variables B does not use, merged; the rest are batch */
    Dim md[64], bd[64];
    int nm = 0, nb = 0;
    for (int v = 0; v < k->npar; v++) {
        if (v == p->n || E[v] == 1) continue;
        if (cd[v] <= 0) return snprintf(why, n, "the output is not one element per point"), 0;
        Dim x = {ca[v], cb[v], cd[v], E[v]};
        if (cb[v] == 0)
            md[nm++] = x;
        else
            bd[nb++] = x;
    }
    qsort(md, (size_t)nm, sizeof *md, cmp_dim);
    nm = collapse(md, nm);
    Dim M = nm ? md[0] : (Dim){0, 0, 0, 1};
    for (int i = 1; i < nm; i++)
        bd[nb++] = md[i]; /* m variables that do not merge: batch dimensions */
    qsort(bd, (size_t)nb, sizeof *bd, cmp_dim);
    nb = collapse(bd, nb);
    if (nb > 2) return snprintf(why, n, "more than two batch dimensions"), 0;
    Dim B1 = nb > 0 ? bd[0] : (Dim){0, 0, 0, 1}, B2 = nb > 1 ? bd[1] : (Dim){0, 0, 0, 1};
    *s = (RtGemmShape){.ab = p->ab,
                       .d = p->dt,
                       .bias = p->bias >= 0 ? p->bias_dt : DT_COUNT,
                       .m = M.ext,
                       .n = E[p->n],
                       .k = K,
                       .sam = M.sa,
                       .sak = ca[p->k],
                       .sbk = cb[p->k],
                       .sbn = cb[p->n],
                       .sdm = M.sd,
                       .batch = B1.ext,
                       .sab = B1.sa,
                       .sbb = B1.sb,
                       .sdb = B1.sd};
    bool bias = p->bias >= 0;
    s->epi = p->act == CG_BLAS_ACT_RELU        ? (bias ? RT_GEMM_EPI_RELU_BIAS : RT_GEMM_EPI_RELU)
             : p->act == CG_BLAS_ACT_GELU_TANH ? (bias ? RT_GEMM_EPI_GELU_TANH_BIAS : RT_GEMM_EPI_GELU_TANH)
                                               : (bias ? RT_GEMM_EPI_BIAS : RT_GEMM_EPI_NONE);
    outer[0] = B2.ext;
    outer[1] = B2.sa;
    outer[2] = B2.sb;
    outer[3] = B2.sd;
    int bufs[4] = {p->a, p->b, p->d, p->bias};
    int64_t offs[4] = {oa, ob, od, obias};
    DType dts[4] = {p->ab, p->ab, p->dt, p->bias_dt};
    s->align = 256;
    for (int i = 0; i < 4; i++) {
        ptr[i] = 0;
        if (bufs[i] < 0) continue;
        const Node *node = k->bufs[bufs[i]].node;
        const RtHome *h = &L->home[node->id];
        if (h->kind == RT_HOME_NONE) return snprintf(why, n, "a buffer has no device memory"), 0;
        ptr[i] = dev_addr(m, h) + (RtCuDevptr)(offs[i] * (int64_t)elem_bytes(dts[i]));
        unsigned a = ptr_align(ptr[i]);
        if (a < s->align) s->align = a;
    }
    return rt_gemm_shape_expressible(s, why, n) ? 1 : 0;
}

/* Runs kernel ki through cuBLASLt if it can at this binding: true with *done
 * set when it did (or there was nothing to do); true with *done false when
 * the generated kernel must run; false on an error. */
static bool blas_launch(CudaModel *m, int ki, const RtExecLayout *L, const int64_t *syms, bool *done,
                        Diag *d) {
    BlasKernel *bk = &m->blas[ki];
    const Kernel *k = m->p->kernels[ki];
    *done = false;
    RtGemmShape s = {0};
    RtCuDevptr ptr[4] = {0};
    int64_t outer[4] = {1, 0, 0, 0};
    char why[400] = "";
    int fit = blas_shape(m, ki, L, syms, &s, ptr, outer, why, sizeof why);
    bool same = bk->have_key && bk->key_align == s.align &&
                memcmp(bk->key, syms, sizeof *syms * (size_t)m->nsym) == 0;
    if (!same) {
        if (bk->op && !rt_gemm_op_destroy(bk->op, m->tmp)) {
            bk->op = NULL;
            return relay(m->tmp, d, "kernel %s (cuBLASLt)", k->name);
        }
        bk->op = NULL;
        bk->empty = fit == 2;
        bk->warned = false;
        snprintf(bk->why, sizeof bk->why, "%s", why);
        if (fit == 1 &&
            !rt_gemm_op_create(m->blas_handle, &s, BLAS_WORKSPACE, &bk->op, bk->why, sizeof bk->why, m->tmp))
            return relay(m->tmp, d, "kernel %s (cuBLASLt)", k->name);
        bk->outer = outer[0];
        bk->oa = outer[1];
        bk->ob = outer[2];
        bk->od = outer[3];
        memcpy(bk->key, syms, sizeof *syms * (size_t)m->nsym);
        bk->key_align = s.align;
        bk->have_key = true;
    }
    if (bk->empty) {
        bk->used = true;
        *done = true;
        return true;
    }
    if (!bk->op) {
        bk->used = false;
        if (!bk->warned && m->gemm == CUDA_GEMM_CUBLAS)
            diag_warning(d, (Loc){0},
                         "kernel %s: cuBLASLt cannot run it at these dims (%s); its generated code runs",
                         k->name, bk->why);
        bk->warned = true;
        return true;
    }
    for (int64_t o = 0; o < bk->outer; o++) {
        RtCuDevptr a = ptr[0] + (RtCuDevptr)(o * bk->oa * (int64_t)elem_bytes(s.ab)),
                   b = ptr[1] + (RtCuDevptr)(o * bk->ob * (int64_t)elem_bytes(s.ab)),
                   dd = ptr[2] + (RtCuDevptr)(o * bk->od * (int64_t)elem_bytes(s.d));
        if (!rt_gemm_op_run(m->blas_handle, bk->op, a, b, dd, ptr[3], m->blas_ws, BLAS_WORKSPACE, m->stream,
                            m->tmp)) {
            char who[1024];
            int n = pending_kernels(m, who, sizeof who);
            relay(m->tmp, d, "kernel %s (cuBLASLt)", k->name);
            if (n > 0)
                diag_note(d, (Loc){0},
                          "launched before it and not synchronised yet: %s (an asynchronous fault of %s is "
                          "reported by the next call; DSC_CUDA_SYNC=1 synchronises after every kernel)",
                          who, n == 1 ? "it" : "one of them");
            m->fault_reported = true;
            return false;
        }
    }
    bk->used = true;
    if (m->since_sync < 0) m->since_sync = ki;
    m->last_launched = ki;
    *done = true;
    return !sync_each_kernel() || sync_stream(m, d);
}

/* Chooses the kernels cuBLASLt runs (at load, with the context current). */
static bool blas_setup(CudaModel *m, const CudaModelOptions *opt, Diag *d) {
    m->gemm = opt->gemm;
    if (m->gemm == CUDA_GEMM_DEFAULT) {
        const char *e = getenv("DSC_GEMM");
        m->gemm = CUDA_GEMM_GENERATED;
        if (e && *e && !rt_cuda_gemm_from_name(e, &m->gemm)) {
            diag_error(d, (Loc){0}, "DSC_GEMM must be generated, cublas or auto, got '%s'", e);
            return false;
        }
    }
    m->stats.gemm = m->gemm;
    if (m->gemm == CUDA_GEMM_GENERATED) return true;
    const KProgram *p = m->p;
    m->blas = calloc((size_t)p->nkernels + 1, sizeof *m->blas);
    if (!m->blas) {
        diag_error(d, (Loc){0}, "out of memory");
        return false;
    }
    int first = -1, count = 0;
    for (int i = 0; i < p->nkernels; i++) {
        cg_cuda_blas_plan((Graph *)m->g, p->kernels[i], &m->blas[i].plan);
        if (!m->blas[i].plan.ok) continue;
        if (!(m->blas[i].key = calloc((size_t)m->nsym + 1, sizeof *m->blas[i].key))) {
            diag_error(d, (Loc){0}, "out of memory");
            return false;
        }
        m->blas[i].on = true;
        if (first < 0) first = i;
        count++;
    }
    char why[1024];
    if (count > 0 && !rt_cublaslt_available(why, sizeof why)) {
        for (int i = 0; i < p->nkernels; i++)
            m->blas[i].on = false;
        if (m->gemm == CUDA_GEMM_AUTO) return true;
        if (count == 1)
            diag_error(d, (Loc){0},
                       "kernel %s: the cuBLASLt GEMM tactic (--gemm=cublas) is not available: %s",
                       p->kernels[first]->name, why);
        else
            diag_error(d, (Loc){0},
                       "kernel %s and %d more: the cuBLASLt GEMM tactic (--gemm=cublas) is not available: %s",
                       p->kernels[first]->name, count - 1, why);
        return false;
    }
    m->stats.cublas_kernels = count;
    if (count == 0) return true;
    if (!rt_cublaslt_create(&m->blas_handle, m->tmp))
        return relay(m->tmp, d, "kernel %s (cuBLASLt)", p->kernels[first]->name);
    if (!rt_cuda_mem_alloc(&m->blas_ws, BLAS_WORKSPACE, m->tmp)) {
        m->blas_ws = 0;
        return relay(m->tmp, d, "the cuBLASLt workspace (%zu bytes, for kernel %s)", BLAS_WORKSPACE,
                     p->kernels[first]->name);
    }
    return true;
}

/* Launches kernel ki with the homes of layout L at dims syms. */
static bool launch(CudaModel *m, int ki, const RtExecLayout *L, const int64_t *syms, Diag *d) {
    const Kernel *k = m->p->kernels[ki];
    if (m->blas && m->blas[ki].on) {
        bool done;
        if (!blas_launch(m, ki, L, syms, &done, d)) return false;
        if (done) return true;
    }
    const CudaKernel *rec = &m->build.kernels[ki].rec;
    for (int a = 0; a < rec->nargs; a++) {
        const CudaArg *arg = &rec->args[a];
        if (arg->kind == CA_BUFFER) {
            const Node *n = k->bufs[arg->index].node;
            const RtHome *h = &L->home[n->id];
            if (h->kind == RT_HOME_NONE ||
                (k->load_time && h->kind != RT_HOME_PARAM && h->kind != RT_HOME_CONSTANT)) {
                diag_error(d, n->loc, "internal error: kernel %s: buffer %d (%s) has no device memory%s",
                           k->name, arg->index, ir_op_name(n->op), k->load_time ? " at load time" : "");
                return false;
            }
            m->ptrs[a] = dev_addr(m, h);
            m->args[a] = &m->ptrs[a];
        } else if (arg->kind == CA_TRAP) {
            m->ptrs[a] = m->weights + m->trap_off;
            m->args[a] = &m->ptrs[a];
        } else {
            m->dimv[a] = (long long)syms[arg->index];
            m->args[a] = &m->dimv[a];
        }
    }
    int64_t grid;
    char err[256];
    if (!cg_cuda_grid(rec, syms, m->max_blocks, &grid, err, sizeof err)) {
        diag_error(d, (Loc){0}, "kernel %s: cannot size its grid: %s", k->name, err);
        return false;
    }
    unsigned g3[3] = {(unsigned)grid, 1, 1}, b3[3] = {(unsigned)rec->block, 1, 1};
    if (!rt_cuda_launch(m->funcs[ki], rec->name, g3, b3, 0, m->stream, m->args, d)) {
        char who[1024];
        int n = pending_kernels(m, who, sizeof who);
        if (n > 0) /* a sticky error of an earlier kernel surfaces at the next call */
            diag_note(
                d, (Loc){0},
                "launched before it and not synchronised yet: %s (an asynchronous fault of %s is reported "
                "by the next driver call; DSC_CUDA_SYNC=1 synchronises after every kernel)",
                who, n == 1 ? "it" : "one of them");
        m->fault_reported = true;
        return false;
    }
    if (m->since_sync < 0) m->since_sync = ki;
    m->last_launched = ki;
    return !sync_each_kernel() || sync_stream(m, d);
}

/* Queues the copy of the trap record to the host (read after the stream is
 * synchronised, by trap_check). */
static bool trap_fetch(CudaModel *m, Diag *d) {
    if (rt_cuda_memcpy_dtoh_async(&m->trap, m->weights + m->trap_off, sizeof m->trap, m->stream, m->tmp))
        return true;
    return relay(m->tmp, d, "the run-time error record");
}

/* After the synchronisation: a kernel's run-time error (ir/trap.h) is reported
 * as the interpreter reports it, and the device record is cleared for the next
 * run. */
static bool trap_check(CudaModel *m, Diag *d) {
    if (m->trap.code == KTRAP_NONE) return true;
    ir_trap_report(m->g, &m->trap, d);
    memset(&m->trap, 0, sizeof m->trap);
    if (!rt_cuda_memset_d8(m->weights + m->trap_off, 0, sizeof m->trap, d)) return false;
    rt_cuda_context_synchronize(d);
    return false;
}

/* ---- loading -------------------------------------------------------------------- */

bool rt_cuda_model_load(const Graph *g, const KProgram *p, Tensor *const *params, const CudaModelOptions *opt,
                        CudaModel **out, Diag *d) {
    CudaModelOptions defaults = {0};
    if (!opt) opt = &defaults;
    *out = NULL;
    double t0 = now_ms();
    int errs = diag_error_count(d);
    CudaModel *m = calloc(1, sizeof *m);
    if (!m || !(m->tmp = diag_create()) || !(m->quiet = diag_create())) {
        if (m) diag_destroy(m->tmp);
        free(m);
        diag_error(d, (Loc){0}, "out of memory");
        return false;
    }
    m->g = g;
    m->p = p;
    m->since_sync = -1;
    m->nsym = dim_sym_count(g->dims);
    for (int i = 0; i < g->nnodes; i++) {
        m->ninputs += g->nodes[i]->op == OP_INPUT;
        m->nparams += g->nodes[i]->op == OP_PARAM;
    }
    bool ok = true;
    if (p->g && p->g != g) {
        diag_error(d, g->loc, "internal error: the kernel program was lowered from another graph");
        ok = false;
    }

    /* the params: present and well formed (their shapes are checked against
     * the dims at each run) */
    m->param_hdr = calloc((size_t)m->nparams + 1, sizeof *m->param_hdr);
    m->param_ptrs = calloc((size_t)m->nparams + 1, sizeof *m->param_ptrs);
    m->param_off = calloc((size_t)m->nparams + 1, sizeof *m->param_off);
    m->in_off = calloc((size_t)m->ninputs + 1, sizeof *m->in_off);
    m->syms = calloc((size_t)m->nsym + 1, sizeof *m->syms);
    m->mods = calloc((size_t)p->nkernels + 1, sizeof *m->mods);
    m->funcs = calloc((size_t)p->nkernels + 1, sizeof *m->funcs);
    m->maxargs = 1;
    for (int i = 0; i < p->nkernels; i++)
        if (p->kernels[i]->nbufs + m->nsym + 1 > m->maxargs) m->maxargs = p->kernels[i]->nbufs + m->nsym + 1;
    m->args = calloc((size_t)m->maxargs, sizeof *m->args);
    m->ptrs = calloc((size_t)m->maxargs, sizeof *m->ptrs);
    m->dimv = calloc((size_t)m->maxargs, sizeof *m->dimv);
    if (!m->param_hdr || !m->param_ptrs || !m->param_off || !m->in_off || !m->syms || !m->mods || !m->funcs ||
        !m->args || !m->ptrs || !m->dimv) {
        diag_error(d, (Loc){0}, "out of memory");
        ok = false;
    }
    size_t wbytes = 0;
    for (int i = 0, k = 0; ok && i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op != OP_PARAM) continue;
        const Tensor *t = params ? params[k] : NULL;
        char why[256];
        if (!t) {
            diag_error(d, n->loc, "missing weight '%s'", n->name ? n->name : "?");
            ok = false;
        } else if (!rt_tensor_check(t, why, sizeof why)) {
            diag_error(d, n->loc, "weight '%s': %s", n->name ? n->name : "?", why);
            ok = false;
        } else {
            m->param_hdr[k] = *t;
            m->param_hdr[k].data = NULL;
            m->param_hdr[k].owned = false;
            m->param_ptrs[k] = &m->param_hdr[k];
            m->param_off[k] = wbytes;
            wbytes += align_up(t->nbytes, DEV_ALIGN);
        }
        k++;
    }
    ok = ok && rt_exec_layout(g, p, NULL, &m->cl, d);
    m->const_base = wbytes;
    m->trap_off = wbytes + (ok ? m->cl.constant_bytes : 0);
    m->weights_bytes = m->trap_off + align_up(sizeof(KTrapRecord), DEV_ALIGN);
    if (!ok) goto fail;

    /* the device, its context and a stream */
    if (!rt_cuda_device_select(opt->device, &m->dev, d)) goto fail;
    if (!acquire(m, d)) goto fail;
    m->ctx_held = true;
    if (!rt_cuda_stream_create(&m->stream, d)) goto fail;
    m->have_stream = true;
    double t1 = now_ms();
    m->stats.select_ms = t1 - t0;

    /* the kernels, for this device's exact architecture */
    CudaBuildOptions bo = {
        .sm = m->dev.sm, .threads = opt->threads, .no_cache = opt->no_cache, .cache_dir = opt->cache_dir};
    char version[100];
    rt_cuda_target_from_hwdb(&bo, version, sizeof version, d);
    m->dev.block = bo.block;
    int per_sm = m->dev.max_threads_per_sm / m->dev.block;
    m->max_blocks = (int64_t)(m->dev.sm_count > 0 ? m->dev.sm_count : 1) * (per_sm > 0 ? per_sm : 1) * WAVES;
    m->have_build = true;
    if (!rt_cuda_build((Graph *)g, p, &bo, &m->build, d)) goto fail;
    double t2 = now_ms();
    m->stats.build_ms = t2 - t1;
    m->stats.kernels = m->build.n;
    m->stats.compiled = m->build.compiled;
    m->stats.cached = m->build.hits;
    for (int i = 0; i < p->nkernels; i++) {
        const CudaBuiltKernel *bk = &m->build.kernels[i];
        m->stats.load_time_kernels += p->kernels[i]->load_time;
        RtCuModule mod = NULL;
        bool loaded = rt_cuda_module_load(&mod, bk->cubin, m->tmp);
        if (loaded) m->mods[i] = mod; /* unloaded by rt_cuda_model_free */
        if (!loaded || !rt_cuda_module_function(&m->funcs[i], mod, bk->rec.name, m->tmp)) {
            relay(m->tmp, d, "kernel %s (sm_%d, %zu-byte cubin)", bk->rec.name, m->dev.sm, bk->cubin_size);
            goto fail;
        }
    }
    if (!blas_setup(m, opt, d)) goto fail;
    double t3 = now_ms();
    m->stats.module_ms = t3 - t2;

    /* the weights block: params uploaded, constants computed */
    m->stats.weight_bytes = m->weights_bytes;
    if (!rt_cuda_mem_alloc(&m->weights, m->weights_bytes, m->tmp)) {
        m->weights = 0;
        relay(m->tmp, d, "the weights (%d params and %d constant values: %zu bytes on %s)", m->nparams,
              m->cl.nconstants, m->weights_bytes, m->dev.name);
        goto fail;
    }
    if (!rt_cuda_memset_d8(m->weights, 0, m->weights_bytes, d) || !rt_cuda_context_synchronize(d)) goto fail;
    for (int i = 0, k = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op != OP_PARAM) continue;
        if (params[k]->nbytes && !rt_cuda_memcpy_htod_async(m->weights + m->param_off[k], params[k]->data,
                                                            params[k]->nbytes, m->stream, m->tmp)) {
            relay(m->tmp, d, "weight '%s'", n->name ? n->name : "?");
            goto fail;
        }
        k++;
    }
    if (!sync_stream(m, d)) goto fail;
    double t4 = now_ms();
    m->stats.upload_ms = t4 - t3;
    for (int i = 0; i < p->nkernels; i++)
        if (p->kernels[i]->load_time && !launch(m, i, &m->cl, m->syms, d)) goto fail;
    if (!trap_fetch(m, d) || !sync_stream(m, d) || !trap_check(m, d)) goto fail;
    double t5 = now_ms();
    m->stats.constants_ms = t5 - t4;
    m->stats.total_ms = t5 - t0;
    if (diag_error_count(d) != errs) goto fail;
    *out = m;
    return true;
fail:
    if (diag_error_count(d) == errs) diag_error(d, (Loc){0}, "loading the model onto the GPU failed");
    rt_cuda_model_free(m, d);
    return false;
}

/* ---- running ---------------------------------------------------------------------- */

/* Binds the dims from the inputs, checks them and the params, lays the run
 * out, makes the run block big enough and uploads the inputs. */
static bool prepare_run(CudaModel *m, Tensor *const *inputs, int ninputs, Diag *d) {
    const Graph *g = m->g;
    if (!rt_bind_dims(g, inputs, ninputs, m->syms, d) || !rt_check_params_bound(g, m->param_ptrs, m->syms, d))
        return false;
    bool ok = true;
    for (int i = 0, k = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op != OP_INPUT) continue;
        char why[256];
        if (!rt_tensor_check(inputs[k], why, sizeof why)) {
            diag_error(d, n->loc, "input '%s': %s", n->name ? n->name : "?", why);
            ok = false;
        }
        k++;
    }
    rt_exec_layout_free(&m->L);
    if (!ok || !rt_exec_layout(g, m->p, m->syms, &m->L, d)) return false;
    for (int i = 0; i < g->nnodes; i++) {
        const RtHome *a = &m->L.home[i], *b = &m->cl.home[i];
        if ((a->kind == RT_HOME_CONSTANT || b->kind == RT_HOME_CONSTANT) &&
            (a->kind != b->kind || a->offset != b->offset || a->bytes != b->bytes)) {
            diag_error(d, g->nodes[i]->loc, "internal error: the constant value of %s depends on the dims",
                       ir_op_name(g->nodes[i]->op));
            return false;
        }
    }
    size_t total = 0;
    for (int k = 0; k < m->ninputs; k++) {
        m->in_off[k] = total;
        if (inputs[k]->nbytes > SIZE_MAX / 2 - total) {
            diag_error(d, g->loc, "the inputs are too large");
            return false;
        }
        total += align_up(inputs[k]->nbytes, DEV_ALIGN);
    }
    size_t in_bytes = total;
    m->arena_base = total;
    if (m->L.arena_bytes > SIZE_MAX / 2 - total) {
        diag_error(d, g->loc, "the memory plan is too large (%zu bytes)", m->L.arena_bytes);
        return false;
    }
    total += m->L.arena_bytes;
    if (total > m->run_bytes) {
        if (m->run) {
            if (!sync_stream(m, d)) return false;
            RtCuDevptr old = m->run;
            m->run = 0;
            m->run_bytes = 0;
            if (!rt_cuda_mem_free(old, d)) return false;
        }
        if (!rt_cuda_mem_alloc(&m->run, total, m->tmp)) {
            m->run = 0;
            return relay(
                m->tmp, d,
                "device memory for a run of '%s' (%zu bytes: inputs %zu, memory plan %zu in %d buffers "
                "and %d values of their own; the weights hold %zu more)",
                g->name ? g->name : "?", total, in_bytes, m->L.arena_bytes, m->L.nbuffers, m->L.nown,
                m->weights_bytes);
        }
        m->run_bytes = total;
        if (!rt_cuda_memset_d8(m->run, 0, total, d) || !rt_cuda_context_synchronize(d)) return false;
    }
    for (int i = 0, k = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op != OP_INPUT) continue;
        if (inputs[k]->nbytes && !rt_cuda_memcpy_htod_async(m->run + m->in_off[k], inputs[k]->data,
                                                            inputs[k]->nbytes, m->stream, m->tmp))
            return relay(m->tmp, d, "input '%s'", n->name ? n->name : "?");
        k++;
    }
    return true;
}

static bool launch_run_kernels(CudaModel *m, Diag *d) {
    for (int i = 0; i < m->p->nkernels; i++)
        if (!m->p->kernels[i]->load_time && !launch(m, i, &m->L, m->syms, d)) return false;
    return true;
}

/* Makes the context current on this thread (a retain, released by leave). */
static bool enter(CudaModel *m, Diag *d) {
    m->fault_reported = false;
    return acquire(m, d);
}

static void leave(CudaModel *m, Diag *d) { rt_cuda_context_release(m->dev.ordinal, sink(m, d)); }

bool rt_cuda_model_run(CudaModel *m, Tensor *const *inputs, int ninputs, Tensor **outputs, Diag *d) {
    const Graph *g = m->g;
    int errs = diag_error_count(d);
    for (int i = 0; i < g->noutputs; i++)
        outputs[i] = NULL;
    if (!enter(m, d)) return false;
    bool ok = prepare_run(m, inputs, ninputs, d) && launch_run_kernels(m, d);
    for (int i = 0; ok && i < g->noutputs; i++) {
        const RtHome *from;
        ok = rt_exec_output(g, &m->L, m->syms, i, &outputs[i], &from, d);
        if (ok && from &&
            !rt_cuda_memcpy_dtoh_async(outputs[i]->data, dev_addr(m, from), outputs[i]->nbytes, m->stream,
                                       m->tmp))
            ok = relay(m->tmp, d, "output '%s'", g->outputs[i].name);
    }
    bool fetched = !m->fault_reported && trap_fetch(m, d);
    ok = finish(m, ok && fetched, d);
    if (fetched && !m->fault_reported) ok = trap_check(m, d) && ok;
    leave(m, d);
    if (!ok || diag_error_count(d) != errs) {
        for (int i = 0; i < g->noutputs; i++) {
            rt_tensor_free(outputs[i]);
            outputs[i] = NULL;
        }
        return false;
    }
    return true;
}

/* ---- timing ------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static bool half_dtype(DType t) { return t == DT_F16 || t == DT_BF16; }

void rt_cuda_bench_free(CudaBench *b) {
    if (!b) return;
    free(b->kernels);
    b->kernels = NULL;
    b->nkernels = 0;
}

/* Times the stream between two events: fn(m, arg) enqueues the work. */
typedef bool (*Enqueue)(CudaModel *m, int arg, Diag *d);

static bool enqueue_all(CudaModel *m, int arg, Diag *d) {
    (void)arg;
    return launch_run_kernels(m, d);
}

static bool enqueue_one(CudaModel *m, int ki, Diag *d) { return launch(m, ki, &m->L, m->syms, d); }

static bool time_it(CudaModel *m, RtCuEvent e0, RtCuEvent e1, Enqueue fn, int arg, double *ms, Diag *d) {
    float f = 0;
    if (!rt_cuda_event_record(e0, m->stream, d) || !fn(m, arg, d) || !rt_cuda_event_record(e1, m->stream, d))
        return false;
    if (!rt_cuda_event_synchronize(e1, m->tmp)) return sync_failed(m, d);
    m->since_sync = -1;
    if (!rt_cuda_event_elapsed_ms(&f, e0, e1, d)) return false;
    *ms = f;
    return true;
}

bool rt_cuda_model_bench(CudaModel *m, Tensor *const *inputs, int ninputs, int iterations, CudaBench *out,
                         Diag *d) {
    const Graph *g = m->g;
    const KProgram *p = m->p;
    memset(out, 0, sizeof *out);
    if (iterations < 1) iterations = 1;
    out->iterations = iterations;
    if (!enter(m, d)) return false;
    RtCuEvent e0 = NULL, e1 = NULL;
    bool have0 = false, have1 = false;
    double *t = calloc((size_t)iterations + 1, sizeof *t);
    int nrun = 0;
    for (int i = 0; i < p->nkernels; i++)
        nrun += !p->kernels[i]->load_time;
    out->kernels = calloc((size_t)nrun + 1, sizeof *out->kernels);
    bool ok = t && out->kernels;
    if (!ok) diag_error(d, (Loc){0}, "out of memory");
    ok = ok && prepare_run(m, inputs, ninputs, d);
    ok = ok && (have0 = rt_cuda_event_create(&e0, d)) && (have1 = rt_cuda_event_create(&e1, d));
    for (int w = 0; ok && w < 3; w++)
        ok = launch_run_kernels(m, d);
    ok = ok && sync_stream(m, d);
    for (int it = 0; ok && it < iterations; it++)
        ok = time_it(m, e0, e1, enqueue_all, 0, &t[it], d);
    if (ok) {
        out->median_ms = median(t, iterations);
        out->min_ms = t[0];
    }
    for (int i = 0; ok && i < p->nkernels; i++) {
        const Kernel *k = p->kernels[i];
        if (k->load_time) continue;
        const CudaBuiltKernel *bk = &m->build.kernels[i];
        CudaKernelTime *kt = &out->kernels[out->nkernels++];
        kt->name = k->name;
        kt->dtype = DT_F32;
        for (int b = 0; b < k->nbufs; b++)
            if (k->bufs[b].written) {
                kt->dtype = k->bufs[b].dtype;
                break;
            }
        GroupKind gk = k->group >= 0 && k->group < g->ngroups ? g->groups[k->group]->kind : GK_COUNT;
        kt->group = gk < GK_COUNT ? ir_group_kind_name(gk) : "-";
        kt->cls = gk == GK_GEMM        ? (half_dtype(kt->dtype) ? "gemm_f16" : "gemm_f32")
                  : gk == GK_ATTENTION ? "attention"
                  : gk == GK_REDUCTION ? "reduction"
                                       : "elementwise";
        kt->tactic = rt_cuda_model_kernel_tactic(m, i);
        if (strcmp(kt->tactic, "cublaslt") == 0) kt->cls = half_dtype(kt->dtype) ? "gemm_f16" : "gemm_f32";
        char err[256];
        if (!cg_cuda_grid(&bk->rec, m->syms, m->max_blocks, &kt->grid, err, sizeof err)) kt->grid = -1;
        kt->block = bk->rec.block;
        int64_t v;
        kt->bytes = dim_eval(g->dims, bk->rec.bytes, m->syms, &v, NULL, 0) ? (double)v : -1;
        kt->flops = dim_eval(g->dims, bk->rec.flops, m->syms, &v, NULL, 0) ? (double)v : -1;
        kt->registers = bk->stats.registers;
        kt->spill_bytes = bk->stats.spill_stores + bk->stats.spill_loads;
        for (int it = 0; ok && it < iterations; it++)
            ok = time_it(m, e0, e1, enqueue_one, i, &t[it], d);
        if (ok) kt->ms = median(t, iterations);
    }
    bool fetched = !m->fault_reported && trap_fetch(m, d);
    ok = finish(m, ok && fetched, d);
    if (fetched && !m->fault_reported) ok = trap_check(m, d) && ok; /* timings of a failing model are void */
    if (have0) rt_cuda_event_destroy(e0, sink(m, d));
    if (have1) rt_cuda_event_destroy(e1, sink(m, d));
    leave(m, d);
    free(t);
    if (!ok) rt_cuda_bench_free(out);
    return ok;
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v) {
    if (v < 0)
        fputs("null", f);
    else
        fprintf(f, "%.0f", v);
}

void rt_cuda_bench_write_json(const CudaModel *m, const CudaBench *b, FILE *f) {
    const CudaLoadStats *s = &m->stats;
    char arch[16];
    snprintf(arch, sizeof arch, "sm_%d", m->dev.sm);
    fputs("{\"device\": ", f);
    json_str(f, m->dev.name);
    fputs(", \"arch\": ", f);
    json_str(f, arch);
    fputs(", \"hwdb_entry\": ", f);
    json_str(f, m->dev.hwdb_arch);
    fprintf(f, ", \"driver_version\": %d, \"block\": %d,\n", m->dev.driver_version, m->dev.block);
    fprintf(f,
            " \"load_ms\": %.3f, \"load\": {\"select_ms\": %.3f, \"build_ms\": %.3f, \"module_ms\": %.3f, "
            "\"upload_ms\": %.3f, \"constants_ms\": %.3f},\n",
            s->total_ms, s->select_ms, s->build_ms, s->module_ms, s->upload_ms, s->constants_ms);
    fprintf(f,
            " \"kernels_compiled\": %d, \"kernels_cached\": %d, \"load_time_kernels\": %d, \"weight_bytes\": "
            "%zu,\n",
            s->compiled, s->cached, s->load_time_kernels, s->weight_bytes);
    fprintf(f, " \"gemm\": \"%s\", \"cublaslt_kernels\": %d,\n", rt_cuda_gemm_name(s->gemm),
            s->cublas_kernels);
    fprintf(f, " \"latency_ms\": {\"median\": %.6g, \"min\": %.6g, \"iterations\": %d},\n", b->median_ms,
            b->min_ms, b->iterations);
    fputs(" \"kernels\": [", f);
    for (int i = 0; i < b->nkernels; i++) {
        const CudaKernelTime *k = &b->kernels[i];
        fputs(i ? ",\n  {\"name\": " : "\n  {\"name\": ", f);
        json_str(f, k->name);
        fputs(", \"class\": ", f);
        json_str(f, k->cls);
        fputs(", \"group\": ", f);
        json_str(f, k->group);
        fputs(", \"dtype\": ", f);
        json_str(f, dtype_name(k->dtype));
        fprintf(f, ", \"ms\": %.6g, \"bytes\": ", k->ms);
        json_num(f, k->bytes);
        fputs(", \"flops\": ", f);
        json_num(f, k->flops);
        fprintf(f, ", \"grid\": %lld, \"block\": %lld, \"registers\": %d, \"spill_bytes\": %d, \"tactic\": ",
                (long long)k->grid, (long long)k->block, k->registers, k->spill_bytes);
        json_str(f, k->tactic ? k->tactic : "generated");
        fputc('}', f);
    }
    fputs(b->nkernels ? "\n ]}\n" : "]}\n", f);
}

bool rt_cuda_bench_to_file(CudaModel *m, Tensor *const *inputs, int ninputs, int iterations, const char *path,
                           Diag *d) {
    CudaBench b;
    if (!rt_cuda_model_bench(m, inputs, ninputs, iterations, &b, d)) return false;
    bool to_stdout = strcmp(path, "-") == 0;
    FILE *f = to_stdout ? stdout : fopen(path, "w");
    bool ok = f != NULL;
    if (!f) {
        diag_error(d, loc_file(path), "cannot write the timing: %s", strerror(errno));
    } else {
        rt_cuda_bench_write_json(m, &b, f);
        ok = !ferror(f);
        if (!to_stdout && fclose(f) != 0) ok = false;
        if (!ok) diag_error(d, loc_file(path), "cannot write the timing: %s", strerror(errno));
    }
    rt_cuda_bench_free(&b);
    return ok;
}
