// IsOk() and StatusIs() for absl::Status and absl::StatusOr (Debian's Abseil has none).
#ifndef JOBQUEUE_TESTS_TESTING_STATUS_MATCHERS_H_
#define JOBQUEUE_TESTS_TESTING_STATUS_MATCHERS_H_

#include <gmock/gmock.h>

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "jobqueue/status.h"

namespace jobqueue::testing {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& status = GetStatus(arg);
  if (!status.ok()) *result_listener << "status is " << status;
  return status.ok();
}

MATCHER_P(StatusIs, code,
          std::string("has code ") +
              absl::StatusCodeToString(static_cast<absl::StatusCode>(code))) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           std::string("has code ") +
               absl::StatusCodeToString(static_cast<absl::StatusCode>(code))) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

}  // namespace jobqueue::testing

#define JQ_ASSERT_OK_AND_ASSIGN(lhs, expr) \
  JQ_ASSERT_OK_AND_ASSIGN_IMPL_(JQ_STATUS_CONCAT_(jq_test_sor_, __LINE__), lhs, expr)
#define JQ_ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                  \
  ASSERT_TRUE(statusor.ok()) << statusor.status();         \
  lhs = std::move(statusor).value()

#endif  // JOBQUEUE_TESTS_TESTING_STATUS_MATCHERS_H_
