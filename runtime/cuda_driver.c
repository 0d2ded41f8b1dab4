/* The CUDA driver API through dlopen (see cuda_driver.h).
 *
 * Why dlopen: the same dsc binary must run on machines without a GPU (CI, the
 * host backend) and pick the GPU up where there is one; linking libcuda would
 * make the binary fail to start without a driver.  The CUDA headers are used
 * only, where the build found them, to check at compile time that every
 * function-pointer type below is the driver's own prototype and every
 * constant has the driver's value; the file builds without them.
 *
 * The entry points are one table (CU_FUNCTIONS): the name dsc calls a
 * function by, the exported symbol to resolve (the versioned one where the API
 * has _v2 variants: cuMemAlloc_v2, cuMemcpyHtoD_v2, cuStreamDestroy_v2, ...),
 * an older symbol to fall back to only where that is ABI-compatible (never
 * for the _v2 memory functions, whose v1 forms take 32-bit pointers), and the
 * parameter list.  A library missing any of them is refused as a whole, so a
 * half-working driver never gets as far as a launch.
 *
 * The process-wide driver is loaded once (pthread_once) on the first call of
 * any rt_cuda_ function; its outcome, success or the reason for failure, is
 * kept and every later call answers from it. */
#include "cuda_driver.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(DSC_HAVE_CUDA_HEADERS)
#include <cuda.h>
#endif

/* The driver's enums are unsigned int in the C ABI (all their values are
 * non-negative). */
typedef unsigned CuResult;
enum {
    CU_OK = 0,
    CU_ERROR_NO_DEVICE = 100,
    ATTR_MAX_THREADS_PER_BLOCK = 1,
    ATTR_MULTIPROCESSOR_COUNT = 16,
    ATTR_L2_CACHE_SIZE = 38,
    ATTR_MAX_THREADS_PER_MULTIPROCESSOR = 39,
    ATTR_COMPUTE_CAPABILITY_MAJOR = 75,
    ATTR_COMPUTE_CAPABILITY_MINOR = 76,
    ATTR_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR = 81,
    ATTR_MAX_REGISTERS_PER_MULTIPROCESSOR = 82,
    ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97,
    FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8,
    JIT_ERROR_LOG_BUFFER = 5,
    JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6,
    STREAM_NON_BLOCKING = 1,
    EVENT_DEFAULT = 0,
};

#if defined(DSC_HAVE_CUDA_HEADERS)
#define SAME_VALUE(theirs, ours) _Static_assert((int)(theirs) == (int)(ours), #theirs)
SAME_VALUE(CUDA_SUCCESS, CU_OK);
SAME_VALUE(CUDA_ERROR_NO_DEVICE, CU_ERROR_NO_DEVICE);
SAME_VALUE(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, ATTR_MAX_THREADS_PER_BLOCK);
SAME_VALUE(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, ATTR_MULTIPROCESSOR_COUNT);
SAME_VALUE(CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, ATTR_L2_CACHE_SIZE);
SAME_VALUE(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR, ATTR_MAX_THREADS_PER_MULTIPROCESSOR);
SAME_VALUE(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, ATTR_COMPUTE_CAPABILITY_MAJOR);
SAME_VALUE(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, ATTR_COMPUTE_CAPABILITY_MINOR);
SAME_VALUE(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR,
           ATTR_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR);
SAME_VALUE(CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR, ATTR_MAX_REGISTERS_PER_MULTIPROCESSOR);
SAME_VALUE(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
SAME_VALUE(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES);
SAME_VALUE(CU_JIT_ERROR_LOG_BUFFER, JIT_ERROR_LOG_BUFFER);
SAME_VALUE(CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES, JIT_ERROR_LOG_BUFFER_SIZE_BYTES);
SAME_VALUE(CU_STREAM_NON_BLOCKING, STREAM_NON_BLOCKING);
SAME_VALUE(CU_EVENT_DEFAULT, EVENT_DEFAULT);
#undef SAME_VALUE
_Static_assert(sizeof(CUdeviceptr) == sizeof(RtCuDevptr) && sizeof(CUresult) == sizeof(CuResult) &&
                   sizeof(CUdevice) == sizeof(int),
               "CUDA type sizes");
#endif

/* X(field, function, symbol, fallback symbol or NULL, parameter list).  The
 * field names are not the driver's, so <cuda.h>'s renaming macros
 * (cuMemAlloc -> cuMemAlloc_v2) never touch them. */
#define CU_FUNCTIONS(X)                                                                                      \
    X(get_error_name, "cuGetErrorName", "cuGetErrorName", NULL, (CuResult, const char **))                   \
    X(get_error_string, "cuGetErrorString", "cuGetErrorString", NULL, (CuResult, const char **))             \
    X(init, "cuInit", "cuInit", NULL, (unsigned))                                                            \
    X(driver_get_version, "cuDriverGetVersion", "cuDriverGetVersion", NULL, (int *))                         \
    X(device_get_count, "cuDeviceGetCount", "cuDeviceGetCount", NULL, (int *))                               \
    X(device_get, "cuDeviceGet", "cuDeviceGet", NULL, (int *, int))                                          \
    X(device_get_name, "cuDeviceGetName", "cuDeviceGetName", NULL, (char *, int, int))                       \
    X(device_get_attribute, "cuDeviceGetAttribute", "cuDeviceGetAttribute", NULL, (int *, unsigned, int))    \
    X(device_total_mem, "cuDeviceTotalMem", "cuDeviceTotalMem_v2", NULL, (size_t *, int))                    \
    X(primary_ctx_retain, "cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRetain", NULL,                      \
      (RtCuContext *, int))                                                                                  \
    X(primary_ctx_release, "cuDevicePrimaryCtxRelease", "cuDevicePrimaryCtxRelease_v2",                      \
      "cuDevicePrimaryCtxRelease", (int))                                                                    \
    X(ctx_set_current, "cuCtxSetCurrent", "cuCtxSetCurrent", NULL, (RtCuContext))                            \
    X(ctx_synchronize, "cuCtxSynchronize", "cuCtxSynchronize", NULL, (void))                                 \
    X(mem_alloc, "cuMemAlloc", "cuMemAlloc_v2", NULL, (RtCuDevptr *, size_t))                                \
    X(mem_free, "cuMemFree", "cuMemFree_v2", NULL, (RtCuDevptr))                                             \
    X(mem_alloc_host, "cuMemAllocHost", "cuMemAllocHost_v2", NULL, (void **, size_t))                        \
    X(mem_free_host, "cuMemFreeHost", "cuMemFreeHost", NULL, (void *))                                       \
    X(memcpy_htod, "cuMemcpyHtoD", "cuMemcpyHtoD_v2", NULL, (RtCuDevptr, const void *, size_t))              \
    X(memcpy_dtoh, "cuMemcpyDtoH", "cuMemcpyDtoH_v2", NULL, (void *, RtCuDevptr, size_t))                    \
    X(memcpy_dtod, "cuMemcpyDtoD", "cuMemcpyDtoD_v2", NULL, (RtCuDevptr, RtCuDevptr, size_t))                \
    X(memcpy_htod_async, "cuMemcpyHtoDAsync", "cuMemcpyHtoDAsync_v2", NULL,                                  \
      (RtCuDevptr, const void *, size_t, RtCuStream))                                                        \
    X(memcpy_dtoh_async, "cuMemcpyDtoHAsync", "cuMemcpyDtoHAsync_v2", NULL,                                  \
      (void *, RtCuDevptr, size_t, RtCuStream))                                                              \
    X(memcpy_dtod_async, "cuMemcpyDtoDAsync", "cuMemcpyDtoDAsync_v2", NULL,                                  \
      (RtCuDevptr, RtCuDevptr, size_t, RtCuStream))                                                          \
    X(memset_d8, "cuMemsetD8", "cuMemsetD8_v2", NULL, (RtCuDevptr, unsigned char, size_t))                   \
    X(module_load_data_ex, "cuModuleLoadDataEx", "cuModuleLoadDataEx", NULL,                                 \
      (RtCuModule *, const void *, unsigned, unsigned *, void **))                                           \
    X(module_unload, "cuModuleUnload", "cuModuleUnload", NULL, (RtCuModule))                                 \
    X(module_get_function, "cuModuleGetFunction", "cuModuleGetFunction", NULL,                               \
      (RtCuFunction *, RtCuModule, const char *))                                                            \
    X(func_set_attribute, "cuFuncSetAttribute", "cuFuncSetAttribute", NULL, (RtCuFunction, unsigned, int))   \
    X(launch_kernel, "cuLaunchKernel", "cuLaunchKernel", NULL,                                               \
      (RtCuFunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, RtCuStream,       \
       void **, void **))                                                                                    \
    X(stream_create, "cuStreamCreate", "cuStreamCreate", NULL, (RtCuStream *, unsigned))                     \
    X(stream_synchronize, "cuStreamSynchronize", "cuStreamSynchronize", NULL, (RtCuStream))                  \
    X(stream_destroy, "cuStreamDestroy", "cuStreamDestroy_v2", NULL, (RtCuStream))                           \
    X(event_create, "cuEventCreate", "cuEventCreate", NULL, (RtCuEvent *, unsigned))                         \
    X(event_record, "cuEventRecord", "cuEventRecord", NULL, (RtCuEvent, RtCuStream))                         \
    X(event_synchronize, "cuEventSynchronize", "cuEventSynchronize", NULL, (RtCuEvent))                      \
    X(event_elapsed_time, "cuEventElapsedTime", "cuEventElapsedTime_v2", "cuEventElapsedTime",               \
      (float *, RtCuEvent, RtCuEvent))                                                                       \
    X(event_destroy, "cuEventDestroy", "cuEventDestroy_v2", NULL, (RtCuEvent))

#define X_TYPEDEF(field, fn, sym, fallback, params) typedef CuResult(*PFN_##field) params;
CU_FUNCTIONS(X_TYPEDEF)

enum {
#define X_INDEX(field, fn, sym, fallback, params) F_##field,
    CU_FUNCTIONS(X_INDEX) F_COUNT
};

#if defined(DSC_HAVE_CUDA_HEADERS)
/* Every pointer type is the prototype <cuda.h> declares under that symbol. */
#define SAME(field, decl) _Static_assert(__builtin_types_compatible_p(__typeof__(&decl), PFN_##field), #decl)
SAME(get_error_name, cuGetErrorName);
SAME(get_error_string, cuGetErrorString);
SAME(init, cuInit);
SAME(driver_get_version, cuDriverGetVersion);
SAME(device_get_count, cuDeviceGetCount);
SAME(device_get, cuDeviceGet);
SAME(device_get_name, cuDeviceGetName);
SAME(device_get_attribute, cuDeviceGetAttribute);
SAME(device_total_mem, cuDeviceTotalMem_v2);
SAME(primary_ctx_retain, cuDevicePrimaryCtxRetain);
SAME(primary_ctx_release, cuDevicePrimaryCtxRelease_v2);
SAME(ctx_set_current, cuCtxSetCurrent);
SAME(ctx_synchronize, cuCtxSynchronize);
SAME(mem_alloc, cuMemAlloc_v2);
SAME(mem_free, cuMemFree_v2);
SAME(mem_alloc_host, cuMemAllocHost_v2);
SAME(mem_free_host, cuMemFreeHost);
SAME(memcpy_htod, cuMemcpyHtoD_v2);
SAME(memcpy_dtoh, cuMemcpyDtoH_v2);
SAME(memcpy_dtod, cuMemcpyDtoD_v2);
SAME(memcpy_htod_async, cuMemcpyHtoDAsync_v2);
SAME(memcpy_dtoh_async, cuMemcpyDtoHAsync_v2);
SAME(memcpy_dtod_async, cuMemcpyDtoDAsync_v2);
SAME(memset_d8, cuMemsetD8_v2);
SAME(module_load_data_ex, cuModuleLoadDataEx);
SAME(module_unload, cuModuleUnload);
SAME(module_get_function, cuModuleGetFunction);
SAME(func_set_attribute, cuFuncSetAttribute);
SAME(launch_kernel, cuLaunchKernel);
SAME(stream_create, cuStreamCreate);
SAME(stream_synchronize, cuStreamSynchronize);
SAME(stream_destroy, cuStreamDestroy_v2);
SAME(event_create, cuEventCreate);
SAME(event_record, cuEventRecord);
SAME(event_synchronize, cuEventSynchronize);
SAME(event_elapsed_time, cuEventElapsedTime_v2);
SAME(event_destroy, cuEventDestroy_v2);
#undef SAME
#endif

typedef struct {
    const char *function, *symbol, *fallback;
} FunctionName;

static const FunctionName FUNCTIONS[F_COUNT] = {
#define X_NAME(field, fn, sym, fallback, params) [F_##field] = {fn, sym, fallback},
    CU_FUNCTIONS(X_NAME)};

struct RtCudaApi {
    void *lib;
    char *path;
    const char *resolved[F_COUNT]; /* the symbol each entry point was found under */
#define X_FIELD(field, fn, sym, fallback, params) PFN_##field field;
    CU_FUNCTIONS(X_FIELD)
};

int rt_cuda_api_function_count(void) { return F_COUNT; }

const char *rt_cuda_api_function_name(int i) { return i >= 0 && i < F_COUNT ? FUNCTIONS[i].function : NULL; }

/* ---- error names ---------------------------------------------------------- */

static const struct {
    unsigned code;
    const char *name;
} ERROR_NAMES[] = {
    {0, "CUDA_SUCCESS"},
    {1, "CUDA_ERROR_INVALID_VALUE"},
    {2, "CUDA_ERROR_OUT_OF_MEMORY"},
    {3, "CUDA_ERROR_NOT_INITIALIZED"},
    {4, "CUDA_ERROR_DEINITIALIZED"},
    {5, "CUDA_ERROR_PROFILER_DISABLED"},
    {6, "CUDA_ERROR_PROFILER_NOT_INITIALIZED"},
    {7, "CUDA_ERROR_PROFILER_ALREADY_STARTED"},
    {8, "CUDA_ERROR_PROFILER_ALREADY_STOPPED"},
    {34, "CUDA_ERROR_STUB_LIBRARY"},
    {36, "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER"},
    {46, "CUDA_ERROR_DEVICE_UNAVAILABLE"},
    {100, "CUDA_ERROR_NO_DEVICE"},
    {101, "CUDA_ERROR_INVALID_DEVICE"},
    {102, "CUDA_ERROR_DEVICE_NOT_LICENSED"},
    {200, "CUDA_ERROR_INVALID_IMAGE"},
    {201, "CUDA_ERROR_INVALID_CONTEXT"},
    {202, "CUDA_ERROR_CONTEXT_ALREADY_CURRENT"},
    {205, "CUDA_ERROR_MAP_FAILED"},
    {206, "CUDA_ERROR_UNMAP_FAILED"},
    {207, "CUDA_ERROR_ARRAY_IS_MAPPED"},
    {208, "CUDA_ERROR_ALREADY_MAPPED"},
    {209, "CUDA_ERROR_NO_BINARY_FOR_GPU"},
    {210, "CUDA_ERROR_ALREADY_ACQUIRED"},
    {211, "CUDA_ERROR_NOT_MAPPED"},
    {212, "CUDA_ERROR_NOT_MAPPED_AS_ARRAY"},
    {213, "CUDA_ERROR_NOT_MAPPED_AS_POINTER"},
    {214, "CUDA_ERROR_ECC_UNCORRECTABLE"},
    {215, "CUDA_ERROR_UNSUPPORTED_LIMIT"},
    {216, "CUDA_ERROR_CONTEXT_ALREADY_IN_USE"},
    {217, "CUDA_ERROR_PEER_ACCESS_UNSUPPORTED"},
    {218, "CUDA_ERROR_INVALID_PTX"},
    {219, "CUDA_ERROR_INVALID_GRAPHICS_CONTEXT"},
    {220, "CUDA_ERROR_NVLINK_UNCORRECTABLE"},
    {221, "CUDA_ERROR_JIT_COMPILER_NOT_FOUND"},
    {222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"},
    {223, "CUDA_ERROR_JIT_COMPILATION_DISABLED"},
    {224, "CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY"},
    {225, "CUDA_ERROR_UNSUPPORTED_DEVSIDE_SYNC"},
    {226, "CUDA_ERROR_CONTAINED"},
    {300, "CUDA_ERROR_INVALID_SOURCE"},
    {301, "CUDA_ERROR_FILE_NOT_FOUND"},
    {302, "CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND"},
    {303, "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED"},
    {304, "CUDA_ERROR_OPERATING_SYSTEM"},
    {400, "CUDA_ERROR_INVALID_HANDLE"},
    {401, "CUDA_ERROR_ILLEGAL_STATE"},
    {402, "CUDA_ERROR_LOSSY_QUERY"},
    {500, "CUDA_ERROR_NOT_FOUND"},
    {600, "CUDA_ERROR_NOT_READY"},
    {700, "CUDA_ERROR_ILLEGAL_ADDRESS"},
    {701, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"},
    {702, "CUDA_ERROR_LAUNCH_TIMEOUT"},
    {703, "CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING"},
    {704, "CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED"},
    {705, "CUDA_ERROR_PEER_ACCESS_NOT_ENABLED"},
    {708, "CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE"},
    {709, "CUDA_ERROR_CONTEXT_IS_DESTROYED"},
    {710, "CUDA_ERROR_ASSERT"},
    {711, "CUDA_ERROR_TOO_MANY_PEERS"},
    {712, "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED"},
    {713, "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED"},
    {714, "CUDA_ERROR_HARDWARE_STACK_ERROR"},
    {715, "CUDA_ERROR_ILLEGAL_INSTRUCTION"},
    {716, "CUDA_ERROR_MISALIGNED_ADDRESS"},
    {717, "CUDA_ERROR_INVALID_ADDRESS_SPACE"},
    {718, "CUDA_ERROR_INVALID_PC"},
    {719, "CUDA_ERROR_LAUNCH_FAILED"},
    {720, "CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE"},
    {721, "CUDA_ERROR_TENSOR_MEMORY_LEAK"},
    {800, "CUDA_ERROR_NOT_PERMITTED"},
    {801, "CUDA_ERROR_NOT_SUPPORTED"},
    {802, "CUDA_ERROR_SYSTEM_NOT_READY"},
    {803, "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH"},
    {804, "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE"},
    {805, "CUDA_ERROR_MPS_CONNECTION_FAILED"},
    {806, "CUDA_ERROR_MPS_RPC_FAILURE"},
    {807, "CUDA_ERROR_MPS_SERVER_NOT_READY"},
    {808, "CUDA_ERROR_MPS_MAX_CLIENTS_REACHED"},
    {809, "CUDA_ERROR_MPS_MAX_CONNECTIONS_REACHED"},
    {810, "CUDA_ERROR_MPS_CLIENT_TERMINATED"},
    {811, "CUDA_ERROR_CDP_NOT_SUPPORTED"},
    {812, "CUDA_ERROR_CDP_VERSION_MISMATCH"},
    {900, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"},
    {901, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"},
    {902, "CUDA_ERROR_STREAM_CAPTURE_MERGE"},
    {903, "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED"},
    {904, "CUDA_ERROR_STREAM_CAPTURE_UNJOINED"},
    {905, "CUDA_ERROR_STREAM_CAPTURE_ISOLATION"},
    {906, "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT"},
    {907, "CUDA_ERROR_CAPTURED_EVENT"},
    {908, "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD"},
    {909, "CUDA_ERROR_TIMEOUT"},
    {910, "CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE"},
    {911, "CUDA_ERROR_EXTERNAL_DEVICE"},
    {912, "CUDA_ERROR_INVALID_CLUSTER_SIZE"},
    {913, "CUDA_ERROR_FUNCTION_NOT_LOADED"},
    {914, "CUDA_ERROR_INVALID_RESOURCE_TYPE"},
    {915, "CUDA_ERROR_INVALID_RESOURCE_CONFIGURATION"},
    {916, "CUDA_ERROR_KEY_ROTATION"},
    {999, "CUDA_ERROR_UNKNOWN"},
};

/* The process-wide driver, once loaded (see load_once). */
static RtCudaApi *g_api;

/* The name of a CUresult from the built-in table, or NULL. */
static const char *table_name(CuResult r) {
    for (size_t i = 0; i < sizeof ERROR_NAMES / sizeof ERROR_NAMES[0]; i++)
        if (ERROR_NAMES[i].code == r) return ERROR_NAMES[i].name;
    return NULL;
}

/* The driver's name for r, else the table's, else "CUDA error N" in buf. */
static const char *error_name(const RtCudaApi *api, CuResult r, char *buf, size_t n) {
    const char *s = NULL;
    if (api && api->get_error_name(r, &s) == CU_OK && s) return s;
    if ((s = table_name(r))) return s;
    snprintf(buf, n, "CUDA error %u", r);
    return buf;
}

const char *rt_cuda_error_name(int result) {
    static _Thread_local char buf[32];
    return error_name(g_api, (CuResult)result, buf, sizeof buf);
}

const char *rt_cuda_error_string(int result) {
    const char *s = NULL;
    if (g_api && g_api->get_error_string((CuResult)result, &s) == CU_OK && s) return s;
    return "";
}

/* "CALL failed: NAME (description)" into buf. */
static void describe_failure(const RtCudaApi *api, char *buf, size_t n, const char *call, CuResult r) {
    char num[32];
    const char *name = error_name(api, r, num, sizeof num), *text = NULL;
    if (!api || api->get_error_string(r, &text) != CU_OK) text = NULL;
    if (text && *text)
        snprintf(buf, n, "%s failed: %s (%s)", call, name, text);
    else
        snprintf(buf, n, "%s failed: %s", call, name);
}

/* ---- loading -------------------------------------------------------------- */

static void set_why(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t n, const char *fmt, ...) {
    if (!why || !n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
}

RtCudaApi *rt_cuda_api_open(const char *path, char *why, size_t n) {
    dlerror();
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        set_why(why, n, "%s not found: %s", path, e ? e : "dlopen failed");
        return NULL;
    }
    RtCudaApi *api = calloc(1, sizeof *api);
    if (!api) {
        dlclose(lib);
        set_why(why, n, "out of memory");
        return NULL;
    }
    api->lib = lib;
    api->path = strdup(path);
    void *slots[F_COUNT];
    for (int i = 0; i < F_COUNT; i++) {
        const FunctionName *f = &FUNCTIONS[i];
        void *sym = dlsym(lib, f->symbol);
        api->resolved[i] = f->symbol;
        if (!sym && f->fallback) {
            sym = dlsym(lib, f->fallback);
            api->resolved[i] = f->fallback;
        }
        if (!sym) {
            if (f->fallback)
                set_why(why, n,
                        "%s: missing entry point %s (nor %s); the driver is too old or not a CUDA driver",
                        path, f->symbol, f->fallback);
            else
                set_why(why, n, "%s: missing entry point %s; the driver is too old or not a CUDA driver",
                        path, f->symbol);
            rt_cuda_api_close(api);
            return NULL;
        }
        slots[i] = sym;
    }
    /* Object pointers to function pointers: POSIX guarantees dlsym's results
     * convert; copy the representation to keep ISO C quiet. */
    int i = 0;
#define X_ASSIGN(field, fn, sym, fallback, params) memcpy(&api->field, &slots[i++], sizeof api->field);
    CU_FUNCTIONS(X_ASSIGN)
    return api;
}

bool rt_cuda_api_init(RtCudaApi *api, int *ndevices, char *why, size_t n) {
    char buf[512];
    CuResult r = api->init(0);
    if (r != CU_OK) {
        describe_failure(api, buf, sizeof buf, "cuInit", r);
        set_why(why, n, "%s", buf);
        return false;
    }
    int count = 0;
    r = api->device_get_count(&count);
    if (r != CU_OK) {
        describe_failure(api, buf, sizeof buf, "cuDeviceGetCount", r);
        set_why(why, n, "%s", buf);
        return false;
    }
    if (ndevices) *ndevices = count;
    if (count < 1) {
        set_why(why, n, "the CUDA driver (%s) found no device", api->path);
        return false;
    }
    return true;
}

const char *rt_cuda_api_symbol(const RtCudaApi *api, const char *function) {
    for (int i = 0; i < F_COUNT; i++)
        if (strcmp(FUNCTIONS[i].function, function) == 0) return api->resolved[i];
    return NULL;
}

void rt_cuda_api_close(RtCudaApi *api) {
    if (!api) return;
    if (api->lib) dlclose(api->lib);
    free(api->path);
    free(api);
}

/* ---- the process-wide driver ---------------------------------------------- */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static bool g_ok;
static char g_why[1024];

static void load_once(void) {
    const char *env = getenv("DSC_LIBCUDA");
    char first[480] = "", second[480] = "";
    RtCudaApi *api = NULL;
    if (env && *env) {
        if (!(api = rt_cuda_api_open(env, first, sizeof first))) {
            snprintf(g_why, sizeof g_why, "$DSC_LIBCUDA: %s", first);
            return;
        }
    } else if (!(api = rt_cuda_api_open("libcuda.so.1", first, sizeof first)) &&
               !(api = rt_cuda_api_open("libcuda.so", second, sizeof second))) {
        snprintf(g_why, sizeof g_why, "%s (also tried libcuda.so)", first);
        return;
    }
    /* The library stays loaded even if cuInit fails, for error names. */
    g_api = api;
    g_ok = rt_cuda_api_init(api, NULL, g_why, sizeof g_why);
}

bool rt_cuda_available(char *why, size_t n) {
    pthread_once(&g_once, load_once);
    if (!g_ok) set_why(why, n, "%s", g_why);
    return g_ok;
}

bool rt_cuda_init(Diag *d) {
    pthread_once(&g_once, load_once);
    if (!g_ok) diag_error(d, (Loc){0}, "CUDA driver not available: %s", g_why);
    return g_ok;
}

const char *rt_cuda_library(void) {
    pthread_once(&g_once, load_once);
    return g_api ? g_api->path : NULL;
}

/* The loaded driver, or NULL after reporting why there is none. */
static const RtCudaApi *drv(Diag *d) { return rt_cuda_init(d) ? g_api : NULL; }

/* Reports a failed call: `fmt` describes the call (function and arguments). */
static bool check(CuResult r, Diag *d, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool check(CuResult r, Diag *d, const char *fmt, ...) {
    if (r == CU_OK) return true;
    char call[512], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(call, sizeof call, fmt, ap);
    va_end(ap);
    describe_failure(g_api, msg, sizeof msg, call, r);
    diag_error(d, (Loc){0}, "%s", msg);
    return false;
}

#define SYM(field) (g_api->resolved[F_##field])

/* ---- devices and contexts ------------------------------------------------- */

bool rt_cuda_driver_version(int *version, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->driver_get_version(version), d, "%s", SYM(driver_get_version));
}

bool rt_cuda_device_count(int *count, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->device_get_count(count), d, "%s", SYM(device_get_count));
}

static bool attribute(const RtCudaApi *a, int *v, unsigned attr, const char *what, int dev, Diag *d) {
    return check(a->device_get_attribute(v, attr, dev), d, "%s(%s, device %d)", SYM(device_get_attribute),
                 what, dev);
}

bool rt_cuda_device_info(int ordinal, RtCudaDeviceInfo *out, Diag *d) {
    const RtCudaApi *a = drv(d);
    if (!a) return false;
    memset(out, 0, sizeof *out);
    out->ordinal = ordinal;
    int dev;
    if (!check(a->device_get(&dev, ordinal), d, "%s(%d)", SYM(device_get), ordinal)) return false;
    if (!check(a->device_get_name(out->name, (int)sizeof out->name, dev), d, "%s(device %d)",
               SYM(device_get_name), ordinal))
        return false;
    out->name[sizeof out->name - 1] = 0;
    return attribute(a, &out->cc_major, ATTR_COMPUTE_CAPABILITY_MAJOR, "COMPUTE_CAPABILITY_MAJOR", dev, d) &&
           attribute(a, &out->cc_minor, ATTR_COMPUTE_CAPABILITY_MINOR, "COMPUTE_CAPABILITY_MINOR", dev, d) &&
           attribute(a, &out->sm_count, ATTR_MULTIPROCESSOR_COUNT, "MULTIPROCESSOR_COUNT", dev, d) &&
           attribute(a, &out->max_threads_per_sm, ATTR_MAX_THREADS_PER_MULTIPROCESSOR,
                     "MAX_THREADS_PER_MULTIPROCESSOR", dev, d) &&
           attribute(a, &out->registers_per_sm, ATTR_MAX_REGISTERS_PER_MULTIPROCESSOR,
                     "MAX_REGISTERS_PER_MULTIPROCESSOR", dev, d) &&
           attribute(a, &out->smem_per_block_optin, ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                     "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN", dev, d) &&
           attribute(a, &out->smem_per_sm, ATTR_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR,
                     "MAX_SHARED_MEMORY_PER_MULTIPROCESSOR", dev, d) &&
           attribute(a, &out->l2_bytes, ATTR_L2_CACHE_SIZE, "L2_CACHE_SIZE", dev, d) &&
           check(a->device_total_mem(&out->total_mem, dev), d, "%s(device %d)", SYM(device_total_mem),
                 ordinal);
}

bool rt_cuda_context_acquire(int ordinal, RtCuContext *ctx, Diag *d) {
    const RtCudaApi *a = drv(d);
    int dev;
    return a && check(a->device_get(&dev, ordinal), d, "%s(%d)", SYM(device_get), ordinal) &&
           check(a->primary_ctx_retain(ctx, dev), d, "%s(device %d)", SYM(primary_ctx_retain), ordinal) &&
           check(a->ctx_set_current(*ctx), d, "%s(primary context of device %d)", SYM(ctx_set_current),
                 ordinal);
}

bool rt_cuda_context_release(int ordinal, Diag *d) {
    const RtCudaApi *a = drv(d);
    int dev;
    return a && check(a->device_get(&dev, ordinal), d, "%s(%d)", SYM(device_get), ordinal) &&
           check(a->primary_ctx_release(dev), d, "%s(device %d)", SYM(primary_ctx_release), ordinal);
}

bool rt_cuda_context_synchronize(Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->ctx_synchronize(), d, "%s", SYM(ctx_synchronize));
}

/* ---- memory ---------------------------------------------------------------- */

bool rt_cuda_mem_alloc(RtCuDevptr *p, size_t bytes, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->mem_alloc(p, bytes), d, "%s(%zu bytes)", SYM(mem_alloc), bytes);
}

bool rt_cuda_mem_free(RtCuDevptr p, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->mem_free(p), d, "%s(0x%llx)", SYM(mem_free), p);
}

bool rt_cuda_host_alloc(void **p, size_t bytes, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->mem_alloc_host(p, bytes), d, "%s(%zu bytes)", SYM(mem_alloc_host), bytes);
}

bool rt_cuda_host_free(void *p, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->mem_free_host(p), d, "%s(%p)", SYM(mem_free_host), p);
}

bool rt_cuda_memcpy_htod(RtCuDevptr dst, const void *src, size_t bytes, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->memcpy_htod(dst, src, bytes), d, "%s(%zu bytes)", SYM(memcpy_htod), bytes);
}

bool rt_cuda_memcpy_dtoh(void *dst, RtCuDevptr src, size_t bytes, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->memcpy_dtoh(dst, src, bytes), d, "%s(%zu bytes)", SYM(memcpy_dtoh), bytes);
}

bool rt_cuda_memcpy_dtod(RtCuDevptr dst, RtCuDevptr src, size_t bytes, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->memcpy_dtod(dst, src, bytes), d, "%s(%zu bytes)", SYM(memcpy_dtod), bytes);
}

bool rt_cuda_memcpy_htod_async(RtCuDevptr dst, const void *src, size_t bytes, RtCuStream s, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a &&
           check(a->memcpy_htod_async(dst, src, bytes, s), d, "%s(%zu bytes)", SYM(memcpy_htod_async), bytes);
}

bool rt_cuda_memcpy_dtoh_async(void *dst, RtCuDevptr src, size_t bytes, RtCuStream s, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a &&
           check(a->memcpy_dtoh_async(dst, src, bytes, s), d, "%s(%zu bytes)", SYM(memcpy_dtoh_async), bytes);
}

bool rt_cuda_memcpy_dtod_async(RtCuDevptr dst, RtCuDevptr src, size_t bytes, RtCuStream s, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a &&
           check(a->memcpy_dtod_async(dst, src, bytes, s), d, "%s(%zu bytes)", SYM(memcpy_dtod_async), bytes);
}

bool rt_cuda_memset_d8(RtCuDevptr dst, unsigned char value, size_t bytes, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->memset_d8(dst, value, bytes), d, "%s(%zu bytes)", SYM(memset_d8), bytes);
}

/* ---- modules and launches --------------------------------------------------- */

bool rt_cuda_module_load(RtCuModule *m, const void *image, Diag *d) {
    const RtCudaApi *a = drv(d);
    if (!a) return false;
    char log[4096] = "";
    unsigned opts[2] = {JIT_ERROR_LOG_BUFFER, JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *vals[2] = {log, (void *)(uintptr_t)sizeof log};
    CuResult r = a->module_load_data_ex(m, image, 2, opts, vals);
    if (r == CU_OK) return true;
    log[sizeof log - 1] = 0;
    if (*log) return check(r, d, "%s (JIT error log: %s)", SYM(module_load_data_ex), log);
    return check(r, d, "%s", SYM(module_load_data_ex));
}

bool rt_cuda_module_unload(RtCuModule m, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->module_unload(m), d, "%s", SYM(module_unload));
}

bool rt_cuda_module_function(RtCuFunction *f, RtCuModule m, const char *name, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->module_get_function(f, m, name), d, "%s(\"%s\")", SYM(module_get_function), name);
}

bool rt_cuda_function_max_dynamic_smem(RtCuFunction f, int bytes, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->func_set_attribute(f, FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes), d,
                      "%s(MAX_DYNAMIC_SHARED_SIZE_BYTES = %d)", SYM(func_set_attribute), bytes);
}

bool rt_cuda_launch(RtCuFunction f, const char *name, const unsigned grid[3], const unsigned block[3],
                    unsigned smem_bytes, RtCuStream s, void **params, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a &&
           check(a->launch_kernel(f, grid[0], grid[1], grid[2], block[0], block[1], block[2], smem_bytes, s,
                                  params, NULL),
                 d, "%s(%s, grid %ux%ux%u, block %ux%ux%u, %u bytes shared)", SYM(launch_kernel),
                 name ? name : "kernel", grid[0], grid[1], grid[2], block[0], block[1], block[2], smem_bytes);
}

/* ---- streams and events ----------------------------------------------------- */

bool rt_cuda_stream_create(RtCuStream *s, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->stream_create(s, STREAM_NON_BLOCKING), d, "%s", SYM(stream_create));
}

bool rt_cuda_stream_synchronize(RtCuStream s, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->stream_synchronize(s), d, "%s", SYM(stream_synchronize));
}

bool rt_cuda_stream_destroy(RtCuStream s, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->stream_destroy(s), d, "%s", SYM(stream_destroy));
}

bool rt_cuda_event_create(RtCuEvent *e, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->event_create(e, EVENT_DEFAULT), d, "%s", SYM(event_create));
}

bool rt_cuda_event_record(RtCuEvent e, RtCuStream s, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->event_record(e, s), d, "%s", SYM(event_record));
}

bool rt_cuda_event_synchronize(RtCuEvent e, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->event_synchronize(e), d, "%s", SYM(event_synchronize));
}

bool rt_cuda_event_elapsed_ms(float *ms, RtCuEvent start, RtCuEvent end, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->event_elapsed_time(ms, start, end), d, "%s", SYM(event_elapsed_time));
}

bool rt_cuda_event_destroy(RtCuEvent e, Diag *d) {
    const RtCudaApi *a = drv(d);
    return a && check(a->event_destroy(e), d, "%s", SYM(event_destroy));
}
