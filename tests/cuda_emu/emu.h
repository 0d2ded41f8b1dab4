/* A CPU emulator for the CUDA C that codegen/cuda/render.c generates, so the
 * renderer's thread mappings (grid-stride points, a warp per row with shuffle
 * reductions, shared-memory tiled GEMMs, mma.sync tensor-core GEMMs) are run
 * and checked numerically on a machine without a GPU (docs/testing.md).
 *
 * A generated kernel source is compiled by the host C++ compiler after this
 * header (tests/cuda_emu/emu_build.c does it: each kernel inside a namespace
 * of its own, plus an entry wrapper taking the launch's parameter array).
 * __CUDA_ARCH__ is not defined, so the renderer's helpers take their host
 * branch: the f16 conversions and the mma tile call the dsc_emu_ functions
 * below instead of PTX.
 *
 * Execution model: a launch runs the blocks one after another; the threads of
 * a block are fibers (a stack each, switched by hand, no system call) run by
 * a scheduler on the calling OS thread.  A fiber runs until it reaches a
 * barrier -- __syncthreads() (the block), or a warp collective
 * (__shfl_xor_sync, the mma tile) -- and the scheduler releases a barrier
 * when every live thread it waits for has arrived.  What a GPU would not
 * accept is reported as a launch error instead of being run anyway: a warp
 * collective with a lane missing (a lane exited, or waits elsewhere), a
 * mask other than all lanes, __syncthreads() reached while another thread
 * of the block has exited or waits at a warp collective (a deadlock on a
 * GPU), a block size that is not a multiple of 32 when a warp collective is
 * used.  Shared memory (`__shared__` arrays) is filled with a NaN pattern
 * before each block, so a kernel that reads shared memory it did not write
 * shows it in its results; the scheduler runs the threads in index order and
 * in reverse order on alternate rounds, so a read that lacks the barrier
 * after its write runs before the write in one of them.
 *
 * Only x86-64 has the hand-written context switch; elsewhere the header
 * falls back to ucontext (slower, same semantics). */
#ifndef DSC_CUDA_EMU_H
#define DSC_CUDA_EMU_H

#include <math.h>

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

/* ---- the language ------------------------------------------------------------ */

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
/* shared memory: one copy per kernel, which every fiber of the running block
 * sees; registered so the scheduler can poison it before each block */
#define __shared__ static __attribute__((section("dsc_emu_shared")))

struct dsc_emu_dim3 {
    unsigned x, y, z;
};
struct __attribute__((aligned(16))) float4 {
    float x, y, z, w;
};
struct __attribute__((aligned(16))) uint4 {
    unsigned x, y, z, w;
};
struct __attribute__((aligned(8))) uint2 {
    unsigned x, y;
};
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
static inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }

namespace dsc_emu {

enum { MAX_BLOCK = 1024, STACK = 256 * 1024 };
enum Wait { RUNNING, AT_BLOCK, AT_WARP, DONE };

struct Fiber {
    void *sp; /* saved stack pointer (x86-64) */
#if !defined(__x86_64__)
    ucontext_t uc;
#endif
    char *stack;
    dsc_emu_dim3 tid3;
    Wait wait;
    unsigned long long gen; /* the barrier generation it waits for */
};

struct State {
    Fiber fib[MAX_BLOCK];
    void *sched_sp;
#if !defined(__x86_64__)
    ucontext_t sched_uc;
#endif
    int nthreads, cur;
    void (*entry)(void **);
    void **params;
    char err[512];
    bool failed;
    /* warp collectives: one exchange area per warp */
    unsigned long long warp_gen[MAX_BLOCK / 32];
    int warp_arrived[MAX_BLOCK / 32];
    unsigned long long slot[MAX_BLOCK][10]; /* a lane's values for the collective */
    unsigned long long block_gen;
    int block_arrived;
    /* the mma tile: a warp's A and B, unpacked once per call (mma_gen == warp_gen) */
    float mma_a[MAX_BLOCK / 32][16][16], mma_b[MAX_BLOCK / 32][16][8];
    unsigned long long mma_gen[MAX_BLOCK / 32];
};

static State st;
static dsc_emu_dim3 blk3, bdim3, gdim3;

static inline Fiber *self() { return &st.fib[st.cur]; }

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
    if (st.failed) return;
    st.failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st.err, sizeof st.err, fmt, ap);
    va_end(ap);
}

#if defined(__x86_64__)
/* dsc_emu_switch(&from_sp, to_sp): saves the callee-saved registers, the SSE
 * control word and the x87 control word on the current stack, stores the
 * stack pointer in *from_sp and resumes the context saved at to_sp. */
extern "C" void dsc_emu_switch(void **from_sp, void *to_sp);
asm(".text\n"
    ".p2align 4\n"
    ".type dsc_emu_switch,@function\n"
    "dsc_emu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size dsc_emu_switch, .-dsc_emu_switch\n");
#endif

/* back to the scheduler (the fiber stays in its wait state) */
static inline void yield() {
#if defined(__x86_64__)
    dsc_emu_switch(&self()->sp, st.sched_sp);
#else
    swapcontext(&self()->uc, &st.sched_uc);
#endif
}

static void fiber_main() {
    st.entry(st.params);
    self()->wait = DONE;
    yield();
    abort(); /* a finished fiber is never resumed */
}

static void start(Fiber *f) {
#if defined(__x86_64__)
    uintptr_t top = ((uintptr_t)(f->stack + STACK)) & ~(uintptr_t)15;
    void **p = (void **)top;
    *--p = 0;                   /* fiber_main's return address: never used */
    *--p = (void *)&fiber_main; /* where the first switch returns to */
    for (int i = 0; i < 6; i++)
        *--p = 0; /* rbp rbx r12 r13 r14 r15 */
    --p;
    unsigned mxcsr = 0x1f80;
    unsigned short fpcw = 0x037f;
    memcpy(p, &mxcsr, 4);
    memcpy((char *)p + 4, &fpcw, 2);
    f->sp = p;
#else
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = f->stack;
    f->uc.uc_stack.ss_size = STACK;
    f->uc.uc_link = NULL;
    makecontext(&f->uc, (void (*)())fiber_main, 0);
#endif
}

static void resume(int i) {
    st.cur = i;
#if defined(__x86_64__)
    dsc_emu_switch(&st.sched_sp, st.fib[i].sp);
#else
    swapcontext(&st.sched_uc, &st.fib[i].uc);
#endif
}

extern "C" char __start_dsc_emu_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_dsc_emu_shared[] __attribute__((weak, visibility("hidden")));

/* Runs one block to completion; false on a launch error (st.err). */
static bool run_block() {
    if (__start_dsc_emu_shared && __stop_dsc_emu_shared > __start_dsc_emu_shared) {
        /* 0xffff halves and 0xffffffff floats are NaNs: a read of unwritten shared memory shows */
        memset(__start_dsc_emu_shared, 0xff, (size_t)(__stop_dsc_emu_shared - __start_dsc_emu_shared));
    }
    st.block_gen = 0;
    st.block_arrived = 0;
    for (int w = 0; w < (st.nthreads + 31) / 32; w++)
        st.warp_gen[w] = 1, st.warp_arrived[w] = 0, st.mma_gen[w] = 0;
    for (int i = 0; i < st.nthreads; i++) {
        Fiber *f = &st.fib[i];
        f->tid3 = dsc_emu_dim3{(unsigned)i, 0, 0};
        f->wait = RUNNING;
        f->gen = 0;
        start(f);
    }
    int live = st.nthreads;
    for (int round = 0; live > 0 && !st.failed; round++) {
        bool progress = false;
        /* every other round in reverse thread order: a read of shared memory
         * that lacks its __syncthreads() sees the poison in one of them */
        for (int j = 0; j < st.nthreads && !st.failed; j++) {
            int i = (round & 1) ? st.nthreads - 1 - j : j;
            if (st.fib[i].wait != RUNNING) continue;
            resume(i);
            progress = true;
            if (st.fib[i].wait == DONE) live--;
        }
        if (st.failed) break;
        /* release barriers whose threads have all arrived */
        int at_block = 0, done = 0;
        for (int i = 0; i < st.nthreads; i++) {
            at_block += st.fib[i].wait == AT_BLOCK;
            done += st.fib[i].wait == DONE;
        }
        for (int w = 0; w * 32 < st.nthreads; w++) {
            int lanes = st.nthreads - w * 32 < 32 ? st.nthreads - w * 32 : 32;
            int at = 0, gone = 0;
            for (int l = 0; l < lanes; l++) {
                at += st.fib[w * 32 + l].wait == AT_WARP;
                gone += st.fib[w * 32 + l].wait == DONE;
            }
            if (at == 0) continue;
            if (at == 32) {
                for (int l = 0; l < 32; l++)
                    st.fib[w * 32 + l].wait = RUNNING;
                st.warp_gen[w]++;
                progress = true;
            } else { /* every other lane has exited or waits at __syncthreads */
                fail("warp %d of block %u: a warp collective reached by %d of 32 lanes (%d exited)", w,
                     blk3.x, at, gone);
            }
        }
        if (at_block > 0 && at_block + done == st.nthreads) {
            if (done > 0) {
                fail("block %u: __syncthreads() reached by %d threads while %d have exited", blk3.x, at_block,
                     done);
            } else {
                for (int i = 0; i < st.nthreads; i++)
                    st.fib[i].wait = RUNNING;
                progress = true;
            }
        }
        if (!progress && live > 0 && !st.failed)
            fail("block %u: deadlock (%d threads at __syncthreads, the rest at warp collectives or exited)",
                 blk3.x, at_block);
    }
    return !st.failed;
}

/* A warp collective: the lane's values go into its slot, the warp meets, the
 * caller reads the other lanes' slots, the warp meets again (so no slot is
 * overwritten before every lane has read it). */
static inline void warp_meet() {
    self()->wait = AT_WARP;
    yield();
}

static inline int lane() { return st.cur & 31; }
static inline int warp_base() { return st.cur & ~31; }

} // namespace dsc_emu

#define threadIdx (dsc_emu::self()->tid3)
#define blockIdx (dsc_emu::blk3)
#define blockDim (dsc_emu::bdim3)
#define gridDim (dsc_emu::gdim3)

static inline void __syncthreads() {
    dsc_emu::self()->wait = dsc_emu::AT_BLOCK;
    dsc_emu::yield();
}

template <typename T> static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
    static_assert(sizeof(T) <= 8, "a shuffle moves at most 8 bytes");
    if (mask != 0xffffffffu)
        dsc_emu::fail("__shfl_xor_sync with mask %#x (only all lanes are emulated)", mask);
    unsigned long long bits = 0;
    memcpy(&bits, &v, sizeof v);
    dsc_emu::st.slot[dsc_emu::st.cur][0] = bits;
    dsc_emu::warp_meet();
    int src = dsc_emu::warp_base() + ((dsc_emu::lane() ^ lane_mask) & 31);
    bits = dsc_emu::st.slot[src][0];
    dsc_emu::warp_meet();
    T r;
    memcpy(&r, &bits, sizeof r);
    return r;
}

static inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
static inline int __float_as_int(float f) {
    int u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline float __int_as_float(int u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* the callers (dsc_f2i) range-check first, as the hardware saturates */
static inline long long __float2ll_rz(float x) { return (long long)x; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }

/* the fibers of one OS thread never interleave inside a call */
static inline unsigned long long atomicCAS(unsigned long long *p, unsigned long long cmp,
                                           unsigned long long v) {
    unsigned long long old = *p;
    if (old == cmp) *p = v;
    return old;
}

/* cvt.f32.f16 / cvt.rn.f16.f32 (IEEE, round to nearest even); the renderer's
 * helpers handle NaNs themselves before calling these */
static inline float dsc_emu_f16_to_f32(unsigned short h) {
    _Float16 x;
    memcpy(&x, &h, 2);
    return (float)x;
}
static inline unsigned short dsc_emu_f32_to_f16(float f) {
    _Float16 x = (_Float16)f;
    unsigned short h;
    memcpy(&h, &x, 2);
    return h;
}
static inline float dsc_emu_bf16_to_f32(unsigned short h) { return __uint_as_float((unsigned)h << 16); }

/* mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32 for the
 * calling warp, with the fragment layouts of the PTX ISA ("Matrix Fragments
 * for mma.m16n8k16 with floating point type"), groupID = lane >> 2,
 * threadID_in_group = lane % 4, two 16-bit elements a register, the lower
 * index in the lower half:
 *   A (16 x 16, row): a_i, i = 0..7, row = groupID (+8 for i in 2,3,6,7),
 *                     col = tig * 2 + (i & 1) (+8 for i >= 4)
 *   B (16 x 8, col):  b_i, i = 0..3, row = tig * 2 + (i & 1) (+8 for i >= 2),
 *                     col = groupID
 *   C/D (16 x 8):     c_i, i = 0..3, row = groupID (+8 for i >= 2),
 *                     col = tig * 2 + (i & 1)
 * Products are exact in f32 (16-bit inputs) and summed in double: the
 * hardware's order and intermediate precision are not specified, results are
 * compared with a tolerance. */
static inline void dsc_emu_mma_m16n8k16(float *d, const unsigned *a, const unsigned *b, bool bf16) {
    using namespace dsc_emu;
    unsigned long long *s = st.slot[st.cur];
    for (int i = 0; i < 4; i++)
        s[i] = a[i];
    for (int i = 0; i < 2; i++)
        s[4 + i] = b[i];
    warp_meet();
    /* the first lane to resume unpacks the warp's fragments for all */
    int w = st.cur >> 5;
    float(*A)[16] = st.mma_a[w], (*B)[8] = st.mma_b[w];
    if (st.mma_gen[w] != st.warp_gen[w])
        for (int l = 0; l < 32; l++) {
            const unsigned long long *o = st.slot[warp_base() + l];
            int g = l >> 2, t = l & 3;
            for (int i = 0; i < 8; i++) {
                unsigned short h = (unsigned short)((unsigned)o[i >> 1] >> (16 * (i & 1)));
                float v = bf16 ? dsc_emu_bf16_to_f32(h) : dsc_emu_f16_to_f32(h);
                int row = g + ((i == 2 || i == 3 || i == 6 || i == 7) ? 8 : 0);
                int col = t * 2 + (i & 1) + (i >= 4 ? 8 : 0);
                A[row][col] = v;
            }
            for (int i = 0; i < 4; i++) {
                unsigned short h = (unsigned short)((unsigned)o[4 + (i >> 1)] >> (16 * (i & 1)));
                float v = bf16 ? dsc_emu_bf16_to_f32(h) : dsc_emu_f16_to_f32(h);
                B[t * 2 + (i & 1) + (i >= 2 ? 8 : 0)][g] = v;
            }
        }
    st.mma_gen[w] = st.warp_gen[w];
    warp_meet();
    int g = lane() >> 2, t = lane() & 3;
    for (int i = 0; i < 4; i++) {
        int row = g + (i >= 2 ? 8 : 0), col = t * 2 + (i & 1);
        double acc = d[i];
        for (int k = 0; k < 16; k++)
            acc += (double)A[row][k] * (double)B[k][col];
        d[i] = (float)acc;
    }
}

/* Frees the fiber stacks (before the shared object is unloaded). */
extern "C" void dsc_emu_release(void) {
    for (int i = 0; i < dsc_emu::MAX_BLOCK; i++) {
        free(dsc_emu::st.fib[i].stack);
        dsc_emu::st.fib[i].stack = NULL;
    }
}

/* Launches entry(params) on grid x block threads; 0, or 1 with the reason in err. */
extern "C" int dsc_emu_launch(void (*entry)(void **), void **params, unsigned grid, unsigned block, char *err,
                              size_t errlen) {
    using namespace dsc_emu;
    if (block < 1 || block > MAX_BLOCK || grid < 1) {
        snprintf(err, errlen, "launch of %u blocks of %u threads", grid, block);
        return 1;
    }
    for (unsigned i = 0; i < block; i++)
        if (!st.fib[i].stack && !(st.fib[i].stack = (char *)malloc(STACK))) {
            snprintf(err, errlen, "out of memory for fiber stacks");
            return 1;
        }
    st.failed = false;
    st.err[0] = 0;
    st.entry = entry;
    st.params = params;
    st.nthreads = (int)block;
    bdim3 = dsc_emu_dim3{block, 1, 1};
    gdim3 = dsc_emu_dim3{grid, 1, 1};
    for (unsigned b = 0; b < grid; b++) {
        blk3 = dsc_emu_dim3{b, 0, 0};
        if (!run_block()) break;
    }
    if (st.failed) {
        snprintf(err, errlen, "%s", st.err);
        return 1;
    }
    return 0;
}

#endif
