#!/usr/bin/env bash
# Block sparsity end to end: `dsc prune` against the numpy rule
# (tests/sparse_ref.py: ties, edge blocks, f16, rank 3, hint over flag),
# --sparsity dumps that compile again to the same pruning, the BERT layer
# with --sparsity=0.3 (>= 30% of the GEMM weights removed per --stats, host
# JIT = interpreter on the pruned weights), and the CLI's errors.
set -u
dsc=$1
fail=0
# the first python3 with numpy
py=$(for p in python3 /usr/bin/python3 /usr/local/bin/python3; do "$p" -c "import numpy" 2>/dev/null && { echo "$p"; break; }; done)
[ -n "$py" ] || { echo "FAIL no python3 with numpy (tried python3, /usr/bin/python3, /usr/local/bin/python3)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ref=tests/sparse_ref.py
expect() { # WANT_RC DESCRIPTION -- COMMAND...
  local want=$1 what=$2; shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ $rc -ne "$want" ]; then
    echo "FAIL $what: exit $rc, expected $want"; head -c 800 "$tmp/err"; head -c 400 "$tmp/out"; fail=1
  fi
}
has() { # FILE PATTERN DESCRIPTION
  grep -qE -- "$2" "$1" || { echo "FAIL $3: '$2' not in output"; head -c 800 "$1"; fail=1; }
}

# ---- dsc prune against numpy ----------------------------------------------------
$py $ref make "$tmp/w.safetensors" || { echo "FAIL making weights"; exit 1; }
cat >"$tmp/m.dsg" <<'EOF'
model m {
  weights "w.safetensors"
  input x : f32[2, 22]
  input x2 : f32[2, 48]
  param tie.w : f32[18, 22] @sparse(block=[4, 4], density=0.5)
  param pair.w : f32[40, 30] @sparse(block=[8, 5], density=0.3)
  param big.w : f32[64, 48]
  param odd.w : f32[37, 29] @sparse(block=[16, 16], density=0.34)
  param half.w : f16[16, 24] @sparse(block=[1, 1], density=0.25)
  param r3.w : f32[3, 10, 12] @sparse(block=[3, 5], density=0.6)
  param plain.w : f32[8, 8]
  param bias : f32[64]
  let a = reduce_sum(linear(x, tie.w), axes=[1])
  let p = reduce_sum(pair.w, axes=[0, 1], keepdims=false) + reduce_sum(odd.w, axes=[0, 1], keepdims=false)
  let q = reduce_sum(cast(half.w, f32), axes=[0, 1], keepdims=false) + reduce_sum(r3.w, axes=[0, 1, 2], keepdims=false)
  let r = reduce_sum(plain.w, axes=[0, 1], keepdims=false)
  output y = linear(x2, big.w, bias) + a + p + q + r
}
EOF
# hints only: big.w and plain.w unchanged
expect 0 "prune (hints)" -- "$dsc" prune "$tmp/m.dsg" -o "$tmp/p1.safetensors"
$py $ref check "$tmp/w.safetensors" "$tmp/p1.safetensors" tie.w=4x4:0.5 pair.w=8x5:0.3 odd.w=16x16:0.34 \
  half.w=1x1:0.25 r3.w=3x5:0.6 || fail=1
# --sparsity: big.w (the one eligible param without a hint) loses >= 40% of
# its 8x4 blocks (density = kept/blocks = 57/96); the hints still win
expect 0 "prune --sparsity" -- "$dsc" prune "$tmp/m.dsg" --sparsity=0.4 --sparse-block=8x4 -o "$tmp/p2.safetensors"
$py $ref check "$tmp/w.safetensors" "$tmp/p2.safetensors" tie.w=4x4:0.5 pair.w=8x5:0.3 odd.w=16x16:0.34 \
  half.w=1x1:0.25 r3.w=3x5:0.6 big.w=8x4:0.59375 || fail=1
frac=$($py $ref frac "$tmp/p2.safetensors" big.w)
$py -c "import sys; sys.exit(0 if $frac >= 0.4 else 1)" || { echo "FAIL --sparsity=0.4 removed only $frac of big.w"; fail=1; }
# the pruned file, run without hints, computes what the hinted model computes
sed 's/ @sparse([^)]*)//' "$tmp/m.dsg" >"$tmp/plain.dsg"
expect 0 "run hinted" -- "$dsc" run "$tmp/m.dsg" --device ref --random-inputs --seed 3 --output-dir "$tmp/o1"
expect 0 "run pruned" -- "$dsc" run "$tmp/plain.dsg" --device ref --random-inputs --seed 3 \
  --weights "$tmp/p1.safetensors" --output-dir "$tmp/o2"
cmp -s "$tmp/o1/y.npy" "$tmp/o2/y.npy" || { echo "FAIL hinted model and pruned weights differ"; fail=1; }
# a failed prune writes nothing
expect 1 "prune: missing weights" -- "$dsc" prune "$tmp/m.dsg" --weights "$tmp/none.safetensors" -o "$tmp/p3.safetensors"
[ ! -e "$tmp/p3.safetensors" ] || { echo "FAIL a failed prune left a file"; fail=1; }

# ---- dumps carry the pruning ------------------------------------------------------------
expect 0 "compile --sparsity" -- "$dsc" compile examples/ffn_block.dsg --sparsity=0.5 --sparse-block=8x4 -o "$tmp/f.dsg"
has "$tmp/f.dsg" "@sparse\(block=\[8, 4\], density=0.5\)" "dump has the @sparse hint"
expect 0 "recompile dump" -- "$dsc" compile "$tmp/f.dsg" -o "$tmp/f2.dsg"
cmp -s "$tmp/f.dsg" "$tmp/f2.dsg" || { echo "FAIL the dump does not compile to itself"; fail=1; }
for o in 0 2; do
  expect 0 "dump runs -O$o" -- "$dsc" run "$tmp/f.dsg" -O$o --device ref --random-inputs --random-weights --seed 4 \
    --bind B=1 --bind S=4 --output-dir "$tmp/d$o"
  expect 0 "flags run -O$o" -- "$dsc" run examples/ffn_block.dsg -O$o --device ref --random-inputs --random-weights \
    --seed 4 --bind B=1 --bind S=4 --sparsity=0.5 --sparse-block=8x4 --output-dir "$tmp/e$o"
  cmp -s "$tmp/d$o/y.npy" "$tmp/e$o/y.npy" || { echo "FAIL dump and flags differ at -O$o"; fail=1; }
done
cmp -s "$tmp/d0/y.npy" "$tmp/e2/y.npy" || $py -c "
import numpy as np, sys; a, b = np.load('$tmp/d0/y.npy'), np.load('$tmp/e2/y.npy')
sys.exit(0 if np.linalg.norm(a - b) <= 1e-5 * np.linalg.norm(a) else 1)" || { echo "FAIL -O0 and -O2 prune differently"; fail=1; }

# ---- the BERT layer at --sparsity=0.3 ------------------------------------------------------
expect 0 "bert stats" -- "$dsc" compile examples/bert_layer.dsg --sparsity=0.3 --stats=json --bind B=1,S=128 -o "$tmp/b.dsg"
$py - "$tmp/out" <<'EOF' || fail=1
import json, sys
s = json.load(open(sys.argv[1]))
p, k = s["gemm_weight_params"], s["gemm_weight_params_kept"]
removed = 1 - k / p
print("bert_layer --sparsity=0.3: gemm_weight_params %d, kept %d, removed %.4f, bytes saved %d" %
      (p, k, removed, s["sparse_bytes_saved"]))
# 4x4 blocks: the int32 column index costs 1/16 of a block's values
ok = p == 4 * 768 * 768 + 2 * 768 * 3072 and removed >= 0.30 and s["sparse_bytes_saved"] > 0.25 * 4 * p
ok = ok and len(s["sparse_layers"]) == 6 and all(l["kernel"] in ("sparse", "dense") for l in s["sparse_layers"])
if not ok:
    print("FAIL bert_layer --sparsity=0.3 stats: %s" % {k: v for k, v in s.items() if k != "passes"})
sys.exit(0 if ok else 1)
EOF
for kernel in sparse dense auto; do
  for dev in cpu ref; do
    DSC_SPARSE_KERNEL=$kernel expect 0 "bert $dev $kernel" -- "$dsc" run examples/bert_layer.dsg --sparsity=0.3 \
      --device $dev --random-inputs --random-weights --seed 5 --bind B=1 --bind S=8 --output-dir "$tmp/bert_${dev}_$kernel"
  done
  $py - "$tmp/bert_cpu_$kernel/y.npy" "$tmp/bert_ref_$kernel/y.npy" "$tmp/bert_ref_sparse/y.npy" <<'EOF' || { echo "FAIL bert $kernel: cpu differs from ref"; fail=1; }
import numpy as np, sys
a, b, c = (np.load(f) for f in sys.argv[1:4])
err = np.linalg.norm(a - b) / np.linalg.norm(b)
sys.exit(0 if err <= 1e-5 and np.array_equal(b, c) else 1)
EOF
done
# pruning changes the model: the unpruned layer computes something else
expect 0 "bert unpruned" -- "$dsc" run examples/bert_layer.dsg --device ref --random-inputs --random-weights --seed 5 \
  --bind B=1 --bind S=8 --output-dir "$tmp/bert_full"
cmp -s "$tmp/bert_full/y.npy" "$tmp/bert_ref_sparse/y.npy" && { echo "FAIL --sparsity=0.3 changed nothing"; fail=1; }

# ---- errors --------------------------------------------------------------------------------
expect 2 "bad --sparsity" -- "$dsc" compile examples/mlp.dsg --sparsity=1.5
has "$tmp/err" "--sparsity needs a fraction" "--sparsity message"
expect 2 "bad --sparse-block" -- "$dsc" run examples/mlp.dsg --sparse-block=0x4
has "$tmp/err" "--sparse-block needs RxC" "--sparse-block message"
expect 2 "prune without -o" -- "$dsc" prune examples/mlp.dsg
expect 0 "prune --help" -- "$dsc" prune --help;  has "$tmp/out" "^usage: dsc prune" "prune --help"
printf 'model e {\n  input x : f32[4]\n  param v : f32[4] @sparse(block=[2, 2], density=0.5)\n  output y = x + v\n}\n' >"$tmp/e.dsg"
expect 1 "rank-1 @sparse" -- "$dsc" compile "$tmp/e.dsg"
has "$tmp/err" "e.dsg:3:.*@sparse on param 'v'" "rank-1 @sparse message"

# a written hint without density takes it from --sparsity, and its own block
printf 'model h {\n  input x : f32[2, 8]\n  param w : f32[8, 8] @sparse(block=[2, 4])\n  output y = linear(x, w)\n}\n' >"$tmp/h.dsg"
expect 1 "@sparse without density" -- "$dsc" compile "$tmp/h.dsg"
has "$tmp/err" "needs a density" "@sparse without density message"
expect 0 "@sparse density from --sparsity" -- "$dsc" compile "$tmp/h.dsg" --sparsity=0.5 --sparse-block=8x8
has "$tmp/out" "@sparse\(block=\[2, 4\], density=0.5\)" "density from --sparsity, block from the hint"

[ $fail -eq 0 ] && echo "sparse: all checks passed"
exit $fail
