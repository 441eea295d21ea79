#include "internal/log.h"
#include "jobqueue/maintenance.h"

namespace jobqueue {

RetentionCleaner::RetentionCleaner(PgQueue* queue, PurgeOptions options, absl::Duration interval)
    : Service("retention cleaner", interval), queue_(queue), options_(std::move(options)) {}

RetentionCleaner::~RetentionCleaner() { Stop(); }

absl::StatusOr<int64_t> RetentionCleaner::RunOnce() {
  absl::StatusOr<int64_t> deleted = queue_->Purge(options_);
  if (deleted.ok() && *deleted > 0) {
    total_deleted_ += *deleted;
    internal::LogInfo("retention: deleted {} finished job(s)", *deleted);
  }
  return deleted;
}

absl::Status RetentionCleaner::Tick() { return RunOnce().status(); }

}  // namespace jobqueue
