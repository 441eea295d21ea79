#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "jobqueue/clock.h"
#include "jobqueue/service.h"
#include "testing/status_matchers.h"

namespace jobqueue {
namespace {

using ::jobqueue::testing::IsOk;
using ::jobqueue::testing::StatusIs;

TEST(ClockTest, ManualClockMovesOnlyWhenTold) {
  ManualClock clock(absl::FromUnixSeconds(1000));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1000));
  clock.Advance(absl::Seconds(30));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1030));
  clock.Set(absl::FromUnixSeconds(5));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(5));
}

TEST(ClockTest, RealClockIsNow) {
  const absl::Time before = absl::Now();
  const absl::Time now = RealClock().Now();
  EXPECT_GE(now, before);
  EXPECT_LE(now, absl::Now());
}

class CountingService final : public Service {
 public:
  explicit CountingService(absl::Duration interval) : Service("counting", interval) {}
  ~CountingService() override { Stop(); }
  int RunOnce() { return ++count_; }
  absl::Status Tick() override {
    if (RunOnce() == 2) {
      second_pass_.Notify();
      return absl::UnavailableError("second pass fails");
    }
    return absl::OkStatus();
  }
  std::atomic<int> count_{0};
  absl::Notification second_pass_;
};

TEST(ServiceTest, RunsAtOnceThenOnTrigger) {
  // An hour-long interval: a second pass can only come from Trigger().
  CountingService service(absl::Hours(1));
  ASSERT_THAT(service.Start(), IsOk());
  EXPECT_TRUE(service.running());
  EXPECT_THAT(service.Start(), StatusIs(absl::StatusCode::kFailedPrecondition));
  service.Trigger();
  ASSERT_TRUE(service.second_pass_.WaitForNotificationWithTimeout(absl::Seconds(30)));
  service.Stop();
  EXPECT_FALSE(service.running());
  EXPECT_EQ(service.passes(), 2);
  EXPECT_EQ(service.failed_passes(), 1);
  service.Stop();  // idempotent
}

TEST(ServiceTest, StopIsPromptWithLongInterval) {
  CountingService service(absl::Hours(1));
  ASSERT_THAT(service.Start(), IsOk());
  service.Stop();  // would hang for an hour if the wait ignored stop requests
  EXPECT_GE(service.passes(), 1);
  ASSERT_THAT(service.Start(), IsOk()) << "a stopped service can start again";
  service.Stop();
}

// A zero interval would sweep the database in a tight loop.
TEST(ServiceTest, NonPositiveIntervalIsRefused) {
  for (absl::Duration interval : {absl::ZeroDuration(), absl::Seconds(-1)}) {
    CountingService service(interval);
    EXPECT_THAT(service.Start(), StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_FALSE(service.running());
  }
}

// Two threads stopping at once: both return once the loop is gone, neither joins twice.
TEST(ServiceTest, ConcurrentStopsAreSafe) {
  CountingService service(absl::Hours(1));
  ASSERT_THAT(service.Start(), IsOk());
  std::thread other([&] { service.Stop(); });
  service.Stop();
  other.join();
  EXPECT_FALSE(service.running());
}

}  // namespace
}  // namespace jobqueue
