#!/usr/bin/env bash
# build.sh [plain|asan|tsan|tsa]... — configure (once) and build localnfs.
#   plain → build/       (-O2, asserts on)
#   asan  → build-asan/  (ASan + UBSan, -Db_sanitize=address,undefined, -O1)
#   tsan  → build-tsan/  (ThreadSanitizer, -Db_sanitize=thread, -O1; docs/TSAN.md)
#   tsa   → build-tsa/   (clang's thread-safety analysis, -Dthread_safety=true: every
#                         ABSL_GUARDED_BY / ABSL_EXCLUSIVE_LOCKS_REQUIRED is checked, as
#                         an error, in every target, tests included, and in the sources
#                         of tools/tsan and tests/fuzz; -O0, no debug info: a compile
#                         check, nothing in it is run)
# All are unity builds (meson -Dunity=on: several sources per compiler run), which
# saves about a third of the compile time on a 2-core CI machine. All have line-table
# debug info only (-g1 instead of meson's -g): sanitizer reports and gdb backtraces keep
# every frame with file:line, inlined ones included, and compiles take less CPU (ASan
# −31%, plain −17%; docs/TSAN.md). For full debug info:
# meson configure build -Ddebug=true -Dcpp_args= -Dc_args=
#
#   LOCALNFS_TSAN_TESTS="name ..."   tsan only: build just what these meson tests need
#                                    (their executables and `depends:`), as the TSan
#                                    step of test-all.sh does; unset or "all": everything
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ $# -gt 0 ] || set -- plain
# What debugoptimized was (-O2, asserts kept: b_ndebug only acts on buildtype=release),
# with -g1 for -g.
common=(-Dunity=on -Dunity_size=8 -Ddebug=false -Doptimization=2 -Dc_args=-g1 -Dcpp_args=-g1)
for kind in "$@"; do
  cc=()  # the compiler, when not the default (gcc)
  case $kind in
    plain) dir=build; opts=("${common[@]}") ;;
    # -O1, as ASan's documentation advises: at -O2 it was the suite's largest build
    # (about twice the plain one, cold), and -O1 reports keep more frames.
    asan) dir=build-asan; opts=("${common[@]}" -Doptimization=1 -Db_sanitize=address,undefined -Db_lundef=false) ;;
    # -O1: 17% less compile CPU than -O2, same test run time (docs/TSAN.md).
    tsan) dir=build-tsan; opts=("${common[@]}" -Doptimization=1 -Db_sanitize=thread -Db_lundef=false) ;;
    # gcc has no thread-safety analysis: the annotations are only checked by clang.
    # Meson puts ccache in front of a compiler it finds itself, not of one named in
    # CC/CXX: name it here.
    tsa) dir=build-tsa; launcher=$(command -v ccache || true)
         cc=(CC="${launcher:+$launcher }clang" CXX="${launcher:+$launcher }clang++")
         opts=(-Dunity=on -Dunity_size=8 -Ddebug=false -Doptimization=0 -Dthread_safety=true) ;;
    *) echo "build.sh: unknown build kind '$kind' (plain|asan|tsan|tsa)" >&2; exit 2 ;;
  esac
  if [ ! -f "$dir/build.ninja" ]; then
    env "${cc[@]}" meson setup "$dir" "${opts[@]}" >/dev/null
  fi
  targets=()
  tests=${LOCALNFS_TSAN_TESTS:-all}
  if [ "$kind" = tsan ] && [ "$tests" != all ]; then
    # Test name → its executable and the targets it `depends:` on, as ninja targets.
    read -r -a names <<<"$tests"
    mapfile -t targets < <(meson introspect "$dir" --tests --targets | python3 -c '
import json, os, sys
info = json.load(sys.stdin)
build = os.path.realpath(sys.argv[1])
files = {t["id"]: t["filename"] for t in info["targets"]}
tests = {t["name"]: t for t in info["tests"]}
out = set()
for name in sys.argv[2:]:
    if name not in tests:
        sys.exit("build.sh: no meson test named " + name)
    t = tests[name]
    paths = [t["cmd"][0]] + [f for d in t["depends"] for f in files.get(d, [])]
    out.update(os.path.relpath(p, build) for p in paths if p.startswith(build + "/"))
print("\n".join(sorted(out)))
' "$dir" "${names[@]}")
    [ ${#targets[@]} -gt 0 ] || { echo "build.sh: no targets for tests: $tests" >&2; exit 2; }
  fi
  ninja -C "$dir" "${targets[@]}" >/dev/null || ninja -C "$dir" "${targets[@]}"
done
