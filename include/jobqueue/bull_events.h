// A subscriber to a BullMQ queue's events stream ("<prefix>:<queue>:events"), like Node's
// QueueEvents: the same entries Node workers and ours write (added, waiting, active,
// completed, failed, progress, delayed, stalled, removed, paused, ...), read with a blocking
// XREAD so nothing polls.
#ifndef JOBQUEUE_BULL_EVENTS_H_
#define JOBQUEUE_BULL_EVENTS_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "jobqueue/redis_client.h"
#include "jobqueue/secret.h"

namespace jobqueue {

struct BullEvent {
  std::string id;      // the stream entry id, "<ms>-<seq>"
  std::string event;   // the "event" field
  std::string job_id;  // the "jobId" field, empty for queue-wide events
  // Every field of the entry as written (returnvalue, failedReason, prev, data, ...).
  std::map<std::string, std::string> fields;
};

struct BullQueueEventsOptions {
  std::string prefix = "bull";
  RedisOptions redis;
  // Where reading starts: "$" (only events after Open, as QueueEvents does by default), "0"
  // (the whole retained stream) or an entry id (events after it, to resume).
  std::string last_event_id = "$";
  // Most entries one read returns. Default 100.
  int batch = 100;
};

class BullQueueEvents {
 public:
  static absl::StatusOr<std::unique_ptr<BullQueueEvents>> Open(
      const Secret& redis_url, absl::string_view queue, const BullQueueEventsOptions& options = {});
  ~BullQueueEvents();
  BullQueueEvents(const BullQueueEvents&) = delete;
  BullQueueEvents& operator=(const BullQueueEvents&) = delete;

  // Waits up to `timeout` for events after the last one read and returns them in order (none
  // on timeout). Cancelled once Stop() was called.
  absl::StatusOr<std::vector<BullEvent>> Read(absl::Duration timeout);
  // Calls `on_event` for each event until Stop(); reconnects with backoff when Redis goes
  // away, resuming after the last event delivered. OK after Stop().
  absl::Status Run(const std::function<void(const BullEvent&)>& on_event);
  // Thread-safe; interrupts a blocked Read() or Run().
  void Stop();
  // The id of the last event returned; reading resumes after it.
  std::string last_event_id() const;

 private:
  BullQueueEvents(Secret url, std::string key, BullQueueEventsOptions options,
                  std::unique_ptr<RedisConnection> conn);

  const Secret url_;
  const std::string key_;
  const BullQueueEventsOptions options_;
  std::atomic<bool> stopped_{false};
  mutable absl::Mutex mu_;
  std::unique_ptr<RedisConnection> conn_ ABSL_GUARDED_BY(mu_);
  std::string last_id_ ABSL_GUARDED_BY(mu_);
  absl::Mutex read_mu_;  // one Read at a time
};

}  // namespace jobqueue

#endif  // JOBQUEUE_BULL_EVENTS_H_
