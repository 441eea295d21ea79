#include "jobqueue/service.h"

#include <utility>

#include "internal/log.h"

namespace jobqueue {

Service::Service(std::string name, absl::Duration interval)
    : name_(std::move(name)), interval_(interval) {}

Service::~Service() { Stop(); }

absl::Status Service::Start() {
  if (interval_ <= absl::ZeroDuration()) {
    // Zero would sweep the database in a tight loop.
    return absl::InvalidArgumentError("service '" + name_ + "': interval must be positive");
  }
  absl::MutexLock lock(&mu_);
  if (running_) {
    return absl::FailedPreconditionError("service '" + name_ + "' is already running");
  }
  running_ = true;
  stop_requested_ = false;
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void Service::Stop() {
  std::thread thread;
  {
    absl::MutexLock lock(&mu_);
    if (!running_) return;
    stop_requested_ = true;
    thread = std::move(thread_);  // one caller joins; others wait for it below
  }
  if (thread.joinable()) {
    thread.join();
    absl::MutexLock lock(&mu_);
    running_ = false;
    return;
  }
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](bool* running) { return !*running; }, &running_));
}

void Service::Trigger() {
  absl::MutexLock lock(&mu_);
  triggered_ = true;
}

bool Service::running() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

int64_t Service::passes() const {
  absl::MutexLock lock(&mu_);
  return passes_;
}

int64_t Service::failed_passes() const {
  absl::MutexLock lock(&mu_);
  return failed_passes_;
}

void Service::Loop() {
  internal::LogDebug("service {} started (interval {})", name_, absl::FormatDuration(interval_));
  while (true) {
    const absl::Status status = Tick();
    {
      absl::MutexLock lock(&mu_);
      ++passes_;
      if (!status.ok()) ++failed_passes_;
    }
    if (!status.ok()) internal::LogWarn("service {}: pass failed: {}", name_, status.ToString());
    absl::MutexLock lock(&mu_);
    auto wake = [this]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_requested_ || triggered_; };
    mu_.AwaitWithTimeout(absl::Condition(&wake), interval_);
    triggered_ = false;
    if (stop_requested_) break;
  }
  internal::LogDebug("service {} stopped", name_);
}

}  // namespace jobqueue
