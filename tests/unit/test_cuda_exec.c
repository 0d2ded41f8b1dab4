/* Tests of the CUDA executor (runtime/cuda_exec.c) and `dsc run --device
 * cuda` on a machine without a GPU.
 *
 * A fake libcuda (FAKE_DRIVER below, compiled here with the system C compiler
 * and loaded through $DSC_LIBCUDA) stands in for the driver: an H200 (or
 * what FAKE_CUDA_* says) whose device memory is host memory.  It keeps count
 * of what is live (device allocations, modules, streams, events, context
 * references), so every test can check that nothing leaks on its path; it
 * checks what a real driver checks (a current context, a cubin image, that
 * the function is in the module, a 1-D launch); and it fails on request:
 *   FAKE_CUDA_DEVICES=0        no device
 *   FAKE_CUDA_CC=70            a Volta (no hardware-database entry)
 *   FAKE_CUDA_MEM_LIMIT=N      cuMemAlloc fails beyond N live bytes
 *   FAKE_CUDA_BAD_MODULE=K     the K-th module load fails, with a JIT log
 *   FAKE_CUDA_FAIL_LAUNCH=NAME cuLaunchKernel of NAME fails
 *   FAKE_CUDA_FAULT=NAME       NAME "faults": the next synchronisation fails
 *                              and the context stays broken until released.
 * A launch calls a hook the test installs: it decodes the kernel ABI
 * (device pointers, then the dims, then the trap record) and runs the kernel
 * with the kernel-IR evaluator (codegen/kir_eval.c) on the "device" memory,
 * run-time errors going into the device's trap record as a GPU's would.  So the whole
 * device path -- kernels really built by NVRTC for sm_90 through the cache,
 * modules, the weights block, load-time constants, the run block, uploads,
 * launches with the record's argument list, downloads -- runs here, and its
 * outputs must equal, bit for bit, rt_exec_run's with the same evaluator on
 * host memory.  Tests that build kernels skip themselves without NVRTC. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "codegen/kir_eval.h"
#include "codegen/lower.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "passes/precision.h"
#include "codegen/cuda/schedule.h"
#include "runtime/cublaslt.h"
#include "runtime/cuda_driver.h"
#include "runtime/cuda_exec.h"
#include "runtime/exec.h"
#include "runtime/host_jit.h"
#include "runtime/hwdb.h"
#include "runtime/interp.h"
#include "runtime/nvrtc.h"
#include "runtime/run.h"

#include "../support.h"

#define TMP DSC_BINARY_DIR "/test_cuda_exec_tmp"
#define DSC DSC_BINARY_DIR "/dsc"

static const char FAKE_DRIVER[] =
    "/* A stand-in CUDA driver: device memory is host memory, launches call a hook. */\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "typedef unsigned R;\n"
    "typedef unsigned long long P;\n"
    "static int env_int(const char *k, int def) {\n"
    "  const char *v = getenv(k);\n"
    "  return v && *v ? atoi(v) : def;\n"
    "}\n"
    "static const char *env(const char *k) {\n"
    "  const char *v = getenv(k);\n"
    "  return v && *v ? v : 0;\n"
    "}\n"
    "static const char *name_of(R r) {\n"
    "  switch (r) {\n"
    "  case 0: return \"CUDA_SUCCESS\";\n"
    "  case 1: return \"CUDA_ERROR_INVALID_VALUE\";\n"
    "  case 2: return \"CUDA_ERROR_OUT_OF_MEMORY\";\n"
    "  case 101: return \"CUDA_ERROR_INVALID_DEVICE\";\n"
    "  case 200: return \"CUDA_ERROR_INVALID_IMAGE\";\n"
    "  case 201: return \"CUDA_ERROR_INVALID_CONTEXT\";\n"
    "  case 209: return \"CUDA_ERROR_NO_BINARY_FOR_GPU\";\n"
    "  case 400: return \"CUDA_ERROR_INVALID_HANDLE\";\n"
    "  case 500: return \"CUDA_ERROR_NOT_FOUND\";\n"
    "  case 700: return \"CUDA_ERROR_ILLEGAL_ADDRESS\";\n"
    "  case 701: return \"CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES\";\n"
    "  default: return 0;\n"
    "  }\n"
    "}\n"
    "static const char *text_of(R r) {\n"
    "  switch (r) {\n"
    "  case 2: return \"out of memory\";\n"
    "  case 201: return \"invalid device context\";\n"
    "  case 209: return \"no kernel image is available for execution on the device\";\n"
    "  case 700: return \"an illegal memory access was encountered\";\n"
    "  case 701: return \"too many resources requested for launch\";\n"
    "  default: return 0;\n"
    "  }\n"
    "}\n"
    "R cuGetErrorName(R r, const char **s) {\n"
    "  *s = name_of(r);\n"
    "  return *s ? 0 : 1;\n"
    "}\n"
    "R cuGetErrorString(R r, const char **s) {\n"
    "  *s = text_of(r);\n"
    "  return *s ? 0 : 1;\n"
    "}\n"
    "/* ---- bookkeeping, read by the test through fake_cuda_stat ---- */\n"
    "static long live_allocs, live_bytes, peak_bytes, live_host, live_modules, live_streams,\n"
    "    live_events, ctx_refs;\n"
    "static long launches, module_loads, syncs;\n"
    "static int sticky; /* an asynchronous fault happened: every later call fails with it */\n"
    "static int fault_pending; /* a faulting kernel was launched: the next synchronisation\n"
    "                             reports it */\n"
    "long fake_cuda_stat(const char *what) {\n"
    "  struct {\n"
    "    const char *k;\n"
    "    long v;\n"
    "  } t[] = {{\"allocs\", live_allocs},\n"
    "           {\"bytes\", live_bytes},\n"
    "           {\"peak_bytes\", peak_bytes},\n"
    "           {\"host\", live_host},\n"
    "           {\"modules\", live_modules},\n"
    "           {\"streams\", live_streams},\n"
    "           {\"events\", live_events},\n"
    "           {\"ctx_refs\", ctx_refs},\n"
    "           {\"launches\", launches},\n"
    "           {\"module_loads\", module_loads},\n"
    "           {\"syncs\", syncs}};\n"
    "  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)\n"
    "    if (!strcmp(what, t[i].k)) return t[i].v;\n"
    "  return -1;\n"
    "}\n"
    "typedef int (*Hook)(void *user, const char *name, unsigned grid, unsigned block,\n"
    "                    void **params);\n"
    "static Hook hook;\n"
    "static void *hook_user;\n"
    "void fake_cuda_set_launch_hook(Hook h, void *user) {\n"
    "  hook = h;\n"
    "  hook_user = user;\n"
    "}\n"
    "/* ---- devices ---- */\n"
    "static int cc(void) { return env_int(\"FAKE_CUDA_CC\", 90); }\n"
    "R cuInit(unsigned f) { return f ? 1 : 0; }\n"
    "R cuDriverGetVersion(int *v) {\n"
    "  *v = 12080;\n"
    "  return 0;\n"
    "}\n"
    "R cuDeviceGetCount(int *n) {\n"
    "  *n = env_int(\"FAKE_CUDA_DEVICES\", 1);\n"
    "  return 0;\n"
    "}\n"
    "R cuDeviceGet(int *d, int o) {\n"
    "  if (o < 0 || o >= env_int(\"FAKE_CUDA_DEVICES\", 1)) return 101;\n"
    "  *d = o;\n"
    "  return 0;\n"
    "}\n"
    "R cuDeviceGetName(char *s, int n, int d) {\n"
    "  (void)d;\n"
    "  const char *nm = env(\"FAKE_CUDA_NAME\");\n"
    "  if (!nm)\n"
    "    nm = cc() == 90 ? \"NVIDIA H200\" : cc() == 70 ? \"Tesla V100-SXM2-16GB\" : \"Some GPU\";\n"
    "  strncpy(s, nm, (size_t)n);\n"
    "  return 0;\n"
    "}\n"
    "R cuDeviceGetAttribute(int *v, unsigned a, int d) {\n"
    "  (void)d;\n"
    "  switch (a) {\n"
    "  case 75: *v = cc() / 10; break;\n"
    "  case 76: *v = cc() % 10; break;\n"
    "  case 16: *v = env_int(\"FAKE_CUDA_SMS\", 132); break;\n"
    "  case 39: *v = 2048; break;\n"
    "  case 82: *v = 65536; break;\n"
    "  case 97: *v = 232448; break;\n"
    "  case 81: *v = 233472; break;\n"
    "  case 38: *v = 62914560; break;\n"
    "  case 1: *v = 1024; break;\n"
    "  default: return 1;\n"
    "  }\n"
    "  return 0;\n"
    "}\n"
    "R cuDeviceTotalMem_v2(size_t *b, int d) {\n"
    "  (void)d;\n"
    "  *b = (size_t)150754820096ull;\n"
    "  return 0;\n"
    "}\n"
    "/* ---- the primary context ---- */\n"
    "static int ctx_obj, *current;\n"
    "static R need_ctx(void) { return sticky ? 700 : (current && ctx_refs > 0) ? 0 : 201; }\n"
    "R cuDevicePrimaryCtxRetain(void **c, int d) {\n"
    "  (void)d;\n"
    "  ctx_refs++;\n"
    "  *c = &ctx_obj;\n"
    "  return 0;\n"
    "}\n"
    "R cuDevicePrimaryCtxRelease_v2(int d) {\n"
    "  (void)d;\n"
    "  if (ctx_refs <= 0) return 201;\n"
    "  if (--ctx_refs == 0)\n"
    "    sticky = fault_pending = 0; /* the context is destroyed: a fault goes with it */\n"
    "  return 0;\n"
    "}\n"
    "R cuCtxSetCurrent(void *c) {\n"
    "  if (c != &ctx_obj || ctx_refs <= 0) return 201;\n"
    "  current = c;\n"
    "  return 0;\n"
    "}\n"
    "static R sync_point(void) {\n"
    "  R r = need_ctx();\n"
    "  if (r) return r;\n"
    "  syncs++;\n"
    "  if (fault_pending) {\n"
    "    fault_pending = 0;\n"
    "    sticky = 1;\n"
    "    return 700;\n"
    "  }\n"
    "  return 0;\n"
    "}\n"
    "R cuCtxSynchronize(void) { return sync_point(); }\n"
    "/* ---- memory ---- */\n"
    "typedef struct {\n"
    "  size_t n;\n"
    "} Block;\n"
    "R cuMemAlloc_v2(P *p, size_t n) {\n"
    "  R r = need_ctx();\n"
    "  if (r) return r;\n"
    "  if (n == 0) return 1;\n"
    "  long limit = env_int(\"FAKE_CUDA_MEM_LIMIT\", 0);\n"
    "  if (limit > 0 && live_bytes + (long)n > limit) return 2;\n"
    "  Block *b = malloc(sizeof(Block) + n);\n"
    "  if (!b) return 2;\n"
    "  b->n = n;\n"
    "  memset(b + 1, 0xA5, n); /* not zeroed, as real device memory */\n"
    "  live_allocs++;\n"
    "  live_bytes += (long)n;\n"
    "  if (live_bytes > peak_bytes) peak_bytes = live_bytes;\n"
    "  *p = (P)(size_t)(b + 1);\n"
    "  return 0;\n"
    "}\n"
    "R cuMemFree_v2(P p) {\n"
    "  if (!p) return 0;\n"
    "  Block *b = (Block *)(size_t)p - 1;\n"
    "  live_allocs--;\n"
    "  live_bytes -= (long)b->n;\n"
    "  free(b);\n"
    "  return sticky ? 700 : 0;\n"
    "}\n"
    "R cuMemAllocHost_v2(void **p, size_t n) {\n"
    "  R r = need_ctx();\n"
    "  if (r) return r;\n"
    "  *p = malloc(n);\n"
    "  live_host++;\n"
    "  return 0;\n"
    "}\n"
    "R cuMemFreeHost(void *p) {\n"
    "  free(p);\n"
    "  live_host--;\n"
    "  return 0;\n"
    "}\n"
    "R cuMemcpyHtoD_v2(P d, const void *s, size_t n) {\n"
    "  R r = need_ctx();\n"
    "  if (r) return r;\n"
    "  memcpy((void *)(size_t)d, s, n);\n"
    "  return 0;\n"
    "}\n"
    "R cuMemcpyDtoH_v2(void *d, P s, size_t n) {\n"
    "  R r = need_ctx();\n"
    "  if (r) return r;\n"
    "  memcpy(d, (void *)(size_t)s, n);\n"
    "  return 0;\n"
    "}\n"
    "R cuMemcpyDtoD_v2(P d, P s, size_t n) {\n"
    "  R r = need_ctx();\n"
    "  if (r) return r;\n"
    "  memmove((void *)(size_t)d, (void *)(size_t)s, n);\n"
    "  return 0;\n"
    "}\n"
    "R cuMemcpyHtoDAsync_v2(P d, const void *s, size_t n, void *st) {\n"
    "  (void)st;\n"
    "  return cuMemcpyHtoD_v2(d, s, n);\n"
    "}\n"
    "R cuMemcpyDtoHAsync_v2(void *d, P s, size_t n, void *st) {\n"
    "  (void)st;\n"
    "  return cuMemcpyDtoH_v2(d, s, n);\n"
    "}\n"
    "R cuMemcpyDtoDAsync_v2(P d, P s, size_t n, void *st) {\n"
    "  (void)st;\n"
    "  return cuMemcpyDtoD_v2(d, s, n);\n"
    "}\n"
    "R cuMemsetD8_v2(P d, unsigned char v, size_t n) {\n"
    "  R r = need_ctx();\n"
    "  if (r) return r;\n"
    "  memset((void *)(size_t)d, v, n);\n"
    "  return 0;\n"
    "}\n"
    "/* ---- modules: a cubin is an ELF file; its symbol names are in it ---- */\n"
    "typedef struct Func {\n"
    "  char name[256];\n"
    "  struct Func *next;\n"
    "} Func;\n"
    "typedef struct {\n"
    "  unsigned char *image;\n"
    "  size_t size;\n"
    "  Func *funcs;\n"
    "} Module;\n"
    "R cuModuleLoadDataEx(void **m, const void *img, unsigned n, unsigned *o, void **v) {\n"
    "  R r = need_ctx();\n"
    "  if (r) return r;\n"
    "  module_loads++;\n"
    "  const unsigned char *b = img;\n"
    "  int bad = env_int(\"FAKE_CUDA_BAD_MODULE\", 0) == module_loads;\n"
    "  if (bad || memcmp(b,\n"
    "                    \"\\x7f\"\n"
    "                    \"ELF\",\n"
    "                    4) != 0) {\n"
    "    for (unsigned i = 0; i < n; i++)\n"
    "      if (o[i] == 5)\n"
    "        strcpy(v[i], bad ? \"ptxas fatal   : cubin is for sm_100, the device is sm_90\"\n"
    "                         : \"not an ELF image\");\n"
    "    return bad ? 209 : 200;\n"
    "  }\n"
    "  unsigned long long shoff;\n"
    "  unsigned short shentsize, shnum;\n"
    "  memcpy(&shoff, b + 0x28, 8);\n"
    "  memcpy(&shentsize, b + 0x3a, 2);\n"
    "  memcpy(&shnum, b + 0x3c, 2);\n"
    "  Module *mod = calloc(1, sizeof *mod);\n"
    "  mod->size = (size_t)(shoff + (unsigned long long)shentsize * shnum);\n"
    "  mod->image = malloc(mod->size);\n"
    "  memcpy(mod->image, img, mod->size);\n"
    "  live_modules++;\n"
    "  *m = mod;\n"
    "  return 0;\n"
    "}\n"
    "R cuModuleUnload(void *m) {\n"
    "  Module *mod = m;\n"
    "  if (!mod) return 400;\n"
    "  for (Func *f = mod->funcs, *nx; f; f = nx) {\n"
    "    nx = f->next;\n"
    "    free(f);\n"
    "  }\n"
    "  free(mod->image);\n"
    "  free(mod);\n"
    "  live_modules--;\n"
    "  return sticky ? 700 : 0;\n"
    "}\n"
    "R cuModuleGetFunction(void **f, void *m, const char *name) {\n"
    "  R r = need_ctx();\n"
    "  if (r) return r;\n"
    "  Module *mod = m;\n"
    "  size_t len = strlen(name);\n"
    "  if (!mod || len >= 256) return 400;\n"
    "  int found = 0;\n"
    "  for (size_t i = 0; i + len < mod->size && !found; i++)\n"
    "    found = memcmp(mod->image + i, name, len) == 0 && mod->image[i + len] == 0 &&\n"
    "            (i == 0 || mod->image[i - 1] == 0);\n"
    "  if (!found) return 500;\n"
    "  Func *fn = calloc(1, sizeof *fn);\n"
    "  strcpy(fn->name, name);\n"
    "  fn->next = mod->funcs;\n"
    "  mod->funcs = fn;\n"
    "  *f = fn;\n"
    "  return 0;\n"
    "}\n"
    "R cuFuncSetAttribute(void *f, unsigned a, int v) {\n"
    "  (void)f;\n"
    "  (void)a;\n"
    "  return v > 232448 ? 1 : 0;\n"
    "}\n"
    "R cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,\n"
    "                 unsigned by, unsigned bz, unsigned sm, void *st, void **p, void **e) {\n"
    "  R r = need_ctx();\n"
    "  if (r) return r;\n"
    "  Func *fn = f;\n"
    "  (void)st;\n"
    "  (void)e;\n"
    "  if (!fn || !p) return 1;\n"
    "  if (gx == 0 || gy != 1 || gz != 1 || by != 1 || bz != 1 || sm != 0) return 1;\n"
    "  const char *fail = env(\"FAKE_CUDA_FAIL_LAUNCH\");\n"
    "  if (bx * by * bz > 1024 || (fail && !strcmp(fail, fn->name))) return 701;\n"
    "  launches++;\n"
    "  const char *fault = env(\"FAKE_CUDA_FAULT\");\n"
    "  if (fault && !strcmp(fault, fn->name)) {\n"
    "    fault_pending = 1;\n"
    "    return 0;\n"
    "  }\n"
    "  if (hook && hook(hook_user, fn->name, gx, bx, p) != 0) fault_pending = 1;\n"
    "  return 0;\n"
    "}\n"
    "/* ---- streams and events ---- */\n"
    "R cuStreamCreate(void **s, unsigned f) {\n"
    "  R r = need_ctx();\n"
    "  if (r) return r;\n"
    "  (void)f;\n"
    "  *s = malloc(1);\n"
    "  live_streams++;\n"
    "  return 0;\n"
    "}\n"
    "R cuStreamSynchronize(void *s) {\n"
    "  (void)s;\n"
    "  return sync_point();\n"
    "}\n"
    "R cuStreamDestroy_v2(void *s) {\n"
    "  free(s);\n"
    "  live_streams--;\n"
    "  return sticky ? 700 : 0;\n"
    "}\n"
    "typedef struct {\n"
    "  long at;\n"
    "} Event;\n"
    "R cuEventCreate(void **e, unsigned f) {\n"
    "  R r = need_ctx();\n"
    "  if (r) return r;\n"
    "  (void)f;\n"
    "  *e = calloc(1, sizeof(Event));\n"
    "  live_events++;\n"
    "  return 0;\n"
    "}\n"
    "R cuEventRecord(void *e, void *s) {\n"
    "  R r = need_ctx();\n"
    "  if (r) return r;\n"
    "  (void)s;\n"
    "  ((Event *)e)->at = launches;\n"
    "  return 0;\n"
    "}\n"
    "R cuEventSynchronize(void *e) {\n"
    "  (void)e;\n"
    "  return sync_point();\n"
    "}\n"
    "R cuEventElapsedTime_v2(float *ms, void *a, void *b) {\n"
    "  R r = need_ctx();\n"
    "  if (r) return r;\n"
    "  *ms = 0.001f + 0.002f * (float)(((Event *)b)->at - ((Event *)a)->at);\n"
    "  return 0;\n"
    "}\n"
    "R cuEventDestroy_v2(void *e) {\n"
    "  free(e);\n"
    "  live_events--;\n"
    "  return sticky ? 700 : 0;\n"
    "}\n";

/* ---- the fake driver ------------------------------------------------------------ */

static bool write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = 0;
    fclose(f);
    return buf;
}

/* Builds the fake driver once (kept in the build tree, rebuilt when its
 * source changes; written under per-process names and renamed, so test
 * processes running at once never see a half-written file); NULL if there is
 * no C compiler. */
static const char *fake_driver(void) {
    static char so[512];
    if (so[0]) return so;
    if (mkdir(TMP, 0777) != 0 && errno != EEXIST) cr_assert_fail("mkdir %s: %s", TMP, strerror(errno));
    char c[512], my_c[600], my_so[600], cmd[2048];
    snprintf(c, sizeof c, "%s/fake_cuda.c", TMP);
    snprintf(so, sizeof so, "%s/libcuda_fake.so", TMP);
    char *old = slurp(c);
    bool same = old && strcmp(old, FAKE_DRIVER) == 0 && access(so, R_OK) == 0;
    free(old);
    if (!same) {
        snprintf(my_c, sizeof my_c, "%s.%d.c", c, (int)getpid());
        snprintf(my_so, sizeof my_so, "%s.%d", so, (int)getpid());
        cr_assert(write_file(my_c, FAKE_DRIVER));
        snprintf(cmd, sizeof cmd, "cc -shared -fPIC -o '%s' '%s' 2>/dev/null", my_so, my_c);
        if (system(cmd) != 0 || rename(my_so, so) != 0 || rename(my_c, c) != 0) {
            unlink(my_c);
            unlink(my_so);
            so[0] = 0;
            return NULL;
        }
    }
    return so;
}

/* The fake cuBLASLt (tests/unit/fake_cublaslt.c), built like the fake driver;
 * NULL without a C compiler. */
static const char *fake_cublaslt(void) {
    static char so[512];
    if (so[0]) return so;
    if (mkdir(TMP, 0777) != 0 && errno != EEXIST) cr_assert_fail("mkdir %s: %s", TMP, strerror(errno));
    char c[512], my_c[600], my_so[600], cmd[2048];
    snprintf(c, sizeof c, "%s/fake_cublaslt.c", TMP);
    snprintf(so, sizeof so, "%s/libcublasLt_fake.so", TMP);
    char *src = slurp(DSC_SOURCE_DIR "/tests/unit/fake_cublaslt.c"), *old = slurp(c);
    cr_assert(src, "no tests/unit/fake_cublaslt.c");
    bool same = old && strcmp(old, src) == 0 && access(so, R_OK) == 0;
    free(old);
    if (!same) {
        snprintf(my_c, sizeof my_c, "%s.%d.c", c, (int)getpid());
        snprintf(my_so, sizeof my_so, "%s.%d", so, (int)getpid());
        cr_assert(write_file(my_c, src));
        snprintf(cmd, sizeof cmd, "cc -O1 -shared -fPIC -o '%s' '%s' -lm 2>/dev/null", my_so, my_c);
        if (system(cmd) != 0 || rename(my_so, so) != 0 || rename(my_c, c) != 0) {
            unlink(my_c);
            unlink(my_so);
            so[0] = 0;
        }
    }
    free(src);
    return so[0] ? so : NULL;
}

static const char *const FAKE_KNOBS[] = {
    "FAKE_CUDA_DEVICES",   "FAKE_CUDA_CC",         "FAKE_CUDA_NAME",        "FAKE_CUDA_SMS",
    "FAKE_CUDA_MEM_LIMIT", "FAKE_CUDA_BAD_MODULE", "FAKE_CUDA_FAIL_LAUNCH", "FAKE_CUDA_FAULT",
    "DSC_CUDA_SYNC",       "DSC_CUDA_BENCH",       "DSC_CUDA_BENCH_ITERS",  "DSC_GEMM",
    "FAKE_CUBLASLT_FAIL",  "FAKE_CUBLASLT_STATUS", "FAKE_CUBLASLT_NO_ALGO"};

/* Every test: the fake driver (unless a test points elsewhere before its
 * first CUDA call), the real hardware database, a kernel cache in the build
 * tree (a rerun builds nothing). */
static void setup(void) {
    const char *so = fake_driver();
    if (so) setenv("DSC_LIBCUDA", so, 1);
    const char *lt = fake_cublaslt();
    if (lt) setenv("DSC_LIBCUBLASLT", lt, 1);
    setenv("DSC_HWDB", DSC_SOURCE_DIR "/data/hwdb.json", 1);
    setenv("DSC_CACHE_DIR", DSC_BINARY_DIR "/test_cuda_exec_cache", 1);
    for (size_t i = 0; i < sizeof FAKE_KNOBS / sizeof FAKE_KNOBS[0]; i++)
        unsetenv(FAKE_KNOBS[i]);
}

TestSuite(cuda_exec, .init = setup);

static void need_fake(void) {
    if (!fake_driver()) SKIP_UNLESS_CI("no C compiler ('cc') to build the fake driver");
}

static void need_nvrtc(void) {
    need_fake();
    char why[512];
    if (!rt_nvrtc_available(why, sizeof why)) SKIP_UNLESS_CI("no NVRTC: %s", why);
}

/* The fake's counters (after the driver was loaded). */
static long fake_stat(const char *what) {
    void *lib = dlopen(getenv("DSC_LIBCUDA"), RTLD_NOW | RTLD_NOLOAD);
    cr_assert(lib, "the fake driver is not loaded");
    long (*stat)(const char *);
    void *sym = dlsym(lib, "fake_cuda_stat");
    cr_assert(sym);
    memcpy(&stat, &sym, sizeof stat);
    long v = stat(what);
    dlclose(lib);
    return v;
}

static void expect_nothing_live(const char *when) {
    static const char *const what[] = {"allocs", "bytes", "host", "modules", "streams", "events", "ctx_refs"};
    for (size_t i = 0; i < sizeof what / sizeof what[0]; i++)
        cr_expect_eq(fake_stat(what[i]), 0, "%s: %ld %s still live", when, fake_stat(what[i]), what[i]);
}

/* ---- the launch hook: the kernel-IR evaluator on "device" memory ------------------- */

typedef struct {
    const Graph *g;
    const KProgram *p;
    int block; /* expected blockDim.x (0: any) */
    int launches;
    char err[1024];
} Hook;

static int run_kernel(void *user, const char *name, unsigned grid, unsigned block, void **params) {
    Hook *h = user;
    const Kernel *k = NULL;
    for (int i = 0; i < h->p->nkernels && !k; i++)
        if (strcmp(h->p->kernels[i]->name, name) == 0) k = h->p->kernels[i];
    if (!k) {
        snprintf(h->err, sizeof h->err, "launch of an unknown kernel %s", name);
        return 1;
    }
    if (grid < 1 || (h->block && block != (unsigned)h->block)) {
        snprintf(h->err, sizeof h->err, "kernel %s: grid %u, block %u (want %d)", name, grid, block,
                 h->block);
        return 1;
    }
    int nsym = dim_sym_count(h->g->dims);
    void *bufs[256];
    int64_t dims[64];
    cr_assert(k->nbufs <= 256 && nsym <= 64);
    for (int i = 0; i < k->nbufs; i++)
        bufs[i] = (void *)(uintptr_t) * (unsigned long long *)params[i];
    for (int s = 0; s < nsym; s++)
        dims[s] = *(long long *)params[k->nbufs + s];
    KTrapRecord *trap = (KTrapRecord *)(uintptr_t) * (unsigned long long *)params[k->nbufs + nsym];
    Diag *d = diag_create();
    bool ok = cg_kir_eval_into(h->g, k, bufs, dims, trap, d);
    if (!ok)
        snprintf(h->err, sizeof h->err, "kernel %s: %s", name,
                 diag_count(d) ? diag_message(d, 0, NULL, NULL) : "?");
    diag_destroy(d);
    h->launches++;
    return ok ? 0 : 1;
}

static void install_hook(Hook *h) {
    char why[512];
    cr_assert(rt_cuda_available(why, sizeof why), "%s", why);
    void *lib = dlopen(getenv("DSC_LIBCUDA"), RTLD_NOW | RTLD_NOLOAD);
    cr_assert(lib);
    void (*set)(int (*)(void *, const char *, unsigned, unsigned, void **), void *);
    void *sym = dlsym(lib, "fake_cuda_set_launch_hook");
    cr_assert(sym);
    memcpy(&set, &sym, sizeof set);
    set(run_kernel, h);
    dlclose(lib);
}

/* ---- models and data ---------------------------------------------------------------- */

static bool has_error(const Diag *d, const char *phrase) {
    for (int i = 0; i < diag_count(d); i++) {
        DiagLevel lv;
        const char *m = diag_message(d, i, &lv, NULL);
        if (lv == DIAG_ERROR && strstr(m, phrase)) return true;
    }
    return false;
}

static bool has_warning(const Diag *d, const char *phrase) {
    for (int i = 0; i < diag_count(d); i++) {
        DiagLevel lv;
        const char *m = diag_message(d, i, &lv, NULL);
        if (lv == DIAG_WARNING && strstr(m, phrase)) return true;
    }
    return false;
}

/* noinline: GCC takes the stream's pointer to the local for a dangling one */
__attribute__((noinline)) static char *all_messages(const Diag *d) {
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    diag_print(d, f, false);
    fclose(f);
    return s;
}

/* Small models for the corners: outputs that are an input, a view of one, a
 * param, a load-time constant, an integer value. */
static const char EDGE[] = "model edge {\n"
                           "  dim B <= 16\n"
                           "  input x : f32[B, 4]\n"
                           "  input n : i32[B]\n"
                           "  param w : f32[4]\n"
                           "  param t : f32[4, 4]\n"
                           "  output same = x\n"
                           "  output flat = reshape(x, shape=[B * 4])\n"
                           "  output wv = w\n"
                           "  output tt = transpose(t, perm=[1, 0]) * 2.0\n"
                           "  output y = x * w + 1.0\n"
                           "  output m = n * 3\n"
                           "}\n";

typedef struct {
    Arena *a;
    Diag *d;
    Graph *g;
    KProgram p;
    int nin, nparams;
    Tensor *in[16], *prm[64];
    int64_t syms[16];
} Model;

/* Run-time errors (ir/trap.h): a gather and an integer division per run, and
 * an integer division of params, computed once at load. */
static const char TRAPS[] = "model traps {\n"
                            "  dim B <= 16\n"
                            "  input x : f32[B, 4]\n"
                            "  input i : i64[3]\n"
                            "  input a : i32[B]\n"
                            "  input b : i32[B]\n"
                            "  param p : i32[4]\n"
                            "  param q : i32[4]\n"
                            "  output y = gather(x, i, axis=0) * 2.0\n"
                            "  output z = a / b + 1\n"
                            "  output c = p / q\n"
                            "}\n";

/* Compiles (a file under the source tree, EDGE for "edge" or TRAPS for
 * "traps") at -O`opt` and lowers. */
static void model_open(Model *m, const char *file, int opt) {
    memset(m, 0, sizeof *m);
    m->a = arena_create();
    m->d = diag_create();
    if (strcmp(file, "edge") == 0) {
        m->g = fe_compile_source(m->a, m->d, "edge.dsg", EDGE, strlen(EDGE));
    } else if (strcmp(file, "traps") == 0) {
        m->g = fe_compile_source(m->a, m->d, "traps.dsg", TRAPS, strlen(TRAPS));
    } else {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", DSC_SOURCE_DIR, file);
        m->g = fe_compile_file(m->a, m->d, path);
    }
    PipelineOptions po = {.opt_level = opt};
    cr_assert(m->g && pass_run_pipeline(m->g, m->d, &po), "%s does not compile", file);
    m->p.g = m->g;
    cr_assert(cg_lower(m->g, &m->p, m->d), "%s does not lower", file);
    for (int i = 0; i < m->g->nnodes; i++) {
        m->nin += m->g->nodes[i]->op == OP_INPUT;
        m->nparams += m->g->nodes[i]->op == OP_PARAM;
    }
    cr_assert(m->nin <= 16 && m->nparams <= 64 && dim_sym_count(m->g->dims) <= 16);
}

static Tensor *random_tensor(const Graph *g, const Node *n, const int64_t *syms, uint64_t *rng) {
    int64_t shape[IR_MAX_RANK];
    for (int k = 0; k < n->type.rank; k++)
        cr_assert(dim_eval(g->dims, n->type.dim[k], syms, &shape[k], NULL, 0));
    Tensor *t = rt_tensor_new(n->type.dtype, n->type.rank, shape);
    cr_assert(t);
    bool var = n->name && strstr(n->name, "var");
    rt_fill_random(t, rng,
                   var                             ? 0.5
                   : dtype_is_float(n->type.dtype) ? -1
                                                   : 0,
                   var                             ? 1.5
                   : dtype_is_float(n->type.dtype) ? 1
                                                   : 5);
    return t;
}

/* Seeded inputs (every dim `value`, capped by its bound) and, the first time, params. */
static void model_data(Model *m, int64_t value, uint64_t seed) {
    for (int s = 0; s < dim_sym_count(m->g->dims); s++) {
        int64_t b = dim_sym_bound(m->g->dims, s);
        m->syms[s] = b > 0 && value > b ? b : value;
    }
    for (int i = 0; i < m->nin; i++)
        rt_tensor_free(m->in[i]);
    uint64_t rng = seed;
    for (int i = 0, ii = 0, pi = 0; i < m->g->nnodes; i++) {
        const Node *n = m->g->nodes[i];
        if (n->op == OP_INPUT) m->in[ii++] = random_tensor(m->g, n, m->syms, &rng);
        if (n->op == OP_PARAM && !m->prm[pi]) m->prm[pi] = random_tensor(m->g, n, m->syms, &rng);
        pi += n->op == OP_PARAM;
    }
}

static void model_close(Model *m) {
    for (int i = 0; i < m->nin; i++)
        rt_tensor_free(m->in[i]);
    for (int i = 0; i < m->nparams; i++)
        rt_tensor_free(m->prm[i]);
    diag_destroy(m->d);
    arena_destroy(m->a);
}

static int runtime_kernels(const KProgram *p) {
    int n = 0;
    for (int i = 0; i < p->nkernels; i++)
        n += !p->kernels[i]->load_time;
    return n;
}

static int load_time_kernels(const KProgram *p) { return p->nkernels - runtime_kernels(p); }

/* Runs m's inputs on the loaded model and on the host executor with the same
 * evaluator: the outputs must be identical. */
static void expect_same_as_host(Model *m, CudaModel *cm, const char *label) {
    const Graph *g = m->g;
    Tensor *got[32] = {0}, *want[32] = {0};
    cr_assert(g->noutputs <= 32);
    bool ok = rt_cuda_model_run(cm, m->in, m->nin, got, m->d);
    if (!ok) {
        char *s = all_messages(m->d);
        cr_assert_fail("%s: the CUDA run fails:\n%s", label, s);
        free(s);
    }
    cr_assert(rt_exec_run(g, &m->p, m->in, m->nin, m->prm, want, cg_kir_eval, NULL, m->d), "%s: host run",
              label);
    for (int i = 0; i < g->noutputs; i++) {
        char gs[64], ws[64];
        rt_shape_str(got[i]->dtype, got[i]->rank, got[i]->shape, gs, sizeof gs);
        rt_shape_str(want[i]->dtype, want[i]->rank, want[i]->shape, ws, sizeof ws);
        cr_expect_str_eq(gs, ws, "%s: output %s", label, g->outputs[i].name);
        cr_expect(got[i]->nbytes == want[i]->nbytes &&
                      memcmp(got[i]->data, want[i]->data, got[i]->nbytes) == 0,
                  "%s: output %s differs from the host executor's", label, g->outputs[i].name);
        rt_tensor_free(got[i]);
        rt_tensor_free(want[i]);
    }
}

/* ---- without a driver, without a device, device selection ---------------------------- */

Test(cuda_exec, no_driver) {
    setenv("DSC_LIBCUDA", "/nonexistent/libcuda.so.1", 1);
    char why[512] = "";
    cr_expect_not(rt_cuda_usable(why, sizeof why));
    cr_expect(strstr(why, "$DSC_LIBCUDA: /nonexistent/libcuda.so.1 not found"), "%s", why);
    Model m;
    model_open(&m, "examples/mlp.dsg", 2);
    model_data(&m, 2, 1);
    CudaModel *cm = (CudaModel *)&m; /* must be reset */
    cr_expect_not(rt_cuda_model_load(m.g, &m.p, m.prm, NULL, &cm, m.d));
    cr_expect_null(cm);
    cr_expect(has_error(m.d, "CUDA driver not available: $DSC_LIBCUDA: /nonexistent/libcuda.so.1 not found"));
    diag_clear(m.d);

    /* dsc run --device cuda: an error naming the reason; auto: the host */
    RunOptions ro = {.random_inputs = true, .random_weights = true, .device = RT_DEVICE_CUDA};
    Tensor *out[2] = {0};
    cr_expect_not(rt_run_model(m.g, "mlp.dsg", &ro, out, m.d));
    cr_expect(
        has_error(m.d, "device 'cuda' is not available: $DSC_LIBCUDA: /nonexistent/libcuda.so.1 not found"));
    cr_expect_null(out[0]);
    diag_clear(m.d);
    ro.device = RT_DEVICE_AUTO;
    cr_expect(rt_run_model(m.g, "mlp.dsg", &ro, out, m.d));
    cr_expect_eq(diag_error_count(m.d), 0);
    cr_expect_eq(diag_warning_count(m.d), rt_host_available() ? 0 : 1, "silent on the host JIT");
    rt_tensor_free(out[0]);
    rt_tensor_free(out[1]);
    model_close(&m);
}

Test(cuda_exec, no_device) {
    need_fake();
    setenv("FAKE_CUDA_DEVICES", "0", 1);
    char why[512] = "";
    cr_expect_not(rt_cuda_usable(why, sizeof why));
    cr_expect(strstr(why, "found no device"), "%s", why);
    Diag *d = diag_create();
    CudaDevice dev;
    cr_expect_not(rt_cuda_device_select(0, &dev, d));
    cr_expect(has_error(d, "CUDA driver not available: the CUDA driver ("));
    cr_expect(has_error(d, ") found no device"));
    diag_destroy(d);
}

Test(cuda_exec, device_selection) {
    need_fake();
    Diag *d = diag_create();
    CudaDevice dev;
    cr_assert(rt_cuda_device_select(0, &dev, d));
    cr_expect_str_eq(dev.name, "NVIDIA H200");
    cr_expect_eq(dev.sm, 90);
    cr_expect_eq(dev.sm_count, 132);
    cr_expect_eq(dev.driver_version, 12080);
    cr_expect_str_eq(dev.hwdb_arch, "sm_90");
    cr_expect(strstr(dev.hwdb_how, "exact device name 'NVIDIA H200'"), "%s", dev.hwdb_how);
    HwDb *db = rt_hwdb_load(DSC_SOURCE_DIR "/data/hwdb.json", d);
    cr_assert(db);
    const HwKernelConfig *kc = rt_hwdb_kernel_class(rt_hwdb_arch(db, "sm_90"), HW_K_ELEMENTWISE);
    cr_expect_eq(dev.block, (int)rt_hwdb_param(kc, "threads", 0), "threads per block from the hwdb");
    rt_hwdb_free(db);
    cr_expect_eq(diag_count(d), 0);

    /* no such ordinal */
    cr_expect_not(rt_cuda_device_select(1, &dev, d));
    cr_expect(has_error(d, "there is no CUDA device 1 (the driver lists 1)"));
    diag_clear(d);

    /* the same compute capability, by another name: a caveat */
    setenv("FAKE_CUDA_NAME", "NVIDIA H20", 1);
    setenv("FAKE_CUDA_SMS", "78", 1);
    cr_assert(rt_cuda_device_select(0, &dev, d));
    cr_expect_str_eq(dev.hwdb_arch, "sm_90");
    cr_expect(strstr(dev.hwdb_how, "same compute capability 9.0"), "%s", dev.hwdb_how);
    cr_expect(has_warning(d, "CUDA device 0 (NVIDIA H20): "));
    diag_clear(d);

    /* older than every entry: an error naming the device */
    setenv("FAKE_CUDA_CC", "70", 1);
    unsetenv("FAKE_CUDA_NAME");
    cr_expect_not(rt_cuda_device_select(0, &dev, d));
    cr_expect(has_error(d, "CUDA device 0 (Tesla V100-SXM2-16GB, compute capability 7.0) cannot be used: "));
    cr_expect(has_error(d, "no hardware-database entry for compute capability 7.0"));
    diag_clear(d);

    /* no database: selected anyway, 256 threads */
    unsetenv("FAKE_CUDA_CC");
    setenv("DSC_HWDB", "/nonexistent/hwdb.json", 1);
    cr_assert(rt_cuda_device_select(0, &dev, d));
    cr_expect_str_eq(dev.hwdb_arch, "");
    cr_expect(strstr(dev.hwdb_how, "no hardware database"), "%s", dev.hwdb_how);
    cr_expect_eq(dev.block, 256);
    diag_destroy(d);
}

/* ---- running ------------------------------------------------------------------------ */

static void check_model(const char *file, int opt, int64_t first, int64_t second) {
    Model m;
    model_open(&m, file, opt);
    model_data(&m, first, 7);
    Hook h = {.g = m.g, .p = &m.p};
    install_hook(&h);
    CudaModel *cm = NULL;
    bool ok = rt_cuda_model_load(m.g, &m.p, m.prm, NULL, &cm, m.d);
    if (!ok) {
        char *s = all_messages(m.d);
        cr_assert_fail("%s: load fails:\n%s", file, s);
    }
    const CudaDevice *dev = rt_cuda_model_device(cm);
    h.block = dev->block;
    const CudaLoadStats *st = rt_cuda_model_load_stats(cm);
    cr_expect_eq(st->kernels, m.p.nkernels);
    cr_expect_eq(st->compiled + st->cached, m.p.nkernels);
    cr_expect_eq(st->load_time_kernels, load_time_kernels(&m.p));
    cr_expect_eq(h.launches, load_time_kernels(&m.p), "%s: the load-time kernels run at load", file);
    cr_expect_eq(fake_stat("modules"), m.p.nkernels);
    cr_expect_eq(fake_stat("allocs"), 1, "the weights block");
    cr_expect_eq(fake_stat("ctx_refs"), 1);
    cr_expect_eq(fake_stat("streams"), 1);
    cr_expect_str_eq(h.err, "");

    char label[256];
    snprintf(label, sizeof label, "%s -O%d at %lld", file, opt, (long long)first);
    expect_same_as_host(&m, cm, label);
    cr_expect_str_eq(h.err, "");
    cr_expect_eq(h.launches, load_time_kernels(&m.p) + runtime_kernels(&m.p), "constants are not recomputed");
    cr_expect_eq(fake_stat("allocs"), 2, "the weights block and the run block");
    long bytes = fake_stat("bytes");

    /* a larger binding grows the run block; a smaller one reuses it */
    model_data(&m, second, 8);
    snprintf(label, sizeof label, "%s -O%d at %lld", file, opt, (long long)second);
    expect_same_as_host(&m, cm, label);
    cr_expect_eq(fake_stat("allocs"), 2);
    cr_expect_geq(fake_stat("bytes"), bytes);
    long grown = fake_stat("bytes");
    model_data(&m, first, 9);
    snprintf(label, sizeof label, "%s -O%d at %lld again", file, opt, (long long)first);
    expect_same_as_host(&m, cm, label);
    cr_expect_eq(fake_stat("bytes"), grown, "a smaller binding keeps the block");
    cr_expect_str_eq(h.err, "");
    cr_expect_eq(fake_stat("ctx_refs"), 1, "each run's context reference is returned");
    rt_cuda_model_free(cm, m.d);
    cr_expect_eq(diag_error_count(m.d), 0);
    expect_nothing_live(label);
    model_close(&m);
}

Test(cuda_exec, runs_like_the_host_mlp) {
    need_nvrtc();
    check_model("examples/mlp.dsg", 2, 2, 5);
}

Test(cuda_exec, runs_like_the_host_without_a_memory_plan) {
    need_nvrtc();
    check_model("examples/mlp.dsg", 0, 3, 4);
}

Test(cuda_exec, runs_like_the_host_with_load_time_constants) {
    need_nvrtc();
    check_model("examples/cnn_block.dsg", 2, 1, 3);
}

Test(cuda_exec, runs_like_the_host_attention) {
    need_nvrtc();
    check_model("examples/bert_layer.dsg", 2, 1, 2);
}

Test(cuda_exec, runs_like_the_host_corners) {
    need_nvrtc();
    check_model("edge", 2, 3, 16);
    check_model("edge", 0, 0, 2); /* a dim bound to 0: empty inputs and outputs */
}

/* The interpreter's diagnostics for m's data, as text (malloc'd). */
static char *interp_messages(Model *m) {
    Tensor *out[8] = {0};
    Diag *d = diag_create();
    cr_assert_not(rt_interp_run(m->g, m->in, m->nin, m->prm, out, d), "the interpreter accepts the bad data");
    char *s = all_messages(d);
    diag_destroy(d);
    return s;
}

/* The CUDA run fails with exactly the interpreter's diagnostics, returns no
 * output, and the next good run is not affected (the record was cleared). */
static void expect_trap(Model *m, CudaModel *cm, const char *label) {
    char *want = interp_messages(m);
    Tensor *got[8] = {(Tensor *)1, (Tensor *)1, (Tensor *)1};
    diag_clear(m->d);
    cr_expect_not(rt_cuda_model_run(cm, m->in, m->nin, got, m->d), "%s: the CUDA run succeeds", label);
    for (int i = 0; i < m->g->noutputs; i++)
        cr_expect_null(got[i], "%s: output %d", label, i);
    char *s = all_messages(m->d);
    cr_expect_str_eq(s, want, "%s", label);
    free(s);
    free(want);
    diag_clear(m->d);
}

Test(cuda_exec, run_time_errors_like_the_interpreter) {
    need_nvrtc();
    Model m;
    model_open(&m, "traps", 2);
    model_data(&m, 4, 11); /* x, i, a, b; params p, q */
    int64_t *iv = m.in[1]->data;
    int32_t *bv = m.in[3]->data, *qv = m.prm[1]->data;
    for (int j = 0; j < 3; j++)
        iv[j] = 3 - j;
    for (int j = 0; j < 4; j++)
        bv[j] = qv[j] = j + 1;
    Hook h = {.g = m.g, .p = &m.p};
    install_hook(&h);
    CudaModel *cm = NULL;
    cr_assert(rt_cuda_model_load(m.g, &m.p, m.prm, NULL, &cm, m.d), "%s", all_messages(m.d));
    expect_same_as_host(&m, cm, "good data");

    iv[1] = 4; /* B = 4 */
    expect_trap(&m, cm, "gather index 4");
    iv[1] = -5;
    expect_trap(&m, cm, "gather index -5");
    iv[1] = -4;
    expect_same_as_host(&m, cm, "gather index -4, after the errors");
    bv[2] = 0;
    expect_trap(&m, cm, "division by zero");
    bv[2] = -1;
    expect_same_as_host(&m, cm, "division by -1, after the error");
    cr_expect_str_eq(h.err, "");
    rt_cuda_model_free(cm, m.d);
    cr_expect_eq(diag_error_count(m.d), 0);
    expect_nothing_live("run-time errors");

    /* an error of a load-time kernel fails the load */
    qv[3] = 0;
    char *want = interp_messages(&m);
    cm = NULL;
    cr_expect_not(rt_cuda_model_load(m.g, &m.p, m.prm, NULL, &cm, m.d));
    cr_expect_null(cm);
    char *s = all_messages(m.d);
    cr_expect_str_eq(s, want);
    free(s);
    free(want);
    expect_nothing_live("a load-time error");
    model_close(&m);
}

/* rt_run_model through the run.c hook (random data, as `dsc run` makes it)
 * against the reference interpreter.  The hook resolves kernels in a twin
 * compile of the same file (lowering is deterministic: same names). */
Test(cuda_exec, run_model_against_the_interpreter) {
    need_nvrtc();
    Model twin, m;
    model_open(&twin, "examples/cnn_block.dsg", 2);
    model_open(&m, "examples/cnn_block.dsg", 2);
    Hook h = {.g = twin.g, .p = &twin.p};
    install_hook(&h);
    /* the graph as written, for random weights in range (a batchnorm variance) */
    Graph *written = fe_compile_file(m.a, m.d, DSC_SOURCE_DIR "/examples/cnn_block.dsg");
    cr_assert(written);
    const char *bind_names[] = {"N"};
    int64_t bind_values[] = {2};
    RunOptions ro = {.random_inputs = true,
                     .random_weights = true,
                     .seed = 3,
                     .nbinds = 1,
                     .bind_names = bind_names,
                     .bind_values = bind_values,
                     .as_written = written,
                     .device = RT_DEVICE_CUDA};
    Tensor *got[1] = {0}, *want[1] = {0};
    bool ok = rt_run_model(m.g, "cnn_block.dsg", &ro, got, m.d);
    if (!ok) {
        char *s = all_messages(m.d);
        cr_assert_fail("cuda: %s", s);
    }
    cr_expect_str_eq(h.err, "");
    cr_expect_eq(h.launches, twin.p.nkernels);
    ro.device = RT_DEVICE_REF;
    cr_assert(rt_run_model(m.g, "cnn_block.dsg", &ro, want, m.d));
    cr_assert_eq(got[0]->nbytes, want[0]->nbytes);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < rt_numel(want[0]->rank, want[0]->shape); i++) {
        double a = rt_get(got[0], i), b = rt_get(want[0], i);
        err += (a - b) * (a - b);
        ref += b * b;
    }
    cr_expect(sqrt(err / fmax(ref, 1e-30)) < 1e-4, "relative L2 error %g", sqrt(err / fmax(ref, 1e-30)));
    cr_expect_gt(ref, 0, "not all zeros");
    expect_nothing_live("after rt_run_model");
    rt_tensor_free(got[0]);
    rt_tensor_free(want[0]);
    model_close(&m);
    model_close(&twin);
}

/* ---- failures ------------------------------------------------------------------------ */

Test(cuda_exec, out_of_memory_names_the_size) {
    need_nvrtc();
    Model m;
    model_open(&m, "examples/mlp.dsg", 2);
    model_data(&m, 4, 1);
    CudaModel *cm = NULL;
    /* the weights do not fit */
    setenv("FAKE_CUDA_MEM_LIMIT", "4096", 1);
    cr_expect_not(rt_cuda_model_load(m.g, &m.p, m.prm, NULL, &cm, m.d));
    cr_expect_null(cm);
    char want[256];
    size_t wbytes = 0;
    for (int i = 0; i < m.nparams; i++)
        wbytes += (m.prm[i]->nbytes + 255) / 256 * 256;
    wbytes += RT_EXEC_ALIGN; /* an empty constant block */
    wbytes += 256;           /* the run-time error record (ir/trap.h), DEV_ALIGN */
    snprintf(want, sizeof want,
             "the weights (6 params and 0 constant values: %zu bytes on NVIDIA H200): "
             "cuMemAlloc_v2(%zu bytes) failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory)",
             wbytes, wbytes);
    cr_expect(has_error(m.d, want), "want: %s", want);
    expect_nothing_live("a failed load");
    diag_clear(m.d);

    /* the weights fit, the run does not */
    unsetenv("FAKE_CUDA_MEM_LIMIT");
    cr_assert(rt_cuda_model_load(m.g, &m.p, m.prm, NULL, &cm, m.d));
    char limit[64];
    snprintf(limit, sizeof limit, "%ld", fake_stat("bytes") + 1000);
    setenv("FAKE_CUDA_MEM_LIMIT", limit, 1);
    Tensor *out[2] = {(Tensor *)1, (Tensor *)1};
    cr_expect_not(rt_cuda_model_run(cm, m.in, m.nin, out, m.d));
    cr_expect(out[0] == NULL && out[1] == NULL);
    cr_expect(has_error(m.d, "device memory for a run of 'mlp' ("));
    cr_expect(has_error(m.d, "failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory)"));
    char *s = all_messages(m.d);
    size_t total = 0;
    cr_expect(
        sscanf(strstr(s, "device memory for a run of 'mlp' (") + strlen("device memory for a run of 'mlp' ("),
               "%zu bytes", &total) == 1,
        "%s", s);
    snprintf(want, sizeof want, "cuMemAlloc_v2(%zu bytes) failed", total);
    cr_expect(strstr(s, want), "the size asked for is the size named: %s", s);
    free(s);
    /* and with more memory the same model runs */
    unsetenv("FAKE_CUDA_MEM_LIMIT");
    diag_clear(m.d);
    cr_expect(rt_cuda_model_run(cm, m.in, m.nin, out, m.d));
    rt_tensor_free(out[0]);
    rt_tensor_free(out[1]);
    rt_cuda_model_free(cm, m.d);
    cr_expect_eq(diag_error_count(m.d), 0);
    expect_nothing_live("after the run");
    model_close(&m);
}

Test(cuda_exec, module_load_failure_names_the_kernel_with_the_jit_log) {
    need_nvrtc();
    Model m;
    model_open(&m, "examples/mlp.dsg", 2);
    model_data(&m, 2, 1);
    setenv("FAKE_CUDA_BAD_MODULE", "2", 1);
    CudaModel *cm = NULL;
    cr_expect_not(rt_cuda_model_load(m.g, &m.p, m.prm, NULL, &cm, m.d));
    cr_expect_null(cm);
    char want[512];
    snprintf(want, sizeof want, "kernel %s (sm_90, ", m.p.kernels[1]->name);
    cr_expect(has_error(m.d, want), "want: %s", want);
    cr_expect(has_error(m.d,
                        "cuModuleLoadDataEx (JIT error log: ptxas fatal   : cubin is for sm_100, the device "
                        "is sm_90) failed: CUDA_ERROR_NO_BINARY_FOR_GPU (no kernel image is available for "
                        "execution on the device)"));
    cr_expect_eq(diag_error_count(m.d), 1);
    cr_expect_eq(fake_stat("module_loads"), 2);
    expect_nothing_live("a failed module load");
    model_close(&m);
}

Test(cuda_exec, launch_failure_names_the_kernel) {
    need_nvrtc();
    Model m;
    model_open(&m, "examples/mlp.dsg", 2);
    model_data(&m, 2, 1);
    Hook h = {.g = m.g, .p = &m.p};
    install_hook(&h);
    CudaModel *cm = NULL;
    cr_assert(rt_cuda_model_load(m.g, &m.p, m.prm, NULL, &cm, m.d));
    const char *name = m.p.kernels[1]->name;
    setenv("FAKE_CUDA_FAIL_LAUNCH", name, 1);
    Tensor *out[2];
    cr_expect_not(rt_cuda_model_run(cm, m.in, m.nin, out, m.d));
    cr_expect(out[0] == NULL && out[1] == NULL);
    char want[512];
    snprintf(want, sizeof want, "cuLaunchKernel(%s, grid ", name);
    cr_expect(has_error(m.d, want), "want: %s", want);
    cr_expect(has_error(m.d,
                        "x1x1, block 256x1x1, 0 bytes shared) failed: CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES "
                        "(too many resources requested for launch)"));
    cr_expect_eq(diag_error_count(m.d), 1);
    /* a note names the kernel launched before it (an earlier fault would surface here) */
    bool note = false;
    for (int i = 0; i < diag_count(m.d); i++) {
        DiagLevel lv;
        const char *msg = diag_message(m.d, i, &lv, NULL);
        snprintf(want, sizeof want, "launched before it and not synchronised yet: %s (",
                 m.p.kernels[0]->name);
        note |= lv == DIAG_NOTE && strstr(msg, want) != NULL;
    }
    cr_expect(note, "a note naming %s", m.p.kernels[0]->name);
    cr_expect_eq(fake_stat("ctx_refs"), 1);
    /* a launch failure does not break the context: the next run works */
    unsetenv("FAKE_CUDA_FAIL_LAUNCH");
    diag_clear(m.d);
    expect_same_as_host(&m, cm, "after a failed launch");
    rt_cuda_model_free(cm, m.d);
    cr_expect_eq(diag_error_count(m.d), 0);
    expect_nothing_live("after a failed launch");
    model_close(&m);
}

Test(cuda_exec, load_time_kernel_failure) {
    need_nvrtc();
    Model m;
    model_open(&m, "examples/cnn_block.dsg", 2);
    model_data(&m, 1, 1);
    cr_assert(m.p.kernels[0]->load_time);
    setenv("FAKE_CUDA_FAIL_LAUNCH", m.p.kernels[0]->name, 1);
    CudaModel *cm = NULL;
    cr_expect_not(rt_cuda_model_load(m.g, &m.p, m.prm, NULL, &cm, m.d));
    char want[512];
    snprintf(want, sizeof want, "cuLaunchKernel(%s, grid ", m.p.kernels[0]->name);
    cr_expect(has_error(m.d, want), "want: %s", want);
    cr_expect_eq(diag_error_count(m.d), 1, "no noise from the releases");
    expect_nothing_live("a failed load-time kernel");
    model_close(&m);
}

/* A fault the driver reports at the next synchronisation: the message names
 * the kernels since the last one, or (DSC_CUDA_SYNC=1) the one. */
Test(cuda_exec, asynchronous_fault) {
    need_nvrtc();
    Model m;
    model_open(&m, "examples/mlp.dsg", 2);
    model_data(&m, 2, 1);
    cr_assert_geq(m.p.nkernels, 3);
    for (int sync = 0; sync < 2; sync++) {
        Hook h = {.g = m.g, .p = &m.p};
        install_hook(&h);
        if (sync) setenv("DSC_CUDA_SYNC", "1", 1);
        CudaModel *cm = NULL;
        cr_assert(rt_cuda_model_load(m.g, &m.p, m.prm, NULL, &cm, m.d));
        setenv("FAKE_CUDA_FAULT", m.p.kernels[1]->name, 1);
        Tensor *out[2];
        cr_expect_not(rt_cuda_model_run(cm, m.in, m.nin, out, m.d));
        char want[512];
        if (sync)
            snprintf(want, sizeof want,
                     "kernel %s: cuStreamSynchronize failed: CUDA_ERROR_ILLEGAL_ADDRESS "
                     "(an illegal memory access was encountered)",
                     m.p.kernels[1]->name);
        else
            snprintf(want, sizeof want, "one of the kernels %s, %s, %s", m.p.kernels[0]->name,
                     m.p.kernels[1]->name, m.p.kernels[2]->name);
        cr_expect(has_error(m.d, want), "want: %s", want);
        if (!sync)
            cr_expect(has_error(m.d, "(set DSC_CUDA_SYNC=1 to name the one that failed): cuStreamSynchronize "
                                     "failed: CUDA_ERROR_ILLEGAL_ADDRESS"));
        cr_expect_eq(diag_error_count(m.d), 1, "reported once, not again by the closing synchronisation");
        int errs = diag_error_count(m.d);
        rt_cuda_model_free(cm, m.d);
        cr_expect_eq(diag_error_count(m.d), errs, "the releases after a fault add no errors");
        expect_nothing_live("after a fault");
        unsetenv("FAKE_CUDA_FAULT");
        diag_clear(m.d);
    }
    model_close(&m);
}

/* ---- timing --------------------------------------------------------------------------- */

Test(cuda_exec, bench_json) {
    need_nvrtc();
    Model m;
    model_open(&m, "examples/mlp.dsg", 2);
    model_data(&m, 4, 1);
    Hook h = {.g = m.g, .p = &m.p};
    install_hook(&h);
    CudaModel *cm = NULL;
    cr_assert(rt_cuda_model_load(m.g, &m.p, m.prm, NULL, &cm, m.d));
    char path[512];
    snprintf(path, sizeof path, "%s/bench.%d.json", TMP, (int)getpid());
    cr_assert(rt_cuda_bench_to_file(cm, m.in, m.nin, 5, path, m.d));
    cr_expect_str_eq(h.err, "");
    cr_expect_eq(fake_stat("events"), 0);
    rt_cuda_model_free(cm, m.d);
    expect_nothing_live("after the bench");
    char *text = slurp(path);
    unlink(path);
    cJSON *j = cJSON_Parse(text);
    cr_assert(j, "not JSON: %s", text);
    cr_expect_str_eq(cJSON_GetObjectItem(j, "device")->valuestring, "NVIDIA H200");
    cr_expect_str_eq(cJSON_GetObjectItem(j, "arch")->valuestring, "sm_90");
    cr_expect_str_eq(cJSON_GetObjectItem(j, "hwdb_entry")->valuestring, "sm_90");
    cr_expect_gt(cJSON_GetObjectItem(j, "load_ms")->valuedouble, 0);
    cr_expect_eq(cJSON_GetObjectItem(j, "kernels_compiled")->valueint +
                     cJSON_GetObjectItem(j, "kernels_cached")->valueint,
                 m.p.nkernels);
    cJSON *lat = cJSON_GetObjectItem(j, "latency_ms");
    cr_expect_gt(cJSON_GetObjectItem(lat, "median")->valuedouble, 0);
    cr_expect_leq(cJSON_GetObjectItem(lat, "min")->valuedouble,
                  cJSON_GetObjectItem(lat, "median")->valuedouble);
    cr_expect_eq(cJSON_GetObjectItem(lat, "iterations")->valueint, 5);
    cJSON *ks = cJSON_GetObjectItem(j, "kernels");
    cr_assert_eq(cJSON_GetArraySize(ks), runtime_kernels(&m.p));
    for (int i = 0; i < cJSON_GetArraySize(ks); i++) {
        cJSON *k = cJSON_GetArrayItem(ks, i);
        cr_expect_str_eq(cJSON_GetObjectItem(k, "name")->valuestring, m.p.kernels[i]->name);
        cr_expect_str_eq(cJSON_GetObjectItem(k, "dtype")->valuestring, "f32");
        cr_expect(strstr("elementwise reduction gemm_f32", cJSON_GetObjectItem(k, "class")->valuestring));
        cr_expect_gt(cJSON_GetObjectItem(k, "ms")->valuedouble, 0);
        cr_expect_gt(cJSON_GetObjectItem(k, "bytes")->valuedouble, 0);
        cr_expect_gt(cJSON_GetObjectItem(k, "flops")->valuedouble, 0);
        cr_expect_eq(cJSON_GetObjectItem(k, "block")->valueint, 256);
        cr_expect_geq(cJSON_GetObjectItem(k, "grid")->valueint, 1);
    }
    cJSON_Delete(j);
    free(text);
    model_close(&m);
}

/* ---- the CLI ---------------------------------------------------------------------------- */

/* Runs `dsc ARGS` with the current environment; stdout and stderr in files. */
static int dsc(const char *args, char **out, char **err) {
    char cmd[4096], o[512], e[512];
    snprintf(o, sizeof o, "%s/cli.%d.out", TMP, (int)getpid());
    snprintf(e, sizeof e, "%s/cli.%d.err", TMP, (int)getpid());
    mkdir(TMP, 0777);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >'%s' 2>'%s'", DSC_SOURCE_DIR, DSC, args, o, e);
    int rc = system(cmd);
    *out = slurp(o);
    *err = slurp(e);
    unlink(o);
    unlink(e);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

#define MLP "run examples/mlp.dsg --random-inputs --random-weights --bind B=2"

Test(cuda_exec, cli_without_a_driver) {
    if (access(DSC, X_OK) != 0) SKIP_UNLESS_CI("no %s", DSC);
    setenv("DSC_LIBCUDA", "/nonexistent/libcuda.so.1", 1);
    char *out, *err;
    cr_expect_eq(dsc(MLP " --device cuda", &out, &err), 1);
    cr_expect(strstr(err, "examples/mlp.dsg: error: device 'cuda' is not available: $DSC_LIBCUDA: "
                          "/nonexistent/libcuda.so.1 not found"),
              "%s", err);
    cr_expect_str_eq(out, "");
    free(out), free(err);
    cr_expect_eq(dsc(MLP " --device auto", &out, &err), 0, "auto falls back");
    cr_expect(strstr(out, "logits: f32[2,10] min="), "%s", out);
    if (rt_host_available()) cr_expect_str_eq(err, "", "the host JIT, silently");
    free(out), free(err);
}

Test(cuda_exec, cli_with_the_fake_driver) {
    need_nvrtc();
    if (access(DSC, X_OK) != 0) SKIP_UNLESS_CI("no %s", DSC);
    char *out, *err, path[512], args[1024];
    /* a run (the kernels do nothing without the hook: zeros) with the timing */
    snprintf(path, sizeof path, "%s/cli_bench.%d.json", TMP, (int)getpid());
    unlink(path);
    setenv("DSC_CUDA_BENCH", path, 1);
    setenv("DSC_CUDA_BENCH_ITERS", "3", 1);
    cr_expect_eq(dsc(MLP " --device cuda", &out, &err), 0, "%s", err);
    cr_expect(strstr(out, "logits: f32[2,10] min=0 max=0 mean=0"), "%s", out);
    free(out), free(err);
    char *text = slurp(path);
    unlink(path);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    cr_expect(j && cJSON_GetObjectItem(j, "latency_ms") &&
                  cJSON_GetArraySize(cJSON_GetObjectItem(j, "kernels")) == 4,
              "%s", text ? text : "(no file)");
    cJSON_Delete(j);
    free(text);
    unsetenv("DSC_CUDA_BENCH");

    /* a launch that fails: exit 1, the kernel named */
    setenv("FAKE_CUDA_FAIL_LAUNCH", "mlp_g2_0", 1);
    cr_expect_eq(dsc(MLP " --device cuda", &out, &err), 1);
    cr_expect(strstr(err, "error: cuLaunchKernel(mlp_g2_0, grid "), "%s", err);
    free(out), free(err);
    unsetenv("FAKE_CUDA_FAIL_LAUNCH");

    /* a model the GPU cannot load: cuda fails, auto warns and runs on the host */
    setenv("FAKE_CUDA_BAD_MODULE", "1", 1);
    cr_expect_eq(dsc(MLP " --device cuda", &out, &err), 1);
    cr_expect(strstr(err, "error: kernel mlp_g0_0 (sm_90, "), "%s", err);
    free(out), free(err);
    snprintf(args, sizeof args, "%s --device auto", MLP);
    cr_expect_eq(dsc(args, &out, &err), 0);
    cr_expect(strstr(err, "warning: the GPU cannot run this model (kernel mlp_g0_0 (sm_90, "), "%s", err);
    cr_expect(strstr(err, "CUDA_ERROR_NO_BINARY_FOR_GPU"), "%s", err);
    cr_expect(strstr(err, "); running on the host"), "%s", err);
    cr_expect(strstr(out, "logits: f32[2,10] min=-"), "real numbers from the host: %s", out);
    free(out), free(err);
}

/* ---- the cuBLASLt GEMM tactic --------------------------------------------------------- */

static void need_lt(void) {
    need_nvrtc();
    if (!fake_cublaslt()) SKIP_UNLESS_CI("no C compiler ('cc') to build the fake cuBLASLt");
}

static long lt_stat(const char *what) {
    void *lib = dlopen(getenv("DSC_LIBCUBLASLT"), RTLD_NOW | RTLD_NOLOAD);
    if (!lib) return 0; /* never loaded: nothing live */
    long (*stat)(const char *);
    void *sym = dlsym(lib, "fake_cublaslt_stat");
    cr_assert(sym);
    memcpy(&stat, &sym, sizeof stat);
    long v = stat(what);
    dlclose(lib);
    return v;
}

static void expect_lt_nothing_live(const char *when) {
    static const char *const what[] = {"handles", "descs", "layouts", "prefs"};
    for (size_t i = 0; i < sizeof what / sizeof what[0]; i++)
        cr_expect_eq(lt_stat(what[i]), 0, "%s: %ld cuBLASLt %s still live", when, lt_stat(what[i]), what[i]);
    expect_nothing_live(when);
}

/* relative L2 error of got against want */
static double rel_l2(const Tensor *got, const Tensor *want) {
    double err = 0, ref = 0;
    for (int64_t i = 0; i < rt_numel(want->rank, want->shape); i++) {
        double a = rt_get(got, i), b = rt_get(want, i);
        err += (a - b) * (a - b);
        ref += b * b;
    }
    return sqrt(err / fmax(ref, 1e-30));
}

/* Compiles like model_open, with the fuse pass off (unfused) and a precision. */
static void model_open_with(Model *m, const char *file, bool unfused, DType prec, const char *source) {
    memset(m, 0, sizeof *m);
    m->a = arena_create();
    m->d = diag_create();
    if (source) {
        m->g = fe_compile_source(m->a, m->d, file, source, strlen(source));
    } else {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", DSC_SOURCE_DIR, file);
        m->g = fe_compile_file(m->a, m->d, path);
    }
    cr_assert(m->g, "%s does not parse", file);
    if (prec != DT_F32) {
        m->g->precision = arena_alloc(m->a, sizeof(PrecisionRequest));
        m->g->precision->dtype = prec;
    }
    const char *off[] = {"fuse"};
    PipelineOptions po = {.opt_level = 2, .disabled = off, .ndisabled = unfused ? 1 : 0};
    cr_assert(pass_run_pipeline(m->g, m->d, &po), "%s does not compile", file);
    m->p.g = m->g;
    cr_assert(cg_lower(m->g, &m->p, m->d), "%s does not lower", file);
    for (int i = 0; i < m->g->nnodes; i++) {
        m->nin += m->g->nodes[i]->op == OP_INPUT;
        m->nparams += m->g->nodes[i]->op == OP_PARAM;
    }
}

/* Loads with the tactic, runs twice (two bindings), compares every output with
 * the host executor (same evaluator for the generated kernels) within tol;
 * returns the number of kernels the library took. */
static int check_cublas(Model *m, const char *label, double tol, int64_t first, int64_t second,
                        long *matmuls) {
    model_data(m, first, 21);
    Hook h = {.g = m->g, .p = &m->p};
    install_hook(&h);
    CudaModelOptions mo = {.gemm = CUDA_GEMM_CUBLAS};
    CudaModel *cm = NULL;
    if (!rt_cuda_model_load(m->g, &m->p, m->prm, &mo, &cm, m->d))
        cr_assert_fail("%s: %s", label, all_messages(m->d));
    int n = rt_cuda_model_load_stats(cm)->cublas_kernels;
    cr_expect_eq(rt_cuda_model_load_stats(cm)->gemm, CUDA_GEMM_CUBLAS);
    long before = lt_stat("matmuls");
    for (int pass = 0; pass < 2; pass++) {
        if (pass) model_data(m, second, 22);
        Tensor *got[32] = {0}, *want[32] = {0};
        if (!rt_cuda_model_run(cm, m->in, m->nin, got, m->d))
            cr_assert_fail("%s: %s", label, all_messages(m->d));
        cr_assert(rt_exec_run(m->g, &m->p, m->in, m->nin, m->prm, want, cg_kir_eval, NULL, m->d));
        for (int i = 0; i < m->g->noutputs; i++) {
            cr_assert_eq(got[i]->nbytes, want[i]->nbytes);
            double e = rel_l2(got[i], want[i]);
            cr_expect(e <= tol, "%s (pass %d): output %s: relative L2 error %g > %g", label, pass,
                      m->g->outputs[i].name, e, tol);
            rt_tensor_free(got[i]);
            rt_tensor_free(want[i]);
        }
    }
    cr_expect_str_eq(h.err, "", "%s", label);
    cr_expect_eq(diag_error_count(m->d), 0, "%s: %s", label, all_messages(m->d));
    int used = 0;
    for (int i = 0; i < m->p.nkernels; i++)
        used += strcmp(rt_cuda_model_kernel_tactic(cm, i), "cublaslt") == 0;
    cr_expect_eq(used, n, "%s: every kernel the tactic took ran through cuBLASLt: %s", label,
                 all_messages(m->d));
    if (matmuls) *matmuls = lt_stat("matmuls") - before;
    cr_expect_eq(h.launches, 2 * (runtime_kernels(&m->p) - n) + load_time_kernels(&m->p),
                 "%s: the other kernels are launched", label);
    rt_cuda_model_free(cm, m->d);
    cr_expect_eq(diag_error_count(m->d), 0);
    expect_lt_nothing_live(label);
    return n;
}

/* The column-major mapping itself: row-major D = epi(A B + bias) with A and B
 * stored either way, a padded D, batches, f32 and f16, on host pointers. */
static void gemm_case(DType t, DType dt, bool a_t, bool b_t, int64_t M, int64_t N, int64_t K, int64_t batch,
                      RtGemmEpilogue epi) {
    size_t es = t == DT_F32 ? 4 : 2, ds = dt == DT_F32 ? 4 : 2;
    int64_t ldd = N + 3, sa = M * K + 5, sb = K * N + 7, sd = M * ldd + 2;
    unsigned char *A = calloc((size_t)(sa * batch), es), *B = calloc((size_t)(sb * batch), es),
                  *D = calloc((size_t)(sd * batch), ds), *bias = calloc((size_t)N, ds);
    float *fa = calloc((size_t)(sa * batch), 4), *fb = calloc((size_t)(sb * batch), 4),
          *fbias = calloc((size_t)N, 4);
    uint64_t rng = 5;
    int64_t dims1[1] = {sa * batch}, dims2[1] = {sb * batch}, dims3[1] = {N};
    Tensor *ta = rt_tensor_new(t, 1, dims1), *tb = rt_tensor_new(t, 1, dims2),
           *tbias = rt_tensor_new(dt, 1, dims3);
    rt_fill_random(ta, &rng, -1, 1);
    rt_fill_random(tb, &rng, -1, 1);
    rt_fill_random(tbias, &rng, -1, 1);
    memcpy(A, ta->data, ta->nbytes);
    memcpy(B, tb->data, tb->nbytes);
    memcpy(bias, tbias->data, tbias->nbytes);
    for (int64_t i = 0; i < sa * batch; i++)
        fa[i] = (float)rt_get(ta, i);
    for (int64_t i = 0; i < sb * batch; i++)
        fb[i] = (float)rt_get(tb, i);
    for (int64_t i = 0; i < N; i++)
        fbias[i] = (float)rt_get(tbias, i);
    RtGemmShape s = {.ab = t,
                     .d = dt,
                     .bias = epi == RT_GEMM_EPI_BIAS || epi == RT_GEMM_EPI_RELU_BIAS ||
                                     epi == RT_GEMM_EPI_GELU_TANH_BIAS
                                 ? dt
                                 : DT_COUNT,
                     .m = M,
                     .n = N,
                     .k = K,
                     .sam = a_t ? 1 : K,
                     .sak = a_t ? M : 1,
                     .sbk = b_t ? 1 : N,
                     .sbn = b_t ? K : 1,
                     .sdm = ldd,
                     .batch = batch,
                     .sab = sa,
                     .sbb = sb,
                     .sdb = sd,
                     .epi = epi,
                     .align = 4};
    Diag *d = diag_create();
    RtBlasHandle *h = NULL;
    RtGemmOp *op = NULL;
    char why[400] = "";
    cr_assert(rt_cublaslt_create(&h, d));
    cr_assert(rt_gemm_op_create(h, &s, 1 << 20, &op, why, sizeof why, d), "%s", all_messages(d));
    cr_assert(op, "no algorithm: %s", why);
    char ws[1024];
    cr_assert(rt_gemm_op_run(h, op, (RtCuDevptr)(uintptr_t)A, (RtCuDevptr)(uintptr_t)B,
                             (RtCuDevptr)(uintptr_t)D, (RtCuDevptr)(uintptr_t)bias, (RtCuDevptr)(uintptr_t)ws,
                             sizeof ws, NULL, d),
              "%s", all_messages(d));
    double err = 0, ref = 0;
    int64_t dd1[1] = {sd * batch};
    Tensor *td = rt_tensor_new(dt, 1, dd1);
    memcpy(td->data, D, td->nbytes);
    for (int64_t b = 0; b < batch; b++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                for (int64_t p = 0; p < K; p++)
                    acc += (double)fa[b * sa + i * s.sam + p * s.sak] * fb[b * sb + p * s.sbk + j * s.sbn];
                if (s.bias != DT_COUNT) acc += fbias[j];
                if (epi == RT_GEMM_EPI_RELU || epi == RT_GEMM_EPI_RELU_BIAS) acc = acc > 0 ? acc : 0;
                if (epi == RT_GEMM_EPI_GELU_TANH || epi == RT_GEMM_EPI_GELU_TANH_BIAS)
                    acc = 0.5 * acc * (1 + tanh(sqrt(2 / M_PI) * (acc + 0.044715 * acc * acc * acc)));
                double got = rt_get(td, b * sd + i * ldd + j);
                err += (got - acc) * (got - acc);
                ref += acc * acc;
            }
    double tol = dt == DT_F32 && t == DT_F32 ? 1e-6 : 2e-3;
    cr_expect(sqrt(err / ref) <= tol, "%s x %s -> %s, A%s B%s, %lldx%lldx%lld batch %lld, %s: relative L2 %g",
              dtype_name(t), dtype_name(t), dtype_name(dt), a_t ? "^T" : "", b_t ? "^T" : "", (long long)M,
              (long long)N, (long long)K, (long long)batch, rt_gemm_epilogue_name(epi), sqrt(err / ref));
    /* the padding between rows and batches is not written */
    for (int64_t b = 0; b < batch; b++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = N; j < ldd; j++)
                cr_expect_eq(rt_get(td, b * sd + i * ldd + j), 0, "padding written");
    cr_expect(rt_gemm_op_destroy(op, d));
    cr_expect(rt_cublaslt_destroy(h, d));
    cr_expect_eq(diag_count(d), 0);
    static const char *const what[] = {"handles", "descs", "layouts", "prefs"};
    for (size_t i = 0; i < sizeof what / sizeof what[0]; i++)
        cr_expect_eq(lt_stat(what[i]), 0, "%s still live", what[i]);
    rt_tensor_free(ta);
    rt_tensor_free(tb);
    rt_tensor_free(tbias);
    rt_tensor_free(td);
    free(A), free(B), free(D), free(bias), free(fa), free(fb), free(fbias);
    diag_destroy(d);
}

Test(cuda_exec, cublaslt_column_major_mapping) {
    if (!fake_cublaslt()) SKIP_UNLESS_CI("no C compiler ('cc') to build the fake cuBLASLt");
    char why[512];
    cr_assert(rt_cublaslt_available(why, sizeof why), "%s", why);
    cr_expect_eq(rt_cublaslt_version(), 130000);
    for (int at = 0; at < 2; at++)
        for (int bt = 0; bt < 2; bt++) {
            gemm_case(DT_F32, DT_F32, at, bt, 5, 7, 3, 1, RT_GEMM_EPI_NONE);
            gemm_case(DT_F32, DT_F32, at, bt, 3, 9, 6, 2, RT_GEMM_EPI_BIAS);
        }
    gemm_case(DT_F32, DT_F32, false, true, 4, 6, 5, 3, RT_GEMM_EPI_RELU_BIAS);
    gemm_case(DT_F32, DT_F32, true, false, 6, 4, 8, 1, RT_GEMM_EPI_GELU_TANH_BIAS);
    gemm_case(DT_F32, DT_F32, false, false, 6, 4, 8, 1, RT_GEMM_EPI_RELU);
    gemm_case(DT_F16, DT_F16, false, true, 7, 5, 9, 2, RT_GEMM_EPI_RELU_BIAS);
    gemm_case(DT_F16, DT_F32, true, true, 7, 5, 9, 1, RT_GEMM_EPI_BIAS);
    gemm_case(DT_BF16, DT_BF16, false, false, 3, 8, 4, 1, RT_GEMM_EPI_GELU_TANH);
    gemm_case(DT_F32, DT_F32, false, true, 1, 6, 5, 1, RT_GEMM_EPI_BIAS); /* one row */
    gemm_case(DT_F32, DT_F32, false, true, 6, 1, 5, 1, RT_GEMM_EPI_BIAS); /* one column */
    cr_expect_eq(lt_stat("compute"), 68, "CUBLAS_COMPUTE_32F, never TF32");

    /* a layout with no contiguous index is not expressible */
    RtGemmShape s = {.ab = DT_F32,
                     .d = DT_F32,
                     .bias = DT_COUNT,
                     .m = 4,
                     .n = 4,
                     .k = 4,
                     .sam = 8,
                     .sak = 2,
                     .sbk = 4,
                     .sbn = 1,
                     .sdm = 4,
                     .batch = 1};
    cr_expect_not(rt_gemm_shape_expressible(&s, why, sizeof why));
    cr_expect(strstr(why, "A (m stride 8, k stride 2) has no contiguous index"), "%s", why);
}

Test(cuda_exec, cublas_mlp_like_the_host) {
    need_lt();
    Model m;
    model_open_with(&m, "examples/mlp.dsg", false, DT_F32, NULL);
    long mm = 0;
    cr_expect_eq(check_cublas(&m, "mlp", 1e-5, 3, 7, &mm), 3, "the three linear layers");
    cr_expect_eq(mm, 6, "three cublasLtMatmul calls a run");
    cr_expect_eq(lt_stat("compute"), 68, "CUBLAS_COMPUTE_32F, never TF32");
    model_close(&m);
}

Test(cuda_exec, cublas_ffn_block) {
    need_lt();
    Model m;
    /* fused: gelu (erf) and the residual add do not fit: both generated */
    model_open_with(&m, "examples/ffn_block.dsg", false, DT_F32, NULL);
    CudaBlasPlan bp;
    cg_cuda_blas_plan(m.g, m.p.kernels[1], &bp);
    cr_expect_not(bp.ok);
    cr_expect(strstr(bp.why, "gelu (erf) has no cuBLASLt epilogue"), "%s", bp.why);
    cr_expect_eq(check_cublas(&m, "ffn_block", 1e-5, 2, 3, NULL), 0);
    model_close(&m);
    /* unfused: the linears alone (+ bias) */
    model_open_with(&m, "examples/ffn_block.dsg", true, DT_F32, NULL);
    cr_expect_geq(check_cublas(&m, "ffn_block unfused", 1e-5, 2, 3, NULL), 1);
    model_close(&m);
}

Test(cuda_exec, cublas_bert_layer) {
    need_lt();
    Model m;
    /* fused, nothing fits: the query and value projections are one kernel of two
     * products, the key projection writes K^T (its bias runs along D's rows), the
     * output projections add the residual, the intermediate one has gelu (erf) */
    model_open_with(&m, "examples/bert_layer.dsg", false, DT_F32, NULL);
    cr_expect_eq(check_cublas(&m, "bert_layer", 1e-5, 1, 2, NULL), 0);
    model_close(&m);
    /* unfused: the six linears and the two batched matmuls of the attention */
    model_open_with(&m, "examples/bert_layer.dsg", true, DT_F32, NULL);
    cr_expect_eq(check_cublas(&m, "bert_layer unfused", 1e-5, 1, 2, NULL), 8);
    model_close(&m);
}

Test(cuda_exec, cublas_f16_and_bf16) {
    need_lt();
    Model m;
    model_open_with(&m, "examples/mlp.dsg", false, DT_F16, NULL);
    /* the first layer converts its f32 input on the fly and the last rounds to f16 into an f32 output */
    cr_expect_eq(check_cublas(&m, "mlp f16", 2e-3, 3, 6, NULL), 1);
    model_close(&m);
    model_open_with(&m, "examples/bert_layer.dsg", true, DT_F16, NULL);
    cr_expect_geq(check_cublas(&m, "bert_layer f16 unfused", 2e-3, 1, 2, NULL), 1);
    model_close(&m);
    model_open_with(&m, "examples/mlp.dsg", false, DT_BF16, NULL);
    cr_expect_eq(check_cublas(&m, "mlp bf16", 1.6e-2, 3, 6, NULL), 1);
    model_close(&m);
}

static const char GELUS[] = "model gelus {\n"
                            "  dim B <= 64\n"
                            "  input x : f32[B, 48]\n"
                            "  param w1 : f32[40, 48]\n"
                            "  param b1 : f32[40]\n"
                            "  param w2 : f32[24, 40]\n"
                            "  param b2 : f32[24]\n"
                            "  let h = gelu(linear(x, w1, b1), approximate=\"tanh\")\n"
                            "  output y = gelu(linear(h, w2, b2))\n"
                            "}\n";

Test(cuda_exec, cublas_gelu_tanh_fits_gelu_erf_does_not) {
    need_lt();
    Model m;
    model_open_with(&m, "gelus.dsg", false, DT_F32, GELUS);
    CudaBlasPlan bp[2];
    cg_cuda_blas_plan(m.g, m.p.kernels[0], &bp[0]);
    cg_cuda_blas_plan(m.g, m.p.kernels[1], &bp[1]);
    cr_expect(bp[0].ok && bp[0].act == CG_BLAS_ACT_GELU_TANH && bp[0].bias >= 0, "%s", bp[0].why);
    cr_expect_not(bp[1].ok);
    cr_expect(strstr(bp[1].why, "gelu (erf)"), "%s", bp[1].why);
    cr_expect_eq(check_cublas(&m, "gelus", 1e-5, 5, 9, NULL), 1);
    model_close(&m);
    model_open_with(&m, "gelus.dsg", false, DT_F16, GELUS);
    check_cublas(&m, "gelus f16", 2e-3, 5, 9, NULL);
    model_close(&m);
}

Test(cuda_exec, cublas_library_missing) {
    need_nvrtc();
    setenv("DSC_LIBCUBLASLT", "/nonexistent/libcublasLt.so.13", 1);
    Model m;
    model_open_with(&m, "examples/mlp.dsg", false, DT_F32, NULL);
    model_data(&m, 2, 1);
    CudaModelOptions mo = {.gemm = CUDA_GEMM_CUBLAS};
    CudaModel *cm = NULL;
    cr_expect_not(rt_cuda_model_load(m.g, &m.p, m.prm, &mo, &cm, m.d));
    cr_expect_null(cm);
    cr_expect(has_error(m.d, "kernel mlp_g0_0 and 2 more: the cuBLASLt GEMM tactic (--gemm=cublas) is not "
                             "available: $DSC_LIBCUBLASLT: /nonexistent/libcublasLt.so.13 not found"),
              "%s", all_messages(m.d));
    expect_nothing_live("cublas without the library");
    diag_clear(m.d);
    /* auto: the generated kernels, silently */
    Hook h = {.g = m.g, .p = &m.p};
    install_hook(&h);
    mo.gemm = CUDA_GEMM_AUTO;
    cr_assert(rt_cuda_model_load(m.g, &m.p, m.prm, &mo, &cm, m.d));
    cr_expect_eq(rt_cuda_model_load_stats(cm)->cublas_kernels, 0);
    expect_same_as_host(&m, cm, "auto without the library");
    cr_expect_eq(diag_count(m.d), 0);
    rt_cuda_model_free(cm, m.d);
    /* DSC_GEMM: the default's source */
    setenv("DSC_GEMM", "cublas", 1);
    cr_expect_not(rt_cuda_model_load(m.g, &m.p, m.prm, NULL, &cm, m.d));
    cr_expect(has_error(m.d, "the cuBLASLt GEMM tactic (--gemm=cublas) is not available"));
    diag_clear(m.d);
    setenv("DSC_GEMM", "fast", 1);
    cr_expect_not(rt_cuda_model_load(m.g, &m.p, m.prm, NULL, &cm, m.d));
    cr_expect(has_error(m.d, "DSC_GEMM must be generated, cublas or auto, got 'fast'"));
    expect_nothing_live("bad DSC_GEMM");
    model_close(&m);
}

Test(cuda_exec, cublas_failures_name_the_kernel) {
    need_lt();
    Model m;
    model_open_with(&m, "examples/mlp.dsg", false, DT_F32, NULL);
    model_data(&m, 2, 1);
    Hook h = {.g = m.g, .p = &m.p};
    install_hook(&h);
    CudaModelOptions mo = {.gemm = CUDA_GEMM_CUBLAS};
    CudaModel *cm = NULL;

    /* the handle cannot be made: the load fails */
    setenv("FAKE_CUBLASLT_FAIL", "cublasLtCreate", 1);
    setenv("FAKE_CUBLASLT_STATUS", "3", 1);
    cr_expect_not(rt_cuda_model_load(m.g, &m.p, m.prm, &mo, &cm, m.d));
    cr_expect(has_error(m.d,
                        "kernel mlp_g0_0 (cuBLASLt): cublasLtCreate failed: CUBLAS_STATUS_ALLOC_FAILED (the "
                        "resource allocation failed)"),
              "%s", all_messages(m.d));
    expect_lt_nothing_live("a failed cublasLtCreate");
    diag_clear(m.d);
    unsetenv("FAKE_CUBLASLT_STATUS");

    /* a matmul fails: the run fails naming the kernel; the next one works */
    setenv("FAKE_CUBLASLT_FAIL", "cublasLtMatmul", 1);
    cr_assert(rt_cuda_model_load(m.g, &m.p, m.prm, &mo, &cm, m.d), "%s", all_messages(m.d));
    Tensor *out[2] = {(Tensor *)1, (Tensor *)1};
    cr_expect_not(rt_cuda_model_run(cm, m.in, m.nin, out, m.d));
    cr_expect(out[0] == NULL && out[1] == NULL);
    cr_expect(
        has_error(m.d, "kernel mlp_g0_0 (cuBLASLt): cublasLtMatmul(f32, M 2 N 256 K 784, batch 1, relu+bias) "
                       "failed: CUBLAS_STATUS_EXECUTION_FAILED (the GPU program failed to execute)"),
        "%s", all_messages(m.d));
    cr_expect_eq(diag_error_count(m.d), 1);
    unsetenv("FAKE_CUBLASLT_FAIL");
    diag_clear(m.d);
    Tensor *got[2] = {0}, *want[2] = {0};
    cr_assert(rt_cuda_model_run(cm, m.in, m.nin, got, m.d), "%s", all_messages(m.d));
    cr_assert(rt_exec_run(m.g, &m.p, m.in, m.nin, m.prm, want, cg_kir_eval, NULL, m.d));
    for (int i = 0; i < 2; i++) {
        cr_expect(rel_l2(got[i], want[i]) <= 1e-5, "after a failed matmul: %g", rel_l2(got[i], want[i]));
        rt_tensor_free(got[i]);
        rt_tensor_free(want[i]);
    }
    rt_cuda_model_free(cm, m.d);
    cr_expect_eq(diag_error_count(m.d), 0);
    expect_lt_nothing_live("after a failed matmul");

    /* a failed heuristic call is an error naming the kernel */
    setenv("FAKE_CUBLASLT_FAIL", "cublasLtMatmulAlgoGetHeuristic", 1);
    cr_assert(rt_cuda_model_load(m.g, &m.p, m.prm, &mo, &cm, m.d));
    cr_expect_not(rt_cuda_model_run(cm, m.in, m.nin, out, m.d));
    cr_expect(has_error(m.d, "kernel mlp_g0_0 (cuBLASLt): cublasLtMatmulAlgoGetHeuristic failed: "
                             "CUBLAS_STATUS_EXECUTION_FAILED"),
              "%s", all_messages(m.d));
    rt_cuda_model_free(cm, m.d);
    expect_lt_nothing_live("after a failed heuristic");
    unsetenv("FAKE_CUBLASLT_FAIL");
    diag_clear(m.d);

    /* no algorithm at these dims: the generated kernels run, with a warning each */
    setenv("FAKE_CUBLASLT_NO_ALGO", "1", 1);
    cr_assert(rt_cuda_model_load(m.g, &m.p, m.prm, &mo, &cm, m.d));
    expect_same_as_host(&m, cm, "no algorithm");
    cr_expect(has_warning(m.d,
                          "kernel mlp_g0_0: cuBLASLt cannot run it at these dims "
                          "(cublasLtMatmulAlgoGetHeuristic has no algorithm for f32 x f32 -> f32, M 2 N 256 "
                          "K 784, batch 1, epilogue relu+bias); its generated code runs"),
              "%s", all_messages(m.d));
    cr_expect_eq(diag_warning_count(m.d), 3);
    cr_expect_str_eq(rt_cuda_model_kernel_tactic(cm, 0), "generated");
    diag_clear(m.d);
    expect_same_as_host(&m, cm, "no algorithm, again");
    cr_expect_eq(diag_count(m.d), 0, "warned once per binding");
    rt_cuda_model_free(cm, m.d);
    expect_lt_nothing_live("no algorithm");
    cr_expect_str_eq(h.err, "");
    model_close(&m);
}

Test(cuda_exec, cli_baseline_cublas) {
    need_lt();
    if (access(DSC, X_OK) != 0) SKIP_UNLESS_CI("no %s", DSC);
    char *out, *err, path[512];
    snprintf(path, sizeof path, "%s/cli_baseline.%d.json", TMP, (int)getpid());
    unlink(path);
    setenv("DSC_CUDA_BENCH", path, 1);
    setenv("DSC_CUDA_BENCH_ITERS", "2", 1);
    cr_expect_eq(dsc(MLP " --baseline=cublas", &out, &err), 0, "%s", err);
    cr_expect(strstr(out, "logits: f32[2,10]"), "%s", out);
    free(out), free(err);
    char *text = slurp(path);
    unlink(path);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    cr_assert(j, "%s", text ? text : "(no file)");
    cr_expect_str_eq(cJSON_GetObjectItem(j, "gemm")->valuestring, "cublas");
    cr_expect_eq(cJSON_GetObjectItem(j, "cublaslt_kernels")->valueint, 3);
    cJSON *ks = cJSON_GetObjectItem(j, "kernels");
    cr_expect_eq(cJSON_GetArraySize(ks), 6, "unfused: three linears, two relus, the softmax");
    int lt = 0;
    for (int i = 0; i < cJSON_GetArraySize(ks); i++) {
        cJSON *k = cJSON_GetArrayItem(ks, i);
        if (strcmp(cJSON_GetObjectItem(k, "tactic")->valuestring, "cublaslt") == 0) {
            lt++;
            cr_expect_str_eq(cJSON_GetObjectItem(k, "class")->valuestring, "gemm_f32");
        }
    }
    cr_expect_eq(lt, 3);
    cJSON_Delete(j);
    free(text);
    unsetenv("DSC_CUDA_BENCH");
    /* usage errors; the library missing */
    cr_expect_eq(dsc(MLP " --baseline=cublas --device cpu", &out, &err), 2);
    cr_expect(strstr(err, "--baseline=cublas runs on the GPU (--device cuda), not 'cpu'"), "%s", err);
    free(out), free(err);
    char dsm[600], args[1024];
    snprintf(dsm, sizeof dsm, "%s/baseline.%d.dsm", TMP, (int)getpid());
    snprintf(args, sizeof args, "compile examples/mlp.dsg --random-weights -o '%s'", dsm);
    cr_expect_eq(dsc(args, &out, &err), 0, "%s", err);
    free(out), free(err);
    snprintf(args, sizeof args, "run '%s' --random-inputs --baseline=cublas", dsm);
    cr_expect_eq(dsc(args, &out, &err), 2);
    cr_expect(strstr(err, "--baseline=cublas needs DSG source (it runs the passes without fusion)"), "%s",
              err);
    free(out), free(err);
    unlink(dsm);
    cr_expect_eq(dsc(MLP " --gemm=fast", &out, &err), 2);
    cr_expect(strstr(err, "--gemm must be auto, generated or cublas, got 'fast'"), "%s", err);
    free(out), free(err);
    setenv("DSC_LIBCUBLASLT", "/nonexistent/libcublasLt.so", 1);
    cr_expect_eq(dsc(MLP " --device cuda --gemm=cublas", &out, &err), 1);
    cr_expect(strstr(err, "the cuBLASLt GEMM tactic (--gemm=cublas) is not available: $DSC_LIBCUBLASLT: "
                          "/nonexistent/libcublasLt.so not found"),
              "%s", err);
    free(out), free(err);
    cr_expect_eq(dsc(MLP " --device cuda --gemm=auto", &out, &err), 0, "%s", err);
    free(out), free(err);
}
