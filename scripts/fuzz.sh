#!/usr/bin/env bash
# The libFuzzer harnesses of test/fuzz (one per reader of untrusted input),
# built with clang-19, ASan and UBSan into build-fuzz/ (a configuration of
# its own: the main build is untouched).
#
#   scripts/fuzz.sh build                 configure + build every harness
#   scripts/fuzz.sh smoke [SECONDS]       build, then run each harness on its seeds
#                                         and SECONDS (default 4) of mutations: the ctest
#   scripts/fuzz.sh run NAME RUNS [JOBS]  a long run of fuzz_NAME: RUNS executions into
#                                         build-fuzz/corpus/NAME (seeds kept apart), log in
#                                         build-fuzz/logs/NAME.log; findings in build-fuzz/findings/
#   scripts/fuzz.sh list                  the harness names
#
# A finding (crash, sanitizer report, leak, timeout, out-of-memory, or a harness
# assertion) makes the command fail and leaves the input under build-fuzz/findings/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=${FUZZ_BUILD:-$ROOT/build-fuzz}
CXX=${FUZZ_CXX:-clang++-19}
CC=${FUZZ_CC:-clang-19}

harnesses() {
  for d in test/fuzz/*/; do
    n=$(basename "$d")
    [ -f "$d/fuzz_$n.cpp" ] && echo "$n"
  done
}

build() {
  command -v "$CXX" >/dev/null || { echo "fuzz.sh: $CXX not found (scripts/setup.sh installs clang-19 and libclang-rt-19-dev)" >&2; exit 1; }
  if [ ! -f "$B/build.ninja" ]; then
    CMAKE_CXX_COMPILER_LAUNCHER=$(command -v ccache || true) CMAKE_C_COMPILER_LAUNCHER=$(command -v ccache || true) \
    cmake -G Ninja -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$CXX" \
      -DCMAKE_C_COMPILER="$CC" -DTESSERA_FUZZ=ON -DTESSERA_BUILD_TESTS=OFF >/dev/null
  fi
  cmake --build "$B" --target fuzzers -j "${JOBS:-$(nproc)}"
}

# run_one NAME  ARGS...: the harness on its seeds plus a working corpus.
run_one() {
  local n=$1; shift
  local corpus=$B/corpus/$n findings=$B/findings/$n
  mkdir -p "$corpus" "$findings"
  local dict=()
  [ -f "test/fuzz/$n/$n.dict" ] && dict=(-dict="test/fuzz/$n/$n.dict")
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$B/bin/fuzz_$n" "${dict[@]}" -artifact_prefix="$findings/" -timeout=10 -rss_limit_mb=2048 \
      -max_len=262144 -print_final_stats=1 "$@" "$corpus" "test/fuzz/$n/seeds"
}

case "${1:-smoke}" in
  list) harnesses ;;
  build) build ;;
  smoke)
    secs=${2:-4}
    build >/dev/null
    failed=0
    for n in $(harnesses); do
      log=$B/logs/smoke-$n.log
      mkdir -p "$B/logs"
      if run_one "$n" -max_total_time="$secs" >"$log" 2>&1; then
        echo "fuzz_$n: $(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?') executions, no finding"
      else
        echo "fuzz_$n: FINDING (log: $log)"; tail -40 "$log"; failed=1
      fi
    done
    exit $failed ;;
  run)
    n=$2 runs=$3 jobs=${4:-1}
    build >/dev/null
    mkdir -p "$B/logs"
    run_one "$n" -runs="$runs" >"$B/logs/$n.log" 2>&1 && echo "fuzz_$n: $runs executions, no finding" \
      || { echo "fuzz_$n: FINDING (log: $B/logs/$n.log)"; exit 1; } ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
