# tests/kclient/workload-v4ns.sh — guest workload (busybox ash) of kclient_v4ns_test.sh:
# the NFSv4 namespace and the read-only metadata ops through the real Linux client, on
# the tree the host made (kclient_v4ns_test.sh says what is in it). Files are opened,
# read, written and locked by workload-v4io.sh.
. /kclient/lib.sh

kc_step "attributes of the export's files"
ls -la "$MNT" >/dev/null || kc_fail "ls -la"
kc_eq "f1 size" 5 "$(stat -c %s "$MNT/f1")"
kc_eq "f1 mode" 640 "$(stat -c %a "$MNT/f1")"
kc_eq "f1 owner" "1234:5678" "$(stat -c %u:%g "$MNT/f1")"
kc_eq "sub type" directory "$(stat -c %F "$MNT/sub")"

kc_step "readlink"
kc_eq "link target" f1 "$(readlink "$MNT/l")"

kc_step "a directory listed in several READDIRs"
kc_eq "entries" 300 "$(ls "$MNT/sub" | wc -l)"
kc_eq "distinct entries" 300 "$(ls "$MNT/sub" | sort -u | wc -l)"
kc_eq "ls -a (the client adds . and .., the server lists neither)" 302 "$(ls -a "$MNT/sub" | wc -l)"

kc_step "lookupp"
cd "$MNT/sub" && cd .. || kc_fail "cd .."
kc_eq "back at" "$MNT" "$(pwd)"
cd /

kc_step "statfs"
df "$MNT" >/dev/null || kc_fail "df"

kc_step "the pseudo root"
mkdir -p /tmp/root
mount -t nfs -o "$NFS_OPTS" "$SERVER_IP:/" /tmp/root || kc_fail "mount of /"
kc_eq "f1 through the pseudo fs" 5 "$(stat -c %s "/tmp/root$EXPORT/f1")"
kc_eq "the other export" directory "$(stat -c %F "/tmp/root$KC_OTHER")"
# The export's parent lists the export and the path to the other one, nothing else.
parent=${EXPORT%/*}
kc_eq "pseudo listing" "export other" "$(ls "/tmp/root$parent" | tr '\n' ' ' | sed 's/ $//')"
touch "/tmp/root$parent/x" 2>/dev/null && kc_fail "created a file in a pseudo directory"
umount /tmp/root || kc_fail "umount of /"
