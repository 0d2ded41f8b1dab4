/* The hardware-characteristics database: loading, validation, selection and
 * the `dsc hwdb` listings (see hwdb.h; the schema is docs/hwdb.md).
 *
 * Loading is validation: the JSON is read with cJSON and walked once, field
 * by field, against the schema.  Every object's keys are checked (unknown
 * keys are refused, which is what catches a misspelt field; duplicates, which
 * cJSON silently keeps, are refused too; "note" is allowed anywhere), every
 * number against its range, and then the entries against each other and
 * themselves: arch name and compute capability agree, features and peak
 * throughputs agree (an fp8 feature needs an fp8 peak and an e4m3/e5m2 mma
 * shape), every device's SM count is inside its entry's range, every GEMM
 * tile configuration fits the entry's shared memory per block, archs,
 * capabilities and device names are unique, and there is one host entry.
 * Errors are collected rather than stopping at the first, each located at
 * the file and naming the entry and the field path, e.g.
 *     data/hwdb.json: error: entry 'sm_90': field 'kernels.gemm_f16.stages':
 *     expected an integer in [1, 8], got 0
 *
 * The result lives in one arena; devices inherit every figure they do not
 * give from their entry at load time, so users never merge.
 *
 * Selection (rt_hwdb_select) follows the rule: the exact device name
 * (when its entry's compute capability is the device's), else the entry of
 * the same compute capability, else the nearest lower one (newer chips run
 * older code; the caveat says the figures are an older chip's), else an
 * error naming the oldest entry. */
#include "hwdb.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../ir/arena.h"
#include "cuda_driver.h"

struct HwDb {
    Arena *arena;
    const char *path;
    int n;
    HwEntry *entries;
};

static const char *const PEAK_NAMES[HW_PEAK_COUNT] = {"f32", "f16", "bf16", "tf32", "i8", "fp8"};
static const char *const KCLASS_NAMES[HW_KCLASS_COUNT] = {"elementwise", "reduction", "gemm_f16", "gemm_f32",
                                                          "attention"};
/* The host entry's required kernel classes. */
static const char *const HOST_KCLASSES[] = {"elementwise", "reduction", "gemm"};

const char *rt_hwdb_peak_name(HwPeak p) { return (unsigned)p < HW_PEAK_COUNT ? PEAK_NAMES[p] : "?"; }
const char *rt_hwdb_kclass_name(HwKernelClass k) {
    return (unsigned)k < HW_KCLASS_COUNT ? KCLASS_NAMES[k] : "?";
}

/* ---- validation helpers ----------------------------------------------------- */

typedef struct {
    Diag *d;
    Arena *a;
    const char *file;
    const char *entry; /* label of the entry being read, or NULL at top level */
    int errors;
} V;

static void verr(V *v, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void verr(V *v, const char *path, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    v->errors++;
    if (v->entry && path)
        diag_error(v->d, loc_file(v->file), "entry '%s': field '%s': %s", v->entry, path, msg);
    else if (v->entry)
        diag_error(v->d, loc_file(v->file), "entry '%s': %s", v->entry, msg);
    else if (path)
        diag_error(v->d, loc_file(v->file), "field '%s': %s", path, msg);
    else
        diag_error(v->d, loc_file(v->file), "%s", msg);
}

/* "a string", "0.5", "an object"... for messages about a value. */
static const char *describe(const cJSON *j, char *buf, size_t n) {
    if (!j) return "nothing";
    if (cJSON_IsNumber(j)) {
        snprintf(buf, n, "%.17g", j->valuedouble);
    } else if (cJSON_IsString(j)) {
        snprintf(buf, n, "the string \"%.40s%s\"", j->valuestring, strlen(j->valuestring) > 40 ? "..." : "");
    } else if (cJSON_IsBool(j)) {
        snprintf(buf, n, "%s", cJSON_IsTrue(j) ? "true" : "false");
    } else if (cJSON_IsNull(j)) {
        snprintf(buf, n, "null");
    } else if (cJSON_IsArray(j)) {
        snprintf(buf, n, "an array");
    } else if (cJSON_IsObject(j)) {
        snprintf(buf, n, "an object");
    } else {
        snprintf(buf, n, "an invalid value");
    }
    return buf;
}

static char *join(V *v, const char *prefix, const char *key) {
    return prefix && *prefix ? arena_printf(v->a, "%s.%s", prefix, key) : arena_strdup(v->a, key);
}

typedef struct {
    const char *key;
    bool required;
    const cJSON *value; /* out */
} Field;

/* Checks that `obj` is an object whose keys are among fields[] (plus "note",
 * a string), each once, with every required one present; fills the values.
 * `extra` accepts any other key (for open maps). */
static bool read_fields(V *v, const cJSON *obj, const char *path, Field *fields, int n, bool extra) {
    char b[96];
    if (!cJSON_IsObject(obj)) {
        verr(v, path && *path ? path : NULL, "expected an object, got %s", describe(obj, b, sizeof b));
        return false;
    }
    int before = v->errors;
    for (int i = 0; i < n; i++)
        fields[i].value = NULL;
    const cJSON *note = NULL;
    for (const cJSON *c = obj->child; c; c = c->next) {
        const char *k = c->string ? c->string : "";
        char *p = join(v, path, k);
        if (strcmp(k, "note") == 0) {
            if (note) verr(v, p, "duplicate field");
            if (!cJSON_IsString(c)) verr(v, p, "expected a string, got %s", describe(c, b, sizeof b));
            note = c;
            continue;
        }
        int f = -1;
        for (int i = 0; i < n; i++)
            if (strcmp(fields[i].key, k) == 0) f = i;
        if (f < 0) {
            if (!extra) verr(v, p, "unknown field");
            continue;
        }
        if (fields[f].value) {
            verr(v, p, "duplicate field");
            continue;
        }
        fields[f].value = c;
    }
    for (int i = 0; i < n; i++)
        if (fields[i].required && !fields[i].value) verr(v, join(v, path, fields[i].key), "missing");
    return v->errors == before;
}

static const cJSON *field(const Field *f, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (strcmp(f[i].key, key) == 0) return f[i].value;
    return NULL;
}

static bool get_int(V *v, const cJSON *j, const char *path, long lo, long hi, int *out) {
    char b[96];
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || j->valuedouble != floor(j->valuedouble) ||
        j->valuedouble < (double)lo || j->valuedouble > (double)hi) {
        verr(v, path, "expected an integer in [%ld, %ld], got %s", lo, hi, describe(j, b, sizeof b));
        return false;
    }
    *out = (int)j->valuedouble;
    return true;
}

/* A number > 0 (positive) or >= 0. */
static bool get_num(V *v, const cJSON *j, const char *path, bool positive, double *out) {
    char b[96];
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || j->valuedouble < 0 ||
        (positive && j->valuedouble == 0)) {
        verr(v, path, "expected a number %s, got %s", positive ? "> 0" : ">= 0", describe(j, b, sizeof b));
        return false;
    }
    *out = j->valuedouble;
    return true;
}

static bool get_str(V *v, const cJSON *j, const char *path, const char **out) {
    char b[96];
    if (!cJSON_IsString(j) || !j->valuestring[0]) {
        verr(v, path, "expected a non-empty string, got %s", describe(j, b, sizeof b));
        return false;
    }
    *out = arena_strdup(v->a, j->valuestring);
    return true;
}

static bool get_bool(V *v, const cJSON *j, const char *path, bool *out) {
    char b[96];
    if (!cJSON_IsBool(j)) {
        verr(v, path, "expected true or false, got %s", describe(j, b, sizeof b));
        return false;
    }
    *out = cJSON_IsTrue(j);
    return true;
}

/* ---- entries ------------------------------------------------------------------ */

/* "peak_tflops": every dtype key required (entries) or any subset (devices). */
static void read_peaks(V *v, const cJSON *j, const char *path, bool all, double peaks[HW_PEAK_COUNT]) {
    Field f[HW_PEAK_COUNT];
    for (int i = 0; i < HW_PEAK_COUNT; i++)
        f[i] = (Field){PEAK_NAMES[i], all, NULL};
    read_fields(v, j, path, f, HW_PEAK_COUNT, false);
    for (int i = 0; i < HW_PEAK_COUNT; i++) {
        if (!f[i].value) continue;
        double x;
        if (get_num(v, f[i].value, join(v, path, PEAK_NAMES[i]), i == HW_F32 || i == HW_F16, &x))
            peaks[i] = x;
    }
}

/* An mma shape: "m16n8k16.f16". */
static bool mma_shape_ok(const char *s) {
    static const char *const types[] = {"f16", "bf16", "tf32", "f64",  "s8",  "u8",
                                        "s4",  "u4",   "b1",   "e4m3", "e5m2"};
    int m, n, k, used = 0;
    if (sscanf(s, "m%dn%dk%d.%n", &m, &n, &k, &used) != 3 || used == 0 || m <= 0 || n <= 0 || k <= 0)
        return false;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(s + used, types[i]) == 0) return true;
    return false;
}

static bool has_mma(const HwFeatures *f, const char *type) {
    for (int i = 0; i < f->nmma; i++) {
        const char *dot = strchr(f->mma[i], '.');
        if (dot && strcmp(dot + 1, type) == 0) return true;
    }
    return false;
}

static void read_features(V *v, const cJSON *j, HwFeatures *out) {
    enum { N = 9 };
    Field f[N] = {{"cp_async", true, NULL}, {"ldmatrix", true, NULL}, {"mma", true, NULL},
                  {"wgmma", true, NULL},    {"tma", true, NULL},      {"fp8", true, NULL},
                  {"int8_mma", true, NULL}, {"bf16", true, NULL},     {"tcgen05", true, NULL}};
    read_fields(v, j, "features", f, N, false);
    bool *flags[] = {&out->cp_async, &out->ldmatrix, NULL,       &out->wgmma,  &out->tma,
                     &out->fp8,      &out->int8_mma, &out->bf16, &out->tcgen05};
    for (int i = 0; i < N; i++)
        if (flags[i] && f[i].value) get_bool(v, f[i].value, join(v, "features", f[i].key), flags[i]);
    const cJSON *mma = f[2].value;
    if (!mma) return;
    char b[96];
    if (!cJSON_IsArray(mma)) {
        verr(v, "features.mma", "expected an array of mma shapes, got %s", describe(mma, b, sizeof b));
        return;
    }
    int n = cJSON_GetArraySize(mma), i = 0;
    const char **shapes = arena_alloc(v->a, sizeof(char *) * (size_t)(n + 1));
    for (const cJSON *c = mma->child; c; c = c->next, i++) {
        char *p = arena_printf(v->a, "features.mma[%d]", i);
        if (!cJSON_IsString(c) || !mma_shape_ok(c->valuestring)) {
            verr(v, p,
                 "expected an mma shape such as \"m16n8k16.f16\" (type f16, bf16, tf32, f64, s8, u8, s4, u4, "
                 "b1, e4m3 or e5m2), got %s",
                 describe(c, b, sizeof b));
            continue;
        }
        for (int k = 0; k < out->nmma; k++)
            if (strcmp(shapes[k], c->valuestring) == 0)
                verr(v, p, "duplicate mma shape \"%s\"", c->valuestring);
        shapes[out->nmma++] = arena_strdup(v->a, c->valuestring);
    }
    out->mma = shapes;
}

/* Required parameters of the GPU kernel classes, with their ranges. */
typedef struct {
    const char *name;
    long lo, hi, multiple;
} ParamRule;

static const ParamRule RULES_ELEMENTWISE[] = {{"threads", 32, 1024, 32}, {"vector_bytes", 1, 16, 0}, {0}};
static const ParamRule RULES_REDUCTION[] = {
    {"threads", 32, 1024, 32}, {"max_row_in_registers", 1, 1 << 24, 0}, {0}};
static const ParamRule RULES_GEMM[] = {{"tile_m", 16, 512, 16}, {"tile_n", 8, 512, 8}, {"tile_k", 8, 256, 8},
                                       {"warps", 1, 32, 0},     {"stages", 1, 8, 0},   {0}};
static const ParamRule RULES_ATTENTION[] = {
    {"block_q", 16, 512, 16}, {"block_k", 16, 512, 16}, {"warps", 1, 32, 0}, {0}};
static const ParamRule *const KCLASS_RULES[HW_KCLASS_COUNT] = {RULES_ELEMENTWISE, RULES_REDUCTION, RULES_GEMM,
                                                               RULES_GEMM, RULES_ATTENTION};

static void read_kernel(V *v, const cJSON *j, const char *cls, const ParamRule *rules, HwKernelConfig *out) {
    char *path = arena_printf(v->a, "kernels.%s", cls);
    char b[96];
    out->cls = arena_strdup(v->a, cls);
    if (!cJSON_IsObject(j)) {
        verr(v, path, "expected an object of parameters, got %s", describe(j, b, sizeof b));
        return;
    }
    int n = cJSON_GetArraySize(j);
    HwParam *ps = arena_alloc(v->a, sizeof(HwParam) * (size_t)(n + 1));
    int np = 0;
    for (const cJSON *c = j->child; c; c = c->next) {
        const char *k = c->string ? c->string : "";
        char *p = join(v, path, k);
        if (strcmp(k, "note") == 0) continue;
        bool dup = false;
        for (int i = 0; i < np; i++)
            dup |= strcmp(ps[i].name, k) == 0;
        if (dup) {
            verr(v, p, "duplicate field");
            continue;
        }
        const ParamRule *rule = NULL;
        if (rules) {
            for (const ParamRule *r = rules; r->name; r++)
                if (strcmp(r->name, k) == 0) rule = r;
            if (!rule) {
                verr(v, p, "unknown parameter of kernel class '%s'", cls);
                continue;
            }
        }
        HwParam *q = &ps[np];
        q->name = arena_strdup(v->a, k);
        if (rule) {
            int x;
            if (!get_int(v, c, p, rule->lo, rule->hi, &x)) continue;
            if (rule->multiple && x % rule->multiple) {
                verr(v, p, "expected a multiple of %ld, got %d", rule->multiple, x);
                continue;
            }
            if (strcmp(k, "vector_bytes") == 0 && (x & (x - 1))) {
                verr(v, p, "expected a power of two, got %d", x);
                continue;
            }
            q->kind = HW_PARAM_NUMBER;
            q->number = x;
        } else if (cJSON_IsNumber(c) && isfinite(c->valuedouble)) {
            q->kind = HW_PARAM_NUMBER;
            q->number = c->valuedouble;
        } else if (cJSON_IsString(c)) {
            q->kind = HW_PARAM_STRING;
            q->str = arena_strdup(v->a, c->valuestring);
        } else if (cJSON_IsBool(c)) {
            q->kind = HW_PARAM_BOOL;
            q->boolean = cJSON_IsTrue(c);
        } else {
            verr(v, p, "expected a number, string or boolean, got %s", describe(c, b, sizeof b));
            continue;
        }
        np++;
    }
    if (rules)
        for (const ParamRule *r = rules; r->name; r++) {
            bool found = false;
            for (const cJSON *c = j->child; c; c = c->next)
                found |= c->string && strcmp(c->string, r->name) == 0;
            if (!found) verr(v, join(v, path, r->name), "missing");
        }
    out->nparams = np;
    out->params = ps;
}

static void read_kernels(V *v, const cJSON *j, HwEntry *e) {
    char b[96];
    if (!cJSON_IsObject(j)) {
        verr(v, "kernels", "expected an object of kernel classes, got %s", describe(j, b, sizeof b));
        return;
    }
    int n = cJSON_GetArraySize(j);
    HwKernelConfig *ks = arena_alloc(v->a, sizeof(HwKernelConfig) * (size_t)(n + 1));
    int nk = 0;
    for (const cJSON *c = j->child; c; c = c->next) {
        const char *k = c->string ? c->string : "";
        if (strcmp(k, "note") == 0) continue;
        bool dup = false;
        for (int i = 0; i < nk; i++)
            dup |= strcmp(ks[i].cls, k) == 0;
        if (dup) {
            verr(v, join(v, "kernels", k), "duplicate kernel class");
            continue;
        }
        const ParamRule *rules = NULL;
        if (!e->is_host)
            for (int i = 0; i < HW_KCLASS_COUNT; i++)
                if (strcmp(KCLASS_NAMES[i], k) == 0) rules = KCLASS_RULES[i];
        read_kernel(v, c, k, rules, &ks[nk++]);
    }
    e->nkernels = nk;
    e->kernels = ks;
    const char *const *required = e->is_host ? HOST_KCLASSES : KCLASS_NAMES;
    int nreq = e->is_host ? (int)(sizeof HOST_KCLASSES / sizeof HOST_KCLASSES[0]) : HW_KCLASS_COUNT;
    for (int i = 0; i < nreq; i++)
        if (!rt_hwdb_kernel(e, required[i])) verr(v, join(v, "kernels", required[i]), "missing kernel class");
}

static void read_devices(V *v, const cJSON *j, HwEntry *e) {
    char b[96];
    if (!cJSON_IsArray(j)) {
        verr(v, "devices", "expected an array of devices, got %s", describe(j, b, sizeof b));
        return;
    }
    int n = cJSON_GetArraySize(j), i = 0;
    if (e->is_host && n > 0) {
        verr(v, "devices", "the host entry lists no devices");
        return;
    }
    HwDevice *ds = arena_alloc(v->a, sizeof(HwDevice) * (size_t)(n + 1));
    for (const cJSON *c = j->child; c; c = c->next, i++) {
        const cJSON *name = cJSON_IsObject(c) ? cJSON_GetObjectItemCaseSensitive(c, "name") : NULL;
        char *path = cJSON_IsString(name) ? arena_printf(v->a, "devices['%s']", name->valuestring)
                                          : arena_printf(v->a, "devices[%d]", i);
        enum { N = 5 };
        Field f[N] = {{"name", true, NULL},
                      {"sms", true, NULL},
                      {"mem_bw_gbs", true, NULL},
                      {"l2_mb", false, NULL},
                      {"peak_tflops", false, NULL}};
        if (!read_fields(v, c, path, f, N, false)) {
            if (!cJSON_IsObject(c)) continue;
        }
        HwDevice *dv = &ds[e->ndevices++];
        dv->name = "";
        dv->l2_mb = e->l2_mb;
        memcpy(dv->peak_tflops, e->peak_tflops, sizeof dv->peak_tflops);
        if (f[0].value) get_str(v, f[0].value, join(v, path, "name"), &dv->name);
        if (f[1].value && get_int(v, f[1].value, join(v, path, "sms"), 1, 100000, &dv->sms) &&
            (dv->sms < e->sm_min || dv->sms > e->sm_max) && e->sm_max > 0)
            verr(v, join(v, path, "sms"), "%d is outside the entry's sm_count range [%d, %d]", dv->sms,
                 e->sm_min, e->sm_max);
        if (f[2].value) get_num(v, f[2].value, join(v, path, "mem_bw_gbs"), true, &dv->mem_bw_gbs);
        if (f[3].value) get_num(v, f[3].value, join(v, path, "l2_mb"), true, &dv->l2_mb);
        if (f[4].value) read_peaks(v, f[4].value, join(v, path, "peak_tflops"), false, dv->peak_tflops);
        for (int k = 0; k < e->ndevices - 1; k++)
            if (strcmp(ds[k].name, dv->name) == 0 && *dv->name) verr(v, path, "device listed twice");
    }
    e->devices = ds;
}

/* Cross-field checks of a GPU entry (only on fields that read cleanly). */
static void check_gpu_entry(V *v, HwEntry *e) {
    static const struct {
        size_t flag;
        HwPeak peak;
        const char *mma1, *mma2, *name;
    } pairs[] = {
        {offsetof(HwFeatures, fp8), HW_FP8, "e4m3", "e5m2", "fp8"},
        {offsetof(HwFeatures, bf16), HW_BF16, "bf16", NULL, "bf16"},
        {offsetof(HwFeatures, int8_mma), HW_I8, "s8", "u8", "int8_mma"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        bool flag = *(bool *)((char *)&e->features + pairs[i].flag);
        double peak = e->peak_tflops[pairs[i].peak];
        if (flag != (peak > 0))
            verr(v, arena_printf(v->a, "features.%s", pairs[i].name), "is %s but peak_tflops.%s is %g",
                 flag ? "true" : "false", PEAK_NAMES[pairs[i].peak], peak);
        if (flag && !has_mma(&e->features, pairs[i].mma1) &&
            !(pairs[i].mma2 && has_mma(&e->features, pairs[i].mma2)))
            verr(v, arena_printf(v->a, "features.%s", pairs[i].name), "is true but no mma shape has .%s%s%s",
                 pairs[i].mma1, pairs[i].mma2 ? " or ." : "", pairs[i].mma2 ? pairs[i].mma2 : "");
    }
    if ((e->peak_tflops[HW_TF32] > 0) != has_mma(&e->features, "tf32"))
        verr(v, "peak_tflops.tf32", "is %g but the mma shapes %s .tf32", e->peak_tflops[HW_TF32],
             has_mma(&e->features, "tf32") ? "include" : "do not include");
    if (e->smem_per_block_kb > e->smem_per_sm_kb)
        verr(v, "smem_per_block_kb", "%g is more than smem_per_sm_kb (%g)", e->smem_per_block_kb,
             e->smem_per_sm_kb);
    if (e->sm_min > e->sm_max)
        verr(v, "sm_count", "the minimum %d is above the maximum %d", e->sm_min, e->sm_max);
    /* GEMM tiles: the pipelined A and B tiles must fit in shared memory. */
    for (int k = HW_K_GEMM_F16; k <= HW_K_GEMM_F32; k++) {
        const HwKernelConfig *kc = rt_hwdb_kernel_class(e, (HwKernelClass)k);
        if (!kc) continue;
        double tm = rt_hwdb_param(kc, "tile_m", 0), tn = rt_hwdb_param(kc, "tile_n", 0),
               tk = rt_hwdb_param(kc, "tile_k", 0), st = rt_hwdb_param(kc, "stages", 0),
               warps = rt_hwdb_param(kc, "warps", 0);
        double bytes = st * (tm + tn) * tk * (k == HW_K_GEMM_F16 ? 2 : 4);
        if (e->smem_per_block_kb > 0 && bytes > e->smem_per_block_kb * 1024)
            verr(v, arena_printf(v->a, "kernels.%s", KCLASS_NAMES[k]),
                 "stages * (tile_m + tile_n) * tile_k * %d bytes = %.0f KB of shared memory, more than "
                 "smem_per_block_kb (%g)",
                 k == HW_K_GEMM_F16 ? 2 : 4, bytes / 1024, e->smem_per_block_kb);
        if (warps * 32 > e->max_threads_per_sm && e->max_threads_per_sm > 0)
            verr(v, arena_printf(v->a, "kernels.%s.warps", KCLASS_NAMES[k]),
                 "%g warps exceed max_threads_per_sm", warps);
    }
    if (e->reference_device) {
        bool found = false;
        for (int i = 0; i < e->ndevices; i++)
            found |= strcmp(e->devices[i].name, e->reference_device) == 0;
        if (!found)
            verr(v, "reference_device", "'%s' is not one of the entry's devices", e->reference_device);
    }
}

static void read_gpu_entry(V *v, const cJSON *j, HwEntry *e) {
    enum { N = 16 };
    Field f[N] = {{"arch", true, NULL},
                  {"compute_capability", true, NULL},
                  {"family", true, NULL},
                  {"arch_specific", false, NULL},
                  {"reference_device", true, NULL},
                  {"devices", true, NULL},
                  {"sm_count", true, NULL},
                  {"smem_per_sm_kb", true, NULL},
                  {"smem_per_block_kb", true, NULL},
                  {"registers_per_sm", true, NULL},
                  {"max_threads_per_sm", true, NULL},
                  {"l2_mb", true, NULL},
                  {"mem_bw_gbs", true, NULL},
                  {"peak_tflops", true, NULL},
                  {"features", true, NULL},
                  {"kernels", true, NULL}};
    read_fields(v, j, NULL, f, N, false);
    const cJSON *x;
    char b[96];
    /* arch "sm_<major><minor>" agrees with compute_capability [major, minor] */
    int archnum = -1;
    if ((x = field(f, N, "arch"))) {
        const char *s = x->valuestring;
        char *end = NULL;
        if (strncmp(s, "sm_", 3) == 0 && s[3] >= '1' && s[3] <= '9') archnum = (int)strtol(s + 3, &end, 10);
        if (archnum < 0 || !end || *end || archnum > 999) {
            verr(v, "arch", "expected \"sm_<major><minor>\" such as \"sm_90\" (or \"host\"), got \"%s\"", s);
            archnum = -1;
        }
    }
    if ((x = field(f, N, "compute_capability"))) {
        if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) != 2) {
            verr(v, "compute_capability", "expected [major, minor], got %s", describe(x, b, sizeof b));
        } else if (get_int(v, x->child, "compute_capability[0]", 1, 99, &e->cc_major) &&
                   get_int(v, x->child->next, "compute_capability[1]", 0, 9, &e->cc_minor) && archnum >= 0 &&
                   archnum != e->cc_major * 10 + e->cc_minor) {
            verr(v, "compute_capability", "[%d, %d] does not match arch '%s' (expected sm_%d%d)", e->cc_major,
                 e->cc_minor, e->arch, e->cc_major, e->cc_minor);
        }
    }
    if ((x = field(f, N, "family"))) get_str(v, x, "family", &e->family);
    if ((x = field(f, N, "arch_specific")) && get_str(v, x, "arch_specific", &e->arch_specific)) {
        char *want = arena_printf(v->a, "%sa", e->arch);
        if (strcmp(e->arch_specific, want) != 0)
            verr(v, "arch_specific", "expected \"%s\" (the arch-specific target of %s), got \"%s\"", want,
                 e->arch, e->arch_specific);
    }
    if ((x = field(f, N, "reference_device"))) get_str(v, x, "reference_device", &e->reference_device);
    if ((x = field(f, N, "sm_count"))) {
        if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) != 2)
            verr(v, "sm_count", "expected [min, max], got %s", describe(x, b, sizeof b));
        else if (get_int(v, x->child, "sm_count[0]", 1, 100000, &e->sm_min))
            get_int(v, x->child->next, "sm_count[1]", 1, 100000, &e->sm_max);
    }
    if ((x = field(f, N, "smem_per_sm_kb"))) get_num(v, x, "smem_per_sm_kb", true, &e->smem_per_sm_kb);
    if ((x = field(f, N, "smem_per_block_kb")))
        get_num(v, x, "smem_per_block_kb", true, &e->smem_per_block_kb);
    if ((x = field(f, N, "registers_per_sm")))
        get_int(v, x, "registers_per_sm", 1, 1 << 24, &e->registers_per_sm);
    if ((x = field(f, N, "max_threads_per_sm")) &&
        get_int(v, x, "max_threads_per_sm", 32, 1 << 16, &e->max_threads_per_sm) &&
        e->max_threads_per_sm % 32)
        verr(v, "max_threads_per_sm", "expected a multiple of 32, got %d", e->max_threads_per_sm);
    if ((x = field(f, N, "l2_mb"))) get_num(v, x, "l2_mb", true, &e->l2_mb);
    if ((x = field(f, N, "mem_bw_gbs"))) get_num(v, x, "mem_bw_gbs", true, &e->mem_bw_gbs);
    if ((x = field(f, N, "peak_tflops"))) read_peaks(v, x, "peak_tflops", true, e->peak_tflops);
    if ((x = field(f, N, "features"))) read_features(v, x, &e->features);
    if ((x = field(f, N, "kernels"))) read_kernels(v, x, e);
    /* devices last: they inherit the entry's figures */
    if ((x = field(f, N, "devices"))) read_devices(v, x, e);
}

static void read_host_entry(V *v, const cJSON *j, HwEntry *e) {
    enum { N = 4 };
    Field f[N] = {
        {"arch", true, NULL}, {"family", true, NULL}, {"devices", false, NULL}, {"kernels", true, NULL}};
    if (!read_fields(v, j, NULL, f, N, false)) {
        /* name the GPU-only fields plainly */
        for (const cJSON *c = j->child; c; c = c->next)
            if (c->string && strcmp(c->string, "compute_capability") == 0)
                verr(v, "compute_capability", "the host entry has no compute capability");
    }
    const cJSON *x;
    if ((x = field(f, N, "family"))) get_str(v, x, "family", &e->family);
    if ((x = field(f, N, "devices"))) read_devices(v, x, e);
    if ((x = field(f, N, "kernels"))) read_kernels(v, x, e);
}

HwDb *rt_hwdb_parse(const char *text, size_t len, const char *name, Diag *d) {
    Arena *a = arena_create();
    /* Messages are located at the caller's `name`, not at the arena's copy:
     * a Diag's locations must outlive a database that failed to load. */
    V v = {d, a, name, NULL, 0};
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
        /* cJSON points at where it stopped; turn that into line:col */
        const char *at = end ? end : cJSON_GetErrorPtr();
        int line = 1, col = 1;
        if (at && at >= text && at <= text + len)
            for (const char *p = text; p < at; p++) {
                if (*p == '\n')
                    line++, col = 1;
                else
                    col++;
            }
        diag_error(d, (Loc){v.file, line, col}, "invalid JSON (hardware database)");
        arena_destroy(a);
        return NULL;
    }
    for (const char *p = end; p && p < text + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            verr(&v, NULL, "text after the JSON value");
            break;
        }
    HwDb *db = arena_alloc(a, sizeof *db);
    db->arena = a;
    db->path = arena_strdup(a, name);
    Field top[2] = {{"version", true, NULL}, {"entries", true, NULL}};
    read_fields(&v, root, NULL, top, 2, false);
    int version = 0;
    if (top[0].value && get_int(&v, top[0].value, "version", 0, INT_MAX, &version) && version != HWDB_VERSION)
        verr(&v, "version", "this dsc reads version %d, the file is version %d", HWDB_VERSION, version);
    const cJSON *entries = top[1].value;
    char b[96];
    if (entries && !cJSON_IsArray(entries))
        verr(&v, "entries", "expected an array, got %s", describe(entries, b, sizeof b));
    if (entries && cJSON_IsArray(entries)) {
        int n = cJSON_GetArraySize(entries), i = 0;
        db->entries = arena_alloc(a, sizeof(HwEntry) * (size_t)(n + 1));
        for (const cJSON *c = entries->child; c; c = c->next, i++) {
            HwEntry *e = &db->entries[db->n++];
            const cJSON *arch = cJSON_IsObject(c) ? cJSON_GetObjectItemCaseSensitive(c, "arch") : NULL;
            v.entry = cJSON_IsString(arch) && arch->valuestring[0] ? arch->valuestring
                                                                   : arena_printf(a, "entries[%d]", i);
            if (!cJSON_IsObject(c)) {
                verr(&v, NULL, "expected an object, got %s", describe(c, b, sizeof b));
                v.entry = NULL;
                continue;
            }
            if (!cJSON_IsString(arch) || !arch->valuestring[0]) {
                verr(&v, "arch", "missing or not a non-empty string (\"sm_90\", \"host\")");
                v.entry = NULL;
                continue;
            }
            e->arch = arena_strdup(a, arch->valuestring);
            e->is_host = strcmp(e->arch, "host") == 0;
            int before = v.errors;
            if (e->is_host) {
                read_host_entry(&v, c, e);
            } else {
                read_gpu_entry(&v, c, e);
                if (v.errors == before) check_gpu_entry(&v, e);
            }
            for (int k = 0; k < db->n - 1; k++) {
                const HwEntry *o = &db->entries[k];
                if (!o->arch) continue;
                if (strcmp(o->arch, e->arch) == 0)
                    verr(&v, "arch", "a second entry for '%s'", e->arch);
                else if (!e->is_host && !o->is_host && o->cc_major == e->cc_major &&
                         o->cc_minor == e->cc_minor && e->cc_major)
                    verr(&v, "compute_capability", "%d.%d is also entry '%s''s", e->cc_major, e->cc_minor,
                         o->arch);
                for (int p = 0; p < e->ndevices; p++)
                    for (int q = 0; q < o->ndevices; q++)
                        if (strcmp(e->devices[p].name, o->devices[q].name) == 0)
                            verr(&v, arena_printf(a, "devices['%s']", e->devices[p].name),
                                 "also listed under entry '%s'", o->arch);
            }
            v.entry = NULL;
        }
        int hosts = 0;
        for (int k = 0; k < db->n; k++)
            hosts += db->entries[k].arch && db->entries[k].is_host;
        if (hosts == 0 && v.errors == 0) verr(&v, "entries", "no host entry (\"arch\": \"host\")");
    }
    cJSON_Delete(root);
    if (v.errors) {
        arena_destroy(a);
        return NULL;
    }
    return db;
}

HwDb *rt_hwdb_load(const char *path, Diag *d) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_error(d, loc_file(path), "cannot open the hardware database: %s", strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            if (cap >= (64u << 20)) {
                diag_error(d, loc_file(path), "the hardware database is larger than 64 MiB");
                free(buf);
                fclose(f);
                return NULL;
            }
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    bool bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        diag_error(d, loc_file(path), "cannot read the hardware database: %s",
                   buf ? strerror(errno) : "out of memory");
        free(buf);
        return NULL;
    }
    HwDb *db = rt_hwdb_parse(buf, len, path, d);
    free(buf);
    return db;
}

void rt_hwdb_free(HwDb *db) {
    if (db) arena_destroy(db->arena);
}

/* ---- finding the file --------------------------------------------------------- */

bool rt_hwdb_find(char **path, char *how, size_t n, Diag *d) {
    const char *env = getenv("DSC_HWDB");
    if (env && *env) {
        if (access(env, R_OK) != 0) {
            diag_error(d, loc_file(env), "cannot read the hardware database named by $DSC_HWDB: %s",
                       strerror(errno));
            return false;
        }
        *path = strdup(env);
        if (how) snprintf(how, n, "$DSC_HWDB");
        return true;
    }
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) {
        diag_error(
            d, (Loc){0},
            "hardware database not found: $DSC_HWDB is not set and the executable's directory is unknown "
            "(/proc/self/exe: %s); set DSC_HWDB to the path of hwdb.json",
            strerror(errno));
        return false;
    }
    exe[len] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    static const struct {
        const char *rel, *how;
    } places[] = {
        {"/../share/dsc/hwdb.json", "<exe dir>/../share/dsc/hwdb.json (installed)"},
        {"/../data/hwdb.json", "<exe dir>/../data/hwdb.json (the source tree around the build directory)"},
    };
    char tried[2][4200];
    for (int i = 0; i < 2; i++) {
        snprintf(tried[i], sizeof tried[i], "%s%s", exe, places[i].rel);
        if (access(tried[i], R_OK) == 0) {
            char *real = realpath(tried[i], NULL);
            *path = real ? real : strdup(tried[i]);
            if (how) snprintf(how, n, "%s", places[i].how);
            return true;
        }
    }
    diag_error(
        d, (Loc){0},
        "hardware database not found: $DSC_HWDB is not set and neither %s nor %s exists; set DSC_HWDB to "
        "the path of hwdb.json",
        tried[0], tried[1]);
    return false;
}

HwDb *rt_hwdb_open_default(char *how, size_t n, Diag *d) {
    /* The path stays valid after the call for the locations of any errors
     * (until the next call on this thread). */
    static _Thread_local char found[4200];
    char *path = NULL;
    if (!rt_hwdb_find(&path, how, n, d)) return NULL;
    snprintf(found, sizeof found, "%s", path);
    free(path);
    return rt_hwdb_load(found, d);
}

/* ---- lookups ------------------------------------------------------------------- */

const char *rt_hwdb_path(const HwDb *db) { return db->path; }
int rt_hwdb_count(const HwDb *db) { return db->n; }
const HwEntry *rt_hwdb_entry(const HwDb *db, int i) { return i >= 0 && i < db->n ? &db->entries[i] : NULL; }

const HwEntry *rt_hwdb_arch(const HwDb *db, const char *arch) {
    char want[32];
    int major, minor, used = 0;
    if (sscanf(arch, "%d.%d%n", &major, &minor, &used) == 2 && !arch[used] && minor >= 0 && minor <= 9)
        snprintf(want, sizeof want, "sm_%d%d", major, minor);
    else if (arch[0] >= '0' && arch[0] <= '9')
        snprintf(want, sizeof want, "sm_%.20s", arch);
    else
        snprintf(want, sizeof want, "%.30s", arch);
    size_t wl = strlen(want);
    if (wl > 3 && strncmp(want, "sm_", 3) == 0 && want[wl - 1] == 'a') want[wl - 1] = 0; /* sm_90a: sm_90 */
    for (int i = 0; i < db->n; i++)
        if (strcmp(db->entries[i].arch, want) == 0) return &db->entries[i];
    return NULL;
}

const HwEntry *rt_hwdb_host(const HwDb *db) { return rt_hwdb_arch(db, "host"); }

const HwKernelConfig *rt_hwdb_kernel(const HwEntry *e, const char *cls) {
    for (int i = 0; i < e->nkernels; i++)
        if (strcmp(e->kernels[i].cls, cls) == 0) return &e->kernels[i];
    return NULL;
}

const HwKernelConfig *rt_hwdb_kernel_class(const HwEntry *e, HwKernelClass k) {
    return (unsigned)k < HW_KCLASS_COUNT ? rt_hwdb_kernel(e, KCLASS_NAMES[k]) : NULL;
}

const HwParam *rt_hwdb_find_param(const HwKernelConfig *k, const char *name) {
    for (int i = 0; k && i < k->nparams; i++)
        if (strcmp(k->params[i].name, name) == 0) return &k->params[i];
    return NULL;
}

double rt_hwdb_param(const HwKernelConfig *k, const char *name, double fallback) {
    const HwParam *p = rt_hwdb_find_param(k, name);
    return p && p->kind == HW_PARAM_NUMBER ? p->number : fallback;
}

/* ---- selection ----------------------------------------------------------------- */

static int cc_cmp(int amaj, int amin, int bmaj, int bmin) {
    return amaj != bmaj ? (amaj < bmaj ? -1 : 1) : amin != bmin ? (amin < bmin ? -1 : 1) : 0;
}

static void append(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t n, const char *fmt, ...) {
    size_t len = strlen(buf);
    if (len + 1 >= n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, n - len, fmt, ap);
    va_end(ap);
}

bool rt_hwdb_select(const HwDb *db, const HwQuery *q, HwSelection *out, Diag *d) {
    memset(out, 0, sizeof *out);
    bool named = q->name && q->name[0], has_cc = q->cc_major > 0;
    if (!named && !has_cc) {
        diag_error(d, (Loc){0},
                   "cannot select a hardware-database entry: the device reports neither a name nor "
                   "a compute capability");
        return false;
    }
    const HwEntry *sel = NULL;
    const HwDevice *dev = NULL;
    /* 1. the exact device name */
    for (int i = 0; named && !dev && i < db->n; i++) {
        const HwEntry *e = &db->entries[i];
        for (int k = 0; k < e->ndevices; k++) {
            if (strcmp(e->devices[k].name, q->name) != 0) continue;
            if (has_cc && cc_cmp(e->cc_major, e->cc_minor, q->cc_major, q->cc_minor) != 0) {
                append(
                    out->caveat, sizeof out->caveat,
                    "the database lists '%s' under %s, but the device reports compute capability %d.%d; the "
                    "name was not used. ",
                    q->name, e->arch, q->cc_major, q->cc_minor);
                continue;
            }
            sel = e, dev = &e->devices[k];
            out->how = HW_MATCH_NAME;
            snprintf(out->reason, sizeof out->reason, "exact device name '%s'", q->name);
            break;
        }
    }
    /* 2. the same compute capability; 3. the nearest lower one */
    if (!sel && has_cc) {
        const HwEntry *lower = NULL, *oldest = NULL;
        for (int i = 0; i < db->n; i++) {
            const HwEntry *e = &db->entries[i];
            if (e->is_host) continue;
            int c = cc_cmp(e->cc_major, e->cc_minor, q->cc_major, q->cc_minor);
            if (c == 0) sel = e;
            if (c < 0 && (!lower || cc_cmp(e->cc_major, e->cc_minor, lower->cc_major, lower->cc_minor) > 0))
                lower = e;
            if (!oldest || cc_cmp(e->cc_major, e->cc_minor, oldest->cc_major, oldest->cc_minor) < 0)
                oldest = e;
        }
        if (sel) {
            out->how = HW_MATCH_CC;
            snprintf(out->reason, sizeof out->reason,
                     "same compute capability %d.%d (%s%s%snot listed by name; figures of the reference "
                     "device '%s')",
                     q->cc_major, q->cc_minor, named ? "device '" : "", named ? q->name : "",
                     named ? "' " : "", sel->reference_device);
        } else if (lower) {
            sel = lower;
            out->how = HW_MATCH_LOWER_CC;
            snprintf(out->reason, sizeof out->reason,
                     "nearest lower compute capability: no entry for %d.%d, %s (%d.%d) is the nearest below",
                     q->cc_major, q->cc_minor, sel->arch, sel->cc_major, sel->cc_minor);
            append(out->caveat, sizeof out->caveat,
                   "the kernel configurations, features and figures are those of %s ('%s'), an older "
                   "architecture "
                   "than the device's. ",
                   sel->arch, sel->reference_device);
        } else {
            diag_error(
                d, (Loc){0},
                "no hardware-database entry for compute capability %d.%d%s%s%s: it is below every entry's "
                "(the oldest is %s, compute capability %d.%d)",
                q->cc_major, q->cc_minor, named ? " (device '" : "", named ? q->name : "", named ? "')" : "",
                oldest ? oldest->arch : "none", oldest ? oldest->cc_major : 0, oldest ? oldest->cc_minor : 0);
            return false;
        }
    }
    if (!sel) {
        diag_error(
            d, (Loc){0},
            "no hardware-database entry for device '%s': the name is not listed and the device reports no "
            "compute capability",
            q->name);
        return false;
    }
    out->entry = sel;
    out->device = dev;
    if (dev) {
        out->sms = q->sms > 0 ? q->sms : dev->sms;
        out->mem_bw_gbs = dev->mem_bw_gbs;
        out->l2_mb = dev->l2_mb;
        memcpy(out->peak_tflops, dev->peak_tflops, sizeof out->peak_tflops);
    } else {
        out->sms = q->sms;
        out->mem_bw_gbs = sel->mem_bw_gbs;
        out->l2_mb = sel->l2_mb;
        memcpy(out->peak_tflops, sel->peak_tflops, sizeof out->peak_tflops);
        if (!out->sms)
            for (int k = 0; k < sel->ndevices; k++)
                if (strcmp(sel->devices[k].name, sel->reference_device) == 0) out->sms = sel->devices[k].sms;
    }
    if (q->sms > 0 && (q->sms < sel->sm_min || q->sms > sel->sm_max))
        append(out->caveat, sizeof out->caveat, "the device's %d SMs are outside %s's range %d-%d. ", q->sms,
               sel->arch, sel->sm_min, sel->sm_max);
    size_t cl = strlen(out->caveat);
    if (cl && out->caveat[cl - 1] == ' ') out->caveat[cl - 1] = 0;
    return true;
}

/* ---- printing ------------------------------------------------------------------- */

void rt_hwdb_print_table(const HwDb *db, FILE *out) {
    fprintf(out, "%-8s %-22s %-9s %7s %10s %10s  %s\n", "arch", "family", "SMs", "GB/s", "f16 TF/s",
            "f32 TF/s", "devices");
    for (int i = 0; i < db->n; i++) {
        const HwEntry *e = &db->entries[i];
        if (e->is_host) {
            fprintf(out, "%-8s %-22s %-9s %7s %10s %10s  %s\n", e->arch, e->family, "-", "-", "-", "-", "-");
            continue;
        }
        char sms[32];
        snprintf(sms, sizeof sms, "%d-%d", e->sm_min, e->sm_max);
        fprintf(out, "%-8s %-22s %-9s %7.0f %10.1f %10.1f  %d\n", e->arch, e->family, sms, e->mem_bw_gbs,
                e->peak_tflops[HW_F16], e->peak_tflops[HW_F32], e->ndevices);
    }
}

static void print_peaks(FILE *out, const double *p) {
    for (int i = 0; i < HW_PEAK_COUNT; i++) {
        if (p[i] > 0)
            fprintf(out, "  %s %g", PEAK_NAMES[i], p[i]);
        else
            fprintf(out, "  %s -", PEAK_NAMES[i]);
    }
}

static void print_kernels(const HwEntry *e, FILE *out) {
    fprintf(out, "  kernels:\n");
    for (int i = 0; i < e->nkernels; i++) {
        const HwKernelConfig *k = &e->kernels[i];
        fprintf(out, "    %-14s", k->cls);
        for (int p = 0; p < k->nparams; p++) {
            const HwParam *x = &k->params[p];
            if (x->kind == HW_PARAM_NUMBER)
                fprintf(out, " %s=%g", x->name, x->number);
            else if (x->kind == HW_PARAM_STRING)
                fprintf(out, " %s=\"%s\"", x->name, x->str);
            else
                fprintf(out, " %s=%s", x->name, x->boolean ? "true" : "false");
        }
        fputc('\n', out);
    }
}

void rt_hwdb_print_entry(const HwEntry *e, FILE *out) {
    if (e->is_host) {
        fprintf(out, "%s: %s\n", e->arch, e->family);
        print_kernels(e, out);
        return;
    }
    fprintf(out, "%s: %s, compute capability %d.%d", e->arch, e->family, e->cc_major, e->cc_minor);
    if (e->arch_specific) fprintf(out, " (arch-specific target %s)", e->arch_specific);
    fprintf(out, "\n");
    fprintf(out, "  SMs                 %d-%d\n", e->sm_min, e->sm_max);
    fprintf(out, "  shared memory       %g KB per SM, %g KB per block\n", e->smem_per_sm_kb,
            e->smem_per_block_kb);
    fprintf(out, "  registers           %d per SM\n", e->registers_per_sm);
    fprintf(out, "  threads             %d per SM\n", e->max_threads_per_sm);
    fprintf(out, "  L2                  %g MB\n", e->l2_mb);
    fprintf(out, "  memory bandwidth    %g GB/s\n", e->mem_bw_gbs);
    fprintf(out, "  peak TFLOP/s       ");
    print_peaks(out, e->peak_tflops);
    fprintf(out, "   (i8: TOP/s; dense)\n");
    fprintf(out, "  figures from        %s\n", e->reference_device);
    const HwFeatures *f = &e->features;
    const struct {
        bool on;
        const char *name;
    } feats[] = {{f->cp_async, "cp.async"}, {f->ldmatrix, "ldmatrix"}, {f->wgmma, "wgmma"},
                 {f->tma, "tma"},           {f->fp8, "fp8"},           {f->int8_mma, "int8-mma"},
                 {f->bf16, "bf16"},         {f->tcgen05, "tcgen05"}};
    fprintf(out, "  features           ");
    for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++)
        if (feats[i].on) fprintf(out, " %s", feats[i].name);
    fprintf(out, "   (without:");
    int none = 1;
    for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++)
        if (!feats[i].on) fprintf(out, " %s", feats[i].name), none = 0;
    fprintf(out, "%s)\n", none ? " none" : "");
    fprintf(out, "  mma shapes         ");
    for (int i = 0; i < f->nmma; i++)
        fprintf(out, " %s", f->mma[i]);
    fprintf(out, "\n  devices:\n");
    for (int i = 0; i < e->ndevices; i++) {
        const HwDevice *dv = &e->devices[i];
        fprintf(out, "    %-30s %4d SMs %6g GB/s  L2 %g MB ", dv->name, dv->sms, dv->mem_bw_gbs, dv->l2_mb);
        print_peaks(out, dv->peak_tflops);
        fputc('\n', out);
    }
    print_kernels(e, out);
}

static void print_selection(const HwSelection *s, FILE *out) {
    fprintf(out, "  selects %s (%s): %s\n", s->entry->arch, s->entry->family, s->reason);
    if (s->caveat[0]) fprintf(out, "  caveat: %s\n", s->caveat);
    fprintf(out, "  figures used: %d SMs, %g GB/s, f16 %g TFLOP/s, f32 %g TFLOP/s, L2 %g MB\n", s->sms,
            s->mem_bw_gbs, s->peak_tflops[HW_F16], s->peak_tflops[HW_F32], s->l2_mb);
}

bool rt_hwdb_print_query(const HwDb *db, const HwQuery *q, FILE *out, Diag *d) {
    fprintf(out, "device '%s', compute capability %d.%d", q->name && q->name[0] ? q->name : "(no name)",
            q->cc_major, q->cc_minor);
    if (q->sms > 0) fprintf(out, ", %d SMs", q->sms);
    fprintf(out, "\n");
    HwSelection s;
    if (!rt_hwdb_select(db, q, &s, d)) return false;
    print_selection(&s, out);
    return true;
}

/* One "driver says / database says" line per figure that can be compared. */
static void compare(FILE *out, const char *what, double driver, double db, const char *unit) {
    const char *sep = *unit ? " " : "";
    fprintf(out, "    %-26s driver %g%s%s, database %g%s%s%s\n", what, driver, sep, unit, db, sep, unit,
            fabs(driver - db) > 0.01 * (db > 0 ? db : 1) ? "   <- differs" : "");
}

bool rt_hwdb_print_machine(const HwDb *db, FILE *out, Diag *d) {
    char why[1024];
    if (!rt_cuda_available(why, sizeof why)) {
        fprintf(out, "this machine: no CUDA driver found (%s); host backend\n", why);
        const HwEntry *h = rt_hwdb_host(db);
        if (h) rt_hwdb_print_entry(h, out);
        return true;
    }
    int version = 0, count = 0;
    if (!rt_cuda_driver_version(&version, d) || !rt_cuda_device_count(&count, d)) return false;
    fprintf(out, "this machine: CUDA driver %d.%d (%s), %d device%s\n", version / 1000, version % 1000 / 10,
            rt_cuda_library(), count, count == 1 ? "" : "s");
    bool ok = true;
    for (int i = 0; i < count; i++) {
        RtCudaDeviceInfo info;
        if (!rt_cuda_device_info(i, &info, d)) {
            ok = false;
            continue;
        }
        fprintf(out, "GPU %d: %s, compute capability %d.%d, %d SMs, %.1f GiB\n", i, info.name, info.cc_major,
                info.cc_minor, info.sm_count, (double)info.total_mem / (1024.0 * 1024 * 1024));
        HwQuery q = {info.name, info.cc_major, info.cc_minor, info.sm_count};
        HwSelection s;
        if (!rt_hwdb_select(db, &q, &s, d)) {
            ok = false;
            continue;
        }
        print_selection(&s, out);
        const HwEntry *e = s.entry;
        fprintf(out, "  driver against database:\n");
        compare(out, "shared memory per block", info.smem_per_block_optin / 1024.0, e->smem_per_block_kb,
                "KB");
        compare(out, "shared memory per SM", info.smem_per_sm / 1024.0, e->smem_per_sm_kb, "KB");
        compare(out, "registers per SM", info.registers_per_sm, e->registers_per_sm, "");
        compare(out, "threads per SM", info.max_threads_per_sm, e->max_threads_per_sm, "");
        compare(out, "L2", info.l2_bytes / (1024.0 * 1024), s.l2_mb, "MB");
        if (s.device) compare(out, "SMs", info.sm_count, s.device->sms, "");
    }
    return ok;
}
