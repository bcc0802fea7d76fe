// fhandle_fuzz — the NFS file-handle decoder (server/policy/fhandle.h) and the resolver
// behind it.
//
// Input: byte 0 picks the mode, the rest is the payload.
//   even: the payload is a handle from the wire: HandleKey::Decode must answer
//         BADHANDLE (EBADMSG) for anything our key did not sign;
//   odd:  the payload is a kernel handle (4 bytes type, then the bytes) that the
//         server might have signed: Encode → Decode must give it back, a handle with
//         any one byte changed must be refused, and resolving it inside a real
//         temporary export must not crash or leak an fd (it is almost always STALE).
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <string_view>

#include "common/rcu.h"
#include "common/release_queue.h"
#include "common/status.h"
#include "export_cache/export.h"
#include "export_cache/exports_parser.h"
#include "server/policy/fhandle.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace localnfs;
using namespace localnfs::server;

struct Fixture {
  Fixture() : dir("localnfs-fuzz-fhandle") {
    fuzz::QuietLogs();
    StartReleaseQueue();
    mkdir(dir.Sub("sub").c_str(), 0755);
    close(open(dir.Sub("sub/file").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    absl::StatusOr<exports::ExportSpec> spec = exports::ParseExportArg(dir.path() + ":rw");
    if (!spec.ok()) abort();
    absl::StatusOr<Ref<exports::Export>> e = exports::Export::Create(*spec);
    if (!e.ok()) abort();
    exp = *std::move(e);
    resolver.Start(*exp);
  }
  fuzz::RunDir dir;
  RcuThread rcu;
  HandleKey key = HandleKey::FromBytes(std::string(kHandleKeySize, '\x5a'));
  Ref<exports::Export> exp;
  HandleResolver resolver;
};

Fixture& F() {
  static Fixture* f = new Fixture;  // lives until exit; the run dir is removed then
  return *f;
}

void CheckWireHandle(std::string_view wire) {
  absl::StatusOr<DecodedHandle> h = F().key.Decode(wire);
  // The fuzzer cannot forge an HMAC-SHA256; an accepted handle means the MAC is
  // not checked.
  if (h.ok() || StatusErrno(h.status()) != EBADMSG) abort();
}

void CheckKernelHandle(std::string_view payload) {
  if (payload.size() < 4) return;
  KernelHandle kh;
  kh.type = static_cast<int32_t>(uint32_t{uint8_t(payload[0])} << 24 |
                                 uint32_t{uint8_t(payload[1])} << 16 |
                                 uint32_t{uint8_t(payload[2])} << 8 | uint8_t(payload[3]));
  kh.bytes = std::string(payload.substr(4));
  Fixture& f = F();
  absl::StatusOr<std::string> wire = f.key.Encode(f.exp->id(), kh);
  if (!wire.ok()) {
    if (kh.bytes.size() <= kMaxKernelHandleBytes) abort();  // it fits, so it must encode
    return;
  }
  if (wire->size() > kMaxHandleSize) abort();
  absl::StatusOr<DecodedHandle> back = f.key.Decode(*wire);
  if (!back.ok() || back->export_id != f.exp->id() || !(back->kernel == kh)) abort();
  for (size_t i = 0; i < wire->size(); ++i) {
    std::string tampered = *wire;
    tampered[i] ^= 0x01;
    if (f.key.Decode(tampered).ok()) abort();
  }
  absl::StatusOr<UniqueFd> fd = f.resolver.Resolve(*f.exp, kh);
  (void)fd;  // closed here: an fd leaked by Resolve would show as a growing fd table
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    CheckWireHandle(payload);
  } else {
    CheckKernelHandle(payload);
  }
  FlushThisThread();
  return 0;
}
