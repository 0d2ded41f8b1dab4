/* The CUDA backend without a GPU: the renderer (every operator and dtype
 * renders and compiles with NVRTC for every hwdb architecture, no spills),
 * the NVRTC loader and log parsing, the persistent kernel cache (hit, miss,
 * key changes, corrupt and truncated entries, two processes writing one
 * entry) and the cached builder.  With codegen/lower.h present: every kernel
 * of every example compiles for every hwdb architecture without spills.
 *
 * Tests that need NVRTC skip themselves where it cannot be loaded. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "codegen/cuda/render.h"
#include "codegen/cuda/schedule.h"
#include "ir/ir.h"
#include "ir/kir.h"
#include "runtime/kcache.h"
#include "runtime/nvrtc.h"

#include "../support.h"

#if __has_include("codegen/lower.h")
#include "codegen/lower.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "passes/precision.h"

#define HAVE_LOWER 1
#else
#define HAVE_LOWER 0
#endif

static Arena *A;
static Graph *G;
static Diag *D;
static int SYM_N, SYM_M;
static const Loc L0 = {0};

static void setup(void) {
    A = arena_create();
    G = ir_graph_create(A, "test.dsg");
    G->name = "t";
    D = diag_create();
    SYM_N = dim_declare(G->dims, "N", -1, L0);
    SYM_M = dim_declare(G->dims, "M", -1, L0);
}
static void teardown(void) {
    diag_destroy(D);
    arena_destroy(A);
}

static void dump_diag(void) {
    for (int i = 0; i < diag_count(D); i++) fprintf(stderr, "diag: %s\n", diag_message(D, i, NULL, NULL));
}

static bool has_msg(const char *want) {
    for (int i = 0; i < diag_count(D); i++)
        if (strstr(diag_message(D, i, NULL, NULL), want)) return true;
    return false;
}

static void need_nvrtc(void) {
    char why[600];
    if (!rt_nvrtc_available(why, sizeof why)) SKIP_UNLESS_CI("%s", why);
}

/* ---- building kernels by hand --------------------------------------------------- */

static int nbuffer_ids;

/* A value of dtype dt and shape [N] (or [N, M] with two dims). */
static Node *value(const char *name, OpKind op, DType dt, int rank) {
    Node *n = ir_node_create(G, op, 0, L0);
    n->name = arena_strdup(A, name);
    n->key = n->name;
    n->type.dtype = dt;
    n->type.rank = rank;
    n->type.dim[0] = dim_sym(G->dims, SYM_N);
    if (rank > 1) n->type.dim[1] = dim_sym(G->dims, SYM_M);
    if (op != OP_INPUT && op != OP_PARAM) n->ann.buffer = nbuffer_ids++;
    ir_append(G, n);
    return n;
}

typedef KExpr *(*Body)(Kernel *k, KExpr *x, KExpr *y);

/* When set, elem_kernel adds its store to this kernel (inputs shared per
 * dtype) instead of making a kernel of its own. */
static Kernel *combined;
static int shared_in[DT_COUNT][2];

/* out[v0] = f(x[v0], y[v0]) over [N]. */
static Kernel *elem_kernel(const char *name, DType in, DType outdt, Body f) {
    char buf[64];
    Kernel *k = combined;
    int bx, by;
    if (k && shared_in[in][0] >= 0) {
        bx = shared_in[in][0];
        by = shared_in[in][1];
    } else {
        if (!k) k = kir_kernel_create(G, name, 0);
        snprintf(buf, sizeof buf, "%s_x", name);
        bx = kir_buffer(G, k, value(buf, OP_INPUT, in, 1), KB_INPUT, false);
        snprintf(buf, sizeof buf, "%s_y", name);
        by = kir_buffer(G, k, value(buf, OP_INPUT, in, 1), KB_INPUT, false);
        if (combined) shared_in[in][0] = bx, shared_in[in][1] = by;
    }
    snprintf(buf, sizeof buf, "%s_out", name);
    int bo = kir_buffer(G, k, value(buf, OP_ADD, outdt, 1), KB_PLANNED, true);
    if (!k->npar) {
        kir_new_var(k);
        k->npar = 1;
        k->par_extent = arena_alloc(A, sizeof(KExpr *));
        k->par_extent[0] = kir_dim(G, SYM_N);
    }
    KExpr *x = kir_load(G, k, bx, kir_var(G, 0)), *y = kir_load(G, k, by, kir_var(G, 0));
    kir_append(&k->body, kir_store(G, bo, kir_var(G, 0), f(k, x, y)));
    cr_assert(kir_verify(G, k, D), "kernel %s does not verify", name);
    return k;
}

static KOp cur_op;
static KType cur_to;
static DType cur_dt;
static KExpr *f_un(Kernel *k, KExpr *x, KExpr *y) { (void)k, (void)y; return kir_un(G, cur_op, x); }
static KExpr *f_bin(Kernel *k, KExpr *x, KExpr *y) { (void)k; return kir_bin(G, cur_op, x, y); }
static KExpr *f_cast(Kernel *k, KExpr *x, KExpr *y) { (void)k, (void)y; return kir_cast(G, cur_to, x); }
static KExpr *f_wrap(Kernel *k, KExpr *x, KExpr *y) { (void)k, (void)y; return kir_wrap(G, cur_dt, x); }
static KExpr *f_copy(Kernel *k, KExpr *x, KExpr *y) { (void)k, (void)y; return x; }
static KExpr *f_select(Kernel *k, KExpr *x, KExpr *y) {
    (void)k;
    return kir_select(G, kir_bin(G, KO_LT, x, y), x, kir_un(G, KO_NEG, y));
}

static DType dtype_of(KType t) { return t == KT_F32 ? DT_F32 : t == KT_I64 ? DT_I64 : DT_BOOL; }

/* Every (operator, type) the kernel IR allows, as one kernel each. */
typedef struct {
    int n;
    Kernel *k[256];
} Kernels;

static void all_op_kernels(Kernels *ks);

static void add(Kernels *ks, Kernel *k) {
    if (!ks->n || ks->k[ks->n - 1] != k) ks->k[ks->n++] = k;
}

/* Every operator and dtype case in one kernel. */
static Kernel *all_ops_in_one_kernel(void) {
    combined = kir_kernel_create(G, "all_ops", 0);
    for (int i = 0; i < DT_COUNT; i++) shared_in[i][0] = shared_in[i][1] = -1;
    Kernels ks = {0};
    all_op_kernels(&ks);
    Kernel *k = combined;
    combined = NULL;
    cr_assert_eq(ks.n, 1);
    return k;
}

static const KOp float_unary[] = {KO_NEG,  KO_ABS,  KO_EXP,     KO_LOG,  KO_SQRT, KO_RSQRT,
                                  KO_RECIP, KO_TANH, KO_SIGMOID, KO_RELU, KO_ERF,  KO_SILU,
                                  KO_GELU, KO_GELU_TANH};
static const KOp int_unary[] = {KO_NEG, KO_ABS, KO_RELU};
static const KOp arith[] = {KO_ADD, KO_SUB, KO_MUL, KO_DIV, KO_MOD, KO_POW, KO_MAX, KO_MIN};
static const KOp compare[] = {KO_LT, KO_GT, KO_LE, KO_GE, KO_EQ, KO_NE};

static void all_op_kernels(Kernels *ks) {
    char name[64];
    for (size_t i = 0; i < sizeof float_unary / sizeof *float_unary; i++) {
        cur_op = float_unary[i];
        snprintf(name, sizeof name, "un_%s_f32", kir_op_name(cur_op));
        add(ks, elem_kernel(name, DT_F32, DT_F32, f_un));
    }
    for (size_t i = 0; i < sizeof int_unary / sizeof *int_unary; i++) {
        cur_op = int_unary[i];
        snprintf(name, sizeof name, "un_%s_i64", kir_op_name(cur_op));
        add(ks, elem_kernel(name, DT_I64, DT_I64, f_un));
    }
    cur_op = KO_NOT;
    add(ks, elem_kernel("un_not_bool", DT_BOOL, DT_BOOL, f_un));
    static const char *arith_names[] = {"add", "sub", "mul", "div", "mod", "pow", "max", "min"};
    for (size_t i = 0; i < sizeof arith / sizeof *arith; i++) {
        cur_op = arith[i];
        snprintf(name, sizeof name, "bin_%s_f32", arith_names[i]);
        add(ks, elem_kernel(name, DT_F32, DT_F32, f_bin));
        snprintf(name, sizeof name, "bin_%s_i64", arith_names[i]);
        add(ks, elem_kernel(name, DT_I64, DT_I64, f_bin));
    }
    static const char *cmp_names[] = {"lt", "gt", "le", "ge", "eq", "ne"};
    for (size_t i = 0; i < sizeof compare / sizeof *compare; i++) {
        cur_op = compare[i];
        snprintf(name, sizeof name, "cmp_%s_f32", cmp_names[i]);
        add(ks, elem_kernel(name, DT_F32, DT_BOOL, f_bin));
        snprintf(name, sizeof name, "cmp_%s_i64", cmp_names[i]);
        add(ks, elem_kernel(name, DT_I64, DT_BOOL, f_bin));
    }
    cur_op = KO_EQ;
    add(ks, elem_kernel("cmp_eq_bool", DT_BOOL, DT_BOOL, f_bin));
    cur_op = KO_NE;
    add(ks, elem_kernel("cmp_ne_bool", DT_BOOL, DT_BOOL, f_bin));
    cur_op = KO_AND;
    add(ks, elem_kernel("bin_and_bool", DT_BOOL, DT_BOOL, f_bin));
    cur_op = KO_OR;
    add(ks, elem_kernel("bin_or_bool", DT_BOOL, DT_BOOL, f_bin));
    for (int from = 0; from < KT_COUNT; from++)
        for (int to = 0; to < KT_COUNT; to++) {
            if (from == to) continue;
            cur_to = (KType)to;
            snprintf(name, sizeof name, "cast_%s_%s", kir_type_name((KType)from), kir_type_name((KType)to));
            add(ks, elem_kernel(name, dtype_of((KType)from), dtype_of((KType)to), f_cast));
        }
    static const DType wraps[] = {DT_I8, DT_I32, DT_I64};
    for (size_t i = 0; i < 3; i++) {
        cur_dt = wraps[i];
        snprintf(name, sizeof name, "wrap_%s", dtype_name(cur_dt));
        add(ks, elem_kernel(name, DT_I64, DT_I64, f_wrap));
    }
    add(ks, elem_kernel("select_f32", DT_F32, DT_F32, f_select));
    add(ks, elem_kernel("select_i64", DT_I64, DT_I64, f_select));
    /* every storage dtype loaded and stored */
    for (int dt = 0; dt < DT_COUNT; dt++) {
        snprintf(name, sizeof name, "copy_%s", dtype_name((DType)dt));
        add(ks, elem_kernel(name, (DType)dt, (DType)dt, f_copy));
    }
}

/* out[i, j] = sum over k < M of x[i, k] (if positive) + M, with a constant
 * parallel extent, a loop, a local, an if and a dim; and a kernel with no
 * parallel variables. */
static Kernel *reduce_kernel(void) {
    Kernel *k = kir_kernel_create(G, "reduce_rows", 1);
    int bx = kir_buffer(G, k, value("rx", OP_INPUT, DT_F16, 2), KB_INPUT, false);
    int bo = kir_buffer(G, k, value("ro", OP_ADD, DT_BF16, 2), KB_PLANNED, true);
    int v0 = kir_new_var(k), v1 = kir_new_var(k), v2 = kir_new_var(k);
    k->npar = 2;
    k->par_extent = arena_alloc(A, 2 * sizeof(KExpr *));
    k->par_extent[0] = kir_dim(G, SYM_N);
    k->par_extent[1] = kir_const_i(G, 3);
    int acc = kir_new_local(G, k, KT_F32);
    KExpr *M = kir_dim(G, SYM_M);
    KExpr *xi = kir_load(G, k, bx, kir_bin(G, KO_ADD, kir_bin(G, KO_MUL, kir_var(G, v0), M), kir_var(G, v2)));
    KStmt *inner = kir_if(G, kir_bin(G, KO_GT, xi, kir_const_f(G, 0)),
                          kir_set(G, acc, kir_bin(G, KO_ADD, kir_local(G, k, acc), xi)));
    KStmt *body = kir_set(G, acc, kir_const_f(G, -0.5));
    kir_append(&body, kir_for(G, v2, M, inner));
    kir_append(&body, kir_store(G, bo, kir_bin(G, KO_ADD, kir_bin(G, KO_MUL, kir_var(G, v0), kir_const_i(G, 3)),
                                               kir_var(G, v1)),
                                kir_bin(G, KO_ADD, kir_local(G, k, acc), kir_cast(G, KT_F32, M))));
    k->body = body;
    cr_assert(kir_verify(G, k, D));
    return k;
}

static Kernel *scalar_kernel(void) {
    Kernel *k = kir_kernel_create(G, "scalar_init", 2);
    int bo = kir_buffer(G, k, value("so", OP_ADD, DT_I32, 1), KB_PLANNED, true);
    k->npar = 0;
    k->body = kir_store(G, bo, kir_const_i(G, 0), kir_wrap(G, DT_I32, kir_const_i(G, INT64_MIN)));
    cr_assert(kir_verify(G, k, D));
    return k;
}

/* ---- architectures from the hardware database ---------------------------------- */

static int hwdb_archs(int *sms, int cap) {
    FILE *f = fopen(DSC_SOURCE_DIR "/data/hwdb.json", "rb");
    cr_assert(f, "data/hwdb.json");
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    cJSON *root = cJSON_Parse(text);
    cr_assert(root);
    int count = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(root, "entries")) {
        const char *arch = cJSON_GetStringValue(cJSON_GetObjectItem(e, "arch"));
        int sm = rt_nvrtc_parse_arch(arch);
        if (sm > 0 && count < cap) sms[count++] = sm;
    }
    cJSON_Delete(root);
    cr_assert_geq(count, 7, "hwdb lists every GPU architecture");
    return count;
}

/* Renders kernels and compiles them for every sm, all in one parallel batch;
 * asserts no failures, no spills and no stack. */
static void compile_everywhere(Kernel **ks, int nk, const int *sms, int nsms) {
    CudaKernel *recs = calloc((size_t)nk, sizeof *recs);
    for (int i = 0; i < nk; i++) cr_assert(cg_cuda_render(G, ks[i], 0, &recs[i], D), "render %s", ks[i]->name);
    int n = nk * nsms;
    NvrtcJob *jobs = calloc((size_t)n, sizeof *jobs);
    for (int a = 0; a < nsms; a++)
        for (int i = 0; i < nk; i++)
            jobs[a * nk + i] = (NvrtcJob){.name = recs[i].name, .source = recs[i].source, .sm = sms[a]};
    bool ok = rt_nvrtc_compile_all(jobs, n, 0, 0, D);
    if (!ok) dump_diag();
    cr_assert(ok, "compile");
    for (int j = 0; j < n; j++) {
        cr_assert_gt(jobs[j].cubin_size, 0);
        cr_assert_gt(jobs[j].stats.registers, 0, "%s sm_%d: registers parsed", jobs[j].name, jobs[j].sm);
        cr_assert_eq(jobs[j].stats.spill_stores + jobs[j].stats.spill_loads, 0, "%s spills on sm_%d", jobs[j].name,
                     jobs[j].sm);
        cr_assert_eq(jobs[j].stats.stack_bytes, 0, "%s uses local memory on sm_%d", jobs[j].name, jobs[j].sm);
        rt_nvrtc_job_free(&jobs[j]);
    }
    free(jobs);
    free(recs);
}

/* ---- renderer ----------------------------------------------------------------------- */

TestSuite(render, .init = setup, .fini = teardown);

Test(render, abi_of_an_elementwise_kernel) {
    cur_op = KO_ADD;
    Kernel *k = elem_kernel("add_f32", DT_F32, DT_F32, f_bin);
    CudaKernel ck;
    cr_assert(cg_cuda_render(G, k, 0, &ck, D));
    const char *s = ck.source;
    cr_assert_str_eq(ck.name, "add_f32");
    cr_assert_eq(ck.block, CG_CUDA_DEFAULT_BLOCK);
    cr_assert(strstr(s, "extern \"C\" __global__ void __launch_bounds__(256)\nadd_f32("), "%s", s);
    cr_assert(strstr(s, "const float *__restrict__ b0 /* add_f32_x f32[N] */"), "%s", s);
    cr_assert(strstr(s, "const float *__restrict__ b1"), "%s", s);
    cr_assert(strstr(s, "float *__restrict__ b2 /* add_f32_out f32[N] */"), "%s", s);
    cr_assert(strstr(s,
                     "long long d0 /* N */,\n    long long d1 /* M */,\n    long long *dsc_trap /* the run's "
                     "KTrapRecord */)"),
              "%s", s);
    cr_assert(strstr(s, "for (long long dsc_i = (long long)blockIdx.x * blockDim.x + threadIdx.x; dsc_i < dsc_n; "
                        "dsc_i += (long long)gridDim.x * blockDim.x)"),
              "%s", s);
    cr_assert(strstr(s, "b2[v0] = (b0[v0] + b1[v0]);"), "%s", s);
    cr_assert_null(strstr(s, "#include"), "no headers: %s", s);
    cr_assert_null(strstr(s, "dsc_f16"), "no unused helpers: %s", s);
    cr_assert_eq(ck.nargs, 6);
    cr_assert_eq(ck.args[5].kind, CA_TRAP);
    cr_assert_eq(ck.args[0].kind, CA_BUFFER);
    cr_assert_eq(ck.args[2].written, true);
    cr_assert_eq(ck.args[3].kind, CA_DIM);
    cr_assert_eq(ck.args[3].index, SYM_N);
    cr_assert_str_eq(ck.args[0].decl, "const float *__restrict__ b0");
    cr_assert_eq(ck.flops, k->flops);
    cr_assert_eq(strlen(s), ck.source_len);
}

Test(render, block_size_and_launch_geometry) {
    cur_op = KO_MUL;
    Kernel *k = elem_kernel("mul_f32", DT_F32, DT_F32, f_bin);
    CudaKernel ck;
    cr_assert(cg_cuda_render(G, k, 512, &ck, D));
    cr_assert(strstr(ck.source, "__launch_bounds__(512)"));
    cr_assert_eq(ck.block, 512);
    int64_t dims[2] = {1000, 7}, grid, n;
    char err[128];
    cr_assert(cg_cuda_parallel_size(k, dims, &n, err, sizeof err));
    cr_assert_eq(n, 1000);
    /* an f32 elementwise kernel takes the vector mapping: 4 points a thread */
    cr_assert_eq(ck.thread_points, 4);
    cr_assert(cg_cuda_grid(&ck, dims, 0, &grid, err, sizeof err));
    cr_assert_eq(grid, 1, "1000 points, 2048 a block");
    dims[0] = 5000;
    cr_assert(cg_cuda_grid(&ck, dims, 0, &grid, err, sizeof err));
    cr_assert_eq(grid, 3);
    /* i64 data is not vectorised: one point a thread */
    Kernel *k64 = elem_kernel("mul_i64", DT_I64, DT_I64, f_bin);
    CudaKernel c64;
    cr_assert(cg_cuda_render(G, k64, 512, &c64, D));
    cr_assert_eq(c64.thread_points, 1);
    dims[0] = 1000;
    cr_assert(cg_cuda_grid(&c64, dims, 0, &grid, err, sizeof err));
    cr_assert_eq(grid, 2);
    dims[0] = 1 << 20;
    cr_assert(cg_cuda_grid(&ck, dims, 264, &grid, err, sizeof err));
    cr_assert_eq(grid, 264);
    dims[0] = 0;
    cr_assert(cg_cuda_grid(&ck, dims, 264, &grid, err, sizeof err));
    cr_assert_eq(grid, 1);
}

Test(render, multi_dimensional_space_loops_locals_and_halves) {
    Kernel *k = reduce_kernel();
    CudaKernel ck;
    cr_assert(cg_cuda_render(G, k, 0, &ck, D));
    const char *s = ck.source;
    cr_assert(strstr(s, "const long long e0 = d0;"), "%s", s);
    cr_assert(strstr(s, "const long long e1 = 3LL;"), "%s", s);
    cr_assert(strstr(s, "const long long dsc_n = e0 * e1;"), "%s", s);
    cr_assert(strstr(s, "const long long v1 = dsc_r % e1;"), "%s", s);
    cr_assert(strstr(s, "const long long v0 = dsc_r;"), "%s", s);
    /* a loop that only accumulates: one warp per point, the lanes split the
     * row, a butterfly reduction, the total folded into the local once, the
     * point's store by lane 0 (codegen/cuda/schedule.h) */
    cr_assert_eq(ck.point_threads, 32);
    cr_assert(strstr(s, "for (long long dsc_i = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);"),
              "%s", s);
    cr_assert(strstr(s, "float dsc_a0 = -0.0f;"), "%s", s);
    cr_assert(strstr(s, "for (long long v2 = dsc_lane, v2_end = d1; v2 < v2_end; v2 += 32) {"), "%s", s);
    cr_assert(strstr(s, "float l0 = 0.0f;"), "%s", s);
    cr_assert(strstr(s, "l0 = (-0.5f);"), "%s", s);
    cr_assert(strstr(s, "if ((dsc_f16_to_f32(b0[((v0 * d1) + v2)]) > 0.0f)) {"), "%s", s);
    cr_assert(strstr(s, "dsc_a0 = (dsc_a0 + dsc_f16_to_f32(b0[((v0 * d1) + v2)]));"), "%s", s);
    cr_assert(strstr(s, "const float dsc_t = __shfl_xor_sync(0xffffffffu, dsc_a0, dsc_o);"), "%s", s);
    cr_assert(strstr(s, "l0 = (l0 + dsc_a0);"), "%s", s);
    cr_assert(strstr(s, "if (dsc_lane == 0) {\n            b1[((v0 * 3LL) + v1)] = dsc_f32_to_bf16((l0 + (float)d1));"),
              "%s", s);
    cr_assert(strstr(s, "const unsigned short *__restrict__ b0"), "%s", s);
    cr_assert(strstr(s, "unsigned short dsc_f32_to_f16(float f)"), "helpers of a used dtype: %s", s);
    cr_assert(strstr(s, "unsigned short dsc_f32_to_bf16(float f)"), "%s", s);
    int64_t dims[2] = {10, 4}, n;
    char err[64];
    cr_assert(cg_cuda_parallel_size(k, dims, &n, err, sizeof err));
    cr_assert_eq(n, 30);
    int64_t grid;
    cr_assert(cg_cuda_grid(&ck, dims, 0, &grid, err, sizeof err));
    cr_assert_eq(grid, 4, "30 rows, 8 warps per block: %lld", (long long)grid);
}

/* out[i, j] = relu(sum_k a[i, k] * b[k, j] + 1) over i < N, j < M, k < M: a
 * dot product with an epilogue, rendered as a tiled GEMM. */
static Kernel *gemm_kernel(void) {
    Kernel *k = kir_kernel_create(G, "gemm_relu", 3);
    int ba = kir_buffer(G, k, value("ga", OP_INPUT, DT_F32, 2), KB_INPUT, false);
    int bb = kir_buffer(G, k, value("gb", OP_INPUT, DT_F16, 2), KB_INPUT, false);
    int bo = kir_buffer(G, k, value("go", OP_ADD, DT_F32, 2), KB_PLANNED, true);
    int i = kir_new_var(k), j = kir_new_var(k), kv = kir_new_var(k);
    k->npar = 2;
    k->par_extent = arena_alloc(A, 2 * sizeof(KExpr *));
    k->par_extent[0] = kir_dim(G, SYM_N);
    k->par_extent[1] = kir_dim(G, SYM_M);
    KExpr *M = kir_dim(G, SYM_M);
    int acc = kir_new_local(G, k, KT_F32);
    KExpr *a = kir_load(G, k, ba, kir_bin(G, KO_ADD, kir_bin(G, KO_MUL, kir_var(G, i), M), kir_var(G, kv)));
    KExpr *b = kir_load(G, k, bb, kir_bin(G, KO_ADD, kir_bin(G, KO_MUL, kir_var(G, kv), M), kir_var(G, j)));
    KStmt *body = kir_set(G, acc, kir_const_f(G, 0));
    kir_append(&body, kir_for(G, kv, M, kir_set(G, acc, kir_bin(G, KO_ADD, kir_local(G, k, acc), kir_bin(G, KO_MUL, a, b)))));
    kir_append(&body, kir_store(G, bo, kir_bin(G, KO_ADD, kir_bin(G, KO_MUL, kir_var(G, i), M), kir_var(G, j)),
                                kir_un(G, KO_RELU, kir_bin(G, KO_ADD, kir_local(G, k, acc), kir_const_f(G, 1)))));
    k->body = body;
    cr_assert(kir_verify(G, k, D));
    return k;
}

Test(render, dot_product_with_epilogue_is_a_tiled_gemm) {
    Kernel *k = gemm_kernel();
    CudaKernel ck;
    cr_assert(cg_cuda_render(G, k, 0, &ck, D));
    const char *s = ck.source;
    cr_assert_eq(ck.tile_m, 64);
    cr_assert_eq(ck.tile_n, 64);
    cr_assert_eq(ck.m_var, 0);
    cr_assert_eq(ck.n_var, 1);
    cr_assert(strstr(s, "__launch_bounds__(256, 2)"), "%s", s);
    cr_assert(strstr(s, "__shared__ float dsc_As[16][68];"), "%s", s);
    /* a is read along k (k fastest), b along j (j fastest): coalesced staging */
    cr_assert(strstr(s, "dsc_As[dsc_kk][dsc_x] = v0 < e0 && v2 < dsc_K ? b0[((v0 * d1) + v2)] : 0.0f;"), "%s", s);
    cr_assert(strstr(s, "const int dsc_kk = dsc_t % 16, dsc_x = dsc_t / 16;"), "%s", s);
    cr_assert(strstr(s, "const int dsc_kk = dsc_t / 64, dsc_x = dsc_t % 64;"), "%s", s);
    cr_assert(strstr(s, "dsc_Bs[dsc_kk][dsc_x] = v1 < e1 && v2 < dsc_K ? dsc_f16_to_f32(b1[((v2 * d1) + v1)]) : 0.0f;"),
              "%s", s);
    cr_assert(strstr(s, "__syncthreads();"), "%s", s);
    cr_assert(strstr(s, "l0 = dsc_c0[dsc_x][dsc_y];"), "%s", s);
    cr_assert(strstr(s, "b2[((v0 * d1) + v1)] = dsc_relu((l0 + 1.0f));"), "%s", s);
    /* one block per 64 x 64 tile: N = 100, M = 70 -> 2 x 2 tiles */
    int64_t dims[2] = {100, 70}, grid;
    char err[64];
    cr_assert(cg_cuda_grid(&ck, dims, 0, &grid, err, sizeof err));
    cr_assert_eq(grid, 4);
    cr_assert(cg_cuda_grid(&ck, dims, 3, &grid, err, sizeof err));
    cr_assert_eq(grid, 3, "capped; the tile loop is grid-stride");
    /* a -0 initial value: the last k tile stops at K (padding would turn -0 into +0) */
    k->body->value = kir_const_f(G, -0.0);
    cr_assert(cg_cuda_render(G, k, 0, &ck, D));
    cr_assert(strstr(ck.source, "dsc_kk < 16 && dsc_k0 + dsc_kk < dsc_K;"), "%s", ck.source);
    /* another block size: no tiled form (it is written for 256 threads) */
    k->body->value = kir_const_f(G, 0);
    cr_assert(cg_cuda_render(G, k, 128, &ck, D));
    cr_assert_eq(ck.tile_m, 0);
    cr_assert(!strstr(ck.source, "__syncthreads"), "%s", ck.source);
}

/* Two dot products over the same (i, j) with statements between them (as
 * lowering fuses projections that share an input): one tiled kernel, the
 * statements after both; a statement that reads the second accumulator
 * before its loop keeps the kernel off the GEMM mapping. */
Test(render, two_products_share_one_tile) {
    Kernel *k = gemm_kernel();
    KStmt *init0 = k->body, *loop0 = init0->next, *store = loop0->next;
    int acc1 = kir_new_local(G, k, KT_F32), t = kir_new_local(G, k, KT_F32);
    KStmt *init1 = kir_set(G, acc1, kir_const_f(G, 0));
    KExpr *prod = loop0->body->value->b;
    KStmt *loop1 = kir_for(G, loop0->id, loop0->extent,
                           kir_set(G, acc1, kir_bin(G, KO_ADD, kir_local(G, k, acc1), kir_bin(G, KO_MUL, prod->b, prod->a))));
    KStmt *mid = kir_set(G, t, kir_bin(G, KO_MUL, kir_local(G, k, 0), kir_const_f(G, 2)));
    /* acc0 = 0; loop0; t = 2 * acc0; acc1 = 0; loop1; store relu(acc0 + 1) + t + acc1 */
    loop0->next = mid;
    mid->next = init1;
    init1->next = loop1;
    loop1->next = store;
    store->value = kir_bin(G, KO_ADD, kir_bin(G, KO_ADD, store->value, kir_local(G, k, t)), kir_local(G, k, acc1));
    cr_assert(kir_verify(G, k, D));
    CudaKernel ck;
    cr_assert(cg_cuda_render(G, k, 0, &ck, D));
    const char *s = ck.source;
    cr_assert_eq(ck.tile_m, 64, "%s", s);
    cr_assert(strstr(s, "float dsc_c1[4][4];"), "%s", s);
    cr_assert(strstr(s, "for (long long dsc_k0 = 0, dsc_K = dsc_K1; dsc_k0 < dsc_K; dsc_k0 += 16) {"), "%s", s);
    const char *e = strstr(s, "l0 = dsc_c0[dsc_x][dsc_y];");
    cr_assert(e && strstr(e, "l1 = dsc_c1[dsc_x][dsc_y];") && strstr(e, "l2 = (l0 * 2.0f);"), "%s", s);
    /* reading acc1 before its loop */
    mid->value = kir_bin(G, KO_MUL, kir_local(G, k, acc1), kir_const_f(G, 2));
    cr_assert(cg_cuda_render(G, k, 0, &ck, D));
    cr_assert_eq(ck.tile_m, 0, "%s", ck.source);
}

/* Both operands f16 (a is rounded to f16, b is an f16 buffer): from sm_80 on
 * the tiled GEMM multiplies on tensor cores; before, and for f32 operands,
 * it stays the f32 tile. */
Test(render, half_operands_use_tensor_cores_from_sm_80) {
    Kernel *k = gemm_kernel();
    KStmt *upd = k->body->next->body;
    upd->value->b->a = kir_wrap(G, DT_F16, upd->value->b->a);
    cr_assert(kir_verify(G, k, D));
    CudaKernel ck;
    cr_assert(cg_cuda_render_for(G, k, 0, 90, &ck, D));
    const char *s = ck.source;
    cr_assert(ck.tensor_cores);
    cr_assert_eq(ck.tile_m, 128);
    cr_assert(strstr(s, "__launch_bounds__(256, 1)"), "%s", s);
    cr_assert(strstr(s, "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"), "%s", s);
    cr_assert(strstr(s, "dsc_As[dsc_x][dsc_kk] = v0 < e0 && v2 < dsc_K ? dsc_f32_to_f16(b0[((v0 * d1) + v2)]) : "
                        "(unsigned short)0;"),
              "a rounded once, its bits staged: %s", s);
    cr_assert(strstr(s, "dsc_Bs[dsc_x][dsc_kk] = v1 < e1 && v2 < dsc_K ? b1[((v2 * d1) + v1)] : (unsigned short)0;"),
              "an f16 buffer's bits staged as they are: %s", s);
    cr_assert(strstr(s, "dsc_mma_f16(dsc_c[dsc_x][dsc_y], dsc_a[dsc_x], dsc_b[dsc_y]);"), "%s", s);
    cr_assert(strstr(s, "b2[((v0 * d1) + v1)] = dsc_relu((l0 + 1.0f));"), "%s", s);
    int64_t dims[2] = {300, 129}, grid;
    char err[64];
    cr_assert(cg_cuda_grid(&ck, dims, 0, &grid, err, sizeof err));
    cr_assert_eq(grid, 3 * 2, "128 x 128 tiles");
    /* sm_75, or any arch: the f32 tile */
    int sms[] = {75, 0};
    for (int i = 0; i < 2; i++) {
        cr_assert(cg_cuda_render_for(G, k, 0, sms[i], &ck, D));
        cr_assert(!ck.tensor_cores && ck.tile_m == 64 && !strstr(ck.source, "mma.sync"), "sm %d", sms[i]);
    }
    /* bf16 with f16: no common type, the f32 tile */
    upd->value->b->a->dt = DT_BF16;
    cr_assert(cg_cuda_render_for(G, k, 0, 90, &ck, D));
    cr_assert(!ck.tensor_cores && !strstr(ck.source, "mma.sync"));
}

/* The row analysis says no where splitting a loop over lanes could change the
 * meaning; those kernels keep one thread per point. */
Test(render, row_split_only_when_it_keeps_the_meaning) {
    struct {
        const char *what;
        int change;
    } cases[] = {{"the accumulator read inside its loop", 0},
                 {"a max accumulator also added to", 1},
                 {"a store inside the reduce loop", 2},
                 {"a row of a constant 16 elements", 3},
                 {"a block of 48 threads", 4}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        Kernel *k = reduce_kernel();
        KStmt *loop = k->body->next, *set = loop->body->body;
        KExpr *x = set->value->b;
        int block = 0;
        switch (cases[c].change) {
        case 0: set->value->b = kir_bin(G, KO_MUL, x, kir_local(G, k, 0)); break;
        case 1: kir_append(&loop->body, kir_set(G, 0, kir_bin(G, KO_MAX, kir_local(G, k, 0), x))); break;
        case 2: kir_append(&loop->body, kir_store(G, 1, kir_var(G, 2), x)); break;
        case 3: loop->extent = kir_const_i(G, 16); break;
        case 4: block = 48; break;
        }
        cr_assert(kir_verify(G, k, D), "%s", cases[c].what);
        CudaKernel ck;
        cr_assert(cg_cuda_render(G, k, block, &ck, D), "%s", cases[c].what);
        cr_assert_eq(ck.point_threads, 1, "%s: %s", cases[c].what, ck.source);
        cr_assert(strstr(ck.source, "for (long long v2 = 0, v2_end = "), "%s: %s", cases[c].what, ck.source);
        cr_assert(!strstr(ck.source, "dsc_lane"), "%s", cases[c].what);
    }
}

Test(render, no_parallel_variables) {
    Kernel *k = scalar_kernel();
    CudaKernel ck;
    cr_assert(cg_cuda_render(G, k, 0, &ck, D));
    cr_assert(strstr(ck.source, "if (blockIdx.x != 0 || threadIdx.x != 0) return;"), "%s", ck.source);
    cr_assert(strstr(ck.source, "b0[0LL] = (int)(long long)(int)(-9223372036854775807LL - 1);"), "%s", ck.source);
    int64_t dims[2] = {5, 5}, grid;
    char err[64];
    cr_assert(cg_cuda_grid(&ck, dims, 0, &grid, err, sizeof err));
    cr_assert_eq(grid, 1);
}

/* kir.h: i64 arithmetic on data wraps around; index math stays plain C++ */
Test(render, i64_data_wraps_and_indices_stay_plain) {
    cur_op = KO_ADD;
    Kernel *k = elem_kernel("add_i64", DT_I64, DT_I64, f_bin);
    cur_op = KO_ABS;
    Kernel *a = elem_kernel("abs_i64", DT_I64, DT_I64, f_un);
    /* an index computed with + and * */
    k->body->index = kir_bin(G, KO_ADD, kir_bin(G, KO_MUL, kir_var(G, 0), kir_const_i(G, 1)), kir_const_i(G, 0));
    CudaKernel ck, ca;
    cr_assert(cg_cuda_render(G, k, 0, &ck, D));
    cr_assert(strstr(ck.source, "b2[((v0 * 1LL) + 0LL)] = dsc_wadd(b0[v0], b1[v0]);"), "%s", ck.source);
    cr_assert(strstr(ck.source, "long long dsc_wadd(long long a, long long b)"), "%s", ck.source);
    cr_assert(cg_cuda_render(G, a, 0, &ca, D));
    cr_assert(strstr(ca.source, "b2[v0] = dsc_wabs(b0[v0]);"), "%s", ca.source);
}

Test(render, helpers_only_when_used_and_once) {
    cur_op = KO_SILU;
    Kernel *k = elem_kernel("silu", DT_F32, DT_F32, f_un);
    CudaKernel ck;
    cr_assert(cg_cuda_render(G, k, 0, &ck, D));
    const char *s = ck.source, *p = strstr(s, "float dsc_sigmoid(float x)");
    cr_assert(p, "silu pulls in sigmoid: %s", s);
    cr_assert_null(strstr(p + 1, "float dsc_sigmoid(float x)"), "once");
    cr_assert(strstr(s, "float dsc_silu(float x)") > p, "dependencies first");
    cr_assert_null(strstr(s, "dsc_gelu"));
    cr_assert_null(strstr(s, "dsc_fmax"));
}

Test(render, constants) {
    struct {
        double v;
        const char *want;
    } fc[] = {{1.0, "1.0f"},      {0.1, "0.1f"},       {-2.5, "(-2.5f)"},    {1e30, "1e+30f"},
              {-0.0, "(-0.0f)"},  {1.0 / 3, "0.33333334f"}, {INFINITY, "__int_as_float(0x7f800000)"},
              {-INFINITY, "(-__int_as_float(0x7f800000))"}, {NAN, "__int_as_float(0x7fffffff)"}};
    for (size_t i = 0; i < sizeof fc / sizeof *fc; i++) {
        G = ir_graph_create(A, "c.dsg");
        SYM_N = dim_declare(G->dims, "N", -1, L0);
        Kernel *k = kir_kernel_create(G, "c", 0);
        int bo = kir_buffer(G, k, value("o", OP_ADD, DT_F32, 1), KB_PLANNED, true);
        k->body = kir_store(G, bo, kir_const_i(G, 0), kir_un(G, KO_NEG, kir_const_f(G, fc[i].v)));
        CudaKernel ck;
        cr_assert(cg_cuda_render(G, k, 0, &ck, D));
        char want[96];
        snprintf(want, sizeof want, "b0[0LL] = (-%s);", fc[i].want);
        cr_assert(strstr(ck.source, want), "%g: want %s in %s", fc[i].v, want, ck.source);
    }
}

Test(render, restrict_dropped_when_the_plan_aliases) {
    cur_op = KO_EXP;
    Kernel *k = elem_kernel("inplace", DT_F32, DT_F32, f_un);
    /* the output reuses the buffer of a planned operand */
    Node *x = value("planned_x", OP_ADD, DT_F32, 1);
    int bx = kir_buffer(G, k, x, KB_PLANNED, false);
    ((Node *)k->bufs[2].node)->ann.buffer = x->ann.buffer;
    k->body = kir_store(G, 2, kir_var(G, 0), kir_un(G, KO_EXP, kir_load(G, k, bx, kir_var(G, 0))));
    CudaKernel ck;
    cr_assert(cg_cuda_render(G, k, 0, &ck, D));
    cr_assert_null(strstr(ck.source, "__restrict__"), "%s", ck.source);
    cr_assert(strstr(ck.source, "const float *b3"), "%s", ck.source);
}

Test(render, bad_names_are_errors) {
    cur_op = KO_ADD;
    Kernel *k = elem_kernel("ok_name", DT_F32, DT_F32, f_bin);
    k->name = "1bad";
    CudaKernel ck;
    cr_assert_not(cg_cuda_render(G, k, 0, &ck, D));
    cr_assert(has_msg("CUDA renderer: kernel 1bad"));
    k->name = "dsc_sigmoid";
    cr_assert_not(cg_cuda_render(G, k, 0, &ck, D));
}

Test(render, every_operator_and_dtype_renders) {
    Kernels ks = {0};
    all_op_kernels(&ks);
    for (int i = 0; i < ks.n; i++) {
        CudaKernel ck;
        bool ok = cg_cuda_render(G, ks.k[i], 0, &ck, D);
        if (!ok) dump_diag();
        cr_assert(ok, "render %s", ks.k[i]->name);
    }
    /* every KOp appears in at least one kernel */
    bool seen[KO_COUNT] = {0};
    seen[KO_CAST] = seen[KO_WRAP] = true;
    for (size_t i = 0; i < sizeof float_unary / sizeof *float_unary; i++) seen[float_unary[i]] = true;
    for (size_t i = 0; i < sizeof arith / sizeof *arith; i++) seen[arith[i]] = true;
    for (size_t i = 0; i < sizeof compare / sizeof *compare; i++) seen[compare[i]] = true;
    seen[KO_NOT] = seen[KO_AND] = seen[KO_OR] = true;
    for (int op = 0; op < KO_COUNT; op++) cr_assert(seen[op], "operator %s untested", kir_op_name((KOp)op));
}

/* Every operator and dtype compiles for every hwdb architecture with no
 * spills: one kernel per case for the oldest architecture (a failure names
 * the case), and all cases in one kernel for every architecture. */
Test(render, every_operator_and_dtype_compiles_everywhere, .timeout = 300) {
    need_nvrtc();
    int sms[16];
    int nsms = hwdb_archs(sms, 16);
    Kernels ks = {0};
    all_op_kernels(&ks);
    compile_everywhere(ks.k, ks.n, sms, 1);
    Kernel *all[3] = {all_ops_in_one_kernel(), reduce_kernel(), scalar_kernel()};
    cr_assert_gt(all[0]->nbufs, 70);
    compile_everywhere(all, 3, sms, nsms);
}

/* ---- NVRTC ------------------------------------------------------------------------------- */

/* ---- the vector point mapping (codegen/cuda/schedule.h) ------------------------------ */

TestSuite(vector, .init = setup, .fini = teardown);

static KExpr *v(int i) { return kir_var(G, i); }
static KExpr *ci(int64_t c) { return kir_const_i(G, c); }
static KExpr *dN(void) { return kir_dim(G, SYM_N); }
static KExpr *dM(void) { return kir_dim(G, SYM_M); }
static KExpr *add_(KExpr *a, KExpr *b) { return kir_bin(G, KO_ADD, a, b); }
static KExpr *mul_(KExpr *a, KExpr *b) { return kir_bin(G, KO_MUL, a, b); }
/* (v0 * M) + v1: row-major [N, M] */
static KExpr *rm(void) { return add_(mul_(v(0), dM()), v(1)); }

/* Index expressions that are, and are not, contiguous and aligned in v1. */
Test(vector, index_proofs) {
    Kernel *k = kir_kernel_create(G, "idx", 0);
    int bx = kir_buffer(G, k, value("ix", OP_INPUT, DT_I64, 1), KB_INPUT, false);
    struct {
        const char *what;
        KExpr *index;
        int width;
        bool ok;
        int nconds, sym, mod; /* the condition it needs */
    } cases[] = {
        {"v1", v(1), 4, true, 0, 0, 0},
        {"row-major in a dim: d1 % 4 at run time", rm(), 4, true, 1, SYM_M, 4},
        {"the same for 8 lanes: d1 % 8", rm(), 8, true, 1, SYM_M, 8},
        {"row-major, a constant multiple of 4", add_(mul_(v(0), ci(768)), v(1)), 4, true, 0, 0, 0},
        {"rows of 12: 4 lanes", add_(mul_(v(0), ci(12)), v(1)), 4, true, 0, 0, 0},
        {"rows of 12: not 8", add_(mul_(v(0), ci(12)), v(1)), 8, false, 0, 0, 0},
        {"rows of 10", add_(mul_(v(0), ci(10)), v(1)), 4, false, 0, 0, 0},
        {"rows of 6 (gcd 2 leaves v0 % 2)", add_(mul_(v(0), ci(6)), v(1)), 4, false, 0, 0, 0},
        {"2 * d1: d1 % 2 suffices", add_(mul_(mul_(v(0), ci(2)), dM()), v(1)), 4, true, 1, SYM_M, 2},
        {"a misaligned offset (+1)", add_(rm(), ci(1)), 4, false, 0, 0, 0},
        {"an aligned offset (+8)", add_(rm(), ci(8)), 4, true, 1, SYM_M, 4},
        {"a negative aligned offset (-4)", kir_bin(G, KO_SUB, v(1), ci(4)), 4, true, 0, 0, 0},
        {"an offset of a dim", add_(v(1), dN()), 4, true, 1, SYM_N, 4},
        {"the other variable alone", add_(v(0), v(1)), 4, false, 0, 0, 0},
        {"coefficient 2", mul_(v(1), ci(2)), 4, false, 0, 0, 0},
        {"coefficient a dim (a column)", add_(mul_(v(1), dM()), v(0)), 4, false, 0, 0, 0},
        {"v1 not mentioned (a broadcast)", mul_(v(0), dM()), 4, false, 0, 0, 0},
        {"v1 and -v1 + v1", add_(kir_bin(G, KO_SUB, v(1), v(1)), v(1)), 4, false, 0, 0, 0},
        {"v1 * 5 - v1 * 4", kir_bin(G, KO_SUB, mul_(v(1), ci(5)), mul_(v(1), ci(4))), 4, true, 0, 0, 0},
        {"a gather row: x[v0] * 768 + v1", add_(mul_(kir_load(G, k, bx, v(0)), ci(768)), v(1)), 4, true, 0, 0,
         0},
        {"a gather row of unknown length: x[v0] + v1", add_(kir_load(G, k, bx, v(0)), v(1)), 4, false, 0, 0,
         0},
        {"v1 % 4", kir_bin(G, KO_MOD, v(1), ci(4)), 4, false, 0, 0, 0},
        {"a division in the rest", add_(kir_bin(G, KO_DIV, mul_(v(0), ci(8)), ci(2)), v(1)), 4, false, 0, 0,
         0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        CudaVecCond conds[CG_VEC_MAX_CONDS];
        int n = 0;
        bool ok = cg_cuda_vec_index(cases[c].index, 1, cases[c].width, conds, &n);
        cr_assert_eq(ok, cases[c].ok, "%s", cases[c].what);
        cr_assert_eq(n, cases[c].nconds, "%s", cases[c].what);
        if (n) cr_assert(conds[0].sym == cases[c].sym && conds[0].mod == cases[c].mod, "%s", cases[c].what);
    }
    /* conditions accumulate, one per dim with the larger modulus; a failing
     * index leaves them as they were */
    CudaVecCond conds[CG_VEC_MAX_CONDS];
    int n = 0;
    cr_assert(cg_cuda_vec_index(add_(mul_(mul_(v(0), ci(2)), dM()), v(1)), 1, 4, conds, &n));
    cr_assert(cg_cuda_vec_index(rm(), 1, 4, conds, &n));
    cr_assert(cg_cuda_vec_index(add_(v(1), mul_(dN(), dM())), 1, 4, conds, &n), "d0 * d1: either dim");
    cr_assert_eq(n, 1);
    cr_assert(conds[0].sym == SYM_M && conds[0].mod == 4);
    cr_assert(!cg_cuda_vec_index(add_(mul_(v(0), dN()), add_(v(1), ci(2))), 1, 4, conds, &n));
    cr_assert_eq(n, 1);
}

/* out = f(x, bias) over [N, last]: x and out row-major, bias per row (v0). */
static Kernel *vk(const char *name, DType in, DType out, KExpr *last) {
    Kernel *k = kir_kernel_create(G, name, 0);
    kir_new_var(k);
    kir_new_var(k);
    k->npar = 2;
    k->par_extent = arena_alloc(A, 2 * sizeof(KExpr *));
    k->par_extent[0] = dN();
    k->par_extent[1] = last ? last : dM();
    char buf[64];
    snprintf(buf, sizeof buf, "%s_x", name);
    kir_buffer(G, k, value(buf, OP_INPUT, in, 2), KB_INPUT, false); /* b0 */
    snprintf(buf, sizeof buf, "%s_bias", name);
    kir_buffer(G, k, value(buf, OP_INPUT, in, 1), KB_INPUT, false); /* b1 */
    snprintf(buf, sizeof buf, "%s_out", name);
    kir_buffer(G, k, value(buf, OP_ADD, out, 2), KB_PLANNED, true); /* b2 */
    return k;
}

static CudaVecPlan vplan(Kernel *k, bool alias) {
    cr_assert(kir_verify(G, k, D), "%s does not verify", k->name);
    CudaVecPlan p;
    cg_cuda_vec_plan(G, k, alias, &p);
    return p;
}

/* Which kernels take the vector mapping, and which accesses move as vectors. */
Test(vector, which_kernels_take_it) {
    /* a residual add: out = x + y, all row-major, 4 lanes, M % 4 at run time */
    Kernel *k = vk("res", DT_F32, DT_F32, NULL);
    int by = kir_buffer(G, k, value("res_y", OP_INPUT, DT_F32, 2), KB_INPUT, false);
    k->body = kir_store(G, 2, rm(), add_(kir_load(G, k, 0, rm()), kir_load(G, k, by, rm())));
    CudaVecPlan p = vplan(k, false);
    cr_assert(p.ok);
    cr_assert_eq(p.width, 4);
    cr_assert_eq(p.var, 1);
    cr_assert_eq(p.nacc, 3);
    cr_assert_eq(p.nconds, 1);
    cr_assert(p.conds[0].sym == SYM_M && p.conds[0].mod == 4);
    cr_assert(p.acc[2].store == k->body && p.acc[0].load == k->body->value->a);

    /* a bias per row (no v1: one value for all lanes) stays a scalar load; the
     * same load twice shares one vector register */
    k = vk("bias", DT_F32, DT_F32, NULL);
    KExpr *x1 = kir_load(G, k, 0, rm()), *x2 = kir_load(G, k, 0, rm());
    k->body = kir_store(G, 2, rm(), mul_(add_(x1, kir_load(G, k, 1, v(0))), x2));
    p = vplan(k, false);
    cr_assert(p.ok);
    cr_assert_eq(p.nacc, 3, "x twice and out; not the bias");
    cr_assert_eq(cg_cuda_vec_find(&p, x2, NULL), 1);
    cr_assert_eq(p.acc[1].owner, 0);
    cr_assert_eq(cg_cuda_vec_find(&p, k->body->value->a->b, NULL), -1);

    /* f16 in and out (a gelu): 8 lanes, uint4 */
    k = vk("gelu16", DT_F16, DT_F16, NULL);
    k->body = kir_store(G, 2, rm(), kir_un(G, KO_GELU, kir_load(G, k, 0, rm())));
    p = vplan(k, false);
    cr_assert(p.ok && p.width == 8 && p.nacc == 2 && p.conds[0].mod == 8);
    /* f32 to bf16 (a cast): 4 lanes, float4 in, uint2 out */
    k = vk("cast", DT_F32, DT_BF16, NULL);
    k->body = kir_store(G, 2, rm(), kir_load(G, k, 0, rm()));
    p = vplan(k, false);
    cr_assert(p.ok && p.width == 4 && p.nacc == 2);
    /* f16 rows of 12: not a multiple of 8, so 4 lanes (uint2) */
    k = vk("h12", DT_F16, DT_F16, ci(12));
    KExpr *r12 = add_(mul_(v(0), ci(12)), v(1));
    k->body = kir_store(G, 2, r12, kir_load(G, k, 0, r12));
    p = vplan(k, false);
    cr_assert(p.ok && p.width == 4 && p.nconds == 0);

    struct {
        const char *what;
        int change;
        bool ok;
        int nacc;
    } cases[] = {
        {"a transpose: the store strides along v1", 0, false, 0},
        {"a transpose: the load strides along v1", 1, false, 0},
        {"a store under an if", 2, false, 0},
        {"a load in a select's branch stays scalar", 3, true, 1},
        {"a load under an if stays scalar", 4, true, 1},
        {"a misaligned load (x[i + 1]) stays scalar", 5, true, 1},
        {"a misaligned store (out[i + 1])", 6, false, 0},
        {"an i8 output", 7, false, 0},
        {"i64 data in and out", 8, false, 0},
        {"rows of a constant 10", 9, false, 0},
        {"rows of a constant 3", 10, false, 0},
        {"rows of a constant 16: no run-time dim check", 11, true, 2},
        {"a loop in the body", 12, false, 0},
        {"two stores into one buffer", 13, false, 0},
        {"a buffer read and written", 14, false, 0},
        {"an i8 load stays scalar", 15, true, 1},
        {"the right operand of && stays scalar", 16, true, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int ch = cases[c].change;
        DType in = ch == 8    ? DT_I64
                   : ch == 15 ? DT_I8
                              : DT_F32,
              out = ch == 7   ? DT_I8
                    : ch == 8 ? DT_I64
                              : DT_F32;
        KExpr *last = ch == 9 ? ci(10) : ch == 10 ? ci(3) : ch == 11 ? ci(16) : NULL;
        k = vk("case", in, out, last);
        KExpr *idx = last ? add_(mul_(v(0), last), v(1)) : rm();
        KExpr *x = kir_load(G, k, 0, idx);
        KExpr *val = in == DT_F32 ? x : kir_cast(G, out == DT_I64 ? KT_I64 : KT_F32, x);
        if (out == DT_I8) val = kir_cast(G, KT_I64, x);
        KStmt *st = kir_store(G, 2, idx, val);
        KExpr *f0 = kir_const_f(G, 0);
        switch (ch) {
        case 0: st->index = add_(mul_(v(1), dN()), v(0)); break;
        case 1: x->a = add_(mul_(v(1), dN()), v(0)); break;
        case 2: st = kir_if(G, kir_bin(G, KO_GT, x, f0), st); break;
        case 3: st->value = kir_select(G, kir_bin(G, KO_GT, kir_load(G, k, 1, v(0)), f0), x, f0); break;
        case 4: {
            int l = kir_new_local(G, k, KT_F32);
            KStmt *s = kir_set(G, l, f0);
            kir_append(&s, kir_if(G, kir_bin(G, KO_GT, kir_load(G, k, 1, v(0)), f0), kir_set(G, l, x)));
            st->value = kir_local(G, k, l);
            kir_append(&s, st);
            st = s;
            break;
        }
        case 5: x->a = add_(idx, ci(1)); break;
        case 6: st->index = add_(idx, ci(1)); break;
        case 12: {
            int lv = kir_new_var(k);
            st = kir_for(G, lv, ci(2), st);
            break;
        }
        case 13: kir_append(&st, kir_store(G, 2, idx, f0)); break;
        case 14: st->value = add_(x, kir_load(G, k, 2, idx)); break;
        case 16:
            st->value = kir_select(
                G,
                kir_bin(G, KO_AND, kir_bin(G, KO_GT, kir_load(G, k, 1, v(0)), f0), kir_bin(G, KO_GT, x, f0)),
                f0, kir_const_f(G, 1));
            break;
        default: break;
        }
        k->body = st;
        p = vplan(k, false);
        cr_assert_eq(p.ok, cases[c].ok, "%s", cases[c].what);
        if (p.ok) cr_assert_eq(p.nacc, cases[c].nacc, "%s", cases[c].what);
        CudaKernel ck;
        cr_assert(cg_cuda_render(G, k, 0, &ck, D), "%s", cases[c].what);
        cr_assert_eq(ck.thread_points, cases[c].ok ? 4 : 1, "%s: %s", cases[c].what, ck.source);
        cr_assert_eq(strstr(ck.source, "dsc_q") != NULL, cases[c].ok, "%s", cases[c].what);
    }
}

/* In place (two buffers may share memory): loads after a store could read it,
 * so they keep the point mapping; loads before the stores are fine. */
Test(vector, in_place_only_with_loads_before_stores) {
    Kernel *k = vk("inplace", DT_F32, DT_F32, NULL);
    int o2 = kir_buffer(G, k, value("inplace_o2", OP_ADD, DT_F32, 2), KB_PLANNED, true);
    ((Node *)k->bufs[o2].node)->ann.buffer = k->bufs[2].node->ann.buffer; /* the plan shares their memory */
    KStmt *s = kir_store(G, 2, rm(), kir_load(G, k, 0, rm()));
    kir_append(&s, kir_store(G, o2, rm(), kir_load(G, k, 1, v(0))));
    k->body = s;
    CudaVecPlan p = vplan(k, true);
    cr_assert(!p.ok, "a load after the first store");
    p = vplan(k, false);
    cr_assert(p.ok);
    s->next->value = kir_const_f(G, 2);
    s->value = add_(kir_load(G, k, 0, rm()), kir_load(G, k, 1, v(0)));
    p = vplan(k, true);
    cr_assert(p.ok);
    CudaKernel ck;
    cr_assert(cg_cuda_render(G, k, 0, &ck, D));
    cr_assert_eq(ck.thread_points, 4);
    cr_assert(!strstr(ck.source, "__restrict__"), "%s", ck.source);
}

/* The rendered vector kernel: the run-time check, vector loads, lanes, vector
 * stores, a row's partial last vector and the misaligned fallback; the grid. */
Test(vector, renders_loads_lanes_stores_tail_and_fallback) {
    Kernel *k = vk("vadd", DT_F32, DT_F32, NULL);
    k->body = kir_store(G, 2, rm(), add_(kir_load(G, k, 0, rm()), kir_load(G, k, 1, v(0))));
    cr_assert(kir_verify(G, k, D));
    CudaKernel ck;
    cr_assert(cg_cuda_render(G, k, 0, &ck, D));
    const char *s = ck.source;
    cr_assert_eq(ck.thread_points, 4);
    cr_assert(
        strstr(s,
               "if (d1 % 4LL == 0 && ((unsigned long long)b0 & 15ull) == 0ull && ((unsigned long long)b2 & "
               "15ull) == 0ull) {"),
        "%s", s);
    cr_assert(strstr(s, "const long long dsc_rows = e0, dsc_vr = e1 / 4;"), "%s", s);
    cr_assert(!strstr(s, "dsc_q + 4 <= e1"), "e1 is d1, a multiple of 4 on this path: whole rows: %s", s);
    cr_assert(strstr(s, "const long long dsc_q = dsc_r % dsc_vr * 4;"), "%s", s);
    cr_assert(
        strstr(s, "const float4 dsc_p0 = reinterpret_cast<const float4 *>(b0)[((v0 * d1) + dsc_q) / 4];"),
        "%s", s);
    cr_assert(strstr(s, "const float dsc_x0[4] = {dsc_p0.x, dsc_p0.y, dsc_p0.z, dsc_p0.w};"), "%s", s);
    cr_assert(strstr(s, "#pragma unroll\n            for (int dsc_j = 0; dsc_j < 4; ++dsc_j) {"), "%s", s);
    cr_assert(strstr(s, "dsc_y1[dsc_j] = (dsc_x0[dsc_j] + b1[v0]);"), "the bias a scalar per lane: %s", s);
    cr_assert(!strstr(s, "const long long v1 = dsc_q + dsc_j;"), "v1 unused in the lanes: %s", s);
    cr_assert(strstr(s, "dsc_s1.w = dsc_y1[3];"), "%s", s);
    cr_assert(strstr(s, "reinterpret_cast<float4 *>(b2)[((v0 * d1) + dsc_q) / 4] = dsc_s1;"), "%s", s);
    cr_assert(
        strstr(s,
               "for (long long dsc_i = (long long)blockIdx.x * blockDim.x + threadIdx.x; dsc_i < dsc_rows * "
               "dsc_vr; dsc_i += (long long)gridDim.x * blockDim.x) {"),
        "%s", s);
    const char *fb = strstr(s, "} else { /* misaligned: one point a thread */");
    cr_assert(fb && strstr(fb, "dsc_i < dsc_n;") && strstr(fb, "const long long v1 = dsc_r % e1;") &&
                  strstr(fb, "b2[((v0 * d1) + v1)] = (b0[((v0 * d1) + v1)] + b1[v0]);"),
              "%s", s);
    /* 1000 rows of 30 points: 8 vectors a row (the last partial), 256 a block */
    int64_t dims[2] = {1000, 30}, grid;
    char err[64];
    cr_assert(cg_cuda_grid(&ck, dims, 0, &grid, err, sizeof err));
    cr_assert_eq(grid, 32);
    dims[1] = 32;
    cr_assert(cg_cuda_grid(&ck, dims, 0, &grid, err, sizeof err));
    cr_assert_eq(grid, 32);
    dims[1] = 3;
    cr_assert(cg_cuda_grid(&ck, dims, 0, &grid, err, sizeof err));
    cr_assert_eq(grid, 4, "rows of 3: one partial vector each");
    dims[1] = 30;
    cr_assert(cg_cuda_grid(&ck, dims, 7, &grid, err, sizeof err));
    cr_assert_eq(grid, 7);
    /* one parallel variable: one row, its last vector partial unless N % 4 == 0 */
    cur_op = KO_ADD;
    Kernel *k1 = elem_kernel("vadd1", DT_F32, DT_F32, f_bin);
    cr_assert(cg_cuda_render(G, k1, 0, &ck, D));
    s = ck.source;
    cr_assert(strstr(s, "const long long dsc_rows = 1, dsc_vr = (e0 + 3) / 4;"), "%s", s);
    cr_assert(strstr(s, "const long long dsc_q = dsc_i * 4;"), "%s", s);
    cr_assert(
        strstr(s,
               "if (dsc_q + 4 <= e0) {\n                const float4 dsc_p0 = reinterpret_cast<const float4 "
               "*>(b0)[dsc_q / 4];"),
        "%s", s);
    cr_assert(
        strstr(s,
               "} else { /* the row's last e0 % 4 points, one after the other */\n                for (long "
               "long v0 = dsc_q; v0 < e0; ++v0) {\n                    b2[v0] = (b0[v0] + b1[v0]);"),
        "%s", s);
    /* rows of M in a buffer of rows of 64 (no dim condition): the last vector of a row
     * is partial when M % 4 != 0 */
    Kernel *kp = vk("vpad", DT_F32, DT_F32, NULL);
    KExpr *ip = add_(mul_(v(0), ci(64)), v(1));
    kp->body = kir_store(G, 2, ip, kir_load(G, kp, 0, ip));
    cr_assert(kir_verify(G, kp, D));
    cr_assert(cg_cuda_render(G, kp, 0, &ck, D));
    s = ck.source;
    cr_assert(
        strstr(s,
               "if (((unsigned long long)b0 & 15ull) == 0ull && ((unsigned long long)b2 & 15ull) == 0ull) {"),
        "%s", s);
    cr_assert(strstr(s, "dsc_vr = (e1 + 3) / 4; /* the last one partial when e1 % 4 != 0 */"), "%s", s);
    cr_assert(strstr(s, "if (dsc_q + 4 <= e1) {"), "%s", s);
    cr_assert(
        strstr(s, "for (long long v1 = dsc_q; v1 < e1; ++v1) {\n                    b2[((v0 * 64LL) + v1)] = "
                  "b0[((v0 * 64LL) + v1)];"),
        "%s", s);
}

/* 16-bit buffers: eight halves unpacked from a uint4 with shifts, packed back
 * the same way; with an f32 buffer, four lanes and a uint2.  All of them
 * compile for every architecture without spills or local memory. */
Test(vector, halves_pack_into_uint4_and_compile_everywhere, .timeout = 300) {
    Kernel *ks[4];
    Kernel *k = ks[0] = vk("vgelu16", DT_F16, DT_F16, NULL);
    k->body =
        kir_store(G, 2, rm(), kir_un(G, KO_GELU, add_(kir_load(G, k, 0, rm()), kir_load(G, k, 1, v(0)))));
    cr_assert(kir_verify(G, k, D));
    CudaKernel ck;
    cr_assert(cg_cuda_render(G, k, 0, &ck, D));
    const char *s = ck.source;
    cr_assert_eq(ck.thread_points, 8);
    cr_assert(strstr(s, "d1 % 8LL == 0 && ((unsigned long long)b0 & 15ull) == 0ull"), "%s", s);
    cr_assert(strstr(s, "const uint4 dsc_p0 = reinterpret_cast<const uint4 *>(b0)[((v0 * d1) + dsc_q) / 8];"),
              "%s", s);
    cr_assert(strstr(s, "const unsigned short dsc_x0[8] = {(unsigned short)(dsc_p0.x & 0xffffu), (unsigned "
                        "short)(dsc_p0.x >> 16), (unsigned short)(dsc_p0.y & 0xffffu),"),
              "%s", s);
    cr_assert(strstr(s, "(unsigned short)(dsc_p0.w >> 16)};"), "%s", s);
    cr_assert(strstr(s, "dsc_y1[dsc_j] = dsc_f32_to_f16(dsc_gelu((dsc_f16_to_f32(dsc_x0[dsc_j]) + "
                        "dsc_f16_to_f32(b1[v0]))));"),
              "%s", s);
    cr_assert(strstr(s, "dsc_s1.w = (unsigned)dsc_y1[6] | ((unsigned)dsc_y1[7] << 16);"), "%s", s);
    cr_assert(strstr(s, "reinterpret_cast<uint4 *>(b2)[((v0 * d1) + dsc_q) / 8] = dsc_s1;"), "%s", s);
    k = ks[1] = vk("vcast", DT_F32, DT_BF16, NULL);
    k->body = kir_store(G, 2, rm(), kir_load(G, k, 0, rm()));
    cr_assert(cg_cuda_render(G, k, 0, &ck, D));
    s = ck.source;
    cr_assert_eq(ck.thread_points, 4);
    cr_assert(strstr(s, "((unsigned long long)b2 & 7ull) == 0ull"), "%s", s);
    cr_assert(strstr(s, "dsc_s1.y = (unsigned)dsc_y1[2] | ((unsigned)dsc_y1[3] << 16);"), "%s", s);
    cr_assert(strstr(s, "reinterpret_cast<uint2 *>(b2)[((v0 * d1) + dsc_q) / 4] = dsc_s1;"), "%s", s);
    k = ks[2] = vk("vi32", DT_I32, DT_I32, NULL);
    k->body =
        kir_store(G, 2, rm(), kir_wrap(G, DT_I32, add_(kir_load(G, k, 0, rm()), kir_load(G, k, 1, v(0)))));
    cr_assert(cg_cuda_render(G, k, 0, &ck, D));
    s = ck.source;
    cr_assert_eq(ck.thread_points, 4);
    cr_assert(
        strstr(s, "const int dsc_x0[4] = {(int)dsc_p0.x, (int)dsc_p0.y, (int)dsc_p0.z, (int)dsc_p0.w};"),
        "%s", s);
    cr_assert(strstr(s, "dsc_s1.z = (unsigned)dsc_y1[2];"), "%s", s);
    /* a point that uses v1 itself, a local and a trap */
    k = ks[3] = vk("vlocal", DT_F32, DT_F32, NULL);
    int l = kir_new_local(G, k, KT_F32);
    KStmt *b = kir_set(G, l, add_(kir_load(G, k, 0, rm()), kir_cast(G, KT_F32, v(1))));
    kir_append(&b, kir_if(G, kir_bin(G, KO_NE, kir_local(G, k, l), kir_local(G, k, l)),
                          kir_trap(G, 1, k->bufs[2].node, v(1), NULL, NULL)));
    kir_append(&b, kir_store(G, 2, rm(), kir_local(G, k, l)));
    k->body = b;
    cr_assert(kir_verify(G, k, D));
    cr_assert(cg_cuda_render(G, k, 0, &ck, D));
    s = ck.source;
    cr_assert_eq(ck.thread_points, 4);
    cr_assert(strstr(s, "const long long v1 = dsc_q + dsc_j;\n                float l0 = 0.0f;"), "%s", s);
    cr_assert(strstr(s, "dsc_y1[dsc_j] = l0;"), "%s", s);
    need_nvrtc();
    int sms[16];
    int nsms = hwdb_archs(sms, 16);
    compile_everywhere(ks, 4, sms, nsms);
}

TestSuite(nvrtc, .init = setup, .fini = teardown);

Test(nvrtc, arch_names) {
    cr_assert_eq(rt_nvrtc_parse_arch("sm_90"), 90);
    cr_assert_eq(rt_nvrtc_parse_arch("sm_100"), 100);
    cr_assert_eq(rt_nvrtc_parse_arch("86"), 86);
    cr_assert_eq(rt_nvrtc_parse_arch("8.9"), 89);
    cr_assert_eq(rt_nvrtc_parse_arch("sm_"), -1);
    cr_assert_eq(rt_nvrtc_parse_arch("sm_9"), -1);
    cr_assert_eq(rt_nvrtc_parse_arch("sm_90x"), -1);
    cr_assert_eq(rt_nvrtc_parse_arch(NULL), -1);
}

Test(nvrtc, parses_ptxas_statistics) {
    const char *log = "ptxas info    : 0 bytes gmem\n"
                      "ptxas info    : Compiling entry function 'other' for 'sm_90'\n"
                      "ptxas info    : Function properties for other\n"
                      "ptxas         .     8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads\n"
                      "ptxas info    : Used 255 registers, used 0 barriers, 1024 bytes smem, 380 bytes cmem[0]\n"
                      "ptxas info    : Compiling entry function 'k1' for 'sm_90'\n"
                      "ptxas info    : Function properties for k1\n"
                      "ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
                      "ptxas info    : Used 25 registers, used 1 barriers, 16 bytes smem, 392 bytes cmem[0]\n"
                      "ptxas info    : Compile time = 9.541 ms\n";
    CubinStats s;
    cr_assert(rt_nvrtc_parse_stats(log, "k1", &s));
    cr_assert_eq(s.registers, 25);
    cr_assert_eq(s.smem_bytes, 16);
    cr_assert_eq(s.cmem_bytes, 392);
    cr_assert_eq(s.spill_stores, 0);
    cr_assert(rt_nvrtc_parse_stats(log, "other", &s));
    cr_assert_eq(s.registers, 255);
    cr_assert_eq(s.stack_bytes, 8);
    cr_assert_eq(s.spill_stores, 4);
    cr_assert_eq(s.spill_loads, 4);
    cr_assert_eq(s.smem_bytes, 1024);
    cr_assert_not(rt_nvrtc_parse_stats(log, "k", &s));
    cr_assert_not(rt_nvrtc_parse_stats(NULL, "k1", &s));
}

Test(nvrtc, options) {
    const char *opts[NVRTC_MAX_OPTIONS];
    char storage[64];
    int n = rt_nvrtc_options(90, opts, storage, sizeof storage);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(opts[0], "--gpu-architecture=sm_90");
    cr_assert_str_eq(opts[1], "--std=c++17");
    cr_assert_str_eq(opts[2], "--ptxas-options=-v");
}

Test(nvrtc, supported_architectures_cover_the_hwdb) {
    need_nvrtc();
    int archs[64], sms[16];
    int n = rt_nvrtc_supported_archs(archs, 64, D), nsms = hwdb_archs(sms, 16);
    cr_assert_gt(n, 0);
    for (int i = 0; i < nsms; i++) {
        bool found = false;
        for (int j = 0; j < n && j < 64; j++) found |= archs[j] == sms[i];
        cr_assert(found, "NVRTC cannot compile for hwdb's sm_%d", sms[i]);
    }
}

Test(nvrtc, errors_name_the_kernel_and_carry_the_log) {
    need_nvrtc();
    NvrtcJob jobs[2] = {
        {.name = "good", .source = "extern \"C\" __global__ void good(float *p) { p[threadIdx.x] = 1.0f; }\n"},
        {.name = "broken", .source = "extern \"C\" __global__ void broken(float *p) { p[0] = undefined_thing; }\n"},
    };
    cr_assert_not(rt_nvrtc_compile_all(jobs, 2, 90, 2, D));
    cr_assert_eq(diag_error_count(D), 1);
    cr_assert(has_msg("NVRTC: kernel broken: nvrtcCompileProgram (sm_90) failed: NVRTC_ERROR_COMPILATION"));
    cr_assert(has_msg("undefined_thing"), "the log is in the message");
    cr_assert_not_null(jobs[0].cubin);
    cr_assert_null(jobs[1].cubin);
    rt_nvrtc_job_free(&jobs[0]);
    rt_nvrtc_job_free(&jobs[1]);
}

Test(nvrtc, missing_library_is_an_error_not_a_crash) {
    setenv("DSC_LIBNVRTC", "/nonexistent/libnvrtc.so", 1); /* this test runs in its own process */
    char why[600];
    cr_assert_not(rt_nvrtc_available(why, sizeof why));
    cr_assert(strstr(why, "NVRTC not available"), "%s", why);
    cr_assert(strstr(why, "/nonexistent/libnvrtc.so"), "%s", why);
    NvrtcJob job = {.name = "k", .source = "x"};
    cr_assert_not(rt_nvrtc_compile_all(&job, 1, 90, 1, D));
    cr_assert(has_msg("NVRTC not available"));
    int major, minor;
    cr_assert_not(rt_nvrtc_version(&major, &minor, D));
}

/* ---- SHA-256 and the cache ------------------------------------------------------------------- */

TestSuite(kcache, .init = setup, .fini = teardown);

static void sha_hex(const void *p, size_t n, char *hex) {
    uint8_t sum[32];
    rt_sha256(p, n, sum);
    rt_hex(sum, 32, hex);
}

Test(kcache, sha256_test_vectors) {
    char hex[65];
    sha_hex("", 0, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha_hex("abc", 3, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_hex(m, strlen(m), hex);
    cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* a million 'a' in uneven pieces */
    Sha256 s;
    rt_sha256_init(&s);
    char a[1024];
    memset(a, 'a', sizeof a);
    size_t left = 1000000, piece = 1;
    while (left) {
        size_t n = piece < left ? piece : left;
        rt_sha256_update(&s, a, n);
        left -= n;
        piece = piece % 997 + 13;
    }
    uint8_t sum[32];
    rt_sha256_final(&s, sum);
    rt_hex(sum, 32, hex);
    cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static char *tmpdir(void) {
    char *dir = strdup("/tmp/dsc-test-cache-XXXXXX");
    cr_assert(mkdtemp(dir));
    return dir;
}

static void rmtree(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static void key_of(KCacheKey *k, const char *source, const char *arch, const char *option) {
    rt_kcache_key_begin(k, "test");
    rt_kcache_key_add_str(k, "arch", arch);
    rt_kcache_key_add_str(k, "option", option);
    rt_kcache_key_add_str(k, "source", source);
    rt_kcache_key_finish(k);
}

Test(kcache, keys_cover_every_field_unambiguously) {
    KCacheKey a, b, c, d2, e;
    key_of(&a, "src", "sm_90", "-O3");
    key_of(&b, "src", "sm_90", "-O3");
    key_of(&c, "src", "sm_80", "-O3");
    key_of(&d2, "src", "sm_90", "-O2");
    key_of(&e, "src2", "sm_90", "-O3");
    cr_assert_str_eq(a.hex, b.hex);
    cr_assert_str_neq(a.hex, c.hex);
    cr_assert_str_neq(a.hex, d2.hex);
    cr_assert_str_neq(a.hex, e.hex);
    /* field boundaries are part of the text: ("ab","c") != ("a","bc") */
    KCacheKey x, y;
    rt_kcache_key_begin(&x, "t");
    rt_kcache_key_add_str(&x, "f", "ab");
    rt_kcache_key_add_str(&x, "f", "c");
    rt_kcache_key_finish(&x);
    rt_kcache_key_begin(&y, "t");
    rt_kcache_key_add_str(&y, "f", "a");
    rt_kcache_key_add_str(&y, "f", "bc");
    rt_kcache_key_finish(&y);
    cr_assert_str_neq(x.hex, y.hex);
    cr_assert_eq(strlen(a.hex), 64);
}

Test(kcache, miss_then_hit) {
    char *dir = tmpdir();
    KCache *c = rt_kcache_open(dir, D);
    cr_assert_not_null(c);
    KCacheKey k;
    key_of(&k, "kernel", "sm_90", "");
    void *data;
    size_t size;
    cr_assert_not(rt_kcache_get(c, &k, &data, &size, D));
    cr_assert(rt_kcache_put(c, &k, "payload", 7, D));
    cr_assert(rt_kcache_get(c, &k, &data, &size, D));
    cr_assert_eq(size, 7);
    cr_assert_eq(memcmp(data, "payload", 7), 0);
    free(data);
    char *path = rt_kcache_entry_path(c, &k);
    char want[600];
    snprintf(want, sizeof want, "%s/%.2s/%s.dsck", dir, k.hex, k.hex);
    cr_assert_str_eq(path, want);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_size, KCACHE_HEADER_BYTES + 7);
    KCacheStats s = rt_kcache_stats(c);
    cr_assert_eq(s.hits, 1);
    cr_assert_eq(s.misses, 1);
    cr_assert_eq(s.stores, 1);
    cr_assert_eq(diag_count(D), 0);
    /* an empty payload is a valid entry */
    KCacheKey k2;
    key_of(&k2, "empty", "sm_90", "");
    cr_assert(rt_kcache_put(c, &k2, "", 0, D));
    cr_assert(rt_kcache_get(c, &k2, &data, &size, D));
    cr_assert_eq(size, 0);
    free(data);
    free(path);
    rt_kcache_close(c);
    rmtree(dir);
    free(dir);
}

Test(kcache, null_cache_always_misses) {
    KCacheKey k;
    key_of(&k, "kernel", "sm_90", "");
    void *data;
    size_t size;
    cr_assert_not(rt_kcache_get(NULL, &k, &data, &size, D));
    cr_assert_not(rt_kcache_put(NULL, &k, "x", 1, D));
    cr_assert_null(rt_kcache_dir(NULL));
    cr_assert_eq(diag_count(D), 0);
}

Test(kcache, environment_selects_the_directory) {
    setenv("DSC_CACHE", "0", 1);
    const char *how;
    cr_assert_null(rt_kcache_default_dir(&how));
    cr_assert_str_eq(how, "DSC_CACHE=0");
    cr_assert_null(rt_kcache_open(NULL, D));
    cr_assert_eq(diag_count(D), 0, "off is not a warning");
    unsetenv("DSC_CACHE");
    setenv("DSC_CACHE_DIR", "/x/y", 1);
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    setenv("HOME", "/home/u", 1);
    char *d1 = rt_kcache_default_dir(&how);
    cr_assert_str_eq(d1, "/x/y");
    cr_assert_str_eq(how, "DSC_CACHE_DIR");
    unsetenv("DSC_CACHE_DIR");
    char *d2 = rt_kcache_default_dir(&how);
    cr_assert_str_eq(d2, "/xdg/dsc");
    setenv("XDG_CACHE_HOME", "relative", 1); /* the spec says: ignore relative paths */
    char *d3 = rt_kcache_default_dir(&how);
    cr_assert_str_eq(d3, "/home/u/.cache/dsc");
    cr_assert_str_eq(how, "HOME");
    free(d1);
    free(d2);
    free(d3);
}

/* Damages the entry file of k with `how`, then expects one warning, a miss,
 * the file gone, and a clean hit after a rewrite. */
static void corrupt_case(const char *how) {
    char *dir = tmpdir();
    KCache *c = rt_kcache_open(dir, D);
    KCacheKey k;
    key_of(&k, how, "sm_90", "");
    char payload[4096];
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (char)(i * 7);
    cr_assert(rt_kcache_put(c, &k, payload, sizeof payload, D));
    char *path = rt_kcache_entry_path(c, &k);
    if (strcmp(how, "flip") == 0) {
        FILE *f = fopen(path, "r+b");
        fseek(f, KCACHE_HEADER_BYTES + 1000, SEEK_SET);
        fputc(payload[1000] ^ 1, f);
        fclose(f);
    } else if (strcmp(how, "truncate") == 0) {
        cr_assert_eq(truncate(path, KCACHE_HEADER_BYTES + 100), 0);
    } else if (strcmp(how, "header") == 0) {
        cr_assert_eq(truncate(path, 10), 0);
    } else if (strcmp(how, "magic") == 0) {
        FILE *f = fopen(path, "r+b");
        fputc('X', f);
        fclose(f);
    } else if (strcmp(how, "longer") == 0) {
        FILE *f = fopen(path, "ab");
        fputs("junk", f);
        fclose(f);
    }
    void *data;
    size_t size;
    cr_assert_not(rt_kcache_get(c, &k, &data, &size, D), "%s: detected", how);
    cr_assert_eq(diag_count(D), 1, "%s: reported", how);
    DiagLevel level;
    const char *msg = diag_message(D, 0, &level, NULL);
    cr_assert_eq(level, DIAG_WARNING);
    cr_assert(strstr(msg, "kernel cache: corrupt entry"), "%s", msg);
    struct stat st;
    cr_assert_neq(stat(path, &st), 0, "%s: removed", how);
    cr_assert_not(rt_kcache_get(c, &k, &data, &size, D));
    cr_assert_eq(diag_count(D), 1, "reported once");
    cr_assert_eq(rt_kcache_stats(c).corrupt, 1);
    cr_assert(rt_kcache_put(c, &k, payload, sizeof payload, D));
    cr_assert(rt_kcache_get(c, &k, &data, &size, D), "%s: rebuilt", how);
    cr_assert_eq(size, sizeof payload);
    cr_assert_eq(memcmp(data, payload, size), 0);
    free(data);
    free(path);
    rt_kcache_close(c);
    rmtree(dir);
    free(dir);
}

Test(kcache, corrupt_payload_is_detected) { corrupt_case("flip"); }
Test(kcache, truncated_entry_is_detected) { corrupt_case("truncate"); }
Test(kcache, truncated_header_is_detected) { corrupt_case("header"); }
Test(kcache, bad_magic_is_detected) { corrupt_case("magic"); }
Test(kcache, overlong_entry_is_detected) { corrupt_case("longer"); }

Test(kcache, entry_under_another_key_is_detected) {
    char *dir = tmpdir();
    KCache *c = rt_kcache_open(dir, D);
    KCacheKey a, b;
    key_of(&a, "a", "sm_90", "");
    key_of(&b, "b", "sm_90", "");
    cr_assert(rt_kcache_put(c, &a, "AAAA", 4, D));
    char *pa = rt_kcache_entry_path(c, &a), *pb = rt_kcache_entry_path(c, &b), sub[600];
    snprintf(sub, sizeof sub, "%s/%.2s", dir, b.hex);
    mkdir(sub, 0777);
    cr_assert_eq(rename(pa, pb), 0);
    void *data;
    size_t size;
    cr_assert_not(rt_kcache_get(c, &b, &data, &size, D));
    cr_assert(has_msg("holds another key"));
    free(pa);
    free(pb);
    rt_kcache_close(c);
    rmtree(dir);
    free(dir);
}

Test(kcache, unwritable_cache_warns_once) {
    /* (root writes through permissions: the subdirectories are made files instead) */
    char *dir = tmpdir();
    KCache *c = rt_kcache_open(dir, D);
    KCacheKey a, b;
    key_of(&a, "a", "sm_90", "");
    key_of(&b, "b", "sm_90", "");
    /* make the entries' subdirectories files, so no entry can be created */
    char sub[600];
    snprintf(sub, sizeof sub, "%s/%.2s", dir, a.hex);
    FILE *f = fopen(sub, "w");
    fclose(f);
    snprintf(sub, sizeof sub, "%s/%.2s", dir, b.hex);
    f = fopen(sub, "w");
    if (f) fclose(f);
    cr_assert_not(rt_kcache_put(c, &a, "x", 1, D));
    cr_assert_not(rt_kcache_put(c, &b, "y", 1, D));
    cr_assert_eq(diag_count(D), 1);
    cr_assert(has_msg("kernel cache: cannot store an entry"));
    cr_assert_eq(rt_kcache_stats(c).store_failures, 2);
    rt_kcache_close(c);
    rmtree(dir);
    free(dir);
}

static int count_files(const char *dir, const char *needle) {
    int n = 0;
    DIR *dd = opendir(dir);
    if (!dd) return 0;
    struct dirent *e;
    while ((e = readdir(dd))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            n += count_files(path, needle);
        else if (strstr(e->d_name, needle))
            n++;
    }
    closedir(dd);
    return n;
}

/* Two processes store the same entry over and over while a third reads it:
 * the reader never sees a damaged entry, and one intact entry remains. */
Test(kcache, two_processes_writing_the_same_entry, .timeout = 60) {
    char *dir = tmpdir();
    KCacheKey k;
    key_of(&k, "shared", "sm_90", "");
    enum { SIZE = 1 << 18, ROUNDS = 150 };
    char *payload = malloc(SIZE);
    for (int i = 0; i < SIZE; i++) payload[i] = (char)(i * 31 + 7);
    pid_t kids[2];
    for (int w = 0; w < 2; w++) {
        kids[w] = fork();
        cr_assert_geq(kids[w], 0);
        if (kids[w] == 0) {
            Diag *d = diag_create();
            KCache *c = rt_kcache_open(dir, d);
            int fails = 0;
            for (int r = 0; r < ROUNDS; r++) fails += !rt_kcache_put(c, &k, payload, SIZE, d);
            rt_kcache_close(c);
            _exit(fails == 0 && diag_count(d) == 0 ? 0 : 1);
        }
    }
    KCache *c = rt_kcache_open(dir, D);
    int hits = 0;
    for (int r = 0; r < 4 * ROUNDS; r++) {
        void *data;
        size_t size;
        if (rt_kcache_get(c, &k, &data, &size, D)) {
            hits++;
            cr_assert_eq(size, SIZE);
            cr_assert_eq(memcmp(data, payload, SIZE), 0);
            free(data);
        }
    }
    for (int w = 0; w < 2; w++) {
        int status;
        cr_assert_eq(waitpid(kids[w], &status, 0), kids[w]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed", w);
    }
    cr_assert_eq(rt_kcache_stats(c).corrupt, 0, "a reader saw a damaged entry");
    cr_assert_eq(diag_count(D), 0);
    void *data;
    size_t size;
    cr_assert(rt_kcache_get(c, &k, &data, &size, D));
    cr_assert_eq(memcmp(data, payload, SIZE), 0);
    free(data);
    cr_assert_eq(count_files(dir, ".tmp."), 0, "temporary files left behind");
    cr_assert_eq(count_files(dir, ".dsck"), 1);
    (void)hits;
    rt_kcache_close(c);
    free(payload);
    rmtree(dir);
    free(dir);
}

/* ---- the cached builder ---------------------------------------------------------------------- */

TestSuite(build, .init = setup, .fini = teardown);

static KProgram small_program(void) {
    KProgram p = {.g = G};
    cur_op = KO_GELU;
    kir_program_add(&p, elem_kernel("p_gelu", DT_F16, DT_F16, f_un));
    cur_op = KO_MAX;
    kir_program_add(&p, elem_kernel("p_max", DT_F32, DT_F32, f_bin));
    kir_program_add(&p, reduce_kernel());
    return p;
}

static void build_ok(KProgram *p, CudaBuildOptions *o, CudaBuild *b) {
    bool ok = rt_cuda_build(G, p, o, b, D);
    if (!ok) dump_diag();
    cr_assert(ok);
}

Test(build, cold_then_warm_and_key_changes, .timeout = 120) {
    need_nvrtc();
    char *dir = tmpdir();
    KProgram p = small_program();
    CudaBuildOptions o = {.sm = 90, .cache_dir = dir, .hwdb_version = "1:test"};
    CudaBuild cold, warm;
    build_ok(&p, &o, &cold);
    cr_assert_eq(cold.n, 3);
    cr_assert_eq(cold.compiled, 3);
    cr_assert_eq(cold.hits, 0);
    cr_assert_str_eq(cold.cache_dir, dir);
    build_ok(&p, &o, &warm);
    cr_assert_eq(warm.hits, 3);
    cr_assert_eq(warm.compiled, 0);
    for (int i = 0; i < 3; i++) {
        cr_assert(warm.kernels[i].cached);
        cr_assert_eq(warm.kernels[i].cubin_size, cold.kernels[i].cubin_size);
        cr_assert_eq(memcmp(warm.kernels[i].cubin, cold.kernels[i].cubin, cold.kernels[i].cubin_size), 0);
        cr_assert_eq(memcmp(&warm.kernels[i].stats, &cold.kernels[i].stats, sizeof(CubinStats)), 0);
        cr_assert_str_eq(warm.kernels[i].key, cold.kernels[i].key);
    }
    cr_assert_lt(warm.total_ms, 100.0, "a warm build of 3 kernels takes %.1f ms", warm.total_ms);
    /* another architecture, block size or hwdb version: other keys, all misses */
    CudaBuildOptions o2[3] = {o, o, o};
    o2[0].sm = 80;
    o2[1].block = 128;
    o2[2].hwdb_version = "1:other";
    for (int v = 0; v < 3; v++) {
        CudaBuild b;
        build_ok(&p, &o2[v], &b);
        cr_assert_eq(b.hits, 0, "variant %d", v);
        cr_assert_eq(b.compiled, 3);
        for (int i = 0; i < 3; i++) cr_assert_str_neq(b.kernels[i].key, cold.kernels[i].key);
        rt_cuda_build_free(&b);
    }
    /* a damaged entry: one warning, that kernel recompiles, the rest hit */
    KCache *c = rt_kcache_open(dir, D);
    KCacheKey k = {0};
    memcpy(k.hex, cold.kernels[1].key, 65);
    char *path = rt_kcache_entry_path(c, &k);
    rt_kcache_close(c);
    cr_assert_eq(truncate(path, 100), 0);
    CudaBuild again;
    build_ok(&p, &o, &again);
    cr_assert_eq(again.hits, 2);
    cr_assert_eq(again.compiled, 1);
    cr_assert_eq(diag_warning_count(D), 1);
    cr_assert(has_msg("kernel cache: corrupt entry (truncated)"));
    diag_clear(D);
    CudaBuild last;
    build_ok(&p, &o, &last);
    cr_assert_eq(last.hits, 3);
    cr_assert_eq(diag_count(D), 0);
    /* writing .cu and .cubin files */
    char out[600];
    snprintf(out, sizeof out, "%s/out/sub", dir);
    cr_assert(rt_cuda_build_write(&last, out, D));
    char f[700];
    struct stat st;
    snprintf(f, sizeof f, "%s/p_gelu.cubin", out);
    cr_assert_eq(stat(f, &st), 0);
    cr_assert_eq((size_t)st.st_size, last.kernels[0].cubin_size);
    snprintf(f, sizeof f, "%s/reduce_rows.cu", out);
    cr_assert_eq(stat(f, &st), 0);
    cr_assert_eq((size_t)st.st_size, last.kernels[2].rec.source_len);
    char *line = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&line, &len);
    rt_cuda_build_print(&last, mem);
    fclose(mem);
    cr_assert(strstr(line, "p_gelu"), "%s", line);
    cr_assert(strstr(line, "3 kernels for sm_90 (256 threads per block): 0 compiled"), "%s", line);
    free(line);
    free(path);
    rt_cuda_build_free(&cold);
    rt_cuda_build_free(&warm);
    rt_cuda_build_free(&again);
    rt_cuda_build_free(&last);
    rmtree(dir);
    free(dir);
}

Test(build, no_cache_and_unsupported_arch, .timeout = 60) {
    need_nvrtc();
    KProgram p = small_program();
    CudaBuildOptions o = {.sm = 90, .no_cache = true};
    CudaBuild b;
    build_ok(&p, &o, &b);
    cr_assert_eq(b.compiled, 3);
    cr_assert_null(b.cache_dir);
    rt_cuda_build_free(&b);
    o.sm = 42;
    cr_assert_not(rt_cuda_build(G, &p, &o, &b, D));
    cr_assert(has_msg("cannot compile for sm_42"));
    rt_cuda_build_free(&b);
}

Test(build, sources_only) {
    char *dir = tmpdir();
    KProgram p = small_program();
    CudaBuildOptions wo = {.block = 128};
    cr_assert(rt_cuda_write_sources(G, &p, &wo, dir, D));
    char f[700];
    snprintf(f, sizeof f, "%s/p_max.cu", dir);
    FILE *fp = fopen(f, "r");
    cr_assert(fp);
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, fp);
    text[n] = 0;
    fclose(fp);
    cr_assert(strstr(text, "__launch_bounds__(128)"));
    cr_assert(strstr(text, "dsc_fmax"));
    rmtree(dir);
    free(dir);
}

Test(build, target_from_the_hardware_database) {
    setenv("DSC_HWDB", DSC_SOURCE_DIR "/data/hwdb.json", 1);
    char storage[100];
    CudaBuildOptions o = {.sm = 90};
    rt_cuda_target_from_hwdb(&o, storage, sizeof storage, D);
    if (diag_count(D)) dump_diag();
    cr_assert_eq(diag_count(D), 0);
    cr_assert_eq(o.block, 256);
    cr_assert(strncmp(o.hwdb_version, "1:", 2) == 0 && strlen(o.hwdb_version) == 66, "%s", o.hwdb_version);
    CudaBuildOptions o87 = {.sm = 87}; /* no entry: the nearest lower one's (sm_86) */
    rt_cuda_target_from_hwdb(&o87, storage, sizeof storage, D);
    cr_assert_eq(diag_count(D), 0);
    cr_assert_eq(o87.block, 256);
    setenv("DSC_HWDB", "/nonexistent/hwdb.json", 1);
    CudaBuildOptions none = {.sm = 90};
    rt_cuda_target_from_hwdb(&none, storage, sizeof storage, D);
    cr_assert_eq(diag_warning_count(D), 1);
    cr_assert(has_msg("no hardware database"));
    cr_assert_eq(none.block, 256);
    cr_assert_str_eq(none.hwdb_version, "none");
}

/* ---- the CLI: dsc compile --emit=cuda|cubin ------------------------------------------------- */

TestSuite(cli, .init = setup, .fini = teardown);

/* Runs a shell command; its standard output and error in *out; the exit status. */
static int run_cmd(const char *cmd, char **out) {
    char *full = NULL;
    cr_assert(asprintf(&full, "%s 2>&1", cmd) > 0);
    FILE *p = popen(full, "r");
    cr_assert(p);
    size_t cap = 1 << 16, n = 0;
    *out = malloc(cap);
    size_t got;
    while ((got = fread(*out + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 == cap) *out = realloc(*out, cap *= 2);
    }
    (*out)[n] = 0;
    int status = pclose(p);
    free(full);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const char *dsc_binary(void) {
    static const char *path = DSC_BINARY_DIR "/dsc";
    struct stat st;
    if (stat(path, &st) != 0) SKIP_UNLESS_CI("%s not built", path);
    return path;
}

Test(cli, emit_cuda_writes_one_file_per_kernel) {
    const char *dsc = dsc_binary();
    char *dir = tmpdir(), cmd[1024], *out;
    snprintf(cmd, sizeof cmd, "%s compile %s/examples/mlp.dsg --emit=cuda -o %s/k", dsc, DSC_SOURCE_DIR, dir);
    cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "ls %s/k | grep -c '\\.cu$' && grep -l '__launch_bounds__(256[,)]' %s/k/*.cu | wc -l", dir, dir);
    cr_assert_eq(run_cmd(cmd, &out), 0);
    int files = 0, bounded = 0;
    cr_assert_eq(sscanf(out, "%d %d", &files, &bounded), 2, "%s", out);
    cr_assert_gt(files, 0);
    cr_assert_eq(files, bounded);
    free(out);
    rmtree(dir);
    free(dir);
}

Test(cli, emit_cubin_for_a_target_prints_the_table, .timeout = 120) {
    need_nvrtc();
    const char *dsc = dsc_binary();
    char *dir = tmpdir(), cmd[1024], *out;
    snprintf(cmd, sizeof cmd,
             "DSC_CACHE_DIR=%s/cache DSC_HWDB=%s/data/hwdb.json %s compile %s/examples/mlp.dsg --target=sm_75 "
             "--emit=cubin -o %s/k",
             dir, DSC_SOURCE_DIR, dsc, DSC_SOURCE_DIR, dir);
    cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
    cr_assert(strstr(out, "kernel") && strstr(out, "regs") && strstr(out, "spill-st"), "%s", out);
    cr_assert(strstr(out, "for sm_75 (256 threads per block)"), "%s", out);
    cr_assert(strstr(out, "0 from the cache"), "%s", out);
    cr_assert(strstr(out, "0 with spills"), "%s", out);
    free(out);
    cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
    cr_assert(strstr(out, " 0 compiled"), "warm: %s", out);
    cr_assert(strstr(out, "cached"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "ls %s/k/*.cubin | wc -l; ls %s/k/*.cu | wc -l", dir, dir);
    cr_assert_eq(run_cmd(cmd, &out), 0);
    int cubins = 0, cus = 0;
    cr_assert_eq(sscanf(out, "%d %d", &cubins, &cus), 2, "%s", out);
    cr_assert_gt(cubins, 0);
    cr_assert_eq(cubins, cus);
    free(out);
    rmtree(dir);
    free(dir);
}

Test(cli, usage_errors) {
    const char *dsc = dsc_binary();
    char cmd[1024], *out;
    snprintf(cmd, sizeof cmd, "%s compile %s/examples/mlp.dsg --emit=cuda", dsc, DSC_SOURCE_DIR);
    cr_assert_eq(run_cmd(cmd, &out), 2);
    cr_assert(strstr(out, "need -o DIR"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s compile %s/examples/mlp.dsg --emit=cubin --target=hopper -o /tmp/x", dsc,
             DSC_SOURCE_DIR);
    cr_assert_eq(run_cmd(cmd, &out), 2);
    cr_assert(strstr(out, "--target needs a GPU architecture like sm_90, got 'hopper'"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s compile %s/examples/mlp.dsg --target=sm_90", dsc, DSC_SOURCE_DIR);
    cr_assert_eq(run_cmd(cmd, &out), 2);
    cr_assert(strstr(out, "--target applies to --emit=cuda and --emit=cubin"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s compile --help", dsc);
    cr_assert_eq(run_cmd(cmd, &out), 0);
    cr_assert(strstr(out, "--emit=cubin") && strstr(out, "--target=sm_XX"), "%s", out);
    free(out);
}

Test(cli, unsupported_target_is_an_error, .timeout = 60) {
    need_nvrtc();
    const char *dsc = dsc_binary();
    char *dir = tmpdir(), cmd[1024], *out;
    snprintf(cmd, sizeof cmd, "DSC_CACHE=0 %s compile %s/examples/mlp.dsg --target=sm_42 --emit=cubin -o %s/k", dsc,
             DSC_SOURCE_DIR, dir);
    cr_assert_eq(run_cmd(cmd, &out), 1, "%s", out);
    cr_assert(strstr(out, "cannot compile for sm_42"), "%s", out);
    free(out);
    rmtree(dir);
    free(dir);
}

/* ---- every example, every architecture ------------------------------------------------------- */

#if HAVE_LOWER
TestSuite(examples, .init = setup, .fini = teardown);

/* The attention kernel's online-softmax loop (Kernel.osm, ir/kir.h): one warp
 * per query row, the lanes split the keys and merge their states. */
Test(examples, attention_splits_its_keys_over_a_warp) {
    Graph *g = fe_compile_file(A, D, DSC_SOURCE_DIR "/examples/bert_layer_attention.dsg");
    if (!g) dump_diag();
    cr_assert(g);
    PipelineOptions po = {.opt_level = 2};
    cr_assert(pass_run_pipeline(g, D, &po));
    KProgram prog = {.g = g};
    cr_assert(cg_lower(g, &prog, D));
    int found = 0;
    for (int i = 0; i < prog.nkernels; i++) {
        const Kernel *k = prog.kernels[i];
        if (!k->osm) continue;
        found++;
        cr_assert_eq(k->osm->nacc, 64, "one accumulator per value channel");
        CudaKernel ck;
        cr_assert(cg_cuda_render(g, k, 0, &ck, D));
        cr_assert_eq(ck.point_threads, 32, "%s", ck.source);
        char want[160];
        snprintf(want, sizeof want, "for (long long v%d = dsc_lane, v%d_end = d", k->osm->var, k->osm->var);
        cr_assert(strstr(ck.source, want), "%s: %s", want, ck.source);
        snprintf(want, sizeof want, "const float dsc_om = __shfl_xor_sync(0xffffffffu, l%d, dsc_o);", k->osm->m);
        cr_assert(strstr(ck.source, want), "%s", ck.source);
        snprintf(want, sizeof want, "l%d = l%d * dsc_ca + dsc_oa63 * dsc_cb;", k->osm->acc[63], k->osm->acc[63]);
        cr_assert(strstr(ck.source, want), "%s", ck.source);
    }
    cr_assert_eq(found, 1);
}

static KProgram lower_example(const char *name, int opt, DType prec) {
    char path[512];
    snprintf(path, sizeof path, DSC_SOURCE_DIR "/examples/%s.dsg", name);
    Graph *g = fe_compile_file(A, D, path);
    if (!g) dump_diag();
    cr_assert(g, "%s", path);
    if (prec != DT_F32) {
        g->precision = arena_alloc(A, sizeof(PrecisionRequest));
        g->precision->dtype = prec;
    }
    PipelineOptions po = {.opt_level = opt};
    cr_assert(pass_run_pipeline(g, D, &po), "%s: passes", path);
    KProgram prog = {.g = g};
    bool ok = cg_lower(g, &prog, D);
    if (!ok) dump_diag();
    cr_assert(ok, "%s: lowering", path);
    return prog;
}

/* The written buffer of a kernel with one store (NULL otherwise). */
static const Node *stored_node(const Kernel *k) {
    const Node *n = NULL;
    for (int i = 0; i < k->nbufs; i++)
        if (k->bufs[i].written) {
            if (n) return NULL;
            n = k->bufs[i].node;
        }
    return n;
}

/* Which kernels of the examples take the vector mapping: BERT unfused (-O0)
 * has its elementwise operators as kernels of their own -- the residual adds,
 * gelu, the score scaling and the mask add, and the head split/merge
 * transposes (perm [0, 2, 1, 3]: the last axis stays) take it; the key
 * transpose (perm [0, 1, 3, 2]: the last axis moves) does not, nor do the
 * softmax, layernorm and GEMM kernels (loops).  At f16 precision the weight
 * casts take it (float4 in, uint2 out).  All of them compile for every
 * architecture without spills. */
Test(examples, elementwise_kernels_take_the_vector_mapping, .timeout = 300) {
    KProgram prog = lower_example("bert_layer", 0, DT_F32);
    Graph *g = prog.g;
    int counts[OP_COUNT][2] = {{0}}, transposes[2] = {0}, loops = 0;
    Kernel *vk[64];
    int nvk = 0;
    for (int i = 0; i < prog.nkernels; i++) {
        Kernel *k = prog.kernels[i];
        CudaKernel ck;
        cr_assert(cg_cuda_render(g, k, 0, &ck, D));
        const Node *out = stored_node(k);
        bool vec = ck.thread_points > 1;
        bool has_loop = false;
        for (const KStmt *s = k->body; s; s = s->next)
            has_loop |= s->kind == KS_FOR;
        if (has_loop) {
            loops++;
            cr_assert(!vec, "%s has a loop: %s", k->name, ck.source);
            continue;
        }
        cr_assert(out, "%s", k->name);
        if (vec) {
            cr_assert_eq(ck.thread_points, 4, "%s", k->name);
            cr_assert(strstr(ck.source, "reinterpret_cast<float4 *>(b"), "%s: %s", k->name, ck.source);
            cr_assert_lt(nvk, 64);
            vk[nvk++] = k;
        }
        if (out->op == OP_TRANSPOSE) {
            const Attr *perm = ir_attr(out, "perm");
            cr_assert(perm && perm->n == 4);
            bool keeps_last = perm->ints[3] == 3;
            cr_assert_eq(vec, keeps_last, "%s (perm ..., %lld): %s", k->name, (long long)perm->ints[3],
                         ck.source);
            transposes[keeps_last]++;
        } else {
            counts[out->op][vec]++;
        }
    }
    cr_assert_gt(loops, 0);
    cr_assert_eq(transposes[0], 1, "the key transpose");
    cr_assert_geq(transposes[1], 3, "head split and merge");
    cr_assert_eq(counts[OP_GELU][1], 1, "gelu");
    cr_assert_eq(counts[OP_GELU][0], 0);
    cr_assert_geq(counts[OP_ADD][1], 3, "two residual adds and the mask add");
    cr_assert_eq(counts[OP_ADD][0], 0);
    cr_assert_geq(counts[OP_MUL][1], 1, "the score scaling");
    cr_assert_eq(counts[OP_MUL][0], 0);

    /* the mask add: scores [B, 12, S, S] + mask [B, 1, 1, S], both vectors, S % 4 at run time */
    bool mask = false;
    for (int i = 0; i < nvk; i++) {
        CudaKernel ck;
        cr_assert(cg_cuda_render(g, vk[i], 0, &ck, D));
        if (strstr(ck.source, "mask f32[B,1,1,S]")) {
            mask = true;
            cr_assert(strstr(ck.source, "if (d1 % 4LL == 0 && "), "%s", ck.source);
            cr_assert(strstr(ck.source, "reinterpret_cast<const float4 *>(b1)[((v0 * d1) + dsc_q) / 4];"),
                      "%s", ck.source);
        }
    }
    cr_assert(mask);

    /* at f16: the load-time weight casts, f32 to f16 */
    KProgram p16 = lower_example("bert_layer", 2, DT_F16);
    int casts = 0;
    for (int i = 0; i < p16.nkernels; i++) {
        Kernel *k = p16.kernels[i];
        if (!k->load_time) continue;
        CudaKernel ck;
        cr_assert(cg_cuda_render(p16.g, k, 0, &ck, D));
        cr_assert_eq(ck.thread_points, 4, "%s: %s", k->name, ck.source);
        cr_assert(strstr(ck.source, "reinterpret_cast<uint2 *>(b1)["), "%s", ck.source);
        casts++;
    }
    cr_assert_geq(casts, 6);

    /* cnn_block: the folded batchnorm weights [16, 3, 3, 3] have rows of 3 (never a
     * vector); the folded bias [16] is one */
    KProgram pc = lower_example("cnn_block", 2, DT_F32);
    int cvec = 0, cpoint = 0;
    for (int i = 0; i < pc.nkernels; i++) {
        Kernel *k = pc.kernels[i];
        if (!k->load_time) continue;
        CudaKernel ck;
        cr_assert(cg_cuda_render(pc.g, k, 0, &ck, D));
        if (k->npar == 4) {
            cr_assert_eq(ck.thread_points, 1, "%s", ck.source);
            cpoint++;
        } else if (k->npar == 1) {
            cr_assert_eq(ck.thread_points, 4, "%s", ck.source);
            cvec++;
        }
    }
    cr_assert(cvec == 2 && cpoint == 2, "%d %d", cvec, cpoint);

    need_nvrtc();
    int sms[16];
    int nsms = hwdb_archs(sms, 16);
    G = g; /* compile_everywhere renders in G */
    compile_everywhere(vk, nvk, sms, nsms);
}

Test(examples, every_kernel_compiles_for_every_arch_without_spills, .timeout = 900) {
    need_nvrtc();
    static const char *examples[] = {"mlp", "ffn_block", "cnn_block", "bert_layer_attention", "bert_layer"};
    /* at every precision (passes/precision.c) */
    static const DType precs[] = {DT_F32, DT_F16, DT_BF16, DT_I8};
    int sms[16];
    int nsms = hwdb_archs(sms, 16);
    /* each arch's configuration as a load takes it from the hardware database */
    CudaBuildOptions bo[16];
    char versions[16][100];
    for (int a = 0; a < nsms; a++) {
        bo[a] = (CudaBuildOptions){.sm = sms[a]};
        rt_cuda_target_from_hwdb(&bo[a], versions[a], sizeof versions[a], D);
        cr_assert_eq(diag_count(D), 0, "sm_%d: the hardware database entry is not usable", sms[a]);
    }
    /* every distinct kernel of every example as rendered for each arch (tensor-core
     * GEMMs from sm_80 on), then one parallel batch */
    int n = 0;
    enum { MAX_JOBS = 4096 };
    NvrtcJob *jobs = calloc(MAX_JOBS, sizeof *jobs);
    for (size_t e = 0; e < sizeof examples / sizeof *examples * 4; e++) {
        char path[512];
        snprintf(path, sizeof path, DSC_SOURCE_DIR "/examples/%s.dsg", examples[e / 4]);
        Graph *g = fe_compile_file(A, D, path);
        if (!g) dump_diag();
        cr_assert(g, "%s", path);
        if (precs[e % 4] != DT_F32) {
            g->precision = arena_alloc(A, sizeof(PrecisionRequest));
            g->precision->dtype = precs[e % 4];
        }
        PipelineOptions po = {.opt_level = 2};
        cr_assert(pass_run_pipeline(g, D, &po), "%s: passes", path);
        KProgram prog = {.g = g};
        bool ok = cg_lower(g, &prog, D);
        if (!ok) dump_diag();
        cr_assert(ok, "%s: lowering", path);
        cr_assert_gt(prog.nkernels, 0);
        for (int i = 0; i < prog.nkernels; i++) {
            for (int a = 0; a < nsms; a++) {
                CudaKernel rec;
                cr_assert(cg_cuda_render_with(g, prog.kernels[i], bo[a].block, sms[a], &bo[a].gemm, &rec, D),
                          "%s: render", path);
                bool seen = false;
                for (int j = 0; j < n && !seen; j++)
                    seen = jobs[j].sm == sms[a] && strcmp(jobs[j].source, rec.source) == 0;
                if (seen) continue;
                cr_assert_lt(n, MAX_JOBS);
                jobs[n++] = (NvrtcJob){.name = rec.name, .source = rec.source, .sm = sms[a]};
            }
        }
    }
    bool ok = rt_nvrtc_compile_all(jobs, n, 0, 0, D);
    if (!ok) dump_diag();
    cr_assert(ok);
    for (int j = 0; j < n; j++) {
        cr_assert_gt(jobs[j].stats.registers, 0, "%s sm_%d: registers parsed", jobs[j].name, jobs[j].sm);
        cr_assert_eq(jobs[j].stats.spill_stores + jobs[j].stats.spill_loads, 0, "%s spills on sm_%d", jobs[j].name,
                     jobs[j].sm);
        cr_assert_eq(jobs[j].stats.stack_bytes, 0, "%s uses local memory on sm_%d", jobs[j].name, jobs[j].sm);
        rt_nvrtc_job_free(&jobs[j]);
    }
    free(jobs);
}
#endif
