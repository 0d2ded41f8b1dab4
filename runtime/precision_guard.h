/* The accuracy guard for --precision (dsc compile --max-rel-error).
 *
 * Runs the model as f32 and with the requested precision on the same data,
 * measures the relative L2 error of every output, and when the largest is
 * over the budget moves the most sensitive low-precision ops back to f32
 * until it holds.  Sensitivity is measured, not guessed: the error of the
 * model with that op alone lowered.  The result is the set of candidates
 * (passes/precision.h) to keep in f32; compile with it as
 * PrecisionRequest.keep_f32. */
#ifndef DSC_RUNTIME_PRECISION_GUARD_H
#define DSC_RUNTIME_PRECISION_GUARD_H

#include <stdbool.h>
#include <stdio.h>

#include "../passes/passes.h"
#include "../passes/precision.h"
#include "run.h"

typedef struct {
    DType dtype;   /* the requested precision (not DT_F32) */
    double budget; /* the largest relative L2 error allowed, per output */
    int opt_level; /* pipeline options for every compilation */
    const char *const *disabled;
    int ndisabled;
    const SparsifyOptions *sparse; /* --sparsity / --sparse-block, or NULL */
    /* The data: inputs, weights, dims, seed and device, as for dsc run
     * (summary and output_dir are ignored; as_written is set here). */
    RunOptions run;
    FILE *report;             /* the per-op table; NULL: silent */
    const double *act_absmax; /* calibrated int8 activation ranges (PrecisionRequest); may be NULL */
    int nabsmax;
} GuardOptions;

typedef struct {
    int ncand;
    PrecisionCand cand[PREC_MAX_CAND]; /* as the all-lowered compilation chose */
    bool keep[PREC_MAX_CAND];          /* true: moved back to f32 by the guard */
    double alone[PREC_MAX_CAND];       /* error with this op alone lowered (-1: not lowered) */
    double error_all;                  /* error with every candidate as requested */
    double error_final;                /* error with the final assignment */
    int moved;                         /* candidates moved back */
    bool met;                          /* error_final <= budget */
} GuardResult;

/* Measures and decides; false on an error (the model does not compile or
 * run; reported in d).  Not meeting the budget even with every op back in
 * f32 is not an error: r->met says so. */
bool rt_precision_guard(const char *file, const GuardOptions *o, GuardResult *r, Diag *d);

/* max over the float outputs of ||got - want|| / ||want|| (||got - want|| when
 * want is zero); 0 when there are none. */
double rt_outputs_rel_error(Tensor *const *got, Tensor *const *want, int n);

#endif
