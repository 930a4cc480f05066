#!/usr/bin/env bash
# The whole kernel-numerics suite (test/unit/lowering/KernelNumericsTest.cpp:
# every kernel family, every profile, nvidia.json's cooperative-matrix
# matmuls included) on the lent GPU, in one device call, with the runtime-only
# tessera-kcheck (docs/kernel-checks.md).
#
# Here (builds, then exports every case; lavapipe runs what it can, the rest
# is compiled only):
#   bash bench/kernel_numerics_gpu.sh export
# There (device tool; carry .gl build/bin/tessera-kcheck build/kcheck-cases):
#   OUT=$OUT bash bench/kernel_numerics_gpu.sh
# Writes kcheck.txt (one line per case, then "kcheck: N passed, M failed")
# and gpu.txt into $OUT; exits non-zero when a case failed.
set -uo pipefail
cd "$(dirname "$0")/.."
CASES=${CASES:-build/kcheck-cases}
LIMIT_MIB=48 # the device tool carries 64 MiB in all (.gl and the binary too)

if [ "${1:-}" = export ]; then
  set -e
  cmake --build build --target lowering_tests tessera-kcheck >/dev/null
  rm -rf "$CASES"
  TESSERA_KCHECK_EXPORT="$PWD/$CASES" build/bin/lowering_tests --gtest_filter='KernelNumerics.*:KernelNumericsEpilogue.CoopMatNvidia*:KernelNumericsAttention.CoopMatNvidia*' --gtest_brief=1
  mib=$(du -sm "$CASES" | cut -f1)
  echo "exported $(ls "$CASES" | wc -l) cases into $CASES ($mib MiB)"
  [ "$mib" -le "$LIMIT_MIB" ] || { echo "error: $CASES is $mib MiB, over the $LIMIT_MIB MiB that leave room in the carry"; exit 1; }
  echo "device tool: carry .gl build/bin/tessera-kcheck $CASES; command: OUT=\$OUT bash bench/kernel_numerics_gpu.sh"
  exit 0
fi

source scripts/device_env.sh
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$OUT/gpu.txt"
chmod +x build/bin/tessera-kcheck
build/bin/tessera-kcheck --help >/dev/null 2>&1 || { ldd build/bin/tessera-kcheck; exit 1; }
# The cases compiled for lavapipe's 8x8x8 cooperative matrices are not for this device.
build/bin/tessera-kcheck "$CASES" --exclude CoopMat8x8x8 --exclude CoopMatQuantQ --exclude CoopMatQuantTq 2>&1 | tee "$OUT/kcheck.txt"
rc=${PIPESTATUS[0]}
exit "$rc"
