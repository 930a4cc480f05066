#!/usr/bin/env bash
# The ctest checks that need Debian 13 (scripts/trixie_env.sh): Debian 12's
# spirv-val rejects CooperativeMatrixKHR and its lavapipe has no cooperative
# matrices.
#
#   trixie_checks.sh env
#       creates (or reuses) the trixie folder
#   trixie_checks.sh spirv-val KCHECK CASES MIN_COOPMAT
#       spirv-val --target-env vulkan1.3 (SPIRV-Tools 2025.1) on every kernel
#       of the cases (tessera-kcheck --dump-spirv); fails unless at least
#       MIN_COOPMAT of them declare the CooperativeMatrixKHR capability
#   trixie_checks.sh kcheck KCHECK CASES [KCHECK ARGS]...
#       tessera-kcheck on trixie's lavapipe (Mesa 26.1, VK_KHR_cooperative_matrix
#       8x8x8 at llvmpipe's default 256-bit width) with the Khronos validation
#       layer; a validation error fails the test
#
# When the folder cannot be made (no network, not root) the tests FAIL, in CI
# always. Locally, and only locally, TESSERA_SKIP_TRIXIE=1 skips them (exit
# 77, which ctest reports as skipped).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
ENV="$ROOT/scripts/trixie_env.sh"

if [ -n "${TESSERA_SKIP_TRIXIE:-}" ] && [ "${TESSERA_SKIP_TRIXIE}" != 0 ]; then
  if [ "${CI:-}" = true ]; then
    echo "TESSERA_SKIP_TRIXIE is ignored in CI: the cooperative-matrix kernels must be checked"
  else
    echo "skipped: TESSERA_SKIP_TRIXIE is set (the cooperative-matrix kernels are not validated or run)"
    exit 77
  fi
fi

need_env() {
  bash "$ENV" ensure || {
    echo "FAILED: cannot create the Debian 13 (trixie) folder $(bash "$ENV" path):"
    echo "  it needs root, debootstrap and Debian's package mirror (see the messages above)."
    echo "  Without it no cooperative-matrix kernel is validated (spirv-val) or run (lavapipe)."
    echo "  Locally, TESSERA_SKIP_TRIXIE=1 skips these tests; CI never does."
    exit 1
  }
}

case "${1:-}" in
  env)
    need_env
    ;;
  spirv-val)
    [ $# -eq 4 ] || { echo "usage: $0 spirv-val KCHECK CASES MIN_COOPMAT"; exit 2; }
    kcheck=$2 cases=$3 min=$4
    need_env
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
    "$kcheck" "$cases" --dump-spirv "$out/spv"
    # One chroot for all modules: validate each, count the cooperative-matrix ones.
    bash "$ENV" run --in "$out" -- /bin/sh -c '
      bad=0 n=0 coop=0 bf16=0
      for f in $(find "$1" -name "*.spv" | sort); do
        n=$((n + 1))
        if ! msg=$(spirv-val --target-env vulkan1.3 "$f" 2>&1); then
          # SPIRV-Tools 2025.1 predates SPV_KHR_bfloat16 (BFloat16TypeKHR = 5116).
          if echo "$msg" | grep -q "Invalid capability operand: 5116"; then bf16=$((bf16 + 1)); continue; fi
          bad=$((bad + 1)); echo "spirv-val FAILED: ${f#$1/}"; echo "$msg" | head -5
        fi
        spirv-dis "$f" 2>/dev/null | grep -q "OpCapability CooperativeMatrixKHR" && coop=$((coop + 1))
      done
      echo "spirv-val (SPIRV-Tools $(spirv-val --version | head -1 | sed "s/^SPIRV-Tools //")): $n modules, $bad invalid, $coop with CooperativeMatrixKHR"
      [ "$bf16" = 0 ] || echo "  $bf16 bf16 modules not validated: this SPIRV-Tools does not know SPV_KHR_bfloat16 (they run on the GPU)"
      [ "$bad" = 0 ] || exit 1
      [ "$coop" -ge "$2" ] || { echo "FAILED: expected at least $2 cooperative-matrix modules"; exit 1; }
    ' sh "$out/spv" "$min"
    ;;
  kcheck)
    [ $# -ge 3 ] || { echo "usage: $0 kcheck KCHECK CASES [ARGS]..."; exit 2; }
    kcheck=$2 cases=$3
    shift 3
    need_env
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    rc=0
    TESSERA_VALIDATION=1 bash "$ENV" run --in "$kcheck" --in "$cases" -- \
      "$(realpath "$kcheck")" "$(realpath "$cases")" "$@" >"$log" 2>&1 || rc=$?
    cat "$log"
    if grep -q "TESSERA_VALIDATION is set but" "$log"; then
      echo "FAILED: the Khronos validation layer is missing from the trixie folder"
      exit 1
    fi
    if grep -q "^vulkan error:" "$log"; then
      echo "FAILED: the Vulkan validation layer reported errors (above)"
      exit 1
    fi
    exit $rc
    ;;
  *)
    echo "usage: $0 env | spirv-val KCHECK CASES MIN_COOPMAT | kcheck KCHECK CASES [ARGS]..."
    exit 2
    ;;
esac
