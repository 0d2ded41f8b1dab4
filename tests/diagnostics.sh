#!/usr/bin/env bash
# Golden diagnostics: every tests/diagnostics/*.dsg ends with `# expect:` lines,
# one per message `dsc check` must print (LINE:COL: LEVEL: MESSAGE, in order).
# The exit status must be 1 when an error is expected, else 0.  Every message
# must also show the source line and a caret.
# Usage: tests/diagnostics.sh DSC [--update]   (--update rewrites the expectations)
set -u
dsc=$1
update=${2:-}
dir=$(dirname "$0")/diagnostics
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for src in "$dir"/*.dsg; do
  # check a copy without the expectations (they sit at the end, so the lines
  # before them keep their numbers, and errors at end of file stay put)
  f="$tmp/$(basename "$src")"
  grep -av '^# expect: ' "$src" > "$f"
  out=$("$dsc" check "$f" 2>&1)
  rc=$?
  got=$(printf '%s\n' "$out" | grep -aE "^$f:[0-9]+:[0-9]+: (error|warning|note): |^$f: error: " \
        | sed -e "s|^$f:||" -e "s|^ error:|0:0: error:|")
  if [ "$update" = "--update" ]; then
    { cat "$f"; [ -n "$got" ] && printf '%s\n' "$got" | sed 's/^/# expect: /'; } > "$src.new"
    mv "$src.new" "$src"
    continue
  fi
  want=$(grep -a '^# expect: ' "$src" | sed 's/^# expect: //')
  if [ -z "$want" ]; then
    echo "FAIL $src: no '# expect:' lines"; fail=1; continue
  fi
  if [ "$got" != "$want" ]; then
    echo "FAIL $src: messages differ"
    diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") | sed 's/^/    /'
    fail=1
  fi
  if printf '%s\n' "$want" | grep -q ': error: '; then
    [ $rc -eq 1 ] || { echo "FAIL $src: exit status $rc, expected 1"; fail=1; }
  else
    [ $rc -eq 0 ] || { echo "FAIL $src: exit status $rc, expected 0"; fail=1; }
  fi
  # every located message is followed by the source line and a caret
  carets=$(printf '%s\n' "$out" | grep -cE '^ +\^$')
  located=$(printf '%s\n' "$got" | grep -cvE '^0:0:')
  [ "$carets" -ge "$located" ] || { echo "FAIL $src: $located located messages but $carets carets"; fail=1; }
done

# Generated stress inputs: no crash or hang, a located error (or success).
stress() { # NAME EXPECTED_RC
  local f="$tmp/$1.dsg" rc
  timeout 60 "$dsc" check "$f" >"$tmp/$1.out" 2>&1
  rc=$?
  if [ $rc -ne "$2" ]; then
    echo "FAIL stress $1: exit status $rc, expected $2"; head -c 600 "$tmp/$1.out"; fail=1
  elif [ "$2" -eq 1 ] && ! grep -aqE "^$f:[0-9]+:[0-9]+: error: " "$tmp/$1.out"; then
    echo "FAIL stress $1: no located error"; head -c 600 "$tmp/$1.out"; fail=1
  else
    echo "ok stress $1 (exit $rc)"
  fi
}
rep() { head -c "$2" /dev/zero | tr '\0' "$1"; }
{ printf 'model m {\n  input x : f32[2]\n  output y = '; rep '(' 200000; printf x; rep ')' 200000; printf '\n}\n'; } > "$tmp/parens.dsg"
stress parens 1
{ printf 'model m {\n  input '; rep a 1048576; printf ' : f32[2]\n  output y = '; rep a 1048576; printf '\n}\n'; } > "$tmp/bigname.dsg"
stress bigname 0
{ printf 'model m {\n  input x : f32[2]\n  output y = '; rep a 1048576; printf '\n}\n'; } > "$tmp/bigunknown.dsg"
stress bigunknown 1
{ printf 'model m {\n  input x : f32[2]\n  output y = '; rep '-' 1048576; printf 'x\n}\n'; } > "$tmp/minus.dsg"
stress minus 1
{ printf 'model m {\n  input x : f32[2]\n  output y = x'; for _ in $(seq 5000); do printf ' + x'; done; printf '\n}\n'; } > "$tmp/longsum.dsg"
stress longsum 1
{ printf 'model m {\n  input x0 : f32[2]\n'; for i in $(seq 1 100000); do printf '  let x%d = x%d + 1\n' "$i" "$((i-1))"; done; printf '  output y = x100000\n}\n'; } > "$tmp/many.dsg"
stress many 0
{ for i in $(seq 1 40); do printf 'fn g%d(x) { return g%d(x) + g%d(x) }\n' "$i" "$((i-1))" "$((i-1))"; done
  printf 'fn g0(x) { return x }\nmodel m {\n  input x : f32[2]\n  output y = g40(x)\n}\n'; } > "$tmp/explode.dsg"
stress explode 1
head -c 65536 /dev/urandom > "$tmp/random.dsg"
timeout 60 "$dsc" check "$tmp/random.dsg" >/dev/null 2>&1
rc=$?
[ $rc -eq 1 ] || { echo "FAIL stress random: exit status $rc, expected 1"; fail=1; }

[ $fail -eq 0 ] && echo "diagnostics: all files match"
exit $fail
