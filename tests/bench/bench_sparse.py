#!/usr/bin/env python3
"""Host latency of pattern-specialised block-sparse GEMMs against the dense
GEMM, on the BERT-layer GEMM shapes (docs/perf.md, "Block sparsity").

For every shape (out x in: 768x768, 3072x768, 768x3072; M rows of the
activation, default 128), block shape (4x4, 16x16, 32x32) and density (0.7,
0.5, 0.3, 0.1) it times `dsc bench --device cpu --json` on a one-linear model
whose seeded random weight is pruned by --sparsity=1-density, once with the
sparse kernel forced (DSC_SPARSE_KERNEL=sparse) and once with the dense GEMM
over the same pruned weight (DSC_SPARSE_KERNEL=dense).  Prints one table row
per case (median and min ms of both, speedup of the medians) and, per block
shape, the crossover: the highest density at which the sparse kernel beats
the dense one on all three shapes.

  tests/bench/bench_sparse.py --dsc build/dsc [--m 128] [--iters 30] [--markdown]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

SHAPES = [(768, 768), (3072, 768), (768, 3072)]
BLOCKS = [(4, 4), (16, 16), (32, 32)]
DENSITIES = [0.7, 0.5, 0.3, 0.1]


def bench(dsc, model, m, iters, kernel, density, block):
    env = dict(os.environ, DSC_SPARSE_KERNEL=kernel)
    cmd = [dsc, "bench", model, "--device", "cpu", "--bind", "M=%d" % m, "--iters", str(iters), "--warmup", "3",
           "--json", "--sparsity=%.17g" % (1 - density), "--sparse-block=%dx%d" % block]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("bench failed: %s\n%s" % (" ".join(cmd), r.stderr))
    j = json.loads(r.stdout.strip().splitlines()[-1])
    return j["median_ms"], j["min_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsc", default="build/dsc")
    ap.add_argument("--m", type=int, default=128)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    models = {}
    for n, k in SHAPES:
        p = os.path.join(tmp, "g%dx%d.dsg" % (n, k))
        with open(p, "w") as f:
            f.write("model g%dx%d {\n  dim M <= 4096\n  input x : f32[M, %d]\n  param w : f32[%d, %d]\n"
                    "  param b : f32[%d]\n  output y = linear(x, w, b)\n}\n" % (n, k, k, n, k, n))
        models[(n, k)] = p
    rows = []
    wins = {}
    sep = "|" if a.markdown else " "
    head = ["shape (out x in)", "block", "density", "dense median", "dense min", "sparse median", "sparse min",
            "dense/sparse"]
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
    else:
        print("%-16s %-6s %-7s %12s %10s %13s %11s %12s" % tuple(head))
    for block in BLOCKS:
        for d in DENSITIES:
            for shape in SHAPES:
                dm, dn = bench(a.dsc, models[shape], a.m, a.iters, "dense", d, block)
                sm, sn = bench(a.dsc, models[shape], a.m, a.iters, "sparse", d, block)
                speed = dm / sm
                wins.setdefault((block, d), []).append(speed > 1)
                cells = ["%dx%d" % shape, "%dx%d" % block, "%.1f" % d, "%.3f" % dm, "%.3f" % dn, "%.3f" % sm,
                         "%.3f" % sn, "%.2f" % speed]
                if a.markdown:
                    print("| " + " | ".join(cells) + " |")
                else:
                    print("%-16s %-6s %-7s %12s %10s %13s %11s %12s" % tuple(cells))
                sys.stdout.flush()
    print()
    for block in BLOCKS:
        cross = None  # the highest density from which down every density wins on every shape
        for d in sorted(DENSITIES):
            if not all(wins[(block, d)]):
                break
            cross = d
        print("crossover %dx%d: sparse beats dense on all three shapes at density <= %s" %
              (block[0], block[1], ("%.1f" % cross) if cross else "none of 0.7, 0.5, 0.3, 0.1"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
