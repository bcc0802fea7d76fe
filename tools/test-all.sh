#!/usr/bin/env bash
# test-all.sh — the whole test suite, as CI runs it: installs what is missing, builds
# plain and ASan+UBSan, and runs unit, integration and kernel-client tests in both.
# Prints "N passed, N failed, N skipped" as its last line; exit 0 only if none failed.
#
#   tools/test-all.sh                 both builds
#   LOCALNFS_BUILDS=plain tools/test-all.sh   only the plain build
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
top=$(pwd)

tools/install-deps.sh || exit 1
read -r -a builds <<<"${LOCALNFS_BUILDS:-plain asan}"

start=$(date +%s)
tools/build.sh "${builds[@]}" || { echo "0 passed, 1 failed"; exit 1; }
echo "test-all: built ${builds[*]} in $(( $(date +%s) - start )) s"

passed=0 failed=0 skipped=0
for kind in "${builds[@]}"; do
  dir=build; [ "$kind" = asan ] && dir=build-asan
  t0=$(date +%s)
  out=$(mktemp)
  # Unit and integration tests run in parallel (meson's default: one per core);
  # the kernel-client runs are serialised by their is_parallel: false.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    meson test -C "$dir" --print-errorlogs --num-processes 2 2>&1 | tee "$out"
  count() { awk -v k="$1" '$1 == k":" {print $2; exit}' "$out"; }
  ok=$(count Ok); fail=$(count Fail); xpass=$(awk '/^Unexpected Pass:/ {print $3; exit}' "$out")
  to=$(count Timeout); skip=$(count Skipped)
  passed=$((passed + ${ok:-0}))
  failed=$((failed + ${fail:-0} + ${xpass:-0} + ${to:-0}))
  skipped=$((skipped + ${skip:-0}))
  if [ -z "$ok" ]; then failed=$((failed + 1)); echo "test-all: meson test in $dir produced no summary"; fi
  echo "test-all: $kind suite took $(( $(date +%s) - t0 )) s"
  rm -f "$out"
done
# Fuzz targets (tools/fuzz.sh, docs/FUZZING.md): LOCALNFS_FUZZ_SECONDS per target,
# 0 skips; one passed/failed entry.
fuzz_seconds=${LOCALNFS_FUZZ_SECONDS:-5}
if [ "$fuzz_seconds" != 0 ]; then
  t0=$(date +%s)
  if tools/fuzz.sh --seconds "$fuzz_seconds"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  echo "test-all: fuzz step took $(( $(date +%s) - t0 )) s"
fi
echo "test-all: total $(( $(date +%s) - start )) s"
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$failed" -eq 0 ]
