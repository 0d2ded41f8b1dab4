/* The reference interpreter.
 *
 * This file is the oracle: every backend, every pass and every fused kernel is
 * checked against what it computes, so it is written to be obviously correct
 * rather than fast.  The rules it follows:
 *
 *  - One node at a time, in graph order.  Each node's value is a fresh
 *    contiguous C-order Tensor whose dtype is the node's type and whose shape is
 *    the node's type evaluated with the bound dim symbols.  Kernels never
 *    invent shapes: they check that the operand shapes agree with that output
 *    shape (an inconsistency means shape inference and this file disagree, and
 *    is reported rather than read out of bounds).  A value is freed after its
 *    last use; inputs and params are borrowed and never freed; outputs are
 *    copied out, so nothing is shared with the caller.
 *
 *  - Numbers.  Float values are read into double (rt_get), computed in double
 *    and stored through rt_set, which rounds to f32 and then, for f16/bf16, to
 *    the half format with round-to-nearest-even.  That realises spec section 4
 *    ("computed as if in f32, rounded when a result is stored") up to the
 *    harmless extra precision of double.  Sums and dot products accumulate in
 *    double; softmax subtracts the row maximum; norm statistics stay in double.
 *    Integers take a separate exact path in int64 (never through double, so i64
 *    keeps all 64 bits): add/sub/mul/neg/abs wrap around in the width of the
 *    dtype, div truncates toward zero (ONNX Div) and a zero divisor is a
 *    run-time error, pow is repeated multiplication (a negative exponent gives
 *    the truncated quotient 1/x^n: 1, -1 or 0, and 0 to a negative power is an
 *    error), reduce_mean and avg pools truncate the quotient toward zero.
 *    cast: float -> int truncates toward zero and saturates at the dtype's
 *    range, NaN -> 0; int -> narrower int wraps (like numpy astype); anything
 *    -> bool is `!= 0` (so NaN -> true, like numpy); bool -> number is 0/1.
 *
 *  - Broadcasting.  One helper, bc_off(), maps an index of the output to the
 *    linear offset of an operand aligned to the right, reading index 0 along
 *    every operand dim of size 1.  Elementwise ops, the norms' scale and bias,
 *    matmul's batch dims and attention's mask all go through it, so there is a
 *    single broadcasting rule in the file.
 *
 *  - Dispatch is a table from OpKind to a kernel function.  The elementwise
 *    kernels share one loop; the per-element arithmetic is two switch
 *    statements, one for the float domain and one for the integer domain.
 *
 *  - Errors are diagnostics located at the node, prefixed with the operator
 *    name; binding and weight errors name the input or weight and show the
 *    expected and actual types.  No path leaks. */
#include "interp.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ir/trap.h"

/* ---- integer helpers ---------------------------------------------------- */

static bool is_intlike(DType t) { return dtype_is_int(t) || t == DT_BOOL; }

/* Exact integer read (floats are truncated toward zero and saturated). */
static int64_t get_i(const Tensor *t, int64_t i) {
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case DT_I8: return ((const int8_t *)p)[i];
    case DT_I32: {
        int32_t v;
        memcpy(&v, p + i * 4, 4);
        return v;
    }
    case DT_I64: {
        int64_t v;
        memcpy(&v, p + i * 8, 8);
        return v;
    }
    case DT_BOOL: return p[i] != 0;
    default: {
        double v = rt_get(t, i);
        if (isnan(v)) return 0;
        if (v <= -9223372036854775808.0) return INT64_MIN;
        if (v >= 9223372036854775808.0) return INT64_MAX;
        return (int64_t)v;
    }
    }
}

/* Exact integer store, wrapping to the dtype's width. */
static void set_i(Tensor *t, int64_t i, int64_t v) {
    unsigned char *p = t->data;
    switch (t->dtype) {
    case DT_I8: {
        int8_t x = (int8_t)ir_wrap_int(v, DT_I8);
        memcpy(p + i, &x, 1);
        return;
    }
    case DT_I32: {
        int32_t x = (int32_t)ir_wrap_int(v, DT_I32);
        memcpy(p + i * 4, &x, 4);
        return;
    }
    case DT_I64: memcpy(p + i * 8, &v, 8); return;
    case DT_BOOL: p[i] = v != 0; return;
    default: rt_set(t, i, (double)v); return;
    }
}

/* An accumulator for sums and dot products: double for floats, wrapping
 * uint64 for integers. */
typedef struct {
    bool isint;
    double f;
    uint64_t u;
} Acc;

static Acc acc_new(DType out) { return (Acc){.isint = is_intlike(out)}; }
static void acc_add(Acc *a, const Tensor *x, int64_t i) {
    if (a->isint)
        a->u += (uint64_t)get_i(x, i);
    else
        a->f += rt_get(x, i);
}
static void acc_madd(Acc *a, const Tensor *x, int64_t i, const Tensor *y, int64_t j) {
    if (a->isint)
        a->u += (uint64_t)get_i(x, i) * (uint64_t)get_i(y, j);
    else
        a->f += rt_get(x, i) * rt_get(y, j);
}
static void acc_store(Tensor *t, int64_t i, const Acc *a) {
    if (a->isint)
        set_i(t, i, ir_u64_to_i64(a->u));
    else
        rt_set(t, i, a->f);
}

/* ---- shapes and broadcasting --------------------------------------------- */

static int64_t numel(const Tensor *t) { return rt_numel(t->rank, t->shape); }

static int64_t prod(const int64_t *shape, int from, int to) {
    int64_t p = 1;
    for (int i = from; i < to; i++)
        p *= shape[i];
    return p;
}

/* Multi-index of linear offset i in `shape` (C order). */
static void unravel(int64_t i, const int64_t *shape, int rank, int64_t *idx) {
    for (int k = rank - 1; k >= 0; k--) {
        idx[k] = shape[k] ? i % shape[k] : 0;
        i = shape[k] ? i / shape[k] : 0;
    }
}

/* Linear offset in a tensor of shape `shape` (rank trank <= rank), aligned to
 * the right of the index space `idx` (rank entries), reading index 0 along
 * dims of size 1: numpy broadcasting. */
static int64_t bc_off(const int64_t *shape, int trank, const int64_t *idx, int rank) {
    int64_t off = 0;
    for (int j = 0; j < trank; j++) {
        int64_t ix = shape[j] == 1 ? 0 : idx[rank - trank + j];
        off = off * shape[j] + ix;
    }
    return off;
}

/* Whether `shape` broadcasts to `to` (aligned right, equal or 1). */
static bool bcast_ok(const int64_t *shape, int trank, const int64_t *to, int rank) {
    if (trank > rank) return false;
    for (int j = 0; j < trank; j++)
        if (shape[j] != 1 && shape[j] != to[rank - trank + j]) return false;
    return true;
}

/* Broadcasts `shape` into `acc` (rank *rank, right-aligned); false if incompatible. */
static bool bcast_into(int64_t *acc, int *rank, const int64_t *shape, int trank) {
    if (trank > *rank) {
        int sh = trank - *rank;
        memmove(acc + sh, acc, sizeof(int64_t) * (size_t)*rank);
        for (int i = 0; i < sh; i++)
            acc[i] = 1;
        *rank = trank;
    }
    for (int j = 0; j < trank; j++) {
        int64_t *a = &acc[*rank - trank + j];
        if (*a == 1)
            *a = shape[j];
        else if (shape[j] != 1 && shape[j] != *a)
            return false;
    }
    return true;
}

static bool shape_eq(const int64_t *a, int ra, const int64_t *b, int rb) {
    if (ra != rb) return false;
    for (int i = 0; i < ra; i++)
        if (a[i] != b[i]) return false;
    return true;
}

static const char *tstr(const Tensor *t, char *buf, size_t n) {
    rt_shape_str(t->dtype, t->rank, t->shape, buf, n);
    return buf;
}

/* ---- the interpreter context ---------------------------------------------- */

typedef struct {
    const Graph *g;
    Diag *d;
    const int64_t *syms;
} Ctx;

typedef bool (*Kernel)(Ctx *c, const Node *n, Tensor *const *in, Tensor *out);

static bool fail(Ctx *c, const Node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(Ctx *c, const Node *n, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    diag_error(c->d, n->loc, "%s: %s", ir_op_name(n->op), buf);
    return false;
}

/* A run-time error that generated kernels report too (ir/trap.h): one text. */
static bool trap(Ctx *c, const Node *n, KTrapCode code, int64_t a0, int64_t a1, int64_t a2) {
    char buf[512];
    ir_trap_message(n, code, (const int64_t[KTRAP_NARGS]){a0, a1, a2}, buf, sizeof buf);
    return fail(c, n, "%s", buf);
}

/* For the kernels' consistency checks: inference and this file disagree. */
#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) return fail(c, n, __VA_ARGS__);                                                         \
    } while (0)

static bool check_same_shape(Ctx *c, const Node *n, const Tensor *a, const Tensor *out) {
    char b1[128], b2[128];
    CHECK(shape_eq(a->shape, a->rank, out->shape, out->rank) && numel(a) == numel(out),
          "operand %s does not match the result %s", tstr(a, b1, sizeof b1), tstr(out, b2, sizeof b2));
    return true;
}

/* The `ints` attribute `name`, or NULL (n = 0) when absent. */
static const int64_t *attr_ints(const Node *n, const char *name, int *count) {
    const Attr *a = ir_attr(n, name);
    if (!a || a->kind != AV_INTS) {
        *count = 0;
        return NULL;
    }
    *count = a->n;
    return a->ints;
}

/* Reads a 2-entry ints attribute (stride, dilation, kernel) with a default. */
static bool attr_pair(Ctx *c, const Node *n, const char *name, int64_t dflt, int64_t out[2]) {
    int k;
    const int64_t *v = attr_ints(n, name, &k);
    if (!v) {
        out[0] = out[1] = dflt;
        return true;
    }
    CHECK(k == 2, "attribute '%s' must have 2 entries, got %d", name, k);
    out[0] = v[0];
    out[1] = v[1];
    return true;
}

/* ---- elementwise ----------------------------------------------------------- */

static double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

/* max/min that propagate NaN like numpy.maximum/minimum. */
static double fmax_nan(double a, double b) { return isnan(a) || isnan(b) ? NAN : a > b ? a : b; }
static double fmin_nan(double a, double b) { return isnan(a) || isnan(b) ? NAN : a < b ? a : b; }

/* One element in the float domain; v[k] is operand k, has[k] whether given. */
static double float_op(const Node *n, const double *v, const bool *has, bool gelu_tanh) {
    double x = v[0];
    switch (n->op) {
    case OP_ADD: return v[0] + v[1];
    case OP_SUB: return v[0] - v[1];
    case OP_MUL: return v[0] * v[1];
    case OP_DIV: return v[0] / v[1];
    case OP_POW: return pow(v[0], v[1]);
    case OP_MAXIMUM: return fmax_nan(v[0], v[1]);
    case OP_MINIMUM: return fmin_nan(v[0], v[1]);
    case OP_NEG: return -x;
    case OP_ABS: return fabs(x);
    case OP_EXP: return exp(x);
    case OP_LOG: return log(x);
    case OP_SQRT: return sqrt(x);
    case OP_RSQRT: return 1 / sqrt(x);
    case OP_RECIPROCAL: return 1 / x;
    case OP_TANH: return tanh(x);
    case OP_SIGMOID: return sigmoid(x);
    case OP_RELU: return x < 0 ? 0 : x;
    case OP_ERF: return erf(x);
    case OP_SILU: return x * sigmoid(x);
    case OP_GELU:
        if (gelu_tanh)
            return 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
        return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case OP_CLIP:
        if (has[1]) x = fmax_nan(x, v[1]);
        if (has[2]) x = fmin_nan(x, v[2]);
        return x;
    case OP_LESS: return v[0] < v[1];
    case OP_GREATER: return v[0] > v[1];
    case OP_EQUAL: return v[0] == v[1];
    case OP_WHERE: return v[0] != 0 ? v[1] : v[2];
    default: return NAN;
    }
}

/* b^e with wraparound; e >= 0. */
static int64_t ipow(int64_t b, int64_t e) {
    uint64_t r = 1, x = (uint64_t)b;
    for (; e > 0; e >>= 1) {
        if (e & 1) r *= x;
        x *= x;
    }
    return ir_u64_to_i64(r);
}

static bool int_capable(OpKind op) {
    switch (op) {
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_POW:
    case OP_MAXIMUM:
    case OP_MINIMUM:
    case OP_NEG:
    case OP_ABS:
    case OP_RELU:
    case OP_CLIP:
    case OP_LESS:
    case OP_GREATER:
    case OP_EQUAL:
    case OP_WHERE: return true;
    default: return false;
    }
}

/* One element in the integer domain (results are wrapped by set_i). */
static bool int_op(Ctx *c, const Node *n, const int64_t *v, const bool *has, int64_t *r) {
    uint64_t a = (uint64_t)v[0], b = (uint64_t)v[1];
    switch (n->op) {
    case OP_ADD: *r = ir_u64_to_i64(a + b); return true;
    case OP_SUB: *r = ir_u64_to_i64(a - b); return true;
    case OP_MUL: *r = ir_u64_to_i64(a * b); return true;
    case OP_DIV:
        if (v[1] == 0) return trap(c, n, KTRAP_DIV_ZERO, v[0], 0, 0);
        *r = v[0] == INT64_MIN && v[1] == -1 ? INT64_MIN : v[0] / v[1];
        return true;
    case OP_POW:
        if (v[1] >= 0)
            *r = ipow(v[0], v[1]);
        else {
            if (v[0] == 0) return trap(c, n, KTRAP_POW_ZERO_NEG, v[1], 0, 0);
            *r = v[0] == 1 ? 1 : v[0] == -1 ? ((v[1] & 1) ? -1 : 1) : 0;
        }
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
    default: return fail(c, n, "not defined for integer dtypes");
    }
}

/* All elementwise operators but cast: one broadcasting loop. */
static bool k_elementwise(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    enum { MAXIN = 3 };
    char b1[128], b2[128];
    CHECK(n->nin >= 1 && n->nin <= MAXIN, "expected 1 to 3 operands, got %d", n->nin);
    bool has[MAXIN] = {false};
    for (int k = 0; k < n->nin; k++) {
        has[k] = in[k] != NULL;
        if (has[k])
            CHECK(bcast_ok(in[k]->shape, in[k]->rank, out->shape, out->rank),
                  "operand %d %s does not broadcast to the result %s", k + 1, tstr(in[k], b1, sizeof b1),
                  tstr(out, b2, sizeof b2));
    }
    for (int k = 0; k < n->nin; k++)
        CHECK(has[k] || (n->op == OP_CLIP && k > 0), "operand %d is missing", k + 1);
    bool intdom;
    if (n->op == OP_LESS || n->op == OP_GREATER || n->op == OP_EQUAL)
        intdom = is_intlike(in[0]->dtype) && is_intlike(in[1]->dtype);
    else
        intdom = is_intlike(out->dtype);
    if (intdom) CHECK(int_capable(n->op), "not defined for %s", dtype_name(out->dtype));
    bool gelu_tanh = false;
    if (n->op == OP_GELU) {
        const char *ap = ir_attr_string(n, "approximate", "none");
        CHECK(!strcmp(ap, "none") || !strcmp(ap, "tanh"),
              "approximate must be \"none\" or \"tanh\", got \"%s\"", ap);
        gelu_tanh = !strcmp(ap, "tanh");
    }
    /* where's condition is read as a truth value whatever the domain */
    int64_t total = numel(out), idx[IR_MAX_RANK];
    for (int64_t i = 0; i < total; i++) {
        unravel(i, out->shape, out->rank, idx);
        int64_t off[MAXIN] = {0};
        for (int k = 0; k < n->nin; k++)
            if (has[k]) off[k] = bc_off(in[k]->shape, in[k]->rank, idx, out->rank);
        if (intdom) {
            int64_t v[MAXIN] = {0}, r = 0;
            for (int k = 0; k < n->nin; k++)
                if (has[k])
                    v[k] = n->op == OP_WHERE && k == 0 ? rt_get(in[0], off[0]) != 0 : get_i(in[k], off[k]);
            if (!int_op(c, n, v, has, &r)) return false;
            set_i(out, i, r);
        } else {
            double v[MAXIN] = {0};
            for (int k = 0; k < n->nin; k++)
                if (has[k]) v[k] = rt_get(in[k], off[k]);
            rt_set(out, i, float_op(n, v, has, gelu_tanh));
        }
    }
    return true;
}

static bool k_cast(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    const Tensor *x = in[0];
    if (!check_same_shape(c, n, x, out)) return false;
    int64_t total = numel(out);
    for (int64_t i = 0; i < total; i++) {
        if (is_intlike(x->dtype) && is_intlike(out->dtype))
            set_i(out, i, get_i(x, i));
        else if (is_intlike(x->dtype))
            rt_set(out, i, (double)get_i(x, i));
        else
            rt_set(out, i, rt_get(x, i)); /* float -> float/int/bool (see the top) */
    }
    return true;
}

static bool k_const(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    (void)in;
    int64_t total = numel(out), iv = 0;
    bool isdim = n->dval != DIM_INVALID;
    if (isdim) {
        char err[256];
        if (!dim_eval(c->g->dims, n->dval, c->syms, &iv, err, sizeof err)) return fail(c, n, "%s", err);
    }
    for (int64_t i = 0; i < total; i++) {
        if (isdim)
            set_i(out, i, iv);
        else
            rt_set(out, i, n->fval);
    }
    return true;
}

/* ---- reductions and normalisation ------------------------------------------ */

static bool k_reduce(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    const Tensor *x = in[0];
    bool red[IR_MAX_RANK] = {false};
    const Attr *axes = ir_attr(n, "axes"); /* absent: all axes; [] reduces none (numpy axis=()) */
    CHECK(!axes || axes->kind == AV_INTS, "axes must be a list of integers");
    for (int i = 0; i < x->rank; i++)
        red[i] = !axes;
    for (int k = 0; axes && k < axes->n; k++) {
        int ax = ir_norm_axis(axes->ints[k], x->rank);
        CHECK(ax >= 0, "axis %lld out of range for rank %d", (long long)axes->ints[k], x->rank);
        red[ax] = true;
    }
    int64_t kept[IR_MAX_RANK], count = 1;
    for (int i = 0; i < x->rank; i++) {
        kept[i] = red[i] ? 1 : x->shape[i];
        if (red[i]) count *= x->shape[i];
    }
    int64_t nout = prod(kept, 0, x->rank);
    CHECK(nout == numel(out), "result has %lld elements, expected %lld", (long long)numel(out),
          (long long)nout);
    if (n->op == OP_REDUCE_MAX && count == 0) return trap(c, n, KTRAP_EMPTY_MAX, 0, 0, 0);
    bool isint = is_intlike(out->dtype);
    if (n->op == OP_REDUCE_MEAN && isint) CHECK(count > 0, "mean of zero elements");
    double *fa = calloc((size_t)nout + 1, sizeof *fa);
    uint64_t *ia = calloc((size_t)nout + 1, sizeof *ia);
    if (!fa || !ia) {
        free(fa);
        free(ia);
        return fail(c, n, "out of memory");
    }
    bool *seen = calloc((size_t)nout + 1, sizeof *seen);
    if (!seen) {
        free(fa);
        free(ia);
        return fail(c, n, "out of memory");
    }
    int64_t total = numel(x), idx[IR_MAX_RANK];
    for (int64_t i = 0; i < total; i++) {
        unravel(i, x->shape, x->rank, idx);
        for (int k = 0; k < x->rank; k++)
            if (red[k]) idx[k] = 0;
        int64_t o = bc_off(kept, x->rank, idx, x->rank);
        if (n->op == OP_REDUCE_MAX) {
            if (isint) {
                int64_t v = get_i(x, i);
                if (!seen[o] || v > ir_u64_to_i64(ia[o])) ia[o] = (uint64_t)v;
            } else {
                double v = rt_get(x, i);
                fa[o] = !seen[o] ? v : fmax_nan(fa[o], v);
            }
            seen[o] = true;
        } else if (isint) {
            ia[o] += (uint64_t)get_i(x, i);
        } else {
            fa[o] += rt_get(x, i);
        }
    }
    for (int64_t o = 0; o < nout; o++) {
        if (isint) {
            int64_t v = ir_u64_to_i64(ia[o]);
            if (n->op == OP_REDUCE_MEAN) v /= count;
            set_i(out, o, v);
        } else {
            rt_set(out, o, n->op == OP_REDUCE_MEAN ? fa[o] / (double)count : fa[o]);
        }
    }
    free(fa);
    free(ia);
    free(seen);
    return true;
}

static bool need_float(Ctx *c, const Node *n, const Tensor *out) {
    CHECK(dtype_is_float(out->dtype), "not defined for %s", dtype_name(out->dtype));
    return true;
}

static bool k_softmax(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    const Tensor *x = in[0];
    if (!need_float(c, n, out) || !check_same_shape(c, n, x, out)) return false;
    int64_t a = ir_attr_int(n, "axis", -1);
    int ax = ir_norm_axis(a, x->rank);
    CHECK(ax >= 0, "axis %lld out of range for rank %d", (long long)a, x->rank);
    int64_t outer = prod(x->shape, 0, ax), len = x->shape[ax], inner = prod(x->shape, ax + 1, x->rank);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * len * inner + i;
            double m = -INFINITY, s = 0;
            for (int64_t k = 0; k < len; k++)
                m = fmax_nan(m, rt_get(x, base + k * inner));
            for (int64_t k = 0; k < len; k++)
                s += exp(rt_get(x, base + k * inner) - m);
            for (int64_t k = 0; k < len; k++)
                rt_set(out, base + k * inner, exp(rt_get(x, base + k * inner) - m) / s);
        }
    return true;
}

/* layernorm and rmsnorm: statistics over the axes from `axis` to the last;
 * scale and bias broadcast against those trailing axes. */
static bool k_norm(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    const Tensor *x = in[0], *scale = in[1], *bias = n->op == OP_LAYERNORM && n->nin > 2 ? in[2] : NULL;
    char b1[128], b2[128];
    if (!need_float(c, n, out) || !check_same_shape(c, n, x, out)) return false;
    CHECK(scale, "missing scale");
    int64_t a = ir_attr_int(n, "axis", -1);
    int ax = ir_norm_axis(a, x->rank);
    CHECK(ax >= 0, "axis %lld out of range for rank %d", (long long)a, x->rank);
    double eps = ir_attr_float(n, "eps", n->op == OP_LAYERNORM ? 1e-5 : 1e-6);
    const int64_t *nshape = x->shape + ax;
    int nr = x->rank - ax;
    const Tensor *sb[2] = {scale, bias};
    for (int k = 0; k < 2; k++)
        if (sb[k])
            CHECK(bcast_ok(sb[k]->shape, sb[k]->rank, nshape, nr),
                  "%s %s does not broadcast to the normalised shape of %s", k ? "bias" : "scale",
                  tstr(sb[k], b1, sizeof b1), tstr(x, b2, sizeof b2));
    int64_t outer = prod(x->shape, 0, ax), inner = prod(x->shape, ax, x->rank), idx[IR_MAX_RANK];
    for (int64_t o = 0; o < outer; o++) {
        int64_t base = o * inner;
        double mean = 0, var = 0;
        if (n->op == OP_LAYERNORM) {
            for (int64_t j = 0; j < inner; j++)
                mean += rt_get(x, base + j);
            mean /= (double)inner;
        }
        for (int64_t j = 0; j < inner; j++) {
            double dv = rt_get(x, base + j) - mean;
            var += dv * dv;
        }
        var /= (double)inner;
        double inv = 1 / sqrt(var + eps);
        for (int64_t j = 0; j < inner; j++) {
            unravel(j, nshape, nr, idx);
            double y = (rt_get(x, base + j) - mean) * inv *
                       rt_get(scale, bc_off(scale->shape, scale->rank, idx, nr));
            if (bias) y += rt_get(bias, bc_off(bias->shape, bias->rank, idx, nr));
            rt_set(out, base + j, y);
        }
    }
    return true;
}

static bool k_batchnorm(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    const Tensor *x = in[0];
    if (!need_float(c, n, out) || !check_same_shape(c, n, x, out)) return false;
    CHECK(x->rank >= 2, "input must have rank >= 2 (N, C, ...), got rank %d", x->rank);
    int64_t C = x->shape[1];
    static const char *names[] = {"", "scale", "bias", "mean", "var"};
    for (int k = 1; k <= 4; k++)
        CHECK(in[k] && numel(in[k]) == C, "%s must have %lld elements (one per channel)", names[k],
              (long long)C);
    double eps = ir_attr_float(n, "eps", 1e-5);
    int64_t N = x->shape[0], inner = prod(x->shape, 2, x->rank);
    for (int64_t b = 0; b < N; b++)
        for (int64_t ch = 0; ch < C; ch++) {
            double sc = rt_get(in[1], ch), bi = rt_get(in[2], ch), mu = rt_get(in[3], ch),
                   va = rt_get(in[4], ch);
            double inv = 1 / sqrt(va + eps);
            for (int64_t i = 0; i < inner; i++) {
                int64_t off = (b * C + ch) * inner + i;
                rt_set(out, off, (rt_get(x, off) - mu) * inv * sc + bi);
            }
        }
    return true;
}

/* ---- linear algebra ---------------------------------------------------------- */

/* numpy.matmul: a 1-D a is [1,K] and a 1-D b is [K,1] with the added dim
 * removed from the result; leading (batch) dims broadcast. */
static bool k_matmul(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    const Tensor *a = in[0], *b = in[1];
    char b1[128], b2[128], b3[128];
    CHECK(a->rank >= 1 && b->rank >= 1, "operands must have rank >= 1, got %s and %s", tstr(a, b1, sizeof b1),
          tstr(b, b2, sizeof b2));
    int64_t M = a->rank == 1 ? 1 : a->shape[a->rank - 2], K = a->shape[a->rank - 1];
    int64_t Kb = b->rank == 1 ? b->shape[0] : b->shape[b->rank - 2],
            N = b->rank == 1 ? 1 : b->shape[b->rank - 1];
    int abr = a->rank > 2 ? a->rank - 2 : 0, bbr = b->rank > 2 ? b->rank - 2 : 0;
    int64_t batch[IR_MAX_RANK];
    int br = 0;
    bool ok = K == Kb && bcast_into(batch, &br, a->shape, abr) && bcast_into(batch, &br, b->shape, bbr);
    CHECK(ok, "shapes %s and %s do not match", tstr(a, b1, sizeof b1), tstr(b, b2, sizeof b2));
    int64_t want[IR_MAX_RANK + 2];
    int wr = br;
    memcpy(want, batch, sizeof(int64_t) * (size_t)br);
    if (a->rank > 1) want[wr++] = M;
    if (b->rank > 1) want[wr++] = N;
    CHECK(shape_eq(want, wr, out->shape, out->rank), "result %s, expected %s x %s", tstr(out, b3, sizeof b3),
          tstr(a, b1, sizeof b1), tstr(b, b2, sizeof b2));
    int64_t nb = prod(batch, 0, br), idx[IR_MAX_RANK];
    for (int64_t bi = 0; bi < nb; bi++) {
        unravel(bi, batch, br, idx);
        int64_t ao = bc_off(a->shape, abr, idx, br) * M * K, bo = bc_off(b->shape, bbr, idx, br) * K * N;
        for (int64_t m = 0; m < M; m++)
            for (int64_t j = 0; j < N; j++) {
                Acc acc = acc_new(out->dtype);
                for (int64_t k = 0; k < K; k++)
                    acc_madd(&acc, a, ao + m * K + k, b, bo + k * N + j);
                acc_store(out, (bi * M + m) * N + j, &acc);
            }
    }
    return true;
}

/* linear(x, w, b) = x @ w^T + b, w laid out [out, in]. */
static bool k_linear(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    const Tensor *x = in[0], *w = in[1], *b = n->nin > 2 ? in[2] : NULL;
    char b1[128], b2[128];
    CHECK(x->rank >= 1 && w->rank == 2 && x->shape[x->rank - 1] == w->shape[1],
          "shapes %s and %s do not match (w is [out, in])", tstr(x, b1, sizeof b1), tstr(w, b2, sizeof b2));
    int64_t K = w->shape[1], N = w->shape[0], M = prod(x->shape, 0, x->rank - 1);
    int64_t want[IR_MAX_RANK];
    memcpy(want, x->shape, sizeof(int64_t) * (size_t)x->rank);
    want[x->rank - 1] = N;
    CHECK(shape_eq(want, x->rank, out->shape, out->rank), "result %s does not match the operands",
          tstr(out, b1, sizeof b1));
    if (b)
        CHECK(numel(b) == N || numel(b) == 1, "bias %s must have %lld elements", tstr(b, b1, sizeof b1),
              (long long)N);
    for (int64_t m = 0; m < M; m++)
        for (int64_t j = 0; j < N; j++) {
            Acc acc = acc_new(out->dtype);
            for (int64_t k = 0; k < K; k++)
                acc_madd(&acc, x, m * K + k, w, j * K + k);
            if (b) acc_add(&acc, b, numel(b) == 1 ? 0 : j);
            acc_store(out, m * N + j, &acc);
        }
    return true;
}

/* softmax(q k^T * scale + mask) v over the last two axes, leading axes broadcast;
 * mask and scale (operands) broadcast to the scores [..., Lq, Lk]. */
static bool k_attention(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    const Tensor *q = in[0], *k = in[1], *v = in[2];
    const Tensor *mask = n->nin > 3 ? in[3] : NULL, *sc = n->nin > 4 ? in[4] : NULL;
    char b1[128], b2[128], b3[128];
    if (!need_float(c, n, out)) return false;
    CHECK(q->rank >= 2 && k->rank >= 2 && v->rank >= 2, "q, k and v must have rank >= 2");
    int64_t Lq = q->shape[q->rank - 2], D = q->shape[q->rank - 1];
    int64_t Lk = k->shape[k->rank - 2], Dv = v->shape[v->rank - 1];
    int64_t batch[IR_MAX_RANK];
    int br = 0;
    bool ok = k->shape[k->rank - 1] == D && v->shape[v->rank - 2] == Lk &&
              bcast_into(batch, &br, q->shape, q->rank - 2) &&
              bcast_into(batch, &br, k->shape, k->rank - 2) && bcast_into(batch, &br, v->shape, v->rank - 2);
    CHECK(ok, "q %s, k %s and v %s do not match", tstr(q, b1, sizeof b1), tstr(k, b2, sizeof b2),
          tstr(v, b3, sizeof b3));
    int64_t want[IR_MAX_RANK + 2];
    memcpy(want, batch, sizeof(int64_t) * (size_t)br);
    want[br] = Lq;
    want[br + 1] = Dv;
    CHECK(shape_eq(want, br + 2, out->shape, out->rank), "result %s does not match the operands",
          tstr(out, b1, sizeof b1));
    int64_t sshape[IR_MAX_RANK + 2];
    memcpy(sshape, want, sizeof sshape);
    sshape[br + 1] = Lk; /* the scores' shape, which the mask broadcasts to */
    const Tensor *bt[2] = {mask, sc};
    for (int t = 0; t < 2; t++)
        if (bt[t])
            CHECK(bcast_ok(bt[t]->shape, bt[t]->rank, sshape, br + 2),
                  "%s %s does not broadcast to the scores' shape", t ? "scale" : "mask",
                  tstr(bt[t], b1, sizeof b1));
    double scale = ir_attr_float(n, "scale", 1 / sqrt((double)D)); /* unless the scale operand is given */
    double *p = malloc(sizeof(double) * (size_t)(Lk + 1));
    if (!p) return fail(c, n, "out of memory");
    int64_t nb = prod(batch, 0, br), idx[IR_MAX_RANK + 2];
    for (int64_t bi = 0; bi < nb; bi++) {
        unravel(bi, batch, br, idx);
        int64_t qo = bc_off(q->shape, q->rank - 2, idx, br) * Lq * D;
        int64_t ko = bc_off(k->shape, k->rank - 2, idx, br) * Lk * D;
        int64_t vo = bc_off(v->shape, v->rank - 2, idx, br) * Lk * Dv;
        for (int64_t i = 0; i < Lq; i++) {
            double m = -INFINITY, s = 0;
            for (int64_t j = 0; j < Lk; j++) {
                double dot = 0;
                for (int64_t e = 0; e < D; e++)
                    dot += rt_get(q, qo + i * D + e) * rt_get(k, ko + j * D + e);
                idx[br] = i;
                idx[br + 1] = j;
                dot *= sc ? rt_get(sc, bc_off(sc->shape, sc->rank, idx, br + 2)) : scale;
                if (mask) dot += rt_get(mask, bc_off(mask->shape, mask->rank, idx, br + 2));
                p[j] = dot;
                m = fmax_nan(m, dot);
            }
            for (int64_t j = 0; j < Lk; j++)
                s += p[j] = exp(p[j] - m);
            for (int64_t e = 0; e < Dv; e++) {
                double acc = 0;
                for (int64_t j = 0; j < Lk; j++)
                    acc += p[j] / s * rt_get(v, vo + j * Dv + e);
                rt_set(out, (bi * Lq + i) * Dv + e, acc);
            }
        }
    }
    free(p);
    return true;
}

/* ---- layout ---------------------------------------------------------------------- */

static void copy_elem(Tensor *out, int64_t oi, const Tensor *in, int64_t ii) {
    size_t es = (size_t)dtype_size(out->dtype);
    memcpy((char *)out->data + (size_t)oi * es, (const char *)in->data + (size_t)ii * es, es);
}

/* reshape, squeeze, unsqueeze: the same elements in the same order. */
static bool k_copy(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    char b1[128], b2[128];
    CHECK(numel(in[0]) == numel(out) && in[0]->dtype == out->dtype, "cannot turn %s into %s",
          tstr(in[0], b1, sizeof b1), tstr(out, b2, sizeof b2));
    if (out->nbytes) memcpy(out->data, in[0]->data, out->nbytes);
    return true;
}

static bool k_transpose(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    const Tensor *x = in[0];
    char b1[128], b2[128];
    int np;
    const int64_t *perm = attr_ints(n, "perm", &np);
    int p[IR_MAX_RANK];
    bool used[IR_MAX_RANK] = {false};
    CHECK(!perm || np == x->rank, "perm has %d entries for rank %d", np, x->rank);
    for (int i = 0; i < x->rank; i++) {
        p[i] = perm ? ir_norm_axis(perm[i], x->rank) : x->rank - 1 - i;
        CHECK(p[i] >= 0 && !used[p[i]], "perm is not a permutation of 0..%d", x->rank - 1);
        used[p[i]] = true;
        CHECK(out->rank == x->rank && out->shape[i] == x->shape[p[i]], "result %s does not match %s",
              tstr(out, b1, sizeof b1), tstr(x, b2, sizeof b2));
    }
    int64_t total = numel(out), oidx[IR_MAX_RANK], iidx[IR_MAX_RANK];
    for (int64_t i = 0; i < total; i++) {
        unravel(i, out->shape, out->rank, oidx);
        for (int k = 0; k < x->rank; k++)
            iidx[p[k]] = oidx[k];
        copy_elem(out, i, x, bc_off(x->shape, x->rank, iidx, x->rank));
    }
    return true;
}

static bool k_concat(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    char b1[128], b2[128];
    int64_t a = ir_attr_int(n, "axis", 0);
    int ax = ir_norm_axis(a, out->rank);
    CHECK(ax >= 0, "axis %lld out of range for rank %d", (long long)a, out->rank);
    int64_t sum = 0;
    for (int k = 0; k < n->nin; k++) {
        bool ok = in[k] && in[k]->rank == out->rank && in[k]->dtype == out->dtype;
        for (int i = 0; ok && i < out->rank; i++)
            ok = i == ax || in[k]->shape[i] == out->shape[i];
        CHECK(ok, "operand %d %s does not fit the result %s", k + 1, in[k] ? tstr(in[k], b1, sizeof b1) : "?",
              tstr(out, b2, sizeof b2));
        sum += in[k]->shape[ax];
    }
    CHECK(sum == out->shape[ax], "operands sum to %lld along axis %d, result has %lld", (long long)sum, ax,
          (long long)out->shape[ax]);
    int64_t outer = prod(out->shape, 0, ax), inner = prod(out->shape, ax + 1, out->rank);
    size_t es = (size_t)dtype_size(out->dtype);
    int64_t at = 0; /* offset along the axis */
    for (int k = 0; k < n->nin; k++) {
        int64_t len = in[k]->shape[ax];
        for (int64_t o = 0; o < outer; o++)
            if (len > 0 && inner > 0)
                memcpy((char *)out->data + (size_t)((o * out->shape[ax] + at) * inner) * es,
                       (const char *)in[k]->data + (size_t)(o * len * inner) * es,
                       (size_t)(len * inner) * es);
        at += len;
    }
    return true;
}

/* ONNX Slice: negative starts/ends count from the end, then clamp to [0, d]
 * for positive steps and [-1, d-1] for negative ones. */
static bool k_slice(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    const Tensor *x = in[0];
    char b1[128], b2[128], err[256];
    const Attr *st = ir_attr(n, "starts"), *en = ir_attr(n, "ends");
    CHECK(st && en && st->kind == AV_DIMS && en->kind == AV_DIMS && st->n == en->n,
          "starts and ends must be lists of equal length");
    int na, ns;
    const int64_t *axes = attr_ints(n, "axes", &na), *steps = attr_ints(n, "steps", &ns);
    CHECK(!axes || na == st->n, "axes has %d entries, starts %d", na, st->n);
    CHECK(!steps || ns == st->n, "steps has %d entries, starts %d", ns, st->n);
    CHECK(out->rank == x->rank, "result %s does not match %s", tstr(out, b1, sizeof b1),
          tstr(x, b2, sizeof b2));
    int64_t start[IR_MAX_RANK], step[IR_MAX_RANK];
    bool done[IR_MAX_RANK] = {false};
    for (int i = 0; i < x->rank; i++)
        start[i] = 0, step[i] = 1;
    for (int k = 0; k < st->n; k++) {
        int ax = axes ? ir_norm_axis(axes[k], x->rank) : k;
        CHECK(ax >= 0 && ax < x->rank && !done[ax], "bad or repeated axis in axes");
        done[ax] = true;
        int64_t s, e, sp = steps ? steps[k] : 1, d = x->shape[ax], len = 0;
        if (!dim_eval(c->g->dims, st->dims[k], c->syms, &s, err, sizeof err) ||
            !dim_eval(c->g->dims, en->dims[k], c->syms, &e, err, sizeof err))
            return fail(c, n, "%s", err);
        CHECK(sp != 0, "step must not be 0");
        if (s < 0) s = s < -d ? -1 : s + d; /* -1 then clamps below */
        if (e < 0) e = e < -d ? -1 : e + d;
        if (d == 0) {
            s = 0; /* nothing to take, whatever the bounds */
        } else if (sp > 0) {
            s = s < 0 ? 0 : s > d ? d : s;
            e = e < 0 ? 0 : e > d ? d : e;
            len = e > s ? (e - s - 1) / sp + 1 : 0;
        } else {
            s = s < 0 ? 0 : s > d - 1 ? d - 1 : s;
            e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
            len = s > e ? (int64_t)((uint64_t)(s - e - 1) / ((uint64_t)0 - (uint64_t)sp)) + 1 : 0;
        }
        CHECK(len == out->shape[ax], "axis %d: the slice has %lld elements, the result %lld", ax,
              (long long)len, (long long)out->shape[ax]);
        start[ax] = s;
        step[ax] = sp;
    }
    for (int i = 0; i < x->rank; i++)
        CHECK(done[i] || out->shape[i] == x->shape[i], "result %s does not match %s",
              tstr(out, b1, sizeof b1), tstr(x, b2, sizeof b2));
    int64_t total = numel(out), idx[IR_MAX_RANK];
    for (int64_t i = 0; i < total; i++) {
        unravel(i, out->shape, out->rank, idx);
        for (int k = 0; k < x->rank; k++)
            idx[k] = start[k] + idx[k] * step[k];
        copy_elem(out, i, x, bc_off(x->shape, x->rank, idx, x->rank));
    }
    return true;
}

/* ONNX Gather: out[pre, idx..., post] = x[pre, indices[idx...], post]. */
static bool k_gather(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    const Tensor *x = in[0], *ind = in[1];
    char b1[128], b2[128], b3[128];
    int64_t a = ir_attr_int(n, "axis", 0);
    int ax = ir_norm_axis(a, x->rank);
    CHECK(ax >= 0, "axis %lld out of range for rank %d", (long long)a, x->rank);
    CHECK(is_intlike(ind->dtype) && ind->dtype != DT_BOOL, "indices must be integers, got %s",
          dtype_name(ind->dtype));
    int64_t want[2 * IR_MAX_RANK];
    int wr = 0;
    for (int i = 0; i < ax; i++)
        want[wr++] = x->shape[i];
    for (int i = 0; i < ind->rank; i++)
        want[wr++] = ind->shape[i];
    for (int i = ax + 1; i < x->rank; i++)
        want[wr++] = x->shape[i];
    CHECK(shape_eq(want, wr, out->shape, out->rank), "result %s does not match %s and indices %s",
          tstr(out, b1, sizeof b1), tstr(x, b2, sizeof b2), tstr(ind, b3, sizeof b3));
    int64_t outer = prod(x->shape, 0, ax), d = x->shape[ax], inner = prod(x->shape, ax + 1, x->rank),
            ni = numel(ind);
    for (int64_t j = 0; j < ni; j++) {
        int64_t v = get_i(ind, j), r = v < 0 ? v + d : v;
        if (r < 0 || r >= d) return trap(c, n, KTRAP_GATHER_INDEX, v, ax, d);
    }
    size_t es = (size_t)dtype_size(out->dtype), blk = (size_t)inner * es;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < ni; j++) {
            int64_t v = get_i(ind, j), r = v < 0 ? v + d : v;
            if (blk)
                memcpy((char *)out->data + (size_t)((o * ni + j) * inner) * es,
                       (const char *)x->data + (size_t)((o * d + r) * inner) * es, blk);
        }
    return true;
}

/* ---- convolution and pooling (NCHW) ------------------------------------------------ */

/* stride, dilation, padding [top, left, bottom, right] (2 entries: symmetric). */
static bool window_attrs(Ctx *c, const Node *n, int64_t st[2], int64_t dil[2], int64_t pad[4],
                         int64_t dflt_stride) {
    if (!attr_pair(c, n, "stride", dflt_stride, st) || !attr_pair(c, n, "dilation", 1, dil)) return false;
    int np;
    const int64_t *p = attr_ints(n, "padding", &np);
    CHECK(!p || np == 4 || np == 2, "padding must have 4 entries [top, left, bottom, right], got %d", np);
    for (int i = 0; i < 4; i++)
        pad[i] = p ? p[np == 4 ? i : i % 2] : 0;
    CHECK(st[0] > 0 && st[1] > 0 && dil[0] > 0 && dil[1] > 0, "stride and dilation must be positive");
    return true;
}

static int64_t window_out(int64_t in, int64_t k, int64_t st, int64_t dil, int64_t p0, int64_t p1) {
    int64_t span = in + p0 + p1 - dil * (k - 1) - 1;
    return span < 0 ? 0 : span / st + 1;
}

static bool k_conv2d(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    const Tensor *x = in[0], *w = in[1], *b = n->nin > 2 ? in[2] : NULL;
    char b1[128], b2[128], b3[128];
    int64_t st[2], dil[2], pad[4], G = ir_attr_int(n, "groups", 1);
    if (!window_attrs(c, n, st, dil, pad, 1)) return false;
    CHECK(x->rank == 4 && w->rank == 4 && out->rank == 4,
          "x and w must be 4-D (NCHW, [M, C/groups, kh, kw])");
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t M = w->shape[0], CG = w->shape[1], KH = w->shape[2], KW = w->shape[3];
    CHECK(G > 0 && C % G == 0 && M % G == 0 && CG == C / G, "x %s and w %s do not match with groups=%lld",
          tstr(x, b1, sizeof b1), tstr(w, b2, sizeof b2), (long long)G);
    int64_t OH = window_out(H, KH, st[0], dil[0], pad[0], pad[2]),
            OW = window_out(W, KW, st[1], dil[1], pad[1], pad[3]);
    int64_t want[4] = {N, M, OH, OW};
    CHECK(shape_eq(want, 4, out->shape, 4), "result %s, expected [%lld,%lld,%lld,%lld] from %s and %s",
          tstr(out, b3, sizeof b3), (long long)N, (long long)M, (long long)OH, (long long)OW,
          tstr(x, b1, sizeof b1), tstr(w, b2, sizeof b2));
    if (b) CHECK(numel(b) == M, "bias %s must have %lld elements", tstr(b, b1, sizeof b1), (long long)M);
    int64_t MG = M / G;
    for (int64_t bn = 0; bn < N; bn++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    Acc acc = acc_new(out->dtype);
                    int64_t g = m / MG;
                    for (int64_t cg = 0; cg < CG; cg++)
                        for (int64_t kh = 0; kh < KH; kh++)
                            for (int64_t kw = 0; kw < KW; kw++) {
                                int64_t ih = oh * st[0] - pad[0] + kh * dil[0],
                                        iw = ow * st[1] - pad[1] + kw * dil[1];
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                acc_madd(&acc, x, ((bn * C + g * CG + cg) * H + ih) * W + iw, w,
                                         ((m * CG + cg) * KH + kh) * KW + kw);
                            }
                    if (b) acc_add(&acc, b, m);
                    acc_store(out, ((bn * M + m) * OH + oh) * OW + ow, &acc);
                }
    return true;
}

/* max_pool2d (padding never wins) and avg_pool2d (divides by the number of
 * non-padding elements, ONNX count_include_pad=0). */
static bool k_pool(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    const Tensor *x = in[0];
    char b1[128], b2[128];
    int64_t k[2], st[2], dil[2], pad[4];
    int nk;
    CHECK(attr_ints(n, "kernel", &nk) && nk == 2, "kernel must have 2 entries");
    if (!attr_pair(c, n, "kernel", 1, k) || !window_attrs(c, n, st, dil, pad, 1)) return false;
    CHECK(k[0] > 0 && k[1] > 0, "kernel must be positive");
    CHECK(x->rank >= 3 && out->rank == x->rank, "input must be NCHW, got %s", tstr(x, b1, sizeof b1));
    int r = x->rank;
    int64_t H = x->shape[r - 2], W = x->shape[r - 1];
    int64_t OH = window_out(H, k[0], st[0], dil[0], pad[0], pad[2]),
            OW = window_out(W, k[1], st[1], dil[1], pad[1], pad[3]);
    int64_t want[IR_MAX_RANK];
    memcpy(want, x->shape, sizeof(int64_t) * (size_t)r);
    want[r - 2] = OH;
    want[r - 1] = OW;
    CHECK(shape_eq(want, r, out->shape, r), "result %s does not match the input %s", tstr(out, b1, sizeof b1),
          tstr(x, b2, sizeof b2));
    bool isint = is_intlike(out->dtype), ismax = n->op == OP_MAX_POOL2D;
    int64_t planes = prod(x->shape, 0, r - 2);
    for (int64_t pl = 0; pl < planes; pl++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                double fm = -INFINITY, fs = 0;
                int64_t im = 0, is = 0, cnt = 0;
                for (int64_t kh = 0; kh < k[0]; kh++)
                    for (int64_t kw = 0; kw < k[1]; kw++) {
                        int64_t ih = oh * st[0] - pad[0] + kh * dil[0],
                                iw = ow * st[1] - pad[1] + kw * dil[1];
                        if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                        int64_t off = (pl * H + ih) * W + iw;
                        if (isint) {
                            int64_t v = get_i(x, off);
                            if (!cnt || v > im) im = v;
                            is = ir_u64_to_i64((uint64_t)is + (uint64_t)v);
                        } else {
                            double v = rt_get(x, off);
                            fm = cnt ? fmax_nan(fm, v) : v;
                            fs += v;
                        }
                        cnt++;
                    }
                int64_t o = (pl * OH + oh) * OW + ow;
                CHECK(cnt > 0 || !isint, "a window lies entirely in the padding");
                if (isint)
                    set_i(out, o, ismax ? im : is / cnt);
                else
                    rt_set(out, o, ismax ? fm : fs / (double)cnt);
            }
    return true;
}

static bool k_global_avg_pool(Ctx *c, const Node *n, Tensor *const *in, Tensor *out) {
    const Tensor *x = in[0];
    char b1[128];
    CHECK(x->rank >= 3, "input must be NCHW, got %s", tstr(x, b1, sizeof b1));
    int64_t planes = x->shape[0] * x->shape[1], sp = prod(x->shape, 2, x->rank);
    CHECK(numel(out) == planes, "result %s does not match the input", tstr(out, b1, sizeof b1));
    bool isint = is_intlike(out->dtype);
    if (isint) CHECK(sp > 0, "mean of zero elements");
    for (int64_t p = 0; p < planes; p++) {
        Acc acc = acc_new(out->dtype);
        for (int64_t i = 0; i < sp; i++)
            acc_add(&acc, x, p * sp + i);
        if (isint)
            set_i(out, p, ir_u64_to_i64(acc.u) / sp);
        else
            rt_set(out, p, acc.f / (double)sp);
    }
    return true;
}

/* ---- the operator table --------------------------------------------------------------- */

static const Kernel kernels[OP_COUNT] = {
    [OP_CONST] = k_const,
    [OP_ADD] = k_elementwise,
    [OP_SUB] = k_elementwise,
    [OP_MUL] = k_elementwise,
    [OP_DIV] = k_elementwise,
    [OP_POW] = k_elementwise,
    [OP_MAXIMUM] = k_elementwise,
    [OP_MINIMUM] = k_elementwise,
    [OP_NEG] = k_elementwise,
    [OP_ABS] = k_elementwise,
    [OP_EXP] = k_elementwise,
    [OP_LOG] = k_elementwise,
    [OP_SQRT] = k_elementwise,
    [OP_RSQRT] = k_elementwise,
    [OP_RECIPROCAL] = k_elementwise,
    [OP_TANH] = k_elementwise,
    [OP_SIGMOID] = k_elementwise,
    [OP_RELU] = k_elementwise,
    [OP_ERF] = k_elementwise,
    [OP_SILU] = k_elementwise,
    [OP_GELU] = k_elementwise,
    [OP_CLIP] = k_elementwise,
    [OP_LESS] = k_elementwise,
    [OP_GREATER] = k_elementwise,
    [OP_EQUAL] = k_elementwise,
    [OP_WHERE] = k_elementwise,
    [OP_CAST] = k_cast,
    [OP_REDUCE_SUM] = k_reduce,
    [OP_REDUCE_MEAN] = k_reduce,
    [OP_REDUCE_MAX] = k_reduce,
    [OP_SOFTMAX] = k_softmax,
    [OP_LAYERNORM] = k_norm,
    [OP_RMSNORM] = k_norm,
    [OP_MATMUL] = k_matmul,
    [OP_LINEAR] = k_linear,
    [OP_RESHAPE] = k_copy,
    [OP_TRANSPOSE] = k_transpose,
    [OP_CONCAT] = k_concat,
    [OP_SLICE] = k_slice,
    [OP_GATHER] = k_gather,
    [OP_UNSQUEEZE] = k_copy,
    [OP_SQUEEZE] = k_copy,
    [OP_CONV2D] = k_conv2d,
    [OP_MAX_POOL2D] = k_pool,
    [OP_AVG_POOL2D] = k_pool,
    [OP_GLOBAL_AVG_POOL] = k_global_avg_pool,
    [OP_BATCHNORM] = k_batchnorm,
    [OP_ATTENTION] = k_attention,
};

/* ---- binding dims from the inputs ------------------------------------------------------ */

/* The declared type as text ("f32[B,S,768]", as ir_type_str writes it) in a
 * buffer of the calling thread, valid until its next call.  Not in the
 * graph's arena: a run only reads the graph, so that threads can share one
 * (runtime/api.c) and repeated runs do not grow it. */
static const char *node_type_str(const Graph *g, const Type *t) {
    static _Thread_local char buf[1024];
    size_t len = (size_t)snprintf(buf, sizeof buf, "%s", dtype_name(t->dtype));
    for (int i = 0; i < t->rank && len < sizeof buf - 2; i++) {
        buf[len++] = i ? ',' : '[';
        len += (size_t)dim_snprint(g->dims, t->dim[i], buf + len, sizeof buf - len);
        if (len > sizeof buf - 2) len = sizeof buf - 2; /* truncated */
    }
    if (t->rank) buf[len++] = ']';
    buf[len] = 0;
    return buf;
}

/* Probe values for deciding whether an expression depends on a symbol:
 * highly composite so exact divisions by small numbers stay exact. */
enum { PROBE = 5040 };

/* Does dim expression `e` depend on symbol `s`?  Evaluates with s at three
 * probe values (other symbols as in `vals`); a failed evaluation counts as
 * "depends" (the conservative answer). */
static bool dim_depends(const DimTable *t, DimId e, int s, int64_t *vals) {
    int64_t saved = vals[s], r[3];
    bool dep = false;
    for (int k = 0; k < 3 && !dep; k++) {
        vals[s] = PROBE * (k + 1);
        if (!dim_eval(t, e, vals, &r[k], NULL, 0))
            dep = true;
        else if (k > 0 && r[k] != r[0])
            dep = true;
    }
    vals[s] = saved;
    return dep;
}

/* Solves e(s) == actual for s >= 0 assuming e is linear in s; verified. */
static bool dim_solve(const DimTable *t, DimId e, int s, int64_t actual, int64_t *vals, int64_t *out) {
    int64_t saved = vals[s], y1, y2, den, num, v = -1, q;
    vals[s] = PROBE;
    bool ok = dim_eval(t, e, vals, &y1, NULL, 0);
    vals[s] = 2 * PROBE;
    ok = ok && dim_eval(t, e, vals, &y2, NULL, 0);
    /* e(s) = y1 + (s - PROBE) * (y2 - y1) / PROBE  =>  s = PROBE + (actual - y1) * PROBE / (y2 - y1) */
    ok = ok && !__builtin_sub_overflow(y2, y1, &den) && den != 0 &&
         !__builtin_sub_overflow(actual, y1, &num) && !__builtin_mul_overflow(num, (int64_t)PROBE, &num) &&
         !(num == INT64_MIN && den == -1) && num % den == 0 &&
         !__builtin_add_overflow((int64_t)PROBE, num / den, &v) && v >= 0;
    if (ok) {
        vals[s] = v;
        ok = dim_eval(t, e, vals, &q, NULL, 0) && q == actual; /* the linear guess must be exact */
    }
    vals[s] = saved;
    if (ok) *out = v;
    return ok;
}

/* Whether any type, dim attribute or dim constant of the graph depends on s. */
static bool graph_uses_sym(const Graph *g, int s, int64_t *vals) {
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        for (int k = 0; k < n->type.rank; k++)
            if (dim_depends(g->dims, n->type.dim[k], s, vals)) return true;
        if (n->op == OP_CONST && n->dval != DIM_INVALID && dim_depends(g->dims, n->dval, s, vals))
            return true;
        for (int a = 0; a < n->nattrs; a++)
            if (n->attrs[a].kind == AV_DIMS)
                for (int k = 0; k < n->attrs[a].n; k++)
                    if (dim_depends(g->dims, n->attrs[a].dims[k], s, vals)) return true;
    }
    return false;
}

static const char *input_name(const Node *n) { return n->name ? n->name : "?"; }

bool rt_bind_dims(const Graph *g, Tensor *const *inputs, int ninputs, int64_t *sym_values, Diag *d) {
    const DimTable *dt = g->dims;
    int nsym = dim_sym_count(dt), nin = 0, errs = diag_error_count(d);
    for (int i = 0; i < g->nnodes; i++)
        nin += g->nodes[i]->op == OP_INPUT;
    const Node **inodes = calloc((size_t)nin + 1, sizeof *inodes);
    bool *valid = calloc((size_t)nin + 1, sizeof *valid),
         *isbound = calloc((size_t)nsym + 1, sizeof *isbound);
    int *from = calloc((size_t)nsym + 1, sizeof *from);
    if (!inodes || !valid || !isbound || !from) {
        free(inodes), free(valid), free(isbound), free(from);
        diag_error(d, g->loc, "out of memory");
        return false;
    }
    for (int i = 0, k = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_INPUT) inodes[k++] = g->nodes[i];
    for (int s = 0; s < nsym; s++)
        sym_values[s] = PROBE;
    char got[256];

    /* presence, dtype and rank */
    if (ninputs > nin)
        diag_error(d, g->loc, "too many inputs: model '%s' takes %d, got %d", g->name ? g->name : "?", nin,
                   ninputs);
    for (int i = 0; i < nin; i++) {
        const Node *n = inodes[i];
        const Tensor *t = i < ninputs && inputs ? inputs[i] : NULL;
        if (!t) {
            diag_error(d, n->loc, "missing input '%s'", input_name(n));
            continue;
        }
        rt_shape_str(t->dtype, t->rank, t->shape, got, sizeof got);
        if (t->dtype != n->type.dtype)
            diag_error(d, n->loc, "input '%s': expected dtype %s, got %s", input_name(n),
                       dtype_name(n->type.dtype), dtype_name(t->dtype));
        else if (t->rank != n->type.rank)
            diag_error(d, n->loc, "input '%s': expected %s, got %s (rank %d != %d)", input_name(n),
                       node_type_str(g, &n->type), got, n->type.rank, t->rank);
        else
            valid[i] = true;
    }

    /* symbols bound directly by an entry that is exactly the symbol */
    for (int i = 0; i < nin; i++) {
        if (!valid[i]) continue;
        const Node *n = inodes[i];
        for (int j = 0; j < n->type.rank; j++) {
            int s;
            if (!dim_is_sym(dt, n->type.dim[j], &s)) continue;
            int64_t v = inputs[i]->shape[j];
            if (!isbound[s]) {
                isbound[s] = true, sym_values[s] = v, from[s] = i;
            } else if (sym_values[s] != v) {
                diag_error(d, n->loc,
                           "input '%s': inconsistent binding for %s: %lld from '%s', %lld from '%s'",
                           input_name(n), dim_sym_name(dt, s), (long long)sym_values[s],
                           input_name(inodes[from[s]]), (long long)v, input_name(n));
                valid[i] = false;
                break;
            }
        }
    }

    /* symbols that appear only inside expressions: solve linear ones */
    for (bool progress = true; progress;) {
        progress = false;
        for (int i = 0; i < nin; i++) {
            if (!valid[i]) continue;
            const Node *n = inodes[i];
            for (int j = 0; j < n->type.rank; j++) {
                int only = -1, cnt = 0;
                for (int s = 0; s < nsym; s++)
                    if (!isbound[s] && dim_depends(dt, n->type.dim[j], s, sym_values)) only = s, cnt++;
                int64_t v;
                if (cnt == 1 && dim_solve(dt, n->type.dim[j], only, inputs[i]->shape[j], sym_values, &v)) {
                    isbound[only] = true, sym_values[only] = v, from[only] = i;
                    progress = true;
                }
            }
        }
    }

    /* every symbol the graph uses must have a value */
    for (int s = 0; s < nsym; s++) {
        if (isbound[s]) continue;
        if (!graph_uses_sym(g, s, sym_values)) {
            sym_values[s] = 0;
            continue;
        }
        const char *where = NULL;
        for (int i = 0; i < nin && !where; i++)
            for (int j = 0; j < inodes[i]->type.rank && !where; j++)
                if (dim_depends(dt, inodes[i]->type.dim[j], s, sym_values)) where = input_name(inodes[i]);
        if (where)
            diag_error(d, dim_sym_loc(dt, s),
                       "cannot determine dimension %s from the inputs: it appears only in expressions (input "
                       "'%s') that do "
                       "not determine it",
                       dim_sym_name(dt, s), where);
        else
            diag_error(d, dim_sym_loc(dt, s), "cannot determine dimension %s: no input has it in its shape",
                       dim_sym_name(dt, s));
    }

    /* bounds */
    for (int s = 0; s < nsym; s++)
        if (isbound[s] && dim_sym_bound(dt, s) >= 0 && sym_values[s] > dim_sym_bound(dt, s))
            diag_error(d, inodes[from[s]]->loc, "input '%s': %s = %lld exceeds its bound %lld",
                       input_name(inodes[from[s]]), dim_sym_name(dt, s), (long long)sym_values[s],
                       (long long)dim_sym_bound(dt, s));

    /* every declared dim against the actual shape */
    if (diag_error_count(d) == errs)
        for (int i = 0; i < nin; i++) {
            if (!valid[i]) continue;
            const Node *n = inodes[i];
            const Tensor *t = inputs[i];
            rt_shape_str(t->dtype, t->rank, t->shape, got, sizeof got);
            for (int j = 0; j < n->type.rank; j++) {
                int64_t v;
                char err[256], e[128];
                dim_snprint(dt, n->type.dim[j], e, sizeof e);
                if (!dim_eval(dt, n->type.dim[j], sym_values, &v, err, sizeof err)) {
                    diag_error(d, n->loc, "input '%s': expected %s, got %s (dimension %d: %s)", input_name(n),
                               node_type_str(g, &n->type), got, j, err);
                    break;
                }
                if (v != t->shape[j]) {
                    int64_t cv;
                    if (dim_is_const(dt, n->type.dim[j], &cv))
                        diag_error(d, n->loc, "input '%s': expected %s, got %s (dimension %d: %lld != %lld)",
                                   input_name(n), node_type_str(g, &n->type), got, j, (long long)v,
                                   (long long)t->shape[j]);
                    else
                        diag_error(d, n->loc,
                                   "input '%s': expected %s, got %s (dimension %d: %s = %lld != %lld)",
                                   input_name(n), node_type_str(g, &n->type), got, j, e, (long long)v,
                                   (long long)t->shape[j]);
                    break;
                }
            }
        }
    free(inodes), free(valid), free(isbound), free(from);
    return diag_error_count(d) == errs;
}

/* ---- checking the params --------------------------------------------------------------- */

/* Checks one param against its declared type; false after reporting. */
static bool check_param(const Graph *g, const Node *n, const Tensor *t, const int64_t *syms, Diag *d) {
    const char *name = n->name ? n->name : "?", *key = n->key ? n->key : name;
    if (!t) {
        diag_error(d, n->loc, "missing weight '%s' (key '%s')", name, key);
        return false;
    }
    char who[512], got[256], err[256];
    if (strcmp(key, name))
        snprintf(who, sizeof who, "weight '%s' (key '%s')", name, key);
    else
        snprintf(who, sizeof who, "weight '%s'", name);
    rt_shape_str(t->dtype, t->rank, t->shape, got, sizeof got);
    const char *want = node_type_str(g, &n->type);
    bool ok = t->dtype == n->type.dtype && t->rank == n->type.rank;
    for (int j = 0; ok && j < n->type.rank; j++) {
        int64_t v;
        if (!syms && !dim_is_const(g->dims, n->type.dim[j], &v)) {
            diag_error(d, n->loc, "%s: its shape %s is symbolic; bind the dims first", who, want);
            return false;
        }
        if (syms && !dim_eval(g->dims, n->type.dim[j], syms, &v, err, sizeof err)) {
            diag_error(d, n->loc, "%s: expected %s, got %s (%s)", who, want, got, err);
            return false;
        }
        ok = v == t->shape[j];
    }
    if (!ok) diag_error(d, n->loc, "%s: expected %s, got %s", who, want, got);
    return ok;
}

bool rt_check_params_bound(const Graph *g, Tensor *const *params, const int64_t *sym_values, Diag *d) {
    bool ok = true;
    for (int i = 0, k = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_PARAM) {
            ok &= check_param(g, g->nodes[i], params ? params[k] : NULL, sym_values, d);
            k++;
        }
    return ok;
}

bool rt_check_params(const Graph *g, Tensor *const *params, Diag *d) {
    return rt_check_params_bound(g, params, NULL, d);
}

/* ---- running ---------------------------------------------------------------------------- */

/* Evaluates node n's declared type into a concrete shape. */
static bool eval_shape(Ctx *c, const Node *n, int64_t *shape) {
    char err[256];
    for (int k = 0; k < n->type.rank; k++)
        if (!dim_eval(c->g->dims, n->type.dim[k], c->syms, &shape[k], err, sizeof err))
            return fail(c, n, "cannot evaluate the result type %s: %s", node_type_str(c->g, &n->type), err);
        else if (shape[k] < 0)
            return fail(c, n, "the result type %s has a negative dimension %lld",
                        node_type_str(c->g, &n->type), (long long)shape[k]);
    return true;
}

static Tensor *clone(const Tensor *t) {
    Tensor *r = rt_tensor_new(t->dtype, t->rank, t->shape);
    if (r && t->nbytes) memcpy(r->data, t->data, t->nbytes);
    return r;
}

bool rt_interp_run(const Graph *g, Tensor *const *inputs, int ninputs, Tensor *const *params,
                   Tensor **outputs, Diag *d) {
    int errs = diag_error_count(d), nsym = dim_sym_count(g->dims), nn = g->nnodes;
    for (int i = 0; i < g->noutputs; i++)
        outputs[i] = NULL;
    int64_t *syms = calloc((size_t)nsym + 1, sizeof *syms);
    Tensor **vals = calloc((size_t)nn + 1, sizeof *vals);
    bool *borrowed = calloc((size_t)nn + 1, sizeof *borrowed);
    int *last = calloc((size_t)nn + 1, sizeof *last);
    bool ok = syms && vals && borrowed && last;
    if (!ok) diag_error(d, g->loc, "out of memory");
    ok = ok && rt_bind_dims(g, inputs, ninputs, syms, d) && rt_check_params_bound(g, params, syms, d);
    Ctx c = {g, d, syms};

    /* last use of every value: its index, or the last consumer, or nn for outputs */
    if (ok) {
        for (int i = 0; i < nn; i++) {
            last[i] = i;
            for (int k = 0; k < g->nodes[i]->nin; k++) {
                const Node *o = g->nodes[i]->in[k];
                if (!o) continue;
                if (o->id < 0 || o->id >= i || g->nodes[o->id] != o) {
                    ok = fail(&c, g->nodes[i], "operand %d is not defined before its use", k + 1);
                    break;
                }
                last[o->id] = i;
            }
        }
        for (int i = 0; i < g->noutputs; i++) {
            const Node *o = g->outputs[i].node;
            if (!o || o->id < 0 || o->id >= nn || g->nodes[o->id] != o) {
                diag_error(d, g->outputs[i].loc, "output '%s' is not a node of the graph",
                           g->outputs[i].name ? g->outputs[i].name : "?");
                ok = false;
            } else {
                last[o->id] = nn;
            }
        }
    }

    int ii = 0, pi = 0;
    for (int i = 0; ok && i < nn; i++) {
        const Node *n = g->nodes[i];
        if (n->op == OP_INPUT || n->op == OP_PARAM) {
            vals[i] = n->op == OP_INPUT ? inputs[ii++] : params[pi++];
            borrowed[i] = true;
            continue;
        }
        Tensor *in[16], **inp = in;
        if (n->nin > 16) inp = calloc((size_t)n->nin, sizeof *inp);
        if (!inp) {
            ok = fail(&c, n, "out of memory");
            break;
        }
        for (int k = 0; k < n->nin; k++)
            inp[k] = n->in[k] ? vals[n->in[k]->id] : NULL;
        int64_t shape[IR_MAX_RANK];
        if ((unsigned)n->op >= OP_COUNT || !kernels[n->op]) {
            ok = fail(&c, n, "no reference implementation");
        } else if (n->type.rank < 0 || n->type.rank > IR_MAX_RANK) {
            ok = fail(&c, n, "bad result rank %d", n->type.rank);
        } else if ((ok = eval_shape(&c, n, shape))) {
            vals[i] = rt_tensor_new(n->type.dtype, n->type.rank, shape);
            if (!vals[i]) {
                char b[256];
                rt_shape_str(n->type.dtype, n->type.rank, shape, b, sizeof b);
                ok = fail(&c, n, "cannot allocate %s", b);
            } else {
                for (int k = 0; ok && k < n->nin; k++)
                    if (n->in[k] && !inp[k]) ok = fail(&c, n, "operand %d has no value", k + 1);
                ok = ok && kernels[n->op](&c, n, inp, vals[i]);
            }
        }
        if (inp != in) free(inp);
        /* free values whose last use was this node */
        for (int k = 0; k < n->nin; k++) {
            const Node *o = n->in[k];
            if (o && last[o->id] == i && !borrowed[o->id]) {
                rt_tensor_free(vals[o->id]);
                vals[o->id] = NULL;
            }
        }
        if (last[i] == i && !borrowed[i]) {
            rt_tensor_free(vals[i]);
            vals[i] = NULL;
        }
    }

    for (int i = 0; ok && i < g->noutputs; i++) {
        outputs[i] = clone(vals[g->outputs[i].node->id]);
        if (!outputs[i]) {
            diag_error(d, g->outputs[i].loc, "out of memory copying output '%s'", g->outputs[i].name);
            ok = false;
        }
    }
    if (!ok)
        for (int i = 0; i < g->noutputs; i++) {
            rt_tensor_free(outputs[i]);
            outputs[i] = NULL;
        }
    for (int i = 0; vals && borrowed && i < nn; i++)
        if (!borrowed[i]) rt_tensor_free(vals[i]);
    free(syms), free(vals), free(borrowed), free(last);
    return ok && diag_error_count(d) == errs;
}
