#include "jobqueue/bull_queue.h"

#include <simdjson.h>

#include <algorithm>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "jobqueue/json.h"
#include "jobqueue/status.h"
#include "redis/bull_internal.h"

namespace jobqueue {
namespace {

// BullMQ's own limit (PRIORITY_LIMIT, 2^21 - 1): priority * 2^32 must stay exact in a Lua
// double. Node refuses 2097152.
constexpr int64_t kMaxPriority = (int64_t{1} << 21) - 1;
constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1
constexpr size_t kMaxDataBytes = 64 * 1024 * 1024;
constexpr size_t kJobsPerAddCall = 256;
constexpr size_t kBytesPerAddCall = 4 * 1024 * 1024;
// Custom job ids and the ids the administration calls take: 1..kMaxJobIdBytes bytes.
constexpr size_t kMaxJobIdBytes = 1024;
// Most jobs one clean script call reads or removes (Node's Queue.clean removes 10,000 a call).
constexpr int64_t kCleanStep = 10000;

// The queue's own keys under <prefix>:<queue>:, which no job id may name.
constexpr absl::string_view kQueueKeys[] = {
    "wait",    "active",           "paused",  "meta",         "events",    "stalled", "limiter",
    "delayed", "prioritized",      "pc",      "marker",       "completed", "failed",  "id",
    "repeat",  "waiting-children", "metrics", "stalled-check"};

absl::Status ValidateJobId(absl::string_view id) {
  if (id.empty() || id.size() > kMaxJobIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("job id must be 1..", kMaxJobIdBytes, " bytes"));
  }
  // Remove("meta") would delete the queue's meta hash (un-pausing it), GetJob("wait") read a
  // list as a job.
  for (absl::string_view reserved : kQueueKeys) {
    if (id == reserved) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", id, "\" is the name of a queue key, not a job id"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateFinishedState(absl::string_view state) {
  if (state != "failed" && state != "completed") {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot retry state \"", state, "\"; use failed or completed"));
  }
  return absl::OkStatus();
}

absl::Status BadOption(absl::string_view key, absl::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat("job option \"", key, "\" must be ", expected));
}

absl::Status CheckRemoveOn(absl::string_view key, simdjson::dom::element value) {
  if (value.is_bool()) return absl::OkStatus();
  if (value.is_int64() && value.get_int64().value() >= 0) return absl::OkStatus();
  if (value.is_object()) {
    const simdjson::dom::object fields = value.get_object().value();
    for (auto [k, v] : fields) {
      // age is in seconds and may be fractional, as in Node's KeepJobs.
      const bool ok = k == "age" ? v.is_number() && v.get_double().value() >= 0
                                 : (k == "count" || k == "limit") && v.is_int64();
      if (!ok) return BadOption(key, "true/false, a count, or {age, count, limit}");
    }
    return absl::OkStatus();
  }
  return BadOption(key, "true/false, a count, or {age, count, limit}");
}

}  // namespace

absl::Status BullQueueOptions::Validate() const {
  if (prefix.empty() || prefix.find_first_of(" \t\r\n") != std::string::npos) {
    return absl::InvalidArgumentError("BullMQ prefix must be non-empty without whitespace");
  }
  if (pool_size < 1 || pool_size > 1000) {
    return absl::InvalidArgumentError("BullMQ pool_size must be 1..1000");
  }
  return redis.Validate();
}

absl::StatusOr<BullJobOptions> ParseBullJobOptions(absl::string_view json) {
  BullJobOptions out;
  if (json.empty()) return out;
  // One parser per thread: allocating it costs more than parsing options.
  thread_local simdjson::dom::parser parser;
  const simdjson::padded_string padded(json.data(), json.size());
  simdjson::dom::element root;
  if (auto error = parser.parse(padded).get(root); error != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(
        absl::StrCat("job options are not valid JSON: ", simdjson::error_message(error)));
  }
  if (!root.is_object()) return absl::InvalidArgumentError("job options must be a JSON object");
  const simdjson::dom::object options = root.get_object().value();
  for (auto [key_view, value] : options) {
    const std::string key(key_view);
    if (key == "jobId") {
      if (!value.is_string()) return BadOption(key, "a string");
      out.job_id = std::string(value.get_string().value());
      // The length limit is the administration calls' (ValidateJobId): a longer id could be
      // added but not read, retried or removed from here.
      if (out.job_id.empty() || out.job_id.size() > kMaxJobIdBytes ||
          out.job_id.find(':') != std::string::npos) {
        return BadOption(key, absl::StrCat("1..", kMaxJobIdBytes, " bytes without ':'"));
      }
      // The job hash lives at <prefix>:<queue>:<id>: an id naming one of the queue's own keys
      // would turn that key into a hash and break every script that touches it.
      for (absl::string_view reserved : kQueueKeys) {
        if (out.job_id == reserved) {
          return BadOption(key, absl::StrCat("not \"", reserved, "\", the name of a queue key"));
        }
      }
      int64_t numeric;
      if (absl::SimpleAtoi(out.job_id, &numeric)) {
        // BullMQ refuses integer custom ids: they would collide with generated ones.
        return BadOption(key, "not an integer (those collide with generated ids)");
      }
    } else if (key == "delay" || key == "timestamp") {
      if (!value.is_number()) return BadOption(key, "a number of milliseconds");
      const double ms = value.get_double().value();
      if (ms < 0) return BadOption(key, "non-negative");
      // Past JavaScript's largest safe integer Node could not read it back.
      if (ms > kMaxSafeInteger) return BadOption(key, "at most 9007199254740991");
      if (key == "delay") {
        out.delay_ms = static_cast<int64_t>(ms);
      } else if (ms >= 1) {  // Node takes a falsy timestamp (0) as "now"
        out.timestamp_ms = static_cast<int64_t>(ms);
      }
    } else if (key == "priority") {
      if (!value.is_int64()) return BadOption(key, "an integer");
      out.priority = value.get_int64().value();
      if (out.priority < 0 || out.priority > kMaxPriority) {
        return BadOption(key, absl::StrCat("0..", kMaxPriority));
      }
    } else if (key == "lifo") {
      if (!value.is_bool()) return BadOption(key, "true or false");
      out.lifo = value.get_bool().value();
    } else if (key == "attempts" || key == "stackTraceLimit" || key == "keepLogs" ||
               key == "sizeLimit") {
      if (!value.is_int64() || value.get_int64().value() < (key == "attempts" ? 1 : 0)) {
        return BadOption(key, key == "attempts" ? "an integer >= 1" : "a non-negative integer");
      }
      if (key == "sizeLimit") out.size_limit = value.get_int64().value();
    } else if (key == "backoff") {
      if (value.is_number()) {
        if (value.get_double().value() < 0) return BadOption(key, "non-negative");
        continue;
      }
      if (!value.is_object()) return BadOption(key, "a number or {type, delay}");
      const simdjson::dom::object backoff = value.get_object().value();
      for (auto [k, v] : backoff) {
        if (k == "type") {
          if (!v.is_string() ||
              (v.get_string().value() != "fixed" && v.get_string().value() != "exponential")) {
            return BadOption("backoff.type", "\"fixed\" or \"exponential\"");
          }
        } else if (k == "delay") {
          if (!v.is_number() || v.get_double().value() < 0) {
            return BadOption("backoff.delay", "a non-negative number");
          }
        } else if (k == "jitter") {
          // Node: "Jitter should be between 0 and 1".
          if (!v.is_number() || v.get_double().value() < 0 || v.get_double().value() > 1) {
            return BadOption("backoff.jitter", "a number from 0 to 1");
          }
        } else {
          return BadOption("backoff", "an object with type, delay and jitter only");
        }
      }
    } else if (key == "removeOnComplete" || key == "removeOnFail") {
      JQ_RETURN_IF_ERROR(CheckRemoveOn(key, value));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unsupported job option \"", key,
          "\"; supported: jobId, delay, priority, lifo, attempts, backoff, removeOnComplete, "
          "removeOnFail, stackTraceLimit, keepLogs, sizeLimit, timestamp"));
    }
  }
  out.json = std::string(json);
  return out;
}

BullQueue::BullQueue(std::string name, BullQueueOptions options, std::unique_ptr<RedisPool> pool)
    : name_(std::move(name)), options_(std::move(options)), pool_(std::move(pool)) {}

BullQueue::~BullQueue() = default;

absl::StatusOr<std::unique_ptr<BullQueue>> BullQueue::Open(const Secret& redis_url,
                                                           absl::string_view name,
                                                           const BullQueueOptions& options) {
  JQ_RETURN_IF_ERROR(internal::ValidateBullQueueName(name));
  JQ_RETURN_IF_ERROR(options.Validate());
  auto pool = std::make_unique<RedisPool>(redis_url, options.redis, options.pool_size);
  {
    // Fail fast on a wrong URL, password or certificate.
    JQ_ASSIGN_OR_RETURN(RedisPool::Handle conn, pool->Acquire());
  }
  return std::unique_ptr<BullQueue>(new BullQueue(std::string(name), options, std::move(pool)));
}

std::string BullQueue::Key(absl::string_view suffix) const {
  return absl::StrCat(options_.prefix, ":", name_, ":", suffix);
}

std::vector<std::string> BullQueue::AddCommand(const NewBullJob* jobs, size_t count,
                                               int64_t timestamp_ms) const {
  std::vector<std::string> args = {Key(""), absl::StrCat(timestamp_ms)};
  args.reserve(2 + 7 * count);
  for (size_t i = 0; i < count; ++i) {
    const NewBullJob& job = jobs[i];
    const BullJobOptions& o = job.options;
    args.insert(args.end(), {o.job_id, job.name, job.data_json, o.json, absl::StrCat(o.delay_ms),
                             absl::StrCat(o.priority), o.lifo ? "1" : "0"});
  }
  return internal::EvalSha(internal::k_add_job,
                           {Key("wait"), Key("meta"), Key("id"), Key("delayed"), Key("prioritized"),
                            Key("pc"), Key("marker"), Key("events"), Key("active")},
                           std::move(args));
}

absl::StatusOr<std::vector<RedisReply>> BullQueue::RunScripts(
    const std::vector<std::vector<std::string>>& commands) {
  JQ_ASSIGN_OR_RETURN(RedisPool::Handle conn, pool_->Acquire());
  return internal::RunScripts(*conn, commands);
}

absl::StatusOr<std::string> BullQueue::Add(absl::string_view name, absl::string_view data_json,
                                           const BullJobOptions& options) {
  JQ_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                      AddBulk({NewBullJob{std::string(name), std::string(data_json), options}}));
  return ids.front();
}

absl::Status BullQueue::NoSuchJob(absl::string_view id) const {
  return absl::NotFoundError(absl::StrCat("no job ", id, " in queue ", name_));
}

absl::StatusOr<std::vector<std::string>> BullQueue::AddBulk(const std::vector<NewBullJob>& jobs) {
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  std::vector<std::vector<std::string>> commands;
  commands.reserve(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    const NewBullJob& job = jobs[i];
    const std::string where = absl::StrCat("job ", i, " (", job.name, ")");
    if (job.name.empty() || job.name.size() > 1024) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": name must be 1..1024 bytes"));
    }
    if (job.data_json.size() > kMaxDataBytes) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": data is ", job.data_json.size(),
                                                     " bytes; the limit is ", kMaxDataBytes));
    }
    if (absl::Status s = ValidateJson(job.data_json); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": data is ", s.message()));
    }
    absl::StatusOr<BullJobOptions> parsed = ParseBullJobOptions(job.options.json);
    if (!parsed.ok()) return Annotate(parsed.status(), where);
    // As Node's validateOptions: the data's JSON text over opts.sizeLimit bytes is refused.
    const int64_t size_limit = parsed->size_limit;
    if (size_limit > 0 && job.data_json.size() > static_cast<uint64_t>(size_limit)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the size of job ", job.name, " exceeds the limit ", size_limit,
                       " bytes (opts.sizeLimit; its data is ", job.data_json.size(), " bytes)"));
    }
    // The fields are what the script acts on, the JSON what Node reads: they must agree.
    const BullJobOptions& o = job.options;
    if (parsed->job_id != o.job_id || parsed->delay_ms != o.delay_ms ||
        parsed->priority != o.priority || parsed->lifo != o.lifo ||
        parsed->timestamp_ms != o.timestamp_ms) {
      return absl::InvalidArgumentError(
          absl::StrCat(where,
                       ": options fields disagree with options.json (jobId, delay, "
                       "priority, lifo, timestamp); build them with ParseBullJobOptions"));
    }
  }
  // Several jobs per script call share its fixed cost; chunks keep each call short so Redis
  // keeps serving workers in between. A call's jobs share one timestamp: a job with its own
  // opts.timestamp starts a new call.
  auto timestamp = [&](size_t i) { return jobs[i].options.timestamp_ms.value_or(now_ms); };
  for (size_t begin = 0; begin < jobs.size();) {
    size_t end = begin, bytes = 0;
    while (end < jobs.size() && end - begin < kJobsPerAddCall &&
           (end == begin || (bytes + jobs[end].data_json.size() <= kBytesPerAddCall &&
                             timestamp(end) == timestamp(begin)))) {
      bytes += jobs[end].data_json.size();
      ++end;
    }
    commands.push_back(AddCommand(&jobs[begin], end - begin, timestamp(begin)));
    begin = end;
  }
  JQ_ASSIGN_OR_RETURN(std::vector<RedisReply> replies, RunScripts(commands));
  std::vector<std::string> ids;
  ids.reserve(jobs.size());
  for (const RedisReply& reply : replies) {
    JQ_RETURN_IF_ERROR(reply.AsStatus("adding BullMQ jobs"));
    if (reply.type != RedisReply::Type::kArray || reply.elements.size() % 2 != 0) {
      return absl::InternalError("add-job script returned an unexpected reply");
    }
    for (size_t i = 0; i < reply.elements.size(); i += 2) ids.push_back(reply.elements[i].str);
  }
  if (ids.size() != jobs.size()) {
    return absl::InternalError("add-job script returned fewer ids than jobs");
  }
  return ids;
}

absl::StatusOr<BullJob> BullQueue::GetJob(absl::string_view id) {
  JQ_RETURN_IF_ERROR(ValidateJobId(id));
  JQ_ASSIGN_OR_RETURN(RedisPool::Handle conn, pool_->Acquire());
  JQ_ASSIGN_OR_RETURN(RedisReply reply, conn->Command({"HGETALL", Key(id)}));
  JQ_RETURN_IF_ERROR(reply.AsStatus("reading a BullMQ job"));
  if (reply.elements.empty()) return NoSuchJob(id);
  return internal::BullJobFromHash(id, reply.elements);
}

absl::StatusOr<RedisReply> BullQueue::RunAdminScript(const internal::LuaScript& script,
                                                     const std::vector<std::string>& extra_keys,
                                                     std::vector<std::string> args,
                                                     absl::string_view context) {
  const internal::BullKeys keys(options_.prefix, name_);
  std::vector<std::string> script_keys = keys.worker_keys();
  script_keys.insert(script_keys.end(), extra_keys.begin(), extra_keys.end());
  JQ_ASSIGN_OR_RETURN(RedisPool::Handle conn, pool_->Acquire());
  JQ_ASSIGN_OR_RETURN(
      RedisReply reply,
      internal::RunScript(*conn, internal::EvalSha(script, script_keys, std::move(args))));
  JQ_RETURN_IF_ERROR(reply.AsStatus(context));
  return reply;
}

absl::Status BullQueue::SetPaused(bool paused) {
  // Resuming moves a legacy "paused" list back to wait 7000 jobs a call: call again until none
  // remain, as Node's pause(false) does, with one "resumed" event.
  bool first = true;
  while (true) {
    JQ_ASSIGN_OR_RETURN(RedisReply reply,
                        RunAdminScript(internal::k_pause, {Key("paused")},
                                       {paused ? "paused" : "resumed", first ? "1" : "0"},
                                       paused ? "pausing the queue" : "resuming the queue"));
    first = false;
    if (paused || reply.integer <= 0) return absl::OkStatus();
  }
}

absl::StatusOr<std::vector<std::string>> BullQueue::Clean(absl::string_view state,
                                                          absl::Duration grace, int64_t limit) {
  if (state != "completed" && state != "failed" && state != "delayed" && state != "prioritized" &&
      state != "wait" && state != "paused") {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot clean state \"", state,
                     "\"; use completed, failed, delayed, prioritized, wait or paused"));
  }
  if (grace < absl::ZeroDuration() || limit < 0) {
    return absl::InvalidArgumentError("clean needs a non-negative grace period and limit");
  }
  const int64_t cutoff = absl::ToUnixMillis(absl::Now() - grace);
  // Bounded steps, as Node's Queue.clean (at most 10,000 per call): each script call reads
  // and removes at most kCleanStep entries, so Redis keeps serving workers in between.
  std::vector<std::string> ids;
  int64_t skip = 0;  // kept jobs at the oldest end, passed over by earlier steps
  while (limit == 0 || static_cast<int64_t>(ids.size()) < limit) {
    const int64_t step =
        limit == 0 ? kCleanStep
                   : std::min<int64_t>(kCleanStep, limit - static_cast<int64_t>(ids.size()));
    JQ_ASSIGN_OR_RETURN(
        RedisReply reply,
        RunAdminScript(internal::k_clean, {Key(state), Key("repeat")},
                       {Key(""), absl::StrCat(cutoff), absl::StrCat(step), std::string(state),
                        absl::StrCat(skip), absl::StrCat(kCleanStep)},
                       "cleaning the queue"));
    if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 3) {
      return absl::InternalError("clean script returned an unexpected reply");
    }
    for (const RedisReply& id : reply.elements[0].elements) ids.push_back(id.str);
    skip += reply.elements[1].integer;
    if (reply.elements[2].integer == 1) break;
  }
  return ids;
}

absl::StatusOr<bool> BullQueue::IsPaused() {
  JQ_ASSIGN_OR_RETURN(RedisPool::Handle conn, pool_->Acquire());
  JQ_ASSIGN_OR_RETURN(RedisReply reply, conn->Command({"HEXISTS", Key("meta"), "paused"}));
  JQ_RETURN_IF_ERROR(reply.AsStatus("reading the queue's meta"));
  return reply.integer == 1;
}

absl::StatusOr<BullJobCounts> BullQueue::Counts() {
  JQ_ASSIGN_OR_RETURN(RedisPool::Handle conn, pool_->Acquire());
  JQ_ASSIGN_OR_RETURN(std::vector<RedisReply> r,
                      conn->Pipeline({{"LLEN", Key("active")},
                                      {"ZCARD", Key("completed")},
                                      {"ZCARD", Key("delayed")},
                                      {"ZCARD", Key("failed")},
                                      {"LLEN", Key("paused")},
                                      {"ZCARD", Key("prioritized")},
                                      {"LLEN", Key("wait")},
                                      {"ZCARD", Key("waiting-children")}}));
  for (const RedisReply& reply : r) JQ_RETURN_IF_ERROR(reply.AsStatus("counting BullMQ jobs"));
  BullJobCounts counts;
  counts.active = r[0].integer;
  counts.completed = r[1].integer;
  counts.delayed = r[2].integer;
  counts.failed = r[3].integer;
  counts.paused = r[4].integer;
  counts.prioritized = r[5].integer;
  counts.waiting = r[6].integer;
  counts.waiting_children = r[7].integer;
  return counts;
}

absl::StatusOr<int64_t> BullQueue::Drain(bool include_delayed) {
  JQ_ASSIGN_OR_RETURN(RedisReply reply,
                      RunAdminScript(internal::k_drain, {Key("paused"), Key("repeat")},
                                     {Key(""), include_delayed ? "1" : "0"}, "draining the queue"));
  return reply.integer;
}

absl::Status BullQueue::Remove(absl::string_view id) {
  JQ_RETURN_IF_ERROR(ValidateJobId(id));
  JQ_ASSIGN_OR_RETURN(
      RedisReply reply,
      RunAdminScript(internal::k_remove_job,
                     {Key("paused"), Key("waiting-children"), Key("repeat")},
                     {Key(""), std::string(id)}, absl::StrCat("removing job ", id)));
  if (reply.integer == -1) return NoSuchJob(id);
  if (reply.integer == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " in queue ", name_, " is locked by a worker; not removed"));
  }
  if (reply.integer == -8) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " in queue ", name_,
                     " belongs to a job scheduler and cannot be removed directly; remove the "
                     "scheduler instead"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> BullQueue::RetryJobs(absl::string_view state, absl::Time finished_before) {
  JQ_RETURN_IF_ERROR(ValidateFinishedState(state));
  // The default is the call's start, as Node's: a job that fails again while the batches run
  // is not retried a second time by the same call.
  const int64_t cutoff = finished_before == absl::InfiniteFuture()
                             ? absl::ToUnixMillis(absl::Now())
                             : absl::ToUnixMillis(finished_before);
  int64_t moved = 0;
  // Batches keep each script call short, so Redis keeps serving workers in between.
  while (true) {
    JQ_ASSIGN_OR_RETURN(
        RedisReply reply,
        RunAdminScript(internal::k_retry_jobs, {},
                       {Key(""), std::string(state), "1000", absl::StrCat(cutoff), "", "0"},
                       absl::StrCat("retrying ", state, " jobs")));
    moved += reply.integer;
    if (reply.integer < 1000) return moved;
  }
}

absl::Status BullQueue::RetryJob(absl::string_view id, absl::string_view state,
                                 bool reset_attempts) {
  JQ_RETURN_IF_ERROR(ValidateJobId(id));
  JQ_RETURN_IF_ERROR(ValidateFinishedState(state));
  JQ_ASSIGN_OR_RETURN(RedisReply reply,
                      RunAdminScript(internal::k_retry_jobs, {},
                                     {Key(""), std::string(state), "1", "0", std::string(id),
                                      reset_attempts ? "1" : "0"},
                                     absl::StrCat("retrying job ", id)));
  if (reply.integer == -1) return NoSuchJob(id);
  if (reply.integer == -3) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " in queue ", name_, " is not ", state, "; not retried"));
  }
  return absl::OkStatus();
}

absl::Status BullQueue::Promote(absl::string_view id) {
  JQ_RETURN_IF_ERROR(ValidateJobId(id));
  JQ_ASSIGN_OR_RETURN(RedisReply reply,
                      RunAdminScript(internal::k_promote, {}, {Key(""), std::string(id), "1"},
                                     absl::StrCat("promoting job ", id)));
  if (reply.integer == -3) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " in queue ", name_, " is not delayed; not promoted"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> BullQueue::PromoteAll() {
  int64_t moved = 0;
  while (true) {
    JQ_ASSIGN_OR_RETURN(
        RedisReply reply,
        RunAdminScript(internal::k_promote, {}, {Key(""), "", "1000"}, "promoting delayed jobs"));
    moved += reply.integer;
    if (reply.integer < 1000) return moved;
  }
}

absl::Status BullQueue::UpdateProgress(absl::string_view id, absl::string_view progress_json) {
  JQ_RETURN_IF_ERROR(ValidateJobId(id));
  if (absl::Status s = ValidateJson(progress_json); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("progress of job ", id, " is ", s.message()));
  }
  JQ_ASSIGN_OR_RETURN(RedisReply reply,
                      RunAdminScript(internal::k_progress, {},
                                     {Key(""), std::string(id), std::string(progress_json)},
                                     absl::StrCat("updating the progress of job ", id)));
  if (reply.integer == -1) return NoSuchJob(id);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> BullQueue::AddLog(absl::string_view id, absl::string_view line,
                                          int64_t keep_logs) {
  JQ_RETURN_IF_ERROR(ValidateJobId(id));
  if (keep_logs < 0) return absl::InvalidArgumentError("keep_logs must be >= 0");
  if (line.size() > kMaxDataBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("log line of ", line.size(), " bytes; the limit is ", kMaxDataBytes));
  }
  JQ_ASSIGN_OR_RETURN(RedisReply reply,
                      RunAdminScript(internal::k_add_log, {},
                                     {Key(""), std::string(id), std::string(line),
                                      keep_logs > 0 ? absl::StrCat(keep_logs) : ""},
                                     absl::StrCat("adding a log line to job ", id)));
  if (reply.integer == -1) return NoSuchJob(id);
  return reply.integer;
}

absl::StatusOr<BullQueue::Logs> BullQueue::GetLogs(absl::string_view id, int64_t start, int64_t end,
                                                   bool asc) {
  JQ_RETURN_IF_ERROR(ValidateJobId(id));
  const std::string key = absl::StrCat(Key(id), ":logs");
  std::vector<std::string> range = {"LRANGE", key, absl::StrCat(start), absl::StrCat(end)};
  if (!asc) range = {"LRANGE", key, absl::StrCat(-(end + 1)), absl::StrCat(-(start + 1))};
  JQ_ASSIGN_OR_RETURN(RedisPool::Handle conn, pool_->Acquire());
  JQ_ASSIGN_OR_RETURN(std::vector<RedisReply> r, conn->Pipeline({range, {"LLEN", key}}));
  for (const RedisReply& reply : r) JQ_RETURN_IF_ERROR(reply.AsStatus("reading job logs"));
  Logs logs;
  for (const RedisReply& line : r[0].elements) logs.lines.push_back(line.str);
  if (!asc) std::reverse(logs.lines.begin(), logs.lines.end());
  logs.count = r[1].integer;
  return logs;
}

absl::StatusOr<std::vector<BullJob>> BullQueue::GetJobs(absl::string_view state, int64_t start,
                                                        int64_t end, bool asc) {
  const bool is_list = state == "wait" || state == "active" || state == "paused";
  const bool is_set = state == "prioritized" || state == "delayed" || state == "completed" ||
                      state == "failed" || state == "waiting-children";
  if (!is_list && !is_set) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot list state \"", state,
                     "\"; use wait, active, paused, prioritized, delayed, completed, failed or "
                     "waiting-children"));
  }
  if (start < 0 || (end >= 0 && end < start)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad page ", start, "..", end, ": start must be >= 0 and <= end"));
  }
  // Lists are pushed on the left, so their newest job comes first; sorted sets the reverse.
  std::vector<std::string> range;
  const std::string key = Key(state);
  if (is_list) {
    range = asc ? std::vector<std::string>{"LRANGE", key, absl::StrCat(-(end + 1)),
                                           absl::StrCat(-(start + 1))}
                : std::vector<std::string>{"LRANGE", key, absl::StrCat(start), absl::StrCat(end)};
  } else {
    range = {asc ? "ZRANGE" : "ZREVRANGE", key, absl::StrCat(start), absl::StrCat(end)};
  }
  JQ_ASSIGN_OR_RETURN(RedisPool::Handle conn, pool_->Acquire());
  JQ_ASSIGN_OR_RETURN(RedisReply ids, conn->Command(range));
  JQ_RETURN_IF_ERROR(ids.AsStatus(absl::StrCat("listing ", state, " jobs")));
  if (is_list && asc) std::reverse(ids.elements.begin(), ids.elements.end());
  std::vector<std::vector<std::string>> reads;
  reads.reserve(ids.elements.size());
  for (const RedisReply& id : ids.elements) reads.push_back({"HGETALL", Key(id.str)});
  JQ_ASSIGN_OR_RETURN(std::vector<RedisReply> hashes, conn->Pipeline(reads));
  std::vector<BullJob> jobs;
  jobs.reserve(hashes.size());
  for (size_t i = 0; i < hashes.size(); ++i) {
    JQ_RETURN_IF_ERROR(hashes[i].AsStatus("reading a BullMQ job"));
    if (hashes[i].elements.empty()) continue;
    jobs.push_back(internal::BullJobFromHash(ids.elements[i].str, hashes[i].elements));
  }
  return jobs;
}

}  // namespace jobqueue
