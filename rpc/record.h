// rpc/record.h — ONC RPC record marking over a byte stream (RFC 5531 §11).
//
// Owns: the incremental decoder state of one TCP connection (the partial record and
// the fragment header being read) and the small encoders for record marks.
//
// A record is a sequence of fragments, each preceded by a 4-byte big-endian header:
// bit 31 = last fragment, bits 0..30 = fragment length. The decoder is fed whatever a
// read() returned and emits every record completed by those bytes. It rejects, with
// an error after which the stream cannot be resynchronised (the caller closes the
// connection):
//  * a record whose fragments together exceed `max_record_size` (a header announcing
//    2 GiB, or 4 GiB over several fragments, is rejected as soon as it is read, before
//    any payload is buffered), and
//  * a zero-length fragment that is not the last one: it carries nothing and would
//    let a peer keep us parsing headers forever without making progress.
//
// Thread-safety: none; one decoder belongs to one connection's reader (the event loop).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace localnfs::rpc {

inline constexpr uint32_t kLastFragmentBit = 0x80000000u;
inline constexpr uint32_t kMaxFragmentLength = 0x7fffffffu;
inline constexpr size_t kRecordMarkSize = 4;

class RecordDecoder {
 public:
  explicit RecordDecoder(uint32_t max_record_size) : max_record_size_(max_record_size) {}

  // Consumes all of `data`; appends each completed record (fragments joined, without
  // marks) to `records`. On error the decoder is poisoned: every later call fails too.
  absl::Status Feed(std::string_view data, std::vector<std::string>* records);

  // True while a record is partially received (a header or payload is missing).
  bool InRecord() const { return header_have_ > 0 || in_fragment_ || !record_.empty(); }

 private:
  absl::Status OnHeader(uint32_t header);

  const uint32_t max_record_size_;
  absl::Status error_;
  // The fragment header being assembled (bytes may arrive one at a time).
  uint8_t header_[kRecordMarkSize] = {};
  size_t header_have_ = 0;
  // Inside a fragment's payload: bytes still to read, and whether it is the last.
  bool in_fragment_ = false;
  uint32_t fragment_left_ = 0;
  bool last_fragment_ = false;
  std::string record_;  // the fragments of the current record read so far
};

// The 4-byte record mark for a fragment of `length` bytes (length ≤ 2^31 - 1).
void PutRecordMark(uint32_t length, bool last, char out[kRecordMarkSize]);
// `payload` as one fragment: mark + payload.
std::string EncodeRecord(std::string_view payload, bool last = true);

}  // namespace localnfs::rpc
