/* Kernel IR -> LLVM IR (see render.h for the function each kernel becomes).
 *
 * Why this shape.  A kernel is a body run once per point of its parallel
 * index space, and the points are independent (kir.h).  The host backend
 * gives each thread a contiguous range [begin, end) of the flattened points,
 * so the function decomposes `begin` into the parallel variables once and
 * then walks the points row by row: an outer "odometer" over the leading
 * parallel variables and an inner counted loop over the last one, which is
 * the one whose buffers are usually contiguous.  When the body has no loops
 * of its own, that inner loop is the innermost loop and LLVM's loop
 * vectorizer turns it into SIMD code; when the body has loops (reductions,
 * dot products), those are the innermost ones and are vectorized instead.
 * Every innermost loop carries llvm.loop.vectorize.enable, which also lets
 * the vectorizer reassociate float reductions (the reference tolerances
 * allow it; a sum over a row becomes several partial sums).
 *
 * Unroll-and-jam.  A body with loops computes one point at a time, so a
 * dot-product kernel (lowering gives linear layers one output element per
 * point) would stream a whole weight row per point and leave its epilogue
 * (bias, gelu) scalar.  Where the body's loop extents and `if` conditions do
 * not depend on the last two parallel variables (nor on locals or loads),
 * and its loops update few locals, the points are taken in blocks -- 4 x 4
 * points over the last two variables where whole rows allow, else 4 (or 2)
 * points along the last -- and the body is rendered once for the block: each
 * statement for every point of the block in turn, each loop once, shared.
 * The jammed k-loop then loads each input row once per block instead of once
 * per point (16 dot products share 8 row loads), the vectorizer turns it into
 * 16 vector accumulators, and the SLP vectorizer packs the block's
 * epilogues.  Points left over at the ends of rows run one at a time.  This
 * is what makes the GEMM kernels of a BERT layer run at 100-200 GFLOP/s on
 * two cores instead of 25-50.
 *
 * Aliasing.  The body is an internal function taking one pointer per buffer,
 * marked `noalias`, called (and inlined) from the exported wrapper that reads
 * the pointers from bufs[]; inlining turns `noalias` into scoped alias
 * metadata, so the vectorizer needs no run-time overlap checks.  That is
 * only true when no written buffer shares memory with another buffer; the
 * memory plan's one exception, an elementwise kernel writing in place over a
 * dying operand, is rendered with the two buffers as one pointer (options
 * `alias`), and arbitrary overlap (never planned, but checked at launch)
 * without `noalias` at all.
 *
 * Values.  Compute types map to float, i64 and i1; loads convert the storage
 * dtype to them and stores convert back: f16 with the F16C conversions when
 * the target has them, else with integer code that rounds exactly like
 * ir_f32_to_f16 (nearest even); bf16 always with integer code (same rounding
 * as ir_f32_to_bf16, NaN kept quiet); i8/i32 sign-extend on load and wrap on
 * store; bool is a byte 0/1.  Integer division and remainder are guarded so
 * a zero or -1 divisor never traps (lowering guards the values; these guards
 * only keep unselected lanes and INT64_MIN / -1 defined, which wraps).  A
 * select or an && / || whose later operand loads from memory is rendered
 * with branches, as C's ?: would evaluate it, so a guarded out-of-range index
 * is never dereferenced.
 *
 * Run-time errors.  Every kernel takes the run's KTrapRecord pointer last
 * (ir/trap.h); a KS_TRAP (always behind lowering's `if`) is a monotonic
 * cmpxchg of the code from 0 and, by the one point that wins it, plain stores
 * of the node and the operand values; then the point goes on.  The launcher
 * reads the record after the thread pool has joined.  A kernel without traps
 * never touches the pointer, so its code is what it was.
 *
 * Math.  exp, log, tanh and erf are internal helpers in plain f32 arithmetic
 * (always inlined, so they vectorize like everything else; libm calls would
 * not):
 *   exp   Cephes-style: n = rint(x log2 e), r = x - n ln2 (two-part ln2), a
 *         degree-6 polynomial, scaled by 2^n in two steps so that overflow
 *         gives inf and underflow goes gradually through the subnormals.
 *   log   Cephes-style: mantissa in [sqrt(1/2), sqrt 2), a degree-9
 *         polynomial, subnormal inputs scaled first; 0 -> -inf, < 0 -> NaN.
 *   tanh  a [13/6] rational approximation on [-7.905, 7.905] (Eigen's
 *         float tanh; beyond it the value rounds to +-1), x itself near 0.
 *   erf   fdlibm's erff structure and coefficients (four ranges: odd
 *         rational below 0.84375, erx + P/Q below 1.25, 1 - exp(..)/x with
 *         the two R/S sets below 6, then +-1), evaluated branch-free.
 * Measured against double-precision libm over a sweep of 4 million f32
 * (tests/unit/test_host.c, math_sweep): exp, log and erf within 1 ulp, tanh
 * within 5, sigmoid within 2.  sigmoid is 1/(1+e^-x) for x >= 0 and
 * e^x/(1+e^x) below (no overflow, accurate tails); silu is x sigmoid(x);
 * gelu is 0.5 x (1 + erf(x/sqrt 2)) with 1 + erf(z) taken as erfc(|z|) for
 * z <= -0.84375 (fdlibm's erfc, no cancellation in the negative tail), and
 * gelu_tanh is x sigmoid(2u) = 0.5 x (1 + tanh u), for the same reason.
 * pow (rare) calls powf through llvm.pow.f32 and float % fmodf through frem;
 * the JIT resolves both from the process.  Float max/min propagate NaN
 * (a > b ? a : b after a NaN check), relu keeps NaN (x < 0 ? 0 : x), and
 * comparisons are ordered except != (true for NaN), like C. */
#include "render.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/DebugInfo.h>

#include "../../ir/trap.h"

typedef struct {
    LLVMContextRef C;
    LLVMModuleRef M;
    LLVMBuilderRef B; /* the body */
    LLVMBuilderRef A; /* allocas and dim loads, before the entry block's terminator */
    const Graph *g;
    const Kernel *k;
    const CgLlvmOptions *o;
    LLVMTypeRef tv, t1, t8, t16, t32, t64, tf, th, tp;
    LLVMValueRef fn;     /* the body function */
    LLVMValueRef *bufp;  /* per buffer: its pointer (its class's parameter) */
    LLVMValueRef dimsp;  /* const int64_t *dims */
    LLVMValueRef trapp;  /* KTrapRecord *trap (ir/trap.h) */
    LLVMValueRef *dimv;  /* loaded on first use */
    LLVMValueRef *vars;  /* allocas of the loop variables */
    LLVMValueRef *locals; /* allocas of the locals, per lane: [lane * nlocals + local] */
    int nlanes;           /* points rendered together (1, or a block of a jammed body) */
    int rows, cols;       /* the block's shape (jammed_body) */
    int lane;             /* the one being rendered */
    int ndims;
    LLVMValueRef *tabs;  /* the kernel's constant tables: private constant globals */
    LLVMTypeRef *tabty;  /* [n x i32] */
    char *err;
    size_t errn;
    bool failed;
} R;

static void fail(R *r, const char *fmt, const char *what) {
    if (!r->failed && r->err && r->errn) snprintf(r->err, r->errn, fmt, what);
    r->failed = true;
}

/* ---- small builders --------------------------------------------------------- */

static LLVMValueRef cf(R *r, double v) { return LLVMConstReal(r->tf, (double)(float)v); }
static LLVMValueRef ci32(R *r, int64_t v) { return LLVMConstInt(r->t32, (unsigned long long)v, 1); }
static LLVMValueRef ci64(R *r, int64_t v) { return LLVMConstInt(r->t64, (unsigned long long)v, 1); }
static LLVMValueRef cb(R *r, bool v) { return LLVMConstInt(r->t1, v, 0); }

static LLVMValueRef xfadd(LLVMBuilderRef b, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFAdd(b, x, y, ""); }
static LLVMValueRef xfsub(LLVMBuilderRef b, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFSub(b, x, y, ""); }
static LLVMValueRef xfmul(LLVMBuilderRef b, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFMul(b, x, y, ""); }
static LLVMValueRef xfdiv(LLVMBuilderRef b, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFDiv(b, x, y, ""); }
static LLVMValueRef fcmp(LLVMBuilderRef b, LLVMRealPredicate p, LLVMValueRef x, LLVMValueRef y) {
    return LLVMBuildFCmp(b, p, x, y, "");
}
static LLVMValueRef icmp(LLVMBuilderRef b, LLVMIntPredicate p, LLVMValueRef x, LLVMValueRef y) {
    return LLVMBuildICmp(b, p, x, y, "");
}
static LLVMValueRef sel(LLVMBuilderRef b, LLVMValueRef c, LLVMValueRef x, LLVMValueRef y) {
    return LLVMBuildSelect(b, c, x, y, "");
}
static LLVMValueRef iand(LLVMBuilderRef b, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildAnd(b, x, y, ""); }
static LLVMValueRef ior(LLVMBuilderRef b, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildOr(b, x, y, ""); }
static LLVMValueRef ishl(LLVMBuilderRef b, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildShl(b, x, y, ""); }
static LLVMValueRef ilshr(LLVMBuilderRef b, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildLShr(b, x, y, ""); }
static LLVMValueRef f2i(R *r, LLVMBuilderRef b, LLVMValueRef x) { return LLVMBuildBitCast(b, x, r->t32, ""); }
static LLVMValueRef i2f(R *r, LLVMBuilderRef b, LLVMValueRef x) { return LLVMBuildBitCast(b, x, r->tf, ""); }

/* An intrinsic or library function, declared on first use. */
static LLVMValueRef declare(R *r, const char *name, LLVMTypeRef ret, LLVMTypeRef *args, unsigned n) {
    LLVMValueRef f = LLVMGetNamedFunction(r->M, name);
    if (!f) f = LLVMAddFunction(r->M, name, LLVMFunctionType(ret, args, n, 0));
    return f;
}

static LLVMValueRef call(LLVMBuilderRef b, LLVMValueRef f, LLVMValueRef *args, unsigned n) {
    return LLVMBuildCall2(b, LLVMGlobalGetValueType(f), f, args, n, "");
}

static LLVMValueRef call_f1(R *r, LLVMBuilderRef b, const char *name, LLVMValueRef x) {
    return call(b, declare(r, name, r->tf, &r->tf, 1), &x, 1);
}

static LLVMValueRef call_f2(R *r, LLVMBuilderRef b, const char *name, LLVMValueRef x, LLVMValueRef y) {
    LLVMTypeRef a[2] = {r->tf, r->tf};
    LLVMValueRef v[2] = {x, y};
    return call(b, declare(r, name, r->tf, a, 2), v, 2);
}

static void add_attr(R *r, LLVMValueRef f, LLVMAttributeIndex idx, const char *name) {
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(f, idx, LLVMCreateEnumAttribute(r->C, kind, 0));
}

static void add_str_attr(R *r, LLVMValueRef f, const char *key, const char *value) {
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(r->C, key, (unsigned)strlen(key), value, (unsigned)strlen(value)));
}

/* c[0] x^(n-1) + ... + c[n-1], Horner's rule. */
static LLVMValueRef horner(R *r, LLVMBuilderRef b, LLVMValueRef x, const double *c, int n) {
    LLVMValueRef p = cf(r, c[0]);
    for (int i = 1; i < n; i++) p = xfadd(b, xfmul(b, p, x), cf(r, c[i]));
    return p;
}

/* The same with per-lane coefficients: ca where `which` holds, else cb. */
static LLVMValueRef horner2(R *r, LLVMBuilderRef b, LLVMValueRef x, LLVMValueRef which, const double *ca,
                            const double *cb_, int n) {
    LLVMValueRef p = sel(b, which, cf(r, ca[0]), cf(r, cb_[0]));
    for (int i = 1; i < n; i++) p = xfadd(b, xfmul(b, p, x), sel(b, which, cf(r, ca[i]), cf(r, cb_[i])));
    return p;
}

/* ---- helper functions (internal, always inlined) ------------------------------ */

typedef LLVMValueRef (*HelperBody)(R *r, LLVMBuilderRef b, LLVMValueRef fn);

static LLVMValueRef helper(R *r, const char *name, LLVMTypeRef ret, LLVMTypeRef *args, unsigned n, HelperBody body) {
    LLVMValueRef f = LLVMGetNamedFunction(r->M, name);
    if (f) return f;
    f = LLVMAddFunction(r->M, name, LLVMFunctionType(ret, args, n, 0));
    LLVMSetLinkage(f, LLVMInternalLinkage);
    add_attr(r, f, LLVMAttributeFunctionIndex, "alwaysinline");
    add_attr(r, f, LLVMAttributeFunctionIndex, "nounwind");
    add_str_attr(r, f, "no-trapping-math", "true");
    LLVMBuilderRef b = LLVMCreateBuilderInContext(r->C);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(r->C, f, "entry"));
    LLVMValueRef v = body(r, b, f);
    if (v) LLVMBuildRet(b, v);
    LLVMDisposeBuilder(b);
    return f;
}

/* 2^n for n in [-126, 127] (an i32), as a float. */
static LLVMValueRef pow2i(R *r, LLVMBuilderRef b, LLVMValueRef n) {
    return i2f(r, b, ishl(b, LLVMBuildAdd(b, n, ci32(r, 127), ""), ci32(r, 23)));
}

static LLVMValueRef body_exp(R *r, LLVMBuilderRef b, LLVMValueRef fn) {
    static const double P[] = {1.9875691500E-4, 1.3981999507E-3, 8.3334519073E-3,
                               4.1665795894E-2, 1.6666665459E-1, 5.0000001201E-1};
    LLVMValueRef x = LLVMGetParam(fn, 0);
    LLVMValueRef nan = fcmp(b, LLVMRealUNO, x, x);
    /* beyond these exp(x) is inf or rounds to 0 */
    LLVMValueRef xc = sel(b, fcmp(b, LLVMRealOGT, x, cf(r, 88.8)), cf(r, 88.8), x);
    xc = sel(b, fcmp(b, LLVMRealOLT, xc, cf(r, -104.0)), cf(r, -104.0), xc);
    xc = sel(b, nan, cf(r, 0), xc);
    LLVMValueRef n = call_f1(r, b, "llvm.rint.f32", xfmul(b, xc, cf(r, 1.44269504088896341)));
    LLVMValueRef t = xfsub(b, xfsub(b, xc, xfmul(b, n, cf(r, 0.693359375))), xfmul(b, n, cf(r, -2.12194440e-4)));
    LLVMValueRef y = horner(r, b, t, P, 6);
    y = xfadd(b, xfadd(b, xfmul(b, xfmul(b, y, t), t), t), cf(r, 1));
    /* scale by 2^n in two steps: n is in [-150, 128] */
    LLVMValueRef ni = LLVMBuildFPToSI(b, n, r->t32, "");
    LLVMValueRef n1 = LLVMBuildAShr(b, ni, ci32(r, 1), ""), n2 = LLVMBuildSub(b, ni, n1, "");
    y = xfmul(b, xfmul(b, y, pow2i(r, b, n1)), pow2i(r, b, n2));
    return sel(b, nan, x, y);
}

static LLVMValueRef body_log(R *r, LLVMBuilderRef b, LLVMValueRef fn) {
    static const double P[] = {7.0376836292E-2,  -1.1514610310E-1, 1.1676998740E-1,
                               -1.2420140846E-1, 1.4249322787E-1,  -1.6668057665E-1,
                               2.0000714765E-1,  -2.4999993993E-1, 3.3333331174E-1};
    LLVMValueRef x = LLVMGetParam(fn, 0);
    /* subnormals: scale by 2^23 first */
    LLVMValueRef sub = fcmp(b, LLVMRealOLT, x, cf(r, 1.17549435e-38));
    LLVMValueRef xs = sel(b, sub, xfmul(b, x, cf(r, 8388608.0)), x);
    LLVMValueRef bits = f2i(r, b, xs);
    LLVMValueRef e = LLVMBuildSub(b, iand(b, ilshr(b, bits, ci32(r, 23)), ci32(r, 0xff)), ci32(r, 126), "");
    e = LLVMBuildSub(b, e, sel(b, sub, ci32(r, 23), ci32(r, 0)), "");
    LLVMValueRef m = i2f(r, b, ior(b, iand(b, bits, ci32(r, 0x007fffff)), ci32(r, 0x3f000000))); /* [0.5, 1) */
    LLVMValueRef small = fcmp(b, LLVMRealOLT, m, cf(r, 0.707106781186547524));
    e = LLVMBuildSub(b, e, LLVMBuildZExt(b, small, r->t32, ""), "");
    LLVMValueRef t = xfsub(b, sel(b, small, xfadd(b, m, m), m), cf(r, 1));
    LLVMValueRef z = xfmul(b, t, t);
    LLVMValueRef y = xfmul(b, xfmul(b, horner(r, b, t, P, 9), t), z);
    LLVMValueRef fe = LLVMBuildSIToFP(b, e, r->tf, "");
    y = xfadd(b, y, xfmul(b, fe, cf(r, -2.12194440e-4)));
    y = xfadd(b, y, xfmul(b, cf(r, -0.5), z));
    LLVMValueRef res = xfadd(b, xfadd(b, t, y), xfmul(b, fe, cf(r, 0.693359375)));
    /* special values */
    res = sel(b, fcmp(b, LLVMRealOEQ, x, cf(r, INFINITY)), x, res);
    res = sel(b, fcmp(b, LLVMRealOEQ, x, cf(r, 0)), cf(r, -INFINITY), res);
    res = sel(b, fcmp(b, LLVMRealOLT, x, cf(r, 0)), cf(r, NAN), res);
    return sel(b, fcmp(b, LLVMRealUNO, x, x), x, res);
}

static LLVMValueRef body_tanh(R *r, LLVMBuilderRef b, LLVMValueRef fn) {
    static const double A[] = {-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                               5.12229709037114e-08,  1.48572235717979e-05, 6.37261928875436e-04,
                               4.89352455891786e-03};
    static const double B[] = {1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                               4.89352518554385e-03};
    const double c = 7.90531110763549805;
    LLVMValueRef x = LLVMGetParam(fn, 0);
    LLVMValueRef xc = sel(b, fcmp(b, LLVMRealOGT, x, cf(r, c)), cf(r, c), x);
    xc = sel(b, fcmp(b, LLVMRealOLT, xc, cf(r, -c)), cf(r, -c), xc);
    LLVMValueRef x2 = xfmul(b, xc, xc);
    LLVMValueRef p = xfmul(b, horner(r, b, x2, A, 7), xc), q = horner(r, b, x2, B, 4);
    LLVMValueRef tiny = fcmp(b, LLVMRealOLT, call_f1(r, b, "llvm.fabs.f32", x), cf(r, 0.0004));
    return sel(b, tiny, x, xfdiv(b, p, q));
}

static LLVMValueRef h_exp(R *r);

/* erf(x) in fdlibm's four ranges; *tail receives erfc(|x|) where |x| >= 0.84375
 * (without the cancellation of 1 - erf), for gelu's negative tail. */
static LLVMValueRef erf_build(R *r, LLVMBuilderRef b, LLVMValueRef x, LLVMValueRef *tail) {
    /* fdlibm s_erff.c coefficients */
    static const double PP[] = {-2.3763017452e-05, -5.7702702470e-03, -2.8481749818e-02, -3.2504209876e-01,
                                1.2837916613e-01};
    static const double QQ[] = {-3.9602282413e-06, 1.3249473704e-04, 5.0813062117e-03, 6.5022252500e-02,
                                3.9791721106e-01,  1.0};
    static const double PA[] = {-2.1663755178e-03, 3.5478305072e-02, -1.1089469492e-01, 3.1834661961e-01,
                                -3.7220788002e-01, 4.1485610604e-01, -2.3621185683e-03};
    static const double QA[] = {1.1984500103e-02, 1.3637083583e-02, 1.2617121637e-01, 7.1828655899e-02,
                                5.4039794207e-01, 1.0642088205e-01, 1.0};
    static const double RA[] = {-9.8143291473e+00, -8.1287437439e+01, -1.8460508728e+02, -1.6239666748e+02,
                                -6.2375331879e+01, -1.0558626175e+01, -6.9385856390e-01, -9.8649440333e-03};
    static const double RB[] = {0.0,               -4.8351919556e+02, -1.0250950928e+03, -6.3756646729e+02,
                                -1.6063638306e+02, -1.7757955551e+01, -7.9928326607e-01, -9.8649431020e-03};
    static const double SA[] = {-6.0424413532e-02, 6.5702495575e+00, 1.0863500214e+02, 4.2900814819e+02,
                                6.4538726807e+02,  4.3456588745e+02, 1.3765776062e+02, 1.9651271820e+01,
                                1.0};
    static const double SB[] = {0.0,              -2.2440952301e+01, 4.7452853394e+02, 2.5530502930e+03,
                                3.1998581543e+03, 1.5367296143e+03,  3.2579251099e+02, 3.0338060379e+01,
                                1.0};
    const float erx = 8.4506291151e-01f, efx8 = 1.0270333290e+00f;
    LLVMValueRef ax = call_f1(r, b, "llvm.fabs.f32", x);
    /* |x| < 0.84375: x + x R(x^2)/S(x^2); below 2^-28 x (1 + efx) written so it cannot underflow */
    LLVMValueRef z = xfmul(b, x, x);
    LLVMValueRef ya = xfadd(b, x, xfmul(b, x, xfdiv(b, horner(r, b, z, PP, 5), horner(r, b, z, QQ, 6))));
    LLVMValueRef tiny = xfmul(b, cf(r, 0.125), xfadd(b, xfmul(b, cf(r, 8), x), xfmul(b, cf(r, efx8), x)));
    ya = sel(b, fcmp(b, LLVMRealOLT, ax, cf(r, 0x1p-28)), tiny, ya);
    /* 0.84375 <= |x| < 1.25: erx + P(s)/Q(s), s = |x| - 1 */
    LLVMValueRef s = xfsub(b, ax, cf(r, 1));
    LLVMValueRef pq = xfdiv(b, horner(r, b, s, PA, 7), horner(r, b, s, QA, 7));
    LLVMValueRef yb = xfadd(b, cf(r, erx), pq);
    LLVMValueRef tb = xfsub(b, cf(r, 1.0 - (double)erx), pq);
    /* 1.25 <= |x| < 6: erfc = exp(-z^2 - 0.5625) exp((z - |x|)(z + |x|) + R/S) / |x|, z = |x| to 11 bits */
    LLVMValueRef s2 = xfdiv(b, cf(r, 1), xfmul(b, ax, ax));
    LLVMValueRef near = fcmp(b, LLVMRealOLT, ax, i2f(r, b, ci32(r, 0x4036db6d))); /* 1/0.35 */
    LLVMValueRef rs = xfdiv(b, horner2(r, b, s2, near, RA, RB, 8), horner2(r, b, s2, near, SA, SB, 9));
    LLVMValueRef zz = i2f(r, b, iand(b, f2i(r, b, ax), ci32(r, (int32_t)0xffffe000)));
    LLVMValueRef e1 = xfsub(b, LLVMBuildFNeg(b, xfmul(b, zz, zz), ""), cf(r, 0.5625));
    LLVMValueRef e2 = xfadd(b, xfmul(b, xfsub(b, zz, ax), xfadd(b, zz, ax)), rs);
    LLVMValueRef ex = h_exp(r);
    LLVMValueRef tc = xfdiv(b, xfmul(b, call(b, ex, &e1, 1), call(b, ex, &e2, 1)), ax);
    LLVMValueRef yc = xfsub(b, cf(r, 1), tc);
    LLVMValueRef below125 = fcmp(b, LLVMRealOLT, ax, cf(r, 1.25)), below6 = fcmp(b, LLVMRealOLT, ax, cf(r, 6));
    LLVMValueRef mag = sel(b, below125, yb, sel(b, below6, yc, cf(r, 1)));
    if (tail) *tail = sel(b, below125, tb, sel(b, below6, tc, cf(r, 0)));
    LLVMValueRef y = sel(b, fcmp(b, LLVMRealOLT, ax, cf(r, 0.84375)), ya, call_f2(r, b, "llvm.copysign.f32", mag, x));
    return sel(b, fcmp(b, LLVMRealUNO, x, x), x, y);
}

static LLVMValueRef body_erf(R *r, LLVMBuilderRef b, LLVMValueRef fn) {
    return erf_build(r, b, LLVMGetParam(fn, 0), NULL);
}

/* 0.5 x (1 + erf(x / sqrt 2)), with 1 + erf(z) = erfc(|z|) for z <= -0.84375. */
static LLVMValueRef body_gelu(R *r, LLVMBuilderRef b, LLVMValueRef fn) {
    LLVMValueRef x = LLVMGetParam(fn, 0), tail;
    LLVMValueRef z = xfmul(b, x, cf(r, 0.70710678118654752440));
    LLVMValueRef e = erf_build(r, b, z, &tail);
    LLVMValueRef one_plus = sel(b, fcmp(b, LLVMRealOLE, z, cf(r, -0.84375)), tail, xfadd(b, cf(r, 1), e));
    return xfmul(b, xfmul(b, cf(r, 0.5), x), one_plus);
}

static LLVMValueRef h_exp(R *r) { return helper(r, "dsc.exp", r->tf, &r->tf, 1, body_exp); }
static LLVMValueRef h_log(R *r) { return helper(r, "dsc.log", r->tf, &r->tf, 1, body_log); }
static LLVMValueRef h_tanh(R *r) { return helper(r, "dsc.tanh", r->tf, &r->tf, 1, body_tanh); }
static LLVMValueRef h_erf(R *r) { return helper(r, "dsc.erf", r->tf, &r->tf, 1, body_erf); }
static LLVMValueRef h_gelu(R *r) { return helper(r, "dsc.gelu", r->tf, &r->tf, 1, body_gelu); }

/* IEEE half bits -> f32 (ir_f16_to_f32). */
static LLVMValueRef body_f16_to_f32(R *r, LLVMBuilderRef b, LLVMValueRef fn) {
    LLVMValueRef h = LLVMBuildZExt(b, LLVMGetParam(fn, 0), r->t32, "");
    LLVMValueRef sign = ishl(b, iand(b, h, ci32(r, 0x8000)), ci32(r, 16));
    LLVMValueRef e = iand(b, ilshr(b, h, ci32(r, 10)), ci32(r, 0x1f)), man = iand(b, h, ci32(r, 0x3ff));
    LLVMValueRef man13 = ishl(b, man, ci32(r, 13));
    LLVMValueRef normal = ior(b, sign, ior(b, ishl(b, LLVMBuildAdd(b, e, ci32(r, 112), ""), ci32(r, 23)), man13));
    LLVMValueRef infnan = ior(b, sign, ior(b, ci32(r, 0x7f800000), man13));
    LLVMValueRef subf = xfmul(b, LLVMBuildUIToFP(b, man, r->tf, ""), cf(r, 0x1p-24)); /* exact */
    LLVMValueRef sub = ior(b, f2i(r, b, subf), sign);
    LLVMValueRef bits = sel(b, icmp(b, LLVMIntEQ, e, ci32(r, 0)), sub,
                            sel(b, icmp(b, LLVMIntEQ, e, ci32(r, 31)), infnan, normal));
    return i2f(r, b, bits);
}

/* f32 -> IEEE half bits, round to nearest even (ir_f32_to_f16). */
static LLVMValueRef body_f32_to_f16(R *r, LLVMBuilderRef b, LLVMValueRef fn) {
    LLVMValueRef f = LLVMGetParam(fn, 0), x = f2i(r, b, f);
    LLVMValueRef sign = iand(b, ilshr(b, x, ci32(r, 16)), ci32(r, 0x8000));
    LLVMValueRef exp = iand(b, ilshr(b, x, ci32(r, 23)), ci32(r, 0xff)), man = iand(b, x, ci32(r, 0x7fffff));
    LLVMValueRef nanbits = sel(b, icmp(b, LLVMIntNE, man, ci32(r, 0)),
                               ior(b, ci32(r, 0x200), ilshr(b, man, ci32(r, 13))), ci32(r, 0));
    LLVMValueRef special = ior(b, sign, ior(b, ci32(r, 0x7c00), nanbits));
    LLVMValueRef e = LLVMBuildSub(b, exp, ci32(r, 112), "");
    /* normal: keep 10 bits, round the other 13 to nearest even (a carry into the exponent is right) */
    LLVMValueRef half = ior(b, ishl(b, e, ci32(r, 10)), ilshr(b, man, ci32(r, 13)));
    LLVMValueRef rem = iand(b, man, ci32(r, 0x1fff));
    LLVMValueRef up = ior(b, icmp(b, LLVMIntUGT, rem, ci32(r, 0x1000)),
                          iand(b, icmp(b, LLVMIntEQ, rem, ci32(r, 0x1000)),
                               icmp(b, LLVMIntNE, iand(b, half, ci32(r, 1)), ci32(r, 0))));
    LLVMValueRef normal = ior(b, sign, LLVMBuildAdd(b, half, LLVMBuildZExt(b, up, r->t32, ""), ""));
    /* subnormal or zero: |f| * 2^24 is exact; rint rounds it to nearest even */
    LLVMValueRef scaled = xfmul(b, call_f1(r, b, "llvm.fabs.f32", f), cf(r, 0x1p24));
    LLVMValueRef sub = ior(b, sign, LLVMBuildFPToUI(b, call_f1(r, b, "llvm.rint.f32", scaled), r->t32, ""));
    LLVMValueRef res = sel(b, icmp(b, LLVMIntSLE, e, ci32(r, 0)), sub, normal);
    res = sel(b, icmp(b, LLVMIntSGE, e, ci32(r, 31)), ior(b, sign, ci32(r, 0x7c00)), res);
    res = sel(b, icmp(b, LLVMIntEQ, exp, ci32(r, 0xff)), special, res);
    return LLVMBuildTrunc(b, res, r->t16, "");
}

/* b^e with wrap-around; a negative e gives the truncated 1/b^|e| (1, -1 or 0). */
static LLVMValueRef body_ipow(R *r, LLVMBuilderRef b, LLVMValueRef fn) {
    LLVMValueRef base = LLVMGetParam(fn, 0), ex = LLVMGetParam(fn, 1);
    LLVMBasicBlockRef entry = LLVMGetInsertBlock(b);
    LLVMBasicBlockRef neg = LLVMAppendBasicBlockInContext(r->C, fn, "neg");
    LLVMBasicBlockRef loop = LLVMAppendBasicBlockInContext(r->C, fn, "loop");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(r->C, fn, "done");
    LLVMBuildCondBr(b, icmp(b, LLVMIntSLT, ex, ci64(r, 0)), neg, loop);
    LLVMPositionBuilderAtEnd(b, neg);
    LLVMValueRef odd = icmp(b, LLVMIntNE, iand(b, ex, ci64(r, 1)), ci64(r, 0));
    LLVMValueRef v = sel(b, icmp(b, LLVMIntEQ, base, ci64(r, 1)), ci64(r, 1),
                         sel(b, icmp(b, LLVMIntEQ, base, ci64(r, -1)), sel(b, odd, ci64(r, -1), ci64(r, 1)),
                             ci64(r, 0)));
    LLVMBuildRet(b, v);
    LLVMPositionBuilderAtEnd(b, loop);
    LLVMValueRef acc = LLVMBuildPhi(b, r->t64, ""), x = LLVMBuildPhi(b, r->t64, ""), e = LLVMBuildPhi(b, r->t64, "");
    LLVMValueRef stop = icmp(b, LLVMIntEQ, e, ci64(r, 0));
    LLVMValueRef bit = icmp(b, LLVMIntNE, iand(b, e, ci64(r, 1)), ci64(r, 0));
    LLVMValueRef acc2 = sel(b, bit, LLVMBuildMul(b, acc, x, ""), acc);
    LLVMValueRef x2 = LLVMBuildMul(b, x, x, ""), e2 = LLVMBuildLShr(b, e, ci64(r, 1), "");
    LLVMBuildCondBr(b, stop, done, loop);
    LLVMValueRef in_acc[2] = {ci64(r, 1), acc2}, in_x[2] = {base, x2}, in_e[2] = {ex, e2};
    LLVMBasicBlockRef from[2] = {entry, loop};
    LLVMAddIncoming(acc, in_acc, from, 2);
    LLVMAddIncoming(x, in_x, from, 2);
    LLVMAddIncoming(e, in_e, from, 2);
    LLVMPositionBuilderAtEnd(b, done);
    return acc;
}

/* ---- loads, stores, dims ------------------------------------------------------- */

static LLVMTypeRef type_of(R *r, KType t) { return t == KT_F32 ? r->tf : t == KT_I64 ? r->t64 : r->t1; }

static LLVMTypeRef storage_type(R *r, DType dt) {
    switch (dt) {
    case DT_F32: return r->tf;
    case DT_F16: return r->o->f16c ? r->th : r->t16;
    case DT_BF16: return r->t16;
    case DT_I8: return r->t8;
    case DT_I32: return r->t32;
    case DT_I64: return r->t64;
    case DT_BOOL: return r->t8;
    default: return NULL;
    }
}

static LLVMValueRef bf16_to_f32(R *r, LLVMValueRef h) {
    LLVMBuilderRef b = r->B;
    return i2f(r, b, ishl(b, LLVMBuildZExt(b, h, r->t32, ""), ci32(r, 16)));
}

static LLVMValueRef f32_to_bf16(R *r, LLVMValueRef f) {
    LLVMBuilderRef b = r->B;
    LLVMValueRef x = f2i(r, b, f), hi = ilshr(b, x, ci32(r, 16));
    LLVMValueRef nan = icmp(b, LLVMIntUGT, iand(b, x, ci32(r, 0x7fffffff)), ci32(r, 0x7f800000));
    LLVMValueRef rounded = ilshr(b, LLVMBuildAdd(b, x, LLVMBuildAdd(b, ci32(r, 0x7fff), iand(b, hi, ci32(r, 1)), ""), ""),
                                 ci32(r, 16));
    return LLVMBuildTrunc(b, sel(b, nan, ior(b, hi, ci32(r, 0x40)), rounded), r->t16, "");
}

static LLVMValueRef address(R *r, int buf, LLVMValueRef index) {
    LLVMTypeRef t = storage_type(r, r->k->bufs[buf].dtype);
    return LLVMBuildInBoundsGEP2(r->B, t, r->bufp[buf], &index, 1, "");
}

static LLVMValueRef load_buf(R *r, int buf, LLVMValueRef index) {
    LLVMBuilderRef b = r->B;
    DType dt = r->k->bufs[buf].dtype;
    LLVMValueRef v = LLVMBuildLoad2(b, storage_type(r, dt), address(r, buf, index), "");
    switch (dt) {
    case DT_F32: return v;
    case DT_F16:
        if (r->o->f16c) return LLVMBuildFPExt(b, v, r->tf, "");
        return call(b, helper(r, "dsc.f16_to_f32", r->tf, &r->t16, 1, body_f16_to_f32), &v, 1);
    case DT_BF16: return bf16_to_f32(r, v);
    case DT_I8:
    case DT_I32: return LLVMBuildSExt(b, v, r->t64, "");
    case DT_I64: return v;
    case DT_BOOL: return icmp(b, LLVMIntNE, v, LLVMConstInt(r->t8, 0, 0));
    default: return NULL;
    }
}

static void store_buf(R *r, int buf, LLVMValueRef index, LLVMValueRef v) {
    LLVMBuilderRef b = r->B;
    DType dt = r->k->bufs[buf].dtype;
    switch (dt) {
    case DT_F32: break;
    case DT_F16:
        if (r->o->f16c)
            v = LLVMBuildFPTrunc(b, v, r->th, "");
        else
            v = call(b, helper(r, "dsc.f32_to_f16", r->t16, &r->tf, 1, body_f32_to_f16), &v, 1);
        break;
    case DT_BF16: v = f32_to_bf16(r, v); break;
    case DT_I8:
    case DT_I32: v = LLVMBuildTrunc(b, v, storage_type(r, dt), ""); break;
    case DT_I64: break;
    case DT_BOOL: v = LLVMBuildZExt(b, v, r->t8, ""); break;
    default: return;
    }
    LLVMBuildStore(b, v, address(r, buf, index));
}

static LLVMValueRef dim_value(R *r, int sym) {
    if (!r->dimv[sym]) {
        LLVMValueRef idx = ci64(r, sym);
        LLVMValueRef p = LLVMBuildInBoundsGEP2(r->A, r->t64, r->dimsp, &idx, 1, "");
        r->dimv[sym] = LLVMBuildLoad2(r->A, r->t64, p, dim_sym_name(r->g->dims, sym));
    }
    return r->dimv[sym];
}

static LLVMValueRef local_slot(R *r, int local) { return r->locals[r->lane * r->k->nlocals + local]; }

/* ---- expressions ----------------------------------------------------------------- */

static bool has_load(const KExpr *e) {
    if (!e) return false;
    if (e->kind == KE_LOAD || e->kind == KE_TABLE) return true;
    return has_load(e->a) || has_load(e->b) || has_load(e->c);
}

static LLVMValueRef expr(R *r, const KExpr *e, bool index);

static bool has_table(const KExpr *e) {
    if (!e) return false;
    return e->kind == KE_TABLE || has_table(e->a) || has_table(e->b) || has_table(e->c);
}

/* cond ? (then) : (else) with branches, so only the chosen side runs. */
static LLVMValueRef lazy_select(R *r, LLVMValueRef cond, const KExpr *then_e, LLVMValueRef then_v, const KExpr *else_e,
                                LLVMValueRef else_v, LLVMTypeRef t, bool index) {
    LLVMBuilderRef b = r->B;
    LLVMBasicBlockRef bt = LLVMAppendBasicBlockInContext(r->C, r->fn, "sel.t");
    LLVMBasicBlockRef bf = LLVMAppendBasicBlockInContext(r->C, r->fn, "sel.f");
    LLVMBasicBlockRef bm = LLVMAppendBasicBlockInContext(r->C, r->fn, "sel.m");
    LLVMBuildCondBr(b, cond, bt, bf);
    LLVMPositionBuilderAtEnd(b, bt);
    LLVMValueRef vt = then_e ? expr(r, then_e, index) : then_v;
    LLVMBasicBlockRef et = LLVMGetInsertBlock(b);
    LLVMBuildBr(b, bm);
    LLVMPositionBuilderAtEnd(b, bf);
    LLVMValueRef vf = else_e ? expr(r, else_e, index) : else_v;
    LLVMBasicBlockRef ef = LLVMGetInsertBlock(b);
    LLVMBuildBr(b, bm);
    LLVMPositionBuilderAtEnd(b, bm);
    LLVMValueRef phi = LLVMBuildPhi(b, t, "");
    LLVMValueRef vals[2] = {vt, vf};
    LLVMBasicBlockRef from[2] = {et, ef};
    LLVMAddIncoming(phi, vals, from, 2);
    return phi;
}

static LLVMValueRef sigmoid(R *r, LLVMValueRef x) {
    LLVMBuilderRef b = r->B;
    LLVMValueRef nax = LLVMBuildFNeg(b, call_f1(r, b, "llvm.fabs.f32", x), "");
    LLVMValueRef e = call(b, h_exp(r), &nax, 1);
    LLVMValueRef s = xfdiv(b, cf(r, 1), xfadd(b, cf(r, 1), e));
    return sel(b, fcmp(b, LLVMRealOGE, x, cf(r, 0)), s, xfmul(b, e, s));
}

static LLVMValueRef unary_float(R *r, KOp op, LLVMValueRef x) {
    LLVMBuilderRef b = r->B;
    switch (op) {
    case KO_NEG: return LLVMBuildFNeg(b, x, "");
    case KO_ABS: return call_f1(r, b, "llvm.fabs.f32", x);
    case KO_EXP: return call(b, h_exp(r), &x, 1);
    case KO_LOG: return call(b, h_log(r), &x, 1);
    case KO_SQRT: return call_f1(r, b, "llvm.sqrt.f32", x);
    case KO_RSQRT: return xfdiv(b, cf(r, 1), call_f1(r, b, "llvm.sqrt.f32", x));
    case KO_RECIP: return xfdiv(b, cf(r, 1), x);
    case KO_TANH: return call(b, h_tanh(r), &x, 1);
    case KO_SIGMOID: return sigmoid(r, x);
    case KO_RELU: return sel(b, fcmp(b, LLVMRealOLT, x, cf(r, 0)), cf(r, 0), x);
    case KO_ERF: return call(b, h_erf(r), &x, 1);
    case KO_SILU: return xfmul(b, x, sigmoid(r, x));
    case KO_GELU: return call(b, h_gelu(r), &x, 1);
    case KO_GELU_TANH: {
        /* 0.5 (1 + tanh(u)) = sigmoid(2u): no cancellation in the negative tail */
        LLVMValueRef x3 = xfmul(b, xfmul(b, x, x), x);
        LLVMValueRef u = xfmul(b, cf(r, 0.79788456080286535588), xfadd(b, x, xfmul(b, cf(r, 0.044715), x3)));
        return xfmul(b, x, sigmoid(r, xfadd(b, u, u)));
    }
    default: return NULL;
    }
}

static LLVMValueRef unary_int(R *r, KOp op, LLVMValueRef x) {
    LLVMBuilderRef b = r->B;
    switch (op) {
    case KO_NEG: return LLVMBuildSub(b, ci64(r, 0), x, "");
    case KO_ABS: return sel(b, icmp(b, LLVMIntSLT, x, ci64(r, 0)), LLVMBuildSub(b, ci64(r, 0), x, ""), x);
    case KO_RELU: return sel(b, icmp(b, LLVMIntSLT, x, ci64(r, 0)), ci64(r, 0), x);
    default: return NULL;
    }
}

static LLVMValueRef cast(R *r, KType to, KType from, LLVMValueRef x) {
    LLVMBuilderRef b = r->B;
    if (to == from) return x;
    switch (to) {
    case KT_F32: return from == KT_I64 ? LLVMBuildSIToFP(b, x, r->tf, "") : LLVMBuildUIToFP(b, x, r->tf, "");
    case KT_I64:
        if (from == KT_BOOL) return LLVMBuildZExt(b, x, r->t64, "");
        /* truncates toward zero, saturates, NaN -> 0 */
        return call(b, declare(r, "llvm.fptosi.sat.i64.f32", r->t64, &r->tf, 1), &x, 1);
    case KT_BOOL:
        if (from == KT_F32) return fcmp(b, LLVMRealUNE, x, cf(r, 0));
        return icmp(b, LLVMIntNE, x, ci64(r, 0));
    default: return NULL;
    }
}

static LLVMValueRef unary(R *r, const KExpr *e, bool index) {
    LLVMBuilderRef b = r->B;
    KType t = e->a->type;
    LLVMValueRef x = expr(r, e->a, index);
    if (r->failed) return NULL;
    if (e->op == KO_CAST) return cast(r, e->type, t, x);
    if (e->op == KO_WRAP) {
        if (t == KT_F32 && e->dt == DT_F16) {
            if (r->o->f16c) return LLVMBuildFPExt(b, LLVMBuildFPTrunc(b, x, r->th, ""), r->tf, "");
            LLVMValueRef h = call(b, helper(r, "dsc.f32_to_f16", r->t16, &r->tf, 1, body_f32_to_f16), &x, 1);
            return call(b, helper(r, "dsc.f16_to_f32", r->tf, &r->t16, 1, body_f16_to_f32), &h, 1);
        }
        if (t == KT_F32 && e->dt == DT_BF16) return bf16_to_f32(r, f32_to_bf16(r, x));
        if (t != KT_I64) return x;
        LLVMTypeRef w = e->dt == DT_I8 ? r->t8 : e->dt == DT_I32 ? r->t32 : NULL;
        if (!w) return x;
        return LLVMBuildSExt(b, LLVMBuildTrunc(b, x, w, ""), r->t64, "");
    }
    if (e->op == KO_NOT) {
        if (t == KT_BOOL) return LLVMBuildXor(b, x, cb(r, true), "");
        return LLVMBuildNot(b, cast(r, KT_BOOL, t, x), "");
    }
    LLVMValueRef v = NULL;
    if (t == KT_F32)
        v = unary_float(r, e->op, x);
    else if (t == KT_I64)
        v = unary_int(r, e->op, x);
    else if (e->op == KO_NEG || e->op == KO_ABS || e->op == KO_RELU)
        v = x; /* 0/1 */
    if (!v) fail(r, "unsupported operand type for %s", kir_op_name(e->op));
    return v;
}

/* Integer division and remainder that never trap: a zero or -1 divisor
 * divides by 1 instead (x / -1 is -x, wrapping; x % -1 is 0). */
static LLVMValueRef int_divmod(R *r, bool mod, LLVMValueRef x, LLVMValueRef y) {
    LLVMBuilderRef b = r->B;
    LLVMValueRef m1 = icmp(b, LLVMIntEQ, y, ci64(r, -1));
    LLVMValueRef bad = ior(b, icmp(b, LLVMIntEQ, y, ci64(r, 0)), m1);
    LLVMValueRef d = sel(b, bad, ci64(r, 1), y);
    if (mod) return sel(b, m1, ci64(r, 0), LLVMBuildSRem(b, x, d, ""));
    return sel(b, m1, LLVMBuildSub(b, ci64(r, 0), x, ""), LLVMBuildSDiv(b, x, d, ""));
}

static LLVMValueRef binary_float(R *r, KOp op, LLVMValueRef x, LLVMValueRef y) {
    LLVMBuilderRef b = r->B;
    switch (op) {
    case KO_ADD: return xfadd(b, x, y);
    case KO_SUB: return xfsub(b, x, y);
    case KO_MUL: return xfmul(b, x, y);
    case KO_DIV: return xfdiv(b, x, y);
    case KO_MOD: return LLVMBuildFRem(b, x, y, "");
    case KO_POW: return call_f2(r, b, "llvm.pow.f32", x, y);
    case KO_MAX:
    case KO_MIN: {
        LLVMValueRef nan = fcmp(b, LLVMRealUNO, x, y);
        LLVMValueRef pick = fcmp(b, op == KO_MAX ? LLVMRealOGT : LLVMRealOLT, x, y);
        return sel(b, nan, cf(r, NAN), sel(b, pick, x, y));
    }
    case KO_LT: return fcmp(b, LLVMRealOLT, x, y);
    case KO_GT: return fcmp(b, LLVMRealOGT, x, y);
    case KO_LE: return fcmp(b, LLVMRealOLE, x, y);
    case KO_GE: return fcmp(b, LLVMRealOGE, x, y);
    case KO_EQ: return fcmp(b, LLVMRealOEQ, x, y);
    case KO_NE: return fcmp(b, LLVMRealUNE, x, y);
    default: return NULL;
    }
}

static LLVMValueRef binary_int(R *r, KOp op, LLVMValueRef x, LLVMValueRef y, bool index) {
    LLVMBuilderRef b = r->B;
    switch (op) {
    /* index arithmetic cannot overflow (the index is in range): nsw helps the vectorizer */
    case KO_ADD: return index ? LLVMBuildNSWAdd(b, x, y, "") : LLVMBuildAdd(b, x, y, "");
    case KO_SUB: return index ? LLVMBuildNSWSub(b, x, y, "") : LLVMBuildSub(b, x, y, "");
    case KO_MUL: return index ? LLVMBuildNSWMul(b, x, y, "") : LLVMBuildMul(b, x, y, "");
    case KO_DIV: return int_divmod(r, false, x, y);
    case KO_MOD: return int_divmod(r, true, x, y);
    case KO_POW: {
        LLVMTypeRef a[2] = {r->t64, r->t64};
        LLVMValueRef v[2] = {x, y};
        return call(b, helper(r, "dsc.ipow", r->t64, a, 2, body_ipow), v, 2);
    }
    case KO_MAX: return sel(b, icmp(b, LLVMIntSGT, x, y), x, y);
    case KO_MIN: return sel(b, icmp(b, LLVMIntSLT, x, y), x, y);
    case KO_LT: return icmp(b, LLVMIntSLT, x, y);
    case KO_GT: return icmp(b, LLVMIntSGT, x, y);
    case KO_LE: return icmp(b, LLVMIntSLE, x, y);
    case KO_GE: return icmp(b, LLVMIntSGE, x, y);
    case KO_EQ: return icmp(b, LLVMIntEQ, x, y);
    case KO_NE: return icmp(b, LLVMIntNE, x, y);
    default: return NULL;
    }
}

static LLVMValueRef binary_bool(R *r, KOp op, LLVMValueRef x, LLVMValueRef y) {
    LLVMBuilderRef b = r->B;
    switch (op) {
    case KO_AND:
    case KO_MIN: return iand(b, x, y);
    case KO_OR:
    case KO_MAX: return ior(b, x, y);
    case KO_EQ: return icmp(b, LLVMIntEQ, x, y);
    case KO_NE: return icmp(b, LLVMIntNE, x, y);
    case KO_LT: return icmp(b, LLVMIntULT, x, y); /* false < true */
    case KO_GT: return icmp(b, LLVMIntUGT, x, y);
    case KO_LE: return icmp(b, LLVMIntULE, x, y);
    case KO_GE: return icmp(b, LLVMIntUGE, x, y);
    default: {
        /* arithmetic on truth values: as the integers 0 and 1, then != 0 */
        LLVMValueRef v = binary_int(r, op, LLVMBuildZExt(b, x, r->t64, ""), LLVMBuildZExt(b, y, r->t64, ""), false);
        return v ? icmp(b, LLVMIntNE, v, ci64(r, 0)) : NULL;
    }
    }
}

static LLVMValueRef binary(R *r, const KExpr *e, bool index) {
    KType t = e->a->type;
    if ((e->op == KO_AND || e->op == KO_OR) && t == KT_BOOL && has_load(e->b)) {
        LLVMValueRef x = expr(r, e->a, index);
        if (r->failed) return NULL;
        if (e->op == KO_AND) return lazy_select(r, x, e->b, NULL, NULL, cb(r, false), r->t1, index);
        return lazy_select(r, x, NULL, cb(r, true), e->b, NULL, r->t1, index);
    }
    LLVMValueRef x = expr(r, e->a, index), y = expr(r, e->b, index), v = NULL;
    if (r->failed) return NULL;
    if (t == KT_F32)
        v = binary_float(r, e->op, x, y);
    else if (t == KT_I64)
        v = binary_int(r, e->op, x, y, index);
    else
        v = binary_bool(r, e->op, x, y);
    if (!v) fail(r, "unsupported operand type for %s", kir_op_name(e->op));
    return v;
}

static LLVMValueRef expr(R *r, const KExpr *e, bool index) {
    if (r->failed) return NULL;
    if (!e) {
        fail(r, "%s", "missing expression");
        return NULL;
    }
    switch (e->kind) {
    case KE_CONST:
        if (e->type == KT_F32) return cf(r, e->f);
        if (e->type == KT_I64) return ci64(r, e->i);
        return cb(r, e->i != 0);
    case KE_DIM:
        if (e->id < 0 || e->id >= r->ndims) break;
        return dim_value(r, e->id);
    case KE_VAR: {
        if (e->id < 0 || e->id >= r->k->nvars) break;
        LLVMValueRef v = LLVMBuildLoad2(r->B, r->t64, r->vars[e->id], "");
        int off = 0;
        if (e->id == r->k->npar - 1) off = r->lane % r->cols;
        if (e->id == r->k->npar - 2 && r->rows > 1) off = r->lane / r->cols;
        if (off) v = LLVMBuildNSWAdd(r->B, v, ci64(r, off), "");
        return v;
    }
    case KE_LOCAL:
        if (e->id < 0 || e->id >= r->k->nlocals) break;
        return LLVMBuildLoad2(r->B, type_of(r, r->k->locals[e->id]), local_slot(r, e->id), "");
    case KE_LOAD: {
        if (e->id < 0 || e->id >= r->k->nbufs) break;
        LLVMValueRef i = expr(r, e->a, true);
        return r->failed ? NULL : load_buf(r, e->id, i);
    }
    case KE_TABLE: {
        if (e->id < 0 || e->id >= r->k->ntables) break;
        LLVMValueRef i = expr(r, e->a, true);
        if (r->failed) return NULL;
        LLVMValueRef idx[2] = {ci64(r, 0), i};
        LLVMValueRef p = LLVMBuildInBoundsGEP2(r->B, r->tabty[e->id], r->tabs[e->id], idx, 2, "");
        return LLVMBuildSExt(r->B, LLVMBuildLoad2(r->B, r->t32, p, ""), r->t64, "");
    }
    case KE_UN: return unary(r, e, index);
    case KE_BIN: return binary(r, e, index);
    case KE_SELECT: {
        LLVMValueRef c = expr(r, e->a, index);
        if (r->failed) return NULL;
        if (has_load(e->b) || has_load(e->c))
            return lazy_select(r, c, e->b, NULL, e->c, NULL, type_of(r, e->type), index);
        LLVMValueRef x = expr(r, e->b, index), y = expr(r, e->c, index);
        return r->failed ? NULL : sel(r->B, c, x, y);
    }
    }
    fail(r, "%s", "variable, local, dim or buffer out of range");
    return NULL;
}

/* ---- statements ------------------------------------------------------------------ */

static bool has_loop(const KStmt *s) {
    for (; s; s = s->next)
        if (s->kind == KS_FOR || (s->kind == KS_IF && has_loop(s->body))) return true;
    return false;
}

/* A loop ID (self-referential, as LLVM requires) asking for vectorization. */
static void mark_vectorize(R *r, LLVMValueRef latch_br) {
    if (r->o->no_vectorize_hints) return;
    LLVMMetadataRef tmp = LLVMTemporaryMDNode(r->C, NULL, 0);
    LLVMMetadataRef hint[2] = {LLVMMDStringInContext2(r->C, "llvm.loop.vectorize.enable", 26),
                               LLVMValueAsMetadata(cb(r, true))};
    LLVMMetadataRef ops[2] = {tmp, LLVMMDNodeInContext2(r->C, hint, 2)};
    LLVMMetadataRef id = LLVMMDNodeInContext2(r->C, ops, 2);
    LLVMMetadataReplaceAllUsesWith(tmp, id); /* also frees tmp */
    LLVMSetMetadata(latch_br, LLVMGetMDKindIDInContext(r->C, "llvm.loop", 9), LLVMMetadataAsValue(r->C, id));
}

static LLVMBasicBlockRef block(R *r, const char *name) { return LLVMAppendBasicBlockInContext(r->C, r->fn, name); }

/* KS_TRAP for the current lane: the first trap of the run wins the
 * compare-and-swap of the code from 0 and writes node and operands. */
static void trap_stmt(R *r, const KStmt *s) {
    LLVMBuilderRef b = r->B;
    LLVMValueRef v[1 + KTRAP_NARGS] = {ci64(r, s->node)};
    for (int i = 0; i < KTRAP_NARGS; i++)
        v[1 + i] = s->arg[i] ? expr(r, s->arg[i], false) : ci64(r, 0); /* data: no nsw */
    if (r->failed) return;
    LLVMValueRef x = LLVMBuildAtomicCmpXchg(b, r->trapp, ci64(r, 0), ci64(r, s->id),
                                            LLVMAtomicOrderingMonotonic, LLVMAtomicOrderingMonotonic, false);
    LLVMBasicBlockRef won = block(r, "trap.first"), join = block(r, "trap.end");
    LLVMBuildCondBr(b, LLVMBuildExtractValue(b, x, 1, ""), won, join);
    LLVMPositionBuilderAtEnd(b, won);
    for (int i = 0; i < 1 + KTRAP_NARGS; i++) {
        LLVMValueRef idx = ci64(r, 1 + i);
        LLVMBuildStore(b, v[i], LLVMBuildInBoundsGEP2(b, r->t64, r->trapp, &idx, 1, ""));
    }
    LLVMBuildBr(b, join);
    LLVMPositionBuilderAtEnd(b, join);
}

static void stmts(R *r, const KStmt *s) {
    LLVMBuilderRef b = r->B;
    for (; s && !r->failed; s = s->next) {
        switch (s->kind) {
        case KS_FOR: {
            if (s->id < 0 || s->id >= r->k->nvars) {
                fail(r, "%s", "loop variable out of range");
                return;
            }
            LLVMValueRef ext = expr(r, s->extent, true);
            if (r->failed) return;
            LLVMValueRef var = r->vars[s->id];
            LLVMBuildStore(b, ci64(r, 0), var);
            LLVMBasicBlockRef head = block(r, "for.head"), body = block(r, "for.body"), exit = block(r, "for.exit");
            LLVMBuildBr(b, head);
            LLVMPositionBuilderAtEnd(b, head);
            LLVMValueRef i = LLVMBuildLoad2(b, r->t64, var, "");
            LLVMBuildCondBr(b, icmp(b, LLVMIntSLT, i, ext), body, exit);
            LLVMPositionBuilderAtEnd(b, body);
            stmts(r, s->body);
            LLVMValueRef i2 = LLVMBuildLoad2(b, r->t64, var, "");
            LLVMBuildStore(b, LLVMBuildNSWAdd(b, i2, ci64(r, 1), ""), var);
            LLVMValueRef br = LLVMBuildBr(b, head);
            /* not a loop over a sparse block list (its extent reads a
             * table): vectorizing across blocks would gather; the SLP
             * vectorizer packs each block's columns instead */
            if (!has_loop(s->body) && !has_table(s->extent)) mark_vectorize(r, br);
            LLVMPositionBuilderAtEnd(b, exit);
            break;
        }
        case KS_SET:
            if (s->id < 0 || s->id >= r->k->nlocals) {
                fail(r, "%s", "local out of range");
                return;
            }
            for (r->lane = 0; r->lane < r->nlanes && !r->failed; r->lane++) {
                LLVMValueRef v = expr(r, s->value, false);
                if (!r->failed) LLVMBuildStore(b, v, local_slot(r, s->id));
            }
            r->lane = 0;
            break;
        case KS_STORE:
            if (s->id < 0 || s->id >= r->k->nbufs) {
                fail(r, "%s", "buffer out of range");
                return;
            }
            for (r->lane = 0; r->lane < r->nlanes && !r->failed; r->lane++) {
                LLVMValueRef v = expr(r, s->value, false), i = expr(r, s->index, true);
                if (!r->failed) store_buf(r, s->id, i, v);
            }
            r->lane = 0;
            break;
        case KS_IF: {
            LLVMValueRef c = expr(r, s->value, false);
            if (r->failed) return;
            LLVMBasicBlockRef then = block(r, "if.then"), join = block(r, "if.end");
            LLVMBuildCondBr(b, c, then, join);
            LLVMPositionBuilderAtEnd(b, then);
            stmts(r, s->body);
            LLVMBuildBr(b, join);
            LLVMPositionBuilderAtEnd(b, join);
            break;
        }
        case KS_TRAP:
            for (r->lane = 0; r->lane < r->nlanes && !r->failed; r->lane++)
                trap_stmt(r, s);
            r->lane = 0;
            break;
        }
    }
}

/* ---- the parallel loop ------------------------------------------------------------- */

enum { JAM_ROWS = 4, JAM_COLS = 4, JAM_LANES = JAM_ROWS * JAM_COLS };

/* The same value for every point of a block (so the block can share one loop
 * or branch): no locals, no loads, and neither of the block's variables. */
static bool lane_uniform(const KExpr *e, int v1, int v2) {
    if (!e) return true;
    if (e->kind == KE_LOCAL || e->kind == KE_LOAD || (e->kind == KE_VAR && (e->id == v1 || e->id == v2))) return false;
    return lane_uniform(e->a, v1, v2) && lane_uniform(e->b, v1, v2) && lane_uniform(e->c, v1, v2);
}

static bool jam_ok(const KStmt *s, int v1, int v2) {
    for (; s; s = s->next) {
        if (s->kind == KS_FOR && (!lane_uniform(s->extent, v1, v2) || !jam_ok(s->body, v1, v2))) return false;
        if (s->kind == KS_IF && (!lane_uniform(s->value, v1, v2) || !jam_ok(s->body, v1, v2))) return false;
    }
    return true;
}

/* Marks the locals a block of statements sets. */
static void locals_set(const KStmt *s, bool *set) {
    for (; s; s = s->next) {
        if (s->kind == KS_SET && s->id >= 0) set[s->id] = true;
        if (s->kind == KS_FOR || s->kind == KS_IF) locals_set(s->body, set);
    }
}

/* The most locals one loop of the body updates: the accumulators a point
 * keeps live in an inner loop. */
static int loop_accumulators(const Kernel *k, const KStmt *s, bool *set) {
    int most = 0;
    for (; s; s = s->next) {
        if (s->kind == KS_FOR) {
            memset(set, 0, (size_t)k->nlocals + 1);
            locals_set(s->body, set);
            int n = 0;
            for (int i = 0; i < k->nlocals; i++) n += set[i];
            if (n > most) most = n;
        }
        if (s->kind == KS_FOR || s->kind == KS_IF) {
            int inner = loop_accumulators(k, s->body, set);
            if (inner > most) most = inner;
        }
    }
    return most;
}

/* The block shape of the unroll-and-jam (see the essay): rows along the
 * second-to-last parallel variable, columns along the last.  Only for bodies
 * with loops whose control flow is the same for all points of a block, and
 * with blocks small enough that their accumulators stay in registers (16
 * points for one accumulator per loop, 8 for two, 4 for up to four, 2 for up
 * to eight). */
static void jam_shape(const Kernel *k, int *rows, int *cols) {
    *rows = *cols = 1;
    if (k->npar == 0 || !has_loop(k->body) || !jam_ok(k->body, k->npar - 1, -1)) return;
    bool *set = calloc((size_t)k->nlocals + 1, 1);
    int acc = loop_accumulators(k, k->body, set);
    free(set);
    if (acc > 8) return;
    *cols = acc <= 4 ? JAM_COLS : 2;
    if (acc <= 2 && k->npar >= 2 && jam_ok(k->body, k->npar - 1, k->npar - 2)) *rows = acc <= 1 ? JAM_ROWS : JAM_ROWS / 2;
}

/* Locals start at zero at every point (lowering sets them before use; the
 * stores then vanish). */
static void reset_locals(R *r) {
    for (int lane = 0; lane < r->nlanes; lane++)
        for (int i = 0; i < r->k->nlocals; i++)
            LLVMBuildStore(r->B, LLVMConstNull(type_of(r, r->k->locals[i])), r->locals[lane * r->k->nlocals + i]);
}

/* The body for a block of rows x cols points, statement by statement for
 * every point and loops shared: lane a * cols + b is the point
 * (v[np-2] + a, v[np-1] + b). */
static void jammed_body(R *r, int rows, int cols) {
    r->rows = rows;
    r->cols = cols;
    r->nlanes = rows * cols;
    reset_locals(r);
    stmts(r, r->k->body);
    r->rows = r->cols = r->nlanes = 1;
}

/* while (v[np-1] + step <= limit) { body; v[np-1] += step }, then `next`. */
static void point_loop(R *r, LLVMValueRef limit, int rows, int cols, LLVMBasicBlockRef next, bool hint) {
    LLVMBuilderRef b = r->B;
    LLVMValueRef last = r->vars[r->k->npar - 1];
    LLVMBasicBlockRef head = block(r, "pt.head"), body = block(r, "pt.body");
    LLVMBuildBr(b, head);
    LLVMPositionBuilderAtEnd(b, head);
    LLVMValueRef v = LLVMBuildLoad2(b, r->t64, last, "");
    LLVMBuildCondBr(b, icmp(b, LLVMIntSLE, LLVMBuildNSWAdd(b, v, ci64(r, cols), ""), limit), body, next);
    LLVMPositionBuilderAtEnd(b, body);
    jammed_body(r, rows, cols);
    LLVMValueRef v2 = LLVMBuildLoad2(b, r->t64, last, "");
    LLVMBuildStore(b, LLVMBuildNSWAdd(b, v2, ci64(r, cols), ""), last);
    LLVMValueRef br = LLVMBuildBr(b, head);
    if (hint) mark_vectorize(r, br);
    LLVMPositionBuilderAtEnd(b, next);
}

/* The body function's code: (class pointers..., dims, begin, end).  See the essay. */
static void parallel_body(R *r, LLVMValueRef begin, LLVMValueRef end) {
    LLVMBuilderRef b = r->B;
    const Kernel *k = r->k;
    int np = k->npar;
    LLVMBasicBlockRef exit = block(r, "exit");
    if (np == 0) { /* one point */
        LLVMBasicBlockRef run = block(r, "run");
        LLVMBuildCondBr(b, icmp(b, LLVMIntSLT, begin, end), run, exit);
        LLVMPositionBuilderAtEnd(b, run);
        jammed_body(r, 1, 1);
        LLVMBuildBr(b, exit);
        LLVMPositionBuilderAtEnd(b, exit);
        LLVMBuildRetVoid(b);
        return;
    }
    LLVMValueRef *E = calloc((size_t)np, sizeof *E);
    for (int i = 0; i < np && !r->failed; i++) E[i] = expr(r, k->par_extent[i], true);
    if (r->failed) {
        free(E);
        return;
    }
    int rows, cols;
    jam_shape(k, &rows, &cols);
    LLVMBasicBlockRef start = block(r, "start");
    LLVMBuildCondBr(b, icmp(b, LLVMIntSLT, begin, end), start, exit);
    LLVMPositionBuilderAtEnd(b, start);
    /* begin -> v0..v(np-1), row-major */
    LLVMValueRef rem = begin;
    for (int i = np - 1; i > 0; i--) {
        LLVMValueRef q = LLVMBuildSDiv(b, rem, E[i], "");
        LLVMBuildStore(b, LLVMBuildSub(b, rem, LLVMBuildMul(b, q, E[i], ""), ""), r->vars[i]);
        rem = q;
    }
    LLVMBuildStore(b, rem, r->vars[0]);
    LLVMValueRef p = LLVMBuildAlloca(r->A, r->t64, "p");
    LLVMBuildStore(b, begin, p);
    LLVMValueRef last = r->vars[np - 1];
    LLVMBasicBlockRef rowhead = block(r, "row.head"), row = block(r, "row"), carry = block(r, "carry");
    LLVMBuildBr(b, rowhead);
    /* row.head: while (p < end) */
    LLVMPositionBuilderAtEnd(b, rowhead);
    LLVMValueRef cp = LLVMBuildLoad2(b, r->t64, p, "");
    LLVMBasicBlockRef first = row;
    if (rows > 1) first = block(r, "grp.check");
    LLVMBuildCondBr(b, icmp(b, LLVMIntSLT, cp, end), first, exit);
    if (rows > 1) {
        /* `rows` whole rows left in the range, starting at a row's beginning:
         * blocks of rows x cols points, then rows x 1 for the last columns */
        LLVMPositionBuilderAtEnd(b, first);
        LLVMValueRef vr = LLVMBuildLoad2(b, r->t64, r->vars[np - 2], "");
        LLVMValueRef whole = LLVMBuildNSWMul(b, E[np - 1], ci64(r, rows), "");
        LLVMValueRef ok = iand(b, icmp(b, LLVMIntEQ, LLVMBuildLoad2(b, r->t64, last, ""), ci64(r, 0)),
                               iand(b, icmp(b, LLVMIntSLE, LLVMBuildNSWAdd(b, cp, whole, ""), end),
                                    icmp(b, LLVMIntSLE, LLVMBuildNSWAdd(b, vr, ci64(r, rows), ""), E[np - 2])));
        LLVMBasicBlockRef grp = block(r, "grp"), tail = block(r, "grp.tail"), done = block(r, "grp.done");
        LLVMBuildCondBr(b, ok, grp, row);
        LLVMPositionBuilderAtEnd(b, grp);
        point_loop(r, E[np - 1], rows, cols, tail, false);
        point_loop(r, E[np - 1], rows, 1, done, false);
        /* p += rows whole rows; v[np-2] += rows - 1 and the carry adds the last one */
        LLVMBuildStore(b, LLVMBuildNSWAdd(b, cp, whole, ""), p);
        LLVMBuildStore(b, ci64(r, 0), last);
        LLVMBuildStore(b, LLVMBuildNSWAdd(b, vr, ci64(r, rows - 1), ""), r->vars[np - 2]);
        LLVMBuildBr(b, carry);
    }
    /* row: the points v_last = s .. s + cnt of this row */
    LLVMPositionBuilderAtEnd(b, row);
    LLVMValueRef s0 = LLVMBuildLoad2(b, r->t64, last, "");
    LLVMValueRef a = LLVMBuildSub(b, E[np - 1], s0, ""), c = LLVMBuildSub(b, end, cp, "");
    LLVMValueRef cnt = sel(b, icmp(b, LLVMIntSLT, a, c), a, c);
    LLVMValueRef stop = LLVMBuildAdd(b, s0, cnt, "");
    LLVMBasicBlockRef rowok = block(r, "row.ok"), single = block(r, "row.single"), rowdone = block(r, "row.done");
    LLVMBuildCondBr(b, icmp(b, LLVMIntSGT, cnt, ci64(r, 0)), rowok, exit); /* bad extents: stop */
    LLVMPositionBuilderAtEnd(b, rowok);
    if (cols > 1) point_loop(r, stop, 1, cols, single, false);
    else LLVMBuildBr(b, single), LLVMPositionBuilderAtEnd(b, single);
    point_loop(r, stop, 1, 1, rowdone, !has_loop(k->body));
    /* row.done: p += cnt, v_last = 0, carry into the leading variables */
    LLVMBuildStore(b, LLVMBuildAdd(b, cp, cnt, ""), p);
    LLVMBuildStore(b, ci64(r, 0), last);
    LLVMBuildBr(b, carry);
    LLVMPositionBuilderAtEnd(b, carry);
    for (int i = np - 2; i >= 0; i--) {
        LLVMValueRef v = LLVMBuildAdd(b, LLVMBuildLoad2(b, r->t64, r->vars[i], ""), ci64(r, 1), "");
        LLVMBasicBlockRef keep = block(r, "carry.keep"), wrap = block(r, "carry.wrap");
        LLVMBuildCondBr(b, icmp(b, LLVMIntSLT, v, E[i]), keep, wrap);
        LLVMPositionBuilderAtEnd(b, keep);
        LLVMBuildStore(b, v, r->vars[i]);
        LLVMBuildBr(b, rowhead);
        LLVMPositionBuilderAtEnd(b, wrap);
        LLVMBuildStore(b, ci64(r, 0), r->vars[i]);
    }
    LLVMBuildBr(b, rowhead);
    LLVMPositionBuilderAtEnd(b, exit);
    LLVMBuildRetVoid(b);
    free(E);
}

LLVMValueRef cg_llvm_render(LLVMModuleRef m, const Graph *g, const Kernel *k, const char *name,
                            const CgLlvmOptions *opt, char *err, size_t errn) {
    static const CgLlvmOptions dflt = {0};
    R r = {0};
    r.C = LLVMGetModuleContext(m);
    r.M = m;
    r.g = g;
    r.k = k;
    r.o = opt ? opt : &dflt;
    r.err = err;
    r.errn = errn;
    if (err && errn) err[0] = 0;
    r.tv = LLVMVoidTypeInContext(r.C);
    r.t1 = LLVMInt1TypeInContext(r.C);
    r.t8 = LLVMInt8TypeInContext(r.C);
    r.t16 = LLVMInt16TypeInContext(r.C);
    r.t32 = LLVMInt32TypeInContext(r.C);
    r.t64 = LLVMInt64TypeInContext(r.C);
    r.tf = LLVMFloatTypeInContext(r.C);
    r.th = LLVMHalfTypeInContext(r.C);
    r.tp = LLVMPointerTypeInContext(r.C, 0);
    r.ndims = dim_sym_count(g->dims);
    /* constant tables (a sparsity pattern): private constants of the module,
     * so their contents are in the IR text the kernel cache keys on */
    r.tabs = calloc((size_t)k->ntables + 1, sizeof(LLVMValueRef));
    r.tabty = calloc((size_t)k->ntables + 1, sizeof(LLVMTypeRef));
    for (int t = 0; t < k->ntables; t++) {
        const KTable *kt = &k->tables[t];
        LLVMValueRef *vals = malloc(sizeof(LLVMValueRef) * (size_t)kt->n);
        for (int i = 0; i < kt->n; i++) vals[i] = LLVMConstInt(r.t32, (unsigned long long)(int64_t)kt->data[i], 1);
        r.tabty[t] = LLVMArrayType(r.t32, (unsigned)kt->n);
        char tname[64];
        snprintf(tname, sizeof tname, "%.40s.t%d", name, t);
        r.tabs[t] = LLVMAddGlobal(m, r.tabty[t], tname);
        LLVMSetInitializer(r.tabs[t], LLVMConstArray(r.t32, vals, (unsigned)kt->n));
        LLVMSetGlobalConstant(r.tabs[t], 1);
        LLVMSetLinkage(r.tabs[t], LLVMPrivateLinkage);
        LLVMSetUnnamedAddr(r.tabs[t], 1);
        free(vals);
    }

    int nb = k->nbufs, nrep = 0;
    int *rep = calloc((size_t)nb + 1, sizeof(int)), *param = calloc((size_t)nb + 1, sizeof(int));
    for (int i = 0; i < nb; i++) {
        rep[i] = r.o->alias ? r.o->alias[i] : i;
        if (rep[i] < 0 || rep[i] > i || (rep[i] != i && rep[rep[i]] != rep[i])) {
            fail(&r, "%s", "bad alias classes");
            rep[i] = i;
        }
        if (rep[i] == i) param[i] = nrep++;
        if (storage_type(&r, k->bufs[i].dtype) == NULL) fail(&r, "%s", "buffer of an unknown dtype");
    }
    if (r.failed) {
        free(rep);
        free(param);
        free(r.tabs);
        free(r.tabty);
        return NULL;
    }

    /* the body function */
    int nparams = nrep + 4;
    LLVMTypeRef *pt = calloc((size_t)nparams, sizeof *pt);
    for (int i = 0; i < nrep + 1; i++) pt[i] = r.tp;
    pt[nrep + 1] = pt[nrep + 2] = r.t64;
    pt[nrep + 3] = r.tp;
    char *bname = malloc(strlen(name) + 8);
    sprintf(bname, "%s.body", name);
    LLVMValueRef bf = LLVMAddFunction(m, bname, LLVMFunctionType(r.tv, pt, (unsigned)nparams, 0));
    free(bname);
    LLVMSetLinkage(bf, LLVMInternalLinkage);
    add_attr(&r, bf, LLVMAttributeFunctionIndex, "alwaysinline");
    add_attr(&r, bf, LLVMAttributeFunctionIndex, "nounwind");
    add_str_attr(&r, bf, "no-trapping-math", "true");
    for (int i = 0; i <= nrep; i++) {
        if (!r.o->overlap || i == nrep) add_attr(&r, bf, (LLVMAttributeIndex)(i + 1), "noalias");
        add_attr(&r, bf, (LLVMAttributeIndex)(i + 1), "nocapture");
    }
    add_attr(&r, bf, (LLVMAttributeIndex)(nrep + 1), "readonly");
    add_attr(&r, bf, (LLVMAttributeIndex)(nrep + 4), "noalias");
    add_attr(&r, bf, (LLVMAttributeIndex)(nrep + 4), "nocapture");
    r.fn = bf;
    r.bufp = calloc((size_t)nb + 1, sizeof(LLVMValueRef));
    for (int i = 0; i < nb; i++) r.bufp[i] = LLVMGetParam(bf, (unsigned)param[rep[i]]);
    r.dimsp = LLVMGetParam(bf, (unsigned)nrep);
    r.trapp = LLVMGetParam(bf, (unsigned)nrep + 3);
    r.dimv = calloc((size_t)r.ndims + 1, sizeof(LLVMValueRef));
    r.vars = calloc((size_t)k->nvars + 1, sizeof(LLVMValueRef));
    r.locals = calloc((size_t)k->nlocals * JAM_LANES + 1, sizeof(LLVMValueRef));
    r.nlanes = r.rows = r.cols = 1;

    LLVMBasicBlockRef entry = block(&r, "entry"), first = block(&r, "body");
    r.B = LLVMCreateBuilderInContext(r.C);
    r.A = LLVMCreateBuilderInContext(r.C);
    LLVMPositionBuilderAtEnd(r.A, entry);
    LLVMValueRef term = LLVMBuildBr(r.A, first);
    LLVMPositionBuilderBefore(r.A, term);
    for (int i = 0; i < k->nvars; i++) r.vars[i] = LLVMBuildAlloca(r.A, r.t64, "");
    for (int i = 0; i < k->nlocals * JAM_LANES; i++) r.locals[i] = LLVMBuildAlloca(r.A, type_of(&r, k->locals[i % k->nlocals]), "");
    LLVMPositionBuilderAtEnd(r.B, first);
    parallel_body(&r, LLVMGetParam(bf, (unsigned)nrep + 1), LLVMGetParam(bf, (unsigned)nrep + 2));

    /* the exported wrapper */
    LLVMValueRef f = NULL;
    if (!r.failed) {
        LLVMTypeRef wt[5] = {r.tp, r.tp, r.t64, r.t64, r.tp};
        f = LLVMAddFunction(m, name, LLVMFunctionType(r.tv, wt, 5, 0));
        add_attr(&r, f, LLVMAttributeFunctionIndex, "nounwind");
        for (unsigned i = 1; i <= 2; i++) {
            add_attr(&r, f, i, "noalias");
            add_attr(&r, f, i, "nocapture");
            add_attr(&r, f, i, "readonly");
        }
        LLVMBuilderRef b = r.B;
        LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(r.C, f, "entry"));
        LLVMValueRef *args = calloc((size_t)nparams, sizeof *args);
        int j = 0;
        for (int i = 0; i < nb; i++) {
            if (rep[i] != i) continue;
            LLVMValueRef idx = ci64(&r, i);
            LLVMValueRef slot = LLVMBuildInBoundsGEP2(b, r.tp, LLVMGetParam(f, 0), &idx, 1, "");
            args[j++] = LLVMBuildLoad2(b, r.tp, slot, "");
        }
        args[j++] = LLVMGetParam(f, 1);
        args[j++] = LLVMGetParam(f, 2);
        args[j++] = LLVMGetParam(f, 3);
        args[j++] = LLVMGetParam(f, 4);
        call(b, bf, args, (unsigned)nparams);
        LLVMBuildRetVoid(b);
        free(args);
    } else {
        LLVMDeleteFunction(bf);
    }
    LLVMDisposeBuilder(r.B);
    LLVMDisposeBuilder(r.A);
    free(rep);
    free(param);
    free(pt);
    free(r.bufp);
    free(r.dimv);
    free(r.vars);
    free(r.locals);
    free(r.tabs);
    free(r.tabty);
    return f;
}
