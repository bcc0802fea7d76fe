#include "server/backend/vfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/rcu.h"
#include "common/release_queue.h"
#include "common/status.h"
#include "export_cache/export.h"
#include "gtest/gtest.h"
#include "server/policy/creds.h"
#include "server/backend/file_cache.h"
#include "server/policy/request_policy.h"
#include "server/server_test_runtime.h"
#include "tests/support/temp_dir.h"

namespace localnfs::server::vfs {
namespace {

class VfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    umask(0);
    tmp_ = std::make_unique<localnfs::testing::TempDir>("vfstest");
    base_ = tmp_->path();
    root_path_ = base_ + "/export";
    auto exp = MakeExportedDir(root_path_, 0755);
    ASSERT_TRUE(exp.ok()) << exp.status();
    exp_ = *exp;
    root_ = Obj(UniqueFd(fcntl(exp_->root_fd(), F_DUPFD_CLOEXEC, 0)));
    cred_.uid = geteuid();
    cred_.gid = getegid();
  }
  void TearDown() override {
    root_ = Object();
    exp_.reset();
    DrainReleases();
    tmp_.reset();
  }

  Object Obj(UniqueFd fd) {
    Object o;
    o.exp = exp_.get();
    o.kh = *KernelHandleOfFd(fd.get());
    o.fd = std::move(fd);
    return o;
  }
  Object Obj(LookupResult r) { return Obj(std::move(r.fd)); }

  std::unique_ptr<localnfs::testing::TempDir> tmp_;
  std::string base_, root_path_;
  Ref<exports::Export> exp_;
  Object root_;
  Credentials cred_;
};

TEST_F(VfsTest, DotDotAtTheRootIsTheRoot) {
  auto up = Lookup(root_, "..", cred_);
  ASSERT_TRUE(up.ok()) << up.status();
  struct stat root_st = *GetAttr(root_.fd.get());
  EXPECT_EQ(up->st.st_ino, root_st.st_ino);
  auto dot = Lookup(root_, ".", cred_);
  EXPECT_EQ(dot->st.st_ino, root_st.st_ino);
}

TEST_F(VfsTest, DotDotBelowTheRootIsTheParent) {
  auto d = Mkdir(root_, "d", {}, cred_);
  ASSERT_TRUE(d.ok()) << d.status();
  Object dir = Obj(std::move(*d));
  auto up = Lookup(dir, "..", cred_);
  EXPECT_EQ(up->st.st_ino, GetAttr(root_.fd.get())->st_ino);
}

TEST_F(VfsTest, BadNamesAreRefused) {
  EXPECT_EQ(StatusErrno(Lookup(root_, "", cred_).status()), EACCES);
  EXPECT_EQ(StatusErrno(Lookup(root_, "a/b", cred_).status()), EACCES);
  EXPECT_EQ(StatusErrno(Lookup(root_, std::string(256, 'x'), cred_).status()), ENAMETOOLONG);
  EXPECT_EQ(StatusErrno(Create(root_, ".", CreateHow::kUnchecked, {}, 0, cred_).status()), EEXIST);
  EXPECT_EQ(StatusErrno(Create(root_, "..", CreateHow::kGuarded, {}, 0, cred_).status()), EEXIST);
  EXPECT_EQ(StatusErrno(Mkdir(root_, "x/y", {}, cred_).status()), EACCES);
  EXPECT_EQ(StatusErrno(Remove(root_, ".", false, cred_).status()), EACCES);
  EXPECT_EQ(StatusErrno(Remove(root_, "..", true, cred_).status()), EINVAL);
  EXPECT_FALSE(Rename(root_, "..", root_, "z", cred_).ok());
}

TEST_F(VfsTest, SymlinksAreNeverFollowed) {
  ASSERT_EQ(symlink("/etc", (root_path_ + "/out").c_str()), 0);
  auto l = Lookup(root_, "out", cred_);
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(S_ISLNK(l->st.st_mode));
  Object link = Obj(std::move(*l));
  EXPECT_EQ(StatusErrno(Lookup(link, "passwd", cred_).status()), ENOTDIR);
  EXPECT_EQ(*ReadLink(link), "/etc");
}

TEST_F(VfsTest, ExclusiveCreateRetransmitSucceedsOtherVerifierFails) {
  auto a = Create(root_, "f", CreateHow::kExclusive, {}, 0x1122334455667788ull, cred_);
  ASSERT_TRUE(a.ok()) << a.status();
  auto again = Create(root_, "f", CreateHow::kExclusive, {}, 0x1122334455667788ull, cred_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->st.st_ino, a->st.st_ino);
  EXPECT_EQ(StatusErrno(Create(root_, "f", CreateHow::kExclusive, {}, 42, cred_).status()),
            EEXIST);
  EXPECT_EQ(StatusErrno(Create(root_, "f", CreateHow::kGuarded, {}, 0, cred_).status()), EEXIST);
  EXPECT_TRUE(Create(root_, "f", CreateHow::kUnchecked, {}, 0, cred_).ok());
}

// The POSIX backend's READ primitive with `nowait` (the event loop's READ).
TEST_F(VfsTest, NowaitReadOfDataNotInThePageCacheWouldBlock) {
  SetAttrRequest attrs;
  attrs.mode = 0644;
  Object f = Obj(*Create(root_, "cold", CreateHow::kGuarded, attrs, 0, cred_));
  const std::string data(256 << 10, 'c');
  {
    UniqueFd w = *OpenFileOf(f.fd.get(), FileMode::kReadWrite);
    ASSERT_EQ(pwrite(w.get(), data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
    ASSERT_EQ(fsync(w.get()), 0);
  }
  UniqueFd file = *OpenFileOf(f.fd.get(), FileMode::kRead);
  auto Read = [&](uint64_t offset, absl::Span<char> buf, bool nowait) {
    return ReadAt(file.get(), data.size(), offset, buf, nowait);
  };
  std::string buf(64 << 10, '\0');
  auto cached = Read(0, absl::MakeSpan(buf), /*nowait=*/true);
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_FALSE(cached->would_block) << "just written: in the page cache";
  EXPECT_EQ(cached->count, buf.size());
  // Clean pages dropped from the cache: the data is on the disk only. Dropping
  // is best effort (a page may be briefly pinned) and a read-ahead the NOWAIT
  // read starts may finish inside the call on fast storage, so the test asks
  // mincore() whether the page is really gone and tries a few times; one read
  // of a page that was not resident must have said "would block".
  UniqueFd fd(openat(root_.fd.get(), "cold", O_RDONLY | O_CLOEXEC));
  struct statfs fs;
  ASSERT_EQ(fstatfs(fd.get(), &fs), 0);
  if (fs.f_type == TMPFS_MAGIC) GTEST_SKIP() << "tmpfs: every page stays in memory";
  void* map = mmap(nullptr, data.size(), PROT_READ, MAP_SHARED, fd.get(), 0);
  ASSERT_NE(map, MAP_FAILED);
  const long page = sysconf(_SC_PAGESIZE);
  auto resident = [&](off_t offset) {
    unsigned char vec = 0;
    EXPECT_EQ(mincore(static_cast<char*>(map) + offset, page, &vec), 0);
    return (vec & 1) != 0;
  };
  int cold_attempts = 0;
  bool saw_would_block = false;
  for (int attempt = 0; attempt < 50 && !saw_would_block; ++attempt) {
    ASSERT_EQ(posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED), 0);
    if (resident(128 << 10)) continue;
    ++cold_attempts;
    auto cold = Read(128 << 10, absl::MakeSpan(buf), /*nowait=*/true);
    ASSERT_TRUE(cold.ok()) << cold.status();
    if (cold->would_block) {
      saw_would_block = true;
    } else {
      ASSERT_GT(cold->count, 0u);
      EXPECT_EQ(buf.substr(0, cold->count), data.substr(128 << 10, cold->count));
    }
  }
  munmap(map, data.size());
  if (cold_attempts == 0) GTEST_SKIP() << "the kernel kept the pages despite POSIX_FADV_DONTNEED";
  EXPECT_TRUE(saw_would_block) << cold_attempts << " reads of evicted pages all completed";
  auto waited = Read(128 << 10, absl::MakeSpan(buf), /*nowait=*/false);
  ASSERT_TRUE(waited.ok());
  EXPECT_FALSE(waited->would_block);
  EXPECT_EQ(waited->count, buf.size());
  EXPECT_EQ(buf, data.substr(128 << 10, buf.size()));
  auto warm = Read(128 << 10, absl::MakeSpan(buf), /*nowait=*/true);
  ASSERT_TRUE(warm.ok());
  EXPECT_FALSE(warm->would_block) << "read once, cached now";
}

TEST_F(VfsTest, RenameOverExistingReportsTheReplacedFile) {
  Object a = Obj(*Create(root_, "a", CreateHow::kGuarded, {}, 0, cred_));
  Object b = Obj(*Create(root_, "b", CreateHow::kGuarded, {}, 0, cred_));
  auto replaced = Rename(root_, "a", root_, "b", cred_);
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  ASSERT_TRUE(replaced->has_value());
  EXPECT_EQ(**replaced, b.kh);
  EXPECT_EQ(StatusErrno(Lookup(root_, "a", cred_).status()), ENOENT);
}

TEST_F(VfsTest, LinkAndRemove) {
  Object a = Obj(*Create(root_, "a", CreateHow::kGuarded, {}, 0, cred_));
  ASSERT_TRUE(Link(a, root_, "a2", cred_).ok());
  EXPECT_EQ(GetAttr(a.fd.get())->st_nlink, 2u);
  auto gone = Remove(root_, "a", false, cred_);
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());  // still linked as a2
  gone = Remove(root_, "a2", false, cred_);
  ASSERT_TRUE(gone.ok());
  EXPECT_TRUE(gone->has_value());
  EXPECT_EQ(StatusErrno(Link(root_, root_, "dirlink", cred_)), EISDIR);
}

TEST_F(VfsTest, MknodFifoAndSocket) {
  EXPECT_TRUE(Mknod(root_, "fifo", S_IFIFO, 0, {}, cred_).ok());
  EXPECT_TRUE(Mknod(root_, "sock", S_IFSOCK, 0, {}, cred_).ok());
  EXPECT_EQ(StatusErrno(Mknod(root_, "reg", S_IFREG, 0, {}, cred_).status()), EINVAL);
}

TEST_F(VfsTest, ReaddirOf10000EntriesListsEachOnceInOnePass) {
  Object d = Obj(*Mkdir(root_, "big", {}, cred_));
  const int kEntries = 10000;
  UniqueFd big(open((root_path_ + "/big").c_str(), O_DIRECTORY | O_CLOEXEC));
  for (int i = 0; i < kEntries; ++i) {
    int fd = openat(big.get(), absl::StrCat("file-", i).c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    close(fd);
  }
  std::set<std::string> seen;
  uint64_t cookie = 0;
  int calls = 0;
  size_t entries_emitted = 0;
  for (;;) {
    ++calls;
    size_t in_this_call = 0;
    auto r = ReadDir(d, cookie, /*plus=*/calls % 2 == 0, cred_, [&](const DirEntry& e) {
      if (in_this_call == 100) return false;  // a reply that holds 100 entries
      ++in_this_call;
      EXPECT_TRUE(seen.insert(std::string(e.name)).second) << e.name;
      cookie = e.cookie;
      return true;
    });
    ASSERT_TRUE(r.ok()) << r.status();
    entries_emitted += in_this_call;
    if (r->eof) break;
    ASSERT_LT(calls, kEntries);
  }
  // Every file and "." and "..", each once.
  EXPECT_EQ(seen.size(), static_cast<size_t>(kEntries + 2));
  EXPECT_TRUE(seen.count(".") && seen.count(".."));
  EXPECT_EQ(entries_emitted, static_cast<size_t>(kEntries + 2));
  EXPECT_LE(calls, (kEntries + 2) / 100 + 2);
}

TEST_F(VfsTest, ReaddirPlusGivesAttributesAndHandles) {
  Object f = Obj(*Create(root_, "x", CreateHow::kGuarded, {}, 0, cred_));
  Object sub = Obj(*Mkdir(root_, "sub", {}, cred_));
  const struct stat root_st = *GetAttr(root_.fd.get());
  std::set<std::string> names;
  auto r = ReadDir(root_, 0, true, cred_, [&](const DirEntry& e) {
    names.insert(std::string(e.name));
    if (e.name == "..") {
      // The export root's "..": the root itself, without attributes or handle.
      EXPECT_EQ(e.fileid, root_st.st_ino);
      EXPECT_FALSE(e.attrs.has_value());
      EXPECT_FALSE(e.kh.has_value());
      return true;
    }
    EXPECT_TRUE(e.attrs.has_value()) << e.name;
    EXPECT_TRUE(e.kh.has_value()) << e.name;
    if (e.attrs) { EXPECT_EQ(e.attrs->fileid, e.fileid) << e.name; }
    if (e.kh) { EXPECT_EQ(*e.kh, e.name == "." ? root_.kh : e.name == "x" ? f.kh : sub.kh); }
    return true;
  });
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->eof);
  EXPECT_EQ(names, (std::set<std::string>{".", "..", "x", "sub"}));
  // Below the root, ".." is the parent, with its attributes and handle.
  int dotdot = 0;
  r = ReadDir(sub, 0, true, cred_, [&](const DirEntry& e) {
    if (e.name != "..") return true;
    ++dotdot;
    EXPECT_EQ(e.fileid, root_st.st_ino);
    EXPECT_TRUE(e.attrs.has_value());
    if (e.kh) { EXPECT_EQ(*e.kh, root_.kh); }
    EXPECT_TRUE(e.kh.has_value());
    return true;
  });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(dotdot, 1);
}

TEST_F(VfsTest, HandleResolvesAfterRenameOfParent) {
  Object d = Obj(*Mkdir(root_, "p", {}, cred_));
  Object f = Obj(*Create(d, "f", CreateHow::kGuarded, {}, 0, cred_));
  ASSERT_EQ(rename((root_path_ + "/p").c_str(), (root_path_ + "/q").c_str()), 0);
  HandleResolver resolver;
  resolver.Start(*exp_);
  auto fd = resolver.Resolve(*exp_, f.kh);
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(GetAttr(fd->get())->st_ino, GetAttr(f.fd.get())->st_ino);
  // The unprivileged path finds it by searching the export.
  HandleResolver unpriv;
  unpriv.SetPrivilegedForTesting(false);
  fd = unpriv.Resolve(*exp_, f.kh);
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(GetAttr(fd->get())->st_ino, GetAttr(f.fd.get())->st_ino);
  EXPECT_EQ(unpriv.CachedEntriesForTesting(), 1u);
}

TEST_F(VfsTest, RemovedObjectIsStale) {
  Object f = Obj(*Create(root_, "gone", CreateHow::kGuarded, {}, 0, cred_));
  ASSERT_TRUE(Remove(root_, "gone", false, cred_).ok());
  for (bool privileged : {true, false}) {
    HandleResolver resolver;
    resolver.SetPrivilegedForTesting(privileged);
    EXPECT_EQ(StatusErrno(resolver.Resolve(*exp_, f.kh).status()), ESTALE) << privileged;
  }
}

TEST_F(VfsTest, DirectoryOutsideTheExportIsStale) {
  ASSERT_EQ(mkdir((base_ + "/outside").c_str(), 0755), 0);
  UniqueFd out(open((base_ + "/outside").c_str(), O_PATH | O_DIRECTORY));
  KernelHandle kh = *KernelHandleOfFd(out.get());
  HandleResolver resolver;
  resolver.Start(*exp_);
  if (!resolver.privileged()) GTEST_SKIP() << "needs CAP_DAC_READ_SEARCH";
  EXPECT_EQ(StatusErrno(resolver.Resolve(*exp_, kh).status()), ESTALE);
}

TEST_F(VfsTest, MetadataCommitsOpenOnlyDirectoriesAndRegularFiles) {
  // A FIFO, a symlink and a file nobody may read: nothing blocks (a FIFO is never
  // opened: its directory or its file system is synced instead) and nothing fails.
  const std::string fifo = root_path_ + "/fifo", link = root_path_ + "/link";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  ASSERT_EQ(symlink("target", link.c_str()), 0);
  auto file = Create(root_, "locked", CreateHow::kUnchecked, SetAttrRequest{.mode = 0}, 0,
                     cred_);
  ASSERT_TRUE(file.ok()) << file.status();
  auto obj = [&](const std::string& path) {
    UniqueFd fd(open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    EXPECT_TRUE(fd);
    return fd;
  };
  auto attrs_of = [](int fd) { return backend::AttrsFromStat(*GetAttr(fd)); };
  UniqueFd fifo_fd = obj(fifo), link_fd = obj(link);
  MetadataCommits commits;
  EXPECT_TRUE(commits.empty());
  commits.AddCreated(fifo_fd.get(), attrs_of(fifo_fd.get()));  // left to the directory
  commits.AddCreated(file->fd.get(), backend::AttrsFromStat(file->st));
  commits.Add(root_.fd.get(), attrs_of(root_.fd.get()));
  commits.Add(root_.fd.get(), attrs_of(root_.fd.get()));  // once
  commits.Add(fifo_fd.get(), attrs_of(fifo_fd.get()));    // already there: once
  EXPECT_TRUE(commits.Run(*exp_).ok());
  MetadataCommits others;
  others.Add(link_fd.get(), attrs_of(link_fd.get()));  // its file system
  others.Add(fifo_fd.get(), attrs_of(fifo_fd.get()));
  EXPECT_TRUE(others.Run(*exp_).ok());
}

}  // namespace
}  // namespace localnfs::server::vfs
