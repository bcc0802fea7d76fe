// common/lockfree_list.h — an intrusive lock-free list: any thread pushes one node,
// any thread takes the whole list at once.
//
// This is the list of seed 001 (svcrdma's sc_send_ctxts / llist) and seed 004 (the
// per-cpu deferred frees): producers that must not block or sleep only push; whoever
// is allowed to do the costly part later takes everything in one exchange. Push()
// reports the empty → non-empty transition, which is the producer's cue to schedule
// the consumer exactly once per batch (the self-enqueue of seed 001).
//
// Owns: nothing. Nodes are the caller's (a `Node* next` member is the link); a node
// is pushed at most once until it was taken again.
//
// Thread-safety: Push, TakeAll and empty from any thread. TakeAll returns the nodes
// newest first; the acquire/release pair makes what a producer wrote to a node
// before pushing it visible to the thread that takes it.
#pragma once

#include <atomic>

namespace localnfs {

template <typename Node>
class LockFreeList {
 public:
  // Returns true when the list was empty before this push.
  bool Push(Node* node) {
    Node* old = head_.load(std::memory_order_relaxed);
    do {
      node->next = old;
    } while (!head_.compare_exchange_weak(old, node, std::memory_order_release,
                                          std::memory_order_relaxed));
    return old == nullptr;
  }
  // Takes every node (newest first, linked through `next`); nullptr when empty.
  Node* TakeAll() { return head_.exchange(nullptr, std::memory_order_acquire); }
  bool empty() const { return head_.load(std::memory_order_relaxed) == nullptr; }

 private:
  std::atomic<Node*> head_{nullptr};
};

}  // namespace localnfs
