/* Algebraic simplification: identities that hold for every value.
 *
 * The rewrites, each applied only when the result has exactly the type of the
 * value it is replaced by (dtype and shape: broadcasting against a "1" can
 * widen a result, and then x*1 is not x):
 *
 *   x*1, 1*x, x/1, x-0      -> x      (floats and ints: exact)
 *   x+0, 0+x                -> x      (ints: exact; floats: see below)
 *   neg(neg(x))             -> x      (wrap-around negation is an involution too)
 *   transpose(transpose(x, p), q)  -> transpose(x, c) with c[i] = p[q[i]],
 *                              or x when c is the identity
 *   view(view(x))           -> reshape(x, final shape), or x when the shapes agree
 *                              (view = reshape, squeeze, unsqueeze: all three keep
 *                              the C-order element sequence, so any chain of them
 *                              is one reshape; squeeze(unsqueeze(x)) that cancel
 *                              is the common case)
 *   cast(cast(x, a), b)     -> cast(x, b) when x's dtype -> a is exact for every
 *                              value (bool -> any, i8 -> any number, i32 -> i64,
 *                              f16/bf16 -> f32); cast(x, dtype of x) -> x.  A
 *                              cast reads only the numeric value of its operand,
 *                              so an exact intermediate changes nothing.
 *                              f32 -> f16 -> f32 rounds and is kept.
 *   reshape/squeeze/unsqueeze/cast whose result type equals x's, and transpose
 *   with the identity perm -> x
 *
 * A "1" or "0" is a scalar CONST (not a dim-valued one) whose literal is
 * exactly 1 or 0, seen through view ops (reshape(1.0, shape=[1,1]) is a tensor
 * of ones, and is what can widen the result).  x*0 is never rewritten: NaN*0
 * and inf*0 are NaN.
 *
 * The one identity that is not bit-exact is float x+0: IEEE gives -0.0 + 0.0 =
 * +0.0, so x+0 -> x can turn a +0.0 into a -0.0.  The two compare equal and
 * every comparison, sum and norm agrees; only 1/x and the sign bit can tell.
 * The spec says nothing of signed zeros; the add is removed anyway, a trade
 * ML graph compilers commonly make.
 *
 * How: one forward sweep in node order.  A node's operands are first replaced
 * through the forwarding table (so they are already simplified), then the
 * chain rules rewrite the node in place (new operand, new attribute, possibly
 * reshape for squeeze/unsqueeze) and re-infer it, keeping its type -- a chain
 * of any length folds in the one sweep -- and the identity rules may forward
 * the node to an earlier value.  No node is created, so the order stays
 * topological; forwarded nodes are dead afterwards and removed. */
#include <string.h>

#include "passes.h"

/* Re-infers n after an in-place change; true when it still type-checks with
 * the same type (the caller reverts otherwise). */
static bool retype(Graph *g, Node *n) {
    Type before = n->type;
    Diag *scratch = diag_create();
    bool ok = ir_infer(g, n, scratch) && ir_type_eq(&n->type, &before);
    diag_destroy(scratch);
    if (!ok) n->type = before;
    return ok;
}

static bool is_view(OpKind op) { return op == OP_RESHAPE || op == OP_SQUEEZE || op == OP_UNSQUEEZE; }

/* The value of a tensor every element of which is the scalar literal v: a
 * CONST (not dim-valued), possibly seen through view ops and transposes. */
static bool splat_value(const Node *n, double *v) {
    while (is_view(n->op) || n->op == OP_TRANSPOSE)
        n = n->in[0];
    if (n->op != OP_CONST || n->dval != DIM_INVALID) return false;
    *v = n->fval;
    return true;
}

static bool is_splat(const Node *n, double v) {
    double x;
    return splat_value(n, &x) && x == v;
}

/* Every value of dtype `from` is exactly representable in `to`. */
static bool cast_exact(DType from, DType to) {
    if (from == to || from == DT_BOOL) return true;
    switch (from) {
    case DT_I8: return to != DT_BOOL; /* |v| <= 128 fits every int and float format */
    case DT_I32: return to == DT_I64;
    case DT_F16:
    case DT_BF16: return to == DT_F32;
    default: return false;
    }
}

/* The permutation of a transpose, normalised; false if malformed. */
static bool perm_of(const Node *n, int64_t *p) {
    const Attr *a = ir_attr(n, "perm");
    int r = n->type.rank;
    if (!a || a->kind != AV_INTS || a->n != r) return false;
    for (int i = 0; i < r; i++)
        if ((p[i] = ir_norm_axis(a->ints[i], r)) < 0) return false;
    return true;
}

/* transpose(transpose(x, p), q) -> transpose(x, composed) in place. */
static void compose_transposes(Graph *g, Node *n, bool *changed) {
    Node *m = n->in[0];
    if (m->op != OP_TRANSPOSE) return;
    int64_t p[IR_MAX_RANK], q[IR_MAX_RANK], c[IR_MAX_RANK];
    if (!perm_of(m, p) || !perm_of(n, q)) return;
    for (int i = 0; i < n->type.rank; i++)
        c[i] = p[q[i]]; /* out[i] = m[q[i]] = x[p[q[i]]] */
    Attr *a = (Attr *)ir_attr(n, "perm");
    Attr saved = *a;
    int64_t *ints = arena_alloc(g->arena, sizeof(int64_t) * (size_t)(n->type.rank ? n->type.rank : 1));
    memcpy(ints, c, sizeof(int64_t) * (size_t)n->type.rank);
    a->ints = ints;
    n->in[0] = m->in[0];
    if (retype(g, n)) {
        *changed = true;
    } else {
        *a = saved;
        n->in[0] = m;
    }
}

/* view(view(x)) -> x when the types agree (returned), else reshape(x, shape)
 * in place (n returned).  A reshape keeps its shape
 * attribute; a squeeze or unsqueeze becomes a reshape to its own type, which
 * must print as DSG: a dim with min/max/floor division is written as -1
 * (at most one), and the re-inferred type must come back the same. */
static Node *compose_views(Graph *g, Node *n, bool *changed) {
    Node *m = n->in[0];
    if (!is_view(m->op)) return n;
    Node *x = m->in[0];
    if (ir_type_eq(&n->type, &x->type)) return x;
    if (n->op == OP_RESHAPE) {
        n->in[0] = x;
        if (retype(g, n))
            *changed = true;
        else
            n->in[0] = m;
        return n;
    }
    DimId *shape = arena_alloc(g->arena, sizeof(DimId) * (size_t)(n->type.rank ? n->type.rank : 1));
    int holes = 0;
    for (int i = 0; i < n->type.rank; i++) {
        shape[i] = n->type.dim[i];
        if (dim_has_opaque(g->dims, shape[i])) shape[i] = dim_const(g->dims, -1), holes++;
    }
    if (holes > 1) return n;
    Node saved = *n;
    n->op = OP_RESHAPE;
    n->in[0] = x;
    n->attrs = NULL;
    n->nattrs = 0;
    Attr *a = ir_attr_set(g, n, "shape", AV_DIMS, n->loc);
    a->n = n->type.rank;
    a->dims = shape;
    if (retype(g, n)) {
        *changed = true;
    } else {
        saved.in[0] = m;
        *n = saved;
    }
    return n;
}

/* cast(cast(x, a), b) -> cast(x, b) in place when x -> a is exact. */
static void compose_casts(Graph *g, Node *n, bool *changed) {
    Node *m = n->in[0];
    if (m->op != OP_CAST || !cast_exact(m->in[0]->type.dtype, m->type.dtype)) return;
    n->in[0] = m->in[0];
    if (retype(g, n))
        *changed = true;
    else
        n->in[0] = m;
}

/* x if it has n's type, else NULL. */
static Node *same(const Node *n, Node *x) { return x && ir_type_eq(&x->type, &n->type) ? x : NULL; }

/* The earlier value n equals, or n. */
static Node *identity(Node *n) {
    Node *a = n->nin > 0 ? n->in[0] : NULL, *b = n->nin > 1 ? n->in[1] : NULL, *r = NULL;
    switch (n->op) {
    case OP_MUL:
        r = is_splat(b, 1) ? same(n, a) : NULL;
        if (!r && is_splat(a, 1)) r = b;
        break;
    case OP_ADD:
        r = is_splat(b, 0) ? same(n, a) : NULL;
        if (!r && is_splat(a, 0)) r = b;
        break;
    case OP_SUB: r = is_splat(b, 0) ? a : NULL; break;
    case OP_DIV: r = is_splat(b, 1) ? a : NULL; break;
    case OP_NEG: r = a->op == OP_NEG ? a->in[0] : NULL; break;
    case OP_RESHAPE:
    case OP_SQUEEZE:
    case OP_UNSQUEEZE:
    case OP_CAST: r = a; break; /* kept only if the types agree, below */
    case OP_TRANSPOSE: {
        int64_t p[IR_MAX_RANK];
        bool id = perm_of(n, p);
        for (int i = 0; id && i < n->type.rank; i++)
            id = p[i] == i;
        r = id ? a : NULL;
        break;
    }
    default: break;
    }
    r = same(n, r);
    return r ? r : n;
}

/* Requires: a verified graph without fusion groups.
 * Guarantees: the rewrites above are applied wherever they match (chains
 * folded completely in one run); every changed node is re-inferred with its
 * type unchanged; outputs keep their names and types; the values that became
 * dead are removed (by dce's sweep); results are unchanged (up to the sign of
 * a float zero from x+0). */
bool pass_simplify(Graph *g, Diag *d) {
    if (g->ngroups > 0) return true; /* runs before fusion only */
    Node **fwd = arena_alloc(g->arena, sizeof(Node *) * (size_t)(g->nnodes ? g->nnodes : 1));
    bool changed = false;
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        fwd[i] = n;
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] && fwd[n->in[k]->id] != n->in[k]) n->in[k] = fwd[n->in[k]->id], changed = true;
        if (ir_is_source(n)) continue;
        Node *r = n;
        switch (n->op) {
        case OP_TRANSPOSE: compose_transposes(g, n, &changed); break;
        case OP_RESHAPE:
        case OP_SQUEEZE:
        case OP_UNSQUEEZE: r = compose_views(g, n, &changed); break;
        case OP_CAST: compose_casts(g, n, &changed); break;
        default: break;
        }
        if (r == n) r = identity(n);
        if (r != n) fwd[i] = r, changed = true;
    }
    for (int i = 0; i < g->noutputs; i++)
        g->outputs[i].node = fwd[g->outputs[i].node->id];
    return changed ? pass_dce(g, d) : true;
}
