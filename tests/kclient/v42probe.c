// tests/kclient/v42probe.c — run in the kernel-client guest (static, copied in through
// the export) by workload-v42.sh: the NFSv4.2 content ops through the Linux client's
// system calls. `v42probe DIR` makes DIR/sparse (4 KiB of data, then a hole to 1 MiB)
// and checks lseek SEEK_DATA/SEEK_HOLE (SEEK), fallocate (ALLOCATE), a punched hole
// (DEALLOCATE), copy_file_range (COPY, also of 9 MiB: short copies of at most 4 MiB
// that the caller continues) and FICLONE (CLONE: done or EOPNOTSUPP), each result read
// back. Prints "v42probe: ok" and exits 0, or says what failed and exits 1.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static int failed;
#define CHECK(cond, ...)                        \
  do {                                          \
    if (!(cond)) {                              \
      fprintf(stderr, "v42probe: FAIL: ");      \
      fprintf(stderr, __VA_ARGS__);             \
      fprintf(stderr, " (errno %d)\n", errno);  \
      failed = 1;                               \
    }                                           \
  } while (0)

static char buf[1 << 20];

static int readall(int fd, char* out, size_t n, off_t at) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, out + got, n - got, at + (off_t)got);
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  char path[4096], copy[4096], clone[4096], big_src[4096], big_copy[4096];
  snprintf(path, sizeof path, "%s/sparse", argv[1]);
  snprintf(big_src, sizeof big_src, "%s/big", argv[1]);
  snprintf(big_copy, sizeof big_copy, "%s/big-copy", argv[1]);
  snprintf(copy, sizeof copy, "%s/copy", argv[1]);
  snprintf(clone, sizeof clone, "%s/clone", argv[1]);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return perror("open"), 1;
  memset(buf, 'x', 4096);
  CHECK(pwrite(fd, buf, 4096, 0) == 4096, "pwrite");
  CHECK(fsync(fd) == 0, "fsync");
  CHECK(ftruncate(fd, 1 << 20) == 0, "ftruncate up");

  // SEEK: data at 0, the hole after the first block (where the server's fs has holes),
  // no data after it (ENXIO), nothing at the end (ENXIO).
  CHECK(lseek(fd, 0, SEEK_DATA) == 0, "SEEK_DATA 0");
  off_t hole = lseek(fd, 0, SEEK_HOLE);
  CHECK(hole == 4096 || hole == (1 << 20), "SEEK_HOLE 0 = %lld", (long long)hole);
  if (hole == 4096) {
    errno = 0;
    CHECK(lseek(fd, 8192, SEEK_DATA) == -1 && errno == ENXIO, "SEEK_DATA in the tail hole");
  }
  errno = 0;
  CHECK(lseek(fd, 1 << 20, SEEK_DATA) == -1 && errno == ENXIO, "SEEK_DATA at the end");

  // ALLOCATE grows the file; DEALLOCATE punches a hole that reads as zeros.
  CHECK(fallocate(fd, 0, 0, 2 << 20) == 0, "fallocate");
  struct stat st;
  CHECK(fstat(fd, &st) == 0 && st.st_size == (2 << 20), "size after fallocate");
  CHECK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 2048) == 0, "punch");
  CHECK(readall(fd, buf, 4096, 0) == 0, "read back");
  for (int i = 0; i < 4096; ++i) {
    const char want = i < 2048 ? 0 : 'x';
    if (buf[i] != want) {
      CHECK(0, "byte %d after the punch is %d", i, buf[i]);
      break;
    }
  }

  // COPY: copy_file_range of the whole file into another, read back.
  int out = open(copy, O_RDWR | O_CREAT | O_TRUNC, 0644);
  CHECK(out >= 0, "open copy");
  loff_t in_at = 0, out_at = 0;
  ssize_t copied = 0, n;
  while ((n = copy_file_range(fd, &in_at, out, &out_at, (size_t)(2 << 20) - copied, 0)) > 0)
    copied += n;
  CHECK(copied == (2 << 20), "copy_file_range copied %lld", (long long)copied);
  static char again[4096];
  CHECK(readall(out, again, 4096, 0) == 0 && memcmp(buf, again, 4096) == 0, "copy's bytes");
  CHECK(fstat(out, &st) == 0 && st.st_size == (2 << 20), "copy's size");

  // A COPY copies at most 4 MiB (knfsd's limit, so that no server thread is held for a
  // huge file): a 9 MiB copy_file_range comes back short and the loop goes on from there.
  static char mark[4096];
  memset(mark, 'm', sizeof mark);
  int src9 = open(big_src, O_RDWR | O_CREAT | O_TRUNC, 0644);
  CHECK(src9 >= 0, "open big");
  CHECK(pwrite(src9, mark, 4096, (9 << 20) - 4096) == 4096, "pwrite at 9 MiB");
  int big = open(big_copy, O_RDWR | O_CREAT | O_TRUNC, 0644);
  CHECK(big >= 0, "open big-copy");
  in_at = out_at = 0;
  copied = 0;
  int calls = 0;
  while ((n = copy_file_range(src9, &in_at, big, &out_at, (size_t)(9 << 20) - copied, 0)) > 0) {
    copied += n;
    ++calls;
  }
  CHECK(copied == (9 << 20), "9 MiB copy_file_range copied %lld", (long long)copied);
  CHECK(readall(big, again, 4096, (9 << 20) - 4096) == 0 && memcmp(mark, again, 4096) == 0,
        "the 9 MiB copy's last block");
  printf("v42probe: 9 MiB copied in %d copy_file_range calls\n", calls);

  // CLONE: shared blocks, or EOPNOTSUPP where the server's fs cannot.
  int cl = open(clone, O_RDWR | O_CREAT | O_TRUNC, 0644);
  CHECK(cl >= 0, "open clone");
  if (ioctl(cl, FICLONE, fd) == 0) {
    CHECK(readall(cl, again, 4096, 0) == 0 && memcmp(buf, again, 4096) == 0, "clone's bytes");
  } else {
    CHECK(errno == EOPNOTSUPP || errno == EXDEV || errno == EINVAL, "FICLONE");
  }
  close(cl);
  close(out);
  close(fd);
  if (!failed) printf("v42probe: ok\n");
  return failed;
}
