/* Reference interpreter: hand-built graphs with hand-computed expectations,
 * and every error path of binding, weight checking and run-time failures.
 * (The numpy-checked suite covering every operator is test_numpy.c.) */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "ir/ir.h"
#include "runtime/interp.h"

static Arena *A;
static Graph *G;
static Diag *D;
static const Loc L0 = {0};

static void setup(void) {
    A = arena_create();
    G = ir_graph_create(A, "test.dsg");
    G->name = "t";
    D = diag_create();
}
static void teardown(void) {
    diag_destroy(D);
    arena_destroy(A);
}
TestSuite(interp, .init = setup, .fini = teardown);

#define DIMS(...) ((DimId[]){__VA_ARGS__})
#define SH(...) ((int64_t[]){__VA_ARGS__})
#define VALS(...) ((double[]){__VA_ARGS__})
#define NARGS(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))

static DimId K(int64_t v) { return dim_const(G->dims, v); }
static DimId SYM(const char *name, int64_t bound) {
    int s = dim_sym_lookup(G->dims, name);
    if (s < 0) s = dim_declare(G->dims, name, bound, L0);
    return dim_sym(G->dims, s);
}

static Node *source(OpKind op, const char *name, DType dt, int rank, const DimId *dims) {
    Node *n = ir_node_create(G, op, 0, L0);
    n->name = name;
    n->key = name;
    n->type.dtype = dt;
    n->type.rank = rank;
    for (int i = 0; i < rank; i++)
        n->type.dim[i] = dims[i];
    ir_append(G, n);
    return n;
}
static Node *input(const char *name, DType dt, int rank, const DimId *dims) {
    return source(OP_INPUT, name, dt, rank, dims);
}
static Node *param(const char *name, DType dt, int rank, const DimId *dims) {
    return source(OP_PARAM, name, dt, rank, dims);
}

/* An op node with its result type set by hand (as ir_infer would). */
static Node *op(OpKind k, DType dt, int rank, const DimId *dims, int nin, ...) {
    Node *n = ir_node_create(G, k, nin, L0);
    va_list ap;
    va_start(ap, nin);
    for (int i = 0; i < nin; i++)
        n->in[i] = va_arg(ap, Node *);
    va_end(ap);
    n->type.dtype = dt;
    n->type.rank = rank;
    for (int i = 0; i < rank; i++)
        n->type.dim[i] = dims[i];
    ir_append(G, n);
    return n;
}
static Node *cnst(DType dt, double v) {
    Node *n = op(OP_CONST, dt, 0, NULL, 0);
    n->fval = v;
    return n;
}
static void set_ints(Node *n, const char *name, int cnt, const int64_t *v) {
    Attr *a = ir_attr_set(G, n, name, AV_INTS, L0);
    a->n = cnt;
    a->ints = arena_alloc(A, sizeof(int64_t) * (size_t)(cnt ? cnt : 1));
    if (cnt) memcpy(a->ints, v, sizeof(int64_t) * (size_t)cnt);
}
#define INTS(n, name, ...) set_ints(n, name, NARGS(__VA_ARGS__), SH(__VA_ARGS__))
static void set_int(Node *n, const char *name, int64_t v) { ir_attr_set(G, n, name, AV_INT, L0)->i = v; }
static void set_float(Node *n, const char *name, double v) { ir_attr_set(G, n, name, AV_FLOAT, L0)->f = v; }
static void set_bool(Node *n, const char *name, bool v) { ir_attr_set(G, n, name, AV_BOOL, L0)->b = v; }
static void set_dims(Node *n, const char *name, int cnt, const DimId *v) {
    Attr *a = ir_attr_set(G, n, name, AV_DIMS, L0);
    a->n = cnt;
    a->dims = arena_alloc(A, sizeof(DimId) * (size_t)cnt);
    memcpy(a->dims, v, sizeof(DimId) * (size_t)cnt);
}
static void out(Node *n) { ir_add_output(G, n->name ? n->name : "y", n, L0); }

static Tensor *mk(DType dt, int rank, const int64_t *shape, const double *vals) {
    Tensor *t = rt_tensor_new(dt, rank, shape);
    for (int64_t i = 0; i < rt_numel(rank, shape); i++)
        rt_set(t, i, vals ? vals[i] : (double)(i + 1));
    return t;
}

static void dump_diag(void) {
    for (int i = 0; i < diag_count(D); i++)
        fprintf(stderr, "diag: %s\n", diag_message(D, i, NULL, NULL));
}

/* Runs the graph with the given inputs and params (freed here). */
static bool run(Tensor **ins, int nin, Tensor **params, int nparams, Tensor **outs) {
    bool ok = rt_interp_run(G, ins, nin, params, outs, D);
    for (int i = 0; i < nin; i++)
        rt_tensor_free(ins[i]);
    for (int i = 0; i < nparams; i++)
        rt_tensor_free(params[i]);
    if (!ok) dump_diag();
    return ok;
}

static bool has_msg(const char *want) {
    for (int i = 0; i < diag_count(D); i++)
        if (strstr(diag_message(D, i, NULL, NULL), want)) return true;
    dump_diag();
    return false;
}
static bool first_msg_is(const char *want) {
    const char *m = diag_count(D) ? diag_message(D, 0, NULL, NULL) : "(none)";
    if (strcmp(m, want) == 0) return true;
    fprintf(stderr, "want: %s\ngot:  %s\n", want, m);
    return false;
}

static void expect_vals(const Tensor *t, int n, const double *want, double tol) {
    cr_assert_eq(rt_numel(t->rank, t->shape), n, "numel %lld != %d", (long long)rt_numel(t->rank, t->shape),
                 n);
    for (int i = 0; i < n; i++)
        cr_expect(fabs(rt_get(t, i) - want[i]) <= tol * (1 + fabs(want[i])),
                  "element %d: got %.9g, want %.9g", i, rt_get(t, i), want[i]);
}
static void expect_shape(const Tensor *t, int rank, const int64_t *shape) {
    cr_assert_eq(t->rank, rank, "rank %d != %d", t->rank, rank);
    for (int i = 0; i < rank; i++)
        cr_assert_eq(t->shape[i], shape[i], "dim %d: %lld != %lld", i, (long long)t->shape[i],
                     (long long)shape[i]);
}

/* ---- elementwise --------------------------------------------------------- */

Test(interp, add_broadcast_f32) {
    Node *a = input("a", DT_F32, 2, DIMS(K(2), K(3)));
    Node *b = input("b", DT_F32, 1, DIMS(K(3)));
    out(op(OP_ADD, DT_F32, 2, DIMS(K(2), K(3)), 2, a, b));
    Tensor *o[1];
    cr_assert(run((Tensor *[]){mk(DT_F32, 2, SH(2, 3), NULL), mk(DT_F32, 1, SH(3), VALS(10, 20, 30))}, 2,
                  NULL, 0, o));
    expect_shape(o[0], 2, SH(2, 3));
    expect_vals(o[0], 6, VALS(11, 22, 33, 14, 25, 36), 0);
    rt_tensor_free(o[0]);
}

Test(interp, broadcast_both_sides_and_const) {
    Node *a = input("a", DT_F32, 2, DIMS(K(3), K(1)));
    Node *b = input("b", DT_F32, 2, DIMS(K(1), K(2)));
    Node *m = op(OP_MUL, DT_F32, 2, DIMS(K(3), K(2)), 2, a, b);
    out(op(OP_SUB, DT_F32, 2, DIMS(K(3), K(2)), 2, m, cnst(DT_F32, 0.5)));
    Tensor *o[1];
    cr_assert(run((Tensor *[]){mk(DT_F32, 2, SH(3, 1), NULL), mk(DT_F32, 2, SH(1, 2), VALS(10, 100))}, 2,
                  NULL, 0, o));
    expect_vals(o[0], 6, VALS(9.5, 99.5, 19.5, 199.5, 29.5, 299.5), 0);
    rt_tensor_free(o[0]);
}

Test(interp, unary_float_ops) {
    struct {
        OpKind op;
        double x, want;
    } cases[] = {
        {OP_NEG, 2, -2},
        {OP_ABS, -3, 3},
        {OP_EXP, 1, M_E},
        {OP_LOG, M_E, 1},
        {OP_SQRT, 9, 3},
        {OP_RSQRT, 4, 0.5},
        {OP_RECIPROCAL, 8, 0.125},
        {OP_TANH, 0.5, tanh(0.5)},
        {OP_SIGMOID, 0, 0.5},
        {OP_SIGMOID, -800, 0},
        {OP_RELU, -1, 0},
        {OP_RELU, 2.5, 2.5},
        {OP_ERF, 0.5, erf(0.5)},
        {OP_SILU, 1, 1 / (1 + exp(-1))},
        {OP_GELU, 1, 0.5 * (1 + erf(1 / sqrt(2)))},
    };
    Node *x = input("x", DT_F32, 0, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        out(op(cases[i].op, DT_F32, 0, NULL, 1, x));
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Tensor *in = mk(DT_F32, 0, NULL, &cases[i].x), *o[32];
        cr_assert(rt_interp_run(G, &in, 1, NULL, o, D));
        cr_expect(fabs(rt_get(o[i], 0) - cases[i].want) < 1e-6, "%s(%g) = %.9g, want %.9g",
                  ir_op_name(cases[i].op), cases[i].x, rt_get(o[i], 0), cases[i].want);
        for (int k = 0; k < G->noutputs; k++)
            rt_tensor_free(o[k]);
        rt_tensor_free(in);
    }
}

Test(interp, gelu_tanh_and_clip) {
    Node *x = input("x", DT_F32, 1, DIMS(K(4)));
    Node *g = op(OP_GELU, DT_F32, 1, DIMS(K(4)), 1, x);
    ir_attr_set(G, g, "approximate", AV_STRING, L0)->s = "tanh";
    out(g);
    out(op(OP_CLIP, DT_F32, 1, DIMS(K(4)), 3, x, cnst(DT_F32, -1), cnst(DT_F32, 1.5)));
    out(op(OP_CLIP, DT_F32, 1, DIMS(K(4)), 3, x, NULL, cnst(DT_F32, 0)));
    Tensor *o[3];
    cr_assert(run((Tensor *[]){mk(DT_F32, 1, SH(4), VALS(-2, -0.5, 1, 3))}, 1, NULL, 0, o));
    double w[4];
    double xs[4] = {-2, -0.5, 1, 3};
    for (int i = 0; i < 4; i++)
        w[i] = 0.5 * xs[i] * (1 + tanh(sqrt(2 / M_PI) * (xs[i] + 0.044715 * xs[i] * xs[i] * xs[i])));
    expect_vals(o[0], 4, w, 1e-6);
    expect_vals(o[1], 4, VALS(-1, -0.5, 1, 1.5), 0);
    expect_vals(o[2], 4, VALS(-2, -0.5, 0, 0), 0);
    for (int i = 0; i < 3; i++)
        rt_tensor_free(o[i]);
}

Test(interp, compare_where_cast) {
    Node *a = input("a", DT_F32, 1, DIMS(K(4)));
    Node *b = input("b", DT_F32, 1, DIMS(K(4)));
    Node *lt = op(OP_LESS, DT_BOOL, 1, DIMS(K(4)), 2, a, b);
    out(lt);
    out(op(OP_GREATER, DT_BOOL, 1, DIMS(K(4)), 2, a, b));
    out(op(OP_EQUAL, DT_BOOL, 1, DIMS(K(4)), 2, a, b));
    out(op(OP_WHERE, DT_F32, 1, DIMS(K(4)), 3, lt, a, b));
    Node *c = op(OP_CAST, DT_I32, 1, DIMS(K(4)), 1, a);
    ir_attr_set(G, c, "dtype", AV_DTYPE, L0)->dt = DT_I32;
    out(c);
    Node *cb = op(OP_CAST, DT_BOOL, 1, DIMS(K(4)), 1, a);
    ir_attr_set(G, cb, "dtype", AV_DTYPE, L0)->dt = DT_BOOL;
    out(cb);
    Tensor *o[6];
    cr_assert(
        run((Tensor *[]){mk(DT_F32, 1, SH(4), VALS(-2.7, 0, 3.9, 5)), mk(DT_F32, 1, SH(4), VALS(1, 0, 3, 6))},
            2, NULL, 0, o));
    cr_expect_eq(o[0]->dtype, DT_BOOL);
    expect_vals(o[0], 4, VALS(1, 0, 0, 1), 0);
    expect_vals(o[1], 4, VALS(0, 0, 1, 0), 0);
    expect_vals(o[2], 4, VALS(0, 1, 0, 0), 0);
    expect_vals(o[3], 4, VALS(-2.7, 0, 3, 5), 1e-7);
    expect_vals(o[4], 4, VALS(-2, 0, 3, 5), 0); /* truncation toward zero */
    expect_vals(o[5], 4, VALS(1, 0, 1, 1), 0);
    for (int i = 0; i < 6; i++)
        rt_tensor_free(o[i]);
}

Test(interp, integer_arithmetic_wraps_and_truncates) {
    Node *a = input("a", DT_I32, 1, DIMS(K(4)));
    Node *b = input("b", DT_I32, 1, DIMS(K(4)));
    out(op(OP_ADD, DT_I32, 1, DIMS(K(4)), 2, a, b));
    out(op(OP_DIV, DT_I32, 1, DIMS(K(4)), 2, a, b));
    out(op(OP_MUL, DT_I32, 1, DIMS(K(4)), 2, a, b));
    out(op(OP_POW, DT_I32, 1, DIMS(K(4)), 2, b, cnst(DT_I32, 3)));
    out(op(OP_NEG, DT_I32, 1, DIMS(K(4)), 1, a));
    Tensor *o[5];
    cr_assert(run((Tensor *[]){mk(DT_I32, 1, SH(4), VALS(INT32_MAX, -7, 7, INT32_MIN)),
                               mk(DT_I32, 1, SH(4), VALS(1, 2, -2, -1))},
                  2, NULL, 0, o));
    expect_vals(o[0], 4, VALS(INT32_MIN, -5, 5, INT32_MAX), 0);
    expect_vals(o[1], 4, VALS(INT32_MAX, -3, -3, INT32_MIN), 0); /* toward zero; MIN/-1 wraps */
    expect_vals(o[2], 4, VALS(INT32_MAX, -14, -14, INT32_MIN), 0);
    expect_vals(o[3], 4, VALS(1, 8, -8, -1), 0);
    expect_vals(o[4], 4, VALS(-INT32_MAX, 7, -7, INT32_MIN), 0);
    for (int i = 0; i < 5; i++)
        rt_tensor_free(o[i]);
}

Test(interp, i8_and_i64_exact) {
    Node *a = input("a", DT_I8, 1, DIMS(K(3)));
    out(op(OP_MUL, DT_I8, 1, DIMS(K(3)), 2, a, cnst(DT_I8, 2)));
    Node *b = input("b", DT_I64, 1, DIMS(K(2)));
    out(op(OP_ADD, DT_I64, 1, DIMS(K(2)), 2, b, cnst(DT_I64, 1)));
    Tensor *ti = rt_tensor_new(DT_I64, 1, SH(2));
    int64_t big[2] = {((int64_t)1 << 60) + 1, INT64_MAX};
    memcpy(ti->data, big, sizeof big);
    Tensor *o[2];
    cr_assert(run((Tensor *[]){mk(DT_I8, 1, SH(3), VALS(100, -100, 3)), ti}, 2, NULL, 0, o));
    expect_vals(o[0], 3, VALS(-56, 56, 6), 0);
    int64_t got[2];
    memcpy(got, o[1]->data, sizeof got);
    cr_expect_eq(got[0], ((int64_t)1 << 60) + 2);
    cr_expect_eq(got[1], INT64_MIN);
    for (int i = 0; i < 2; i++)
        rt_tensor_free(o[i]);
}

Test(interp, integer_division_by_zero) {
    Node *a = input("a", DT_I32, 1, DIMS(K(2)));
    Node *b = input("b", DT_I32, 1, DIMS(K(2)));
    out(op(OP_DIV, DT_I32, 1, DIMS(K(2)), 2, a, b));
    Tensor *o[1] = {(Tensor *)1};
    cr_assert_not(
        run((Tensor *[]){mk(DT_I32, 1, SH(2), NULL), mk(DT_I32, 1, SH(2), VALS(1, 0))}, 2, NULL, 0, o));
    cr_expect_null(o[0]);
    cr_expect(first_msg_is("div: integer division by zero (2 / 0)"));
}

Test(interp, f16_rounds_when_stored) {
    Node *a = input("a", DT_F16, 1, DIMS(K(2)));
    Node *b = input("b", DT_F16, 1, DIMS(K(2)));
    out(op(OP_ADD, DT_F16, 1, DIMS(K(2)), 2, a, b));
    Tensor *o[1];
    /* 1 + 2^-11 is a tie between 1 and 1+2^-10: even wins (1); 1+2^-10 + 2^-11 rounds up */
    cr_assert(run((Tensor *[]){mk(DT_F16, 1, SH(2), VALS(1, 1 + 0x1p-10)),
                               mk(DT_F16, 1, SH(2), VALS(0x1p-11, 0x1p-11))},
                  2, NULL, 0, o));
    expect_vals(o[0], 2, VALS(1, 1 + 0x1p-9), 0);
    rt_tensor_free(o[0]);
}

Test(interp, bf16_rounds_when_stored) {
    Node *a = input("a", DT_BF16, 1, DIMS(K(1)));
    out(op(OP_MUL, DT_BF16, 1, DIMS(K(1)), 2, a, cnst(DT_BF16, 3)));
    Tensor *o[1];
    cr_assert(run((Tensor *[]){mk(DT_BF16, 1, SH(1), VALS(1 + 0x1p-7))}, 1, NULL, 0, o));
    /* 3 * (1 + 2^-7) = 3 + 3*2^-7 = 3.0234375; bf16 spacing at 2..4 is 2^-6: ties -> 3 + 2^-5 */
    expect_vals(o[0], 1, VALS(3 + 0x1p-5), 0);
    rt_tensor_free(o[0]);
}

/* ---- reductions and norms ------------------------------------------------- */

Test(interp, reductions) {
    Node *x = input("x", DT_F32, 3, DIMS(K(2), K(3), K(2)));
    Node *s = op(OP_REDUCE_SUM, DT_F32, 2, DIMS(K(2), K(2)), 1, x);
    INTS(s, "axes", -2);
    set_bool(s, "keepdims", false);
    out(s);
    Node *m = op(OP_REDUCE_MEAN, DT_F32, 3, DIMS(K(1), K(3), K(1)), 1, x);
    INTS(m, "axes", 0, 2);
    set_bool(m, "keepdims", true);
    out(m);
    Node *mx = op(OP_REDUCE_MAX, DT_F32, 0, NULL, 1, x); /* all axes */
    set_bool(mx, "keepdims", false);
    out(mx);
    Tensor *o[3];
    cr_assert(run((Tensor *[]){mk(DT_F32, 3, SH(2, 3, 2), NULL)}, 1, NULL, 0, o));
    /* x = 1..12 as [2,3,2] */
    expect_vals(o[0], 4, VALS(1 + 3 + 5, 2 + 4 + 6, 7 + 9 + 11, 8 + 10 + 12), 0);
    expect_shape(o[1], 3, SH(1, 3, 1));
    expect_vals(o[1], 3, VALS((1 + 2 + 7 + 8) / 4.0, (3 + 4 + 9 + 10) / 4.0, (5 + 6 + 11 + 12) / 4.0), 1e-7);
    expect_vals(o[2], 1, VALS(12), 0);
    for (int i = 0; i < 3; i++)
        rt_tensor_free(o[i]);
}

Test(interp, softmax_is_stable) {
    Node *x = input("x", DT_F32, 2, DIMS(K(2), K(3)));
    Node *s = op(OP_SOFTMAX, DT_F32, 2, DIMS(K(2), K(3)), 1, x);
    set_int(s, "axis", 0);
    out(s);
    Node *s2 = op(OP_SOFTMAX, DT_F32, 2, DIMS(K(2), K(3)), 1, x);
    set_int(s2, "axis", -1);
    out(s2);
    Tensor *o[2];
    cr_assert(
        run((Tensor *[]){mk(DT_F32, 2, SH(2, 3), VALS(1000, 1001, 1002, 1000, 1000, 1000))}, 1, NULL, 0, o));
    double e1 = exp(1), e2 = exp(2);
    expect_vals(o[0], 6, VALS(0.5, e1 / (1 + e1), e2 / (1 + e2), 0.5, 1 / (1 + e1), 1 / (1 + e2)), 1e-6);
    expect_vals(o[1], 6,
                VALS(1 / (1 + e1 + e2), e1 / (1 + e1 + e2), e2 / (1 + e1 + e2), 1 / 3.0, 1 / 3.0, 1 / 3.0),
                1e-6);
    for (int i = 0; i < 2; i++)
        rt_tensor_free(o[i]);
}

Test(interp, layernorm_rmsnorm_batchnorm) {
    Node *x = input("x", DT_F32, 2, DIMS(K(2), K(2)));
    Node *g = param("g", DT_F32, 1, DIMS(K(2)));
    Node *b = param("b", DT_F32, 1, DIMS(K(2)));
    Node *ln = op(OP_LAYERNORM, DT_F32, 2, DIMS(K(2), K(2)), 3, x, g, b);
    set_int(ln, "axis", -1);
    set_float(ln, "eps", 0);
    out(ln);
    Node *rn = op(OP_RMSNORM, DT_F32, 2, DIMS(K(2), K(2)), 2, x, g);
    set_int(rn, "axis", 1);
    set_float(rn, "eps", 0);
    out(rn);
    Node *ln0 = op(OP_LAYERNORM, DT_F32, 2, DIMS(K(2), K(2)), 3, x, cnst(DT_F32, 1), NULL);
    set_int(ln0, "axis", 0); /* over all 4 elements */
    set_float(ln0, "eps", 0);
    out(ln0);
    Tensor *o[3];
    cr_assert(run((Tensor *[]){mk(DT_F32, 2, SH(2, 2), VALS(1, 3, 2, 4))}, 1,
                  (Tensor *[]){mk(DT_F32, 1, SH(2), VALS(2, 3)), mk(DT_F32, 1, SH(2), VALS(10, 20))}, 2, o));
    /* each row: mean +-1 around its centre, population variance 1 -> (-1, 1) */
    expect_vals(o[0], 4, VALS(-2 + 10, 3 + 20, -2 + 10, 3 + 20), 1e-6);
    double r0 = sqrt(5.0), r1 = sqrt(10.0);
    expect_vals(o[1], 4, VALS(1 / r0 * 2, 3 / r0 * 3, 2 / r1 * 2, 4 / r1 * 3), 1e-6);
    double sd = sqrt(1.25); /* all four: mean 2.5, var 1.25 */
    expect_vals(o[2], 4, VALS(-1.5 / sd, 0.5 / sd, -0.5 / sd, 1.5 / sd), 1e-6);
    for (int i = 0; i < 3; i++)
        rt_tensor_free(o[i]);
}

Test(interp, batchnorm) {
    Node *x = input("x", DT_F32, 4, DIMS(K(1), K(2), K(1), K(2)));
    Node *ps[4];
    const char *nm[4] = {"s", "b", "m", "v"};
    for (int i = 0; i < 4; i++)
        ps[i] = param(nm[i], DT_F32, 1, DIMS(K(2)));
    Node *bn = op(OP_BATCHNORM, DT_F32, 4, DIMS(K(1), K(2), K(1), K(2)), 5, x, ps[0], ps[1], ps[2], ps[3]);
    set_float(bn, "eps", 0);
    out(bn);
    Tensor *o[1];
    cr_assert(run((Tensor *[]){mk(DT_F32, 4, SH(1, 2, 1, 2), VALS(1, 2, 3, 4))}, 1,
                  (Tensor *[]){mk(DT_F32, 1, SH(2), VALS(2, 3)), mk(DT_F32, 1, SH(2), VALS(1, -1)),
                               mk(DT_F32, 1, SH(2), VALS(1, 2)), mk(DT_F32, 1, SH(2), VALS(4, 16))},
                  4, o));
    expect_vals(o[0], 4, VALS(1, 2, -0.25, 0.5), 1e-7);
    rt_tensor_free(o[0]);
}

/* ---- linear algebra --------------------------------------------------------- */

Test(interp, matmul_shapes) {
    Node *a = input("a", DT_F32, 2, DIMS(K(2), K(3)));
    Node *b = input("b", DT_F32, 2, DIMS(K(3), K(2)));
    Node *v = input("v", DT_F32, 1, DIMS(K(3)));
    Node *bt = input("bt", DT_F32, 3, DIMS(K(2), K(3), K(1)));
    out(op(OP_MATMUL, DT_F32, 2, DIMS(K(2), K(2)), 2, a, b));
    out(op(OP_MATMUL, DT_F32, 1, DIMS(K(2)), 2, a, v));
    out(op(OP_MATMUL, DT_F32, 1, DIMS(K(2)), 2, v, b));
    out(op(OP_MATMUL, DT_F32, 0, NULL, 2, v, v));
    out(op(OP_MATMUL, DT_F32, 3, DIMS(K(2), K(2), K(1)), 2, a, bt)); /* batch broadcast of a */
    Tensor *o[5];
    cr_assert(run((Tensor *[]){mk(DT_F32, 2, SH(2, 3), NULL), mk(DT_F32, 2, SH(3, 2), NULL),
                               mk(DT_F32, 1, SH(3), VALS(1, 0, -1)),
                               mk(DT_F32, 3, SH(2, 3, 1), VALS(1, 0, 0, 0, 0, 1))},
                  4, NULL, 0, o));
    /* a = [[1,2,3],[4,5,6]], b = [[1,2],[3,4],[5,6]] */
    expect_vals(o[0], 4, VALS(22, 28, 49, 64), 0);
    expect_vals(o[1], 2, VALS(-2, -2), 0);
    expect_vals(o[2], 2, VALS(-4, -4), 0);
    expect_vals(o[3], 1, VALS(2), 0);
    expect_shape(o[4], 3, SH(2, 2, 1));
    expect_vals(o[4], 4, VALS(1, 4, 3, 6), 0);
    for (int i = 0; i < 5; i++)
        rt_tensor_free(o[i]);
}

Test(interp, linear_and_int_matmul) {
    Node *x = input("x", DT_F32, 3, DIMS(K(1), K(2), K(3)));
    Node *w = param("w", DT_F32, 2, DIMS(K(2), K(3)));
    Node *b = param("b", DT_F32, 1, DIMS(K(2)));
    out(op(OP_LINEAR, DT_F32, 3, DIMS(K(1), K(2), K(2)), 3, x, w, b));
    out(op(OP_LINEAR, DT_F32, 3, DIMS(K(1), K(2), K(2)), 3, x, w, NULL));
    Node *i = input("i", DT_I8, 2, DIMS(K(1), K(2)));
    out(op(OP_MATMUL, DT_I8, 2, DIMS(K(1), K(1)), 2, i, op(OP_TRANSPOSE, DT_I8, 2, DIMS(K(2), K(1)), 1, i)));
    Tensor *o[3];
    cr_assert(run(
        (Tensor *[]){mk(DT_F32, 3, SH(1, 2, 3), NULL), mk(DT_I8, 2, SH(1, 2), VALS(10, 10))}, 2,
        (Tensor *[]){mk(DT_F32, 2, SH(2, 3), VALS(1, 0, 0, 0, 1, 1)), mk(DT_F32, 1, SH(2), VALS(100, 200))},
        2, o));
    expect_vals(o[0], 4, VALS(101, 205, 104, 211), 0);
    expect_vals(o[1], 4, VALS(1, 5, 4, 11), 0);
    expect_vals(o[2], 1, VALS(-56), 0); /* 200 wraps in i8 */
    for (int k = 0; k < 3; k++)
        rt_tensor_free(o[k]);
}

Test(interp, attention_with_mask) {
    Node *q = input("q", DT_F32, 2, DIMS(K(1), K(2)));
    Node *k = input("k", DT_F32, 2, DIMS(K(2), K(2)));
    Node *v = input("v", DT_F32, 2, DIMS(K(2), K(1)));
    Node *m = input("m", DT_F32, 1, DIMS(K(2)));
    out(op(OP_ATTENTION, DT_F32, 2, DIMS(K(1), K(1)), 5, q, k, v, m, NULL));
    out(op(OP_ATTENTION, DT_F32, 2, DIMS(K(1), K(1)), 5, q, k, v, NULL, cnst(DT_F32, 1)));
    Tensor *o[2];
    cr_assert(
        run((Tensor *[]){mk(DT_F32, 2, SH(1, 2), VALS(1, 0)), mk(DT_F32, 2, SH(2, 2), VALS(2, 0, 0, 0)),
                         mk(DT_F32, 2, SH(2, 1), VALS(10, 20)), mk(DT_F32, 1, SH(2), VALS(0, -INFINITY))},
            4, NULL, 0, o));
    /* mask hides key 1 -> exactly v[0]; without mask, scores (2, 0) at scale 1 */
    expect_vals(o[0], 1, VALS(10), 1e-7);
    double p0 = exp(2) / (exp(2) + 1);
    expect_vals(o[1], 1, VALS(10 * p0 + 20 * (1 - p0)), 1e-6);
    for (int i = 0; i < 2; i++)
        rt_tensor_free(o[i]);
}

/* ---- layout ------------------------------------------------------------------ */

Test(interp, transpose_concat_slice) {
    Node *x = input("x", DT_F32, 2, DIMS(K(2), K(3)));
    Node *t = op(OP_TRANSPOSE, DT_F32, 2, DIMS(K(3), K(2)), 1, x);
    INTS(t, "perm", 1, 0);
    out(t);
    Node *c =
        op(OP_CONCAT, DT_F32, 2, DIMS(K(2), K(7)), 3, x, x, op(OP_SLICE, DT_F32, 2, DIMS(K(2), K(1)), 1, x));
    set_int(c, "axis", -1);
    Node *sl = c->in[2];
    set_dims(sl, "starts", 1, DIMS(K(1)));
    set_dims(sl, "ends", 1, DIMS(K(2)));
    INTS(sl, "axes", 1);
    INTS(sl, "steps", 1);
    out(c);
    Node *r = op(OP_SLICE, DT_F32, 2, DIMS(K(2), K(2)), 1, x); /* x[:, ::-2] */
    set_dims(r, "starts", 1, DIMS(K(-1)));
    set_dims(r, "ends", 1, DIMS(K(INT64_MIN)));
    INTS(r, "axes", -1);
    INTS(r, "steps", -2);
    out(r);
    Tensor *o[3];
    cr_assert(run((Tensor *[]){mk(DT_F32, 2, SH(2, 3), NULL)}, 1, NULL, 0, o));
    expect_vals(o[0], 6, VALS(1, 4, 2, 5, 3, 6), 0);
    expect_vals(o[1], 14, VALS(1, 2, 3, 1, 2, 3, 2, 4, 5, 6, 4, 5, 6, 5), 0);
    expect_vals(o[2], 4, VALS(3, 1, 6, 4), 0);
    for (int i = 0; i < 3; i++)
        rt_tensor_free(o[i]);
}

Test(interp, gather_reshape_squeeze) {
    Node *x = param("emb", DT_F32, 2, DIMS(K(3), K(2)));
    Node *ids = input("ids", DT_I64, 2, DIMS(K(1), K(3)));
    Node *g = op(OP_GATHER, DT_F32, 3, DIMS(K(1), K(3), K(2)), 2, x, ids);
    set_int(g, "axis", 0);
    out(g);
    Node *g1 = op(OP_GATHER, DT_F32, 3, DIMS(K(3), K(1), K(3)), 2, x, ids);
    set_int(g1, "axis", 1);
    out(g1);
    Node *rs = op(OP_RESHAPE, DT_F32, 1, DIMS(K(6)), 1, g);
    out(rs);
    Node *sq = op(OP_SQUEEZE, DT_F32, 2, DIMS(K(3), K(2)), 1, g);
    INTS(sq, "axes", 0);
    out(sq);
    Tensor *o[4];
    cr_assert(run((Tensor *[]){mk(DT_I64, 2, SH(1, 3), VALS(1, 0, -1))}, 1,
                  (Tensor *[]){mk(DT_F32, 2, SH(3, 2), NULL)}, 1, o));
    /* emb = [[1,2],[3,4],[5,6]] */
    expect_shape(o[0], 3, SH(1, 3, 2));
    expect_vals(o[0], 6, VALS(3, 4, 1, 2, 5, 6), 0);
    expect_shape(o[1], 3, SH(3, 1, 3)); /* emb[:, ids] */
    expect_vals(o[1], 9, VALS(2, 1, 2, 4, 3, 4, 6, 5, 6), 0);
    expect_shape(o[2], 1, SH(6));
    expect_vals(o[2], 6, VALS(3, 4, 1, 2, 5, 6), 0);
    expect_shape(o[3], 2, SH(3, 2));
    for (int i = 0; i < 4; i++)
        rt_tensor_free(o[i]);
}

/* ---- convolution --------------------------------------------------------------- */

Test(interp, conv2d_and_pools) {
    Node *x = input("x", DT_F32, 4, DIMS(K(1), K(1), K(3), K(3)));
    Node *w = param("w", DT_F32, 4, DIMS(K(1), K(1), K(2), K(2)));
    Node *cv = op(OP_CONV2D, DT_F32, 4, DIMS(K(1), K(1), K(2), K(2)), 3, x, w, NULL);
    out(cv);
    Node *cp = op(OP_CONV2D, DT_F32, 4, DIMS(K(1), K(1), K(2), K(2)), 3, x, w, NULL);
    INTS(cp, "padding", 1, 1, 0, 0);
    INTS(cp, "stride", 2, 2);
    out(cp);
    Node *mp = op(OP_MAX_POOL2D, DT_F32, 4, DIMS(K(1), K(1), K(2), K(2)), 1, x);
    INTS(mp, "kernel", 2, 2);
    INTS(mp, "stride", 2, 2);
    INTS(mp, "padding", 0, 0, 1, 1);
    out(mp);
    Node *ap = op(OP_AVG_POOL2D, DT_F32, 4, DIMS(K(1), K(1), K(2), K(2)), 1, x);
    INTS(ap, "kernel", 2, 2);
    INTS(ap, "stride", 2, 2);
    INTS(ap, "padding", 0, 0, 1, 1);
    out(ap);
    out(op(OP_GLOBAL_AVG_POOL, DT_F32, 4, DIMS(K(1), K(1), K(1), K(1)), 1, x));
    Tensor *o[5];
    cr_assert(run((Tensor *[]){mk(DT_F32, 4, SH(1, 1, 3, 3), NULL)}, 1,
                  (Tensor *[]){mk(DT_F32, 4, SH(1, 1, 2, 2), VALS(1, 0, 0, -1))}, 1, o));
    /* x = 1..9; w picks x[i][j] - x[i+1][j+1] = -4 everywhere */
    expect_vals(o[0], 4, VALS(-4, -4, -4, -4), 0);
    /* padded top/left by 1, stride 2: windows at (-1,-1): -x[0][0]; (-1,1): -x[0][2]; (1,-1): -x[2][0]; (1,1)
     */
    expect_vals(o[1], 4, VALS(-1, -3, -7, 5 - 9), 0);
    expect_vals(o[2], 4, VALS(5, 6, 8, 9), 0);
    expect_vals(o[3], 4, VALS(3, 4.5, 7.5, 9), 0);
    expect_vals(o[4], 1, VALS(5), 0);
    for (int i = 0; i < 5; i++)
        rt_tensor_free(o[i]);
}

Test(interp, grouped_dilated_conv) {
    Node *x = input("x", DT_F32, 4, DIMS(K(1), K(2), K(3), K(3)));
    Node *w = param("w", DT_F32, 4, DIMS(K(2), K(1), K(2), K(2)));
    Node *b = param("b", DT_F32, 1, DIMS(K(2)));
    Node *cv = op(OP_CONV2D, DT_F32, 4, DIMS(K(1), K(2), K(1), K(1)), 3, x, w, b);
    INTS(cv, "dilation", 2, 2);
    set_int(cv, "groups", 2);
    out(cv);
    Tensor *o[1];
    cr_assert(run((Tensor *[]){mk(DT_F32, 4, SH(1, 2, 3, 3), NULL)}, 1,
                  (Tensor *[]){mk(DT_F32, 4, SH(2, 1, 2, 2), VALS(1, 1, 1, 1, 1, 0, 0, 0)),
                               mk(DT_F32, 1, SH(2), VALS(0.5, 0))},
                  2, o));
    /* channel 0 corners 1+3+7+9 = 20 (+0.5); channel 1 top-left = 10 */
    expect_vals(o[0], 2, VALS(20.5, 10), 0);
    rt_tensor_free(o[0]);
}

/* ---- symbolic dims and binding --------------------------------------------------- */

Test(interp, symbolic_dims_and_reshape) {
    DimId B = SYM("B", -1), S = SYM("S", 512);
    Node *x = input("x", DT_F32, 2, DIMS(B, dim_mul(G->dims, S, K(2))));
    Node *r = op(OP_RESHAPE, DT_F32, 3, DIMS(B, S, K(2)), 1, x);
    out(r);
    Node *n = op(OP_CONST, DT_I64, 0, NULL, 0);
    n->dval = dim_mul(G->dims, B, S);
    out(n);
    Tensor *o[2];
    cr_assert(run((Tensor *[]){mk(DT_F32, 2, SH(2, 6), NULL)}, 1, NULL, 0, o));
    expect_shape(o[0], 3, SH(2, 3, 2)); /* S solved from S*2 = 6 */
    expect_vals(o[1], 1, VALS(6), 0);
    for (int i = 0; i < 2; i++)
        rt_tensor_free(o[i]);
}

Test(interp, bind_errors) {
    DimId B = SYM("B", -1), S = SYM("S", 512);
    input("x", DT_F32, 3, DIMS(B, S, K(768)));
    input("mask", DT_F32, 2, DIMS(B, S));
    int64_t syms[2];

    Tensor *x = mk(DT_F32, 3, SH(2, 7, 512), NULL), *m = mk(DT_F32, 2, SH(2, 7), NULL);
    cr_expect_not(rt_bind_dims(G, (Tensor *[]){x, m}, 2, syms, D));
    cr_expect(first_msg_is("input 'x': expected f32[B,S,768], got f32[2,7,512] (dimension 2: 768 != 512)"));
    rt_tensor_free(x), rt_tensor_free(m);

    diag_clear(D);
    x = mk(DT_F32, 3, SH(2, 600, 768), NULL), m = mk(DT_F32, 2, SH(2, 600), NULL);
    cr_expect_not(rt_bind_dims(G, (Tensor *[]){x, m}, 2, syms, D));
    cr_expect(first_msg_is("input 'x': S = 600 exceeds its bound 512"));
    rt_tensor_free(x), rt_tensor_free(m);

    diag_clear(D);
    x = mk(DT_F32, 3, SH(2, 7, 768), NULL), m = mk(DT_F32, 2, SH(2, 9), NULL);
    cr_expect_not(rt_bind_dims(G, (Tensor *[]){x, m}, 2, syms, D));
    cr_expect(first_msg_is("input 'mask': inconsistent binding for S: 7 from 'x', 9 from 'mask'"));
    rt_tensor_free(m);

    diag_clear(D);
    cr_expect_not(rt_bind_dims(G, (Tensor *[]){x}, 1, syms, D));
    cr_expect(first_msg_is("missing input 'mask'"));
    cr_expect_not(rt_bind_dims(G, (Tensor *[]){x, NULL}, 2, syms, D));
    cr_expect(has_msg("missing input 'mask'"));
    rt_tensor_free(x);

    diag_clear(D);
    x = mk(DT_F16, 3, SH(2, 7, 768), NULL), m = mk(DT_F32, 3, SH(2, 7, 1), NULL);
    cr_expect_not(rt_bind_dims(G, (Tensor *[]){x, m, m}, 3, syms, D));
    cr_expect(has_msg("too many inputs: model 't' takes 2, got 3"));
    cr_expect(has_msg("input 'x': expected dtype f32, got f16"));
    cr_expect(has_msg("input 'mask': expected f32[B,S], got f32[2,7,1] (rank 2 != 3)"));
    rt_tensor_free(x), rt_tensor_free(m);

    diag_clear(D);
    x = mk(DT_F32, 3, SH(2, 7, 768), NULL), m = mk(DT_F32, 2, SH(2, 7), NULL);
    cr_expect(rt_bind_dims(G, (Tensor *[]){x, m}, 2, syms, D));
    cr_expect_eq(syms[0], 2);
    cr_expect_eq(syms[1], 7);
    cr_expect_eq(diag_count(D), 0);
    rt_tensor_free(x), rt_tensor_free(m);
}

Test(interp, bind_unsolvable_expression) {
    DimId S = SYM("S", -1), T = SYM("T", -1);
    DimTable *dt = G->dims;
    input("a", DT_F32, 1, DIMS(dim_add(dt, S, K(3))));
    input("c", DT_F32, 1, DIMS(dim_mul(dt, T, T)));
    int64_t syms[2];
    Tensor *a = mk(DT_F32, 1, SH(10), NULL), *c = mk(DT_F32, 1, SH(9), NULL);
    cr_expect_not(rt_bind_dims(G, (Tensor *[]){a, c}, 2, syms, D));
    cr_expect(first_msg_is(
        "cannot determine dimension T from the inputs: it appears only in expressions (input 'c') "
        "that do not determine it"));
    cr_expect_eq(syms[0], 7, "S solved from S+3");
    rt_tensor_free(a), rt_tensor_free(c);
}

Test(interp, bind_inexact_division) {
    DimId S = SYM("S", -1);
    DimTable *dt = G->dims;
    input("a", DT_F32, 1, DIMS(dim_add(dt, S, K(3))));
    input("b", DT_F32, 1, DIMS(dim_div(dt, S, K(2))));
    int64_t syms[1];
    Tensor *a = mk(DT_F32, 1, SH(10), NULL), *b = mk(DT_F32, 1, SH(3), NULL);
    cr_expect_not(rt_bind_dims(G, (Tensor *[]){a, b}, 2, syms, D));
    cr_expect(first_msg_is(
        "input 'b': expected f32[(S/2)], got f32[3] (dimension 0: dimension (S/2) is not an exact "
        "division: 7/2)"));
    rt_tensor_free(a), rt_tensor_free(b);
    diag_clear(D);
    a = mk(DT_F32, 1, SH(11), NULL), b = mk(DT_F32, 1, SH(3), NULL);
    cr_expect_not(rt_bind_dims(G, (Tensor *[]){a, b}, 2, syms, D));
    cr_expect(first_msg_is("input 'b': expected f32[(S/2)], got f32[3] (dimension 0: (S/2) = 4 != 3)"));
    rt_tensor_free(a), rt_tensor_free(b);
}

Test(interp, unused_symbol_in_graph_must_be_bound) {
    SYM("N", -1);
    Node *x = input("x", DT_F32, 1, DIMS(K(2)));
    Node *r = op(OP_RESHAPE, DT_F32, 2, DIMS(SYM("N", -1), K(2)), 1, x);
    out(r);
    Tensor *o[1];
    cr_assert_not(run((Tensor *[]){mk(DT_F32, 1, SH(2), NULL)}, 1, NULL, 0, o));
    cr_expect(first_msg_is("cannot determine dimension N: no input has it in its shape"));
}

Test(interp, unused_symbol_is_fine) {
    SYM("N", -1);
    Node *x = input("x", DT_F32, 1, DIMS(K(2)));
    out(op(OP_NEG, DT_F32, 1, DIMS(K(2)), 1, x));
    Tensor *o[1];
    cr_assert(run((Tensor *[]){mk(DT_F32, 1, SH(2), NULL)}, 1, NULL, 0, o));
    rt_tensor_free(o[0]);
}

Test(interp, inexact_reshape_at_run_time) {
    DimId S = SYM("S", -1);
    Node *x = input("x", DT_F32, 1, DIMS(S));
    out(op(OP_RESHAPE, DT_F32, 2, DIMS(dim_div(G->dims, S, K(2)), K(2)), 1, x));
    Tensor *o[1];
    cr_assert_not(run((Tensor *[]){mk(DT_F32, 1, SH(7), NULL)}, 1, NULL, 0, o));
    cr_expect(has_msg("reshape: cannot evaluate the result type f32[(S/2),2]"));
    cr_expect(has_msg("7/2"));
}

Test(interp, param_errors) {
    Node *w = param("fc1.weight", DT_F32, 2, DIMS(K(3), K(2)));
    Node *b = param("bias", DT_F32, 1, DIMS(K(3)));
    b->key = "fc1.bias";
    out(op(OP_NEG, DT_F32, 2, DIMS(K(3), K(2)), 1, w));
    cr_expect_not(rt_check_params(G, (Tensor *[]){NULL, NULL}, D));
    cr_expect(first_msg_is("missing weight 'fc1.weight' (key 'fc1.weight')"));
    cr_expect(has_msg("missing weight 'bias' (key 'fc1.bias')"));
    diag_clear(D);
    Tensor *tw = mk(DT_F32, 2, SH(2, 3), NULL), *tb = mk(DT_F16, 1, SH(3), NULL);
    cr_expect_not(rt_check_params(G, (Tensor *[]){tw, tb}, D));
    cr_expect(first_msg_is("weight 'fc1.weight': expected f32[3,2], got f32[2,3]"));
    cr_expect(has_msg("weight 'bias' (key 'fc1.bias'): expected f32[3], got f16[3]"));
    Tensor *o[1];
    diag_clear(D);
    cr_expect_not(rt_interp_run(G, NULL, 0, (Tensor *[]){tw, tb}, o, D));
    cr_expect_null(o[0]);
    rt_tensor_free(tw), rt_tensor_free(tb);
}

Test(interp, gather_out_of_range) {
    Node *e = param("emb", DT_F32, 2, DIMS(K(10), K(4)));
    Node *ids = input("ids", DT_I32, 1, DIMS(K(3)));
    Node *g = op(OP_GATHER, DT_F32, 2, DIMS(K(3), K(4)), 2, e, ids);
    set_int(g, "axis", 0);
    out(g);
    Tensor *o[1];
    cr_assert_not(run((Tensor *[]){mk(DT_I32, 1, SH(3), VALS(1, 12, 0))}, 1,
                      (Tensor *[]){mk(DT_F32, 2, SH(10, 4), NULL)}, 1, o));
    cr_expect(first_msg_is("gather: index 12 out of range for axis 0 of size 10 (tensor 'ids')"));
    diag_clear(D);
    cr_assert_not(run((Tensor *[]){mk(DT_I32, 1, SH(3), VALS(-11, 0, 0))}, 1,
                      (Tensor *[]){mk(DT_F32, 2, SH(10, 4), NULL)}, 1, o));
    cr_expect(first_msg_is("gather: index -11 out of range for axis 0 of size 10 (tensor 'ids')"));
    diag_clear(D);
    cr_assert(run((Tensor *[]){mk(DT_I32, 1, SH(3), VALS(-10, 9, -1))}, 1,
                  (Tensor *[]){mk(DT_F32, 2, SH(10, 4), NULL)}, 1, o));
    expect_vals(o[0], 12, VALS(1, 2, 3, 4, 37, 38, 39, 40, 37, 38, 39, 40), 0);
    rt_tensor_free(o[0]);
}

Test(interp, inconsistent_types_are_reported_not_read) {
    /* a node whose declared type disagrees with its operands: reported, no overflow */
    Node *a = input("a", DT_F32, 1, DIMS(K(2)));
    Node *b = input("b", DT_F32, 1, DIMS(K(3)));
    out(op(OP_ADD, DT_F32, 1, DIMS(K(3)), 2, a, b));
    Tensor *o[1];
    cr_assert_not(run((Tensor *[]){mk(DT_F32, 1, SH(2), NULL), mk(DT_F32, 1, SH(3), NULL)}, 2, NULL, 0, o));
    cr_expect(has_msg("add: operand 1 f32[2] does not broadcast to the result f32[3]"));
}

Test(interp, output_is_input_and_repeated) {
    Node *a = input("a", DT_F32, 1, DIMS(K(2)));
    out(a);
    out(a);
    Tensor *in = mk(DT_F32, 1, SH(2), NULL), *o[2];
    cr_assert(rt_interp_run(G, &in, 1, NULL, o, D));
    cr_expect_neq(o[0], in);
    cr_expect_neq(o[0], o[1]);
    expect_vals(o[1], 2, VALS(1, 2), 0);
    rt_tensor_free(in), rt_tensor_free(o[0]), rt_tensor_free(o[1]);
}

Test(interp, zero_sized_dims) {
    DimId B = SYM("B", -1);
    Node *x = input("x", DT_F32, 2, DIMS(B, K(3)));
    Node *w = param("w", DT_F32, 2, DIMS(K(3), K(2)));
    out(op(OP_ADD, DT_F32, 2, DIMS(B, K(3)), 2, x, cnst(DT_F32, 1)));
    out(op(OP_MATMUL, DT_F32, 2, DIMS(B, K(2)), 2, x, w));
    Node *s = op(OP_REDUCE_SUM, DT_F32, 1, DIMS(K(3)), 1, x);
    INTS(s, "axes", 0);
    set_bool(s, "keepdims", false);
    out(s);
    Node *t = op(OP_TRANSPOSE, DT_F32, 2, DIMS(K(3), B), 1, x);
    out(t);
    Node *sl = op(OP_SLICE, DT_F32, 2, DIMS(K(0), K(3)), 1, x); /* x[::-1] of an empty axis */
    set_dims(sl, "starts", 1, DIMS(K(-1)));
    set_dims(sl, "ends", 1, DIMS(K(INT64_MIN)));
    INTS(sl, "axes", 0);
    INTS(sl, "steps", -1);
    out(sl);
    Tensor *o[5];
    cr_assert(run((Tensor *[]){mk(DT_F32, 2, SH(0, 3), NULL)}, 1, (Tensor *[]){mk(DT_F32, 2, SH(3, 2), NULL)},
                  1, o));
    expect_shape(o[0], 2, SH(0, 3));
    expect_shape(o[1], 2, SH(0, 2));
    expect_vals(o[2], 3, VALS(0, 0, 0), 0);
    expect_shape(o[3], 2, SH(3, 0));
    expect_shape(o[4], 2, SH(0, 3));
    for (int i = 0; i < 5; i++)
        rt_tensor_free(o[i]);
}

Test(interp, reduce_empty_axes_list_is_identity_and_max_of_nothing_fails) {
    Node *x = input("x", DT_I32, 2, DIMS(K(2), K(2)));
    Node *s = op(OP_REDUCE_SUM, DT_I32, 2, DIMS(K(2), K(2)), 1, x);
    set_ints(s, "axes", 0, NULL);
    out(s);
    Tensor *o[1];
    cr_assert(run((Tensor *[]){mk(DT_I32, 2, SH(2, 2), NULL)}, 1, NULL, 0, o));
    expect_vals(o[0], 4, VALS(1, 2, 3, 4), 0);
    rt_tensor_free(o[0]);

    diag_clear(D);
    G->nnodes = 0, G->noutputs = 0;
    Node *e = input("e", DT_F32, 1, DIMS(SYM("N", -1)));
    Node *m = op(OP_REDUCE_MAX, DT_F32, 0, NULL, 1, e);
    set_bool(m, "keepdims", false);
    out(m);
    cr_assert_not(run((Tensor *[]){mk(DT_F32, 1, SH(0), NULL)}, 1, NULL, 0, o));
    cr_expect(first_msg_is("reduce_max: reducing over zero elements"));
}

Test(interp, int_reductions_and_layout_are_exact) {
    Node *x = input("x", DT_I64, 2, DIMS(K(2), K(2)));
    Node *s = op(OP_REDUCE_SUM, DT_I64, 2, DIMS(K(1), K(2)), 1, x);
    INTS(s, "axes", 0);
    set_bool(s, "keepdims", true);
    out(s);
    Node *m = op(OP_REDUCE_MAX, DT_I64, 1, DIMS(K(2)), 1, x);
    INTS(m, "axes", -1);
    set_bool(m, "keepdims", false);
    out(m);
    Node *t = op(OP_TRANSPOSE, DT_I64, 2, DIMS(K(2), K(2)), 1, x);
    out(t);
    Tensor *in = rt_tensor_new(DT_I64, 2, SH(2, 2));
    int64_t v[4] = {INT64_MAX - 1, INT64_MIN + 5, 3, -(INT64_MAX - 10)};
    memcpy(in->data, v, sizeof v);
    Tensor *o[3];
    cr_assert(run((Tensor *[]){in}, 1, NULL, 0, o));
    int64_t got[4];
    memcpy(got, o[0]->data, 16);
    cr_expect_eq(got[0], INT64_MIN + 1); /* (2^63 - 2) + 3 wraps */
    cr_expect_eq(got[1], 16);            /* (-2^63 + 5) + (-2^63 + 11) wraps */
    memcpy(got, o[1]->data, 16);
    cr_expect_eq(got[0], INT64_MAX - 1);
    cr_expect_eq(got[1], 3);
    memcpy(got, o[2]->data, 32);
    cr_expect_eq(got[1], 3);
    cr_expect_eq(got[2], INT64_MIN + 5);
    for (int i = 0; i < 3; i++)
        rt_tensor_free(o[i]);
}

Test(interp, symbolic_param_checked_with_bound_dims) {
    DimId S = SYM("S", -1);
    Node *x = input("x", DT_F32, 2, DIMS(S, K(2)));
    Node *p = param("pos", DT_F32, 2, DIMS(S, K(2)));
    out(op(OP_ADD, DT_F32, 2, DIMS(S, K(2)), 2, x, p));
    Tensor *o[1];
    cr_assert(run((Tensor *[]){mk(DT_F32, 2, SH(3, 2), NULL)}, 1, (Tensor *[]){mk(DT_F32, 2, SH(3, 2), NULL)},
                  1, o));
    expect_vals(o[0], 6, VALS(2, 4, 6, 8, 10, 12), 0);
    rt_tensor_free(o[0]);
    cr_assert_not(run((Tensor *[]){mk(DT_F32, 2, SH(3, 2), NULL)}, 1,
                      (Tensor *[]){mk(DT_F32, 2, SH(4, 2), NULL)}, 1, o));
    cr_expect(first_msg_is("weight 'pos': expected f32[S,2], got f32[4,2]"));
    diag_clear(D);
    Tensor *t = mk(DT_F32, 2, SH(3, 2), NULL);
    cr_expect_not(rt_check_params(G, &t, D), "symbolic without bound dims");
    cr_expect(has_msg("weight 'pos': its shape f32[S,2] is symbolic"));
    rt_tensor_free(t);
}
