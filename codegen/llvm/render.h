/* Kernel IR -> LLVM IR, through the LLVM-C API (the host backend's renderer).
 *
 * cg_llvm_render adds one function per kernel to a module:
 *
 *     void NAME(void *const *bufs, const int64_t *dims, int64_t begin, int64_t end, KTrapRecord *trap)
 *
 * bufs[i] is the memory of k->bufs[i], dims[s] the value of dim symbol s,
 * trap the run's record of run-time errors (ir/trap.h: a KS_TRAP that fires
 * sets it by an atomic compare-and-swap of the code, so concurrent calls may
 * share it; the caller zeroes it and reads it after the calls return); the
 * function runs the kernel body for the flattened parallel points
 * [begin, end) (row-major over par_extent[]), so a thread pool hands chunks
 * of one launch to its threads.  See render.c for how the loops are laid out
 * and why. */
#ifndef DSC_CODEGEN_LLVM_RENDER_H
#define DSC_CODEGEN_LLVM_RENDER_H

#include <stdbool.h>
#include <stddef.h>

#include <llvm-c/Core.h>

#include "../../ir/kir.h"

typedef struct {
    /* f16 loads and stores use the hardware conversions (fpext/fptrunc half,
     * x86 F16C); otherwise integer code with the same rounding. */
    bool f16c;
    /* Which buffers share memory.  NULL: no two buffers that the kernel
     * writes or that are written share memory, and every buffer pointer is
     * `noalias`.  Otherwise alias[i] is the smallest j with the same memory
     * as buffer i (alias[i] == i for a buffer of its own): buffers of one
     * class use one pointer (an in-place update reads and writes it). */
    const int *alias;
    /* Buffers may overlap in any way: no `noalias` at all. */
    bool overlap;
    /* Leave out the llvm.loop.vectorize.enable hints (tests, comparisons). */
    bool no_vectorize_hints;
} CgLlvmOptions;

/* Adds the kernel's function, named `name`, to module m (which should carry
 * the target's data layout already: loads and stores take their alignment
 * from it).  Helper functions (exp, log, tanh, erf, half conversions) are
 * added on first use as internal functions and inlined by the optimizer.
 * Returns the function, or NULL with a message in err for a kernel it cannot
 * render (a kernel that kir_verify rejects). */
LLVMValueRef cg_llvm_render(LLVMModuleRef m, const Graph *g, const Kernel *k, const char *name,
                            const CgLlvmOptions *opt, char *err, size_t errn);

#endif
