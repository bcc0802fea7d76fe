#!/bin/bash
# tests/kclient/kclient_kill_test.sh — kill -9 of localnfsd in the middle of a kernel-client
# write workload (qemu guest, ../shared/kclient, hard mount; NFSv3, or NFSv4.1/4.2 with
# KCLIENT_VERS), then a restart on the same ports with the same state dir. Checks:
#   - while the server is dead, every piece the guest acknowledged (printed only after
#     its fsync / FILE_SYNC / O_DIRECT write returned) is on disk byte for byte;
#   - the client continues after the restart without an error (hard mount), and
#     resends the writes that were answered UNSTABLE but never committed: the host
#     throws those bytes away while the server is dead (as a crash may), so only a
#     resend after the new write verifier brings them back;
#   - over NFSv4 the restarted server's grace period (the client records in the state
#     dir survive the kill) ends early once the client reclaimed its opens and sent
#     RECLAIM_COMPLETE;
#   - at the end both files equal the model of everything the guest wrote, and the
#     restarted server stops on SIGTERM with exit 0 and no sanitizer report.
# The guest side is workload-kill.sh (beside this file; its header has the protocol).
# Exit 0 pass, 1 fail, 77 skip (meson's skip code) when ../shared/kclient or qemu is
# absent.
#
# Environment: LOCALNFSD (required), LOCALNFS_SHARED (default <repo>/../shared),
# KCLIENT_KILL_WORKLOAD (guest script, default beside this file), KC_KILL_PIECE and
# KC_KILL_DELAY_MS (the server is frozen this long after the guest's dd of that piece
# of A should have started, and killed 0.3 s later; default random 8-10 — the three
# kinds of write — and 0-199 ms, both printed), KCLIENT_TIMEOUT (guest run, default 240 s),
# KCLIENT_VERS (3, the default, or 4.1 / 4.2: NFSv4, on by default in localnfsd, mounted by the
# export's path without the MOUNT port).
# KCLIENT_KILL_FAULT, only to prove the test can fail (expect FAIL):
#   lose-acked     overwrite the newest acknowledged piece while the server is dead
#   early-ack      the guest acknowledges the piece the kill lands in before writing it
#   same-verifier  SIGSTOP/SIGCONT instead of kill + restart: the write verifier stays,
#                  so the client rightly does not resend and the thrown-away bytes of
#                  B stay lost
set -u

here=$(cd "$(dirname "$0")" && pwd)
LOCALNFSD=${LOCALNFSD:?LOCALNFSD must name the localnfsd binary}
WORKLOAD=${KCLIENT_KILL_WORKLOAD:-$here/workload-kill.sh}
KILL_PIECE=${KC_KILL_PIECE:-$((8 + RANDOM % 3))}
delay_ms=${KC_KILL_DELAY_MS:-$((RANDOM % 200))}
FAULT=${KCLIENT_KILL_FAULT:-}
vers=${KCLIENT_VERS:-3}

. "$here/lib.sh"
console=
fail() { echo "FAIL: $*"; exit 1; }  # until the full one below
kc_find_harness
[ -r "$WORKLOAD" ] || { echo "FAIL: cannot read $WORKLOAD"; exit 1; }
case $FAULT in '' | lose-acked | early-ack | same-verifier) ;; *) echo "FAIL: bad KCLIENT_KILL_FAULT '$FAULT'"; exit 1 ;; esac

work=$(mktemp -d "${TMPDIR:-/tmp}/localnfs-kclient-kill.XXXXXX")
chmod 755 "$work"
mkdir -p "$work/export" "$work/state" "$work/run"
pid=    # the serving localnfsd (first, then the restarted one)
gpid=   # run.sh
stopped=
cleanup() {
	if [ -n "$stopped" ] && [ -n "$pid" ]; then kill -CONT "$pid" 2>/dev/null; fi
	kc_stop "$gpid"  # run.sh's trap stops its qemu
	kc_stop "$pid"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
	echo "FAIL: $*"
	for f in server1.err server2.err; do
		[ -s "$work/$f" ] || continue
		echo "--- localnfsd $f (last 30 lines) ---"
		tail -n 30 "$work/$f"
	done
	if [ -n "$console" ] && [ -r "$console" ]; then
		echo "--- guest console (last 30 lines) ---"
		tr -d '\r' <"$console" | tail -n 30
	fi
	exit 1
}

now() { echo "$EPOCHREALTIME"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# start_server N: localnfsd incarnation N on $nfs_port/$mount_port (0 = any); sets pid.
start_server() {
	kc_start_localnfsd "$work/server$1.out" "$work/server$1.err" \
		--export "$work/export:rw,no_root_squash" --port "$nfs_port" \
		--mount-port "$mount_port" --bind 127.0.0.1 --threads 4 --state-dir "$work/state" \
		--runtime-dir "$work/run"
}

# The content model: 64-byte lines "%-63s\n" of "<file> piece <n> offset <byte>"
# (workload-kill.sh's gen, byte for byte), one piece per input line "FILE PIECE OFFSET
# LENGTH"; it refuses pieces that do not follow each other from offset 0 (unless
# called as "model any").
model() {
	awk -v any="${1:-}" '{
		if (any == "" && ($2 != NR - 1 || $3 != next_off)) {
			printf "model: piece %s at %s, expected piece %d at %d\n", $2, $3, NR - 1, next_off >"/dev/stderr"
			exit 1
		}
		for (k = 0; k < $4; k += 64) printf "%-63s\n", $1 " piece " $2 " offset " ($3 + k)
		next_off = $3 + $4
	}'
}
clog() { tr -d '\r' <"$console" 2>/dev/null; }
acks() { clog | awk '/^KCLIENT-ACK A / { print }'; }

# check_acked: every KCLIENT-ACK in the console so far is on disk, byte for byte as the
# model says; sets n_acked and acked_bytes.
check_acked() {
	local first i off len kind sha
	acks >"$work/acks"
	n_acked=$(wc -l <"$work/acks")
	awk '{ print "A", $3, $4, $5 }' "$work/acks" | model >"$work/model.acked" ||
		fail "the acknowledgements do not cover A from offset 0 without gaps"
	acked_bytes=$(stat -c %s "$work/model.acked")
	cmp -s -n "$acked_bytes" "$work/model.acked" "$work/export/$A" && return 0
	# Name the first bad piece, and whether the guest's checksum agrees with the model.
	first=$(cmp -n "$acked_bytes" "$work/model.acked" "$work/export/$A" 2>&1 |
		sed -n 's/.* differ: byte \([0-9]*\).*/\1/p; s/.*EOF on .* after byte \([0-9]*\).*/+\1/p' | head -1)
	case $first in +*) first=$((${first#+} + 1)) ;; esac # the file ends before this byte
	read -r _ _ i off len kind sha _ <<<"$(awk -v b="${first:-1}" '$4 < b { l = $0 } END { print l }' "$work/acks")"
	if [ "$(model any <<<"A $i $off $len" | sha256sum | cut -d' ' -f1)" != "$sha" ]; then
		fail "the guest's piece $i differs from the host's model (generators disagree)"
	fi
	fail "acknowledged piece $i ($kind, $len bytes at $off) is not on disk as written (first wrong byte at offset $((${first:-1} - 1)))"
}

t_start=$(now)
console=
nfs_port=0
mount_port=0
start_server 1 || fail "localnfsd exited before it was ready"
echo "localnfsd pid $pid: nfs=$nfs_port mount=$mount_port export=$work/export (NFSv$vers)"

tag=k$$
A=kill-$tag.A
B=kill-$tag.B
CTL=kill-$tag.ctl
guest_env="KC_TAG=$tag KC_KILL_PIECE=$KILL_PIECE"
[ "$FAULT" = early-ack ] && guest_env="$guest_env KC_EARLY_ACK=1"
KCLIENT_GUEST_ENV=$guest_env KCLIENT_OPTS="write=wait,wsize=32768" \
	KCLIENT_TIMEOUT=${KCLIENT_TIMEOUT:-240} \
	"$RUN" "$nfs_port" "$([ "$vers" = 3 ] && echo "$mount_port" || echo -)" "$work/export" "$vers" \
	"$WORKLOAD" 2>"$work/run.err" &
gpid=$!

# The console log is <run dir>/serial.log; run.sh names its run dir on stderr.
for _ in $(seq 600); do
	rundir=$(sed -n 's/.*, run dir \(\/.*\)$/\1/p' "$work/run.err" 2>/dev/null | head -1)
	[ -n "$rundir" ] && break
	kill -0 "$gpid" 2>/dev/null || break
	sleep 0.1
done
[ -n "$rundir" ] || { cat "$work/run.err"; fail "run.sh did not start a guest"; }
console=$rundir/serial.log
echo "guest console: $console"

# Wait until B's uncommitted pieces are out and the guest announces piece KILL_PIECE of A;
# the guest then waits 0.5 s before its dd, we wait 0.4 s + delay_ms (so the kill lands
# in that piece's WRITEs or COMMIT, or just after it).
# tail -f follows the log as it grows (a polling loop reacts a few pieces late under
# load); it ends with run.sh, or on SIGPIPE once grep is gone.
t_guest=$(now)
delay_s=$(awk -v m="$delay_ms" 'BEGIN { printf "%.3f", 0.4 + m / 1000 }')
[ "$FAULT" = early-ack ] && delay_s=0 # frozen before the early-acknowledged dd starts
if ! grep -aq -m1 "^KCLIENT-WRITING A $KILL_PIECE " < <(tail --pid="$gpid" -s 0.05 -n +1 -f "$console" 2>/dev/null); then
	cat "$work/run.err"
	fail "guest ended before the kill"
fi
# Nothing but builtins (and the sleep) between seeing the line and freezing the server
# (SIGSTOP: it never runs again); the kill follows 0.3 s later, so that the dd which
# starts meanwhile has its WRITE or COMMIT in flight when the server dies.
kill -0 "$pid" 2>/dev/null || fail "localnfsd died before the kill"
sleep "$delay_s"
stopped=1
kill -STOP "$pid"
t_kill=$(now)
[ "$FAULT" = same-verifier ] || { sleep 0.3; kill -KILL "$pid"; }
n_at_kill=$(clog | grep -ac '^KCLIENT-ACK A ')
if [ "$FAULT" = same-verifier ]; then
	echo "FAULT same-verifier: localnfsd stopped (not killed) $delay_s s after piece $KILL_PIECE was announced, $n_at_kill acks"
else
	wait "$pid" 2>/dev/null
	pid=
	stopped=
	echo "killed localnfsd (-9; frozen $delay_s s after piece $KILL_PIECE of A was announced), $n_at_kill pieces acknowledged, $(secs "$t_guest" "$t_kill") s after the guest started"
fi
t_dead=$(now)

# --- the server is dead (or stopped): nothing can be acknowledged any more ---
sleep 0.3 # acks for fsyncs answered just before the kill reach the console
b_sent=$(clog | grep -ac '^KCLIENT-SENT B ')
b_ready=$(clog | sed -n 's/^KCLIENT-PENDING-READY B \([0-9]*\) .*/\1/p')
[ "$b_sent" = "$b_ready" ] || fail "B: $b_sent pieces sent, guest said $b_ready"
if [ "$FAULT" = lose-acked ]; then
	last=$(clog | grep -a '^KCLIENT-ACK A ' | tail -1)
	read -r _ _ li loff llen _ <<<"$last"
	echo "FAULT lose-acked: zeroing acknowledged piece $li ($llen bytes at $loff)"
	dd if=/dev/zero of="$work/export/$A" bs=1 seek="$loff" count="$llen" conv=notrunc status=none
fi
check_acked
echo "server dead: all $n_acked acknowledged pieces of A ($acked_bytes bytes) are on disk"
# B's pieces were answered UNSTABLE and are on disk now (the old server wrote them),
# but were never committed: a crash may lose them. Throw them away.
seq 0 $((b_sent - 1)) | awk '{ print "B", $1, $1 * 4096, 4096 }' | model >"$work/model.B"
cmp -s "$work/model.B" "$work/export/$B" || fail "B's $b_sent UNSTABLE pieces are not on disk as written"
truncate -s 0 "$work/export/$B"
echo "server dead: B's $b_sent uncommitted pieces ($((b_sent * 4096)) bytes) thrown away"

# An acknowledgement printed meanwhile was for an fsync answered before the kill too.
[ "$(acks | wc -l)" = "$n_acked" ] || { check_acked; echo "server dead: recheck, $n_acked acknowledged pieces on disk"; }
t_restart=$(now)
if [ "$FAULT" = same-verifier ]; then
	kill -CONT "$pid"
	stopped=
else
	started=
	for try in $(seq 50); do
		if start_server 2; then started=$try; break; fi
		sleep 0.1
	done
	[ -n "$started" ] || fail "localnfsd could not be restarted on nfs=$nfs_port mount=$mount_port"
	[ "$started" = 1 ] || echo "restart needed $started attempts (port not yet free)"
	echo "restarted localnfsd pid $pid on the same ports"
fi
t_up=$(now)
printf 'done\n' | dd of="$work/export/$CTL" conv=notrunc status=none
echo "server down for $(secs "$t_kill" "$t_up") s from the freeze (checks $(secs "$t_dead" "$t_restart") s)"

wait "$gpid"
grc=$?
gpid=
t_end_guest=$(now)
sed -n '/^KCLIENT-RESULT/p; /^  kernel:/p; /^kclient: /p' "$work/run.err"
guest_failed() {
	fail "guest workload (run.sh rc=$grc): $(clog | grep -a -m1 '^KCLIENT-CHECK FAIL' || echo 'no check failed')"
}
# Without its final MODEL lines the guest did not get far enough for the host checks.
clog | grep -aq '^KCLIENT-MODEL B ' || guest_failed
[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || fail "the restarted localnfsd died"

# --- final model: everything the guest wrote (acknowledged or not) ---
check_acked
seen=$(clog | sed -n 's/^KCLIENT-RESTART-SEEN after \([0-9]*\) pieces/\1/p')
[ -n "$seen" ] && [ "$n_acked" -gt "$seen" ] || fail "no piece acknowledged after the restart was seen"
read -r _ _ an asize _ <<<"$(clog | grep -a '^KCLIENT-MODEL A ')"
read -r _ _ bn bsize _ <<<"$(clog | grep -a '^KCLIENT-MODEL B ')"
[ "$an" = "$n_acked" ] || fail "guest model has $an pieces of A, $n_acked were acknowledged"
cmp "$work/model.acked" "$work/export/$A" || fail "A on disk differs from the model ($an pieces, $asize bytes)"
[ "$acked_bytes" = "$asize" ] || fail "A: host model has $acked_bytes bytes, the guest's $asize"
seq 0 $((bn - 1)) | awk '{ print "B", $1, $1 * 4096, 4096 }' | model >"$work/model.B"
cmp "$work/model.B" "$work/export/$B" ||
	fail "B on disk differs from the model ($bn pieces, $bsize bytes): the uncommitted writes were not resent"
[ $grc -eq 0 ] || guest_failed
if [ "$vers" != 3 ] && [ "$FAULT" != same-verifier ]; then
	ended=$(grep -m1 'nfs4: grace period ended after .*ended early: every client of the previous instance sent RECLAIM_COMPLETE (1)' "$work/server2.err") ||
		fail "the restarted localnfsd's grace period did not end early by the client's RECLAIM_COMPLETE"
	echo "restarted server: ${ended#*nfs4: }"
fi
ops=$(clog | sed -n 's/^KCLIENT-OPS \([A-Z]*\): \([0-9]*\).*/\1=\2/p' | tr '\n' ' ')
echo "final: A $an pieces ($asize bytes) and B $bn pieces ($bsize bytes) equal the model; client ops: $ops"

# Orderly shutdown of the restarted server: exit 0, no sanitizer report in either.
kc_stop_checked "$pid" "$work"/server*.err
pid=

# Figures: the longest gap between two acknowledgements (guest uptime) is the time the
# guest waited for the restarted server.
blocked=$(awk '{ if (NR > 1 && $8 - prev > m) m = $8 - prev; prev = $8 } END { printf "%.1f", m }' "$work/acks")
inflight=$(awk '$9 > m { m = $9; l = "piece " $3 " (" $6 ") took " $9 " ms" } END { print l }' "$work/acks")
# (a piece that took about as long as the outage was in flight at the kill)
echo "figures: kill $(secs "$t_guest" "$t_kill") s after guest start, $n_at_kill acks before the kill," \
	"slowest write: $inflight, server down $(secs "$t_kill" "$t_up") s, guest blocked $blocked s (longest gap between acks)," \
	"$((an - seen)) pieces after the restart, guest run $(secs "$t_guest" "$t_end_guest") s"
echo "PASS: kernel client survives kill -9 + restart in $(secs "$t_start" "$(now)") s"
exit 0
