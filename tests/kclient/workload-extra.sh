# tests/kclient/workload-extra.sh — guest workload (busybox ash) run by
# tests/kclient/kclient_test.sh after the default workload. Covers what the default
# misses: a 5000-entry directory listed with READDIRPLUS (ls -l), cp -a of a tree +
# diff -r, a tar round trip, concurrent writers to different files, and a 120 MiB
# file written and read back with a sha256 compare. Leaves
#   $MNT/kclient-extra-$KC_TAG.bin  (the 120 MiB file) and
#   $MNT/kclient-extra-$KC_TAG.sums (sha256sum lines, relative to $MNT)
# for the host to verify; everything else is removed.
. /kclient/lib.sh

[ -n "${KC_TAG:-}" ] || kc_fail "KC_TAG not set"
W=$MNT/kx-$NONCE
NBIG=${KC_NBIG:-5000}
HUGE_MIB=${KC_HUGE_MIB:-120}
SUMS=$MNT/kclient-extra-$KC_TAG.sums

kc_step mkdir
kc_run mkdir "$W"

kc_step "big directory ($NBIG files, READDIRPLUS via ls -l)"
kc_run mkdir "$W/big"
i=0
while [ $i -lt $NBIG ]; do
	: >"$W/big/f$i" || kc_fail "create f$i"
	i=$((i + 1))
done
echo x >"$W/big/f17" || kc_fail "write f17"
kc_time big-created
kc_drop_caches
kc_eq "entries (ls -l)" "$NBIG" "$(ls -l "$W/big" | grep -c ' f[0-9]*$')"
kc_eq "unique names" "$NBIG" "$(ls "$W/big" | sort -u | wc -l)"
kc_eq "size seen by ls -l" 2 "$(ls -l "$W/big/f17" | awk '{print $5}')"
kc_eq "highest name present" "f$((NBIG - 1))" "$(ls "$W/big" | grep -x "f$((NBIG - 1))")"
kc_drop_caches
kc_eq "entries after drop_caches (ls -l)" "$NBIG" "$(ls -l "$W/big" | grep -c ' f[0-9]*$')"
kc_time big-listed
kc_run rm -rf "$W/big"
[ ! -e "$W/big" ] || kc_fail "big dir still there"

kc_step "build a source tree in guest RAM"
T=/tmp/tree
rm -rf "$T"
kc_run mkdir -p "$T/a/b/c" "$T/empty" "$T/x y"
kc_run dd if=/dev/urandom of="$T/a/r1" bs=4096 count=33 2>/dev/null
kc_run dd if=/dev/urandom of="$T/a/b/r2" bs=1000 count=7 2>/dev/null
kc_run dd if=/dev/urandom of="$T/a/b/c/r3" bs=65536 count=20 2>/dev/null
echo "hello" >"$T/x y/space name"
: >"$T/zero"
kc_run ln -s a/r1 "$T/link-to-r1"
kc_run ln "$T/a/r1" "$T/hard-r1"
kc_run chmod 600 "$T/a/b/r2"
kc_run chmod 751 "$T/a/b"
kc_run chmod 4755 "$T/a/b/c/r3"
kc_run touch -d "2019-05-06 07:08:09" "$T/a/r1"
kc_run touch -d "2018-01-01 00:00:00" "$T/x y"
kc_run chown 4321:8765 "$T/zero"
srclist() { (cd "$1" && find . | sort | while read -r f; do
	if [ -L "$f" ]; then echo "$f L $(readlink "$f")"
	elif [ -d "$f" ]; then stat -c '%n %F %a %u:%g' "$f"
	else stat -c '%n %F %a %s %u:%g %h' "$f"; fi
done); }
srcmtimes() { (cd "$1" && find . -type f | sort | while read -r f; do stat -c '%n %Y' "$f"; done); }
srcsums() { (cd "$1" && find . -type f | sort | while read -r f; do sha256sum "$f"; done); }

kc_step "cp -a tree + diff -r"
kc_run cp -a "$T" "$W/tree"
kc_drop_caches
kc_run diff -r "$T" "$W/tree"
kc_eq "tree listing (type mode size owner nlink)" "$(srclist "$T")" "$(srclist "$W/tree")"
kc_eq "file mtimes" "$(srcmtimes "$T")" "$(srcmtimes "$W/tree")"
kc_eq "checksums" "$(srcsums "$T")" "$(srcsums "$W/tree")"

kc_step "tar round trip"
kc_run tar -cf "$W/t.tar" -C /tmp tree
kc_drop_caches
kc_eq "tar archive checksum" "$(tar -cf - -C /tmp tree | sha256sum)" "$(sha256sum <"$W/t.tar")"
kc_run mkdir "$W/untar"
kc_run tar -xf "$W/t.tar" -C "$W/untar"
kc_drop_caches
kc_run diff -r "$T" "$W/untar/tree"
kc_eq "checksums after untar" "$(srcsums "$T")" "$(srcsums "$W/untar/tree")"
kc_eq "listing after untar" "$(srclist "$T")" "$(srclist "$W/untar/tree")"

kc_step "concurrent writers (4 x 8 MiB)"
n=0
while [ $n -lt 4 ]; do
	kc_run dd if=/dev/urandom of=/tmp/src$n bs=65536 count=128 2>/dev/null
	n=$((n + 1))
done
n=0
pids=""
while [ $n -lt 4 ]; do
	dd if=/tmp/src$n of="$W/par$n" bs=32768 conv=fsync 2>/dev/null &
	pids="$pids $!"
	n=$((n + 1))
done
for p in $pids; do wait "$p" || kc_fail "writer $p failed"; done
kc_drop_caches
n=0
while [ $n -lt 4 ]; do
	kc_eq "par$n checksum" "$(sha256sum </tmp/src$n)" "$(sha256sum <"$W/par$n")"
	rm -f /tmp/src$n
	n=$((n + 1))
done

kc_step "${HUGE_MIB} MiB file: dd write, drop caches, sha256"
kc_time huge-start
want=$(dd if=/dev/urandom bs=1048576 count="$HUGE_MIB" 2>/dev/null | tee "$MNT/kclient-extra-$KC_TAG.bin" | sha256sum | cut -d' ' -f1)
kc_run sync
kc_time huge-written
kc_eq "huge size" $((HUGE_MIB * 1048576)) "$(stat -c %s "$MNT/kclient-extra-$KC_TAG.bin")"
kc_drop_caches
got=$(dd if="$MNT/kclient-extra-$KC_TAG.bin" bs=1048576 2>/dev/null | sha256sum | cut -d' ' -f1)
kc_time huge-read
kc_eq "huge checksum after readback" "$want" "$got"

kc_step "leave checksums for the host"
cd "$MNT" || kc_fail "cd"
{
	echo "$want  kclient-extra-$KC_TAG.bin"
	(cd "$W" && find tree -type f | sort | while read -r f; do sha256sum "$f"; done) |
		sed "s,  tree/,  kclient-extra-$KC_TAG.tree/,"
} >"$SUMS" || kc_fail "write sums"
kc_run mv "$W/tree" "$MNT/kclient-extra-$KC_TAG.tree"
kc_run sync

kc_step cleanup
cd /
kc_run rm -rf "$W"
[ ! -e "$W" ] || kc_fail "work dir still there"
echo "KCLIENT: extra workload done"
exit 0
