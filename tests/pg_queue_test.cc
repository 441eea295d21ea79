#include "jobqueue/pg_queue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/pg_fixture.h"
#include "testing/status_matchers.h"

namespace jobqueue {
namespace {

using ::jobqueue::testing::IsOk;
using ::jobqueue::testing::StatusIs;
using ::jobqueue::testing::TestSchema;
using ::testing::HasSubstr;

class PgQueueTest : public ::testing::Test {
 protected:
  NewJob Job(std::string type, std::string payload = R"({"n": 1})") {
    NewJob job;
    job.job_type = std::move(type);
    job.payload_json = std::move(payload);
    return job;
  }
  ClaimRequest Request(int limit = 1, std::string worker = "w1") {
    ClaimRequest request;
    request.worker_id = std::move(worker);
    request.limit = limit;
    return request;
  }
  TestSchema schema_;
  std::unique_ptr<PgQueue> queue_ = schema_.OpenQueue();
};

TEST_F(PgQueueTest, EnqueueClaimComplete) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue_->Enqueue(Job("ingest_csv")));
  EXPECT_TRUE(added.inserted);
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> leases, queue_->Claim(Request()));
  ASSERT_EQ(leases.size(), 1u);
  EXPECT_EQ(leases[0].job_id, added.id);
  EXPECT_EQ(leases[0].attempt, 1);
  EXPECT_EQ(leases[0].payload_json, R"({"n": 1})");
  EXPECT_THAT(queue_->Complete(leases[0], R"({"ok": true})"), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job job, queue_->Get(added.id));
  EXPECT_EQ(job.status, JobStatus::kCompleted);
  EXPECT_EQ(job.result_json, R"({"ok": true})");
  EXPECT_EQ(schema_.Query("SELECT status FROM " + schema_.name() + ".job_queue"), "completed");
}

TEST_F(PgQueueTest, MigrateIsIdempotent) {
  JQ_ASSERT_OK_AND_ASSIGN(int version, queue_->Migrate());
  EXPECT_EQ(version, 1);
}

TEST_F(PgQueueTest, CompleteAfterRecoveryIsFenced) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue_->Enqueue(Job("t")));
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> first, queue_->Claim(Request(1, "dead")));
  ASSERT_EQ(first.size(), 1u);
  RecoverOptions recover;
  recover.stale_after = absl::ZeroDuration();
  JQ_ASSERT_OK_AND_ASSIGN(RecoverResult recovered, queue_->RecoverStale(recover));
  EXPECT_TRUE(recovered.acted);
  ASSERT_EQ(recovered.jobs.size(), 1u);
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> second, queue_->Claim(Request(1, "alive")));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].attempt, 2);
  EXPECT_THAT(queue_->Complete(first[0]), StatusIs(kLeaseLostCode, HasSubstr("lease lost")));
  EXPECT_THAT(queue_->Complete(second[0]), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job job, queue_->Get(added.id));
  EXPECT_EQ(job.locked_by, "alive");
}

TEST_F(PgQueueTest, BatchEnqueueAndCompleteAndClaim) {
  std::vector<NewJob> jobs;
  for (int i = 0; i < 10; ++i) jobs.push_back(Job("t", absl::StrCat("{\"i\": ", i, "}")));
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<EnqueueResult> added, queue_->EnqueueMany(jobs));
  ASSERT_EQ(added.size(), 10u);
  for (size_t i = 1; i < added.size(); ++i) EXPECT_GT(added[i].id, added[i - 1].id);
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::CompleteAndClaimResult first,
                          queue_->CompleteAndClaim({}, Request(4)));
  ASSERT_EQ(first.claimed.size(), 4u);
  EXPECT_EQ(first.claimed[0].job_id, added[0].id);
  std::vector<PgQueue::Completion> done;
  for (const Lease& lease : first.claimed) done.push_back({lease, "1"});
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::CompleteAndClaimResult second,
                          queue_->CompleteAndClaim(done, Request(100)));
  EXPECT_EQ(second.claimed.size(), 6u);
  EXPECT_TRUE(second.lost_job_ids.empty());
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + schema_.name() +
                          ".job_queue WHERE status = 'completed'"),
            "4");
}

}  // namespace
}  // namespace jobqueue
