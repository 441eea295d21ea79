// A low-level BullMQ consumer for callers that drive their own loop (the C API, FFI users):
// fetch jobs, then extend, complete, fail or release each one. It claims and finishes with the
// same script and the same job-opts policy as BullWorker, so Node and dashboards see exactly
// what a BullMQ worker leaves. It runs no lock renewal or stalled check of its own: extend the
// locks of long jobs yourself, and keep a BullWorker or Node worker running for stalled jobs.
#ifndef JOBQUEUE_BULL_CONSUMER_H_
#define JOBQUEUE_BULL_CONSUMER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "jobqueue/bull_queue.h"
#include "jobqueue/redis_client.h"
#include "jobqueue/secret.h"

namespace jobqueue {

struct BullConsumerOptions {
  // Key prefix, as for BullQueue. Default "bull".
  std::string prefix = "bull";
  RedisOptions redis;
  // Stored as the job's "pb" (processedBy). Empty: unnamed.
  std::string name;
  // Lock time of each fetched job; ExtendLock renews it. At least 10 ms, default 30 s.
  absl::Duration lock_duration = absl::Seconds(30);

  absl::Status Validate() const;
};

// One fetched job and the lock token of this claim.
struct BullLease {
  BullJob job;
  std::string token;
};

// Thread-safe: fetches may block in several threads while others extend and finish.
class BullConsumer {
 public:
  // Connects (failing fast on a bad URL, password or certificate).
  static absl::StatusOr<std::unique_ptr<BullConsumer>> Open(
      const Secret& redis_url, absl::string_view queue, const BullConsumerOptions& options = {});
  ~BullConsumer();
  BullConsumer(const BullConsumer&) = delete;
  BullConsumer& operator=(const BullConsumer&) = delete;

  // Claims up to `max` (1..1000) jobs in BullMQ order. With none ready, waits up to `wait` for
  // an add (the queue's marker) or a delayed job coming due; an empty result means none came.
  // A paused queue yields nothing. Jobs a stalled check marked for failure are failed here
  // without being returned, as BullWorker does.
  absl::StatusOr<std::vector<BullLease>> Fetch(int max, absl::Duration wait);

  // The calls below succeed only while `lease` still holds the job's lock; otherwise they
  // return kLeaseLostCode (see jobqueue/job.h) and write nothing.
  // Renews the lock for another lock_duration.
  absl::Status ExtendLock(const BullLease& lease);
  // Completes with a JSON return value ("" means null); InvalidArgument when it is not JSON.
  absl::Status Complete(const BullLease& lease, absl::string_view return_value_json);
  // Fails the attempt with `reason`: retried per the job's attempts/backoff, else failed for
  // good (at once when unrecoverable, like Node's UnrecoverableError).
  absl::Status Fail(const BullLease& lease, absl::string_view reason, bool unrecoverable = false);
  // Hands the job back to wait unprocessed (no attempt used up).
  absl::Status Release(const BullLease& lease);

  const std::string& queue() const;

 private:
  class Impl;
  explicit BullConsumer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace jobqueue

#endif  // JOBQUEUE_BULL_CONSUMER_H_
