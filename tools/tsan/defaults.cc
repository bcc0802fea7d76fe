// tools/tsan/defaults.cc — the tsan build's default ThreadSanitizer options, linked
// into every executable (tools/tsan/meson.build; only with -Db_sanitize=thread). They
// hold for processes started with a cleared environment too (tests that run localnfsd
// or the FUSE mount through `env -i`). TSAN_OPTIONS in the environment is applied after them,
// so it overrides any of them (e.g. TSAN_OPTIONS=halt_on_error=0 to see every report).
//
//   halt_on_error=1         the first report ends the process (exit code 66), so no race
//                           can pass unnoticed in a process whose exit status is checked
//   second_deadlock_stack=1 lock-order reports show both acquisition stacks
//
// Weak: the definition may reach one executable through several libraries.
extern "C" __attribute__((weak, visibility("default"))) const char* __tsan_default_options() {
  return "halt_on_error=1:second_deadlock_stack=1";
}
