/* Lowering to the kernel IR, checked by running it.
 *
 * For every example (small dims) and DSC_LOWER_SEEDS (default 1000) random
 * models from tests/randgraph.c, at -O0, -O1 and -O2 (random models also at
 * -O2 without fuse and without memplan): compile, run the
 * pipeline, lower (codegen/lower.c), check every kernel with kir_verify, run
 * the program with the kernel-IR evaluator (codegen/kir_eval.c) through the
 * shared executor (runtime/exec.c), and compare every output with the
 * reference interpreter on the same graph and data: relative L2 error
 * <= 1e-4 for f32 (kernels compute in f32, the interpreter in double),
 * 2e-3 for f16 and 1.6e-2 for bf16, integers and bools exactly; a float
 * output computed through f16 or bf16 values gets the tolerance of the least
 * precise of them (kernels keep fused f16/bf16 intermediates in f32, as spec
 * section 4 allows, where the interpreter rounds every value, so such an
 * output differs by half-precision roundings whatever its own dtype); the reference norm is floored at F*sqrt(n) as in
 * test_equivalence.c (F = 0.1 for f32, 1 for f16/bf16).  The worst errors per
 * level and dtype are printed.
 *
 * Then targeted cases: kernel names and order, alias groups without kernels,
 * in-place elementwise groups with several outputs, rounding casts inside a
 * fused group, integer division by zero, the executor's error paths, and the
 * work estimates of row-wise and attention kernels (no quadratic blow-up).
 *
 * Knobs: DSC_LOWER_SEEDS=N, DSC_LOWER_FIRST=K, DSC_LOWER_SEED=K (just that
 * seed), DSC_LOWER_VERBOSE=1 (per model: kernels and worst error),
 * DSC_LOWER_DUMP=1 (print the kernels of failing models). */
#include <criterion/criterion.h>
#include <ctype.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen/kir_eval.h"
#include "codegen/lower.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/exec.h"
#include "runtime/interp.h"
#include "runtime/run.h"

#include "../randgraph.c"
#include "../support.h"

/* ---- data by name ---------------------------------------------------------------- */

typedef struct {
    char *name;
    Tensor *t;
} Named;

typedef struct {
    Named *v;
    int n;
} TMap;

static Tensor *tmap_get(const TMap *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->v[i].name, name) == 0) return m->v[i].t;
    return NULL;
}

static void tmap_free(TMap *m) {
    for (int i = 0; i < m->n; i++) {
        rt_tensor_free(m->v[i].t);
        free(m->v[i].name);
    }
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

static const Node *user_as(const Graph *g, const Node *x, OpKind op, int slot) {
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op == op && slot < n->nin && n->in[slot] == x) return n;
    }
    return NULL;
}

/* Seeded inputs and params like test_equivalence.c: floats in [-1, 1) (params
 * of rank >= 2 scaled by 1/sqrt(last dim), batchnorm scales and variances in
 * [0.5, 1.5)), integers in [-8, 8), gather indices in range. */
static bool make_data(const Graph *g, const int64_t *syms, uint64_t seed, TMap *ins, TMap *prm) {
    uint64_t rng = seed * 0x9e3779b97f4a7c15ull + 17;
    ins->v = calloc((size_t)g->nnodes + 1, sizeof(Named));
    prm->v = calloc((size_t)g->nnodes + 1, sizeof(Named));
    for (int i = 0; i < g->nnodes; i++) {
        const Node *x = g->nodes[i];
        if (x->op != OP_INPUT && x->op != OP_PARAM) continue;
        int64_t shape[IR_MAX_RANK];
        for (int k = 0; k < x->type.rank; k++)
            if (!dim_eval(g->dims, x->type.dim[k], syms, &shape[k], NULL, 0)) return false;
        Tensor *t = rt_tensor_new(x->type.dtype, x->type.rank, shape);
        if (!t) return false;
        double lo = -1, hi = 1;
        DType dt = x->type.dtype;
        if (dtype_is_int(dt)) {
            lo = -8, hi = 8;
            int64_t size = -1;
            for (int k = 0; k < g->nnodes; k++) {
                const Node *u = g->nodes[k];
                if (u->op != OP_GATHER || u->in[1] != x) continue;
                const Node *src = u->in[0];
                int ax = ir_norm_axis(ir_attr_int(u, "axis", 0), src->type.rank);
                int64_t s;
                if (ax >= 0 && dim_eval(g->dims, src->type.dim[ax], syms, &s, NULL, 0) && (size < 0 || s < size))
                    size = s;
            }
            if (size > 0) lo = (double)-size, hi = (double)size;
        } else if (dtype_is_float(dt) && x->op == OP_PARAM) {
            if (user_as(g, x, OP_BATCHNORM, 4) || user_as(g, x, OP_BATCHNORM, 1))
                lo = 0.5, hi = 1.5;
            else if (x->type.rank >= 2 && shape[x->type.rank - 1] > 0)
                hi = 1 / sqrt((double)shape[x->type.rank - 1]), lo = -hi;
        }
        rt_fill_random(t, &rng, lo, hi);
        TMap *m = x->op == OP_INPUT ? ins : prm;
        m->v[m->n++] = (Named){strdup(x->name), t};
    }
    return true;
}

/* The tensors for g's inputs and params (by name), in g's order. */
static bool gather_args(const Graph *g, const TMap *ins, const TMap *prm, Tensor **iv, int *nin, Tensor **pv) {
    int ni = 0, np = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op == OP_INPUT && !(iv[ni++] = tmap_get(ins, n->name))) return false;
        if (n->op == OP_PARAM && !(pv[np++] = tmap_get(prm, n->name))) return false;
    }
    *nin = ni;
    return true;
}

/* ---- comparison --------------------------------------------------------------------- */

static double tolerance(DType t) {
    switch (t) {
    case DT_F32: return 1e-4;
    case DT_F16: return 2e-3;
    case DT_BF16: return 1.6e-2;
    default: return 0;
    }
}

/* The tolerance for a float output: that of the least precise float dtype
 * among the values computed on the way to it.  Kernels keep fused f16/bf16
 * intermediates in f32 (spec section 4) where the interpreter rounds every
 * value, so an f32 output computed through an f16 section differs from the
 * reference by f16 roundings, not f32 ones. */
static DType lineage_class(const Graph *g, const Node *o) {
    DType cls = o->type.dtype;
    if (!dtype_is_float(cls)) return cls;
    bool *seen = calloc((size_t)g->nnodes + 1, 1);
    const Node **stack = calloc((size_t)g->nnodes + 1, sizeof *stack);
    int sp = 0;
    stack[sp++] = o;
    seen[o->id] = true;
    while (sp > 0) {
        const Node *n = stack[--sp];
        if (ir_is_source(n)) continue;
        if (dtype_is_float(n->type.dtype) && tolerance(n->type.dtype) > tolerance(cls)) cls = n->type.dtype;
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] && !seen[n->in[k]->id]) seen[n->in[k]->id] = true, stack[sp++] = n->in[k];
    }
    free(seen);
    free(stack);
    return cls;
}

static bool compare_tol(const Tensor *got, const Tensor *want, double tol, double *rel, char *why, size_t n);

static bool compare(const Tensor *got, const Tensor *want, double *rel, char *why, size_t n) {
    return compare_tol(got, want, tolerance(got->dtype), rel, why, n);
}

static bool compare_tol(const Tensor *got, const Tensor *want, double tol, double *rel, char *why, size_t n) {
    char gs[160], ws[160];
    rt_shape_str(got->dtype, got->rank, got->shape, gs, sizeof gs);
    rt_shape_str(want->dtype, want->rank, want->shape, ws, sizeof ws);
    *rel = 0;
    if (strcmp(gs, ws) != 0) {
        snprintf(why, n, "got %s, expected %s", gs, ws);
        *rel = INFINITY;
        return false;
    }
    int64_t total = rt_numel(got->rank, got->shape);
    if (!dtype_is_float(got->dtype)) {
        if (got->nbytes && memcmp(got->data, want->data, got->nbytes) != 0) {
            for (int64_t i = 0; i < total; i++)
                if (rt_get(got, i) != rt_get(want, i) ||
                    (got->dtype == DT_I64 && ((const int64_t *)got->data)[i] != ((const int64_t *)want->data)[i])) {
                    snprintf(why, n, "%s: element %lld is %.17g, expected %.17g (exact)", gs, (long long)i,
                             rt_get(got, i), rt_get(want, i));
                    *rel = INFINITY;
                    return false;
                }
        }
        return true;
    }
    double err = 0, ref = 0, worst = 0;
    int64_t wi = 0;
    for (int64_t i = 0; i < total; i++) {
        double a = rt_get(got, i), b = rt_get(want, i);
        if (isnan(a) && isnan(b)) continue;
        if (!isfinite(a) || !isfinite(b)) {
            if (a == b) continue;
            snprintf(why, n, "%s: element %lld is %g, expected %.9g", gs, (long long)i, a, b);
            *rel = INFINITY;
            return false;
        }
        err += (a - b) * (a - b);
        ref += b * b;
        if (fabs(a - b) > worst) worst = fabs(a - b), wi = i;
    }
    double F = got->dtype == DT_F32 ? 0.1 : 1, den = fmax(ref, F * F * (double)total);
    *rel = den > 0 ? sqrt(err / den) : sqrt(err);
    if (!(*rel <= tol)) {
        snprintf(why, n, "%s: relative L2 error %.3g > %.3g (worst element %lld: %.9g, expected %.9g)", gs, *rel,
                 tol, (long long)wi, rt_get(got, wi), rt_get(want, wi));
        return false;
    }
    return true;
}

/* ---- one model at one level ---------------------------------------------------------- */

/* The pipelines checked: the three levels, and -O2 with fusion or the memory
 * plan left out (a plan without groups: in-place updates of single nodes;
 * groups without a plan: every value in an allocation of its own). */
enum { NCONF = 5 };
static const struct {
    const char *name;
    int opt;
    const char *disable;
} configs[NCONF] = {
    {"-O0", 0, NULL}, {"-O1", 1, NULL}, {"-O2", 2, NULL}, {"-O2 no fuse", 2, "fuse"}, {"-O2 no memplan", 2, "memplan"},
};

typedef struct {
    int models, failed;
    long kernels[NCONF], load_time[NCONF];
    double worst[NCONF][DT_COUNT];
    char worst_where[NCONF][DT_COUNT][96];
} Stats;

typedef struct {
    const char *label;
    const char *src;
    char *log;
    size_t loglen;
    FILE *logf;
    int nfail;
    bool verbose, dump;
} Check;

static void fail(Check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(Check *c, const char *fmt, ...) {
    if (!c->logf) c->logf = open_memstream(&c->log, &c->loglen);
    va_list ap;
    va_start(ap, fmt);
    fprintf(c->logf, "  %s: ", c->label);
    vfprintf(c->logf, fmt, ap);
    fputc('\n', c->logf);
    va_end(ap);
    c->nfail++;
}

static void dump_program(Check *c, const Graph *g, const KProgram *p) {
    if (!c->dump) return;
    if (!c->logf) c->logf = open_memstream(&c->log, &c->loglen);
    for (int i = 0; i < p->nkernels; i++) kir_print(g, p->kernels[i], c->logf);
}

static Graph *compile_at(Arena *a, Diag *d, const char *file, const char *src, int conf) {
    Graph *g = fe_compile_source(a, d, file, src, strlen(src));
    if (!g) return NULL;
    PipelineOptions po = {.opt_level = configs[conf].opt};
    const char *dis[1] = {configs[conf].disable};
    if (dis[0]) po.disabled = dis, po.ndisabled = 1;
    if (!pass_run_pipeline(g, d, &po)) return NULL;
    return g;
}

/* Lowers and runs g at one level; compares with the interpreter. */
static void check_level(Check *c, Graph *g, int conf, const TMap *ins, const TMap *prm, Stats *st) {
    Diag *d = diag_create();
    Tensor **iv = calloc((size_t)g->nnodes + 1, sizeof(Tensor *)), **pv = calloc((size_t)g->nnodes + 1, sizeof(Tensor *));
    Tensor **ref = calloc((size_t)g->noutputs + 1, sizeof(Tensor *)), **got = calloc((size_t)g->noutputs + 1, sizeof(Tensor *));
    int nin = 0;
    KProgram prog = {.g = g};
    if (!gather_args(g, ins, prm, iv, &nin, pv)) {
        fail(c, "%s: the graph has an input or param the model did not have", configs[conf].name);
        goto done;
    }
    if (!rt_interp_run(g, iv, nin, pv, ref, d)) {
        char *e = test_diag_text(d, false);
        fail(c, "%s: the interpreter fails:\n%s", configs[conf].name, e);
        free(e);
        goto done;
    }
    if (!cg_lower(g, &prog, d)) {
        char *e = test_diag_text(d, false);
        fail(c, "%s: lowering fails:\n%s", configs[conf].name, e);
        free(e);
        goto done;
    }
    bool seen_run = false;
    for (int i = 0; i < prog.nkernels; i++) {
        if (!kir_verify(g, prog.kernels[i], d)) fail(c, "%s: kernel %s does not verify", configs[conf].name, prog.kernels[i]->name);
        if (prog.kernels[i]->load_time && seen_run) fail(c, "%s: load-time kernel %s after a run-time one", configs[conf].name, prog.kernels[i]->name);
        seen_run |= !prog.kernels[i]->load_time;
        if (st) st->load_time[conf] += prog.kernels[i]->load_time;
    }
    if (st) st->kernels[conf] += prog.nkernels;
    if (!rt_exec_run(g, &prog, iv, nin, pv, got, cg_kir_eval, NULL, d)) {
        char *e = test_diag_text(d, false);
        fail(c, "%s: running the kernels fails:\n%s", configs[conf].name, e);
        free(e);
        dump_program(c, g, &prog);
        goto done;
    }
    double worst = 0;
    bool bad = false;
    for (int i = 0; i < g->noutputs; i++) {
        char why[512];
        double rel;
        DType cls = lineage_class(g, g->outputs[i].node);
        if (!compare_tol(got[i], ref[i], tolerance(cls), &rel, why, sizeof why)) {
            fail(c, "%s: output '%s': %s", configs[conf].name, g->outputs[i].name, why);
            bad = true;
        }
        if (rel > worst) worst = rel;
        if (st && isfinite(rel) && rel > st->worst[conf][cls]) {
            st->worst[conf][cls] = rel;
            snprintf(st->worst_where[conf][cls], sizeof st->worst_where[conf][cls], "%s", c->label);
        }
    }
    if (bad) dump_program(c, g, &prog);
    if (c->verbose) fprintf(stderr, "  %s: %d kernels, worst relative error %.3g\n", configs[conf].name, prog.nkernels, worst);
done:
    for (int i = 0; i < g->noutputs; i++) rt_tensor_free(ref[i]), rt_tensor_free(got[i]);
    free(ref), free(got), free(iv), free(pv);
    diag_destroy(d);
}

static bool check_model(Check *c, const char *file, const char *const *bind_names, const int64_t *bind_values,
                        int nbinds, uint64_t data_seed, Stats *st, int nconf) {
    TMap ins = {0}, prm = {0};
    for (int conf = 0; conf < nconf; conf++) {
        Arena *a = arena_create();
        Diag *d = diag_create();
        Graph *g = compile_at(a, d, file, c->src, conf);
        if (!g) {
            char *e = test_diag_text(d, false);
            fail(c, "%s: does not compile:\n%s", configs[conf].name, e);
            free(e);
        } else {
            if (conf == 0) {
                int nsyms = dim_sym_count(g->dims);
                int64_t syms[16] = {0};
                for (int s = 0; s < nsyms && s < 16; s++) {
                    syms[s] = 2;
                    for (int b = 0; b < nbinds; b++)
                        if (strcmp(bind_names[b], dim_sym_name(g->dims, s)) == 0) syms[s] = bind_values[b];
                    int64_t bound = dim_sym_bound(g->dims, s);
                    if (bound >= 0 && syms[s] > bound) syms[s] = bound;
                }
                if (nsyms > 16 || !make_data(g, syms, data_seed, &ins, &prm)) fail(c, "cannot make data");
            }
            if (!c->nfail) check_level(c, g, conf, &ins, &prm, st);
        }
        diag_destroy(d);
        arena_destroy(a);
        if (c->nfail) break;
    }
    tmap_free(&ins);
    tmap_free(&prm);
    if (c->logf) fclose(c->logf), c->logf = NULL;
    return c->nfail == 0;
}

static void report(Check *c) {
    static int left = 5;
    fprintf(stderr, "==== %s FAILED\n%s", c->label, c->log ? c->log : "");
    if (left-- > 0) fprintf(stderr, "---- the model:\n%s====\n", c->src);
}

static void print_stats(const char *what, const Stats *st, double secs, int nconf) {
    fprintf(stderr, "lower: %d %s, %d failed, %.1f s; worst relative errors by the least precise float dtype computed\n",
            st->models, what, st->failed, secs);
    for (int o = 0; o < nconf; o++) {
        fprintf(stderr, "  %-15s %5ld kernels (%4ld load-time); worst", configs[o].name, st->kernels[o], st->load_time[o]);
        static const DType shown[] = {DT_F32, DT_F16, DT_BF16};
        for (int k = 0; k < 3; k++)
            fprintf(stderr, " %s %.2g%s%s%s", dtype_name(shown[k]), st->worst[o][shown[k]],
                    st->worst_where[o][shown[k]][0] ? " (" : "", st->worst_where[o][shown[k]],
                    st->worst_where[o][shown[k]][0] ? ")" : "");
        fputc('\n', stderr);
    }
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

Test(lower, examples, .timeout = 600) {
    glob_t gl;
    cr_assert_eq(glob("examples/*.dsg", 0, NULL, &gl), 0, "no examples/*.dsg (run from the repository root)");
    static const char *names[] = {"B", "S", "N"};
    static const int64_t values[] = {1, 3, 1};
    Stats st = {0};
    double t0 = test_now_s();
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        char *src = read_file(gl.gl_pathv[i]);
        cr_assert_not_null(src, "cannot read %s", gl.gl_pathv[i]);
        Check c = {.label = gl.gl_pathv[i], .src = src, .verbose = test_env_long("DSC_LOWER_VERBOSE", 0) != 0,
                   .dump = test_env_long("DSC_LOWER_DUMP", 0) != 0};
        if (c.verbose) fprintf(stderr, "%s\n", c.label);
        st.models++;
        if (!check_model(&c, gl.gl_pathv[i], names, values, 3, 1000 + i, &st, 3)) {
            st.failed++;
            report(&c);
            cr_expect_fail("%s: lowered kernels disagree with the interpreter (see above)", c.label);
        }
        free(c.log);
        free(src);
    }
    print_stats("examples", &st, test_now_s() - t0, 3);
    globfree(&gl);
}

/* src with every `from` replaced by `to` (malloc'd). */
static char *subst(const char *src, const char *from, const char *to) {
    size_t n = strlen(src), lf = strlen(from), lt = strlen(to), k = 0;
    char *w = malloc(n * (lt > lf ? lt : lf) / (lf ? lf : 1) + n + 1);
    for (size_t j = 0; j < n;) {
        if (strncmp(src + j, from, lf) == 0) {
            memcpy(w + k, to, lt);
            k += lt, j += lf;
        } else {
            w[k++] = src[j++];
        }
    }
    w[k] = 0;
    return w;
}

/* The small examples again in f16 and bf16 (every f32 of the source
 * replaced): half-precision models with GEMM epilogues, a convolution with
 * padding, folded batchnorm, pooling. */
Test(lower, examples_in_half_precision, .timeout = 600) {
    static const char *files[] = {"examples/mlp.dsg", "examples/cnn_block.dsg"};
    static const char *names[] = {"B", "S", "N"};
    static const int64_t values[] = {1, 3, 1};
    Stats st = {0};
    double t0 = test_now_s();
    for (int h = 0; h < 2; h++)
        for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
            char *orig = read_file(files[i]);
            cr_assert_not_null(orig, "cannot read %s", files[i]);
            char *src = subst(orig, "f32", h ? "bf16" : "f16");
            free(orig);
            char label[128];
            snprintf(label, sizeof label, "%s in %s", files[i], h ? "bf16" : "f16");
            Check c = {.label = label, .src = src, .dump = test_env_long("DSC_LOWER_DUMP", 0) != 0};
            st.models++;
            if (!check_model(&c, files[i], names, values, 3, 2000 + i, &st, 3)) {
                st.failed++;
                report(&c);
                cr_expect_fail("%s: lowered kernels disagree with the interpreter (see above)", c.label);
            }
            free(c.log);
            free(src);
        }
    print_stats("examples in f16/bf16", &st, test_now_s() - t0, 3);
}

Test(lower, random_graphs, .timeout = 1200) {
    long nseeds = test_env_long("DSC_LOWER_SEEDS", 1000), first = test_env_long("DSC_LOWER_FIRST", 0);
    long only = test_env_long("DSC_LOWER_SEED", -1);
    if (only >= 0) first = only, nseeds = 1;
    Stats st = {0};
    double t0 = test_now_s();
    for (long s = first; s < first + nseeds; s++) {
        RandGraph rg;
        randgraph_generate((uint64_t)s, &rg);
        char label[96], file[64];
        snprintf(label, sizeof label, "seed %ld (%s, %d ops)", s, rg.kind, rg.nops);
        snprintf(file, sizeof file, "seed_%ld.dsg", s);
        Check c = {.label = label, .src = rg.text, .verbose = test_env_long("DSC_LOWER_VERBOSE", 0) != 0,
                   .dump = test_env_long("DSC_LOWER_DUMP", 0) != 0};
        if (c.verbose) fprintf(stderr, "%s: %s\n", label, rg.motifs);
        st.models++;
        if (!check_model(&c, file, rg.bind_names, rg.bind_values, rg.nbinds, (uint64_t)s, &st, NCONF)) {
            st.failed++;
            report(&c);
            cr_expect_fail("%s: lowered kernels disagree with the interpreter (see above)", label);
        }
        free(c.log);
        randgraph_free(&rg);
    }
    print_stats("random models", &st, test_now_s() - t0, NCONF);
}

/* ---- targeted cases -------------------------------------------------------------------- */

typedef struct {
    Arena *a;
    Diag *d;
    Graph *g;
    KProgram p;
} Lowered;

static Lowered lower_src(const char *src, int opt) {
    Lowered r = {arena_create(), diag_create(), NULL, {0}};
    r.g = compile_at(r.a, r.d, "t.dsg", src, opt);
    if (!r.g) {
        char *e = test_diag_text(r.d, false);
        cr_assert_fail("does not compile:\n%s", e);
    }
    r.p.g = r.g;
    if (!cg_lower(r.g, &r.p, r.d)) {
        char *e = test_diag_text(r.d, false);
        cr_assert_fail("lowering fails:\n%s", e);
    }
    return r;
}

static void lowered_free(Lowered *r) {
    diag_destroy(r->d);
    arena_destroy(r->a);
}

/* Runs a model with given inputs (params random) through both paths; returns
 * the worst relative error, or INFINITY when either run fails. */
static double run_both(const char *src, int opt, Tensor **inputs, int nin, Tensor **out_got) {
    Check c = {.label = "case", .src = src};
    Lowered r = lower_src(src, opt);
    int64_t syms[16] = {0};
    Tensor *pv[64] = {0};
    uint64_t rng = 5;
    int np = 0;
    for (int i = 0; i < r.g->nnodes; i++) {
        const Node *n = r.g->nodes[i];
        if (n->op != OP_PARAM) continue;
        int64_t shape[IR_MAX_RANK];
        for (int k = 0; k < n->type.rank; k++) cr_assert(dim_eval(r.g->dims, n->type.dim[k], syms, &shape[k], NULL, 0));
        pv[np] = rt_tensor_new(n->type.dtype, n->type.rank, shape);
        rt_fill_random(pv[np++], &rng, -1, 1);
    }
    Tensor *ref[8] = {0}, *got[8] = {0};
    double worst = 0;
    bool ok1 = rt_interp_run(r.g, inputs, nin, pv, ref, r.d);
    bool ok2 = rt_exec_run(r.g, &r.p, inputs, nin, pv, got, cg_kir_eval, NULL, r.d);
    if (!ok1 || !ok2) {
        char *e = test_diag_text(r.d, false);
        fprintf(stderr, "%s", e);
        free(e);
    }
    for (int i = 0; i < r.g->noutputs && ok1 && ok2; i++) {
        char why[512];
        double rel;
        if (!compare(got[i], ref[i], &rel, why, sizeof why)) fprintf(stderr, "%s\n", why);
        if (rel > worst) worst = rel;
    }
    for (int i = 0; i < r.g->noutputs; i++) {
        rt_tensor_free(ref[i]);
        if (out_got && i == 0)
            *out_got = got[0];
        else
            rt_tensor_free(got[i]);
    }
    for (int i = 0; i < np; i++) rt_tensor_free(pv[i]);
    (void)c;
    lowered_free(&r);
    return ok1 && ok2 ? worst : INFINITY;
}

static Tensor *tensor_f32(int rank, const int64_t *shape, uint64_t seed) {
    Tensor *t = rt_tensor_new(DT_F32, rank, shape);
    uint64_t rng = seed;
    rt_fill_random(t, &rng, -1, 1);
    return t;
}

Test(lower, names_order_and_aliases) {
    char *src = read_file("examples/cnn_block.dsg");
    cr_assert_not_null(src);
    Lowered r = lower_src(src, 2);
    cr_assert_gt(r.p.nkernels, 0);
    bool seen_run = false;
    int launching = 0;
    for (int gi = 0; gi < r.g->ngroups; gi++) launching += r.g->groups[gi]->kind != GK_ALIAS;
    for (int i = 0; i < r.p.nkernels; i++) {
        const Kernel *k = r.p.kernels[i];
        cr_expect(isalpha((unsigned char)k->name[0]) || k->name[0] == '_', "%s", k->name);
        for (const char *c = k->name; *c; c++) cr_expect(isalnum((unsigned char)*c) || *c == '_', "%s", k->name);
        for (int j = 0; j < i; j++) cr_expect_str_neq(k->name, r.p.kernels[j]->name);
        cr_expect(!(k->load_time && seen_run), "load-time kernel %s after a run-time one", k->name);
        seen_run |= !k->load_time;
        cr_expect_neq(r.g->groups[k->group]->kind, GK_ALIAS, "%s comes from an alias group", k->name);
        cr_expect_eq(k->load_time, r.g->groups[k->group]->kind == GK_CONSTANT);
        cr_expect_geq(k->npar, 1);
    }
    cr_expect_leq(r.p.nkernels, launching + 4, "%d kernels for %d groups", r.p.nkernels, launching);
    lowered_free(&r);
    free(src);
}

/* Two outputs of one elementwise group, one written over the dying operand
 * (memplan's in-place update): both must see the operand's old values. */
Test(lower, in_place_group_with_two_outputs) {
    const char *src = "model m {\n"
                      "  input x : f32[4, 8]\n"
                      "  input w : f32[4, 8]\n"
                      "  let a = concat(x, w, axis=0)\n"
                      "  let b = exp(tanh(a))\n"
                      "  output y = b * a\n"
                      "  output z = reshape(b + a * 3, shape=[64])\n"
                      "}\n";
    Lowered r = lower_src(src, 2);
    bool shared = false;
    for (int i = 0; i < r.g->noutputs; i++) {
        const Node *o = r.g->outputs[i].node;
        for (int j = 0; j < r.g->nnodes; j++)
            if (r.g->nodes[j]->op == OP_CONCAT && r.g->nodes[j]->ann.buffer == o->ann.buffer) shared = true;
    }
    cr_expect(shared, "expected memplan to update in place (the test's premise)");
    lowered_free(&r);
    int64_t shape[2] = {4, 8};
    Tensor *x[2] = {tensor_f32(2, shape, 3), tensor_f32(2, shape, 4)};
    double err = run_both(src, 2, x, 2, NULL);
    cr_expect_leq(err, 1e-5, "relative error %g", err);
    rt_tensor_free(x[0]);
    rt_tensor_free(x[1]);
}

/* A cast to bf16 inside a fused group rounds, exactly like the interpreter. */
Test(lower, rounding_cast_in_a_group) {
    const char *src = "model m {\n"
                      "  input x : f32[16]\n"
                      "  output y = cast(cast(x * 1.7, bf16), f32) * 3\n"
                      "  output z = cast(x * 1.7, f16) + cast(1.25, f16)\n"
                      "}\n";
    int64_t shape[1] = {16};
    Tensor *x = tensor_f32(1, shape, 11);
    for (int opt = 0; opt <= 2; opt++) {
        double err = run_both(src, opt, &x, 1, NULL);
        cr_expect_eq(err, 0, "-O%d: relative error %g (expected bit-exact)", opt, err);
    }
    rt_tensor_free(x);
}

/* Integer division: truncation, INT32_MIN / -1 wraps like the interpreter, and
 * a zero divisor fails the run with the interpreter's error (ir/trap.h). */
Test(lower, int_division_by_zero_is_an_error) {
    const char *src = "model m {\n"
                      "  input a : i32[4]\n"
                      "  input b : i32[4]\n"
                      "  output q = a / b\n"
                      "}\n";
    int64_t shape[1] = {4};
    Tensor *a = rt_tensor_new(DT_I32, 1, shape), *b = rt_tensor_new(DT_I32, 1, shape);
    int32_t av[4] = {7, -7, INT32_MIN, 5}, bv[4] = {2, 3, -1, -3};
    memcpy(a->data, av, sizeof av);
    memcpy(b->data, bv, sizeof bv);
    Tensor *in[2] = {a, b}, *out[1] = {NULL};
    Lowered r = lower_src(src, 2);
    cr_assert(rt_exec_run(r.g, &r.p, in, 2, NULL, out, cg_kir_eval, NULL, r.d));
    const int32_t *q = out[0]->data;
    cr_expect_eq(q[0], 3);
    cr_expect_eq(q[1], -2);
    cr_expect_eq(q[2], INT32_MIN); /* wraps like the interpreter */
    cr_expect_eq(q[3], -1);
    rt_tensor_free(out[0]);
    out[0] = NULL;
    ((int32_t *)b->data)[1] = 0;
    cr_assert_not(rt_exec_run(r.g, &r.p, in, 2, NULL, out, cg_kir_eval, NULL, r.d));
    cr_assert_null(out[0]);
    char *t = test_diag_text(r.d, false);
    cr_expect(strstr(t, "error: div: integer division by zero (-7 / 0)"), "%s", t);
    free(t);
    lowered_free(&r);
    rt_tensor_free(a);
    rt_tensor_free(b);
}

Test(lower, exec_reports_errors_without_outputs) {
    const char *src = "model m {\n"
                      "  dim B\n"
                      "  input x : f32[B, 4]\n"
                      "  param w : f32[3, 4]\n"
                      "  output y = relu(linear(x, w))\n"
                      "}\n";
    Lowered r = lower_src(src, 2);
    int64_t bad[2] = {2, 5}, good[2] = {2, 4}, wshape[2] = {3, 4};
    Tensor *x = tensor_f32(2, bad, 1), *w = tensor_f32(2, wshape, 2), *out[1] = {(Tensor *)1};
    cr_expect_not(rt_exec_run(r.g, &r.p, &x, 1, &w, out, cg_kir_eval, NULL, r.d));
    cr_expect_null(out[0]);
    cr_expect_gt(diag_error_count(r.d), 0);
    rt_tensor_free(x);
    x = tensor_f32(2, good, 1);
    Tensor *nop[1] = {NULL};
    diag_clear(r.d);
    cr_expect_not(rt_exec_run(r.g, &r.p, &x, 1, nop, out, cg_kir_eval, NULL, r.d), "a missing weight");
    cr_expect_null(out[0]);
    diag_clear(r.d);
    cr_expect(rt_exec_run(r.g, &r.p, &x, 1, &w, out, cg_kir_eval, NULL, r.d));
    rt_tensor_free(out[0]);
    rt_tensor_free(x);
    rt_tensor_free(w);
    lowered_free(&r);
}

/* Work estimates (flops) at a binding, summed over the program. */
static double program_flops(const Lowered *r, const int64_t *syms) {
    double f = 0;
    for (int i = 0; i < r->p.nkernels; i++) {
        int64_t v = 0;
        cr_assert(dim_eval(r->g->dims, r->p.kernels[i]->flops, syms, &v, NULL, 0));
        f += (double)v;
    }
    return f;
}

/* Row statistics are computed once per row: the work of softmax and
 * layernorm grows linearly in the row length, not quadratically. */
Test(lower, row_statistics_once_per_row) {
    const char *src = "model m {\n"
                      "  dim B, L\n"
                      "  input x : f32[B, L]\n"
                      "  param g : f32[L]\n"
                      "  output y = softmax(x * 2, axis=-1)\n"
                      "  output z = layernorm(x, g, eps=1e-5)\n"
                      "  output s = softmax(x, axis=0)\n"
                      "}\n";
    for (int opt = 0; opt <= 2; opt += 2) {
        Lowered r = lower_src(src, opt);
        int64_t small[2] = {4, 64}, big[2] = {4, 1024};
        double f1 = program_flops(&r, small), f2 = program_flops(&r, big);
        cr_expect_lt(f2 / f1, 16 * 1.5, "-O%d: work grows %gx for a 16x longer row", opt, f2 / f1);
        lowered_free(&r);
    }
}

/* Attention is one pass over the keys per query row (online softmax): the
 * work is linear in the head size, not quadratic. */
Test(lower, attention_single_pass) {
    const char *fmt = "model m {\n"
                      "  dim S\n"
                      "  input q : f32[2, S, %d]\n"
                      "  input k : f32[2, S, %d]\n"
                      "  input v : f32[2, S, %d]\n"
                      "  output y = attention(q, k, v)\n"
                      "  output z = matmul(softmax(matmul(q, transpose(k, perm=[0, 2, 1])) * 0.125, axis=-1), v)\n"
                      "}\n";
    double per[2];
    int heads[2] = {16, 64};
    for (int h = 0; h < 2; h++) {
        char src[1024];
        snprintf(src, sizeof src, fmt, heads[h], heads[h], heads[h]);
        Lowered r = lower_src(src, 2);
        int64_t syms[1] = {128};
        int attk = 0;
        for (int i = 0; i < r.p.nkernels; i++) attk += r.g->groups[r.p.kernels[i]->group]->kind == GK_ATTENTION;
        cr_expect_eq(attk, 2, "expected two attention kernels, got %d", attk);
        for (int i = 0; i < r.p.nkernels; i++)
            if (r.g->groups[r.p.kernels[i]->group]->kind == GK_ATTENTION)
                cr_expect_eq(r.p.kernels[i]->npar, 2, "one point per query row (batch, query)");
        per[h] = program_flops(&r, syms);
        lowered_free(&r);
    }
    cr_expect_lt(per[1] / per[0], 4 * 1.5, "work grows %gx for a 4x larger head", per[1] / per[0]);
    /* and the numbers */
    char src[1024];
    snprintf(src, sizeof src, fmt, 8, 8, 8);
    int64_t shape[3] = {2, 5, 8};
    Tensor *in[3] = {tensor_f32(3, shape, 1), tensor_f32(3, shape, 2), tensor_f32(3, shape, 3)};
    for (int opt = 0; opt <= 2; opt++) {
        double err = run_both(src, opt, in, 3, NULL);
        cr_expect_leq(err, 1e-5, "-O%d: relative error %g", opt, err);
    }
    for (int i = 0; i < 3; i++) rt_tensor_free(in[i]);
}

/* A fully masked row (-inf everywhere) gives NaN like the interpreter, and a
 * partly masked one ignores the masked keys. */
Test(lower, attention_with_infinite_mask) {
    const char *src = "model m {\n"
                      "  input q : f32[1, 3, 4]\n"
                      "  input k : f32[1, 5, 4]\n"
                      "  input v : f32[1, 5, 4]\n"
                      "  input mask : f32[1, 3, 5]\n"
                      "  output y = attention(q, k, v, mask=mask)\n"
                      "}\n";
    int64_t qs[3] = {1, 3, 4}, ks[3] = {1, 5, 4}, ms[3] = {1, 3, 5};
    Tensor *in[4] = {tensor_f32(3, qs, 1), tensor_f32(3, ks, 2), tensor_f32(3, ks, 3), rt_tensor_new(DT_F32, 3, ms)};
    float *m = in[3]->data;
    for (int j = 0; j < 5; j++) {
        m[j] = j < 2 ? -INFINITY : 0; /* row 0: first keys masked */
        m[10 + j] = 0;
    }
    Tensor *got = NULL;
    double err = run_both(src, 2, in, 4, &got);
    cr_expect_leq(err, 1e-5, "relative error %g", err);
    cr_assert_not_null(got);
    for (int e = 0; e < 12; e++) cr_expect(isfinite(((float *)got->data)[e]), "element %d", e);
    rt_tensor_free(got);
    for (int i = 0; i < 4; i++) rt_tensor_free(in[i]);
}

/* Outputs that are an input, a view of one, a constant, a view of a computed
 * value, or the same value twice: copied from wherever the value lives. */
Test(lower, outputs_from_anywhere) {
    const char *src = "model m {\n"
                      "  input x : f32[2, 3]\n"
                      "  output a = x\n"
                      "  output b = reshape(x, shape=[3, 2])\n"
                      "  output c = x * 2\n"
                      "  output d = unsqueeze(c, axes=[0])\n"
                      "  output e = c\n"
                      "  output k = reciprocal(4.0) + 1.0\n"
                      "}\n";
    int64_t shape[2] = {2, 3};
    Tensor *x = tensor_f32(2, shape, 9);
    for (int opt = 0; opt <= 2; opt++) {
        double err = run_both(src, opt, &x, 1, NULL);
        cr_expect_eq(err, 0, "-O%d: relative error %g", opt, err);
    }
    rt_tensor_free(x);
}

/* Layout: concat of three operands (one empty), slices with negative and
 * symbolic bounds and negative steps, gather with negative indices. */
Test(lower, layout_ops) {
    const char *src = "model m {\n"
                      "  dim N\n"
                      "  input x : f32[N, 4]\n"
                      "  input y : f32[2, 4]\n"
                      "  input z : f32[0, 4]\n"
                      "  input i : i64[5]\n"
                      "  let c = concat(x, z, y, axis=0)\n"
                      "  output s = slice(c, starts=[-2, 3], ends=[0 - N - 5, 0], steps=[-1, -2])\n"
                      "  output t = slice(c, starts=[1], ends=[N + 1], axes=[0])\n"
                      "  output g = gather(c, i, axis=0)\n"
                      "  output h = gather(x, i, axis=1) * 2\n"
                      "}\n";
    int64_t xs[2] = {3, 4}, ys[2] = {2, 4}, zs[2] = {0, 4}, is[1] = {5};
    Tensor *in[4] = {tensor_f32(2, xs, 1), tensor_f32(2, ys, 2), rt_tensor_new(DT_F32, 2, zs), rt_tensor_new(DT_I64, 1, is)};
    int64_t iv[5] = {0, -1, 3, -4, 2};
    memcpy(in[3]->data, iv, sizeof iv);
    for (int opt = 0; opt <= 2; opt++) {
        double err = run_both(src, opt, in, 4, NULL);
        cr_expect_eq(err, 0, "-O%d: relative error %g", opt, err);
    }
    for (int i = 0; i < 4; i++) rt_tensor_free(in[i]);
}

/* Integer semantics: wrap-around in i8/i32 after every operation, pow,
 * truncating division, saturating casts from float, sums and matmuls. */
Test(lower, integer_semantics) {
    const char *src = "model m {\n"
                      "  input a : i32[6]\n"
                      "  input b : i32[6]\n"
                      "  input f : f32[6]\n"
                      "  let p = a * b * 1000003\n"
                      "  output w = p + a\n"
                      "  output q = (p / (abs(b) + 1)) - pow(a, 3)\n"
                      "  output r = pow(b, a)\n"
                      "  output s = cast(f * 1e10, i8) + cast(cast(f * 300, i32), i8)\n"
                      "  output m = matmul(reshape(a, shape=[2, 3]), reshape(b * 70000, shape=[3, 2]))\n"
                      "  output t = reduce_sum(p * p, axes=[0])\n"
                      "}\n";
    int64_t shape[1] = {6};
    Tensor *in[3] = {rt_tensor_new(DT_I32, 1, shape), rt_tensor_new(DT_I32, 1, shape), tensor_f32(1, shape, 4)};
    int32_t av[6] = {7, 6, 2147483647, 5, -3, 0}, bv[6] = {-2, 0, 3, -1, 4, -5};
    memcpy(in[0]->data, av, sizeof av);
    memcpy(in[1]->data, bv, sizeof bv);
    for (int opt = 0; opt <= 2; opt++) {
        double err = run_both(src, opt, in, 3, NULL);
        cr_expect_eq(err, 0, "-O%d: relative error %g", opt, err);
    }
    for (int i = 0; i < 3; i++) rt_tensor_free(in[i]);
}
