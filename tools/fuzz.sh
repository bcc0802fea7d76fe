#!/usr/bin/env bash
# fuzz.sh [--seconds N] [TARGET...] — build the libFuzzer targets (tests/fuzz) in
# build-fuzz/ (clang, ASan+UBSan, -Dfuzz=true; only the fuzz targets and what they
# link) and run each for N seconds (default 10) over its seed corpus
# tests/fuzz/corpus/<target>/. Inputs the run finds are kept in a scratch copy, not
# in the tree. Fails on any crash, leak, UBSan report, timeout (> 10 s per input) or
# out-of-memory; the reproducer is left in build-fuzz/fuzz-artifacts/. Longer runs
# and the figures: docs/FUZZING.md.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=10
# A fixed seed by default: the CI step is a regression gate that replays the same
# mutations on every run (a slower machine runs a shorter prefix of them), not a
# lottery; LOCALNFS_FUZZ_SEED=0 lets libFuzzer pick one (exploratory runs).
seed=${LOCALNFS_FUZZ_SEED:-1}
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
    --seconds=*) seconds=${1#--seconds=}; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option '$1'" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(rpc_record_fuzz rpc_call_fuzz nfs_dispatch_fuzz
                                     nfs4_compound_fuzz fhandle_fuzz localio_proto_fuzz
                                     broker_segment_fuzz exports_fuzz)
dir=build-fuzz
t0=$(date +%s)
if [ ! -f "$dir/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$dir" -Dfuzz=true -Dunity=on -Dunity_size=8 -Db_sanitize=address,undefined \
    -Db_lundef=false >/dev/null || { echo "fuzz.sh: meson setup failed" >&2; exit 1; }
fi
paths=("${targets[@]/#/tests/fuzz/}")
log=$(mktemp)
if ! ninja -C "$dir" -j"$(nproc)" "${paths[@]}" >"$log" 2>&1; then
  cat "$log"; rm -f "$log"; echo "fuzz.sh: build failed" >&2; exit 1
fi
echo "fuzz.sh: built ${#targets[@]} targets in $(( $(date +%s) - t0 )) s"

scratch=$(mktemp -d)
artifacts=$dir/fuzz-artifacts
mkdir -p "$artifacts"
trap 'rm -rf "$scratch" "$log"' EXIT
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  seeds=tests/fuzz/corpus/$t
  [ -d "$seeds" ] || seeds=
  t1=$(date +%s)
  # -rss_limit_mb bounds the process; -malloc_limit_mb turns one oversized allocation
  # (a length taken from the input) into a reported failure.
  if "$dir/tests/fuzz/$t" -max_total_time="$seconds" -seed="$seed" -timeout=10 -rss_limit_mb=2048 \
       -malloc_limit_mb=256 -print_final_stats=1 -artifact_prefix="$artifacts/$t-" \
       "$scratch/$t" $seeds >"$log" 2>&1; then
    runs=$(awk '/stat::number_of_executed_units:/ {print $2}' "$log")
    echo "fuzz.sh: $t: ok, ${runs:-?} executions in $(( $(date +%s) - t1 )) s"
  else
    failed=$((failed + 1))
    grep -v '^#' "$log" | tail -40
    echo "fuzz.sh: $t: FAILED (reproducer in $artifacts/)"
  fi
done
echo "fuzz.sh: ${#targets[@]} targets, $failed failed, $(( $(date +%s) - t0 )) s in all"
[ "$failed" -eq 0 ]
