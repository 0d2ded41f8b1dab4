/* The IR verifier: checks the invariants every pass must keep.
 *   - node ids equal positions; operands are defined earlier (topological order);
 *   - non-variadic operators have exactly their schema's operand slots, with
 *     every required operand present;
 *   - every node's type is what inference gives for its operands today (so a
 *     pass that rewrites operands must keep types consistent);
 *   - user names are unique and every output refers to a node of the graph.
 * Violations are internal errors of a pass, reported as diagnostics so a
 * `--dump-after` run still shows where things went wrong. */
#include <string.h>

#include "ir.h"
#include "strmap.h"

bool ir_verify(Graph *g, Diag *d) {
    int before = diag_error_count(d);
    StrMap names;
    strmap_init(&names, g->arena);
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        const char *op = ir_op_name(n->op);
        if (n->id != i) diag_error(d, n->loc, "verifier: %s node has id %d at position %d", op, n->id, i);
        if (n->name) {
            if (strmap_get(&names, n->name)) diag_error(d, n->loc, "verifier: duplicate name '%s'", n->name);
            strmap_put(&names, n->name, n);
        }
        const OpSchema *sc = ir_op_schema(n->op);
        if (!sc->variadic && n->nin != ir_op_tensor_params(n->op)) {
            diag_error(d, n->loc, "verifier: %s has %d operand slots, expected %d", op, n->nin,
                       ir_op_tensor_params(n->op));
            continue;
        }
        bool operands_ok = true;
        for (int k = 0; k < n->nin; k++) {
            Node *x = n->in[k];
            if (!x) continue;
            if (x->id < 0 || x->id >= i || g->nodes[x->id] != x) {
                diag_error(d, n->loc, "verifier: operand %d of %s is not defined before it", k, op);
                operands_ok = false;
            }
        }
        if (!operands_ok || n->op == OP_INPUT || n->op == OP_PARAM || n->op == OP_CONST) continue;
        /* Re-infer on a copy and compare. */
        Node copy = *n;
        copy.attrs = arena_alloc(g->arena, sizeof(Attr) * (size_t)(n->nattrs ? n->nattrs : 1));
        if (n->nattrs) memcpy(copy.attrs, n->attrs, sizeof(Attr) * (size_t)n->nattrs);
        Diag *scratch = diag_create();
        bool ok = ir_infer(g, &copy, scratch);
        if (!ok) {
            diag_error(d, n->loc, "verifier: %s no longer type-checks: %s", op,
                       diag_count(scratch) ? diag_message(scratch, 0, NULL, NULL) : "?");
        } else if (!ir_type_eq(&copy.type, &n->type)) {
            diag_error(d, n->loc, "verifier: %s has type %s but its operands give %s", op,
                       ir_type_str(g, &n->type), ir_type_str(g, &copy.type));
        }
        diag_destroy(scratch);
    }
    /* Fusion groups: every computing node in exactly one group, members
     * contiguous in node order, groups in id order (the schedule). */
    if (g->ngroups > 0) {
        int last = -1;
        for (int i = 0; i < g->nnodes; i++) {
            Node *n = g->nodes[i];
            if (ir_is_source(n)) {
                if (n->ann.group >= 0) diag_error(d, n->loc, "verifier: %s node is in group %d", ir_op_name(n->op), n->ann.group);
                continue;
            }
            int grp = n->ann.group;
            if (grp < 0 || grp >= g->ngroups) {
                diag_error(d, n->loc, "verifier: %s is in no fusion group", ir_op_name(n->op));
                continue;
            }
            if (grp < last) diag_error(d, n->loc, "verifier: fusion group %d is not contiguous or out of order", grp);
            last = grp;
        }
        for (int k = 0; k < g->ngroups; k++) {
            const Group *grp = g->groups[k];
            if (grp->id != k || grp->nnodes == 0) diag_error(d, g->loc, "verifier: fusion group %d is empty or misnumbered", k);
            for (int j = 0; j < grp->nnodes; j++)
                if (grp->nodes[j]->ann.group != k || (j && grp->nodes[j]->id <= grp->nodes[j - 1]->id))
                    diag_error(d, grp->nodes[j]->loc, "verifier: fusion group %d's member list is inconsistent", k);
        }
    }
    for (int i = 0; i < g->noutputs; i++) {
        Node *x = g->outputs[i].node;
        if (!x || x->id < 0 || x->id >= g->nnodes || g->nodes[x->id] != x)
            diag_error(d, g->outputs[i].loc, "verifier: output '%s' does not refer to a node of the graph",
                       g->outputs[i].name);
    }
    return diag_error_count(d) == before;
}
