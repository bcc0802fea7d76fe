#!/bin/bash
# tests/kclient/kclient_unpriv_test.sh — the real Linux NFS client (qemu guest,
# ../shared/kclient), as root, on a default export (root_squash) of a localnfsd that runs
# as an ordinary user (uid 4001): over NFSv3 and NFSv4.2 the squashed root creates,
# writes, appends, chmods, rewrites, renames and removes (workload-unpriv.sh) — it acts
# as the server's user, who owns everything the server creates
# (server/policy/creds.h DefaultAnonymousIdentity). Then an orderly SIGTERM (exit 0, no
# sanitizer report). Exit 0 pass, 1 fail, 77 skip when ../shared/kclient or qemu is
# absent or the test is not root (it starts the server as another user).
#
# Environment: LOCALNFSD (required), LOCALNFS_SHARED (default <repo>/../shared),
# KCLIENT_UNPRIV (the guest script; default beside this file).
set -u

here=$(cd "$(dirname "$0")" && pwd)
LOCALNFSD=${LOCALNFSD:?LOCALNFSD must name the localnfsd binary}
WORKLOAD=${KCLIENT_UNPRIV:-$here/workload-unpriv.sh}
server_uid=4001
. "$here/lib.sh"
kc_find_harness
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: needs root to start localnfsd as uid $server_uid"
	exit 77
fi
setpriv=$(command -v setpriv) || fail "setpriv (util-linux) not found"

kc_begin_work
mkdir -p "$work/export" "$work/state" "$work/run"
chown "$server_uid:$server_uid" "$work/export" "$work/state" "$work/run"

t_start=$(date +%s)
server=$LOCALNFSD
LOCALNFSD=$setpriv
kc_start_localnfsd "$work/server.out" "$work/server.err" \
	--reuid="$server_uid" --regid="$server_uid" --clear-groups -- "$server" \
	--export "$work/export" --port 0 --mount-port 0 --bind 127.0.0.1 \
	--threads 4 --state-dir "$work/state" --runtime-dir "$work/run" ||
	fail "localnfsd exited before it was ready"
grep -q "squashed callers act as uid $server_uid gid $server_uid" "$work/server.err" ||
	fail "no startup line naming the squashed callers' identity"
echo "localnfsd pid $pid (uid $server_uid): nfs=$nfs_port mount=$mount_port"

for vers in 3 4.2; do
	t0=$(date +%s)
	KCLIENT_GUEST_ENV="KC_SERVER_UID=$server_uid" \
		"$RUN" "$nfs_port" "$mount_port" "$work/export" "$vers" "$WORKLOAD"
	rc=$?
	echo "kclient v$vers: rc=$rc in $(($(date +%s) - t0)) s"
	kill -0 "$pid" 2>/dev/null || fail "localnfsd died during the v$vers run"
	[ $rc -eq 0 ] || fail "squashed root on the unprivileged server, v$vers (run.sh rc=$rc)"
done
[ -z "$(ls -A "$work/export")" ] || fail "the workloads left files behind: $(ls -A "$work/export")"

kc_stop_checked "$pid" "$work/server.err"
pid=
echo "PASS: kernel client root on an unprivileged server, v3 and v4.2, in $(($(date +%s) - t_start)) s"
exit 0
