#include "jobqueue/redis_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "internal/log.h"
#include "internal/resolve.h"
#include "jobqueue/status.h"
#include "url.h"

namespace jobqueue {
namespace {

struct Endpoint {
  enum class Kind { kTcp, kUnix, kTls } kind = Kind::kTcp;
  std::string host;  // or the socket path
  int port = 6379;
  std::string user;
  Secret password;
  bool has_password = false;
  int db = 0;
};

absl::StatusOr<Endpoint> ParseEndpoint(const Secret& url) {
  JQ_ASSIGN_OR_RETURN(internal::ParsedUrl parsed, internal::ParseUrl(url.Reveal()));
  Endpoint endpoint;
  if (parsed.scheme == "redis") {
    endpoint.kind = Endpoint::Kind::kTcp;
  } else if (parsed.scheme == "rediss") {
    endpoint.kind = Endpoint::Kind::kTls;
  } else if (parsed.scheme == "unix") {
    endpoint.kind = Endpoint::Kind::kUnix;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "Redis URL scheme must be redis, rediss or unix, not \"", parsed.scheme, "\""));
  }
  endpoint.user = parsed.user;
  endpoint.password = parsed.password;
  endpoint.has_password = parsed.has_password;
  std::string db_text;
  if (endpoint.kind == Endpoint::Kind::kUnix) {
    if (!parsed.host.empty()) {
      // unix://run/redis.sock would otherwise dial /redis.sock.
      return absl::InvalidArgumentError(
          "unix Redis URL takes an absolute path and no host: unix:///path/to/redis.sock");
    }
    endpoint.host = "/" + parsed.path;
    if (parsed.path.empty()) return absl::InvalidArgumentError("unix Redis URL needs a path");
    for (const auto& [key, value] : parsed.query) {
      if (key == "db") db_text = value;
    }
  } else {
    if (parsed.host.empty()) return absl::InvalidArgumentError("Redis URL has no host");
    endpoint.host = parsed.host;
    if (parsed.port != 0) endpoint.port = parsed.port;
    // As ioredis reads it, so a REDIS_URL shared with Node services names one database: the
    // path's number, else the query's db.
    db_text = parsed.path;
    for (const auto& [key, value] : parsed.query) {
      if (key == "db" && db_text.empty()) db_text = value;
    }
  }
  if (!db_text.empty() && (!absl::SimpleAtoi(db_text, &endpoint.db) || endpoint.db < 0)) {
    return absl::InvalidArgumentError("Redis URL database must be a non-negative number");
  }
  return endpoint;
}

}  // namespace

absl::Status ValidateRedisUrl(const Secret& url) { return ParseEndpoint(url).status(); }

namespace {

absl::Status Unavailable(absl::string_view what, absl::string_view detail) {
  return absl::UnavailableError(absl::StrCat("redis ", what, ": ", detail));
}

std::string OpenSslErrors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) out.append("; ");
    out.append(buf);
  }
  return out.empty() ? "unknown TLS error" : out;
}

// OpenSSL's socket BIO writes with write(2): a peer that closed the connection raises SIGPIPE,
// which kills a process that has not ignored it. This BIO is the socket BIO with its writes
// made by send(MSG_NOSIGNAL), as plain TCP writes are.
int SendNoSignal(BIO* bio, const char* data, int size) {
  int fd = -1;
  BIO_get_fd(bio, &fd);
  BIO_clear_retry_flags(bio);
  const ssize_t n = ::send(fd, data, static_cast<size_t>(size), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    BIO_set_retry_write(bio);
  }
  return static_cast<int>(n);
}

const BIO_METHOD* NoSignalSocketMethod() {
  static const BIO_METHOD* const method = [] {
    const BIO_METHOD* socket = BIO_s_socket();
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "jobqueue socket");
    if (m == nullptr) return static_cast<BIO_METHOD*>(nullptr);
    BIO_meth_set_write(m, SendNoSignal);
    BIO_meth_set_read(m, BIO_meth_get_read(socket));
    BIO_meth_set_puts(m, BIO_meth_get_puts(socket));
    BIO_meth_set_gets(m, BIO_meth_get_gets(socket));
    BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(socket));
    BIO_meth_set_create(m, BIO_meth_get_create(socket));
    BIO_meth_set_destroy(m, BIO_meth_get_destroy(socket));
    BIO_meth_set_callback_ctrl(m, BIO_meth_get_callback_ctrl(socket));
    return m;
  }();
  return method;
}

int MillisUntil(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(
      absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))), 1 << 30));
}

RedisReply Convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

}  // namespace

absl::Status RedisOptions::Validate() const {
  if (connect_timeout <= absl::ZeroDuration() || io_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("Redis timeouts must be positive");
  }
  if (max_reply_bytes < 1024) return absl::InvalidArgumentError("max_reply_bytes too small");
  if (client_name.find_first_of(" \n\r\t") != std::string::npos) {
    return absl::InvalidArgumentError("Redis client name must not contain spaces");
  }
  return absl::OkStatus();
}

absl::Status StatusFromRedisError(absl::string_view error, absl::string_view context) {
  const absl::string_view code = error.substr(0, error.find(' '));
  const std::string message = absl::StrCat(context, ": ", error);
  if (code == "NOSCRIPT") return absl::NotFoundError(message);
  if (code == "WRONGPASS" || code == "NOAUTH") return absl::UnauthenticatedError(message);
  if (code == "NOPERM") return absl::PermissionDeniedError(message);
  // MISCONF: the server cannot persist and refuses writes until it can.
  if (code == "LOADING" || code == "BUSY" || code == "READONLY" || code == "MASTERDOWN" ||
      code == "TRYAGAIN" || code == "CLUSTERDOWN" || code == "MISCONF" ||
      absl::StartsWith(error, "ERR max number of clients reached")) {
    return absl::UnavailableError(message);
  }
  if (code == "OOM") return absl::ResourceExhaustedError(message);
  if (code == "WRONGTYPE" || code == "EXECABORT") return absl::FailedPreconditionError(message);
  if (absl::StartsWith(error, "ERR invalid password") || absl::StartsWith(error, "ERR AUTH") ||
      absl::StrContains(error, "without any password")) {
    return absl::UnauthenticatedError(message);
  }
  return absl::InvalidArgumentError(message);
}

absl::Status RedisReply::AsStatus(absl::string_view context) const {
  if (type != Type::kError) return absl::OkStatus();
  return StatusFromRedisError(str, context);
}

class RedisConnection::Impl {
 public:
  Impl(Endpoint endpoint, RedisOptions options)
      : endpoint_(std::move(endpoint)), options_(std::move(options)) {
    reader_ = redisReaderCreate();
    // An empty read buffer larger than this is freed, so one huge reply does not stay
    // allocated for the life of the connection.
    reader_->maxbuf = 1 << 20;
  }
  ~Impl() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
    redisReaderFree(reader_);
  }

  absl::Status Open() {
    const absl::Time deadline = absl::Now() + options_.connect_timeout;
    JQ_RETURN_IF_ERROR(endpoint_.kind == Endpoint::Kind::kUnix ? ConnectUnix(deadline)
                                                               : ConnectTcp(deadline));
    if (endpoint_.kind == Endpoint::Kind::kTls) JQ_RETURN_IF_ERROR(Handshake(deadline));
    // AUTH, SELECT and SETNAME in one round trip.
    std::vector<std::vector<std::string>> hello;
    std::vector<const char*> steps;
    if (endpoint_.has_password) {
      if (endpoint_.user.empty()) {
        hello.push_back({"AUTH", std::string(endpoint_.password.Reveal())});
      } else {
        hello.push_back({"AUTH", endpoint_.user, std::string(endpoint_.password.Reveal())});
      }
      steps.push_back("AUTH");
    }
    if (endpoint_.db != 0) {
      hello.push_back({"SELECT", absl::StrCat(endpoint_.db)});
      steps.push_back("SELECT");
    }
    if (!options_.client_name.empty()) {
      hello.push_back({"CLIENT", "SETNAME", options_.client_name});
      steps.push_back("CLIENT SETNAME");
    }
    if (hello.empty()) return absl::OkStatus();
    // connect_timeout bounds the whole connect: no extension for progress here.
    JQ_ASSIGN_OR_RETURN(std::vector<RedisReply> replies,
                        Pipeline(hello, deadline, /*extend_on_progress=*/false));
    for (size_t i = 0; i < replies.size(); ++i) {
      if (replies[i].is_error() && absl::string_view(steps[i]) == "CLIENT SETNAME") {
        // A name is for operators only; ioredis ignores a refusal too (an ACL without
        // client|setname, a renamed CLIENT command).
        internal::LogDebug("redis CLIENT SETNAME refused: {}", replies[i].str);
        continue;
      }
      if (replies[i].is_error()) {
        broken_ = true;
        // Error replies never contain the password; the context names only the step.
        return replies[i].AsStatus(absl::StrCat("redis ", steps[i]));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<RedisReply>> Pipeline(
      const std::vector<std::vector<std::string>>& commands, absl::Time deadline,
      bool extend_on_progress = true) {
    extend_ = extend_on_progress;
    if (broken_) return Unavailable("connection", "broken by an earlier error; reconnect");
    std::string out;
    for (const std::vector<std::string>& argv : commands) {
      if (argv.empty()) return absl::InvalidArgumentError("empty Redis command");
      std::vector<const char*> args;
      std::vector<size_t> lens;
      args.reserve(argv.size());
      lens.reserve(argv.size());
      for (const std::string& a : argv) {
        args.push_back(a.data());
        lens.push_back(a.size());
      }
      char* formatted = nullptr;
      const int n = redisFormatCommandArgv(&formatted, static_cast<int>(argv.size()), args.data(),
                                           lens.data());
      if (n < 0 || formatted == nullptr) return absl::ResourceExhaustedError("formatting failed");
      out.append(formatted, static_cast<size_t>(n));
      redisFreeCommand(formatted);
    }
    if (absl::Status s = WriteAll(out, deadline); !s.ok()) return Break(s);
    std::vector<RedisReply> replies;
    replies.reserve(commands.size());
    while (replies.size() < commands.size()) {
      void* raw = nullptr;
      if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
        return Break(absl::DataLossError(absl::StrCat("redis protocol error: ", reader_->errstr)));
      }
      if (raw != nullptr) {
        // max_reply_bytes limits one reply: what is buffered past this one is the next's.
        const auto rest = static_cast<int64_t>(reader_->len - reader_->pos);
        const bool too_big = buffered_ - rest > options_.max_reply_bytes;
        buffered_ = rest;
        if (too_big) {
          freeReplyObject(raw);
          return Break(ReplyTooBig());
        }
        replies.push_back(Convert(static_cast<redisReply*>(raw)));
        freeReplyObject(raw);
        // A demoted primary (failover behind one DNS name) answers writes this way for good:
        // the next use reconnects, which finds the new primary.
        if (replies.back().is_error() && (absl::StartsWith(replies.back().str, "READONLY ") ||
                                          absl::StartsWith(replies.back().str, "MASTERDOWN "))) {
          broken_ = true;
        }
        continue;
      }
      // Every complete reply has been taken: what is buffered belongs to the next one.
      if (buffered_ > options_.max_reply_bytes) return Break(ReplyTooBig());
      absl::Status s = ReadMore(deadline);
      if (absl::IsCancelled(s) && on_cancel_) {
        // The caller ends the wait its own way (e.g. CLIENT UNBLOCK); the replies still come.
        cancel_fd_ = -1;
        std::exchange(on_cancel_, nullptr)();
        continue;
      }
      if (!s.ok()) return Break(s);
    }
    return replies;
  }

  bool ok() const { return !broken_; }

  // Without blocking: false (and broken) when the server has closed the connection or sent
  // something nobody asked for. An idle connection has nothing to read but, over TLS 1.3, the
  // session tickets sent after the handshake, which SSL_read consumes.
  bool CheckAlive() {
    if (broken_) return false;
    pollfd pfd = {fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 0) == 0) return true;
    if ((pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) != 0) return Dead();
    if (ssl_ == nullptr) {
      char byte;
      const ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
      return Dead();
    }
    char buf[256];
    ERR_clear_error();
    const int rc = SSL_read(ssl_, buf, sizeof(buf));
    if (rc <= 0 && SSL_get_error(ssl_, rc) == SSL_ERROR_WANT_READ) return true;
    return Dead();
  }

  // Any thread: the socket is shut down, so a blocked read returns at once with an error.
  void Interrupt() {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }
  absl::string_view transport() const {
    switch (endpoint_.kind) {
      case Endpoint::Kind::kUnix:
        return "unix";
      case Endpoint::Kind::kTls:
        return "tls";
      default:
        return "tcp";
    }
  }
  const RedisOptions& options() const { return options_; }
  void set_cancel_fd(int fd) { cancel_fd_ = fd; }
  void set_on_cancel(std::function<void()> on_cancel) { on_cancel_ = std::move(on_cancel); }

 private:
  static absl::Status ReplyTooBig() {
    return absl::ResourceExhaustedError("redis reply larger than max_reply_bytes");
  }

  bool Dead() {
    broken_ = true;
    return false;
  }

  absl::Status Break(absl::Status status) {
    broken_ = true;
    return status;
  }

  absl::Status WaitFor(short events, absl::Time deadline, absl::string_view what) {
    pollfd pfds[2] = {{fd_, events, 0}, {cancel_fd_, POLLIN, 0}};
    const nfds_t n = cancel_fd_ >= 0 ? 2 : 1;
    while (true) {
      const int ready = ::poll(pfds, n, MillisUntil(deadline));
      if (ready > 0 && n == 2 && pfds[1].revents != 0 && pfds[0].revents == 0) {
        return absl::CancelledError(absl::StrCat("redis ", what, ": cancelled"));
      }
      if (ready > 0) return absl::OkStatus();
      if (ready == 0)
        return absl::DeadlineExceededError(absl::StrCat("redis ", what, ": timed out"));
      if (errno != EINTR) return Unavailable(what, std::strerror(errno));
    }
  }

  absl::Status ConnectUnix(absl::Time deadline) {
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    if (endpoint_.host.size() >= sizeof(addr.sun_path)) {
      return absl::InvalidArgumentError("unix socket path too long");
    }
    std::memcpy(addr.sun_path, endpoint_.host.c_str(), endpoint_.host.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Unavailable("socket", std::strerror(errno));
    // EAGAIN on a unix socket is a full listen backlog: a failure, not a connect in progress.
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
        errno != EINPROGRESS) {
      return Unavailable(absl::StrCat("connect to ", endpoint_.host), std::strerror(errno));
    }
    return FinishConnect(deadline, endpoint_.host);
  }

  absl::Status ConnectTcp(absl::Time deadline) {
    absl::StatusOr<internal::AddrInfoList> found =
        internal::ResolveTcp(endpoint_.host, absl::StrCat(endpoint_.port), deadline);
    if (!found.ok()) {
      return absl::Status(found.status().code(), absl::StrCat("redis ", found.status().message()));
    }
    const std::string where = absl::StrCat(endpoint_.host, ":", endpoint_.port);
    absl::Status last = Unavailable(absl::StrCat("connect to ", where), "no address");
    for (addrinfo* ai = found->get(); ai != nullptr; ai = ai->ai_next) {
      if (fd_ >= 0) ::close(fd_);
      fd_ =
          ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd_ < 0) continue;
      if (::connect(fd_, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        last = Unavailable(absl::StrCat("connect to ", where), std::strerror(errno));
        continue;
      }
      last = FinishConnect(deadline, where);
      if (last.ok()) break;
    }
    if (last.ok()) {
      const int one = 1;
      setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      setsockopt(fd_, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    }
    return last;
  }

  absl::Status FinishConnect(absl::Time deadline, absl::string_view where) {
    JQ_RETURN_IF_ERROR(WaitFor(POLLOUT, deadline, absl::StrCat("connect to ", where)));
    int error = 0;
    socklen_t len = sizeof(error);
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) return Unavailable(absl::StrCat("connect to ", where), std::strerror(error));
    return absl::OkStatus();
  }

  absl::Status Handshake(absl::Time deadline) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (ctx_ == nullptr) return absl::InternalError(OpenSslErrors());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    if (options_.tls_verify) {
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
      const int loaded =
          options_.tls_ca_file.empty()
              ? SSL_CTX_set_default_verify_paths(ctx_)
              : SSL_CTX_load_verify_locations(ctx_, options_.tls_ca_file.c_str(), nullptr);
      if (loaded != 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "redis TLS: cannot load CA file \"", options_.tls_ca_file, "\": ", OpenSslErrors()));
      }
    }
    ssl_ = SSL_new(ctx_);
    if (ssl_ == nullptr) return absl::InternalError(OpenSslErrors());
    const BIO_METHOD* method = NoSignalSocketMethod();
    BIO* bio = method == nullptr ? nullptr : BIO_new(method);
    if (bio == nullptr) return absl::InternalError(OpenSslErrors());
    BIO_set_fd(bio, fd_, BIO_NOCLOSE);
    SSL_set_bio(ssl_, bio, bio);
    in6_addr ip6;
    in_addr ip4;
    const bool is_ip = inet_pton(AF_INET, endpoint_.host.c_str(), &ip4) == 1 ||
                       inet_pton(AF_INET6, endpoint_.host.c_str(), &ip6) == 1;
    if (!is_ip) SSL_set_tlsext_host_name(ssl_, endpoint_.host.c_str());
    if (options_.tls_verify) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
      const int set = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, endpoint_.host.c_str())
                            : X509_VERIFY_PARAM_set1_host(param, endpoint_.host.c_str(), 0);
      if (set != 1) return absl::InternalError("redis TLS: cannot set the expected host");
    }
    while (true) {
      ERR_clear_error();
      const int rc = SSL_connect(ssl_);
      if (rc == 1) return absl::OkStatus();
      const int error = SSL_get_error(ssl_, rc);
      if (error == SSL_ERROR_WANT_READ) {
        JQ_RETURN_IF_ERROR(WaitFor(POLLIN, deadline, "TLS handshake"));
      } else if (error == SSL_ERROR_WANT_WRITE) {
        JQ_RETURN_IF_ERROR(WaitFor(POLLOUT, deadline, "TLS handshake"));
      } else {
        const long verify = SSL_get_verify_result(ssl_);
        if (verify != X509_V_OK) {
          return absl::UnauthenticatedError(
              absl::StrCat("redis TLS: server certificate not trusted: ",
                           X509_verify_cert_error_string(verify)));
        }
        return Unavailable("TLS handshake", OpenSslErrors());
      }
    }
  }

  // io_timeout bounds a wait without progress: each byte sent or received moves `deadline` on,
  // so a big pipeline or a big reply that keeps flowing does not fail after the server did the
  // work (unless extend_ is off, as while connecting).
  void Progressed(absl::Time& deadline) const {
    if (extend_) deadline = std::max(deadline, absl::Now() + options_.io_timeout);
  }

  absl::Status WriteAll(absl::string_view data, absl::Time& deadline) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n;
      if (ssl_ != nullptr) {
        ERR_clear_error();
        const int chunk = static_cast<int>(std::min<size_t>(data.size() - done, 1 << 30));
        const int rc = SSL_write(ssl_, data.data() + done, chunk);
        if (rc > 0) {
          done += static_cast<size_t>(rc);
          Progressed(deadline);
          continue;
        }
        const int error = SSL_get_error(ssl_, rc);
        if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) {
          JQ_RETURN_IF_ERROR(
              WaitFor(error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, deadline, "write"));
          continue;
        }
        return Unavailable("write", OpenSslErrors());
      }
      n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<size_t>(n);
        Progressed(deadline);
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        JQ_RETURN_IF_ERROR(WaitFor(POLLOUT, deadline, "write"));
      } else {
        return Unavailable("write", n == 0 ? "connection closed" : std::strerror(errno));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ReadMore(absl::Time& deadline) {
    char buf[64 * 1024];
    while (true) {
      ssize_t n;
      if (ssl_ != nullptr) {
        ERR_clear_error();
        const int rc = SSL_read(ssl_, buf, sizeof(buf));
        if (rc <= 0) {
          const int error = SSL_get_error(ssl_, rc);
          if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
            JQ_RETURN_IF_ERROR(
                WaitFor(error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, "read"));
            continue;
          }
          if (error == SSL_ERROR_ZERO_RETURN) return Unavailable("read", "connection closed");
          return Unavailable("read", OpenSslErrors());
        }
        n = rc;
      } else {
        n = ::recv(fd_, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
          JQ_RETURN_IF_ERROR(WaitFor(POLLIN, deadline, "read"));
          continue;
        }
        if (n == 0) return Unavailable("read", "connection closed by the server");
        if (n < 0) return Unavailable("read", std::strerror(errno));
      }
      Progressed(deadline);
      buffered_ += n;
      redisReaderFeed(reader_, buf, static_cast<size_t>(n));
      return absl::OkStatus();
    }
  }

 public:
  void ResetBudget() { buffered_ = 0; }

 private:
  Endpoint endpoint_;
  RedisOptions options_;
  int fd_ = -1;
  int cancel_fd_ = -1;               // see BlockingCommand
  std::function<void()> on_cancel_;  // see BlockingPipeline
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  redisReader* reader_ = nullptr;
  bool broken_ = false;
  bool extend_ = true;  // see Progressed
  int64_t buffered_ = 0;
};

RedisConnection::RedisConnection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RedisConnection::~RedisConnection() = default;

absl::StatusOr<std::unique_ptr<RedisConnection>> RedisConnection::Connect(
    const Secret& url, const RedisOptions& options) {
  JQ_RETURN_IF_ERROR(options.Validate());
  JQ_ASSIGN_OR_RETURN(Endpoint endpoint, ParseEndpoint(url));
  auto impl = std::make_unique<Impl>(std::move(endpoint), options);
  JQ_RETURN_IF_ERROR(impl->Open());
  return std::unique_ptr<RedisConnection>(new RedisConnection(std::move(impl)));
}

absl::StatusOr<RedisReply> RedisConnection::Command(const std::vector<std::string>& argv) {
  return BlockingCommand(argv, absl::ZeroDuration());
}

absl::StatusOr<RedisReply> RedisConnection::BlockingCommand(const std::vector<std::string>& argv,
                                                            absl::Duration server_timeout,
                                                            int cancel_fd) {
  absl::StatusOr<std::vector<RedisReply>> replies =
      BlockingPipeline({argv}, server_timeout, cancel_fd, nullptr);
  if (!replies.ok()) return replies.status();
  return std::move(replies->front());
}

absl::StatusOr<std::vector<RedisReply>> RedisConnection::BlockingPipeline(
    const std::vector<std::vector<std::string>>& commands, absl::Duration server_timeout,
    int cancel_fd, std::function<void()> on_cancel) {
  if (commands.empty()) return std::vector<RedisReply>{};
  impl_->ResetBudget();
  impl_->set_cancel_fd(cancel_fd);
  impl_->set_on_cancel(std::move(on_cancel));
  absl::StatusOr<std::vector<RedisReply>> replies =
      impl_->Pipeline(commands, absl::Now() + impl_->options().io_timeout + server_timeout);
  impl_->set_cancel_fd(-1);
  impl_->set_on_cancel(nullptr);
  return replies;
}

absl::StatusOr<std::vector<RedisReply>> RedisConnection::Pipeline(
    const std::vector<std::vector<std::string>>& commands) {
  return BlockingPipeline(commands, absl::ZeroDuration(), -1, nullptr);
}

bool RedisConnection::ok() const { return impl_->ok(); }
bool RedisConnection::CheckAlive() { return impl_->CheckAlive(); }
void RedisConnection::Interrupt() { impl_->Interrupt(); }
absl::string_view RedisConnection::transport() const { return impl_->transport(); }

RedisPool::RedisPool(Secret url, RedisOptions options, int size)
    : url_(std::move(url)), options_(std::move(options)), size_(std::max(size, 1)) {}

RedisPool::~RedisPool() = default;

RedisPool::Handle::~Handle() { Release(); }

RedisPool::Handle& RedisPool::Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    Release();
    pool_ = std::exchange(other.pool_, nullptr);
    conn_ = std::move(other.conn_);
  }
  return *this;
}

void RedisPool::Handle::Release() {
  if (pool_ != nullptr && conn_ != nullptr) pool_->Return(std::move(conn_));
  conn_.reset();
}

void RedisPool::Return(std::unique_ptr<RedisConnection> conn) {
  absl::MutexLock lock(&mu_);
  if (conn->ok()) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;
  }
}

absl::StatusOr<RedisPool::Handle> RedisPool::Acquire(absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  absl::MutexLock lock(&mu_);
  while (true) {
    while (!idle_.empty()) {
      std::unique_ptr<RedisConnection> conn = std::move(idle_.back());
      idle_.pop_back();
      // One the server closed while it sat here (its idle timeout, a restart) would fail the
      // caller's next command: it is replaced instead.
      if (conn->CheckAlive()) return Handle(this, std::move(conn));
      --open_;
    }
    if (open_ < size_ && absl::Now() >= next_attempt_) {
      ++open_;
      mu_.Unlock();
      absl::StatusOr<std::unique_ptr<RedisConnection>> conn =
          RedisConnection::Connect(url_, options_);
      mu_.Lock();
      if (conn.ok()) {
        backoff_ = absl::ZeroDuration();
        last_connect_error_ = absl::OkStatus();
        return Handle(this, *std::move(conn));
      }
      --open_;
      last_connect_error_ = conn.status();
      // Back off before the next attempt so a server that is down is not hammered.
      backoff_ = std::clamp(backoff_ * 2, absl::Milliseconds(50), absl::Seconds(5));
      next_attempt_ = absl::Now() + backoff_;
      if (!absl::IsUnavailable(conn.status()) && !absl::IsDeadlineExceeded(conn.status())) {
        return conn.status();  // wrong password, bad TLS: retrying will not help
      }
      if (absl::Now() >= deadline) return conn.status();
    }
    const absl::Time wake =
        std::min(deadline, std::max(next_attempt_, absl::Now()) + absl::Milliseconds(1));
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || (open_ < size_ && absl::Now() >= next_attempt_);
    };
    if (!mu_.AwaitWithDeadline(absl::Condition(&ready), wake) && absl::Now() >= deadline) {
      if (!last_connect_error_.ok()) {
        return absl::UnavailableError(
            absl::StrCat("redis pool: no connection in time; the last attempt failed: ",
                         last_connect_error_.message()));
      }
      return absl::UnavailableError("redis pool: no connection became free in time");
    }
  }
}

}  // namespace jobqueue
