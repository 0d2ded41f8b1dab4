/* `dsc inspect`: a readable (or JSON) account of a loaded compiled model.
 *
 * Everything printed comes from the checked file: the header entries, the
 * graph compiled from its DSG text (inputs, outputs, dims), the tensors (the
 * weights summary) and the stored JSON plan (kernels and memory plan) -- so
 * the report shows what the file holds, not what this dsc would compile
 * today.  rt_dsm_open verified the checksum before, so its status is "ok". */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "dsm.h"
#include "dsm_bsr.h"
#include "safetensors.h"

typedef struct {
    int count;
    double bytes;
} DTypeSum;

static void weight_sums(const RtDsm *m, DTypeSum sums[DT_COUNT], DTypeSum *total) {
    memset(sums, 0, sizeof(DTypeSum) * DT_COUNT);
    *total = (DTypeSum){0};
    for (int i = 0; i < st_count(m->file); i++) {
        Tensor t;
        st_get_index(m->file, i, &t);
        sums[t.dtype].count++;
        sums[t.dtype].bytes += (double)t.nbytes;
        total->count++;
        total->bytes += (double)t.nbytes;
    }
}

static cJSON *values_json(const Graph *g, bool outputs) {
    cJSON *a = cJSON_CreateArray();
    if (outputs) {
        for (int i = 0; i < g->noutputs; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", g->outputs[i].name);
            cJSON_AddStringToObject(e, "type", ir_type_str(g, &g->outputs[i].node->type));
            cJSON_AddItemToArray(a, e);
        }
        return a;
    }
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op != OP_INPUT) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", n->name);
        cJSON_AddStringToObject(e, "type", ir_type_str(g, &n->type));
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

static bool print_json(const RtDsm *m, const char *path, FILE *out, bool kernel_ir, cJSON *plan) {
    const Graph *g = m->graph;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", path);
    cJSON_AddStringToObject(o, "format", RT_DSM_FORMAT_ID);
    cJSON_AddNumberToObject(o, "format_version", m->format_version);
    cJSON_AddStringToObject(o, "dsc_version", m->dsc_version);
    cJSON_AddStringToObject(o, "model", m->model);
    cJSON_AddStringToObject(o, "checksum", m->checksum);
    cJSON_AddStringToObject(o, "checksum_status", "ok");
    cJSON_AddItemToObject(o, "inputs", values_json(g, false));
    cJSON_AddItemToObject(o, "outputs", values_json(g, true));
    cJSON *dims = cJSON_AddArrayToObject(o, "dims");
    for (int s = 0; s < dim_sym_count(g->dims); s++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", dim_sym_name(g->dims, s));
        int64_t b = dim_sym_bound(g->dims, s);
        if (b > 0) cJSON_AddNumberToObject(e, "bound", (double)b);
        cJSON_AddItemToArray(dims, e);
    }
    DTypeSum sums[DT_COUNT], total;
    weight_sums(m, sums, &total);
    cJSON *w = cJSON_AddObjectToObject(o, "weights");
    cJSON_AddNumberToObject(w, "count", total.count);
    cJSON_AddNumberToObject(w, "bytes", total.bytes);
    cJSON *by = cJSON_AddObjectToObject(w, "by_dtype");
    for (int t = 0; t < DT_COUNT; t++) {
        if (!sums[t].count) continue;
        cJSON *e = cJSON_AddObjectToObject(by, st_dtype_name((DType)t));
        cJSON_AddNumberToObject(e, "count", sums[t].count);
        cJSON_AddNumberToObject(e, "bytes", sums[t].bytes);
    }
    RtDsmBsrInfo *bsr;
    int nbsr = rt_dsm_bsr_infos(m->file, &bsr);
    cJSON *sp = cJSON_AddArrayToObject(o, "sparse");
    double saved = 0;
    for (int i = 0; i < nbsr; i++) {
        cJSON *e = cJSON_CreateObject(), *blk = cJSON_AddArrayToObject(e, "block");
        cJSON_AddStringToObject(e, "key", bsr[i].key);
        cJSON_AddItemToArray(blk, cJSON_CreateNumber((double)bsr[i].br));
        cJSON_AddItemToArray(blk, cJSON_CreateNumber((double)bsr[i].bc));
        cJSON_AddNumberToObject(e, "blocks", (double)bsr[i].blocks);
        cJSON_AddNumberToObject(e, "kept", (double)bsr[i].kept);
        cJSON_AddNumberToObject(e, "dense_bytes", bsr[i].dense_bytes);
        cJSON_AddNumberToObject(e, "stored_bytes", bsr[i].stored_bytes);
        cJSON_AddItemToArray(sp, e);
        saved += bsr[i].dense_bytes - bsr[i].stored_bytes;
    }
    cJSON_AddNumberToObject(o, "sparse_bytes_saved", saved);
    rt_dsm_bsr_infos_free(bsr, nbsr);
    cJSON_AddItemToObject(o, "groups",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(plan, "groups"), true));
    cJSON_AddItemToObject(o, "buffers",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(plan, "buffers"), true));
    cJSON_AddItemToObject(o, "kernels",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(plan, "kernels"), true));
    cJSON_AddStringToObject(o, "graph", m->graph_text);
    if (kernel_ir) cJSON_AddStringToObject(o, "kernel_ir", m->kernel_ir);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    bool ok = text && fprintf(out, "%s\n", text) >= 0;
    free(text);
    return ok;
}

/* The members of the stored plan's array `key` (an empty list if absent). */
static const cJSON *plan_list(const cJSON *plan, const char *key) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(plan, key);
    return cJSON_IsArray(a) ? a->child : NULL;
}

static const char *str_of(const cJSON *o, const char *key) {
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
    return s ? s : "?";
}

static double num_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void print_text(const RtDsm *m, const char *path, FILE *out, bool kernel_ir, const cJSON *plan) {
    const Graph *g = m->graph;
    fprintf(out, "file:      %s\n", path);
    fprintf(out, "format:    %s version %d, written by dsc %s\n", RT_DSM_FORMAT_ID, m->format_version,
            m->dsc_version);
    fprintf(out, "model:     %s\n", m->model);
    fprintf(out, "checksum:  ok (%s)\n", m->checksum);
    fprintf(out, "dims:     ");
    if (!dim_sym_count(g->dims)) fprintf(out, " (none)");
    for (int s = 0; s < dim_sym_count(g->dims); s++) {
        int64_t b = dim_sym_bound(g->dims, s);
        fprintf(out, "%s %s", s ? "," : "", dim_sym_name(g->dims, s));
        if (b > 0) fprintf(out, " <= %lld", (long long)b);
    }
    fprintf(out, "\ninputs:\n");
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_INPUT)
            fprintf(out, "  %s : %s\n", g->nodes[i]->name, ir_type_str(g, &g->nodes[i]->type));
    fprintf(out, "outputs:\n");
    for (int i = 0; i < g->noutputs; i++)
        fprintf(out, "  %s : %s\n", g->outputs[i].name, ir_type_str(g, &g->outputs[i].node->type));
    DTypeSum sums[DT_COUNT], total;
    weight_sums(m, sums, &total);
    fprintf(out, "weights:   %d tensors, %.0f bytes\n", total.count, total.bytes);
    for (int t = 0; t < DT_COUNT; t++)
        if (sums[t].count)
            fprintf(out, "  %-5s %d tensors, %.0f bytes\n", st_dtype_name((DType)t), sums[t].count,
                    sums[t].bytes);
    RtDsmBsrInfo *bsr;
    int nbsr = rt_dsm_bsr_infos(m->file, &bsr);
    double saved = 0;
    for (int i = 0; i < nbsr; i++)
        saved += bsr[i].dense_bytes - bsr[i].stored_bytes;
    if (nbsr > 0)
        fprintf(out, "sparse:    %d params block-compressed (BSR), %.0f bytes saved\n", nbsr, saved);
    for (int i = 0; i < nbsr; i++)
        fprintf(out, "  %s  block %lldx%lld, %lld of %lld blocks kept, %.0f -> %.0f bytes\n", bsr[i].key,
                (long long)bsr[i].br, (long long)bsr[i].bc, (long long)bsr[i].kept, (long long)bsr[i].blocks,
                bsr[i].dense_bytes, bsr[i].stored_bytes);
    rt_dsm_bsr_infos_free(bsr, nbsr);
    int nk = 0, nload = 0;
    for (const cJSON *k = plan_list(plan, "kernels"); k; k = k->next) {
        nk++;
        nload += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(k, "load_time"));
    }
    fprintf(out, "kernels:   %d (%d at load time)\n", nk, nload);
    for (const cJSON *k = plan_list(plan, "kernels"); k; k = k->next)
        fprintf(out, "  %-28s group %-3.0f %s%s\n", str_of(k, "name"), num_of(k, "group"), str_of(k, "kind"),
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(k, "load_time")) ? " (load time)" : "");
    int nb = 0;
    for (const cJSON *b = plan_list(plan, "buffers"); b; b = b->next)
        nb++;
    fprintf(out, "memory plan: %d buffers\n", nb);
    for (const cJSON *b = plan_list(plan, "buffers"); b; b = b->next)
        fprintf(out, "  buffer %.0f: %s bytes\n", num_of(b, "id"), str_of(b, "bytes"));
    fprintf(out, "graph:\n%s", m->graph_text);
    if (kernel_ir) fprintf(out, "kernel IR:\n%s", m->kernel_ir);
}

bool rt_dsm_print(const RtDsm *m, const char *path, FILE *out, bool json, bool kernel_ir) {
    cJSON *plan = cJSON_Parse(m->plan_json); /* rt_dsm_open checked that it is an object */
    bool ok;
    if (json) {
        ok = print_json(m, path, out, kernel_ir, plan);
    } else {
        print_text(m, path, out, kernel_ir, plan);
        ok = !ferror(out);
    }
    cJSON_Delete(plan);
    return ok && fflush(out) == 0;
}
