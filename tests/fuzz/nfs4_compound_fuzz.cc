// nfs4_compound_fuzz — NFSv4 COMPOUND decoding and the op table's rules: the
// arguments of a COMPOUND call through rpc::Dispatcher into the real Nfs4Program (the
// header decoder XdrCompound4Args; RunCompound, which reads the ops one by one with
// rpcgen's nfs_argop4 decoder and its bounds from rpc/nfs4.x, applies the op table's
// rules and runs the filehandle ops), xdr_free on every path, and the reply encoder.
//
// Input:
//   byte 0  bit 0: the first op must be SEQUENCE (as localnfsd runs) or not (so that
//           the ops behind the first run too). Bit 1: the program has client and
//           session state (Nfs4State, kept from input to input, bounded; a fixed clock
//           and boot value, so client and session ids are predictable: EXCHANGE_ID,
//           CREATE_SESSION, SEQUENCE and the slot reply cache are reached) or none (the
//           session ops answer SERVERFAULT).
//   then    the COMPOUND4args bytes (tag, minorversion, op count, ops), sent as the
//           arguments of NFSv4 procedure 1 in a well-formed call.
//
// Properties beyond "no crash, no leak, no allocation of a claimed length": every call
// is answered, accepted, SUCCESS or GARBAGE_ARGS; a SUCCESS reply decodes completely
// with xdr_COMPOUND4res and echoes the tag; it has at most kMaxOpsPerCompound results
// and no more than the op count; every result but the last is NFS4_OK, and the
// COMPOUND's status is the last result's (with no result: NFS4_OK or
// MINOR_VERS_MISMATCH).
#include <stdint.h>
#include <stdlib.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "rpc/dispatch.h"
#include "rpc/nfs4.h"
#include "rpc/test_program.h"
#include "server/nfs4/compound.h"
#include "server/nfs4/nfs4_program.h"
#include "server/nfs4/services.h"
#include "server/nfs4/state.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace localnfs;
using namespace localnfs::server::nfs4;

Nfs4State::Options FuzzStateOptions() {
  Nfs4State::Options o;
  o.max_clients = 16;
  o.max_sessions_per_client = 2;
  o.max_cache_bytes = size_t{1} << 20;
  o.now_ns = [] { return int64_t{0}; };
  return o;
}

struct Target {
  Target(bool require_sequence, bool with_state)
      : state(with_state ? std::make_unique<Nfs4State>(FuzzStateOptions()) : nullptr),
        services{state.get()},
        program(Nfs4Program::Options{CompoundOptions{.require_sequence = require_sequence}},
                with_state ? &services : nullptr) {
    dispatcher.AddProgram(&program);
  }
  std::unique_ptr<Nfs4State> state;
  Nfs4Services services;
  Nfs4Program program;
  rpc::ServerCounters counters;
  rpc::Dispatcher dispatcher{&counters};
  rpc::ConnectionInfo conn{1, PeerAddress{}, PeerAddress{}};
};

uint32_t BigEndianAt(std::string_view s, size_t at) {
  if (s.size() < at + 4) return 0;
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<uint8_t>(s[at + i]);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool init = (fuzz::QuietLogs(), true);
  (void)init;
  static Target targets[4] = {{false, false}, {true, false}, {false, true}, {true, true}};
  if (size < 1) return 0;
  Target& t = targets[data[0] & 3];
  const std::string_view args(reinterpret_cast<const char*>(data) + 1, size - 1);

  std::optional<rpc::testing::TestReply> reply =
      rpc::testing::RunCall(t.dispatcher, t.conn, NFS4_PROGRAM, NFS_V4, NFSPROC4_COMPOUND, args);
  if (!reply) abort();  // every call is answered
  if (reply->error.reply_stat != rpc::ReplyStat::kAccepted) abort();
  if (!reply->error.is_success()) {
    if (reply->error.accept_stat != rpc::AcceptStat::kGarbageArgs) abort();
    return 0;
  }
  rpc::testing::DecodedResult<COMPOUND4res, xdr_COMPOUND4res> res(reply->body);
  if (!res.ok()) abort();
  // The header decoded, so the tag is the input's first opaque and the op count the
  // word after the minor version.
  const uint32_t tag_len = BigEndianAt(args, 0);
  if (res->tag.utf8string_len != tag_len ||
      args.compare(4, tag_len, std::string_view(res->tag.utf8string_val, tag_len)) != 0) {
    abort();
  }
  const size_t padded = (size_t{tag_len} + 3) & ~size_t{3};
  const uint32_t numops = BigEndianAt(args, 4 + padded + 4);
  const u_int n = res->resarray.resarray_len;
  if (n > kMaxOpsPerCompound || n > numops) abort();
  if (n == 0) {
    if (res->status != NFS4_OK && res->status != NFS4ERR_MINOR_VERS_MISMATCH) abort();
    return 0;
  }
  for (u_int i = 0; i + 1 < n; ++i) {
    if (OpStatus(res->resarray.resarray_val[i]) != NFS4_OK) abort();
  }
  if (OpStatus(res->resarray.resarray_val[n - 1]) != res->status) abort();
  return 0;
}
