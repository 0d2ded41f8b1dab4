#!/usr/bin/env bash
# Builds dsc and runs every test suite (Criterion through ctest).
# With CI=true it also builds and runs the suites under ASan+UBSan and runs
# each libFuzzer target (frontend 60 s, file readers 30 s each).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)

cmake -S . -B build -DDSC_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

if [ "${CI:-}" = "true" ]; then
  echo "== ASan+UBSan build"
  cmake -S . -B build-asan -DDSC_WERROR=ON -DDSC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
  cmake --build build-asan -j"$jobs"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ctest --output-on-failure -j"$jobs")

  echo "== libFuzzer"
  cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DDSC_FUZZ=ON -DDSC_WERROR=ON >/dev/null
  cmake --build build-fuzz -j"$jobs"
  for target in build-fuzz/fuzz_*; do
    name=$(basename "$target")
    seconds=30
    [ "$name" = fuzz_frontend ] && seconds=60
    corpus="build-fuzz/corpus-$name"
    mkdir -p "$corpus"
    case "$name" in
      fuzz_frontend) seeds="examples tests/diagnostics" ;;
      fuzz_npy) seeds="tests/data/npy tests/data/corrupt" ;;
      fuzz_safetensors) seeds="tests/data/safetensors tests/data/corrupt" ;;
      fuzz_dsm) seeds="tests/data/corrupt_dsm" ;;
      *) seeds="" ;;
    esac
    existing=""
    for s in $seeds; do [ -d "$s" ] && existing="$existing $s"; done
    echo "-- $name for ${seconds}s"
    "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      "$corpus" $existing 2>&1 | tail -n 12
  done
fi
echo "all tests passed"
