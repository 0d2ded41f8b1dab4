/* A stand-in cuBLASLt for tests without a GPU (tests/unit/test_cuda_exec.c
 * compiles it with `cc -shared` and loads it through $DSC_LIBCUBLASLT).
 *
 * "Device memory" is host memory (the fake driver's), so cublasLtMatmul
 * computes on the host, exactly as cuBLASLt documents it -- column-major:
 *     D = epilogue(alpha * op(A) op(B) + beta * C)
 * op(A) is m x k, op(B) k x n, C and D m x n; a layout is a column-major
 * matrix of `rows` x `cols` with leading dimension ld (element (r, c) at
 * r + c * ld), batch b at b * STRIDED_BATCH_OFFSET; op T reads the stored
 * matrix transposed.  Epilogues: BIAS adds bias[row] (a vector over the rows
 * of D, broadcast over the columns), RELU max(x, 0), GELU the tanh
 * approximation, in that order (bias first).  Sums in f32, in k order.
 * Values of D are rounded to its type (f16 and bf16 to nearest even).
 *
 * It checks what cuBLASLt checks where dsc could get it wrong: the size of
 * every attribute, ld >= rows, matching shapes and batch counts, the type
 * combinations of CUBLAS_COMPUTE_32F (f32 x f32 -> f32, f16 x f16 -> f16 or
 * f32, bf16 x bf16 -> bf16 or f32; the bias D's type or f32), the compute
 * type (only CUBLAS_COMPUTE_32F: anything else, TF32 included, is
 * CUBLAS_STATUS_NOT_SUPPORTED), an algorithm from the heuristic, a bias
 * pointer for a bias epilogue.
 *
 * It counts what is live (handles, descriptors, layouts, preferences) and
 * the calls, read by the test through fake_cublaslt_stat, and fails on
 * request:
 *   FAKE_CUBLASLT_FAIL=NAME    the function NAME returns FAKE_CUBLASLT_STATUS
 *                              (default 13, CUBLAS_STATUS_EXECUTION_FAILED)
 *   FAKE_CUBLASLT_NO_ALGO=1    the heuristic finds no algorithm */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int S;
enum {
    OK = 0,
    ALLOC_FAILED = 3,
    INVALID_VALUE = 7,
    NOT_SUPPORTED = 15,
    R32F = 0,
    R16F = 2,
    R16BF = 14,
    COMPUTE_32F = 68,
};

static long live_handles, live_descs, live_layouts, live_prefs, matmuls, heuristics, last_compute = -1;

long fake_cublaslt_stat(const char *what) {
    struct {
        const char *k;
        long v;
    } t[] = {{"handles", live_handles}, {"descs", live_descs}, {"layouts", live_layouts},
             {"prefs", live_prefs},     {"matmuls", matmuls},  {"heuristics", heuristics},
             {"compute", last_compute}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(what, t[i].k)) return t[i].v;
    return -1;
}

static S injected(const char *fn) {
    const char *f = getenv("FAKE_CUBLASLT_FAIL");
    if (!f || strcmp(f, fn) != 0) return OK;
    const char *s = getenv("FAKE_CUBLASLT_STATUS");
    return s && *s ? atoi(s) : 13;
}

const char *cublasLtGetStatusName(S s) {
    switch (s) {
    case 0: return "CUBLAS_STATUS_SUCCESS";
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
    case 7: return "CUBLAS_STATUS_INVALID_VALUE";
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
    }
}

const char *cublasLtGetStatusString(S s) {
    switch (s) {
    case 0: return "success";
    case 3: return "the resource allocation failed";
    case 7: return "an invalid numeric value was used as an argument";
    case 13: return "the GPU program failed to execute";
    case 15: return "the functionality requested is not supported";
    default: return "unknown error";
    }
}

size_t cublasLtGetVersion(void) { return 130000; }

/* ---- handles and descriptors ---- */

typedef struct {
    int magic;
} Handle;

S cublasLtCreate(Handle **h) {
    S r = injected("cublasLtCreate");
    if (r) return r;
    *h = calloc(1, sizeof **h);
    (*h)->magic = 0x1f;
    live_handles++;
    return OK;
}

S cublasLtDestroy(Handle *h) {
    if (!h || h->magic != 0x1f) return INVALID_VALUE;
    h->magic = 0;
    free(h);
    live_handles--;
    return injected("cublasLtDestroy");
}

typedef struct {
    int magic;
    int compute, scale;
    int32_t transa, transb, bias_type;
    uint32_t epilogue;
    const void *bias;
} Desc;

S cublasLtMatmulDescCreate(Desc **d, int compute, int scale) {
    S r = injected("cublasLtMatmulDescCreate");
    if (r) return r;
    *d = calloc(1, sizeof **d);
    **d = (Desc){0xde, compute, scale, 0, 0, -1, 1, NULL};
    live_descs++;
    last_compute = compute;
    return OK;
}

S cublasLtMatmulDescDestroy(Desc *d) {
    if (!d || d->magic != 0xde) return INVALID_VALUE;
    d->magic = 0;
    free(d);
    live_descs--;
    return OK;
}

S cublasLtMatmulDescSetAttribute(Desc *d, int attr, const void *buf, size_t n) {
    if (!d || d->magic != 0xde || !buf) return INVALID_VALUE;
    switch (attr) {
    case 3:
        if (n != 4) return INVALID_VALUE;
        memcpy(&d->transa, buf, 4);
        return d->transa == 0 || d->transa == 1 ? OK : INVALID_VALUE;
    case 4:
        if (n != 4) return INVALID_VALUE;
        memcpy(&d->transb, buf, 4);
        return d->transb == 0 || d->transb == 1 ? OK : INVALID_VALUE;
    case 7:
        if (n != 4) return INVALID_VALUE;
        memcpy(&d->epilogue, buf, 4);
        return OK;
    case 8:
        if (n != sizeof(void *)) return INVALID_VALUE;
        memcpy(&d->bias, buf, n);
        return OK;
    case 26:
        if (n != 4) return INVALID_VALUE;
        memcpy(&d->bias_type, buf, 4);
        return OK;
    default: return INVALID_VALUE; /* dsc sets no other attribute */
    }
}

typedef struct {
    int magic;
    int type;
    uint64_t rows, cols;
    int64_t ld, stride;
    int32_t batch;
} Layout;

S cublasLtMatrixLayoutCreate(Layout **l, int type, uint64_t rows, uint64_t cols, int64_t ld) {
    S r = injected("cublasLtMatrixLayoutCreate");
    if (r) return r;
    if (ld < (int64_t)rows || ld < 1) return INVALID_VALUE;
    *l = calloc(1, sizeof **l);
    **l = (Layout){0x1a, type, rows, cols, ld, 0, 1};
    live_layouts++;
    return OK;
}

S cublasLtMatrixLayoutDestroy(Layout *l) {
    if (!l || l->magic != 0x1a) return INVALID_VALUE;
    l->magic = 0;
    free(l);
    live_layouts--;
    return OK;
}

S cublasLtMatrixLayoutSetAttribute(Layout *l, int attr, const void *buf, size_t n) {
    if (!l || l->magic != 0x1a || !buf) return INVALID_VALUE;
    if (attr == 5 && n == 4) {
        memcpy(&l->batch, buf, 4);
        return l->batch >= 1 ? OK : INVALID_VALUE;
    }
    if (attr == 6 && n == 8) {
        memcpy(&l->stride, buf, 8);
        return OK;
    }
    return INVALID_VALUE;
}

typedef struct {
    int magic;
    uint64_t workspace;
    uint32_t align[4];
} Pref;

S cublasLtMatmulPreferenceCreate(Pref **p) {
    S r = injected("cublasLtMatmulPreferenceCreate");
    if (r) return r;
    *p = calloc(1, sizeof **p);
    (*p)->magic = 0x9f;
    live_prefs++;
    return OK;
}

S cublasLtMatmulPreferenceDestroy(Pref *p) {
    if (!p || p->magic != 0x9f) return INVALID_VALUE;
    p->magic = 0;
    free(p);
    live_prefs--;
    return OK;
}

S cublasLtMatmulPreferenceSetAttribute(Pref *p, int attr, const void *buf, size_t n) {
    if (!p || p->magic != 0x9f || !buf) return INVALID_VALUE;
    if (attr == 1 && n == 8) {
        memcpy(&p->workspace, buf, 8);
        return OK;
    }
    if (attr >= 5 && attr <= 8 && n == 4) {
        memcpy(&p->align[attr - 5], buf, 4);
        return OK;
    }
    return INVALID_VALUE;
}

/* ---- checking a problem ---- */

typedef struct {
    uint64_t data[8];
} Algo;

typedef struct {
    Algo algo;
    size_t workspace;
    S state;
    float waves;
    int reserved[4];
} Result;

enum { ALGO_MAGIC = 0x600d };

static int bias_of(uint32_t e) { return (e & 4) != 0; }

/* The problem's m, n, k and batch, or a status. */
static S check(const Desc *d, const Layout *a, const Layout *b, const Layout *c, const Layout *dd,
               uint64_t *m, uint64_t *n, uint64_t *k) {
    if (!d || d->magic != 0xde || !a || a->magic != 0x1a || !b || b->magic != 0x1a || !c ||
        c->magic != 0x1a || !dd || dd->magic != 0x1a)
        return INVALID_VALUE;
    if (d->compute != COMPUTE_32F || d->scale != R32F) return NOT_SUPPORTED;
    uint64_t am = d->transa ? a->cols : a->rows, ak = d->transa ? a->rows : a->cols;
    uint64_t bk = d->transb ? b->cols : b->rows, bn = d->transb ? b->rows : b->cols;
    if (ak != bk || dd->rows != am || dd->cols != bn || c->rows != dd->rows || c->cols != dd->cols)
        return INVALID_VALUE;
    if (a->batch != b->batch || a->batch != dd->batch || c->batch != dd->batch) return INVALID_VALUE;
    if (a->type != b->type) return NOT_SUPPORTED;
    if (a->type == R32F && dd->type != R32F) return NOT_SUPPORTED;
    if ((a->type == R16F || a->type == R16BF) && dd->type != a->type && dd->type != R32F)
        return NOT_SUPPORTED;
    if (a->type != R32F && a->type != R16F && a->type != R16BF) return NOT_SUPPORTED;
    if (c->type != dd->type) return NOT_SUPPORTED;
    uint32_t e = d->epilogue;
    if (e != 1 && e != 2 && e != 4 && e != 6 && e != 32 && e != 36) return NOT_SUPPORTED;
    if (bias_of(e) && d->bias_type != -1 && d->bias_type != dd->type && d->bias_type != R32F)
        return NOT_SUPPORTED;
    *m = am;
    *n = bn;
    *k = ak;
    return OK;
}

S cublasLtMatmulAlgoGetHeuristic(Handle *h, Desc *d, Layout *a, Layout *b, Layout *c, Layout *dd, Pref *p,
                                 int want, Result *res, int *count) {
    S r = injected("cublasLtMatmulAlgoGetHeuristic");
    if (r) return r;
    if (!h || h->magic != 0x1f || !p || p->magic != 0x9f || want < 1 || !res || !count) return INVALID_VALUE;
    heuristics++;
    uint64_t m, n, k;
    r = check(d, a, b, c, dd, &m, &n, &k);
    if (r == NOT_SUPPORTED) return NOT_SUPPORTED;
    if (r) return r;
    *count = 0;
    const char *no = getenv("FAKE_CUBLASLT_NO_ALGO");
    if (no && *no && strcmp(no, "0") != 0) return OK;
    memset(res, 0, sizeof *res);
    res->algo.data[0] = ALGO_MAGIC;
    res->workspace = p->workspace >= 1024 ? 1024 : 0;
    res->state = OK;
    res->waves = 1;
    *count = 1;
    return OK;
}

/* ---- values ---- */

static float from_bits16(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, f = h & 1023, x;
    if (e == 0) {
        float v = ldexpf((float)f, -24);
        return s ? -v : v;
    }
    if (e == 31)
        x = s | 0x7f800000u | (f << 13);
    else
        x = s | ((e + 112) << 23) | (f << 13);
    float v;
    memcpy(&v, &x, 4);
    return v;
}

static uint16_t to_f16(float v) {
    uint32_t x;
    memcpy(&x, &v, 4);
    uint32_t s = (x >> 16) & 0x8000;
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(s | 0x7e00);
    float a = fabsf(v);
    if (a >= 65520.0f) return (uint16_t)(s | 0x7c00);
    if (a < ldexpf(1, -14)) { /* subnormal: multiples of 2^-24, nearest even */
        float q = nearbyintf(a * ldexpf(1, 24));
        return (uint16_t)(s | (uint32_t)q);
    }
    int e;
    float m = frexpf(a, &e);           /* a = m 2^e, m in [0.5, 1) */
    float q = nearbyintf(m * 2048.0f); /* 11 significant bits */
    if (q == 2048.0f) {
        q = 1024.0f;
        e++;
    }
    uint32_t be = (uint32_t)(e - 1 + 15);
    if (be >= 31) return (uint16_t)(s | 0x7c00);
    return (uint16_t)(s | (be << 10) | ((uint32_t)q - 1024));
}

static float from_bf16(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float v;
    memcpy(&v, &x, 4);
    return v;
}

static uint16_t to_bf16(float v) {
    uint32_t x;
    memcpy(&x, &v, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

static float get(const void *p, int type, int64_t i) {
    if (type == R32F) return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    return type == R16F ? from_bits16(h) : from_bf16(h);
}

static void put(void *p, int type, int64_t i, float v) {
    if (type == R32F)
        ((float *)p)[i] = v;
    else
        ((uint16_t *)p)[i] = type == R16F ? to_f16(v) : to_bf16(v);
}

static size_t size_of(int type) { return type == R32F ? 4 : 2; }

static float gelu_tanh(float x) {
    return 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)));
}

S cublasLtMatmul(Handle *h, Desc *d, const void *alpha, const void *A, Layout *la, const void *B, Layout *lb,
                 const void *beta, const void *C, Layout *lc, void *D, Layout *ld, const Algo *algo, void *ws,
                 size_t wsbytes, void *stream) {
    (void)stream;
    S r = injected("cublasLtMatmul");
    if (r) return r;
    if (!h || h->magic != 0x1f || !alpha || !beta || !A || !B || !D || !algo || algo->data[0] != ALGO_MAGIC)
        return INVALID_VALUE;
    if (wsbytes > 0 && !ws) return INVALID_VALUE;
    uint64_t m, n, k;
    r = check(d, la, lb, lc, ld, &m, &n, &k);
    if (r) return r;
    uint32_t e = d->epilogue;
    int bt = d->bias_type == -1 ? ld->type : d->bias_type;
    if (bias_of(e) && !d->bias) return INVALID_VALUE;
    float al = *(const float *)alpha, be = *(const float *)beta;
    matmuls++;
    for (int32_t b = 0; b < ld->batch; b++) {
        const char *pa = (const char *)A + (size_t)(b * la->stride) * size_of(la->type);
        const char *pb = (const char *)B + (size_t)(b * lb->stride) * size_of(lb->type);
        const char *pc = C ? (const char *)C + (size_t)(b * lc->stride) * size_of(lc->type) : NULL;
        char *pd = (char *)D + (size_t)(b * ld->stride) * size_of(ld->type);
        for (uint64_t j = 0; j < n; j++)
            for (uint64_t i = 0; i < m; i++) {
                float acc = 0;
                for (uint64_t p = 0; p < k; p++) {
                    int64_t ia =
                        d->transa ? (int64_t)(p + i * (uint64_t)la->ld) : (int64_t)(i + p * (uint64_t)la->ld);
                    int64_t ib =
                        d->transb ? (int64_t)(j + p * (uint64_t)lb->ld) : (int64_t)(p + j * (uint64_t)lb->ld);
                    acc += get(pa, la->type, ia) * get(pb, lb->type, ib);
                }
                float x = al * acc;
                if (be != 0) x += be * get(pc, lc->type, (int64_t)(i + j * (uint64_t)lc->ld));
                if (bias_of(e)) x += get(d->bias, bt, (int64_t)i);
                if (e & 2) x = x > 0 ? x : 0;
                if (e & 32) x = gelu_tanh(x);
                put(pd, ld->type, (int64_t)(i + j * (uint64_t)ld->ld), x);
            }
    }
    return OK;
}
