/* The pipeline, as one flat list in the order the passes run (QBE's main.c
 * style).  Later issues add simplification, fusion, sparsity, precision and
 * memory planning here. */
#include "passes.h"

#include <string.h>

static const PassInfo pipeline[] = {
    {"dce", pass_dce, 1, "dead code elimination: drop operations no output depends on"},
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

bool pass_run_pipeline(Graph *g, Diag *d, const PipelineOptions *opt) {
    for (int i = 0; i < pass_count(); i++) {
        const PassInfo *p = &pipeline[i];
        if (opt->opt_level < p->min_opt || disabled(opt, p->name)) continue;
        if (opt->before) opt->before(opt->ctx, i + 1, p, g);
        if (!p->run(g, d)) return false;
        if (!ir_verify(g, d)) {
            diag_error(d, (Loc){g->file, 0, 0}, "internal error: the graph is invalid after pass '%s'", p->name);
            return false;
        }
        if (opt->after) opt->after(opt->ctx, i + 1, p, g);
    }
    return true;
}
