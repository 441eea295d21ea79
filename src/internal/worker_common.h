// What the Postgres and BullMQ workers share: SIGTERM/SIGINT plumbing (the signal handler only
// sets an atomic and writes to the eventfds the running workers registered), poll timeouts and
// the validation of their shutdown options.
#ifndef JOBQUEUE_SRC_INTERNAL_WORKER_COMMON_H_
#define JOBQUEUE_SRC_INTERNAL_WORKER_COMMON_H_

#include <atomic>
#include <cstdint>
#if defined(__GLIBCXX__)
#include <cxxabi.h>
#endif
#include <exception>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "jobqueue/json.h"

namespace jobqueue::internal {

// Adds 1 to an eventfd; a full counter already means "wake up".
void WakeFd(int fd);
// Registers an eventfd to be woken on a stop signal; returns a slot, or -1 when all are taken
// (that worker still stops through its own Stop()).
int RegisterStopWakeFd(int fd);
void UnregisterStopWakeFd(int slot);
// How many SIGTERM/SIGINT arrived (after StopWorkersOnSignals()). A worker remembers the
// value when it is made and stops once it changes, so a worker made after a signal (a test,
// a Python process restarting its worker) is not stopped by that old signal.
uint64_t StopGeneration();
// Like StopGeneration(), but signals within kHurrySignalGap of the last one counted are not
// counted: a launcher that forwards the terminal's Ctrl-C to a process that got it from the
// terminal too must not look like a second Ctrl-C. Two counted signals hurry the stop.
inline constexpr absl::Duration kHurrySignalGap = absl::Seconds(1);
uint64_t SpacedStopGeneration();

// What a worker's Stop() and StopNow() and the stop signals since its creation asked of it.
// Safe from a signal handler (lock-free atomics only).
class StopRequest {
 public:
  void Request() { requested_.store(true); }
  void RequestNow() {
    now_.store(true);
    requested_.store(true);
  }
  bool Wanted() const { return requested_.load() || StopGeneration() != generation_; }
  // StopNow(), or a second stop signal (a second Ctrl-C, kHurrySignalGap or more after the
  // first): hand back running jobs at once instead of waiting out shutdown_timeout.
  bool Hurry() const { return now_.load() || SpacedStopGeneration() - spaced_generation_ >= 2; }

 private:
  std::atomic<bool> requested_{false};
  std::atomic<bool> now_{false};
  const uint64_t generation_ = StopGeneration();
  const uint64_t spaced_generation_ = SpacedStopGeneration();
};

// The longest lock or period a BullMQ worker or consumer sends to Redis: a PX beyond Redis'
// range fails only inside a claim script, after it moved jobs to active.
inline constexpr absl::Duration kMaxRedisPeriod = absl::Hours(24 * 365);

// The clock of a worker's waits and deadlines (idle exit, heartbeats, shutdown): it never
// jumps when the system time is set, as absl::Now() does.
absl::Time MonotonicNow();

// A poll(2) timeout in ms, rounded up, capped at an hour.
int PollMillis(absl::Duration timeout);

// Runs a job handler: exceptions become Internal errors, an empty result becomes "null", and
// a result that is not JSON becomes an InvalidArgument error.
template <typename Handler, typename Context>
absl::StatusOr<std::string> RunHandler(const Handler& handler, Context& context) {
  absl::StatusOr<std::string> result;
  try {
    result = handler(context);
  } catch (const std::exception& e) {
    result = absl::InternalError(absl::StrCat("handler threw: ", e.what()));
#if defined(__GLIBCXX__)
  } catch (abi::__forced_unwind&) {
    // The thread is being ended (pthread_exit or cancellation; Python ends a thread that
    // takes the GIL while the interpreter exits): swallowing this aborts the process.
    throw;
#endif
  } catch (...) {
    result = absl::InternalError("handler threw a non-standard exception");
  }
  if (result.ok()) {
    if (result->empty()) *result = "null";
    if (absl::Status valid = ValidateJson(*result); !valid.ok()) {
      result = absl::InvalidArgumentError(absl::StrCat("handler result is ", valid.message()));
    }
  }
  return result;
}

absl::Status ValidateShutdownOptions(absl::Duration shutdown_timeout,
                                     const std::optional<absl::Duration>& exit_when_idle,
                                     absl::Duration reconnect_min, absl::Duration reconnect_max);

}  // namespace jobqueue::internal

#endif  // JOBQUEUE_SRC_INTERNAL_WORKER_COMMON_H_
