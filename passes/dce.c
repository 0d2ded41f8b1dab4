/* Dead code elimination.
 * Requires: a verified graph.  Guarantees: every remaining node is an input or
 * something an output depends on; inputs are kept even when unused (they are
 * the model's interface); node order is otherwise unchanged. */
#include "passes.h"

bool pass_dce(Graph *g, Diag *d) {
    (void)d;
    bool *live = arena_alloc(g->arena, sizeof(bool) * (size_t)(g->nnodes ? g->nnodes : 1));
    for (int i = 0; i < g->noutputs; i++) live[g->outputs[i].node->id] = true;
    for (int i = g->nnodes - 1; i >= 0; i--) {
        Node *n = g->nodes[i];
        if (n->op == OP_INPUT) live[i] = true;
        if (!live[i]) continue;
        for (int k = 0; k < n->nin; k++)
            if (n->in[k]) live[n->in[k]->id] = true;
    }
    int m = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (live[i]) g->nodes[m++] = g->nodes[i];
    g->nnodes = m;
    ir_renumber(g);
    return true;
}
