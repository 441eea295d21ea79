// A background service that runs one pass of work every interval on its own thread: the
// shared start/stop base of the Postgres maintenance services (reaper, retention). BullMQ's
// stalled check runs inside BullWorker.
//
// Subclasses implement Tick() by calling their own RunOnce(), which returns counts and is
// what tests call directly, so no test has to sleep for a service to act.
#ifndef JOBQUEUE_SERVICE_H_
#define JOBQUEUE_SERVICE_H_

#include <cstdint>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace jobqueue {

class Service {
 public:
  Service(std::string name, absl::Duration interval);
  virtual ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Starts the loop; the first pass runs at once. FailedPrecondition when already running;
  // InvalidArgument when the interval is not positive.
  absl::Status Start();
  // Stops the loop, waiting for a pass in progress to end. Idempotent. Subclasses must call it
  // in their destructor, before their members go away.
  void Stop();
  // Wakes the loop for an extra pass now.
  void Trigger();

  bool running() const;
  const std::string& name() const { return name_; }
  absl::Duration interval() const { return interval_; }
  // Passes run and passes that returned an error, since construction.
  int64_t passes() const;
  int64_t failed_passes() const;

 protected:
  // One pass of work. An error is logged and the loop goes on at the next interval.
  virtual absl::Status Tick() = 0;

 private:
  void Loop();

  const std::string name_;
  const absl::Duration interval_;
  mutable absl::Mutex mu_;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool triggered_ ABSL_GUARDED_BY(mu_) = false;
  int64_t passes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failed_passes_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace jobqueue

#endif  // JOBQUEUE_SERVICE_H_
