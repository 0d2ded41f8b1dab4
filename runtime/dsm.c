/* The compiled-model file (.dsm): writer and checking loader (see dsm.h and
 * docs/formats.md, ".dsm").
 *
 * Why a safetensors file: the weights already travel in that format, every
 * ML toolchain can read its header with a few lines of Python, and its
 * `__metadata__` map of strings is a natural home for the rest -- the graph
 * as DSG text (the textual IR is the language, so the loader is the
 * frontend, and the fusion groups and memory plan come back from the
 * @group/@buffer hints exactly as a pass dump does), a JSON summary for tools,
 * and the kernel IR for people.  Kernels are not stored compiled: they are
 * specialised for the device found at load time (through the kernel caches).
 *
 * Weights: the params the optimized graph still uses, under their param
 * keys; params the passes made dead are dropped.  Load-time constant groups
 * made of exactly rounded operations (an int8 weight's quantisation, an f16
 * weight's cast) are folded: evaluated here by the reference interpreter and
 * stored as params of the stored graph (dsm_fold.c), so an int8 model stores
 * i8 weights; every backend computes those operations bit for bit as the
 * interpreter does, so a .dsm still computes bit for bit what its .dsg
 * computes on the same device.  Groups with inexact operations (a folded
 * batchnorm's rsqrt) stay in the graph and are computed when the weights
 * load, as for a .dsg.
 *
 * Integrity: the safetensors reader checks the container; the checksum
 * (SHA-256 over every metadata entry but itself and over every tensor's name,
 * dtype, shape and bytes, each field length-prefixed) catches truncation and
 * flipped bytes that still leave a well-formed container; then the graph
 * must compile and agree with the tensors.  Only then is anything returned. */
#include "dsm.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../codegen/lower.h"
#include "../frontend/frontend.h"
#include "../passes/passes.h"
#include "dsc.h"
#include "dsm_bsr.h"
#include "dsm_fold.h"
#include "interp.h"
#include "kcache.h"
#include "safetensors.h"

/* Metadata keys. */
#define K_FORMAT "dsc.format"
#define K_VERSION "dsc.format_version"
#define K_DSC "dsc.version"
#define K_MODEL "dsc.model"
#define K_GRAPH "dsc.graph"
#define K_PLAN "dsc.plan"
#define K_KERNELS "dsc.kernel_ir"
#define K_CHECKSUM "dsc.checksum"

static const char *const required_keys[] = {K_DSC, K_MODEL, K_GRAPH, K_PLAN, K_KERNELS, K_CHECKSUM};

/* ---- detection ------------------------------------------------------------------ */

bool rt_dsm_is(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    unsigned char b[9];
    ssize_t n = read(fd, b, sizeof b);
    close(fd);
    if (n != (ssize_t)sizeof b) return false;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | b[i];
    return hlen >= 2 && hlen <= ST_MAX_HEADER && (b[8] == '{' || b[8] == ' ' || b[8] == '\n');
}

/* ---- the checksum --------------------------------------------------------------- */

/* One field: "<tag> <length>\n<bytes>\n". */
static void sum_field(Sha256 *s, const char *tag, const void *bytes, size_t n) {
    char head[96];
    int len = snprintf(head, sizeof head, "%s %zu\n", tag, n);
    rt_sha256_update(s, head, (size_t)len);
    rt_sha256_update(s, bytes, n);
    rt_sha256_update(s, "\n", 1);
}

static void sum_str(Sha256 *s, const char *tag, const char *str) { sum_field(s, tag, str, strlen(str)); }

/* The tensor fields; `normalize_bool` hashes bool bytes as 0/1 (what the
 * writer puts in the file). */
static void sum_tensor(Sha256 *s, const char *name, const Tensor *t, bool normalize_bool) {
    char shape[IR_MAX_RANK * 24 + 1] = "";
    size_t off = 0;
    for (int i = 0; i < t->rank; i++)
        off +=
            (size_t)snprintf(shape + off, sizeof shape - off, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    sum_str(s, "tensor", name);
    sum_str(s, "dtype", st_dtype_name(t->dtype));
    sum_str(s, "shape", shape);
    if (t->dtype != DT_BOOL || !normalize_bool) {
        sum_field(s, "data", t->data, t->nbytes);
        return;
    }
    char head[96];
    int len = snprintf(head, sizeof head, "data %zu\n", t->nbytes);
    rt_sha256_update(s, head, (size_t)len);
    const unsigned char *p = t->data;
    unsigned char chunk[4096];
    for (size_t i = 0; i < t->nbytes; i += sizeof chunk) {
        size_t k = t->nbytes - i < sizeof chunk ? t->nbytes - i : sizeof chunk;
        for (size_t j = 0; j < k; j++)
            chunk[j] = p[i + j] != 0;
        rt_sha256_update(s, chunk, k);
    }
    rt_sha256_update(s, "\n", 1);
}

static void sum_finish(Sha256 *s, char out[RT_DSM_CHECKSUM_SIZE]) {
    uint8_t digest[32];
    rt_sha256_final(s, digest);
    memcpy(out, "sha256:", 7);
    rt_hex(digest, 32, out + 7);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- writing -------------------------------------------------------------------- */

/* Text printed by `print` into a malloc'd string (NULL: out of memory). */
static char *print_to_string(void (*print)(void *ctx, FILE *f), void *ctx) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    print(ctx, f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static void print_graph(void *ctx, FILE *f) {
    Graph *g = ctx;
    const char *weights = g->weights; /* the .dsm holds the weights: no `weights` line */
    g->weights = NULL;
    ir_print_dsg(g, f);
    g->weights = weights;
}

static void print_kernels(void *ctx, FILE *f) {
    const KProgram *p = ctx;
    for (int i = 0; i < p->nkernels; i++) {
        if (i) fputc('\n', f);
        kir_print(p->g, p->kernels[i], f);
    }
}

static const char *kernel_kind(const Graph *g, const Kernel *k) {
    if (k->group >= 0 && k->group < g->ngroups) return ir_group_kind_name(g->groups[k->group]->kind);
    return "node";
}

/* The JSON summary: {"groups": [...], "buffers": [...], "kernels": [...]}. */
static char *plan_json(Graph *g, const KProgram *p) {
    cJSON *o = cJSON_CreateObject(), *groups = cJSON_AddArrayToObject(o, "groups");
    for (int i = 0; i < g->ngroups; i++) {
        const Group *grp = g->groups[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "id", grp->id);
        cJSON_AddStringToObject(e, "kind", ir_group_kind_name(grp->kind));
        cJSON_AddStringToObject(e, "reason", grp->reason);
        cJSON_AddNumberToObject(e, "ops", grp->nnodes);
        cJSON_AddItemToArray(groups, e);
    }
    cJSON *buffers = cJSON_AddArrayToObject(o, "buffers");
    for (int i = 0; i < g->nbuffers; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "id", g->buffers[i].id);
        cJSON_AddStringToObject(e, "bytes", dim_str(g->dims, g->buffers[i].bytes, g->arena));
        cJSON_AddItemToArray(buffers, e);
    }
    cJSON *kernels = cJSON_AddArrayToObject(o, "kernels");
    for (int i = 0; i < p->nkernels; i++) {
        const Kernel *k = p->kernels[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", k->name);
        cJSON_AddNumberToObject(e, "group", k->group);
        cJSON_AddStringToObject(e, "kind", kernel_kind(g, k));
        cJSON_AddBoolToObject(e, "load_time", k->load_time);
        cJSON_AddItemToArray(kernels, e);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* A param and its value, sorted by key (then graph order). */
typedef struct {
    const Node *param;
    const Tensor *t;
} Keyed;

static int cmp_keyed(const void *a, const void *b) {
    const Keyed *x = a, *y = b;
    int c = strcmp(x->param->key, y->param->key);
    return c ? c : (x->param->id > y->param->id) - (x->param->id < y->param->id);
}

/* One entry per param key (two params may read one key), in name order (the
 * order of the checksum), into keyed (room for every param); -1 if two
 * params read one key as different types. */
static int unique_keys(const Graph *g, Tensor *const *params, Keyed *keyed, Diag *d) {
    int n = 0;
    for (int i = 0, idx = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_PARAM) {
            keyed[n] = (Keyed){g->nodes[i], params[idx++]};
            n++;
        }
    qsort(keyed, (size_t)n, sizeof *keyed, cmp_keyed);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (kept && strcmp(keyed[kept - 1].param->key, keyed[i].param->key) == 0) {
            if (!ir_type_eq(&keyed[kept - 1].param->type, &keyed[i].param->type)) {
                diag_error(d, keyed[i].param->loc,
                           "params '%s' and '%s' read the key '%s' as different types",
                           keyed[kept - 1].param->name, keyed[i].param->name, keyed[i].param->key);
                return -1;
            }
            continue;
        }
        keyed[kept++] = keyed[i];
    }
    return kept;
}

/* Tensors made for the file (BSR parts), with their names; ends at name NULL. */
typedef struct {
    char *name;
    Tensor *t;
} Owned;

static int cmp_named(const void *a, const void *b) {
    const Owned *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static bool key_taken(const Keyed *keyed, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(keyed[i].param->key, name) == 0) return true;
    return false;
}

/* The pruning record of the param of `src` (the graph the weights were
 * loaded for) that reads `key`, if any. */
static const IrSparse *sparse_of(const Graph *src, const char *key) {
    for (int i = 0; i < src->nnodes; i++) {
        const Node *n = src->nodes[i];
        if (n->op == OP_PARAM && n->ann.sparse && strcmp(n->key, key) == 0) return n->ann.sparse;
    }
    return NULL;
}

/* The file's tensors, in name order, into *names / *tensors (reallocated):
 * each of the `*n` keyed params, its dense tensor or, for a pruned param
 * whose BSR form is smaller, its three BSR tensors; *json gets the "dsc.bsr"
 * metadata (NULL if none).  Returns the tensors made (free them), or NULL
 * after an error. */
static Owned *bsr_tensors(const Graph *src, const Keyed *keyed, int *n, const char ***names,
                          const Tensor ***tensors, char **json, const char *out_path, Diag *d) {
    Owned *all = calloc((size_t)*n * 3 + 1, sizeof *all), *made = calloc((size_t)*n * 3 + 1, sizeof *made);
    cJSON *meta = cJSON_CreateObject();
    int count = 0, nmade = 0;
    bool ok = all && made && meta;
    for (int i = 0; ok && i < *n; i++) {
        const Node *p = keyed[i].param;
        Tensor *parts[3];
        char *pn[3] = {NULL, NULL, NULL};
        bool encoded = rt_dsm_bsr_encode(keyed[i].t, sparse_of(src, p->key), parts), use = encoded;
        static const char *const part_names[3] = {"rowptr", "colidx", "values"};
        for (int k = 0; use && k < 3; k++) {
            pn[k] = rt_dsm_bsr_name(p->key, part_names[k]);
            use = pn[k] && !key_taken(keyed, *n, pn[k]);
        }
        if (!use) {
            for (int k = 0; k < 3; k++) {
                free(pn[k]);
                if (encoded) rt_tensor_free(parts[k]);
            }
            all[count++] = (Owned){(char *)p->key, (Tensor *)keyed[i].t};
            continue;
        }
        for (int k = 0; k < 3; k++) {
            made[nmade++] = (Owned){pn[k], parts[k]};
            all[count++] = (Owned){pn[k], parts[k]};
        }
        cJSON *e = cJSON_CreateObject(), *shape = cJSON_AddArrayToObject(e, "shape"),
              *block = cJSON_AddArrayToObject(e, "block");
        cJSON_AddStringToObject(e, "dtype", st_dtype_name(keyed[i].t->dtype));
        for (int k = 0; k < keyed[i].t->rank; k++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)keyed[i].t->shape[k]));
        cJSON_AddItemToArray(block, cJSON_CreateNumber(parts[2]->shape[1]));
        cJSON_AddItemToArray(block, cJSON_CreateNumber(parts[2]->shape[2]));
        cJSON_AddItemToObject(meta, p->key, e);
    }
    if (ok && nmade) ok = (*json = cJSON_PrintUnformatted(meta)) != NULL;
    const char **nn = ok ? realloc(*names, ((size_t)count + 1) * sizeof *nn) : NULL;
    if (nn) *names = nn;
    const Tensor **tt = nn ? realloc(*tensors, ((size_t)count + 1) * sizeof *tt) : NULL;
    if (tt) *tensors = tt;
    ok = ok && tt;
    if (ok) {
        qsort(all, (size_t)count, sizeof *all, cmp_named);
        for (int i = 0; i < count; i++) {
            (*names)[i] = all[i].name;
            (*tensors)[i] = all[i].t;
        }
        *n = count;
    }
    cJSON_Delete(meta);
    free(all);
    if (!ok) {
        diag_error(d, loc_file(out_path), "out of memory");
        for (int i = 0; i < nmade; i++) {
            free(made[i].name);
            rt_tensor_free(made[i].t);
        }
        free(made);
        return NULL;
    }
    return made;
}

bool rt_dsm_write(const Graph *cg, const char *model_path, const RunOptions *opt, const char *out_path,
                  Diag *d) {
    Graph *g = (Graph *)cg; /* lowering adds to the arena and dim table; the graph is not changed */
    RunOptions ro = {.weights = opt->weights,
                     .random_weights = opt->random_weights,
                     /* random weights: make the inputs too, consuming the generator
                      * as `dsc run --random-inputs` does; else the params only */
                     .random_inputs = opt->random_weights,
                     .params_only = !opt->random_weights,
                     .seed = opt->seed,
                     .nbinds = opt->nbinds,
                     .bind_names = opt->bind_names,
                     .bind_values = opt->bind_values,
                     .as_written = opt->as_written};
    RtModelData md = {0};
    RtDsmFolded folded = {0};
    KProgram prog = {0};
    char *graph = NULL, *kernels = NULL, *plan = NULL;
    const char **names = NULL;
    const Tensor **tensors = NULL;
    Keyed *keyed = NULL;
    Owned *bsr = NULL;
    char *bsr_json = NULL;
    bool ok = false;
    if (!rt_model_data_load(g, model_path, &ro, &md, d)) goto done;
    if (!rt_check_params(g, md.params, d)) goto done; /* each param's dtype and shape */
    keyed = calloc((size_t)md.nparams + 1, sizeof *keyed);
    if (!keyed) {
        diag_error(d, loc_file(out_path), "out of memory");
        goto done;
    }
    if (unique_keys(g, md.params, keyed, d) < 0) goto done; /* before folding hides a param */
    free(keyed);
    keyed = NULL;
    /* exactly reproducible load-time constants become params (dsm_fold.c) */
    graph = print_to_string(print_graph, g);
    if (!graph) {
        diag_error(d, loc_file(out_path), "out of memory");
        goto done;
    }
    if (!rt_dsm_fold(g->arena, graph, md.params, md.nparams, &folded, d)) goto done;
    free(graph);
    graph = NULL;
    g = folded.graph;
    if (!cg_lower(g, &prog, d)) goto done;
    graph = print_to_string(print_graph, g);
    kernels = print_to_string(print_kernels, &prog);
    plan = plan_json(g, &prog);
    names = calloc((size_t)folded.nparams + 1, sizeof *names);
    tensors = calloc((size_t)folded.nparams + 1, sizeof *tensors);
    keyed = calloc((size_t)folded.nparams + 1, sizeof *keyed);
    if (!graph || !kernels || !plan || !names || !tensors || !keyed) {
        diag_error(d, loc_file(out_path), "out of memory");
        goto done;
    }
    int kept = unique_keys(g, folded.params, keyed, d);
    if (kept < 0) goto done;
    /* pruned params smaller block-compressed: three tensors each (dsm_bsr.c) */
    if (!(bsr = bsr_tensors(cg, keyed, &kept, &names, &tensors, &bsr_json, out_path, d))) goto done;

    char version[16];
    snprintf(version, sizeof version, "%d", RT_DSM_FORMAT_VERSION);
    const char *keys[] = {K_FORMAT, K_VERSION, K_DSC,          K_MODEL,   K_GRAPH,
                          K_PLAN,   K_KERNELS, RT_DSM_BSR_KEY, K_CHECKSUM};
    const char *values[] = {RT_DSM_FORMAT_ID, version,  dsc_version(), g->name, graph, plan,
                            kernels,          bsr_json, NULL};
    int nmeta = sizeof keys / sizeof keys[0];
    if (!bsr_json) { /* no block-compressed param: no dsc.bsr entry */
        keys[nmeta - 2] = K_CHECKSUM;
        nmeta--;
    }

    /* The checksum: metadata in key order (all but the checksum), then the
     * tensors in name order. */
    Sha256 s;
    rt_sha256_init(&s);
    const char *sorted[sizeof keys / sizeof keys[0]];
    memcpy(sorted, keys, sizeof sorted);
    qsort(sorted, (size_t)nmeta - 1, sizeof sorted[0], cmp_str);
    for (int i = 0; i < nmeta - 1; i++) {
        int k = 0;
        while (strcmp(keys[k], sorted[i]) != 0)
            k++;
        sum_str(&s, "key", keys[k]);
        sum_str(&s, "value", values[k]);
    }
    for (int i = 0; i < kept; i++)
        sum_tensor(&s, names[i], tensors[i], true);
    char checksum[RT_DSM_CHECKSUM_SIZE];
    sum_finish(&s, checksum);
    values[nmeta - 1] = checksum;
    ok = st_write(out_path, kept, names, tensors, nmeta, keys, values, d);
done:
    if (bsr) {
        for (int i = 0; bsr[i].name; i++) {
            free(bsr[i].name);
            rt_tensor_free(bsr[i].t);
        }
        free(bsr);
    }
    free(bsr_json);
    rt_dsm_folded_free(&folded);
    rt_model_data_free(&md);
    free(graph);
    free(kernels);
    free(plan);
    free(names);
    free(tensors);
    free(keyed);
    return ok;
}

/* ---- loading -------------------------------------------------------------------- */

#define ERR(...) diag_error(d, loc_file(name), __VA_ARGS__)

/* The stored version: a decimal integer >= 1 (no sign, no spaces). */
static bool parse_version(const char *s, int *out) {
    if (!s || !*s || strlen(s) > 9) return false;
    int v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return v >= 1;
}

static bool check_header(const SafeTensors *st, const char *name, RtDsm *m, Diag *d) {
    const char *format = st_metadata(st, K_FORMAT);
    if (!format) {
        ERR("not a dsc compiled model: this safetensors file has no '" K_FORMAT "' metadata entry (a weights "
            "file? make a .dsm with 'dsc compile MODEL.dsg -o MODEL.dsm')");
        return false;
    }
    if (strcmp(format, RT_DSM_FORMAT_ID) != 0) {
        ERR("not a dsc compiled model: metadata '" K_FORMAT "' is '%.80s' (expected '" RT_DSM_FORMAT_ID "')",
            format);
        return false;
    }
    const char *version = st_metadata(st, K_VERSION);
    if (!version) {
        ERR("missing metadata entry '" K_VERSION "'");
        return false;
    }
    if (!parse_version(version, &m->format_version)) {
        ERR("metadata '" K_VERSION "' is '%.80s', not a version number (this dsc reads up to version %d)",
            version, RT_DSM_FORMAT_VERSION);
        return false;
    }
    if (m->format_version > RT_DSM_FORMAT_VERSION) {
        ERR("compiled-model format version %d is newer than this dsc (%s) reads (up to version %d); use a "
            "newer dsc or compile the model again with this one",
            m->format_version, dsc_version(), RT_DSM_FORMAT_VERSION);
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < sizeof required_keys / sizeof required_keys[0]; i++)
        if (!st_metadata(st, required_keys[i])) {
            ERR("missing metadata entry '%s'", required_keys[i]);
            ok = false;
        }
    if (!ok) return false;
    m->dsc_version = st_metadata(st, K_DSC);
    m->model = st_metadata(st, K_MODEL);
    m->graph_text = st_metadata(st, K_GRAPH);
    m->plan_json = st_metadata(st, K_PLAN);
    m->kernel_ir = st_metadata(st, K_KERNELS);
    m->checksum = st_metadata(st, K_CHECKSUM);
    return true;
}

void rt_dsm_checksum(const SafeTensors *st, char out[RT_DSM_CHECKSUM_SIZE]) {
    Sha256 s;
    rt_sha256_init(&s);
    for (int i = 0; i < st_metadata_count(st); i++) { /* keys come in strcmp order */
        const char *k = st_metadata_key(st, i);
        if (strcmp(k, K_CHECKSUM) == 0) continue;
        sum_str(&s, "key", k);
        sum_str(&s, "value", st_metadata(st, k));
    }
    for (int i = 0; i < st_count(st); i++) { /* names in strcmp order */
        Tensor t;
        st_get_index(st, i, &t);
        sum_tensor(&s, st_name(st, i), &t, false);
    }
    sum_finish(&s, out);
}

static bool check_sum(const SafeTensors *st, const char *name, const char *stored, Diag *d) {
    char got[RT_DSM_CHECKSUM_SIZE];
    rt_dsm_checksum(st, got);
    if (strcmp(got, stored) == 0) return true;
    if (strncmp(stored, "sha256:", 7) != 0 || strlen(stored) != 71)
        ERR("metadata '" K_CHECKSUM "' is '%.80s', not sha256:<64 hex digits>", stored);
    else
        ERR("checksum mismatch: the file is damaged (stored %s, computed %s)", stored, got);
    return false;
}

/* Every param has a tensor of its dtype and shape; every tensor is a param's. */
static bool check_params(const Graph *g, const SafeTensors *st, const char *name, Diag *d) {
    bool ok = true;
    char *used = calloc((size_t)st_count(st) + 1, 1);
    if (!used) {
        ERR("out of memory");
        return false;
    }
    for (int i = 0; i < g->nnodes; i++) {
        const Node *p = g->nodes[i];
        if (p->op != OP_PARAM) continue;
        Tensor t, *dense = NULL;
        if (!st_get(st, p->key, &t)) {
            int parts[3];
            if (!rt_dsm_bsr_has(st, p->key)) {
                ERR("the graph's param '%s' has no tensor '%s' in the file", p->name, p->key);
                ok = false;
                continue;
            }
            /* stored block-compressed: checked completely by rebuilding it */
            if (!(dense = rt_dsm_bsr_decode(st, name, p->key, parts, d))) {
                ok = false;
                break; /* once: another param may read the key */
            }
            t = *dense;
            for (int k = 0; k < 3; k++)
                used[parts[k]] = 1;
        }
        for (int k = 0; k < st_count(st); k++)
            if (strcmp(st_name(st, k), p->key) == 0) used[k] = 1;
        bool same = t.dtype == p->type.dtype && t.rank == p->type.rank;
        for (int k = 0; same && k < t.rank; k++) {
            int64_t v;
            same = dim_is_const(g->dims, p->type.dim[k], &v) && v == t.shape[k];
        }
        if (!same) {
            char got[256];
            rt_shape_str(t.dtype, t.rank, t.shape, got, sizeof got);
            ERR("tensor '%s' is %s but the graph's param '%s' is %s", p->key, got, p->name,
                ir_type_str(g, &p->type));
            ok = false;
        }
        rt_tensor_free(dense);
    }
    for (int k = 0; k < st_count(st) && ok; k++)
        if (!used[k]) {
            ERR("tensor '%s' is not a param of the graph", st_name(st, k));
            ok = false;
        }
    free(used);
    return ok;
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static bool open_checked(SafeTensors *st, const char *name, Arena *a, RtDsm *out, Diag *d) {
    RtDsm m = {.file = st};
    if (!st || !check_header(st, name, &m, d) || !check_sum(st, name, m.checksum, d)) goto fail;
    /* The graph text gets a name of its own in messages: file(dsc.graph):LINE:COL. */
    const char *gname = arena_printf(a, "%s(" K_GRAPH ")", name);
    size_t len = strlen(m.graph_text);
    const char *text = arena_strndup(a, m.graph_text, len);
    m.graph = fe_compile_source(a, d, gname, text, len);
    if (!m.graph) {
        ERR("the graph in metadata '" K_GRAPH "' does not compile (see the errors above)");
        goto fail;
    }
    if (strcmp(m.graph->name, m.model) != 0) {
        ERR("metadata '" K_MODEL "' is '%.80s' but the graph is model '%s'", m.model, m.graph->name);
        goto fail;
    }
    if (m.graph->weights) {
        ERR("the graph names a weights file ('%s'); a compiled model holds its own weights",
            m.graph->weights);
        goto fail;
    }
    /* @sparse hints in the graph text become the params' pruning records
     * (Node.ann.sparse), as compiling the source does: the stored weights
     * are pruned already, but the kernels are chosen per layer at load and
     * --random-weights must prune as the source does */
    if (!pass_sparsify(m.graph, d)) {
        ERR("the graph's @sparse hints are invalid (see the errors above)");
        goto fail;
    }
    cJSON *plan = cJSON_Parse(m.plan_json);
    bool plan_ok = cJSON_IsObject(plan);
    cJSON_Delete(plan);
    if (!plan_ok) {
        ERR("metadata '" K_PLAN "' is not a JSON object");
        goto fail;
    }
    if (!check_params(m.graph, st, name, d)) goto fail;
    m.graph->weights = arena_strdup(a, base_name(name));
    *out = m;
    return true;
fail:
    st_close(st);
    *out = (RtDsm){0};
    return false;
}

/* A file that starts with 8 bytes of text (a DSG source, say) gets a message
 * saying so rather than the safetensors reader's "header length
 * 7310019993142370339 exceeds the limit". */
static bool refuse_text(const unsigned char *b, size_t n, const char *name, Diag *d) {
    char text[9];
    if (n < 8) return false;
    for (int i = 0; i < 8; i++) {
        bool space = b[i] == '\t' || b[i] == '\n' || b[i] == '\r';
        if ((b[i] < 0x20 && !space) || b[i] > 0x7e) return false;
        text[i] = space ? ' ' : (char)b[i];
    }
    text[8] = '\0';
    ERR("not a dsc compiled model: the file starts with text ('%s'), not a safetensors header; DSG source is "
        "compiled to one with 'dsc compile MODEL.dsg -o MODEL.dsm'",
        text);
    return true;
}

bool rt_dsm_open(const char *path, Arena *a, RtDsm *out, Diag *d) {
    unsigned char head[8];
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t got = read(fd, head, sizeof head);
        n = got > 0 ? (size_t)got : 0;
        close(fd);
    }
    if (refuse_text(head, n, path, d)) {
        *out = (RtDsm){0};
        return false;
    }
    return open_checked(st_open(path, d), path, a, out, d);
}

bool rt_dsm_open_mem(const void *buf, size_t len, const char *name, Arena *a, RtDsm *out, Diag *d) {
    if (refuse_text(buf, len, name, d)) {
        *out = (RtDsm){0};
        return false;
    }
    return open_checked(st_open_mem(buf, len, name, d), name, a, out, d);
}

void rt_dsm_close(RtDsm *m) {
    if (!m) return;
    st_close(m->file);
    *m = (RtDsm){0};
}
