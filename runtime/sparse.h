/* Block pruning at load time, the block-compressed form, and the sparse-vs-
 * dense cost model (docs/sparsity.md). */
#ifndef DSC_RUNTIME_SPARSE_H
#define DSC_RUNTIME_SPARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "../ir/ir.h"
#include "../ir/sparse.h"
#include "hwdb.h"
#include "tensor.h"

/* Prunes t (a float tensor of rank >= 2, owned) in place by the rule of
 * docs/sparsity.md with block br x bc and `density`: blocks tile the last two
 * dims (partial blocks at the edges), the ceil(density x blocks) blocks of
 * largest L2 norm over the whole tensor are kept (ties to the lower block
 * index, a NaN norm ranks above every number), the others become zero.  If
 * keep is non-NULL it receives one flag per block (lead x nbr x nbc,
 * row-major).  Returns the number of kept blocks. */
int64_t rt_sparse_prune(Tensor *t, int br, int bc, double density, uint8_t *keep);

/* For every param of g with Node.ann.sparse: makes params[i] (in the order
 * of g's OP_PARAM nodes) an owned copy if it is a view, prunes it, and
 * records the pattern in the IrSparse (memory in g's arena).  Errors (a
 * weight whose shape is not the param's) name the param. */
bool rt_sparse_apply(const Graph *g, Tensor **params, Diag *d);

/* The block-compressed (BSR) form of a pruned param, for storage (.dsm):
 * rowptr i32[lead * nbr + 1], colidx i32[kept], values (the param's dtype)
 * [kept, br, bc] -- edge blocks padded with zeros to the full block shape.
 * Block row (l, i) is rowptr index l * nbr + i.  New tensors the caller
 * frees; false (and nothing allocated) if s has no pattern or memory runs out. */
bool rt_sparse_to_bsr(const Tensor *pruned, const IrSparse *s, Tensor **rowptr, Tensor **colidx,
                      Tensor **values);

/* The cost model: estimated microseconds per row of the activation (the
 * GEMM's M) of the dense GEMM over a [n_out, k] weight and of the
 * pattern-specialised sparse kernel (its packed host form, or the generic
 * one), from the hwdb entry's `sparse_gemm` coefficients (docs/hwdb.md);
 * `width` is the block's extent along the contraction (bc for linear, br for
 * matmul), `kept_elems` the kept weights. */
void rt_sparse_estimate(const HwEntry *e, bool packed, int64_t n_out, int64_t k, int width,
                        int64_t kept_blocks, int64_t kept_elems, double *dense_us, double *sparse_us);

/* Runs the cost model for every pruned param with a pattern, for the device
 * of entry e (NULL: built-in host coefficients), and records the choice in
 * its IrSparse.  `force`: SPARSE_KERNEL_AUTO to let the model choose, else
 * that choice for every param (tests, benches: DSC_SPARSE_KERNEL=sparse|dense). */
void rt_sparse_decide(const Graph *g, const HwEntry *e, SparseKernel force);

/* rt_sparse_decide with the default hwdb's host entry (gpu false), or the
 * built-in coefficients (gpu true: no GPU entry has measured ones yet), and
 * the choice forced by $DSC_SPARSE_KERNEL.  Does nothing without @sparse. */
void rt_sparse_decide_hwdb(const Graph *g, bool gpu);

/* The cost model's view of one pruned param at compile time (no pattern
 * yet: kept elements as in pass_sparsify_count), for --stats. */
typedef struct {
    const char *name;
    int br, bc;
    double density;
    double params, kept;        /* elements */
    double dense_us, sparse_us; /* per row of the activation */
    bool sparse;                /* the choice the estimates give */
} RtSparseLayer;

/* One entry per param with @sparse and a static shape (at most cap), with
 * the default hwdb's host entry (built-in figures if none); the count. */
int rt_sparse_layers(const Graph *g, RtSparseLayer *out, int cap);

/* SPARSE_KERNEL_AUTO unless $DSC_SPARSE_KERNEL is "sparse" or "dense". */
SparseKernel rt_sparse_kernel_env(void);

#endif
