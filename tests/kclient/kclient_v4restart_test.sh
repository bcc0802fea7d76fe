#!/bin/bash
# tests/kclient/kclient_v4restart_test.sh — localnfsd restarted (SIGTERM, exit 0, the same
# port and state dir) under the real Linux NFSv4.1 client (qemu guest, ../shared/kclient)
# while a guest process holds an open file with unflushed writes and a write lock
# (restartprobe.c; guest side workload-v4restart.sh). Three rounds in one guest boot:
#   grace    the restarted server has its default grace period: the client reclaims its
#            open and lock (CLAIM_PREVIOUS, LOCK reclaim), sends RECLAIM_COMPLETE and the
#            grace period ends early (localnfsd's log says so); a host process's
#            F_OFD_SETLK on the locked range is refused after the restart; the guest's
#            writes through the same fd continue and every byte is on disk.
#   lost     restarted with --grace 0: the client's reclaims get NFS4ERR_NO_GRACE; it
#            reopens the file, and with nfs.recover_lost_locks=N (Linux's default) it
#            gives the lock up ("NFS: ...: lost 1 locks") and fails the process's I/O under
#            it with EIO (the fsync after the restart must fail so). The range is free on
#            the host; the bytes fsync'd before the restart are on disk.
#   relock   restarted with --grace 0, recover_lost_locks=Y in the guest: the client
#            reopens and takes the lock again as a new one (a host OFD lock is refused),
#            its writes through the same fd continue and every byte is on disk.
# Then an orderly SIGTERM (exit 0, no sanitizer report in any incarnation's stderr).
# Exit 0 pass, 1 fail, 77 skip when ../shared/kclient, qemu or a static C toolchain is
# absent.
#
# Environment: LOCALNFSD (required), LOCALNFS_SHARED (default <repo>/../shared),
# KCLIENT_V4RESTART (the guest script; default beside this file), KCLIENT_VERS (4.1, the
# default, or 4.2), KCLIENT_TIMEOUT (guest run, default 240 s), CC (default cc).
# KCLIENT_V4RESTART_FAULT, only to prove the test can fail (expect FAIL):
#   no-reclaim   the grace round's restart gets --grace 0 as well (nothing to reclaim)
#   lose-write   the host zeroes a byte the guest wrote after the grace round's restart
set -u

here=$(cd "$(dirname "$0")" && pwd)
LOCALNFSD=${LOCALNFSD:?LOCALNFSD must name the localnfsd binary}
WORKLOAD=${KCLIENT_V4RESTART:-$here/workload-v4restart.sh}
vers=${KCLIENT_VERS:-4.1}
FAULT=${KCLIENT_V4RESTART_FAULT:-}
case $FAULT in '' | no-reclaim | lose-write) ;; *) echo "FAIL: bad KCLIENT_V4RESTART_FAULT '$FAULT'"; exit 1 ;; esac
. "$here/lib.sh"
console=
work=
fail() {
	echo "FAIL: $*"
	for f in "$work"/server*.err; do
		[ -s "$f" ] || continue
		echo "--- localnfsd $(basename "$f") (last 30 lines) ---"
		tail -n 30 "$f"
	done
	if [ -n "$console" ] && [ -r "$console" ]; then
		echo "--- guest console (last 30 lines) ---"
		tr -d '\r' <"$console" | tail -n 30
	fi
	exit 1
}
kc_find_harness

work=$(mktemp -d "${TMPDIR:-/tmp}/localnfs-kclient-v4restart.XXXXXX")
chmod 755 "$work"
mkdir -p "$work/export" "$work/state" "$work/run"
pid=  # the serving localnfsd
gpid= # run.sh
cleanup() {
	kc_stop "$gpid" # run.sh's trap stops its qemu
	kc_stop "$pid"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

probe=$work/export/restartprobe
if ! ${CC:-cc} -static -O2 -Wall -o "$probe" "$here/restartprobe.c" 2>"$work/cc.err"; then
	cat "$work/cc.err"
	echo "SKIP: no static C toolchain (${CC:-cc} -static)"
	exit 77
fi
# The ctl files exist before the guest looks (a negative dentry could hide a new file
# for the attribute cache's time); the host rewrites them.
for round in grace lost relock; do printf 'wait\n' >"$work/export/$round.ctl"; done
chmod 666 "$work/export"/*.ctl

now() { echo "$EPOCHREALTIME"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# start_server N ARGS...: localnfsd incarnation N on $nfs_port (0 = any); sets pid.
start_server() {
	local n=$1
	shift
	kc_start_localnfsd "$work/server$n.out" "$work/server$n.err" \
		--export "$work/export:rw,no_root_squash" --port "$nfs_port" \
		--mount-port 0 --bind 127.0.0.1 --threads 4 --state-dir "$work/state" \
		--runtime-dir "$work/run" "$@"
}

# wait_file PATH WHAT: polls (0.1 s) until PATH is non-empty; 120 s, or the guest ends.
wait_file() {
	for _ in $(seq 1200); do
		[ -s "$1" ] && return 0
		kill -0 "$gpid" 2>/dev/null || { sed -n '/^KCLIENT-RESULT/p; /^  kernel:/p' "$work/run.err"; fail "guest ended before $2"; }
		sleep 0.1
	done
	fail "no $2 within 120 s"
}

t_start=$(now)
nfs_port=0
start_server 1 || fail "localnfsd exited before it was ready"
echo "localnfsd pid $pid: nfs=$nfs_port export=$work/export (NFSv$vers)"

KCLIENT_TIMEOUT=${KCLIENT_TIMEOUT:-240} \
	"$RUN" "$nfs_port" - "$work/export" "$vers" "$WORKLOAD" 2>"$work/run.err" &
gpid=$!
for _ in $(seq 600); do
	rundir=$(sed -n 's/.*, run dir \(\/.*\)$/\1/p' "$work/run.err" 2>/dev/null | head -1)
	[ -n "$rundir" ] && break
	kill -0 "$gpid" 2>/dev/null || break
	sleep 0.1
done
[ -n "$rundir" ] || { cat "$work/run.err"; fail "run.sh did not start a guest"; }
console=$rundir/serial.log

n=1
for round in grace lost relock; do
	f=$work/export/$round
	wait_file "$f.locked" "the $round round's lock"
	[ "$("$probe" ofd "$f")" = refused ] || fail "$round: the guest's lock does not refuse a host OFD lock before the restart"
	t_term=$(now)
	kc_stop_checked "$pid" "$work/server$n.err"
	pid=
	extra=()
	[ "$round" = grace ] && [ "$FAULT" != no-reclaim ] || extra=(--grace 0)
	n=$((n + 1))
	started=
	for try in $(seq 50); do
		if start_server "$n" "${extra[@]}"; then started=$try; break; fi
		sleep 0.1
	done
	[ -n "$started" ] || fail "localnfsd could not be restarted on nfs=$nfs_port"
	t_up=$(now)
	echo "$round: localnfsd stopped (exit 0) and restarted ${extra[*]} as pid $pid on port $nfs_port in $(secs "$t_term" "$t_up") s"
	printf 'restarted\n' >"$f.ctl"
	wait_file "$f.written" "the $round round's writes after the restart"
	t_written=$(now)
	if [ "$round" = grace ] && [ "$FAULT" = lose-write ]; then
		echo "FAULT lose-write: zeroing byte 1200000 of $round"
		printf '\0' | dd of="$f" bs=1 seek=1200000 conv=notrunc status=none
	fi
	lock=$("$probe" ofd "$f") || fail "$round: host OFD probe failed"
	if [ "$round" = grace ]; then
		[ "$lock" = refused ] || fail "grace: the guest's lock was not reclaimed (a host OFD lock was granted)"
		ended=$(grep -m1 'nfs4: grace period ended after .*ended early: every client of the previous instance sent RECLAIM_COMPLETE (1) or is gone (0)' "$work/server$n.err") ||
			fail "grace: localnfsd did not end its grace period early"
		echo "grace: writes fsync'd $(secs "$t_up" "$t_written") s after the restart; lock reclaimed (host OFD lock refused); ${ended#*nfs4: }"
	else
		grep -q 'nfs4: --grace 0: no grace period' "$work/server$n.err" ||
			fail "$round: localnfsd did not log its --grace 0"
		if [ "$round" = lost ]; then
			[ "$(cat "$f.written")" = eio ] || fail "lost: the guest did not see EIO"
			[ "$lock" = granted ] || fail "lost: the client gave the lock up, yet the range is locked"
			echo "lost: the client reopened, gave the lock up and failed the fsync with EIO $(secs "$t_up" "$t_written") s after the restart; the range is free on the host"
		else
			[ "$lock" = refused ] || fail "relock: the client did not take the lock again (a host OFD lock was granted)"
			echo "relock: writes fsync'd $(secs "$t_up" "$t_written") s after the restart; the lock was taken again (host OFD lock refused)"
		fi
	fi
	printf 'unlock\n' >"$f.ctl"
	wait_file "$f.done" "the $round round's close"
	[ "$("$probe" ofd "$f")" = granted ] || fail "$round: the range is still locked after the guest unlocked and closed"
	"$probe" gen "$round" >"$work/$round.want" || fail "restartprobe gen"
	if [ "$round" = lost ]; then
		# PART1 (1 MiB) was fsync'd before the restart; later bytes went down with the lock.
		cmp -n 1048576 "$work/$round.want" "$f" || fail "lost: the bytes fsync'd before the restart differ"
		echo "lost: the 1048576 bytes fsync'd before the restart are on disk ($(stat -c %s "$f") bytes in the file)"
	else
		cmp "$work/$round.want" "$f" || fail "$round: the file on disk differs from what the guest wrote"
		echo "$round: all $(stat -c %s "$f") bytes on disk as written"
	fi
done

wait "$gpid"
grc=$?
gpid=
sed -n '/^KCLIENT-RESULT/p; /^  kernel:/p; /^kclient: /p' "$work/run.err"
[ $grc -eq 0 ] || fail "guest workload (run.sh rc=$grc)"
for round in grace relock; do
	want=$(sha256sum <"$work/$round.want" | cut -d' ' -f1)
	tr -d '\r' <"$console" | grep -aq "^KCLIENT-RESTART-SUM $round $want" ||
		fail "$round: the guest read back other bytes than the host has"
done
kc_stop_checked "$pid" "$work"/server*.err
pid=
echo "PASS: kernel client NFSv$vers across three localnfsd restarts (grace, --grace 0 lock lost, --grace 0 relocked) in $(secs "$t_start" "$(now)") s"
exit 0
