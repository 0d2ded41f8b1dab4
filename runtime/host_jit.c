/* The host backend (see host_jit.h).
 *
 * From kernel to function pointer.  A kernel is rendered (codegen/llvm) into
 * a fresh LLVM context and module that carries the host's triple and data
 * layout, verified, and printed; that text is the heart of the cache key.
 * The module is optimized with the new pass manager (LLVMRunPasses,
 * "default<O3>") for a TargetMachine made for the CPU found at run time
 * (LLVMGetHostCPUName / LLVMGetHostCPUFeatures: AVX2, AVX-512, F16C, ...),
 * code-generated to an ELF object in memory by the same TargetMachine, and
 * handed to ORC LLJIT (LLVMOrcLLJITAddObjectFile), which links it and
 * resolves libm (powf, fmodf) from the process.  Kernels are independent, so
 * rt_host_prepare compiles a program's kernels in parallel on the thread
 * pool, each in its own LLVMContext, and only the linking into the JIT is
 * serialised.
 *
 * What is cached, and why objects.  The on-disk cache (runtime/kcache.c,
 * shared with CUDA) holds the relocatable object file of each kernel: LLVM
 * 16's C API has no ObjectCache hook for LLJIT, but producing the object
 * ourselves (the TargetMachine emits it) and adding it with
 * LLVMOrcLLJITAddObjectFile gives the same effect, and a hit skips both the
 * optimizer and code generation -- all that is left is linking.  The key
 * (kind "host-object") is the SHA-256 of these fields: the format version
 * below, the LLVM version (LLVMGetVersion: the optimizer and code
 * generator), the target triple, the CPU name and its feature string, the
 * pass pipeline, the code generator's settings, and the unoptimized IR
 * text, in which the kernel's function has a fixed name so that identical
 * kernels of different models share an entry.  The object defines the symbol dsc_<first 32 hex digits of the key>,
 * so identical kernels also share one copy in the JIT.  An entry with a bad
 * checksum is reported by the cache, removed, and rebuilt here; DSC_CACHE=0
 * (or HostOptions.no_cache) turns the cache off.
 *
 * Variants.  The renderer marks buffers `noalias` unless told which share
 * memory (render.c), so a kernel's code depends on how its buffers alias at
 * a launch: the launcher computes the classes from the pointers and sizes
 * (equal pointers where one buffer is written: one class; any other overlap
 * with a written buffer: no `noalias` at all) and looks the kernel up by a
 * 128-bit structural hash of its IR plus that aliasing.  Looking up by hash
 * rather than by Kernel pointer keeps a backend correct across programs
 * whose arenas reuse addresses; hashing a kernel costs about a microsecond.
 *
 * Launch.  The points [0, total) go to rt_parallel_for in chunks of at
 * least `grain` points, grain chosen from the kernel's flops + bytes
 * estimate so that a chunk is worth about 64K of those units (tens of
 * microseconds): small kernels run on the calling thread alone. */
#include "host_jit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../ir/trap.h"
#include "kcache.h"

#ifdef DSC_WITH_LLVM

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "../codegen/llvm/render.h"

enum {
    HOST_FORMAT = 2,      /* bump when the ABI or the way objects are made changes */
    GRAIN_WORK = 1 << 16, /* flops + bytes per chunk */
};
static const char PIPELINE[] = "default<O3>";
static const char CODEGEN[] = "O3 pic small elf-object"; /* what target_machine() and the emitter use */

typedef void (*KernelFn)(void *const *bufs, const int64_t *dims, int64_t begin, int64_t end,
                         KTrapRecord *trap);

/* ---- hashing and a small hash table -------------------------------------------- */

typedef struct {
    uint64_t a, b;
} Hash;

static void mix(Hash *h, uint64_t v) {
    h->a = (h->a ^ v) * 0x100000001b3ull;
    h->a ^= h->a >> 29;
    h->b = (h->b + v + 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
    h->b ^= h->b >> 31;
}

static void hash_expr(Hash *h, const KExpr *e) {
    if (!e) {
        mix(h, 0x5eed);
        return;
    }
    mix(h, (uint64_t)e->kind << 32 | (uint64_t)e->type << 16 | (uint64_t)e->op);
    switch (e->kind) {
    case KE_CONST:
        if (e->type == KT_F32) {
            uint64_t bits;
            memcpy(&bits, &e->f, sizeof bits);
            mix(h, bits);
        } else {
            mix(h, (uint64_t)e->i);
        }
        return;
    case KE_DIM:
    case KE_VAR:
    case KE_LOCAL: mix(h, (uint64_t)e->id); return;
    case KE_LOAD:
    case KE_TABLE: mix(h, (uint64_t)e->id); break;
    case KE_UN: mix(h, (uint64_t)e->dt); break;
    default: break;
    }
    hash_expr(h, e->a);
    hash_expr(h, e->b);
    hash_expr(h, e->c);
}

static void hash_stmts(Hash *h, const KStmt *s) {
    for (; s; s = s->next) {
        mix(h, (uint64_t)s->kind << 32 | (uint32_t)s->id);
        if (s->kind == KS_FOR) hash_expr(h, s->extent);
        if (s->kind == KS_STORE) hash_expr(h, s->index);
        if (s->kind != KS_FOR) hash_expr(h, s->value);
        if (s->kind == KS_FOR || s->kind == KS_IF) hash_stmts(h, s->body);
        if (s->kind == KS_TRAP) {
            mix(h, (uint64_t)s->node);
            for (int i = 0; i < KTRAP_NARGS; i++)
                hash_expr(h, s->arg[i]);
        }
    }
    mix(h, 0xb10c);
}

/* The kernel's structure and the buffer aliasing it is compiled for. */
static Hash variant_hash(const Kernel *k, const int *alias, bool overlap) {
    Hash h = {0xcbf29ce484222325ull, 0x243f6a8885a308d3ull};
    mix(&h, (uint64_t)k->nbufs);
    for (int i = 0; i < k->nbufs; i++) mix(&h, (uint64_t)k->bufs[i].dtype << 32 | (uint32_t)(alias ? alias[i] : i));
    mix(&h, overlap);
    mix(&h, (uint64_t)k->nlocals);
    for (int i = 0; i < k->nlocals; i++) mix(&h, (uint64_t)k->locals[i]);
    mix(&h, (uint64_t)k->nvars << 32 | (uint32_t)k->npar);
    for (int i = 0; i < k->npar; i++) hash_expr(&h, k->par_extent[i]);
    hash_stmts(&h, k->body);
    for (int t = 0; t < k->ntables; t++) { /* a sparsity pattern is part of the code */
        mix(&h, (uint64_t)k->tables[t].n);
        for (int i = 0; i < k->tables[t].n; i++) mix(&h, (uint32_t)k->tables[t].data[i]);
    }
    return h;
}

typedef struct {
    Hash key;
    void *val;
    bool used;
} Slot;

typedef struct {
    Slot *slots;
    size_t cap, n;
} Table;

static void *table_get(const Table *t, Hash key) {
    if (!t->cap) return NULL;
    for (size_t i = key.a & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        const Slot *s = &t->slots[i];
        if (!s->used) return NULL;
        if (s->key.a == key.a && s->key.b == key.b) return s->val;
    }
}

static bool table_put(Table *t, Hash key, void *val) {
    if (2 * (t->n + 1) > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        Slot *slots = calloc(cap, sizeof *slots);
        if (!slots) return false;
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->slots[i].used) continue;
            size_t j = t->slots[i].key.a & (cap - 1);
            while (slots[j].used) j = (j + 1) & (cap - 1);
            slots[j] = t->slots[i];
        }
        free(t->slots);
        t->slots = slots;
        t->cap = cap;
    }
    size_t i = key.a & (t->cap - 1);
    while (t->slots[i].used && !(t->slots[i].key.a == key.a && t->slots[i].key.b == key.b)) i = (i + 1) & (t->cap - 1);
    if (!t->slots[i].used) t->n++;
    t->slots[i] = (Slot){key, val, true};
    return true;
}

/* ---- the backend ------------------------------------------------------------------ */

struct HostBackend {
    ThreadPool *pool;
    KCache *cache;
    LLVMOrcLLJITRef jit;
    LLVMOrcJITDylibRef jd;
    LLVMTargetRef target;
    char *triple, *cpu, *features, *datalayout;
    char version[32];
    char describe[256];
    bool f16c;
    pthread_mutex_t mu; /* the tables, the JIT, the stats */
    Table variants;     /* variant hash -> KernelFn */
    Table symbols;      /* code key -> KernelFn */
    HostStats stats;
    int cache_corrupt0, cache_stores0;
};

static pthread_once_t llvm_once = PTHREAD_ONCE_INIT;
static bool llvm_ok;

static void init_llvm(void) { llvm_ok = !LLVMInitializeNativeTarget() && !LLVMInitializeNativeAsmPrinter(); }

bool rt_host_available(void) { return true; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reports an LLVMErrorRef (consuming it). */
static void llvm_error(Diag *d, const char *what, LLVMErrorRef e) {
    char *m = LLVMGetErrorMessage(e);
    diag_error(d, (Loc){0}, "host backend: %s: %s", what, m);
    LLVMDisposeErrorMessage(m);
}

static char *take_llvm_string(char *s) {
    char *copy = strdup(s ? s : "");
    LLVMDisposeMessage(s);
    return copy;
}

static bool is_x86(const char *triple) {
    return strncmp(triple, "x86_64", 6) == 0 || strncmp(triple, "i386", 4) == 0 || strncmp(triple, "i686", 4) == 0;
}

HostBackend *rt_host_create(const HostOptions *opt, Diag *d) {
    static const HostOptions none = {0};
    if (!opt) opt = &none;
    pthread_once(&llvm_once, init_llvm);
    if (!llvm_ok) {
        diag_error(d, (Loc){0}, "host backend: LLVM has no code generator for this machine");
        return NULL;
    }
    HostBackend *hb = calloc(1, sizeof *hb);
    if (!hb) return NULL;
    pthread_mutex_init(&hb->mu, NULL);
    hb->pool = opt->pool ? opt->pool : rt_threadpool_global();
    LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
    LLVMErrorRef e = LLVMOrcCreateLLJIT(&hb->jit, jb);
    if (e) {
        hb->jit = NULL;
        llvm_error(d, "cannot create the JIT", e);
        rt_host_destroy(hb);
        return NULL;
    }
    hb->jd = LLVMOrcLLJITGetMainJITDylib(hb->jit);
    LLVMOrcDefinitionGeneratorRef gen;
    e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(hb->jit), NULL, NULL);
    if (e) {
        llvm_error(d, "cannot search the process for symbols", e);
        rt_host_destroy(hb);
        return NULL;
    }
    LLVMOrcJITDylibAddGenerator(hb->jd, gen);
    hb->triple = strdup(LLVMOrcLLJITGetTripleString(hb->jit));
    hb->cpu = take_llvm_string(LLVMGetHostCPUName());
    hb->features = take_llvm_string(LLVMGetHostCPUFeatures());
    if (opt->no_f16c) {
        char *f = strstr(hb->features, "+f16c");
        if (f) f[0] = '-';
    }
    hb->f16c = is_x86(hb->triple) ? strstr(hb->features, "+f16c") != NULL : strncmp(hb->triple, "aarch64", 7) == 0;
    char *err = NULL;
    if (LLVMGetTargetFromTriple(hb->triple, &hb->target, &err)) {
        diag_error(d, (Loc){0}, "host backend: no target for %s: %s", hb->triple, err ? err : "?");
        LLVMDisposeMessage(err);
        rt_host_destroy(hb);
        return NULL;
    }
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(hb->target, hb->triple, hb->cpu, hb->features,
                                                      LLVMCodeGenLevelAggressive, LLVMRelocPIC, LLVMCodeModelSmall);
    if (!tm) {
        diag_error(d, (Loc){0}, "host backend: cannot make a target machine for %s (%s)", hb->triple, hb->cpu);
        rt_host_destroy(hb);
        return NULL;
    }
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
    hb->datalayout = take_llvm_string(LLVMCopyStringRepOfTargetData(dl));
    LLVMDisposeTargetData(dl);
    LLVMDisposeTargetMachine(tm);
    unsigned maj, min, pat;
    LLVMGetVersion(&maj, &min, &pat);
    snprintf(hb->version, sizeof hb->version, "%u.%u.%u", maj, min, pat);
    const char *width = strstr(hb->features, "+avx512f") ? "avx512" : strstr(hb->features, "+avx2") ? "avx2"
                        : strstr(hb->features, "+avx")    ? "avx"
                                                          : "baseline";
    snprintf(hb->describe, sizeof hb->describe, "%s, cpu %s (%s%s), LLVM %s, %d threads", hb->triple, hb->cpu, width,
             hb->f16c ? ", f16c" : "", hb->version, rt_threadpool_size(hb->pool));
    if (!opt->no_cache) {
        hb->cache = rt_kcache_open(opt->cache_dir, d);
        KCacheStats cs = rt_kcache_stats(hb->cache);
        hb->cache_corrupt0 = cs.corrupt;
        hb->cache_stores0 = cs.stores;
    }
    return hb;
}

void rt_host_destroy(HostBackend *hb) {
    if (!hb) return;
    if (hb->jit) {
        LLVMErrorRef e = LLVMOrcDisposeLLJIT(hb->jit);
        if (e) LLVMConsumeError(e);
    }
    rt_kcache_close(hb->cache);
    free(hb->variants.slots);
    free(hb->symbols.slots);
    free(hb->triple);
    free(hb->cpu);
    free(hb->features);
    free(hb->datalayout);
    pthread_mutex_destroy(&hb->mu);
    free(hb);
}

const char *rt_host_describe(const HostBackend *hb) { return hb ? hb->describe : "host backend not built"; }

HostStats rt_host_stats(const HostBackend *hb) {
    HostStats s = {0};
    if (!hb) return s;
    pthread_mutex_lock((pthread_mutex_t *)&hb->mu);
    s = hb->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&hb->mu);
    KCacheStats cs = rt_kcache_stats(hb->cache);
    s.cache_corrupt = cs.corrupt - hb->cache_corrupt0;
    s.cache_stores = cs.stores - hb->cache_stores0;
    return s;
}

/* ---- compiling one kernel variant ----------------------------------------------------- */

typedef struct {
    HostBackend *hb;
    const Graph *g;
    const Kernel *k;
    int *alias; /* NULL: all buffers distinct */
    bool overlap;
    Hash variant;
    /* results */
    bool ok, compiled, hit;
    Hash code;
    char sym[40];
    void *obj;
    size_t objsize;
    Diag *d;
} Job;

/* LLVM's diagnostics (remarks such as "loop not vectorized" and warnings) go
 * nowhere: failures come back through the calls' own results.  Without a
 * handler LLVM prints them, and exits on an error. */
static void quiet(LLVMDiagnosticInfoRef di, void *ctx) {
    (void)di;
    (void)ctx;
}

static LLVMContextRef new_context(void) {
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMContextSetDiagnosticHandler(ctx, quiet, NULL);
    return ctx;
}

static LLVMModuleRef new_module(HostBackend *hb, LLVMContextRef ctx) {
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext("dsc", ctx);
    LLVMSetTarget(m, hb->triple);
    LLVMSetDataLayout(m, hb->datalayout);
    return m;
}

/* Renders and verifies; returns the kernel function or NULL (reported). */
static LLVMValueRef render(HostBackend *hb, LLVMModuleRef m, const Graph *g, const Kernel *k, const int *alias,
                           bool overlap, Diag *d) {
    CgLlvmOptions o = {.f16c = hb->f16c, .alias = alias, .overlap = overlap};
    char err[256];
    LLVMValueRef fn = cg_llvm_render(m, g, k, "dsc_kernel", &o, err, sizeof err);
    if (!fn) {
        diag_error(d, loc_file(g->file), "host backend: kernel %s: %s", k->name, err);
        return NULL;
    }
    char *msg = NULL;
    if (LLVMVerifyModule(m, LLVMReturnStatusAction, &msg)) {
        diag_error(d, loc_file(g->file), "host backend: kernel %s: invalid LLVM IR (a renderer bug): %s", k->name,
                   msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return NULL;
    }
    LLVMDisposeMessage(msg);
    return fn;
}

static bool optimize(HostBackend *hb, LLVMModuleRef m, LLVMTargetMachineRef tm, Diag *d) {
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(po, 1);
    LLVMPassBuilderOptionsSetSLPVectorization(po, 1);
    LLVMPassBuilderOptionsSetLoopInterleaving(po, 1);
    LLVMPassBuilderOptionsSetLoopUnrolling(po, 1);
    LLVMErrorRef e = LLVMRunPasses(m, PIPELINE, tm, po);
    LLVMDisposePassBuilderOptions(po);
    (void)hb;
    if (e) {
        llvm_error(d, "optimizing", e);
        return false;
    }
    return true;
}

static LLVMTargetMachineRef target_machine(HostBackend *hb) {
    return LLVMCreateTargetMachine(hb->target, hb->triple, hb->cpu, hb->features, LLVMCodeGenLevelAggressive,
                                   LLVMRelocPIC, LLVMCodeModelSmall);
}

static bool symbol_known(HostBackend *hb, Hash code) {
    pthread_mutex_lock(&hb->mu);
    bool known = table_get(&hb->symbols, code) != NULL;
    pthread_mutex_unlock(&hb->mu);
    return known;
}

/* Everything up to the object file; thread-safe (touches only the job, the
 * cache and, to read, the symbol table). */
static void compile_job(Job *j) {
    HostBackend *hb = j->hb;
    LLVMContextRef ctx = new_context();
    LLVMModuleRef m = new_module(hb, ctx);
    LLVMValueRef fn = render(hb, m, j->g, j->k, j->alias, j->overlap, j->d);
    if (!fn) goto out;
    char *text = LLVMPrintModuleToString(m);
    KCacheKey key;
    rt_kcache_key_begin(&key, "host-object");
    rt_kcache_key_add_int(&key, "format", HOST_FORMAT);
    rt_kcache_key_add_str(&key, "llvm", hb->version);
    rt_kcache_key_add_str(&key, "triple", hb->triple);
    rt_kcache_key_add_str(&key, "cpu", hb->cpu);
    rt_kcache_key_add_str(&key, "features", hb->features);
    rt_kcache_key_add_str(&key, "pipeline", PIPELINE);
    rt_kcache_key_add_str(&key, "codegen", CODEGEN);
    rt_kcache_key_add_str(&key, "ir", text);
    rt_kcache_key_finish(&key);
    LLVMDisposeMessage(text);
    snprintf(j->sym, sizeof j->sym, "dsc_%.32s", key.hex);
    memcpy(&j->code.a, key.digest, 8);
    memcpy(&j->code.b, key.digest + 8, 8);
    if (symbol_known(hb, j->code)) {
        j->ok = true;
        goto out;
    }
    if (rt_kcache_get(hb->cache, &key, &j->obj, &j->objsize, j->d)) {
        j->hit = j->ok = true;
        goto out;
    }
    LLVMSetValueName2(fn, j->sym, strlen(j->sym));
    LLVMTargetMachineRef tm = target_machine(hb);
    if (!tm) {
        diag_error(j->d, (Loc){0}, "host backend: cannot make a target machine");
        goto out;
    }
    if (optimize(hb, m, tm, j->d)) {
        char *err = NULL;
        LLVMMemoryBufferRef buf;
        if (LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMObjectFile, &err, &buf)) {
            diag_error(j->d, (Loc){0}, "host backend: kernel %s: code generation failed: %s", j->k->name,
                       err ? err : "?");
            LLVMDisposeMessage(err);
        } else {
            j->objsize = LLVMGetBufferSize(buf);
            j->obj = malloc(j->objsize ? j->objsize : 1);
            if (j->obj) {
                memcpy(j->obj, LLVMGetBufferStart(buf), j->objsize);
                rt_kcache_put(hb->cache, &key, j->obj, j->objsize, j->d);
                j->compiled = j->ok = true;
            }
            LLVMDisposeMemoryBuffer(buf);
        }
    }
    LLVMDisposeTargetMachine(tm);
out:
    LLVMDisposeModule(m);
    LLVMContextDispose(ctx);
}

/* Links the job's object (if its code is new) and records the variant; under hb->mu. */
static KernelFn finish_job(Job *j, Diag *d) {
    HostBackend *hb = j->hb;
    if (!j->ok) return NULL;
    KernelFn fn = (KernelFn)table_get(&hb->symbols, j->code);
    if (fn) {
        if (j->obj) hb->stats.shared++;
    } else if (j->obj) {
        LLVMMemoryBufferRef mb = LLVMCreateMemoryBufferWithMemoryRangeCopy(j->obj, j->objsize, j->sym);
        LLVMErrorRef e = LLVMOrcLLJITAddObjectFile(hb->jit, hb->jd, mb);
        if (e) {
            llvm_error(d, "adding a kernel object", e);
            return NULL;
        }
        LLVMOrcExecutorAddress addr = 0;
        e = LLVMOrcLLJITLookup(hb->jit, &addr, j->sym);
        if (e) {
            llvm_error(d, "linking a kernel", e);
            return NULL;
        }
        fn = (KernelFn)(uintptr_t)addr;
        table_put(&hb->symbols, j->code, (void *)(uintptr_t)addr);
        hb->stats.compiled += j->compiled;
        hb->stats.cache_hits += j->hit;
    } else {
        diag_error(d, (Loc){0}, "host backend: kernel %s: lost its code", j->k->name);
        return NULL;
    }
    table_put(&hb->variants, j->variant, (void *)(uintptr_t)fn);
    hb->stats.kernels++;
    return fn;
}

static void merge_diag(Diag *to, const Diag *from) {
    for (int i = 0; i < diag_count(from); i++) {
        DiagLevel level;
        Loc loc;
        const char *msg = diag_message(from, i, &level, &loc);
        diag_report(to, level, loc, "%s", msg);
    }
}

static void job_free(Job *j) {
    free(j->obj);
    free(j->alias);
    diag_destroy(j->d);
}

/* ---- aliasing ----------------------------------------------------------------------- */

/* Classes of buffers that share a pointer, where the class has a written
 * buffer (read-only buffers may alias freely).  NULL when all are distinct. */
static int *alias_classes(const Kernel *k, const void *const *ptrs, const int64_t *keys) {
    int nb = k->nbufs;
    int *rep = NULL;
    for (int i = 0; i < nb; i++) {
        int r = i;
        for (int j = 0; j < i && r == i; j++) {
            bool same = ptrs ? ptrs[i] == ptrs[j] : keys[i] >= 0 && keys[i] == keys[j];
            if (same) r = j;
        }
        if (r == i) continue;
        bool written = false;
        for (int j = 0; j < nb; j++) {
            bool same = ptrs ? ptrs[i] == ptrs[j] : keys[i] == keys[j];
            if (same && k->bufs[j].written) written = true;
        }
        if (!written) continue;
        if (!rep) {
            rep = malloc(sizeof(int) * (size_t)nb);
            if (!rep) return NULL;
            for (int j = 0; j < nb; j++) rep[j] = j;
        }
        rep[i] = rep[r];
    }
    return rep;
}

static int64_t buffer_bytes(const Graph *g, const KBuf *b, const int64_t *dims) {
    int64_t n = dtype_size(b->dtype);
    for (int i = 0; i < b->node->type.rank; i++) {
        int64_t v;
        if (!dim_eval(g->dims, b->node->type.dim[i], dims, &v, NULL, 0) || v < 0) return -1;
        if (__builtin_mul_overflow(n, v, &n)) return -1;
    }
    return n;
}

/* Whether a written buffer overlaps another buffer other than exactly. */
static bool partial_overlap(const Graph *g, const Kernel *k, void *const *bufs, const int64_t *dims) {
    int nb = k->nbufs;
    for (int i = 0; i < nb; i++) {
        if (!k->bufs[i].written) continue;
        int64_t si = buffer_bytes(g, &k->bufs[i], dims);
        for (int j = 0; j < nb; j++) {
            if (j == i || bufs[i] == bufs[j]) continue;
            int64_t sj = buffer_bytes(g, &k->bufs[j], dims);
            if (si < 0 || sj < 0) return true; /* unknown: be safe */
            uintptr_t a = (uintptr_t)bufs[i], b = (uintptr_t)bufs[j];
            if (si && sj && a < b + (uintptr_t)sj && b < a + (uintptr_t)si) return true;
        }
    }
    return false;
}

/* ---- launching ----------------------------------------------------------------------- */

/* A dims-only integer expression (a parallel extent). */
static bool eval_int(const KExpr *e, const int64_t *dims, int ndims, int64_t *out) {
    int64_t a, b, c;
    if (!e) return false;
    switch (e->kind) {
    case KE_CONST: *out = e->type == KT_F32 ? (int64_t)e->f : e->i; return true;
    case KE_DIM:
        if (e->id < 0 || e->id >= ndims) return false;
        *out = dims[e->id];
        return true;
    case KE_UN:
        if (!eval_int(e->a, dims, ndims, &a)) return false;
        switch (e->op) {
        case KO_NEG: *out = (int64_t)(0 - (uint64_t)a); return true;
        case KO_ABS: *out = a < 0 ? (int64_t)(0 - (uint64_t)a) : a; return true;
        case KO_NOT: *out = !a; return true;
        case KO_CAST:
        case KO_WRAP: *out = a; return true;
        default: return false;
        }
    case KE_BIN:
        if (!eval_int(e->a, dims, ndims, &a) || !eval_int(e->b, dims, ndims, &b)) return false;
        switch (e->op) {
        case KO_ADD: *out = (int64_t)((uint64_t)a + (uint64_t)b); return true;
        case KO_SUB: *out = (int64_t)((uint64_t)a - (uint64_t)b); return true;
        case KO_MUL: *out = (int64_t)((uint64_t)a * (uint64_t)b); return true;
        case KO_DIV: *out = b == 0 || b == -1 ? (b ? (int64_t)(0 - (uint64_t)a) : 0) : a / b; return true;
        case KO_MOD: *out = b == 0 || b == -1 ? 0 : a % b; return true;
        case KO_MAX: *out = a > b ? a : b; return true;
        case KO_MIN: *out = a < b ? a : b; return true;
        case KO_LT: *out = a < b; return true;
        case KO_GT: *out = a > b; return true;
        case KO_LE: *out = a <= b; return true;
        case KO_GE: *out = a >= b; return true;
        case KO_EQ: *out = a == b; return true;
        case KO_NE: *out = a != b; return true;
        case KO_AND: *out = a && b; return true;
        case KO_OR: *out = a || b; return true;
        default: return false;
        }
    case KE_SELECT:
        if (!eval_int(e->a, dims, ndims, &c) || !eval_int(e->b, dims, ndims, &a) ||
            !eval_int(e->c, dims, ndims, &b))
            return false;
        *out = c ? a : b;
        return true;
    default: return false;
    }
}

static KernelFn find_variant(HostBackend *hb, Hash v) {
    pthread_mutex_lock(&hb->mu);
    KernelFn fn = (KernelFn)table_get(&hb->variants, v);
    pthread_mutex_unlock(&hb->mu);
    return fn;
}

static KernelFn compile_now(HostBackend *hb, const Graph *g, const Kernel *k, int *alias, bool overlap, Hash v,
                            Diag *d) {
    double t0 = now_s();
    Job j = {.hb = hb, .g = g, .k = k, .alias = alias, .overlap = overlap, .variant = v, .d = diag_create()};
    compile_job(&j);
    merge_diag(d, j.d);
    pthread_mutex_lock(&hb->mu);
    KernelFn fn = finish_job(&j, d);
    hb->stats.compile_s += now_s() - t0;
    pthread_mutex_unlock(&hb->mu);
    j.alias = NULL; /* the caller's */
    job_free(&j);
    return fn;
}

typedef struct {
    KernelFn fn;
    void *const *bufs;
    const int64_t *dims;
    KTrapRecord *trap;
} RunCtx;

static void run_range(void *ctx, int64_t b, int64_t e) {
    RunCtx *c = ctx;
    c->fn(c->bufs, c->dims, b, e, c->trap);
}

bool rt_host_launch(void *ctx, const Graph *g, const Kernel *k, void *const *bufs, const int64_t *dims, Diag *d) {
    HostBackend *hb = ctx;
    int ndims = dim_sym_count(g->dims);
    int64_t total = 1;
    for (int i = 0; i < k->npar; i++) {
        int64_t e;
        if (!eval_int(k->par_extent[i], dims, ndims, &e)) {
            diag_error(d, loc_file(g->file), "host backend: kernel %s: cannot evaluate its parallel extents", k->name);
            return false;
        }
        if (e <= 0) return true; /* no points */
        if (__builtin_mul_overflow(total, e, &total)) {
            diag_error(d, loc_file(g->file), "host backend: kernel %s: too many points", k->name);
            return false;
        }
    }
    bool overlap = partial_overlap(g, k, bufs, dims);
    int *alias = overlap ? NULL : alias_classes(k, (const void *const *)bufs, NULL);
    Hash v = variant_hash(k, alias, overlap);
    KernelFn fn = find_variant(hb, v);
    if (!fn) fn = compile_now(hb, g, k, alias, overlap, v, d);
    free(alias);
    if (!fn) return false;
    int64_t work = 0, x;
    if (k->flops != DIM_INVALID && dim_eval(g->dims, k->flops, dims, &x, NULL, 0) && x > 0) work += x;
    if (k->bytes != DIM_INVALID && dim_eval(g->dims, k->bytes, dims, &x, NULL, 0) && x > 0) work += x;
    int64_t per_point = work / total + 1, grain = GRAIN_WORK / per_point;
    KTrapRecord trap = {0};
    RunCtx rc = {fn, bufs, dims, &trap};
    rt_parallel_for(hb->pool, total, grain < 1 ? 1 : grain, run_range, &rc);
    return ir_trap_report(g, &trap, d); /* a run-time error of the model (ir/trap.h) */
}

/* ---- ahead of time -------------------------------------------------------------------- */

static void compile_task(void *ctx, int64_t b, int64_t e) {
    Job *jobs = ctx;
    for (int64_t i = b; i < e; i++) compile_job(&jobs[i]);
}

bool rt_host_prepare(HostBackend *hb, const Graph *g, const KProgram *p, Diag *d) {
    double t0 = now_s();
    Job *jobs = calloc((size_t)p->nkernels + 1, sizeof *jobs);
    if (!jobs) return false;
    int njobs = 0;
    for (int i = 0; i < p->nkernels; i++) {
        const Kernel *k = p->kernels[i];
        /* the aliasing the plan implies: planned values in one buffer share a pointer */
        int64_t *keys = malloc(sizeof(int64_t) * ((size_t)k->nbufs + 1));
        if (!keys) break;
        for (int b = 0; b < k->nbufs; b++)
            keys[b] = k->bufs[b].role == KB_PLANNED && k->bufs[b].node->ann.buffer >= 0 ? k->bufs[b].node->ann.buffer
                                                                                         : -1 - b;
        int *alias = alias_classes(k, NULL, keys);
        free(keys);
        Hash v = variant_hash(k, alias, false);
        bool dup = find_variant(hb, v) != NULL;
        for (int j = 0; j < njobs && !dup; j++) dup = jobs[j].variant.a == v.a && jobs[j].variant.b == v.b;
        if (dup) {
            free(alias);
            continue;
        }
        jobs[njobs++] = (Job){.hb = hb, .g = g, .k = k, .alias = alias, .variant = v, .d = diag_create()};
    }
    rt_parallel_for(hb->pool, njobs, 1, compile_task, jobs);
    bool ok = true;
    pthread_mutex_lock(&hb->mu);
    for (int j = 0; j < njobs; j++) {
        merge_diag(d, jobs[j].d);
        if (!finish_job(&jobs[j], d)) ok = false;
        job_free(&jobs[j]);
    }
    hb->stats.compile_s += now_s() - t0;
    pthread_mutex_unlock(&hb->mu);
    free(jobs);
    return ok;
}

char *rt_host_kernel_ir(HostBackend *hb, const Graph *g, const Kernel *k, bool optimized, Diag *d) {
    LLVMContextRef ctx = new_context();
    LLVMModuleRef m = new_module(hb, ctx);
    char *text = NULL;
    if (render(hb, m, g, k, NULL, false, d)) {
        bool ok = true;
        if (optimized) {
            LLVMTargetMachineRef tm = target_machine(hb);
            ok = tm && optimize(hb, m, tm, d);
            if (tm) LLVMDisposeTargetMachine(tm);
        }
        if (ok) text = take_llvm_string(LLVMPrintModuleToString(m));
    }
    LLVMDisposeModule(m);
    LLVMContextDispose(ctx);
    return text;
}

#else /* no LLVM: the backend reports that it is not built */

bool rt_host_available(void) { return false; }

HostBackend *rt_host_create(const HostOptions *opt, Diag *d) {
    (void)opt;
    diag_error(d, (Loc){0}, "the host backend is not built (dsc was configured with -DDSC_WITH_LLVM=OFF)");
    return NULL;
}

void rt_host_destroy(HostBackend *hb) { (void)hb; }

bool rt_host_prepare(HostBackend *hb, const Graph *g, const KProgram *p, Diag *d) {
    (void)hb;
    (void)g;
    (void)p;
    diag_error(d, (Loc){0}, "the host backend is not built (dsc was configured with -DDSC_WITH_LLVM=OFF)");
    return false;
}

bool rt_host_launch(void *ctx, const Graph *g, const Kernel *k, void *const *bufs, const int64_t *dims, Diag *d) {
    (void)ctx;
    (void)g;
    (void)k;
    (void)bufs;
    (void)dims;
    diag_error(d, (Loc){0}, "the host backend is not built (dsc was configured with -DDSC_WITH_LLVM=OFF)");
    return false;
}

HostStats rt_host_stats(const HostBackend *hb) {
    (void)hb;
    return (HostStats){0};
}

const char *rt_host_describe(const HostBackend *hb) {
    (void)hb;
    return "host backend not built";
}

char *rt_host_kernel_ir(HostBackend *hb, const Graph *g, const Kernel *k, bool optimized, Diag *d) {
    (void)hb;
    (void)g;
    (void)k;
    (void)optimized;
    diag_error(d, (Loc){0}, "the host backend is not built (dsc was configured with -DDSC_WITH_LLVM=OFF)");
    return NULL;
}

#endif
