#include "client_localio/rpc_pool.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status.h"

namespace localnfs::client {
namespace {

std::string MachineName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

}  // namespace

bool IsTransportError(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
}

absl::StatusOr<std::unique_ptr<RpcPool>> RpcPool::Create(const std::string& host,
                                                         uint16_t port,
                                                         const RpcPoolOptions& options) {
  std::unique_ptr<RpcPool> pool(new RpcPool(host, port, options));
  Slot* first = pool->slots_[0].get();
  absl::MutexLock l(&first->mu);
  ASSIGN_OR_RETURN(first->client, rpc::Client::Connect(host, port, options.connect_timeout));
  first->ever_connected = true;
  return pool;
}

RpcPool::RpcPool(std::string host, uint16_t port, RpcPoolOptions options)
    : host_(std::move(host)),
      port_(port),
      options_(options),
      machine_name_(MachineName()) {
  const int n = std::max(1, options_.size);
  for (int i = 0; i < n; ++i) slots_.push_back(std::make_unique<Slot>());
}

absl::Status RpcPool::Attempt(uint32_t prog, uint32_t vers, uint32_t proc,
                              xdrproc_t encode_args, const void* args, xdrproc_t decode_result,
                              void* result, const Credentials& cred, absl::Duration timeout) {
  const uint64_t start = next_.fetch_add(1, std::memory_order_relaxed);
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot* s = slots_[(start + i) % slots_.size()].get();
    if (s->mu.TryLock()) {
      absl::Status st = AttemptLocked(s, prog, vers, proc, encode_args, args, decode_result,
                                      result, cred, timeout);
      s->mu.Unlock();
      return st;
    }
  }
  Slot* s = slots_[start % slots_.size()].get();
  absl::MutexLock l(&s->mu);
  return AttemptLocked(s, prog, vers, proc, encode_args, args, decode_result, result, cred,
                       timeout);
}

absl::Status RpcPool::AttemptLocked(Slot* slot, uint32_t prog, uint32_t vers, uint32_t proc,
                                    xdrproc_t encode_args, const void* args,
                                    xdrproc_t decode_result, void* result,
                                    const Credentials& cred, absl::Duration timeout) {
  if (slot->client == nullptr) {
    auto c = rpc::Client::Connect(host_, port_, std::min(timeout, options_.connect_timeout));
    // Every connect failure (refused while the server restarts, reset, timeout) is
    // worth retrying; rpc::Client reports some of them with other codes.
    if (!c.ok()) return absl::UnavailableError(c.status().message());
    slot->client = *std::move(c);
    if (slot->ever_connected) {
      epoch_.fetch_add(1, std::memory_order_acq_rel);
      LOG_INFO("reconnected to %s:%d", host_, port_);
    }
    slot->ever_connected = true;
  }
  slot->client->SetAuthSys(cred, machine_name_);
  absl::Status s = slot->client->Call(prog, vers, proc, encode_args, args, decode_result,
                                      result, timeout);
  // The stream is unusable (closed) or its state unknown (a reply may still come):
  // start over on a new connection.
  if (IsTransportError(s)) slot->client.reset();
  return s;
}

absl::Status RpcPool::Call(uint32_t prog, uint32_t vers, uint32_t proc,
                           xdrproc_t encode_args, const void* args, xdrproc_t decode_result,
                           void* result, const Credentials& cred) {
  const absl::Time give_up = absl::Now() + options_.retry_timeout;
  absl::Duration backoff = absl::Milliseconds(20);
  for (int attempt = 0;; ++attempt) {
    absl::Status s = Attempt(prog, vers, proc, encode_args, args, decode_result, result, cred,
                             options_.call_timeout);
    if (!IsTransportError(s)) return s;
    const absl::Time now = absl::Now();
    if (now >= give_up) {
      return absl::Status(s.code(), absl::StrCat("server ", host_, ":", port_,
                                                 " not responding: ", s.message()));
    }
    if (attempt == 0 || attempt % 50 == 0) {
      LOG_WARNING("server %s:%d: %s; retrying", host_, port_, s.message());
    }
    absl::SleepFor(std::min(backoff, give_up - now));
    backoff = std::min(backoff * 2, absl::Milliseconds(500));
  }
}

absl::Status RpcPool::CallOnce(uint32_t prog, uint32_t vers, uint32_t proc,
                               xdrproc_t encode_args, const void* args,
                               xdrproc_t decode_result, void* result, const Credentials& cred,
                               absl::Duration timeout) {
  return Attempt(prog, vers, proc, encode_args, args, decode_result, result, cred, timeout);
}

}  // namespace localnfs::client
