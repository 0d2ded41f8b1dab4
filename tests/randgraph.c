/* The seeded random DSG model generator (see randgraph.h).
 *
 * Design.  A model is grown from *motifs*: small, realistic pieces of
 * networks (an MLP stack, a conv-batchnorm-relu-pool block, attention, a
 * layernorm, a reshape/transpose round trip, a cast chain, ...).  The
 * generator keeps a pool of the values written so far, each with its dtype,
 * its shape (entries are constants or the symbols B, S and B*S), a rough bound
 * on its magnitude and whether it is *exact* (see below).  A motif picks its
 * operands from the pool (preferring values nobody uses yet, so chains,
 * diamonds and residual adds appear naturally) or declares new inputs and
 * params, writes one `let` per operation, and adds its results to the pool.
 * Values that end up unused become outputs, except the ones a motif made dead
 * on purpose (for dce).
 *
 * The first motif of a model is chosen from the seed (seed mod the number of
 * motifs for its dtype), so a few hundred consecutive seeds run every motif
 * many times; the rest are random.  Operator coverage is measured by the
 * suite on the compiled graphs, not claimed here.
 *
 * Numerics.  Magnitudes are tracked roughly and tamed (tanh, x/(|x|+1) or a
 * clip) before exp, softmax and other places where they would grow; log,
 * sqrt, rsqrt and reciprocal read abs(x) + c; divisors are abs(x) + 1.
 * A value is *exact* when no legal pass can change it by a rounding: inputs,
 * params and results of elementwise and layout operations on exact values
 * that involve no literal constant (so no folding or reassociation applies).
 * Comparisons, where-conditions and float-to-int casts only read exact values,
 * so a pass that legally reassociates (fold-batchnorm, bias merging, constant
 * folding) never flips a comparison or an integer. */
#include "randgraph.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- text ------------------------------------------------------------------ */

typedef struct {
    char *s;
    size_t len, cap;
} Buf;

static void buf_vprintf(Buf *b, const char *fmt, va_list ap) {
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0) abort();
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->len + (size_t)n + 1)
            c *= 2;
        char *s = realloc(b->s, c);
        if (!s) abort();
        b->s = s;
        b->cap = c;
    }
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    b->len += (size_t)n;
}

static void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(Buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

/* ---- dtypes, dims, values ---------------------------------------------------- */

typedef enum { T_F32, T_F16, T_BF16, T_I8, T_I32, T_I64, T_BOOL } Ty;
static const char *const ty_names[] = {"f32", "f16", "bf16", "i8", "i32", "i64", "bool"};
static bool ty_float(Ty t) { return t <= T_BF16; }

/* Shape entries: >= 0 a constant, otherwise one of these symbols. */
enum { D_B = -1, D_S = -2, D_BS = -3 };
enum { MAXR = 6, MAXV = 512, MAX_ELEMS = 192 };

typedef struct {
    Ty ty;
    int rank;
    int d[MAXR];
} Shape;

typedef struct {
    char name[48];
    Shape s;
    double mag;  /* rough bound on |value| */
    bool exact;  /* no legal pass can change it by a rounding */
    bool source; /* input or param */
    bool param;
    bool dead; /* deliberately unused (dce) */
    bool out;  /* make it an output even if it is used */
    int uses;
} Val;

typedef struct {
    uint64_t rng;
    Buf fns, decl, body, motifs;
    Val v[MAXV];
    int nv, nlet, nin, nparam, nops;
    Ty F;              /* the float dtype of the model (f32 in integer models) */
    Ty I;              /* the integer dtype of an integer model */
    bool intg;         /* an integer model */
    bool hasB, hasS;   /* dims declared */
    bool usedB, usedS; /* dims appearing in an input's shape */
    int vB, vS;
    unsigned fn_done;
} G;

/* ---- random numbers ----------------------------------------------------------- */

static uint64_t rnext(G *g) { /* splitmix64 */
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int rint_(G *g, int lo, int hi) { return lo + (int)(rnext(g) % (uint64_t)(hi - lo + 1)); }
static bool chance(G *g, double p) { return (double)(rnext(g) >> 11) * 0x1.0p-53 < p; }

/* ---- shapes --------------------------------------------------------------------- */

static int64_t dval(const G *g, int d) {
    return d >= 0 ? d : d == D_B ? g->vB : d == D_S ? g->vS : (int64_t)g->vB * g->vS;
}

static const char *dtext(int d, char *buf) {
    if (d >= 0)
        sprintf(buf, "%d", d);
    else
        strcpy(buf, d == D_B ? "B" : d == D_S ? "S" : "B*S");
    return buf;
}

static int64_t numel(const G *g, const Shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= dval(g, s->d[i]);
    return n;
}

/* "[B, 3]" */
static char *dims_text(const int *d, int n, char *out) {
    char t[16];
    strcpy(out, "[");
    for (int i = 0; i < n; i++) {
        if (i) strcat(out, ", ");
        strcat(out, dtext(d[i], t));
    }
    strcat(out, "]");
    return out;
}

/* "[0, -1]" */
static char *ints_text(const int *v, int n, char *out) {
    strcpy(out, "[");
    for (int i = 0; i < n; i++)
        sprintf(out + strlen(out), "%s%d", i ? ", " : "", v[i]);
    strcat(out, "]");
    return out;
}

static char *type_text(const Shape *s, char *out) {
    strcpy(out, ty_names[s->ty]);
    if (s->rank) dims_text(s->d, s->rank, out + strlen(out));
    return out;
}

static bool shape_eq(const Shape *a, const Shape *b) {
    if (a->ty != b->ty || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->d[i] != b->d[i]) return false;
    return true;
}

static Shape mkshape(Ty ty, int rank, const int *d) {
    Shape s = {ty, rank, {0}};
    for (int i = 0; i < rank; i++)
        s.d[i] = d[i];
    return s;
}

/* numpy broadcasting as the compiler does it: equal entries or a constant 1. */
static bool bcast(const Shape *a, const Shape *b, Shape *o) {
    int r = a->rank > b->rank ? a->rank : b->rank;
    Shape t = {a->ty, r, {0}};
    for (int i = 0; i < r; i++) {
        int x = i < a->rank ? a->d[a->rank - 1 - i] : 1, y = i < b->rank ? b->d[b->rank - 1 - i] : 1;
        if (x == y || y == 1)
            t.d[r - 1 - i] = x;
        else if (x == 1)
            t.d[r - 1 - i] = y;
        else
            return false;
    }
    *o = t;
    return true;
}

/* Random dims for a new input: leading B and S where declared, small
 * constants (sometimes 1) elsewhere, at most MAX_ELEMS elements. */
static void rand_dims(G *g, int rank, int *d, bool allow_sym) {
    for (int i = 0; i < rank; i++)
        d[i] = chance(g, 0.15) ? 1 : rint_(g, 2, 4);
    if (allow_sym && rank >= 1) {
        if (g->hasB && chance(g, 0.6)) d[0] = D_B;
        int si = d[0] == D_B ? 1 : 0;
        if (g->hasS && si < rank && chance(g, si ? 0.55 : 0.35)) d[si] = D_S;
    }
    for (;;) {
        Shape s = mkshape(T_F32, rank, d);
        if (numel(g, &s) <= MAX_ELEMS) break;
        int big = -1;
        for (int i = 0; i < rank; i++)
            if (d[i] > 1 && (big < 0 || d[i] > d[big])) big = i;
        if (big < 0) break;
        d[big]--;
    }
}

/* ---- values ------------------------------------------------------------------ */

static Val *add_val(G *g, const char *name, Shape s, double mag, bool exact, bool source) {
    if (g->nv >= MAXV) abort();
    Val *x = &g->v[g->nv++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    x->s = s;
    x->mag = mag;
    x->exact = exact;
    x->source = source;
    return x;
}

/* The name of an operand, counting the use. */
static const char *U(Val *x) {
    x->uses++;
    return x->name;
}

static Val *input(G *g, Shape s) {
    char name[32], t[160];
    snprintf(name, sizeof name, "x%d", g->nin++);
    buf_printf(&g->decl, "  input %s : %s\n", name, type_text(&s, t));
    for (int i = 0; i < s.rank; i++) {
        if (s.d[i] == D_B) g->usedB = true;
        if (s.d[i] == D_S) g->usedS = true;
    }
    return add_val(g, name, s, ty_float(s.ty) ? 1 : 8, true, true);
}

/* Params have constant shapes; `role` ends the dotted name (p3.weight). */
static Val *param(G *g, Shape s, const char *role) {
    char name[48], t[160];
    for (int i = 0; i < s.rank; i++)
        if (s.d[i] < 0) abort();
    snprintf(name, sizeof name, "p%d.%s", g->nparam++, role);
    buf_printf(&g->decl, "  param %s : %s\n", name, type_text(&s, t));
    double mag = !ty_float(s.ty)                      ? 8
                 : s.rank >= 2 && s.d[s.rank - 1] > 0 ? 1 / sqrt((double)s.d[s.rank - 1])
                                                      : 1;
    if (strcmp(role, "running_var") == 0) mag = 1.5;
    Val *v = add_val(g, name, s, mag, true, true);
    v->param = true;
    return v;
}

static Val *let(G *g, Shape s, double mag, bool exact, int ops, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static Val *let(G *g, Shape s, double mag, bool exact, int ops, const char *fmt, ...) {
    char name[32];
    snprintf(name, sizeof name, "v%d", g->nlet++);
    buf_printf(&g->body, "  let %s = ", name);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&g->body, fmt, ap);
    va_end(ap);
    buf_printf(&g->body, "\n");
    g->nops += ops;
    return add_val(g, name, s, mag, exact, false);
}

/* What a motif wants from the pool. */
enum { W_FLOAT = -1, W_INT = -2, W_ANY = -3, W_MAIN = -4 /* F or I by model kind */ };
typedef struct {
    int ty; /* a Ty, or one of the W_ values */
    int minr, maxr;
    bool exact;     /* only exact values */
    bool constlast; /* last dim is a constant */
    bool allconst;  /* every dim a constant */
    int minlast;    /* > 0: the last dim is a constant at least this */
} Want;

static bool fits(const G *g, const Val *x, const Want *w) {
    if (x->dead) return false;
    int ty = w->ty == W_MAIN ? (int)(g->intg ? g->I : g->F) : w->ty;
    if (ty == W_FLOAT) {
        if (x->s.ty != g->F) return false;
    } else if (ty == W_INT) {
        if (x->s.ty != g->I) return false;
    } else if (ty != W_ANY && (int)x->s.ty != ty) {
        return false;
    }
    if (x->s.rank < w->minr || x->s.rank > w->maxr) return false;
    if (w->exact && !x->exact) return false;
    if (w->constlast && (x->s.rank == 0 || x->s.d[x->s.rank - 1] < 0)) return false;
    if (w->allconst)
        for (int i = 0; i < x->s.rank; i++)
            if (x->s.d[i] < 0) return false;
    if (w->minlast > 0 && (x->s.rank == 0 || x->s.d[x->s.rank - 1] < w->minlast)) return false;
    if (numel(g, &x->s) > MAX_ELEMS * 2) return false;
    return true;
}

/* A random fitting value, preferring computed values nobody uses yet. */
static Val *pick(G *g, const Want *w) {
    int cand[MAXV], n = 0;
    if (chance(g, 0.7)) {
        for (int i = 0; i < g->nv; i++)
            if (!g->v[i].source && g->v[i].uses == 0 && fits(g, &g->v[i], w)) cand[n++] = i;
    }
    bool params = chance(g, 0.1); /* weights-only computations now and then */
    if (n == 0)
        for (int i = 0; i < g->nv; i++)
            if ((params || !g->v[i].param) && fits(g, &g->v[i], w)) cand[n++] = i;
    return n ? &g->v[cand[rint_(g, 0, n - 1)]] : NULL;
}

static Ty want_ty(const G *g, const Want *w) {
    if (w->ty == W_INT) return g->I;
    if (w->ty == W_FLOAT) return g->F;
    if (w->ty == W_MAIN || w->ty == W_ANY) return g->intg ? g->I : g->F;
    return (Ty)w->ty;
}

static Val *new_input(G *g, const Want *w) {
    int d[MAXR], r = rint_(g, w->minr, w->maxr < 4 ? w->maxr : 4);
    rand_dims(g, r, d, !w->allconst);
    if (w->constlast && r > 0 && d[r - 1] < 0) d[r - 1] = rint_(g, 2, 4);
    if (w->minlast > 0 && r > 0 && d[r - 1] < w->minlast) d[r - 1] = rint_(g, w->minlast, w->minlast + 3);
    return input(g, mkshape(want_ty(g, w), r, d));
}

static Val *pick_or_input(G *g, const Want *w) {
    Val *x = chance(g, 0.85) ? pick(g, w) : NULL;
    return x ? x : new_input(g, w);
}

/* ---- numerics helpers -------------------------------------------------------- */

/* Brings |x| under `lim` with a saturating operation when needed. */
static Val *tame_to(G *g, Val *x, double lim) {
    if (x->mag <= lim || !ty_float(x->s.ty)) return x;
    switch (rint_(g, 0, 2)) {
    case 0: return let(g, x->s, 1, x->exact, 1, "tanh(%s)", U(x));
    case 1: return let(g, x->s, 1, false, 3, "%s / (abs(%s) + 1)", U(x), U(x));
    default: {
        double c = lim < 4 ? lim : 4;
        return let(g, x->s, c, false, 1, "clip(%s, min=%g, max=%g)", U(x), -c, c);
    }
    }
}

/* A literal for the current float dtype that is exactly representable. */
static const char *small_lit(G *g) {
    static const char *lits[] = {"0.5", "2", "0.25", "1.5", "3", "0.75"};
    return lits[rint_(g, 0, 5)];
}

/* A broadcasting partner for x: a pool value of the same type, or a new input
 * or param whose shape is x's with some entries 1 (or expanding x's 1s), or
 * of lower rank. */
static Val *partner(G *g, Val *x, bool exact) {
    if (chance(g, 0.3)) {
        int cand[MAXV], n = 0;
        for (int i = 0; i < g->nv; i++) {
            Val *y = &g->v[i];
            if (!y->dead && shape_eq(&y->s, &x->s) && (!exact || y->exact)) cand[n++] = i;
        }
        if (n) return &g->v[cand[rint_(g, 0, n - 1)]];
    }
    bool prm = chance(g, 0.4);
    int rb = x->s.rank;
    if (rb > 0 && chance(g, 0.3)) rb = rint_(g, 0, x->s.rank - 1);
    int d[MAXR];
    for (int j = 0; j < rb; j++) {
        int xd = x->s.d[x->s.rank - rb + j], nd;
        if (xd == 1 && chance(g, 0.4))
            nd = rint_(g, 2, 3);
        else if (chance(g, 0.35))
            nd = 1;
        else
            nd = xd;
        if (prm && nd < 0) nd = 1;
        d[j] = nd;
    }
    Shape s = mkshape(x->s.ty, rb, d), o;
    if (!bcast(&x->s, &s, &o) || numel(g, &o) > MAX_ELEMS * 2) {
        for (int j = 0; j < rb; j++)
            d[j] = prm && x->s.d[x->s.rank - rb + j] < 0 ? 1 : x->s.d[x->s.rank - rb + j];
        s = mkshape(x->s.ty, rb, d);
    }
    return prm ? param(g, s, rb >= 2 ? "weight" : "bias") : input(g, s);
}

static double dmax(double a, double b) { return a > b ? a : b; }

/* ---- fns ------------------------------------------------------------------------ */

enum { FN_DENSE, FN_GATE, FN_RESNORM, FN_SQPLUS, FN_BLOCK, FN_MLP2, FN_SPLIT, FN_MERGE, FN_COUNT };
static const char *const fn_text[FN_COUNT] = {
    [FN_DENSE] = "fn dense_act(x, w, b) {\n  let h = linear(x, w, b)\n  return gelu(h)\n}\n",
    [FN_GATE] = "fn gate(a, b) {\n  return a * sigmoid(b)\n}\n",
    [FN_RESNORM] = "fn res_norm(x, y, g, b) {\n  let s = x + y\n  return layernorm(s, g, b, eps=1e-5)\n}\n",
    [FN_SQPLUS] = "fn sq_plus(x) {\n  let t = x * x\n  return t + x\n}\n",
    [FN_BLOCK] = "fn block(x, w, b, g, beta) {\n  return res_norm(x, dense_act(x, w, b), g, beta)\n}\n",
    [FN_MLP2] =
        "fn mlp2(x, w1, w2) {\n  let h = relu(linear(x, w1))\n  let o = linear(h, w2)\n  return o\n}\n",
    [FN_SPLIT] = "# [B, S, 2*D] -> [B, 2, S, D]\nfn split_heads(t) {\n  return transpose(reshape(t, "
                 "shape=[B, S, 2, -1]), perm=[0, 2, 1, 3])\n}\n",
    [FN_MERGE] =
        "fn merge_heads(t) {\n  return reshape(transpose(t, perm=[0, 2, 1, 3]), shape=[B, S, -1])\n}\n",
};

static void use_fn(G *g, int f) {
    if (f == FN_BLOCK) {
        use_fn(g, FN_DENSE);
        use_fn(g, FN_RESNORM);
    }
    if (g->fn_done & (1u << f)) return;
    g->fn_done |= 1u << f;
    buf_printf(&g->fns, "%s\n", fn_text[f]);
}

/* ---- motifs: elementwise --------------------------------------------------------- */

static void m_unary(G *g) {
    Val *x0 = pick_or_input(g, &(Want){.ty = W_FLOAT, .minr = 0, .maxr = 4}), *x = x0;
    int steps = rint_(g, 1, 3);
    for (int i = 0; i < steps; i++) {
        Shape s = x->s;
        bool ex = x->exact;
        switch (rint_(g, 0, 17)) {
        case 0: x = let(g, s, x->mag, ex, 1, "neg(%s)", U(x)); break;
        case 1: x = let(g, s, x->mag, ex, 1, "-%s", U(x)); break;
        case 2: x = let(g, s, x->mag, ex, 1, "abs(%s)", U(x)); break;
        case 3:
            x = tame_to(g, x, 3);
            x = let(g, s, exp(x->mag), x->exact, 1, "exp(%s)", U(x));
            break;
        case 4: x = let(g, s, log(x->mag + 1), false, 3, "log(abs(%s) + 1)", U(x)); break;
        case 5:
            if (ex)
                x = let(g, s, sqrt(x->mag), true, 2, "sqrt(abs(%s))", U(x));
            else
                x = let(g, s, sqrt(x->mag + 0.1), false, 3, "sqrt(abs(%s) + 0.1)", U(x));
            break;
        case 6: x = let(g, s, 1, false, 3, "rsqrt(abs(%s) + 1)", U(x)); break;
        case 7: x = let(g, s, 1, false, 3, "reciprocal(abs(%s) + 0.5)", U(x)); break;
        case 8: x = let(g, s, 1, ex, 1, "tanh(%s)", U(x)); break;
        case 9: x = let(g, s, 1, ex, 1, "sigmoid(%s)", U(x)); break;
        case 10: x = let(g, s, x->mag, ex, 1, "relu(%s)", U(x)); break;
        case 11: x = let(g, s, 1, ex, 1, "erf(%s)", U(x)); break;
        case 12: x = let(g, s, x->mag, ex, 1, "silu(%s)", U(x)); break;
        case 13: x = let(g, s, x->mag, ex, 1, "gelu(%s)", U(x)); break;
        case 14: x = let(g, s, x->mag, ex, 1, "gelu(%s, approximate=\"tanh\")", U(x)); break;
        case 15: x = let(g, s, 0.5, false, 1, "clip(%s, min=-0.5, max=0.5)", U(x)); break;
        case 16:
            if (chance(g, 0.5))
                x = let(g, s, x->mag, false, 1, "clip(%s, min=0)", U(x));
            else
                x = let(g, s, dmax(x->mag, 1), false, 1, "clip(%s, max=1)", U(x));
            break;
        default: {
            Val *b = partner(g, x, false);
            Shape o;
            if (!bcast(&x->s, &b->s, &o)) abort();
            if (chance(g, 0.5))
                x = let(g, o, dmax(x->mag, b->mag), false, 1, "clip(%s, min=%s)", U(x), U(b));
            else
                x = let(g, o, dmax(x->mag, b->mag), false, 1, "clip(%s, max=%s)", U(x), U(b));
            break;
        }
        }
    }
    if (chance(g, 0.35) && shape_eq(&x->s, &x0->s) && !x0->source) /* residual */
        let(g, x->s, x->mag + x0->mag, x->exact && x0->exact, 1, "%s + %s", U(x0), U(x));
}

static void m_binary(G *g) {
    Val *a = pick_or_input(g, &(Want){.ty = W_MAIN, .minr = 0, .maxr = 4});
    bool isf = ty_float(a->s.ty);
    a = tame_to(g, a, 8);
    int n = rint_(g, 1, 2);
    for (int i = 0; i < n; i++) {
        Val *b = partner(g, a, false);
        b = tame_to(g, b, 8);
        if (chance(g, 0.5)) {
            Val *t = a;
            a = b;
            b = t;
        }
        Shape o;
        if (!bcast(&a->s, &b->s, &o)) abort();
        bool ex = a->exact && b->exact;
        int k = rint_(g, 0, 9);
        if (!isf && k == 6) k = 5;
        switch (k) {
        case 0:
            a = let(g, o, a->mag + b->mag, ex, 1, chance(g, 0.5) ? "%s + %s" : "add(%s, %s)", U(a), U(b));
            break;
        case 1:
            a = let(g, o, a->mag + b->mag, ex, 1, chance(g, 0.5) ? "%s - %s" : "sub(%s, %s)", U(a), U(b));
            break;
        case 2:
            a = let(g, o, a->mag * b->mag, ex, 1, chance(g, 0.5) ? "%s * %s" : "mul(%s, %s)", U(a), U(b));
            break;
        case 3:
            a = let(g, o, a->mag, false, 3, chance(g, 0.5) ? "%s / (abs(%s) + 1)" : "div(%s, abs(%s) + 1)",
                    U(a), U(b));
            break;
        case 4: a = let(g, o, dmax(a->mag, b->mag), ex, 1, "maximum(%s, %s)", U(a), U(b)); break;
        case 5: a = let(g, o, dmax(a->mag, b->mag), ex, 1, "minimum(%s, %s)", U(a), U(b)); break;
        case 6: {
            Val *e = b->mag > 1 ? let(g, b->s, 1, false, 1, "tanh(%s)", U(b)) : b;
            a = let(g, o, a->mag + 1, false, 3, "pow(abs(%s) + 0.5, %s)", U(a), U(e));
            break;
        }
        case 7: a = let(g, a->s, a->mag * a->mag, false, 1, "pow(%s, 2)", U(a)); break;
        case 8: {
            const char *l = isf ? small_lit(g) : chance(g, 0.5) ? "2" : "3";
            double lv = atof(l);
            switch (rint_(g, 0, 3)) {
            case 0: a = let(g, a->s, a->mag * lv, false, 1, "%s * %s", U(a), l); break;
            case 1: a = let(g, a->s, a->mag + lv, false, 1, "%s + %s", l, U(a)); break;
            case 2: a = let(g, a->s, a->mag + lv, false, 1, "%s - %s", U(a), l); break;
            default:
                if (isf)
                    a = let(g, a->s, a->mag / lv, false, 1, "%s / %s", U(a), l);
                else
                    a = let(g, a->s, a->mag, false, 1, "%s / 3", U(a));
                break;
            }
            break;
        }
        default:
            if (isf)
                a = let(g, o, a->mag * b->mag, ex, 1, "%s * %s", U(a), U(b));
            else
                a = let(g, a->s, a->mag * a->mag + a->mag, a->exact, 2, "abs(%s) * %s", U(a), U(a));
            break;
        }
        a = tame_to(g, a, 12);
    }
}

/* Unary operations on an integer model's values. */
static void m_int_unary(G *g) {
    Val *x = pick_or_input(g, &(Want){.ty = W_INT, .minr = 0, .maxr = 4});
    switch (rint_(g, 0, 5)) {
    case 0: x = let(g, x->s, x->mag, true, 1, "neg(%s)", U(x)); break;
    case 1: x = let(g, x->s, x->mag, true, 1, "abs(%s)", U(x)); break;
    case 2: x = let(g, x->s, x->mag, true, 1, "relu(%s)", U(x)); break;
    case 3: x = let(g, x->s, 5, true, 1, "clip(%s, min=-3, max=5)", U(x)); break;
    case 4: x = let(g, x->s, 4, true, 1, "clip(%s, max=4)", U(x)); break;
    default: x = let(g, x->s, x->mag, true, 2, "-abs(%s)", U(x)); break;
    }
    if (chance(g, 0.5)) {
        Val *y = partner(g, x, true);
        Shape o;
        if (!bcast(&x->s, &y->s, &o)) abort();
        let(g, o, x->mag, true, 3, "%s / (abs(%s) + 1)", U(x), U(y));
    }
}

static void m_compare(G *g) {
    Val *a = pick_or_input(g, &(Want){.ty = W_MAIN, .minr = 0, .maxr = 4, .exact = true});
    Val *b = NULL;
    char cond[200];
    Shape cs = a->s;
    int k = rint_(g, 0, 5);
    if (k >= 3 || ty_float(a->s.ty) == false) {
        b = partner(g, a, true);
        if (!bcast(&a->s, &b->s, &cs)) abort();
    }
    switch (k) {
    case 0: snprintf(cond, sizeof cond, "greater(%s, 0)", U(a)); break;
    case 1: snprintf(cond, sizeof cond, "less(%s, 0.25)", U(a)); break;
    case 2: snprintf(cond, sizeof cond, "equal(relu(%s), 0)", U(a)); break;
    case 3: snprintf(cond, sizeof cond, "less(%s, %s)", U(a), U(b)); break;
    case 4: snprintf(cond, sizeof cond, "greater(%s, %s)", U(a), U(b)); break;
    default: snprintf(cond, sizeof cond, "equal(maximum(%s, %s), %s)", U(a), U(b), U(a)); break;
    }
    if (!ty_float(a->s.ty) && k < 3)
        snprintf(cond, sizeof cond, "%s(%s, %s)",
                 k == 0   ? "greater"
                 : k == 1 ? "less"
                          : "equal",
                 a->name, b->name);
    Shape bs = cs;
    bs.ty = T_BOOL;
    Val *c = let(g, bs, 1, true, k == 2 || k == 5 ? 2 : 1, "%s", cond);
    Val *x = b ? b : a;
    switch (rint_(g, 0, 4)) {
    case 0: {
        Val *y = partner(g, a, false);
        Shape o1, o2;
        if (bcast(&cs, &a->s, &o1) && bcast(&o1, &y->s, &o2))
            let(g, mkshape(a->s.ty, o2.rank, o2.d), dmax(a->mag, y->mag), a->exact && y->exact, 1,
                "where(%s, %s, %s)", U(c), U(a), U(y));
        else
            let(g, cs, a->mag, a->exact, 1, "where(%s, %s, 0)", U(c), U(a));
        break;
    }
    case 1:
        let(g, mkshape(a->s.ty, cs.rank, cs.d), a->mag, a->exact, 1, "where(%s, 0, %s)", U(c), U(a));
        break;
    case 2:
        if (b)
            let(g, mkshape(a->s.ty, cs.rank, cs.d), dmax(a->mag, b->mag), a->exact && b->exact, 1,
                "where(%s, %s, %s)", U(c), U(a), U(x));
        else
            let(g, mkshape(a->s.ty, cs.rank, cs.d), a->mag, false, 2, "where(%s, %s, %s * 0.5)", U(c), U(a),
                U(a));
        break;
    case 3: {
        Shape fs = mkshape(g->F, cs.rank, cs.d);
        let(g, fs, 1, true, 1, "cast(%s, %s)", U(c), ty_names[g->F]);
        break;
    }
    default: {
        /* a second condition and bool arithmetic */
        Val *c2 = let(g, bs, 1, true, 1, "equal(%s, %s)", U(c), U(c));
        c2->out = chance(g, 0.5);
        break;
    }
    }
}

static void m_cast(G *g) {
    if (g->intg) {
        Val *x = pick_or_input(g, &(Want){.ty = W_INT, .minr = 0, .maxr = 4});
        const char *I = ty_names[g->I];
        switch (rint_(g, 0, 5)) {
        case 0: let(g, x->s, x->mag, x->exact, 2, "cast(cast(%s, i64), %s)", U(x), I); break;
        case 1: {
            Shape s = x->s;
            s.ty = T_I8;
            Val *y = let(g, s, 128, x->exact, 1, "cast(%s, i8)", U(x));
            let(g, x->s, 128, y->exact, 2, "cast(%s, %s) + %s", U(y), I, U(x));
            break;
        }
        case 2: let(g, x->s, x->mag, x->exact, 2, "cast(cast(%s, f32), %s)", U(x), I); break;
        case 3: {
            Shape s = x->s;
            s.ty = T_F32;
            Val *f = let(g, s, x->mag, x->exact, 1, "cast(%s, f32)", U(x));
            let(g, s, 1, false, 2, "sigmoid(%s * 0.25)", U(f));
            break;
        }
        case 4: {
            Shape s = x->s;
            s.ty = T_BOOL;
            Val *b = let(g, s, 1, x->exact, 1, "cast(%s, bool)", U(x));
            let(g, x->s, x->mag, x->exact, 1, "where(%s, %s, 7)", U(b), U(x));
            break;
        }
        default: {
            Shape s = x->s;
            s.ty = g->I == T_I32 ? T_I64 : T_I32;
            let(g, s, x->mag, x->exact, 1, "cast(%s, %s)", U(x), ty_names[s.ty]);
            break;
        }
        }
        return;
    }
    const char *F = ty_names[g->F];
    int k = rint_(g, 0, 6);
    Val *x = pick_or_input(g, &(Want){.ty = W_FLOAT, .minr = 0, .maxr = 4, .exact = k == 3 || k == 4});
    Shape s = x->s;
    switch (k) {
    case 0: /* lossy round trip: must stay */
        let(g, s, x->mag, x->exact, 2, "cast(cast(%s, %s), %s)", U(x), g->F == T_F16 ? "bf16" : "f16", F);
        break;
    case 1: /* lossless round trip (through f32) or a no-op cast */
        if (g->F == T_F32)
            let(g, s, x->mag, x->exact, 1, "cast(%s, f32)", U(x));
        else
            let(g, s, x->mag, x->exact, 2, "cast(cast(%s, f32), %s)", U(x), F);
        break;
    case 2: { /* a lower-precision section */
        const char *lo = g->F == T_F16 ? "bf16" : "f16";
        Shape h = s;
        h.ty = g->F == T_F16 ? T_BF16 : T_F16;
        x = tame_to(g, x, 8);
        Val *c = let(g, h, x->mag, x->exact, 1, "cast(%s, %s)", U(x), lo);
        Val *t = let(g, h, x->mag, c->exact, 2, "sigmoid(%s) * %s", U(c), U(c));
        let(g, s, x->mag, t->exact, 1, "cast(%s, %s)", U(t), F);
        break;
    }
    case 3: { /* float -> int -> float, of an exact value */
        Shape is = s;
        is.ty = chance(g, 0.5) ? T_I32 : T_I64;
        Val *e = let(g, s, 3, true, 2, "exp(tanh(%s))", U(x));
        Val *i = let(g, is, 3, true, 1, "cast(%s, %s)", U(e), ty_names[is.ty]);
        if (chance(g, 0.5))
            let(g, s, 3, true, 1, "cast(%s, %s)", U(i), F);
        else {
            Shape i8 = is;
            i8.ty = T_I8;
            let(g, i8, 3, true, 1, "cast(%s, i8)", U(i));
        }
        break;
    }
    case 4: { /* to bool and back */
        Shape bs = s;
        bs.ty = T_BOOL;
        Val *b = let(g, bs, 1, true, 2, "cast(relu(%s), bool)", U(x));
        if (chance(g, 0.5))
            let(g, s, 1, true, 1, "cast(%s, %s)", U(b), F);
        else
            let(g, s, x->mag, x->exact, 1, "where(%s, %s, 0)", U(b), U(x));
        break;
    }
    case 5: /* chain through a wider type and back */
        let(g, s, x->mag, x->exact, 3, "cast(cast(cast(%s, f32), %s), %s)", U(x), F, F);
        break;
    default: { /* bf16 <-> f16 chain */
        let(g, s, x->mag, x->exact, 2, "cast(cast(%s, bf16), %s)", U(x), F);
        break;
    }
    }
}

/* ---- motifs: reductions and normalisation ------------------------------------------ */

static void m_reduce(G *g) {
    Val *x = pick_or_input(g, &(Want){.ty = W_MAIN, .minr = 1, .maxr = 4});
    bool isf = ty_float(x->s.ty);
    int op = rint_(g, 0, isf ? 2 : 1); /* sum, max, mean (floats only) */
    static const char *names[] = {"reduce_sum", "reduce_max", "reduce_mean"};
    int r = x->s.rank, mode = rint_(g, 0, 9);
    bool mask[MAXR] = {0};
    char axes[64] = "";
    int av[MAXR], na = 0;
    if (mode <= 2) { /* all axes */
        for (int i = 0; i < r; i++)
            mask[i] = true;
    } else if (mode == 9) { /* explicit empty list: nothing reduced */
        strcpy(axes, ", axes=[]");
    } else {
        int cnt = r >= 2 && chance(g, 0.3) ? 2 : 1;
        while (na < cnt) {
            int a = rint_(g, 0, r - 1);
            if (mask[a]) continue;
            mask[a] = true;
            av[na++] = chance(g, 0.4) ? a - r : a;
        }
        char t[64];
        snprintf(axes, sizeof axes, ", axes=%s", ints_text(av, na, t));
    }
    int kd = rint_(g, 0, 2); /* default (true), keepdims=true, keepdims=false */
    bool keep = kd != 2;
    Shape o = {x->s.ty, 0, {0}};
    int64_t count = 1;
    for (int i = 0; i < r; i++) {
        if (mask[i]) count *= dval(g, x->s.d[i]);
        if (!mask[i])
            o.d[o.rank++] = x->s.d[i];
        else if (keep)
            o.d[o.rank++] = 1;
    }
    double mag = op == 0 ? x->mag * (double)count : x->mag;
    bool ex = x->exact && op == 1;
    Val *y = let(g, o, mag, ex, 1, "%s(%s%s%s)", names[op], U(x), axes,
                 kd == 0   ? ""
                 : kd == 1 ? ", keepdims=true"
                           : ", keepdims=false");
    if (keep &&
        chance(g, 0.5)) { /* broadcast back (a difference only of exact values: no cancellation noise) */
        if (!isf || (op != 0 && x->exact && chance(g, 0.6)))
            let(g, x->s, x->mag + y->mag, ex, 1, "%s - %s", U(x), U(y));
        else
            let(g, x->s, x->mag, false, 3, "%s / (abs(%s) + 1)", U(x), U(y));
    } else if (isf && y->mag > 12) {
        tame_to(g, y, 8);
    }
}

/* Param dims for a norm's scale over trailing dims: symbols become 1, and
 * sometimes leading entries are dropped (broadcast). */
static Shape norm_param_shape(G *g, const Val *x, int ax) {
    Shape s = {x->s.ty, 0, {0}};
    int from = ax;
    if (x->s.rank - ax >= 2 && chance(g, 0.4)) from = x->s.rank - 1;
    for (int i = from; i < x->s.rank; i++)
        s.d[s.rank++] = x->s.d[i] < 0 ? 1 : x->s.d[i];
    return s;
}

/* Normalisations over at least 4 elements: over 2 or 3 nearly equal values
 * they amplify rounding differences far beyond any tolerance. */
static void m_norm(G *g) {
    int k = rint_(g, 0, 5);
    Val *x = pick_or_input(g, &(Want){.ty = W_FLOAT, .minr = 1, .maxr = 4, .minlast = k == 0 ? 0 : 4});
    x = tame_to(g, x, 6);
    int r = x->s.rank;
    char t[64];
    switch (k) {
    case 0: { /* softmax */
        int ax = rint_(g, -r, r - 1);
        if (chance(g, 0.3))
            let(g, x->s, 1, false, 1, "softmax(%s)", U(x));
        else
            let(g, x->s, 1, false, 1, "softmax(%s, axis=%d)", U(x), ax);
        break;
    }
    case 1:
    case 2: { /* layernorm */
        int ax = r >= 2 && chance(g, 0.3) ? r - 2 : r - 1;
        Shape ps = norm_param_shape(g, x, ax);
        Val *sc = param(g, ps, "weight");
        char axs[32] = "", eps[32] = "";
        if (ax != r - 1 || chance(g, 0.3))
            snprintf(axs, sizeof axs, ", axis=%d", chance(g, 0.5) ? ax : ax - r);
        if (chance(g, 0.5)) snprintf(eps, sizeof eps, ", eps=%s", chance(g, 0.5) ? "1e-5" : "0.001");
        if (chance(g, 0.7)) {
            Val *b = param(g, ps, "bias");
            let(g, x->s, 4, false, 1, "layernorm(%s, %s, %s%s%s)", U(x), U(sc), U(b), axs, eps);
        } else {
            let(g, x->s, 4, false, 1, "layernorm(%s, %s%s%s)", U(x), U(sc), axs, eps);
        }
        break;
    }
    case 3: { /* rmsnorm */
        bool dflt = chance(g, 0.5);
        int ax = !dflt && r >= 2 && chance(g, 0.3) ? r - 2 : r - 1;
        Val *sc = param(g, norm_param_shape(g, x, ax), "weight");
        if (dflt)
            let(g, x->s, 4, false, 1, "rmsnorm(%s, %s)", U(x), U(sc));
        else
            let(g, x->s, 4, false, 1, "rmsnorm(%s, %s, axis=%d, eps=1e-6)", U(x), U(sc), ax);
        break;
    }
    case 4: { /* layernorm written out over the last axis */
        Shape ks = x->s;
        ks.d[r - 1] = 1;
        Val *m = let(g, ks, x->mag, false, 1, "reduce_mean(%s, axes=[-1])", U(x));
        Val *c = let(g, x->s, 2 * x->mag, false, 1, "%s - %s", U(x), U(m));
        Val *var = let(g, ks, 4 * x->mag * x->mag, false, 2, "reduce_mean(%s * %s, axes=[-1], keepdims=true)",
                       U(c), U(c));
        Val *y = let(g, x->s, 4, false, 3, "%s * rsqrt(%s + 1e-5)", U(c), U(var));
        if (x->s.d[r - 1] >= 0 && chance(g, 0.7)) {
            Shape ps = {x->s.ty, 1, {x->s.d[r - 1]}};
            Val *sc = param(g, ps, "weight"), *b = param(g, ps, "bias");
            let(g, x->s, 5, false, 2, "%s * %s + %s", U(y), U(sc), U(b));
        }
        break;
    }
    default: { /* softmax written out */
        int ax = r - 1;
        Shape ks = x->s;
        ks.d[ax] = 1;
        Val *m = let(g, ks, x->mag, x->exact, 1, "reduce_max(%s, axes=%s)", U(x), ints_text(&ax, 1, t));
        Val *e = let(g, x->s, 1, false, 2, "exp(%s - %s)", U(x), U(m));
        let(g, x->s, 1, false, 2, "%s / reduce_sum(%s, axes=[-1])", U(e), U(e));
        break;
    }
    }
}

/* ---- motifs: linear algebra ------------------------------------------------------ */

static const char *act_fmt(G *g) {
    static const char *acts[] = {"relu(%s)", "gelu(%s)",    "silu(%s)",
                                 "tanh(%s)", "sigmoid(%s)", "gelu(%s, approximate=\"tanh\")"};
    return acts[rint_(g, 0, 5)];
}

/* One dense layer x[..., in] -> [..., out] in one of the ways models write it. */
static Val *dense(G *g, Val *x, int out, bool act, bool *canon) {
    int in = x->s.d[x->s.rank - 1];
    Ty ty = x->s.ty;
    bool isf = ty_float(ty);
    Shape os = x->s;
    os.d[os.rank - 1] = out;
    Shape ws = {ty, 2, {out, in}}, bs = {ty, 1, {out}}, w2s = {ty, 2, {in, out}};
    double mag = isf ? x->mag * sqrt((double)in) + 1 : 8;
    int form = rint_(g, 0, 6);
    if (canon) *canon = form >= 2;
    Val *y;
    char e[256];
    switch (form) {
    case 0:
    case 1: {
        Val *w = param(g, ws, "weight"), *b = param(g, bs, "bias");
        snprintf(e, sizeof e, "linear(%s, %s, %s)", U(x), U(w), U(b));
        break;
    }
    case 2: {
        Val *w = param(g, ws, "weight");
        snprintf(e, sizeof e, "linear(%s, %s)", U(x), U(w));
        break;
    }
    case 3: { /* bias added separately: canonicalize merges it */
        Val *w = param(g, ws, "weight"), *b = param(g, bs, "bias");
        Val *h = let(g, os, mag, false, 1, "linear(%s, %s)", U(x), U(w));
        snprintf(e, sizeof e, "%s + %s", U(h), U(b));
        break;
    }
    case 4: { /* matmul with a transposed [out, in] weight */
        Val *w = param(g, ws, "weight");
        if (chance(g, 0.6)) {
            Val *b = param(g, bs, "bias");
            Val *h = let(g, os, mag, false, 2, "matmul(%s, transpose(%s))", U(x), U(w));
            snprintf(e, sizeof e, "%s + %s", U(h), U(b));
        } else {
            snprintf(e, sizeof e, "matmul(%s, transpose(%s, perm=[1, 0]))", U(x), U(w));
        }
        break;
    }
    case 5: { /* a transposed weight in its own let */
        Val *w = param(g, ws, "weight");
        Val *wt = let(g, w2s, w->mag, true, 1, "transpose(%s, perm=[1, 0])", U(w));
        snprintf(e, sizeof e, "matmul(%s, %s)", U(x), U(wt));
        break;
    }
    default: { /* [in, out] weight */
        Val *w = param(g, w2s, "weight");
        snprintf(e, sizeof e, "matmul(%s, %s)", U(x), U(w));
        break;
    }
    }
    int ops = strncmp(e, "matmul(", 7) == 0 && strstr(e, "transpose") ? 2 : 1;
    if (act && isf) {
        char e2[300];
        snprintf(e2, sizeof e2, act_fmt(g), e);
        y = let(g, os, mag, false, ops + 1, "%s", e2);
    } else if (act) {
        y = let(g, os, mag, false, ops + 1, "relu(%s)", e);
    } else {
        y = let(g, os, mag, false, ops, "%s", e);
    }
    return y;
}

static void m_mlp(G *g) {
    Val *x = pick_or_input(g, &(Want){.ty = W_MAIN, .minr = 1, .maxr = 3, .constlast = true});
    if (x->s.d[x->s.rank - 1] > 8)
        x = new_input(g, &(Want){.ty = W_MAIN, .minr = 1, .maxr = 3, .constlast = true});
    x = tame_to(g, x, 3);
    int layers = rint_(g, 1, 3);
    for (int i = 0; i < layers; i++) {
        int in = x->s.d[x->s.rank - 1];
        int out = chance(g, 0.35) ? in : rint_(g, 2, 6);
        Val *h = dense(g, x, out, i + 1 < layers || chance(g, 0.4), NULL);
        if (out == in && ty_float(x->s.ty) && chance(g, 0.5))
            h = let(g, x->s, h->mag + x->mag, false, 1, "%s + %s", U(x), U(h));
        x = tame_to(g, h, ty_float(h->s.ty) ? 6 : 1e18);
    }
}

static void m_matmul(G *g) {
    Ty ty = g->intg ? g->I : g->F;
    bool isf = ty_float(ty);
    switch (rint_(g, 0, 4)) {
    case 0: { /* batched activations times a 2-D weight */
        Val *a = pick_or_input(g, &(Want){.ty = W_MAIN, .minr = 2, .maxr = 4, .constlast = true});
        a = tame_to(g, a, 3);
        int K = a->s.d[a->s.rank - 1], N = rint_(g, 2, 5);
        Val *w = param(g, (Shape){ty, 2, {K, N}}, "weight");
        Shape o = a->s;
        o.d[o.rank - 1] = N;
        let(g, o, isf ? a->mag * sqrt(K) : 8, false, 1, "matmul(%s, %s)", U(a), U(w));
        break;
    }
    case 1: { /* scores: a @ a^T */
        Val *a = pick_or_input(g, &(Want){.ty = W_MAIN, .minr = 2, .maxr = 4});
        a = tame_to(g, a, 2);
        int r = a->s.rank, perm[MAXR];
        for (int i = 0; i < r; i++)
            perm[i] = i;
        perm[r - 2] = r - 1;
        perm[r - 1] = r - 2;
        char t[64];
        Shape o = a->s;
        o.d[r - 1] = a->s.d[r - 2];
        double mag = isf ? a->mag * a->mag * (double)dval(g, a->s.d[r - 1]) : 8;
        Val *s =
            let(g, o, mag, false, 2, "matmul(%s, transpose(%s, perm=%s))", U(a), U(a), ints_text(perm, r, t));
        if (isf) tame_to(g, s, 6);
        break;
    }
    case 2: { /* 1-D operands */
        Val *a = pick_or_input(g, &(Want){.ty = W_MAIN, .minr = 2, .maxr = 3, .constlast = true});
        a = tame_to(g, a, 3);
        int K = a->s.d[a->s.rank - 1];
        Val *v = param(g, (Shape){ty, 1, {K}}, "weight");
        Shape o = a->s;
        o.rank--;
        let(g, o, isf ? a->mag * sqrt(K) : 8, false, 1, "matmul(%s, %s)", U(a), U(v));
        if (chance(g, 0.5)) { /* vector times matrix */
            int N = rint_(g, 2, 4);
            Val *m = input(g, (Shape){ty, 2, {K, N}});
            let(g, (Shape){ty, 1, {N}}, isf ? sqrt(K) : 8, false, 1, "matmul(%s, %s)", U(v), U(m));
        }
        break;
    }
    case 3: { /* batch broadcasting on both sides */
        int M = rint_(g, 1, 3), K = rint_(g, 2, 4), N = rint_(g, 2, 4), H = rint_(g, 2, 3);
        int b0 = g->hasB ? D_B : 2;
        Val *a = input(g, (Shape){ty, 4, {b0, 1, M, K}});
        Val *w = param(g, (Shape){ty, 3, {H, K, N}}, "weight");
        let(g, (Shape){ty, 4, {b0, H, M, N}}, isf ? sqrt(K) : 8, false, 1, "matmul(%s, %s)", U(a), U(w));
        break;
    }
    default: { /* dot product to a scalar */
        int K = rint_(g, 2, 6);
        Val *a = input(g, (Shape){ty, 1, {K}}), *b = param(g, (Shape){ty, 1, {K}}, "weight");
        let(g, (Shape){ty, 0, {0}}, isf ? K : 8, false, 1, "matmul(%s, %s)", U(a), U(b));
        break;
    }
    }
}

static void m_attention(G *g) {
    Ty ty = g->F;
    const char *F = ty_names[ty];
    bool rank4 = chance(g, 0.6), selfp = chance(g, 0.5);
    int Bq = g->hasB && chance(g, 0.7) ? D_B : rint_(g, 1, 2);
    int H = rint_(g, 1, 2), Sq = g->hasS && chance(g, 0.7) ? D_S : rint_(g, 1, 4);
    int Sk = selfp ? Sq : (chance(g, 0.5) ? Sq : rint_(g, 1, 4));
    int D = rint_(g, 2, 4), Dv = rint_(g, 2, 4);
    bool bcastkv = !selfp && chance(g, 0.3);
    Val *q, *k, *v, *x = NULL;
    Shape qs, ks, vs;
    if (rank4) {
        qs = (Shape){ty, 4, {Bq, H, Sq, D}};
        ks = (Shape){ty, 4, {Bq, bcastkv ? 1 : H, Sk, D}};
        vs = (Shape){ty, 4, {Bq, bcastkv ? 1 : H, Sk, Dv}};
    } else {
        qs = (Shape){ty, 3, {Bq, Sq, D}};
        ks = (Shape){ty, 3, {bcastkv ? 1 : Bq, Sk, D}};
        vs = (Shape){ty, 3, {bcastkv ? 1 : Bq, Sk, Dv}};
    }
    if (selfp) {
        int E = rint_(g, 2, 6);
        x = input(g, (Shape){ty, 3, {Bq, Sq, E}});
        Shape ps[3] = {qs, ks, vs};
        Val **dst[3] = {&q, &k, &v};
        bool use_split = rank4 && H == 2 && Bq == D_B && Sq == D_S && chance(g, 0.6);
        for (int i = 0; i < 3; i++) {
            int dh = ps[i].d[ps[i].rank - 1], outf = rank4 ? H * dh : dh;
            Shape ls = {ty, 3, {Bq, Sq, outf}};
            Val *w = param(g, (Shape){ty, 2, {outf, E}}, "weight");
            Val *l;
            if (chance(g, 0.6)) {
                Val *b = param(g, (Shape){ty, 1, {outf}}, "bias");
                l = let(g, ls, 2, false, 1, "linear(%s, %s, %s)", U(x), U(w), U(b));
            } else {
                l = let(g, ls, 2, false, 1, "linear(%s, %s)", U(x), U(w));
            }
            if (!rank4) {
                *dst[i] = l;
            } else if (use_split) {
                use_fn(g, FN_SPLIT);
                *dst[i] = let(g, ps[i], 2, false, 2, "split_heads(%s)", U(l));
            } else {
                char a[64], b[64];
                *dst[i] = let(g, ps[i], 2, false, 2,
                              "transpose(reshape(%s, shape=[%s, %s, %d, %d]), perm=[0, 2, 1, 3])", U(l),
                              dtext(Bq, a), dtext(Sq, b), H, dh);
            }
        }
    } else {
        q = input(g, qs);
        k = input(g, ks);
        v = input(g, vs);
    }
    /* mask: none, an input, or built from a comparison */
    Val *mask = NULL;
    int mk = rint_(g, 0, 3);
    Shape ms;
    if (mk == 1) {
        ms = rank4 ? (Shape){ty, 4, {Bq, 1, 1, Sk}} : (Shape){ty, 3, {Bq, 1, Sk}};
        if (chance(g, 0.5)) { /* a padding mask [B, Sk] unsqueezed to broadcast */
            Val *m = input(g, (Shape){ty, 2, {Bq, Sk}});
            mask = let(g, ms, 1, true, 1, "unsqueeze(%s, axes=%s)", U(m), rank4 ? "[1, 2]" : "[1]");
        } else {
            mask = input(g, ms);
        }
    } else if (mk == 2) {
        ms = (Shape){ty, 2, {Sq, Sk}};
        mask = input(g, ms);
    } else if (mk == 3) {
        Val *m = input(g, (Shape){ty, 2, {1, Sk}});
        ms = (Shape){ty, 2, {1, Sk}};
        mask = let(g, ms, 10000, false, 3, "cast(greater(%s, 0.6), %s) * -10000", U(m), F);
    }
    int sk = rint_(g, 0, 2);
    Val *out;
    Shape os = qs;
    os.d[os.rank - 1] = Dv;
    if (bcastkv) os.d[0] = Bq;
    if (chance(g, 0.5)) { /* the operator */
        char extra[128] = "";
        if (mask) snprintf(extra, sizeof extra, ", mask=%s", U(mask));
        if (sk == 1) strcat(extra, ", scale=0.5");
        if (sk == 2) {
            Val *sc = param(g, (Shape){ty, 1, {1}}, "scale");
            sprintf(extra + strlen(extra), ", scale=%s", U(sc));
        }
        out = let(g, os, v->mag, false, 1, "attention(%s, %s, %s%s)", U(q), U(k), U(v), extra);
    } else { /* written out */
        const char *perm = rank4 ? "[0, 1, 3, 2]" : "[0, 2, 1]";
        Shape ss = os;
        ss.d[ss.rank - 1] = Sk;
        char scale[32];
        snprintf(scale, sizeof scale, "%.9g", sk == 1 ? 0.5 : 1 / sqrt((double)D));
        Val *s;
        if (mask)
            s = let(g, ss, 10, false, 4, "matmul(%s, transpose(%s, perm=%s)) * %s + %s", U(q), U(k), perm,
                    scale, U(mask));
        else
            s = let(g, ss, 10, false, 3, "matmul(%s, transpose(%s, perm=%s)) * %s", U(q), U(k), perm, scale);
        Val *p = let(g, ss, 1, false, 1, "softmax(%s, axis=-1)", U(s));
        out = let(g, os, v->mag, false, 1, "matmul(%s, %s)", U(p), U(v));
    }
    if (rank4 && x && chance(g, 0.7)) { /* merge heads, project, residual */
        Shape ms2 = {ty, 3, {Bq, Sq, H * Dv}};
        Val *mrg;
        if (Bq == D_B && Sq == D_S && chance(g, 0.5)) {
            use_fn(g, FN_MERGE);
            mrg = let(g, ms2, out->mag, false, 2, "merge_heads(%s)", U(out));
        } else {
            char a[64], b[64];
            mrg = let(g, ms2, out->mag, false, 2,
                      "reshape(transpose(%s, perm=[0, 2, 1, 3]), shape=[%s, %s, %d])", U(out), dtext(Bq, a),
                      dtext(Sq, b), H * Dv);
        }
        int E = x->s.d[2];
        Val *w = param(g, (Shape){ty, 2, {E, H * Dv}}, "weight"), *b = param(g, (Shape){ty, 1, {E}}, "bias");
        let(g, x->s, 4, false, 2, "%s + linear(%s, %s, %s)", U(x), U(mrg), U(w), U(b));
    }
}

/* ---- motifs: convolution ------------------------------------------------------- */

static int wout(int in, int k, int s, int dil, int p0, int p1) {
    int span = in + p0 + p1 - dil * (k - 1) - 1;
    return span < 0 ? 0 : span / s + 1;
}

static void m_conv(G *g) {
    Ty ty = g->F;
    Val *x = NULL;
    if (chance(g, 0.3)) {
        x = pick(g, &(Want){.ty = W_FLOAT, .minr = 4, .maxr = 4});
        if (x && (x->s.d[1] < 0 || x->s.d[2] < 3 || x->s.d[3] < 3 || x->s.d[1] > 6)) x = NULL;
    }
    if (!x) {
        int N = g->hasB && chance(g, 0.5) ? D_B : rint_(g, 1, 2);
        x = input(g, (Shape){ty, 4, {N, rint_(g, 1, 4), rint_(g, 3, 7), rint_(g, 3, 7)}});
    }
    x = tame_to(g, x, 3);
    int layers = rint_(g, 1, 2);
    for (int l = 0; l < layers; l++) {
        int C = x->s.d[1], H = x->s.d[2], W = x->s.d[3];
        int groups = 1, M;
        int gk = rint_(g, 0, 9);
        if (gk == 0 && C >= 2)
            groups = C; /* depthwise */
        else if (gk == 1 && C % 2 == 0)
            groups = 2;
        M = groups * rint_(g, 1, groups > 1 ? 2 : 4);
        int kh = rint_(g, 1, 3), kw = rint_(g, 1, 3), st = chance(g, 0.25) ? 2 : 1,
            dil = chance(g, 0.2) ? 2 : 1;
        int pad[4];
        bool same = chance(g, 0.4);
        for (int i = 0; i < 4; i++)
            pad[i] = same ? (i % 2 ? kw : kh) / 2 : rint_(g, 0, 1);
        int OH = wout(H, kh, st, dil, pad[0], pad[2]), OW = wout(W, kw, st, dil, pad[1], pad[3]);
        if (OH < 1 || OW < 1) {
            st = dil = 1;
            kh = kw = 1;
            OH = wout(H, 1, 1, 1, pad[0], pad[2]);
            OW = wout(W, 1, 1, 1, pad[1], pad[3]);
        }
        Val *w = param(g, (Shape){ty, 4, {M, C / groups, kh, kw}}, "weight");
        char attrs[200] = "", t[64];
        if (st != 1 || chance(g, 0.3)) sprintf(attrs + strlen(attrs), ", stride=[%d, %d]", st, st);
        if (pad[0] || pad[1] || pad[2] || pad[3] || chance(g, 0.3))
            sprintf(attrs + strlen(attrs), ", padding=%s", ints_text(pad, 4, t));
        if (dil != 1 || chance(g, 0.2)) sprintf(attrs + strlen(attrs), ", dilation=[%d, %d]", dil, dil);
        if (groups != 1 || chance(g, 0.2)) sprintf(attrs + strlen(attrs), ", groups=%d", groups);
        Shape cs = {ty, 4, {x->s.d[0], M, OH, OW}};
        double mag = x->mag * sqrt((double)(C / groups * kh)) + 1;
        Val *c;
        if (chance(g, 0.6)) {
            Val *b = param(g, (Shape){ty, 1, {M}}, "bias");
            c = let(g, cs, mag, false, 1, "conv2d(%s, %s, %s%s)", U(x), U(w), U(b), attrs);
        } else {
            c = let(g, cs, mag, false, 1, "conv2d(%s, %s%s)", U(x), U(w), attrs);
        }
        if (chance(g, 0.85)) {
            Shape ps = {ty, 1, {M}};
            Val *s = param(g, ps, "bn_weight"), *b = param(g, ps, "bn_bias"),
                *m = param(g, ps, "running_mean"), *v = param(g, ps, "running_var");
            if (chance(g, 0.12)) c->out = true; /* the conv result is used elsewhere too */
            const char *eps = chance(g, 0.5) ? "" : chance(g, 0.5) ? ", eps=1e-5" : ", eps=0.001";
            c = let(g, cs, (c->mag + 1) * 1.5 + 1, false, 1, "batchnorm(%s, %s, %s, %s, %s%s)", U(c), U(s),
                    U(b), U(m), U(v), eps);
        }
        switch (rint_(g, 0, 4)) {
        case 0:
        case 1: c = let(g, cs, c->mag, false, 1, "relu(%s)", U(c)); break;
        case 2: c = let(g, cs, 6, false, 1, "clip(%s, min=0, max=6)", U(c)); break;
        case 3: c = let(g, cs, c->mag, false, 1, "silu(%s)", U(c)); break;
        default: break;
        }
        int pk = rint_(g, 0, 3);
        if (pk <= 1 && OH >= 2 && OW >= 2) {
            int k = 2, s = chance(g, 0.7) ? 2 : 1, p = chance(g, 0.2) ? 1 : 0;
            int PH = wout(OH, k, s, 1, p, p), PW = wout(OW, k, s, 1, p, p);
            char sa[40] = "";
            if (s != 1 || chance(g, 0.5)) sprintf(sa, ", stride=[%d, %d]", s, s);
            if (p) strcat(sa, ", padding=[1, 1, 1, 1]");
            Shape psh = {ty, 4, {cs.d[0], M, PH, PW}};
            c = let(g, psh, c->mag, false, 1, "%s(%s, kernel=[2, 2]%s)",
                    pk == 0 ? "max_pool2d" : "avg_pool2d", U(c), sa);
        }
        x = tame_to(g, c, 4);
        if (x->s.d[2] < 3 || x->s.d[3] < 3) break;
    }
    if (chance(g, 0.6)) {
        int N = x->s.d[0], M = x->s.d[1];
        Val *p = let(g, (Shape){ty, 4, {N, M, 1, 1}}, x->mag, false, 1, "global_avg_pool(%s)", U(x));
        Shape fs = {ty, 2, {N, M}};
        char a[16];
        Val *f;
        switch (rint_(g, 0, 2)) {
        case 0: f = let(g, fs, p->mag, false, 1, "reshape(%s, shape=[%s, %d])", U(p), dtext(N, a), M); break;
        case 1: f = let(g, fs, p->mag, false, 1, "squeeze(%s, axes=[2, 3])", U(p)); break;
        default: f = let(g, fs, p->mag, false, 1, "reshape(%s, shape=[%s, -1])", U(p), dtext(N, a)); break;
        }
        if (chance(g, 0.6)) dense(g, f, rint_(g, 2, 5), false, NULL);
    }
}

static void m_linear_bn(G *g) {
    Ty ty = g->F;
    int N = g->hasB && chance(g, 0.6) ? D_B : rint_(g, 1, 3);
    if (chance(g, 0.7)) { /* linear + batchnorm over features */
        Val *x = pick(g, &(Want){.ty = W_FLOAT, .minr = 2, .maxr = 2, .constlast = true});
        if (!x) x = input(g, (Shape){ty, 2, {N, rint_(g, 2, 6)}});
        x = tame_to(g, x, 3);
        int out = rint_(g, 2, 5);
        Val *h = dense(g, x, out, false, NULL);
        Shape ps = {ty, 1, {out}};
        Val *s = param(g, ps, "bn_weight"), *b = param(g, ps, "bn_bias"), *m = param(g, ps, "running_mean"),
            *v = param(g, ps, "running_var");
        Val *y = let(g, h->s, (h->mag + 1) * 1.5 + 1, false, 1, "batchnorm(%s, %s, %s, %s, %s)", U(h), U(s),
                     U(b), U(m), U(v));
        let(g, y->s, y->mag, false, 1, "relu(%s)", U(y));
    } else { /* batchnorm of an input: nothing to fold into */
        int C = rint_(g, 1, 4);
        Val *x = input(g, (Shape){ty, 3, {N, C, rint_(g, 1, 5)}});
        Shape ps = {ty, 1, {C}};
        Val *s = param(g, ps, "bn_weight"), *b = param(g, ps, "bn_bias"), *m = param(g, ps, "running_mean"),
            *v = param(g, ps, "running_var");
        let(g, x->s, 4, false, 1, "batchnorm(%s, %s, %s, %s, %s, eps=0.001)", U(x), U(s), U(b), U(m), U(v));
    }
}

/* ---- motifs: layout --------------------------------------------------------------- */

static void rand_perm(G *g, int r, int *p) {
    for (int i = 0; i < r; i++)
        p[i] = i;
    for (int i = r - 1; i > 0; i--) {
        int j = rint_(g, 0, i), t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
}

static Shape permuted(const Shape *s, const int *p) {
    Shape o = *s;
    for (int i = 0; i < s->rank; i++)
        o.d[i] = s->d[p[i]];
    return o;
}

/* perm text, some entries negative */
static char *perm_text(G *g, const int *p, int r, char *out) {
    int q[MAXR];
    for (int i = 0; i < r; i++)
        q[i] = chance(g, 0.15) ? p[i] - r : p[i];
    return ints_text(q, r, out);
}

/* A new shape with the same elements as s: symbols kept in order (B, S
 * merged to B*S or split back), the constant part refactored; `text` may use
 * a -1 for one constant entry. */
static Shape reshape_target(G *g, const Shape *s, char *text) {
    int syms[MAXR], ns = 0;
    int64_t K = 1;
    for (int i = 0; i < s->rank; i++) {
        int d = s->d[i];
        if (d >= 0) {
            K *= d;
            continue;
        }
        if (d == D_S && ns > 0 && syms[ns - 1] == D_B && i > 0 && s->d[i - 1] == D_B && chance(g, 0.5))
            syms[ns - 1] = D_BS;
        else if (d == D_BS && chance(g, 0.5))
            syms[ns++] = D_B, syms[ns++] = D_S;
        else
            syms[ns++] = d;
    }
    int f[MAXR], nf = 0;
    int64_t rest = K;
    int want = rint_(g, 1, 3);
    while (nf < want - 1 && rest > 1) {
        int divs[64], nd = 0;
        for (int k = 2; k <= rest && nd < 64; k++)
            if (rest % k == 0) divs[nd++] = k;
        int k = divs[rint_(g, 0, nd - 1)];
        f[nf++] = k;
        rest /= k;
    }
    if (rest > 1 || nf == 0) f[nf++] = (int)rest;
    if (chance(g, 0.25) && ns + nf < MAXR) f[nf++] = 1;
    while (ns + nf > MAXR)
        f[nf - 2] *= f[nf - 1], nf--;
    Shape o = {s->ty, 0, {0}};
    bool syms_first = chance(g, 0.7);
    if (syms_first)
        for (int i = 0; i < ns; i++)
            o.d[o.rank++] = syms[i];
    for (int i = 0; i < nf; i++)
        o.d[o.rank++] = f[i];
    if (!syms_first)
        for (int i = 0; i < ns; i++)
            o.d[o.rank++] = syms[i];
    int hole = -1;
    if (chance(g, 0.3)) {
        int c[MAXR], nc = 0;
        for (int i = 0; i < o.rank; i++)
            if (o.d[i] > 0) c[nc++] = i;
        if (nc) hole = c[rint_(g, 0, nc - 1)];
    }
    char t[16];
    strcpy(text, "[");
    for (int i = 0; i < o.rank; i++) {
        if (i) strcat(text, ", ");
        strcat(text, i == hole ? "-1" : dtext(o.d[i], t));
    }
    strcat(text, "]");
    return o;
}

/* ONNX Slice length for constants. */
static int slice_len(int d, int s, int e, int st) {
    if (s < 0) s += d;
    if (e < 0) e += d;
    int lo = st > 0 ? 0 : -1, hi = st > 0 ? d : d - 1;
    s = s < lo ? lo : s > hi ? hi : s;
    e = e < lo ? lo : e > hi ? hi : e;
    int diff = st > 0 ? e - s : s - e, k = st > 0 ? st : -st;
    return diff <= 0 ? 0 : (diff - 1) / k + 1;
}

static void m_layout(G *g) {
    Val *x = pick_or_input(g, &(Want){.ty = W_ANY, .minr = 1, .maxr = 4});
    if (chance(g, 0.15)) { /* sometimes on a bool value */
        Val *b = pick(g, &(Want){.ty = T_BOOL, .minr = 1, .maxr = 4});
        if (b) x = b;
    }
    int r = x->s.rank;
    char t1[96], t2[96];
    int k = rint_(g, 0, 9);
    if (k >= 7) k = k == 7 ? 4 : 5; /* more concat and slice */
    switch (k) {
    case 0: { /* double transpose */
        if (r < 2) goto reshape;
        int p[MAXR], q[MAXR];
        rand_perm(g, r, p);
        Shape s1 = permuted(&x->s, p);
        if (chance(g, 0.5)) {
            for (int i = 0; i < r; i++)
                q[p[i]] = i; /* inverse */
        } else {
            rand_perm(g, r, q);
        }
        Shape s2 = permuted(&s1, q);
        if (chance(g, 0.5)) {
            let(g, s2, x->mag, x->exact, 2, "transpose(transpose(%s, perm=%s), perm=%s)", U(x),
                perm_text(g, p, r, t1), perm_text(g, q, r, t2));
        } else {
            Val *y = let(g, s1, x->mag, x->exact, 1, "transpose(%s, perm=%s)", U(x), perm_text(g, p, r, t1));
            let(g, s2, x->mag, x->exact, 1, "transpose(%s, perm=%s)", U(y), perm_text(g, q, r, t2));
        }
        break;
    }
    case 1: { /* default (reversed) and identity perms */
        int p[MAXR];
        for (int i = 0; i < r; i++)
            p[i] = r - 1 - i;
        Shape s1 = permuted(&x->s, p);
        Val *y = let(g, s1, x->mag, x->exact, 1, "transpose(%s)", U(x));
        if (chance(g, 0.5)) let(g, x->s, x->mag, x->exact, 1, "transpose(%s)", U(y));
        break;
    }
    case 2:
    reshape : { /* reshape chain */
        Shape s1 = reshape_target(g, &x->s, t1);
        if (chance(g, 0.5)) {
            Shape s2 = reshape_target(g, &s1, t2);
            let(g, s2, x->mag, x->exact, 2, "reshape(reshape(%s, shape=%s), shape=%s)", U(x), t1, t2);
        } else {
            Val *y = let(g, s1, x->mag, x->exact, 1, "reshape(%s, shape=%s)", U(x), t1);
            dims_text(x->s.d, r, t2);
            let(g, x->s, x->mag, x->exact, 1, "reshape(%s, shape=%s)", U(y), t2); /* back */
        }
        break;
    }
    case 3: { /* unsqueeze / squeeze */
        int k = rint_(g, 0, r);
        Shape s1 = x->s;
        s1.rank = r + 1;
        for (int i = r; i > k; i--)
            s1.d[i] = s1.d[i - 1];
        s1.d[k] = 1;
        int kt = chance(g, 0.3) ? k - (r + 1) : k;
        if (r + 1 > MAXR) break;
        if (chance(g, 0.5)) {
            let(g, x->s, x->mag, x->exact, 2, "squeeze(unsqueeze(%s, axes=[%d]), axes=[%d])", U(x), kt, kt);
        } else {
            Val *y = let(g, s1, x->mag, x->exact, 1, "unsqueeze(%s, axes=[%d])", U(x), kt);
            /* squeeze(y) with the default axes removes every constant 1 */
            Shape s2 = {x->s.ty, 0, {0}};
            for (int i = 0; i < s1.rank; i++)
                if (s1.d[i] != 1) s2.d[s2.rank++] = s1.d[i];
            let(g, s2, x->mag, x->exact, 1, "squeeze(%s)", U(y));
        }
        break;
    }
    case 4: { /* concat along a constant axis */
        int c[MAXR], nc = 0;
        for (int i = 0; i < r; i++)
            if (x->s.d[i] >= 0) c[nc++] = i;
        if (!nc) goto reshape;
        int ax = c[rint_(g, 0, nc - 1)], n = rint_(g, 2, 3);
        char list[256];
        Shape o = x->s;
        double mag = x->mag;
        bool ex = x->exact;
        snprintf(list, sizeof list, "%s", U(x));
        for (int i = 1; i < n; i++) {
            Val *y;
            if (chance(g, 0.3)) {
                y = x;
            } else {
                Shape ys = x->s;
                ys.d[ax] = rint_(g, 1, 3);
                bool cst = true;
                for (int j = 0; j < r; j++)
                    cst &= ys.d[j] >= 0;
                y = cst && chance(g, 0.4) ? param(g, ys, "table") : input(g, ys);
            }
            o.d[ax] += y->s.d[ax];
            mag = dmax(mag, y->mag);
            ex = ex && y->exact;
            sprintf(list + strlen(list), ", %s", U(y));
        }
        let(g, o, mag, ex, 1, "concat(%s, axis=%d)", list, chance(g, 0.3) ? ax - r : ax);
        break;
    }
    case 5: { /* slice */
        int c[MAXR], nc = 0;
        for (int i = 0; i < r; i++)
            if (x->s.d[i] >= 1) c[nc++] = i;
        int sym = -1;
        for (int i = 0; i < r; i++)
            if (x->s.d[i] == D_S || x->s.d[i] == D_B) sym = i;
        if (sym >= 0 && (nc == 0 || chance(g, 0.25))) { /* the whole symbolic axis: ends=[S] */
            char a[16];
            let(g, x->s, x->mag, x->exact, 1, "slice(%s, starts=[0], ends=[%s], axes=[%d])", U(x),
                dtext(x->s.d[sym], a), sym);
            break;
        }
        if (!nc) goto reshape;
        int na = nc >= 2 && chance(g, 0.3) ? 2 : 1;
        int axes[2], st[2], en[2], sp[2];
        Shape o = x->s;
        for (int i = 0; i < na; i++) {
            int ax;
            do
                ax = c[rint_(g, 0, nc - 1)];
            while (i == 1 && ax == axes[0]);
            int d = x->s.d[ax], len = 0;
            while (len < 1) {
                sp[i] = chance(g, 0.7) ? 1 : chance(g, 0.5) ? 2 : chance(g, 0.5) ? -1 : -2;
                if (sp[i] > 0) {
                    st[i] = rint_(g, -d, d - 1);
                    en[i] = chance(g, 0.2) ? 1000 : rint_(g, -d, d);
                } else {
                    st[i] = chance(g, 0.3) ? -1 : rint_(g, 0, d - 1);
                    en[i] = chance(g, 0.4) ? -1000 : rint_(g, -d - 1, d - 1);
                }
                len = slice_len(d, st[i], en[i], sp[i]);
            }
            axes[i] = ax;
            o.d[ax] = len;
        }
        char a[64], b[64], cc[64], dd[64];
        int axt[2];
        for (int i = 0; i < na; i++)
            axt[i] = chance(g, 0.2) ? axes[i] - r : axes[i];
        bool ones = sp[0] == 1 && (na == 1 || sp[1] == 1);
        if (ones && chance(g, 0.5))
            let(g, o, x->mag, x->exact, 1, "slice(%s, starts=%s, ends=%s, axes=%s)", U(x),
                ints_text(st, na, a), ints_text(en, na, b), ints_text(axt, na, cc));
        else
            let(g, o, x->mag, x->exact, 1, "slice(%s, starts=%s, ends=%s, axes=%s, steps=%s)", U(x),
                ints_text(st, na, a), ints_text(en, na, b), ints_text(axt, na, cc), ints_text(sp, na, dd));
        break;
    }
    case 6: { /* split a constant last dim, transpose, merge back (heads) */
        int last = x->s.d[r - 1];
        if (last < 4 || last % 2 || r + 1 > MAXR) goto reshape;
        Shape s1 = x->s;
        s1.rank = r + 1;
        s1.d[r - 1] = 2;
        s1.d[r] = last / 2;
        int p[MAXR];
        for (int i = 0; i <= r; i++)
            p[i] = i;
        p[r - 1] = r;
        p[r] = r - 1;
        Shape s2 = permuted(&s1, p);
        dims_text(s1.d, s1.rank, t1);
        Val *y = let(g, s2, x->mag, x->exact, 2, "transpose(reshape(%s, shape=%s), perm=%s)", U(x), t1,
                     ints_text(p, r + 1, t2));
        Shape s3 = x->s;
        dims_text(s3.d, r, t1);
        let(g, s3, x->mag, x->exact, 1, "reshape(%s, shape=%s)", U(y), t1);
        break;
    }
    default: goto reshape;
    }
}

static void m_gather(G *g) {
    Ty ty = g->intg ? g->I : g->F;
    Ty it = chance(g, 0.5) ? T_I32 : T_I64;
    if (chance(g, 0.6)) { /* embedding lookup */
        int V = rint_(g, 3, 8), E = rint_(g, 2, 5);
        Val *tab = param(g, (Shape){ty, 2, {V, E}}, "embedding");
        Shape is;
        int k = rint_(g, 0, 3);
        if (k == 0)
            is = (Shape){it, 0, {0}};
        else if (k == 1)
            is = (Shape){it, 1, {rint_(g, 1, 5)}};
        else {
            int d[2];
            rand_dims(g, 2, d, true);
            is = mkshape(it, 2, d);
        }
        Val *ids = input(g, is);
        Shape o = is;
        o.ty = ty;
        o.d[o.rank++] = E;
        let(g, o, tab->mag, true, 1, chance(g, 0.5) ? "gather(%s, %s)" : "gather(%s, %s, axis=0)", U(tab),
            U(ids));
    } else { /* along a constant axis of a value */
        Val *x = pick_or_input(g, &(Want){.ty = W_MAIN, .minr = 1, .maxr = 3});
        int c[MAXR], nc = 0;
        for (int i = 0; i < x->s.rank; i++)
            if (x->s.d[i] >= 1) c[nc++] = i;
        if (!nc) {
            x = input(g, (Shape){ty, 2, {rint_(g, 2, 4), rint_(g, 2, 4)}});
            c[nc++] = 1;
        }
        int ax = c[rint_(g, 0, nc - 1)];
        Shape is = chance(g, 0.7) ? (Shape){it, 1, {rint_(g, 1, 4)}} : (Shape){it, 2, {rint_(g, 1, 3), 2}};
        Val *ids = input(g, is);
        Shape o = {x->s.ty, 0, {0}};
        for (int i = 0; i < ax; i++)
            o.d[o.rank++] = x->s.d[i];
        for (int i = 0; i < is.rank; i++)
            o.d[o.rank++] = is.d[i];
        for (int i = ax + 1; i < x->s.rank; i++)
            o.d[o.rank++] = x->s.d[i];
        if (o.rank > MAXR) return;
        let(g, o, x->mag, x->exact, 1, "gather(%s, %s, axis=%d)", U(x), U(ids),
            chance(g, 0.3) ? ax - x->s.rank : ax);
    }
}

/* ---- motifs: what simplify, cse, constfold and dce look for ---------------------------- */

static void m_identity(G *g) {
    Val *x = pick_or_input(g, &(Want){.ty = W_MAIN, .minr = 0, .maxr = 4});
    int r = x->s.rank;
    char t[96];
    Val *y;
    bool isf = ty_float(x->s.ty);
    switch (rint_(g, 0, 11)) {
    case 0: y = let(g, x->s, x->mag, x->exact, 1, "%s * 1", U(x)); break;
    case 1: y = let(g, x->s, x->mag, x->exact, 1, "1 * %s", U(x)); break;
    case 2: y = let(g, x->s, x->mag, x->exact, 1, "%s + 0", U(x)); break;
    case 3: y = let(g, x->s, x->mag, x->exact, 1, "0 + %s", U(x)); break;
    case 4: y = let(g, x->s, x->mag, x->exact, 1, "%s - 0", U(x)); break;
    case 5: y = let(g, x->s, x->mag, x->exact, 1, isf ? "%s / 1.0" : "%s / 1", U(x)); break;
    case 6: y = let(g, x->s, x->mag, x->exact, 1, "cast(%s, %s)", U(x), ty_names[x->s.ty]); break;
    case 7:
        y = let(g, x->s, x->mag, x->exact, 1, "reshape(%s, shape=%s)", U(x), dims_text(x->s.d, r, t));
        break;
    case 8: {
        int p[MAXR];
        for (int i = 0; i < r; i++)
            p[i] = i;
        y = let(g, x->s, x->mag, x->exact, 1, "transpose(%s, perm=%s)", U(x), ints_text(p, r, t));
        break;
    }
    case 9: y = let(g, x->s, x->mag, x->exact, 2, "neg(neg(%s))", U(x)); break;
    case 10: y = let(g, x->s, x->mag, x->exact, 2, "(%s * 1) + 0", U(x)); break;
    default: y = let(g, x->s, x->mag, x->exact, 1, "%s * 1.0", U(x)); break;
    }
    if (chance(g, 0.6)) { /* feed it on */
        if (isf)
            let(g, y->s, 1, y->exact, 1, "tanh(%s)", U(y));
        else
            let(g, y->s, y->mag, y->exact, 1, "abs(%s)", U(y));
    }
}

static void m_cse(G *g) {
    Val *x = pick_or_input(g, &(Want){.ty = W_MAIN, .minr = 1, .maxr = 4});
    bool isf = ty_float(x->s.ty);
    x = tame_to(g, x, 4);
    int r = x->s.rank;
    char e[256], t[64];
    Shape s = x->s;
    double mag = x->mag;
    int ops = 1, k = rint_(g, 0, 5);
    if (!isf && (k == 0 || k == 5)) k = 1;
    switch (k) {
    case 0: snprintf(e, sizeof e, "exp(tanh(%s)) * 2", x->name), ops = 3, mag = 6; break;
    case 1: {
        Val *y = partner(g, x, false);
        Shape o;
        if (!bcast(&x->s, &y->s, &o)) abort();
        y->uses += 2;
        s = o;
        mag = x->mag + y->mag;
        snprintf(e, sizeof e, "relu(%s + %s)", x->name, y->name), ops = 2;
        break;
    }
    case 2: {
        if (x->s.d[r - 1] < 0 || x->s.d[r - 1] > 8) {
            snprintf(e, sizeof e, "relu(%s)", x->name);
            break;
        }
        int in = x->s.d[r - 1], out = rint_(g, 2, 4);
        Val *w = param(g, (Shape){s.ty, 2, {out, in}}, "weight"),
            *b = param(g, (Shape){s.ty, 1, {out}}, "bias");
        w->uses += 2, b->uses += 2;
        s.d[r - 1] = out;
        mag = isf ? x->mag * sqrt(in) + 1 : 8;
        snprintf(e, sizeof e, "linear(%s, %s, %s)", x->name, w->name, b->name);
        break;
    }
    case 3: {
        int p[MAXR];
        rand_perm(g, r, p);
        s = permuted(&x->s, p);
        snprintf(e, sizeof e, "transpose(%s, perm=%s)", x->name, ints_text(p, r, t));
        break;
    }
    case 4:
        s.d[r - 1] = 1;
        mag = x->mag * (double)dval(g, x->s.d[r - 1]);
        snprintf(e, sizeof e, "reduce_sum(%s, axes=[-1])", x->name);
        break;
    default: snprintf(e, sizeof e, "sigmoid(%s) * %s", x->name, x->name), ops = 2; break;
    }
    x->uses += 2;
    bool ex = k == 3 && x->exact;
    Val *a = let(g, s, mag, ex, ops, "%s", e);
    Val *b = let(g, s, mag, ex, ops, "%s", e);
    switch (rint_(g, 0, 3)) {
    case 0: let(g, s, 2 * mag, false, 1, "%s + %s", U(a), U(b)); break;
    case 1: let(g, s, mag * mag, false, 1, "%s * %s", U(a), U(b)); break;
    case 2: let(g, s, mag, ex, 1, "maximum(%s, %s)", U(a), U(b)); break;
    default: break; /* both are outputs */
    }
}

static void m_constfold(G *g) {
    Val *x = pick_or_input(g, &(Want){.ty = W_MAIN, .minr = 0, .maxr = 4});
    x = tame_to(g, x, 8);
    Shape sc = {x->s.ty, 0, {0}};
    Val *c;
    if (!ty_float(x->s.ty)) {
        static const char *forms[] = {"cast(7, %s) * 3 - 20", "maximum(cast(2, %s), 5) - 4",
                                      "abs(cast(-4, %s)) + 1", "neg(cast(3, %s)) * 2",
                                      "minimum(cast(9, %s), 2) + 1"};
        char f[96];
        snprintf(f, sizeof f, forms[rint_(g, 0, 4)], ty_names[x->s.ty]);
        c = let(g, sc, 8, false, 3, "%s", f);
    } else if (g->usedS && chance(g, 0.25)) { /* a dim as a value */
        if (chance(g, 0.5))
            c = let(g, sc, 1, false, 2, "reciprocal(cast(S, %s))", ty_names[x->s.ty]);
        else {
            c = let(g, x->s, x->mag, false, 1, "%s / (S + 1)", U(x));
            return;
        }
    } else {
        static const char *forms[] = {"sqrt(2.0) * 0.5",
                                      "exp(0.5) - 1",
                                      "maximum(2, 3) / 4",
                                      "neg(1.5) + 2",
                                      "tanh(1) * sigmoid(0)",
                                      "abs(-3) / 6",
                                      "reciprocal(4.0) + rsqrt(4.0)",
                                      "log(2.0) + 1",
                                      "erf(0.5) * 2",
                                      "pow(2.0, 0.5) - 1",
                                      "clip(5.0, min=0, max=1)",
                                      "relu(-1.0) + 1.25",
                                      "gelu(1.0) - silu(1.0)"};
        const char *f = forms[rint_(g, 0, 12)];
        if (x->s.ty == T_F32)
            c = let(g, sc, 2, false, 3, "%s", f);
        else
            c = let(g, sc, 2, false, 4, "cast(%s, %s)", f, ty_names[x->s.ty]);
    }
    switch (rint_(g, 0, 3)) {
    case 0: let(g, x->s, x->mag * 2, false, 1, "%s * %s", U(x), U(c)); break;
    case 1: let(g, x->s, x->mag + 2, false, 1, "%s + %s", U(c), U(x)); break;
    case 2: {
        Val *c2 = let(g, sc, 4, false, 1, "%s * %s", U(c), U(c));
        let(g, x->s, x->mag * 4 + 8, false, 2, "%s * %s - %s", U(x), U(c2), U(c));
        break;
    }
    default: c->out = true; break; /* the constant itself is an output */
    }
}

static void m_dead(G *g) {
    int n = rint_(g, 1, 2);
    for (int i = 0; i < n; i++) {
        Val *x = pick_or_input(g, &(Want){.ty = W_MAIN, .minr = 1, .maxr = 4});
        Val *d;
        if (ty_float(x->s.ty) && chance(g, 0.5)) {
            d = let(g, x->s, 1, false, 2, "exp(tanh(%s))", U(x));
        } else if (x->s.d[x->s.rank - 1] >= 1 && x->s.d[x->s.rank - 1] <= 8 && chance(g, 0.6)) {
            /* dead params too: dce drops them */
            int in = x->s.d[x->s.rank - 1];
            Val *w = param(g, (Shape){x->s.ty, 2, {3, in}}, "weight");
            Shape o = x->s;
            o.d[o.rank - 1] = 3;
            d = let(g, o, 1, false, 1, "linear(%s, %s)", U(x), U(w));
        } else {
            d = let(g, x->s, 1, false, 1, "%s * %s", U(x), U(x));
        }
        d->dead = true;
    }
}

static void m_fn(G *g) {
    int k = rint_(g, 0, 5);
    if (g->intg) k = 3;
    switch (k) {
    case 0:
    case 4: { /* dense_act, or a nested block */
        Want w = {.ty = W_FLOAT, .minr = 1, .maxr = 3, .constlast = true, .minlast = k == 4 ? 4 : 0};
        Val *x = pick_or_input(g, &w);
        if (x->s.d[x->s.rank - 1] > 8) x = new_input(g, &w);
        x = tame_to(g, x, 3);
        int in = x->s.d[x->s.rank - 1];
        int calls = rint_(g, 1, 2);
        for (int i = 0; i < calls; i++) {
            int out = k == 4 ? in : rint_(g, 2, 5);
            Val *w = param(g, (Shape){g->F, 2, {out, in}}, "weight"),
                *b = param(g, (Shape){g->F, 1, {out}}, "bias");
            Shape o = x->s;
            o.d[o.rank - 1] = out;
            if (k == 4) {
                use_fn(g, FN_BLOCK);
                Val *ga = param(g, (Shape){g->F, 1, {in}}, "ln_weight"),
                    *be = param(g, (Shape){g->F, 1, {in}}, "ln_bias");
                x = let(g, o, 4, false, 4, "block(%s, %s, %s, %s, %s)", U(x), U(w), U(b), U(ga), U(be));
            } else {
                use_fn(g, FN_DENSE);
                x = let(g, o, x->mag * sqrt(in) + 1, false, 2, "dense_act(%s, %s, %s)", U(x), U(w), U(b));
                x = tame_to(g, x, 3);
            }
            in = out;
        }
        break;
    }
    case 1: { /* gate(a, b) */
        use_fn(g, FN_GATE);
        Val *a = pick_or_input(g, &(Want){.ty = W_FLOAT, .minr = 0, .maxr = 4});
        Val *b = partner(g, a, false);
        Shape o;
        if (!bcast(&a->s, &b->s, &o)) abort();
        b = tame_to(g, b, 20);
        let(g, o, a->mag, false, 2, "gate(%s, %s)", U(a), U(b));
        break;
    }
    case 2: { /* res_norm(x, y, g, b) */
        use_fn(g, FN_RESNORM);
        Val *x =
            pick_or_input(g, &(Want){.ty = W_FLOAT, .minr = 1, .maxr = 4, .constlast = true, .minlast = 4});
        Val *y = partner(g, x, false);
        Shape o;
        if (!bcast(&x->s, &y->s, &o) || o.d[o.rank - 1] < 0) abort();
        int D = o.d[o.rank - 1];
        Val *ga = param(g, (Shape){g->F, 1, {D}}, "ln_weight"),
            *be = param(g, (Shape){g->F, 1, {D}}, "ln_bias");
        let(g, o, 4, false, 2, "res_norm(%s, %s, %s, %s)", U(x), U(y), U(ga), U(be));
        break;
    }
    case 3: { /* sq_plus, twice */
        use_fn(g, FN_SQPLUS);
        Val *x = pick_or_input(g, &(Want){.ty = W_MAIN, .minr = 0, .maxr = 4});
        x = tame_to(g, x, 2);
        Val *y =
            let(g, x->s, x->mag * x->mag + x->mag, x->exact && !ty_float(x->s.ty), 2, "sq_plus(%s)", U(x));
        if (chance(g, 0.5)) {
            y = tame_to(g, y, 2);
            let(g, x->s, y->mag * y->mag + y->mag, y->exact && !ty_float(x->s.ty), 2, "sq_plus(%s)", U(y));
        }
        break;
    }
    default: { /* mlp2 with a let in the body */
        use_fn(g, FN_MLP2);
        Val *x = pick_or_input(g, &(Want){.ty = W_FLOAT, .minr = 1, .maxr = 3, .constlast = true});
        if (x->s.d[x->s.rank - 1] > 8)
            x = new_input(g, &(Want){.ty = W_FLOAT, .minr = 1, .maxr = 3, .constlast = true});
        x = tame_to(g, x, 3);
        int in = x->s.d[x->s.rank - 1], hid = rint_(g, 2, 6), out = rint_(g, 2, 4);
        Val *w1 = param(g, (Shape){g->F, 2, {hid, in}}, "weight"),
            *w2 = param(g, (Shape){g->F, 2, {out, hid}}, "weight");
        Shape o = x->s;
        o.d[o.rank - 1] = out;
        let(g, o, x->mag * sqrt(in) * sqrt(hid) + 1, false, 3, "mlp2(%s, %s, %s)", U(x), U(w1), U(w2));
        break;
    }
    }
}

/* Two values of one type combined: diamonds and residual adds. */
static void m_combine(G *g) {
    int cand[MAXV], n = 0;
    for (int i = 0; i < g->nv; i++)
        if (!g->v[i].source && !g->v[i].dead && numel(g, &g->v[i].s) <= MAX_ELEMS * 2) cand[n++] = i;
    Val *a = NULL, *b = NULL;
    for (int tries = 0; n >= 2 && tries < 20 && !b; tries++) {
        a = &g->v[cand[rint_(g, 0, n - 1)]];
        for (int j = 0; j < n; j++) {
            Val *c = &g->v[cand[j]];
            if (c != a && shape_eq(&c->s, &a->s) && c->s.ty != T_BOOL) b = c;
        }
    }
    if (!b) { /* make a diamond */
        Val *x = pick_or_input(g, &(Want){.ty = W_MAIN, .minr = 0, .maxr = 4});
        if (ty_float(x->s.ty)) {
            x = tame_to(g, x, 4);
            a = let(g, x->s, 1, x->exact, 1, "tanh(%s)", U(x));
            b = let(g, x->s, x->mag, x->exact, 1, "silu(%s)", U(x));
        } else {
            a = let(g, x->s, x->mag, true, 1, "abs(%s)", U(x));
            b = let(g, x->s, x->mag, true, 1, "neg(%s)", U(x));
        }
    }
    a = tame_to(g, a, 8);
    b = tame_to(g, b, 8);
    switch (rint_(g, 0, 3)) {
    case 0: let(g, a->s, a->mag + b->mag, a->exact && b->exact, 1, "%s + %s", U(a), U(b)); break;
    case 1: let(g, a->s, a->mag * b->mag, a->exact && b->exact, 1, "%s * %s", U(a), U(b)); break;
    case 2: let(g, a->s, a->mag + b->mag, a->exact && b->exact, 1, "%s - %s", U(a), U(b)); break;
    default:
        let(g, a->s, dmax(a->mag, b->mag), a->exact && b->exact, 1, "maximum(%s, %s)", U(a), U(b));
        break;
    }
}

/* ---- the model ---------------------------------------------------------------------- */

typedef struct {
    const char *name;
    void (*fn)(G *);
} Motif;

static const Motif float_motifs[] = {
    {"unary", m_unary},
    {"binary", m_binary},
    {"compare", m_compare},
    {"cast", m_cast},
    {"reduce", m_reduce},
    {"norm", m_norm},
    {"mlp", m_mlp},
    {"matmul", m_matmul},
    {"attention", m_attention},
    {"conv", m_conv},
    {"linear_bn", m_linear_bn},
    {"layout", m_layout},
    {"gather", m_gather},
    {"identity", m_identity},
    {"cse", m_cse},
    {"constfold", m_constfold},
    {"dead", m_dead},
    {"fn", m_fn},
    {"combine", m_combine},
};
static const Motif int_motifs[] = {
    {"binary", m_binary},   {"int_unary", m_int_unary},
    {"compare", m_compare}, {"cast", m_cast},
    {"reduce", m_reduce},   {"mlp", m_mlp},
    {"matmul", m_matmul},   {"layout", m_layout},
    {"gather", m_gather},   {"identity", m_identity},
    {"cse", m_cse},         {"constfold", m_constfold},
    {"dead", m_dead},       {"fn", m_fn},
    {"combine", m_combine},
};

void randgraph_generate(uint64_t seed, RandGraph *out) {
    G *g = calloc(1, sizeof *g);
    if (!g) abort();
    g->rng = seed * 0x2545f4914f6cdd1dull + 0x1234567ull;
    rnext(g);
    int kind = rint_(g, 0, 99);
    g->F = T_F32;
    if (kind < 10) {
        g->intg = true;
        g->I = kind < 6 ? T_I32 : T_I64;
    } else if (kind < 22) {
        g->F = T_F16;
    } else if (kind < 30) {
        g->F = T_BF16;
    }
    g->hasB = chance(g, 0.7);
    g->hasS = chance(g, 0.5);
    g->vB = rint_(g, 1, 3);
    g->vS = rint_(g, 1, 4);
    const Motif *ms = g->intg ? int_motifs : float_motifs;
    int nm = g->intg ? (int)(sizeof int_motifs / sizeof *ms) : (int)(sizeof float_motifs / sizeof *ms);
    int target = rint_(g, 5, 40);
    for (int i = 0; (i == 0 || g->nops < target) && i < 16 && g->nv < MAXV - 64; i++) {
        const Motif *m = i == 0 ? &ms[seed % (uint64_t)nm] : &ms[rint_(g, 0, nm - 1)];
        buf_printf(&g->motifs, "%s%s", i ? " " : "", m->name);
        m->fn(g);
    }
    /* outputs: every unused computed value, plus the marked ones; at least one */
    bool any = false;
    for (int i = 0; i < g->nv; i++) {
        Val *x = &g->v[i];
        any |= !x->source && !x->dead && (!x->uses || x->out);
    }
    for (int i = g->nv - 1; i >= 0 && !any; i--)
        if (!g->v[i].source) g->v[i].dead = false, g->v[i].out = any = true;
    Buf outs = {0};
    int nout = 0;
    for (int i = 0; i < g->nv; i++) {
        Val *x = &g->v[i];
        if (x->source || x->dead || (x->uses && !x->out)) continue;
        if (chance(g, 0.5))
            buf_printf(&outs, "  output %s\n", x->name);
        else
            buf_printf(&outs, "  output y%d = %s\n", nout, x->name);
        nout++;
        if (chance(g, 0.03)) buf_printf(&outs, "  output y%d = %s\n", nout++, x->name); /* twice */
    }
    if (chance(g, 0.03) && g->nin) buf_printf(&outs, "  output y%d = x0\n", nout++); /* an input */
    Buf text = {0};
    buf_printf(&text, "# generated by tests/randgraph.c, seed %llu (%s; motifs: %s)\n",
               (unsigned long long)seed, g->intg ? ty_names[g->I] : ty_names[g->F], g->motifs.s);
    if (g->fns.s) buf_printf(&text, "%s", g->fns.s);
    buf_printf(&text, "model rg%llu {\n", (unsigned long long)seed);
    if (chance(g, 0.3)) buf_printf(&text, "  weights \"rg%llu.safetensors\"\n", (unsigned long long)seed);
    out->nbinds = 0;
    if (g->usedB || g->usedS) {
        buf_printf(&text, "  dim ");
        if (g->usedB) {
            buf_printf(&text, "B");
            if (chance(g, 0.4)) buf_printf(&text, " <= %d", g->vB + rint_(g, 0, 8));
            out->bind_names[out->nbinds] = "B";
            out->bind_values[out->nbinds++] = g->vB;
        }
        if (g->usedS) {
            buf_printf(&text, "%sS", g->usedB ? ", " : "");
            if (chance(g, 0.4)) buf_printf(&text, " <= %d", g->vS + rint_(g, 0, 8));
            out->bind_names[out->nbinds] = "S";
            out->bind_values[out->nbinds++] = g->vS;
        }
        buf_printf(&text, "\n");
    }
    buf_printf(&text, "%s%s%s}\n", g->decl.s ? g->decl.s : "", g->body.s ? g->body.s : "",
               outs.s ? outs.s : "");
    out->text = text.s;
    out->kind = g->intg ? ty_names[g->I] : ty_names[g->F];
    out->nops = g->nops;
    out->motifs = g->motifs.s;
    free(outs.s);
    free(g->fns.s);
    free(g->decl.s);
    free(g->body.s);
    free(g);
}

void randgraph_free(RandGraph *m) {
    free(m->text);
    free(m->motifs);
    m->text = NULL;
    m->motifs = NULL;
}
