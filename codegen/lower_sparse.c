/* Block-sparse GEMM kernels specialised to the pattern (docs/sparsity.md).
 *
 * Lowering runs after the weights load (runtime/run.c), so when a GEMM's
 * weight was pruned (runtime/sparse.c) its pattern -- which blocks survived
 * -- is known and becomes part of the kernel: two constant int32 tables in
 * the kernel's code (KTable; an LLVM private constant, a CUDA __device__
 * const array), in CSR order over the blocks along the output axis:
 *   t0[ob] .. t0[ob + 1]   the kept full-width blocks of output block ob,
 *   t1[..]                 the index of each along the contraction axis,
 *   t2[ob]                 (only when the contraction does not divide into
 *                          blocks) whether the partial last block is kept.
 * Both the tables and the block shape are in the rendered source, so the
 * kernel cache keys on the pattern: another pattern is another kernel.
 *
 * The values are read from the pruned dense weight itself, at the kept
 * blocks only: no second copy, and the same access pattern a BSR array
 * would give (a block row's segment is contiguous).  The storage form for a
 * compiled model is rt_sparse_to_bsr (runtime/sparse.h).
 *
 * One point per output element, with the output feature n as the first
 * parallel variable and the row m of the activation as the last:
 *
 *   acc = 0
 *   for t < t0[n / bo + 1] - t0[n / bo]:            (kept blocks of n's row)
 *     for c < bk:                                   (constant: the block width)
 *       acc += W[n, t1[t0[n / bo] + t] * bk + c] * x[m, t1[..] * bk + c]
 *   if t2[n / bo]: the partial block, the same with its width
 *   y[m, n] = acc (+ bias[n])
 *
 * Loop extents depend on n only, never on m, so the host renderer's
 * unroll-and-jam (codegen/llvm/render.c) takes 4 rows m at once: the block
 * list and the weight segment are loaded once for four dot products, and the
 * constant-width inner loop is vectorised (its width is the block's).  For a
 * linear the weight is [out, in] and the segment is contiguous; for a matmul
 * the right operand is [in, out], the blocks tile it as stored, and the
 * segment is strided by N (correct, slower; the linear form is what the
 * frontend's canonicalisation produces for [out, in] weights).
 *
 * The host form of a linear (lower_packed, when IrSparse.packed: the
 * runtime sets it for the host, not the GPU) goes further.  The generic
 * form above pays, per output element, a horizontal sum of its column
 * accumulators and the table reads, which at low density cost as much as
 * the multiply-adds.  So lowering packs the kept blocks column-major into
 * data of its own (KB_DATA, read-only host memory in the graph's arena) and
 * each point computes a whole block row's outputs for one activation row:
 *
 *   acc[r] = 0                                   (r < br: the block row's outputs)
 *   for each kept block e of block row i, at column k0:
 *     for c < bc:  xv = x[m, k0 + c];  acc[r] += P[e][c][r] * xv   (r unrolled)
 *   y[m, i*br + r] = acc[r] (+ bias)
 *
 * The br accumulators are the outputs (vector registers, stored side by
 * side), the activation value is loaded once per column and broadcast, and
 * the packed column is contiguous: the register-blocked shape of a dense
 * GEMM, restricted to the kept blocks.  The partial last block of a row is
 * listed last in its row's entries and run with its own width.
 *
 * Accumulation order: the kept blocks in ascending contraction index, each
 * block's elements in order -- a reordering of the dense dot product, within
 * the tolerances every backend is tested by. */
#include "lower_sparse.h"

#include <stdlib.h>
#include <string.h>

#include "../ir/assert.h"

const IrSparse *cg_sparse_gemm(const Node *n) {
    if ((n->op != OP_LINEAR && n->op != OP_MATMUL) || n->nin < 2 || !n->in[0] || !n->in[1]) return NULL;
    const Node *w = n->in[1];
    const IrSparse *s = w->op == OP_PARAM ? w->ann.sparse : NULL;
    if (!s || !s->have_pattern || s->kernel != SPARSE_KERNEL_SPARSE || s->lead != 1 || w->type.rank != 2)
        return NULL;
    if (!dtype_is_float(n->type.dtype) || n->in[0]->type.rank < 1) return NULL;
    if (n->op == OP_LINEAR && n->nin > 2 && n->in[2] && n->in[2]->op == OP_CONST) return NULL;
    return s;
}

/* The tables of the pattern along the output axis (see the top). */
typedef struct {
    int64_t nob, nbk; /* output blocks, contraction blocks */
    int bo, bk;       /* block extent along the output, along the contraction */
    int64_t kdim, nout;
    bool tail; /* the last contraction block is partial */
    int32_t *ptr, *idx, *tl;
    int64_t nnz;
} Pattern;

static void pattern(const IrSparse *s, bool linear, Pattern *p) {
    p->bo = linear ? s->br : s->bc;
    p->bk = linear ? s->bc : s->br;
    p->nob = linear ? s->nbr : s->nbc;
    p->nbk = linear ? s->nbc : s->nbr;
    p->kdim = linear ? s->cols : s->rows;
    p->nout = linear ? s->rows : s->cols;
    p->tail = p->kdim % p->bk != 0;
    p->ptr = calloc((size_t)p->nob + 1, sizeof(int32_t));
    p->idx = calloc((size_t)(s->kept + 1), sizeof(int32_t));
    p->tl = calloc((size_t)p->nob + 1, sizeof(int32_t));
    DSC_ASSERT(p->ptr && p->idx && p->tl);
    p->nnz = 0;
    for (int64_t o = 0; o < p->nob; o++) {
        p->ptr[o] = (int32_t)p->nnz;
        for (int64_t j = 0; j < p->nbk; j++) {
            int64_t b = linear ? o * s->nbc + j : j * s->nbc + o;
            if (!s->keep[b]) continue;
            if (p->tail && j == p->nbk - 1)
                p->tl[o] = 1;
            else
                p->idx[p->nnz++] = (int32_t)j;
        }
    }
    p->ptr[p->nob] = (int32_t)p->nnz;
}

static KExpr *ci(Graph *g, int64_t v) { return kir_const_i(g, v); }
static KExpr *add(Graph *g, KExpr *a, KExpr *b) { return kir_bin(g, KO_ADD, a, b); }
static KExpr *mul(Graph *g, KExpr *a, KExpr *b) { return kir_bin(g, KO_MUL, a, b); }

/* acc[c] += W[n, k0 + c] * x[m, k0 + c] for c < width, unrolled: one
 * accumulator per column of the block, which the vectorizer packs into
 * vector registers (the sum over them is taken once, at the end). */
static KStmt *segment(Graph *g, Kernel *k, bool linear, const Pattern *p, int wb, int xb, const int *acc,
                      KExpr *n, KExpr *m, KExpr *k0, int width) {
    KStmt *s = NULL;
    for (int c = 0; c < width; c++) {
        KExpr *kk = add(g, k0, ci(g, c));
        KExpr *wi = linear ? add(g, mul(g, n, ci(g, p->kdim)), kk) : add(g, mul(g, kk, ci(g, p->nout)), n);
        KExpr *xi = add(g, mul(g, m, ci(g, p->kdim)), kk);
        KExpr *prod = mul(g, kir_load(g, k, wb, wi), kir_load(g, k, xb, xi));
        kir_append(&s, kir_set(g, acc[c], add(g, kir_local(g, k, acc[c]), prod)));
    }
    return s;
}

/* The packed form of a linear's pruned weight [N, K] (see the top): the kept
 * blocks in the order of t1 (block rows, then the full blocks of each, then
 * its partial last block), each block column-major -- P[(e*bc + c)*br + r] is
 * W[i*br + r, j*bc + c] of the e-th listed block (i, j), zero outside W. */
static void *packed_values(Graph *g, const IrSparse *s, const Pattern *p, DType dt, int64_t *nelems) {
    int esz = dtype_size(dt), br = s->br, bc = s->bc;
    int64_t nblk = s->kept, per = (int64_t)br * bc;
    unsigned char *P = arena_alloc(g->arena, (size_t)(nblk * per * esz) + 1);
    const unsigned char *W = s->values;
    int64_t e = 0;
    for (int64_t i = 0; i < p->nob; i++) {
        int64_t nfull = p->ptr[i + 1] - p->ptr[i];
        for (int64_t q = 0; q <= nfull; q++) {
            int64_t j;
            if (q < nfull)
                j = p->idx[p->ptr[i] + q];
            else if (p->tail && p->tl[i])
                j = p->nbk - 1;
            else
                break;
            for (int c = 0; c < bc; c++)
                for (int r = 0; r < br; r++) {
                    int64_t y = i * br + r, xx = j * bc + c;
                    if (y < s->rows && xx < s->cols)
                        memcpy(P + ((e * bc + c) * br + r) * esz, W + (y * s->cols + xx) * esz, (size_t)esz);
                }
            e++;
        }
    }
    DSC_ASSERT(e == nblk);
    *nelems = nblk * per;
    return P;
}

/* The host form of a linear over a pruned weight: one point per (row m of
 * the activation, block row i of the weight) computing the block row's br
 * outputs at once -- for each kept block and each of its columns c, the
 * activation value x[m, k0 + c] is loaded once and multiplied into br
 * accumulators with the block's column, which is contiguous in the packed
 * copy.  No horizontal sums: the accumulators are the outputs, stored side by
 * side.  The packed copy is KB_DATA (host memory lowering owns), so the GPU
 * keeps the form below. */
static Kernel *lower_packed(Graph *g, const Node *n, const IrSparse *s, Pattern *p, const Node *x,
                            KBufRole xrole, const Node *bias, KBufRole brole, const Node *out, KBufRole orole,
                            const char *name, int group) {
    Kernel *k = kir_kernel_create(g, name, group);
    const Node *w = n->in[1];
    int64_t np;
    void *P = packed_values(g, s, p, w->type.dtype, &np);
    int pb = kir_data_buffer(g, k, w, w->type.dtype, P, np);
    int xb = kir_buffer(g, k, x, xrole, false);
    int bb = bias ? kir_buffer(g, k, bias, brole, false) : -1;
    int ob = kir_buffer(g, k, out, orole, true);
    /* t1 lists the partial last block too (last in its row), t2 says so */
    int32_t *ptr = calloc((size_t)p->nob + 1, sizeof(int32_t));
    DSC_ASSERT(ptr);
    for (int64_t i = 0, e = 0; i < p->nob; i++) {
        ptr[i] = (int32_t)e;
        e += p->ptr[i + 1] - p->ptr[i] + (p->tail && p->tl[i]);
        ptr[i + 1] = (int32_t)e;
    }
    int t0 = kir_new_table(g, k, ptr, (int)p->nob + 1);
    int32_t *idx = calloc((size_t)s->kept + 1, sizeof(int32_t));
    DSC_ASSERT(idx);
    for (int64_t i = 0, e = 0; i < p->nob; i++) {
        for (int32_t q = p->ptr[i]; q < p->ptr[i + 1]; q++)
            idx[e++] = p->idx[q];
        if (p->tail && p->tl[i]) idx[e++] = (int32_t)(p->nbk - 1);
    }
    int t1 = kir_new_table(g, k, idx, s->kept > 0 ? (int)s->kept : 1);
    int t2 = p->tail ? kir_new_table(g, k, p->tl, (int)p->nob) : -1;
    free(ptr);
    free(idx);

    const Type *xt = &n->in[0]->type;
    DimId rows = dim_const(g->dims, 1);
    for (int i = 0; i < xt->rank - 1; i++)
        rows = dim_mul(g->dims, rows, xt->dim[i]);
    int vm = kir_new_var(k), vi = kir_new_var(k);
    k->npar = 2;
    k->par_extent = arena_alloc(g->arena, 2 * sizeof(KExpr *));
    k->par_extent[0] = kir_from_dim(g, rows);
    k->par_extent[1] = ci(g, p->nob);
    KExpr *mv = kir_var(g, vm), *iv = kir_var(g, vi);
    int br = s->br, bc = s->bc;
    int *acc = arena_alloc(g->arena, sizeof(int) * (size_t)br);
    KStmt *body = NULL;
    for (int r = 0; r < br; r++) {
        acc[r] = kir_new_local(g, k, KT_F32);
        kir_append(&body, kir_set(g, acc[r], kir_const_f(g, 0)));
    }
    KExpr *start = kir_table_load(g, k, t0, iv);
    KExpr *count = kir_bin(g, KO_SUB, kir_table_load(g, k, t0, add(g, iv, ci(g, 1))), start);
    if (p->tail) count = kir_bin(g, KO_SUB, count, kir_table_load(g, k, t2, iv));
        /* one block: entry e of the list, contraction columns k0 .. k0 + width */
#define BLOCK(E, K0, WIDTH, OUT)                                                                             \
    do {                                                                                                     \
        for (int c = 0; c < (WIDTH); c++) {                                                                  \
            KExpr *xv = kir_load(g, k, xb, add(g, mul(g, mv, ci(g, p->kdim)), add(g, (K0), ci(g, c))));      \
            for (int r = 0; r < br; r++) {                                                                   \
                KExpr *pi = add(g, mul(g, (E), ci(g, (int64_t)bc * br)), ci(g, (int64_t)c * br + r));        \
                kir_append(&(OUT),                                                                           \
                           kir_set(g, acc[r],                                                                \
                                   add(g, kir_local(g, k, acc[r]), mul(g, kir_load(g, k, pb, pi), xv))));    \
            }                                                                                                \
        }                                                                                                    \
    } while (0)
    int t = kir_new_var(k);
    KExpr *e = add(g, start, kir_var(g, t));
    KStmt *blk = NULL;
    BLOCK(e, mul(g, kir_table_load(g, k, t1, e), ci(g, bc)), bc, blk);
    kir_append(&body, kir_for(g, t, count, blk));
    if (p->tail) {
        int64_t last = (p->nbk - 1) * bc;
        KExpr *el = kir_bin(g, KO_SUB, kir_table_load(g, k, t0, add(g, iv, ci(g, 1))), ci(g, 1));
        KStmt *tb = NULL;
        BLOCK(el, ci(g, last), (int)(p->kdim - last), tb);
        kir_append(&body, kir_if(g, kir_bin(g, KO_NE, kir_table_load(g, k, t2, iv), ci(g, 0)), tb));
    }
#undef BLOCK
    int64_t full = p->nout % br ? p->nout % br : br; /* rows of the last block row */
    for (int r = 0; r < br; r++) {
        KExpr *nidx = add(g, mul(g, iv, ci(g, br)), ci(g, r));
        KExpr *v = kir_local(g, k, acc[r]);
        if (bb >= 0) v = add(g, v, kir_load(g, k, bb, nidx));
        KStmt *st = kir_store(g, ob, add(g, mul(g, mv, ci(g, p->nout)), nidx), v);
        kir_append(&body, r < full ? st : kir_if(g, kir_bin(g, KO_LT, nidx, ci(g, p->nout)), st));
    }
    k->body = body;
    DimTable *dt = g->dims;
    k->flops = dim_mul(dt, rows, dim_const(dt, 2 * s->kept_elems));
    k->bytes = dim_add(dt, dim_add(dt, ir_value_bytes(g, x), ir_value_bytes(g, out)),
                       dim_const(dt, np * dtype_size(w->type.dtype)));
    return k;
}

Kernel *cg_lower_sparse(Graph *g, const Node *n, const Node *x, KBufRole xrole, const Node *bias,
                        KBufRole brole, const Node *out, KBufRole orole, const char *name, int group) {
    const IrSparse *s = cg_sparse_gemm(n);
    DSC_ASSERT(s);
    bool linear = n->op == OP_LINEAR;
    if (linear && s->packed && s->values) {
        Pattern pp;
        pattern(s, true, &pp);
        Kernel *k = lower_packed(g, n, s, &pp, x, xrole, bias, brole, out, orole, name, group);
        free(pp.ptr);
        free(pp.idx);
        free(pp.tl);
        return k;
    }
    Pattern p;
    pattern(s, linear, &p);
    Kernel *k = kir_kernel_create(g, name, group);
    int wb = kir_buffer(g, k, n->in[1], KB_PARAM, false);
    int xb = kir_buffer(g, k, x, xrole, false);
    int bb = bias ? kir_buffer(g, k, bias, brole, false) : -1;
    int ob = kir_buffer(g, k, out, orole, true);
    int t0 = kir_new_table(g, k, p.ptr, (int)p.nob + 1);
    int t1 = kir_new_table(g, k, p.idx, p.nnz > 0 ? (int)p.nnz : 1);
    int t2 = p.tail ? kir_new_table(g, k, p.tl, (int)p.nob) : -1;

    /* rows of the activation: every dim of x but the contracted last one */
    const Type *xt = &n->in[0]->type;
    DimId rows = dim_const(g->dims, 1);
    for (int i = 0; i < xt->rank - 1; i++)
        rows = dim_mul(g->dims, rows, xt->dim[i]);
    int vm = kir_new_var(k), vn = kir_new_var(k);
    k->npar = 2;
    k->par_extent = arena_alloc(g->arena, 2 * sizeof(KExpr *));
    k->par_extent[0] = kir_from_dim(g, rows);
    k->par_extent[1] = ci(g, p.nout);
    KExpr *nv = kir_var(g, vn), *mv = kir_var(g, vm);

    KExpr *o = p.bo == 1 ? nv : kir_bin(g, KO_DIV, nv, ci(g, p.bo));
    KExpr *start = kir_table_load(g, k, t0, o);
    KExpr *count = kir_bin(g, KO_SUB, kir_table_load(g, k, t0, add(g, o, ci(g, 1))), start);
    int *acc = arena_alloc(g->arena, sizeof(int) * (size_t)p.bk);
    KStmt *body = NULL;
    for (int c = 0; c < p.bk; c++) {
        acc[c] = kir_new_local(g, k, KT_F32);
        kir_append(&body, kir_set(g, acc[c], kir_const_f(g, 0)));
    }
    int t = kir_new_var(k);
    KExpr *k0 = mul(g, kir_table_load(g, k, t1, add(g, start, kir_var(g, t))), ci(g, p.bk));
    kir_append(&body, kir_for(g, t, count, segment(g, k, linear, &p, wb, xb, acc, nv, mv, k0, p.bk)));
    if (p.tail) {
        int64_t last = (p.nbk - 1) * p.bk;
        KStmt *seg = segment(g, k, linear, &p, wb, xb, acc, nv, mv, ci(g, last), (int)(p.kdim - last));
        kir_append(&body, kir_if(g, kir_bin(g, KO_NE, kir_table_load(g, k, t2, o), ci(g, 0)), seg));
    }
    /* the column accumulators summed in order: a chain, which keeps the
     * vectorizer's bundle for the loop the width of the block (a tree here
     * makes it choose pairs) */
    KExpr **sum = arena_alloc(g->arena, sizeof(KExpr *));
    sum[0] = kir_local(g, k, acc[0]);
    for (int c = 1; c < p.bk; c++)
        sum[0] = add(g, sum[0], kir_local(g, k, acc[c]));
    KExpr *v = sum[0];
    if (bb >= 0) v = add(g, v, kir_load(g, k, bb, nv));
    kir_append(&body, kir_store(g, ob, add(g, mul(g, mv, ci(g, p.nout)), nv), v));
    k->body = body;

    /* estimates: the kept multiply-adds, and the bytes of x, the kept weights and y */
    DimTable *dt = g->dims;
    k->flops = dim_mul(dt, rows, dim_const(dt, 2 * s->kept_elems));
    int64_t wbytes = s->kept_elems * dtype_size(n->in[1]->type.dtype);
    k->bytes = dim_add(dt, dim_add(dt, ir_value_bytes(g, x), ir_value_bytes(g, out)), dim_const(dt, wbytes));
    free(p.ptr);
    free(p.idx);
    free(p.tl);
    return k;
}
