// server/nfs4/services.h — what the NFSv4 ops reach beyond their COMPOUND: the
// server-wide NFSv4 state (clients, sessions, opens, locks) and the namespace
// (pseudo file system, export table, handle key, Backend).
//
// Owns nothing: it gathers pointers to objects main.cc (or a test) owns, which
// outlive every COMPOUND. Handlers reach it as CompoundState::services.
//
// Thread-safety: the struct is immutable after construction; each pointee says
// its own.
#pragma once

namespace localnfs::server::nfs4 {

class PseudoFs;

struct Nfs4Services {
  // Filled as the parts of issue 17 land (sessions, namespace, state).

  // The namespace (pseudofs.h): the pseudo file system over the export table, with
  // the handle key and Backend it was made with. Null: ops that need it answer
  // NFS4ERR_SERVERFAULT.
  PseudoFs* namespace_fs = nullptr;
};

}  // namespace localnfs::server::nfs4
