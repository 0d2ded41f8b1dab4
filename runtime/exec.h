/* Running a lowered model: the part every backend shares.
 *
 * rt_exec_run binds the dims from the inputs, checks the params, allocates
 * the memory plan's buffers (one arena: the sum of the buffer sizes at the
 * bound dims) and the load-time constant values, resolves every kernel buffer
 * to memory (inputs: the caller's tensors; params: the weights; planned
 * values: their arena buffer; views were resolved by lowering), then runs the
 * kernels in program order through the backend's launcher and copies the
 * outputs out.  Host backends differ only in the launcher: the kernel-IR
 * evaluator (codegen/kir_eval.c, the reference for lowering) and the host JIT
 * (LLVM).  The CUDA backend (runtime/cuda_exec.c) has memory of its own; it
 * shares the placement rules through rt_exec_layout and rt_exec_output. */
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
 * new tensor per graph output in outputs[].  Host memory: the launcher gets
 * host pointers. */
bool rt_exec_run(const Graph *g, const KProgram *p, Tensor *const *inputs, int ninputs, Tensor *const *params,
                 Tensor **outputs, KernelLauncher launch, void *ctx, Diag *d);

/* Memory a caller keeps across runs of one program (a session of the public
 * API, runtime/api.c).  Both borrowed; either may be NULL. */
typedef struct {
    unsigned char *arena;           /* RT_EXEC_ALIGN-aligned, arena_bytes long: at least the layout's
                                       arena_bytes at the run's dims (else an error); zeroed by each run */
    size_t arena_bytes;             /* NULL arena: one is allocated for the run */
    const unsigned char *constants; /* the block rt_exec_constants computed (read only: the load-time
                                       kernels do not run); NULL: computed by this run */
} RtExecMem;

/* rt_exec_run in the caller's memory (mem may be NULL: rt_exec_run).  No
 * state of its own: threads may run one program at once with their own
 * arenas (and a launcher that is thread-safe, as rt_host_launch is). */
bool rt_exec_run_mem(const Graph *g, const KProgram *p, Tensor *const *inputs, int ninputs,
                     Tensor *const *params, const RtExecMem *mem, Tensor **outputs, KernelLauncher launch,
                     void *ctx, Diag *d);

/* Runs the load-time kernels of p once (they read params and constants only,
 * never dims) into a new constant block of *bytes bytes (aligned_alloc'd;
 * free() it) laid out as rt_exec_layout says.  On failure *block is NULL. */
bool rt_exec_constants(const Graph *g, const KProgram *p, Tensor *const *params, KernelLauncher launch,
                       void *ctx, unsigned char **block, size_t *bytes, Diag *d);

/* ---- the layout: where every value lives, for any kind of memory -------------
 *
 * rt_exec_run's placement rules as data, so that an executor with memory of
 * its own (the CUDA backend's device memory, runtime/cuda_exec.c) places
 * values exactly as the host does.  A layout names no address: each value
 * gets a home, and the executor turns homes into addresses in its memory:
 *   RT_HOME_INPUT, RT_HOME_PARAM: the index-th input / param tensor;
 *   RT_HOME_CONSTANT: `offset` bytes into a block of constant_bytes that
 *     holds the values of load-time constant groups (they depend on params
 *     and constants only, never on dims: computed once when weights load);
 *   RT_HOME_ARENA: `offset` bytes into the run's arena of arena_bytes: the
 *     memory plan's buffers first (64-byte aligned), then one slot per value
 *     that has no plan buffer (no memory plan: -O0/-O1, or a value lowering
 *     keeps in memory on its own).
 * Every offset and both totals are multiples of RT_EXEC_ALIGN. */
enum { RT_EXEC_ALIGN = 64 };

typedef enum { RT_HOME_NONE, RT_HOME_INPUT, RT_HOME_PARAM, RT_HOME_CONSTANT, RT_HOME_ARENA } RtHomeKind;

typedef struct {
    RtHomeKind kind;
    int index;     /* RT_HOME_INPUT, RT_HOME_PARAM: the ordinal among the graph's inputs / params */
    size_t offset; /* RT_HOME_CONSTANT, RT_HOME_ARENA */
    size_t bytes;  /* the memory available there (the value's size, or its plan buffer's) */
} RtHome;

typedef struct {
    int nnodes;
    RtHome *home;          /* by node id: inputs, params and every value a kernel touches */
    size_t arena_bytes;    /* at least RT_EXEC_ALIGN */
    size_t constant_bytes; /* at least RT_EXEC_ALIGN */
    int nbuffers;          /* memory-plan buffers in the arena */
    int nown;              /* values with an arena slot of their own */
    int nconstants;        /* values in the constant block */
} RtExecLayout;

/* The layout of program p at the dim values `syms` (one per dim symbol, as
 * rt_bind_dims gives them).  Sizes are overflow-checked; a plan buffer too
 * small for a value placed in it is an internal error.  With syms NULL (a
 * loader, before any dims are bound): the constant block and the ordinals of
 * the inputs and params (bytes 0), no arena homes.  The constant block is the
 * same for every binding.  Free it with rt_exec_layout_free (also after a
 * failure). */
bool rt_exec_layout(const Graph *g, const KProgram *p, const int64_t *syms, RtExecLayout *out, Diag *d);
void rt_exec_layout_free(RtExecLayout *l);

/* Output i of the graph at `syms`: a new tensor with the output's dtype and
 * shape in *out.  A constant output is filled here and *from is NULL;
 * otherwise *from is the home its bytes ((*out)->nbytes of them) are copied
 * from (checked to hold them).  On failure *out is NULL, with an error. */
bool rt_exec_output(const Graph *g, const RtExecLayout *l, const int64_t *syms, int i, Tensor **out,
                    const RtHome **from, Diag *d);

#endif
