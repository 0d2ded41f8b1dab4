/* The pass pipeline: one pass per file, one entry point each, listed once in
 * pipeline order in passes/pipeline.c. */
#ifndef DSC_PASSES_PASSES_H
#define DSC_PASSES_PASSES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../ir/ir.h"

typedef bool (*PassFn)(Graph *g, Diag *d);

typedef struct {
    const char *name;
    PassFn run;
    int min_opt;         /* runs at -O<min_opt> and above */
    const char *summary; /* one line for `dsc passes` */
} PassInfo;

int pass_count(void);
const PassInfo *pass_get(int i);
const PassInfo *pass_find(const char *name);

/* What the pipeline measured for one pass that ran. */
typedef struct {
    const PassInfo *pass;
    double ms;
    int ops_before, ops_after;
} PassRecord;

/* The block-pruning flags (--sparsity, --sparse-block); see passes/sparsify.c. */
typedef struct {
    bool have_sparsity, have_block;
    double sparsity; /* fraction of blocks removed, in [0, 1] */
    int br, bc;      /* block shape */
} SparsifyOptions;

typedef struct {
    int opt_level;               /* 0, 1, 2 */
    const char *const *disabled; /* pass names not to run */
    int ndisabled;
    /* Called before / after each pass that runs (either may be NULL); `index`
     * is the pass's position in the pipeline, from 1. */
    void (*before)(void *ctx, int index, const PassInfo *p, const Graph *g);
    void (*after)(void *ctx, int index, const PassInfo *p, const Graph *g);
    void *ctx;
    /* If non-NULL, receives one record per pass that ran (room for pass_count()). */
    PassRecord *records;
    int nrecords;
    /* If non-NULL, turned into @sparse hints before the first pass. */
    const SparsifyOptions *sparse;
} PipelineOptions;

/* Runs the pipeline, verifying the graph after every pass. */
bool pass_run_pipeline(Graph *g, Diag *d, PipelineOptions *opt);

/* Figures about a compiled graph for `--stats`, with the dims bound to `syms`
 * (dim_sym_count entries).  Bytes moved: every operation as its own kernel
 * reading its operands and writing its result (unfused) vs every fusion group
 * reading its external operands and writing the values used outside it
 * (fused); reshapes, squeezes and unsqueezes move nothing, and groups computed
 * from params alone run once at load time, not per inference.  Bytes moved
 * count activations (inputs, intermediates, outputs); weights are counted
 * apart in weight_bytes, because every schedule reads each weight once per
 * inference, fused or not.  Peak: the sum of the memory-plan buffers vs the
 * sum of every intermediate value. */
typedef struct {
    int ops;
    int kernels;            /* fusion groups that launch a kernel per inference */
    double bytes_unfused, bytes_fused; /* activation bytes read and written */
    double weight_bytes;    /* weights as stored: params, or the load-time constant values replacing them */
    double weight_bytes_by_dtype[DT_COUNT];
    double peak_bytes_planned, peak_bytes_naive;
    bool fused, planned;    /* whether fusion / memory planning ran */
    /* Block sparsity (pass_sparsify_count): elements of the GEMM weights
     * (eligible params, see pass_sparsify_eligible, and any param with
     * @sparse), the elements pruning keeps (kept blocks x block size, capped
     * at the param's size: exact unless edge blocks are partial, then at
     * most that), and the bytes the block-compressed form saves over the
     * dense one (rt_sparse_to_bsr's layout: full blocks plus int32 indices). */
    double gemm_weight_params, gemm_weight_params_kept, sparse_bytes_saved;
} GraphStats;

bool pass_graph_stats(Graph *g, const int64_t *syms, GraphStats *out, Diag *d);

/* The passes, in pipeline order (one file each). */
bool pass_sparsify(Graph *g, Diag *d);
bool pass_simplify(Graph *g, Diag *d);
bool pass_canonicalize(Graph *g, Diag *d);
bool pass_fold_batchnorm(Graph *g, Diag *d);
bool pass_constfold(Graph *g, Diag *d);
bool pass_cse(Graph *g, Diag *d);
bool pass_dce(Graph *g, Diag *d);
bool pass_precision(Graph *g, Diag *d);
bool pass_fuse(Graph *g, Diag *d);
bool pass_memplan(Graph *g, Diag *d);

/* The flags as hints (passes/sparsify.c): a @sparse hint on every eligible
 * param without one, block shapes for written hints without one. */
bool pass_sparsify_hints(Graph *g, const SparsifyOptions *o, Diag *d);
/* The sparsity figures of GraphStats (passes/sparsify.c). */
void pass_sparsify_count(const Graph *g, double *params, double *kept, double *bytes_saved);
/* A 2-D float param of static shape used as a linear weight or as the right
 * operand of a matmul: what --sparsity prunes. */
bool pass_sparsify_eligible(const Graph *g, const Node *n);
/* "RxC" (positive, at most 4096 each) into *br, *bc; false if malformed. */
bool pass_sparsify_parse_block(const char *s, int *br, int *bc);

#endif
