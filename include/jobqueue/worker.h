// The Postgres worker runtime: handlers per job type, N threads, batched claims, LISTEN/NOTIFY
// wake-ups with a polling fallback, automatic heartbeats, graceful shutdown and idle exit.
#ifndef JOBQUEUE_WORKER_H_
#define JOBQUEUE_WORKER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "jobqueue/job.h"
#include "jobqueue/pg_queue.h"

namespace jobqueue {

// What a handler sees of the job it runs.
class JobContext {
 public:
  virtual ~JobContext() = default;
  // The lease the job was claimed under. The worker heartbeats and finishes it; in short-job
  // mode it is a held-batch lease (claimed_at_us 0), which PgQueue's lease calls refuse.
  virtual const Lease& lease() const = 0;
  // True once the worker is shutting down; long handlers may return early (their job is
  // then released back to pending, not failed).
  virtual bool stopping() const = 0;
};

// Returns the job's JSON result ("null" when empty), or an error: the job is failed with the
// status message and retried per the queue's retry policy. A status of kLeaseLostCode is
// treated as lost and nothing is written.
using JobHandler = std::function<absl::StatusOr<std::string>(JobContext& job)>;

struct WorkerOptions {
  // The service name in the start-up line "Starting <name> Worker (env=...)". Default "Job".
  std::string name = "Job";
  // Shown in the start-up line. Default "dev".
  std::string environment = "dev";
  // Lease owner written to locked_by: at most 256 bytes of UTF-8 without NUL. Default
  // "<host>:<pid>:<random>".
  std::string worker_id;
  // The queue claimed from. Default "default".
  std::string queue = "default";
  // Handler threads. 1..1024, default 1.
  int concurrency = 1;
  // Jobs claimed per round trip; 0 means 2 x concurrency. 0..10000.
  int batch_size = 0;
  // Connections claiming and completing in parallel; each claims batch_size / dispatchers.
  // More than one lets Postgres use more cores for one busy worker. 1..16, default 1.
  int dispatchers = 1;
  // Short-job mode when positive (at most 10 s): a claimed batch stays locked by an open
  // transaction instead of being marked 'processing', and the jobs that finish within this
  // budget are written once (completed, or failed/retried) when the batch commits: one row
  // write per job instead of two. Jobs still running at the budget become ordinary processing
  // leases then. While held, rows read 'pending' (locked); if the worker dies, its batch is
  // pending again at once, with no attempt counted. Default 0 (off).
  absl::Duration transaction_budget = absl::ZeroDuration();
  // Fallback poll when no notification comes (WORKER_POLL_INTERVAL). Default 10 s.
  absl::Duration poll_interval = absl::Seconds(10);
  // Wake on pg_notify from inserts. Default true.
  bool listen = true;
  // Heartbeats of in-flight jobs are sent this often. Must be well below the reaper's stale
  // timeout. Default 30 s.
  absl::Duration heartbeat_interval = absl::Seconds(30);
  // On Stop(), in-flight jobs get this long to finish; the rest are released (a late result
  // is fenced off). Run() still waits for a handler that never returns. Default 30 s.
  absl::Duration shutdown_timeout = absl::Seconds(30);
  // Run() returns after this long with nothing to do (scale-to-zero); time spent unable to
  // reach the server counts as nothing to do. Default never.
  std::optional<absl::Duration> exit_when_idle;
  // Reconnect backoff after a lost connection: starts at min, doubles up to max.
  absl::Duration reconnect_min = absl::Milliseconds(100);
  absl::Duration reconnect_max = absl::Seconds(10);
  // Print the start-up lines through the logger. Default true.
  bool log_startup = true;

  absl::Status Validate() const;
};

struct WorkerStats {
  int64_t completed = 0;
  int64_t failed = 0;      // handler errors (retried or failed for good)
  int64_t lost = 0;        // leases lost before finishing
  int64_t released = 0;    // handed back at shutdown
  int64_t claims = 0;      // claim round trips
  int64_t reconnects = 0;  // failed rounds retried with backoff (outages, deadlocks)
};

class Worker {
 public:
  // `queue` must outlive the worker.
  static absl::StatusOr<std::unique_ptr<Worker>> Create(PgQueue* queue, WorkerOptions options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Before Run(). InvalidArgument for a bad name, AlreadyExists for a second handler.
  absl::Status Register(absl::string_view job_type, JobHandler handler);

  // Processes jobs until Stop(), a stop signal (see StopOnSignals), or idle exit. Returns OK
  // after a graceful stop; an error only when the worker could not run at all, such as
  // FailedPrecondition for a schema never migrated or PermissionDenied for a role without
  // rights on its first round. Outages are retried with backoff and count as idle time.
  absl::Status Run();
  // Asks Run() to stop gracefully. Thread-safe; returns at once.
  void Stop();
  // Stop(), but the jobs still running are released at once instead of after shutdown_timeout
  // (their late results are dropped); Run() still returns only once their handlers do. A
  // second stop signal a second or more after the first does this (a second Ctrl-C).
  void StopNow();

  WorkerStats stats() const;
  const std::string& worker_id() const;

 private:
  class Impl;
  explicit Worker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// SIGTERM and SIGINT call Stop() on every worker of this process (Postgres and BullMQ) that
// existed when the signal came; workers made afterwards run normally. Idempotent.
void StopWorkersOnSignals();

}  // namespace jobqueue

#endif  // JOBQUEUE_WORKER_H_
