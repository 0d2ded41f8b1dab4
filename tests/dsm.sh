#!/usr/bin/env bash
# Compiled models (.dsm) through the command line:
#   - every example compiled with its real weights (tests/gen_examples.py) runs
#     from the .dsm with outputs byte-identical to the .dsg's, on --device ref
#     and cpu (same graph, same kernels, same weights: nothing may differ), at
#     f32, int8 and f16 (folded constants: i8/f16 weights stored, about 1/4 and
#     1/2 of the f32 bytes), and the .dsm's outputs match the numpy references;
#   - compiled with --random-weights --seed, it equals `dsc run --random-inputs
#     --random-weights` with that seed, and so does the .dsm run with
#     --random-weights (random weights do not depend on the passes);
#   - the file is read with plain Python (json + struct, the snippet of
#     docs/formats.md), its checksum recomputed from the documented definition,
#     its tensors compared with the weights file; `dsc inspect` (text and
#     --json) agrees with what Python reads;
#   - every file of tests/data/corrupt_dsm is refused by inspect, run and bench
#     with exit status 1 and its MANIFEST.tsv phrase, and so is the prefix
#     of a .dsm at 24 offsets (test_dsm.c tries every prefix in-process); a
#     failed compile leaves no file.
# Fails (never skips) without a python3 with numpy.
set -u
dsc=$1
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bad() { echo "FAIL $*"; fail=1; }

py=
for p in python3 /usr/bin/python3 /usr/local/bin/python3; do
  if "$p" -c 'import numpy' >/dev/null 2>&1; then py=$p; break; fi
done
[ -n "$py" ] || { echo "FAIL no python3 with numpy (tried python3, /usr/bin/python3, /usr/local/bin/python3)"; exit 1; }

gen=tests/gen_examples.py
"$py" "$gen" "$tmp/data" || { echo "FAIL $gen"; exit 1; }
runs=$("$py" "$gen" --list "$tmp/data") || { echo "FAIL $gen --list"; exit 1; }
[ -n "$runs" ] || { echo "FAIL empty manifest"; exit 1; }

# ---- every example: .dsm == .dsg, exactly, on ref and cpu, at every precision
# (f32 stores the params; int8/f16/bf16 store the folded load-time constants:
# the i8/f16 weights and the f32 scales, docs/formats.md; bf16 takes the f16 path)
compared=0
for prec in f32 int8 f16; do
  mkdir -p "$tmp/dsm-ref-$prec" "$tmp/dsm-cpu-$prec"
  popt=()
  [ $prec = f32 ] || popt=(--precision=$prec)
  while IFS=$'\t' read -r -a f; do
    name=${f[0]} model=${f[1]} weights=${f[2]}
    out=$prec-$name
    args=()
    for i in "${f[@]:3}"; do args+=(--input "$i"); done
    if ! "$dsc" compile "$model" "${popt[@]}" --weights "$weights" -o "$tmp/$out.dsm" >"$tmp/log" 2>&1; then
      bad "dsc compile $model ${popt[*]} -o $out.dsm:"; cat "$tmp/log"; continue
    fi
    for dev in ref cpu; do
      "$dsc" run "$model" "${popt[@]}" --weights "$weights" "${args[@]}" --device $dev \
        --output-dir "$tmp/dsg-$dev-$out" >"$tmp/log" 2>&1 || { bad "dsc run $model ${popt[*]} --device $dev:"; cat "$tmp/log"; }
      "$dsc" run "$tmp/$out.dsm" "${args[@]}" --device $dev --output-dir "$tmp/dsm-$dev-$prec/$name" \
        >"$tmp/log" 2>&1 || { bad "dsc run $out.dsm --device $dev:"; cat "$tmp/log"; }
      for want in "$tmp/dsg-$dev-$out"/*.npy; do
        got="$tmp/dsm-$dev-$prec/$name/$(basename "$want")"
        if cmp -s "$want" "$got"; then compared=$((compared + 1)); else bad "$out $dev: $(basename "$want") differs"; fi
      done
    done
  done <<<"$runs"
done
# the f32 ones are the .dsm files of the checks below
while IFS=$'\t' read -r -a f; do cp "$tmp/f32-${f[0]}.dsm" "$tmp/${f[0]}.dsm" 2>/dev/null; done <<<"$runs"
[ $compared -ge 36 ] || bad "only $compared outputs compared"
echo "dsm: $compared outputs of $(wc -l <<<"$runs") examples at f32, int8 and f16 identical from .dsg and .dsm (ref and cpu)"
# the stored weight bytes: int8 about a quarter of f32, f16 about half
"$py" - "$tmp" <<'EOF' || bad "stored weight bytes"
import json, struct, sys
def wbytes(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    return sum(v["data_offsets"][1] - v["data_offsets"][0] for k, v in h.items() if k != "__metadata__")
for name in ("mlp", "bert_layer"):
    f32 = wbytes(f"{sys.argv[1]}/f32-{name}.dsm")
    for prec, lo, hi in (("int8", 0.24, 0.30), ("f16", 0.49, 0.55)):
        r = wbytes(f"{sys.argv[1]}/{prec}-{name}.dsm") / f32
        print(f"dsm: {name} {prec} weights {r:.3f} of f32 ({f32} bytes)")
        assert lo <= r <= hi, (name, prec, r)
EOF
"$py" "$gen" --check "$tmp/data" "$tmp/dsm-ref-f32" || bad "the .dsm outputs do not match numpy"

# ---- random weights: compile --random-weights --seed == run --random-weights --
for m in examples/*.dsg; do
  n=$(basename "$m" .dsg)
  "$dsc" compile "$m" --random-weights --seed 11 --bind B=2,S=5,N=1 -o "$tmp/r-$n.dsm" >"$tmp/log" 2>&1 ||
    { bad "compile --random-weights $m:"; cat "$tmp/log"; continue; }
  "$dsc" run "$m" --random-inputs --random-weights --seed 11 --bind B=2 --bind S=5 --bind N=1 --device ref \
    --output-dir "$tmp/r-dsg-$n" >/dev/null 2>&1 || bad "run $m --random-weights"
  "$dsc" run "$tmp/r-$n.dsm" --random-inputs --seed 11 --bind B=2 --bind S=5 --bind N=1 --device ref \
    --output-dir "$tmp/r-dsm-$n" >/dev/null 2>&1 || bad "run r-$n.dsm"
  # and the .dsm run with --random-weights makes the same weights as the .dsg
  "$dsc" run "$tmp/r-$n.dsm" --random-inputs --random-weights --seed 11 --bind B=2 --bind S=5 --bind N=1 \
    --device ref --output-dir "$tmp/rr-dsm-$n" >/dev/null 2>&1 || bad "run r-$n.dsm --random-weights"
  for want in "$tmp/r-dsg-$n"/*.npy; do
    cmp -s "$want" "$tmp/r-dsm-$n/$(basename "$want")" || bad "random weights, $n: $(basename "$want") differs"
    cmp -s "$want" "$tmp/rr-dsm-$n/$(basename "$want")" || bad "run --random-weights, $n: $(basename "$want") differs"
  done
done

# ---- plain Python reads it; the checksum and tensors check out ---------------
# The snippet of docs/formats.md, verbatim:
cat >"$tmp/snippet.py" <<'EOF'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    meta = json.loads(f.read(n))["__metadata__"]
print(meta["dsc.model"], meta["dsc.format_version"]); print(meta["dsc.graph"])
EOF
out=$("$py" "$tmp/snippet.py" "$tmp/mlp.dsm") || bad "the docs snippet failed"
grep -q "^mlp 1$" <<<"$out" || bad "snippet: no 'mlp 1' line: $(head -2 <<<"$out")"
grep -q "linear(h2, fc3.weight, fc3.bias)" <<<"$out" || bad "snippet: graph text missing"

while IFS=$'\t' read -r -a f; do
  "$dsc" inspect "$tmp/${f[0]}.dsm" >"$tmp/inspect.txt" 2>"$tmp/log" || { bad "inspect ${f[0]}.dsm:"; cat "$tmp/log"; }
  "$dsc" inspect --json "$tmp/${f[0]}.dsm" >"$tmp/inspect.json" 2>"$tmp/log" || { bad "inspect --json ${f[0]}.dsm"; cat "$tmp/log"; }
  # the stored weights are the params as the model means them: pruned where it
  # says @sparse (dsc prune applies exactly that rule; other params unchanged)
  "$dsc" prune "${f[1]}" --weights "${f[2]}" -o "$tmp/pruned.safetensors" >"$tmp/log" 2>&1 ||
    { bad "dsc prune ${f[1]}:"; cat "$tmp/log"; }
  "$py" - "$tmp/${f[0]}.dsm" "$tmp/pruned.safetensors" "$tmp/inspect.txt" "$tmp/inspect.json" <<'EOF' || bad "python checks of ${f[0]}.dsm"
import json, re, sys
sys.path.insert(0, "tests/data")
from make_corrupt_dsm import checksum, dense_tensors, read_st
dsm, weights, text, js = sys.argv[1:]
meta, tensors = read_st(open(dsm, "rb").read())
_, wts = read_st(open(weights, "rb").read())
ok = True
def check(cond, what):
    global ok
    if not cond:
        print("FAIL %s: %s" % (dsm, what)); ok = False
check(meta["dsc.format"] == "dsc.dsm" and meta["dsc.format_version"] == "1", "format id and version")
check(checksum(meta, tensors) == meta["dsc.checksum"], "checksum recomputed from the definition")
keys = set(re.findall(r'^  param (\S+) : \S+(?: from "([^"]+)")?', meta["dsc.graph"], re.M))
keys = {k or name for name, k in keys}
dense = dense_tensors(meta, tensors)  # block-compressed params rebuilt
check(set(dense) == keys, "tensors %s != param keys %s" % (sorted(dense), sorted(keys)))
for k, (dt, shape, raw) in dense.items():
    check(wts[k] == (dt, shape, raw), "tensor %s differs from the (pruned) weights file" % k)
check("weights \"" not in meta["dsc.graph"], "graph names a weights file")
plan = json.loads(meta["dsc.plan"])
t = open(text).read()
nbytes = sum(len(v[2]) for v in tensors.values())
check("model:     %s\n" % meta["dsc.model"] in t, "inspect: model line")
check("format:    dsc.dsm version 1, written by dsc %s\n" % meta["dsc.version"] in t, "inspect: format line")
check("checksum:  ok (%s)\n" % meta["dsc.checksum"] in t, "inspect: checksum line")
check("weights:   %d tensors, %d bytes\n" % (len(tensors), nbytes) in t, "inspect: weights line")
nload = sum(k["load_time"] for k in plan["kernels"])
check("kernels:   %d (%d at load time)\n" % (len(plan["kernels"]), nload) in t, "inspect: kernels line")
for k in plan["kernels"]:
    check(re.search(r"^  %s +group %d +%s" % (k["name"], k["group"], k["kind"]), t, re.M), "kernel " + k["name"])
check(t.endswith("graph:\n" + meta["dsc.graph"]), "inspect: the graph")
for m in re.finditer(r"^  input (\S+) : (\S+)\[(.*)\]$", meta["dsc.graph"], re.M):
    check("  %s : %s[%s]\n" % (m[1], m[2], m[3].replace(" ", "")) in t, "inspect: input " + m[1])
j = json.load(open(js))
check(j["model"] == meta["dsc.model"] and j["checksum"] == meta["dsc.checksum"], "json: model, checksum")
check(j["checksum_status"] == "ok" and j["format_version"] == 1, "json: status, version")
check(j["weights"]["count"] == len(tensors) and j["weights"]["bytes"] == nbytes, "json: weights")
check(j["kernels"] == plan["kernels"] and j["graph"] == meta["dsc.graph"], "json: kernels, graph")
sys.exit(0 if ok else 1)
EOF
done <<<"$runs"

# ---- pruned params block-compressed (BSR): ffn_block (@sparse) and bert_layer
# at --sparsity=0.5 store KEY.bsr.{values,rowptr,colidx}; the .dsm is smaller
# than the unpruned one, Python rebuilds from it exactly what `dsc prune`
# writes, and its outputs are byte-identical to the .dsg's on ref and cpu
while IFS=$'\t' read -r -a f; do
  name=${f[0]} model=${f[1]} weights=${f[2]}
  case $name in ffn_block | bert_layer) ;; *) continue ;; esac
  args=()
  for i in "${f[@]:3}"; do args+=(--input "$i"); done
  "$dsc" compile "$model" --sparsity=0.5 --weights "$weights" -o "$tmp/sp-$name.dsm" >"$tmp/log" 2>&1 ||
    { bad "compile --sparsity=0.5 $model:"; cat "$tmp/log"; continue; }
  "$dsc" prune "$model" --sparsity=0.5 --weights "$weights" -o "$tmp/sp-$name.safetensors" >"$tmp/log" 2>&1 ||
    { bad "prune --sparsity=0.5 $model:"; cat "$tmp/log"; }
  for dev in ref cpu; do
    "$dsc" run "$model" --sparsity=0.5 --weights "$weights" "${args[@]}" --device $dev \
      --output-dir "$tmp/sp-dsg-$dev-$name" >"$tmp/log" 2>&1 || { bad "run $model --sparsity=0.5 --device $dev:"; cat "$tmp/log"; }
    "$dsc" run "$tmp/sp-$name.dsm" "${args[@]}" --device $dev --output-dir "$tmp/sp-dsm-$dev-$name" \
      >"$tmp/log" 2>&1 || { bad "run sp-$name.dsm --device $dev:"; cat "$tmp/log"; }
    n=0
    for want in "$tmp/sp-dsg-$dev-$name"/*.npy; do
      cmp -s "$want" "$tmp/sp-dsm-$dev-$name/$(basename "$want")" || bad "sparse $name $dev: $(basename "$want") differs"
      n=$((n + 1))
    done
    [ $n -ge 1 ] || bad "sparse $name $dev: no outputs"
  done
  "$dsc" inspect "$tmp/sp-$name.dsm" >"$tmp/inspect.txt" 2>&1 || { bad "inspect sp-$name.dsm"; cat "$tmp/inspect.txt"; }
  "$py" - "$tmp/sp-$name.dsm" "$tmp/f32-$name.dsm" "$tmp/sp-$name.safetensors" "$tmp/inspect.txt" <<'EOF' || bad "BSR checks of sp-$name.dsm"
import json, os, sys
sys.path.insert(0, "tests/data")
from make_corrupt_dsm import dense_tensors, read_st
sp, full, pruned, text = sys.argv[1:]
meta, tensors = read_st(open(sp, "rb").read())
_, wts = read_st(open(pruned, "rb").read())
bsr = json.loads(meta["dsc.bsr"])
assert bsr, "no block-compressed params"
for k in bsr:
    for part in ("values", "rowptr", "colidx"):
        assert k + ".bsr." + part in tensors, (k, part)
    assert k not in tensors, k
dense = dense_tensors(meta, tensors)
for k in bsr:
    assert dense[k] == wts[k], "rebuilt %s differs from dsc prune's" % k
sp_size, full_size = os.path.getsize(sp), os.path.getsize(full)
saved = sum(len(dense[k][2]) - sum(len(tensors[k + ".bsr." + p][2]) for p in ("values", "rowptr", "colidx"))
            for k in bsr)
t = open(text).read()
assert "sparse:    %d params block-compressed (BSR), %d bytes saved\n" % (len(bsr), saved) in t, t[:600]
print("dsm: %s --sparsity=0.5: %d params BSR, .dsm %d bytes (%d stored dense, %d unpruned), %d bytes saved"
      % (os.path.basename(sp), len(bsr), sp_size, sp_size + saved, full_size, saved))
assert saved > 0 and sp_size < full_size, (saved, sp_size, full_size)
EOF
done <<<"$runs"

# ---- detection by content, options -------------------------------------------
cp "$tmp/mlp.dsm" "$tmp/mlp-copy.dsg"
"$dsc" run "$tmp/mlp-copy.dsg" --input "x=$tmp/data/mlp_in_x.npy" --device ref >/dev/null 2>"$tmp/log" ||
  { bad "a .dsm named .dsg is not run as one"; cat "$tmp/log"; }
"$dsc" run "$tmp/mlp.dsm" -O1 --random-inputs >/dev/null 2>&1
[ $? -eq 2 ] || bad "-O1 with a .dsm is not a usage error"
"$dsc" compile examples/mlp.dsg --emit=dsm --weights "$tmp/data/mlp.safetensors" -o "$tmp/mlp.bin" >/dev/null 2>&1 &&
  "$dsc" inspect "$tmp/mlp.bin" >/dev/null 2>&1 || bad "--emit=dsm to another extension"
"$dsc" run "$tmp/data/mlp.safetensors" --random-inputs >/dev/null 2>"$tmp/log"
[ $? -eq 1 ] && grep -q "no 'dsc.format' metadata entry" "$tmp/log" || { bad "a weights file run as a model:"; cat "$tmp/log"; }
"$dsc" bench "$tmp/mlp.dsm" --device ref --iters 1 --warmup 0 --bind B=2 >"$tmp/log" 2>&1 ||
  { bad "dsc bench on a .dsm:"; cat "$tmp/log"; }
for cmd in check compile; do
  "$dsc" $cmd "$tmp/mlp.dsm" >/dev/null 2>"$tmp/log"
  [ $? -eq 1 ] && grep -q "compiled model (.dsm), not DSG source" "$tmp/log" || { bad "dsc $cmd on a .dsm:"; cat "$tmp/log"; }
done

# ---- a failed compile leaves nothing, an existing file untouched -------------
echo old >"$tmp/keep.dsm"
"$dsc" compile examples/cnn_block.dsg --weights "$tmp/data/mlp.safetensors" -o "$tmp/keep.dsm" >/dev/null 2>"$tmp/log"
[ $? -eq 1 ] && grep -q "missing weight" "$tmp/log" || { bad "compile with the wrong weights:"; cat "$tmp/log"; }
[ "$(cat "$tmp/keep.dsm")" = old ] || bad "a failed compile changed the existing file"
"$dsc" compile examples/cnn_block.dsg --weights "$tmp/data/mlp.safetensors" -o "$tmp/new.dsm" >/dev/null 2>&1
[ -e "$tmp/new.dsm" ] && bad "a failed compile left a file"
ls "$tmp" | grep -q '\.tmp' && bad "temporary files left: $(ls "$tmp")"

# ---- damaged files -------------------------------------------------------------
corpus=tests/data/corrupt_dsm
refuse() { # FILE PHRASE: inspect, run and bench must exit 1 with PHRASE, the first line naming FILE
  local file=$1 phrase=$2 rc
  for cmd in "inspect" "run --random-inputs --device ref" "bench --iters 1 --warmup 0 --device ref"; do
    # shellcheck disable=SC2086
    "$dsc" $cmd "$file" >/dev/null 2>"$tmp/err"
    rc=$?
    if [ $rc -ne 1 ]; then bad "dsc $cmd $file: exit $rc (want 1):"; head -5 "$tmp/err"; continue; fi
    [ -z "$phrase" ] || grep -qiF -- "$phrase" "$tmp/err" || { bad "dsc $cmd $file: no '$phrase' in:"; head -5 "$tmp/err"; }
    head -1 "$tmp/err" | grep -qF -- "$file" || { bad "dsc $cmd $file: the first message does not name the file:"; head -2 "$tmp/err"; }
  done
}
n=0
while IFS=$'\t' read -r file phrase; do
  case $file in '#'*|'') continue ;; esac
  refuse "$corpus/$file" "$phrase"
  n=$((n + 1))
done <"$corpus/MANIFEST.tsv"
[ $n -ge 30 ] || bad "only $n damaged files listed"
for v in "$corpus"/valid*.dsm; do
  "$dsc" inspect "$v" >/dev/null 2>"$tmp/log" || { bad "$v does not load:"; cat "$tmp/log"; }
done
size=$(stat -c %s "$corpus/valid.dsm")
for k in $(seq 0 23); do
  cut=$((k * size / 24))
  head -c "$cut" "$corpus/valid.dsm" >"$tmp/cut.dsm"
  refuse "$tmp/cut.dsm" ""
done
echo "dsm: $n damaged files and 24 truncations refused by inspect, run and bench"

[ $fail -eq 0 ] && echo "dsm: all checks passed"
exit $fail
