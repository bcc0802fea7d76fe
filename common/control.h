// common/control.h — the runtime directory and the control socket: what localnfsd and
// localnfs-ctl share.
//
// The runtime directory (--runtime-dir) holds the LOCALIO broker files
// (localio/broker_format.h), the LOCALIO local socket (localio/proto.h) and the control
// socket `control.sock`: an AF_UNIX SOCK_STREAM socket, mode 0600, that answers only peers
// whose SO_PEERCRED uid is root or the server's own uid.
//
// Protocol: the client sends one request line (at most kMaxControlRequest bytes,
// '\n'-terminated); the server writes the answer and closes:
//   "status", "status json"    the server's status (server/status.h), text or JSON
//   "exports", "exports json"  the live exports and their client rules, the exports
//                              file and the last reload (server/admin_requests.h)
//   "reload"                   reload the exports file exactly as SIGHUP does, wait for
//                              it (at most kReloadWaitBound) and answer its report as
//                              one JSON object: "result" is "reloaded", "refused" (the
//                              old exports keep serving; "error" says why, for a bad
//                              file "FILE:LINE: …") or "unknown" (no result in time)
// An unknown request gets a line "error: …" and the close. The server answers one
// request at a time: a status asked during a reload waits for it.
//
// Thread-safety: stateless functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace localnfs {

inline constexpr char kControlSocketName[] = "control.sock";
inline constexpr size_t kMaxControlRequest = 64;
// Answers larger than this are cut by the client (a status of 1 024 bound clients
// and every export stays far below).
inline constexpr size_t kMaxControlReply = size_t{16} << 20;
// How long the server lets a "reload" request wait for the reload's result (reading
// the file may resolve host names); a client waits longer than this for the answer.
inline constexpr absl::Duration kReloadWaitBound = absl::Seconds(30);

// localnfsd's default --runtime-dir: /run/localnfs as root, $XDG_RUNTIME_DIR/localnfs
// otherwise, /tmp/localnfs-UID without XDG_RUNTIME_DIR. Clients (localnfs-mount,
// client_localio, localnfs-ctl) default to the same, or they would never find it.
std::string DefaultRuntimeDir();

// Connects to `<runtime_dir>/control.sock`, sends `request` and returns the whole
// answer. No server → kUnavailable naming the socket; an "error: …" answer →
// kInvalidArgument with that text.
absl::StatusOr<std::string> QueryControl(const std::string& runtime_dir,
                                         std::string_view request,
                                         absl::Duration timeout = absl::Seconds(10));

}  // namespace localnfs
