// server/reload.cc — see reload.h.
#include "server/reload.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "export_cache/export_text.h"

namespace localnfs::server {
namespace {

ExportChange ChangeOf(const exports::Export& e) {
  return ExportChange{e.id(), e.path(), exports::ClientRulesText(e.spec().rules), {}, {}};
}

void SortByPath(std::vector<ExportChange>* changes) {
  std::sort(changes->begin(), changes->end(),
            [](const ExportChange& a, const ExportChange& b) { return a.path < b.path; });
}

UniqueFd MakeEventFd() {
  UniqueFd fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) {
    LOG_ERROR("reload queue: eventfd: %s", strerror(errno));
    abort();
  }
  return fd;
}

}  // namespace

const char* OutcomeName(ReloadReport::Outcome outcome) {
  switch (outcome) {
    case ReloadReport::Outcome::kReloaded: return "reloaded";
    case ReloadReport::Outcome::kRefused: return "refused";
    case ReloadReport::Outcome::kUnknown: return "unknown";
  }
  return "unknown";
}

void DiffExports(const ExportsById& before, const ExportsById& after, ReloadReport* report) {
  for (const auto& [id, now] : after) {
    auto it = before.find(id);
    if (it == before.end()) {
      report->added.push_back(ChangeOf(*now));
    } else if (it->second.get() != now.get()) {
      ExportChange c = ChangeOf(*now);
      c.old_path = it->second->path();
      c.old_rules = exports::ClientRulesText(it->second->spec().rules);
      report->changed.push_back(std::move(c));
    } else {
      ++report->unchanged;
    }
  }
  for (const auto& [id, old] : before)
    if (!after.contains(id)) report->removed.push_back(ChangeOf(*old));
  SortByPath(&report->added);
  SortByPath(&report->changed);
  SortByPath(&report->removed);
}

ReloadQueue::ReloadQueue() : wake_(MakeEventFd()) {}

ReloadReport ReloadQueue::RequestAndWait(absl::Duration bound) {
  const absl::Time deadline = absl::Now() + bound;
  absl::MutexLock lock(&mu_);
  ReloadReport answer;
  if (closed_) {
    answer.error = "localnfsd is shutting down";
    return answer;
  }
  const uint64_t ticket = ++requested_;
  // Under mu_, so Begin() sees the ticket and the wakeup together: a reload that
  // covers this request also drains its wakeup, and no second reload follows for it.
  const uint64_t one = 1;
  while (write(wake_.get(), &one, sizeof(one)) < 0 && errno == EINTR) {
  }
  while (finished_ < ticket && !closed_) {
    if (finished_cv_.WaitWithDeadline(&mu_, deadline)) break;  // timed out
  }
  if (finished_ >= ticket && last_.has_value()) return *last_;
  if (closed_) {
    answer.error = "localnfsd is shutting down";
    return answer;
  }
  answer.outcome = ReloadReport::Outcome::kUnknown;
  answer.error = absl::StrCat("no result within ", absl::FormatDuration(bound),
                              "; the reload will still run, its outcome is logged");
  return answer;
}

void ReloadQueue::DrainWakeFd() {
  uint64_t count;
  while (read(wake_.get(), &count, sizeof(count)) < 0 && errno == EINTR) {
  }
}

uint64_t ReloadQueue::Begin() {
  absl::MutexLock lock(&mu_);
  DrainWakeFd();
  return requested_;
}

void ReloadQueue::Finish(uint64_t ticket, ReloadReport report) {
  absl::MutexLock lock(&mu_);
  finished_ = std::max(finished_, ticket);
  last_ = std::move(report);
  finished_cv_.SignalAll();
}

void ReloadQueue::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  finished_cv_.SignalAll();
}

std::optional<ReloadReport> ReloadQueue::Last() const {
  absl::MutexLock lock(&mu_);
  return last_;
}

}  // namespace localnfs::server
