/* Running a model end to end: weights and inputs in, outputs out.
 *
 * This is what `dsc run` does, as a library function: resolve the weights
 * (the model's `weights` file, another file, or seeded random values), read
 * the inputs from .npy files or make seeded random ones, run the model on the
 * chosen device (the reference interpreter, the host JIT or the GPU), write
 * each output as DIR/NAME.npy and print one summary line per output. */
#ifndef DSC_RUNTIME_RUN_H
#define DSC_RUNTIME_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../ir/ir.h"
#include "cuda_exec.h"
#include "tensor.h"

/* Size given to a dim that has no bound and no --bind value when random inputs
 * are made. */
#define RT_DEFAULT_DIM 8

/* Where a model runs (dsc run --device).  RT_DEVICE_REF is 0, so options
 * zeroed by older callers keep running on the interpreter. */
typedef enum {
    RT_DEVICE_REF,  /* the reference interpreter (runtime/interp.c) */
    RT_DEVICE_AUTO, /* the GPU if usable, else the host JIT, else the interpreter (with a warning) */
    RT_DEVICE_CPU,  /* lowered kernels JIT-compiled for the host CPU (runtime/host_jit.c) */
    RT_DEVICE_CUDA, /* lowered kernels on the GPU */
    RT_DEVICE_COUNT
} RtDevice;

const char *rt_device_name(RtDevice dev);               /* "ref", "auto", "cpu", "cuda" */
bool rt_device_from_name(const char *name, RtDevice *out);

typedef struct {
    int ninputs;
    const char *const *input_names; /* --input NAME=FILE */
    const char *const *input_files;
    int nbinds;
    const char *const *bind_names; /* --bind NAME=VALUE */
    const int64_t *bind_values;
    const char *weights;  /* --weights FILE, or NULL for the model's own */
    bool random_inputs;   /* make the inputs not given */
    bool random_weights;  /* ignore weight files, make every param */
    uint64_t seed;
    const char *output_dir; /* write DIR/NAME.npy per output; NULL: do not write */
    FILE *summary;          /* one line per output; NULL: silent */
    /* The graph as written (before the passes), used to choose the ranges of
     * random weights by how each param is used there (a batchnorm variance
     * must be positive even after the passes folded the batchnorm away).
     * NULL: the graph being run. */
    const Graph *as_written;
    /* Where to run.  For cpu and cuda the graph (already through the pass
     * pipeline) is lowered to kernel IR (codegen/lower.c) and run by
     * rt_exec_run with that backend's launcher. */
    RtDevice device;
    /* cuda: the GEMM tactic (--gemm; CUDA_GEMM_DEFAULT: $DSC_GEMM, else generated). */
    CudaGemmTactic gemm;
    /* rt_model_data_load: the params only (no inputs read or made; ninputs 0). */
    bool params_only;
} RunOptions;

/* Runs `g` (compiled from `model_path`, against which a relative `weights`
 * path is resolved).  On success, if `outputs` is non-NULL it receives
 * g->noutputs new tensors the caller frees; otherwise they are freed here. */
bool rt_run_model(const Graph *g, const char *model_path, const RunOptions *opt, Tensor **outputs, Diag *d);

/* The inputs and params rt_run_model runs a graph on, resolved from the
 * options exactly as it does (inputs from files, the others seeded random
 * when random_inputs; params from the weights file, or all random when
 * random_weights), for callers that run one model many times on the same
 * data (dsc bench, runtime/bench.c).  Inputs are in the order of the graph's
 * OP_INPUT nodes, params of its OP_PARAM nodes; params read from a file are
 * views into it, kept open until rt_model_data_free. */
typedef struct {
    int ninputs, nparams;
    Tensor **inputs;
    Tensor **params;
    struct SafeTensors *weights; /* the open weights file, or NULL */
} RtModelData;

/* The weights file: `weights` (--weights) if non-NULL, else the model's
 * `weights` relative to the directory of the model file.  Malloc'd text, or
 * NULL when the model names none. */
char *rt_weights_path(const Graph *g, const char *model_path, const char *weights);

/* On failure reports into d and leaves *md zeroed (safe to free). */
bool rt_model_data_load(const Graph *g, const char *model_path, const RunOptions *opt, RtModelData *md, Diag *d);
void rt_model_data_free(RtModelData *md);

/* What rt_run_model does with the outputs of a run: writes each as
 * opt->output_dir/NAME.npy (when set) and prints the summary lines to
 * opt->summary (when set). */
bool rt_model_outputs_write(const Graph *g, const RunOptions *opt, Tensor *const *outs, Diag *d);

/* Seeded random tensors as used by --random-inputs and --random-weights:
 * floats uniform in [lo, hi), integers uniform in [lo, hi) truncated, bool
 * 0/1 with equal odds. */
void rt_fill_random(Tensor *t, uint64_t *state, double lo, double hi);

/* Loads the weights as rt_model_data_load does (which prunes the params with
 * @sparse, runtime/sparse.c) and writes every param under its key to `out`
 * (safetensors, written atomically).  (runtime/prune.c) */
bool rt_prune_write(const Graph *g, const char *model_path, const RunOptions *opt, const char *out, Diag *d);

#endif
