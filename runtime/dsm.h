/* The compiled-model file (.dsm): one safetensors file holding a model
 * optimized by the pass pipeline, ready to run with no other file.
 *
 * Its `__metadata__` holds the format id and version, the dsc version that
 * wrote it, the model name, the optimized graph as DSG text (with the
 * @group/@buffer hints that carry the fusion groups and the memory plan, and
 * no `weights` line), a JSON summary of the groups, buffers and kernels, the
 * kernel IR as text (for inspection; kernels are lowered and JIT-compiled for
 * the device found at load time) and a SHA-256 checksum over the metadata and
 * the tensor data.  The tensors are the params the optimized graph uses, under
 * their param keys, with its exactly computable load-time constants folded
 * into params (runtime/dsm_fold.h).  The exact layout is in docs/formats.md (".dsm").
 *
 * Loading checks everything before returning: the safetensors container, the
 * format id and version, the metadata keys, the checksum, that the graph
 * compiles, and that every param has a tensor of its dtype and shape (and
 * every tensor a param).  Errors name the file. */
#ifndef DSC_RUNTIME_DSM_H
#define DSC_RUNTIME_DSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "../ir/arena.h"
#include "../ir/diag.h"
#include "../ir/ir.h"
#include "run.h"

/* The format id (metadata "dsc.format") and the newest version this dsc
 * reads and the one it writes (metadata "dsc.format_version"). */
#define RT_DSM_FORMAT_ID "dsc.dsm"
enum { RT_DSM_FORMAT_VERSION = 1 };

/* A loaded compiled model.  The strings borrow the file's metadata and stay
 * valid until rt_dsm_close; the graph lives in the arena given to
 * rt_dsm_open. */
typedef struct {
    Graph *graph;             /* its `weights` names the .dsm itself (see rt_dsm_open) */
    struct SafeTensors *file; /* the open file; its tensors are the params, by param key */
    int format_version;
    const char *dsc_version; /* of the dsc that wrote the file */
    const char *model;       /* model name */
    const char *graph_text;  /* the optimized graph, DSG */
    const char *plan_json;   /* groups, buffers and kernels, JSON (docs/formats.md) */
    const char *kernel_ir;   /* kir_print of every kernel */
    const char *checksum;    /* "sha256:<64 hex digits>", verified */
} RtDsm;

/* Whether `path` must be loaded as a compiled model: its content starts like
 * a safetensors file (an 8-byte little-endian header length of at most
 * ST_MAX_HEADER followed by '{').  DSG source is text and never does.  It
 * says nothing about validity: rt_dsm_open checks the rest (a plain
 * safetensors weights file is refused there with a message that says so).
 * False for files that cannot be read. */
bool rt_dsm_is(const char *path);

/* Writes the compiled model of `g` (already through the pass pipeline;
 * compiled from `model_path`) to `out_path`, atomically (runtime/atomic_file.h:
 * a failure leaves no file and an existing one untouched).  The params come
 * from opt exactly as `dsc run` would resolve them: opt->weights, else the
 * model's `weights` file (relative to model_path), else with
 * opt->random_weights seeded random values -- the same values as `dsc run
 * --random-inputs --random-weights` with the same seed and binds.  Only
 * weights, random_weights, seed, the binds and as_written are used.  The
 * graph's arena gets the lowered kernels (as rt_run_model does). */
bool rt_dsm_write(const Graph *g, const char *model_path, const RunOptions *opt, const char *out_path,
                  Diag *d);

/* Opens and checks `path`; on success fills *out (rt_dsm_close frees it) and
 * returns true.  out->graph->weights is set to the file's base name, so
 * rt_run_model / rt_model_data_load with model_path = `path` read the params
 * from the .dsm itself.  On failure reports into d (every message names the
 * file) and leaves *out zeroed; nothing stays open (the arena may hold
 * partial allocations, freed with it). */
bool rt_dsm_open(const char *path, Arena *a, RtDsm *out, Diag *d);
/* The same checks on a buffer (borrowed; must outlive *out); `name` is used
 * in messages and as the graph's weights name. */
bool rt_dsm_open_mem(const void *buf, size_t len, const char *name, Arena *a, RtDsm *out, Diag *d);
/* Closes the file; *m is zeroed.  Safe on a zeroed RtDsm. */
void rt_dsm_close(RtDsm *m);

/* The checksum the file's contents call for, "sha256:<64 hex digits>" and a
 * NUL (docs/formats.md: over every metadata entry but "dsc.checksum" and
 * every tensor), whatever "dsc.checksum" says. */
enum { RT_DSM_CHECKSUM_SIZE = 72 };
void rt_dsm_checksum(const struct SafeTensors *st, char out[RT_DSM_CHECKSUM_SIZE]);

/* What `dsc inspect` prints about a loaded model (runtime/dsm_inspect.c):
 * format and dsc version, model, checksum status, inputs and outputs with
 * their shapes, dims, a weights summary (count and bytes per dtype, total),
 * the kernels (name, group, kind), the memory plan and the graph as DSG;
 * with `kernel_ir` also the kernel IR.  `json`: one JSON object instead
 * (keys in docs/formats.md).  False on an output error. */
bool rt_dsm_print(const RtDsm *m, const char *path, FILE *out, bool json, bool kernel_ir);

#endif
