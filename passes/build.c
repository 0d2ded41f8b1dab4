/* Node building for sweeping passes (see build.h). */
#include "build.h"

Node *pb_new(Builder *b, OpKind op, Node *x, Node *y, Node *z) {
    Node *n = ir_node_create(b->g, op, ir_op_tensor_params(op), b->loc);
    if (n->nin > 0) n->in[0] = x;
    if (y) n->in[1] = y;
    if (z) n->in[2] = z;
    return n;
}

Node *pb_place(Builder *b, Node *n) {
    if (!b->ok) return n;
    if (!ir_infer(b->g, n, b->d)) {
        diag_error(b->d, b->loc, "internal error: %s built an invalid %s", b->pass, ir_op_name(n->op));
        b->ok = false;
        return n;
    }
    VEC_PUSH(b->g->arena, b->order, b->n, b->cap, n);
    return n;
}

Node *pb_op(Builder *b, OpKind op, Node *x, Node *y) { return pb_place(b, pb_new(b, op, x, y, NULL)); }

Node *pb_cast(Builder *b, Node *x, DType dt) {
    if (!x || x->type.dtype == dt) return x;
    Node *n = pb_new(b, OP_CAST, x, NULL, NULL);
    ir_attr_set(b->g, n, "dtype", AV_DTYPE, b->loc)->dt = dt;
    return pb_place(b, n);
}

Node *pb_scalar(Builder *b, DType dt, double v) {
    Node *n = ir_node_create(b->g, OP_CONST, 0, b->loc);
    n->type.dtype = dt;
    n->fval = v;
    return pb_place(b, n);
}
