#include "jobqueue/bull_queue.h"

#include <simdjson.h>

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

// BullMQ's own limit: priority * 2^32 must stay exact in a Lua double.
constexpr int64_t kMaxPriority = 2097152;
constexpr size_t kMaxDataBytes = 64 * 1024 * 1024;

absl::Status BadOption(absl::string_view key, absl::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat("job option \"", key, "\" must be ", expected));
}

absl::Status CheckRemoveOn(absl::string_view key, simdjson::dom::element value) {
  if (value.is_bool()) return absl::OkStatus();
  if (value.is_int64() && value.get_int64().value() >= 0) return absl::OkStatus();
  if (value.is_object()) {
    const simdjson::dom::object fields = value.get_object().value();
    for (auto [k, v] : fields) {
      if ((k != "age" && k != "count" && k != "limit") || !v.is_int64()) {
        return BadOption(key, "true/false, a count, or {age, count}");
      }
    }
    return absl::OkStatus();
  }
  return BadOption(key, "true/false, a count, or {age, count}");
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
      if (out.job_id.empty() || out.job_id.find(':') != std::string::npos) {
        return BadOption(key, "non-empty without ':'");
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
      if (key == "delay") out.delay_ms = static_cast<int64_t>(ms);
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
        } else if (k == "delay" || k == "jitter") {
          if (!v.is_number() || v.get_double().value() < 0) {
            return BadOption(absl::StrCat("backoff.", std::string(k)), "a non-negative number");
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

std::vector<std::string> BullQueue::AddCommand(const NewBullJob& job, int64_t now_ms) const {
  const BullJobOptions& o = job.options;
  return internal::EvalSha(
      internal::k_add_job,
      {Key("wait"), Key("meta"), Key("id"), Key("delayed"), Key("prioritized"), Key("pc"),
       Key("marker"), Key("events"), Key("active")},
      {Key(""), o.job_id, job.name, absl::StrCat(now_ms), job.data_json, o.json,
       absl::StrCat(o.delay_ms), absl::StrCat(o.priority), o.lifo ? "1" : "0"});
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
    if (absl::Status s = ParseBullJobOptions(job.options.json).status(); !s.ok()) {
      return Annotate(s, where);
    }
    commands.push_back(AddCommand(job, now_ms));
  }
  JQ_ASSIGN_OR_RETURN(std::vector<RedisReply> replies, RunScripts(commands));
  std::vector<std::string> ids;
  ids.reserve(replies.size());
  for (const RedisReply& reply : replies) {
    JQ_RETURN_IF_ERROR(reply.AsStatus("adding a BullMQ job"));
    if (reply.type != RedisReply::Type::kArray || reply.elements.empty()) {
      return absl::InternalError("add-job script returned an unexpected reply");
    }
    ids.push_back(reply.elements[0].str);
  }
  return ids;
}

absl::StatusOr<BullJob> BullQueue::GetJob(absl::string_view id) {
  if (id.empty()) return absl::InvalidArgumentError("job id is empty");
  JQ_ASSIGN_OR_RETURN(RedisPool::Handle conn, pool_->Acquire());
  JQ_ASSIGN_OR_RETURN(RedisReply reply, conn->Command({"HGETALL", Key(id)}));
  JQ_RETURN_IF_ERROR(reply.AsStatus("reading a BullMQ job"));
  if (reply.elements.empty()) {
    return absl::NotFoundError(absl::StrCat("no job ", id, " in queue ", name_));
  }
  return internal::BullJobFromHash(id, reply.elements);
}

absl::Status BullQueue::SetPaused(bool paused) {
  JQ_ASSIGN_OR_RETURN(RedisPool::Handle conn, pool_->Acquire());
  const internal::BullKeys keys(options_.prefix, name_);
  std::vector<std::string> script_keys = keys.worker_keys();
  script_keys.push_back(Key("paused"));
  JQ_ASSIGN_OR_RETURN(
      RedisReply reply,
      internal::RunScript(*conn, internal::EvalSha(internal::k_pause, script_keys,
                                                   {paused ? "paused" : "resumed"})));
  return reply.AsStatus(paused ? "pausing the queue" : "resuming the queue");
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
  const internal::BullKeys keys(options_.prefix, name_);
  std::vector<std::string> script_keys = keys.worker_keys();
  script_keys.push_back(Key(state));
  const int64_t cutoff = absl::ToUnixMillis(absl::Now() - grace);
  JQ_ASSIGN_OR_RETURN(RedisPool::Handle conn, pool_->Acquire());
  JQ_ASSIGN_OR_RETURN(
      RedisReply reply,
      internal::RunScript(*conn, internal::EvalSha(internal::k_clean, script_keys,
                                                   {keys.base(), absl::StrCat(cutoff),
                                                    absl::StrCat(limit), std::string(state)})));
  JQ_RETURN_IF_ERROR(reply.AsStatus("cleaning the queue"));
  std::vector<std::string> ids;
  for (const RedisReply& id : reply.elements) ids.push_back(id.str);
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

}  // namespace jobqueue
