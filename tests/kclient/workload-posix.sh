# tests/kclient/workload-posix.sh — guest workload (busybox ash) run by
# tests/kclient/kclient_test.sh: POSIX semantics that the kernel NFSv3 client shows
# exactly as the server sends them (issue "defects found by third-party suites"):
#  - `ls -a` lists "." and ".." (READDIR and READDIRPLUS), with the right inode numbers;
#  - a set-id file written, truncated or chowned by a user without CAP_FSETID loses
#    its set-id bits as on a local file system (S_ISGID stays without group-exec for a
#    writer in the file's group), a write by root keeps them; chmod by a non-owner is
#    refused.
# The export is rw,no_root_squash; the guest's root acts as root on the server.
. /kclient/lib.sh

W=$MNT/kp-$NONCE
# An ordinary user in the guest (busybox su, run by root, asks no password).
grep -q '^kcuser:' /etc/passwd 2>/dev/null || {
	echo "kcuser:x:1000:1000::/tmp:/bin/sh" >>/etc/passwd
	echo "kcuser:x:1000:" >>/etc/group
}
as_user() { su -s /bin/sh kcuser -c "$*"; }
mode_of() { stat -c %a "$1"; }

kc_step mkdir
kc_run mkdir -p "$W/d/sub"
kc_run chmod 1777 "$W"

kc_step "ls -a lists . and .."
for i in 1 2 3; do : >"$W/d/f$i" || kc_fail "create f$i"; done
kc_drop_caches
kc_eq "ls -a (READDIRPLUS)" ". .. f1 f2 f3 sub" "$(ls -a "$W/d" | sort | tr '\n' ' ' | sed 's/ $//')"
kc_eq "ls -a of an empty directory" ". .." "$(ls -a "$W/d/sub" | sort | tr '\n' ' ' | sed 's/ $//')"
kc_eq "entries counted by find" 6 "$(ls -a "$W/d" | wc -l)"
# The inode numbers readdir gives for . and .. are those of the directory and its parent.
kc_drop_caches
dot=$(ls -ai "$W/d/sub" | awk '$2 == "." {print $1}')
dotdot=$(ls -ai "$W/d/sub" | awk '$2 == ".." {print $1}')
kc_eq "inode of ." "$(stat -c %i "$W/d/sub")" "$dot"
kc_eq "inode of .." "$(stat -c %i "$W/d")" "$dotdot"
kc_eq "ls -a of the export root has ." "." "$(ls -a "$MNT" | grep -x '\.')"
kc_eq "ls -a of the export root has .." ".." "$(ls -a "$MNT" | grep -x '\.\.')"
# The same with plain READDIR: a second mount with readdirplus off.
kc_umount
mount -t nfs -o "$NFS_OPTS,nordirplus" "$SERVER_IP:$EXPORT" "$MNT" || kc_fail "mount nordirplus"
kc_eq "ls -a (READDIR)" ". .. f1 f2 f3 sub" "$(ls -a "$W/d" | sort | tr '\n' ' ' | sed 's/ $//')"
dotdot=$(ls -ai "$W/d/sub" | awk '$2 == ".." {print $1}')
kc_eq "inode of .. (READDIR)" "$(stat -c %i "$W/d")" "$dotdot"
kc_umount
kc_mount

kc_step "write by another user clears S_ISUID and S_ISGID (group-exec set)"
f=$W/setid
echo data >"$f" || kc_fail "create setid"
kc_run chmod 6777 "$f"
kc_eq "mode before" 6777 "$(mode_of "$f")"
as_user "echo more >>'$f'" || kc_fail "append as uid 1000"
kc_drop_caches
kc_eq "mode after a write by uid 1000" 777 "$(mode_of "$f")"

kc_step "S_ISGID without group-exec stays for a writer in the file's group"
# (A writer outside the group also clears it on Linux >= 6.2; not checked here: the
# server's kernel decides, whichever it is.)
kc_run chgrp 1000 "$f"
kc_run chmod 6767 "$f"
as_user "echo more >>'$f'" || kc_fail "append as uid 1000"
kc_drop_caches
kc_eq "mode after a write by uid 1000" 2767 "$(mode_of "$f")"
kc_run chgrp 0 "$f"

kc_step "write by root keeps set-id bits"
kc_run chmod 6777 "$f"
echo root >>"$f" || kc_fail "append as root"
kc_drop_caches
kc_eq "mode after a write by root" 6777 "$(mode_of "$f")"

kc_step "truncate by another user clears set-id bits"
kc_run chmod 6777 "$f"
as_user "truncate -s 2 '$f'" || kc_fail "truncate as uid 1000"
kc_drop_caches
kc_eq "size after truncate" 2 "$(stat -c %s "$f")"
kc_eq "mode after truncate by uid 1000" 777 "$(mode_of "$f")"

kc_step "chown clears set-id bits"
kc_run chmod 6755 "$f"
kc_run chown 1000:1000 "$f"
kc_drop_caches
kc_eq "owner after chown" 1000:1000 "$(stat -c %u:%g "$f")"
kc_eq "mode after chown" 755 "$(mode_of "$f")"

kc_step "the owner's own write clears set-id bits too"
kc_run chmod 6777 "$f"
as_user "echo own >>'$f'" || kc_fail "append as the owner"
kc_drop_caches
kc_eq "mode after the owner's write" 777 "$(mode_of "$f")"

kc_step "chmod by a non-owner is refused"
g=$W/rootfile
echo x >"$g" || kc_fail "create rootfile"
kc_run chmod 644 "$g"
as_user "chmod 666 '$g'" 2>/dev/null && kc_fail "chmod by uid 1000 of root's file succeeded"
kc_drop_caches
kc_eq "mode unchanged" 644 "$(mode_of "$g")"
as_user "echo x >>'$g'" 2>/dev/null && kc_fail "uid 1000 wrote root's 0644 file"
kc_eq "content unchanged" x "$(cat "$g")"

kc_step cleanup
kc_run rm -rf "$W"
exit 0
