#!/usr/bin/env bash
# demo.sh — install what is missing, build, and serve a demo directory over NFSv3 and 4.
#
# Exports ./demo-export to loopback clients (127.0.0.1, ::1) on the standard ports
# (NFS 2049, MOUNT 20048; override with LOCALNFS_PORT / LOCALNFS_MOUNT_PORT), lists it
# once through libnfs (an independent NFS client), mounts it with localnfs-mount and
# LOCALIO, writes and reads 16 MiB there and prints the counters that show the data path
# was local, prints how to mount it, and serves until Ctrl-C (SIGTERM: orderly shutdown).
# LOCALNFS_DEMO_ONESHOT=1: stop after the self-check (used by the tests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
top=$(pwd)

tools/install-deps.sh
tools/build.sh plain

port=${LOCALNFS_PORT:-2049}
mport=${LOCALNFS_MOUNT_PORT:-20048}
export_dir="$top/demo-export"
state="$top/build/demo-state"
mkdir -p "$export_dir" "$state"
[ -e "$export_dir/hello.txt" ] || echo "hello from localnfs" >"$export_dir/hello.txt"
cat >"$state/exports" <<EXPORTS
# Written by tools/demo.sh: the demo directory, read-write for loopback clients only.
$export_dir 127.0.0.1(rw,no_root_squash) ::1(rw,no_root_squash)
EXPORTS

out=$(mktemp)
build/server/localnfsd --exports "$state/exports" --port "$port" --mount-port "$mport" \
  --state-dir "$state" --runtime-dir "$state/run" >"$out" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do
  grep -q '^localnfsd: ready' "$out" && break
  kill -0 $pid 2>/dev/null || { echo "demo: localnfsd exited" >&2; exit 1; }
  sleep 0.1
done
ready=$(grep '^localnfsd: ready' "$out") || { echo "demo: localnfsd did not become ready" >&2; exit 1; }
echo "$ready"
nport=${ready#*nfs=}; nport=${nport%% *}; mport=${ready#*mount=}

url="nfs://127.0.0.1${export_dir}?version=3&nfsport=${nport}&mountport=${mport}"
echo "demo: listing the export through libnfs (nfs-ls):"
nfs-ls "$url"
# LOCALIO: mount the export with localnfs-mount on this host. The handshake (broker in
# the server's runtime dir + UUID_IS_LOCAL on the NFS connection) makes reads, writes and
# commits go straight to the server's open files; the counters prove it.
mnt="$state/mnt"
mkdir -p "$mnt"
fusermount3 -uz "$mnt" 2>/dev/null || true
build/client_localio/localnfs-mount -o localio=on --runtime-dir "$state/run" \
  --mount-port "$mport" "127.0.0.1:$nport:$export_dir" "$mnt"
trap 'fusermount3 -u "$mnt" 2>/dev/null; kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$out"' EXIT
echo "demo: LOCALIO mount on $mnt: writing and reading back 16 MiB"
dd if=/dev/urandom of="$mnt/localio-demo.bin" bs=1M count=16 conv=fsync status=none
cmp "$mnt/localio-demo.bin" "$export_dir/localio-demo.bin" && echo "demo: data identical on the server's disk"
cat "$mnt/localio-demo.bin" >/dev/null
echo "demo: counters of the mount ($mnt/.localnfs-stats):"
sed 's/^/  /' "$mnt/.localnfs-stats"
echo "demo: the server's view (build/tools/localnfs-ctl --runtime-dir $state/run status):"
build/tools/localnfs-ctl --runtime-dir "$state/run" status | sed 's/^/  /'
rm -f "$mnt/localio-demo.bin"

cat <<EOF2

localnfsd is serving $export_dir (pid $pid); it is mounted with LOCALIO on $mnt.
  Linux kernel client:  mount -t nfs -o port=$nport 127.0.0.1:$export_dir /mnt   (NFSv4.2/4.1; port= only off 2049)
                        mount -t nfs -o vers=3,proto=tcp,port=$nport,mountport=$mport,mountproto=tcp,nolock 127.0.0.1:$export_dir /mnt
  libnfs:               nfs-ls '$url'
  FUSE + LOCALIO:       build/client_localio/localnfs-mount --runtime-dir $state/run --mount-port $mport 127.0.0.1:$nport:$export_dir MOUNTPOINT
  status:               build/tools/localnfs-ctl --runtime-dir $state/run status [--json]
Ctrl-C unmounts $mnt and stops the server (orderly shutdown).
EOF2
[ "${LOCALNFS_DEMO_ONESHOT:-0}" = 1 ] && exit 0
wait $pid
