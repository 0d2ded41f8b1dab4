#!/usr/bin/env python3
"""An independent numpy implementation of dsc's block-pruning rule
(docs/sparsity.md), used by tests/sparse.sh.

  sparse_ref.py make OUT.safetensors          seeded weights for tests/sparse.sh
  sparse_ref.py check IN OUT NAME=RxC:D ...   OUT must be IN with each NAME
                                              pruned (block RxC, density D);
                                              every other tensor unchanged
  sparse_ref.py frac OUT NAME...              fraction of zeros of each NAME

The rule: blocks tile the last two dims (partial blocks at the edges); per
tensor the ceil(D x blocks) blocks of largest L2 norm are kept (the product
in double, minus 1e-9, before the ceiling), ties to the lower block index
(row-major over leading dims, block rows, block columns); the others become
zero.  A block's norm is the float64 sum of the squares of its stored values
added in row-major order (the order matters for ties: permuted blocks).
"""
import json
import math
import struct
import sys

import numpy as np

DT = {"F32": np.float32, "F16": np.float16, "I32": np.int32}


def read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        lo, hi = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + lo:8 + n + hi], dtype=DT[v["dtype"]]).reshape(v["shape"]).copy()
    return out


def write(path, tensors):
    names = sorted(tensors)
    header, off, blobs = {}, 0, []
    for k in names:
        a = np.ascontiguousarray(tensors[k])
        dt = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}[a.dtype]
        header[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
        blobs.append(a.tobytes())
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))


def kept_count(density, nblocks):
    k = math.ceil(density * nblocks - 1e-9)
    return max(0, min(nblocks, k))


def prune(w, br, bc, density):
    w = w.copy()
    lead = w.shape[:-2]
    rows, cols = w.shape[-2], w.shape[-1]
    nbr, nbc = -(-rows // br), -(-cols // bc)
    w3 = w.reshape((-1, rows, cols))
    norms = np.zeros((w3.shape[0], nbr, nbc))
    for l in range(w3.shape[0]):
        for i in range(nbr):
            for j in range(nbc):
                blk = w3[l, i * br:(i + 1) * br, j * bc:(j + 1) * bc].astype(np.float64)
                acc = 0.0  # in row-major order, one rounding per addition (as dsc)
                for v in blk.reshape(-1).tolist():
                    acc += v * v
                norms[l, i, j] = acc
    flat = norms.reshape(-1)
    order = np.lexsort((np.arange(flat.size), -flat))  # norm descending, then index ascending
    keep = np.zeros(flat.size, dtype=bool)
    keep[order[:kept_count(density, flat.size)]] = True
    keep = keep.reshape(norms.shape)
    for l in range(w3.shape[0]):
        for i in range(nbr):
            for j in range(nbc):
                if not keep[l, i, j]:
                    w3[l, i * br:(i + 1) * br, j * bc:(j + 1) * bc] = 0
    return w3.reshape(lead + (rows, cols))


def make(path):
    rng = np.random.default_rng(20261128)
    t = {}
    # ties: every 4x4 block of 'tie.w' has the same values, permuted inside
    # the block, so all norms are equal and the lower block indices win
    base = rng.uniform(-1, 1, 16).astype(np.float32)
    tie = np.zeros((18, 22), np.float32)  # partial blocks at both edges
    for i in range(0, 18, 4):
        for j in range(0, 22, 4):
            blk = rng.permutation(base).reshape(4, 4)
            h, w = min(4, 18 - i), min(4, 22 - j)
            tie[i:i + h, j:j + w] = blk[:h, :w]
    t["tie.w"] = tie
    # pairs of equal norms in a random weight: block (0,1) copies block (2,3)
    a = rng.uniform(-1, 1, (40, 30)).astype(np.float32)
    a[0:8, 5:10] = a[16:24, 15:20]
    t["pair.w"] = a
    t["big.w"] = rng.uniform(-1, 1, (64, 48)).astype(np.float32)
    t["odd.w"] = rng.uniform(-1, 1, (37, 29)).astype(np.float32)
    t["half.w"] = rng.uniform(-1, 1, (16, 24)).astype(np.float16)
    t["r3.w"] = rng.uniform(-1, 1, (3, 10, 12)).astype(np.float32)
    t["plain.w"] = rng.uniform(-1, 1, (8, 8)).astype(np.float32)
    t["bias"] = rng.uniform(-1, 1, (64,)).astype(np.float32)
    write(path, t)


def check(inp, outp, specs):
    a, b = read(inp), read(outp)
    want = dict(a)
    for s in specs:
        name, rest = s.split("=")
        blk, dens = rest.split(":")
        br, bc = (int(x) for x in blk.split("x"))
        want[name] = prune(a[name], br, bc, float(dens))
    if sorted(want) != sorted(b):
        print("FAIL tensors differ: %s vs %s" % (sorted(want), sorted(b)))
        return 1
    bad = 0
    for k in sorted(want):
        if want[k].shape != b[k].shape or want[k].dtype != b[k].dtype or not np.array_equal(want[k], b[k]):
            diff = np.argwhere(want[k] != b[k]) if want[k].shape == b[k].shape else "shape"
            print("FAIL %s differs from the numpy rule (first differences: %s)" % (k, diff[:4] if len(diff) else diff))
            bad = 1
    return bad


def main():
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2])
        return 0
    if cmd == "check":
        return check(sys.argv[2], sys.argv[3], sys.argv[4:])
    if cmd == "frac":
        t = read(sys.argv[2])
        print(" ".join("%.6f" % float(np.mean(t[n] == 0)) for n in sys.argv[3:]))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
