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

class Nfs4State;
class OpenStateTable;
class OpCounters;

struct Nfs4Services {
  // Filled as the parts of issue 17 land (sessions, namespace, state).
  // Clients, sessions, slots, leases (state.h); null only in tests of ops that need
  // none (the session ops then answer NFS4ERR_SERVERFAULT).
  Nfs4State* state = nullptr;
  // Opens and locks (open_state.h); null until the ops that use it are wired.
  OpenStateTable* open_state = nullptr;
  // Calls and errors per op, counted by the COMPOUND loop (compound.h); null: not
  // counted.
  OpCounters* op_counters = nullptr;
};

}  // namespace localnfs::server::nfs4
