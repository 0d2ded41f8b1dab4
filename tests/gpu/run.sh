#!/usr/bin/env bash
# tests/gpu/run.sh -- the one GPU script.
#
# Builds dsc, runs every example and the random-graph suite on the GPU against
# the reference interpreter, then prints a table: per kernel, time, achieved
# GB/s and TFLOP/s against the hwdb peaks and against a copy-bandwidth and a
# cuBLAS GEMM measurement taken in the same run; per model, cold-JIT time,
# warm-cache load time and end-to-end latency against a cuBLAS-plus-unfused-
# kernels baseline taken in the same run.  Budget: under 5 minutes on one H200
# (each stage runs under `timeout` sized from what is left of the budget).
#
# Usage (from anywhere; it works in the repository root):
#     tests/gpu/run.sh                  # on a machine with a GPU
#     tests/gpu/run.sh --cpu-dry-run    # check the script itself without a GPU:
#                                       # runs what can run, always exits 1
# Exit status: 0 only when every stage PASSED.  A stage that cannot run yet
# says PENDING and why, a broken one FAIL; either makes the exit status 1.  No
# figure is ever printed that was not measured in this run.
#
# Stages:
#   device     nvidia-smi: the GPU, its driver and compute capability
#   build      cmake + build of dsc (Release, no test suites; without LLVM 16
#              the host backend is off) into build-gpu/ (or $DSC: a prebuilt dsc)
#   hwdb       `dsc hwdb`: dsc sees the driver and selects an entry for the GPU;
#              the entry's bandwidth and peaks feed the tables
#   bench_ref  tests/gpu/bench_ref.cu (nvcc, cuBLAS): device-to-device copy
#              GB/s and cublasGemmEx f16/bf16/tf32/f32 TFLOP/s, same run
#   examples   every examples/*.dsg with tests/gen_examples.py's real weights and
#              inputs: `dsc run --device cuda` against `--device ref`, and both
#              against the numpy references
#   randgraph  $DSC_GPU_SEEDS (default 200) models of tests/randgraph.c, random
#              inputs and weights, `--device cuda` against `--device ref`
#   timing     per model (examples at the sizes in BENCH below): cold JIT (empty
#              kernel cache), warm-cache load, end-to-end latency, per-kernel
#              times, and the cuBLAS + unfused baseline
#
# Comparison (cuda against ref): relative L2 error
# ||got - want|| / max(||want||, F sqrt(n)) per output, as in the pass
# equivalence suite (docs/testing.md): f32 1e-5 (F 0.1), f16 2e-3 and bf16
# 1.6e-2 (F 1), integers and bools exact; shapes and dtypes must match; a NaN
# or Inf where the reference has none fails.
#
# The timing interface this script expects of dsc (not implemented yet; the
# timing stage says PENDING until `dsc run --help` lists --bench):
#     dsc run MODEL --device cuda [--baseline=cublas] --bench=json [run options]
# prints one JSON object on standard output (and nothing else there):
#     {"device": "NVIDIA H200", "arch": "sm_90",
#      "load_ms": 812.5,            # model load: render, compile or cache hit, module load
#      "kernels_compiled": 7, "kernels_cached": 0,
#      "latency_ms": {"median": 0.41, "min": 0.39, "iterations": 200},
#                                   # one inference, inputs and outputs on the device
#      "kernels": [{"name": "k3_gemm_bias_gelu", "class": "gemm_f16", "dtype": "f16",
#                   "ms": 0.052, "bytes": 9437184, "flops": 1207959552}, ...]}
# "--baseline=cublas" runs the same graph unfused (every operation its own
# kernel, matmuls through cuBLAS) and reports the same fields.  The cold load
# is the first run with an empty $DSC_CACHE_DIR, the warm one the second.
#
# Building: the script builds dsc with cmake on the GPU machine.  Where that
# machine lacks the build's dependencies (flex, bison, pkg-config, libcjson),
# run `tests/gpu/run.sh --prepare` on a machine that has them: it builds
# build-gpu-host/dsc (no host backend) and copies the shared libraries it
# needs beyond glibc into build-gpu-host/lib; carry build-gpu-host and run
# `DSC=build-gpu-host/dsc tests/gpu/run.sh` there.
#
# Environment: DSC (a prebuilt dsc, skips the build), DSC_GPU_OUT (results,
# default build-gpu/results), DSC_GPU_SEEDS, DSC_GPU_JOBS (parallel runs,
# default nproc), DSC_GPU_BUDGET_S (default 290).
set -u -o pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
START=$(date +%s)
BUDGET=${DSC_GPU_BUDGET_S:-290}
DRY=0 PREPARE=0
case "${1:-}" in
  --cpu-dry-run) DRY=1 ;;
  --prepare) PREPARE=1 ;;
  "") ;;
  *) echo "usage: tests/gpu/run.sh [--cpu-dry-run | --prepare]" >&2; exit 2 ;;
esac

# --prepare: a dsc built here for a GPU machine that cannot build it (no flex,
# bison or libcjson there): build-gpu-host/dsc without the host backend, with
# the shared libraries it needs beyond glibc in build-gpu-host/lib.
if [ "$PREPARE" = 1 ]; then
  P=$ROOT/build-gpu-host
  mkdir -p "$P"
  cmake -S "$ROOT" -B "$P" -DCMAKE_BUILD_TYPE=Release -DDSC_TESTS=OFF -DDSC_WITH_LLVM=OFF >"$P/build.log" 2>&1 &&
    cmake --build "$P" -j"$(nproc)" --target dsc_cli >>"$P/build.log" 2>&1 ||
    { echo "prepare: build failed (see $P/build.log)"; exit 1; }
  mkdir -p "$P/lib"
  ldd "$P/dsc" | awk '/=> \// { print $3 }' |
    grep -vE '/lib(c|m|dl|pthread|rt|gcc_s|stdc\+\+)\.so' | xargs -r -I{} cp -L {} "$P/lib/"
  echo "prepared $P/dsc (libraries: $(ls "$P/lib" | tr '\n' ' '))"
  echo "on the GPU machine: carry build-gpu-host, then: DSC=build-gpu-host/dsc tests/gpu/run.sh"
  exit 0
fi
BUILD=$ROOT/build-gpu
OUT=${DSC_GPU_OUT:-$BUILD/results}
SEEDS=${DSC_GPU_SEEDS:-200}
JOBS=${DSC_GPU_JOBS:-$(nproc)}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$OUT" "$BUILD"
rm -rf "$OUT/randgraph_failures" "$OUT/timing" # results of an earlier run

# Model sizes for the timing stage: model, then --bind arguments.
BENCH=(
  "examples/bert_layer.dsg --bind B=8 --bind S=128"
  "examples/bert_layer_attention.dsg --bind B=8 --bind S=128"
  "examples/ffn_block.dsg --bind B=8 --bind S=128"
  "examples/cnn_block.dsg --bind N=32"
  "examples/mlp.dsg --bind B=256"
)

# ---- bookkeeping ---------------------------------------------------------------

NAMES=() STATES=() MSGS=()
stage() { # NAME PASS|FAIL|PENDING|SKIPPED MESSAGE
  NAMES+=("$1"); STATES+=("$2"); MSGS+=("$3")
  printf '== %-10s %-8s %s\n' "$1" "$2" "$3"
}
elapsed() { echo $(( $(date +%s) - START )); }
left() { local l=$(( BUDGET - $(elapsed) )); [ $l -lt 5 ] && l=5; echo $l; }
# at most $1 seconds, at most what is left
cap() { local l; l=$(left); [ "$1" -lt "$l" ] && echo "$1" || echo "$l"; }
last_error() { { grep -m1 -E "error:|Error:|CMake Error" "$1" || grep -m1 -iE "error|fail|not found|cannot" "$1"; } | cut -c1-200; }

summary() {
  echo
  echo "== summary ($(elapsed) s of a ${BUDGET} s budget; results in $OUT)"
  local rc=0 i
  for i in "${!NAMES[@]}"; do
    printf '  %-10s %-8s %s\n' "${NAMES[$i]}" "${STATES[$i]}" "${MSGS[$i]}"
    [ "${STATES[$i]}" = PASS ] || rc=1
  done | tee "$OUT/summary.txt"
  for i in "${!NAMES[@]}"; do [ "${STATES[$i]}" = PASS ] || rc=1; done
  [ "$DRY" = 1 ] && { echo "  (--cpu-dry-run: exit status 1 by definition)"; rc=1; }
  [ "$(elapsed)" -gt 300 ] && echo "  WARNING: over the 5-minute budget"
  exit $rc
}

PY=
for p in python3 /usr/bin/python3 /usr/local/bin/python3; do
  if "$p" -c 'import numpy' >/dev/null 2>&1; then PY=$p; break; fi
done

# The comparison of two output trees (ref and cuda): every .npy under REF must
# be in GOT with the same dtype and shape and values within tolerance.
cat >"$W/compare.py" <<'EOF'
import os, sys
import numpy as np
ref_root, got_root, label = sys.argv[1], sys.argv[2], sys.argv[3]
TOL = {"f32": (1e-5, 0.1), "f16": (2e-3, 1.0), "bf16": (1.6e-2, 1.0)}
def load(path):
    a = np.load(path)
    if a.dtype == np.dtype("<u2"):  # dsc's bf16 convention: raw bits in <u2
        return "bf16", (a.astype("<u4").reshape(-1) << 16).view("<f4").reshape(a.shape)
    kind = {"float32": "f32", "float16": "f16"}.get(str(a.dtype), str(a.dtype))
    return kind, a
bad = total = 0
worst = {}
for dirpath, _, files in sorted(os.walk(ref_root)):
    for f in sorted(files):
        if not f.endswith(".npy"):
            continue
        rp = os.path.join(dirpath, f)
        rel = os.path.relpath(rp, ref_root)
        gp = os.path.join(got_root, rel)
        total += 1
        if not os.path.exists(gp):
            print(f"FAIL {label} {rel}: not written by the GPU run"); bad += 1; continue
        (rk, r), (gk, g) = load(rp), load(gp)
        if rk != gk or r.shape != g.shape:
            print(f"FAIL {label} {rel}: got {gk}{list(g.shape)}, reference {rk}{list(r.shape)}"); bad += 1; continue
        if rk in TOL:
            r64, g64 = r.astype(np.float64), g.astype(np.float64)
            rf, gf = np.isfinite(r64), np.isfinite(g64)
            if np.any(rf & ~gf):
                print(f"FAIL {label} {rel}: {np.count_nonzero(rf & ~gf)} non-finite values where the reference has none")
                bad += 1; continue
            tol, floor = TOL[rk]
            m = rf & gf
            num = np.linalg.norm(g64[m] - r64[m])
            den = max(np.linalg.norm(r64[m]), floor * np.sqrt(max(r64.size, 1)))
            err = num / den if den > 0 else 0.0
            worst[rk] = max(worst.get(rk, 0.0), err)
            if err > tol:
                print(f"FAIL {label} {rel}: {rk} rel L2 error {err:.3e} > {tol:g}"); bad += 1
        elif not np.array_equal(r, g):
            print(f"FAIL {label} {rel}: {rk} values differ in {np.count_nonzero(r != g)} of {r.size} elements"); bad += 1
print(f"{label}: {total - bad}/{total} outputs match; worst rel L2 error: "
      + (", ".join(f"{k} {v:.2e}" for k, v in sorted(worst.items())) or "-"))
sys.exit(1 if bad or total == 0 else 0)
EOF

# ---- device -----------------------------------------------------------------------

SM=sm_90 GPU_CC= GPU_NAME="no GPU"
if command -v nvidia-smi >/dev/null 2>&1 &&
   nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader >"$OUT/nvidia-smi.csv" 2>&1 && [ -s "$OUT/nvidia-smi.csv" ] &&
   ! grep -qiE "failed|error|no devices" "$OUT/nvidia-smi.csv"; then
  IFS=, read -r GPU_NAME DRIVER GPU_CC MEM <"$OUT/nvidia-smi.csv"
  GPU_CC=${GPU_CC// /}
  SM=sm_${GPU_CC/./}
  stage device PASS "$GPU_NAME, driver${DRIVER}, compute capability $GPU_CC,${MEM}"
  nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
else
  msg="no GPU: nvidia-smi $(command -v nvidia-smi >/dev/null 2>&1 && echo "lists no device: $(head -c 200 "$OUT/nvidia-smi.csv")" || echo "not found")"
  stage device FAIL "$msg"
  [ "$DRY" = 1 ] || summary
fi

# ---- build --------------------------------------------------------------------------

if [ -n "${DSC:-}" ]; then
  case "$DSC" in /*) ;; *) DSC=$ROOT/$DSC ;; esac
  [ -d "$(dirname "$DSC")/lib" ] && export LD_LIBRARY_PATH="$(dirname "$DSC")/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if "$DSC" --version >"$OUT/build.log" 2>&1; then
    stage build PASS "prebuilt $DSC ($(cat "$OUT/build.log"))"
  else
    stage build FAIL "prebuilt \$DSC=$DSC does not run: $(head -c 200 "$OUT/build.log")"; DSC=
  fi
else
  args=(-S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDSC_TESTS=OFF)
  note=
  if ! command -v llvm-config-16 >/dev/null 2>&1 && [ ! -x /usr/lib/llvm-16/bin/llvm-config ]; then
    args+=(-DDSC_WITH_LLVM=OFF); note=" (no LLVM 16: host backend off)"
  fi
  t0=$(date +%s)
  if timeout "$(cap 150)" cmake "${args[@]}" >"$OUT/build.log" 2>&1 &&
     timeout "$(cap 150)" cmake --build "$BUILD" -j"$JOBS" --target dsc_cli >>"$OUT/build.log" 2>&1; then
    DSC=$BUILD/dsc
    stage build PASS "$(( $(date +%s) - t0 )) s$note"
  else
    stage build FAIL "cmake failed ($OUT/build.log): $(last_error "$OUT/build.log")"; DSC=
  fi
fi

# ---- hwdb ---------------------------------------------------------------------------------

HW_BW= HW_F16= HW_F32= HW_ARCH=
if [ -z "$DSC" ]; then
  stage hwdb SKIPPED "no dsc (build failed)"
else
  "$DSC" hwdb >"$OUT/hwdb.txt" 2>&1
  rc=$?
  if grep -q "no CUDA driver found" "$OUT/hwdb.txt"; then
    stage hwdb FAIL "dsc found no CUDA driver: $(grep -m1 -o 'no CUDA driver found.*' "$OUT/hwdb.txt" | cut -c1-200)"
  elif [ $rc -ne 0 ] || ! grep -q "selects sm_" "$OUT/hwdb.txt"; then
    stage hwdb FAIL "dsc hwdb exit $rc: $(last_error "$OUT/hwdb.txt")"
  else
    HW_ARCH=$(grep -m1 -o "selects sm_[0-9]*" "$OUT/hwdb.txt" | cut -d' ' -f2)
    fig=$(grep -m1 "figures used:" "$OUT/hwdb.txt")
    HW_BW=$(sed -E 's/.* ([0-9.]+) GB\/s.*/\1/' <<<"$fig")
    HW_F16=$(sed -E 's/.*f16 ([0-9.]+) TFLOP\/s.*/\1/' <<<"$fig")
    HW_F32=$(sed -E 's/.*f32 ([0-9.]+) TFLOP\/s.*/\1/' <<<"$fig")
    diffs=$(grep -c "<- differs" "$OUT/hwdb.txt")
    stage hwdb PASS "$HW_ARCH ($(grep -m1 -o 'selects sm_[0-9]* ([^)]*): [^(]*' "$OUT/hwdb.txt" | cut -d: -f2- | sed 's/^ //')); $HW_BW GB/s, f16 $HW_F16, f32 $HW_F32 TFLOP/s; $diffs figure(s) differ from the driver's"
  fi
fi

# ---- bench_ref ------------------------------------------------------------------------------

REF_COPY= REF_F16= REF_F32=
if ! command -v nvcc >/dev/null 2>&1; then
  stage bench_ref FAIL "nvcc not found: cannot build tests/gpu/bench_ref.cu"
elif ! timeout "$(cap 90)" nvcc -O3 -std=c++17 -arch="$SM" tests/gpu/bench_ref.cu -lcublas -o "$BUILD/bench_ref" \
       >"$OUT/bench_ref.build.log" 2>&1; then
  stage bench_ref FAIL "nvcc failed ($OUT/bench_ref.build.log): $(last_error "$OUT/bench_ref.build.log")"
else
  timeout "$(cap 90)" "$BUILD/bench_ref" >"$OUT/bench_ref.txt" 2>"$OUT/bench_ref.err"
  rc=$?
  val() { awk -v k="$1" '$1 == k && $2 != "FAILED" { print $2 }' "$OUT/bench_ref.txt"; }
  REF_COPY=$(val copy_d2d_gbs) REF_F16=$(val gemm_f16_tflops) REF_F32=$(val gemm_f32_tflops)
  if [ $rc -eq 0 ] && [ -n "$REF_COPY" ] && [ -n "$REF_F16" ]; then
    stage bench_ref PASS "copy $REF_COPY GB/s; cuBLAS f16 $REF_F16, bf16 $(val gemm_bf16_tflops), tf32 $(val gemm_tf32_tflops), f32 $REF_F32 TFLOP/s"
  else
    stage bench_ref FAIL "bench_ref exit $rc: $(head -c 200 "$OUT/bench_ref.err")"
  fi
fi

# ---- can dsc run on the GPU yet? ----------------------------------------------------------------

CUDA_RUN=no PROBE_MSG="no dsc (build failed)"
if [ -n "$DSC" ]; then
  "$DSC" run examples/mlp.dsg --random-inputs --random-weights --bind B=2 --device cuda \
    >"$OUT/probe.txt" 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then
    CUDA_RUN=yes
  elif grep -qE "this build|not implemented|GPU yet|unknown option" "$OUT/probe.txt"; then
    CUDA_RUN=pending PROBE_MSG="dsc run --device cuda is not implemented yet: $(head -n1 "$OUT/probe.txt" | cut -c1-160)"
  else
    CUDA_RUN=broken PROBE_MSG="dsc run --device cuda failed on examples/mlp.dsg (exit $rc): $(last_error "$OUT/probe.txt")"
  fi
fi
not_run() { # STAGE: PENDING or FAIL by the probe
  if [ "$CUDA_RUN" = pending ]; then stage "$1" PENDING "$PROBE_MSG"
  elif [ "$CUDA_RUN" = broken ]; then stage "$1" FAIL "$PROBE_MSG"
  else stage "$1" SKIPPED "$PROBE_MSG"; fi
}
# In a dry run the "GPU" side is the reference interpreter again, which checks
# the plumbing (data, runs, comparison) without claiming anything about CUDA.
GPU_DEVICE=cuda
[ "$DRY" = 1 ] && [ "$CUDA_RUN" != yes ] && [ -n "$DSC" ] && GPU_DEVICE=ref

# ---- examples --------------------------------------------------------------------------------------

run_examples() {
  local data=$W/ex/data fail=0
  "$PY" tests/gen_examples.py "$data" >"$OUT/examples.log" 2>&1 || { echo "gen_examples.py failed"; return 1; }
  local runs; runs=$("$PY" tests/gen_examples.py --list "$data") || { echo "gen_examples.py --list failed"; return 1; }
  while IFS=$'\t' read -r -a f; do
    local name=${f[0]} model=${f[1]} weights=${f[2]} args=() i side dev
    for i in "${f[@]:3}"; do args+=(--input "$i"); done
    for side in ref gpu; do
      local dir=$W/ex/$side; dev=ref; [ $side = gpu ] && dev=$GPU_DEVICE
      mkdir -p "$dir"
      if ! timeout "$(cap 60)" "$DSC" run "$model" --weights "$weights" "${args[@]}" --device "$dev" \
           --output-dir "$dir/$name" >>"$OUT/examples.log" 2>&1; then
        echo "dsc run $model --device $dev failed (see $OUT/examples.log)"; fail=1
      fi
    done
  done <<<"$runs"
  "$PY" "$W/compare.py" "$W/ex/ref" "$W/ex/gpu" examples >>"$OUT/examples.log" 2>&1 || fail=1
  "$PY" tests/gen_examples.py --check "$data" "$W/ex/gpu" >>"$OUT/examples.log" 2>&1 || fail=1
  grep -m1 "^examples:" "$OUT/examples.log"
  grep "^FAIL" "$OUT/examples.log" | head -n 5
  return $fail
}

if [ -z "$PY" ]; then
  stage examples FAIL "no python3 with numpy"
elif [ "$CUDA_RUN" = yes ] || [ "$GPU_DEVICE" = ref -a -n "$DSC" ]; then
  if msg=$(run_examples); then
    stage examples "$([ "$GPU_DEVICE" = ref ] && echo FAIL || echo PASS)" \
      "$([ "$GPU_DEVICE" = ref ] && echo "dry run (ref against ref, plumbing only): ")$(head -n1 <<<"$msg")"
  else
    stage examples FAIL "$(tr '\n' ' ' <<<"$msg" | cut -c1-300)"
  fi
else
  not_run examples
fi

# ---- random graphs -------------------------------------------------------------------------------------

run_randgraph() {
  cat >"$W/rg_dump.c" <<'EOF'
/* Writes DIR/seed_K.dsg for K in [FIRST, FIRST+N) and prints "K --bind D=V ..." per model. */
#include <stdio.h>
#include <stdlib.h>
#include "randgraph.h"
int main(int argc, char **argv) {
    if (argc != 4) return 2;
    long first = atol(argv[2]), n = atol(argv[3]);
    for (long s = first; s < first + n; s++) {
        RandGraph rg;
        randgraph_generate((uint64_t)s, &rg);
        char path[4096];
        snprintf(path, sizeof path, "%s/seed_%ld.dsg", argv[1], s);
        FILE *f = fopen(path, "w");
        if (!f || fputs(rg.text, f) < 0 || fclose(f) != 0) return 1;
        printf("%ld", s);
        for (int i = 0; i < rg.nbinds; i++) printf(" --bind %s=%lld", rg.bind_names[i], (long long)rg.bind_values[i]);
        printf("\n");
        randgraph_free(&rg);
    }
    return 0;
}
EOF
  local cc=${CC_FOR_BUILD:-cc}
  "$cc" -O1 -std=c17 -D_GNU_SOURCE -Itests -o "$W/rg_dump" "$W/rg_dump.c" tests/randgraph.c -lm \
    >"$OUT/randgraph.log" 2>&1 || { echo "cannot build the generator: $(last_error "$OUT/randgraph.log")"; return 1; }
  mkdir -p "$W/rg/models"
  "$W/rg_dump" "$W/rg/models" 0 "$SEEDS" >"$W/rg/list" || { echo "generator failed"; return 1; }
  # one line per run: seed device binds...; each run writes its outputs and a .fail marker on error
  cat >"$W/rg_one.sh" <<'EOF'
#!/usr/bin/env bash
dsc=$1 w=$2 dev=$3 side=$4 seed=$5; shift 5
out=$w/rg/$side/$seed
mkdir -p "$w/rg/$side"
if ! "$dsc" run "$w/rg/models/seed_$seed.dsg" --random-inputs --random-weights --seed "$seed" "$@" \
     --device "$dev" --output-dir "$out" >"$w/rg/log_${side}_$seed" 2>&1; then
  mkdir -p "$w/rg/fail"; cp "$w/rg/log_${side}_$seed" "$w/rg/fail/${side}_$seed"
fi
EOF
  local per_run=$(( $(left) - 20 )); [ $per_run -lt 10 ] && per_run=10
  { sed "s|^|ref ref |" "$W/rg/list"; sed "s|^|$GPU_DEVICE gpu |" "$W/rg/list"; } |
    timeout "$per_run" xargs -P "$JOBS" -L 1 bash "$W/rg_one.sh" "$DSC" "$W"
  local fails=0
  [ -d "$W/rg/fail" ] && fails=$(ls "$W/rg/fail" | wc -l)
  if [ "$fails" -gt 0 ]; then
    mkdir -p "$OUT/randgraph_failures"
    for f in $(ls "$W/rg/fail" | head -n 20); do
      cp "$W/rg/fail/$f" "$OUT/randgraph_failures/$f.log"
      cp "$W/rg/models/seed_${f#*_}.dsg" "$OUT/randgraph_failures/" 2>/dev/null
    done
    echo "$fails of $(( 2 * SEEDS )) runs failed (first ones in $OUT/randgraph_failures)"
  fi
  "$PY" "$W/compare.py" "$W/rg/ref" "$W/rg/gpu" "randgraph($SEEDS seeds)" >>"$OUT/randgraph.log" 2>&1
  local rc=$?
  grep "^FAIL" "$OUT/randgraph.log" | head -n 5
  grep -m1 "^randgraph" "$OUT/randgraph.log"
  [ "$fails" -eq 0 ] && [ $rc -eq 0 ]
}

if [ -z "$PY" ]; then
  stage randgraph FAIL "no python3 with numpy"
elif [ "$CUDA_RUN" = yes ] || [ "$GPU_DEVICE" = ref -a -n "$DSC" ]; then
  if msg=$(run_randgraph); then
    stage randgraph "$([ "$GPU_DEVICE" = ref ] && echo FAIL || echo PASS)" \
      "$([ "$GPU_DEVICE" = ref ] && echo "dry run (ref against ref, plumbing only): ")$(tail -n1 <<<"$msg")"
  else
    stage randgraph FAIL "$(tr '\n' ' ' <<<"$msg" | cut -c1-300)"
  fi
else
  not_run randgraph
fi

# ---- timing -------------------------------------------------------------------------------------------------

if [ "$CUDA_RUN" != yes ]; then
  not_run timing
elif ! "$DSC" run --help 2>/dev/null | grep -q -- "--bench"; then
  stage timing PENDING "dsc run has no --bench yet (the timing interface in this script's header)"
else
  mkdir -p "$OUT/timing"
  base=yes
  "$DSC" run --help 2>/dev/null | grep -q -- "--baseline" || base=no
  tfail=0
  for spec in "${BENCH[@]}"; do
    read -r -a a <<<"$spec"
    name=$(basename "${a[0]}" .dsg)
    cache=$W/cache_$name
    common=("${a[@]}" --random-inputs --random-weights --device cuda --bench=json)
    DSC_CACHE_DIR=$cache timeout "$(cap 60)" "$DSC" run "${common[@]}" >"$OUT/timing/$name.cold.json" 2>"$OUT/timing/$name.log" &&
    DSC_CACHE_DIR=$cache timeout "$(cap 60)" "$DSC" run "${common[@]}" >"$OUT/timing/$name.warm.json" 2>>"$OUT/timing/$name.log" || tfail=1
    if [ $base = yes ]; then
      DSC_CACHE_DIR=$cache timeout "$(cap 60)" "$DSC" run "${common[@]}" --baseline=cublas \
        >"$OUT/timing/$name.baseline.json" 2>>"$OUT/timing/$name.log" || tfail=1
    fi
  done
  if [ $tfail -ne 0 ]; then
    stage timing FAIL "a timed run failed (logs in $OUT/timing)"
  elif [ $base = no ]; then
    stage timing PENDING "dsc run has no --baseline=cublas yet: models timed, baseline column empty"
  else
    stage timing PASS "${#BENCH[@]} models"
  fi
fi

# ---- the tables ------------------------------------------------------------------------------------------------

if [ -n "$PY" ]; then
  { echo "# tests/gpu/run.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $GPU_NAME, $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no git')"
  "$PY" - "$OUT" "${HW_ARCH:-}" "${HW_BW:-}" "${HW_F16:-}" "${HW_F32:-}" "${REF_COPY:-}" "${REF_F16:-}" "${REF_F32:-}" \
    <<'EOF'

import glob, json, os, sys
out, arch, hw_bw, hw_f16, hw_f32, ref_copy, ref_f16, ref_f32 = sys.argv[1:9]
num = lambda s: float(s) if s else None
hw_bw, hw_f16, hw_f32, ref_copy, ref_f16, ref_f32 = map(num, (hw_bw, hw_f16, hw_f32, ref_copy, ref_f16, ref_f32))
def pct(x, of):
    return f"{100 * x / of:.0f}%" if x is not None and of else "-"
def f(x, fmt):
    return format(x, fmt) if x is not None else "-"
print()
print("## Ceilings (this run)")
print()
print("| figure | hwdb (%s) | measured here |" % (arch or "no entry"))
print("|---|---|---|")
print(f"| memory bandwidth GB/s | {f(hw_bw, '.0f')} | {f(ref_copy, '.0f')} (cudaMemcpy D2D, read+write) |")
print(f"| f16 TFLOP/s | {f(hw_f16, '.0f')} | {f(ref_f16, '.1f')} (cublasGemmEx 8192^3) |")
print(f"| f32 TFLOP/s | {f(hw_f32, '.1f')} | {f(ref_f32, '.1f')} (cublasGemmEx 8192^3, no TF32) |")
def load(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None
models = sorted({os.path.basename(p).split(".")[0] for p in glob.glob(os.path.join(out, "timing", "*.json"))})
print()
print("## Per kernel")
print()
if not models:
    print("(no timing: the timing stage did not run; see the summary)")
else:
    print("| model | kernel | class | time us | GB/s | % hwdb bw | % copy | TFLOP/s | % hwdb peak | % cuBLAS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for m in models:
        warm = load(os.path.join(out, "timing", m + ".warm.json")) or {}
        for k in warm.get("kernels", []):
            ms, by, fl = k.get("ms"), k.get("bytes"), k.get("flops")
            if not ms:
                continue
            gbs = by / (ms * 1e-3) / 1e9 if by else None
            tfl = fl / (ms * 1e-3) / 1e12 if fl else None
            half = k.get("dtype") in ("f16", "bf16")
            peak, cub = (hw_f16, ref_f16) if half else (hw_f32, ref_f32)
            print(f"| {m} | {k.get('name')} | {k.get('class', '-')} | {ms * 1e3:.1f} | {f(gbs, '.0f')} | {pct(gbs, hw_bw)} "
                  f"| {pct(gbs, ref_copy)} | {f(tfl, '.2f')} | {pct(tfl, peak)} | {pct(tfl, cub)} |")
print()
print("## Per model")
print()
if not models:
    print("(no timing: the timing stage did not run; see the summary)")
else:
    print("| model | cold JIT ms | warm load ms | latency ms (median) | baseline ms | speed-up |")
    print("|---|---|---|---|---|---|")
    for m in models:
        cold, warm, base = (load(os.path.join(out, "timing", f"{m}.{s}.json")) or {} for s in ("cold", "warm", "baseline"))
        lat = (warm.get("latency_ms") or {}).get("median")
        blat = (base.get("latency_ms") or {}).get("median")
        print(f"| {m} | {f(cold.get('load_ms'), '.1f')} | {f(warm.get('load_ms'), '.1f')} | {f(lat, '.3f')} "
              f"| {f(blat, '.3f')} | {f(blat / lat if lat and blat else None, '.2f')} |")
EOF
  } | tee "$OUT/tables.md"
fi

summary
