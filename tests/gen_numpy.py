#!/usr/bin/env python3
"""Writes the numpy-checked test cases for the reference interpreter.

Usage: gen_numpy.py OUTDIR

For every case, OUTDIR/<case>/ receives
    model.dsg             a small DSG model
    model.safetensors     its weights (written here with the standard library)
    input_<i>.npy         its inputs, in the order of the `input` declarations
    expected_<i>.npy      numpy's outputs, in the order of the `output`s
and OUTDIR/cases.txt gets one line `name ninputs noutputs` per case.
tests/unit/test_numpy.c runs the models and compares (tolerances are there and
in docs/testing.md).

How the reference is computed.  Spec section 4: f16/bf16 values are computed
as if in f32 and rounded (to nearest even) when a result is stored.  Here every
operator is computed in float64 and its result rounded to the storage dtype
(through float32 first, exactly like the C side), so each operator output in a
chain is rounded once; composite operators (layernorm, softmax, matmul, linear,
conv, attention, ...) round only their final result.  bfloat16 rounding is
emulated on the float32 bit pattern with round-to-nearest-even.  bf16 tensors
are stored as '<u2' raw bits (dsc's .npy convention, runtime/npy.h).  Integer
operators use numpy's own wrapping arithmetic in the operand dtype; division
truncates toward zero (ONNX Div).

Inputs are fresh random values, seeded per case by the case name, and never
zero unless a case wants zeros (cast to bool).  Runs with any python3 that has
numpy; nothing else is needed.
"""
import json
import math
import os
import struct
import sys
import zlib

import numpy as np

FLOATS = ("f32", "f16", "bf16")
INT_NP = {"i8": np.int8, "i32": np.int32, "i64": np.int64, "bool": np.bool_}
ST_NAME = {"f32": "F32", "f16": "F16", "bf16": "BF16", "i8": "I8", "i32": "I32", "i64": "I64", "bool": "BOOL"}

# ---- rounding and storage ----------------------------------------------------


def bf16_bits(x):
    """float32 -> bfloat16 bit patterns, round to nearest even (NaN kept quiet)."""
    f = np.asarray(x, np.float32)
    u = np.atleast_1d(f).view(np.uint32).astype(np.uint64)
    k16, one = np.uint64(16), np.uint64(1)
    r = ((u + np.uint64(0x7FFF) + ((u >> k16) & one)) >> k16).astype(np.uint16)
    r = np.where(np.isnan(np.atleast_1d(f)), ((u >> k16) | np.uint64(0x40)).astype(np.uint16), r)
    return r.reshape(f.shape)


def bf16_value(bits):
    b = np.asarray(bits, np.uint16)
    return (np.atleast_1d(b).astype(np.uint32) << np.uint32(16)).view(np.float32).reshape(b.shape)


def R(x, dt):
    """Rounds a value to dtype dt: floats come back as float64 holding the
    rounded values; integers and bool as numpy arrays of that dtype (wrapped)."""
    if dt == "f32":
        return np.asarray(x, np.float64).astype(np.float32).astype(np.float64)
    if dt == "f16":
        return np.asarray(x, np.float64).astype(np.float32).astype(np.float16).astype(np.float64)
    if dt == "bf16":
        return bf16_value(bf16_bits(np.asarray(x, np.float64).astype(np.float32))).astype(np.float64)
    a = np.asarray(x)
    if dt == "bool":
        return a != 0
    if a.dtype.kind == "f":
        a = np.trunc(a)
    return a.astype(np.int64).astype(INT_NP[dt]) if a.dtype != INT_NP[dt] else a


def storage(x, dt):
    """The array as stored in .npy / safetensors for dtype dt (C order)."""
    x = np.array(x, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
    if dt == "f32":
        return x.astype(np.float32)
    if dt == "f16":
        return x.astype(np.float32).astype(np.float16)
    if dt == "bf16":
        return bf16_bits(x.astype(np.float32))
    return np.array(R(x, dt), order="C")


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, array).  8-byte LE header length, JSON
    header, raw little-endian data."""
    header, blobs, off = {}, [], 0
    for name, dt, arr in sorted(tensors, key=lambda t: t[0]):
        st = storage(arr, dt)
        raw = np.array(st, dtype=st.dtype.newbyteorder("<"), order="C").tobytes()
        header[name] = {"dtype": ST_NAME[dt], "shape": list(np.shape(arr)), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


# ---- reference operators (float64 in, float64 out; callers round) --------------

erf = np.vectorize(math.erf, otypes=[np.float64])


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def gelu(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def layernorm(x, g, b=None, axis=-1, eps=1e-5):
    axes = tuple(range(axis % x.ndim, x.ndim))
    m = x.mean(axis=axes, keepdims=True)
    v = ((x - m) ** 2).mean(axis=axes, keepdims=True)
    y = (x - m) / np.sqrt(v + eps) * g
    return y + b if b is not None else y


def rmsnorm(x, g, axis=-1, eps=1e-6):
    axes = tuple(range(axis % x.ndim, x.ndim))
    return x / np.sqrt((x**2).mean(axis=axes, keepdims=True) + eps) * g


def batchnorm(x, s, b, m, v, eps=1e-5):
    sh = (1, -1) + (1,) * (x.ndim - 2)
    return (x - m.reshape(sh)) / np.sqrt(v.reshape(sh) + eps) * s.reshape(sh) + b.reshape(sh)


def linear(x, w, b=None):
    y = np.matmul(x, w.T)
    return y + b if b is not None else y


def tdiv(a, b):
    """Integer division truncating toward zero, wrapped to a's dtype."""
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    q = (np.abs(a64) // np.abs(b64)) * np.sign(a64) * np.sign(b64)
    return q.astype(np.result_type(a, b))


def onnx_slice(x, starts, ends, axes=None, steps=None):
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    for s, e, a, st in zip(starts, ends, axes, steps):
        d = x.shape[a]
        s = s + d if s < 0 else s
        e = e + d if e < 0 else e
        if st > 0:
            s, e = min(max(s, 0), d), min(max(e, 0), d)
        else:
            s, e = min(max(s, 0), d - 1), min(max(e, -1), d - 1)
        x = np.take(x, np.arange(s, e, st, dtype=np.int64), axis=a)
    return x


def conv2d(x, w, b=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    N, C, H, W = x.shape
    M, CG, KH, KW = w.shape
    pt, pl, pb, pr = padding
    sh, sw = stride
    dh, dw = dilation
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    OH = (H + pt + pb - dh * (KH - 1) - 1) // sh + 1
    OW = (W + pl + pr - dw * (KW - 1) - 1) // sw + 1
    out = np.zeros((N, M, OH, OW))
    MG = M // groups
    for g in range(groups):
        xg, wg = xp[:, g * CG:(g + 1) * CG], w[g * MG:(g + 1) * MG]
        for kh in range(KH):
            for kw in range(KW):
                patch = xg[:, :, kh * dh:kh * dh + sh * (OH - 1) + 1:sh, kw * dw:kw * dw + sw * (OW - 1) + 1:sw]
                out[:, g * MG:(g + 1) * MG] += np.einsum("nchw,mc->nmhw", patch, wg[:, :, kh, kw])
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def pool2d(x, kernel, stride=(1, 1), padding=(0, 0, 0, 0), kind="max"):
    N, C, H, W = x.shape
    (KH, KW), (sh, sw), (pt, pl, pb, pr) = kernel, stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=np.nan)
    OH, OW = (H + pt + pb - KH) // sh + 1, (W + pl + pr - KW) // sw + 1
    win = np.stack([xp[:, :, i:i + sh * (OH - 1) + 1:sh, j:j + sw * (OW - 1) + 1:sw]
                    for i in range(KH) for j in range(KW)])
    return np.nanmax(win, axis=0) if kind == "max" else np.nanmean(win, axis=0)


def attention(q, k, v, mask=None, scale=None):
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * scale
    if mask is not None:
        s = s + mask
    return np.matmul(softmax(s, -1), v)


# ---- cases -------------------------------------------------------------------------


class Case:
    def __init__(self, name):
        self.name = name
        self.rng = np.random.default_rng(zlib.crc32(name.encode()))
        self.fns, self.dims, self.decls, self.body = [], [], [], []
        self.inputs, self.params, self.outputs = [], [], []

    # random values, rounded to the dtype, never zero unless asked
    def rand(self, dt, shape, kind="normal", lo=None, hi=None):
        r = self.rng
        if dt == "bool":
            return r.random(shape) < 0.5
        if dt in INT_NP:
            info = np.iinfo(INT_NP[dt])
            lo = max(info.min, -100) if lo is None else lo
            hi = min(info.max, 100) if hi is None else hi
            v = r.integers(lo, hi, size=shape, endpoint=True)
            if kind != "zeros":
                v = np.where(v == 0, 1 if hi >= 1 else -1, v)
            return v.astype(INT_NP[dt])
        if kind == "pos":
            v = r.uniform(0.2 if lo is None else lo, 3.0 if hi is None else hi, size=shape)
        elif kind == "uniform":
            v = r.uniform(lo, hi, size=shape)
        else:  # normal-ish, magnitude at least 0.05
            v = r.standard_normal(size=shape) * (1.0 if hi is None else hi)
            v = np.where(np.abs(v) < 0.05, np.copysign(0.05, v) + v, v)
            if kind == "zeros":
                v = np.where(r.random(shape) < 0.25, 0.0, v)
        return R(v, dt)

    def dim(self, text):
        self.dims.append(text)

    def _decl(self, kw, name, dt, shape, decl, tail=""):
        ds = decl if decl is not None else shape
        ty = dt + ("[" + ", ".join(str(s) for s in ds) + "]" if len(ds) else "")
        self.decls.append(f"{kw} {name} : {ty}{tail}")

    def input(self, name, dt, shape, kind="normal", lo=None, hi=None, values=None, decl=None):
        v = self.rand(dt, tuple(shape), kind, lo, hi) if values is None else R(values, dt)
        self._decl("input", name, dt, shape, decl)
        self.inputs.append((name, dt, v))
        return v

    def param(self, name, dt, shape, kind="normal", lo=None, hi=None, key=None, tail=""):
        v = self.rand(dt, tuple(shape), kind, lo, hi)
        self._decl("param", name, dt, shape, None, (f' from "{key}"' if key else "") + tail)
        self.params.append((key or name, dt, v))
        return v

    def let(self, text):
        self.body.append("let " + text)

    def out(self, name, expr, dt, expected):
        self.body.append(f"output {name} = {expr}")
        self.outputs.append((name, dt, R(expected, dt)))

    def write(self, root):
        d = os.path.join(root, self.name)
        os.makedirs(d, exist_ok=True)
        lines = list(self.fns) + [f"model {self.name} {{"]
        if self.params:
            lines.append('  weights "model.safetensors"')
            write_safetensors(os.path.join(d, "model.safetensors"), self.params)
        lines += ["  dim " + t for t in self.dims] + ["  " + t for t in self.decls + self.body] + ["}"]
        with open(os.path.join(d, "model.dsg"), "w") as f:
            f.write("\n".join(lines) + "\n")
        for i, (_, dt, v) in enumerate(self.inputs):
            np.save(os.path.join(d, f"input_{i}.npy"), storage(v, dt))
        for i, (_, dt, v) in enumerate(self.outputs):
            np.save(os.path.join(d, f"expected_{i}.npy"), storage(v, dt))
        return f"{self.name} {len(self.inputs)} {len(self.outputs)}"


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


@case
def binary(dt):
    c = Case(f"binary_{dt}")
    a = c.input("a", dt, [2, 3, 5])
    b = c.input("b", dt, [5])
    cc = c.input("c", dt, [3, 1])
    d = c.input("d", dt, [1, 5])
    p = c.input("p", dt, [4, 1, 3], "pos")
    e = c.input("e", dt, [3], "uniform", -2, 2)
    c.out("add", "add(a, b)", dt, a + b)
    c.out("sub", "sub(a, c)", dt, a - cc)
    c.out("mul", "mul(c, d)", dt, cc * d)
    c.out("div", "div(a, b)", dt, a / b)
    c.out("pow", "pow(p, e)", dt, p**e)
    c.out("maximum", "maximum(a, c)", dt, np.maximum(a, cc))
    c.out("minimum", "minimum(c, d)", dt, np.minimum(cc, d))
    t1 = R(b * 2.5, dt)
    t2 = R(a + t1, dt)
    t3 = R(cc / 4, dt)
    c.out("infix", "a + b * 2.5 - c / 4", dt, t2 - t3)
    c.out("negate", "-d", dt, -d)
    c.out("rdiv", "1 / b", dt, 1 / b)
    c.out("lit_pow", "pow(p, 2)", dt, p**2)
    return c


@case
def unary(dt):
    c = Case(f"unary_{dt}")
    x = c.input("x", dt, [3, 7])
    p = c.input("p", dt, [13], "pos")
    s = c.input("s", dt, [1, 5, 1], "normal", hi=3.0)
    for op, f in [("neg", np.negative), ("abs", np.abs), ("exp", np.exp), ("tanh", np.tanh),
                  ("sigmoid", sigmoid), ("relu", lambda v: np.maximum(v, 0)), ("erf", erf),
                  ("silu", lambda v: v * sigmoid(v)), ("gelu", gelu), ("reciprocal", lambda v: 1 / v)]:
        c.out(f"{op}_x", f"{op}(x)", dt, f(x))
    c.out("gelu_tanh", 'gelu(x, approximate="tanh")', dt, gelu(x, "tanh"))
    c.out("gelu_none", 'gelu(s, approximate="none")', dt, gelu(s))
    c.out("sigmoid_s", "sigmoid(s)", dt, sigmoid(s))
    for op, f in [("log", np.log), ("sqrt", np.sqrt), ("rsqrt", lambda v: 1 / np.sqrt(v))]:
        c.out(f"{op}_p", f"{op}(p)", dt, f(p))
    return c


@case
def clip(dt):
    c = Case(f"clip_{dt}")
    x = c.input("x", dt, [4, 7])
    lo = c.input("lo", dt, [7], "uniform", -1, 0)
    k = (-0.5, 0.75, 0.25, -1) if dt in FLOATS else (-50, 75, 25, -1)  # literals exact in dt
    c.out("both", f"clip(x, min={k[0]}, max={k[1]})", dt, np.clip(x, k[0], k[1]))
    c.out("max_only", f"clip(x, max={k[2]})", dt, np.minimum(x, k[2]))
    c.out("min_only", f"clip(x, min={k[3]})", dt, np.maximum(x, k[3]))
    c.out("tensor_min", "clip(x, min=lo)", dt, np.maximum(x, lo))
    return c


@case
def compare_where(dt):
    c = Case(f"compare_where_{dt}")
    a = c.rand(dt, (4, 6))
    b = c.rand(dt, (4, 6))
    b = np.where(c.rng.random((4, 6)) < 0.3, a, b)  # some equal pairs
    a = c.input("a", dt, [4, 6], values=a)
    b = c.input("b", dt, [4, 6], values=b)
    cond = c.input("cond", "bool", [4, 1])
    r = c.input("r", dt, [6])
    c.out("lt", "less(a, b)", "bool", a < b)
    c.out("gt", "greater(a, b)", "bool", a > b)
    c.out("eq", "equal(a, b)", "bool", a == b)
    lit = 0.5 if dt in FLOATS else 2
    c.out("gt_lit", f"greater(a, {lit})", "bool", a > lit)
    c.out("where_lt", "where(less(a, b), a, b)", dt, np.where(a < b, a, b))
    c.out("where_bcast", "where(cond, a, r)", dt, np.where(cond, a, r))
    c.out("where_lit", f"where(cond, a, {lit})", dt, np.where(cond, a, lit))
    return c


@case
def cast_float():
    c = Case("cast_float")
    x = c.input("x", "f32", [5, 7], "zeros", hi=20.0)
    h = c.input("h", "f16", [6])
    bf = c.input("bf", "bf16", [6])
    c.out("to_i32", "cast(x, i32)", "i32", np.trunc(x))
    c.out("to_i8", "cast(x, i8)", "i8", np.trunc(x))
    c.out("to_i64", "cast(x, i64)", "i64", np.trunc(x))
    c.out("to_f16", "cast(x, f16)", "f16", x)
    c.out("to_bf16", "cast(x, bf16)", "bf16", x)
    c.out("to_bool", "cast(x, bool)", "bool", x != 0)
    c.out("f16_to_f32", "cast(h, f32)", "f32", h)
    c.out("bf16_to_f32", "cast(bf, f32)", "f32", bf)
    c.out("f16_to_bf16", "cast(h, bf16)", "bf16", h)
    c.out("bf16_to_f16", "cast(bf, f16)", "f16", bf)
    return c


@case
def cast_int():
    c = Case("cast_int")
    i = c.input("i", "i64", [9], "zeros", lo=-1000, hi=1000)
    b = c.input("b", "bool", [2, 3])
    j = c.input("j", "i32", [4], lo=-300, hi=300)
    c.out("to_i8", "cast(i, i8)", "i8", i.astype(np.int8))
    c.out("to_i32", "cast(i, i32)", "i32", i.astype(np.int32))
    c.out("to_f32", "cast(i, f32)", "f32", i.astype(np.float64))
    c.out("to_f16", "cast(j, f16)", "f16", j.astype(np.float64))
    c.out("to_bool", "cast(i, bool)", "bool", i != 0)
    c.out("bool_to_f32", "cast(b, f32)", "f32", b.astype(np.float64))
    c.out("bool_to_i32", "cast(b, i32)", "i32", b.astype(np.int32))
    c.out("i32_to_i64", "cast(j, i64)", "i64", j.astype(np.int64))
    return c


@case
def int_arith(dt):
    c = Case(f"int_arith_{dt}")
    big = {"i8": 100, "i32": 2_000_000_000, "i64": 9_000_000_000_000_000_000}[dt]
    a = c.input("a", dt, [3, 5], lo=-big, hi=big)
    b = c.input("b", dt, [5], lo=-big // 3, hi=big // 3)
    s = c.input("s", dt, [3, 5], lo=-6, hi=6)
    e = c.input("e", dt, [5], lo=0, hi=4)
    c.out("add", "add(a, b)", dt, a + b)
    c.out("sub", "a - b", dt, a - b)
    c.out("mul", "mul(a, b)", dt, a * b)
    c.out("div", "div(a, b)", dt, tdiv(a, b))
    c.out("div_small", "s / 4", dt, tdiv(s, np.array(4, dtype=INT_NP[dt])))
    c.out("pow", "pow(s, e)", dt, np.power(s, e))
    c.out("maximum", "maximum(a, b)", dt, np.maximum(a, b))
    c.out("minimum", "minimum(a, b)", dt, np.minimum(a, b))
    c.out("neg", "neg(a)", dt, -a)
    c.out("abs", "abs(a)", dt, np.abs(a))
    c.out("relu", "relu(s)", dt, np.maximum(s, 0).astype(INT_NP[dt]))
    c.out("clip", "clip(s, min=-2, max=3)", dt, np.clip(s, -2, 3).astype(INT_NP[dt]))
    c.out("lt", "less(s, b)", "bool", s < b)
    c.out("eq", "equal(s, 3)", "bool", s == 3)
    c.out("mul_lit", "s * 3 + 1", dt, (s * INT_NP[dt](3) + INT_NP[dt](1)))
    return c


@case
def bool_ops():
    c = Case("bool_ops")
    p = c.input("p", "bool", [3, 4])
    q = c.input("q", "bool", [4])
    a = c.input("a", "i32", [3, 4])
    b = c.input("b", "i32", [3, 4])
    c.out("eq", "equal(p, q)", "bool", p == q)
    c.out("where_int", "where(p, a, b)", "i32", np.where(p, a, b))
    c.out("where_bool", "where(p, q, p)", "bool", np.where(p, q, p))
    return c


@case
def reduce(dt):
    c = Case(f"reduce_{dt}")
    x = c.input("x", dt, [3, 4, 5])
    c.out("sum_last", "reduce_sum(x, axes=[-1], keepdims=false)", dt, x.sum(axis=-1))
    c.out("mean_02", "reduce_mean(x, axes=[0, 2])", dt, x.mean(axis=(0, 2), keepdims=True))
    c.out("max_all", "reduce_max(x)", dt, x.max(keepdims=True))
    c.out("max_all_nokeep", "reduce_max(x, keepdims=false)", dt, x.max())
    c.out("sum_mid", "reduce_sum(x, axes=[1], keepdims=true)", dt, x.sum(axis=1, keepdims=True))
    c.out("max_neg", "reduce_max(x, axes=[-3, -1], keepdims=false)", dt, x.max(axis=(0, 2)))
    c.out("mean_all", "reduce_mean(x, keepdims=false)", dt, x.mean())
    return c


@case
def reduce_int(dt):
    c = Case(f"reduce_int_{dt}")
    x = c.input("x", dt, [4, 6], lo=-100 if dt == "i8" else -(10**6), hi=100 if dt == "i8" else 10**6)
    c.out("sum_1", "reduce_sum(x, axes=[1], keepdims=false)", dt, x.sum(axis=1).astype(INT_NP[dt]))
    c.out("sum_all", "reduce_sum(x)", dt, x.sum(keepdims=True).astype(INT_NP[dt]))
    c.out("max_0", "reduce_max(x, axes=[0])", dt, x.max(axis=0, keepdims=True))
    return c


@case
def softmax_case(dt):
    c = Case(f"softmax_{dt}")
    x = c.input("x", dt, [2, 3, 7], hi=3.0)
    c.out("last", "softmax(x)", dt, softmax(x, -1))
    c.out("mid", "softmax(x, axis=1)", dt, softmax(x, 1))
    c.out("first", "softmax(x, axis=-3)", dt, softmax(x, 0))
    big = c.input("big", dt, [3, 5], "uniform", 50, 60)
    c.out("large_values", "softmax(big)", dt, softmax(big, -1))
    return c


@case
def norms(dt):
    c = Case(f"norms_{dt}")
    x = c.input("x", dt, [2, 5, 8])
    g = c.param("ln.g", dt, [8])
    b = c.param("ln.b", dt, [8])
    g2 = c.param("ln2.g", dt, [5, 8])
    c.out("ln", "layernorm(x, ln.g, ln.b)", dt, layernorm(x, g, b))
    c.out("ln_2axes", "layernorm(x, ln2.g, axis=-2)", dt, layernorm(x, g2, None, -2))
    c.out("ln_eps", "layernorm(x, ln.g, ln.b, axis=2, eps=0.001)", dt, layernorm(x, g, b, 2, 1e-3))
    c.out("rms", "rmsnorm(x, ln.g)", dt, rmsnorm(x, g))
    c.out("rms_axis1", "rmsnorm(x, ln2.g, axis=1, eps=0.00001)", dt, rmsnorm(x, g2, 1, 1e-5))
    return c


@case
def batchnorm_case(dt):
    c = Case(f"batchnorm_{dt}")
    x = c.input("x", dt, [2, 3, 4, 5])
    s = c.param("bn.weight", dt, [3])
    b = c.param("bn.bias", dt, [3])
    m = c.param("bn.running_mean", dt, [3])
    v = c.param("bn.running_var", dt, [3], "pos")
    c.out("bn", "batchnorm(x, bn.weight, bn.bias, bn.running_mean, bn.running_var)", dt, batchnorm(x, s, b, m, v))
    c.out("bn_eps", "batchnorm(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, eps=0.1)", dt,
          batchnorm(x, s, b, m, v, 0.1))
    return c


@case
def matmul(dt):
    c = Case(f"matmul_{dt}")
    a = c.input("a", dt, [4, 6])
    b = c.input("b", dt, [6, 3])
    x = c.input("x", dt, [2, 1, 3, 4])
    y = c.input("y", dt, [5, 4, 6])
    v = c.input("v", dt, [6])
    w = c.input("w", dt, [4])
    c.out("mm", "matmul(a, b)", dt, a @ b)
    c.out("batch", "matmul(x, y)", dt, np.matmul(x, y))
    c.out("vec_mat", "matmul(v, b)", dt, v @ b)
    c.out("mat_vec", "matmul(a, v)", dt, a @ v)
    c.out("dot", "matmul(v, v)", dt, v @ v)
    c.out("vec_batch", "matmul(w, y)", dt, np.matmul(w, y))
    c.out("batch_vec", "matmul(y, v)", dt, np.matmul(y, v))
    return c


@case
def matmul_prime():
    c = Case("matmul_prime")
    a = c.input("a", "f32", [7, 11])
    b = c.param("b", "f32", [1, 11, 13])
    c.out("mm", "matmul(a, b)", "f32", np.matmul(a, b))
    return c


@case
def matmul_int(dt):
    c = Case(f"matmul_int_{dt}")
    a = c.input("a", dt, [3, 5], lo=-20, hi=20)
    b = c.input("b", dt, [2, 5, 2], lo=-20, hi=20)
    # numpy matmul on integer arrays wraps in the dtype like the interpreter
    ref = np.matmul(a.astype(np.int64), b.astype(np.int64)).astype(INT_NP[dt])
    c.out("mm", "matmul(a, b)", dt, ref)
    return c


@case
def linear_case(dt):
    c = Case(f"linear_{dt}")
    x = c.input("x", dt, [2, 3, 6])
    v = c.input("v", dt, [6])
    w = c.param("fc.weight", dt, [5, 6])
    b = c.param("fc.bias", dt, [5])
    c.out("with_bias", "linear(x, fc.weight, fc.bias)", dt, linear(x, w, b))
    c.out("no_bias", "linear(x, fc.weight)", dt, linear(x, w))
    c.out("vector", "linear(v, fc.weight, fc.bias)", dt, linear(v, w, b))
    return c


@case
def layout(dt):
    c = Case(f"layout_{dt}")
    x = c.input("x", dt, [2, 3, 10])
    y = c.input("y", dt, [2, 1, 10])
    z = c.input("z", dt, [2, 4, 10])
    c.out("reshape", "reshape(x, shape=[-1, 6])", dt, x.reshape(-1, 6))
    c.out("reshape2", "reshape(x, shape=[3, 2, 10])", dt, x.reshape(3, 2, 10))
    c.out("transpose", "transpose(x, perm=[2, 0, 1])", dt, x.transpose(2, 0, 1))
    c.out("transpose_default", "transpose(x)", dt, x.transpose())
    c.out("transpose_neg", "transpose(x, perm=[0, -1, 1])", dt, x.transpose(0, 2, 1))
    c.out("concat", "concat(x, y, z, axis=1)", dt, np.concatenate([x, y, z], axis=1))
    c.out("concat_last", "concat(x, x, axis=-1)", dt, np.concatenate([x, x], axis=-1))
    c.out("unsqueeze", "unsqueeze(x, axes=[0, -1])", dt, x[None, ..., None])
    c.out("squeeze", "squeeze(y, axes=[1])", dt, y[:, 0, :])
    c.out("squeeze_all", "squeeze(unsqueeze(y, axes=[0]))", dt, y.reshape(2, 10))
    return c


@case
def slice_case(dt):
    c = Case(f"slice_{dt}")
    x = c.input("x", dt, [7, 9, 5])
    c.out("basic", "slice(x, starts=[1], ends=[-1])", dt, onnx_slice(x, [1], [-1]))
    c.out("steps", "slice(x, starts=[0, 8], ends=[7, 0], axes=[0, 1], steps=[2, -3])", dt,
          onnx_slice(x, [0, 8], [7, 0], [0, 1], [2, -3]))
    c.out("reverse", "slice(x, starts=[-1], ends=[-100], axes=[-1], steps=[-1])", dt,
          onnx_slice(x, [-1], [-100], [2], [-1]))
    c.out("clamped", "slice(x, starts=[2], ends=[1000], axes=[1])", dt, onnx_slice(x, [2], [1000], [1]))
    c.out("neg_start", "slice(x, starts=[-4, -3], ends=[-1, 5], axes=[1, 2], steps=[2, 1])", dt,
          onnx_slice(x, [-4, -3], [-1, 5], [1, 2], [2, 1]))
    return c


@case
def gather(dt):
    c = Case(f"gather_{dt}")
    emb = c.param("embed.weight", dt, [10, 6])
    ids = c.input("ids", "i64", [2, 5], lo=-10, hi=9)
    x = c.input("x", dt, [3, 7, 4])
    idx = c.input("idx", "i32", [2, 3], lo=-7, hi=6)
    one = c.input("one", "i64", [], lo=-10, hi=9)
    c.out("embed", "gather(embed.weight, ids)", dt, np.take(emb, ids, axis=0))
    c.out("axis1", "gather(x, idx, axis=1)", dt, np.take(x, idx, axis=1))
    c.out("axis_neg", "gather(x, idx, axis=-2)", dt, np.take(x, idx, axis=1))
    c.out("scalar", "gather(embed.weight, one)", dt, np.take(emb, one, axis=0))
    return c


@case
def conv(dt):
    c = Case(f"conv_{dt}")
    x = c.input("x", dt, [2, 3, 7, 9])
    w = c.param("conv.weight", dt, [4, 3, 3, 3])
    b = c.param("conv.bias", dt, [4])
    w2 = c.param("conv2.weight", dt, [5, 3, 2, 3])
    c.out("same", "conv2d(x, conv.weight, conv.bias, padding=[1, 1, 1, 1])", dt, conv2d(x, w, b, padding=(1, 1, 1, 1)))
    c.out("valid", "conv2d(x, conv.weight, conv.bias)", dt, conv2d(x, w, b))
    c.out("stride", "conv2d(x, conv2.weight, stride=[2, 3], padding=[0, 1, 2, 1])", dt,
          conv2d(x, w2, None, (2, 3), (0, 1, 2, 1)))
    c.out("dilation", "conv2d(x, conv2.weight, dilation=[2, 1], padding=[1, 0, 0, 2])", dt,
          conv2d(x, w2, None, (1, 1), (1, 0, 0, 2), (2, 1)))
    return c


@case
def conv_groups():
    c = Case("conv_groups")
    x = c.input("x", "f32", [1, 4, 6, 5])
    w = c.param("g.weight", "f32", [6, 2, 3, 3])
    b = c.param("g.bias", "f32", [6])
    dw = c.param("dw.weight", "f32", [4, 1, 3, 3])
    c.out("groups2", "conv2d(x, g.weight, g.bias, groups=2, padding=[1, 1, 1, 1])", "f32",
          conv2d(x, w, b, padding=(1, 1, 1, 1), groups=2))
    c.out("depthwise", "conv2d(x, dw.weight, groups=4, stride=[2, 2], dilation=[1, 2])", "f32",
          conv2d(x, dw, None, (2, 2), (0, 0, 0, 0), (1, 2), 4))
    return c


@case
def pool(dt):
    c = Case(f"pool_{dt}")
    x = c.input("x", dt, [2, 3, 7, 8])
    c.out("max_pad", "max_pool2d(x, kernel=[3, 3], stride=[2, 2], padding=[1, 1, 1, 1])", dt,
          pool2d(x, (3, 3), (2, 2), (1, 1, 1, 1), "max"))
    c.out("max_default", "max_pool2d(x, kernel=[2, 2])", dt, pool2d(x, (2, 2), kind="max"))
    c.out("avg_pad", "avg_pool2d(x, kernel=[2, 3], stride=[1, 2], padding=[1, 0, 0, 1])", dt,
          pool2d(x, (2, 3), (1, 2), (1, 0, 0, 1), "avg"))
    c.out("avg", "avg_pool2d(x, kernel=[3, 3], stride=[3, 3])", dt, pool2d(x, (3, 3), (3, 3), kind="avg"))
    c.out("global", "global_avg_pool(x)", dt, x.mean(axis=(2, 3), keepdims=True))
    return c


@case
def attention_case(dt):
    c = Case(f"attention_{dt}")
    q = c.input("q", dt, [2, 3, 5, 4])
    k = c.input("k", dt, [2, 3, 6, 4])
    v = c.input("v", dt, [2, 3, 6, 8])
    m = c.rand(dt, (5, 6))
    m = np.where(c.rng.random((5, 6)) < 0.3, -10000.0, m)
    m = c.input("m", dt, [5, 6], values=m)
    k1 = c.input("k1", dt, [1, 3, 6, 4])
    v1 = c.input("v1", dt, [3, 6, 8])
    c.out("plain", "attention(q, k, v)", dt, attention(q, k, v))
    c.out("masked", "attention(q, k, v, mask=m)", dt, attention(q, k, v, m))
    c.out("scaled", "attention(q, k, v, mask=m, scale=0.25)", dt, attention(q, k, v, m, 0.25))
    c.out("bcast", "attention(q, k1, v1)", dt, attention(q, k1, v1))
    sc = c.input("sc", dt, [5, 1], "pos", 0.1, 0.6)
    c.out("scale_tensor", "attention(q, k, v, scale=sc)", dt, attention(q, k, v, None, sc))
    return c


@case
def ffn_block(dt):
    """The spec's example, scaled down: fn inlining, dotted names, a hint."""
    c = Case(f"ffn_block_{dt}")
    c.fns = ["fn ffn(x, w1, b1, w2, b2) {", "  let h = gelu(linear(x, w1, b1))", "  return linear(h, w2, b2)", "}"]
    c.dim("B, S <= 64")
    x = c.input("x", dt, [2, 5, 16], decl=["B", "S", 16])
    g = c.param("ln.g", dt, [16])
    b = c.param("ln.b", dt, [16])
    w1 = c.param("fc1.weight", dt, [32, 16], hi=0.25)
    b1 = c.param("fc1.bias", dt, [32])
    w2 = c.param("fc2.weight", dt, [16, 32], hi=0.25, tail=" @sparse(block=[4, 4], density=0.7)")
    b2 = c.param("fc2.bias", dt, [16], key="layers.0.fc2.bias")
    c.let("n = layernorm(x, ln.g, ln.b, eps=1e-5)")
    n = R(layernorm(x, g, b, eps=1e-5), dt)
    h = R(gelu(R(linear(n, w1, b1), dt)), dt)
    y = R(linear(h, w2, b2), dt)
    c.out("y", "x + ffn(n, fc1.weight, fc1.bias, fc2.weight, fc2.bias)", dt, x + y)
    return c


@case
def symbolic():
    c = Case("symbolic")
    c.dim("B, S <= 32")
    x = c.input("x", "f32", [3, 5, 6], decl=["B", "S", 6])
    m = c.input("m", "f32", [5], decl=["S"])
    y = c.input("y", "f32", [10], decl=["S*2"])
    c.out("flat", "reshape(x, shape=[B*S, 6])", "f32", x.reshape(15, 6))
    c.out("split", "reshape(x, shape=[B, S*2, 3])", "f32", x.reshape(3, 10, 3))
    c.out("scaled", "x * unsqueeze(m, axes=[-1])", "f32", x * m[:, None])
    c.out("tail", "slice(x, starts=[1], ends=[S], axes=[1])", "f32", x[:, 1:5])
    c.out("plus_dim", "x + S", "f32", x + 5)
    c.out("y_sum", "reduce_sum(y) / S", "f32", R(y.sum(keepdims=True), "f32") / 5)
    return c


@case
def chain(dt):
    c = Case(f"chain_{dt}")
    x = c.input("x", dt, [6, 11], hi=1.5)
    y = c.input("y", dt, [11])
    z = c.input("z", dt, [6, 1])
    e = R(np.exp(x), dt)
    p = R(e * y, dt)
    c.out("fma", "exp(x) * y + z", dt, p + z)
    s = R(sigmoid(x), dt)
    c.out("silu_manual", "x * sigmoid(x)", dt, x * s)
    c.out("silu", "silu(x)", dt, x * sigmoid(x))
    return c


def expand():
    """Every (case function, dtype) pair to generate."""
    per_dtype = {binary: FLOATS, unary: FLOATS, clip: FLOATS + ("i32",), compare_where: FLOATS + ("i32",),
                 int_arith: ("i8", "i32", "i64"), reduce: FLOATS, reduce_int: ("i32", "i64", "i8"),
                 softmax_case: FLOATS, norms: FLOATS, batchnorm_case: FLOATS, matmul: FLOATS,
                 matmul_int: ("i32", "i8", "i64"), linear_case: FLOATS + ("i32",),
                 layout: ("f32", "f16", "i64", "bool", "i8"), slice_case: ("f32", "bf16", "i32"),
                 gather: ("f32", "f16", "i64"), conv: FLOATS, pool: FLOATS, attention_case: FLOATS,
                 ffn_block: ("f32", "bf16", "f16"), chain: ("f16", "bf16")}
    out = []
    for fn in CASES:
        for dt in per_dtype.get(fn, (None,)):
            out.append((fn, dt))
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_numpy.py OUTDIR")
    root = sys.argv[1]
    os.makedirs(root, exist_ok=True)
    lines = []
    with np.errstate(over="ignore", invalid="raise", divide="raise"):
        for fn, dt in expand():
            c = fn(dt) if dt is not None else fn()
            lines.append(c.write(root))
    with open(os.path.join(root, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"gen_numpy: {len(lines)} cases in {root}")


if __name__ == "__main__":
    main()
