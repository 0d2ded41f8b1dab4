/* The CUDA backend: a lowered model loaded onto a GPU and run there.
 *
 * Loading (rt_cuda_model_load) picks the device (its primary context), selects
 * its hardware-database entry (exact name, else compute capability: hwdb.h),
 * builds every kernel of the program with rt_cuda_build for the device's exact
 * architecture through the persistent cache (runtime/nvrtc.h), loads one
 * module per kernel, uploads the params into one device block and runs the
 * load-time kernels (constant groups) once, into the same block.  Running
 * (rt_cuda_model_run) binds the dims from the inputs, places every value with
 * the host executor's own rules (rt_exec_layout, runtime/exec.h), keeps one
 * device block for the inputs and the memory plan's arena (grown when a
 * binding needs more), uploads the inputs, launches the run-time kernels in
 * order on one stream and downloads the outputs.
 *
 * Errors: every driver call is checked and its failure reported naming the
 * call (runtime/cuda_driver.h); where a kernel is involved the message names
 * it ("kernel mlp_g2_0: cuModuleLoadDataEx (JIT error log: ...) failed: ...",
 * "cuLaunchKernel(mlp_g2_0, grid ...) failed: ...").  A fault that the driver
 * reports only at the next synchronisation names the kernels launched since
 * the previous one; DSC_CUDA_SYNC=1 synchronises after every kernel so the
 * message names the one that failed.  Every path releases what it acquired
 * (device memory, modules, the stream, the context).
 *
 * A model is used by one thread at a time (it makes its context current on
 * the calling thread at each call). */
#ifndef DSC_RUNTIME_CUDA_EXEC_H
#define DSC_RUNTIME_CUDA_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../ir/kir.h"
#include "tensor.h"

/* The device a model runs on: what the driver says and what the hardware
 * database selected for it. */
typedef struct {
    int ordinal;
    char name[256];
    int cc_major, cc_minor;
    int sm; /* the exact architecture the kernels are built for (90) */
    int sm_count;
    int max_threads_per_sm;
    size_t total_mem;
    int driver_version; /* 12080 = 12.8 */
    char hwdb_arch[16]; /* the selected entry ("sm_90"), or "" without a database */
    char hwdb_how[256]; /* why that entry ("exact device name 'NVIDIA H200'") or why none */
    int block;          /* threads per block (the entry's kernels.elementwise.threads, else 256) */
} CudaDevice;

/* Whether `dsc run --device auto` should try the GPU: a driver with a device,
 * and NVRTC.  Otherwise false with the reason in why (if non-NULL). */
bool rt_cuda_usable(char *why, size_t n);

/* Opens device `ordinal` (0: the first one CUDA_VISIBLE_DEVICES leaves) and
 * selects its hardware-database entry.  A device no entry fits (older than
 * every architecture in the database) is an error; a missing database is a
 * warning (256 threads per block). */
bool rt_cuda_device_select(int ordinal, CudaDevice *out, Diag *d);

/* The GEMM tactic (docs/cuda.md, "cuBLASLt"): which kernels run through
 * cublasLtMatmul instead of their generated code.  Only kernels that are
 * exactly one GEMM with an epilogue cuBLASLt has (cg_cuda_blas_plan,
 * codegen/cuda/schedule.h) ever do; every other kernel, and a fitting one at
 * a binding of the dims cuBLASLt has no algorithm for, runs its generated
 * code. */
typedef enum {
    CUDA_GEMM_DEFAULT,   /* $DSC_GEMM (generated, cublas or auto) if set, else generated */
    CUDA_GEMM_GENERATED, /* every kernel its generated code */
    CUDA_GEMM_CUBLAS,    /* the kernels that fit through cuBLASLt; without the library, an error */
    CUDA_GEMM_AUTO,      /* the same where the library loads, else the generated code (silently) */
} CudaGemmTactic;

const char *rt_cuda_gemm_name(CudaGemmTactic t); /* "generated", "cublas", "auto" ("default") */
bool rt_cuda_gemm_from_name(const char *name, CudaGemmTactic *out);

typedef struct {
    int device;            /* ordinal */
    const char *cache_dir; /* NULL: where the environment says (runtime/kcache.h) */
    bool no_cache;
    int threads; /* NVRTC compile threads; <= 0: the online CPUs */
    CudaGemmTactic gemm;
} CudaModelOptions;

/* Wall times of a load, in milliseconds. */
typedef struct {
    double select_ms;    /* driver, device, hwdb, context and stream */
    double build_ms;     /* rt_cuda_build: render, cache lookups, NVRTC compiles, stores */
    double module_ms;    /* cuModuleLoadDataEx + cuModuleGetFunction for every kernel */
    double upload_ms;    /* the params to the device */
    double constants_ms; /* the load-time kernels */
    double total_ms;
    int kernels, compiled, cached, load_time_kernels;
    size_t weight_bytes; /* the device block of params and constant values */
    CudaGemmTactic gemm; /* the tactic in effect (never CUDA_GEMM_DEFAULT) */
    int cublas_kernels;  /* kernels that run through cuBLASLt where a binding fits */
} CudaLoadStats;

typedef struct CudaModel CudaModel;

/* Loads program p of graph g (lowered by cg_lower; both must outlive the
 * model) with its params (in the order of the graph's OP_PARAM nodes; read
 * during the load only).  On failure *out is NULL, the errors are in d and
 * everything acquired is released.  opt may be NULL. */
bool rt_cuda_model_load(const Graph *g, const KProgram *p, Tensor *const *params, const CudaModelOptions *opt,
                        CudaModel **out, Diag *d);
/* Releases everything.  Failures of the release calls are reported, except
 * when the context was broken by an asynchronous fault (then every call fails
 * the same way; the fault was reported when it surfaced). */
void rt_cuda_model_free(CudaModel *m, Diag *d);

const CudaDevice *rt_cuda_model_device(const CudaModel *m);
const CudaLoadStats *rt_cuda_model_load_stats(const CudaModel *m);

/* One inference, as rt_exec_run: inputs in the order of the graph's OP_INPUT
 * nodes; on success one new host tensor per graph output in outputs[]; on
 * failure every outputs[i] is NULL. */
bool rt_cuda_model_run(CudaModel *m, Tensor *const *inputs, int ninputs, Tensor **outputs, Diag *d);

/* The tactic kernel ki of the program used at the last binding it ran with:
 * "cublaslt" or "generated" (also before any run for a kernel cuBLASLt
 * cannot take). */
const char *rt_cuda_model_kernel_tactic(const CudaModel *m, int ki);

/* ---- timing ---------------------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *cls;   /* the hwdb kernel class it is closest to: elementwise, reduction, gemm_f16, gemm_f32,
                          attention */
    const char *group; /* its fusion group's kind ("gemm"), or "-" without groups */
    DType dtype;       /* of the first buffer it writes */
    double ms;         /* median over the iterations, CUDA events around the kernel alone */
    int64_t grid, block;
    double bytes, flops; /* the kernel record's estimates at the bound dims; < 0: unknown */
    int registers, spill_bytes;
    const char *tactic; /* "generated", or "cublaslt" when this binding ran through cublasLtMatmul */
} CudaKernelTime;

typedef struct {
    int iterations;
    double median_ms, min_ms; /* one inference with inputs and outputs on the device: every run-time kernel */
    int nkernels;
    CudaKernelTime *kernels; /* the run-time kernels, in order; freed by rt_cuda_bench_free */
} CudaBench;

/* Times the model on `inputs` (uploaded once): `iterations` inferences
 * (after 3 untimed ones), each between two events, then every kernel alone
 * between two events for `iterations` rounds. */
bool rt_cuda_model_bench(CudaModel *m, Tensor *const *inputs, int ninputs, int iterations, CudaBench *out,
                         Diag *d);
void rt_cuda_bench_free(CudaBench *b);
/* The JSON object tests/gpu/run.sh reads (docs/cuda.md, "Timing"). */
void rt_cuda_bench_write_json(const CudaModel *m, const CudaBench *b, FILE *out);
/* rt_cuda_model_bench, then the JSON object written to `path` ("-": standard
 * output).  What DSC_CUDA_BENCH=FILE makes `dsc run --device cuda` do. */
bool rt_cuda_bench_to_file(CudaModel *m, Tensor *const *inputs, int ninputs, int iterations, const char *path,
                           Diag *d);

#endif
