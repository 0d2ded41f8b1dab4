#!/usr/bin/env bash
# Every example model under examples/ run with real files (seeded random
# weights .safetensors and input .npy files from tests/gen_examples.py) and
# compared with an independent numpy implementation of the same model (relative
# L2 error, tolerance 1e-5 for f32); then each run once more with
# --random-inputs --random-weights.  Fails (never skips) without numpy.
set -u
dsc=$1
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

py=
for p in python3 /usr/bin/python3 /usr/local/bin/python3; do
  if "$p" -c 'import numpy' >/dev/null 2>&1; then py=$p; break; fi
done
if [ -z "$py" ]; then
  echo "FAIL no python3 with numpy (tried python3, /usr/bin/python3, /usr/local/bin/python3)"
  exit 1
fi

gen=tests/gen_examples.py
"$py" "$gen" "$tmp/data" || { echo "FAIL $gen"; exit 1; }
runs=$("$py" "$gen" --list "$tmp/data") || { echo "FAIL $gen --list"; exit 1; }
[ -n "$runs" ] || { echo "FAIL empty manifest"; exit 1; }

mkdir -p "$tmp/out"
# one line per example: name, model, weights, NAME=FILE inputs (tab-separated)
while IFS=$'\t' read -r -a f; do
  name=${f[0]} model=${f[1]} weights=${f[2]}
  args=()
  for i in "${f[@]:3}"; do args+=(--input "$i"); done
  if ! "$dsc" run "$model" --weights "$weights" "${args[@]}" --output-dir "$tmp/out/$name" \
       >"$tmp/log" 2>&1; then
    echo "FAIL dsc run $model exited non-zero:"; head -c 2000 "$tmp/log"; fail=1
  fi
done <<<"$runs"
"$py" "$gen" --check "$tmp/data" "$tmp/out" || fail=1

# random inputs and weights, small dims
for m in examples/*.dsg; do
  if ! "$dsc" run "$m" --random-inputs --random-weights --bind B=2 --bind S=5 --bind N=1 \
       --output-dir "$tmp/random" >"$tmp/log" 2>&1; then
    echo "FAIL dsc run $m --random-inputs --random-weights exited non-zero:"; head -c 2000 "$tmp/log"; fail=1
  elif grep -qE "non-finite=|no finite values" "$tmp/log"; then
    echo "FAIL dsc run $m --random-inputs --random-weights: non-finite output"; cat "$tmp/log"; fail=1
  fi
done

[ $fail -eq 0 ] && echo "examples: all checks passed"
exit $fail
