/* Canonical GEMMs.
 *
 * The canonical form of a GEMM against a matrix is
 *
 *     linear(x[..., in], w[out, in], b[out]?)
 *
 * the torch / cuBLAS "NT" layout with the bias as the epilogue, so that fusion,
 * sparsity, precision and codegen each handle one pattern for weight GEMMs.
 * `matmul` stays for GEMMs between two activations (attention scores, batched
 * products) and for right operands that are not 2-D.  Rewrites:
 *
 *   matmul(x, transpose(w, perm=[1,0])), w 2-D   -> linear(x, w)
 *   matmul(x, w), w a 2-D load-time constant      -> linear(x, transpose(w, perm=[1,0]))
 *   linear(x, w) + b, b + linear(x, w)            -> linear(x, w, b)
 *
 * The second rule turns a weight stored [in, out] into the canonical layout:
 * the transpose depends on params only, so it is computed once when the
 * weights load (fusion puts it in a constant group) and costs nothing per
 * inference.  "Load-time constant" means computed from params and literal
 * constants only (no input, no dim-valued constant) with a constant shape.
 * A param carrying a hint (`@sparse(...)`) is left as written, so the hint
 * stays on the operand of the GEMM it was written for.
 *
 * The bias rule needs: the linear has no bias yet, the add is its only user
 * and it is not an output, b is 1-D [out] with the linear's dtype, and the
 * add's result type equals the linear's (so b broadcasts without widening).
 * Folding the bias saves one rounding of the intermediate (the GEMM adds b to
 * its accumulator), which is within floating-point reassociation.
 *
 * How: one forward sweep.  The matmul or add node itself becomes the linear
 * (op, operands and attributes rewritten in place, re-inferred to the same
 * type), so its users, its name and its position are kept; a new transpose is
 * placed right before the node that uses it; the old linear of a folded bias
 * is dead and removed.  Because the sweep is in order, a matmul turned into a
 * linear is seen as one by the add after it. */
#include <string.h>

#include "passes.h"

typedef struct {
    Graph *g;
    Node **order; /* the new node order, built during the sweep */
    int n;
    size_t cap;
    int *uses;    /* per original node id: operand uses */
    bool *output; /* per original node id */
    bool *lconst; /* per original node id: computed from params and constants only */
} Cx;

static void *zalloc(Graph *g, size_t count, size_t size) {
    return arena_alloc(g->arena, size * (count ? count : 1));
}

/* Rewrites n in place into linear(x, w, b); reverts unless it re-infers to
 * the same type. */
static bool to_linear(Graph *g, Node *n, Node *x, Node *w, Node *b) {
    Node saved = *n;
    n->op = OP_LINEAR;
    n->nin = 3;
    n->in = arena_alloc(g->arena, sizeof(Node *) * 3);
    n->in[0] = x, n->in[1] = w, n->in[2] = b;
    n->attrs = NULL;
    n->nattrs = 0;
    Diag *scratch = diag_create();
    bool ok = ir_infer(g, n, scratch) && ir_type_eq(&n->type, &saved.type);
    diag_destroy(scratch);
    if (!ok) *n = saved;
    return ok;
}

static bool is_transpose_2d(const Node *t) {
    if (t->op != OP_TRANSPOSE || t->type.rank != 2) return false;
    const Attr *p = ir_attr(t, "perm");
    return p && p->kind == AV_INTS && p->n == 2 && ir_norm_axis(p->ints[0], 2) == 1 &&
           ir_norm_axis(p->ints[1], 2) == 0;
}

static bool matmul_rule(Cx *c, Node *n, Diag *d) {
    Node *x = n->in[0], *w = n->in[1];
    if (is_transpose_2d(w)) return to_linear(c->g, n, x, w->in[0], NULL);
    if (w->type.rank != 2 || !c->lconst[w->id] || w->nhints > 0) return false;
    Node *t = ir_node_create(c->g, OP_TRANSPOSE, 1, n->loc);
    t->in[0] = w;
    Attr *p = ir_attr_set(c->g, t, "perm", AV_INTS, n->loc);
    p->n = 2;
    p->ints = arena_alloc(c->g->arena, sizeof(int64_t) * 2);
    p->ints[0] = 1, p->ints[1] = 0;
    if (!ir_infer(c->g, t, d)) return false; /* cannot happen: w is 2-D */
    if (!to_linear(c->g, n, x, t, NULL)) return false;
    VEC_PUSH(c->g->arena, c->order, c->n, c->cap, t);
    return true;
}

static bool bias_rule(Cx *c, Node *n) {
    for (int side = 0; side < 2; side++) {
        Node *l = n->in[side], *b = n->in[1 - side];
        if (l->op != OP_LINEAR || l->in[2] || l->id < 0 || c->uses[l->id] != 1 || c->output[l->id]) continue;
        if (b->type.rank != 1 || b->type.dim[0] != l->in[1]->type.dim[0] || b->type.dtype != l->type.dtype)
            continue;
        if (!ir_type_eq(&n->type, &l->type)) continue;
        if (to_linear(c->g, n, l->in[0], l->in[1], b)) return true;
    }
    return false;
}

/* Requires: a verified graph without fusion groups.
 * Guarantees: no matmul whose right operand is a 2-D transpose or an unhinted
 * 2-D load-time constant remains; no linear without bias is the sole operand
 * of an add of a 1-D [out] bias of its type; node order is topological (new
 * transposes right before their linear); the rewritten nodes keep their
 * types, names and hints; the nodes made dead are removed (by dce's sweep). */
bool pass_canonicalize(Graph *g, Diag *d) {
    if (g->ngroups > 0) return true; /* runs before fusion only */
    Cx c = {g,
            NULL,
            0,
            0,
            zalloc(g, (size_t)g->nnodes, sizeof(int)),
            zalloc(g, (size_t)g->nnodes, sizeof(bool)),
            zalloc(g, (size_t)g->nnodes, sizeof(bool))};
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        bool lc = n->op == OP_PARAM || (n->op == OP_CONST && n->dval == DIM_INVALID);
        if (!ir_is_source(n)) {
            lc = true;
            for (int k = 0; k < n->nin; k++)
                if (n->in[k]) c.uses[n->in[k]->id]++, lc = lc && c.lconst[n->in[k]->id];
        }
        c.lconst[i] = lc && ir_type_is_static(g, &n->type);
    }
    for (int i = 0; i < g->noutputs; i++)
        c.output[g->outputs[i].node->id] = true;

    bool changed = false;
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        if (n->op == OP_MATMUL)
            changed |= matmul_rule(&c, n, d);
        else if (n->op == OP_ADD)
            changed |= bias_rule(&c, n);
        VEC_PUSH(g->arena, c.order, c.n, c.cap, n);
    }
    if (!changed) return true;
    g->nodes = c.order;
    g->nnodes = c.n;
    g->nodecap = c.cap;
    ir_renumber(g);
    return pass_dce(g, d);
}
