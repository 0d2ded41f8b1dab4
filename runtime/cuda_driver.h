/* The CUDA driver API, loaded at run time with dlopen.
 *
 * dsc links no CUDA library: the driver (libcuda.so.1, else libcuda.so; or
 * the file named by $DSC_LIBCUDA) is opened on first use, every entry point
 * is resolved by its versioned name (cuMemAlloc_v2, ...; falling back to the
 * older name where a newer driver renamed one), and cuInit runs once.  Where
 * there is no driver or no device, rt_cuda_available says so and every other
 * call fails with that reason; nothing crashes and nothing is printed.
 *
 * Every call is checked: a failure becomes one error in the Diag naming the
 * driver function, its key arguments, the CUDA error name and its
 * description, e.g.
 *     cuMemAlloc_v2(1073741824 bytes) failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory)
 * (names come from cuGetErrorName, else a built-in table).
 *
 * Contexts: dsc uses the device's primary context (retain/release), the one
 * the CUDA runtime and cuBLAS use too, so buffers and streams are shared with
 * them without conversions.  rt_cuda_context_acquire makes it current on the
 * calling thread.
 *
 * The handle types are the driver's own opaque struct pointers under dsc
 * names, so they convert to and from <cuda.h> types without casts. */
#ifndef DSC_RUNTIME_CUDA_DRIVER_H
#define DSC_RUNTIME_CUDA_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../ir/diag.h"

typedef struct CUctx_st *RtCuContext;
typedef struct CUmod_st *RtCuModule;
typedef struct CUfunc_st *RtCuFunction;
typedef struct CUstream_st *RtCuStream; /* NULL: the default stream */
typedef struct CUevent_st *RtCuEvent;
typedef unsigned long long RtCuDevptr;

/* True if a driver was loaded, cuInit succeeded and there is at least one
 * device.  Otherwise false and `why` (if non-NULL) holds the reason, e.g.
 * "libcuda.so.1 not found: ..." or "cuInit failed: CUDA_ERROR_NO_DEVICE (...)". */
bool rt_cuda_available(char *why, size_t n);
/* The same, reporting the reason as an error in d. */
bool rt_cuda_init(Diag *d);
/* The library that was loaded ("libcuda.so.1"), or NULL. */
const char *rt_cuda_library(void);

/* "CUDA_ERROR_OUT_OF_MEMORY", or "CUDA error 12345" for an unknown code. */
const char *rt_cuda_error_name(int result);
/* The driver's description of an error, or "" if it has none. */
const char *rt_cuda_error_string(int result);

/* Devices. */
typedef struct {
    int ordinal;
    char name[256];
    int cc_major, cc_minor;
    int sm_count;
    int max_threads_per_sm, registers_per_sm;
    int smem_per_block_optin, smem_per_sm; /* bytes */
    int l2_bytes;
    size_t total_mem; /* bytes */
} RtCudaDeviceInfo;

bool rt_cuda_driver_version(int *version, Diag *d); /* 12040 = 12.4 */
bool rt_cuda_device_count(int *count, Diag *d);
bool rt_cuda_device_info(int ordinal, RtCudaDeviceInfo *out, Diag *d);

/* Retains device `ordinal`'s primary context and makes it current on this
 * thread; every acquire is paired with a release. */
bool rt_cuda_context_acquire(int ordinal, RtCuContext *ctx, Diag *d);
bool rt_cuda_context_release(int ordinal, Diag *d);
bool rt_cuda_context_synchronize(Diag *d);

/* Memory.  Sizes in bytes.  Host buffers from rt_cuda_host_alloc are pinned
 * (what makes the async copies asynchronous). */
bool rt_cuda_mem_alloc(RtCuDevptr *p, size_t bytes, Diag *d);
bool rt_cuda_mem_free(RtCuDevptr p, Diag *d);
bool rt_cuda_host_alloc(void **p, size_t bytes, Diag *d);
bool rt_cuda_host_free(void *p, Diag *d);
bool rt_cuda_memcpy_htod(RtCuDevptr dst, const void *src, size_t bytes, Diag *d);
bool rt_cuda_memcpy_dtoh(void *dst, RtCuDevptr src, size_t bytes, Diag *d);
bool rt_cuda_memcpy_dtod(RtCuDevptr dst, RtCuDevptr src, size_t bytes, Diag *d);
bool rt_cuda_memcpy_htod_async(RtCuDevptr dst, const void *src, size_t bytes, RtCuStream s, Diag *d);
bool rt_cuda_memcpy_dtoh_async(void *dst, RtCuDevptr src, size_t bytes, RtCuStream s, Diag *d);
bool rt_cuda_memcpy_dtod_async(RtCuDevptr dst, RtCuDevptr src, size_t bytes, RtCuStream s, Diag *d);
bool rt_cuda_memset_d8(RtCuDevptr dst, unsigned char value, size_t bytes, Diag *d);

/* Modules and kernels.  `image` is a cubin, fatbin or NUL-terminated PTX;
 * on failure the driver's JIT log (if any) is part of the message. */
bool rt_cuda_module_load(RtCuModule *m, const void *image, Diag *d);
bool rt_cuda_module_unload(RtCuModule m, Diag *d);
bool rt_cuda_module_function(RtCuFunction *f, RtCuModule m, const char *name, Diag *d);
/* Lets f use more than 48 KiB of dynamic shared memory. */
bool rt_cuda_function_max_dynamic_smem(RtCuFunction f, int bytes, Diag *d);
/* Launches f; `name` (may be NULL) is used in the error message.  params[i]
 * points at the i-th kernel argument. */
bool rt_cuda_launch(RtCuFunction f, const char *name, const unsigned grid[3], const unsigned block[3],
                    unsigned smem_bytes, RtCuStream s, void **params, Diag *d);

/* Streams and events (events time work on a stream, in milliseconds). */
bool rt_cuda_stream_create(RtCuStream *s, Diag *d);
bool rt_cuda_stream_synchronize(RtCuStream s, Diag *d);
bool rt_cuda_stream_destroy(RtCuStream s, Diag *d);
bool rt_cuda_event_create(RtCuEvent *e, Diag *d);
bool rt_cuda_event_record(RtCuEvent e, RtCuStream s, Diag *d);
bool rt_cuda_event_synchronize(RtCuEvent e, Diag *d);
bool rt_cuda_event_elapsed_ms(float *ms, RtCuEvent start, RtCuEvent end, Diag *d);
bool rt_cuda_event_destroy(RtCuEvent e, Diag *d);

/* ---- for tests and diagnostics: one library, loaded outside the process-wide
 * driver above ---------------------------------------------------------------- */

typedef struct RtCudaApi RtCudaApi;
/* Opens the library at `path` (a file or a soname) and resolves every entry
 * point dsc uses.  NULL with the reason in `why`: "PATH not found: <dlerror>"
 * or "PATH: missing entry point cuInit". */
RtCudaApi *rt_cuda_api_open(const char *path, char *why, size_t n);
/* Calls cuInit(0) and cuDeviceGetCount; false with the reason in `why`. */
bool rt_cuda_api_init(RtCudaApi *api, int *ndevices, char *why, size_t n);
/* The name an entry point was resolved under ("cuMemAlloc_v2"), or NULL if
 * dsc does not use that function. */
const char *rt_cuda_api_symbol(const RtCudaApi *api, const char *function);
void rt_cuda_api_close(RtCudaApi *api);
/* The driver functions dsc resolves, by their unversioned names. */
int rt_cuda_api_function_count(void);
const char *rt_cuda_api_function_name(int i);

#endif
