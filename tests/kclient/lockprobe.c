// tests/kclient/lockprobe.c — byte-range lock checks of kclient_v4io_test.sh, built
// static by the test on the host (gcc -static) and run in the guest (through the
// export) and on the host. Every wait is for an event (a pipe, a lock grant, stdin),
// with a deadline; the only timed wait is how long a blocked F_SETLKW must stay blocked.
//
//   lockprobe contend FILE [FILE_B]
//                            in the guest: process A takes a write lock on [0, 100) of
//                            FILE; process B's F_SETLK on [50, 60) of FILE_B (the same
//                            file through a second mount with nosharecache: another
//                            superblock, so that the guest's VFS cannot see A's lock and
//                            the server must refuse B; default FILE) fails
//                            (EAGAIN/EACCES); B's F_SETLKW stays blocked while A holds
//                            the lock and is granted once A unlocks (the client polls
//                            the server). Exit 0 when all of that held.
//   lockprobe hold FILE      on the host: an OFD write lock on [0, 100); prints
//                            "locked", then holds it until stdin ends.
//   lockprobe refused FILE   in the guest: F_SETLK write on [10, 20) fails
//                            (EAGAIN/EACCES) and F_GETLK names a write lock. Exit 0 then.
//   lockprobe free FILE      F_SETLK write on [10, 20) is granted. Exit 0 then.
//   lockprobe ofdrefused FILE
//                            on the host: F_OFD_SETLK write on [10, 20) fails (EAGAIN):
//                            localnfsd's OFD lock for some client's NFSv4 lock holds it
//                            (kclient_v4vanish_test.sh). Exit 0 then.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int Lock(int fd, int cmd, short type, off_t start, off_t len) {
  struct flock fl;
  memset(&fl, 0, sizeof(fl));
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = len;
  return fcntl(fd, cmd, &fl);
}

static double Now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// Waits up to `ms` for a byte on `fd`; 1 read, 0 timeout, -1 error/EOF.
static int WaitByte(int fd, int ms, char* c) {
  struct pollfd p = {fd, POLLIN, 0};
  int r = poll(&p, 1, ms);
  if (r <= 0) return r;
  return read(fd, c, 1) == 1 ? 1 : -1;
}

static int Contend(const char* path, const char* path_b) {
  int a = open(path, O_RDWR);
  if (a < 0) return perror("open A"), 1;
  if (Lock(a, F_SETLK, F_WRLCK, 0, 100) != 0) return perror("A: F_SETLK"), 1;
  int to_parent[2];
  if (pipe(to_parent) != 0) return perror("pipe"), 1;
  pid_t b = fork();
  if (b < 0) return perror("fork"), 1;
  if (b == 0) {
    close(to_parent[0]);
    int fd = open(path_b, O_RDWR);
    if (fd < 0) _exit(10);
    if (Lock(fd, F_SETLK, F_WRLCK, 50, 10) == 0) _exit(11);  // must be refused
    if (errno != EAGAIN && errno != EACCES) _exit(12);
    if (write(to_parent[1], "r", 1) != 1) _exit(13);  // refused; now blocking
    if (Lock(fd, F_SETLKW, F_WRLCK, 50, 10) != 0) _exit(14);
    if (write(to_parent[1], "g", 1) != 1) _exit(15);  // granted
    _exit(0);
  }
  close(to_parent[1]);
  char c;
  if (WaitByte(to_parent[0], 60000, &c) != 1 || c != 'r') {
    fprintf(stderr, "B's F_SETLK was not refused\n");
    return 1;
  }
  // B now waits in F_SETLKW: it must not be granted while A holds the lock.
  int r = WaitByte(to_parent[0], 1500, &c);
  if (r != 0) {
    fprintf(stderr, "B was granted (or died) while A held the lock\n");
    return 1;
  }
  const double unlocked = Now();
  if (Lock(a, F_SETLK, F_UNLCK, 0, 100) != 0) return perror("A: unlock"), 1;
  if (WaitByte(to_parent[0], 90000, &c) != 1 || c != 'g') {
    fprintf(stderr, "B was not granted after A unlocked\n");
    return 1;
  }
  printf("B granted %.1f s after A unlocked\n", Now() - unlocked);
  int st = 0;
  waitpid(b, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "B exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 1;
  }
  close(a);
  return 0;
}

static int Hold(const char* path) {
  int fd = open(path, O_RDWR);
  if (fd < 0) return perror("open"), 1;
  if (Lock(fd, F_OFD_SETLK, F_WRLCK, 0, 100) != 0) return perror("F_OFD_SETLK"), 1;
  printf("locked\n");
  fflush(stdout);
  char buf[64];
  while (read(0, buf, sizeof(buf)) > 0) {
  }
  return 0;
}

static int Refused(const char* path) {
  int fd = open(path, O_RDWR);
  if (fd < 0) return perror("open"), 1;
  if (Lock(fd, F_SETLK, F_WRLCK, 10, 10) == 0) {
    fprintf(stderr, "F_SETLK was granted\n");
    return 1;
  }
  if (errno != EAGAIN && errno != EACCES) return perror("F_SETLK"), 1;
  struct flock fl;
  memset(&fl, 0, sizeof(fl));
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 10;
  fl.l_len = 10;
  if (fcntl(fd, F_GETLK, &fl) != 0) return perror("F_GETLK"), 1;
  if (fl.l_type != F_WRLCK) {
    fprintf(stderr, "F_GETLK found no write lock (type %d)\n", fl.l_type);
    return 1;
  }
  return 0;
}

static int Free(const char* path) {
  int fd = open(path, O_RDWR);
  if (fd < 0) return perror("open"), 1;
  if (Lock(fd, F_SETLK, F_WRLCK, 10, 10) != 0) return perror("F_SETLK"), 1;
  return 0;
}

static int OfdRefused(const char* path) {
  int fd = open(path, O_RDWR);
  if (fd < 0) return perror("open"), 1;
  if (Lock(fd, F_OFD_SETLK, F_WRLCK, 10, 10) == 0) {
    fprintf(stderr, "F_OFD_SETLK was granted\n");
    return 1;
  }
  if (errno != EAGAIN && errno != EACCES) return perror("F_OFD_SETLK"), 1;
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "contend") == 0) return Contend(argv[2], argv[3]);
  if (argc != 3) {
    fprintf(stderr, "usage: lockprobe contend|hold|refused|free|ofdrefused FILE\n");
    return 2;
  }
  if (strcmp(argv[1], "contend") == 0) return Contend(argv[2], argv[2]);
  if (strcmp(argv[1], "hold") == 0) return Hold(argv[2]);
  if (strcmp(argv[1], "refused") == 0) return Refused(argv[2]);
  if (strcmp(argv[1], "free") == 0) return Free(argv[2]);
  if (strcmp(argv[1], "ofdrefused") == 0) return OfdRefused(argv[2]);
  fprintf(stderr, "unknown mode %s\n", argv[1]);
  return 2;
}
