// tests/support/fake_localnfsd.cc — stands in for localnfsd in the tests of the test-support
// library (support_test.cc, sanitizer_test.sh): prints the ready line and a sanitizer
// report of the kind asked for, when asked, and ends as a server does.
//
//   fake_localnfsd --report asan|lsan|ubsan|tsan|none --when before-ready|serving|exit
//                  [any other arguments: ignored, as the launcher adds its flags]
//
// Its first stderr line lists its arguments ("fake_localnfsd: --report ...").
//   before-ready  the report, then exit 1 without a ready line (a failed start)
//   serving       the ready line, the report, then wait for SIGTERM and exit 0
//   exit          the ready line, the report, then exit 0 at once
// The reports are the first lines of real ones (the markers are what the scan looks for).
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <string>

namespace {

void PrintReport(const std::string& kind) {
  const int pid = getpid();
  if (kind == "asan") {
    fprintf(stderr,
            "=================================================================\n"
            "==%d==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000010 "
            "at pc 0x55d0c0de bp 0x7ffc0de sp 0x7ffc0d0\n"
            "READ of size 4 at 0x602000000010 thread T3\n",
            pid);
  } else if (kind == "lsan") {
    fprintf(stderr,
            "\n=================================================================\n"
            "==%d==ERROR: LeakSanitizer: detected memory leaks\n\n"
            "Direct leak of 16 byte(s) in 1 object(s) allocated from:\n",
            pid);
  } else if (kind == "ubsan") {
    fprintf(stderr,
            "server/nfs3/nfs3proc.cc:123:45: runtime error: signed integer overflow: 2147483647 + 1 "
            "cannot be represented in type 'int'\n");
  } else if (kind == "tsan") {
    fprintf(stderr,
            "==================\n"
            "WARNING: ThreadSanitizer: data race (pid=%d)\n"
            "  Write of size 8 at 0x7b0400000010 by thread T2:\n",
            pid);
  }
  fflush(stderr);
}

}  // namespace

int main(int argc, char** argv) {
  std::string report = "none", when = "serving";
  for (int i = 1; i + 1 < argc; ++i) {
    if (strcmp(argv[i], "--report") == 0) report = argv[i + 1];
    if (strcmp(argv[i], "--when") == 0) when = argv[i + 1];
  }
  // The arguments, so that a test can see what the launcher passed.
  fprintf(stderr, "fake_localnfsd:");
  for (int i = 1; i < argc; ++i) fprintf(stderr, " %s", argv[i]);
  fprintf(stderr, "\n");
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_BLOCK, &term, nullptr);
  if (when == "before-ready") {
    PrintReport(report);
    return 1;
  }
  printf("localnfsd: ready nfs=1 mount=2\n");
  fflush(stdout);
  PrintReport(report);
  if (when == "exit") return 0;
  int sig = 0;
  sigwait(&term, &sig);
  return 0;
}
