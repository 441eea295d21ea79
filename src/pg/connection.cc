#include "pg/connection.h"

#include <netdb.h>
#include <poll.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "internal/log.h"
#include "internal/resolve.h"
#include "jobqueue/status.h"
#include "url.h"

namespace jobqueue::internal {
namespace {

// libpq's connect_timeout does not cover its getaddrinfo(). Host names are looked up here,
// all at once under the timeout, and libpq gets their addresses: `hostaddrs` with the name
// repeated per address in `hosts` (so TLS still checks the name) and, for a list of ports,
// each repeated alike. A name not found in time is left out, as libpq would skip a host it
// cannot reach; socket paths and empty entries keep an empty address (libpq's own). Nothing
// to pin (no names, or lists libpq will refuse): `pinned` false, the string goes as given.
struct PinnedHosts {
  bool pinned = false;
  std::string hosts, hostaddrs, ports;
};

absl::StatusOr<PinnedHosts> PinHostAddresses(const std::string& host, const std::string& port,
                                             absl::Time deadline) {
  const std::vector<std::string> hosts = absl::StrSplit(host, ',');
  const std::vector<std::string> ports = absl::StrSplit(port, ',');
  const bool port_per_host = ports.size() > 1;
  if (port_per_host && ports.size() != hosts.size()) return PinnedHosts();
  auto is_socket = [](const std::string& h) { return h.empty() || h[0] == '/' || h[0] == '@'; };
  std::vector<std::string> names;
  for (const std::string& h : hosts) {
    if (!is_socket(h)) names.push_back(h);
  }
  if (names.empty()) return PinnedHosts();
  std::vector<absl::StatusOr<AddrInfoList>> found = ResolveTcpAll(names, "0", deadline);
  std::vector<std::string> out_hosts, out_addrs, out_ports;
  absl::Status first_failure;
  size_t next_name = 0;
  for (size_t i = 0; i < hosts.size(); ++i) {
    const std::string& port_i = port_per_host ? ports[i] : "";
    if (is_socket(hosts[i])) {
      out_hosts.push_back(hosts[i]);
      out_addrs.emplace_back();
      out_ports.push_back(port_i);
      continue;
    }
    absl::StatusOr<AddrInfoList>& addresses = found[next_name++];
    if (!addresses.ok()) {
      if (first_failure.ok()) first_failure = addresses.status();
      continue;
    }
    std::vector<std::string> seen;
    for (const addrinfo* ai = addresses->get(); ai != nullptr; ai = ai->ai_next) {
      char text[NI_MAXHOST];
      if (getnameinfo(ai->ai_addr, ai->ai_addrlen, text, sizeof(text), nullptr, 0,
                      NI_NUMERICHOST) != 0 ||
          std::find(seen.begin(), seen.end(), text) != seen.end()) {
        continue;
      }
      seen.push_back(text);
      out_hosts.push_back(hosts[i]);
      out_addrs.push_back(text);
      out_ports.push_back(port_i);
    }
  }
  if (out_hosts.empty()) return first_failure;
  PinnedHosts pinned;
  pinned.pinned = true;
  pinned.hosts = absl::StrJoin(out_hosts, ",");
  pinned.hostaddrs = absl::StrJoin(out_addrs, ",");
  if (port_per_host) pinned.ports = absl::StrJoin(out_ports, ",");
  return pinned;
}

std::string Trimmed(const char* text) {
  if (text == nullptr) return "";
  return std::string(absl::StripTrailingAsciiWhitespace(text));
}

// libpq's parse errors quote the part of the connection string they stumble on, which can be
// the password or the whole URL: keep what is wrong, drop what they quote.
std::string WithoutQuotedText(absl::string_view message) {
  std::string out;
  bool quoted = false;
  for (char c : message) {
    if (c == '"') {
      if (!quoted) out += "\"...\"";
      quoted = !quoted;
    } else if (!quoted) {
      out += c;
    }
  }
  return out;
}

}  // namespace

absl::Status StatusFromPg(PGconn* conn, const PGresult* result, absl::string_view context) {
  const char* sqlstate_c = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = sqlstate_c ? sqlstate_c : "";
  // The primary message only: DETAIL can quote the offending data (a payload, a key).
  std::string message = result ? Trimmed(PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY)) : "";
  if (message.empty() && conn != nullptr) message = Trimmed(PQerrorMessage(conn));
  if (message.empty()) message = "unknown error";
  const std::string text = absl::StrCat(context, ": ", message,
                                        sqlstate.empty() ? "" : absl::StrCat(" [", sqlstate, "]"));
  if (sqlstate.empty() || (conn != nullptr && PQstatus(conn) != CONNECTION_OK)) {
    return absl::UnavailableError(absl::StrCat(text, " (connection lost; outcome unknown)"));
  }
  const absl::string_view cls = absl::string_view(sqlstate).substr(0, 2);
  if (cls == "08" || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03") {
    return absl::UnavailableError(text);
  }
  if (sqlstate == "25006") {  // read_only_sql_transaction: a standby, or one after a failover
    return absl::UnavailableError(absl::StrCat(text, "; the server takes no writes"));
  }
  if (sqlstate == "40001" || sqlstate == "40P01") return absl::AbortedError(text);
  if (sqlstate == "23505") return absl::AlreadyExistsError(text);
  if (cls == "22" || cls == "23") return absl::InvalidArgumentError(text);
  if (sqlstate == "42P01" || sqlstate == "3F000") {
    return absl::FailedPreconditionError(absl::StrCat(text, "; run `jobqueue migrate` first"));
  }
  if (sqlstate == "42703") {  // a column a later migration adds
    return absl::FailedPreconditionError(
        absl::StrCat(text, "; the schema is older than this library: run `jobqueue migrate`"));
  }
  if (sqlstate == "42501") {  // insufficient_privilege
    return absl::PermissionDeniedError(
        absl::StrCat(text, "; grant the role rights on the queue's schema and tables"));
  }
  if (sqlstate == "55P03") return absl::UnavailableError(text);  // lock_timeout
  if (cls == "53") return absl::ResourceExhaustedError(text);
  if (cls == "57") return absl::CancelledError(text);
  if (cls == "28") return absl::PermissionDeniedError(text);
  return absl::InternalError(text);
}

int64_t PgResult::GetInt64(int row, int col) const {
  int64_t value = 0;
  if (!absl::SimpleAtoi(Get(row, col), &value)) return 0;
  return value;
}

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Connect(
    const Secret& url, absl::Duration connect_timeout, absl::string_view application_name) {
  const std::string timeout =
      absl::StrCat(std::max<int64_t>(1, absl::ToInt64Seconds(connect_timeout)));
  const std::string dsn(url.Reveal());
  if (absl::Status ambiguous = internal::CheckLibpqUserInfo(dsn); !ambiguous.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("connection string ", url.Redacted(), ": ", ambiguous.message()));
  }
  const std::string app(application_name);
  char* parse_error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(dsn.c_str(), &parse_error);
  if (parsed == nullptr) {
    const std::string why =
        parse_error != nullptr ? WithoutQuotedText(Trimmed(parse_error)) : "out of memory";
    PQfreemem(parse_error);
    return absl::InvalidArgumentError(
        absl::StrCat("connection string ", url.Redacted(), " is not valid: ", why));
  }
  std::string password, host, port;
  bool has_hostaddr = false;
  bool has_service = std::getenv("PGSERVICE") != nullptr;
  for (const PQconninfoOption* option = parsed; option->keyword != nullptr; ++option) {
    if (option->val == nullptr) continue;
    if (std::strcmp(option->keyword, "password") == 0) password = option->val;
    if (std::strcmp(option->keyword, "host") == 0) host = option->val;
    if (std::strcmp(option->keyword, "port") == 0) port = option->val;
    if (std::strcmp(option->keyword, "hostaddr") == 0) has_hostaddr = *option->val != '\0';
    if (std::strcmp(option->keyword, "service") == 0) has_service = *option->val != '\0';
  }
  PQconninfoFree(parsed);
  PinnedHosts pinned;
  if (!has_hostaddr) {
    absl::StatusOr<PinnedHosts> looked_up =
        PinHostAddresses(host, port, absl::Now() + connect_timeout);
    if (!looked_up.ok()) {
      // Unavailable, as libpq's own connect timeout: callers retry it like any outage.
      return absl::UnavailableError(
          absl::StrCat("connecting to ", url.Redacted(), ": ", looked_up.status().message()));
    }
    pinned = *std::move(looked_up);
  }
  // expand_dbname=1 lets `dsn` be a URL or key=value string: it overrides the keys before it
  // and later keys override it. TCP keepalives, unless the DSN sets them: a server host or
  // network that goes away closes no socket, and a statement in flight would otherwise wait
  // for the kernel's defaults (hours) before failing and reconnecting; these end it in about
  // a minute. A busy server answers keepalives, so no statement is cut short by them. A
  // service file only fills keys not given here, so with one in play it decides alone.
  std::vector<const char*> keys = {"dbname", "connect_timeout", "application_name"};
  std::vector<const char*> values = {dsn.c_str(), timeout.c_str(), app.c_str()};
  if (!has_service) {
    keys.insert(keys.begin(),
                {"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count"});
    values.insert(values.begin(), {"1", "30", "10", "3"});
  }
  if (pinned.pinned) {
    keys.insert(keys.end(), {"host", "hostaddr"});
    values.insert(values.end(), {pinned.hosts.c_str(), pinned.hostaddrs.c_str()});
    if (!pinned.ports.empty()) {
      keys.push_back("port");
      values.push_back(pinned.ports.c_str());
    }
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* conn = PQconnectdbParams(keys.data(), values.data(), 1);
  if (conn == nullptr) return absl::ResourceExhaustedError("libpq could not allocate a connection");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = Trimmed(PQerrorMessage(conn));
    PQfinish(conn);
    // libpq's messages name host, port and user; should one ever quote the password, mask it.
    if (!password.empty()) absl::StrReplaceAll({{password, "****"}}, &message);
    absl::StatusCode code = absl::StatusCode::kUnavailable;
    if (absl::StrContains(message, "password authentication failed") ||
        absl::StrContains(message, "no password supplied")) {
      code = absl::StatusCode::kPermissionDenied;
    } else if (absl::StartsWith(message, "invalid ")) {
      // libpq refused an option's value (sslmode=bogus, port=abc) before any network: a retry
      // cannot help.
      code = absl::StatusCode::kInvalidArgument;
    }
    return absl::Status(code, absl::StrCat("connecting to ", url.Redacted(), ": ", message));
  }
  // NOTICEs (e.g. "already exists, skipping" during migrations) go to the debug log.
  PQsetNoticeProcessor(
      conn, [](void*, const char* message) { LogDebug("postgres: {}", Trimmed(message)); },
      nullptr);
  auto connection = std::unique_ptr<PgConnection>(new PgConnection(conn));
  // Every statement is written for READ COMMITTED (a write that waited for a row lock re-reads
  // the row); a role's or DSN's stricter default would fail them with serialization errors.
  JQ_RETURN_IF_ERROR(connection->ExecScript("SET default_transaction_isolation = 'read committed'",
                                            "setting the isolation level"));
  return connection;
}

PgConnection::~PgConnection() {
  if (conn_ != nullptr) PQfinish(conn_);
}

absl::StatusOr<PgResult> PgConnection::Check(PGresult* result, absl::string_view context) {
  const ExecStatusType status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return PgResult(result);
  absl::Status error = Error(result, context);
  PQclear(result);
  return error;
}

absl::Status PgConnection::Error(const PGresult* result, absl::string_view context) {
  const char* sqlstate = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  if (sqlstate != nullptr && std::strcmp(sqlstate, "25006") == 0) refused_writes_ = true;
  return StatusFromPg(conn_, result, context);
}

namespace {

// "cached plan must not change result type", told apart by SQLSTATE and the raising function
// rather than by the message, which follows the server's lc_messages.
bool IsStalePlan(const PGresult* result) {
  const char* sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const char* function = PQresultErrorField(result, PG_DIAG_SOURCE_FUNCTION);
  return sqlstate != nullptr && function != nullptr && std::strcmp(sqlstate, "0A000") == 0 &&
         std::strcmp(function, "RevalidateCachedQuery") == 0;
}

}  // namespace

absl::StatusOr<PgResult> PgConnection::Run(const PgStatement& statement, const PgParams& params) {
  bool stale_plan = false;
  absl::StatusOr<PgResult> result = RunPrepared(statement, params, &stale_plan);
  if (!stale_plan) return result;
  // DEALLOCATE is refused inside a failed transaction, so the old statements are left behind
  // and every statement is prepared again under a new name. Outside a transaction the call is
  // retried at once; inside one the caller sees the error and rolls back.
  ++plan_generation_;
  prepared_.clear();
  if (PQtransactionStatus(conn_) != PQTRANS_IDLE) {
    // Retryable like a serialization failure: the statement goes through once prepared again.
    return absl::AbortedError(
        absl::StrCat(result.status().message(), "; prepared again, retry the transaction"));
  }
  return RunPrepared(statement, params, &stale_plan);
}

absl::StatusOr<PgResult> PgConnection::RunPrepared(const PgStatement& statement,
                                                   const PgParams& params, bool* stale_plan) {
  // Later generations get short names: a suffix on the longest (62 bytes) was cut at Postgres's
  // 63 and two generations collided. Names are per connection, so a hash of the name will do.
  const std::string name =
      plan_generation_ == 0
          ? statement.name
          : absl::StrCat("jq_g", plan_generation_, "_", absl::Hash<std::string>{}(statement.name));
  if (!prepared_.contains(statement.name)) {
    PGresult* prepared = PQprepare(conn_, name.c_str(), statement.sql.c_str(), 0, nullptr);
    absl::StatusOr<PgResult> checked = Check(prepared, absl::StrCat("preparing ", statement.name));
    if (!checked.ok()) return checked.status();
    prepared_.insert(statement.name);
  }
  std::vector<const char*> values(params.size());
  for (size_t i = 0; i < params.size(); ++i) values[i] = params[i] ? params[i]->c_str() : nullptr;
  PGresult* result = PQexecPrepared(conn_, name.c_str(), static_cast<int>(values.size()),
                                    values.data(), nullptr, nullptr, 0);
  *stale_plan = IsStalePlan(result);
  return Check(result, statement.name);
}

absl::StatusOr<PgResult> PgConnection::Exec(absl::string_view sql, const PgParams& params) {
  const std::string text(sql);
  std::vector<const char*> values(params.size());
  for (size_t i = 0; i < params.size(); ++i) values[i] = params[i] ? params[i]->c_str() : nullptr;
  PGresult* result = PQexecParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr,
                                  values.data(), nullptr, nullptr, 0);
  return Check(result, "query");
}

absl::Status PgConnection::ExecScript(absl::string_view sql, absl::string_view context) {
  const std::string text(sql);
  absl::StatusOr<PgResult> result = Check(PQexec(conn_, text.c_str()), context);
  return result.status();
}

absl::Status PgConnection::RunCopyScript(
    absl::string_view script,
    absl::FunctionRef<absl::StatusOr<std::string>(int copy, absl::Span<const PgResult> rows)>
        copy_data,
    absl::string_view context, int* copies_sent) {
  *copies_sent = 0;
  const std::string text(script);
  if (PQsendQuery(conn_, text.c_str()) != 1) return StatusFromPg(conn_, nullptr, context);
  std::vector<PgResult> rows;
  // The server's error is read after the script's results are drained: a FATAL one is
  // followed by the connection closing, which decides whether the outcome is known.
  PgResult failed;
  absl::Status client_error = absl::OkStatus();
  int copies = 0;
  while (PGresult* raw = PQgetResult(conn_)) {
    PgResult result(raw);
    const ExecStatusType kind = PQresultStatus(raw);
    const bool ok_so_far = failed.raw() == nullptr && client_error.ok();
    if (kind == PGRES_TUPLES_OK) {
      rows.push_back(std::move(result));
    } else if (kind == PGRES_COPY_IN) {
      absl::StatusOr<std::string> data =
          ok_so_far ? copy_data(copies, rows) : absl::CancelledError("script already failed");
      ++copies;
      if (ok_so_far) client_error = data.status();
      bool sent = data.ok();
      constexpr size_t kChunk = size_t{1} << 20;
      for (size_t at = 0; sent && at < data->size(); at += kChunk) {
        const size_t n = std::min(kChunk, data->size() - at);
        sent = PQputCopyData(conn_, data->data() + at, static_cast<int>(n)) == 1;
      }
      // Ending with an error message aborts the COPY server-side, so nothing is half-written.
      if (PQputCopyEnd(conn_, sent ? nullptr : "client could not send the data") != 1) {
        return client_error.ok() ? Error(failed.raw(), context) : client_error;
      }
      if (sent) ++*copies_sent;
    } else if (kind != PGRES_COMMAND_OK && ok_so_far) {
      failed = std::move(result);
    }
  }
  if (!client_error.ok()) return client_error;
  if (failed.raw() != nullptr) return Error(failed.raw(), context);
  return absl::OkStatus();
}

PgPool::PgPool(Secret url, int size, absl::Duration connect_timeout, std::string application_name)
    : url_(std::move(url)),
      size_(size),
      connect_timeout_(connect_timeout),
      application_name_(std::move(application_name)) {}

PgPool::~PgPool() = default;

PgPool::Handle::~Handle() {
  if (pool_ != nullptr && conn_ != nullptr) pool_->Return(std::move(conn_));
}

namespace {

// An idle pooled connection has nothing to read unless the server ended it (a restart, an
// admin's pg_terminate_backend: a FATAL message, then EOF); anything else unasked is rare
// enough to just reconnect. Handing a dead connection out would fail the caller's statement
// with "outcome unknown" although nothing was sent.
bool IdleConnectionAlive(PgConnection& conn) {
  if (!conn.ok()) return false;
  pollfd pfd = {PQsocket(conn.raw()), POLLIN, 0};
  return ::poll(&pfd, 1, 0) == 0;
}

}  // namespace

absl::StatusOr<PgPool::Handle> PgPool::Acquire(absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  while (true) {
    std::unique_ptr<PgConnection> conn;
    {
      absl::MutexLock lock(&mu_);
      auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !idle_.empty() || open_ < size_;
      };
      if (!mu_.AwaitWithDeadline(absl::Condition(&available), deadline)) {
        return absl::UnavailableError(absl::StrCat("no free Postgres connection within ",
                                                   absl::FormatDuration(wait), " (pool size ",
                                                   size_, ")"));
      }
      if (idle_.empty()) {
        ++open_;
        break;
      }
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
    if (IdleConnectionAlive(*conn)) return Handle(this, std::move(conn));
    conn.reset();
    absl::MutexLock lock(&mu_);
    --open_;
  }
  absl::StatusOr<std::unique_ptr<PgConnection>> conn = ConnectDedicated();
  if (!conn.ok()) {
    absl::MutexLock lock(&mu_);
    --open_;
    return conn.status();
  }
  return Handle(this, *std::move(conn));
}

absl::StatusOr<std::unique_ptr<PgConnection>> PgPool::ConnectDedicated() {
  return PgConnection::Connect(url_, connect_timeout_, application_name_);
}

void PgPool::Return(std::unique_ptr<PgConnection> conn) {
  // A broken or read-only connection, or one left mid-transaction, is closed, not reused.
  if (!conn->reusable() || PQtransactionStatus(conn->raw()) != PQTRANS_IDLE) conn.reset();
  absl::MutexLock lock(&mu_);
  if (conn != nullptr) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;
  }
}

void AppendPgArrayElement(absl::string_view value, std::string* out) {
  out->push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') out->push_back('\\');
    out->push_back(c);
  }
  out->push_back('"');
}

std::string PgTextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendPgArrayElement(values[i], &out);
  }
  out.push_back('}');
  return out;
}

std::string PgInt64Array(const std::vector<int64_t>& values) {
  return absl::StrCat("{", absl::StrJoin(values, ","), "}");
}

}  // namespace jobqueue::internal
