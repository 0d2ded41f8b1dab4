/* The rewriting passes: simplify, canonicalize, fold-batchnorm, constfold, cse.
 *
 * Each test compiles a small DSG model, runs ONE pass (its entry point called
 * directly) and checks three things:
 *   - the rewrite happened where it should and not where it must not (op
 *     counts and graph structure; the negative cases are the reason each
 *     condition exists: broadcasting that widens x*1, lossy cast chains, a
 *     conv with two users, non-constant weights, dim-valued constants, ...);
 *   - the graph is valid (ir_verify), the printed dump compiles again to a
 *     graph that prints the same and has the same output types, and running
 *     the pass a second time changes nothing (the pass reached its fixed
 *     point in one run);
 *   - the reference interpreter gives the same outputs before and after, on
 *     seeded random inputs and params, never zero (batchnorm variances are
 *     positive): exactly for the exact rewrites and for ints, by relative L2
 *     error for the rewrites that reassociate floats.
 * Params may disappear from the graph (the passes remove dead nodes), so the
 * random values are kept by name and the argument arrays are rebuilt for the
 * graph being run.  A last test runs the whole -O1 pipeline on the examples. */
#include <criterion/criterion.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/interp.h"
#include "../support.h"

static Arena *A;
static Diag *D;

enum { MAXVALS = 64 };
static struct {
    const char *name; /* input name or param key */
    Tensor *t;
} vals[MAXVALS];
static int nvals;
static uint64_t rng;

static void setup(void) {
    A = arena_create();
    D = diag_create();
    nvals = 0;
    rng = 12345;
}
static void teardown(void) {
    for (int i = 0; i < nvals; i++)
        rt_tensor_free(vals[i].t);
    diag_destroy(D);
    arena_destroy(A);
}
TestSuite(passes, .init = setup, .fini = teardown);

/* ---- helpers --------------------------------------------------------------- */

static Graph *compile(const char *src) {
    Graph *g = fe_compile_source(A, D, "t.dsg", src, strlen(src));
    if (!g) cr_assert_fail("model does not compile:\n%s\n%s", src, test_diag_text(D, true));
    return g;
}

static uint64_t next_u64(void) { /* splitmix64 */
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double uniform(void) { return (double)(next_u64() >> 11) * 0x1.0p-53; }

/* Random values, never zero: floats in +-[0.25, 1.25) (positive for names
 * containing "var"), ints in +-[1, 5], bools 0/1. */
static Tensor *random_tensor(const Graph *g, const Node *n, const int64_t *syms) {
    int64_t shape[IR_MAX_RANK];
    for (int i = 0; i < n->type.rank; i++) {
        char err[128];
        cr_assert(dim_eval(g->dims, n->type.dim[i], syms, &shape[i], err, sizeof err), "%s", err);
    }
    Tensor *t = rt_tensor_new(n->type.dtype, n->type.rank, shape);
    cr_assert(t);
    bool positive = strstr(n->name, "var") != NULL;
    for (int64_t i = 0; i < rt_numel(t->rank, t->shape); i++) {
        bool neg = !positive && (next_u64() & 1);
        double v;
        if (dtype_is_float(t->dtype))
            v = 0.25 + uniform();
        else if (t->dtype == DT_BOOL)
            v = (double)(next_u64() & 1), neg = false;
        else
            v = (double)(1 + next_u64() % 5);
        rt_set(t, i, neg ? -v : v);
    }
    return t;
}

static const char *value_key(const Node *n) { return n->op == OP_PARAM ? n->key : n->name; }

static Tensor *lookup(const char *key) {
    for (int i = 0; i < nvals; i++)
        if (strcmp(vals[i].name, key) == 0) return vals[i].t;
    return NULL;
}

/* Makes a random value for every input and param of g (all dims = sym). */
static void make_values(const Graph *g, int64_t sym) {
    int64_t syms[16];
    for (int i = 0; i < 16; i++)
        syms[i] = sym;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if ((n->op != OP_INPUT && n->op != OP_PARAM) || lookup(value_key(n))) continue;
        cr_assert(nvals < MAXVALS);
        vals[nvals].name = value_key(n);
        vals[nvals++].t = random_tensor(g, n, syms);
    }
}

/* Runs g on the values made by make_values; outs gets g->noutputs tensors. */
static void run(const Graph *g, Tensor **outs) {
    Tensor *ins[MAXVALS], *params[MAXVALS];
    int ni = 0, np = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op == OP_INPUT) ins[ni++] = lookup(value_key(n));
        if (n->op == OP_PARAM) params[np++] = lookup(value_key(n));
    }
    bool ok = rt_interp_run(g, ins, ni, params, outs, D);
    cr_assert(ok, "interpreter failed:\n%s\n%s", test_print_dsg(g), test_diag_text(D, true));
}

static double rel_l2(const Tensor *a, const Tensor *b) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < rt_numel(a->rank, a->shape); i++) {
        double x = rt_get(a, i), y = rt_get(b, i);
        num += (x - y) * (x - y);
        den += y * y;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* before[i] vs after[i]: exact when tol == 0 (and always for ints), else by
 * relative L2 error. */
static void compare(const Graph *g, Tensor **before, Tensor **after, double tol) {
    for (int i = 0; i < g->noutputs; i++) {
        const Tensor *a = after[i], *b = before[i];
        const char *name = g->outputs[i].name;
        cr_assert_eq(a->dtype, b->dtype, "output %s: dtype changed", name);
        cr_assert_eq(a->rank, b->rank, "output %s: rank changed", name);
        for (int k = 0; k < a->rank; k++)
            cr_assert_eq(a->shape[k], b->shape[k], "output %s: shape changed", name);
        if (tol == 0 || !dtype_is_float(a->dtype)) {
            cr_assert(a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0,
                      "output %s differs (expected bit-identical)\n%s", name, test_print_dsg(g));
        } else {
            double e = rel_l2(a, b);
            cr_assert(e <= tol, "output %s: relative L2 error %g > %g\n%s", name, e, tol, test_print_dsg(g));
        }
    }
}

static void free_outputs(Tensor **outs, int n) {
    for (int i = 0; i < n; i++)
        rt_tensor_free(outs[i]);
}

/* Compiles src, runs `pass` once, and checks validity, that the dump
 * compiles, that a second run changes nothing, and equivalence (tol as for
 * compare).  Returns the rewritten graph. */
static Graph *check_pass(const char *src, PassFn pass, double tol) {
    Graph *g = compile(src);
    make_values(g, 3);
    enum { MAXOUT = 16 };
    Tensor *before[MAXOUT] = {0}, *after[MAXOUT] = {0};
    cr_assert(g->noutputs <= MAXOUT);
    run(g, before);
    cr_assert(pass(g, D), "pass failed:\n%s", test_diag_text(D, true));
    cr_assert(ir_verify(g, D), "graph invalid after the pass:\n%s\n%s", test_print_dsg(g), test_diag_text(D, true));
    char *p1 = test_print_dsg(g);
    Graph *again = fe_compile_source(A, D, "dump.dsg", p1, strlen(p1));
    cr_assert(again, "the dump does not compile:\n%s\n%s", p1, test_diag_text(D, true));
    char *p3 = test_print_dsg(again);
    cr_assert_str_eq(p3, p1, "the dump does not print back the same");
    free(p3);
    for (int i = 0; i < g->noutputs; i++)
        cr_assert_str_eq(ir_type_str(again, &again->outputs[i].node->type),
                         ir_type_str(g, &g->outputs[i].node->type), "output %s: the dump gives another type",
                         g->outputs[i].name);
    cr_assert(pass(g, D) && ir_verify(g, D), "second run failed:\n%s", test_diag_text(D, true));
    char *p2 = test_print_dsg(g);
    cr_assert_str_eq(p2, p1, "a second run changed the graph");
    run(g, after);
    compare(g, before, after, tol);
    free_outputs(before, g->noutputs);
    free_outputs(after, g->noutputs);
    free(p1);
    free(p2);
    return g;
}

static int count(const Graph *g, OpKind op) {
    int c = 0;
    for (int i = 0; i < g->nnodes; i++)
        c += g->nodes[i]->op == op;
    return c;
}

static Node *output(const Graph *g, const char *name) {
    for (int i = 0; i < g->noutputs; i++)
        if (strcmp(g->outputs[i].name, name) == 0) return g->outputs[i].node;
    cr_assert_fail("no output %s", name);
    return NULL;
}

static bool is_named(const Node *n, OpKind op, const char *name) {
    return n->op == op && n->name && strcmp(n->name, name) == 0;
}

static bool printed_has(const Graph *g, const char *text) {
    char *p = test_print_dsg(g);
    bool r = strstr(p, text) != NULL;
    free(p);
    return r;
}

/* ---- simplify -------------------------------------------------------------- */

Test(passes, simplify_float_identities) {
    Graph *g = check_pass("model m {\n"
                          "  input x : f32[2, 3]\n"
                          "  output y = ((1 * x * 1 + 0) - 0) / 1\n"
                          "  output z = 0 + x\n"
                          "}\n",
                          pass_simplify, 0);
    cr_assert_eq(count(g, OP_MUL) + count(g, OP_ADD) + count(g, OP_SUB) + count(g, OP_DIV), 0, "%s",
                 test_print_dsg(g));
    cr_assert(is_named(output(g, "y"), OP_INPUT, "x"));
    cr_assert(is_named(output(g, "z"), OP_INPUT, "x"));
    cr_assert(printed_has(g, "output y = x\n"));
}

Test(passes, simplify_int_identities) {
    Graph *g = check_pass("model m {\n"
                          "  input i : i32[4]\n"
                          "  input b : i8[4]\n"
                          "  output y = (i * 1 + 0) / 1 - 0\n"
                          "  output z = 1 * (0 + b)\n"
                          "}\n",
                          pass_simplify, 0);
    cr_assert_eq(ir_count_ops(g), 0, "%s", test_print_dsg(g));
    cr_assert(is_named(output(g, "y"), OP_INPUT, "i"));
    cr_assert(is_named(output(g, "z"), OP_INPUT, "b"));
}

/* A tensor of ones can widen the result: then x*1 is not x. */
Test(passes, simplify_broadcast_one_kept_when_it_widens) {
    Graph *g = check_pass("model m {\n"
                          "  input x : f32[3]\n"
                          "  input x2 : f32[2, 3]\n"
                          "  let one = reshape(1.0, shape=[1, 1])\n"
                          "  let zero = reshape(0.0, shape=[1, 1, 1])\n"
                          "  output y = x * one\n"   /* [1,3]: kept */
                          "  output z = x2 * one\n"  /* [2,3]: x2 */
                          "  output w = x2 + zero\n" /* [1,2,3]: kept */
                          "  output v = one * x2\n"  /* [2,3]: x2 */
                          "}\n",
                          pass_simplify, 0);
    cr_assert_eq(output(g, "y")->op, OP_MUL);
    cr_assert_eq(output(g, "w")->op, OP_ADD);
    cr_assert(is_named(output(g, "z"), OP_INPUT, "x2"));
    cr_assert(is_named(output(g, "v"), OP_INPUT, "x2"));
}

/* x*0 is not 0 (NaN, inf); 0-x, 1/x, x+1, x*2 are not identities. */
Test(passes, simplify_non_identities_kept) {
    Graph *g = check_pass("model m {\n"
                          "  input x : f32[4]\n"
                          "  output a = x * 0\n"
                          "  output b = 0 - x\n"
                          "  output c = 1 / x\n"
                          "  output d = x + 1\n"
                          "  output e = x * 2\n"
                          "}\n",
                          pass_simplify, 0);
    cr_assert_eq(ir_count_ops(g), 5, "%s", test_print_dsg(g));
}

Test(passes, simplify_double_negation) {
    Graph *g = check_pass("model m {\n"
                          "  input x : f32[4]\n"
                          "  input i : i32[4]\n"
                          "  output y = -(-x)\n"
                          "  output z = neg(neg(neg(i)))\n"
                          "}\n",
                          pass_simplify, 0);
    cr_assert(is_named(output(g, "y"), OP_INPUT, "x"));
    cr_assert_eq(output(g, "z")->op, OP_NEG);
    cr_assert(is_named(output(g, "z")->in[0], OP_INPUT, "i"));
    cr_assert_eq(count(g, OP_NEG), 1);
}

Test(passes, simplify_transpose_chains) {
    Graph *g = check_pass(
        "model m {\n"
        "  input x : f32[2, 3, 4]\n"
        "  output a = transpose(transpose(x, perm=[1, 2, 0]), perm=[2, 0, 1])\n"
        "  output b = transpose(transpose(x, perm=[1, 0, 2]), perm=[0, 2, 1])\n"
        "  output c = transpose(transpose(x, perm=[-1, 0, 1]), perm=[1, 2, 0])\n"
        "  output d = transpose(transpose(transpose(x, perm=[1, 0, 2]), perm=[0, 2, 1]), perm=[2, 1, 0])\n"
        "  output e = transpose(x, perm=[0, 1, 2])\n"
        "}\n",
        pass_simplify, 0);
    cr_assert(is_named(output(g, "a"), OP_INPUT, "x"));
    cr_assert(is_named(output(g, "c"), OP_INPUT, "x"));
    cr_assert(is_named(output(g, "e"), OP_INPUT, "x"));
    Node *b = output(g, "b"), *d = output(g, "d");
    cr_assert(b->op == OP_TRANSPOSE && is_named(b->in[0], OP_INPUT, "x"));
    cr_assert(d->op == OP_TRANSPOSE && is_named(d->in[0], OP_INPUT, "x"));
    cr_assert_eq(count(g, OP_TRANSPOSE), 2, "%s", test_print_dsg(g));
    cr_assert(printed_has(g, "transpose(x, perm=[1, 2, 0])"), "%s", test_print_dsg(g));
    cr_assert(printed_has(g, "transpose(x, perm=[0, 2, 1])"), "%s", test_print_dsg(g)); /* d = x[2,1,0 of 1,2,0] */
}

Test(passes, simplify_view_chains) {
    Graph *g = check_pass("model m {\n"
                          "  dim B\n"
                          "  input x : f32[2, 3, 4]\n"
                          "  input u : f32[2, 1, 3]\n"
                          "  input s : f32[B, 4]\n"
                          "  output r1 = reshape(reshape(x, shape=[6, 4]), shape=[2, 12])\n"
                          "  output r2 = reshape(reshape(x, shape=[6, 4]), shape=[2, 3, 4])\n"
                          "  output r3 = squeeze(unsqueeze(x, axes=[0]), axes=[0])\n"
                          "  output r4 = unsqueeze(squeeze(u, axes=[1]), axes=[1])\n"
                          "  output r5 = unsqueeze(reshape(x, shape=[6, 4]), axes=[0])\n"
                          "  output r6 = reshape(x, shape=[2, 3, 4])\n"
                          "  output r7 = reshape(reshape(s, shape=[-1]), shape=[B, 4])\n"
                          "  output r8 = reshape(unsqueeze(s, axes=[0]), shape=[2, -1])\n"
                          "}\n",
                          pass_simplify, 0);
    cr_assert(is_named(output(g, "r2"), OP_INPUT, "x"));
    cr_assert(is_named(output(g, "r3"), OP_INPUT, "x"));
    cr_assert(is_named(output(g, "r4"), OP_INPUT, "u"));
    cr_assert(is_named(output(g, "r6"), OP_INPUT, "x"));
    cr_assert(is_named(output(g, "r7"), OP_INPUT, "s"));
    const char *one_reshape[] = {"r1", "r5", "r8"};
    for (int i = 0; i < 3; i++) {
        Node *n = output(g, one_reshape[i]);
        cr_assert(n->op == OP_RESHAPE && n->in[0]->op == OP_INPUT, "%s:\n%s", one_reshape[i], test_print_dsg(g));
    }
    cr_assert(printed_has(g, "reshape(x, shape=[2, 12])"));
    cr_assert(printed_has(g, "reshape(x, shape=[1, 6, 4])"), "%s", test_print_dsg(g));
    cr_assert_eq(ir_count_ops(g), 3, "%s", test_print_dsg(g));
}

/* A squeeze/unsqueeze chain over a dim with min/max becomes a reshape that
 * still prints as DSG: that dim is written -1. */
Test(passes, simplify_view_chain_with_opaque_dim) {
    Graph *g = check_pass("model m {\n"
                          "  dim S\n"
                          "  input s : f32[S, 4]\n"
                          "  let t = slice(s, starts=[0], ends=[S - 1])\n"
                          "  output y = unsqueeze(unsqueeze(t, axes=[0]), axes=[0])\n"
                          "  output z = squeeze(unsqueeze(t, axes=[0]), axes=[0])\n"
                          "}\n",
                          pass_simplify, 0);
    Node *y = output(g, "y");
    cr_assert(y->op == OP_RESHAPE && y->in[0]->op == OP_SLICE, "%s", test_print_dsg(g));
    cr_assert(printed_has(g, "shape=[1, 1, -1, 4]"), "%s", test_print_dsg(g));
    cr_assert_eq(output(g, "z")->op, OP_SLICE);
}

Test(passes, simplify_cast_chains) {
    Graph *g = check_pass("model m {\n"
                          "  input h : f16[4]\n"
                          "  input b : i8[4]\n"
                          "  input x : f32[4]\n"
                          "  input i : i32[4]\n"
                          "  input k : bool[4]\n"
                          "  output a = cast(cast(h, f32), f16)\n"            /* exact: h */
                          "  output c = cast(cast(b, i32), i64)\n"            /* exact: cast(b, i64) */
                          "  output d = cast(cast(x, f16), f32)\n"            /* rounds: kept */
                          "  output e = cast(x, f32)\n"                       /* x */
                          "  output f = cast(cast(i, f32), i32)\n"            /* i32 -> f32 rounds: kept */
                          "  output g = cast(cast(b, f16), f32)\n"            /* exact: cast(b, f32) */
                          "  output l = cast(cast(cast(k, i8), bf16), i32)\n" /* exact: cast(k, i32) */
                          "  output m = cast(cast(h, bf16), f32)\n"           /* f16 -> bf16 rounds: kept */
                          "}\n",
                          pass_simplify, 0);
    cr_assert(is_named(output(g, "a"), OP_INPUT, "h"));
    cr_assert(is_named(output(g, "e"), OP_INPUT, "x"));
    const char *single[] = {"c", "g", "l"};
    for (int i = 0; i < 3; i++) {
        Node *n = output(g, single[i]);
        cr_assert(n->op == OP_CAST && n->in[0]->op == OP_INPUT, "%s:\n%s", single[i], test_print_dsg(g));
    }
    const char *kept[] = {"d", "f", "m"};
    for (int i = 0; i < 3; i++) {
        Node *n = output(g, kept[i]);
        cr_assert(n->op == OP_CAST && n->in[0]->op == OP_CAST, "%s:\n%s", kept[i], test_print_dsg(g));
    }
    cr_assert_eq(count(g, OP_CAST), 9, "%s", test_print_dsg(g));
}

/* ---- canonicalize ------------------------------------------------------------ */

Test(passes, canonicalize_matmul_transpose_to_linear) {
    Graph *g = check_pass("model m {\n"
                          "  input x : f32[2, 3, 8]\n"
                          "  input v : f32[8]\n"
                          "  param w : f32[5, 8]\n"
                          "  output y = matmul(x, transpose(w, perm=[1, 0]))\n"
                          "  output z = matmul(v, transpose(w))\n"
                          "}\n",
                          pass_canonicalize, 1e-6);
    cr_assert_eq(count(g, OP_MATMUL), 0, "%s", test_print_dsg(g));
    cr_assert_eq(count(g, OP_TRANSPOSE), 0, "%s", test_print_dsg(g));
    cr_assert_eq(count(g, OP_LINEAR), 2);
    cr_assert(printed_has(g, "let y = linear(x, w)\n"), "%s", test_print_dsg(g));
}

Test(passes, canonicalize_bias_folded) {
    Graph *g = check_pass("model m {\n"
                          "  input x : f32[2, 3, 8]\n"
                          "  param w : f32[5, 8]\n"
                          "  param b : f32[5]\n"
                          "  output y = linear(x, w) + b\n"
                          "  output z = b + linear(x, w)\n"
                          "}\n",
                          pass_canonicalize, 1e-6);
    cr_assert_eq(count(g, OP_ADD), 0, "%s", test_print_dsg(g));
    cr_assert_eq(count(g, OP_LINEAR), 2);
    cr_assert(is_named(output(g, "y")->in[2], OP_PARAM, "b"));
    cr_assert(printed_has(g, "let y = linear(x, w, b)\n"), "%s", test_print_dsg(g));
}

/* matmul against a 2-D param [in, out]: linear on its (load-time) transpose,
 * then the bias folds as well. */
Test(passes, canonicalize_matmul_param_to_linear) {
    Graph *g = check_pass("model m {\n"
                          "  input x : f32[4, 8]\n"
                          "  param w : f32[8, 5]\n"
                          "  param b : f32[5]\n"
                          "  output y = matmul(x, w) + b\n"
                          "}\n",
                          pass_canonicalize, 1e-6);
    Node *y = output(g, "y");
    cr_assert_eq(y->op, OP_LINEAR, "%s", test_print_dsg(g));
    cr_assert(y->in[1]->op == OP_TRANSPOSE && is_named(y->in[1]->in[0], OP_PARAM, "w"));
    cr_assert(is_named(y->in[2], OP_PARAM, "b"));
    cr_assert_eq(count(g, OP_MATMUL) + count(g, OP_ADD), 0, "%s", test_print_dsg(g));
}

Test(passes, canonicalize_negative_cases) {
    Graph *g = check_pass("model m {\n"
                          "  input x : f32[2, 3, 8]\n"
                          "  input c : f32[2, 3, 5]\n"
                          "  input act : f32[8, 5]\n"
                          "  input q : f32[4, 3, 8]\n"
                          "  param w : f32[5, 8]\n"
                          "  param b : f32[5]\n"
                          "  param one : f32[1]\n"
                          "  param v : f32[4, 5, 8]\n"
                          "  param ws : f32[8, 5] @sparse(block=[4, 4], density=0.5)\n"
                          "  output full = linear(x, w) + c\n"     /* not a 1-D bias */
                          "  output narrow = linear(x, w) + one\n" /* [1], not [out] */
                          "  let l = linear(x, w)\n"
                          "  output twice = l + b\n" /* l is also an output */
                          "  output l2 = l\n"
                          "  output acts = matmul(x, act)\n" /* activation x activation */
                          "  output batched = matmul(q, transpose(v, perm=[0, 2, 1]))\n" /* not 2-D */
                          "  output hinted = matmul(x, ws)\n" /* the hint stays on the GEMM's operand */
                          "}\n",
                          pass_canonicalize, 1e-6);
    cr_assert_eq(output(g, "full")->op, OP_ADD);
    cr_assert_eq(output(g, "narrow")->op, OP_ADD);
    cr_assert_eq(output(g, "twice")->op, OP_ADD);
    cr_assert_eq(output(g, "acts")->op, OP_MATMUL);
    cr_assert_eq(output(g, "batched")->op, OP_MATMUL);
    cr_assert_eq(output(g, "hinted")->op, OP_MATMUL);
}

/* ---- fold-batchnorm ------------------------------------------------------------ */

static const char *BN_VECTORS = "  param g : f32[%d]\n  param beta : f32[%d]\n"
                                "  param mean : f32[%d]\n  param var : f32[%d]\n";

static char *with_vectors(const char *head, int c, const char *tail) {
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    fputs(head, f);
    fprintf(f, BN_VECTORS, c, c, c, c);
    fputs(tail, f);
    fclose(f);
    char *r = arena_strdup(A, s);
    free(s);
    return r;
}

Test(passes, fold_batchnorm_conv_with_bias) {
    Graph *g = check_pass(with_vectors("model m {\n"
                                       "  input x : f32[2, 3, 6, 6]\n"
                                       "  param w : f32[4, 3, 3, 3]\n"
                                       "  param b : f32[4]\n",
                                       4,
                                       "  output y = relu(batchnorm(conv2d(x, w, b, padding=[1, 1, 1, 1]), "
                                       "g, beta, mean, var, eps=1e-3))\n"
                                       "}\n"),
                          pass_fold_batchnorm, 1e-6);
    cr_assert_eq(count(g, OP_BATCHNORM), 0, "%s", test_print_dsg(g));
    cr_assert_eq(count(g, OP_CONV2D), 1);
    Node *conv = output(g, "y")->in[0];
    cr_assert_eq(conv->op, OP_CONV2D);
    cr_assert_eq(conv->in[1]->op, OP_MUL, "w' is computed from the params");
    cr_assert_eq(conv->in[2]->op, OP_ADD);
    cr_assert(printed_has(g, "padding=[1, 1, 1, 1]"), "the conv's attributes are kept");
    cr_assert_eq(count(g, OP_PARAM), 6, "no weights are needed at compile time: the params stay");
}

Test(passes, fold_batchnorm_conv_without_bias_grouped) {
    Graph *g = check_pass(with_vectors("model m {\n"
                                       "  input x : f32[2, 4, 7, 7]\n"
                                       "  param w : f32[6, 2, 3, 3]\n",
                                       6,
                                       "  let c = conv2d(x, w, stride=[2, 2], groups=2)\n"
                                       "  output y = batchnorm(c, g, beta, mean, var)\n"
                                       "}\n"),
                          pass_fold_batchnorm, 1e-6);
    Node *y = output(g, "y");
    cr_assert_eq(y->op, OP_CONV2D, "%s", test_print_dsg(g));
    cr_assert(y->in[2], "the folded conv has a bias");
    cr_assert_eq(ir_attr_int(y, "groups", 0), 2);
    cr_assert_eq(count(g, OP_BATCHNORM), 0);
}

Test(passes, fold_batchnorm_linear) {
    Graph *g = check_pass(with_vectors("model m {\n"
                                       "  input x : f32[3, 8]\n"
                                       "  param w : f32[5, 8]\n"
                                       "  param b : f32[5]\n",
                                       5,
                                       "  output y = batchnorm(linear(x, w, b), g, beta, mean, var)\n"
                                       "  output z = batchnorm(linear(x, w), g, beta, mean, var, eps=0.1)\n"
                                       "}\n"),
                          pass_fold_batchnorm, 1e-6);
    cr_assert_eq(count(g, OP_BATCHNORM), 0, "%s", test_print_dsg(g));
    cr_assert_eq(output(g, "y")->op, OP_LINEAR);
    cr_assert_eq(output(g, "z")->op, OP_LINEAR);
}

/* The load-time weight subgraph is computed in f32 for half-precision models. */
Test(passes, fold_batchnorm_f16) {
    Graph *g = check_pass("model m {\n"
                          "  input x : f16[2, 3, 5, 5]\n"
                          "  param w : f16[4, 3, 3, 3]\n"
                          "  param b : f16[4]\n"
                          "  param g : f16[4]\n  param beta : f16[4]\n"
                          "  param mean : f16[4]\n  param var : f16[4]\n"
                          "  output y = batchnorm(conv2d(x, w, b), g, beta, mean, var)\n"
                          "}\n",
                          pass_fold_batchnorm, 4e-3);
    Node *y = output(g, "y");
    cr_assert_eq(y->op, OP_CONV2D, "%s", test_print_dsg(g));
    cr_assert(y->in[1]->op == OP_CAST && y->in[1]->in[0]->type.dtype == DT_F32, "%s", test_print_dsg(g));
}

Test(passes, fold_batchnorm_negative_cases) {
    Graph *g = check_pass(
        with_vectors(
            "model m {\n"
            "  input x : f32[2, 3, 6, 6]\n"
            "  input x3 : f32[2, 5, 8]\n"
            "  input live_mean : f32[4]\n"
            "  param w : f32[4, 3, 3, 3]\n"
            "  param lw : f32[4, 8]\n",
            4,
            "  param g5 : f32[5]\n  param beta5 : f32[5]\n"
            "  param mean5 : f32[5]\n  param var5 : f32[5]\n"
            "  let c = conv2d(x, w)\n"
            "  output twice = batchnorm(c, g, beta, mean, var)\n" /* c has two users */
            "  output raw = c\n"
            "  output dynamic = batchnorm(conv2d(x, w, padding=[1, 1, 1, 1]), g, beta, live_mean, var)\n"
            "  output seq = batchnorm(linear(x3, lw), g5, beta5, mean5, var5)\n" /* axis 1 is not out */
            "}\n"),
        pass_fold_batchnorm, 0);
    cr_assert_eq(count(g, OP_BATCHNORM), 3, "%s", test_print_dsg(g));
}

/* matmul against an [in, out] param becomes a linear in canonicalize, and then
 * the batchnorm after it folds into that linear. */
static bool canonicalize_then_fold(Graph *g, Diag *d) {
    return pass_canonicalize(g, d) && pass_fold_batchnorm(g, d);
}

Test(passes, fold_batchnorm_after_canonical_gemm) {
    Graph *g = check_pass(with_vectors("model m {\n"
                                       "  input x : f32[3, 8]\n"
                                       "  param wt : f32[8, 5]\n",
                                       5,
                                       "  output y = batchnorm(matmul(x, wt), g, beta, mean, var)\n"
                                       "}\n"),
                          canonicalize_then_fold, 1e-6);
    Node *y = output(g, "y");
    cr_assert_eq(y->op, OP_LINEAR, "%s", test_print_dsg(g));
    cr_assert_eq(count(g, OP_BATCHNORM) + count(g, OP_MATMUL), 0, "%s", test_print_dsg(g));
}

/* ---- constfold ------------------------------------------------------------------ */

static const Node *const_operand(const Node *n) {
    for (int k = 0; k < n->nin; k++)
        if (n->in[k] && n->in[k]->op == OP_CONST) return n->in[k];
    cr_assert_fail("no constant operand");
    return NULL;
}

Test(passes, constfold_float) {
    Graph *g =
        check_pass("model m {\n"
                   "  input x : f32[4]\n"
                   "  output y = x * sqrt(2.0) + exp(1.0) - tanh(0.5) * gelu(0.3, approximate=\"tanh\")\n"
                   "  output e = exp(0.5)\n"
                   "}\n",
                   pass_constfold, 0);
    cr_assert_eq(count(g, OP_SQRT) + count(g, OP_EXP) + count(g, OP_TANH) + count(g, OP_GELU), 0, "%s",
                 test_print_dsg(g));
    cr_assert_eq(ir_count_ops(g), 3, "%s", test_print_dsg(g)); /* mul, add, sub */
    cr_assert_eq(output(g, "e")->op, OP_CONST);
    cr_assert_eq(output(g, "e")->fval, (double)(float)exp(0.5));
}

Test(passes, constfold_f16_rounding) {
    Graph *g = check_pass("model m {\n"
                          "  input h : f16[4]\n"
                          "  input k : bf16[4]\n"
                          "  output y = h * cast(0.1, f16)\n"
                          "  output z = h + cast(1.0, f16) / cast(3.0, f16)\n"
                          "  output w = k * cast(0.1, bf16)\n"
                          "}\n",
                          pass_constfold, 0);
    cr_assert_eq(count(g, OP_CAST) + count(g, OP_DIV), 0, "%s", test_print_dsg(g));
    cr_assert_eq(const_operand(output(g, "y"))->fval, 0.0999755859375);
    cr_assert_eq(const_operand(output(g, "z"))->fval, (double)ir_f16_to_f32(ir_f32_to_f16(1.0f / 3.0f)));
    cr_assert_eq(const_operand(output(g, "w"))->fval, (double)ir_bf16_to_f32(ir_f32_to_bf16(0.1f)));
}

Test(passes, constfold_ints) {
    Graph *g = check_pass("model m {\n"
                          "  input i : i32[4]\n"
                          "  input b : i8[4]\n"
                          "  input l : i64[4]\n"
                          "  output y = i + cast(7, i32) / cast(-2, i32)\n"    /* C truncation: -3 */
                          "  output z = b + cast(100, i8) * cast(3, i8)\n"     /* wraps: 44 */
                          "  output w = l * pow(cast(3, i64), cast(4, i64))\n" /* 81 */
                          "  output v = b + cast(300.7, i8)\n"                 /* saturates: 127 */
                          "  output u = i * cast(less(2.5, 3.0), i32)\n"       /* 1 */
                          "}\n",
                          pass_constfold, 0);
    cr_assert_eq(const_operand(output(g, "y"))->fval, -3);
    cr_assert_eq(const_operand(output(g, "z"))->fval, 44);
    cr_assert_eq(const_operand(output(g, "w"))->fval, 81);
    cr_assert_eq(const_operand(output(g, "v"))->fval, 127);
    cr_assert_eq(const_operand(output(g, "u"))->fval, 1);
    cr_assert_eq(ir_count_ops(g), 5, "%s", test_print_dsg(g));
}

/* An integer division by zero stays, so the error happens when the model runs. */
Test(passes, constfold_keeps_runtime_errors) {
    Graph *g = compile("model m {\n"
                       "  input i : i32[4]\n"
                       "  output y = i + cast(1, i32) / cast(0, i32)\n"
                       "  output z = i + pow(cast(0, i32), cast(-1, i32))\n"
                       "}\n");
    cr_assert(pass_constfold(g, D) && ir_verify(g, D), "%s", test_diag_text(D, true));
    cr_assert_eq(count(g, OP_DIV), 1, "%s", test_print_dsg(g));
    cr_assert_eq(count(g, OP_POW), 1, "%s", test_print_dsg(g));
}

/* A literal prints without a dtype: an i32 output cannot be a bare literal,
 * and neither can both operands of the i32 `-` that stays; inside `i + ...`
 * the same chain folds, because `i` gives the literal its dtype back. */
Test(passes, constfold_only_what_prints_back) {
    Graph *g = check_pass("model m {\n"
                          "  input i : i32[4]\n"
                          "  output y0 = maximum(cast(2, i32), 5) - 4\n"
                          "  output y1 = i + (maximum(cast(2, i32), 5) - 4)\n"
                          "}\n",
                          pass_constfold, 0);
    cr_assert_eq(output(g, "y0")->op, OP_SUB, "%s", test_print_dsg(g));
    cr_assert_eq(output(g, "y0")->in[0]->op, OP_MAXIMUM, "%s", test_print_dsg(g));
    cr_assert_eq(const_operand(output(g, "y1"))->fval, 1, "%s", test_print_dsg(g));
    cr_assert_eq(ir_count_ops(g), 4, "%s", test_print_dsg(g)); /* cast, maximum, sub, add */
}

Test(passes, constfold_negative_cases) {
    Graph *g = check_pass("model m {\n"
                          "  dim B\n"
                          "  input s : f32[B, 2]\n"
                          "  input x : f32[4]\n"
                          "  param p : f32\n"
                          "  output y = s * sqrt(B)\n"    /* a dim-valued constant */
                          "  output z = x * sqrt(p)\n"    /* a param */
                          "  output h = cast(2.0, f16)\n" /* a non-f32 output */
                          "  output w = where(less(1.0, 2.0), x, x * 2)\n"
                          "}\n",
                          pass_constfold, 0);
    cr_assert_eq(count(g, OP_SQRT), 2, "%s", test_print_dsg(g));
    cr_assert_eq(output(g, "h")->op, OP_CAST);
    cr_assert_eq(count(g, OP_LESS), 0, "%s", test_print_dsg(g));
    cr_assert_eq(output(g, "w")->op, OP_WHERE);
}

/* ---- cse ------------------------------------------------------------------------ */

Test(passes, cse_merges_duplicates) {
    Graph *g = check_pass("model m {\n"
                          "  input x : f32[4]\n"
                          "  let a = exp(x) * 2\n"
                          "  let b = exp(x) * 2\n"
                          "  output y = a - b\n"
                          "}\n",
                          pass_cse, 0);
    cr_assert_eq(count(g, OP_EXP), 1, "%s", test_print_dsg(g));
    cr_assert_eq(count(g, OP_MUL), 1);
    cr_assert_eq(count(g, OP_CONST), 1);
    Node *y = output(g, "y");
    cr_assert_eq(y->in[0], y->in[1]);
}

Test(passes, cse_commutative_only_where_exact) {
    Graph *g = check_pass("model m {\n"
                          "  input x : f32[4]\n"
                          "  input z : f32[4]\n"
                          "  output s = (x + z) * (z + x)\n"
                          "  output p = (x * z) - (z * x)\n"
                          "  output d = (x - z) + (z - x)\n"
                          "  output m = maximum(x, z) + maximum(z, x)\n"
                          "}\n",
                          pass_cse, 0);
    cr_assert_eq(count(g, OP_MUL), 2, "%s", test_print_dsg(g)); /* x*z and the product of the sums */
    cr_assert_eq(count(g, OP_SUB), 3, "%s", test_print_dsg(g));
    cr_assert_eq(count(g, OP_MAXIMUM), 2, "%s", test_print_dsg(g));
    Node *s = output(g, "s");
    cr_assert_eq(s->in[0], s->in[1]);
}

Test(passes, cse_compares_attributes_types_and_constants) {
    Graph *g = check_pass("model m {\n"
                          "  input x : f32[2, 3, 4]\n"
                          "  input i : i32[4]\n"
                          "  input v : f32[4]\n"
                          "  output a = transpose(x, perm=[1, 0, 2]) + transpose(x, perm=[1, 0, 2])\n"
                          "  output b = transpose(x, perm=[0, 2, 1])\n"
                          "  output c = reduce_sum(x, axes=[1]) * reduce_sum(x, axes=[1])\n"
                          "  output d = reduce_sum(x, axes=[2], keepdims=false)\n"
                          "  output e = v * 2 + v * 3\n"
                          "  output f = i * 2\n"
                          "  output h = cast(v, f16)\n"
                          "  output k = cast(v, bf16)\n"
                          "}\n",
                          pass_cse, 0);
    cr_assert_eq(count(g, OP_TRANSPOSE), 2, "%s", test_print_dsg(g));
    cr_assert_eq(count(g, OP_REDUCE_SUM), 2, "%s", test_print_dsg(g));
    cr_assert_eq(count(g, OP_MUL), 4, "%s", test_print_dsg(g));   /* c, v*2, v*3, i*2 */
    cr_assert_eq(count(g, OP_CONST), 3, "%s", test_print_dsg(g)); /* 2 (f32), 3 (f32), 2 (i32) */
    cr_assert_eq(count(g, OP_CAST), 2, "%s", test_print_dsg(g));
}

Test(passes, cse_outputs_keep_their_names) {
    Graph *g = check_pass("model m {\n"
                          "  input x : f32[4]\n"
                          "  output a = x * 2\n"
                          "  output b = x * 2\n"
                          "}\n",
                          pass_cse, 0);
    cr_assert_eq(output(g, "a"), output(g, "b"));
    cr_assert_str_eq(g->outputs[1].name, "b");
    cr_assert(printed_has(g, "output b = a\n"), "%s", test_print_dsg(g));
}

/* ---- the whole -O1 pipeline on the examples ------------------------------------- */

Test(passes, pipeline_O1_on_examples) {
    glob_t gl;
    cr_assert_eq(glob("examples/*.dsg", 0, NULL, &gl), 0, "no examples (run from the source root)");
    for (size_t f = 0; f < gl.gl_pathc; f++) {
        Graph *g = fe_compile_file(A, D, gl.gl_pathv[f]);
        cr_assert(g, "%s:\n%s", gl.gl_pathv[f], test_diag_text(D, true));
        make_values(g, 2);
        Tensor *before[16] = {0}, *after[16] = {0};
        run(g, before);
        PipelineOptions po = {.opt_level = 1};
        cr_assert(pass_run_pipeline(g, D, &po), "%s:\n%s", gl.gl_pathv[f], test_diag_text(D, true));
        run(g, after);
        compare(g, before, after, 1e-5);
        free_outputs(before, g->noutputs);
        free_outputs(after, g->noutputs);
        for (int i = 0; i < nvals; i++)
            rt_tensor_free(vals[i].t);
        nvals = 0;
    }
    globfree(&gl);
}
