// server/reload.h — reloading the exports, one way for SIGHUP and `localnfs-ctl reload`.
//
// Owns:
//   ReloadReport  what one reload did: the exports it added, changed and removed and how
//                 many it left alone — or why it was refused (the exports file does not
//                 parse: "FILE:LINE: …", a directory is missing, the server has no
//                 --exports file), in which case the old table keeps serving.
//   DiffExports   the added/changed/removed/unchanged part of a report, from the table's
//                 Export objects before and after ExportTable::Load (a Load keeps the
//                 object of an unchanged export, so a new object under an old id is a
//                 change).
//   ReloadQueue   the hand-off that makes every reload run on localnfsd's main thread,
//                 one at a time: the main loop polls wake_fd() next to its signalfd;
//                 the control thread's RequestAndWait() queues a request, wakes it and
//                 waits — bounded — for a reload that began after the request (a
//                 SIGHUP reload that began later covers it too: it read the file after
//                 the request was made). The main thread brackets each reload, whatever
//                 asked for it, with Begin() and Finish().
//
// Thread-safety: ReloadQueue is internally locked; Begin/Finish/Close from the main
// thread only, RequestAndWait from any other thread (the control thread), Last() from
// any. ReloadReport and DiffExports are values / stateless.
#pragma once

#include <stdint.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/refcount.h"
#include "common/unique_fd.h"
#include "export_cache/export.h"

namespace localnfs::server {

// One export as a reload report names it.
struct ExportChange {
  uint32_t id = 0;
  std::string path;
  std::string rules;  // exports::ClientRulesText: "who(options) …"
  // kChanged only: the export before the reload (the path differs when an fsid= kept
  // the id across a rename; equal rules mean the directory itself was replaced).
  std::string old_path;
  std::string old_rules;
};

struct ReloadReport {
  enum class Outcome {
    kReloaded,  // the table now holds the file's exports
    kRefused,   // nothing changed; `error` says why
    kUnknown,   // the requester stopped waiting; the reload's outcome is logged
  };
  Outcome outcome = Outcome::kRefused;
  std::string error;
  std::string cause;  // who asked: "SIGHUP" or "localnfs-ctl"
  std::string exports_file;  // --exports ("" without one)
  absl::Time finished = absl::InfinitePast();
  std::vector<ExportChange> added, changed, removed;  // each sorted by path
  size_t unchanged = 0;
  size_t exports = 0;       // exports serving after the reload (refused: the old ones)
  uint64_t generation = 0;  // ExportTable::generation() afterwards
};

const char* OutcomeName(ReloadReport::Outcome outcome);  // "reloaded", "refused", "unknown"

using ExportsById = absl::flat_hash_map<uint32_t, Ref<exports::Export>>;
// Fills report->added/changed/removed/unchanged from the table before and after a
// successful Load.
void DiffExports(const ExportsById& before, const ExportsById& after, ReloadReport* report);

class ReloadQueue {
 public:
  ReloadQueue();  // aborts when no eventfd can be made (fd exhaustion at startup)
  ReloadQueue(const ReloadQueue&) = delete;
  ReloadQueue& operator=(const ReloadQueue&) = delete;

  // Readable while a requested reload has not begun (an eventfd; the main loop polls it).
  int wake_fd() const { return wake_.get(); }

  // Not the main thread: asks for a reload and waits up to `bound` for one that begins
  // after this call to finish; returns its report. kUnknown when the bound passed (the
  // reload may still run, or not yet have begun: it will), kRefused after Close().
  ReloadReport RequestAndWait(absl::Duration bound) ABSL_LOCKS_EXCLUDED(mu_);

  // Main thread, before a reload (whatever asked for it): that reload covers every
  // request made so far. Returns the ticket to hand to Finish().
  uint64_t Begin() ABSL_LOCKS_EXCLUDED(mu_);
  // Main thread, after it: publishes `report` as the last one and answers the
  // requests it covers.
  void Finish(uint64_t ticket, ReloadReport report) ABSL_LOCKS_EXCLUDED(mu_);
  // Main thread, at shutdown before the control socket stops: waiting requests and
  // later ones are refused ("localnfsd is shutting down"), so the control thread
  // never waits for a reload that will not come.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  // The report of the last reload that finished; nullopt before the first.
  std::optional<ReloadReport> Last() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void DrainWakeFd() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const UniqueFd wake_;  // eventfd, non-blocking; written and drained under mu_
  mutable absl::Mutex mu_;
  absl::CondVar finished_cv_;
  uint64_t requested_ ABSL_GUARDED_BY(mu_) = 0;  // tickets handed to requests
  uint64_t finished_ ABSL_GUARDED_BY(mu_) = 0;   // every ticket <= this is answered
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<ReloadReport> last_ ABSL_GUARDED_BY(mu_);
};

}  // namespace localnfs::server
