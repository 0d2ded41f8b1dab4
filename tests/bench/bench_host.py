#!/usr/bin/env python3
"""The host backend against the reference interpreter and numpy, side by side.

Usage:
    bench_host.py [--dsc PATH] [--models NAME,...] [--iters N] [--warmup N]
                  [--ref-iters N] [--no-ref] [--precisions f32,f16,bf16,int8] [--threads N] [--numpy-python PY]...
                  [--keep-openblas-env] [--profile] [--retries N] [--wait-idle S]
                  [--seed N] [--json FILE] [--keep DIR]

For each example model at the dims below, in one run on one machine:
  1. makes the data once: seeded random weights (a .safetensors file) and
     inputs (.npy files), float32, at realistic scales;
  2. times `dsc bench --device cpu --json` (the host JIT) and
     `dsc bench --device ref --json` (the interpreter, fewer runs: it is
     slow) on exactly those files, with DSC_THREADS=--threads;
  3. times numpy computing the same model (float32, numpy's own BLAS for
     every matmul, the same runs and warm-up as dsc cpu, median) on the same
     files, in a subprocess per numpy given (--numpy-python; default: this
     interpreter) with OPENBLAS_NUM_THREADS/OMP_NUM_THREADS/MKL_NUM_THREADS
     =--threads, and reports which BLAS numpy loaded and its threads
     (threadpoolctl when it is installed);
  4. checks that dsc cpu, dsc ref and every numpy computed the same outputs
     (relative L2 error against the first numpy), so the timings are of the
     same computation;
  4b. with --precisions (e.g. f32,f16,bf16,int8): times `dsc bench --device
     cpu --precision=P` on the same files and reports each against f32
     (latency ratio, relative L2 error of the outputs against dsc's f32);
  5. prints a Markdown table: medians, min, and the ratios numpy / cpu (how
     many times faster the JIT is) and ref / cpu; with --profile also dsc's
     per-kernel times and numpy's per-stage times of the BERT layer.

The machine may be shared: each measurement records the CPU time other
processes took during it (/proc/stat less this script's own), and one they
disturbed (over 5% of the machine) is repeated after waiting for an idle
second (--retries, --wait-idle); rows still disturbed are marked (*).

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from the numpy workers'
environment (this machine's image sets them for old OpenBLAS builds; they
pin a current OpenBLAS to slower kernels); --keep-openblas-env keeps them.
The output check catches a BLAS that computes wrong results.

Needs numpy in the interpreter that runs this script (it makes the data);
/usr/bin/python3 with Debian's python3-numpy will do.  --numpy-python can
name others (a venv with numpy from PyPI, which bundles OpenBLAS).
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# name: model file, dims, (random data is made by make_data below)
MODELS = {
    "bert_layer": ("examples/bert_layer.dsg", {"B": 1, "S": 128}),
    "bert_layer_attention": ("examples/bert_layer_attention.dsg", {"B": 1, "S": 128}),
    "ffn_block": ("examples/ffn_block.dsg", {"B": 1, "S": 128}),
    "mlp": ("examples/mlp.dsg", {"B": 32}),
    "cnn_block": ("examples/cnn_block.dsg", {"N": 8}),
}
DEFAULT_MODELS = ["bert_layer", "bert_layer_attention", "ffn_block", "mlp", "cnn_block"]


# ---- files (no numpy needed to read the header) ------------------------------------

def write_safetensors(path, tensors):
    import numpy as np
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


def read_safetensors(path):
    import numpy as np
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", e
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(e["shape"]).copy()
    return out


# ---- the data ---------------------------------------------------------------------------

def make_data(name, dims, seed):
    """(params, inputs): dicts of float32 arrays for the model at dims."""
    import numpy as np
    rng = np.random.default_rng(seed)

    def normal(shape, scale=1.0, mean=0.0):
        return (mean + scale * rng.standard_normal(size=shape)).astype(np.float32)

    p, x = {}, {}
    if name in ("bert_layer", "bert_layer_attention"):
        B, S, D, F = dims["B"], dims["S"], 768, 3072
        pre = "encoder.layer.0."
        for lin, o, k in [("attention.self.query", D, D), ("attention.self.key", D, D),
                          ("attention.self.value", D, D), ("attention.output.dense", D, D),
                          ("intermediate.dense", F, D), ("output.dense", D, F)]:
            p[pre + lin + ".weight"] = normal((o, k), 0.02)
            p[pre + lin + ".bias"] = normal((o,), 0.02)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            p[pre + ln + ".weight"] = normal((D,), 0.05, 1.0)
            p[pre + ln + ".bias"] = normal((D,), 0.05)
        x["x"] = normal((B, S, D), 1.0)
        mask = np.zeros((B, 1, 1, S), np.float32)
        mask[:, :, :, S - S // 8:] = -10000.0   # the last eighth is padding
        x["mask"] = mask
    elif name == "ffn_block":
        B, S, D, F = dims["B"], dims["S"], 768, 3072
        p["ln.g"], p["ln.b"] = normal((D,), 0.1, 1.0), normal((D,), 0.1)
        p["fc1.weight"], p["fc1.bias"] = normal((F, D), 0.02), normal((F,), 0.02)
        # fc2 carries @sparse(block=[4, 4], density=0.7): weights that already
        # satisfy it, so a pruning pass could only drop zero blocks
        keep = rng.random((D // 4, F // 4)) >= 0.31
        p["fc2.weight"] = normal((D, F), 0.02) * np.repeat(np.repeat(keep, 4, axis=0), 4, axis=1).astype(np.float32)
        p["fc2.bias"] = normal((D,), 0.02)
        x["x"] = normal((B, S, D), 1.0)
    elif name == "mlp":
        for i, (o, k) in enumerate([(256, 784), (128, 256), (10, 128)], 1):
            p[f"fc{i}.weight"] = normal((o, k), math.sqrt(2.0 / k))
            p[f"fc{i}.bias"] = normal((o,), 0.05)
        x["x"] = rng.uniform(0, 1, size=(dims["B"], 784)).astype(np.float32)
    elif name == "cnn_block":
        for conv, bn, o, c in [("conv1", "bn1", 16, 3), ("conv2", "bn2", 32, 16)]:
            p[conv + ".weight"] = normal((o, c, 3, 3), math.sqrt(2.0 / (9 * c)))
            p[conv + ".bias"] = normal((o,), 0.05)
            p[bn + ".weight"] = normal((o,), 0.1, 1.0)
            p[bn + ".bias"] = normal((o,), 0.1)
            p[bn + ".running_mean"] = normal((o,), 0.1)
            p[bn + ".running_var"] = rng.uniform(0.5, 2.0, size=(o,)).astype(np.float32)
        p["fc.weight"], p["fc.bias"] = normal((10, 32), math.sqrt(1.0 / 32)), normal((10,), 0.05)
        x["image"] = normal((dims["N"], 3, 32, 32))
    else:
        raise SystemExit(f"bench_host: no data for model '{name}'")
    return p, x


# ---- numpy implementations (float32, BLAS for every matmul) ------------------------

def numpy_model(name):
    """A function (params, inputs) -> {output: array} computing the model the
    way a numpy user would: one array operation after another, float32."""
    import numpy as np
    f32 = np.float32
    try:
        from scipy.special import erf  # vectorised C
    except ImportError:
        def erf(v):
            # Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7), in float32 array operations
            s = np.sign(v)
            a = np.abs(v)
            t = f32(1) / (f32(1) + f32(0.3275911) * a)
            y = ((((f32(1.061405429) * t - f32(1.453152027)) * t + f32(1.421413741)) * t - f32(0.284496736)) * t
                 + f32(0.254829592)) * t
            return s * (f32(1) - y * np.exp(-a * a))

    def dense(v, w, b):
        return v @ w.T + b

    def gelu(v):
        return f32(0.5) * v * (f32(1) + erf(v * f32(1 / math.sqrt(2))))

    def softmax(v):
        e = np.exp(v - v.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def layernorm(v, g, b, eps):
        mu = v.mean(axis=-1, keepdims=True)
        c = v - mu
        var = (c * c).mean(axis=-1, keepdims=True)
        return c / np.sqrt(var + f32(eps)) * g + b

    def bert(P, X):
        pre = "encoder.layer.0."
        w = lambda n: (P[pre + n + ".weight"], P[pre + n + ".bias"])
        x, mask = X["x"], X["mask"]
        B, S, D = x.shape
        heads = lambda t: t.reshape(B, S, 12, 64).transpose(0, 2, 1, 3)
        q, k, v = (heads(dense(x, *w("attention.self." + n))) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) * f32(0.125) + mask
        ctx = (softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(B, S, D)
        h = layernorm(dense(ctx, *w("attention.output.dense")) + x, *w("attention.output.LayerNorm"), 1e-12)
        ff = dense(gelu(dense(h, *w("intermediate.dense"))), *w("output.dense"))
        return {"y": layernorm(ff + h, *w("output.LayerNorm"), 1e-12)}

    def ffn(P, X):
        x = X["x"]
        n = layernorm(x, P["ln.g"], P["ln.b"], 1e-5)
        return {"y": x + dense(gelu(dense(n, P["fc1.weight"], P["fc1.bias"])), P["fc2.weight"], P["fc2.bias"])}

    def mlp(P, X):
        h = np.maximum(dense(X["x"], P["fc1.weight"], P["fc1.bias"]), f32(0))
        h = np.maximum(dense(h, P["fc2.weight"], P["fc2.bias"]), f32(0))
        logits = dense(h, P["fc3.weight"], P["fc3.bias"])
        return {"logits": logits, "probs": softmax(logits)}

    def conv3x3(v, w, b):
        # im2col + one GEMM: [N*H*W, C*9] @ [C*9, O]
        n, c, hh, ww = v.shape
        vp = np.pad(v, ((0, 0), (0, 0), (1, 1), (1, 1)))
        win = np.lib.stride_tricks.sliding_window_view(vp, (3, 3), axis=(2, 3))    # [n, c, h, w, 3, 3]
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * hh * ww, c * 9)
        out = cols @ w.reshape(w.shape[0], c * 9).T + b
        return out.reshape(n, hh, ww, -1).transpose(0, 3, 1, 2)

    def bn(v, P, pre, eps=1e-5):
        sh = (1, -1, 1, 1)
        scale = P[pre + ".weight"] / np.sqrt(P[pre + ".running_var"] + f32(eps))
        return (v - P[pre + ".running_mean"].reshape(sh)) * scale.reshape(sh) + P[pre + ".bias"].reshape(sh)

    def cnn(P, X):
        c1 = np.maximum(bn(conv3x3(X["image"], P["conv1.weight"], P["conv1.bias"]), P, "bn1"), f32(0))
        n, c, hh, ww = c1.shape
        p1 = c1.reshape(n, c, hh // 2, 2, ww // 2, 2).max(axis=(3, 5))
        c2 = np.maximum(bn(conv3x3(p1, P["conv2.weight"], P["conv2.bias"]), P, "bn2"), f32(0))
        return {"logits": dense(c2.mean(axis=(2, 3)), P["fc.weight"], P["fc.bias"])}

    def bert_stages(P, X):
        """The layer in steps, each a callable on the previous steps' results
        (computed once here), for the per-stage profile."""
        pre = "encoder.layer.0."
        w = lambda n: (P[pre + n + ".weight"], P[pre + n + ".bias"])
        x, mask = X["x"], X["mask"]
        B, S, D = x.shape
        heads = lambda t: t.reshape(B, S, 12, 64).transpose(0, 2, 1, 3)
        qkv = lambda: [heads(dense(x, *w("attention.self." + n))) for n in ("query", "key", "value")]
        q, k, v = qkv()
        att = lambda: (softmax(q @ k.transpose(0, 1, 3, 2) * f32(0.125) + mask) @ v).transpose(0, 2, 1, 3).reshape(B, S, D)
        ctx = att()
        proj = lambda: dense(ctx, *w("attention.output.dense")) + x
        a = proj()
        ln1 = lambda: layernorm(a, *w("attention.output.LayerNorm"), 1e-12)
        h = ln1()
        up = lambda: dense(h, *w("intermediate.dense"))
        u = up()
        act = lambda: gelu(u)
        ff = act()
        down = lambda: dense(ff, *w("output.dense")) + h
        o = down()
        ln2 = lambda: layernorm(o, *w("output.LayerNorm"), 1e-12)
        return [("QKV projections (3 linears)", qkv), ("attention (scores, softmax, probs @ v)", att),
                ("output projection + residual", proj), ("layernorm", ln1), ("FFN up (linear 768->3072)", up),
                ("gelu (erf)", act), ("FFN down (linear 3072->768) + residual", down), ("layernorm", ln2)]

    models = {"bert_layer": bert, "bert_layer_attention": bert, "ffn_block": ffn, "mlp": mlp, "cnn_block": cnn}
    stages = {"bert_layer": bert_stages, "bert_layer_attention": bert_stages}
    return models[name], stages.get(name)


def blas_info():
    """Which BLAS this numpy runs and with how many threads."""
    import numpy as np
    libs = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                base = os.path.basename(path)
                if re.search(r"blas|mkl|blis|lapack", base) and path not in libs:
                    libs.append(path)
    except OSError:
        pass
    names = [os.path.basename(os.path.realpath(p)) for p in libs]
    info = {"numpy": np.__version__, "libraries": sorted(set(names))}
    try:
        import threadpoolctl
        pools = [p for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"]
        info["threadpoolctl"] = [{k: p.get(k) for k in ("internal_api", "num_threads", "architecture", "version")}
                                 for p in pools]
        info["blas"] = ", ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')})" for p in pools)
        info["threads"] = max((p.get("num_threads") or 1 for p in pools), default=1)
    except ImportError:
        reference = any("/blas/libblas" in os.path.realpath(p) for p in libs) and not any(
            re.search(r"openblas|mkl|blis", n) for n in names)
        if reference:
            info["blas"] = "reference BLAS (netlib, " + ", ".join(sorted(set(names))) + ")"
            info["threads"] = 1   # the reference BLAS has no threads
        else:
            info["blas"] = ", ".join(sorted(set(names))) or "unknown"
            info["threads"] = int(os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or 0) or None
    return info


def numpy_worker(spec_path):
    """Times numpy on the files a spec names; writes the result JSON and outputs."""
    import numpy as np
    with open(spec_path) as f:
        spec = json.load(f)
    P = read_safetensors(spec["weights"])
    X = {n: np.load(p) for n, p in spec["inputs"].items()}
    fn, stages = numpy_model(spec["model"])

    def timed(f):
        for _ in range(spec["warmup"]):
            f()
        samples = []
        for _ in range(spec["iters"]):
            t0 = time.perf_counter()
            r = f()
            samples.append((time.perf_counter() - t0) * 1e3)
        return r, samples

    def med(v):
        v, m = sorted(v), len(v)
        return v[m // 2] if m % 2 else 0.5 * (v[m // 2 - 1] + v[m // 2])

    out, samples = timed(lambda: fn(P, X))
    profile = []
    if spec.get("profile") and stages:
        for label, f in stages(P, X):
            profile.append({"stage": label, "median_ms": med(timed(f)[1])})
    os.makedirs(spec["output_dir"], exist_ok=True)
    for n, v in out.items():
        np.save(os.path.join(spec["output_dir"], n + ".npy"), np.ascontiguousarray(v, dtype=np.float32))
    result = {"median_ms": med(samples), "min_ms": min(samples), "samples_ms": samples, "iters": len(samples),
              "python": sys.executable, "python_version": platform.python_version(), **blas_info()}
    if profile:
        result["profile"] = profile
    with open(spec["result"], "w") as f:
        json.dump(result, f)


# ---- the driver --------------------------------------------------------------------------

def machine():
    model, cores = platform.processor() or "?", os.cpu_count()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.M)
        if m:
            model = m.group(1).strip()
    except OSError:
        pass
    return model, cores


def cpu_busy_s():
    """CPU seconds spent busy by the whole machine since boot (/proc/stat), and
    by this process and its finished children: their difference over a run is
    what other processes took from it."""
    import resource
    mine = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        mine += r.ru_utime + r.ru_stime
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        busy = (sum(v[:8]) - v[3] - v[4]) / hz   # all but idle and iowait
    except (OSError, ValueError, IndexError):
        busy = float("nan")
    return busy, mine


def wait_idle(limit_s, cores):
    """Waits (up to limit_s) for a second in which the machine is idle
    (under 5% busy); whether it came."""
    end = time.monotonic() + limit_s
    while True:
        b0, _ = cpu_busy_s()
        time.sleep(1.0)
        b1, _ = cpu_busy_s()
        if (b1 - b0) / (cores or 1) < 0.05:
            return True
        if time.monotonic() >= end:
            return False


def disturbed(m):
    """Whether other processes took more than 5% of the machine (and more
    than a few clock ticks) during measurement m."""
    return m.get("other_cpu_share", 0) > 0.05 and m.get("other_cpu_s", 0) > 0.05


def find_dsc(arg):
    for p in [arg] if arg else [os.path.join(ROOT, d, "dsc") for d in ("build", "build-bench", "build-release")]:
        if p and os.path.isfile(p) and os.access(p, os.X_OK):
            return os.path.abspath(p)
    raise SystemExit("bench_host: no dsc executable (give --dsc PATH)")


def run_dsc(cmd, env):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"bench_host: {shlex.join(cmd)} exited {r.returncode}:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def rel_err(a_dir, b_dir, names):
    import numpy as np
    worst = 0.0
    for n in names:
        a = np.load(os.path.join(a_dir, n + ".npy")).astype(np.float64)
        b = np.load(os.path.join(b_dir, n + ".npy")).astype(np.float64)
        if a.shape != b.shape:
            return float("inf")
        den = np.linalg.norm(b)
        worst = max(worst, float(np.linalg.norm(a - b) / (den if den > 0 else 1.0)))
    return worst


def fmt_ms(v):
    return "-" if v is None else (f"{v:.3g}" if v < 10 else f"{v:.1f}")


def main():
    ap = argparse.ArgumentParser(description="dsc host JIT vs the interpreter vs numpy",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--dsc", help="the dsc executable (default: build/dsc, build-bench/dsc)")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated (default: all)")
    ap.add_argument("--iters", type=int, default=20, help="timed runs for dsc cpu and numpy (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up runs for dsc cpu and numpy (default 3)")
    ap.add_argument("--ref-iters", type=int, default=3, help="timed runs of the interpreter (default 3, no warm-up)")
    ap.add_argument("--threads", type=int, default=2, help="threads for dsc and numpy's BLAS (default 2)")
    ap.add_argument("--numpy-python", action="append", default=[],
                    help="a python with numpy to time (repeatable; default: this one)")
    ap.add_argument("--keep-openblas-env", action="store_true",
                    help="keep OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for the numpy workers")
    ap.add_argument("--profile", action="store_true", help="also print dsc's per-kernel profile (cpu)")
    ap.add_argument("--no-ref", action="store_true", help="skip the interpreter")
    ap.add_argument("--precisions", default="f32",
                    help="comma-separated dsc cpu --precision values to time too (f16, bf16, int8; "
                         "default f32 only): a table of their latency against f32 and output error")
    ap.add_argument("--retries", type=int, default=3,
                    help="measure again when other processes took > 5%% of the machine during it (default 3)")
    ap.add_argument("--wait-idle", type=float, default=120, metavar="S",
                    help="before measuring again, wait up to S seconds for an idle second (default 120)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write every result to this file")
    ap.add_argument("--keep", help="keep the data and outputs in this directory")
    ap.add_argument("--numpy-worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.numpy_worker:
        numpy_worker(a.numpy_worker)
        return 0
    try:
        import numpy  # noqa: F401  (the data is made here)
    except ImportError:
        raise SystemExit("bench_host: needs numpy (try /usr/bin/python3 with python3-numpy)")

    dsc = find_dsc(a.dsc)
    models = [m for m in a.models.split(",") if m]
    for m in models:
        if m not in MODELS:
            raise SystemExit(f"bench_host: unknown model '{m}' (known: {', '.join(MODELS)})")
    pythons = a.numpy_python or [sys.executable]
    work = a.keep or tempfile.mkdtemp(prefix="dsc-bench-")
    os.makedirs(work, exist_ok=True)

    t = str(a.threads)
    env_dsc = dict(os.environ, DSC_THREADS=t)
    env_np = dict(os.environ, OPENBLAS_NUM_THREADS=t, OMP_NUM_THREADS=t, MKL_NUM_THREADS=t, BLIS_NUM_THREADS=t)
    if not a.keep_openblas_env:
        env_np.pop("OPENBLAS_CORETYPE", None)
        env_np.pop("OPENBLAS_L2_SIZE", None)

    cpu_model, cores = machine()
    version = subprocess.run([dsc, "--version"], capture_output=True, text=True).stdout.strip()
    load0 = os.getloadavg()
    busy0, mine0 = cpu_busy_s()
    started = datetime.datetime.now()
    results = {"date": started.isoformat(timespec="seconds"), "machine": cpu_model, "cores": cores,
               "dsc": version, "command": shlex.join([sys.executable] + sys.argv),
               "threads": a.threads, "models": []}

    for name in models:
        path, dims = MODELS[name]
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        params, inputs = make_data(name, dims, a.seed)
        wfile = os.path.join(d, "weights.safetensors")
        write_safetensors(wfile, params)
        ifiles = {}
        for n, v in inputs.items():
            ifiles[n] = os.path.join(d, f"in_{n}.npy")
            numpy.save(ifiles[n], v)
        binds = ",".join(f"{k}={v}" for k, v in dims.items())
        base = [dsc, "bench", path, "--json", "--bind", binds, "--weights", wfile]
        for n, p in ifiles.items():
            base += ["--input", f"{n}={p}"]
        row = {"model": name, "dims": dims}
        print(f"bench_host: {name} {binds} ...", file=sys.stderr, flush=True)

        def guarded(what, fn):
            """fn() again (up to --retries times) while other processes took
            more than 5% of the machine during it; the share is recorded."""
            for attempt in range(a.retries + 1):
                b0, m0 = cpu_busy_s()
                t0 = time.monotonic()
                r = fn()
                b1, m1 = cpu_busy_s()
                other = max(0.0, (b1 - b0) - (m1 - m0))
                share = other / max(1e-9, (time.monotonic() - t0) * (cores or 1))
                r["other_cpu_s"], r["other_cpu_share"] = other, share
                if not disturbed(r):
                    break
                print(f"bench_host: {name} {what}: other processes took {100 * share:.0f}% of the machine"
                      + ("; again" if attempt < a.retries else "; giving up"), file=sys.stderr, flush=True)
                if attempt < a.retries:
                    wait_idle(a.wait_idle, cores)
            return r

        cmd = base + ["--device", "cpu", "--iters", str(a.iters), "--warmup", str(a.warmup),
                      "--output-dir", os.path.join(d, "out_cpu")]
        row["cpu"] = guarded("dsc cpu", lambda: run_dsc(cmd, env_dsc))
        row["precisions"] = {}
        for prec in [p for p in a.precisions.split(",") if p and p != "f32"]:
            pcmd = base + ["--device", "cpu", "--iters", str(a.iters), "--warmup", str(a.warmup),
                           f"--precision={prec}", "--output-dir", os.path.join(d, f"out_cpu_{prec}")]
            if a.profile:
                pcmd.append("--profile")
            row["precisions"][prec] = guarded(f"dsc cpu --precision={prec}", lambda: run_dsc(pcmd, env_dsc))
        if a.profile:
            pcmd = base + ["--device", "cpu", "--iters", str(a.iters), "--warmup", str(a.warmup), "--profile"]
            row["cpu_profile"] = guarded("dsc cpu --profile", lambda: run_dsc(pcmd, env_dsc))
        if not a.no_ref:
            rcmd = base + ["--device", "ref", "--iters", str(a.ref_iters), "--warmup", "0",
                           "--output-dir", os.path.join(d, "out_ref")]
            row["ref"] = guarded("dsc ref", lambda: run_dsc(rcmd, env_dsc))

        row["numpy"] = []
        for i, py in enumerate(pythons):
            spec = {"model": name, "weights": wfile, "inputs": ifiles, "iters": a.iters, "warmup": a.warmup,
                    "profile": a.profile,
                    "output_dir": os.path.join(d, f"out_numpy{i}"), "result": os.path.join(d, f"numpy{i}.json")}
            with open(os.path.join(d, f"numpy{i}_spec.json"), "w") as f:
                json.dump(spec, f)
            def worker():
                r = subprocess.run([py, os.path.abspath(__file__), "--numpy-worker",
                                    os.path.join(d, f"numpy{i}_spec.json")], capture_output=True, text=True, env=env_np)
                if r.returncode != 0:
                    raise SystemExit(f"bench_host: numpy worker {py} failed:\n{r.stderr[-3000:]}")
                with open(spec["result"]) as f:
                    return json.load(f)
            row["numpy"].append(guarded(f"numpy[{i}]", worker))

        outs = [os.path.splitext(f)[0] for f in os.listdir(os.path.join(d, "out_numpy0"))]
        ref_dir = os.path.join(d, "out_numpy0")
        row["err_cpu"] = rel_err(os.path.join(d, "out_cpu"), ref_dir, outs)
        for prec, pr in row["precisions"].items():
            pr["err_vs_f32"] = rel_err(os.path.join(d, f"out_cpu_{prec}"), os.path.join(d, "out_cpu"), outs)
        if "ref" in row:
            row["err_ref"] = rel_err(os.path.join(d, "out_ref"), ref_dir, outs)
        row["err_numpy"] = [rel_err(os.path.join(d, f"out_numpy{i}"), ref_dir, outs) for i in range(len(pythons))]
        results["models"].append(row)

    results["loadavg"] = [load0, os.getloadavg()]
    results["seconds"] = (datetime.datetime.now() - started).total_seconds()
    busy1, mine1 = cpu_busy_s()
    results["other_cpu_s"] = max(0.0, (busy1 - busy0) - (mine1 - mine0))
    results["available_cpu_s"] = results["seconds"] * (cores or 1)

    # ---- the report -------------------------------------------------------------------
    first = results["models"][0] if results["models"] else None
    print(f"date: {results['date']}; machine: {cpu_model}, {cores} cores; {version}")
    other = results["other_cpu_s"] / results["available_cpu_s"]
    print(f"run time {results['seconds']:.0f} s; load average (1 min) at start {load0[0]:.2f}, at end "
          f"{results['loadavg'][1][0]:.2f}; other processes used {results['other_cpu_s']:.1f} CPU-s "
          f"({100 * other:.1f}% of the machine)")
    if other > 0.05:
        print("note: other processes used the CPUs during this run; measurements they disturbed by more than 5% "
              "were repeated (--retries) and any left are marked (*)")
    if first:
        c = first["cpu"]
        print(f"dsc cpu: {c['target']}; DSC_THREADS={a.threads}")
        for i, n in enumerate(first["numpy"]):
            print(f"numpy[{i}]: numpy {n['numpy']} on python {n['python_version']} ({n['python']}); "
                  f"BLAS {n.get('blas')}; BLAS threads {n.get('threads')}")
    print(f"runs: dsc cpu and numpy {a.iters} timed after {a.warmup} warm-up; dsc ref {a.ref_iters} timed")
    print("")
    hdr = ["model", "dims", "dsc cpu median (min) ms", "GFLOP/s"]
    if not a.no_ref:
        hdr += ["dsc ref median ms", "ref / cpu"]
    for i in range(len(pythons)):
        hdr += [f"numpy[{i}] median (min) ms", f"numpy[{i}] / cpu"]
    hdr += ["max rel. error vs numpy[0]"]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for r in results["models"]:
        c = r["cpu"]
        cells = [r["model"], " ".join(f"{k}={v}" for k, v in r["dims"].items()),
                 f"{fmt_ms(c['median_ms'])} ({fmt_ms(c['min_ms'])})",
                 "-" if c.get("gflops_per_s") is None else f"{c['gflops_per_s']:.1f}"]
        if not a.no_ref:
            cells += [fmt_ms(r["ref"]["median_ms"]), f"{r['ref']['median_ms'] / c['median_ms']:.0f}x"]
        for n in r["numpy"]:
            cells += [f"{fmt_ms(n['median_ms'])} ({fmt_ms(n['min_ms'])})", f"{n['median_ms'] / c['median_ms']:.2f}"]
        if any(disturbed(m) for m in [c, r.get("ref", {})] + r["numpy"]):
            cells[0] += " (*)"
        errs = [r["err_cpu"]] + ([r["err_ref"]] if "err_ref" in r else []) + r["err_numpy"]
        cells.append(f"{max(errs):.1e}")
        print("| " + " | ".join(cells) + " |")
    print("")
    print("numpy[i] / cpu > 1: the host JIT is that many times faster than numpy[i].")
    contended = [r["model"] for r in results["models"]
                 if any(disturbed(m) for m in [r["cpu"], r.get("ref", {})] + r["numpy"])]
    if contended:
        print(f"(*) other processes took more than 5% of the machine during a measurement of: {', '.join(contended)}")
    if any(r["precisions"] for r in results["models"]):
        precs = [p for p in a.precisions.split(",") if p and p != "f32"]
        print("\nlower precisions on the host (dsc cpu --precision; no accuracy guard), same data:")
        hdr = ["model", "dims", "f32 median (min) ms"]
        for p in precs:
            hdr += [f"{p} median (min) ms", f"{p} / f32", f"{p} rel. error vs f32"]
        print("| " + " | ".join(hdr) + " |")
        print("|" + "---|" * len(hdr))
        for r in results["models"]:
            c = r["cpu"]
            cells = [r["model"], " ".join(f"{k}={v}" for k, v in r["dims"].items()),
                     f"{fmt_ms(c['median_ms'])} ({fmt_ms(c['min_ms'])})"]
            for p in precs:
                q = r["precisions"][p]
                cells += [f"{fmt_ms(q['median_ms'])} ({fmt_ms(q['min_ms'])})",
                          f"{q['median_ms'] / c['median_ms']:.2f}", f"{q['err_vs_f32']:.1e}"]
            if any(disturbed(m) for m in [c] + list(r["precisions"].values())):
                cells[0] += " (*)"
            print("| " + " | ".join(cells) + " |")
    if a.profile:
        for r in results["models"]:
            for prec, q in r["precisions"].items():
                print(f"\nprofile of {r['model']} at {prec} (dsc cpu, median {q['median_ms']:.3f} ms):")
                print("| kernel | median ms | share | GFLOP/s | GB/s |")
                print("|---|---|---|---|---|")
                for k in q["profile"]:
                    if k["load_time"]:
                        continue
                    g = "-" if k["gflops_per_s"] is None else f"{k['gflops_per_s']:.1f}"
                    b = "-" if k["gb_per_s"] is None else f"{k['gb_per_s']:.1f}"
                    print(f"| {k['name']} | {k['median_ms']:.3f} | {100 * k['median_ms'] / q['median_ms']:.1f}% "
                          f"| {g} | {b} |")
            p = r["cpu_profile"]
            print(f"\nprofile of {r['model']} (dsc cpu, median {p['median_ms']:.3f} ms):")
            print("| kernel | median ms | share | GFLOP/s | GB/s |")
            print("|---|---|---|---|---|")
            for k in p["profile"]:
                g = "-" if k["gflops_per_s"] is None else f"{k['gflops_per_s']:.1f}"
                b = "-" if k["gb_per_s"] is None else f"{k['gb_per_s']:.1f}"
                lt = " (load-time)" if k["load_time"] else ""
                print(f"| {k['name']}{lt} | {k['median_ms']:.3f} | {100 * k['median_ms'] / p['median_ms']:.1f}% "
                      f"| {g} | {b} |")
            print(f"| (outside kernels) | {p['profile_other_ms']:.3f} | "
                  f"{100 * p['profile_other_ms'] / p['median_ms']:.1f}% | | |")
            for i, n in enumerate(r["numpy"]):
                if not n.get("profile"):
                    continue
                print(f"\nnumpy[{i}] per stage of {r['model']} (each timed alone, median; whole layer "
                      f"{n['median_ms']:.3f} ms):")
                print("| stage | median ms |")
                print("|---|---|")
                for st in n["profile"]:
                    print(f"| {st['stage']} | {st['median_ms']:.3f} |")
                print(f"| (sum) | {sum(st['median_ms'] for st in n['profile']):.3f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    bad = [r["model"] for r in results["models"]
           if max([r["err_cpu"], r.get("err_ref", 0.0)] + r["err_numpy"]) > 1e-3]
    if bad:
        print(f"\nbench_host: outputs differ from numpy (rel. error > 1e-3): {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
