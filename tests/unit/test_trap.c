/* Run-time errors of generated kernels (ir/trap.h): every backend reports what
 * the reference interpreter reports.
 *
 * Each case is a small model and seeded random inputs with one bad value
 * planted at a random position (an out-of-range gather index, positive or
 * negative; a zero divisor; integer 0 to a negative power), alone and fused
 * into elementwise chains.  The interpreter runs the unoptimized graph; the
 * kernel-IR evaluator and the host JIT run the lowered -O2 program.  Their
 * diagnostics (location, operator, message) must be the same text, and the
 * run must fail.  Each case also runs with the bad value replaced by a good
 * one: then every backend succeeds and agrees with the interpreter.  The CUDA
 * kernels of every case must compile with NVRTC (no GPU here: the fake-driver
 * executor tests, test_cuda_exec.c, cover the launch ABI). */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/kir_eval.h"
#include "codegen/lower.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "ir/trap.h"
#include "passes/passes.h"
#include "runtime/exec.h"
#include "runtime/host_jit.h"
#include "runtime/interp.h"
#include "runtime/nvrtc.h"
#include "runtime/run.h"

#include "../support.h"

enum { MAXIN = 4 };

static uint64_t seed_state(const char *name) {
    uint64_t s = (uint64_t)test_env_long("DSC_TEST_SEED", 20261128);
    for (const char *p = name; *p; p++)
        s = s * 131 + (unsigned char)*p;
    return s * 0x9e3779b97f4a7c15ull + 1;
}

static uint64_t next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* One input: its fill (uniform in [lo, hi), integers rounded down) and, for
 * the bad run, one element set to `bad`. */
typedef struct {
    double lo, hi;
    bool plant;
    int64_t bad, good; /* the planted value, and what replaces it in the good run */
} Fill;

typedef struct {
    const char *name;
    const char *src;
    Fill fill[MAXIN];
    const char *want;          /* the interpreter's message, checked too (without the location) */
    int64_t dim_bad, dim_good; /* the value of every dim symbol in the bad and the good run */
} Case;

static Tensor **make_inputs(const Graph *g, const Case *c, bool bad, uint64_t seed, int *nin) {
    Tensor **in = calloc(MAXIN, sizeof *in);
    int k = 0;
    uint64_t s = seed;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op != OP_INPUT) continue;
        cr_assert_lt(k, MAXIN);
        int64_t shape[IR_MAX_RANK], syms[8];
        cr_assert_leq(dim_sym_count(g->dims), 8);
        for (int i = 0; i < 8; i++)
            syms[i] = bad ? c->dim_bad : c->dim_good;
        for (int d = 0; d < n->type.rank; d++)
            cr_assert(dim_eval(g->dims, n->type.dim[d], syms, &shape[d], NULL, 0));
        Tensor *t = rt_tensor_new(n->type.dtype, n->type.rank, shape);
        cr_assert_not_null(t);
        const Fill *f = &c->fill[k];
        int64_t cnt = 1;
        for (int d = 0; d < n->type.rank; d++)
            cnt *= shape[d];
        for (int64_t j = 0; j < cnt; j++) {
            double u = (double)(next(&s) >> 11) / 9007199254740992.0, v = f->lo + u * (f->hi - f->lo);
            rt_set(t, j, dtype_is_float(t->dtype) ? v : floor(v));
        }
        if (f->plant && cnt > 0) {
            int64_t at = (int64_t)(next(&s) % (uint64_t)cnt);
            rt_set(t, at, (double)(bad ? f->bad : f->good));
        }
        in[k++] = t;
    }
    *nin = k;
    return in;
}

static void free_tensors(Tensor **t, int n) {
    for (int i = 0; i < n; i++)
        rt_tensor_free(t[i]);
    free(t);
}

static char *run_text(Diag *d) {
    char *s = test_diag_text(d, false);
    return s ? s : strdup("");
}

/* Outputs of two backends agree: integers exactly, floats to 1e-6 relative. */
static void same_outputs(const char *who, Tensor *const *a, Tensor *const *b, int n) {
    for (int i = 0; i < n; i++) {
        cr_assert_not_null(a[i]);
        cr_assert_not_null(b[i]);
        cr_assert_eq(a[i]->nbytes, b[i]->nbytes, "%s: output %d size", who, i);
        int64_t cnt = (int64_t)(a[i]->nbytes / (size_t)dtype_size(a[i]->dtype));
        for (int64_t j = 0; j < cnt; j++) {
            double x = rt_get(a[i], j), y = rt_get(b[i], j);
            cr_assert(fabs(x - y) <= 1e-6 * fabs(x), "%s: output %d element %" PRId64 ": %g vs %g", who, i, j,
                      x, y);
        }
    }
}

typedef struct {
    const char *name;
    KernelLauncher launch;
    void *ctx;
} Backend;

static void check_case(const Case *c) {
    Arena *a = arena_create();
    Diag *d = diag_create();
    char file[96];
    snprintf(file, sizeof file, "%s.dsg", c->name);
    Graph *ref = fe_compile_source(a, d, file, c->src, strlen(c->src));
    Graph *g = fe_compile_source(a, d, file, c->src, strlen(c->src));
    cr_assert(ref && g && diag_error_count(d) == 0, "%s", run_text(d));
    PipelineOptions po = {.opt_level = 2};
    cr_assert(pass_run_pipeline(g, d, &po), "%s", run_text(d));
    KProgram prog = {0};
    cr_assert(cg_lower(g, &prog, d), "%s", run_text(d));
    bool traps = false;
    for (int i = 0; i < prog.nkernels; i++)
        traps |= kir_has_trap(prog.kernels[i]->body);
    cr_assert(traps, "%s: no kernel checks anything", c->name);

    HostBackend *hb = NULL;
    if (rt_host_available()) {
        HostOptions ho = {.no_cache = true};
        hb = rt_host_create(&ho, d);
        cr_assert_not_null(hb, "%s", run_text(d));
    }
    Backend be[2] = {{"kir", cg_kir_eval, NULL}, {"cpu", rt_host_launch, hb}};
    int nbe = hb ? 2 : 1;
    uint64_t seed = seed_state(c->name);
    for (int bad = 1; bad >= 0; bad--) {
        int nin;
        Tensor **in = make_inputs(ref, c, bad, seed, &nin);
        Tensor *want[4] = {0};
        Diag *dr = diag_create();
        bool rok = rt_interp_run(ref, in, nin, NULL, want, dr);
        char *rtext = run_text(dr);
        if (bad) {
            cr_assert_not(rok, "%s: the interpreter accepted the bad input", c->name);
            cr_assert(strstr(rtext, c->want), "%s: interpreter said:\n%s\nwanted: %s", c->name, rtext,
                      c->want);
            cr_assert_eq(diag_error_count(dr), 1, "%s", rtext);
        } else {
            cr_assert(rok, "%s: good input: %s", c->name, rtext);
        }
        for (int b = 0; b < nbe; b++) {
            Tensor *got[4] = {0};
            Diag *db = diag_create();
            bool ok = rt_exec_run(g, &prog, in, nin, NULL, got, be[b].launch, be[b].ctx, db);
            char *text = run_text(db);
            if (bad) {
                cr_assert_not(ok, "%s: %s accepted the bad input", c->name, be[b].name);
                cr_assert_str_eq(text, rtext, "%s: %s said:\n%s\nthe interpreter:\n%s", c->name, be[b].name,
                                 text, rtext);
                for (int o = 0; o < g->noutputs; o++)
                    cr_assert_null(got[o]);
            } else {
                cr_assert(ok, "%s: %s failed on good input: %s", c->name, be[b].name, text);
                same_outputs(be[b].name, want, got, g->noutputs);
            }
            for (int o = 0; o < g->noutputs; o++)
                rt_tensor_free(got[o]);
            free(text);
            diag_destroy(db);
        }
        for (int o = 0; o < ref->noutputs; o++)
            rt_tensor_free(want[o]);
        free(rtext);
        diag_destroy(dr);
        free_tensors(in, nin);
    }

    /* CUDA: the kernels with their traps compile for a supported architecture */
    char why[256];
    if (!rt_nvrtc_available(why, sizeof why)) {
        rt_host_destroy(hb);
        diag_destroy(d);
        arena_destroy(a);
        SKIP_UNLESS_CI("NVRTC: %s", why);
    }
    int archs[64], na = rt_nvrtc_supported_archs(archs, 64, d);
    cr_assert_gt(na, 0, "%s", run_text(d));
    CudaBuildOptions co = {.sm = archs[na - 1], .no_cache = true, .threads = 1};
    CudaBuild cb = {0};
    cr_assert(rt_cuda_build(g, &prog, &co, &cb, d), "%s", run_text(d));
    bool cas = false;
    for (int i = 0; i < cb.n; i++)
        cas |= strstr(cb.kernels[i].rec.source, "atomicCAS") != NULL;
    cr_assert(cas, "%s: no CUDA kernel records a trap", c->name);
    rt_cuda_build_free(&cb);
    rt_host_destroy(hb);
    diag_destroy(d);
    arena_destroy(a);
}

#define IDX(lo_, hi_, bad_, good_)                                                                           \
    { (lo_), (hi_), true, (bad_), (good_) }
#define FLT                                                                                                  \
    { -1, 1, false, 0, 0 }
#define NONZERO(lo_, hi_)                                                                                    \
    { (lo_), (hi_), true, 0, 3 }

static const Case cases[] = {
    {"gather_high",
     "model gather_high {\n  input x : f32[4, 3]\n  input i : i64[5]\n  output y = gather(x, i, axis=0)\n}\n",
     {FLT, IDX(0, 4, 7, 2)},
     "gather: index 7 out of range for axis 0 of size 4 (tensor 'i')",
     0,
     0},
    {"gather_negative",
     "model gather_negative {\n  input x : f32[4, 3]\n  input i : i32[2, 3]\n  output y = gather(x, i, "
     "axis=1)\n}\n",
     {FLT, IDX(-3, 3, -4, -3)},
     "gather: index -4 out of range for axis 1 of size 3 (tensor 'i')",
     0,
     0},
    {"gather_fused",
     "model gather_fused {\n  dim M\n  input x : f32[M, 5]\n  input i : i64[4]\n  input z : f32[4, 5]\n"
     "  output y = relu(gather(exp(x) * 2.0, i, axis=0) + z) - 1.0\n}\n",
     {FLT, IDX(-6, 6, 6, 5), FLT},
     "gather: index 6 out of range for axis 0 of size 6 (tensor 'i')",
     6,
     6},
    {"div_i32",
     "model div_i32 {\n  input a : i32[3, 4]\n  input b : i32[3, 4]\n  output y = a / b\n}\n",
     {{-50, 50, false, 0, 0}, NONZERO(1, 9)},
     "div: integer division by zero (",
     0,
     0},
    {"div_i64_fused",
     "model div_i64_fused {\n  input a : i64[16]\n  input b : i64[16]\n  input c : i64[16]\n"
     "  output y = (a * 3) / (b - c) + a\n}\n",
     {{-99, 99, false, 0, 0}, NONZERO(5, 9), {0, 1, false, 0, 0}},
     "div: integer division by zero (",
     0,
     0},
    {"div_i8_bcast",
     "model div_i8_bcast {\n  input a : i8[5, 7]\n  input b : i8[7]\n  output y = a / b\n}\n",
     {{-100, 100, false, 0, 0}, NONZERO(1, 20)},
     "div: integer division by zero (",
     0,
     0},
    {"pow_zero_negative",
     "model pow_zero_negative {\n  input a : i32[9]\n  input e : i32[9]\n  output y = pow(a * a, e)\n}\n",
     {NONZERO(1, 4), {-3, 0, false, 0, 0}},
     "pow: integer 0 raised to the negative power -",
     0,
     0},
};

Test(trap, gather_high) { check_case(&cases[0]); }
Test(trap, gather_negative) { check_case(&cases[1]); }
Test(trap, gather_fused) { check_case(&cases[2]); }
Test(trap, div_i32) { check_case(&cases[3]); }
Test(trap, div_i64_fused) { check_case(&cases[4]); }
Test(trap, div_i8_bcast) { check_case(&cases[5]); }
Test(trap, pow_zero_negative) { check_case(&cases[6]); }

/* A maximum of nothing: the bad run binds N = 0. */
Test(trap, reduce_max_of_nothing) {
    const Case c = {"reduce_max_of_nothing",
                    "model reduce_max_of_nothing {\n  dim N\n  input x : f32[N, 3]\n  input z : f32[3]\n"
                    "  output y = reduce_max(x * 2.0, axes=[0], keepdims=false) + z\n}\n",
                    {FLT, FLT},
                    "reduce_max: reducing over zero elements",
                    0,
                    5};
    check_case(&c);
}

/* The shared text: the interpreter's messages come from ir_trap_message. */
Test(trap, messages) {
    Arena *a = arena_create();
    Diag *d = diag_create();
    const char *src = "model m {\n  input x : f32[4]\n  input i : i64[2]\n  output y = gather(x, i)\n}\n";
    Graph *g = fe_compile_source(a, d, "m.dsg", src, strlen(src));
    cr_assert_not_null(g);
    const Node *n = NULL;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_GATHER) n = g->nodes[i];
    cr_assert_not_null(n);
    KTrapRecord r = {KTRAP_GATHER_INDEX, n->id, {-9, 0, 4}};
    cr_assert_not(ir_trap_report(g, &r, d));
    char *t = run_text(d);
    cr_assert_str_eq(t,
                     "m.dsg:4:14: error: gather: index -9 out of range for axis 0 of size 4 (tensor 'i')\n");
    free(t);
    diag_clear(d);
    KTrapRecord none = {0};
    cr_assert(ir_trap_report(g, &none, d));
    cr_assert_eq(diag_error_count(d), 0);
    KTrapRecord bogus = {KTRAP_DIV_ZERO, g->nnodes + 3, {1, 0, 0}};
    cr_assert_not(ir_trap_report(g, &bogus, d));
    t = run_text(d);
    cr_assert(strstr(t, "a backend bug"), "%s", t);
    free(t);
    diag_destroy(d);
    arena_destroy(a);
}
