/* The host backend (LLVM JIT): hand-built kernels for every KOp and storage
 * dtype against values computed here, the math helpers against
 * double-precision libm over a sweep of f32, the f16/bf16 conversions bit
 * for bit against ir/scalar.c (with and without F16C), kernel structure
 * (parallel spaces split into chunks, loops, ifs, lazy selects, dims, in-place
 * buffers), the thread pool, and the object cache (miss, hit, corrupt entry).
 * Then equivalence: every example and DSC_HOST_SEEDS (default 200) random
 * models from tests/randgraph.c, compiled at -O2 (every fifth random model
 * also at -O0), lowered (codegen/lower.c) and run by rt_exec_run with the
 * host launcher, against the reference interpreter on the same graph:
 * relative L2 error <= 1e-4 (f32), 2e-3 (f16), 1.6e-2 (bf16), integers and
 * bools exact (an f32 output computed through f16/bf16 values gets the
 * 16-bit tolerance: the interpreter rounds those values, fused kernels keep
 * them in f32); the reference norm is floored as in test_equivalence.c (an
 * output much smaller than the values it came from carries their rounding
 * errors).  Random models are also run on the kernel-IR evaluator
 * (codegen/kir_eval.c), which must agree within the same tolerances.  One backend serves every model, so its kernel table is tested
 * across programs whose arenas reuse addresses.  Knobs: DSC_HOST_SEEDS=N,
 * DSC_HOST_SEED=K (just that seed), DSC_HOST_VERBOSE=1.
 * Without LLVM only the thread pool and the "not built" report are tested. */
#include <criterion/criterion.h>
#include <glob.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codegen/kir_eval.h"
#include "codegen/lower.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "ir/kir.h"
#include "passes/passes.h"
#include "runtime/exec.h"
#include "runtime/host_jit.h"
#include "runtime/interp.h"
#include "runtime/run.h"
#include "runtime/threadpool.h"
#include "../support.h"

/* ---- thread pool ---------------------------------------------------------------- */

typedef struct {
    _Atomic int *hits;
    _Atomic int calls;
    int64_t grain;
    _Atomic int short_chunks;
} PoolCheck;

static void mark(void *ctx, int64_t b, int64_t e) {
    PoolCheck *c = ctx;
    atomic_fetch_add(&c->calls, 1);
    if (e - b < c->grain) atomic_fetch_add(&c->short_chunks, 1);
    for (int64_t i = b; i < e; i++) atomic_fetch_add(&c->hits[i], 1);
}

Test(threadpool, covers_every_point_once) {
    ThreadPool *p = rt_threadpool_create(4);
    cr_assert_not_null(p);
    cr_assert_eq(rt_threadpool_size(p), 4);
    int64_t totals[] = {0, 1, 2, 3, 7, 100, 1000, 4097, 100000};
    int64_t grains[] = {1, 3, 64, 1000000};
    for (size_t t = 0; t < sizeof totals / sizeof totals[0]; t++)
        for (size_t gi = 0; gi < sizeof grains / sizeof grains[0]; gi++) {
            int64_t n = totals[t];
            PoolCheck c = {.hits = calloc((size_t)n + 1, sizeof(_Atomic int)), .grain = grains[gi]};
            for (int rep = 0; rep < 3; rep++) rt_parallel_for(p, n, grains[gi], mark, &c);
            for (int64_t i = 0; i < n; i++) cr_assert_eq(c.hits[i], 3, "total %lld grain %lld point %lld: %d", (long long)n,
                                                         (long long)grains[gi], (long long)i, c.hits[i]);
            /* only the last chunk of a loop may be shorter than the grain */
            cr_assert_leq(c.short_chunks, 3);
            free(c.hits);
        }
    rt_threadpool_destroy(p);
}

static ThreadPool *nested_pool;
static void nested(void *ctx, int64_t b, int64_t e) {
    PoolCheck *c = ctx;
    for (int64_t i = b; i < e; i++) rt_parallel_for(nested_pool, 10, 1, mark, &c[1 + i]);
}

Test(threadpool, nested_loops_run_inline) {
    nested_pool = rt_threadpool_create(3);
    PoolCheck c[9] = {0};
    for (int i = 1; i < 9; i++) c[i].hits = calloc(10, sizeof(_Atomic int));
    rt_parallel_for(nested_pool, 8, 1, nested, c);
    for (int i = 1; i < 9; i++) {
        for (int j = 0; j < 10; j++) cr_assert_eq(c[i].hits[j], 1);
        free(c[i].hits);
    }
    rt_threadpool_destroy(nested_pool);
}

Test(threadpool, single_thread_and_null_pool) {
    ThreadPool *p = rt_threadpool_create(1);
    PoolCheck c = {.hits = calloc(50, sizeof(_Atomic int))};
    rt_parallel_for(p, 50, 1, mark, &c);
    rt_parallel_for(NULL, 50, 1, mark, &c);
    cr_assert_eq(c.calls, 2);
    for (int i = 0; i < 50; i++) cr_assert_eq(c.hits[i], 2);
    free(c.hits);
    rt_threadpool_destroy(p);
    cr_assert_not_null(rt_threadpool_global());
    cr_assert_eq(rt_threadpool_global(), rt_threadpool_global());
}

#ifndef DSC_WITH_LLVM

Test(host, not_built) {
    Diag *d = diag_create();
    cr_assert(!rt_host_available());
    cr_assert_null(rt_host_create(NULL, d));
    cr_assert_eq(diag_error_count(d), 1);
    DiagLevel level;
    Loc loc;
    cr_assert(strstr(diag_message(d, 0, &level, &loc), "not built"));
    diag_destroy(d);
}

#else

/* ---- fixtures ------------------------------------------------------------------- */

static Arena *arena;
static Graph *g;
static HostBackend *hb;
static Diag *diag;
static char cache_dir[256];

static void rm_rf(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    (void)!system(cmd);
}

static void setup(void) {
    arena = arena_create();
    g = ir_graph_create(arena, "test_host");
    diag = diag_create();
    snprintf(cache_dir, sizeof cache_dir, "%s/test_host_cache_%d", DSC_BINARY_DIR, (int)getpid());
    HostOptions o = {.no_cache = true};
    hb = rt_host_create(&o, diag);
    cr_assert_not_null(hb, "cannot create the host backend");
}

static void teardown(void) {
    rt_host_destroy(hb);
    diag_destroy(diag);
    arena_destroy(arena);
    rm_rf(cache_dir);
}

static const char *diag_text(void) {
    static char buf[4096];
    buf[0] = 0;
    for (int i = 0; i < diag_count(diag); i++) {
        DiagLevel level;
        Loc loc;
        strncat(buf, diag_message(diag, i, &level, &loc), sizeof buf - strlen(buf) - 2);
        strcat(buf, "\n");
    }
    return buf;
}

static Node *value(DType dt, int rank, const int64_t *shape) {
    Node *n = ir_node_create(g, OP_INPUT, 0, (Loc){0});
    n->name = "v";
    n->type.dtype = dt;
    n->type.rank = rank;
    for (int i = 0; i < rank; i++) n->type.dim[i] = dim_const(g->dims, shape[i]);
    return n;
}

static Node *vec(DType dt, int64_t n) { return value(dt, 1, &n); }

static Kernel *kernel1(int64_t n) {
    Kernel *k = kir_kernel_create(g, "k", 0);
    kir_new_var(k);
    k->npar = 1;
    k->par_extent = arena_alloc(g->arena, sizeof(KExpr *));
    k->par_extent[0] = kir_const_i(g, n);
    return k;
}

static void launch(Kernel *k, void **bufs, const int64_t *dims) {
    static const int64_t none[1] = {0};
    bool ok = rt_host_launch(hb, g, k, bufs, dims ? dims : none, diag);
    cr_assert(ok, "launch failed:\n%s", diag_text());
}

/* ---- values to test with -------------------------------------------------------- */

static uint64_t rng = 0x1234567;
static uint32_t next_u32(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 32);
}

static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t f_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Special values, a sweep of [-12, 12] and random finite floats. */
static int test_floats(float **out) {
    static const float special[] = {0.0f,     -0.0f,   1.0f,     -1.0f,    0.5f,      -0.5f,   2.0f,    INFINITY,
                                    -INFINITY, NAN,    1e-45f,   -1e-45f,  1.17e-38f, 1e-38f,  3e38f,   -3e38f,
                                    88.72f,   88.73f,  89.0f,    -87.3f,   -103.0f,   -104.0f, -110.0f, 0.84375f,
                                    -0.84375f, 1.25f,  -1.25f,   2.857f,   6.0f,      -6.0f,   1e-30f,  -1e-30f,
                                    1e-5f,    7.9f,    -7.9f,    10.0f,    100.0f,    -100.0f, 3.0f,    -3.0f,
                                    0.0004f,  -0.0004f, 3.7e-9f, 65504.0f, 65520.0f,  6e-8f,   1e-7f};
    int ns = (int)(sizeof special / sizeof special[0]), n = ns + 2001 + 2000;
    float *v = malloc(sizeof(float) * (size_t)n);
    memcpy(v, special, sizeof special);
    for (int i = 0; i <= 2000; i++) v[ns + i] = -12.0f + 24.0f * (float)i / 2000.0f;
    for (int i = 0; i < 2000; i++) {
        float f;
        do f = bits_f(next_u32());
        while (!isfinite(f));
        v[ns + 2001 + i] = f;
    }
    *out = v;
    return n;
}

/* Distance in units in the last place (0 for two NaNs, huge for NaN vs number). */
static double ulps(float got, double want) {
    float w = (float)want;
    if (isnan(w) || isnan(got)) return isnan(w) && isnan(got) ? 0 : 1e30;
    if (got == w) return 0;
    if (isinf(w) || isinf(got)) return 1e30;
    int32_t a = (int32_t)f_bits(got), b = (int32_t)f_bits(w);
    if (a < 0) a = INT32_MIN - a;
    if (b < 0) b = INT32_MIN - b;
    return fabs((double)a - (double)b);
}

/* ---- reference semantics (as runtime/interp.c writes them, in double) ---------- */

static double sigmoid_d(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

static double ref_unary(KOp op, double x) {
    switch (op) {
    case KO_NEG: return -x;
    case KO_ABS: return fabs(x);
    case KO_EXP: return exp(x);
    case KO_LOG: return log(x);
    case KO_SQRT: return sqrt(x);
    case KO_RSQRT: return 1 / sqrt(x);
    case KO_RECIP: return 1 / x;
    case KO_TANH: return tanh(x);
    case KO_SIGMOID: return sigmoid_d(x);
    case KO_RELU: return x < 0 ? 0 : x;
    case KO_ERF: return erf(x);
    case KO_SILU: return x * sigmoid_d(x);
    case KO_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case KO_GELU_TANH: return 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
    default: return NAN;
    }
}

/* ---- float unary ops --------------------------------------------------------------- */

typedef struct {
    KOp op;
    double max_ulps; /* allowed */
    double abs_tol;  /* or an absolute error this small (times max(1, |x|)) */
} UnaryCase;

static void check_unary(UnaryCase c) {
    float *x;
    int n = test_floats(&x);
    Kernel *k = kernel1(n);
    int in = kir_buffer(g, k, vec(DT_F32, n), KB_INPUT, false);
    int out = kir_buffer(g, k, vec(DT_F32, n), KB_PLANNED, true);
    k->body = kir_store(g, out, kir_var(g, 0), kir_un(g, c.op, kir_load(g, k, in, kir_var(g, 0))));
    float *y = calloc((size_t)n, sizeof(float));
    void *bufs[2] = {x, y};
    launch(k, bufs, NULL);
    double worst = 0;
    float worst_x = 0;
    for (int i = 0; i < n; i++) {
        double want = ref_unary(c.op, x[i]), u = ulps(y[i], want);
        bool ok = u <= c.max_ulps || (isfinite(want) && fabs(y[i] - want) <= c.abs_tol * fmax(1, fabs(x[i])));
        cr_expect(ok, "%s(%a = %.9g) = %.9g, want %.9g (%g ulps)", kir_op_name(c.op), x[i], x[i], y[i], want, u);
        if (u > worst && u < 1e30) {
            worst = u;
            worst_x = x[i];
        }
    }
    cr_log_info("%-9s worst %.1f ulps at %.9g", kir_op_name(c.op), worst, worst_x);
    free(x);
    free(y);
}

TestSuite(host, .init = setup, .fini = teardown);

Test(host, float_unary_ops) {
    UnaryCase cases[] = {
        {KO_NEG, 0, 0},        {KO_ABS, 0, 0},     {KO_EXP, 2, 0},       {KO_LOG, 2, 0},  {KO_SQRT, 0, 0},
        {KO_RSQRT, 1, 0},      {KO_RECIP, 0, 0},   {KO_TANH, 8, 0},      {KO_SIGMOID, 4, 0},
        {KO_RELU, 0, 0},       {KO_ERF, 4, 0},     {KO_SILU, 4, 1e-7},   {KO_GELU, 4, 2e-7},
        {KO_GELU_TANH, 8, 2e-7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_unary(cases[i]);
}

/* ---- float binary ops ------------------------------------------------------------- */

static int pair_values(float **out) {
    static const float v[] = {0.0f, -0.0f, 1.0f, -1.0f, 2.5f, -3.75f, 1e-40f, 3e38f, -3e38f, INFINITY, -INFINITY, NAN,
                              0.1f, 7.0f, -0.5f, 1e10f, 123.456f, -2.0f, 0.333333f};
    *out = malloc(sizeof v);
    memcpy(*out, v, sizeof v);
    return (int)(sizeof v / sizeof v[0]);
}

static double ref_binary_f(KOp op, double a, double b) {
    switch (op) {
    case KO_ADD: return a + b;
    case KO_SUB: return a - b;
    case KO_MUL: return a * b;
    case KO_DIV: return a / b;
    case KO_MOD: return fmod(a, b);
    case KO_POW: return pow(a, b);
    case KO_MAX: return isnan(a) || isnan(b) ? NAN : a > b ? a : b;
    case KO_MIN: return isnan(a) || isnan(b) ? NAN : a < b ? a : b;
    case KO_LT: return a < b;
    case KO_GT: return a > b;
    case KO_LE: return a <= b;
    case KO_GE: return a >= b;
    case KO_EQ: return a == b;
    case KO_NE: return a != b;
    default: return NAN;
    }
}

Test(host, float_binary_ops) {
    float *v;
    int nv = pair_values(&v), n = nv * nv;
    float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++) {
        a[i] = v[i / nv];
        b[i] = v[i % nv];
    }
    KOp ops[] = {KO_ADD, KO_SUB, KO_MUL, KO_DIV, KO_MOD, KO_POW, KO_MAX, KO_MIN,
                 KO_LT,  KO_GT,  KO_LE,  KO_GE,  KO_EQ,  KO_NE};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        KOp op = ops[o];
        bool cmp = op >= KO_LT;
        Kernel *k = kernel1(n);
        int ia = kir_buffer(g, k, vec(DT_F32, n), KB_INPUT, false);
        int ib = kir_buffer(g, k, vec(DT_F32, n), KB_INPUT, false);
        int out = kir_buffer(g, k, vec(cmp ? DT_BOOL : DT_F32, n), KB_PLANNED, true);
        KExpr *i = kir_var(g, 0);
        k->body = kir_store(g, out, i, kir_bin(g, op, kir_load(g, k, ia, i), kir_load(g, k, ib, i)));
        void *y = calloc((size_t)n, sizeof(float));
        void *bufs[3] = {a, b, y};
        launch(k, bufs, NULL);
        for (int j = 0; j < n; j++) {
            double want = ref_binary_f(op, a[j], b[j]);
            if (cmp) {
                cr_expect_eq(((uint8_t *)y)[j], (uint8_t)want, "%g %s %g", a[j], kir_op_name(op), b[j]);
            } else {
                float got = ((float *)y)[j];
                cr_expect(ulps(got, want) <= (op == KO_POW ? 1 : 0), "%s(%g, %g) = %.9g, want %.9g", kir_op_name(op),
                          a[j], b[j], got, want);
            }
        }
        free(y);
    }
    free(a);
    free(b);
    free(v);
}

/* ---- integer and bool ops ------------------------------------------------------------- */

static int64_t ipow_ref(int64_t b, int64_t e) {
    if (e < 0) return b == 1 ? 1 : b == -1 ? ((e & 1) ? -1 : 1) : 0;
    uint64_t r = 1, x = (uint64_t)b;
    for (; e > 0; e >>= 1) {
        if (e & 1) r *= x;
        x *= x;
    }
    return (int64_t)r;
}

static int64_t ref_binary_i(KOp op, int64_t a, int64_t b) {
    uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
    switch (op) {
    case KO_ADD: return (int64_t)(ua + ub);
    case KO_SUB: return (int64_t)(ua - ub);
    case KO_MUL: return (int64_t)(ua * ub);
    case KO_DIV: return b == -1 ? (int64_t)(0 - ua) : a / b;
    case KO_MOD: return b == -1 ? 0 : a % b;
    case KO_POW: return ipow_ref(a, b);
    case KO_MAX: return a > b ? a : b;
    case KO_MIN: return a < b ? a : b;
    case KO_LT: return a < b;
    case KO_GT: return a > b;
    case KO_LE: return a <= b;
    case KO_GE: return a >= b;
    case KO_EQ: return a == b;
    case KO_NE: return a != b;
    default: return 0;
    }
}

Test(host, int_ops) {
    static const int64_t v[] = {0, 1, -1, 2, -2, 3, 7, -7, 63, 64, 100, -98765, 123456789012, INT64_MAX, INT64_MIN};
    int nv = (int)(sizeof v / sizeof v[0]), n = nv * nv;
    int64_t *a = malloc(sizeof(int64_t) * (size_t)n), *b = malloc(sizeof(int64_t) * (size_t)n);
    for (int i = 0; i < n; i++) {
        a[i] = v[i / nv];
        b[i] = v[i % nv];
    }
    KOp ops[] = {KO_ADD, KO_SUB, KO_MUL, KO_DIV, KO_MOD, KO_POW, KO_MAX, KO_MIN,
                 KO_LT,  KO_GT,  KO_LE,  KO_GE,  KO_EQ,  KO_NE};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        KOp op = ops[o];
        bool cmp = op >= KO_LT;
        Kernel *k = kernel1(n);
        int ia = kir_buffer(g, k, vec(DT_I64, n), KB_INPUT, false);
        int ib = kir_buffer(g, k, vec(DT_I64, n), KB_INPUT, false);
        int out = kir_buffer(g, k, vec(cmp ? DT_BOOL : DT_I64, n), KB_PLANNED, true);
        KExpr *i = kir_var(g, 0);
        k->body = kir_store(g, out, i, kir_bin(g, op, kir_load(g, k, ia, i), kir_load(g, k, ib, i)));
        void *y = calloc((size_t)n, sizeof(int64_t));
        void *bufs[3] = {a, b, y};
        launch(k, bufs, NULL);
        for (int j = 0; j < n; j++) {
            if ((op == KO_DIV || op == KO_MOD) && b[j] == 0) continue; /* lowering's to prevent */
            int64_t want = ref_binary_i(op, a[j], b[j]);
            int64_t got = cmp ? ((uint8_t *)y)[j] : ((int64_t *)y)[j];
            cr_expect_eq(got, want, "%lld %s %lld = %lld, want %lld", (long long)a[j], kir_op_name(op), (long long)b[j],
                         (long long)got, (long long)want);
        }
        free(y);
    }
    /* unary */
    KOp uops[] = {KO_NEG, KO_ABS, KO_RELU};
    for (size_t o = 0; o < 3; o++) {
        Kernel *k = kernel1(nv);
        int in = kir_buffer(g, k, vec(DT_I64, nv), KB_INPUT, false);
        int out = kir_buffer(g, k, vec(DT_I64, nv), KB_PLANNED, true);
        k->body = kir_store(g, out, kir_var(g, 0), kir_un(g, uops[o], kir_load(g, k, in, kir_var(g, 0))));
        int64_t y[32];
        void *bufs[2] = {(void *)v, y};
        launch(k, bufs, NULL);
        for (int j = 0; j < nv; j++) {
            uint64_t u = (uint64_t)v[j];
            int64_t want = uops[o] == KO_NEG ? (int64_t)(0 - u)
                           : uops[o] == KO_ABS ? (v[j] < 0 ? (int64_t)(0 - u) : v[j])
                                               : (v[j] < 0 ? 0 : v[j]);
            cr_expect_eq(y[j], want, "%s(%lld)", kir_op_name(uops[o]), (long long)v[j]);
        }
    }
    free(a);
    free(b);
}

Test(host, bool_ops) {
    uint8_t a[4] = {0, 0, 1, 1}, b[4] = {0, 1, 0, 1};
    KOp ops[] = {KO_AND, KO_OR, KO_EQ, KO_NE, KO_LT, KO_GT, KO_LE, KO_GE, KO_MAX, KO_MIN};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        Kernel *k = kernel1(4);
        int ia = kir_buffer(g, k, vec(DT_BOOL, 4), KB_INPUT, false);
        int ib = kir_buffer(g, k, vec(DT_BOOL, 4), KB_INPUT, false);
        int out = kir_buffer(g, k, vec(DT_BOOL, 4), KB_PLANNED, true);
        KExpr *i = kir_var(g, 0);
        k->body = kir_store(g, out, i, kir_bin(g, ops[o], kir_load(g, k, ia, i), kir_load(g, k, ib, i)));
        uint8_t y[4];
        void *bufs[3] = {a, b, y};
        launch(k, bufs, NULL);
        for (int j = 0; j < 4; j++) {
            int x = a[j], z = b[j], want = 0;
            switch (ops[o]) {
            case KO_AND: case KO_MIN: want = x && z; break;
            case KO_OR: case KO_MAX: want = x || z; break;
            case KO_EQ: want = x == z; break;
            case KO_NE: want = x != z; break;
            case KO_LT: want = x < z; break;
            case KO_GT: want = x > z; break;
            case KO_LE: want = x <= z; break;
            case KO_GE: want = x >= z; break;
            default: break;
            }
            cr_expect_eq(y[j], want, "%d %s %d", x, kir_op_name(ops[o]), z);
        }
    }
    /* not, and a bool byte other than 0/1 reads as true */
    Kernel *k = kernel1(3);
    int in = kir_buffer(g, k, vec(DT_BOOL, 3), KB_INPUT, false);
    int out = kir_buffer(g, k, vec(DT_BOOL, 3), KB_PLANNED, true);
    k->body = kir_store(g, out, kir_var(g, 0), kir_un(g, KO_NOT, kir_load(g, k, in, kir_var(g, 0))));
    uint8_t x[3] = {0, 1, 2}, y[3];
    void *bufs[2] = {x, y};
    launch(k, bufs, NULL);
    cr_expect(y[0] == 1 && y[1] == 0 && y[2] == 0);
}

/* ---- casts and wrapping ------------------------------------------------------------- */

Test(host, casts) {
    static const float fv[] = {0.0f, -0.0f, 1.5f,   -1.5f,  2.9f,   -2.9f, 1e20f, -1e20f, 9.3e18f,
                               -9.3e18f, NAN, INFINITY, -INFINITY, 0.1f, 1e-45f, 127.9f};
    enum { NF = sizeof fv / sizeof fv[0] };
    /* f32 -> i64 (truncate, saturate, NaN -> 0) and f32 -> bool (!= 0, NaN -> true) */
    Kernel *k = kernel1(NF);
    int in = kir_buffer(g, k, vec(DT_F32, NF), KB_INPUT, false);
    int oi = kir_buffer(g, k, vec(DT_I64, NF), KB_PLANNED, true);
    int ob = kir_buffer(g, k, vec(DT_BOOL, NF), KB_PLANNED, true);
    KExpr *i = kir_var(g, 0), *x = kir_load(g, k, in, i);
    k->body = kir_store(g, oi, i, kir_cast(g, KT_I64, x));
    kir_append(&k->body, kir_store(g, ob, i, kir_cast(g, KT_BOOL, x)));
    int64_t yi[NF];
    uint8_t yb[NF];
    void *bufs[3] = {(void *)fv, yi, yb};
    launch(k, bufs, NULL);
    for (int j = 0; j < NF; j++) {
        cr_expect_eq(yi[j], ir_dtype_round_i64(fv[j]), "i64(%g) = %lld", fv[j], (long long)yi[j]);
        cr_expect_eq(yb[j], fv[j] != 0, "bool(%g)", fv[j]);
    }
    /* i64 -> f32, i64 -> bool, bool -> f32, bool -> i64, wrap to i8 and i32 */
    static const int64_t iv[] = {0, 1, -1, 127, 128, -129, 255, 65537, 2147483648LL, -2147483649LL, INT64_MAX, INT64_MIN,
                                 (1LL << 53) + 1, 16777217};
    enum { NI = sizeof iv / sizeof iv[0] };
    k = kernel1(NI);
    in = kir_buffer(g, k, vec(DT_I64, NI), KB_INPUT, false);
    int of = kir_buffer(g, k, vec(DT_F32, NI), KB_PLANNED, true);
    ob = kir_buffer(g, k, vec(DT_BOOL, NI), KB_PLANNED, true);
    int o8 = kir_buffer(g, k, vec(DT_I64, NI), KB_PLANNED, true);
    int o32 = kir_buffer(g, k, vec(DT_I64, NI), KB_PLANNED, true);
    int obf = kir_buffer(g, k, vec(DT_F32, NI), KB_PLANNED, true);
    int obi = kir_buffer(g, k, vec(DT_I64, NI), KB_PLANNED, true);
    i = kir_var(g, 0);
    x = kir_load(g, k, in, i);
    KExpr *bx = kir_cast(g, KT_BOOL, x);
    k->body = kir_store(g, of, i, kir_cast(g, KT_F32, x));
    kir_append(&k->body, kir_store(g, ob, i, bx));
    kir_append(&k->body, kir_store(g, o8, i, kir_wrap(g, DT_I8, x)));
    kir_append(&k->body, kir_store(g, o32, i, kir_wrap(g, DT_I32, x)));
    kir_append(&k->body, kir_store(g, obf, i, kir_cast(g, KT_F32, bx)));
    kir_append(&k->body, kir_store(g, obi, i, kir_cast(g, KT_I64, bx)));
    float yf[NI], ybf[NI];
    int64_t y8[NI], y32[NI], ybi[NI];
    uint8_t yb2[NI];
    void *bufs2[7] = {(void *)iv, yf, yb2, y8, y32, ybf, ybi};
    launch(k, bufs2, NULL);
    for (int j = 0; j < NI; j++) {
        cr_expect_eq(yf[j], (float)iv[j], "f32(%lld) = %.9g", (long long)iv[j], yf[j]);
        cr_expect_eq(yb2[j], iv[j] != 0);
        cr_expect_eq(y8[j], (int8_t)(uint8_t)(uint64_t)iv[j], "wrap_i8(%lld) = %lld", (long long)iv[j], (long long)y8[j]);
        cr_expect_eq(y32[j], (int32_t)(uint32_t)(uint64_t)iv[j]);
        cr_expect_eq(ybf[j], iv[j] != 0 ? 1.0f : 0.0f);
        cr_expect_eq(ybi[j], iv[j] != 0);
    }
}

/* ---- storage dtypes ------------------------------------------------------------------- */

/* out[i] = in[i] through the compute type: a load and a store. */
static Kernel *copy_kernel(DType from, DType to, int64_t n) {
    Kernel *k = kernel1(n);
    int in = kir_buffer(g, k, vec(from, n), KB_INPUT, false);
    int out = kir_buffer(g, k, vec(to, n), KB_PLANNED, true);
    KExpr *x = kir_load(g, k, in, kir_var(g, 0));
    k->body = kir_store(g, out, kir_var(g, 0), kir_cast(g, kir_compute_type(to), x));
    return k;
}

static void check_half_conversions(HostBackend *b) {
    HostBackend *saved = hb;
    hb = b;
    /* every f16 and bf16 bit pattern to f32 */
    enum { N16 = 65536 };
    uint16_t *h = malloc(sizeof(uint16_t) * N16);
    float *f = malloc(sizeof(float) * N16);
    for (int i = 0; i < N16; i++) h[i] = (uint16_t)i;
    for (int pass = 0; pass < 2; pass++) {
        DType dt = pass ? DT_BF16 : DT_F16;
        void *bufs[2] = {h, f};
        launch(copy_kernel(dt, DT_F32, N16), bufs, NULL);
        for (int i = 0; i < N16; i++) {
            float want = dt == DT_F16 ? ir_f16_to_f32(h[i]) : ir_bf16_to_f32(h[i]);
            cr_assert(f_bits(f[i]) == f_bits(want) || (isnan(f[i]) && isnan(want)), "%s %04x -> %a, want %a",
                      dtype_name(dt), h[i], f[i], want);
        }
    }
    /* f32 to f16 and bf16: special values, values at the rounding boundaries, random bits */
    enum { NF = 1 << 20 };
    float *x = malloc(sizeof(float) * NF);
    uint16_t *y = malloc(sizeof(uint16_t) * NF);
    int n = 0;
    for (int i = 0; i < N16; i++) { /* each f16 value, and the midpoints and their neighbours */
        float a = ir_f16_to_f32((uint16_t)i);
        x[n++] = a;
        uint32_t u = f_bits(a);
        x[n++] = bits_f(u + 0x1000);
        x[n++] = bits_f(u + 0x0fff);
        x[n++] = bits_f(u + 0x1001);
    }
    for (int i = 0; i < N16; i++) x[n++] = ir_bf16_to_f32((uint16_t)i) + 0.0f;
    while (n < NF) x[n++] = bits_f(next_u32());
    for (int pass = 0; pass < 2; pass++) {
        DType dt = pass ? DT_BF16 : DT_F16;
        void *bufs[2] = {x, y};
        launch(copy_kernel(DT_F32, dt, NF), bufs, NULL);
        for (int i = 0; i < NF; i++) {
            uint16_t want = dt == DT_F16 ? ir_f32_to_f16(x[i]) : ir_f32_to_bf16(x[i]);
            cr_assert_eq(y[i], want, "%s(%a) = %04x, want %04x", dtype_name(dt), x[i], y[i], want);
        }
    }
    free(h);
    free(f);
    free(x);
    free(y);
    hb = saved;
}

Test(host, half_conversions) {
    check_half_conversions(hb);
    HostOptions o = {.no_cache = true, .no_f16c = true};
    HostBackend *soft = rt_host_create(&o, diag);
    cr_assert_not_null(soft);
    cr_assert(!strstr(rt_host_describe(soft), "f16c"), "%s", rt_host_describe(soft));
    check_half_conversions(soft);
    rt_host_destroy(soft);
}

Test(host, integer_storage) {
    static const int64_t v[] = {0, 1, -1, 127, 128, -128, -129, 255, 256, 65535, 2147483647, 2147483648LL, -2147483649LL,
                                INT64_MAX, INT64_MIN};
    enum { N = sizeof v / sizeof v[0] };
    int8_t y8[N];
    int32_t y32[N];
    uint8_t yb[N];
    int64_t back[N];
    void *b1[2] = {(void *)v, y8};
    launch(copy_kernel(DT_I64, DT_I8, N), b1, NULL);
    void *b2[2] = {(void *)v, y32};
    launch(copy_kernel(DT_I64, DT_I32, N), b2, NULL);
    void *b3[2] = {(void *)v, yb};
    launch(copy_kernel(DT_I64, DT_BOOL, N), b3, NULL);
    for (int i = 0; i < N; i++) {
        cr_expect_eq(y8[i], (int8_t)(uint8_t)(uint64_t)v[i]);
        cr_expect_eq(y32[i], (int32_t)(uint32_t)(uint64_t)v[i]);
        cr_expect_eq(yb[i], v[i] != 0);
    }
    void *b4[2] = {y8, back};
    launch(copy_kernel(DT_I8, DT_I64, N), b4, NULL);
    for (int i = 0; i < N; i++) cr_expect_eq(back[i], y8[i]);
    void *b5[2] = {y32, back};
    launch(copy_kernel(DT_I32, DT_I64, N), b5, NULL);
    for (int i = 0; i < N; i++) cr_expect_eq(back[i], y32[i]);
    /* f32 through i8 storage: cast saturates at i64, the store wraps */
    float fv[3] = {300.0f, -1.0f, 1e30f};
    int8_t f8[3];
    void *b6[2] = {fv, f8};
    launch(copy_kernel(DT_F32, DT_I8, 3), b6, NULL);
    cr_expect(f8[0] == (int8_t)300 && f8[1] == -1 && f8[2] == -1, "%d %d %d", f8[0], f8[1], f8[2]);
}

/* ---- math helpers over a sweep of all f32 --------------------------------------------- */

Test(host, math_sweep, .timeout = 120) {
    int n = 0, cap = (1 << 22) + 16;
    float *x = malloc(sizeof(float) * (size_t)cap), *y = malloc(sizeof(float) * (size_t)cap);
    for (uint64_t u = 0; u <= 0xffffffffu && n < cap; u += 1021) {
        float f = bits_f((uint32_t)u);
        if (!isnan(f)) x[n++] = f;
    }
    struct {
        KOp op;
        double bound;
    } cases[] = {{KO_EXP, 1}, {KO_LOG, 1}, {KO_TANH, 8}, {KO_ERF, 2}, {KO_SIGMOID, 3}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        Kernel *k = kernel1(n);
        int in = kir_buffer(g, k, vec(DT_F32, n), KB_INPUT, false);
        int out = kir_buffer(g, k, vec(DT_F32, n), KB_PLANNED, true);
        k->body = kir_store(g, out, kir_var(g, 0), kir_un(g, cases[c].op, kir_load(g, k, in, kir_var(g, 0))));
        void *bufs[2] = {x, y};
        launch(k, bufs, NULL);
        double worst = 0, worst_abs = 0;
        float at = 0;
        for (int i = 0; i < n; i++) {
            double want = ref_unary(cases[c].op, x[i]), u = ulps(y[i], want);
            if (u > worst) {
                worst = u;
                at = x[i];
            }
            if (isfinite((float)want) && fabs(y[i] - want) > worst_abs) worst_abs = fabs(y[i] - want);
        }
        cr_log_info("%-8s max %.0f ulps (at %a = %.9g), max abs error %.3g", kir_op_name(cases[c].op), worst, at, at,
                    worst_abs);
        cr_expect_leq(worst, cases[c].bound, "%s: %g ulps at %a", kir_op_name(cases[c].op), worst, at);
    }
    free(x);
    free(y);
}

/* ---- kernel structure ------------------------------------------------------------------- */

Test(host, parallel_space_in_chunks) {
    /* 3-D space, flops estimate large enough that the launch splits it in many chunks */
    int64_t E[3] = {5, 7, 9}, n = 5 * 7 * 9;
    Kernel *k = kir_kernel_create(g, "grid", 0);
    for (int i = 0; i < 3; i++) kir_new_var(k);
    k->npar = 3;
    k->par_extent = arena_alloc(g->arena, 3 * sizeof(KExpr *));
    for (int i = 0; i < 3; i++) k->par_extent[i] = kir_const_i(g, E[i]);
    k->flops = dim_const(g->dims, n * 100000);
    int out = kir_buffer(g, k, vec(DT_I64, n), KB_PLANNED, true);
    KExpr *v0 = kir_var(g, 0), *v1 = kir_var(g, 1), *v2 = kir_var(g, 2);
    KExpr *idx = kir_bin(g, KO_ADD, kir_bin(g, KO_MUL, kir_bin(g, KO_ADD, kir_bin(g, KO_MUL, v0, kir_const_i(g, 7)), v1),
                                            kir_const_i(g, 9)),
                         v2);
    KExpr *val = kir_bin(g, KO_ADD, kir_bin(g, KO_MUL, v0, kir_const_i(g, 100)),
                         kir_bin(g, KO_ADD, kir_bin(g, KO_MUL, v1, kir_const_i(g, 10)), v2));
    k->body = kir_store(g, out, idx, val);
    int64_t *y = calloc((size_t)n, sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) y[i] = -1;
    void *bufs[1] = {y};
    launch(k, bufs, NULL);
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 7; b++)
            for (int c = 0; c < 9; c++) cr_expect_eq(y[(a * 7 + b) * 9 + c], a * 100 + b * 10 + c);
    free(y);
}

Test(host, reduction_loop_and_dims) {
    /* out[r] = sum_j x[r, j] over a space of R rows (a dim), C columns (a dim) */
    int R = dim_declare(g->dims, "R", 0, (Loc){0}), C = dim_declare(g->dims, "C", 0, (Loc){0});
    int64_t dims[2] = {33, 1001};
    Kernel *k = kir_kernel_create(g, "rowsum", 0);
    int vr = kir_new_var(k), vc = kir_new_var(k);
    k->npar = 1;
    k->par_extent = arena_alloc(g->arena, sizeof(KExpr *));
    k->par_extent[0] = kir_dim(g, R);
    int64_t shape[2] = {33, 1001};
    int in = kir_buffer(g, k, value(DT_F32, 2, shape), KB_INPUT, false);
    int out = kir_buffer(g, k, vec(DT_F32, 33), KB_PLANNED, true);
    int acc = kir_new_local(g, k, KT_F32);
    KExpr *idx = kir_bin(g, KO_ADD, kir_bin(g, KO_MUL, kir_var(g, vr), kir_dim(g, C)), kir_var(g, vc));
    KStmt *body = kir_set(g, acc, kir_bin(g, KO_ADD, kir_local(g, k, acc), kir_load(g, k, in, idx)));
    k->body = kir_set(g, acc, kir_const_f(g, 0));
    kir_append(&k->body, kir_for(g, vc, kir_dim(g, C), body));
    kir_append(&k->body, kir_store(g, out, kir_var(g, vr), kir_local(g, k, acc)));
    float *x = malloc(sizeof(float) * 33 * 1001), y[33];
    for (int i = 0; i < 33 * 1001; i++) x[i] = (float)((i * 37) % 101) / 7.0f - 5.0f;
    void *bufs[2] = {x, y};
    launch(k, bufs, dims);
    for (int r = 0; r < 33; r++) {
        double s = 0;
        for (int j = 0; j < 1001; j++) s += x[r * 1001 + j];
        cr_expect(fabs(y[r] - s) <= 1e-5 * fmax(1, fabs(s)) + 1e-3, "row %d: %.9g, want %.9g", r, y[r], s);
    }
    /* a smaller binding of the same kernel */
    int64_t dims2[2] = {4, 3};
    launch(k, bufs, dims2);
    for (int r = 0; r < 4; r++) cr_expect_float_eq(y[r], x[r * 3] + x[r * 3 + 1] + x[r * 3 + 2], 1e-5);
    free(x);
}

Test(host, if_and_lazy_selects) {
    enum { N = 1000 };
    Kernel *k = kernel1(N);
    int in = kir_buffer(g, k, vec(DT_F32, N), KB_INPUT, false);
    int out = kir_buffer(g, k, vec(DT_F32, N), KB_PLANNED, true);
    int out2 = kir_buffer(g, k, vec(DT_F32, N), KB_PLANNED, true);
    int out3 = kir_buffer(g, k, vec(DT_BOOL, N), KB_PLANNED, true);
    KExpr *i = kir_var(g, 0), *x = kir_load(g, k, in, i);
    /* far out of range: dereferenced only if the renderer evaluates an unselected side */
    KExpr *wild = kir_load(g, k, in, kir_bin(g, KO_ADD, i, kir_const_i(g, (int64_t)1 << 42)));
    KExpr *inb = kir_bin(g, KO_LT, i, kir_const_i(g, N));
    k->body = kir_if(g, kir_bin(g, KO_GT, x, kir_const_f(g, 0)), kir_store(g, out, i, x));
    kir_append(&k->body, kir_store(g, out2, i, kir_select(g, inb, x, wild)));
    KExpr *never = kir_bin(g, KO_GT, wild, kir_const_f(g, 0));
    kir_append(&k->body, kir_store(g, out3, i,
                                   kir_bin(g, KO_AND, kir_bin(g, KO_OR, inb, never),
                                           kir_bin(g, KO_OR, kir_un(g, KO_NOT, inb), kir_const_b(g, true)))));
    kir_append(&k->body, kir_if(g, kir_bin(g, KO_AND, kir_un(g, KO_NOT, inb), never), kir_store(g, out, i, x)));
    float *xv = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N), *y2 = malloc(sizeof(float) * N);
    uint8_t *y3 = malloc(N);
    for (int j = 0; j < N; j++) {
        xv[j] = (float)(j % 7) - 3;
        y[j] = 99;
    }
    void *bufs[4] = {xv, y, y2, y3};
    launch(k, bufs, NULL);
    for (int j = 0; j < N; j++) {
        cr_expect_eq(y[j], xv[j] > 0 ? xv[j] : 99);
        cr_expect_eq(y2[j], xv[j]);
        cr_expect_eq(y3[j], 1);
    }
    free(xv);
    free(y);
    free(y2);
    free(y3);
}

Test(host, single_point_and_locals) {
    Kernel *k = kir_kernel_create(g, "one", 0);
    int out = kir_buffer(g, k, vec(DT_I64, 2), KB_PLANNED, true);
    int l = kir_new_local(g, k, KT_I64), v = kir_new_var(k);
    k->body = kir_store(g, out, kir_const_i(g, 0), kir_local(g, k, l)); /* locals start at 0 */
    kir_append(&k->body, kir_for(g, v, kir_const_i(g, 10),
                                 kir_set(g, l, kir_bin(g, KO_ADD, kir_local(g, k, l), kir_var(g, v)))));
    kir_append(&k->body, kir_store(g, out, kir_const_i(g, 1), kir_local(g, k, l)));
    int64_t y[2] = {-1, -1};
    void *bufs[1] = {y};
    launch(k, bufs, NULL);
    cr_expect(y[0] == 0 && y[1] == 45, "%lld %lld", (long long)y[0], (long long)y[1]);
}

Test(host, in_place_and_overlap_variants) {
    enum { N = 4096 };
    Kernel *k = kernel1(N);
    int in = kir_buffer(g, k, vec(DT_F32, N), KB_INPUT, false);
    int out = kir_buffer(g, k, vec(DT_F32, N), KB_PLANNED, true);
    KExpr *i = kir_var(g, 0), *x = kir_load(g, k, in, i);
    k->body = kir_store(g, out, i, kir_bin(g, KO_ADD, kir_bin(g, KO_MUL, x, kir_const_f(g, 2)), kir_const_f(g, 1)));
    float *a = malloc(sizeof(float) * (N + 1)), *b = malloc(sizeof(float) * N);
    for (int j = 0; j < N; j++) a[j] = (float)j;
    void *bufs[2] = {a, b};
    launch(k, bufs, NULL); /* distinct */
    for (int j = 0; j < N; j++) cr_expect_eq(b[j], 2.0f * (float)j + 1);
    bufs[1] = a; /* in place */
    launch(k, bufs, NULL);
    for (int j = 0; j < N; j++) cr_expect_eq(a[j], 2.0f * (float)j + 1);
    cr_expect_eq(rt_host_stats(hb).kernels, 2);
    bufs[1] = a + 1; /* overlapping by all but one element: runs, without noalias */
    launch(k, bufs, NULL);
    cr_expect_eq(rt_host_stats(hb).kernels, 3);
    launch(k, bufs, NULL);
    cr_expect_eq(rt_host_stats(hb).kernels, 3);
    free(a);
    free(b);
}

/* A batched GEMM with an epilogue, the shape lowering gives linear layers:
 * out[b,m,n] = relu(sum_k A[b,m,k] W[n,k] + bias[n]) (+ an extra accumulator
 * when `extra`, so the block shape changes).  Run on pools of 1, 2 and 3
 * threads with chunks that start and end inside rows, so the renderer's
 * blocks of rows x columns, their column tails and the single-point rows all
 * run; checked against a plain C loop. */
static void check_gemm(int64_t B, int64_t M, int64_t N, int64_t K, bool extra) {
    Kernel *k = kir_kernel_create(g, "gemm", 0);
    for (int i = 0; i < 4; i++) kir_new_var(k);
    k->npar = 3;
    k->par_extent = arena_alloc(g->arena, 3 * sizeof(KExpr *));
    k->par_extent[0] = kir_const_i(g, B);
    k->par_extent[1] = kir_const_i(g, M);
    k->par_extent[2] = kir_const_i(g, N);
    k->flops = dim_const(g->dims, B * M * N * 6000); /* small chunks */
    int64_t sa[3] = {B, M, K}, sw[2] = {N, K}, so[3] = {B, M, N};
    int ia = kir_buffer(g, k, value(DT_F32, 3, sa), KB_INPUT, false);
    int iw = kir_buffer(g, k, value(DT_F32, 2, sw), KB_PARAM, false);
    int ib = kir_buffer(g, k, vec(DT_F32, N), KB_PARAM, false);
    int io = kir_buffer(g, k, value(DT_F32, 3, so), KB_PLANNED, true);
    int acc = kir_new_local(g, k, KT_F32), acc2 = extra ? kir_new_local(g, k, KT_F32) : -1;
    int l1 = kir_new_local(g, k, KT_F32);
    KExpr *vb = kir_var(g, 0), *vm = kir_var(g, 1), *vn = kir_var(g, 2), *vk = kir_var(g, 3);
    KExpr *arow = kir_bin(g, KO_MUL, kir_bin(g, KO_ADD, kir_bin(g, KO_MUL, vb, kir_const_i(g, M)), vm), kir_const_i(g, K));
    KExpr *a = kir_load(g, k, ia, kir_bin(g, KO_ADD, arow, vk));
    KExpr *w = kir_load(g, k, iw, kir_bin(g, KO_ADD, kir_bin(g, KO_MUL, vn, kir_const_i(g, K)), vk));
    KStmt *loop = kir_set(g, acc, kir_bin(g, KO_ADD, kir_local(g, k, acc), kir_bin(g, KO_MUL, a, w)));
    if (extra) kir_append(&loop, kir_set(g, acc2, kir_bin(g, KO_ADD, kir_local(g, k, acc2), a)));
    k->body = kir_set(g, acc, kir_const_f(g, 0));
    kir_append(&k->body, kir_for(g, 3, kir_const_i(g, K), loop));
    KExpr *v = kir_bin(g, KO_ADD, kir_local(g, k, acc), kir_load(g, k, ib, vn));
    if (extra) v = kir_bin(g, KO_ADD, v, kir_bin(g, KO_MUL, kir_local(g, k, acc2), kir_const_f(g, 0.5)));
    kir_append(&k->body, kir_set(g, l1, v));
    KExpr *oidx = kir_bin(g, KO_ADD, kir_bin(g, KO_MUL, kir_bin(g, KO_ADD, kir_bin(g, KO_MUL, vb, kir_const_i(g, M)), vm),
                                               kir_const_i(g, N)),
                          vn);
    kir_append(&k->body, kir_store(g, io, oidx, kir_un(g, KO_RELU, kir_local(g, k, l1))));
    float *A = malloc(sizeof(float) * (size_t)(B * M * K)), *W = malloc(sizeof(float) * (size_t)(N * K)),
          *bias = malloc(sizeof(float) * (size_t)N), *out = malloc(sizeof(float) * (size_t)(B * M * N));
    for (int64_t i = 0; i < B * M * K; i++) A[i] = (float)((i * 7919) % 23) / 11.0f - 1.0f;
    for (int64_t i = 0; i < N * K; i++) W[i] = (float)((i * 104729) % 19) / 9.0f - 1.0f;
    for (int64_t i = 0; i < N; i++) bias[i] = (float)(i % 5) / 4.0f - 0.5f;
    int sizes[3] = {1, 2, 3};
    for (int t = 0; t < 3; t++) {
        ThreadPool *pool = rt_threadpool_create(sizes[t]);
        HostOptions o = {.pool = pool, .no_cache = true};
        HostBackend *b = rt_host_create(&o, diag);
        for (int64_t i = 0; i < B * M * N; i++) out[i] = NAN;
        void *bufs[4] = {A, W, bias, out};
        cr_assert(rt_host_launch(b, g, k, bufs, (int64_t[]){0}, diag), "%s", diag_text());
        for (int64_t bb = 0; bb < B; bb++)
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++) {
                    double s = 0, s2 = 0;
                    for (int64_t kk = 0; kk < K; kk++) {
                        s += (double)A[(bb * M + m) * K + kk] * W[n * K + kk];
                        s2 += A[(bb * M + m) * K + kk];
                    }
                    double want = s + bias[n] + (extra ? 0.5 * s2 : 0);
                    want = want < 0 ? 0 : want;
                    float got = out[(bb * M + m) * N + n];
                    cr_assert(fabs(got - want) <= 1e-5 * (1 + fabs(want)),
                              "%lldx%lldx%lld K=%lld%s, %d threads: out[%lld,%lld,%lld] = %.9g, want %.9g", (long long)B,
                              (long long)M, (long long)N, (long long)K, extra ? " (extra)" : "", sizes[t], (long long)bb,
                              (long long)m, (long long)n, got, want);
                }
        rt_host_destroy(b);
        rt_threadpool_destroy(pool);
    }
    free(A);
    free(W);
    free(bias);
    free(out);
}

Test(host, jammed_gemm_blocks) {
    check_gemm(2, 13, 11, 7, false);
    check_gemm(1, 4, 4, 33, false);
    check_gemm(3, 9, 17, 64, false);
    check_gemm(1, 1, 5, 3, false);
    check_gemm(2, 13, 11, 7, true);
    check_gemm(1, 8, 3, 100, true);
}

/* ---- ahead-of-time compilation and the cache ---------------------------------------------- */

static Kernel *scale_kernel(float s, int64_t n) {
    Kernel *k = kernel1(n);
    int in = kir_buffer(g, k, vec(DT_F32, n), KB_INPUT, false);
    int out = kir_buffer(g, k, vec(DT_F32, n), KB_PLANNED, true);
    KExpr *i = kir_var(g, 0);
    k->body = kir_store(g, out, i, kir_un(g, KO_EXP, kir_bin(g, KO_MUL, kir_load(g, k, in, i), kir_const_f(g, s))));
    return k;
}

static void run_scale(HostBackend *b, Kernel *k, float s) {
    float x[64], y[64];
    for (int i = 0; i < 64; i++) x[i] = (float)i / 64;
    void *bufs[2] = {x, y};
    cr_assert(rt_host_launch(b, g, k, bufs, (int64_t[]){0}, diag), "%s", diag_text());
    for (int i = 0; i < 64; i++) cr_expect(ulps(y[i], exp((double)(x[i] * s))) <= 1);
}

Test(host, prepare_program) {
    KProgram p = {.g = g};
    kir_program_add(&p, scale_kernel(2, 64));
    kir_program_add(&p, scale_kernel(3, 64));
    kir_program_add(&p, scale_kernel(2, 64)); /* identical to the first */
    cr_assert(rt_host_prepare(hb, g, &p, diag), "%s", diag_text());
    HostStats s = rt_host_stats(hb);
    cr_expect_eq(s.kernels, 2);
    cr_expect_eq(s.compiled, 2);
    run_scale(hb, p.kernels[0], 2);
    run_scale(hb, p.kernels[1], 3);
    run_scale(hb, p.kernels[2], 2);
    cr_expect_eq(rt_host_stats(hb).kernels, 2, "launching prepared kernels compiled again");
}

static char *find_entry(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "find '%s' -name '*.dsck' | head -1", dir);
    FILE *f = popen(cmd, "r");
    static char path[512];
    path[0] = 0;
    if (f) {
        if (!fgets(path, sizeof path, f)) path[0] = 0;
        pclose(f);
    }
    path[strcspn(path, "\n")] = 0;
    return path[0] ? path : NULL;
}

Test(host, object_cache) {
    HostOptions o = {.cache_dir = cache_dir};
    Kernel *k = scale_kernel(5, 64);
    /* miss: compiled and stored */
    HostBackend *b = rt_host_create(&o, diag);
    run_scale(b, k, 5);
    HostStats s = rt_host_stats(b);
    cr_expect(s.compiled == 1 && s.cache_hits == 0 && s.cache_stores == 1, "miss: %d %d %d", s.compiled, s.cache_hits,
              s.cache_stores);
    rt_host_destroy(b);
    char *entry = find_entry(cache_dir);
    cr_assert_not_null(entry, "no cache entry under %s", cache_dir);
    /* hit: a new backend (a new process, as far as the JIT knows) loads the object */
    b = rt_host_create(&o, diag);
    run_scale(b, k, 5);
    s = rt_host_stats(b);
    cr_expect(s.compiled == 0 && s.cache_hits == 1 && s.cache_stores == 0, "hit: %d %d %d", s.compiled, s.cache_hits,
              s.cache_stores);
    rt_host_destroy(b);
    /* a corrupt entry (one payload byte flipped) is reported, rebuilt and rewritten */
    FILE *f = fopen(entry, "r+b");
    cr_assert_not_null(f);
    fseek(f, 200, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 200, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
    int warnings = diag_warning_count(diag);
    b = rt_host_create(&o, diag);
    run_scale(b, k, 5);
    s = rt_host_stats(b);
    cr_expect(s.compiled == 1 && s.cache_hits == 0 && s.cache_corrupt == 1 && s.cache_stores == 1,
              "corrupt: %d %d %d %d", s.compiled, s.cache_hits, s.cache_corrupt, s.cache_stores);
    cr_expect_gt(diag_warning_count(diag), warnings, "the corrupt entry was not reported");
    rt_host_destroy(b);
    b = rt_host_create(&o, diag); /* and it is good again */
    run_scale(b, k, 5);
    cr_expect_eq(rt_host_stats(b).cache_hits, 1);
    rt_host_destroy(b);
    /* DSC_CACHE=0 turns it off */
    setenv("DSC_CACHE", "0", 1);
    HostOptions env = {0};
    b = rt_host_create(&env, diag);
    run_scale(b, scale_kernel(6, 64), 6);
    s = rt_host_stats(b);
    cr_expect(s.compiled == 1 && s.cache_stores == 0);
    rt_host_destroy(b);
    unsetenv("DSC_CACHE");
    cr_expect_eq(diag_error_count(diag), 0, "%s", diag_text());
}

Test(host, kernel_ir_dump) {
    Kernel *k = scale_kernel(2, 1024);
    char *ir = rt_host_kernel_ir(hb, g, k, false, diag);
    cr_assert_not_null(ir, "%s", diag_text());
    cr_expect(strstr(ir, "define void @dsc_kernel(ptr noalias nocapture readonly"), "%s", ir);
    cr_expect(strstr(ir, "llvm.loop.vectorize.enable"));
    free(ir);
    ir = rt_host_kernel_ir(hb, g, k, true, diag);
    cr_assert_not_null(ir);
    cr_expect(strstr(ir, "<8 x float>") || strstr(ir, "<16 x float>") || strstr(ir, "<4 x float>"),
              "the loop was not vectorized:\n%s", ir);
    free(ir);
}


/* ---- equivalence with the interpreter: examples and random models ------------------ */

#include "../randgraph.c"

typedef struct {
    double worst[DT_COUNT];    /* worst relative error by output dtype */
    double worst_through16;    /* of f32 outputs computed through f16/bf16 values */
    double worst_kir[DT_COUNT]; /* against the kernel-IR evaluator */
    bool vs_kir;
    int models, failed, kernels;
    double t_ref, t_host;
} EqStats;

static char *diag_string(const Diag *d) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    diag_print(d, f, true);
    fclose(f);
    return buf;
}

/* Seeded inputs and params in the order of the graph's nodes (as
 * test_equivalence.c makes them: tame values, gather indices in range). */
static void make_data(const Graph *gr, const int64_t *syms, uint64_t seed, Tensor **ins, int *nin, Tensor **prm,
                      int *nprm) {
    uint64_t r = seed * 0x9e3779b97f4a7c15ull + 17;
    *nin = *nprm = 0;
    for (int i = 0; i < gr->nnodes; i++) {
        const Node *x = gr->nodes[i];
        if (x->op != OP_INPUT && x->op != OP_PARAM) continue;
        int64_t shape[IR_MAX_RANK];
        for (int j = 0; j < x->type.rank; j++) dim_eval(gr->dims, x->type.dim[j], syms, &shape[j], NULL, 0);
        Tensor *t = rt_tensor_new(x->type.dtype, x->type.rank, shape);
        double lo = -1, hi = 1;
        if (dtype_is_int(x->type.dtype)) {
            lo = -8, hi = 8;
            int64_t size = -1;
            for (int k = 0; k < gr->nnodes; k++) {
                const Node *u = gr->nodes[k];
                if (u->op != OP_GATHER || u->in[1] != x) continue;
                int ax = ir_norm_axis(ir_attr_int(u, "axis", 0), u->in[0]->type.rank);
                int64_t sz;
                if (ax >= 0 && dim_eval(gr->dims, u->in[0]->type.dim[ax], syms, &sz, NULL, 0) && (size < 0 || sz < size))
                    size = sz;
            }
            if (size > 0) lo = (double)-size, hi = (double)size;
        } else if (dtype_is_float(x->type.dtype) && x->op == OP_PARAM) {
            bool bn = false;
            for (int k = 0; k < gr->nnodes; k++)
                if (gr->nodes[k]->op == OP_BATCHNORM && (gr->nodes[k]->in[1] == x || gr->nodes[k]->in[4] == x))
                    bn = true;
            if (bn)
                lo = 0.5, hi = 1.5;
            else if (x->type.rank >= 2 && shape[x->type.rank - 1] > 0)
                hi = 1 / sqrt((double)shape[x->type.rank - 1]), lo = -hi;
        }
        rt_fill_random(t, &r, lo, hi);
        if (x->op == OP_INPUT)
            ins[(*nin)++] = t;
        else
            prm[(*nprm)++] = t;
    }
}

static double eq_tolerance(DType t) {
    return t == DT_F32 ? 1e-4 : t == DT_F16 ? 2e-3 : t == DT_BF16 ? 1.6e-2 : 0;
}

/* The tolerance for an output: its dtype's, or the looser one of a 16-bit
 * float value it is computed from.  The interpreter rounds every f16/bf16
 * value; kernels keep a fused group's intermediates in f32 (spec section 4),
 * so an f32 output computed through f16 values differs by f16 roundings. */
static double output_tolerance(const Graph *gr, const Node *out) {
    bool *seen = calloc((size_t)gr->nnodes + 1, 1);
    const Node **stack = calloc((size_t)gr->nnodes + 1, sizeof *stack);
    double tol = eq_tolerance(out->type.dtype);
    int n = 0;
    stack[n++] = out;
    seen[out->id] = true;
    while (n > 0) {
        const Node *x = stack[--n];
        if (!ir_is_source(x) && dtype_is_float(x->type.dtype) && eq_tolerance(x->type.dtype) > tol)
            tol = eq_tolerance(x->type.dtype);
        for (int i = 0; i < x->nin; i++)
            if (x->in[i] && x->in[i]->id >= 0 && !seen[x->in[i]->id]) {
                seen[x->in[i]->id] = true;
                stack[n++] = x->in[i];
            }
    }
    free(seen);
    free(stack);
    return dtype_is_float(out->type.dtype) ? tol : 0;
}

/* Relative L2 error of got against want (0 for equal non-floats, inf for a
 * mismatch there or a shape difference). */
static double rel_error(const Tensor *got, const Tensor *want, char *why, size_t n) {
    if (got->dtype != want->dtype || got->rank != want->rank ||
        memcmp(got->shape, want->shape, sizeof(int64_t) * (size_t)got->rank) != 0) {
        snprintf(why, n, "dtype or shape differs");
        return INFINITY;
    }
    int64_t total = rt_numel(got->rank, got->shape);
    if (!dtype_is_float(got->dtype)) {
        for (int64_t i = 0; i < total; i++) {
            bool same = got->dtype == DT_I64 ? ((int64_t *)got->data)[i] == ((int64_t *)want->data)[i]
                                             : rt_get(got, i) == rt_get(want, i);
            if (!same) {
                snprintf(why, n, "element %lld is %.17g, expected %.17g", (long long)i, rt_get(got, i), rt_get(want, i));
                return INFINITY;
            }
        }
        return 0;
    }
    double err = 0, ref = 0, worst = 0;
    int64_t wi = 0;
    for (int64_t i = 0; i < total; i++) {
        double a = rt_get(got, i), b = rt_get(want, i);
        if (isnan(a) != isnan(b) || (isinf(b) && a != b)) {
            snprintf(why, n, "element %lld is %g, expected %g", (long long)i, a, b);
            return INFINITY;
        }
        if (!isfinite(b)) continue;
        err += (a - b) * (a - b);
        ref += b * b;
        if (fabs(a - b) > worst) worst = fabs(a - b), wi = i;
    }
    double F = got->dtype == DT_F32 ? 0.1 : 1, den = fmax(ref, F * F * (double)total);
    snprintf(why, n, "worst element %lld: %.9g, expected %.9g", (long long)wi, rt_get(got, wi), rt_get(want, wi));
    return den > 0 ? sqrt(err / den) : sqrt(err);
}

static HostBackend *eq_backend;

/* Compiles src at -O`opt`, runs the interpreter and the host backend on the
 * same seeded data and compares; false (with the reason printed) on a mismatch. */
static bool check_host(const char *label, const char *src, int opt, const char *const *bnames, const int64_t *bvalues,
                       int nb, uint64_t seed, EqStats *st) {
    Arena *a = arena_create();
    Diag *d = diag_create();
    bool ok = false;
    Graph *gr = fe_compile_source(a, d, label, src, strlen(src));
    Tensor *ins[64] = {0}, *prm[256] = {0}, **ref = NULL, **got = NULL;
    int nin = 0, nprm = 0;
    char why[512] = "";
    PipelineOptions po = {.opt_level = opt};
    if (!gr || !pass_run_pipeline(gr, d, &po)) {
        snprintf(why, sizeof why, "does not compile");
        goto done;
    }
    int nsyms = dim_sym_count(gr->dims);
    int64_t syms[16] = {0};
    for (int s = 0; s < nsyms && s < 16; s++) {
        syms[s] = 2;
        for (int b = 0; b < nb; b++)
            if (strcmp(bnames[b], dim_sym_name(gr->dims, s)) == 0) syms[s] = bvalues[b];
        int64_t bound = dim_sym_bound(gr->dims, s);
        if (bound >= 0 && syms[s] > bound) syms[s] = bound;
    }
    int nparams = 0, ninputs = 0;
    for (int i = 0; i < gr->nnodes; i++) {
        nparams += gr->nodes[i]->op == OP_PARAM;
        ninputs += gr->nodes[i]->op == OP_INPUT;
    }
    cr_assert(nparams <= 256 && ninputs <= 64);
    make_data(gr, syms, seed, ins, &nin, prm, &nprm);
    ref = calloc((size_t)gr->noutputs + 1, sizeof(Tensor *));
    got = calloc((size_t)gr->noutputs + 1, sizeof(Tensor *));
    double t0 = test_now_s();
    if (!rt_interp_run(gr, ins, nin, prm, ref, d)) {
        ok = true; /* the reference itself fails (a generator matter, test_equivalence's business) */
        goto done;
    }
    double t1 = test_now_s();
    KProgram p = {0};
    if (!cg_lower(gr, &p, d)) {
        snprintf(why, sizeof why, "lowering fails");
        goto done;
    }
    st->kernels += p.nkernels;
    double t2 = test_now_s();
    if (!rt_host_prepare(eq_backend, gr, &p, d) ||
        !rt_exec_run(gr, &p, ins, nin, prm, got, rt_host_launch, eq_backend, d)) {
        snprintf(why, sizeof why, "the host backend fails");
        goto done;
    }
    st->t_ref += t1 - t0;
    st->t_host += test_now_s() - t2;
    ok = true;
    for (int i = 0; i < gr->noutputs; i++) {
        char w[256];
        double e = rel_error(got[i], ref[i], w, sizeof w), tol = output_tolerance(gr, gr->outputs[i].node);
        DType dt = ref[i]->dtype;
        bool through16 = tol > eq_tolerance(dt);
        double *worst = through16 ? &st->worst_through16 : &st->worst[dt];
        if (e > *worst) *worst = e;
        if (!(e <= tol)) {
            snprintf(why, sizeof why, "output '%s' (%s%s): relative L2 error %.3g > %.3g; %s", gr->outputs[i].name,
                     dtype_name(dt), through16 ? ", computed through 16-bit floats" : "", e, tol, w);
            ok = false;
            break;
        }
    }
    if (ok && st->vs_kir) { /* the kernel-IR evaluator on the same program: only the backend differs */
        Tensor **k = calloc((size_t)gr->noutputs + 1, sizeof(Tensor *));
        if (rt_exec_run(gr, &p, ins, nin, prm, k, cg_kir_eval, NULL, d)) {
            for (int i = 0; i < gr->noutputs; i++) {
                char w[256];
                double e = rel_error(got[i], k[i], w, sizeof w);
                if (e > st->worst_kir[ref[i]->dtype]) st->worst_kir[ref[i]->dtype] = e;
                if (!(e <= eq_tolerance(ref[i]->dtype)) && ok) {
                    snprintf(why, sizeof why, "output '%s': against the kernel-IR evaluator: relative L2 error %.3g; %s",
                             gr->outputs[i].name, e, w);
                    ok = false;
                }
                rt_tensor_free(k[i]);
            }
        }
        free(k);
    }
done:
    st->models++;
    if (!ok) {
        st->failed++;
        char *dt = diag_string(d);
        fprintf(stderr, "==== %s (-O%d): %s\n%s---- the model:\n%s====\n", label, opt, why, dt, src);
        free(dt);
    }
    for (int i = 0; i < nin; i++) rt_tensor_free(ins[i]);
    for (int i = 0; i < nprm; i++) rt_tensor_free(prm[i]);
    for (int i = 0; gr && ref && i < gr->noutputs; i++) {
        rt_tensor_free(ref[i]);
        rt_tensor_free(got[i]);
    }
    free(ref);
    free(got);
    diag_destroy(d);
    arena_destroy(a);
    return ok;
}

static void eq_setup(void) {
    /* a cache kept in the build tree: a rerun links cached objects instead of
     * compiling ~2500 kernels again (the cache itself is tested above) */
    HostOptions o = {.cache_dir = DSC_BINARY_DIR "/test_host_cache"};
    Diag *d = diag_create();
    eq_backend = rt_host_create(&o, d);
    diag_destroy(d);
    cr_assert_not_null(eq_backend);
}

static void eq_teardown(void) { rt_host_destroy(eq_backend); }

static void eq_summary(const char *what, const EqStats *st) {
    HostStats hs = rt_host_stats(eq_backend);
    fprintf(stderr,
            "host equivalence, %s: %d models, %d failed, %d kernels (%d compiled, %.1f s); worst relative L2 error "
            "f32 %.3g, f16 %.3g, bf16 %.3g, f32 through 16-bit values %.3g; against the kernel-IR evaluator f32 %.3g, "
            "f16 %.3g, bf16 %.3g; interpreter %.2f s, host %.2f s\n",
            what, st->models, st->failed, st->kernels, hs.compiled, hs.compile_s, st->worst[DT_F32], st->worst[DT_F16],
            st->worst[DT_BF16], st->worst_through16, st->worst_kir[DT_F32], st->worst_kir[DT_F16],
            st->worst_kir[DT_BF16], st->t_ref, st->t_host);
}

static char *slurp(const char *path) {
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

Test(host_equivalence, examples, .init = eq_setup, .fini = eq_teardown, .timeout = 600) {
    glob_t gl;
    cr_assert_eq(glob("examples/*.dsg", 0, NULL, &gl), 0, "no examples/*.dsg (run from the repository root)");
    static const char *names[] = {"B", "S", "N"};
    static const int64_t small[] = {1, 3, 1}, larger[] = {2, 17, 3};
    EqStats st = {0};
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        char *src = slurp(gl.gl_pathv[i]);
        cr_assert_not_null(src);
        for (int opt = 0; opt <= 2; opt += 2) {
            cr_expect(check_host(gl.gl_pathv[i], src, opt, names, small, 3, 1000 + i, &st), "%s", gl.gl_pathv[i]);
            cr_expect(check_host(gl.gl_pathv[i], src, opt, names, larger, 3, 2000 + i, &st), "%s", gl.gl_pathv[i]);
        }
        free(src);
    }
    globfree(&gl);
    eq_summary("examples", &st);
}

Test(host_equivalence, random_models, .init = eq_setup, .fini = eq_teardown, .timeout = 1800) {
    const char *v = getenv("DSC_HOST_SEEDS"), *one = getenv("DSC_HOST_SEED");
    long nseeds = v && *v ? strtol(v, NULL, 10) : 200, first = 0;
    if (one && *one) {
        first = strtol(one, NULL, 10);
        nseeds = 1;
    }
    bool verbose = getenv("DSC_HOST_VERBOSE") != NULL;
    EqStats st = {.vs_kir = true};
    for (long s = first; s < first + nseeds; s++) {
        RandGraph m;
        randgraph_generate((uint64_t)s, &m);
        char label[64];
        snprintf(label, sizeof label, "seed %ld", s);
        int failed = st.failed;
        check_host(label, m.text, 2, m.bind_names, m.bind_values, m.nbinds, (uint64_t)s, &st);
        if (s % 5 == 0) check_host(label, m.text, 0, m.bind_names, m.bind_values, m.nbinds, (uint64_t)s, &st);
        if (verbose) fprintf(stderr, "%s %s (%s): %s\n", label, m.kind, m.motifs, st.failed > failed ? "FAILED" : "ok");
        cr_expect_eq(st.failed, failed, "%s failed (see above)", label);
        randgraph_free(&m);
    }
    eq_summary("random models", &st);
}

#endif
