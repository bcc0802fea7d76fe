#!/usr/bin/env bash
# tests/support/sanitizer_test.sh — the shell tests' sanitizer scan (sanitizer.sh, used by
# tests/kclient/lib.sh, man_test.sh and install_test.sh) finds the report of every kind
# that fake_localnfsd prints (ASan, LSan, UBSan, TSan) in a server's stderr file, also
# among other files and after a kill -9, and finds nothing in a clean one.
#
#   sanitizer_test.sh FAKE_LOCALNFSD
set -uo pipefail
fake=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/sanitizer.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/localnfs-sanitizer-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
status=0
check() {  # what, expected marker ("" = none), files...
	local what=$1 want=$2 got
	shift 2
	got=$(sanitizer_report "$@")
	local rc=$?
	if [ -z "$want" ]; then
		[ $rc = 1 ] && [ -z "$got" ] && { echo "ok: $what: no report"; return; }
		echo "FAIL: $what: found '$got' in a clean file"
	else
		[ $rc = 0 ] && [[ $got == *"$want"* ]] && { echo "ok: $what: $got"; return; }
		echo "FAIL: $what: '$want' not found (rc $rc, got '$got')"
	fi
	status=1
}
declare -A marker=([asan]='ERROR: AddressSanitizer' [lsan]='ERROR: LeakSanitizer'
	[ubsan]='runtime error:' [tsan]='WARNING: ThreadSanitizer')
"$fake" --report none --when exit >"$tmp/clean.out" 2>"$tmp/clean.err"
for kind in asan lsan ubsan tsan; do
	# Ends by itself.
	"$fake" --report "$kind" --when exit >/dev/null 2>"$tmp/$kind.err"
	check "$kind, exited" "${marker[$kind]}" "$tmp/$kind.err"
	check "$kind, among other files" "${marker[$kind]}" \
		"$tmp/clean.err" "$tmp/missing" "$tmp/$kind.err"
	# Killed on purpose once it served and printed its report. The fake prints the ready
	# line first: wait for the report too, or a loaded machine kills it in between.
	"$fake" --report "$kind" --when serving >"$tmp/$kind.k.out" 2>"$tmp/$kind.k.err" &
	pid=$!
	for _ in $(seq 500); do
		grep -q ready "$tmp/$kind.k.out" 2>/dev/null &&
			grep -qF "${marker[$kind]}" "$tmp/$kind.k.err" 2>/dev/null && break
		sleep 0.01
	done
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null
	check "$kind, killed -9" "${marker[$kind]}" "$tmp/$kind.k.err"
done
check "clean server" "" "$tmp/clean.err" "$tmp/clean.out"
check "no file" "" "$tmp/missing"
exit $status
