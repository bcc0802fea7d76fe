#!/usr/bin/env bash
# container-test.sh — contrib/container/ for real: builds the image (Containerfile) and
# runs compose.yaml with rootless Podman (podman-compose) as an ordinary user, then
# checks that the dev container's LOCALIO mount of the server container's export works
# and is local:
#   - the server prints its ready line, the dev container mounts with -o localio=on;
#   - in dev, a file written through the mount reads back identical, and a file the
#     server wrote reads identical through the mount (the kernel has no cached pages
#     of it, so the mount's own read path serves it);
#   - the mount's .localnfs-stats: reads and writes went through LOCALIO (local_* > 0,
#     rpc_reads = rpc_writes = 0, localio_active 1);
#   - the dev file is in the server's export volume (read back through the volume's
#     directory on the host, in the user's namespace: podman unshare);
#   - localnfs-ctl status --json in the server container lists the dev mount as a bound
#     LOCALIO client with the local I/O it counted.
# The two containers share only the runtime-dir volume: separate pid, network and mount
# namespaces.
#
# Run as root (CI): it creates the ordinary user localnfs-ct (LOCALNFS_CT_USER) with
# /etc/subuid and /etc/subgid ranges if needed and runs every podman command as that
# user (runuser). Exit 0 = passed, 1 = failed, 77 = skipped (no podman: install it with
# tools/install-deps.sh; not root).
#
# This machine has no registry: the base image debian:bookworm-slim is made here
# (debootstrap --variant=minbase bookworm, imported as docker.io/library/debian:
# bookworm-slim) and cached as a tarball in /var/tmp/localnfs-container-test (and as
# an image in the user's storage); the build never pulls (--pull=never). The Debian
# mirror is needed for debootstrap (first run) and apt inside the build.
# Podman runs with runc and the cgroupfs cgroup manager (~/.config/containers/
# containers.conf of the user): crun refuses this machine's hybrid cgroup layout.
#
# Everything it starts is removed on every exit path (compose down -v, the network and
# volumes, the copied build context); the image and its layers (and the build-cache
# mounts: apt downloads, ccache) stay for the next run. LOCALNFS_CT_KEEP_CACHE=0 removes
# them too, and the base image (the next run is cold). Prints the time of each phase.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
top=$(pwd)

ct_user=${LOCALNFS_CT_USER:-localnfs-ct}
cache_dir=/var/tmp/localnfs-container-test
base_tar=$cache_dir/debian-bookworm-minbase.tar
base_image=docker.io/library/debian:bookworm-slim
image=localhost/localnfs-ct:test
project=localnfs-ct   # podman-compose project: containers localnfs-ct_server_1, ..._dev_1
server=${project}_server_1
dev=${project}_dev_1

say() { echo "container-test: $*"; }
skip() { say "SKIPPED: $*"; exit 77; }
fail() { say "FAILED: $*"; exit 1; }

if ! command -v podman >/dev/null || ! command -v podman-compose >/dev/null; then
  skip "podman/podman-compose not installed (tools/install-deps.sh installs them)"
fi
[ "$(id -u)" = 0 ] || skip "needs root (it runs podman as the ordinary user $ct_user)"
for p in runuser debootstrap newuidmap iptables python3; do
  command -v "$p" >/dev/null || skip "$p not installed (tools/install-deps.sh installs it)"
done

t_start=$(date +%s%N)
t_phase=$t_start
seconds_since() {  # seconds_since NANOSECONDS → "12.3"
  local ms=$(( ($(date +%s%N) - $1) / 1000000 ))
  printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}
phase() {  # phase WHAT: prints WHAT with the time since the previous phase
  printf 'container-test: [%6s s] %s\n' "$(seconds_since "$t_phase")" "$1"
  t_phase=$(date +%s%N)
}

# ---- the ordinary user ----
if ! id "$ct_user" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash "$ct_user"
fi
uid=$(id -u "$ct_user")
home=$(getent passwd "$ct_user" | cut -d: -f6)
for f in /etc/subuid /etc/subgid; do
  # 65536 ids for the container's user namespace (useradd adds them on Debian when
  # the file exists; an older user may have none).
  if ! grep -q "^$ct_user:" "$f" 2>/dev/null; then
    start=$(awk -F: 'BEGIN {m = 100000} {e = $2 + $3; if (e > m) m = e} END {print m}' "$f" 2>/dev/null || echo 100000)
    echo "$ct_user:$start:65536" >>"$f"
  fi
done
# Its XDG_RUNTIME_DIR (no login session makes one): podman's runtime state.
xdg=/run/user/$uid
install -d -o "$ct_user" -g "$(id -g "$ct_user")" -m 0700 "$xdg"
install -d -o "$ct_user" -g "$(id -g "$ct_user")" -m 0755 "$home/.config" "$home/.config/containers"
cat >"$home/.config/containers/containers.conf" <<'CONF'
# Written by localnfs tools/container-test.sh: crun refuses this machine's hybrid
# cgroup layout; runc with the cgroupfs manager works rootless. No systemd user
# session here, hence the file events logger.
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
# Overlay storage (native rootless overlay, Linux >= 5.13): left to choose, this Podman
# took vfs here, which copies every layer for every build step (minutes per step,
# gigabytes of disk).
cat >"$home/.config/containers/storage.conf" <<'CONF'
# Written by localnfs tools/container-test.sh.
[storage]
driver = "overlay"
CONF
chown "$ct_user:" "$home/.config/containers/containers.conf" "$home/.config/containers/storage.conf"
as_user() {  # as_user CMD...: CMD as the ordinary user, in its home
  (cd "$home" && runuser -u "$ct_user" -- env -i HOME="$home" USER="$ct_user" \
     LOGNAME="$ct_user" PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
     XDG_RUNTIME_DIR="$xdg" LANG=C.UTF-8 "$@")
}
podman_u() { as_user podman "$@"; }
driver=$(podman_u info --format '{{.Store.GraphDriverName}}' 2>/dev/null || true)
if [ "$driver" != overlay ]; then
  # Storage made earlier with another driver: Podman refuses to switch without a reset.
  say "the user's storage uses '$driver': podman system reset (to overlay)"
  podman_u system reset -f >/dev/null 2>&1 || true
  driver=$(podman_u info --format '{{.Store.GraphDriverName}}' 2>/dev/null || true)
  [ "$driver" = overlay ] || fail "the user's Podman storage is '$driver', not overlay"
fi
phase "user $ct_user (uid $uid) ready"

# ---- cleanup on every exit ----
work=  # the build context (work/src) and the logs and status files beside it
compose_file=
cleanup() {
  local rc=$?
  set +e
  if [ -n "$compose_file" ]; then
    if [ "$rc" != 0 ]; then
      say "--- server log"; podman_u logs "$server" 2>&1 | tail -40
      say "--- dev log"; podman_u logs "$dev" 2>&1 | tail -40
    fi
    # Stopping dev unmounts (localnfs-mount's SIGTERM); its mount lives only in the
    # dev container's mount namespace, so it is gone with the container in any case.
    as_user env LOCALNFS_IMAGE="$image" podman-compose -p "$project" -f "$compose_file" \
      down -v -t 5 >/dev/null 2>&1
    podman_u rm -f -t 0 "$server" "$dev" >/dev/null 2>&1
    for v in project runtime state; do podman_u volume rm -f "${project}_$v" >/dev/null 2>&1; done
    podman_u network rm -f "${project}_default" >/dev/null 2>&1
    left=$(podman_u ps -a --filter "name=^${project}_" --format '{{.Names}}' 2>/dev/null)
    [ -z "$left" ] || { say "cleanup: containers left: $left"; rc=1; }
  fi
  [ -n "$work" ] && rm -rf "$work"
  if [ "${LOCALNFS_CT_KEEP_CACHE:-1}" = 0 ]; then
    # Everything of the user's Podman (it is this test's own user), the build-cache
    # mounts (Buildah keeps them in /var/tmp/buildah-cache) and the base tarball.
    podman_u system reset -f >/dev/null 2>&1
    [ "$(stat -c %U /var/tmp/buildah-cache 2>/dev/null)" = "$ct_user" ] && rm -rf /var/tmp/buildah-cache
    rm -rf "$cache_dir"
  fi
  say "total $(seconds_since "$t_start") s"
  exit "$rc"
}
trap cleanup EXIT
trap 'say "FAILED: line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 1' INT TERM

# ---- base image: debian:bookworm-slim from debootstrap ----
if podman_u image exists "$base_image"; then
  phase "base image $base_image present"
else
  if [ ! -s "$base_tar" ]; then
    install -d -m 0755 "$cache_dir"
    root=$(mktemp -d "$cache_dir/rootfs.XXXXXX")
    say "debootstrap --variant=minbase bookworm (first run; cached in $base_tar)"
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$root.log" 2>&1 ||
      { tail -20 "$root.log"; rm -rf "$root" "$root.log"; fail "debootstrap"; }
    # As the official image has it: the release, its updates and security.
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/debootstrap
    tar -C "$root" -cf "$base_tar.tmp" . && mv "$base_tar.tmp" "$base_tar"
    rm -rf "$root" "$root.log"
    chmod 0644 "$base_tar"
    phase "debootstrap"
  fi
  as_user sh -c "podman import --quiet - $base_image <'$base_tar'" >/dev/null ||
    fail "podman import of $base_tar"
  phase "base image imported as $base_image"
fi

# ---- the image ----
# The build context: a copy of the source tree the user can read (the checkout may be
# in a directory it cannot), without what .dockerignore leaves out.
# (Nothing else goes into it: a file written there would invalidate the COPY layer.)
work=$(mktemp -d /var/tmp/localnfs-ct.XXXXXX)
ctx=$work/src
mkdir "$ctx"
tar -C "$top" --exclude=./.git --exclude='./build' --exclude='./build-*' \
  --exclude=./demo-export --exclude=./debian -cf - . | tar -C "$ctx" -xf -
chown -R "$ct_user:" "$work"
compose_file=$ctx/contrib/container/compose.yaml
build_log=$work/build.log
# --jobs 2: the runtime stage's apt runs while the build stage compiles.
if ! as_user sh -c "podman build --pull=never --jobs 2 -f '$ctx/contrib/container/Containerfile' \
       -t '$image' '$ctx' >'$build_log' 2>&1"; then
  tail -40 "$build_log"
  fail "podman build"
fi
grep -E '^-rwx' "$build_log" | sed 's/^/  built: /' || say "programs: from the layer cache"
# Earlier builds' images are untagged now. Not all of them at once: the build stage's
# images (its apt layer) are untagged too and are the layer cache of the next build.
# What has not been made for a week goes (a week-old apt layer is rebuilt, with updates).
podman_u image prune -f --filter until=168h >/dev/null 2>&1 || true
phase "image $image built ($(podman_u image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"

# ---- compose up ----
export_env=(env LOCALNFS_IMAGE="$image" LOCALNFS_PUBLISH="127.0.0.1:")
# A run killed before its cleanup leaves containers or volumes behind: start afresh.
as_user "${export_env[@]}" podman-compose -p "$project" -f "$compose_file" down -v -t 0 >/dev/null 2>&1 || true
as_user "${export_env[@]}" podman-compose -p "$project" -f "$compose_file" up -d --no-build \
  >"$work/up.log" 2>&1 || { cat "$work/up.log"; fail "podman-compose up"; }
phase "podman-compose up"

deadline=$((SECONDS + 60))
until ready=$(podman_u logs "$server" 2>/dev/null | grep -m1 '^localnfsd: ready'); do
  [ "$(podman_u inspect --format '{{.State.Running}}' "$server" 2>/dev/null)" = true ] ||
    fail "the server container is not running"
  [ $SECONDS -lt $deadline ] || fail "no ready line from the server within 60 s"
  sleep 0.2
done
phase "server: $ready"
stats() { podman_u exec "$dev" cat /mnt/project/.localnfs-stats; }
until stats 2>/dev/null | grep -q '^localio_active 1$'; do
  [ "$(podman_u inspect --format '{{.State.Running}}' "$dev" 2>/dev/null)" = true ] ||
    fail "the dev container exited (its mount with -o localio=on failed)"
  [ $SECONDS -lt $deadline ] || { stats || true; fail "no LOCALIO mount in dev within 60 s"; }
  sleep 0.2
done
phase "dev: mounted with LOCALIO ($(stats | grep '^localio_path ' | cut -d' ' -f2-))"

# ---- I/O in dev ----
size=$((8 * 1024 * 1024))
dev_sum=$(podman_u exec "$dev" sh -c "head -c $size /dev/urandom >/mnt/project/from-dev.bin &&
  sha256sum </mnt/project/from-dev.bin") || fail "write through the mount in dev"
podman_u exec "$server" sh -c "head -c $size /dev/urandom >/srv/project/from-server.bin"
srv_sum=$(podman_u exec "$server" sh -c "sha256sum </srv/project/from-server.bin")
got_sum=$(podman_u exec "$dev" sh -c "sha256sum </mnt/project/from-server.bin") ||
  fail "read through the mount in dev"
[ "$got_sum" = "$srv_sum" ] || fail "from-server.bin read through the mount differs"
phase "dev: wrote and read 8 MiB each way through the mount"

# The file dev wrote, in the export volume on the host (its directory belongs to the
# user's subordinate ids: read it inside the user's namespace).
vol_dir=$(podman_u volume inspect --format '{{.Mountpoint}}' "${project}_project")
vol_sum=$(as_user podman unshare sh -c "sha256sum <'$vol_dir/from-dev.bin'") ||
  fail "from-dev.bin is not in the export volume ($vol_dir)"
[ "$vol_sum" = "$dev_sum" ] || fail "from-dev.bin in the export volume differs from what dev wrote"
say "from-dev.bin is in the export volume $vol_dir, identical"

# ---- the counters: local, not RPC ----
stats_text=$(stats)
echo "$stats_text" | sed 's/^/  dev .localnfs-stats: /' | grep -E 'rpc_|local_|localio_'
count() { echo "$stats_text" | awk -v k="$1" '$1 == k {print $2}'; }
for k in local_writes local_reads local_commits; do
  [ "$(count "$k")" -gt 0 ] 2>/dev/null || fail "$k is not > 0: dev's I/O did not go through LOCALIO"
done
[ "$(count local_write_bytes)" -ge "$size" ] || fail "local_write_bytes < $size"
[ "$(count local_read_bytes)" -ge "$size" ] || fail "local_read_bytes < $size"
for k in rpc_reads rpc_writes; do
  [ "$(count "$k")" = 0 ] || fail "$k = $(count "$k"): dev's data went over RPC"
done
say "dev's reads and writes were local (LOCALIO), none over RPC"

# ---- the server's view: localnfs-ctl in the server container ----
podman_u exec "$server" localnfs-ctl --runtime-dir /run/localnfs status >"$work/status.txt" ||
  fail "localnfs-ctl status in the server container"
sed -n '/^localio:/,$p' "$work/status.txt" | sed 's/^/  server status: /'
podman_u exec "$server" localnfs-ctl --runtime-dir /run/localnfs status --json >"$work/status.json" ||
  fail "localnfs-ctl status --json in the server container"
python3 - "$work/status.json" <<'PY' || fail "localnfs-ctl does not list the dev mount as a LOCALIO client"
import json, sys
doc = json.load(open(sys.argv[1]))
clients = (doc.get("localio") or {}).get("clients") or []
bound = [c for c in clients if c.get("export") == "/srv/project"]
if not bound:
    sys.exit(f"no LOCALIO client bound to /srv/project: {clients}")
c = bound[0]
io = c.get("local_io", {})
if io.get("writes", 0) <= 0 or io.get("reads", 0) <= 0:
    sys.exit(f"the client's counted local I/O is empty: {c}")
print(f"container-test: localnfs-ctl lists client {c['uuid']} uid {c['uid']} from "
      f"{c['domain']}: local {io['reads']} reads, {io['writes']} writes, {io.get('commits')} commits")
PY
phase "checks done"
say "PASSED"
