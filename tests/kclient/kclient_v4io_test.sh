#!/bin/bash
# tests/kclient/kclient_v4io_test.sh — the real Linux NFS client (qemu guest,
# ../shared/kclient) against localnfsd over NFSv4.1 and 4.2: files
# opened, written (4 MiB, appends, overwrites, concurrent writers, a big file), read back
# after dropping caches, a tree copied with cp -a and compared with diff -r, O_TRUNC, and
# byte-range locks — two guest processes contend (F_SETLK refused, F_SETLKW granted once
# the holder unlocks; on one mount and, so that the server decides, on two) and a lock a
# host process holds (an OFD lock, lockprobe.c) refuses the guest: workload-v4io.sh. Then an orderly
# SIGTERM (exit 0, no sanitizer report). Exit 0 pass, 1 fail, 77 skip when
# ../shared/kclient, qemu or a static C toolchain is absent.
#
# Environment: LOCALNFSD (required), LOCALNFS_SHARED (default <repo>/../shared),
# KCLIENT_V4IO (the guest script; default beside this file), KC_BIG_MIB (the big file's
# size, written and read once, over v4.2; default 128), CC (default cc).
set -u

here=$(cd "$(dirname "$0")" && pwd)
LOCALNFSD=${LOCALNFSD:?LOCALNFSD must name the localnfsd binary}
WORKLOAD=${KCLIENT_V4IO:-$here/workload-v4io.sh}
. "$here/lib.sh"
kc_find_harness

kc_begin_work
mkdir -p "$work/srv/export" "$work/state" "$work/run"
holder=
cleanup() {
	exec 3>&-
	[ -n "$holder" ] && { kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null; }
	kc_stop "$pid"
	rm -rf "$work"
}

# The lock program, static so that the guest's busybox world runs it.
if ! ${CC:-cc} -static -O2 -Wall -o "$work/srv/export/lockprobe" "$here/lockprobe.c" \
	2>"$work/cc.err"; then
	cat "$work/cc.err"
	echo "SKIP: no static C toolchain (${CC:-cc} -static)"
	exit 77
fi
printf hello >"$work/srv/export/f1"
head -c 100 /dev/zero >"$work/srv/export/hostlocked"
chmod 666 "$work/srv/export/hostlocked"

# A host process holds an OFD write lock on hostlocked/[0, 100) until its stdin ends:
# fd 3, which no other process may inherit (3>&- below), or the holder never sees EOF.
mkfifo "$work/hold.in"
"$work/srv/export/lockprobe" hold "$work/srv/export/hostlocked" <"$work/hold.in" \
	>"$work/hold.out" 2>&1 &
holder=$!
exec 3>"$work/hold.in"
for _ in $(seq 200); do
	grep -q locked "$work/hold.out" 2>/dev/null && break
	kill -0 "$holder" 2>/dev/null || fail "the host lock holder exited: $(cat "$work/hold.out")"
	sleep 0.05
done
grep -q locked "$work/hold.out" || fail "the host lock holder did not lock within 10 s"

t_start=$(date +%s)
kc_start_localnfsd "$work/server.out" "$work/server.err" \
	--export "$work/srv/export:rw,no_root_squash" \
	--port 0 --mount-port 0 --bind 127.0.0.1 \
	--threads 4 --state-dir "$work/state" --runtime-dir "$work/run" 3>&- ||
	fail "localnfsd exited before it was ready"
echo "localnfsd pid $pid: nfs=$nfs_port export=$work/srv/export"

for vers in 4.1 4.2; do
	t0=$(date +%s)
	# The big file once (v4.2), to stay within the CI budget (TCG guest).
	big=0
	[ "$vers" = 4.2 ] && big=${KC_BIG_MIB:-128}
	KCLIENT_GUEST_ENV="KC_BIG_MIB=$big" \
		"$RUN" "$nfs_port" - "$work/srv/export" "$vers" "$WORKLOAD" 3>&-
	rc=$?
	echo "kclient v$vers: rc=$rc in $(($(date +%s) - t0)) s"
	kill -0 "$pid" 2>/dev/null || fail "localnfsd died during the v$vers run"
	[ $rc -eq 0 ] || fail "kernel client v$vers I/O and lock workload (run.sh rc=$rc)"
	# What the guest wrote is on the host, byte for byte.
	[ "$(cat "$work/srv/export/w3-$vers" | tr -d 3 | wc -c)" = 0 ] ||
		fail "w3-$vers holds other bytes than '3'"
	[ "$(stat -c %s "$work/srv/export/w3-$vers")" = 4194304 ] || fail "w3-$vers size"
done

exec 3>&-
wait "$holder" || fail "the host lock holder failed"
holder=
kc_stop_checked "$pid" "$work/server.err"
pid=
echo "PASS: kernel client v4.1 and v4.2 I/O and locks in $(($(date +%s) - t_start)) s"
exit 0
