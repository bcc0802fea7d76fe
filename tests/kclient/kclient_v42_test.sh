#!/bin/bash
# tests/kclient/kclient_v42_test.sh — the real Linux NFS client (qemu guest,
# ../shared/kclient) against localnfsd over NFSv4.2: lseek SEEK_DATA and
# SEEK_HOLE, fallocate, a punched hole, copy_file_range and FICLONE (v42probe.c, built
# static on the host and run in the guest from the export: workload-v42.sh) become SEEK,
# ALLOCATE, DEALLOCATE, COPY and CLONE — localnfs-ctl status counts them — and the host
# finds the copy equal to its source. Then an orderly SIGTERM (exit 0, no sanitizer
# report). Needs OPEN/READ/WRITE (the probe opens its files). Exit 0 pass, 1 fail, 77
# skip when ../shared/kclient, qemu or a static C compiler is absent.
#
# Environment: LOCALNFSD (required), LOCALNFS_SHARED (default <repo>/../shared),
# KCLIENT_V42 (the guest script; default beside this file), CC.
set -u

here=$(cd "$(dirname "$0")" && pwd)
LOCALNFSD=${LOCALNFSD:?LOCALNFSD must name the localnfsd binary}
WORKLOAD=${KCLIENT_V42:-$here/workload-v42.sh}
CTL=${LOCALNFS_CTL:-$(dirname "$LOCALNFSD")/../tools/localnfs-ctl}
. "$here/lib.sh"
kc_find_harness

kc_begin_work
mkdir -p "$work/srv/export" "$work/state" "$work/run"

if ! ${CC:-cc} -static -O2 -Wall -o "$work/srv/export/v42probe" "$here/v42probe.c" \
	2>"$work/cc.err"; then
	echo "SKIP: cannot build a static v42probe: $(head -n 3 "$work/cc.err")"
	exit 77
fi

t_start=$(date +%s)
kc_start_localnfsd "$work/server.out" "$work/server.err" \
	--export "$work/srv/export:rw,no_root_squash" \
	--port 0 --mount-port 0 --bind 127.0.0.1 \
	--threads 4 --state-dir "$work/state" --runtime-dir "$work/run" ||
	fail "localnfsd exited before it was ready"
echo "localnfsd pid $pid: nfs=$nfs_port export=$work/srv/export"

"$RUN" "$nfs_port" - "$work/srv/export" 4.2 "$WORKLOAD"
rc=$?
echo "kclient v4.2: rc=$rc in $(($(date +%s) - t_start)) s"
kill -0 "$pid" 2>/dev/null || fail "localnfsd died during the run"
[ $rc -eq 0 ] || fail "kernel client v4.2 content-op workload (run.sh rc=$rc)"

v42=$work/srv/export/v42
cmp -s "$v42/sparse" "$v42/copy" || fail "the copy differs from its source on disk"
[ "$(stat -c %s "$v42/copy")" = 2097152 ] || fail "the copy's size on disk"
if [ -x "$CTL" ]; then
	ops=$("$CTL" --runtime-dir "$work/run" status | grep 'ops (zero counts omitted)')
	echo "$ops"
	for op in SEEK ALLOCATE DEALLOCATE COPY; do
		echo "$ops" | grep -q "[ ,:]$op [0-9]" || fail "no $op reached the server"
	done
fi

kc_stop_checked "$pid" "$work/server.err"
pid=
echo "PASS: kernel client v4.2 content ops in $(($(date +%s) - t_start)) s"
exit 0
