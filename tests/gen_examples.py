#!/usr/bin/env python3
"""Real-file cases for the example models under examples/, checked against numpy.

Usage:
    gen_examples.py OUTDIR             write the cases and OUTDIR/manifest.json
    gen_examples.py --list OUTDIR      print one tab-separated line per example:
                                       name, model, weights, then NAME=FILE inputs
    gen_examples.py --check OUTDIR RESULTS
                                       compare RESULTS/<example>/<output>.npy
                                       (what `dsc run --output-dir` wrote) with the
                                       expected files; exit 1 on any mismatch

For each example OUTDIR receives a weights .safetensors holding every param the
model declares (f32, random, seeded, at realistic scales), its inputs (.npy) and
its expected outputs (.npy).  manifest.json lists, per example, the model path
(relative to the repository root), the weights and inputs (relative to OUTDIR),
and every output with its expected file and tolerance on the relative L2 error
||got - expected|| / ||expected||.

The references below are written from the models' descriptions, not from the
interpreter or tests/gen_numpy.py: plain numpy in float64 end to end (inputs
and weights are exactly representable f32 values), cast to float32 once at the
end.  The interpreter rounds each operator's result to f32, hence a small
tolerance rather than exact equality.  Only numpy and the standard library are
needed.
"""
import json
import math
import os
import struct
import sys
import zlib

import numpy as np

F32_TOL = 1e-5


# ---- files ---------------------------------------------------------------------

def write_safetensors(path, tensors):
    """tensors: dict name -> array, stored as F32 (8-byte LE header length, JSON
    header, raw little-endian data)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        raw = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def f32(x):
    """Rounds to float32 (what is stored) and hands back float64 holding those
    values, so the reference computes on exactly the numbers dsc reads."""
    return np.asarray(x, np.float64).astype(np.float32).astype(np.float64)


class Example:
    def __init__(self, name, model, files=None):
        self.name, self.model = name, model
        self.files = files or name  # prefix of the data files (shared by the two BERT models)
        self.rng = np.random.default_rng(zlib.crc32(self.files.encode()))
        self.params, self.inputs, self.outputs = {}, {}, {}

    def normal(self, shape, scale=1.0, mean=0.0):
        """Normal values, magnitude at least 1% of the scale (never zero)."""
        v = self.rng.standard_normal(size=shape)
        v = np.where(np.abs(v) < 0.01, np.copysign(0.01, v), v)
        return f32(mean + scale * v)

    def uniform(self, shape, lo, hi):
        return f32(self.rng.uniform(lo, hi, size=shape))

    def param(self, name, value):
        self.params[name] = value
        return value

    def input(self, name, value):
        self.inputs[name] = value
        return value

    def output(self, name, value):
        self.outputs[name] = np.asarray(value, np.float64).astype(np.float32)

    def write(self, root, write_data=True):
        weights = self.files + ".safetensors"
        if write_data:
            write_safetensors(os.path.join(root, weights), self.params)
            for n, v in self.inputs.items():
                np.save(os.path.join(root, f"{self.files}_in_{n}.npy"), v.astype("<f4"))
        outs = {}
        for n, v in self.outputs.items():
            fname = f"{self.name}_expected_{n}.npy"
            np.save(os.path.join(root, fname), v.astype("<f4"))
            outs[n] = {"file": fname, "dtype": "f32", "shape": list(v.shape), "tolerance": F32_TOL}
        return {"name": self.name, "model": self.model, "weights": weights,
                "inputs": {n: f"{self.files}_in_{n}.npy" for n in self.inputs}, "outputs": outs}


# ---- the reference math (float64) ------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu_exact(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def dense(x, w, b):
    """torch Linear: w is [out, in]."""
    return x @ w.T + b


def softmax_last(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def layer_norm_last(x, gamma, beta, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def conv3x3_pad1(x, w, b):
    """NCHW convolution, 3x3 kernel, stride 1, zero padding 1 on every side."""
    n, c, h, wd = x.shape
    xp = np.zeros((n, c, h + 2, wd + 2))
    xp[:, :, 1:-1, 1:-1] = x
    out = np.zeros((n, w.shape[0], h, wd))
    for i in range(3):
        for j in range(3):
            window = xp[:, :, i:i + h, j:j + wd]                    # [n, c, h, w]
            out += np.tensordot(w[:, :, i, j], window, axes=([1], [1])).transpose(1, 0, 2, 3)
    return out + b[None, :, None, None]


def batch_norm_inference(x, gamma, beta, mean, var, eps):
    sh = (1, -1, 1, 1)
    return (x - mean.reshape(sh)) / np.sqrt(var.reshape(sh) + eps) * gamma.reshape(sh) + beta.reshape(sh)


def max_pool_2x2(x):
    n, c, h, w = x.shape
    return x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


# ---- the examples ---------------------------------------------------------------

def mlp():
    e = Example("mlp", "examples/mlp.dsg")
    B = 3
    x = e.input("x", e.uniform((B, 784), 0.02, 1.0))             # pixel intensities
    ws = []
    for i, (o, k) in enumerate([(256, 784), (128, 256), (10, 128)], 1):
        w = e.param(f"fc{i}.weight", e.normal((o, k), math.sqrt(2.0 / k)))
        b = e.param(f"fc{i}.bias", e.normal((o,), 0.05))
        ws.append((w, b))
    h = np.maximum(dense(x, *ws[0]), 0.0)
    h = np.maximum(dense(h, *ws[1]), 0.0)
    logits = dense(h, *ws[2])
    e.output("logits", logits)
    e.output("probs", softmax_last(logits))
    return [e]


def ffn_block():
    e = Example("ffn_block", "examples/ffn_block.dsg")
    B, S, D, F = 2, 7, 768, 3072
    x = e.input("x", e.normal((B, S, D), 0.3))                  # small enough that eps matters
    g = e.param("ln.g", e.normal((D,), 0.1, 1.0))
    b = e.param("ln.b", e.normal((D,), 0.1))
    w1 = e.param("fc1.weight", e.normal((F, D), 0.02))
    b1 = e.param("fc1.bias", e.normal((F,), 0.02))
    # fc2 carries @sparse(block=[4, 4], density=0.7): give it weights that already
    # satisfy the hint (a bit under 70% of its 4x4 blocks non-zero), so a pass that
    # prunes to that density may only drop blocks that are zero anyway.
    w2 = e.normal((D, F), 0.02)
    keep = e.rng.random((D // 4, F // 4)) >= 0.31
    w2 = e.param("fc2.weight", w2 * np.repeat(np.repeat(keep, 4, axis=0), 4, axis=1))
    b2 = e.param("fc2.bias", e.normal((D,), 0.02))
    n = layer_norm_last(x, g, b, 1e-5)
    e.output("y", x + dense(gelu_exact(dense(n, w1, b1)), w2, b2))
    return [e]


def bert():
    """bert_layer.dsg and bert_layer_attention.dsg: the same layer, one data set."""
    B, S, D, H, Dh, F = 2, 7, 768, 12, 64, 3072
    e = Example("bert_layer", "examples/bert_layer.dsg", files="bert")
    pre = "encoder.layer.0."
    x = e.input("x", e.normal((B, S, D), 0.3))                  # hidden states (small: eps matters)
    mask = np.zeros((B, 1, 1, S))
    mask[0, 0, 0, [5, 6]] = -10000.0   # padding at the end of the first sequence
    mask[1, 0, 0, [2]] = -10000.0
    e.input("mask", mask)

    def lin(name, o, k):
        return (e.param(pre + name + ".weight", e.normal((o, k), 0.02)),
                e.param(pre + name + ".bias", e.normal((o,), 0.02)))

    def ln(name):
        return (e.param(pre + name + ".weight", e.normal((D,), 0.05, 1.0)),
                e.param(pre + name + ".bias", e.normal((D,), 0.05)))

    wq, wk, wv = lin("attention.self.query", D, D), lin("attention.self.key", D, D), lin("attention.self.value", D, D)
    wo, ln1 = lin("attention.output.dense", D, D), ln("attention.output.LayerNorm")
    wi, wf, ln2 = lin("intermediate.dense", F, D), lin("output.dense", D, F), ln("output.LayerNorm")

    def heads(t):  # [B, S, D] -> [B, H, S, Dh]
        return t.reshape(B, S, H, Dh).transpose(0, 2, 1, 3)

    q, k, v = heads(dense(x, *wq)), heads(dense(x, *wk)), heads(dense(x, *wv))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(Dh) + mask
    ctx = (softmax_last(scores) @ v).transpose(0, 2, 1, 3).reshape(B, S, D)
    h = layer_norm_last(dense(ctx, *wo) + x, *ln1, 1e-12)
    ff = dense(gelu_exact(dense(h, *wi)), *wf)
    e.output("y", layer_norm_last(ff + h, *ln2, 1e-12))

    e2 = Example("bert_layer_attention", "examples/bert_layer_attention.dsg", files="bert")
    e2.params, e2.inputs, e2.outputs = e.params, e.inputs, e.outputs
    return [e, e2]


def cnn_block():
    e = Example("cnn_block", "examples/cnn_block.dsg")
    N = 3
    img = e.input("image", e.normal((N, 3, 32, 32)))

    def conv_bn(conv, bn, o, c):
        w = e.param(conv + ".weight", e.normal((o, c, 3, 3), math.sqrt(2.0 / (9 * c))))
        b = e.param(conv + ".bias", e.normal((o,), 0.05))
        g = e.param(bn + ".weight", e.normal((o,), 0.1, 1.0))
        beta = e.param(bn + ".bias", e.normal((o,), 0.1))
        mean = e.param(bn + ".running_mean", e.normal((o,), 0.1))
        var = e.param(bn + ".running_var", e.uniform((o,), 0.5, 2.0))
        return w, b, g, beta, mean, var

    p1, p2 = conv_bn("conv1", "bn1", 16, 3), conv_bn("conv2", "bn2", 32, 16)
    fw = e.param("fc.weight", e.normal((10, 32), math.sqrt(1.0 / 32)))
    fb = e.param("fc.bias", e.normal((10,), 0.05))
    c1 = np.maximum(batch_norm_inference(conv3x3_pad1(img, *p1[:2]), *p1[2:], 1e-5), 0.0)
    c2 = np.maximum(batch_norm_inference(conv3x3_pad1(max_pool_2x2(c1), *p2[:2]), *p2[2:], 1e-5), 0.0)
    e.output("logits", dense(c2.mean(axis=(2, 3)), fw, fb))
    return [e]


# ---- commands -----------------------------------------------------------------------

def generate(root):
    os.makedirs(root, exist_ok=True)
    entries, written = [], set()
    for make in (mlp, ffn_block, bert, cnn_block):
        for e in make():
            entries.append(e.write(root, write_data=e.files not in written))
            written.add(e.files)
    with open(os.path.join(root, "manifest.json"), "w") as f:
        json.dump({"examples": entries}, f, indent=1)
        f.write("\n")
    print(f"gen_examples: {len(entries)} examples in {root}")


def load_manifest(root):
    with open(os.path.join(root, "manifest.json")) as f:
        return json.load(f)["examples"]


def list_runs(root):
    for e in load_manifest(root):
        ins = [f"{n}={os.path.join(root, p)}" for n, p in e["inputs"].items()]
        print("\t".join([e["name"], e["model"], os.path.join(root, e["weights"])] + ins))


def check(root, results):
    bad = 0
    for e in load_manifest(root):
        for name, o in e["outputs"].items():
            what = f"{e['name']}/{name}"
            path = os.path.join(results, e["name"], name + ".npy")
            if not os.path.exists(path):
                print(f"FAIL {what}: {path} not written")
                bad += 1
                continue
            got, want = np.load(path), np.load(os.path.join(root, o["file"]))
            if got.dtype != np.dtype("<f4") or got.shape != want.shape:
                print(f"FAIL {what}: got {got.dtype} {got.shape}, expected {want.dtype} {want.shape}")
                bad += 1
                continue
            g64, w64 = got.astype(np.float64), want.astype(np.float64)
            if not np.all(np.isfinite(g64)):
                print(f"FAIL {what}: {np.count_nonzero(~np.isfinite(g64))} non-finite values")
                bad += 1
                continue
            err = np.linalg.norm(g64 - w64) / np.linalg.norm(w64)
            ok = err <= o["tolerance"]
            print(f"{'ok  ' if ok else 'FAIL'} {what}: rel L2 error {err:.3e} (tolerance {o['tolerance']:g},"
                  f" max abs diff {np.max(np.abs(g64 - w64)):.3e})")
            bad += not ok
    return bad


def main():
    a = sys.argv[1:]
    if len(a) == 1 and not a[0].startswith("-"):
        generate(a[0])
    elif len(a) == 2 and a[0] == "--list":
        list_runs(a[1])
    elif len(a) == 3 and a[0] == "--check":
        sys.exit(1 if check(a[1], a[2]) else 0)
    else:
        sys.exit(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main()
