#include "rpc/record.h"

#include <string.h>

#include <algorithm>

#include "absl/strings/str_format.h"

namespace localnfs::rpc {

absl::Status RecordDecoder::OnHeader(uint32_t header) {
  const bool last = (header & kLastFragmentBit) != 0;
  const uint32_t length = header & kMaxFragmentLength;
  if (length == 0 && !last) {
    return absl::InvalidArgumentError("zero-length non-last fragment");
  }
  // Compare in 64 bits: record_.size() + length may exceed 2^32.
  if (static_cast<uint64_t>(record_.size()) + length > max_record_size_) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "record of at least %u bytes exceeds the maximum of %u bytes",
        static_cast<uint64_t>(record_.size()) + length, max_record_size_));
  }
  // Room for the whole fragment at once: appending a large one chunk by chunk would
  // reallocate (and copy) the record several times. Capped, so that a header alone
  // never makes us reserve more than a typical WRITE.
  constexpr uint32_t kMaxReserve = 2u << 20;
  record_.reserve(record_.size() + std::min(length, kMaxReserve));
  in_fragment_ = true;
  fragment_left_ = length;
  last_fragment_ = last;
  return absl::OkStatus();
}

absl::Status RecordDecoder::Feed(std::string_view data,
                                 std::vector<std::string>* records) {
  if (!error_.ok()) return error_;
  while (true) {
    if (!in_fragment_) {
      if (data.empty()) return absl::OkStatus();
      const size_t take = std::min(kRecordMarkSize - header_have_, data.size());
      memcpy(header_ + header_have_, data.data(), take);
      header_have_ += take;
      data.remove_prefix(take);
      if (header_have_ < kRecordMarkSize) return absl::OkStatus();
      header_have_ = 0;
      const uint32_t header = (uint32_t{header_[0]} << 24) |
                              (uint32_t{header_[1]} << 16) | (uint32_t{header_[2]} << 8) |
                              uint32_t{header_[3]};
      error_ = OnHeader(header);
      if (!error_.ok()) return error_;
    }
    const size_t take = std::min<size_t>(fragment_left_, data.size());
    record_.append(data.data(), take);
    data.remove_prefix(take);
    fragment_left_ -= static_cast<uint32_t>(take);
    if (fragment_left_ > 0) return absl::OkStatus();  // data is exhausted
    in_fragment_ = false;
    if (last_fragment_) {
      records->push_back(std::move(record_));
      record_.clear();
    }
  }
}

void PutRecordMark(uint32_t length, bool last, char out[kRecordMarkSize]) {
  const uint32_t v = (length & kMaxFragmentLength) | (last ? kLastFragmentBit : 0);
  out[0] = static_cast<char>(v >> 24);
  out[1] = static_cast<char>(v >> 16);
  out[2] = static_cast<char>(v >> 8);
  out[3] = static_cast<char>(v);
}

std::string EncodeRecord(std::string_view payload, bool last) {
  std::string out(kRecordMarkSize + payload.size(), '\0');
  PutRecordMark(static_cast<uint32_t>(payload.size()), last, out.data());
  memcpy(out.data() + kRecordMarkSize, payload.data(), payload.size());
  return out;
}

}  // namespace localnfs::rpc
