// The BullMQ producer against the real redis-server: what it writes must be what BullMQ
// writes (keys, hash fields, scores, markers, events). tests/compat/bullmq/ checks the same
// jobs with the real Node package.
#include "jobqueue/bull_queue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "testing/bull_fixture.h"
#include "testing/status_matchers.h"

namespace jobqueue {
namespace {

using ::jobqueue::testing::IsOk;
using ::jobqueue::testing::StatusIs;
using ::testing::HasSubstr;

using BullQueueTest = ::jobqueue::testing::BullFixture;

TEST_F(BullQueueTest, StandardJobIsWrittenAsBullMqWritesIt) {
  const int64_t before = absl::ToUnixMillis(absl::Now());
  JQ_ASSERT_OK_AND_ASSIGN(std::string id,
                          queue_->Add("ingest", R"({"file":"a.csv"})", Opts(R"({"attempts":3})")));
  EXPECT_EQ(id, "1");
  JQ_ASSERT_OK_AND_ASSIGN(BullJob job, queue_->GetJob(id));
  EXPECT_EQ(job.name, "ingest");
  EXPECT_EQ(job.data_json, R"({"file":"a.csv"})");
  EXPECT_EQ(job.opts_json, R"({"attempts":3})");
  EXPECT_GE(job.timestamp, before);
  EXPECT_EQ(job.fields.at("delay"), "0");
  EXPECT_EQ(job.fields.at("priority"), "0");
  // FIFO: LPUSH into wait; the marker wakes a blocked worker.
  EXPECT_EQ(Redis({"LRANGE", queue_->Key("wait"), "0", "-1"}).elements[0].str, "1");
  EXPECT_EQ(Redis({"ZSCORE", queue_->Key("marker"), "0"}).str, "0");
  EXPECT_EQ(Redis({"HGET", queue_->Key("meta"), "opts.maxLenEvents"}).str, "10000");
  RedisReply events = Redis({"XRANGE", queue_->Key("events"), "-", "+"});
  ASSERT_EQ(events.elements.size(), 2u);
  const RedisReply& added = events.elements[0].elements[1];
  EXPECT_EQ(added.elements[1].str, "added");
  EXPECT_EQ(added.elements[5].str, "ingest");
  EXPECT_EQ(events.elements[1].elements[1].elements[1].str, "waiting");
  JQ_ASSERT_OK_AND_ASSIGN(BullJobCounts counts, queue_->Counts());
  EXPECT_EQ(counts.waiting, 1);
  EXPECT_EQ(counts.active + counts.delayed + counts.prioritized, 0);
}

TEST_F(BullQueueTest, DelayedPrioritizedAndLifoUseBullMqScores) {
  JQ_ASSERT_OK_AND_ASSIGN(std::string delayed, queue_->Add("d", "{}", Opts(R"({"delay":60000})")));
  JQ_ASSERT_OK_AND_ASSIGN(BullJob job, queue_->GetJob(delayed));
  const int64_t due = job.timestamp + 60000;
  EXPECT_EQ(Redis({"ZSCORE", queue_->Key("delayed"), delayed}).str, absl::StrCat(due * 0x1000));
  EXPECT_EQ(Redis({"ZSCORE", queue_->Key("marker"), "1"}).str, absl::StrCat(due));
  // Same millisecond (opts.timestamp makes sure of it; the check used to run only when the
  // clock happened not to tick between the adds): the low 12 bits keep them in order.
  JQ_ASSERT_OK_AND_ASSIGN(
      std::string second,
      queue_->Add("d", "{}",
                  Opts(absl::StrCat(R"({"delay":60000,"timestamp":)", job.timestamp, "}"))));
  JQ_ASSERT_OK_AND_ASSIGN(BullJob job2, queue_->GetJob(second));
  ASSERT_EQ(job2.timestamp, job.timestamp);
  EXPECT_EQ(Redis({"ZSCORE", queue_->Key("delayed"), second}).str, absl::StrCat(due * 0x1000 + 1));

  JQ_ASSERT_OK_AND_ASSIGN(std::string p, queue_->Add("p", "{}", Opts(R"({"priority":7})")));
  EXPECT_EQ(Redis({"ZSCORE", queue_->Key("prioritized"), p}).str,
            absl::StrCat(7 * 0x100000000LL + 1));
  EXPECT_EQ(Redis({"GET", queue_->Key("pc")}).str, "1");

  JQ_ASSERT_OK_AND_ASSIGN(std::string fifo, queue_->Add("f", "{}"));
  JQ_ASSERT_OK_AND_ASSIGN(std::string lifo, queue_->Add("l", "{}", Opts(R"({"lifo":true})")));
  // Workers take from the right: the LIFO job is next, before the older FIFO one.
  RedisReply wait = Redis({"LRANGE", queue_->Key("wait"), "0", "-1"});
  ASSERT_EQ(wait.elements.size(), 2u);
  EXPECT_EQ(wait.elements[0].str, fifo);
  EXPECT_EQ(wait.elements[1].str, lifo);
  JQ_ASSERT_OK_AND_ASSIGN(BullJobCounts counts, queue_->Counts());
  EXPECT_EQ(counts.delayed, 2);
  EXPECT_EQ(counts.prioritized, 1);
  EXPECT_EQ(counts.waiting, 2);
}

// opts.timestamp is the job's creation time and the base of its delay, as in Node's Queue.add;
// it used to be ignored (the delay counted from the add).
TEST_F(BullQueueTest, OptsTimestampIsTheJobsTimestampAndTheBaseOfItsDelay) {
  const int64_t minute_ago = absl::ToUnixMillis(absl::Now()) - 60000;
  const std::string given = absl::StrCat(R"({"timestamp":)", minute_ago, R"(,"delay":30000})");
  std::vector<BullQueue::NewBullJob> jobs = {
      {"a", "{}", Opts("{}")}, {"b", "{}", Opts(given)}, {"c", "{}", Opts(R"({"delay":30000})")}};
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<std::string> ids, queue_->AddBulk(jobs));
  ASSERT_EQ(ids.size(), 3u);
  JQ_ASSERT_OK_AND_ASSIGN(BullJob a, queue_->GetJob(ids[0]));
  JQ_ASSERT_OK_AND_ASSIGN(BullJob b, queue_->GetJob(ids[1]));
  JQ_ASSERT_OK_AND_ASSIGN(BullJob c, queue_->GetJob(ids[2]));
  EXPECT_EQ(b.timestamp, minute_ago);
  EXPECT_GT(a.timestamp, minute_ago + 50000);
  EXPECT_EQ(c.timestamp, a.timestamp);
  EXPECT_EQ(Redis({"ZSCORE", queue_->Key("delayed"), ids[1]}).str,
            absl::StrCat((minute_ago + 30000) * 0x1000));
  // Half a minute past due already: the delayed set's first entry is b, ahead of c.
  EXPECT_EQ(Redis({"ZRANGE", queue_->Key("delayed"), "0", "0"}).elements[0].str, ids[1]);
  // As Node: a falsy timestamp (0) means now.
  JQ_ASSERT_OK_AND_ASSIGN(std::string zero,
                          queue_->Add("z", "{}", Opts(R"({"timestamp":0,"delay":30000})")));
  JQ_ASSERT_OK_AND_ASSIGN(BullJob z, queue_->GetJob(zero));
  EXPECT_GE(z.timestamp, a.timestamp);
}

TEST_F(BullQueueTest, DuplicateCustomIdReturnsTheExistingJob) {
  JQ_ASSERT_OK_AND_ASSIGN(std::string first,
                          queue_->Add("n", R"({"v":1})", Opts(R"({"jobId":"order-7"})")));
  JQ_ASSERT_OK_AND_ASSIGN(std::string second,
                          queue_->Add("n", R"({"v":2})", Opts(R"({"jobId":"order-7"})")));
  EXPECT_EQ(first, "order-7");
  EXPECT_EQ(second, "order-7");
  JQ_ASSERT_OK_AND_ASSIGN(BullJob job, queue_->GetJob("order-7"));
  EXPECT_EQ(job.data_json, R"({"v":1})");
  EXPECT_EQ(Redis({"LLEN", queue_->Key("wait")}).integer, 1);
}

TEST_F(BullQueueTest, PausedQueueGetsTheJobButNoMarker) {
  Redis({"HSET", queue_->Key("meta"), "paused", "1"});
  ASSERT_THAT(queue_->Add("n", "{}").status(), IsOk());
  EXPECT_EQ(Redis({"EXISTS", queue_->Key("marker")}).integer, 0);
  EXPECT_EQ(Redis({"LLEN", queue_->Key("wait")}).integer, 1);
}

TEST_F(BullQueueTest, AddBulkIsOneRoundTripInOrder) {
  std::vector<BullQueue::NewBullJob> jobs;
  for (int i = 0; i < 500; ++i) jobs.push_back({"bulk", absl::StrCat(R"({"n":)", i, "}"), {}});
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<std::string> ids, queue_->AddBulk(jobs));
  ASSERT_EQ(ids.size(), 500u);
  EXPECT_EQ(ids.front(), "1");
  EXPECT_EQ(ids.back(), "500");
  JQ_ASSERT_OK_AND_ASSIGN(BullJob last, queue_->GetJob("500"));
  EXPECT_EQ(last.data_json, R"({"n":499})");
}

// io_timeout bounds a wait without progress, not the whole call: a bulk add that takes Redis
// longer than io_timeout in all still returns every id (it used to fail after adding them).
TEST_F(BullQueueTest, AddBulkLongerThanTheIoTimeoutSucceeds) {
  BullQueueOptions options;
  options.redis.io_timeout = absl::Milliseconds(300);
  JQ_ASSERT_OK_AND_ASSIGN(auto queue, BullQueue::Open(url_, name_, options));
  constexpr int kJobs = 60000;
  const std::vector<BullQueue::NewBullJob> jobs(kJobs, {"bulk", R"({"n": 1})", {}});
  const absl::Time start = absl::Now();
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<std::string> ids, queue->AddBulk(jobs));
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(ids.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(ids.back(), absl::StrCat(kJobs));
  EXPECT_EQ(Redis({"LLEN", queue_->Key("wait")}).integer, kJobs);
  // Only meaningful while the add outlasts the timeout; say so if this machine got too fast.
  EXPECT_GT(took, options.redis.io_timeout) << "raise kJobs: the add no longer outlasts io_timeout";
}

TEST_F(BullQueueTest, ScriptsAreReloadedAfterTheServerForgetsThem) {
  ASSERT_THAT(queue_->Add("n", "{}").status(), IsOk());
  Redis({"SCRIPT", "FLUSH"});
  JQ_ASSERT_OK_AND_ASSIGN(std::string id, queue_->Add("n", "{}"));
  EXPECT_EQ(id, "2");
}

TEST_F(BullQueueTest, BadInputIsRejectedAndNothingIsWritten) {
  EXPECT_THAT(queue_->Add("n", "{not json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("JSON")));
  EXPECT_THAT(queue_->Add("", "{}").status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(queue_->Add("n", std::string(65 << 20, ' ')).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
  for (const char* bad :
       {R"({"bogus":1})", R"({"delay":-1})", R"({"priority":3000000})", R"({"attempts":0})",
        R"({"jobId":"12"})", R"({"jobId":"a:b"})", R"({"backoff":{"type":"linear"}})",
        R"({"removeOnComplete":"yes"})", R"([1])", "{", R"({"jobId":"stalled"})",
        R"({"jobId":"completed"})", R"({"jobId":"meta"})", R"({"removeOnComplete":{"age":-1}})",
        R"({"removeOnFail":{"count":1.5}})", R"({"removeOnFail":{"limit":"all"}})",
        R"({"delay":1e300})", R"({"timestamp":1e19})"}) {
    EXPECT_THAT(ParseBullJobOptions(bad).status(), StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
  // Node's KeepJobs: age in seconds may be fractional, limit caps one trim.
  EXPECT_THAT(ParseBullJobOptions(R"({"removeOnComplete":{"age":0.5,"count":3,"limit":10}})"),
              IsOk());
  BullJobOptions smuggled;
  smuggled.json = R"({"bogus":1})";
  EXPECT_THAT(queue_->Add("n", "{}", smuggled).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bogus")));
  // Fields set by hand that the JSON does not say: the script and Node would disagree.
  BullJobOptions hand_set;
  hand_set.job_id = "42";
  EXPECT_THAT(queue_->Add("n", "{}", hand_set).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("disagree")));
  hand_set = BullJobOptions();
  hand_set.priority = 5000000;
  EXPECT_THAT(queue_->Add("n", "{}", hand_set).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("disagree")));
  std::vector<BullQueue::NewBullJob> batch = {{"ok", "{}", {}}, {"bad", "{", {}}};
  EXPECT_THAT(queue_->AddBulk(batch).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(Redis({"EXISTS", queue_->Key("id")}).integer, 0);
  for (const char* bad_name : {"", "a:b", "has space"}) {
    EXPECT_THAT(BullQueue::Open(url_, bad_name).status(),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << bad_name;
  }
  EXPECT_THAT(queue_->GetJob("nope").status(), StatusIs(absl::StatusCode::kNotFound));
}

// Node's PRIORITY_LIMIT is 2^21 - 1: it refuses 2097152 ("Priority should be between 0 and
// 2097151"), so we do too.
TEST_F(BullQueueTest, PriorityUpToBullMqsLimitOnly) {
  JQ_ASSERT_OK_AND_ASSIGN(std::string top, queue_->Add("p", "{}", Opts(R"({"priority":2097151})")));
  EXPECT_EQ(Redis({"ZSCORE", queue_->Key("prioritized"), top}).str,
            absl::StrCat(2097151 * 0x100000000LL + 1));
  EXPECT_THAT(ParseBullJobOptions(R"({"priority":2097152})").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0..2097151")));
}

// As Node's validateOptions: data whose JSON is longer than opts.sizeLimit bytes is refused
// ("The size of job <name> exceeds the limit <n> bytes"), in Add and in AddBulk before anything
// is written; 0 is no limit.
TEST_F(BullQueueTest, SizeLimitRefusesLargerData) {
  const std::string data = R"({"a":"0123456789"})";  // 18 bytes
  EXPECT_THAT(queue_->Add("big", data, Opts(R"({"sizeLimit":17})")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("the size of job big exceeds the limit 17 bytes")));
  // UTF-8 bytes, not characters, as Node's Buffer.byteLength.
  EXPECT_THAT(queue_->Add("utf8", "\"\xc3\xa9\xc3\xa9\"", Opts(R"({"sizeLimit":5})")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exceeds the limit 5")));
  std::vector<BullQueue::NewBullJob> batch = {{"ok", "{}", Opts(R"({"sizeLimit":17})")},
                                              {"big", data, Opts(R"({"sizeLimit":17})")}};
  EXPECT_THAT(queue_->AddBulk(batch).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("job 1 (big)")));
  EXPECT_EQ(Redis({"EXISTS", queue_->Key("id")}).integer, 0);
  EXPECT_THAT(queue_->Add("fits", data, Opts(R"({"sizeLimit":18})")).status(), IsOk());
  EXPECT_THAT(queue_->Add("none", data, Opts(R"({"sizeLimit":0})")).status(), IsOk());
}

// Node: "Jitter should be between 0 and 1".
TEST_F(BullQueueTest, BackoffJitterMustBeFromZeroToOne) {
  for (const char* bad : {R"({"backoff":{"type":"fixed","delay":10,"jitter":1.5}})",
                          R"({"backoff":{"type":"fixed","delay":10,"jitter":-0.1}})",
                          R"({"backoff":{"type":"exponential","jitter":"half"}})"}) {
    EXPECT_THAT(ParseBullJobOptions(bad).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("backoff.jitter")))
        << bad;
  }
  for (const char* ok : {R"({"backoff":{"type":"fixed","delay":10,"jitter":0}})",
                         R"({"backoff":{"type":"fixed","delay":10,"jitter":0.5}})",
                         R"({"backoff":{"type":"exponential","delay":10,"jitter":1}})"}) {
    EXPECT_THAT(ParseBullJobOptions(ok), IsOk()) << ok;
  }
}

// A custom id the administration calls would refuse (over 1024 bytes) is refused on add too:
// such a job could not be read, removed or retried from here.
TEST_F(BullQueueTest, CustomJobIdsAreLimitedAsAdministrationIds) {
  const std::string longest(1024, 'x');
  EXPECT_THAT(ParseBullJobOptions(absl::StrCat(R"({"jobId":")", longest, "y\"}")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1..1024 bytes")));
  EXPECT_EQ(Redis({"EXISTS", queue_->Key("id")}).integer, 0);
  JQ_ASSERT_OK_AND_ASSIGN(
      std::string id, queue_->Add("n", "{}", Opts(absl::StrCat(R"({"jobId":")", longest, "\"}"))));
  EXPECT_EQ(id, longest);
  EXPECT_THAT(queue_->GetJob(id), IsOk());
  EXPECT_THAT(queue_->Remove(id), IsOk());
}

TEST_F(BullQueueTest, HashTagPrefixKeepsKeysTogether) {
  BullQueueOptions options;
  options.prefix = "{bull}";
  JQ_ASSERT_OK_AND_ASSIGN(auto tagged, BullQueue::Open(url_, name_, options));
  JQ_ASSERT_OK_AND_ASSIGN(std::string id, tagged->Add("n", "{}"));
  EXPECT_EQ(Redis({"LLEN", absl::StrCat("{bull}:", name_, ":wait")}).integer, 1);
  Redis({"DEL", absl::StrCat("{bull}:", name_, ":wait"), absl::StrCat("{bull}:", name_, ":id"),
         absl::StrCat("{bull}:", name_, ":", id), absl::StrCat("{bull}:", name_, ":events"),
         absl::StrCat("{bull}:", name_, ":meta"), absl::StrCat("{bull}:", name_, ":marker")});
}

}  // namespace
}  // namespace jobqueue
