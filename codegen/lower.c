/* Lowering: each fusion group becomes one or more kernels of the kernel IR.
 *
 * The idea.  A group is an expression DAG over the values it reads from
 * memory (inputs, params, constant values and values of earlier groups).  A
 * kernel stores the group's *escaping* values (read by another group, or
 * graph outputs) by inlining that DAG at each output index: `val(n, ix)` gives
 * a scalar expression for node n's element at multi-index ix, recursing into
 * the operands at the indices the operator reads (broadcasting, transposes,
 * reshapes, slices, concat, gather) and emitting sequential `for` loops with
 * accumulator locals for reductions (reduce_*, the statistics of softmax,
 * layernorm and rmsnorm, matmul/linear/conv k-loops, pools, attention).
 *
 * Scopes and hoisting.  Statements go into a tree of scopes: the kernel body
 * (the parallel point), `for` bodies and `if` bodies.  Any statement that
 * computes a value is placed in the outermost scope where everything it uses
 * is defined (the deepest scope among the loop variables and locals it
 * mentions), so a reduction whose result does not depend on an inner loop
 * variable is computed once, before that loop: the row statistics of softmax
 * or layernorm lowered with the row axis as a sequential loop inside each
 * point are computed once per row.  `if` bodies are barriers (nothing inside
 * moves out, so a guarded load is never hoisted past its guard).  A value
 * used more than once is kept in a local and remembered per (node, index) --
 * indices compare structurally, so it is found again wherever the same index
 * is rebuilt; a remembered value is visible in the scope it was placed in and
 * below.  Accumulators are pinned to their loop while it is open.
 *
 * Parallel spaces.  Per group kind:
 *  - a group whose members are all elementwise or reshape/squeeze/unsqueeze
 *    (GK_ELEMENTWISE, and such constant groups): ONE kernel over the domain
 *    (the escaping values all have its element count), every point computing
 *    all escaping values into locals before storing any -- memplan lets such
 *    a group write an output over a dying operand of the same size (in-place
 *    update), and a value at linear index i depends on operand element i only;
 *  - attention (the operator, or GK_ATTENTION's written-out pattern): one
 *    point per query row (batch dims x query index); inside, one pass over the
 *    keys with a running max, running sum and one accumulator per output
 *    channel (online softmax, Dv separate locals when Dv is a constant <= 256;
 *    otherwise the statistics are computed once per row and each channel is
 *    a sequential loop that recomputes the scores).  Epilogue members
 *    (transpose, reshape, elementwise, batchnorm) are pushed forward from the
 *    attention result: their indices are computed from the attention index and
 *    each escaping one is stored at its own (remapped) index;
 *  - everything else (GEMM, reduction, layout, single, other constant
 *    groups): one kernel per set of escaping values of the same shape, over
 *    that shape.  Groups with a reduction or normalisation try every suffix of
 *    axes and every single axis as sequential loops and keep the cheapest
 *    (work estimated at a sample binding of the dims, with a 25% margin in
 *    favour of more parallelism); GEMM, layout and elementwise work is the
 *    same for every choice, so they stay fully parallel (one dot product or
 *    one element per point).
 * Kernels of one group are independent except for the in-place rule above,
 * which is why an elementwise group is one kernel.
 *
 * Rounding points.  Kernels compute in f32, so f16/bf16 intermediates are not
 * rounded (spec section 4 allows it), but an explicit cast to f16 or bf16 must
 * round, and so should a half-precision value that a cast or a comparison in
 * the group reads (a truncation or a comparison would otherwise see digits
 * the value does not have).  Such a value is rounded where it is computed,
 * in the kernel (KO_WRAP to f16/bf16: stored and read back), so the casts
 * that passes/precision.c puts around a GEMM stay in the GEMM's kernel.
 *
 * Integers follow the interpreter exactly: i64 arithmetic that wraps, KO_WRAP
 * to i8/i32 after every operation that can leave the dtype's range, truncating
 * division guarded so that INT64_MIN / -1 does not trap, integer pow by
 * square-and-multiply, float -> int casts that saturate.
 *
 * Run-time errors.  Where the interpreter reports an error (an integer
 * division by zero, integer 0 to a negative power, a gather index out of
 * range), the kernel gets `if (cond) trap(code, node, operands)` (KS_TRAP,
 * ir/trap.h) placed like a computed value, and the guarded value is 0: the
 * backend records the first trap of the run and the launcher fails the run
 * with the interpreter's message.  A check runs for the elements a kernel
 * computes: an element that fusion never computes (a slice or gather of a
 * fused value drops it) is not checked, where the interpreter, computing
 * every node whole, reports it. */
#include "lower.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

#include "../ir/assert.h"
#include "../ir/trap.h"
#include "lower_sparse.h"

enum {
    MAX_UNROLL = 256, /* attention: most output channels kept in separate locals */
    BIG_INDEX = 48,   /* index expressions larger than this are kept in a local */
};

/* tags of remembered values: an element, or a row statistic */
enum { TAG_VAL, TAG_MAX, TAG_SUM, TAG_MEAN, TAG_RSTD, TAG_ATT_M, TAG_ATT_L };

typedef struct Scope Scope;
struct Scope {
    Scope *parent;
    KStmt *body, *tail;
    int depth;
    bool barrier; /* an if body */
    int var;      /* loop variable, -1 when none (an if, or a loop of one iteration) */
    DimId extent;
    KExpr *cond;
};

/* A multi-index into a node's value; `lin` is the linear index it was
 * unravelled from, when known (so a reshape back finds the same index). */
typedef struct {
    int rank;
    KExpr *e[IR_MAX_RANK];
    KExpr *lin;
} Ix;

typedef struct {
    const Node *n;
    int tag;
    Ix ix;
    uint64_t h;
    KExpr *val;
    Scope *scope;
} Ent;

/* The graph and the group being lowered. */
typedef struct {
    Graph *g;
    Diag *d;
    KProgram *prog;
    const char *prefix; /* the model name as a C identifier */
    int64_t *sample;    /* a binding of the dims for cost estimates */
    int *uses;          /* by node id: uses inside its group, +1 if it escapes */
    bool *esc;          /* by node id: read outside its group or a graph output */
    bool *bnd;          /* by node id: a rounding point, rounded in the kernel (KO_WRAP) */
    bool *own;          /* by node id: computed by a kernel of its own (a sparse GEMM and its
                           operands computed in the group); the rest of the group loads it */
    bool *reach;        /* by node id: reached from the attention core (current group) */
    const Group *grp;   /* the group, or NULL: `single` alone */
    const Node *single;
    Node **m; /* members in node order */
    int nm;
    int kno; /* kernels emitted for the group */
    bool ok;
} GCtx;

/* One kernel being built. */
typedef struct {
    GCtx *G;
    Graph *g;
    Kernel *k;
    Scope *root, *cur;
    Scope **vscope; /* by variable */
    DimId *vext;
    int vcap;
    Scope **lscope; /* by local: where it is defined */
    int lcap;
    Ent *ents;
    int nents, entcap;
    const Node *const *targets;
    int ntargets;
    int npar_cap;
} Low;

/* ---- small helpers ------------------------------------------------------------ */

static bool is_alias_op(OpKind op) { return op == OP_RESHAPE || op == OP_SQUEEZE || op == OP_UNSQUEEZE; }

static bool is_one(const Graph *g, DimId d) {
    int64_t v;
    return dim_is_const(g->dims, d, &v) && v == 1;
}

static bool same_shape(const Type *a, const Type *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i]) return false;
    return true;
}

/* A node that launches nothing: a reshape/squeeze/unsqueeze in an alias group
 * (or any of them without groups) is its operand's memory. */
static bool is_view(const Graph *g, const Node *n) {
    if (!is_alias_op(n->op) || !n->in[0]) return false;
    if (g->ngroups == 0) return true;
    return n->ann.group >= 0 && n->ann.group < g->ngroups && g->groups[n->ann.group]->kind == GK_ALIAS;
}

static const Node *root_of(const Graph *g, const Node *n) {
    while (is_view(g, n)) n = n->in[0];
    return n;
}

static bool in_const_group(const Graph *g, const Node *n) {
    return g->ngroups > 0 && n->ann.group >= 0 && n->ann.group < g->ngroups &&
           g->groups[n->ann.group]->kind == GK_CONSTANT;
}

static KBufRole role_of(const Graph *g, const Node *r) {
    if (r->op == OP_INPUT) return KB_INPUT;
    if (r->op == OP_PARAM) return KB_PARAM;
    return in_const_group(g, r) ? KB_CONSTANT : KB_PLANNED;
}

/* ---- expressions (with folding of constant index arithmetic) ------------------- */

static KExpr *ci(Low *L, int64_t v) { return kir_const_i(L->g, v); }
static KExpr *cf(Low *L, double v) { return kir_const_f(L->g, v); }

static bool kci(const KExpr *e, int64_t *v) {
    if (e->kind != KE_CONST || e->type == KT_F32) return false;
    *v = e->i;
    return true;
}

/* i64 (or bool, for AND/OR) arithmetic with constant folding and identities. */
static KExpr *ib(Low *L, KOp op, KExpr *a, KExpr *b) {
    int64_t x = 0, y = 0;
    bool ca = kci(a, &x), cb = kci(b, &y);
    if (a->type == KT_BOOL && (op == KO_AND || op == KO_OR)) {
        if (ca) return (op == KO_AND) == (x != 0) ? b : a;
        if (cb) return (op == KO_AND) == (y != 0) ? a : b;
        return kir_bin(L->g, op, a, b);
    }
    if (a->type != KT_I64) return kir_bin(L->g, op, a, b);
    if (ca && cb) {
        switch (op) {
        case KO_ADD: return ci(L, ir_u64_to_i64((uint64_t)x + (uint64_t)y));
        case KO_SUB: return ci(L, ir_u64_to_i64((uint64_t)x - (uint64_t)y));
        case KO_MUL: return ci(L, ir_u64_to_i64((uint64_t)x * (uint64_t)y));
        case KO_DIV:
            if (y != 0 && y != -1) return ci(L, x / y);
            break;
        case KO_MOD:
            if (y > 0 && x >= 0) return ci(L, x % y);
            break;
        case KO_MIN: return ci(L, x < y ? x : y);
        case KO_MAX: return ci(L, x > y ? x : y);
        case KO_LT: return kir_const_b(L->g, x < y);
        case KO_GT: return kir_const_b(L->g, x > y);
        case KO_LE: return kir_const_b(L->g, x <= y);
        case KO_GE: return kir_const_b(L->g, x >= y);
        case KO_EQ: return kir_const_b(L->g, x == y);
        case KO_NE: return kir_const_b(L->g, x != y);
        default: break;
        }
    }
    switch (op) {
    case KO_ADD:
        if (ca && x == 0) return b;
        if (cb && y == 0) return a;
        break;
    case KO_SUB:
        if (cb && y == 0) return a;
        break;
    case KO_MUL:
        if ((ca && x == 0) || (cb && y == 0)) return ci(L, 0);
        if (ca && x == 1) return b;
        if (cb && y == 1) return a;
        break;
    case KO_DIV:
        if (cb && y == 1) return a;
        if (ca && x == 0) return a;
        break;
    case KO_MOD:
        if (cb && y == 1) return ci(L, 0);
        if (ca && x == 0) return a;
        break;
    default: break;
    }
    return kir_bin(L->g, op, a, b);
}

static KExpr *sel(Low *L, KExpr *c, KExpr *a, KExpr *b) {
    int64_t v;
    if (kci(c, &v)) return v ? a : b;
    return kir_select(L->g, c, a, b);
}

static KExpr *kdim(Low *L, DimId d) {
    int64_t v;
    if (dim_is_const(L->g->dims, d, &v)) return ci(L, v);
    return kir_from_dim(L->g, d);
}

/* A dim expression as an f32 value (a count to divide by). */
static KExpr *fcount(Low *L, DimId d) {
    int64_t v;
    if (dim_is_const(L->g->dims, d, &v)) return cf(L, (double)(float)v);
    return kir_cast(L->g, KT_F32, kir_from_dim(L->g, d));
}

static KExpr *wrapd(Low *L, DType dt, KExpr *e) {
    if (dt != DT_I8 && dt != DT_I32) return e;
    int64_t v;
    if (kci(e, &v)) return ci(L, ir_wrap_int(v, dt));
    return kir_wrap(L->g, dt, e);
}

static KExpr *zero_of(Low *L, KType t) {
    return t == KT_F32 ? cf(L, 0) : t == KT_I64 ? ci(L, 0) : kir_const_b(L->g, false);
}

static int esize(const KExpr *e, int limit) {
    int n = 0;
    while (e && n < limit) {
        n++;
        if (e->b) n += esize(e->b, limit - n);
        if (e->c) n += esize(e->c, limit - n);
        e = e->a;
    }
    return n;
}

static bool eq(const KExpr *a, const KExpr *b) {
    for (;;) {
        if (a == b) return true;
        if (!a || !b || a->kind != b->kind || a->type != b->type || a->op != b->op || a->dt != b->dt ||
            a->id != b->id || a->i != b->i || memcmp(&a->f, &b->f, sizeof a->f) != 0)
            return false;
        if (!eq(a->b, b->b) || !eq(a->c, b->c)) return false;
        a = a->a;
        b = b->a;
    }
}

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

static uint64_t hexpr(const KExpr *e) {
    uint64_t h = 17;
    for (; e; e = e->a) {
        uint64_t fb;
        memcpy(&fb, &e->f, sizeof fb);
        h = mix(h, (uint64_t)e->kind * 131 + (uint64_t)e->type * 7 + (uint64_t)e->op * 1031 + (uint64_t)e->dt);
        h = mix(h, (uint64_t)e->id);
        h = mix(h, (uint64_t)e->i ^ fb);
        if (e->b) h = mix(h, hexpr(e->b));
        if (e->c) h = mix(h, hexpr(e->c));
    }
    return mix(h, 3);
}

/* ---- scopes, variables, locals ----------------------------------------------- */

static Scope *scope_new(Low *L, Scope *parent) {
    Scope *s = arena_alloc(L->g->arena, sizeof *s);
    s->parent = parent;
    s->depth = parent ? parent->depth + 1 : 0;
    s->var = -1;
    return s;
}

static void sappend(Scope *s, KStmt *st) {
    if (!st) return;
    if (!s->body)
        s->body = st;
    else
        s->tail->next = st;
    while (st->next) st = st->next;
    s->tail = st;
}

static int new_var(Low *L, Scope *s, DimId ext) {
    int v = kir_new_var(L->k);
    if (v >= L->vcap) {
        int nc = L->vcap ? L->vcap * 2 : 16;
        while (nc <= v) nc *= 2;
        L->vscope = arena_grow(L->g->arena, L->vscope, sizeof(Scope *) * (size_t)L->vcap, sizeof(Scope *) * (size_t)nc);
        L->vext = arena_grow(L->g->arena, L->vext, sizeof(DimId) * (size_t)L->vcap, sizeof(DimId) * (size_t)nc);
        L->vcap = nc;
    }
    L->vscope[v] = s;
    L->vext[v] = ext;
    return v;
}

static int new_local(Low *L, KType t, Scope *s) {
    int id = kir_new_local(L->g, L->k, t);
    if (id >= L->lcap) {
        int nc = L->lcap ? L->lcap * 2 : 16;
        while (nc <= id) nc *= 2;
        L->lscope = arena_grow(L->g->arena, L->lscope, sizeof(Scope *) * (size_t)L->lcap, sizeof(Scope *) * (size_t)nc);
        L->lcap = nc;
    }
    L->lscope[id] = s;
    return id;
}

static KExpr *lref(Low *L, int id) { return kir_local(L->g, L->k, id); }

/* A parallel variable over `ext`; its index expression (0 for an extent of 1). */
static KExpr *par_var(Low *L, DimId ext) {
    if (is_one(L->g, ext)) return ci(L, 0);
    DSC_ASSERT(L->k->nvars == L->k->npar); /* parallel variables come first */
    if (L->k->npar == L->npar_cap) {
        int nc = L->npar_cap ? L->npar_cap * 2 : 8;
        L->k->par_extent = arena_grow(L->g->arena, L->k->par_extent, sizeof(KExpr *) * (size_t)L->npar_cap,
                                      sizeof(KExpr *) * (size_t)nc);
        L->npar_cap = nc;
    }
    int v = new_var(L, L->root, ext);
    L->k->par_extent[L->k->npar++] = kdim(L, ext);
    return kir_var(L->g, v);
}

/* Backends want at least one parallel variable. */
static void ensure_par(Low *L) {
    if (L->k->npar > 0) return;
    DSC_ASSERT(L->k->nvars == 0);
    L->k->par_extent = arena_alloc(L->g->arena, sizeof(KExpr *));
    L->npar_cap = 1;
    new_var(L, L->root, dim_const(L->g->dims, 1));
    L->k->par_extent[L->k->npar++] = ci(L, 1);
}

/* Opens a loop over `ext` inside the current scope and enters it; returns the
 * index expression (0 and no loop for an extent of 1). */
static KExpr *loop_open(Low *L, DimId ext) {
    Scope *s = scope_new(L, L->cur);
    if (!is_one(L->g, ext)) {
        s->var = new_var(L, s, ext);
        s->extent = ext;
    }
    L->cur = s;
    return s->var >= 0 ? kir_var(L->g, s->var) : ci(L, 0);
}

static void loop_close(Low *L) {
    Scope *s = L->cur;
    L->cur = s->parent;
    if (s->var >= 0)
        sappend(L->cur, kir_for(L->g, s->var, kdim(L, s->extent), s->body));
    else
        sappend(L->cur, s->body);
}

static void if_open(Low *L, KExpr *cond) {
    Scope *s = scope_new(L, L->cur);
    s->barrier = true;
    s->cond = cond;
    L->cur = s;
}

static void if_close(Low *L) {
    Scope *s = L->cur;
    L->cur = s->parent;
    if (s->body) sappend(L->cur, kir_if(L->g, s->cond, s->body));
}

/* ---- placement and remembered values --------------------------------------------- */

static void deepest(Low *L, const KExpr *e, Scope **best) {
    for (; e; e = e->a) {
        Scope *s = NULL;
        if (e->kind == KE_VAR)
            s = L->vscope[e->id];
        else if (e->kind == KE_LOCAL)
            s = L->lscope[e->id];
        if (s && s->depth > (*best)->depth) *best = s;
        if (e->b) deepest(L, e->b, best);
        if (e->c) deepest(L, e->c, best);
    }
}

/* The outermost scope (on the current chain) where all of es can be computed. */
static Scope *place(Low *L, KExpr *const *es, int n) {
    Scope *best = L->root;
    for (int i = 0; i < n; i++)
        if (es[i]) deepest(L, es[i], &best);
    for (Scope *c = L->cur; c; c = c->parent)
        if (c->barrier) {
            if (c->depth > best->depth) best = c;
            break;
        }
    return best;
}

/* e kept in a local, defined as early as possible. */
static KExpr *mat(Low *L, KExpr *e) {
    if (e->kind == KE_CONST || e->kind == KE_LOCAL || e->kind == KE_VAR || e->kind == KE_DIM) return e;
    Scope *s = place(L, &e, 1);
    int t = new_local(L, e->type, s);
    sappend(s, kir_set(L->g, t, e));
    return lref(L, t);
}

/* A run-time error check (ir/trap.h): when cond holds, the run fails with
 * error `code` of node n and the operand values a0..a2 (NULL: none).  Placed
 * like a computed value, in the outermost scope where cond and the operands
 * are defined (never past an `if`), and emitted once per remembered value. */
static void trap_if(Low *L, KExpr *cond, KTrapCode code, const Node *n, KExpr *a0, KExpr *a1, KExpr *a2) {
    int64_t always;
    bool known = kci(cond, &always);
    if (known && !always) return;
    KExpr *es[4] = {cond, a0, a1, a2};
    KStmt *t = kir_trap(L->g, (int)code, n, a0, a1, a2);
    sappend(place(L, es, 4), known ? t : kir_if(L->g, cond, t));
}

static bool visible(const Low *L, const Scope *s) {
    for (const Scope *c = L->cur; c; c = c->parent)
        if (c == s) return true;
    return false;
}

static uint64_t hkey(const Node *n, int tag, const Ix *ix) {
    uint64_t h = mix((uint64_t)n->id * 7919 + (uint64_t)tag, (uint64_t)ix->rank);
    for (int i = 0; i < ix->rank; i++) h = mix(h, ix->e[i] ? hexpr(ix->e[i]) : 99);
    return h;
}

static KExpr *cache_get(Low *L, const Node *n, int tag, const Ix *ix) {
    uint64_t h = hkey(n, tag, ix);
    for (int i = L->nents - 1; i >= 0; i--) {
        const Ent *e = &L->ents[i];
        if (e->h != h || e->n != n || e->tag != tag || e->ix.rank != ix->rank || !visible(L, e->scope)) continue;
        bool same = true;
        for (int j = 0; j < ix->rank && same; j++) same = eq(e->ix.e[j], ix->e[j]);
        if (same) return e->val;
    }
    return NULL;
}

/* Remembers v (a constant or a local) as n's value (or statistic) at ix. */
static void cache_put(Low *L, const Node *n, int tag, const Ix *ix, KExpr *v) {
    Scope *s = L->root;
    if (v->kind == KE_LOCAL) s = L->lscope[v->id];
    if (L->nents == L->entcap) {
        int nc = L->entcap ? L->entcap * 2 : 32;
        L->ents = arena_grow(L->g->arena, L->ents, sizeof(Ent) * (size_t)L->entcap, sizeof(Ent) * (size_t)nc);
        L->entcap = nc;
    }
    Ent *e = &L->ents[L->nents++];
    e->n = n;
    e->tag = tag;
    e->ix = *ix;
    e->ix.lin = NULL;
    e->h = hkey(n, tag, ix);
    e->val = v;
    e->scope = s;
}

/* Reductions: accumulators live where all of the result's index is defined. */
static Scope *red_begin(Low *L, KExpr *const *keys, int n) {
    Scope *saved = L->cur;
    L->cur = place(L, keys, n);
    return saved;
}

static void red_end(Low *L, Scope *saved) { L->cur = saved; }

static int acc_new(Low *L, KExpr *init) {
    int t = new_local(L, init->type, L->cur);
    sappend(L->cur, kir_set(L->g, t, init));
    return t;
}

/* While its loop is open an accumulator changes: pin it to the loop body so
 * nothing that reads it is hoisted out; unpin when the loop is closed. */
static Scope *pin(Low *L, int acc) {
    Scope *s = L->lscope[acc];
    L->lscope[acc] = L->cur;
    return s;
}

static void unpin(Low *L, int acc, Scope *s) { L->lscope[acc] = s; }

static void upd(Low *L, int acc, KExpr *v) { sappend(L->cur, kir_set(L->g, acc, v)); }

/* ---- indices ---------------------------------------------------------------------- */

static void canon(Low *L, Ix *ix, const Type *t) {
    DSC_ASSERT(ix->rank == t->rank);
    for (int i = 0; i < t->rank; i++)
        if (is_one(L->g, t->dim[i])) ix->e[i] = ci(L, 0);
}

static KExpr *lin_of(Low *L, const Ix *ix, const Type *t) {
    if (ix->lin) return ix->lin;
    KExpr *s = NULL;
    for (int i = 0; i < t->rank; i++) {
        if (!s) {
            s = ix->e[i];
            continue;
        }
        s = ib(L, KO_ADD, ib(L, KO_MUL, s, kdim(L, t->dim[i])), ix->e[i]);
    }
    return s ? s : ci(L, 0);
}

/* Index simplification: x / d and x % d for an index x that is a sum of
 * non-negative terms coef * (product of loop variables and dims).  Terms
 * divisible by d go to the quotient; when the rest is provably below d (loop
 * variables of constant extent, or one variable whose extent is d) the
 * remainder is the rest itself.  This turns the index arithmetic of reshapes
 * after transposes (attention head split and merge) back into plain
 * variables: ((b*S + s)*12 + h)*64 + d over 768 gives b*S + s and h*64 + d. */
enum { AFF_MAX = 16 };
typedef struct {
    int n;
    int64_t c[AFF_MAX];
    KExpr *a[AFF_MAX];
    int64_t k;
} Aff;

static bool aff_add(Aff *f, KExpr *atom, int64_t coef) {
    for (int i = 0; i < f->n; i++)
        if (eq(f->a[i], atom)) return !__builtin_add_overflow(f->c[i], coef, &f->c[i]);
    if (f->n == AFF_MAX) return false;
    f->a[f->n] = atom;
    f->c[f->n++] = coef;
    return true;
}

static bool aff_of(KExpr *e, int64_t mul, Aff *f) {
    int64_t v, m;
    if (e->type != KT_I64) return false;
    if (kci(e, &v)) return !__builtin_mul_overflow(v, mul, &m) && !__builtin_add_overflow(f->k, m, &f->k);
    if (e->kind == KE_BIN && e->op == KO_ADD) return aff_of(e->a, mul, f) && aff_of(e->b, mul, f);
    if (e->kind == KE_BIN && e->op == KO_SUB)
        return mul != INT64_MIN && aff_of(e->a, mul, f) && aff_of(e->b, -mul, f);
    if (e->kind == KE_BIN && e->op == KO_MUL) {
        if (kci(e->b, &v)) return !__builtin_mul_overflow(v, mul, &m) && aff_of(e->a, m, f);
        if (kci(e->a, &v)) return !__builtin_mul_overflow(v, mul, &m) && aff_of(e->b, m, f);
    }
    return aff_add(f, e, mul);
}

/* An atom that is >= 0: loop variables, dims and products of them. */
static bool atom_nonneg(const KExpr *a) {
    if (a->kind == KE_VAR || a->kind == KE_DIM) return true;
    return a->kind == KE_BIN && a->op == KO_MUL && atom_nonneg(a->a) && atom_nonneg(a->b);
}

/* The largest value of a non-negative atom, or -1 when unknown. */
static int64_t atom_max(const Low *L, const KExpr *a) {
    int64_t v;
    if (a->kind == KE_VAR) return dim_is_const(L->g->dims, L->vext[a->id], &v) && v > 0 ? v - 1 : -1;
    if (a->kind == KE_BIN && a->op == KO_MUL) {
        int64_t x = atom_max(L, a->a), y = atom_max(L, a->b);
        return x >= 0 && y >= 0 && !__builtin_mul_overflow(x, y, &v) ? v : -1;
    }
    return -1;
}

/* The atom with one factor `sym` (a dim symbol) removed; NULL if it has none. */
static KExpr *atom_div_sym(Low *L, KExpr *a, int sym) {
    if (a->kind == KE_DIM && a->id == sym) return ci(L, 1);
    if (a->kind != KE_BIN || a->op != KO_MUL) return NULL;
    KExpr *x = atom_div_sym(L, a->a, sym);
    if (x) return ib(L, KO_MUL, x, a->b);
    KExpr *y = atom_div_sym(L, a->b, sym);
    return y ? ib(L, KO_MUL, a->a, y) : NULL;
}

static KExpr *aff_expr(Low *L, const Aff *f) {
    KExpr *s = NULL;
    for (int i = 0; i < f->n; i++) {
        if (!f->c[i]) continue;
        KExpr *t = ib(L, KO_MUL, f->a[i], ci(L, f->c[i]));
        s = s ? ib(L, KO_ADD, s, t) : t;
    }
    if (f->k || !s) s = s ? ib(L, KO_ADD, s, ci(L, f->k)) : ci(L, f->k);
    return s;
}

static void divmod(Low *L, KExpr *x, DimId d, KExpr **q, KExpr **r) {
    KExpr *dk = kdim(L, d);
    Aff f = {0}, fq = {0}, fr = {0};
    int64_t c = 0;
    int sym = -1;
    bool ok = aff_of(x, 1, &f) && f.k >= 0 &&
              ((dim_is_const(L->g->dims, d, &c) && c > 0) || dim_is_sym(L->g->dims, d, &sym));
    for (int i = 0; ok && i < f.n; i++) ok = f.c[i] > 0 && atom_nonneg(f.a[i]);
    if (!ok) {
        *q = ib(L, KO_DIV, x, dk);
        *r = ib(L, KO_MOD, x, dk);
        return;
    }
    for (int i = 0; i < f.n; i++) {
        KExpr *qa;
        if (c > 0 && f.c[i] % c == 0)
            aff_add(&fq, f.a[i], f.c[i] / c);
        else if (sym >= 0 && (qa = atom_div_sym(L, f.a[i], sym)))
            aff_add(&fq, qa, f.c[i]);
        else
            aff_add(&fr, f.a[i], f.c[i]);
    }
    if (c > 0) {
        fq.k = f.k / c;
        fr.k = f.k % c;
    } else {
        fr.k = f.k;
    }
    /* is the rest below d? */
    bool below = false;
    if (c > 0) {
        int64_t mx = fr.k, v;
        below = true;
        for (int i = 0; i < fr.n && below; i++) {
            int64_t am = atom_max(L, fr.a[i]);
            below = am >= 0 && !__builtin_mul_overflow(am, fr.c[i], &v) && !__builtin_add_overflow(mx, v, &mx);
        }
        below = below && mx < c;
    } else {
        below = fr.k == 0 && ((fr.n == 0) || (fr.n == 1 && fr.c[0] == 1 && fr.a[0]->kind == KE_VAR &&
                                              L->vext[fr.a[0]->id] == d));
    }
    KExpr *rest = aff_expr(L, &fr), *quot = aff_expr(L, &fq);
    if (below) {
        *q = quot;
        *r = rest;
    } else {
        *q = ib(L, KO_ADD, quot, ib(L, KO_DIV, rest, dk));
        *r = ib(L, KO_MOD, rest, dk);
    }
}

static Ix unravel(Low *L, KExpr *lin, const Type *t) {
    Ix r = {t->rank, {0}, NULL};
    if (esize(lin, BIG_INDEX + 1) > BIG_INDEX) lin = mat(L, lin);
    r.lin = lin;
    int first = 0;
    while (first < t->rank && is_one(L->g, t->dim[first])) first++;
    KExpr *rest = lin;
    for (int i = t->rank - 1; i >= 0; i--) {
        if (is_one(L->g, t->dim[i])) {
            r.e[i] = ci(L, 0);
        } else if (i == first) {
            r.e[i] = rest;
        } else {
            KExpr *q, *m;
            divmod(L, rest, t->dim[i], &q, &m);
            r.e[i] = m;
            rest = q;
        }
    }
    return r;
}

/* Right-aligned numpy broadcasting of the index `src` (n entries) into a
 * shape with dims `dims` (nd entries): a dim of 1 reads index 0. */
static void bc_into(Low *L, KExpr *const *src, int n, const DimId *dims, int nd, KExpr **dst) {
    DSC_ASSERT(nd <= n);
    for (int j = 0; j < nd; j++) dst[j] = is_one(L->g, dims[j]) ? ci(L, 0) : src[n - nd + j];
}

/* The index of operand o read by elementwise node n at ix. */
static Ix bcast(Low *L, const Ix *ix, const Type *n, const Type *o) {
    Ix r = {o->rank, {0}, NULL};
    bc_into(L, ix->e, ix->rank, o->dim, o->rank, r.e);
    if (same_shape(n, o)) r.lin = ix->lin;
    return r;
}

/* ---- values ------------------------------------------------------------------------- */

static KExpr *val(Low *L, const Node *n, const Ix *ix);

static bool in_group(const Low *L, const Node *n) {
    const GCtx *G = L->G;
    if (ir_is_source(n)) return false;
    return G->grp ? n->ann.group == G->grp->id : n == G->single;
}

static bool is_target(const Low *L, const Node *n) {
    for (int i = 0; i < L->ntargets; i++)
        if (L->targets[i] == n) return true;
    return false;
}

static KExpr *const_value(Low *L, const Node *n) {
    DType dt = n->type.dtype;
    if (n->dval != DIM_INVALID) {
        KExpr *v = kdim(L, n->dval);
        int64_t c;
        if (dt == DT_BOOL) return ib(L, KO_NE, v, ci(L, 0));
        if (dtype_is_float(dt)) {
            if (kci(v, &c)) return cf(L, ir_dtype_round(dt, (double)c));
            return kir_cast(L->g, KT_F32, v);
        }
        return wrapd(L, dt, v);
    }
    double r = ir_dtype_round(dt, n->fval);
    if (dtype_is_float(dt)) return cf(L, r);
    if (dt == DT_BOOL) return kir_const_b(L->g, r != 0);
    if (dt == DT_I64) return ci(L, ir_dtype_round_i64(n->fval));
    return ci(L, (int64_t)r);
}

/* A value that lives in memory (or a constant): a load at the linear index. */
static KExpr *ext(Low *L, const Node *n, const Ix *ix) {
    const Node *r = root_of(L->g, n);
    if (r->op == OP_CONST) return const_value(L, r);
    KExpr *lin = lin_of(L, ix, &n->type);
    int b = kir_buffer(L->g, L->k, r, role_of(L->g, r), false);
    return kir_load(L->g, L->k, b, lin);
}

/* i64 a / b truncating toward zero, no hardware trap for INT64_MIN / -1; b == 0
 * is node n's run-time error (the value is then 0). */
static KExpr *idiv(Low *L, const Node *n, KExpr *a, KExpr *b) {
    int64_t y;
    if (kci(b, &y) && y != 0 && y != -1) return ib(L, KO_DIV, a, b);
    a = mat(L, a);
    b = mat(L, b);
    KExpr *z = ib(L, KO_EQ, b, ci(L, 0)), *m1 = ib(L, KO_EQ, b, ci(L, -1));
    trap_if(L, z, KTRAP_DIV_ZERO, n, a, NULL, NULL);
    KExpr *q = kir_bin(L->g, KO_DIV, a, sel(L, ib(L, KO_OR, z, m1), ci(L, 1), b));
    return sel(L, z, ci(L, 0), sel(L, m1, ib(L, KO_SUB, ci(L, 0), a), q));
}

/* i64 b^e like the interpreter: square-and-multiply with wrap-around for
 * e >= 0; for e < 0 the truncated 1/b^|e| (1, -1 or 0); 0 to a negative power
 * is node n's run-time error (the value is then 0). */
static KExpr *ipow(Low *L, const Node *n, KExpr *b, KExpr *e) {
    int64_t ev;
    if (kci(e, &ev) && ev >= 0 && ev <= 64) {
        KExpr *r = ci(L, 1), *x = mat(L, b);
        for (; ev > 0; ev >>= 1) {
            if (ev & 1) r = mat(L, ib(L, KO_MUL, r, x));
            if (ev > 1) x = mat(L, ib(L, KO_MUL, x, x));
        }
        return r;
    }
    b = mat(L, b);
    e = mat(L, e);
    trap_if(L, ib(L, KO_AND, ib(L, KO_EQ, b, ci(L, 0)), ib(L, KO_LT, e, ci(L, 0))), KTRAP_POW_ZERO_NEG, n, e,
            NULL, NULL);
    KExpr *keys[2] = {b, e};
    Scope *saved = red_begin(L, keys, 2);
    int r = acc_new(L, ci(L, 1)), x = acc_new(L, b), k = acc_new(L, sel(L, ib(L, KO_LT, e, ci(L, 0)), ci(L, 0), e));
    Scope *s0 = L->lscope[r];
    loop_open(L, dim_const(L->g->dims, 64));
    pin(L, r), pin(L, x), pin(L, k);
    KExpr *odd = ib(L, KO_NE, ib(L, KO_SUB, lref(L, k), ib(L, KO_MUL, ib(L, KO_DIV, lref(L, k), ci(L, 2)), ci(L, 2))),
                    ci(L, 0));
    upd(L, r, kir_select(L->g, odd, ib(L, KO_MUL, lref(L, r), lref(L, x)), lref(L, r)));
    upd(L, x, ib(L, KO_MUL, lref(L, x), lref(L, x)));
    upd(L, k, ib(L, KO_DIV, lref(L, k), ci(L, 2)));
    loop_close(L);
    unpin(L, r, s0), unpin(L, x, s0), unpin(L, k, s0);
    KExpr *eodd = ib(L, KO_NE, ib(L, KO_SUB, e, ib(L, KO_MUL, ib(L, KO_DIV, e, ci(L, 2)), ci(L, 2))), ci(L, 0));
    KExpr *neg = sel(L, ib(L, KO_EQ, b, ci(L, 1)), ci(L, 1),
                     sel(L, ib(L, KO_EQ, b, ci(L, -1)), sel(L, eodd, ci(L, -1), ci(L, 1)), ci(L, 0)));
    KExpr *res = mat(L, sel(L, ib(L, KO_LT, e, ci(L, 0)), neg, lref(L, r)));
    red_end(L, saved);
    return res;
}

static KExpr *cast_value(Low *L, KExpr *x, DType from, DType to) {
    if (from == to) return x;
    KType ft = kir_compute_type(from), tt = kir_compute_type(to);
    if (tt == KT_F32 || tt == KT_BOOL) return kir_cast(L->g, tt, x);
    if (ft == KT_F32) { /* truncate and saturate at the dtype's range */
        KExpr *i = kir_cast(L->g, KT_I64, x);
        if (to == DT_I8) return ib(L, KO_MIN, ib(L, KO_MAX, i, ci(L, INT8_MIN)), ci(L, INT8_MAX));
        if (to == DT_I32) return ib(L, KO_MIN, ib(L, KO_MAX, i, ci(L, INT32_MIN)), ci(L, INT32_MAX));
        return i;
    }
    if (ft == KT_BOOL) return kir_cast(L->g, KT_I64, x);
    return wrapd(L, to, x);
}

static KExpr *elementwise(Low *L, const Node *n, const Ix *ix) {
    KExpr *v[3] = {NULL, NULL, NULL};
    for (int k = 0; k < n->nin && k < 3; k++)
        if (n->in[k]) {
            Ix oi = bcast(L, ix, &n->type, &n->in[k]->type);
            v[k] = val(L, n->in[k], &oi);
        }
    DType dt = n->type.dtype;
    bool isf = dtype_is_float(dt);
    Graph *g = L->g;
    switch (n->op) {
    case OP_ADD: return isf ? kir_bin(g, KO_ADD, v[0], v[1]) : wrapd(L, dt, ib(L, KO_ADD, v[0], v[1]));
    case OP_SUB: return isf ? kir_bin(g, KO_SUB, v[0], v[1]) : wrapd(L, dt, ib(L, KO_SUB, v[0], v[1]));
    case OP_MUL: return isf ? kir_bin(g, KO_MUL, v[0], v[1]) : wrapd(L, dt, ib(L, KO_MUL, v[0], v[1]));
    case OP_DIV: return isf ? kir_bin(g, KO_DIV, v[0], v[1]) : wrapd(L, dt, idiv(L, n, v[0], v[1]));
    case OP_POW: return isf ? kir_bin(g, KO_POW, v[0], v[1]) : wrapd(L, dt, ipow(L, n, v[0], v[1]));
    case OP_MAXIMUM: return kir_bin(g, KO_MAX, v[0], v[1]);
    case OP_MINIMUM: return kir_bin(g, KO_MIN, v[0], v[1]);
    case OP_NEG: return isf ? kir_un(g, KO_NEG, v[0]) : wrapd(L, dt, kir_un(g, KO_NEG, v[0]));
    case OP_ABS: return isf ? kir_un(g, KO_ABS, v[0]) : wrapd(L, dt, kir_un(g, KO_ABS, v[0]));
    case OP_EXP: return kir_un(g, KO_EXP, v[0]);
    case OP_LOG: return kir_un(g, KO_LOG, v[0]);
    case OP_SQRT: return kir_un(g, KO_SQRT, v[0]);
    case OP_RSQRT: return kir_un(g, KO_RSQRT, v[0]);
    case OP_RECIPROCAL: return kir_un(g, KO_RECIP, v[0]);
    case OP_TANH: return kir_un(g, KO_TANH, v[0]);
    case OP_SIGMOID: return kir_un(g, KO_SIGMOID, v[0]);
    case OP_RELU: return kir_un(g, KO_RELU, v[0]);
    case OP_ERF: return kir_un(g, KO_ERF, v[0]);
    case OP_SILU: return kir_un(g, KO_SILU, v[0]);
    case OP_GELU:
        return kir_un(g, strcmp(ir_attr_string(n, "approximate", "none"), "tanh") == 0 ? KO_GELU_TANH : KO_GELU,
                      v[0]);
    case OP_CLIP: {
        KExpr *x = v[0];
        if (v[1]) x = kir_bin(g, KO_MAX, x, v[1]);
        if (v[2]) x = kir_bin(g, KO_MIN, x, v[2]);
        return x;
    }
    case OP_LESS:
    case OP_GREATER:
    case OP_EQUAL: {
        KExpr *a = v[0], *b = v[1];
        if (a->type == KT_BOOL) a = kir_cast(g, KT_I64, a), b = kir_cast(g, KT_I64, b);
        KOp op = n->op == OP_LESS ? KO_LT : n->op == OP_GREATER ? KO_GT : KO_EQ;
        return a->type == KT_I64 ? ib(L, op, a, b) : kir_bin(g, op, a, b);
    }
    case OP_WHERE: return sel(L, v[0], v[1], v[2]);
    case OP_CAST: return cast_value(L, v[0], n->in[0]->type.dtype, dt);
    default: break;
    }
    DSC_UNREACHABLE();
    return NULL;
}

static uint32_t axes_mask(const Node *n, int rank) {
    const Attr *a = ir_attr(n, "axes");
    if (!a) return rank ? (uint32_t)((1u << rank) - 1) : 0;
    uint32_t m = 0;
    for (int i = 0; i < a->n; i++) {
        int ax = ir_norm_axis(a->ints[i], rank);
        if (ax >= 0) m |= 1u << ax;
    }
    return m;
}

static KExpr *lower_reduce(Low *L, const Node *n, const Ix *ix) {
    const Node *x = n->in[0];
    int rx = x->type.rank;
    bool keep = ir_attr_bool(n, "keepdims", true), ismax = n->op == OP_REDUCE_MAX;
    uint32_t R = axes_mask(n, rx);
    KType t = kir_compute_type(n->type.dtype);
    bool isint = t != KT_F32;
    Scope *saved = red_begin(L, ix->e, ix->rank);
    KExpr *init = ismax ? (isint ? ci(L, INT64_MIN) : cf(L, -INFINITY)) : zero_of(L, t);
    int acc = acc_new(L, init);
    Scope *home = L->cur;
    Ix xi = {rx, {0}, NULL};
    int o = 0, nopen = 0;
    DimId count = dim_const(L->g->dims, 1);
    for (int a = 0; a < rx; a++) {
        if (R & (1u << a)) {
            xi.e[a] = loop_open(L, x->type.dim[a]);
            nopen++;
            count = dim_mul(L->g->dims, count, x->type.dim[a]);
            if (keep) o++;
        } else {
            xi.e[a] = ix->e[o++];
        }
    }
    if (ismax) trap_if(L, ib(L, KO_EQ, kdim(L, count), ci(L, 0)), KTRAP_EMPTY_MAX, n, NULL, NULL, NULL);
    pin(L, acc);
    KExpr *v = val(L, x, &xi);
    upd(L, acc, kir_bin(L->g, ismax ? KO_MAX : KO_ADD, lref(L, acc), v));
    while (nopen--) loop_close(L);
    unpin(L, acc, home);
    KExpr *r = lref(L, acc);
    if (isint) r = wrapd(L, n->type.dtype, r);
    if (n->op == OP_REDUCE_MEAN) r = kir_bin(L->g, KO_DIV, r, fcount(L, count));
    r = mat(L, r);
    red_end(L, saved);
    return r;
}

static KExpr *lower_softmax(Low *L, const Node *n, const Ix *ix) {
    const Node *x = n->in[0];
    int a = ir_norm_axis(ir_attr_int(n, "axis", -1), x->type.rank);
    DSC_ASSERT(a >= 0);
    Ix key = *ix;
    key.e[a] = NULL;
    key.lin = NULL;
    KExpr *m = cache_get(L, n, TAG_MAX, &key), *s = cache_get(L, n, TAG_SUM, &key);
    if (!m || !s) {
        Scope *saved = red_begin(L, key.e, key.rank);
        Scope *home = L->cur;
        Ix xi = key;
        int am = acc_new(L, cf(L, -INFINITY));
        xi.e[a] = loop_open(L, x->type.dim[a]);
        pin(L, am);
        upd(L, am, kir_bin(L->g, KO_MAX, lref(L, am), val(L, x, &xi)));
        loop_close(L);
        unpin(L, am, home);
        m = lref(L, am);
        int as = acc_new(L, cf(L, 0));
        xi.e[a] = loop_open(L, x->type.dim[a]);
        pin(L, as);
        upd(L, as, kir_bin(L->g, KO_ADD, lref(L, as), kir_un(L->g, KO_EXP, kir_bin(L->g, KO_SUB, val(L, x, &xi), m))));
        loop_close(L);
        unpin(L, as, home);
        s = lref(L, as);
        cache_put(L, n, TAG_MAX, &key, m);
        cache_put(L, n, TAG_SUM, &key, s);
        red_end(L, saved);
    }
    return kir_bin(L->g, KO_DIV, kir_un(L->g, KO_EXP, kir_bin(L->g, KO_SUB, val(L, x, ix), m)), s);
}

/* layernorm and rmsnorm: statistics over the axes from `axis` to the last. */
static KExpr *lower_norm(Low *L, const Node *n, const Ix *ix) {
    const Node *x = n->in[0], *scale = n->in[1], *bias = n->op == OP_LAYERNORM && n->nin > 2 ? n->in[2] : NULL;
    int r = x->type.rank, a = ir_norm_axis(ir_attr_int(n, "axis", -1), r);
    DSC_ASSERT(a >= 0);
    bool ln = n->op == OP_LAYERNORM;
    double eps = ir_attr_float(n, "eps", ln ? 1e-5 : 1e-6);
    Ix key = *ix;
    key.lin = NULL;
    for (int i = a; i < r; i++) key.e[i] = NULL;
    KExpr *mean = ln ? cache_get(L, n, TAG_MEAN, &key) : cf(L, 0), *rstd = cache_get(L, n, TAG_RSTD, &key);
    if (!mean || !rstd) {
        Scope *saved = red_begin(L, key.e, key.rank);
        Scope *home = L->cur;
        DimId cnt = dim_const(L->g->dims, 1);
        for (int i = a; i < r; i++) cnt = dim_mul(L->g->dims, cnt, x->type.dim[i]);
        Ix xi = key;
        if (ln) {
            int am = acc_new(L, cf(L, 0));
            for (int i = a; i < r; i++) xi.e[i] = loop_open(L, x->type.dim[i]);
            pin(L, am);
            upd(L, am, kir_bin(L->g, KO_ADD, lref(L, am), val(L, x, &xi)));
            for (int i = a; i < r; i++) loop_close(L);
            unpin(L, am, home);
            mean = mat(L, kir_bin(L->g, KO_DIV, lref(L, am), fcount(L, cnt)));
        } else {
            mean = cf(L, 0);
        }
        int av = acc_new(L, cf(L, 0));
        for (int i = a; i < r; i++) xi.e[i] = loop_open(L, x->type.dim[i]);
        pin(L, av);
        KExpr *xv = val(L, x, &xi);
        KExpr *dv = ln ? mat(L, kir_bin(L->g, KO_SUB, xv, mean)) : mat(L, xv);
        upd(L, av, kir_bin(L->g, KO_ADD, lref(L, av), kir_bin(L->g, KO_MUL, dv, dv)));
        for (int i = a; i < r; i++) loop_close(L);
        unpin(L, av, home);
        KExpr *var = kir_bin(L->g, KO_DIV, lref(L, av), fcount(L, cnt));
        rstd = mat(L, kir_un(L->g, KO_RSQRT, kir_bin(L->g, KO_ADD, var, cf(L, (double)(float)eps))));
        if (ln) cache_put(L, n, TAG_MEAN, &key, mean);
        cache_put(L, n, TAG_RSTD, &key, rstd);
        red_end(L, saved);
    }
    KExpr *xv = val(L, x, ix);
    KExpr *y = ln ? kir_bin(L->g, KO_SUB, xv, mean) : xv;
    Ix si = bcast(L, ix, &x->type, &scale->type);
    y = kir_bin(L->g, KO_MUL, kir_bin(L->g, KO_MUL, y, rstd), val(L, scale, &si));
    if (bias) {
        Ix bi = bcast(L, ix, &x->type, &bias->type);
        y = kir_bin(L->g, KO_ADD, y, val(L, bias, &bi));
    }
    return y;
}

static KExpr *lower_batchnorm(Low *L, const Node *n, const Ix *ix) {
    Ix c = {1, {ix->e[1]}, NULL};
    canon(L, &c, &n->in[1]->type);
    KExpr *x = val(L, n->in[0], ix), *sc = val(L, n->in[1], &c), *bi = val(L, n->in[2], &c),
          *mu = val(L, n->in[3], &c), *va = val(L, n->in[4], &c);
    double eps = ir_attr_float(n, "eps", 1e-5);
    KExpr *inv = kir_un(L->g, KO_RSQRT, kir_bin(L->g, KO_ADD, va, cf(L, (double)(float)eps)));
    Graph *g = L->g;
    return kir_bin(g, KO_ADD, kir_bin(g, KO_MUL, kir_bin(g, KO_MUL, kir_bin(g, KO_SUB, x, mu), inv), sc), bi);
}

static KExpr *lower_matmul(Low *L, const Node *n, const Ix *ix) {
    const Node *a = n->in[0], *b = n->in[1];
    int ra = a->type.rank, rb = b->type.rank, ro = n->type.rank;
    int br = ro - (ra > 1) - (rb > 1);
    KExpr *m = ra > 1 ? ix->e[br] : NULL, *nn = rb > 1 ? ix->e[br + (ra > 1)] : NULL;
    KType t = kir_compute_type(n->type.dtype);
    Scope *saved = red_begin(L, ix->e, ix->rank);
    Scope *home = L->cur;
    int acc = acc_new(L, zero_of(L, t));
    KExpr *k = loop_open(L, a->type.dim[ra - 1]);
    pin(L, acc);
    Ix ai = {ra, {0}, NULL}, bi = {rb, {0}, NULL};
    if (ra == 1) {
        ai.e[0] = k;
    } else {
        bc_into(L, ix->e, br, a->type.dim, ra - 2, ai.e);
        ai.e[ra - 2] = m;
        ai.e[ra - 1] = k;
    }
    if (rb == 1) {
        bi.e[0] = k;
    } else {
        bc_into(L, ix->e, br, b->type.dim, rb - 2, bi.e);
        bi.e[rb - 2] = k;
        bi.e[rb - 1] = nn;
    }
    canon(L, &ai, &a->type);
    canon(L, &bi, &b->type);
    KExpr *prod = t == KT_F32 ? kir_bin(L->g, KO_MUL, val(L, a, &ai), val(L, b, &bi))
                              : ib(L, KO_MUL, val(L, a, &ai), val(L, b, &bi));
    upd(L, acc, kir_bin(L->g, KO_ADD, lref(L, acc), prod));
    loop_close(L);
    unpin(L, acc, home);
    KExpr *r = mat(L, wrapd(L, n->type.dtype, lref(L, acc)));
    red_end(L, saved);
    return r;
}

static KExpr *lower_linear(Low *L, const Node *n, const Ix *ix) {
    const Node *x = n->in[0], *w = n->in[1], *b = n->nin > 2 ? n->in[2] : NULL;
    int rx = x->type.rank;
    KType t = kir_compute_type(n->type.dtype);
    KExpr *j = ix->e[rx - 1];
    Scope *saved = red_begin(L, ix->e, ix->rank);
    Scope *home = L->cur;
    int acc = acc_new(L, zero_of(L, t));
    KExpr *k = loop_open(L, w->type.dim[1]);
    pin(L, acc);
    Ix xi = *ix, wi = {2, {j, k}, NULL};
    xi.lin = NULL;
    xi.e[rx - 1] = k;
    canon(L, &xi, &x->type);
    canon(L, &wi, &w->type);
    KExpr *prod = t == KT_F32 ? kir_bin(L->g, KO_MUL, val(L, x, &xi), val(L, w, &wi))
                              : ib(L, KO_MUL, val(L, x, &xi), val(L, w, &wi));
    upd(L, acc, kir_bin(L->g, KO_ADD, lref(L, acc), prod));
    loop_close(L);
    unpin(L, acc, home);
    KExpr *r = lref(L, acc);
    if (b) {
        Ix bi = {1, {j}, NULL};
        canon(L, &bi, &b->type);
        r = kir_bin(L->g, KO_ADD, r, val(L, b, &bi));
    }
    r = mat(L, wrapd(L, n->type.dtype, r));
    red_end(L, saved);
    return r;
}

static const int64_t *ints_attr(const Node *n, const char *name, int want, const int64_t *dflt) {
    const Attr *a = ir_attr(n, name);
    return a && a->kind == AV_INTS && a->n == want ? a->ints : dflt;
}

static KExpr *in_bounds(Low *L, KExpr *i, DimId d) {
    return ib(L, KO_AND, ib(L, KO_GE, i, ci(L, 0)), ib(L, KO_LT, i, kdim(L, d)));
}

static KExpr *lower_conv(Low *L, const Node *n, const Ix *ix) {
    static const int64_t one2[2] = {1, 1}, zero4[4] = {0, 0, 0, 0};
    const Node *x = n->in[0], *w = n->in[1], *b = n->nin > 2 ? n->in[2] : NULL;
    const int64_t *st = ints_attr(n, "stride", 2, one2), *dil = ints_attr(n, "dilation", 2, one2),
                  *pad = ints_attr(n, "padding", 4, zero4);
    int64_t G = ir_attr_int(n, "groups", 1);
    bool padded = pad[0] || pad[1] || pad[2] || pad[3];
    const DimId *xd = x->type.dim, *wd = w->type.dim;
    Scope *saved = red_begin(L, ix->e, ix->rank);
    Scope *home = L->cur;
    int acc = acc_new(L, cf(L, 0));
    KExpr *grp = G == 1 ? ci(L, 0) : ib(L, KO_DIV, ix->e[1], ib(L, KO_DIV, kdim(L, wd[0]), ci(L, G)));
    KExpr *cg = loop_open(L, wd[1]), *kh = loop_open(L, wd[2]), *kw = loop_open(L, wd[3]);
    pin(L, acc);
    KExpr *ih = ib(L, KO_ADD, ib(L, KO_SUB, ib(L, KO_MUL, ix->e[2], ci(L, st[0])), ci(L, pad[0])),
                   ib(L, KO_MUL, kh, ci(L, dil[0])));
    KExpr *iw = ib(L, KO_ADD, ib(L, KO_SUB, ib(L, KO_MUL, ix->e[3], ci(L, st[1])), ci(L, pad[1])),
                   ib(L, KO_MUL, kw, ci(L, dil[1])));
    if (padded) {
        ih = mat(L, ih);
        iw = mat(L, iw);
        if_open(L, ib(L, KO_AND, in_bounds(L, ih, xd[2]), in_bounds(L, iw, xd[3])));
    }
    Ix xi = {4, {ix->e[0], ib(L, KO_ADD, ib(L, KO_MUL, grp, kdim(L, wd[1])), cg), ih, iw}, NULL};
    Ix wi = {4, {ix->e[1], cg, kh, kw}, NULL};
    canon(L, &xi, &x->type);
    canon(L, &wi, &w->type);
    upd(L, acc, kir_bin(L->g, KO_ADD, lref(L, acc), kir_bin(L->g, KO_MUL, val(L, x, &xi), val(L, w, &wi))));
    if (padded) if_close(L);
    loop_close(L), loop_close(L), loop_close(L);
    unpin(L, acc, home);
    KExpr *r = lref(L, acc);
    if (b) {
        Ix bi = {1, {ix->e[1]}, NULL};
        canon(L, &bi, &b->type);
        r = kir_bin(L->g, KO_ADD, r, val(L, b, &bi));
    }
    r = mat(L, r);
    red_end(L, saved);
    return r;
}

static KExpr *lower_pool(Low *L, const Node *n, const Ix *ix) {
    static const int64_t one2[2] = {1, 1}, zero4[4] = {0, 0, 0, 0};
    const Node *x = n->in[0];
    int r = x->type.rank;
    const int64_t *kk = ints_attr(n, "kernel", 2, one2), *st = ints_attr(n, "stride", 2, one2),
                  *pad = ints_attr(n, "padding", 4, zero4);
    bool padded = pad[0] || pad[1] || pad[2] || pad[3], ismax = n->op == OP_MAX_POOL2D;
    Scope *saved = red_begin(L, ix->e, ix->rank);
    Scope *home = L->cur;
    int acc = acc_new(L, cf(L, ismax ? -INFINITY : 0)), cnt = ismax || !padded ? -1 : acc_new(L, cf(L, 0));
    KExpr *kh = loop_open(L, dim_const(L->g->dims, kk[0])), *kw = loop_open(L, dim_const(L->g->dims, kk[1]));
    pin(L, acc);
    if (cnt >= 0) pin(L, cnt);
    KExpr *ih = ib(L, KO_ADD, ib(L, KO_SUB, ib(L, KO_MUL, ix->e[r - 2], ci(L, st[0])), ci(L, pad[0])), kh);
    KExpr *iw = ib(L, KO_ADD, ib(L, KO_SUB, ib(L, KO_MUL, ix->e[r - 1], ci(L, st[1])), ci(L, pad[1])), kw);
    if (padded) {
        ih = mat(L, ih);
        iw = mat(L, iw);
        if_open(L, ib(L, KO_AND, in_bounds(L, ih, x->type.dim[r - 2]), in_bounds(L, iw, x->type.dim[r - 1])));
    }
    Ix xi = *ix;
    xi.lin = NULL;
    xi.e[r - 2] = ih;
    xi.e[r - 1] = iw;
    canon(L, &xi, &x->type);
    KExpr *v = val(L, x, &xi);
    upd(L, acc, kir_bin(L->g, ismax ? KO_MAX : KO_ADD, lref(L, acc), v));
    if (cnt >= 0) upd(L, cnt, kir_bin(L->g, KO_ADD, lref(L, cnt), cf(L, 1)));
    if (padded) if_close(L);
    loop_close(L), loop_close(L);
    unpin(L, acc, home);
    if (cnt >= 0) unpin(L, cnt, home);
    KExpr *res = lref(L, acc);
    if (!ismax) res = kir_bin(L->g, KO_DIV, res, cnt >= 0 ? lref(L, cnt) : cf(L, (double)(kk[0] * kk[1])));
    res = mat(L, res);
    red_end(L, saved);
    return res;
}

static KExpr *lower_gap(Low *L, const Node *n, const Ix *ix) {
    const Node *x = n->in[0];
    int r = x->type.rank;
    Scope *saved = red_begin(L, ix->e, ix->rank);
    Scope *home = L->cur;
    int acc = acc_new(L, cf(L, 0));
    Ix xi = *ix;
    xi.lin = NULL;
    DimId cnt = dim_const(L->g->dims, 1);
    for (int i = 2; i < r; i++) {
        xi.e[i] = loop_open(L, x->type.dim[i]);
        cnt = dim_mul(L->g->dims, cnt, x->type.dim[i]);
    }
    pin(L, acc);
    upd(L, acc, kir_bin(L->g, KO_ADD, lref(L, acc), val(L, x, &xi)));
    for (int i = 2; i < r; i++) loop_close(L);
    unpin(L, acc, home);
    KExpr *res = mat(L, kir_bin(L->g, KO_DIV, lref(L, acc), fcount(L, cnt)));
    red_end(L, saved);
    return res;
}

/* ---- attention ------------------------------------------------------------------------ */

/* s(b.., i, j) = (q[b.., i, :] . k[b.., j, :]) * scale + mask[b.., i, j]. */
static KExpr *att_score(Low *L, const Node *n, KExpr *const *bidx, int br, KExpr *i, KExpr *j) {
    const Node *q = n->in[0], *k = n->in[1], *mask = n->nin > 3 ? n->in[3] : NULL,
               *scale = n->nin > 4 ? n->in[4] : NULL;
    int rq = q->type.rank, rk = k->type.rank;
    KExpr *keys[IR_MAX_RANK + 2];
    for (int t = 0; t < br; t++) keys[t] = bidx[t];
    keys[br] = i;
    keys[br + 1] = j;
    Scope *saved = red_begin(L, keys, br + 2);
    Scope *home = L->cur;
    int acc = acc_new(L, cf(L, 0));
    DimId D = q->type.dim[rq - 1];
    KExpr *d = loop_open(L, D);
    pin(L, acc);
    Ix qi = {rq, {0}, NULL}, ki = {rk, {0}, NULL};
    bc_into(L, bidx, br, q->type.dim, rq - 2, qi.e);
    qi.e[rq - 2] = i;
    qi.e[rq - 1] = d;
    bc_into(L, bidx, br, k->type.dim, rk - 2, ki.e);
    ki.e[rk - 2] = j;
    ki.e[rk - 1] = d;
    canon(L, &qi, &q->type);
    canon(L, &ki, &k->type);
    upd(L, acc, kir_bin(L->g, KO_ADD, lref(L, acc), kir_bin(L->g, KO_MUL, val(L, q, &qi), val(L, k, &ki))));
    loop_close(L);
    unpin(L, acc, home);
    KExpr *s = lref(L, acc);
    if (scale) {
        Ix si = {scale->type.rank, {0}, NULL};
        bc_into(L, keys, br + 2, scale->type.dim, scale->type.rank, si.e);
        s = kir_bin(L->g, KO_MUL, s, val(L, scale, &si));
    } else {
        int64_t dv;
        KExpr *sc = dim_is_const(L->g->dims, D, &dv) ? cf(L, (double)(float)(1 / sqrt((double)dv)))
                                                     : kir_un(L->g, KO_RSQRT, fcount(L, D));
        s = kir_bin(L->g, KO_MUL, s, sc);
    }
    if (mask) {
        Ix mi = {mask->type.rank, {0}, NULL};
        bc_into(L, keys, br + 2, mask->type.dim, mask->type.rank, mi.e);
        s = kir_bin(L->g, KO_ADD, s, val(L, mask, &mi));
    }
    s = mat(L, s);
    red_end(L, saved);
    return s;
}

/* The attention core of a kernel: the operator, or the written-out pattern's
 * last matmul (scores = softmax input, values = its second operand). */
typedef struct {
    const Node *o;      /* the core's output */
    const Node *scores; /* pattern: the softmax input; NULL for the operator */
    const Node *v;      /* the values */
    DimId lk;           /* number of keys */
} Att;

static KExpr *score_at(Low *L, const Att *A, KExpr *const *bidx, int br, KExpr *i, KExpr *j) {
    if (!A->scores) return att_score(L, A->o, bidx, br, i, j);
    const Type *t = &A->scores->type;
    Ix si = {t->rank, {0}, NULL};
    bc_into(L, bidx, br, t->dim, t->rank - 2, si.e);
    si.e[t->rank - 2] = i;
    si.e[t->rank - 1] = j;
    canon(L, &si, t);
    return mat(L, val(L, A->scores, &si));
}

static KExpr *value_at(Low *L, const Att *A, KExpr *const *bidx, int br, KExpr *j, KExpr *c) {
    const Type *t = &A->v->type;
    Ix vi = {t->rank, {0}, NULL};
    bc_into(L, bidx, br, t->dim, t->rank - 2, vi.e);
    vi.e[t->rank - 2] = j;
    vi.e[t->rank - 1] = c;
    canon(L, &vi, t);
    return val(L, A->v, &vi);
}

/* The operator pulled at one element: row statistics once per row, then a
 * weighted sum over the keys (the scores are recomputed per channel). */
static KExpr *lower_attention(Low *L, const Node *n, const Ix *ix) {
    const Node *k = n->in[1];
    Att A = {n, NULL, n->in[2], k->type.dim[k->type.rank - 2]};
    int br = ix->rank - 2;
    KExpr *i = ix->e[br];
    Ix key = *ix;
    key.lin = NULL;
    key.e[br + 1] = NULL;
    KExpr *m = cache_get(L, n, TAG_ATT_M, &key), *l = cache_get(L, n, TAG_ATT_L, &key);
    Graph *g = L->g;
    if (!m || !l) {
        Scope *saved = red_begin(L, key.e, key.rank);
        Scope *home = L->cur;
        int am = acc_new(L, cf(L, -INFINITY));
        KExpr *j = loop_open(L, A.lk);
        pin(L, am);
        upd(L, am, kir_bin(g, KO_MAX, lref(L, am), score_at(L, &A, ix->e, br, i, j)));
        loop_close(L);
        unpin(L, am, home);
        m = lref(L, am);
        int al = acc_new(L, cf(L, 0));
        j = loop_open(L, A.lk);
        pin(L, al);
        upd(L, al, kir_bin(g, KO_ADD, lref(L, al), kir_un(g, KO_EXP, kir_bin(g, KO_SUB, score_at(L, &A, ix->e, br, i, j), m))));
        loop_close(L);
        unpin(L, al, home);
        l = lref(L, al);
        cache_put(L, n, TAG_ATT_M, &key, m);
        cache_put(L, n, TAG_ATT_L, &key, l);
        red_end(L, saved);
    }
    Scope *saved = red_begin(L, ix->e, ix->rank);
    Scope *home = L->cur;
    int acc = acc_new(L, cf(L, 0));
    KExpr *j = loop_open(L, A.lk);
    pin(L, acc);
    KExpr *p = kir_bin(g, KO_DIV, kir_un(g, KO_EXP, kir_bin(g, KO_SUB, score_at(L, &A, ix->e, br, i, j), m)), l);
    upd(L, acc, kir_bin(g, KO_ADD, lref(L, acc), kir_bin(g, KO_MUL, p, value_at(L, &A, ix->e, br, j, ix->e[br + 1]))));
    loop_close(L);
    unpin(L, acc, home);
    KExpr *r = lref(L, acc);
    red_end(L, saved);
    return r;
}

/* Online softmax over the keys for one query row: out[c] for c < dv. */
static void attention_online(Low *L, const Att *A, KExpr *const *bidx, int br, KExpr *i, int64_t dv, KExpr **out) {
    Graph *g = L->g;
    Scope *home = L->cur;
    int m = acc_new(L, cf(L, -INFINITY)), l = acc_new(L, cf(L, 0));
    int *acc = arena_alloc(g->arena, sizeof(int) * (size_t)dv);
    for (int64_t c = 0; c < dv; c++) acc[c] = acc_new(L, cf(L, 0));
    KExpr *j = loop_open(L, A->lk);
    pin(L, m), pin(L, l);
    for (int64_t c = 0; c < dv; c++) pin(L, acc[c]);
    KExpr *s = score_at(L, A, bidx, br, i, j);
    KExpr *mn = mat(L, kir_bin(g, KO_MAX, lref(L, m), s));
    /* a row that is -inf so far (masked) must not give exp(-inf - -inf) */
    KExpr *ms = mat(L, kir_select(g, kir_bin(g, KO_EQ, mn, cf(L, -INFINITY)), cf(L, 0), mn));
    KExpr *corr = mat(L, kir_un(g, KO_EXP, kir_bin(g, KO_SUB, lref(L, m), ms)));
    KExpr *p = mat(L, kir_un(g, KO_EXP, kir_bin(g, KO_SUB, s, ms)));
    upd(L, l, kir_bin(g, KO_ADD, kir_bin(g, KO_MUL, lref(L, l), corr), p));
    for (int64_t c = 0; c < dv; c++) {
        KExpr *v = value_at(L, A, bidx, br, j, ci(L, c));
        upd(L, acc[c], kir_bin(g, KO_ADD, kir_bin(g, KO_MUL, lref(L, acc[c]), corr), kir_bin(g, KO_MUL, p, v)));
    }
    upd(L, m, mn);
    loop_close(L);
    if (j->kind == KE_VAR && !L->k->osm) { /* described for backends that split the keys (ir/kir.h) */
        KOnlineSoftmax *o = arena_alloc(g->arena, sizeof *o);
        *o = (KOnlineSoftmax){j->id, m, l, (int)dv, acc};
        L->k->osm = o;
    }
    unpin(L, m, home), unpin(L, l, home);
    for (int64_t c = 0; c < dv; c++) unpin(L, acc[c], home);
    for (int64_t c = 0; c < dv; c++) out[c] = mat(L, kir_bin(g, KO_DIV, lref(L, acc[c]), lref(L, l)));
}

/* ---- layout --------------------------------------------------------------------------- */

static KExpr *lower_concat(Low *L, const Node *n, const Ix *ix) {
    int a = ir_norm_axis(ir_attr_int(n, "axis", 0), n->type.rank);
    DSC_ASSERT(a >= 0);
    KType t = kir_compute_type(n->type.dtype);
    Scope *saved = red_begin(L, ix->e, ix->rank);
    int res = acc_new(L, zero_of(L, t));
    KExpr *i = ix->e[a];
    DimId off = dim_const(L->g->dims, 0);
    for (int k = 0; k < n->nin; k++) {
        const Node *o = n->in[k];
        DimId len = o->type.dim[a], end = dim_add(L->g->dims, off, len);
        int64_t lv;
        if (dim_is_const(L->g->dims, len, &lv) && lv == 0) continue;
        KExpr *lo = kdim(L, off), *hi = kdim(L, end);
        KExpr *cond = ib(L, KO_AND, k > 0 ? ib(L, KO_GE, i, lo) : kir_const_b(L->g, true),
                         k < n->nin - 1 ? ib(L, KO_LT, i, hi) : kir_const_b(L->g, true));
        int64_t always;
        bool guard = !kci(cond, &always) || !always;
        if (guard) if_open(L, cond);
        Ix oi = *ix;
        oi.lin = NULL;
        oi.e[a] = ib(L, KO_SUB, i, lo);
        canon(L, &oi, &o->type);
        upd(L, res, val(L, o, &oi));
        if (guard) if_close(L);
        off = end;
    }
    red_end(L, saved);
    return lref(L, res);
}

/* The start of a sliced axis after ONNX's wrapping and clamping (as the interpreter). */
static KExpr *slice_start(Low *L, DimId sd, DimId dd, int64_t step) {
    int64_t s, d;
    if (dim_is_const(L->g->dims, sd, &s) && dim_is_const(L->g->dims, dd, &d)) {
        if (s < 0) s = s < -d ? -1 : s + d;
        if (d == 0)
            s = 0;
        else if (step > 0)
            s = s < 0 ? 0 : s > d ? d : s;
        else
            s = s < 0 ? 0 : s > d - 1 ? d - 1 : s;
        return ci(L, s);
    }
    KExpr *sv = mat(L, kdim(L, sd)), *dv = mat(L, kdim(L, dd));
    KExpr *s1 = mat(L, sel(L, ib(L, KO_LT, sv, ci(L, 0)),
                           sel(L, ib(L, KO_LT, sv, ib(L, KO_SUB, ci(L, 0), dv)), ci(L, -1), ib(L, KO_ADD, sv, dv)), sv));
    KExpr *hi = step > 0 ? dv : ib(L, KO_SUB, dv, ci(L, 1));
    KExpr *s2 = ib(L, KO_MIN, ib(L, KO_MAX, s1, ci(L, 0)), hi);
    return sel(L, ib(L, KO_EQ, dv, ci(L, 0)), ci(L, 0), s2);
}

static KExpr *lower_slice(Low *L, const Node *n, const Ix *ix) {
    const Node *x = n->in[0];
    const Attr *st = ir_attr(n, "starts"), *ax = ir_attr(n, "axes"), *sp = ir_attr(n, "steps");
    Ix xi = *ix;
    xi.lin = NULL;
    for (int k = 0; st && k < st->n; k++) {
        int a = ax ? ir_norm_axis(ax->ints[k], x->type.rank) : k;
        int64_t step = sp && k < sp->n ? sp->ints[k] : 1;
        if (a < 0) continue;
        KExpr *s = slice_start(L, st->dims[k], x->type.dim[a], step);
        xi.e[a] = ib(L, KO_ADD, s, ib(L, KO_MUL, ix->e[a], ci(L, step)));
    }
    canon(L, &xi, &x->type);
    return val(L, x, &xi);
}

static KExpr *lower_gather(Low *L, const Node *n, const Ix *ix) {
    const Node *x = n->in[0], *ind = n->in[1];
    int rx = x->type.rank, ri = ind->type.rank, a = ir_norm_axis(ir_attr_int(n, "axis", 0), rx);
    DSC_ASSERT(a >= 0);
    KType t = kir_compute_type(n->type.dtype);
    Scope *saved = red_begin(L, ix->e, ix->rank);
    Ix ii = {ri, {0}, NULL};
    for (int i = 0; i < ri; i++) ii.e[i] = ix->e[a + i];
    canon(L, &ii, &ind->type);
    KExpr *v = mat(L, val(L, ind, &ii)), *d = kdim(L, x->type.dim[a]);
    KExpr *r = mat(L, sel(L, ib(L, KO_LT, v, ci(L, 0)), ib(L, KO_ADD, v, d), v));
    trap_if(L, ib(L, KO_OR, ib(L, KO_LT, r, ci(L, 0)), ib(L, KO_GE, r, d)), KTRAP_GATHER_INDEX, n, v,
            ci(L, a), d);
    int res = acc_new(L, zero_of(L, t));
    if_open(L, in_bounds(L, r, x->type.dim[a]));
    Ix xi = {rx, {0}, NULL};
    for (int i = 0; i < a; i++) xi.e[i] = ix->e[i];
    xi.e[a] = r;
    for (int i = a + 1; i < rx; i++) xi.e[i] = ix->e[i - 1 + ri];
    canon(L, &xi, &x->type);
    upd(L, res, val(L, x, &xi));
    if_close(L);
    red_end(L, saved);
    return lref(L, res);
}

static KExpr *compute(Low *L, const Node *n, const Ix *ix) {
    const Node *x = n->in[0];
    switch (ir_op_class(n->op)) {
    case OPC_ELEMENTWISE: return elementwise(L, n, ix);
    case OPC_REDUCTION: return lower_reduce(L, n, ix);
    default: break;
    }
    switch (n->op) {
    case OP_SOFTMAX: return lower_softmax(L, n, ix);
    case OP_LAYERNORM:
    case OP_RMSNORM: return lower_norm(L, n, ix);
    case OP_BATCHNORM: return lower_batchnorm(L, n, ix);
    case OP_MATMUL: return lower_matmul(L, n, ix);
    case OP_LINEAR: return lower_linear(L, n, ix);
    case OP_CONV2D: return lower_conv(L, n, ix);
    case OP_MAX_POOL2D:
    case OP_AVG_POOL2D: return lower_pool(L, n, ix);
    case OP_GLOBAL_AVG_POOL: return lower_gap(L, n, ix);
    case OP_ATTENTION: return lower_attention(L, n, ix);
    case OP_TRANSPOSE: {
        const Attr *p = ir_attr(n, "perm");
        Ix xi = {x->type.rank, {0}, NULL};
        for (int i = 0; i < n->type.rank; i++) {
            int pi = p ? ir_norm_axis(p->ints[i], x->type.rank) : n->type.rank - 1 - i;
            xi.e[pi] = ix->e[i];
        }
        canon(L, &xi, &x->type);
        return val(L, x, &xi);
    }
    case OP_UNSQUEEZE: { /* drop the inserted axes */
        uint32_t m = axes_mask(n, n->type.rank);
        Ix xi = {x->type.rank, {0}, NULL};
        for (int i = 0, k = 0; i < n->type.rank; i++)
            if (!(m & (1u << i))) xi.e[k++] = ix->e[i];
        if (same_shape(&n->type, &x->type)) xi.lin = ix->lin;
        canon(L, &xi, &x->type);
        return val(L, x, &xi);
    }
    case OP_SQUEEZE: { /* put back the removed axes (of size 1: index 0) */
        uint32_t m = axes_mask(n, x->type.rank);
        Ix xi = {x->type.rank, {0}, NULL};
        for (int i = 0, k = 0; i < x->type.rank; i++) xi.e[i] = (m & (1u << i)) ? ci(L, 0) : ix->e[k++];
        canon(L, &xi, &x->type);
        return val(L, x, &xi);
    }
    case OP_RESHAPE: {
        Ix xi = unravel(L, lin_of(L, ix, &n->type), &x->type);
        return val(L, x, &xi);
    }
    case OP_CONCAT: return lower_concat(L, n, ix);
    case OP_SLICE: return lower_slice(L, n, ix);
    case OP_GATHER: return lower_gather(L, n, ix);
    default: break;
    }
    DSC_UNREACHABLE();
    return NULL;
}

/* n's element at ix as a scalar expression of its compute type. */
static KExpr *val(Low *L, const Node *n, const Ix *ix) {
    if (n->op == OP_CONST) return const_value(L, n);
    if (!in_group(L, n) || (L->G->own[n->id] && !is_target(L, n))) return ext(L, n, ix);
    Ix c = *ix;
    canon(L, &c, &n->type);
    KExpr *v = cache_get(L, n, TAG_VAL, &c);
    if (v) return v;
    v = compute(L, n, &c);
    if (L->G->bnd[n->id]) v = kir_wrap(L->g, n->type.dtype, v); /* a rounding point */
    if (L->G->uses[n->id] > 1 || v->kind == KE_LOCAL) {
        v = mat(L, v);
        cache_put(L, n, TAG_VAL, &c, v);
    }
    return v;
}

/* ---- kernels -------------------------------------------------------------------------- */

static Low *low_new(GCtx *G, const Node *const *targets, int ntargets) {
    Low *L = arena_alloc(G->g->arena, sizeof *L);
    L->G = G;
    L->g = G->g;
    L->k = kir_kernel_create(G->g, "candidate", G->grp ? G->grp->id : -1);
    L->root = scope_new(L, NULL);
    L->cur = L->root;
    L->targets = targets;
    L->ntargets = ntargets;
    return L;
}

static void store_value(Low *L, const Node *v, const Ix *ix, KExpr *e) {
    int b = kir_buffer(L->g, L->k, v, role_of(L->g, v), true);
    sappend(L->cur, kir_store(L->g, b, lin_of(L, ix, &v->type), e));
}

/* Values (of one element count) stored over vals[0]'s index space, with the
 * axes in `seq` as sequential loops inside each point.  All values of a point
 * are computed before any is stored (in-place updates, see the top). */
static Low *build_plain(GCtx *G, const Node *const *vals, int nv, uint32_t seq) {
    Low *L = low_new(G, vals, nv);
    const Type *t = &vals[0]->type;
    Ix ix = {t->rank, {0}, NULL};
    for (int a = 0; a < t->rank; a++)
        if (!(seq & (1u << a))) ix.e[a] = par_var(L, t->dim[a]);
    ensure_par(L);
    int nopen = 0;
    for (int a = 0; a < t->rank; a++)
        if (seq & (1u << a)) ix.e[a] = loop_open(L, t->dim[a]), nopen++;
    Ix *ixs = arena_alloc(L->g->arena, sizeof(Ix) * (size_t)nv);
    KExpr **v = arena_alloc(L->g->arena, sizeof(KExpr *) * (size_t)nv);
    for (int i = 0; i < nv; i++) {
        ixs[i] = same_shape(&vals[i]->type, t) ? ix : unravel(L, lin_of(L, &ix, t), &vals[i]->type);
        v[i] = val(L, vals[i], &ixs[i]);
        if (nv > 1) v[i] = mat(L, v[i]);
    }
    for (int i = 0; i < nv; i++) store_value(L, vals[i], &ixs[i], v[i]);
    while (nopen--) loop_close(L);
    return L;
}

static bool epi_op(const Node *n) {
    return ir_op_class(n->op) == OPC_ELEMENTWISE || is_alias_op(n->op) || n->op == OP_TRANSPOSE ||
           n->op == OP_BATCHNORM;
}

/* The operand through which epilogue node n is reached from the core (see
 * reach_from), or NULL. */
static bool member(const GCtx *G, const Node *n) {
    if (ir_is_source(n)) return false;
    return G->grp ? n->ann.group == G->grp->id : n == G->single;
}

static const Node *epi_source(GCtx *G, const Node *n) {
    if (!epi_op(n)) return NULL;
    DimId numel = ir_type_numel(G->g, &n->type);
    int nops = n->op == OP_BATCHNORM ? 1 : n->nin;
    for (int k = 0; k < nops; k++) {
        const Node *p = n->in[k];
        if (p && member(G, p) && G->reach[p->id] && !G->own[p->id] && ir_type_numel(G->g, &p->type) == numel)
            return p;
    }
    return NULL;
}

/* Marks the members reached from core o through epilogue ops of the same size. */
static void reach_from(GCtx *G, const Node *o) {
    for (int i = 0; i < G->nm; i++) G->reach[G->m[i]->id] = false;
    G->reach[o->id] = true;
    for (int i = 0; i < G->nm; i++) {
        const Node *n = G->m[i];
        if (n->id > o->id && !G->own[n->id] && epi_source(G, n)) G->reach[n->id] = true;
    }
}

typedef struct {
    const Node *n;
    Ix ix;
    KExpr *v;
} Known;

/* From the core's value at ix forward through the epilogue: each reached
 * member's index and value, storing the targets. */
static void push(Low *L, const Node *o, const Ix *ix, KExpr *v) {
    GCtx *G = L->G;
    Known *kn = arena_alloc(L->g->arena, sizeof(Known) * (size_t)(G->nm + 1));
    int nk = 0;
    if (G->bnd[o->id]) v = kir_wrap(L->g, o->type.dtype, v); /* a rounding point */
    v = mat(L, v);
    cache_put(L, o, TAG_VAL, ix, v);
    kn[nk++] = (Known){o, *ix, v};
    for (int i = 0; i < G->nm; i++) {
        const Node *n = G->m[i];
        if (n->id <= o->id || !G->reach[n->id]) continue;
        const Node *p = epi_source(G, n);
        const Known *pk = NULL;
        for (int j = 0; j < nk && !pk; j++)
            if (kn[j].n == p) pk = &kn[j];
        DSC_ASSERT(pk);
        Ix ni = {n->type.rank, {0}, NULL};
        KExpr *nv;
        if (is_alias_op(n->op)) {
            ni = unravel(L, lin_of(L, &pk->ix, &p->type), &n->type);
            nv = pk->v;
        } else if (n->op == OP_TRANSPOSE) {
            const Attr *pa = ir_attr(n, "perm");
            for (int d = 0; d < n->type.rank; d++)
                ni.e[d] = pk->ix.e[pa ? ir_norm_axis(pa->ints[d], n->type.rank) : n->type.rank - 1 - d];
            canon(L, &ni, &n->type);
            nv = pk->v;
        } else {
            int lead = n->type.rank - p->type.rank;
            DSC_ASSERT(lead >= 0);
            for (int d = 0; d < lead; d++) ni.e[d] = ci(L, 0);
            for (int d = 0; d < p->type.rank; d++) ni.e[lead + d] = pk->ix.e[d];
            if (same_shape(&n->type, &p->type)) ni.lin = pk->ix.lin;
            canon(L, &ni, &n->type);
            nv = mat(L, val(L, n, &ni));
        }
        cache_put(L, n, TAG_VAL, &ni, nv);
        kn[nk++] = (Known){n, ni, nv};
    }
    for (int j = 0; j < nk; j++)
        if (is_target(L, kn[j].n)) store_value(L, kn[j].n, &kn[j].ix, kn[j].v);
}

static Low *build_attention(GCtx *G, const Att *A, const Node *const *vals, int nv) {
    Low *L = low_new(G, vals, nv);
    const Type *t = &A->o->type;
    int r = t->rank, br = r - 2;
    Ix ix = {r, {0}, NULL};
    for (int a = 0; a < r - 1; a++) ix.e[a] = par_var(L, t->dim[a]);
    ensure_par(L);
    int64_t dv;
    if (dim_is_const(L->g->dims, t->dim[r - 1], &dv) && dv >= 1 && dv <= MAX_UNROLL) {
        KExpr **out = arena_alloc(L->g->arena, sizeof(KExpr *) * (size_t)dv);
        attention_online(L, A, ix.e, br, ix.e[br], dv, out);
        for (int64_t c = 0; c < dv; c++) {
            Ix ic = ix;
            ic.e[r - 1] = ci(L, c);
            canon(L, &ic, t);
            push(L, A->o, &ic, out[c]);
        }
    } else {
        ix.e[r - 1] = loop_open(L, t->dim[r - 1]);
        KExpr *v;
        if (A->scores) { /* the pattern: the matmul over softmax pulled as is */
            v = val(L, A->o, &ix);
        } else {
            v = lower_attention(L, A->o, &ix);
        }
        push(L, A->o, &ix, v);
        loop_close(L);
    }
    return L;
}

/* ---- estimates ------------------------------------------------------------------------ */

static int64_t keval(const KExpr *e, const int64_t *sample) {
    switch (e->kind) {
    case KE_CONST: return e->type == KT_F32 ? (int64_t)e->f : e->i;
    case KE_DIM: return sample[e->id];
    case KE_SELECT: return keval(e->a, sample) ? keval(e->b, sample) : keval(e->c, sample);
    case KE_BIN: {
        int64_t a = keval(e->a, sample), b = keval(e->b, sample);
        switch (e->op) {
        case KO_ADD: return ir_u64_to_i64((uint64_t)a + (uint64_t)b);
        case KO_SUB: return ir_u64_to_i64((uint64_t)a - (uint64_t)b);
        case KO_MUL: return ir_u64_to_i64((uint64_t)a * (uint64_t)b);
        case KO_DIV: return b && b != -1 ? a / b : 0;
        case KO_MOD: return b && b != -1 ? a % b : 0;
        case KO_MIN: return a < b ? a : b;
        case KO_MAX: return a > b ? a : b;
        case KO_LT: return a < b;
        case KO_GT: return a > b;
        case KO_LE: return a <= b;
        case KO_GE: return a >= b;
        case KO_EQ: return a == b;
        case KO_NE: return a != b;
        case KO_AND: return a && b;
        case KO_OR: return a || b;
        default: return 0;
        }
    }
    default: return 0;
    }
}

/* Operations in a value (index arithmetic of loads and stores not counted). */
static int nops(const KExpr *e) {
    int n = 0;
    for (; e; e = e->a) {
        if (e->kind == KE_LOAD) return n + 2; /* a memory access costs more */
        if (e->kind == KE_UN || e->kind == KE_BIN || e->kind == KE_SELECT) n++;
        if (e->b) n += nops(e->b);
        if (e->c) n += nops(e->c);
    }
    return n;
}

static double block_cost(const Low *L, const KStmt *s) {
    double c = 0;
    for (; s; s = s->next) {
        switch (s->kind) {
        case KS_FOR: c += (double)keval(s->extent, L->G->sample) * (1 + block_cost(L, s->body)); break;
        case KS_SET:
        case KS_STORE: c += 1 + nops(s->value); break;
        case KS_IF: c += 1 + nops(s->value) + block_cost(L, s->body); break;
        case KS_TRAP: c += 1; break;
        }
    }
    return c;
}

static double kernel_cost(const Low *L) {
    double pts = 1;
    for (int i = 0; i < L->k->npar; i++) pts *= (double)keval(L->k->par_extent[i], L->G->sample);
    return pts * (1 + block_cost(L, L->root->body));
}

static DimId dadd(DimTable *t, DimId a, DimId b) {
    return a == DIM_INVALID || b == DIM_INVALID ? DIM_INVALID : dim_add(t, a, b);
}
static DimId dmul(DimTable *t, DimId a, DimId b) {
    return a == DIM_INVALID || b == DIM_INVALID ? DIM_INVALID : dim_mul(t, a, b);
}

static int arith(const KExpr *e) {
    int n = 0;
    for (; e; e = e->a) {
        if (e->kind == KE_LOAD) return n;
        if ((e->kind == KE_UN && e->op != KO_CAST && e->op != KO_WRAP) || e->kind == KE_BIN) n++;
        if (e->b) n += arith(e->b);
        if (e->c) n += arith(e->c);
    }
    return n;
}

static DimId block_flops(const Low *L, const KStmt *s, DimId mul) {
    DimTable *t = L->g->dims;
    DimId sum = dim_const(t, 0);
    for (; s; s = s->next) {
        switch (s->kind) {
        case KS_FOR: sum = dadd(t, sum, block_flops(L, s->body, dmul(t, mul, L->vext[s->id]))); break;
        case KS_SET:
        case KS_STORE: sum = dadd(t, sum, dmul(t, mul, dim_const(t, arith(s->value)))); break;
        case KS_IF: sum = dadd(t, sum, block_flops(L, s->body, mul)); break;
        case KS_TRAP: break;
        }
    }
    return sum;
}

static void estimates(Low *L) {
    DimTable *t = L->g->dims;
    DimId pts = dim_const(t, 1);
    for (int i = 0; i < L->k->npar; i++) pts = dmul(t, pts, L->vext[i]);
    DimId f = block_flops(L, L->root->body, pts), b = dim_const(t, 0);
    for (int i = 0; i < L->k->nbufs; i++) b = dadd(t, b, ir_value_bytes(L->g, L->k->bufs[i].node));
    L->k->flops = f == DIM_INVALID ? dim_const(t, 0) : f;
    L->k->bytes = b == DIM_INVALID ? dim_const(t, 0) : b;
}

/* Names k, verifies it and adds it to the program. */
static void add_kernel(GCtx *G, Kernel *k) {
    if (G->grp)
        k->name = arena_printf(G->g->arena, "%s_g%d_%d", G->prefix, G->grp->id, G->kno++);
    else
        k->name = arena_printf(G->g->arena, "%s_n%d_%d", G->prefix, G->single->id, G->kno++);
    k->load_time = G->grp && G->grp->kind == GK_CONSTANT;
    if (!kir_verify(G->g, k, G->d)) {
        diag_error(G->d, loc_file(G->g->file), "internal error: lowering produced an invalid kernel %s", k->name);
        G->ok = false;
        return;
    }
    kir_program_add(G->prog, k);
}

static void commit(GCtx *G, Low *L) {
    L->k->body = L->root->body;
    estimates(L);
    add_kernel(G, L->k);
}

/* A GEMM over a weight pruned with a known pattern, outside load-time
 * groups: a kernel of its own specialised to the pattern (lower_sparse.c). */
static bool sparse_gemm(const GCtx *G, const Node *n) {
    return cg_sparse_gemm(n) && !(G->grp && G->grp->kind == GK_CONSTANT);
}

static void emit_sparse(GCtx *G, const Node *n) {
    Graph *g = G->g;
    const Node *x = root_of(g, n->in[0]);
    const Node *b = n->op == OP_LINEAR && n->nin > 2 && n->in[2] ? root_of(g, n->in[2]) : NULL;
    Kernel *k = cg_lower_sparse(g, n, x, role_of(g, x), b, b ? role_of(g, b) : KB_PARAM, n, role_of(g, n), "sparse",
                                G->grp ? G->grp->id : -1);
    add_kernel(G, k);
}

static bool rowish(const GCtx *G) {
    for (int i = 0; i < G->nm; i++) {
        OpKind op = G->m[i]->op;
        if (ir_op_class(op) == OPC_REDUCTION || op == OP_SOFTMAX || op == OP_LAYERNORM || op == OP_RMSNORM ||
            op == OP_ATTENTION)
            return true;
    }
    return false;
}

/* Emits the kernel for values of one shape, choosing the sequential axes. */
static void emit_plain(GCtx *G, const Node *const *vals, int nv, bool try_seq) {
    Low *best = build_plain(G, vals, nv, 0);
    int r = vals[0]->type.rank;
    if (try_seq && r > 0 && r <= 16) {
        double bc = kernel_cost(best);
        for (int c = 1; c < 2 * r; c++) {
            /* c in 1..r: the last c axes; c in r+1..2r-1: axis c-r-1 alone */
            uint32_t seq = c <= r ? (uint32_t)(((1u << r) - 1) & ~((1u << (r - c)) - 1)) : 1u << (c - r - 1);
            Low *L = build_plain(G, vals, nv, seq);
            double lc = kernel_cost(L);
            if (lc < 0.75 * bc) best = L, bc = lc;
        }
    }
    commit(G, best);
}

/* Emits one kernel per shape among vals. */
static void emit_by_shape(GCtx *G, const Node **vals, int nv, bool try_seq) {
    bool *done = arena_alloc(G->g->arena, (size_t)nv + 1);
    const Node **set = arena_alloc(G->g->arena, sizeof(Node *) * ((size_t)nv + 1));
    for (int i = 0; i < nv; i++) {
        if (done[i]) continue;
        int ns = 0;
        for (int j = i; j < nv; j++)
            if (!done[j] && same_shape(&vals[j]->type, &vals[i]->type)) set[ns++] = vals[j], done[j] = true;
        emit_plain(G, set, ns, try_seq);
    }
}

/* ---- groups ---------------------------------------------------------------------------- */

static bool find_att(GCtx *G, Att *A) {
    for (int i = 0; i < G->nm; i++) {
        const Node *n = G->m[i];
        if (n->op == OP_ATTENTION && n->type.rank >= 2 && !G->own[n->id]) {
            const Node *k = n->in[1];
            *A = (Att){n, NULL, n->in[2], k->type.dim[k->type.rank - 2]};
            return true;
        }
    }
    if (!G->grp || G->grp->kind != GK_ATTENTION) return false;
    for (int i = 0; i < G->nm; i++) {
        const Node *m2 = G->m[i], *sm = m2->in[0];
        if (m2->op != OP_MATMUL || !sm || sm->op != OP_SOFTMAX || sm->ann.group != G->grp->id) continue;
        const Node *s = sm->in[0], *v = m2->in[1];
        int r = sm->type.rank;
        if (r < 2 || v->type.rank < 2 || ir_norm_axis(ir_attr_int(sm, "axis", -1), r) != r - 1) continue;
        if (m2->type.rank != (r > v->type.rank ? r : v->type.rank)) continue;
        *A = (Att){m2, s, v, s->type.dim[r - 1]};
        return true;
    }
    return false;
}

static bool half(DType t) { return t == DT_F16 || t == DT_BF16; }

/* An f16/bf16 value computed in the group whose rounding its readers in the
 * group can observe: an explicit cast to f16/bf16, or a value read by a cast
 * (to f32, an integer, bool, the other half type) or a comparison.  Elsewhere
 * a fused intermediate keeps f32 precision, which the spec allows. */
static bool member(const GCtx *G, const Node *n);

/* Is n's value in a kernel already rounded to its dtype?  Loaded values and
 * constants are, and so is data movement of rounded values. */
static bool rounded(GCtx *G, const Node *n) {
    if (!member(G, n) || G->bnd[n->id] || G->own[n->id]) return true;
    switch (n->op) {
    case OP_RESHAPE:
    case OP_SQUEEZE:
    case OP_UNSQUEEZE:
    case OP_TRANSPOSE:
    case OP_SLICE:
    case OP_GATHER: return rounded(G, n->in[0]);
    case OP_CONCAT:
        for (int k = 0; k < n->nin; k++)
            if (!rounded(G, n->in[k])) return false;
        return true;
    default: return false;
    }
}

static bool rounding_point(GCtx *G, const Node *n) {
    if (!half(n->type.dtype) || G->uses[n->id] - (G->esc[n->id] ? 1 : 0) < 1) return false;
    if (n->op == OP_CAST && n->in[0]->type.dtype != n->type.dtype) return true;
    if (rounded(G, n)) return false;
    for (int i = 0; i < G->nm; i++) {
        const Node *u = G->m[i];
        if (u->op != OP_CAST && u->op != OP_LESS && u->op != OP_GREATER && u->op != OP_EQUAL) continue;
        if (u->op == OP_CAST && u->type.dtype == n->type.dtype) continue;
        for (int k = 0; k < u->nin; k++)
            if (u->in[k] == n) return true;
    }
    return false;
}

static void lower_group(GCtx *G) {
    Graph *g = G->g;
    bool pure = true;
    for (int i = 0; i < G->nm; i++) {
        OpKind op = G->m[i]->op;
        if (ir_op_class(op) != OPC_ELEMENTWISE && !is_alias_op(op)) pure = false;
    }
    /* rounding points (see the top), and the half-precision values computed
     * in the group that they are computed from, so that what a cast or a
     * comparison reads is rounded exactly as the interpreter rounds it */
    for (int i = 0; i < G->nm; i++) G->bnd[G->m[i]->id] = false;
    for (int i = 0; i < G->nm; i++) G->bnd[G->m[i]->id] = rounding_point(G, G->m[i]);
    for (int i = G->nm - 1; i >= 0; i--) {
        const Node *u = G->m[i];
        if (!G->bnd[u->id]) continue;
        for (int k = 0; k < u->nin; k++) {
            const Node *x = u->in[k];
            if (x && member(G, x) && half(x->type.dtype) && !rounded(G, x)) G->bnd[x->id] = true;
        }
    }
    /* a sparse GEMM is computed by a kernel of its own, and so are its
     * operands computed in the group: it reads them from memory */
    for (int i = 0; i < G->nm; i++) G->own[G->m[i]->id] = false;
    for (int i = 0; i < G->nm; i++) {
        const Node *n = G->m[i];
        if (!sparse_gemm(G, n)) continue;
        G->own[n->id] = true;
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] && member(G, n->in[k])) G->own[n->in[k]->id] = true;
    }
    const Node **vals = arena_alloc(g->arena, sizeof(Node *) * ((size_t)G->nm + 1));
    int nv = 0;
    bool seq = rowish(G);
    for (int i = 0; i < G->nm && G->ok; i++) {
        const Node *n = G->m[i];
        if (G->own[n->id] && sparse_gemm(G, n)) emit_sparse(G, n);
        else if (G->own[n->id]) emit_plain(G, &n, 1, seq);
        else if (G->esc[n->id]) vals[nv++] = n;
    }
    if (!nv || !G->ok) return;
    if (pure) {
        DimId dom = ir_type_numel(g, &vals[nv - 1]->type);
        const Node **other = arena_alloc(g->arena, sizeof(Node *) * (size_t)nv), **flat = arena_alloc(g->arena, sizeof(Node *) * (size_t)nv);
        int no = 0, nf = 0;
        for (int i = 0; i < nv; i++) {
            if (ir_type_numel(g, &vals[i]->type) == dom)
                flat[nf++] = vals[i];
            else
                other[no++] = vals[i];
        }
        if (no) emit_by_shape(G, other, no, false);
        if (G->ok) commit(G, build_plain(G, flat, nf, 0));
        return;
    }
    Att A;
    if (find_att(G, &A)) {
        reach_from(G, A.o);
        const Node **rest = arena_alloc(g->arena, sizeof(Node *) * (size_t)nv), **att = arena_alloc(g->arena, sizeof(Node *) * (size_t)nv);
        int nr = 0, na = 0;
        for (int i = 0; i < nv; i++) {
            if (G->reach[vals[i]->id])
                att[na++] = vals[i];
            else
                rest[nr++] = vals[i];
        }
        if (nr) emit_by_shape(G, rest, nr, seq);
        if (na && G->ok) commit(G, build_attention(G, &A, att, na));
        return;
    }
    emit_by_shape(G, vals, nv, seq);
}

static const char *c_ident(Arena *a, const char *s) {
    if (!s || !*s) s = "model";
    size_t n = strlen(s);
    char *r = arena_alloc(a, n + 2), *p = r;
    if (isdigit((unsigned char)s[0])) *p++ = '_';
    for (size_t i = 0; i < n; i++) *p++ = isalnum((unsigned char)s[i]) ? s[i] : '_';
    *p = 0;
    return r;
}

bool cg_lower(Graph *g, KProgram *out, Diag *d) {
    if (!out->g) out->g = g;
    DSC_ASSERT(out->g == g);
    int nn = g->nnodes, nsym = dim_sym_count(g->dims);
    GCtx G = {.g = g, .d = d, .prog = out, .ok = true};
    G.prefix = c_ident(g->arena, g->name);
    G.sample = arena_alloc(g->arena, sizeof(int64_t) * ((size_t)nsym + 1));
    for (int s = 0; s < nsym; s++) {
        int64_t b = dim_sym_bound(g->dims, s);
        G.sample[s] = b > 0 ? b : 64;
    }
    G.uses = arena_alloc(g->arena, sizeof(int) * ((size_t)nn + 1));
    G.esc = arena_alloc(g->arena, (size_t)nn + 1);
    G.bnd = arena_alloc(g->arena, (size_t)nn + 1);
    G.own = arena_alloc(g->arena, (size_t)nn + 1);
    G.reach = arena_alloc(g->arena, (size_t)nn + 1);
    bool grouped = g->ngroups > 0;
    for (int i = 0; i < nn; i++) {
        const Node *u = g->nodes[i];
        if (ir_is_source(u)) continue;
        if (grouped && (u->ann.group < 0 || u->ann.group >= g->ngroups)) {
            diag_error(d, u->loc, "internal error: %s is in no fusion group", ir_op_name(u->op));
            return false;
        }
        for (int k = 0; k < u->nin; k++) {
            const Node *x = u->in[k];
            if (!x || ir_is_source(x)) continue;
            if (grouped && x->ann.group == u->ann.group)
                G.uses[x->id]++;
            else
                G.esc[x->id] = true;
        }
    }
    for (int i = 0; i < g->noutputs; i++)
        if (!ir_is_source(g->outputs[i].node)) G.esc[g->outputs[i].node->id] = true;
    for (int i = 0; i < nn; i++) G.uses[i] += G.esc[i];
    if (grouped) {
        /* load-time constant groups first, then the schedule */
        for (int pass = 0; pass < 2 && G.ok; pass++)
            for (int gi = 0; gi < g->ngroups && G.ok; gi++) {
                Group *grp = g->groups[gi];
                if ((grp->kind == GK_CONSTANT) != (pass == 0) || grp->kind == GK_ALIAS || grp->nnodes == 0) continue;
                G.grp = grp;
                G.m = grp->nodes;
                G.nm = grp->nnodes;
                G.kno = 0;
                lower_group(&G);
            }
    } else {
        for (int i = 0; i < nn && G.ok; i++) {
            Node *n = g->nodes[i];
            if (ir_is_source(n) || is_view(g, n)) continue;
            G.grp = NULL;
            G.single = n;
            G.m = &g->nodes[i];
            G.nm = 1;
            G.kno = 0;
            lower_group(&G);
        }
    }
    return G.ok;
}
