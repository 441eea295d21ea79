// Jobs as the Postgres backend stores them in <schema>.job_queue, and the options of a new one.
#ifndef JOBQUEUE_JOB_H_
#define JOBQUEUE_JOB_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace jobqueue {

// The `status` column; the names are the strings stored (seed 004's queries use them).
enum class JobStatus { kPending, kProcessing, kCompleted, kFailed, kCancelled };

absl::string_view JobStatusName(JobStatus status);
absl::StatusOr<JobStatus> ParseJobStatus(absl::string_view name);

// Limits checked before anything is written.
inline constexpr size_t kMaxNameLength = 128;  // queue and job type names
inline constexpr size_t kMaxDedupeKeyLength = 512;
inline constexpr size_t kMaxPayloadBytes = 16 * 1024 * 1024;  // payload and result JSON
inline constexpr int kMinPriority = -32768;
inline constexpr int kMaxPriority = 32767;

// Queue and job type names: 1..128 of [A-Za-z0-9_.:-], starting with a letter or digit.
// InvalidArgument naming `what` otherwise.
absl::Status ValidateName(absl::string_view what, absl::string_view name);

struct EnqueueOptions {
  // The queue; workers claim from one queue. Default "default".
  std::string queue = "default";
  // Runs no earlier than now + delay. 0..100 years. Default 0. Ignored when run_at is set.
  absl::Duration delay = absl::ZeroDuration();
  // Runs no earlier than this time (database clock), in the years 1970..9999. Default unset.
  std::optional<absl::Time> run_at;
  // Lower runs first; ties go by run time, then id. -32768..32767, default 0.
  int priority = 0;
  // Attempts before the job is `failed` for good. >= 1, default 5.
  int max_attempts = 5;
  // While a job with the same queue and key is pending or processing, enqueueing another
  // returns the existing job's id instead. Default none.
  std::string dedupe_key;
};

struct NewJob {
  std::string job_type;
  // One JSON value; validated before it is sent. Default {}.
  std::string payload_json = "{}";
  EnqueueOptions options;
};

struct EnqueueResult {
  int64_t id = 0;
  // False when a live job with the same dedupe key already existed; id is that job's.
  bool inserted = true;
};

// One row, as read by PgQueue::Get.
struct Job {
  int64_t id = 0;
  std::string queue;
  std::string job_type;
  std::string payload_json;
  JobStatus status = JobStatus::kPending;
  int priority = 0;
  absl::Time run_at;
  int attempts = 0;
  int max_attempts = 0;
  std::string locked_by;  // the claimer; kept on completed/failed rows, cleared back in pending
  std::optional<absl::Time> locked_at;
  std::optional<absl::Time> heartbeat_at;
  std::string last_error;
  std::optional<std::string> result_json;
  std::string dedupe_key;
  absl::Time created_at;
  absl::Time updated_at;
  std::optional<absl::Time> finished_at;
};

// The row as one JSON object: the column names as keys, times as RFC 3339 UTC text with
// milliseconds, absent times and texts as null, payload and result as stored.
std::string JobToJson(const Job& job);

// A claimed job. The (job_id, attempt, worker_id) triple is the fencing token: complete, fail
// and heartbeat succeed only while the row is still processing under exactly this lease.
struct Lease {
  int64_t job_id = 0;
  int attempt = 0;  // 1 on the first claim
  std::string worker_id;
  std::string queue;
  std::string job_type;
  std::string payload_json;
  int max_attempts = 0;
  // When this claim was made (the row's locked_at, in µs since the epoch). Part of the fence
  // with worker_id and attempt, so a lease released and claimed again by the same worker
  // (same attempt number) is still told apart from the new claim.
  int64_t claimed_at_us = 0;
};

// A lease that was lost (recovered by the reaper and maybe re-claimed, cancelled, or
// finished by someone else) is reported as LeaseLostError(): this code plus a payload, so an
// ordinary kAborted (a deadlock, or a handler's own error) is not taken for a lost lease.
inline constexpr absl::StatusCode kLeaseLostCode = absl::StatusCode::kAborted;
absl::Status LeaseLostError(absl::string_view message);
bool IsLeaseLost(const absl::Status& status);

}  // namespace jobqueue

#endif  // JOBQUEUE_JOB_H_
