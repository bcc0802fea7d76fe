// tools/bench/targets.cc — target URLs (see targets.h) and the factory over them.
#include "tools/bench/targets.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace localnfs::bench {
namespace {

absl::Status BadUrl(absl::string_view url, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("target '", url, "': ", why));
}

bool ParsePort(absl::string_view text, uint16_t* port) {
  uint32_t n = 0;
  if (!absl::SimpleAtoi(text, &n) || n == 0 || n > 65535) return false;
  *port = static_cast<uint16_t>(n);
  return true;
}

}  // namespace

absl::StatusOr<TargetUrl> ParseTargetUrl(absl::string_view url) {
  TargetUrl t;
  absl::string_view rest = url;
  if (absl::ConsumePrefix(&rest, "file://")) {
    t.kind = TargetUrl::Kind::kFile;
    t.path = std::string(rest);
    if (t.path.empty() || t.path[0] != '/') return BadUrl(url, "file:// needs an absolute DIR");
    return t;
  }
  if (absl::ConsumePrefix(&rest, "nfs://")) {
    t.kind = TargetUrl::Kind::kLocalnfs;
  } else if (absl::ConsumePrefix(&rest, "libnfs://")) {
    t.kind = TargetUrl::Kind::kLibnfs;
  } else {
    return BadUrl(url, "scheme must be file://, nfs:// or libnfs://");
  }
  std::pair<absl::string_view, absl::string_view> path_query =
      absl::StrSplit(rest, absl::MaxSplits('?', 1));
  size_t slash = path_query.first.find('/');
  if (slash == absl::string_view::npos) return BadUrl(url, "no /EXPORT path");
  absl::string_view host_port = path_query.first.substr(0, slash);
  t.path = std::string(path_query.first.substr(slash));
  std::pair<absl::string_view, absl::string_view> hp =
      absl::StrSplit(host_port, absl::MaxSplits(':', 1));
  t.host = std::string(hp.first);
  if (t.host.empty()) return BadUrl(url, "no host");
  if (!hp.second.empty() && !ParsePort(hp.second, &t.nfs_port))
    return BadUrl(url, absl::StrCat("bad port '", hp.second, "'"));
  for (absl::string_view kv : absl::StrSplit(path_query.second, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    if (p.first == "mountport") {
      if (!ParsePort(p.second, &t.mount_port))
        return BadUrl(url, absl::StrCat("bad mountport '", p.second, "'"));
    } else if (p.first == "localio" && t.kind == TargetUrl::Kind::kLocalnfs) {
      t.localio = std::string(p.second);
    } else if (p.first == "runtime_dir" && t.kind == TargetUrl::Kind::kLocalnfs) {
      t.runtime_dir = std::string(p.second);
    } else {
      return BadUrl(url, absl::StrCat("unknown parameter '", p.first, "'"));
    }
  }
  return t;
}

absl::StatusOr<std::unique_ptr<Target>> OpenTarget(const TargetUrl& url, int queue_depth) {
  switch (url.kind) {
    case TargetUrl::Kind::kFile: return OpenFileTarget(url.path);
    case TargetUrl::Kind::kLocalnfs: return OpenLocalnfsTarget(url, queue_depth);
    case TargetUrl::Kind::kLibnfs: return OpenLibnfsTarget(url);
  }
  return absl::InvalidArgumentError("unknown target kind");
}

}  // namespace localnfs::bench
