#!/usr/bin/env bash
# demo.sh — install what is missing, build, and serve a demo directory over NFSv3.
#
# Exports ./demo-export to loopback clients (127.0.0.1, ::1) on the standard ports
# (NFS 2049, MOUNT 20048; override with LOCALNFS_PORT / LOCALNFS_MOUNT_PORT), lists it
# once through libnfs (an independent NFS client) to show it works, prints how to mount
# it, and serves until Ctrl-C (SIGTERM: orderly shutdown).
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
cat <<EOF2

localnfsd is serving $export_dir (pid $pid).
  Linux kernel client:  mount -t nfs -o vers=3,proto=tcp,port=$nport,mountport=$mport,mountproto=tcp,nolock 127.0.0.1:$export_dir /mnt
  libnfs:               nfs-ls '$url'
Ctrl-C stops the server (orderly shutdown).
EOF2
[ "${LOCALNFS_DEMO_ONESHOT:-0}" = 1 ] && exit 0
wait $pid
