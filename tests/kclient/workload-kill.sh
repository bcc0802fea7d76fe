# tests/kclient/workload-kill.sh — guest workload (busybox ash) run by
# tests/kclient/kclient_kill_test.sh, which kill -9s localnfsd while this runs and
# restarts it on the same ports. The mount is hard and uses write=wait (each write()
# returns once its UNSTABLE WRITE is answered, and nothing COMMITs behind our back).
#
# File A ($MNT/kill-$KC_TAG.A) grows by pieces, three kinds in turn:
#   sync    buffered dd + conv=fsync: UNSTABLE WRITEs, then COMMIT at fsync
#   direct  O_DIRECT, one RPC (< wsize): a FILE_SYNC WRITE
#   bigdir  O_DIRECT, several RPCs: UNSTABLE WRITEs + COMMIT inside the write()
# Each piece is announced before its dd starts and acknowledged only AFTER dd returned
# (its data is durable):
#   KCLIENT-WRITING A <piece> <kind>
#   KCLIENT-ACK A <piece> <offset> <length> <kind> <sha256> <uptime> <dd ms>
# File B ($MNT/kill-$KC_TAG.B) is the stdout of a long-lived shell that forks nothing
# and redirects nothing (every close of a writable NFS fd flushes and COMMITs): its
# pieces are answered UNSTABLE and stay uncommitted across the kill (the mount's COMMIT
# count is checked); once the writer's file position shows the write()s returned:
#   KCLIENT-SENT B <piece> <offset> <length>   (one per piece)
#   KCLIENT-PENDING-READY B <pieces> <bytes>
# The host may throw those bytes away while the server is dead (a crash may lose
# uncommitted data); when B is closed after the restart, the COMMIT carries the new
# write verifier and the client must write them again.
# The host kills the server during piece KC_KILL_PIECE, which waits 0.5 s between its
# WRITING line and its dd. A keeps growing until the control file reads "done" (the
# host writes it once the new server is up), then KC_AFTER more pieces; B gets
# KC_BAFTER more pieces and is closed.
# Every piece's content is a function of (file, piece, offset): 64-byte lines
# "%-63s\n" of "<file> piece <n> offset <byte>", so the host can rebuild the model.
# The guest re-reads both files and checks them against its own model, then prints
#   KCLIENT-MODEL <file> <pieces> <bytes> <sha256>
. /kclient/lib.sh

[ -n "${KC_TAG:-}" ] || kc_fail "KC_TAG not set"
A=$MNT/kill-$KC_TAG.A
B=$MNT/kill-$KC_TAG.B
CTL=$MNT/kill-$KC_TAG.ctl
NB=${KC_NB:-6}            # B pieces written before the kill (4 KiB each)
BAFTER=${KC_BAFTER:-2}    # B pieces after the restart
AFTER=${KC_AFTER:-3}      # A pieces after the restart was seen
AMAX=${KC_AMAX:-300}      # give up if the restart never shows up
T=/tmp/kill
mkdir -p "$T" || kc_fail "mkdir $T"

# Nothing commits behind our back: no periodic writeback (it would COMMIT B through
# write_inode), background writeback only far above what we write.
echo 0 >/proc/sys/vm/dirty_writeback_centisecs
echo 360000 >/proc/sys/vm/dirty_expire_centisecs
echo 200000000 >/proc/sys/vm/dirty_background_bytes
echo 300000000 >/proc/sys/vm/dirty_bytes
grep -q 'write=wait' /proc/mounts || kc_fail "mount has no write=wait: $(grep " $MNT " /proc/mounts)"

now_ms() {
	read -r _up _ </proc/uptime
	_s=${_up%.*}
	_c=${_up#*.}
	echo $((_s * 1000 + ${_c#0} * 10))
}

# gen FILE PIECE OFFSET LENGTH: the piece's bytes on stdout (LENGTH a multiple of 64).
gen() {
	awk -v f="$1" -v p="$2" -v o="$3" -v n="$4" 'BEGIN {
		for (k = 0; k < n; k += 64) printf "%-63s\n", f " piece " p " offset " (o + k)
	}'
}

# piece N: sets kind and len of piece N of A.
piece() {
	case $(($1 % 3)) in
	0) kind=sync len=$((64 * (200 + ($1 * 37) % 300))) ;;
	1) kind=direct len=$((64 * (16 + ($1 * 13) % 400))) ;;
	2) kind=bigdir len=$((64 * (600 + ($1 * 29) % 900))) ;;
	esac
}

kc_step "control file"
printf 'wait\n' >"$CTL" || kc_fail "create $CTL"
restarted() {
	[ "$(dd if="$CTL" iflag=direct bs=4096 count=1 2>/dev/null)" = "done" ]
}

kc_step "B: long-lived writer, pieces answered UNSTABLE and left uncommitted"
commits() { awk '$1 == "COMMIT:" { print $2 }' /proc/self/mountstats; }
c0=$(commits)
case $c0 in '' | *[!0-9]*) kc_fail "no COMMIT count in /proc/self/mountstats ('$c0')" ;; esac
kc_run mkfifo "$T/bq"
# B is the writer's stdout for its whole life and it runs builtins only, with no
# redirection: every close of an fd on B — a child that inherited it exiting, or the
# dup2 of a shell redirection replacing it — flushes and COMMITs.
(
	while read -r j; do
		[ "$j" = end ] && break
		o=$((j * 4096))
		set --
		k=0
		while [ $k -lt 4096 ]; do
			set -- "$@" "B piece $j offset $((o + k))"
			k=$((k + 64))
		done
		printf '%-63s\n' "$@" || exit 1
	done
) <"$T/bq" >"$B" &
bpid=$!
exec 4>"$T/bq"
j=0
while [ $j -lt "$NB" ]; do
	echo $j >&4
	j=$((j + 1))
done
# The writer's file position moves once its write() returned (write=wait: the
# WRITE was answered).
bpos() { sed -n 's/^pos:[[:space:]]*//p' /proc/$bpid/fdinfo/1 2>/dev/null; }
w=0
until [ "$(bpos)" = $((NB * 4096)) ]; do
	kill -0 $bpid 2>/dev/null || kc_fail "B writer died"
	w=$((w + 1))
	[ $w -lt 600 ] || kc_fail "B writer did not write $NB pieces within 60 s (pos $(bpos))"
	sleep 0.1
done
j=0
while [ $j -lt "$NB" ]; do
	echo "KCLIENT-SENT B $j $((j * 4096)) 4096"
	j=$((j + 1))
done
kc_eq "COMMITs while B was written (B must stay uncommitted)" "$c0" "$(commits)"
echo "KCLIENT-PENDING-READY B $NB $((NB * 4096))"

kc_step "A: acknowledged pieces until the restart is seen, then $AFTER more"
i=0
off=0
after=-1
while :; do
	if [ $after -lt 0 ] && restarted; then
		after=0
		echo "KCLIENT-RESTART-SEEN after $i pieces"
	fi
	piece $i
	gen A $i $off $len >"$T/p" || kc_fail "gen $i"
	sum=$(sha256sum <"$T/p")
	sum=${sum%% *}
	echo "KCLIENT-WRITING A $i $kind"
	early=
	if [ "$i" = "${KC_KILL_PIECE:-}" ]; then
		# KC_EARLY_ACK=1 (KCLIENT_KILL_FAULT=early-ack): a broken acknowledgement, printed
		# before the data was written, which the host must catch.
		if [ "${KC_EARLY_ACK:-0}" = 1 ]; then
			read -r up _ </proc/uptime
			echo "KCLIENT-ACK A $i $off $len $kind $sum $up 0"
			early=1
		fi
		sleep 0.5 # the host kills the server in the middle of this piece
	fi
	t0=$(now_ms)
	case $kind in
	sync) dd if="$T/p" of="$A" bs=$len seek=$off oflag=seek_bytes conv=notrunc,fsync 2>"$T/dd.err" ;;
	*) dd if="$T/p" of="$A" bs=$len seek=$off oflag=seek_bytes,direct conv=notrunc 2>"$T/dd.err" ;;
	esac
	rc=$?
	[ $rc -eq 0 ] || kc_fail "dd piece $i ($kind) rc=$rc: $(cat "$T/dd.err")"
	t1=$(now_ms)
	read -r up _ </proc/uptime
	[ -n "$early" ] || echo "KCLIENT-ACK A $i $off $len $kind $sum $up $((t1 - t0))"
	i=$((i + 1))
	off=$((off + len))
	if [ $after -lt 0 ]; then
		[ $i -lt "$AMAX" ] || kc_fail "no restart seen after $AMAX pieces"
	else
		after=$((after + 1))
		[ $after -lt "$AFTER" ] || break
	fi
done
an=$i
asize=$off

kc_step "B: $BAFTER more pieces, then close (COMMIT with the new verifier)"
while [ $j -lt $((NB + BAFTER)) ]; do
	echo $j >&4
	j=$((j + 1))
done
echo end >&4
exec 4>&-
wait $bpid || kc_fail "B writer exit status $?"
echo "KCLIENT-B closed"
bn=$j
bsize=$((bn * 4096))

kc_step "read back through the restarted server"
kc_drop_caches
model() {  # FILE PIECES: the whole file as the model says
	if [ "$1" = B ]; then
		_j=0
		while [ $_j -lt "$2" ]; do gen B $_j $((_j * 4096)) 4096; _j=$((_j + 1)); done
	else
		_i=0
		_o=0
		while [ $_i -lt "$2" ]; do
			piece $_i
			gen A $_i $_o $len
			_i=$((_i + 1))
			_o=$((_o + len))
		done
	fi
}
# A mismatch is reported but the MODEL lines are still printed, so that the host
# compares what is on disk with its own model as well.
bad=0
for f in A B; do
	if [ $f = A ]; then n=$an size=$asize path=$A; else n=$bn size=$bsize path=$B; fi
	got=$(stat -c %s "$path")
	[ "$got" = "$size" ] || { echo "KCLIENT-CHECK FAIL: size of $f: expected $size, got $got"; bad=1; }
	want=$(model $f "$n" | sha256sum)
	got=$(sha256sum <"$path")
	[ "${got%% *}" = "${want%% *}" ] || { echo "KCLIENT-CHECK FAIL: content of $f ($n pieces) differs from the model"; bad=1; }
	echo "KCLIENT-MODEL $f $n $size ${got%% *}"
done
awk '$1 == "WRITE:" || $1 == "COMMIT:" { print "KCLIENT-OPS", $1, $2 }' /proc/self/mountstats
rm -f "$CTL"
exit $bad
