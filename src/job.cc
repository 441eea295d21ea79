#include "jobqueue/job.h"

#include "absl/strings/str_cat.h"
#include "jobqueue/json.h"

namespace jobqueue {

absl::string_view JobStatusName(JobStatus status) {
  switch (status) {
    case JobStatus::kPending:
      return "pending";
    case JobStatus::kProcessing:
      return "processing";
    case JobStatus::kCompleted:
      return "completed";
    case JobStatus::kFailed:
      return "failed";
    case JobStatus::kCancelled:
      return "cancelled";
  }
  return "pending";
}

namespace {

std::string JsonTime(std::optional<absl::Time> time) {
  if (!time) return "null";
  return JsonQuote(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", *time, absl::UTCTimeZone()));
}

std::string JsonTextOrNull(const std::string& text) {
  return text.empty() ? "null" : JsonQuote(text);
}

}  // namespace

std::string JobToJson(const Job& job) {
  return absl::StrCat(
      "{\"id\":", job.id, ",\"queue\":", JsonQuote(job.queue),
      ",\"job_type\":", JsonQuote(job.job_type), ",\"payload\":", job.payload_json,
      ",\"status\":", JsonQuote(JobStatusName(job.status)), ",\"priority\":", job.priority,
      ",\"run_at\":", JsonTime(job.run_at), ",\"attempts\":", job.attempts,
      ",\"max_attempts\":", job.max_attempts, ",\"locked_by\":", JsonTextOrNull(job.locked_by),
      ",\"locked_at\":", JsonTime(job.locked_at), ",\"heartbeat_at\":", JsonTime(job.heartbeat_at),
      ",\"last_error\":", JsonTextOrNull(job.last_error),
      ",\"result\":", job.result_json.value_or("null"),
      ",\"dedupe_key\":", JsonTextOrNull(job.dedupe_key),
      ",\"created_at\":", JsonTime(job.created_at), ",\"updated_at\":", JsonTime(job.updated_at),
      ",\"finished_at\":", JsonTime(job.finished_at), "}");
}

absl::StatusOr<JobStatus> ParseJobStatus(absl::string_view name) {
  for (JobStatus status : {JobStatus::kPending, JobStatus::kProcessing, JobStatus::kCompleted,
                           JobStatus::kFailed, JobStatus::kCancelled}) {
    if (name == JobStatusName(status)) return status;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown job status \"", name.substr(0, 32),
                   "\" (expected pending, processing, completed, failed or cancelled)"));
}

absl::Status ValidateName(absl::string_view what, absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " name is empty"));
  if (name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " name is ", name.size(), " bytes; the limit is ", kMaxNameLength));
  }
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  for (char c : name) {
    if (!alnum(c) && c != '_' && c != '-' && c != '.' && c != ':') {
      // Quote the name only as far as it is printable ASCII; it may be hostile input.
      std::string shown;
      for (char d : name.substr(0, 40)) shown.push_back((d >= 0x20 && d < 0x7f) ? d : '?');
      return absl::InvalidArgumentError(
          absl::StrCat(what, " name \"", shown, "\" has a character outside [A-Za-z0-9_.:-]"));
    }
  }
  if (!alnum(name[0])) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " name must start with a letter or digit"));
  }
  return absl::OkStatus();
}

namespace {
constexpr absl::string_view kLeaseLostPayload = "jobqueue/lease-lost";
}  // namespace

absl::Status LeaseLostError(absl::string_view message) {
  absl::Status status(kLeaseLostCode, message);
  status.SetPayload(kLeaseLostPayload, absl::Cord("1"));
  return status;
}

bool IsLeaseLost(const absl::Status& status) {
  return status.code() == kLeaseLostCode && status.GetPayload(kLeaseLostPayload).has_value();
}

}  // namespace jobqueue
