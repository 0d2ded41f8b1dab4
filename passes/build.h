/* Building nodes in a pass that sweeps the graph into a new node order
 * (fold-batchnorm, precision): each new node is type-checked by ir_infer and
 * appended to the order; after the first failure (an internal error, which
 * is reported) nothing more is placed and `ok` stays false. */
#ifndef DSC_PASSES_BUILD_H
#define DSC_PASSES_BUILD_H

#include "../ir/ir.h"

typedef struct {
    Graph *g;
    Diag *d;
    const char *pass; /* named in the internal error */
    Loc loc;          /* of every node built */
    Node **order;     /* the new node order */
    int n;
    size_t cap;
    bool ok;
} Builder;

/* A new node of op with operands x, y, z (NULL: absent); not yet placed. */
Node *pb_new(Builder *b, OpKind op, Node *x, Node *y, Node *z);
/* Type-checks n and appends it to the order. */
Node *pb_place(Builder *b, Node *n);
/* pb_place(pb_new(op, x, y)). */
Node *pb_op(Builder *b, OpKind op, Node *x, Node *y);
/* cast(x, dt); x itself when it has that dtype or is NULL. */
Node *pb_cast(Builder *b, Node *x, DType dt);
/* A scalar constant of dtype dt. */
Node *pb_scalar(Builder *b, DType dt, double v);

#endif
