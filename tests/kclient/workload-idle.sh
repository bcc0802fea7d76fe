# tests/kclient/workload-idle.sh — guest workload (busybox ash) of kclient_idle_test.sh:
# the real client keeps working across the server closing its idle connection
# (--idle-timeout) and across more than a lease of silence (NFSv4), with a file held
# open all along and caches dropped: written, read back through the held descriptor and
# by name, appended to, and the namespace changed after each pause.
. /kclient/lib.sh

f="$MNT/idle-$VERS"
kc_step "write, and hold the file open"
echo first >"$f" || kc_fail "write"
exec 3<"$f"

kc_step "idle past the server's idle timeout (${KC_IDLE_PAUSE}s)"
sleep "$KC_IDLE_PAUSE"
kc_eq "read after idle" first "$(cat "$f")"
echo second >>"$f" || kc_fail "append after idle"

kc_step "idle past a lease (${KC_LEASE_PAUSE}s), caches dropped"
sleep "$KC_LEASE_PAUSE"
kc_drop_caches
kc_eq "read after the lease" "first
second" "$(cat "$f")"
read -r line <&3
kc_eq "through the descriptor held open" first "$line"
exec 3<&-
echo third >>"$f" || kc_fail "append after the lease"
mkdir "$MNT/idle-dir-$VERS" && echo x >"$MNT/idle-dir-$VERS/x" && rm -r "$MNT/idle-dir-$VERS" ||
	kc_fail "namespace changes after the pauses"
kc_eq "the whole file" "first
second
third" "$(cat "$f")"
exit 0
