/* Benchmarking a model end to end: what `dsc bench` does, as a library call.
 *
 * rt_bench_model prepares everything once, outside the timed loop -- the
 * inputs and weights (runtime/run.h: files, or seeded random values), and for
 * the host backend the lowering and the JIT compilation (or the disk cache's
 * objects) of every kernel -- then runs the model `warmup` times untimed and
 * `iters` times timed with a monotonic clock.  One timed run is one call of
 * the device's whole-model entry point (rt_exec_run with the host launcher, or
 * rt_interp_run): binding the dims, the memory plan's arena, every kernel
 * (load-time ones included, as `dsc run` does) and copying the outputs out.
 *
 * The flops and bytes per inference are the sum of the lowered kernels'
 * estimates (Kernel.flops, Kernel.bytes) at the bound dims; they are computed
 * for the interpreter too (the graph is lowered only to count), so GFLOP/s is
 * comparable across devices.  With `profile` (host backend only) each kernel
 * launch is timed by wrapping the launcher, and each kernel's median time per
 * inference is reported with its GFLOP/s and GB/s. */
#ifndef DSC_RUNTIME_BENCH_H
#define DSC_RUNTIME_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "host_jit.h"
#include "run.h"

typedef struct {
    /* What to run on and where: inputs, weights, binds, seed, device (auto,
     * cpu or ref); summary and output_dir are not used here (see
     * rt_model_outputs_write for the outputs of the last run). */
    RunOptions run;
    int iters;      /* timed runs, >= 1 */
    int warmup;     /* untimed runs before them, >= 0 */
    bool profile;   /* per-kernel times (host backend) */
    bool no_cache;  /* compile every kernel, not from the disk cache */
} BenchOptions;

typedef struct {
    const char *name;   /* the kernel's name (lives in the graph's arena) */
    bool load_time;     /* part of a load-time constant group */
    double median_ms;   /* per inference (every launch of it in one run) */
    double min_ms;
    double flops;       /* estimate per inference; < 0: unknown */
    double bytes;
} BenchKernel;

typedef struct {
    const char *model;    /* graph name */
    RtDevice device;      /* the device that ran (auto resolved) */
    char target[160];     /* the host backend's description, or "reference interpreter" */
    int threads;          /* threads that run a kernel, the caller included */
    int iters, warmup;
    int ndims;
    const char **dim_names; /* the dims as bound by the inputs */
    int64_t *dim_values;
    double load_ms;       /* parse, check and pass pipeline: set by the caller (rt_bench_now) */
    double data_ms;       /* making or reading the inputs and weights */
    double compile_ms;    /* lowering and JIT compilation (host backend); 0 for ref */
    HostStats host;       /* what compile_ms did: kernels compiled, from the cache */
    double first_ms;      /* the first run (the first warm-up run, if any) */
    double median_ms, min_ms, mean_ms, max_ms;
    double *samples_ms;   /* iters timed runs, in order */
    double flops, bytes;  /* per inference, estimates; < 0: unknown */
    int nkernels;         /* kernels launched per inference (the lowered program) */
    int nprofile;         /* profile: one entry per kernel, program order */
    BenchKernel *profile;
    double profile_other_ms; /* profile: median run time not spent in kernels */
    int noutputs;
    Tensor **outputs;     /* of the last timed run, graph output order */
} BenchResult;

/* Seconds on a monotonic clock. */
double rt_bench_now(void);

/* Runs the benchmark on g (compiled from model_path, through the pass
 * pipeline).  On success fills *res (free with rt_bench_result_free); on
 * failure reports into d and leaves *res freeable. */
bool rt_bench_model(const Graph *g, const char *model_path, const BenchOptions *opt, BenchResult *res, Diag *d);
void rt_bench_result_free(BenchResult *res);

/* The result as one readable block of text, or as one JSON object on one
 * line with the keys model, file, device, target, threads, dims, iters,
 * warmup, load_ms, compile_ms, data_ms, first_ms, median_ms, min_ms,
 * mean_ms, max_ms, throughput_per_s, flops, gflops_per_s, bytes, kernels,
 * kernels_compiled, kernels_cached, samples_ms, and with profile: profile
 * (an array of {name, load_time, median_ms, min_ms, flops, bytes,
 * gflops_per_s, gb_per_s}) and profile_other_ms.  Unknown estimates are null. */
void rt_bench_print(FILE *out, const BenchResult *res, const char *file, bool json);

#endif
