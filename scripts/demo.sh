#!/usr/bin/env bash
# Fresh machine to first result: install dependencies, build, and compile the
# BERT encoder-layer example, printing the optimized graph as DSG.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
build/dsc check -v examples/bert_layer.dsg
build/dsc compile examples/bert_layer.dsg --emit=dsg
