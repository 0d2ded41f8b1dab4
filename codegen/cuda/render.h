/* The CUDA renderer: one kernel-IR kernel -> one CUDA C translation unit.
 *
 * The output is self-contained CUDA C++ (no #include at all) that NVRTC
 * compiles with nothing but libnvrtc: f16 and bf16 conversions are small
 * bit-exact helpers emitted into the source when a kernel uses them (NVRTC 13
 * has no built-in cuda_fp16.h / cuda_bf16.h; they would need the toolkit's
 * include directory at load time; docs/cuda.md).  Helpers (conversions,
 * NaN-propagating max/min, gelu, ...) are emitted only when used.
 *
 * Kernel ABI (what a launcher passes; docs/cuda.md has the same text):
 *
 *   extern "C" __global__ void __launch_bounds__(BLOCK)
 *   NAME(T0 *b0, const T1 *b1, ..., long long d0, long long d1, ..., long long *dsc_trap)
 *
 *   - Parameters: first one pointer per kernel buffer, in the order of
 *     Kernel.bufs (b<i> is k->bufs[i]); then one `long long` per dim symbol
 *     of the graph, in symbol order (d<s> is the value of symbol s), whether
 *     the kernel uses it or not; last a pointer to the run's KTrapRecord
 *     (ir/trap.h: five long long, zero until a KS_TRAP fires; the first one
 *     sets the code with atomicCAS, then node and operands).  So the argument
 *     list of every kernel is "buffers, then the dims array, then the trap
 *     record": a launcher needs no per-kernel table.
 *   - Pointer types by storage dtype: f32 float, f16 and bf16 unsigned short
 *     (the raw IEEE-half / bfloat16 bits), i8 signed char, i32 int, i64 long
 *     long, bool unsigned char (0 or 1).  Buffers the kernel only reads are
 *     `const`.  Every pointer is `__restrict__` unless the memory plan lets
 *     two of the kernel's buffers share memory (an in-place update), in which
 *     case none of the kernel's pointers are.
 *   - Launch: 1-D; blockDim.x == CudaKernel.block (the __launch_bounds__
 *     value); any gridDim.x >= 1 is correct, because the body is a
 *     grid-stride loop over the flattened parallel index space (row-major,
 *     64-bit indices; a vector kernel runs CudaKernel.thread_points
 *     consecutive points a thread); cg_cuda_grid picks one.  No dynamic shared memory,
 *     no stream or cluster requirements.
 *
 * The kernel record (CudaKernel) is computed once per kernel: it is the NVRTC
 * input, the cache-key input (its source) and the launch record at once. */
#ifndef DSC_CODEGEN_CUDA_RENDER_H
#define DSC_CODEGEN_CUDA_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../ir/kir.h"

/* Threads per block when the hardware database gives none. */
enum { CG_CUDA_DEFAULT_BLOCK = 256 };

typedef enum { CA_BUFFER, CA_DIM, CA_TRAP } CudaArgKind;

/* One kernel parameter, in ABI order. */
typedef struct {
    CudaArgKind kind;
    int index;         /* CA_BUFFER: index in Kernel.bufs; CA_DIM: dim symbol */
    DType dtype;       /* CA_BUFFER: storage dtype */
    bool written;      /* CA_BUFFER: the kernel stores into it */
    const char *decl;  /* the parameter as declared: "const float *__restrict__ b1" */
} CudaArg;

typedef struct {
    const Kernel *k;
    const char *name;    /* the __global__ function's symbol (k->name) */
    const char *source;  /* the complete translation unit, NUL-terminated */
    size_t source_len;
    int block;           /* threads per block (blockDim.x) */
    int point_threads;   /* threads per point of the parallel space: 1, or 32 (a warp per row) */
    int thread_points;   /* points per thread: 1, or 4 or 8 consecutive points of the last parallel
                            variable (the vector point mapping, codegen/cuda/schedule.h) */
    int tile_m, tile_n;  /* a tiled GEMM (0: not): points per block along parallel variables */
    int m_var, n_var;    /* m_var and n_var (codegen/cuda/schedule.h); a block per tile */
    bool tensor_cores;   /* the tiled GEMM multiplies on tensor cores */
    int nargs;
    CudaArg *args;       /* buffers (k->nbufs), dims (every symbol), the trap record */
    DimId flops, bytes;  /* per-run estimates, from the kernel IR */
} CudaKernel;

/* Renders kernel k (verified kernel IR) with `block` threads per block (<= 0:
 * CG_CUDA_DEFAULT_BLOCK; callers pass the hwdb's kernels.elementwise.threads
 * for the target).  Everything lives in g's arena.  Reports (naming the
 * kernel) and returns false on something the renderer cannot express. */
bool cg_cuda_render(Graph *g, const Kernel *k, int block, CudaKernel *out, Diag *d);

/* The same for compute capability `sm` (90 for sm_90; 0: any): from sm_80 on,
 * tiled GEMMs whose operands are both f16 or both bf16 use tensor cores
 * (mma.sync m16n8k16, f32 accumulation).  cg_cuda_render is sm 0. */
bool cg_cuda_render_for(Graph *g, const Kernel *k, int block, int sm, CudaKernel *out, Diag *d);

/* Tiles of the two GEMM mappings (docs/cuda.md, "Thread mappings"), from the
 * hardware database's gemm_f32 and gemm_f16 classes for the target
 * (rt_cuda_target_from_hwdb).  A zero field takes the default; a
 * configuration cg_cuda_gemm_config_check refuses is an error of the render.
 *   f32 tiled GEMM: 256 threads (16 x 16), an f32_m x f32_n tile, each thread
 *     (f32_m / 16) x (f32_n / 16) points, f32_k deep staging; defaults 64, 64, 16.
 *   tensor cores: tc_warps warps (4: 2 x 2, 8: 2 x 4 over m x n), a tc_m x tc_n
 *     tile, each warp (tc_m / 2) x (tc_n / warps along n) as m16n8k16 tiles,
 *     tc_k deep staging; defaults 128, 128, 32, 8. */
typedef struct {
    int f32_m, f32_n, f32_k, f32_warps; /* f32_warps: 8 (the mapping's 256 threads) */
    int tc_m, tc_n, tc_k, tc_warps;
} CudaGemmConfig;

/* Fills the zero fields of c with the defaults, then checks that the
 * renderer supports it: f32_m, f32_n in 16..128 and multiples of 16 with at
 * most 32 points a thread, f32_k in {8, 16, 32}, f32_warps 8; tc_warps 4 or 8, each warp
 * a whole number of m16n8k16 tiles and at most 16 of them, tc_k in {16, 32,
 * 64}; both stagings within 48 KB of static shared memory.  False with the
 * reason in why. */
bool cg_cuda_gemm_config_check(CudaGemmConfig *c, char *why, size_t n);

/* cg_cuda_render_for with GEMM tiles gc (NULL: the defaults). */
bool cg_cuda_render_with(Graph *g, const Kernel *k, int block, int sm, const CudaGemmConfig *gc, CudaKernel *out,
                         Diag *d);

/* The number of points of k's parallel index space at the dim values `dims`
 * (one per symbol).  False (with a message in err) when an extent does not
 * evaluate (a division by zero) or overflows. */
bool cg_cuda_parallel_size(const Kernel *k, const int64_t *dims, int64_t *n, char *err, size_t errlen);

/* gridDim.x for a launch: enough blocks to give every point a thread (a warp
 * per row for row kernels, a block per tile for GEMMs, a thread per vector of
 * a row for vector kernels -- which, where their run-time check fails, run
 * about thread_points points a thread on it), capped
 * at max_blocks (<= 0: no cap; a launcher passes a few waves' worth, e.g.
 * SMs * blocks-per-SM * 4).  At least 1 block (a kernel with an empty parallel
 * space still launches correctly: its loop runs zero times).  False with a
 * message in err as for cg_cuda_parallel_size. */
bool cg_cuda_grid(const CudaKernel *ck, const int64_t *dims, int64_t max_blocks, int64_t *grid, char *err,
                  size_t errlen);

#endif
