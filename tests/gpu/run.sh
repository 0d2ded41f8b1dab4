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
#   examples   every examples/*.dsg: `dsc run --device cuda` against `--device
#              ref`.  With python3 and numpy: on tests/gen_examples.py's real
#              weights and inputs, and both sides also against its numpy
#              references; without numpy: on seeded random inputs and weights
#              (the message says which)
#   precision  every examples/*.dsg compiled at f16, bf16 and int8 (--precision,
#              docs/precision.md), `--device cuda` against `--device ref` on
#              seeded random inputs and weights
#   randgraph  $DSC_GPU_SEEDS (default 200) models of tests/randgraph.c, random
#              inputs and weights, `--device cuda` against `--device ref` (a
#              model the interpreter itself refuses is skipped and counted)
#   timing     per model (examples at the sizes in BENCH below): cold JIT (empty
#              kernel cache), warm-cache load, end-to-end latency, per-kernel
#              times, and the cuBLAS + unfused baseline
#
# Comparison (cuda against ref; a small C program built here, so no numpy is
# needed): relative L2 error ||got - want|| / max(||want||, F sqrt(n)) per
# output, with the host backend's tolerances (tests/unit/test_host.c): f32
# 1e-4 (F 0.1), f16 2e-3 and bf16 1.6e-2 (F 1), and an f32 output of a model
# that has f16 (bf16) values gets f16's (bf16's) tolerance, because kernels
# keep fused 16-bit intermediates in f32 where the interpreter rounds them;
# integers and bools exact; shapes and dtypes must match; a NaN or Inf where
# the reference has none fails.
#
# The timing interface (docs/cuda.md, "Timing"): with DSC_CUDA_BENCH=FILE,
#     DSC_CUDA_BENCH=FILE [DSC_CUDA_BENCH_ITERS=N] dsc run MODEL --device cuda [run options]
# also times the loaded model and writes one JSON object to FILE:
#     {"device": "NVIDIA H200", "arch": "sm_90", "hwdb_entry": "sm_90", ...,
#      "load_ms": 812.5,            # model load: device, render, compile or cache hit,
#                                   # module load, weights upload, load-time constants
#      "kernels_compiled": 7, "kernels_cached": 0,
#      "latency_ms": {"median": 0.41, "min": 0.39, "iterations": 200},
#                                   # one inference, inputs and outputs on the device
#      "kernels": [{"name": "k3_gemm_bias_gelu", "class": "gemm_f16", "dtype": "f16",
#                   "ms": 0.052, "bytes": 9437184, "flops": 1207959552, ...}, ...]}
# The cold load is the first run with an empty $DSC_CACHE_DIR, the warm one the
# second.  The baseline is a third run, `dsc run ... --baseline=cublas`
# (docs/cuda.md, "cuBLASLt"): the same graph with the fuse pass off, every
# operation its own kernel, and every kernel that is one GEMM (+ bias, relu,
# gelu_tanh) through cublasLtMatmul, reporting the same fields (its JSON says
# "gemm": "cublas", "cublaslt_kernels" and each kernel's "tactic").  A dsc
# whose `dsc run --help` does not list --baseline (an older build) still gets
# the cold and warm runs; the stage then says PENDING.
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
# default nproc), DSC_GPU_BUDGET_S (default 290), DSC_GPU_BENCH_ITERS (timed
# inferences per model, default 50).
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

PY= PYTHON= # python3 with numpy (the examples' real data), any python3 (the tables)
for p in python3 /usr/bin/python3 /usr/local/bin/python3; do
  if [ -z "$PYTHON" ] && "$p" -c 'import json' >/dev/null 2>&1; then PYTHON=$p; fi
  if "$p" -c 'import numpy' >/dev/null 2>&1; then PY=$p; break; fi
done

# The comparison of two output trees (ref and cuda): every .npy under REF must
# be in GOT with the same dtype and shape and values within tolerance (the
# header's rules).  C, built here with cc: the GPU machine may lack numpy.
cat >"$W/npy_compare.c" <<'EOF'
/* npy_compare REF GOT LABEL [MODEL_PATTERN]: every .npy under REF must be in
 * GOT (same relative path) with the same dtype and shape and values within
 * tolerance; one FAIL line per mismatch, then a summary line.  MODEL_PATTERN
 * ("DIR/seed_%s.dsg", %s the first path component under REF) names the model
 * an output came from: when its text mentions bf16 (f16), f32 outputs get
 * bf16's (f16's) tolerance, because kernels keep fused 16-bit intermediates
 * in f32 while the interpreter rounds them (as tests/unit/test_host.c). */
#define _GNU_SOURCE
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *ref_root, *got_root, *label, *pattern;
static int total, bad;
static double worst[4]; /* f32, f16, bf16, f32 through 16-bit */

typedef struct {
    char kind[8]; /* f32 f16 bf16 f64 i8 u8 i32 i64 bool */
    int esize, rank;
    long long shape[16], n;
    unsigned char *data;
} Npy;

static int load(const char *path, Npy *a, char *why, size_t whylen) {
    memset(a, 0, sizeof *a);
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(why, whylen, "cannot open"), 0;
    unsigned char h[10];
    if (fread(h, 1, 10, f) != 10 || memcmp(h, "\x93NUMPY", 6) != 0) return fclose(f), snprintf(why, whylen, "not .npy"), 0;
    unsigned long hl = h[8] | (unsigned long)h[9] << 8;
    if (h[6] >= 2) {
        unsigned char e[2];
        if (fread(e, 1, 2, f) != 2) return fclose(f), snprintf(why, whylen, "short header"), 0;
        hl |= (unsigned long)e[0] << 16 | (unsigned long)e[1] << 24;
    }
    char *hd = calloc(hl + 1, 1);
    if (!hd || fread(hd, 1, hl, f) != hl) return free(hd), fclose(f), snprintf(why, whylen, "short header"), 0;
    char *d = strstr(hd, "'descr'"), *fo = strstr(hd, "'fortran_order'"), *sh = strstr(hd, "'shape'");
    char descr[16] = "";
    if (!d || !fo || !sh || !strchr(d + 7, '\'') || sscanf(strchr(d + 7, '\'') + 1, "%15[^']", descr) != 1 ||
        strncmp(fo + 15, ": True", 6) == 0) {
        snprintf(why, whylen, "unsupported header: %s", hd);
        return free(hd), fclose(f), 0;
    }
    static const struct { const char *descr, *kind; int size; } K[] = {
        {"<f4", "f32", 4}, {"<f2", "f16", 2}, {"<u2", "bf16", 2}, {"<f8", "f64", 8}, {"|i1", "i8", 1},
        {"|u1", "u8", 1},  {"<i4", "i32", 4}, {"<i8", "i64", 8},  {"|b1", "bool", 1}};
    for (size_t i = 0; i < sizeof K / sizeof K[0]; i++)
        if (!strcmp(descr, K[i].descr)) snprintf(a->kind, sizeof a->kind, "%s", K[i].kind), a->esize = K[i].size;
    if (!a->esize) return free(hd), fclose(f), snprintf(why, whylen, "dtype %s", descr), 0;
    char *p = strchr(sh, '(');
    a->n = 1;
    for (p = p ? p + 1 : NULL; p && *p && *p != ')';) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p) break;
        if (a->rank < 16) a->shape[a->rank++] = v;
        a->n *= v;
        p = end;
        while (*p == ',' || *p == ' ' || *p == 'L') p++;
    }
    free(hd);
    a->data = malloc((size_t)(a->n * a->esize) + 1);
    if (!a->data || fread(a->data, (size_t)a->esize, (size_t)a->n, f) != (size_t)a->n)
        return fclose(f), snprintf(why, whylen, "short data"), 0;
    fclose(f);
    return 1;
}

static double half(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
    return h >> 15 ? -v : v;
}

static double value(const Npy *a, long long i) {
    const unsigned char *p = a->data + i * a->esize;
    if (!strcmp(a->kind, "f32")) { float v; memcpy(&v, p, 4); return v; }
    if (!strcmp(a->kind, "f64")) { double v; memcpy(&v, p, 8); return v; }
    uint16_t u;
    memcpy(&u, p, 2);
    if (!strcmp(a->kind, "f16")) return half(u);
    uint32_t w = (uint32_t)u << 16;
    float v;
    memcpy(&v, &w, 4);
    return v; /* bf16 */
}

static int compare(const char *rel) {
    char rp[4096], gp[4096], why[512] = "";
    snprintf(rp, sizeof rp, "%s/%s", ref_root, rel);
    snprintf(gp, sizeof gp, "%s/%s", got_root, rel);
    Npy r, g;
    total++;
    if (!load(rp, &r, why, sizeof why)) return printf("FAIL %s %s: the reference: %s\n", label, rel, why), bad++, 0;
    if (!load(gp, &g, why, sizeof why)) {
        printf("FAIL %s %s: %s\n", label, rel, strcmp(why, "cannot open") ? why : "not written by the GPU run");
        return free(r.data), bad++, 0;
    }
    int same = !strcmp(r.kind, g.kind) && r.rank == g.rank && !memcmp(r.shape, g.shape, sizeof r.shape);
    if (!same) {
        printf("FAIL %s %s: got %s rank %d, reference %s rank %d (or another shape)\n", label, rel, g.kind, g.rank, r.kind,
               r.rank);
        bad++;
    } else if (!strcmp(r.kind, "f32") || !strcmp(r.kind, "f16") || !strcmp(r.kind, "bf16") || !strcmp(r.kind, "f64")) {
        int k = !strcmp(r.kind, "f16") ? 1 : !strcmp(r.kind, "bf16") ? 2 : 0;
        double tol = k == 1 ? 2e-3 : k == 2 ? 1.6e-2 : 1e-4, floor = k ? 1 : 0.1;
        if (k == 0 && pattern) { /* f32 through 16-bit values of the model */
            char mp[4096], first[1024];
            snprintf(first, sizeof first, "%s", rel);
            char *slash = strchr(first, '/');
            if (slash) *slash = 0;
            snprintf(mp, sizeof mp, pattern, first);
            FILE *mf = fopen(mp, "rb");
            char *text = NULL;
            size_t len = 0;
            if (mf) {
                text = calloc(1 << 20, 1);
                len = text ? fread(text, 1, (1 << 20) - 1, mf) : 0;
                fclose(mf);
            }
            if (text && len && strstr(text, "bf16")) tol = 1.6e-2, k = 3;
            else if (text && len && strstr(text, "f16")) tol = 2e-3, k = 3;
            free(text);
        }
        double num = 0, den = 0;
        long long nonfinite = 0;
        for (long long i = 0; i < r.n; i++) {
            double a = value(&g, i), b = value(&r, i);
            if (isfinite(b) && !isfinite(a)) nonfinite++;
            if (isfinite(a) && isfinite(b)) num += (a - b) * (a - b), den += b * b;
        }
        double d = fmax(sqrt(den), floor * sqrt((double)(r.n > 0 ? r.n : 1)));
        double err = d > 0 ? sqrt(num) / d : 0;
        if (nonfinite) {
            printf("FAIL %s %s: %lld non-finite values where the reference has none\n", label, rel, nonfinite);
            bad++;
        } else {
            if (err > worst[k]) worst[k] = err;
            if (!(err <= tol)) printf("FAIL %s %s: %s rel L2 error %.3e > %g\n", label, rel, k == 3 ? "f32 (through 16-bit)" : r.kind, err, tol), bad++;
        }
    } else {
        long long diff = 0;
        for (long long i = 0; i < r.n; i++) {
            const unsigned char *x = r.data + i * r.esize, *y = g.data + i * g.esize;
            diff += !strcmp(r.kind, "bool") ? (!*x != !*y) : memcmp(x, y, (size_t)r.esize) != 0;
        }
        if (diff) printf("FAIL %s %s: %s values differ in %lld of %lld elements\n", label, rel, r.kind, diff, r.n), bad++;
    }
    free(r.data);
    free(g.data);
    return 0;
}

static int visit(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb, (void)ftw;
    size_t n = strlen(path);
    if (type == FTW_F && n > 4 && !strcmp(path + n - 4, ".npy")) compare(path + strlen(ref_root) + 1);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5) return fprintf(stderr, "usage: npy_compare REF GOT LABEL [MODEL_PATTERN]\n"), 2;
    ref_root = argv[1], got_root = argv[2], label = argv[3], pattern = argc > 4 ? argv[4] : NULL;
    nftw(ref_root, visit, 16, FTW_PHYS);
    printf("%s: %d/%d outputs match; worst rel L2 error:", label, total - bad, total);
    static const char *names[] = {"f32", "f16", "bf16", "f32 through 16-bit"};
    int any = 0;
    for (int k = 0; k < 4; k++)
        if (worst[k] > 0) printf("%s %s %.2e", any++ ? "," : "", names[k], worst[k]);
    printf("%s\n", any ? "" : " -");
    return bad || total == 0;
}
EOF
CMP=
if "${CC_FOR_BUILD:-cc}" -O1 -std=c17 -o "$W/npy_compare" "$W/npy_compare.c" -lm >"$OUT/npy_compare.log" 2>&1; then
  CMP=$W/npy_compare
fi

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

# ---- libraries ----------------------------------------------------------------------------
# dsc loads NVRTC (libnvrtc.so.13, .12) and the driver (libcuda.so.1) with dlopen,
# by name.  Where the dynamic linker does not know NVRTC (a toolkit outside
# ld.so.conf, or only a Python wheel's copy), point dsc at the file
# ($DSC_LIBNVRTC, runtime/nvrtc.h); the hwdb stage's message says which.
NVRTC_NOTE=
if [ -z "${DSC_LIBNVRTC:-}" ] && ! ldconfig -p 2>/dev/null | grep -qE 'libnvrtc\.so\.1[23] '; then
  wheels=$("${PYTHON:-python3}" -c 'import glob, site
print(" ".join(p for v in ("13", "12") for s in site.getsitepackages() for p in glob.glob(s + "/nvidia/*/lib/libnvrtc.so." + v)))' 2>/dev/null)
  for f in /usr/local/cuda/lib64/libnvrtc.so.13 /usr/local/cuda/targets/x86_64-linux/lib/libnvrtc.so.13 \
           /usr/local/cuda/lib64/libnvrtc.so.12 /usr/local/cuda/targets/x86_64-linux/lib/libnvrtc.so.12 $wheels; do
    if [ -e "$f" ]; then export DSC_LIBNVRTC=$f; NVRTC_NOTE="; NVRTC from $f"; break; fi
  done
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
    stage hwdb PASS "$HW_ARCH ($(grep -m1 -o 'selects sm_[0-9]* ([^)]*): [^(]*' "$OUT/hwdb.txt" | cut -d: -f2- | sed 's/^ //')); $HW_BW GB/s, f16 $HW_F16, f32 $HW_F32 TFLOP/s; $diffs figure(s) differ from the driver's$NVRTC_NOTE"
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

# A stage that runs models on the GPU and compares them with the interpreter:
# compare_stage NAME FUNCTION head|tail [NOTE].  FUNCTION prints its summary
# (the first or last line is shown) and fails on a mismatch; without the
# comparison program the stage fails, without a GPU it does not run (the
# dry run, ref against ref, checks the plumbing only and reports FAIL).
compare_stage() {
  local name=$1 fn=$2 pick=$3 note=${4:-} msg
  if [ -z "$CMP" ]; then
    stage "$name" FAIL "cannot build the comparison program ($OUT/npy_compare.log): $(last_error "$OUT/npy_compare.log")"
  elif [ "$CUDA_RUN" = yes ] || [ "$GPU_DEVICE" = ref -a -n "$DSC" ]; then
    if msg=$("$fn"); then
      stage "$name" "$([ "$GPU_DEVICE" = ref ] && echo FAIL || echo PASS)" \
        "$([ "$GPU_DEVICE" = ref ] && echo "dry run (ref against ref, plumbing only): ")$("$pick" -n1 <<<"$msg")${note:+; $note}"
    else
      stage "$name" FAIL "$(tr '\n' ' ' <<<"$msg" | cut -c1-300)"
    fi
  else
    not_run "$name"
  fi
}

run_examples() {
  local data=$W/ex/data fail=0 runs
  : >"$OUT/examples.log"
  if [ -n "$PY" ]; then # real data: tests/gen_examples.py's weights and inputs
    "$PY" tests/gen_examples.py "$data" >>"$OUT/examples.log" 2>&1 || { echo "gen_examples.py failed"; return 1; }
    runs=$("$PY" tests/gen_examples.py --list "$data") || { echo "gen_examples.py --list failed"; return 1; }
  else # no numpy: seeded random inputs and weights at small sizes
    runs=$(for m in examples/*.dsg; do printf '%s\t%s\t-\n' "$(basename "$m" .dsg)" "$m"; done)
  fi
  while IFS=$'\t' read -r -a f; do
    local name=${f[0]} model=${f[1]} weights=${f[2]} args=() i side dev
    if [ "$weights" = - ]; then
      args=(--random-inputs --random-weights --seed 1 --bind B=2 --bind S=16 --bind N=2)
    else
      args=(--weights "$weights")
      for i in "${f[@]:3}"; do args+=(--input "$i"); done
    fi
    for side in ref gpu; do
      local dir=$W/ex/$side; dev=ref; [ $side = gpu ] && dev=$GPU_DEVICE
      mkdir -p "$dir"
      if ! timeout "$(cap 60)" "$DSC" run "$model" "${args[@]}" --device "$dev" \
           --output-dir "$dir/$name" >>"$OUT/examples.log" 2>&1; then
        echo "dsc run $model --device $dev failed (see $OUT/examples.log)"; fail=1
      fi
    done
  done <<<"$runs"
  "$CMP" "$W/ex/ref" "$W/ex/gpu" examples >>"$OUT/examples.log" 2>&1 || fail=1
  if [ -n "$PY" ]; then
    "$PY" tests/gen_examples.py --check "$data" "$W/ex/gpu" >>"$OUT/examples.log" 2>&1 || fail=1
  fi
  grep -m1 "^examples:" "$OUT/examples.log"
  grep "^FAIL" "$OUT/examples.log" | head -n 5
  return $fail
}

how="real data and numpy references"
[ -z "$PY" ] && how="random data (no python3 with numpy for tests/gen_examples.py)"
compare_stage examples run_examples head "$how"

# ---- precision -----------------------------------------------------------------------------------

# every example compiled at f16, bf16 and int8 (dsc compile --precision=P --no-guard; the
# dump's text names f16/bf16, which gives its f32 outputs the 16-bit tolerance), run on
# seeded random inputs and weights, `--device cuda` against `--device ref`
run_precision() {
  local fail=0 m p name side dev
  : >"$OUT/precision.log"
  mkdir -p "$W/prec/models" "$W/prec/ref" "$W/prec/gpu"
  for m in examples/*.dsg; do
    for p in f16 bf16 int8; do
      name=$(basename "$m" .dsg)-$p
      if ! "$DSC" compile "$m" --precision=$p --no-guard -o "$W/prec/models/$name.dsg" >>"$OUT/precision.log" 2>&1; then
        echo "dsc compile $m --precision=$p failed (see $OUT/precision.log)"; fail=1; continue
      fi
      for side in ref gpu; do
        dev=ref; [ $side = gpu ] && dev=$GPU_DEVICE
        if ! timeout "$(cap 60)" "$DSC" run "$W/prec/models/$name.dsg" --random-inputs --random-weights --seed 1 \
             --bind B=2 --bind S=16 --bind N=2 --device "$dev" --output-dir "$W/prec/$side/$name" \
             >>"$OUT/precision.log" 2>&1; then
          echo "dsc run $name --device $dev failed (see $OUT/precision.log)"; fail=1
        fi
      done
    done
  done
  "$CMP" "$W/prec/ref" "$W/prec/gpu" precision "$W/prec/models/%s.dsg" >>"$OUT/precision.log" 2>&1 || fail=1
  grep -m1 "^precision" "$OUT/precision.log"
  grep "^FAIL" "$OUT/precision.log" | head -n 5
  return $fail
}

compare_stage precision run_precision head

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
  # A model the interpreter refuses (an integer division by zero, an index out
  # of range: kernels define those, the interpreter reports them) is not
  # comparable: skipped and counted.  Any other failed run is a failure.
  local fails=0 skipped=0 f
  mkdir -p "$W/rg/fail"
  for f in $(ls "$W/rg/fail"); do
    if [ "${f%%_*}" = ref ]; then skipped=$(( skipped + 1 )); rm -rf "$W/rg/gpu/${f#*_}"; continue; fi
    [ -e "$W/rg/fail/ref_${f#*_}" ] && continue
    fails=$(( fails + 1 ))
    mkdir -p "$OUT/randgraph_failures"
    if [ "$fails" -le 20 ]; then
      cp "$W/rg/fail/$f" "$OUT/randgraph_failures/$f.log"
      cp "$W/rg/models/seed_${f#*_}.dsg" "$OUT/randgraph_failures/" 2>/dev/null
    fi
  done
  [ "$fails" -gt 0 ] && echo "$fails of $SEEDS GPU runs failed (the first ones in $OUT/randgraph_failures)"
  "$CMP" "$W/rg/ref" "$W/rg/gpu" "randgraph($SEEDS seeds)" "$W/rg/models/seed_%s.dsg" >>"$OUT/randgraph.log" 2>&1
  local rc=$?
  grep "^FAIL" "$OUT/randgraph.log" | head -n 5
  echo "$(grep -m1 "^randgraph" "$OUT/randgraph.log"); $skipped model(s) the interpreter refuses skipped"
  [ "$fails" -eq 0 ] && [ $rc -eq 0 ]
}

compare_stage randgraph run_randgraph tail

# ---- timing -------------------------------------------------------------------------------------------------

# DSC_CUDA_BENCH=FILE (the header's timing interface): per model a cold run
# (empty kernel cache) and a warm one, each timing $ITERS inferences.
ITERS=${DSC_GPU_BENCH_ITERS:-50}
if [ "$CUDA_RUN" != yes ]; then
  not_run timing
else
  mkdir -p "$OUT/timing"
  base=yes
  "$DSC" run --help 2>/dev/null | grep -q -- "--baseline" || base=no
  # the baseline opens libcublasLt.so.13 (.12, .so) on the loader's path; the
  # toolkit's lib64 next to nvcc is added in case the system does not list it
  LT_PATH=${LD_LIBRARY_PATH:-}
  if command -v nvcc >/dev/null 2>&1; then
    LT_PATH=$(dirname "$(dirname "$(command -v nvcc)")")/lib64${LT_PATH:+:$LT_PATH}
  fi
  tfail=0 timed=0 first_fail=
  for spec in "${BENCH[@]}"; do
    read -r -a a <<<"$spec"
    name=$(basename "${a[0]}" .dsg)
    cache=$W/cache_$name
    log=$OUT/timing/$name.log
    common=("${a[@]}" --random-inputs --random-weights --device cuda)
    runs=(cold warm); [ $base = yes ] && runs+=(baseline)
    ok=1
    for run in "${runs[@]}"; do
      extra=(); [ $run = baseline ] && extra=(--baseline=cublas)
      json=$OUT/timing/$name.$run.json
      rm -f "$json"
      if ! LD_LIBRARY_PATH=$LT_PATH DSC_CACHE_DIR=$cache DSC_CUDA_BENCH=$json DSC_CUDA_BENCH_ITERS=$ITERS timeout "$(cap 60)" \
           "$DSC" run "${common[@]}" "${extra[@]}" >>"$log" 2>&1 || [ ! -s "$json" ]; then
        ok=0; rm -f "$json"
        [ -z "$first_fail" ] && first_fail="$name ($run): $(last_error "$log")"
        break
      fi
    done
    if [ $ok = 1 ]; then timed=$(( timed + 1 )); else tfail=1; fi
  done
  if [ $tfail -ne 0 ]; then
    stage timing FAIL "$timed of ${#BENCH[@]} models timed; $first_fail (logs in $OUT/timing)"
  elif [ $base = no ]; then
    stage timing PENDING "${#BENCH[@]} models timed (cold JIT, warm load, latency, per kernel: the tables below); this dsc has no --baseline=cublas (an older build): no cuBLAS + unfused baseline"
  else
    stage timing PASS "${#BENCH[@]} models: cold JIT, warm load, latency and the cuBLAS + unfused baseline (--baseline=cublas)"
  fi
fi

# ---- the tables ------------------------------------------------------------------------------------------------

if [ -n "$PYTHON" ]; then
  { echo "# tests/gpu/run.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $GPU_NAME, $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no git')"
  "$PYTHON" - "$OUT" "${HW_ARCH:-}" "${HW_BW:-}" "${HW_F16:-}" "${HW_F32:-}" "${REF_COPY:-}" "${REF_F16:-}" "${REF_F32:-}" \
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
    print("| model | cold JIT ms | warm load ms | latency ms (median) | baseline ms | speed-up | baseline kernels (cuBLASLt) |")
    print("|---|---|---|---|---|---|---|")
    for m in models:
        cold, warm, base = (load(os.path.join(out, "timing", f"{m}.{s}.json")) or {} for s in ("cold", "warm", "baseline"))
        lat = (warm.get("latency_ms") or {}).get("median")
        blat = (base.get("latency_ms") or {}).get("median")
        bk = base.get("kernels")
        bks = f"{len(bk)} ({base.get('cublaslt_kernels', '-')})" if bk is not None else "-"
        print(f"| {m} | {f(cold.get('load_ms'), '.1f')} | {f(warm.get('load_ms'), '.1f')} | {f(lat, '.3f')} "
              f"| {f(blat, '.3f')} | {f(blat / lat if lat and blat else None, '.2f')} | {bks} |")
EOF
  } | tee "$OUT/tables.md"
fi

summary
