/* Figures for `dsc compile --stats` (see pass_graph_stats in passes.h).
 *
 * Everything is computed from the final graph with the dims bound, so the same
 * graph gives the unfused baseline (each operation on its own) and the fused
 * figure (each group on its own). */
#include <stdlib.h>
#include <string.h>

#include "passes.h"

static bool is_alias_op(OpKind op) { return op == OP_RESHAPE || op == OP_SQUEEZE || op == OP_UNSQUEEZE; }

typedef struct {
    Graph *g;
    const int64_t *syms;
    Diag *d;
    bool ok;
} Ctx;

static double bytes_of(Ctx *c, DimId bytes) {
    int64_t v;
    char err[256];
    if (!dim_eval(c->g->dims, bytes, c->syms, &v, err, sizeof err)) {
        if (c->ok) diag_error(c->d, loc_file(c->g->file), "stats: %s", err);
        c->ok = false;
        return 0;
    }
    return (double)v;
}

static double value_bytes(Ctx *c, const Node *n) {
    if (n->op == OP_CONST) return 0; /* scalars travel as kernel arguments */
    return bytes_of(c, ir_value_bytes(c->g, n));
}

static bool in_constant_group(const Graph *g, const Node *n) {
    return n->ann.group >= 0 && g->groups[n->ann.group]->kind == GK_CONSTANT;
}

/* Activation bytes of an operand: params (and values computed from params
 * alone, at load time) are weights, counted apart. */
static double operand_bytes(Ctx *c, const Node *n) {
    if (n->op == OP_PARAM) return 0;
    if (in_constant_group(c->g, n)) return 0;
    return value_bytes(c, n);
}

/* Is `n` used by a node outside group `grp`, or a graph output? */
static bool escapes(const Graph *g, const Node *n, int grp) {
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i].node == n) return true;
    for (int i = n->id + 1; i < g->nnodes; i++) {
        const Node *u = g->nodes[i];
        if (u->ann.group == grp) continue;
        for (int k = 0; k < u->nin; k++)
            if (u->in[k] == n) return true;
    }
    return false;
}

/* Weights as the compiled model stores them: the params read per inference,
 * and the values of load-time constant groups read per inference (int8 or
 * f16 weights, folded batchnorms) -- a param read only by constant groups is
 * replaced by what they compute. */
static void weight_bytes(Ctx *c, GraphStats *out) {
    Graph *g = c->g;
    bool *stored = calloc((size_t)g->nnodes + 1, sizeof(bool));
    for (int i = 0; i < g->nnodes; i++) {
        const Node *u = g->nodes[i];
        if (ir_is_source(u) || in_constant_group(g, u)) continue;
        for (int k = 0; k < u->nin; k++) {
            const Node *x = u->in[k];
            if (x && (x->op == OP_PARAM || in_constant_group(g, x))) stored[x->id] = true;
        }
    }
    for (int i = 0; i < g->noutputs; i++) {
        const Node *x = g->outputs[i].node;
        if (x->op == OP_PARAM || in_constant_group(g, x)) stored[x->id] = true;
    }
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (!stored[i] && !(n->op == OP_PARAM && g->ngroups == 0)) continue;
        double b = value_bytes(c, n);
        out->weight_bytes += b;
        out->weight_bytes_by_dtype[n->type.dtype] += b;
    }
    free(stored);
}

bool pass_graph_stats(Graph *g, const int64_t *syms, GraphStats *out, Diag *d) {
    Ctx c = {g, syms, d, true};
    *out = (GraphStats){.ops = ir_count_ops(g), .fused = g->ngroups > 0, .planned = g->nbuffers > 0};
    /* unfused: every op reads its operands and writes its result */
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (ir_is_source(n)) continue;
        if (!is_alias_op(n->op)) {
            double b = value_bytes(&c, n);
            for (int k = 0; k < n->nin; k++)
                if (n->in[k]) b += operand_bytes(&c, n->in[k]);
            out->bytes_unfused += b;
        }
        out->peak_bytes_naive += value_bytes(&c, n);
    }
    weight_bytes(&c, out);
    /* fused: every kernel reads each external operand once and writes what escapes */
    for (int k = 0; k < g->ngroups; k++) {
        const Group *grp = g->groups[k];
        if (grp->kind == GK_ALIAS || grp->kind == GK_CONSTANT) continue;
        out->kernels++;
        const Node **seen = calloc((size_t)g->nnodes + 1, sizeof(Node *));
        int nseen = 0;
        for (int j = 0; j < grp->nnodes; j++) {
            const Node *n = grp->nodes[j];
            for (int q = 0; q < n->nin; q++) {
                const Node *x = n->in[q];
                if (!x || x->ann.group == grp->id) continue;
                bool dup = false;
                for (int s = 0; s < nseen && !dup; s++) dup = seen[s] == x;
                if (dup) continue;
                seen[nseen++] = x;
                out->bytes_fused += operand_bytes(&c, x);
            }
            if (escapes(g, n, grp->id)) out->bytes_fused += value_bytes(&c, n);
        }
        free(seen);
    }
    if (!out->fused) out->bytes_fused = out->bytes_unfused, out->kernels = out->ops;
    for (int b = 0; b < g->nbuffers; b++) out->peak_bytes_planned += bytes_of(&c, g->buffers[b].bytes);
    if (!out->planned) out->peak_bytes_planned = out->peak_bytes_naive;
    pass_sparsify_count(g, &out->gemm_weight_params, &out->gemm_weight_params_kept, &out->sparse_bytes_saved);
    return c.ok;
}
