#include "jobqueue/pg_queue.h"

#include <algorithm>
#include <deque>
#include <random>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "internal/json_escape.h"
#include "internal/log.h"
#include "jobqueue/json.h"
#include "jobqueue/status.h"
#include "pg/connection.h"
#include "pg/jsonb_text.h"
#include "pg/queue_sql.h"

namespace jobqueue {

using internal::PgConnection;
using internal::PgParams;
using internal::PgPool;
using internal::PgResult;
using internal::QueueSql;

namespace {

// One QueueSql per schema, shared by every PgQueue and by EnqueueOn.
const QueueSql& SqlFor(absl::string_view schema) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* cache = new absl::flat_hash_map<std::string, std::unique_ptr<QueueSql>>();
  absl::MutexLock lock(&mu);
  auto& slot = (*cache)[std::string(schema)];
  if (slot == nullptr) slot = std::make_unique<QueueSql>(schema);
  return *slot;
}

// Error texts are capped so a runaway handler cannot bloat rows.
constexpr size_t kMaxErrorBytes = 8192;

// Postgres refuses a text that is not valid UTF-8 (a handler quoting raw Latin-1 input, half
// a character at the cap), which would leave the failure unrecorded and the job re-running.
std::string CapError(absl::string_view error) {
  std::string message = internal::ToValidUtf8(error);
  if (message.size() > kMaxErrorBytes) {
    size_t end = kMaxErrorBytes;
    while (end > 0 && (static_cast<unsigned char>(message[end]) & 0xC0) == 0x80) --end;
    message.resize(end);
  }
  if (message.empty()) message = "failed";
  return message;
}

std::string Micros(absl::Duration d) { return absl::StrCat(absl::ToInt64Microseconds(d)); }

// An age the SQL subtracts from now(). Past about 6,700 years that is out of timestamptz's
// range (an error); every age from 4,000 years up means "nothing is that old" alike.
int64_t AgeMicros(absl::Duration age) {
  return absl::ToInt64Microseconds(std::min(age, absl::Hours(24 * 365 * 4000)));
}

constexpr absl::Duration kMaxDelay = absl::Hours(24 * 365 * 100);
// Postgres drops a connection sent a message over 1 GB (a batch's parameters or COPY data),
// which reads as an outage and fails every retry alike; batches stay well below.
constexpr size_t kMaxBatchBytes = size_t{256} << 20;
// Bigger payloads are not combined with other callers' jobs (at most 1,000 per statement).
constexpr size_t kMaxCombinedPayloadBytes = size_t{256} << 10;

absl::Status ValidateNewJob(const NewJob& job) {
  JQ_RETURN_IF_ERROR(ValidateName("job type", job.job_type));
  JQ_RETURN_IF_ERROR(ValidateName("queue", job.options.queue));
  const std::string what = absl::StrCat("job of type ", job.job_type);
  if (absl::Status s = internal::ValidateStorableJson(job.payload_json); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": payload is ", s.message()));
  }
  if (job.options.delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": delay must not be negative"));
  }
  // Postgres intervals and timestamps overflow long before absl's durations and times do.
  if (job.options.delay > kMaxDelay) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": delay must be at most 100 years, got ",
                                                   absl::FormatDuration(job.options.delay)));
  }
  if (job.options.run_at &&
      (*job.options.run_at < absl::UnixEpoch() ||
       *job.options.run_at >= absl::FromCivil(absl::CivilYear(10000), absl::UTCTimeZone()))) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": run_at must be between the years 1970 and 9999"));
  }
  if (job.options.priority < kMinPriority || job.options.priority > kMaxPriority) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": priority ", job.options.priority,
                                                   " is outside ", kMinPriority, "..",
                                                   kMaxPriority));
  }
  if (job.options.max_attempts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": max attempts must be at least 1, got ", job.options.max_attempts));
  }
  if (job.options.dedupe_key.size() > kMaxDedupeKeyLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": dedupe key longer than ", kMaxDedupeKeyLength, " bytes"));
  }
  if (job.options.dedupe_key.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": dedupe key contains a NUL byte"));
  }
  return absl::OkStatus();
}

std::optional<std::string> RunAtParam(const EnqueueOptions& options) {
  if (!options.run_at) return std::nullopt;
  return absl::StrCat(absl::ToUnixMicros(*options.run_at));
}

PgParams EnqueueOneParams(const NewJob& job) {
  const EnqueueOptions& o = job.options;
  return {o.queue,
          job.job_type,
          job.payload_json,
          absl::StrCat(o.priority),
          RunAtParam(o),
          Micros(o.delay),
          absl::StrCat(o.max_attempts),
          o.dedupe_key.empty() ? std::nullopt : std::optional<std::string>(o.dedupe_key)};
}

// `job` passed ValidateNewJob (its JSON check is the costly part for big payloads).
absl::StatusOr<EnqueueResult> EnqueueValidatedOn(PgConnection& conn, const QueueSql& sql,
                                                 const NewJob& job) {
  PgParams params = EnqueueOneParams(job);
  if (job.options.dedupe_key.empty()) {
    params.pop_back();
    JQ_ASSIGN_OR_RETURN(PgResult inserted, conn.Run(sql.enqueue_one_plain, params));
    return EnqueueResult{inserted.GetInt64(0, 0), true};
  }
  // A conflicting job can finish between the insert and the lookup; then insert again.
  for (int round = 0; round < 3; ++round) {
    JQ_ASSIGN_OR_RETURN(PgResult inserted, conn.Run(sql.enqueue_one, params));
    if (inserted.rows() == 1) return EnqueueResult{inserted.GetInt64(0, 0), true};
    JQ_ASSIGN_OR_RETURN(PgResult existing, conn.Run(sql.find_live_dedupe,
                                                    {job.options.queue, job.options.dedupe_key}));
    if (existing.rows() == 1) return EnqueueResult{existing.GetInt64(0, 0), false};
  }
  return absl::AbortedError(
      absl::StrCat("dedupe key of a ", job.job_type, " job kept changing hands; try again"));
}

std::optional<std::string> TypesParam(absl::Span<const std::string> types) {
  if (types.empty()) return std::nullopt;
  return internal::PgTextArray(std::vector<std::string>(types.begin(), types.end()));
}

absl::Status ValidateClaim(const ClaimRequest& request, int min_limit = 1) {
  if (request.worker_id.empty()) return absl::InvalidArgumentError("claim needs a worker id");
  JQ_RETURN_IF_ERROR(internal::ValidateWorkerId(request.worker_id));
  JQ_RETURN_IF_ERROR(ValidateName("queue", request.queue));
  for (const std::string& type : request.job_types)
    JQ_RETURN_IF_ERROR(ValidateName("job type", type));
  if (request.limit < min_limit || request.limit > 10000) {
    return absl::InvalidArgumentError(
        absl::StrCat("claim limit must be ", min_limit, "..10000, got ", request.limit));
  }
  return absl::OkStatus();
}

PgParams ClaimParams(const ClaimRequest& request) {
  return {request.worker_id, request.queue, TypesParam(request.job_types),
          absl::StrCat(request.limit)};
}

absl::Status ValidateResult(int64_t job_id, const std::string& result) {
  if (absl::Status s = internal::ValidateStorableJson(result); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("result of job ", job_id, " is ", s.message()));
  }
  return absl::OkStatus();
}

// Reads claimed rows starting at column `first` (see kClaimReturning), sorted in claim order.
std::vector<Lease> ParseLeases(const PgResult& result, const ClaimRequest& request, int first,
                               int row_begin, int row_end) {
  struct Sortable {
    int priority;
    int64_t run_at_us;
    Lease lease;
  };
  std::vector<Sortable> rows;
  rows.reserve(static_cast<size_t>(row_end - row_begin));
  for (int r = row_begin; r < row_end; ++r) {
    Lease lease;
    lease.job_id = result.GetInt64(r, first);
    lease.attempt = result.GetInt(r, first + 1);
    lease.job_type = std::string(result.Get(r, first + 2));
    lease.payload_json = std::string(result.Get(r, first + 3));
    lease.max_attempts = result.GetInt(r, first + 4);
    lease.claimed_at_us = result.GetInt64(r, first + 7);
    lease.worker_id = request.worker_id;
    lease.queue = request.queue;
    rows.push_back({result.GetInt(r, first + 5), result.GetInt64(r, first + 6), std::move(lease)});
  }
  std::sort(rows.begin(), rows.end(), [](const Sortable& a, const Sortable& b) {
    if (a.priority != b.priority) return a.priority < b.priority;
    if (a.run_at_us != b.run_at_us) return a.run_at_us < b.run_at_us;
    return a.lease.job_id < b.lease.job_id;
  });
  std::vector<Lease> leases;
  leases.reserve(rows.size());
  for (Sortable& row : rows) leases.push_back(std::move(row.lease));
  return leases;
}

double RandomUnit() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

absl::Status PgOptions::Validate() const {
  JQ_RETURN_IF_ERROR(internal::ValidateSchemaName(schema));
  if (pool_size < 1 || pool_size > 1000) {
    return absl::InvalidArgumentError(absl::StrCat("pool_size must be 1..1000, got ", pool_size));
  }
  if (connections_at_open < 1 || connections_at_open > pool_size) {
    return absl::InvalidArgumentError(absl::StrCat("connections_at_open must be 1..pool_size (",
                                                   pool_size, "), got ", connections_at_open));
  }
  if (max_enqueue_statements < 0 || max_enqueue_statements > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_enqueue_statements must be 0..1000, got ", max_enqueue_statements));
  }
  if (connect_timeout < absl::Seconds(1)) {
    return absl::InvalidArgumentError("connect_timeout must be at least 1s");
  }
  if (migrate_lock_timeout < absl::Milliseconds(1) || migrate_lock_timeout > absl::Hours(1)) {
    return absl::InvalidArgumentError("migrate_lock_timeout must be 1ms..1h");
  }
  if (held_batch_idle_timeout < absl::Seconds(1) || held_batch_idle_timeout > absl::Hours(1)) {
    return absl::InvalidArgumentError("held_batch_idle_timeout must be 1s..1h");
  }
  return retry.Validate();
}

// Up to max_enqueue_statements concurrent Enqueue() calls each send their own one-job
// statement. With more callers than that, they queue here and share one statement at a time:
// the first in line leads it for everyone waiting. Lone statements overlap well on the server,
// but a small statement beside a group only delays the next group: in paired runs at 8 threads
// that cost 5-8 points of pgbench's insert rate, so once groups form they go one at a time.
struct PgQueue::Combiner {
  struct Request {
    const NewJob* job;
    absl::StatusOr<EnqueueResult> result = absl::UnknownError("not enqueued");
    bool done = false;
  };
  static constexpr size_t kMaxGroup = 1000;
  absl::Mutex mu;
  size_t jobs_in_flight ABSL_GUARDED_BY(mu) = 0;
  // Jobs of the statement that finished last: more than one means callers are queueing.
  size_t last_jobs ABSL_GUARDED_BY(mu) = 1;
  std::deque<Request*> waiting ABSL_GUARDED_BY(mu);
};

PgQueue::PgQueue(PgOptions options, std::unique_ptr<PgPool> pool)
    : options_(std::move(options)),
      pool_(std::move(pool)),
      combiner_(std::make_unique<Combiner>()) {}

PgQueue::~PgQueue() = default;

absl::StatusOr<std::unique_ptr<PgQueue>> PgQueue::Open(const Secret& database_url,
                                                       const PgOptions& options) {
  JQ_RETURN_IF_ERROR(options.Validate());
  if (database_url.empty()) return absl::InvalidArgumentError("database URL is empty");
  auto pool = std::make_unique<PgPool>(database_url, options.pool_size, options.connect_timeout,
                                       options.application_name);
  {
    // Fail fast on a wrong URL or password rather than at the first job. The handles are held
    // together, so each Acquire opens a connection of its own.
    std::vector<PgPool::Handle> opened;
    for (int i = 0; i < options.connections_at_open; ++i) {
      JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool->Acquire());
      opened.push_back(std::move(conn));
    }
  }
  return std::unique_ptr<PgQueue>(new PgQueue(options, std::move(pool)));
}

std::string PgQueue::NotifyChannel() const { return SqlFor(options_.schema).channel; }

absl::StatusOr<int> PgQueue::Migrate() {
  const QueueSql& sql = SqlFor(options_.schema);
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  JQ_RETURN_IF_ERROR(conn->ExecScript("BEGIN", "migrate"));
  auto rollback_on_error = [&](absl::Status status) {
    if (!status.ok()) (void)conn->ExecScript("ROLLBACK", "migrate");
    return status;
  };
  JQ_RETURN_IF_ERROR(rollback_on_error(
      conn->Exec("SELECT pg_advisory_xact_lock(hashtext('jobqueue_migrate'), hashtext($1))",
                 {options_.schema})
          .status()));
  // Only table locks time out: a second migrator waits for the first as long as it takes.
  JQ_RETURN_IF_ERROR(rollback_on_error(conn->ExecScript(
      absl::StrCat("SET LOCAL lock_timeout = '",
                   absl::ToInt64Milliseconds(options_.migrate_lock_timeout), "ms'"),
      "migrate")));
  // Postgres checks CREATE rights before IF NOT EXISTS: a role with only the rights to use the
  // queue could not run an up-to-date migrate, which does nothing.
  absl::StatusOr<PgResult> created =
      conn->Exec("SELECT to_regclass($1) IS NOT NULL", {sql.migrations_table});
  JQ_RETURN_IF_ERROR(rollback_on_error(created.status()));
  if (created->Get(0, 0) != "t") {
    JQ_RETURN_IF_ERROR(rollback_on_error(
        conn->ExecScript(absl::StrCat("CREATE SCHEMA IF NOT EXISTS \"", options_.schema, "\";",
                                      "CREATE TABLE IF NOT EXISTS ", sql.migrations_table,
                                      " (version integer PRIMARY KEY, name text NOT NULL,"
                                      "  applied_at timestamptz NOT NULL DEFAULT now())"),
                         "migrate: creating the migrations table")));
  }
  absl::StatusOr<PgResult> applied =
      conn->Exec(absl::StrCat("SELECT version FROM ", sql.migrations_table));
  JQ_RETURN_IF_ERROR(rollback_on_error(applied.status()));
  absl::flat_hash_set<int> done;
  for (int r = 0; r < applied->rows(); ++r) done.insert(applied->GetInt(r, 0));
  int version = 0;
  for (const internal::Migration& migration : internal::QueueMigrations(options_.schema)) {
    version = std::max(version, migration.version);
    if (done.contains(migration.version)) continue;
    absl::Status applied_ok = conn->ExecScript(
        migration.sql, absl::StrCat("migration ", migration.version, " (", migration.name, ")"));
    if (absl::IsUnavailable(applied_ok) && absl::StrContains(applied_ok.message(), "[55P03]")) {
      applied_ok = absl::UnavailableError(absl::StrCat(
          applied_ok.message(), "; another transaction held ", options_.schema,
          ".job_queue longer than migrate_lock_timeout; nothing was changed, run migrate again"));
    }
    JQ_RETURN_IF_ERROR(rollback_on_error(applied_ok));
    JQ_RETURN_IF_ERROR(
        rollback_on_error(conn->Exec(absl::StrCat("INSERT INTO ", sql.migrations_table,
                                                  " (version, name) VALUES ($1, $2)"),
                                     {absl::StrCat(migration.version), migration.name})
                              .status()));
    internal::LogInfo("migrated {}.job_queue to version {} ({})", options_.schema,
                      migration.version, migration.name);
  }
  JQ_RETURN_IF_ERROR(conn->ExecScript("COMMIT", "migrate"));
  return version;
}

absl::StatusOr<EnqueueResult> PgQueue::EnqueueAlone(const NewJob& job) {
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  return EnqueueValidatedOn(*conn, SqlFor(options_.schema), job);
}

absl::StatusOr<EnqueueResult> PgQueue::Enqueue(const NewJob& job) {
  JQ_RETURN_IF_ERROR(ValidateNewJob(job));
  const int limit = std::min(options_.max_enqueue_statements, options_.pool_size);
  // A dedupe key keeps its own statement (its conflict handling is per job), as does a big
  // payload (a group of them would outgrow a message).
  if (limit <= 0 || !job.options.dedupe_key.empty() ||
      job.payload_json.size() > kMaxCombinedPayloadBytes) {
    return EnqueueAlone(job);
  }
  Combiner& c = *combiner_;
  Combiner::Request me{&job};
  std::vector<Combiner::Request*> group;
  // Whether `jobs` more may go now without waiting for the statements in flight.
  auto may_send = [&](size_t jobs) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c.mu) {
    // Each statement carries a job at least, so this also keeps statements within the limit.
    return c.jobs_in_flight == 0 ||
           (c.last_jobs == 1 && c.jobs_in_flight + jobs <= static_cast<size_t>(limit));
  };
  {
    absl::MutexLock lock(&c.mu);
    // Nobody cuts in line: while others wait, a newcomer waits too.
    if (!c.waiting.empty() || !may_send(1)) {
      c.waiting.push_back(&me);
      auto my_turn = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(c.mu) {
        return me.done || (!c.waiting.empty() && c.waiting.front() == &me &&
                           may_send(std::min(c.waiting.size(), Combiner::kMaxGroup)));
      };
      c.mu.Await(absl::Condition(&my_turn));
      if (me.done) return std::move(me.result);
      while (!c.waiting.empty() && group.size() < Combiner::kMaxGroup) {
        group.push_back(c.waiting.front());
        c.waiting.pop_front();
      }
    } else {
      group.push_back(&me);
    }
    c.jobs_in_flight += group.size();
  }
  if (group.size() == 1) {
    me.result = EnqueueAlone(job);
  } else {
    std::vector<NewJob> jobs;
    jobs.reserve(group.size());
    for (const Combiner::Request* r : group) jobs.push_back(*r->job);
    // Every caller validated its own job already.
    absl::StatusOr<std::vector<EnqueueResult>> together = EnqueueManyValidated(jobs);
    if (together.ok()) {
      for (size_t i = 0; i < group.size(); ++i) group[i]->result = (*together)[i];
    } else if (absl::IsInvalidArgument(together.status())) {
      // A job Postgres refused must not fail the others: each goes on its own.
      for (Combiner::Request* r : group) r->result = EnqueueAlone(*r->job);
    } else {
      for (Combiner::Request* r : group) r->result = together.status();
    }
  }
  absl::MutexLock lock(&c.mu);
  c.jobs_in_flight -= group.size();
  c.last_jobs = group.size();
  for (Combiner::Request* r : group) r->done = true;
  return std::move(me.result);
}

absl::StatusOr<EnqueueResult> PgQueue::EnqueueOn(PGconn* raw, const NewJob& job,
                                                 absl::string_view schema) {
  JQ_RETURN_IF_ERROR(internal::ValidateSchemaName(schema));
  if (raw == nullptr || PQstatus(raw) != CONNECTION_OK) {
    return absl::FailedPreconditionError("EnqueueOn needs an open connection");
  }
  JQ_RETURN_IF_ERROR(ValidateNewJob(job));
  const QueueSql& sql = SqlFor(schema);
  // Unprepared statements: the caller's connection is not ours to leave prepared state on.
  PgParams params = EnqueueOneParams(job);
  std::vector<const char*> values(params.size());
  for (size_t i = 0; i < params.size(); ++i) values[i] = params[i] ? params[i]->c_str() : nullptr;
  for (int round = 0; round < 3; ++round) {
    PGresult* inserted =
        PQexecParams(raw, sql.enqueue_one.sql.c_str(), static_cast<int>(values.size()), nullptr,
                     values.data(), nullptr, nullptr, 0);
    PgResult result(inserted);
    if (PQresultStatus(inserted) != PGRES_TUPLES_OK) {
      return internal::StatusFromPg(raw, inserted, "enqueue on caller's connection");
    }
    if (result.rows() == 1) return EnqueueResult{result.GetInt64(0, 0), true};
    const char* lookup[] = {job.options.queue.c_str(), job.options.dedupe_key.c_str()};
    PGresult* found = PQexecParams(raw, sql.find_live_dedupe.sql.c_str(), 2, nullptr, lookup,
                                   nullptr, nullptr, 0);
    PgResult existing(found);
    if (PQresultStatus(found) != PGRES_TUPLES_OK) {
      return internal::StatusFromPg(raw, found, "dedupe lookup on caller's connection");
    }
    if (existing.rows() == 1) return EnqueueResult{existing.GetInt64(0, 0), false};
  }
  return absl::AbortedError("dedupe key kept changing hands; try again");
}

namespace {

// Pointers to `items` sorted by job id. Statements that lock many of a worker's rows take them
// in that order, so two at once over the same rows (a heartbeat and a completion) queue
// behind each other instead of deadlocking, under Postgres's usual plan for them.
template <typename T, typename JobId>
std::vector<const T*> InJobIdOrder(absl::Span<const T> items, JobId job_id) {
  std::vector<const T*> sorted;
  sorted.reserve(items.size());
  for (const T& item : items) sorted.push_back(&item);
  std::sort(sorted.begin(), sorted.end(),
            [&](const T* a, const T* b) { return job_id(*a) < job_id(*b); });
  return sorted;
}

// Batches at least this big, with no dedupe key, delay or run-at, go by COPY.
constexpr size_t kCopyMinJobs = 32;

void PutBigEndian(uint64_t value, int bytes, std::string* out) {
  for (int shift = (bytes - 1) * 8; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((value >> shift) & 0xff));
  }
}

void PutField(absl::string_view bytes, std::string* out) {
  PutBigEndian(bytes.size(), 4, out);
  out->append(bytes.data(), bytes.size());
}

// Postgres 15 gives each row COPY buffers (up to 1,000) a slot registered with a resource owner
// whose lookups, with one key for all of them, grow with the number of slots: a COPY costs the
// square of its rows up to 1,000. Batches up to 1,500 jobs go as COPYs of at most 250 rows in
// one transaction (about 2% more jobs/s than 500 for batches of 1,000; 125 gained nothing);
// bigger ones spread the cost over more rows and go as one (the gain from pieces shrank as
// batches grew, was gone at 2,000 jobs and reversed at 5,000).
size_t CopyPieces(size_t jobs) { return jobs <= 1500 ? (jobs + 249) / 250 : 1; }

// COPY's binary format: the columns of QueueSql::copy_jobs for every job, ids[i] for jobs[i].
std::string CopyBinaryRows(absl::Span<const NewJob> jobs, absl::Span<const int64_t> ids) {
  std::string out("PGCOPY\n\377\r\n\0", 11);
  PutBigEndian(0, 4, &out);  // flags
  PutBigEndian(0, 4, &out);  // header extension length
  for (size_t i = 0; i < jobs.size(); ++i) {
    const NewJob& job = jobs[i];
    PutBigEndian(6, 2, &out);
    PutBigEndian(8, 4, &out);
    PutBigEndian(static_cast<uint64_t>(ids[i]), 8, &out);
    PutField(job.options.queue, &out);
    PutField(job.job_type, &out);
    PutBigEndian(job.payload_json.size() + 1, 4, &out);
    out.push_back('\1');  // jsonb binary format version
    out.append(job.payload_json);
    PutBigEndian(2, 4, &out);
    PutBigEndian(static_cast<uint16_t>(job.options.priority), 2, &out);
    PutBigEndian(4, 4, &out);
    PutBigEndian(static_cast<uint32_t>(job.options.max_attempts), 4, &out);
  }
  PutBigEndian(0xffff, 2, &out);  // trailer: -1
  return out;
}

bool CopyEligible(absl::Span<const NewJob> jobs) {
  if (jobs.size() < kCopyMinJobs) return false;
  for (const NewJob& job : jobs) {
    const EnqueueOptions& o = job.options;
    if (!o.dedupe_key.empty() || o.delay != absl::ZeroDuration() || o.run_at) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<EnqueueResult>> PgQueue::EnqueueManyByCopy(
    absl::Span<const NewJob> jobs) {
  const QueueSql& sql = SqlFor(options_.schema);
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  const size_t pieces = CopyPieces(jobs.size());
  std::vector<int64_t> ids;
  size_t at = 0;
  auto piece_rows = [&](int piece, absl::Span<const PgResult> rows) -> absl::StatusOr<std::string> {
    if (piece == 0) {
      if (rows.size() != 1 || rows[0].rows() != static_cast<int>(jobs.size())) {
        return absl::InternalError("id reservation came back short");
      }
      ids.reserve(jobs.size());
      for (int r = 0; r < rows[0].rows(); ++r) ids.push_back(rows[0].GetInt64(r, 0));
    }
    const size_t n = (jobs.size() - at) / (pieces - piece);
    std::string data = CopyBinaryRows(jobs.subspan(at, n), absl::MakeConstSpan(ids).subspan(at, n));
    at += n;
    return data;
  };
  int copies_sent = 0;
  absl::Status status = conn->RunCopyScript(sql.BulkEnqueueScript(jobs.size(), pieces), piece_rows,
                                            "bulk enqueue", &copies_sent);
  if (!status.ok()) {
    // A server that reports the failure has stopped the script before COMMIT, or refused the
    // COMMIT; a lost one cannot have committed before it had every COPY's data.
    if (conn->ok()) {
      if (PQtransactionStatus(conn->raw()) != PQTRANS_IDLE) {
        (void)conn->ExecScript("ROLLBACK", "roll back bulk enqueue");
      }
      return Annotate(status, "nothing was enqueued");
    }
    if (copies_sent < static_cast<int>(pieces)) return Annotate(status, "nothing was enqueued");
    return status;
  }
  std::vector<EnqueueResult> out;
  out.reserve(ids.size());
  for (int64_t id : ids) out.push_back({id, true});
  return out;
}

absl::StatusOr<std::vector<EnqueueResult>> PgQueue::EnqueueMany(absl::Span<const NewJob> jobs) {
  if (jobs.empty()) return std::vector<EnqueueResult>();
  if (jobs.size() > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch of ", jobs.size(), " jobs; at most 100000 per call"));
  }
  size_t bytes = 0;
  for (const NewJob& job : jobs) {
    bytes += job.payload_json.size() + job.job_type.size() + job.options.queue.size() +
             job.options.dedupe_key.size();
  }
  if (bytes > kMaxBatchBytes) {
    return absl::InvalidArgumentError(absl::StrCat("batch of ", bytes, " bytes; at most ",
                                                   kMaxBatchBytes >> 20,
                                                   " MiB per call (nothing was enqueued)"));
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (absl::Status s = ValidateNewJob(jobs[i]); !s.ok()) {
      return Annotate(s, absl::StrCat("job ", i, " of the batch (nothing was enqueued)"));
    }
  }
  return EnqueueManyValidated(jobs);
}

absl::StatusOr<std::vector<EnqueueResult>> PgQueue::EnqueueManyValidated(
    absl::Span<const NewJob> jobs) {
  if (CopyEligible(jobs)) return EnqueueManyByCopy(jobs);
  std::vector<std::string> queues, types, payloads, priorities, run_ats, delays, attempts, keys;
  for (auto* v : {&queues, &types, &payloads, &priorities, &run_ats, &delays, &attempts, &keys}) {
    v->reserve(jobs.size());
  }
  // A key repeated within the batch is sent once: later jobs with it share the first one's
  // result and are never inserted (they would go in as keyless jobs otherwise).
  absl::flat_hash_map<std::pair<std::string, std::string>, size_t> first_with_key;
  std::vector<std::optional<size_t>> same_as(jobs.size());
  std::vector<size_t> sent;  // input index of each row sent, in order
  sent.reserve(jobs.size());
  std::string run_at_array = "{", key_array = "{";
  for (size_t i = 0; i < jobs.size(); ++i) {
    const NewJob& job = jobs[i];
    const EnqueueOptions& o = job.options;
    if (!o.dedupe_key.empty()) {
      auto [it, fresh] = first_with_key.try_emplace({o.queue, o.dedupe_key}, i);
      if (!fresh) {
        same_as[i] = it->second;
        continue;
      }
    }
    sent.push_back(i);
    queues.push_back(o.queue);
    types.push_back(job.job_type);
    payloads.push_back(job.payload_json);
    priorities.push_back(absl::StrCat(o.priority));
    delays.push_back(Micros(o.delay));
    attempts.push_back(absl::StrCat(o.max_attempts));
    // NULL elements cannot go through PgTextArray; build these two arrays by hand.
    if (sent.size() > 1) {
      run_at_array.push_back(',');
      key_array.push_back(',');
    }
    absl::StrAppend(&run_at_array, o.run_at ? absl::StrCat(absl::ToUnixMicros(*o.run_at)) : "NULL");
    if (o.dedupe_key.empty()) {
      key_array.append("NULL");
    } else {
      internal::AppendPgArrayElement(o.dedupe_key, &key_array);
    }
  }
  run_at_array.push_back('}');
  key_array.push_back('}');
  const QueueSql& sql = SqlFor(options_.schema);
  PgParams params = {internal::PgTextArray(queues),
                     internal::PgTextArray(types),
                     internal::PgTextArray(payloads),
                     absl::StrCat("{", absl::StrJoin(priorities, ","), "}"),
                     run_at_array,
                     absl::StrCat("{", absl::StrJoin(delays, ","), "}"),
                     absl::StrCat("{", absl::StrJoin(attempts, ","), "}")};
  const bool any_key = !first_with_key.empty();
  if (any_key) params.push_back(key_array);
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  std::vector<EnqueueResult> out(jobs.size());
  // Without keys the batch is one statement, atomic by itself. With keys, rows whose
  // conflicting job committed after the statement's snapshot are retried alone: that and the
  // batch share one transaction, so an error leaves nothing written.
  if (any_key) JQ_RETURN_IF_ERROR(conn->ExecScript("BEGIN", "begin enqueue batch"));
  absl::Status status = [&]() -> absl::Status {
    JQ_ASSIGN_OR_RETURN(PgResult result,
                        conn->Run(any_key ? sql.enqueue_many : sql.enqueue_many_plain, params));
    if (result.rows() != static_cast<int>(sent.size())) {
      return absl::InternalError(absl::StrCat("enqueue_many returned ", result.rows(), " rows for ",
                                              sent.size(), " jobs"));
    }
    for (size_t row = 0; row < sent.size(); ++row) {
      const int r = static_cast<int>(row);
      const size_t i = sent[row];
      if (result.Get(r, 1) == "t") {
        out[i] = {result.GetInt64(r, 0), true};
      } else if (!result.IsNull(r, 2)) {
        out[i] = {result.GetInt64(r, 2), false};
      } else {
        JQ_ASSIGN_OR_RETURN(out[i], EnqueueValidatedOn(*conn, sql, jobs[i]));
      }
    }
    return absl::OkStatus();
  }();
  if (any_key) {
    if (!status.ok()) {
      (void)conn->ExecScript("ROLLBACK", "roll back enqueue batch");
      return Annotate(status, "nothing was enqueued");
    }
    JQ_RETURN_IF_ERROR(conn->ExecScript("COMMIT", "commit enqueue batch"));
  }
  JQ_RETURN_IF_ERROR(status);
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (same_as[i]) out[i] = {out[*same_as[i]].id, false};
  }
  return out;
}

absl::StatusOr<std::vector<Lease>> PgQueue::Claim(const ClaimRequest& request) {
  JQ_RETURN_IF_ERROR(ValidateClaim(request));
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  JQ_ASSIGN_OR_RETURN(PgResult result,
                      conn->Run(SqlFor(options_.schema).claim, ClaimParams(request)));
  return ParseLeases(result, request, 0, 0, result.rows());
}

absl::StatusOr<PgQueue::CompleteAndClaimResult> PgQueue::CompleteAndClaim(
    absl::Span<const Completion> done, const ClaimRequest& next) {
  JQ_RETURN_IF_ERROR(ValidateClaim(next, /*min_limit=*/0));
  std::vector<int64_t> ids;
  std::vector<int64_t> attempts;
  std::vector<int64_t> claimed_at;
  std::vector<std::string> results;
  ids.reserve(done.size());
  attempts.reserve(done.size());
  results.reserve(done.size());
  for (const Completion* c :
       InJobIdOrder(done, [](const Completion& c) { return c.lease.job_id; })) {
    const Completion& completion = *c;
    if (completion.lease.worker_id != next.worker_id) {
      return absl::InvalidArgumentError(
          "CompleteAndClaim: leases must belong to the claiming worker");
    }
    std::string result = completion.result_json.empty() ? "null" : completion.result_json;
    if (absl::Status s = ValidateResult(completion.lease.job_id, result); !s.ok()) return s;
    ids.push_back(completion.lease.job_id);
    attempts.push_back(completion.lease.attempt);
    claimed_at.push_back(completion.lease.claimed_at_us);
    results.push_back(std::move(result));
  }
  PgParams params = ClaimParams(next);
  params.push_back(internal::PgInt64Array(ids));
  params.push_back(internal::PgInt64Array(attempts));
  params.push_back(internal::PgTextArray(results));
  params.push_back(internal::PgInt64Array(claimed_at));
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  JQ_ASSIGN_OR_RETURN(
      PgResult result,
      conn->Run(options_.delete_completed ? SqlFor(options_.schema).complete_and_claim_delete
                                          : SqlFor(options_.schema).complete_and_claim,
                params));
  CompleteAndClaimResult out;
  int claimed_end = 0;
  while (claimed_end < result.rows() && result.Get(claimed_end, 0) == "c") ++claimed_end;
  out.claimed = ParseLeases(result, next, 1, 0, claimed_end);
  for (int r = claimed_end; r < result.rows(); ++r) {
    out.lost_job_ids.push_back(result.GetInt64(r, 1));
    if (result.Get(r, 0) == "d") out.already_completed_job_ids.push_back(result.GetInt64(r, 1));
  }
  return out;
}

struct PgQueue::HeldBatch::Conn {
  PgPool::Handle handle;
};

PgQueue::HeldBatch::HeldBatch(PgQueue* queue, std::unique_ptr<Conn> conn, std::vector<Lease> leases)
    : queue_(queue), conn_(std::move(conn)), leases_(std::move(leases)) {}

PgQueue::HeldBatch::~HeldBatch() {
  // A connection that cannot roll back is closed by the pool, which ends the transaction too.
  if (conn_ != nullptr) (void)conn_->handle->ExecScript("ROLLBACK", "roll back held batch");
}

absl::StatusOr<std::unique_ptr<PgQueue::HeldBatch>> PgQueue::ClaimHeld(
    const ClaimRequest& request) {
  JQ_RETURN_IF_ERROR(ValidateClaim(request));
  JQ_ASSIGN_OR_RETURN(PgPool::Handle handle, pool_->Acquire());
  auto conn = std::make_unique<HeldBatch::Conn>(HeldBatch::Conn{std::move(handle)});
  JQ_RETURN_IF_ERROR(conn->handle->ExecScript(
      absl::StrCat("BEGIN; SET LOCAL idle_in_transaction_session_timeout = ",
                   absl::ToInt64Milliseconds(options_.held_batch_idle_timeout)),
      "begin held batch"));
  absl::StatusOr<PgResult> result = conn->handle->Run(
      SqlFor(options_.schema).claim_held,
      {request.queue, TypesParam(request.job_types), absl::StrCat(request.limit)});
  if (!result.ok()) {
    (void)conn->handle->ExecScript("ROLLBACK", "roll back held batch");
    return result.status();
  }
  std::vector<Lease> leases = ParseLeases(*result, request, 0, 0, result->rows());
  if (leases.empty()) {
    (void)conn->handle->ExecScript("ROLLBACK", "end empty held batch");
    conn.reset();
  }
  return std::unique_ptr<HeldBatch>(new HeldBatch(this, std::move(conn), std::move(leases)));
}

absl::StatusOr<PgQueue::HeldBatch::Settled> PgQueue::HeldBatch::Settle(
    absl::Span<const Outcome> outcomes, absl::Span<const int64_t> keep) {
  Settled out;
  if (conn_ == nullptr) {
    if (leases_.empty() && outcomes.empty() && keep.empty()) return out;
    return absl::FailedPreconditionError("held batch already settled");
  }
  absl::flat_hash_map<int64_t, const Lease*> by_id;
  for (const Lease& lease : leases_) by_id.emplace(lease.job_id, &lease);
  std::vector<int64_t> ids;
  std::vector<std::string> kinds, bodies;
  std::vector<int64_t> delays;
  auto add = [&](int64_t id, absl::string_view kind, std::string body, int64_t delay_us) {
    ids.push_back(id);
    kinds.emplace_back(kind);
    bodies.push_back(std::move(body));
    delays.push_back(delay_us);
  };
  // Bad input is refused before anything is sent, leaving the batch to settle again.
  absl::flat_hash_set<int64_t> listed;
  auto check_listed = [&](int64_t id) -> absl::Status {
    if (!by_id.contains(id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("held batch: job ", id, " is not in this batch"));
    }
    if (!listed.insert(id).second) {
      return absl::InvalidArgumentError(absl::StrCat("held batch: job ", id, " is listed twice"));
    }
    return absl::OkStatus();
  };
  for (int64_t id : keep) JQ_RETURN_IF_ERROR(check_listed(id));
  for (const Outcome& outcome : outcomes) JQ_RETURN_IF_ERROR(check_listed(outcome.job_id));
  std::unique_ptr<Conn> conn = std::move(conn_);
  for (const Outcome& outcome : outcomes) {
    auto it = by_id.find(outcome.job_id);
    std::string body = outcome.text;
    bool ok = outcome.ok;
    if (ok) {
      if (body.empty()) body = "null";
      if (absl::Status valid = ValidateResult(outcome.job_id, body); !valid.ok()) {
        ok = false;
        body = std::string(valid.message());
      }
    }
    if (ok) {
      add(outcome.job_id, "c", std::move(body), 0);
    } else {
      body = CapError(body);
      const absl::Duration delay =
          queue_->options_.retry.DelayAfter(std::max(it->second->attempt, 1), RandomUnit());
      add(outcome.job_id, "f", std::move(body), absl::ToInt64Microseconds(delay));
    }
  }
  for (int64_t id : keep) add(id, "k", "", 0);
  PgConnection& c = *conn->handle;
  const internal::PgStatement& settle = queue_->options_.delete_completed
                                            ? SqlFor(queue_->options_.schema).settle_held_delete
                                            : SqlFor(queue_->options_.schema).settle_held;
  auto run = [&](const std::vector<int64_t>& run_ids, const std::vector<std::string>& run_kinds,
                 const std::vector<std::string>& run_bodies,
                 const std::vector<int64_t>& run_delays) {
    return c.Run(settle, {leases_.front().worker_id, internal::PgInt64Array(run_ids),
                          internal::PgTextArray(run_kinds), internal::PgTextArray(run_bodies),
                          internal::PgInt64Array(run_delays)});
  };
  auto collect = [&](const PgResult& result) {
    for (int r = 0; r < result.rows(); ++r) {
      const Lease& lease = *by_id.at(result.GetInt64(r, 0));
      const absl::string_view status = result.Get(r, 1);
      if (status == "completed") {
        ++out.completed;
      } else if (status == "processing") {
        Lease kept = lease;
        kept.claimed_at_us = result.GetInt64(r, 2);
        out.kept.push_back(std::move(kept));
      } else {
        FailOutcome failed;
        failed.will_retry = status == "pending";
        failed.retry_at = result.GetMicrosTime(r, 3);
        failed.attempts = result.GetInt(r, 4);
        out.failed.emplace_back(lease, failed);
      }
    }
  };
  auto rollback = [&](const absl::Status& error) {
    (void)c.ExecScript("ROLLBACK", "roll back held batch");
    return error;
  };
  if (!ids.empty()) {
    absl::StatusOr<PgResult> result = run(ids, kinds, bodies, delays);
    if (result.ok()) {
      collect(*result);
    } else if (!absl::IsInvalidArgument(result.status())) {
      return rollback(result.status());
    } else {
      // A value Postgres refuses (one no client-side check caught) must fail its own job:
      // rolled back for good, the batch would be claimed and run again with no attempt counted,
      // forever. So the rows still pending are locked again and settled one by one under
      // savepoints, the refused result recorded as a failure. Rare: the fast path above takes
      // no savepoint (a row locked by the transaction and updated in a subtransaction costs a
      // multixact).
      const absl::Status refused = result.status();
      absl::Status restarted = c.ExecScript("ROLLBACK", "roll back held batch");
      if (restarted.ok()) restarted = c.ExecScript("BEGIN", "held batch, row by row");
      if (!restarted.ok()) {
        return Annotate(restarted,
                        absl::StrCat("after the settle was refused (", refused.message(), ")"));
      }
      absl::StatusOr<PgResult> relocked =
          c.Run(SqlFor(queue_->options_.schema).relock_held, {internal::PgInt64Array(ids)});
      if (!relocked.ok()) return rollback(relocked.status());
      absl::flat_hash_set<int64_t> still_ours;
      for (int r = 0; r < relocked->rows(); ++r) {
        // Another worker that claimed and failed a job meanwhile left it pending one attempt on:
        // settled here, it would be written under an attempt our lease does not name.
        const int64_t id = relocked->GetInt64(r, 0);
        if (relocked->GetInt(r, 1) == by_id.at(id)->attempt - 1) still_ours.insert(id);
      }
      for (size_t i = 0; i < ids.size(); ++i) {
        if (!still_ours.contains(ids[i])) {  // another worker's meanwhile
          out.untouched.push_back(ids[i]);
          continue;
        }
        if (absl::Status s = c.ExecScript("SAVEPOINT settle_one", "held batch"); !s.ok()) {
          return rollback(s);
        }
        absl::StatusOr<PgResult> one = run({ids[i]}, {kinds[i]}, {bodies[i]}, {delays[i]});
        // A refused result fails the job; a refused error text is recorded without the text.
        if (absl::IsInvalidArgument(one.status()) && (kinds[i] == "c" || kinds[i] == "f")) {
          if (absl::Status s = c.ExecScript("ROLLBACK TO SAVEPOINT settle_one", "held batch");
              !s.ok()) {
            return rollback(s);
          }
          const Lease& lease = *by_id.at(ids[i]);
          const int64_t delay_us =
              kinds[i] == "f" ? delays[i]
                              : absl::ToInt64Microseconds(queue_->options_.retry.DelayAfter(
                                    std::max(lease.attempt, 1), RandomUnit()));
          one = run({ids[i]}, {std::string("f")},
                    {kinds[i] == "f" ? std::string(kErrorTextRefused)
                                     : CapError(absl::StrCat("result refused by Postgres: ",
                                                             one.status().message()))},
                    {delay_us});
        }
        if (!one.ok()) return rollback(one.status());
        collect(*one);
      }
    }
  }
  JQ_RETURN_IF_ERROR(c.ExecScript("COMMIT", "commit held batch"));
  return out;
}

namespace {

// Explains why a fenced statement matched no row: the job is gone, or the lease was lost.
absl::Status LeaseLost(PgConnection& conn, const QueueSql& sql, const Lease& lease,
                       absl::string_view action) {
  JQ_ASSIGN_OR_RETURN(PgResult state, conn.Run(sql.lease_state, {absl::StrCat(lease.job_id)}));
  if (state.rows() == 0) {
    return absl::NotFoundError(absl::StrCat(action, ": job ", lease.job_id, " does not exist"));
  }
  return LeaseLostError(absl::StrCat(
      action, ": lease lost on job ", lease.job_id, " (held attempt ", lease.attempt, " as ",
      lease.worker_id, "; the job is now ", state.Get(0, 0), ", attempt ", state.Get(0, 1),
      state.Get(0, 2).empty() ? "" : absl::StrCat(", owner ", state.Get(0, 2)), ")"));
}

// An error of a statement about one job, naming the job: "complete job 42: ...".
template <typename T>
absl::StatusOr<T> ForJob(absl::StatusOr<T> result, absl::string_view action, int64_t job_id) {
  if (result.ok()) return result;
  return Annotate(result.status(), absl::StrCat(action, " job ", job_id));
}

PgParams FenceParams(const Lease& lease) {
  return {absl::StrCat(lease.job_id), absl::StrCat(lease.attempt), lease.worker_id};
}

std::string ClaimedAt(const Lease& lease) { return absl::StrCat(lease.claimed_at_us); }

}  // namespace

absl::Status PgQueue::Heartbeat(const Lease& lease) {
  JQ_ASSIGN_OR_RETURN(std::vector<int64_t> lost, HeartbeatMany(absl::MakeConstSpan(&lease, 1)));
  if (lost.empty()) return absl::OkStatus();
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  return LeaseLost(*conn, SqlFor(options_.schema), lease, "heartbeat");
}

absl::StatusOr<std::vector<int64_t>> PgQueue::HeartbeatMany(absl::Span<const Lease> leases) {
  return UpdateLeases(leases, "HeartbeatMany", SqlFor(options_.schema).heartbeat_many);
}

absl::StatusOr<std::vector<int64_t>> PgQueue::UpdateLeases(absl::Span<const Lease> leases,
                                                           absl::string_view what,
                                                           const internal::PgStatement& statement) {
  if (leases.empty()) return std::vector<int64_t>();
  for (const Lease& lease : leases) {
    if (lease.worker_id != leases[0].worker_id) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": all leases must belong to one worker"));
    }
  }
  std::vector<int64_t> ids, attempts, claimed_at;
  for (const Lease* lease : InJobIdOrder(leases, [](const Lease& l) { return l.job_id; })) {
    ids.push_back(lease->job_id);
    attempts.push_back(lease->attempt);
    claimed_at.push_back(lease->claimed_at_us);
  }
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  JQ_ASSIGN_OR_RETURN(
      PgResult result,
      conn->Run(statement, {leases[0].worker_id, internal::PgInt64Array(ids),
                            internal::PgInt64Array(attempts), internal::PgInt64Array(claimed_at)}));
  absl::flat_hash_set<int64_t> written;
  for (int r = 0; r < result.rows(); ++r) written.insert(result.GetInt64(r, 0));
  std::vector<int64_t> lost;
  for (int64_t id : ids) {
    if (!written.contains(id)) lost.push_back(id);
  }
  return lost;
}

absl::Status PgQueue::Complete(const Lease& lease, absl::string_view result_json) {
  const std::string result(result_json.empty() ? "null" : result_json);
  JQ_RETURN_IF_ERROR(ValidateResult(lease.job_id, result));
  const QueueSql& sql = SqlFor(options_.schema);
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, ForJob(pool_->Acquire(), "complete", lease.job_id));
  PgParams params = FenceParams(lease);
  if (!options_.delete_completed) params.push_back(result);
  params.push_back(ClaimedAt(lease));
  JQ_ASSIGN_OR_RETURN(
      PgResult done,
      ForJob(conn->Run(options_.delete_completed ? sql.complete_delete : sql.complete, params),
             "complete", lease.job_id));
  if (done.rows() == 1) return absl::OkStatus();
  return LeaseLost(*conn, sql, lease, "complete");
}

absl::StatusOr<FailOutcome> PgQueue::Fail(const Lease& lease, absl::string_view error,
                                          std::optional<absl::Duration> retry_delay) {
  const absl::Duration delay =
      retry_delay ? std::clamp(*retry_delay, absl::ZeroDuration(), kMaxRetryDelay)
                  : options_.retry.DelayAfter(std::max(lease.attempt, 1), RandomUnit());
  std::string message = CapError(error);
  const QueueSql& sql = SqlFor(options_.schema);
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, ForJob(pool_->Acquire(), "fail", lease.job_id));
  PgParams params = FenceParams(lease);
  const size_t message_param = params.size();
  params.push_back(message);
  params.push_back(Micros(delay));
  params.push_back(ClaimedAt(lease));
  absl::StatusOr<PgResult> written = conn->Run(sql.fail, params);
  if (absl::IsInvalidArgument(written.status())) {
    // The error text itself refused (an operator's check on last_error, say): the failure
    // still counts, recorded without it, or the job would stay processing for good.
    params[message_param] = kErrorTextRefused;
    written = conn->Run(sql.fail, params);
  }
  JQ_ASSIGN_OR_RETURN(PgResult result, ForJob(std::move(written), "fail", lease.job_id));
  if (result.rows() == 0) return LeaseLost(*conn, sql, lease, "fail");
  FailOutcome outcome;
  outcome.will_retry = result.Get(0, 0) == "pending";
  outcome.retry_at = result.GetMicrosTime(0, 1);
  outcome.attempts = result.GetInt(0, 2);
  return outcome;
}

absl::Status PgQueue::Release(const Lease& lease) {
  JQ_ASSIGN_OR_RETURN(std::vector<int64_t> lost,
                      ForJob(ReleaseMany(absl::MakeConstSpan(&lease, 1)), "release", lease.job_id));
  if (lost.empty()) return absl::OkStatus();
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, ForJob(pool_->Acquire(), "release", lease.job_id));
  return LeaseLost(*conn, SqlFor(options_.schema), lease, "release");
}

absl::StatusOr<std::vector<int64_t>> PgQueue::ReleaseMany(absl::Span<const Lease> leases) {
  return UpdateLeases(leases, "ReleaseMany", SqlFor(options_.schema).release_many);
}

absl::StatusOr<int64_t> PgQueue::ReleaseOrphans(absl::string_view worker_id,
                                                absl::Span<const Lease> held) {
  if (worker_id.empty()) return absl::InvalidArgumentError("release orphans: worker id is empty");
  std::vector<int64_t> ids, attempts, claimed_at;
  for (const Lease& lease : held) {
    ids.push_back(lease.job_id);
    attempts.push_back(lease.attempt);
    claimed_at.push_back(lease.claimed_at_us);
  }
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  JQ_ASSIGN_OR_RETURN(
      PgResult result,
      conn->Run(SqlFor(options_.schema).release_orphans,
                {std::string(worker_id), internal::PgInt64Array(ids),
                 internal::PgInt64Array(attempts), internal::PgInt64Array(claimed_at)}));
  return result.rows();
}

absl::Status PgQueue::Cancel(int64_t job_id) {
  const QueueSql& sql = SqlFor(options_.schema);
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, ForJob(pool_->Acquire(), "cancel", job_id));
  JQ_ASSIGN_OR_RETURN(PgResult result,
                      ForJob(conn->Run(sql.cancel, {absl::StrCat(job_id)}), "cancel", job_id));
  if (result.rows() == 1) return absl::OkStatus();
  JQ_ASSIGN_OR_RETURN(PgResult state, conn->Run(sql.lease_state, {absl::StrCat(job_id)}));
  if (state.rows() == 0)
    return absl::NotFoundError(absl::StrCat("job ", job_id, " does not exist"));
  return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " is ", state.Get(0, 0),
                                                    "; only pending jobs can be cancelled"));
}

absl::StatusOr<int> PgQueue::SchemaVersion() {
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  JQ_ASSIGN_OR_RETURN(PgResult r,
                      conn->Exec(absl::StrCat("SELECT coalesce(max(version), 0) FROM ",
                                              SqlFor(options_.schema).migrations_table)));
  return r.GetInt(0, 0);
}

absl::StatusOr<Job> PgQueue::Get(int64_t job_id) {
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, ForJob(pool_->Acquire(), "get", job_id));
  JQ_ASSIGN_OR_RETURN(
      PgResult r,
      ForJob(conn->Run(SqlFor(options_.schema).get, {absl::StrCat(job_id)}), "get", job_id));
  if (r.rows() == 0) return absl::NotFoundError(absl::StrCat("job ", job_id, " does not exist"));
  Job job;
  job.id = r.GetInt64(0, 0);
  job.queue = std::string(r.Get(0, 1));
  job.job_type = std::string(r.Get(0, 2));
  job.payload_json = std::string(r.Get(0, 3));
  JQ_ASSIGN_OR_RETURN(job.status, ParseJobStatus(r.Get(0, 4)));
  job.priority = r.GetInt(0, 5);
  job.run_at = r.GetMicrosTime(0, 6);
  job.attempts = r.GetInt(0, 7);
  job.max_attempts = r.GetInt(0, 8);
  job.locked_by = std::string(r.Get(0, 9));
  job.locked_at = r.GetOptionalMicrosTime(0, 10);
  job.heartbeat_at = r.GetOptionalMicrosTime(0, 11);
  job.last_error = std::string(r.Get(0, 12));
  if (!r.IsNull(0, 13)) job.result_json = std::string(r.Get(0, 13));
  job.dedupe_key = std::string(r.Get(0, 14));
  job.created_at = r.GetMicrosTime(0, 15);
  job.updated_at = r.GetMicrosTime(0, 16);
  job.finished_at = r.GetOptionalMicrosTime(0, 17);
  return job;
}

std::string StatusCountsToJson(absl::Span<const StatusCount> counts) {
  std::string out = "[";
  for (const StatusCount& c : counts) {
    if (out.size() > 1) out += ',';
    absl::StrAppend(
        &out, "{\"queue\":", JsonQuote(c.queue), ",\"job_type\":", JsonQuote(c.job_type),
        ",\"status\":", JsonQuote(JobStatusName(c.status)), ",\"count\":", c.count, "}");
  }
  return out + "]";
}

absl::StatusOr<std::vector<StatusCount>> PgQueue::Counts() {
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  JQ_ASSIGN_OR_RETURN(PgResult r, conn->Run(SqlFor(options_.schema).counts, {}));
  std::vector<StatusCount> counts;
  for (int i = 0; i < r.rows(); ++i) {
    StatusCount count;
    count.queue = std::string(r.Get(i, 0));
    count.job_type = std::string(r.Get(i, 1));
    JQ_ASSIGN_OR_RETURN(count.status, ParseJobStatus(r.Get(i, 2)));
    count.count = r.GetInt64(i, 3);
    counts.push_back(std::move(count));
  }
  return counts;
}

absl::StatusOr<std::vector<StaleJob>> PgQueue::ListStale(absl::Duration older_than) {
  if (older_than < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("stale age must not be negative");
  }
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  JQ_ASSIGN_OR_RETURN(PgResult r, conn->Run(SqlFor(options_.schema).list_stale,
                                            {absl::StrCat(AgeMicros(older_than))}));
  std::vector<StaleJob> jobs;
  for (int i = 0; i < r.rows(); ++i) {
    StaleJob job;
    job.id = r.GetInt64(i, 0);
    job.queue = std::string(r.Get(i, 1));
    job.job_type = std::string(r.Get(i, 2));
    job.locked_by = std::string(r.Get(i, 3));
    job.attempts = r.GetInt(i, 4);
    job.max_attempts = r.GetInt(i, 5);
    job.heartbeat_age = absl::Microseconds(r.GetInt64(i, 6));
    jobs.push_back(std::move(job));
  }
  return jobs;
}

absl::StatusOr<RecoverResult> PgQueue::RecoverStale(const RecoverOptions& options) {
  if (options.stale_after < absl::ZeroDuration() || options.batch_size < 1 ||
      options.max_batches < 1) {
    return absl::InvalidArgumentError(
        "recover: stale_after must be >= 0, batch_size and max_batches >= 1");
  }
  std::vector<std::string> types;
  std::vector<int64_t> stale_us;
  absl::flat_hash_set<std::string> seen;
  for (const auto& [type, after] : options.stale_after_by_type) {
    JQ_RETURN_IF_ERROR(ValidateName("job type", type));
    if (!seen.insert(type).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("recover: job type ", type, " has a stale timeout twice"));
    }
    if (after < absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("recover: stale timeout of ", type, " is negative"));
    }
    types.push_back(type);
    stale_us.push_back(AgeMicros(after));
  }
  const QueueSql& sql = SqlFor(options_.schema);
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  RecoverResult out;
  // One transaction per batch: recovered jobs are claimable at once, not after the whole
  // sweep, and a sweep is bounded by max_batches. Each batch takes the sweep lock again, so
  // another reaper may act between two batches; SKIP LOCKED keeps them off each other's rows.
  for (int batches = 0; batches < options.max_batches; ++batches) {
    const size_t before = out.jobs.size();
    int rows = 0;
    absl::Status status = conn->ExecScript("BEGIN", "recover");
    if (status.ok())
      status = [&]() -> absl::Status {
        JQ_ASSIGN_OR_RETURN(PgResult lock, conn->Run(sql.try_sweep_lock, {"jobqueue_reaper"}));
        if (lock.Get(0, 0) != "t") return absl::OkStatus();
        out.acted = true;
        JQ_ASSIGN_OR_RETURN(PgResult batch, conn->Run(sql.recover_batch,
                                                      {internal::PgTextArray(types),
                                                       internal::PgInt64Array(stale_us),
                                                       absl::StrCat(AgeMicros(options.stale_after)),
                                                       absl::StrCat(options.batch_size)}));
        absl::flat_hash_set<std::string> queues_to_wake;
        for (int r = 0; r < batch.rows(); ++r) {
          RecoveredJob job;
          job.id = batch.GetInt64(r, 0);
          job.job_type = std::string(batch.Get(r, 1));
          JQ_ASSIGN_OR_RETURN(job.new_status, ParseJobStatus(batch.Get(r, 2)));
          job.previous_owner = std::string(batch.Get(r, 3));
          if (job.new_status == JobStatus::kPending)
            queues_to_wake.insert(std::string(batch.Get(r, 4)));
          out.jobs.push_back(std::move(job));
        }
        rows = batch.rows();
        for (const std::string& queue : queues_to_wake) {
          JQ_RETURN_IF_ERROR(conn->Run(sql.notify_if_waiting, {queue}).status());
        }
        return absl::OkStatus();
      }();
    if (status.ok()) status = conn->ExecScript("COMMIT", "recover");
    if (!status.ok()) {
      if (PQtransactionStatus(conn->raw()) != PQTRANS_IDLE) {
        (void)conn->ExecScript("ROLLBACK", "recover");
      }
      // Earlier batches committed (and were logged): say so, or a caller counting would
      // miss them.
      if (before == 0) return status;
      return Annotate(status,
                      absl::StrCat("recovered ", before, " stale job(s) in earlier batches, then"));
    }
    for (size_t i = before; i < out.jobs.size(); ++i) {
      const RecoveredJob& job = out.jobs[i];
      internal::LogWarn("recovered stale job {} ({}) from {}: now {}", job.id, job.job_type,
                        job.previous_owner.empty() ? "?" : job.previous_owner,
                        JobStatusName(job.new_status));
    }
    if (rows < options.batch_size) break;
  }
  return out;
}

absl::StatusOr<int64_t> PgQueue::Purge(const PurgeOptions& options, bool* more) {
  if (more != nullptr) *more = false;
  if (options.batch_size < 1 || options.max_batches < 1) {
    return absl::InvalidArgumentError("purge: batch_size and max_batches must be >= 1");
  }
  if (options.completed_older_than < absl::ZeroDuration() ||
      options.failed_older_than < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("purge: ages must not be negative");
  }
  const QueueSql& sql = SqlFor(options_.schema);
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  int64_t deleted = 0;
  int batches = 0;
  const std::pair<const char*, absl::Duration> groups[] = {
      {"{completed,cancelled}", options.completed_older_than},
      {"{failed}", options.failed_older_than}};
  // The groups take turns, so a backlog of completed jobs cannot use up every batch and keep
  // failed ones forever.
  bool done[2] = {false, false};
  while (batches < options.max_batches && !(done[0] && done[1])) {
    for (int g = 0; g < 2 && batches < options.max_batches; ++g) {
      if (done[g]) continue;
      absl::StatusOr<PgResult> r =
          conn->Run(sql.purge_batch, {groups[g].first, absl::StrCat(AgeMicros(groups[g].second)),
                                      absl::StrCat(options.batch_size)});
      if (!r.ok()) {
        if (deleted == 0) return r.status();
        return Annotate(r.status(), absl::StrCat("deleted ", deleted,
                                                 " finished job(s) in earlier batches, then"));
      }
      ++batches;
      int64_t n = 0;
      (void)absl::SimpleAtoi(PQcmdTuples(r->raw()), &n);
      deleted += n;
      if (n < options.batch_size) done[g] = true;
    }
  }
  if (more != nullptr) *more = !(done[0] && done[1]);
  return deleted;
}

absl::StatusOr<int64_t> PgQueue::RetryFailed(absl::string_view job_type) {
  if (!job_type.empty()) JQ_RETURN_IF_ERROR(ValidateName("job type", job_type));
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  // A twin enqueued after the statement's snapshot still breaks the unique index; a new
  // snapshot sees it and leaves that job failed.
  absl::StatusOr<PgResult> r;
  for (int round = 0; round < 3; ++round) {
    r = conn->Run(SqlFor(options_.schema).retry_failed, {std::string(job_type)});
    if (!absl::IsAlreadyExists(r.status())) break;
  }
  JQ_RETURN_IF_ERROR(r.status());
  return r->GetInt64(0, 0);
}

absl::Status PgQueue::SetWaiting(absl::string_view worker_id, absl::string_view queue, bool waiting,
                                 int listener_pid) {
  JQ_RETURN_IF_ERROR(ValidateName("queue", queue));
  if (listener_pid < 0) return absl::InvalidArgumentError("listener pid must not be negative");
  const QueueSql& sql = SqlFor(options_.schema);
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  if (waiting) {
    return conn
        ->Run(sql.add_waiter,
              {std::string(worker_id), std::string(queue),
               listener_pid == 0 ? std::nullopt
                                 : std::optional<std::string>(absl::StrCat(listener_pid))})
        .status();
  }
  return conn->Run(sql.remove_waiter, {std::string(worker_id)}).status();
}

absl::StatusOr<std::optional<absl::Time>> PgQueue::NextRunAt(
    absl::string_view queue, absl::Span<const std::string> job_types) {
  JQ_ASSIGN_OR_RETURN(PgPool::Handle conn, pool_->Acquire());
  JQ_ASSIGN_OR_RETURN(PgResult r, conn->Run(SqlFor(options_.schema).next_run_at,
                                            {std::string(queue), TypesParam(job_types)}));
  return r.GetOptionalMicrosTime(0, 0);
}

}  // namespace jobqueue
