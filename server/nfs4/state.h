// server/nfs4/state.h — NFSv4.1 clients, sessions, slots and leases (RFC 8881 §2.4,
// §2.10, §18.35–18.37, §18.46, §18.49–18.51): the kernel's nfs4state.c client and
// session half.
//
// Owns: every client record (confirmed, unconfirmed, courtesy), every session and its
// fore-channel slot table, which IS the session's reply cache (RFC 8881 §2.10.6.1:
// each slot keeps the encoded COMPOUND4res of its last request), the connections bound
// to each session, each client's lease, and the grace period after a restart (which
// clients of the previous instance may reclaim; "Restart and grace" below). Not owned:
// the record file in --state-dir (Options::records, client_records.h).
//
// Records.
//  - EXCHANGE_ID (ExchangeId) follows RFC 8881 §18.35.5's cases as knfsd's
//    nfsd4_exchange_id does: a new owner → a new unconfirmed record (case 1); the same
//    owner, verifier and principal as a confirmed record → that record again, with
//    CONFIRMED_R (case 2); another principal → NFS4ERR_CLID_INUSE while the confirmed
//    record has state (sessions, opens or locks) and is not expired, else the confirmed
//    record is discarded at once and a new unconfirmed one made (case 3; pynfs EID5e:
//    the old clientid is then stale); an unconfirmed record of the owner is replaced
//    (case 4); the same owner with a new verifier (the client rebooted) → a new
//    unconfirmed record, the old confirmed one lives until the new one is confirmed
//    (case 5); UPD_CONFIRMED_REC_A as cases 6–9 (NOT_SAME, PERM, NOENT).
//  - CREATE_SESSION (CreateSession) confirms an unconfirmed record (discarding the
//    owner's previous confirmed record and its sessions), with the per-client
//    CREATE_SESSION sequence id and its one-entry reply cache (§18.36.4: a replay gets
//    the same reply; on an unconfirmed record a replay is SEQ_MISORDERED, as knfsd).
// Principals are compared by flavor, uid and gid (AUTH_SYS names no principal). Unlike
// knfsd, CREATE_SESSION on an unconfirmed record does not also compare the client's
// address. Only SP4_NONE state protection (ExchangeId refuses SP4_MACH_CRED over
// AUTH_SYS with NFS4ERR_INVAL and SP4_SSV with NFS4ERR_ENCR_ALG_UNSUPP, as knfsd).
//
// The back channel: CREATE_SESSION4_FLAG_CONN_BACK_CHAN is accepted and answered set
// (as knfsd, which keeps it), the back channel's attributes are answered with one slot
// and nothing cached, csa_cb_program is kept — but no callback is ever sent: nothing
// this server grants (no delegations, no layouts) is recalled. SEQUENCE therefore never
// reports SEQ4_STATUS_CB_PATH_DOWN. PERSIST and RDMA are answered cleared.
//
// Slots (Sequence). seqid == slot's + 1 → a new request: the slot is held (in use)
// by the COMPOUND until its SlotHold ends; seqid == slot's → a retry: the cached reply
// bytes (SequenceResult::replay) — or NFS4ERR_DELAY while the original still runs,
// NFS4ERR_SEQ_FALSE_RETRY when the COMPOUND's arguments (tag, minor version, ops)
// differ from the original's (a hash of their bytes), NFS4ERR_RETRY_UNCACHED_REP when no reply was
// kept (larger than ca_maxresponsesize_cached, or the reply was never encoded); anything else →
// NFS4ERR_SEQ_MISORDERED (knfsd's check_slot_seqid). Every reply that fits the
// session's ca_maxresponsesize_cached is kept, sa_cachethis or not (the slot's room is
// reserved anyway); sa_cachethis only makes a larger reply NFS4ERR_REP_TOO_BIG_TO_CACHE
// (the COMPOUND loop enforces the reply budget, compound.h).
//
// Leases, without a thread. A client's lease is renewed by every SEQUENCE (and by
// EXCHANGE_ID / CREATE_SESSION on it). A confirmed client whose lease ran out is a
// *courtesy* client (knfsd ≥ 5.19): its sessions and state stay, and its next SEQUENCE
// renews the lease and goes on as if nothing happened — until another client conflicts
// (EXCHANGE_ID case 3; an open or lock of another client: the open-state table asks
// IsCourtesy, takes the state and the op calls ExpireCourtesy) or the courtesy clients
// exceed Options::max_courtesy_clients (the oldest are discarded). Every confirmed
// client discarded is handed to Options::on_client_gone once mu_ is released (its opens
// and locks go with it; lock order: the open-state table's mutex, then mu_). An
// unconfirmed record is
// discarded once a lease passed. Expiry is computed lazily from the injected clock
// when a record is looked at, and discards happen in ExchangeId's sweep (O(clients),
// bounded by max_clients) — no laundromat work item to requeue.
//
// Bounds (a hostile client cannot grow memory without bound): max_clients records in
// total (courtesy, then unconfirmed ones make room, oldest first; else NFS4ERR_DELAY),
// max_sessions_per_client (NFS4ERR_NOSPC beyond), max_slots per session, and the cached
// reply bytes: a session reserves slots × ca_maxresponsesize_cached of
// max_cache_bytes at CREATE_SESSION — at most an eighth of what is left, never less
// than one slot (as knfsd's nfsd4_get_drc_mem: a new client always gets a session, and
// the overdraft is bounded by the sessions' bound) — released when it is destroyed. At most
// max_connections_per_session connection ids are remembered per session (the oldest
// forgotten: connections have no close notification here yet).
//
// Restart and grace (RFC 8881 §8.4.2, §8.4.3, §18.51; knfsd's nfs4recover.c and
// nfsd4_end_grace). With Options::records (a ClientRecordFile in --state-dir) a client's
// record — owner and principal, no state — is written when the client sends
// RECLAIM_COMPLETE (rca_one_fs false) and removed when the client goes: DESTROY_CLIENTID,
// discarded as an expired (courtesy) client or for a conflict, or replaced by a
// confirmed new boot of the same owner (whose own record is written at its own
// RECLAIM_COMPLETE). Written at RECLAIM_COMPLETE and not at CREATE_SESSION, as knfsd
// (nfsd4_reclaim_complete → nfsd4_client_record_create): a 4.1 client can hold no
// state before it (non-reclaim OPEN/LOCK are NFS4ERR_GRACE until then, §18.51.3), so a
// client that never got that far has nothing to reclaim and must not hold the next
// grace period open; and a client of the previous instance that did not finish
// reclaiming keeps its old record (so a second restart still lets it reclaim) until
// the grace period ends.
//  - At construction, the records the previous instance left are the clients that
//    may reclaim ("previous clients"). With some and Options::grace > 0 the server is
//    in grace for that long; without any, or with grace 0 (whose records are then
//    dropped), there is no grace period.
//  - A previous client is matched by owner (co_ownerid) and principal: the verifier
//    changes when the client reboots, not when the server restarts.
//  - Grace ends when its time runs out — noticed lazily, at the next call that looks
//    (every CheckReclaim/CheckGrace does, before any new state is granted) — or early,
//    once every previous client has sent RECLAIM_COMPLETE or is gone (DESTROY_CLIENTID,
//    or its new incarnation discarded). The log says when and why. At its end the
//    records of the previous clients that did not reclaim are removed: their window is
//    over, and another client may now take what they held.
//  - CheckReclaim(client, is_reclaim) is what OPEN and LOCK ask (knfsd's nfsd4_open /
//    nfs4_check_open_reclaim / nfsd4_lock): in grace a non-reclaim request is
//    NFS4ERR_GRACE; a non-reclaim request before the client's RECLAIM_COMPLETE is
//    NFS4ERR_GRACE in or out of grace (§18.51.3); a reclaim is allowed only in grace,
//    only for a previous client, and only until its RECLAIM_COMPLETE — else
//    NFS4ERR_NO_GRACE (knfsd answers RECLAIM_BAD for a client it has no record of; RFC
//    8881 §8.4.2.1 allows NO_GRACE, which the Linux client handles by reopening).
//    CheckGrace() is for the ops that would change what a reclaim expects to find:
//    REMOVE, RENAME, SETXATTR and REMOVEXATTR answer NFS4ERR_GRACE in grace (knfsd's
//    opens_in_grace checks in nfsd4_remove, nfsd4_rename, nfsd4_setxattr,
//    nfsd4_removexattr). The COMPOUND loop calls it for the ops flagged
//    kRefusedInGrace (compound.h); their handlers need not.
//
// Thread-safety: every method may be called from any thread. mu_ guards the client and
// session tables and each client's fields; each Session's own mutex guards its slots
// and connections (lock order: mu_, then a session's). A SlotHold touches only its
// session's mutex. The record file has its own locks (client_records.h): changed under
// mu_ (mu_, then the file's), written after mu_ is released, before the op answers.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <array>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rpc/nfs4.h"
#include "rpc/program.h"

namespace localnfs::server::nfs4 {

using SessionId = std::array<char, NFS4_SESSIONID_SIZE>;
using Verifier = std::array<char, NFS4_VERIFIER_SIZE>;

// Who called: what EXCHANGE_ID and CREATE_SESSION compare (knfsd's same_creds for
// AUTH_SYS).
struct Principal {
  rpc::AuthFlavor flavor = rpc::AuthFlavor::kNone;
  uint32_t uid = 0;
  uint32_t gid = 0;
  friend bool operator==(const Principal&, const Principal&) = default;
  static Principal Of(const rpc::CallContext& ctx);
};

// A channel's attributes as negotiated (channel_attrs4 without RDMA).
struct ChannelAttrs {
  uint32_t headerpadsize = 0;
  uint32_t maxrequestsize = 0;
  uint32_t maxresponsesize = 0;
  uint32_t maxresponsesize_cached = 0;
  uint32_t maxoperations = 0;
  uint32_t maxrequests = 0;
  static ChannelAttrs Of(const channel_attrs4& a);
  void To(channel_attrs4* out) const;  // ca_rdma_ird left empty
};

class Nfs4State;
class ClientRecordFile;
struct Session;

// A COMPOUND's hold on the slot its SEQUENCE took: the program hands it the encoded
// reply (Complete), which the slot keeps for a retry if it fits the session's
// ca_maxresponsesize_cached. Destroyed without Complete (the reply was not encoded),
// the slot is released with no reply kept: a retry gets NFS4ERR_RETRY_UNCACHED_REP.
class SlotHold {
 public:
  SlotHold(std::shared_ptr<Session> session, uint32_t slot)
      : session_(std::move(session)), slot_(slot) {}
  ~SlotHold();
  SlotHold(const SlotHold&) = delete;
  SlotHold& operator=(const SlotHold&) = delete;

  void Complete(std::shared_ptr<const std::string> reply);

  const SessionId& session_id() const;
  clientid4 client_id() const;
  uint32_t slot() const { return slot_; }
  // The session's fore channel (immutable).
  const ChannelAttrs& fore() const;

 private:
  void Release(std::shared_ptr<const std::string> reply);
  std::shared_ptr<Session> session_;
  const uint32_t slot_;
  bool done_ = false;
};

class Nfs4State {
 public:
  struct Options {
    absl::Duration lease = absl::Seconds(90);
    size_t max_clients = 1024;
    size_t max_courtesy_clients = 256;
    size_t max_sessions_per_client = 8;
    uint32_t max_slots = 64;
    // Per slot: the most COMPOUND reply bytes kept, RPC reply header included (what
    // ca_maxresponsesize_cached is clamped to). knfsd: NFSD_SLOT_CACHE_SIZE (2 KiB) +
    // its header.
    uint32_t max_cached_reply = 4096;
    // All sessions' reserved reply cache together.
    size_t max_cache_bytes = size_t{64} << 20;
    // What ca_maxrequestsize / ca_maxresponsesize are clamped to: the rpc server's
    // record limit, and the largest reply it will build.
    uint32_t max_request_size = 1u << 20;
    uint32_t max_response_size = (1u << 20) + 4096;
    size_t max_connections_per_session = 16;
    // eir_server_owner.so_major_id and eir_server_scope (knfsd: utsname nodename).
    std::string server_owner = "localnfs";
    std::string server_scope = "localnfs";
    // The clock (nanoseconds, monotonic) and this instance's boot value (the high half
    // of every clientid; the low 32 bits of session ids' tail): injected for tests.
    std::function<int64_t()> now_ns;
    uint32_t boot = 0;
    // Called for every confirmed client this table discarded (DESTROY_CLIENTID, a
    // courtesy client that lost a conflict or the cap, the old record of a rebooted
    // client), after mu_ was released: its open and lock state goes too (main.cc wires
    // it to OpenStateTable::ReleaseClient, whose mutex is taken before this table's).
    std::function<void(clientid4)> on_client_gone;
    // Restart and grace: the records kept in --state-dir (not owned; null: none kept and
    // never in grace) and how long the grace period lasts when the previous instance
    // left records (0: none; their records are dropped).
    ClientRecordFile* records = nullptr;
    absl::Duration grace = absl::ZeroDuration();
  };
  explicit Nfs4State(Options options);
  ~Nfs4State();
  Nfs4State(const Nfs4State&) = delete;
  Nfs4State& operator=(const Nfs4State&) = delete;

  const Options& options() const { return options_; }

  struct ExchangeIdResult {
    clientid4 clientid = 0;
    sequenceid4 sequenceid = 0;
    uint32_t flags = 0;
  };
  // `address`: the caller's, as shown by status. `holds_opens`: a client the open-state
  // table holds opens or locks for (ConfirmedClientOf's answer, asked of the table by
  // the caller: this table never calls into it) — state, for case 3, as its sessions.
  nfsstat4 ExchangeId(const EXCHANGE_ID4args& args, const Principal& who, ExchangeIdResult* out,
                      std::string_view address = {},
                      std::optional<clientid4> holds_opens = std::nullopt);
  // The confirmed record of `owner`, if there is one.
  std::optional<clientid4> ConfirmedClientOf(std::string_view owner);

  struct CreateSessionResult {
    SessionId sessionid{};
    sequenceid4 sequence = 0;
    uint32_t flags = 0;
    ChannelAttrs fore, back;
  };
  // `conn`: the calling connection's id (bound to the new session).
  nfsstat4 CreateSession(const CREATE_SESSION4args& args, const Principal& who, uint64_t conn,
                         CreateSessionResult* out);

  struct SequenceRequest {
    const SEQUENCE4args* args = nullptr;
    uint32_t numops = 0;        // the COMPOUND's op count
    size_t request_bytes = 0;   // the RPC call's size (no record mark)
    uint64_t request_hash = 0;  // of the COMPOUND's arguments (false-retry detection)
    uint64_t conn = 0;          // the calling connection's id
  };
  struct SequenceResult {
    // Set for a new request: the slot this COMPOUND holds.
    std::shared_ptr<SlotHold> hold;
    // Set for a retry: the reply to send as it is.
    std::shared_ptr<const std::string> replay;
    uint32_t highest_slotid = 0;
    uint32_t target_highest_slotid = 0;
    uint32_t status_flags = 0;
  };
  nfsstat4 Sequence(const SequenceRequest& req, SequenceResult* out);

  // `own`: the session the calling COMPOUND's SEQUENCE holds a slot of, if any.
  nfsstat4 DestroySession(const SessionId& id, const SessionId* own);
  // `own_client`: the client whose session the calling COMPOUND is in, if any.
  nfsstat4 DestroyClientId(clientid4 id, const std::optional<clientid4>& own_client);
  // dir: a CDFC4_* value as it came (anything else is NFS4ERR_INVAL); *out_dir: CDFS4_*.
  nfsstat4 BindConnToSession(const SessionId& id, uint32_t dir, uint64_t conn,
                             channel_dir_from_server4* out_dir);
  // RECLAIM_COMPLETE with rca_one_fs false: once per client (NFS4ERR_COMPLETE_ALREADY).
  nfsstat4 ReclaimComplete(clientid4 client);

  // Open and lock conflicts (OpenStateTable::MayDiscard): whether `client` is a
  // courtesy client (confirmed, its lease expired), whose state may be taken.
  bool IsCourtesy(clientid4 client) const;
  // The courtesy client whose state was taken is discarded, as knfsd expires it (its
  // next SEQUENCE gets NFS4ERR_BADSESSION and it starts again). Nothing if it renewed.
  void ExpireCourtesy(clientid4 client);
  // Grace (see "Restart and grace"). For OPEN and LOCK of `client` (the session's):
  // is_reclaim = OPEN CLAIM_PREVIOUS, LOCK with reclaim set. NFS4_OK, NFS4ERR_GRACE,
  // NFS4ERR_NO_GRACE, or NFS4ERR_STALE_CLIENTID for a client not confirmed.
  nfsstat4 CheckReclaim(clientid4 client, bool is_reclaim);
  // For REMOVE, RENAME, SETXATTR, REMOVEXATTR (the loop asks, OpDesc::kRefusedInGrace):
  // NFS4ERR_GRACE in grace, else NFS4_OK.
  nfsstat4 CheckGrace();
  bool in_grace();

  // For tests and status: how many records of each kind.
  struct Counts {
    size_t confirmed = 0, unconfirmed = 0, courtesy = 0, sessions = 0;
    size_t cache_bytes_reserved = 0;
  };
  Counts counts() const;
  bool reclaim_complete(clientid4 client) const;

  // For status: the clients (confirmed first, then by id), at most `max`.
  enum class ClientKind { kConfirmed, kCourtesy, kUnconfirmed };
  struct ClientInfo {
    clientid4 id = 0;
    ClientKind kind = ClientKind::kConfirmed;
    std::string address;  // as EXCHANGE_ID came from
    std::string owner;    // co_ownerid bytes, as sent
    int64_t lease_left_ms = 0;  // < 0: expired that long ago
    size_t sessions = 0;
    bool reclaim_complete = false;
  };
  std::vector<ClientInfo> clients(size_t max) const;
  // For status and tests: the grace period.
  struct GraceInfo {
    enum class Phase { kNone, kInGrace, kEnded };
    Phase phase = Phase::kNone;
    int64_t left_ms = 0;       // kInGrace: until it ends at the latest
    int64_t ended_ago_ms = 0;  // kEnded
    std::string why;           // kEnded: why it ended; kNone: why there was none
    size_t previous = 0;       // clients known from the previous instance
    size_t reclaimed = 0, gone = 0, pending = 0;
  };
  GraceInfo grace() const;
  // The connection ids bound to a session (tests).
  std::vector<uint64_t> session_connections(const SessionId& id) const;

 private:
  struct Client;
  Client* FindClient(clientid4 id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Client* FindByOwner(std::string_view owner, bool confirmed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Expired(const Client& c, int64_t now) const;
  bool HasState(const Client& c) const;
  // Removes a client with its sessions, and its record (if written). `replaced`: by a
  // new boot of its owner being confirmed (which is not the previous client gone).
  void Discard(clientid4 id, bool replaced = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Grace: ends it when its time ran out; ends it with `why`; marks a previous client
  // reclaimed or gone (ending grace when none is left pending).
  void GraceTick(int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndGrace(int64_t now, std::string why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  enum class Fate { kPending, kReclaimed, kGone };
  void Resolve(const std::string& owner, const Principal& who, Fate fate, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes what changed in the record file (never under mu_).
  void FlushRecords() ABSL_LOCKS_EXCLUDED(mu_);
  void DestroySessionLocked(const SessionId& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Discards unconfirmed records older than a lease and courtesy clients beyond the
  // cap; then, if the table is full, the oldest courtesy or unconfirmed record. False
  // when there is still no room for one more.
  bool Sweep(int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  clientid4 NewClientId() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Client* NewUnconfirmed(const EXCHANGE_ID4args& args, const Principal& who, int64_t now,
                         std::string_view address) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t Now() const;
  // Hands the clients Discard collected to Options::on_client_gone (mu_ not held).
  void NotifyGone() ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<clientid4, std::unique_ptr<Client>> clients_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);
  uint32_t next_client_ ABSL_GUARDED_BY(mu_) = 1;
  uint32_t next_session_ ABSL_GUARDED_BY(mu_) = 1;
  size_t cache_reserved_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<clientid4> gone_ ABSL_GUARDED_BY(mu_);  // discarded, not yet notified

  // The previous instance's clients (by owner) and the grace period.
  struct Previous {
    Principal principal;
    Fate fate = Fate::kPending;
  };
  absl::flat_hash_map<std::string, Previous> previous_ ABSL_GUARDED_BY(mu_);
  size_t pending_ ABSL_GUARDED_BY(mu_) = 0;
  GraceInfo::Phase grace_phase_ ABSL_GUARDED_BY(mu_) = GraceInfo::Phase::kNone;
  int64_t grace_start_ns_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t grace_end_ns_ ABSL_GUARDED_BY(mu_) = 0;  // the deadline; once ended, when
  std::string grace_why_ ABSL_GUARDED_BY(mu_);
};

}  // namespace localnfs::server::nfs4
