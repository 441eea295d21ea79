// Maintenance services of the Postgres queue, each a start/stop unit with a RunOnce() that
// tests call directly: the stale-lock reaper and the retention cleaner.
#ifndef JOBQUEUE_MAINTENANCE_H_
#define JOBQUEUE_MAINTENANCE_H_

#include <atomic>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "jobqueue/pg_queue.h"
#include "jobqueue/service.h"

namespace jobqueue {

// Returns processing jobs whose heartbeat is older than the stale timeout to pending (or to
// failed when their attempts are spent). Many processes may run it: one acts per sweep.
class StaleLockReaper : public Service {
 public:
  // `queue` must outlive the reaper. Default interval 1 min.
  StaleLockReaper(PgQueue* queue, RecoverOptions options,
                  absl::Duration interval = absl::Minutes(1));
  ~StaleLockReaper() override;

  // One sweep; the jobs it recovered (none when another process held the sweep).
  absl::StatusOr<RecoverResult> RunOnce();
  int64_t total_recovered() const { return total_recovered_.load(); }

 protected:
  absl::Status Tick() override;

 private:
  PgQueue* const queue_;
  const RecoverOptions options_;
  std::atomic<int64_t> total_recovered_{0};
};

// Deletes completed, cancelled and failed jobs older than their retention age, in bounded
// batches so a large backlog never holds long locks.
class RetentionCleaner : public Service {
 public:
  // `queue` must outlive the cleaner. Default interval 1 h.
  RetentionCleaner(PgQueue* queue, PurgeOptions options, absl::Duration interval = absl::Hours(1));
  ~RetentionCleaner() override;

  // One pass; rows deleted. When it stops at max_batches with rows left, the running service
  // starts the next pass at once.
  absl::StatusOr<int64_t> RunOnce();
  int64_t total_deleted() const { return total_deleted_.load(); }
  bool last_pass_left_more() const { return left_more_.load(); }

 protected:
  absl::Status Tick() override;

 private:
  PgQueue* const queue_;
  const PurgeOptions options_;
  std::atomic<int64_t> total_deleted_{0};
  std::atomic<bool> left_more_{false};
};

}  // namespace jobqueue

#endif  // JOBQUEUE_MAINTENANCE_H_
