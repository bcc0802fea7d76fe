// rpc/server_workers.cc — the rpc server's work queue and its workers (the kernel's
// svc.c: svc_process, and svc_xprt.c's svc_recv/svc_send; our work queue is its
// pool's sp_xprts): a worker takes a Work (a TCP call, received and perhaps run on the
// loop up to a step that would block; a UDP datagram; or a connection's completed
// zero-copy replies to free), runs it with the Dispatcher, sends the reply on its
// connection (or leaves what the socket does not take for the loop's EPOLLOUT), and
// asks the loop to close or resume a connection when that is needed. Between RPCs a
// worker frees released zero-copy replies (seed 001) and, when reply memory fell from
// high to little, gives freed heap back to the system (malloc_trim).
//
// Thread-safety: the queue (work_, workers_quit_) is guarded by work_mu_; PushWork and
// QueueRelease are called by the loop and by workers; RunTcp runs on a worker, or on
// the loop for a held quick call; SendOn may run on any worker (Connection serializes
// sends under its own mutex); AskLoopTo* take mu_ and wake the loop.
#include "rpc/server_impl.h"

#include <malloc.h>
#include <sys/socket.h>

#include <memory>
#include <utility>

#include "common/rcu.h"
#include "common/release_queue.h"

namespace localnfs::rpc {

void Server::Impl::PushWork(Work w) {
  absl::MutexLock l(&work_mu_);
  work_.push_back(std::move(w));
  work_cv_.Signal();
}

void Server::Impl::QueueRelease(const std::shared_ptr<Connection>& c) {
  load_.inflight.fetch_add(1);
  Work w;
  w.conn = c;
  w.release_only = true;
  PushWork(std::move(w));
}

void Server::Impl::FreeReleased(const std::shared_ptr<Connection>& c) {
  bool resume = false;
  if (const uint64_t n = c->FreeReleasedReplies(&resume); n > 0) {
    counters_.zerocopy_replies_freed.fetch_add(n, std::memory_order_relaxed);
  }
  if (resume) AskLoopToResume(c);
}

void Server::Impl::Finished(Work& w) {
  w = Work{};  // drop the connection reference before the request counts as done
  load_.inflight.fetch_sub(1);
}

void Server::Impl::WorkerMain() {
  RcuThread rcu;
  while (true) {
    Work w;
    {
      absl::MutexLock l(&work_mu_);
      while (work_.empty() && !workers_quit_) work_cv_.Wait(&work_mu_);
      if (workers_quit_) break;
      w = std::move(work_.front());
      work_.pop_front();
    }
    if (w.trim) {
      const absl::Time t0 = absl::Now();
      malloc_trim(0);
      LOG_DEBUG("rpc: reply memory fell to %d bytes: heap trimmed in %s",
                load_.reply_bytes.load(), absl::FormatDuration(absl::Now() - t0));
    } else if (w.release_only) {
      FreeReleased(w.conn);
    } else if (w.conn) {
      RunTcp(w);
      FreeReleased(w.conn);  // between RPCs, on a worker (seed 001)
    } else {
      RunUdp(w);
    }
    Finished(w);
    FlushThisThread();
  }
}

bool Server::Impl::RunTcp(Work& w, bool on_loop) {
  Connection& c = *w.conn;
  // A request whose client has gone is not run: its reply could not be delivered,
  // and the client retransmits on its new connection.
  if (!c.closed()) {
    ReplyRecord reply;
    Dispatcher::RunOptions run;
    run.with_record_mark = true;
    run.must_not_block = on_loop;
    run.bulk_by_reference = true;
    // A parked retransmit's reply is sent by whichever worker completes the original.
    run.deliver_later = [this, conn = w.conn](ReplyRecord r) { SendOn(conn, std::move(r)); };
    switch (dispatcher_.Run(*w.call, &reply, std::move(run))) {
      case Dispatcher::Outcome::kReply:
        SendOn(w.conn, std::move(reply), w.reserved);
        w.reserved = 0;  // the reply took its place
        break;
      case Dispatcher::Outcome::kNoReply:
        break;
      case Dispatcher::Outcome::kWouldBlock:
        return false;
    }
  }
  w.call.reset();  // the call's resources go before the request counts as finished
  if (c.RequestFinished(w.reserved)) AskLoopToResume(w.conn);
  w.reserved = 0;
  return true;
}

void Server::Impl::SendOn(const std::shared_ptr<Connection>& c, ReplyRecord reply,
                          size_t reservation) {
  const SendResult r = c->SendReply(std::move(reply), reservation);
  counters_.zerocopy_sends.fetch_add(r.zerocopy_sends, std::memory_order_relaxed);
  if (r.queue_release) QueueRelease(c);
  load_.unsent_bytes.fetch_add(r.left_queued);  // also on error: closing drops them
  if (r.error) AskLoopToClose(c);
}

void Server::Impl::RunUdp(Work& w) {
  // Datagrams have no connection; each call gets its own short-lived ConnectionInfo.
  ConnectionInfo info(next_conn_id_.fetch_add(1), w.udp_peer, w.udp->local);
  // Best effort, as UDP is: a reply that does not fit the socket buffer is lost.
  // (Without bulk_by_reference a reply is its bytes alone.)
  auto send = [](const Listener& udp, const PeerAddress& to, const ReplyRecord& r) {
    ::sendto(udp.fd.get(), r.bytes().data(), r.bytes().size(), MSG_DONTWAIT | MSG_NOSIGNAL,
             reinterpret_cast<const sockaddr*>(&to.addr), to.len);
  };
  auto later = [send, udp = w.udp, to = w.udp_peer](ReplyRecord r) { send(*udp, to, r); };
  std::unique_ptr<Call> call = dispatcher_.Receive(std::move(w.datagram), &info);
  ReplyRecord reply;
  Dispatcher::RunOptions run;
  run.with_record_mark = false;
  run.deliver_later = std::move(later);
  if (dispatcher_.Run(*call, &reply, std::move(run)) == Dispatcher::Outcome::kReply) {
    send(*w.udp, w.udp_peer, reply);
  }
}

void Server::Impl::AskLoopToClose(const std::shared_ptr<Connection>& c) {
  {
    absl::MutexLock l(&mu_);
    close_requests_.push_back(c);
  }
  Wake();
}

void Server::Impl::AskLoopToResume(const std::shared_ptr<Connection>& c) {
  {
    absl::MutexLock l(&mu_);
    resume_requests_.push_back(c);
  }
  Wake();
}

}  // namespace localnfs::rpc
