#!/usr/bin/env bash
# tests/man_test.sh — the man pages render without a warning and document every flag.
#
#   man_test.sh SOURCE_ROOT LOCALNFSD LOCALNFS_MOUNT LOCALNFS_CTL PAGE...
#
# PAGE... are the roff pages docs/man/meson.build generated (localnfsd.8, ...).
#  1. Each page is rendered with `groff -man -ww -z` (every warning on): any output
#     on stderr fails the test.
#  2. Each page, rendered to plain text, names as a word every flag that its program
#     knows, taken from the programs themselves so a page cannot fall behind:
#       localnfsd(8)        the --flags `localnfsd --help` lists, and every ABSL_FLAG
#                           of server/main.cc (--help is written by hand);
#       localnfs-mount(8)   the --flags and -o options of `localnfs-mount --help`;
#       localnfs-ctl(8)     the --flags and commands of `localnfs-ctl --help`;
#       localnfs-exports(5) every option export_cache/exports_parser.cc accepts
#                           (its `name == "..."` comparisons).
#  3. The programs' stderr while they print --help holds no sanitizer report
#     (tests/support/sanitizer.sh).
set -uo pipefail
src=$1 localnfsd=$2 mount=$3 ctl=$4
shift 4
status=0
declare -A text
. "$(dirname "$0")/support/sanitizer.sh"
errs=$(mktemp "${TMPDIR:-/tmp}/localnfs-man-test.XXXXXX")
trap 'rm -f "$errs"' EXIT

for page in "$@"; do
  name=$(basename "$page")
  warnings=$(groff -man -ww -z "$page" 2>&1 >/dev/null)
  if [ -n "$warnings" ]; then
    echo "man_test: $name: groff warnings:"
    echo "$warnings"
    status=1
  fi
  # Plain text: no overstrike (-c -b -u -o); scdoc turns hyphenation off (.nh).
  text[$name]=$(groff -man -Tascii -P-cbou "$page" 2>/dev/null)
done

# check PAGE WHAT WORD...: each WORD appears in PAGE's text, not as part of a longer name.
check() {
  local page=$1 what=$2
  shift 2
  if [ -z "${text[$page]:-}" ]; then
    echo "man_test: $page was not given"; status=1; return
  fi
  local missing=() w
  for w in "$@"; do
    grep -qE -- "(^|[^A-Za-z0-9_-])${w}([^A-Za-z0-9_-]|$)" <<<"${text[$page]}" || missing+=("$w")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "man_test: $page does not document these $what: ${missing[*]}"
    status=1
  else
    echo "man_test: $page documents all $# $what"
  fi
}

flags_of_help() { grep -oE -- '--[a-z][a-z0-9-]*[a-z0-9]' | sort -u; }

# localnfsd: --help, and the ABSL_FLAGs of main.cc (their names with '_' → '-').
mapfile -t f1 < <("$localnfsd" --help 2>>"$errs" | flags_of_help)
mapfile -t f2 < <(grep -ozE 'ABSL_FLAG\([^,]+,[[:space:]]*[a-z_0-9]+' "$src/server/main.cc" |
                    tr '\0' '\n' | sed -E 's/.*,[[:space:]]*//' | tr _ - | sed 's/^/--/')
[ ${#f2[@]} -ge 10 ] || { echo "man_test: found only ${#f2[@]} ABSL_FLAGs in main.cc"; status=1; }
mapfile -t f < <(printf '%s\n' "${f1[@]}" "${f2[@]}" | sort -u)
check localnfsd.8 "localnfsd flags" "${f[@]}"

# localnfs-mount: its --flags and the names of its -o options.
help=$("$mount" --help 2>>"$errs")
mapfile -t f < <({ flags_of_help <<<"$help"; grep -oE -- '-o [a-z_]+' <<<"$help" | cut -c4-; } | sort -u)
check localnfs-mount.8 "localnfs-mount options" "${f[@]}" -f -d

# localnfs-ctl: its --flags and its commands (the words of the usage line after the flags).
help=$("$ctl" --help 2>>"$errs")
mapfile -t f < <({ flags_of_help <<<"$help"; head -1 <<<"$help" | grep -oE ' [a-z]+( |$)' | tr -d ' '; } | sort -u)
check localnfs-ctl.8 "localnfs-ctl flags and commands" "${f[@]}"

# localnfs-exports: every option name the parser compares against.
mapfile -t f < <(grep -oE 'name == "[a-z_]+"' "$src/export_cache/exports_parser.cc" |
                   sed -E 's/.*"(.*)"/\1/' | sort -u)
[ ${#f[@]} -ge 15 ] || { echo "man_test: found only ${#f[@]} options in exports_parser.cc"; status=1; }
check localnfs-exports.5 "export options" "${f[@]}"

if report=$(sanitizer_report "$errs"); then
  echo "man_test: sanitizer report from a program's --help: $report"
  cat "$errs"
  status=1
fi

exit $status
