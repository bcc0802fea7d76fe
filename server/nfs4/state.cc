// server/nfs4/state.cc — NFSv4.1 clients, sessions, slots and leases (see state.h).
#include "server/nfs4/state.h"

#include <string.h>

#include <algorithm>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "rpc/message.h"
#include "rpc/procedure_stats.h"
#include "server/nfs4/client_records.h"
#include "server/nfs4/compound.h"

namespace localnfs::server::nfs4 {
namespace {

// The smallest channel a session can work with (knfsd's NFSD_MIN_REQ_HDR_SEQ_SZ and
// NFSD_MIN_RESP_HDR_SEQ_SZ): a call with AUTH_NONE, an empty tag and one SEQUENCE;
// its reply with SEQUENCE's result.
constexpr uint32_t kMinRequestSize = (2 * 2 + 1 + 3 + NFS4_SESSIONID_SIZE / 4 + 4) * 4;
constexpr uint32_t kMinResponseSize = (2 + 1 + 1 + 1 + 2 + NFS4_SESSIONID_SIZE / 4 + 5) * 4;

// The EXCHANGE_ID flags a client may send (knfsd's EXCHGID4_FLAG_MASK_A).
constexpr uint32_t kExchangeIdFlagsA =
    EXCHGID4_FLAG_SUPP_MOVED_REFER | EXCHGID4_FLAG_SUPP_MOVED_MIGR |
    EXCHGID4_FLAG_BIND_PRINC_STATEID | EXCHGID4_FLAG_MASK_PNFS | EXCHGID4_FLAG_UPD_CONFIRMED_REC_A;

std::string Key(const SessionId& id) { return std::string(id.data(), id.size()); }

}  // namespace

// One slot of a session's fore channel: its last sequence id and the reply kept for it.
struct Slot {
  sequenceid4 seqid = 0;
  bool in_use = false;  // a COMPOUND holds it (SlotHold)
  bool used = false;    // a request ran on it (seqid is a real one)
  uint64_t request_hash = 0;
  std::shared_ptr<const std::string> reply;  // null: not kept
};

struct Session {
  SessionId id{};
  clientid4 client = 0;
  ChannelAttrs fore, back;
  uint32_t flags = 0;
  uint32_t cb_program = 0;
  size_t reserved = 0;  // of Nfs4State's reply cache budget
  absl::Mutex mu;
  std::vector<Slot> slots ABSL_GUARDED_BY(mu);
  std::deque<uint64_t> conns ABSL_GUARDED_BY(mu);  // bound connection ids, newest last
  size_t max_conns = 0;

  void BindConn(uint64_t conn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (std::find(conns.begin(), conns.end(), conn) != conns.end()) return;
    conns.push_back(conn);
    while (conns.size() > max_conns) conns.pop_front();
  }
};

struct Nfs4State::Client {
  clientid4 id = 0;
  std::string owner;
  Verifier verifier{};
  Principal principal;
  bool confirmed = false;
  // The CREATE_SESSION slot (RFC 8881 §18.36.4): the last sequence id done and its
  // reply, kept for a retry.
  sequenceid4 cs_seqid = 0;
  std::optional<CreateSessionResult> cs_reply;
  int64_t renewed_ns = 0;
  std::vector<SessionId> sessions;
  bool reclaim_complete = false;
  bool recorded = false;  // its record is in Options::records
  std::string address;
};

Principal Principal::Of(const rpc::CallContext& ctx) {
  return Principal{ctx.flavor, ctx.cred.uid, ctx.cred.gid};
}

ChannelAttrs ChannelAttrs::Of(const channel_attrs4& a) {
  return ChannelAttrs{a.ca_headerpadsize,          a.ca_maxrequestsize, a.ca_maxresponsesize,
                      a.ca_maxresponsesize_cached, a.ca_maxoperations,  a.ca_maxrequests};
}

void ChannelAttrs::To(channel_attrs4* out) const {
  out->ca_headerpadsize = headerpadsize;
  out->ca_maxrequestsize = maxrequestsize;
  out->ca_maxresponsesize = maxresponsesize;
  out->ca_maxresponsesize_cached = maxresponsesize_cached;
  out->ca_maxoperations = maxoperations;
  out->ca_maxrequests = maxrequests;
  out->ca_rdma_ird.ca_rdma_ird_len = 0;
  out->ca_rdma_ird.ca_rdma_ird_val = nullptr;
}

// --- SlotHold ---

SlotHold::~SlotHold() {
  if (!done_) Release(nullptr);
}

void SlotHold::Complete(std::shared_ptr<const std::string> reply) {
  if (done_) return;
  done_ = true;
  Release(std::move(reply));
}

void SlotHold::Release(std::shared_ptr<const std::string> reply) {
  // Kept only if the reply, with its RPC reply header, fits what the session agreed to
  // cache: the room reserved for the slot.
  if (reply != nullptr &&
      reply->size() + rpc::kAcceptedReplyHeaderSize > session_->fore.maxresponsesize_cached) {
    reply.reset();
  }
  absl::MutexLock l(&session_->mu);
  Slot& s = session_->slots[slot_];
  s.in_use = false;
  s.reply = std::move(reply);
}

const SessionId& SlotHold::session_id() const { return session_->id; }
clientid4 SlotHold::client_id() const { return session_->client; }
const ChannelAttrs& SlotHold::fore() const { return session_->fore; }

// --- Nfs4State ---

Nfs4State::Nfs4State(Options options) : options_(std::move(options)) {
  if (options_.records == nullptr) return;
  {
    absl::MutexLock l(&mu_);
    const std::vector<ClientRecord>& loaded = options_.records->loaded();
    if (loaded.empty()) {
      grace_why_ = "no client records from the previous instance";
      LOG_INFO("nfs4: %s: no grace period", grace_why_);
    } else if (options_.grace <= absl::ZeroDuration()) {
      grace_why_ = "--grace 0";
      LOG_INFO("nfs4: --grace 0: no grace period; the %d client record(s) of the previous "
               "instance are dropped (those clients cannot reclaim)",
               loaded.size());
      for (const ClientRecord& r : loaded) options_.records->Remove(r.owner);
    } else {
      for (const ClientRecord& r : loaded) previous_[r.owner] = Previous{r.principal};
      pending_ = previous_.size();
      grace_phase_ = GraceInfo::Phase::kInGrace;
      grace_start_ns_ = Now();
      grace_end_ns_ = grace_start_ns_ + absl::ToInt64Nanoseconds(options_.grace);
      LOG_INFO("nfs4: in grace for %d s: %d client(s) of the previous instance may reclaim; "
               "it ends early once each has sent RECLAIM_COMPLETE or is gone",
               absl::ToInt64Seconds(options_.grace), pending_);
    }
  }
  FlushRecords();
}

Nfs4State::~Nfs4State() = default;

void Nfs4State::FlushRecords() {
  if (options_.records != nullptr) options_.records->Flush().IgnoreError();  // logged
  // The clients discarded meanwhile lose their open state (Options::on_client_gone).
  NotifyGone();
}

void Nfs4State::EndGrace(int64_t now, std::string why) {
  if (grace_phase_ != GraceInfo::Phase::kInGrace) return;
  grace_phase_ = GraceInfo::Phase::kEnded;
  grace_end_ns_ = now;
  grace_why_ = std::move(why);
  // The previous clients that did not reclaim lose their window: their records go
  // (knfsd's nfsd4_record_grace_done).
  size_t dropped = 0;
  for (auto& [owner, p] : previous_) {
    if (p.fate != Fate::kPending) continue;
    p.fate = Fate::kGone;
    if (options_.records != nullptr) options_.records->Remove(owner);
    ++dropped;
  }
  pending_ = 0;
  LOG_INFO("nfs4: grace period ended after %.1f s: %s%s", (now - grace_start_ns_) * 1e-9,
           grace_why_,
           dropped == 0 ? ""
                        : absl::StrFormat("; the records of the %d client(s) that did not "
                                          "reclaim are removed",
                                          dropped));
}

void Nfs4State::GraceTick(int64_t now) {
  if (grace_phase_ == GraceInfo::Phase::kInGrace && now >= grace_end_ns_) {
    // Noticed now; it ended at its deadline (what the log and status say).
    EndGrace(grace_end_ns_,
             absl::StrFormat("its %d s ran out with %d of %d previous client(s) not done "
                             "reclaiming",
                             absl::ToInt64Seconds(options_.grace), pending_, previous_.size()));
  }
}

void Nfs4State::Resolve(const std::string& owner, const Principal& who, Fate fate, int64_t now) {
  GraceTick(now);
  if (grace_phase_ != GraceInfo::Phase::kInGrace) return;
  auto it = previous_.find(owner);
  if (it == previous_.end() || it->second.fate != Fate::kPending || !(it->second.principal == who))
    return;
  it->second.fate = fate;
  --pending_;
  // Gone before it finished reclaiming: the previous instance's record goes too.
  if (fate == Fate::kGone && options_.records != nullptr) options_.records->Remove(owner);
  if (pending_ == 0) {
    size_t reclaimed = 0;
    for (const auto& [o, p] : previous_) reclaimed += p.fate == Fate::kReclaimed ? 1 : 0;
    EndGrace(now, absl::StrFormat("ended early: every client of the previous instance sent "
                                  "RECLAIM_COMPLETE (%d) or is gone (%d)",
                                  reclaimed, previous_.size() - reclaimed));
  }
}

int64_t Nfs4State::Now() const {
  return options_.now_ns ? options_.now_ns() : rpc::MonotonicNowNs();
}

bool Nfs4State::Expired(const Client& c, int64_t now) const {
  return now - c.renewed_ns > absl::ToInt64Nanoseconds(options_.lease);
}

bool Nfs4State::HasState(const Client& c) const { return !c.sessions.empty(); }

Nfs4State::Client* Nfs4State::FindClient(clientid4 id) {
  auto it = clients_.find(id);
  return it == clients_.end() ? nullptr : it->second.get();
}

Nfs4State::Client* Nfs4State::FindByOwner(std::string_view owner, bool confirmed) {
  // A scan: EXCHANGE_ID is rare and the table is bounded (max_clients).
  for (auto& [id, c] : clients_) {
    if (c->confirmed == confirmed && c->owner == owner) return c.get();
  }
  return nullptr;
}

void Nfs4State::DestroySessionLocked(const SessionId& id) {
  auto it = sessions_.find(Key(id));
  if (it == sessions_.end()) return;
  std::shared_ptr<Session> s = std::move(it->second);
  sessions_.erase(it);
  cache_reserved_ -= s->reserved;
  if (Client* c = FindClient(s->client)) {
    c->sessions.erase(std::remove(c->sessions.begin(), c->sessions.end(), id), c->sessions.end());
  }
}

void Nfs4State::Discard(clientid4 id, bool replaced) {
  Client* c = FindClient(id);
  if (c == nullptr) return;
  if (c->confirmed && options_.on_client_gone) gone_.push_back(id);
  if (c->recorded && options_.records != nullptr) options_.records->Remove(c->owner);
  // A previous client that came back and went again before it finished reclaiming.
  if (c->confirmed && !replaced) Resolve(c->owner, c->principal, Fate::kGone, Now());
  const std::vector<SessionId> sessions = c->sessions;
  for (const SessionId& s : sessions) DestroySessionLocked(s);
  clients_.erase(id);
}

bool Nfs4State::Sweep(int64_t now) {
  std::vector<std::pair<int64_t, clientid4>> courtesy, unconfirmed;
  for (auto& [id, c] : clients_) {
    if (!c->confirmed) {
      unconfirmed.emplace_back(c->renewed_ns, id);
    } else if (Expired(*c, now)) {
      courtesy.emplace_back(c->renewed_ns, id);
    }
  }
  std::sort(courtesy.begin(), courtesy.end());
  std::sort(unconfirmed.begin(), unconfirmed.end());
  // Unconfirmed records a lease old are gone (knfsd's laundromat).
  size_t u = 0;
  for (; u < unconfirmed.size() &&
         now - unconfirmed[u].first > absl::ToInt64Nanoseconds(options_.lease);
       ++u) {
    Discard(unconfirmed[u].second);
  }
  // Courtesy clients beyond the cap, oldest first.
  size_t c = 0;
  for (; courtesy.size() - c > options_.max_courtesy_clients; ++c) Discard(courtesy[c].second);
  // Room for one more record: the oldest courtesy, else the oldest unconfirmed.
  while (clients_.size() >= options_.max_clients) {
    if (c < courtesy.size()) {
      Discard(courtesy[c++].second);
    } else if (u < unconfirmed.size()) {
      Discard(unconfirmed[u++].second);
    } else {
      return false;
    }
  }
  return true;
}

clientid4 Nfs4State::NewClientId() {
  clientid4 id;
  do {
    id = (uint64_t{options_.boot} << 32) | next_client_++;
  } while (next_client_ == 0 || clients_.contains(id));
  return id;
}

Nfs4State::Client* Nfs4State::NewUnconfirmed(const EXCHANGE_ID4args& args, const Principal& who,
                                             int64_t now, std::string_view address) {
  auto c = std::make_unique<Client>();
  c->id = NewClientId();
  const client_owner4& co = args.eia_clientowner;
  c->owner.assign(co.co_ownerid.co_ownerid_val, co.co_ownerid.co_ownerid_len);
  memcpy(c->verifier.data(), co.co_verifier, c->verifier.size());
  c->principal = who;
  c->renewed_ns = now;
  c->address = address;
  Client* raw = c.get();
  clients_.emplace(raw->id, std::move(c));
  return raw;
}

std::optional<clientid4> Nfs4State::ConfirmedClientOf(std::string_view owner) {
  absl::MutexLock l(&mu_);
  const Client* c = FindByOwner(owner, /*confirmed=*/true);
  if (c == nullptr) return std::nullopt;
  return c->id;
}

nfsstat4 Nfs4State::ExchangeId(const EXCHANGE_ID4args& args, const Principal& who,
                               ExchangeIdResult* out, std::string_view address,
                               std::optional<clientid4> holds_opens) {
  if ((args.eia_flags & ~kExchangeIdFlagsA) != 0) return NFS4ERR_INVAL;
  switch (args.eia_state_protect.spa_how) {
    case SP4_NONE:
      break;
    case SP4_MACH_CRED:
      // knfsd accepts it only over an integrity-protecting flavor (krb5i/p); AUTH_SYS
      // protects nothing.
      return NFS4ERR_INVAL;
    case SP4_SSV:
    default:
      return NFS4ERR_ENCR_ALG_UNSUPP;
  }
  const bool update = (args.eia_flags & EXCHGID4_FLAG_UPD_CONFIRMED_REC_A) != 0;
  const client_owner4& co = args.eia_clientowner;
  const std::string_view owner(co.co_ownerid.co_ownerid_val, co.co_ownerid.co_ownerid_len);
  Verifier verifier;
  memcpy(verifier.data(), co.co_verifier, verifier.size());

  // Declared before the lock: runs after it is released (a discard removes a record).
  absl::Cleanup flush = [this] { FlushRecords(); };
  absl::MutexLock l(&mu_);
  const int64_t now = Now();
  GraceTick(now);
  Client* result = nullptr;
  if (Client* conf = FindByOwner(owner, /*confirmed=*/true)) {
    const bool creds_match = conf->principal == who;
    const bool verf_match = conf->verifier == verifier;
    if (update) {
      if (!creds_match) return NFS4ERR_PERM;     // case 9
      if (!verf_match) return NFS4ERR_NOT_SAME;  // case 8
      result = conf;                             // case 6
    } else if (!creds_match) {                   // case 3: another principal
      const bool has_state = HasState(*conf) || holds_opens == conf->id;
      if (has_state && !Expired(*conf, now)) return NFS4ERR_CLID_INUSE;
      // Without state (or a courtesy client, which loses to the conflict) the record
      // goes now, not when the new one is confirmed: the old principal's clientid is
      // stale from here on (knfsd's nfsd4_exchange_id expires `conf` at once).
      Discard(conf->id);
    } else if (verf_match) {
      result = conf;  // case 2
    }
    // case 5 (a new verifier: the client rebooted): a new unconfirmed record; the
    // confirmed one goes when it is confirmed (CreateSession).
  } else if (update) {
    return NFS4ERR_NOENT;  // case 7
  }
  if (result != nullptr) {
    result->renewed_ns = now;
  } else {
    if (Client* unconf = FindByOwner(owner, /*confirmed=*/false)) Discard(unconf->id);  // case 4
    if (!Sweep(now)) return NFS4ERR_DELAY;
    result = NewUnconfirmed(args, who, now, address);  // case 1
  }
  out->clientid = result->id;
  out->sequenceid = result->cs_seqid + 1;
  out->flags = EXCHGID4_FLAG_USE_NON_PNFS | (result->confirmed ? EXCHGID4_FLAG_CONFIRMED_R : 0);
  return NFS4_OK;
}

nfsstat4 Nfs4State::CreateSession(const CREATE_SESSION4args& args, const Principal& who,
                                  uint64_t conn, CreateSessionResult* out) {
  constexpr uint32_t kFlagsA = CREATE_SESSION4_FLAG_PERSIST | CREATE_SESSION4_FLAG_CONN_BACK_CHAN |
                               CREATE_SESSION4_FLAG_CONN_RDMA;
  if ((args.csa_flags & ~kFlagsA) != 0) return NFS4ERR_INVAL;
  // Callback security: the list is the client's choices (RFC 8881 §18.36.3); one
  // AUTH_NONE or AUTH_SYS among them will do, RPCSEC_GSS entries are passed over. Only
  // a list with neither is NFS4ERR_ENCR_ALG_UNSUPP; an empty one means AUTH_NONE
  // (knfsd's nfsd4_decode_cb_sec and nfsd4_check_cb_sec).
  bool usable_cb_sec = args.csa_sec_parms.csa_sec_parms_len == 0;
  for (u_int i = 0; i < args.csa_sec_parms.csa_sec_parms_len; ++i) {
    const uint32_t flavor = args.csa_sec_parms.csa_sec_parms_val[i].cb_secflavor;
    if (flavor == static_cast<uint32_t>(rpc::AuthFlavor::kNone) ||
        flavor == static_cast<uint32_t>(rpc::AuthFlavor::kSys)) {
      usable_cb_sec = true;
    }
  }
  if (!usable_cb_sec) return NFS4ERR_ENCR_ALG_UNSUPP;
  // The channels (knfsd's check_forechannel_attrs / check_backchannel_attrs).
  ChannelAttrs fore = ChannelAttrs::Of(args.csa_fore_chan_attrs);
  ChannelAttrs back = ChannelAttrs::Of(args.csa_back_chan_attrs);
  if (fore.maxrequestsize < kMinRequestSize || fore.maxresponsesize < kMinResponseSize) {
    return NFS4ERR_TOOSMALL;
  }
  if (back.maxoperations < 2) return NFS4ERR_TOOSMALL;
  fore.headerpadsize = 0;
  fore.maxrequestsize = std::min(fore.maxrequestsize, options_.max_request_size);
  fore.maxresponsesize = std::min(fore.maxresponsesize, options_.max_response_size);
  fore.maxresponsesize_cached =
      std::min({fore.maxresponsesize_cached, options_.max_cached_reply, fore.maxresponsesize});
  fore.maxoperations = std::min(fore.maxoperations, kMaxOpsPerCompound);
  fore.maxrequests = std::clamp(fore.maxrequests, 1u, options_.max_slots);
  // The back channel is accepted as asked, one slot, nothing cached; no callback is
  // sent on it yet (nothing this server grants is ever recalled).
  back.headerpadsize = 0;
  back.maxresponsesize_cached = 0;
  back.maxrequests = 1;

  absl::Cleanup flush = [this] { FlushRecords(); };  // after the lock is released
  absl::MutexLock l(&mu_);
  const int64_t now = Now();
  Client* c = FindClient(args.csa_clientid);
  if (c == nullptr) return NFS4ERR_STALE_CLIENTID;
  if (c->confirmed) {
    if (args.csa_sequence == c->cs_seqid) {
      if (!c->cs_reply) return NFS4ERR_SEQ_MISORDERED;
      *out = *c->cs_reply;  // a retry: the same reply
      return NFS4_OK;
    }
    if (args.csa_sequence != c->cs_seqid + 1) return NFS4ERR_SEQ_MISORDERED;
  } else {
    if (Expired(*c, now)) {
      Discard(c->id);
      return NFS4ERR_STALE_CLIENTID;
    }
    if (!(c->principal == who)) return NFS4ERR_CLID_INUSE;
    // A retry on an unconfirmed record is misordered too (knfsd).
    if (args.csa_sequence != c->cs_seqid + 1) return NFS4ERR_SEQ_MISORDERED;
  }
  if (c->sessions.size() >= options_.max_sessions_per_client) return NFS4ERR_NOSPC;
  // The slots' reply room, from the shared budget, as knfsd's nfsd4_get_drc_mem: at
  // most an eighth of what is left, so that a few clients asking for many slots leave
  // room for others, and never less than one slot — a client that cannot get a session
  // cannot work at all, and the sessions are bounded (max_clients ×
  // max_sessions_per_client), so the overdraft is too.
  const size_t per_slot = std::max<size_t>(fore.maxresponsesize_cached, 1);
  const size_t left =
      options_.max_cache_bytes - std::min(cache_reserved_, options_.max_cache_bytes);
  const size_t room = std::max(left / 8, per_slot);
  fore.maxrequests = static_cast<uint32_t>(
      std::max<size_t>(std::min<size_t>(fore.maxrequests, room / per_slot), 1));

  if (!c->confirmed) {
    // Confirmed now: the owner's previous record (a rebooted client's) goes with its
    // sessions.
    if (Client* old = FindByOwner(c->owner, /*confirmed=*/true)) {
      Discard(old->id, /*replaced=*/true);
    }
    c->confirmed = true;
  }
  auto s = std::make_shared<Session>();
  memcpy(s->id.data(), &c->id, sizeof(c->id));
  const uint32_t seq = next_session_++;
  memcpy(s->id.data() + 8, &seq, sizeof(seq));
  memcpy(s->id.data() + 12, &options_.boot, sizeof(options_.boot));
  s->client = c->id;
  s->fore = fore;
  s->back = back;
  s->flags = args.csa_flags & CREATE_SESSION4_FLAG_CONN_BACK_CHAN;
  s->cb_program = args.csa_cb_program;
  s->reserved = per_slot * fore.maxrequests;
  s->max_conns = std::max<size_t>(options_.max_connections_per_session, 1);
  {
    absl::MutexLock sl(&s->mu);
    s->slots.resize(fore.maxrequests);
    s->BindConn(conn);
  }
  cache_reserved_ += s->reserved;
  sessions_.emplace(Key(s->id), s);
  c->sessions.push_back(s->id);
  c->renewed_ns = now;

  out->sessionid = s->id;
  out->sequence = ++c->cs_seqid;
  out->flags = s->flags;
  out->fore = fore;
  out->back = back;
  c->cs_reply = *out;
  return NFS4_OK;
}

nfsstat4 Nfs4State::Sequence(const SequenceRequest& req, SequenceResult* out) {
  const SEQUENCE4args& a = *req.args;
  SessionId id;
  memcpy(id.data(), a.sa_sessionid, id.size());
  absl::MutexLock l(&mu_);
  auto it = sessions_.find(Key(id));
  if (it == sessions_.end()) return NFS4ERR_BADSESSION;
  const std::shared_ptr<Session>& s = it->second;
  // The order of knfsd's nfsd4_sequence.
  if (req.numops > s->fore.maxoperations) return NFS4ERR_TOO_MANY_OPS;
  if (req.request_bytes > s->fore.maxrequestsize) return NFS4ERR_REQ_TOO_BIG;
  if (a.sa_slotid >= s->fore.maxrequests) return NFS4ERR_BADSLOT;
  out->highest_slotid = s->fore.maxrequests - 1;
  out->target_highest_slotid = s->fore.maxrequests - 1;
  out->status_flags = 0;
  {
    absl::MutexLock sl(&s->mu);
    Slot& slot = s->slots[a.sa_slotid];
    if (slot.in_use) {
      return a.sa_sequenceid == slot.seqid ? NFS4ERR_DELAY : NFS4ERR_SEQ_MISORDERED;
    }
    if (a.sa_sequenceid == slot.seqid + 1) {
      slot.seqid = a.sa_sequenceid;
      slot.in_use = true;
      slot.used = true;
      slot.request_hash = req.request_hash;
      slot.reply.reset();
      out->hold = std::make_shared<SlotHold>(s, a.sa_slotid);
    } else if (a.sa_sequenceid == slot.seqid && slot.used) {
      if (slot.request_hash != req.request_hash) return NFS4ERR_SEQ_FALSE_RETRY;
      if (slot.reply == nullptr) return NFS4ERR_RETRY_UNCACHED_REP;
      out->replay = slot.reply;
    } else {
      return NFS4ERR_SEQ_MISORDERED;
    }
    // SP4_NONE: a connection the session has not seen is bound to its fore channel
    // (knfsd's nfsd4_sequence_check_conn).
    s->BindConn(req.conn);
  }
  // The lease: renewed, a courtesy client's included (it comes back as it was).
  if (Client* c = FindClient(s->client)) c->renewed_ns = Now();
  return NFS4_OK;
}

nfsstat4 Nfs4State::DestroySession(const SessionId& id, const SessionId* own) {
  absl::MutexLock l(&mu_);
  auto it = sessions_.find(Key(id));
  if (it == sessions_.end()) return NFS4ERR_BADSESSION;
  {
    Session& s = *it->second;
    absl::MutexLock sl(&s.mu);
    size_t busy = 0;
    for (const Slot& slot : s.slots) busy += slot.in_use ? 1 : 0;
    if (own != nullptr && *own == id && busy > 0) --busy;
    // Requests still running on it (knfsd's mark_session_dead_locked).
    if (busy > 0) return NFS4ERR_DELAY;
  }
  DestroySessionLocked(id);
  return NFS4_OK;
}

nfsstat4 Nfs4State::DestroyClientId(clientid4 id, const std::optional<clientid4>& own_client) {
  absl::Cleanup flush = [this] { FlushRecords(); };  // after the lock is released
  absl::MutexLock l(&mu_);
  Client* c = FindClient(id);
  if (c == nullptr) return NFS4ERR_STALE_CLIENTID;
  if (c->confirmed && (HasState(*c) || own_client == id)) return NFS4ERR_CLIENTID_BUSY;
  Discard(id);
  return NFS4_OK;
}

nfsstat4 Nfs4State::BindConnToSession(const SessionId& id, uint32_t dir, uint64_t conn,
                                      channel_dir_from_server4* out_dir) {
  switch (dir) {
    case CDFC4_FORE:
      *out_dir = CDFS4_FORE;
      break;
    case CDFC4_BACK:
      *out_dir = CDFS4_BACK;
      break;
    case CDFC4_FORE_OR_BOTH:
    case CDFC4_BACK_OR_BOTH:
      *out_dir = CDFS4_BOTH;
      break;
    default:
      return NFS4ERR_INVAL;
  }
  absl::MutexLock l(&mu_);
  auto it = sessions_.find(Key(id));
  if (it == sessions_.end()) return NFS4ERR_BADSESSION;
  Session& s = *it->second;
  absl::MutexLock sl(&s.mu);
  s.BindConn(conn);
  return NFS4_OK;
}

nfsstat4 Nfs4State::ReclaimComplete(clientid4 client) {
  // The record is on disk before the answer: from here on the client may hold state.
  absl::Cleanup flush = [this] { FlushRecords(); };  // after the lock is released
  absl::MutexLock l(&mu_);
  Client* c = FindClient(client);
  if (c == nullptr) return NFS4ERR_STALE_CLIENTID;
  if (c->reclaim_complete) return NFS4ERR_COMPLETE_ALREADY;
  c->reclaim_complete = true;
  if (options_.records != nullptr) {
    options_.records->Put(ClientRecord{c->owner, c->principal});
    c->recorded = true;
  }
  Resolve(c->owner, c->principal, Fate::kReclaimed, Now());
  return NFS4_OK;
}

void Nfs4State::NotifyGone() {
  std::vector<clientid4> gone;
  {
    absl::MutexLock l(&mu_);
    gone.swap(gone_);
  }
  for (clientid4 id : gone) options_.on_client_gone(id);
}

bool Nfs4State::IsCourtesy(clientid4 client) const {
  absl::MutexLock l(&mu_);
  auto it = clients_.find(client);
  return it != clients_.end() && it->second->confirmed && Expired(*it->second, Now());
}

void Nfs4State::ExpireCourtesy(clientid4 client) {
  absl::Cleanup flush = [this] { FlushRecords(); };  // after the lock is released
  absl::MutexLock l(&mu_);
  Client* c = FindClient(client);
  if (c != nullptr && c->confirmed && Expired(*c, Now())) Discard(client);
}

nfsstat4 Nfs4State::CheckReclaim(clientid4 client, bool is_reclaim) {
  absl::Cleanup flush = [this] { FlushRecords(); };  // grace may end here
  absl::MutexLock l(&mu_);
  GraceTick(Now());
  const Client* c = FindClient(client);
  if (c == nullptr || !c->confirmed) return NFS4ERR_STALE_CLIENTID;
  const bool in_grace = grace_phase_ == GraceInfo::Phase::kInGrace;
  if (!is_reclaim) {
    // knfsd's nfsd4_open: in grace, or before this client's RECLAIM_COMPLETE.
    return in_grace || !c->reclaim_complete ? NFS4ERR_GRACE : NFS4_OK;
  }
  if (!in_grace || c->reclaim_complete) return NFS4ERR_NO_GRACE;
  auto it = previous_.find(c->owner);
  if (it == previous_.end() || it->second.fate != Fate::kPending ||
      !(it->second.principal == c->principal)) {
    return NFS4ERR_NO_GRACE;
  }
  return NFS4_OK;
}

nfsstat4 Nfs4State::CheckGrace() { return in_grace() ? NFS4ERR_GRACE : NFS4_OK; }

bool Nfs4State::in_grace() {
  absl::Cleanup flush = [this] { FlushRecords(); };  // grace may end here
  absl::MutexLock l(&mu_);
  GraceTick(Now());
  return grace_phase_ == GraceInfo::Phase::kInGrace;
}

Nfs4State::Counts Nfs4State::counts() const {
  absl::MutexLock l(&mu_);
  Counts n;
  const int64_t now = Now();
  for (const auto& [id, c] : clients_) {
    if (!c->confirmed) {
      ++n.unconfirmed;
    } else if (Expired(*c, now)) {
      ++n.courtesy;
    } else {
      ++n.confirmed;
    }
  }
  n.sessions = sessions_.size();
  n.cache_bytes_reserved = cache_reserved_;
  return n;
}

bool Nfs4State::reclaim_complete(clientid4 client) const {
  absl::MutexLock l(&mu_);
  auto it = clients_.find(client);
  return it != clients_.end() && it->second->reclaim_complete;
}

std::vector<Nfs4State::ClientInfo> Nfs4State::clients(size_t max) const {
  absl::MutexLock l(&mu_);
  const int64_t now = Now();
  std::vector<ClientInfo> out;
  out.reserve(clients_.size());
  for (const auto& [id, c] : clients_) {
    ClientInfo i;
    i.id = id;
    i.kind = !c->confirmed        ? ClientKind::kUnconfirmed
             : Expired(*c, now)   ? ClientKind::kCourtesy
                                  : ClientKind::kConfirmed;
    i.address = c->address;
    i.owner = c->owner;
    i.lease_left_ms = (c->renewed_ns + absl::ToInt64Nanoseconds(options_.lease) - now) / 1000000;
    i.sessions = c->sessions.size();
    i.reclaim_complete = c->reclaim_complete;
    out.push_back(std::move(i));
  }
  std::sort(out.begin(), out.end(), [](const ClientInfo& a, const ClientInfo& b) {
    return a.kind != b.kind ? a.kind < b.kind : a.id < b.id;
  });
  if (out.size() > max) out.resize(max);
  return out;
}

Nfs4State::GraceInfo Nfs4State::grace() const {
  absl::MutexLock l(&mu_);
  const int64_t now = Now();
  GraceInfo g;
  g.phase = grace_phase_;
  g.why = grace_why_;
  g.previous = previous_.size();
  for (const auto& [owner, p] : previous_) {
    g.reclaimed += p.fate == Fate::kReclaimed ? 1 : 0;
    g.gone += p.fate == Fate::kGone ? 1 : 0;
    g.pending += p.fate == Fate::kPending ? 1 : 0;
  }
  if (g.phase == GraceInfo::Phase::kInGrace && now >= grace_end_ns_) {
    // Ran out; ended for good at the next call that looks (GraceTick).
    g.phase = GraceInfo::Phase::kEnded;
    g.why = "its time ran out";
  }
  if (g.phase == GraceInfo::Phase::kInGrace) g.left_ms = (grace_end_ns_ - now) / 1000000;
  if (g.phase == GraceInfo::Phase::kEnded) g.ended_ago_ms = (now - grace_end_ns_) / 1000000;
  return g;
}

std::vector<uint64_t> Nfs4State::session_connections(const SessionId& id) const {
  absl::MutexLock l(&mu_);
  auto it = sessions_.find(Key(id));
  if (it == sessions_.end()) return {};
  Session& s = *it->second;
  absl::MutexLock sl(&s.mu);
  return std::vector<uint64_t>(s.conns.begin(), s.conns.end());
}

}  // namespace localnfs::server::nfs4
