#!/usr/bin/env bash
# dsc bench: usage errors, exit statuses, the text report and the --json
# object (keys present, values sane), --profile, --output-dir on the same data
# as dsc run.  Functional only: no timing is asserted beyond order and sign.
set -u
dsc=$1
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export DSC_CACHE_DIR=$tmp/cache DSC_THREADS=2
expect() { # WANT_RC DESCRIPTION -- COMMAND...
  local want=$1 what=$2; shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ $rc -ne "$want" ]; then
    echo "FAIL $what: exit $rc, expected $want"; head -c 800 "$tmp/err"; fail=1
  fi
}
has() { # FILE PATTERN DESCRIPTION
  grep -qE -- "$2" "$1" || { echo "FAIL $3: '$2' not in output"; head -c 800 "$1"; fail=1; }
}
py=
for p in python3 /usr/bin/python3 /usr/local/bin/python3; do
  if "$p" -c 'import json' >/dev/null 2>&1; then py=$p; break; fi
done
# check_json FILE DESCRIPTION PYTHON-EXPRESSIONS... (each must be true; `o` is the object)
check_json() {
  local file=$1 what=$2; shift 2
  if [ -z "$py" ]; then has "$file" '"median_ms":' "$what"; return; fi
  "$py" - "$file" "$@" <<'PY' || { echo "FAIL $what"; head -c 1500 "$file"; echo; fail=1; }
import json, sys
lines = open(sys.argv[1]).read().strip().splitlines()
assert len(lines) == 1, f"{len(lines)} lines, expected one JSON object"
o = json.loads(lines[0])
for key in ("model", "device", "target", "threads", "dims", "iters", "warmup", "load_ms", "data_ms", "compile_ms",
            "first_ms", "median_ms", "min_ms", "mean_ms", "max_ms", "throughput_per_s", "flops", "gflops_per_s",
            "bytes", "kernels", "samples_ms"):
    assert key in o, f"key {key} missing"
assert 0 < o["min_ms"] <= o["median_ms"] <= o["max_ms"], "min <= median <= max, all > 0"
assert o["min_ms"] <= o["mean_ms"] <= o["max_ms"], "min <= mean <= max"
assert len(o["samples_ms"]) == o["iters"] and min(o["samples_ms"]) == o["min_ms"], "samples"
assert abs(o["throughput_per_s"] * o["median_ms"] - 1000) < 1e-6 * 1000, "throughput = 1000 / median_ms"
for expr in sys.argv[2:]:
    assert eval(expr), f"not true: {expr}"
PY
}

# usage
expect 0 "bench --help" -- "$dsc" bench --help;     has "$tmp/out" "^usage: dsc bench" "bench --help"
expect 0 "help bench" -- "$dsc" help bench;         has "$tmp/out" "^usage: dsc bench" "help bench"
expect 0 "dsc --help lists bench" -- "$dsc" --help; has "$tmp/out" "^  bench FILE" "dsc --help"
expect 2 "no file" -- "$dsc" bench
expect 2 "two files" -- "$dsc" bench examples/mlp.dsg examples/mlp.dsg
expect 2 "unknown option" -- "$dsc" bench examples/mlp.dsg --bogus
expect 2 "--iters 0" -- "$dsc" bench examples/mlp.dsg --iters 0
expect 2 "--iters x" -- "$dsc" bench examples/mlp.dsg --iters x
expect 2 "--warmup -1" -- "$dsc" bench examples/mlp.dsg --warmup -1
expect 2 "--device bogus" -- "$dsc" bench examples/mlp.dsg --device bogus
expect 2 "--device cuda" -- "$dsc" bench examples/mlp.dsg --device cuda
expect 2 "bad --bind" -- "$dsc" bench examples/mlp.dsg --bind B=x
expect 2 "bad --input" -- "$dsc" bench examples/mlp.dsg --input x
expect 2 "--iters without value" -- "$dsc" bench examples/mlp.dsg --iters
expect 1 "missing model" -- "$dsc" bench "$tmp/nonexistent.dsg"; has "$tmp/err" "cannot open" "missing model"
expect 1 "bad model" -- "$dsc" bench tests/diagnostics/shapes.dsg
expect 1 "unknown dim" -- "$dsc" bench examples/mlp.dsg --device ref --bind Q=3
has "$tmp/err" "no dim 'Q'" "unknown dim"
expect 1 "missing weights file" -- "$dsc" bench examples/mlp.dsg --device ref --weights "$tmp/none.safetensors"
expect 1 "missing input file" -- "$dsc" bench examples/mlp.dsg --device ref --input x="$tmp/none.npy"

# the interpreter: json and text
expect 0 "ref json" -- "$dsc" bench examples/mlp.dsg --device ref --iters 3 --warmup 1 --bind B=2 --json
check_json "$tmp/out" "ref json" 'o["device"] == "ref"' 'o["iters"] == 3' 'o["warmup"] == 1' \
  'o["dims"] == {"B": 2}' 'o["model"] == "mlp"' 'o["threads"] == 1' 'o["compile_ms"] == 0' \
  'o["flops"] is None or o["flops"] > 0'
expect 0 "ref text" -- "$dsc" bench examples/mlp.dsg --device ref --iters 2 --warmup 0 --bind B=2
has "$tmp/out" "^bench mlp \(examples/mlp.dsg\)" "text header"
has "$tmp/out" "^  device      ref: reference interpreter" "text device"
has "$tmp/out" "^  dims        B=2$" "text dims"
has "$tmp/out" "^  latency     median [0-9.]+ ms, min [0-9.]+ ms, mean [0-9.]+ ms, max [0-9.]+ ms \(2 runs after 0 warm-up\)" "text latency"
has "$tmp/out" "^  throughput  [0-9.]+ inferences/s" "text throughput"
has "$tmp/out" "^logits: f32\[2,10\]" "text output summary"
expect 0 "ref --profile warns" -- "$dsc" bench examples/mlp.dsg --device ref --iters 1 --bind B=2 --profile
has "$tmp/err" "warning: --profile times the kernels of the host backend" "ref --profile"

# --output-dir: the last run's outputs, computed on the data dsc run makes with the same seed
expect 0 "ref --output-dir" -- "$dsc" bench examples/mlp.dsg --device ref --iters 1 --warmup 0 --bind B=3 --seed 7 \
  --output-dir "$tmp/bench_out"
expect 0 "run, same seed" -- "$dsc" run examples/mlp.dsg --device ref --random-inputs --random-weights --bind B=3 \
  --seed 7 --output-dir "$tmp/run_out"
for o in logits probs; do
  cmp -s "$tmp/bench_out/$o.npy" "$tmp/run_out/$o.npy" || { echo "FAIL bench and run differ on $o.npy"; fail=1; }
done
# an input given as a file is used (its shape binds B); one of the wrong shape is an error
expect 1 "--input of the wrong shape" -- "$dsc" bench examples/mlp.dsg --device ref --iters 1 \
  --input x="$tmp/bench_out/logits.npy"
has "$tmp/err" "input 'x': expected f32\[B,784\]" "--input of the wrong shape"
if [ -n "$py" ]; then
  "$py" - "$tmp/x.npy" <<'PY'
import struct, sys
header = "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 784), }"
header += " " * (-(10 + len(header) + 1) % 64) + "\n"
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    f.write(struct.pack("<f", 0.5) * (5 * 784))
PY
  expect 0 "ref --input" -- "$dsc" bench examples/mlp.dsg --device ref --iters 1 --warmup 0 --input x="$tmp/x.npy" --json
  check_json "$tmp/out" "ref --input" 'o["dims"] == {"B": 5}'
fi

# the host JIT (when this build has it) and auto
if "$dsc" bench examples/mlp.dsg --device cpu --iters 1 --warmup 0 --bind B=2 >"$tmp/out" 2>"$tmp/err"; then
  expect 0 "cpu json" -- "$dsc" bench examples/cnn_block.dsg --device cpu --iters 3 --warmup 1 --bind N=2 --json --profile
  check_json "$tmp/out" "cpu json" 'o["device"] == "cpu"' 'o["threads"] >= 1' 'o["kernels"] > 0' \
    'o["flops"] > 0 and o["bytes"] > 0 and o["gflops_per_s"] > 0' 'o["compile_ms"] > 0' \
    'o["kernels_compiled"] + o["kernels_cached"] > 0' \
    'len(o["profile"]) == o["kernels"]' \
    'all(k["median_ms"] >= 0 and k["min_ms"] <= k["median_ms"] and k["name"] for k in o["profile"])' \
    'any(k["load_time"] for k in o["profile"])' \
    'sum(k["median_ms"] for k in o["profile"]) <= o["max_ms"]' \
    'abs(o["median_ms"] - sum(k["median_ms"] for k in o["profile"]) - o["profile_other_ms"]) < 1e-9'
  # a second process finds the kernels in the disk cache
  expect 0 "cpu json, cached" -- "$dsc" bench examples/cnn_block.dsg --device cpu --iters 1 --bind N=2 --json
  check_json "$tmp/out" "cpu json, cached" 'o["kernels_compiled"] == 0 and o["kernels_cached"] > 0'
  expect 0 "cpu --no-cache" -- "$dsc" bench examples/cnn_block.dsg --device cpu --iters 1 --bind N=2 --json --no-cache
  check_json "$tmp/out" "cpu --no-cache" 'o["kernels_compiled"] > 0 and o["kernels_cached"] == 0'
  expect 0 "cpu text --profile" -- "$dsc" bench examples/mlp.dsg --device cpu --iters 2 --bind B=4 --profile -O1
  has "$tmp/out" "^  device      cpu: " "cpu text device"
  has "$tmp/out" "^  compile     [0-9.]+ ms lowering and JIT: [0-9]+ kernels? \([0-9]+ compiled, [0-9]+ from the cache\)" "cpu text compile"
  has "$tmp/out" "GFLOP/s \(estimates per inference: " "cpu text GFLOP/s"
  has "$tmp/out" "^  kernel \(per inference\) +median ms +min ms +share +GFLOP/s +GB/s" "cpu text profile header"
  has "$tmp/out" "^  mlp_n[0-9]+_0 " "cpu text profile row (-O1: a kernel per node)"
  has "$tmp/out" "^  \(outside kernels\)" "cpu text profile rest"
  # the JIT computes what the interpreter computes on the same data
  expect 0 "cpu --output-dir" -- "$dsc" bench examples/mlp.dsg --device cpu --iters 1 --bind B=3 --seed 7 \
    --output-dir "$tmp/cpu_out"
  if [ -n "$py" ] && "$py" -c 'import numpy' 2>/dev/null; then
    "$py" -c '
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
sys.exit(0 if a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-5) else 1)' \
      "$tmp/cpu_out/logits.npy" "$tmp/run_out/logits.npy" || { echo "FAIL cpu and ref outputs differ"; fail=1; }
  fi
  expect 0 "auto json" -- "$dsc" bench examples/mlp.dsg --iters 1 --bind B=2 --json
  check_json "$tmp/out" "auto json" 'o["device"] == "cpu"'
else
  has "$tmp/err" "not built" "cpu unavailable: says why"
  echo "note: the host backend is not built; cpu checks skipped"
  expect 0 "auto falls back to ref" -- "$dsc" bench examples/mlp.dsg --iters 1 --bind B=2 --json
  check_json "$tmp/out" "auto json" 'o["device"] == "ref"'
  has "$tmp/err" "warning: " "auto fallback warns"
fi

[ $fail -eq 0 ] && echo "bench: all checks passed"
exit $fail
