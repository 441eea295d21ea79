#include "jobqueue/worker.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <exception>
#include <iterator>
#include <random>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "internal/log.h"
#include "internal/worker_common.h"
#include "jobqueue/json.h"
#include "jobqueue/status.h"
#include "pg/connection.h"
#include "pg/jsonb_text.h"
#include "pg/queue_sql.h"

namespace jobqueue {
namespace {

// How soon an idle dispatcher looks again when a due job exists but was locked by someone else.
constexpr absl::Duration kLockedDueRecheck = absl::Milliseconds(25);

std::string DefaultWorkerId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::random_device rd;
  return absl::StrFormat("%s:%d:%08x", host, getpid(), rd());
}

}  // namespace

absl::Status WorkerOptions::Validate() const {
  if (name.empty()) return absl::InvalidArgumentError("worker name is empty");
  if (!worker_id.empty()) JQ_RETURN_IF_ERROR(internal::ValidateWorkerId(worker_id));
  JQ_RETURN_IF_ERROR(ValidateName("queue", queue));
  if (concurrency < 1 || concurrency > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("concurrency must be 1..1024, got ", concurrency));
  }
  if (dispatchers < 1 || dispatchers > 16) {
    return absl::InvalidArgumentError(absl::StrCat("dispatchers must be 1..16, got ", dispatchers));
  }
  if (batch_size < 0 || batch_size > 10000) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch size must be 0..10000, got ", batch_size));
  }
  if (poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("poll interval must be positive");
  }
  if (transaction_budget < absl::ZeroDuration() || transaction_budget > absl::Seconds(10)) {
    return absl::InvalidArgumentError(absl::StrCat("transaction budget must be 0..10s, got ",
                                                   absl::FormatDuration(transaction_budget)));
  }
  if (heartbeat_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("heartbeat interval must be positive");
  }
  JQ_RETURN_IF_ERROR(internal::ValidateShutdownOptions(shutdown_timeout, exit_when_idle,
                                                       reconnect_min, reconnect_max));
  return absl::OkStatus();
}

class Worker::Impl {
 public:
  Impl(PgQueue* queue, WorkerOptions options, int wake_fd)
      : queue_(queue), options_(std::move(options)), wake_fd_(wake_fd) {
    if (options_.worker_id.empty()) options_.worker_id = DefaultWorkerId();
    capacity_ = options_.batch_size > 0 ? std::max(options_.batch_size, options_.concurrency)
                                        : 2 * options_.concurrency;
    per_claim_ = std::min(10000, std::max(1, capacity_ / options_.dispatchers));
  }
  ~Impl() { ::close(wake_fd_); }

  absl::Status Register(absl::string_view job_type, JobHandler handler) {
    JQ_RETURN_IF_ERROR(ValidateName("job type", job_type));
    if (!handler) return absl::InvalidArgumentError("handler is empty");
    absl::MutexLock lock(&mu_);
    if (started_) return absl::FailedPreconditionError("register handlers before Run()");
    auto [it, inserted] = handlers_.emplace(std::string(job_type), std::move(handler));
    if (!inserted) {
      return absl::AlreadyExistsError(
          absl::StrCat("a handler for job type ", job_type, " is already registered"));
    }
    types_.push_back(std::string(job_type));
    return absl::OkStatus();
  }

  absl::Status Run();
  void Stop() {
    stop_.Request();
    internal::WakeFd(wake_fd_);
  }
  void StopNow() {
    stop_.RequestNow();
    internal::WakeFd(wake_fd_);
  }
  WorkerStats stats() const {
    absl::MutexLock lock(&mu_);
    return stats_;
  }
  const std::string& worker_id() const { return options_.worker_id; }

 private:
  class Context : public JobContext {
   public:
    Context(const Lease& lease, const Impl* impl) : lease_(lease), impl_(impl) {}
    const Lease& lease() const override { return lease_; }
    bool stopping() const override { return impl_->shutting_down_.load(); }

   private:
    const Lease& lease_;
    const Impl* impl_;
  };

  bool StopWanted() const { return stop_.Wanted(); }
  void HandlerLoop();
  void RunOne(const Lease& lease);
  // A handler error on an ordinary lease: lost, released (stopping) or failed.
  void FinishUnsuccessful(const Lease& lease, const absl::Status& error);
  void FailJob(const Lease& lease, const absl::Status& error);
  // Books the outcome of writing a failure; one that could not be written is kept to retry.
  void RecordFailure(const Lease& lease, std::string message,
                     const absl::StatusOr<FailOutcome>& outcome);
  // Writes the failures kept during an outage (once each; still failing, they stay kept).
  // Writes handler failures an outage kept; an error if any is still not written.
  absl::Status RetryUnrecordedFailures();
  void LogFailure(const Lease& lease, absl::string_view message, bool will_retry) {
    internal::LogWarn("job {} ({}) attempt {}/{} failed: {}{}", lease.job_id, lease.job_type,
                      lease.attempt, lease.max_attempts, message,
                      will_retry ? "; will retry" : "; giving up");
  }
  ClaimRequest NextClaim(int limit) const {
    ClaimRequest request;
    request.worker_id = options_.worker_id;
    request.queue = options_.queue;
    request.job_types = types_;
    request.limit = limit;
    return request;
  }
  struct ExchangeResult {
    int limit = 0;  // jobs asked for
    int claimed = 0;
    int flushed = 0;  // completions sent
  };
  // One CompleteAndClaim round trip: flushes the completions and, with `claim`, claims what
  // the free capacity allows. On error the completions are kept for the next try.
  absl::StatusOr<ExchangeResult> Exchange(bool claim);
  void CompleteOneByOne(std::vector<PgQueue::Completion> done);
  // Jobs of a held batch that are no longer this worker's (rolled back, or taken by another
  // transaction mid-settle): queued ones must not start, running ones' results are dropped.
  void DropHeldJobs(absl::Span<const int64_t> ids) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Short-job mode's round: claims a held batch, waits for it up to the budget, settles it.
  absl::StatusOr<ExchangeResult> HeldRound();
  absl::StatusOr<ExchangeResult> Round() {
    absl::StatusOr<ExchangeResult> result =
        options_.transaction_budget > absl::ZeroDuration() ? HeldRound() : Exchange(/*claim=*/true);
    // A round that sent nothing (no free slot) proves nothing about the schema.
    if (result.ok() && (result->limit > 0 || result->flushed > 0)) worked_ = true;
    return result;
  }
  // Jobs this worker holds in any form (leases and held-batch jobs), and runs it still owes a
  // thread to (a job of a held batch that rolled back holds nothing, but its handler runs on).
  int HeldCount() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return static_cast<int>(held_.size() + held_slots_.size() + given_back_.size());
  }
  // The lease a job is held under now (a held-batch job gets a new one at its settle, and a
  // job claimed again while its older run is here carries on under the new one).
  Lease CurrentLease(const Lease& claimed) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = held_.find(claimed.job_id);
    return it == held_.end() ? claimed : it->second;
  }
  static bool SameLease(const Lease& a, const Lease& b) {
    return a.job_id == b.job_id && a.attempt == b.attempt && a.claimed_at_us == b.claimed_at_us;
  }
  // Drops `lease` once its outcome is written, unless the job was claimed again meanwhile (a
  // newer lease is held: that one stays).
  void Forget(const Lease& lease) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = held_.find(lease.job_id);
    if (it != held_.end() && SameLease(it->second, lease)) held_.erase(it);
  }
  // Takes a fresh claim of a job an older lease of ours is still held for.
  void AdoptReclaimed(Lease lease) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Extra dispatchers (options.dispatchers > 1) only exchange; the main one listens,
  // heartbeats and decides when to stop.
  void PumpLoop();
  void WakePumps() {
    absl::MutexLock lock(&mu_);
    pump_cv_.SignalAll();
  }
  void Heartbeat();
  // True (and the next one scheduled) when a heartbeat is due: whichever dispatcher asks first
  // sends it, the main one between rounds or one waiting out a held batch's budget.
  bool HeartbeatDue() {
    absl::MutexLock lock(&mu_);
    return HeartbeatDueLocked();
  }
  bool HeartbeatDueLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const absl::Time now = internal::MonotonicNow();
    if (now < next_heartbeat_) return false;
    next_heartbeat_ = now + options_.heartbeat_interval;
    return true;
  }
  // Hands back jobs processing under our id that we do not hold (claims whose reply was lost)
  // if a failure may have left some. False when the database did not take it.
  bool ReleaseOrphans();
  absl::Status EnsureListening();
  void DropListener();
  // Reads the listening connection's notifications without blocking.
  void DrainListener();
  void WaitForWake(absl::Duration timeout);
  void Shutdown();
  // Releases leases at a stop (unstarted, or overdue at the deadline) and forgets them.
  // Returns the job ids not released (lease lost, or the database did not answer).
  absl::flat_hash_set<int64_t> GiveBack(absl::Span<const Lease> leases);

  PgQueue* const queue_;
  WorkerOptions options_;
  const int wake_fd_;
  int capacity_ = 1;
  internal::StopRequest stop_;
  std::atomic<bool> shutting_down_{false};
  // Some dispatcher's round claimed or finished jobs: the schema and rights were fine once.
  std::atomic<bool> worked_{false};

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool quit_threads_ ABSL_GUARDED_BY(mu_) = false;
  bool quit_pumps_ ABSL_GUARDED_BY(mu_) = false;
  int reserved_ ABSL_GUARDED_BY(mu_) = 0;  // claim slots of round trips in flight
  absl::CondVar pump_cv_;
  int per_claim_ = 1;
  std::vector<std::thread> pumps_;
  absl::flat_hash_map<std::string, JobHandler> handlers_;  // read-only once started
  std::vector<std::string> types_;
  std::deque<Lease> ready_ ABSL_GUARDED_BY(mu_);
  std::vector<PgQueue::Completion> done_ ABSL_GUARDED_BY(mu_);
  // Handler failures the database did not take (an outage): still held, written later.
  std::vector<std::pair<Lease, std::string>> unrecorded_failures_ ABSL_GUARDED_BY(mu_);
  // Every lease this worker holds in the database: ready, running, or done but not flushed.
  absl::flat_hash_map<int64_t, Lease> held_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<int64_t> running_ ABSL_GUARDED_BY(mu_);
  // Leases handed back at shutdown while their handler still ran: their results are dropped.
  absl::flat_hash_set<int64_t> given_back_ ABSL_GUARDED_BY(mu_);
  // Jobs of held batches not yet settled, with their handler's outcome once it finished.
  struct HeldSlot {
    int* unfinished = nullptr;  // the owning round's count
    bool finished = false;
    absl::StatusOr<std::string> result;
  };
  absl::flat_hash_map<int64_t, HeldSlot> held_slots_ ABSL_GUARDED_BY(mu_);
  // Jobs an unsettled held batch claimed again while an older lease of ours is still held: a
  // run ending meanwhile waits for the settle, to be written under the lease it brings.
  absl::flat_hash_set<int64_t> adopting_ ABSL_GUARDED_BY(mu_);
  WorkerStats stats_ ABSL_GUARDED_BY(mu_);
  absl::Time next_heartbeat_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::vector<std::thread> threads_;

  // Dispatcher-only state.
  std::unique_ptr<internal::PgConnection> listener_;
  bool waiting_registered_ = false;
  int listener_pid_ = 0;  // the server pid of listener_'s session
  // A claim or settle failed after it may have committed: some rows may be processing under
  // our id without our knowing. Checked by the main dispatcher once the database answers.
  bool orphans_possible_ ABSL_GUARDED_BY(mu_) = false;
  int settling_ ABSL_GUARDED_BY(mu_) = 0;                // held-batch settles in flight
  bool releasing_orphans_ ABSL_GUARDED_BY(mu_) = false;  // no claims or settles start
};

void Worker::Impl::HandlerLoop() {
  while (true) {
    Lease lease;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Impl* impl) ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl->mu_) {
            return !impl->ready_.empty() || impl->quit_threads_;
          },
          this));
      if (ready_.empty()) return;
      lease = std::move(ready_.front());
      ready_.pop_front();
      running_.insert(lease.job_id);
    }
    RunOne(lease);
  }
}

void Worker::Impl::RunOne(const Lease& claimed) {
  Context context(claimed, this);
  absl::StatusOr<std::string> result =
      internal::RunHandler(handlers_.at(claimed.job_type), context);
  if (result.ok()) {
    // Refused here, the job fails alone; refused by Postgres, it would sink the whole batch.
    if (absl::Status storable = internal::ValidateStorableValidJson(*result); !storable.ok()) {
      result = absl::InvalidArgumentError(absl::StrCat("handler result is ", storable.message()));
    }
  }
  Lease lease;
  {
    absl::MutexLock lock(&mu_);
    // Written now under the old lease, the outcome would be refused and the job run again.
    const int64_t id = claimed.job_id;
    auto settled = [this, id]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !adopting_.contains(id); };
    mu_.Await(absl::Condition(&settled));
    running_.erase(id);
    if (auto slot = held_slots_.find(claimed.job_id); slot != held_slots_.end()) {
      // Its held batch writes the outcome.
      slot->second.finished = true;
      slot->second.result = std::move(result);
      --*slot->second.unfinished;
      return;
    }
    lease = CurrentLease(claimed);
    if (given_back_.erase(lease.job_id) > 0) {
      // Nothing to write; its thread is free for a claim.
      internal::WakeFd(wake_fd_);
      pump_cv_.SignalAll();
      return;
    }
    if (result.ok()) {
      done_.push_back({lease, *std::move(result)});
      if (done_.size() == 1) {
        internal::WakeFd(wake_fd_);
        pump_cv_.SignalAll();
      }
      return;
    }
  }
  FinishUnsuccessful(lease, result.status());
}

void Worker::Impl::FinishUnsuccessful(const Lease& lease, const absl::Status& error) {
  if (IsLeaseLost(error)) {
    absl::MutexLock lock(&mu_);
    Forget(lease);
    ++stats_.lost;
    internal::WakeFd(wake_fd_);
    return;
  }
  if (shutting_down_.load()) {
    // A handler that gave up because we are stopping has not used up an attempt.
    absl::Status released = queue_->Release(lease);
    if (!released.ok()) {
      internal::LogWarn("job {} ({}): cannot hand it back: {}", lease.job_id, lease.job_type,
                        released.ToString());
    }
    absl::MutexLock lock(&mu_);
    Forget(lease);
    if (released.ok()) ++stats_.released;
    if (!released.ok() && !IsLeaseLost(released)) orphans_possible_ = true;
    internal::WakeFd(wake_fd_);
    return;
  }
  FailJob(lease, error);
}

void Worker::Impl::FailJob(const Lease& lease, const absl::Status& error) {
  std::string message(error.message());
  absl::StatusOr<FailOutcome> outcome = queue_->Fail(lease, message);
  // A connection blip is retried here a few times; a longer outage keeps the failure to write
  // once rounds work again.
  absl::Duration backoff = options_.reconnect_min;
  for (int i = 0; i < 5 && !outcome.ok() && absl::IsUnavailable(outcome.status()); ++i) {
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, options_.reconnect_max);
    outcome = queue_->Fail(lease, message);
  }
  RecordFailure(lease, std::move(message), outcome);
}

void Worker::Impl::RecordFailure(const Lease& lease, std::string message,
                                 const absl::StatusOr<FailOutcome>& outcome) {
  absl::MutexLock lock(&mu_);
  if (outcome.ok()) {
    Forget(lease);
    ++stats_.failed;
    LogFailure(lease, message, outcome->will_retry);
    internal::WakeFd(wake_fd_);  // a slot is free
    return;
  }
  if (IsLeaseLost(outcome.status()) || absl::IsNotFound(outcome.status())) {
    Forget(lease);
    ++stats_.lost;
    internal::WakeFd(wake_fd_);
    return;
  }
  if (absl::IsInvalidArgument(outcome.status())) {
    // Refused for good (even without its error text): kept, it would hold a slot and be
    // retried forever. Left processing, unheartbeated, for the stale-lock reaper.
    internal::LogError(
        "job {} ({}): Postgres refuses to record its failure, leaving it to the stale-lock "
        "reaper: {}",
        lease.job_id, lease.job_type, outcome.status().ToString());
    Forget(lease);
    internal::WakeFd(wake_fd_);
    return;
  }
  // No wake-up here: the main dispatcher retries at its next round, after its backoff (waking
  // it made a worker whose slots were all taken retry in a tight loop through an outage).
  // The job is still ours and its attempt used: it stays held (heartbeated, its slot taken, and
  // not mistaken for a claim lost in the outage, which would be released with the attempt given
  // back) until the failure is written.
  internal::LogWarn("job {} ({}): cannot record its failure yet, will retry: {}", lease.job_id,
                    lease.job_type, outcome.status().ToString());
  unrecorded_failures_.emplace_back(lease, std::move(message));
}

absl::Status Worker::Impl::RetryUnrecordedFailures() {
  std::vector<std::pair<Lease, std::string>> failures;
  {
    absl::MutexLock lock(&mu_);
    failures.swap(unrecorded_failures_);
  }
  absl::Status first_error;
  for (auto& [lease, message] : failures) {
    absl::StatusOr<FailOutcome> outcome = queue_->Fail(lease, message);
    if (!outcome.ok() && !IsLeaseLost(outcome.status()) && !absl::IsNotFound(outcome.status()) &&
        !absl::IsInvalidArgument(outcome.status())) {  // RecordFailure gave those up
      first_error.Update(outcome.status());
    }
    RecordFailure(lease, std::move(message), outcome);
  }
  return first_error;
}

absl::StatusOr<Worker::Impl::ExchangeResult> Worker::Impl::Exchange(bool claim) {
  std::vector<PgQueue::Completion> done;
  int limit = 0;
  {
    absl::MutexLock lock(&mu_);
    done.swap(done_);
    if (claim) {
      // Jobs done but not yet flushed leave with this round trip: their slots are free. Other
      // dispatchers' claims in flight have reserved theirs.
      const int held = HeldCount() - static_cast<int>(done.size());
      limit = releasing_orphans_ ? 0 : std::clamp(capacity_ - held - reserved_, 0, per_claim_);
      reserved_ += limit;
    }
  }
  ExchangeResult out;
  out.limit = limit;
  out.flushed = static_cast<int>(done.size());
  if (done.empty() && limit == 0) return out;
  absl::StatusOr<PgQueue::CompleteAndClaimResult> result =
      queue_->CompleteAndClaim(done, NextClaim(limit));
  if (!result.ok() && absl::IsInvalidArgument(result.status()) && !done.empty()) {
    // A value in the batch was refused (a check missed it): nothing was written. Finishing
    // one by one lets the bad one fail alone instead of every later round failing with it.
    {
      absl::MutexLock lock(&mu_);
      reserved_ -= limit;
    }
    internal::LogWarn("completing {} job(s) one by one: {}", done.size(),
                      result.status().ToString());
    CompleteOneByOne(std::move(done));
    out.limit = 0;
    return out;
  }
  absl::MutexLock lock(&mu_);
  reserved_ -= limit;
  if (!result.ok()) {
    done_.insert(done_.begin(), std::make_move_iterator(done.begin()),
                 std::make_move_iterator(done.end()));
    if (limit > 0) orphans_possible_ = true;  // it may have committed a claim we never saw
    return result.status();
  }
  ++stats_.claims;
  for (const PgQueue::Completion& completion : done) Forget(completion.lease);
  // A completion resent after a lost reply and already written is done, not lost.
  const int64_t lost =
      static_cast<int64_t>(result->lost_job_ids.size() - result->already_completed_job_ids.size());
  stats_.lost += lost;
  stats_.completed += static_cast<int64_t>(done.size()) - lost;
  out.claimed = static_cast<int>(result->claimed.size());
  for (Lease& lease : result->claimed) {
    if (held_.contains(lease.job_id)) {
      AdoptReclaimed(std::move(lease));
      continue;
    }
    held_.emplace(lease.job_id, lease);
    ready_.push_back(std::move(lease));
  }
  return out;
}

void Worker::Impl::AdoptReclaimed(Lease lease) {
  // The reaper recovered the job while this worker had it, and our claim took it again: the
  // database knows only the new lease. A run of it still queued, running, or done and not yet
  // written carries on under the new lease instead of running twice here. Only a run whose
  // outcome is being written now (under the old lease, to be refused) is followed by a new one.
  const int64_t id = lease.job_id;
  held_[id] = lease;
  if (running_.contains(id)) return;  // RunOne finishes it under CurrentLease()
  for (Lease& queued : ready_) {
    if (queued.job_id == id) {
      queued = std::move(lease);
      return;
    }
  }
  for (PgQueue::Completion& finished : done_) {
    if (finished.lease.job_id == id) {
      finished.lease = std::move(lease);
      return;
    }
  }
  ready_.push_back(std::move(lease));
}

void Worker::Impl::CompleteOneByOne(std::vector<PgQueue::Completion> done) {
  for (PgQueue::Completion& completion : done) {
    absl::Status completed = queue_->Complete(completion.lease, completion.result_json);
    if (absl::IsInvalidArgument(completed)) {
      FailJob(completion.lease, absl::InvalidArgumentError(absl::StrCat(
                                    "handler result refused by Postgres: ", completed.message())));
      continue;
    }
    absl::MutexLock lock(&mu_);
    if (completed.ok() || IsLeaseLost(completed) || absl::IsNotFound(completed)) {
      Forget(completion.lease);
      ++(completed.ok() ? stats_.completed : stats_.lost);
    } else {
      done_.push_back(std::move(completion));  // transient: the next round tries again
    }
  }
  internal::WakeFd(wake_fd_);
}

void Worker::Impl::DropHeldJobs(absl::Span<const int64_t> ids) {
  // Only the batch's own jobs: an adopted one is queued under its older lease, which the
  // heartbeat finds lost.
  absl::flat_hash_set<int64_t> dropped;
  for (int64_t id : ids) {
    auto slot = held_slots_.find(id);
    if (slot == held_slots_.end()) continue;
    if (!slot->second.finished && running_.contains(id)) given_back_.insert(id);
    held_slots_.erase(slot);
    dropped.insert(id);
  }
  if (dropped.empty()) return;
  ready_.erase(std::remove_if(ready_.begin(), ready_.end(),
                              [&](const Lease& l) { return dropped.contains(l.job_id); }),
               ready_.end());
}

absl::StatusOr<Worker::Impl::ExchangeResult> Worker::Impl::HeldRound() {
  // Completions of jobs that outlived an earlier batch's budget (nothing to send: no I/O).
  JQ_ASSIGN_OR_RETURN(ExchangeResult out, Exchange(/*claim=*/false));
  {
    absl::MutexLock lock(&mu_);
    out.limit =
        releasing_orphans_ ? 0 : std::clamp(capacity_ - HeldCount() - reserved_, 0, per_claim_);
    reserved_ += out.limit;
  }
  if (out.limit == 0) return out;
  absl::StatusOr<std::unique_ptr<PgQueue::HeldBatch>> batch =
      queue_->ClaimHeld(NextClaim(out.limit));
  int unfinished = 0;
  std::vector<Lease> mine;  // the batch's jobs this round runs
  // Jobs the reaper took back while this worker still had them (queued, running or done):
  // kept at the settle, they carry on under the new lease instead of running again.
  absl::flat_hash_set<int64_t> adopt;
  // Their runs' results not yet written: kept back until the settle gives them the new lease.
  std::vector<PgQueue::Completion> parked;
  {
    absl::MutexLock lock(&mu_);
    reserved_ -= out.limit;
    if (!batch.ok()) return batch.status();
    ++stats_.claims;
    for (const Lease& lease : (*batch)->leases()) {
      if (held_.contains(lease.job_id)) {
        adopt.insert(lease.job_id);
        adopting_.insert(lease.job_id);
        continue;
      }
      // A job another of our batches retried with no backoff can be claimed again between
      // that batch's commit and its cleanup, and a job of a batch that rolled back while its
      // handler ran is pending again: leave such jobs untouched here (they stay pending).
      if (running_.contains(lease.job_id)) continue;
      auto [slot, fresh] = held_slots_.try_emplace(lease.job_id);
      if (!fresh) continue;
      slot->second.unfinished = &unfinished;
      ready_.push_back(lease);
      mine.push_back(lease);
      ++unfinished;
    }
    if (!adopt.empty()) {
      auto adopted = [&](const PgQueue::Completion& c) { return adopt.contains(c.lease.job_id); };
      std::copy_if(done_.begin(), done_.end(), std::back_inserter(parked), adopted);
      done_.erase(std::remove_if(done_.begin(), done_.end(), adopted), done_.end());
    }
  }
  // Rows skipped above (already running here) are not work: counting them, a batch full of them
  // would look busy and be claimed again at once, over and over.
  out.claimed = static_cast<int>(mine.size() + adopt.size());
  if (mine.empty() && adopt.empty()) return out;

  std::vector<PgQueue::HeldBatch::Outcome> outcomes;
  std::vector<int64_t> keep;
  {
    absl::MutexLock lock(&mu_);
    // In slices: this worker's leases still want their heartbeats meanwhile, and a stop should
    // not wait out the budget.
    const absl::Time budget_end = internal::MonotonicNow() + options_.transaction_budget;
    while (unfinished > 0 && !StopWanted()) {
      if (HeartbeatDueLocked()) {
        mu_.Unlock();
        Heartbeat();
        mu_.Lock();
        continue;
      }
      const absl::Time now = internal::MonotonicNow();
      if (now >= budget_end) break;
      const absl::Time until =
          std::min({budget_end, next_heartbeat_, now + absl::Milliseconds(100)});
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](int* left) { return *left == 0; }, &unfinished),
                           until - now);
    }
    // Stopping: jobs not started yet are left pending, untouched.
    std::vector<int64_t> unstarted;
    if (StopWanted()) {
      for (const Lease& lease : mine) {
        if (!held_slots_.at(lease.job_id).finished && !running_.contains(lease.job_id)) {
          unstarted.push_back(lease.job_id);
        }
      }
      DropHeldJobs(unstarted);
    }
    mu_.Await(absl::Condition(
        +[](Impl* impl)
             ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl->mu_) { return !impl->releasing_orphans_; },
        this));
    for (const Lease& lease : mine) {
      auto found = held_slots_.find(lease.job_id);
      if (found == held_slots_.end()) continue;  // unstarted at a stop
      HeldSlot& slot = found->second;
      if (!slot.finished) {
        keep.push_back(lease.job_id);
      } else if (slot.result.ok()) {
        outcomes.push_back({lease.job_id, true, *slot.result});
      } else if (!shutting_down_.load()) {
        // A held row is locked by this batch, so its lease cannot be lost: a handler saying so
        // fails the attempt (left pending, it would be claimed and run again at once).
        outcomes.push_back({lease.job_id, false, std::string(slot.result.status().message())});
      }  // else: left pending, untouched (we are stopping)
    }
    keep.insert(keep.end(), adopt.begin(), adopt.end());
    ++settling_;  // kept jobs turn processing at the commit, before they are in held_
  }
  absl::StatusOr<PgQueue::HeldBatch::Settled> settled = (*batch)->Settle(outcomes, keep);

  std::vector<std::pair<Lease, absl::Status>> to_fail;
  {
    absl::MutexLock lock(&mu_);
    --settling_;
    // Back where AdoptReclaimed finds them (rolled back: to be refused under the old lease).
    done_.insert(done_.end(), std::make_move_iterator(parked.begin()),
                 std::make_move_iterator(parked.end()));
    if (!settled.ok()) {
      for (int64_t id : adopt) adopting_.erase(id);
      // Rolled back, unless the commit went through and only its reply was lost.
      if (!keep.empty()) orphans_possible_ = true;
      // Rolled back: every job is pending again.
      std::vector<int64_t> batch_ids;
      for (const Lease& lease : mine) batch_ids.push_back(lease.job_id);
      DropHeldJobs(batch_ids);
      internal::WakeFd(wake_fd_);
      return settled.status();
    }
    // Taken by another transaction while a refused settle went row by row: not ours.
    DropHeldJobs(settled->untouched);
    stats_.completed += settled->completed;
    for (const auto& [lease, outcome] : settled->failed) {
      ++stats_.failed;
      const HeldSlot& slot = held_slots_.at(lease.job_id);
      LogFailure(lease,
                 slot.result.ok() ? "result could not be stored" : slot.result.status().message(),
                 outcome.will_retry);
    }
    for (const Lease& lease : settled->kept) {
      if (adopt.contains(lease.job_id)) {
        AdoptReclaimed(lease);
        continue;
      }
      HeldSlot& slot = held_slots_.at(lease.job_id);
      held_.emplace(lease.job_id, lease);
      if (!slot.finished) continue;  // RunOne finishes it as an ordinary lease
      // It finished while the batch was settling: finish it as an ordinary lease here.
      if (slot.result.ok()) {
        done_.push_back({lease, *std::move(slot.result)});
      } else {
        to_fail.emplace_back(lease, slot.result.status());
      }
    }
    for (const Lease& lease : mine) held_slots_.erase(lease.job_id);
    for (int64_t id : adopt) adopting_.erase(id);
    if (!done_.empty()) pump_cv_.SignalAll();
    internal::WakeFd(wake_fd_);
  }
  for (const auto& [lease, error] : to_fail) FinishUnsuccessful(lease, error);
  return out;
}

void Worker::Impl::PumpLoop() {
  absl::Duration backoff = options_.reconnect_min;
  absl::MutexLock lock(&mu_);
  while (!quit_pumps_) {
    mu_.Unlock();
    absl::StatusOr<ExchangeResult> result = Round();
    mu_.Lock();
    if (!result.ok()) {
      pump_cv_.WaitWithTimeout(&mu_, backoff);
      backoff = std::min(backoff * 2, options_.reconnect_max);
      continue;
    }
    backoff = options_.reconnect_min;
    // The main dispatcher tracks idleness and heartbeats: tell it what changed.
    if (result->flushed > 0 || result->claimed > 0) internal::WakeFd(wake_fd_);
    if (result->limit > 0 && result->claimed == result->limit) continue;  // busy
    if (!done_.empty()) continue;
    // Full: handlers signal as they finish. Drained: the main dispatcher signals when jobs
    // arrive.
    pump_cv_.WaitWithTimeout(&mu_,
                             result->limit == 0 ? absl::Milliseconds(20) : options_.poll_interval);
  }
}

bool Worker::Impl::ReleaseOrphans() {
  std::vector<Lease> held;
  {
    absl::MutexLock lock(&mu_);
    if (!orphans_possible_) return true;
    // No claim or settle may start until the statement is done (a job turning processing
    // under our id meanwhile would look orphaned); those in flight finish first, so every
    // claim that committed is then either in held_ or lost. Handlers and completions go on.
    releasing_orphans_ = true;
    mu_.Await(absl::Condition(
        +[](Impl* impl) ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl->mu_) {
          return impl->reserved_ == 0 && impl->settling_ == 0;
        },
        this));
    held.reserve(held_.size());
    for (const auto& [id, lease] : held_) held.push_back(lease);
  }
  absl::StatusOr<int64_t> released = queue_->ReleaseOrphans(options_.worker_id, held);
  {
    absl::MutexLock lock(&mu_);
    releasing_orphans_ = false;
    if (released.ok()) orphans_possible_ = false;  // else still flagged: tried again later
    pump_cv_.SignalAll();
  }
  if (!released.ok()) {
    internal::LogWarn("cannot yet release jobs left processing under this worker: {}",
                      released.status().ToString());
    return false;
  }
  if (*released > 0) {
    internal::LogWarn(
        "released {} job(s) left processing under this worker (claims whose reply was lost, "
        "or hand-backs that failed)",
        *released);
  }
  return true;
}

void Worker::Impl::Heartbeat() {
  std::vector<Lease> leases;
  {
    absl::MutexLock lock(&mu_);
    leases.reserve(held_.size());
    for (const auto& [id, lease] : held_) {
      if (!adopting_.contains(id)) leases.push_back(lease);  // pending until its batch settles
    }
  }
  if (leases.empty()) return;
  absl::StatusOr<std::vector<int64_t>> lost = queue_->HeartbeatMany(leases);
  if (!lost.ok()) {
    internal::LogWarn("heartbeat of {} job(s) failed: {}", leases.size(), lost.status().ToString());
    return;
  }
  if (lost->empty()) return;
  absl::flat_hash_map<int64_t, const Lease*> sent;
  for (const Lease& lease : leases) sent.emplace(lease.job_id, &lease);
  absl::flat_hash_map<int64_t, const Lease*> lost_leases;
  for (int64_t id : *lost) {
    if (auto it = sent.find(id); it != sent.end()) lost_leases.emplace(id, it->second);
  }
  absl::MutexLock lock(&mu_);
  // Not started yet: another worker may own the job now, so it must not run here. (A job
  // claimed again since the heartbeat was sent is held under a lease that is not the lost one.)
  auto is_lost = [&](const Lease& queued) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = lost_leases.find(queued.job_id);
    return it != lost_leases.end() && SameLease(*it->second, CurrentLease(queued));
  };
  const size_t before = ready_.size();
  ready_.erase(std::remove_if(ready_.begin(), ready_.end(), is_lost), ready_.end());
  for (const auto& [id, lost_lease] : lost_leases) {
    if (!running_.contains(id)) Forget(*lost_lease);
    internal::LogWarn("job {}: lease lost (recovered by the reaper?); {}", id,
                      running_.contains(id) ? "its result will be dropped" : "not run here");
  }
  stats_.lost += static_cast<int64_t>(before - ready_.size());
}

absl::Status Worker::Impl::EnsureListening() {
  if (listener_ != nullptr && listener_->ok()) return absl::OkStatus();
  listener_.reset();
  JQ_ASSIGN_OR_RETURN(listener_, queue_->pool().ConnectDedicated());
  absl::Status listened =
      listener_->ExecScript(absl::StrCat("LISTEN \"", queue_->NotifyChannel(), "\""), "listen");
  if (!listened.ok()) {
    listener_.reset();
    return listened;
  }
  // Asked, not PQbackendPID(): behind a session pooler that is the pooler's number, and the
  // waiter row would look dead to the next worker that registers.
  absl::StatusOr<internal::PgResult> pid = listener_->Exec("SELECT pg_backend_pid()");
  if (!pid.ok()) {
    listener_.reset();
    return pid.status();
  }
  listener_pid_ = static_cast<int>(pid->GetInt64(0, 0));
  return absl::OkStatus();
}

void Worker::Impl::DropListener() { listener_.reset(); }

void Worker::Impl::WaitForWake(absl::Duration timeout) {
  pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {-1, POLLIN, 0}};
  int nfds = 1;
  if (listener_ != nullptr) {
    fds[1].fd = PQsocket(listener_->raw());
    if (fds[1].fd >= 0) nfds = 2;
  }
  const int ready = ::poll(fds, nfds, internal::PollMillis(timeout));
  if (ready <= 0) return;
  if (fds[0].revents & POLLIN) {
    uint64_t counter;
    ssize_t n = ::read(wake_fd_, &counter, sizeof(counter));
    (void)n;
  }
  if (nfds == 2 && fds[1].revents != 0) DrainListener();
}

void Worker::Impl::DrainListener() {
  if (listener_ == nullptr) return;
  PGconn* conn = listener_->raw();
  if (PQconsumeInput(conn) == 0) {
    internal::LogWarn("notification connection lost; polling until it is back");
    DropListener();
    waiting_registered_ = false;
    return;
  }
  while (PGnotify* notify = PQnotifies(conn)) PQfreemem(notify);
}

absl::Status Worker::Impl::Run() {
  {
    absl::MutexLock lock(&mu_);
    if (started_) return absl::FailedPreconditionError("a worker runs only once");
    if (handlers_.empty()) return absl::FailedPreconditionError("no job handlers registered");
    started_ = true;
  }
  if (options_.log_startup) {
    internal::LogInfo("Starting {} Worker (env={})", options_.name, options_.environment);
    internal::LogInfo("Poll interval: {}s",
                      absl::StrFormat("%.1f", absl::ToDoubleSeconds(options_.poll_interval)));
    internal::LogInfo("Job types: {}", absl::StrJoin(types_, ", "));
  }
  const int signal_slot = internal::RegisterStopWakeFd(wake_fd_);
  threads_.reserve(static_cast<size_t>(options_.concurrency));
  for (int i = 0; i < options_.concurrency; ++i) threads_.emplace_back([this] { HandlerLoop(); });
  for (int i = 1; i < options_.dispatchers; ++i) pumps_.emplace_back([this] { PumpLoop(); });

  absl::Duration backoff = options_.reconnect_min;
  bool in_outage = false;
  absl::Status cannot_run;
  absl::Time last_active = internal::MonotonicNow();
  {
    absl::MutexLock lock(&mu_);
    next_heartbeat_ = internal::MonotonicNow() + options_.heartbeat_interval;
  }
  // Time left before exit_when_idle ends Run(): infinite while a job is held or with no idle
  // exit; at most zero when it is time to go.
  auto idle_left = [&]() {
    int held;
    {
      absl::MutexLock lock(&mu_);
      held = HeldCount();
    }
    const absl::Time now = internal::MonotonicNow();
    if (held > 0) last_active = now;
    if (held > 0 || !options_.exit_when_idle) return absl::InfiniteDuration();
    return last_active + *options_.exit_when_idle - now;
  };
  auto log_idle_exit = [&] {
    internal::LogInfo("idle for {}; exiting", absl::FormatDuration(*options_.exit_when_idle));
  };
  while (!StopWanted()) {
    bool drained = false;
    // A busy worker may go long without waiting: read what its listening connection got
    // meanwhile, or its backend, blocked on a full socket, holds back the server's notification
    // queue for everyone.
    DrainListener();
    // Before the round: a busy loop (claims filling up, flushes) must not put heartbeats off.
    if (HeartbeatDue()) Heartbeat();
    absl::StatusOr<ExchangeResult> exchanged = Round();
    if (exchanged.ok()) {
      // A full worker's round may send nothing: failures still unwritten are the outage then.
      if (absl::Status retried = RetryUnrecordedFailures(); !retried.ok()) exchanged = retried;
    }
    if (!exchanged.ok()) {
      const absl::Status& error = exchanged.status();
      // A schema never migrated or a role without rights will not fix itself: say so and stop
      // rather than retry forever. Once the worker has worked, anything is retried.
      if (!worked_ && (absl::IsFailedPrecondition(error) || absl::IsPermissionDenied(error))) {
        internal::LogError("cannot process jobs: {}", error.ToString());
        cannot_run =
            absl::Status(error.code(), absl::StrCat("worker cannot process jobs on queue '",
                                                    options_.queue, "': ", error.message()));
        break;
      }
      if (!in_outage) {
        internal::LogWarn("cannot claim or finish jobs, retrying with backoff: {}",
                          error.ToString());
        in_outage = true;
      }
      {
        absl::MutexLock lock(&mu_);
        ++stats_.reconnects;
      }
      DropListener();
      waiting_registered_ = false;
      // An outage is idle time too: a scaled-to-zero worker must not run up cost waiting.
      const absl::Duration left = idle_left();
      if (left <= absl::ZeroDuration()) {
        log_idle_exit();
        break;
      }
      WaitForWake(std::min(backoff, left));
      backoff = std::min(backoff * 2, options_.reconnect_max);
      continue;
    }
    if (in_outage) internal::LogInfo("claiming and finishing jobs again");
    in_outage = false;
    ReleaseOrphans();
    backoff = options_.reconnect_min;
    if (exchanged->claimed > 0) last_active = internal::MonotonicNow();
    if (exchanged->limit > 0) {
      if (exchanged->claimed == exchanged->limit) {
        WakePumps();
        if (waiting_registered_) {
          // Busy again: stop paying for notifications.
          if (queue_->SetWaiting(options_.worker_id, options_.queue, false).ok())
            waiting_registered_ = false;
        }
        continue;
      }
      drained = true;
    } else if (exchanged->flushed > 0) {
      continue;  // slots were freed: look again
    }
    const absl::Duration left = idle_left();
    if (left <= absl::ZeroDuration()) {
      log_idle_exit();
      break;
    }

    absl::Time next_heartbeat;
    {
      absl::MutexLock lock(&mu_);
      next_heartbeat = next_heartbeat_;
    }
    absl::Duration timeout = std::min(next_heartbeat - internal::MonotonicNow(), left);
    if (drained) {
      if (options_.listen && !waiting_registered_) {
        // Listen first, then register, then look once more: an insert after the look is
        // guaranteed to notify us.
        absl::Status listening = EnsureListening();
        if (listening.ok()) {
          listening = queue_->SetWaiting(options_.worker_id, options_.queue, true, listener_pid_);
        }
        if (listening.ok()) {
          waiting_registered_ = true;
          continue;
        }
        internal::LogWarn("cannot listen for new jobs, polling instead: {}", listening.ToString());
      }
      timeout = std::min(timeout, options_.poll_interval);
      absl::StatusOr<std::optional<absl::Time>> next_run =
          queue_->NextRunAt(options_.queue, types_);
      if (next_run.ok() && next_run->has_value()) {
        // A job already due that the claim just skipped is locked (another worker's claim or
        // held batch): look again shortly rather than spin.
        timeout = std::min(timeout, std::max(**next_run - absl::Now(), kLockedDueRecheck));
      }
    }
    {
      absl::MutexLock lock(&mu_);
      if (!done_.empty()) continue;
    }
    WaitForWake(timeout);
  }
  Shutdown();
  internal::UnregisterStopWakeFd(signal_slot);
  return cannot_run;
}

absl::flat_hash_set<int64_t> Worker::Impl::GiveBack(absl::Span<const Lease> leases) {
  absl::flat_hash_set<int64_t> kept;
  // A statement per chunk, not per job: a stop hands back up to a whole batch, and a database
  // that stopped answering costs one timeout per chunk.
  constexpr size_t kChunk = 1000;
  for (size_t at = 0; at < leases.size(); at += kChunk) {
    absl::Span<const Lease> chunk = leases.subspan(at, kChunk);
    absl::StatusOr<std::vector<int64_t>> lost = queue_->ReleaseMany(chunk);
    if (lost.ok()) {
      kept.insert(lost->begin(), lost->end());
    } else {
      internal::LogWarn("cannot hand back {} job(s): {}", chunk.size(), lost.status().ToString());
      for (const Lease& lease : chunk) kept.insert(lease.job_id);
    }
    absl::MutexLock lock(&mu_);
    // Forgotten either way; not handed back, they are orphans the stop's last look releases.
    if (!lost.ok()) orphans_possible_ = true;
    for (const Lease& lease : chunk) Forget(lease);
    if (lost.ok()) stats_.released += static_cast<int64_t>(chunk.size() - lost->size());
  }
  return kept;
}

void Worker::Impl::Shutdown() {
  shutting_down_.store(true);
  {
    absl::MutexLock lock(&mu_);
    quit_pumps_ = true;
    pump_cv_.SignalAll();
  }
  for (std::thread& pump : pumps_) pump.join();
  pumps_.clear();
  std::deque<Lease> unstarted;
  {
    absl::MutexLock lock(&mu_);
    unstarted.swap(ready_);
  }
  std::vector<Lease> unstarted_leases;
  {
    absl::MutexLock lock(&mu_);
    for (const Lease& queued : unstarted) unstarted_leases.push_back(CurrentLease(queued));
  }
  GiveBack(unstarted_leases);
  const absl::Time deadline = internal::MonotonicNow() + options_.shutdown_timeout;
  // Handlers still running keep their leases alive: a long shutdown_timeout must not let the
  // reaper hand their jobs to another worker meanwhile.
  absl::Time next_heartbeat = internal::MonotonicNow();
  while (true) {
    bool busy;
    bool have_done;
    {
      absl::MutexLock lock(&mu_);
      busy = !running_.empty();
      have_done = !done_.empty();
    }
    if (have_done && !Exchange(/*claim=*/false).ok()) absl::SleepFor(options_.reconnect_min);
    if (!busy || internal::MonotonicNow() >= deadline) break;
    if (stop_.Hurry()) {
      internal::LogWarn("stopped again: handing back running jobs without waiting for them");
      break;
    }
    if (internal::MonotonicNow() >= next_heartbeat) {
      Heartbeat();
      next_heartbeat = internal::MonotonicNow() + options_.heartbeat_interval;
    }
    WaitForWake(std::min({deadline - internal::MonotonicNow(),
                          next_heartbeat - internal::MonotonicNow(), absl::Milliseconds(100)}));
  }
  std::vector<Lease> overdue;
  {
    absl::MutexLock lock(&mu_);
    for (int64_t id : running_) {
      // Not held: its held batch rolled back, the job is pending again and nothing is owed.
      if (auto it = held_.find(id); it != held_.end()) overdue.push_back(it->second);
      given_back_.insert(id);
    }
  }
  const absl::flat_hash_set<int64_t> kept = GiveBack(overdue);
  for (const Lease& lease : overdue) {
    internal::LogWarn("job {} ({}) still running at shutdown: {}", lease.job_id, lease.job_type,
                      kept.contains(lease.job_id)
                          ? "not released (lease lost, or the database did not answer)"
                          : "released");
  }
  {
    absl::MutexLock lock(&mu_);
    quit_threads_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
  // Handlers given back at the deadline left nothing here; what is here finished in time (during
  // the last round trip, or while the database blipped) and is still ours to complete.
  for (int attempt = 0; attempt < 3; ++attempt) {
    {
      absl::MutexLock lock(&mu_);
      if (done_.empty()) break;
    }
    if (Exchange(/*claim=*/false).ok()) continue;
    absl::SleepFor(options_.reconnect_min);
  }
  (void)RetryUnrecordedFailures();  // what is still not written is counted below
  // Claims lost in an outage that had not ended would otherwise wait for the reaper.
  for (int attempt = 0; attempt < 3 && !ReleaseOrphans(); ++attempt) {
    absl::SleepFor(options_.reconnect_min);
  }
  {
    absl::MutexLock lock(&mu_);
    const size_t completions = done_.size(), failures = unrecorded_failures_.size();
    if (completions + failures > 0) {
      internal::LogWarn(
          "{} completion(s) and {} failure(s) could not be written before exit; the reaper "
          "will retry those jobs",
          completions, failures);
    }
    done_.clear();
    unrecorded_failures_.clear();
  }
  if (waiting_registered_) (void)queue_->SetWaiting(options_.worker_id, options_.queue, false);
  DropListener();
  const WorkerStats final_stats = stats();
  internal::LogInfo("{} worker stopped: {} completed, {} failed, {} released, {} lost",
                    options_.name, final_stats.completed, final_stats.failed, final_stats.released,
                    final_stats.lost);
}

Worker::Worker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Worker::~Worker() = default;

absl::StatusOr<std::unique_ptr<Worker>> Worker::Create(PgQueue* queue, WorkerOptions options) {
  if (queue == nullptr) return absl::InvalidArgumentError("worker needs a queue");
  JQ_RETURN_IF_ERROR(options.Validate());
  // The server ends a held batch's session after this idle time; a budget that long would
  // lose every batch that runs to it.
  if (options.transaction_budget > absl::ZeroDuration() &&
      options.transaction_budget + absl::Seconds(1) > queue->options().held_batch_idle_timeout) {
    return absl::InvalidArgumentError(
        absl::StrCat("transaction budget ", absl::FormatDuration(options.transaction_budget),
                     " must be at least 1s below the queue's held_batch_idle_timeout (",
                     absl::FormatDuration(queue->options().held_batch_idle_timeout), ")"));
  }
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return absl::InternalError("eventfd failed");
  return std::unique_ptr<Worker>(new Worker(std::make_unique<Impl>(queue, std::move(options), fd)));
}

absl::Status Worker::Register(absl::string_view job_type, JobHandler handler) {
  return impl_->Register(job_type, std::move(handler));
}
absl::Status Worker::Run() { return impl_->Run(); }
void Worker::Stop() { impl_->Stop(); }
void Worker::StopNow() { impl_->StopNow(); }
WorkerStats Worker::stats() const { return impl_->stats(); }
const std::string& Worker::worker_id() const { return impl_->worker_id(); }

}  // namespace jobqueue
