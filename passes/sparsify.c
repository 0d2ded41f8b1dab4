/* sparsify: which params are pruned into blocks, and how.
 *
 * Pruning needs the weights, and a .dsg model only meets its weights when it
 * runs, so this pass decides and the runtime acts: every param carrying
 * `@sparse(block=[r, c], density=d)` gets an IrSparse (ir/sparse.h) on
 * Node.ann.sparse, and runtime/sparse.c applies the rule of docs/sparsity.md
 * to the weights when they load, on every device and at every -O level (a
 * @sparse hint changes the model's meaning by exactly that pruning, spec
 * section 4).  The reference interpreter then runs the pruned dense weights,
 * which are the semantics every backend must match.
 *
 * The command-line flags become hints before the pipeline runs
 * (pass_sparsify_hints): `--sparsity=S` adds a hint to every eligible param
 * that has none -- a 2-D float param of static shape used as the weight of a
 * `linear` or as the right operand of a `matmul` -- with the density that
 * removes at least the fraction S of its blocks, written as the exact
 * fraction kept/blocks; `--sparse-block=RxC` gives those hints their block
 * shape (default 4x4) and completes a written hint that lacks one.  Because
 * the flags turn into hints on the nodes, a dump prints them back and
 * compiles again to the same pruning without the flags; a hint written in
 * the source always wins over the flags. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ir/assert.h"
#include "../ir/sparse.h"
#include "passes.h"

int64_t ir_sparse_kept(double density, int64_t nblocks) {
    double k = ceil(density * (double)nblocks - 1e-9);
    if (!(k > 0)) return 0;
    return k >= (double)nblocks ? nblocks : (int64_t)k;
}

bool pass_sparsify_parse_block(const char *s, int *br, int *bc) {
    char *end;
    long r = strtol(s, &end, 10);
    if (end == s || (*end != 'x' && *end != 'X') || r <= 0 || r > 4096) return false;
    const char *c0 = end + 1;
    long c = strtol(c0, &end, 10);
    if (end == c0 || *end || c <= 0 || c > 4096) return false;
    *br = (int)r;
    *bc = (int)c;
    return true;
}

/* Is n used as the weight of a linear or the right operand of a matmul? */
static bool gemm_weight_use(const Graph *g, const Node *n) {
    for (int i = n->id + 1; i < g->nnodes; i++) {
        const Node *u = g->nodes[i];
        if ((u->op == OP_LINEAR || u->op == OP_MATMUL) && u->nin > 1 && u->in[1] == n) return true;
    }
    return false;
}

bool pass_sparsify_eligible(const Graph *g, const Node *n) {
    return n->op == OP_PARAM && n->type.rank == 2 && dtype_is_float(n->type.dtype) &&
           ir_type_is_static(g, &n->type) && gemm_weight_use(g, n);
}

static int64_t static_dim(const Graph *g, DimId d) {
    int64_t v = 0;
    dim_is_const(g->dims, d, &v);
    return v;
}

static Attr *new_args(Graph *g, int n) { return arena_alloc(g->arena, sizeof(Attr) * (size_t)n); }

/* The density that removes at least the fraction S of the blocks of a
 * static param: the exact fraction kept/blocks (see the top); 1 - S for a
 * shape not known at compile time. */
static double flag_density(const Graph *g, const Node *n, double S, int br, int bc) {
    if (n->type.rank < 2 || !ir_type_is_static(g, &n->type)) return 1 - S;
    int64_t nb = 1;
    for (int k = 0; k < n->type.rank - 2; k++)
        nb *= static_dim(g, n->type.dim[k]);
    int64_t rows = static_dim(g, n->type.dim[n->type.rank - 2]),
            cols = static_dim(g, n->type.dim[n->type.rank - 1]);
    nb *= ((rows + br - 1) / br) * ((cols + bc - 1) / bc);
    if (nb == 0) return 1 - S;
    int64_t removed = (int64_t)ceil(S * (double)nb - 1e-9);
    if (removed < 0) removed = 0;
    if (removed > nb) removed = nb;
    double density = (double)(nb - removed) / (double)nb;
    DSC_ASSERT(ir_sparse_kept(density, nb) == nb - removed);
    return density;
}

static Attr block_arg(Graph *g, Loc loc, int br, int bc) {
    Attr b = {.name = "block", .kind = AV_INTS, .loc = loc, .n = 2};
    b.ints = arena_alloc(g->arena, 2 * sizeof(int64_t));
    b.ints[0] = br;
    b.ints[1] = bc;
    return b;
}

bool pass_sparsify_hints(Graph *g, const SparsifyOptions *o, Diag *d) {
    (void)d;
    if (!o || (!o->have_sparsity && !o->have_block)) return true;
    int br = o->have_block ? o->br : 4, bc = o->have_block ? o->bc : 4;
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        if (n->op != OP_PARAM) continue;
        Hint *h = (Hint *)ir_hint(n, "sparse");
        if (h) { /* complete a written hint: block from the flag (or 4x4), density from --sparsity */
            const Attr *hb = ir_hint_arg(h, "block");
            bool addb = !hb, addd = !ir_hint_arg(h, "density") && o->have_sparsity;
            if (!addb && !addd) continue;
            int hr = hb ? (int)hb->ints[0] : br, hc = hb ? (int)hb->ints[1] : bc;
            Attr *args = new_args(g, h->nargs + 2);
            memcpy(args, h->args, sizeof(Attr) * (size_t)h->nargs);
            int na = h->nargs;
            if (addb) args[na++] = block_arg(g, h->loc, hr, hc);
            if (addd)
                args[na++] = (Attr){.name = "density",
                                    .kind = AV_FLOAT,
                                    .loc = h->loc,
                                    .f = flag_density(g, n, o->sparsity, hr, hc)};
            h->args = args;
            h->nargs = na;
            continue;
        }
        if (!o->have_sparsity || !pass_sparsify_eligible(g, n)) continue;
        Hint nh = {.name = "sparse", .loc = n->loc, .nargs = 2, .args = new_args(g, 2)};
        nh.args[0] = block_arg(g, n->loc, br, bc);
        nh.args[1] = (Attr){
            .name = "density", .kind = AV_FLOAT, .loc = n->loc, .f = flag_density(g, n, o->sparsity, br, bc)};
        n->hints = arena_grow(g->arena, n->hints, sizeof(Hint) * (size_t)n->nhints,
                              sizeof(Hint) * (size_t)(n->nhints + 1));
        n->hints[n->nhints++] = nh;
    }
    return true;
}

/* Requires: a verified graph whose @sparse hints passed the frontend's checks
 * (block two positive integers, density a number in [0, 1]).
 * Guarantees: every param with a @sparse hint has Node.ann.sparse set (block
 * shape and density; no pattern yet); a hint on a param of rank < 2, of a
 * non-float dtype, or without a density is an error naming the param. */
bool pass_sparsify(Graph *g, Diag *d) {
    bool ok = true;
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        const Hint *h = ir_hint(n, "sparse");
        if (!h || n->op != OP_PARAM) continue;
        const Attr *blk = ir_hint_arg(h, "block"), *den = ir_hint_arg(h, "density");
        if (n->type.rank < 2) {
            diag_error(d, h->loc, "@sparse on param '%s': blocks tile the last two dims, but it is %s",
                       n->name, ir_type_str(g, &n->type));
            ok = false;
            continue;
        }
        if (!dtype_is_float(n->type.dtype)) {
            diag_error(d, h->loc, "@sparse on param '%s': only float params can be pruned, not %s", n->name,
                       dtype_name(n->type.dtype));
            ok = false;
            continue;
        }
        if (!den) {
            diag_error(d, h->loc,
                       "@sparse on param '%s' needs a density, e.g. density=0.5 (or give --sparsity)",
                       n->name);
            ok = false;
            continue;
        }
        IrSparse *s = n->ann.sparse;
        if (!s) s = n->ann.sparse = arena_alloc(g->arena, sizeof(IrSparse));
        *s = (IrSparse){.br = blk ? (int)blk->ints[0] : 4,
                        .bc = blk ? (int)blk->ints[1] : 4,
                        .density = den->kind == AV_FLOAT ? den->f : (double)den->i};
    }
    return ok;
}

void pass_sparsify_count(const Graph *g, double *params, double *kept, double *bytes_saved) {
    *params = *kept = *bytes_saved = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        const IrSparse *s = n->op == OP_PARAM ? n->ann.sparse : NULL;
        if (!s && !pass_sparsify_eligible(g, n)) continue;
        if (!ir_type_is_static(g, &n->type)) continue;
        double numel = 1, lead = 1;
        for (int k = 0; k < n->type.rank; k++)
            numel *= (double)static_dim(g, n->type.dim[k]);
        for (int k = 0; k < n->type.rank - 2; k++)
            lead *= (double)static_dim(g, n->type.dim[k]);
        *params += numel;
        if (!s) {
            *kept += numel;
            continue;
        }
        int64_t rows = static_dim(g, n->type.dim[n->type.rank - 2]),
                cols = static_dim(g, n->type.dim[n->type.rank - 1]);
        int64_t nbr = (rows + s->br - 1) / s->br, nbc = (cols + s->bc - 1) / s->bc;
        int64_t kb = ir_sparse_kept(s->density, (int64_t)lead * nbr * nbc);
        double full = (double)kb * s->br * s->bc;
        *kept += full < numel ? full : numel;
        double size = dtype_size(n->type.dtype);
        double bsr = full * size + 4.0 * ((double)lead * (double)nbr + 1 + (double)kb);
        *bytes_saved += numel * size - bsr;
    }
}
