/* The pass pipeline: one pass per file, one entry point each, listed once in
 * pipeline order in passes/pipeline.c. */
#ifndef DSC_PASSES_PASSES_H
#define DSC_PASSES_PASSES_H

#include <stdbool.h>

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

typedef struct {
    int opt_level;             /* 0, 1, 2 */
    const char *const *disabled; /* pass names not to run */
    int ndisabled;
    /* Called before / after each pass that runs (either may be NULL); `index`
     * is the pass's position in the pipeline, from 1. */
    void (*before)(void *ctx, int index, const PassInfo *p, const Graph *g);
    void (*after)(void *ctx, int index, const PassInfo *p, const Graph *g);
    void *ctx;
} PipelineOptions;

/* Runs the pipeline, verifying the graph after every pass. */
bool pass_run_pipeline(Graph *g, Diag *d, const PipelineOptions *opt);

/* The passes (one file each). */
bool pass_dce(Graph *g, Diag *d);

#endif
