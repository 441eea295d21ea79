#include "internal/log.h"
#include "jobqueue/maintenance.h"

namespace jobqueue {

StaleLockReaper::StaleLockReaper(PgQueue* queue, RecoverOptions options, absl::Duration interval)
    : Service("stale-lock reaper", interval), queue_(queue), options_(std::move(options)) {}

StaleLockReaper::~StaleLockReaper() { Stop(); }

absl::StatusOr<RecoverResult> StaleLockReaper::RunOnce() {
  absl::StatusOr<RecoverResult> result = queue_->RecoverStale(options_);
  if (result.ok()) total_recovered_ += static_cast<int64_t>(result->jobs.size());
  return result;
}

absl::Status StaleLockReaper::Tick() { return RunOnce().status(); }

}  // namespace jobqueue
