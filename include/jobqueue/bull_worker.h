// A BullMQ-compatible worker: claims jobs with a per-claim lock token, waits on the queue's
// marker with a blocking pop, renews locks, finishes and retries jobs exactly as a Node worker
// would, and checks for stalled jobs beside Node workers. See docs/bullmq-compat.md.
#ifndef JOBQUEUE_BULL_WORKER_H_
#define JOBQUEUE_BULL_WORKER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "jobqueue/bull_queue.h"
#include "jobqueue/redis_client.h"
#include "jobqueue/secret.h"

namespace jobqueue {

// What a handler sees of the job it runs.
class BullJobContext {
 public:
  virtual ~BullJobContext() = default;
  virtual const BullJob& job() const = 0;
  // The lock token of this claim.
  virtual const std::string& token() const = 0;
  // True once the worker is shutting down (Stop() or a signal). A handler that then returns
  // an error hands its job back to wait without using up an attempt.
  virtual bool stopping() const = 0;
  // Job.updateProgress: stores the progress (a JSON number or object) and emits "progress".
  virtual absl::Status UpdateProgress(absl::string_view progress_json) = 0;
  // Job.log: appends a line to the job's log, trimmed to the job's keepLogs option.
  virtual absl::Status Log(absl::string_view line) = 0;
};

// Returns the job's return value as JSON ("null" when empty) or an error: the status message
// becomes failedReason and the job is retried per its attempts/backoff. An error made by
// BullUnrecoverableError() fails the job without retrying (Node's UnrecoverableError).
using BullHandler = std::function<absl::StatusOr<std::string>(BullJobContext& job)>;
absl::Status BullUnrecoverableError(absl::string_view message);
// `error` carrying the stack trace to store for this failure (a language binding's own
// traceback) instead of the generated "Error: <message>\n    at <queue> (libjobqueue ...)".
absl::Status BullErrorWithStacktrace(absl::Status error, absl::string_view stacktrace);

struct BullWorkerOptions {
  // Key prefix, as for BullQueue. Default "bull".
  std::string prefix = "bull";
  RedisOptions redis;
  // Worker name: stored as the job's "pb" (processedBy) and in the connection name that
  // Node's getWorkers() lists ("<prefix>:<base64 queue>:w:<name>"). Empty: unnamed.
  std::string name;
  // Handler threads; also the most jobs held at once. 1..1024, default 1.
  int concurrency = 1;
  // Claiming ahead: besides the jobs running, up to `prefetch` more are claimed (locked, in
  // active) to start as soon as a handler is free, so short jobs do not each wait for a round
  // trip. Only while handlers are fast: the worker holds ahead at most what its handlers get
  // through in `prefetch_window` at their recent pace, so slow jobs are never held back from
  // other workers, and a finished job is reported within about that window. Jobs still held
  // after ten windows (at least 50 ms; a slow job came after fast ones) go back to wait for
  // other workers, and results finished before it go out then. 0 turns it off.
  // Defaults 64 and 2 ms.
  int prefetch = 64;
  absl::Duration prefetch_window = absl::Milliseconds(2);
  // Lock time per job; renewed every lock_renew_time (default half of it). Default 30 s.
  absl::Duration lock_duration = absl::Seconds(30);
  absl::Duration lock_renew_time = absl::ZeroDuration();
  // Stalled-job check period and how often a job may stall before it fails (BullMQ's
  // stalledInterval and maxStalledCount). Defaults 30 s and 1.
  absl::Duration stalled_interval = absl::Seconds(30);
  int max_stalled_count = 1;
  // Run the stalled check in this worker. Default true (as Node workers do).
  bool check_stalled = true;
  // Longest blocking wait on the marker before looking again (BullMQ's drainDelay). Default 5 s.
  absl::Duration drain_delay = absl::Seconds(5);
  // Worker rate limit (BullMQ's limiter): at most `max` jobs started per `duration`. 0 = none.
  int limiter_max = 0;
  absl::Duration limiter_duration = absl::ZeroDuration();
  // On Stop(), in-flight jobs get this long to finish; the rest are handed back to wait.
  // Default 30 s.
  absl::Duration shutdown_timeout = absl::Seconds(30);
  // Run() returns after this long with nothing to do (scale-to-zero); time spent unable to
  // reach the server counts as nothing to do. Default never.
  std::optional<absl::Duration> exit_when_idle;
  // Reconnect backoff after Redis goes away: starts at min, doubles up to max.
  absl::Duration reconnect_min = absl::Milliseconds(100);
  absl::Duration reconnect_max = absl::Seconds(10);

  absl::Status Validate() const;
};

struct BullWorkerStats {
  int64_t completed = 0;
  int64_t failed = 0;             // failed for good
  int64_t retried = 0;            // failed and moved back to wait or delayed
  int64_t lost = 0;               // lock lost before finishing: nothing written
  int64_t released = 0;           // handed back unstarted: at shutdown, or held ahead too long
  int64_t stalled_recovered = 0;  // jobs this worker's stalled check moved back to wait
  int64_t steps = 0;              // finish+claim script calls
  int64_t prefetched = 0;         // jobs claimed ahead of a free handler
  int64_t adopted = 0;            // claims whose reply was lost, found again and kept
  int64_t reconnects = 0;
};

class BullWorker {
 public:
  // Connects (failing fast on a bad URL, password or certificate) but does not claim yet.
  static absl::StatusOr<std::unique_ptr<BullWorker>> Create(const Secret& redis_url,
                                                            absl::string_view queue,
                                                            BullHandler handler,
                                                            BullWorkerOptions options = {});
  ~BullWorker();
  BullWorker(const BullWorker&) = delete;
  BullWorker& operator=(const BullWorker&) = delete;

  // Processes jobs until Stop(), a stop signal (StopWorkersOnSignals), or idle exit; then
  // finishes or hands back in-flight jobs, leaving nothing locked. OK after a graceful stop.
  // A worker runs once: a second call, concurrent or later, is FailedPrecondition.
  absl::Status Run();
  // Asks Run() to stop. Thread-safe; returns at once.
  void Stop();
  // Stop(), but the jobs still running are handed back at once instead of after
  // shutdown_timeout. A second stop signal a second or more after the first does this (a
  // second Ctrl-C).
  void StopNow();
  BullWorkerStats stats() const;

 private:
  class Impl;
  explicit BullWorker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace jobqueue

#endif  // JOBQUEUE_BULL_WORKER_H_
