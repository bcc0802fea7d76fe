#!/usr/bin/env bash
# install-deps.sh — install (as root, from Debian 12's archive) whatever localnfs needs
# to build, test, package (tools/package-test.sh) and run its kernel-client tests.
# Idempotent: installs nothing when everything is there, so it needs no network then.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

pkgs=(build-essential g++ meson ninja-build pkg-config rpcsvc-proto libtirpc-dev
      liburcu-dev libabsl-dev libgtest-dev libgmock-dev libssl-dev libfuse3-dev fuse3
      libnfs-dev libnfs-utils python3
      scdoc groff-base    # the man pages (docs/man): scdoc builds them, groff renders them in the test
      libsystemd-dev      # sd_notify for localnfsd.service (Type=notify)
      libmicrohttpd-dev   # localnfsd --metrics (the Prometheus endpoint, server/metrics_http.h)
      python3-prometheus-client  # tests/metrics_test: parses /metrics with Prometheus's own parser
      nlohmann-json3-dev  # JSON log lines (--log-format json) and localnfs-ctl status --json
      clang libclang-rt-dev  # tools/build.sh tsa (-Wthread-safety), tools/fuzz.sh (libFuzzer)
      dpkg-dev debhelper lintian    # the Debian package (debian/, tools/package-test.sh)
      # tools/container-test.sh: contrib/container/ run by rootless Podman — podman-compose,
      # newuidmap/newgidmap (uidmap), runc (crun refuses hybrid cgroup layouts), the
      # rootless network (slirp4netns, netavark + aardvark-dns for the compose network
      # and its service names, iptables: netavark's firewall driver, "netavark: No such
      # file or directory" without it), fuse-overlayfs (rootless storage on older
      # kernels), debootstrap (the base image: there may be no registry)
      podman podman-compose uidmap runc slirp4netns netavark aardvark-dns iptables
      fuse-overlayfs debootstrap)
# The benchmarks (tools/bench-all): fio for the FUSE mount, NFS-Ganesha to compare with.
if [ "${LOCALNFS_BENCH_DEPS:-0}" = 1 ]; then
  pkgs+=(fio nfs-ganesha nfs-ganesha-vfs)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 2
  fi
  echo "install-deps: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The real Linux NFS client in qemu (shared/kclient) for the kernel-client tests.
kclient_deps="$here/../../shared/kclient/install-deps.sh"
if [ "${LOCALNFS_SKIP_KCLIENT_DEPS:-0}" != 1 ] && [ -x "$kclient_deps" ] && [ "$(id -u)" = 0 ]; then
  "$kclient_deps"
fi
