#include "jobqueue/bull_worker.h"

#include <poll.h>
#include <simdjson.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <exception>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "internal/log.h"
#include "internal/worker_common.h"
#include "jobqueue/json.h"
#include "jobqueue/status.h"
#include "redis/bull_finish.h"
#include "redis/bull_internal.h"

namespace jobqueue {

absl::Status BullUnrecoverableError(absl::string_view message) {
  absl::Status status = absl::FailedPreconditionError(message);
  status.SetPayload(internal::kBullUnrecoverablePayload, absl::Cord("1"));
  return status;
}

absl::Status BullErrorWithStacktrace(absl::Status error, absl::string_view stacktrace) {
  if (!error.ok() && !stacktrace.empty()) {
    error.SetPayload(internal::kBullStacktracePayload, absl::Cord(stacktrace));
  }
  return error;
}

absl::Status BullWorkerOptions::Validate() const {
  JQ_RETURN_IF_ERROR(internal::ValidateBullPrefixAndName(prefix, name));
  if (concurrency < 1 || concurrency > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("concurrency must be 1..1024, got ", concurrency));
  }
  if (prefetch < 0 || prefetch > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("prefetch must be 0..1024, got ", prefetch));
  }
  if (prefetch > 0 &&
      (prefetch_window <= absl::ZeroDuration() || prefetch_window > absl::Seconds(10))) {
    return absl::InvalidArgumentError("prefetch window must be positive and at most 10 s");
  }
  // Upper bounds: Redis refuses a PX beyond its range only inside the claim script, after it
  // moved jobs to active (they then stall); a year is far past any real lock or period.
  if (lock_duration < absl::Milliseconds(10) || lock_duration > internal::kMaxRedisPeriod) {
    return absl::InvalidArgumentError("lock duration must be 10 ms..365 days");
  }
  if (lock_renew_time < absl::ZeroDuration() || lock_renew_time >= lock_duration) {
    return absl::InvalidArgumentError("lock renew time must be below the lock duration");
  }
  if (stalled_interval < absl::Milliseconds(10) || stalled_interval > internal::kMaxRedisPeriod) {
    return absl::InvalidArgumentError("stalled interval must be 10 ms..365 days");
  }
  if (max_stalled_count < 0) return absl::InvalidArgumentError("max stalled count must be >= 0");
  if (drain_delay < absl::Milliseconds(10) || drain_delay > internal::kMaxRedisPeriod) {
    return absl::InvalidArgumentError("drain delay must be 10 ms..365 days");
  }
  if (limiter_max < 0 || (limiter_max > 0 && (limiter_duration <= absl::ZeroDuration() ||
                                              limiter_duration > internal::kMaxRedisPeriod))) {
    return absl::InvalidArgumentError("limiter needs max >= 1 and a duration of up to 365 days");
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
        token_prefix_(internal::BullTokenPrefix()) {
    if (options_.lock_renew_time == absl::ZeroDuration()) {
      options_.lock_renew_time = options_.lock_duration / 2;
    }
    inline_handler_ = options_.concurrency == 1;
    hold_limit_ = std::max(options_.prefetch_window * 10, absl::Milliseconds(50));
  }
  ~Impl() { ::close(wake_fd_); }

  absl::Status Connect();
  absl::Status Run();
  void Stop() {
    stop_.Request();
    internal::WakeFd(wake_fd_);
  }
  void StopNow() {
    stop_.RequestNow();
    internal::WakeFd(wake_fd_);
  }
  BullWorkerStats stats() const {
    absl::MutexLock lock(&mu_);
    return stats_;
  }

 private:
  class Context;
  using Claimed = internal::BullClaim;
  using Finish = internal::BullFinish;
  static Finish Release(const std::string& id, const std::string& token, bool started) {
    return internal::BullRelease(id, token, started);
  }
  // Drops a held job only under the claim (token) it was held with: a newer claim of the same
  // job (retried and claimed again meanwhile) stays held.
  void EraseHeld(const std::string& id, const std::string& token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (auto it = held_.find(id); it != held_.end() && it->second == token) held_.erase(it);
  }

  bool StopWanted() const { return stop_.Wanted(); }
  // Starts the shutdown clock once a stop is wanted.
  void NoteStop() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!stopping_ && StopWanted()) {
      stopping_ = true;
      stop_deadline_ = internal::MonotonicNow() + options_.shutdown_timeout;
    }
    if (stopping_ && !hurried_ && stop_.Hurry()) {
      hurried_ = true;
      stop_deadline_ = std::min(stop_deadline_, internal::MonotonicNow());
      internal::LogWarn("BullMQ worker on {}: stopped again: handing back running jobs now",
                        queue_);
    }
  }
  absl::StatusOr<std::unique_ptr<RedisConnection>> Open(bool named) {
    RedisOptions redis = options_.redis;
    if (named)
      redis.client_name = internal::BullWorkerClientName(options_.prefix, queue_, options_.name);
    return RedisConnection::Connect(url_, redis);
  }

  // A producer-side queue for handlers' progress and log calls, opened on first use.
  absl::StatusOr<BullQueue*> AdminQueue();
  void HandlerLoop();
  Finish Process(Claimed& claimed, simdjson::dom::parser& parser, std::mt19937_64& rng);
  // How many jobs to hold beyond the running ones: what the handlers get through in
  // prefetch_window at their recent pace, at most options_.prefetch.
  int Ahead() const;
  void WaiterLoop();
  void MaintenanceLoop();
  struct StepResult {
    int claimed = 0;
    int64_t rate_limited_ms = 0;
    int64_t next_delayed_at_ms = 0;  // 0: no delayed job
  };
  // One finish+claim script call; claimed jobs go to ready_.
  absl::StatusOr<StepResult> Step(std::vector<Finish>& finishes, int want, int handler_slots);
  // Books a step's outcome: finishes' results, claims into held_ and ready_, and as
  // prefetched the claims beyond `handler_slots` (the handlers free to take them now).
  StepResult Apply(internal::BullStepReply reply, const std::vector<Finish>& finishes,
                   int handler_slots);
  internal::BullStepRequest ClaimRequest(int want);
  // A claiming call went out and no reply came back: its claims may be locked under its
  // token prefix. Taken back by AdoptUnanswered once Redis answers again.
  void NoteUnanswered(const internal::BullStepRequest& request);
  // The number of jobs taken back (into ready_).
  int AdoptUnanswered();
  // Books claimed jobs as held and ready to run.
  void Hold(std::vector<Claimed>& claims) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Opens the named step connection (step_conn_) and learns its client id.
  absl::Status OpenStep();
  absl::Status ReconnectStep();
  void WaitForWake(absl::Duration timeout);
  // Sleeps up to `timeout`, less once the worker quits (for its own threads' pauses).
  void PauseUnlessQuitting(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](std::atomic<bool>* quit) { return quit->load(); }, &quit_),
                         timeout);
  }
  void RequestBlock(absl::Duration timeout);
  // With nothing held, Run()'s thread blocks on the marker itself (on the step connection),
  // with a claim pipelined behind the wait: Redis runs it as soon as an add ends the wait,
  // so the jobs come back with the wake-up. A stop (the wake descriptor) ends the wait with
  // CLIENT UNBLOCK and what was claimed is handed back as usual. False when a stop is
  // already due; else the jobs claimed (in ready_), or 0 when the claim did not run.
  std::optional<int> BlockHere(absl::Duration timeout);
  void ExitIdle(absl::Duration idle) {
    internal::LogInfo("BullMQ worker on {} idle for {}; exiting", queue_,
                      absl::FormatDuration(absl::Trunc(idle, absl::Milliseconds(1))));
    Stop();
  }
  // Past the shutdown deadline: hands the inline handler's job back to wait.
  void HandBackRunning(std::unique_ptr<RedisConnection>& conn, const Finish& release);
  // Jobs held ahead longer than hold_limit_ (a slow job came after fast ones and holds the
  // handlers): back to wait, so other workers can run them. The maintenance thread's work.
  void HandBackOverdue(std::unique_ptr<RedisConnection>& conn, std::vector<Finish> releases);
  // Sends inline results that waited past hold_limit_ behind a long inline job.
  void FlushInline(std::unique_ptr<RedisConnection>& conn, std::vector<Finish> done);
  // Opens `conn` again when it is missing or broken; false (after a pause) when that fails.
  bool EnsureOpen(std::unique_ptr<RedisConnection>& conn);
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
  internal::StopRequest stop_;
  std::atomic<bool> quit_{false};  // tells helper threads to exit
  // Recent time per job in Process (a moving average; 0 until the first job). Updates from
  // several handler threads may overwrite each other: it is only a pace estimate.
  std::atomic<int64_t> job_nanos_{0};

  std::unique_ptr<RedisConnection> step_conn_;  // Run()'s thread only
  std::string step_client_id_;                  // for CLIENT UNBLOCK; empty when unknown
  int64_t step_seq_ = 0;
  // Run()'s thread only: token prefixes of claiming calls without a reply, and when.
  std::vector<std::pair<std::string, absl::Time>> unanswered_steps_;
  absl::Time adopt_not_before_ = absl::InfinitePast();

  mutable absl::Mutex mu_;
  std::deque<Claimed> ready_ ABSL_GUARDED_BY(mu_);
  std::vector<Finish> done_ ABSL_GUARDED_BY(mu_);
  // Claimed and not yet finished in Redis: id -> token (lock renewal reads it).
  absl::flat_hash_map<std::string, std::string> held_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> ran_{false};  // Run() was called
  BullWorkerStats stats_ ABSL_GUARDED_BY(mu_);
  // The marker waiter: asked to block for up to block_timeout_, reports a wake-up.
  bool block_wanted_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration block_timeout_ ABSL_GUARDED_BY(mu_);
  bool marker_seen_ ABSL_GUARDED_BY(mu_) = false;
  RedisConnection* block_conn_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Concurrency 1 runs the handler on Run()'s thread (no hand-off between threads); past the
  // shutdown deadline the maintenance thread hands the running job back instead.
  bool inline_handler_ = false;
  absl::Duration hold_limit_;
  absl::Time stop_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool hurried_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<std::pair<std::string, std::string>> running_ ABSL_GUARDED_BY(mu_);  // id, token
  bool running_released_ ABSL_GUARDED_BY(mu_) = false;
  // Results of inline jobs not yet sent, and when the first of them was done.
  std::vector<Finish> inline_done_ ABSL_GUARDED_BY(mu_);
  absl::Time inline_first_done_ ABSL_GUARDED_BY(mu_);
  absl::Mutex admin_mu_;
  std::unique_ptr<BullQueue> admin_queue_ ABSL_GUARDED_BY(admin_mu_);
};

class BullWorker::Impl::Context : public BullJobContext {
 public:
  Context(Impl& impl, const Claimed& claimed) : impl_(impl), claimed_(claimed) {}
  const BullJob& job() const override { return claimed_.job; }
  const std::string& token() const override { return claimed_.token; }
  // A stop by Stop() or by a signal (StopWorkersOnSignals).
  bool stopping() const override { return impl_.StopWanted(); }
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
    simdjson::dom::element opts;
    if (parser.parse(opts_json).get(opts) != simdjson::SUCCESS) return 0;
    // Node stores it as "kl" (its opts encoding); "keepLogs" as a fallback for other writers.
    if (opts["kl"].get_double().get(keep) != simdjson::SUCCESS &&
        opts["keepLogs"].get_double().get(keep) != simdjson::SUCCESS) {
      return 0;
    }
    if (!(keep > 0)) return 0;
    return keep >= 9e18 ? int64_t{0} : static_cast<int64_t>(keep);
  }

  Impl& impl_;
  const Claimed& claimed_;
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
  // The step connection carries the worker's name (getWorkers lists it): it is open for the
  // worker's whole life, and an idle worker blocks on it.
  JQ_RETURN_IF_ERROR(OpenStep());
  return internal::CheckRedisVersionForWorkers(*step_conn_);
}

absl::Status BullWorker::Impl::OpenStep() {
  JQ_ASSIGN_OR_RETURN(step_conn_, Open(true));
  // A server that refuses CLIENT ID only loses the clean end of an idle wait on stop.
  absl::StatusOr<RedisReply> id = step_conn_->Command({"CLIENT", "ID"});
  step_client_id_ =
      id.ok() && id->type == RedisReply::Type::kInteger ? absl::StrCat(id->integer) : std::string();
  return absl::OkStatus();
}

internal::BullStepRequest BullWorker::Impl::ClaimRequest(int want) {
  internal::BullStepRequest request;
  request.want = want;
  request.lock_ms = absl::ToInt64Milliseconds(options_.lock_duration);
  request.worker_name = options_.name;
  request.token_prefix = absl::StrCat(token_prefix_, ":", ++step_seq_);
  request.limiter_max = options_.limiter_max;
  request.limiter_ms = absl::ToInt64Milliseconds(options_.limiter_duration);
  return request;
}

absl::StatusOr<BullWorker::Impl::StepResult> BullWorker::Impl::Step(std::vector<Finish>& finishes,
                                                                    int want, int handler_slots) {
  const internal::BullStepRequest request = ClaimRequest(want);
  absl::StatusOr<internal::BullStepReply> reply =
      internal::RunBullStep(*step_conn_, keys_, request, finishes);
  if (!reply.ok()) {
    NoteUnanswered(request);
    return reply.status();
  }
  return Apply(*std::move(reply), finishes, handler_slots);
}

void BullWorker::Impl::NoteUnanswered(const internal::BullStepRequest& request) {
  // Bounded through a long outage, where most calls never went out: the first ones, which
  // may have run before Redis went away, are the ones kept.
  constexpr size_t kMaxUnanswered = 64;
  if (request.want <= 0 || unanswered_steps_.size() >= kMaxUnanswered) return;
  unanswered_steps_.emplace_back(request.token_prefix, internal::MonotonicNow());
}

int BullWorker::Impl::AdoptUnanswered() {
  const absl::Time now = internal::MonotonicNow();
  // Past a lock duration their locks have expired (the stalled check's now), unless an
  // adoption that failed later renewed them; either way they are not looked for forever.
  std::erase_if(unanswered_steps_,
                [&](const auto& step) { return now - step.second > options_.lock_duration; });
  if (unanswered_steps_.empty() || now < adopt_not_before_ || !step_conn_->ok()) return 0;
  std::vector<std::string> prefixes;
  for (const auto& step : unanswered_steps_) prefixes.push_back(step.first);
  absl::StatusOr<std::vector<Claimed>> adopted = internal::AdoptBullClaims(
      *step_conn_, keys_, prefixes, absl::ToInt64Milliseconds(options_.lock_duration));
  if (!adopted.ok()) {
    internal::LogWarn("BullMQ worker on {}: looking for claims whose reply was lost: {}", queue_,
                      adopted.status().message());
    adopt_not_before_ = now + absl::Seconds(1);
    if (!step_conn_->ok()) ReconnectStep().IgnoreError();
    return 0;
  }
  unanswered_steps_.clear();
  if (adopted->empty()) return 0;
  internal::LogInfo(
      "BullMQ worker on {}: took back {} job(s) claimed by a call whose reply was lost", queue_,
      adopted->size());
  absl::MutexLock lock(&mu_);
  stats_.adopted += static_cast<int64_t>(adopted->size());
  Hold(*adopted);
  return static_cast<int>(adopted->size());
}

void BullWorker::Impl::Hold(std::vector<Claimed>& claims) {
  const absl::Time now = internal::MonotonicNow();
  for (Claimed& c : claims) {
    held_[c.job.id] = c.token;
    c.claimed_at = now;
    ready_.push_back(std::move(c));
  }
}

BullWorker::Impl::StepResult BullWorker::Impl::Apply(internal::BullStepReply reply,
                                                     const std::vector<Finish>& finishes,
                                                     int handler_slots) {
  absl::MutexLock lock(&mu_);
  ++stats_.steps;
  for (size_t i = 0; i < finishes.size(); ++i) {
    const int64_t code = reply.codes[i];
    EraseHeld(finishes[i].id, finishes[i].token);
    if (code != 0) {
      ++stats_.lost;
      internal::LogWarn("BullMQ job {} in {}: {}; its {} result was not written", finishes[i].id,
                        queue_, internal::BullFinishRefusal(code), finishes[i].kind);
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
  const int claimed = static_cast<int>(reply.claimed.size());
  if (claimed > handler_slots) stats_.prefetched += claimed - handler_slots;
  Hold(reply.claimed);
  return StepResult{claimed, reply.rate_limited_ms, reply.next_delayed_at_ms};
}

BullWorker::Impl::Finish BullWorker::Impl::Process(Claimed& claimed, simdjson::dom::parser& parser,
                                                   std::mt19937_64& rng) {
  const absl::Time start = internal::MonotonicNow();
  absl::StatusOr<std::string> result;
  if (std::optional<absl::Status> deferred = internal::BullDeferredFailure(claimed.job)) {
    // Stalled too often (marked by a stalled check): fail without running it.
    result = *std::move(deferred);
  } else {
    Context context(*this, claimed);
    result = internal::RunHandler(handler_, context);
    if (!result.ok() && StopWanted()) {
      // A handler that gave up because we are stopping has not used up an attempt.
      return Release(claimed.job.id, claimed.token, /*started=*/true);
    }
  }
  Finish finish =
      internal::BuildBullFinish(claimed.job, claimed.token, result, queue_, parser, rng);
  const int64_t took =
      std::max<int64_t>(absl::ToInt64Nanoseconds(internal::MonotonicNow() - start), 1);
  const int64_t average = job_nanos_.load(std::memory_order_relaxed);
  job_nanos_.store(average == 0 ? took : average + (took - average) / 8, std::memory_order_relaxed);
  return finish;
}

int BullWorker::Impl::Ahead() const {
  const int64_t average = job_nanos_.load(std::memory_order_relaxed);
  if (options_.prefetch == 0 || average == 0) return 0;
  const int64_t per_handler = absl::ToInt64Nanoseconds(options_.prefetch_window) / average;
  return static_cast<int>(std::min<int64_t>(per_handler * options_.concurrency, options_.prefetch));
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
      // Stopping: jobs not started yet are Run()'s to hand back.
      if (ready_.empty() || stopping_ || StopWanted()) return;
      claimed = std::move(ready_.front());
      ready_.pop_front();
    }
    Finish finish = Process(claimed, parser, rng);
    bool first;
    {
      absl::MutexLock lock(&mu_);
      first = done_.empty();
      done_.push_back(std::move(finish));
    }
    // Later ones ride on the first one's wake-up: Run() takes all of done_ at once.
    if (first) internal::WakeFd(wake_fd_);
  }
}

void BullWorker::Impl::RequestBlock(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (block_wanted_) return;
  block_wanted_ = true;
  block_timeout_ = timeout;
}

std::optional<int> BullWorker::Impl::BlockHere(absl::Duration timeout) {
  // Stale wake-ups are drained first, so only a new one (a stop) cancels the wait.
  uint64_t counter;
  while (::read(wake_fd_, &counter, sizeof(counter)) > 0) {
  }
  {
    absl::MutexLock lock(&mu_);
    NoteStop();
    if (stopping_ || !done_.empty()) return std::nullopt;
  }
  internal::BullStepRequest claim = ClaimRequest(options_.concurrency + Ahead());
  claim.server_time = true;  // it runs when the wait ends, maybe seconds from now
  bool ended_early = false;
  absl::StatusOr<std::vector<RedisReply>> replies = step_conn_->BlockingPipeline(
      {{"BZPOPMIN", keys_.Key("marker"), internal::BlockTimeoutArg(timeout)},
       internal::BullStepCommand(keys_, claim, {})},
      timeout, wake_fd_, [&] {
        ended_early = true;
        if (!step_client_id_.empty()) {
          absl::StatusOr<std::unique_ptr<RedisConnection>> side = Open(false);
          if (side.ok()) {
            absl::StatusOr<RedisReply> unblocked =
                (*side)->Command({"CLIENT", "UNBLOCK", step_client_id_});
            // 1: the wait was ended. 0: Redis had not started it yet (the UNBLOCK came first),
            // so it would run its full timeout.
            if (unblocked.ok() && unblocked->integer == 1) return;
          }
        }
        // Without CLIENT UNBLOCK the connection is given up, and with it the claim behind
        // the wait (unless it already ran: then AdoptUnanswered finds it and hands it back).
        step_conn_->Interrupt();
      });
  if (ended_early) internal::WakeFd(wake_fd_);  // the stop that ended it is seen by the loop
  if (!replies.ok()) {
    // The claim may have run if the wait ended before the connection broke.
    NoteUnanswered(claim);
    if (!step_conn_->ok()) ReconnectStep().IgnoreError();
    return 0;
  }
  if ((*replies)[0].is_error()) {
    // A wait Redis refuses (an ACL without BZPOPMIN, a marker key of the wrong type) would
    // come straight back: pause before the next one, as after a failed step.
    internal::LogWarn("BullMQ worker on {}: waiting on the marker: {}", queue_,
                      (*replies)[0].AsStatus("BZPOPMIN").message());
    WaitForWake(options_.reconnect_min * 10);
  }
  // An error here (NOSCRIPT after a SCRIPT FLUSH, say) mostly claimed nothing; the next step,
  // which loads the script, claims instead.
  absl::StatusOr<internal::BullStepReply> step =
      internal::ParseBullStepReply(std::move((*replies)[1]), 0);
  if (!step.ok()) {
    NoteUnanswered(claim);  // a script error midway leaves the claims before it locked
    return 0;
  }
  return Apply(*std::move(step), {}, options_.concurrency).claimed;
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
      absl::StatusOr<std::unique_ptr<RedisConnection>> opened = Open(false);
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
    absl::StatusOr<RedisReply> reply = conn->BlockingCommand(
        {"BZPOPMIN", keys_.Key("marker"), internal::BlockTimeoutArg(timeout)}, timeout);
    if (reply.ok() && reply->is_error()) {
      // A wait Redis refuses comes straight back: pause, as BlockHere does, so the dispatcher
      // and this loop do not spin against Redis.
      internal::LogWarn("BullMQ worker on {}: waiting on the marker: {}", queue_,
                        reply->AsStatus("BZPOPMIN").message());
      PauseUnlessQuitting(options_.reconnect_min * 10);
    }
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
  absl::Time next_renew = internal::MonotonicNow() + options_.lock_renew_time;
  absl::Time next_check = internal::MonotonicNow();  // at start, as Node does
  while (!quit_.load()) {
    const absl::Time now = internal::MonotonicNow();
    bool stopping;
    std::optional<Finish> hand_back;
    std::vector<Finish> overdue;
    std::vector<Finish> unsent;
    {
      absl::MutexLock lock(&mu_);
      NoteStop();  // Run()'s thread may be busy in an inline handler
      stopping = stopping_;
      if (stopping_ && now >= stop_deadline_ && running_ && !running_released_) {
        hand_back = Release(running_->first, running_->second, /*started=*/true);
      }
      while (!stopping_ && !ready_.empty() && now - ready_.front().claimed_at >= hold_limit_) {
        overdue.push_back(Release(ready_.front().job.id, ready_.front().token, /*started=*/false));
        ready_.pop_front();
      }
      // Handed back newest first, so they keep their order at the head of wait.
      std::reverse(overdue.begin(), overdue.end());
      // Finished ahead of an inline job that is taking long: out now, not when it ends.
      if (!stopping_ && !inline_done_.empty() && now - inline_first_done_ >= hold_limit_) {
        unsent.swap(inline_done_);
      }
    }
    if (hand_back || !overdue.empty() || !unsent.empty()) {
      if (hand_back) HandBackRunning(conn, *hand_back);
      if (!overdue.empty()) HandBackOverdue(conn, std::move(overdue));
      if (!unsent.empty()) FlushInline(conn, std::move(unsent));
      continue;
    }
    if (now < next_renew && (!options_.check_stalled || now < next_check)) {
      absl::Time until = next_renew;
      if (options_.check_stalled) until = std::min(until, next_check);
      // An inline handler keeps Run()'s thread busy: this thread watches for a stop instead.
      if (inline_handler_ || stopping) until = std::min(until, now + absl::Milliseconds(20));
      if (options_.prefetch > 0) until = std::min(until, now + hold_limit_ / 2);
      PauseUnlessQuitting(until - now);
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
      absl::flat_hash_map<std::string, std::string> sent;  // id -> token renewed
      {
        absl::MutexLock lock(&mu_);
        sent = held_;
      }
      for (const auto& [id, token] : sent) {
        args.push_back(id);
        args.push_back(token);
      }
      if (args.size() > 2) {
        absl::StatusOr<RedisReply> lost = internal::RunScript(
            *conn, internal::EvalSha(internal::k_extend_locks, keys_.worker_keys(), args));
        if (!lost.ok()) {
          // Waiting a whole renew period would land about when the locks expire: one failed
          // renewal would lose them, and another worker would run the jobs beside ours.
          next_renew = now + std::min(options_.lock_renew_time / 4, absl::Seconds(1));
          internal::LogWarn("BullMQ {}: cannot renew {} job lock(s), retrying soon: {}", queue_,
                            sent.size(), lost.status().ToString());
        }
        if (lost.ok() && lost->type == RedisReply::Type::kArray) {
          absl::MutexLock lock(&mu_);
          for (const RedisReply& id : lost->elements) {
            // A job finished by a step that ran meanwhile is no longer held, and one claimed
            // again meanwhile is held under a new token: neither is lost.
            const auto now_held = held_.find(id.str);
            if (now_held == held_.end() || now_held->second != sent[id.str]) continue;
            internal::LogWarn("BullMQ job {} in {}: lock lost before renewal", id.str, queue_);
            // One held ahead must not start now: another worker may have it already.
            const auto waiting = std::find_if(ready_.begin(), ready_.end(), [&](const Claimed& c) {
              return c.job.id == id.str && c.token == now_held->second;
            });
            if (waiting != ready_.end()) {
              ready_.erase(waiting);
              held_.erase(id.str);
              ++stats_.lost;
            }
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
                            {keys_.base(), absl::StrCat(absl::ToUnixMillis(absl::Now())),
                             absl::StrCat(options_.max_stalled_count),
                             absl::StrCat(absl::ToInt64Milliseconds(options_.stalled_interval))}));
      if (!recovered.ok()) {
        internal::LogWarn("BullMQ {}: stalled-job check failed: {}", queue_,
                          recovered.status().ToString());
      }
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

bool BullWorker::Impl::EnsureOpen(std::unique_ptr<RedisConnection>& conn) {
  if (conn != nullptr && conn->ok()) return true;
  absl::StatusOr<std::unique_ptr<RedisConnection>> opened = Open(false);
  if (!opened.ok()) {
    absl::SleepFor(options_.reconnect_min);
    return false;
  }
  conn = std::move(*opened);
  return true;
}

void BullWorker::Impl::HandBackOverdue(std::unique_ptr<RedisConnection>& conn,
                                       std::vector<Finish> releases) {
  absl::StatusOr<internal::BullStepReply> reply = absl::UnavailableError("no connection");
  if (EnsureOpen(conn)) {
    reply = internal::RunBullStep(*conn, keys_, internal::BullStepRequest(), releases);
  }
  absl::MutexLock lock(&mu_);
  if (!reply.ok()) {
    // Still held: Run()'s thread sends them with its next step. Dropped, they would sit active
    // until a stalled check, which counts a stall against jobs that never ran.
    std::move(releases.begin(), releases.end(), std::back_inserter(done_));
    internal::WakeFd(wake_fd_);
    return;
  }
  for (size_t i = 0; i < releases.size(); ++i) {
    EraseHeld(releases[i].id, releases[i].token);
    if (reply->codes[i] == 0) ++stats_.released;
  }
}

void BullWorker::Impl::HandBackRunning(std::unique_ptr<RedisConnection>& conn,
                                       const Finish& release) {
  if (!EnsureOpen(conn)) return;
  absl::StatusOr<internal::BullStepReply> reply =
      internal::RunBullStep(*conn, keys_, internal::BullStepRequest(), {release});
  absl::MutexLock lock(&mu_);
  running_released_ = true;  // tried once: a failure leaves the lock to expire
  if (reply.ok() && reply->codes.front() == 0) {
    EraseHeld(release.id, release.token);
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
  JQ_RETURN_IF_ERROR(OpenStep());
  absl::MutexLock lock(&mu_);
  ++stats_.reconnects;
  return absl::OkStatus();
}

absl::Status BullWorker::Impl::Run() {
  if (ran_.exchange(true)) {
    // A second Run() would share the step connection and the held-job books with the first.
    return absl::FailedPreconditionError("a BullMQ worker runs only once");
  }
  const int signal_slot = internal::RegisterStopWakeFd(wake_fd_);
  std::vector<std::thread> threads;
  threads.emplace_back([this] { WaiterLoop(); });
  threads.emplace_back([this] { MaintenanceLoop(); });
  if (!inline_handler_) {
    for (int i = 0; i < options_.concurrency; ++i) threads.emplace_back([this] { HandlerLoop(); });
  }

  std::vector<Finish> finishes;
  absl::Duration backoff = options_.reconnect_min;
  absl::Time idle_since = internal::MonotonicNow();
  absl::Time next_claim = absl::InfinitePast();  // rate limit / delayed job due
  bool look = true;                              // claim on the next step
  absl::Time stop_deadline = absl::InfiniteFuture();

  while (true) {
    if (AdoptUnanswered() > 0 && inline_handler_) RunInline(finishes);
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
      if (internal::MonotonicNow() >= stop_deadline) {
        // Past the deadline: hand back what is still running; its handler's late result is
        // then refused by the lock check.
        absl::MutexLock lock(&mu_);
        for (const auto& [id, token] : held_) {
          const bool pending = std::any_of(finishes.begin(), finishes.end(),
                                           [&](const Finish& f) { return f.id == id; });
          if (!pending) finishes.push_back(Release(id, token, /*started=*/true));
        }
      }
      if (finishes.empty() && in_flight == 0) break;
    }
    // Jobs finished in this step free their slots in it; in_flight counts jobs held ahead.
    const int handler_slots =
        std::max(options_.concurrency - in_flight + static_cast<int>(finishes.size()), 0);
    const int free_slots =
        options_.concurrency + Ahead() - in_flight + static_cast<int>(finishes.size());
    const absl::Time now = internal::MonotonicNow();
    const bool claim = !stopping && look && free_slots > 0 && now >= next_claim;
    if (finishes.empty() && !claim) {
      if (in_flight == 0 && !stopping && options_.exit_when_idle &&
          now - idle_since >= *options_.exit_when_idle) {
        ExitIdle(now - idle_since);
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
    absl::StatusOr<StepResult> step = Step(finishes, claim ? free_slots : 0, handler_slots);
    if (!step.ok() && stopping && internal::MonotonicNow() >= stop_deadline) {
      // Past the deadline with Redis unreachable: stop anyway. The locks expire and a stalled
      // check returns these jobs to wait.
      internal::LogWarn("BullMQ worker on {}: stopping with {} result(s) unwritten: {}", queue_,
                        finishes.size(), step.status().message());
      break;
    }
    if (!step.ok()) {
      // An outage counts as idle time: a scaled-to-zero worker with nothing held or unsent
      // must not wait out a Redis that is gone.
      const absl::Time failed_at = internal::MonotonicNow();
      if (in_flight > 0) idle_since = failed_at;
      absl::Duration wait = backoff;
      if (in_flight == 0 && finishes.empty() && !stopping && options_.exit_when_idle) {
        const absl::Duration left = idle_since + *options_.exit_when_idle - failed_at;
        if (left <= absl::ZeroDuration()) {
          ExitIdle(failed_at - idle_since);
          continue;
        }
        wait = std::min(wait, left);
      }
      internal::LogWarn("BullMQ worker on {}: {}; retrying in {}", queue_, step.status().message(),
                        absl::FormatDuration(wait));
      // The finishes stay queued; if the script did run, the retry finds the locks released
      // and writes nothing twice.
      WaitForWake(wait);
      backoff = std::min(backoff * 2, options_.reconnect_max);
      if (!step_conn_->ok()) ReconnectStep().IgnoreError();
      continue;
    }
    backoff = options_.reconnect_min;
    finishes.clear();
    if (in_flight > 0 || step->claimed > 0) idle_since = internal::MonotonicNow();
    if (inline_handler_) RunInline(finishes);
    if (!claim) continue;
    if (step->rate_limited_ms > 0) {
      next_claim = internal::MonotonicNow() + absl::Milliseconds(step->rate_limited_ms);
    } else if (step->claimed < free_slots &&
               (step->claimed == 0 || step->claimed < handler_slots)) {
      // Nothing more now: block on the marker until an add or the next delayed job is due.
      // Not while every free handler got a job and only the claim ahead came up short: the
      // next step claims again, and an idle worker then blocks on its own connection
      // (BlockHere) rather than through the marker thread, which costs a wake-up more.
      look = false;
      absl::Duration block = options_.drain_delay;
      if (step->next_delayed_at_ms > 0) {
        block = std::clamp(absl::FromUnixMillis(step->next_delayed_at_ms) - absl::Now(),
                           absl::Milliseconds(1), block);
      }
      bool idle;
      {
        absl::MutexLock lock(&mu_);
        // Not while the marker thread still blocks from earlier: two waiters on one marker.
        idle = held_.empty() && done_.empty() && !block_wanted_;
      }
      if (idle) {
        const absl::Time after = internal::MonotonicNow();
        if (options_.exit_when_idle) {
          const absl::Duration left = idle_since + *options_.exit_when_idle - after;
          if (left <= absl::ZeroDuration()) {
            ExitIdle(after - idle_since);
            continue;
          }
          block = std::min(block, left);
        }
        if (std::optional<int> claimed = BlockHere(block)) {
          look = true;
          if (*claimed > 0) {
            idle_since = internal::MonotonicNow();
            if (inline_handler_) RunInline(finishes);
          }
          continue;
        }
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
    // Jobs held ahead run here back to back; their finishes go out together, but none waits
    // longer than prefetch_window for the next step (nor, while a long job runs here, longer
    // than hold_limit_: the maintenance thread sends them).
    Claimed claimed;
    {
      absl::MutexLock lock(&mu_);
      if (!inline_done_.empty() &&
          internal::MonotonicNow() - inline_first_done_ >= options_.prefetch_window) {
        break;
      }
      if (ready_.empty() || stopping_ || StopWanted()) break;
      claimed = std::move(ready_.front());
      ready_.pop_front();
      running_.emplace(claimed.job.id, claimed.token);
      running_released_ = false;
    }
    Finish finish = Process(claimed, parser, rng);
    absl::MutexLock lock(&mu_);
    if (!running_released_) {
      if (inline_done_.empty()) inline_first_done_ = internal::MonotonicNow();
      inline_done_.push_back(std::move(finish));
    }
    running_.reset();
  }
  absl::MutexLock lock(&mu_);
  std::move(inline_done_.begin(), inline_done_.end(), std::back_inserter(finishes));
  inline_done_.clear();
}

void BullWorker::Impl::FlushInline(std::unique_ptr<RedisConnection>& conn,
                                   std::vector<Finish> done) {
  absl::StatusOr<internal::BullStepReply> reply = absl::UnavailableError("no connection");
  if (EnsureOpen(conn)) {
    reply = internal::RunBullStep(*conn, keys_, internal::BullStepRequest(), done);
  }
  if (reply.ok()) {
    Apply(*std::move(reply), done, 0);
    return;
  }
  // Run()'s thread sends them with its next step (it takes done_ every turn; inline_done_ only
  // after an inline pass, which a stopping worker may not make again).
  absl::MutexLock lock(&mu_);
  std::move(done.begin(), done.end(), std::back_inserter(done_));
  internal::WakeFd(wake_fd_);
}

// At shutdown, jobs claimed but not yet started go straight back to wait.
void BullWorker::Impl::ReleaseUnstarted(std::vector<Finish>& finishes) {
  absl::MutexLock lock(&mu_);
  // Newest first: each goes to the head of wait, so they keep their order there (as overdue
  // ones do).
  for (auto c = ready_.rbegin(); c != ready_.rend(); ++c) {
    finishes.push_back(Release(c->job.id, c->token, /*started=*/false));
  }
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
void BullWorker::StopNow() { impl_->StopNow(); }
BullWorkerStats BullWorker::stats() const { return impl_->stats(); }

}  // namespace jobqueue
