// common/localio/proto_test.cc — the LOCALIO local-socket protocol (proto.h): every
// message round-trips, malformed packets are refused, and exactly one fd passes with a
// packet.
#include "common/localio/proto.h"

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "common/status.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"

namespace localnfs::localio {
namespace {

TEST(LocalioProtoTest, RoundTripsEveryMessage) {
  localio::OpenLocalFhRequest open;
  open.request_id = 77;
  open.mode = localio::OpenMode::kReadWrite;
  open.flags = localio::kOpenHasCredentials;
  open.cred.uid = 1000;
  open.cred.gid = 100;
  open.cred.groups = {4, 5, 6};
  open.fh = std::string("\x01\x02\x00\x03", 4);
  absl::StatusOr<std::string> bytes = Encode(open);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<localio::Message> m = Decode(*bytes);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->op, localio::Op::kOpenLocalFh);
  EXPECT_EQ(m->open.request_id, 77u);
  EXPECT_EQ(m->open.mode, localio::OpenMode::kReadWrite);
  EXPECT_EQ(m->open.cred, open.cred);
  EXPECT_EQ(m->open.fh, open.fh);

  localio::OpenReply reply{9, 13, {1, 2, 3, 4, 5}};
  m = Decode(Encode(reply));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->open_reply.request_id, 9u);
  EXPECT_EQ(m->open_reply.status, 13u);
  EXPECT_EQ(m->open_reply.attrs.change, 4u);
  broker::Uuid u{};
  u[3] = 7;
  uint8_t secret_bytes[broker::kSecretSize];
  for (size_t i = 0; i < sizeof secret_bytes; ++i) secret_bytes[i] = static_cast<uint8_t>(i + 1);
  const broker::Secret secret = broker::Secret::FromBytes(secret_bytes);
  const std::string hello = Encode(localio::HelloRequest{u, secret});
  EXPECT_EQ(hello.size(), 8u + 16u + broker::kSecretSize);
  // The secret rides at its fixed offset after the uuid, byte for byte.
  EXPECT_EQ(hello.substr(24), std::string(reinterpret_cast<char*>(secret_bytes), 32));
  m = Decode(hello);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->hello.uuid, u);
  EXPECT_TRUE(broker::SecretMatches(m->hello.secret, secret.Hash()));
  m = Decode(Encode(localio::ErrorMessage{localio::ErrorReason::kNotOwner}));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->error.reason, localio::ErrorReason::kNotOwner);
}

TEST(LocalioProtoTest, RejectsMalformedPackets) {
  const std::string hello = Encode(localio::HelloRequest{});
  EXPECT_FALSE(Decode("").ok());
  EXPECT_FALSE(Decode(hello.substr(0, 7)).ok());
  EXPECT_FALSE(Decode(hello.substr(0, hello.size() - 1)).ok());  // wrong size
  EXPECT_FALSE(Decode(hello + "x").ok());
  // A secret of another length: a HELLO of another size (the old 16-byte-uuid-only
  // HELLO of version 1 among them).
  EXPECT_FALSE(Decode(hello.substr(0, 8 + 16)).ok());
  EXPECT_FALSE(Decode(hello.substr(0, 8 + 16 + 16)).ok());
  EXPECT_FALSE(Decode(hello + std::string(32, 'S')).ok());
  std::string bad = hello;
  bad[0] ^= 1;  // magic
  EXPECT_FALSE(Decode(bad).ok());
  bad = hello;
  bad[4] = 9;  // version
  EXPECT_FALSE(Decode(bad).ok());
  bad = hello;
  bad[6] = 99;  // op
  EXPECT_FALSE(Decode(bad).ok());

  localio::OpenLocalFhRequest open;
  open.fh = "abc";
  std::string o = *Encode(open);
  std::string t = o;
  t[8 + 8 + 20] = 65;  // fh_len > 64
  EXPECT_FALSE(Decode(t).ok());
  t = o;
  t[8 + 8 + 16] = 33;  // ngroups > 32
  EXPECT_FALSE(Decode(t).ok());
  t = o;
  t[8 + 8] = 2;  // mode
  EXPECT_FALSE(Decode(t).ok());
  t = o;
  t[8 + 8 + 20] = 0;  // empty handle
  EXPECT_FALSE(Decode(t).ok());
  open.fh = std::string(65, 'x');
  EXPECT_FALSE(Encode(open).ok());
  open.fh.clear();
  EXPECT_FALSE(Encode(open).ok());
}

TEST(LocalioProtoTest, PassesOneFdAndRefusesMore) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd pr(p[0]), pw(p[1]);
  ASSERT_TRUE(localio::SendWithFd(a.get(), "hello", pr.get()).ok());
  absl::StatusOr<localio::ReceivedPacket> got = localio::ReceiveWithFd(b.get());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->bytes, "hello");
  ASSERT_TRUE(got->fd.valid());
  EXPECT_NE(got->fd.get(), pr.get());
  EXPECT_TRUE(fcntl(got->fd.get(), F_GETFD) & FD_CLOEXEC);

  // Two fds in one message: truncated control data, both closed on our side.
  {
    char data[] = "x";
    iovec iov{data, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(2 * sizeof(int));
    int fds[2] = {pr.get(), pw.get()};
    memcpy(CMSG_DATA(c), fds, sizeof(fds));
    ASSERT_EQ(sendmsg(a.get(), &msg, 0), 1);
  }
  got = localio::ReceiveWithFd(b.get());
  EXPECT_TRUE(absl::IsInvalidArgument(got.status())) << got.status();
  // Oversized message.
  ASSERT_TRUE(localio::SendWithFd(a.get(), std::string(300, 'y')).ok());
  got = localio::ReceiveWithFd(b.get(), 256);
  EXPECT_TRUE(absl::IsInvalidArgument(got.status())) << got.status();
  a.reset();
  got = localio::ReceiveWithFd(b.get());
  EXPECT_EQ(StatusErrno(got.status()), ECONNRESET) << got.status();
}

}  // namespace
}  // namespace localnfs::localio
