// A Redis connection of our own: TCP, unix socket or TLS (rediss://, through OpenSSL), RESP
// through hiredis' reader and formatter only, AUTH and SELECT from the URL, timeouts,
// pipelining, and a pool that reconnects with backoff. The transport of the BullMQ backend.
#ifndef JOBQUEUE_REDIS_CLIENT_H_
#define JOBQUEUE_REDIS_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "jobqueue/secret.h"

namespace jobqueue {

struct RedisOptions {
  // Per connection attempt: host name lookup, TLS handshake and AUTH included. Default 5 s.
  absl::Duration connect_timeout = absl::Seconds(5);
  // Longest wait without progress: for the first byte of a reply (blocking commands add their
  // own server timeout), then between bytes sent or received. Default 5 s.
  absl::Duration io_timeout = absl::Seconds(5);
  // rediss:// only: PEM file of trusted CAs; empty means the system's default store.
  std::string tls_ca_file;
  // rediss:// only: verify the server certificate and its name. Default true.
  bool tls_verify = true;
  // Sent with CLIENT SETNAME after connecting when not empty (BullMQ lists workers by name).
  std::string client_name;
  // Largest reply accepted, in bytes, each reply of a pipeline on its own. Default 512 MiB
  // (Redis' own limit for one string).
  int64_t max_reply_bytes = int64_t{512} << 20;

  absl::Status Validate() const;
};

// One RESP value.
struct RedisReply {
  enum class Type { kNil, kString, kStatus, kError, kInteger, kArray };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  int64_t integer = 0;
  std::vector<RedisReply> elements;  // kArray

  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
  // The reply as a status: an error reply becomes the status of its error code (see
  // StatusFromRedisError), anything else OK.
  absl::Status AsStatus(absl::string_view context) const;
};

// The one place a Redis error reply becomes a status: NOSCRIPT -> NotFound, WRONGPASS/NOAUTH ->
// Unauthenticated, NOPERM -> PermissionDenied, LOADING/BUSY/READONLY/MASTERDOWN/TRYAGAIN/MISCONF
// and "max number of clients" -> Unavailable (retryable), OOM -> ResourceExhausted,
// WRONGTYPE/EXECABORT -> FailedPrecondition, ERR and the rest -> InvalidArgument.
absl::Status StatusFromRedisError(absl::string_view error, absl::string_view context);

// OK when `url` is a Redis URL a connection would accept (scheme, host or socket path, database
// number), without connecting; InvalidArgument saying what is wrong otherwise.
absl::Status ValidateRedisUrl(const Secret& url);

class RedisConnection {
 public:
  // redis://[user:password@]host[:port][/db], rediss://... (TLS), or
  // unix://[user:password@]/path/to/redis.sock[?db=N]. Errors never quote the URL.
  static absl::StatusOr<std::unique_ptr<RedisConnection>> Connect(const Secret& url,
                                                                  const RedisOptions& options = {});
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Sends one command and reads its reply. An error reply is returned as a reply (check
  // is_error()); a transport failure is Unavailable and marks the connection broken, as does a
  // READONLY or MASTERDOWN reply (a demoted primary: reconnecting finds the new one).
  absl::StatusOr<RedisReply> Command(const std::vector<std::string>& argv);
  // The same, waiting up to io_timeout + `server_timeout` (BZPOPMIN, XREAD BLOCK, ...).
  // With `cancel_fd` >= 0, the wait also ends as soon as that descriptor is readable (it is
  // not read): Cancelled, and the connection is broken (its reply may still come).
  absl::StatusOr<RedisReply> BlockingCommand(const std::vector<std::string>& argv,
                                             absl::Duration server_timeout, int cancel_fd = -1);
  // Sends all commands in one write and reads all replies, waiting up to io_timeout +
  // `server_timeout` (the first command may block, the rest run when it returns). When
  // `cancel_fd` becomes readable first, `on_cancel` runs once, on this thread, to end the
  // blocking command another way (CLIENT UNBLOCK from another connection), and the replies
  // are still read: the connection stays usable.
  absl::StatusOr<std::vector<RedisReply>> BlockingPipeline(
      const std::vector<std::vector<std::string>>& commands, absl::Duration server_timeout,
      int cancel_fd, std::function<void()> on_cancel);
  // Sends all commands in one write and reads all replies: one round trip.
  absl::StatusOr<std::vector<RedisReply>> Pipeline(
      const std::vector<std::vector<std::string>>& commands);

  // False once a transport error happened; a broken connection is not used again.
  bool ok() const;
  // ok(), and the server has not closed the connection meanwhile (checked without blocking;
  // a closed one becomes broken). For a connection that sat idle.
  bool CheckAlive();
  // Callable from any thread: a command blocked on this connection (BZPOPMIN, XREAD BLOCK)
  // returns Unavailable at once and the connection is broken. For shutting down waiters.
  void Interrupt();
  // "tcp", "unix" or "tls".
  absl::string_view transport() const;

 private:
  class Impl;
  explicit RedisConnection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A fixed-size pool. Broken connections are dropped and made anew on the next Acquire(), with
// exponential backoff between failed attempts, so a restarted server is picked up.
class RedisPool {
 public:
  RedisPool(Secret url, RedisOptions options, int size);
  ~RedisPool();

  class Handle {
   public:
    Handle(RedisPool* pool, std::unique_ptr<RedisConnection> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    Handle(Handle&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)), conn_(std::move(other.conn_)) {}
    // Returns the connection held before to its pool.
    Handle& operator=(Handle&& other) noexcept;
    ~Handle();
    RedisConnection* operator->() { return conn_.get(); }
    RedisConnection& operator*() { return *conn_; }

   private:
    void Release();

    RedisPool* pool_;
    std::unique_ptr<RedisConnection> conn_;
  };

  // Waits up to `wait` for a free connection; Unavailable when none comes or connecting fails.
  absl::StatusOr<Handle> Acquire(absl::Duration wait = absl::Seconds(10));

 private:
  void Return(std::unique_ptr<RedisConnection> conn);

  const Secret url_;
  const RedisOptions options_;
  const int size_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<RedisConnection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_attempt_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  // Why the last connection attempt failed, for a caller that times out waiting.
  absl::Status last_connect_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace jobqueue

#endif  // JOBQUEUE_REDIS_CLIENT_H_
