/* The pass-equivalence suite.
 *
 * For every example and for DSC_EQUIV_SEEDS (default 1000) random models from
 * tests/randgraph.c: compile, make seeded random inputs and params, run the
 * reference interpreter for the reference outputs, then run every pass of the
 * pipeline in order (all of them, as at -O2, calling PassInfo.run directly)
 * and after each one check that
 *   - the pass succeeds and ir_verify holds;
 *   - the dump (ir_print_dsg) compiles again, and printing the recompiled
 *     graph gives the same text (the dump is a fixed point);
 *   - the interpreter on the pass's graph, and on the recompiled dump, gives
 *     every output with the same name, dtype and shape as the reference, and
 *     values equal up to reassociation: relative L2 error
 *     ||got - want|| / ||want|| <= 1e-5 (f32), 2e-3 (f16), 1.6e-2 (bf16);
 *     integers and bools exactly.  The reference norm is floored at
 *     F*sqrt(n) for n elements, F = 1 for f16 and bf16 and 0.1 for f32: an
 *     output whose values are all much smaller than the values it was
 *     computed from (the few small survivors of a relu after a batchnorm, a
 *     difference of nearly equal values) carries rounding errors of the
 *     scale of those values (about 1, the scale of the inputs), which a legal
 *     reassociation upstream changes; without the floor such outputs fail
 *     on rounding alone (the 16-bit tolerances are only about two ulps).
 * Params are kept by name (passes may drop or reorder them); inputs too.
 * Across the random models every operator of spec section 5 must appear at
 * least once in the compiled graphs (the coverage table is printed).
 *
 * Knobs: DSC_EQUIV_SEEDS=N (number of random models, default 1000; the
 * coverage check needs at least 200), DSC_EQUIV_FIRST=K
 * (first seed, default 0), DSC_EQUIV_SEED=K (just that seed),
 * DSC_EQUIV_DUMP=DIR (write each generated model to DIR/seed_K.dsg),
 * DSC_EQUIV_VERBOSE=1 (per model and pass: changed or not, operation counts,
 * the worst error),
 * DSC_EQUIV_MAX_REPORTS=N (full reports with the model text for the first N
 * failing models, default 5). */
#include <criterion/criterion.h>
#include <glob.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/interp.h"
#include "runtime/run.h"

#include "../randgraph.c"
#include "../support.h"

enum { MAX_PASSES = 32, DEFAULT_SEEDS = 1000 };

/* ---- small utilities ------------------------------------------------------- */

/* Tensors by name. */
typedef struct {
    const char *name;
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
    for (int i = 0; i < m->n; i++)
        rt_tensor_free(m->v[i].t);
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

/* ---- statistics across models ------------------------------------------------ */

typedef struct {
    int models, failed;
    int op_models[OP_COUNT]; /* models whose compiled graph has the operator */
    long op_nodes[OP_COUNT];
    int changed[MAX_PASSES]; /* models the pass changed (its dump differs) */
    long ops_before[MAX_PASSES], ops_after[MAX_PASSES];
    double worst[MAX_PASSES][DT_COUNT]; /* worst relative error seen, by output dtype */
    int kinds[8];
    long total_ops;
} Stats;

/* ---- random data -------------------------------------------------------------- */

static const Node *user_as(const Graph *g, const Node *x, OpKind op, int slot) {
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op == op && slot < n->nin && n->in[slot] == x) return n;
    }
    return NULL;
}

static bool eval_type(const Graph *g, const Type *t, const int64_t *syms, int64_t *shape, char *why,
                      size_t n) {
    for (int i = 0; i < t->rank; i++)
        if (!dim_eval(g->dims, t->dim[i], syms, &shape[i], why, n)) return false;
    return true;
}

/* Inputs and params for g, seeded: floats uniform in [-1, 1) (params of rank
 * >= 2 scaled by 1/sqrt(last dim); batchnorm variances and scales in
 * [0.5, 1.5), as trained networks have them: a scale near 0 makes a channel
 * nearly constant, and a norm after it amplifies rounding without bound),
 * integers in [-8, 8) except gather indices, which are in [-size, size) of
 * the gathered axis (negative ones count from the end), bools 0/1. */
static bool make_data(const Graph *g, const int64_t *syms, uint64_t seed, TMap *ins, TMap *prm, char *why,
                      size_t whyn) {
    uint64_t rng = seed * 0x9e3779b97f4a7c15ull + 17;
    int n = g->nnodes;
    ins->v = calloc((size_t)n + 1, sizeof(Named));
    prm->v = calloc((size_t)n + 1, sizeof(Named));
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes[i];
        if (x->op != OP_INPUT && x->op != OP_PARAM) continue;
        int64_t shape[IR_MAX_RANK];
        if (!eval_type(g, &x->type, syms, shape, why, whyn)) return false;
        Tensor *t = rt_tensor_new(x->type.dtype, x->type.rank, shape);
        if (!t) {
            snprintf(why, whyn, "out of memory for '%s'", x->name);
            return false;
        }
        double lo = -1, hi = 1;
        DType dt = x->type.dtype;
        if (dtype_is_int(dt)) {
            lo = -8, hi = 8;
            int64_t size = -1;
            for (int k = 0; k < g->nnodes; k++) { /* every gather that indexes with it */
                const Node *u = g->nodes[k];
                if (u->op != OP_GATHER || u->in[1] != x) continue;
                const Node *src = u->in[0];
                int ax = ir_norm_axis(ir_attr_int(u, "axis", 0), src->type.rank);
                int64_t s;
                if (ax >= 0 && dim_eval(g->dims, src->type.dim[ax], syms, &s, NULL, 0) &&
                    (size < 0 || s < size))
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
        m->v[m->n++] = (Named){x->name, t};
    }
    return true;
}

/* Runs g with the named inputs and params; outs receives g->noutputs tensors. */
static bool run_graph(const Graph *g, const TMap *ins, const TMap *prm, Tensor **outs, char **err) {
    int nin = 0, np = 0;
    Tensor **iv = calloc((size_t)g->nnodes + 1, sizeof(Tensor *)),
           **pv = calloc((size_t)g->nnodes + 1, sizeof(Tensor *));
    bool ok = true;
    char *msg = NULL;
    for (int i = 0; i < g->nnodes && ok; i++) {
        const Node *n = g->nodes[i];
        if (n->op == OP_INPUT) {
            if (!(iv[nin++] = tmap_get(ins, n->name))) {
                ok = false;
                if (asprintf(&msg, "the graph has an input '%s' the original model did not have", n->name) <
                    0)
                    msg = NULL;
            }
        } else if (n->op == OP_PARAM) {
            if (!(pv[np++] = tmap_get(prm, n->name))) {
                ok = false;
                if (asprintf(&msg, "the graph has a param '%s' the original model did not have", n->name) < 0)
                    msg = NULL;
            }
        }
    }
    if (ok) {
        Diag *d = diag_create();
        ok = rt_interp_run(g, iv, nin, pv, outs, d);
        if (!ok) msg = test_diag_text(d, true);
        diag_destroy(d);
    }
    free(iv);
    free(pv);
    *err = msg;
    return ok;
}

/* ---- comparison ----------------------------------------------------------------- */

static double tolerance(DType t) {
    switch (t) {
    case DT_F32: return 1e-5;
    case DT_F16: return 2e-3;
    case DT_BF16: return 1.6e-2;
    default: return 0;
    }
}

/* Compares one output against its reference; *rel receives the relative L2
 * error (0 for exact matches of non-floats). */
static bool compare(const Tensor *got, const Tensor *want, double *rel, char *why, size_t n) {
    char gs[160], ws[160];
    rt_shape_str(got->dtype, got->rank, got->shape, gs, sizeof gs);
    rt_shape_str(want->dtype, want->rank, want->shape, ws, sizeof ws);
    *rel = 0;
    if (strcmp(gs, ws) != 0) {
        snprintf(why, n, "got %s, expected %s", gs, ws);
        return false;
    }
    int64_t total = rt_numel(got->rank, got->shape);
    if (!dtype_is_float(got->dtype)) {
        for (int64_t i = 0; i < total; i++) {
            double a = rt_get(got, i), b = rt_get(want, i);
            bool same = got->dtype == DT_I64
                            ? ((const int64_t *)got->data)[i] == ((const int64_t *)want->data)[i]
                            : a == b;
            if (!same) {
                snprintf(why, n, "%s: element %lld is %.17g, expected %.17g (exact)", gs, (long long)i, a, b);
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
        if (!isfinite(a)) {
            snprintf(why, n, "%s: element %lld is %g, expected %.9g", gs, (long long)i, a, b);
            *rel = INFINITY;
            return false;
        }
        err += (a - b) * (a - b);
        ref += b * b;
        if (fabs(a - b) > worst) worst = fabs(a - b), wi = i;
    }
    /* the reference norm floored at F*sqrt(n) (see the file comment) */
    double F = got->dtype == DT_F32 ? 0.1 : 1, den = fmax(ref, F * F * (double)total);
    *rel = den > 0 ? sqrt(err / den) : sqrt(err);
    if (!(*rel <= tolerance(got->dtype))) {
        snprintf(why, n, "%s: relative L2 error %.3g > %.3g (worst element %lld: %.9g, expected %.9g)", gs,
                 *rel, tolerance(got->dtype), (long long)wi, rt_get(got, wi), rt_get(want, wi));
        return false;
    }
    return true;
}

/* ---- crashes: say which model and pass ------------------------------------------------ */

static const char *volatile crash_label, *volatile crash_pass, *volatile crash_src;

static void crash_write(const char *s) {
    if (s && write(2, s, strlen(s)) < 0) return;
}

static void on_crash(int sig) {
    crash_write("\n==== CRASH in the equivalence suite: ");
    crash_write(crash_label ? crash_label : "?");
    crash_write(", during ");
    crash_write(crash_pass ? crash_pass : "?");
    crash_write("\n---- the model:\n");
    crash_write(crash_src);
    crash_write("====\n");
    signal(sig, SIG_DFL);
    raise(sig);
}

static void catch_crashes(void) {
    static const int sigs[] = {SIGSEGV, SIGABRT, SIGFPE, SIGBUS, SIGILL};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        signal(sigs[i], on_crash);
}

/* ---- one model ---------------------------------------------------------------------- */

typedef struct {
    const char *label; /* "seed 17" or the example's path */
    const char *src;   /* the model text */
    Buf log;           /* what went wrong */
    int nfail;
    bool verbose;
} Check;

static void fail(Check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(Check *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    buf_printf(&c->log, "  %s: ", c->label);
    buf_vprintf(&c->log, fmt, ap);
    buf_printf(&c->log, "\n");
    va_end(ap);
    c->nfail++;
}

/* Compares every output of g (run on the data) with the reference. */
static void check_outputs(Check *c, const char *pass, const char *what, const Graph *g, const TMap *ins,
                          const TMap *prm, char *const *ref_names, Tensor *const *ref, int nref, Stats *st,
                          int pi) {
    if (g->noutputs != nref) {
        fail(c, "after %s (%s): %d outputs, the model has %d", pass, what, g->noutputs, nref);
        return;
    }
    for (int i = 0; i < nref; i++)
        if (strcmp(g->outputs[i].name, ref_names[i]) != 0) {
            fail(c, "after %s (%s): output %d is '%s', expected '%s'", pass, what, i, g->outputs[i].name,
                 ref_names[i]);
            return;
        }
    Tensor **outs = calloc((size_t)nref + 1, sizeof(Tensor *));
    char *err = NULL;
    if (!run_graph(g, ins, prm, outs, &err)) {
        fail(c, "after %s (%s): the interpreter fails:\n%s", pass, what, err ? err : "?");
        free(err);
        free(outs);
        return;
    }
    double worst = 0;
    for (int i = 0; i < nref; i++) {
        char why[512];
        double rel;
        if (!compare(outs[i], ref[i], &rel, why, sizeof why))
            fail(c, "after %s (%s): output '%s': %s", pass, what, ref_names[i], why);
        if (rel > worst) worst = rel;
        if (st && pi >= 0 && isfinite(rel) && rel > st->worst[pi][ref[i]->dtype])
            st->worst[pi][ref[i]->dtype] = rel;
        rt_tensor_free(outs[i]);
    }
    if (c->verbose) fprintf(stderr, "    %-16s %-6s worst relative error %.3g\n", pass, what, worst);
    free(outs);
}

/* Runs the whole check on one model with `passes` (NULL: the pipeline);
 * returns true when everything held. */
static bool check_model(Check *c, const char *file, const char *const *bind_names, const int64_t *bind_values,
                        int nbinds, uint64_t data_seed, Stats *st, const PassInfo *passes, int npasses) {
    if (!passes) npasses = pass_count();
    crash_label = c->label, crash_src = c->src, crash_pass = "the frontend";
    Arena *a = arena_create();
    Diag *d = diag_create();
    size_t len = strlen(c->src);
    Graph *g = fe_compile_source(a, d, file, c->src, len);
    TMap ins = {0}, prm = {0};
    Tensor **ref = NULL;
    char **ref_names = NULL;
    int nref = 0;
    char *prev = NULL;
    if (!g) {
        char *e = test_diag_text(d, true);
        fail(c, "does not compile (a generator or frontend bug):\n%s", e);
        free(e);
        goto done;
    }
    if (st) {
        bool seen[OP_COUNT] = {0};
        for (int i = 0; i < g->nnodes; i++) {
            st->op_nodes[g->nodes[i]->op]++;
            seen[g->nodes[i]->op] = true;
        }
        for (int k = 0; k < OP_COUNT; k++)
            st->op_models[k] += seen[k];
        st->total_ops += ir_count_ops(g);
    }
    /* dims: the given bindings, else 2 (within the bound) */
    int nsyms = dim_sym_count(g->dims);
    int64_t syms[16] = {0};
    if (nsyms > 16) {
        fail(c, "too many dims");
        goto done;
    }
    for (int s = 0; s < nsyms; s++) {
        syms[s] = 2;
        for (int b = 0; b < nbinds; b++)
            if (strcmp(bind_names[b], dim_sym_name(g->dims, s)) == 0) syms[s] = bind_values[b];
        int64_t bound = dim_sym_bound(g->dims, s);
        if (bound >= 0 && syms[s] > bound) syms[s] = bound;
    }
    char why[512];
    if (!make_data(g, syms, data_seed, &ins, &prm, why, sizeof why)) {
        fail(c, "cannot make inputs: %s", why);
        goto done;
    }
    nref = g->noutputs;
    ref = calloc((size_t)nref + 1, sizeof(Tensor *));
    ref_names = calloc((size_t)nref + 1, sizeof(char *));
    for (int i = 0; i < nref; i++)
        ref_names[i] = strdup(g->outputs[i].name);
    crash_pass = "the reference run";
    char *err = NULL;
    if (!run_graph(g, &ins, &prm, ref, &err)) {
        fail(c, "the interpreter fails on the compiled model (a generator or interpreter bug):\n%s",
             err ? err : "?");
        free(err);
        goto done;
    }
    for (int i = 0; i < nref; i++) {
        if (!dtype_is_float(ref[i]->dtype)) continue;
        int64_t total = rt_numel(ref[i]->rank, ref[i]->shape);
        for (int64_t j = 0; j < total; j++)
            if (!isfinite(rt_get(ref[i], j))) {
                fail(c,
                     "reference output '%s' has a non-finite element %lld (%g): the generator must keep "
                     "values tame",
                     ref_names[i], (long long)j, rt_get(ref[i], j));
                goto done;
            }
    }
    prev = test_print_dsg(g);
    for (int pi = 0; pi < npasses; pi++) {
        const PassInfo *p = passes ? &passes[pi] : pass_get(pi);
        int before = ir_count_ops(g);
        diag_clear(d);
        crash_pass = p->name; /* the checks after it too */
        if (!p->run(g, d)) {
            char *e = test_diag_text(d, true);
            fail(c, "pass %s fails:\n%s", p->name, e);
            free(e);
            break;
        }
        if (!ir_verify(g, d)) {
            char *e = test_diag_text(d, true);
            fail(c, "the graph is invalid after pass %s:\n%s", p->name, e);
            free(e);
            break;
        }
        int after = ir_count_ops(g);
        char *dump = test_print_dsg(g);
        if (c->verbose)
            fprintf(stderr, "    %-16s %s, %d -> %d operations\n", p->name,
                    strcmp(dump, prev) ? "changed" : "unchanged", before, after);
        if (st && pi < MAX_PASSES) {
            st->ops_before[pi] += before;
            st->ops_after[pi] += after;
            st->changed[pi] += strcmp(dump, prev) != 0;
        }
        free(prev);
        prev = dump;
        check_outputs(c, p->name, "graph", g, &ins, &prm, ref_names, ref, nref, st, pi);
        Diag *d2 = diag_create();
        Graph *g2 = fe_compile_source(a, d2, "dump.dsg", dump, strlen(dump));
        if (!g2) {
            char *e = test_diag_text(d2, true);
            fail(c, "the dump after pass %s does not compile:\n%s\n%s", p->name, e, dump);
            free(e);
        } else {
            char *again = test_print_dsg(g2);
            if (strcmp(again, dump) != 0)
                fail(c, "the dump after pass %s is not a fixed point; printed:\n%s\nreprinted:\n%s", p->name,
                     dump, again);
            free(again);
            check_outputs(c, p->name, "dump", g2, &ins, &prm, ref_names, ref, nref, NULL, -1);
        }
        diag_destroy(d2);
        if (c->nfail) break; /* later passes would only repeat the failure */
    }
done:
    free(prev);
    for (int i = 0; i < nref; i++) {
        rt_tensor_free(ref ? ref[i] : NULL);
        free(ref_names ? ref_names[i] : NULL);
    }
    free(ref);
    free(ref_names);
    tmap_free(&ins);
    tmap_free(&prm);
    diag_destroy(d);
    arena_destroy(a);
    crash_label = crash_src = crash_pass = NULL;
    return c->nfail == 0;
}

static int reports_left = -1;

static void report(Check *c) {
    if (reports_left < 0) reports_left = (int)test_env_long("DSC_EQUIV_MAX_REPORTS", 5);
    if (reports_left > 0) {
        reports_left--;
        fprintf(stderr, "==== %s FAILED\n%s---- the model:\n%s====\n", c->label, c->log.s ? c->log.s : "",
                c->src);
    } else {
        fprintf(stderr, "==== %s FAILED (model text left out; DSC_EQUIV_MAX_REPORTS)\n%s", c->label,
                c->log.s ? c->log.s : "");
    }
}

/* ---- the tests ------------------------------------------------------------------------ */

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

/* The examples, with small dims: they are full-size models. */
Test(equivalence, examples, .timeout = 600) {
    glob_t gl;
    cr_assert_eq(glob("examples/*.dsg", 0, NULL, &gl), 0, "no examples/*.dsg (run from the repository root)");
    static const char *names[] = {"B", "S", "N"};
    static const int64_t values[] = {1, 3, 1};
    bool verbose = test_env_long("DSC_EQUIV_VERBOSE", 0) != 0;
    double t0 = test_now_s();
    int failed = 0;
    catch_crashes();
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        char *src = read_file(gl.gl_pathv[i]);
        cr_assert_not_null(src, "cannot read %s", gl.gl_pathv[i]);
        Check c = {.label = gl.gl_pathv[i], .src = src, .verbose = verbose};
        if (verbose) fprintf(stderr, "%s\n", c.label);
        if (!check_model(&c, gl.gl_pathv[i], names, values, 3, 1000 + i, NULL, NULL, 0)) {
            report(&c);
            failed++;
            cr_expect_fail("%s: not equivalent after some pass (see above)", c.label);
        }
        free(c.log.s);
        free(src);
    }
    fprintf(stderr, "equivalence: %zu examples, %d failed, %.1f s\n", gl.gl_pathc, failed, test_now_s() - t0);
    globfree(&gl);
}

static void print_stats(const Stats *st, double secs) {
    fprintf(stderr, "equivalence: %d random models (%ld operations before the passes), %d failed, %.1f s\n",
            st->models, st->total_ops, st->failed, secs);
    fprintf(stderr, "  %-16s %8s %12s %12s   worst relative error f32 / f16 / bf16\n", "pass", "changed",
            "ops before", "ops after");
    for (int pi = 0; pi < pass_count() && pi < MAX_PASSES; pi++)
        fprintf(stderr, "  %-16s %8d %12ld %12ld   %.2g / %.2g / %.2g\n", pass_get(pi)->name, st->changed[pi],
                st->ops_before[pi], st->ops_after[pi], st->worst[pi][DT_F32], st->worst[pi][DT_F16],
                st->worst[pi][DT_BF16]);
    fprintf(stderr, "  operator coverage (models containing it / nodes):\n");
    for (int k = OP_ADD; k < OP_COUNT; k++)
        fprintf(stderr, "    %-16s %4d %6ld%s\n", ir_op_name((OpKind)k), st->op_models[k], st->op_nodes[k],
                st->op_models[k] ? "" : "   <-- never generated");
}

Test(equivalence, random_graphs, .timeout = 1800) {
    long nseeds = test_env_long("DSC_EQUIV_SEEDS", DEFAULT_SEEDS), first = test_env_long("DSC_EQUIV_FIRST", 0);
    long only = test_env_long("DSC_EQUIV_SEED", -1);
    if (only >= 0) first = only, nseeds = 1;
    const char *dump_dir = getenv("DSC_EQUIV_DUMP");
    bool verbose = test_env_long("DSC_EQUIV_VERBOSE", 0) != 0;
    Stats *st = calloc(1, sizeof *st);
    double t0 = test_now_s();
    catch_crashes();
    for (long s = first; s < first + nseeds; s++) {
        RandGraph rg;
        randgraph_generate((uint64_t)s, &rg);
        char label[64], file[64];
        snprintf(label, sizeof label, "seed %ld (%s, %d ops)", s, rg.kind, rg.nops);
        snprintf(file, sizeof file, "seed_%ld.dsg", s);
        if (dump_dir) {
            char path[1024];
            snprintf(path, sizeof path, "%s/seed_%ld.dsg", dump_dir, s);
            FILE *f = fopen(path, "w");
            if (f) fputs(rg.text, f), fclose(f);
        }
        Check c = {.label = label, .src = rg.text, .verbose = verbose};
        if (verbose) fprintf(stderr, "%s: %s\n", label, rg.motifs);
        st->models++;
        if (!check_model(&c, file, rg.bind_names, rg.bind_values, rg.nbinds, (uint64_t)s, st, NULL, 0)) {
            st->failed++;
            report(&c);
            cr_expect_fail("%s: not equivalent after some pass (see above)", label);
        }
        free(c.log.s);
        randgraph_free(&rg);
    }
    print_stats(st, test_now_s() - t0);
    if (nseeds >= 200 && only < 0) {
        for (int k = OP_ADD; k < OP_COUNT; k++)
            cr_expect_gt(st->op_models[k], 0, "operator %s was never generated in %ld models",
                         ir_op_name((OpKind)k), nseeds);
    }
    free(st);
}

/* The generator is deterministic, and seeds differ. */
Test(equivalence, generator_is_seeded) {
    RandGraph a, b, c;
    randgraph_generate(42, &a);
    randgraph_generate(42, &b);
    randgraph_generate(43, &c);
    cr_assert_str_eq(a.text, b.text);
    cr_assert_str_neq(a.text, c.text);
    randgraph_free(&a);
    randgraph_free(&b);
    randgraph_free(&c);
}

/* ---- the checker is not vacuous: deliberately wrong passes are caught ------------------- */

/* The first float add becomes a sub (same types: the verifier holds). */
static bool sabotage_add_sub(Graph *g, Diag *d) {
    (void)d;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_ADD && dtype_is_float(g->nodes[i]->type.dtype)) {
            g->nodes[i]->op = OP_SUB;
            break;
        }
    return true;
}

/* A float literal off by one part in 10^4 (a constant folded carelessly). */
static bool sabotage_const(Graph *g, Diag *d) {
    (void)d;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_CONST && g->nodes[i]->dval == DIM_INVALID && g->nodes[i]->fval != 0) {
            g->nodes[i]->fval *= 1 + 1e-4;
            break;
        }
    return true;
}

/* A node whose type no longer matches its operands. */
static bool sabotage_type(Graph *g, Diag *d) {
    (void)d;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_RELU) {
            g->nodes[i]->type.dtype = g->nodes[i]->type.dtype == DT_F32 ? DT_F16 : DT_F32;
            break;
        }
    return true;
}

/* A param renamed (as if a pass made up a weight the model never had). */
static bool sabotage_param(Graph *g, Diag *d) {
    (void)d;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_PARAM) {
            g->nodes[i]->name = "made.up";
            break;
        }
    return true;
}

/* The interpreter gets a graph whose output moved to another node. */
static bool sabotage_output(Graph *g, Diag *d) {
    (void)d;
    for (int i = 0; i < g->noutputs; i++) {
        Node *n = g->outputs[i].node;
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] && ir_type_eq(&n->in[k]->type, &n->type)) {
                g->outputs[i].node = n->in[k];
                return true;
            }
    }
    return true;
}

Test(equivalence, catches_wrong_passes) {
    const char *src = "model m {\n"
                      "  dim B\n"
                      "  input x : f32[B, 4]\n"
                      "  param w : f32[3, 4]\n"
                      "  param b : f32[3]\n"
                      "  let h = relu(linear(x, w) + b) * 1.5\n"
                      "  output y = h + 0.25\n"
                      "}\n";
    static const PassInfo bad[] = {
        {"add-to-sub", sabotage_add_sub, 0, ""},  {"const-off", sabotage_const, 0, ""},
        {"bad-type", sabotage_type, 0, ""},       {"made-up-param", sabotage_param, 0, ""},
        {"moved-output", sabotage_output, 0, ""},
    };
    static const char *names[] = {"B"};
    static const int64_t values[] = {3};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Check c = {.label = bad[i].name, .src = src};
        cr_expect_not(check_model(&c, "m.dsg", names, values, 1, 7, NULL, &bad[i], 1),
                      "sabotage '%s' was not caught", bad[i].name);
        cr_expect_not_null(c.log.s && strstr(c.log.s, bad[i].name) ? c.log.s : NULL,
                           "the report does not name the pass '%s':\n%s", bad[i].name,
                           c.log.s ? c.log.s : "");
        free(c.log.s);
    }
    /* and the same harness passes when nothing is wrong */
    Check ok = {.label = "identity", .src = src};
    cr_expect(check_model(&ok, "m.dsg", names, values, 1, 7, NULL, NULL, 0),
              "the pipeline fails on a plain model:\n%s", ok.log.s ? ok.log.s : "");
    free(ok.log.s);
}
