#!/usr/bin/env bash
# Sets up, builds and runs every test (lit/FileCheck, GoogleTest, end-to-end on lavapipe).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "${JOBS:-$(nproc)}"
