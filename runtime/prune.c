/* `dsc prune`: the model's weights, pruned by its @sparse hints, written back
 * as safetensors (for users who fine-tune elsewhere).  The pruning is the one
 * every run applies (runtime/sparse.c, through rt_model_data_load), so the
 * file written here, run without hints, computes what the hinted model
 * computes. */
#include <stdlib.h>

#include "run.h"
#include "safetensors.h"

bool rt_prune_write(const Graph *g, const char *model_path, const RunOptions *opt, const char *out, Diag *d) {
    RtModelData md = {0};
    if (!rt_model_data_load(g, model_path, opt, &md, d)) return false;
    const char **names = calloc((size_t)md.nparams + 1, sizeof(char *));
    bool ok = names != NULL;
    int k = 0;
    for (int i = 0; ok && i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_PARAM) names[k++] = g->nodes[i]->key;
    const char *mk[1] = {"format"}, *mv[1] = {"pt"};
    ok = ok && st_write(out, md.nparams, names, (const Tensor *const *)md.params, 1, mk, mv, d);
    free(names);
    rt_model_data_free(&md);
    return ok;
}
