/* dsc — the public C API.
 *
 * This is the only public header.  A C program links libdsc (shared or
 * static; pkg-config `dsc`, CMake `find_package(dsc)` and `dsc::dsc`) and:
 *
 *   dsc_context  options shared by the models loaded through it: the device
 *                (auto, cpu, cuda or ref), the kernel cache directory, the
 *                number of threads;
 *   dsc_model    one model, loaded once (parsed, optimized, lowered, every
 *                kernel compiled, weights read, constants computed) and
 *                immutable afterwards: any number of sessions on any number
 *                of threads may use it at once;
 *   dsc_session  what one thread needs to run a model: its own memory (one
 *                arena sized from the memory plan for the bound dims, grown
 *                only when a larger binding arrives), its outputs and its
 *                error message.  A session is used by one thread at a time.
 *
 * Conventions.  Every function that can fail returns a dsc_status; the
 * message of the last failed call on a context or a session is
 * dsc_context_errmsg() / dsc_session_errmsg(), owned by that handle and valid
 * until the next call on it.  Out-parameters are marked [out]; they are
 * written on success and set to NULL/zero on failure.  Every create has its
 * destroy; destroying NULL does nothing.  Handles hold references: a model
 * keeps its context alive and a session its model, so the handles may be
 * destroyed in any order (each destroy gives up the caller's reference; the
 * memory goes when the last reference does).  The library keeps no global
 * state a caller can see, never prints and never exits.
 *
 * Thread safety.  dsc_model_* functions and dsc_session_create may be called
 * on one model from any number of threads at once.  A session, and calls that
 * read a context's error message, belong to one thread at a time.  Loading
 * models through one context from several threads at once is allowed; the
 * context's message is then that of whichever load failed last (use a context
 * per thread to keep them apart).
 *
 * docs/api.md has a complete example. */
#ifndef DSC_H
#define DSC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What libdsc exports (everything else in the shared library is hidden). */
#if defined(DSC_BUILDING_LIBRARY) && defined(__GNUC__)
#define DSC_API __attribute__((visibility("default")))
#else
#define DSC_API
#endif

/* Status codes.  Append only. */
typedef enum {
    DSC_OK = 0,
    DSC_ERR_INVALID_ARGUMENT, /* a bad argument or option (NULL handle, wrong input count or dtype, ...) */
    DSC_ERR_DIAGNOSTICS,      /* the model has errors; see the diagnostics */
    DSC_ERR_IO,               /* a file could not be read or written */
    DSC_ERR_FORMAT,           /* a file is corrupt or of a foreign or unsupported version */
    DSC_ERR_RUNTIME,          /* an error while running a model (indices, internal errors) */
    DSC_ERR_NO_MEMORY,
    DSC_ERR_NO_DEVICE,
    DSC_ERR_SHAPE, /* an input's shape does not fit the model's types, or a dim is past its `<=` bound */
    DSC_STATUS_COUNT
} dsc_status;

/* A static English description of a status ("ok", "invalid argument", ...). */
DSC_API const char *dsc_status_str(dsc_status status);

/* The library version, "MAJOR.MINOR.PATCH". */
DSC_API const char *dsc_version(void);

/* ---- tensors ------------------------------------------------------------------ */

/* Element types, as in the DSG language.  Append only. */
typedef enum {
    DSC_F32 = 0,
    DSC_F16, /* IEEE half, stored as 16-bit words */
    DSC_BF16,
    DSC_I8,
    DSC_I32,
    DSC_I64,
    DSC_BOOL, /* one byte, 0 or 1 */
    DSC_DTYPE_COUNT
} dsc_dtype;

/* "f32", "f16", ... (NULL for a value out of range). */
DSC_API const char *dsc_dtype_name(dsc_dtype dtype);
/* Bytes per element (0 for a value out of range). */
DSC_API size_t dsc_dtype_size(dsc_dtype dtype);

enum { DSC_MAX_RANK = 8 };

/* A tensor: dtype, shape and a contiguous C-order (row-major) buffer.
 *
 * Inputs: the caller fills every field; `data` is the caller's memory, read
 * during dsc_session_run only (never written, never kept).
 *
 * Outputs: with data == NULL the session provides the memory: on return data,
 * dtype, rank, shape and nbytes describe the session's buffer, owned by the
 * session and valid until the next dsc_session_run on it or its destroy.  With
 * data != NULL the caller provides it: nbytes is its capacity and dtype must
 * be the output's; on return the output was copied there and rank, shape and
 * nbytes describe it.  A buffer too small is DSC_ERR_INVALID_ARGUMENT with
 * nbytes set to the size needed (nothing written). */
typedef struct {
    dsc_dtype dtype;
    int rank;
    int64_t shape[DSC_MAX_RANK];
    void *data;
    size_t nbytes; /* the buffer's size in bytes */
} dsc_tensor;

/* ---- contexts --------------------------------------------------------------------- */

typedef enum {
    DSC_DEVICE_AUTO = 0, /* the GPU if usable, else the host CPU (LLVM JIT), else the reference interpreter */
    DSC_DEVICE_CPU,      /* kernels JIT-compiled for the host CPU */
    DSC_DEVICE_CUDA,     /* kernels compiled by NVRTC for the GPU found (its first device) */
    DSC_DEVICE_REF,      /* the reference interpreter (slow; the oracle) */
    DSC_DEVICE_COUNT
} dsc_device;

/* "auto", "cpu", "cuda", "ref" (NULL for a value out of range). */
DSC_API const char *dsc_device_name(dsc_device device);

/* A zeroed struct is the defaults. */
typedef struct {
    dsc_device device;
    const char
        *cache_dir; /* the kernel cache; NULL: $DSC_CACHE_DIR, else the user's cache directory.  Copied. */
    int no_cache;   /* non-zero: no persistent kernel cache */
    int threads;    /* CPU threads for running kernels (the caller's included); <= 0: $DSC_THREADS,
                       else the CPUs this process may use */
} dsc_context_options;

typedef struct dsc_context dsc_context;

/* [out] *ctx: a new context (opts may be NULL: the defaults).  Fails with
 * DSC_ERR_INVALID_ARGUMENT (a NULL ctx, a device out of range) or
 * DSC_ERR_NO_MEMORY, and then *ctx is NULL.  The device is checked when a
 * model is loaded. */
DSC_API dsc_status dsc_context_create(const dsc_context_options *opts, dsc_context **ctx);
DSC_API void dsc_context_destroy(dsc_context *ctx);
/* The message of the last failed call on ctx (model loads report here), or
 * "" if none.  Owned by ctx; valid until the next call on it. */
DSC_API const char *dsc_context_errmsg(const dsc_context *ctx);

/* ---- models ------------------------------------------------------------------------ */

/* A zeroed struct is the defaults. */
typedef struct {
    const char *weights; /* a safetensors file; NULL: the model's own `weights` file, relative to the model
                            (a .dsm: its own tensors; give neither this nor random_weights) */
    int random_weights;  /* non-zero: no weights file; every param seeded random (for demos and tests) */
    uint64_t seed;       /* the seed of random_weights */
} dsc_model_options;

typedef struct dsc_model dsc_model;

/* Loads the model at `path` through ctx: DSG source (parsed and checked,
 * then optimized by the pass pipeline of `dsc -O2`) or a compiled model
 * (`dsc compile -o MODEL.dsm`: already optimized, weights inside; told apart
 * by content), lowered to kernels and compiled for the context's device
 * (through the kernel cache), weights read and checked, load-time constants
 * computed.  opts may be NULL.  [out] *model on success.  On failure *model
 * is NULL, nothing is left behind, and dsc_context_errmsg(ctx) says why (for
 * a model with errors: every diagnostic, "file:line:col: error: ...").
 * Statuses: DSC_ERR_IO (no such file), DSC_ERR_DIAGNOSTICS (the model has
 * errors), DSC_ERR_FORMAT (a bad weights file; a truncated, corrupt, foreign
 * or future-version .dsm), DSC_ERR_NO_DEVICE (device cuda without a usable
 * GPU, cpu without the host backend), DSC_ERR_INVALID_ARGUMENT (weights or
 * random_weights given for a .dsm), DSC_ERR_NO_MEMORY. */
DSC_API dsc_status dsc_model_load(dsc_context *ctx, const char *path, const dsc_model_options *opts,
                                  dsc_model **model);
DSC_API void dsc_model_destroy(dsc_model *model);

/* The model's name (owned by the model). */
DSC_API const char *dsc_model_name(const dsc_model *model);
/* The device the model runs on ("cpu", "cuda", "ref"; auto resolved). */
DSC_API dsc_device dsc_model_device(const dsc_model *model);

/* An input or output as declared.  Strings are owned by the model. */
typedef struct {
    const char *name;
    dsc_dtype dtype;
    int rank;
    int64_t shape[DSC_MAX_RANK];         /* the size, or -1 where it depends on dims */
    const char *dim_names[DSC_MAX_RANK]; /* "B", "S", "S*2" where symbolic; NULL where constant */
} dsc_tensor_info;

DSC_API int dsc_model_input_count(const dsc_model *model);  /* -1 for NULL */
DSC_API int dsc_model_output_count(const dsc_model *model); /* -1 for NULL */
/* [out] *info of input / output i (0 <= i < count); DSC_ERR_INVALID_ARGUMENT otherwise. */
DSC_API dsc_status dsc_model_input_info(const dsc_model *model, int i, dsc_tensor_info *info);
DSC_API dsc_status dsc_model_output_info(const dsc_model *model, int i, dsc_tensor_info *info);

/* The model's dim symbols: count, and [out] the name (owned by the model) and
 * `<=` bound (-1: none) of symbol i. */
DSC_API int dsc_model_dim_count(const dsc_model *model);
DSC_API dsc_status dsc_model_dim_info(const dsc_model *model, int i, const char **name, int64_t *bound);

/* ---- sessions ---------------------------------------------------------------------- */

typedef struct dsc_session dsc_session;

/* [out] *session: a new session on model (which it keeps alive).  Allocates
 * no arena yet (the first run does).  Fails only with
 * DSC_ERR_INVALID_ARGUMENT (NULL arguments) or DSC_ERR_NO_MEMORY. */
DSC_API dsc_status dsc_session_create(dsc_model *model, dsc_session **session);
DSC_API void dsc_session_destroy(dsc_session *session);
/* The message of the last failed call on the session, or "".  Owned by the
 * session; valid until the next call on it. */
DSC_API const char *dsc_session_errmsg(const dsc_session *session);

/* One inference.  inputs: ninputs tensors in the model's input order (see
 * dsc_model_input_info); the dims are bound from their shapes.  outputs:
 * noutputs descriptors in the model's output order, filled as dsc_tensor
 * says.  Statuses: DSC_ERR_INVALID_ARGUMENT (a NULL pointer, a wrong count or
 * dtype or rank, nbytes that do not match the shape, an output buffer too
 * small), DSC_ERR_SHAPE (a dimension that does not fit, a dim past its bound,
 * inconsistent dims), DSC_ERR_NO_MEMORY (the arena, a value or an output cannot be
 * allocated, on the host or the GPU), DSC_ERR_RUNTIME (an error in the run itself).  On failure the
 * session-owned outputs of the previous run are gone and caller buffers may
 * have been partly written. */
DSC_API dsc_status dsc_session_run(dsc_session *session, const dsc_tensor *inputs, int ninputs,
                                   dsc_tensor *outputs, int noutputs);

typedef struct {
    uint64_t runs;           /* successful runs */
    size_t arena_bytes;      /* the arena's size now */
    size_t peak_arena_bytes; /* the largest arena this session has had */
    uint64_t arena_grows;    /* times the arena was (re)allocated for a larger binding */
} dsc_stats;

/* [out] *stats of the session.  On devices without an arena (ref: the
 * interpreter allocates per value) the arena figures are 0. */
DSC_API dsc_status dsc_session_stats(const dsc_session *session, dsc_stats *stats);

#ifdef __cplusplus
}
#endif

#endif
