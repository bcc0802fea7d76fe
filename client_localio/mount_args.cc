// client_localio/mount_args.cc — see mount_args.h.
#include "client_localio/mount_args.h"

#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status.h"

namespace localnfs::client {
namespace {

bool ParsePort(std::string_view text, uint16_t* out) {
  uint32_t v = 0;
  if (!absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &v) || v == 0 ||
      v > 65535) {
    return false;
  }
  *out = static_cast<uint16_t>(v);
  return true;
}

// HOST[:PORT]:/EXPORT, HOST may be [IPv6].
absl::Status ParseSource(const std::string& src, MountArgs* a) {
  const size_t sep = src.find(":/");
  if (sep == std::string::npos || sep == 0) {
    return absl::InvalidArgumentError(absl::StrCat("bad source '", src,
                                                   "': expected HOST[:PORT]:/EXPORT"));
  }
  std::string hostport = src.substr(0, sep);
  a->export_path = src.substr(sep + 1);
  if (hostport.front() == '[') {
    const size_t close = hostport.find(']');
    if (close == std::string::npos) return absl::InvalidArgumentError("bad [IPv6] host");
    a->host = hostport.substr(1, close - 1);
    hostport = hostport.substr(close + 1);
    if (!hostport.empty()) {
      if (hostport[0] != ':' || !ParsePort(hostport.substr(1), &a->nfs_port)) {
        return absl::InvalidArgumentError(absl::StrCat("bad port in '", src, "'"));
      }
    }
  } else {
    const size_t colon = hostport.rfind(':');
    a->host = hostport.substr(0, colon);
    if (colon != std::string::npos &&
        !ParsePort(std::string_view(hostport).substr(colon + 1), &a->nfs_port)) {
      return absl::InvalidArgumentError(absl::StrCat("bad port in '", src, "'"));
    }
  }
  if (a->host.empty()) return absl::InvalidArgumentError("empty host");
  a->source = src;
  return absl::OkStatus();
}

absl::Status ParseOptions(const std::string& list, MountArgs* a) {
  for (absl::string_view opt : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&opt, "localio=")) {
      absl::StatusOr<LocalioMode> mode = ParseLocalioMode(std::string_view(opt.data(), opt.size()));
      if (!mode.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("bad -o localio=", std::string(opt), " (auto, on or off)"));
      }
      a->localio = *mode;
      continue;
    }
    if (opt == "passthrough") {
      a->passthrough = true;
      continue;
    }
    if (absl::ConsumePrefix(&opt, "runtime_dir=")) {
      if (opt.empty()) return absl::InvalidArgumentError("empty -o runtime_dir=");
      a->runtime_dir = std::string(opt);
      continue;
    }
    a->fuse_options.emplace_back(opt);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseMountArgs(int argc, char** argv, MountArgs* a) {
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag) -> absl::StatusOr<std::string> {
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(flag, " needs a value"));
      return std::string(argv[++i]);
    };
    if (arg == "-o") {
      ASSIGN_OR_RETURN(std::string v, value("-o"));
      RETURN_IF_ERROR(ParseOptions(v, a));
    } else if (arg.rfind("-o", 0) == 0 && arg.size() > 2) {
      RETURN_IF_ERROR(ParseOptions(arg.substr(2), a));
    } else if (arg == "--mount-port") {
      ASSIGN_OR_RETURN(std::string v, value("--mount-port"));
      if (!ParsePort(v, &a->mount_port)) {
        return absl::InvalidArgumentError(absl::StrCat("bad --mount-port ", v));
      }
    } else if (arg.rfind("--mount-port=", 0) == 0) {
      if (!ParsePort(std::string_view(arg).substr(13), &a->mount_port)) {
        return absl::InvalidArgumentError(absl::StrCat("bad ", arg));
      }
    } else if (arg == "--runtime-dir") {
      ASSIGN_OR_RETURN(a->runtime_dir, value("--runtime-dir"));
      if (a->runtime_dir.empty()) return absl::InvalidArgumentError("empty --runtime-dir");
    } else if (arg.rfind("--runtime-dir=", 0) == 0) {
      a->runtime_dir = arg.substr(14);
      if (a->runtime_dir.empty()) return absl::InvalidArgumentError("empty --runtime-dir");
    } else if (arg == "-f") {
      a->foreground = true;
    } else if (arg == "-d") {
      a->debug = true;
      a->foreground = true;
    } else if (!arg.empty() && arg[0] == '-') {
      return absl::InvalidArgumentError(absl::StrCat("unknown option ", arg));
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) {
    return absl::InvalidArgumentError("expected HOST[:PORT]:/EXPORT and MOUNTPOINT");
  }
  RETURN_IF_ERROR(ParseSource(positional[0], a));
  a->mountpoint = positional[1];
  return absl::OkStatus();
}

}  // namespace localnfs::client
