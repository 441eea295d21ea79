// libpq connections, the pool, and the one place that maps Postgres errors to absl::Status.
#ifndef JOBQUEUE_SRC_PG_CONNECTION_H_
#define JOBQUEUE_SRC_PG_CONNECTION_H_

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "jobqueue/secret.h"

namespace jobqueue::internal {

// Maps a failed result (or, with result == nullptr, the connection's last error) to a status.
// Connection-class errors are Unavailable (retryable); serialization failures and deadlocks
// Aborted; unique violations AlreadyExists; data and constraint errors InvalidArgument;
// undefined tables FailedPrecondition ("run migrate"). `context` says what was being done.
absl::Status StatusFromPg(PGconn* conn, const PGresult* result, absl::string_view context);

class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(PGresult* result) : result_(result) {}
  int rows() const { return result_ ? PQntuples(result_.get()) : 0; }
  bool IsNull(int row, int col) const { return PQgetisnull(result_.get(), row, col) != 0; }
  absl::string_view Get(int row, int col) const {
    return absl::string_view(PQgetvalue(result_.get(), row, col),
                             static_cast<size_t>(PQgetlength(result_.get(), row, col)));
  }
  int64_t GetInt64(int row, int col) const;
  int GetInt(int row, int col) const { return static_cast<int>(GetInt64(row, col)); }
  // A column holding epoch microseconds.
  absl::Time GetMicrosTime(int row, int col) const {
    return absl::FromUnixMicros(GetInt64(row, col));
  }
  std::optional<absl::Time> GetOptionalMicrosTime(int row, int col) const {
    if (IsNull(row, col)) return std::nullopt;
    return GetMicrosTime(row, col);
  }
  PGresult* raw() const { return result_.get(); }

 private:
  struct Clear {
    void operator()(PGresult* r) const { PQclear(r); }
  };
  std::unique_ptr<PGresult, Clear> result_;
};

// Text parameters; nullopt is SQL NULL.
using PgParams = std::vector<std::optional<std::string>>;

struct PgStatement {
  std::string name;  // prepared once per connection under this name
  std::string sql;
};

class PgConnection {
 public:
  static absl::StatusOr<std::unique_ptr<PgConnection>> Connect(const Secret& url,
                                                               absl::Duration connect_timeout,
                                                               absl::string_view application_name);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs a prepared statement (prepared here on first use). Fails on any non-OK result.
  absl::StatusOr<PgResult> Run(const PgStatement& statement, const PgParams& params);
  // Runs one statement with parameters, unprepared.
  absl::StatusOr<PgResult> Exec(absl::string_view sql, const PgParams& params = {});
  // Runs a script of several statements without parameters.
  absl::Status ExecScript(absl::string_view sql, absl::string_view context);
  // Sends `script`, statements with COPY ... FROM STDIN among them, as one query, so the whole
  // script costs a round trip per COPY plus one. The i-th COPY streams copy_data(i, row results
  // so far). The first failure ends the script: the server skips the rest after its own
  // errors, and a copy_data error aborts that COPY, so what follows it never runs.
  // *copies_sent counts COPYs whose data went out whole.
  absl::Status RunCopyScript(
      absl::string_view script,
      absl::FunctionRef<absl::StatusOr<std::string>(int copy, absl::Span<const PgResult> rows)>
          copy_data,
      absl::string_view context, int* copies_sent);

  bool ok() const { return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK; }
  // False once the server refused a write as read-only: the pool closes the connection, so
  // the next one can reach the primary that a failover moved behind the same name.
  bool reusable() const { return ok() && !refused_writes_; }
  PGconn* raw() { return conn_; }

 private:
  explicit PgConnection(PGconn* conn) : conn_(conn) {}
  absl::StatusOr<PgResult> Check(PGresult* result, absl::string_view context);
  // StatusFromPg, noting a read-only refusal.
  absl::Status Error(const PGresult* result, absl::string_view context);
  // *stale_plan: the server refused a statement prepared before a column's type changed.
  absl::StatusOr<PgResult> RunPrepared(const PgStatement& statement, const PgParams& params,
                                       bool* stale_plan);

  PGconn* conn_;
  absl::flat_hash_set<std::string> prepared_;
  // Bumped when the server refuses this connection's prepared statements (a migration changed
  // a result column's type); statements are then prepared again under new names.
  int plan_generation_ = 0;
  bool refused_writes_ = false;
};

// A fixed-size pool. Connections are made lazily and dropped when broken; Acquire() also drops
// an idle one the server ended meanwhile, so a restarted server costs no caller an error.
class PgPool {
 public:
  PgPool(Secret url, int size, absl::Duration connect_timeout, std::string application_name);
  ~PgPool();

  class Handle {
   public:
    Handle(PgPool* pool, std::unique_ptr<PgConnection> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    Handle(Handle&&) = default;
    Handle& operator=(Handle&&) = default;
    ~Handle();
    PgConnection* operator->() { return conn_.get(); }
    PgConnection& operator*() { return *conn_; }

   private:
    PgPool* pool_;
    std::unique_ptr<PgConnection> conn_;
  };

  // Waits up to `wait` for a free connection; Unavailable when none comes or connecting fails.
  absl::StatusOr<Handle> Acquire(absl::Duration wait = absl::Seconds(30));
  // A connection outside the pool (for LISTEN, or a worker's dispatcher).
  absl::StatusOr<std::unique_ptr<PgConnection>> ConnectDedicated();

 private:
  void Return(std::unique_ptr<PgConnection> conn);

  const Secret url_;
  const int size_;
  const absl::Duration connect_timeout_;
  const std::string application_name_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<PgConnection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;
};

// Postgres literal forms for array parameters: {"a","b"} with quoting.
void AppendPgArrayElement(absl::string_view value, std::string* out);
std::string PgTextArray(const std::vector<std::string>& values);
std::string PgInt64Array(const std::vector<int64_t>& values);

}  // namespace jobqueue::internal

#endif  // JOBQUEUE_SRC_PG_CONNECTION_H_
