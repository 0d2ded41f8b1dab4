/* Pattern-specialised block-sparse GEMM kernels (see lower_sparse.c). */
#ifndef DSC_CODEGEN_LOWER_SPARSE_H
#define DSC_CODEGEN_LOWER_SPARSE_H

#include "../ir/kir.h"
#include "../ir/sparse.h"

/* The pattern of n's weight when n is a `linear` whose weight, or a `matmul`
 * whose right operand, is a 2-D param pruned at load time (a pattern is
 * known) for which the cost model chose the sparse kernel; else NULL. */
const IrSparse *cg_sparse_gemm(const Node *n);

/* The kernel that computes n (for which cg_sparse_gemm is not NULL) into
 * `out` from the values x (n's activation operand, or the value it is a view
 * of: same linear layout) and, for a linear with a bias, `bias` (likewise),
 * each read from memory with the role given.  The kernel's name and group are
 * set; flops and bytes estimate the kept work. */
Kernel *cg_lower_sparse(Graph *g, const Node *n, const Node *x, KBufRole xrole, const Node *bias,
                        KBufRole brole, const Node *out, KBufRole orole, const char *name, int group);

#endif
