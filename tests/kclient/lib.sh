# tests/kclient/lib.sh — host-side helpers shared by the kernel-client tests
# (kclient_test.sh, kclient_kill_test.sh, ...); sourced, not run. A test may define its
# own fail() (which must print and exit 1) and cleanup() after sourcing it.
#
#   kc_find_harness          sets RUN (../shared/kclient/run.sh); exits 77 (meson's
#                            skip) when the harness or qemu is absent
#   kc_start_localnfsd OUT ERR ARGS...
#                            starts "$LOCALNFSD" ARGS... (stdout > OUT, stderr >> ERR),
#                            waits 15 s for its ready line; sets pid, nfs_port and
#                            mount_port; returns 1 when it exited before it was ready
#   kc_begin_work            makes $work (0755: the guest reaches the export through
#                            it), sets pid= and the EXIT trap to cleanup() (INT/TERM:
#                            exit 1). The default cleanup() stops $pid and removes
#                            $work; a test with more to stop defines its own (after
#                            sourcing this file), as it may its own fail()
#   kc_stop PID              SIGTERM, 10 s, SIGKILL; reaps (cleanup on every path)
#   kc_stop_checked PID ERR...  SIGTERM and wait 15 s: fails unless it exits 0 and no
#                            ERR file holds a sanitizer report (ASan, LSan, UBSan, TSan:
#                            tests/support/sanitizer.sh) — pass the stderr files of every
#                            server the test ran, those it killed on purpose included
#
# The defaults of the tests' fail() and cleanup() (see kc_begin_work): fail prints its
# message and the tail of the server's stderr ($work/server.err) and exits 1.
fail() {
	echo "FAIL: $*"
	echo "--- localnfsd stderr (last 40 lines) ---"
	tail -n 40 "${work:-}/server.err" 2>/dev/null
	exit 1
}
cleanup() {
	kc_stop "$pid"
	rm -rf "$work"
}

# The loops below poll (0.05-0.1 s) for an event — the ready line, the exit — with a
# deadline; none sleeps for a fixed time.

. "$(dirname "${BASH_SOURCE[0]}")/../support/sanitizer.sh"

kc_find_harness() {
	if [ -z "${LOCALNFS_SHARED:-}" ]; then
		local top
		top=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || echo "$here/../..")
		LOCALNFS_SHARED=$top/../shared
	fi
	RUN=$LOCALNFS_SHARED/kclient/run.sh
	if [ ! -x "$RUN" ]; then
		echo "SKIP: $RUN not found (no shared kernel-client harness here)"
		exit 77
	fi
	if ! command -v qemu-system-x86_64 >/dev/null; then
		echo "SKIP: qemu-system-x86_64 not installed (run $LOCALNFS_SHARED/kclient/install-deps.sh)"
		exit 77
	fi
	[ -x "$LOCALNFSD" ] || fail "$LOCALNFSD is not executable"
}

kc_start_localnfsd() {
	local out=$1 err=$2 ready=
	shift 2
	"$LOCALNFSD" "$@" >"$out" 2>>"$err" &
	pid=$!
	for _ in $(seq 300); do
		ready=$(grep -m1 '^localnfsd: ready nfs=[0-9]* mount=[0-9]*' "$out" 2>/dev/null)
		[ -n "$ready" ] && break
		kill -0 "$pid" 2>/dev/null || { wait "$pid"; return 1; }
		sleep 0.05
	done
	[ -n "$ready" ] || fail "no ready line from localnfsd within 15 s"
	nfs_port=$(echo "$ready" | sed 's/.*nfs=\([0-9]*\).*/\1/')
	mount_port=$(echo "$ready" | sed 's/.*mount=\([0-9]*\).*/\1/')
}

kc_stop() {
	local p=$1
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
	kill -TERM "$p" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
}

kc_stop_checked() {
	local p=$1 rc=
	shift
	kill -TERM "$p"
	for _ in $(seq 150); do
		if ! kill -0 "$p" 2>/dev/null; then wait "$p"; rc=$?; break; fi
		sleep 0.1
	done
	[ -n "$rc" ] || fail "localnfsd did not exit within 15 s of SIGTERM"
	[ "$rc" = 0 ] || fail "localnfsd exited $rc on SIGTERM"
	local report
	if report=$(sanitizer_report "$@"); then
		fail "sanitizer report in localnfsd's stderr: $report"
	fi
}

kc_begin_work() {
	work=$(mktemp -d "${TMPDIR:-/tmp}/localnfs-kclient.XXXXXX")
	chmod 755 "$work"
	pid=
	trap cleanup EXIT
	trap 'exit 1' INT TERM
}
