#include "internal/worker_common.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>

#include "jobqueue/worker.h"

namespace jobqueue {
namespace internal {
namespace {

constexpr int kMaxSignalWorkers = 64;
// Slots hold fd + 1, so the zero-initialised array means "empty".
std::atomic<int> g_wake_fds[kMaxSignalWorkers];
// Bumped by every stop signal; a worker stops once it differs from its value at creation.
std::atomic<uint64_t> g_stop_generation{0};
std::atomic<uint64_t> g_spaced_stop_generation{0};
std::atomic<int64_t> g_last_spaced_stop_ns{INT64_MIN};
const int64_t kHurrySignalGapNs = absl::ToInt64Nanoseconds(kHurrySignalGap);
// Signal handlers between reading a slot and writing to its fd: an unregistering worker waits
// for them, so none writes to its fd after it was closed (and its number maybe reused).
std::atomic<int> g_handlers_waking{0};

void OnStopSignal(int) {
  const int saved_errno = errno;
  g_stop_generation.fetch_add(1);
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);  // async-signal-safe
  const int64_t now_ns = int64_t{now.tv_sec} * 1000000000 + now.tv_nsec;
  int64_t last_ns = g_last_spaced_stop_ns.load();
  // Two handlers at once (a signal per thread): only the one that moves the time counts.
  if ((last_ns == INT64_MIN || now_ns - last_ns >= kHurrySignalGapNs) &&
      g_last_spaced_stop_ns.compare_exchange_strong(last_ns, now_ns)) {
    g_spaced_stop_generation.fetch_add(1);
  }
  g_handlers_waking.fetch_add(1);
  for (auto& slot : g_wake_fds) {
    const int fd_plus_one = slot.load();
    if (fd_plus_one > 0) WakeFd(fd_plus_one - 1);
  }
  g_handlers_waking.fetch_sub(1);
  errno = saved_errno;
}

}  // namespace

void WakeFd(int fd) {
  const uint64_t one = 1;
  ssize_t n = ::write(fd, &one, sizeof(one));
  (void)n;
}

int RegisterStopWakeFd(int fd) {
  // A child forked while a handler ran on another thread would inherit a count nobody ends.
  static const int at_fork = pthread_atfork(nullptr, nullptr, [] { g_handlers_waking.store(0); });
  (void)at_fork;
  for (int i = 0; i < kMaxSignalWorkers; ++i) {
    int expected = 0;
    if (g_wake_fds[i].compare_exchange_strong(expected, fd + 1)) return i;
  }
  return -1;
}

void UnregisterStopWakeFd(int slot) {
  if (slot < 0 || slot >= kMaxSignalWorkers) return;
  g_wake_fds[slot].store(0);
  // A handler that read the slot before it was cleared is done within microseconds.
  while (g_handlers_waking.load() != 0) sched_yield();
}

uint64_t StopGeneration() { return g_stop_generation.load(); }
uint64_t SpacedStopGeneration() { return g_spaced_stop_generation.load(); }

absl::Time MonotonicNow() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return absl::TimeFromTimespec(now);
}

int PollMillis(absl::Duration timeout) {
  if (timeout <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(
      absl::ToInt64Milliseconds(absl::Ceil(timeout, absl::Milliseconds(1))), 3600 * 1000));
}

absl::Status ValidateShutdownOptions(absl::Duration shutdown_timeout,
                                     const std::optional<absl::Duration>& exit_when_idle,
                                     absl::Duration reconnect_min, absl::Duration reconnect_max) {
  if (shutdown_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("shutdown timeout must not be negative");
  }
  if (exit_when_idle && *exit_when_idle < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("exit-when-idle must not be negative");
  }
  if (reconnect_min <= absl::ZeroDuration() || reconnect_max < reconnect_min) {
    return absl::InvalidArgumentError("reconnect backoff must satisfy 0 < min <= max");
  }
  return absl::OkStatus();
}

}  // namespace internal

void StopWorkersOnSignals() {
  struct sigaction action = {};
  action.sa_handler = internal::OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

}  // namespace jobqueue
