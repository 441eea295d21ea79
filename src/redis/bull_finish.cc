#include "redis/bull_finish.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "jobqueue/bull_worker.h"
#include "jobqueue/json.h"
#include "jobqueue/retry.h"
#include "jobqueue/status.h"

namespace jobqueue::internal {
namespace {

// What a job's stored opts say about finishing it (read leniently: a foreign client wrote it).
struct FinishPolicy {
  int64_t attempts = 0;
  std::string backoff_type;  // "", "fixed" or "exponential"
  double backoff_delay = 0;
  double backoff_jitter = 0;
  bool lifo = false;
  std::optional<int64_t> stack_trace_limit;
  // removeOnComplete / removeOnFail as BullMQ's keepJobs: count -1 keeps all, 0 none; age in
  // seconds (may be fractional); limit caps the jobs one age trim removes.
  int64_t keep_completed = -1;
  std::optional<double> keep_completed_age;
  int64_t keep_completed_limit = kBullKeepLimit;
  int64_t keep_failed = -1;
  std::optional<double> keep_failed_age;
  int64_t keep_failed_limit = kBullKeepLimit;
};

// Numbers in a foreign producer's opts can be anything JSON holds: convert without undefined
// behaviour, into the range that makes sense.
int64_t ToInt64In(double n, int64_t lo, int64_t hi) {
  if (!(n > static_cast<double>(lo))) return lo;  // also NaN
  if (n >= static_cast<double>(hi)) return hi;
  return static_cast<int64_t>(n);
}
constexpr int64_t kMaxCount = int64_t{1} << 40;

// A keepJobs count: any negative keeps all (as Node, which trims only counts above 0).
int64_t KeepCount(double n) { return n < 0 ? -1 : ToInt64In(n, 0, kMaxCount); }

void ReadKeep(simdjson::dom::element value, int64_t* count, std::optional<double>* age,
              int64_t* limit) {
  if (value.is_bool()) {
    *count = value.get_bool().value() ? 0 : -1;
  } else if (value.is_number()) {
    *count = KeepCount(value.get_double().value());
  } else if (value.is_object()) {
    simdjson::dom::object keep = value.get_object().value();
    double n;
    if (keep["count"].get_double().get(n) == simdjson::SUCCESS) *count = KeepCount(n);
    if (keep["age"].get_double().get(n) == simdjson::SUCCESS && std::isfinite(n)) *age = n;
    // Negative: no limit, as Redis reads a negative LIMIT count.
    if (keep["limit"].get_double().get(n) == simdjson::SUCCESS) {
      *limit = n < 0 ? -1 : ToInt64In(n, 0, kMaxCount);
    }
  }
}

FinishPolicy ReadPolicy(simdjson::dom::parser& parser, const std::string& opts_json) {
  FinishPolicy policy;
  simdjson::dom::element root;
  if (parser.parse(opts_json).get(root) != simdjson::SUCCESS || !root.is_object()) return policy;
  simdjson::dom::object opts = root.get_object().value();
  double n;
  if (opts["attempts"].get_double().get(n) == simdjson::SUCCESS) {
    policy.attempts = ToInt64In(n, 0, kMaxCount);
  }
  if (opts["stackTraceLimit"].get_double().get(n) == simdjson::SUCCESS) {
    policy.stack_trace_limit = ToInt64In(n, 0, kMaxCount);
  }
  bool lifo;
  if (opts["lifo"].get_bool().get(lifo) == simdjson::SUCCESS) policy.lifo = lifo;
  simdjson::dom::element backoff;
  if (opts["backoff"].get(backoff) == simdjson::SUCCESS) {
    if (backoff.is_number()) {
      policy.backoff_type = "fixed";
      policy.backoff_delay = backoff.get_double().value();
    } else if (backoff.is_object()) {
      std::string_view type;
      if (backoff["type"].get_string().get(type) == simdjson::SUCCESS) {
        policy.backoff_type = std::string(type);
      }
      if (backoff["delay"].get_double().get(n) == simdjson::SUCCESS) policy.backoff_delay = n;
      if (backoff["jitter"].get_double().get(n) == simdjson::SUCCESS) policy.backoff_jitter = n;
    }
  }
  simdjson::dom::element keep;
  if (opts["removeOnComplete"].get(keep) == simdjson::SUCCESS) {
    ReadKeep(keep, &policy.keep_completed, &policy.keep_completed_age,
             &policy.keep_completed_limit);
  }
  if (opts["removeOnFail"].get(keep) == simdjson::SUCCESS) {
    ReadKeep(keep, &policy.keep_failed, &policy.keep_failed_age, &policy.keep_failed_limit);
  }
  return policy;
}

// BullMQ's built-in backoff strategies, for attempt number `attempts_made` (1-based).
int64_t BackoffMillis(const FinishPolicy& policy, int64_t attempts_made, std::mt19937_64& rng) {
  double delay;
  if (policy.backoff_type == "fixed") {
    delay = policy.backoff_delay;
  } else if (policy.backoff_type == "exponential") {
    delay =
        std::round(std::pow(2.0, static_cast<double>(attempts_made - 1)) * policy.backoff_delay);
  } else {
    return 0;  // none (or a custom strategy we cannot run): retry at once, as Node does
  }
  if (policy.backoff_jitter > 0) {
    const double min_delay = delay * (1 - policy.backoff_jitter);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    delay = std::floor(uniform(rng) * delay * policy.backoff_jitter + min_delay);
  }
  // 2^attempts overflows soon: cap as the Postgres side does (kMaxRetryDelay).
  return ToInt64In(delay, 0, absl::ToInt64Milliseconds(kMaxRetryDelay));
}

// The job's stacktrace list with `entry` appended, trimmed as Node's updateStacktrace does.
std::string AppendStacktrace(simdjson::dom::parser& parser, const BullJob& job,
                             const FinishPolicy& policy, const std::string& entry) {
  std::vector<std::string> lines;
  auto it = job.fields.find("stacktrace");
  simdjson::dom::array previous;
  if (it != job.fields.end() &&
      parser.parse(it->second).get_array().get(previous) == simdjson::SUCCESS) {
    for (simdjson::dom::element line : previous) {
      std::string_view text;
      if (line.get_string().get(text) == simdjson::SUCCESS) lines.emplace_back(text);
    }
  }
  lines.push_back(entry);
  if (policy.stack_trace_limit) {
    const size_t keep = static_cast<size_t>(std::max<int64_t>(*policy.stack_trace_limit, 0));
    if (lines.size() > keep) lines.erase(lines.begin(), lines.end() - keep);
  }
  std::string json = "[";
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) json += ",";
    json += JsonQuote(lines[i]);
  }
  return json + "]";
}

}  // namespace

BullFinish BullRelease(const std::string& id, const std::string& token, bool started) {
  BullFinish f;
  f.id = id;
  f.token = token;
  f.kind = "release";
  if (!started) f.extra = "unstarted";
  return f;
}

BullFinish BuildBullFinish(const BullJob& job, const std::string& token,
                           const absl::StatusOr<std::string>& result, absl::string_view queue,
                           simdjson::dom::parser& parser, std::mt19937_64& rng) {
  const FinishPolicy policy = ReadPolicy(parser, job.opts_json);
  BullFinish f;
  f.id = job.id;
  f.token = token;
  if (result.ok()) {
    f.kind = "completed";
    f.value = *result;
    f.keep_count = policy.keep_completed;
    f.keep_age = policy.keep_completed_age;
    f.keep_limit = policy.keep_completed_limit;
    return f;
  }
  f.value = std::string(result.status().message());
  const auto given = result.status().GetPayload(kBullStacktracePayload);
  f.stacktrace = AppendStacktrace(
      parser, job, policy,
      given ? std::string(*given)
            : absl::StrCat("Error: ", f.value, "\n    at ", queue, " (libjobqueue C++ worker)"));
  const bool unrecoverable = result.status().GetPayload(kBullUnrecoverablePayload).has_value();
  if (!unrecoverable && job.attempts_made + 1 < policy.attempts) {
    const int64_t delay = BackoffMillis(policy, job.attempts_made + 1, rng);
    if (delay > 0) {
      f.kind = "delay";
      f.extra = absl::StrCat(delay);
    } else {
      f.kind = "retry";
      f.extra.assign(1, policy.lifo ? '1' : '0');
    }
    return f;
  }
  f.kind = "failed";
  f.keep_count = policy.keep_failed;
  f.keep_age = policy.keep_failed_age;
  f.keep_limit = policy.keep_failed_limit;
  f.extra = absl::StrCat(policy.attempts);
  return f;
}

std::optional<absl::Status> BullDeferredFailure(const BullJob& job) {
  auto deferred = job.fields.find("defa");
  if (deferred == job.fields.end()) return std::nullopt;
  return BullUnrecoverableError(deferred->second);
}

std::string BullTokenPrefix() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x", rd(), rd());
}

absl::string_view BullFinishRefusal(int64_t code) {
  switch (code) {
    case -2:
      return "lock expired";
    case -6:
      return "lock taken by another worker";
    case -3:
      return "no longer active";
    default:
      return "job is gone";
  }
}

std::vector<std::string> BullStepCommand(const BullKeys& keys, const BullStepRequest& request,
                                         const std::vector<BullFinish>& finishes) {
  // One clock reading for the step, in whole ms, so a finish time maps to the same ms in
  // every step: finishedOn = now - (now - finished) is exactly the finish's ms.
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  std::vector<std::string> args = {keys.base(),
                                   request.server_time ? std::string() : absl::StrCat(now_ms),
                                   absl::StrCat(request.want),
                                   absl::StrCat(request.lock_ms),
                                   request.worker_name,
                                   request.token_prefix,
                                   request.limiter_max > 0 ? absl::StrCat(request.limiter_max) : "",
                                   request.limiter_max > 0 ? absl::StrCat(request.limiter_ms) : "",
                                   absl::StrCat(finishes.size())};
  args.reserve(args.size() + finishes.size() * 10);
  for (const BullFinish& f : finishes) {
    args.push_back(f.id);
    args.push_back(f.token);
    args.push_back(f.kind);
    args.push_back(f.value);
    args.push_back(f.stacktrace);
    args.push_back(absl::StrCat(f.keep_count));
    args.push_back(f.keep_age ? absl::StrFormat("%.17g", *f.keep_age) : "");
    args.push_back(f.extra);
    // Milliseconds before the step: the script subtracts them from its own clock, which may
    // be Redis's.
    args.push_back(absl::StrCat(std::max<int64_t>(0, now_ms - absl::ToUnixMillis(f.finished_at))));
    args.push_back(absl::StrCat(f.keep_limit));
  }
  return EvalSha(k_worker_step, keys.worker_keys(), std::move(args));
}

namespace {

void ParseClaims(std::vector<RedisReply>& entries, std::vector<BullClaim>& out) {
  for (RedisReply& entry : entries) {
    if (entry.elements.size() != 3) continue;
    out.push_back(BullClaim{BullJobFromHash(entry.elements[0].str, entry.elements[2].elements),
                            std::move(entry.elements[1].str), absl::Time()});
  }
}

}  // namespace

absl::StatusOr<BullStepReply> ParseBullStepReply(RedisReply reply, size_t finish_count) {
  JQ_RETURN_IF_ERROR(reply.AsStatus("running the worker step script"));
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 4 ||
      reply.elements[1].type != RedisReply::Type::kArray) {
    return absl::InternalError("worker step script returned an unexpected reply");
  }
  BullStepReply out;
  const std::vector<RedisReply>& codes = reply.elements[0].elements;
  for (size_t i = 0; i < finish_count; ++i) {
    out.codes.push_back(i < codes.size() ? codes[i].integer : -1);
  }
  ParseClaims(reply.elements[1].elements, out.claimed);
  out.rate_limited_ms = reply.elements[2].integer;
  out.next_delayed_at_ms = reply.elements[3].integer;
  return out;
}

absl::StatusOr<BullStepReply> RunBullStep(RedisConnection& conn, const BullKeys& keys,
                                          const BullStepRequest& request,
                                          const std::vector<BullFinish>& finishes) {
  JQ_ASSIGN_OR_RETURN(RedisReply reply, RunScript(conn, BullStepCommand(keys, request, finishes)));
  return ParseBullStepReply(std::move(reply), finishes.size());
}

absl::StatusOr<std::vector<BullClaim>> AdoptBullClaims(
    RedisConnection& conn, const BullKeys& keys, const std::vector<std::string>& step_prefixes,
    int64_t lock_ms) {
  std::vector<std::string> args = {keys.base(), absl::StrCat(lock_ms)};
  args.insert(args.end(), step_prefixes.begin(), step_prefixes.end());
  JQ_ASSIGN_OR_RETURN(RedisReply reply, RunScript(conn, EvalSha(k_adopt_claims, keys.worker_keys(),
                                                                std::move(args))));
  JQ_RETURN_IF_ERROR(reply.AsStatus("adopting claims whose replies were lost"));
  if (reply.type != RedisReply::Type::kArray) {
    return absl::InternalError("adopt_claims script returned an unexpected reply");
  }
  std::vector<BullClaim> claims;
  ParseClaims(reply.elements, claims);
  return claims;
}

}  // namespace jobqueue::internal
