#!/usr/bin/env bash
# The precision arithmetic of docs/precision.md checked against an
# independent numpy implementation of the documented formulas: a small linear
# layer (one all-zero input row, to exercise the scale floor) run with
# --precision=int8, f16 and bf16 on the interpreter and the host JIT.
# int8 must match to f32 rounding (the integer accumulation is exact);
# f16/bf16 to the rounding of the half-precision result.  Then the CLI:
# --stats weight bytes per dtype, the guard's table, usage errors.
# Fails (never skips) without numpy.
set -u
dsc=$1 fail=0 tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for py in python3 /usr/bin/python3 /usr/local/bin/python3 none; do "$py" -c 'import numpy' 2>/dev/null && break; done
[ "$py" != none ] || { echo "FAIL no python3 with numpy"; exit 1; }

cat >"$tmp/q.dsg" <<'EOF'
model q {
  weights "q.safetensors"
  dim B
  input x : f32[B, 24]
  param w : f32[10, 24]
  param b : f32[10]
  output y = linear(x, w, b)
}
EOF

"$py" - "$tmp" <<'EOF' || { echo "FAIL making the data"; exit 1; }
import sys, numpy as np
sys.path.insert(0, "tests")
from gen_examples import write_safetensors
d = sys.argv[1]
rng = np.random.default_rng(2026)
x = rng.standard_normal((5, 24)).astype(np.float32)
x[2] = 0
w = (rng.standard_normal((10, 24)) * 0.3).astype(np.float32)
b = rng.standard_normal(10).astype(np.float32)
np.save(f"{d}/x.npy", x)
write_safetensors(f"{d}/q.safetensors", {"w": w, "b": b})
EOF

for prec in int8 f16 bf16; do
  for dev in ref cpu; do
    if ! "$dsc" run "$tmp/q.dsg" --precision=$prec --device $dev --input x="$tmp/x.npy" \
         --output-dir "$tmp/out-$prec-$dev" >"$tmp/log" 2>&1; then
      echo "FAIL dsc run --precision=$prec --device $dev:"; cat "$tmp/log"; fail=1
    fi
  done
done

"$py" - "$tmp" <<'EOF' || fail=1
import json, struct, sys
import numpy as np
d = sys.argv[1]
f32 = np.float32

def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__": continue
        a, e = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + a:8 + n + e], dtype=np.float32).reshape(v["shape"])
    return out

st = read_st(f"{d}/q.safetensors")
x, w, b = np.load(f"{d}/x.npy"), st["w"], st["b"]

# int8, docs/precision.md: symmetric per output channel (w), dynamic per row (x)
def scale(v, axis):
    return (np.maximum(np.abs(v).max(axis=axis, keepdims=True), f32(1e-30)) / f32(127)).astype(f32)
def quant(v, s):
    t = np.clip((v / s).astype(f32), f32(-127), f32(127))
    r = (t + np.where(t < 0, f32(-0.5), f32(0.5))).astype(f32)
    return np.trunc(r).astype(np.int8)            # cast truncates toward zero
sx, sw = scale(x, 1), scale(w, 1)
acc = quant(x, sx).astype(np.int64) @ quant(w, sw).astype(np.int64).T
assert np.abs(acc).max() < 2**31
want8 = ((acc.astype(f32) * sx).astype(f32) * sw.reshape(-1)).astype(f32) + b

def bf16(v):  # round to nearest even, as ir_f32_to_bf16
    u = np.asarray(v, dtype=f32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(f32)
def half(v): return np.asarray(v, dtype=f32).astype(np.float16).astype(f32)

def lin(rnd):  # operands rounded, products summed in double, result rounded when stored
    return rnd((rnd(x).astype(np.float64) @ rnd(w).astype(np.float64).T + rnd(b)).astype(f32))

# the interpreter executes the documented semantics exactly (f32 rounding aside);
# the host accumulates in f32, which may move a half-precision result by one ulp
wants = {"int8": (want8, 1e-6, 1e-6), "f16": (lin(half), 1e-6, 2.0**-11), "bf16": (lin(bf16), 1e-6, 2.0**-8)}
ok = True
for prec, (want, tol_ref, tol_cpu) in wants.items():
    for dev in ("ref", "cpu"):
        tol = tol_ref if dev == "ref" else tol_cpu
        got = np.load(f"{d}/out-{prec}-{dev}/y.npy")
        rel = np.linalg.norm(got - want) / np.linalg.norm(want)
        exact32 = np.linalg.norm(got - (x @ w.T + b)) / np.linalg.norm(x @ w.T + b)
        print(f"{prec} {dev}: relative L2 error against numpy {rel:.3g} (tolerance {tol}); against f32 {exact32:.3g}")
        if not rel <= tol or exact32 == 0:
            print(f"FAIL {prec} {dev}"); ok = False
    if prec == "int8" and not np.array_equal(np.load(f"{d}/out-int8-ref/y.npy")[2], b):
        print("FAIL the zero row must give exactly b"); ok = False
sys.exit(0 if ok else 1)
EOF

# calibration: static per-tensor scales from two input sets (min-max and the
# 90th percentile of |x|), baked into the compiled graph as literals; the
# dump, run on the interpreter and the host, against numpy
"$py" - "$tmp" <<'EOF' || { echo "FAIL making the calibration sets"; exit 1; }
import os, sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(7)
for s in ("a", "b"):
    os.makedirs(f"{d}/cal/{s}")
    np.save(f"{d}/cal/{s}/x.npy", (rng.standard_normal((4, 24)) * 0.8).astype(np.float32))
EOF
for how in minmax p90; do
  extra=(); [ $how = p90 ] && extra=(--calibrate-percentile 90)
  if ! "$dsc" compile "$tmp/q.dsg" --precision=int8 --calibrate "$tmp/cal" "${extra[@]}" --weights "$tmp/q.safetensors" --no-guard \
       -o "$tmp/q.cal-$how.dsg" 2>"$tmp/log"; then
    echo "FAIL compile --calibrate ($how):"; cat "$tmp/log"; fail=1
  fi
  grep -q "calibration: 2 input sets" "$tmp/log" || { echo "FAIL calibration report ($how):"; cat "$tmp/log"; fail=1; }
  for dev in ref cpu; do
    "$dsc" run "$tmp/q.cal-$how.dsg" --device $dev --input x="$tmp/x.npy" --output-dir "$tmp/out-cal-$how-$dev" \
      >"$tmp/log" 2>&1 || { echo "FAIL run the calibrated dump ($how, $dev):"; cat "$tmp/log"; fail=1; }
  done
done
"$py" - "$tmp" <<'EOF' || fail=1
import json, struct, sys
import numpy as np
d, f32 = sys.argv[1], np.float32
raw = open(f"{d}/q.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
st = {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], dtype=f32).reshape(v["shape"])
      for k, v in hdr.items() if k != "__metadata__"}
x, w, b = np.load(f"{d}/x.npy"), st["w"], st["b"]
cal = np.abs(np.concatenate([np.load(f"{d}/cal/{s}/x.npy").ravel() for s in ("a", "b")]).astype(np.float64))
srt = np.sort(cal)
ranges = {"minmax": srt[-1], "p90": srt[int(np.ceil(0.9 * len(srt))) - 1]}
def quant(v, s):
    t = np.clip((v / s).astype(f32), f32(-127), f32(127))
    return np.trunc((t + np.where(t < 0, f32(-0.5), f32(0.5))).astype(f32)).astype(np.int8)
sw = (np.maximum(np.abs(w).max(axis=1, keepdims=True), f32(1e-30)) / f32(127)).astype(f32)
ok = True
for how, r in ranges.items():
    sx = f32(max(r, 1e-30) / 127)                  # the static scale, rounded to f32
    acc = quant(x, sx).astype(np.int64) @ quant(w, sw).astype(np.int64).T
    want = ((acc.astype(f32) * sx).astype(f32) * sw.reshape(-1)).astype(f32) + b
    for dev in ("ref", "cpu"):
        got = np.load(f"{d}/out-cal-{how}-{dev}/y.npy")
        rel = np.linalg.norm(got - want) / np.linalg.norm(want)
        print(f"int8 calibrated {how} {dev}: relative L2 error against numpy {rel:.3g} (tolerance 1e-6)")
        if not rel <= 1e-6: print(f"FAIL calibrated {how} {dev}"); ok = False
sys.exit(0 if ok else 1)
EOF
# dsc calibrate prints the scale the compiled graph uses
"$dsc" calibrate "$tmp/q.dsg" --data "$tmp/cal" --weights "$tmp/q.safetensors" >"$tmp/log" 2>&1 || { echo "FAIL dsc calibrate:"; cat "$tmp/log"; fail=1; }
scale=$(awk '/^  linear/ {print $NF}' "$tmp/log")
grep -q "div(x, $scale)" "$tmp/q.cal-minmax.dsg" || { echo "FAIL dsc calibrate's scale $scale is not the compiled one:"; cat "$tmp/log"; grep "div(x" "$tmp/q.cal-minmax.dsg"; fail=1; }
mkdir -p "$tmp/cal/c" && cp "$tmp/x.npy" "$tmp/cal/c/other.npy"
"$dsc" calibrate "$tmp/q.dsg" --data "$tmp/cal" >"$tmp/log" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "calibration set '.*/cal/c' has other inputs" "$tmp/log" || { echo "FAIL sets with other inputs: rc $rc"; cat "$tmp/log"; fail=1; }
"$dsc" compile "$tmp/q.dsg" --precision=int8 --calibrate "$tmp/nowhere" >"$tmp/log" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "is not a directory" "$tmp/log" || { echo "FAIL --calibrate of a missing directory: rc $rc"; cat "$tmp/log"; fail=1; }

# --stats: weights per dtype
out=$("$dsc" compile "$tmp/q.dsg" --precision=int8 --no-guard --stats=json -o "$tmp/q.int8.dsg" 2>&1)
echo "$out" | grep -q '"weight_bytes_by_dtype":{"f32":80,"i8":240}' || { echo "FAIL int8 weight bytes: $out"; fail=1; }
# the guard prints its table; a budget below what f32 gives is an error
"$dsc" compile examples/mlp.dsg --precision=int8 --bind B=4 -o "$tmp/m.dsg" 2>"$tmp/log" || { echo "FAIL guard:"; cat "$tmp/log"; fail=1; }
grep -q "precision guard: int8, budget 0.02" "$tmp/log" || { echo "FAIL no guard table:"; cat "$tmp/log"; fail=1; }
grep -q "@precision(dtype=i8)" "$tmp/m.dsg" || { echo "FAIL no @precision in the dump"; fail=1; }
# usage errors
"$dsc" compile examples/mlp.dsg --precision=f8 >"$tmp/log" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "must be f32, f16, bf16 or int8" "$tmp/log" || { echo "FAIL --precision=f8: rc $rc"; cat "$tmp/log"; fail=1; }
"$dsc" compile examples/mlp.dsg --precision=int8 --max-rel-error x >"$tmp/log" 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL --max-rel-error x: rc $rc"; fail=1; }

[ $fail -eq 0 ] && echo "precision: all checks passed"
exit $fail
