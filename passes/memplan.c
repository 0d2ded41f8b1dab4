/* Memory planning: which buffer each value that lives in memory occupies.
 *
 * Requires: a verified graph, fused (passes/fuse.c) or not.  With fusion
 * groups the schedule is the group order (group id = position); without any,
 * every computing node is its own group and runs in node order.
 * Guarantees: every value that must live in memory between kernels has
 * n->ann.buffer >= 0; values whose live ranges overlap never share a buffer
 * (except the in-place case below); g->buffers is exactly what
 * ir_buffers_rebuild computes from the nodes' buffer ids, so a dump with
 * @buffer hints compiles back to the same plan.  Node order is unchanged.
 *
 * What gets a buffer.  A value touches memory when its group writes it for
 * somebody else: it is read by a node of another group, or it is a graph
 * output.  Values internal to a group stay in registers or shared memory and
 * get none.  (A value nobody reads at all -- only with dce disabled -- gets a
 * scratch buffer live at its own group, so its kernel has somewhere to write.)
 * Not planned, because they have their own storage for the whole run: graph
 * inputs (the caller's), params and constants (the weights), and the values
 * of GK_CONSTANT groups (computed once when the weights load, kept with them).
 * Graph outputs ARE planned, in buffers live until the end of the run: the
 * executor keeps every activation in one arena and the caller reads the
 * outputs from there after the last kernel, so nothing may overwrite them;
 * counting them also keeps the planned peak comparable with the naive sum,
 * which includes them.
 *
 * Views.  A GK_ALIAS group (reshape, squeeze, unsqueeze) launches nothing:
 * its value is its operand's memory under another shape.  It takes the
 * operand's buffer id, and its readers extend that buffer's live range.  A
 * view of unplanned storage (an input, a param, a constant value) is
 * unplanned too.  Without fusion, reshape/squeeze/unsqueeze nodes are views
 * the same way.
 *
 * Live ranges.  A planned value (the "root" of its views) is live from the
 * position of the group that writes it to the last position of a group that
 * reads it or any of its views, or to the end of the run for a graph output.
 * Two values may share a buffer only if one's range ends strictly before the
 * other's begins: a kernel that reads one value and writes another needs both
 * at once.
 *
 * In-place updates: the one exception.  An elementwise group (every member an
 * elementwise op, or a reshape/squeeze/unsqueeze, which keep the linear index)
 * may write an output into the buffer of an external operand value whose live
 * range ends at that group, when the two have the same size (equal element
 * count and element size as dim expressions, so for every binding).  Element
 * i of such an output depends on element i of the operand only: elementwise
 * ops never shrink a shape, so every value derived from the operand has its
 * element count, none is broadcast, and a kernel thread reads index i before
 * writing it.  Nothing marks the update but the shared buffer id.  Outputs,
 * whose ranges never end, are never overwritten this way; an output may itself
 * be written in place over a dying operand.
 *
 * Assignment.  Linear scan over the values in schedule order (by first
 * position, then node order).  A value first tries an in-place update; then
 * takes a free buffer (whose last value's range ended before this value's
 * start) of its size class (see same_size_class): best fit among those whose
 * current size is provably >= the value's (dim_nonneg of the difference; an
 * equal expression qualifies), else the one whose growth to dim_max(size,
 * value) is smallest; only when no buffer is free does it open a new one.
 * Reusing is never worse than opening a buffer for any binding
 * (max(s, v) - s <= v), and the plan is one plan for every binding of the
 * dims: a buffer's size is the max of its values' sizes as an expression,
 * evaluated when the dims are bound.  Where the symbolic order cannot decide
 * between candidates, sizes are compared at one sample binding: every dim at
 * its declared bound, unbounded ones at 64.  That only steers the heuristic;
 * the plan is valid for every binding. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "passes.h"

enum { END_OF_RUN = INT_MAX, SAMPLE_UNBOUNDED = 64 };

/* What a computing node's value needs. */
typedef enum {
    ST_NONE,     /* internal to its group, or a source: no buffer */
    ST_EXTERNAL, /* lives elsewhere for the whole run (constant value, or a view of one) */
    ST_ROOT,     /* written to memory by its group: gets a buffer */
    ST_VIEW,     /* a view (alias group) of a planned root */
} Storage;

typedef struct {
    Node *node;
    int start, end; /* positions; end == END_OF_RUN for outputs */
    DimId bytes;
    int buf;
    bool donated; /* its buffer was taken over in place at its last use */
} Val;

typedef struct {
    DimId size;
    int busy_until; /* end of the last value placed in it */
} Buf;

typedef struct {
    Graph *g;
    int64_t *sample; /* the sample binding (dim_sym_count entries) */
    Storage *st;     /* by node id */
    int *root;       /* by node id: index into vals of the root, or -1 */
    Val *vals;
    int nvals;
    Buf *bufs;
    int nbufs;
} Plan;

static bool is_alias_op(OpKind op) { return op == OP_RESHAPE || op == OP_SQUEEZE || op == OP_UNSQUEEZE; }

/* Schedule position of a computing node: its group, or itself when unfused. */
static int pos_of(const Graph *g, const Node *n) { return g->ngroups > 0 ? n->ann.group : n->id; }

static GroupKind kind_of(const Graph *g, const Node *n) {
    if (g->ngroups > 0) return g->groups[n->ann.group]->kind;
    if (is_alias_op(n->op)) return GK_ALIAS;
    return ir_op_class(n->op) == OPC_ELEMENTWISE ? GK_ELEMENTWISE : GK_SINGLE;
}

/* The value of `d` at the sample binding, or -1 if it does not evaluate. */
static double sample(const Plan *p, DimId d) {
    int64_t v;
    if (d == DIM_INVALID || !dim_eval(p->g->dims, d, p->sample, &v, NULL, 0)) return -1;
    return (double)v;
}

/* a >= b for every binding (as far as the expressions show). */
static bool provably_ge(const Plan *p, DimId a, DimId b) {
    return a == b || dim_nonneg(p->g->dims, dim_sub(p->g->dims, a, b));
}

/* `a` is a better (smaller) fitting size than `b`. */
static bool smaller(const Plan *p, DimId a, DimId b) {
    if (a == b) return false;
    bool ab = provably_ge(p, b, a), ba = provably_ge(p, a, b);
    if (ab != ba) return ab;
    return sample(p, a) < sample(p, b);
}

/* May a value of `v` bytes join a buffer of `s` bytes?  Only when dim_max of
 * the two is one of them -- today, when they differ by a constant ([S,64] and
 * [S+1,64]) -- so that the buffer's size stays one of its values' expressions.
 * Mixing sizes dim_max cannot order (S*S and 64*S; also 12288*B*S and
 * 3072*B*S, which dim_max leaves opaque although one provably dominates) would
 * be valid, the size becoming max(...), but such a max is an opaque atom whose
 * argument order follows DimId interning order, which differs between a
 * compilation and the recompilation of its dump: dumps would stop being a
 * fixed point of print and parse.  When dim_max learns to return the provably
 * larger expression, provably ordered sizes start sharing here with no change;
 * the best-fit logic below already handles the general case. */
static bool same_size_class(const Plan *p, DimId s, DimId v) {
    if (s == v) return true;
    DimId m = dim_max(p->g->dims, s, v);
    return m == s || m == v;
}

/* Size of a buffer of size `s` once `v` is placed in it (one of them, given
 * same_size_class). */
static DimId grown(const Plan *p, DimId s, DimId v) { return dim_max(p->g->dims, s, v); }

/* Is `n` read by a node of another group, a graph output, or read by nobody? */
static bool escapes(const Graph *g, const Node *n, const int *users_outside, const int *uses) {
    return users_outside[n->id] > 0 || ir_is_output(g, n) || uses[n->id] == 0;
}

/* Classifies every node and collects the roots with their live ranges. */
static void collect(Plan *p) {
    Graph *g = p->g;
    int nn = g->nnodes;
    int *outside = calloc((size_t)nn + 1, sizeof(int)), *uses = calloc((size_t)nn + 1, sizeof(int));
    for (int i = 0; i < nn; i++) {
        Node *u = g->nodes[i];
        for (int k = 0; k < u->nin; k++) {
            Node *x = u->in[k];
            if (!x) continue;
            uses[x->id]++;
            if (!ir_is_source(x) && !ir_is_source(u) && pos_of(g, x) != pos_of(g, u)) outside[x->id]++;
        }
    }
    for (int i = 0; i < nn; i++) {
        Node *n = g->nodes[i];
        p->root[i] = -1;
        p->st[i] = ST_NONE;
        if (ir_is_source(n)) continue;
        GroupKind k = kind_of(g, n);
        if (k == GK_CONSTANT) {
            p->st[i] = ST_EXTERNAL;
        } else if (k == GK_ALIAS && is_alias_op(n->op) && n->in[0]) {
            const Node *x = n->in[0];
            Storage xs = ir_is_source(x) ? ST_EXTERNAL : p->st[x->id];
            if (xs == ST_ROOT || xs == ST_VIEW) {
                p->st[i] = ST_VIEW;
                p->root[i] = p->root[x->id];
            } else {
                /* a view of storage that outlives the run (or, defensively, of
                 * a value its own group keeps internal: then write it out) */
                p->st[i] = xs == ST_EXTERNAL ? ST_EXTERNAL : ST_NONE;
            }
        }
        if (p->st[i] == ST_NONE && escapes(g, n, outside, uses)) {
            int pos = pos_of(g, n);
            p->st[i] = ST_ROOT;
            p->root[i] = p->nvals;
            p->vals[p->nvals++] = (Val){n, pos, pos, ir_value_bytes(g, n), -1, false};
        }
    }
    /* live ranges: readers of a root or of any of its views, and outputs */
    for (int i = 0; i < nn; i++) {
        Node *u = g->nodes[i];
        if (ir_is_source(u)) continue;
        for (int k = 0; k < u->nin; k++) {
            Node *x = u->in[k];
            if (!x || p->root[x->id] < 0) continue;
            Val *v = &p->vals[p->root[x->id]];
            int pos = pos_of(g, u);
            if (pos > v->end) v->end = pos;
        }
    }
    for (int i = 0; i < g->noutputs; i++) {
        int r = p->root[g->outputs[i].node->id];
        if (r >= 0) p->vals[r].end = END_OF_RUN;
    }
    free(outside);
    free(uses);
}

/* Can the group at the value's position write in place (see the essay)? */
static bool elementwise_group(const Plan *p, const Node *n) {
    const Graph *g = p->g;
    if (kind_of(g, n) != GK_ELEMENTWISE) return false;
    if (g->ngroups == 0) return ir_op_class(n->op) == OPC_ELEMENTWISE;
    const Group *grp = g->groups[n->ann.group];
    for (int j = 0; j < grp->nnodes; j++) {
        OpKind op = grp->nodes[j]->op;
        if (ir_op_class(op) != OPC_ELEMENTWISE && !is_alias_op(op)) return false;
    }
    return true;
}

/* An operand value of the value's group that dies there, of the same size,
 * whose buffer the value may take over; -1 if none. */
static int in_place_donor(Plan *p, const Val *v) {
    const Graph *g = p->g;
    if (!elementwise_group(p, v->node)) return -1;
    int n = 1;
    Node *const *members = &v->node;
    if (g->ngroups > 0) {
        const Group *grp = g->groups[v->node->ann.group];
        n = grp->nnodes;
        members = grp->nodes;
    }
    DimId numel = ir_type_numel((Graph *)g, &v->node->type);
    for (int j = 0; j < n; j++) {
        const Node *m = members[j];
        for (int k = 0; k < m->nin; k++) {
            const Node *x = m->in[k];
            if (!x || p->root[x->id] < 0) continue;
            Val *r = &p->vals[p->root[x->id]];
            if (r->start == v->start || r->end != v->start || r->donated || r->buf < 0) continue;
            if (dtype_size(x->type.dtype) != dtype_size(v->node->type.dtype)) continue;
            if (ir_type_numel((Graph *)g, &x->type) != numel || numel == DIM_INVALID) continue;
            return (int)(r - p->vals);
        }
    }
    return -1;
}

static void assign(Plan *p) {
    for (int i = 0; i < p->nvals; i++) {
        Val *v = &p->vals[i];
        int donor = in_place_donor(p, v);
        if (donor >= 0) {
            p->vals[donor].donated = true;
            v->buf = p->vals[donor].buf;
            p->bufs[v->buf].busy_until = v->end;
            continue;
        }
        int best = -1;
        bool best_fits = false;
        double best_growth = 0;
        for (int b = 0; b < p->nbufs; b++) {
            Buf *bf = &p->bufs[b];
            if (bf->busy_until >= v->start || !same_size_class(p, bf->size, v->bytes)) continue;
            bool fits = provably_ge(p, bf->size, v->bytes);
            if (fits) {
                if (!best_fits || smaller(p, bf->size, p->bufs[best].size)) best = b, best_fits = true;
                continue;
            }
            if (best_fits) continue;
            double growth = sample(p, grown(p, bf->size, v->bytes)) - sample(p, bf->size);
            if (best < 0 || growth < best_growth) best = b, best_growth = growth;
        }
        if (best < 0) {
            best = p->nbufs++;
            p->bufs[best] = (Buf){v->bytes, v->end};
        } else {
            p->bufs[best].size = grown(p, p->bufs[best].size, v->bytes);
            p->bufs[best].busy_until = v->end;
        }
        v->buf = best;
    }
}

bool pass_memplan(Graph *g, Diag *d) {
    ir_buffers_clear(g);
    size_t nn = (size_t)g->nnodes + 1;
    int nsyms = dim_sym_count(g->dims);
    Plan p = {.g = g};
    p.sample = calloc((size_t)nsyms + 1, sizeof(int64_t));
    p.st = calloc(nn, sizeof(Storage));
    p.root = calloc(nn, sizeof(int));
    p.vals = calloc(nn, sizeof(Val));
    p.bufs = calloc(nn, sizeof(Buf));
    bool ok = p.sample && p.st && p.root && p.vals && p.bufs;
    if (!ok) {
        diag_error(d, loc_file(g->file), "memplan: out of memory");
        goto done;
    }
    for (int s = 0; s < nsyms; s++) {
        int64_t bound = dim_sym_bound(g->dims, s);
        p.sample[s] = bound > 0 ? bound : SAMPLE_UNBOUNDED;
    }
    collect(&p);
    /* schedule order: by start position, then node order (vals were
     * collected in node order, and positions never decrease along it) */
    assign(&p);
    for (int i = 0; i < g->nnodes; i++)
        if (p.root[i] >= 0) g->nodes[i]->ann.buffer = p.vals[p.root[i]].buf;
    ir_buffers_rebuild(g);
    for (int b = 0; b < g->nbuffers; b++)
        if (g->buffers[b].bytes == DIM_INVALID) {
            diag_error(d, loc_file(g->file),
                       "memplan: the size of buffer %d is not a representable dim expression", b);
            ok = false;
        }
done:
    free(p.sample);
    free(p.st);
    free(p.root);
    free(p.vals);
    free(p.bufs);
    return ok;
}
