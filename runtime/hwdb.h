/* The hardware-characteristics database (data/hwdb.json; schema in docs/hwdb.md).
 *
 * One entry per GPU architecture (sm_75, sm_80, ...) and one for the host:
 * the architecture's limits (SM count range, shared memory, registers, L2),
 * its datasheet bandwidth and peak throughput per dtype, its instruction
 * features (cp.async, ldmatrix, mma shapes, wgmma, TMA, fp8, int8) and the
 * kernel configuration per kernel class that the renderers use.  Known
 * devices of an architecture are listed by the name the driver reports, with
 * the figures in which they differ from the architecture's reference device.
 *
 * rt_hwdb_load parses and validates the whole file at once: every error names
 * the file, the entry and the field.  rt_hwdb_select picks the entry for a
 * device: exact device name, else the same compute capability, else the
 * nearest lower one, else an error.  The loaded database is immutable; all
 * strings in it belong to it. */
#ifndef DSC_RUNTIME_HWDB_H
#define DSC_RUNTIME_HWDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../ir/diag.h"

/* The schema version this loader reads. */
enum { HWDB_VERSION = 1 };

/* Peak-throughput dtypes, in the file's "peak_tflops" keys.  Append only. */
typedef enum { HW_F32, HW_F16, HW_BF16, HW_TF32, HW_I8, HW_FP8, HW_PEAK_COUNT } HwPeak;
/* "f32", "f16", "bf16", "tf32", "i8", "fp8". */
const char *rt_hwdb_peak_name(HwPeak p);

/* Kernel classes every GPU entry configures.  Append only. */
typedef enum {
    HW_K_ELEMENTWISE,
    HW_K_REDUCTION,
    HW_K_GEMM_F16,
    HW_K_GEMM_F32,
    HW_K_ATTENTION,
    HW_KCLASS_COUNT
} HwKernelClass;
/* "elementwise", "reduction", "gemm_f16", "gemm_f32", "attention". */
const char *rt_hwdb_kclass_name(HwKernelClass k);

typedef enum { HW_PARAM_NUMBER, HW_PARAM_STRING, HW_PARAM_BOOL } HwParamKind;

typedef struct {
    const char *name;
    HwParamKind kind;
    double number;   /* HW_PARAM_NUMBER */
    const char *str; /* HW_PARAM_STRING */
    bool boolean;    /* HW_PARAM_BOOL */
} HwParam;

/* One kernel class's configuration ("gemm_f16": tile_m, tile_n, ...). */
typedef struct {
    const char *cls;
    int nparams;
    const HwParam *params;
} HwKernelConfig;

typedef struct {
    bool cp_async, ldmatrix, wgmma, tma, fp8, int8_mma, bf16, tcgen05;
    int nmma;
    const char *const *mma; /* mma.sync shapes, "m16n8k16.f16" */
} HwFeatures;

/* A known device of an architecture.  Figures not given for the device are
 * the architecture's (resolved at load time, so every field is set). */
typedef struct {
    const char *name; /* as the driver reports it (cuDeviceGetName) */
    int sms;
    double mem_bw_gbs, l2_mb;
    double peak_tflops[HW_PEAK_COUNT];
} HwDevice;

typedef struct {
    const char *arch;   /* "sm_90", or "host" */
    const char *family; /* "Hopper" */
    bool is_host;
    /* GPU entries only (zero for the host): */
    int cc_major, cc_minor;
    const char *arch_specific; /* "sm_90a" where wgmma/tcgen05 need it, else NULL */
    int sm_min, sm_max;
    double smem_per_sm_kb, smem_per_block_kb, l2_mb, mem_bw_gbs;
    int registers_per_sm, max_threads_per_sm;
    double peak_tflops[HW_PEAK_COUNT]; /* 0: not supported */
    HwFeatures features;
    const char *reference_device; /* the device the figures above are from */
    int ndevices;
    const HwDevice *devices;
    /* every entry: */
    int nkernels;
    const HwKernelConfig *kernels;
} HwEntry;

typedef struct HwDb HwDb;

/* Reads and validates a database file.  NULL with every error in d (located
 * at the file; the text names the entry and field). */
HwDb *rt_hwdb_load(const char *path, Diag *d);
/* The same from text; `name` is the location used in messages. */
HwDb *rt_hwdb_parse(const char *text, size_t len, const char *name, Diag *d);
void rt_hwdb_free(HwDb *db);

/* Where the database is: $DSC_HWDB if set (and only there), else
 * <exe dir>/../share/dsc/hwdb.json (installed), else <exe dir>/../data/hwdb.json
 * (a build directory inside the source tree).  On success *path is a new
 * string and `how` says which rule found it; else reports every place tried. */
bool rt_hwdb_find(char **path, char *how, size_t n, Diag *d);
/* rt_hwdb_find + rt_hwdb_load.  `how` as for rt_hwdb_find (may be NULL). */
HwDb *rt_hwdb_open_default(char *how, size_t n, Diag *d);

const char *rt_hwdb_path(const HwDb *db);
int rt_hwdb_count(const HwDb *db);
const HwEntry *rt_hwdb_entry(const HwDb *db, int i);
/* The entry of an architecture by name ("sm_90", also "90" or "9.0"), or NULL. */
const HwEntry *rt_hwdb_arch(const HwDb *db, const char *arch);
/* The host entry (validation guarantees there is one). */
const HwEntry *rt_hwdb_host(const HwDb *db);

/* A kernel class's configuration by name ("gemm_f16"), or NULL. */
const HwKernelConfig *rt_hwdb_kernel(const HwEntry *e, const char *cls);
const HwKernelConfig *rt_hwdb_kernel_class(const HwEntry *e, HwKernelClass k);
/* A numeric parameter of a configuration, or `fallback` if it has none of
 * that name (for GPU entries the required ones are always there). */
double rt_hwdb_param(const HwKernelConfig *k, const char *name, double fallback);
const HwParam *rt_hwdb_find_param(const HwKernelConfig *k, const char *name);

/* What a device says about itself. */
typedef struct {
    const char *name; /* NULL or "" if unknown */
    int cc_major, cc_minor;
    int sms; /* 0 if unknown */
} HwQuery;

typedef enum { HW_MATCH_NAME, HW_MATCH_CC, HW_MATCH_LOWER_CC } HwMatch;

typedef struct {
    const HwEntry *entry;
    const HwDevice *device; /* the device matched by name, else NULL */
    HwMatch how;
    /* The figures to use: the device's when matched by name, else the
     * entry's (sms: the query's when given). */
    int sms;
    double mem_bw_gbs, l2_mb;
    double peak_tflops[HW_PEAK_COUNT];
    /* Why this entry, in words; and a caveat (SM count outside the entry's
     * range, an arch chosen from a lower compute capability), or "". */
    char reason[256];
    char caveat[256];
} HwSelection;

/* Selects the entry for a device; reports and returns false if none fits (a
 * compute capability below every entry's, or no name and no capability). */
bool rt_hwdb_select(const HwDb *db, const HwQuery *q, HwSelection *out, Diag *d);

/* `dsc hwdb`: one line per entry (arch, family, SM range, bandwidth, peak
 * f16/f32). */
void rt_hwdb_print_table(const HwDb *db, FILE *out);
/* `dsc hwdb --arch X`: one entry in full. */
void rt_hwdb_print_entry(const HwEntry *e, FILE *out);
/* Which entry this machine selects and why: each CUDA device with its
 * selection and where the driver's figures differ from the entry's, or "no
 * CUDA driver found (why); host backend" and the host entry.  False (with
 * errors in d) if a device is present but no entry fits or the driver fails. */
bool rt_hwdb_print_machine(const HwDb *db, FILE *out, Diag *d);
/* What a device with query q would select, printed like rt_hwdb_print_machine. */
bool rt_hwdb_print_query(const HwDb *db, const HwQuery *q, FILE *out, Diag *d);

#endif
