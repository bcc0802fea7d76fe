# tests/kclient/workload-v4io.sh — guest workload (busybox ash) of kclient_v4io_test.sh:
# files opened, written, read, appended and locked through the real Linux client over
# NFSv4.1/4.2 (OPEN, READ, WRITE, COMMIT, CLOSE, LOCK, LOCKT, LOCKU). The host made:
# f1 ("hello"), lockprobe (static, tests/kclient/lockprobe.c), hostlocked (100 bytes,
# write-locked on [0, 100) by a process on the host while this runs). KC_BIG_MIB: the
# size of the big file (MiB; 0: none). cp -a of a tree also needs CREATE and SETATTR
# (nfs4proc_ns.cc).
. /kclient/lib.sh

d=$MNT/io-$VERS
kc_time "io start"

kc_step "read a file the host wrote"
kc_eq "f1" hello "$(cat "$MNT/f1")"

kc_step "write a new file, read it back after dropping caches"
kc_run mkdir -p /tmp/w
kc_run dd if=/dev/urandom of=/tmp/w/data bs=1024 count=4096 2>/dev/null
kc_run dd if=/tmp/w/data of="$MNT/data-$VERS" bs=65536 conv=fsync 2>/dev/null
want=$(sha256sum </tmp/w/data)
kc_drop_caches
kc_eq "4 MiB sha256" "$want" "$(sha256sum <"$MNT/data-$VERS")"

kc_step "append"
kc_run dd if=/dev/urandom of=/tmp/w/more bs=1000 count=7 2>/dev/null
cat /tmp/w/more >>"$MNT/data-$VERS" || kc_fail "append"
cat /tmp/w/more >>/tmp/w/data
kc_drop_caches
kc_eq "size after append" 4201304 "$(stat -c %s "$MNT/data-$VERS")"
kc_eq "sha256 after append" "$(sha256sum </tmp/w/data)" "$(sha256sum <"$MNT/data-$VERS")"

kc_step "overwrite in the middle"
kc_run dd if=/dev/zero of="$MNT/data-$VERS" bs=4096 seek=100 count=3 conv=notrunc 2>/dev/null
kc_run dd if=/dev/zero of=/tmp/w/data bs=4096 seek=100 count=3 conv=notrunc 2>/dev/null
kc_drop_caches
kc_eq "sha256 after overwrite" "$(sha256sum </tmp/w/data)" "$(sha256sum <"$MNT/data-$VERS")"
rm -f /tmp/w/data /tmp/w/more

kc_step "concurrent writers"
for i in 1 2 3 4; do
	(dd if=/dev/zero bs=65536 count=64 2>/dev/null | tr '\0' "$i" >"$MNT/w$i-$VERS") &
done
wait
kc_drop_caches
for i in 1 2 3 4; do
	kc_eq "writer $i" "$(dd if=/dev/zero bs=65536 count=64 2>/dev/null | tr '\0' "$i" | sha256sum)" \
		"$(sha256sum <"$MNT/w$i-$VERS")"
done

kc_step "a ${KC_BIG_MIB:-0} MiB file"
if [ "${KC_BIG_MIB:-0}" -gt 0 ]; then
	kc_time "big write"
	want=$(dd if=/dev/zero bs=1048576 count="$KC_BIG_MIB" 2>/dev/null | tr '\0' 'z' | sha256sum)
	dd if=/dev/zero bs=1048576 count="$KC_BIG_MIB" 2>/dev/null | tr '\0' 'z' |
		dd of="$MNT/big-$VERS" bs=1048576 conv=fsync 2>/dev/null || kc_fail "big write"
	kc_time "big read"
	kc_drop_caches
	kc_eq "big sha256" "$want" "$(sha256sum <"$MNT/big-$VERS")"
	kc_time "big done"
fi

kc_step "ls -a"
kc_eq "., .. and the file" 3 "$(ls -a "$MNT" | grep -c -x -F -e . -e .. -e "data-$VERS")"

kc_step "byte-range locks between two processes of one mount"
: >"$MNT/lockfile-$VERS" || kc_fail "create lockfile"
kc_run "$MNT/lockprobe" contend "$MNT/lockfile-$VERS"

# The guest's VFS decides conflicts within one superblock (the NFS client checks its own
# lock list first): B on a second mount (nosharecache) is refused by the server.
kc_step "byte-range locks between two mounts: the server refuses, F_SETLKW polls"
kc_run mkdir -p /tmp/m2
mount -t nfs -o "$NFS_OPTS,nosharecache" "$SERVER_IP:$EXPORT" /tmp/m2 || kc_fail "second mount"
kc_run "$MNT/lockprobe" contend "$MNT/lockfile-$VERS" "/tmp/m2/lockfile-$VERS"
umount /tmp/m2 || kc_fail "umount of the second mount"

kc_step "a lock a host process holds refuses the guest"
kc_run "$MNT/lockprobe" refused "$MNT/hostlocked"
kc_step "a range nobody holds is granted"
kc_run "$MNT/lockprobe" free "$MNT/lockfile-$VERS"

kc_step "cp -a a tree, diff -r"
kc_run mkdir "$d"
kc_run mkdir -p /tmp/tree/a/b /tmp/tree/c
for i in 1 2 3 4 5; do echo "file $i" >/tmp/tree/a/f$i; done
kc_run dd if=/dev/urandom of=/tmp/tree/a/b/blob bs=1024 count=300 2>/dev/null
ln -s ../a/f1 /tmp/tree/c/link
kc_run cp -a /tmp/tree "$d/tree"
kc_drop_caches
kc_run diff -r /tmp/tree "$d/tree"

kc_step "O_TRUNC of an existing file"
echo short >"$MNT/data-$VERS" || kc_fail "truncating write"
kc_drop_caches
kc_eq "truncated" short "$(cat "$MNT/data-$VERS")"
rm -rf "$d" /tmp/tree || kc_fail "rm -rf"
kc_time "io end"
