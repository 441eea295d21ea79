// The durable Postgres queue: <schema>.job_queue (default ops.job_queue).
//
// States: pending -> processing -> completed | failed, or back to pending for a retry or after
// stale-lock recovery; pending -> cancelled. Claims use FOR UPDATE SKIP LOCKED ordered by
// priority, run_at, id. Complete, fail and heartbeat are fenced by the lease (see job.h).
// Inserts wake idle workers with one pg_notify per statement (see docs/postgres.md).
#ifndef JOBQUEUE_PG_QUEUE_H_
#define JOBQUEUE_PG_QUEUE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "jobqueue/job.h"
#include "jobqueue/retry.h"
#include "jobqueue/secret.h"

// libpq's connection type, for transactional enqueue on a caller's connection.
typedef struct pg_conn PGconn;

namespace jobqueue {

namespace internal {
class PgPool;
struct PgStatement;
}  // namespace internal

struct PgOptions {
  // Schema holding job_queue; [a-z_][a-z0-9_]*, at most 40 bytes (the names derived from it
  // must fit Postgres's 63). Default "ops".
  std::string schema = "ops";
  // Connections kept open. Default 4.
  int pool_size = 4;
  // Connections Open() makes before it returns (it fails when one cannot be made), 1..pool_size;
  // the rest open on first need. A service that calls from N threads at once can open N here,
  // so its first calls pay no connection set-up (TCP, authentication, a server backend's
  // start: milliseconds each). Default 1.
  int connections_at_open = 1;
  // Per connection attempt, host name lookup included. Default 10 s.
  absl::Duration connect_timeout = absl::Seconds(10);
  // Shown in pg_stat_activity. Default "jobqueue".
  std::string application_name = "jobqueue";
  // Concurrent Enqueue() calls that each send their own statement. With more callers than
  // that, they wait and go together, one shared statement at a time (one commit for all; each
  // call still returns once its own job is committed), so many threads enqueueing one job each
  // pay far fewer round trips and commits. 0 turns this off; at most pool_size take effect.
  // Default 2.
  int max_enqueue_statements = 2;
  // How long Migrate() waits for a lock on the table before giving up with Unavailable
  // (nothing changed; run it again). A waiting ALTER TABLE holds up every statement queued
  // behind it, so this is short. Default 5 s.
  absl::Duration migrate_lock_timeout = absl::Seconds(5);
  // Backoff between attempts of a failed job. See retry.h.
  RetryPolicy retry;
  // Short-job mode: the server ends a held batch's session after this long without a
  // statement (idle_in_transaction_session_timeout), so the batch of a worker whose host or
  // network went away, which closes no socket, is pending again then rather than when TCP
  // gives up (hours). Above the worker's budget (at most 10 s); 1s..1h. Default 60 s.
  absl::Duration held_batch_idle_timeout = absl::Seconds(60);
  // Completions delete the job's row instead of marking it `completed` (as graphile-worker
  // does, or BullMQ's removeOnComplete): no new row version and no index entries to write per
  // completed job, but no result, `completed` count or Get() afterwards. Failed and cancelled
  // jobs stay until retention. Default false.
  bool delete_completed = false;

  absl::Status Validate() const;
};

struct ClaimRequest {
  // Written to locked_by; part of the lease. Required: 1-256 bytes of UTF-8 without NUL.
  std::string worker_id;
  std::string queue = "default";
  // Job types to claim; empty means any type in the queue.
  std::vector<std::string> job_types;
  // At most this many jobs. 1..10000, default 1.
  int limit = 1;
};

// last_error of a failure whose own error text Postgres refused (an operator's CHECK on
// last_error, say): the failure is recorded with this text instead.
inline constexpr char kErrorTextRefused[] = "error text refused by Postgres";

// What became of a failed attempt.
struct FailOutcome {
  bool will_retry = false;  // back to pending
  absl::Time retry_at;      // when will_retry
  int attempts = 0;         // attempts made so far
};

struct StatusCount {
  std::string queue;
  std::string job_type;
  JobStatus status = JobStatus::kPending;
  int64_t count = 0;
};

// Counts as a JSON array of {"queue", "job_type", "status", "count"} objects.
std::string StatusCountsToJson(absl::Span<const StatusCount> counts);

// OK when the job table can store `json` as a payload or result: valid JSON of at most
// kMaxPayloadBytes that jsonb accepts (it refuses the escape \u0000, which JSON allows, and
// numbers past numeric's 131072 digits before the point or 16383 after). The queue and the
// worker check this themselves; for callers that must know before a batch.
absl::Status ValidateStorableJson(absl::string_view json);

// A processing job whose heartbeat is old.
struct StaleJob {
  int64_t id = 0;
  std::string queue;
  std::string job_type;
  std::string locked_by;
  int attempts = 0;
  int max_attempts = 0;
  absl::Duration heartbeat_age;  // since the heartbeat, else the claim, else the last update
};

// One job returned by the reaper.
struct RecoveredJob {
  int64_t id = 0;
  std::string job_type;
  std::string previous_owner;
  JobStatus new_status = JobStatus::kPending;  // pending, or failed when attempts are spent
};

struct RecoverOptions {
  // Processing jobs without a heartbeat for this long are stale. Default 30 min (seed 004).
  absl::Duration stale_after = absl::Minutes(30);
  // Per job type overrides of stale_after; a type listed twice is InvalidArgument.
  std::vector<std::pair<std::string, absl::Duration>> stale_after_by_type;
  // Rows per batch; each batch is its own transaction. Default 500.
  int batch_size = 500;
  // Upper bound of batches per sweep; the rest waits for the next sweep. Default 20.
  int max_batches = 20;
};

struct RecoverResult {
  // False when another process held the sweep lock; nothing was done.
  bool acted = false;
  std::vector<RecoveredJob> jobs;
};

struct PurgeOptions {
  // Completed and cancelled jobs finished longer ago than this are deleted. Default 7 days.
  absl::Duration completed_older_than = absl::Hours(24 * 7);
  // Failed jobs finished longer ago than this are deleted. Default 30 days.
  absl::Duration failed_older_than = absl::Hours(24 * 30);
  // Rows per DELETE. Default 1000.
  int batch_size = 1000;
  // Upper bound of DELETE statements per call. Default 100.
  int max_batches = 100;
};

class PgQueue {
 public:
  // Connects the pool. Does not create the schema: call Migrate() (or `jobqueue migrate`).
  static absl::StatusOr<std::unique_ptr<PgQueue>> Open(const Secret& database_url,
                                                       const PgOptions& options = {});
  ~PgQueue();
  PgQueue(const PgQueue&) = delete;
  PgQueue& operator=(const PgQueue&) = delete;

  // Applies the numbered migrations not yet applied, under an advisory lock, so concurrent
  // migrators are safe. Returns the schema version now in place.
  absl::StatusOr<int> Migrate();

  // One job; one round trip.
  absl::StatusOr<EnqueueResult> Enqueue(const NewJob& job);
  // Many jobs in one transaction and one notification: one statement in one round trip (with
  // dedupe keys, inside a BEGIN ... COMMIT), or for 32+ jobs without dedupe keys, delays or
  // run-at, ids reserved then a binary COPY (a few round trips, far less server time). All are
  // validated first: one bad job rejects the batch and nothing is written. Results are in input
  // order; a dedupe key repeated in the batch is one job.
  absl::StatusOr<std::vector<EnqueueResult>> EnqueueMany(absl::Span<const NewJob> jobs);
  // Enqueues inside the caller's open transaction on `conn` (the caller's BEGIN ... COMMIT):
  // the job exists iff the caller commits. The notification is sent at that commit.
  static absl::StatusOr<EnqueueResult> EnqueueOn(PGconn* conn, const NewJob& job,
                                                 absl::string_view schema = "ops");

  // Claims up to request.limit due pending jobs, oldest first within priority.
  absl::StatusOr<std::vector<Lease>> Claim(const ClaimRequest& request);
  // Completes `done` (fenced, with their results) and claims the next batch in one round trip.
  // Completions not written (lease no longer held, like Complete()'s kLeaseLostCode) are
  // reported in `lost_job_ids`. `next.limit` may be 0 to only complete.
  struct CompleteAndClaimResult {
    std::vector<Lease> claimed;
    std::vector<int64_t> lost_job_ids;
    // Those of lost_job_ids that the same lease had already completed: sent again after a lost
    // reply, say. The job is done; only this write was refused.
    std::vector<int64_t> already_completed_job_ids;
  };
  struct Completion {
    Lease lease;
    std::string result_json = "null";
  };
  absl::StatusOr<CompleteAndClaimResult> CompleteAndClaim(absl::Span<const Completion> done,
                                                          const ClaimRequest& next);

  // Short-job mode (WorkerOptions::transaction_budget). The claimed jobs stay 'pending' rows
  // locked by a transaction left open on a pooled connection until Settle(), so a job that
  // finishes in time costs one row write instead of two (claim, then finish). Its leases have
  // claimed_at_us 0 and are not valid for Complete/Fail/Heartbeat/Release; Settle() turns the
  // ones still running into ordinary leases. Dropped unsettled (or a crash): rolled back, the
  // jobs are pending again with no attempt counted.
  class HeldBatch {
   public:
    ~HeldBatch();
    HeldBatch(const HeldBatch&) = delete;
    HeldBatch& operator=(const HeldBatch&) = delete;

    const std::vector<Lease>& leases() const { return leases_; }

    struct Outcome {
      int64_t job_id = 0;
      bool ok = true;
      // The result JSON when ok (an invalid one fails the job instead), else the error.
      std::string text;
    };
    struct Settled {
      // Leases of the `keep` jobs, now 'processing' under this worker with a claim time.
      std::vector<Lease> kept;
      int64_t completed = 0;
      std::vector<std::pair<Lease, FailOutcome>> failed;
      // Listed jobs nothing was written for: a refused value made the settle go row by row,
      // and meanwhile another transaction took these rows. No longer this batch's.
      std::vector<int64_t> untouched;
    };
    // Writes the outcomes, turns `keep` into processing leases and commits. Jobs of the batch
    // in neither stay pending, untouched. Once only; the connection goes back to the pool. A
    // job not in the batch or listed twice is InvalidArgument, with nothing sent: the batch is
    // still held and can be settled again.
    absl::StatusOr<Settled> Settle(absl::Span<const Outcome> outcomes,
                                   absl::Span<const int64_t> keep);

   private:
    friend class PgQueue;
    struct Conn;
    HeldBatch(PgQueue* queue, std::unique_ptr<Conn> conn, std::vector<Lease> leases);
    PgQueue* queue_;
    std::unique_ptr<Conn> conn_;
    std::vector<Lease> leases_;
  };
  // Claims up to request.limit jobs into a held batch (empty when none are due).
  absl::StatusOr<std::unique_ptr<HeldBatch>> ClaimHeld(const ClaimRequest& request);

  // Extends the lease (heartbeat_at = now). kLeaseLostCode when the lease is no longer held.
  // Never waits for a row lock: a lease whose row another transaction holds locked (its
  // completion in flight, say) is left as it is and not reported lost.
  absl::Status Heartbeat(const Lease& lease);
  // Heartbeats many leases at once, as Heartbeat; returns the job ids whose leases were lost.
  absl::StatusOr<std::vector<int64_t>> HeartbeatMany(absl::Span<const Lease> leases);
  // Marks the job completed with a JSON result. kLeaseLostCode when the lease is lost.
  absl::Status Complete(const Lease& lease, absl::string_view result_json = "null");
  // Records the error; back to pending after the retry policy's backoff, or failed when the
  // attempts are spent. `retry_delay` overrides the policy. kLeaseLostCode when lost. An error
  // text Postgres refuses is recorded as kErrorTextRefused.
  absl::StatusOr<FailOutcome> Fail(const Lease& lease, absl::string_view error,
                                   std::optional<absl::Duration> retry_delay = std::nullopt);
  // Gives a claimed job back without using up an attempt (graceful shutdown).
  absl::Status Release(const Lease& lease);
  // Release() for many leases of one worker in one statement; returns the job ids whose
  // leases were lost (those rows are left as they are).
  absl::StatusOr<std::vector<int64_t>> ReleaseMany(absl::Span<const Lease> leases);
  // Back to pending, attempt given back: `processing` jobs locked by `worker_id` under a lease
  // other than those in `held` (a job held under an older lease, recovered by the reaper and
  // claimed again by a lost reply, is released too). A worker calls it after an outage, for
  // claims whose reply was lost after the server committed them. Returns how many. Worker ids
  // must be unique among live workers.
  absl::StatusOr<int64_t> ReleaseOrphans(absl::string_view worker_id, absl::Span<const Lease> held);
  // Pending -> cancelled. FailedPrecondition when the job is not pending.
  absl::Status Cancel(int64_t job_id);

  absl::StatusOr<Job> Get(int64_t job_id);
  // The highest migration applied. One round trip, so also a health check: Unavailable when
  // Postgres cannot be reached, FailedPrecondition before the first migrate.
  absl::StatusOr<int> SchemaVersion();
  absl::StatusOr<std::vector<StatusCount>> Counts();
  // Processing jobs whose heartbeat is older than `older_than`.
  absl::StatusOr<std::vector<StaleJob>> ListStale(absl::Duration older_than);
  // The stale-lock reaper's pass. Only one process acts per sweep (advisory lock).
  absl::StatusOr<RecoverResult> RecoverStale(const RecoverOptions& options);
  // Retention: deletes finished jobs in bounded batches; returns rows deleted. `more`, when
  // given, is set to whether the pass stopped at max_batches with eligible rows maybe left.
  absl::StatusOr<int64_t> Purge(const PurgeOptions& options, bool* more = nullptr);
  // failed -> pending with attempts reset, optionally only one job type. Returns rows moved.
  // A job whose dedupe key has a live job again stays failed; of several failed jobs with one
  // key only the newest moves.
  absl::StatusOr<int64_t> RetryFailed(absl::string_view job_type = "");
  // Registers (or removes) an idle worker of `queue`: inserts notify the schema's channel only
  // while some worker waits, so busy periods pay nothing for NOTIFY. `listener_pid` is the
  // server pid of the connection the worker LISTENs on (PQbackendPID; behind a pooler, SELECT
  // pg_backend_pid() on it): once that backend is gone, the next registration of any worker
  // drops the row. 0 (unknown): the row is dropped an hour after it was written.
  absl::Status SetWaiting(absl::string_view worker_id, absl::string_view queue, bool waiting,
                          int listener_pid = 0);
  // The earliest run_at among pending jobs of the queue and types, if any.
  absl::StatusOr<std::optional<absl::Time>> NextRunAt(absl::string_view queue,
                                                      absl::Span<const std::string> job_types);

  const PgOptions& options() const { return options_; }
  // The pg_notify channel that inserts into this schema's queue signal.
  std::string NotifyChannel() const;
  internal::PgPool& pool() { return *pool_; }

 private:
  PgQueue(PgOptions options, std::unique_ptr<internal::PgPool> pool);

  // EnqueueMany after every job passed ValidateNewJob (at most 100000).
  absl::StatusOr<std::vector<EnqueueResult>> EnqueueManyValidated(absl::Span<const NewJob> jobs);
  absl::StatusOr<std::vector<EnqueueResult>> EnqueueManyByCopy(absl::Span<const NewJob> jobs);
  // One validated job in a statement of its own.
  absl::StatusOr<EnqueueResult> EnqueueAlone(const NewJob& job);
  // Runs a statement taking (worker id, ids, attempts, claimed_at_us) over `leases` and
  // returning the ids it wrote; returns the others.
  absl::StatusOr<std::vector<int64_t>> UpdateLeases(absl::Span<const Lease> leases,
                                                    absl::string_view what,
                                                    const internal::PgStatement& statement);

  struct Combiner;

  PgOptions options_;
  std::unique_ptr<internal::PgPool> pool_;
  std::unique_ptr<Combiner> combiner_;
};

}  // namespace jobqueue

#endif  // JOBQUEUE_PG_QUEUE_H_
