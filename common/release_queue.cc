#include "common/release_queue.h"

#include <urcu.h>
#include <urcu/compiler.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
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
  void Start() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    if (running_) return;
    running_ = true;
    stopping_ = false;
    thread_ = std::thread([this] { Run(); });
  }

  void Stop() ABSL_LOCKS_EXCLUDED(mu_, lists_mu_) {
    Drain();
    {
      absl::MutexLock l(&mu_);
      if (!running_) return;
      stopping_ = true;
    }
    cv_.SignalAll();
    thread_.join();
    absl::MutexLock l(&mu_);
    running_ = false;
  }

  // From call_rcu's thread: the grace period has passed; hand the node to our thread.
  void Enqueue(ReleaseNode* n) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock l(&mu_);
      if (running_ && !stopping_) {
        work_.push_back(n);
        cv_.SignalAll();
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

  void RegisterList(DeferredList* list) ABSL_LOCKS_EXCLUDED(lists_mu_) {
    absl::MutexLock l(&lists_mu_);
    lists_.insert(list);
  }
  void UnregisterList(DeferredList* list) ABSL_LOCKS_EXCLUDED(lists_mu_) {
    {
      absl::MutexLock l(&lists_mu_);
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

  void Drain() ABSL_LOCKS_EXCLUDED(mu_, lists_mu_) {
    // 1. Per-thread deferred lists first (seed 004): the barrier must see them.
    {
      absl::MutexLock l(&lists_mu_);
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
    absl::MutexLock l(&mu_);
    while (completed_.load() < target) done_cv_.Wait(&mu_);
  }

  static ReleaseQueue& Instance() {
    static ReleaseQueue* q = new ReleaseQueue();  // lives for the process
    return *q;
  }

 private:
  void RunNode(ReleaseNode* n) ABSL_LOCKS_EXCLUDED(mu_) {
    n->RunAndDestroy();
    completed_.fetch_add(1);
    absl::MutexLock l(&mu_);
    done_cv_.SignalAll();
  }

  void Run() ABSL_LOCKS_EXCLUDED(mu_) {
    rcu_register_thread();
    mu_.Lock();
    for (;;) {
      while (!stopping_ && work_.empty()) cv_.Wait(&mu_);
      if (work_.empty() && stopping_) break;
      ReleaseNode* n = work_.front();
      work_.pop_front();
      mu_.Unlock();
      n->RunAndDestroy();
      mu_.Lock();
      completed_.fetch_add(1);
      done_cv_.SignalAll();
    }
    mu_.Unlock();
    rcu_unregister_thread();
  }

  absl::Mutex mu_;
  absl::CondVar cv_, done_cv_;
  std::deque<ReleaseNode*> work_ ABSL_GUARDED_BY(mu_);
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // started by Start(), joined by Stop(): both by the owner thread
  std::atomic<uint64_t> queued_{0};
  std::atomic<uint64_t> completed_{0};

  absl::Mutex lists_mu_;
  absl::flat_hash_set<DeferredList*> lists_ ABSL_GUARDED_BY(lists_mu_);
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
