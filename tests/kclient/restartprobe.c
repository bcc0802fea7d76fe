// tests/kclient/restartprobe.c — the guest and host halves of kclient_v4restart_test.sh,
// built static on the host (gcc -static) and run in the guest through the export and on
// the host. Single-threaded; every wait polls a file with a deadline (no blind sleeps).
//
//   restartprobe guest DIR NAME [lost]
//       in the guest, one round: opens DIR/NAME, writes PART1 bytes, fsyncs, takes a
//       POSIX write lock on [0, 100), writes PART2 more bytes (left in the page cache: they
//       cross the restart unflushed), then creates DIR/NAME.locked. Waits until
//       DIR/NAME.ctl reads "restarted" (the host restarted localnfsd), writes PART3 more
//       bytes through the same fd, fsyncs, creates DIR/NAME.written. Waits until the ctl
//       reads "unlock", unlocks, writes PART4 more bytes, fsyncs, closes, creates
//       DIR/NAME.done. Every byte is gen()'s; a failed write or fsync exits 1 with errno.
//       With "lost" the lock is expected to be lost in the restart (--grace 0 and the
//       client's default nfs.recover_lost_locks=N): the fsync after the restart must
//       fail with EIO (the client refuses I/O under a lost lock); the round then writes
//       "eio" into DIR/NAME.written and goes on as above (unlock and close errors ignored,
//       no PART4).
//   restartprobe gen NAME     on the host: the whole content the guest round writes.
//   restartprobe ofd FILE     on the host: F_OFD_SETLK write on [0, 100); prints
//       "refused" (exit 0) when another lock holds it, "granted" (exit 0, unlocked again)
//       when free, exit 1 on any other error.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { kPart1 = 1 << 20, kPart2 = 256 << 10, kPart3 = 768 << 10, kPart4 = 64 << 10 };
enum { kTotal = kPart1 + kPart2 + kPart3 + kPart4 };

// The byte at `off` of round NAME: a hash of both, so a misplaced or stale block shows.
static unsigned char Gen(const char* name, uint64_t off) {
  uint64_t h = 1469598103934665603ull;
  for (const char* p = name; *p != '\0'; ++p) h = (h ^ (unsigned char)*p) * 1099511628211ull;
  uint64_t x = (off / 8 + 1) * 0x9E3779B97F4A7C15ull ^ h;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 32;
  return (unsigned char)(x >> (8 * (off % 8)));
}

static int WriteGen(int fd, const char* name, uint64_t off, uint64_t len) {
  static unsigned char buf[65536];
  while (len > 0) {
    size_t n = len < sizeof(buf) ? len : sizeof(buf);
    for (size_t i = 0; i < n; ++i) buf[i] = Gen(name, off + i);
    ssize_t w = pwrite(fd, buf, n, off);
    if (w != (ssize_t)n) {
      fprintf(stderr, "restartprobe: pwrite at %llu: %s\n", (unsigned long long)off,
              w < 0 ? strerror(errno) : "short");
      return -1;
    }
    off += n;
    len -= n;
  }
  return 0;
}

static int Lock(int fd, int cmd, short type) {
  struct flock fl;
  memset(&fl, 0, sizeof(fl));
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 100;
  return fcntl(fd, cmd, &fl);
}

static double Now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// A marker file the host polls for: created, written, fsync'd, closed.
static int Mark(const char* dir, const char* name, const char* suffix, const char* text) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s.%s", dir, name, suffix);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, text, strlen(text)) < 0 || fsync(fd) != 0 || close(fd) != 0) {
    fprintf(stderr, "restartprobe: marker %s: %s\n", path, strerror(errno));
    return -1;
  }
  printf("KCLIENT-RESTART-MARK %s.%s\n", name, suffix);
  fflush(stdout);
  return 0;
}

// Waits (120 s at most) until DIR/NAME.ctl starts with `word`. Each poll opens the file
// afresh (close-to-open: a new GETATTR, so the host's change is seen) and reads with
// O_DIRECT (no cached page).
static int WaitCtl(const char* dir, const char* name, const char* word) {
  char path[4096], buf[64];
  snprintf(path, sizeof(path), "%s/%s.ctl", dir, name);
  const double start = Now();
  while (Now() - start < 120) {
    int fd = open(path, O_RDONLY | O_DIRECT);
    if (fd >= 0) {
      ssize_t n = read(fd, buf, sizeof(buf) - 1);
      close(fd);
      if (n > 0) {
        buf[n] = '\0';
        if (strncmp(buf, word, strlen(word)) == 0) {
          printf("KCLIENT-RESTART-CTL %s %s after %.1f s\n", name, word, Now() - start);
          fflush(stdout);
          return 0;
        }
      }
    }
    usleep(100 * 1000);
  }
  fprintf(stderr, "restartprobe: %s never read '%s'\n", path, word);
  return -1;
}

static int Guest(const char* dir, const char* name, int lost) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return perror("open"), 1;
  uint64_t off = 0;
  if (WriteGen(fd, name, off, kPart1) != 0) return 1;
  off += kPart1;
  if (fsync(fd) != 0) return perror("fsync 1"), 1;
  if (Lock(fd, F_SETLK, F_WRLCK) != 0) return perror("F_SETLK"), 1;
  if (WriteGen(fd, name, off, kPart2) != 0) return 1;
  off += kPart2;
  if (Mark(dir, name, "locked", "locked") != 0) return 1;
  if (WaitCtl(dir, name, "restarted") != 0) return 1;
  const double t0 = Now();
  if (WriteGen(fd, name, off, kPart3) != 0) return 1;
  off += kPart3;
  if (lost) {
    if (fsync(fd) == 0) {
      fprintf(stderr, "restartprobe: the fsync after losing the lock succeeded\n");
      return 1;
    }
    if (errno != EIO) return perror("fsync after the restart (expected EIO)"), 1;
    printf("KCLIENT-RESTART-FSYNC %s EIO %.1f s after the ctl (lock lost)\n", name, Now() - t0);
    fflush(stdout);
    if (Mark(dir, name, "written", "eio") != 0) return 1;
    if (WaitCtl(dir, name, "unlock") != 0) return 1;
    Lock(fd, F_SETLK, F_UNLCK);
    close(fd);
    return Mark(dir, name, "done", "done") == 0 ? 0 : 1;
  }
  if (fsync(fd) != 0) return perror("fsync after the restart"), 1;
  printf("KCLIENT-RESTART-FSYNC %s %.1f s after the ctl\n", name, Now() - t0);
  fflush(stdout);
  if (Mark(dir, name, "written", "written") != 0) return 1;
  if (WaitCtl(dir, name, "unlock") != 0) return 1;
  if (Lock(fd, F_SETLK, F_UNLCK) != 0) return perror("unlock"), 1;
  if (WriteGen(fd, name, off, kPart4) != 0) return 1;
  if (fsync(fd) != 0) return perror("fsync 3"), 1;
  if (close(fd) != 0) return perror("close"), 1;
  return Mark(dir, name, "done", "done") == 0 ? 0 : 1;
}

static int GenAll(const char* name) {
  static unsigned char buf[65536];
  for (uint64_t off = 0; off < kTotal; off += sizeof(buf)) {
    size_t n = kTotal - off < sizeof(buf) ? kTotal - off : sizeof(buf);
    for (size_t i = 0; i < n; ++i) buf[i] = Gen(name, off + i);
    if (fwrite(buf, 1, n, stdout) != n) return 1;
  }
  return fflush(stdout) == 0 ? 0 : 1;
}

static int Ofd(const char* path) {
  int fd = open(path, O_RDWR);
  if (fd < 0) return perror("open"), 1;
  if (Lock(fd, F_OFD_SETLK, F_WRLCK) == 0) {
    Lock(fd, F_OFD_SETLK, F_UNLCK);
    printf("granted\n");
    return 0;
  }
  if (errno != EAGAIN && errno != EACCES) return perror("F_OFD_SETLK"), 1;
  printf("refused\n");
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "guest") == 0) return Guest(argv[2], argv[3], 0);
  if (argc == 5 && strcmp(argv[1], "guest") == 0 && strcmp(argv[4], "lost") == 0) {
    return Guest(argv[2], argv[3], 1);
  }
  if (argc == 3 && strcmp(argv[1], "gen") == 0) return GenAll(argv[2]);
  if (argc == 3 && strcmp(argv[1], "ofd") == 0) return Ofd(argv[2]);
  fprintf(stderr, "usage: restartprobe guest DIR NAME [lost] | gen NAME | ofd FILE\n");
  return 2;
}
