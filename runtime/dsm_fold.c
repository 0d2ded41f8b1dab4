/* Folding exactly reproducible load-time constants into a compiled model
 * (see dsm_fold.h and docs/formats.md, ".dsm", "Folded constants").
 *
 * A load-time constant group (GK_CONSTANT: computed from params and
 * constants only, once when the weights load) is folded when every member is
 * an exactly rounded IEEE operation or an integer, comparison, cast or
 * layout operation (fold_op below).  Every backend then computes the same
 * bits as the reference interpreter, so evaluating the group once here and
 * storing the values it hands to the rest of the graph changes nothing the
 * model computes -- and an int8 GEMM's weight is stored as i8 with its f32
 * scales (a quarter of the f32 bytes), an f16 one as f16.  Groups with exp,
 * log, sqrt, rsqrt, tanh, erf, pow, sums or means (results that can differ
 * by backend in the last bit) stay in the graph and are computed at load.
 *
 * How: the graph is the optimized graph's DSG text, parsed twice.  One copy
 * is cut down to the folded groups (their boundary values as the outputs,
 * dead code removed, inputs dropped) and run by the reference interpreter on
 * the params.  In the other each boundary value's node becomes a `param`
 * (moved after the existing params), dead code goes (the groups' other
 * members and the params only they read), and the result is printed and
 * parsed once more, so that group ids are dense again and the graph is
 * exactly what the loader will see.  Working on the text rather than on the
 * caller's graph leaves the caller's graph untouched and reuses the
 * frontend's reading of @group/@buffer hints (the memory plan never covers
 * constant groups, so no buffer changes). */
#include "dsm_fold.h"

#include <stdlib.h>
#include <string.h>

#include "../frontend/frontend.h"
#include "../passes/passes.h"
#include "interp.h"

/* Exactly rounded or exact everywhere (docs/formats.md, "Folded constants"). */
static const OpKind exact_ops[] = {OP_ADD,    OP_SUB,   OP_MUL,       OP_DIV,        OP_MAXIMUM, OP_MINIMUM,
                                   OP_NEG,    OP_ABS,   OP_RELU,      OP_CLIP,       OP_LESS,    OP_GREATER,
                                   OP_EQUAL,  OP_WHERE, OP_CAST,      OP_REDUCE_MAX, OP_RESHAPE, OP_TRANSPOSE,
                                   OP_CONCAT, OP_SLICE, OP_UNSQUEEZE, OP_SQUEEZE};

static bool fold_op(OpKind op) {
    for (size_t i = 0; i < sizeof exact_ops / sizeof exact_ops[0]; i++)
        if (exact_ops[i] == op) return true;
    return false;
}

static bool is_member(const Group *grp, const Node *n) {
    for (int i = 0; i < grp->nnodes; i++)
        if (grp->nodes[i] == n) return true;
    return false;
}

/* Whether any node outside grp (or an output) reads n. */
static bool used_outside(const Graph *g, const Group *grp, const Node *n) {
    if (ir_is_output(g, n)) return true;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *u = g->nodes[i];
        if (is_member(grp, u)) continue;
        for (int k = 0; k < u->nin; k++)
            if (u->in[k] == n) return true;
    }
    return false;
}

static bool name_taken(const Graph *g, const char *s) {
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if ((n->name && strcmp(n->name, s) == 0) || (n->key && strcmp(n->key, s) == 0)) return true;
    }
    return false;
}

/* The first param a group's members read (graph order). */
static const Node *first_param(const Group *grp) {
    for (int i = 0; i < grp->nnodes; i++)
        for (int k = 0; k < grp->nodes[i]->nin; k++)
            if (grp->nodes[i]->in[k] && grp->nodes[i]->in[k]->op == OP_PARAM) return grp->nodes[i]->in[k];
    return NULL;
}

/* The boundary nodes of the groups that fold, in graph order, with their
 * keys; *count of them (ids into g->nodes). */
static int plan_fold(Graph *g, int *ids, const char **keys) {
    int count = 0;
    for (int gi = 0; gi < g->ngroups; gi++) {
        const Group *grp = g->groups[gi];
        const Node *p = first_param(grp);
        bool ok = grp->kind == GK_CONSTANT && grp->nnodes > 0 && p;
        for (int i = 0; ok && i < grp->nnodes; i++)
            ok = fold_op(grp->nodes[i]->op);
        if (!ok) continue;
        int start = count, k = 0;
        for (int i = 0; ok && i < grp->nnodes; i++) {
            Node *n = grp->nodes[i];
            if (!used_outside(g, grp, n)) continue;
            const char *key = arena_printf(g->arena, "%s.folded%d", p->key, k++);
            /* an output stays computed; a symbolic shape or a name clash is left to load time */
            ok = !ir_is_output(g, n) && ir_type_is_static(g, &n->type) && !name_taken(g, key);
            ids[count] = n->id;
            keys[count++] = key;
        }
        if (!ok) count = start;
    }
    return count;
}

/* Runs the boundary values of `copy` (a parse of the same text, so the same
 * node ids) on the params: outs[i] for ids[i]. */
static bool evaluate(Graph *copy, const int *ids, int count, Tensor *const *params, int nparams,
                     Tensor **outs, Diag *d) {
    Node **pnodes = calloc((size_t)nparams + 1, sizeof *pnodes);
    Tensor **pv = calloc((size_t)nparams + 1, sizeof *pv);
    Node **nodes = calloc((size_t)count + 1, sizeof *nodes);
    bool ok = pnodes && pv && nodes;
    int np = 0;
    for (int i = 0; ok && i < copy->nnodes; i++)
        if (copy->nodes[i]->op == OP_PARAM) {
            if (np == nparams)
                ok = false;
            else
                pnodes[np++] = copy->nodes[i];
        }
    ok = ok && np == nparams;
    if (!ok) {
        diag_error(d, (Loc){copy->file, 0, 0},
                   "internal error: the params of the printed graph do not match");
        goto done;
    }
    for (int i = 0; i < count; i++)
        nodes[i] = copy->nodes[ids[i]];
    copy->noutputs = 0;
    for (int i = 0; i < count; i++)
        ir_add_output(copy, arena_printf(copy->arena, "folded%d", i), nodes[i], nodes[i]->loc);
    pass_dce(copy, d);
    int m = 0;
    for (int i = 0; i < copy->nnodes; i++)
        if (copy->nodes[i]->op != OP_INPUT) copy->nodes[m++] = copy->nodes[i];
    copy->nnodes = m;
    ir_renumber(copy);
    int k = 0;
    for (int i = 0; i < copy->nnodes; i++)
        if (copy->nodes[i]->op == OP_PARAM)
            for (int j = 0; j < nparams; j++)
                if (pnodes[j] == copy->nodes[i]) pv[k++] = params[j];
    ok = rt_interp_run(copy, NULL, 0, pv, outs, d);
done:
    free(pnodes);
    free(pv);
    free(nodes);
    return ok;
}

static void print_graph(Graph *g, char **text, size_t *len) {
    *text = NULL;
    FILE *f = open_memstream(text, len);
    if (!f) return;
    ir_print_dsg(g, f);
    if (fclose(f) != 0) {
        free(*text);
        *text = NULL;
    }
}

bool rt_dsm_fold(Arena *a, const char *text, Tensor *const *params, int nparams, RtDsmFolded *out, Diag *d) {
    *out = (RtDsmFolded){0};
    size_t len = strlen(text);
    Graph *g = fe_compile_source(a, d, "dsc.graph", arena_strndup(a, text, len), len);
    Graph *copy = fe_compile_source(a, d, "dsc.graph", arena_strndup(a, text, len), len);
    if (!g || !copy) return false;
    int cap = g->nnodes + 1, count = 0;
    int *ids = calloc((size_t)cap, sizeof *ids);
    const char **keys = calloc((size_t)cap, sizeof *keys);
    Tensor **vals = calloc((size_t)cap, sizeof *vals);
    char *printed = NULL;
    bool ok = false;
    if (!ids || !keys || !vals) goto oom;
    count = plan_fold(g, ids, keys);
    if (count && !evaluate(copy, ids, count, params, nparams, vals, d)) goto done;

    /* The original params' values by node, before the graph changes. */
    Node **orig = calloc((size_t)nparams + 1, sizeof *orig);
    if (!orig) goto oom;
    for (int i = 0, k = 0; i < g->nnodes && k < nparams; i++)
        if (g->nodes[i]->op == OP_PARAM) orig[k++] = g->nodes[i];
    /* Each boundary value becomes a param, after the last source node. */
    Node **nodes = g->nodes;
    for (int i = 0; i < count; i++) {
        Node *n = nodes[ids[i]];
        n->op = OP_PARAM;
        n->nin = 0;
        n->in = NULL;
        n->nattrs = 0;
        n->attrs = NULL;
        n->nhints = 0;
        n->hints = NULL;
        n->name = n->key = keys[i];
        n->ann.group = -1;
        n->ann.buffer = -1;
    }
    /* stable order: sources as written, then the new params, then the rest */
    Node **order = calloc((size_t)g->nnodes + 1, sizeof *order);
    bool *isnew = calloc((size_t)g->nnodes + 1, sizeof *isnew);
    if (!order || !isnew) {
        free(order);
        free(isnew);
        free(orig);
        goto oom;
    }
    for (int i = 0; i < count; i++)
        isnew[ids[i]] = true;
    int m = 0, first_op = g->nnodes;
    for (int i = 0; i < g->nnodes; i++)
        if (!isnew[i] && nodes[i]->op != OP_INPUT && nodes[i]->op != OP_PARAM) {
            first_op = i;
            break;
        }
    for (int i = 0; i < first_op; i++)
        if (!isnew[i]) order[m++] = nodes[i];
    for (int i = 0; i < count; i++)
        order[m++] = nodes[ids[i]];
    for (int i = first_op; i < g->nnodes; i++)
        if (!isnew[i]) order[m++] = nodes[i];
    memcpy(g->nodes, order, sizeof *order * (size_t)g->nnodes);
    free(order);
    free(isnew);
    ir_renumber(g);
    pass_dce(g, d);
    /* groups keep only their surviving members (an emptied group prints nothing) */
    for (int gi = 0; gi < g->ngroups; gi++) {
        Group *grp = g->groups[gi];
        int k = 0;
        for (int i = 0; i < grp->nnodes; i++) {
            Node *n = grp->nodes[i];
            if (n->id < g->nnodes && g->nodes[n->id] == n && n->ann.group == grp->id) grp->nodes[k++] = n;
        }
        grp->nnodes = k;
    }

    /* The params of the rewritten graph, in its order. */
    int np = 0;
    for (int i = 0; i < g->nnodes; i++)
        np += g->nodes[i]->op == OP_PARAM;
    out->params = calloc((size_t)np + 1, sizeof *out->params);
    out->owned = calloc((size_t)np + 1, sizeof *out->owned);
    if (!out->params || !out->owned) {
        free(orig);
        goto oom;
    }
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op != OP_PARAM) continue;
        for (int j = 0; j < nparams; j++)
            if (orig[j] == n) out->params[out->nparams] = params[j];
        for (int j = 0; j < count; j++)
            if (keys[j] == n->key) {
                out->params[out->nparams] = vals[j];
                out->owned[out->nparams] = true;
                vals[j] = NULL;
            }
        out->nparams++;
    }
    free(orig);
    out->nfolded = count;

    /* Print and parse again: dense group ids, the graph the loader sees. */
    size_t plen = 0;
    print_graph(g, &printed, &plen);
    if (!printed) goto oom;
    out->graph = fe_compile_source(a, d, "dsc.graph", arena_strndup(a, printed, plen), plen);
    if (!out->graph || !pass_sparsify(out->graph, d)) {
        diag_error(d, (Loc){"dsc.graph", 0, 0},
                   "internal error: the graph with folded constants does not compile");
        goto done;
    }
    ok = true;
    goto done;
oom:
    diag_error(d, (Loc){"dsc.graph", 0, 0}, "out of memory");
done:
    for (int i = 0; i < count && vals; i++)
        rt_tensor_free(vals[i]);
    free(ids);
    free(keys);
    free(vals);
    free(printed);
    if (!ok) rt_dsm_folded_free(out);
    return ok;
}

void rt_dsm_folded_free(RtDsmFolded *f) {
    for (int i = 0; i < f->nparams && f->owned; i++)
        if (f->owned[i]) rt_tensor_free(f->params[i]);
    free(f->params);
    free(f->owned);
    *f = (RtDsmFolded){0};
}
