#include "server/backend/file_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>

#include "common/status.h"
#include "gtest/gtest.h"

namespace localnfs::server {
namespace {

bool FdIsOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }

struct CountingOpener {
  std::atomic<int> opens{0};
  FileCache::Opener Get() {
    return [this](FileMode) -> absl::StatusOr<UniqueFd> {
      ++opens;
      return UniqueFd(open("/dev/null", O_RDONLY | O_CLOEXEC));
    };
  }
};

KernelHandle Kh(int i) { return KernelHandle{1, std::string(8, static_cast<char>(i))}; }

TEST(FileCacheTest, SecondAcquireReusesTheOpenFile) {
  FileCache cache(FileCacheOptions{});
  CountingOpener opener;
  auto a = cache.Acquire(1, Kh(1), FileMode::kRead, opener.Get());
  auto b = cache.Acquire(1, Kh(1), FileMode::kRead, opener.Get());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->fd(), (*b)->fd());
  EXPECT_EQ(opener.opens, 1);
  cache.Shutdown();
}

TEST(FileCacheTest, ReadWriteFileServesReadsButNotViceVersa) {
  FileCache cache(FileCacheOptions{});
  CountingOpener opener;
  auto rw = cache.Acquire(1, Kh(1), FileMode::kReadWrite, opener.Get());
  auto r = cache.Acquire(1, Kh(1), FileMode::kRead, opener.Get());
  EXPECT_EQ((*rw)->fd(), (*r)->fd());
  EXPECT_EQ(opener.opens, 1);
  auto r2 = cache.Acquire(1, Kh(2), FileMode::kRead, opener.Get());
  auto rw2 = cache.Acquire(1, Kh(2), FileMode::kReadWrite, opener.Get());
  EXPECT_NE((*r2)->fd(), (*rw2)->fd());
  EXPECT_EQ(opener.opens, 3);
}

TEST(FileCacheTest, EvictedFileStaysOpenUntilLastUserDrops) {
  FileCacheOptions opts;
  opts.max_entries = 2;
  FileCache cache(opts);
  CountingOpener opener;
  auto held = cache.Acquire(1, Kh(1), FileMode::kRead, opener.Get());
  const int fd = (*held)->fd();
  ASSERT_TRUE(cache.Acquire(1, Kh(2), FileMode::kRead, opener.Get()).ok());
  ASSERT_TRUE(cache.Acquire(1, Kh(3), FileMode::kRead, opener.Get()).ok());
  EXPECT_EQ(cache.size(), 2u);  // Kh(1) was least recently used: evicted
  EXPECT_TRUE(FdIsOpen(fd));
  held->reset();
  EXPECT_FALSE(FdIsOpen(fd));
}

TEST(FileCacheTest, ReaperClosesIdleFilesOnly) {
  FileCacheOptions opts;
  opts.idle_timeout = absl::Seconds(30);
  FileCache cache(opts);
  CountingOpener opener;
  const int idle_fd = (*cache.Acquire(1, Kh(1), FileMode::kRead, opener.Get()))->fd();
  auto busy = cache.Acquire(1, Kh(2), FileMode::kRead, opener.Get());
  cache.ReapForTesting(absl::Now() + absl::Minutes(1));
  EXPECT_FALSE(FdIsOpen(idle_fd));
  EXPECT_TRUE(FdIsOpen((*busy)->fd()));
  EXPECT_EQ(cache.size(), 1u);
}

TEST(FileCacheTest, CloseAndCloseExportUnhash) {
  FileCache cache(FileCacheOptions{});
  CountingOpener opener;
  const int fd1 = (*cache.Acquire(1, Kh(1), FileMode::kRead, opener.Get()))->fd();
  const int fd2 = (*cache.Acquire(2, Kh(1), FileMode::kReadWrite, opener.Get()))->fd();
  cache.Close(1, Kh(1));
  EXPECT_FALSE(FdIsOpen(fd1));
  EXPECT_TRUE(FdIsOpen(fd2));
  cache.CloseExport(2);
  EXPECT_FALSE(FdIsOpen(fd2));
  EXPECT_EQ(cache.size(), 0u);
}

TEST(FileCacheTest, PathEntryNeitherServesNorIsServedByOpenFiles) {
  FileCache cache(FileCacheOptions{});
  CountingOpener opener;
  auto path = cache.Acquire(1, Kh(1), FileMode::kPath, opener.Get());
  auto read = cache.Acquire(1, Kh(1), FileMode::kRead, opener.Get());
  auto rw = cache.Acquire(1, Kh(1), FileMode::kReadWrite, opener.Get());
  auto path_again = cache.Acquire(1, Kh(1), FileMode::kPath, opener.Get());
  ASSERT_TRUE(path.ok() && read.ok() && rw.ok() && path_again.ok());
  EXPECT_NE((*path)->fd(), (*read)->fd());
  EXPECT_NE((*path)->fd(), (*rw)->fd());
  EXPECT_EQ((*path)->fd(), (*path_again)->fd());
  EXPECT_EQ(opener.opens, 3);
}

TEST(FileCacheTest, CloseUnhashesThePathEntryToo) {
  FileCache cache(FileCacheOptions{});
  CountingOpener opener;
  const int path_fd = (*cache.Acquire(1, Kh(1), FileMode::kPath, opener.Get()))->fd();
  const int read_fd = (*cache.Acquire(1, Kh(1), FileMode::kRead, opener.Get()))->fd();
  cache.Close(1, Kh(1));
  EXPECT_FALSE(FdIsOpen(path_fd));
  EXPECT_FALSE(FdIsOpen(read_fd));
  EXPECT_EQ(cache.size(), 0u);
}

TEST(FileCacheTest, OpenErrorIsReturnedAndNothingCached) {
  FileCache cache(FileCacheOptions{});
  auto r = cache.Acquire(1, Kh(1), FileMode::kRead,
                         [](FileMode) -> absl::StatusOr<UniqueFd> {
                           return ErrnoToStatus(EACCES, "open");
                         });
  EXPECT_EQ(StatusErrno(r.status()), EACCES);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(FileCacheTest, ShutdownClosesEverythingAndStopsTheReaper) {
  FileCacheOptions opts;
  opts.reaper_interval = absl::Milliseconds(10);
  FileCache cache(opts);
  cache.Start();
  CountingOpener opener;
  const int fd = (*cache.Acquire(1, Kh(1), FileMode::kRead, opener.Get()))->fd();
  cache.Shutdown();
  EXPECT_FALSE(FdIsOpen(fd));
}

}  // namespace
}  // namespace localnfs::server
