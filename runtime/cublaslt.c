/* cuBLASLt through dlopen (see cublaslt.h).
 *
 * Why dlopen: as for the driver and NVRTC (cuda_driver.c), one dsc binary
 * must run where there is no CUDA at all, and pick the library up where there
 * is; the GEMM tactic is then simply unavailable, with the reason.
 *
 * The entry points are one table (LT_FUNCTIONS), resolved once on the first
 * call (pthread_once); a library missing any required one is refused as a
 * whole.  cublasLtGetStatusName / cublasLtGetStatusString are optional (a
 * built-in table names the statuses without them).
 *
 * Column-major: cuBLASLt's matrices are column-major.  A row-major X (R x C)
 * with element (r, c) at r*s_r + c*s_c is, when s_c == 1, the column-major
 * C x R matrix X^T with leading dimension s_r; when s_r == 1 it is the
 * column-major R x C matrix X with leading dimension s_c.  dsc's row-major
 * D = A B (M x N) is computed as the column-major D^T = B^T A^T: cuBLASLt's
 * A is dsc's B seen as the N x K matrix B^T, its B is dsc's A seen as the
 * K x M matrix A^T, its D is N x M with leading dimension sdm; the bias
 * vector runs over cuBLASLt's rows of D, which are dsc's n. */
#include "cublaslt.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(DSC_HAVE_CUDA_HEADERS) && __has_include(<cublasLt.h>)
#include <cublasLt.h>
#define HAVE_LT_HEADERS 1
#endif

/* cublasStatus_t and the enums are C enums (int-sized, non-negative). */
typedef int LtStatus;
typedef struct LtContext *LtHandle;
typedef struct LtOpaque
    *LtDesc; /* cublasLtMatmulDesc_t, cublasLtMatrixLayout_t, cublasLtMatmulPreference_t */
typedef struct {
    uint64_t data[8];
} LtAlgo; /* cublasLtMatmulAlgo_t */
typedef struct {
    LtAlgo algo;
    size_t workspace_size;
    LtStatus state;
    float waves_count;
    int reserved[4];
} LtHeuristic; /* cublasLtMatmulHeuristicResult_t */

enum {
    LT_OK = 0,
    LT_STATUS_NOT_SUPPORTED = 15,
    /* cudaDataType */
    R_16F = 2,
    R_16BF = 14,
    R_32F = 0,
    /* cublasComputeType_t */
    COMPUTE_32F = 68,
    /* cublasOperation_t */
    OP_N = 0,
    OP_T = 1,
    /* cublasLtMatmulDescAttributes_t */
    DESC_TRANSA = 3,
    DESC_TRANSB = 4,
    DESC_EPILOGUE = 7,
    DESC_BIAS_POINTER = 8,
    DESC_BIAS_DATA_TYPE = 26,
    /* cublasLtEpilogue_t */
    EPI_DEFAULT = 1,
    EPI_RELU = 2,
    EPI_BIAS = 4,
    EPI_RELU_BIAS = 6,
    EPI_GELU = 32,
    EPI_GELU_BIAS = 36,
    /* cublasLtMatrixLayoutAttribute_t */
    LAYOUT_BATCH_COUNT = 5,
    LAYOUT_STRIDED_BATCH_OFFSET = 6,
    /* cublasLtMatmulPreferenceAttributes_t */
    PREF_MAX_WORKSPACE_BYTES = 1,
    PREF_MIN_ALIGNMENT_A_BYTES = 5,
    PREF_MIN_ALIGNMENT_B_BYTES = 6,
    PREF_MIN_ALIGNMENT_C_BYTES = 7,
    PREF_MIN_ALIGNMENT_D_BYTES = 8,
};

#if defined(HAVE_LT_HEADERS)
#define SAME_VALUE(theirs, ours) _Static_assert((int)(theirs) == (int)(ours), #theirs)
SAME_VALUE(CUBLAS_STATUS_SUCCESS, LT_OK);
SAME_VALUE(CUBLAS_STATUS_NOT_SUPPORTED, LT_STATUS_NOT_SUPPORTED);
SAME_VALUE(CUDA_R_16F, R_16F);
SAME_VALUE(CUDA_R_16BF, R_16BF);
SAME_VALUE(CUDA_R_32F, R_32F);
SAME_VALUE(CUBLAS_COMPUTE_32F, COMPUTE_32F);
SAME_VALUE(CUBLAS_OP_N, OP_N);
SAME_VALUE(CUBLAS_OP_T, OP_T);
SAME_VALUE(CUBLASLT_MATMUL_DESC_TRANSA, DESC_TRANSA);
SAME_VALUE(CUBLASLT_MATMUL_DESC_TRANSB, DESC_TRANSB);
SAME_VALUE(CUBLASLT_MATMUL_DESC_EPILOGUE, DESC_EPILOGUE);
SAME_VALUE(CUBLASLT_MATMUL_DESC_BIAS_POINTER, DESC_BIAS_POINTER);
SAME_VALUE(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, DESC_BIAS_DATA_TYPE);
SAME_VALUE(CUBLASLT_EPILOGUE_DEFAULT, EPI_DEFAULT);
SAME_VALUE(CUBLASLT_EPILOGUE_RELU, EPI_RELU);
SAME_VALUE(CUBLASLT_EPILOGUE_BIAS, EPI_BIAS);
SAME_VALUE(CUBLASLT_EPILOGUE_RELU_BIAS, EPI_RELU_BIAS);
SAME_VALUE(CUBLASLT_EPILOGUE_GELU, EPI_GELU);
SAME_VALUE(CUBLASLT_EPILOGUE_GELU_BIAS, EPI_GELU_BIAS);
SAME_VALUE(CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, LAYOUT_BATCH_COUNT);
SAME_VALUE(CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, LAYOUT_STRIDED_BATCH_OFFSET);
SAME_VALUE(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, PREF_MAX_WORKSPACE_BYTES);
SAME_VALUE(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, PREF_MIN_ALIGNMENT_A_BYTES);
SAME_VALUE(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, PREF_MIN_ALIGNMENT_B_BYTES);
SAME_VALUE(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, PREF_MIN_ALIGNMENT_C_BYTES);
SAME_VALUE(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, PREF_MIN_ALIGNMENT_D_BYTES);
#undef SAME_VALUE
_Static_assert(sizeof(LtAlgo) == sizeof(cublasLtMatmulAlgo_t), "cublasLtMatmulAlgo_t");
_Static_assert(sizeof(LtHeuristic) == sizeof(cublasLtMatmulHeuristicResult_t),
               "cublasLtMatmulHeuristicResult_t");
_Static_assert(sizeof(cublasStatus_t) == sizeof(LtStatus), "cublasStatus_t");
#endif

/* X(field, symbol, required, parameter list, return type). */
#define LT_FUNCTIONS(X)                                                                                      \
    X(create, "cublasLtCreate", 1, (LtHandle *), LtStatus)                                                   \
    X(destroy, "cublasLtDestroy", 1, (LtHandle), LtStatus)                                                   \
    X(get_version, "cublasLtGetVersion", 1, (void), size_t)                                                  \
    X(desc_create, "cublasLtMatmulDescCreate", 1, (LtDesc *, int, int), LtStatus)                            \
    X(desc_set, "cublasLtMatmulDescSetAttribute", 1, (LtDesc, int, const void *, size_t), LtStatus)          \
    X(desc_destroy, "cublasLtMatmulDescDestroy", 1, (LtDesc), LtStatus)                                      \
    X(layout_create, "cublasLtMatrixLayoutCreate", 1, (LtDesc *, int, uint64_t, uint64_t, int64_t),          \
      LtStatus)                                                                                              \
    X(layout_set, "cublasLtMatrixLayoutSetAttribute", 1, (LtDesc, int, const void *, size_t), LtStatus)      \
    X(layout_destroy, "cublasLtMatrixLayoutDestroy", 1, (LtDesc), LtStatus)                                  \
    X(pref_create, "cublasLtMatmulPreferenceCreate", 1, (LtDesc *), LtStatus)                                \
    X(pref_set, "cublasLtMatmulPreferenceSetAttribute", 1, (LtDesc, int, const void *, size_t), LtStatus)    \
    X(pref_destroy, "cublasLtMatmulPreferenceDestroy", 1, (LtDesc), LtStatus)                                \
    X(heuristic, "cublasLtMatmulAlgoGetHeuristic", 1,                                                        \
      (LtHandle, LtDesc, LtDesc, LtDesc, LtDesc, LtDesc, LtDesc, int, LtHeuristic *, int *), LtStatus)       \
    X(matmul, "cublasLtMatmul", 1,                                                                           \
      (LtHandle, LtDesc, const void *, const void *, LtDesc, const void *, LtDesc, const void *,             \
       const void *, LtDesc, void *, LtDesc, const LtAlgo *, void *, size_t, RtCuStream),                    \
      LtStatus)                                                                                              \
    X(status_name, "cublasLtGetStatusName", 0, (LtStatus), const char *)                                     \
    X(status_string, "cublasLtGetStatusString", 0, (LtStatus), const char *)

#define X_TYPEDEF(field, sym, req, params, ret) typedef ret(*PFN_##field) params;
LT_FUNCTIONS(X_TYPEDEF)
#undef X_TYPEDEF

#if defined(HAVE_LT_HEADERS)
/* Every pointer type has the size and arity of the header's prototype (the
 * handle types differ in name only: opaque struct pointers). */
#define SAME_ARITY(field, decl) _Static_assert(sizeof(PFN_##field) == sizeof(&decl), #decl)
SAME_ARITY(create, cublasLtCreate);
SAME_ARITY(matmul, cublasLtMatmul);
#undef SAME_ARITY
#endif

enum {
#define X_INDEX(field, sym, req, params, ret) F_##field,
    LT_FUNCTIONS(X_INDEX) F_COUNT
#undef X_INDEX
};

static const struct {
    const char *symbol;
    bool required;
} FUNCTIONS[F_COUNT] = {
#define X_NAME(field, sym, req, params, ret) [F_##field] = {sym, req},
    LT_FUNCTIONS(X_NAME)
#undef X_NAME
};

typedef struct {
    void *lib;
    char path[256];
#define X_FIELD(field, sym, req, params, ret) PFN_##field field;
    LT_FUNCTIONS(X_FIELD)
#undef X_FIELD
} LtApi;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static LtApi g_api;
static bool g_ok;
static char g_why[1024];

/* Opens `path`; false with the reason. */
static bool open_lib(const char *path, char *why, size_t n) {
    dlerror();
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        snprintf(why, n, "%s not found: %s", path, e ? e : "dlopen failed");
        return false;
    }
    void *slots[F_COUNT];
    for (int i = 0; i < F_COUNT; i++) {
        slots[i] = dlsym(lib, FUNCTIONS[i].symbol);
        if (!slots[i] && FUNCTIONS[i].required) {
            snprintf(why, n, "%s: missing entry point %s; not a cuBLASLt library, or too old", path,
                     FUNCTIONS[i].symbol);
            dlclose(lib);
            return false;
        }
    }
    memset(&g_api, 0, sizeof g_api);
    g_api.lib = lib;
    snprintf(g_api.path, sizeof g_api.path, "%s", path);
    int i = 0;
#define X_ASSIGN(field, sym, req, params, ret) memcpy(&g_api.field, &slots[i++], sizeof g_api.field);
    LT_FUNCTIONS(X_ASSIGN)
#undef X_ASSIGN
    return true;
}

static void load_once(void) {
    const char *env = getenv("DSC_LIBCUBLASLT");
    if (env && *env) {
        char why[900];
        if (!(g_ok = open_lib(env, why, sizeof why)))
            snprintf(g_why, sizeof g_why, "$DSC_LIBCUBLASLT: %s", why);
        return;
    }
    static const char *const names[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};
    char first[900] = "", other[200];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((g_ok = open_lib(names[i], i ? other : first, i ? sizeof other : sizeof first))) return;
    snprintf(g_why, sizeof g_why, "%s (also tried libcublasLt.so.12, libcublasLt.so)", first);
}

bool rt_cublaslt_available(char *why, size_t n) {
    pthread_once(&g_once, load_once);
    if (!g_ok && why && n) snprintf(why, n, "%s", g_why);
    return g_ok;
}

const char *rt_cublaslt_library(void) { return rt_cublaslt_available(NULL, 0) ? g_api.path : NULL; }

size_t rt_cublaslt_version(void) { return rt_cublaslt_available(NULL, 0) ? g_api.get_version() : 0; }

static const LtApi *api(Diag *d) {
    if (rt_cublaslt_available(NULL, 0)) return &g_api;
    diag_error(d, (Loc){0}, "cuBLASLt not available: %s", g_why);
    return NULL;
}

/* ---- statuses ------------------------------------------------------------------- */

static const char *status_name(LtStatus s, char *buf, size_t n) {
    if (g_api.status_name) {
        const char *nm = g_api.status_name(s);
        if (nm && *nm) return nm;
    }
    switch (s) {
    case 0: return "CUBLAS_STATUS_SUCCESS";
    case 1: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
    case 7: return "CUBLAS_STATUS_INVALID_VALUE";
    case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case 16: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: snprintf(buf, n, "cuBLAS status %d", s); return buf;
    }
}

/* Reports a failed call: `fmt` describes it (function and arguments). */
static bool check(LtStatus s, Diag *d, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool check(LtStatus s, Diag *d, const char *fmt, ...) {
    if (s == LT_OK) return true;
    char call[512], num[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(call, sizeof call, fmt, ap);
    va_end(ap);
    const char *name = status_name(s, num, sizeof num);
    const char *text = g_api.status_string ? g_api.status_string(s) : NULL;
    if (text && *text && strcmp(text, name) != 0)
        diag_error(d, (Loc){0}, "%s failed: %s (%s)", call, name, text);
    else
        diag_error(d, (Loc){0}, "%s failed: %s", call, name);
    return false;
}

/* ---- handles ---------------------------------------------------------------------- */

struct RtBlasHandle {
    LtHandle h;
};

bool rt_cublaslt_create(RtBlasHandle **out, Diag *d) {
    *out = NULL;
    const LtApi *a = api(d);
    if (!a) return false;
    RtBlasHandle *h = calloc(1, sizeof *h);
    if (!h) {
        diag_error(d, (Loc){0}, "out of memory");
        return false;
    }
    if (!check(a->create(&h->h), d, "cublasLtCreate")) {
        free(h);
        return false;
    }
    *out = h;
    return true;
}

bool rt_cublaslt_destroy(RtBlasHandle *h, Diag *d) {
    if (!h) return true;
    const LtApi *a = api(d);
    bool ok = a && check(a->destroy(h->h), d, "cublasLtDestroy");
    free(h);
    return ok;
}

/* ---- shapes -------------------------------------------------------------------------- */

const char *rt_gemm_epilogue_name(RtGemmEpilogue e) {
    switch (e) {
    case RT_GEMM_EPI_NONE: return "none";
    case RT_GEMM_EPI_BIAS: return "bias";
    case RT_GEMM_EPI_RELU: return "relu";
    case RT_GEMM_EPI_RELU_BIAS: return "relu+bias";
    case RT_GEMM_EPI_GELU_TANH: return "gelu_tanh";
    case RT_GEMM_EPI_GELU_TANH_BIAS: return "gelu_tanh+bias";
    }
    return "?";
}

static bool has_bias(RtGemmEpilogue e) {
    return e == RT_GEMM_EPI_BIAS || e == RT_GEMM_EPI_RELU_BIAS || e == RT_GEMM_EPI_GELU_TANH_BIAS;
}

/* A row-major view X (R x C, element (r, c) at r*s_r + c*s_c) as a
 * column-major cuBLASLt matrix: op(stored) == X.  False if neither index is
 * contiguous (or the other stride would overlap columns). */
typedef struct {
    int op;
    uint64_t rows, cols; /* of the stored matrix */
    int64_t ld;
} ColMajor;

static bool col_major(int64_t R, int64_t C, int64_t s_r, int64_t s_c, ColMajor *out) {
    /* the stride of an index of extent 1 is never used: give it the dense value */
    if (R == 1) s_r = s_c == 1 ? C : 1;
    if (C == 1) s_c = s_r == 1 ? R : 1;
    if (s_r == 1 && s_c >= R) { /* column-major already: X itself */
        *out = (ColMajor){OP_N, (uint64_t)R, (uint64_t)C, s_c};
        return true;
    }
    if (s_c == 1 && s_r >= C) { /* row-major: X^T is column-major, op = T */
        *out = (ColMajor){OP_T, (uint64_t)C, (uint64_t)R, s_r};
        return true;
    }
    return false;
}

/* The three cuBLASLt matrices of a shape: A' = B^T (N x K), B' = A^T (K x M), D' = D^T (N x M). */
static bool lt_matrices(const RtGemmShape *s, ColMajor *a, ColMajor *b, ColMajor *dd, char *why, size_t n) {
    if (!col_major(s->n, s->k, s->sbn, s->sbk, a)) {
        snprintf(why, n, "B (k stride %lld, n stride %lld) has no contiguous index", (long long)s->sbk,
                 (long long)s->sbn);
        return false;
    }
    if (!col_major(s->k, s->m, s->sak, s->sam, b)) {
        snprintf(why, n, "A (m stride %lld, k stride %lld) has no contiguous index", (long long)s->sam,
                 (long long)s->sak);
        return false;
    }
    *dd = (ColMajor){OP_N, (uint64_t)s->n, (uint64_t)s->m, s->m == 1 ? s->n : s->sdm};
    if (dd->ld < s->n) {
        snprintf(why, n, "D (m stride %lld, N %lld) overlaps its rows", (long long)s->sdm, (long long)s->n);
        return false;
    }
    return true;
}

static int cuda_type(DType t) {
    switch (t) {
    case DT_F16: return R_16F;
    case DT_BF16: return R_16BF;
    default: return R_32F;
    }
}

bool rt_gemm_shape_expressible(const RtGemmShape *s, char *why, size_t n) {
    if (s->m < 1 || s->n < 1 || s->k < 1 || s->batch < 1) {
        snprintf(why, n, "an empty GEMM (M %lld, N %lld, K %lld, batch %lld)", (long long)s->m,
                 (long long)s->n, (long long)s->k, (long long)s->batch);
        return false;
    }
    if (s->batch > INT32_MAX || s->m > INT32_MAX || s->n > INT32_MAX || s->k > INT32_MAX) {
        snprintf(why, n, "a dimension beyond 2^31");
        return false;
    }
    ColMajor a, b, dd;
    return lt_matrices(s, &a, &b, &dd, why, n);
}

/* ---- operations ------------------------------------------------------------------------ */

struct RtGemmOp {
    RtGemmShape s;
    LtDesc desc, la, lb, ld, pref;
    LtAlgo algo;
    size_t workspace;
    float alpha, beta;
};

bool rt_gemm_op_destroy(RtGemmOp *op, Diag *d) {
    if (!op) return true;
    const LtApi *a = api(d);
    bool ok = a != NULL;
    if (a && op->pref) ok = check(a->pref_destroy(op->pref), d, "cublasLtMatmulPreferenceDestroy") && ok;
    if (a && op->ld) ok = check(a->layout_destroy(op->ld), d, "cublasLtMatrixLayoutDestroy(D)") && ok;
    if (a && op->lb) ok = check(a->layout_destroy(op->lb), d, "cublasLtMatrixLayoutDestroy(B)") && ok;
    if (a && op->la) ok = check(a->layout_destroy(op->la), d, "cublasLtMatrixLayoutDestroy(A)") && ok;
    if (a && op->desc) ok = check(a->desc_destroy(op->desc), d, "cublasLtMatmulDescDestroy") && ok;
    free(op);
    return ok;
}

static bool layout(const LtApi *a, LtDesc *l, const char *which, int type, const ColMajor *c, int64_t batch,
                   int64_t stride, Diag *d) {
    if (!check(a->layout_create(l, type, c->rows, c->cols, c->ld), d,
               "cublasLtMatrixLayoutCreate(%s: %llu x %llu, ld %lld)", which, (unsigned long long)c->rows,
               (unsigned long long)c->cols, (long long)c->ld))
        return false;
    if (batch <= 1) return true;
    int32_t count = (int32_t)batch;
    return check(a->layout_set(*l, LAYOUT_BATCH_COUNT, &count, sizeof count), d,
                 "cublasLtMatrixLayoutSetAttribute(%s, BATCH_COUNT = %d)", which, count) &&
           check(a->layout_set(*l, LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride), d,
                 "cublasLtMatrixLayoutSetAttribute(%s, STRIDED_BATCH_OFFSET = %lld)", which,
                 (long long)stride);
}

static uint32_t lt_epilogue(RtGemmEpilogue e) {
    switch (e) {
    case RT_GEMM_EPI_NONE: return EPI_DEFAULT;
    case RT_GEMM_EPI_BIAS: return EPI_BIAS;
    case RT_GEMM_EPI_RELU: return EPI_RELU;
    case RT_GEMM_EPI_RELU_BIAS: return EPI_RELU_BIAS;
    case RT_GEMM_EPI_GELU_TANH: return EPI_GELU;
    case RT_GEMM_EPI_GELU_TANH_BIAS: return EPI_GELU_BIAS;
    }
    return EPI_DEFAULT;
}

bool rt_gemm_op_create(RtBlasHandle *h, const RtGemmShape *s, size_t workspace, RtGemmOp **out, char *why,
                       size_t n, Diag *d) {
    *out = NULL;
    const LtApi *a = api(d);
    if (!a) return false;
    ColMajor ma, mb, md;
    if (!rt_gemm_shape_expressible(s, why, n) || !lt_matrices(s, &ma, &mb, &md, why, n))
        return true; /* not expressible: no op, no error */
    RtGemmOp *op = calloc(1, sizeof *op);
    if (!op) {
        diag_error(d, (Loc){0}, "out of memory");
        return false;
    }
    op->s = *s;
    op->alpha = 1.0f;
    op->beta = 0.0f;
    int32_t ta = ma.op, tb = mb.op, bias_type = cuda_type(s->bias);
    uint32_t epi = lt_epilogue(s->epi);
    uint64_t ws = workspace;
    uint32_t align = s->align ? s->align : 256;
    bool ok =
        check(a->desc_create(&op->desc, COMPUTE_32F, R_32F), d,
              "cublasLtMatmulDescCreate(CUBLAS_COMPUTE_32F, CUDA_R_32F)") &&
        check(a->desc_set(op->desc, DESC_TRANSA, &ta, sizeof ta), d,
              "cublasLtMatmulDescSetAttribute(TRANSA = %s)", ta == OP_T ? "T" : "N") &&
        check(a->desc_set(op->desc, DESC_TRANSB, &tb, sizeof tb), d,
              "cublasLtMatmulDescSetAttribute(TRANSB = %s)", tb == OP_T ? "T" : "N") &&
        check(a->desc_set(op->desc, DESC_EPILOGUE, &epi, sizeof epi), d,
              "cublasLtMatmulDescSetAttribute(EPILOGUE = %s)", rt_gemm_epilogue_name(s->epi)) &&
        (!has_bias(s->epi) ||
         check(a->desc_set(op->desc, DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type), d,
               "cublasLtMatmulDescSetAttribute(BIAS_DATA_TYPE = %s)", dtype_name(s->bias))) &&
        layout(a, &op->la, "A", cuda_type(s->ab), &ma, s->batch, s->sbb, d) &&
        layout(a, &op->lb, "B", cuda_type(s->ab), &mb, s->batch, s->sab, d) &&
        layout(a, &op->ld, "D", cuda_type(s->d), &md, s->batch, s->sdb, d) &&
        check(a->pref_create(&op->pref), d, "cublasLtMatmulPreferenceCreate") &&
        check(a->pref_set(op->pref, PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws), d,
              "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES = %llu)", (unsigned long long)ws);
    static const int aligns[] = {PREF_MIN_ALIGNMENT_A_BYTES, PREF_MIN_ALIGNMENT_B_BYTES,
                                 PREF_MIN_ALIGNMENT_C_BYTES, PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; ok && i < 4; i++)
        ok = check(a->pref_set(op->pref, aligns[i], &align, sizeof align), d,
                   "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT_%c_BYTES = %u)", "ABCD"[i], align);
    LtHeuristic res;
    memset(&res, 0, sizeof res);
    int found = 0;
    if (ok) {
        LtStatus st = a->heuristic(h->h, op->desc, op->la, op->lb, op->ld, op->ld, op->pref, 1, &res, &found);
        if (st == LT_STATUS_NOT_SUPPORTED) {
            found = 0;
        } else {
            ok = check(st, d, "cublasLtMatmulAlgoGetHeuristic");
        }
    }
    if (ok && (found < 1 || res.state != LT_OK)) {
        snprintf(why, n,
                 "cublasLtMatmulAlgoGetHeuristic has no algorithm for %s x %s -> %s, M %lld N %lld K %lld, "
                 "batch %lld, epilogue %s",
                 dtype_name(s->ab), dtype_name(s->ab), dtype_name(s->d), (long long)s->m, (long long)s->n,
                 (long long)s->k, (long long)s->batch, rt_gemm_epilogue_name(s->epi));
        return rt_gemm_op_destroy(op, d);
    }
    if (!ok) {
        rt_gemm_op_destroy(op, d);
        return false;
    }
    op->algo = res.algo;
    op->workspace = res.workspace_size;
    *out = op;
    return true;
}

bool rt_gemm_op_run(RtBlasHandle *h, RtGemmOp *op, RtCuDevptr A, RtCuDevptr B, RtCuDevptr D, RtCuDevptr bias,
                    RtCuDevptr workspace, size_t workspace_bytes, RtCuStream stream, Diag *d) {
    const LtApi *a = api(d);
    if (!a) return false;
    if (has_bias(op->s.epi)) {
        void *p = (void *)(uintptr_t)bias;
        if (!check(a->desc_set(op->desc, DESC_BIAS_POINTER, &p, sizeof p), d,
                   "cublasLtMatmulDescSetAttribute(BIAS_POINTER)"))
            return false;
    }
    if (op->workspace > workspace_bytes) {
        diag_error(d, (Loc){0}, "internal error: cuBLASLt wants %zu bytes of workspace, %zu available",
                   op->workspace, workspace_bytes);
        return false;
    }
    /* cuBLASLt's A is dsc's B and its B dsc's A (see the top of the file) */
    return check(a->matmul(h->h, op->desc, &op->alpha, (const void *)(uintptr_t)B, op->la,
                           (const void *)(uintptr_t)A, op->lb, &op->beta, (const void *)(uintptr_t)D, op->ld,
                           (void *)(uintptr_t)D, op->ld, &op->algo, (void *)(uintptr_t)workspace,
                           workspace_bytes, stream),
                 d, "cublasLtMatmul(%s, M %lld N %lld K %lld, batch %lld, %s)", dtype_name(op->s.ab),
                 (long long)op->s.m, (long long)op->s.n, (long long)op->s.k, (long long)op->s.batch,
                 rt_gemm_epilogue_name(op->s.epi));
}
