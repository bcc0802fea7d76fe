#include "common/release_queue.h"

#include <urcu.h>
#include <urcu/compiler.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "common/lockfree_list.h"
#include "common/tsan.h"

namespace localnfs {
namespace {

// Standard layout (caa_container_of uses offsetof), so the function is held by pointer.
struct ReleaseNode {
  rcu_head rcu;
  ReleaseNode* next;  // link in a per-thread deferred list
  ReleaseFn* fn;      // owned

  static ReleaseNode* Make(ReleaseFn f) {
    return new ReleaseNode{{}, nullptr, new ReleaseFn(std::move(f))};
  }
  void RunAndDestroy() {
    (*fn)();
    delete fn;
    delete this;
  }
};

// A thread's deferred list: lock-free push by its owner, whole-list take by anyone.
using DeferredList = LockFreeList<ReleaseNode>;

class ReleaseQueue {
 public:
  void Start() {
    std::lock_guard<std::mutex> l(mu_);
    if (running_) return;
    running_ = true;
    stopping_ = false;
    thread_ = std::thread([this] { Run(); });
  }

  void Stop() {
    Drain();
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!running_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
    std::lock_guard<std::mutex> l(mu_);
    running_ = false;
  }

  // From call_rcu's thread: the grace period has passed; hand the node to our thread.
  void Enqueue(ReleaseNode* n) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (running_ && !stopping_) {
        work_.push_back(n);
        cv_.notify_all();
        return;
      }
    }
    RunNode(n);  // no release thread: run inline (after the grace period all the same)
  }

  void QueueAfterGracePeriod(ReleaseNode* n) {
    queued_.fetch_add(1, std::memory_order_relaxed);
    // ThreadSanitizer sees neither liburcu's call_rcu queue (uatomic, in the
    // uninstrumented liburcu.so) nor its grace periods: without these two edges every
    // node (built here, run on the release thread) and every object freed by a release
    // after a reader used it was reported as a race. common/tsan.h; no-ops without TSan.
    tsan::Release(n);
    call_rcu(&n->rcu, [](rcu_head* head) {
      ReleaseNode* node = caa_container_of(head, ReleaseNode, rcu);
      tsan::Acquire(node);             // the queuing thread's writes (the node, fn)
      tsan::RcuGracePeriodAcquire();   // every read section that ended before now
      Instance().Enqueue(node);
    });
  }

  void RegisterList(DeferredList* list) {
    std::lock_guard<std::mutex> l(lists_mu_);
    lists_.insert(list);
  }
  void UnregisterList(DeferredList* list) {
    {
      std::lock_guard<std::mutex> l(lists_mu_);
      lists_.erase(list);
    }
    QueueList(list->TakeAll());
  }

  void QueueList(ReleaseNode* n) {
    while (n != nullptr) {
      ReleaseNode* next = n->next;
      QueueAfterGracePeriod(n);
      n = next;
    }
  }

  void Drain() {
    // 1. Per-thread deferred lists first (seed 004): the barrier must see them.
    {
      std::lock_guard<std::mutex> l(lists_mu_);
      for (DeferredList* list : lists_) QueueList(list->TakeAll());
    }
    // 2. Every call_rcu callback queued so far has run, i.e. pushed its node.
    {
      // rcu_barrier() callocs a record per call_rcu thread and passes it through
      // liburcu's wait-free queue, which ThreadSanitizer cannot see; the call_rcu thread
      // frees it. Not a race, but reported as one (free vs. calloc) unless the
      // allocation is hidden from TSan. No-op without TSan (common/tsan.h).
      tsan::IgnoreAccesses hide_liburcu_internals;
      rcu_barrier();
    }
    // 3. Flush: wait until the release thread has run everything pushed.
    const uint64_t target = queued_.load();
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [&] { return completed_.load() >= target; });
  }

  static ReleaseQueue& Instance() {
    static ReleaseQueue* q = new ReleaseQueue();  // lives for the process
    return *q;
  }

 private:
  void RunNode(ReleaseNode* n) {
    n->RunAndDestroy();
    completed_.fetch_add(1);
    std::lock_guard<std::mutex> l(mu_);
    done_cv_.notify_all();
  }

  void Run() {
    rcu_register_thread();
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      cv_.wait(l, [&] { return stopping_ || !work_.empty(); });
      if (work_.empty() && stopping_) break;
      ReleaseNode* n = work_.front();
      work_.pop_front();
      l.unlock();
      n->RunAndDestroy();
      l.lock();
      completed_.fetch_add(1);
      done_cv_.notify_all();
    }
    l.unlock();
    rcu_unregister_thread();
  }

  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<ReleaseNode*> work_;
  bool running_ = false;
  bool stopping_ = false;
  std::thread thread_;
  std::atomic<uint64_t> queued_{0};
  std::atomic<uint64_t> completed_{0};

  std::mutex lists_mu_;
  absl::flat_hash_set<DeferredList*> lists_;
};

// The calling thread's deferred list, registered on first use and handed to the queue
// when the thread exits.
struct ThreadDeferred {
  DeferredList list;
  ThreadDeferred() { ReleaseQueue::Instance().RegisterList(&list); }
  ~ThreadDeferred() { ReleaseQueue::Instance().UnregisterList(&list); }
};

DeferredList& ThisThreadList() {
  thread_local ThreadDeferred deferred;
  return deferred.list;
}

}  // namespace

void StartReleaseQueue() { ReleaseQueue::Instance().Start(); }
void StopReleaseQueue() { ReleaseQueue::Instance().Stop(); }

void QueueReleaseAfterGracePeriod(ReleaseFn fn) {
  ReleaseQueue::Instance().QueueAfterGracePeriod(ReleaseNode::Make(std::move(fn)));
}

void DeferRelease(ReleaseFn fn) {
  ThisThreadList().Push(ReleaseNode::Make(std::move(fn)));
}

void FlushThisThread() { ReleaseQueue::Instance().QueueList(ThisThreadList().TakeAll()); }

void DrainReleases() { ReleaseQueue::Instance().Drain(); }

}  // namespace localnfs
