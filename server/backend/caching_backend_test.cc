// server/backend/caching_backend_test.cc — what the caching layer keeps and drops.
#include "server/backend/caching_backend.h"

#include "gtest/gtest.h"

namespace localnfs::server::backend {
namespace {
}  // namespace
}  // namespace localnfs::server::backend
