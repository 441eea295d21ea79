#include "jobqueue/bull_worker.h"

#include <poll.h>
#include <simdjson.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <exception>
#include <random>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "internal/log.h"
#include "internal/worker_common.h"
#include "jobqueue/json.h"
#include "jobqueue/status.h"
#include "redis/bull_internal.h"

namespace jobqueue {
namespace {

constexpr absl::string_view kUnrecoverablePayload = "jobqueue.dev/bull-unrecoverable";

// What a job's stored opts say about finishing it (read leniently: a foreign client wrote it).
struct FinishPolicy {
  int64_t attempts = 0;
  std::string backoff_type;  // "", "fixed" or "exponential"
  double backoff_delay = 0;
  double backoff_jitter = 0;
  bool lifo = false;
  std::optional<int64_t> stack_trace_limit;
  // removeOnComplete / removeOnFail as BullMQ's keepJobs: count -1 keeps all, 0 none.
  int64_t keep_completed = -1;
  std::optional<int64_t> keep_completed_age;
  int64_t keep_failed = -1;
  std::optional<int64_t> keep_failed_age;
};

void ReadKeep(simdjson::dom::element value, int64_t* count, std::optional<int64_t>* age) {
  if (value.is_bool()) {
    *count = value.get_bool().value() ? 0 : -1;
  } else if (value.is_number()) {
    *count = static_cast<int64_t>(value.get_double().value());
  } else if (value.is_object()) {
    simdjson::dom::object keep = value.get_object().value();
    double n;
    if (keep["count"].get_double().get(n) == simdjson::SUCCESS) *count = static_cast<int64_t>(n);
    if (keep["age"].get_double().get(n) == simdjson::SUCCESS) *age = static_cast<int64_t>(n);
  }
}

FinishPolicy ReadPolicy(simdjson::dom::parser& parser, const std::string& opts_json) {
  FinishPolicy policy;
  simdjson::dom::element root;
  if (parser.parse(opts_json).get(root) != simdjson::SUCCESS || !root.is_object()) return policy;
  simdjson::dom::object opts = root.get_object().value();
  double n;
  if (opts["attempts"].get_double().get(n) == simdjson::SUCCESS) {
    policy.attempts = static_cast<int64_t>(n);
  }
  if (opts["stackTraceLimit"].get_double().get(n) == simdjson::SUCCESS) {
    policy.stack_trace_limit = static_cast<int64_t>(n);
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
    ReadKeep(keep, &policy.keep_completed, &policy.keep_completed_age);
  }
  if (opts["removeOnFail"].get(keep) == simdjson::SUCCESS) {
    ReadKeep(keep, &policy.keep_failed, &policy.keep_failed_age);
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
  return static_cast<int64_t>(delay);
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

std::string Base64(absl::string_view in) { return absl::Base64Escape(in); }

std::string RandomHex() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x", rd(), rd());
}

}  // namespace

absl::Status BullUnrecoverableError(absl::string_view message) {
  absl::Status status = absl::FailedPreconditionError(message);
  status.SetPayload(kUnrecoverablePayload, absl::Cord("1"));
  return status;
}

absl::Status BullWorkerOptions::Validate() const {
  if (prefix.empty() || prefix.find_first_of(" \t\r\n") != std::string::npos) {
    return absl::InvalidArgumentError("BullMQ prefix must be non-empty without whitespace");
  }
  if (name.size() > 256 || name.find_first_of(" \t\r\n") != std::string::npos) {
    return absl::InvalidArgumentError("worker name must be at most 256 bytes without spaces");
  }
  if (concurrency < 1 || concurrency > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("concurrency must be 1..1024, got ", concurrency));
  }
  if (lock_duration < absl::Milliseconds(10)) {
    return absl::InvalidArgumentError("lock duration must be at least 10 ms");
  }
  if (lock_renew_time < absl::ZeroDuration() || lock_renew_time >= lock_duration) {
    return absl::InvalidArgumentError("lock renew time must be below the lock duration");
  }
  if (stalled_interval < absl::Milliseconds(10)) {
    return absl::InvalidArgumentError("stalled interval must be at least 10 ms");
  }
  if (max_stalled_count < 0) return absl::InvalidArgumentError("max stalled count must be >= 0");
  if (drain_delay < absl::Milliseconds(10)) {
    return absl::InvalidArgumentError("drain delay must be at least 10 ms");
  }
  if (limiter_max < 0 || (limiter_max > 0 && limiter_duration <= absl::ZeroDuration())) {
    return absl::InvalidArgumentError("limiter needs max >= 1 and a positive duration");
  }
  JQ_RETURN_IF_ERROR(internal::ValidateShutdownOptions(shutdown_timeout, exit_when_idle,
                                                       reconnect_min, reconnect_max));
  return redis.Validate();
}

class BullWorker::Impl {
 public:
  Impl(Secret url, std::string queue, BullHandler handler, BullWorkerOptions options, int wake_fd)
      : url_(std::move(url)),
        queue_(std::move(queue)),
        handler_(std::move(handler)),
        options_(std::move(options)),
        keys_(options_.prefix, queue_),
        wake_fd_(wake_fd),
        token_prefix_(RandomHex()) {
    if (options_.lock_renew_time == absl::ZeroDuration()) {
      options_.lock_renew_time = options_.lock_duration / 2;
    }
    inline_handler_ = options_.concurrency == 1;
  }
  ~Impl() { ::close(wake_fd_); }

  absl::Status Connect();
  absl::Status Run();
  void Stop() {
    stop_requested_.store(true);
    internal::WakeFd(wake_fd_);
  }
  BullWorkerStats stats() const {
    absl::MutexLock lock(&mu_);
    return stats_;
  }

 private:
  class Context;
  struct Claimed {
    BullJob job;
    std::string token;
  };
  struct Finish {
    std::string id, token, kind, value, stacktrace;
    int64_t keep_count = -1;
    std::optional<int64_t> keep_age;
    std::string extra;
  };
  // Hands a claimed job back to wait unprocessed.
  static Finish Release(const std::string& id, const std::string& token) {
    Finish f;
    f.id = id;
    f.token = token;
    f.kind = "release";
    return f;
  }

  bool StopWanted() const {
    return stop_requested_.load() || internal::StopGeneration() != signal_generation_;
  }
  // Starts the shutdown clock once a stop is wanted.
  void NoteStop() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!stopping_ && StopWanted()) {
      stopping_ = true;
      stop_deadline_ = absl::Now() + options_.shutdown_timeout;
    }
  }
  std::string ClientName() const {
    std::string name = absl::StrCat(options_.prefix, ":", Base64(queue_));
    if (!options_.name.empty()) absl::StrAppend(&name, ":w:", options_.name);
    return name;
  }
  absl::StatusOr<std::unique_ptr<RedisConnection>> Open(bool named) {
    RedisOptions redis = options_.redis;
    if (named) redis.client_name = ClientName();
    return RedisConnection::Connect(url_, redis);
  }

  // A producer-side queue for handlers' progress and log calls, opened on first use.
  absl::StatusOr<BullQueue*> AdminQueue();
  void HandlerLoop();
  Finish Process(Claimed& claimed, simdjson::dom::parser& parser, std::mt19937_64& rng);
  void WaiterLoop();
  void MaintenanceLoop();
  struct StepResult {
    int claimed = 0;
    int64_t rate_limited_ms = 0;
    int64_t next_delayed_at_ms = 0;  // 0: no delayed job
  };
  // One finish+claim script call; claimed jobs go to ready_.
  absl::StatusOr<StepResult> Step(std::vector<Finish>& finishes, int want);
  absl::Status ReconnectStep();
  void WaitForWake(absl::Duration timeout);
  void RequestBlock(absl::Duration timeout);
  // Past the shutdown deadline: hands the inline handler's job back to wait.
  void HandBackRunning(std::unique_ptr<RedisConnection>& conn, const Finish& release);
  // Concurrency 1: runs the claimed jobs here and queues their finishes.
  void RunInline(std::vector<Finish>& finishes);
  void ReleaseUnstarted(std::vector<Finish>& finishes);

  const Secret url_;
  const std::string queue_;
  const BullHandler handler_;
  BullWorkerOptions options_;
  const internal::BullKeys keys_;
  const int wake_fd_;
  const std::string token_prefix_;
  std::atomic<bool> stop_requested_{false};
  const uint64_t signal_generation_ = internal::StopGeneration();
  std::atomic<bool> quit_{false};  // tells helper threads to exit

  std::unique_ptr<RedisConnection> step_conn_;  // Run()'s thread only
  int64_t step_seq_ = 0;

  mutable absl::Mutex mu_;
  std::deque<Claimed> ready_ ABSL_GUARDED_BY(mu_);
  std::vector<Finish> done_ ABSL_GUARDED_BY(mu_);
  // Claimed and not yet finished in Redis: id -> token (lock renewal reads it).
  absl::flat_hash_map<std::string, std::string> held_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  BullWorkerStats stats_ ABSL_GUARDED_BY(mu_);
  // The marker waiter: asked to block for up to block_timeout_, reports a wake-up.
  bool block_wanted_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration block_timeout_ ABSL_GUARDED_BY(mu_);
  bool marker_seen_ ABSL_GUARDED_BY(mu_) = false;
  RedisConnection* block_conn_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Concurrency 1 runs the handler on Run()'s thread (no hand-off between threads); past the
  // shutdown deadline the maintenance thread hands the running job back instead.
  bool inline_handler_ = false;
  absl::Time stop_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::optional<std::pair<std::string, std::string>> running_ ABSL_GUARDED_BY(mu_);  // id, token
  bool running_released_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex admin_mu_;
  std::unique_ptr<BullQueue> admin_queue_ ABSL_GUARDED_BY(admin_mu_);
};

class BullWorker::Impl::Context : public BullJobContext {
 public:
  Context(Impl& impl, const Claimed& claimed, const std::atomic<bool>& stopping)
      : impl_(impl), claimed_(claimed), stopping_(stopping) {}
  const BullJob& job() const override { return claimed_.job; }
  const std::string& token() const override { return claimed_.token; }
  bool stopping() const override { return stopping_.load(); }
  absl::Status UpdateProgress(absl::string_view progress_json) override {
    JQ_ASSIGN_OR_RETURN(BullQueue * queue, impl_.AdminQueue());
    return queue->UpdateProgress(claimed_.job.id, progress_json);
  }
  absl::Status Log(absl::string_view line) override {
    JQ_ASSIGN_OR_RETURN(BullQueue * queue, impl_.AdminQueue());
    return queue->AddLog(claimed_.job.id, line, KeepLogs(claimed_.job.opts_json)).status();
  }

 private:
  // The job's keepLogs option; 0 keeps every line.
  static int64_t KeepLogs(const std::string& opts_json) {
    simdjson::dom::parser parser;
    double keep;
    if (parser.parse(opts_json)["keepLogs"].get_double().get(keep) != simdjson::SUCCESS) return 0;
    return std::max<int64_t>(static_cast<int64_t>(keep), 0);
  }

  Impl& impl_;
  const Claimed& claimed_;
  const std::atomic<bool>& stopping_;
};

absl::StatusOr<BullQueue*> BullWorker::Impl::AdminQueue() {
  absl::MutexLock lock(&admin_mu_);
  if (admin_queue_ == nullptr) {
    BullQueueOptions options;
    options.prefix = options_.prefix;
    options.redis = options_.redis;
    options.pool_size = std::min(options_.concurrency, 4);
    JQ_ASSIGN_OR_RETURN(admin_queue_, BullQueue::Open(url_, queue_, options));
  }
  return admin_queue_.get();
}

absl::Status BullWorker::Impl::Connect() {
  JQ_ASSIGN_OR_RETURN(step_conn_, Open(false));
  return absl::OkStatus();
}

absl::StatusOr<BullWorker::Impl::StepResult> BullWorker::Impl::Step(std::vector<Finish>& finishes,
                                                                    int want) {
  const int64_t now = absl::ToUnixMillis(absl::Now());
  std::vector<std::string> args = {
      keys_.base(),
      absl::StrCat(now),
      absl::StrCat(want),
      absl::StrCat(absl::ToInt64Milliseconds(options_.lock_duration)),
      options_.name,
      absl::StrCat(token_prefix_, ":", ++step_seq_),
      options_.limiter_max > 0 ? absl::StrCat(options_.limiter_max) : "",
      options_.limiter_max > 0 ? absl::StrCat(absl::ToInt64Milliseconds(options_.limiter_duration))
                               : "",
      absl::StrCat(finishes.size())};
  args.reserve(args.size() + finishes.size() * 8);
  for (const Finish& f : finishes) {
    args.push_back(f.id);
    args.push_back(f.token);
    args.push_back(f.kind);
    args.push_back(f.value);
    args.push_back(f.stacktrace);
    args.push_back(absl::StrCat(f.keep_count));
    args.push_back(f.keep_age ? absl::StrCat(*f.keep_age) : "");
    args.push_back(f.extra);
  }
  JQ_ASSIGN_OR_RETURN(
      RedisReply reply,
      internal::RunScript(*step_conn_, internal::EvalSha(internal::k_worker_step,
                                                         keys_.worker_keys(), std::move(args))));
  JQ_RETURN_IF_ERROR(reply.AsStatus("running the worker step script"));
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 4 ||
      reply.elements[1].type != RedisReply::Type::kArray) {
    return absl::InternalError("worker step script returned an unexpected reply");
  }
  const std::vector<RedisReply>& codes = reply.elements[0].elements;
  std::vector<RedisReply>& claimed = reply.elements[1].elements;
  absl::MutexLock lock(&mu_);
  ++stats_.steps;
  for (size_t i = 0; i < finishes.size(); ++i) {
    const int64_t code = i < codes.size() ? codes[i].integer : -1;
    held_.erase(finishes[i].id);
    if (code != 0) {
      ++stats_.lost;
      internal::LogWarn("BullMQ job {} in {}: {}; its {} result was not written", finishes[i].id,
                        queue_,
                        code == -2   ? "lock expired"
                        : code == -6 ? "lock taken by another worker"
                        : code == -3 ? "no longer active"
                                     : "job is gone",
                        finishes[i].kind);
    } else if (finishes[i].kind == "completed") {
      ++stats_.completed;
    } else if (finishes[i].kind == "failed") {
      ++stats_.failed;
    } else if (finishes[i].kind == "release") {
      ++stats_.released;
    } else {
      ++stats_.retried;
    }
  }
  for (RedisReply& entry : claimed) {
    if (entry.elements.size() != 3) continue;
    Claimed c{internal::BullJobFromHash(entry.elements[0].str, entry.elements[2].elements),
              std::move(entry.elements[1].str)};
    held_[c.job.id] = c.token;
    ready_.push_back(std::move(c));
  }
  return StepResult{static_cast<int>(claimed.size()), reply.elements[2].integer,
                    reply.elements[3].integer};
}

BullWorker::Impl::Finish BullWorker::Impl::Process(Claimed& claimed, simdjson::dom::parser& parser,
                                                   std::mt19937_64& rng) {
  const BullJob& job = claimed.job;
  const FinishPolicy policy = ReadPolicy(parser, job.opts_json);
  Finish f;
  f.id = job.id;
  f.token = claimed.token;

  absl::StatusOr<std::string> result;
  auto deferred = job.fields.find("defa");
  if (deferred != job.fields.end()) {
    // Stalled too often (marked by a stalled check): fail without running it.
    result = BullUnrecoverableError(deferred->second);
  } else {
    Context context(*this, claimed, stop_requested_);
    result = internal::RunHandler(handler_, context);
  }
  if (result.ok()) {
    f.kind = "completed";
    f.value = std::move(*result);
    f.keep_count = policy.keep_completed;
    f.keep_age = policy.keep_completed_age;
    return f;
  }
  f.value = std::string(result.status().message());
  f.stacktrace = AppendStacktrace(
      parser, job, policy,
      absl::StrCat("Error: ", f.value, "\n    at ", queue_, " (libjobqueue C++ worker)"));
  const bool unrecoverable = result.status().GetPayload(kUnrecoverablePayload).has_value();
  if (!unrecoverable && job.attempts_made + 1 < policy.attempts) {
    const int64_t delay = BackoffMillis(policy, job.attempts_made + 1, rng);
    if (delay > 0) {
      f.kind = "delay";
      f.extra = absl::StrCat(delay);
    } else {
      f.kind = "retry";
      f.extra = policy.lifo ? "1" : "0";
    }
    return f;
  }
  f.kind = "failed";
  f.keep_count = policy.keep_failed;
  f.keep_age = policy.keep_failed_age;
  f.extra = absl::StrCat(policy.attempts);
  return f;
}

void BullWorker::Impl::HandlerLoop() {
  simdjson::dom::parser parser;
  std::mt19937_64 rng(std::random_device{}());
  while (true) {
    Claimed claimed;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Impl* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return !self->ready_.empty() || self->stopping_;
          },
          this));
      if (ready_.empty()) return;  // stopping, nothing left to start
      claimed = std::move(ready_.front());
      ready_.pop_front();
    }
    Finish finish = Process(claimed, parser, rng);
    {
      absl::MutexLock lock(&mu_);
      done_.push_back(std::move(finish));
    }
    internal::WakeFd(wake_fd_);
  }
}

void BullWorker::Impl::RequestBlock(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (block_wanted_) return;
  block_wanted_ = true;
  block_timeout_ = timeout;
}

// Blocks on the marker (BZPOPMIN) when asked: the wake-up a producer's add sends.
void BullWorker::Impl::WaiterLoop() {
  std::unique_ptr<RedisConnection> conn;
  absl::Duration backoff = options_.reconnect_min;
  while (!quit_.load()) {
    absl::Duration timeout;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Impl* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->block_wanted_ || self->quit_.load();
          },
          this));
      if (quit_.load()) break;
      timeout = block_timeout_;
    }
    if (conn == nullptr || !conn->ok()) {
      {
        absl::MutexLock lock(&mu_);
        block_conn_ = nullptr;
      }
      absl::StatusOr<std::unique_ptr<RedisConnection>> opened = Open(true);
      if (!opened.ok()) {
        internal::LogWarn("BullMQ worker on {}: marker connection: {}", queue_,
                          opened.status().message());
        absl::SleepFor(backoff);
        backoff = std::min(backoff * 2, options_.reconnect_max);
        continue;
      }
      backoff = options_.reconnect_min;
      conn = std::move(*opened);
      absl::MutexLock lock(&mu_);
      if (quit_.load()) break;
      block_conn_ = conn.get();
    }
    // Redis takes fractional seconds; never 0, which would block forever.
    const double seconds = std::max(absl::ToDoubleSeconds(timeout), 0.001);
    absl::StatusOr<RedisReply> reply = conn->BlockingCommand(
        {"BZPOPMIN", keys_.Key("marker"), absl::StrFormat("%.3f", seconds)}, timeout);
    absl::MutexLock lock(&mu_);
    block_wanted_ = false;
    marker_seen_ = true;  // a marker, a timeout or an error: the dispatcher looks again
    internal::WakeFd(wake_fd_);
  }
  absl::MutexLock lock(&mu_);
  block_conn_ = nullptr;
}

// Lock renewal every lock_renew_time and the stalled check every stalled_interval.
void BullWorker::Impl::MaintenanceLoop() {
  std::unique_ptr<RedisConnection> conn;
  absl::Time next_renew = absl::Now() + options_.lock_renew_time;
  absl::Time next_check = absl::Now();  // at start, as Node does
  while (!quit_.load()) {
    const absl::Time now = absl::Now();
    bool stopping;
    std::optional<Finish> hand_back;
    {
      absl::MutexLock lock(&mu_);
      NoteStop();  // Run()'s thread may be busy in an inline handler
      stopping = stopping_;
      if (stopping_ && now >= stop_deadline_ && running_ && !running_released_) {
        hand_back = Release(running_->first, running_->second);
      }
    }
    if (hand_back) {
      HandBackRunning(conn, *hand_back);
      continue;
    }
    if (now < next_renew && (!options_.check_stalled || now < next_check)) {
      absl::Time until = next_renew;
      if (options_.check_stalled) until = std::min(until, next_check);
      // An inline handler keeps Run()'s thread busy: this thread watches for a stop instead.
      if (inline_handler_ || stopping) until = std::min(until, now + absl::Milliseconds(20));
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithDeadline(absl::Condition(
                                +[](std::atomic<bool>* quit) { return quit->load(); }, &quit_),
                            until);
      continue;
    }
    if (conn == nullptr || !conn->ok()) {
      absl::StatusOr<std::unique_ptr<RedisConnection>> opened = Open(false);
      if (!opened.ok()) {
        next_renew = next_check = now + options_.reconnect_min * 10;
        continue;
      }
      conn = std::move(*opened);
    }
    if (now >= next_renew) {
      next_renew = now + options_.lock_renew_time;
      std::vector<std::string> args = {
          keys_.base(), absl::StrCat(absl::ToInt64Milliseconds(options_.lock_duration))};
      {
        absl::MutexLock lock(&mu_);
        for (const auto& [id, token] : held_) {
          args.push_back(id);
          args.push_back(token);
        }
      }
      if (args.size() > 2) {
        absl::StatusOr<RedisReply> lost = internal::RunScript(
            *conn, internal::EvalSha(internal::k_extend_locks, keys_.worker_keys(), args));
        if (lost.ok() && lost->type == RedisReply::Type::kArray) {
          for (const RedisReply& id : lost->elements) {
            internal::LogWarn("BullMQ job {} in {}: lock lost before renewal", id.str, queue_);
          }
        }
      }
    }
    if (options_.check_stalled && now >= next_check) {
      next_check = now + options_.stalled_interval;
      std::vector<std::string> keys = keys_.worker_keys();
      keys.push_back(keys_.Key("stalled-check"));
      keys.push_back(keys_.Key("repeat"));
      absl::StatusOr<RedisReply> recovered = internal::RunScript(
          *conn,
          internal::EvalSha(internal::k_stalled_check, keys,
                            {keys_.base(), absl::StrCat(absl::ToUnixMillis(now)),
                             absl::StrCat(options_.max_stalled_count),
                             absl::StrCat(absl::ToInt64Milliseconds(options_.stalled_interval))}));
      if (recovered.ok() && recovered->type == RedisReply::Type::kArray &&
          !recovered->elements.empty()) {
        absl::MutexLock lock(&mu_);
        stats_.stalled_recovered += static_cast<int64_t>(recovered->elements.size());
        for (const RedisReply& id : recovered->elements) {
          internal::LogWarn("BullMQ job {} in {} stalled; moved back to wait", id.str, queue_);
        }
      }
    }
  }
}

void BullWorker::Impl::HandBackRunning(std::unique_ptr<RedisConnection>& conn,
                                       const Finish& release) {
  if (conn == nullptr || !conn->ok()) {
    absl::StatusOr<std::unique_ptr<RedisConnection>> opened = Open(false);
    if (!opened.ok()) {
      absl::SleepFor(options_.reconnect_min);
      return;
    }
    conn = std::move(*opened);
  }
  absl::StatusOr<RedisReply> reply = internal::RunScript(
      *conn, internal::EvalSha(
                 internal::k_worker_step, keys_.worker_keys(),
                 {keys_.base(), absl::StrCat(absl::ToUnixMillis(absl::Now())), "0", "0", "", "", "",
                  "", "1", release.id, release.token, release.kind, "", "", "-1", "", ""}));
  absl::MutexLock lock(&mu_);
  running_released_ = true;  // tried once: a failure leaves the lock to expire
  if (reply.ok() && reply->type == RedisReply::Type::kArray && !reply->elements.empty() &&
      !reply->elements[0].elements.empty() && reply->elements[0].elements[0].integer == 0) {
    held_.erase(release.id);
    ++stats_.released;
  }
  internal::WakeFd(wake_fd_);
}

void BullWorker::Impl::WaitForWake(absl::Duration timeout) {
  pollfd fd = {wake_fd_, POLLIN, 0};
  if (::poll(&fd, 1, internal::PollMillis(timeout)) > 0) {
    uint64_t counter;
    ssize_t n = ::read(wake_fd_, &counter, sizeof(counter));
    (void)n;
  }
}

absl::Status BullWorker::Impl::ReconnectStep() {
  absl::StatusOr<std::unique_ptr<RedisConnection>> opened = Open(false);
  if (!opened.ok()) return opened.status();
  step_conn_ = std::move(*opened);
  absl::MutexLock lock(&mu_);
  ++stats_.reconnects;
  return absl::OkStatus();
}

absl::Status BullWorker::Impl::Run() {
  const int signal_slot = internal::RegisterStopWakeFd(wake_fd_);
  std::vector<std::thread> threads;
  threads.emplace_back([this] { WaiterLoop(); });
  threads.emplace_back([this] { MaintenanceLoop(); });
  if (!inline_handler_) {
    for (int i = 0; i < options_.concurrency; ++i) threads.emplace_back([this] { HandlerLoop(); });
  }

  std::vector<Finish> finishes;
  absl::Duration backoff = options_.reconnect_min;
  absl::Time idle_since = absl::Now();
  absl::Time next_claim = absl::InfinitePast();  // rate limit / delayed job due
  bool look = true;                              // claim on the next step
  absl::Time stop_deadline = absl::InfiniteFuture();

  while (true) {
    int in_flight;
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      std::move(done_.begin(), done_.end(), std::back_inserter(finishes));
      done_.clear();
      if (marker_seen_) {
        marker_seen_ = false;
        look = true;
      }
      NoteStop();
      stopping = stopping_;
      stop_deadline = stop_deadline_;
      in_flight = static_cast<int>(held_.size());
    }
    if (stopping) {
      ReleaseUnstarted(finishes);
      if (absl::Now() >= stop_deadline) {
        // Past the deadline: hand back what is still running; its handler's late result is
        // then refused by the lock check.
        absl::MutexLock lock(&mu_);
        for (const auto& [id, token] : held_) {
          const bool pending = std::any_of(finishes.begin(), finishes.end(),
                                           [&](const Finish& f) { return f.id == id; });
          if (!pending) finishes.push_back(Release(id, token));
        }
      }
      if (finishes.empty() && in_flight == 0) break;
    }
    // Jobs finished in this step free their slots in it.
    const int free_slots = options_.concurrency - in_flight + static_cast<int>(finishes.size());
    const absl::Time now = absl::Now();
    const bool claim = !stopping && look && free_slots > 0 && now >= next_claim;
    if (finishes.empty() && !claim) {
      if (in_flight == 0 && !stopping && options_.exit_when_idle &&
          now - idle_since >= *options_.exit_when_idle) {
        internal::LogInfo("BullMQ worker on {} idle for {}; exiting", queue_,
                          absl::FormatDuration(now - idle_since));
        Stop();
        continue;
      }
      absl::Duration wait = absl::Seconds(1);
      if (look && next_claim > now) wait = std::min(wait, next_claim - now);
      if (stopping) wait = std::min(wait, std::max(stop_deadline - now, absl::Milliseconds(1)));
      if (options_.exit_when_idle) {
        wait = std::min(
            wait, std::max(idle_since + *options_.exit_when_idle - now, absl::Milliseconds(1)));
      }
      WaitForWake(wait);
      continue;
    }
    absl::StatusOr<StepResult> step = Step(finishes, claim ? free_slots : 0);
    if (!step.ok()) {
      internal::LogWarn("BullMQ worker on {}: {}; retrying in {}", queue_, step.status().message(),
                        absl::FormatDuration(backoff));
      // The finishes stay queued; if the script did run, the retry finds the locks released
      // and writes nothing twice.
      WaitForWake(backoff);
      backoff = std::min(backoff * 2, options_.reconnect_max);
      if (!step_conn_->ok()) ReconnectStep().IgnoreError();
      continue;
    }
    backoff = options_.reconnect_min;
    finishes.clear();
    if (in_flight > 0 || step->claimed > 0) idle_since = absl::Now();
    if (inline_handler_) RunInline(finishes);
    if (!claim) continue;
    if (step->rate_limited_ms > 0) {
      next_claim = absl::Now() + absl::Milliseconds(step->rate_limited_ms);
    } else if (step->claimed < free_slots) {
      // Nothing more now: block on the marker until an add or the next delayed job is due.
      look = false;
      absl::Duration block = options_.drain_delay;
      if (step->next_delayed_at_ms > 0) {
        block = std::clamp(absl::FromUnixMillis(step->next_delayed_at_ms) - absl::Now(),
                           absl::Milliseconds(1), block);
      }
      RequestBlock(block);
    }
  }

  quit_.store(true);
  {
    absl::MutexLock lock(&mu_);
    if (block_conn_ != nullptr) block_conn_->Interrupt();
  }
  for (std::thread& t : threads) t.join();
  internal::UnregisterStopWakeFd(signal_slot);
  return absl::OkStatus();
}

void BullWorker::Impl::RunInline(std::vector<Finish>& finishes) {
  thread_local simdjson::dom::parser parser;
  thread_local std::mt19937_64 rng(std::random_device{}());
  while (true) {
    Claimed claimed;
    {
      absl::MutexLock lock(&mu_);
      if (ready_.empty() || stopping_) return;
      claimed = std::move(ready_.front());
      ready_.pop_front();
      running_.emplace(claimed.job.id, claimed.token);
      running_released_ = false;
    }
    Finish finish = Process(claimed, parser, rng);
    absl::MutexLock lock(&mu_);
    if (!running_released_) finishes.push_back(std::move(finish));
    running_.reset();
  }
}

// At shutdown, jobs claimed but not yet started go straight back to wait.
void BullWorker::Impl::ReleaseUnstarted(std::vector<Finish>& finishes) {
  absl::MutexLock lock(&mu_);
  for (Claimed& c : ready_) finishes.push_back(Release(c.job.id, c.token));
  ready_.clear();
}

BullWorker::BullWorker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BullWorker::~BullWorker() = default;

absl::StatusOr<std::unique_ptr<BullWorker>> BullWorker::Create(const Secret& redis_url,
                                                               absl::string_view queue,
                                                               BullHandler handler,
                                                               BullWorkerOptions options) {
  JQ_RETURN_IF_ERROR(internal::ValidateBullQueueName(queue));
  JQ_RETURN_IF_ERROR(options.Validate());
  if (!handler) return absl::InvalidArgumentError("BullMQ worker needs a handler");
  const int wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) return absl::InternalError("eventfd failed");
  auto impl = std::make_unique<Impl>(redis_url, std::string(queue), std::move(handler),
                                     std::move(options), wake_fd);
  JQ_RETURN_IF_ERROR(impl->Connect());
  return std::unique_ptr<BullWorker>(new BullWorker(std::move(impl)));
}

absl::Status BullWorker::Run() { return impl_->Run(); }
void BullWorker::Stop() { impl_->Stop(); }
BullWorkerStats BullWorker::stats() const { return impl_->stats(); }

}  // namespace jobqueue
