// server/service_notify.cc — see service_notify.h.
#include "server/service_notify.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/log.h"

#ifdef LOCALNFS_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace localnfs::server {
namespace {

void Send(const std::string& message) {
#ifdef LOCALNFS_HAVE_LIBSYSTEMD
  // unset_environment = 0: later messages need NOTIFY_SOCKET too. sd_notify returns 0
  // without NOTIFY_SOCKET and a negative errno when the socket cannot be reached.
  const int r = sd_notify(0, message.c_str());
  if (r < 0) LOG_WARNING("sd_notify to $NOTIFY_SOCKET failed: %s", strerror(-r));
#else
  static bool warned = false;
  if (!warned && getenv("NOTIFY_SOCKET") != nullptr) {
    warned = true;
    LOG_WARNING("NOTIFY_SOCKET is set, but this localnfsd was built without libsystemd: "
                "no READY=1 is sent (use Type=simple, or rebuild with libsystemd-dev)");
  }
  (void)message;
#endif
}

// A STATUS= value is one line.
std::string OneLine(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c == '\n') c = ' ';
  return out;
}

}  // namespace

void NotifyReady(std::string_view status) {
  Send(absl::StrCat("READY=1\nSTATUS=", OneLine(status)));
}

void NotifyReloading() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  const uint64_t usec =
      static_cast<uint64_t>(now.tv_sec) * 1000000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
  Send(absl::StrCat("RELOADING=1\nMONOTONIC_USEC=", usec, "\nSTATUS=reloading exports"));
}

void NotifyStopping() { Send("STOPPING=1\nSTATUS=shutting down"); }

bool ServiceNotifyBuiltIn() {
#ifdef LOCALNFS_HAVE_LIBSYSTEMD
  return true;
#else
  return false;
#endif
}

}  // namespace localnfs::server
