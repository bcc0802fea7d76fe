// broker_segment_fuzz — the LOCALIO broker files (common/localio/broker_format.h) after
// a client scribbled on the slot file or cut it short, and after the server's own file
// was corrupted: the server (broker_server.h) keeps serving from them, clients
// (broker_client.h) read them, and a starting server takes over from them.
//
// The slot file is writable by every client, so nothing in it may be trusted; the
// server's file is written by the server only, but clients still trust nothing in it.
// A bad file must give an error Status or "not bound" (the client runs without
// LOCALIO), never a crash, a hang or a read outside a mapping.
//
// Each input starts from a fresh runtime dir state: a server (this process) publishes,
// a client registers two uuids and the server binds one. Then:
//   byte 0  mode: bit 0 patches may hit the server's file too (else only the slot file);
//                 bit 1 the slot file is truncated to byte 1 / 256 of its size;
//                 bit 2 a second server start takes the runtime dir over afterwards;
//                 bit 3 the server's file is truncated too, once its server unmapped it
//                 (only its own uid could do that: it is never truncated under a
//                 mapping of this process);
//   byte 1  truncation fraction (read only with bit 1 or 3)
//   then    patches: 3 bytes offset (little endian), 1 byte length, the bytes; offsets
//           run over the server's file then the slot file (bit 0), or the slot file.
// The server side (BindUuid, LookupBound, ListBound, ReapDeadClients, ListSlots,
// InvalidateClients), a new client (BrokerClient::Open, ReadServer, ListSlots, UuidEnd,
// UuidBegin/Release) and, with bit 2, a new server (CreateForServer, PublishServer,
// BindUuid, Withdraw) then run over the result.
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>

#include "common/localio/broker_client.h"
#include "common/localio/broker_server.h"
#include "common/unique_fd.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace localnfs;
using namespace localnfs::broker;

struct Fixture {
  // On tmpfs when there is one, as a real runtime dir (/run) is.
  Fixture() : dir("localnfs-fuzz-broker", fuzz::TmpfsDir()) {
    fuzz::QuietLogs();
    run_dir = dir.Sub("run");
    segment_path = run_dir + "/" + kSegmentName;
    slots_path = run_dir + "/" + kSlotsName;
    socket_path = dir.Sub("localio.sock");
  }
  fuzz::RunDir dir;
  std::string run_dir, segment_path, slots_path, socket_path;
};

Fixture& F() {
  static Fixture* f = new Fixture;
  return *f;
}

off_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

// Applies the patches in place: offsets below `segment_size` go to the server's file
// (when `segment_too`), the rest to the slot file.
void ApplyPatches(const uint8_t* p, size_t n, bool segment_too, const Fixture& f) {
  const size_t segment_size = static_cast<size_t>(FileSize(f.segment_path));
  const size_t slots_size = static_cast<size_t>(FileSize(f.slots_path));
  const size_t total = (segment_too ? segment_size : 0) + slots_size;
  if (total == 0) return;
  UniqueFd seg(::open(f.segment_path.c_str(), O_WRONLY | O_CLOEXEC));
  UniqueFd slots(::open(f.slots_path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!seg || !slots) abort();
  while (n >= 4) {
    const size_t raw = p[0] | size_t{p[1]} << 8 | size_t{p[2]} << 16;
    size_t len = std::min<size_t>(p[3], n - 4);
    p += 4;
    n -= 4;
    size_t off = raw % total;
    int fd = slots.get();
    size_t end = total;
    if (segment_too && off < segment_size) {
      fd = seg.get();
      end = segment_size;
    } else if (segment_too) {
      off -= segment_size;
      end = slots_size;
    }
    const size_t put = std::min(len, end - off);
    if (::pwrite(fd, p, put, static_cast<off_t>(off)) != static_cast<ssize_t>(put)) abort();
    p += len;
    n -= len;
  }
}

void ServerSide(Broker& server, const Uuid& pending, const Uuid& bound) {
  (void)server.BindUuid(pending, "127.0.0.1:701", 7);
  (void)server.LookupBound(bound);
  (void)server.LookupBound(pending);
  (void)server.ListBound();
  (void)server.ReapDeadClients();
  (void)server.ListSlots();
  (void)server.ReadServer();
  server.InvalidateClients();
}

void ClientSide(const Fixture& f, const Uuid& pending, const Uuid& bound) {
  absl::StatusOr<std::unique_ptr<BrokerClient>> client = BrokerClient::Open(f.run_dir);
  if (!client.ok()) return;
  BrokerClient& b = **client;
  (void)b.ReadServer();
  (void)b.ListSlots();
  (void)b.UuidEnd(pending);
  (void)b.UuidEnd(bound);
  (void)b.LoadGeneration();
  (void)b.ServerAlive();
  if (absl::StatusOr<Uuid> mine = b.UuidBegin(); mine.ok()) {
    (void)b.UuidEnd(*mine);
    b.UuidRelease(*mine);
  }
  b.UuidRelease(pending);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Fixture& f = F();
  const uint8_t mode = data[0];

  absl::StatusOr<std::unique_ptr<Broker>> created = Broker::CreateForServer(f.run_dir);
  if (!created.ok()) abort();
  std::unique_ptr<Broker> server = *std::move(created);
  if (!server->PublishServer(ServerRecord{f.socket_path}).ok()) abort();
  Uuid pending{}, bound{};
  {
    absl::StatusOr<std::unique_ptr<BrokerClient>> client = BrokerClient::Open(f.run_dir);
    if (!client.ok()) abort();
    absl::StatusOr<Uuid> p = (*client)->UuidBegin();
    absl::StatusOr<Uuid> b = (*client)->UuidBegin();
    if (!p.ok() || !b.ok() || !server->BindUuid(*b, "127.0.0.1:700", 7)) abort();
    pending = *p;
    bound = *b;
  }  // unmapped before the slot file may be cut short

  ApplyPatches(data + 2, size - 2, (mode & 1) != 0, f);
  if ((mode & 2) != 0)
    if (::truncate(f.slots_path.c_str(), FileSize(f.slots_path) * data[1] / 256) != 0) abort();
  if ((mode & 8) != 0) {
    server.reset();  // its record stays live: a start must judge it by its process
    if (::truncate(f.segment_path.c_str(), FileSize(f.segment_path) * data[1] / 256) != 0)
      abort();
  } else {
    ServerSide(*server, pending, bound);
  }
  ClientSide(f, pending, bound);
  if ((mode & 4) != 0) {
    server.reset();
    absl::StatusOr<std::unique_ptr<Broker>> next = Broker::CreateForServer(f.run_dir);
    if (next.ok() && (*next)->PublishServer(ServerRecord{f.socket_path}).ok()) {
      (void)(*next)->BindUuid(pending, "127.0.0.1:702", 7);
      (void)(*next)->ListSlots();
      (*next)->Withdraw();
    }
  }
  if (server) server->Withdraw();
  // The next input starts from nothing (a record left live by this process would make
  // every later start refuse).
  ::unlink(f.segment_path.c_str());
  ::unlink(f.slots_path.c_str());
  return 0;
}
