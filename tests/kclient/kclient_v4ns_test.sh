#!/bin/bash
# tests/kclient/kclient_v4ns_test.sh — the real Linux NFS client (qemu guest,
# ../shared/kclient) against localnfsd over NFSv4.1 and 4.2: the mount by
# the export's own path, the pseudo file system above it (mounted at "/"), and the
# read-only metadata ops (GETATTR, LOOKUP, LOOKUPP, READDIR over several calls,
# READLINK, statfs attributes, ROFS in pseudo directories): workload-v4ns.sh. Then an
# orderly SIGTERM (exit 0, no sanitizer report). Exit 0 pass, 1 fail, 77 skip when
# ../shared/kclient or qemu is absent.
#
# Environment: LOCALNFSD (required), LOCALNFS_SHARED (default <repo>/../shared),
# KCLIENT_V4NS (the guest script; default beside this file).
set -u

here=$(cd "$(dirname "$0")" && pwd)
LOCALNFSD=${LOCALNFSD:?LOCALNFSD must name the localnfsd binary}
WORKLOAD=${KCLIENT_V4NS:-$here/workload-v4ns.sh}
. "$here/lib.sh"
kc_find_harness

kc_begin_work
mkdir -p "$work/srv/export/sub" "$work/srv/other/deeper" "$work/state" "$work/run"

# The tree the guest checks: f1 (5 bytes, 0640, 1234:5678), l -> f1, sub/ with 300
# entries; a second export below "other", so that the export's parent is a pseudo
# directory listing exactly "export" and "other".
printf hello >"$work/srv/export/f1"
chmod 640 "$work/srv/export/f1"
chown 1234:5678 "$work/srv/export/f1" 2>/dev/null ||
	fail "cannot chown (the test needs root)"
ln -s f1 "$work/srv/export/l"
for i in $(seq 1 300); do : >"$work/srv/export/sub/entry-$i"; done

t_start=$(date +%s)
kc_start_localnfsd "$work/server.out" "$work/server.err" \
	--export "$work/srv/export:rw,no_root_squash" --export "$work/srv/other/deeper:ro" \
	--port 0 --mount-port 0 --bind 127.0.0.1 \
	--threads 4 --state-dir "$work/state" --runtime-dir "$work/run" ||
	fail "localnfsd exited before it was ready"
echo "localnfsd pid $pid: nfs=$nfs_port export=$work/srv/export"

for vers in 4.1 4.2; do
	t0=$(date +%s)
	KCLIENT_GUEST_ENV="KC_OTHER=$work/srv/other/deeper" \
		"$RUN" "$nfs_port" - "$work/srv/export" "$vers" "$WORKLOAD"
	rc=$?
	echo "kclient v$vers: rc=$rc in $(($(date +%s) - t0)) s"
	kill -0 "$pid" 2>/dev/null || fail "localnfsd died during the v$vers run"
	[ $rc -eq 0 ] || fail "kernel client v$vers namespace workload (run.sh rc=$rc)"
done

kc_stop_checked "$pid" "$work/server.err"
pid=
echo "PASS: kernel client v4.1 and v4.2 namespace in $(($(date +%s) - t_start)) s"
exit 0
