// How a BullMQ job is finished and claimed, shared by BullWorker (its own loop) and
// BullConsumer (the caller's loop): the job's opts decide retries, backoff and retention
// exactly as Node's moveToFailed / moveToFinished would, and one worker_step call sends the
// finishes and claims.
#ifndef JOBQUEUE_SRC_REDIS_BULL_FINISH_H_
#define JOBQUEUE_SRC_REDIS_BULL_FINISH_H_

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "jobqueue/bull_queue.h"
#include "jobqueue/redis_client.h"
#include "redis/bull_internal.h"

namespace jobqueue::internal {

// The status payload that marks BullUnrecoverableError (Node's UnrecoverableError).
inline constexpr absl::string_view kBullUnrecoverablePayload = "jobqueue.dev/bull-unrecoverable";
// The status payload of BullErrorWithStacktrace: the entry for the job's stacktrace list.
inline constexpr absl::string_view kBullStacktracePayload = "jobqueue.dev/bull-stacktrace";

// BullMQ's default for keepJobs.limit: at most this many jobs per age trim.
inline constexpr int64_t kBullKeepLimit = 1000;

// One finish as worker_step.lua takes it (see its header for the kinds).
struct BullFinish {
  std::string id, token, kind, value, stacktrace;
  int64_t keep_count = -1;
  std::optional<double> keep_age;  // seconds
  int64_t keep_limit = kBullKeepLimit;
  std::string extra;
  // When the job finished: its finishedOn and completed/failed score, as Node's worker writes
  // them, rather than the time of the step that carries it.
  absl::Time finished_at = absl::Now();
};

// Hands a claimed job back to wait. Not `started` (held ahead, never run): the claim's count
// of started attempts ("ats") is given back too, as Node's maxStartedAttempts reads it.
BullFinish BullRelease(const std::string& id, const std::string& token, bool started = true);

// The finish of `job` claimed with `token` for its handler's outcome: a JSON return value, or
// an error (retried per opts.attempts/backoff unless unrecoverable). `queue` names the
// stack-trace frame.
BullFinish BuildBullFinish(const BullJob& job, const std::string& token,
                           const absl::StatusOr<std::string>& result, absl::string_view queue,
                           simdjson::dom::parser& parser, std::mt19937_64& rng);

// A job a stalled check marked ("defa") must fail without running: its error, else nullopt.
std::optional<absl::Status> BullDeferredFailure(const BullJob& job);

// A random token prefix for one worker or consumer (claims get "<prefix>:<step>-<i>").
std::string BullTokenPrefix();

// Why worker_step refused a finish (its negative code).
absl::string_view BullFinishRefusal(int64_t code);

struct BullClaim {
  BullJob job;
  std::string token;
  absl::Time claimed_at;  // set by BullWorker when it holds the job
};
struct BullStepReply {
  std::vector<int64_t> codes;  // per finish: 0 done, < 0 refused (BullFinishRefusal)
  std::vector<BullClaim> claimed;
  int64_t rate_limited_ms = 0;
  int64_t next_delayed_at_ms = 0;  // 0: no delayed job
};
struct BullStepRequest {
  int want = 0;
  int64_t lock_ms = 0;
  std::string worker_name;
  std::string token_prefix;  // claims get "<token_prefix>-<i>"
  int limiter_max = 0;       // 0: none
  int64_t limiter_ms = 0;
  // Stamp the claims with Redis's clock when the script runs, not the caller's when it is
  // sent: for a claim pipelined behind a blocking wait.
  bool server_time = false;
};
// The EVALSHA command of one worker_step call, and its reply's meaning, for callers that
// pipeline it (NOSCRIPT is theirs to handle); RunBullStep does both and loads the script.
std::vector<std::string> BullStepCommand(const BullKeys& keys, const BullStepRequest& request,
                                         const std::vector<BullFinish>& finishes);
absl::StatusOr<BullStepReply> ParseBullStepReply(RedisReply reply, size_t finish_count);
// One worker_step call: finishes, then claims up to request.want jobs.
absl::StatusOr<BullStepReply> RunBullStep(RedisConnection& conn, const BullKeys& keys,
                                          const BullStepRequest& request,
                                          const std::vector<BullFinish>& finishes);
// The claims of earlier steps (by their token prefixes) whose replies were lost, their locks
// renewed for lock_ms.
absl::StatusOr<std::vector<BullClaim>> AdoptBullClaims(
    RedisConnection& conn, const BullKeys& keys, const std::vector<std::string>& step_prefixes,
    int64_t lock_ms);

}  // namespace jobqueue::internal

#endif  // JOBQUEUE_SRC_REDIS_BULL_FINISH_H_
