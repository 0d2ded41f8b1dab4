/* Scalar values of each dtype: IEEE half and bfloat16 conversions (round to
 * nearest even) and the rule for storing a double as a dtype, shared by the
 * interpreter, the tensor readers and writers and constant folding, so a value
 * folded at compile time is exactly the value the runtime would store. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ir.h"

float ir_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t ir_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xff, man = x & 0x7fffff;
    if (exp == 255) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into exp: correct */
    return (uint16_t)(sign | half);
}

float ir_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t ir_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

static int64_t saturate(double v, int64_t lo, int64_t hi) {
    if (isnan(v)) return 0;
    if (v <= (double)lo) return lo;
    if (v >= (double)hi) return hi;
    return (int64_t)v;
}

int64_t ir_dtype_round_i64(double v) { return saturate(v, INT64_MIN, INT64_MAX); }

double ir_dtype_round(DType t, double v) {
    switch (t) {
    case DT_F32: return (float)v;
    case DT_F16: return ir_f16_to_f32(ir_f32_to_f16((float)v));
    case DT_BF16: return ir_bf16_to_f32(ir_f32_to_bf16((float)v));
    case DT_I8: return (double)saturate(v, INT8_MIN, INT8_MAX);
    case DT_I32: return (double)saturate(v, INT32_MIN, INT32_MAX);
    case DT_I64: return (double)ir_dtype_round_i64(v);
    case DT_BOOL: return v != 0;
    default: return v;
    }
}

int64_t ir_u64_to_i64(uint64_t u) {
    return u <= (uint64_t)INT64_MAX ? (int64_t)u : -(int64_t)(UINT64_MAX - u) - 1;
}

int64_t ir_wrap_int(int64_t v, DType dt) {
    switch (dt) {
    case DT_I8: {
        uint8_t u = (uint8_t)v;
        return u < 128 ? (int64_t)u : (int64_t)u - 256;
    }
    case DT_I32: {
        uint32_t u = (uint32_t)v;
        return u <= (uint32_t)INT32_MAX ? (int64_t)u : (int64_t)u - ((int64_t)1 << 32);
    }
    case DT_BOOL: return v != 0;
    default: return v;
    }
}
