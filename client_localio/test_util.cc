#include "client_localio/test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace localnfs::client::testing {
namespace {

using Clock = std::chrono::steady_clock;

pid_t Spawn(const std::vector<std::string>& argv, int out_fd) {
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid != 0) return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  dup2(out_fd, 1);
  dup2(out_fd, 2);
  const int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, 0);
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  execvp(cargv[0], cargv.data());
  dprintf(2, "exec %s: %s\n", cargv[0], strerror(errno));
  _exit(127);
}

// Waits up to timeout_ms for `pid`; true and *status when it exited.
bool WaitFor(pid_t pid, int timeout_ms, int* status) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    const pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0) return true;
    if (Clock::now() >= deadline) return false;
    usleep(10000);
  }
}

}  // namespace

TempDir::TempDir(const std::string& prefix) {
  const char* tmp = getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr ? tmp : "/tmp") + "/" + prefix + ".XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << templ << ": " << strerror(errno);
  }
  chmod(templ.c_str(), 0755);
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

int RunCommand(const std::vector<std::string>& argv, std::string* output, int timeout_s) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return -1;
  const pid_t pid = Spawn(argv, p[1]);
  close(p[1]);
  std::string out;
  std::thread reader([&] {
    char buf[4096];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  });
  int status = 0;
  int rc;
  if (!WaitFor(pid, timeout_s * 1000, &status)) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    rc = -1;
  } else {
    rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  reader.join();
  close(p[0]);
  if (output != nullptr) *output = out;
  return rc;
}

int RunAsUser(uid_t uid, gid_t gid, const std::function<int()>& body, int timeout_ms) {
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(255);
    if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 ||
        setresuid(uid, uid, uid) != 0) {
      _exit(255);
    }
    _exit(body() & 0xff);
  }
  int status = 0;
  if (!WaitFor(pid, timeout_ms, &status)) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) == 255) return -1;
  return WEXITSTATUS(status);
}

bool WaitUntil(const std::function<bool()>& done, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    usleep(10000);
  }
  return true;
}

std::optional<uint64_t> FindStatsCounter(const std::string& stats, const std::string& name) {
  std::istringstream in(stats);
  std::string key;
  std::string value;
  while (in >> key >> value) {
    if (key == name) return std::stoull(value);
    std::getline(in, value);
  }
  return std::nullopt;
}

uint64_t StatsCounter(const std::string& stats, const std::string& name) {
  if (std::optional<uint64_t> v = FindStatsCounter(stats, name)) return *v;
  ADD_FAILURE() << "no counter " << name << " in:\n" << stats;
  return 0;
}

std::string Sha256OfFile(const std::string& path) {
  std::string out;
  if (RunCommand({"sha256sum", path}, &out) != 0) return "";
  return out.substr(0, out.find(' '));
}

Child::~Child() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  if (reader_.joinable()) reader_.join();
}

bool Child::Start(const std::vector<std::string>& argv) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return false;
  pid_ = Spawn(argv, p[1]);
  close(p[1]);
  reader_ = std::thread([this, fd = p[0]] {
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
      std::lock_guard<std::mutex> l(mu_);
      output_.append(buf, static_cast<size_t>(n));
    }
    close(fd);
  });
  return pid_ > 0;
}

bool Child::Wait(int timeout_ms, int* status) {
  if (pid_ <= 0) return true;
  if (!WaitFor(pid_, timeout_ms, status)) return false;
  pid_ = -1;
  if (reader_.joinable()) reader_.join();
  return true;
}

void Child::Kill(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

std::string Child::Output() const {
  std::lock_guard<std::mutex> l(mu_);
  return output_;
}

bool Child::WaitForOutput(const std::string& text, int timeout_ms) const {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Output().find(text) == std::string::npos) {
    if (Clock::now() >= deadline) return false;
    usleep(10000);
  }
  return true;
}

bool IsMountedAs(const std::string& path, const std::string& fstype) {
  FILE* f = fopen("/proc/self/mountinfo", "r");
  if (f == nullptr) return false;
  char line[4096];
  bool found = false;
  while (fgets(line, sizeof(line), f) != nullptr) {
    // "id parent maj:min root mountpoint opts ... - fstype source superopts"
    char mp[2048];
    if (sscanf(line, "%*d %*d %*s %*s %2047s", mp) != 1) continue;
    const char* dash = strstr(line, " - ");
    char type[256];
    if (dash == nullptr || sscanf(dash + 3, "%255s", type) != 1) continue;
    if (path == mp && fstype == type) found = true;
  }
  fclose(f);
  return found;
}

TestServer::TestServer(std::string export_dir, int nfs_port, int mount_port)
    : export_dir_(std::move(export_dir)), nfs_port_(nfs_port), mount_port_(mount_port) {}

TestServer::~TestServer() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status;
    Reap(15000, &status);
  }
  if (reader_.joinable()) reader_.join();
  if (out_fd_ >= 0) close(out_fd_);
}

std::string TestServer::Output() const {
  std::lock_guard<std::mutex> l(mu_);
  return output_;
}

void TestServer::Reap(int timeout_ms, int* status) {
  if (!WaitFor(pid_, timeout_ms, status)) {
    kill(pid_, SIGKILL);
    waitpid(pid_, status, 0);
  }
  pid_ = -1;
  if (reader_.joinable()) reader_.join();
  if (out_fd_ >= 0) close(out_fd_);
  out_fd_ = -1;
}

::testing::AssertionResult TestServer::Start() {
  const char* bin = getenv("LOCALNFSD");
  if (bin == nullptr || *bin == '\0') return ::testing::AssertionFailure() << "$LOCALNFSD unset";
  if (!WriteExports({export_dir_}))
    return ::testing::AssertionFailure() << "cannot write " << exports_file();
  const std::vector<std::string> argv = {
      bin, "--exports", exports_file(), "--port", std::to_string(nfs_port_),
      "--mount-port", std::to_string(mount_port_), "--bind", "127.0.0.1",
      "--state-dir", state_dir_.path(), "--runtime-dir", runtime_dir_.path()};
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return ::testing::AssertionFailure() << "pipe";
  {
    std::lock_guard<std::mutex> l(mu_);
    output_.clear();
  }
  pid_ = Spawn(argv, p[1]);
  close(p[1]);
  out_fd_ = p[0];
  reader_ = std::thread([this, fd = p[0]] {
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
      std::lock_guard<std::mutex> l(mu_);
      output_.append(buf, static_cast<size_t>(n));
    }
  });
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    const std::string out = Output();
    const size_t pos = out.find("localnfsd: ready ");
    if (pos != std::string::npos && out.find('\n', pos) != std::string::npos) {
      int n = 0, m = 0;
      if (sscanf(out.c_str() + pos, "localnfsd: ready nfs=%d mount=%d", &n, &m) != 2) {
        return ::testing::AssertionFailure() << "malformed ready line: " << out;
      }
      nfs_port_ = n;
      mount_port_ = m;
      return ::testing::AssertionSuccess();
    }
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      if (reader_.joinable()) reader_.join();
      return ::testing::AssertionFailure() << "localnfsd exited early:\n" << Output();
    }
    usleep(10000);
  }
  return ::testing::AssertionFailure() << "localnfsd not ready after 30 s:\n" << Output();
}

bool TestServer::WriteExports(const std::vector<std::string>& dirs,
                              const std::string& options) {
  std::string text;
  for (const std::string& d : dirs) text += absl::StrCat(d, " *(", options, ")\n");
  FILE* f = fopen(exports_file().c_str(), "w");
  if (f == nullptr) return false;
  const bool ok = fwrite(text.data(), 1, text.size(), f) == text.size();
  return fclose(f) == 0 && ok;
}

::testing::AssertionResult TestServer::ReloadExports(const std::vector<std::string>& dirs,
                                                     const std::string& options) {
  if (pid_ <= 0) return ::testing::AssertionFailure() << "not running";
  if (!WriteExports(dirs, options))
    return ::testing::AssertionFailure() << "cannot write " << exports_file();
  auto count = [this] {
    const std::string out = Output();
    size_t n = 0;
    for (size_t pos = 0; (pos = out.find("exports reloaded", pos)) != std::string::npos; ++pos)
      ++n;
    return n;
  };
  const size_t before = count();
  kill(pid_, SIGHUP);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    if (count() > before) return ::testing::AssertionSuccess();
    usleep(10000);
  }
  return ::testing::AssertionFailure() << "no reload after SIGHUP:\n" << Output();
}

void TestServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  Reap(15000, &status);
}

::testing::AssertionResult TestServer::Stop() {
  if (pid_ <= 0) return ::testing::AssertionFailure() << "not running";
  kill(pid_, SIGTERM);
  int status = 0;
  Reap(15000, &status);
  const std::string out = Output();
  if (out.find("ERROR: AddressSanitizer") != std::string::npos ||
      out.find("ERROR: LeakSanitizer") != std::string::npos ||
      out.find("runtime error:") != std::string::npos) {
    return ::testing::AssertionFailure() << "localnfsd printed a sanitizer report:\n" << out;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return ::testing::AssertionFailure() << "localnfsd did not exit 0 (status " << status
                                         << "):\n" << Output();
  }
  return ::testing::AssertionSuccess();
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    const uint64_t v = rng();
    memcpy(&out[i], &v, 8);
  }
  return out;
}

std::string ReadLocalFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string MountBinary() {
  const char* p = getenv("LOCALNFS_MOUNT");
  return p != nullptr ? p : "";
}

bool SanitizerReport(const std::string& text) {
  return text.find("ERROR: AddressSanitizer") != std::string::npos ||
         text.find("ERROR: LeakSanitizer") != std::string::npos ||
         text.find("runtime error:") != std::string::npos;
}

::testing::AssertionResult FuseDaemon::Mount(const std::string& source, int mount_port,
                                             const std::string& mnt,
                                             const std::vector<std::string>& extra,
                                             const std::vector<std::string>& prefix) {
  std::vector<std::string> argv = prefix;
  for (const std::string& a :
       {MountBinary(), std::string("-f"), std::string("--mount-port"), std::to_string(mount_port)})
    argv.push_back(a);
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(source);
  argv.push_back(mnt);
  mnt_ = mnt;
  if (!child_.Start(argv)) return ::testing::AssertionFailure() << "spawn failed";
  for (int i = 0; i < 1000; ++i) {
    if (IsMountedAs(mnt, "fuse.localnfs")) return ::testing::AssertionSuccess();
    int status;
    if (child_.Wait(10, &status))
      return ::testing::AssertionFailure() << "localnfs-mount exited: " << child_.Output();
  }
  return ::testing::AssertionFailure() << "not mounted after 10 s: " << child_.Output();
}

void UnmountFuse(const std::string& mnt) {
  std::string out;
  if (IsMountedAs(mnt, "fuse.localnfs") && RunCommand({"fusermount3", "-u", mnt}, &out, 30) != 0)
    RunCommand({"fusermount3", "-uz", mnt}, &out, 30);
}

void FuseDaemon::Unmount() {
  if (!mnt_.empty()) UnmountFuse(mnt_);
  if (child_.running()) {
    int status = 0;
    if (!child_.Wait(10000, &status)) {
      ADD_FAILURE() << "localnfs-mount did not exit after unmount";
      child_.Kill(SIGKILL);
      child_.Wait(5000, &status);
    }
  }
}

std::string FuseMountFixture::Stats() const {
  return ReadLocalFile(mnt_.path() + "/.localnfs-stats");
}

bool FuseMountFixture::PassthroughNotOffered() const {
  return Stats().find("passthrough not-offered") != std::string::npos;
}

void FuseMountFixture::SetUp() {
  if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
  ASSERT_FALSE(MountBinary().empty()) << "$LOCALNFS_MOUNT unset";
  server_ = std::make_unique<TestServer>(export_.path());
  ASSERT_TRUE(server_->Start());
  source_ = absl::StrCat("127.0.0.1:", server_->nfs_port(), ":", export_.path());
}

void FuseMountFixture::TearDown() {
  UnmountFuse(mnt_.path());  // also a daemonised mount, which daemon_ did not start
  daemon_.Unmount();
  EXPECT_FALSE(SanitizerReport(daemon_.Output())) << daemon_.Output();
  if (server_ && server_->running()) {
    EXPECT_TRUE(server_->Stop());
  }
}

}  // namespace localnfs::client::testing
