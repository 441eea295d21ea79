// Errors are values: every fallible call returns absl::Status or absl::StatusOr<T>.
//
// Debian's Abseil (20220623) has no status_macros.h, so the two propagation macros live here.
#ifndef JOBQUEUE_STATUS_H_
#define JOBQUEUE_STATUS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define JQ_STATUS_CONCAT_INNER_(a, b) a##b
#define JQ_STATUS_CONCAT_(a, b) JQ_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define JQ_RETURN_IF_ERROR(expr)                                 \
  do {                                                           \
    ::absl::Status jq_status_ = (expr);                          \
    if (ABSL_PREDICT_FALSE(!jq_status_.ok())) return jq_status_; \
  } while (false)

// `JQ_ASSIGN_OR_RETURN(auto x, FnReturningStatusOr());` declares/assigns x or returns the error.
#define JQ_ASSIGN_OR_RETURN(lhs, expr) \
  JQ_ASSIGN_OR_RETURN_IMPL_(JQ_STATUS_CONCAT_(jq_statusor_, __LINE__), lhs, expr)

#define JQ_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)                         \
  auto statusor = (expr);                                                      \
  if (ABSL_PREDICT_FALSE(!statusor.ok())) return std::move(statusor).status(); \
  lhs = *std::move(statusor)

namespace jobqueue {

// Returns `status` with `context: ` prepended to its message, keeping the code.
inline absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  std::string message(context);
  message.append(": ");
  message.append(status.message().data(), status.message().size());
  absl::Status annotated(status.code(), message);
  // Payloads mark kinds of errors (IsLeaseLost reads one): keep them.
  status.ForEachPayload([&](absl::string_view type_url, const absl::Cord& payload) {
    annotated.SetPayload(type_url, payload);
  });
  return annotated;
}

}  // namespace jobqueue

#endif  // JOBQUEUE_STATUS_H_
