// Queue administration (drain, remove, retry, promote, progress, logs, paged listing) and the
// events reader, against the real redis-server: each must write what BullMQ's own scripts
// write, so Node clients and dashboards see the same queue.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "jobqueue/bull_events.h"
#include "jobqueue/bull_queue.h"
#include "jobqueue/bull_worker.h"
#include "testing/bull_fixture.h"
#include "testing/eventually.h"
#include "testing/status_matchers.h"

namespace jobqueue {
namespace {

using ::jobqueue::testing::Eventually;
using ::jobqueue::testing::IsOk;
using ::jobqueue::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class BullAdminTest : public ::jobqueue::testing::BullFixture {
 protected:
  std::string Add(absl::string_view data, absl::string_view opts = "{}") {
    return *queue_->Add("task", data, Opts(opts));
  }
  // Runs every waiting job through a worker whose handler fails jobs whose data is "fail".
  void Process(int64_t finished) {
    BullWorkerOptions options;
    options.drain_delay = absl::Milliseconds(50);
    auto worker = BullWorker::Create(
        url_, name_,
        [](BullJobContext& job) -> absl::StatusOr<std::string> {
          if (job.job().data_json == "\"fail\"") return absl::InternalError("boom");
          return std::string("42");
        },
        options);
    ASSERT_THAT(worker.status(), IsOk());
    std::thread run([&] { EXPECT_THAT((*worker)->Run(), IsOk()); });
    EXPECT_TRUE(Eventually([&] {
      return Redis({"ZCARD", Key("completed")}).integer + Redis({"ZCARD", Key("failed")}).integer ==
             finished;
    }));
    (*worker)->Stop();
    run.join();
  }
  std::vector<std::string> Ids(const std::vector<BullJob>& jobs) {
    std::vector<std::string> ids;
    for (const BullJob& job : jobs) ids.push_back(job.id);
    return ids;
  }
  std::string Field(absl::string_view id, absl::string_view field) {
    return Redis({"HGET", Key(id), std::string(field)}).str;
  }
  // What Node's upsertJobScheduler leaves: the scheduler in the repeat zset scored with its
  // next run, and that run's job "repeat:<scheduler>:<millis>" naming it in "rjk".
  std::string AddSchedulerJob(absl::string_view state_key) {
    const std::string millis = "1900000000000";
    const std::string id = absl::StrCat("repeat:every-minute:", millis);
    Redis({"ZADD", Key("repeat"), millis, "every-minute"});
    Redis({"HSET", Key(id), "name", "tick", "data", "{}", "opts", "{}", "timestamp", "1", "delay",
           "0", "priority", "0", "rjk", "every-minute"});
    if (state_key == "wait") {
      Redis({"LPUSH", Key("wait"), id});
    } else {
      Redis({"ZADD", Key(state_key), "1", id});
    }
    return id;
  }
  std::string LastEvent(absl::string_view field) {
    RedisReply last = Redis({"XREVRANGE", Key("events"), "+", "-", "COUNT", "1"});
    const std::vector<RedisReply>& kv = last.elements.at(0).elements.at(1).elements;
    for (size_t i = 0; i + 1 < kv.size(); i += 2) {
      if (kv[i].str == field) return kv[i + 1].str;
    }
    return "";
  }
};

TEST_F(BullAdminTest, DrainRemovesWaitingJobsAndKeepsFinishedOnes) {
  Add("\"ok\"");
  Process(1);
  const std::string waiting = Add("1");
  Add("2", R"({"priority": 3})");
  const std::string delayed = Add("3", R"({"delay": 60000})");

  EXPECT_EQ(*queue_->Drain(), 2);
  BullJobCounts counts = *queue_->Counts();
  EXPECT_EQ(counts.waiting + counts.prioritized, 0);
  EXPECT_EQ(counts.delayed, 1);
  EXPECT_EQ(counts.completed, 1);
  EXPECT_EQ(Redis({"EXISTS", Key(waiting)}).integer, 0);

  EXPECT_EQ(*queue_->Drain(/*include_delayed=*/true), 1);
  EXPECT_EQ(Redis({"EXISTS", Key(delayed)}).integer, 0);
  EXPECT_EQ(queue_->Counts()->delayed, 0);
}

TEST_F(BullAdminTest, RemoveDeletesTheJobWithTheRemovedEvent) {
  const std::string id = Add("1", R"({"priority": 2})");
  ASSERT_THAT(queue_->AddLog(id, "line").status(), IsOk());
  ASSERT_THAT(queue_->Remove(id), IsOk());
  EXPECT_EQ(Redis({"EXISTS", Key(id)}).integer, 0);
  EXPECT_EQ(Redis({"EXISTS", Key(id + ":logs")}).integer, 0);
  EXPECT_EQ(Redis({"ZCARD", Key("prioritized")}).integer, 0);
  EXPECT_EQ(LastEvent("event"), "removed");
  EXPECT_EQ(LastEvent("prev"), "prioritized");
  EXPECT_THAT(queue_->Remove(id), StatusIs(absl::StatusCode::kNotFound));
}

// An id whose hash is gone (a crashed client, a manual DEL) is still removed from its state,
// as Node's removeJob does (with no "removed" event: there was no job data); it used to be
// NotFound and stay listed forever.
TEST_F(BullAdminTest, RemoveClearsAnOrphanIdFromItsState) {
  const std::string id = Add("1");
  Redis({"DEL", Key(id)});
  ASSERT_THAT(queue_->Remove(id), IsOk());
  EXPECT_EQ(Redis({"LLEN", Key("wait")}).integer, 0);
  EXPECT_EQ(LastEvent("event"), "waiting");
  EXPECT_THAT(queue_->Remove(id), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(BullAdminTest, RemoveRefusesALockedJob) {
  const std::string id = Add("1");
  Redis({"SET", Key(id + ":lock"), "someone-else", "PX", "60000"});
  EXPECT_THAT(queue_->Remove(id),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("locked")));
  EXPECT_EQ(Redis({"EXISTS", Key(id)}).integer, 1);
  EXPECT_EQ(Redis({"LLEN", Key("wait")}).integer, 1);
}

// A queue key is not a job: removing "meta" used to delete the meta hash and so un-pause the
// queue.
TEST_F(BullAdminTest, QueueKeyNamesAreNotJobIds) {
  ASSERT_THAT(queue_->Pause(), IsOk());
  EXPECT_THAT(queue_->Remove("meta"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name of a queue key")));
  EXPECT_THAT(queue_->GetJob("wait").status(), StatusIs(absl::StatusCode::kInvalidArgument));
  JQ_ASSERT_OK_AND_ASSIGN(bool paused, queue_->IsPaused());
  EXPECT_TRUE(paused);
}

TEST_F(BullAdminTest, RetryJobsMovesFailedJobsBackToWait) {
  const std::string a = Add("\"fail\"");
  const std::string b = Add("\"fail\"", R"({"priority": 5})");
  Process(2);
  ASSERT_EQ(queue_->Counts()->failed, 2);

  EXPECT_EQ(*queue_->RetryJobs("failed"), 2);
  BullJobCounts counts = *queue_->Counts();
  EXPECT_EQ(counts.failed, 0);
  EXPECT_EQ(counts.waiting, 1);
  EXPECT_EQ(counts.prioritized, 1);
  BullJob job = *queue_->GetJob(a);
  EXPECT_EQ(job.attempts_made, 1);  // kept, as Queue.retryJobs keeps it
  EXPECT_FALSE(job.finished_on.has_value());
  EXPECT_EQ(job.fields.count("failedReason"), 0u);
  EXPECT_EQ(LastEvent("event"), "waiting");
  EXPECT_EQ(LastEvent("prev"), "failed");
  EXPECT_EQ(Redis({"ZCARD", Key("marker")}).integer, 1);
  EXPECT_THAT(queue_->RetryJobs("active"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(BullAdminTest, RetryJobRetriesOneJobAndCanResetAttempts) {
  const std::string id = Add("\"fail\"");
  const std::string done = Add("\"ok\"");
  Process(2);
  EXPECT_THAT(queue_->RetryJob(done), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_THAT(queue_->RetryJob(id, "failed", /*reset_attempts=*/true), IsOk());
  EXPECT_EQ(queue_->GetJob(id)->attempts_made, 0);
  EXPECT_EQ(queue_->Counts()->waiting, 1);
  EXPECT_THAT(queue_->RetryJob("nope"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_THAT(queue_->RetryJob(done, "completed"), IsOk());
  EXPECT_EQ(queue_->GetJob(done)->return_value_json, std::nullopt);
  EXPECT_EQ(queue_->Counts()->waiting, 2);
}

TEST_F(BullAdminTest, PromoteMovesDelayedJobsNow) {
  const std::string a = Add("1", R"({"delay": 60000})");
  Add("2", R"({"delay": 60000, "priority": 4})");
  Add("3", R"({"delay": 60000})");
  ASSERT_THAT(queue_->Promote(a), IsOk());
  EXPECT_EQ(Field(a, "delay"), "0");
  EXPECT_EQ(LastEvent("prev"), "delayed");
  EXPECT_THAT(queue_->Promote(a), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(*queue_->PromoteAll(), 2);
  BullJobCounts counts = *queue_->Counts();
  EXPECT_EQ(counts.delayed, 0);
  EXPECT_EQ(counts.waiting, 2);
  EXPECT_EQ(counts.prioritized, 1);
}

TEST_F(BullAdminTest, ProgressAndLogsAreStoredAsNodeStoresThem) {
  const std::string id = Add("1");
  ASSERT_THAT(queue_->UpdateProgress(id, R"({"done": 3})"), IsOk());
  EXPECT_EQ(Field(id, "progress"), R"({"done": 3})");
  EXPECT_EQ(LastEvent("event"), "progress");
  EXPECT_EQ(LastEvent("data"), R"({"done": 3})");
  EXPECT_THAT(queue_->UpdateProgress(id, "{nope"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(queue_->UpdateProgress("missing", "1"), StatusIs(absl::StatusCode::kNotFound));

  for (const char* line : {"a", "b", "c"}) ASSERT_THAT(queue_->AddLog(id, line).status(), IsOk());
  EXPECT_EQ(*queue_->AddLog(id, "d", /*keep_logs=*/3), 3);
  BullQueue::Logs logs = *queue_->GetLogs(id);
  EXPECT_THAT(logs.lines, ElementsAre("b", "c", "d"));
  EXPECT_EQ(logs.count, 3);
  EXPECT_THAT(queue_->GetLogs(id, 0, 0, /*asc=*/false)->lines, ElementsAre("d"));
  EXPECT_THAT(queue_->AddLog("missing", "x").status(), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(BullAdminTest, GetJobsPagesThroughAState) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Add(absl::StrCat(i)));
  // Newest first by default, as Queue.getJobs.
  EXPECT_THAT(Ids(*queue_->GetJobs("wait", 0, 1)), ElementsAre(ids[4], ids[3]));
  EXPECT_THAT(Ids(*queue_->GetJobs("wait", 2, 3)), ElementsAre(ids[2], ids[1]));
  EXPECT_THAT(Ids(*queue_->GetJobs("wait", 0, 1, /*asc=*/true)), ElementsAre(ids[0], ids[1]));
  EXPECT_EQ((*queue_->GetJobs("wait", 0, -1)).size(), 5u);
  EXPECT_EQ((*queue_->GetJobs("wait", 0, 0))[0].data_json, "4");
  EXPECT_THAT(*queue_->GetJobs("failed"), IsEmpty());
  EXPECT_THAT(queue_->GetJobs("bogus").status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(queue_->GetJobs("wait", 3, 1).status(), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(BullAdminTest, EventsReaderSeesWhatHappensAfterItOpens) {
  Add("\"before\"");
  BullQueueEventsOptions options;
  auto events = BullQueueEvents::Open(url_, name_, options);
  ASSERT_THAT(events.status(), IsOk());
  const std::string id = Add("\"ok\"");
  Process(2);
  std::vector<std::string> seen;
  std::string returned;
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<std::vector<BullEvent>> read = (*events)->Read(absl::Milliseconds(200));
    if (!read.ok()) return false;
    for (const BullEvent& e : *read) {
      if (e.job_id != id) continue;  // the earlier job runs too
      seen.push_back(e.event);
      if (e.event == "completed") returned = e.fields.at("returnvalue");
    }
    return !returned.empty();
  }));
  EXPECT_THAT(seen, ::testing::IsSupersetOf({"added", "waiting", "active", "completed"}));
  EXPECT_EQ(returned, "42");
  absl::StatusOr<std::vector<BullEvent>> quiet = (*events)->Read(absl::Milliseconds(10));
  ASSERT_THAT(quiet.status(), IsOk());
  EXPECT_THAT(*quiet, IsEmpty());

  // Resuming from an id replays what came after it.
  options.last_event_id = "0";
  auto replay = BullQueueEvents::Open(url_, name_, options);
  ASSERT_THAT(replay.status(), IsOk());
  absl::StatusOr<std::vector<BullEvent>> replayed = (*replay)->Read(absl::Milliseconds(10));
  ASSERT_THAT(replayed.status(), IsOk());
  const std::vector<BullEvent>& all = *replayed;
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all[0].event, "added");
  EXPECT_NE(all[0].job_id, id);  // the job added before the first reader opened
  EXPECT_EQ((*replay)->last_event_id(), all.back().id);
}

TEST_F(BullAdminTest, EventsRunDeliversUntilStopped) {
  auto events = BullQueueEvents::Open(url_, name_);
  ASSERT_THAT(events.status(), IsOk());
  absl::Mutex mu;
  std::vector<std::string> added;
  std::thread run([&] {
    EXPECT_THAT((*events)->Run([&](const BullEvent& e) {
      absl::MutexLock lock(&mu);
      if (e.event == "added") added.push_back(e.job_id);
    }),
                IsOk());
  });
  const std::string a = Add("1");
  const std::string b = Add("2");
  EXPECT_TRUE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return added.size() == 2;
  }));
  (*events)->Stop();  // interrupts the blocked XREAD
  run.join();
  EXPECT_THAT(added, ElementsAre(a, b));
  EXPECT_THAT((*events)->Read(absl::Milliseconds(10)).status(),
              StatusIs(absl::StatusCode::kCancelled));
}

TEST_F(BullAdminTest, EventsReaderRejectsBadInput) {
  EXPECT_THAT(BullQueueEvents::Open(url_, "a:b").status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  BullQueueEventsOptions options;
  options.batch = 0;
  EXPECT_THAT(BullQueueEvents::Open(url_, name_, options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(BullAdminTest, CleanWaitRemovesTheOldestFirstUpToTheLimit) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Add(absl::StrCat(i)));
  // As Node: a limit takes the oldest jobs, from the list's tail.
  EXPECT_THAT(*queue_->Clean("wait", absl::ZeroDuration(), 2), ElementsAre(ids[0], ids[1]));
  EXPECT_THAT(Ids(*queue_->GetJobs("wait", 0, -1, /*asc=*/true)),
              ElementsAre(ids[2], ids[3], ids[4]));
  // A locked job is passed over, not counted.
  Redis({"SET", Key(ids[2] + ":lock"), "someone", "PX", "60000"});
  EXPECT_THAT(*queue_->Clean("wait", absl::ZeroDuration(), 1), ElementsAre(ids[3]));
  EXPECT_THAT(Ids(*queue_->GetJobs("wait", 0, -1, /*asc=*/true)), ElementsAre(ids[2], ids[4]));
  EXPECT_EQ(Redis({"EXISTS", Key(ids[3])}).integer, 0);
}

TEST_F(BullAdminTest, CleanRunsInBoundedStepsAndFindsOldJobsPastNewOnes) {
  const int64_t now = absl::ToUnixMillis(absl::Now());
  auto push_jobs = [&](const char* count, const char* prefix, const std::string& timestamp) {
    Redis({"EVAL",
           "for i = 1, tonumber(ARGV[2]) do "
           "  local id = ARGV[3] .. i "
           "  redis.call('LPUSH', KEYS[1], id) "
           "  redis.call('HSET', ARGV[1] .. id, 'timestamp', ARGV[4]) "
           "end",
           "1", Key("wait"), Key(""), count, prefix, timestamp});
  };
  // 10,000 jobs inside the grace period at the oldest end, then 15,000 old ones before them.
  push_jobs("10000", "new", absl::StrCat(now + 3600000));
  push_jobs("15000", "old", "1");
  std::vector<std::string> removed = *queue_->Clean("wait", absl::Minutes(1));
  EXPECT_EQ(removed.size(), 15000u);
  EXPECT_EQ(removed.front(), "old1");  // oldest first
  EXPECT_EQ(Redis({"LLEN", Key("wait")}).integer, 10000);
  EXPECT_EQ(Redis({"LINDEX", Key("wait"), "-1"}).str, "new1");
  EXPECT_EQ(Redis({"EXISTS", Key("old15000")}).integer, 0);
  // One "cleaned" event per script call: no call read or removed more than 10,000 jobs.
  EXPECT_GE(Redis({"XLEN", Key("events")}).integer, 3);

  // Finished jobs: no limit still means steps of at most 10,000, as Node's Queue.clean.
  Redis({"EVAL", "for i = 1, tonumber(ARGV[1]) do redis.call('ZADD', KEYS[1], i, 'done' .. i) end",
         "1", Key("completed"), "12000"});
  Redis({"DEL", Key("events")});
  EXPECT_EQ(queue_->Clean("completed", absl::ZeroDuration())->size(), 12000u);
  EXPECT_EQ(Redis({"ZCARD", Key("completed")}).integer, 0);
  EXPECT_EQ(Redis({"XLEN", Key("events")}).integer, 2);
}

TEST_F(BullAdminTest, CleanWithALimitOnDelayedTakesTheLowestScores) {
  const std::string a = Add("1", R"({"delay": 60000})");
  const std::string b = Add("2", R"({"delay": 120000})");
  const std::string c = Add("3", R"({"delay": 30000})");
  EXPECT_THAT(*queue_->Clean("delayed", absl::ZeroDuration(), 2), ElementsAre(c, a));
  EXPECT_EQ(Redis({"ZCARD", Key("delayed")}).integer, 1);
  EXPECT_EQ(Redis({"EXISTS", Key(b)}).integer, 1);
}

// Each state's age is read from the job times BullMQ's cleanJobsInSet reads, first set first:
// prioritized by timestamp alone, wait (and paused) by finishedOn, processedOn, timestamp,
// delayed by processedOn, timestamp.
TEST_F(BullAdminTest, CleanJudgesEachStateByTheTimesNodeReads) {
  const int64_t now = absl::ToUnixMillis(absl::Now());
  const std::string old = absl::StrCat(now - 7200000), recent = absl::StrCat(now);
  const std::string old_opts = absl::StrCat(R"({"timestamp":)", now - 7200000, "}");
  // Added two hours ago, handed back to prioritized after a recent attempt: Node cleans it.
  const std::string prio_old =
      Add("1", absl::StrCat(R"({"priority":3,"timestamp":)", now - 7200000, "}"));
  Redis({"HSET", Key(prio_old), "processedOn", recent});
  const std::string prio_new = Add("2", R"({"priority":3})");
  EXPECT_THAT(*queue_->Clean("prioritized", absl::Hours(1)), ElementsAre(prio_old));
  EXPECT_EQ(Redis({"ZCARD", Key("prioritized")}).integer, 1);
  EXPECT_EQ(Redis({"EXISTS", Key(prio_new)}).integer, 1);

  // Wait: finishedOn first, then processedOn.
  const std::string finished_long_ago = Add("3", old_opts);
  Redis({"HSET", Key(finished_long_ago), "finishedOn", old, "processedOn", recent});
  const std::string finished_recently = Add("4", old_opts);
  Redis({"HSET", Key(finished_recently), "finishedOn", recent, "processedOn", old});
  const std::string started_recently = Add("5", old_opts);
  Redis({"HSET", Key(started_recently), "processedOn", recent});
  const std::string added_long_ago = Add("6", old_opts);
  EXPECT_THAT(*queue_->Clean("wait", absl::Hours(1)),
              ElementsAre(finished_long_ago, added_long_ago));
  EXPECT_THAT(Ids(*queue_->GetJobs("wait", 0, -1, /*asc=*/true)),
              ElementsAre(finished_recently, started_recently));

  // Delayed: processedOn, then timestamp (finishedOn is not read).
  const std::string delayed_started =
      Add("7", absl::StrCat(R"({"delay":600000000,"timestamp":)", now - 7200000, "}"));
  Redis({"HSET", Key(delayed_started), "processedOn", recent, "finishedOn", old});
  const std::string delayed_old =
      Add("8", absl::StrCat(R"({"delay":600000000,"timestamp":)", now - 7200000, "}"));
  Redis({"HSET", Key(delayed_old), "finishedOn", recent});
  EXPECT_THAT(*queue_->Clean("delayed", absl::Hours(1)), ElementsAre(delayed_old));
  EXPECT_EQ(Redis({"EXISTS", Key(delayed_started)}).integer, 1);
}

TEST_F(BullAdminTest, DrainCleanAndRemoveLeaveAJobSchedulersCurrentJob) {
  const std::string delayed = AddSchedulerJob("delayed");
  // An earlier iteration of the same scheduler is an ordinary job.
  Redis({"HSET", Key("repeat:every-minute:1"), "timestamp", "1", "rjk", "every-minute"});
  Redis({"ZADD", Key("delayed"), "2", "repeat:every-minute:1"});
  Add("1", R"({"delay": 60000})");
  Add("2");
  EXPECT_EQ(*queue_->Drain(/*include_delayed=*/true), 3);
  EXPECT_THAT(Redis({"ZRANGE", Key("delayed"), "0", "-1"}).elements.size(), 1u);
  EXPECT_EQ(Redis({"ZSCORE", Key("delayed"), delayed}).str, "1");
  EXPECT_EQ(Redis({"EXISTS", Key(delayed)}).integer, 1);

  Add("3", R"({"delay": 60000})");
  EXPECT_EQ(queue_->Clean("delayed", absl::ZeroDuration())->size(), 1u);
  EXPECT_EQ(Redis({"EXISTS", Key(delayed)}).integer, 1);
  EXPECT_EQ(Redis({"ZCARD", Key("delayed")}).integer, 1);

  EXPECT_THAT(queue_->Remove(delayed), StatusIs(absl::StatusCode::kFailedPrecondition,
                                                HasSubstr("belongs to a job scheduler")));
  EXPECT_EQ(Redis({"EXISTS", Key(delayed)}).integer, 1);
  EXPECT_EQ(Redis({"ZCARD", Key("delayed")}).integer, 1);
}

TEST_F(BullAdminTest, DrainAndCleanKeepAJobSchedulersWaitingJobInLine) {
  const std::string first = Add("1");
  const std::string waiting = AddSchedulerJob("wait");
  Add("2");
  EXPECT_EQ(*queue_->Drain(), 2);
  EXPECT_THAT(Redis({"LRANGE", Key("wait"), "0", "-1"}).elements.size(), 1u);
  EXPECT_EQ(Redis({"LINDEX", Key("wait"), "0"}).str, waiting);
  EXPECT_EQ(Redis({"ZCARD", Key("marker")}).integer, 1);  // still claimable
  Add("3");
  EXPECT_EQ(queue_->Clean("wait", absl::ZeroDuration())->size(), 1u);
  EXPECT_EQ(Redis({"LINDEX", Key("wait"), "0"}).str, waiting);
  EXPECT_EQ(Redis({"EXISTS", Key(first)}).integer, 0);
}

TEST_F(BullAdminTest, RemovalFreesTheDeduplicationIdEvenWithATtl) {
  // As a Node add with deduplication {id, ttl} leaves it: "de:<id>" names the job for a while.
  auto dedup = [&](const std::string& job, const std::string& dedup_id) {
    Redis({"HSET", Key(job), "deid", dedup_id});
    Redis({"SET", Key("de:" + dedup_id), job, "PX", "600000"});
    Redis({"SET", Key("dn:" + dedup_id), "next"});
  };
  const std::string removed = Add("1");
  const std::string drained = Add("2");
  const std::string cleaned = Add("3", R"({"delay": 60000})");
  const std::string other = Add("4", R"({"delay": 60000})");
  dedup(removed, "r");
  dedup(drained, "d");
  dedup(cleaned, "c");
  Redis({"HSET", Key(other), "deid", "o"});
  Redis({"SET", Key("de:o"), "someone-else", "PX", "600000"});

  ASSERT_THAT(queue_->Remove(removed), IsOk());
  EXPECT_EQ(Redis({"EXISTS", Key("de:r"), Key("dn:r")}).integer, 0);
  ASSERT_EQ(*queue_->Drain(), 1);
  EXPECT_EQ(Redis({"EXISTS", Key("de:d"), Key("dn:d")}).integer, 0);
  ASSERT_EQ(queue_->Clean("delayed", absl::ZeroDuration())->size(), 2u);
  EXPECT_EQ(Redis({"EXISTS", Key("de:c"), Key("dn:c")}).integer, 0);
  // A deduplication id now naming another job stays.
  EXPECT_EQ(Redis({"GET", Key("de:o")}).str, "someone-else");
}

TEST_F(BullAdminTest, ResumeMovesAWholeLegacyPausedListBack) {
  ASSERT_THAT(queue_->Pause(), IsOk());
  Add("1");  // wait is not empty, so the paused list moves in batches
  Redis({"EVAL", "for i = 1, 7500 do redis.call('RPUSH', KEYS[1], 'p' .. i) end", "1",
         Key("paused")});
  Redis({"DEL", Key("events")});
  ASSERT_THAT(queue_->Resume(), IsOk());
  EXPECT_EQ(Redis({"EXISTS", Key("paused")}).integer, 0);
  EXPECT_EQ(Redis({"LLEN", Key("wait")}).integer, 7501);
  EXPECT_EQ(Redis({"LINDEX", Key("wait"), "-1"}).str, "p7500");
  EXPECT_EQ(Redis({"XLEN", Key("events")}).integer, 1);  // one "resumed" event
  EXPECT_EQ(LastEvent("event"), "resumed");
}

TEST_F(BullAdminTest, RetryJobPutsALifoJobAtTheFront) {
  const std::string lifo = Add("\"fail\"", R"({"lifo": true})");
  const std::string plain = Add("\"fail\"");
  Process(2);
  const std::string waiting = Add("1");
  ASSERT_THAT(queue_->RetryJob(lifo), IsOk());
  ASSERT_THAT(queue_->RetryJob(plain), IsOk());
  // Workers take from the right: the lifo job runs next, the other after the waiting one.
  std::vector<std::string> wait;
  for (const RedisReply& r : Redis({"LRANGE", Key("wait"), "0", "-1"}).elements) {
    wait.push_back(r.str);
  }
  EXPECT_THAT(wait, ElementsAre(plain, waiting, lifo));
}

TEST_F(BullAdminTest, RemovingAFlowsLastPendingChildMovesItsParentToWait) {
  // What Node's FlowProducer leaves: the parent in waiting-children with its pending
  // children's keys in "<parent>:dependencies", each child naming it in "parentKey".
  const std::string parent = "flow-parent";
  Redis({"HSET", Key(parent), "name", "p", "data", "{}", "opts", "{}", "timestamp", "1"});
  Redis({"ZADD", Key("waiting-children"), "1", parent});
  const std::string a = Add("1");
  const std::string b = Add("2");
  for (const std::string& child : {a, b}) {
    Redis({"HSET", Key(child), "parentKey", Key(parent)});
    Redis({"SADD", Key(parent + ":dependencies"), Key(child)});
  }
  ASSERT_THAT(queue_->Remove(a), IsOk());
  EXPECT_EQ(Redis({"ZCARD", Key("waiting-children")}).integer, 1);
  ASSERT_THAT(queue_->Remove(b), IsOk());
  EXPECT_EQ(Redis({"ZCARD", Key("waiting-children")}).integer, 0);
  EXPECT_EQ(Redis({"LINDEX", Key("wait"), "0"}).str, parent);
  EXPECT_EQ(Redis({"LLEN", Key("wait")}).integer, 1);
  EXPECT_EQ(Redis({"ZCARD", Key("marker")}).integer, 1);
  bool waiting_event = false;
  for (const RedisReply& e : Redis({"XRANGE", Key("events"), "-", "+"}).elements) {
    const std::vector<RedisReply>& kv = e.elements.at(1).elements;
    waiting_event |= kv.size() == 6 && kv[1].str == "waiting" && kv[3].str == parent &&
                     kv[5].str == "waiting-children";
  }
  EXPECT_TRUE(waiting_event);
}

}  // namespace
}  // namespace jobqueue
