#include "internal/log.h"
#include "jobqueue/maintenance.h"

namespace jobqueue {

RetentionCleaner::RetentionCleaner(PgQueue* queue, PurgeOptions options, absl::Duration interval)
    : Service("retention cleaner", interval), queue_(queue), options_(std::move(options)) {}

RetentionCleaner::~RetentionCleaner() { Stop(); }

absl::StatusOr<int64_t> RetentionCleaner::RunOnce() {
  bool more = false;
  absl::StatusOr<int64_t> deleted = queue_->Purge(options_, &more);
  if (deleted.ok() && *deleted > 0) {
    total_deleted_ += *deleted;
    internal::LogInfo("retention: deleted {} finished job(s){}", *deleted,
                      more ? ", more to delete" : "");
  }
  left_more_ = deleted.ok() && more;
  return deleted;
}

absl::Status RetentionCleaner::Tick() {
  absl::Status status = RunOnce().status();
  // A pass stops at max_batches; a backlog bigger than that goes on at once, not an interval
  // later (at the defaults an hourly pass alone could delete only ~28 jobs/s).
  if (left_more_) Trigger();
  return status;
}

}  // namespace jobqueue
