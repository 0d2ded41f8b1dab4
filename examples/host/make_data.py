#!/usr/bin/env python3
"""Data for the host example: weights, inputs and numpy's expected outputs.

Usage: make_data.py OUTDIR S...

Writes OUTDIR/bert_layer.safetensors (seeded random weights for
examples/bert_layer.dsg) and, for each sequence length S, x_S.npy and
mask_S.npy (batch 2; the second sequence padded at its last position) and
y_S.npy, the layer computed by numpy in float64 (the reference math of
tests/gen_examples.py, written from the model's description, not from dsc).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
from gen_examples import dense, f32, gelu_exact, layer_norm_last, softmax_last, write_safetensors  # noqa: E402

B, D, H, DH, F = 2, 768, 12, 64, 3072
PRE = "encoder.layer.0."


def weights(rng):
    w = {}

    def normal(shape, scale, mean=0.0):
        v = rng.standard_normal(size=shape)
        return f32(mean + scale * np.where(np.abs(v) < 0.01, np.copysign(0.01, v), v))

    for name, o, k in [("attention.self.query", D, D), ("attention.self.key", D, D),
                       ("attention.self.value", D, D), ("attention.output.dense", D, D),
                       ("intermediate.dense", F, D), ("output.dense", D, F)]:
        w[PRE + name + ".weight"] = normal((o, k), 0.02)
        w[PRE + name + ".bias"] = normal((o,), 0.02)
    for name in ["attention.output.LayerNorm", "output.LayerNorm"]:
        w[PRE + name + ".weight"] = normal((D,), 0.05, 1.0)
        w[PRE + name + ".bias"] = normal((D,), 0.05)
    return w


def bert_layer(w, x, mask):
    b, s, _ = x.shape

    def lin(name, t):
        return dense(t, w[PRE + name + ".weight"], w[PRE + name + ".bias"])

    def ln(name, t):
        return layer_norm_last(t, w[PRE + name + ".weight"], w[PRE + name + ".bias"], 1e-12)

    def heads(t):
        return t.reshape(b, s, H, DH).transpose(0, 2, 1, 3)

    q, k, v = (heads(lin("attention.self." + n, x)) for n in ("query", "key", "value"))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(DH) + mask
    ctx = (softmax_last(scores) @ v).transpose(0, 2, 1, 3).reshape(b, s, D)
    h = ln("attention.output.LayerNorm", lin("attention.output.dense", ctx) + x)
    return ln("output.LayerNorm", lin("output.dense", gelu_exact(lin("intermediate.dense", h))) + h)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, lengths = sys.argv[1], [int(a) for a in sys.argv[2:]]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261128)
    w = weights(rng)
    write_safetensors(os.path.join(out, "bert_layer.safetensors"), w)
    for s in lengths:
        x = f32(0.3 * rng.standard_normal(size=(B, s, D)))
        mask = np.zeros((B, 1, 1, s))
        mask[1, 0, 0, s - 1] = -10000.0
        np.save(os.path.join(out, f"x_{s}.npy"), x.astype("<f4"))
        np.save(os.path.join(out, f"mask_{s}.npy"), mask.astype("<f4"))
        np.save(os.path.join(out, f"y_{s}.npy"), bert_layer(w, x, mask).astype("<f4"))
    print(f"make_data: weights and {len(lengths)} sequence lengths in {out}")


if __name__ == "__main__":
    main()
