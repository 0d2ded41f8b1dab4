/* NVRTC, loaded at run time, and the CUDA kernel builder on top of it.
 *
 * Loading: dsc links no CUDA library.  NVRTC is opened on first use with
 * dlopen -- $DSC_LIBNVRTC if set, else libnvrtc.so.13, libnvrtc.so.12,
 * libnvrtc.so -- and every entry point is resolved once.  Where NVRTC is
 * missing, rt_nvrtc_available says why and every compile fails with that
 * reason as an error; nothing crashes and nothing is printed.
 *
 * Compiling: each kernel is its own NVRTC program, compiled straight to a
 * cubin for one exact architecture (no PTX, so the driver never JITs), with
 * ptxas in verbose mode so the log gives registers, shared memory, stack
 * frame and spills.  The options (rt_nvrtc_options, docs/cuda.md):
 *     --gpu-architecture=sm_XX --std=c++17 --ptxas-options=-v
 * NVRTC optimises by default (-O3 is not an NVRTC option; ptxas runs at its
 * default -O3).  No fast math: accurate expf/erff/tanhf, IEEE division and
 * square root.  Every NVRTC call is checked; a failure is an error naming the
 * kernel, the NVRTC function and result, with the compiler log.
 *
 * Building (rt_cuda_build): render every kernel of a program (the kernel
 * record, codegen/cuda/render.h), look each up in the persistent cache
 * (runtime/kcache.h; key: docs/cuda.md), compile the misses in parallel on a
 * few threads, store them.  This is what a CUDA model load does, and what
 * `dsc compile --emit=cubin` does ahead of time (no GPU needed). */
#ifndef DSC_RUNTIME_NVRTC_H
#define DSC_RUNTIME_NVRTC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "../codegen/cuda/render.h"
#include "../ir/kir.h"
#include "hwdb.h"

/* ---- NVRTC ------------------------------------------------------------------ */

/* True when NVRTC could be loaded; else false with the reason in `why`. */
bool rt_nvrtc_available(char *why, size_t n);
/* The library that was loaded ("libnvrtc.so.13"), or NULL. */
const char *rt_nvrtc_library(void);
/* NVRTC's version; reports (as an error) and returns false without NVRTC. */
bool rt_nvrtc_version(int *major, int *minor, Diag *d);
/* The architectures this NVRTC compiles for (75, 80, ...): up to cap of them
 * into archs; returns how many there are, or -1 (reported) without NVRTC. */
int rt_nvrtc_supported_archs(int *archs, int cap, Diag *d);
/* Parses "sm_90" (also "90", "sm90", "9.0") to 90; -1 if malformed. */
int rt_nvrtc_parse_arch(const char *arch);

enum { NVRTC_MAX_OPTIONS = 8 };
/* The options for a compile for `sm` (90): fills opts (NVRTC_MAX_OPTIONS
 * entries; the strings live in `storage`, at least 64 bytes) and returns the
 * count.  The same list goes into the cache key. */
int rt_nvrtc_options(int sm, const char **opts, char *storage, size_t storage_len);

/* What ptxas reports for a kernel. */
typedef struct {
    int registers;
    int smem_bytes;   /* static shared memory */
    int cmem_bytes;   /* constant bank 0 (parameters) */
    int stack_bytes;  /* stack frame */
    int spill_stores; /* bytes */
    int spill_loads;  /* bytes */
} CubinStats;

/* Reads the stats of function `name` from an NVRTC/ptxas verbose log; false
 * if the log has no "Used N registers" line for it. */
bool rt_nvrtc_parse_stats(const char *log, const char *name, CubinStats *out);

/* One compile. */
typedef struct {
    const char *name;   /* in: the kernel (for messages and stats) */
    const char *source; /* in: the translation unit */
    int sm;             /* in: the architecture; 0: the one rt_nvrtc_compile_all is given */
    void *cubin;        /* out (malloc'd) */
    size_t cubin_size;
    char *log;          /* out (malloc'd): the NVRTC log, ptxas info included */
    char *error;        /* out (malloc'd) on failure: what failed, with the log */
    CubinStats stats;
    double ms;          /* wall time of this compile */
} NvrtcJob;

/* Compiles jobs[0..n) for `sm` (or each job's own) on up to `threads` threads (<= 0: the online
 * CPUs).  Every job is attempted; each failure is reported as an error naming
 * its kernel.  True when all succeeded.  Job outputs are freed with
 * rt_nvrtc_job_free. */
bool rt_nvrtc_compile_all(NvrtcJob *jobs, int n, int sm, int threads, Diag *d);
void rt_nvrtc_job_free(NvrtcJob *job);

/* ---- building a program's kernels --------------------------------------------- */

typedef struct {
    int sm;                   /* target architecture (90 for sm_90); required */
    int block;                /* threads per block; <= 0: CG_CUDA_DEFAULT_BLOCK */
    int threads;              /* compile threads; <= 0: the online CPUs */
    bool no_cache;            /* neither read nor write the persistent cache */
    const char *cache_dir;    /* NULL: from the environment (kcache.h) */
    const char *hwdb_version; /* the hardware database's version (key field); NULL: "none" */
    CudaGemmConfig gemm;      /* GEMM tiles (zero fields: the renderer's defaults) */
} CudaBuildOptions;

typedef struct {
    CudaKernel rec;    /* the kernel record (name, source, block, arguments) */
    void *cubin;       /* malloc'd */
    size_t cubin_size;
    CubinStats stats;
    bool cached;       /* from the persistent cache */
    double compile_ms; /* 0 when cached */
    char key[65];      /* the cache key (hex) */
} CudaBuiltKernel;

typedef struct {
    int sm;
    int n;
    CudaBuiltKernel *kernels; /* in program order */
    int hits, compiled;
    int threads;              /* compile threads used */
    const char *cache_dir;    /* NULL: no cache */
    double render_ms, lookup_ms, compile_ms, store_ms, total_ms; /* wall times */
} CudaBuild;

/* Renders and compiles every kernel of p (see above).  On failure every
 * error is in d and *out holds what was built (free it either way). */
bool rt_cuda_build(Graph *g, const KProgram *p, const CudaBuildOptions *o, CudaBuild *out, Diag *d);
void rt_cuda_build_free(CudaBuild *b);

/* The GEMM tiles of a hardware-database entry: kernels.gemm_f32 and
 * kernels.gemm_f16 (tile_m, tile_n, tile_k, warps).  An entry whose
 * configuration the renderer does not support (cg_cuda_gemm_config_check)
 * gets a warning naming it and the defaults. */
void rt_cuda_gemm_config_from_hwdb(const HwEntry *e, CudaGemmConfig *out, Diag *d);

/* Fills o->block, o->gemm and o->hwdb_version for o->sm from the hardware database
 * (found as rt_hwdb_find says): the block is the entry's
 * kernels.elementwise.threads, the GEMM tiles as rt_cuda_gemm_config_from_hwdb,
 * the version "<schema>:<sha256 of the file>".
 * An architecture without an entry uses the nearest lower one's; without a
 * database (or a fitting entry) it warns and keeps 256 threads and "none".
 * `storage` holds the version string (at least 80 bytes). */
void rt_cuda_target_from_hwdb(CudaBuildOptions *o, char *storage, size_t storage_len, Diag *d);

/* Writes DIR/<kernel>.cu for every kernel of p (DIR is created), rendered
 * for o->sm (0: any architecture) with o->block and o->gemm. */
bool rt_cuda_write_sources(Graph *g, const KProgram *p, const CudaBuildOptions *o, const char *dir, Diag *d);
/* Writes DIR/<kernel>.cu and DIR/<kernel>.cubin for every built kernel. */
bool rt_cuda_build_write(const CudaBuild *b, const char *dir, Diag *d);
/* One line per kernel (registers, shared memory, stack, spills, cubin size,
 * compile time or "cached") and a summary line. */
void rt_cuda_build_print(const CudaBuild *b, FILE *out);

/* ---- ahead of time: `dsc compile --emit=cuda|cubin` ---------------------------- */

typedef struct {
    bool cubin;         /* also compile (else only write the .cu files) */
    int sm;             /* target (90); 0: the first GPU's architecture, else
                           (--emit=cuda only) no target: 256 threads per block */
    const char *dir;    /* output directory (created) */
    FILE *report;       /* with cubin: the per-kernel table (rt_cuda_build_print) */
} CudaEmitOptions;

/* Lowers g (after the pass pipeline) and writes DIR/<kernel>.cu for every
 * kernel, and with o->cubin compiles them (through the cache) and writes
 * DIR/<kernel>.cubin and the table.  Works without a GPU when o->sm is set. */
bool rt_cuda_emit(Graph *g, const CudaEmitOptions *o, Diag *d);

#endif
