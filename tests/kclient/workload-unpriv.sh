# tests/kclient/workload-unpriv.sh — guest workload (busybox ash) of
# kclient_unpriv_test.sh: the guest's root on a default (root_squash) export of a
# localnfsd that runs as an ordinary user. The squashed root acts as the server's user
# (server/policy/creds.h DefaultAnonymousIdentity), so what it creates it may write,
# append to, chmod, truncate, rename and remove — as on a rootless Podman volume.
. /kclient/lib.sh

d="$MNT/work-$VERS"

kc_step "create and write"
mkdir "$d" || kc_fail "mkdir"
echo "first line" >"$d/f" || kc_fail "write a new file"
echo "second line" >>"$d/f" || kc_fail "append"
kc_eq "content" "first line
second line" "$(cat "$d/f")"
kc_eq "owner is the server's user" "$KC_SERVER_UID" "$(stat -c %u "$d/f")"

kc_step "chmod, then write again"
chmod 600 "$d/f" || kc_fail "chmod"
kc_eq "mode" 600 "$(stat -c %a "$d/f")"
echo "rewritten" >"$d/f" || kc_fail "overwrite after chmod 600"
kc_eq "content after overwrite" "rewritten" "$(cat "$d/f")"

kc_step "a bigger file, read back after dropping caches"
dd if=/dev/urandom of="$d/big" bs=64k count=32 2>/dev/null || kc_fail "dd"
sum=$(md5sum <"$d/big")
sync
echo 3 >/proc/sys/vm/drop_caches
kc_eq "checksum" "$sum" "$(md5sum <"$d/big")"

kc_step "rename, link, remove"
mv "$d/big" "$d/big2" || kc_fail "rename"
ln -s f "$d/l" || kc_fail "symlink"
kc_eq "through the link" "rewritten" "$(cat "$d/l")"
mkdir -p "$d/a/b" && echo x >"$d/a/b/c" || kc_fail "mkdir -p + write"
rm -r "$d" || kc_fail "rm -r"
[ -e "$d" ] && kc_fail "still there after rm -r"
exit 0
