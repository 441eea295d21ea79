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

TEST_F(BullAdminTest, RemoveRefusesALockedJob) {
  const std::string id = Add("1");
  Redis({"SET", Key(id + ":lock"), "someone-else", "PX", "60000"});
  EXPECT_THAT(queue_->Remove(id),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("locked")));
  EXPECT_EQ(Redis({"EXISTS", Key(id)}).integer, 1);
  EXPECT_EQ(Redis({"LLEN", Key("wait")}).integer, 1);
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

}  // namespace
}  // namespace jobqueue
