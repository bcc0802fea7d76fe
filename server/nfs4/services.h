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
class PseudoFs;

struct Nfs4Services {
  // Filled as the parts of issue 17 land (sessions, namespace, state).
  // Clients, sessions, slots, leases (state.h); null only in tests of ops that need
  // none (the session ops then answer NFS4ERR_SERVERFAULT).
  Nfs4State* state = nullptr;
  // The namespace (pseudofs.h): the pseudo file system over the export table, with
  // the handle key and Backend it was made with. Null only in tests of the COMPOUND
  // loop: PUTROOTFH and PUTFH keep compound.h's placeholder, the other namespace
  // ops answer NFS4ERR_SERVERFAULT.
  PseudoFs* namespace_fs = nullptr;
  // Open and lock stateids, share reservations, lock files (open_state.h); null only
  // in tests of ops that need none (the stateful ops then answer NFS4ERR_SERVERFAULT).
  OpenStateTable* open_state = nullptr;
  // Calls and errors per op, counted by the COMPOUND loop (compound.h); null: not
  // counted.
  OpCounters* op_counters = nullptr;
};

}  // namespace localnfs::server::nfs4
