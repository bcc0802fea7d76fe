// export_cache/squash.cc — see squash.h.
#include "export_cache/squash.h"

#include <algorithm>

namespace localnfs::exports {

Credentials SquashCredentials(const ExportOptions& options, const Credentials& cred) {
  Credentials out = cred;
  switch (options.squash) {
    case Squash::kNone:
      break;
    case Squash::kAll:
      out.uid = options.anonuid;
      out.gid = options.anongid;
      out.groups.clear();
      break;
    case Squash::kRoot:
      // uid and gid are squashed independently: a non-root user in group 0 loses
      // group 0 too, or root's group would stay reachable through it.
      if (out.uid == 0) out.uid = options.anonuid;
      if (out.gid == 0) out.gid = options.anongid;
      out.groups.erase(std::remove(out.groups.begin(), out.groups.end(), 0u),
                       out.groups.end());
      break;
  }
  return out;
}

}  // namespace localnfs::exports
