# tests/support/sanitizer.sh — the sanitizer-report scan of the shell tests (sourced):
# the markers of tests/support/sanitizer.h, which the C++ launchers scan for.
#
#   sanitizer_report FILE...   prints the first line of FILE... that holds a report of
#                              ASan ("ERROR: AddressSanitizer"), LSan ("ERROR:
#                              LeakSanitizer"), UBSan ("runtime error:", "ERROR:
#                              UndefinedBehaviorSanitizer") or TSan ("WARNING:
#                              ThreadSanitizer", "FATAL: ThreadSanitizer") and returns
#                              0; returns 1 when none does (missing files count as empty)
sanitizer_report() {
	local line
	line=$(grep -h -m1 -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' \
		-e 'runtime error:' -e 'ERROR: UndefinedBehaviorSanitizer' \
		-e 'WARNING: ThreadSanitizer' -e 'FATAL: ThreadSanitizer' -- "$@" 2>/dev/null | head -1)
	[ -n "$line" ] || return 1
	printf '%s\n' "$line"
}
