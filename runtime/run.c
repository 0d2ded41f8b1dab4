/* End-to-end model runs (see run.h).
 *
 * Dims for random inputs are bound in this order: --bind values, then the
 * shapes of the inputs that were given as files, then the dim's `<=` bound,
 * then RT_DEFAULT_DIM.  Random values are uniform in [-1, 1) for floats, with
 * a few exceptions chosen so that random models compute finite numbers:
 * 2-D and larger float params are scaled by 1/sqrt(last dim) (keeps
 * activations of deep stacks in range), params used as a batchnorm variance
 * (or read by sqrt, rsqrt or log) are in [0.5, 1.5), integer inputs used as gather indices are in range for
 * the gathered axis, other integers are in [0, 10).  Everything is seeded.
 * Params that read one key (`from`) get one value, as from a weights file.
 *
 * Devices (RunOptions.device): ref runs the interpreter; cpu lowers the graph
 * to kernel IR and runs it with rt_exec_run and the host JIT's launcher (a
 * host backend is made per run: its kernels come from the disk cache after
 * the first run); cuda loads the model on the GPU (runtime/cuda_exec.c: device
 * memory, NVRTC kernels) and runs it there; auto picks the GPU when one is
 * usable, else the host JIT, else the interpreter with a warning. */
#include "run.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../codegen/lower.h"
#include "cuda_exec.h"
#include "dsm_bsr.h"
#include "exec.h"
#include "host_jit.h"
#include "interp.h"
#include "npy.h"
#include "safetensors.h"
#include "sparse.h"

/* ---- devices ------------------------------------------------------------------ */

static const char *device_names[RT_DEVICE_COUNT] = {"ref", "auto", "cpu", "cuda"};

const char *rt_device_name(RtDevice dev) { return (unsigned)dev < RT_DEVICE_COUNT ? device_names[dev] : "?"; }

bool rt_device_from_name(const char *name, RtDevice *out) {
    for (int i = 0; i < RT_DEVICE_COUNT; i++)
        if (strcmp(name, device_names[i]) == 0) {
            *out = (RtDevice)i;
            return true;
        }
    return false;
}

/* The CUDA hook: whether a GPU can run models (a driver with a device, and
 * NVRTC), and the run itself (runtime/cuda_exec.h: the model is loaded --
 * kernels built for the device's exact architecture through the cache,
 * params uploaded, constants computed -- then run once).  With
 * DSC_CUDA_BENCH=FILE the loaded model is also timed (DSC_CUDA_BENCH_ITERS
 * inferences, default 100) and the JSON object of docs/cuda.md ("Timing") is
 * written to FILE ("-": standard output). */
static bool cuda_usable(void) { return rt_cuda_usable(NULL, 0); }

enum { CUDA_FAILED, CUDA_DONE, CUDA_FALLBACK };

/* p NULL: CUDA is not usable; reports why.  With `fallback` (under auto) a
 * model the GPU cannot load is a warning and CUDA_FALLBACK: the caller runs
 * it on the host; errors while running are the model's own. */
static int run_cuda(const Graph *g, const KProgram *p, const RunOptions *opt, Tensor *const *inputs, int nin,
                    Tensor *const *params, Tensor **outs, bool fallback, Diag *d) {
    if (!p) {
        char why[600] = "";
        rt_cuda_usable(why, sizeof why);
        diag_error(d, loc_file(g->file), "device 'cuda' is not available: %s", why);
        return CUDA_FAILED;
    }
    Diag *setup = diag_create();
    CudaModel *m = NULL;
    CudaModelOptions mo = {.gemm = opt->gemm};
    bool ok = rt_cuda_model_load(g, p, params, &mo, &m, setup);
    if (!ok && fallback) {
        DiagLevel level = DIAG_ERROR;
        const char *why = NULL;
        for (int i = 0; i < diag_count(setup) && (!why || level != DIAG_ERROR); i++)
            why = diag_message(setup, i, &level, NULL);
        diag_warning(d, loc_file(g->file), "the GPU cannot run this model (%s); running on the host",
                     why ? why : "unknown error");
        diag_destroy(setup);
        return CUDA_FALLBACK;
    }
    for (int i = 0; i < diag_count(setup); i++) { /* warnings (no hwdb, an unwritable cache), or the errors */
        DiagLevel level;
        Loc loc;
        const char *msg = diag_message(setup, i, &level, &loc);
        diag_report(d, level, loc, "%s", msg);
    }
    diag_destroy(setup);
    ok = ok && rt_cuda_model_run(m, inputs, nin, outs, d);
    const char *bench = getenv("DSC_CUDA_BENCH"), *iters = getenv("DSC_CUDA_BENCH_ITERS");
    if (ok && bench && *bench)
        ok = rt_cuda_bench_to_file(m, inputs, nin, iters && atoi(iters) > 0 ? atoi(iters) : 100, bench, d);
    rt_cuda_model_free(m, d);
    return ok ? CUDA_DONE : CUDA_FAILED;
}

/* Runs the graph on the device the options name (see RtDevice). */
static bool run_on_device(const Graph *g, const RunOptions *opt, Tensor *const *inputs, int nin, Tensor *const *params,
                          Tensor **outs, Diag *d) {
    RtDevice dev = opt->device;
    if (dev == RT_DEVICE_AUTO) {
        if (cuda_usable())
            dev = RT_DEVICE_CUDA;
        else if (rt_host_available())
            dev = RT_DEVICE_CPU;
        else {
            diag_warning(d, loc_file(g->file),
                         "the host backend is not built (-DDSC_WITH_LLVM=OFF) and no GPU is usable; "
                         "running on the reference interpreter");
            dev = RT_DEVICE_REF;
        }
    }
    if (dev == RT_DEVICE_REF) return rt_interp_run(g, inputs, nin, params, outs, d);
    if (dev == RT_DEVICE_CUDA && !cuda_usable())
        return run_cuda(g, NULL, opt, inputs, nin, params, outs, false, d) == CUDA_DONE;
    if (dev == RT_DEVICE_CPU && !rt_host_available()) {
        diag_error(d, loc_file(g->file), "device 'cpu' is not available: the host backend is not built "
                                         "(dsc was configured with -DDSC_WITH_LLVM=OFF); use --device ref");
        return false;
    }
    /* Lowering adds kernel IR and dim expressions to the graph's arena and
     * dim table; the graph itself (nodes, groups, plan) is not changed.
     * Lowering and compiling report into `setup`: under auto, a model the
     * host backend cannot compile runs on the interpreter instead (with a
     * warning saying why); errors while running are the model's own. */
    KProgram prog = {0};
    Diag *setup = diag_create();
    rt_sparse_decide_hwdb(g, dev == RT_DEVICE_CUDA);
    bool ok = cg_lower((Graph *)g, &prog, setup);
    if (ok && dev == RT_DEVICE_CUDA) {
        int r = run_cuda(g, &prog, opt, inputs, nin, params, outs, opt->device == RT_DEVICE_AUTO, d);
        if (r != CUDA_FALLBACK) {
            diag_destroy(setup);
            return r == CUDA_DONE;
        }
        dev = RT_DEVICE_CPU; /* under auto: the host JIT, else the interpreter (below) */
    }
    HostBackend *hb = ok ? rt_host_create(NULL, setup) : NULL;
    ok = hb && rt_host_prepare(hb, g, &prog, setup);
    if (!ok && opt->device == RT_DEVICE_AUTO) {
        DiagLevel level = DIAG_ERROR;
        Loc loc;
        const char *why = NULL;
        for (int i = 0; i < diag_count(setup) && (!why || level != DIAG_ERROR); i++)
            why = diag_message(setup, i, &level, &loc);
        diag_warning(d, loc_file(g->file), "the host backend cannot run this model (%s); running on the reference "
                                           "interpreter",
                     why ? why : "unknown error");
        diag_destroy(setup);
        rt_host_destroy(hb);
        return rt_interp_run(g, inputs, nin, params, outs, d);
    }
    for (int i = 0; i < diag_count(setup); i++) { /* warnings (a cache that cannot be written), or the errors */
        DiagLevel level;
        Loc loc;
        const char *msg = diag_message(setup, i, &level, &loc);
        diag_report(d, level, loc, "%s", msg);
    }
    diag_destroy(setup);
    ok = ok && rt_exec_run(g, &prog, inputs, nin, params, outs, rt_host_launch, hb, d);
    rt_host_destroy(hb);
    return ok;
}

static uint64_t next_u64(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }

void rt_fill_random(Tensor *t, uint64_t *state, double lo, double hi) {
    int64_t n = rt_numel(t->rank, t->shape);
    for (int64_t i = 0; i < n; i++) {
        double u = uniform(state);
        if (t->dtype == DT_BOOL)
            rt_set(t, i, u < 0.5 ? 0 : 1);
        else if (dtype_is_float(t->dtype))
            rt_set(t, i, lo + (hi - lo) * u);
        else
            rt_set(t, i, floor(lo + (hi - lo) * u));
    }
}

static int count_op(const Graph *g, OpKind op) {
    int n = 0;
    for (int i = 0; i < g->nnodes; i++) n += g->nodes[i]->op == op;
    return n;
}

/* The node that uses `x` as operand `slot` of an `op` node, or NULL. */
static const Node *user_as(const Graph *g, const Node *x, OpKind op, int slot) {
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op == op && slot < n->nin && n->in[slot] == x) return n;
    }
    return NULL;
}

static bool eval_shape(const Graph *g, const Type *t, const int64_t *syms, int64_t *shape, const char *what,
                       Diag *d) {
    for (int i = 0; i < t->rank; i++) {
        char err[256];
        if (!dim_eval(g->dims, t->dim[i], syms, &shape[i], err, sizeof err)) {
            diag_error(d, loc_file(what), "%s", err);
            return false;
        }
        if (shape[i] < 0) {
            diag_error(d, loc_file(what), "dimension %d evaluates to %lld", i, (long long)shape[i]);
            return false;
        }
    }
    return true;
}

/* Binds every dim symbol for making random inputs (see the file comment). */
static bool bind_for_random(const Graph *g, const RunOptions *opt, Tensor *const *given, int64_t *syms,
                            Diag *d) {
    int nsyms = dim_sym_count(g->dims);
    bool *bound = calloc((size_t)nsyms + 1, 1);
    for (int s = 0; s < nsyms; s++) {
        for (int b = 0; b < opt->nbinds; b++)
            if (strcmp(opt->bind_names[b], dim_sym_name(g->dims, s)) == 0) {
                syms[s] = opt->bind_values[b];
                bound[s] = true;
            }
    }
    int k = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op != OP_INPUT) continue;
        const Tensor *t = given[k++];
        if (!t || t->rank != n->type.rank) continue;
        for (int j = 0; j < t->rank; j++) {
            int s;
            if (dim_is_sym(g->dims, n->type.dim[j], &s) && !bound[s]) {
                syms[s] = t->shape[j];
                bound[s] = true;
            }
        }
    }
    for (int s = 0; s < nsyms; s++) {
        if (bound[s]) continue;
        int64_t b = dim_sym_bound(g->dims, s);
        syms[s] = b > 0 ? b : RT_DEFAULT_DIM;
    }
    free(bound);
    (void)d;
    return true;
}

static Tensor *random_input(const Graph *g, const Node *n, const int64_t *syms, uint64_t *rng, Diag *d) {
    int64_t shape[IR_MAX_RANK];
    char what[256];
    snprintf(what, sizeof what, "input '%s'", n->name);
    if (!eval_shape(g, &n->type, syms, shape, what, d)) return NULL;
    Tensor *t = rt_tensor_new(n->type.dtype, n->type.rank, shape);
    if (!t) {
        diag_error(d, loc_file(what), "out of memory making a random tensor");
        return NULL;
    }
    double lo = -1, hi = 1;
    if (!dtype_is_float(n->type.dtype)) {
        lo = 0;
        hi = 10;
        const Node *gather = user_as(g, n, OP_GATHER, 1);
        if (gather) { /* indices: in range for the gathered axis */
            const Node *x = gather->in[0];
            int axis = ir_norm_axis(ir_attr_int(gather, "axis", 0), x->type.rank);
            int64_t size;
            if (axis >= 0 && dim_eval(g->dims, x->type.dim[axis], syms, &size, NULL, 0)) hi = (double)size;
        }
    }
    rt_fill_random(t, rng, lo, hi);
    return t;
}

/* The param of `g` with the given name, or NULL. */
static const Node *find_param(const Graph *g, const char *name) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_PARAM && strcmp(g->nodes[i]->name, name) == 0) return g->nodes[i];
    return NULL;
}

/* Whether x is a batchnorm variance: operand 4 of a batchnorm, or (as the
 * fold-batchnorm pass leaves it, so a compiled model without the graph as
 * written gets the same ranges) read by sqrt/rsqrt/log directly or after
 * adding a constant. */
static bool is_variance(const Graph *g, const Node *x) {
    if (user_as(g, x, OP_BATCHNORM, 4)) return true;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op == OP_ADD && n->nin == 2 && n->in[0] == x && n->in[1] && n->in[1]->op == OP_CONST &&
            (user_as(g, n, OP_SQRT, 0) || user_as(g, n, OP_RSQRT, 0) || user_as(g, n, OP_LOG, 0)))
            return true;
    }
    return user_as(g, x, OP_SQRT, 0) || user_as(g, x, OP_RSQRT, 0) || user_as(g, x, OP_LOG, 0);
}

/* `src` is the graph as written, where the param's uses are judged. */
static Tensor *random_param(const Graph *g, const Graph *src, const Node *n, uint64_t *rng, Diag *d) {
    int64_t shape[IR_MAX_RANK];
    char what[256];
    snprintf(what, sizeof what, "param '%s'", n->name);
    int64_t *zeros = calloc((size_t)dim_sym_count(g->dims) + 1, sizeof(int64_t));
    bool ok = eval_shape(g, &n->type, zeros, shape, what, d);
    free(zeros);
    if (!ok) return NULL;
    Tensor *t = rt_tensor_new(n->type.dtype, n->type.rank, shape);
    if (!t) {
        diag_error(d, loc_file(what), "out of memory making a random tensor");
        return NULL;
    }
    double lo = -1, hi = 1;
    const Node *written = src ? find_param(src, n->name) : n;
    if (written && is_variance(src ? src : g, written)) {
        lo = 0.5;
        hi = 1.5;
    } else if (!dtype_is_float(n->type.dtype)) {
        lo = 0;
        hi = 10;
    } else if (n->type.rank >= 2 && shape[n->type.rank - 1] > 0) {
        hi = 1 / sqrt((double)shape[n->type.rank - 1]);
        lo = -hi;
    }
    rt_fill_random(t, rng, lo, hi);
    return t;
}

/* Params that read one key are one tensor, random ones too: a copy of the
 * value made for an earlier param of the same key and type, or NULL. */
static Tensor *shared_param(const Graph *g, const Node *n, Tensor *const *made, int nmade) {
    int k = 0;
    for (int i = 0; i < g->nnodes && k < nmade; i++) {
        const Node *p = g->nodes[i];
        if (p->op != OP_PARAM) continue;
        if (strcmp(p->key, n->key) == 0 && ir_type_eq(&p->type, &n->type)) {
            Tensor *t = rt_tensor_new(made[k]->dtype, made[k]->rank, made[k]->shape);
            if (t) memcpy(t->data, made[k]->data, t->nbytes);
            return t;
        }
        k++;
    }
    return NULL;
}

char *rt_weights_path(const Graph *g, const char *model_path, const char *weights) {
    if (weights) return strdup(weights);
    if (!g->weights) return NULL;
    if (g->weights[0] == '/' || !model_path || !strchr(model_path, '/')) return strdup(g->weights);
    const char *slash = strrchr(model_path, '/');
    char *p = NULL;
    if (asprintf(&p, "%.*s/%s", (int)(slash - model_path), model_path, g->weights) < 0) return NULL;
    return p;
}

static void summarize(FILE *out, const char *name, const Tensor *t) {
    char shape[256];
    rt_shape_str(t->dtype, t->rank, t->shape, shape, sizeof shape);
    int64_t n = rt_numel(t->rank, t->shape);
    double mn = INFINITY, mx = -INFINITY, sum = 0;
    int64_t nonfinite = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = rt_get(t, i);
        if (!isfinite(v)) {
            nonfinite++;
            continue;
        }
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        sum += v;
    }
    int64_t finite = n - nonfinite;
    if (finite > 0)
        fprintf(out, "%s: %s min=%.6g max=%.6g mean=%.6g", name, shape, mn, mx, sum / (double)finite);
    else
        fprintf(out, "%s: %s (no finite values)", name, shape);
    if (nonfinite) fprintf(out, " non-finite=%lld", (long long)nonfinite);
    fputc('\n', out);
}

bool rt_model_data_load(const Graph *g, const char *model_path, const RunOptions *opt, RtModelData *md, Diag *d) {
    int nin = count_op(g, OP_INPUT), nparams = count_op(g, OP_PARAM), nsyms = dim_sym_count(g->dims);
    Tensor **inputs = calloc((size_t)nin + 1, sizeof(Tensor *));
    Tensor **params = calloc((size_t)nparams + 1, sizeof(Tensor *));
    Tensor **views = calloc((size_t)nparams + 1, sizeof(Tensor *)); /* not owned data */
    int64_t *syms = calloc((size_t)nsyms + 1, sizeof(int64_t));
    SafeTensors *st = NULL;
    char *wpath = NULL;
    bool ok = false;
    uint64_t rng = opt->seed;

    if (opt->params_only) nin = 0;
    /* Inputs given as files. */
    for (int k = 0; k < opt->ninputs && !opt->params_only; k++) {
        int idx = 0, found = -1;
        for (int i = 0; i < g->nnodes; i++) {
            if (g->nodes[i]->op != OP_INPUT) continue;
            if (strcmp(g->nodes[i]->name, opt->input_names[k]) == 0) found = idx;
            idx++;
        }
        if (found < 0) {
            diag_error(d, loc_file(opt->input_files[k]), "model '%s' has no input named '%s'", g->name,
                       opt->input_names[k]);
            goto done;
        }
        if (inputs[found]) {
            diag_error(d, loc_file(opt->input_files[k]), "input '%s' given twice", opt->input_names[k]);
            goto done;
        }
        if (!(inputs[found] = npy_read(opt->input_files[k], d))) goto done;
    }
    /* Missing inputs: random, or an error naming them. */
    if (opt->random_inputs && !opt->params_only) {
        if (!bind_for_random(g, opt, inputs, syms, d)) goto done;
        int idx = 0;
        for (int i = 0; i < g->nnodes; i++) {
            const Node *n = g->nodes[i];
            if (n->op != OP_INPUT) continue;
            if (!inputs[idx] && !(inputs[idx] = random_input(g, n, syms, &rng, d))) goto done;
            idx++;
        }
    } else if (!opt->params_only) {
        int idx = 0;
        bool missing = false;
        for (int i = 0; i < g->nnodes; i++) {
            const Node *n = g->nodes[i];
            if (n->op != OP_INPUT) continue;
            if (!inputs[idx++]) {
                diag_error(d, n->loc, "missing input '%s' (give --input %s=FILE.npy, or --random-inputs)", n->name,
                           n->name);
                missing = true;
            }
        }
        if (missing) goto done;
    }
    /* Weights. */
    if (opt->random_weights) {
        int idx = 0;
        for (int i = 0; i < g->nnodes; i++) {
            const Node *n = g->nodes[i];
            if (n->op != OP_PARAM) continue;
            params[idx] = shared_param(g, n, params, idx);
            if (!params[idx] && !(params[idx] = random_param(g, opt->as_written, n, &rng, d))) goto done;
            idx++;
        }
    } else if (nparams > 0) {
        wpath = rt_weights_path(g, model_path, opt->weights);
        if (!wpath) {
            diag_error(d, g->loc, "model '%s' has params but names no weights file (give --weights FILE or --random-weights)",
                       g->name);
            goto done;
        }
        if (!(st = st_open(wpath, d))) goto done;
        int idx = 0;
        bool missing = false;
        for (int i = 0; i < g->nnodes; i++) {
            const Node *n = g->nodes[i];
            if (n->op != OP_PARAM) continue;
            Tensor view;
            if (!st_get(st, n->key, &view) && st_metadata(st, "dsc.format") && rt_dsm_bsr_has(st, n->key)) {
                /* a compiled model's pruned param, stored block-compressed */
                if (!(params[idx++] = rt_dsm_bsr_decode(st, wpath, n->key, NULL, d))) missing = true;
                continue;
            }
            if (!st_get(st, n->key, &view)) {
                if (strcmp(n->key, n->name) == 0)
                    diag_error(d, loc_file(wpath), "missing weight '%s'", n->name);
                else
                    diag_error(d, loc_file(wpath), "missing weight '%s' (key '%s')", n->name, n->key);
                missing = true;
                idx++;
                continue;
            }
            views[idx] = rt_tensor_wrap(view.dtype, view.rank, view.shape, view.data);
            params[idx] = views[idx];
            idx++;
        }
        if (missing) goto done;
    }
    if (!rt_sparse_apply(g, params, d)) goto done; /* @sparse: prune as the weights load */
    ok = true;
done:
    if (ok) {
        *md = (RtModelData){.ninputs = nin, .nparams = nparams, .inputs = inputs, .params = params, .weights = st};
    } else {
        *md = (RtModelData){0};
        for (int i = 0; i < nin; i++) rt_tensor_free(inputs[i]);
        for (int i = 0; i < nparams; i++) rt_tensor_free(params[i]); /* views: frees only the struct */
        st_close(st);
        free(inputs);
        free(params);
    }
    free(wpath);
    free(views);
    free(syms);
    return ok;
}

void rt_model_data_free(RtModelData *md) {
    if (!md) return;
    for (int i = 0; i < md->ninputs; i++) rt_tensor_free(md->inputs[i]);
    for (int i = 0; i < md->nparams; i++) rt_tensor_free(md->params[i]); /* views: frees only the struct */
    st_close(md->weights);
    free(md->inputs);
    free(md->params);
    *md = (RtModelData){0};
}

bool rt_model_outputs_write(const Graph *g, const RunOptions *opt, Tensor *const *outs, Diag *d) {
    if (opt->output_dir) {
        if (mkdir(opt->output_dir, 0777) != 0 && errno != EEXIST) {
            diag_error(d, loc_file(opt->output_dir), "cannot create directory: %s", strerror(errno));
            return false;
        }
        for (int i = 0; i < g->noutputs; i++) {
            char *p = NULL;
            if (asprintf(&p, "%s/%s.npy", opt->output_dir, g->outputs[i].name) < 0) return false;
            bool w = npy_write(p, outs[i], d);
            free(p);
            if (!w) return false;
        }
    }
    if (opt->summary)
        for (int i = 0; i < g->noutputs; i++) summarize(opt->summary, g->outputs[i].name, outs[i]);
    return true;
}

bool rt_run_model(const Graph *g, const char *model_path, const RunOptions *opt, Tensor **outputs, Diag *d) {
    Tensor **outs = calloc((size_t)g->noutputs + 1, sizeof(Tensor *));
    RtModelData md = {0};
    bool ok = false;
    if (!rt_model_data_load(g, model_path, opt, &md, d)) goto done;
    if (!run_on_device(g, opt, md.inputs, md.ninputs, md.params, outs, d)) goto done;
    if (!rt_model_outputs_write(g, opt, outs, d)) goto done;
    ok = true;
done:
    for (int i = 0; i < g->noutputs; i++) {
        if (ok && outputs)
            outputs[i] = outs[i];
        else
            rt_tensor_free(outs[i]);
    }
    rt_model_data_free(&md);
    free(outs);
    return ok;
}
