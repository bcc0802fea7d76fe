# tests/kclient/workload-v4vanish.sh — guest workload (busybox ash) of
# kclient_v4vanish_test.sh, one boot per phase (KC_PHASE, from KCLIENT_GUEST_ENV); the
# host drives the phases through marker files in the export. lockprobe (static,
# tests/kclient/lockprobe.c) is copied into the export by the host.
#   1  a write lock on [0, 100) of $MNT/locked (lockprobe hold), then "r1-held" is
#      written (an OPEN: the lease is renewed just before) and the guest powers off at
#      once (poweroff -f): no unlock, no close, no unmount — the client vanishes and
#      /init never prints a result (run.sh exits 4, which the host expects).
#   2  a new boot, so a new client: "r2-first" is created (its mtime tells the host when
#      the first try happened), then F_SETLK on [10, 20) once — the result goes to
#      "r2-first-result" (refused while the vanished client's lease runs); then F_SETLK
#      every 0.2 s until granted (the courtesy client's lock gives way once its lease has
#      expired), deadline 60 s; then lockprobe holds the lock, "r2-held" tells the host,
#      which checks and writes "host-done" (deadline 60 s); the holder ends, exit 0.
#      KC_FAULT=nowait (proves the test can fail): a single F_SETLK that must be granted
#      at once, without waiting for the old lease — refused within the lease, so FAIL.
. /kclient/lib.sh

# Polls (0.1 s) until FILE exists on the server (caches dropped, so that the LOOKUP
# reaches it) or SECONDS pass; 1 on timeout.
wait_file() {
	_n=$(($2 * 10))
	while [ $_n -gt 0 ]; do
		kc_drop_caches
		[ -e "$1" ] && return 0
		sleep 0.1
		_n=$((_n - 1))
	done
	return 1
}

# Polls (0.05 s) until FILE holds "locked" or lockprobe PID exits; deadline 20 s.
wait_locked() {
	_n=400
	while [ $_n -gt 0 ]; do
		grep -q locked "$1" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
		_n=$((_n - 1))
	done
	return 1
}

case "${KC_PHASE:-}" in
1)
	kc_step "phase 1: hold a write lock, then vanish"
	sleep 1000 | "$MNT/lockprobe" hold "$MNT/locked" >/tmp/hold.out 2>&1 &
	holder=$!
	wait_locked /tmp/hold.out "$holder" || kc_fail "lockprobe hold: $(cat /tmp/hold.out)"
	echo held >"$MNT/r1-held" || kc_fail "write r1-held"
	kc_time "vanish"
	echo "KCLIENT-VANISH $NONCE"
	poweroff -f
	sleep 3
	echo o >/proc/sysrq-trigger
	sleep 100
	kc_fail "the guest did not power off"
	;;
2)
	kc_step "phase 2: a new client asks for the vanished client's lock"
	: >"$MNT/r2-first" || kc_fail "create r2-first"
	if "$MNT/lockprobe" free "$MNT/locked" 2>/tmp/first.err; then
		first=granted
	else
		first=refused
	fi
	echo "$first" >"$MNT/r2-first-result"
	kc_time "first F_SETLK: $first ($(cat /tmp/first.err))"
	if [ "${KC_FAULT:-}" = nowait ]; then
		kc_eq "F_SETLK without waiting for the vanished client's lease" granted "$first"
	fi
	kc_step "phase 2: F_SETLK until the courtesy client's lock gives way"
	n=300
	until "$MNT/lockprobe" free "$MNT/locked" 2>/dev/null; do
		n=$((n - 1))
		[ $n -gt 0 ] || kc_fail "F_SETLK still refused after 60 s"
		sleep 0.2
	done
	kc_time "F_SETLK granted"
	kc_step "phase 2: hold the lock while the host checks"
	# The holder holds until its stdin (a fifo; fd 4 its only writer) ends.
	mkfifo /tmp/hold.in || kc_fail "mkfifo"
	"$MNT/lockprobe" hold "$MNT/locked" </tmp/hold.in >/tmp/hold.out 2>&1 &
	holder=$!
	exec 4>/tmp/hold.in
	wait_locked /tmp/hold.out "$holder" || kc_fail "lockprobe hold: $(cat /tmp/hold.out)"
	echo held >"$MNT/r2-held" || kc_fail "write r2-held"
	wait_file "$MNT/host-done" 60 || kc_fail "no host-done from the host within 60 s"
	exec 4>&-
	wait "$holder" || kc_fail "lockprobe hold exited $?"
	;;
*)
	kc_fail "KC_PHASE must be 1 or 2, not '${KC_PHASE:-}'"
	;;
esac
exit 0
