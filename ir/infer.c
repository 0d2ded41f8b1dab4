/* Shape and dtype inference: ir_infer.
 *
 * Every graph node gets its type here, once, from its operands' types and its
 * attributes.  The frontend calls ir_infer as it builds each node, and the
 * verifier can call it again to check that a pass kept types consistent, so
 * this file is the single statement of what each operator accepts and what it
 * returns (spec section 5; otherwise numpy, then ONNX opset 17+).
 *
 * The work for one node is always the same four steps:
 *   1. the signature, from the operator schema in ir.c: operand count, required
 *      operands and attributes present, attribute kinds right;
 *   2. defaults: every attribute the schema leaves optional is written into the
 *      node explicitly (reduce axes = all axes, transpose perm = reversed,
 *      conv stride = [1,1], ...), so no later stage repeats a default.  Values
 *      the user wrote are kept as written (negative axes stay negative;
 *      consumers normalise with ir_norm_axis);
 *   3. the operator's rule: one function per family (elementwise, reduction,
 *      normalisation, linear algebra, each layout op, convolution/pooling,
 *      attention), which validates attribute values, dtypes and shapes and
 *      computes the result type;
 *   4. a final check that no dimension expression overflowed: dim arithmetic
 *      returns DIM_INVALID instead of failing, and this is where it is
 *      reported.
 *
 * Shapes are symbolic (dim.h): entries are interned canonical polynomials, so
 * "same dimension" is DimId equality.  Broadcasting therefore never guesses:
 * two entries broadcast when they are the same expression or one is the
 * constant 1; B against 768, or B against S, is an error even though a
 * particular binding might make it work.  Where a shape needs min, max or
 * floor division (slice, conv, pooling) the expressions stay exact; the
 * helpers below drop a min/max whose outcome is provable from the fact that
 * every dim symbol is non-negative, which keeps the common results readable
 * (`S-1`, `max(0, S-1)`) without ever making them wrong.
 *
 * Errors name the operator and print the types involved
 * (`add: cannot broadcast f32[B,S,768] and f32[B,512]`); errors about an
 * attribute value point at the attribute. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert.h"
#include "ir.h"

/* Context of one ir_infer call. */
typedef struct {
    Graph *g;
    DimTable *t;
    Node *n;
    Diag *d;
    const char *op;
} Cx;

typedef bool (*Rule)(Cx *c, Type *out);

/* ---- messages ------------------------------------------------------------ */

static bool fail(Cx *c, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reports "op: message" and returns false. */
static bool fail(Cx *c, Loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    va_end(ap);
    DSC_ASSERT(msg && "out of memory");
    diag_error(c->d, loc, "%s: %s", c->op, msg);
    free(msg);
    return false;
}

static Loc attr_loc(const Cx *c, const Attr *a) { return a && a->loc.line ? a->loc : c->n->loc; }
static const char *ty(Cx *c, const Type *t) { return ir_type_str(c->g, t); }
static const char *dstr(Cx *c, DimId d) { return dim_str(c->t, d, c->g->arena); }
static const char *shape_str(Cx *c, const DimId *d, int n) { return dim_shape_str(c->t, d, n, c->g->arena); }

static const char *ints_str(Cx *c, const int64_t *v, int n) {
    size_t cap = 2 + (size_t)n * 21, len = 0;
    char *s = arena_alloc(c->g->arena, cap + 1);
    s[len++] = '[';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%" PRId64, i ? "," : "", v[i]);
    s[len++] = ']';
    s[len] = 0;
    return s;
}

/* ---- small accessors ------------------------------------------------------- */

static const Type *ty_in(const Cx *c, int i) { return &c->n->in[i]->type; }
static const Attr *attr(const Cx *c, const char *name) { return ir_attr(c->n, name); }
static DimId cst(Cx *c, int64_t v) { return dim_const(c->t, v); }
static bool is_one(Cx *c, DimId d) { return d == cst(c, 1); }

/* Defaults: written only when the user gave no value. */
static Attr *dflt(Cx *c, const char *name, AttrKind kind) {
    if (ir_attr(c->n, name)) return NULL;
    return ir_attr_set(c->g, c->n, name, kind, c->n->loc);
}
static void dflt_int(Cx *c, const char *name, int64_t v) {
    Attr *a = dflt(c, name, AV_INT);
    if (a) a->i = v;
}
static void dflt_float(Cx *c, const char *name, double v) {
    Attr *a = dflt(c, name, AV_FLOAT);
    if (a) a->f = v;
}
static void dflt_bool(Cx *c, const char *name, bool v) {
    Attr *a = dflt(c, name, AV_BOOL);
    if (a) a->b = v;
}
static void dflt_string(Cx *c, const char *name, const char *v) {
    Attr *a = dflt(c, name, AV_STRING);
    if (a) a->s = arena_strdup(c->g->arena, v);
}
static void dflt_ints(Cx *c, const char *name, const int64_t *v, int n) {
    Attr *a = dflt(c, name, AV_INTS);
    if (!a) return;
    a->n = n;
    a->ints = arena_alloc(c->g->arena, sizeof(int64_t) * (size_t)(n ? n : 1));
    if (n) memcpy(a->ints, v, sizeof(int64_t) * (size_t)n);
}
/* [0, 1, ..., n-1] */
static void dflt_iota(Cx *c, const char *name, int n) {
    int64_t v[IR_MAX_RANK];
    for (int i = 0; i < n && i < IR_MAX_RANK; i++)
        v[i] = i;
    dflt_ints(c, name, v, n);
}

/* ---- dtype checks -------------------------------------------------------- */

static bool need_float(Cx *c, const Type *t) {
    if (dtype_is_float(t->dtype)) return true;
    return fail(c, c->n->loc, "expects a floating-point tensor, got %s", ty(c, t));
}

static bool need_numeric(Cx *c, const Type *t) {
    if (t->dtype != DT_BOOL) return true;
    return fail(c, c->n->loc, "expects a numeric tensor, got %s", ty(c, t));
}

/* `other` (operand `what`, may be "") must have x's dtype. */
static bool same_dtype(Cx *c, const Type *x, const char *what, const Type *other) {
    if (other->dtype == x->dtype) return true;
    return fail(c, c->n->loc, "dtype mismatch: %s and %s%s%s", ty(c, x), what, *what ? " " : "",
                ty(c, other));
}

/* ---- shape helpers ----------------------------------------------------------- */

/* numpy broadcasting of two shapes (aligned from the right) into o. */
static bool bcast(Cx *c, const DimId *a, int ra, const DimId *b, int rb, DimId *o, int *ro) {
    DimId one = cst(c, 1), tmp[IR_MAX_RANK];
    int r = ra > rb ? ra : rb;
    if (r > IR_MAX_RANK) return false;
    for (int i = 0; i < r; i++) {
        DimId x = i < ra ? a[ra - 1 - i] : one, y = i < rb ? b[rb - 1 - i] : one;
        if (x == y || y == one)
            tmp[r - 1 - i] = x;
        else if (x == one)
            tmp[r - 1 - i] = y;
        else
            return false;
    }
    memcpy(o, tmp, sizeof(DimId) * (size_t)r);
    *ro = r;
    return true;
}

/* True when shape a broadcasts to exactly `target` (one-directional). */
static bool bcast_to(Cx *c, const DimId *a, int ra, const DimId *target, int rt) {
    if (ra > rt) return false;
    for (int i = 1; i <= ra; i++)
        if (a[ra - i] != target[rt - i] && !is_one(c, a[ra - i])) return false;
    return true;
}

/* Broadcasts the non-NULL operands of the node into out's shape; on failure
 * reports a pair of operands that conflict (one always exists: a position
 * fails only when two operands disagree there). */
static bool bcast_operands(Cx *c, Type *out) {
    Node **in = c->n->in;
    out->rank = 0;
    for (int i = 0; i < c->n->nin; i++) {
        if (!in[i]) continue;
        if (bcast(c, out->dim, out->rank, in[i]->type.dim, in[i]->type.rank, out->dim, &out->rank)) continue;
        for (int j = 0; j < i; j++) {
            DimId tmp[IR_MAX_RANK];
            int r;
            if (in[j] &&
                !bcast(c, in[j]->type.dim, in[j]->type.rank, in[i]->type.dim, in[i]->type.rank, tmp, &r))
                return fail(c, c->n->loc, "cannot broadcast %s and %s", ty(c, &in[j]->type),
                            ty(c, &in[i]->type));
        }
        DSC_UNREACHABLE();
    }
    return true;
}

/* Validates a single axis attribute against `rank` and normalises it. */
static bool one_axis(Cx *c, const char *name, int rank, const Type *x, int *out) {
    const Attr *a = attr(c, name);
    *out = ir_norm_axis(a->i, rank);
    if (*out >= 0) return true;
    return fail(c, attr_loc(c, a), "%s %" PRId64 " is out of range for rank %d: %s", name, a->i, rank,
                ty(c, x));
}

/* Validates an axes list against `rank` (`what` names it in messages: "rank"
 * or "result rank") and marks the normalised axes in mask. */
static bool axes_mask(Cx *c, const Attr *a, int rank, const char *what, const Type *x, bool *mask) {
    memset(mask, 0, sizeof(bool) * IR_MAX_RANK);
    for (int i = 0; i < a->n; i++) {
        int ax = ir_norm_axis(a->ints[i], rank);
        if (ax < 0)
            return fail(c, attr_loc(c, a), "axis %" PRId64 " is out of range for %s %d: %s", a->ints[i], what,
                        rank, ty(c, x));
        if (mask[ax])
            return fail(c, attr_loc(c, a), "%s %s name axis %d twice", a->name, ints_str(c, a->ints, a->n),
                        ax);
        mask[ax] = true;
    }
    return true;
}

/* A list attribute of exactly `count` integers, each >= min. */
static bool int_list(Cx *c, const char *name, int count, int64_t min, const char *desc) {
    const Attr *a = attr(c, name);
    bool ok = a->n == count;
    for (int i = 0; ok && i < a->n; i++)
        ok = a->ints[i] >= min;
    if (ok) return true;
    return fail(c, attr_loc(c, a), "%s must be %s, got %s", name, desc, ints_str(c, a->ints, a->n));
}

static bool rank_ok(Cx *c, int rank) {
    if (rank <= IR_MAX_RANK) return true;
    return fail(c, c->n->loc, "result rank %d exceeds the maximum of %d", rank, IR_MAX_RANK);
}

/* Proofs from "every dim symbol is >= 0". */
static bool ge(Cx *c, DimId a, DimId b) { return dim_nonneg(c->t, dim_sub(c->t, a, b)); }
static DimId smax(Cx *c, DimId a, DimId b) { return ge(c, a, b) ? a : ge(c, b, a) ? b : dim_max(c->t, a, b); }

/* floor(x / k) for a constant k > 0 (dim_floordiv simplifies (k*p + c)/k). */
static DimId floordiv_k(Cx *c, DimId x, int64_t k) {
    if (k == 1 || x == DIM_INVALID) return x;
    return dim_floordiv(c->t, x, cst(c, k));
}

/* ---- elementwise ----------------------------------------------------------- */

enum {
    EW_NUM = 1,  /* numeric operands (no bool) */
    EW_FLT = 2,  /* floating-point operands only */
    EW_BOOL = 4, /* result is bool */
    EW_COND = 8, /* operand 0 is a bool condition; the values follow */
};

static const unsigned char ew_flags[OP_COUNT] = {
    [OP_ADD] = EW_NUM,
    [OP_SUB] = EW_NUM,
    [OP_MUL] = EW_NUM,
    [OP_DIV] = EW_NUM,
    [OP_POW] = EW_NUM,
    [OP_MAXIMUM] = EW_NUM,
    [OP_MINIMUM] = EW_NUM,
    [OP_NEG] = EW_NUM,
    [OP_ABS] = EW_NUM,
    [OP_RELU] = EW_NUM,
    [OP_CLIP] = EW_NUM,
    [OP_EXP] = EW_FLT,
    [OP_LOG] = EW_FLT,
    [OP_SQRT] = EW_FLT,
    [OP_RSQRT] = EW_FLT,
    [OP_RECIPROCAL] = EW_FLT,
    [OP_TANH] = EW_FLT,
    [OP_SIGMOID] = EW_FLT,
    [OP_ERF] = EW_FLT,
    [OP_SILU] = EW_FLT,
    [OP_GELU] = EW_FLT,
    [OP_LESS] = EW_NUM | EW_BOOL,
    [OP_GREATER] = EW_NUM | EW_BOOL,
    [OP_EQUAL] = EW_BOOL,
    [OP_WHERE] = EW_COND,
    [OP_CAST] = 0,
};

static bool infer_elementwise(Cx *c, Type *out) {
    Node *n = c->n;
    unsigned f = ew_flags[n->op];
    int first = 0;
    if (f & EW_COND) {
        if (ty_in(c, 0)->dtype != DT_BOOL)
            return fail(c, n->loc, "condition must be bool, got %s", ty(c, ty_in(c, 0)));
        first = 1;
    }
    const Type *x = ty_in(c, first);
    for (int i = first + 1; i < n->nin; i++)
        if (n->in[i] && !same_dtype(c, x, "", ty_in(c, i))) return false;
    if ((f & EW_FLT) && !need_float(c, x)) return false;
    if ((f & EW_NUM) && !need_numeric(c, x)) return false;
    if (!bcast_operands(c, out)) return false;
    out->dtype = (f & EW_BOOL) ? DT_BOOL : x->dtype;
    if (n->op == OP_CAST) out->dtype = attr(c, "dtype")->dt;
    if (n->op == OP_GELU) {
        dflt_string(c, "approximate", "none");
        const Attr *a = attr(c, "approximate");
        if (strcmp(a->s, "none") != 0 && strcmp(a->s, "tanh") != 0)
            return fail(c, attr_loc(c, a), "approximate must be \"none\" or \"tanh\", got \"%s\"", a->s);
    }
    return true;
}

/* ---- reductions -------------------------------------------------------------- */

/* Without `axes` every axis is reduced; the default is written out as the full
 * list.  An explicit empty list reduces nothing (numpy axis=()). */
static bool infer_reduce(Cx *c, Type *out) {
    const Type *x = ty_in(c, 0);
    if (!(c->n->op == OP_REDUCE_MEAN ? need_float(c, x) : need_numeric(c, x))) return false;
    dflt_iota(c, "axes", x->rank);
    dflt_bool(c, "keepdims", true);
    bool mask[IR_MAX_RANK];
    if (!axes_mask(c, attr(c, "axes"), x->rank, "rank", x, mask)) return false;
    bool keep = attr(c, "keepdims")->b;
    out->dtype = x->dtype;
    out->rank = 0;
    for (int i = 0; i < x->rank; i++) {
        if (!mask[i])
            out->dim[out->rank++] = x->dim[i];
        else if (keep)
            out->dim[out->rank++] = cst(c, 1);
    }
    return true;
}

/* ---- normalisation ------------------------------------------------------------- */

static bool check_eps(Cx *c) {
    const Attr *a = attr(c, "eps");
    double v = a->kind == AV_INT ? (double)a->i : a->f;
    if (v >= 0 && isfinite(v)) return true;
    return fail(c, attr_loc(c, a), "eps must be a finite non-negative number, got %g", v);
}

static bool infer_softmax(Cx *c, Type *out) {
    const Type *x = ty_in(c, 0);
    dflt_int(c, "axis", -1);
    int ax;
    if (!need_float(c, x) || !one_axis(c, "axis", x->rank, x, &ax)) return false;
    *out = *x;
    return true;
}

/* layernorm(x, scale, bias?) and rmsnorm(x, scale): normalise over x.shape[axis:];
 * scale and bias must broadcast to that trailing shape. */
static bool infer_layernorm(Cx *c, Type *out) {
    const Type *x = ty_in(c, 0);
    dflt_int(c, "axis", -1);
    dflt_float(c, "eps", c->n->op == OP_RMSNORM ? 1e-6 : 1e-5);
    int ax;
    if (!need_float(c, x) || !one_axis(c, "axis", x->rank, x, &ax) || !check_eps(c)) return false;
    const DimId *norm = x->dim + ax;
    int nr = x->rank - ax;
    for (int i = 1; i < c->n->nin; i++) {
        if (!c->n->in[i]) continue;
        const char *what = i == 1 ? "scale" : "bias";
        const Type *p = ty_in(c, i);
        if (!same_dtype(c, x, what, p)) return false;
        if (!bcast_to(c, p->dim, p->rank, norm, nr))
            return fail(c, c->n->loc, "%s %s does not broadcast to the normalised shape %s of %s", what,
                        ty(c, p), shape_str(c, norm, nr), ty(c, x));
    }
    *out = *x;
    return true;
}

/* batchnorm(x[N,C,...], scale, bias, mean, var), each [C]. */
static bool infer_batchnorm(Cx *c, Type *out) {
    static const char *names[] = {"x", "scale", "bias", "mean", "var"};
    const Type *x = ty_in(c, 0);
    dflt_float(c, "eps", 1e-5);
    if (!need_float(c, x) || !check_eps(c)) return false;
    if (x->rank < 2) return fail(c, c->n->loc, "x must be [N,C,...] (rank >= 2), got %s", ty(c, x));
    for (int i = 1; i < 5; i++) {
        const Type *p = ty_in(c, i);
        if (!same_dtype(c, x, names[i], p)) return false;
        if (p->rank != 1 || p->dim[0] != x->dim[1])
            return fail(c, c->n->loc, "%s %s must be [%s], the channels of %s", names[i], ty(c, p),
                        dstr(c, x->dim[1]), ty(c, x));
    }
    *out = *x;
    return true;
}

/* ---- linear algebra -------------------------------------------------------------- */

/* numpy.matmul: a 1-D operand is promoted to a matrix (a: [1,K], b: [K,1])
 * and the added axis removed from the result; batch axes broadcast. */
static bool infer_matmul(Cx *c, Type *out) {
    const Type *a = ty_in(c, 0), *b = ty_in(c, 1);
    if (a->rank == 0 || b->rank == 0)
        return fail(c, c->n->loc, "operands must have rank >= 1: %s x %s", ty(c, a), ty(c, b));
    if (!same_dtype(c, a, "", b) || !need_numeric(c, a)) return false;
    DimId one = cst(c, 1);
    DimId ad[IR_MAX_RANK + 1], bd[IR_MAX_RANK + 1];
    int ra = a->rank, rb = b->rank;
    memcpy(ad + (ra == 1), a->dim, sizeof(DimId) * (size_t)ra);
    memcpy(bd, b->dim, sizeof(DimId) * (size_t)rb);
    if (ra == 1) ad[0] = one, ra = 2;
    if (rb == 1) bd[1] = one, rb = 2;
    if (ad[ra - 1] != bd[rb - 2])
        return fail(c, c->n->loc, "inner dimensions differ: %s x %s", ty(c, a), ty(c, b));
    if (!bcast(c, ad, ra - 2, bd, rb - 2, out->dim, &out->rank))
        return fail(c, c->n->loc, "cannot broadcast batch dimensions: %s x %s", ty(c, a), ty(c, b));
    if (a->rank > 1) out->dim[out->rank++] = ad[ra - 2];
    if (b->rank > 1) out->dim[out->rank++] = bd[rb - 1];
    out->dtype = a->dtype;
    return true;
}

/* linear(x[..., in], w[out, in], b[out]?) -> [..., out]. */
static bool infer_linear(Cx *c, Type *out) {
    const Type *x = ty_in(c, 0), *w = ty_in(c, 1), *b = c->n->in[2] ? ty_in(c, 2) : NULL;
    if (x->rank == 0) return fail(c, c->n->loc, "x must have rank >= 1, got %s", ty(c, x));
    if (w->rank != 2) return fail(c, c->n->loc, "w must be 2-D [out, in], got %s", ty(c, w));
    if (!same_dtype(c, x, "w", w) || (b && !same_dtype(c, x, "b", b)) || !need_numeric(c, x)) return false;
    DimId nout = w->dim[0], nin = w->dim[1];
    if (x->dim[x->rank - 1] != nin)
        return fail(c, c->n->loc, "x has %s features but w expects %s: %s, w %s",
                    dstr(c, x->dim[x->rank - 1]), dstr(c, nin), ty(c, x), ty(c, w));
    if (b && !bcast_to(c, b->dim, b->rank, &nout, 1))
        return fail(c, c->n->loc, "b %s does not match the %s outputs of w %s", ty(c, b), dstr(c, nout),
                    ty(c, w));
    *out = *x;
    out->dim[out->rank - 1] = nout;
    return true;
}

/* ---- layout -------------------------------------------------------------------- */

/* reshape(x, shape): one entry may be -1 (inferred).  An entry 0 means a
 * dimension of size 0 (numpy), NOT ONNX Reshape's "copy the input dimension"
 * (allowzero=0): DSG entries are dim expressions, so a copy is written as the
 * dim itself.  Element counts must be provably equal as canonical expressions. */
static bool infer_reshape(Cx *c, Type *out) {
    const Type *x = ty_in(c, 0);
    const Attr *s = attr(c, "shape");
    Loc loc = attr_loc(c, s);
    if (s->n > IR_MAX_RANK)
        return fail(c, loc, "shape %s has %d entries; at most %d are supported", shape_str(c, s->dims, s->n),
                    s->n, IR_MAX_RANK);
    DimId minus1 = cst(c, -1), known = cst(c, 1);
    int hole = -1;
    for (int i = 0; i < s->n; i++) {
        DimId e = s->dims[i];
        int64_t v;
        if (e == DIM_INVALID) return fail(c, loc, "dimension expression too large or complex");
        if (e == minus1) {
            if (hole >= 0)
                return fail(c, loc, "at most one -1 is allowed in shape %s", shape_str(c, s->dims, s->n));
            hole = i;
            continue;
        }
        /* A symbolic entry is refused only when it can never be positive (-S). */
        bool neg = dim_is_const(c->t, e, &v) ? v < 0 : dim_nonneg(c->t, dim_sub(c->t, cst(c, 0), e));
        if (neg)
            return fail(c, loc, "shape entry %s must be non-negative (only a single -1 is inferred): %s",
                        dstr(c, e), shape_str(c, s->dims, s->n));
        known = dim_mul(c->t, known, e);
    }
    DimId numel = ir_type_numel(c->g, x);
    if (numel == DIM_INVALID || known == DIM_INVALID)
        return fail(c, c->n->loc, "dimension expression too large or complex");
    out->dtype = x->dtype;
    out->rank = s->n;
    memcpy(out->dim, s->dims, sizeof(DimId) * (size_t)s->n);
    if (hole < 0) {
        if (numel != known)
            return fail(c, c->n->loc, "element count differs: %s (%s elements) to %s (%s elements)", ty(c, x),
                        dstr(c, numel), shape_str(c, s->dims, s->n), dstr(c, known));
        return true;
    }
    int64_t k;
    if (dim_is_const(c->t, known, &k) && k == 0)
        return fail(c, c->n->loc, "cannot infer -1 in %s: the other entries have 0 elements",
                    shape_str(c, s->dims, s->n));
    /* -1 = numel / known.  A symbolic divisor must divide exactly as a
     * polynomial; a constant divisor may leave an exact division that is
     * checked when the dims are bound ([N] to [-1,4] needs N % 4 == 0). */
    DimId q = dim_div(c->t, numel, known);
    if (q == DIM_INVALID ||
        (dim_has_opaque(c->t, q) && !dim_has_opaque(c->t, numel) && !dim_is_const(c->t, known, NULL)))
        return fail(c, c->n->loc, "cannot infer -1: %s (%s elements) is not a multiple of %s (%s elements)",
                    ty(c, x), dstr(c, numel), shape_str(c, s->dims, s->n), dstr(c, known));
    out->dim[hole] = q;
    return true;
}

/* transpose(x, perm): perm defaults to the reversed axes (numpy).  Negative
 * entries count from the end, as numpy allows. */
static bool infer_transpose(Cx *c, Type *out) {
    const Type *x = ty_in(c, 0);
    int64_t rev[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        rev[i] = x->rank - 1 - i;
    dflt_ints(c, "perm", rev, x->rank);
    const Attr *p = attr(c, "perm");
    bool seen[IR_MAX_RANK] = {0};
    bool ok = p->n == x->rank;
    for (int i = 0; ok && i < p->n; i++) {
        int ax = ir_norm_axis(p->ints[i], x->rank);
        ok = ax >= 0 && !seen[ax];
        if (ok) seen[ax] = true, out->dim[i] = x->dim[ax];
    }
    if (!ok)
        return fail(c, attr_loc(c, p), "perm %s is not a permutation of 0..%d for %s",
                    ints_str(c, p->ints, p->n), x->rank - 1, ty(c, x));
    out->dtype = x->dtype;
    out->rank = x->rank;
    return true;
}

/* concat(x0, x1, ..., axis): same dtype and rank, equal dims off the axis. */
static bool infer_concat(Cx *c, Type *out) {
    const Type *x = ty_in(c, 0);
    int ax;
    if (!one_axis(c, "axis", x->rank, x, &ax)) return false;
    *out = *x;
    for (int i = 1; i < c->n->nin; i++) {
        const Type *y = ty_in(c, i);
        if (!same_dtype(c, x, "", y)) return false;
        if (y->rank != x->rank) return fail(c, c->n->loc, "rank mismatch: %s and %s", ty(c, x), ty(c, y));
        for (int j = 0; j < x->rank; j++)
            if (j != ax && y->dim[j] != x->dim[j])
                return fail(c, c->n->loc, "shapes differ outside axis %d: %s and %s", ax, ty(c, x), ty(c, y));
        out->dim[ax] = dim_add(c->t, out->dim[ax], y->dim[ax]);
    }
    return true;
}

/* ONNX Slice length for constants: negative positions count from the end,
 * then clamp to [0,d] (step > 0) or [-1,d-1] (step < 0). */
static int64_t slice_len_const(int64_t d, int64_t s, int64_t e, int64_t st) {
    if (s < 0) s += d;
    if (e < 0) e += d;
    int64_t lo = st > 0 ? 0 : -1, hi = st > 0 ? d : d - 1;
    s = s < lo ? lo : s > hi ? hi : s;
    e = e < lo ? lo : e > hi ? hi : e;
    int64_t diff = st > 0 ? e - s : s - e;
    int64_t k = st > 0 ? st : st == INT64_MIN ? INT64_MAX : -st;
    return diff <= 0 ? 0 : (diff - 1) / k + 1;
}

#define SLICE_HUGE (INT64_C(1) << 31) /* |value| >= this: past either end of any dim */

/* The position a start or end v denotes before clamping: negative values
 * count from the end of d, and constants beyond +-2^31 stand for "past the
 * end" / "before the beginning" of any dim.  `front` says v is known to be
 * >= 0.  A non-constant v of unknown sign is wrapped exactly:
 * v + d*[v<0], with [v<0] = min(1, max(0, -v)). */
static DimId slice_pos(Cx *c, DimId v, bool front, DimId d, bool fwd) {
    DimTable *t = c->t;
    int64_t k;
    if (dim_is_const(t, v, &k)) {
        if (k >= SLICE_HUGE) return fwd ? d : dim_sub(t, d, cst(c, 1));
        if (k <= -SLICE_HUGE) return cst(c, fwd ? 0 : -1);
        return k < 0 ? dim_add(t, d, v) : v;
    }
    if (front || dim_nonneg(t, v)) return v;
    if (dim_nonneg(t, dim_sub(t, cst(c, -1), v))) return dim_add(t, d, v);
    DimId neg = dim_min(t, cst(c, 1), dim_max(t, cst(c, 0), dim_sub(t, cst(c, 0), v)));
    return dim_add(t, v, dim_mul(t, d, neg));
}

/* min of v[0..n), leaving out entries provably >= another one. */
static DimId min_of(Cx *c, const DimId *v, int n) {
    DimId r = DIM_INVALID;
    for (int i = 0; i < n; i++) {
        if (v[i] == DIM_INVALID) return DIM_INVALID;
        bool dominated = false;
        for (int j = 0; j < n && !dominated; j++)
            dominated = j != i && ge(c, v[i], v[j]) && (j < i || !ge(c, v[j], v[i]));
        if (!dominated) r = r == DIM_INVALID ? v[i] : dim_min(c->t, r, v[i]);
    }
    if (r == DIM_INVALID) /* only if the proofs were inconsistent: take the plain min */
        for (int i = 0; i < n; i++)
            r = i ? dim_min(c->t, r, v[i]) : v[0];
    return r;
}

/* Length of one sliced axis for positions s, e (see slice_pos).  ONNX clamps
 * them to [0,d] (step > 0) or [-1,d-1] (step < 0) and the length is
 * max(0, ceil((e-s)/step)).  Dropping the clamps that cannot change that
 * result, with s', e' the unclamped positions:
 *   step > 0: min(e', d) - max(s', 0)    = min(e'-s', e', d-s', d)
 *   step < 0: min(s', d-1) - max(e', -1) = min(s'-e', s'+1, d-1-e', d)
 * (a sum of mins is the min of the sums), then ceil division and max(0, .). */
static DimId slice_len_at(Cx *c, DimId d, DimId s, bool sfront, DimId e, bool efront, int64_t st) {
    DimTable *t = c->t;
    DimId sp = slice_pos(c, s, sfront, d, st > 0), ep = slice_pos(c, e, efront, d, st > 0), x;
    int64_t k;
    if (st > 0) {
        DimId v[4] = {dim_sub(t, ep, sp), ep, dim_sub(t, d, sp), d};
        x = min_of(c, v, 4);
        k = st;
    } else {
        DimId v[4] = {dim_sub(t, sp, ep), dim_add(t, sp, cst(c, 1)), dim_sub(t, dim_sub(t, d, cst(c, 1)), ep),
                      d};
        x = min_of(c, v, 4);
        k = st == INT64_MIN ? INT64_MAX : -st;
    }
    if (k != 1) x = floordiv_k(c, dim_add(t, x, cst(c, k - 1)), k);
    return smax(c, cst(c, 0), x);
}

enum { SLICE_CASES = 5 };

/* The cases to try for a start/end v: a non-constant v of unknown sign that is
 * provably >= -m for a small m (S-1) is either >= 0 (counted from the front)
 * or one of the constants -1..-m.  Returns the number of cases. */
static int slice_cases(Cx *c, DimId v, DimId *val, bool *front) {
    DimTable *t = c->t;
    val[0] = v;
    front[0] = false;
    if (dim_is_const(t, v, NULL) || dim_nonneg(t, v) || dim_nonneg(t, dim_sub(t, cst(c, -1), v))) return 1;
    for (int m = 1; m < SLICE_CASES; m++) {
        if (!dim_nonneg(t, dim_add(t, v, cst(c, m)))) continue;
        front[0] = true;
        for (int j = 1; j <= m; j++)
            val[j] = cst(c, -j), front[j] = false;
        return m + 1;
    }
    return 1;
}

/* When every case gives the same expression, that expression is exact for
 * all values (slice(x, starts=[0], ends=[S-1]) on S is max(0, S-1));
 * otherwise the general form with the exact wrap of slice_pos is used. */
static DimId slice_len(Cx *c, DimId d, DimId s, DimId e, int64_t st) {
    int64_t dv, sv, ev;
    if (dim_is_const(c->t, d, &dv) && dv >= 0 && dim_is_const(c->t, s, &sv) && dim_is_const(c->t, e, &ev))
        return cst(c, slice_len_const(dv, sv, ev, st));
    DimId sval[SLICE_CASES], eval[SLICE_CASES], r = DIM_INVALID;
    bool sfront[SLICE_CASES], efront[SLICE_CASES];
    int ns = slice_cases(c, s, sval, sfront), ne = slice_cases(c, e, eval, efront);
    for (int i = 0; i < ns; i++)
        for (int j = 0; j < ne; j++) {
            DimId l = slice_len_at(c, d, sval[i], sfront[i], eval[j], efront[j], st);
            if (i + j == 0)
                r = l;
            else if (l != r)
                return slice_len_at(c, d, s, false, e, false, st);
        }
    return r;
}

/* slice(x, starts, ends, axes, steps): ONNX Slice. */
static bool infer_slice(Cx *c, Type *out) {
    const Type *x = ty_in(c, 0);
    const Attr *st = attr(c, "starts"), *en;
    if (st->n > x->rank)
        return fail(c, attr_loc(c, st), "starts has %d entries but x has rank %d: %s", st->n, x->rank,
                    ty(c, x));
    dflt_iota(c, "axes", st->n);
    int64_t ones[IR_MAX_RANK];
    for (int i = 0; i < IR_MAX_RANK; i++)
        ones[i] = 1;
    dflt_ints(c, "steps", ones, st->n);
    st = attr(c, "starts"), en = attr(c, "ends");
    const Attr *ax = attr(c, "axes"), *sp = attr(c, "steps");
    if (en->n != st->n || ax->n != st->n || sp->n != st->n)
        return fail(c, c->n->loc,
                    "starts, ends, axes and steps must have the same length, got %d, %d, %d and %d", st->n,
                    en->n, ax->n, sp->n);
    bool mask[IR_MAX_RANK];
    if (!axes_mask(c, ax, x->rank, "rank", x, mask)) return false;
    for (int i = 0; i < sp->n; i++)
        if (sp->ints[i] == 0)
            return fail(c, attr_loc(c, sp), "steps must be non-zero, got %s", ints_str(c, sp->ints, sp->n));
    *out = *x;
    for (int i = 0; i < st->n; i++) {
        int a = ir_norm_axis(ax->ints[i], x->rank);
        out->dim[a] = slice_len(c, x->dim[a], st->dims[i], en->dims[i], sp->ints[i]);
    }
    return true;
}

/* gather(x, indices, axis): x.shape[:axis] + indices.shape + x.shape[axis+1:]. */
static bool infer_gather(Cx *c, Type *out) {
    const Type *x = ty_in(c, 0), *idx = ty_in(c, 1);
    dflt_int(c, "axis", 0);
    int ax;
    if (!one_axis(c, "axis", x->rank, x, &ax)) return false;
    if (idx->dtype != DT_I32 && idx->dtype != DT_I64)
        return fail(c, c->n->loc, "indices must be i32 or i64, got %s", ty(c, idx));
    if (!rank_ok(c, x->rank - 1 + idx->rank)) return false;
    out->dtype = x->dtype;
    out->rank = 0;
    for (int i = 0; i < ax; i++)
        out->dim[out->rank++] = x->dim[i];
    for (int i = 0; i < idx->rank; i++)
        out->dim[out->rank++] = idx->dim[i];
    for (int i = ax + 1; i < x->rank; i++)
        out->dim[out->rank++] = x->dim[i];
    return true;
}

/* unsqueeze(x, axes): axes index the result (ONNX). */
static bool infer_unsqueeze(Cx *c, Type *out) {
    const Type *x = ty_in(c, 0);
    const Attr *a = attr(c, "axes");
    int r = x->rank + a->n;
    bool mask[IR_MAX_RANK];
    if (!rank_ok(c, r) || !axes_mask(c, a, r, "result rank", x, mask)) return false;
    out->dtype = x->dtype;
    out->rank = r;
    for (int i = 0, k = 0; i < r; i++)
        out->dim[i] = mask[i] ? cst(c, 1) : x->dim[k++];
    return true;
}

/* squeeze(x, axes): each axis must have the constant size 1; the default is
 * every such axis. */
static bool infer_squeeze(Cx *c, Type *out) {
    const Type *x = ty_in(c, 0);
    int64_t unit[IR_MAX_RANK];
    int nunit = 0;
    for (int i = 0; i < x->rank; i++)
        if (is_one(c, x->dim[i])) unit[nunit++] = i;
    dflt_ints(c, "axes", unit, nunit);
    const Attr *a = attr(c, "axes");
    bool mask[IR_MAX_RANK];
    if (!axes_mask(c, a, x->rank, "rank", x, mask)) return false;
    out->dtype = x->dtype;
    out->rank = 0;
    for (int i = 0; i < x->rank; i++) {
        if (!mask[i])
            out->dim[out->rank++] = x->dim[i];
        else if (!is_one(c, x->dim[i]))
            return fail(c, attr_loc(c, a), "axis %d of %s has size %s, not 1", i, ty(c, x),
                        dstr(c, x->dim[i]));
    }
    return true;
}

/* ---- convolution and pooling (NCHW) ---------------------------------------------- */

/* floor((in + pads - dil*(k-1) - 1) / stride) + 1 */
static DimId window_out(Cx *c, DimId in, int64_t pad0, int64_t pad1, DimId k, int64_t dil, int64_t stride) {
    DimTable *t = c->t;
    DimId one = cst(c, 1);
    DimId span = dim_mul(t, cst(c, dil), dim_sub(t, k, one));
    DimId num = dim_sub(t, dim_sub(t, dim_add(t, dim_add(t, in, cst(c, pad0)), cst(c, pad1)), span), one);
    return dim_add(t, floordiv_k(c, num, stride), one);
}

/* Sets out's spatial dims from x[N,C,H,W] and a kh x kw window; `wt` (the conv
 * weight, or NULL for pooling) is printed in errors. */
static bool window(Cx *c, const Type *x, const Type *wt, DimId kh, DimId kw, Type *out) {
    const int64_t *stride = attr(c, "stride")->ints, *pad = attr(c, "padding")->ints;
    const Attr *da = attr(c, "dilation");
    const int64_t *dil = da ? da->ints : (const int64_t[]){1, 1};
    static const char *names[] = {"height", "width"};
    DimId k[2] = {kh, kw};
    for (int i = 0; i < 2; i++) {
        DimId o = window_out(c, x->dim[2 + i], pad[i], pad[i + 2], k[i], dil[i], stride[i]);
        int64_t v;
        if (dim_is_const(c->t, o, &v) && v < 1)
            return fail(c, c->n->loc,
                        "output %s would be %" PRId64 ": the window is larger than the padded input %s%s%s",
                        names[i], v, ty(c, x), wt ? ", w " : "", wt ? ty(c, wt) : "");
        out->dim[2 + i] = o;
    }
    return true;
}

static bool window_attrs(Cx *c) {
    static const int64_t one2[] = {1, 1}, zero4[] = {0, 0, 0, 0};
    dflt_ints(c, "stride", one2, 2);
    dflt_ints(c, "padding", zero4, 4);
    return int_list(c, "stride", 2, 1, "2 positive integers") &&
           int_list(c, "padding", 4, 0, "4 non-negative integers [top, left, bottom, right]");
}

static bool need_nchw(Cx *c, const Type *x) {
    if (!need_float(c, x)) return false;
    if (x->rank == 4) return true;
    return fail(c, c->n->loc, "x must be 4-D [N,C,H,W], got %s", ty(c, x));
}

/* conv2d(x[N,C,H,W], w[M, C/groups, kh, kw], b[M]?) -> [N,M,OH,OW]. */
static bool infer_conv2d(Cx *c, Type *out) {
    const Type *x = ty_in(c, 0), *w = ty_in(c, 1), *b = c->n->in[2] ? ty_in(c, 2) : NULL;
    static const int64_t one2[] = {1, 1};
    dflt_ints(c, "dilation", one2, 2);
    dflt_int(c, "groups", 1);
    if (!window_attrs(c) || !int_list(c, "dilation", 2, 1, "2 positive integers")) return false;
    const Attr *ga = attr(c, "groups");
    if (ga->i < 1) return fail(c, attr_loc(c, ga), "groups must be positive, got %" PRId64, ga->i);
    if (!need_nchw(c, x) || !same_dtype(c, x, "w", w) || (b && !same_dtype(c, x, "b", b))) return false;
    if (w->rank != 4) return fail(c, c->n->loc, "w must be 4-D [M, C/groups, kh, kw], got %s", ty(c, w));
    DimId want = dim_mul(c->t, w->dim[1], cst(c, ga->i));
    if (x->dim[1] != want)
        return fail(c, c->n->loc,
                    "x has %s channels but w expects %s (%s per group, groups %" PRId64 "): %s, w %s",
                    dstr(c, x->dim[1]), dstr(c, want), dstr(c, w->dim[1]), ga->i, ty(c, x), ty(c, w));
    int64_t m;
    if (dim_is_const(c->t, w->dim[0], &m) && m % ga->i != 0)
        return fail(c, c->n->loc, "%" PRId64 " output channels are not divisible by groups %" PRId64 ": w %s",
                    m, ga->i, ty(c, w));
    if (b && (b->rank != 1 || b->dim[0] != w->dim[0]))
        return fail(c, c->n->loc, "b %s must be [%s], the output channels of w %s", ty(c, b),
                    dstr(c, w->dim[0]), ty(c, w));
    out->dtype = x->dtype;
    out->rank = 4;
    out->dim[0] = x->dim[0];
    out->dim[1] = w->dim[0];
    return window(c, x, w, w->dim[2], w->dim[3], out);
}

/* max_pool2d / avg_pool2d(x, kernel, stride, padding). */
static bool infer_pool(Cx *c, Type *out) {
    const Type *x = ty_in(c, 0);
    if (!window_attrs(c) || !int_list(c, "kernel", 2, 1, "2 positive integers [kh, kw]")) return false;
    if (!need_nchw(c, x)) return false;
    const int64_t *k = attr(c, "kernel")->ints;
    *out = *x;
    return window(c, x, NULL, cst(c, k[0]), cst(c, k[1]), out);
}

static bool infer_global_pool(Cx *c, Type *out) {
    const Type *x = ty_in(c, 0);
    if (!need_nchw(c, x)) return false;
    *out = *x;
    out->dim[2] = out->dim[3] = cst(c, 1);
    return true;
}

/* ---- attention ------------------------------------------------------------------ */

/* attention(q[...,Sq,D], k[...,Sk,D], v[...,Sk,Dv], mask?, scale?) -> [...,Sq,Dv];
 * batch axes broadcast; mask and scale broadcast to the scores [...,Sq,Sk]. */
static bool infer_attention(Cx *c, Type *out) {
    const Type *q = ty_in(c, 0), *k = ty_in(c, 1), *v = ty_in(c, 2);
    if (q->rank < 2 || k->rank < 2 || v->rank < 2)
        return fail(c, c->n->loc, "q, k and v must have rank >= 2: %s, %s, %s", ty(c, q), ty(c, k), ty(c, v));
    if (!need_float(c, q) || !same_dtype(c, q, "k", k) || !same_dtype(c, q, "v", v)) return false;
    if (q->dim[q->rank - 1] != k->dim[k->rank - 1])
        return fail(c, c->n->loc, "q and k last dimensions differ: %s and %s", ty(c, q), ty(c, k));
    if (k->dim[k->rank - 2] != v->dim[v->rank - 2])
        return fail(c, c->n->loc, "k and v sequence lengths differ: %s and %s", ty(c, k), ty(c, v));
    Type s = {.dtype = q->dtype};
    if (!bcast(c, q->dim, q->rank - 2, k->dim, k->rank - 2, s.dim, &s.rank) ||
        !bcast(c, s.dim, s.rank, v->dim, v->rank - 2, s.dim, &s.rank))
        return fail(c, c->n->loc, "cannot broadcast batch dimensions: %s, %s, %s", ty(c, q), ty(c, k),
                    ty(c, v));
    int nb = s.rank;
    s.dim[s.rank++] = q->dim[q->rank - 2];
    s.dim[s.rank++] = k->dim[k->rank - 2];
    for (int i = 3; i < 5; i++) {
        if (!c->n->in[i]) continue;
        const char *what = i == 3 ? "mask" : "scale";
        const Type *p = ty_in(c, i);
        if (!same_dtype(c, q, what, p)) return false;
        if (!bcast_to(c, p->dim, p->rank, s.dim, s.rank))
            return fail(c, c->n->loc, "%s %s does not broadcast to the scores shape %s", what, ty(c, p),
                        shape_str(c, s.dim, s.rank));
    }
    *out = s;
    out->dim[nb + 1] = v->dim[v->rank - 1];
    return true;
}

/* ---- dispatch ---------------------------------------------------------------------- */

static Rule rule_for(OpKind op) {
    switch (ir_op_class(op)) {
    case OPC_ELEMENTWISE: return infer_elementwise;
    case OPC_REDUCTION: return infer_reduce;
    default: break;
    }
    static const Rule rules[OP_COUNT] = {
        [OP_SOFTMAX] = infer_softmax,
        [OP_LAYERNORM] = infer_layernorm,
        [OP_RMSNORM] = infer_layernorm,
        [OP_BATCHNORM] = infer_batchnorm,
        [OP_MATMUL] = infer_matmul,
        [OP_LINEAR] = infer_linear,
        [OP_RESHAPE] = infer_reshape,
        [OP_TRANSPOSE] = infer_transpose,
        [OP_CONCAT] = infer_concat,
        [OP_SLICE] = infer_slice,
        [OP_GATHER] = infer_gather,
        [OP_UNSQUEEZE] = infer_unsqueeze,
        [OP_SQUEEZE] = infer_squeeze,
        [OP_CONV2D] = infer_conv2d,
        [OP_MAX_POOL2D] = infer_pool,
        [OP_AVG_POOL2D] = infer_pool,
        [OP_GLOBAL_AVG_POOL] = infer_global_pool,
        [OP_ATTENTION] = infer_attention,
    };
    return (unsigned)op < OP_COUNT ? rules[op] : NULL;
}

static bool kind_fits(ParamKind pk, AttrKind ak) {
    switch (pk) {
    case PK_INT: return ak == AV_INT;
    case PK_FLOAT: return ak == AV_FLOAT || ak == AV_INT;
    case PK_STRING: return ak == AV_STRING;
    case PK_BOOL: return ak == AV_BOOL;
    case PK_DTYPE: return ak == AV_DTYPE;
    case PK_INTS: return ak == AV_INTS;
    case PK_DIMS: return ak == AV_DIMS;
    default: return false;
    }
}

static const char *kind_desc(ParamKind pk) {
    static const char *d[] = {
        [PK_TENSOR] = "a tensor",         [PK_INT] = "an integer",
        [PK_FLOAT] = "a number",          [PK_STRING] = "a string",
        [PK_BOOL] = "true or false",      [PK_DTYPE] = "a dtype",
        [PK_INTS] = "a list of integers", [PK_DIMS] = "a list of dimensions",
    };
    return d[pk];
}

/* Step 1: operands and attributes against the operator's schema. */
static bool check_signature(Cx *c) {
    Node *n = c->n;
    const OpSchema *s = ir_op_schema(n->op);
    if (s->variadic) {
        if (n->nin < 1) return fail(c, n->loc, "needs at least one tensor operand");
        for (int i = 0; i < n->nin; i++)
            if (!n->in[i]) return fail(c, n->loc, "operand %d is missing", i);
    } else {
        int want = ir_op_tensor_params(n->op);
        if (n->nin != want) return fail(c, n->loc, "expects %d operands, got %d", want, n->nin);
    }
    for (int i = 0, k = 0; i < s->nparams; i++) {
        const OpParam *p = &s->params[i];
        if (p->kind == PK_TENSOR) {
            if (!s->variadic && p->required && !n->in[k])
                return fail(c, n->loc, "missing operand '%s'", p->name);
            k++;
        } else if (p->required && !ir_attr(n, p->name)) {
            return fail(c, n->loc, "missing attribute '%s'", p->name);
        }
    }
    for (int i = 0; i < n->nin; i++)
        if (n->in[i] && (n->in[i]->type.rank < 0 || n->in[i]->type.rank > IR_MAX_RANK))
            return fail(c, n->loc, "operand %d has no valid type", i);
    for (int i = 0; i < n->nattrs; i++) {
        const Attr *a = &n->attrs[i];
        const OpParam *p = NULL;
        for (int j = 0; j < s->nparams && !p; j++)
            if (s->params[j].kind != PK_TENSOR && strcmp(s->params[j].name, a->name) == 0) p = &s->params[j];
        if (!p) return fail(c, attr_loc(c, a), "unknown attribute '%s'", a->name);
        if (!kind_fits(p->kind, a->kind))
            return fail(c, attr_loc(c, a), "attribute '%s' must be %s", a->name, kind_desc(p->kind));
    }
    return true;
}

bool ir_infer(Graph *g, Node *n, Diag *d) {
    Cx c = {g, g->dims, n, d, ir_op_name(n->op)};
    Type out = {0};
    if (ir_op_class(n->op) == OPC_SOURCE) {
        out = n->type; /* set by whoever created the source node */
    } else {
        Rule rule = rule_for(n->op);
        DSC_ASSERT(rule);
        if (!check_signature(&c) || !rule(&c, &out)) return false;
    }
    if (out.rank < 0 || out.rank > IR_MAX_RANK) return rank_ok(&c, out.rank);
    for (int i = 0; i < out.rank; i++)
        if (out.dim[i] == DIM_INVALID) return fail(&c, n->loc, "dimension expression too large or complex");
    n->type = out;
    return true;
}
