#!/bin/bash
# tests/kclient/kclient_v4mod_test.sh — the real Linux NFS client (qemu guest,
# ../shared/kclient) against localnfsd over NFSv4.1 and 4.2: the ops that
# change the namespace and attributes — mkdir, mkfifo, ln -s, ln, chmod, chown, touch
# -d, mv, rmdir, rm (CREATE, LINK, SETATTR, RENAME, REMOVE): workload-v4mod.sh, which
# opens no file. The host then checks what the guest left on disk. Then an orderly
# SIGTERM (exit 0, no sanitizer report). Exit 0 pass, 1 fail, 77 skip when
# ../shared/kclient or qemu is absent.
#
# Environment: LOCALNFSD (required), LOCALNFS_SHARED (default <repo>/../shared),
# KCLIENT_V4MOD (the guest script; default beside this file).
set -u

here=$(cd "$(dirname "$0")" && pwd)
LOCALNFSD=${LOCALNFSD:?LOCALNFSD must name the localnfsd binary}
WORKLOAD=${KCLIENT_V4MOD:-$here/workload-v4mod.sh}
. "$here/lib.sh"
kc_find_harness

kc_begin_work
mkdir -p "$work/state" "$work/run"

t_start=$(date +%s)
for vers in 4.1 4.2; do
	# A fresh tree per version: f1 (5 bytes, 0644), f2, f3 (3 bytes), f4.
	export_dir=$work/srv-$vers/export
	mkdir -p "$export_dir"
	printf hello >"$export_dir/f1"
	printf 2 >"$export_dir/f2"
	printf 333 >"$export_dir/f3"
	printf 4444 >"$export_dir/f4"
	chmod 644 "$export_dir"/f*
	chown 0:0 "$export_dir"/f* 2>/dev/null || fail "cannot chown (the test needs root)"

	kc_start_localnfsd "$work/server-$vers.out" "$work/server.err" \
		--export "$export_dir:rw,no_root_squash" \
		--port 0 --mount-port 0 --bind 127.0.0.1 \
		--threads 4 --state-dir "$work/state" --runtime-dir "$work/run" ||
		fail "localnfsd exited before it was ready"
	echo "localnfsd pid $pid: nfs=$nfs_port export=$export_dir"

	t0=$(date +%s)
	"$RUN" "$nfs_port" - "$export_dir" "$vers" "$WORKLOAD"
	rc=$?
	echo "kclient v$vers: rc=$rc in $(($(date +%s) - t0)) s"
	kill -0 "$pid" 2>/dev/null || fail "localnfsd died during the v$vers run"
	[ $rc -eq 0 ] || fail "kernel client v$vers namespace-change workload (run.sh rc=$rc)"

	# What the guest left, as the host's file system has it.
	f=$export_dir/final
	[ "$(stat -c %a "$export_dir/f1")" = 600 ] || fail "v$vers: f1's mode on disk"
	[ "$(stat -c %h "$export_dir/f1")" = 1 ] || fail "v$vers: f1's link count on disk"
	[ "$(stat -c %u:%g "$f/f2-moved")" = 1234:5678 ] || fail "v$vers: f2-moved's owner on disk"
	[ "$(stat -c %Y "$f/f2-moved")" = "$(date -u -d '2020-01-02 03:04:05' +%s)" ] ||
		fail "v$vers: f2-moved's mtime on disk"
	[ "$(cat "$export_dir/f4")" = 333 ] || fail "v$vers: f4 is not the renamed f3"
	[ "$(readlink "$f/link")" = ../f1 ] || fail "v$vers: the symlink on disk"
	[ -d "$f/b2/c" ] || fail "v$vers: the moved directory on disk"
	[ ! -e "$export_dir/f2" ] && [ ! -e "$export_dir/f3" ] && [ ! -e "$f/z" ] ||
		fail "v$vers: removed names still on disk"

	kc_stop_checked "$pid" "$work/server.err"
	pid=
done

echo "PASS: kernel client v4.1 and v4.2 namespace changes in $(($(date +%s) - t_start)) s"
exit 0
