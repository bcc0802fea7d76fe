// broker_segment_fuzz — the LOCALIO broker segment (common/broker.h) as a client
// process reads it, and as a starting server takes it over, after any other member of
// the group scribbled on it or cut it short.
//
// The segment is mode 0660 and writable by every client, so nothing in it may be
// trusted; a bad one must give an error Status (the client runs without LOCALIO),
// never a crash, a hang or a read outside the mapping.
//
// Input: a list of patches applied to a valid segment — one published by a live
// server (this process), with one pending and one bound uuid — then written to a
// fresh runtime dir:
//   byte 0  mode: bit 0 the header (magic, version, sizes) may be patched too;
//                 bit 1 the file is truncated to byte 1 / 256 of its size;
//                 bit 2 also run the server side (CreateForServer, PublishServer,
//                 BindUuid, ListBound, ReapDeadClients, InvalidateClients, Withdraw);
//   byte 1  truncation fraction (read only with bit 1)
//   then    patches: 3 bytes offset (little endian), 1 byte length, the bytes.
// Never patched: the process-shared mutex (bytes 64..127). A scribbled mutex word
// makes every locker wait kLockTimeout (5 s) and then fail, which broker_test covers;
// here it would only slow the fuzzer to a crawl.
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/broker.h"
#include "common/unique_fd.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace localnfs;
using namespace localnfs::broker;

constexpr size_t kHeaderEnd = 64;   // magic, version, slot count, size, reserved
constexpr size_t kMutexEnd = 128;   // the pthread mutex, 64-byte aligned

std::string ReadFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st;
  if (!fd || fstat(fd.get(), &st) != 0) abort();
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  if (pread(fd.get(), bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size()))
    abort();
  return bytes;
}

struct Fixture {
  // On tmpfs when there is one, as a real runtime dir (/run) is: on ext4 every input's
  // rename of a replaced segment over the old one forced a writeback of the old one.
  Fixture() : dir("localnfs-fuzz-broker", fuzz::TmpfsDir()) {
    fuzz::QuietLogs();
    const std::string tmpl = dir.Sub("template");
    absl::StatusOr<std::unique_ptr<Broker>> server = Broker::CreateForServer(tmpl);
    if (!server.ok()) abort();
    if (!(*server)->PublishServer(ServerRecord{dir.Sub("localio.sock")}).ok()) abort();
    absl::StatusOr<Uuid> p = (*server)->UuidBegin();
    absl::StatusOr<Uuid> b = (*server)->UuidBegin();
    if (!p.ok() || !b.ok() || !(*server)->BindUuid(*b, "127.0.0.1:700", 7)) abort();
    pending = *p;
    bound = *b;
    image = ReadFile((*server)->path());
    if (image.size() <= kMutexEnd) abort();
    work = image;
    run_dir = dir.Sub("run");
    if (mkdir(run_dir.c_str(), 0700) != 0) abort();
    segment_path = run_dir + "/" + kSegmentName;
  }
  fuzz::RunDir dir;
  std::string image;  // the valid segment every input starts from
  // `image` with the current input's patches; put back after each input through
  // `patched` (a fresh copy per input, ~370 KiB through ASan's mmap allocator, was a
  // third of the run).
  std::string work;
  std::vector<std::pair<size_t, size_t>> patched;  // (offset, length) in `work`
  Uuid pending{};
  Uuid bound{};
  std::string run_dir;
  std::string segment_path;
};

Fixture& F() {
  static Fixture* f = new Fixture;
  return *f;
}

void ApplyPatches(const uint8_t* p, size_t n, bool header_too, std::string* seg,
                  std::vector<std::pair<size_t, size_t>>* patched) {
  const size_t size = seg->size();
  while (n >= 4) {
    const size_t raw = p[0] | size_t{p[1]} << 8 | size_t{p[2]} << 16;
    size_t len = p[3];
    p += 4;
    n -= 4;
    len = std::min(len, n);
    size_t off;
    size_t end;  // a patch never runs into the mutex
    if (header_too && raw % 8 == 0) {
      off = (raw / 8) % kHeaderEnd;
      end = kHeaderEnd;
    } else {
      off = kMutexEnd + raw % (size - kMutexEnd);
      end = size;
    }
    memcpy(seg->data() + off, p, std::min(len, end - off));
    patched->emplace_back(off, std::min(len, end - off));
    p += len;
    n -= len;
  }
}

void ClientSide(Fixture& f) {
  absl::StatusOr<std::unique_ptr<Broker>> client = Broker::OpenForClient(f.run_dir);
  if (!client.ok()) return;
  Broker& b = **client;
  (void)b.ReadServer();
  (void)b.ListSlots();
  (void)b.UuidEnd(f.pending);
  (void)b.UuidEnd(f.bound);
  (void)b.LoadGeneration();
  (void)b.ServerAlive();
  if (absl::StatusOr<Uuid> mine = b.UuidBegin(); mine.ok()) {
    (void)b.UuidEnd(*mine);
    b.UuidRelease(*mine);
  }
  b.UuidRelease(f.pending);
}

void ServerSide(Fixture& f) {
  absl::StatusOr<std::unique_ptr<Broker>> server = Broker::CreateForServer(f.run_dir);
  if (!server.ok()) return;
  Broker& b = **server;
  (void)b.ReadServer();
  if (b.PublishServer(ServerRecord{f.dir.Sub("localio.sock")}).ok()) {
    (void)b.BindUuid(f.pending, "127.0.0.1:701", 7);
    (void)b.LookupBound(f.pending);
    (void)b.LookupBound(f.bound);
    (void)b.ListBound();
  }
  (void)b.ListSlots();
  (void)b.ReapDeadClients();
  b.InvalidateClients();
  b.Withdraw();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Fixture& f = F();
  const uint8_t mode = data[0];
  f.patched.clear();
  ApplyPatches(data + 2, size - 2, (mode & 1) != 0, &f.work, &f.patched);
  const size_t length = (mode & 2) != 0 ? f.work.size() * data[1] / 256 : f.work.size();

  {
    // Rewritten in place (no O_TRUNC): the same bytes and size as a fresh file, without
    // freeing and allocating every page of it per input. The server side may have
    // replaced the file; the path always names the current one.
    UniqueFd fd(open(f.segment_path.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0660));
    if (!fd || pwrite(fd.get(), f.work.data(), length, 0) != static_cast<ssize_t>(length) ||
        ftruncate(fd.get(), static_cast<off_t>(length)) != 0)
      abort();
  }
  for (const auto& [off, len] : f.patched) memcpy(f.work.data() + off, f.image.data() + off, len);
  if (f.work != f.image) abort();  // the next input must start from the valid segment
  ClientSide(f);
  if ((mode & 4) != 0) ServerSide(f);
  return 0;
}
