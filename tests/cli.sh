#!/usr/bin/env bash
# The dsc command line: help and version texts, exit statuses (0 ok, 1
# diagnostics, 2 usage), output files written whole, dumps that compile again,
# and dsc run end to end on every example.
set -u
dsc=$1
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
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

expect 0 "--help" -- "$dsc" --help;                 has "$tmp/out" "^usage: dsc COMMAND" "--help"
expect 0 "--version" -- "$dsc" --version;           has "$tmp/out" "^dsc [0-9]+\.[0-9]+\.[0-9]+" "--version"
for c in check compile run passes hwdb; do
  expect 0 "$c --help" -- "$dsc" "$c" --help;       has "$tmp/out" "^usage: dsc $c" "$c --help"
  expect 0 "help $c" -- "$dsc" help "$c";           has "$tmp/out" "^usage: dsc $c" "help $c"
done
expect 2 "no command" -- "$dsc"
expect 2 "unknown command" -- "$dsc" frobnicate;    has "$tmp/err" "unknown command 'frobnicate'" "unknown command"
expect 2 "unknown option" -- "$dsc" check --bogus examples/mlp.dsg
expect 2 "check without file" -- "$dsc" check
expect 2 "bad --emit" -- "$dsc" compile examples/mlp.dsg --emit=llvm
expect 2 "bad pass" -- "$dsc" compile examples/mlp.dsg --dump-after=nosuchpass
expect 2 "run: bad --bind" -- "$dsc" run examples/mlp.dsg --bind B=x
expect 1 "missing file" -- "$dsc" check "$tmp/nonexistent.dsg"; has "$tmp/err" "nonexistent.dsg: error: cannot open" "missing file"
expect 1 "bad model" -- "$dsc" check tests/diagnostics/shapes.dsg
expect 0 "passes" -- "$dsc" passes;                 has "$tmp/out" "dce" "passes"

# compile: -o writes the file; a failed compile leaves nothing behind
expect 0 "compile -o" -- "$dsc" compile examples/bert_layer.dsg -o "$tmp/bert.dsg"
expect 0 "recompile output" -- "$dsc" check "$tmp/bert.dsg"
expect 0 "compile -o -" -- "$dsc" compile examples/mlp.dsg -o -;   has "$tmp/out" "^model mlp \{" "-o -"
expect 0 "emit dot" -- "$dsc" compile examples/cnn_block.dsg --emit=dot -o "$tmp/cnn.dot"
has "$tmp/cnn.dot" '^digraph "cnn_block"' "dot header"
has "$tmp/cnn.dot" 'label="f32\[N,16,32,32\]"' "dot edge shapes"
expect 1 "failed compile" -- "$dsc" compile tests/diagnostics/shapes.dsg -o "$tmp/bad.dsg"
[ ! -e "$tmp/bad.dsg" ] || { echo "FAIL failed compile left $tmp/bad.dsg"; fail=1; }
ls "$tmp" | grep -q '\.tmp\.' && { echo "FAIL temporary files left behind"; fail=1; }
# a target that is not a regular file (a pipe) is written directly, not replaced
mkfifo "$tmp/pipe"
cat "$tmp/pipe" > "$tmp/from_pipe" &
expect 0 "compile -o pipe" -- "$dsc" compile examples/mlp.dsg -o "$tmp/pipe"
wait
[ -p "$tmp/pipe" ] || { echo "FAIL -o replaced a pipe"; fail=1; }
has "$tmp/from_pipe" "^model mlp" "output through a pipe"
# --stats prints the figures (text and json)
expect 0 "stats" -- "$dsc" compile examples/bert_layer.dsg --stats --bind B=1,S=128 -o "$tmp/s.dsg"
has "$tmp/out" "kernels" "stats text"
expect 0 "stats json" -- "$dsc" compile examples/bert_layer.dsg --stats=json --bind B=1 --bind S=128 -o "$tmp/s.dsg"
has "$tmp/out" '"peak_bytes_naive":' "stats json"
expect 1 "stats: unknown dim" -- "$dsc" compile examples/bert_layer.dsg --stats --bind T=3 -o "$tmp/s.dsg"
# dumps: one numbered file per pass, each valid DSG; works without the weights file
expect 0 "dump-after=all" -- "$dsc" compile examples/ffn_block.dsg --dump-after=all --dump-before=all --dump-dir "$tmp/dumps"
n=$(ls "$tmp/dumps" | wc -l)
[ "$n" -eq $((2 * $("$dsc" passes | wc -l))) ] || { echo "FAIL dump count $n"; fail=1; }
for f in "$tmp"/dumps/*.dsg; do expect 0 "dump $f compiles" -- "$dsc" check "$f"; done
expect 0 "-O0" -- "$dsc" compile examples/mlp.dsg -O0 --disable-pass=dce

# run: every example with random inputs and weights
for f in examples/*.dsg; do
  expect 0 "run $f" -- "$dsc" run "$f" --random-inputs --random-weights --bind S=8 --bind B=2 --bind N=2 --output-dir "$tmp/run"
  has "$tmp/out" "min=.* max=.* mean=" "run $f summary"
done
[ -f "$tmp/run/logits.npy" ] || { echo "FAIL run did not write logits.npy"; fail=1; }
expect 1 "run: missing input" -- "$dsc" run examples/mlp.dsg --random-weights
has "$tmp/err" "missing input 'x'" "missing input message"
expect 1 "run: missing weights file" -- "$dsc" run examples/mlp.dsg --random-inputs --weights "$tmp/none.safetensors"
has "$tmp/err" "none.safetensors" "missing weights message"
expect 1 "run: bound exceeded" -- "$dsc" run examples/ffn_block.dsg --random-inputs --random-weights --bind S=600 --bind B=1
has "$tmp/err" "600" "bound message"
expect 1 "run: unknown input" -- "$dsc" run examples/mlp.dsg --input nosuch="$tmp/x.npy" --random-weights
expect 1 "run: unavailable device" -- "$dsc" run examples/mlp.dsg --random-inputs --random-weights --device cuda

[ $fail -eq 0 ] && echo "cli: all checks passed"
exit $fail
