#!/bin/bash
# tests/kclient/kclient_idle_test.sh — the real Linux NFS client (qemu guest,
# ../shared/kclient) over NFSv4.2 and NFSv3 against a localnfsd that closes idle
# connections after 2 s (--idle-timeout) and grants 10 s leases: the guest writes, holds
# the file open, stays silent past the idle timeout and then past a lease, drops its
# caches, and reads, appends and changes the namespace after each pause
# (workload-idle.sh) — the client reconnects (NFSv4.1: the same session on a new
# connection) and nothing is lost. The server must have closed idle connections
# (localnfs-ctl status), or the test proved nothing. Then an orderly SIGTERM (exit 0, no
# sanitizer report). Exit 0 pass, 1 fail, 77 skip when ../shared/kclient or qemu is
# absent.
#
# Environment: LOCALNFSD (required), LOCALNFS_CTL (default beside it), LOCALNFS_SHARED,
# KCLIENT_IDLE (the guest script; default beside this file).
set -u

here=$(cd "$(dirname "$0")" && pwd)
LOCALNFSD=${LOCALNFSD:?LOCALNFSD must name the localnfsd binary}
CTL=${LOCALNFS_CTL:-$(dirname "$LOCALNFSD")/../tools/localnfs-ctl}
WORKLOAD=${KCLIENT_IDLE:-$here/workload-idle.sh}
. "$here/lib.sh"
kc_find_harness

kc_begin_work
mkdir -p "$work/export" "$work/state" "$work/run"

closed_idle() {
	"$CTL" --runtime-dir "$work/run" status |
		sed -n 's/.* \([0-9][0-9]*\) closed idle (--idle-timeout).*/\1/p'
}

t_start=$(date +%s)
kc_start_localnfsd "$work/server.out" "$work/server.err" \
	--export "$work/export:rw,no_root_squash" --idle-timeout 2 --lease-time 10 --grace 0 \
	--port 0 --mount-port 0 --bind 127.0.0.1 \
	--threads 4 --state-dir "$work/state" --runtime-dir "$work/run" ||
	fail "localnfsd exited before it was ready"
echo "localnfsd pid $pid: nfs=$nfs_port mount=$mount_port"

for vers in 4.2 3; do
	before=$(closed_idle)
	[ -n "$before" ] || fail "localnfs-ctl status shows no idle-close count"
	t0=$(date +%s)
	KCLIENT_GUEST_ENV="KC_IDLE_PAUSE=5 KC_LEASE_PAUSE=12" \
		"$RUN" "$nfs_port" "$mount_port" "$work/export" "$vers" "$WORKLOAD"
	rc=$?
	after=$(closed_idle)
	echo "kclient v$vers: rc=$rc in $(($(date +%s) - t0)) s; connections closed idle: $before -> $after"
	kill -0 "$pid" 2>/dev/null || fail "localnfsd died during the v$vers run"
	[ $rc -eq 0 ] || fail "kernel client v$vers across idle closes and a lease (run.sh rc=$rc)"
	[ "$after" -gt "$before" ] || fail "v$vers: the server closed no idle connection: the pauses tested nothing"
done

kc_stop_checked "$pid" "$work/server.err"
pid=
echo "PASS: kernel client v4.2 and v3 across idle closes and a lease in $(($(date +%s) - t_start)) s"
exit 0
