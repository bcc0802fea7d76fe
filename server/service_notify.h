// server/service_notify.h — telling the service manager where localnfsd is in its life.
//
// Owns: the sd_notify(3) messages of a Type=notify systemd service
// (contrib/systemd/localnfsd.service.in):
//   NotifyReady(status)      READY=1 and STATUS=…: serving (after the ready line), and
//                            again when a reload is done, successful or not;
//   NotifyReloading()        RELOADING=1 and MONOTONIC_USEC=<CLOCK_MONOTONIC now>, as
//                            systemd >= 253 wants it, at the start of a SIGHUP reload;
//   NotifyStopping()         STOPPING=1 when SIGTERM/SIGINT starts the shutdown.
// Each goes to $NOTIFY_SOCKET through libsystemd's sd_notify; without NOTIFY_SOCKET
// (not started by systemd) they do nothing. libsystemd is optional at build time
// (meson -Dsystemd=auto|enabled|disabled): a build without it ignores NOTIFY_SOCKET
// and says so once, at the first message, since a Type=notify unit would then wait
// for READY=1 until its start timeout.
//
// Thread-safety: call from one thread (localnfsd's main thread).
#pragma once

#include <string_view>

namespace localnfs::server {

void NotifyReady(std::string_view status);
void NotifyReloading();
void NotifyStopping();

// Whether this build sends the messages (built with libsystemd).
bool ServiceNotifyBuiltIn();

}  // namespace localnfs::server
