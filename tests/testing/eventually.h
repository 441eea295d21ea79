// Polls a condition: a bound on how long a broken component may hang a test, never a speed
// requirement.
#ifndef JOBQUEUE_TESTS_TESTING_EVENTUALLY_H_
#define JOBQUEUE_TESTS_TESTING_EVENTUALLY_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace jobqueue::testing {

template <typename F>
bool Eventually(F done, absl::Duration limit = absl::Seconds(60)) {
  const absl::Time deadline = absl::Now() + limit;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return done();
}

}  // namespace jobqueue::testing

#endif  // JOBQUEUE_TESTS_TESTING_EVENTUALLY_H_
