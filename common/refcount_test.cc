// common/refcount_test.cc — RefCounted and Ref<T> (refcount.h).
#include "common/refcount.h"

#include <atomic>

#include "gtest/gtest.h"

namespace localnfs {
namespace {

struct Counted : RefCounted {
  explicit Counted(std::atomic<int>* d) : destroyed(d) {}
  ~Counted() override { (*destroyed)++; }
  std::atomic<int>* destroyed;
};

TEST(RefCount, TryGetFailsOnDyingObjectAndRefDropsLast) {
  std::atomic<int> destroyed{0};
  auto* c = new Counted(&destroyed);
  {
    Ref<Counted> a = Ref<Counted>::Adopt(c);
    Ref<Counted> b = a;
    EXPECT_EQ(c->RefCountForTesting(), 2);
  }
  EXPECT_EQ(destroyed.load(), 1);
}

}  // namespace
}  // namespace localnfs
