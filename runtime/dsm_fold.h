/* Folding the exactly reproducible load-time constant groups of an optimized
 * graph into params, for the compiled model (.dsm) -- see dsm_fold.c and
 * docs/formats.md (".dsm", "Folded constants"). */
#ifndef DSC_RUNTIME_DSM_FOLD_H
#define DSC_RUNTIME_DSM_FOLD_H

#include <stdbool.h>

#include "../ir/arena.h"
#include "../ir/diag.h"
#include "../ir/ir.h"
#include "tensor.h"

typedef struct {
    Graph *graph;    /* the graph to store (in the arena given), @sparse records set */
    Tensor **params; /* by graph->nodes' OP_PARAM order: the caller's or owned */
    bool *owned;     /* params[i] is a folded value, freed by rt_dsm_folded_free */
    int nparams;
    int nfolded; /* values folded into params */
} RtDsmFolded;

/* `text`: the optimized graph as DSG (ir_print_dsg, no `weights` line);
 * `params`: its params' values in OP_PARAM order, `nparams` of them
 * (borrowed; must outlive *out).  Evaluates every load-time constant group
 * made of exact operations with the reference interpreter and returns the
 * graph in which each value such a group hands on is a param
 * `KEY.foldedI` (KEY: the key of the first param the group reads, I: the
 * value's index among the group's, in graph order), with the values.  On
 * failure reports into d and leaves *out zeroed. */
bool rt_dsm_fold(Arena *a, const char *text, Tensor *const *params, int nparams, RtDsmFolded *out, Diag *d);
void rt_dsm_folded_free(RtDsmFolded *f);

#endif
