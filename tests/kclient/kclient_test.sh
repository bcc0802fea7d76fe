#!/bin/bash
# tests/kclient/kclient_test.sh — the real Linux NFS client (qemu guest, ../shared/kclient)
# against a real localnfsd: the default workload, then workload-extra.sh, then the host
# checks what the guest left behind, then workload-posix.sh (". .." in listings, set-id
# bits cleared by another user's write, truncate and chown), then an orderly SIGTERM
# (exit 0, no sanitizer report). Exit 0 pass, 1 fail, 77 skip (meson's skip code) when ../shared/kclient or
# qemu is absent.
#
# Environment: LOCALNFSD (required, the server binary), LOCALNFS_SHARED (the shared/
# folder; default <repo>/../shared), KCLIENT_EXTRA (the extra guest script; default
# beside this file), KCLIENT_POSIX (the POSIX-semantics guest script; default beside
# this file), KC_NBIG / KC_HUGE_MIB (extra workload sizes, passed to the guest),
# KCLIENT_SKIP_DEFAULT=1 (only the extra run), KCLIENT_VERS (3, the default, or 4.1 / 4.2:
# the same workloads over NFSv4 (on by default in localnfsd), mounted by the
# export's path).
set -u

here=$(cd "$(dirname "$0")" && pwd)
LOCALNFSD=${LOCALNFSD:?LOCALNFSD must name the localnfsd binary}
EXTRA=${KCLIENT_EXTRA:-$here/workload-extra.sh}
POSIX=${KCLIENT_POSIX:-$here/workload-posix.sh}
. "$here/lib.sh"
fail() {
	echo "FAIL: $*"
	echo "--- localnfsd stderr (last 40 lines) ---"
	tail -n 40 "$work/server.err" 2>/dev/null
	exit 1
}
kc_find_harness

work=$(mktemp -d "${TMPDIR:-/tmp}/localnfs-kclient.XXXXXX")
chmod 755 "$work"
mkdir -p "$work/export" "$work/state" "$work/run"
pid=
cleanup() {
	kc_stop "$pid"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

t_start=$(date +%s)
vers=${KCLIENT_VERS:-3}
kc_start_localnfsd "$work/server.out" "$work/server.err" \
	--export "$work/export:rw,no_root_squash" --port 0 --mount-port 0 --bind 127.0.0.1 \
	--threads 4 --state-dir "$work/state" --runtime-dir "$work/run" ||
	fail "localnfsd exited before it was ready"
echo "localnfsd pid $pid: nfs=$nfs_port mount=$mount_port export=$work/export"

run_guest() {  # label, extra run.sh args...
	local label=$1 t0 rc
	shift
	t0=$(date +%s)
	if [ "$vers" = 3 ]; then
		"$RUN" "$nfs_port" "$mount_port" "$work/export" 3 "$@"
	else
		"$RUN" "$nfs_port" - "$work/export" "$vers" "$@"
	fi
	rc=$?
	echo "kclient $label: rc=$rc in $(($(date +%s) - t0)) s"
	kill -0 "$pid" 2>/dev/null || fail "localnfsd died during the $label run"
	[ $rc -eq 0 ] || fail "kernel client $label workload (run.sh rc=$rc)"
}

if [ "${KCLIENT_SKIP_DEFAULT:-0}" != 1 ]; then
	run_guest default
	left=$(ls -A "$work/export")
	[ -z "$left" ] || fail "default workload left files behind: $left"
fi

tag=t$$
guest_env="KC_TAG=$tag"
[ -n "${KC_NBIG:-}" ] && guest_env="$guest_env KC_NBIG=$KC_NBIG"
[ -n "${KC_HUGE_MIB:-}" ] && guest_env="$guest_env KC_HUGE_MIB=$KC_HUGE_MIB"
KCLIENT_GUEST_ENV="$guest_env" run_guest extra "$EXTRA"

# Host side: what the guest wrote is on the server's disk, byte for byte.
sums=$work/export/kclient-extra-$tag.sums
[ -s "$sums" ] || fail "guest left no checksum file ($sums)"
lines=$(wc -l <"$sums")
[ "$lines" -ge 5 ] || fail "checksum file too short ($lines lines)"
huge_mib=${KC_HUGE_MIB:-120}
size=$(stat -c %s "$work/export/kclient-extra-$tag.bin" 2>/dev/null)
[ "$size" = $((huge_mib * 1048576)) ] || fail "host sees the big file with size '$size'"
(cd "$work/export" && sha256sum --quiet -c "kclient-extra-$tag.sums") ||
	fail "host-side checksums differ from what the guest wrote"
owner=$(stat -c %u:%g "$work/export/kclient-extra-$tag.tree/zero")
[ "$owner" = 4321:8765 ] || fail "owner on the host is $owner, want 4321:8765"
mode=$(stat -c %a "$work/export/kclient-extra-$tag.tree/a/b/c/r3")
[ "$mode" = 4755 ] || fail "mode on the host is $mode, want 4755"
echo "host checks: $lines checksums verified, big file $size bytes"

run_guest posix "$POSIX"
left=$(ls -A "$work/export" | grep -v "^kclient-extra-$tag\.")
[ -z "$left" ] || fail "posix workload left files behind: $left"

# Orderly shutdown: exit 0 and no sanitizer report.
kc_stop_checked "$pid" "$work/server.err"
pid=
echo "PASS: kernel client v$vers (default + extra + posix) in $(($(date +%s) - t_start)) s"
exit 0
