// rpc_record_fuzz — RPC record marking (rpc/record.h) as the TCP transport feeds it.
//
// Input: byte 0 picks how the stream is cut into read()s (0: all at once, else
// chunks of 1..31 bytes in a repeating pattern), the rest is the byte stream a client
// sent. Properties checked beyond "no crash, no leak":
//  * no record exceeds max_record_size;
//  * once Feed fails, every later Feed fails (the stream cannot be resynchronised);
//  * every emitted record, encoded again as one fragment, decodes to itself.
#include <stdint.h>
#include <stdlib.h>

#include <string>
#include <string_view>
#include <vector>

#include "rpc/record.h"

namespace {

using localnfs::rpc::EncodeRecord;
using localnfs::rpc::RecordDecoder;

// Large enough for a real WRITE in the corpus, small enough that a lying header is
// rejected long before the fuzzer's input could fill it.
constexpr uint32_t kMaxRecord = 1u << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t cut = data[0];
  std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);

  RecordDecoder decoder(kMaxRecord);
  std::vector<std::string> records;
  bool failed = false;
  for (size_t i = 0; !stream.empty(); ++i) {
    const size_t chunk = cut == 0 ? stream.size() : 1 + (cut * (i + 1)) % 31;
    const std::string_view piece = stream.substr(0, chunk);
    stream.remove_prefix(piece.size());
    const bool ok = decoder.Feed(piece, &records).ok();
    if (failed && ok) abort();  // a poisoned decoder accepted more bytes
    failed = !ok;
  }
  for (const std::string& record : records) {
    if (record.size() > kMaxRecord) abort();
    RecordDecoder again(kMaxRecord);
    std::vector<std::string> out;
    if (!again.Feed(EncodeRecord(record), &out).ok() || out.size() != 1 ||
        out[0] != record || again.InRecord()) {
      abort();
    }
  }
  return 0;
}
