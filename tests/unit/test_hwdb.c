/* Tests of the hardware-characteristics database (runtime/hwdb.c) and of the
 * CUDA driver loader (runtime/cuda_driver.c) on a machine without a GPU.
 *
 *   - data/hwdb.json loads and validates; every architecture of the CUDA
 *     backend issue (sm_75, sm_80, sm_86, sm_89, sm_90, sm_100, sm_120) is
 *     there with every required field, and the features each is known for;
 *   - corrupt variants of the real file (one defect each: made with cJSON or
 *     by editing the text, written to temporary files) are refused with an
 *     error that names the entry and the field;
 *   - selection: exact device name, same compute capability, nearest lower
 *     one, and the errors when nothing fits;
 *   - finding the file: $DSC_HWDB, else beside the executable;
 *   - the driver: without libcuda everything fails cleanly with the reason;
 *     a library that is not a driver is refused naming the missing entry
 *     point; the toolkit's stub libcuda (if installed) resolves every entry
 *     point under its versioned name and cuInit fails with its error name. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "runtime/cuda_driver.h"
#include "runtime/hwdb.h"

#include "../support.h"

#define HWDB_FILE DSC_SOURCE_DIR "/data/hwdb.json"
#define TMP DSC_BINARY_DIR "/test_hwdb_tmp"

static const char *const ISSUE_ARCHS[] = {"sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_100", "sm_120"};
enum { NARCHS = sizeof ISSUE_ARCHS / sizeof ISSUE_ARCHS[0] };

/* ---- helpers ------------------------------------------------------------- */

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static char *write_tmp(const char *name, const char *text) {
    if (mkdir(TMP, 0777) != 0 && errno != EEXIST) cr_assert_fail("mkdir %s: %s", TMP, strerror(errno));
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/%s.json", TMP, name) > 0);
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static bool has_error(const Diag *d, const char *phrase) {
    for (int i = 0; i < diag_count(d); i++) {
        DiagLevel lv;
        const char *m = diag_message(d, i, &lv, NULL);
        if (lv == DIAG_ERROR && strstr(m, phrase)) return true;
    }
    return false;
}

static void print_errors(const Diag *d) {
    for (int i = 0; i < diag_count(d); i++)
        fprintf(stderr, "    %s\n", diag_message(d, i, NULL, NULL));
}

static HwDb *load_real(Diag *d) {
    HwDb *db = rt_hwdb_load(HWDB_FILE, d);
    if (!db) print_errors(d);
    cr_assert(db, "data/hwdb.json does not load");
    return db;
}

static cJSON *entry_json(cJSON *root, const char *arch) {
    cJSON *entries = cJSON_GetObjectItemCaseSensitive(root, "entries");
    for (cJSON *e = entries ? entries->child : NULL; e; e = e->next) {
        cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "arch");
        if (cJSON_IsString(a) && strcmp(a->valuestring, arch) == 0) return e;
    }
    cr_assert_fail("no entry %s in the JSON", arch);
    return NULL;
}

/* Object at a dotted path below an entry ("kernels.gemm_f16"). */
static cJSON *at(cJSON *root, const char *arch, const char *path) {
    cJSON *j = entry_json(root, arch);
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *tok = strtok(buf, "."); tok; tok = strtok(NULL, ".")) {
        j = cJSON_GetObjectItemCaseSensitive(j, tok);
        cr_assert(j, "no %s in %s", path, arch);
    }
    return j;
}

static void set_number(cJSON *root, const char *arch, const char *path, const char *key, double v) {
    cJSON *o = *path ? at(root, arch, path) : entry_json(root, arch);
    cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    cJSON_AddNumberToObject(o, key, v);
}

/* ---- the real file --------------------------------------------------------- */

Test(hwdb, real_file_loads) {
    Diag *d = diag_create();
    HwDb *db = load_real(d);
    cr_expect_eq(diag_count(d), 0);
    cr_expect_str_eq(rt_hwdb_path(db), HWDB_FILE);
    cr_expect_geq(rt_hwdb_count(db), NARCHS + 1);
    rt_hwdb_free(db);
    diag_destroy(d);
}

Test(hwdb, every_issue_arch_has_every_field) {
    Diag *d = diag_create();
    HwDb *db = load_real(d);
    for (int i = 0; i < NARCHS; i++) {
        const char *arch = ISSUE_ARCHS[i];
        const HwEntry *e = rt_hwdb_arch(db, arch);
        cr_assert(e, "no entry %s", arch);
        cr_expect(!e->is_host);
        int num = atoi(arch + 3);
        cr_expect_eq(e->cc_major * 10 + e->cc_minor, num, "%s: compute capability %d.%d", arch, e->cc_major,
                     e->cc_minor);
        cr_expect(e->family && *e->family, "%s: family", arch);
        cr_expect(e->sm_min >= 1 && e->sm_max >= e->sm_min, "%s: sm_count", arch);
        cr_expect_gt(e->smem_per_sm_kb, 0, "%s", arch);
        cr_expect(e->smem_per_block_kb > 0 && e->smem_per_block_kb <= e->smem_per_sm_kb, "%s", arch);
        cr_expect_eq(e->registers_per_sm, 65536, "%s: registers", arch);
        cr_expect_gt(e->max_threads_per_sm, 0, "%s", arch);
        cr_expect_gt(e->l2_mb, 0, "%s", arch);
        cr_expect_gt(e->mem_bw_gbs, 0, "%s", arch);
        for (int p = 0; p < HW_PEAK_COUNT; p++)
            cr_expect_geq(e->peak_tflops[p], 0, "%s", arch);
        cr_expect_gt(e->peak_tflops[HW_F32], 0, "%s", arch);
        cr_expect_gt(e->peak_tflops[HW_F16], e->peak_tflops[HW_F32], "%s: tensor-core f16 above f32", arch);
        cr_expect_gt(e->peak_tflops[HW_I8], 0, "%s", arch);
        cr_expect(e->reference_device && *e->reference_device, "%s", arch);
        cr_expect_geq(e->ndevices, 1, "%s", arch);
        /* features: what each generation is known for */
        const HwFeatures *f = &e->features;
        cr_expect_gt(f->nmma, 0, "%s: mma shapes", arch);
        cr_expect(f->ldmatrix, "%s: ldmatrix (sm_75+)", arch);
        cr_expect(f->int8_mma, "%s: int8 mma", arch);
        cr_expect_eq(f->cp_async, num >= 80, "%s: cp.async is sm_80+", arch);
        cr_expect_eq(f->bf16, num >= 80, "%s: bf16 is sm_80+", arch);
        cr_expect_eq(f->fp8, num >= 89, "%s: fp8 is sm_89+", arch);
        cr_expect_eq(f->tma, num >= 90, "%s: TMA is sm_90+", arch);
        cr_expect_eq(f->wgmma, num == 90, "%s: wgmma is sm_90(a) only", arch);
        cr_expect_eq(f->tcgen05, num == 100, "%s: tcgen05 is sm_100(a)", arch);
        cr_expect_eq(e->peak_tflops[HW_FP8] > 0, f->fp8, "%s", arch);
        /* kernel configurations: every class with every parameter */
        static const char *const params[HW_KCLASS_COUNT][6] = {
            {"threads", "vector_bytes"},
            {"threads", "max_row_in_registers"},
            {"tile_m", "tile_n", "tile_k", "warps", "stages"},
            {"tile_m", "tile_n", "tile_k", "warps", "stages"},
            {"block_q", "block_k", "warps"},
        };
        for (int k = 0; k < HW_KCLASS_COUNT; k++) {
            const HwKernelConfig *kc = rt_hwdb_kernel_class(e, (HwKernelClass)k);
            cr_assert(kc, "%s: kernel class %s", arch, rt_hwdb_kclass_name((HwKernelClass)k));
            cr_expect_eq(kc, rt_hwdb_kernel(e, rt_hwdb_kclass_name((HwKernelClass)k)));
            for (int p = 0; p < 6 && params[k][p]; p++)
                cr_expect_gt(rt_hwdb_param(kc, params[k][p], -1), 0, "%s: %s.%s", arch, kc->cls,
                             params[k][p]);
        }
    }
    const HwEntry *host = rt_hwdb_host(db);
    cr_assert(host && host->is_host);
    cr_expect_str_eq(host->arch, "host");
    for (int i = 0; i < 3; i++)
        cr_expect(rt_hwdb_kernel(host, (const char *[]){"elementwise", "reduction", "gemm"}[i]),
                  "host kernels");
    cr_expect_eq(rt_hwdb_param(rt_hwdb_kernel(host, "elementwise"), "vector_width", 0), 8);
    rt_hwdb_free(db);
    diag_destroy(d);
}

Test(hwdb, known_figures) {
    Diag *d = diag_create();
    HwDb *db = load_real(d);
    const HwEntry *h = rt_hwdb_arch(db, "sm_90");
    cr_expect_eq(h->smem_per_sm_kb, 228);
    cr_expect_eq(h->smem_per_block_kb, 227);
    cr_expect_str_eq(h->arch_specific, "sm_90a");
    cr_expect_eq(h->peak_tflops[HW_BF16], 989);
    const HwDevice *h200 = NULL;
    for (int i = 0; i < h->ndevices; i++)
        if (strcmp(h->devices[i].name, "NVIDIA H200") == 0) h200 = &h->devices[i];
    cr_assert(h200, "the H200 is listed by its driver name");
    cr_expect_eq(h200->sms, 132);
    cr_expect_eq(h200->mem_bw_gbs, 4800);
    cr_expect_eq(h200->peak_tflops[HW_F16], 989, "a device inherits the entry's peaks");
    /* lookups by other spellings */
    cr_expect_eq(rt_hwdb_arch(db, "90"), h);
    cr_expect_eq(rt_hwdb_arch(db, "9.0"), h);
    cr_expect_eq(rt_hwdb_arch(db, "sm_90a"), h);
    cr_expect_null(rt_hwdb_arch(db, "sm_70"));
    cr_expect_eq(rt_hwdb_arch(db, "12.0"), rt_hwdb_arch(db, "sm_120"));
    rt_hwdb_free(db);
    diag_destroy(d);
}

/* ---- selection --------------------------------------------------------------- */

Test(hwdb, select_exact_name) {
    Diag *d = diag_create();
    HwDb *db = load_real(d);
    HwSelection s;
    cr_assert(rt_hwdb_select(db, &(HwQuery){"NVIDIA H200", 9, 0, 132}, &s, d));
    cr_expect_eq(s.how, HW_MATCH_NAME);
    cr_expect_str_eq(s.entry->arch, "sm_90");
    cr_assert(s.device);
    cr_expect_str_eq(s.device->name, "NVIDIA H200");
    cr_expect_eq(s.mem_bw_gbs, 4800, "the device's own bandwidth, not the entry's 3350");
    cr_expect_eq(s.l2_mb, 60);
    cr_expect_eq(s.sms, 132);
    cr_expect(strstr(s.reason, "exact device name"), "%s", s.reason);
    cr_expect_str_eq(s.caveat, "");
    /* a device with its own peaks */
    cr_assert(rt_hwdb_select(db, &(HwQuery){"NVIDIA H100 PCIe", 9, 0, 114}, &s, d));
    cr_expect_eq(s.peak_tflops[HW_F16], 756);
    /* a name alone is enough */
    cr_assert(rt_hwdb_select(db, &(HwQuery){"Tesla T4", 0, 0, 0}, &s, d));
    cr_expect_str_eq(s.entry->arch, "sm_75");
    cr_expect_eq(s.sms, 40);
    cr_expect_eq(diag_count(d), 0);
    rt_hwdb_free(db);
    diag_destroy(d);
}

Test(hwdb, select_same_compute_capability) {
    Diag *d = diag_create();
    HwDb *db = load_real(d);
    HwSelection s;
    cr_assert(rt_hwdb_select(db, &(HwQuery){"NVIDIA H20", 9, 0, 78}, &s, d));
    cr_expect_eq(s.how, HW_MATCH_CC);
    cr_expect_str_eq(s.entry->arch, "sm_90");
    cr_expect_null(s.device);
    cr_expect_eq(s.mem_bw_gbs, 3350, "the entry's (reference device's) figures");
    cr_expect_eq(s.sms, 78, "the device's own SM count");
    cr_expect(strstr(s.reason, "same compute capability 9.0"), "%s", s.reason);
    cr_expect(strstr(s.caveat, "outside sm_90's range"), "caveat: %s", s.caveat);
    /* a listed name whose compute capability disagrees is not used */
    cr_assert(rt_hwdb_select(db, &(HwQuery){"NVIDIA H200", 8, 9, 0}, &s, d));
    cr_expect_eq(s.how, HW_MATCH_CC);
    cr_expect_str_eq(s.entry->arch, "sm_89");
    cr_expect(strstr(s.caveat, "the name was not used"), "caveat: %s", s.caveat);
    /* no name at all */
    cr_assert(rt_hwdb_select(db, &(HwQuery){NULL, 8, 6, 0}, &s, d));
    cr_expect_str_eq(s.entry->arch, "sm_86");
    cr_expect_eq(s.sms, 72, "the reference device's SM count when the device gives none");
    rt_hwdb_free(db);
    diag_destroy(d);
}

Test(hwdb, select_nearest_lower) {
    Diag *d = diag_create();
    HwDb *db = load_real(d);
    static const struct {
        int major, minor;
        const char *want;
    } cases[] = {{8, 7, "sm_86"},   {8, 8, "sm_86"},   {9, 5, "sm_90"},   {10, 1, "sm_100"},
                 {10, 3, "sm_100"}, {11, 0, "sm_100"}, {12, 1, "sm_120"}, {13, 0, "sm_120"},
                 {7, 7, "sm_75"},   {8, 2, "sm_80"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        HwSelection s;
        cr_assert(
            rt_hwdb_select(db, &(HwQuery){"Some Future GPU", cases[i].major, cases[i].minor, 0}, &s, d));
        cr_expect_eq(s.how, HW_MATCH_LOWER_CC, "%d.%d", cases[i].major, cases[i].minor);
        cr_expect_str_eq(s.entry->arch, cases[i].want, "%d.%d", cases[i].major, cases[i].minor);
        cr_expect(strstr(s.reason, "nearest lower"), "%s", s.reason);
        cr_expect(strstr(s.caveat, "older architecture"), "%s", s.caveat);
    }
    rt_hwdb_free(db);
    diag_destroy(d);
}

Test(hwdb, select_errors) {
    Diag *d = diag_create();
    HwDb *db = load_real(d);
    HwSelection s;
    cr_expect_not(rt_hwdb_select(db, &(HwQuery){"Tesla V100-SXM2-16GB", 7, 0, 80}, &s, d));
    cr_expect(has_error(d, "no hardware-database entry for compute capability 7.0"));
    cr_expect(has_error(d, "the oldest is sm_75"));
    cr_expect(has_error(d, "Tesla V100-SXM2-16GB"));
    diag_clear(d);
    cr_expect_not(rt_hwdb_select(db, &(HwQuery){"Mystery GPU", 0, 0, 0}, &s, d));
    cr_expect(
        has_error(d, "'Mystery GPU': the name is not listed and the device reports no compute capability"));
    diag_clear(d);
    cr_expect_not(rt_hwdb_select(db, &(HwQuery){NULL, 0, 0, 0}, &s, d));
    cr_expect(has_error(d, "neither a name nor a compute capability"));
    rt_hwdb_free(db);
    diag_destroy(d);
}

/* ---- corrupt variants ---------------------------------------------------------- */

typedef void (*Mutate)(cJSON *root);

static void m_version(cJSON *r) {
    cJSON_DeleteItemFromObject(r, "version");
    cJSON_AddNumberToObject(r, "version", 2);
}
static void m_no_entries(cJSON *r) { cJSON_DeleteItemFromObject(r, "entries"); }
static void m_top_unknown(cJSON *r) { cJSON_AddNumberToObject(r, "entriez", 1); }
static void m_entries_object(cJSON *r) {
    cJSON_DeleteItemFromObject(r, "entries");
    cJSON_AddObjectToObject(r, "entries");
}
static void m_missing_l2(cJSON *r) { cJSON_DeleteItemFromObject(entry_json(r, "sm_90"), "l2_mb"); }
static void m_smem_string(cJSON *r) {
    cJSON *e = entry_json(r, "sm_80");
    cJSON_DeleteItemFromObject(e, "smem_per_sm_kb");
    cJSON_AddStringToObject(e, "smem_per_sm_kb", "164");
}
static void m_negative_bw(cJSON *r) { set_number(r, "sm_86", "", "mem_bw_gbs", -600); }
static void m_cc_mismatch(cJSON *r) {
    cJSON *e = entry_json(r, "sm_80");
    cJSON_DeleteItemFromObject(e, "compute_capability");
    cJSON_AddItemToObject(e, "compute_capability", cJSON_CreateIntArray((const int[]){8, 6}, 2));
}
static void m_cc_float(cJSON *r) {
    cJSON *e = entry_json(r, "sm_75");
    cJSON_DeleteItemFromObject(e, "compute_capability");
    cJSON_AddItemToObject(e, "compute_capability", cJSON_CreateDoubleArray((const double[]){7.5, 0}, 2));
}
static void m_misspelt(cJSON *r) {
    cJSON *e = entry_json(r, "sm_89");
    cJSON *v = cJSON_DetachItemFromObject(e, "registers_per_sm");
    cJSON_AddItemToObject(e, "registers_per_SM", v);
}
static void m_peak_missing(cJSON *r) { cJSON_DeleteItemFromObject(at(r, "sm_89", "peak_tflops"), "fp8"); }
static void m_peak_unknown(cJSON *r) { cJSON_AddNumberToObject(at(r, "sm_89", "peak_tflops"), "fp4", 1); }
static void m_fp8_feature(cJSON *r) {
    cJSON *f = at(r, "sm_80", "features");
    cJSON_DeleteItemFromObject(f, "fp8");
    cJSON_AddTrueToObject(f, "fp8");
}
static void m_feature_not_bool(cJSON *r) {
    cJSON *f = at(r, "sm_90", "features");
    cJSON_DeleteItemFromObject(f, "tma");
    cJSON_AddNumberToObject(f, "tma", 1);
}
static void m_feature_missing(cJSON *r) { cJSON_DeleteItemFromObject(at(r, "sm_120", "features"), "wgmma"); }
static void m_bad_mma(cJSON *r) {
    cJSON *m = at(r, "sm_86", "features.mma");
    cJSON_ReplaceItemInArray(m, 0, cJSON_CreateString("m16n8.f16"));
}
static void m_no_kernel_class(cJSON *r) {
    cJSON_DeleteItemFromObject(at(r, "sm_75", "kernels"), "attention");
}
static void m_no_kernel_param(cJSON *r) {
    cJSON_DeleteItemFromObject(at(r, "sm_80", "kernels.gemm_f16"), "stages");
}
static void m_stages_zero(cJSON *r) { set_number(r, "sm_90", "kernels.gemm_f16", "stages", 0); }
static void m_threads_100(cJSON *r) { set_number(r, "sm_86", "kernels.elementwise", "threads", 100); }
static void m_vector_3(cJSON *r) { set_number(r, "sm_86", "kernels.elementwise", "vector_bytes", 3); }
static void m_unknown_param(cJSON *r) {
    cJSON_AddNumberToObject(at(r, "sm_89", "kernels.reduction"), "treads", 128);
}
static void m_gemm_smem(cJSON *r) {
    set_number(r, "sm_75", "kernels.gemm_f16", "tile_k", 128);
    set_number(r, "sm_75", "kernels.gemm_f16", "stages", 4);
}
static void m_device_sms(cJSON *r) {
    cJSON *dev = cJSON_GetArrayItem(at(r, "sm_100", "devices"), 0);
    cJSON_DeleteItemFromObject(dev, "sms");
    cJSON_AddNumberToObject(dev, "sms", 8);
}
static void m_device_no_name(cJSON *r) {
    cJSON_DeleteItemFromObject(cJSON_GetArrayItem(at(r, "sm_86", "devices"), 1), "name");
}
static void m_device_twice(cJSON *r) {
    cJSON *h200 = cJSON_CreateObject();
    cJSON_AddStringToObject(h200, "name", "NVIDIA H200");
    cJSON_AddNumberToObject(h200, "sms", 148);
    cJSON_AddNumberToObject(h200, "mem_bw_gbs", 4800);
    cJSON_AddItemToArray(at(r, "sm_100", "devices"), h200);
}
static void m_device_peak(cJSON *r) {
    cJSON *dev = cJSON_GetArrayItem(at(r, "sm_75", "devices"), 0);
    cJSON *p = cJSON_GetObjectItem(dev, "peak_tflops");
    cJSON_DeleteItemFromObject(p, "f16");
    cJSON_AddStringToObject(p, "f16", "fast");
}
static void m_reference(cJSON *r) {
    cJSON *e = entry_json(r, "sm_120");
    cJSON_DeleteItemFromObject(e, "reference_device");
    cJSON_AddStringToObject(e, "reference_device", "NVIDIA GeForce RTX 5080");
}
static void m_duplicate_arch(cJSON *r) {
    cJSON *copy = cJSON_Duplicate(entry_json(r, "sm_90"), true);
    cJSON_DeleteItemFromObject(copy, "devices");
    cJSON_AddArrayToObject(copy, "devices");
    cJSON_DeleteItemFromObject(copy, "reference_device");
    cJSON_AddItemToArray(cJSON_GetObjectItem(r, "entries"), copy);
}
static void m_no_host(cJSON *r) {
    cJSON *entries = cJSON_GetObjectItem(r, "entries");
    int n = cJSON_GetArraySize(entries);
    for (int i = n - 1; i >= 0; i--) {
        cJSON *a = cJSON_GetObjectItem(cJSON_GetArrayItem(entries, i), "arch");
        if (strcmp(a->valuestring, "host") == 0) cJSON_DeleteItemFromArray(entries, i);
    }
}
static void m_host_devices(cJSON *r) {
    cJSON *devs = cJSON_GetObjectItem(entry_json(r, "host"), "devices");
    cJSON_AddItemToArray(devs, cJSON_CreateString("cpu"));
}
static void m_host_gpu_field(cJSON *r) { cJSON_AddNumberToObject(entry_json(r, "host"), "l2_mb", 32); }
static void m_host_no_gemm(cJSON *r) { cJSON_DeleteItemFromObject(at(r, "host", "kernels"), "gemm"); }
static void m_arch_name(cJSON *r) {
    cJSON *e = entry_json(r, "sm_86");
    cJSON_DeleteItemFromObject(e, "arch");
    cJSON_AddStringToObject(e, "arch", "ampere86");
}
static void m_arch_specific(cJSON *r) {
    cJSON *e = entry_json(r, "sm_90");
    cJSON_DeleteItemFromObject(e, "arch_specific");
    cJSON_AddStringToObject(e, "arch_specific", "sm_89a");
}
static void m_smem_block(cJSON *r) { set_number(r, "sm_89", "", "smem_per_block_kb", 164); }
static void m_sm_range(cJSON *r) {
    cJSON *e = entry_json(r, "sm_90");
    cJSON_DeleteItemFromObject(e, "sm_count");
    cJSON_AddItemToObject(e, "sm_count", cJSON_CreateIntArray((const int[]){132}, 1));
}
static void m_entry_not_object(cJSON *r) {
    cJSON_AddItemToArray(cJSON_GetObjectItem(r, "entries"), cJSON_CreateNumber(7));
}

static const struct {
    const char *name;
    Mutate mutate;
    const char *phrase; /* must appear in an error */
} MUTATIONS[] = {
    {"version", m_version, "field 'version': this dsc reads version 1, the file is version 2"},
    {"no_entries", m_no_entries, "field 'entries': missing"},
    {"top_unknown", m_top_unknown, "field 'entriez': unknown field"},
    {"entries_object", m_entries_object, "field 'entries': expected an array, got an object"},
    {"missing_l2", m_missing_l2, "entry 'sm_90': field 'l2_mb': missing"},
    {"smem_string", m_smem_string,
     "entry 'sm_80': field 'smem_per_sm_kb': expected a number > 0, got the string \"164\""},
    {"negative_bw", m_negative_bw, "entry 'sm_86': field 'mem_bw_gbs': expected a number > 0, got -600"},
    {"cc_mismatch", m_cc_mismatch,
     "entry 'sm_80': field 'compute_capability': [8, 6] does not match arch 'sm_80'"},
    {"cc_float", m_cc_float,
     "entry 'sm_75': field 'compute_capability[0]': expected an integer in [1, 99], got 7.5"},
    {"misspelt", m_misspelt, "entry 'sm_89': field 'registers_per_SM': unknown field"},
    {"peak_missing", m_peak_missing, "entry 'sm_89': field 'peak_tflops.fp8': missing"},
    {"peak_unknown", m_peak_unknown, "entry 'sm_89': field 'peak_tflops.fp4': unknown field"},
    {"fp8_feature", m_fp8_feature, "entry 'sm_80': field 'features.fp8': is true but peak_tflops.fp8 is 0"},
    {"feature_not_bool", m_feature_not_bool,
     "entry 'sm_90': field 'features.tma': expected true or false, got 1"},
    {"feature_missing", m_feature_missing, "entry 'sm_120': field 'features.wgmma': missing"},
    {"bad_mma", m_bad_mma, "entry 'sm_86': field 'features.mma[0]': expected an mma shape"},
    {"no_kernel_class", m_no_kernel_class, "entry 'sm_75': field 'kernels.attention': missing kernel class"},
    {"no_kernel_param", m_no_kernel_param, "entry 'sm_80': field 'kernels.gemm_f16.stages': missing"},
    {"stages_zero", m_stages_zero,
     "entry 'sm_90': field 'kernels.gemm_f16.stages': expected an integer in [1, 8], got 0"},
    {"threads_100", m_threads_100,
     "entry 'sm_86': field 'kernels.elementwise.threads': expected a multiple of 32, got 100"},
    {"vector_3", m_vector_3,
     "entry 'sm_86': field 'kernels.elementwise.vector_bytes': expected a power of two, got 3"},
    {"unknown_param", m_unknown_param, "entry 'sm_89': field 'kernels.reduction.treads': unknown parameter"},
    {"gemm_smem", m_gemm_smem,
     "entry 'sm_75': field 'kernels.gemm_f16': stages * (tile_m + tile_n) * tile_k"},
    {"device_sms", m_device_sms,
     "entry 'sm_100': field 'devices['NVIDIA B200'].sms': 8 is outside the entry's sm_count range"},
    {"device_no_name", m_device_no_name, "entry 'sm_86': field 'devices[1].name': missing"},
    {"device_twice", m_device_twice,
     "entry 'sm_100': field 'devices['NVIDIA H200']': also listed under entry 'sm_90'"},
    {"device_peak", m_device_peak,
     "entry 'sm_75': field 'devices['Tesla T4'].peak_tflops.f16': expected a number > 0, got the string "
     "\"fast\""},
    {"reference", m_reference,
     "entry 'sm_120': field 'reference_device': 'NVIDIA GeForce RTX 5080' is not one of"},
    {"duplicate_arch", m_duplicate_arch, "entry 'sm_90': field 'arch': a second entry for 'sm_90'"},
    {"no_host", m_no_host, "field 'entries': no host entry"},
    {"host_devices", m_host_devices, "entry 'host': field 'devices': the host entry lists no devices"},
    {"host_gpu_field", m_host_gpu_field, "entry 'host': field 'l2_mb': unknown field"},
    {"host_no_gemm", m_host_no_gemm, "entry 'host': field 'kernels.gemm': missing kernel class"},
    {"arch_name", m_arch_name, "entry 'ampere86': field 'arch': expected \"sm_<major><minor>\""},
    {"arch_specific", m_arch_specific, "entry 'sm_90': field 'arch_specific': expected \"sm_90a\""},
    {"smem_block", m_smem_block,
     "entry 'sm_89': field 'smem_per_block_kb': 164 is more than smem_per_sm_kb (100)"},
    {"sm_range", m_sm_range, "entry 'sm_90': field 'sm_count': expected [min, max]"},
    {"entry_not_object", m_entry_not_object, "entry 'entries[8]': expected an object, got 7"},
};

Test(hwdb, corrupt_variants_name_entry_and_field) {
    char *text = slurp(HWDB_FILE);
    int failures = 0;
    for (size_t i = 0; i < sizeof MUTATIONS / sizeof MUTATIONS[0]; i++) {
        cJSON *root = cJSON_Parse(text);
        cr_assert(root);
        MUTATIONS[i].mutate(root);
        char *json = cJSON_Print(root);
        char *path = write_tmp(MUTATIONS[i].name, json);
        Diag *d = diag_create();
        HwDb *db = rt_hwdb_load(path, d);
        bool ok = !db && has_error(d, MUTATIONS[i].phrase);
        for (int k = 0; k < diag_count(d); k++) {
            Loc loc;
            diag_message(d, k, NULL, &loc);
            ok &= loc.file && strcmp(loc.file, path) == 0; /* located at the file */
        }
        if (!ok) {
            failures++;
            fprintf(stderr, "variant %s: wanted an error containing\n    %s\n  got %s:\n", MUTATIONS[i].name,
                    MUTATIONS[i].phrase, db ? "a loaded database" : "");
            print_errors(d);
        }
        rt_hwdb_free(db);
        diag_destroy(d);
        free(path);
        free(json);
        cJSON_Delete(root);
    }
    free(text);
    cr_expect_eq(failures, 0, "%d corrupt variants not refused as expected", failures);
}

/* Defects only text can have: syntax, duplicate keys, trailing text. */
Test(hwdb, corrupt_text) {
    char *text = slurp(HWDB_FILE);
    static const struct {
        const char *name, *find, *replace, *phrase;
    } cases[] = {
        {"truncated", NULL, NULL, "invalid JSON"},
        {"syntax", "\"sm_count\": [114, 132],", "\"sm_count\": [114, 132,,", "invalid JSON"},
        {"duplicate_key", "\"l2_mb\": 50,", "\"l2_mb\": 50, \"l2_mb\": 60,",
         "entry 'sm_90': field 'l2_mb': duplicate field"},
        {"trailing", NULL, "]}", "text after the JSON value"},
        {"empty", "", "", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t;
        if (strcmp(cases[i].name, "truncated") == 0) {
            t = strndup(text, strlen(text) / 2);
        } else if (strcmp(cases[i].name, "trailing") == 0) {
            cr_assert(asprintf(&t, "%s%s", text, cases[i].replace) > 0);
        } else if (strcmp(cases[i].name, "empty") == 0) {
            t = strdup("");
        } else {
            const char *p = strstr(text, cases[i].find);
            cr_assert(p, "%s: '%s' not in the file", cases[i].name, cases[i].find);
            cr_assert(asprintf(&t, "%.*s%s%s", (int)(p - text), text, cases[i].replace,
                               p + strlen(cases[i].find)) > 0);
        }
        char *path = write_tmp(cases[i].name, t);
        Diag *d = diag_create();
        HwDb *db = rt_hwdb_load(path, d);
        cr_expect_null(db, "%s loaded", cases[i].name);
        cr_expect(has_error(d, cases[i].phrase), "%s: no error containing '%s'", cases[i].name,
                  cases[i].phrase);
        if (!has_error(d, cases[i].phrase)) print_errors(d);
        if (strcmp(cases[i].name, "syntax") == 0) {
            Loc loc;
            diag_message(d, 0, NULL, &loc);
            cr_expect_gt(loc.line, 1, "a syntax error is located at its line");
        }
        rt_hwdb_free(db);
        diag_destroy(d);
        free(path);
        free(t);
    }
    free(text);
    Diag *d = diag_create();
    cr_expect_null(rt_hwdb_load(TMP "/no_such_file.json", d));
    cr_expect(has_error(d, "cannot open the hardware database"));
    diag_destroy(d);
}

/* ---- finding the file ---------------------------------------------------------- */

Test(hwdb, found_through_env_or_beside_the_executable) {
    char how[256];
    Diag *d = diag_create();
    setenv("DSC_HWDB", HWDB_FILE, 1);
    HwDb *db = rt_hwdb_open_default(how, sizeof how, d);
    cr_assert(db);
    cr_expect_str_eq(how, "$DSC_HWDB");
    cr_expect_str_eq(rt_hwdb_path(db), HWDB_FILE);
    rt_hwdb_free(db);

    setenv("DSC_HWDB", TMP "/missing.json", 1);
    cr_expect_null(rt_hwdb_open_default(how, sizeof how, d));
    cr_expect(has_error(d, "named by $DSC_HWDB"));
    diag_clear(d);

    /* unset: the test binary sits in the build directory; the source tree's
     * data/hwdb.json is <exe dir>/../data/hwdb.json when the build directory
     * is inside the source tree */
    unsetenv("DSC_HWDB");
    char *path = NULL;
    bool inside = access(DSC_BINARY_DIR "/../data/hwdb.json", R_OK) == 0;
    bool found = rt_hwdb_find(&path, how, sizeof how, d);
    if (inside) {
        cr_expect(found);
        cr_expect(strstr(how, "<exe dir>/../data/hwdb.json"), "%s", how);
    } else {
        cr_expect_not(found);
        cr_expect(has_error(d, "set DSC_HWDB"));
    }
    free(path);
    diag_destroy(d);
}

/* ---- the CUDA driver without a GPU ------------------------------------------------ */

Test(cuda_driver, fails_cleanly_without_a_driver) {
    char why[1024] = "";
    if (rt_cuda_available(why, sizeof why)) {
        cr_log_warn("a CUDA driver and device are present; the no-driver checks do not apply");
        return;
    }
    cr_expect_neq(why[0], 0, "a reason is given");
    cr_expect(strstr(why, "libcuda.so.1 not found: ") || strstr(why, "cuInit failed: ") ||
                  strstr(why, "found no device") || strstr(why, "$DSC_LIBCUDA"),
              "reason: %s", why);
    /* asking again gives the same answer */
    char again[1024] = "";
    cr_expect_not(rt_cuda_available(again, sizeof again));
    cr_expect_str_eq(again, why);
    /* every call reports the reason instead of crashing */
    Diag *d = diag_create();
    RtCuDevptr p = 0;
    cr_expect_not(rt_cuda_mem_alloc(&p, 1024, d));
    cr_expect(has_error(d, "CUDA driver not available: "));
    cr_expect(has_error(d, why));
    int n = -1;
    cr_expect_not(rt_cuda_device_count(&n, d));
    RtCuContext ctx = NULL;
    cr_expect_not(rt_cuda_context_acquire(0, &ctx, d));
    RtCuModule m = NULL;
    cr_expect_not(rt_cuda_module_load(&m, "", d));
    unsigned grid[3] = {1, 1, 1}, block[3] = {32, 1, 1};
    cr_expect_not(rt_cuda_launch(NULL, "k", grid, block, 0, NULL, NULL, d));
    cr_expect_eq(diag_error_count(d), 5);
    diag_destroy(d);
}

Test(cuda_driver, missing_library) {
    char why[512];
    cr_expect_null(rt_cuda_api_open("/nonexistent/libcuda.so.1", why, sizeof why));
    cr_expect(strstr(why, "/nonexistent/libcuda.so.1 not found: "), "%s", why);
}

Test(cuda_driver, not_a_driver) {
    char why[512];
    cr_expect_null(rt_cuda_api_open("libm.so.6", why, sizeof why));
    cr_expect(strstr(why, "libm.so.6: missing entry point cuGetErrorName"), "%s", why);
}

Test(cuda_driver, error_names) {
    cr_expect_str_eq(rt_cuda_error_name(0), "CUDA_SUCCESS");
    cr_expect_str_eq(rt_cuda_error_name(2), "CUDA_ERROR_OUT_OF_MEMORY");
    cr_expect_str_eq(rt_cuda_error_name(100), "CUDA_ERROR_NO_DEVICE");
    cr_expect_str_eq(rt_cuda_error_name(34), "CUDA_ERROR_STUB_LIBRARY");
    cr_expect_str_eq(rt_cuda_error_name(700), "CUDA_ERROR_ILLEGAL_ADDRESS");
    cr_expect_str_eq(rt_cuda_error_name(12345), "CUDA error 12345");
}

/* The functions the backend needs, by the names of the CUDA issue. */
static const char *const NEEDED[] = {
    "cuInit",
    "cuDeviceGet",
    "cuDeviceGetCount",
    "cuDeviceGetName",
    "cuDeviceGetAttribute",
    "cuDevicePrimaryCtxRetain",
    "cuDevicePrimaryCtxRelease",
    "cuMemAlloc",
    "cuMemFree",
    "cuMemcpyHtoD",
    "cuMemcpyDtoH",
    "cuMemcpyHtoDAsync",
    "cuMemcpyDtoHAsync",
    "cuModuleLoadDataEx",
    "cuModuleGetFunction",
    "cuLaunchKernel",
    "cuStreamCreate",
    "cuStreamSynchronize",
    "cuGetErrorName",
    "cuGetErrorString",
    "cuEventElapsedTime",
};

Test(cuda_driver, function_table) {
    for (size_t i = 0; i < sizeof NEEDED / sizeof NEEDED[0]; i++) {
        bool found = false;
        for (int k = 0; k < rt_cuda_api_function_count(); k++)
            found |= strcmp(rt_cuda_api_function_name(k), NEEDED[i]) == 0;
        cr_expect(found, "%s is not resolved", NEEDED[i]);
    }
}

/* The toolkit's stub libcuda exports every entry point and fails cuInit with
 * CUDA_ERROR_STUB_LIBRARY: the loader's success path and a driver error. */
Test(cuda_driver, toolkit_stub) {
    const char *candidates[] = {getenv("CUDA_HOME") ? getenv("CUDA_HOME") : "", "/usr/local/cuda"};
    char stub[1024] = "";
    for (int i = 0; i < 2 && !stub[0]; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/lib64/stubs/libcuda.so", candidates[i]);
        if (candidates[i][0] && access(p, R_OK) == 0) snprintf(stub, sizeof stub, "%s", p);
    }
    if (!stub[0]) SKIP_UNLESS_CI("no CUDA toolkit stub libcuda.so (CUDA_HOME or /usr/local/cuda)");
    char why[512] = "";
    RtCudaApi *api = rt_cuda_api_open(stub, why, sizeof why);
    cr_assert(api, "%s", why);
    cr_expect_str_eq(rt_cuda_api_symbol(api, "cuMemAlloc"), "cuMemAlloc_v2");
    cr_expect_str_eq(rt_cuda_api_symbol(api, "cuMemcpyHtoD"), "cuMemcpyHtoD_v2");
    cr_expect_str_eq(rt_cuda_api_symbol(api, "cuMemcpyDtoHAsync"), "cuMemcpyDtoHAsync_v2");
    cr_expect_str_eq(rt_cuda_api_symbol(api, "cuStreamDestroy"), "cuStreamDestroy_v2");
    cr_expect_str_eq(rt_cuda_api_symbol(api, "cuDevicePrimaryCtxRelease"), "cuDevicePrimaryCtxRelease_v2");
    cr_expect_str_eq(rt_cuda_api_symbol(api, "cuLaunchKernel"), "cuLaunchKernel");
    cr_expect_null(rt_cuda_api_symbol(api, "cuNoSuchFunction"));
    int n = -1;
    cr_expect_not(rt_cuda_api_init(api, &n, why, sizeof why));
    cr_expect(strstr(why, "cuInit failed: CUDA_ERROR_STUB_LIBRARY"), "%s", why);
    rt_cuda_api_close(api);
}

/* ---- the driver path, against a fake libcuda -------------------------------------- */

/* A stand-in driver: an H200 whose "device memory" is host memory, which
 * fails the way a real driver does on an oversized allocation, a bad image
 * and a block of too many threads.  Compiled by the test with the system C
 * compiler (skipped if there is none). */
static const char FAKE_DRIVER[] =
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "typedef unsigned R;\n"
    "static const char *name(R r) { switch (r) { case 0: return \"CUDA_SUCCESS\";\n"
    "  case 2: return \"CUDA_ERROR_OUT_OF_MEMORY\"; case 218: return \"CUDA_ERROR_INVALID_PTX\";\n"
    "  case 701: return \"CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES\"; default: return 0; } }\n"
    "R cuGetErrorName(R r, const char **s) { *s = name(r); return *s ? 0 : 1; }\n"
    "R cuGetErrorString(R r, const char **s) { *s = r == 2 ? \"out of memory\" : r == 218 ?\n"
    "  \"a PTX JIT compilation failed\" : r == 701 ? \"too many resources requested for launch\" : 0; return "
    "*s ? 0 : 1; }\n"
    "R cuInit(unsigned f) { return f ? 1 : 0; }\n"
    "R cuDriverGetVersion(int *v) { *v = 12080; return 0; }\n"
    "R cuDeviceGetCount(int *n) { *n = 1; return 0; }\n"
    "R cuDeviceGet(int *d, int o) { if (o != 0) return 101; *d = 0; return 0; }\n"
    "R cuDeviceGetName(char *s, int n, int d) { (void)d; strncpy(s, \"NVIDIA H200\", n); return 0; }\n"
    "R cuDeviceGetAttribute(int *v, unsigned a, int d) { (void)d; switch (a) {\n"
    "  case 75: *v = 9; break; case 76: *v = 0; break; case 16: *v = 132; break; case 39: *v = 2048; break;\n"
    "  case 82: *v = 65536; break; case 97: *v = 232448; break; case 81: *v = 233472; break;\n"
    "  case 38: *v = 62914560; break; default: return 1; } return 0; }\n"
    "R cuDeviceTotalMem_v2(size_t *b, int d) { (void)d; *b = (size_t)150754820096ull; return 0; }\n"
    "static int ctx_refs; static int ctx_obj;\n"
    "R cuDevicePrimaryCtxRetain(void **c, int d) { (void)d; ctx_refs++; *c = &ctx_obj; return 0; }\n"
    "R cuDevicePrimaryCtxRelease_v2(int d) { (void)d; return ctx_refs-- > 0 ? 0 : 201; }\n"
    "R cuCtxSetCurrent(void *c) { return c == &ctx_obj ? 0 : 201; }\n"
    "R cuCtxSynchronize(void) { return 0; }\n"
    "R cuMemAlloc_v2(unsigned long long *p, size_t n) { if (n > (1ull << 36)) return 2;\n"
    "  *p = (unsigned long long)(size_t)malloc(n); return 0; }\n"
    "R cuMemFree_v2(unsigned long long p) { free((void *)(size_t)p); return 0; }\n"
    "R cuMemAllocHost_v2(void **p, size_t n) { *p = malloc(n); return 0; }\n"
    "R cuMemFreeHost(void *p) { free(p); return 0; }\n"
    "R cuMemcpyHtoD_v2(unsigned long long d, const void *s, size_t n) { memcpy((void *)(size_t)d, s, n); "
    "return 0; }\n"
    "R cuMemcpyDtoH_v2(void *d, unsigned long long s, size_t n) { memcpy(d, (void *)(size_t)s, n); return 0; "
    "}\n"
    "R cuMemcpyDtoD_v2(unsigned long long d, unsigned long long s, size_t n) { memcpy((void *)(size_t)d, "
    "(void *)(size_t)s, n); return 0; }\n"
    "R cuMemcpyHtoDAsync_v2(unsigned long long d, const void *s, size_t n, void *st) { (void)st; return "
    "cuMemcpyHtoD_v2(d, s, n); }\n"
    "R cuMemcpyDtoHAsync_v2(void *d, unsigned long long s, size_t n, void *st) { (void)st; return "
    "cuMemcpyDtoH_v2(d, s, n); }\n"
    "R cuMemcpyDtoDAsync_v2(unsigned long long d, unsigned long long s, size_t n, void *st) { (void)st; "
    "return cuMemcpyDtoD_v2(d, s, n); }\n"
    "R cuMemsetD8_v2(unsigned long long d, unsigned char v, size_t n) { memset((void *)(size_t)d, v, n); "
    "return 0; }\n"
    "static int module_obj, function_obj;\n"
    "R cuModuleLoadDataEx(void **m, const void *img, unsigned n, unsigned *o, void **v) {\n"
    "  if (strncmp(img, \"bad\", 3) != 0) { *m = &module_obj; return 0; }\n"
    "  for (unsigned i = 0; i < n; i++) if (o[i] == 5) strcpy(v[i], \"ptxas fatal: unexpected token\");\n"
    "  return 218; }\n"
    "R cuModuleUnload(void *m) { return m == &module_obj ? 0 : 400; }\n"
    "R cuModuleGetFunction(void **f, void *m, const char *n) { (void)m; if (strcmp(n, \"k\")) return 500;\n"
    "  *f = &function_obj; return 0; }\n"
    "R cuFuncSetAttribute(void *f, unsigned a, int v) { (void)f; (void)a; return v > 232448 ? 1 : 0; }\n"
    "R cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned "
    "bz,\n"
    "  unsigned sm, void *st, void **p, void **e) { (void)f; (void)gx; (void)gy; (void)gz; (void)sm; "
    "(void)st;\n"
    "  (void)p; (void)e; return bx * by * bz > 1024 ? 701 : 0; }\n"
    "static int stream_obj, event_obj[2], events;\n"
    "R cuStreamCreate(void **s, unsigned f) { (void)f; *s = &stream_obj; return 0; }\n"
    "R cuStreamSynchronize(void *s) { (void)s; return 0; }\n"
    "R cuStreamDestroy_v2(void *s) { (void)s; return 0; }\n"
    "R cuEventCreate(void **e, unsigned f) { (void)f; *e = &event_obj[events++ % 2]; return 0; }\n"
    "R cuEventRecord(void *e, void *s) { (void)e; (void)s; return 0; }\n"
    "R cuEventSynchronize(void *e) { (void)e; return 0; }\n"
    "R cuEventElapsedTime_v2(float *ms, void *a, void *b) { *ms = a == b ? 0.0f : 1.5f; return 0; }\n"
    "R cuEventDestroy_v2(void *e) { (void)e; return 0; }\n";

/* Builds the fake driver; NULL if there is no C compiler. */
static char *build_fake_driver(void) {
    char *src = write_tmp("fake_cuda_src", FAKE_DRIVER); /* TMP/fake_cuda_src.json */
    char *c = NULL, *so = NULL, *cmd = NULL;
    cr_assert(asprintf(&c, "%s/fake_cuda.c", TMP) > 0 && asprintf(&so, "%s/libcuda_fake.so", TMP) > 0);
    cr_assert(rename(src, c) == 0);
    cr_assert(asprintf(&cmd, "cc -shared -fPIC -o '%s' '%s' 2>/dev/null", so, c) > 0);
    int rc = system(cmd);
    free(cmd);
    free(c);
    free(src);
    if (rc != 0) {
        free(so);
        return NULL;
    }
    return so;
}

Test(cuda_driver, calls_through_a_fake_driver) {
    char *so = build_fake_driver();
    if (!so) SKIP_UNLESS_CI("no C compiler ('cc') to build the fake driver");
    setenv("DSC_LIBCUDA", so, 1);
    char why[512] = "";
    cr_assert(rt_cuda_available(why, sizeof why), "%s", why);
    cr_expect_str_eq(rt_cuda_library(), so);
    Diag *d = diag_create();
    int version = 0, count = 0;
    cr_expect(rt_cuda_driver_version(&version, d) && version == 12080);
    cr_expect(rt_cuda_device_count(&count, d) && count == 1);
    RtCudaDeviceInfo info;
    cr_assert(rt_cuda_device_info(0, &info, d));
    cr_expect_str_eq(info.name, "NVIDIA H200");
    cr_expect(info.cc_major == 9 && info.cc_minor == 0 && info.sm_count == 132);
    cr_expect_eq(info.smem_per_block_optin, 232448);
    cr_expect_eq(info.l2_bytes, 62914560);
    cr_expect_not(rt_cuda_device_info(1, &info, d));
    cr_expect(has_error(d, "cuDeviceGet(1) failed: CUDA_ERROR_INVALID_DEVICE"),
              "the table names what the driver does not");
    diag_clear(d);

    RtCuContext ctx = NULL;
    cr_expect(rt_cuda_context_acquire(0, &ctx, d) && ctx);
    RtCuDevptr p = 0;
    const char msg[] = "through the device and back";
    char back[sizeof msg] = "";
    cr_expect(rt_cuda_mem_alloc(&p, sizeof msg, d));
    cr_expect(rt_cuda_memcpy_htod(p, msg, sizeof msg, d));
    cr_expect(rt_cuda_memcpy_dtoh(back, p, sizeof msg, d));
    cr_expect_str_eq(back, msg);
    RtCuStream s = NULL;
    cr_expect(rt_cuda_stream_create(&s, d));
    memset(back, 0, sizeof back);
    cr_expect(rt_cuda_memcpy_dtoh_async(back, p, sizeof msg, s, d) && rt_cuda_stream_synchronize(s, d));
    cr_expect_str_eq(back, msg);
    cr_expect(rt_cuda_mem_free(p, d));
    cr_expect_eq(diag_count(d), 0);

    cr_expect_not(rt_cuda_mem_alloc(&p, (size_t)1 << 40, d));
    cr_expect(
        has_error(d, "cuMemAlloc_v2(1099511627776 bytes) failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory)"));
    RtCuModule m = NULL;
    cr_expect_not(rt_cuda_module_load(&m, "bad image", d));
    cr_expect(has_error(d, "cuModuleLoadDataEx (JIT error log: ptxas fatal: unexpected token) failed: "
                           "CUDA_ERROR_INVALID_PTX (a PTX JIT compilation failed)"));
    cr_expect(rt_cuda_module_load(&m,
                                  "\x7f"
                                  "ELF",
                                  d));
    RtCuFunction f = NULL;
    cr_expect_not(rt_cuda_module_function(&f, m, "nope", d));
    cr_expect(has_error(d, "cuModuleGetFunction(\"nope\") failed: CUDA_ERROR_NOT_FOUND"));
    cr_expect(rt_cuda_module_function(&f, m, "k", d));
    unsigned grid[3] = {4, 1, 1}, ok_block[3] = {256, 1, 1}, big_block[3] = {64, 32, 1};
    cr_expect(rt_cuda_launch(f, "k", grid, ok_block, 0, s, NULL, d));
    cr_expect_not(rt_cuda_launch(f, "k", grid, big_block, 1024, s, NULL, d));
    cr_expect(has_error(d, "cuLaunchKernel(k, grid 4x1x1, block 64x32x1, 1024 bytes shared) failed: "
                           "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES (too many resources requested for launch)"));
    RtCuEvent e0 = NULL, e1 = NULL;
    float ms = 0;
    cr_expect(rt_cuda_event_create(&e0, d) && rt_cuda_event_create(&e1, d) &&
              rt_cuda_event_record(e0, s, d) && rt_cuda_event_record(e1, s, d) &&
              rt_cuda_event_synchronize(e1, d) && rt_cuda_event_elapsed_ms(&ms, e0, e1, d));
    cr_expect_eq(ms, 1.5f);
    cr_expect(rt_cuda_event_destroy(e0, d) && rt_cuda_event_destroy(e1, d) && rt_cuda_stream_destroy(s, d) &&
              rt_cuda_module_unload(m, d) && rt_cuda_context_release(0, d));
    cr_expect_eq(diag_error_count(d), 4, "only the four planted failures");
    diag_clear(d);

    /* dsc hwdb on this machine: the fake H200 selects sm_90 by name */
    HwDb *db = load_real(d);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cr_expect(rt_hwdb_print_machine(db, out, d));
    fclose(out);
    cr_expect(strstr(text, "this machine: CUDA driver 12.8"), "%s", text);
    cr_expect(strstr(text, "GPU 0: NVIDIA H200, compute capability 9.0, 132 SMs"), "%s", text);
    cr_expect(strstr(text, "selects sm_90 (Hopper): exact device name 'NVIDIA H200'"), "%s", text);
    cr_expect(strstr(text, "shared memory per block    driver 227 KB, database 227 KB\n"), "%s", text);
    cr_expect_null(strstr(text, "differs"), "%s", text);
    free(text);
    rt_hwdb_free(db);
    diag_destroy(d);
    free(so);
}
