#!/usr/bin/env bash
# Installs the Debian packages dsc needs to build and test (idempotent: only
# what is missing is installed).  Needs root or sudo.
set -euo pipefail
pkgs=(build-essential cmake pkg-config flex bison libcriterion-dev libcjson-dev clang python3-numpy llvm-16-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
