/* NVRTC through dlopen, parallel compiles and the cached CUDA kernel builder
 * (see nvrtc.h).
 *
 * Why one NVRTC program per kernel: the persistent cache holds one cubin per
 * kernel record, so a changed kernel recompiles alone, and independent
 * programs compile in parallel (NVRTC is thread-safe for distinct programs).
 * A small kernel costs NVRTC some 30-40 ms on one core; a model's few dozen
 * kernels on two cores stay well under the 2 s cold-load budget (docs/cuda.md
 * has the measurements).
 *
 * Threads: a fixed pool takes jobs from an atomic counter; workers touch only
 * their own job (the NVRTC calls, the log, the cubin) and never the Diag; the
 * calling thread reports the failures afterwards, in job order, so messages
 * come out the same whatever the scheduling.  The cache is read before and
 * written after the parallel part, on the calling thread. */
#include "nvrtc.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../codegen/lower.h"
#include "atomic_file.h"
#include "cuda_driver.h"
#include "hwdb.h"
#include "kcache.h"

#if defined(DSC_HAVE_CUDA_HEADERS) && DSC_HAVE_CUDA_HEADERS
#include <nvrtc.h>
#else
/* The few declarations dsc needs, as in nvrtc.h (stable C ABI). */
typedef enum { NVRTC_SUCCESS = 0 } nvrtcResult;
typedef struct _nvrtcProgram *nvrtcProgram;
#endif

/* ---- loading -------------------------------------------------------------------- */

typedef struct {
    void *lib;
    const char *soname;
    char why[512];
    nvrtcResult (*Version)(int *, int *);
    const char *(*GetErrorString)(nvrtcResult);
    nvrtcResult (*GetNumSupportedArchs)(int *);
    nvrtcResult (*GetSupportedArchs)(int *);
    nvrtcResult (*CreateProgram)(nvrtcProgram *, const char *, const char *, int, const char *const *,
                                 const char *const *);
    nvrtcResult (*DestroyProgram)(nvrtcProgram *);
    nvrtcResult (*CompileProgram)(nvrtcProgram, int, const char *const *);
    nvrtcResult (*GetProgramLogSize)(nvrtcProgram, size_t *);
    nvrtcResult (*GetProgramLog)(nvrtcProgram, char *);
    nvrtcResult (*GetCUBINSize)(nvrtcProgram, size_t *);
    nvrtcResult (*GetCUBIN)(nvrtcProgram, char *);
} Nvrtc;

static Nvrtc nv;
static pthread_once_t nv_once = PTHREAD_ONCE_INIT;

static void nv_load(void) {
    const char *env = getenv("DSC_LIBNVRTC");
    const char *names[] = {env && *env ? env : NULL, "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"};
    size_t off = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!names[i]) continue;
        nv.lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (nv.lib) {
            nv.soname = names[i];
            break;
        }
        const char *e = dlerror();
        if (off < sizeof nv.why)
            off += (size_t)snprintf(nv.why + off, sizeof nv.why - off, "%s%s", off ? "; " : "", e ? e : names[i]);
        if (env && *env) break; /* $DSC_LIBNVRTC: only there */
    }
    if (!nv.lib) return;
    struct {
        void **fn;
        const char *sym;
    } syms[] = {
        {(void **)&nv.Version, "nvrtcVersion"},
        {(void **)&nv.GetErrorString, "nvrtcGetErrorString"},
        {(void **)&nv.GetNumSupportedArchs, "nvrtcGetNumSupportedArchs"},
        {(void **)&nv.GetSupportedArchs, "nvrtcGetSupportedArchs"},
        {(void **)&nv.CreateProgram, "nvrtcCreateProgram"},
        {(void **)&nv.DestroyProgram, "nvrtcDestroyProgram"},
        {(void **)&nv.CompileProgram, "nvrtcCompileProgram"},
        {(void **)&nv.GetProgramLogSize, "nvrtcGetProgramLogSize"},
        {(void **)&nv.GetProgramLog, "nvrtcGetProgramLog"},
        {(void **)&nv.GetCUBINSize, "nvrtcGetCUBINSize"},
        {(void **)&nv.GetCUBIN, "nvrtcGetCUBIN"},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        *syms[i].fn = dlsym(nv.lib, syms[i].sym);
        if (!*syms[i].fn) {
            snprintf(nv.why, sizeof nv.why, "%s: missing entry point %s (NVRTC too old?)", nv.soname, syms[i].sym);
            dlclose(nv.lib);
            nv.lib = NULL;
            return;
        }
    }
}

bool rt_nvrtc_available(char *why, size_t n) {
    pthread_once(&nv_once, nv_load);
    if (!nv.lib && why && n) snprintf(why, n, "NVRTC not available: %s", nv.why);
    return nv.lib != NULL;
}

const char *rt_nvrtc_library(void) {
    pthread_once(&nv_once, nv_load);
    return nv.lib ? nv.soname : NULL;
}

static bool need_nvrtc(Diag *d) {
    char why[600];
    if (rt_nvrtc_available(why, sizeof why)) return true;
    diag_error(d, (Loc){0}, "%s", why);
    return false;
}

static const char *nv_err(nvrtcResult r) {
    const char *s = nv.GetErrorString ? nv.GetErrorString(r) : NULL;
    return s ? s : "unknown NVRTC error";
}

bool rt_nvrtc_version(int *major, int *minor, Diag *d) {
    if (!need_nvrtc(d)) return false;
    nvrtcResult r = nv.Version(major, minor);
    if (r != NVRTC_SUCCESS) {
        diag_error(d, (Loc){0}, "nvrtcVersion failed: %s", nv_err(r));
        return false;
    }
    return true;
}

int rt_nvrtc_supported_archs(int *archs, int cap, Diag *d) {
    if (!need_nvrtc(d)) return -1;
    int n = 0;
    nvrtcResult r = nv.GetNumSupportedArchs(&n);
    int *all = r == NVRTC_SUCCESS && n > 0 ? calloc((size_t)n, sizeof(int)) : NULL;
    if (all) r = nv.GetSupportedArchs(all);
    if (r != NVRTC_SUCCESS || !all) {
        diag_error(d, (Loc){0}, "nvrtcGetSupportedArchs failed: %s", r != NVRTC_SUCCESS ? nv_err(r) : "none");
        free(all);
        return -1;
    }
    for (int i = 0; i < n && i < cap; i++) archs[i] = all[i];
    free(all);
    return n;
}

int rt_nvrtc_parse_arch(const char *arch) {
    if (!arch) return -1;
    if (strncmp(arch, "sm_", 3) == 0)
        arch += 3;
    else if (strncmp(arch, "sm", 2) == 0)
        arch += 2;
    char *end;
    long major = strtol(arch, &end, 10);
    if (end == arch || major < 1 || major > 999) return -1;
    if (*end == '.') { /* "9.0" */
        char *end2;
        long minor = strtol(end + 1, &end2, 10);
        if (end2 == end + 1 || *end2 || minor < 0 || minor > 9) return -1;
        return (int)(major * 10 + minor);
    }
    if (*end || major < 10) return -1;
    return (int)major;
}

int rt_nvrtc_options(int sm, const char **opts, char *storage, size_t storage_len) {
    int n = 0;
    snprintf(storage, storage_len, "--gpu-architecture=sm_%d", sm);
    opts[n++] = storage;
    opts[n++] = "--std=c++17";
    opts[n++] = "--ptxas-options=-v";
    return n;
}

/* ---- ptxas statistics ------------------------------------------------------------ */

/* The integer right before `suffix` in line [p, end), or -1. */
static int number_before(const char *p, const char *end, const char *suffix) {
    size_t n = strlen(suffix);
    for (const char *s = p; s + n <= end; s++) {
        if (memcmp(s, suffix, n) != 0) continue;
        const char *q = s;
        while (q > p && q[-1] == ' ') q--;
        const char *digits = q;
        while (digits > p && digits[-1] >= '0' && digits[-1] <= '9') digits--;
        if (digits == q) continue;
        return atoi(digits);
    }
    return -1;
}

bool rt_nvrtc_parse_stats(const char *log, const char *name, CubinStats *out) {
    *out = (CubinStats){0};
    if (!log) return false;
    /* the lines after "Function properties for NAME" / "Compiling entry function 'NAME'" */
    char props[300], entry[300];
    snprintf(props, sizeof props, "Function properties for %s\n", name);
    snprintf(entry, sizeof entry, "Compiling entry function '%s'", name);
    const char *start = strstr(log, entry);
    if (!start) start = strstr(log, props);
    if (!start) return false;
    bool found = false;
    for (const char *line = start; *line;) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        if (line != start && strstr(line, "Compiling entry function") && line < end) {
            const char *c = strstr(line, "Compiling entry function");
            if (c < end) break; /* the next function */
        }
        int v;
        if ((v = number_before(line, end, "bytes stack frame")) >= 0) out->stack_bytes = v;
        if ((v = number_before(line, end, "bytes spill stores")) >= 0) out->spill_stores = v;
        if ((v = number_before(line, end, "bytes spill loads")) >= 0) out->spill_loads = v;
        if ((v = number_before(line, end, "registers")) >= 0) {
            out->registers = v;
            found = true;
            if ((v = number_before(line, end, "bytes smem")) >= 0) out->smem_bytes = v;
            if ((v = number_before(line, end, "bytes cmem[0]")) >= 0) out->cmem_bytes = v;
            break; /* the "Used" line ends a function's block */
        }
        line = *end ? end + 1 : end;
    }
    return found;
}

/* ---- compiling ------------------------------------------------------------------- */

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

/* One job; fills job->error on failure.  Runs on a worker thread. */
static void compile_one(NvrtcJob *job, int sm) {
    double t0 = now_ms();
    const char *opts[NVRTC_MAX_OPTIONS];
    char storage[64];
    int nopts = rt_nvrtc_options(sm, opts, storage, sizeof storage);
    char file[300];
    snprintf(file, sizeof file, "%s.cu", job->name);
    nvrtcProgram prog = NULL;
    nvrtcResult r = nv.CreateProgram(&prog, job->source, file, 0, NULL, NULL);
    if (r != NVRTC_SUCCESS) {
        job->error = xasprintf("nvrtcCreateProgram failed: %s", nv_err(r));
        return;
    }
    nvrtcResult rc = nv.CompileProgram(prog, nopts, opts);
    size_t logsize = 0;
    r = nv.GetProgramLogSize(prog, &logsize);
    if (r == NVRTC_SUCCESS && logsize > 0 && (job->log = malloc(logsize + 1))) {
        r = nv.GetProgramLog(prog, job->log);
        job->log[r == NVRTC_SUCCESS ? logsize : 0] = 0;
    }
    if (r != NVRTC_SUCCESS) {
        job->error = xasprintf("nvrtcGetProgramLog failed: %s", nv_err(r));
    } else if (rc != NVRTC_SUCCESS) {
        job->error = xasprintf("nvrtcCompileProgram (sm_%d) failed: %s\n%s", sm, nv_err(rc),
                               job->log && *job->log ? job->log : "(empty log)");
    } else {
        size_t size = 0;
        r = nv.GetCUBINSize(prog, &size);
        if (r == NVRTC_SUCCESS && size > 0 && (job->cubin = malloc(size))) {
            r = nv.GetCUBIN(prog, job->cubin);
            job->cubin_size = size;
        }
        if (r != NVRTC_SUCCESS || !job->cubin) {
            job->error = xasprintf("nvrtcGetCUBIN failed: %s", r != NVRTC_SUCCESS ? nv_err(r) : "empty cubin");
            free(job->cubin);
            job->cubin = NULL;
            job->cubin_size = 0;
        } else if (!rt_nvrtc_parse_stats(job->log, job->name, &job->stats)) {
            job->error = xasprintf("no ptxas statistics for the kernel in the NVRTC log:\n%s",
                                   job->log ? job->log : "(empty log)");
        }
    }
    r = nv.DestroyProgram(&prog);
    if (r != NVRTC_SUCCESS && !job->error) job->error = xasprintf("nvrtcDestroyProgram failed: %s", nv_err(r));
    job->ms = now_ms() - t0;
}

typedef struct {
    NvrtcJob *jobs;
    int *order; /* longest source first: the big kernels do not finish last */
    int n, sm;
    atomic_int next;
} Pool;

static void *worker(void *arg) {
    Pool *p = arg;
    for (int i; (i = atomic_fetch_add(&p->next, 1)) < p->n;) {
        NvrtcJob *job = &p->jobs[p->order ? p->order[i] : i];
        compile_one(job, job->sm > 0 ? job->sm : p->sm);
    }
    return NULL;
}

static int by_size(const void *a, const void *b, void *arg) {
    const NvrtcJob *jobs = arg;
    size_t x = strlen(jobs[*(const int *)a].source), y = strlen(jobs[*(const int *)b].source);
    if (x != y) return x < y ? 1 : -1;
    return *(const int *)a - *(const int *)b;
}

static int online_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n > 64 ? 64 : n) : 1;
}

bool rt_nvrtc_compile_all(NvrtcJob *jobs, int n, int sm, int threads, Diag *d) {
    if (n <= 0) return true;
    if (!need_nvrtc(d)) return false;
    if (threads <= 0) threads = online_cpus();
    if (threads > n) threads = n;
    int *order = malloc(sizeof(int) * (size_t)n);
    if (order) {
        for (int i = 0; i < n; i++) order[i] = i;
        qsort_r(order, (size_t)n, sizeof *order, by_size, jobs);
    }
    Pool pool = {jobs, order, n, sm, 0};
    pthread_t tid[64];
    int started = 0;
    for (int i = 1; i < threads && i < 64; i++)
        if (pthread_create(&tid[started], NULL, worker, &pool) == 0) started++;
    worker(&pool); /* the calling thread works too */
    for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
    free(order);
    bool ok = true;
    for (int i = 0; i < n; i++)
        if (jobs[i].error) {
            diag_error(d, (Loc){0}, "NVRTC: kernel %s: %s", jobs[i].name, jobs[i].error);
            ok = false;
        }
    return ok;
}

void rt_nvrtc_job_free(NvrtcJob *job) {
    free(job->cubin);
    free(job->log);
    free(job->error);
    job->cubin = NULL;
    job->log = job->error = NULL;
    job->cubin_size = 0;
}

/* ---- cache payload ------------------------------------------------------------------- */

/* "DSCCUBN1", six u32 stats, u64 cubin size, then the cubin. */
enum { PAYLOAD_HEAD = 8 + 6 * 4 + 8 };

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint8_t *payload_make(const CudaBuiltKernel *k, size_t *size) {
    *size = PAYLOAD_HEAD + k->cubin_size;
    uint8_t *p = malloc(*size);
    if (!p) return NULL;
    memcpy(p, "DSCCUBN1", 8);
    const CubinStats *s = &k->stats;
    int v[6] = {s->registers, s->smem_bytes, s->cmem_bytes, s->stack_bytes, s->spill_stores, s->spill_loads};
    for (int i = 0; i < 6; i++) put32(p + 8 + 4 * i, (uint32_t)v[i]);
    for (int i = 0; i < 8; i++) p[32 + i] = (uint8_t)((uint64_t)k->cubin_size >> (8 * i));
    memcpy(p + PAYLOAD_HEAD, k->cubin, k->cubin_size);
    return p;
}

static bool payload_read(CudaBuiltKernel *k, const uint8_t *p, size_t size) {
    if (size < PAYLOAD_HEAD || memcmp(p, "DSCCUBN1", 8) != 0) return false;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | p[32 + i];
    if (n == 0 || n != size - PAYLOAD_HEAD) return false;
    int v[6];
    for (int i = 0; i < 6; i++) v[i] = (int)get32(p + 8 + 4 * i);
    k->stats = (CubinStats){v[0], v[1], v[2], v[3], v[4], v[5]};
    k->cubin = malloc(n);
    if (!k->cubin) return false;
    memcpy(k->cubin, p + PAYLOAD_HEAD, n);
    k->cubin_size = n;
    return true;
}

/* ---- the builder ------------------------------------------------------------------------ */

static void make_key(KCacheKey *key, const CudaKernel *rec, int sm, int major, int minor, const char *hwdb) {
    const char *opts[NVRTC_MAX_OPTIONS];
    char storage[64], ver[32], arch[16];
    int nopts = rt_nvrtc_options(sm, opts, storage, sizeof storage);
    rt_kcache_key_begin(key, "cuda-cubin");
    snprintf(ver, sizeof ver, "%d.%d", major, minor);
    snprintf(arch, sizeof arch, "sm_%d", sm);
    rt_kcache_key_add_str(key, "nvrtc", ver);
    rt_kcache_key_add_str(key, "arch", arch);
    rt_kcache_key_add_int(key, "options", nopts);
    for (int i = 0; i < nopts; i++) rt_kcache_key_add_str(key, "option", opts[i]);
    rt_kcache_key_add_str(key, "hwdb", hwdb ? hwdb : "none");
    rt_kcache_key_add_str(key, "name", rec->name);
    rt_kcache_key_add(key, "source", rec->source, rec->source_len);
    rt_kcache_key_finish(key);
}

bool rt_cuda_build(Graph *g, const KProgram *p, const CudaBuildOptions *o, CudaBuild *out, Diag *d) {
    double t0 = now_ms();
    *out = (CudaBuild){.sm = o->sm};
    out->kernels = calloc((size_t)p->nkernels + 1, sizeof(CudaBuiltKernel));
    if (!out->kernels) {
        diag_error(d, (Loc){0}, "out of memory");
        return false;
    }
    out->n = p->nkernels;
    bool ok = true;
    for (int i = 0; i < p->nkernels; i++)
        ok = cg_cuda_render_with(g, p->kernels[i], o->block, o->sm, &o->gemm, &out->kernels[i].rec, d) && ok;
    out->render_ms = now_ms() - t0;
    if (!ok) return false;
    int major = 0, minor = 0;
    if (!rt_nvrtc_version(&major, &minor, d)) return false;
    int archs[64];
    int narchs = rt_nvrtc_supported_archs(archs, 64, d);
    if (narchs < 0) return false;
    bool supported = false;
    for (int i = 0; i < narchs && i < 64; i++) supported |= archs[i] == o->sm;
    if (!supported) {
        char list[400] = "";
        size_t off = 0;
        for (int i = 0; i < narchs && i < 64 && off < sizeof list; i++)
            off += (size_t)snprintf(list + off, sizeof list - off, "%ssm_%d", i ? " " : "", archs[i]);
        diag_error(d, (Loc){0}, "NVRTC %d.%d cannot compile for sm_%d (it supports: %s)", major, minor, o->sm, list);
        return false;
    }

    /* cache lookups */
    double t1 = now_ms();
    KCache *cache = o->no_cache ? NULL : rt_kcache_open(o->cache_dir, d);
    out->cache_dir = NULL;
    NvrtcJob *jobs = calloc((size_t)out->n + 1, sizeof(NvrtcJob));
    int *which = calloc((size_t)out->n + 1, sizeof(int));
    KCacheKey *keys = calloc((size_t)out->n + 1, sizeof(KCacheKey));
    if (!jobs || !which || !keys) {
        diag_error(d, (Loc){0}, "out of memory");
        free(jobs);
        free(which);
        free(keys);
        rt_kcache_close(cache);
        return false;
    }
    int njobs = 0;
    for (int i = 0; i < out->n; i++) {
        CudaBuiltKernel *k = &out->kernels[i];
        make_key(&keys[i], &k->rec, o->sm, major, minor, o->hwdb_version);
        memcpy(k->key, keys[i].hex, 65);
        void *data;
        size_t size;
        if (rt_kcache_get(cache, &keys[i], &data, &size, d)) {
            bool good = payload_read(k, data, size);
            free(data);
            if (good) {
                k->cached = true;
                out->hits++;
                continue;
            }
            /* an intact entry of another payload layout: rebuild over it */
        }
        jobs[njobs] = (NvrtcJob){.name = k->rec.name, .source = k->rec.source};
        which[njobs++] = i;
    }
    out->lookup_ms = now_ms() - t1;

    /* compile the misses */
    double t2 = now_ms();
    int threads = o->threads > 0 ? o->threads : online_cpus();
    out->threads = njobs < threads ? njobs : threads;
    ok = rt_nvrtc_compile_all(jobs, njobs, o->sm, threads, d);
    out->compile_ms = now_ms() - t2;

    /* keep and store the results */
    double t3 = now_ms();
    for (int j = 0; j < njobs; j++) {
        CudaBuiltKernel *k = &out->kernels[which[j]];
        if (jobs[j].error) continue;
        k->cubin = jobs[j].cubin;
        k->cubin_size = jobs[j].cubin_size;
        jobs[j].cubin = NULL;
        k->stats = jobs[j].stats;
        k->compile_ms = jobs[j].ms;
        out->compiled++;
        size_t size;
        uint8_t *payload = cache ? payload_make(k, &size) : NULL;
        if (payload) rt_kcache_put(cache, &keys[which[j]], payload, size, d);
        free(payload);
    }
    out->store_ms = now_ms() - t3;
    for (int j = 0; j < njobs; j++) rt_nvrtc_job_free(&jobs[j]);
    if (cache) out->cache_dir = arena_strdup(g->arena, rt_kcache_dir(cache));
    rt_kcache_close(cache);
    free(jobs);
    free(which);
    free(keys);
    out->total_ms = now_ms() - t0;
    return ok;
}

void rt_cuda_build_free(CudaBuild *b) {
    if (!b) return;
    for (int i = 0; i < b->n && b->kernels; i++) free(b->kernels[i].cubin);
    free(b->kernels);
    *b = (CudaBuild){0};
}

/* ---- targets from the hardware database ------------------------------------------------ */

void rt_cuda_gemm_config_from_hwdb(const HwEntry *e, CudaGemmConfig *out, Diag *d) {
    *out = (CudaGemmConfig){0};
    const HwKernelConfig *f = rt_hwdb_kernel_class(e, HW_K_GEMM_F32), *h = rt_hwdb_kernel_class(e, HW_K_GEMM_F16);
    if (f) {
        out->f32_m = (int)rt_hwdb_param(f, "tile_m", 0);
        out->f32_n = (int)rt_hwdb_param(f, "tile_n", 0);
        out->f32_k = (int)rt_hwdb_param(f, "tile_k", 0);
        out->f32_warps = (int)rt_hwdb_param(f, "warps", 0);
    }
    if (h) {
        out->tc_m = (int)rt_hwdb_param(h, "tile_m", 0);
        out->tc_n = (int)rt_hwdb_param(h, "tile_n", 0);
        out->tc_k = (int)rt_hwdb_param(h, "tile_k", 0);
        out->tc_warps = (int)rt_hwdb_param(h, "warps", 0);
    }
    char why[256];
    if (!cg_cuda_gemm_config_check(out, why, sizeof why)) {
        diag_warning(d, (Loc){0}, "hardware database entry '%s': %s; the GEMMs use the default tiles", e->arch, why);
        *out = (CudaGemmConfig){0};
        cg_cuda_gemm_config_check(out, NULL, 0);
    }
}

void rt_cuda_target_from_hwdb(CudaBuildOptions *o, char *storage, size_t storage_len, Diag *d) {
    if (o->block <= 0) o->block = CG_CUDA_DEFAULT_BLOCK;
    o->hwdb_version = "none";
    Diag *quiet = diag_create();
    HwDb *db = rt_hwdb_open_default(NULL, 0, quiet);
    if (!db) {
        diag_warning(d, (Loc){0}, "no hardware database (%s); CUDA kernels use %d threads per block",
                     diag_count(quiet) ? diag_message(quiet, 0, NULL, NULL) : "not found", o->block);
        diag_destroy(quiet);
        return;
    }
    diag_destroy(quiet);
    /* the exact entry, else the nearest lower compute capability */
    HwQuery q = {.name = NULL, .cc_major = o->sm / 10, .cc_minor = o->sm % 10};
    HwSelection sel;
    Diag *sd = diag_create();
    char arch[16];
    snprintf(arch, sizeof arch, "sm_%d", o->sm);
    const HwEntry *e = rt_hwdb_arch(db, arch);
    if (!e && rt_hwdb_select(db, &q, &sel, sd)) e = sel.entry;
    diag_destroy(sd);
    if (!e) {
        diag_warning(d, loc_file(rt_hwdb_path(db)), "no entry for sm_%d; CUDA kernels use %d threads per block", o->sm,
                     o->block);
    } else {
        const HwKernelConfig *kc = rt_hwdb_kernel_class(e, HW_K_ELEMENTWISE);
        int threads = kc ? (int)rt_hwdb_param(kc, "threads", CG_CUDA_DEFAULT_BLOCK) : CG_CUDA_DEFAULT_BLOCK;
        if (threads >= 32 && threads <= 1024) o->block = threads;
        rt_cuda_gemm_config_from_hwdb(e, &o->gemm, d);
    }
    /* version: the schema and a digest of the file's bytes */
    FILE *f = fopen(rt_hwdb_path(db), "rb");
    if (f) {
        Sha256 s;
        rt_sha256_init(&s);
        char buf[8192];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) rt_sha256_update(&s, buf, n);
        fclose(f);
        uint8_t sum[32];
        rt_sha256_final(&s, sum);
        char hex[65];
        rt_hex(sum, 32, hex);
        snprintf(storage, storage_len, "%d:%s", (int)HWDB_VERSION, hex);
        o->hwdb_version = storage;
    }
    rt_hwdb_free(db);
}

/* ---- writing and printing ------------------------------------------------------------------ */

static bool make_dir(const char *dir, Diag *d) {
    char *p = strdup(dir);
    if (!p) return false;
    bool ok = true;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) ok = false;
            *s = c;
            if (!c || !ok) break;
        }
    }
    struct stat st;
    if (!ok || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        diag_error(d, loc_file(dir), "cannot create the output directory: %s", strerror(errno));
        ok = false;
    }
    free(p);
    return ok;
}

static bool write_file(const char *dir, const char *name, const char *ext, const void *data, size_t n, Diag *d) {
    char *path = xasprintf("%s/%s%s", dir, name, ext);
    if (!path) return false;
    AtomicFile af;
    FILE *f = af_open(&af, path, d);
    bool ok = false;
    if (f) {
        if (fwrite(data, 1, n, f) == n)
            ok = af_commit(&af, d);
        else {
            diag_error(d, loc_file(path), "cannot write: %s", strerror(errno));
            af_abort(&af);
        }
    }
    free(path);
    return ok;
}

bool rt_cuda_write_sources(Graph *g, const KProgram *p, const CudaBuildOptions *o, const char *dir, Diag *d) {
    if (!make_dir(dir, d)) return false;
    bool ok = true;
    for (int i = 0; i < p->nkernels; i++) {
        CudaKernel rec;
        if (!cg_cuda_render_with(g, p->kernels[i], o->block, o->sm, &o->gemm, &rec, d)) {
            ok = false;
            continue;
        }
        ok = write_file(dir, rec.name, ".cu", rec.source, rec.source_len, d) && ok;
    }
    return ok;
}

bool rt_cuda_build_write(const CudaBuild *b, const char *dir, Diag *d) {
    if (!make_dir(dir, d)) return false;
    bool ok = true;
    for (int i = 0; i < b->n; i++) {
        const CudaBuiltKernel *k = &b->kernels[i];
        if (!k->rec.source) continue;
        ok = write_file(dir, k->rec.name, ".cu", k->rec.source, k->rec.source_len, d) && ok;
        if (k->cubin) ok = write_file(dir, k->rec.name, ".cubin", k->cubin, k->cubin_size, d) && ok;
    }
    return ok;
}

void rt_cuda_build_print(const CudaBuild *b, FILE *out) {
    int w = 6;
    for (int i = 0; i < b->n; i++)
        if (b->kernels[i].rec.name && (int)strlen(b->kernels[i].rec.name) > w) w = (int)strlen(b->kernels[i].rec.name);
    fprintf(out, "%-*s %5s %6s %6s %7s %7s %8s %9s\n", w, "kernel", "regs", "smem", "stack", "spill-st", "spill-ld",
            "cubin", "compile");
    int spills = 0;
    for (int i = 0; i < b->n; i++) {
        const CudaBuiltKernel *k = &b->kernels[i];
        if (!k->cubin) continue;
        char when[32];
        if (k->cached)
            snprintf(when, sizeof when, "cached");
        else
            snprintf(when, sizeof when, "%.0f ms", k->compile_ms);
        fprintf(out, "%-*s %5d %6d %6d %8d %8d %8zu %9s\n", w, k->rec.name, k->stats.registers, k->stats.smem_bytes,
                k->stats.stack_bytes, k->stats.spill_stores, k->stats.spill_loads, k->cubin_size, when);
        spills += k->stats.spill_stores || k->stats.spill_loads;
    }
    int block = CG_CUDA_DEFAULT_BLOCK, tc_block = 0;
    for (int i = b->n - 1; i >= 0; i--) {
        if (b->kernels[i].rec.tensor_cores) tc_block = b->kernels[i].rec.block;
        else block = b->kernels[i].rec.block;
    }
    char tc[64] = "";
    if (tc_block && tc_block != block) snprintf(tc, sizeof tc, ", %d in tensor-core GEMMs", tc_block);
    fprintf(out, "%d kernels for sm_%d (%d threads per block%s): %d compiled in %.0f ms on %d threads, %d from the cache",
            b->n, b->sm, block, tc, b->compiled, b->compile_ms, b->threads, b->hits);
    if (b->cache_dir)
        fprintf(out, " (%s)", b->cache_dir);
    else
        fprintf(out, " (cache off)");
    fprintf(out, "; %d with spills; %.0f ms in all\n", spills, b->total_ms);
}

/* ---- ahead of time --------------------------------------------------------------------------- */

bool rt_cuda_emit(Graph *g, const CudaEmitOptions *o, Diag *d) {
    KProgram prog = {.g = g};
    if (!cg_lower(g, &prog, d)) return false;
    int sm = o->sm;
    if (sm <= 0 && o->cubin) {
        char why[300];
        RtCudaDeviceInfo info;
        if (!rt_cuda_available(why, sizeof why)) {
            diag_error(d, (Loc){0}, "no GPU to take the architecture from (%s); give --target=sm_XX", why);
            return false;
        }
        if (!rt_cuda_device_info(0, &info, d)) return false;
        sm = info.cc_major * 10 + info.cc_minor;
    }
    CudaBuildOptions bo = {.sm = sm};
    char version[100];
    if (sm > 0) rt_cuda_target_from_hwdb(&bo, version, sizeof version, d);
    if (!o->cubin) return rt_cuda_write_sources(g, &prog, &bo, o->dir, d);
    CudaBuild b;
    bool ok = rt_cuda_build(g, &prog, &bo, &b, d);
    ok = rt_cuda_build_write(&b, o->dir, d) && ok;
    if (ok && o->report) rt_cuda_build_print(&b, o->report);
    rt_cuda_build_free(&b);
    return ok;
}
