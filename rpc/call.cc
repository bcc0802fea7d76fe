// rpc/call.cc — see call.h.
#include "rpc/call.h"

#include <string.h>

#include <algorithm>

#include "rpc/procedure.h"

namespace localnfs::rpc {
namespace {

constexpr size_t kWord = sizeof(std::max_align_t);

size_t Words(size_t bytes) { return (bytes + kWord - 1) / kWord; }

// What xdr_free does, without calling the routine through xdrproc_t's variadic type.
void XdrFree(XdrFn fn, void* object) {
  XDR x{};
  x.x_op = XDR_FREE;
  fn(&x, object);
}

}  // namespace

DispatchResult Program::Dispatch(Call& call) { return call.procedure().handle(*this, call); }

bool Call::quick() const { return desc_ != nullptr && desc_->quick(); }

void Call::AllocateWorkspace() {
  const size_t state_words = Words(program_->call_state_size());
  const size_t args_words = Words(desc_->args_size);
  const size_t result_words = Words(desc_->result_size);
  // At least one word each for arguments and result: the XDR routines of Void still
  // get a valid pointer.
  const size_t total = state_words + std::max<size_t>(args_words, 1) +
                       std::max<size_t>(result_words, 1);
  workspace_.reset(new std::max_align_t[total]);
  std::max_align_t* p = workspace_.get();
  state_ = state_words > 0 ? p : nullptr;
  p += state_words;
  args_ = p;
  memset(args_, 0, desc_->args_size);
  p += std::max<size_t>(args_words, 1);
  result_ = p;
  memset(result_, 0, desc_->result_size);
}

void Call::ResetResult() {
  bulk_.clear();  // its buffers go with the result
  XdrFree(desc_->xdr_result, result_);
  memset(result_, 0, desc_->result_size);
}

Call::~Call() {
  // The program's state first: it may refer to the arguments.
  if (destroy_state_ != nullptr) destroy_state_(state_);
  if (workspace_ != nullptr) {
    XdrFree(desc_->xdr_args, args_);
    XdrFree(desc_->xdr_result, result_);
  }
  // A call destroyed before it completed its cache entry (dropped unrun at stop, an
  // error reply): a retransmit runs it again.
  if (drc_key_) drc_->Abandon(*drc_key_);
}

}  // namespace localnfs::rpc
