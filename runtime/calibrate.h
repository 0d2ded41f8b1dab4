/* Calibration of int8 activation scales (dsc compile --calibrate DIR).
 *
 * Runs the model in f32 on every input set of DIR and records, for every
 * precision candidate (passes/precision.h), the largest |x| of the input it
 * reads (min-max) or a percentile of |x| over all sets; passes/precision.c
 * turns it into a static per-tensor scale (PrecisionRequest.act_absmax).
 *
 * Layout: every subdirectory of DIR holding .npy files is one set, with one
 * INPUT.npy per model input; if DIR itself holds .npy files, it is the only
 * set.  Sets are taken in name order. */
#ifndef DSC_RUNTIME_CALIBRATE_H
#define DSC_RUNTIME_CALIBRATE_H

#include <stdbool.h>

#include "../passes/passes.h"
#include "../passes/precision.h"
#include "run.h"

typedef struct {
    int n;
    char **dirs;   /* per set: its directory */
    int ninputs;   /* per set: the same input names */
    char **names;  /* input names (ninputs) */
    char ***files; /* files[set][input] */
} CalibSets;

/* Reads DIR's layout (every set must give the same inputs); false with a
 * diagnostic naming the directory when it has no set or sets differ. */
bool rt_calib_sets(const char *dir, CalibSets *out, Diag *d);
void rt_calib_sets_free(CalibSets *s);
/* RunOptions for set i: its input files (random_inputs off). */
void rt_calib_set_inputs(const CalibSets *s, int i, RunOptions *run);

typedef struct {
    const CalibSets *sets;
    double percentile; /* 100: min-max; else this percentile of |x| (e.g. 99.99) */
    int opt_level;
    const char *const *disabled;
    int ndisabled;
    const SparsifyOptions *sparse; /* --sparsity / --sparse-block, or NULL */
    RunOptions run; /* weights and device; the inputs come from the sets */
} CalibOptions;

/* absmax[i] for every candidate i (at most PREC_MAX_CAND); *ncand their
 * number; req (if non-NULL) receives the pass's candidate table (labels). */
bool rt_calibrate(const char *file, const CalibOptions *o, double *absmax, int *ncand, PrecisionRequest *req,
                  Diag *d);

#endif
