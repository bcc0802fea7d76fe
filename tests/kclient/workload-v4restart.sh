# tests/kclient/workload-v4restart.sh — guest workload (busybox ash) of
# kclient_v4restart_test.sh: three rounds of restartprobe (static, tests/kclient/
# restartprobe.c, copied into the export by the host), each an open file with unflushed
# writes and a write lock held across a restart of localnfsd (SIGTERM, same port and
# state dir). The host drives each round through the marker and ctl files (see
# restartprobe.c's header) and restarts localnfsd:
#   grace    with its default grace period: the client reclaims open and lock, and the
#            writes through the same fd continue;
#   lost     with --grace 0: the reclaims get NFS4ERR_NO_GRACE; the client reopens the
#            file but, with nfs.recover_lost_locks=N (the default), gives the lock up
#            ("lost 1 locks") and fails I/O under it with EIO — expected;
#   relock   with --grace 0 and recover_lost_locks=Y: the client reopens and asks for the
#            lock again as a new one, and the writes through the same fd continue.
# The mount is hard (run.sh's default): I/O during the outage waits for the new server.
. /kclient/lib.sh

# (a parameter of the nfs module: fs/nfs/super.c)
P=/sys/module/nfs/parameters/recover_lost_locks
kc_eq "recover_lost_locks (the client's default)" N "$(cat $P)"
for round in grace lost relock; do
	kc_step "round $round: open, write, lock, restart, write, unlock, close"
	kc_time "round $round start"
	mode=
	[ $round = lost ] && mode=lost
	[ $round = relock ] && { echo Y >$P || kc_fail "set $P"; }
	"$MNT/restartprobe" guest "$MNT" "$round" $mode || kc_fail "restartprobe round $round (rc=$?)"
	kc_time "round $round end"
done
echo N >$P
kc_step "read back through the restarted server"
kc_drop_caches
for round in grace relock; do
	echo "KCLIENT-RESTART-SUM $round $(sha256sum <"$MNT/$round" | cut -d' ' -f1)"
done
