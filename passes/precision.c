/* Precision assignment: GEMMs and convolutions in f16, bf16 or int8.
 *
 * The pass expresses a lower precision with ordinary DSG operations, so
 *  - the reference interpreter executes the quantised semantics exactly, by
 *    construction, and every backend is checked against it as for any model;
 *  - every dump is valid DSG that compiles back to the same graph;
 *  - fusion places the casts and the (de)quantisation arithmetic in the
 *    neighbouring kernels, and what depends on weights alone (cast or
 *    quantised weights and their scales) in load-time constant groups, so
 *    weights are converted once and stored narrow.
 * docs/precision.md gives the exact arithmetic; in short:
 *
 *   f16/bf16:  y = cast(op(cast(x, h), cast(w, h), cast(b, h)), f32)
 *     for op = linear, conv2d, or matmul with a constant right operand.  Spec
 *     section 4: h computes as if in f32 and rounds when stored, so the dot
 *     products accumulate in f32 (double in the interpreter) and only the
 *     operands and the result are rounded.
 *
 *   int8 (linear only):
 *     q(v, s)  = cast(t + where(less(t, 0), -0.5, 0.5), i8),  t = clip(v / s, -127, 127)
 *                (cast truncates toward zero: round half away from zero)
 *     sw = maximum(reduce_max(abs(w), axes=[1], keepdims), 1e-30) / 127   [N, 1]
 *     sx = maximum(reduce_max(abs(x), axes=[-1], keepdims), 1e-30) / 127  [..., 1]
 *     acc = linear(cast(q(x, sx), i32), cast(q(w, sw), i32))             exact in i32
 *     y = cast(acc, f32) * sx * reshape(sw, [N]) (+ b)
 *     Weights: symmetric, per output channel; activations: dynamic, per row,
 *     or with calibrated ranges (PrecisionRequest.act_absmax) a static
 *     per-tensor scale sx = f32(max(r, 1e-30) / 127) as a literal.
 *     |acc| <= K * 127^2 < 2^31 when K <= PREC_I8_MAX_K; a larger or
 *     symbolic K keeps the op f32.
 *
 * What stays f32: reductions, softmax, layernorm/rmsnorm (their inputs and
 * statistics), elementwise ops (the GEMM result is cast back to f32 at once,
 * so they compute in f32), matmuls of two activations (attention: casts
 * between its matmuls would break the fused attention kernel), model inputs
 * and outputs.  int8 applies to linear only; conv2d and constant-weight
 * matmuls keep f32 under int8.
 *
 * Candidates are the GEMMs whose operands are f32 and whose weight (the
 * second operand) is constant: a param or computed from params and literals.
 * They are numbered in node order; `@precision(dtype)` on a candidate (a let
 * or output naming it) overrides the requested default, and the accuracy
 * guard forces candidates back to f32 by number (PrecisionRequest.keep_f32).
 * Every candidate gets `@precision(dtype)` with the precision it got, so the
 * final assignment is visible in dumps, and a dump recompiles to itself: a
 * converted op no longer has f32 operands, and a kept one says f32.
 *
 * With no request (or f32) and no hint the pass changes nothing.
 *
 * How: one forward sweep that builds the new node order; the candidate node
 * itself becomes the low-precision op (its hints stay) with the new operand
 * nodes placed before it and the cast back after it, which takes over the
 * candidate's users, outputs and name.  Casts and quantisations of one value
 * are shared by every candidate reading it (so a fused QKV still reads one
 * input). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "build.h"
#include "passes.h"
#include "precision.h"

static const char *const prec_names[DT_COUNT] = {
    [DT_F32] = "f32", [DT_F16] = "f16", [DT_BF16] = "bf16", [DT_I8] = "int8"};

const char *pass_precision_name(DType t) { return t < DT_COUNT && prec_names[t] ? prec_names[t] : "?"; }

bool pass_precision_from_name(const char *s, DType *out) {
    for (int t = 0; t < DT_COUNT; t++)
        if (prec_names[t] && strcmp(prec_names[t], s) == 0) {
            *out = (DType)t;
            return true;
        }
    return false;
}

typedef struct {
    const Node *src;
    int kind;    /* DType of a cast, or -1 for the int8 quantisation */
    float scale; /* the quantisation's static scale, 0: dynamic */
    Node *val, *sx;
} Memo;

typedef struct {
    Builder b; /* the new node order (passes/build.h) */
    Memo *memo;
    int nmemo;
    size_t memocap;
} Cx;

static Node *mk(Cx *c, OpKind op, Node *a, Node *b, Node *e) { return pb_new(&c->b, op, a, b, e); }
static Node *fin(Cx *c, Node *n) { return pb_place(&c->b, n); }
static Node *op2(Cx *c, OpKind op, Node *a, Node *b) { return pb_op(&c->b, op, a, b); }
static Node *lit(Cx *c, double v) { return pb_scalar(&c->b, DT_F32, v); }
static Node *cast(Cx *c, Node *x, DType dt) { return pb_cast(&c->b, x, dt); }

static Memo *memo_find(Cx *c, const Node *src, int kind, float scale) {
    for (int i = 0; i < c->nmemo; i++)
        if (c->memo[i].src == src && c->memo[i].kind == kind && c->memo[i].scale == scale) return &c->memo[i];
    return NULL;
}

static void memo_put(Cx *c, const Node *src, int kind, float scale, Node *val, Node *sx) {
    if (c->nmemo == (int)c->memocap) {
        size_t cap = c->memocap ? 2 * c->memocap : 8;
        c->memo = arena_grow(c->b.g->arena, c->memo, sizeof(Memo) * c->memocap, sizeof(Memo) * cap);
        c->memocap = cap;
    }
    c->memo[c->nmemo++] = (Memo){src, kind, scale, val, sx};
}

/* cast(x, dt), shared by every candidate that reads x. */
static Node *cast_shared(Cx *c, Node *x, DType dt) {
    if (!x || x->type.dtype == dt) return x;
    Memo *m = memo_find(c, x, dt, 0);
    if (m) return m->val;
    Node *v = cast(c, x, dt);
    memo_put(c, x, dt, 0, v, NULL);
    return v;
}

/* maximum(reduce_max(abs(v), axes=[axis], keepdims=true), 1e-30) / 127 */
static Node *absmax_scale(Cx *c, Node *v, int64_t axis) {
    Node *r = mk(c, OP_REDUCE_MAX, op2(c, OP_ABS, v, NULL), NULL, NULL);
    Attr *ax = ir_attr_set(c->b.g, r, "axes", AV_INTS, c->b.loc);
    ax->n = 1;
    ax->ints = arena_alloc(c->b.g->arena, sizeof(int64_t));
    ax->ints[0] = axis;
    ir_attr_set(c->b.g, r, "keepdims", AV_BOOL, c->b.loc)->b = true;
    return op2(c, OP_DIV, op2(c, OP_MAXIMUM, fin(c, r), lit(c, 1e-30)), lit(c, 127));
}

/* cast(t + where(less(t, 0), -0.5, 0.5), i8), t = clip(v / s, -127, 127) */
static Node *quantize(Cx *c, Node *v, Node *s) {
    Node *q = fin(c, mk(c, OP_CLIP, op2(c, OP_DIV, v, s), lit(c, -127), lit(c, 127)));
    Node *half = fin(c, mk(c, OP_WHERE, op2(c, OP_LESS, q, lit(c, 0)), lit(c, -0.5), lit(c, 0.5)));
    return cast(c, op2(c, OP_ADD, q, half), DT_I8);
}

/* ---- candidates ------------------------------------------------------------ */

static bool fixed_shape(const Graph *g, const Type *t) {
    int64_t v;
    for (int i = 0; i < t->rank; i++)
        if (!dim_is_const(g->dims, t->dim[i], &v)) return false;
    return true;
}

static bool is_candidate(const Node *n, const bool *konst) {
    if (n->op != OP_LINEAR && n->op != OP_MATMUL && n->op != OP_CONV2D) return false;
    for (int k = 0; k < n->nin; k++)
        if (n->in[k] && n->in[k]->type.dtype != DT_F32) return false;
    const Node *w = n->in[1];
    return w->op == OP_PARAM || (w->id >= 0 && konst[w->id]);
}

static void set_hint(Cx *c, Node *n, DType dt) {
    for (int i = 0; i < n->nhints; i++)
        if (strcmp(n->hints[i].name, "precision") == 0) {
            n->hints[i].args[0].dt = dt;
            return;
        }
    Attr *a = arena_alloc(c->b.g->arena, sizeof(Attr));
    *a = (Attr){.name = "dtype", .kind = AV_DTYPE, .loc = n->loc, .dt = dt};
    n->hints = arena_grow(c->b.g->arena, n->hints, sizeof(Hint) * (size_t)n->nhints,
                          sizeof(Hint) * (size_t)(n->nhints + 1));
    n->hints[n->nhints++] = (Hint){.name = "precision", .loc = n->loc, .nargs = 1, .args = a};
}

/* The casts back: y = cast(n, f32) takes over n's users (via repl), name. */
static Node *take_over(Node *n, Node *y) {
    y->name = n->name;
    n->name = NULL;
    return y;
}

static Node *lower_half(Cx *c, Node *n, DType dt) {
    for (int k = 0; k < n->nin; k++)
        if (n->in[k]) n->in[k] = cast_shared(c, n->in[k], dt);
    fin(c, n);
    return take_over(n, cast(c, n, DT_F32));
}

/* absmax > 0: the calibrated static scale max(absmax, 1e-30) / 127, rounded
 * to f32, as a literal; else the dynamic per-row scale. */
static Node *lower_int8(Cx *c, Node *n, double absmax) {
    Node *x = n->in[0], *w = n->in[1], *b = n->in[2];
    float s = absmax > 0 ? (float)(fmax(absmax, 1e-30) / 127.0) : 0;
    Memo *m = memo_find(c, x, -1, s);
    if (!m) {
        Node *sx = s > 0 ? lit(c, s) : absmax_scale(c, x, -1);
        memo_put(c, x, -1, s, cast(c, quantize(c, x, sx), DT_I32), sx);
        m = &c->memo[c->nmemo - 1];
    }
    Node *xi = m->val, *sx = m->sx;
    Node *sw = absmax_scale(c, w, 1);
    Node *wi = cast(c, quantize(c, w, sw), DT_I32);
    Node *swr = mk(c, OP_RESHAPE, sw, NULL, NULL);
    Attr *sh = ir_attr_set(c->b.g, swr, "shape", AV_DIMS, c->b.loc);
    sh->n = 1;
    sh->dims = arena_alloc(c->b.g->arena, sizeof(DimId));
    sh->dims[0] = w->type.dim[0];
    fin(c, swr);
    n->in[0] = xi;
    n->in[1] = wi;
    n->in[2] = NULL;
    fin(c, n);
    Node *y = op2(c, OP_MUL, op2(c, OP_MUL, cast(c, n, DT_F32), sx), swr);
    if (b) y = op2(c, OP_ADD, y, b);
    return take_over(n, y);
}

/* The precision a candidate gets, and why it is not what was asked. */
static DType choose(const Graph *g, const Node *n, DType want, const char **why) {
    *why = NULL;
    if (want != DT_I8) return want;
    if (n->op != OP_LINEAR) {
        *why = "int8 applies to linear only";
        return DT_F32;
    }
    int64_t k;
    if (!dim_is_const(g->dims, n->in[1]->type.dim[1], &k) || k > PREC_I8_MAX_K) {
        *why = "int8 needs a constant K <= 133144 (exact i32 accumulation)";
        return DT_F32;
    }
    return DT_I8;
}

static void label(const Node *n, char *buf, size_t size) {
    const Node *w = n->in[1];
    const char *wn = w->op == OP_PARAM ? w->name : NULL;
    snprintf(buf, size, "%s%s%s%s%s (line %d:%d)", ir_op_name(n->op), wn ? " " : "", wn ? wn : "",
             n->name ? " -> " : "", n->name ? n->name : "", n->loc.line, n->loc.col);
}

/* Requires: a verified graph.  Guarantees: candidates converted as described
 * at the top, each with @precision(dtype); g->precision's candidate table
 * filled; with no request and no @precision hint, the graph unchanged. */
bool pass_precision(Graph *g, Diag *d) {
    PrecisionRequest *req = g->precision;
    DType dflt = req ? req->dtype : DT_F32;
    if (req) req->ncand = 0;
    int nn = g->nnodes;
    bool *konst = arena_alloc(g->arena, sizeof(bool) * (size_t)(nn + 1));
    Node **repl = arena_alloc(g->arena, sizeof(Node *) * (size_t)(nn + 1));
    bool any = dflt != DT_F32;
    for (int i = 0; i < nn; i++) {
        const Node *n = g->nodes[i];
        if (ir_hint(n, "precision")) any = true;
        bool kn = !ir_is_source(n) && fixed_shape(g, &n->type);
        for (int k = 0; k < n->nin && kn; k++) {
            const Node *o = n->in[k];
            if (o)
                kn = (o->op == OP_PARAM && fixed_shape(g, &o->type)) ||
                     (o->op == OP_CONST && o->dval == DIM_INVALID) || konst[o->id];
        }
        konst[i] = kn;
    }
    if (!any && !req) return true;
    Cx c = {.b = {.g = g, .d = d, .pass = "precision", .ok = true}};
    int ordinal = 0;
    for (int i = 0; i < nn && c.b.ok; i++) {
        Node *n = g->nodes[i];
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] && n->in[k]->id >= 0 && n->in[k]->id < nn && g->nodes[n->in[k]->id] == n->in[k] &&
                repl[n->in[k]->id])
                n->in[k] = repl[n->in[k]->id];
        if (!is_candidate(n, konst)) {
            const Hint *h = ir_hint(n, "precision");
            if (h && h->args[0].dt != DT_F32 && n->op != OP_LINEAR && n->op != OP_MATMUL &&
                n->op != OP_CONV2D)
                diag_warning(d, h->loc,
                             "@precision(%s) on %s has no effect: only GEMMs and convolutions with "
                             "constant weights change precision",
                             dtype_name(h->args[0].dt), ir_op_name(n->op));
            VEC_PUSH(g->arena, c.b.order, c.b.n, c.b.cap, n);
            continue;
        }
        const Hint *h = ir_hint(n, "precision");
        DType want = h ? h->args[0].dt : dflt;
        if (req && req->keep_f32 && ordinal < req->nkeep && req->keep_f32[ordinal]) want = DT_F32;
        const char *why;
        DType got = choose(g, n, want, &why);
        if (req && req->ncand < PREC_MAX_CAND) {
            req->cand_input[req->ncand] = n->in[0];
            PrecisionCand *pc = &req->cand[req->ncand++];
            label(n, pc->label, sizeof pc->label);
            pc->chosen = got;
            pc->wanted = want;
            pc->why = why;
        }
        ordinal++;
        c.b.loc = n->loc;
        set_hint(&c, n, got);
        n->ann.precision = got;
        n->ann.has_precision = true;
        if (got == DT_F32) {
            VEC_PUSH(g->arena, c.b.order, c.b.n, c.b.cap, n);
            continue;
        }
        double absmax =
            req && req->act_absmax && ordinal - 1 < req->nabsmax ? req->act_absmax[ordinal - 1] : 0;
        repl[i] = got == DT_I8 ? lower_int8(&c, n, absmax) : lower_half(&c, n, got);
    }
    if (!c.b.ok) return false;
    for (int i = 0; i < g->noutputs; i++) {
        Node *o = g->outputs[i].node;
        if (o->id >= 0 && o->id < nn && g->nodes[o->id] == o && repl[o->id]) g->outputs[i].node = repl[o->id];
    }
    g->nodes = c.b.order;
    g->nnodes = c.b.n;
    g->nodecap = c.b.cap;
    ir_renumber(g);
    return true;
}
