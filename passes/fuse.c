/* Fusion: partitions the computing nodes into groups a backend lowers to one
 * kernel each, then reorders the graph so every group is contiguous and the
 * groups run in a valid order (the schedule).
 *
 * Requires: a verified graph.  Guarantees: every computing node (not INPUT,
 * PARAM or CONST) is in exactly one group; members of a group are contiguous
 * in g->nodes and keep their relative order; sources come first, in their
 * original order (so the order of inputs and params, which is the model's
 * interface, is unchanged); groups are numbered 0..n-1 in schedule order and
 * each carries a `reason`.  Any previous groups and memory plan are dropped
 * (reordering invalidates a plan; memplan runs after this pass).
 *
 * Why a greedy algorithm: the patterns worth fusing in inference graphs are few
 * and local (GEMM epilogues, normalisations, attention, elementwise chains), so
 * we grow groups from seeds in a fixed priority order, each phase taking only
 * nodes no earlier phase took, and check one legality condition on every join.
 *
 * Data-flow facts computed first: the users of every node (deduplicated),
 * which nodes are graph outputs, each node's element count (a DimId, so
 * "same size" is integer equality), and which nodes are constant (computed
 * from params and constants only).
 *
 * The phases, in priority order:
 *  0. GK_CONSTANT: every weakly connected component of constant nodes (folded
 *     batchnorm weights, transposed params, ...) is one group, computed once
 *     at load time and scheduled first.  A value that depends on a dim (a dim
 *     used as a value, a param or result of symbolic shape) is not constant:
 *     dims are bound per run.  No other group contains a constant
 *     node, so no other group can feed a constant one.  Exception: a cast
 *     that widens i8 (int8 weights from passes/precision.c) read by no
 *     constant node is not constant: it is computed where it is read (a
 *     GEMM prologue), so the weights are stored as i8, not i32.
 *  1. GK_ATTENTION: the `attention` operator, and the written-out pattern
 *     matmul(q, [transpose(k) swapping the last two axes]) followed by any of
 *     scale (mul/div) and mask (add), at most 4 of them, then softmax over the
 *     last axis, then matmul(., v).  Every value inside the pattern has exactly
 *     one user and is not an output (a flash-attention kernel never writes the
 *     scores), and the scale/mask steps keep the scores' type.  Then epilogue.
 *  2. GK_GEMM: each matmul, linear and conv2d in node order.  A linear first
 *     takes the other linears that read the same input with constant weights
 *     (horizontal fusion: fused QKV is one GEMM over concatenated weights).
 *     Prologue (linear/matmul only): elementwise ops and transpose / reshape /
 *     squeeze / unsqueeze (load-index remaps) on a data operand, recursively,
 *     when all their users are in the group and they are not outputs: a
 *     prologue is recomputed per output tile, so it must be cheap and must not
 *     need to be written.  A cast to i8 (a quantisation) is never taken:
 *     it is stored once rather than its producers recomputed per tile.  A
 *     linear's weight operand takes the same prologue when it is an i8
 *     widening cast (int8 weights), and a conv2d takes a cast of its input
 *     (f16/bf16), recomputed per tap.  Then the epilogue.
 *     Epilogue (GEMM and attention): a user of a core or epilogue member that
 *     is elementwise (bias, activation, residual add, cast), batchnorm (a
 *     per-channel affine at inference), or transpose/reshape/squeeze/unsqueeze
 *     (store-index remaps), whose element count equals that of each of its
 *     in-group operands (it never broadcasts a group value up, which would
 *     recompute the GEMM's output), and none of whose operands is a prologue
 *     value (those exist only per input tile).
 *     Phases run GEMMs in node order, so an elementwise op between two GEMMs
 *     becomes the first one's epilogue (computed once) rather than the second
 *     one's prologue (recomputed per tile).
 *  3. GK_REDUCTION: each reduce_*, softmax, layernorm and rmsnorm still free,
 *     in node order.  It takes elementwise / remap producers (of any member)
 *     that have the size of the reduction's input or whose users are all in
 *     the group; if its reduced axes are a suffix of the shape (a row
 *     reduction: one block owns a row) also consumers of the size of the input
 *     row or of a reduction result, and further reductions over the same
 *     input shape and axes (a written-out layernorm is one group).
 *  4. GK_ELEMENTWISE: seeded by the last free elementwise op, backwards, so a
 *     group's domain is the size of its sink.  It takes elementwise / remap
 *     producers (of any size if all their users are in the group and they are
 *     not outputs, broadcast operands being cheap to recompute; otherwise only
 *     of the domain's size) and consumers of the domain's size.
 *  5. Whatever is left: GK_ALIAS (a chain of reshape, squeeze, unsqueeze: no kernel),
 *     GK_LAYOUT (transpose, concat, slice, gather), GK_SINGLE (pools, a
 *     batchnorm not fused, ...), one node each.
 *
 * Legality, checked on every join of a node n into a group G: the groups must
 * stay acyclic when each group is contracted to one vertex (otherwise no
 * schedule runs each group as one kernel).  Since they were acyclic before,
 * a new cycle must go from n through other groups into G or from G through
 * other groups into n.  The first needs a user of n outside G and cannot
 * exist if n already feeds G; the second needs an operand of n outside G and
 * cannot exist if G already feeds n (either would close a cycle that was
 * already there).  What remains possible is looked for by a depth-first
 * search on the contracted graph from n's users (down) or operands (up).  Nothing is ever duplicated: each node is in exactly one group,
 * so expensive work (GEMMs, reductions) runs once, and a value used outside its
 * group is written once and read from memory there.
 *
 * Schedule: Kahn's algorithm on the contracted graph, constant groups first,
 * then by the smallest original position of a member, so the order stays close
 * to the source.  Cost: a join is O(degree of n) when n already touches G
 * (growing a chain, a tree, an epilogue) and O(nodes) at worst (the search),
 * so O(nodes^2) at worst and about linear in practice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ir/assert.h"
#include "passes.h"

typedef enum { R_NONE, R_CORE, R_PRO, R_EPI } Role;

typedef struct {
    GroupKind kind;
    Node **m; /* members, in join order */
    int n;
    size_t cap;
    int minid; /* smallest original position (for the schedule) */
    bool dead; /* rolled back */
} FGroup;

typedef struct {
    Graph *g;
    int nn;
    Node ***users; /* per node id: the distinct nodes that use it */
    int *nusers;
    bool *out;   /* is a graph output */
    bool *konst; /* computed from params and constants only */
    DimId *numel;
    int *grp; /* per node id: internal group index, -1 = none */
    Role *role;
    FGroup **groups;
    int ngroups;
    size_t gcap;
    /* search scratch */
    int *stamp, *gstamp, epoch;
    Node **stack;
    Node **work; /* prologue worklist: each node enters once per operand slot */
} Fuse;

/* ---- helpers ----------------------------------------------------------- */

static bool is_elementwise(const Node *n) { return ir_op_class(n->op) == OPC_ELEMENTWISE; }
static bool is_remap(const Node *n) {
    return n->op == OP_RESHAPE || n->op == OP_TRANSPOSE || n->op == OP_SQUEEZE || n->op == OP_UNSQUEEZE;
}
static bool is_alias(const Node *n) { return n->op == OP_RESHAPE || n->op == OP_SQUEEZE || n->op == OP_UNSQUEEZE; }
static bool is_gemm(const Node *n) { return n->op == OP_MATMUL || n->op == OP_LINEAR || n->op == OP_CONV2D; }
static bool is_reduction(const Node *n) {
    return n->op == OP_REDUCE_SUM || n->op == OP_REDUCE_MEAN || n->op == OP_REDUCE_MAX || n->op == OP_SOFTMAX ||
           n->op == OP_LAYERNORM || n->op == OP_RMSNORM;
}

/* A free node: computing, not constant, in no group yet. */
static bool is_free(const Fuse *f, const Node *n) {
    return n && !ir_is_source(n) && !f->konst[n->id] && f->grp[n->id] < 0;
}
static bool single_use(const Fuse *f, const Node *n) { return f->nusers[n->id] == 1 && !f->out[n->id]; }
static bool users_all_in(const Fuse *f, const Node *n, int gid) {
    if (f->out[n->id]) return false;
    for (int i = 0; i < f->nusers[n->id]; i++)
        if (f->grp[f->users[n->id][i]->id] != gid) return false;
    return true;
}
static bool same_numel(const Fuse *f, const Node *a, const Node *b) { return f->numel[a->id] == f->numel[b->id]; }

/* ---- groups -------------------------------------------------------------- */

static int group_new(Fuse *f, GroupKind kind) {
    FGroup *grp = arena_alloc(f->g->arena, sizeof *grp);
    grp->kind = kind;
    grp->minid = f->nn;
    VEC_PUSH(f->g->arena, f->groups, f->ngroups, f->gcap, grp);
    return f->ngroups - 1;
}

static void group_put(Fuse *f, int gid, Node *n, Role r) {
    FGroup *grp = f->groups[gid];
    DSC_ASSERT(f->grp[n->id] < 0);
    f->grp[n->id] = gid;
    f->role[n->id] = r;
    if (n->id < grp->minid) grp->minid = n->id;
    VEC_PUSH(f->g->arena, grp->m, grp->n, grp->cap, n);
}

/* Undoes a group that was being built (the last one created). */
static void group_drop(Fuse *f, int gid) {
    FGroup *grp = f->groups[gid];
    for (int i = 0; i < grp->n; i++) {
        f->grp[grp->m[i]->id] = -1;
        f->role[grp->m[i]->id] = R_NONE;
    }
    grp->n = 0;
    grp->dead = true;
}

/* Searches the contracted graph from `seeds` (nodes outside group gid),
 * downwards through users or upwards through operands, for a member of gid.
 * Reaching one member of another group reaches the whole group: it is one
 * kernel, so everything any member reads is upstream of all of it and
 * everything any member feeds is downstream. */
static bool reaches(Fuse *f, int gid, Node **seeds, int nseeds, bool down) {
    f->epoch++;
    int sp = 0;
#define VISIT(x)                                                                                                       \
    do {                                                                                                               \
        Node *x_ = (x);                                                                                                \
        if (!x_ || ir_is_source(x_) || f->konst[x_->id] || f->stamp[x_->id] == f->epoch) break;                       \
        if (f->grp[x_->id] == gid) return true;                                                                        \
        f->stamp[x_->id] = f->epoch;                                                                                   \
        f->stack[sp++] = x_;                                                                                           \
    } while (0)
    for (int i = 0; i < nseeds; i++) /* direct edges between n and G are fine */
        if (seeds[i] && f->grp[seeds[i]->id] != gid) VISIT(seeds[i]);
    while (sp > 0) {
        Node *v = f->stack[--sp];
        int h = f->grp[v->id];
        if (h >= 0 && f->gstamp[h] != f->epoch) {
            f->gstamp[h] = f->epoch;
            FGroup *H = f->groups[h];
            for (int j = 0; j < H->n; j++) VISIT(H->m[j]);
        }
        if (down)
            for (int i = 0; i < f->nusers[v->id]; i++) VISIT(f->users[v->id][i]);
        else
            for (int k = 0; k < v->nin; k++) VISIT(v->in[k]);
    }
#undef VISIT
    return false;
}

/* Would joining the free node n to group gid make the contracted graph
 * cyclic?  The graph contracted by the current groups (free nodes on their
 * own) is acyclic, so a new cycle is a path n -> (outside) -> G or a path
 * G -> (outside) -> n.  The first needs a user of n outside G and is
 * impossible if n already feeds G (that would close an old cycle); the
 * second likewise needs an operand of n outside G and is impossible if G
 * already feeds n.  Only a path that remains possible is searched for, from
 * n's side, so growing a group costs in proportion to n's neighbourhood and
 * not to the group's size. */
static bool would_cycle(Fuse *f, int gid, Node *n) {
    bool users_in = true, user_in_g = false, operands_in = true, operand_in_g = false;
    for (int i = 0; i < f->nusers[n->id]; i++) {
        if (f->grp[f->users[n->id][i]->id] == gid)
            user_in_g = true;
        else
            users_in = false;
    }
    for (int k = 0; k < n->nin; k++) {
        Node *o = n->in[k];
        if (!o || ir_is_source(o) || f->konst[o->id]) continue;
        if (f->grp[o->id] == gid)
            operand_in_g = true;
        else
            operands_in = false;
    }
    bool down = !users_in && !operand_in_g; /* n -> outside -> G possible */
    bool up = !operands_in && !user_in_g;   /* G -> outside -> n possible */
    if (down && reaches(f, gid, f->users[n->id], f->nusers[n->id], true)) return true;
    if (up && reaches(f, gid, n->in, n->nin, false)) return true;
    return false;
}

static bool join(Fuse *f, int gid, Node *n, Role r) {
    if (!is_free(f, n) || would_cycle(f, gid, n)) return false;
    group_put(f, gid, n, r);
    return true;
}

/* ---- phase 0: constants ---------------------------------------------------- */

static int uf_find(int *parent, int x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
}

static void phase_constant(Fuse *f) {
    Graph *g = f->g;
    int *parent = arena_alloc(g->arena, sizeof(int) * (size_t)f->nn);
    int *gid_of_root = arena_alloc(g->arena, sizeof(int) * (size_t)f->nn);
    for (int i = 0; i < f->nn; i++) parent[i] = i, gid_of_root[i] = -1;
    for (int i = 0; i < f->nn; i++) {
        Node *n = g->nodes[i];
        if (!f->konst[i]) continue;
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] && f->konst[n->in[k]->id]) {
                int a = uf_find(parent, i), b = uf_find(parent, n->in[k]->id);
                if (a != b) parent[a < b ? b : a] = a < b ? a : b;
            }
    }
    for (int i = 0; i < f->nn; i++) {
        if (!f->konst[i]) continue;
        int r = uf_find(parent, i);
        if (gid_of_root[r] < 0) gid_of_root[r] = group_new(f, GK_CONSTANT);
        group_put(f, gid_of_root[r], g->nodes[i], R_CORE);
    }
}

/* ---- epilogues (GEMM and attention) ------------------------------------------ */

static bool epilogue_ok(const Fuse *f, int gid, const Node *u) {
    if (!is_elementwise(u) && !is_remap(u) && u->op != OP_BATCHNORM) return false;
    if (u->op == OP_BATCHNORM && f->grp[u->in[0]->id] != gid) return false; /* only x may come from the group */
    for (int k = 0; k < u->nin; k++) {
        const Node *o = u->in[k];
        if (!o || f->grp[o->id] != gid) continue;
        if (f->role[o->id] == R_PRO || !same_numel(f, u, o)) return false;
    }
    return true;
}

static void grow_epilogue(Fuse *f, int gid) {
    FGroup *G = f->groups[gid];
    for (bool changed = true; changed;) {
        changed = false;
        for (int j = 0; j < G->n; j++) {
            Node *m = G->m[j];
            if (f->role[m->id] == R_PRO) continue;
            for (int i = 0; i < f->nusers[m->id]; i++) {
                Node *u = f->users[m->id][i];
                if (is_free(f, u) && epilogue_ok(f, gid, u) && join(f, gid, u, R_EPI)) changed = true;
            }
        }
    }
}

/* ---- phase 1: attention -------------------------------------------------- */

/* From the softmax input back to the first matmul through at most 4 scale /
 * mask steps, each with one user; the steps go into chain[] (softmax side
 * first).  Returns the matmul or NULL. */
static Node *scores_chain(const Fuse *f, Node *x, Node **chain, int *nchain, int depth) {
    if (!is_free(f, x) || !single_use(f, x)) return NULL;
    if (x->op == OP_MATMUL) return x;
    if (depth >= 4 || (x->op != OP_ADD && x->op != OP_MUL && x->op != OP_DIV)) return NULL;
    int nops = x->op == OP_DIV ? 1 : 2;
    for (int i = 0; i < nops; i++) {
        int save = *nchain;
        chain[(*nchain)++] = x;
        Node *m = scores_chain(f, x->in[i], chain, nchain, depth + 1);
        if (m && ir_type_eq(&m->type, &x->type)) return m;
        *nchain = save;
    }
    return NULL;
}

static bool swaps_last_two(const Node *t) {
    const Attr *p = ir_attr(t, "perm");
    int r = t->type.rank;
    if (!p || p->n != r || r < 2) return false;
    for (int i = 0; i < r - 2; i++)
        if (p->ints[i] != i) return false;
    return p->ints[r - 2] == r - 1 && p->ints[r - 1] == r - 2;
}

static void try_attention_pattern(Fuse *f, Node *sm) {
    if (!is_free(f, sm) || !single_use(f, sm)) return;
    if (ir_norm_axis(ir_attr_int(sm, "axis", -1), sm->type.rank) != sm->type.rank - 1) return;
    Node *m2 = f->users[sm->id][0];
    if (m2->op != OP_MATMUL || m2->in[0] != sm || m2->in[1] == sm || !is_free(f, m2)) return;
    Node *chain[4];
    int nchain = 0;
    Node *m1 = scores_chain(f, sm->in[0], chain, &nchain, 0);
    if (!m1) return;
    Node *kt = m1->in[1];
    bool take_kt = kt->op == OP_TRANSPOSE && is_free(f, kt) && single_use(f, kt) && swaps_last_two(kt);
    int gid = group_new(f, GK_ATTENTION);
    bool ok = join(f, gid, m1, R_CORE);
    if (ok && take_kt) ok = join(f, gid, kt, R_PRO);
    for (int i = nchain - 1; ok && i >= 0; i--) ok = join(f, gid, chain[i], R_CORE);
    if (ok) ok = join(f, gid, sm, R_CORE);
    if (ok) ok = join(f, gid, m2, R_CORE);
    if (!ok) {
        group_drop(f, gid);
        return;
    }
    grow_epilogue(f, gid);
}

static void phase_attention(Fuse *f) {
    for (int i = 0; i < f->nn; i++) {
        Node *n = f->g->nodes[i];
        if (n->op == OP_ATTENTION && is_free(f, n)) {
            int gid = group_new(f, GK_ATTENTION);
            group_put(f, gid, n, R_CORE);
            grow_epilogue(f, gid);
        } else if (n->op == OP_SOFTMAX) {
            try_attention_pattern(f, n);
        }
    }
}

/* ---- phase 2: GEMM ----------------------------------------------------------- */

/* A cast that widens i8 storage (int8 weights, passes/precision.c): computed
 * where it is read, so the value stored stays i8. */
static bool widens_i8(const Node *n) {
    return n->op == OP_CAST && n->in[0]->type.dtype == DT_I8 && n->type.dtype != DT_I8;
}

static bool weight_const(const Fuse *f, const Node *w) {
    return w->op == OP_PARAM || f->konst[w->id] || (widens_i8(w) && f->konst[w->in[0]->id]);
}

/* A cast to i8 (a quantisation) is not taken into a prologue: storing the i8
 * value once is cheaper than recomputing its producers for every tile. */
static bool prologue_ok(const Fuse *f, int gid, const Node *p) {
    if (p && p->op == OP_CAST && p->type.dtype == DT_I8) return false;
    return is_free(f, p) && (is_elementwise(p) || is_remap(p)) && users_all_in(f, p, gid);
}

/* Takes `x` (a data operand of a core node) and, transitively, the producers
 * of what it took as prologue; `work` has room for every node. */
static void grow_prologue(Fuse *f, int gid, Node *x, Node **work) {
    int nw = 0;
    work[nw++] = x;
    while (nw > 0) {
        Node *p = work[--nw];
        if (!p || !prologue_ok(f, gid, p) || !join(f, gid, p, R_PRO)) continue;
        for (int k = 0; k < p->nin; k++) work[nw++] = p->in[k];
    }
}

static void form_gemm(Fuse *f, Node *seed) {
    int gid = group_new(f, GK_GEMM);
    group_put(f, gid, seed, R_CORE);
    FGroup *G = f->groups[gid];
    if (seed->op == OP_LINEAR && weight_const(f, seed->in[1])) {
        Node *x = seed->in[0];
        for (int i = 0; i < f->nusers[x->id]; i++) {
            Node *u = f->users[x->id][i];
            if (u == seed || u->op != OP_LINEAR || u->in[0] != x || !weight_const(f, u->in[1])) continue;
            if (u->in[1]->type.dtype != seed->in[1]->type.dtype) continue;
            join(f, gid, u, R_CORE);
        }
    }
    int ncore = G->n;
    for (int j = 0; j < ncore; j++) {
        Node *c = G->m[j];
        if (c->op == OP_LINEAR) {
            grow_prologue(f, gid, c->in[0], f->work);
            if (widens_i8(c->in[1])) grow_prologue(f, gid, c->in[1], f->work);
        }
        /* a convolution takes the cast of its input (passes/precision.c), recomputed per tap */
        if (c->op == OP_CONV2D && c->in[0]->op == OP_CAST && prologue_ok(f, gid, c->in[0]))
            join(f, gid, c->in[0], R_PRO);
        if (c->op == OP_MATMUL) {
            grow_prologue(f, gid, c->in[0], f->work);
            grow_prologue(f, gid, c->in[1], f->work);
        }
    }
    grow_epilogue(f, gid);
}

static void phase_gemm(Fuse *f) {
    for (int i = 0; i < f->nn; i++) {
        Node *n = f->g->nodes[i];
        if (is_gemm(n) && is_free(f, n)) form_gemm(f, n);
    }
}

/* ---- phase 3: reductions -------------------------------------------------- */

/* Bit mask of the axes a reduction or normalisation reduces over. */
static uint32_t reduced_axes(const Node *n) {
    int r = n->in[0]->type.rank;
    uint32_t mask = 0;
    if (n->op == OP_SOFTMAX || n->op == OP_LAYERNORM || n->op == OP_RMSNORM) {
        int a = ir_norm_axis(ir_attr_int(n, "axis", -1), r);
        if (a < 0) return 0;
        if (n->op == OP_SOFTMAX) return 1u << a;
        for (int i = a; i < r; i++) mask |= 1u << i;
        return mask;
    }
    const Attr *ax = ir_attr(n, "axes");
    if (!ax) return r ? (1u << r) - 1 : 0;
    for (int i = 0; i < ax->n; i++) {
        int a = ir_norm_axis(ax->ints[i], r);
        if (a >= 0) mask |= 1u << a;
    }
    return mask;
}

static bool same_shape(const Type *a, const Type *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i]) return false;
    return true;
}

static void form_reduction(Fuse *f, Node *seed) {
    int gid = group_new(f, GK_REDUCTION);
    group_put(f, gid, seed, R_CORE);
    FGroup *G = f->groups[gid];
    const Type *row = &seed->in[0]->type;
    DimId row_numel = f->numel[seed->in[0]->id];
    uint32_t axes = reduced_axes(seed);
    /* a row reduction: the reduced axes are a suffix of the shape */
    uint32_t all = row->rank ? (1u << row->rank) - 1 : 0;
    bool rowwise = row->rank == 0 || (axes && axes == (all & ~((axes & -axes) - 1)));
    for (bool changed = true; changed;) {
        changed = false;
        for (int j = 0; j < G->n; j++) {
            Node *m = G->m[j];
            for (int k = 0; k < m->nin; k++) {
                Node *p = m->in[k];
                if (!is_free(f, p) || !(is_elementwise(p) || is_remap(p))) continue;
                if (f->numel[p->id] != row_numel && !users_all_in(f, p, gid)) continue;
                if (join(f, gid, p, R_PRO)) changed = true;
            }
            if (!rowwise) continue;
            for (int i = 0; i < f->nusers[m->id]; i++) {
                Node *u = f->users[m->id][i];
                if (!is_free(f, u)) continue;
                if (is_reduction(u)) {
                    if (!same_shape(&u->in[0]->type, row) || reduced_axes(u) != axes) continue;
                    if (join(f, gid, u, R_CORE)) changed = true;
                    continue;
                }
                if (!is_elementwise(u) && !is_remap(u)) continue;
                bool size_ok = f->numel[u->id] == row_numel;
                for (int c = 0; c < G->n && !size_ok; c++)
                    size_ok = f->role[G->m[c]->id] == R_CORE && same_numel(f, u, G->m[c]);
                if (size_ok && join(f, gid, u, R_EPI)) changed = true;
            }
        }
    }
}

static void phase_reduction(Fuse *f) {
    for (int i = 0; i < f->nn; i++) {
        Node *n = f->g->nodes[i];
        if (is_reduction(n) && is_free(f, n)) form_reduction(f, n);
    }
}

/* ---- phase 4: elementwise --------------------------------------------------- */

static void form_elementwise(Fuse *f, Node *seed) {
    int gid = group_new(f, GK_ELEMENTWISE);
    group_put(f, gid, seed, R_CORE);
    FGroup *G = f->groups[gid];
    DimId domain = f->numel[seed->id];
    for (bool changed = true; changed;) {
        changed = false;
        for (int j = 0; j < G->n; j++) {
            Node *m = G->m[j];
            for (int k = 0; k < m->nin; k++) {
                Node *p = m->in[k];
                if (!is_free(f, p) || !(is_elementwise(p) || is_remap(p))) continue;
                if (f->numel[p->id] != domain && !users_all_in(f, p, gid)) continue;
                if (join(f, gid, p, R_CORE)) changed = true;
            }
            for (int i = 0; i < f->nusers[m->id]; i++) {
                Node *u = f->users[m->id][i];
                if (!is_free(f, u) || !(is_elementwise(u) || is_remap(u)) || f->numel[u->id] != domain) continue;
                if (join(f, gid, u, R_CORE)) changed = true;
            }
        }
    }
}

static void phase_elementwise(Fuse *f) {
    for (int i = f->nn - 1; i >= 0; i--) {
        Node *n = f->g->nodes[i];
        if (is_elementwise(n) && is_free(f, n)) form_elementwise(f, n);
    }
}

/* ---- phase 5: the rest ------------------------------------------------------ */

static void phase_rest(Fuse *f) {
    for (int i = 0; i < f->nn; i++) {
        Node *n = f->g->nodes[i];
        if (!is_free(f, n)) continue;
        /* a chain of aliases is one alias */
        Node *x = is_alias(n) ? n->in[0] : NULL;
        if (x && f->grp[x->id] >= 0 && f->groups[f->grp[x->id]]->kind == GK_ALIAS &&
            join(f, f->grp[x->id], n, R_CORE))
            continue;
        GroupKind k = is_alias(n) ? GK_ALIAS : ir_op_class(n->op) == OPC_LAYOUT ? GK_LAYOUT : GK_SINGLE;
        group_put(f, group_new(f, k), n, R_CORE);
    }
}

/* ---- reasons ------------------------------------------------------------------ */

typedef struct {
    char buf[512];
    size_t len;
} Str;

static void str_add(Str *s, const char *fmt, const char *arg) {
    if (s->len >= sizeof s->buf) return;
    int w = snprintf(s->buf + s->len, sizeof s->buf - s->len, fmt, arg);
    if (w > 0) s->len += (size_t)w;
    if (s->len >= sizeof s->buf) s->len = sizeof s->buf - 1;
}

/* The op names of the members with role r (R_NONE: all), in node order. */
static void op_list(Str *s, Node **m, int n, const Fuse *f, Role r) {
    int shown = 0, total = 0;
    for (int i = 0; i < n; i++) {
        if (r != R_NONE && f->role[m[i]->id] != r) continue;
        total++;
        if (shown < 8) str_add(s, shown++ ? ", %s" : "%s", ir_op_name(m[i]->op));
    }
    if (total > shown) {
        char more[32];
        snprintf(more, sizeof more, "%d", total - shown);
        str_add(s, " and %s more", more);
    }
}

static int count_role(Node **m, int n, const Fuse *f, Role r) {
    int c = 0;
    for (int i = 0; i < n; i++) c += f->role[m[i]->id] == r;
    return c;
}

static const char *reason(const Fuse *f, Node **m, int n, GroupKind kind) {
    Str s = {{0}, 0};
    int npro = count_role(m, n, f, R_PRO), nepi = count_role(m, n, f, R_EPI), ncore = count_role(m, n, f, R_CORE);
    switch (kind) {
    case GK_GEMM: {
        Node *first = NULL;
        for (int i = 0; i < n && !first; i++)
            if (f->role[m[i]->id] == R_CORE) first = m[i];
        if (ncore > 1) {
            char cnt[16];
            snprintf(cnt, sizeof cnt, "%d", ncore);
            str_add(&s, "gemm: %s linears", cnt);
            if (first->in[0]->name)
                str_add(&s, " sharing input %s (horizontal fusion)", first->in[0]->name);
            else
                str_add(&s, " sharing one input (horizontal fusion)", "");
        } else {
            str_add(&s, "gemm %s", ir_op_name(first->op));
        }
        if (npro) str_add(&s, " with prologue ", ""), op_list(&s, m, n, f, R_PRO);
        if (nepi) str_add(&s, npro ? " and epilogue " : " with epilogue ", ""), op_list(&s, m, n, f, R_EPI);
        break;
    }
    case GK_ATTENTION:
        if (ncore == 1 && m[0]->op == OP_ATTENTION) {
            str_add(&s, "attention operator", "");
        } else {
            str_add(&s, "attention: ", "");
            for (int i = 0, k = 0; i < n; i++)
                if (f->role[m[i]->id] != R_EPI) str_add(&s, k++ ? ", %s" : "%s", ir_op_name(m[i]->op));
        }
        if (nepi) str_add(&s, " with epilogue ", ""), op_list(&s, m, n, f, R_EPI);
        break;
    case GK_REDUCTION:
        op_list(&s, m, n, f, R_CORE);
        if (npro) str_add(&s, " with producers ", ""), op_list(&s, m, n, f, R_PRO);
        if (nepi) str_add(&s, npro ? " and consumers " : " with consumers ", ""), op_list(&s, m, n, f, R_EPI);
        break;
    case GK_ELEMENTWISE:
        str_add(&s, n > 1 ? "elementwise: " : "elementwise ", "");
        op_list(&s, m, n, f, R_NONE);
        break;
    case GK_CONSTANT:
        str_add(&s, "load-time constant (params and constants only): ", "");
        op_list(&s, m, n, f, R_NONE);
        break;
    case GK_ALIAS:
        op_list(&s, m, n, f, R_NONE);
        str_add(&s, " only rename%s memory (no kernel)", n > 1 ? "" : "s");
        break;
    case GK_LAYOUT: str_add(&s, "%s: data movement on its own", ir_op_name(m[0]->op)); break;
    default: str_add(&s, "%s on its own", ir_op_name(m[0]->op)); break;
    }
    return arena_strdup(f->g->arena, s.buf);
}

/* ---- schedule and emit --------------------------------------------------------- */

typedef struct {
    int *h;
    int n;
    const Fuse *f;
} Heap;

static bool heap_less(const Heap *hp, int a, int b) {
    const FGroup *A = hp->f->groups[a], *B = hp->f->groups[b];
    bool ca = A->kind == GK_CONSTANT, cb = B->kind == GK_CONSTANT;
    if (ca != cb) return ca;
    return A->minid < B->minid;
}
static void heap_push(Heap *hp, int x) {
    int i = hp->n++;
    hp->h[i] = x;
    while (i > 0 && heap_less(hp, hp->h[i], hp->h[(i - 1) / 2])) {
        int p = (i - 1) / 2, t = hp->h[p];
        hp->h[p] = hp->h[i], hp->h[i] = t, i = p;
    }
}
static int heap_pop(Heap *hp) {
    int top = hp->h[0];
    hp->h[0] = hp->h[--hp->n];
    for (int i = 0;;) {
        int l = 2 * i + 1, r = l + 1, s = i;
        if (l < hp->n && heap_less(hp, hp->h[l], hp->h[s])) s = l;
        if (r < hp->n && heap_less(hp, hp->h[r], hp->h[s])) s = r;
        if (s == i) break;
        int t = hp->h[s];
        hp->h[s] = hp->h[i], hp->h[i] = t, i = s;
    }
    return top;
}

static int cmp_node_id(const void *a, const void *b) {
    const Node *x = *(Node *const *)a, *y = *(Node *const *)b;
    return (x->id > y->id) - (x->id < y->id);
}

static bool schedule_and_emit(Fuse *f, Diag *d) {
    Graph *g = f->g;
    Arena *a = g->arena;
    int ng = f->ngroups;
    int *indeg = arena_alloc(a, sizeof(int) * (size_t)(ng ? ng : 1));
    for (int i = 0; i < f->nn; i++) {
        Node *n = g->nodes[i];
        if (f->grp[i] < 0) continue;
        for (int k = 0; k < n->nin; k++) {
            Node *o = n->in[k];
            if (o && f->grp[o->id] >= 0 && f->grp[o->id] != f->grp[i]) indeg[f->grp[i]]++;
        }
    }
    Heap hp = {arena_alloc(a, sizeof(int) * (size_t)(ng ? ng : 1)), 0, f};
    int nlive = 0;
    for (int k = 0; k < ng; k++) {
        if (f->groups[k]->dead) continue;
        nlive++;
        if (indeg[k] == 0) heap_push(&hp, k);
        qsort(f->groups[k]->m, (size_t)f->groups[k]->n, sizeof(Node *), cmp_node_id);
    }
    int *order = arena_alloc(a, sizeof(int) * (size_t)(ng ? ng : 1));
    int norder = 0;
    while (hp.n > 0) {
        int k = heap_pop(&hp);
        order[norder++] = k;
        FGroup *G = f->groups[k];
        for (int j = 0; j < G->n; j++) {
            Node *m = G->m[j];
            for (int i = 0; i < f->nusers[m->id]; i++) {
                Node *u = f->users[m->id][i];
                int h = f->grp[u->id];
                if (h == k) continue;
                for (int q = 0; q < u->nin; q++)
                    if (u->in[q] == m && --indeg[h] == 0) heap_push(&hp, h);
            }
        }
    }
    if (norder != nlive) {
        diag_error(d, loc_file(g->file), "internal error: fuse: the fusion groups form a cycle");
        return false;
    }
    /* New node order: sources, then the groups in schedule order. */
    Node **nodes = arena_alloc(a, sizeof(Node *) * (size_t)f->nn);
    int m = 0;
    for (int i = 0; i < f->nn; i++)
        if (ir_is_source(g->nodes[i])) nodes[m++] = g->nodes[i];
    const char **reasons = arena_alloc(a, sizeof(char *) * (size_t)(ng ? ng : 1));
    for (int j = 0; j < norder; j++) {
        FGroup *G = f->groups[order[j]];
        reasons[j] = reason(f, G->m, G->n, G->kind);
        for (int i = 0; i < G->n; i++) nodes[m++] = G->m[i];
    }
    DSC_ASSERT(m == f->nn);
    memcpy(g->nodes, nodes, sizeof(Node *) * (size_t)f->nn);
    ir_renumber(g);
    for (int j = 0; j < norder; j++) {
        FGroup *G = f->groups[order[j]];
        Group *grp = ir_group_create(g, G->kind, reasons[j]);
        for (int i = 0; i < G->n; i++) ir_group_add(g, grp, G->m[i]);
    }
    return true;
}

static bool fixed_shape(const Graph *g, const Type *t) {
    int64_t v;
    for (int i = 0; i < t->rank; i++)
        if (!dim_is_const(g->dims, t->dim[i], &v)) return false;
    return true;
}

/* ---- entry ----------------------------------------------------------------------- */

bool pass_fuse(Graph *g, Diag *d) {
    ir_groups_clear(g);
    ir_buffers_clear(g);
    if (g->nnodes == 0) return true;
    Arena *a = g->arena;
    Fuse f = {.g = g, .nn = g->nnodes};
    size_t nn = (size_t)g->nnodes;
    f.users = arena_alloc(a, sizeof(Node **) * nn);
    f.nusers = arena_alloc(a, sizeof(int) * nn);
    f.out = arena_alloc(a, sizeof(bool) * nn);
    f.konst = arena_alloc(a, sizeof(bool) * nn);
    f.numel = arena_alloc(a, sizeof(DimId) * nn);
    f.grp = arena_alloc(a, sizeof(int) * nn);
    f.role = arena_alloc(a, sizeof(Role) * nn);
    f.stamp = arena_alloc(a, sizeof(int) * nn);
    f.stack = arena_alloc(a, sizeof(Node *) * nn);
    size_t nslots = 1;
    for (int i = 0; i < g->nnodes; i++) nslots += (size_t)g->nodes[i]->nin;
    f.work = arena_alloc(a, sizeof(Node *) * nslots);
    f.gstamp = arena_alloc(a, sizeof(int) * (2 * nn + 1)); /* groups: one per node plus dropped attempts */
    /* users (distinct), outputs, sizes, constness */
    int *cap = arena_alloc(a, sizeof(int) * nn);
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        DSC_ASSERT(n->id == i);
        f.grp[i] = -1;
        f.numel[i] = ir_type_numel(g, &n->type);
        for (int k = 0; k < n->nin; k++) {
            if (!n->in[k]) continue;
            bool dup = false;
            for (int q = 0; q < k && !dup; q++) dup = n->in[q] == n->in[k];
            if (!dup) cap[n->in[k]->id]++;
        }
        /* Constant: known when the weights load, so no dim (bound per run)
         * may enter, neither as a value nor through a shape. */
        bool kn = !ir_is_source(n) && fixed_shape(g, &n->type);
        for (int k = 0; k < n->nin && kn; k++) {
            const Node *o = n->in[k];
            if (!o) continue;
            kn = (o->op == OP_PARAM && fixed_shape(g, &o->type)) || (o->op == OP_CONST && o->dval == DIM_INVALID) ||
                 f.konst[o->id];
        }
        f.konst[i] = kn;
    }
    for (int i = 0; i < g->nnodes; i++) f.users[i] = arena_alloc(a, sizeof(Node *) * (size_t)(cap[i] ? cap[i] : 1));
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        for (int k = 0; k < n->nin; k++) {
            if (!n->in[k]) continue;
            bool dup = false;
            for (int q = 0; q < k && !dup; q++) dup = n->in[q] == n->in[k];
            if (!dup) f.users[n->in[k]->id][f.nusers[n->in[k]->id]++] = n;
        }
    }
    for (int i = 0; i < g->noutputs; i++) f.out[g->outputs[i].node->id] = true;
    /* i8 storage widened where it is read: not constant when no constant reads it */
    for (int i = 0; i < g->nnodes; i++) {
        if (!f.konst[i] || !widens_i8(g->nodes[i]) || f.out[i]) continue;
        bool konst_user = false;
        for (int u = 0; u < f.nusers[i]; u++)
            konst_user |= f.konst[f.users[i][u]->id];
        if (!konst_user) f.konst[i] = false;
    }

    phase_constant(&f);
    phase_attention(&f);
    phase_gemm(&f);
    phase_reduction(&f);
    phase_elementwise(&f);
    phase_rest(&f);
    return schedule_and_emit(&f, d);
}
