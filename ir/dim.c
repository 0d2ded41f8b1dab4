/* Canonical symbolic dimension expressions (see dim.h).
 *
 * A polynomial is a sorted list of terms; a term is an int64 coefficient times a
 * sorted multiset of atoms.  Normalisation sorts, merges equal monomials and
 * drops zero coefficients, so structural equality is semantic equality for the
 * polynomial part.  Polynomials are interned in a hash table; the DimId is the
 * index.  Limits (terms, degree) keep adversarial inputs like B*B*...*B cheap. */
#include "dim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert.h"

enum { MAX_TERMS = 32, MAX_DEGREE = 8 };

typedef enum { ATOM_SYM, ATOM_DIV, ATOM_FLOORDIV, ATOM_MIN, ATOM_MAX } AtomKind;

typedef struct {
    AtomKind kind;
    int sym;
    DimId a, b;
} Atom;

typedef struct {
    int64_t coef;
    int natoms;
    int32_t atoms[MAX_DEGREE];
} Term;

typedef struct {
    int nterms;
    Term *terms;
    uint64_t hash;
} Poly;

typedef struct {
    const char *name;
    int64_t bound;
    Loc loc;
    int atom;
} Sym;

struct DimTable {
    Arena *arena;
    Sym *syms;
    size_t nsyms, symcap;
    Atom *atoms;
    size_t natoms, atomcap;
    Poly *polys;
    size_t npolys, polycap;
    DimId *slots; /* open addressing, -1 empty */
    size_t nslots;
};

DimTable *dim_table_create(Arena *a) {
    DimTable *t = arena_alloc(a, sizeof *t);
    t->arena = a;
    t->nslots = 256;
    t->slots = arena_alloc(a, sizeof(DimId) * t->nslots);
    for (size_t i = 0; i < t->nslots; i++) t->slots[i] = -1;
    return t;
}

/* ---- terms and polynomials ---------------------------------------------- */

static int term_cmp(const Term *x, const Term *y) {
    if (x->natoms != y->natoms) return x->natoms < y->natoms ? -1 : 1;
    for (int i = 0; i < x->natoms; i++)
        if (x->atoms[i] != y->atoms[i]) return x->atoms[i] < y->atoms[i] ? -1 : 1;
    return 0;
}

static int term_qcmp(const void *a, const void *b) { return term_cmp(a, b); }

static int atom_qcmp(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static uint64_t hash_terms(const Term *ts, int n) {
    uint64_t h = 1469598103934665603ull;
#define MIX(v) (h = (h ^ (uint64_t)(v)) * 1099511628211ull)
    for (int i = 0; i < n; i++) {
        MIX(ts[i].coef);
        MIX(ts[i].natoms);
        for (int j = 0; j < ts[i].natoms; j++) MIX(ts[i].atoms[j]);
    }
#undef MIX
    return h;
}

static bool poly_eq(const Poly *p, const Term *ts, int n) {
    if (p->nterms != n) return false;
    for (int i = 0; i < n; i++)
        if (p->terms[i].coef != ts[i].coef || term_cmp(&p->terms[i], &ts[i]) != 0) return false;
    return true;
}

static void rehash(DimTable *t) {
    size_t n = t->nslots * 2;
    DimId *s = arena_alloc(t->arena, sizeof(DimId) * n);
    for (size_t i = 0; i < n; i++) s[i] = -1;
    for (size_t id = 0; id < t->npolys; id++) {
        size_t k = t->polys[id].hash & (n - 1);
        while (s[k] >= 0) k = (k + 1) & (n - 1);
        s[k] = (DimId)id;
    }
    t->slots = s;
    t->nslots = n;
}

/* Normalises ts[0..n) in place and interns it. */
static DimId intern(DimTable *t, Term *ts, int n) {
    for (int i = 0; i < n; i++) qsort(ts[i].atoms, (size_t)ts[i].natoms, sizeof(int32_t), atom_qcmp);
    qsort(ts, (size_t)n, sizeof(Term), term_qcmp);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m > 0 && term_cmp(&ts[m - 1], &ts[i]) == 0) {
            if (__builtin_add_overflow(ts[m - 1].coef, ts[i].coef, &ts[m - 1].coef))
                return DIM_INVALID;
        } else {
            ts[m++] = ts[i];
        }
    }
    int k = 0;
    for (int i = 0; i < m; i++)
        if (ts[i].coef != 0) ts[k++] = ts[i];
    n = k;
    if (n > MAX_TERMS) return DIM_INVALID;
    uint64_t h = hash_terms(ts, n);
    size_t slot = h & (t->nslots - 1);
    while (t->slots[slot] >= 0) {
        const Poly *p = &t->polys[t->slots[slot]];
        if (p->hash == h && poly_eq(p, ts, n)) return t->slots[slot];
        slot = (slot + 1) & (t->nslots - 1);
    }
    if (t->npolys >= INT32_MAX / 2) return DIM_INVALID;
    Poly p = {n, arena_alloc(t->arena, sizeof(Term) * (size_t)(n ? n : 1)), h};
    memcpy(p.terms, ts, sizeof(Term) * (size_t)n);
    DimId id = (DimId)t->npolys;
    VEC_PUSH(t->arena, t->polys, t->npolys, t->polycap, p);
    t->slots[slot] = id;
    if (t->npolys * 2 > t->nslots) rehash(t);
    return id;
}

static int new_atom(DimTable *t, Atom a) {
    for (size_t i = 0; i < t->natoms; i++) {
        const Atom *b = &t->atoms[i];
        if (b->kind == a.kind && b->sym == a.sym && b->a == a.a && b->b == a.b) return (int)i;
    }
    VEC_PUSH(t->arena, t->atoms, t->natoms, t->atomcap, a);
    return (int)t->natoms - 1;
}

static DimId atom_dim(DimTable *t, int atom) {
    Term term = {1, 1, {atom}};
    return intern(t, &term, 1);
}

/* ---- symbols ------------------------------------------------------------- */

int dim_declare(DimTable *t, const char *name, int64_t bound, Loc loc) {
    Sym s = {arena_strdup(t->arena, name), bound, loc, 0};
    s.atom = new_atom(t, (Atom){ATOM_SYM, (int)t->nsyms, -1, -1});
    VEC_PUSH(t->arena, t->syms, t->nsyms, t->symcap, s);
    return (int)t->nsyms - 1;
}

int dim_sym_count(const DimTable *t) { return (int)t->nsyms; }
const char *dim_sym_name(const DimTable *t, int sym) { return t->syms[sym].name; }
int64_t dim_sym_bound(const DimTable *t, int sym) { return t->syms[sym].bound; }
Loc dim_sym_loc(const DimTable *t, int sym) { return t->syms[sym].loc; }

int dim_sym_lookup(const DimTable *t, const char *name) {
    for (size_t i = 0; i < t->nsyms; i++)
        if (strcmp(t->syms[i].name, name) == 0) return (int)i;
    return -1;
}

/* ---- arithmetic ---------------------------------------------------------- */

DimId dim_const(DimTable *t, int64_t v) {
    Term term = {v, 0, {0}};
    return intern(t, &term, 1);
}

DimId dim_sym(DimTable *t, int sym) {
    DSC_ASSERT(sym >= 0 && (size_t)sym < t->nsyms);
    return atom_dim(t, t->syms[sym].atom);
}

static const Poly *P(const DimTable *t, DimId d) { return &t->polys[d]; }

static DimId add_scaled(DimTable *t, DimId a, DimId b, int64_t sign) {
    if (a < 0 || b < 0) return DIM_INVALID;
    const Poly *pa = P(t, a), *pb = P(t, b);
    int n = pa->nterms + pb->nterms;
    Term *ts = malloc(sizeof(Term) * (size_t)(n ? n : 1));
    DSC_ASSERT(ts);
    memcpy(ts, pa->terms, sizeof(Term) * (size_t)pa->nterms);
    for (int i = 0; i < pb->nterms; i++) {
        ts[pa->nterms + i] = pb->terms[i];
        if (__builtin_mul_overflow(pb->terms[i].coef, sign, &ts[pa->nterms + i].coef)) {
            free(ts);
            return DIM_INVALID;
        }
    }
    DimId r = intern(t, ts, n);
    free(ts);
    return r;
}

DimId dim_add(DimTable *t, DimId a, DimId b) { return add_scaled(t, a, b, 1); }
DimId dim_sub(DimTable *t, DimId a, DimId b) { return add_scaled(t, a, b, -1); }

static DimId poly_divide(DimTable *t, DimId a, DimId b);
static DimId mul_raw(DimTable *t, DimId a, DimId b);

/* After a multiplication, a term (a/b)*r where b divides r becomes a*(r/b):
 * sound because a/b is checked to be exact when it is evaluated. */
static DimId cancel_divisions(DimTable *t, DimId d) {
    if (d < 0) return d;
    /* t->polys may move while interning: index it afresh every time */
    for (int i = 0; i < t->polys[d].nterms; i++)
        for (int j = 0; j < t->polys[d].terms[i].natoms; j++) {
            const Atom at = t->atoms[t->polys[d].terms[i].atoms[j]];
            if (at.kind != ATOM_DIV) continue;
            Term rest = t->polys[d].terms[i];
            memmove(&rest.atoms[j], &rest.atoms[j + 1], sizeof(int32_t) * (size_t)(rest.natoms - j - 1));
            rest.natoms--;
            DimId q = poly_divide(t, intern(t, &rest, 1), at.b);
            if (q == DIM_INVALID) continue;
            /* d = (d - term) + a*q */
            Term term = t->polys[d].terms[i];
            DimId others = dim_sub(t, d, intern(t, &term, 1));
            return cancel_divisions(t, dim_add(t, others, mul_raw(t, at.a, q)));
        }
    return d;
}

DimId dim_mul(DimTable *t, DimId a, DimId b) { return cancel_divisions(t, mul_raw(t, a, b)); }

static DimId mul_raw(DimTable *t, DimId a, DimId b) {
    if (a < 0 || b < 0) return DIM_INVALID;
    const Poly *pa = P(t, a), *pb = P(t, b);
    int n = pa->nterms * pb->nterms;
    if (n > MAX_TERMS * MAX_TERMS) return DIM_INVALID;
    Term *ts = malloc(sizeof(Term) * (size_t)(n ? n : 1));
    DSC_ASSERT(ts);
    int k = 0;
    for (int i = 0; i < pa->nterms; i++)
        for (int j = 0; j < pb->nterms; j++) {
            const Term *x = &pa->terms[i], *y = &pb->terms[j];
            Term *z = &ts[k++];
            if (x->natoms + y->natoms > MAX_DEGREE || __builtin_mul_overflow(x->coef, y->coef, &z->coef)) {
                free(ts);
                return DIM_INVALID;
            }
            z->natoms = x->natoms + y->natoms;
            memcpy(z->atoms, x->atoms, sizeof(int32_t) * (size_t)x->natoms);
            memcpy(z->atoms + x->natoms, y->atoms, sizeof(int32_t) * (size_t)y->natoms);
        }
    DimId r = intern(t, ts, n);
    free(ts);
    return r;
}

bool dim_is_const(const DimTable *t, DimId d, int64_t *v) {
    if (d < 0) return false;
    const Poly *p = P(t, d);
    if (p->nterms == 0) {
        if (v) *v = 0;
        return true;
    }
    if (p->nterms == 1 && p->terms[0].natoms == 0) {
        if (v) *v = p->terms[0].coef;
        return true;
    }
    return false;
}

bool dim_is_sym(const DimTable *t, DimId d, int *sym) {
    if (d < 0) return false;
    const Poly *p = P(t, d);
    if (p->nterms != 1 || p->terms[0].coef != 1 || p->terms[0].natoms != 1) return false;
    const Atom *a = &t->atoms[p->terms[0].atoms[0]];
    if (a->kind != ATOM_SYM) return false;
    if (sym) *sym = a->sym;
    return true;
}

/* Tries to divide a by b exactly as polynomials: b must be a single term whose
 * coefficient and atoms divide every term of a. */
static DimId poly_divide(DimTable *t, DimId a, DimId b) {
    const Poly *pa = P(t, a), *pb = P(t, b);
    if (pb->nterms != 1) return DIM_INVALID;
    const Term *d = &pb->terms[0];
    if (d->coef == 0) return DIM_INVALID;
    Term *ts = malloc(sizeof(Term) * (size_t)(pa->nterms ? pa->nterms : 1));
    DSC_ASSERT(ts);
    for (int i = 0; i < pa->nterms; i++) {
        Term x = pa->terms[i];
        if (x.coef % d->coef != 0 || (d->coef == -1 && x.coef == INT64_MIN)) goto fail;
        x.coef /= d->coef;
        for (int j = 0; j < d->natoms; j++) { /* remove each atom of d once */
            int k = 0;
            while (k < x.natoms && x.atoms[k] != d->atoms[j]) k++;
            if (k == x.natoms) goto fail;
            memmove(&x.atoms[k], &x.atoms[k + 1], sizeof(int32_t) * (size_t)(x.natoms - k - 1));
            x.natoms--;
        }
        ts[i] = x;
    }
    DimId r = intern(t, ts, pa->nterms);
    free(ts);
    return r;
fail:
    free(ts);
    return DIM_INVALID;
}

static DimId opaque(DimTable *t, AtomKind kind, DimId a, DimId b) {
    return atom_dim(t, new_atom(t, (Atom){kind, -1, a, b}));
}

static int64_t floordiv64(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

DimId dim_div(DimTable *t, DimId a, DimId b) {
    if (a < 0 || b < 0) return DIM_INVALID;
    int64_t cb;
    if (dim_is_const(t, b, &cb)) {
        if (cb == 0) return DIM_INVALID;
        if (cb == 1) return a;
    }
    DimId r = poly_divide(t, a, b);
    if (r != DIM_INVALID) return r;
    int64_t ca;
    if (dim_is_const(t, a, &ca) && dim_is_const(t, b, &cb)) return DIM_INVALID; /* inexact */
    return opaque(t, ATOM_DIV, a, b);
}

DimId dim_floordiv(DimTable *t, DimId a, DimId b) {
    if (a < 0 || b < 0) return DIM_INVALID;
    int64_t ca, cb;
    if (dim_is_const(t, b, &cb) && cb == 0) return DIM_INVALID;
    if (dim_is_const(t, a, &ca) && dim_is_const(t, b, &cb)) {
        if (ca == INT64_MIN && cb == -1) return DIM_INVALID;
        return dim_const(t, floordiv64(ca, cb));
    }
    DimId r = poly_divide(t, a, b);
    if (r != DIM_INVALID) return r;
    if (dim_is_const(t, b, &cb) && cb > 0) {
        /* (k*p + c) floordiv k = p + floor(c/k) when k divides every non-constant term */
        const Poly *pa = P(t, a);
        int64_t c = 0;
        bool ok = true;
        for (int i = 0; i < pa->nterms && ok; i++) {
            if (pa->terms[i].natoms == 0)
                c = pa->terms[i].coef;
            else
                ok = pa->terms[i].coef % cb == 0;
        }
        if (ok) {
            DimId rest = poly_divide(t, dim_sub(t, a, dim_const(t, c)), b);
            if (rest != DIM_INVALID) return dim_add(t, rest, dim_const(t, floordiv64(c, cb)));
        }
    }
    return opaque(t, ATOM_FLOORDIV, a, b);
}

static DimId minmax(DimTable *t, DimId a, DimId b, bool want_min) {
    if (a < 0 || b < 0) return DIM_INVALID;
    if (a == b) return a;
    int64_t diff;
    DimId d = dim_sub(t, a, b);
    if (d != DIM_INVALID && dim_is_const(t, d, &diff)) return (diff < 0) == want_min ? a : b;
    /* provably ordered for every non-negative binding of the dims */
    if (d != DIM_INVALID && dim_nonneg(t, d)) return want_min ? b : a;
    DimId e = dim_sub(t, b, a);
    if (e != DIM_INVALID && dim_nonneg(t, e)) return want_min ? a : b;
    /* canonical argument order, independent of interning order (so printed
     * text is stable when a dump is reparsed): a constant last, otherwise by
     * the printed text */
    bool ca = dim_is_const(t, a, NULL), cbk = dim_is_const(t, b, NULL);
    bool swap;
    if (ca != cbk) {
        swap = ca;
    } else {
        char x[256], y[256];
        dim_snprint(t, a, x, sizeof x);
        dim_snprint(t, b, y, sizeof y);
        int c = strcmp(x, y);
        swap = c > 0 || (c == 0 && a > b);
    }
    if (swap) {
        DimId x = a;
        a = b;
        b = x;
    }
    return opaque(t, want_min ? ATOM_MIN : ATOM_MAX, a, b);
}

DimId dim_min(DimTable *t, DimId a, DimId b) { return minmax(t, a, b, true); }
DimId dim_max(DimTable *t, DimId a, DimId b) { return minmax(t, a, b, false); }

static bool atoms_opaque(const DimTable *t, DimId d, bool nonneg_check) {
    const Poly *p = P(t, d);
    for (int i = 0; i < p->nterms; i++) {
        if (nonneg_check && p->terms[i].coef < 0) return false;
        for (int j = 0; j < p->terms[i].natoms; j++) {
            const Atom *a = &t->atoms[p->terms[i].atoms[j]];
            if (a->kind == ATOM_SYM) continue;
            if (!nonneg_check) return true;
            if (a->kind == ATOM_MAX) {
                if (!dim_nonneg(t, a->a) && !dim_nonneg(t, a->b)) return false;
            } else if (!dim_nonneg(t, a->a) || !dim_nonneg(t, a->b)) {
                return false;
            }
        }
    }
    return nonneg_check;
}

bool dim_has_opaque(const DimTable *t, DimId d) { return d >= 0 && atoms_opaque(t, d, false); }
bool dim_nonneg(const DimTable *t, DimId d) { return d >= 0 && atoms_opaque(t, d, true); }

/* ---- printing ------------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t cap, len;
} Out;

static void put(Out *o, const char *s) {
    size_t n = strlen(s);
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void print_dim(const DimTable *t, DimId d, Out *o, bool paren);

static void print_atom(const DimTable *t, int atom, Out *o) {
    const Atom *a = &t->atoms[atom];
    switch (a->kind) {
    case ATOM_SYM: put(o, t->syms[a->sym].name); return;
    case ATOM_DIV:
        put(o, "(");
        print_dim(t, a->a, o, true);
        put(o, "/");
        print_dim(t, a->b, o, true);
        put(o, ")");
        return;
    default: {
        static const char *fn[] = {"", "", "floordiv(", "min(", "max("};
        put(o, fn[a->kind]);
        print_dim(t, a->a, o, false);
        put(o, ", ");
        print_dim(t, a->b, o, false);
        put(o, ")");
        return;
    }
    }
}

/* paren: wrap in parentheses unless the expression is a single atom or constant. */
static void print_dim(const DimTable *t, DimId d, Out *o, bool paren) {
    if (d < 0) {
        put(o, "?");
        return;
    }
    const Poly *p = P(t, d);
    if (p->nterms == 0) {
        put(o, "0");
        return;
    }
    bool simple = p->nterms == 1 && (p->terms[0].natoms == 0 ? p->terms[0].coef >= 0
                                                               : p->terms[0].coef == 1 && p->terms[0].natoms == 1);
    if (paren && !simple) put(o, "(");
    /* non-constant terms first (highest degree first reads naturally), constant last */
    bool first = true;
    for (int pass = 0; pass < 2; pass++)
        for (int i = p->nterms - 1; i >= 0; i--) {
            const Term *tm = &p->terms[i];
            if ((tm->natoms == 0) != (pass == 1)) continue;
            char num[32];
            int64_t c = tm->coef;
            bool neg = c < 0;
            uint64_t mag = neg ? (uint64_t)0 - (uint64_t)c : (uint64_t)c;
            if (first) {
                if (neg) put(o, "-");
            } else {
                put(o, neg ? "-" : "+");
            }
            first = false;
            if (tm->natoms == 0 || mag != 1) {
                snprintf(num, sizeof num, "%" PRIu64, mag);
                put(o, num);
                if (tm->natoms) put(o, "*");
            }
            for (int j = 0; j < tm->natoms; j++) {
                if (j) put(o, "*");
                print_atom(t, tm->atoms[j], o);
            }
        }
    if (paren && !simple) put(o, ")");
}

int dim_snprint(const DimTable *t, DimId d, char *buf, size_t n) {
    Out o = {buf, n ? n - 1 : 0, 0};
    print_dim(t, d, &o, false);
    if (n) buf[o.len < n - 1 ? o.len : n - 1] = 0;
    return (int)o.len;
}

const char *dim_str(const DimTable *t, DimId d, Arena *a) {
    int n = dim_snprint(t, d, NULL, 0);
    char *s = arena_alloc(a, (size_t)n + 1);
    dim_snprint(t, d, s, (size_t)n + 1);
    return s;
}

const char *dim_shape_str(const DimTable *t, const DimId *dims, int rank, Arena *a) {
    Out o = {NULL, 0, 0};
    for (int pass = 0; pass < 2; pass++) {
        o.len = 0;
        put(&o, "[");
        for (int i = 0; i < rank; i++) {
            if (i) put(&o, ",");
            print_dim(t, dims[i], &o, false);
        }
        put(&o, "]");
        if (pass == 0) {
            o.cap = o.len;
            o.buf = arena_alloc(a, o.len + 1);
        }
    }
    o.buf[o.len] = 0;
    return o.buf;
}

/* ---- structure ----------------------------------------------------------- */

int dim_nterms(const DimTable *t, DimId d) { return d < 0 ? 0 : P(t, d)->nterms; }
int64_t dim_term_coef(const DimTable *t, DimId d, int term) { return P(t, d)->terms[term].coef; }
int dim_term_natoms(const DimTable *t, DimId d, int term) { return P(t, d)->terms[term].natoms; }
int dim_term_atom(const DimTable *t, DimId d, int term, int j) { return P(t, d)->terms[term].atoms[j]; }

DimAtomKind dim_atom(const DimTable *t, int atom, int *sym, DimId *a, DimId *b) {
    const Atom *x = &t->atoms[atom];
    if (sym) *sym = x->sym;
    if (a) *a = x->a;
    if (b) *b = x->b;
    static const DimAtomKind kinds[] = {DIM_ATOM_SYM, DIM_ATOM_DIV, DIM_ATOM_FLOORDIV, DIM_ATOM_MIN, DIM_ATOM_MAX};
    return kinds[x->kind];
}

/* ---- evaluation ---------------------------------------------------------- */

static bool eval(const DimTable *t, DimId d, const int64_t *syms, int64_t *out, char *err, size_t errlen);

static bool eval_atom(const DimTable *t, int atom, const int64_t *syms, int64_t *out, char *err,
                      size_t errlen) {
    const Atom *a = &t->atoms[atom];
    if (a->kind == ATOM_SYM) {
        *out = syms[a->sym];
        return true;
    }
    int64_t x, y;
    if (!eval(t, a->a, syms, &x, err, errlen) || !eval(t, a->b, syms, &y, err, errlen)) return false;
    switch (a->kind) {
    case ATOM_DIV:
    case ATOM_FLOORDIV:
        if (y == 0 || (x == INT64_MIN && y == -1)) {
            if (err) snprintf(err, errlen, "division by zero in a dimension expression");
            return false;
        }
        if (a->kind == ATOM_DIV && x % y != 0) {
            if (err) {
                char e[256];
                Out o = {e, sizeof e - 1, 0};
                print_atom(t, atom, &o);
                e[o.len < sizeof e - 1 ? o.len : sizeof e - 1] = 0;
                snprintf(err, errlen, "dimension %s is not an exact division: %" PRId64 "/%" PRId64,
                         e, x, y);
            }
            return false;
        }
        *out = a->kind == ATOM_DIV ? x / y : floordiv64(x, y);
        return true;
    case ATOM_MIN: *out = x < y ? x : y; return true;
    case ATOM_MAX: *out = x > y ? x : y; return true;
    default: DSC_UNREACHABLE();
    }
    return false;
}

static bool eval(const DimTable *t, DimId d, const int64_t *syms, int64_t *out, char *err, size_t errlen) {
    if (d < 0) {
        if (err) snprintf(err, errlen, "invalid dimension expression");
        return false;
    }
    const Poly *p = P(t, d);
    int64_t sum = 0;
    for (int i = 0; i < p->nterms; i++) {
        int64_t v = p->terms[i].coef;
        for (int j = 0; j < p->terms[i].natoms; j++) {
            int64_t x;
            if (!eval_atom(t, p->terms[i].atoms[j], syms, &x, err, errlen)) return false;
            if (__builtin_mul_overflow(v, x, &v)) goto overflow;
        }
        if (__builtin_add_overflow(sum, v, &sum)) goto overflow;
    }
    *out = sum;
    return true;
overflow:
    if (err) snprintf(err, errlen, "integer overflow evaluating a dimension expression");
    return false;
}

bool dim_eval(const DimTable *t, DimId d, const int64_t *syms, int64_t *out, char *err, size_t errlen) {
    return eval(t, d, syms, out, err, errlen);
}
