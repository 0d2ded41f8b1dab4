#!/usr/bin/env bash
# Run-time errors end to end: `dsc run` and `dsc bench` with --device cpu (the
# host JIT, what --device auto picks without a GPU) must fail exactly as
# --device ref (the interpreter) does: same diagnostic with source line and
# caret, exit status 1, and no output file written.  The inputs are .npy files
# written here from seeded random values with one bad value planted (python3,
# standard library only).  The same models with good inputs must run on both
# devices and print the same summary.
# Usage: tests/trap.sh DSC
set -u
dsc=$1
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
seed=${DSC_TEST_SEED:-20261128}

# npy DTYPE(i4|i8|f4) SHAPE(a,b) FILE LO HI SEED [AT VALUE]: seeded uniform
# values in [LO, HI) (integers rounded down), element AT set to VALUE
npy() {
  python3 - "$@" <<'EOF'
import random, struct, sys
dt, shape, path = sys.argv[1], [int(s) for s in sys.argv[2].split(',')], sys.argv[3]
lo, hi, rng = float(sys.argv[4]), float(sys.argv[5]), random.Random(int(sys.argv[6]))
n = 1
for s in shape:
    n *= s
vals = [rng.uniform(lo, hi) for _ in range(n)]
if dt != 'f4':
    vals = [int(v // 1) for v in vals]
if len(sys.argv) > 8:
    vals[int(sys.argv[7])] = int(sys.argv[8])
shp = '(%d,)' % shape[0] if len(shape) == 1 else '(' + ', '.join(str(s) for s in shape) + ')'
head = "{'descr': '<%s', 'fortran_order': False, 'shape': %s, }" % (dt, shp)
head += ' ' * (63 - (10 + len(head)) % 64) + '\n'
with open(path, 'wb') as f:
    f.write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(head)) + head.encode())
    f.write(struct.pack('<%d%s' % (n, {'i4': 'i', 'i8': 'q', 'f4': 'f'}[dt]), *vals))
EOF
}

# same_failure NAME MODEL ARGS...: ref and cpu fail alike
same_failure() {
  local name=$1 model=$2; shift 2
  for dev in ref cpu; do
    "$dsc" run "$model" "$@" --device "$dev" --output-dir "$tmp/out-$dev" >"$tmp/$dev.out" 2>"$tmp/$dev.err"
    echo $? >"$tmp/$dev.rc"
  done
  if [ "$(cat "$tmp/ref.rc")" != 1 ] || [ "$(cat "$tmp/cpu.rc")" != 1 ]; then
    echo "FAIL $name: exit statuses ref $(cat "$tmp/ref.rc"), cpu $(cat "$tmp/cpu.rc"), expected 1"; fail=1
  fi
  if ! grep -q ": error: " "$tmp/ref.err"; then
    echo "FAIL $name: the interpreter reported nothing"; cat "$tmp/ref.err"; fail=1
  fi
  if ! cmp -s "$tmp/ref.err" "$tmp/cpu.err"; then
    echo "FAIL $name: cpu reports differently"; diff "$tmp/ref.err" "$tmp/cpu.err" | sed 's/^/    /'; fail=1
  fi
  if [ -s "$tmp/cpu.out" ] || [ -e "$tmp/out-cpu/y.npy" ]; then
    echo "FAIL $name: cpu printed or wrote an output"; fail=1
  fi
  local bargs=() a # bench makes random inputs without being asked
  for a in "$@"; do [ "$a" = --random-inputs ] || bargs+=("$a"); done
  "$dsc" bench "$model" "${bargs[@]}" --device cpu --iters 2 --warmup 0 >"$tmp/bench.out" 2>"$tmp/bench.err"
  local rc=$?
  if [ $rc != 1 ] || ! cmp -s "$tmp/ref.err" "$tmp/bench.err"; then
    echo "FAIL $name: bench exit $rc (expected 1)"; diff "$tmp/ref.err" "$tmp/bench.err" | sed 's/^/    /'; fail=1
  fi
  rm -rf "$tmp/out-ref" "$tmp/out-cpu"
}

# same_success NAME MODEL ARGS...: both run and print the same summary
same_success() {
  local name=$1 model=$2; shift 2
  for dev in ref cpu; do
    "$dsc" run "$model" "$@" --device "$dev" >"$tmp/$dev.out" 2>"$tmp/$dev.err" ||
      { echo "FAIL $name: --device $dev failed on good input"; cat "$tmp/$dev.err"; fail=1; }
  done
  cmp -s "$tmp/ref.out" "$tmp/cpu.out" ||
    { echo "FAIL $name: outputs differ"; diff "$tmp/ref.out" "$tmp/cpu.out" | sed 's/^/    /'; fail=1; }
}

cat >"$tmp/g.dsg" <<'EOF'
model g {
  input x : f32[4, 3]
  input i : i64[6]
  output y = gather(x, i, axis=0)
}
EOF
cat >"$tmp/h.dsg" <<'EOF'
model h {
  input a : i32[40]
  input b : i32[40]
  output y = (a + 1) / b * 2
}
EOF
cat >"$tmp/p.dsg" <<'EOF'
model p {
  input a : i64[10]
  input e : i64[10]
  output y = pow(a, e - 3)
}
EOF
cat >"$tmp/r.dsg" <<'EOF'
model r {
  dim N
  input x : f32[N, 3]
  output y = reduce_max(x, axes=[0])
}
EOF
at=$((seed % 6))
npy f4 4,3 "$tmp/x.npy" -1 1 "$seed"
npy i8 6 "$tmp/i_hi.npy" -4 4 "$seed" "$at" 7
npy i8 6 "$tmp/i_lo.npy" -4 4 "$seed" "$at" -5
npy i8 6 "$tmp/i_ok.npy" -4 4 "$seed" "$at" -4
same_failure "gather index 7" "$tmp/g.dsg" --input x="$tmp/x.npy" --input i="$tmp/i_hi.npy"
same_failure "gather index -5" "$tmp/g.dsg" --input x="$tmp/x.npy" --input i="$tmp/i_lo.npy"
same_success "gather index -4" "$tmp/g.dsg" --input x="$tmp/x.npy" --input i="$tmp/i_ok.npy"

at=$((seed % 40))
npy i4 40 "$tmp/a.npy" -100 100 "$seed"
npy i4 40 "$tmp/b0.npy" 1 9 "$seed" "$at" 0
npy i4 40 "$tmp/b1.npy" 1 9 "$seed" "$at" -1
same_failure "division by zero" "$tmp/h.dsg" --input a="$tmp/a.npy" --input b="$tmp/b0.npy"
same_success "division" "$tmp/h.dsg" --input a="$tmp/a.npy" --input b="$tmp/b1.npy"

at=$((seed % 10))
npy i8 10 "$tmp/pa0.npy" 1 5 "$seed" "$at" 0
npy i8 10 "$tmp/pa1.npy" 1 5 "$seed" "$at" 2
npy i8 10 "$tmp/pe.npy" 0 3 "$seed"
same_failure "0 to a negative power" "$tmp/p.dsg" --input a="$tmp/pa0.npy" --input e="$tmp/pe.npy"
same_success "pow" "$tmp/p.dsg" --input a="$tmp/pa1.npy" --input e="$tmp/pe.npy"

same_failure "reduce_max of nothing" "$tmp/r.dsg" --random-inputs --bind N=0
same_success "reduce_max" "$tmp/r.dsg" --random-inputs --bind N=3

exit $fail
