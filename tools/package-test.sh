#!/usr/bin/env bash
# package-test.sh — build the Debian package and check it (Debian 12, as root).
#
#   tools/package-test.sh            build, list, lintian, install + purge
#   LOCALNFS_PACKAGE_INSTALL=0 ...   no install/purge cycle on this machine
#
# 1. Copies the tree (git's tracked and untracked-but-not-ignored files) to a
#    temporary directory and runs `dpkg-buildpackage -us -uc -b` there, so the work
#    tree gets no debian/.debhelper, obj-* or ../*.deb. ccache (if installed) keeps
#    its cache across runs (CCACHE_DIR; debhelper moves HOME).
# 2. `dpkg-deb -c`: the package holds exactly the expected files.
# 3. lintian on the .changes: prints every tag; an error (E:) fails the test.
# 4. As root, when the package is not installed already: `dpkg -i` it on this machine
#    (no chroot; without systemd as PID 1 the unit is enabled but not started), check
#    the programs run from /usr and the unit is enabled, create the state the service
#    would (/var/lib/localnfs/handle.key), then `dpkg --purge` and check that nothing
#    of the package, its state or its enablement is left.
# Ends with "package-test: ok (N s)" or the first failure (exit 1); exit 2 when the
# build tools are missing (tools/install-deps.sh installs them).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
start=$(date +%s)
fail() { echo "package-test: FAIL: $*" >&2; exit 1; }

for tool in dpkg-buildpackage dh lintian; do
  command -v "$tool" >/dev/null ||
    { echo "package-test: $tool missing (tools/install-deps.sh installs it)" >&2; exit 2; }
done
missing=$(cd "$here" && dpkg-checkbuilddeps 2>&1) ||
  { echo "package-test: $missing" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/localnfs-package.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
mkdir "$work/localnfs"
(cd "$here" && git ls-files -z --cached --others --exclude-standard |
   xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' |
   tar --null -T - -cf -) | tar -C "$work/localnfs" -xf -

# 1. Build.
export CCACHE_DIR=${CCACHE_DIR:-${HOME:-/root}/.cache/ccache}
t0=$(date +%s)
if ! (cd "$work/localnfs" &&
      DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
      dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
  tail -60 "$work/build.log"
  fail "dpkg-buildpackage failed (log above)"
fi
echo "package-test: dpkg-buildpackage -us -uc -b: $(( $(date +%s) - t0 )) s"
deb=$(ls "$work"/localnfs_*.deb)
changes=$(ls "$work"/localnfs_*.changes)

# 2. Contents: exactly these files (directories aside).
expected="./lib/systemd/system/localnfsd.service
./usr/bin/localnfs-ctl
./usr/bin/localnfs-mount
./usr/sbin/localnfsd
./usr/share/doc/localnfs/changelog.gz
./usr/share/doc/localnfs/copyright
./usr/share/doc/localnfs/examples/exports.example
./usr/share/man/man5/localnfs-exports.5.gz
./usr/share/man/man8/localnfs-ctl.8.gz
./usr/share/man/man8/localnfs-mount.8.gz
./usr/share/man/man8/localnfsd.8.gz"
dpkg-deb -c "$deb" >"$work/contents"
actual=$(awk '$1 !~ /^d/ {print $6}' "$work/contents" | sort)
if [ "$actual" != "$expected" ]; then
  diff <(echo "$expected") <(echo "$actual") || true
  fail "$(basename "$deb") holds other files than expected (< expected, > in the package)"
fi
echo "package-test: $(basename "$deb"): $(echo "$actual" | wc -l) files as expected"
dpkg-deb -I "$deb" | sed -n '/Package:/,$p' | grep -E '^ (Package|Version|Depends|Recommends|Installed-Size):'

# 3. lintian.
lintian --display-info "$changes" >"$work/lintian" 2>&1 || true
if [ -s "$work/lintian" ]; then
  echo "package-test: lintian:"; sed 's/^/  /' "$work/lintian"
else
  echo "package-test: lintian: no tags"
fi
grep -q '^E: ' "$work/lintian" && fail "lintian reports errors"

# 4. Install and purge on this machine.
if [ "${LOCALNFS_PACKAGE_INSTALL:-1}" = 1 ] && [ "$(id -u)" = 0 ]; then
  if dpkg-query -W -f='${Status}' localnfs 2>/dev/null | grep -q "installed"; then
    echo "package-test: localnfs is installed on this machine: install/purge cycle skipped"
  else
    dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
    /usr/sbin/localnfsd --help >/dev/null || fail "installed localnfsd --help"
    /usr/bin/localnfs-ctl --help >/dev/null || fail "installed localnfs-ctl --help"
    /usr/bin/localnfs-mount --help >/dev/null || fail "installed localnfs-mount --help"
    man -w localnfsd localnfs-exports >/dev/null || fail "man pages not found by man"
    [ -L /etc/systemd/system/multi-user.target.wants/localnfsd.service ] ||
      fail "localnfsd.service is not enabled after install"
    # What the running service would create (StateDirectory=).
    install -d -m 0700 /var/lib/localnfs
    head -c 32 /dev/urandom >/var/lib/localnfs/handle.key
    dpkg --purge localnfs >>"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg --purge"; }
    left=()
    for p in /usr/sbin/localnfsd /usr/bin/localnfs-mount /usr/bin/localnfs-ctl \
             /lib/systemd/system/localnfsd.service /usr/share/doc/localnfs /var/lib/localnfs \
             /etc/systemd/system/multi-user.target.wants/localnfsd.service \
             /var/lib/systemd/deb-systemd-helper-enabled/localnfsd.service.dsh-also \
             /var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/localnfsd.service; do
      [ -e "$p" ] || [ -L "$p" ] && left+=("$p")
    done
    dpkg-query -W localnfs >/dev/null 2>&1 && left+=("dpkg still knows localnfs")
    [ ${#left[@]} -eq 0 ] || fail "left after purge: ${left[*]}"
    echo "package-test: dpkg -i, programs and man pages from /usr, unit enabled; dpkg --purge left nothing"
  fi
fi
echo "package-test: ok ($(( $(date +%s) - start )) s)"
