// The BullMQ worker against the real redis-server: it must leave exactly what a Node worker
// leaves (states, hash fields, events, locks). tests/compat/bullmq/ runs it beside Node.
#include "jobqueue/bull_worker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <random>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "jobqueue/json.h"
#include "jobqueue/retry.h"
#include "jobqueue/worker.h"
#include "redis/bull_finish.h"
#include "redis/bull_scripts.h"
#include "testing/bull_fixture.h"
#include "testing/eventually.h"
#include "testing/reply_cutting_proxy.h"
#include "testing/status_matchers.h"

namespace jobqueue {
namespace {

using ::jobqueue::testing::Eventually;
using ::jobqueue::testing::IsOk;
using ::jobqueue::testing::ReplyCuttingProxy;
using ::jobqueue::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// Counts how often the handler ran each numbered job (see AddNumberedJobs).
class Tally {
 public:
  explicit Tally(int jobs, absl::Duration work = absl::ZeroDuration())
      : seen_(static_cast<size_t>(jobs), 0), work_(work) {}
  BullHandler Handler() {
    return [this](BullJobContext& ctx) -> absl::StatusOr<std::string> {
      size_t i;
      if (!absl::SimpleAtoi(ctx.job().data_json, &i) || i >= seen_.size()) {
        return absl::InternalError("bad data");
      }
      absl::SleepFor(work_);
      absl::MutexLock lock(&mu_);
      ++seen_[i];
      return std::string("null");
    };
  }
  void ExpectEachSeen(int at_least, int at_most) {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < seen_.size(); ++i) {
      ASSERT_GE(seen_[i], at_least) << "job data " << i;
      ASSERT_LE(seen_[i], at_most) << "job data " << i;
    }
  }

 private:
  absl::Mutex mu_;
  std::vector<int> seen_ ABSL_GUARDED_BY(mu_);
  const absl::Duration work_;
};

class BullWorkerTest : public ::jobqueue::testing::BullFixture {
 protected:
  // Adds `n` jobs whose data are the numbers 0..n-1, in one AddBulk.
  void AddNumberedJobs(int n) {
    std::vector<BullQueue::NewBullJob> jobs(static_cast<size_t>(n));
    for (size_t i = 0; i < jobs.size(); ++i) {
      jobs[i].name = "task";
      jobs[i].data_json = absl::StrCat(i);
    }
    ASSERT_THAT(queue_->AddBulk(jobs).status(), IsOk());
  }
  ~BullWorkerTest() override { StopWorker(); }

  // Jobs in the active list whose data (their number) is above n: with one handler running
  // job n, these are claimed ahead and unstarted.
  absl::StatusOr<int> ActiveAbove(int n) {
    JQ_ASSIGN_OR_RETURN(std::unique_ptr<RedisConnection> conn, RedisConnection::Connect(url_));
    JQ_ASSIGN_OR_RETURN(RedisReply active, conn->Command({"LRANGE", Key("active"), "0", "-1"}));
    int above = 0;
    for (const RedisReply& id : active.elements) {
      JQ_ASSIGN_OR_RETURN(RedisReply data, conn->Command({"HGET", Key(id.str), "data"}));
      int other = 0;
      if (absl::SimpleAtoi(data.str, &other) && other > n) ++above;
    }
    return above;
  }

  std::string Field(absl::string_view id, absl::string_view field) {
    return Redis({"HGET", Key(id), std::string(field)}).str;
  }
  std::string Add(absl::string_view data, absl::string_view opts = "{}",
                  absl::string_view name = "task") {
    auto options = ParseBullJobOptions(opts);
    if (!options.ok()) throw std::runtime_error(options.status().ToString());
    return *queue_->Add(name, data, *options);
  }
  // One worker_step call as a worker makes it: claims up to `want` jobs after `finishes`.
  internal::BullStepReply Step(int want, const std::vector<internal::BullFinish>& finishes = {}) {
    internal::BullStepRequest request;
    request.want = want;
    request.lock_ms = 30000;
    request.token_prefix = "t";
    auto reply =
        internal::RunBullStep(*redis_, internal::BullKeys("bull", name_), request, finishes);
    if (!reply.ok()) throw std::runtime_error(reply.status().ToString());
    return *std::move(reply);
  }
  // Event names in the stream, oldest first.
  std::vector<std::string> Events(absl::string_view job_id) {
    std::vector<std::string> names;
    RedisReply entries = Redis({"XRANGE", Key("events"), "-", "+"});
    for (const RedisReply& entry : entries.elements) {
      const std::vector<RedisReply>& kv = entry.elements[1].elements;
      std::string event, id;
      for (size_t i = 0; i + 1 < kv.size(); i += 2) {
        if (kv[i].str == "event") event = kv[i + 1].str;
        if (kv[i].str == "jobId") id = kv[i + 1].str;
      }
      if (id == job_id) names.push_back(event);
    }
    return names;
  }

  void StartWorker(BullHandler handler, BullWorkerOptions options = {}) {
    auto worker = BullWorker::Create(url_, name_, std::move(handler), std::move(options));
    ASSERT_THAT(worker.status(), IsOk());
    worker_ = *std::move(worker);
    thread_ = std::thread([this] { run_status_ = worker_->Run(); });
  }
  void StopWorker() {
    if (worker_ == nullptr) return;
    worker_->Stop();
    thread_.join();
    EXPECT_THAT(run_status_, IsOk());
    stats_ = worker_->stats();
    worker_.reset();
  }
  bool Completed(int64_t n) {
    return Eventually([&] { return Redis({"ZCARD", Key("completed")}).integer == n; });
  }

  std::unique_ptr<BullWorker> worker_;
  std::thread thread_;
  absl::Status run_status_;
  BullWorkerStats stats_;
};

BullHandler Echo() {
  return [](BullJobContext& ctx) -> absl::StatusOr<std::string> { return ctx.job().data_json; };
}

TEST_F(BullWorkerTest, CompletesWithReturnValueAndLeavesWhatNodeLeaves) {
  const std::string id = Add(R"({"n":7})");
  BullWorkerOptions options;
  options.name = "cpp-test";
  StartWorker(Echo(), options);
  ASSERT_TRUE(Completed(1));
  EXPECT_EQ(Field(id, "returnvalue"), R"({"n":7})");
  EXPECT_EQ(Field(id, "atm"), "1");
  EXPECT_EQ(Field(id, "ats"), "1");
  EXPECT_EQ(Field(id, "pb"), "cpp-test");
  EXPECT_FALSE(Field(id, "processedOn").empty());
  EXPECT_FALSE(Field(id, "finishedOn").empty());
  EXPECT_EQ(Redis({"EXISTS", Key(id + ":lock")}).integer, 0);
  EXPECT_EQ(Redis({"LLEN", Key("active")}).integer, 0);
  EXPECT_THAT(Events(id), ElementsAre("added", "waiting", "active", "completed"));
  StopWorker();
  EXPECT_EQ(stats_.completed, 1);
}

TEST_F(BullWorkerTest, HandlersReportProgressAndLogLines) {
  const std::string id = Add("1", R"({"keepLogs": 2})");
  StartWorker([](BullJobContext& ctx) -> absl::StatusOr<std::string> {
    JQ_RETURN_IF_ERROR(ctx.UpdateProgress(R"({"pct":50})"));
    for (const char* line : {"one", "two", "three"}) JQ_RETURN_IF_ERROR(ctx.Log(line));
    if (ctx.UpdateProgress("{bad").ok()) return absl::InternalError("bad progress accepted");
    return std::string("null");
  });
  ASSERT_TRUE(Completed(1));
  EXPECT_EQ(Field(id, "progress"), R"({"pct":50})");
  EXPECT_THAT(Redis({"LRANGE", Key(id + ":logs"), "0", "-1"}).elements,
              ::testing::SizeIs(2));  // keepLogs
  EXPECT_EQ(Redis({"LINDEX", Key(id + ":logs"), "-1"}).str, "three");
  EXPECT_THAT(Events(id), ElementsAre("added", "waiting", "active", "progress", "completed"));
}

// Node stores keepLogs in the job's opts as "kl" (its opts encoding).
TEST_F(BullWorkerTest, LogLinesHonourKeepLogsAsNodeStoresIt) {
  const std::string id = Add("1");
  Redis({"HSET", Key(id), "opts", R"({"kl":2,"attempts":0})"});
  StartWorker([](BullJobContext& ctx) -> absl::StatusOr<std::string> {
    for (const char* line : {"one", "two", "three", "four", "five"}) {
      JQ_RETURN_IF_ERROR(ctx.Log(line));
    }
    return std::string("null");
  });
  ASSERT_TRUE(Completed(1));
  EXPECT_THAT(Redis({"LRANGE", Key(id + ":logs"), "0", "-1"}).elements, ::testing::SizeIs(2));
  EXPECT_EQ(Redis({"LINDEX", Key(id + ":logs"), "-1"}).str, "five");
}

TEST_F(BullWorkerTest, NamesItsConnectionForGetWorkers) {
  BullWorkerOptions options;
  options.name = "w1";
  StartWorker(Echo(), options);
  const std::string expected = absl::StrCat("name=bull:", absl::Base64Escape(name_), ":w:w1 ");
  EXPECT_TRUE(Eventually([&] {
    return Redis({"CLIENT", "LIST"}).str.find(expected) != std::string::npos;
  }));
}

TEST_F(BullWorkerTest, RetriesWithBackoffThenFailsWithStacktrace) {
  const std::string id = Add("{}", R"({"attempts":3,"backoff":{"type":"exponential","delay":20}})");
  std::atomic<int> calls{0};
  StartWorker([&](BullJobContext&) -> absl::StatusOr<std::string> {
    ++calls;
    return absl::InternalError("boom");
  });
  ASSERT_TRUE(Eventually([&] { return Redis({"ZCARD", Key("failed")}).integer == 1; }));
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(Field(id, "atm"), "3");
  EXPECT_EQ(Field(id, "failedReason"), "boom");
  const std::string stack = Field(id, "stacktrace");
  EXPECT_EQ(std::count(stack.begin(), stack.end(), '"') / 2, 3) << stack;
  EXPECT_THAT(Events(id),
              ElementsAre("added", "waiting", "active", "delayed", "waiting", "active", "delayed",
                          "waiting", "active", "failed", "retries-exhausted"));
}

TEST_F(BullWorkerTest, RetriesAtOnceWithoutBackoff) {
  const std::string id = Add("{}", R"({"attempts":2})");
  std::atomic<int> calls{0};
  StartWorker([&](BullJobContext&) -> absl::StatusOr<std::string> {
    if (++calls == 1) return absl::InternalError("first try fails");
    return std::string("\"ok\"");
  });
  ASSERT_TRUE(Completed(1));
  EXPECT_EQ(Field(id, "atm"), "2");
  EXPECT_EQ(Field(id, "failedReason"), "first try fails");
  EXPECT_THAT(Events(id),
              ElementsAre("added", "waiting", "active", "waiting", "active", "completed"));
}

TEST_F(BullWorkerTest, UnrecoverableErrorSkipsRetries) {
  const std::string id = Add("{}", R"({"attempts":5})");
  StartWorker([&](BullJobContext&) -> absl::StatusOr<std::string> {
    return BullUnrecoverableError("bad input");
  });
  ASSERT_TRUE(Eventually([&] { return Redis({"ZCARD", Key("failed")}).integer == 1; }));
  EXPECT_EQ(Field(id, "atm"), "1");
  EXPECT_EQ(Field(id, "failedReason"), "bad input");
}

TEST_F(BullWorkerTest, AHandlerMaySupplyItsOwnStacktrace) {
  const std::string id = Add("{}");
  StartWorker([&](BullJobContext&) -> absl::StatusOr<std::string> {
    return BullErrorWithStacktrace(absl::InternalError("boom"), "Traceback: here\n  and there");
  });
  ASSERT_TRUE(Eventually([&] { return Redis({"ZCARD", Key("failed")}).integer == 1; }));
  EXPECT_EQ(Field(id, "failedReason"), "boom");
  EXPECT_EQ(Field(id, "stacktrace"), R"(["Traceback: here\n  and there"])");
}

TEST_F(BullWorkerTest, ResultThatIsNotJsonFailsTheJobWithAClearReason) {
  const std::string id = Add("{}");
  StartWorker(
      [&](BullJobContext&) -> absl::StatusOr<std::string> { return std::string("not json"); });
  ASSERT_TRUE(Eventually([&] { return Redis({"ZCARD", Key("failed")}).integer == 1; }));
  EXPECT_THAT(Field(id, "failedReason"), HasSubstr("handler result is"));
}

TEST_F(BullWorkerTest, RemoveOnCompleteKeepsTheNewestCount) {
  for (int i = 0; i < 5; ++i) Add("{}", R"({"removeOnComplete":2})");
  const std::string removed = Add("{}", R"({"removeOnComplete":true})");
  StartWorker(Echo());
  ASSERT_TRUE(Eventually([&] {
    return Redis({"LLEN", Key("wait")}).integer == 0 && Redis({"LLEN", Key("active")}).integer == 0;
  }));
  EXPECT_TRUE(Completed(2));
  EXPECT_EQ(Redis({"EXISTS", Key(removed)}).integer, 0);
  EXPECT_EQ(Redis({"EXISTS", Key("1")}).integer, 0);
}

// Jobs finished in one step used to share one score, which ranks by id text ("9" above "12"):
// the count trim kept 7, 8 and 9 and deleted the newest. Node keeps the last to finish (not
// always the last added: a job held ahead behind a slow one goes back to wait). Each job takes
// 2 ms: jobs of one ms rank by id text in Node too, and in ours across steps.
TEST_F(BullWorkerTest, RemoveOnCompleteKeepsTheLastToFinishPastSingleDigitIds) {
  for (int i = 0; i < 12; ++i) Add("{}", R"({"removeOnComplete":3})");
  absl::Mutex mu;
  std::vector<std::string> order;
  StartWorker([&](BullJobContext& ctx) -> absl::StatusOr<std::string> {
    absl::SleepFor(absl::Milliseconds(2));
    absl::MutexLock lock(&mu);
    order.push_back(ctx.job().id);
    return std::string("null");
  });
  ASSERT_TRUE(Eventually([&] {
    return Redis({"LLEN", Key("wait")}).integer == 0 && Redis({"LLEN", Key("active")}).integer == 0;
  }));
  StopWorker();
  ASSERT_EQ(order.size(), 12u);
  std::vector<std::string> kept;
  for (const RedisReply& id : Redis({"ZRANGE", Key("completed"), "0", "-1"}).elements) {
    kept.push_back(id.str);
  }
  EXPECT_THAT(kept, ElementsAre(order[9], order[10], order[11]));
  EXPECT_EQ(Redis({"EXISTS", Key(order[11])}).integer, 1);
  EXPECT_EQ(Redis({"EXISTS", Key(order[8])}).integer, 0);
  const int64_t first = std::stoll(Redis({"HGET", Key(order[9]), "finishedOn"}).str);
  const int64_t last = std::stoll(Redis({"HGET", Key(order[11]), "finishedOn"}).str);
  EXPECT_LE(first, last);
}

// The same with the finish times set: jobs finished in one ms of an earlier step's ms are
// ranked by when they finished too, not only those of the step's own ms.
TEST_F(BullWorkerTest, RemoveOnCompleteRanksJobsOfOneMillisecondByFinishOrder) {
  for (int i = 0; i < 14; ++i) Add("{}", R"({"removeOnComplete":3})");
  const internal::BullStepReply claimed = Step(14);
  ASSERT_EQ(claimed.claimed.size(), 14u);
  const absl::Time second_ago = absl::Now() - absl::Seconds(1);
  auto finish = [&](const internal::BullClaim& c, absl::Duration at) {
    internal::BullFinish f;
    f.id = c.job.id;
    f.token = c.token;
    f.kind = "completed";
    f.value = "null";
    f.keep_count = 3;
    f.finished_at = second_ago + at;
    return f;
  };
  // Step one: 1-8, then 9-11 in one ms. Step two: 12, then 13 and 14 in 11's ms.
  std::vector<internal::BullFinish> first, second;
  for (size_t i = 0; i < 8; ++i) first.push_back(finish(claimed.claimed[i], absl::ZeroDuration()));
  for (size_t i = 8; i < 11; ++i) {
    first.push_back(finish(claimed.claimed[i], absl::Milliseconds(5)));
  }
  second.push_back(finish(claimed.claimed[11], absl::Milliseconds(5)));
  second.push_back(finish(claimed.claimed[12], absl::Milliseconds(5)));
  second.push_back(finish(claimed.claimed[13], absl::Milliseconds(5)));
  auto kept = [&] {
    std::vector<std::string> ids;
    for (const RedisReply& id : Redis({"ZRANGE", Key("completed"), "0", "-1"}).elements) {
      ids.push_back(id.str);
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  Step(0, first);
  EXPECT_THAT(kept(), ElementsAre("10", "11", "9"));
  Step(0, second);
  EXPECT_THAT(kept(), ElementsAre("12", "13", "14"));
  EXPECT_EQ(Redis({"EXISTS", Key("11")}).integer, 0);
  EXPECT_EQ(Redis({"EXISTS", Key("14")}).integer, 1);
}

// removeOnComplete {age, limit}: a fractional age is kept as given (it was cut to whole
// seconds, so 0.5 removed every job), and limit caps the age trim of each finished job, as
// Node's keepJobs.limit does per moveToFinished.
TEST_F(BullWorkerTest, RemoveOnCompleteTakesFractionalAgesAndTheLimit) {
  for (int i = 0; i < 13; ++i) Add("{}");
  const internal::BullStepReply claimed = Step(13);
  ASSERT_EQ(claimed.claimed.size(), 13u);
  simdjson::dom::parser parser;
  std::mt19937_64 rng(1);
  auto finish = [&](size_t i, absl::string_view opts, absl::Duration ago) {
    BullJob job = claimed.claimed[i].job;
    job.opts_json = std::string(opts);
    internal::BullFinish f = internal::BuildBullFinish(job, claimed.claimed[i].token,
                                                       std::string("null"), name_, parser, rng);
    f.finished_at = absl::Now() - ago;
    return f;
  };
  // Ten jobs ten seconds old, then two whose trims may remove two of them each.
  std::vector<internal::BullFinish> old;
  for (size_t i = 0; i < 10; ++i) old.push_back(finish(i, "{}", absl::Seconds(10)));
  Step(0, old);
  const std::string limit = R"({"removeOnComplete":{"age":1,"limit":2}})";
  const std::vector<internal::BullFinish> limited = {finish(10, limit, absl::ZeroDuration()),
                                                     finish(11, limit, absl::ZeroDuration())};
  EXPECT_EQ(limited[0].keep_limit, 2);
  Step(0, limited);
  EXPECT_EQ(Redis({"ZCARD", Key("completed")}).integer, 10 - 4 + 2);
  // Finished 300 ms ago with age 0.9 s: the six still ten seconds old go; it and the two
  // before it stay.
  const internal::BullFinish young =
      finish(12, R"({"removeOnComplete":{"age":0.9}})", absl::Milliseconds(300));
  ASSERT_TRUE(young.keep_age.has_value());
  EXPECT_EQ(*young.keep_age, 0.9);
  Step(0, {young});
  std::vector<std::string> kept;
  for (const RedisReply& id : Redis({"ZRANGE", Key("completed"), "0", "-1"}).elements) {
    kept.push_back(id.str);
  }
  EXPECT_THAT(kept, UnorderedElementsAre(claimed.claimed[10].job.id, claimed.claimed[11].job.id,
                                         claimed.claimed[12].job.id));
}

// As Node's moveToFinished: a finish drops the deferred-failure mark ("defa") only when the
// job failed.
TEST_F(BullWorkerTest, OnlyAFailureClearsTheDeferredFailureMark) {
  Add("{}");
  Add("{}");
  const internal::BullStepReply claimed = Step(2);
  ASSERT_EQ(claimed.claimed.size(), 2u);
  std::vector<internal::BullFinish> finishes(2);
  for (size_t i = 0; i < 2; ++i) {
    Redis({"HSET", Key(claimed.claimed[i].job.id), "defa", "stalled"});
    finishes[i].id = claimed.claimed[i].job.id;
    finishes[i].token = claimed.claimed[i].token;
    finishes[i].value = "null";
  }
  finishes[0].kind = "completed";
  finishes[1].kind = "failed";
  finishes[1].extra = "1";
  Step(0, finishes);
  EXPECT_EQ(Field(claimed.claimed[0].job.id, "defa"), "stalled");
  EXPECT_EQ(Field(claimed.claimed[1].job.id, "defa"), "");
  EXPECT_EQ(Redis({"ZCARD", Key("failed")}).integer, 1);
}

// Node's deduplication with keepLastIfActive: a job added while the one holding the id is
// active waits in "dn:<id>"; BullMQ's moveToFinished (requeueDeduplicatedJob) makes it a real
// job when the active one completes or fails. Ours must too, or the job is lost and a Node
// worker later resurrects the stale "dn:" entry.
TEST_F(BullWorkerTest, FinishingADeduplicatedJobQueuesTheJobKeptWhileItWasActive) {
  const std::string dedup = R"("de":{"id":"d1","keepLastIfActive":true,"replace":true})";
  // What Node's addStandardJob leaves: the job hash with "deid", "de:<id>" naming it.
  auto node_add = [&](const std::string& data) {
    const std::string id = absl::StrCat(Redis({"INCR", Key("id")}).integer);
    Redis({"HSET", Key(id), "name", "a", "data", data, "opts", absl::StrCat("{", dedup, "}"),
           "timestamp", "1", "delay", "0", "priority", "0", "deid", "d1"});
    Redis({"LPUSH", Key("wait"), id});
    Redis({"SET", Key("de:d1"), id});
    return id;
  };
  // What its storeDeduplicatedNextJob leaves for an add while that job is active.
  auto node_add_while_active = [&](const std::string& data, const std::string& extra_opts) {
    const std::string id = absl::StrCat(Redis({"INCR", Key("id")}).integer);
    Redis({"HSET", Key("dn:d1"), "name", "a", "data", data, "opts",
           absl::StrCat("{", dedup, extra_opts, "}"), "jid", id});
    Redis({"PERSIST", Key("de:d1")});
    return id;
  };
  auto finish = [&](const internal::BullClaim& claim, const std::string& kind) {
    internal::BullFinish f;
    f.id = claim.job.id;
    f.token = claim.token;
    f.kind = kind;
    f.value = kind == "completed" ? "1" : "boom";
    f.extra = kind == "failed" ? "1" : "0";
    return Step(0, {f}).codes.at(0);
  };
  // All events as "event:jobId", oldest first.
  auto events = [&] {
    std::vector<std::string> all;
    for (const RedisReply& entry : Redis({"XRANGE", Key("events"), "-", "+"}).elements) {
      const std::vector<RedisReply>& kv = entry.elements[1].elements;
      all.push_back(absl::StrCat(kv[1].str, ":", kv[3].str));
    }
    return all;
  };

  const std::string first = node_add(R"({"v":1})");
  internal::BullStepReply claimed = Step(1);
  ASSERT_EQ(claimed.claimed.size(), 1u);
  const std::string second = node_add_while_active(R"({"v":2})", "");
  Redis({"DEL", Key("events"), Key("marker")});
  const int64_t before = absl::ToUnixMillis(absl::Now());
  ASSERT_EQ(finish(claimed.claimed[0], "completed"), 0);

  EXPECT_EQ(Redis({"EXISTS", Key("dn:d1")}).integer, 0);
  EXPECT_EQ(Redis({"GET", Key("de:d1")}).str, second);
  EXPECT_EQ(Redis({"PTTL", Key("de:d1")}).integer, -1);
  EXPECT_EQ(Redis({"GET", Key("id")}).str, "3");  // incremented, as Node always does
  EXPECT_EQ(Field(second, "name"), "a");
  EXPECT_EQ(Field(second, "data"), R"({"v":2})");
  EXPECT_EQ(Field(second, "opts"), absl::StrCat("{", dedup, "}"));
  EXPECT_EQ(Field(second, "deid"), "d1");
  EXPECT_EQ(Field(second, "delay"), "0");
  EXPECT_EQ(Field(second, "priority"), "0");
  int64_t timestamp = 0;
  ASSERT_TRUE(absl::SimpleAtoi(Field(second, "timestamp"), &timestamp));
  EXPECT_GE(timestamp, before);
  EXPECT_THAT(Redis({"LRANGE", Key("wait"), "0", "-1"}).elements.size(), 1u);
  EXPECT_EQ(Redis({"LINDEX", Key("wait"), "0"}).str, second);
  EXPECT_EQ(Redis({"ZSCORE", Key("marker"), "0"}).str, "0");
  // The new job's events come before the finished one's, as in moveToFinished.
  EXPECT_THAT(events(), ElementsAre("added:" + second, "waiting:" + second, "completed:" + first));

  // It runs like any job; a failure with nothing kept frees the id.
  claimed = Step(1);
  ASSERT_EQ(claimed.claimed.size(), 1u);
  EXPECT_EQ(claimed.claimed[0].job.id, second);
  EXPECT_EQ(claimed.claimed[0].job.data_json, R"({"v":2})");
  // A retry is not a finish: what was kept stays kept.
  const std::string third = node_add_while_active(R"({"v":3})", R"(,"priority":4)");
  ASSERT_EQ(finish(claimed.claimed[0], "retry"), 0);
  EXPECT_EQ(Redis({"EXISTS", Key("dn:d1")}).integer, 1);
  claimed = Step(1);
  ASSERT_EQ(claimed.claimed.size(), 1u);
  ASSERT_EQ(finish(claimed.claimed[0], "failed"), 0);
  EXPECT_EQ(Redis({"EXISTS", Key("dn:d1")}).integer, 0);
  EXPECT_EQ(Redis({"GET", Key("de:d1")}).str, third);
  EXPECT_EQ(Field(third, "priority"), "4");
  EXPECT_EQ(Redis({"ZSCORE", Key("prioritized"), third}).str, absl::StrCat(4 * 0x100000000LL + 1));

  // A delayed one goes to delayed with its marker; a "jid" naming a job added since (or none,
  // as older BullMQ wrote) gives the counter's id rather than overwriting that job.
  claimed = Step(1);
  ASSERT_EQ(claimed.claimed.size(), 1u);
  const std::string taken = node_add_while_active(R"({"v":4})", R"(,"delay":60000)");
  Redis({"HSET", Key(taken), "name", "other", "data", "{}"});
  ASSERT_EQ(finish(claimed.claimed[0], "completed"), 0);
  const std::string fourth = Redis({"GET", Key("de:d1")}).str;
  EXPECT_NE(fourth, taken);
  EXPECT_EQ(fourth, Redis({"GET", Key("id")}).str);
  EXPECT_EQ(Field(taken, "name"), "other");
  EXPECT_EQ(Field(fourth, "data"), R"({"v":4})");
  ASSERT_TRUE(absl::SimpleAtoi(Field(fourth, "timestamp"), &timestamp));
  EXPECT_EQ(Redis({"ZSCORE", Key("delayed"), fourth}).str,
            absl::StrCat((timestamp + 60000) * 0x1000));
  EXPECT_EQ(Redis({"ZSCORE", Key("marker"), "1"}).str, absl::StrCat(timestamp + 60000));
  EXPECT_THAT(Events(fourth), ElementsAre("added", "delayed"));
}

// Numbers a foreign producer wrote are read without overflow: a huge count or attempts, and an
// exponential backoff far past what a double holds, give a finish within range.
TEST_F(BullWorkerTest, HugeNumbersInOptsAreClampedNotOverflowed) {
  simdjson::dom::parser parser;
  std::mt19937_64 rng(1);
  BullJob job;
  job.id = "1";
  job.attempts_made = 5000;
  job.opts_json = R"({"attempts":1e300,"backoff":{"type":"exponential","delay":1e300},)"
                  R"("removeOnComplete":1e300,"removeOnFail":{"count":-1e300,"limit":1e300}})";
  const internal::BullFinish retry =
      internal::BuildBullFinish(job, "t", absl::InternalError("boom"), name_, parser, rng);
  EXPECT_EQ(retry.kind, "delay");
  EXPECT_EQ(retry.extra, absl::StrCat(absl::ToInt64Milliseconds(kMaxRetryDelay)));
  const internal::BullFinish done =
      internal::BuildBullFinish(job, "t", std::string("null"), name_, parser, rng);
  EXPECT_GT(done.keep_count, int64_t{1} << 39);
  job.opts_json = R"({"removeOnFail":{"count":-1e300,"limit":1e300}})";
  const internal::BullFinish failed =
      internal::BuildBullFinish(job, "t", absl::InternalError("boom"), name_, parser, rng);
  EXPECT_EQ(failed.kind, "failed");
  EXPECT_EQ(failed.keep_count, -1);
  EXPECT_GT(failed.keep_limit, int64_t{1} << 39);
  // Any negative count keeps all and a negative limit is none, as Node reads them.
  job.opts_json = R"({"removeOnComplete":-0.5,"removeOnFail":{"age":1,"limit":-5}})";
  EXPECT_EQ(internal::BuildBullFinish(job, "t", std::string("null"), name_, parser, rng).keep_count,
            -1);
  EXPECT_EQ(internal::BuildBullFinish(job, "t", absl::InternalError("boom"), name_, parser, rng)
                .keep_limit,
            -1);
}

// As Node's moveToFinished: no "drained" while a delayed job is still to come.
TEST_F(BullWorkerTest, DrainedIsEmittedOnceTheDelayedJobsAreDoneToo) {
  Add("{}");
  Add("{}", R"({"delay":400})");
  StartWorker(Echo());
  ASSERT_TRUE(Completed(2));
  ASSERT_TRUE(Eventually([&] { return !Events("").empty(); }));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_THAT(Events(""), ElementsAre("drained"));
}

TEST_F(BullWorkerTest, ProcessesInPriorityThenLifoOrder) {
  Add(R"("a")");
  Add(R"("b")", R"({"lifo":true})");
  Add(R"("c")", R"({"priority":1})");
  Add(R"("d")", R"({"delay":150})");
  absl::Mutex mu;
  std::vector<std::string> order;
  StartWorker([&](BullJobContext& ctx) -> absl::StatusOr<std::string> {
    absl::MutexLock lock(&mu);
    order.push_back(ctx.job().data_json);
    return std::string("null");
  });
  ASSERT_TRUE(Completed(4));
  // LIFO "b" is at the head of wait, "a" next; prioritized "c" runs when wait is empty;
  // delayed "d" runs when due.
  EXPECT_THAT(order, ElementsAre(R"("b")", R"("a")", R"("c")", R"("d")"));
}

TEST_F(BullWorkerTest, PauseStopsClaimingAndResumeWakesTheWorker) {
  ASSERT_THAT(queue_->Pause(), IsOk());
  Add("{}");
  StartWorker(Echo());
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Redis({"ZCARD", Key("completed")}).integer, 0);
  EXPECT_EQ(*queue_->IsPaused(), true);
  ASSERT_THAT(queue_->Resume(), IsOk());
  EXPECT_TRUE(Completed(1));
}

TEST_F(BullWorkerTest, RenewsLocksOfLongJobs) {
  const std::string id = Add("{}");
  BullWorkerOptions options;
  // The job outlives its lock three times over; renewals come every 500 ms, so a 1 s lock
  // tolerates a loaded machine's scheduling delays (150 ms did not, once, under ctest -j2).
  options.lock_duration = absl::Seconds(1);
  options.stalled_interval = absl::Milliseconds(100);
  StartWorker(
      [&](BullJobContext&) -> absl::StatusOr<std::string> {
        absl::SleepFor(absl::Seconds(3));
        return std::string("1");
      },
      options);
  ASSERT_TRUE(Completed(1));
  EXPECT_EQ(Field(id, "returnvalue"), "1");
  EXPECT_EQ(Field(id, "stc"), "");  // never seen as stalled
  StopWorker();
  EXPECT_EQ(stats_.lost, 0);
}

TEST_F(BullWorkerTest, StalledCheckMovesUnlockedActiveJobsBackAndFailsRepeatOffenders) {
  // Two jobs left active by a worker that died: no lock, already marked by a previous check.
  const std::string once = Add(R"("once")");
  const std::string often = Add(R"("often")");
  Redis({"DEL", Key("wait"), Key("marker")});
  Redis({"LPUSH", Key("active"), once, often});
  Redis({"SADD", Key("stalled"), once, often});
  Redis({"HSET", Key(often), "stc", "1"});
  BullWorkerOptions options;
  options.stalled_interval = absl::Milliseconds(100);
  StartWorker(Echo(), options);
  ASSERT_TRUE(Eventually([&] {
    return Redis({"ZCARD", Key("completed")}).integer == 1 &&
           Redis({"ZCARD", Key("failed")}).integer == 1;
  }));
  EXPECT_EQ(Field(once, "stc"), "1");
  EXPECT_EQ(Field(once, "returnvalue"), R"("once")");
  EXPECT_EQ(Field(often, "failedReason"), "job stalled more than allowable limit");
  EXPECT_THAT(Events(once), ::testing::Contains("stalled"));
  StopWorker();
  EXPECT_EQ(stats_.stalled_recovered, 2);
}

TEST_F(BullWorkerTest, GracefulStopHandsBackUnfinishedJobsUnlocked) {
  const std::string id = Add("{}");
  std::atomic<bool> started{false};
  BullWorkerOptions options;
  options.shutdown_timeout = absl::Milliseconds(50);
  StartWorker(
      [&](BullJobContext& ctx) -> absl::StatusOr<std::string> {
        started = true;
        while (!ctx.stopping()) absl::SleepFor(absl::Milliseconds(5));
        // Ignores the deadline: returns only once the worker has handed the job back (a fixed
        // 300 ms could end before a late 50 ms deadline on a loaded machine).
        const absl::Time cap = absl::Now() + absl::Seconds(60);
        while (worker_->stats().released == 0 && absl::Now() < cap) {
          absl::SleepFor(absl::Milliseconds(5));
        }
        return std::string("1");
      },
      options);
  ASSERT_TRUE(Eventually([&] { return started.load(); }));
  StopWorker();
  EXPECT_EQ(stats_.released, 1);
  EXPECT_EQ(Redis({"LLEN", Key("active")}).integer, 0);
  EXPECT_THAT(Redis({"LRANGE", Key("wait"), "0", "-1"}).elements.size(), 1u);
  EXPECT_EQ(Redis({"EXISTS", Key(id + ":lock")}).integer, 0);
  EXPECT_EQ(Redis({"ZCARD", Key("completed")}).integer, 0);  // the late result was refused
}

// StopNow() while stopping (what a second Ctrl-C does) hands the running job back at once
// instead of waiting out a long shutdown_timeout.
TEST_F(BullWorkerTest, StopNowHandsBackRunningJobsAtOnce) {
  const std::string id = Add("{}");
  std::atomic<bool> started{false};
  absl::Notification finish;
  BullWorkerOptions options;
  options.shutdown_timeout = absl::Seconds(60);
  StartWorker(
      [&](BullJobContext&) -> absl::StatusOr<std::string> {
        started = true;
        finish.WaitForNotificationWithTimeout(absl::Seconds(60));
        return std::string("1");
      },
      options);
  ASSERT_TRUE(Eventually([&] { return started.load(); }));
  worker_->Stop();
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Redis({"LLEN", Key("active")}).integer, 1);  // the first stop waits for the handler
  worker_->StopNow();
  EXPECT_TRUE(Eventually([&] { return Redis({"LLEN", Key("wait")}).integer == 1; }));
  EXPECT_EQ(Redis({"EXISTS", Key(id + ":lock")}).integer, 0);
  finish.Notify();
  StopWorker();
  EXPECT_EQ(stats_.released, 1);
  EXPECT_EQ(Redis({"ZCARD", Key("completed")}).integer, 0);  // the late result was refused
}

// A handler that gives up because the worker is stopping (an error after stopping()) hands its
// job back to wait: no attempt used, not failed.
TEST_F(BullWorkerTest, AHandlerGivingUpAtStopHandsItsJobBack) {
  const std::string id = Add("{}", R"({"attempts": 1})");
  std::atomic<bool> started{false};
  StartWorker([&](BullJobContext& ctx) -> absl::StatusOr<std::string> {
    started = true;
    while (!ctx.stopping()) absl::SleepFor(absl::Milliseconds(5));
    return absl::CancelledError("worker is stopping");
  });
  ASSERT_TRUE(Eventually([&] { return started.load(); }));
  StopWorker();
  EXPECT_EQ(stats_.released, 1);
  EXPECT_EQ(stats_.failed, 0);
  EXPECT_EQ(Redis({"ZCARD", Key("failed")}).integer, 0);
  EXPECT_EQ(Redis({"LLEN", Key("wait")}).integer, 1);
  EXPECT_EQ(Field(id, "atm"), "");  // no attempt made
  EXPECT_EQ(Field(id, "failedReason"), "");
}

// With one handler (run inline) a job finished ahead of a long one is written while the long
// one runs, not when it ends. Both are claimed in one step: quick jobs first set the pace that
// makes the worker claim ahead, and a gate job holds the worker while the two are added.
TEST_F(BullWorkerTest, AFinishedJobIsNotHeldBackByALongOneAfterIt) {
  AddNumberedJobs(20);
  std::atomic<bool> open_gate{false}, release{false}, gate_started{false};
  StartWorker([&](BullJobContext& ctx) -> absl::StatusOr<std::string> {
    if (ctx.job().data_json == "\"gate\"") {
      gate_started = true;
      while (!open_gate.load()) absl::SleepFor(absl::Milliseconds(1));
    } else if (ctx.job().data_json == "\"slow\"") {
      while (!release.load()) absl::SleepFor(absl::Milliseconds(5));
    }
    return std::string("null");
  });
  ASSERT_TRUE(Completed(20));
  Add("\"gate\"");
  ASSERT_TRUE(Eventually([&] { return gate_started.load(); }));
  const std::string fast = Add("\"fast\"");
  Add("\"slow\"");
  open_gate = true;
  EXPECT_TRUE(Eventually([&] { return Field(fast, "finishedOn") != ""; }, absl::Seconds(10)));
  EXPECT_EQ(Redis({"ZCARD", Key("completed")}).integer, 22);  // the 20, the gate, the fast one
  release = true;
  EXPECT_TRUE(Completed(23));
  StopWorker();
  EXPECT_GT(stats_.prefetched, 0);
}

// Short jobs are claimed ahead, several per step, yet each runs once.
TEST_F(BullWorkerTest, ShortJobsAreClaimedAheadAndEachRunsOnce) {
  for (int concurrency : {1, 4}) {
    SCOPED_TRACE(concurrency);
    Redis({"DEL", Key("completed")});
    AddNumberedJobs(3000);
    Tally tally(3000);
    BullWorkerOptions options;
    options.concurrency = concurrency;
    StartWorker(tally.Handler(), options);
    ASSERT_TRUE(Completed(3000));
    StopWorker();
    tally.ExpectEachSeen(1, 1);
    EXPECT_EQ(stats_.completed, 3000);
    EXPECT_GT(stats_.prefetched, 0);
    EXPECT_LT(stats_.steps, 3000 / 2);  // finishes and claims went out in batches
  }
}

// Jobs slower than the prefetch window are never held ahead (another worker may take them),
// and prefetch = 0 turns claiming ahead off.
TEST_F(BullWorkerTest, SlowJobsAndPrefetchZeroClaimNothingAhead) {
  AddNumberedJobs(8);
  Tally slow(8, absl::Milliseconds(20));
  StartWorker(slow.Handler());
  ASSERT_TRUE(Completed(8));
  StopWorker();
  slow.ExpectEachSeen(1, 1);
  EXPECT_EQ(stats_.prefetched, 0);

  Redis({"DEL", Key("completed")});
  AddNumberedJobs(500);
  Tally fast(500);
  BullWorkerOptions options;
  options.prefetch = 0;
  StartWorker(fast.Handler(), options);
  ASSERT_TRUE(Completed(500));
  StopWorker();
  fast.ExpectEachSeen(1, 1);
  EXPECT_EQ(stats_.prefetched, 0);
  EXPECT_GE(stats_.steps, 500);
}

// A slow job after fast ones: the jobs held ahead of it go back to wait instead of waiting for
// it, and each job still runs once. The slow job is the first, from the 20th on, that starts
// with later (so unstarted) jobs held ahead of it, and it runs until one has been handed back:
// a fixed job and a fixed sleep sometimes found nothing held under a loaded machine.
TEST_F(BullWorkerTest, JobsHeldBehindASlowOneGoBackToWait) {
  constexpr int kJobs = 200;
  AddNumberedJobs(kJobs);
  Tally tally(kJobs);
  BullHandler count = tally.Handler();
  std::atomic<int> slow_job{-1};
  std::atomic<int64_t> released_before{0};
  std::atomic<int64_t> released_while_slow{-1};
  StartWorker([&](BullJobContext& ctx) -> absl::StatusOr<std::string> {
    int n = 0;
    if (slow_job.load() < 0 && absl::SimpleAtoi(ctx.job().data_json, &n) && n >= 20) {
      JQ_ASSIGN_OR_RETURN(int held, ActiveAbove(n));
      if (held > 0) {
        slow_job = n;
        // Hand-backs before this job (a stall on a loaded machine) do not count.
        released_before = worker_->stats().released;
        const absl::Time give_up = absl::Now() + absl::Seconds(20);
        while (worker_->stats().released == released_before && absl::Now() < give_up) {
          absl::SleepFor(absl::Milliseconds(10));
        }
        released_while_slow = worker_->stats().released;
      }
    }
    return count(ctx);
  });
  ASSERT_TRUE(Completed(kJobs));
  StopWorker();
  ASSERT_GE(slow_job.load(), 20) << "no job from the 20th on had jobs held ahead";
  tally.ExpectEachSeen(1, 1);
  EXPECT_GT(released_while_slow.load(), released_before.load());
  // Handed back unstarted, then run once: one started attempt each, as Node counts them.
  for (int64_t i = 1; i <= kJobs; ++i) EXPECT_EQ(Field(absl::StrCat(i), "ats"), "1") << i;
  EXPECT_GE(stats_.released, released_while_slow.load());
  EXPECT_EQ(stats_.completed, kJobs);
}

// A stop while jobs are held ahead hands those back to wait, unlocked and unstarted.
TEST_F(BullWorkerTest, GracefulStopHandsBackJobsHeldAhead) {
  AddNumberedJobs(300);
  Tally tally(300);
  BullHandler count = tally.Handler();
  // The stop comes from the first job, from the 40th on, that has later (so unstarted) jobs
  // held ahead of it: a count of the active list alone also took in finished jobs whose
  // results were not sent yet, and then sometimes nothing was held.
  std::atomic<int> stopped_at{-1};
  std::atomic<int> held_at_stop{0};
  StartWorker([&](BullJobContext& ctx) -> absl::StatusOr<std::string> {
    int n = 0;
    if (stopped_at.load() < 0 && absl::SimpleAtoi(ctx.job().data_json, &n) && n >= 40) {
      JQ_ASSIGN_OR_RETURN(int held, ActiveAbove(n));
      if (held > 0) {
        held_at_stop = held;
        stopped_at = n;
        worker_->Stop();
      }
    }
    return count(ctx);
  });
  ASSERT_TRUE(Eventually([&] { return stopped_at.load() >= 0; }))
      << "no job from the 40th on had jobs held ahead";
  StopWorker();
  // Jobs 0..stopped_at ran (FIFO); the ones held ahead went back unstarted.
  const int ran = stopped_at + 1;
  EXPECT_EQ(stats_.completed, ran);
  EXPECT_GE(stats_.released, held_at_stop.load());
  EXPECT_EQ(Redis({"ZCARD", Key("completed")}).integer, ran);
  EXPECT_EQ(Redis({"LLEN", Key("wait")}).integer, 300 - ran);
  EXPECT_EQ(Redis({"LLEN", Key("active")}).integer, 0);
  EXPECT_EQ(Redis({"KEYS", Key("*:lock")}).elements.size(), 0u);
  tally.ExpectEachSeen(0, 1);
}

// After each job an idle worker waits for the next add on its own (named) connection, the one
// that claims: a wait on the marker thread's connection would cost an add a wake-up more.
// Each job adds the next while it runs, so the step after it claims exactly what the free
// handler can take (and less than the claim ahead asked for).
TEST_F(BullWorkerTest, AnIdleWorkerWaitsOnItsClaimingConnectionAfterEachJob) {
  BullWorkerOptions options;
  options.name = "waits-here";
  options.drain_delay = absl::Seconds(120);  // a wait elsewhere outlasts Eventually
  StartWorker(
      [&](BullJobContext& ctx) -> absl::StatusOr<std::string> {
        int left = 0;
        if (absl::SimpleAtoi(ctx.job().data_json, &left) && left > 0) {
          JQ_RETURN_IF_ERROR(queue_->Add("task", absl::StrCat(left - 1)).status());
        }
        return std::string("null");
      },
      options);
  const std::string name = absl::StrCat("name=bull:", absl::Base64Escape(name_), ":w:waits-here ");
  auto blocked_on_named = [&] {
    for (absl::string_view line : absl::StrSplit(Redis({"CLIENT", "LIST"}).str, '\n')) {
      if (absl::StrContains(line, name)) {
        return absl::StrContains(line, " flags=b ") && absl::StrContains(line, " cmd=bzpopmin ");
      }
    }
    return false;
  };
  int done = 0;
  for (int chain : {0, 3, 3}) {  // from the second job on, the worker claims ahead
    Add(absl::StrCat(chain));
    done += chain + 1;
    ASSERT_TRUE(Completed(done));
    ASSERT_TRUE(Eventually(blocked_on_named)) << "after " << done << " jobs";
  }
}

// An idle worker's claim waits in Redis behind its blocking wait and runs when an add ends
// it, so it is stamped with Redis's clock then, not with the time the wait began.
TEST_F(BullWorkerTest, AClaimSentAheadOfTheWaitIsStampedWhenItRuns) {
  BullWorkerOptions options;
  options.drain_delay = absl::Seconds(120);
  options.name = "stamped";
  StartWorker(Echo(), options);
  // The worker is blocked in its wait before the add (a sleep here did not make sure of it).
  const std::string blocked = absl::StrCat("name=bull:", absl::Base64Escape(name_), ":w:stamped ");
  ASSERT_TRUE(Eventually([&] {
    for (absl::string_view line : absl::StrSplit(Redis({"CLIENT", "LIST"}).str, '\n')) {
      if (absl::StrContains(line, blocked)) return absl::StrContains(line, " flags=b ");
    }
    return false;
  }));
  const std::string id = Add("{}");
  ASSERT_TRUE(Completed(1));
  int64_t added = 0, processed = 0;
  ASSERT_TRUE(absl::SimpleAtoi(Field(id, "timestamp"), &added));
  ASSERT_TRUE(absl::SimpleAtoi(Field(id, "processedOn"), &processed));
  int64_t finished = 0;
  ASSERT_TRUE(absl::SimpleAtoi(Field(id, "finishedOn"), &finished));
  EXPECT_GE(processed, added);  // not the time the wait began
  EXPECT_LE(processed, finished);
  EXPECT_LE(processed, absl::ToUnixMillis(absl::Now()));  // milliseconds, not micro
  EXPECT_EQ(Field(id, "atm"), "1");
  EXPECT_THAT(Events(id), ElementsAre("added", "waiting", "active", "completed"));
}

// A stop ends an idle wait at once (CLIENT UNBLOCK), and also for a user that may not run
// CLIENT UNBLOCK (the connection is given up instead); nothing is left claimed.
TEST_F(BullWorkerTest, AStopEndsAnIdleWaitWithOrWithoutClientUnblock) {
  const std::string user = absl::StrCat("jqnounblock", getpid());
  Redis({"ACL", "SETUSER", user, "on", ">nu-pw", "~*", "&*", "+@all", "-client|unblock"});
  const std::string plain_url(url_.Reveal());
  const size_t at = plain_url.find('@');
  ASSERT_NE(at, std::string::npos);
  const Secret restricted =
      Secret::Url(absl::StrCat("redis://", user, ":nu-pw", plain_url.substr(at)));
  for (const Secret* url : std::vector<const Secret*>{&url_, &restricted}) {
    BullWorkerOptions options;
    options.drain_delay = absl::Seconds(120);  // a stop that waited it out would hang the test
    auto worker = BullWorker::Create(*url, name_, Echo(), options);
    ASSERT_THAT(worker.status(), IsOk());
    std::thread stopper([&] {
      absl::SleepFor(absl::Milliseconds(300));
      (*worker)->Stop();
    });
    const absl::Time start = absl::Now();
    EXPECT_THAT((*worker)->Run(), IsOk());
    stopper.join();
    EXPECT_LT(absl::Now() - start, absl::Seconds(60));
    EXPECT_EQ(Redis({"LLEN", Key("active")}).integer, 0);
  }
  Redis({"ACL", "DELUSER", user});
  // Both workers left the queue alone: a new one still gets a job added now.
  const std::string id = Add("{}");
  StartWorker(Echo());
  ASSERT_TRUE(Completed(1));
  EXPECT_EQ(Redis({"EXISTS", Key(id + ":lock")}).integer, 0);
}

TEST_F(BullWorkerTest, ExitsWhenIdle) {
  BullWorkerOptions options;
  options.exit_when_idle = absl::Milliseconds(200);
  auto worker = BullWorker::Create(url_, name_, Echo(), options);
  ASSERT_THAT(worker.status(), IsOk());
  Add("{}");
  EXPECT_THAT((*worker)->Run(), IsOk());
  EXPECT_EQ((*worker)->stats().completed, 1);
}

// A scaled-to-zero worker must not retry forever when every step fails (Redis gone, or here a
// queue key of the wrong type): that is idle time too.
TEST_F(BullWorkerTest, AWorkerWhoseStepsFailStillExitsWhenIdle) {
  Redis({"SET", Key("wait"), "not a list"});
  BullWorkerOptions options;
  options.exit_when_idle = absl::Milliseconds(500);
  options.reconnect_min = absl::Milliseconds(20);
  std::atomic<bool> returned{false};
  auto worker = BullWorker::Create(url_, name_, Echo(), options);
  ASSERT_THAT(worker.status(), IsOk());
  absl::Status run_status;
  std::thread runner([&] {
    run_status = (*worker)->Run();
    returned = true;
  });
  const bool exited = Eventually([&] { return returned.load(); }, absl::Seconds(30));
  if (!exited) (*worker)->Stop();
  runner.join();
  EXPECT_TRUE(exited);
  EXPECT_THAT(run_status, IsOk());
  Redis({"DEL", Key("wait")});
}

TEST_F(BullWorkerTest, ConcurrentWorkersProcessEachJobOnce) {
  AddNumberedJobs(2000);
  Tally tally(2000);
  BullHandler handler = tally.Handler();
  BullWorkerOptions options;
  options.concurrency = 8;
  auto second = BullWorker::Create(url_, name_, handler, options);
  ASSERT_THAT(second.status(), IsOk());
  std::thread second_thread([&] { EXPECT_THAT((*second)->Run(), IsOk()); });
  StartWorker(handler, options);
  EXPECT_TRUE(Completed(2000));
  (*second)->Stop();
  second_thread.join();
  tally.ExpectEachSeen(1, 1);
}

// Redis dropping every connection (a failover, a restart, a proxy) and forgetting our scripts:
// the worker reconnects, reloads them, and no job is lost or left locked.
TEST_F(BullWorkerTest, SurvivesDroppedConnectionsAndFlushedScripts) {
  AddNumberedJobs(600);
  Tally tally(600, absl::Microseconds(500));
  BullHandler handler = tally.Handler();
  // The worker logs in as a user of its own, so killing that user's connections leaves the
  // other tests sharing this Redis alone.
  const std::string user = absl::StrCat("jqchaos", getpid());
  Redis({"ACL", "SETUSER", user, "on", ">chaos-pw", "~*", "&*", "+@all"});
  const std::string plain_url(url_.Reveal());
  const size_t at = plain_url.find('@');
  ASSERT_NE(at, std::string::npos);
  const Secret worker_url =
      Secret::Url(absl::StrCat("redis://", user, ":chaos-pw", plain_url.substr(at)));
  BullWorkerOptions options;
  options.concurrency = 4;
  options.lock_duration = absl::Milliseconds(400);
  options.stalled_interval = absl::Milliseconds(200);
  options.max_stalled_count = 1000;  // a lost claim reply is a stall, not the job's fault
  options.reconnect_min = absl::Milliseconds(5);
  options.reconnect_max = absl::Milliseconds(50);
  auto worker = BullWorker::Create(worker_url, name_, handler, options);
  ASSERT_THAT(worker.status(), IsOk());
  worker_ = *std::move(worker);
  thread_ = std::thread([this] { run_status_ = worker_->Run(); });
  std::thread chaos([&] {
    auto killer = RedisConnection::Connect(url_);
    ASSERT_THAT(killer.status(), IsOk());
    for (int round = 0; round <= 10; ++round) {
      absl::SleepFor(absl::Milliseconds(40));
      if (round % 5 == 0) (void)(*killer)->Command({"SCRIPT", "FLUSH"});
      (void)(*killer)->Command({"CLIENT", "KILL", "USER", user});
    }
  });
  chaos.join();
  EXPECT_TRUE(Completed(600));
  StopWorker();
  EXPECT_GT(stats_.reconnects, 0);
  EXPECT_EQ(Redis({"LLEN", Key("active")}).integer, 0);
  EXPECT_TRUE(Redis({"KEYS", Key("*:lock")}).elements.empty());
  Redis({"ACL", "DELUSER", user});
  tally.ExpectEachSeen(1, INT_MAX);
}

// Claims whose reply never arrives (the connection breaks after Redis ran the call) are
// found again by their token prefix once the worker reconnects, and run at once: not after
// their locks expire and a stalled check hands them back (two minutes away here).
class LostClaimReplyTest : public BullWorkerTest {
 protected:
  void OpenProxy() {
    // Loaded beforehand, so the call cut is the one that claims, not a NOSCRIPT.
    for (size_t i = 0; i < internal::kAllScriptCount; ++i) {
      Redis({"SCRIPT", "LOAD", internal::kAllScripts[i]->text});
    }
    auto proxy = ReplyCuttingProxy::Start(url_);
    ASSERT_THAT(proxy.status(), IsOk());
    proxy_ = *std::move(proxy);
  }
  void StartThroughProxy(BullHandler handler, BullWorkerOptions options) {
    options.lock_duration = absl::Minutes(2);
    options.stalled_interval = absl::Minutes(2);
    options.reconnect_min = absl::Milliseconds(5);
    options.reconnect_max = absl::Milliseconds(50);
    auto worker = BullWorker::Create(proxy_->url(), name_, std::move(handler), std::move(options));
    ASSERT_THAT(worker.status(), IsOk());
    worker_ = *std::move(worker);
    thread_ = std::thread([this] { run_status_ = worker_->Run(); });
  }
  void ExpectEachStartedOnce() {
    for (const RedisReply& id : Redis({"ZRANGE", Key("completed"), "0", "-1"}).elements) {
      EXPECT_EQ(Field(id.str, "ats"), "1") << "job " << id.str;
      EXPECT_EQ(Field(id.str, "stc"), "") << "job " << id.str;
    }
  }
  ~LostClaimReplyTest() override {
    StopWorker();
    proxy_.reset();
  }

  std::unique_ptr<ReplyCuttingProxy> proxy_;
};

TEST_F(LostClaimReplyTest, AStepsClaimsAreTakenBackAtOnce) {
  AddNumberedJobs(20);
  Tally tally(20);
  BullWorkerOptions options;
  options.concurrency = 2;
  ASSERT_NO_FATAL_FAILURE(OpenProxy());
  proxy_->CutNext("EVALSHA", "BZPOPMIN");  // the first step claims: jobs are waiting
  ASSERT_NO_FATAL_FAILURE(StartThroughProxy(tally.Handler(), options));
  ASSERT_TRUE(Completed(20));
  StopWorker();
  EXPECT_EQ(proxy_->cuts(), 1);
  EXPECT_GT(stats_.adopted, 0);
  EXPECT_EQ(stats_.completed, 20);
  tally.ExpectEachSeen(1, 1);
  ExpectEachStartedOnce();
  EXPECT_EQ(Redis({"LLEN", Key("active")}).integer, 0);
}

TEST_F(LostClaimReplyTest, AClaimBehindAnIdleWaitIsTakenBackAtOnce) {
  Tally tally(5);
  BullWorkerOptions options;
  options.name = "cut-while-idle";
  options.drain_delay = absl::Seconds(120);
  ASSERT_NO_FATAL_FAILURE(OpenProxy());
  ASSERT_NO_FATAL_FAILURE(StartThroughProxy(tally.Handler(), options));
  const std::string named =
      absl::StrCat("name=bull:", absl::Base64Escape(name_), ":w:cut-while-idle ");
  ASSERT_TRUE(Eventually([&] {
    for (absl::string_view line : absl::StrSplit(Redis({"CLIENT", "LIST"}).str, '\n')) {
      if (absl::StrContains(line, named)) {
        return absl::StrContains(line, " flags=b ") && absl::StrContains(line, " cmd=bzpopmin ");
      }
    }
    return false;
  }));
  proxy_->CutNextReply();  // the wait's end and the claim behind it
  AddNumberedJobs(5);
  ASSERT_TRUE(Completed(5));
  StopWorker();
  EXPECT_EQ(proxy_->cuts(), 1);
  EXPECT_GT(stats_.adopted, 0);
  tally.ExpectEachSeen(1, 1);
  ExpectEachStartedOnce();
}

TEST_F(BullWorkerTest, AStopSignalStopsRunningWorkersButNotLaterOnes) {
  StopWorkersOnSignals();
  BullWorkerOptions options;
  options.drain_delay = absl::Milliseconds(50);
  StartWorker(Echo(), options);
  ASSERT_EQ(raise(SIGTERM), 0);
  thread_.join();  // Run() returns on the signal alone
  EXPECT_THAT(run_status_, IsOk());
  worker_.reset();

  // A worker made after the signal runs normally.
  Add("1");
  StartWorker(Echo(), options);
  EXPECT_TRUE(Completed(1));
  StopWorker();
}

TEST_F(BullWorkerTest, BadOptionsAndQueueNamesAreRefused) {
  BullWorkerOptions options;
  options.concurrency = 0;
  EXPECT_THAT(BullWorker::Create(url_, name_, Echo(), options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("concurrency")));
  options = {};
  options.prefetch = -1;
  EXPECT_THAT(BullWorker::Create(url_, name_, Echo(), options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prefetch")));
  options.prefetch = 4;
  options.prefetch_window = absl::ZeroDuration();
  EXPECT_THAT(BullWorker::Create(url_, name_, Echo(), options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prefetch window")));
  EXPECT_THAT(BullWorker::Create(url_, "a:b", Echo()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(":")));
  EXPECT_THAT(BullWorker::Create(url_, "", Echo()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(BullWorker::Create(url_, name_, nullptr).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("handler")));
  // Past what Redis takes as a PX: refused here, not inside the claim script after it moved
  // jobs to active.
  options = {};
  options.lock_duration = absl::Hours(24 * 366);
  EXPECT_THAT(BullWorker::Create(url_, name_, Echo(), options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("365 days")));
  options = {};
  options.stalled_interval = absl::InfiniteDuration();
  EXPECT_THAT(BullWorker::Create(url_, name_, Echo(), options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("365 days")));
  options = {};
  options.limiter_max = 1;
  options.limiter_duration = absl::Milliseconds(int64_t{1} << 62);
  EXPECT_THAT(BullWorker::Create(url_, name_, Echo(), options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("365 days")));
}

TEST_F(BullWorkerTest, AWorkerRunsOnce) {
  auto worker = BullWorker::Create(url_, name_, Echo());
  ASSERT_THAT(worker.status(), IsOk());
  std::thread first([&] { EXPECT_THAT((*worker)->Run(), IsOk()); });
  // The first Run() is under way (it has made a step) before the second call: a sleep here
  // let a late-starting thread lose the race, and the second call then ran the worker.
  const bool running = Eventually([&] { return (*worker)->stats().steps > 0; });
  EXPECT_TRUE(running);
  if (running) {
    EXPECT_THAT((*worker)->Run(),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("once")));
  }
  (*worker)->Stop();
  first.join();
  EXPECT_THAT((*worker)->Run(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(BullWorkerTest, ForeignJobWithGarbledHashIsProcessedNotCrashed) {
  // A foreign client wrote a job whose data is not JSON and whose numbers are garbage.
  Redis({"HSET", Key("foreign"), "name", "x", "data", "not json", "opts", "{oops", "atm", "many",
         "timestamp", "soon"});
  Redis({"LPUSH", Key("wait"), "foreign"});
  Redis({"ZADD", Key("marker"), "0", "0"});
  StartWorker([](BullJobContext& ctx) -> absl::StatusOr<std::string> {
    if (absl::Status s = ValidateJson(ctx.job().data_json); !s.ok()) {
      return absl::InvalidArgumentError("job data is not JSON");
    }
    return std::string("null");
  });
  ASSERT_TRUE(Eventually([&] { return Redis({"ZCARD", Key("failed")}).integer == 1; }));
  EXPECT_EQ(Field("foreign", "failedReason"), "job data is not JSON");
}

}  // namespace
}  // namespace jobqueue
