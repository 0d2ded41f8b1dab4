/* Block sparsity: the pruning applied at load time, the pattern-specialised
 * kernels against the reference interpreter on the pruned weights, and the
 * pattern in the kernel cache key.
 *
 * Every case is a one-GEMM model (linear with bias, or matmul with a 2-D
 * param on the right) whose weight carries @sparse.  Its weights are seeded
 * random, optionally with whole block rows and block columns scaled down so
 * that pruning empties them; rt_sparse_apply prunes them as a run does; the
 * interpreter on those weights is the reference, and the lowered program,
 * with the sparse kernel forced, runs on the kernel-IR evaluator and the host
 * JIT (f32, and f16 cases at 2e-3).  Relative L2 error <= 1e-5 (f32 reassociation: the sparse kernel sums
 * a row's kept blocks in another order than the interpreter).  Each case also
 * checks that a kernel with the pattern tables was lowered (so the test cannot
 * pass on the dense path), that the pruned weight is zero exactly outside the
 * kept blocks, and that the dense choice gives the same outputs.  Block
 * shapes: 1x1, 4x4, 16x16, 32x32, 8x4, 4x8, 3x5, on sizes that leave partial
 * edge blocks; densities 0 (every block empty), 1, and in between. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cuda/render.h"
#include "codegen/kir_eval.h"
#include "codegen/lower.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/exec.h"
#include "runtime/host_jit.h"
#include "runtime/hwdb.h"
#include "runtime/interp.h"
#include "runtime/nvrtc.h"
#include "runtime/sparse.h"

#include "../support.h"

static uint64_t next_u64(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s) { return (double)(next_u64(s) >> 11) / 9007199254740992.0 * 2 - 1; }

typedef struct {
    bool matmul;
    int64_t m, n, k; /* x [m, k]; linear weight [n, k], matmul weight [k, n] */
    int br, bc;
    double density;
    bool holes; /* scale down block rows and columns so pruning empties them */
    bool half;  /* f16 model (else f32) */
    uint64_t seed;
} Case;

typedef struct {
    Arena *a;
    Diag *d;
    Graph *g;
    Tensor *in[1], *prm[2];
    int nprm;
} Model;

static void random_fill(Tensor *t, uint64_t *rng, double scale) {
    int64_t n = rt_numel(t->rank, t->shape);
    for (int64_t i = 0; i < n; i++)
        rt_set(t, i, uniform(rng) * scale);
}

static void die_diag(Diag *d, const char *what) {
    char *text = test_diag_text(d, false);
    cr_assert_fail("%s: %s", what, text);
    free(text);
}

static void build(Model *md, const Case *c, int opt) {
    md->a = arena_create();
    md->d = diag_create();
    char src[1024], bias[64] = "";
    int64_t wr = c->matmul ? c->k : c->n, wc = c->matmul ? c->n : c->k;
    const char *dt = c->half ? "f16" : "f32";
    if (!c->matmul) snprintf(bias, sizeof bias, "  param b : %s[%lld]\n", dt, (long long)c->n);
    snprintf(src, sizeof src,
             "model t {\n"
             "  input x : %s[%lld, %lld]\n"
             "  param w : %s[%lld, %lld] @sparse(block=[%d, %d], density=%.17g)\n"
             "%s"
             "  output y = %s\n"
             "}\n",
             dt, (long long)c->m, (long long)c->k, dt, (long long)wr, (long long)wc, c->br, c->bc, c->density,
             bias, c->matmul ? "matmul(x, w)" : "linear(x, w, b)");
    md->g = fe_compile_source(md->a, md->d, "t.dsg", src, strlen(src));
    if (!md->g) die_diag(md->d, "compile");
    PipelineOptions po = {.opt_level = opt};
    if (!pass_run_pipeline(md->g, md->d, &po)) die_diag(md->d, "pipeline");
    uint64_t rng = c->seed;
    int64_t xs[2] = {c->m, c->k}, ws[2] = {wr, wc}, bs[1] = {c->n};
    DType dty = c->half ? DT_F16 : DT_F32;
    md->in[0] = rt_tensor_new(dty, 2, xs);
    random_fill(md->in[0], &rng, 1);
    md->prm[0] = rt_tensor_new(dty, 2, ws);
    random_fill(md->prm[0], &rng, 1 / sqrt((double)c->k));
    if (c->holes) { /* block rows 1, 3, 4 and block column 2 small: pruned first */
        for (int64_t y = 0; y < wr; y++)
            for (int64_t x = 0; x < wc; x++) {
                int64_t by = y / c->br, bx = x / c->bc;
                if (by == 1 || by == 3 || by == 4 || bx == 2)
                    rt_set(md->prm[0], y * wc + x, rt_get(md->prm[0], y * wc + x) * 1e-3);
            }
    }
    md->nprm = 1;
    if (!c->matmul) {
        md->prm[1] = rt_tensor_new(dty, 1, bs);
        random_fill(md->prm[1], &rng, 1);
        md->nprm = 2;
    }
    /* params in the order of the graph's OP_PARAM nodes: w, then b */
    if (!rt_sparse_apply(md->g, md->prm, md->d)) die_diag(md->d, "prune");
}

static void model_free(Model *md) {
    rt_tensor_free(md->in[0]);
    for (int i = 0; i < md->nprm; i++)
        rt_tensor_free(md->prm[i]);
    diag_destroy(md->d);
    arena_destroy(md->a);
}

static const Node *param_w(const Graph *g) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_PARAM && strcmp(g->nodes[i]->name, "w") == 0) return g->nodes[i];
    return NULL;
}

static double rel_err(const Tensor *got, const Tensor *want) {
    int64_t n = rt_numel(want->rank, want->shape);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = rt_get(got, i), b = rt_get(want, i);
        num += (a - b) * (a - b);
        den += b * b;
    }
    double floor = 0.1 * sqrt((double)n);
    return sqrt(num) / fmax(sqrt(den), floor);
}

static int sparse_kernels(const KProgram *p) {
    int n = 0;
    for (int i = 0; i < p->nkernels; i++)
        n += p->kernels[i]->ntables > 0;
    return n;
}

/* The pruned weight is zero exactly outside the kept blocks (a kept block
 * may hold zeros of its own only where the weight was zero: never here). */
static void check_pruned(const Model *md, const Case *c) {
    const IrSparse *s = param_w(md->g)->ann.sparse;
    cr_assert(s && s->have_pattern);
    int64_t wr = s->rows, wc = s->cols, kept = 0;
    for (int64_t b = 0; b < s->nbr * s->nbc; b++)
        kept += s->keep[b];
    cr_assert_eq(kept, s->kept);
    cr_assert_eq(kept, ir_sparse_kept(c->density, s->nbr * s->nbc));
    for (int64_t y = 0; y < wr; y++)
        for (int64_t x = 0; x < wc; x++) {
            bool k = s->keep[(y / c->br) * s->nbc + x / c->bc];
            cr_assert_eq(rt_get(md->prm[0], y * wc + x) != 0, k, "w[%lld,%lld]", (long long)y, (long long)x);
        }
}

static void run_case(const Case *c, int opt) {
    Model md;
    build(&md, c, opt);
    check_pruned(&md, c);
    Tensor *ref = NULL;
    if (!rt_interp_run(md.g, md.in, 1, md.prm, &ref, md.d)) die_diag(md.d, "interpreter");
    static const char *const names[] = {"sparse", "sparse packed", "dense"};
    double tol = c->half ? 2e-3 : 1e-5; /* as the equivalence suite: f16 results round to f16 */
    IrSparse *sp = (IrSparse *)param_w(md.g)->ann.sparse;
    for (int choice = 0; choice < 3; choice++) {
        rt_sparse_decide(md.g, NULL, choice < 2 ? SPARSE_KERNEL_SPARSE : SPARSE_KERNEL_DENSE);
        sp->packed = choice == 1; /* the host form of a linear (a matmul has one form) */
        KProgram prog = {0};
        if (!cg_lower(md.g, &prog, md.d)) die_diag(md.d, "lower");
        cr_assert_eq(sparse_kernels(&prog), choice < 2 ? 1 : 0, "pattern kernels lowered");
        bool packed = false;
        for (int i = 0; i < prog.nkernels; i++)
            for (int b = 0; b < prog.kernels[i]->nbufs; b++)
                packed |= prog.kernels[i]->bufs[b].role == KB_DATA;
        cr_assert_eq(packed, choice == 1 && !c->matmul, "packed form used");
        Tensor *out = NULL;
        if (!rt_exec_run(md.g, &prog, md.in, 1, md.prm, &out, cg_kir_eval, NULL, md.d))
            die_diag(md.d, "kir eval");
        double e = rel_err(out, ref);
        cr_assert_leq(e, tol, "kir eval (%s): rel error %g", names[choice], e);
        rt_tensor_free(out);
        if (rt_host_available()) {
            HostOptions ho = {.no_cache = true};
            HostBackend *hb = rt_host_create(&ho, md.d);
            if (!hb || !rt_host_prepare(hb, md.g, &prog, md.d) ||
                !rt_exec_run(md.g, &prog, md.in, 1, md.prm, &out, rt_host_launch, hb, md.d))
                die_diag(md.d, "host");
            e = rel_err(out, ref);
            cr_assert_leq(e, tol, "host (%s): rel error %g", names[choice], e);
            rt_tensor_free(out);
            rt_host_destroy(hb);
        }
    }
    rt_tensor_free(ref);
    model_free(&md);
}

static const int shapes[][2] = {{1, 1}, {4, 4}, {16, 16}, {32, 32}, {8, 4}, {4, 8}, {3, 5}};
enum { NSHAPES = sizeof shapes / sizeof shapes[0] };

Test(sparse, linear_every_block_shape, .timeout = 600) {
    static const double dens[] = {0, 1, 0.5, 0.3, 0.07};
    for (int s = 0; s < NSHAPES; s++)
        for (size_t di = 0; di < sizeof dens / sizeof dens[0]; di++)
            for (int holes = 0; holes < 2; holes++) {
                int br = shapes[s][0], bc = shapes[s][1];
                /* sizes that leave partial blocks at both edges (not for 1x1) */
                Case c = {.m = 7,
                          .n = 6 * br + (br > 1 ? br / 2 + 1 : 0),
                          .k = 6 * bc + (bc > 1 ? bc - 1 : 0),
                          .br = br,
                          .bc = bc,
                          .density = dens[di],
                          .holes = holes,
                          .seed = 1000u + (uint64_t)(s * 100 + (int)di * 10 + holes)};
                run_case(&c, holes ? 0 : 2);
            }
}

Test(sparse, matmul_every_block_shape, .timeout = 600) {
    static const double dens[] = {0, 1, 0.4};
    for (int s = 0; s < NSHAPES; s++)
        for (size_t di = 0; di < sizeof dens / sizeof dens[0]; di++) {
            int br = shapes[s][0], bc = shapes[s][1];
            Case c = {.matmul = true,
                      .m = 5,
                      .n = 5 * bc + (bc > 1 ? 1 : 0),
                      .k = 5 * br + (br > 2 ? 2 : 0),
                      .br = br,
                      .bc = bc,
                      .density = dens[di],
                      .holes = di == 2,
                      .seed = 2000u + (uint64_t)(s * 10 + (int)di)};
            run_case(&c, 2);
        }
}

/* f16 weights and activations (the packed copy keeps the weight's dtype). */
Test(sparse, half_precision, .timeout = 300) {
    Case a = {
        .m = 6, .n = 40, .k = 37, .br = 16, .bc = 8, .density = 0.5, .holes = true, .half = true, .seed = 11};
    run_case(&a, 2);
    Case b = {
        .matmul = true, .m = 3, .n = 20, .k = 18, .br = 4, .bc = 4, .density = 0.3, .half = true, .seed = 12};
    run_case(&b, 2);
}

/* Blocks dividing the weight exactly (no tail table), and a bigger case. */
Test(sparse, dividing_and_larger, .timeout = 600) {
    Case a = {.m = 9, .n = 64, .k = 96, .br = 16, .bc = 16, .density = 0.25, .holes = true, .seed = 7};
    run_case(&a, 2);
    Case b = {.m = 33, .n = 96, .k = 160, .br = 8, .bc = 4, .density = 0.6, .seed = 8};
    run_case(&b, 1);
}

/* The pattern is part of the kernel: two patterns give two different kernels
 * (rendered CUDA source, host IR and cache entries); the same pattern with
 * other values gives the same kernel. */
Test(sparse, pattern_in_cache_key, .timeout = 300) {
    char *cuda[3] = {0}, *ir[3] = {0};
    char dir[] = "/tmp/dsc_sparse_cacheXXXXXX";
    cr_assert(mkdtemp(dir));
    int stores[3] = {0};
    for (int v = 0; v < 3; v++) {
        /* v = 0 and 1: the 10 blocks outside the holes are kept (density
         * 10/30), other values; v = 2: no holes (another pattern) */
        Case c = {.m = 4,
                  .n = 40,
                  .k = 48,
                  .br = 8,
                  .bc = 8,
                  .density = 1.0 / 3,
                  .holes = v < 2,
                  .seed = 50u + (uint64_t)v};
        Model md;
        build(&md, &c, 2);
        rt_sparse_decide(md.g, NULL, SPARSE_KERNEL_SPARSE);
        KProgram prog = {0};
        if (!cg_lower(md.g, &prog, md.d)) die_diag(md.d, "lower");
        const Kernel *k = NULL;
        for (int i = 0; i < prog.nkernels; i++)
            if (prog.kernels[i]->ntables) k = prog.kernels[i];
        cr_assert(k);
        CudaKernel ck;
        cr_assert(cg_cuda_render(md.g, k, 0, &ck, md.d));
        cuda[v] = strdup(ck.source);
        if (rt_host_available()) {
            HostOptions ho = {.cache_dir = dir};
            HostBackend *hb = rt_host_create(&ho, md.d);
            cr_assert(hb);
            ir[v] = rt_host_kernel_ir(hb, md.g, k, false, md.d);
            cr_assert(ir[v]);
            cr_assert(rt_host_prepare(hb, md.g, &prog, md.d));
            stores[v] = rt_host_stats(hb).cache_stores;
            rt_host_destroy(hb);
        }
        model_free(&md);
    }
    cr_assert_str_eq(cuda[0], cuda[1], "same pattern, same kernel");
    cr_assert_str_neq(cuda[0], cuda[2], "another pattern, another kernel");
    if (ir[0]) {
        cr_assert_str_eq(ir[0], ir[1]);
        cr_assert_str_neq(ir[0], ir[2]);
        cr_assert_gt(stores[0], 0, "first pattern compiled and stored");
        cr_assert_eq(stores[1], 0, "same pattern: found in the cache");
        cr_assert_gt(stores[2], 0, "second pattern: a new cache entry");
    }
    for (int v = 0; v < 3; v++)
        free(cuda[v]), free(ir[v]);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* Every sparse kernel shape compiles with NVRTC for every hwdb architecture. */
Test(sparse, nvrtc_every_arch, .timeout = 600) {
    char why[600];
    if (!rt_nvrtc_available(why, sizeof why)) {
        const char *ci = getenv("CI");
        if (ci && strcmp(ci, "true") == 0) cr_assert_fail("%s", why);
        cr_skip_test("%s", why);
    }
    Diag *d = diag_create();
    HwDb *db = rt_hwdb_load(DSC_SOURCE_DIR "/data/hwdb.json", d);
    cr_assert(db);
    int sms[32], nsms = 0;
    for (int i = 0; i < rt_hwdb_count(db) && nsms < 32; i++) {
        const HwEntry *e = rt_hwdb_entry(db, i);
        if (!e->is_host) sms[nsms++] = rt_nvrtc_parse_arch(e->arch);
    }
    cr_assert_geq(nsms, 7);
    enum { NK = 2 * NSHAPES };
    Model mds[NK];
    CudaKernel ck[NK];
    for (int i = 0; i < NK; i++) {
        int br = shapes[i % NSHAPES][0], bc = shapes[i % NSHAPES][1];
        Case c = {.matmul = i >= NSHAPES,
                  .m = 3,
                  .n = 4 * br + 1,
                  .k = 4 * bc + 1,
                  .br = br,
                  .bc = bc,
                  .density = 0.5,
                  .seed = 90u + (uint64_t)i};
        if (c.matmul) c.n = 4 * bc + 1, c.k = 4 * br + 1;
        build(&mds[i], &c, 2);
        rt_sparse_decide(mds[i].g, NULL, SPARSE_KERNEL_SPARSE);
        KProgram prog = {0};
        if (!cg_lower(mds[i].g, &prog, mds[i].d)) die_diag(mds[i].d, "lower");
        const Kernel *k = NULL;
        for (int j = 0; j < prog.nkernels; j++)
            if (prog.kernels[j]->ntables) k = prog.kernels[j];
        cr_assert(k);
        cr_assert(cg_cuda_render(mds[i].g, k, 0, &ck[i], mds[i].d));
    }
    NvrtcJob *jobs = calloc((size_t)(NK * nsms), sizeof *jobs);
    for (int a = 0; a < nsms; a++)
        for (int i = 0; i < NK; i++)
            jobs[a * NK + i] = (NvrtcJob){.name = ck[i].name, .source = ck[i].source, .sm = sms[a]};
    bool ok = rt_nvrtc_compile_all(jobs, NK * nsms, 0, 0, d);
    if (!ok) die_diag(d, "nvrtc");
    for (int j = 0; j < NK * nsms; j++) {
        cr_assert_gt(jobs[j].cubin_size, 0, "%s sm_%d", jobs[j].name, jobs[j].sm);
        rt_nvrtc_job_free(&jobs[j]);
    }
    free(jobs);
    for (int i = 0; i < NK; i++)
        model_free(&mds[i]);
    rt_hwdb_free(db);
    diag_destroy(d);
}

/* The BSR form holds exactly the kept blocks. */
Test(sparse, bsr_form) {
    Case c = {.m = 2, .n = 13, .k = 10, .br = 4, .bc = 3, .density = 0.4, .holes = true, .seed = 3};
    Model md;
    build(&md, &c, 0);
    const IrSparse *s = param_w(md.g)->ann.sparse;
    Tensor *rp, *ci, *va;
    cr_assert(rt_sparse_to_bsr(md.prm[0], s, &rp, &ci, &va));
    const int32_t *rpp = rp->data, *cip = ci->data;
    cr_assert_eq(rp->shape[0], s->nbr + 1);
    cr_assert_eq(rpp[s->nbr], s->kept);
    for (int64_t i = 0; i < s->nbr; i++)
        for (int32_t t = rpp[i]; t < rpp[i + 1]; t++) {
            cr_assert(s->keep[i * s->nbc + cip[t]]);
            for (int y = 0; y < c.br; y++)
                for (int x = 0; x < c.bc; x++) {
                    int64_t gy = i * c.br + y, gx = (int64_t)cip[t] * c.bc + x;
                    double want = gy < s->rows && gx < s->cols ? rt_get(md.prm[0], gy * s->cols + gx) : 0;
                    cr_assert_eq(rt_get(va, ((int64_t)t * c.br + y) * c.bc + x), want);
                }
        }
    rt_tensor_free(rp);
    rt_tensor_free(ci);
    rt_tensor_free(va);
    model_free(&md);
}

/* Bad hints are errors naming the param. */
Test(sparse, errors_name_the_param) {
    static const char *const srcs[] = {
        "model t {\n  input x : f32[4]\n  param v : f32[4] @sparse(block=[2, 2], density=0.5)\n  output y = "
        "x + v\n}\n",
        "model t {\n  input x : i32[4, 4]\n  param v : i32[4, 4] @sparse(block=[2, 2], density=0.5)\n  "
        "output y = x + v\n}\n",
        "model t {\n  input x : f32[4, 4]\n  param v : f32[4, 4] @sparse(block=[2, 2])\n  output y = x + "
        "v\n}\n",
    };
    static const char *const want[] = {"blocks tile the last two dims", "only float params",
                                       "needs a density"};
    for (int i = 0; i < 3; i++) {
        Arena *a = arena_create();
        Diag *d = diag_create();
        Graph *g = fe_compile_source(a, d, "t.dsg", srcs[i], strlen(srcs[i]));
        cr_assert(g);
        PipelineOptions po = {.opt_level = 2};
        cr_assert_not(pass_run_pipeline(g, d, &po));
        char *text = test_diag_text(d, false);
        cr_assert(strstr(text, want[i]) && strstr(text, "'v'"), "%s", text);
        free(text);
        diag_destroy(d);
        arena_destroy(a);
    }
}
