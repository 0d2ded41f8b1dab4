/* Block sparsity of a param: what `@sparse(block=[r, c], density=d)` asks
 * for, and (once the weights are loaded) the pattern that pruning left.
 *
 * passes/sparsify.c attaches one IrSparse to every param carrying a @sparse
 * hint (Node.ann.sparse).  The runtime (runtime/sparse.c) prunes the param's
 * weights when they load and records the pattern here; lowering
 * (codegen/lower_sparse.c) reads the pattern to generate kernels specialised
 * to it.  The pruning rule itself is documented in docs/sparsity.md. */
#ifndef DSC_IR_SPARSE_H
#define DSC_IR_SPARSE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    SPARSE_KERNEL_AUTO,   /* not decided yet (no pattern, or no cost model run) */
    SPARSE_KERNEL_SPARSE, /* pattern-specialised kernels */
    SPARSE_KERNEL_DENSE,  /* the dense GEMM over the pruned (zeroed) weights */
} SparseKernel;

typedef struct {
    int br, bc;     /* block shape over the last two dims: rows, columns */
    double density; /* fraction of blocks kept (see ir_sparse_kept) */
    /* Set by the runtime when the weights load (runtime/sparse.c). */
    bool have_pattern;
    int64_t lead;                       /* product of the leading dims (1 for a 2-D param) */
    int64_t rows, cols;                 /* the last two dims */
    int64_t nbr, nbc;                   /* blocks per column and per row: ceil(rows/br), ceil(cols/bc) */
    int64_t kept;                       /* kept blocks, over the whole tensor */
    int64_t kept_elems;                 /* elements in kept blocks (edge blocks are smaller) */
    const uint8_t *keep;                /* lead * nbr * nbc flags, row-major: block (l, i, j) kept */
    const void *values;                 /* the pruned weight's data (the runtime's tensor), while loaded */
    SparseKernel kernel;                /* the cost model's choice (runtime/sparse.c) */
    bool packed;                        /* host: the linear kernel over a packed copy (lower_sparse.c) */
    double est_dense_us, est_sparse_us; /* its estimates, for --stats */
} IrSparse;

/* Number of blocks kept out of `nblocks` at `density`: ceil(density *
 * nblocks), computed in double with a slack of 1e-9 below (so 0.3 * 100
 * keeps 30, not 31), clamped to [0, nblocks]. */
int64_t ir_sparse_kept(double density, int64_t nblocks);

#endif
