/* The pipeline, as one flat list in the order the passes run (QBE's main.c
 * style).  Later issues add simplification, fusion, sparsity, precision and
 * memory planning here. */
#include "passes.h"

#include <string.h>
#include <time.h>

static const PassInfo pipeline[] = {
    {"sparsify", pass_sparsify, 0, "block pruning of @sparse params (applied when the weights load)"},
    {"simplify", pass_simplify, 1, "algebraic identities: x*1, x+0, double transposes, reshape and cast chains"},
    {"canonicalize", pass_canonicalize, 1, "canonical GEMMs: transposes folded into matmul, linear for [out,in] weights"},
    {"fold-batchnorm", pass_fold_batchnorm, 1, "batchnorm folded into the weights of the conv2d or linear before it"},
    {"constfold", pass_constfold, 1, "constant folding of operations on constants"},
    {"cse", pass_cse, 1, "common subexpression elimination"},
    {"dce", pass_dce, 1, "dead code elimination: drop operations no output depends on"},
    {"precision", pass_precision, 1, "GEMMs in f16, bf16 or int8 as --precision or @precision asks (docs/precision.md)"},
    {"fuse", pass_fuse, 2, "fusion groups: elementwise chains, reductions, GEMM prologue/epilogue, attention"},
    {"memplan", pass_memplan, 2, "memory plan: liveness over the groups, buffer reuse, in-place updates"},
};

int pass_count(void) { return (int)(sizeof pipeline / sizeof pipeline[0]); }
const PassInfo *pass_get(int i) { return i >= 0 && i < pass_count() ? &pipeline[i] : NULL; }

const PassInfo *pass_find(const char *name) {
    for (int i = 0; i < pass_count(); i++)
        if (strcmp(pipeline[i].name, name) == 0) return &pipeline[i];
    return NULL;
}

static bool disabled(const PipelineOptions *opt, const char *name) {
    for (int i = 0; i < opt->ndisabled; i++)
        if (strcmp(opt->disabled[i], name) == 0) return true;
    return false;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

bool pass_run_pipeline(Graph *g, Diag *d, PipelineOptions *opt) {
    opt->nrecords = 0;
    if (!pass_sparsify_hints(g, opt->sparse, d)) return false;
    for (int i = 0; i < pass_count(); i++) {
        const PassInfo *p = &pipeline[i];
        /* a pass of every level (sparsify) carries a meaning change the model asked
         * for: --disable-pass does not skip it */
        if (opt->opt_level < p->min_opt || (p->min_opt > 0 && disabled(opt, p->name))) continue;
        if (opt->before) opt->before(opt->ctx, i + 1, p, g);
        int before = ir_count_ops(g);
        double t0 = now_ms();
        bool ok = p->run(g, d);
        if (opt->records) opt->records[opt->nrecords++] = (PassRecord){p, now_ms() - t0, before, ir_count_ops(g)};
        if (!ok) return false;
        if (!ir_verify(g, d)) {
            diag_error(d, (Loc){g->file, 0, 0}, "internal error: the graph is invalid after pass '%s'", p->name);
            return false;
        }
        if (opt->after) opt->after(opt->ctx, i + 1, p, g);
    }
    return true;
}
