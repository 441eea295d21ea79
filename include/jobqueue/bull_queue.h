// A BullMQ-compatible queue on Redis (producer side): jobs written exactly as BullMQ writes
// them, so Node producers and workers, C++ and BullMQ dashboards share one queue. See
// docs/bullmq-compat.md for what is supported so far.
#ifndef JOBQUEUE_BULL_QUEUE_H_
#define JOBQUEUE_BULL_QUEUE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "jobqueue/redis_client.h"
#include "jobqueue/secret.h"

namespace jobqueue {
namespace internal {
struct LuaScript;
}  // namespace internal

struct BullQueueOptions {
  // Key prefix; keys are "<prefix>:<queue>:<suffix>". A hash-tag prefix such as "{bull}" keeps
  // a queue's keys in one cluster slot. Default "bull" (BullMQ's default).
  std::string prefix = "bull";
  RedisOptions redis;
  // Connections kept open. Default 4.
  int pool_size = 4;

  absl::Status Validate() const;
};

// Options of one job, the subset of BullMQ's JobsOptions supported so far. Parsed from (and
// stored as) the same JSON a Node producer would pass.
struct BullJobOptions {
  std::string job_id;  // custom id; a second add with the same id returns the existing job
  int64_t delay_ms = 0;
  int64_t priority = 0;  // 0 = none; 1 (highest) .. 2097151 (BullMQ's limit)
  bool lifo = false;
  // opts.sizeLimit: Add refuses data whose JSON is longer, in bytes. 0 = no limit.
  int64_t size_limit = 0;
  // opts.timestamp: the job's creation time (ms since the epoch) and the base of its delay, as
  // Node's Queue.add uses it; unset means when it is added.
  std::optional<int64_t> timestamp_ms;
  // The JSON stored in the job hash's "opts" field.
  std::string json = "{}";
};

// Parses a Node JobsOptions JSON: jobId (1..1024 bytes), delay, priority, lifo, attempts,
// backoff (number or {type: "fixed"|"exponential", delay, jitter 0..1}),
// removeOnComplete/removeOnFail (bool, count or {age (s, may be fractional), count, limit}),
// stackTraceLimit, keepLogs, sizeLimit (Add refuses larger data, as Node), timestamp. Unknown or
// ill-typed keys are an error.
absl::StatusOr<BullJobOptions> ParseBullJobOptions(absl::string_view json);

struct BullJob {
  std::string id;
  std::string name;
  std::string data_json;
  std::string opts_json;
  int64_t timestamp = 0;
  int64_t delay = 0;
  int64_t priority = 0;
  int64_t attempts_made = 0;  // "atm"
  std::optional<int64_t> processed_on;
  std::optional<int64_t> finished_on;
  std::optional<std::string> return_value_json;
  std::string failed_reason;
  // Every field of the hash as stored (for fields not modelled above).
  std::map<std::string, std::string> fields;
};

// Counts per BullMQ state, as Node's Queue.getJobCounts() reports them.
struct BullJobCounts {
  int64_t active = 0, completed = 0, delayed = 0, failed = 0, paused = 0, prioritized = 0,
          waiting = 0, waiting_children = 0;
};

class BullQueue {
 public:
  // Queue names: 1..256 bytes, no ':' (BullMQ separates key parts with it), no whitespace.
  static absl::StatusOr<std::unique_ptr<BullQueue>> Open(const Secret& redis_url,
                                                         absl::string_view name,
                                                         const BullQueueOptions& options = {});
  ~BullQueue();

  // Adds a job; returns its id (the existing job's id for a duplicate custom id).
  absl::StatusOr<std::string> Add(absl::string_view name, absl::string_view data_json,
                                  const BullJobOptions& options = {});
  struct NewBullJob {
    std::string name;
    std::string data_json = "{}";
    BullJobOptions options;
  };
  // Many jobs in one pipelined round trip; all are validated before anything is sent. Not one
  // transaction (Node's addBulk is one MULTI): jobs go in atomic script calls of up to 256, so
  // Redis serves workers between them, and an error after the first call (a lost connection)
  // may leave earlier jobs added. Give jobs an options.job_id to make a retry add no duplicates.
  // Should the server forget its scripts mid-call (SCRIPT FLUSH), the calls it refused are run
  // again after the rest: every id still matches its job, but those jobs queue behind later ones.
  absl::StatusOr<std::vector<std::string>> AddBulk(const std::vector<NewBullJob>& jobs);
  // NotFound when there is no such job.
  absl::StatusOr<BullJob> GetJob(absl::string_view id);
  absl::StatusOr<BullJobCounts> Counts();
  // Pauses (workers stop claiming; jobs keep arriving) or resumes the queue for every worker,
  // Node ones included, with the "paused"/"resumed" event. Resuming moves a legacy "paused"
  // list back to wait entirely (in batches).
  absl::Status Pause() { return SetPaused(true); }
  absl::Status Resume() { return SetPaused(false); }
  absl::StatusOr<bool> IsPaused();
  // Removes up to `limit` (0: all) jobs of `state` (completed, failed, delayed, prioritized,
  // wait or paused) older than `grace`, oldest first, as Queue.clean does; locked jobs and a
  // job scheduler's current job stay. Runs in steps of at most 10,000 jobs, so Redis is never
  // blocked for long. Returns their ids.
  absl::StatusOr<std::vector<std::string>> Clean(absl::string_view state, absl::Duration grace,
                                                 int64_t limit = 0);

  // Removes every job waiting to run (wait, prioritized and, with include_delayed, delayed)
  // with its data, as Queue.drain does; active and finished jobs stay, and so does a job
  // scheduler's current job. Returns how many.
  absl::StatusOr<int64_t> Drain(bool include_delayed = false);
  // Removes a job and its data from whatever state holds it (an orphan id without its hash
  // too), with the "removed" event; a flow parent left without pending children moves to
  // wait. NotFound when missing; FailedPrecondition while it is locked (running) or when it is a
  // job scheduler's current job (remove the scheduler instead), as Node's removeJob refuses it.
  absl::Status Remove(absl::string_view id);
  // Moves every job of `state` ("failed" or "completed") finished at or before
  // `finished_before` (by default, when the call starts) back to wait, as Queue.retryJobs
  // does. Returns how many moved.
  absl::StatusOr<int64_t> RetryJobs(absl::string_view state = "failed",
                                    absl::Time finished_before = absl::InfiniteFuture());
  // One failed (or completed) job back to wait, as Job.retry does (a lifo job at the front);
  // attemptsMade is kept unless reset_attempts. NotFound when missing; FailedPrecondition
  // when not in `state`.
  absl::Status RetryJob(absl::string_view id, absl::string_view state = "failed",
                        bool reset_attempts = false);
  // Moves a delayed job to wait now (Job.promote). FailedPrecondition when it is not delayed.
  absl::Status Promote(absl::string_view id);
  // Moves every delayed job to wait now (Queue.promoteJobs). Returns how many moved.
  absl::StatusOr<int64_t> PromoteAll();
  // Sets a job's progress (a JSON number or object, as Job.updateProgress takes) and emits
  // the "progress" event. NotFound when missing.
  absl::Status UpdateProgress(absl::string_view id, absl::string_view progress_json);
  // Appends a line to the job's log, keeping the newest `keep_logs` (0: all). Returns the
  // log's length.
  absl::StatusOr<int64_t> AddLog(absl::string_view id, absl::string_view line,
                                 int64_t keep_logs = 0);
  struct Logs {
    std::vector<std::string> lines;
    int64_t count = 0;  // lines stored in all
  };
  // Lines start..end (inclusive, negative counts from the end) as Queue.getJobLogs returns.
  absl::StatusOr<Logs> GetLogs(absl::string_view id, int64_t start = 0, int64_t end = -1,
                               bool asc = true);
  // The jobs of one state (wait, active, paused, prioritized, delayed, completed, failed or
  // waiting-children), positions start..end inclusive, newest first unless asc: a page of
  // Queue.getJobs. Jobs removed between reading the state and the job are skipped.
  absl::StatusOr<std::vector<BullJob>> GetJobs(absl::string_view state, int64_t start = 0,
                                               int64_t end = 99, bool asc = false);

  const std::string& name() const { return name_; }
  // "<prefix>:<queue>:<suffix>"
  std::string Key(absl::string_view suffix) const;

 private:
  BullQueue(std::string name, BullQueueOptions options, std::unique_ptr<RedisPool> pool);
  absl::Status SetPaused(bool paused);
  absl::Status NoSuchJob(absl::string_view id) const;
  // One add-job script call for jobs[0..count), which share `timestamp_ms`.
  std::vector<std::string> AddCommand(const NewBullJob* jobs, size_t count,
                                      int64_t timestamp_ms) const;
  // Runs one of our scripts with the worker keys plus `extra_keys`.
  absl::StatusOr<RedisReply> RunAdminScript(const internal::LuaScript& script,
                                            const std::vector<std::string>& extra_keys,
                                            std::vector<std::string> args,
                                            absl::string_view context);
  absl::StatusOr<std::vector<RedisReply>> RunScripts(
      const std::vector<std::vector<std::string>>& evalsha_commands);

  const std::string name_;
  const BullQueueOptions options_;
  std::unique_ptr<RedisPool> pool_;
};

}  // namespace jobqueue

#endif  // JOBQUEUE_BULL_QUEUE_H_
