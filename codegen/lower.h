/* Lowering: fusion groups to kernel IR (ir/kir.h).
 *
 * See codegen/lower.c for the strategy and docs/codegen.md for the rules a
 * backend can rely on. */
#ifndef DSC_CODEGEN_LOWER_H
#define DSC_CODEGEN_LOWER_H

#include <stdbool.h>

#include "../ir/kir.h"

/* Lowers every group of g into kernels appended to `out` in run order:
 * the kernels of GK_CONSTANT groups first (load_time = true), then the others
 * in schedule order.  Works on a graph that went through the -O2 pipeline
 * (fusion groups, memory plan) and on one without groups (-O0, -O1: every
 * computing node is its own group) or without a memory plan.
 *
 * Requires: a verified graph; `out` zeroed, or with out->g already set to g.
 * Lower a graph once per program (kernel names would repeat).
 * Guarantees: every kernel passes kir_verify; kernel names are unique C
 * identifiers `<model>_g<group>_<k>` (`<model>_n<node>_<k>` without groups,
 * where Kernel.group is -1); every value read across kernels or returned is
 * written by exactly one kernel (views resolved to their underlying value).
 * Returns false with an error in d on an internal failure (a lowering bug). */
bool cg_lower(Graph *g, KProgram *out, Diag *d);

#endif
