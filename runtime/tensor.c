/* Run-time tensors and the half-precision conversions (see tensor.h). */
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t rt_numel(int rank, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(n, shape[i], &n)) return -1;
    }
    return n;
}

Tensor *rt_tensor_new(DType dtype, int rank, const int64_t *shape) {
    if (rank < 0 || rank > IR_MAX_RANK) return NULL;
    int64_t n = rt_numel(rank, shape);
    size_t bytes;
    if (n < 0 || __builtin_mul_overflow((size_t)n, (size_t)dtype_size(dtype), &bytes)) return NULL;
    Tensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->data = calloc(bytes ? bytes : 1, 1);
    if (!t->data) {
        free(t);
        return NULL;
    }
    t->dtype = dtype;
    t->rank = rank;
    if (rank) memcpy(t->shape, shape, sizeof(int64_t) * (size_t)rank);
    t->nbytes = bytes;
    t->owned = true;
    return t;
}

Tensor *rt_tensor_wrap(DType dtype, int rank, const int64_t *shape, void *data) {
    if (rank < 0 || rank > IR_MAX_RANK) return NULL;
    int64_t n = rt_numel(rank, shape);
    if (n < 0) return NULL;
    Tensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->dtype = dtype;
    t->rank = rank;
    if (rank) memcpy(t->shape, shape, sizeof(int64_t) * (size_t)rank);
    t->data = data;
    t->nbytes = (size_t)n * (size_t)dtype_size(dtype);
    return t;
}

void rt_tensor_free(Tensor *t) {
    if (!t) return;
    if (t->owned) free(t->data);
    free(t);
}

void rt_shape_str(DType dtype, int rank, const int64_t *shape, char *buf, size_t n) {
    size_t len = (size_t)snprintf(buf, n, "%s[", dtype_name(dtype));
    for (int i = 0; i < rank && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

double rt_get(const Tensor *t, int64_t i) {
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case DT_F32: { float v; memcpy(&v, p + i * 4, 4); return v; }
    case DT_F16: { uint16_t v; memcpy(&v, p + i * 2, 2); return ir_f16_to_f32(v); }
    case DT_BF16: { uint16_t v; memcpy(&v, p + i * 2, 2); return ir_bf16_to_f32(v); }
    case DT_I8: return (double)((const int8_t *)p)[i];
    case DT_I32: { int32_t v; memcpy(&v, p + i * 4, 4); return v; }
    case DT_I64: { int64_t v; memcpy(&v, p + i * 8, 8); return (double)v; }
    case DT_BOOL: return p[i] != 0;
    default: return 0;
    }
}

void rt_set(Tensor *t, int64_t i, double v) {
    unsigned char *p = t->data;
    double r = ir_dtype_round(t->dtype, v);
    switch (t->dtype) {
    case DT_F32: { float f = (float)r; memcpy(p + i * 4, &f, 4); return; }
    case DT_F16: { uint16_t h = ir_f32_to_f16((float)r); memcpy(p + i * 2, &h, 2); return; }
    case DT_BF16: { uint16_t h = ir_f32_to_bf16((float)r); memcpy(p + i * 2, &h, 2); return; }
    case DT_I8: ((int8_t *)p)[i] = (int8_t)r; return;
    case DT_I32: { int32_t x = (int32_t)r; memcpy(p + i * 4, &x, 4); return; }
    case DT_I64: { int64_t x = ir_dtype_round_i64(v); memcpy(p + i * 8, &x, 8); return; }
    case DT_BOOL: p[i] = r != 0; return;
    default: return;
    }
}

bool rt_tensor_check(const Tensor *t, char *why, size_t n) {
    if (!t || (unsigned)t->dtype >= DT_COUNT || t->rank < 0 || t->rank > IR_MAX_RANK) {
        snprintf(why, n, "invalid tensor (bad dtype or rank)");
        return false;
    }
    int64_t numel = rt_numel(t->rank, t->shape);
    size_t need;
    if (numel < 0 || (uint64_t)numel > SIZE_MAX ||
        __builtin_mul_overflow((size_t)numel, (size_t)dtype_size(t->dtype), &need)) {
        snprintf(why, n, "negative dimension or element count overflow");
        return false;
    }
    if (need != t->nbytes) {
        char sh[256];
        rt_shape_str(t->dtype, t->rank, t->shape, sh, sizeof sh);
        snprintf(why, n, "nbytes is %zu but %s needs %zu", t->nbytes, sh, need);
        return false;
    }
    if (need && !t->data) {
        snprintf(why, n, "no data");
        return false;
    }
    return true;
}

bool rt_tensor_fwrite(FILE *f, const Tensor *t) {
    if (t->nbytes == 0) return true;
    if (t->dtype != DT_BOOL) return fwrite(t->data, 1, t->nbytes, f) == t->nbytes;
    unsigned char chunk[4096];
    const unsigned char *p = t->data;
    for (size_t i = 0; i < t->nbytes; i += sizeof chunk) {
        size_t k = t->nbytes - i < sizeof chunk ? t->nbytes - i : sizeof chunk;
        for (size_t j = 0; j < k; j++) chunk[j] = p[i + j] != 0;
        if (fwrite(chunk, 1, k, f) != k) return false;
    }
    return true;
}
