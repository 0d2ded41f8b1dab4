/* A scalar evaluator of the kernel IR: the reference backend.
 *
 * It runs a kernel's body once per point of its parallel index space, in
 * order, with the semantics kir.h defines: floats in f32 (C float arithmetic
 * and the f-suffixed libm functions), integers in i64 with two's-complement
 * wrap-around, bools as bools; loads convert the buffer's storage dtype to
 * the compute type, stores convert back (f16/bf16 round to nearest even,
 * i8/i32 wrap, bool is != 0).  Every load and store is bounds-checked against
 * the element count of the buffer's node at the bound dims, and an i64
 * division or remainder by zero is reported: both are lowering bugs, which is
 * what this evaluator exists to catch in CI without LLVM or a GPU.  A KS_TRAP
 * (a run-time error of the model, ir/trap.h) is recorded once, the points go
 * on, and the launch then fails with the interpreter's message. */
#ifndef DSC_CODEGEN_KIR_EVAL_H
#define DSC_CODEGEN_KIR_EVAL_H

#include <stdbool.h>
#include <stdint.h>

#include "../ir/kir.h"
#include "../ir/trap.h"

/* A KernelLauncher (runtime/exec.h); ctx is unused (pass NULL). */
bool cg_kir_eval(void *ctx, const Graph *g, const Kernel *k, void *const *bufs, const int64_t *dims, Diag *d);

/* The kernel as a device runs it: a KS_TRAP goes into *trap (unless it holds
 * one already) instead of failing the launch; false only for the evaluator's
 * own errors (lowering bugs).  The CUDA executor's tests run kernels this way
 * on their fake device memory. */
bool cg_kir_eval_into(const Graph *g, const Kernel *k, void *const *bufs, const int64_t *dims,
                      KTrapRecord *trap, Diag *d);

#endif
