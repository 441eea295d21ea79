// Worker processes against the real Postgres: exactly-once delivery under load, a worker
// killed mid-job, a Postgres restart, transactional enqueue, and bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "jobqueue/pg_queue.h"
#include "testing/eventually.h"
#include "testing/pg_fixture.h"
#include "testing/status_matchers.h"

extern char** environ;

namespace jobqueue {
namespace {

using ::jobqueue::testing::Eventually;
using ::jobqueue::testing::IsOk;
using ::jobqueue::testing::StatusIs;
using ::jobqueue::testing::TestSchema;
using ::testing::HasSubstr;

std::string TempPath(absl::string_view name) {
  const char* dir = std::getenv("TMPDIR");
  return absl::StrCat(dir ? dir : "/tmp", "/jq_", getpid(), "_", name);
}

pid_t SpawnWorker(const std::string& schema, const std::string& record, int concurrency,
                  int handler_ms, int idle_exit_ms, int budget_ms = 0) {
  const std::string binary = testing::TestWorkerBinary();
  std::vector<std::string> args = {binary,
                                   schema,
                                   record,
                                   absl::StrCat(concurrency),
                                   absl::StrCat(handler_ms),
                                   absl::StrCat(idle_exit_ms),
                                   "3000",
                                   absl::StrCat(budget_ms)};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, binary.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
    throw std::runtime_error("posix_spawn failed");
  }
  return pid;
}

// Waits for `pid` to exit, up to `limit` (then kills it); returns its exit code, or -1.
int WaitExit(pid_t pid, absl::Duration limit = absl::Minutes(5)) {
  const absl::Time deadline = absl::Now() + limit;
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

struct Record {
  std::vector<std::pair<int64_t, int>> started;
  std::vector<std::pair<int64_t, int>> done;
};

Record ReadRecord(const std::string& path) {
  Record record;
  std::ifstream in(path);
  std::string word;
  int64_t id;
  int attempt;
  while (in >> word >> id >> attempt) {
    (word == "start" ? record.started : record.done).emplace_back(id, attempt);
  }
  return record;
}

NewJob MakeJob(std::string type, std::string payload = "{}") {
  NewJob job;
  job.job_type = std::move(type);
  job.payload_json = std::move(payload);
  return job;
}

class MultiProcessTest : public ::testing::Test {
 protected:
  int64_t Count(const std::string& where) {
    return std::stoll(schema_.Query(
        absl::StrCat("SELECT count(*) FROM ", schema_.name(), ".job_queue WHERE ", where)));
  }
  void EnqueueWork(int n) {
    std::vector<NewJob> batch;
    for (int i = 0; i < n; ++i) {
      batch.push_back(MakeJob("work", absl::StrCat(R"({"n": )", i, "}")));
      if (batch.size() == 5000 || i == n - 1) {
        ASSERT_THAT(queue_->EnqueueMany(batch).status(), IsOk());
        batch.clear();
      }
    }
  }

  TestSchema schema_;
  std::unique_ptr<PgQueue> queue_ = schema_.OpenQueue();
};

class ExactlyOnceTest : public MultiProcessTest, public ::testing::WithParamInterface<int> {};

// Parameter: the workers' transaction budget in ms (0: ordinary leases; >0: held batches).
TEST_P(ExactlyOnceTest, FourProcessesOfEightThreadsCompleteEveryJobExactlyOnce) {
  const int budget_ms = GetParam();
  constexpr int kJobs = 50000;
  EnqueueWork(kJobs);
  std::vector<pid_t> workers;
  std::vector<std::string> records;
  for (int i = 0; i < 4; ++i) {
    records.push_back(TempPath(absl::StrCat("exactly_once_", i)));
    std::remove(records.back().c_str());
    workers.push_back(SpawnWorker(schema_.name(), records.back(), 8, 0, 1500, budget_ms));
  }
  for (pid_t pid : workers) EXPECT_EQ(WaitExit(pid), 0);
  EXPECT_EQ(Count("status = 'completed'"), kJobs);
  EXPECT_EQ(Count("status <> 'completed'"), 0);
  absl::flat_hash_map<int64_t, int> runs;
  int busy_processes = 0;
  for (const std::string& path : records) {
    Record record = ReadRecord(path);
    if (!record.done.empty()) ++busy_processes;
    for (const auto& [id, attempt] : record.done) {
      ++runs[id];
      EXPECT_EQ(attempt, 1) << "job " << id;
    }
    std::remove(path.c_str());
  }
  EXPECT_EQ(runs.size(), static_cast<size_t>(kJobs));
  int64_t duplicates = 0;
  for (const auto& [id, n] : runs) duplicates += n - 1;
  EXPECT_EQ(duplicates, 0);
  EXPECT_GE(busy_processes, 2) << "the load should have been shared";
}

INSTANTIATE_TEST_SUITE_P(LeaseModes, ExactlyOnceTest, ::testing::Values(0, 500),
                         [](const ::testing::TestParamInfo<int>& param) {
                           return param.param == 0 ? std::string("ProcessingLeases")
                                                   : std::string("HeldBatches");
                         });

TEST_F(MultiProcessTest, KilledHeldBatchIsPendingAtOnceWithNoAttemptCounted) {
  EnqueueWork(3);
  const std::string record_a = TempPath("held_killed_a");
  std::remove(record_a.c_str());
  // Handlers of 60 s inside a 10 s budget: killed while the batch is still held.
  const pid_t a = SpawnWorker(schema_.name(), record_a, 3, 60000, 0, 10000);
  ASSERT_TRUE(Eventually([&] { return ReadRecord(record_a).started.size() == 3; }));
  EXPECT_EQ(Count("status = 'pending' AND attempts = 0"), 3) << "held rows stay pending";
  kill(a, SIGKILL);
  waitpid(a, nullptr, 0);
  // No reaper, no stale timeout: the dead connection's transaction is rolled back.
  const std::string record_b = TempPath("held_killed_b");
  std::remove(record_b.c_str());
  const pid_t b = SpawnWorker(schema_.name(), record_b, 3, 0, 0, 10000);
  EXPECT_TRUE(Eventually([&] { return Count("status = 'completed'") == 3; }));
  kill(b, SIGTERM);
  EXPECT_EQ(WaitExit(b), 0);
  Record second = ReadRecord(record_b);
  EXPECT_EQ(second.done.size(), 3u);
  for (const auto& [id, attempt] : second.done) EXPECT_EQ(attempt, 1) << "job " << id;
  EXPECT_EQ(Count("attempts = 1 AND status = 'completed'"), 3);
  std::remove(record_a.c_str());
  std::remove(record_b.c_str());
}

TEST_F(MultiProcessTest, KilledWorkersJobIsRecoveredAndItsLateCompletionFenced) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue_->Enqueue(MakeJob("slow")));
  const std::string record_a = TempPath("killed_a");
  std::remove(record_a.c_str());
  const pid_t a = SpawnWorker(schema_.name(), record_a, 1, 60000, 0);
  ASSERT_TRUE(Eventually([&] { return !ReadRecord(record_a).started.empty(); }));
  JQ_ASSERT_OK_AND_ASSIGN(Job claimed, queue_->Get(added.id));
  ASSERT_EQ(claimed.status, JobStatus::kProcessing);
  Lease dead_lease;
  dead_lease.job_id = added.id;
  dead_lease.attempt = claimed.attempts;
  dead_lease.worker_id = claimed.locked_by;
  kill(a, SIGKILL);
  waitpid(a, nullptr, 0);

  // The dead worker's heartbeats stop; its own stale timeout (3 s) lets the second worker's
  // reaper hand the job back, and the second worker completes it.
  const std::string record_b = TempPath("killed_b");
  std::remove(record_b.c_str());
  const pid_t b = SpawnWorker(schema_.name(), record_b, 1, 0, 0);
  EXPECT_TRUE(Eventually([&] { return Count("status = 'completed'") == 1; }));
  kill(b, SIGTERM);
  EXPECT_EQ(WaitExit(b), 0);
  Record second = ReadRecord(record_b);
  ASSERT_EQ(second.done.size(), 1u);
  EXPECT_EQ(second.done[0], std::make_pair(added.id, 2));

  // The dead worker's completion arrives late: fenced, and nothing changes.
  EXPECT_THAT(queue_->Complete(dead_lease, R"("late")"), StatusIs(kLeaseLostCode));
  EXPECT_THAT(queue_->Fail(dead_lease, "late failure").status(), StatusIs(kLeaseLostCode));
  EXPECT_THAT(queue_->Heartbeat(dead_lease), StatusIs(kLeaseLostCode));
  JQ_ASSERT_OK_AND_ASSIGN(Job finished, queue_->Get(added.id));
  EXPECT_EQ(finished.status, JobStatus::kCompleted);
  EXPECT_EQ(finished.result_json, "null");
  EXPECT_EQ(finished.attempts, 2);
  std::remove(record_a.c_str());
  std::remove(record_b.c_str());
}

TEST_F(MultiProcessTest, SigtermFinishesInFlightJobsAndLeavesNothingLocked) {
  EnqueueWork(40);
  const std::string record = TempPath("sigterm");
  std::remove(record.c_str());
  const pid_t pid = SpawnWorker(schema_.name(), record, 4, 200, 0);
  ASSERT_TRUE(Eventually([&] { return ReadRecord(record).started.size() >= 4; }));
  kill(pid, SIGTERM);
  EXPECT_EQ(WaitExit(pid), 0);
  Record seen = ReadRecord(record);
  // Every started handler was allowed to finish (200 ms < the 5 s shutdown deadline).
  EXPECT_EQ(seen.started.size(), seen.done.size());
  EXPECT_EQ(Count("status = 'processing'"), 0);
  EXPECT_EQ(Count("status = 'completed'"), static_cast<int64_t>(seen.done.size()));
  EXPECT_EQ(Count("status = 'pending' AND attempts = 0"),
            40 - static_cast<int64_t>(seen.done.size()));
  std::remove(record.c_str());
}

TEST_F(MultiProcessTest, TransactionalEnqueueExistsOnlyIfTheCallerCommits) {
  PGconn* conn = schema_.Connect();
  PQclear(PQexec(conn, "BEGIN"));
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult rolled_back,
                          PgQueue::EnqueueOn(conn, MakeJob("tx"), schema_.name()));
  PQclear(PQexec(conn, "ROLLBACK"));
  PQclear(PQexec(conn, "BEGIN"));
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult committed,
                          PgQueue::EnqueueOn(conn, MakeJob("tx"), schema_.name()));
  // Not visible to others before the commit.
  EXPECT_EQ(Count("true"), 0);
  PQclear(PQexec(conn, "COMMIT"));
  PQfinish(conn);
  EXPECT_THAT(queue_->Get(rolled_back.id).status(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(queue_->Get(committed.id).status(), IsOk());
  EXPECT_EQ(Count("true"), 1);
}

TEST_F(MultiProcessTest, BadInputIsRejectedAndTheTableIsUntouched) {
  ASSERT_THAT(queue_->Enqueue(MakeJob("keep")).status(), IsOk());
  const std::string before = schema_.Query(absl::StrCat(
      "SELECT string_agg(id || status || job_type, ',') FROM ", schema_.name(), ".job_queue"));
  auto rejected = [&](NewJob job) {
    EXPECT_THAT(queue_->Enqueue(job).status(), StatusIs(absl::StatusCode::kInvalidArgument))
        << job.job_type;
    std::vector<NewJob> batch = {MakeJob("fine"), job};
    EXPECT_THAT(queue_->EnqueueMany(batch).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  };
  rejected(MakeJob("t", "{not json"));
  rejected(MakeJob("t", ""));
  // Valid JSON that jsonb refuses: named before anything is sent, the COPY path included.
  EXPECT_THAT(queue_->Enqueue(MakeJob("t", R"({"s": "\u0000"})")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("jsonb")));
  rejected(MakeJob("t", R"(["\udc00"])"));
  EXPECT_THAT(
      queue_->EnqueueMany(std::vector<NewJob>(40, MakeJob("t", R"({"s": "\u0000"})"))).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("jsonb")));
  rejected(MakeJob(""));
  rejected(MakeJob(std::string(129, 'a')));
  rejected(MakeJob("x'); DROP TABLE job_queue; --"));
  rejected(MakeJob("quote\"d"));
  rejected(MakeJob("new\nline"));
  NewJob negative_delay = MakeJob("t");
  negative_delay.options.delay = absl::Seconds(-1);
  rejected(negative_delay);
  NewJob zero_attempts = MakeJob("t");
  zero_attempts.options.max_attempts = 0;
  rejected(zero_attempts);
  // Past what a Postgres interval or timestamp holds: a clear error, not "out of range".
  for (absl::Duration delay :
       {absl::Hours(24 * 366 * 100), absl::Seconds(1e13), absl::InfiniteDuration()}) {
    NewJob far = MakeJob("t");
    far.options.delay = delay;
    EXPECT_THAT(queue_->Enqueue(far).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 100 years")));
    rejected(far);
  }
  for (absl::Time run_at : {absl::InfiniteFuture(), absl::InfinitePast(), absl::FromUnixSeconds(-1),
                            absl::FromUnixSeconds(int64_t{1} << 40)}) {
    NewJob odd = MakeJob("t");
    odd.options.run_at = run_at;
    EXPECT_THAT(queue_->Enqueue(odd).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1970 and 9999")));
    rejected(odd);
  }
  NewJob bad_queue = MakeJob("t");
  bad_queue.options.queue = "q;select 1";
  rejected(bad_queue);
  NewJob bad_priority = MakeJob("t");
  bad_priority.options.priority = 40000;
  rejected(bad_priority);
  ClaimRequest claim;
  claim.worker_id = "w";
  claim.job_types = {"ok", "bad'type"};
  EXPECT_THAT(queue_->Claim(claim).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  claim.job_types = {};
  claim.limit = 0;
  EXPECT_THAT(queue_->Claim(claim).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(schema_.Query(absl::StrCat("SELECT string_agg(id || status || job_type, ',') FROM ",
                                       schema_.name(), ".job_queue")),
            before);
  // A job type no worker handles simply waits.
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult unknown, queue_->Enqueue(MakeJob("nobody_handles_me")));
  claim.limit = 10;
  claim.job_types = {"keep"};
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> leases, queue_->Claim(claim));
  EXPECT_EQ(leases.size(), 1u);
  JQ_ASSERT_OK_AND_ASSIGN(Job waiting, queue_->Get(unknown.id));
  EXPECT_EQ(waiting.status, JobStatus::kPending);
}

}  // namespace
}  // namespace jobqueue
