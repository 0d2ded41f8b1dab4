/* What `--precision` asks of passes/precision.c, and what the pass reports
 * back (its candidates and the precision each got), so that the accuracy
 * guard (runtime/precision_guard.c) can measure them and force some back to
 * f32.  A Graph points at one of these (g->precision); NULL means f32. */
#ifndef DSC_PASSES_PRECISION_H
#define DSC_PASSES_PRECISION_H

#include <stdbool.h>

#include "../ir/ir.h"

enum { PREC_MAX_CAND = 256 };

/* K at most this for int8: |sum of K products of i8 in [-127, 127]| < 2^31. */
#define PREC_I8_MAX_K 133144

typedef struct {
    char label[160]; /* "linear fc1.weight -> h (line 12:9)": op, weight param, name, place */
    DType chosen;    /* DT_F32, DT_F16, DT_BF16 or DT_I8 */
    DType wanted;    /* what the policy or a @precision hint asked for */
    const char *why; /* why chosen differs from wanted (static text), or NULL */
} PrecisionCand;

typedef struct PrecisionRequest {
    DType dtype;          /* the default for GEMMs: DT_F32 (no change), DT_F16, DT_BF16 or DT_I8 */
    const bool *keep_f32; /* per candidate ordinal, true: keep f32 (set by the guard); may be NULL */
    int nkeep;            /* entries in keep_f32 */
    /* per candidate ordinal: the calibrated largest |x| of its input (> 0: a
     * static int8 activation scale, runtime/calibrate.c); NULL or 0: dynamic */
    const double *act_absmax;
    int nabsmax;
    /* filled by the pass (even at f32, when a request is given) */
    int ncand;
    PrecisionCand cand[PREC_MAX_CAND];
    const Node *cand_input[PREC_MAX_CAND]; /* the f32 activation each candidate reads (its x) */
} PrecisionRequest;

/* "f32", "f16", "bf16", "int8" (the CLI's names; int8 is DT_I8). */
const char *pass_precision_name(DType t);
bool pass_precision_from_name(const char *s, DType *out);

#endif
