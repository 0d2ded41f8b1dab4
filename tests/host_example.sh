#!/usr/bin/env bash
# The installed library and the C host example (examples/host/): installs the
# build (cmake --install) into a temporary prefix, checks what was installed
# (the public header only, libdsc.so with its SONAME exporting dsc_* symbols
# only, libdsc.a, dsc.pc, dscConfig.cmake), builds examples/host against the
# INSTALLED library -- with CMake find_package(dsc) (dsc::dsc, and
# dsc::dsc_static) and with pkg-config -- and runs each: examples/bert_layer.dsg (and, with the CMake build, the
# same model compiled to a .dsm) at several sequence lengths checked against
# numpy (examples/host/make_data.py), then two sessions on two threads
# sharing the model.  Fails (never skips) without numpy.
set -u
dsc=$1
build=$(cd "$(dirname "$dsc")" && pwd)
src=$(pwd)
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
lengths="3 16 41"

py=
for p in python3 /usr/bin/python3 /usr/local/bin/python3; do
  if "$p" -c 'import numpy' >/dev/null 2>&1; then py=$p; break; fi
done
[ -n "$py" ] || { echo "FAIL no python3 with numpy"; exit 1; }

# An ASan+UBSan build's libdsc needs the sanitizer runtime in the program too.
cflags="-O2 -Wall -Wextra -Werror"
if grep -q '^DSC_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  cflags="$cflags -fsanitize=address,undefined -fno-omit-frame-pointer"
  export LDFLAGS="-fsanitize=address,undefined"
fi

# the host JIT, or the interpreter in a build without LLVM
device=cpu
grep -q '^DSC_WITH_LLVM:BOOL=OFF' "$build/CMakeCache.txt" 2>/dev/null && device=ref

prefix=$tmp/prefix
if ! cmake --install "$build" --prefix "$prefix" >"$tmp/log" 2>&1; then
  echo "FAIL cmake --install:"; head -c 2000 "$tmp/log"; exit 1
fi
libdir=$(dirname "$(ls "$prefix"/lib*/libdsc.so 2>/dev/null | head -1)")
[ -f "$libdir/libdsc.so" ] || { echo "FAIL no libdsc.so installed under $prefix"; exit 1; }

# what was installed
[ "$(ls "$prefix/include")" = "dsc.h" ] || { echo "FAIL include/ holds more than dsc.h: $(ls "$prefix/include")"; fail=1; }
for f in libdsc.a pkgconfig/dsc.pc cmake/dsc/dscConfig.cmake cmake/dsc/dscConfigVersion.cmake; do
  [ -f "$libdir/$f" ] || { echo "FAIL $libdir/$f not installed"; fail=1; }
done
soname=$(readelf -d "$libdir/libdsc.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
version=$("$dsc" --version | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)
[ "$soname" = "libdsc.so.${version%.*}" ] || { echo "FAIL SONAME '$soname', expected libdsc.so.${version%.*}"; fail=1; }
[ -f "$libdir/$soname" ] || { echo "FAIL $soname not installed"; fail=1; }
others=$(nm -D --defined-only "$libdir/libdsc.so" | awk '{print $3}' |
         grep -vE '^(dsc_|_init$|_fini$|_edata$|_end$|__bss_start$)' | head -5)
[ -z "$others" ] || { echo "FAIL libdsc.so exports symbols other than dsc_*: $others"; fail=1; }
nm -D --defined-only "$libdir/libdsc.so" | grep -q ' T dsc_session_run$' || { echo "FAIL dsc_session_run not exported"; fail=1; }

# data: weights, inputs and numpy's outputs
"$py" examples/host/make_data.py "$tmp/data" $lengths >"$tmp/log" 2>&1 || { echo "FAIL make_data.py:"; cat "$tmp/log"; exit 1; }

# the same model compiled (.dsm: the optimized graph and the weights in one file)
if ! "$dsc" compile examples/bert_layer.dsg --weights "$tmp/data/bert_layer.safetensors" -o "$tmp/bert_layer.dsm" \
     >"$tmp/log" 2>&1; then
  echo "FAIL dsc compile -o bert_layer.dsm:"; cat "$tmp/log"; exit 1
fi

run_host() { # HOW BINARY [MODEL WEIGHTS]
  local how=$1 bin=$2 model=${3:-examples/bert_layer.dsg} weights=${4:-$tmp/data/bert_layer.safetensors}
  local used
  used=$(ldd "$bin" | awk '/libdsc/ {print $3}')
  if [ "$how" = cmake-static ]; then
    [ -z "$used" ] || { echo "FAIL host ($how) uses $used"; fail=1; return; }
  elif [ -z "$used" ] || [ "$(realpath "$used")" != "$(realpath "$libdir/$soname")" ]; then
    echo "FAIL host ($how) does not use the installed library:"; ldd "$bin" | grep dsc; fail=1; return
  fi
  if ! DSC_DEVICE=$device DSC_CACHE_DIR="$tmp/cache" "$bin" "$model" "$weights" "$tmp/data" $lengths >"$tmp/$how.out" 2>&1; then
    echo "FAIL host ($how) exited non-zero:"; head -c 3000 "$tmp/$how.out"; fail=1; return
  fi
  local n
  n=$(grep -c '^ok   S=' "$tmp/$how.out")
  [ "$n" -eq 3 ] || { echo "FAIL host ($how): $n of 3 lengths checked"; cat "$tmp/$how.out"; fail=1; }
  n=$(grep -c '^ok   thread ' "$tmp/$how.out")
  [ "$n" -eq 2 ] || { echo "FAIL host ($how): $n of 2 threads ok"; cat "$tmp/$how.out"; fail=1; }
  grep -q 'all results match' "$tmp/$how.out" || { echo "FAIL host ($how)"; cat "$tmp/$how.out"; fail=1; }
  echo "-- host ($how)"; cat "$tmp/$how.out"
}

# 1. CMake, find_package(dsc)
if cmake -S examples/host -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_FLAGS="$cflags" \
     -DCMAKE_EXE_LINKER_FLAGS="${LDFLAGS:-}" >"$tmp/log" 2>&1 &&
   cmake --build "$tmp/cmake-build" >>"$tmp/log" 2>&1; then
  run_host cmake "$tmp/cmake-build/host"
  run_host cmake-dsm "$tmp/cmake-build/host" "$tmp/bert_layer.dsm" -
else
  echo "FAIL building examples/host with find_package(dsc):"; tail -c 3000 "$tmp/log"; fail=1
fi

# 2. CMake, dsc::dsc_static
if cmake -S examples/host -B "$tmp/cmake-static" -DHOST_STATIC=ON -DCMAKE_PREFIX_PATH="$prefix" \
     -DCMAKE_C_FLAGS="$cflags" -DCMAKE_EXE_LINKER_FLAGS="${LDFLAGS:-}" >"$tmp/log" 2>&1 &&
   cmake --build "$tmp/cmake-static" >>"$tmp/log" 2>&1; then
  run_host cmake-static "$tmp/cmake-static/host"
else
  echo "FAIL building examples/host with dsc::dsc_static:"; tail -c 3000 "$tmp/log"; fail=1
fi

# 3. pkg-config (the Makefile)
mkdir -p "$tmp/pc-build"
if PKG_CONFIG_PATH="$libdir/pkgconfig" make -s -C examples/host OUT="$tmp/pc-build" CFLAGS="$cflags" \
     >"$tmp/log" 2>&1; then
  run_host pkg-config "$tmp/pc-build/host"
else
  echo "FAIL building examples/host with pkg-config:"; tail -c 3000 "$tmp/log"; fail=1
fi
cd "$src" || exit 1

[ $fail -eq 0 ] && echo "host example: all checks passed"
exit $fail
