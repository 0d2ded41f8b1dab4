/* Common subexpression elimination.
 *
 * Two nodes compute the same value when they have the same operator, the same
 * operands (the same nodes, after earlier merges), equal attributes, equal
 * hints and the same type; two CONSTs when they also have the same dtype and
 * value (the same dim expression, or bit-identical numbers, so 0.0 and -0.0
 * stay apart and NaN matches NaN).  The later node is merged into the first:
 * its uses and outputs move to the first and it is removed.  Operands of add,
 * mul and equal are compared as an unordered pair, because those are
 * commutative bit for bit in IEEE arithmetic and in wrap-around integers
 * (maximum and minimum are not: they differ on 0.0 vs -0.0).
 *
 * Attributes are compared by name, whatever their order in the node, and by
 * value: lists entry by entry, floats bit for bit, strings by content.  Values
 * are compared as written, so perm=[1,0] and perm=[-1,-2] are different keys:
 * a missed merge, never a wrong one.  Inputs and params are never merged
 * (they are the model's interface).
 *
 * A merged node's user name (a `let`) disappears; outputs keep theirs,
 * because an output names itself (`output b = a` in the printed model).
 *
 * How: one forward sweep with a hash table of the nodes kept so far.  A
 * node's operands are first replaced through the forwarding table, so its
 * key already reflects every earlier merge and one sweep finds every
 * duplicate. */
#include <string.h>

#include "passes.h"

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static uint64_t bits(double f) {
    uint64_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static bool commutative(OpKind op) { return op == OP_ADD || op == OP_MUL || op == OP_EQUAL; }

/* Operand k of n in key order: a commutative pair sorted by node id. */
static const Node *operand(const Node *n, int k) {
    if (commutative(n->op) && n->nin == 2 && n->in[0]->id > n->in[1]->id) return n->in[1 - k];
    return n->in[k];
}

static bool attr_value_eq(const Attr *a, const Attr *b) {
    if (a->kind != b->kind) return false;
    switch (a->kind) {
    case AV_INT: return a->i == b->i;
    case AV_FLOAT: return bits(a->f) == bits(b->f);
    case AV_STRING: return strcmp(a->s, b->s) == 0;
    case AV_BOOL: return a->b == b->b;
    case AV_DTYPE: return a->dt == b->dt;
    case AV_INTS:
        return a->n == b->n && (a->n == 0 || memcmp(a->ints, b->ints, sizeof(int64_t) * (size_t)a->n) == 0);
    case AV_DIMS:
        return a->n == b->n && (a->n == 0 || memcmp(a->dims, b->dims, sizeof(DimId) * (size_t)a->n) == 0);
    }
    return false;
}

static uint64_t attr_hash(const Attr *a) {
    uint64_t h = 0;
    for (const char *s = a->name; *s; s++)
        h = mix(h, (unsigned char)*s);
    h = mix(h, (uint64_t)a->kind);
    switch (a->kind) {
    case AV_INT: return mix(h, (uint64_t)a->i);
    case AV_FLOAT: return mix(h, bits(a->f));
    case AV_STRING:
        for (const char *s = a->s; *s; s++)
            h = mix(h, (unsigned char)*s);
        return h;
    case AV_BOOL: return mix(h, a->b);
    case AV_DTYPE: return mix(h, (uint64_t)a->dt);
    case AV_INTS:
        for (int i = 0; i < a->n; i++)
            h = mix(h, (uint64_t)a->ints[i]);
        return h;
    case AV_DIMS:
        for (int i = 0; i < a->n; i++)
            h = mix(h, (uint64_t)(uint32_t)a->dims[i]);
        return h;
    }
    return h;
}

/* Same attribute set, in any order (names are unique within a node). */
static bool attrs_eq(const Node *a, const Node *b) {
    if (a->nattrs != b->nattrs) return false;
    for (int i = 0; i < a->nattrs; i++) {
        const Attr *o = ir_attr(b, a->attrs[i].name);
        if (!o || !attr_value_eq(&a->attrs[i], o)) return false;
    }
    return true;
}

static bool hints_eq(const Node *a, const Node *b) {
    if (a->nhints != b->nhints) return false;
    for (int i = 0; i < a->nhints; i++) {
        const Hint *x = &a->hints[i], *y = &b->hints[i];
        if (strcmp(x->name, y->name) != 0 || x->nargs != y->nargs) return false;
        for (int j = 0; j < x->nargs; j++) {
            const char *kx = x->args[j].name, *ky = y->args[j].name;
            if ((kx || ky) && (!kx || !ky || strcmp(kx, ky) != 0)) return false;
            if (!attr_value_eq(&x->args[j], &y->args[j])) return false;
        }
    }
    return true;
}

static uint64_t node_hash(const Node *n) {
    uint64_t h = mix(0, (uint64_t)n->op);
    h = mix(h, (uint64_t)n->nin);
    for (int k = 0; k < n->nin; k++)
        h = mix(h, operand(n, k) ? (uint64_t)operand(n, k)->id : UINT64_MAX);
    h = mix(h, (uint64_t)n->type.dtype);
    h = mix(h, (uint64_t)n->type.rank);
    for (int i = 0; i < n->type.rank; i++)
        h = mix(h, (uint64_t)(uint32_t)n->type.dim[i]);
    if (n->op == OP_CONST)
        h = mix(mix(h, (uint64_t)(uint32_t)n->dval), n->dval == DIM_INVALID ? bits(n->fval) : 0);
    uint64_t ah = 0; /* order-independent */
    for (int i = 0; i < n->nattrs; i++)
        ah += attr_hash(&n->attrs[i]);
    return mix(mix(h, ah), (uint64_t)n->nhints);
}

static bool node_eq(const Node *a, const Node *b) {
    if (a->op != b->op || a->nin != b->nin || !ir_type_eq(&a->type, &b->type)) return false;
    for (int k = 0; k < a->nin; k++)
        if (operand(a, k) != operand(b, k)) return false;
    if (a->op == OP_CONST &&
        (a->dval != b->dval || (a->dval == DIM_INVALID && bits(a->fval) != bits(b->fval))))
        return false;
    return attrs_eq(a, b) && hints_eq(a, b);
}

/* Requires: a verified graph without fusion groups.
 * Guarantees: no two remaining non-source nodes (or CONSTs) are structurally
 * equal as defined above; every use and output of a merged node refers to the
 * first equal node; outputs keep their names and types; node order is
 * unchanged otherwise; the merged nodes are removed (by dce's sweep). */
bool pass_cse(Graph *g, Diag *d) {
    if (g->ngroups > 0) return true; /* runs before fusion only */
    size_t cap = 16;
    while (cap < 2 * (size_t)g->nnodes)
        cap *= 2;
    Node **table = arena_alloc(g->arena, sizeof(Node *) * cap);
    Node **fwd = arena_alloc(g->arena, sizeof(Node *) * (size_t)(g->nnodes ? g->nnodes : 1));
    bool changed = false;
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        fwd[i] = n;
        for (int k = 0; k < n->nin; k++)
            if (n->in[k]) n->in[k] = fwd[n->in[k]->id];
        if (n->op == OP_INPUT || n->op == OP_PARAM) continue;
        size_t slot = (size_t)node_hash(n) & (cap - 1);
        while (table[slot] && !node_eq(table[slot], n))
            slot = (slot + 1) & (cap - 1);
        if (table[slot]) {
            fwd[i] = table[slot];
            changed = true;
        } else {
            table[slot] = n;
        }
    }
    if (!changed) return true;
    for (int i = 0; i < g->noutputs; i++)
        g->outputs[i].node = fwd[g->outputs[i].node->id];
    return pass_dce(g, d);
}
