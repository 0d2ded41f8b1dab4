/* The generated CUDA C, run: every kernel of every example (at f32, f16,
 * bf16 and int8) and of seeded random graphs, rendered for sm_75 (no tensor
 * cores), sm_86 and sm_90 (mma.sync on 4 and on 8 warps; the examples) and
 * sm_80 (the random graphs), each with its hardware-database configuration
 * as a load takes it, compiled by the host C++ compiler
 * against the CPU emulator of tests/cuda_emu/emu.h (blocks, threads as
 * fibers, __syncthreads, warp shuffles, the m16n8k16 tile with the PTX
 * fragment layouts) and launched on fresh random buffers; each written
 * buffer must match the kernel-IR evaluator (codegen/kir_eval.c, itself
 * checked against the interpreter and numpy) run on the same buffers, and
 * the buffers a kernel only reads must be left as they were.
 *
 * What this checks that NVRTC compiles cannot: the index arithmetic of the
 * thread mappings (grid-stride points, a warp per row, 64 x 64 and 128 x 128
 * GEMM tiles with partial edge tiles, the shared-memory staging, the mma
 * fragment loads and stores), the reductions and the online-softmax merge,
 * run-time error records.  The launch caps the grid at a few blocks, so
 * every kernel also runs its grid-stride loop more than once.  What it
 * cannot check: timing, memory-model subtleties of real hardware (the
 * emulated threads of a block interleave only at barriers), and the PTX
 * instructions themselves (cvt, mma) -- those are the emulator's
 * implementation of the PTX ISA's description.
 *
 * Tolerances (relative L2 per buffer): f32 1e-5, f16 2e-3, bf16 1.6e-2 --
 * reductions and tensor-core sums reassociate; integers and booleans exact;
 * NaN and infinity positions identical. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codegen/cuda/render.h"
#include "codegen/kir_eval.h"
#include "codegen/lower.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "passes/precision.h"
#include "runtime/host_jit.h"
#include "runtime/nvrtc.h"
#include "runtime/run.h"
#include "runtime/tensor.h"

#include "../cuda_emu/emu_build.h"
#include "../randgraph.c"
#include "../support.h"

#define TMP DSC_BINARY_DIR "/test_cuda_emu_tmp"

static HostBackend *HOST;
/* GEMM tiles to use instead of the hardware database's (NULL: the database's) */
static const CudaGemmConfig *GEMM_OVERRIDE;

static void setup(void) { mkdir(TMP, 0777); }
static void teardown(void) {
    if (HOST) rt_host_destroy(HOST);
    HOST = NULL;
}

TestSuite(cuda_emu, .init = setup, .fini = teardown);

/* The reference: the host JIT (LLVM; proven against the evaluator and the
 * interpreter by test_host) where this build has it and DSC_EMU_REFERENCE is
 * not "eval" -- it is much faster on the GEMMs -- else the kernel-IR
 * evaluator itself.  A kernel that stops on a run-time error is always
 * re-run by the evaluator, which gives the trap record. */
static HostBackend *reference_host(void) {
    const char *r = getenv("DSC_EMU_REFERENCE");
    if ((r && strcmp(r, "eval") == 0) || !rt_host_available()) return NULL;
    if (!HOST) {
        Diag *d = diag_create();
        HostOptions ho = {.cache_dir = TMP "/kcache"};
        HOST = rt_host_create(&ho, d);
        cr_assert(HOST, "%s", test_diag_text(d, false));
        diag_destroy(d);
    }
    return HOST;
}

static double value_at(const void *p, DType t, int64_t i) {
    switch (t) {
    case DT_F32: return ((const float *)p)[i];
    case DT_F16: return ir_f16_to_f32(((const uint16_t *)p)[i]);
    case DT_BF16: return ir_bf16_to_f32(((const uint16_t *)p)[i]);
    case DT_I8: return ((const int8_t *)p)[i];
    case DT_I32: return ((const int32_t *)p)[i];
    case DT_I64: return (double)((const int64_t *)p)[i];
    case DT_BOOL: return ((const uint8_t *)p)[i];
    default: return 0;
    }
}

/* Compares buffer `want` (evaluator) with `got` (emulator); a message in why. */
static bool same_values(const void *want, const void *got, DType t, DType tol_dt, int64_t n, char *why,
                        size_t len) {
    if (!dtype_is_float(t)) {
        for (int64_t i = 0; i < n; i++)
            if (value_at(want, t, i) != value_at(got, t, i)) {
                snprintf(why, len, "element %lld: %g, want %g", (long long)i, value_at(got, t, i),
                         value_at(want, t, i));
                return false;
            }
        return true;
    }
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double w = value_at(want, t, i), g = value_at(got, t, i);
        if (isnan(w) || isnan(g) || isinf(w) || isinf(g)) {
            if (!(isnan(w) && isnan(g)) && w != g) {
                snprintf(why, len, "element %lld: %g, want %g", (long long)i, g, w);
                return false;
            }
            continue;
        }
        num += (w - g) * (w - g);
        den += w * w;
    }
    double tol = tol_dt == DT_F32 ? 1e-5 : tol_dt == DT_F16 ? 2e-3 : 1.6e-2;
    double rel = sqrt(num) / (sqrt(den) > 1e-30 ? sqrt(den) : 1);
    if (rel > tol) {
        snprintf(why, len, "relative L2 error %.3g > %.3g over %lld elements", rel, tol, (long long)n);
        return false;
    }
    return true;
}

typedef struct {
    int checked, gemm, tensor_cores, rows, vector; /* kernels checked, of them by mapping */
} Tally;

/* The loosest tolerance a kernel's values pass through: a kernel with 16-bit
 * buffers keeps its intermediates in f32 but rounds at the same points, so an
 * f32 result of it can differ by a 16-bit rounding where a sum reassociated. */
static DType kernel_precision(const Kernel *k) {
    DType t = DT_F32;
    for (int b = 0; b < k->nbufs; b++)
        if (k->bufs[b].dtype == DT_BF16)
            t = DT_BF16;
        else if (k->bufs[b].dtype == DT_F16 && t == DT_F32)
            t = DT_F16;
    return t;
}

static const char *mapping(const CudaKernel *ck) {
    return ck->tensor_cores        ? "tensor-core GEMM"
           : ck->tile_m            ? "tiled GEMM"
           : ck->point_threads > 1 ? "a warp per row"
           : ck->thread_points > 1 ? "vector points"
                                   : "a thread per point";
}

enum { MAX_SMS = 4 };

/* Renders every kernel of the lowered program p for each architecture in
 * sms, builds each distinct rendering for the emulator, and checks every
 * kernel against the evaluator on seeded random buffers (the evaluator runs
 * once per kernel; a kernel whose source is the same for two architectures
 * is emulated once). */
static void check_program(Graph *g, const KProgram *p, const int64_t *syms, const int *sms, int nsms,
                          const char *label, uint64_t seed, Tally *tally) {
    Diag *d = diag_create();
    cr_assert(nsms <= MAX_SMS);
    int nk = p->nkernels;
    CudaKernel *ks[MAX_SMS];
    EmuLib lib[MAX_SMS];
    bool fresh[MAX_SMS]; /* some kernel renders differently from every earlier architecture */
    char err[4096];
    double t0 = test_now_s(), t_ref = 0, t_emu = 0;
    for (int a = 0; a < nsms; a++) {
        ks[a] = calloc((size_t)(nk ? nk : 1), sizeof *ks[a]);
        fresh[a] = a == 0;
        /* the architecture's block and GEMM tiles, as a load takes them from the hardware database */
        CudaBuildOptions bo = {.sm = sms[a]};
        char version[100];
        rt_cuda_target_from_hwdb(&bo, version, sizeof version, d);
        cr_assert_eq(diag_count(d), 0, "sm_%d: %s", sms[a], test_diag_text(d, false));
        if (GEMM_OVERRIDE) bo.gemm = *GEMM_OVERRIDE;
        for (int i = 0; i < nk; i++) {
            cr_assert(cg_cuda_render_with(g, p->kernels[i], bo.block, sms[a], &bo.gemm, &ks[a][i], d),
                      "%s: %s", label, test_diag_text(d, false));
            bool seen = false;
            for (int e = 0; e < a; e++)
                seen = seen || strcmp(ks[e][i].source, ks[a][i].source) == 0;
            fresh[a] = fresh[a] || !seen;
        }
        memset(&lib[a], 0, sizeof lib[a]);
        if (!fresh[a]) continue;
        char tag[256];
        snprintf(tag, sizeof tag, "%s_sm%d", label, sms[a]);
        for (char *c = tag; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) *c = '_';
        cr_assert(emu_compile(ks[a], nk, TMP, tag, &lib[a], err, sizeof err), "%s", err);
    }
    double t_build = test_now_s() - t0;

    uint64_t rng = seed;
    for (int ki = 0; ki < nk; ki++) {
        const Kernel *k = p->kernels[ki];
        int nb = k->nbufs;
        void **want = calloc((size_t)nb + 1, sizeof *want), **got = calloc((size_t)nb + 1, sizeof *got);
        void **orig = calloc((size_t)nb + 1, sizeof *orig);
        int64_t *nel = calloc((size_t)nb + 1, sizeof *nel);
        size_t *bytes = calloc((size_t)nb + 1, sizeof *bytes);
        for (int b = 0; b < nb; b++) {
            const KBuf *kb = &k->bufs[b];
            size_t es = dtype_size(kb->dtype);
            Tensor *t = NULL;
            if (kb->role == KB_DATA) {
                nel[b] = kb->nelems;
            } else {
                int64_t shape[IR_MAX_RANK];
                for (int r = 0; r < kb->node->type.rank; r++)
                    cr_assert(dim_eval(g->dims, kb->node->type.dim[r], syms, &shape[r], NULL, 0));
                t = rt_tensor_new(kb->dtype, kb->node->type.rank, shape);
                cr_assert(t);
                bool var = kb->node->name && strstr(kb->node->name, "var");
                rt_fill_random(t, &rng,
                               var                         ? 0.5
                               : dtype_is_float(kb->dtype) ? -1
                                                           : 1,
                               var                         ? 1.5
                               : dtype_is_float(kb->dtype) ? 1
                                                           : 3);
                nel[b] = rt_numel(t->rank, t->shape);
            }
            bytes[b] = ((size_t)nel[b] * es + 64 + 63) / 64 * 64;
            want[b] = aligned_alloc(64, bytes[b]);
            got[b] = aligned_alloc(64, bytes[b]);
            orig[b] = aligned_alloc(64, bytes[b]);
            cr_assert(want[b] && got[b] && orig[b]);
            memset(orig[b], 0, bytes[b]);
            memcpy(orig[b], kb->role == KB_DATA ? kb->data : t->data, (size_t)nel[b] * es);
            memcpy(want[b], orig[b], bytes[b]);
            rt_tensor_free(t);
        }
        KTrapRecord trap_want = {0};
        t0 = test_now_s();
        HostBackend *hb = reference_host();
        if (!hb || !rt_host_launch(hb, g, k, want, syms, d)) {
            /* no host backend, or a run-time error: the evaluator says which */
            for (int b = 0; b < nb; b++)
                memcpy(want[b], orig[b], bytes[b]);
            diag_clear(d);
            cr_assert(cg_kir_eval_into(g, k, want, syms, &trap_want, d), "%s: evaluator on %s: %s", label,
                      k->name, test_diag_text(d, false));
        }
        t_ref += test_now_s() - t0;

        for (int a = 0; a < nsms; a++) {
            const CudaKernel *ck = &ks[a][ki];
            bool seen = false;
            for (int e = 0; e < a; e++)
                seen = seen || strcmp(ks[e][ki].source, ck->source) == 0;
            if (seen) continue;
            for (int b = 0; b < nb; b++)
                memcpy(got[b], orig[b], bytes[b]);
            /* the launch: the ABI's argument array */
            int nsym = dim_sym_count(g->dims);
            long long *dimv = calloc((size_t)nsym + 1, sizeof *dimv);
            void **params = calloc((size_t)ck->nargs, sizeof *params);
            KTrapRecord trap_got = {0};
            void *trap_ptr = &trap_got;
            for (int i = 0; i < ck->nargs; i++) {
                const CudaArg *arg = &ck->args[i];
                if (arg->kind == CA_BUFFER)
                    params[i] = &got[arg->index];
                else if (arg->kind == CA_DIM)
                    dimv[arg->index] = syms[arg->index], params[i] = &dimv[arg->index];
                else
                    params[i] = &trap_ptr;
            }
            int64_t grid;
            cr_assert(cg_cuda_grid(ck, syms, 6, &grid, err, sizeof err), "%s: %s: %s", label, k->name, err);
            t0 = test_now_s();
            cr_assert(emu_launch(&lib[a], ki, (unsigned)grid, (unsigned)ck->block, params, err, sizeof err),
                      "%s sm_%d: kernel %s (%s, grid %lld): %s", label, sms[a], k->name, mapping(ck),
                      (long long)grid, err);
            t_emu += test_now_s() - t0;
            cr_expect_eq(trap_got.code, trap_want.code, "%s sm_%d: kernel %s: trap code %lld, want %lld",
                         label, sms[a], k->name, (long long)trap_got.code, (long long)trap_want.code);
            DType prec = kernel_precision(k);
            for (int b = 0; b < nb && trap_want.code == 0; b++) {
                const KBuf *kb = &k->bufs[b];
                char why[256];
                if (kb->written) {
                    DType tol = kb->dtype == DT_F32 ? prec : kb->dtype;
                    cr_expect(same_values(want[b], got[b], kb->dtype, tol, nel[b], why, sizeof why),
                              "%s sm_%d: kernel %s (%s), buffer b%d (%s): %s", label, sms[a], k->name,
                              mapping(ck), b, kb->node && kb->node->name ? kb->node->name : "_", why);
                } else {
                    cr_expect(memcmp(orig[b], got[b], bytes[b]) == 0,
                              "%s sm_%d: kernel %s wrote into b%d, which it only reads", label, sms[a],
                              k->name, b);
                }
            }
            tally->checked++;
            tally->tensor_cores += ck->tensor_cores;
            tally->gemm += ck->tile_m > 0 && !ck->tensor_cores;
            tally->rows += ck->point_threads > 1;
            tally->vector += ck->thread_points > 1;
            free(dimv);
            free(params);
        }
        for (int b = 0; b < nb; b++)
            free(want[b]), free(got[b]), free(orig[b]);
        free(want), free(got), free(orig), free(nel), free(bytes);
    }
    for (int a = 0; a < nsms; a++) {
        emu_close(&lib[a]);
        free(ks[a]);
    }
    diag_destroy(d);
    cr_log_info("%s: %d kernels: build %.1f s, reference %.1f s, emulator %.1f s", label, nk, t_build, t_ref,
                t_emu);
}

static int64_t bind_value(const char *name) {
    if (strcmp(name, "S") == 0) return 19; /* partial GEMM tiles; rows that are not a multiple of 32 */
    if (strcmp(name, "B") == 0) return 2;
    return 3;
}

/* without tensor cores; with them on 4 warps (128 x 64 tiles) and on 8 (128 x 128, 64 deep) */
static const int sms[] = {75, 86, 90};

static void check_example(const char *file, DType prec, int opt, Tally *tally) {
    Arena *a = arena_create();
    Diag *d = diag_create();
    char path[512], label[256];
    snprintf(path, sizeof path, "%s/examples/%s.dsg", DSC_SOURCE_DIR, file);
    snprintf(label, sizeof label, "%s_%s_O%d", file, dtype_name(prec), opt);
    Graph *g = fe_compile_file(a, d, path);
    cr_assert(g, "%s: %s", path, test_diag_text(d, true));
    if (prec != DT_F32) {
        g->precision = arena_alloc(a, sizeof(PrecisionRequest));
        g->precision->dtype = prec;
    }
    PipelineOptions po = {.opt_level = opt};
    cr_assert(pass_run_pipeline(g, d, &po), "%s: %s", label, test_diag_text(d, true));
    KProgram p = {.g = g};
    cr_assert(cg_lower(g, &p, d), "%s: %s", label, test_diag_text(d, true));
    int64_t syms[64];
    cr_assert(dim_sym_count(g->dims) <= 64);
    for (int s = 0; s < dim_sym_count(g->dims); s++) {
        int64_t v = bind_value(dim_sym_name(g->dims, s)), b = dim_sym_bound(g->dims, s);
        syms[s] = b > 0 && v > b ? b : v;
    }
    check_program(g, &p, syms, sms, 3, label, 0x5eed0000u + (uint64_t)prec, tally);
    diag_destroy(d);
    arena_destroy(a);
}

static const char *const examples[] = {"mlp", "ffn_block", "bert_layer", "bert_layer_attention", "cnn_block"};

static void check_examples(DType prec) {
    Tally t = {0};
    for (size_t e = 0; e < sizeof examples / sizeof examples[0]; e++)
        check_example(examples[e], prec, 2, &t);
    cr_log_info("%s: %d kernel renderings emulated (%d tiled GEMMs, %d tensor-core GEMMs, %d a warp per row, "
                "%d vector points)",
                dtype_name(prec), t.checked, t.gemm, t.tensor_cores, t.rows, t.vector);
    cr_expect_gt(t.checked, 20);
    /* the mappings must all be exercised, or this test checks less than it says */
    cr_expect_gt(t.rows, 0, "no row kernel at %s", dtype_name(prec));
    if (prec != DT_I8)
        cr_expect_gt(t.gemm, 0, "no tiled GEMM at %s", dtype_name(prec)); /* int8: i64 dot products */
    if (prec == DT_F16 || prec == DT_BF16)                                /* the weight casts */
        cr_expect_gt(t.vector, 0, "no vector kernel at %s", dtype_name(prec));
    if (prec == DT_F16 || prec == DT_BF16)
        cr_expect_gt(t.tensor_cores, 0, "no tensor-core GEMM at %s", dtype_name(prec));
}

Test(cuda_emu, examples_f32, .timeout = 900) { check_examples(DT_F32); }

/* Other GEMM tiles than the database's: every parameter the renderer
 * supports in some combination (f32 tiles of 8 x 4, 2 x 8 and 1 x 1 points a
 * thread and 8 and 32 deep; tensor-core tiles on 4 and 8 warps, 16 and 64
 * deep, with 1 x 2 and 2 x 8 mma tiles a warp). */
Test(cuda_emu, configured_gemm_tiles, .timeout = 900) {
    static const CudaGemmConfig cfgs[] = {
        {128, 64, 8, 8, 64, 32, 16, 4},
        {32, 128, 32, 8, 32, 64, 64, 8},
        {16, 16, 16, 8, 64, 128, 32, 4},
    };
    Tally t = {0};
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        CudaGemmConfig cfg = cfgs[c];
        char why[256];
        cr_assert(cg_cuda_gemm_config_check(&cfg, why, sizeof why), "%s", why);
        GEMM_OVERRIDE = &cfg;
        check_example("mlp", DT_F16, 2, &t);
        check_example("ffn_block", DT_F32, 2, &t);
        check_example("bert_layer", DT_BF16, 2, &t);
        GEMM_OVERRIDE = NULL;
    }
    cr_log_info("configured tiles: %d kernel renderings emulated (%d tiled GEMMs, %d tensor-core GEMMs)",
                t.checked, t.gemm, t.tensor_cores);
    cr_expect_gt(t.gemm, 0);
    cr_expect_gt(t.tensor_cores, 0);
}

/* Unfused (-O0): one kernel per operator, most of them elementwise, where the
 * vector mapping applies (residual adds, gelu, the mask add, head transposes) */
Test(cuda_emu, examples_unfused, .timeout = 900) {
    Tally t = {0};
    for (size_t e = 0; e < sizeof examples / sizeof examples[0]; e++)
        check_example(examples[e], DT_F32, 0, &t);
    cr_log_info("-O0: %d kernel renderings emulated (%d tiled GEMMs, %d a warp per row, %d vector points)",
                t.checked, t.gemm, t.rows, t.vector);
    cr_expect_gt(t.vector, 0, "no vector kernel at -O0");
}
Test(cuda_emu, examples_f16, .timeout = 900) { check_examples(DT_F16); }
Test(cuda_emu, examples_bf16, .timeout = 900) { check_examples(DT_BF16); }
Test(cuda_emu, examples_int8, .timeout = 900) { check_examples(DT_I8); }

/* Seeded random graphs (tests/randgraph.c: every operator), each rendered
 * for sm_75 and sm_80; DSC_EMU_SEEDS sets how many (default 12). */
Test(cuda_emu, random_graphs, .timeout = 900) {
    long n = test_env_long("DSC_EMU_SEEDS", 12);
    Tally t = {0};
    for (long s = 0; s < n; s++) {
        RandGraph rg;
        randgraph_generate(1000 + (uint64_t)s, &rg);
        Arena *a = arena_create();
        Diag *d = diag_create();
        Graph *g = fe_compile_source(a, d, "rand.dsg", rg.text, strlen(rg.text));
        cr_assert(g, "seed %ld: %s", s, test_diag_text(d, true));
        PipelineOptions po = {.opt_level = 2};
        cr_assert(pass_run_pipeline(g, d, &po), "seed %ld: %s", s, test_diag_text(d, true));
        KProgram p = {.g = g};
        cr_assert(cg_lower(g, &p, d), "seed %ld: %s", s, test_diag_text(d, true));
        int64_t syms[64] = {0};
        cr_assert(dim_sym_count(g->dims) <= 64);
        for (int i = 0; i < dim_sym_count(g->dims); i++)
            for (int b = 0; b < rg.nbinds; b++)
                if (strcmp(dim_sym_name(g->dims, i), rg.bind_names[b]) == 0) syms[i] = rg.bind_values[b];
        char label[64];
        snprintf(label, sizeof label, "random_%ld", 1000 + s);
        static const int rsms[] = {75, 80};
        check_program(g, &p, syms, rsms, 2, label, 77 + (uint64_t)s, &t);
        diag_destroy(d);
        arena_destroy(a);
        randgraph_free(&rg);
    }
    cr_log_info(
        "random graphs: %d kernels emulated (%d tiled GEMMs, %d tensor-core, %d a warp per row, %d vector "
        "points)",
        t.checked, t.gemm, t.tensor_cores, t.rows, t.vector);
    cr_expect_gt(t.checked, 0);
}

/* The emulator itself: a kernel that breaks CUDA's rules is a launch error. */
Test(cuda_emu, emulator_refuses_what_a_gpu_would_not_run) {
    CudaKernel k = {0};
    CudaArg arg = {CA_TRAP, 0, DT_I64, true, "long long *dsc_trap"};
    k.nargs = 1;
    k.args = &arg;
    k.name = "bad";
    k.block = 64;
    static const char *const bodies[] = {
        /* a barrier some threads never reach */
        "extern \"C\" __global__ void bad(long long *t) { if (threadIdx.x < 3) return; __syncthreads(); }\n",
        /* a shuffle with lanes missing */
        "extern \"C\" __global__ void bad(long long *t) { if (threadIdx.x % 32 < 5) return;"
        " t[0] = __shfl_xor_sync(0xffffffffu, 1, 1); }\n",
        /* a shuffle under a barrier's divergence */
        "extern \"C\" __global__ void bad(long long *t) { if (threadIdx.x == 0) __syncthreads();"
        " else t[0] = __shfl_xor_sync(0xffffffffu, 1, 1); }\n",
    };
    static const char *const want[] = {"have exited", "lanes", "lanes"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        k.source = bodies[i];
        char tag[32], err[4096];
        snprintf(tag, sizeof tag, "bad%zu", i);
        EmuLib lib;
        cr_assert(emu_compile(&k, 1, TMP, tag, &lib, err, sizeof err), "%s", err);
        long long rec[5] = {0};
        void *rp = rec;
        void *params[1] = {&rp};
        cr_expect(!emu_launch(&lib, 0, 2, 64, params, err, sizeof err), "case %zu ran", i);
        cr_expect(strstr(err, want[i]), "case %zu: %s", i, err);
        emu_close(&lib);
    }
    /* and a correct one runs: a butterfly sum over the warp */
    k.source = "extern \"C\" __global__ void bad(long long *t) {\n"
               "    int v = threadIdx.x % 32;\n"
               "    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);\n"
               "    if (threadIdx.x == 33 && blockIdx.x == 1) t[1] = v;\n"
               "}\n";
    char err[4096];
    EmuLib lib;
    cr_assert(emu_compile(&k, 1, TMP, "good", &lib, err, sizeof err), "%s", err);
    long long rec[5] = {0};
    void *rp = rec;
    void *params[1] = {&rp};
    cr_expect(emu_launch(&lib, 0, 2, 64, params, err, sizeof err), "%s", err);
    cr_expect_eq(rec[1], 31 * 32 / 2);
    emu_close(&lib);
}
