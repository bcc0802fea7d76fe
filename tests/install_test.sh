#!/usr/bin/env bash
# tests/install_test.sh — `meson install` puts exactly the shipped files in their places.
#
#   install_test.sh BUILD_ROOT EXPECTED_PATH...
#
# Installs the (already built) BUILD_ROOT into a temporary DESTDIR and compares the
# files there with EXPECTED_PATH... (absolute paths under the configured prefix, as
# the top meson.build lists them: localnfsd in sbin, localnfs-mount and localnfs-ctl in
# bin, the man pages, the systemd unit). Anything more (a test binary, the benchmarks,
# eio_fs) or less fails the test. Then it checks modes and runs each installed program's
# --help, so an installed binary that cannot start, or prints a sanitizer report
# (tests/support/sanitizer.sh), is caught too.
set -uo pipefail
build=$1
shift
. "$(dirname "$0")/support/sanitizer.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/localnfs-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# --no-rebuild: meson test already built everything; the test must not start ninja.
if ! meson install -C "$build" --no-rebuild --destdir "$tmp" >"$tmp.log" 2>&1; then
  cat "$tmp.log"; rm -f "$tmp.log"
  echo "install_test: meson install failed"
  exit 1
fi
rm -f "$tmp.log"

actual=$(cd "$tmp" && find . \( -type f -o -type l \) | sed 's|^\.||' | sort)
expected=$(printf '%s\n' "$@" | sort)
if [ "$actual" != "$expected" ]; then
  echo "install_test: installed files differ from the expected list (< expected, > installed):"
  diff <(echo "$expected") <(echo "$actual") || true
  exit 1
fi

status=0
for f in "$@"; do
  mode=$(stat -c %a "$tmp$f")
  case $f in
    */bin/*|*/sbin/*) want=755 ;;
    *) want=644 ;;
  esac
  if [ "$mode" != "$want" ]; then
    echo "install_test: $f has mode $mode, want $want"
    status=1
  fi
  case $f in
    */bin/*|*/sbin/*)
      if ! "$tmp$f" --help >/dev/null 2>"$tmp/err"; then
        echo "install_test: $f --help failed:"; cat "$tmp/err"
        status=1
      elif report=$(sanitizer_report "$tmp/err"); then
        echo "install_test: $f --help printed a sanitizer report: $report"; cat "$tmp/err"
        status=1
      fi ;;
  esac
done
rm -f "$tmp/err"

# The unit: `systemd-analyze verify` (no systemd needs to run) must print nothing. It
# checks that ExecStart= is executable and that Documentation= man pages exist, so the
# unit it reads points into the DESTDIR and MANPATH does too.
for f in "$@"; do
  case $f in *.service) ;; *) continue ;; esac
  if ! command -v systemd-analyze >/dev/null; then
    echo "install_test: systemd-analyze not found: $f not verified"
    continue
  fi
  mkdir -p "$tmp/verify"
  unit="$tmp/verify/$(basename "$f")"
  sed -E "s#^(ExecStart=)([^ ]*)#\1$tmp\2#" "$tmp$f" >"$unit"
  manpath=$(printf '%s\n' "$@" | sed -nE 's#(.*/man)/man[0-9]/[^/]*$#\1#p' | sort -u | sed "s#^#$tmp#" | paste -sd:)
  out=$(MANPATH=$manpath systemd-analyze verify "$unit" 2>&1)
  rc=$?
  if [ $rc != 0 ] || [ -n "$out" ]; then
    echo "install_test: systemd-analyze verify $f (exit $rc):"; echo "$out"
    status=1
  else
    echo "install_test: systemd-analyze verify $f: clean"
  fi
done
[ $status = 0 ] && echo "install_test: $# files installed as expected:" && printf '  %s\n' "$@"
exit $status
