/* The kernel-IR evaluator (see kir_eval.h).
 *
 * A tree walker, written to be obviously faithful to kir.h rather than fast:
 * one recursive function per expression and one per statement block, values
 * in a small union (float for KT_F32, int64 for KT_I64 and KT_BOOL).  Float
 * arithmetic is C float arithmetic (the compiler must not contract or widen:
 * the build uses the default FP_CONTRACT=off for C17 without -ffast-math, and
 * x86-64 computes float in SSE), so a value here is what an f32 kernel on any
 * IEEE backend computes up to the accuracy of the libm functions.
 *
 * Integer semantics: add, sub, mul, neg and abs wrap around in 64 bits (done
 * in uint64); div truncates toward zero with INT64_MIN / -1 = INT64_MIN; a
 * division or remainder by zero is an error (lowering guards every user-level
 * integer division, so one reaching here is a bug).  KO_WRAP keeps the low 8
 * or 32 bits as a signed value (on f32: rounds to f16/bf16, ir_dtype_round).
 * KO_CAST float -> i64 truncates, saturates at the i64 range and maps NaN to
 * 0; -> bool is != 0 (NaN is true).
 *
 * Every load and store is checked against the element count of its buffer's
 * node at the bound dims; an out-of-range index stops the kernel with an error
 * naming the kernel, the buffer and the index. */
#include "kir_eval.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef union {
    float f;
    int64_t i; /* KT_I64, and KT_BOOL as 0/1 */
} V;

typedef struct {
    const Graph *g;
    const Kernel *k;
    unsigned char *const *mem;
    const int64_t *nelem; /* per buffer */
    const int64_t *dims;
    int64_t *vars;
    V *loc;
    Diag *d;
    bool bad;
    KTrapRecord *trap; /* the run's record of run-time errors (ir/trap.h) */
} Ev;

static void fail(Ev *E, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(Ev *E, const char *fmt, ...) {
    if (E->bad) return;
    E->bad = true;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    diag_error(E->d, loc_file(E->g->file), "kernel %s: %s", E->k->name, buf);
}

static int64_t f2i(float f) {
    if (isnan(f)) return 0;
    if (f <= -9223372036854775808.0f) return INT64_MIN;
    if (f >= 9223372036854775808.0f) return INT64_MAX;
    return (int64_t)f;
}

static float sigmoidf(float x) { return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x)); }
static float fmaxn(float a, float b) { return isnan(a) || isnan(b) ? NAN : a > b ? a : b; }
static float fminn(float a, float b) { return isnan(a) || isnan(b) ? NAN : a < b ? a : b; }

static bool in_range(Ev *E, int buf, int64_t i, const char *what) {
    if (i >= 0 && i < E->nelem[buf]) return true;
    const Node *n = E->k->bufs[buf].node;
    fail(E, "%s of b%d ('%s', %" PRId64 " elements) at index %" PRId64 " is out of range", what, buf,
         n->name ? n->name : "_", E->nelem[buf], i);
    return false;
}

static V load(Ev *E, int buf, int64_t i) {
    V r = {.i = 0};
    if (!in_range(E, buf, i, "load")) return r;
    const unsigned char *p = E->mem[buf];
    switch (E->k->bufs[buf].dtype) {
    case DT_F32: memcpy(&r.f, p + i * 4, 4); break;
    case DT_F16: {
        uint16_t h;
        memcpy(&h, p + i * 2, 2);
        r.f = ir_f16_to_f32(h);
        break;
    }
    case DT_BF16: {
        uint16_t h;
        memcpy(&h, p + i * 2, 2);
        r.f = ir_bf16_to_f32(h);
        break;
    }
    case DT_I8: r.i = (int8_t)p[i]; break;
    case DT_I32: {
        int32_t v;
        memcpy(&v, p + i * 4, 4);
        r.i = v;
        break;
    }
    case DT_I64: memcpy(&r.i, p + i * 8, 8); break;
    case DT_BOOL: r.i = p[i] != 0; break;
    default: fail(E, "bad dtype of b%d", buf);
    }
    return r;
}

static void store(Ev *E, int buf, int64_t i, V v) {
    if (!in_range(E, buf, i, "store")) return;
    unsigned char *p = E->mem[buf];
    switch (E->k->bufs[buf].dtype) {
    case DT_F32: memcpy(p + i * 4, &v.f, 4); break;
    case DT_F16: {
        uint16_t h = ir_f32_to_f16(v.f);
        memcpy(p + i * 2, &h, 2);
        break;
    }
    case DT_BF16: {
        uint16_t h = ir_f32_to_bf16(v.f);
        memcpy(p + i * 2, &h, 2);
        break;
    }
    case DT_I8: {
        int8_t x = (int8_t)ir_wrap_int(v.i, DT_I8);
        memcpy(p + i, &x, 1);
        break;
    }
    case DT_I32: {
        int32_t x = (int32_t)ir_wrap_int(v.i, DT_I32);
        memcpy(p + i * 4, &x, 4);
        break;
    }
    case DT_I64: memcpy(p + i * 8, &v.i, 8); break;
    case DT_BOOL: p[i] = v.i != 0; break;
    default: fail(E, "bad dtype of b%d", buf);
    }
}

static V ev(Ev *E, const KExpr *e);

static V un(Ev *E, const KExpr *e) {
    V a = ev(E, e->a), r = {.i = 0};
    if (e->op == KO_CAST) {
        KType from = e->a->type, to = e->type;
        if (to == KT_F32)
            r.f = from == KT_F32 ? a.f : (float)a.i;
        else if (to == KT_I64)
            r.i = from == KT_F32 ? f2i(a.f) : a.i;
        else
            r.i = from == KT_F32 ? a.f != 0 : a.i != 0;
        return r;
    }
    if (e->op == KO_WRAP) {
        if (e->type == KT_F32)
            r.f = (float)ir_dtype_round(e->dt, a.f);
        else
            r.i = ir_wrap_int(a.i, e->dt);
        return r;
    }
    if (e->op == KO_NOT) {
        r.i = !a.i;
        return r;
    }
    if (e->type == KT_F32) {
        float x = a.f;
        switch (e->op) {
        case KO_NEG: r.f = -x; break;
        case KO_ABS: r.f = fabsf(x); break;
        case KO_EXP: r.f = expf(x); break;
        case KO_LOG: r.f = logf(x); break;
        case KO_SQRT: r.f = sqrtf(x); break;
        case KO_RSQRT: r.f = 1.0f / sqrtf(x); break;
        case KO_RECIP: r.f = 1.0f / x; break;
        case KO_TANH: r.f = tanhf(x); break;
        case KO_SIGMOID: r.f = sigmoidf(x); break;
        case KO_RELU: r.f = x < 0 ? 0.0f : x; break;
        case KO_ERF: r.f = erff(x); break;
        case KO_SILU: r.f = x * sigmoidf(x); break;
        case KO_GELU: r.f = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); break;
        case KO_GELU_TANH:
            r.f = 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
            break;
        default: fail(E, "unary %s is not defined for f32", kir_op_name(e->op));
        }
        return r;
    }
    uint64_t u = (uint64_t)a.i;
    switch (e->op) {
    case KO_NEG: r.i = ir_u64_to_i64(0 - u); break;
    case KO_ABS: r.i = a.i < 0 ? ir_u64_to_i64(0 - u) : a.i; break;
    case KO_RELU: r.i = a.i < 0 ? 0 : a.i; break;
    default: fail(E, "unary %s is not defined for %s", kir_op_name(e->op), kir_type_name(e->type));
    }
    return r;
}

static int64_t ipow(int64_t b, int64_t e) {
    if (e < 0) return b == 1 ? 1 : b == -1 ? ((e & 1) ? -1 : 1) : 0;
    uint64_t r = 1, x = (uint64_t)b;
    for (; e > 0; e >>= 1) {
        if (e & 1) r *= x;
        x *= x;
    }
    return ir_u64_to_i64(r);
}

static V bin(Ev *E, const KExpr *e) {
    V r = {.i = 0};
    if (e->op == KO_AND || e->op == KO_OR) { /* short-circuit like C; both sides are pure */
        V a = ev(E, e->a);
        if (e->op == KO_AND ? !a.i : a.i) {
            r.i = e->op == KO_OR;
            return r;
        }
        r.i = ev(E, e->b).i != 0;
        return r;
    }
    V a = ev(E, e->a), b = ev(E, e->b);
    KType t = e->a->type;
    if (t == KT_F32) {
        float x = a.f, y = b.f;
        switch (e->op) {
        case KO_ADD: r.f = x + y; break;
        case KO_SUB: r.f = x - y; break;
        case KO_MUL: r.f = x * y; break;
        case KO_DIV: r.f = x / y; break;
        case KO_POW: r.f = powf(x, y); break;
        case KO_MAX: r.f = fmaxn(x, y); break;
        case KO_MIN: r.f = fminn(x, y); break;
        case KO_LT: r.i = x < y; break;
        case KO_GT: r.i = x > y; break;
        case KO_LE: r.i = x <= y; break;
        case KO_GE: r.i = x >= y; break;
        case KO_EQ: r.i = x == y; break;
        case KO_NE: r.i = x != y; break;
        default: fail(E, "binary %s is not defined for f32", kir_op_name(e->op));
        }
        return r;
    }
    int64_t x = a.i, y = b.i;
    switch (e->op) {
    case KO_ADD: r.i = ir_u64_to_i64((uint64_t)x + (uint64_t)y); break;
    case KO_SUB: r.i = ir_u64_to_i64((uint64_t)x - (uint64_t)y); break;
    case KO_MUL: r.i = ir_u64_to_i64((uint64_t)x * (uint64_t)y); break;
    case KO_DIV:
    case KO_MOD:
        if (y == 0) {
            fail(E, "i64 %s by zero (%" PRId64 " %s 0)", e->op == KO_DIV ? "division" : "remainder", x,
                 kir_op_name(e->op));
            break;
        }
        if (y == -1)
            r.i = e->op == KO_DIV ? ir_u64_to_i64(0 - (uint64_t)x) : 0;
        else
            r.i = e->op == KO_DIV ? x / y : x % y;
        break;
    case KO_POW: r.i = ipow(x, y); break;
    case KO_MAX: r.i = x > y ? x : y; break;
    case KO_MIN: r.i = x < y ? x : y; break;
    case KO_LT: r.i = x < y; break;
    case KO_GT: r.i = x > y; break;
    case KO_LE: r.i = x <= y; break;
    case KO_GE: r.i = x >= y; break;
    case KO_EQ: r.i = x == y; break;
    case KO_NE: r.i = x != y; break;
    default: fail(E, "binary %s is not defined for %s", kir_op_name(e->op), kir_type_name(t));
    }
    return r;
}

static V ev(Ev *E, const KExpr *e) {
    V r = {.i = 0};
    switch (e->kind) {
    case KE_CONST:
        if (e->type == KT_F32)
            r.f = (float)e->f;
        else
            r.i = e->i;
        return r;
    case KE_DIM: r.i = E->dims[e->id]; return r;
    case KE_VAR: r.i = E->vars[e->id]; return r;
    case KE_LOCAL: return E->loc[e->id];
    case KE_LOAD: return load(E, e->id, ev(E, e->a).i);
    case KE_UN: return un(E, e);
    case KE_BIN: return bin(E, e);
    case KE_SELECT: return ev(E, e->a).i ? ev(E, e->b) : ev(E, e->c);
    case KE_TABLE: {
        int64_t i = ev(E, e->a).i;
        const KTable *t = &E->k->tables[e->id];
        if (i < 0 || i >= t->n)
            fail(E, "table t%d index %lld out of range [0, %d)", e->id, (long long)i, t->n);
        else
            r.i = t->data[i];
        return r;
    }
    }
    return r;
}

static void exec(Ev *E, const KStmt *s) {
    for (; s && !E->bad; s = s->next) {
        switch (s->kind) {
        case KS_FOR: {
            int64_t n = ev(E, s->extent).i;
            for (int64_t v = 0; v < n && !E->bad; v++) {
                E->vars[s->id] = v;
                exec(E, s->body);
            }
            break;
        }
        case KS_SET: E->loc[s->id] = ev(E, s->value); break;
        case KS_STORE: {
            int64_t i = ev(E, s->index).i;
            store(E, s->id, i, ev(E, s->value));
            break;
        }
        case KS_IF:
            if (ev(E, s->value).i) exec(E, s->body);
            break;
        case KS_TRAP:
            if (E->trap->code != KTRAP_NONE) break;
            E->trap->code = s->id;
            E->trap->node = s->node;
            for (int i = 0; i < KTRAP_NARGS; i++)
                E->trap->arg[i] = s->arg[i] ? ev(E, s->arg[i]).i : 0;
            break;
        }
    }
}

bool cg_kir_eval(void *ctx, const Graph *g, const Kernel *k, void *const *bufs, const int64_t *dims, Diag *d) {
    (void)ctx;
    KTrapRecord trap = {0};
    return cg_kir_eval_into(g, k, bufs, dims, &trap, d) && ir_trap_report(g, &trap, d);
}

bool cg_kir_eval_into(const Graph *g, const Kernel *k, void *const *bufs, const int64_t *dims,
                      KTrapRecord *trap, Diag *d) {
    int64_t *nelem = calloc((size_t)k->nbufs + 1, sizeof *nelem);
    int64_t *vars = calloc((size_t)k->nvars + 1, sizeof *vars);
    V *loc = calloc((size_t)k->nlocals + 1, sizeof *loc);
    Ev E = {g, k, (unsigned char *const *)bufs, nelem, dims, vars, loc, d, false, trap};
    if (!nelem || !vars || !loc) {
        diag_error(d, loc_file(g->file), "kernel %s: out of memory", k->name);
        E.bad = true;
    }
    for (int b = 0; !E.bad && b < k->nbufs; b++) {
        const Type *t = &k->bufs[b].node->type;
        int64_t n = 1;
        char err[256];
        for (int i = 0; i < t->rank && !E.bad; i++) {
            int64_t v;
            if (!dim_eval(g->dims, t->dim[i], dims, &v, err, sizeof err))
                fail(&E, "cannot size b%d: %s", b, err);
            else if (v < 0 || (v > 0 && n > INT64_MAX / v))
                fail(&E, "b%d has a bad size", b);
            else
                n *= v;
        }
        nelem[b] = k->bufs[b].role == KB_DATA ? k->bufs[b].nelems : n;
        if (!E.bad && n > 0 && !bufs[b]) fail(&E, "b%d has no memory", b);
    }
    /* the parallel space, row-major, one point at a time */
    int64_t total = 1;
    int64_t ext[64];
    if (!E.bad && k->npar > 64) fail(&E, "too many parallel variables");
    for (int i = 0; !E.bad && i < k->npar; i++) {
        ext[i] = ev(&E, k->par_extent[i]).i;
        if (ext[i] <= 0) total = 0;
        else if (total > INT64_MAX / ext[i]) fail(&E, "parallel space too large");
        else total *= ext[i];
    }
    for (int64_t p = 0; !E.bad && p < total; p++) {
        int64_t q = p;
        for (int i = k->npar - 1; i >= 0; i--) {
            vars[i] = q % ext[i];
            q /= ext[i];
        }
        exec(&E, k->body);
    }
    free(nelem);
    free(vars);
    free(loc);
    return !E.bad;
}
