// The Redis transport against the real local redis-server of scripts/services: TCP, unix
// socket and TLS, AUTH, SELECT, pipelining, errors and reconnects.
#include "jobqueue/redis_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "internal/resolve.h"
#include "testing/status_matchers.h"

namespace jobqueue {
namespace {

using ::jobqueue::testing::IsOk;
using ::jobqueue::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    throw std::runtime_error(absl::StrCat(name, " is not set: eval \"$(scripts/services env)\""));
  }
  return value;
}

// The password of REDIS_URL (redis://default:PASSWORD@host:port/0).
std::string Password() {
  const std::string url = Env("REDIS_URL");
  const size_t colon = url.find(':', url.find("//") + 2);
  return url.substr(colon + 1, url.find('@') - colon - 1);
}

std::unique_ptr<RedisConnection> MustConnect(const std::string& url, RedisOptions options = {}) {
  auto conn = RedisConnection::Connect(Secret::Url(url), options);
  if (!conn.ok()) throw std::runtime_error(conn.status().ToString());
  return *std::move(conn);
}

std::string Key(absl::string_view name) { return absl::StrCat("jqtest:", getpid(), ":", name); }

TEST(RedisClientTest, CommandsOverTcp) {
  auto conn = MustConnect(Env("REDIS_URL"));
  EXPECT_EQ(conn->transport(), "tcp");
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply pong, conn->Command({"PING"}));
  EXPECT_EQ(pong.type, RedisReply::Type::kStatus);
  EXPECT_EQ(pong.str, "PONG");
  // Binary-safe values, NUL bytes and all.
  const std::string value("a\0b\r\nc", 6);
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply set, conn->Command({"SET", Key("bin"), value, "EX", "60"}));
  EXPECT_EQ(set.str, "OK");
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply get, conn->Command({"GET", Key("bin")}));
  EXPECT_EQ(get.type, RedisReply::Type::kString);
  EXPECT_EQ(get.str, value);
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply missing, conn->Command({"GET", Key("missing")}));
  EXPECT_TRUE(missing.is_nil());
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply n, conn->Command({"INCRBY", Key("n"), "41"}));
  EXPECT_EQ(n.integer, 41);
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply list, conn->Command({"RPUSH", Key("l"), "x", "y"}));
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply range, conn->Command({"LRANGE", Key("l"), "0", "-1"}));
  ASSERT_EQ(range.type, RedisReply::Type::kArray);
  ASSERT_EQ(range.elements.size(), 2u);
  EXPECT_EQ(range.elements[1].str, "y");
  ASSERT_THAT(conn->Command({"DEL", Key("bin"), Key("n"), Key("l")}).status(), IsOk());
}

TEST(RedisClientTest, ErrorRepliesAreRepliesAndMapToStatuses) {
  auto conn = MustConnect(Env("REDIS_URL"));
  ASSERT_THAT(conn->Command({"SET", Key("str"), "v", "EX", "60"}).status(), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply wrong, conn->Command({"LPUSH", Key("str"), "x"}));
  EXPECT_TRUE(wrong.is_error());
  EXPECT_THAT(wrong.AsStatus("lpush"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("WRONGTYPE")));
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply noscript,
                          conn->Command({"EVALSHA", std::string(40, 'a'), "0"}));
  EXPECT_THAT(noscript.AsStatus("evalsha"), StatusIs(absl::StatusCode::kNotFound));
  // The connection stays usable after an error reply.
  EXPECT_TRUE(conn->ok());
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply pong, conn->Command({"PING"}));
  EXPECT_EQ(pong.str, "PONG");
  EXPECT_THAT(conn->Command({}).status(), StatusIs(absl::StatusCode::kInvalidArgument));
}

// A primary demoted in a failover answers writes with READONLY (or MASTERDOWN) for good, so
// those replies mark the connection for a reconnect, which a DNS name sends to the new primary.
TEST(RedisClientTest, ReadOnlyAndMasterDownRepliesMarkTheConnectionForReconnect) {
  for (const std::string code : {"READONLY", "MASTERDOWN"}) {
    auto conn = MustConnect(Env("REDIS_URL"));
    JQ_ASSERT_OK_AND_ASSIGN(
        RedisReply reply,
        conn->Command(
            {"EVAL", absl::StrCat("return redis.error_reply('", code, " not a primary')"), "0"}));
    EXPECT_TRUE(reply.is_error());
    EXPECT_THAT(reply.AsStatus("eval"), StatusIs(absl::StatusCode::kUnavailable, HasSubstr(code)));
    EXPECT_FALSE(conn->ok()) << code;
  }
}

// A server that cannot take writes for now (it cannot persist, or has no client slot left, or
// no memory) is not a caller's bad input: retry, do not drop the job. These were
// InvalidArgument (an HTTP 400 from the API) and FailedPrecondition (the API's "not migrated").
TEST(RedisClientTest, ErrorsOfAServerThatCannotTakeWritesNowAreRetryable) {
  EXPECT_THAT(StatusFromRedisError("MISCONF Redis is configured to save RDB snapshots", "add"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("add: MISCONF")));
  EXPECT_THAT(StatusFromRedisError("ERR max number of clients reached", "add"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(
      StatusFromRedisError("OOM command not allowed when used memory > 'maxmemory'.", "add"),
      StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(StatusFromRedisError("ERR wrong number of arguments for 'get' command", "get"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(RedisClientTest, PipelineIsOneRoundTripWithRepliesInOrder) {
  auto conn = MustConnect(Env("REDIS_URL"));
  std::vector<std::vector<std::string>> commands;
  for (int i = 0; i < 1000; ++i) commands.push_back({"RPUSH", Key("pipe"), absl::StrCat(i)});
  commands.push_back({"LLEN", Key("pipe")});
  commands.push_back({"DEL", Key("pipe")});
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<RedisReply> replies, conn->Pipeline(commands));
  ASSERT_EQ(replies.size(), commands.size());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(replies[i].integer, i + 1);
  EXPECT_EQ(replies[1000].integer, 1000);
}

TEST(RedisClientTest, LargeValuesRoundTrip) {
  auto conn = MustConnect(Env("REDIS_URL"));
  std::string big(3 << 20, 'x');
  big[12345] = 'y';
  ASSERT_THAT(conn->Command({"SET", Key("big"), big, "EX", "60"}).status(), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply got, conn->Command({"GET", Key("big")}));
  EXPECT_EQ(got.str, big);
  RedisOptions small;
  small.max_reply_bytes = 1 << 20;
  auto limited = MustConnect(Env("REDIS_URL"), small);
  EXPECT_THAT(limited->Command({"GET", Key("big")}).status(),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_FALSE(limited->ok());
  ASSERT_THAT(conn->Command({"DEL", Key("big")}).status(), IsOk());
}

TEST(RedisClientTest, BlockingCommandWaitsForTheServerTimeout) {
  RedisOptions options;
  options.io_timeout = absl::Milliseconds(200);
  auto conn = MustConnect(Env("REDIS_URL"), options);
  // BLPOP for 1 s outlasts io_timeout; BlockingCommand adds the server timeout to it.
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply none,
                          conn->BlockingCommand({"BLPOP", Key("empty"), "1"}, absl::Seconds(1)));
  EXPECT_TRUE(none.is_nil());
  // A plain Command with the same wait times out and breaks the connection.
  EXPECT_THAT(conn->Command({"BLPOP", Key("empty"), "1"}).status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_FALSE(conn->ok());
  EXPECT_THAT(conn->Command({"PING"}).status(), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(RedisClientTest, WrongPasswordIsUnauthenticatedAndNeverQuoted) {
  const std::string url = absl::StrReplaceAll(Env("REDIS_URL"), {{Password(), "not-THE-pw-42"}});
  auto conn = RedisConnection::Connect(Secret::Url(url));
  EXPECT_THAT(conn.status(), StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("AUTH")));
  EXPECT_THAT(conn.status().ToString(), Not(HasSubstr("not-THE-pw-42")));
  const std::string no_password =
      absl::StrReplaceAll(Env("REDIS_URL"), {{absl::StrCat("default:", Password(), "@"), ""}});
  auto anonymous = MustConnect(no_password);
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply denied, anonymous->Command({"GET", Key("x")}));
  EXPECT_THAT(denied.AsStatus("get"), StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(RedisClientTest, SelectsTheDatabaseOfTheUrl) {
  std::string url = Env("REDIS_URL");
  url = url.substr(0, url.rfind('/')) + "/3";
  auto db3 = MustConnect(url);
  ASSERT_THAT(db3->Command({"SET", Key("db"), "three", "EX", "60"}).status(), IsOk());
  auto db0 = MustConnect(Env("REDIS_URL"));
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply in_db0, db0->Command({"GET", Key("db")}));
  EXPECT_TRUE(in_db0.is_nil());
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply in_db3, db3->Command({"GET", Key("db")}));
  EXPECT_EQ(in_db3.str, "three");
}

// ioredis takes the database from the query when the path names none (and the path's when
// both do): a URL with ?db=3 put Node services on database 3 and ours on 0.
TEST(RedisClientTest, TakesTheDatabaseFromTheQueryAsIoredisDoes) {
  std::string base = Env("REDIS_URL");
  base = base.substr(0, base.rfind('/'));
  auto by_query = MustConnect(base + "?db=4");
  ASSERT_THAT(by_query->Command({"SET", Key("query-db"), "four", "EX", "60"}).status(), IsOk());
  auto db4 = MustConnect(base + "/4");
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply in_db4, db4->Command({"GET", Key("query-db")}));
  EXPECT_EQ(in_db4.str, "four");
  auto path_wins = MustConnect(base + "/5?db=4");
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply in_db5, path_wins->Command({"GET", Key("query-db")}));
  EXPECT_TRUE(in_db5.is_nil());
}

// A client name is for operators only: a user whose ACL lacks client|setname (which ioredis
// shrugs off) could not connect at all.
TEST(RedisClientTest, ARefusedClientNameDoesNotFailTheConnection) {
  auto admin = MustConnect(Env("REDIS_URL"));
  const std::string user = absl::StrCat("jqtest-noname-", getpid());
  ASSERT_THAT(admin
                  ->Command({"ACL", "SETUSER", user, "on", ">noname-pass", "~*", "&*", "+@all",
                             "-client|setname"})
                  .status(),
              IsOk());
  struct DelUser {
    RedisConnection& admin;
    std::string user;
    ~DelUser() { (void)admin.Command({"ACL", "DELUSER", user}); }
  } del{*admin, user};
  const std::string url = absl::StrReplaceAll(
      Env("REDIS_URL"), {{absl::StrCat("default:", Password(), "@"), user + ":noname-pass@"}});
  RedisOptions options;
  options.client_name = "named";
  absl::StatusOr<std::unique_ptr<RedisConnection>> conn =
      RedisConnection::Connect(Secret::Url(url), options);
  ASSERT_THAT(conn.status(), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply pong, (*conn)->Command({"PING"}));
  EXPECT_EQ(pong.str, "PONG");
}

TEST(RedisClientTest, UnixSocket) {
  auto conn = MustConnect(absl::StrCat("unix://default:", Password(), "@", Env("REDIS_SOCKET")));
  EXPECT_EQ(conn->transport(), "unix");
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply pong, conn->Command({"PING"}));
  EXPECT_EQ(pong.str, "PONG");
}

TEST(RedisClientTest, TlsWithTheRightCa) {
  RedisOptions options;
  options.tls_ca_file = Env("REDIS_TLS_CA");
  options.client_name = "jq-tls-test";
  auto conn = MustConnect(Env("REDIS_TLS_URL"), options);
  EXPECT_EQ(conn->transport(), "tls");
  std::vector<std::vector<std::string>> commands;
  for (int i = 0; i < 200; ++i) commands.push_back({"ECHO", std::string(1000, 'a' + i % 26)});
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<RedisReply> replies, conn->Pipeline(commands));
  ASSERT_EQ(replies.size(), 200u);
  EXPECT_EQ(replies[199].str, std::string(1000, 'a' + 199 % 26));
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply name, conn->Command({"CLIENT", "GETNAME"}));
  EXPECT_EQ(name.str, "jq-tls-test");
}

TEST(RedisClientTest, TlsVerifyFailureIsAClearError) {
  // The system store does not know our self-signed CA.
  auto untrusted = RedisConnection::Connect(Secret::Url(Env("REDIS_TLS_URL")));
  EXPECT_THAT(untrusted.status(),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("certificate")));
  EXPECT_THAT(untrusted.status().ToString(), Not(HasSubstr(Password())));
  RedisOptions missing_ca;
  missing_ca.tls_ca_file = "/nonexistent/ca.pem";
  EXPECT_THAT(RedisConnection::Connect(Secret::Url(Env("REDIS_TLS_URL")), missing_ca).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CA file")));
  // Verification off: connects (for test setups only).
  RedisOptions insecure;
  insecure.tls_verify = false;
  auto conn = MustConnect(Env("REDIS_TLS_URL"), insecure);
  EXPECT_THAT(conn->Command({"PING"}).status(), IsOk());
  // Plain TCP to the TLS port fails instead of hanging.
  std::string plain = Env("REDIS_TLS_URL");
  plain.replace(0, 6, "redis");
  RedisOptions quick;
  quick.connect_timeout = absl::Seconds(1);
  quick.io_timeout = absl::Seconds(1);
  EXPECT_FALSE(RedisConnection::Connect(Secret::Url(plain), quick).ok());
}

TEST(RedisClientTest, BadUrlsAndUnreachableServers) {
  for (const char* bad : {"http://localhost:6379", "redis://", "redis://host:6379/x", "unix://",
                          "redis://:pw@localhost:99999"}) {
    EXPECT_FALSE(RedisConnection::Connect(Secret::Url(bad)).ok()) << bad;
  }
  RedisOptions quick;
  quick.connect_timeout = absl::Seconds(1);
  // Port 1 on loopback: nothing listens.
  EXPECT_THAT(RedisConnection::Connect(Secret::Url("redis://127.0.0.1:1"), quick).status(),
              StatusIs(absl::StatusCode::kUnavailable));
}

// getaddrinfo() has no timeout: a resolver that does not answer must not hold a connect past
// connect_timeout. The stand-in lookup blocks until the test lets it go, so Connect returning
// first is what bounds it.
TEST(RedisClientTest, ASilentResolverIsBoundedByTheConnectTimeout) {
  auto release = std::make_shared<absl::Notification>();
  auto lookups = std::make_shared<std::atomic<int>>(0);
  internal::SetLookupForTest(
      [release, lookups](const char*, const char*, const addrinfo*, addrinfo**) {
        ++*lookups;
        release->WaitForNotificationWithTimeout(absl::Seconds(60));
        return EAI_AGAIN;
      });
  RedisOptions quick;
  quick.connect_timeout = absl::Milliseconds(200);
  EXPECT_THAT(
      RedisConnection::Connect(Secret::Url("redis://:pw@silent.invalid:6379"), quick).status(),
      StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("resolving silent.invalid")));
  EXPECT_EQ(lookups->load(), 1);
  EXPECT_FALSE(release->HasBeenNotified());
  release->Notify();
  // A lookup that fails says so; numeric addresses never reach the lookup.
  internal::SetLookupForTest([lookups](const char*, const char*, const addrinfo*, addrinfo**) {
    ++*lookups;
    return EAI_NONAME;
  });
  EXPECT_THAT(RedisConnection::Connect(Secret::Url("redis://nowhere.invalid:6379"), quick).status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("resolving nowhere.invalid")));
  EXPECT_EQ(lookups->load(), 2);
  internal::SetLookupForTest(nullptr);
  auto conn = MustConnect(Env("REDIS_URL"));
  EXPECT_EQ(lookups->load(), 2);
  // A name still resolves through the real resolver.
  auto by_name = MustConnect(absl::StrReplaceAll(Env("REDIS_URL"), {{"127.0.0.1", "localhost"}}));
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply pong, by_name->Command({"PING"}));
  EXPECT_EQ(pong.str, "PONG");
}

// A pool that cannot connect says why, not only that it waited.
TEST(RedisClientTest, PoolTimingOutNamesTheConnectError) {
  RedisOptions quick;
  quick.connect_timeout = absl::Seconds(1);
  RedisPool pool(Secret::Url("redis://127.0.0.1:1"), quick, 2);
  EXPECT_THAT(pool.Acquire(absl::Milliseconds(300)).status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("refused")));
}

TEST(RedisClientTest, PoolReplacesAConnectionTheServerKilled) {
  RedisOptions options;
  options.client_name = absl::StrCat("jq-pool-", getpid());
  RedisPool pool(Secret::Url(Env("REDIS_URL")), options, 2);
  int64_t id = 0;
  {
    JQ_ASSERT_OK_AND_ASSIGN(RedisPool::Handle conn, pool.Acquire());
    JQ_ASSERT_OK_AND_ASSIGN(RedisReply client_id, conn->Command({"CLIENT", "ID"}));
    id = client_id.integer;
  }
  // The server drops our client (as on a restart or a failover).
  auto admin = MustConnect(Env("REDIS_URL"));
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply killed,
                          admin->Command({"CLIENT", "KILL", "ID", absl::StrCat(id)}));
  EXPECT_GE(killed.integer, 1);
  // Time for the server's FIN to arrive; the pool then sees the idle connection is closed.
  absl::SleepFor(absl::Milliseconds(100));
  // The closed one is dropped, not handed out to fail the caller's next command.
  JQ_ASSERT_OK_AND_ASSIGN(RedisPool::Handle fresh, pool.Acquire());
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply pong, fresh->Command({"PING"}));
  EXPECT_EQ(pong.str, "PONG");
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply new_id, fresh->Command({"CLIENT", "ID"}));
  EXPECT_NE(new_id.integer, id);
}

// An idle TLS connection has read nothing since its handshake (TLS 1.3 session tickets wait
// in the socket): the pool's liveness check must not take those for a closed connection.
TEST(RedisClientTest, PoolKeepsAnIdleTlsConnection) {
  RedisOptions options;
  options.tls_ca_file = Env("REDIS_TLS_CA");
  RedisPool pool(Secret::Url(Env("REDIS_TLS_URL")), options, 1);
  int64_t id = 0;
  {
    JQ_ASSERT_OK_AND_ASSIGN(RedisPool::Handle conn, pool.Acquire());
    JQ_ASSERT_OK_AND_ASSIGN(RedisReply client_id, conn->Command({"CLIENT", "ID"}));
    id = client_id.integer;
  }
  absl::SleepFor(absl::Milliseconds(100));
  JQ_ASSERT_OK_AND_ASSIGN(RedisPool::Handle again, pool.Acquire());
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply client_id, again->Command({"CLIENT", "ID"}));
  EXPECT_EQ(client_id.integer, id);
}

// Assigning a new handle to a variable that holds one gives the old connection back.
TEST(RedisClientTest, ReassigningAHandleReturnsItsConnection) {
  RedisPool pool(Secret::Url(Env("REDIS_URL")), RedisOptions(), 2);
  absl::StatusOr<RedisPool::Handle> handle = pool.Acquire();
  ASSERT_THAT(handle.status(), IsOk());
  for (int i = 0; i < 4; ++i) {
    handle = pool.Acquire(absl::Milliseconds(500));
    ASSERT_THAT(handle.status(), IsOk()) << "reassignment " << i;
  }
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply pong, (*handle)->Command({"PING"}));
  EXPECT_EQ(pong.str, "PONG");
}

// A write over TLS to a connection the server closed is an error, not a SIGPIPE that kills
// the process (plain TCP writes use MSG_NOSIGNAL; OpenSSL's socket BIO used write(2)).
TEST(RedisClientTest, TlsWriteToAClosedConnectionIsAnError) {
  RedisOptions options;
  options.tls_ca_file = Env("REDIS_TLS_CA");
  auto conn = MustConnect(Env("REDIS_TLS_URL"), options);
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply client_id, conn->Command({"CLIENT", "ID"}));
  auto admin = MustConnect(Env("REDIS_URL"));
  JQ_ASSERT_OK_AND_ASSIGN(
      RedisReply killed, admin->Command({"CLIENT", "KILL", "ID", absl::StrCat(client_id.integer)}));
  EXPECT_EQ(killed.integer, 1);
  absl::SleepFor(absl::Milliseconds(200));
  // Several TLS records: the first is refused with a reset, the next write gets EPIPE.
  EXPECT_THAT(conn->Command({"SET", Key("big"), std::string(8 << 20, 'x')}).status(),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(conn->ok());
}

// A loopback server of the test's own, for replies Redis does not give: it accepts one
// connection and runs `serve` on it.
class FakeServer {
 public:
  explicit FakeServer(std::function<void(int fd)> serve) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listen_fd_, 4) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("fake server: cannot listen");
    }
    port_ = ntohs(addr.sin_port);
    if (serve) {
      thread_ = std::thread([this, serve = std::move(serve)] {
        const int fd = ::accept(listen_fd_, nullptr, nullptr);
        if (fd < 0) return;
        serve(fd);
        ::close(fd);
      });
    }
  }
  ~FakeServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(listen_fd_);
  }
  std::string Url(absl::string_view userinfo = "") const {
    return absl::StrCat("redis://", userinfo, "127.0.0.1:", port_);
  }

 private:
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// connect_timeout covers AUTH: a server that accepts and never answers is given up on then,
// not after io_timeout.
TEST(RedisClientTest, ConnectTimeoutCoversAuth) {
  FakeServer silent(nullptr);  // the kernel accepts into the backlog; nobody answers
  RedisOptions options;
  options.connect_timeout = absl::Milliseconds(300);
  options.io_timeout = absl::Seconds(30);
  const absl::Time start = absl::Now();
  EXPECT_THAT(RedisConnection::Connect(Secret::Url(silent.Url(":pw@")), options).status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

// io_timeout bounds a wait without progress, not a whole reply: a big reply that keeps
// arriving is read to its end. Each gap is a fifth of io_timeout (a loaded machine's
// scheduling delays must not make one outlast it), the whole reply over twice io_timeout.
TEST(RedisClientTest, ASlowButSteadyReplyIsReadToItsEnd) {
  const std::string value(40 * 1000, 'v');
  FakeServer drip([&](int fd) {
    char buf[256];
    if (::recv(fd, buf, sizeof(buf), 0) <= 0) return;  // the GET
    const std::string reply = absl::StrCat("$", value.size(), "\r\n", value, "\r\n");
    for (size_t sent = 0; sent < reply.size(); sent += 4 * 1000) {
      const std::string chunk = reply.substr(sent, 4 * 1000);
      if (::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) return;
      absl::SleepFor(absl::Milliseconds(250));
    }
  });
  RedisOptions options;
  options.io_timeout = absl::Milliseconds(1250);
  auto conn = MustConnect(drip.Url(), options);
  const absl::Time start = absl::Now();
  JQ_ASSERT_OK_AND_ASSIGN(RedisReply reply, conn->Command({"GET", "k"}));
  EXPECT_EQ(reply.str, value);
  // Only meaningful while the reply outlasts io_timeout (a lower bound: never flaky).
  EXPECT_GT(absl::Now() - start, options.io_timeout) << "the reply came faster than io_timeout";
}

// max_reply_bytes limits each reply, not the sum of a pipeline's.
TEST(RedisClientTest, MaxReplyBytesIsPerReply) {
  RedisOptions options;
  options.max_reply_bytes = 1024;
  auto conn = MustConnect(Env("REDIS_URL"), options);
  std::vector<std::vector<std::string>> commands(20, {"ECHO", std::string(100, 'e')});
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<RedisReply> replies, conn->Pipeline(commands));
  EXPECT_EQ(replies.size(), 20u);
  EXPECT_THAT(conn->Command({"ECHO", std::string(2000, 'e')}).status(),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(RedisClientTest, UnixUrlWithAHostIsRefused) {
  // Would have dialled /redis/redis.sock, dropping "run".
  EXPECT_THAT(RedisConnection::Connect(Secret::Url("unix://run/redis/redis.sock")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute path")));
}

}  // namespace
}  // namespace jobqueue
