/* Constant folding of elementwise operations on literal constants.
 *
 * An elementwise operation all of whose operands are scalar CONST nodes with a
 * number value becomes one CONST holding the value the reference interpreter
 * (runtime/interp.c) would compute, bit for bit:
 *
 *   - a CONST operand is first stored in its dtype the way the interpreter
 *     stores it (ir_dtype_round: floats round to f32 and then to f16/bf16
 *     with round-to-nearest-even; ints truncate and saturate; bool is v != 0);
 *   - floats are computed in double with the interpreter's formulas (stable
 *     sigmoid, NaN-propagating maximum/minimum, erf or tanh gelu) and the
 *     result stored in the result dtype, i.e. rounded the same way;
 *   - ints are computed exactly in int64 and wrap to the dtype's width: add,
 *     sub, mul, neg, abs wrap; div truncates toward zero; pow is repeated
 *     multiplication; comparisons and where pick the integer domain when the
 *     interpreter does;
 *   - cast follows the interpreter's rules (int -> int wraps, float -> int
 *     truncates and saturates, NaN -> 0, anything -> bool is != 0).
 *
 * What is not folded: anything the interpreter reports as a run-time error
 * (integer division by zero, 0 to a negative integer power, an operator
 * undefined for ints), so the error still happens when the model runs;
 * integer results beyond 2^53, which a CONST (a double) would not hold
 * exactly; dim-valued CONSTs (`S` used as a number), which are known only when
 * the dims are bound; params, which are known only when the weights load; and
 * nodes with hints.
 *
 * The dump must still be the model: a CONST prints as a bare literal, and a
 * literal has no dtype of its own in DSG -- the frontend gives it the dtype of
 * the operator's first non-literal operand, f32 when there is none (bool for
 * where's condition, i64 for gather's indices), and f32 to a literal output.
 * So a folded output must be f32, and a node that is not folded must get its
 * literal operands' dtypes back by that rule; where it would not, its
 * operands are left unfolded (see pass_constfold).  The folded CONST is
 * unnamed, like every literal, so the printer writes it inline.
 *
 * The element storage rules are ir_dtype_round (ir/scalar.c), which the
 * runtime's element stores use too: the folded value is by construction what
 * the interpreter would have stored.  The operator formulas (sigmoid, gelu,
 * integer wrap-around) repeat the interpreter's; both are tested against the
 * same numpy references.
 *
 * How: a forward sweep computes the values (chains of constant operations
 * fold completely), a backward sweep applies the printing rule, and the nodes
 * that fold become CONSTs in place; operands left unused are removed. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "passes.h"

static bool intlike(DType t) { return dtype_is_int(t) || t == DT_BOOL; }

/* v stored as dtype dt and read back, as the runtime stores it. */
static double stored(DType dt, double v) { return ir_dtype_round(dt, v); }

/* A scalar operand: a CONST's dtype and literal, or a folded node's dtype and
 * stored value (storing again changes nothing). */
typedef struct {
    DType dt;
    double v;
} Scalar;

/* Its value as the interpreter reads it in the float domain (the element the
 * runtime stored)... */
static double get_f(Scalar s) { return stored(s.dt, s.v); }

/* ... and in the integer domain (get_i of that element). */
static int64_t get_i(Scalar s) {
    switch (s.dt) {
    case DT_I8:
    case DT_I32:
    case DT_BOOL: return (int64_t)stored(s.dt, s.v);
    case DT_I64: return ir_dtype_round_i64(s.v);
    default: return ir_dtype_round_i64(stored(s.dt, s.v));
    }
}

static double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }
static double fmax_nan(double a, double b) { return isnan(a) || isnan(b) ? NAN : a > b ? a : b; }
static double fmin_nan(double a, double b) { return isnan(a) || isnan(b) ? NAN : a < b ? a : b; }

/* The float domain; false for an unknown gelu approximation. */
static bool float_op(const Node *n, const double *v, const bool *has, double *r) {
    double x = v[0];
    switch (n->op) {
    case OP_ADD: *r = v[0] + v[1]; break;
    case OP_SUB: *r = v[0] - v[1]; break;
    case OP_MUL: *r = v[0] * v[1]; break;
    case OP_DIV: *r = v[0] / v[1]; break;
    case OP_POW: *r = pow(v[0], v[1]); break;
    case OP_MAXIMUM: *r = fmax_nan(v[0], v[1]); break;
    case OP_MINIMUM: *r = fmin_nan(v[0], v[1]); break;
    case OP_NEG: *r = -x; break;
    case OP_ABS: *r = fabs(x); break;
    case OP_EXP: *r = exp(x); break;
    case OP_LOG: *r = log(x); break;
    case OP_SQRT: *r = sqrt(x); break;
    case OP_RSQRT: *r = 1 / sqrt(x); break;
    case OP_RECIPROCAL: *r = 1 / x; break;
    case OP_TANH: *r = tanh(x); break;
    case OP_SIGMOID: *r = sigmoid(x); break;
    case OP_RELU: *r = x < 0 ? 0 : x; break;
    case OP_ERF: *r = erf(x); break;
    case OP_SILU: *r = x * sigmoid(x); break;
    case OP_GELU: {
        const char *ap = ir_attr_string(n, "approximate", "none");
        if (strcmp(ap, "tanh") == 0)
            *r = 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
        else if (strcmp(ap, "none") == 0)
            *r = 0.5 * x * (1 + erf(x / sqrt(2.0)));
        else
            return false;
        break;
    }
    case OP_CLIP:
        if (has[1]) x = fmax_nan(x, v[1]);
        if (has[2]) x = fmin_nan(x, v[2]);
        *r = x;
        break;
    case OP_LESS: *r = v[0] < v[1]; break;
    case OP_GREATER: *r = v[0] > v[1]; break;
    case OP_EQUAL: *r = v[0] == v[1]; break;
    case OP_WHERE: *r = v[0] != 0 ? v[1] : v[2]; break;
    default: return false;
    }
    return true;
}

/* b^e with wrap-around, e >= 0. */
static int64_t ipow(int64_t b, int64_t e) {
    uint64_t r = 1, x = (uint64_t)b;
    for (; e > 0; e >>= 1) {
        if (e & 1) r *= x;
        x *= x;
    }
    return ir_u64_to_i64(r);
}

/* The integer domain (the caller wraps); false where the interpreter reports
 * an error. */
static bool int_op(OpKind op, const int64_t *v, const bool *has, int64_t *r) {
    uint64_t a = (uint64_t)v[0], b = (uint64_t)v[1];
    switch (op) {
    case OP_ADD: *r = ir_u64_to_i64(a + b); return true;
    case OP_SUB: *r = ir_u64_to_i64(a - b); return true;
    case OP_MUL: *r = ir_u64_to_i64(a * b); return true;
    case OP_DIV:
        if (v[1] == 0) return false;
        *r = v[0] == INT64_MIN && v[1] == -1 ? INT64_MIN : v[0] / v[1];
        return true;
    case OP_POW:
        if (v[1] >= 0) {
            *r = ipow(v[0], v[1]);
            return true;
        }
        if (v[0] == 0) return false;
        *r = v[0] == 1 ? 1 : v[0] == -1 ? ((v[1] & 1) ? -1 : 1) : 0;
        return true;
    case OP_MAXIMUM: *r = v[0] > v[1] ? v[0] : v[1]; return true;
    case OP_MINIMUM: *r = v[0] < v[1] ? v[0] : v[1]; return true;
    case OP_NEG: *r = ir_u64_to_i64(0 - a); return true;
    case OP_ABS: *r = v[0] < 0 ? ir_u64_to_i64(0 - a) : v[0]; return true;
    case OP_RELU: *r = v[0] < 0 ? 0 : v[0]; return true;
    case OP_CLIP:
        *r = v[0];
        if (has[1] && *r < v[1]) *r = v[1];
        if (has[2] && *r > v[2]) *r = v[2];
        return true;
    case OP_LESS: *r = v[0] < v[1]; return true;
    case OP_GREATER: *r = v[0] > v[1]; return true;
    case OP_EQUAL: *r = v[0] == v[1]; return true;
    case OP_WHERE: *r = v[0] != 0 ? v[1] : v[2]; return true;
    default: return false;
    }
}

/* The value the interpreter stores for n, whose operands are x[]. */
static bool evaluate(const Node *n, const Scalar *x, double *out) {
    enum { MAXIN = 3 };
    DType dt = n->type.dtype;
    if (n->nin < 1 || n->nin > MAXIN) return false;
    if (n->op == OP_CAST) {
        if (intlike(x[0].dt) && intlike(dt))
            *out = (double)ir_wrap_int(get_i(x[0]), dt);
        else if (intlike(x[0].dt))
            *out = stored(dt, (double)get_i(x[0]));
        else
            *out = stored(dt, get_f(x[0]));
        return true;
    }
    bool has[MAXIN] = {false};
    for (int k = 0; k < n->nin; k++)
        has[k] = n->in[k] != NULL;
    bool intdom = n->op == OP_LESS || n->op == OP_GREATER || n->op == OP_EQUAL
                      ? intlike(x[0].dt) && intlike(x[1].dt)
                      : intlike(dt);
    if (intdom) {
        int64_t v[MAXIN] = {0}, r;
        for (int k = 0; k < n->nin; k++)
            if (has[k]) v[k] = n->op == OP_WHERE && k == 0 ? get_f(x[0]) != 0 : get_i(x[k]);
        if (!int_op(n->op, v, has, &r)) return false;
        *out = (double)ir_wrap_int(r, dt);
    } else {
        double v[MAXIN] = {0}, r;
        for (int k = 0; k < n->nin; k++)
            if (has[k]) v[k] = get_f(x[k]);
        if (!float_op(n, v, has, &r)) return false;
        *out = stored(dt, r);
    }
    /* an integer CONST holds its value in a double: keep it exact */
    return !intlike(dt) || fabs(*out) <= 9007199254740992.0;
}

/* A literal now or after folding. */
static bool literal(const Node *x, const bool *fold) { return x->op == OP_CONST || fold[x->id]; }

/* Whether the printed model gives n's literal operands their dtypes back: the
 * frontend types a literal like the first non-literal operand (f32 when there
 * is none), except where's condition (bool) and gather's indices (i64). */
static bool literals_reparse(const Node *n, const bool *fold) {
    DType ctx = DT_F32;
    for (int k = 0; k < n->nin; k++) {
        const Node *x = n->in[k];
        if (!x || (n->op == OP_WHERE && k == 0) || (n->op == OP_GATHER && k == 1)) continue;
        if (!literal(x, fold)) {
            ctx = x->type.dtype;
            break;
        }
    }
    for (int k = 0; k < n->nin; k++) {
        const Node *x = n->in[k];
        if (!x || !literal(x, fold)) continue;
        DType want = n->op == OP_GATHER && k == 1 ? DT_I64 : n->op == OP_WHERE && k == 0 ? DT_BOOL : ctx;
        if (x->type.dtype != want) return false;
    }
    return true;
}

/* Requires: a verified graph without fusion groups.
 * Guarantees: every elementwise operation whose operands are all number
 * CONSTs is folded, except those listed above and those whose folding would
 * not print back (below); each folded node is an unnamed CONST of the same
 * type holding exactly the value the interpreter computes; operands left
 * unused are removed (by dce's sweep).
 *
 * How: (1) a forward sweep marks what can fold and computes the values,
 * without changing the graph; (2) printability: a literal has no dtype of
 * its own in DSG, so a folded output must be f32, and a node that stays must
 * get its literal operands' dtypes back from the frontend's rule above --
 * when it would not (`maximum(cast(2, i32), 5) - 4` as a non-f32 output: the
 * i32 operands of the `-` would both be literals and read back as f32), its
 * operands are not folded; a backward sweep, so that unfolding an operand
 * checks that operand's own operands too; (3) the marked nodes become CONSTs. */
bool pass_constfold(Graph *g, Diag *d) {
    if (g->ngroups > 0) return true; /* runs before fusion only */
    size_t nn = (size_t)(g->nnodes ? g->nnodes : 1);
    bool *fold = arena_alloc(g->arena, sizeof(bool) * nn);
    double *val = arena_alloc(g->arena, sizeof(double) * nn);
    bool any = false;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (ir_op_class(n->op) != OPC_ELEMENTWISE || n->type.rank != 0 || n->nhints > 0 || n->nin > 3)
            continue;
        Scalar x[3] = {{DT_F32, 0}, {DT_F32, 0}, {DT_F32, 0}};
        bool ok = true;
        for (int k = 0; k < n->nin && ok; k++) {
            const Node *o = n->in[k];
            if (!o) continue;
            ok = o->type.rank == 0 && ((o->op == OP_CONST && o->dval == DIM_INVALID) || fold[o->id]);
            if (ok) x[k] = (Scalar){o->type.dtype, o->op == OP_CONST ? o->fval : val[o->id]};
        }
        any |= fold[i] = ok && evaluate(n, x, &val[i]);
    }
    if (!any) return true;
    for (int i = 0; i < g->noutputs; i++) {
        const Node *x = g->outputs[i].node;
        if (fold[x->id] && x->type.dtype != DT_F32) fold[x->id] = false;
    }
    for (int i = g->nnodes - 1; i >= 0; i--) {
        const Node *n = g->nodes[i];
        if (fold[i] || ir_is_source(n) || literals_reparse(n, fold)) continue;
        for (int k = 0; k < n->nin; k++)
            if (n->in[k]) fold[n->in[k]->id] = false;
    }
    bool changed = false;
    for (int i = 0; i < g->nnodes; i++) {
        if (!fold[i]) continue;
        Node *n = g->nodes[i];
        n->op = OP_CONST;
        n->nin = 0;
        n->in = NULL;
        n->nattrs = 0;
        n->attrs = NULL;
        n->name = NULL;
        n->fval = val[i];
        n->dval = DIM_INVALID;
        if (!ir_infer(g, n, d)) return false; /* a source keeps its type: cannot fail */
        changed = true;
    }
    return changed ? pass_dce(g, d) : true;
}
