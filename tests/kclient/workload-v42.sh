# tests/kclient/workload-v42.sh — guest workload (busybox ash) of kclient_v42_test.sh: the
# NFSv4.2 content ops (SEEK, ALLOCATE, DEALLOCATE, COPY, CLONE) through the Linux
# client's system calls, by v42probe (static, tests/kclient/v42probe.c, in the export).
. /kclient/lib.sh

kc_step "lseek SEEK_DATA/SEEK_HOLE, fallocate, punch hole, copy_file_range, FICLONE"
mkdir "$MNT/v42" || kc_fail "mkdir"
"$MNT/v42probe" "$MNT/v42" || kc_fail "v42probe"
kc_drop_caches
kc_eq "copy's size after dropping caches" 2097152 "$(stat -c %s "$MNT/v42/copy")"
kc_eq "9 MiB copy's size after dropping caches" 9437184 "$(stat -c %s "$MNT/v42/big-copy")"
cmp "$MNT/v42/big" "$MNT/v42/big-copy" || kc_fail "the 9 MiB copy differs from its source"
exit 0
