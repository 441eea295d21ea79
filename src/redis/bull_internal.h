// What the BullMQ producer, worker and admin code share: our scripts run by EVALSHA, the key
// layout, and reading a job hash.
#ifndef JOBQUEUE_SRC_REDIS_BULL_INTERNAL_H_
#define JOBQUEUE_SRC_REDIS_BULL_INTERNAL_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "jobqueue/bull_queue.h"
#include "jobqueue/redis_client.h"
#include "redis/bull_scripts.h"

namespace jobqueue::internal {

// Queue names: 1..256 bytes, no ':' or whitespace.
absl::Status ValidateBullQueueName(absl::string_view name);

// The key prefix and worker name of a worker or consumer: no whitespace, name <= 256 bytes.
absl::Status ValidateBullPrefixAndName(absl::string_view prefix, absl::string_view name);

// "<prefix>:<base64 queue>[:w:<name>]": the connection name Node's getWorkers() lists.
std::string BullWorkerClientName(absl::string_view prefix, absl::string_view queue,
                                 absl::string_view name);

class BullKeys {
 public:
  BullKeys(absl::string_view prefix, absl::string_view queue);
  // "<prefix>:<queue>:<suffix>"
  std::string Key(absl::string_view suffix) const { return base_ + std::string(suffix); }
  // "<prefix>:<queue>:", the prefix of job keys.
  const std::string& base() const { return base_; }
  // KEYS[1..12] of our worker-side scripts (see worker_step.lua).
  const std::vector<std::string>& worker_keys() const { return worker_keys_; }

 private:
  std::string base_;
  std::vector<std::string> worker_keys_;
};

// {"EVALSHA", sha, numkeys, keys..., args...}
std::vector<std::string> EvalSha(const LuaScript& script, const std::vector<std::string>& keys,
                                 std::vector<std::string> args);

// Runs EVALSHA commands in one round trip; on NOSCRIPT (a restarted or flushed server) loads
// our scripts and reruns just the commands that did not run.
absl::StatusOr<std::vector<RedisReply>> RunScripts(
    RedisConnection& conn, const std::vector<std::vector<std::string>>& commands);
absl::StatusOr<RedisReply> RunScript(RedisConnection& conn, std::vector<std::string> command);

// BZPOPMIN's timeout argument for `timeout`: seconds with 3 decimals, at least 0.002. Redis
// before 7.0.8 reads 0.001 as 0, which blocks forever (BullMQ's floor there is 0.002 too).
std::string BlockTimeoutArg(absl::Duration timeout);

// Workers and consumers need Redis 6.2 or newer (RPOP with a count, fractional BZPOPMIN
// timeouts); BullMQ itself accepts 5.0. FailedPrecondition naming the version for an older
// server, per the redis_version line of `info` (INFO server's text); OK when there is none.
absl::Status CheckRedisVersionForWorkers(absl::string_view info);
// The same on a connection; a server that refuses INFO passes.
absl::Status CheckRedisVersionForWorkers(RedisConnection& conn);

// A job from HGETALL's flat field/value array. Numbers a foreign client garbled read as absent.
BullJob BullJobFromHash(absl::string_view id, const std::vector<RedisReply>& flat);

}  // namespace jobqueue::internal

#endif  // JOBQUEUE_SRC_REDIS_BULL_INTERNAL_H_
