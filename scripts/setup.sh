#!/usr/bin/env bash
# Installs every Debian 12 package Tessera needs to build, run and test. Idempotent; run as root.
set -euo pipefail
PKGS=(
  cmake ninja-build g++ pkg-config git debootstrap
  llvm-19-dev llvm-19-tools libmlir-19-dev mlir-19-tools
  libvulkan-dev mesa-vulkan-drivers vulkan-tools spirv-tools vulkan-validationlayers
  libonnx-dev libprotobuf-dev protobuf-compiler
  libcli11-dev nlohmann-json3-dev libgtest-dev
  clang-19 libclang-rt-19-dev
  libpcre2-dev libutf8proc-dev
  python3 python3-numpy python3-onnx python3-torch python3-yaml python3-jinja2
)
# node + npm run the text tests' oracles (scripts/npm_oracles.sh); a node
# from elsewhere (e.g. nodesource, which bundles npm) is kept as it is.
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
