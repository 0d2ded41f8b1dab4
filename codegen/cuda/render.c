/* CUDA C rendering of kernel-IR kernels (see render.h for the ABI).
 *
 * Shape of the design (design.md, "renderers are data plus one loop"): a
 * dialect table holds everything CUDA-specific as data -- C types of the
 * compute and storage types, load and store conversions, one format string
 * per operator and compute type, casts, the kernel prefix and the
 * grid-stride index expressions -- and one recursive emitter walks the kernel
 * IR and expands those formats.  Format strings use $0 $1 $2 for operand
 * expressions (rendered recursively in place) and $a for a name (the buffer
 * of a load or store); every operator format parenthesises itself, so the
 * emitter never reasons about precedence.
 *
 * Helpers: a format may call a small device function (dsc_sigmoid,
 * dsc_f32_to_f16, ...).  An entry names the helpers it needs as a bit set; the
 * emitter collects the bits while rendering the body and only then writes the
 * source: prelude with exactly the helpers used (and the ones they depend
 * on), then the kernel.  Nothing is #included: f16/bf16 travel as their raw
 * 16-bit patterns and convert with bit-exact helpers (PTX cvt for the
 * IEEE-exact cases, integer code for the NaN payloads and bf16 rounding, the
 * same bits as ir/scalar.c), so NVRTC needs no toolkit headers at load time.
 *
 * Semantics follow ir/kir.h exactly where it is cheap to: float max/min
 * propagate NaN, float->int casts truncate, saturate and send NaN to 0, i64
 * pow is repeated multiplication with wrap-around (runtime/interp.c), relu
 * keeps NaN and -0.  Math functions are CUDA's accurate ones (no fast math);
 * contraction into FMA is allowed (NVRTC's default), so results may differ
 * from the reference in the last bits -- backends are compared by relative
 * error.  i64 arithmetic is C++ signed arithmetic (index math never
 * overflows; lowering keeps integer data in range or wraps it with KO_WRAP).
 *
 * The kernel body is a grid-stride loop over the flattened parallel index
 * space with 64-bit indices: a point index is split into the parallel
 * variables by division, innermost (last) variable fastest, so consecutive
 * threads touch consecutive elements of row-major outputs (coalesced). */
#include "render.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../../ir/assert.h"
#include "../../ir/trap.h"
#include "schedule.h"

/* ---- the dialect table ------------------------------------------------------ */

/* Helpers a format can call; bits in `need`. */
enum {
    H_F16 = 1u << 0,
    H_BF16 = 1u << 1,
    H_SIGMOID = 1u << 2,
    H_SILU = 1u << 3,
    H_GELU = 1u << 4,
    H_GELU_TANH = 1u << 5,
    H_RELU = 1u << 6,
    H_RELU_I = 1u << 7,
    H_FMAX = 1u << 8,
    H_FMIN = 1u << 9,
    H_IMAX = 1u << 10,
    H_IMIN = 1u << 11,
    H_POWI = 1u << 12,
    H_F2I = 1u << 13,
    H_WRAPI = 1u << 14,
    H_MMA_F16 = 1u << 15,
    H_MMA_BF16 = 1u << 16,
    H_COUNT = 17
};

typedef struct {
    unsigned bit;
    unsigned deps; /* helpers this one calls (emitted before it) */
    const char *text;
} Helper;

#define DEV "static __device__ __forceinline__ "

static const Helper helpers[H_COUNT] = {
    {H_F16, 0,
     "/* IEEE half <-> float, round to nearest even; NaNs keep sign and payload (as ir/scalar.c) */\n"
     DEV "float dsc_f16_to_f32(unsigned short h) {\n"
     "    if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu))\n"
     "        return __uint_as_float(((unsigned)(h & 0x8000u) << 16) | 0x7f800000u | ((unsigned)(h & 0x3ffu) << 13));\n"
     "#ifdef __CUDA_ARCH__\n"
     "    float f;\n"
     "    asm(\"cvt.f32.f16 %0, %1;\" : \"=f\"(f) : \"h\"(h));\n"
     "    return f;\n"
     "#else\n"
     "    return dsc_emu_f16_to_f32(h);\n"
     "#endif\n"
     "}\n"
     DEV "unsigned short dsc_f32_to_f16(float f) {\n"
     "    unsigned x = __float_as_uint(f);\n"
     "    if ((x & 0x7fffffffu) > 0x7f800000u)\n"
     "        return (unsigned short)(((x >> 16) & 0x8000u) | 0x7e00u | ((x & 0x7fffffu) >> 13));\n"
     "#ifdef __CUDA_ARCH__\n"
     "    unsigned short h;\n"
     "    asm(\"cvt.rn.f16.f32 %0, %1;\" : \"=h\"(h) : \"f\"(f));\n"
     "    return h;\n"
     "#else\n"
     "    return dsc_emu_f32_to_f16(f);\n"
     "#endif\n"
     "}\n"},
    {H_BF16, 0,
     "/* bfloat16 <-> float, round to nearest even; NaN stays a quiet NaN (as ir/scalar.c) */\n"
     DEV "float dsc_bf16_to_f32(unsigned short h) { return __uint_as_float((unsigned)h << 16); }\n"
     DEV "unsigned short dsc_f32_to_bf16(float f) {\n"
     "    unsigned x = __float_as_uint(f);\n"
     "    if ((x & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((x >> 16) | 0x40u);\n"
     "    x += 0x7fffu + ((x >> 16) & 1u);\n"
     "    return (unsigned short)(x >> 16);\n"
     "}\n"},
    {H_SIGMOID, 0,
     DEV "float dsc_sigmoid(float x) {\n"
     "    float e = expf(-fabsf(x));\n"
     "    return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);\n"
     "}\n"},
    {H_SILU, H_SIGMOID, DEV "float dsc_silu(float x) { return x * dsc_sigmoid(x); }\n"},
    {H_GELU, 0, DEV "float dsc_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.707106781f)); }\n"},
    {H_GELU_TANH, 0,
     DEV "float dsc_gelu_tanh(float x) {\n"
     "    return 0.5f * x * (1.0f + tanhf(0.797884561f * (x + 0.044715f * x * x * x)));\n"
     "}\n"},
    {H_RELU, 0, DEV "float dsc_relu(float x) { return x < 0.0f ? 0.0f : x; }\n"},
    {H_RELU_I, 0, DEV "long long dsc_relu_i(long long x) { return x < 0 ? 0 : x; }\n"},
    {H_FMAX, 0,
     "/* max/min that propagate NaN */\n" DEV
     "float dsc_fmax(float a, float b) { return a != a || b != b ? __int_as_float(0x7fffffff) : a > b ? a : b; }\n"},
    {H_FMIN, 0,
     DEV "float dsc_fmin(float a, float b) { return a != a || b != b ? __int_as_float(0x7fffffff) : a < b ? a : b; }\n"},
    {H_IMAX, 0, DEV "long long dsc_imax(long long a, long long b) { return a > b ? a : b; }\n"},
    {H_IMIN, 0, DEV "long long dsc_imin(long long a, long long b) { return a < b ? a : b; }\n"},
    {H_POWI, 0,
     "/* integer power with wrap-around; a negative exponent gives the truncated 1/b^-e */\n"
     DEV "long long dsc_powi(long long b, long long e) {\n"
     "    if (e < 0) return b == 1 ? 1 : b == -1 ? ((e & 1) ? -1 : 1) : 0;\n"
     "    unsigned long long r = 1, x = (unsigned long long)b;\n"
     "    for (; e > 0; e >>= 1) {\n"
     "        if (e & 1) r *= x;\n"
     "        x *= x;\n"
     "    }\n"
     "    return (long long)r;\n"
     "}\n"},
    {H_F2I, 0,
     "/* float -> i64: truncate toward zero, saturate, NaN -> 0 */\n"
     DEV "long long dsc_f2i(float x) {\n"
     "    if (x != x) return 0;\n"
     "    if (x >= 9.22337204e18f) return 9223372036854775807LL;\n"
     "    if (x <= -9.22337204e18f) return -9223372036854775807LL - 1;\n"
     "    return __float2ll_rz(x);\n"
     "}\n"},
    {H_WRAPI, 0,
     "/* i64 arithmetic on data wraps around (two's complement), as the kernel IR says */\n"
     DEV "long long dsc_wadd(long long a, long long b) { return (long long)((unsigned long long)a + (unsigned long long)b); }\n"
     DEV "long long dsc_wsub(long long a, long long b) { return (long long)((unsigned long long)a - (unsigned long long)b); }\n"
     DEV "long long dsc_wmul(long long a, long long b) { return (long long)((unsigned long long)a * (unsigned long long)b); }\n"
     DEV "long long dsc_wneg(long long a) { return (long long)(0ull - (unsigned long long)a); }\n"
     DEV "long long dsc_wabs(long long a) { return a < 0 ? dsc_wneg(a) : a; }\n"},
    /* d += a * b for one 16x8 tile of a warp, k = 16, f32 accumulation; register layouts
     * of the PTX ISA (mma.m16n8k16); a host compiler (the emulator: docs/testing.md)
     * gets its warp-collective stand-in */
    {H_MMA_F16, 0,
     DEV "void dsc_mma_f16(float *d, const unsigned *a, const unsigned *b) {\n"
     "#ifdef __CUDA_ARCH__\n"
     "    asm volatile(\"mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\"\n"
     "                 : \"+f\"(d[0]), \"+f\"(d[1]), \"+f\"(d[2]), \"+f\"(d[3])\n"
     "                 : \"r\"(a[0]), \"r\"(a[1]), \"r\"(a[2]), \"r\"(a[3]), \"r\"(b[0]), \"r\"(b[1]));\n"
     "#else\n"
     "    dsc_emu_mma_m16n8k16(d, a, b, false);\n"
     "#endif\n"
     "}\n"},
    {H_MMA_BF16, 0,
     DEV "void dsc_mma_bf16(float *d, const unsigned *a, const unsigned *b) {\n"
     "#ifdef __CUDA_ARCH__\n"
     "    asm volatile(\"mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\"\n"
     "                 : \"+f\"(d[0]), \"+f\"(d[1]), \"+f\"(d[2]), \"+f\"(d[3])\n"
     "                 : \"r\"(a[0]), \"r\"(a[1]), \"r\"(a[2]), \"r\"(a[3]), \"r\"(b[0]), \"r\"(b[1]));\n"
     "#else\n"
     "    dsc_emu_mma_m16n8k16(d, a, b, true);\n"
     "#endif\n"
     "}\n"},
};

typedef struct {
    const char *fmt;
    unsigned need;
} Fmt;

typedef struct {
    const char *kernel_prefix;          /* %d: threads per block */
    const char *gemm_prefix;            /* the same for a tiled GEMM: %d threads, %d blocks per SM */
    const char *index_type;
    const char *global_index, *global_stride;
    const char *warp_index, *warp_stride; /* the same over warps (row kernels) */
    const char *ctype[KT_COUNT];        /* C type of a compute type */
    const char *storage[DT_COUNT];      /* C element type of a buffer */
    Fmt load[DT_COUNT];                 /* $a[$0] is the element */
    Fmt store[DT_COUNT];                /* $a[$0] = convert($1) */
    Fmt op[KO_COUNT][KT_COUNT];         /* by operator and operand (result for unary) type */
    Fmt op_i64_data[KO_COUNT];          /* i64 outside index expressions, where op[] may overflow */
    Fmt cast[KT_COUNT][KT_COUNT];       /* [from][to] */
    Fmt wrap[DT_COUNT];
    const char *restrict_kw;
    const char *table_decl; /* a constant table: %s kernel name, %d table, %d entries */
    Fmt table_load;         /* $a[$0]: entry $0 of table $a, as an index */
} Dialect;

#define F(s) {s, 0}
#define FH(s, h) {s, h}

static const Dialect cuda = {
    .kernel_prefix = "extern \"C\" __global__ void __launch_bounds__(%d)",
    .gemm_prefix = "extern \"C\" __global__ void __launch_bounds__(%d, %d)",
    .table_decl = "__device__ const int %s_t%d[%d] = {",
    .table_load = F("(long long)$a[$0]"),
    .index_type = "long long",
    .global_index = "(long long)blockIdx.x * blockDim.x + threadIdx.x",
    .global_stride = "(long long)gridDim.x * blockDim.x",
    .warp_index = "(long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)",
    .warp_stride = "(long long)gridDim.x * (blockDim.x >> 5)",
    .ctype = {[KT_BOOL] = "bool", [KT_I64] = "long long", [KT_F32] = "float"},
    .storage = {[DT_F32] = "float", [DT_F16] = "unsigned short", [DT_BF16] = "unsigned short",
                [DT_I8] = "signed char", [DT_I32] = "int", [DT_I64] = "long long", [DT_BOOL] = "unsigned char"},
    .load = {[DT_F32] = F("$a[$0]"), [DT_F16] = FH("dsc_f16_to_f32($a[$0])", H_F16),
             [DT_BF16] = FH("dsc_bf16_to_f32($a[$0])", H_BF16), [DT_I8] = F("(long long)$a[$0]"),
             [DT_I32] = F("(long long)$a[$0]"), [DT_I64] = F("$a[$0]"), [DT_BOOL] = F("($a[$0] != 0)")},
    .store = {[DT_F32] = F("$a[$0] = $1;"), [DT_F16] = FH("$a[$0] = dsc_f32_to_f16($1);", H_F16),
              [DT_BF16] = FH("$a[$0] = dsc_f32_to_bf16($1);", H_BF16), [DT_I8] = F("$a[$0] = (signed char)$1;"),
              [DT_I32] = F("$a[$0] = (int)$1;"), [DT_I64] = F("$a[$0] = $1;"),
              [DT_BOOL] = F("$a[$0] = (unsigned char)$1;")},
    .op =
        {
            [KO_NEG] = {[KT_F32] = F("(-$0)"), [KT_I64] = F("(-$0)")},
            [KO_ABS] = {[KT_F32] = F("fabsf($0)"), [KT_I64] = F("llabs($0)")},
            [KO_EXP] = {[KT_F32] = F("expf($0)")},
            [KO_LOG] = {[KT_F32] = F("logf($0)")},
            [KO_SQRT] = {[KT_F32] = F("sqrtf($0)")},
            [KO_RSQRT] = {[KT_F32] = F("rsqrtf($0)")},
            [KO_RECIP] = {[KT_F32] = F("(1.0f / $0)")},
            [KO_TANH] = {[KT_F32] = F("tanhf($0)")},
            [KO_SIGMOID] = {[KT_F32] = FH("dsc_sigmoid($0)", H_SIGMOID)},
            [KO_RELU] = {[KT_F32] = FH("dsc_relu($0)", H_RELU), [KT_I64] = FH("dsc_relu_i($0)", H_RELU_I)},
            [KO_ERF] = {[KT_F32] = F("erff($0)")},
            [KO_SILU] = {[KT_F32] = FH("dsc_silu($0)", H_SILU)},
            [KO_GELU] = {[KT_F32] = FH("dsc_gelu($0)", H_GELU)},
            [KO_GELU_TANH] = {[KT_F32] = FH("dsc_gelu_tanh($0)", H_GELU_TANH)},
            [KO_NOT] = {[KT_BOOL] = F("(!$0)")},
            [KO_ADD] = {[KT_F32] = F("($0 + $1)"), [KT_I64] = F("($0 + $1)")},
            [KO_SUB] = {[KT_F32] = F("($0 - $1)"), [KT_I64] = F("($0 - $1)")},
            [KO_MUL] = {[KT_F32] = F("($0 * $1)"), [KT_I64] = F("($0 * $1)")},
            [KO_DIV] = {[KT_F32] = F("($0 / $1)"), [KT_I64] = F("($0 / $1)")},
            [KO_MOD] = {[KT_F32] = F("fmodf($0, $1)"), [KT_I64] = F("($0 % $1)")},
            [KO_POW] = {[KT_F32] = F("powf($0, $1)"), [KT_I64] = FH("dsc_powi($0, $1)", H_POWI)},
            [KO_MAX] = {[KT_F32] = FH("dsc_fmax($0, $1)", H_FMAX), [KT_I64] = FH("dsc_imax($0, $1)", H_IMAX)},
            [KO_MIN] = {[KT_F32] = FH("dsc_fmin($0, $1)", H_FMIN), [KT_I64] = FH("dsc_imin($0, $1)", H_IMIN)},
            [KO_LT] = {[KT_F32] = F("($0 < $1)"), [KT_I64] = F("($0 < $1)")},
            [KO_GT] = {[KT_F32] = F("($0 > $1)"), [KT_I64] = F("($0 > $1)")},
            [KO_LE] = {[KT_F32] = F("($0 <= $1)"), [KT_I64] = F("($0 <= $1)")},
            [KO_GE] = {[KT_F32] = F("($0 >= $1)"), [KT_I64] = F("($0 >= $1)")},
            [KO_EQ] = {[KT_F32] = F("($0 == $1)"), [KT_I64] = F("($0 == $1)"), [KT_BOOL] = F("($0 == $1)")},
            [KO_NE] = {[KT_F32] = F("($0 != $1)"), [KT_I64] = F("($0 != $1)"), [KT_BOOL] = F("($0 != $1)")},
            [KO_AND] = {[KT_BOOL] = F("($0 && $1)")},
            [KO_OR] = {[KT_BOOL] = F("($0 || $1)")},
        },
    .op_i64_data = {[KO_NEG] = FH("dsc_wneg($0)", H_WRAPI), [KO_ABS] = FH("dsc_wabs($0)", H_WRAPI),
                    [KO_ADD] = FH("dsc_wadd($0, $1)", H_WRAPI), [KO_SUB] = FH("dsc_wsub($0, $1)", H_WRAPI),
                    [KO_MUL] = FH("dsc_wmul($0, $1)", H_WRAPI)},
    .cast =
        {
            [KT_F32] = {[KT_I64] = FH("dsc_f2i($0)", H_F2I), [KT_BOOL] = F("($0 != 0.0f)")},
            [KT_I64] = {[KT_F32] = F("(float)$0"), [KT_BOOL] = F("($0 != 0)")},
            [KT_BOOL] = {[KT_F32] = F("($0 ? 1.0f : 0.0f)"), [KT_I64] = F("(long long)$0")},
        },
    .wrap = {[DT_I8] = F("(long long)(signed char)$0"), [DT_I32] = F("(long long)(int)$0"), [DT_I64] = F("$0"),
             [DT_F16] = FH("dsc_f16_to_f32(dsc_f32_to_f16($0))", H_F16),
             [DT_BF16] = FH("dsc_bf16_to_f32(dsc_f32_to_bf16($0))", H_BF16)},
    .restrict_kw = "__restrict__",
};

/* ---- a growable string ------------------------------------------------------ */

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} Str;

static void s_put(Str *s, const char *t, size_t len) {
    if (s->oom) return;
    if (s->n + len + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap < s->n + len + 1) cap *= 2;
        char *p = realloc(s->p, cap);
        if (!p) {
            s->oom = true;
            return;
        }
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->n, t, len);
    s->n += len;
    s->p[s->n] = 0;
}

static void s_puts(Str *s, const char *t) { s_put(s, t, strlen(t)); }

static void __attribute__((format(printf, 2, 3))) s_printf(Str *s, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        s_put(s, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        s->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    s_put(s, big, (size_t)n);
    free(big);
}

/* ---- the emitter ------------------------------------------------------------ */

typedef struct {
    Graph *g;
    const Kernel *k;
    const Dialect *dl;
    Diag *d;
    Str body;
    unsigned need;
    bool ok;
    bool *var_used; /* per loop variable: referenced in the body */
    int in_index;   /* > 0 inside an index or extent expression */
    const CudaRowPlan *rows; /* one warp per point (NULL: one thread per point) */
    const char **local_name; /* per local (and two scratch ids after them): a name other than l<i> */
    const CudaVecPlan *vec;  /* rendering one lane of a vector kernel: its accesses go through registers */
    int base_var;            /* with base_name: variable base_var renders as base_name */
    const char *base_name;
    const CudaGemmConfig *gc; /* GEMM tiles (checked) */
} R;

static void fail(R *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(R *r, const char *fmt, ...) {
    if (r->ok) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        diag_error(r->d, loc_file(r->g->file), "CUDA renderer: kernel %s: %s", r->k->name, msg);
    }
    r->ok = false;
}

static void emit_expr(R *r, const KExpr *e);

/* Expands a format: $0 $1 $2 render operand expressions, $a the name.
 * Operand `index_op` (or none: -1) is an index expression. */
static void emit_fmt(R *r, Fmt f, const KExpr *const *ops, const char *name, int index_op) {
    r->need |= f.need;
    const char *p = f.fmt, *run = p;
    for (; *p; p++) {
        if (*p != '$') continue;
        s_put(&r->body, run, (size_t)(p - run));
        char c = p[1];
        if (c >= '0' && c <= '2') {
            bool index = c - '0' == index_op;
            r->in_index += index;
            emit_expr(r, ops[c - '0']);
            r->in_index -= index;
        }
        else if (c == 'a')
            s_puts(&r->body, name);
        else
            DSC_UNREACHABLE();
        p++;
        run = p + 1;
    }
    s_put(&r->body, run, (size_t)(p - run));
}

/* The shortest decimal that reads back as the same float, as a float literal. */
static void emit_f32(Str *s, double v) {
    float x = (float)v;
    if (isnan(x)) {
        s_puts(s, "__int_as_float(0x7fffffff)");
        return;
    }
    if (isinf(x)) {
        s_puts(s, x > 0 ? "__int_as_float(0x7f800000)" : "(-__int_as_float(0x7f800000))");
        return;
    }
    char buf[48];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    bool need_point = !strpbrk(buf, ".e");
    bool neg = buf[0] == '-'; /* parenthesised: "-(-1.0f)" must not read as "--" */
    if (neg) s_puts(s, "(");
    s_puts(s, buf);
    s_puts(s, need_point ? ".0f" : "f");
    if (neg) s_puts(s, ")");
}

static void emit_i64(Str *s, int64_t v) {
    if (v == INT64_MIN)
        s_puts(s, "(-9223372036854775807LL - 1)");
    else if (v < 0)
        s_printf(s, "(%" PRId64 "LL)", v);
    else
        s_printf(s, "%" PRId64 "LL", v);
}

static void emit_expr(R *r, const KExpr *e) {
    if (!r->ok) return;
    if (!e) {
        fail(r, "missing expression");
        return;
    }
    const Dialect *dl = r->dl;
    const KExpr *ops[3] = {e->a, e->b, e->c};
    switch (e->kind) {
    case KE_CONST:
        if (e->type == KT_F32)
            emit_f32(&r->body, e->f);
        else if (e->type == KT_BOOL)
            s_puts(&r->body, e->i ? "true" : "false");
        else
            emit_i64(&r->body, e->i);
        return;
    case KE_DIM: s_printf(&r->body, "d%d", e->id); return;
    case KE_VAR:
        if (r->base_name && e->id == r->base_var) {
            s_puts(&r->body, r->base_name);
            return;
        }
        if (e->id >= 0 && e->id < r->k->nvars) r->var_used[e->id] = true;
        s_printf(&r->body, "v%d", e->id);
        return;
    case KE_LOCAL:
        if (r->local_name && e->id >= 0 && r->local_name[e->id])
            s_puts(&r->body, r->local_name[e->id]);
        else
            s_printf(&r->body, "l%d", e->id);
        return;
    case KE_LOAD: {
        if (e->id < 0 || e->id >= r->k->nbufs) {
            fail(r, "load from buffer %d out of range", e->id);
            return;
        }
        char name[24];
        int v = r->vec ? cg_cuda_vec_find(r->vec, e, NULL) : -1;
        if (v >= 0) { /* this lane's element of the vector register */
            KExpr lane = {.kind = KE_LOCAL, .type = KT_I64, .id = r->k->nlocals};
            const KExpr *lops[3] = {&lane, NULL, NULL};
            snprintf(name, sizeof name, "dsc_x%d", r->vec->acc[v].owner);
            emit_fmt(r, dl->load[r->k->bufs[e->id].dtype], lops, name, 0);
            return;
        }
        snprintf(name, sizeof name, "b%d", e->id);
        emit_fmt(r, dl->load[r->k->bufs[e->id].dtype], ops, name, 0);
        return;
    }
    case KE_TABLE: {
        if (e->id < 0 || e->id >= r->k->ntables) {
            fail(r, "table %d out of range", e->id);
            return;
        }
        char *name = arena_printf(r->g->arena, "%s_t%d", r->k->name, e->id);
        emit_fmt(r, dl->table_load, ops, name, 0);
        return;
    }
    case KE_UN:
        if (!e->a) {
            fail(r, "missing operand");
            return;
        }
        if (e->op == KO_CAST) {
            if (e->a->type == e->type) {
                emit_expr(r, e->a);
                return;
            }
            Fmt f = dl->cast[e->a->type][e->type];
            if (!f.fmt) {
                fail(r, "no cast from %s to %s", kir_type_name(e->a->type), kir_type_name(e->type));
                return;
            }
            emit_fmt(r, f, ops, NULL, -1);
            return;
        }
        if (e->op == KO_WRAP) {
            Fmt f = (unsigned)e->dt < DT_COUNT ? dl->wrap[e->dt] : (Fmt){0};
            bool half = e->dt == DT_F16 || e->dt == DT_BF16;
            if (!f.fmt || e->a->type != (half ? KT_F32 : KT_I64)) {
                fail(r, "cannot wrap %s to %s", kir_type_name(e->a->type),
                     (unsigned)e->dt < DT_COUNT ? dtype_name(e->dt) : "?");
                return;
            }
            emit_fmt(r, f, ops, NULL, -1);
            return;
        }
        /* fallthrough */
    case KE_BIN: {
        if ((unsigned)e->op >= KO_COUNT || !e->a) {
            fail(r, "bad operator");
            return;
        }
        Fmt f = dl->op[e->op][e->a->type];
        if (e->a->type == KT_I64 && !r->in_index && dl->op_i64_data[e->op].fmt) f = dl->op_i64_data[e->op];
        if (!f.fmt) {
            fail(r, "operator %s on %s has no CUDA form", kir_op_name(e->op), kir_type_name(e->a->type));
            return;
        }
        emit_fmt(r, f, ops, NULL, -1);
        return;
    }
    case KE_SELECT:
        s_puts(&r->body, "(");
        emit_expr(r, e->a);
        s_puts(&r->body, " ? ");
        emit_expr(r, e->b);
        s_puts(&r->body, " : ");
        emit_expr(r, e->c);
        s_puts(&r->body, ")");
        return;
    }
    fail(r, "unknown expression kind %d", (int)e->kind);
}

static void indent(R *r, int depth) {
    for (int i = 0; i < depth; i++) s_puts(&r->body, "    ");
}

static void line(R *r, int depth, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void line(R *r, int depth, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    indent(r, depth);
    s_puts(&r->body, buf);
    s_puts(&r->body, "\n");
}

static void emit_block(R *r, const KStmt *s, int depth);

static void emit_stmt(R *r, const KStmt *s, int depth) {
    {
        indent(r, depth);
        switch (s->kind) {
        case KS_FOR:
            s_printf(&r->body, "for (%s v%d = 0, v%d_end = ", r->dl->index_type, s->id, s->id);
            r->in_index++;
            emit_expr(r, s->extent);
            r->in_index--;
            s_printf(&r->body, "; v%d < v%d_end; ++v%d) {\n", s->id, s->id, s->id);
            emit_block(r, s->body, depth + 1);
            indent(r, depth);
            s_puts(&r->body, "}\n");
            break;
        case KS_SET:
            if (r->local_name && r->local_name[s->id])
                s_printf(&r->body, "%s = ", r->local_name[s->id]);
            else
                s_printf(&r->body, "l%d = ", s->id);
            emit_expr(r, s->value);
            s_puts(&r->body, ";\n");
            break;
        case KS_STORE: {
            if (s->id < 0 || s->id >= r->k->nbufs) {
                fail(r, "store to buffer %d out of range", s->id);
                return;
            }
            char name[24];
            snprintf(name, sizeof name, "b%d", s->id);
            const KExpr *ops[3] = {s->index, s->value, NULL};
            KExpr lane = {.kind = KE_LOCAL, .type = KT_I64, .id = r->k->nlocals};
            int v = r->vec ? cg_cuda_vec_find(r->vec, NULL, s) : -1;
            if (v >= 0) { /* into this lane's element of the vector to store */
                snprintf(name, sizeof name, "dsc_y%d", v);
                ops[0] = &lane;
            }
            emit_fmt(r, r->dl->store[r->k->bufs[s->id].dtype], ops, name, 0);
            s_puts(&r->body, "\n");
            break;
        }
        case KS_IF:
            s_puts(&r->body, "if (");
            emit_expr(r, s->value);
            s_puts(&r->body, ") {\n");
            emit_block(r, s->body, depth + 1);
            indent(r, depth);
            s_puts(&r->body, "}\n");
            break;
        case KS_TRAP: /* the first trap of the run wins (ir/trap.h) */
            s_printf(&r->body, "if (atomicCAS((unsigned long long *)dsc_trap, 0ull, %dull) == 0ull) {\n",
                     s->id);
            indent(r, depth + 1);
            s_printf(&r->body, "dsc_trap[1] = %d;\n", s->node);
            for (int i = 0; i < KTRAP_NARGS; i++) {
                indent(r, depth + 1);
                s_printf(&r->body, "dsc_trap[%d] = ", 2 + i);
                if (s->arg[i])
                    emit_expr(r, s->arg[i]);
                else
                    s_puts(&r->body, "0");
                s_puts(&r->body, ";\n");
            }
            indent(r, depth);
            s_puts(&r->body, "}\n");
            break;
        }
    }
}

static void emit_block(R *r, const KStmt *s, int depth) {
    for (; s && r->ok; s = s->next) emit_stmt(r, s, depth);
}

/* ---- row kernels: one warp per point (codegen/cuda/schedule.h) ------------------ */

/* The identity of an accumulator's operator, as a C literal of its type. */
static const char *identity(KOp op, KType t) {
    if (t == KT_F32) return op == KO_ADD ? "-0.0f" : op == KO_MAX ? "__int_as_float(0xff800000)" : "__int_as_float(0x7f800000)";
    return op == KO_ADD ? "0LL" : op == KO_MAX ? "(-9223372036854775807LL - 1)" : "9223372036854775807LL";
}

/* `dst = dst OP src;` through the dialect's operator format (two names). */
static void emit_combine(R *r, KOp op, KType t, const char *dst, const char *src, int depth) {
    int x = r->k->nlocals, y = x + 1;
    KExpr a = {.kind = KE_LOCAL, .type = t, .id = x}, b = {.kind = KE_LOCAL, .type = t, .id = y};
    KExpr e = {.kind = KE_BIN, .type = t, .op = op, .a = &a, .b = &b};
    r->local_name[x] = dst;
    r->local_name[y] = src;
    indent(r, depth);
    s_printf(&r->body, "%s = ", dst);
    emit_expr(r, &e);
    s_puts(&r->body, ";\n");
    r->local_name[x] = r->local_name[y] = NULL;
}

/* A loop at point level, split over the 32 lanes; a reduce loop accumulates
 * per lane from the identity, reduces across the warp (every lane gets the
 * total) and folds the total into the local once. */
/* After the online-softmax loop of a row kernel: every lane holds the state of
 * its keys; a butterfly of the merge of ir/kir.h leaves the state of all keys
 * in every lane. */
static void emit_osm_merge(R *r, int depth) {
    const KOnlineSoftmax *o = r->k->osm;
    r->need |= H_FMAX;
    line(r, depth, "for (int dsc_o = 16; dsc_o > 0; dsc_o >>= 1) {");
    line(r, depth + 1, "const float dsc_om = __shfl_xor_sync(0xffffffffu, l%d, dsc_o);", o->m);
    line(r, depth + 1, "const float dsc_ol = __shfl_xor_sync(0xffffffffu, l%d, dsc_o);", o->l);
    line(r, depth + 1, "const float dsc_mn = dsc_fmax(l%d, dsc_om);", o->m);
    line(r, depth + 1, "const float dsc_ms = dsc_mn == -__int_as_float(0x7f800000) ? 0.0f : dsc_mn;");
    line(r, depth + 1, "const float dsc_ca = expf(l%d - dsc_ms), dsc_cb = expf(dsc_om - dsc_ms);", o->m);
    line(r, depth + 1, "l%d = l%d * dsc_ca + dsc_ol * dsc_cb;", o->l, o->l);
    for (int i = 0; i < o->nacc; i++) {
        line(r, depth + 1, "const float dsc_oa%d = __shfl_xor_sync(0xffffffffu, l%d, dsc_o);", i, o->acc[i]);
        line(r, depth + 1, "l%d = l%d * dsc_ca + dsc_oa%d * dsc_cb;", o->acc[i], o->acc[i], i);
    }
    line(r, depth + 1, "l%d = dsc_mn;", o->m);
    line(r, depth, "}");
}

static void emit_row_loop(R *r, const KStmt *s, int depth) {
    const Kernel *k = r->k;
    const CudaLocalPlan *pl = r->rows->locals;
    bool reduce = cg_cuda_is_reduce_loop(k, r->rows, s);
    bool osm = k->osm && s->id == k->osm->var;
    int inner = depth;
    if (reduce) {
        indent(r, depth);
        s_puts(&r->body, "{\n");
        inner = depth + 1;
        for (int l = 0; l < k->nlocals; l++) {
            if (pl[l].role != CR_ACC || pl[l].loop != s) continue;
            r->local_name[l] = arena_printf(r->g->arena, "dsc_a%d", l);
            indent(r, inner);
            s_printf(&r->body, "%s dsc_a%d = %s;\n", r->dl->ctype[k->locals[l]], l, identity(pl[l].op, k->locals[l]));
        }
    }
    indent(r, inner);
    s_printf(&r->body, "for (%s v%d = dsc_lane, v%d_end = ", r->dl->index_type, s->id, s->id);
    r->in_index++;
    emit_expr(r, s->extent);
    r->in_index--;
    s_printf(&r->body, "; v%d < v%d_end; v%d += 32) {\n", s->id, s->id, s->id);
    emit_block(r, s->body, inner + 1);
    indent(r, inner);
    s_puts(&r->body, "}\n");
    if (osm) emit_osm_merge(r, inner);
    if (!reduce) return;
    for (int l = 0; l < k->nlocals; l++) {
        if (pl[l].role != CR_ACC || pl[l].loop != s) continue;
        const char *acc = r->local_name[l], *ct = r->dl->ctype[k->locals[l]];
        r->local_name[l] = NULL;
        indent(r, inner);
        s_puts(&r->body, "for (int dsc_o = 16; dsc_o > 0; dsc_o >>= 1) {\n");
        indent(r, inner + 1);
        s_printf(&r->body, "const %s dsc_t = __shfl_xor_sync(0xffffffffu, %s, dsc_o);\n", ct, acc);
        emit_combine(r, pl[l].op, k->locals[l], acc, "dsc_t", inner + 1);
        indent(r, inner);
        s_puts(&r->body, "}\n");
        emit_combine(r, pl[l].op, k->locals[l], arena_printf(r->g->arena, "l%d", l), acc, inner);
    }
    indent(r, depth);
    s_puts(&r->body, "}\n");
}

/* ---- tiled GEMMs (codegen/cuda/schedule.h) -------------------------------------- */

/* A block of GT_THREADS threads (16 x 16) computes a GT_M x GT_N tile of points,
 * GT_RM x GT_RN per thread, strided by 16 so that neighbouring threads store
 * neighbouring elements; A and B are staged through shared memory GT_K deep.
 * The tile is the configuration's (CudaGemmConfig). */
enum { GT_THREADS = 256 };
#define GT_M (r->gc->f32_m)
#define GT_N (r->gc->f32_n)
#define GT_K (r->gc->f32_k)
#define GT_RM (GT_M / 16)
#define GT_RN (GT_N / 16)


/* Stages one operand's tile: `tile`[kk][i] = operand at (var = base + i, k = k0 + kk),
 * 0 outside the ranges (the operand is not evaluated there). */
static void emit_gemm_stage(R *r, const CudaGemmProduct *pr, const char *tile, const KExpr *op, int var, int span,
                            bool k_fastest, const char *base) {
    int kv = pr->loop->id;
    line(r, 3, "for (int dsc_t = threadIdx.x; dsc_t < %d; dsc_t += %d) {", span * GT_K, GT_THREADS);
    if (k_fastest) {
        line(r, 4, "const int dsc_kk = dsc_t %% %d, dsc_x = dsc_t / %d;", GT_K, GT_K);
    } else {
        line(r, 4, "const int dsc_kk = dsc_t / %d, dsc_x = dsc_t %% %d;", span, span);
    }
    line(r, 4, "const long long v%d = %s + dsc_x;", var, base);
    line(r, 4, "const long long v%d = dsc_k0 + dsc_kk;", kv);
    indent(r, 4);
    s_printf(&r->body, "%s[dsc_kk][dsc_x] = v%d < e%d && v%d < dsc_K ? ", tile, var, var, kv);
    emit_expr(r, op);
    s_puts(&r->body, " : 0.0f;\n");
    line(r, 3, "}");
}

static void emit_gemm_step(R *r, int depth, int p) {
    line(r, depth, "float dsc_a[%d], dsc_b[%d];", GT_RM, GT_RN);
    line(r, depth, "#pragma unroll");
    line(r, depth, "for (int dsc_x = 0; dsc_x < %d; ++dsc_x) dsc_a[dsc_x] = dsc_As[dsc_kk][dsc_ty + 16 * dsc_x];",
         GT_RM);
    line(r, depth, "#pragma unroll");
    line(r, depth, "for (int dsc_y = 0; dsc_y < %d; ++dsc_y) dsc_b[dsc_y] = dsc_Bs[dsc_kk][dsc_tx + 16 * dsc_y];",
         GT_RN);
    line(r, depth, "#pragma unroll");
    line(r, depth, "for (int dsc_x = 0; dsc_x < %d; ++dsc_x)", GT_RM);
    line(r, depth + 1, "#pragma unroll");
    line(r, depth + 1,
         "for (int dsc_y = 0; dsc_y < %d; ++dsc_y) dsc_c%d[dsc_x][dsc_y] = dsc_c%d[dsc_x][dsc_y] + dsc_a[dsc_x] * "
         "dsc_b[dsc_y];",
         GT_RN, p, p);
}

/* The tile loop's head: tiles of tm x tn points over m and n, the batch
 * variables, each tile's origin (dsc_m0, dsc_n0); the loop is closed by the caller. */
static void emit_tile_loop(R *r, const CudaGemmPlan *gp, int tm, int tn) {
    const Kernel *k = r->k;
    int m = gp->m, n = gp->n;
    line(r, 1, "const long long dsc_mt = (e%d + %d) / %d, dsc_nt = (e%d + %d) / %d;", m, tm - 1, tm, n, tn - 1, tn);
    indent(r, 1);
    s_puts(&r->body, "const long long dsc_n = dsc_mt * dsc_nt");
    for (int i = 0; i < k->npar; i++)
        if (i != m && i != n) s_printf(&r->body, " * e%d", i);
    s_puts(&r->body, ";\n");
    for (int p = 0; p < gp->nprod; p++) {
        indent(r, 1);
        s_printf(&r->body, "const long long dsc_K%d = ", p);
        r->in_index++;
        emit_expr(r, gp->prod[p].loop->extent);
        r->in_index--;
        s_puts(&r->body, ";\n");
    }
}

static void emit_tile_origin(R *r, const CudaGemmPlan *gp, int tm, int tn) {
    line(r, 1, "for (long long dsc_i = blockIdx.x; dsc_i < dsc_n; dsc_i += gridDim.x) {");
    line(r, 2, "long long dsc_r = dsc_i;");
    line(r, 2, "const long long dsc_n0 = dsc_r %% dsc_nt * %d;", tn);
    line(r, 2, "dsc_r /= dsc_nt;");
    line(r, 2, "const long long dsc_m0 = dsc_r %% dsc_mt * %d;", tm);
    line(r, 2, "dsc_r /= dsc_mt;");
    for (int i = r->k->npar - 1; i >= 0; i--) {
        if (i == gp->m || i == gp->n) continue;
        line(r, 2, "const long long v%d = dsc_r %% e%d;", i, i);
        line(r, 2, "dsc_r /= e%d;", i);
    }
}

/* The epilogue of one point: the kernel's locals, the accumulators from
 * `acc_fmt` (%d: the product), then the plan's other statements. */
static void emit_gemm_point(R *r, const CudaGemmPlan *gp, const char *acc_fmt, int depth) {
    const Kernel *k = r->k;
    for (int i = 0; i < k->nlocals; i++)
        line(r, depth, "%s l%d = %s;", r->dl->ctype[k->locals[i]], i,
             k->locals[i] == KT_F32 ? "0.0f" : k->locals[i] == KT_I64 ? "0" : "false");
    for (int p = 0; p < gp->nprod; p++) {
        indent(r, depth);
        s_printf(&r->body, "l%d = ", gp->prod[p].acc);
        s_printf(&r->body, acc_fmt, p);
        s_puts(&r->body, ";\n");
    }
    emit_block(r, gp->rest, depth);
}

/* The whole body of a tiled GEMM kernel after the extents e<i>: the tile loop
 * (closed by the caller), each product's k loop, the epilogue per point. */
static void emit_gemm(R *r, const CudaGemmPlan *gp) {
    int m = gp->m, n = gp->n;
    emit_tile_loop(r, gp, GT_M, GT_N);
    line(r, 1, "__shared__ float dsc_As[%d][%d];", GT_K, GT_M + 4);
    line(r, 1, "__shared__ float dsc_Bs[%d][%d];", GT_K, GT_N + 4);
    line(r, 1, "const int dsc_tx = threadIdx.x & 15, dsc_ty = threadIdx.x >> 4;");
    emit_tile_origin(r, gp, GT_M, GT_N);
    for (int p = 0; p < gp->nprod; p++) {
        const CudaGemmProduct *pr = &gp->prod[p];
        line(r, 2, "float dsc_c%d[%d][%d];", p, GT_RM, GT_RN);
        line(r, 2, "#pragma unroll");
        indent(r, 2);
        s_printf(&r->body, "for (int dsc_x = 0; dsc_x < %d; ++dsc_x)\n", GT_RM * GT_RN);
        indent(r, 3);
        s_printf(&r->body, "dsc_c%d[dsc_x / %d][dsc_x %% %d] = ", p, GT_RN, GT_RN);
        emit_expr(r, pr->init);
        s_puts(&r->body, ";\n");
        line(r, 2, "for (long long dsc_k0 = 0, dsc_K = dsc_K%d; dsc_k0 < dsc_K; dsc_k0 += %d) {", p, GT_K);
        emit_gemm_stage(r, pr, "dsc_As", pr->a, m, GT_M, pr->a_k_fastest, "dsc_m0");
        emit_gemm_stage(r, pr, "dsc_Bs", pr->b, n, GT_N, pr->b_k_fastest, "dsc_n0");
        line(r, 3, "__syncthreads();");
        /* Past K both tiles hold +0, and x + (+0 * +0) == x unless x is -0 -- which a
         * sum of round-to-nearest additions only is when it started at -0: then the
         * last tile stops at K. */
        if (!signbit(pr->init->f)) {
            line(r, 3, "#pragma unroll");
            line(r, 3, "for (int dsc_kk = 0; dsc_kk < %d; ++dsc_kk) {", GT_K);
        } else {
            line(r, 3, "for (int dsc_kk = 0; dsc_kk < %d && dsc_k0 + dsc_kk < dsc_K; ++dsc_kk) {", GT_K);
        }
        emit_gemm_step(r, 4, p);
        line(r, 3, "}");
        line(r, 3, "__syncthreads();");
        line(r, 2, "}");
    }
    line(r, 2, "#pragma unroll");
    line(r, 2, "for (int dsc_x = 0; dsc_x < %d; ++dsc_x) {", GT_RM);
    line(r, 3, "#pragma unroll");
    line(r, 3, "for (int dsc_y = 0; dsc_y < %d; ++dsc_y) {", GT_RN);
    line(r, 4, "const long long v%d = dsc_m0 + dsc_ty + 16 * dsc_x;", m);
    line(r, 4, "const long long v%d = dsc_n0 + dsc_tx + 16 * dsc_y;", n);
    line(r, 4, "if (v%d < e%d && v%d < e%d) {", m, m, n, n);
    emit_gemm_point(r, gp, "dsc_c%d[dsc_x][dsc_y]", 5);
    line(r, 4, "}");
    line(r, 3, "}");
    line(r, 2, "}");
}

/* Tensor-core GEMMs (sm_80+, both operands f16 or both bf16): a block of
 * TC_WARPS warps (2 along m, the rest along n) computes a TC_M x TC_N tile,
 * each warp TC_WM x TC_WN of it as TC_MT x TC_NT m16n8k16 tiles; A (m x k)
 * and B (n x k) are staged TC_K deep in shared memory as raw 16-bit values,
 * rows padded by 8 elements so that the fragment loads of a warp touch 32
 * different banks.  The tile is the configuration's (CudaGemmConfig). */
#define TC_M (r->gc->tc_m)
#define TC_N (r->gc->tc_n)
#define TC_K (r->gc->tc_k)
#define TC_WARPS (r->gc->tc_warps)
#define TC_THREADS (TC_WARPS * 32)
#define TC_STRIDE (TC_K + 8)
#define TC_WM (TC_M / 2)
#define TC_WN (TC_N / (TC_WARPS / 2))
#define TC_MT (TC_WM / 16)
#define TC_NT (TC_WN / 8)

/* The raw 16-bit pattern of operand e (a value of dtype `half`). */
static void emit_half_bits(R *r, const KExpr *e, DType half) {
    if (e->kind == KE_LOAD) { /* a buffer of that dtype: its bits */
        s_printf(&r->body, "b%d[", e->id);
        r->in_index++;
        emit_expr(r, e->a);
        r->in_index--;
        s_puts(&r->body, "]");
        return;
    }
    /* a value rounded to `half`: round it once, keep the bits */
    const KExpr *x = e->a;
    r->need |= half == DT_F16 ? H_F16 : H_BF16;
    s_puts(&r->body, half == DT_F16 ? "dsc_f32_to_f16(" : "dsc_f32_to_bf16(");
    emit_expr(r, x);
    s_puts(&r->body, ")");
}

static void emit_mma_stage(R *r, const CudaGemmProduct *pr, const char *tile, const KExpr *op, int var, int span,
                           bool k_fastest, const char *base) {
    int kv = pr->loop->id;
    line(r, 3, "for (int dsc_t = threadIdx.x; dsc_t < %d; dsc_t += %d) {", span * TC_K, TC_THREADS);
    if (k_fastest)
        line(r, 4, "const int dsc_kk = dsc_t %% %d, dsc_x = dsc_t / %d;", TC_K, TC_K);
    else
        line(r, 4, "const int dsc_kk = dsc_t / %d, dsc_x = dsc_t %% %d;", span, span);
    line(r, 4, "const long long v%d = %s + dsc_x;", var, base);
    line(r, 4, "const long long v%d = dsc_k0 + dsc_kk;", kv);
    indent(r, 4);
    s_printf(&r->body, "%s[dsc_x][dsc_kk] = v%d < e%d && v%d < dsc_K ? ", tile, var, var, kv);
    emit_half_bits(r, op, pr->half);
    s_puts(&r->body, " : (unsigned short)0;\n");
    line(r, 3, "}");
}

/* A tensor-core GEMM of one product (the plan's first). */
static void emit_mma_gemm(R *r, const CudaGemmPlan *gp) {
    const CudaGemmProduct *pr = &gp->prod[0];
    int m = gp->m, n = gp->n;
    r->need |= pr->half == DT_F16 ? H_MMA_F16 : H_MMA_BF16;
    const char *mma = pr->half == DT_F16 ? "dsc_mma_f16" : "dsc_mma_bf16";
    emit_tile_loop(r, gp, TC_M, TC_N);
    line(r, 1, "__shared__ __align__(16) unsigned short dsc_As[%d][%d];", TC_M, TC_STRIDE);
    line(r, 1, "__shared__ __align__(16) unsigned short dsc_Bs[%d][%d];", TC_N, TC_STRIDE);
    line(r, 1, "const int dsc_lane = threadIdx.x & 31, dsc_warp = threadIdx.x >> 5;");
    line(r, 1, "const int dsc_g = dsc_lane >> 2, dsc_tg = dsc_lane & 3;");
    line(r, 1, "const int dsc_wm = (dsc_warp / %d) * %d, dsc_wn = (dsc_warp %% %d) * %d;", TC_WARPS / 2, TC_WM,
         TC_WARPS / 2, TC_WN);
    emit_tile_origin(r, gp, TC_M, TC_N);
    int nacc = TC_MT * TC_NT * 4;
    line(r, 2, "float dsc_c[%d][%d][4];", TC_MT, TC_NT);
    line(r, 2, "#pragma unroll");
    indent(r, 2);
    s_printf(&r->body, "for (int dsc_x = 0; dsc_x < %d; ++dsc_x)\n", nacc);
    indent(r, 3);
    s_printf(&r->body, "dsc_c[dsc_x / %d][dsc_x / 4 %% %d][dsc_x %% 4] = ", TC_NT * 4, TC_NT);
    emit_expr(r, pr->init);
    s_puts(&r->body, ";\n");
    line(r, 2, "for (long long dsc_k0 = 0, dsc_K = dsc_K0; dsc_k0 < dsc_K; dsc_k0 += %d) {", TC_K);
    emit_mma_stage(r, pr, "dsc_As", pr->a, m, TC_M, pr->a_k_fastest, "dsc_m0");
    emit_mma_stage(r, pr, "dsc_Bs", pr->b, n, TC_N, pr->b_k_fastest, "dsc_n0");
    line(r, 3, "__syncthreads();");
    line(r, 3, "#pragma unroll");
    line(r, 3, "for (int dsc_kk = 0; dsc_kk < %d; dsc_kk += 16) {", TC_K);
    line(r, 4, "unsigned dsc_a[%d][4], dsc_b[%d][2];", TC_MT, TC_NT);
    line(r, 4, "const int dsc_col = dsc_kk + 2 * dsc_tg;");
    line(r, 4, "#pragma unroll");
    line(r, 4, "for (int dsc_x = 0; dsc_x < %d; ++dsc_x) {", TC_MT);
    line(r, 5, "const int dsc_row = dsc_wm + 16 * dsc_x + dsc_g;");
    line(r, 5, "dsc_a[dsc_x][0] = *(const unsigned *)&dsc_As[dsc_row][dsc_col];");
    line(r, 5, "dsc_a[dsc_x][1] = *(const unsigned *)&dsc_As[dsc_row + 8][dsc_col];");
    line(r, 5, "dsc_a[dsc_x][2] = *(const unsigned *)&dsc_As[dsc_row][dsc_col + 8];");
    line(r, 5, "dsc_a[dsc_x][3] = *(const unsigned *)&dsc_As[dsc_row + 8][dsc_col + 8];");
    line(r, 4, "}");
    line(r, 4, "#pragma unroll");
    line(r, 4, "for (int dsc_y = 0; dsc_y < %d; ++dsc_y) {", TC_NT);
    line(r, 5, "const int dsc_nn = dsc_wn + 8 * dsc_y + dsc_g;");
    line(r, 5, "dsc_b[dsc_y][0] = *(const unsigned *)&dsc_Bs[dsc_nn][dsc_col];");
    line(r, 5, "dsc_b[dsc_y][1] = *(const unsigned *)&dsc_Bs[dsc_nn][dsc_col + 8];");
    line(r, 4, "}");
    line(r, 4, "#pragma unroll");
    line(r, 4, "for (int dsc_x = 0; dsc_x < %d; ++dsc_x)", TC_MT);
    line(r, 5, "#pragma unroll");
    line(r, 5, "for (int dsc_y = 0; dsc_y < %d; ++dsc_y) %s(dsc_c[dsc_x][dsc_y], dsc_a[dsc_x], dsc_b[dsc_y]);", TC_NT,
         mma);
    line(r, 3, "}");
    line(r, 3, "__syncthreads();");
    line(r, 2, "}");
    line(r, 2, "#pragma unroll");
    line(r, 2, "for (int dsc_x = 0; dsc_x < %d; ++dsc_x) {", nacc);
    line(r, 3, "const long long v%d = dsc_m0 + dsc_wm + 16 * (dsc_x / %d) + dsc_g + 8 * (dsc_x %% 4 / 2);", m,
         TC_NT * 4);
    line(r, 3, "const long long v%d = dsc_n0 + dsc_wn + 8 * (dsc_x / 4 %% %d) + 2 * dsc_tg + dsc_x %% 2;", n, TC_NT);
    line(r, 3, "if (v%d < e%d && v%d < e%d) {", m, m, n, n);
    char acc[96];
    snprintf(acc, sizeof acc, "dsc_c[dsc_x / %d][dsc_x / 4 %%%% %d][dsc_x %%%% 4]", TC_NT * 4, TC_NT);
    emit_gemm_point(r, gp, acc, 4);
    line(r, 3, "}");
    line(r, 2, "}");
}

/* Point level of a row kernel: assignments run in every lane (the same value
 * in each), stores and traps in lane 0, loops split over the lanes. */
static void emit_row_block(R *r, const KStmt *s, int depth) {
    for (; s && r->ok; s = s->next) {
        switch (s->kind) {
        case KS_SET: emit_stmt(r, s, depth); break;
        case KS_STORE:
        case KS_TRAP:
            indent(r, depth);
            s_puts(&r->body, "if (dsc_lane == 0) {\n");
            emit_stmt(r, s, depth + 1);
            indent(r, depth);
            s_puts(&r->body, "}\n");
            break;
        case KS_IF:
            indent(r, depth);
            s_puts(&r->body, "if (");
            emit_expr(r, s->value);
            s_puts(&r->body, ") {\n");
            emit_row_block(r, s->body, depth + 1);
            indent(r, depth);
            s_puts(&r->body, "}\n");
            break;
        case KS_FOR: emit_row_loop(r, s, depth); break;
        }
    }
}

/* ---- vector kernels: consecutive points a thread (codegen/cuda/schedule.h) ------------ */

static const char *const vec_field[4] = {"x", "y", "z", "w"};

static int vec_bytes(const CudaVecPlan *vp, const Kernel *k, const CudaVecAccess *a) {
    return vp->width * cg_cuda_vec_elem(k->bufs[a->buf].dtype);
}

/* float4 for f32, uint4 for the other 16-byte vectors, uint2 for 8 bytes. */
static const char *vec_type(DType t, int bytes) {
    return bytes == 8 ? "uint2" : t == DT_F32 ? "float4" : "uint4";
}

/* `INDEX / width` of an access at the vector's first point (dsc_q). */
static void emit_vec_index(R *r, const CudaVecPlan *vp, const CudaVecAccess *a) {
    r->base_var = vp->var;
    r->base_name = "dsc_q";
    r->in_index++;
    emit_expr(r, a->index);
    r->in_index--;
    r->base_name = NULL;
    s_printf(&r->body, " / %d", vp->width);
}

/* v<last> ... v0 from dsc_r (the flat index over e0 x ... x e<last>), innermost first. */
static void emit_split(R *r, int depth, int last) {
    for (int i = last; i > 0; i--) {
        if (r->var_used[i]) line(r, depth, "const long long v%d = dsc_r %% e%d;", i, i);
        line(r, depth, "dsc_r /= e%d;", i);
    }
    if (last >= 0 && r->var_used[0]) line(r, depth, "const long long v0 = dsc_r;");
}

static void emit_locals(R *r, int depth) {
    const Kernel *k = r->k;
    for (int i = 0; i < k->nlocals; i++)
        line(r, depth, "%s l%d = %s;", r->dl->ctype[k->locals[i]], i,
             k->locals[i] == KT_F32   ? "0.0f"
             : k->locals[i] == KT_I64 ? "0"
                                      : "false");
}

/* One point of a kernel, not vectorised: its locals, then its statements. */
static void emit_point(R *r, int depth) {
    emit_locals(r, depth);
    emit_block(r, r->k->body, depth);
}

/* Everything after `dsc_n` of a vector kernel: when the run-time conditions
 * hold, a grid-stride loop over the vectors of every row -- vector loads, the
 * points one lane each, vector stores; a row's last, partial vector one point
 * after the other -- else the point mapping.  `scalar` is one point at depth 3. */
static void emit_vec(R *r, const CudaVecPlan *vp, const Str *scalar) {
    const Kernel *k = r->k;
    const Dialect *dl = r->dl;
    int V = vp->width, var = vp->var;
    indent(r, 1);
    s_puts(&r->body, "if (");
    const char *sep = "";
    for (int i = 0; i < vp->nconds; i++, sep = " && ")
        s_printf(&r->body, "%sd%d %% %dLL == 0", sep, vp->conds[i].sym, vp->conds[i].mod);
    for (int i = 0; i < vp->nacc; i++) {
        const CudaVecAccess *a = &vp->acc[i];
        bool seen = false;
        for (int j = 0; j < i; j++)
            seen |= vp->acc[j].buf == a->buf;
        if (seen) continue;
        s_printf(&r->body, "%s((unsigned long long)b%d & %dull) == 0ull", sep, a->buf,
                 vec_bytes(vp, k, a) - 1);
        sep = " && ";
    }
    s_puts(&r->body, ") {\n");
    line(r, 2,
         "/* %d consecutive points of v%d a thread, vector loads and stores (codegen/cuda/schedule.h) */", V,
         var);
    indent(r, 2);
    s_puts(&r->body, "const long long dsc_rows = ");
    if (var == 0) s_puts(&r->body, "1");
    for (int i = 0; i < var; i++)
        s_printf(&r->body, "%se%d", i ? " * " : "", i);
    if (vp->whole_rows)
        s_printf(&r->body, ", dsc_vr = e%d / %d;\n", var, V);
    else
        s_printf(&r->body, ", dsc_vr = (e%d + %d) / %d; /* the last one partial when e%d %% %d != 0 */\n",
                 var, V - 1, V, var, V);
    line(r, 2, "for (long long dsc_i = %s; dsc_i < dsc_rows * dsc_vr; dsc_i += %s) {", dl->global_index,
         dl->global_stride);
    if (var > 0) {
        line(r, 3, "long long dsc_r = dsc_i;");
        line(r, 3, "const long long dsc_q = dsc_r %% dsc_vr * %d;", V);
        line(r, 3, "dsc_r /= dsc_vr;");
        emit_split(r, 3, var - 1);
    } else {
        line(r, 3, "const long long dsc_q = dsc_i * %d;", V);
    }
    int d = 3;
    if (!vp->whole_rows) {
        line(r, 3, "if (dsc_q + %d <= e%d) {", V, var);
        d = 4;
    }
    for (int i = 0; i < vp->nacc; i++) { /* the vector loads */
        const CudaVecAccess *a = &vp->acc[i];
        if (!a->load || a->owner != i) continue;
        DType dt = k->bufs[a->buf].dtype;
        int bytes = vec_bytes(vp, k, a);
        const char *T = vec_type(dt, bytes);
        indent(r, d);
        s_printf(&r->body, "const %s dsc_p%d = reinterpret_cast<const %s *>(b%d)[", T, i, T, a->buf);
        emit_vec_index(r, vp, a);
        s_puts(&r->body, "];\n");
        indent(r, d);
        s_printf(&r->body, "const %s dsc_x%d[%d] = {", dl->storage[dt], i, V);
        for (int l = 0; l < V; l++) {
            const char *f = l ? ", " : "";
            if (dt == DT_F32)
                s_printf(&r->body, "%sdsc_p%d.%s", f, i, vec_field[l]);
            else if (cg_cuda_vec_elem(dt) == 4)
                s_printf(&r->body, "%s(%s)dsc_p%d.%s", f, dl->storage[dt], i, vec_field[l]);
            else if (l % 2 == 0)
                s_printf(&r->body, "%s(unsigned short)(dsc_p%d.%s & 0xffffu)", f, i, vec_field[l / 2]);
            else
                s_printf(&r->body, "%s(unsigned short)(dsc_p%d.%s >> 16)", f, i, vec_field[l / 2]);
        }
        s_puts(&r->body, "};\n");
    }
    for (int i = 0; i < vp->nacc; i++)
        if (vp->acc[i].store) line(r, d, "%s dsc_y%d[%d];", dl->storage[k->bufs[vp->acc[i].buf].dtype], i, V);
    line(r, d, "#pragma unroll");
    line(r, d, "for (int dsc_j = 0; dsc_j < %d; ++dsc_j) {", V);
    /* one lane: the point v<var> = dsc_q + dsc_j, its vectorised accesses in dsc_x / dsc_y */
    bool used = r->var_used[var];
    r->var_used[var] = false;
    Str outer = r->body;
    r->body = (Str){0};
    r->vec = vp;
    r->local_name[k->nlocals] = "dsc_j";
    emit_point(r, d + 1);
    r->vec = NULL;
    r->local_name[k->nlocals] = NULL;
    Str lane = r->body;
    r->body = outer;
    if (lane.oom) r->body.oom = true;
    if (r->var_used[var]) line(r, d + 1, "const long long v%d = dsc_q + dsc_j;", var);
    s_put(&r->body, lane.p ? lane.p : "", lane.n);
    free(lane.p);
    r->var_used[var] |= used;
    line(r, d, "}");
    for (int i = 0; i < vp->nacc; i++) { /* the vector stores */
        const CudaVecAccess *a = &vp->acc[i];
        if (!a->store) continue;
        DType dt = k->bufs[a->buf].dtype;
        int bytes = vec_bytes(vp, k, a);
        const char *T = vec_type(dt, bytes);
        line(r, d, "%s dsc_s%d;", T, i);
        for (int w = 0; w < bytes / 4; w++) {
            if (dt == DT_F32)
                line(r, d, "dsc_s%d.%s = dsc_y%d[%d];", i, vec_field[w], i, w);
            else if (cg_cuda_vec_elem(dt) == 4)
                line(r, d, "dsc_s%d.%s = (unsigned)dsc_y%d[%d];", i, vec_field[w], i, w);
            else
                line(r, d, "dsc_s%d.%s = (unsigned)dsc_y%d[%d] | ((unsigned)dsc_y%d[%d] << 16);", i,
                     vec_field[w], i, 2 * w, i, 2 * w + 1);
        }
        indent(r, d);
        s_printf(&r->body, "reinterpret_cast<%s *>(b%d)[", T, a->buf);
        emit_vec_index(r, vp, a);
        s_printf(&r->body, "] = dsc_s%d;\n", i);
    }
    if (!vp->whole_rows) {
        line(r, 3, "} else { /* the row's last e%d %% %d points, one after the other */", var, V);
        line(r, 4, "for (long long v%d = dsc_q; v%d < e%d; ++v%d) {", var, var, var, var);
        emit_point(r, 5);
        line(r, 4, "}");
        line(r, 3, "}");
    }
    line(r, 2, "}");
    line(r, 1, "} else { /* misaligned: one point a thread */");
    line(r, 2, "for (long long dsc_i = %s; dsc_i < dsc_n; dsc_i += %s) {", dl->global_index,
         dl->global_stride);
    if (var > 0) {
        line(r, 3, "long long dsc_r = dsc_i;");
        emit_split(r, 3, var);
    } else if (r->var_used[0]) {
        line(r, 3, "const long long v0 = dsc_i;");
    }
    s_put(&r->body, scalar->p ? scalar->p : "", scalar->n);
    line(r, 2, "}");
    line(r, 1, "}");
}

/* Text inside a comment: "*" followed by "/" would end it early. */
static void comment(Str *s, const char *text) {
    for (const char *p = text; *p; p++) {
        s_put(s, p, 1);
        if (p[0] == '*' && p[1] == '/') s_puts(s, " ");
    }
}

static bool is_identifier(const char *s) {
    if (!s || !(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))) return false;
    for (; *s; s++)
        if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

/* Names the generated code itself uses at file scope: the helpers'. */
static bool reserved(const char *name) {
    char call[128];
    if (strncmp(name, "dsc_", 4) != 0 || strlen(name) > 100) return false;
    snprintf(call, sizeof call, " %s(", name);
    for (int i = 0; i < H_COUNT; i++)
        if (strstr(helpers[i].text, call)) return true;
    return false;
}

/* True when two of the kernel's buffers may share memory: planned values in
 * the same memory-plan buffer (an in-place update). */
static bool buffers_may_alias(const Kernel *k) {
    for (int i = 0; i < k->nbufs; i++) {
        const KBuf *a = &k->bufs[i];
        if (a->role != KB_PLANNED || a->node->ann.buffer < 0) continue;
        for (int j = i + 1; j < k->nbufs; j++) {
            const KBuf *b = &k->bufs[j];
            if (b->role == KB_PLANNED && b->node->ann.buffer == a->node->ann.buffer && (a->written || b->written))
                return true;
        }
    }
    return false;
}

static void emit_helpers(Str *out, unsigned need) {
    /* close over dependencies, then emit in table order (dependencies first) */
    for (int round = 0; round < H_COUNT; round++)
        for (int i = 0; i < H_COUNT; i++)
            if (need & helpers[i].bit) need |= helpers[i].deps;
    for (int i = 0; i < H_COUNT; i++)
        if (need & helpers[i].bit) s_puts(out, helpers[i].text);
    if (need) s_puts(out, "\n");
}

bool cg_cuda_render(Graph *g, const Kernel *k, int block, CudaKernel *out, Diag *d) {
    return cg_cuda_render_for(g, k, block, 0, out, d);
}

bool cg_cuda_gemm_config_check(CudaGemmConfig *c, char *why, size_t n) {
    if (!c->f32_m) c->f32_m = 64;
    if (!c->f32_n) c->f32_n = 64;
    if (!c->f32_k) c->f32_k = 16;
    if (!c->f32_warps) c->f32_warps = 8;
    if (!c->tc_m) c->tc_m = 128;
    if (!c->tc_n) c->tc_n = 128;
    if (!c->tc_k) c->tc_k = 32;
    if (!c->tc_warps) c->tc_warps = 8;
    const char *bad = NULL;
    if (c->f32_m < 16 || c->f32_m > 128 || c->f32_m % 16 || c->f32_n < 16 || c->f32_n > 128 || c->f32_n % 16)
        bad = "f32 tile sides must be multiples of 16 from 16 to 128";
    else if ((c->f32_m / 16) * (c->f32_n / 16) > 32)
        bad = "f32 tile gives more than 32 points a thread";
    else if (c->f32_k != 8 && c->f32_k != 16 && c->f32_k != 32)
        bad = "f32 tile depth must be 8, 16 or 32";
    else if (c->f32_warps != 8)
        bad = "f32 tiled GEMMs take 8 warps (16 x 16 threads)";
    else if (c->f32_k * (c->f32_m + c->f32_n + 8) * 4 > 48 * 1024)
        bad = "f32 staging needs more than 48 KB of shared memory";
    else if (c->tc_warps != 4 && c->tc_warps != 8)
        bad = "tensor-core GEMMs take 4 or 8 warps";
    else if (c->tc_m % 32 || c->tc_m < 32 || c->tc_n % (8 * (c->tc_warps / 2)) || c->tc_n < 8 * (c->tc_warps / 2))
        bad = "tensor-core tile is not a whole number of m16n8k16 tiles per warp";
    else if ((c->tc_m / 32) * (c->tc_n / (c->tc_warps / 2) / 8) > 16)
        bad = "tensor-core tile gives a warp more than 16 m16n8k16 tiles";
    else if (c->tc_k != 16 && c->tc_k != 32 && c->tc_k != 64)
        bad = "tensor-core tile depth must be 16, 32 or 64";
    else if ((c->tc_m + c->tc_n) * (c->tc_k + 8) * 2 > 48 * 1024)
        bad = "tensor-core staging needs more than 48 KB of shared memory";
    if (bad && why)
        snprintf(why, n, "GEMM configuration f32 %dx%dx%d, tensor cores %dx%dx%d on %d warps: %s", c->f32_m,
                 c->f32_n, c->f32_k, c->tc_m, c->tc_n, c->tc_k, c->tc_warps, bad);
    return !bad;
}

bool cg_cuda_render_for(Graph *g, const Kernel *k, int block, int sm, CudaKernel *out, Diag *d) {
    return cg_cuda_render_with(g, k, block, sm, NULL, out, d);
}

bool cg_cuda_render_with(Graph *g, const Kernel *k, int block, int sm, const CudaGemmConfig *gcfg, CudaKernel *out,
                         Diag *d) {
    const Dialect *dl = &cuda;
    if (block <= 0) block = CG_CUDA_DEFAULT_BLOCK;
    *out = (CudaKernel){0};
    CudaGemmConfig gc = gcfg ? *gcfg : (CudaGemmConfig){0};
    R r = {g, k, dl, d, {0}, 0, true, NULL, 0, NULL, NULL, NULL, -1, NULL, &gc};
    char why[256];
    if (!cg_cuda_gemm_config_check(&gc, why, sizeof why)) {
        fail(&r, "%s", why);
        return false;
    }
    if (!is_identifier(k->name) || reserved(k->name)) {
        fail(&r, "the name is not a C identifier free for a kernel");
        return false;
    }
    if (k->npar < 0 || k->npar > k->nvars) {
        fail(&r, "bad parallel variable count");
        return false;
    }
    for (int i = 0; i < k->nbufs; i++)
        if ((unsigned)k->bufs[i].dtype >= DT_COUNT || !dl->storage[k->bufs[i].dtype]) {
            fail(&r, "buffer %d has no CUDA storage type", i);
            return false;
        }
    r.var_used = calloc((size_t)k->nvars + 1, sizeof(bool));
    r.local_name = calloc((size_t)k->nlocals + 2, sizeof(char *));
    if (!r.var_used || !r.local_name) DSC_ASSERT(!"out of memory");
    bool alias = buffers_may_alias(k);
    CudaGemmPlan gemm = {0};
    if (block == GT_THREADS) cg_cuda_gemm_plan(g, k, alias, &gemm);
    /* tensor cores: m16n8k16 needs sm_80; past K the tiles hold +0 (see emit_gemm) */
    bool mma = gemm.ok && gemm.nprod == 1 && sm >= 80 && gemm.prod[0].half != DT_F32 &&
               !signbit(gemm.prod[0].init->f);
    /* a kernel of several products keeps at most 64 accumulators a thread (the
     * 128 registers of __launch_bounds__(256, 2)): a larger configured tile
     * falls back to 64 x 64 for it */
    if (gemm.ok && !mma && gemm.nprod * (gc.f32_m / 16) * (gc.f32_n / 16) > 64) gc.f32_m = gc.f32_n = 64;
    CudaRowPlan rows = {0};
    if (!gemm.ok) cg_cuda_row_plan(g, k, alias, &rows);
    if (rows.rows && block % 32 == 0) r.rows = &rows;
    CudaVecPlan vec = {0};
    if (!gemm.ok && !r.rows) cg_cuda_vec_plan(g, k, alias, &vec);

    /* the body first: it decides which helpers and variables are used */
    int depth = k->npar > 0 ? (vec.ok ? 3 : 2) : 1;
    if (!gemm.ok) emit_locals(&r, depth);
    if (gemm.ok) { /* rendered after the extents */
    } else if (r.rows) {
        emit_row_block(&r, k->body, depth);
    } else {
        emit_block(&r, k->body, depth);
    }
    Str body = r.body;
    r.body = (Str){0};

    /* parallel extents, then the kernel around the body */
    Str head = {0};
    CudaArg *args = arena_alloc(g->arena, sizeof(CudaArg) * (size_t)(k->nbufs + dim_sym_count(g->dims) + 2));
    int nargs = 0;
    if (mma) /* up to 64 accumulators a thread: one block per SM guaranteed its registers */
        s_printf(&head, dl->gemm_prefix, gc.tc_warps * 32, 1);
    else if (gemm.ok) /* two blocks per SM leave 128 registers a thread: its 4 x 4 points stay in registers */
        s_printf(&head, dl->gemm_prefix, block, 2);
    else
        s_printf(&head, dl->kernel_prefix, block);
    s_printf(&head, "\n%s(", k->name);
    for (int i = 0; i < k->nbufs; i++) {
        const KBuf *b = &k->bufs[i];
        char *decl = arena_printf(g->arena, "%s%s *%s%sb%d", b->written ? "" : "const ", dl->storage[b->dtype],
                                  alias ? "" : dl->restrict_kw, alias ? "" : " ", i);
        args[nargs++] = (CudaArg){CA_BUFFER, i, b->dtype, b->written, decl};
        s_printf(&head, "%s%s /* ", i ? ",\n    " : "", decl);
        comment(&head, b->node->name ? b->node->name : "_");
        s_puts(&head, " ");
        comment(&head, ir_type_str(g, &b->node->type));
        s_puts(&head, " */");
    }
    for (int s = 0; s < dim_sym_count(g->dims); s++) {
        char *decl = arena_printf(g->arena, "%s d%d", dl->index_type, s);
        args[nargs++] = (CudaArg){CA_DIM, s, DT_I64, false, decl};
        s_printf(&head, "%s%s /* ", nargs > 1 ? ",\n    " : "", decl);
        comment(&head, dim_sym_name(g->dims, s));
        s_puts(&head, " */");
    }
    args[nargs++] = (CudaArg){CA_TRAP, 0, DT_I64, true, "long long *dsc_trap"};
    s_printf(&head, "%slong long *dsc_trap /* the run's KTrapRecord */) {\n", nargs > 1 ? ",\n    " : "");
    /* extents are rendered into r.body (reused) */
    for (int i = 0; i < k->npar && r.ok; i++) {
        s_printf(&r.body, "    const %s e%d = ", dl->index_type, i);
        r.in_index++;
        emit_expr(&r, k->par_extent[i]);
        r.in_index--;
        s_puts(&r.body, ";\n");
    }
    if (mma) {
        emit_mma_gemm(&r, &gemm);
    } else if (gemm.ok) {
        emit_gemm(&r, &gemm);
    } else if (vec.ok) {
        s_printf(&r.body, "    const %s dsc_n = ", dl->index_type);
        for (int i = 0; i < k->npar; i++)
            s_printf(&r.body, "%se%d", i ? " * " : "", i);
        s_puts(&r.body, ";\n");
        emit_vec(&r, &vec, &body);
        if (body.oom) r.body.oom = true;
        free(body.p);
        body = (Str){0};
    } else if (k->npar > 0) {
        s_printf(&r.body, "    const %s dsc_n = ", dl->index_type);
        for (int i = 0; i < k->npar; i++) s_printf(&r.body, "%se%d", i ? " * " : "", i);
        s_puts(&r.body, ";\n");
        if (r.rows) { /* one warp per point: the loop is the same in all lanes of a warp */
            s_puts(&r.body, "    const int dsc_lane = threadIdx.x & 31;\n");
            s_printf(&r.body, "    for (%s dsc_i = %s; dsc_i < dsc_n; dsc_i += %s) {\n", dl->index_type,
                     dl->warp_index, dl->warp_stride);
        } else {
            s_printf(&r.body, "    for (%s dsc_i = %s; dsc_i < dsc_n; dsc_i += %s) {\n", dl->index_type,
                     dl->global_index, dl->global_stride);
        }
        if (k->npar == 1) {
            if (r.var_used[0]) s_printf(&r.body, "        const %s v0 = dsc_i;\n", dl->index_type);
        } else {
            s_printf(&r.body, "        %s dsc_r = dsc_i;\n", dl->index_type);
            for (int i = k->npar - 1; i > 0; i--) {
                if (r.var_used[i]) s_printf(&r.body, "        const %s v%d = dsc_r %% e%d;\n", dl->index_type, i, i);
                s_printf(&r.body, "        dsc_r /= e%d;\n", i);
            }
            if (r.var_used[0]) s_printf(&r.body, "        const %s v0 = dsc_r;\n", dl->index_type);
        }
    } else {
        /* no parallel variables: one point, run by the first thread */
        s_puts(&r.body, "    if (blockIdx.x != 0 || threadIdx.x != 0) return;\n");
    }
    Str prologue = r.body;
    r.body = (Str){0};
    /* the source: helpers used by the body and the extents, then the kernel */
    Str src = {0};
    emit_helpers(&src, r.need);

    for (int t = 0; t < k->ntables; t++) { /* a sparsity pattern, part of the source */
        s_printf(&src, dl->table_decl, k->name, t, k->tables[t].n);
        for (int i = 0; i < k->tables[t].n; i++)
            s_printf(&src, "%s%d", i ? (i % 32 ? "," : ",\n") : "", (int)k->tables[t].data[i]);
        s_puts(&src, "};\n");
    }
    s_printf(&src, "/* kernel %s (group %d%s) */\n", k->name, k->group, k->load_time ? ", load time" : "");
    s_put(&src, head.p ? head.p : "", head.n);
    s_put(&src, prologue.p ? prologue.p : "", prologue.n);
    s_put(&src, body.p ? body.p : "", body.n);
    if (k->npar > 0 && !vec.ok) s_puts(&src, "    }\n");
    s_puts(&src, "}\n");

    bool oom = src.oom || head.oom || prologue.oom || body.oom;
    if (oom) fail(&r, "out of memory");
    if (r.ok) {
        out->k = k;
        out->name = k->name;
        out->source = arena_strndup(g->arena, src.p, src.n);
        out->source_len = src.n;
        out->block = mma ? gc.tc_warps * 32 : block;
        out->point_threads = r.rows ? 32 : 1;
        out->thread_points = vec.ok ? vec.width : 1;
        out->tile_m = mma ? gc.tc_m : gemm.ok ? gc.f32_m : 0;
        out->tile_n = mma ? gc.tc_n : gemm.ok ? gc.f32_n : 0;
        out->tensor_cores = mma;
        out->m_var = gemm.ok ? gemm.m : -1;
        out->n_var = gemm.ok ? gemm.n : -1;
        out->nargs = nargs;
        out->args = args;
        out->flops = k->flops;
        out->bytes = k->bytes;
    }
    free(src.p);
    free(head.p);
    free(prologue.p);
    free(body.p);
    free(r.var_used);
    free(r.local_name);
    return r.ok;
}

/* ---- launch geometry ---------------------------------------------------------- */

typedef struct {
    const int64_t *dims;
    char *err;
    size_t errlen;
    bool ok;
} Eval;

static int64_t ev_fail(Eval *ev, const char *msg) {
    if (ev->ok && ev->err) snprintf(ev->err, ev->errlen, "%s", msg);
    ev->ok = false;
    return 0;
}

/* Evaluates an extent: constants, dims and integer/bool operators. */
static int64_t eval(Eval *ev, const KExpr *e) {
    if (!ev->ok) return 0;
    if (!e) return ev_fail(ev, "missing extent");
    int64_t a, b, r;
    switch (e->kind) {
    case KE_CONST: return e->i;
    case KE_DIM: return ev->dims[e->id];
    case KE_SELECT: return eval(ev, e->a) ? eval(ev, e->b) : eval(ev, e->c);
    case KE_UN:
        a = eval(ev, e->a);
        switch (e->op) {
        case KO_NEG: return a == INT64_MIN ? ev_fail(ev, "overflow") : -a;
        case KO_ABS: return a == INT64_MIN ? ev_fail(ev, "overflow") : a < 0 ? -a : a;
        case KO_NOT: return !a;
        case KO_CAST: return e->a->type == KT_F32 ? ev_fail(ev, "float in an extent") : e->type == KT_BOOL ? a != 0 : a;
        case KO_RELU: return a < 0 ? 0 : a;
        default: return ev_fail(ev, "operator not allowed in an extent");
        }
    case KE_BIN:
        a = eval(ev, e->a);
        b = eval(ev, e->b);
        switch (e->op) {
        case KO_ADD: return __builtin_add_overflow(a, b, &r) ? ev_fail(ev, "overflow") : r;
        case KO_SUB: return __builtin_sub_overflow(a, b, &r) ? ev_fail(ev, "overflow") : r;
        case KO_MUL: return __builtin_mul_overflow(a, b, &r) ? ev_fail(ev, "overflow") : r;
        case KO_DIV:
        case KO_MOD:
            if (b == 0) return ev_fail(ev, "division by zero");
            if (a == INT64_MIN && b == -1) return ev_fail(ev, "overflow");
            return e->op == KO_DIV ? a / b : a % b;
        case KO_MAX: return a > b ? a : b;
        case KO_MIN: return a < b ? a : b;
        case KO_LT: return a < b;
        case KO_GT: return a > b;
        case KO_LE: return a <= b;
        case KO_GE: return a >= b;
        case KO_EQ: return a == b;
        case KO_NE: return a != b;
        case KO_AND: return a && b;
        case KO_OR: return a || b;
        default: return ev_fail(ev, "operator not allowed in an extent");
        }
    default: return ev_fail(ev, "extent depends on a variable, local or buffer");
    }
}

bool cg_cuda_parallel_size(const Kernel *k, const int64_t *dims, int64_t *n, char *err, size_t errlen) {
    Eval ev = {dims, err, errlen, true};
    int64_t total = 1;
    for (int i = 0; i < k->npar && ev.ok; i++) {
        int64_t e = eval(&ev, k->par_extent[i]);
        if (!ev.ok) break;
        if (e <= 0) {
            total = 0;
            continue;
        }
        if (__builtin_mul_overflow(total, e, &total)) ev_fail(&ev, "parallel index space overflows 64 bits");
    }
    if (!ev.ok) return false;
    *n = total;
    return true;
}

bool cg_cuda_grid(const CudaKernel *ck, const int64_t *dims, int64_t max_blocks, int64_t *grid, char *err,
                  size_t errlen) {
    int64_t n;
    if (!cg_cuda_parallel_size(ck->k, dims, &n, err, errlen)) return false;
    if (ck->tile_m > 0 && n > 0) { /* a tiled GEMM: one tile per block */
        Eval ev = {dims, err, errlen, true};
        int64_t em = eval(&ev, ck->k->par_extent[ck->m_var]), en = eval(&ev, ck->k->par_extent[ck->n_var]);
        if (!ev.ok) return false;
        int64_t tiles = (n / em / en) * ((em + ck->tile_m - 1) / ck->tile_m) * ((en + ck->tile_n - 1) / ck->tile_n);
        if (max_blocks > 0 && tiles > max_blocks) tiles = max_blocks;
        if (tiles > 2147483647) tiles = 2147483647;
        *grid = tiles < 1 ? 1 : tiles;
        return true;
    }
    int64_t per_block = ck->point_threads > 1 ? ck->block / ck->point_threads : ck->block;
    if (ck->thread_points > 1 && n > 0) { /* the vector mapping: one thread per vector of a row */
        Eval ev = {dims, err, errlen, true};
        int64_t e = eval(&ev, ck->k->par_extent[ck->k->npar - 1]);
        if (!ev.ok) return false;
        n = n / e * ((e + ck->thread_points - 1) / ck->thread_points);
    }
    if (per_block < 1) per_block = 1;
    int64_t blocks = n / per_block + (n % per_block != 0);
    if (max_blocks > 0 && blocks > max_blocks) blocks = max_blocks;
    if (blocks > 2147483647) blocks = 2147483647; /* gridDim.x limit */
    *grid = blocks < 1 ? 1 : blocks;
    return true;
}
