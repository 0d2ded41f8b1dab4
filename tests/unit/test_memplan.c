/* Memory planning (passes/memplan.c).
 *
 * Every plan is checked by an independent checker (check_plan) that
 * recomputes live ranges from the graph alone -- schedule positions, views,
 * readers, outputs -- and verifies that any two values sharing a buffer have
 * disjoint ranges (or form a legal in-place update), that graph outputs are
 * never overwritten, that exactly the values that must live in memory have a
 * buffer, and that every buffer holds each of its values for several
 * bindings of the dims.  Fusion groups come either from the pipeline or from
 * @group hints in the test source (the form dumps use), so the grouped rules
 * (alias views, constant groups, internal values, in-place in elementwise
 * groups) are tested whether or not passes/fuse.c forms them. */
#include <criterion/criterion.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "passes/passes.h"
#include "../support.h"

enum { END = INT_MAX };

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
TestSuite(memplan, .init = setup, .fini = teardown);

static Graph *compile(const char *src) {
    Graph *g = fe_compile_source(A, D, "t.dsg", src, strlen(src));
    if (!g) {
        char *e = test_diag_text(D, true);
        cr_assert_fail("does not compile:\n%s\n%s", src, e);
    }
    return g;
}

static Graph *compile_file(const char *path) {
    Graph *g = fe_compile_file(A, D, path);
    cr_assert(g, "%s does not compile", path);
    return g;
}

static void pipeline(Graph *g) {
    PipelineOptions po = {.opt_level = 2};
    cr_assert(pass_run_pipeline(g, D, &po), "pipeline failed");
}

static void plan(Graph *g) {
    cr_assert(pass_memplan(g, D), "memplan failed");
    cr_assert(ir_verify(g, D));
}

static Node *node(Graph *g, const char *name) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->name && strcmp(g->nodes[i]->name, name) == 0) return g->nodes[i];
    cr_assert_fail("no node %s", name);
    return NULL;
}

/* ---- the independent checker ---------------------------------------------- */

static bool alias_op(OpKind op) { return op == OP_RESHAPE || op == OP_SQUEEZE || op == OP_UNSQUEEZE; }

static int pos(const Graph *g, const Node *n) { return g->ngroups ? n->ann.group : n->id; }

static GroupKind kind(const Graph *g, const Node *n) {
    if (g->ngroups) return g->groups[n->ann.group]->kind;
    if (alias_op(n->op)) return GK_ALIAS;
    return ir_op_class(n->op) == OPC_ELEMENTWISE ? GK_ELEMENTWISE : GK_SINGLE;
}

static bool is_output(const Graph *g, const Node *n) {
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i].node == n) return true;
    return false;
}

/* The node whose memory n is (n itself unless it is a view). */
static const Node *root_of(const Graph *g, const Node *n) {
    while (!ir_is_source(n) && kind(g, n) == GK_ALIAS && alias_op(n->op) && n->in[0] &&
           !ir_is_source(n->in[0]) && n->in[0]->ann.buffer == n->ann.buffer && n->ann.buffer >= 0)
        n = n->in[0];
    return n;
}

/* Does n's memory outlive the run (input, param, constant, constant group, or a view of one)? */
static bool external(const Graph *g, const Node *n) {
    for (;;) {
        if (ir_is_source(n) || kind(g, n) == GK_CONSTANT) return true;
        if (kind(g, n) == GK_ALIAS && alias_op(n->op) && n->in[0]) {
            n = n->in[0];
            continue;
        }
        return false;
    }
}

typedef struct {
    int start, end;
} Range;

static Range range_of(const Graph *g, const Node *r) {
    Range rg = {pos(g, r), pos(g, r)};
    for (int i = 0; i < g->nnodes; i++) {
        const Node *u = g->nodes[i];
        if (ir_is_source(u)) continue;
        for (int k = 0; k < u->nin; k++)
            if (u->in[k] && !ir_is_source(u->in[k]) && u->in[k]->ann.buffer >= 0 &&
                root_of(g, u->in[k]) == r && pos(g, u) > rg.end)
                rg.end = pos(g, u);
        if (is_output(g, u) && u->ann.buffer >= 0 && root_of(g, u) == r) rg.end = END;
    }
    return rg;
}

/* b (written at a's last use) legally takes a's buffer in place. */
static bool in_place_ok(const Graph *g, const Node *a, const Node *b) {
    if (kind(g, b) != GK_ELEMENTWISE) return false;
    int np = 1;
    Node *const *members = (Node *const *)&b;
    if (g->ngroups) {
        np = g->groups[b->ann.group]->nnodes;
        members = g->groups[b->ann.group]->nodes;
    }
    bool reads = false;
    for (int j = 0; j < np; j++) {
        const Node *m = members[j];
        if (ir_op_class(m->op) != OPC_ELEMENTWISE && !alias_op(m->op)) return false;
        for (int k = 0; k < m->nin; k++) {
            const Node *x = m->in[k];
            if (!x || ir_is_source(x) || x->ann.buffer < 0 || root_of(g, x) != a) continue;
            Graph *gg = (Graph *)g;
            if (ir_type_numel(gg, &x->type) == ir_type_numel(gg, &b->type) &&
                dtype_size(x->type.dtype) == dtype_size(b->type.dtype))
                reads = true;
        }
    }
    return reads;
}

static int64_t *bind(const Graph *g, const char *spec) {
    int n = dim_sym_count(g->dims);
    int64_t *syms = arena_alloc(A, sizeof(int64_t) * (size_t)(n + 1));
    for (int i = 0; i < n; i++)
        syms[i] = 2; /* dims the spec does not name */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        *eq = 0;
        int s = dim_sym_lookup(g->dims, tok);
        if (s >= 0) syms[s] = strtoll(eq + 1, NULL, 10);
    }
    return syms;
}

static int64_t eval(const Graph *g, DimId d, const int64_t *syms) {
    int64_t v;
    char err[200];
    cr_assert(dim_eval(g->dims, d, syms, &v, err, sizeof err), "eval: %s", err);
    return v;
}

static const char *const bindings[] = {"B=1,S=1,N=1", "B=3,S=128,N=8", "B=2,S=512,N=64"};

/* Checks every property of the plan; returns the number of buffers. */
static int check_plan(Graph *g) {
    int nn = g->nnodes;
    /* the table is the one ir_buffers_rebuild defines */
    int nb = g->nbuffers;
    DimId *bytes = malloc(sizeof(DimId) * (size_t)(nb + 1));
    for (int b = 0; b < nb; b++) {
        cr_assert_eq(g->buffers[b].id, b);
        bytes[b] = g->buffers[b].bytes;
        cr_assert_neq(bytes[b], DIM_INVALID);
    }
    ir_buffers_rebuild(g);
    cr_assert_eq(g->nbuffers, nb, "buffer table differs from ir_buffers_rebuild");
    for (int b = 0; b < nb; b++)
        cr_assert_eq(g->buffers[b].bytes, bytes[b], "buffer %d differs from rebuild", b);
    free(bytes);
    bool *used = calloc((size_t)nb + 1, 1);
    for (int i = 0; i < nn; i++) {
        const Node *n = g->nodes[i];
        int b = n->ann.buffer;
        cr_assert(b >= -1 && b < nb);
        if (b >= 0) used[b] = true;
        if (ir_is_source(n)) {
            cr_assert_eq(b, -1, "source node %d has a buffer", i);
            continue;
        }
        /* exactly the values that live in memory have a buffer */
        bool outside = is_output(g, n), any = outside;
        for (int j = i + 1; j < nn; j++) {
            const Node *u = g->nodes[j];
            for (int k = 0; k < u->nin; k++)
                if (u->in[k] == n) {
                    any = true;
                    if (pos(g, u) != pos(g, n)) outside = true;
                }
        }
        bool needs = (outside || !any) && !external(g, n);
        cr_assert_eq(b >= 0, needs, "node %d (%s): buffer %d, needs one: %d", i, ir_op_name(n->op), b, needs);
        if (b >= 0 && n != root_of(g, n))
            cr_assert_eq(kind(g, n), GK_ALIAS, "node %d shares its operand's buffer but is no view", i);
    }
    for (int b = 0; b < nb; b++)
        cr_assert(used[b], "buffer %d is unused", b);
    free(used);
    /* pairwise: roots sharing a buffer have disjoint live ranges, or in place */
    for (int i = 0; i < nn; i++) {
        const Node *a = g->nodes[i];
        if (a->ann.buffer < 0 || root_of(g, a) != a) continue;
        Range ra = range_of(g, a);
        for (int j = i + 1; j < nn; j++) {
            const Node *b = g->nodes[j];
            if (b->ann.buffer != a->ann.buffer || root_of(g, b) != b) continue;
            Range rb = range_of(g, b);
            cr_assert(ra.start <= rb.start);
            if (ra.end < rb.start) continue;
            cr_assert(ra.end == rb.start && ra.end != END && in_place_ok(g, a, b),
                      "nodes %d [%d,%d] and %d [%d,%d] overlap in buffer %d", i, ra.start, ra.end, j,
                      rb.start, rb.end, a->ann.buffer);
        }
    }
    /* sizes: every buffer holds each value, and is no larger than its largest */
    for (size_t s = 0; s < sizeof bindings / sizeof *bindings; s++) {
        int64_t *syms = bind(g, bindings[s]);
        int64_t *maxv = calloc((size_t)nb + 1, sizeof(int64_t));
        for (int i = 0; i < nn; i++) {
            const Node *n = g->nodes[i];
            if (n->ann.buffer < 0) continue;
            int64_t v = eval(g, ir_value_bytes(g, n), syms);
            if (v > maxv[n->ann.buffer]) maxv[n->ann.buffer] = v;
        }
        for (int b = 0; b < nb; b++)
            cr_assert_eq(eval(g, g->buffers[b].bytes, syms), maxv[b], "buffer %d at %s", b, bindings[s]);
        free(maxv);
    }
    return nb;
}

/* Outputs are never overwritten: nothing else is written to an output's
 * buffer after it. */
static void check_outputs_kept(const Graph *g) {
    for (int o = 0; o < g->noutputs; o++) {
        const Node *out = g->outputs[o].node;
        if (out->ann.buffer < 0) continue;
        const Node *r = root_of(g, out);
        for (int j = 0; j < g->nnodes; j++) {
            const Node *x = g->nodes[j];
            if (x->ann.buffer == out->ann.buffer && root_of(g, x) != r)
                cr_assert(pos(g, x) < pos(g, r), "output %s is overwritten by node %d", g->outputs[o].name,
                          j);
        }
    }
}

/* ---- tests -------------------------------------------------------------- */

/* A chain of GEMMs ping-pongs between two buffers (the output takes a free
 * one, since nothing is written after it). */
Test(memplan, gemm_chain_ping_pong) {
    char src[8192];
    int len = snprintf(src, sizeof src, "model chain {\n  dim S <= 512\n  input x : f32[S, 64]\n");
    for (int i = 0; i < 12; i++)
        len += snprintf(src + len, sizeof src - (size_t)len, "  param w%d : f32[64, 64]\n", i);
    len += snprintf(src + len, sizeof src - (size_t)len, "  let h0 = matmul(x, w0)\n");
    for (int i = 1; i < 12; i++)
        len += snprintf(src + len, sizeof src - (size_t)len, "  let h%d = matmul(h%d, w%d)\n", i, i - 1, i);
    snprintf(src + len, sizeof src - (size_t)len, "  output y = h11\n}\n");
    Graph *g = compile(src);
    plan(g);
    int nb = check_plan(g);
    cr_assert(nb >= 2 && nb <= 3, "%d buffers", nb);
    check_outputs_kept(g);
    Graph *g2 = compile(src);
    pipeline(g2);
    cr_assert_leq(check_plan(g2), 3);
    check_outputs_kept(g2);
}

/* An elementwise chain: each op updates its dying operand in place (or the
 * chain fuses into one group): one buffer either way. */
Test(memplan, elementwise_chain_in_place) {
    const char *src = "model m {\n  dim B, S <= 512\n  input x : f32[B, S]\n"
                      "  let a = exp(x)\n  let b = tanh(a)\n  let c = relu(b)\n  let d = sigmoid(c)\n"
                      "  let e = neg(d)\n  output y = abs(e)\n}\n";
    Graph *g = compile(src);
    plan(g);
    cr_assert_eq(check_plan(g), 1);
    for (int i = 0; i < g->nnodes; i++)
        if (!ir_is_source(g->nodes[i])) cr_assert_eq(g->nodes[i]->ann.buffer, 0);
    Graph *g2 = compile(src);
    pipeline(g2);
    cr_assert_leq(check_plan(g2), 2);
}

/* No in-place update across a non-elementwise kernel, a size change
 * (broadcast, cast to a narrower type), or into a value read later. */
Test(memplan, in_place_only_when_legal) {
    Graph *g = compile("model m {\n  dim S <= 512\n  input x : f32[S, 64]\n"
                       "  let a = exp(x)\n"
                       "  let s = softmax(a, axis=-1)\n"     /* a dies here: not elementwise */
                       "  let r = reduce_sum(s, axes=[0])\n" /* [64] */
                       "  let t = r + x\n"                   /* r dies: smaller, broadcast */
                       "  let h = cast(t, f16)\n"            /* t dies: narrower */
                       "  let u = exp(h)\n"                  /* h read later: not in place */
                       "  output y = u * h\n}\n");
    plan(g);
    check_plan(g);
    cr_assert_neq(node(g, "s")->ann.buffer, node(g, "a")->ann.buffer);
    cr_assert_neq(node(g, "t")->ann.buffer, node(g, "r")->ann.buffer);
    cr_assert_neq(node(g, "h")->ann.buffer, node(g, "t")->ann.buffer);
    cr_assert_neq(node(g, "u")->ann.buffer, node(g, "h")->ann.buffer);
    /* the final multiply updates u or h in place (both die there, same size) */
    int yb = g->outputs[0].node->ann.buffer;
    cr_assert(yb == node(g, "u")->ann.buffer || yb == node(g, "h")->ann.buffer);
}

/* Fusion groups as dumps write them: a constant group is not planned, values
 * internal to a group get no buffer, an elementwise group updates its dying
 * operand in place, an alias group is a view of its operand's buffer. */
Test(memplan, groups_constant_internal_alias_in_place) {
    Graph *g = compile("model m {\n  dim S <= 512\n  input x : f32[S, 64]\n"
                       "  param w : f32[64, 64]\n  param b : f32[64]\n"
                       "  let wb = w * 2.0 @group(id=0, kind=\"constant\", reason=\"c\")\n"
                       "  let a = matmul(x, wb) @group(id=1, kind=\"gemm\", reason=\"g\")\n"
                       "  let t1 = exp(a) @group(id=2, kind=\"elementwise\", reason=\"e\")\n"
                       "  let t2 = t1 + b @group(id=2, kind=\"elementwise\", reason=\"e\")\n"
                       "  let r = reshape(t2, shape=[S, 8, 8]) @group(id=3, kind=\"alias\", reason=\"a\")\n"
                       "  let s = softmax(r, axis=-1) @group(id=4, kind=\"reduction\", reason=\"r\")\n"
                       "  output y = s\n}\n");
    cr_assert_eq(g->ngroups, 5);
    plan(g);
    cr_assert_eq(check_plan(g), 2);
    cr_assert_eq(node(g, "wb")->ann.buffer, -1);
    cr_assert_eq(node(g, "t1")->ann.buffer, -1);
    cr_assert_eq(node(g, "a")->ann.buffer, 0);
    cr_assert_eq(node(g, "t2")->ann.buffer, 0);
    cr_assert_eq(node(g, "r")->ann.buffer, 0);
    cr_assert_eq(node(g, "s")->ann.buffer, 1);
    check_outputs_kept(g);
}

/* In place inside an elementwise group only when every member keeps the
 * linear index: a reshape does, a transpose does not. */
Test(memplan, in_place_needs_index_preserving_group) {
    Graph *g =
        compile("model m {\n  dim S <= 512\n  input x : f32[S, S]\n  input z : f32[S, 64]\n"
                "  let a = exp(x) @group(id=0, kind=\"elementwise\", reason=\"e\")\n"
                "  let t = transpose(a, perm=[1, 0]) @group(id=1, kind=\"elementwise\", reason=\"e\")\n"
                "  let u = t + 1.0 @group(id=1, kind=\"elementwise\", reason=\"e\")\n"
                "  let b = exp(z) @group(id=2, kind=\"elementwise\", reason=\"e\")\n"
                "  let r = reshape(b, shape=[S, 8, 8]) @group(id=3, kind=\"elementwise\", reason=\"e\")\n"
                "  let c = r * 2.0 @group(id=3, kind=\"elementwise\", reason=\"e\")\n"
                "  output y = u\n  output w = c\n}\n");
    plan(g);
    check_plan(g);
    cr_assert_eq(node(g, "t")->ann.buffer, -1);
    cr_assert_eq(node(g, "r")->ann.buffer, -1);
    cr_assert_neq(node(g, "u")->ann.buffer, node(g, "a")->ann.buffer);
    cr_assert_eq(node(g, "c")->ann.buffer, node(g, "b")->ann.buffer);
}

/* Views of inputs and of constant values have no buffer; a view's readers
 * keep its root alive. */
Test(memplan, views) {
    Graph *g = compile("model m {\n  dim S <= 512\n  input x : f32[S, 64]\n  param w : f32[64, 64]\n"
                       "  let a = matmul(x, w)\n"
                       "  let v = reshape(a, shape=[S, 8, 8])\n"
                       "  let b = exp(x)\n"
                       "  let c = softmax(b, axis=-1)\n"
                       "  let d = softmax(v, axis=-1)\n" /* reads a through v, after b, c */
                       "  output y = reshape(x, shape=[S, 8, 8])\n"
                       "  output p = unsqueeze(w, axes=[0])\n"
                       "  output q = d\n  output z = c\n}\n");
    plan(g);
    check_plan(g);
    check_outputs_kept(g);
    cr_assert_eq(node(g, "v")->ann.buffer, node(g, "a")->ann.buffer);
    cr_assert_neq(node(g, "b")->ann.buffer, node(g, "a")->ann.buffer);
    cr_assert_neq(node(g, "c")->ann.buffer, node(g, "a")->ann.buffer);
    cr_assert_eq(g->outputs[0].node->ann.buffer, -1);
    cr_assert_eq(g->outputs[1].node->ann.buffer, -1);
}

/* Outputs live to the end: nothing reuses their buffers, even values that
 * could update them in place. */
Test(memplan, outputs_not_overwritten) {
    Graph *g = compile("model m {\n  dim B, S <= 512\n  input x : f32[B, S, 64]\n  param w : f32[64, 64]\n"
                       "  let o = relu(matmul(x, w))\n"
                       "  let t = o + 1.0\n" /* o's last read, same size: but o is an output */
                       "  let u = matmul(t, w)\n  let v = matmul(u, w)\n  let z = matmul(v, w)\n"
                       "  output first = o\n  output last = z\n}\n");
    plan(g);
    check_plan(g);
    check_outputs_kept(g);
    int ob = node(g, "o")->ann.buffer;
    cr_assert_geq(ob, 0);
    for (int i = node(g, "o")->id + 1; i < g->nnodes; i++)
        cr_assert_neq(g->nodes[i]->ann.buffer, ob, "node %d overwrites o's buffer", i);
}

/* Symbolic sizes.  Values whose sizes differ by a constant ([S,64] and
 * [S+1,64]) share a buffer sized by the larger, for every S; values whose
 * sizes differ symbolically ([S,S] and [S,64], which swap order at S = 64)
 * are kept in separate buffers (see same_size_class in memplan.c), and every
 * buffer is exactly as large as its largest value at S = 1 and S = 512. */
Test(memplan, symbolic_sizes) {
    Graph *g = compile("model m {\n  dim S <= 512\n  input x : f32[S, 64]\n  input row : f32[1, 64]\n"
                       "  param w : f32[64, 64]\n"
                       "  let sc = softmax(matmul(x, transpose(x, perm=[1, 0])), axis=-1)\n" /* [S,S] */
                       "  let c = matmul(sc, x)\n"                                           /* [S,64] */
                       "  let d = matmul(c, w)\n"
                       "  let e = concat(d, row, axis=0)\n" /* [S+1,64] */
                       "  let f = matmul(e, w)\n  let h = matmul(f, w)\n  let k = matmul(h, w)\n"
                       "  output y = k\n}\n");
    plan(g);
    int nb = check_plan(g);
    cr_assert_leq(nb, 4);
    bool grew = false;
    int64_t s1[] = {1}, s512[] = {512};
    for (int b = 0; b < nb; b++) {
        bool sq = false, narrow = false, plus1 = false;
        for (int i = 0; i < g->nnodes; i++) {
            const Node *n = g->nodes[i];
            if (n->ann.buffer != b) continue;
            cr_assert_eq(n->type.rank, 2);
            if (n->type.dim[1] == n->type.dim[0]) sq = true;
            if (n->type.dim[0] == dim_sym(g->dims, 0) && n->type.dim[1] == dim_const(g->dims, 64))
                narrow = true;
            if (n->type.dim[0] == dim_add(g->dims, dim_sym(g->dims, 0), dim_const(g->dims, 1))) plus1 = true;
        }
        cr_assert(!(sq && (narrow || plus1)), "buffer %d mixes symbolically different sizes", b);
        if (narrow && plus1) {
            grew = true;
            cr_assert_eq(eval(g, g->buffers[b].bytes, s1), 2 * 64 * 4);
            cr_assert_eq(eval(g, g->buffers[b].bytes, s512), 513 * 64 * 4);
        }
    }
    cr_assert(grew, "no buffer holds both an [S,64] and an [S+1,64] value");
}

/* A value nobody reads (dce disabled) still gets somewhere to be written. */
Test(memplan, dead_value_gets_scratch) {
    Graph *g =
        compile("model m {\n  dim S\n  input x : f32[S, 4]\n  let dead = exp(x)\n  output y = tanh(x)\n}\n");
    plan(g);
    check_plan(g);
    cr_assert_geq(node(g, "dead")->ann.buffer, 0);
}

/* Running the pass twice gives the same plan. */
Test(memplan, idempotent) {
    Graph *g = compile_file("examples/bert_layer.dsg");
    pipeline(g);
    int nb = g->nbuffers;
    int *ids = malloc(sizeof(int) * (size_t)g->nnodes);
    for (int i = 0; i < g->nnodes; i++)
        ids[i] = g->nodes[i]->ann.buffer;
    plan(g);
    cr_assert_eq(g->nbuffers, nb);
    for (int i = 0; i < g->nnodes; i++)
        cr_assert_eq(g->nodes[i]->ann.buffer, ids[i]);
    free(ids);
}

/* Every example: plans at -O2 (and unfused, at -O0 plus the pass) pass the
 * checker, outputs are kept, and a dump with @buffer hints compiles back to
 * the same plan. */
static void check_example(const char *path, int opt) {
    Graph *g = compile_file(path);
    if (opt == 2)
        pipeline(g);
    else
        plan(g);
    cr_assert_gt(g->nbuffers, 0, "%s: no buffers", path);
    check_plan(g);
    check_outputs_kept(g);
    char *text = test_print_dsg(g);
    Graph *g2 = fe_compile_source(A, D, "dump.dsg", text, strlen(text));
    cr_assert(g2, "%s: the dump does not compile:\n%s", path, text);
    cr_assert_eq(g2->nbuffers, g->nbuffers, "%s: buffer count differs after reparse", path);
    int j = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (ir_is_source(n)) continue;
        while (j < g2->nnodes && ir_is_source(g2->nodes[j]))
            j++;
        cr_assert_lt(j, g2->nnodes);
        cr_assert_eq(g2->nodes[j]->op, n->op);
        cr_assert_eq(g2->nodes[j]->ann.buffer, n->ann.buffer, "%s: node %d's buffer differs after reparse",
                     path, i);
        j++;
    }
    for (int b = 0; b < g->nbuffers; b++)
        cr_assert_str_eq(dim_str(g2->dims, g2->buffers[b].bytes, A),
                         dim_str(g->dims, g->buffers[b].bytes, A));
    check_plan(g2);
    free(text);
}

Test(memplan, examples) {
    glob_t gl;
    cr_assert_eq(glob("examples/*.dsg", 0, NULL, &gl), 0);
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        check_example(gl.gl_pathv[i], 0);
        check_example(gl.gl_pathv[i], 2);
    }
    globfree(&gl);
}

/* The target: BERT's planned peak is at most 60% of the naive sum. */
Test(memplan, bert_peak_ratio) {
    const char *files[] = {"examples/bert_layer.dsg", "examples/bert_layer_attention.dsg",
                           "examples/ffn_block.dsg"};
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        Graph *g = compile_file(files[f]);
        pipeline(g);
        for (size_t s = 0; s < sizeof bindings / sizeof *bindings; s++) {
            GraphStats st;
            cr_assert(pass_graph_stats(g, bind(g, bindings[s]), &st, D));
            cr_assert(st.planned);
            cr_assert_leq(st.peak_bytes_planned, st.peak_bytes_naive, "%s at %s", files[f], bindings[s]);
            if (f < 2 && strstr(bindings[s], "S=128"))
                cr_assert_leq(st.peak_bytes_planned, 0.6 * st.peak_bytes_naive,
                              "%s: planned %.0f, naive %.0f", files[f], st.peak_bytes_planned,
                              st.peak_bytes_naive);
        }
    }
    Graph *g = compile_file("examples/bert_layer.dsg");
    pipeline(g);
    GraphStats st;
    int64_t b1s128[] = {1, 128};
    cr_assert_eq(dim_sym_lookup(g->dims, "B"), 0);
    cr_assert(pass_graph_stats(g, b1s128, &st, D));
    cr_assert_leq(st.peak_bytes_planned, 0.6 * st.peak_bytes_naive);
}
