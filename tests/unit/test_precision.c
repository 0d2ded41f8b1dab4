/* Precision assignment (passes/precision.c) and the accuracy guard
 * (runtime/precision_guard.c).
 *
 * - Every example at f16, bf16 and int8 on the host JIT matches the reference
 *   interpreter running the same (quantised) graph, on seeded random data.
 * - Fusion puts the casts into neighbouring kernels: no group of casts only.
 * - Dumps at every precision are a fixed point of print and parse, and
 *   compiling a dump again changes nothing.
 * - BERT layer: int8 and f16 output error against f32 within the defaults
 *   (2e-2, 2e-3), int8 weights at most 27% of the f32 weight bytes.
 * - @precision hints override the default both ways; int8 refuses a
 *   symbolic K.
 * - The guard with a tight budget moves ops back to f32, and the final
 *   assignment, measured again here independently, meets the budget.
 * The quantisation arithmetic itself is checked against numpy in
 * tests/precision.sh. */
#include <criterion/criterion.h>
#include <glob.h>
#include <math.h>
#include <string.h>

#include "codegen/lower.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "passes/precision.h"
#include "runtime/host_jit.h"
#include "runtime/precision_guard.h"
#include "runtime/run.h"
#include "tests/support.h"

static const DType precs[] = {DT_F16, DT_BF16, DT_I8};
static const char *bind_names[] = {"B", "S", "N"};
static const int64_t bind_values[] = {2, 5, 1};

/* Compiles `path` (or `src` when non-NULL) at -O2 with precision dt and keep. */
static Graph *compile(Arena *a, Diag *d, const char *path, const char *src, DType dt, const bool *keep) {
    Graph *g = src ? fe_compile_source(a, d, path, src, strlen(src)) : fe_compile_file(a, d, path);
    cr_assert_not_null(g, "%s does not compile:\n%s", path, test_diag_text(d, true));
    if (dt != DT_F32 || keep) {
        g->precision = arena_alloc(a, sizeof(PrecisionRequest));
        g->precision->dtype = dt;
        g->precision->keep_f32 = keep;
        g->precision->nkeep = keep ? PREC_MAX_CAND : 0;
    }
    PipelineOptions po = {.opt_level = 2};
    cr_assert(pass_run_pipeline(g, d, &po), "%s at %s:\n%s", path, pass_precision_name(dt),
              test_diag_text(d, true));
    return g;
}

/* Runs g on seeded random inputs and weights; the caller frees the outputs. */
static Tensor **run(Graph *g, const char *path, RtDevice dev, uint64_t seed, const int64_t *binds) {
    Arena *a = arena_create();
    Diag *d = diag_create();
    RunOptions ro = {.random_inputs = true,
                     .random_weights = true,
                     .seed = seed,
                     .device = dev,
                     .nbinds = 3,
                     .bind_names = bind_names,
                     .bind_values = binds ? binds : bind_values};
    ro.as_written = fe_compile_file(a, d, path);
    Tensor **out = calloc((size_t)g->noutputs + 1, sizeof(Tensor *));
    cr_assert(rt_run_model(g, path, &ro, out, d), "%s on %s:\n%s", path, rt_device_name(dev),
              test_diag_text(d, true));
    diag_destroy(d);
    arena_destroy(a);
    return out;
}

static void free_outs(Tensor **t, int n) {
    for (int i = 0; i < n; i++)
        rt_tensor_free(t[i]);
    free(t);
}

/* Calls check for every example at every lower precision, with a fresh
 * arena and diagnostics each time; `p` indexes precs[]. */
typedef void (*ExampleCheck)(const char *path, size_t index, size_t p, Arena *a, Diag *d);

static void each_example(ExampleCheck check) {
    glob_t gl;
    cr_assert_eq(glob("examples/*.dsg", 0, NULL, &gl), 0, "no examples/*.dsg (run from the repository root)");
    for (size_t i = 0; i < gl.gl_pathc; i++)
        for (size_t p = 0; p < sizeof precs / sizeof precs[0]; p++) {
            Arena *a = arena_create();
            Diag *d = diag_create();
            check(gl.gl_pathv[i], i, p, a, d);
            diag_destroy(d);
            arena_destroy(a);
        }
    globfree(&gl);
}

/* The host accumulates in f32 where the interpreter uses double, so a value
 * rounded to f16/bf16 may come out one unit in the last place apart: the
 * tolerance is that unit (2^-11, 2^-8) for f16/bf16, and f32's for int8,
 * whose integer accumulation is exact on both. */
static const double tol[] = {0x1p-11, 0x1p-8, 1e-5};

static void host_matches_reference(const char *path, size_t i, size_t p, Arena *a, Diag *d) {
    Graph *g = compile(a, d, path, NULL, precs[p], NULL);
    int lowered = 0;
    for (int c = 0; c < g->precision->ncand; c++)
        lowered += g->precision->cand[c].chosen != DT_F32;
    cr_expect_gt(lowered, 0, "%s at %s: no op lowered", path, pass_precision_name(precs[p]));
    Tensor **cpu = run(g, path, RT_DEVICE_CPU, 7 + i, NULL), **ref = run(g, path, RT_DEVICE_REF, 7 + i, NULL);
    for (int o = 0; o < g->noutputs; o++) {
        double e = rt_outputs_rel_error(&cpu[o], &ref[o], 1);
        cr_expect(e <= tol[p], "%s at %s: output %s: host vs interpreter relative L2 error %g > %g", path,
                  pass_precision_name(precs[p]), g->outputs[o].name, e, tol[p]);
    }
    free_outs(cpu, g->noutputs);
    free_outs(ref, g->noutputs);
}

Test(precision, examples_host_matches_reference, .timeout = 600) {
    cr_assert(rt_host_available(), "the host JIT is needed (build with LLVM)");
    each_example(host_matches_reference);
}

static void no_cast_only_group(const char *path, size_t i, size_t p, Arena *a, Diag *d) {
    (void)i;
    Graph *g = compile(a, d, path, NULL, precs[p], NULL);
    int casts = 0;
    for (int k = 0; k < g->ngroups; k++) {
        const Group *grp = g->groups[k];
        if (grp->kind == GK_CONSTANT) continue; /* weights converted once when they load */
        bool only_casts = true;
        for (int j = 0; j < grp->nnodes; j++) {
            casts += grp->nodes[j]->op == OP_CAST;
            only_casts &= grp->nodes[j]->op == OP_CAST;
        }
        cr_expect(!only_casts, "%s at %s: group %d (%s) only casts", path, pass_precision_name(precs[p]),
                  grp->id, ir_group_kind_name(grp->kind));
    }
    cr_expect_gt(casts, 0, "%s at %s: no casts at all", path, pass_precision_name(precs[p]));
}

Test(precision, no_cast_only_group) { each_example(no_cast_only_group); }

/* Removes every `reason="..."` (no escaped quotes in reasons) in place. */
static void strip_reasons(char *s) {
    char *r;
    while ((r = strstr(s, "reason=\""))) {
        char *end = strchr(r + 8, '"');
        memmove(r, end + 1, strlen(end + 1) + 1);
    }
}

static int run_kernels(Graph *g) {
    Diag *d = diag_create();
    KProgram prog = {.g = g};
    cr_assert(cg_lower(g, &prog, d), "%s", test_diag_text(d, true));
    int n = 0;
    for (int i = 0; i < prog.nkernels; i++)
        n += !prog.kernels[i]->load_time;
    diag_destroy(d);
    return n;
}

/* The casts are rounded inside the kernels that read and write them (no
 * kernel of their own), so a lower precision launches exactly as many
 * kernels per inference as f32 (int8 adds the activation quantisations,
 * each one row reduction). */
static void casts_add_no_kernels(const char *path, size_t i, size_t p, Arena *a, Diag *d) {
    (void)i;
    if (precs[p] == DT_I8) return; /* adds the quantising reductions */
    int base = run_kernels(compile(a, d, path, NULL, DT_F32, NULL));
    int k = run_kernels(compile(a, d, path, NULL, precs[p], NULL));
    cr_expect_eq(k, base, "%s at %s: %d kernels per inference, f32 has %d", path,
                 pass_precision_name(precs[p]), k, base);
}

Test(precision, casts_add_no_kernels) { each_example(casts_add_no_kernels); }

static void dump_fixed_point(const char *path, size_t i, size_t p, Arena *a, Diag *d) {
    (void)i;
    const char *pn = pass_precision_name(precs[p]);
    Graph *g = compile(a, d, path, NULL, precs[p], NULL);
    char *dump = test_print_dsg(g);
    Graph *g2 = fe_compile_source(a, d, "dump.dsg", dump, strlen(dump));
    cr_assert_not_null(g2, "%s at %s: the dump does not compile:\n%s\n%s", path, pn, test_diag_text(d, true),
                       dump);
    char *again = test_print_dsg(g2);
    cr_expect_str_eq(again, dump, "%s at %s: print(parse(dump)) differs", path, pn);
    /* compiling the dump again, even asking for the same precision, changes nothing
     * but fusion's reasons (which name a shared input by its name, and the dump
     * names every temporary) */
    Graph *g3 = compile(a, d, "dump.dsg", dump, precs[p], NULL);
    char *third = test_print_dsg(g3);
    strip_reasons(third);
    strip_reasons(dump);
    cr_expect_str_eq(third, dump, "%s at %s: recompiling the dump changes it", path, pn);
    free(third);
    free(again);
    free(dump);
}

Test(precision, dumps_are_fixed_points) { each_example(dump_fixed_point); }

static double weight_bytes(Graph *g, const int64_t *syms) {
    GraphStats st;
    Diag *d = diag_create();
    cr_assert(pass_graph_stats(g, syms, &st, d));
    diag_destroy(d);
    return st.weight_bytes;
}

Test(precision, bert_error_and_weight_bytes, .timeout = 300) {
    const char *path = "examples/bert_layer.dsg";
    static const int64_t binds[] = {1, 16, 1};
    Arena *a = arena_create();
    Diag *d = diag_create();
    Graph *f32 = compile(a, d, path, NULL, DT_F32, NULL);
    Tensor **ref = run(f32, path, RT_DEVICE_CPU, 11, binds);
    int64_t syms[2] = {1, 128};
    double wf32 = weight_bytes(f32, syms);
    cr_assert_eq(wf32, 4.0 * (4 * 768 * 768 + 2 * 768 * 3072 + 9 * 768 + 3072), "f32 weight bytes %.0f",
                 wf32);
    static const double budget[] = {2e-3, -1, 2e-2};
    for (size_t p = 0; p < 3; p++) {
        Graph *g = compile(a, d, path, NULL, precs[p], NULL);
        Tensor **out = run(g, path, RT_DEVICE_CPU, 11, binds);
        double e = rt_outputs_rel_error(out, ref, g->noutputs);
        cr_expect(e > 0, "%s: identical to f32: nothing lowered?", pass_precision_name(precs[p]));
        if (budget[p] > 0)
            cr_expect(e <= budget[p], "%s: error against f32 %g > %g", pass_precision_name(precs[p]), e,
                      budget[p]);
        double w = weight_bytes(g, syms);
        if (precs[p] == DT_I8)
            cr_expect(w <= 0.27 * wf32, "int8 weights %.0f bytes = %.3f of f32", w, w / wf32);
        else
            cr_expect(w <= 0.51 * wf32, "%s weights %.0f bytes = %.3f of f32", pass_precision_name(precs[p]),
                      w, w / wf32);
        free_outs(out, g->noutputs);
    }
    free_outs(ref, f32->noutputs);
    diag_destroy(d);
    arena_destroy(a);
}

static const char hinted[] = "model h {\n"
                             "  dim B\n"
                             "  input x : f32[B, 16]\n"
                             "  param w1 : f32[32, 16]\n"
                             "  param w2 : f32[8, 32]\n"
                             "  let a = linear(x, w1) @precision(f16)\n"
                             "  output y = linear(a, w2)\n"
                             "}\n";

static DType chosen(const Graph *g, int i) { return g->precision->cand[i].chosen; }

Test(precision, hints_override_the_default) {
    Arena *a = arena_create();
    Diag *d = diag_create();
    /* default f32: only the hinted op changes (a request is needed to read the table) */
    Graph *g = compile(a, d, "h.dsg", hinted, DT_F32, (bool[PREC_MAX_CAND]){0});
    cr_assert_eq(g->precision->ncand, 2);
    cr_expect_eq(chosen(g, 0), DT_F16);
    cr_expect_eq(chosen(g, 1), DT_F32);
    /* int8 by default, but the hint says f16; and a hint of f32 keeps f32 */
    g = compile(a, d, "h.dsg", hinted, DT_I8, NULL);
    cr_expect_eq(chosen(g, 0), DT_F16);
    cr_expect_eq(chosen(g, 1), DT_I8);
    char *src = strdup(hinted);
    memcpy(strstr(src, "@precision(f16)"), "@precision(f32)", 15);
    g = compile(a, d, "h.dsg", src, DT_I8, NULL);
    cr_expect_eq(chosen(g, 0), DT_F32);
    cr_expect_eq(chosen(g, 1), DT_I8);
    char *dump = test_print_dsg(g);
    cr_expect(strstr(dump, "@precision(dtype=f32)") && strstr(dump, "@precision(dtype=i8)"), "%s", dump);
    free(dump);
    free(src);
    /* the guard's keep list */
    g = compile(a, d, "h.dsg", hinted, DT_BF16, (bool[PREC_MAX_CAND]){false, true});
    cr_expect_eq(chosen(g, 0), DT_F16);
    cr_expect_eq(chosen(g, 1), DT_F32);
    diag_destroy(d);
    arena_destroy(a);
}

Test(precision, int8_needs_a_constant_k) {
    static const char src[] = "model k {\n"
                              "  dim B, K\n"
                              "  input x : f32[B, K]\n"
                              "  param w : f32[4, K]\n"
                              "  output y = linear(x, w)\n"
                              "}\n";
    Arena *a = arena_create();
    Diag *d = diag_create();
    Graph *g = compile(a, d, "k.dsg", src, DT_I8, NULL);
    cr_assert_eq(g->precision->ncand, 1);
    cr_expect_eq(chosen(g, 0), DT_F32);
    cr_expect(g->precision->cand[0].why && strstr(g->precision->cand[0].why, "constant K"));
    for (int i = 0; i < g->nnodes; i++)
        cr_expect_neq(g->nodes[i]->type.dtype, DT_I8);
    diag_destroy(d);
    arena_destroy(a);
}

Test(precision, guard_moves_ops_back_until_the_budget_holds, .timeout = 300) {
    const char *path = "examples/mlp.dsg";
    static const int64_t binds[] = {16, 1, 1};
    GuardOptions go = {.dtype = DT_I8, .budget = 1e-3, .opt_level = 2};
    go.run = (RunOptions){.random_inputs = true,
                          .random_weights = true,
                          .seed = 3,
                          .device = RT_DEVICE_CPU,
                          .nbinds = 1,
                          .bind_names = bind_names,
                          .bind_values = binds};
    char *table = NULL;
    size_t len = 0;
    go.report = open_memstream(&table, &len);
    GuardResult r;
    Diag *d = diag_create();
    cr_assert(rt_precision_guard(path, &go, &r, d), "%s", test_diag_text(d, true));
    fclose(go.report);
    cr_assert_eq(r.ncand, 3);
    cr_expect(r.error_all > go.budget, "all-int8 error %g is within the tight budget: the test shows nothing",
              r.error_all);
    cr_expect_gt(r.moved, 0);
    cr_expect_lt(r.moved, 3, "everything moved back: nothing left to show");
    cr_expect(r.met && r.error_final <= go.budget, "final %g", r.error_final);
    cr_expect(strstr(table, "moved back to f32") && strstr(table, "within budget"), "%s", table);
    /* the most sensitive ops went back: every kept op contributes more than every lowered one */
    for (int i = 0; i < r.ncand; i++)
        for (int j = 0; j < r.ncand; j++)
            if (r.keep[i] && !r.keep[j]) cr_expect_geq(r.alone[i], r.alone[j]);
    /* measured again, independently of the guard's own runs */
    Arena *a = arena_create();
    Graph *f32 = compile(a, d, path, NULL, DT_F32, NULL);
    Graph *g = compile(a, d, path, NULL, DT_I8, r.keep);
    int f32_ops = 0;
    for (int i = 0; i < g->precision->ncand; i++)
        f32_ops += chosen(g, i) == DT_F32;
    cr_expect_eq(f32_ops, r.moved);
    char *dump = test_print_dsg(g);
    cr_expect(strstr(dump, "@precision(dtype=f32)"), "the final assignment is not in the dump:\n%s", dump);
    free(dump);
    Tensor **want = run(f32, path, RT_DEVICE_REF, 3, binds), **got = run(g, path, RT_DEVICE_REF, 3, binds);
    double e = rt_outputs_rel_error(got, want, g->noutputs);
    cr_expect(e <= go.budget, "final assignment on the interpreter: error %g > %g", e, go.budget);
    free_outs(want, f32->noutputs);
    free_outs(got, g->noutputs);
    free(table);
    diag_destroy(d);
    arena_destroy(a);
}
