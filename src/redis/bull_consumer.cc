#include "jobqueue/bull_consumer.h"

#include <simdjson.h>

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "internal/log.h"
#include "internal/worker_common.h"
#include "jobqueue/bull_worker.h"
#include "jobqueue/job.h"
#include "jobqueue/json.h"
#include "jobqueue/status.h"
#include "redis/bull_finish.h"
#include "redis/bull_internal.h"

namespace jobqueue {

absl::Status BullConsumerOptions::Validate() const {
  JQ_RETURN_IF_ERROR(internal::ValidateBullPrefixAndName(prefix, name));
  if (lock_duration < absl::Milliseconds(10) || lock_duration > internal::kMaxRedisPeriod) {
    return absl::InvalidArgumentError("lock duration must be 10 ms..365 days");
  }
  return redis.Validate();
}

class BullConsumer::Impl {
 public:
  Impl(Secret url, std::string queue, BullConsumerOptions options)
      : url_(std::move(url)),
        queue_(std::move(queue)),
        options_(std::move(options)),
        keys_(options_.prefix, queue_),
        token_prefix_(internal::BullTokenPrefix()) {}

  absl::Status Connect() {
    absl::MutexLock lock(&step_mu_);
    JQ_ASSIGN_OR_RETURN(step_conn_, RedisConnection::Connect(url_, options_.redis));
    return internal::CheckRedisVersionForWorkers(*step_conn_);
  }

  absl::StatusOr<std::vector<BullLease>> Fetch(int max, absl::Duration wait);
  absl::Status ExtendLock(const BullLease& lease);
  // Sends one finish; the lease-lost error when worker_step refused it.
  absl::Status Finish(const BullLease& lease, const internal::BullFinish& finish);
  // The finish for a handler outcome, per the job's opts.
  internal::BullFinish Build(const BullLease& lease, const absl::StatusOr<std::string>& result) {
    thread_local simdjson::dom::parser parser;
    thread_local std::mt19937_64 rng(std::random_device{}());
    return internal::BuildBullFinish(lease.job, lease.token, result, queue_, parser, rng);
  }

  const std::string& queue() const { return queue_; }

 private:
  // The short-call connection, reopened when broken; ExtendLock and finishes never wait
  // behind a blocking fetch, which has connections of its own.
  absl::StatusOr<RedisConnection*> StepConn() ABSL_EXCLUSIVE_LOCKS_REQUIRED(step_mu_) {
    if (step_conn_ == nullptr || !step_conn_->ok()) {
      JQ_ASSIGN_OR_RETURN(step_conn_, RedisConnection::Connect(url_, options_.redis));
    }
    return step_conn_.get();
  }
  absl::StatusOr<internal::BullStepReply> Step(const std::vector<internal::BullFinish>& finishes,
                                               int want);
  // Up to `max` claims of earlier calls whose replies were lost (found again in Redis by their
  // token prefixes); the rest go back to wait at once, unstarted.
  std::vector<internal::BullClaim> TakeAdopted(int max);
  // BZPOPMIN on the marker for up to `timeout`: returns on an add, a due delayed job, or the
  // timeout.
  absl::Status BlockOnMarker(absl::Duration timeout);

  const Secret url_;
  const std::string queue_;
  const BullConsumerOptions options_;
  const internal::BullKeys keys_;
  const std::string token_prefix_;

  absl::Mutex step_mu_;
  std::unique_ptr<RedisConnection> step_conn_ ABSL_GUARDED_BY(step_mu_);
  int64_t step_seq_ ABSL_GUARDED_BY(step_mu_) = 0;
  // Token prefixes of claiming calls without a reply, and when.
  std::vector<std::pair<std::string, absl::Time>> unanswered_steps_ ABSL_GUARDED_BY(step_mu_);
  // Idle marker connections: one per concurrent blocking fetch, kept for reuse.
  absl::Mutex block_mu_;
  std::vector<std::unique_ptr<RedisConnection>> block_conns_ ABSL_GUARDED_BY(block_mu_);
};

absl::StatusOr<internal::BullStepReply> BullConsumer::Impl::Step(
    const std::vector<internal::BullFinish>& finishes, int want) {
  absl::MutexLock lock(&step_mu_);
  JQ_ASSIGN_OR_RETURN(RedisConnection * conn, StepConn());
  internal::BullStepRequest request;
  request.want = want;
  request.lock_ms = absl::ToInt64Milliseconds(options_.lock_duration);
  request.worker_name = options_.name;
  request.token_prefix = absl::StrCat(token_prefix_, ":", ++step_seq_);
  absl::StatusOr<internal::BullStepReply> reply =
      internal::RunBullStep(*conn, keys_, request, finishes);
  // Its claims may be locked under request.token_prefix: TakeAdopted finds them. Bounded as
  // in BullWorker: the first calls of an outage are the ones that may have run.
  constexpr size_t kMaxUnanswered = 64;
  if (!reply.ok() && want > 0 && unanswered_steps_.size() < kMaxUnanswered) {
    unanswered_steps_.emplace_back(request.token_prefix, absl::Now());
  }
  return reply;
}

std::vector<internal::BullClaim> BullConsumer::Impl::TakeAdopted(int max) {
  absl::MutexLock lock(&step_mu_);
  const absl::Time now = absl::Now();
  // Past a lock duration their locks have expired: the stalled check's now.
  std::erase_if(unanswered_steps_,
                [&](const auto& step) { return now - step.second > options_.lock_duration; });
  if (unanswered_steps_.empty()) return {};
  absl::StatusOr<RedisConnection*> conn = StepConn();
  if (!conn.ok()) return {};
  std::vector<std::string> prefixes;
  for (const auto& step : unanswered_steps_) prefixes.push_back(step.first);
  absl::StatusOr<std::vector<internal::BullClaim>> found = internal::AdoptBullClaims(
      **conn, keys_, prefixes, absl::ToInt64Milliseconds(options_.lock_duration));
  if (!found.ok()) {
    internal::LogWarn("BullMQ consumer on {}: looking for claims whose reply was lost: {}", queue_,
                      found.status().message());
    return {};
  }
  unanswered_steps_.clear();
  if (found->empty()) return {};
  internal::LogInfo(
      "BullMQ consumer on {}: took back {} job(s) claimed by a call whose reply was lost", queue_,
      found->size());
  if (static_cast<int>(found->size()) <= max) return *std::move(found);
  // No lease is held unseen: the caller could not extend its lock.
  std::vector<internal::BullFinish> releases;
  for (size_t i = static_cast<size_t>(max); i < found->size(); ++i) {
    releases.push_back(internal::BullRelease((*found)[i].job.id, (*found)[i].token,
                                             /*started=*/false));
  }
  found->resize(static_cast<size_t>(max));
  absl::StatusOr<internal::BullStepReply> released =
      internal::RunBullStep(**conn, keys_, internal::BullStepRequest(), releases);
  if (!released.ok()) {
    internal::LogWarn(
        "BullMQ consumer on {}: handing back {} job(s) beyond the fetch: {}; their "
        "locks expire and a stalled check returns them",
        queue_, releases.size(), released.status().message());
  }
  return *std::move(found);
}

absl::Status BullConsumer::Impl::BlockOnMarker(absl::Duration timeout) {
  std::unique_ptr<RedisConnection> conn;
  {
    absl::MutexLock lock(&block_mu_);
    if (!block_conns_.empty()) {
      conn = std::move(block_conns_.back());
      block_conns_.pop_back();
    }
  }
  if (conn == nullptr || !conn->ok()) {
    RedisOptions redis = options_.redis;
    redis.client_name = internal::BullWorkerClientName(options_.prefix, queue_, options_.name);
    JQ_ASSIGN_OR_RETURN(conn, RedisConnection::Connect(url_, redis));
  }
  JQ_ASSIGN_OR_RETURN(RedisReply reply, conn->BlockingCommand({"BZPOPMIN", keys_.Key("marker"),
                                                               internal::BlockTimeoutArg(timeout)},
                                                              timeout));
  JQ_RETURN_IF_ERROR(reply.AsStatus("waiting on the BullMQ marker"));
  absl::MutexLock lock(&block_mu_);
  block_conns_.push_back(std::move(conn));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<BullLease>> BullConsumer::Impl::Fetch(int max, absl::Duration wait) {
  if (max < 1 || max > 1000) {
    return absl::InvalidArgumentError(absl::StrCat("fetch max must be 1..1000, got ", max));
  }
  if (wait < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("fetch wait must not be negative");
  }
  const absl::Time deadline = absl::Now() + wait;
  std::vector<BullLease> out;
  std::vector<internal::BullFinish> deferred;
  auto hand_out = [&](std::vector<internal::BullClaim>& claims) {
    for (internal::BullClaim& claim : claims) {
      BullLease lease{std::move(claim.job), std::move(claim.token)};
      if (std::optional<absl::Status> failure = internal::BullDeferredFailure(lease.job)) {
        // Stalled too often (marked by a stalled check): failed without being handed out.
        deferred.push_back(Build(lease, *failure));
      } else {
        out.push_back(std::move(lease));
      }
    }
  };
  std::vector<internal::BullClaim> adopted = TakeAdopted(max);
  hand_out(adopted);
  if (!out.empty() && deferred.empty()) return out;
  while (true) {
    absl::StatusOr<internal::BullStepReply> stepped =
        Step(deferred, max - static_cast<int>(out.size()));
    if (!stepped.ok()) {
      // Leases already claimed are locked in Redis: handed out, not dropped (a dropped lease
      // sits active until its lock expires). Deferred failures are left to the
      // stalled check once their locks expire.
      if (!out.empty()) return out;
      return stepped.status();
    }
    internal::BullStepReply& reply = *stepped;
    for (size_t i = 0; i < deferred.size(); ++i) {
      if (reply.codes[i] != 0) {
        internal::LogWarn("BullMQ job {} in {}: {}; its stalled failure was not written",
                          deferred[i].id, queue_, internal::BullFinishRefusal(reply.codes[i]));
      }
    }
    deferred.clear();
    hand_out(reply.claimed);
    if (!deferred.empty()) continue;  // write those failures, claiming in their place
    if (!out.empty()) return out;
    const absl::Time now = absl::Now();
    if (now >= deadline) return out;
    if (reply.rate_limited_ms > 0) {
      absl::SleepFor(std::min(absl::Milliseconds(reply.rate_limited_ms), deadline - now));
      continue;
    }
    // An infinite wait blocks an hour at a time: BZPOPMIN takes no "inf".
    absl::Duration block = std::min(deadline - now, absl::Hours(1));
    if (reply.next_delayed_at_ms > 0) {
      block = std::clamp(absl::FromUnixMillis(reply.next_delayed_at_ms) - now,
                         absl::Milliseconds(1), block);
    }
    JQ_RETURN_IF_ERROR(BlockOnMarker(block));
  }
}

absl::Status BullConsumer::Impl::ExtendLock(const BullLease& lease) {
  if (lease.job.id.empty() || lease.token.empty()) {
    return absl::InvalidArgumentError("lease has no job id or token");
  }
  absl::MutexLock lock(&step_mu_);
  JQ_ASSIGN_OR_RETURN(RedisConnection * conn, StepConn());
  JQ_ASSIGN_OR_RETURN(
      RedisReply lost,
      internal::RunScript(
          *conn, internal::EvalSha(
                     internal::k_extend_locks, keys_.worker_keys(),
                     {keys_.base(), absl::StrCat(absl::ToInt64Milliseconds(options_.lock_duration)),
                      lease.job.id, lease.token})));
  JQ_RETURN_IF_ERROR(lost.AsStatus("extending a BullMQ lock"));
  if (lost.type == RedisReply::Type::kArray && !lost.elements.empty()) {
    return LeaseLostError(absl::StrCat("extend lock: BullMQ job ", lease.job.id, " in ", queue_,
                                       ": lock lost (expired or taken by another worker)"));
  }
  return absl::OkStatus();
}

absl::Status BullConsumer::Impl::Finish(const BullLease& lease,
                                        const internal::BullFinish& finish) {
  if (lease.job.id.empty() || lease.token.empty()) {
    return absl::InvalidArgumentError("lease has no job id or token");
  }
  JQ_ASSIGN_OR_RETURN(internal::BullStepReply reply, Step({finish}, 0));
  const int64_t code = reply.codes.front();
  if (code == 0) return absl::OkStatus();
  const std::string message =
      absl::StrCat(finish.kind == "release" ? "release" : "finish", ": BullMQ job ", lease.job.id,
                   " in ", queue_, ": ", internal::BullFinishRefusal(code), "; nothing written");
  if (code == -1) return absl::NotFoundError(message);
  return LeaseLostError(message);
}

BullConsumer::BullConsumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BullConsumer::~BullConsumer() = default;

absl::StatusOr<std::unique_ptr<BullConsumer>> BullConsumer::Open(
    const Secret& redis_url, absl::string_view queue, const BullConsumerOptions& options) {
  JQ_RETURN_IF_ERROR(internal::ValidateBullQueueName(queue));
  JQ_RETURN_IF_ERROR(options.Validate());
  auto impl = std::make_unique<Impl>(redis_url, std::string(queue), options);
  JQ_RETURN_IF_ERROR(impl->Connect());
  return std::unique_ptr<BullConsumer>(new BullConsumer(std::move(impl)));
}

absl::StatusOr<std::vector<BullLease>> BullConsumer::Fetch(int max, absl::Duration wait) {
  return impl_->Fetch(max, wait);
}

absl::Status BullConsumer::ExtendLock(const BullLease& lease) { return impl_->ExtendLock(lease); }

absl::Status BullConsumer::Complete(const BullLease& lease, absl::string_view return_value_json) {
  std::string value = return_value_json.empty() ? "null" : std::string(return_value_json);
  if (absl::Status valid = ValidateJson(value); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("return value is ", valid.message()));
  }
  return impl_->Finish(lease, impl_->Build(lease, std::move(value)));
}

absl::Status BullConsumer::Fail(const BullLease& lease, absl::string_view reason,
                                bool unrecoverable) {
  // InternalError: any non-OK status is a handler failure to the finish policy.
  const absl::Status failure =
      unrecoverable ? BullUnrecoverableError(reason) : absl::InternalError(reason);
  return impl_->Finish(lease, impl_->Build(lease, failure));
}

absl::Status BullConsumer::Release(const BullLease& lease) {
  return impl_->Finish(lease, internal::BullRelease(lease.job.id, lease.token));
}

const std::string& BullConsumer::queue() const { return impl_->queue(); }

}  // namespace jobqueue
