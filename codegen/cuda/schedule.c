/* Thread mappings of the CUDA renderer: the row analysis (schedule.h). */
#include "schedule.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../../ir/assert.h"
#include "../../ir/trap.h"

/* ---- expression queries -------------------------------------------------------- */

static bool mentions_local(const KExpr *e, int l) {
    if (!e) return false;
    if (e->kind == KE_LOCAL && e->id == l) return true;
    return mentions_local(e->a, l) || mentions_local(e->b, l) || mentions_local(e->c, l);
}

static int count_local(const KExpr *e, int l) {
    if (!e) return 0;
    return (e->kind == KE_LOCAL && e->id == l) + count_local(e->a, l) + count_local(e->b, l) +
           count_local(e->c, l);
}

static bool mentions_var(const KExpr *e, int v) {
    if (!e) return false;
    if (e->kind == KE_VAR && e->id == v) return true;
    return mentions_var(e->a, v) || mentions_var(e->b, v) || mentions_var(e->c, v);
}

static bool loads_written(const Kernel *k, const KExpr *e) {
    if (!e) return false;
    if (e->kind == KE_LOAD && e->id >= 0 && e->id < k->nbufs && k->bufs[e->id].written) return true;
    return loads_written(k, e->a) || loads_written(k, e->b) || loads_written(k, e->c);
}

/* The expressions a statement holds (not its body's). */
static int stmt_exprs(const KStmt *s, const KExpr **out) {
    int n = 0;
    out[n++] = s->extent;
    out[n++] = s->index;
    out[n++] = s->value;
    for (int i = 0; i < KTRAP_NARGS; i++)
        out[n++] = s->arg[i];
    return n;
}

enum { MAX_EXPRS = 3 + KTRAP_NARGS };

/* Statement-tree queries over a block (all depths). */
static bool block_loads_written(const Kernel *k, const KStmt *s) {
    for (; s; s = s->next) {
        const KExpr *es[MAX_EXPRS];
        int n = stmt_exprs(s, es);
        for (int i = 0; i < n; i++)
            if (loads_written(k, es[i])) return true;
        if (block_loads_written(k, s->body)) return true;
    }
    return false;
}

static bool block_has_loop(const KStmt *s) {
    for (; s; s = s->next)
        if (s->kind == KS_FOR || block_has_loop(s->body)) return true;
    return false;
}

static bool block_has_store(const KStmt *s) {
    for (; s; s = s->next)
        if (s->kind == KS_STORE || block_has_store(s->body)) return true;
    return false;
}

/* Mentions of local l in a block: reads (in expressions) and writes. */
static int block_reads(const KStmt *s, int l) {
    int n = 0;
    for (; s; s = s->next) {
        const KExpr *es[MAX_EXPRS];
        int m = stmt_exprs(s, es);
        for (int i = 0; i < m; i++)
            n += count_local(es[i], l);
        n += block_reads(s->body, l);
    }
    return n;
}

static bool block_writes(const KStmt *s, int l) {
    for (; s; s = s->next)
        if ((s->kind == KS_SET && s->id == l) || block_writes(s->body, l)) return true;
    return false;
}

/* Accumulator test: every write of l in the block is `l = l OP e` with one OP
 * (*op, KO_COUNT until the first), e not mentioning l. */
static bool acc_writes(const KStmt *s, int l, KOp *op) {
    for (; s; s = s->next) {
        if (s->kind == KS_SET && s->id == l) {
            const KExpr *v = s->value;
            if (!v || v->kind != KE_BIN || !(v->op == KO_ADD || v->op == KO_MAX || v->op == KO_MIN))
                return false;
            if (!v->a || v->a->kind != KE_LOCAL || v->a->id != l || mentions_local(v->b, l)) return false;
            if (*op != KO_COUNT && *op != v->op) return false;
            *op = v->op;
        }
        if (!acc_writes(s->body, l, op)) return false;
    }
    return true;
}

static int count_writes(const KStmt *s, int l) {
    int n = 0;
    for (; s; s = s->next)
        n += (s->kind == KS_SET && s->id == l) + count_writes(s->body, l);
    return n;
}

/* Private test: the first mention of l in the loop body is an assignment at the
 * body's top level whose value does not mention l. */
static bool first_mention_is_top_set(const KStmt *body, int l) {
    for (const KStmt *s = body; s; s = s->next) {
        if (s->kind == KS_SET && s->id == l) return !mentions_local(s->value, l);
        const KExpr *es[MAX_EXPRS];
        int m = stmt_exprs(s, es);
        for (int i = 0; i < m; i++)
            if (mentions_local(es[i], l)) return false;
        if (block_reads(s->body, l) || block_writes(s->body, l)) return false;
    }
    return true; /* never mentioned */
}

/* ---- affine store indices ------------------------------------------------------- */

typedef enum { AF_NOVAR, AF_LINEAR, AF_BAD } AfKind;
typedef struct {
    AfKind kind;
    int64_t c; /* AF_LINEAR: the coefficient (times dims when `sym`) */
    bool sym;  /* the coefficient also has dim factors (each >= 1 for a nonempty tensor) */
} Af;

/* A product of positive constants and dims. */
static bool positive_factor(const KExpr *e) {
    if (!e) return false;
    if (e->kind == KE_CONST) return e->type == KT_I64 && e->i > 0;
    if (e->kind == KE_DIM) return true;
    if (e->kind == KE_BIN && e->op == KO_MUL) return positive_factor(e->a) && positive_factor(e->b);
    return false;
}

static Af affine(const KExpr *e, int v) {
    Af no = {AF_NOVAR, 0, false}, bad = {AF_BAD, 0, false};
    if (!mentions_var(e, v)) return no;
    if (e->kind == KE_VAR) return (Af){AF_LINEAR, 1, false};
    if (e->kind != KE_BIN || e->type != KT_I64) return bad;
    Af a = affine(e->a, v), b = affine(e->b, v);
    if (a.kind == AF_BAD || b.kind == AF_BAD) return bad;
    switch (e->op) {
    case KO_ADD:
    case KO_SUB:
        if (a.kind == AF_NOVAR) return e->op == KO_ADD ? b : (Af){AF_LINEAR, -b.c, b.sym};
        if (b.kind == AF_NOVAR) return a;
        if (a.sym || b.sym) return bad;
        a.c = e->op == KO_ADD ? a.c + b.c : a.c - b.c;
        return a.c ? a : bad;
    case KO_MUL: {
        if (a.kind == AF_LINEAR && b.kind == AF_LINEAR) return bad;
        Af lin = a.kind == AF_LINEAR ? a : b;
        const KExpr *f = a.kind == AF_LINEAR ? e->b : e->a;
        if (f->kind == KE_CONST && f->type == KT_I64) {
            if (f->i == 0 || f->i > INT32_MAX || f->i < -INT32_MAX || lin.c > INT32_MAX || lin.c < -INT32_MAX)
                return bad;
            lin.c *= f->i;
            return lin;
        }
        if (!positive_factor(f)) return bad;
        lin.sym = true;
        return lin;
    }
    default: return bad;
    }
}

/* ---- the plan ------------------------------------------------------------------- */

typedef struct {
    Graph *g;
    const Kernel *k;
    CudaLocalPlan *loc;
    bool *point_written; /* per local: assigned at point level */
    bool ok;
    bool worth; /* a reduce loop with a row worth splitting */
} Plan;

static bool mentions_private(const Plan *p, const KExpr *e) {
    for (int l = 0; l < p->k->nlocals; l++)
        if (p->loc[l].role == CR_PRIVATE && mentions_local(e, l)) return true;
    return false;
}

/* Stores of a map loop: at its top level or under its ifs, never in a nested
 * loop, index affine in the loop variable (nonzero coefficient), no private local. */
static bool map_stores_ok(const Plan *p, const KStmt *s, int var) {
    for (; s; s = s->next) {
        if (s->kind == KS_FOR && block_has_store(s->body)) return false;
        if (s->kind == KS_STORE) {
            if (mentions_private(p, s->index)) return false;
            Af a = affine(s->index, var);
            if (a.kind != AF_LINEAR || (!a.sym && a.c == 0)) return false;
        }
        if (s->kind == KS_IF && !map_stores_ok(p, s->body, var)) return false;
    }
    return true;
}

static bool osm_state(const Kernel *k, int l) {
    const KOnlineSoftmax *o = k->osm;
    if (!o) return false;
    if (l == o->m || l == o->l) return true;
    for (int i = 0; i < o->nacc; i++)
        if (o->acc[i] == l) return true;
    return false;
}

static void loop(Plan *p, const KStmt *s) {
    const Kernel *k = p->k;
    bool reduce = false;
    if (k->osm && s->id == k->osm->var) { /* the online-softmax loop: split the keys, merge the states */
        for (int l = 0; l < k->nlocals && p->ok; l++) {
            if (!block_writes(s->body, l)) continue;
            if (p->loc[l].role != CR_POINT) {
                p->ok = false;
            } else if (osm_state(k, l)) {
                p->loc[l] = (CudaLocalPlan){CR_OSM, KO_COUNT, s};
            } else if (!p->point_written[l] && first_mention_is_top_set(s->body, l)) {
                p->loc[l] = (CudaLocalPlan){CR_PRIVATE, KO_COUNT, s};
            } else {
                p->ok = false;
            }
        }
        if (block_has_store(s->body)) p->ok = false;
        const KExpr *x = s->extent;
        if (!(x && x->kind == KE_CONST && x->i < 64)) p->worth = true;
        return;
    }
    for (int l = 0; l < k->nlocals && p->ok; l++) {
        if (!block_writes(s->body, l)) continue;
        if (p->loc[l].role != CR_POINT) { /* already another loop's local */
            p->ok = false;
            return;
        }
        KOp op = KO_COUNT;
        if ((k->locals[l] == KT_F32 || k->locals[l] == KT_I64) && acc_writes(s->body, l, &op) &&
            block_reads(s->body, l) == count_writes(s->body, l)) {
            p->loc[l] = (CudaLocalPlan){CR_ACC, op, s};
            reduce = true;
        } else if (!p->point_written[l] && first_mention_is_top_set(s->body, l)) {
            p->loc[l] = (CudaLocalPlan){CR_PRIVATE, KO_COUNT, s};
        } else {
            p->ok = false;
            return;
        }
    }
    if (reduce) {
        if (block_has_store(s->body)) p->ok = false;
        const KExpr *x = s->extent;
        if (!(x && x->kind == KE_CONST && x->i < 64)) p->worth = true;
    } else if (!map_stores_ok(p, s->body, s->id)) {
        p->ok = false;
    }
}

static void point_block(Plan *p, const KStmt *s) {
    for (; s && p->ok; s = s->next) {
        switch (s->kind) {
        case KS_SET:
            if (p->loc[s->id].role != CR_POINT) p->ok = false; /* written by a loop before */
            p->point_written[s->id] = true;
            break;
        case KS_IF: point_block(p, s->body); break;
        case KS_FOR: loop(p, s); break;
        case KS_STORE:
        case KS_TRAP: break;
        }
    }
}

/* A private local mentioned outside its loop. */
static bool private_escapes(const Plan *p, const KStmt *s, const KStmt *in_loop) {
    for (; s; s = s->next) {
        const KStmt *scope = in_loop ? in_loop : (s->kind == KS_FOR ? s : NULL);
        for (int l = 0; l < p->k->nlocals; l++) {
            if (p->loc[l].role != CR_PRIVATE || p->loc[l].loop == scope) continue;
            const KExpr *es[MAX_EXPRS];
            int m = stmt_exprs(s, es);
            for (int i = 0; i < m; i++)
                if (mentions_local(es[i], l)) return true;
            if (s->kind == KS_SET && s->id == l) return true;
        }
        if (private_escapes(p, s->body, scope)) return true;
    }
    return false;
}

void cg_cuda_row_plan(Graph *g, const Kernel *k, bool alias, CudaRowPlan *plan) {
    *plan = (CudaRowPlan){false, NULL};
    if (k->npar < 1 || alias || k->nlocals < 1 || block_loads_written(k, k->body)) return;
    for (int i = 0; i < k->npar; i++)
        if (mentions_var(k->par_extent[i], i)) return;
    Plan p = {g,
              k,
              arena_alloc(g->arena, sizeof(CudaLocalPlan) * (size_t)k->nlocals),
              arena_alloc(g->arena, sizeof(bool) * (size_t)k->nlocals),
              true,
              false};
    for (int l = 0; l < k->nlocals; l++) {
        p.loc[l] = (CudaLocalPlan){CR_POINT, KO_COUNT, NULL};
        p.point_written[l] = false;
    }
    point_block(&p, k->body);
    if (!p.ok || !p.worth || private_escapes(&p, k->body, NULL)) return;
    plan->rows = true;
    plan->locals = p.loc;
}

bool cg_cuda_is_reduce_loop(const Kernel *k, const CudaRowPlan *plan, const KStmt *s) {
    for (int l = 0; l < k->nlocals; l++)
        if (plan->locals[l].role == CR_ACC && plan->locals[l].loop == s) return true;
    return false;
}

/* ---- tiled GEMMs ---------------------------------------------------------------- */

static bool mentions_any_local(const KExpr *e) {
    if (!e) return false;
    if (e->kind == KE_LOCAL) return true;
    return mentions_any_local(e->a) || mentions_any_local(e->b) || mentions_any_local(e->c);
}

static const KExpr *first_load(const KExpr *e) {
    if (!e) return NULL;
    if (e->kind == KE_LOAD) return e;
    const KExpr *l = first_load(e->a);
    if (!l) l = first_load(e->b);
    if (!l) l = first_load(e->c);
    return l;
}

/* Whether consecutive values of var v address consecutive elements of e's first load. */
static bool unit_stride(const KExpr *e, int v) {
    const KExpr *ld = first_load(e);
    if (!ld) return false;
    Af a = affine(ld->a, v);
    return a.kind == AF_LINEAR && !a.sym && a.c == 1;
}

/* The highest parallel variable e mentions and f does not (-1: none). */
static int only_in(const Kernel *k, const KExpr *e, const KExpr *f) {
    for (int v = k->npar - 1; v >= 0; v--)
        if (mentions_var(e, v) && !mentions_var(f, v)) return v;
    return -1;
}

/* The 16-bit float dtype e's values are exactly (DT_F32: not known to be one). */
static DType half_of(const Kernel *k, const KExpr *e) {
    DType t = DT_F32;
    if (e->kind == KE_LOAD && e->id >= 0 && e->id < k->nbufs) t = k->bufs[e->id].dtype;
    if (e->kind == KE_UN && e->op == KO_WRAP) t = e->dt;
    return t == DT_F16 || t == DT_BF16 ? t : DT_F32;
}

/* One product: `init` (acc = C) then `loop` (for k: acc = acc + A * B), with m and n. */
static bool product(const Kernel *k, const KStmt *init, const KStmt *loop, CudaGemmProduct *p, int *pm,
                    int *pn) {
    if (init->kind != KS_SET || !init->value || init->value->kind != KE_CONST || init->value->type != KT_F32)
        return false;
    int acc = init->id;
    const KStmt *upd = loop->body;
    if (loop->kind != KS_FOR || !upd || upd->next || upd->kind != KS_SET || upd->id != acc) return false;
    const KExpr *v = upd->value;
    if (!v || v->kind != KE_BIN || v->op != KO_ADD || v->type != KT_F32 || !v->a || v->a->kind != KE_LOCAL ||
        v->a->id != acc || !v->b || v->b->kind != KE_BIN || v->b->op != KO_MUL)
        return false;
    const KExpr *a = v->b->a, *b = v->b->b;
    if (mentions_any_local(a) || mentions_any_local(b) || !mentions_var(a, loop->id) ||
        !mentions_var(b, loop->id))
        return false;
    int m = only_in(k, a, b), n = only_in(k, b, a);
    if (m < 0 || n < 0) return false;
    if (m > n) { /* keep n the faster-varying variable of the output: swap the operands */
        const KExpr *t = a;
        a = b;
        b = t;
        int tv = m;
        m = n;
        n = tv;
    }
    DType ha = half_of(k, a), hb = half_of(k, b);
    *p = (CudaGemmProduct){.loop = loop,
                           .acc = acc,
                           .init = init->value,
                           .a = a,
                           .b = b,
                           .a_k_fastest = unit_stride(a, loop->id),
                           .b_k_fastest = unit_stride(b, loop->id),
                           .half = ha == hb ? ha : DT_F32};
    *pm = m;
    *pn = n;
    return true;
}

void cg_cuda_gemm_plan(Graph *g, const Kernel *k, bool alias, CudaGemmPlan *plan) {
    *plan = (CudaGemmPlan){0};
    if (k->npar < 2 || alias || block_loads_written(k, k->body)) return;
    for (int i = 0; i < k->npar; i++)
        if (mentions_var(k->par_extent[i], i)) return;
    CudaGemmPlan p = {.m = -1, .n = -1};
    KStmt *rest = NULL, **tail = &rest;
    bool worth = false;
    for (const KStmt *s = k->body; s; s = s->next) {
        if (s->next && s->next->kind == KS_FOR) {
            int m, n;
            if (p.nprod == CG_GEMM_MAX_PRODUCTS || !product(k, s, s->next, &p.prod[p.nprod], &m, &n)) return;
            if (p.nprod > 0 && (m != p.m || n != p.n)) return;
            p.m = m;
            p.n = n;
            /* the statements before it, run after it, must not see its accumulator */
            if (block_reads(rest, s->id) || block_writes(rest, s->id)) return;
            const KExpr *x = s->next->extent;
            if (!(x && x->kind == KE_CONST && x->i < 32)) worth = true;
            p.nprod++;
            s = s->next;
            continue;
        }
        if (s->kind == KS_FOR || block_has_loop(s->body)) return;
        KStmt *c = arena_alloc(g->arena, sizeof *c);
        *c = *s;
        c->next = NULL;
        *tail = c;
        tail = &c->next;
    }
    if (p.nprod == 0 || !worth) return;
    p.ok = true;
    p.rest = rest;
    *plan = p;
}

/* ---- vectorised elementwise kernels ---------------------------------------------- */

int cg_cuda_vec_elem(DType t) {
    switch (t) {
    case DT_F32:
    case DT_I32: return 4;
    case DT_F16:
    case DT_BF16: return 2;
    default: return 0;
    }
}

/* gcd(a, b) for b > 0 */
static int64_t gcd64(int64_t a, int64_t b) {
    a %= b;
    if (a < 0) a = -a;
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static bool add_cond(CudaVecCond *c, int *nc, int sym, int mod) {
    for (int i = 0; i < *nc; i++)
        if (c[i].sym == sym) {
            if (mod > c[i].mod) c[i].mod = mod; /* moduli divide the width: the larger implies the other */
            return true;
        }
    if (*nc == CG_VEC_MAX_CONDS) return false;
    c[(*nc)++] = (CudaVecCond){sym, mod};
    return true;
}

/* A divisor of m that divides e (with `var` taken as 0) whatever the values of
 * everything else: constants and products of them. */
static int64_t divisor(const KExpr *e, int64_t m, int var) {
    if (!e || e->type != KT_I64) return 1;
    if (e->kind == KE_CONST) return gcd64(e->i, m);
    if (e->kind == KE_VAR && e->id == var) return m;
    if (e->kind != KE_BIN) return 1;
    int64_t da = divisor(e->a, m, var), db = divisor(e->b, m, var);
    if (e->op == KO_MUL) return gcd64(da * db, m);
    if (e->op == KO_ADD || e->op == KO_SUB) return gcd64(da, db);
    return 1;
}

/* Whether e, with variable `var` taken as 0, is a multiple of m for all values
 * of everything else it mentions (adding dim conditions). */
static bool multiple_of(const KExpr *e, int64_t m, int var, CudaVecCond *c, int *nc) {
    if (m == 1) return true;
    if (!e || e->type != KT_I64) return false;
    switch (e->kind) {
    case KE_CONST: return e->i % m == 0;
    case KE_VAR: return e->id == var;
    case KE_DIM: return add_cond(c, nc, e->id, (int)m);
    case KE_BIN:
        if (e->op == KO_ADD || e->op == KO_SUB)
            return multiple_of(e->a, m, var, c, nc) && multiple_of(e->b, m, var, c, nc);
        if (e->op == KO_MUL) { /* a multiple of da times a multiple of m / da */
            int64_t da = divisor(e->a, m, var), db = divisor(e->b, m, var);
            CudaVecCond save[CG_VEC_MAX_CONDS];
            int nsave = *nc;
            memcpy(save, c, sizeof save);
            if (multiple_of(e->b, m / da, var, c, nc)) return true;
            memcpy(c, save, sizeof save);
            *nc = nsave;
            return multiple_of(e->a, m / db, var, c, nc);
        }
        return false;
    default: return false;
    }
}

bool cg_cuda_vec_index(const KExpr *index, int var, int width, CudaVecCond *conds, int *nconds) {
    if (!index || index->type != KT_I64 || width < 1) return false;
    Af a = affine(index, var);
    if (a.kind != AF_LINEAR || a.sym || a.c != 1) return false;
    CudaVecCond c[CG_VEC_MAX_CONDS];
    int nc = *nconds;
    memcpy(c, conds, sizeof c);
    if (!multiple_of(index, width, var, c, &nc)) return false;
    memcpy(conds, c, sizeof c);
    *nconds = nc;
    return true;
}

typedef struct {
    Graph *g;
    const Kernel *k;
    bool alias;
    int var;
    bool ok;
    bool stored; /* a store was seen (statement order, top level) */
    int nacc, cap;
    CudaVecAccess *acc;
    int *elem; /* per access: element size */
} VecWalk;

static void vec_add(VecWalk *w, const KExpr *load, const KStmt *store, int buf, const KExpr *index) {
    if (w->nacc == w->cap) {
        int cap = w->cap ? 2 * w->cap : 8;
        CudaVecAccess *a = arena_alloc(w->g->arena, sizeof *a * (size_t)cap);
        int *el = arena_alloc(w->g->arena, sizeof *el * (size_t)cap);
        if (w->nacc) {
            memcpy(a, w->acc, sizeof *a * (size_t)w->nacc);
            memcpy(el, w->elem, sizeof *el * (size_t)w->nacc);
        }
        w->acc = a;
        w->elem = el;
        w->cap = cap;
    }
    w->elem[w->nacc] = cg_cuda_vec_elem(w->k->bufs[buf].dtype);
    w->acc[w->nacc] = (CudaVecAccess){load, store, buf, index, 0};
    w->nacc++;
}

/* Loads of e: `uncond` when e is evaluated for every point. */
static void vec_loads(VecWalk *w, const KExpr *e, bool uncond) {
    if (!e || !w->ok) return;
    if (e->kind == KE_LOAD) {
        if (w->alias && w->stored) w->ok = false; /* in place: it could read a store of this point */
        if (mentions_var(e->a, w->var)) {
            Af a = affine(e->a, w->var);
            if (a.kind != AF_LINEAR || a.sym || a.c != 1)
                w->ok = false; /* strides along the row */
            else if (uncond && e->id >= 0 && e->id < w->k->nbufs && cg_cuda_vec_elem(w->k->bufs[e->id].dtype))
                vec_add(w, e, NULL, e->id, e->a);
        }
        vec_loads(w, e->a, uncond);
        return;
    }
    bool rest = uncond;
    if (e->kind == KE_SELECT || (e->kind == KE_BIN && (e->op == KO_AND || e->op == KO_OR))) rest = false;
    vec_loads(w, e->a, uncond);
    vec_loads(w, e->b, rest);
    vec_loads(w, e->c, rest);
}

static void vec_block(VecWalk *w, const KStmt *s, bool top) {
    for (; s && w->ok; s = s->next) {
        const KExpr *es[MAX_EXPRS];
        int n = stmt_exprs(s, es);
        for (int i = 0; i < n; i++)
            vec_loads(w, es[i], top);
        switch (s->kind) {
        case KS_STORE: {
            const KBuf *b = s->id >= 0 && s->id < w->k->nbufs ? &w->k->bufs[s->id] : NULL;
            Af a = affine(s->index, w->var);
            if (!top || !b || !cg_cuda_vec_elem(b->dtype) || a.kind != AF_LINEAR || a.sym || a.c != 1) {
                w->ok = false;
                break;
            }
            for (int i = 0; i < w->nacc; i++)
                if (w->acc[i].store && w->acc[i].buf == s->id) w->ok = false; /* stored twice */
            vec_add(w, NULL, s, s->id, s->index);
            w->stored = true;
            break;
        }
        case KS_IF: vec_block(w, s->body, false); break;
        case KS_FOR: w->ok = false; break;
        case KS_SET:
        case KS_TRAP: break;
        }
    }
}

static bool same_expr(const KExpr *a, const KExpr *b) {
    if (a == b) return true;
    if (!a || !b || a->kind != b->kind || a->type != b->type || a->op != b->op || a->id != b->id ||
        a->dt != b->dt)
        return false;
    if (a->kind == KE_CONST && (a->type == KT_F32 ? memcmp(&a->f, &b->f, sizeof a->f) != 0 : a->i != b->i))
        return false;
    return same_expr(a->a, b->a) && same_expr(a->b, b->b) && same_expr(a->c, b->c);
}

/* Keeps the accesses whose index is a vector index for `width` (all stores
 * must be); false when a store is not.  Fills the plan's conditions. */
static bool vec_select(VecWalk *w, int width, CudaVecPlan *p) {
    p->nconds = 0;
    p->nacc = 0;
    for (int i = 0; i < w->nacc; i++) {
        const CudaVecAccess *a = &w->acc[i];
        if (cg_cuda_vec_index(a->index, w->var, width, p->conds, &p->nconds)) {
            p->acc[p->nacc++] = *a;
        } else if (a->store) {
            return false;
        }
    }
    return true;
}

void cg_cuda_vec_plan(Graph *g, const Kernel *k, bool alias, CudaVecPlan *plan) {
    *plan = (CudaVecPlan){0};
    if (k->npar < 1 || block_has_loop(k->body) || block_loads_written(k, k->body)) return;
    for (int i = 0; i < k->npar; i++)
        for (int v = 0; v < k->nvars; v++)
            if (mentions_var(k->par_extent[i], v)) return;
    VecWalk w = {.g = g, .k = k, .alias = alias, .var = k->npar - 1, .ok = true};
    vec_block(&w, k->body, true);
    if (!w.ok || !w.stored) return;
    CudaVecPlan p = {.var = w.var, .acc = arena_alloc(g->arena, sizeof(CudaVecAccess) * (size_t)w.nacc)};
    /* 8 points a thread when every access is to 2-byte elements and all of them allow it */
    bool halves = true;
    for (int i = 0; i < w.nacc; i++)
        if (w.elem[i] != 2) halves = false;
    if (halves && vec_select(&w, 8, &p) && p.nacc == w.nacc) {
        p.width = 8;
    } else if (vec_select(&w, 4, &p)) {
        p.width = 4;
    } else {
        return;
    }
    const KExpr *x = k->par_extent[w.var];
    if (x->kind == KE_CONST && x->i < p.width) return; /* not one whole vector */
    p.whole_rows = x->kind == KE_CONST && x->i % p.width == 0;
    for (int i = 0; i < p.nconds; i++)
        if (x->kind == KE_DIM && p.conds[i].sym == x->id && p.conds[i].mod % p.width == 0)
            p.whole_rows = true;
    for (int i = 0; i < p.nacc; i++) {
        p.acc[i].owner = i;
        for (int j = 0; j < i; j++)
            if (p.acc[j].load && p.acc[i].load && p.acc[j].buf == p.acc[i].buf &&
                same_expr(p.acc[j].index, p.acc[i].index)) {
                p.acc[i].owner = j;
                break;
            }
    }
    p.ok = true;
    *plan = p;
}

int cg_cuda_vec_find(const CudaVecPlan *plan, const KExpr *e, const KStmt *s) {
    for (int i = 0; i < plan->nacc; i++)
        if ((e && plan->acc[i].load == e) || (s && plan->acc[i].store == s)) return i;
    return -1;
}


/* ---- library GEMMs ---------------------------------------------------------------- */

static bool any_var(const KExpr *e) {
    if (!e) return false;
    if (e->kind == KE_VAR) return true;
    return any_var(e->a) || any_var(e->b) || any_var(e->c);
}

/* i64 evaluation with variables (vars NULL: none may occur). */
static bool eval_i64(const KExpr *e, const int64_t *vars, const int64_t *syms, int64_t *out) {
    if (!e || e->type != KT_I64) return false;
    int64_t a, b;
    switch (e->kind) {
    case KE_CONST: *out = e->i; return true;
    case KE_DIM: *out = syms[e->id]; return true;
    case KE_VAR:
        if (!vars) return false;
        *out = vars[e->id];
        return true;
    case KE_BIN:
        if (!eval_i64(e->a, vars, syms, &a) || !eval_i64(e->b, vars, syms, &b)) return false;
        switch (e->op) {
        case KO_ADD: *out = (int64_t)((uint64_t)a + (uint64_t)b); return true;
        case KO_SUB: *out = (int64_t)((uint64_t)a - (uint64_t)b); return true;
        case KO_MUL: *out = (int64_t)((uint64_t)a * (uint64_t)b); return true;
        case KO_DIV:
            if (b == 0 || (a == INT64_MIN && b == -1)) return false;
            *out = a / b;
            return true;
        case KO_MOD:
            if (b == 0 || (a == INT64_MIN && b == -1)) return false;
            *out = a % b;
            return true;
        case KO_MAX: *out = a > b ? a : b; return true;
        case KO_MIN: *out = a < b ? a : b; return true;
        default: return false;
        }
    default: return false;
    }
}

bool cg_cuda_eval_i64(const KExpr *e, const int64_t *syms, int64_t *out) {
    return eval_i64(e, NULL, syms, out);
}

/* Affine in the variables: + and - of affine terms, * with one variable-free
 * side, variable-free subexpressions of any evaluable form. */
static bool affine_form(const KExpr *e) {
    if (!e || e->type != KT_I64) return false;
    if (!any_var(e)) return true;
    if (e->kind == KE_VAR) return true;
    if (e->kind != KE_BIN) return false;
    if (e->op == KO_ADD || e->op == KO_SUB) return affine_form(e->a) && affine_form(e->b);
    if (e->op == KO_MUL) return (!any_var(e->a) || !any_var(e->b)) && affine_form(e->a) && affine_form(e->b);
    return false;
}

bool cg_cuda_affine(const KExpr *e, int nvars, const int64_t *syms, int64_t *offset, int64_t *coef) {
    if (!affine_form(e) || nvars > 64) return false;
    int64_t vars[64] = {0};
    if (!eval_i64(e, vars, syms, offset)) return false;
    for (int v = 0; v < nvars; v++) {
        int64_t x;
        vars[v] = 1;
        bool ok = eval_i64(e, vars, syms, &x);
        vars[v] = 0;
        if (!ok) return false;
        coef[v] = x - *offset;
    }
    return true;
}

/* Two of k's buffers share memory (an in-place update of the memory plan). */
static bool blas_alias(const Kernel *k) {
    for (int i = 0; i < k->nbufs; i++) {
        const KBuf *a = &k->bufs[i];
        if (a->role != KB_PLANNED || a->node->ann.buffer < 0) continue;
        for (int j = i + 1; j < k->nbufs; j++) {
            const KBuf *b = &k->bufs[j];
            if (b->role == KB_PLANNED && b->node->ann.buffer == a->node->ann.buffer &&
                (a->written || b->written))
                return true;
        }
    }
    return false;
}

static bool blas_dtype(DType t) { return t == DT_F32 || t == DT_F16 || t == DT_BF16; }

/* A plain load of a float buffer (its index mentions no local). */
static bool plain_load(const Kernel *k, const KExpr *e) {
    return e && e->kind == KE_LOAD && e->id >= 0 && e->id < k->nbufs && blas_dtype(k->bufs[e->id].dtype) &&
           k->bufs[e->id].role != KB_DATA && !mentions_any_local(e->a);
}

/* e with every local but `keep` replaced by its value in `vals` (NULL: unset). */
static const KExpr *substitute(Graph *g, const KExpr *e, const KExpr **vals, int keep, bool *ok) {
    if (!e || !*ok) return e;
    if (e->kind == KE_LOCAL && e->id != keep) {
        if (!vals[e->id]) *ok = false;
        return vals[e->id];
    }
    const KExpr *a = substitute(g, e->a, vals, keep, ok), *b = substitute(g, e->b, vals, keep, ok),
                *c = substitute(g, e->c, vals, keep, ok);
    if (a == e->a && b == e->b && c == e->c) return e;
    KExpr *x = arena_alloc(g->arena, sizeof *x);
    *x = *e;
    x->a = (KExpr *)a;
    x->b = (KExpr *)b;
    x->c = (KExpr *)c;
    return x;
}

static bool no(CudaBlasPlan *p, const char *fmt, const char *arg) {
    snprintf(p->why, sizeof p->why, fmt, arg);
    p->ok = false;
    return false;
}

static bool is_acc(const KExpr *e, int acc) { return e && e->kind == KE_LOCAL && e->id == acc; }

/* Strips a rounding to the stored dtype. */
static const KExpr *strip_wrap(const KExpr *e, DType dt) {
    return e && e->kind == KE_UN && e->op == KO_WRAP && e->dt == dt && dt != DT_F32 ? e->a : e;
}

void cg_cuda_blas_plan(Graph *g, const Kernel *k, CudaBlasPlan *p) {
    memset(p, 0, sizeof *p);
    p->bias = -1;
    if (k->load_time) return (void)no(p, "%s", "a load-time kernel");
    bool alias = blas_alias(k);
    CudaGemmPlan gp;
    cg_cuda_gemm_plan(g, k, alias, &gp);
    if (!gp.ok) return (void)no(p, "%s", "not a tiled GEMM");
    if (gp.nprod != 1) return (void)no(p, "%s", "more than one product");
    const CudaGemmProduct *pr = &gp.prod[0];
    if (pr->init->f != 0 || signbit(pr->init->f)) return (void)no(p, "%s", "the sum does not start at +0");
    if (!plain_load(k, pr->a) || !plain_load(k, pr->b))
        return (void)no(p, "%s", "an operand is not a plain load of an f32, f16 or bf16 buffer");
    DType ta = k->bufs[pr->a->id].dtype, tb = k->bufs[pr->b->id].dtype;
    if (ta != tb) return (void)no(p, "%s", "the operands have different dtypes");
    /* the other statements: assignments, then one store, last */
    const KExpr **vals = arena_alloc(g->arena, sizeof *vals * (size_t)(k->nlocals + 1));
    for (int l = 0; l < k->nlocals; l++)
        vals[l] = NULL;
    const KStmt *store = NULL;
    for (const KStmt *s = gp.rest; s; s = s->next) {
        bool ok = true;
        if (s->kind == KS_SET && !store && s->id != pr->acc) {
            vals[s->id] = substitute(g, s->value, vals, pr->acc, &ok);
        } else if (s->kind == KS_STORE && !store) {
            store = s;
        } else {
            return (void)no(p, "%s",
                            "the epilogue is not one store of the product (a second output, a trap)");
        }
        if (!ok) return (void)no(p, "%s", "the epilogue reads a local before it is set");
    }
    if (!store) return (void)no(p, "%s", "the product is not stored");
    bool ok = true;
    const KExpr *v = substitute(g, store->value, vals, pr->acc, &ok);
    if (!ok || mentions_any_local(store->index)) return (void)no(p, "%s", "the store index uses a local");
    DType dt = k->bufs[store->id].dtype;
    if (!blas_dtype(dt) || (dt != ta && dt != DT_F32))
        return (void)no(p, "%s", "the output dtype is neither the operands' nor f32");
    v = strip_wrap(v, dt);
    CudaBlasAct act = CG_BLAS_ACT_NONE;
    if (v && v->kind == KE_UN && v->op == KO_RELU) act = CG_BLAS_ACT_RELU;
    if (v && v->kind == KE_UN && v->op == KO_GELU_TANH) act = CG_BLAS_ACT_GELU_TANH;
    if (v && v->kind == KE_UN && v->op == KO_GELU)
        return (void)no(p, "%s", "gelu (erf) has no cuBLASLt epilogue (its GELU is the tanh approximation)");
    if (act != CG_BLAS_ACT_NONE) v = strip_wrap(v->a, dt);
    const KExpr *bias = NULL;
    if (!is_acc(v, pr->acc)) {
        if (!v || v->kind != KE_BIN || v->op != KO_ADD || v->type != KT_F32)
            return (void)no(p, "%s", "the epilogue is not act(sum [+ bias]) with act relu or gelu_tanh");
        if (is_acc(v->a, pr->acc))
            bias = v->b;
        else if (is_acc(v->b, pr->acc))
            bias = v->a;
        if (!bias || !plain_load(k, bias))
            return (void)no(p, "%s", "the addend of the sum is not a plain load (a bias vector)");
    }
    if (bias) {
        DType bt = k->bufs[bias->id].dtype;
        if (bt != dt && bt != DT_F32)
            return (void)no(p, "%s", "the bias dtype is neither the output's nor f32");
        if (bias->id == store->id) return (void)no(p, "%s", "the bias is the output");
        for (int v = 0; v < k->nvars; v++)
            if (v != gp.n && mentions_var(bias->a, v))
                return (void)no(p, "%s",
                                "the bias is not a vector along the output's contiguous index (cuBLASLt adds "
                                "it along the rows of its column-major D)");
        p->bias = bias->id;
        p->bias_index = bias->a;
        p->bias_dt = bt;
    }
    if (store->id == pr->a->id || store->id == pr->b->id)
        return (void)no(p, "%s", "an operand is the output");
    if (!affine_form(pr->a->a) || !affine_form(pr->b->a) || !affine_form(store->index) ||
        (bias && !affine_form(bias->a)))
        return (void)no(p, "%s", "an index is not affine in the loop variables");
    p->ok = true;
    p->m = gp.m;
    p->n = gp.n;
    p->k = pr->loop->id;
    p->k_extent = pr->loop->extent;
    p->a = pr->a->id;
    p->b = pr->b->id;
    p->d = store->id;
    p->a_index = pr->a->a;
    p->b_index = pr->b->a;
    p->d_index = store->index;
    p->ab = ta;
    p->dt = dt;
    p->act = act;
}
