#!/usr/bin/env bash
# test-all.sh — the whole test suite, as CI runs it: installs what is missing, builds
# plain and ASan+UBSan and runs unit and integration tests in both and the kernel-client
# tests in ASan+UBSan, then the ThreadSanitizer step and the fuzz step; the
# thread-safety check (tsa) and the container test run beside the suites.
# Prints "N passed, N failed, N skipped" as its last line; exit 0 only if none failed.
#
#   tools/test-all.sh                          plain, asan, tsan and tsa
#   LOCALNFS_BUILDS=plain tools/test-all.sh    only the plain build
#   LOCALNFS_BUILDS="plain asan tsa" ...       no TSan step
#   LOCALNFS_TSAN_TESTS="rpc_unit drc" ...     the TSan step runs these meson tests
#                                              (default below; "all": unit + integration)
#   LOCALNFS_FUZZ_SECONDS=0 ...                no fuzz step
#
# The TSan step (docs/TSAN.md) builds build-tsan/ with only the targets its tests need
# and runs the tests that exercise the threaded paths — the event loop, the worker pool,
# the caches (file, handle, export RCU, DRC, release queue) and the broker — a few of
# them against a real localnfsd under concurrent load. Any ThreadSanitizer report fails
# it: halt_on_error=1 (the process exits 66), and every report file is counted and
# printed, also those of server processes whose exit status no test checks.
#
# The tsa step (tools/build.sh tsa) is a compile check: clang's thread-safety analysis
# over every target, as an error; nothing in it is run. It is one passed/failed entry.
# It compiles in the background, at nice 19, while the suites run: the suites leave a
# core idle much of the time (kernel-client tests wait on qemu, integration tests on
# their servers), and at nice 19 it yields the CPU to them. Measured (2 cores,
# -O0, unity, no ccache): 251 s of CPU (user+sys), 341 s wall on a machine loaded
# by other builds (load 6), i.e. about 2.5 min alone; 76 s wall with ccache warm.
# Its time is printed when it is waited for, before the fuzz step.
#
# The container test (tools/container-test.sh: contrib/container/ with rootless Podman)
# runs beside the suites too, when podman is installed; LOCALNFS_CONTAINER_TEST=0 skips it.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
top=$(pwd)

tools/install-deps.sh || exit 1
read -r -a builds <<<"${LOCALNFS_BUILDS:-plain asan tsan tsa}"

# The TSan selection: unit tests of the threaded components, then the real server under
# concurrent clients (nfs3_client: concurrent writers, 8 MiB write/commit/read; drc:
# retransmits racing the original; ctl: status counters and LOCALIO clients read while
# serving; admin: reloads handed from the control thread to main, racing SIGHUPs;
# localio_integration: broker and local socket with a real server;
# localio_hostile: the broker and the server against a hostile LOCALIO client).
tsan_default="common_unit broker_unit rpc_unit export_cache_unit server_unit localio_unit
  nfs3_client drc ctl admin localio_integration localio_hostile"
read -r -d "" -a tsan_tests <<<"${LOCALNFS_TSAN_TESTS:-$tsan_default}" || true
[ "${tsan_tests[*]}" = all ] && tsan_tests=(--suite unit --suite integration)

start=$(date +%s)
passed=0 failed=0 skipped=0
tally() {  # meson test output file → passed/failed/skipped
  local out=$1 ok fail xpass to skip
  count() { awk -v k="$1" '$1 == k":" {print $2; exit}' "$out"; }
  ok=$(count Ok); fail=$(count Fail); xpass=$(awk '/^Unexpected Pass:/ {print $3; exit}' "$out")
  to=$(count Timeout); skip=$(count Skipped)
  passed=$((passed + ${ok:-0}))
  failed=$((failed + ${fail:-0} + ${xpass:-0} + ${to:-0}))
  skipped=$((skipped + ${skip:-0}))
  if [ -z "$ok" ]; then failed=$((failed + 1)); echo "test-all: meson test produced no summary"; fi
}

# The container test (tools/container-test.sh, contrib/container/): rootless Podman
# builds the image and runs the compose setup, in the background from the start, at
# normal priority: its debootstrap and apt steps wait on the network while the builds
# below compile, and apart from its image build it waits on podman. Measured
# (2 cores shared with other builds, load 12): cold (no base image, layers or caches:
# debootstrap, apt, a release unity build of the three programs) 605 s wall, 319 s
# CPU (user+sys); source changed, caches warm (ccache, apt layers) 29 s wall, 19 s
# CPU; tree unchanged 18 s wall, 8 s CPU. One passed/failed/skipped entry;
# LOCALNFS_CONTAINER_TEST=0 skips it. Its output is printed when it is waited for,
# before the fuzz step.
# Interrupted or ended early, test-all stops what it started in the background: the
# tsa build (its own process group, ninja and the compilers with it) and the container
# test (SIGTERM to the script: its trap takes the compose setup down).
ct_pid= tsa_pid=
stop_background() {
  [ -z "$tsa_pid" ] || kill -TERM -- "-$tsa_pid" 2>/dev/null
  if [ -n "$ct_pid" ]; then kill -TERM "$ct_pid" 2>/dev/null; wait "$ct_pid" 2>/dev/null; fi
}
trap stop_background EXIT
trap 'exit 130' INT TERM
if [ "${LOCALNFS_CONTAINER_TEST:-1}" = 0 ]; then
  echo "test-all: container test SKIPPED (LOCALNFS_CONTAINER_TEST=0)"
  skipped=$((skipped + 1))
elif ! command -v podman >/dev/null; then
  echo "test-all: container test SKIPPED: podman is not installed (tools/install-deps.sh installs it)"
  skipped=$((skipped + 1))
else
  ct_log=$(mktemp)
  ct_t0=$(date +%s)
  tools/container-test.sh >"$ct_log" 2>&1 &
  ct_pid=$!
fi

export LOCALNFS_TSAN_TESTS="${tsan_tests[*]}"  # tools/build.sh tsan builds only what they need
[ "${tsan_tests[*]}" = "--suite unit --suite integration" ] && LOCALNFS_TSAN_TESTS=all
for kind in "${builds[@]}"; do
  [ "$kind" = tsa ] && continue  # in the background, below
  t0=$(date +%s)
  tools/build.sh "$kind" || { echo "0 passed, 1 failed"; exit 1; }
  echo "test-all: build $kind took $(( $(date +%s) - t0 )) s"
done
built=()  # what was built above: every kind but tsa (pattern removal would cut "tsan" too)
for kind in "${builds[@]}"; do [ "$kind" = tsa ] || built+=("$kind"); done
echo "test-all: built ${built[*]} in $(( $(date +%s) - start )) s"


if [[ " ${builds[*]} " = *" tsa "* ]]; then
  tsa_log=$(mktemp)
  tsa_t0=$(date +%s)
  # Its own session (so stop_background can end its whole process group) is its own
  # scheduler autogroup, where nice alone would not yield to the suites: the
  # autogroup gets nice 19 too.
  setsid -w sh -c 'echo 19 >/proc/self/autogroup 2>/dev/null; exec nice -n 19 tools/build.sh tsa' \
    >"$tsa_log" 2>&1 &
  tsa_pid=$!
fi

for kind in "${builds[@]}"; do
  [ "$kind" = tsa ] && continue
  dir=build; [ "$kind" = asan ] && dir=build-asan
  t0=$(date +%s)
  out=$(mktemp)
  if [ "$kind" = tsan ]; then
    dir=build-tsan
    # gcc 12's TSan cannot map its shadow with more than 28 bits of mmap randomisation
    # ("FATAL: ThreadSanitizer: unexpected memory mapping", kernels with
    # vm.mmap_rnd_bits=32): then run without address randomisation.
    wrap=()
    probe=$dir/common/common_unit_test
    [ -x "$probe" ] || probe=$(find "$dir" -maxdepth 2 -name '*_test' -type f -perm -u+x | head -1)
    if [ -n "$probe" ] && ! "$probe" --gtest_list_tests >/dev/null 2>&1; then
      wrap=(setarch "$(uname -m)" -R)
      echo "test-all: TSan needs setarch -R here (vm.mmap_rnd_bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null))"
    fi
    # Every executable of this build must load the absl::Mutex interposer (tools/tsan;
    # meson.build links with --no-as-needed for it): without it Abseil's real Mutex binds
    # and TSan reports the accesses it guards as races. (grep without -q: under pipefail
    # an early exit would fail readelf with SIGPIPE on a long dynamic section.)
    without=()
    while IFS= read -r exe; do
      readelf -d "$exe" 2>/dev/null | grep 'liblocalnfs_tsan\.so' >/dev/null || without+=("$exe")
    done < <(find "$dir" -type f -perm -u+x ! -name '*.so*' ! -path '*.p/*' ! -path '*/meson-private/*' \
               -exec sh -c 'head -c 4 "$1" | grep -q ELF' _ {} \; -print)
    if [ "${#without[@]}" -gt 0 ]; then
      failed=$((failed + 1))
      echo "test-all: tsan executables without the absl::Mutex interposer: ${without[*]}"
    fi
    reports=$(mktemp -d)
    chmod 1777 "$reports"  # servers that drop privileges write their reports here too
    # Defaults compiled into every tsan binary: halt_on_error=1 (common/tsan_defaults.cc).
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 log_path=$reports/tsan" \
      "${wrap[@]}" meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 \
      "${tsan_tests[@]}" 2>&1 | tee "$out"
    tally "$out"
    n=$(find "$reports" -name 'tsan.*' -type f | wc -l)
    if [ "$n" -gt 0 ]; then
      failed=$((failed + 1))
      echo "test-all: ThreadSanitizer wrote $n report file(s):"
      for f in "$reports"/tsan.*; do echo "--- $f"; head -c 20000 "$f"; done
    fi
    rm -rf "$reports"
  else
    # Unit and integration tests run in parallel (meson's default: one per core);
    # the kernel-client runs are serialised by their is_parallel: false. They run in
    # one build only: ASan+UBSan when it is built (the server under the real kernel
    # client, with every memory error and UB report fatal), else plain — each qemu run
    # is minutes of a core under TCG.
    select=()
    [ "$kind" = plain ] && [[ " ${builds[*]} " = *" asan "* ]] && select=(--no-suite kclient)
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      meson test -C "$dir" --print-errorlogs --num-processes 2 "${select[@]}" 2>&1 | tee "$out"
    tally "$out"
  fi
  echo "test-all: $kind suite took $(( $(date +%s) - t0 )) s"
  rm -f "$out"
done
if [ -n "$tsa_pid" ]; then
  if wait "$tsa_pid"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "test-all: tsa (clang -Wthread-safety) failed:"; cat "$tsa_log"
  fi
  tsa_pid=
  echo "test-all: tsa step took $(( $(date +%s) - tsa_t0 )) s (beside the suites, at nice 19)"
  rm -f "$tsa_log"
fi
if [ -n "$ct_pid" ]; then
  ct_rc=0
  wait "$ct_pid" || ct_rc=$?
  ct_pid=
  cat "$ct_log"
  case $ct_rc in
    0) passed=$((passed + 1)) ;;
    77) skipped=$((skipped + 1)); echo "test-all: container test SKIPPED (see above)" ;;
    *) failed=$((failed + 1)); echo "test-all: container test (tools/container-test.sh) FAILED" ;;
  esac
  echo "test-all: container test took $(( $(date +%s) - ct_t0 )) s (beside the suites)"
  rm -f "$ct_log"
fi
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
