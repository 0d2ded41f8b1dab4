/* How the CUDA renderer maps a kernel's parallel index space to threads.
 *
 * The kernel IR says only that the points of a kernel are independent and
 * that everything inside a point is sequential (ir/kir.h).  The simplest
 * mapping -- one thread per point, a grid-stride loop -- is always correct,
 * but a point that walks a whole row (a softmax, a layernorm, the dot
 * product of a matrix-vector product) then runs its loops on one thread.
 * cg_cuda_row_plan decides, from the kernel IR alone, whether a kernel can
 * run one *warp* per point instead: its 32 lanes split every row loop of the
 * point, and loops that only accumulate into locals finish with a warp
 * reduction.  The analysis is conservative: when it cannot prove that the
 * split keeps the meaning (up to the reassociation of float sums, which
 * backends are allowed: docs/codegen.md), it says no and the kernel keeps
 * one thread per point.
 *
 * What it proves, per kernel (statements at "point level" are the body's,
 * and those inside an `if` at point level):
 *   - no buffer is both read and written by the kernel, and no two buffers
 *     may share memory (so lanes cannot see each other's stores);
 *   - every `for` at point level is a *reduce loop* or a *map loop*:
 *       reduce loop: no store inside; each local it writes is either an
 *         accumulator -- every write is `l = l OP e` with one OP among add,
 *         max, min (f32 or i64), and `l` is read nowhere else in the loop --
 *         or private to the loop (see below);
 *       map loop: no accumulator; stores only at the loop's top level or
 *         under its `if`s, never in a nested loop, each store index affine in
 *         the loop variable with a nonzero coefficient and otherwise made of
 *         point-level values (so different iterations store to different
 *         elements); locals it writes are private;
 *     a private local is written before it is read in every iteration (its
 *     first mention in the loop body is an assignment at the body's top
 *     level) and mentioned nowhere outside that loop;
 *     or the kernel's online-softmax loop (ir/kir.h, Kernel.osm: attention):
 *       no store inside; its state locals per lane, every other local it
 *       writes private; the lanes split the keys and merge their states with
 *       a butterfly of the merge ir/kir.h gives;
 *   - at least one reduce or online-softmax loop has a row worth splitting
 *     (an extent that is not a constant below 64).
 * Point-level assignments then compute the same value in every lane;
 * point-level stores and traps are done by lane 0. */
#ifndef DSC_CODEGEN_CUDA_SCHEDULE_H
#define DSC_CODEGEN_CUDA_SCHEDULE_H

#include <stdbool.h>

#include "../../ir/kir.h"

/* The role of one local in a row kernel. */
typedef enum {
    CR_POINT,   /* written at point level (or never): the same in every lane */
    CR_ACC,     /* accumulator of one reduce loop (`loop`, operator `op`) */
    CR_PRIVATE, /* private to one loop (`loop`): per lane, per iteration */
    CR_OSM,     /* state of the kernel's online-softmax loop (`loop`, Kernel.osm) */
} CudaLocalRole;

typedef struct {
    CudaLocalRole role;
    KOp op;            /* CR_ACC: KO_ADD, KO_MAX or KO_MIN */
    const KStmt *loop; /* CR_ACC, CR_PRIVATE */
} CudaLocalPlan;

typedef struct {
    bool rows;             /* one warp per point */
    CudaLocalPlan *locals; /* k->nlocals entries (in the graph's arena) */
} CudaRowPlan;

/* Decides the row mapping for k (see above).  `alias`: two of k's buffers may
 * share memory.  plan->rows is false when the kernel keeps one thread per point. */
void cg_cuda_row_plan(Graph *g, const Kernel *k, bool alias, CudaRowPlan *plan);

/* True when loop s (a statement at point level of a row kernel) accumulates
 * into at least one local: a reduce loop; otherwise a map loop. */
bool cg_cuda_is_reduce_loop(const Kernel *k, const CudaRowPlan *plan, const KStmt *s);

/* ---- tiled GEMMs ----------------------------------------------------------------
 *
 * A kernel whose point is one or more dot products followed by an epilogue,
 *
 *     acc1 = C1;                        (C1 a constant)
 *     for k1 < K1: acc1 = acc1 + A1 * B1; (A1, B1 expressions of no local)
 *     [statements]  acc2 = C2;  for k2 < K2: acc2 = acc2 + A2 * B2;  ...
 *     REST...                           (anything but loops: bias, activation, stores)
 *
 * where every A depends on a parallel variable m that its B does not depend
 * on, and every B on a parallel variable n that its A does not (the same m and
 * n for all products; the other parallel variables are batch indices), is
 * rendered as a tiled GEMM: a block computes a tile of (m, n) points, stages
 * tiles of A (m x k) and B (k x n) in shared memory, every thread accumulates
 * a few points in registers in the same k order as the loop (so each sum is
 * the loop's, bit for bit up to FMA contraction), then runs the statements
 * that are not part of a product -- in their order, after all products: none
 * of them may mention the accumulator of a later product -- for each of its
 * points.  Loads of A and B outside the (m, k) and (n, k) ranges are never
 * evaluated.  BERT's query and value projections, fused because they share
 * their input, are one kernel with two products. */
enum { CG_GEMM_MAX_PRODUCTS = 4 };

typedef struct {
    const KStmt *loop;  /* the k loop */
    int acc;            /* the accumulator */
    const KExpr *init;  /* its constant initial value */
    const KExpr *a, *b; /* the operands: a depends on m (not n), b on n (not m) */
    bool a_k_fastest;   /* consecutive k are adjacent in A's first load (else consecutive m) */
    bool b_k_fastest;   /* likewise for B (else consecutive n) */
    DType half;         /* DT_F16 or DT_BF16 when both operands are values of that dtype (a load
                           of such a buffer, or a value rounded to it), which tensor cores
                           multiply exactly; else DT_F32 */
} CudaGemmProduct;

typedef struct {
    bool ok;
    int m, n; /* the tiled parallel variables */
    int nprod;
    CudaGemmProduct prod[CG_GEMM_MAX_PRODUCTS];
    const KStmt *rest; /* the other statements, in order (copies in the graph's arena) */
} CudaGemmPlan;

void cg_cuda_gemm_plan(Graph *g, const Kernel *k, bool alias, CudaGemmPlan *plan);

/* ---- vectorised elementwise kernels ---------------------------------------------
 *
 * The "vector point" mapping: a thread runs `width` consecutive points along
 * the last parallel variable (v = q, q + 1, ..., q + width - 1 with q a
 * multiple of width, inside one row of the space), and the buffer accesses
 * that are contiguous and aligned move as one 16-byte (or 8-byte) load or
 * store.  cg_cuda_vec_plan takes a kernel when it can prove, from the kernel
 * IR alone:
 *   - the body has no loop (an elementwise point), the kernel has a parallel
 *     variable, no buffer is both read and written; where two buffers may
 *     share memory (an in-place update), no load follows the first store;
 *   - every store is at the body's top level (not under an `if`), into a
 *     buffer of 4-byte (f32, i32) or 2-byte (f16, bf16) elements stored
 *     nowhere else, with a *vector index* (below): so a vector of stores
 *     writes exactly the elements the points would;
 *   - every load whose index mentions the last variable is affine in it with
 *     coefficient 1 (a load that strides along it -- a transpose -- keeps the
 *     point mapping); such a load becomes a vector load when it is evaluated
 *     for every point (not under an `if`, a select's branch or the right
 *     operand of && / ||: the vector would read elements a point may not),
 *     its buffer has 4- or 2-byte elements and its index is a vector index;
 *     other loads stay scalar, per point;
 *   - the last extent is not a constant below the width.
 * A *vector index* is one that is v + R with R, over all values of the other
 * variables and of the loads and dims in it, a multiple of the width
 * (cg_cuda_vec_index): sums and differences of multiples, products with one
 * factor a multiple (a constant c counts for width / gcd(c, width)), constants,
 * and dims, which add a run-time condition `d % m == 0`.  The width is 8 when
 * every vectorised buffer has 2-byte elements and all their indices allow it,
 * else 4 (16-byte float4 / uint4, or 8-byte uint2 for 2-byte elements).
 * At run time the kernel checks the dim conditions and that every vectorised
 * buffer is aligned to its vector size (uniform across the grid); when they
 * hold it runs the vectors of every row (a row's last, partial vector one
 * point after the other); otherwise the point mapping. */
enum { CG_VEC_MAX_CONDS = 8 };

typedef struct {
    int sym; /* dim symbol */
    int mod; /* d<sym> % mod == 0 */
} CudaVecCond;

typedef struct {
    const KExpr *load;  /* a vectorised load (NULL: a store) */
    const KStmt *store; /* a vectorised store (NULL: a load) */
    int buf;
    const KExpr *index;
    int owner; /* the first access of the same buffer and index (a load's vector register) */
} CudaVecAccess;

typedef struct {
    bool ok;
    int width; /* points per thread: 4 or 8 */
    int var;   /* the vectorised variable: the last parallel one */
    bool whole_rows; /* its extent is a multiple of the width where the conditions hold (a
                        constant, or a dim they check): no row ends in a partial vector */
    int nacc;
    CudaVecAccess *acc; /* in the graph's arena */
    int nconds;
    CudaVecCond conds[CG_VEC_MAX_CONDS];
} CudaVecPlan;

/* Whether `index` is a vector index in parallel variable `var` for `width`
 * (see above); the dim conditions it needs are added to conds[] (*nconds of
 * CG_VEC_MAX_CONDS used; a dim already there keeps the larger modulus).  On
 * false, conds is unchanged. */
bool cg_cuda_vec_index(const KExpr *index, int var, int width, CudaVecCond *conds, int *nconds);

void cg_cuda_vec_plan(Graph *g, const Kernel *k, bool alias, CudaVecPlan *plan);

/* The access of load e or store s in the plan (-1: not vectorised). */
int cg_cuda_vec_find(const CudaVecPlan *plan, const KExpr *e, const KStmt *s);

/* The size in bytes of an element of dtype t when the vector mapping moves it
 * (4: f32, i32; 2: f16, bf16; 0: it does not). */
int cg_cuda_vec_elem(DType t);

/* ---- library GEMMs (cuBLASLt) ----------------------------------------------------
 *
 * Whether a kernel is exactly one GEMM that a library call with an epilogue
 * computes (runtime/cublaslt.h): a tiled GEMM of one product (above) whose
 *   - accumulator starts at +0;
 *   - A and B are plain loads of two buffers of one dtype (f32, f16 or bf16)
 *     whose indices are affine in the parallel variables and k (the strides
 *     are checked at each binding of the dims: cg_cuda_affine);
 *   - other statements are assignments of locals and one store, to a buffer
 *     of A's dtype or f32, of act(pre) where pre is the accumulator or the
 *     accumulator plus a plain load of a bias buffer (either order) and act
 *     is nothing, relu or gelu_tanh (cuBLASLt's GELU is the tanh
 *     approximation; the exact erf gelu does not fit); a rounding to the
 *     stored dtype (KO_WRAP) around act(...) or around pre is allowed --
 *     the store rounds to it anyway (for relu the two orders are the same
 *     number; for gelu_tanh the generated kernel rounds twice, the library
 *     once).
 * Anything else (a residual add, a scale, a second output, a packed sparse
 * weight, an operand converted on the fly, traps) does not fit: why says what. */
typedef enum { CG_BLAS_ACT_NONE, CG_BLAS_ACT_RELU, CG_BLAS_ACT_GELU_TANH } CudaBlasAct;

typedef struct {
    bool ok;
    char why[200]; /* when not ok */
    int m, n, k;   /* the parallel variables of the plan and the loop variable */
    const KExpr *k_extent;
    int a, b, d, bias; /* buffers; bias -1: none */
    const KExpr *a_index, *b_index, *d_index, *bias_index;
    DType ab, dt, bias_dt;
    CudaBlasAct act;
} CudaBlasPlan;

void cg_cuda_blas_plan(Graph *g, const Kernel *k, CudaBlasPlan *plan);

/* An i64 expression of loop variables (0..nvars-1) and dims that is affine in
 * the variables, at the dims syms: *offset (every variable 0) and coef[v]
 * for each variable.  False if it is not affine (a product of two variable
 * terms, a division or remainder of one, a load, ...). */
bool cg_cuda_affine(const KExpr *e, int nvars, const int64_t *syms, int64_t *offset, int64_t *coef);
/* A variable-free i64 expression (an extent) at the dims syms. */
bool cg_cuda_eval_i64(const KExpr *e, const int64_t *syms, int64_t *out);

#endif
