/* Block pruning at load time (see docs/sparsity.md for the rule and why it
 * is applied here).
 *
 * passes/sparsify.c marks the params to prune; when the weights load
 * (rt_model_data_load, for every device) rt_sparse_apply copies each marked
 * param out of the weights file, zeroes every block the rule drops and
 * records which blocks it kept (the pattern) on the param's IrSparse, where
 * lowering (codegen/lower_sparse.c) finds it.  The rule is a total order on
 * blocks -- L2 norm descending, then block index ascending -- so it is the
 * same on every machine and matches the numpy implementation in
 * tests/sparse_ref.py block for block.
 *
 * The cost model compares, per row of the activation, the dense GEMM's time
 * (all N x K weights at the dense rate) with the pattern kernel's (the kept
 * weights at the sparse rate plus a fixed cost per block segment, one row of
 * a block along the contraction): both scale with M, so the choice does not
 * depend on the batch.  The coefficients are the hwdb entry's `sparse_gemm`
 * class (docs/hwdb.md), fitted from tests/bench/bench_sparse.sh. */
#include "sparse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../ir/assert.h"

typedef struct {
    double norm;
    int64_t idx;
} BlockNorm;

static int by_norm(const void *pa, const void *pb) {
    const BlockNorm *a = pa, *b = pb;
    bool na = isnan(a->norm), nb = isnan(b->norm);
    if (na != nb) return na ? -1 : 1; /* NaN first: kept, so it shows */
    if (!na && a->norm != b->norm) return a->norm > b->norm ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

int64_t rt_sparse_prune(Tensor *t, int br, int bc, double density, uint8_t *keep) {
    int r = t->rank;
    int64_t rows = t->shape[r - 2], cols = t->shape[r - 1], lead = 1;
    for (int i = 0; i < r - 2; i++)
        lead *= t->shape[i];
    int64_t nbr = (rows + br - 1) / br, nbc = (cols + bc - 1) / bc, nb = lead * nbr * nbc;
    if (nb == 0) return 0;
    BlockNorm *bn = calloc((size_t)nb, sizeof *bn);
    uint8_t *kp = keep ? keep : calloc((size_t)nb, 1);
    DSC_ASSERT(bn && kp);
    for (int64_t b = 0; b < nb; b++)
        bn[b].idx = b;
    for (int64_t l = 0; l < lead; l++)
        for (int64_t y = 0; y < rows; y++)
            for (int64_t x = 0; x < cols; x++) {
                double v = rt_get(t, (l * rows + y) * cols + x);
                bn[(l * nbr + y / br) * nbc + x / bc].norm += v * v;
            }
    qsort(bn, (size_t)nb, sizeof *bn, by_norm);
    int64_t kept = ir_sparse_kept(density, nb);
    memset(kp, 0, (size_t)nb);
    for (int64_t i = 0; i < kept; i++)
        kp[bn[i].idx] = 1;
    for (int64_t l = 0; l < lead; l++)
        for (int64_t y = 0; y < rows; y++)
            for (int64_t x = 0; x < cols; x++)
                if (!kp[(l * nbr + y / br) * nbc + x / bc]) rt_set(t, (l * rows + y) * cols + x, 0.0);
    free(bn);
    if (!keep) free(kp);
    return kept;
}

bool rt_sparse_apply(const Graph *g, Tensor **params, Diag *d) {
    int idx = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op != OP_PARAM) continue;
        Tensor *t = params[idx++];
        IrSparse *s = n->ann.sparse;
        if (!s) continue;
        if (t->rank != n->type.rank || t->rank < 2 || !dtype_is_float(t->dtype)) {
            char shape[128];
            rt_shape_str(t->dtype, t->rank, t->shape, shape, sizeof shape);
            diag_error(d, n->loc, "@sparse on param '%s': the weight is %s, which cannot be pruned as %s",
                       n->name, shape, ir_type_str(g, &n->type));
            return false;
        }
        if (!t->owned) { /* a view into the weights file: prune a copy */
            Tensor *c = rt_tensor_new(t->dtype, t->rank, t->shape);
            if (!c) {
                diag_error(d, n->loc, "out of memory pruning param '%s'", n->name);
                return false;
            }
            memcpy(c->data, t->data, t->nbytes);
            rt_tensor_free(t);
            t = params[idx - 1] = c;
        }
        int r = t->rank;
        s->lead = 1;
        for (int k = 0; k < r - 2; k++)
            s->lead *= t->shape[k];
        s->rows = t->shape[r - 2];
        s->cols = t->shape[r - 1];
        s->nbr = (s->rows + s->br - 1) / s->br;
        s->nbc = (s->cols + s->bc - 1) / s->bc;
        int64_t nb = s->lead * s->nbr * s->nbc;
        uint8_t *keep = arena_alloc(g->arena, (size_t)(nb ? nb : 1));
        s->kept = rt_sparse_prune(t, s->br, s->bc, s->density, keep);
        s->kept_elems = 0;
        for (int64_t b = 0; b < nb; b++) {
            if (!keep[b]) continue;
            int64_t i0 = (b / s->nbc) % s->nbr * s->br, j0 = b % s->nbc * s->bc;
            int64_t h = s->rows - i0 < s->br ? s->rows - i0 : s->br,
                    w = s->cols - j0 < s->bc ? s->cols - j0 : s->bc;
            s->kept_elems += h * w;
        }
        s->keep = keep;
        s->values = t->data;
        s->have_pattern = true;
        s->kernel = SPARSE_KERNEL_AUTO;
    }
    return true;
}

bool rt_sparse_to_bsr(const Tensor *pruned, const IrSparse *s, Tensor **rowptr, Tensor **colidx,
                      Tensor **values) {
    *rowptr = *colidx = *values = NULL;
    if (!s->have_pattern) return false;
    int64_t nrow = s->lead * s->nbr, rp_shape[1] = {nrow + 1}, ci_shape[1] = {s->kept},
            v_shape[3] = {s->kept, s->br, s->bc};
    Tensor *rp = rt_tensor_new(DT_I32, 1, rp_shape), *ci = rt_tensor_new(DT_I32, 1, ci_shape),
           *va = rt_tensor_new(pruned->dtype, 3, v_shape);
    if (!rp || !ci || !va) {
        rt_tensor_free(rp);
        rt_tensor_free(ci);
        rt_tensor_free(va);
        return false;
    }
    int32_t *rpp = rp->data, *cip = ci->data;
    int64_t k = 0;
    for (int64_t row = 0; row < nrow; row++) {
        rpp[row] = (int32_t)k;
        int64_t l = row / s->nbr, i = row % s->nbr;
        for (int64_t j = 0; j < s->nbc; j++) {
            if (!s->keep[row * s->nbc + j]) continue;
            cip[k] = (int32_t)j;
            for (int64_t y = 0; y < s->br; y++)
                for (int64_t x = 0; x < s->bc; x++) {
                    int64_t gy = i * s->br + y, gx = j * s->bc + x;
                    if (gy < s->rows && gx < s->cols)
                        rt_set(va, (k * s->br + y) * s->bc + x,
                               rt_get(pruned, (l * s->rows + gy) * s->cols + gx));
                }
            k++;
        }
    }
    rpp[nrow] = (int32_t)k;
    *rowptr = rp;
    *colidx = ci;
    *values = va;
    return true;
}

/* Built-in host coefficients, used when the entry has no `sparse_gemm`
 * class (the same figures as data/hwdb.json's host entry): the packed form
 * (host linear), and the generic form (matmul, GPU). */
static const double DEF_DENSE_GFLOPS = 126, DEF_SPARSE_GFLOPS = 70, DEF_SEGMENT_NS = 0.35,
                    DEF_GENERIC_GFLOPS = 16, DEF_GENERIC_SEGMENT_NS = 0.4;

static double coef(const HwKernelConfig *kc, const char *name, double dflt) {
    return kc ? rt_hwdb_param(kc, name, dflt) : dflt;
}

void rt_sparse_estimate(const HwEntry *e, bool packed, int64_t n_out, int64_t k, int width,
                        int64_t kept_blocks, int64_t kept_elems, double *dense_us, double *sparse_us) {
    const HwKernelConfig *kc = e ? rt_hwdb_kernel(e, "sparse_gemm") : NULL;
    double dg = coef(kc, "dense_gflops", DEF_DENSE_GFLOPS),
           sg = packed ? coef(kc, "sparse_gflops", DEF_SPARSE_GFLOPS)
                       : coef(kc, "generic_gflops", DEF_GENERIC_GFLOPS),
           ns = packed ? coef(kc, "segment_ns", DEF_SEGMENT_NS)
                       : coef(kc, "generic_segment_ns", DEF_GENERIC_SEGMENT_NS);
    (void)kept_blocks;
    double segments = width > 0 ? (double)kept_elems / width : 0;
    *dense_us = 2.0 * (double)n_out * (double)k / (dg * 1e3);
    *sparse_us = 2.0 * (double)kept_elems / (sg * 1e3) + segments * ns * 1e-3;
}

void rt_sparse_decide(const Graph *g, const HwEntry *e, SparseKernel force) {
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        IrSparse *s = n->op == OP_PARAM ? n->ann.sparse : NULL;
        if (!s || !s->have_pattern) continue;
        /* the weight of a linear is [out, in]: contraction along its columns;
         * a matmul's right operand is [in, out] (lower_sparse.c uses either) */
        bool lin = false;
        for (int j = n->id + 1; j < g->nnodes; j++)
            if (g->nodes[j]->op == OP_LINEAR && g->nodes[j]->in[1] == n) lin = true;
        int64_t n_out = lin ? s->rows : s->cols, k = lin ? s->cols : s->rows;
        rt_sparse_estimate(e, lin && s->packed, n_out * s->lead, k, lin ? s->bc : s->br, s->kept,
                           s->kept_elems, &s->est_dense_us, &s->est_sparse_us);
        s->kernel = force != SPARSE_KERNEL_AUTO          ? force
                    : s->est_sparse_us < s->est_dense_us ? SPARSE_KERNEL_SPARSE
                                                         : SPARSE_KERNEL_DENSE;
    }
}

SparseKernel rt_sparse_kernel_env(void) {
    const char *v = getenv("DSC_SPARSE_KERNEL");
    if (v && strcmp(v, "sparse") == 0) return SPARSE_KERNEL_SPARSE;
    if (v && strcmp(v, "dense") == 0) return SPARSE_KERNEL_DENSE;
    return SPARSE_KERNEL_AUTO;
}

void rt_sparse_decide_hwdb(const Graph *g, bool gpu) {
    bool any = false;
    for (int i = 0; i < g->nnodes && !any; i++)
        any = g->nodes[i]->ann.sparse != NULL;
    if (!any) return;
    Diag *quiet = diag_create();
    HwDb *db = rt_hwdb_open_default(NULL, 0, quiet);
    const HwEntry *e = db && !gpu ? rt_hwdb_host(db) : NULL;
    for (int i = 0; i < g->nnodes;
         i++) { /* the packed form is host memory the CUDA executor does not upload */
        IrSparse *s = g->nodes[i]->op == OP_PARAM ? g->nodes[i]->ann.sparse : NULL;
        if (s) s->packed = !gpu;
    }
    rt_sparse_decide(g, e, rt_sparse_kernel_env());
    rt_hwdb_free(db);
    diag_destroy(quiet);
}

int rt_sparse_layers(const Graph *g, RtSparseLayer *out, int cap) {
    Diag *quiet = diag_create();
    HwDb *db = rt_hwdb_open_default(NULL, 0, quiet);
    const HwEntry *e = db ? rt_hwdb_host(db) : NULL;
    int n = 0;
    for (int i = 0; i < g->nnodes && n < cap; i++) {
        const Node *p = g->nodes[i];
        const IrSparse *s = p->op == OP_PARAM ? p->ann.sparse : NULL;
        if (!s || !ir_type_is_static(g, &p->type)) continue;
        int64_t dims[IR_MAX_RANK], lead = 1;
        for (int k = 0; k < p->type.rank; k++)
            dim_is_const(g->dims, p->type.dim[k], &dims[k]);
        for (int k = 0; k < p->type.rank - 2; k++)
            lead *= dims[k];
        int64_t rows = dims[p->type.rank - 2], cols = dims[p->type.rank - 1];
        int64_t nbr = (rows + s->br - 1) / s->br, nbc = (cols + s->bc - 1) / s->bc;
        int64_t kb = ir_sparse_kept(s->density, lead * nbr * nbc);
        double numel = (double)(lead * rows * cols), full = (double)kb * s->br * s->bc;
        bool lin = false;
        for (int j = p->id + 1; j < g->nnodes; j++)
            if (g->nodes[j]->op == OP_LINEAR && g->nodes[j]->in[1] == p) lin = true;
        RtSparseLayer *l = &out[n++];
        *l = (RtSparseLayer){.name = p->name,
                             .br = s->br,
                             .bc = s->bc,
                             .density = s->density,
                             .params = numel,
                             .kept = full < numel ? full : numel};
        rt_sparse_estimate(e, lin, (lin ? rows : cols) * lead, lin ? cols : rows, lin ? s->bc : s->br, kb,
                           (int64_t)l->kept, &l->dense_us, &l->sparse_us);
        l->sparse = l->sparse_us < l->dense_us;
    }
    rt_hwdb_free(db);
    diag_destroy(quiet);
    return n;
}
