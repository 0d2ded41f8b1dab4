/* Fusion (passes/fuse.c): the groups formed for each pattern and their kinds,
 * legality (no group across a dependence that would make the groups cyclic),
 * the graph invariants (ir_verify), the printed dump reparsing to the same
 * groups, and the reference interpreter giving identical results before and
 * after fusion (the interpreter ignores groups; the reordering must not change
 * anything it computes). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/interp.h"
#include "../support.h"

static Arena *A;
static Diag *D;

static void setup(void) {
    A = arena_create();
    D = diag_create();
}
static void teardown(void) {
    diag_destroy(D);
    arena_destroy(A);
}
TestSuite(fuse, .init = setup, .fini = teardown);

static Graph *compile(const char *src) {
    Graph *g = fe_compile_source(A, D, "t.dsg", src, strlen(src));
    if (!g) {
        char *e = test_diag_text(D, true);
        cr_assert_fail("does not compile:\n%s\n%s", src, e);
    }
    return g;
}

static void verify(Graph *g) {
    if (!ir_verify(g, D)) {
        char *e = test_diag_text(D, true), *p = test_print_dsg(g);
        cr_assert_fail("verifier:\n%s\n%s", e, p);
    }
}

static Graph *fused(const char *src) {
    Graph *g = compile(src);
    cr_assert(pass_fuse(g, D), "pass_fuse failed");
    verify(g);
    return g;
}

static Node *node(const Graph *g, const char *name) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->name && strcmp(g->nodes[i]->name, name) == 0) return g->nodes[i];
    cr_assert_fail("no node named %s", name);
    return NULL;
}

static Group *group(const Graph *g, const char *name) {
    Node *n = node(g, name);
    cr_assert(n->ann.group >= 0 && n->ann.group < g->ngroups, "%s is in no group", name);
    return g->groups[n->ann.group];
}

/* Asserts that the named nodes form exactly one group of `kind` (and nothing
 * else is in it but `extra` unnamed nodes).  Names are NULL-terminated. */
static Group *expect_group(const Graph *g, GroupKind kind, int extra, const char *first, ...) {
    Group *grp = group(g, first);
    cr_assert_eq(grp->kind, kind, "group of %s is %s (%s), want %s", first, ir_group_kind_name(grp->kind), grp->reason,
                 ir_group_kind_name(kind));
    int count = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *nm = first; nm; nm = va_arg(ap, const char *)) {
        cr_assert_eq(group(g, nm), grp, "%s is not in the group of %s (%s)", nm, first, grp->reason);
        count++;
    }
    va_end(ap);
    cr_assert_eq(grp->nnodes, count + extra, "group of %s (%s) has %d members, want %d", first, grp->reason,
                 grp->nnodes, count + extra);
    return grp;
}

static int kernels(const Graph *g) {
    int k = 0;
    for (int i = 0; i < g->ngroups; i++) k += g->groups[i]->kind != GK_ALIAS && g->groups[i]->kind != GK_CONSTANT;
    return k;
}

/* The dump reparses to the same graph with the same groups, and printing it
 * again gives the same text. */
static void check_reparse(Graph *g) {
    char *p1 = test_print_dsg(g);
    Graph *g2 = fe_compile_source(A, D, "printed.dsg", p1, strlen(p1));
    if (!g2) {
        char *e = test_diag_text(D, true);
        cr_assert_fail("the dump does not compile:\n%s\n%s", p1, e);
    }
    verify(g2);
    cr_assert_eq(g2->ngroups, g->ngroups);
    for (int k = 0; k < g->ngroups; k++) {
        cr_assert_eq(g2->groups[k]->kind, g->groups[k]->kind);
        cr_assert_str_eq(g2->groups[k]->reason, g->groups[k]->reason);
        cr_assert_eq(g2->groups[k]->nnodes, g->groups[k]->nnodes);
        for (int j = 0; j < g->groups[k]->nnodes; j++)
            cr_assert_eq(g2->groups[k]->nodes[j]->op, g->groups[k]->nodes[j]->op);
    }
    char *p2 = test_print_dsg(g2);
    cr_assert_str_eq(p2, p1, "printing the reparsed dump differs");
    free(p1);
    free(p2);
}

/* ---- interpreter equivalence ------------------------------------------------ */

static uint64_t rng = 88172645463325252ull;
static double uniform(void) { /* xorshift64, in [-1, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / (double)(1ull << 52) - 1.0;
}

static Tensor *random_tensor(const Graph *g, const Node *n, const int64_t *syms, bool positive) {
    int64_t shape[IR_MAX_RANK];
    char err[256];
    for (int i = 0; i < n->type.rank; i++)
        cr_assert(dim_eval(g->dims, n->type.dim[i], syms, &shape[i], err, sizeof err), "%s", err);
    Tensor *t = rt_tensor_new(n->type.dtype, n->type.rank, shape);
    int64_t cnt = rt_numel(n->type.rank, shape);
    double scale = n->type.rank >= 2 ? 1.0 / sqrt((double)shape[n->type.rank - 1]) : 1.0;
    for (int64_t i = 0; i < cnt; i++) {
        double v = uniform();
        rt_set(t, i, positive ? 0.5 + fabs(v) : v * scale);
    }
    return t;
}

/* Runs `before` and `after` (the same model, unfused and fused) on the same
 * random inputs and params and requires bit-identical outputs.  Params whose
 * name contains "var" are positive (variances). */
static void check_same_results(const Graph *before, const Graph *after, const int64_t *syms) {
    Tensor *ins[64], *params[64], *o1[64], *o2[64];
    int nin = 0, np = 0;
    for (int i = 0; i < before->nnodes; i++) {
        const Node *n = before->nodes[i];
        if (n->op == OP_INPUT) ins[nin++] = random_tensor(before, n, syms, false);
        if (n->op == OP_PARAM) params[np++] = random_tensor(before, n, syms, strstr(n->name, "var") != NULL);
        cr_assert(nin < 64 && np < 64);
    }
    bool ok1 = rt_interp_run(before, ins, nin, params, o1, D);
    bool ok2 = ok1 && rt_interp_run(after, ins, nin, params, o2, D);
    if (!ok2) {
        char *e = test_diag_text(D, true);
        cr_assert_fail("interpreter failed:\n%s", e);
    }
    cr_assert_eq(before->noutputs, after->noutputs);
    for (int k = 0; k < before->noutputs; k++) {
        cr_assert_eq(o1[k]->nbytes, o2[k]->nbytes);
        cr_assert(memcmp(o1[k]->data, o2[k]->data, o1[k]->nbytes) == 0, "output %s differs after fusion",
                  before->outputs[k].name);
        rt_tensor_free(o1[k]);
        rt_tensor_free(o2[k]);
    }
    for (int i = 0; i < nin; i++) rt_tensor_free(ins[i]);
    for (int i = 0; i < np; i++) rt_tensor_free(params[i]);
}

/* Fuses, verifies, checks the dump and the interpreter; returns the fused graph. */
static Graph *fuse_all_checks(const char *src) {
    Graph *before = compile(src);
    Graph *g = fused(src);
    check_reparse(g);
    check_same_results(before, g, NULL);
    return g;
}

/* ---- patterns ---------------------------------------------------------------- */

Test(fuse, elementwise_chain_with_broadcast) {
    Graph *g = fuse_all_checks("model m {\n  input x : f32[4, 8]\n  input b : f32[8]\n"
                               "  let s = x * 2\n  let t = s + b\n  output y = relu(t)\n}\n");
    Group *grp = expect_group(g, GK_ELEMENTWISE, 0, "s", "t", "y", NULL);
    cr_assert_str_eq(grp->reason, "elementwise: mul, add, relu");
    cr_assert_eq(g->ngroups, 1);
}

/* A value used by two elementwise ops is computed once in the group and,
 * being an output too, written once. */
Test(fuse, elementwise_tree) {
    Graph *g = fuse_all_checks("model m {\n  input x : f32[4, 8]\n"
                               "  let a = exp(x)\n  let p = a + 1\n  let q = a * 2\n"
                               "  output r = p - q\n  output a2 = a\n}\n");
    expect_group(g, GK_ELEMENTWISE, 0, "a", "p", "q", "r", NULL);
    cr_assert_eq(g->ngroups, 1);
}

Test(fuse, softmax_with_producers) {
    Graph *g = fuse_all_checks("model m {\n  input x : f32[2, 4, 8]\n  input mask : f32[2, 1, 8]\n"
                               "  let s = x * 0.5\n  let t = s + mask\n  output p = softmax(t, axis=-1)\n}\n");
    Group *grp = expect_group(g, GK_REDUCTION, 0, "s", "t", "p", NULL);
    cr_assert_str_eq(grp->reason, "softmax with producers mul, add");
}

Test(fuse, normalisations_are_groups) {
    Graph *g = fuse_all_checks("model m {\n  input x : f32[4, 8]\n  param g : f32[8]\n  param b : f32[8]\n"
                               "  let a = layernorm(x, g, b)\n  let r = rmsnorm(x, g)\n  let s = softmax(x)\n"
                               "  let t = reduce_sum(x, axes=[-1])\n"
                               "  output y = a + r\n  output z = s\n  output w = t\n}\n");
    Group *ln = group(g, "a"), *rms = group(g, "r"), *sm = group(g, "s"), *rs = group(g, "t");
    cr_assert(ln != rms && ln != sm && rms != sm && rs != sm && rs != ln);
    cr_assert_eq(ln->kind, GK_REDUCTION);
    cr_assert_eq(rms->kind, GK_REDUCTION);
    cr_assert_eq(sm->kind, GK_REDUCTION);
    cr_assert_eq(rs->kind, GK_REDUCTION);
    /* the add reads both normalisations: it joins one of them as a consumer */
    cr_assert(group(g, "y") == ln || group(g, "y") == rms);
}

/* A written-out layernorm in front of a linear: the statistics are one
 * reduction group (both means over the same rows), the normalisation with
 * its scale and shift becomes the GEMM's prologue. */
Test(fuse, written_out_layernorm_and_gemm_prologue) {
    Graph *g = fuse_all_checks("model m {\n  input x : f32[4, 8]\n  param g : f32[8]\n  param b : f32[8]\n"
                               "  param w : f32[16, 8]\n  param c : f32[16]\n"
                               "  let mu = reduce_mean(x, axes=[-1])\n  let d = x - mu\n"
                               "  let d2 = d * d\n  let var = reduce_mean(d2, axes=[-1])\n"
                               "  let ve = var + 1e-5\n  let r = rsqrt(ve)\n  let nd = d * r\n"
                               "  let sc = nd * g\n  let sh = sc + b\n  output y = linear(sh, w, c)\n}\n");
    Group *red = expect_group(g, GK_REDUCTION, 0, "mu", "d", "d2", "var", NULL);
    cr_assert_str_eq(red->reason, "reduce_mean, reduce_mean with consumers sub, mul");
    Group *gemm = expect_group(g, GK_GEMM, 0, "ve", "r", "nd", "sc", "sh", "y", NULL);
    cr_assert_str_eq(gemm->reason, "gemm linear with prologue add, rsqrt, mul, mul, add");
}

Test(fuse, linear_bias_gelu_epilogue) {
    Graph *g = fuse_all_checks("model m {\n  input x : f32[4, 8]\n  param w : f32[16, 8]\n  param b : f32[16]\n"
                               "  let h = linear(x, w, b)\n  output y = gelu(h)\n}\n");
    Group *grp = expect_group(g, GK_GEMM, 0, "h", "y", NULL);
    cr_assert_str_eq(grp->reason, "gemm linear with epilogue gelu");
}

Test(fuse, residual_and_cast_epilogue) {
    Graph *g = fuse_all_checks("model m {\n  input x : f32[4, 8]\n  param w : f32[8, 8]\n  param b : f32[8]\n"
                               "  let h = linear(x, w, b)\n  let r = h + x\n  output y = cast(r, f16)\n}\n");
    Group *grp = expect_group(g, GK_GEMM, 0, "h", "r", "y", NULL);
    cr_assert_str_eq(grp->reason, "gemm linear with epilogue add, cast");
}

/* An epilogue never broadcasts the GEMM's result up (that would recompute
 * it): the add that makes [2,4,16] of a [4,16] GEMM result stays outside. */
Test(fuse, epilogue_does_not_broadcast_up) {
    Graph *g = fuse_all_checks("model m {\n  input x : f32[4, 8]\n  input z : f32[2, 4, 16]\n"
                               "  param w : f32[16, 8]\n"
                               "  let h = linear(x, w)\n  output y = h + z\n}\n");
    cr_assert_neq(group(g, "h"), group(g, "y"));
    expect_group(g, GK_GEMM, 0, "h", NULL);
    expect_group(g, GK_ELEMENTWISE, 0, "y", NULL);
}

/* Fused QKV: three linears reading the same input are one GEMM, with the
 * head split (reshape + transpose) as store-index remaps. */
Test(fuse, fused_qkv) {
    Graph *g = fuse_all_checks(
        "model m {\n  input x : f32[2, 4, 16]\n"
        "  param wq : f32[16, 16]\n  param bq : f32[16]\n  param wk : f32[16, 16]\n  param bk : f32[16]\n"
        "  param wv : f32[16, 16]\n  param bv : f32[16]\n"
        "  let q = linear(x, wq, bq)\n  let k = linear(x, wk, bk)\n  let v = linear(x, wv, bv)\n"
        "  let qh = transpose(reshape(q, shape=[2, 4, 2, 8]), perm=[0, 2, 1, 3])\n"
        "  let kh = transpose(reshape(k, shape=[2, 4, 2, 8]), perm=[0, 2, 1, 3])\n"
        "  let vh = transpose(reshape(v, shape=[2, 4, 2, 8]), perm=[0, 2, 1, 3])\n"
        "  output y = attention(qh, kh, vh)\n}\n");
    Group *grp = expect_group(g, GK_GEMM, 3, "q", "k", "v", "qh", "kh", "vh", NULL);
    cr_assert_str_eq(grp->reason, "gemm: 3 linears sharing input x (horizontal fusion) with epilogue reshape, transpose, "
                                  "reshape, transpose, reshape, transpose");
    Group *att = expect_group(g, GK_ATTENTION, 0, "y", NULL);
    cr_assert_str_eq(att->reason, "attention operator");
    cr_assert_eq(kernels(g), 2);
}

/* Linears on different inputs, or with weights computed at run time, are not
 * fused horizontally. */
Test(fuse, no_horizontal_fusion_without_shared_input) {
    Graph *g = fuse_all_checks("model m {\n  input x : f32[4, 8]\n  input z : f32[4, 8]\n  input wr : f32[8, 8]\n"
                               "  param w : f32[8, 8]\n"
                               "  let a = linear(x, w)\n  let b = linear(z, w)\n  let c = linear(x, wr)\n"
                               "  output y = a\n  output y2 = b\n  output y3 = c\n}\n");
    cr_assert_neq(group(g, "a"), group(g, "b"));
    cr_assert_neq(group(g, "a"), group(g, "c"));
    cr_assert_eq(kernels(g), 3);
}

static const char *attention_src =
    "model m {\n  input q : f32[2, 2, 4, 8]\n  input k : f32[2, 2, 4, 8]\n  input v : f32[2, 2, 4, 8]\n"
    "  input mask : f32[2, 1, 1, 4]\n"
    "  let kt = transpose(k, perm=[0, 1, 3, 2])\n  let s = matmul(q, kt)\n  let sc = s * 0.25\n"
    "  let sm = sc + mask\n  let p = softmax(sm, axis=-1)\n  let o = matmul(p, v)\n"
    "  let ot = transpose(o, perm=[0, 2, 1, 3])\n  output y = reshape(ot, shape=[2, 4, 16])\n}\n";

Test(fuse, attention_written_out) {
    Graph *g = fuse_all_checks(attention_src);
    Group *grp = expect_group(g, GK_ATTENTION, 0, "kt", "s", "sc", "sm", "p", "o", "ot", "y", NULL);
    cr_assert_str_eq(grp->reason, "attention: transpose, matmul, mul, add, softmax, matmul with epilogue transpose, reshape");
    cr_assert_eq(g->ngroups, 1);
}

/* If the probabilities are an output the scores must be written: no
 * attention group, but the usual GEMM and softmax groups. */
Test(fuse, attention_needs_private_scores) {
    Graph *g = fuse_all_checks("model m {\n  input q : f32[2, 4, 8]\n  input k : f32[2, 4, 8]\n  input v : f32[2, 4, 8]\n"
                               "  let s = matmul(q, transpose(k, perm=[0, 2, 1]))\n  let p = softmax(s * 0.25)\n"
                               "  output o = matmul(p, v)\n  output probs = p\n}\n");
    for (int k = 0; k < g->ngroups; k++) cr_assert_neq(g->groups[k]->kind, GK_ATTENTION);
    cr_assert_eq(group(g, "s")->kind, GK_GEMM);
    cr_assert_eq(group(g, "p")->kind, GK_REDUCTION);
    cr_assert_eq(group(g, "o")->kind, GK_GEMM);
}

Test(fuse, attention_operator) {
    Graph *g = fuse_all_checks("model m {\n  input q : f32[2, 2, 4, 8]\n  input k : f32[2, 2, 4, 8]\n"
                               "  input v : f32[2, 2, 4, 8]\n  input mask : f32[2, 1, 1, 4]\n"
                               "  let a = attention(q, k, v, mask=mask)\n"
                               "  output y = reshape(transpose(a, perm=[0, 2, 1, 3]), shape=[2, 4, 16])\n}\n");
    Group *grp = expect_group(g, GK_ATTENTION, 1, "a", "y", NULL);
    cr_assert_str_eq(grp->reason, "attention operator with epilogue transpose, reshape");
}

/* Everything computed from params and constants alone is one load-time
 * group, scheduled first; a transposed weight and a batchnorm folded by hand. */
Test(fuse, constant_group) {
    Graph *g = fuse_all_checks("model m {\n  input x : f32[4, 8]\n  param w : f32[16, 8]\n"
                               "  param gam : f32[16]\n  param var : f32[16]\n"
                               "  let wt = transpose(w, perm=[1, 0])\n"
                               "  let s = gam * rsqrt(var + 1e-5)\n"
                               "  let h = matmul(x, wt)\n  output y = h * s\n}\n");
    Group *c1 = expect_group(g, GK_CONSTANT, 0, "wt", NULL);
    Group *c2 = group(g, "s");
    cr_assert_eq(c2->kind, GK_CONSTANT);
    cr_assert_eq(c2->nnodes, 3); /* add, rsqrt, mul */
    cr_assert(c1->id < 2 && c2->id < 2, "constant groups come first");
    Group *gemm = expect_group(g, GK_GEMM, 0, "h", "y", NULL);
    cr_assert_str_eq(gemm->reason, "gemm matmul with epilogue mul");
    cr_assert_eq(kernels(g), 1);
}

/* Dims are bound per run, so nothing that depends on one is a load-time
 * constant: a dim used as a value, or a param of symbolic shape. */
Test(fuse, dims_are_not_constant) {
    const char *src = "model m {\n  dim S <= 16\n  input x : f32[S, 4]\n  param w : f32[4, 4]\n  param p : f32[S]\n"
                      "  let s = cast(S, f32) * 2\n  let q = p * 2\n  let wt = w * 2\n"
                      "  let h = matmul(x, wt)\n  output y = h * s\n  output z = q\n}\n";
    Graph *before = compile(src), *g = fused(src);
    expect_group(g, GK_CONSTANT, 0, "wt", NULL);
    cr_assert_neq(group(g, "s")->kind, GK_CONSTANT);
    cr_assert_neq(group(g, "q")->kind, GK_CONSTANT);
    check_reparse(g);
    int64_t syms[] = {3};
    check_same_results(before, g, syms);
}

/* a = linear(x); b = relu(a); c = linear(b) + a.  The add is a legal epilogue
 * of either GEMM by its shape, but with the first one it would read c's GEMM,
 * which reads b from the first group: a cycle.  It goes with the second GEMM
 * and reads a from memory. */
Test(fuse, no_group_across_a_cycle) {
    Graph *g = fuse_all_checks("model m {\n  input x : f32[4, 8]\n  param w1 : f32[8, 8]\n  param w2 : f32[8, 8]\n"
                               "  let a = linear(x, w1)\n  let b = relu(a)\n  let l = linear(b, w2)\n"
                               "  output c = l + a\n}\n");
    expect_group(g, GK_GEMM, 0, "a", "b", NULL);
    expect_group(g, GK_GEMM, 0, "l", "c", NULL);
    cr_assert_lt(group(g, "a")->id, group(g, "l")->id);
}

/* A cycle that only shows between groups: la and lb are one GEMM (same input),
 * e = la + l1 is its epilogue, so that group reads l1.  u = l1 * lb fits l1's
 * epilogue by shape, and no path of nodes leads from l1 back to u outside
 * l1's group (l1 -> e ends there), but e and lb are one kernel: l1's group
 * would read lb's group, which reads l1.  u must stay out. */
Test(fuse, cycle_through_another_group) {
    Graph *g = fuse_all_checks("model m {\n  input y : f32[4, 8]\n  input z : f32[4, 8]\n"
                               "  param wa : f32[8, 8]\n  param wb : f32[1, 8]\n  param w1 : f32[8, 8]\n"
                               "  let la = linear(y, wa)\n  let lb = linear(y, wb)\n  let l1 = linear(z, w1)\n"
                               "  let e = la + l1\n  let u = l1 * lb\n  output o1 = e\n  output o2 = u\n}\n");
    expect_group(g, GK_GEMM, 0, "la", "lb", "e", NULL);
    expect_group(g, GK_GEMM, 0, "l1", NULL);
    expect_group(g, GK_ELEMENTWISE, 0, "u", NULL);
}

/* The same question for elementwise growth: e and f could form one group by
 * shape, but f reads the reduction of e, so they can only be one group if the
 * reduction is in it too (it is: a row-wise reduction takes both). With a
 * reduction over a leading axis the consumer stays outside. */
Test(fuse, reduction_between_elementwise_ops) {
    Graph *g = fuse_all_checks("model m {\n  input x : f32[4, 8]\n"
                               "  let e = exp(x)\n  let r = reduce_sum(e, axes=[0])\n  output f = e * r\n}\n");
    expect_group(g, GK_REDUCTION, 0, "e", "r", NULL);
    expect_group(g, GK_ELEMENTWISE, 0, "f", NULL);
    Graph *g2 = fuse_all_checks("model m {\n  input x : f32[4, 8]\n"
                                "  let e = exp(x)\n  let r = reduce_sum(e, axes=[-1])\n  output f = e / r\n}\n");
    expect_group(g2, GK_REDUCTION, 0, "e", "r", "f", NULL);
}

/* A group whose members are far apart in the source is made contiguous: the
 * relu feeding the second linear's epilogue moves in front of the group. */
Test(fuse, reorders_into_a_schedule) {
    Graph *g = fuse_all_checks("model m {\n  input x : f32[4, 8]\n  input z : f32[4, 8]\n"
                               "  param wq : f32[8, 8]\n  param wk : f32[8, 8]\n"
                               "  let q = linear(x, wq)\n  let p = relu(z)\n  let k = linear(x, wk) + p\n"
                               "  output y = q\n  output y2 = k\n}\n");
    Group *gemm = group(g, "q");
    cr_assert_eq(gemm->kind, GK_GEMM);
    cr_assert_eq(gemm->nnodes, 3);
    cr_assert_eq(group(g, "k"), gemm);
    cr_assert_lt(node(g, "p")->id, node(g, "q")->id);
    cr_assert_lt(group(g, "p")->id, gemm->id);
    /* inputs and params keep their order (the interface) */
    cr_assert_lt(node(g, "x")->id, node(g, "z")->id);
    cr_assert_lt(node(g, "wq")->id, node(g, "wk")->id);
}

Test(fuse, standalone_layout_and_alias) {
    Graph *g = fuse_all_checks("model m {\n  input x : f32[4, 8]\n  input ids : i64[3]\n  param emb : f32[10, 8]\n"
                               "  let r = unsqueeze(reshape(x, shape=[8, 4]), axes=[0])\n"
                               "  let t = transpose(x, perm=[1, 0])\n  let c = concat(x, x, axis=0)\n"
                               "  let e = gather(emb, ids)\n  let p = max_pool2d(reshape(x, shape=[1, 1, 4, 8]), kernel=[2, 2])\n"
                               "  output y1 = r\n  output y2 = t\n  output y3 = c\n  output y4 = e\n  output y5 = p\n}\n");
    expect_group(g, GK_ALIAS, 1, "r", NULL);
    expect_group(g, GK_LAYOUT, 0, "t", NULL);
    expect_group(g, GK_LAYOUT, 0, "c", NULL);
    expect_group(g, GK_LAYOUT, 0, "e", NULL);
    expect_group(g, GK_SINGLE, 0, "p", NULL);
    cr_assert_str_eq(group(g, "r")->reason, "reshape, unsqueeze only rename memory (no kernel)");
}

Test(fuse, conv_epilogue) {
    Graph *g = fuse_all_checks("model m {\n  input x : f32[1, 3, 8, 8]\n  param w : f32[4, 3, 3, 3]\n  param b : f32[4]\n"
                               "  param s : f32[4]\n  param t : f32[4]\n  param mu : f32[4]\n  param var : f32[4]\n"
                               "  let c = conv2d(x, w, b, padding=[1, 1, 1, 1])\n  let n = batchnorm(c, s, t, mu, var)\n"
                               "  output y = relu(n)\n}\n");
    Group *grp = expect_group(g, GK_GEMM, 0, "c", "n", "y", NULL);
    cr_assert_str_eq(grp->reason, "gemm conv2d with epilogue batchnorm, relu");
}

/* Fusing a fused graph again gives the same groups. */
Test(fuse, idempotent) {
    Graph *g = fused(attention_src);
    char *p1 = test_print_dsg(g);
    cr_assert(pass_fuse(g, D));
    verify(g);
    char *p2 = test_print_dsg(g);
    cr_assert_str_eq(p1, p2);
    free(p1);
    free(p2);
}

/* ---- examples -------------------------------------------------------------- */

typedef struct {
    Graph *before, *after;
    int64_t syms[8];
} Example;

/* The example through the pipeline at -O2 without memory planning, and the
 * same without fusion either; dims bound to small values for the interpreter. */
static Example example(const char *file, int64_t dimval) {
    Example e;
    const char *none[] = {"memplan"}, *nofuse[] = {"fuse", "memplan"};
    e.before = fe_compile_file(A, D, file);
    e.after = fe_compile_file(A, D, file);
    cr_assert(e.before && e.after, "%s does not compile", file);
    PipelineOptions p0 = {.opt_level = 2, .disabled = nofuse, .ndisabled = 2};
    PipelineOptions p2 = {.opt_level = 2, .disabled = none, .ndisabled = 1};
    cr_assert(pass_run_pipeline(e.before, D, &p0));
    cr_assert(pass_run_pipeline(e.after, D, &p2));
    verify(e.after);
    cr_assert_gt(e.after->ngroups, 0);
    for (int i = 0; i < 8; i++) e.syms[i] = dimval;
    return e;
}

static void check_example(const char *file, int64_t dimval) {
    Example e = example(file, dimval);
    check_reparse(e.after);
    check_same_results(e.before, e.after, e.syms);
}

Test(fuse, examples_reparse_and_interpret) {
    check_example("examples/mlp.dsg", 3);
    check_example("examples/ffn_block.dsg", 2);
    check_example("examples/cnn_block.dsg", 2);
    check_example("examples/bert_layer_attention.dsg", 2);
    check_example("examples/bert_layer.dsg", 2);
}

static int64_t sym(const Graph *g, const char *name) { return dim_sym_lookup(g->dims, name); }

/* The target: a BERT layer runs in at most a third as many kernels as
 * it has operations and moves at most 60% of the unfused activation bytes. */
Test(fuse, bert_layer_targets) {
    Example e = example("examples/bert_layer.dsg", 1);
    Graph *g = e.after;
    e.syms[sym(g, "B")] = 1;
    e.syms[sym(g, "S")] = 128;
    GraphStats st;
    cr_assert(pass_graph_stats(g, e.syms, &st, D));
    cr_assert_leq(st.kernels * 3, st.ops, "%d kernels for %d ops", st.kernels, st.ops);
    cr_assert_leq(st.bytes_fused, 0.6 * st.bytes_unfused, "%.0f of %.0f bytes", st.bytes_fused, st.bytes_unfused);
    int natt = 0, ngemm = 0, nred = 0;
    for (int k = 0; k < g->ngroups; k++) {
        natt += g->groups[k]->kind == GK_ATTENTION;
        ngemm += g->groups[k]->kind == GK_GEMM;
        nred += g->groups[k]->kind == GK_REDUCTION;
    }
    cr_assert_eq(natt, 1);
    cr_assert_eq(ngemm, 4); /* QKV, output projection, two feed-forward GEMMs */
    cr_assert_eq(nred, 2);  /* the two layernorms */
}

Test(fuse, mlp_groups) {
    Example e = example("examples/mlp.dsg", 2);
    Graph *g = e.after;
    cr_assert_eq(g->ngroups, 4);
    cr_assert_str_eq(g->groups[0]->reason, "gemm linear with epilogue relu");
    cr_assert_str_eq(g->groups[1]->reason, "gemm linear with epilogue relu");
    cr_assert_str_eq(g->groups[2]->reason, "gemm linear");
    cr_assert_str_eq(g->groups[3]->reason, "softmax");
}
