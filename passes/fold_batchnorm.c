/* Batchnorm folded into the conv2d or linear before it.
 *
 * Inference batchnorm is an affine map per channel,
 *     y = (z - mean) * s + bias,   s = scale * rsqrt(var + eps),
 * and when z = conv2d(x, w, b) the channel is the conv's output channel m,
 * which is row m of w.  So
 *     y = conv2d(x, w', b'),   w' = w * reshape(s, [M,1,1,1]),
 *                              b' = (b - mean) * s + bias    (no b: -mean * s + bias)
 * and likewise for z = linear(x, w, b) with w [out, in] (w' = w * s[:, None])
 * when the batchnorm's channel axis 1 is the linear's output axis, i.e. the
 * result is 2-D [N, out].  Grouped convolutions fold the same way: output
 * channel m is still row m of w.
 *
 * The new weights are graph operations on the params, not numbers: no
 * weights are needed at compile time.  They form a subgraph that depends on
 * params and constants only, which is computed once when the weights load
 * (fusion puts it in a constant group), so per inference the batchnorm simply
 * disappears.  For f16/bf16 models that subgraph is computed in f32 and cast
 * back once at the end, so w' and b' are rounded once, not after every step.
 *
 * Conditions: the conv/linear's only user is the batchnorm and it is not an
 * output (otherwise its unnormalised value is still needed); its w and b and
 * the four batchnorm vectors are load-time constants (params and literal
 * constants only, constant shapes).  The result equals the original up to
 * floating-point reassociation: the per-channel factor multiplies the weights
 * before the dot product instead of the sum after it.
 *
 * How: one forward sweep building the new node order.  The batchnorm node
 * itself becomes the conv2d/linear (its users, name and hints stay), with the
 * weight subgraph placed right before it; the old conv/linear is dead and
 * removed. */
#include <string.h>

#include "build.h"
#include "passes.h"

/* The sweep's builder: the new node order (passes/build.h). */
typedef Builder Cx;

static Node *op2(Cx *c, OpKind op, Node *a, Node *b) { return pb_op(c, op, a, b); }
static Node *cast(Cx *c, Node *x, DType dt) { return pb_cast(c, x, dt); }

/* s with trailing unit axes, to scale the rows of a weight of rank `rank`. */
static Node *unsqueeze_rows(Cx *c, Node *s, int rank) {
    Node *n = pb_new(c, OP_UNSQUEEZE, s, NULL, NULL);
    Attr *a = ir_attr_set(c->g, n, "axes", AV_INTS, c->loc);
    a->n = rank - 1;
    a->ints = arena_alloc(c->g->arena, sizeof(int64_t) * (size_t)rank);
    for (int i = 1; i < rank; i++)
        a->ints[i - 1] = i;
    return pb_place(c, n);
}

/* Rewrites batchnorm bn(z = conv2d/linear(x, w, b), scale, bias, mean, var)
 * in place into z's op on x with the folded weights. */
static void fold(Cx *c, Node *bn) {
    Node *z = bn->in[0];
    DType dt = bn->type.dtype, ct = DT_F32; /* compute type of the weight subgraph */
    c->loc = bn->loc;
    Node *w = cast(c, z->in[1], ct), *b = cast(c, z->in[2], ct);
    Node *scale = cast(c, bn->in[1], ct), *bias = cast(c, bn->in[2], ct), *mean = cast(c, bn->in[3], ct),
         *var = cast(c, bn->in[4], ct);
    Node *eps = pb_scalar(c, ct, ir_attr_float(bn, "eps", 1e-5));
    Node *s = op2(c, OP_MUL, scale, op2(c, OP_RSQRT, op2(c, OP_ADD, var, eps), NULL));
    Node *w2 = cast(c, op2(c, OP_MUL, w, unsqueeze_rows(c, s, w->type.rank)), dt);
    Node *centred = b ? op2(c, OP_SUB, b, mean) : op2(c, OP_NEG, mean, NULL);
    Node *b2 = cast(c, op2(c, OP_ADD, op2(c, OP_MUL, centred, s), bias), dt);
    if (!c->ok) return;
    Node saved = *bn;
    bn->op = z->op;
    bn->nin = 3;
    bn->in = arena_alloc(c->g->arena, sizeof(Node *) * 3);
    bn->in[0] = z->in[0], bn->in[1] = w2, bn->in[2] = b2;
    bn->nattrs = 0;
    bn->attrs = NULL;
    for (int i = 0; i < z->nattrs; i++) {
        const Attr *a = &z->attrs[i];
        *ir_attr_set(c->g, bn, a->name, a->kind, a->loc) = *a;
    }
    Diag *scratch = diag_create();
    bool ok = ir_infer(c->g, bn, scratch) && ir_type_eq(&bn->type, &saved.type);
    diag_destroy(scratch);
    if (!ok) {
        *bn = saved;
        diag_error(c->d, bn->loc, "internal error: fold-batchnorm changed the type of a batchnorm");
        c->ok = false;
    }
}

/* Requires: a verified graph without fusion groups.
 * Guarantees: every batchnorm whose operand is a conv2d (or a linear with a
 * 2-D result) used only by it, with load-time-constant weights, bias and
 * batchnorm vectors, is replaced by that conv2d/linear on weights computed
 * from the params by graph operations placed before it; types, names and
 * node order (topological) are kept; the nodes made dead are removed (by
 * dce's sweep). */
bool pass_fold_batchnorm(Graph *g, Diag *d) {
    if (g->ngroups > 0) return true; /* runs before fusion only */
    size_t nn = (size_t)(g->nnodes ? g->nnodes : 1);
    int *uses = arena_alloc(g->arena, sizeof(int) * nn);
    bool *output = arena_alloc(g->arena, sizeof(bool) * nn),
         *lconst = arena_alloc(g->arena, sizeof(bool) * nn);
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        bool lc = n->op == OP_PARAM || (n->op == OP_CONST && n->dval == DIM_INVALID);
        if (!ir_is_source(n)) {
            lc = true;
            for (int k = 0; k < n->nin; k++)
                if (n->in[k]) uses[n->in[k]->id]++, lc = lc && lconst[n->in[k]->id];
        }
        lconst[i] = lc && ir_type_is_static(g, &n->type);
    }
    for (int i = 0; i < g->noutputs; i++)
        output[g->outputs[i].node->id] = true;

    Cx c = {.g = g, .d = d, .pass = "fold-batchnorm", .ok = true};
    bool changed = false;
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        Node *z = c.ok && n->op == OP_BATCHNORM ? n->in[0] : NULL;
        bool fits = z && (z->op == OP_CONV2D || (z->op == OP_LINEAR && z->type.rank == 2)) &&
                    uses[z->id] == 1 && !output[z->id] && lconst[z->in[1]->id] &&
                    (!z->in[2] || lconst[z->in[2]->id]);
        for (int k = 1; fits && k < 5; k++)
            fits = lconst[n->in[k]->id];
        if (fits) {
            fold(&c, n);
            changed = true;
        }
        VEC_PUSH(g->arena, c.order, c.n, c.cap, n);
    }
    if (!changed) return true;
    g->nodes = c.order; /* also after an internal error: the folds done so far are consistent */
    g->nnodes = c.n;
    g->nodecap = c.cap;
    ir_renumber(g);
    return pass_dce(g, d) && c.ok;
}
