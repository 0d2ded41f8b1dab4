/* Running a lowered model: the part every backend shares.
 *
 * rt_exec_run binds the dims from the inputs, checks the params, allocates
 * the memory plan's buffers (one arena: the sum of the buffer sizes at the
 * bound dims) and the load-time constant values, resolves every kernel buffer
 * to memory (inputs: the caller's tensors; params: the weights; planned
 * values: their arena buffer; views were resolved by lowering), then runs the
 * kernels in program order through the backend's launcher and copies the
 * outputs out.  Backends differ only in the launcher: the kernel-IR evaluator
 * (codegen/kir_eval.c, the reference for lowering), the host JIT (LLVM) and
 * CUDA. */
#ifndef DSC_RUNTIME_EXEC_H
#define DSC_RUNTIME_EXEC_H

#include <stdbool.h>
#include <stdint.h>

#include "../ir/kir.h"
#include "tensor.h"

/* Runs kernel k once over its whole parallel index space.  bufs[i] is the
 * memory of k->bufs[i] (host memory for host launchers); dims holds the value
 * of every dim symbol.  Reports and returns false on failure. */
typedef bool (*KernelLauncher)(void *ctx, const Graph *g, const Kernel *k, void *const *bufs, const int64_t *dims,
                               Diag *d);

/* Like rt_interp_run (runtime/interp.h): inputs in the order of the graph's
 * OP_INPUT nodes, params in the order of its OP_PARAM nodes; on success one
 * new tensor per graph output in outputs[]. */
bool rt_exec_run(const Graph *g, const KProgram *p, Tensor *const *inputs, int ninputs, Tensor *const *params,
                 Tensor **outputs, KernelLauncher launch, void *ctx, Diag *d);

#endif
