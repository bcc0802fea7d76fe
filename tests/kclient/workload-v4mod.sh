# tests/kclient/workload-v4mod.sh — guest workload (busybox ash) of kclient_v4mod_test.sh:
# the NFSv4.1/4.2 ops that change the namespace and attributes (CREATE, REMOVE, RENAME,
# LINK, SETATTR) through the real Linux client, on the files the host made (f1..f4, see
# kclient_v4mod_test.sh). No file is opened for I/O; the host checks the end state in
# $MNT/final afterwards.
. /kclient/lib.sh

d="$MNT/work"

kc_step "mkdir, mkdir -p"
mkdir "$d" || kc_fail "mkdir"
mkdir -p "$d/a/b/c" || kc_fail "mkdir -p"
kc_eq "a/b/c type" directory "$(stat -c %F "$d/a/b/c")"
mkdir "$d" 2>/dev/null && kc_fail "mkdir of an existing name succeeded"

kc_step "mkfifo, symlink, readlink"
mkfifo "$d/fifo" || kc_fail "mkfifo"
kc_eq "fifo type" "fifo" "$(stat -c %F "$d/fifo")"
ln -s ../f1 "$d/link" || kc_fail "ln -s"
kc_eq "link target" ../f1 "$(readlink "$d/link")"
kc_eq "link type" "symbolic link" "$(stat -c %F "$d/link")"

kc_step "hard link"
ln "$MNT/f1" "$d/f1-link" || kc_fail "ln"
kc_eq "nlink" 2 "$(stat -c %h "$MNT/f1")"
kc_eq "same inode" "$(stat -c %i "$MNT/f1")" "$(stat -c %i "$d/f1-link")"
ln "$MNT/f1" "$d/f1-link" 2>/dev/null && kc_fail "ln onto an existing name succeeded"

kc_step "chmod"
chmod 600 "$MNT/f1" || kc_fail "chmod file"
kc_eq "f1 mode" 600 "$(stat -c %a "$MNT/f1")"
chmod 700 "$d/a" || kc_fail "chmod dir"
kc_eq "a mode" 700 "$(stat -c %a "$d/a")"

kc_step "chown"
chown 1234:5678 "$MNT/f2" || kc_fail "chown"
kc_eq "f2 owner" "1234:5678" "$(stat -c %u:%g "$MNT/f2")"
chown 4321 "$d/a" || kc_fail "chown dir"
kc_eq "a owner" 4321 "$(stat -c %u "$d/a")"

kc_step "touch -d"
want=$(date -d "2020-01-02 03:04:05" +%s)
touch -d "2020-01-02 03:04:05" "$MNT/f2" || kc_fail "touch -d file"
kc_eq "f2 mtime" "$want" "$(stat -c %Y "$MNT/f2")"
touch -d "2020-01-02 03:04:05" "$d/a/b" || kc_fail "touch -d dir"
kc_eq "a/b mtime" "$want" "$(stat -c %Y "$d/a/b")"
before=$(stat -c %Y "$MNT/f3")
touch "$MNT/f3" || kc_fail "touch (server time)"
[ "$(stat -c %Y "$MNT/f3")" -ge "$before" ] || kc_fail "touch did not move f3's mtime"

kc_step "rename"
mv "$MNT/f2" "$d/f2-moved" || kc_fail "mv file across directories"
[ -e "$MNT/f2" ] && kc_fail "f2 still there"
kc_eq "moved owner" "1234:5678" "$(stat -c %u:%g "$d/f2-moved")"
mv "$d/a" "$d/z" || kc_fail "mv dir"
kc_eq "renamed dir content" directory "$(stat -c %F "$d/z/b/c")"
mv "$d/z/b" "$d/b2" || kc_fail "mv dir across directories"
mv "$MNT/f3" "$MNT/f4" || kc_fail "mv over an existing file"
kc_eq "f4 is f3 now" 3 "$(stat -c %s "$MNT/f4")"
[ -e "$MNT/f3" ] && kc_fail "f3 still there"
mkdir "$d/full" && mkdir "$d/full/x" && mkdir "$d/empty" || kc_fail "mkdir for rename"

kc_step "rmdir, rm"
rmdir "$d/full" 2>/dev/null && kc_fail "rmdir of a non-empty directory succeeded"
rmdir "$d/full/x" "$d/full" "$d/empty" || kc_fail "rmdir"
rm "$d/fifo" "$d/f1-link" || kc_fail "rm"
kc_eq "nlink after rm" 1 "$(stat -c %h "$MNT/f1")"

kc_step "after dropping caches"
kc_drop_caches
kc_eq "f1 mode" 600 "$(stat -c %a "$MNT/f1")"
kc_eq "moved owner" "1234:5678" "$(stat -c %u:%g "$d/f2-moved")"
kc_eq "moved mtime" "$want" "$(stat -c %Y "$d/f2-moved")"
kc_eq "listing" "b2 f2-moved link z" "$(ls "$d" | tr '\n' ' ' | sed 's/ $//')"

kc_step "rm -r, and the end state for the host"
rm -r "$d/z" || kc_fail "rm -r"
mv "$d" "$MNT/final" || kc_fail "mv work final"
exit 0
