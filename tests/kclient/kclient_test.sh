#!/bin/bash
# tests/kclient/kclient_test.sh — the real Linux NFS client (qemu guest, ../shared/kclient)
# against a real localnfsd: the default workload, then workload-extra.sh, then the host
# checks what the guest left behind, then an orderly SIGTERM (exit 0, no sanitizer
# report). Exit 0 pass, 1 fail, 77 skip (meson's skip code) when ../shared/kclient or
# qemu is absent.
#
# Environment: LOCALNFSD (required, the server binary), LOCALNFS_SHARED (the shared/
# folder; default <repo>/../shared), KCLIENT_EXTRA (the extra guest script; default
# beside this file), KC_NBIG / KC_HUGE_MIB (extra workload sizes, passed to the guest),
# KCLIENT_SKIP_DEFAULT=1 (only the extra run).
set -u

here=$(cd "$(dirname "$0")" && pwd)
LOCALNFSD=${LOCALNFSD:?LOCALNFSD must name the localnfsd binary}
if [ -z "${LOCALNFS_SHARED:-}" ]; then
	top=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || echo "$here/../..")
	LOCALNFS_SHARED=$top/../shared
fi
RUN=$LOCALNFS_SHARED/kclient/run.sh
EXTRA=${KCLIENT_EXTRA:-$here/workload-extra.sh}

if [ ! -x "$RUN" ]; then
	echo "SKIP: $LOCALNFS_SHARED/kclient/run.sh not found (no shared kernel-client harness here)"
	exit 77
fi
if ! command -v qemu-system-x86_64 >/dev/null; then
	echo "SKIP: qemu-system-x86_64 not installed (run $LOCALNFS_SHARED/kclient/install-deps.sh)"
	exit 77
fi
[ -x "$LOCALNFSD" ] || { echo "FAIL: $LOCALNFSD is not executable"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/localnfs-kclient.XXXXXX")
chmod 755 "$work"
mkdir -p "$work/export" "$work/state" "$work/run"
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
	echo "FAIL: $*"
	echo "--- localnfsd stderr (last 40 lines) ---"
	tail -n 40 "$work/server.err" 2>/dev/null
	exit 1
}

t_start=$(date +%s)
"$LOCALNFSD" --export "$work/export:rw,no_root_squash" --port 0 --mount-port 0 \
	--bind 127.0.0.1 --threads 4 --state-dir "$work/state" --runtime-dir "$work/run" \
	>"$work/server.out" 2>"$work/server.err" &
pid=$!

ready=
for _ in $(seq 300); do
	ready=$(grep -m1 '^localnfsd: ready nfs=[0-9]* mount=[0-9]*' "$work/server.out" 2>/dev/null)
	[ -n "$ready" ] && break
	kill -0 "$pid" 2>/dev/null || fail "localnfsd exited before it was ready"
	sleep 0.1
done
[ -n "$ready" ] || fail "no ready line from localnfsd within 30 s"
nfs_port=$(echo "$ready" | sed 's/.*nfs=\([0-9]*\).*/\1/')
mount_port=$(echo "$ready" | sed 's/.*mount=\([0-9]*\).*/\1/')
echo "localnfsd pid $pid: nfs=$nfs_port mount=$mount_port export=$work/export"

run_guest() {  # label, extra run.sh args...
	local label=$1 t0 rc
	shift
	t0=$(date +%s)
	"$RUN" "$nfs_port" "$mount_port" "$work/export" 3 "$@"
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

# Orderly shutdown: exit 0 and no sanitizer report.
kill -TERM "$pid"
rc=
for _ in $(seq 150); do
	if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; rc=$?; break; fi
	sleep 0.1
done
[ -n "$rc" ] || fail "localnfsd did not exit within 15 s of SIGTERM"
pid=
[ "$rc" = 0 ] || fail "localnfsd exited $rc on SIGTERM"
if grep -q -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' -e 'runtime error:' "$work/server.err"; then
	fail "sanitizer report in localnfsd's stderr"
fi
echo "PASS: kernel client v3 (default + extra) in $(($(date +%s) - t_start)) s"
exit 0
