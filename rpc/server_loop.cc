// rpc/server_loop.cc — the rpc server's event loop (the kernel's svc_xprt.c: the
// transport's events, svc_xprt_enqueue, svc_close_xprt, svc_age_temp_xprts): one
// thread waits in epoll_wait and, for each event, accepts (server_listener.cc), reads
// a connection's bytes into its RecordDecoder and starts its complete records
// (Dispatcher::Receive, then Enqueue to the work queue, or held to be run on the loop
// itself: "Quick calls" in server.h), writes what workers left queued (EPOLLOUT),
// reaps zero-copy completions (EPOLLERR), carries out what workers asked through
// the wake eventfd (close, resume, stop reading, quit), offers reply room to the
// connections waiting for it, and closes idle connections.
//
// Thread-safety: everything here runs on the event-loop thread — the only thread that
// closes a connection or changes the set of connections (conns_, armed_listeners_,
// graveyard_, held_calls_: "Event loop only" in server_impl.h). Workers reach it only
// through mu_'s command lists and the wake eventfd.
#include "rpc/server_impl.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "common/rcu.h"
#include "common/release_queue.h"

namespace localnfs::rpc {

void Server::Impl::LoopMain() {
  RcuThread rcu;
  constexpr int kMaxEvents = 64;
  epoll_event events[kMaxEvents];
  bool quit = false;
  if (opts_.idle_timeout != absl::InfiniteDuration()) {
    next_idle_sweep_ = absl::Now() + std::clamp(opts_.idle_timeout / 4,
                                                absl::Milliseconds(10), absl::Seconds(1));
  }
  bool after_requests = false;
  while (!quit) {
    const int n = WaitForEvents(events, kMaxEvents, after_requests);
    after_requests = false;
    if (n < 0) {
      if (errno == EINTR) continue;
      LOG_ERROR("rpc: epoll_wait: %s", strerror(errno));
      break;
    }
    for (int i = 0; i < n; ++i) {
      auto* p = static_cast<Pollable*>(events[i].data.ptr);
      switch (p->kind) {
        case Pollable::Kind::kWake:
          OnWake(&quit);
          break;
        case Pollable::Kind::kTcpListener: {
          auto it = armed_listeners_.find(static_cast<Listener*>(p));
          if (it != armed_listeners_.end()) Accept(it->first);
          break;
        }
        case Pollable::Kind::kUdpSocket: {
          auto it = armed_listeners_.find(static_cast<Listener*>(p));
          if (it != armed_listeners_.end()) ReadDatagrams(it->second);
          break;
        }
        case Pollable::Kind::kConnection:
          OnConnection(static_cast<Connection*>(p), events[i].events);
          after_requests |= (events[i].events & EPOLLIN) != 0;
          break;
      }
    }
    RunHeldCalls();
    if (const absl::Time now = absl::Now(); now >= next_idle_sweep_) {
      CloseIdleConnections(now);
    }
    graveyard_.clear();
    FlushThisThread();
  }
  // Close everything still open. Workers may still hold references; the objects go
  // away with the last one.
  std::vector<Connection*> all;
  for (auto& [c, ref] : conns_) all.push_back(c);
  for (Connection* c : all) CloseConnection(c, false);
  graveyard_.clear();
  for (auto& [l, ref] : armed_listeners_) {
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, l->fd.get(), nullptr);
  }
  armed_listeners_.clear();
  // Only on a failed epoll_wait: Stop() must not wait for a loop that is gone.
  if (!reading_stopped_.HasBeenNotified()) reading_stopped_.Notify();
  FlushThisThread();
}

void Server::Impl::OnWake(bool* quit) {
  uint64_t v;
  while (::read(wake_fd_.get(), &v, sizeof(v)) > 0) {
  }
  std::vector<std::shared_ptr<Connection>> to_close, to_resume;
  bool stop_reading, do_quit;
  {
    absl::MutexLock l(&mu_);
    to_close.swap(close_requests_);
    to_resume.swap(resume_requests_);
    stop_reading = cmd_stop_reading_;
    do_quit = cmd_quit_;
  }
  for (auto& c : to_close) CloseConnection(c.get(), true);
  for (auto& c : to_resume) {
    c->ResumeHandled();
    if (conns_.contains(c.get())) StartPending(c);
  }
  OfferRoom();
  if (load_.TakeTrimWanted()) {
    load_.inflight.fetch_add(1);  // drained by Stop() like a request
    Work w;
    w.trim = true;
    PushWork(std::move(w));
  }
  if (stop_reading && !reading_stopped_.HasBeenNotified()) {
    for (auto& [l, ref] : armed_listeners_) {
      epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, l->fd.get(), nullptr);
      graveyard_.push_back(ref);
    }
    armed_listeners_.clear();
    for (auto& [c, ref] : conns_) c->StopReading();
    reading_stopped_.Notify();
  }
  if (do_quit) *quit = true;
}

void Server::Impl::OnConnection(Connection* c, uint32_t events) {
  auto it = conns_.find(c);
  if (it == conns_.end()) return;  // closed earlier in this batch
  std::shared_ptr<Connection> conn = it->second;
  // EPOLLERR also means "the error queue holds zero-copy completions".
  if ((events & EPOLLERR) && conn->zerocopy_used()) {
    if (!ReapCompletions(conn)) return;
    if (!(events & EPOLLHUP)) events &= ~EPOLLERR;
  }
  if (events & EPOLLOUT) {
    if (!Sent(conn, conn->Flush())) return;
    StartPending(conn);  // sending made room
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    if (conn->ReadingAllowed()) {
      ReadConnection(conn);  // reads to EOF / error and closes then
    } else if (events & (EPOLLHUP | EPOLLERR)) {
      CloseConnection(c, false);  // the peer is gone; nothing can be delivered
    }
  }
}

void Server::Impl::ReadConnection(const std::shared_ptr<Connection>& conn) {
  std::vector<std::string> records;
  for (int i = 0; i < kReadsPerWakeup && conn->ReadingAllowed(); ++i) {
    const ssize_t n = ::read(conn->fd(), read_buf_.data(), kReadChunk);
    if (n == 0) {
      CloseConnection(conn.get(), false);
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      const bool reset = errno == ECONNRESET;
      if (!reset) {
        LOG_WARNING("rpc: read from %s: %s", conn->info.peer().ToString(),
                    strerror(errno));
      }
      CloseConnection(conn.get(), !reset);
      return;
    }
    conn->Touch(absl::Now());
    absl::Status s = conn->decoder.Feed(
        std::string_view(read_buf_.data(), static_cast<size_t>(n)), &records);
    if (!s.ok()) {
      LOG_WARNING("rpc: closing connection from %s: %s", conn->info.peer().ToString(),
                  s.message());
      CloseConnection(conn.get(), true);
      return;
    }
    for (auto& r : records) conn->pending.push_back(std::move(r));
    records.clear();
    // Started first, then the rest (if any) announced: a record that starts at once
    // never turns EPOLLIN off and on again (two epoll_ctl calls per request at one in
    // flight). StartPending keeps the connection's view of what is pending.
    StartPending(conn);
    conn->PendingChanged();
    if (load_.inflight.load(std::memory_order_relaxed) >=
        static_cast<int64_t>(opts_.max_requests_total)) {
      if (uint64_t left_out = 0; busy_log_.Allow(&left_out)) {
        LOG_WARNING(
            "rpc: %d requests queued or running (--max-requests %u): not reading from "
            "connections that have requests pending",
            load_.inflight.load(), opts_.max_requests_total);
      }
    }
    if (static_cast<size_t>(n) < kReadChunk) break;  // the socket is very likely empty
  }
}

void Server::Impl::StartPending(const std::shared_ptr<Connection>& conn) {
  if (conn->next == nullptr && conn->pending.empty()) return;
  bool started = false;
  while (true) {
    if (conn->next == nullptr) {  // received (call header decoded) at its turn
      if (conn->pending.empty()) break;
      conn->next = dispatcher_.Receive(std::move(conn->pending.front()), &conn->info);
      conn->pending.pop_front();
    }
    std::unique_ptr<Call> call;
    size_t reserved = 0;
    if (!conn->StartNext(&call, &reserved)) {
      // The connection's view of `next` was left unknown when the one before started.
      if (started) conn->PendingChanged();
      break;
    }
    started = true;
    Work w;
    w.conn = conn;
    w.call = std::move(call);
    w.reserved = reserved;
    Enqueue(std::move(w));
  }
  if (conn->next != nullptr && conn->waiting_for_room()) {
    if (uint64_t left_out = 0; reply_cap_log_.Allow(&left_out)) {
      LOG_WARNING(
          "rpc: %d bytes of replies held (--max-reply-bytes %u): connections whose next "
          "reply does not fit wait until replies drain (%u such waits since the last line)",
          load_.reply_bytes.load(), opts_.max_reply_bytes, left_out + 1);
    }
  }
}

void Server::Impl::OfferRoom() {
  // Each waiter looks at the cap again: one that is still refused registers again
  // (and re-arms the wake-up), so none is forgotten when others took the room first.
  for (Connection* c : load_.TakeRoomWaiters()) {
    auto it = conns_.find(c);
    if (it == conns_.end()) continue;  // closed since
    std::shared_ptr<Connection> conn = it->second;
    conn->RoomOffered();  // also lets a connection with nothing pending read again
    StartPending(conn);
  }
}

void Server::Impl::CloseConnection(Connection* c, bool on_error) {
  auto it = conns_.find(c);
  if (it == conns_.end()) return;
  // Counted before Close(), which lets the peer see the close: a test (or a tool)
  // that reacts to it must find the counter already bumped. Only the loop closes, so
  // closed() cannot change in between.
  if (on_error && !it->second->closed()) {
    counters_.connections_closed_on_error.fetch_add(1);
  }
  it->second->pending.clear();  // never started: nothing to account for
  it->second->next.reset();
  if (opts_.max_connections_per_client > 0) {
    auto n = conns_per_client_.find(it->second->info.peer().AddressBytes());
    if (n != conns_per_client_.end() && --n->second == 0) conns_per_client_.erase(n);
  }
  uint64_t dropped = 0;
  if (it->second->Close(&dropped)) {
    load_.unsent_bytes.fetch_sub(static_cast<int64_t>(dropped));
  }
  graveyard_.push_back(std::move(it->second));
  conns_.erase(it);
  // Release: a reader that sees this close also sees the connection's accept counted
  // (open = accepted - closed never goes below 0).
  counters_.connections_closed.fetch_add(1, std::memory_order_release);
}

void Server::Impl::CloseIdleConnections(absl::Time now) {
  next_idle_sweep_ =
      now + std::clamp(opts_.idle_timeout / 4, absl::Milliseconds(10), absl::Seconds(1));
  const absl::Time cutoff = now - opts_.idle_timeout;
  std::vector<Connection*> idle;
  for (auto& [c, ref] : conns_) {
    if (c->IdleSince(cutoff)) idle.push_back(c);
  }
  if (idle.empty()) return;
  LOG_INFO("rpc: closing %u connection(s) idle for %s (--idle-timeout), e.g. from %s",
           idle.size(), absl::FormatDuration(opts_.idle_timeout),
           idle.front()->info.peer().ToString());
  for (Connection* c : idle) {
    counters_.connections_closed_idle.fetch_add(1, std::memory_order_relaxed);
    CloseConnection(c, false);
  }
}

int Server::Impl::WaitForEvents(epoll_event* events, int max_events, bool after_requests) {
  constexpr int kMissesBeforeBackOff = 3;
  constexpr int kRoundsPerPollWhenBackedOff = 64;
  if (opts_.busy_poll > absl::ZeroDuration() && after_requests &&
      (busy_poll_misses_ < kMissesBeforeBackOff ||
       ++rounds_without_poll_ >= kRoundsPerPollWhenBackedOff)) {
    rounds_without_poll_ = 0;
    const absl::Time until = absl::Now() + opts_.busy_poll;
    do {
      const int n = epoll_wait(epoll_fd_.get(), events, max_events, 0);
      if (n != 0) {
        if (n > 0) {
          busy_poll_misses_ = 0;
          counters_.busy_polls_hit.fetch_add(1, std::memory_order_relaxed);
        }
        return n;
      }
    } while (absl::Now() < until);
    ++busy_poll_misses_;
    counters_.busy_polls_missed.fetch_add(1, std::memory_order_relaxed);
  }
  return epoll_wait(epoll_fd_.get(), events, max_events, LoopTimeoutMs(absl::Now()));
}

int Server::Impl::LoopTimeoutMs(absl::Time now) const {
  if (next_idle_sweep_ == absl::InfiniteFuture()) return -1;
  if (now >= next_idle_sweep_) return 0;
  // Rounded up: waking a little late is fine, waking early just loops once more.
  return static_cast<int>(absl::ToInt64Milliseconds(next_idle_sweep_ - now)) + 1;
}

bool Server::Impl::ReapCompletions(const std::shared_ptr<Connection>& c) {
  const ReapResult r = c->ReapCompletions();
  counters_.zerocopy_sends_copied.fetch_add(r.sends_copied, std::memory_order_relaxed);
  if (r.queue_release) QueueRelease(c);
  if (r.socket_error != 0) {
    const bool reset = r.socket_error == ECONNRESET || r.socket_error == EPIPE;
    if (!reset) {
      LOG_WARNING("rpc: connection from %s: %s", c->info.peer().ToString(),
                  strerror(r.socket_error));
    }
    CloseConnection(c.get(), !reset);
    return false;
  }
  return true;
}

void Server::Impl::Enqueue(Work w) {
  load_.inflight.fetch_add(1);
  if (w.conn && opts_.inline_quick_calls && w.call->quick() && LoopTakes(w)) {
    held_bytes_ += w.call->record().size() + w.call->reply_bound();
    held_calls_.push_back(std::move(w));
    return;
  }
  PushWork(std::move(w));
}

bool Server::Impl::LoopTakes(const Work& w) const {
  // The round's first quick call, whatever its size: at one call in flight a hand-off
  // only adds a thread switch.
  if (held_calls_.empty()) return true;
  // Then more of the same connection's while they are small: the hand-off costs more
  // than a cached 4 KiB READ or a GETATTR, but a round of large READs or WRITEs
  // (megabytes to copy) runs faster spread over the workers, and must not keep the
  // loop from the other connections.
  return held_calls_.front().conn == w.conn && held_calls_.size() < kLoopCallsPerRound &&
         held_bytes_ + w.call->record().size() + w.call->reply_bound() <=
             kLoopBytesPerRound;
}

void Server::Impl::RunHeldCalls() {
  if (held_calls_.empty()) return;
  std::vector<Work> calls;
  calls.swap(held_calls_);
  held_bytes_ = 0;
  const std::shared_ptr<Connection> conn = calls.front().conn;
  conn->Cork();
  for (Work& w : calls) {
    if (!RunTcp(w, /*on_loop=*/true)) {
      // It would wait for the disk: the call goes to a worker as it is (decoded, with
      // what the program resolved), still counted in flight.
      PushWork(std::move(w));
      continue;
    }
    Finished(w);
  }
  Sent(conn, conn->Uncork());
}

bool Server::Impl::Sent(const std::shared_ptr<Connection>& c, const SendResult& r) {
  counters_.zerocopy_sends.fetch_add(r.zerocopy_sends, std::memory_order_relaxed);
  if (r.queue_release) QueueRelease(c);
  load_.unsent_bytes.fetch_sub(r.written);
  if (r.error) {
    CloseConnection(c.get(), true);
    return false;
  }
  return true;
}

}  // namespace localnfs::rpc
