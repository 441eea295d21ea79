// The low-level BullMQ consumer against the real redis-server: it must claim and finish
// exactly as BullWorker does (same script, same opts policy), and refuse lost locks.
#include "jobqueue/bull_consumer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "jobqueue/job.h"
#include "redis/bull_internal.h"
#include "redis/bull_scripts.h"
#include "testing/bull_fixture.h"
#include "testing/eventually.h"
#include "testing/reply_cutting_proxy.h"
#include "testing/status_matchers.h"

namespace jobqueue {
namespace {

using ::jobqueue::testing::Eventually;
using ::jobqueue::testing::IsOk;
using ::jobqueue::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

class BullConsumerTest : public ::jobqueue::testing::BullFixture {
 protected:
  std::unique_ptr<BullConsumer> Consumer(BullConsumerOptions options = {}) {
    auto consumer = BullConsumer::Open(url_, name_, options);
    if (!consumer.ok()) throw std::runtime_error(consumer.status().ToString());
    return *std::move(consumer);
  }
  std::string Add(absl::string_view data, absl::string_view opts = "{}") {
    return *queue_->Add("task", data, Opts(opts));
  }
  std::string Field(absl::string_view id, absl::string_view field) {
    return Redis({"HGET", Key(id), std::string(field)}).str;
  }
  std::vector<BullLease> Fetch(BullConsumer& consumer, int max,
                               absl::Duration wait = absl::ZeroDuration()) {
    auto leases = consumer.Fetch(max, wait);
    if (!leases.ok()) throw std::runtime_error(leases.status().ToString());
    return *std::move(leases);
  }
  bool InActive(absl::string_view id) {
    RedisReply active = Redis({"LRANGE", Key("active"), "0", "-1"});
    return std::any_of(active.elements.begin(), active.elements.end(),
                       [&](const RedisReply& r) { return r.str == id; });
  }
  std::vector<std::string> Data(const std::vector<BullLease>& leases) {
    std::vector<std::string> data;
    for (const BullLease& lease : leases) data.push_back(lease.job.data_json);
    return data;
  }
  // Five jobs, and a consumer (through proxy_) whose Fetch(3) lost its reply after Redis
  // claimed: three jobs are active under locks of two minutes.
  void LoseAFetchOfThreeOutOfFive(std::unique_ptr<BullConsumer>& consumer) {
    // Loaded beforehand, so the call cut is the one that claims, not a NOSCRIPT.
    for (size_t i = 0; i < internal::kAllScriptCount; ++i) {
      Redis({"SCRIPT", "LOAD", internal::kAllScripts[i]->text});
    }
    for (int i = 0; i < 5; ++i) Add(absl::StrCat(i));
    auto proxy = ::jobqueue::testing::ReplyCuttingProxy::Start(url_);
    ASSERT_THAT(proxy.status(), IsOk());
    proxy_ = *std::move(proxy);
    BullConsumerOptions options;
    options.lock_duration = absl::Minutes(2);
    options.redis.client_name = "cut-here";  // the proxy cuts only named connections
    auto opened = BullConsumer::Open(proxy_->url(), name_, options);
    ASSERT_THAT(opened.status(), IsOk());
    consumer = *std::move(opened);
    proxy_->CutNext("EVALSHA", "BZPOPMIN");
    EXPECT_FALSE(consumer->Fetch(3, absl::ZeroDuration()).ok());
    ASSERT_EQ(proxy_->cuts(), 1);
    ASSERT_EQ(Redis({"LLEN", Key("active")}).integer, 3);  // the cut call did claim
  }

  std::unique_ptr<::jobqueue::testing::ReplyCuttingProxy> proxy_;
};

// Redis before 7.0.8 reads a BZPOPMIN timeout of 0.001 as 0, which blocks forever: a wait of
// a millisecond or less hung until the connection's own timeout (5 s).
TEST(BullBlockTimeoutTest, NeverBelowTwoMilliseconds) {
  EXPECT_EQ(internal::BlockTimeoutArg(absl::ZeroDuration()), "0.002");
  EXPECT_EQ(internal::BlockTimeoutArg(absl::Microseconds(1500)), "0.002");
  EXPECT_EQ(internal::BlockTimeoutArg(absl::Milliseconds(3)), "0.003");
  EXPECT_EQ(internal::BlockTimeoutArg(absl::Seconds(5)), "5.000");
}

// Workers use RPOP with a count (Redis 6.2): on an older server every claim of more than one
// job failed after its finishes were written. They now refuse to start there.
TEST(BullRedisVersionTest, WorkersNeedRedisSixTwo) {
  EXPECT_THAT(internal::CheckRedisVersionForWorkers("# Server\r\nredis_version:6.0.16\r\n"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("Redis 6.0.16")));
  EXPECT_THAT(internal::CheckRedisVersionForWorkers("redis_version:5.0.7\r\n"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(internal::CheckRedisVersionForWorkers("redis_version:6.2.0\r\n"), IsOk());
  EXPECT_THAT(internal::CheckRedisVersionForWorkers("redis_version:7.0.15\r\n"), IsOk());
  EXPECT_THAT(internal::CheckRedisVersionForWorkers("# Server\r\nno version here\r\n"), IsOk());
}

TEST_F(BullConsumerTest, FetchesInBullMqOrderAndClaimsAsTheWorkerDoes) {
  Add(R"("a")");
  Add(R"("b")", R"({"lifo":true})");
  Add(R"("c")", R"({"priority":1})");
  const std::string a_id = "1";
  BullConsumerOptions options;
  options.name = "c-consumer";
  auto consumer = Consumer(options);
  std::vector<BullLease> first = Fetch(*consumer, 2);
  // LIFO "b" is at the head of wait, then "a"; prioritized "c" when wait is empty.
  EXPECT_THAT(Data(first), ElementsAre(R"("b")", R"("a")"));
  std::vector<BullLease> second = Fetch(*consumer, 5);
  EXPECT_THAT(Data(second), ElementsAre(R"("c")"));
  EXPECT_THAT(Fetch(*consumer, 5), IsEmpty());

  const BullLease& a = first[1];
  EXPECT_EQ(a.job.id, a_id);
  EXPECT_EQ(a.job.name, "task");
  EXPECT_EQ(a.job.fields.at("pb"), "c-consumer");
  EXPECT_EQ(a.job.fields.at("ats"), "1");
  EXPECT_TRUE(a.job.processed_on.has_value());
  EXPECT_EQ(Redis({"GET", Key(a_id + ":lock")}).str, a.token);
  EXPECT_NE(first[0].token, a.token);
  EXPECT_EQ(Redis({"LLEN", Key("active")}).integer, 3);
  const int64_t pttl = Redis({"PTTL", Key(a_id + ":lock")}).integer;
  EXPECT_GT(pttl, 20000);  // the default 30 s lock
}

TEST_F(BullConsumerTest, BlockingFetchReturnsAJobAddedFromAnotherThread) {
  auto consumer = Consumer();
  EXPECT_THAT(Fetch(*consumer, 1), IsEmpty());  // nothing there, no wait
  std::vector<BullLease> got;
  std::thread fetcher([&] { got = Fetch(*consumer, 1, absl::Seconds(30)); });
  // The add lands while the fetcher blocks (or before it blocks: it must find it either way).
  absl::SleepFor(absl::Milliseconds(100));
  const std::string id = Add(R"({"late":true})");
  fetcher.join();
  ASSERT_THAT(got, SizeIs(1));
  EXPECT_EQ(got[0].job.id, id);
  EXPECT_EQ(got[0].job.data_json, R"({"late":true})");
}

TEST_F(BullConsumerTest, FetchCanWaitForever) {
  auto consumer = Consumer();
  absl::StatusOr<std::vector<BullLease>> got;
  std::thread fetcher([&] { got = consumer->Fetch(1, absl::InfiniteDuration()); });
  absl::SleepFor(absl::Milliseconds(100));
  const std::string id = Add(R"({"late":true})");
  fetcher.join();
  ASSERT_THAT(got.status(), IsOk());
  ASSERT_THAT(*got, SizeIs(1));
  EXPECT_EQ((*got)[0].job.id, id);
}

TEST_F(BullConsumerTest, BlockingFetchWaitsForADelayedJobToComeDue) {
  const std::string id = Add("{}", R"({"delay":200})");
  auto consumer = Consumer();
  EXPECT_THAT(Fetch(*consumer, 1), IsEmpty());
  std::vector<BullLease> got = Fetch(*consumer, 1, absl::Seconds(30));
  ASSERT_THAT(got, SizeIs(1));
  EXPECT_EQ(got[0].job.id, id);
}

TEST_F(BullConsumerTest, ExtendLockRenewsTheLock) {
  Add("{}");
  BullConsumerOptions options;
  options.lock_duration = absl::Seconds(20);
  auto consumer = Consumer(options);
  std::vector<BullLease> leases = Fetch(*consumer, 1);
  ASSERT_THAT(leases, SizeIs(1));
  const std::string lock = Key(leases[0].job.id + ":lock");
  Redis({"PEXPIRE", lock, "500"});
  Redis({"SADD", Key("stalled"), leases[0].job.id});
  ASSERT_THAT(consumer->ExtendLock(leases[0]), IsOk());
  EXPECT_GT(Redis({"PTTL", lock}).integer, 10000);
  EXPECT_EQ(Redis({"GET", lock}).str, leases[0].token);
  EXPECT_EQ(Redis({"SISMEMBER", Key("stalled"), leases[0].job.id}).integer, 0);
}

TEST_F(BullConsumerTest, CompleteWritesTheReturnValueBullQueueReads) {
  const std::string id = Add(R"({"n":1})");
  auto consumer = Consumer();
  std::vector<BullLease> leases = Fetch(*consumer, 1);
  ASSERT_THAT(leases, SizeIs(1));
  ASSERT_THAT(consumer->Complete(leases[0], R"({"sum":42})"), IsOk());
  absl::StatusOr<BullJob> job = queue_->GetJob(id);
  ASSERT_THAT(job.status(), IsOk());
  EXPECT_EQ(job->return_value_json, R"({"sum":42})");
  EXPECT_EQ(job->attempts_made, 1);
  EXPECT_TRUE(job->finished_on.has_value());
  EXPECT_EQ(Redis({"ZSCORE", Key("completed"), id}).type, RedisReply::Type::kString);
  EXPECT_EQ(Redis({"EXISTS", Key(id + ":lock")}).integer, 0);
  EXPECT_FALSE(InActive(id));
  // A second finish of the same lease is refused: the lock went with the first.
  EXPECT_THAT(consumer->Complete(leases[0], "1"), StatusIs(kLeaseLostCode));
}

TEST_F(BullConsumerTest, EmptyReturnValueIsNull) {
  const std::string id = Add("{}");
  auto consumer = Consumer();
  std::vector<BullLease> leases = Fetch(*consumer, 1);
  ASSERT_THAT(leases, SizeIs(1));
  ASSERT_THAT(consumer->Complete(leases[0], ""), IsOk());
  EXPECT_EQ(Field(id, "returnvalue"), "null");
}

TEST_F(BullConsumerTest, CompleteAppliesRemoveOnComplete) {
  const std::string id = Add("{}", R"({"removeOnComplete":true})");
  auto consumer = Consumer();
  std::vector<BullLease> leases = Fetch(*consumer, 1);
  ASSERT_THAT(leases, SizeIs(1));
  ASSERT_THAT(consumer->Complete(leases[0], "1"), IsOk());
  EXPECT_EQ(Redis({"EXISTS", Key(id)}).integer, 0);
  EXPECT_EQ(Redis({"ZCARD", Key("completed")}).integer, 0);
}

TEST_F(BullConsumerTest, FailRetriesWithBackoffThroughDelayedThenFails) {
  const std::string id = Add("{}", R"({"attempts":3,"backoff":{"type":"fixed","delay":100}})");
  auto consumer = Consumer();
  for (int attempt = 1; attempt <= 3; ++attempt) {
    std::vector<BullLease> leases = Fetch(*consumer, 1, absl::Seconds(30));
    ASSERT_THAT(leases, SizeIs(1)) << "attempt " << attempt;
    EXPECT_EQ(leases[0].job.attempts_made, attempt - 1);
    ASSERT_THAT(consumer->Fail(leases[0], "boom"), IsOk());
    if (attempt < 3) {
      // Backed off: in delayed, not waiting.
      EXPECT_EQ(Redis({"ZSCORE", Key("delayed"), id}).type, RedisReply::Type::kString);
      EXPECT_EQ(Redis({"LLEN", Key("wait")}).integer, 0);
      EXPECT_EQ(Field(id, "delay"), "100");
    }
  }
  EXPECT_EQ(Redis({"ZSCORE", Key("failed"), id}).type, RedisReply::Type::kString);
  EXPECT_EQ(Field(id, "atm"), "3");
  EXPECT_EQ(Field(id, "failedReason"), "boom");
  const std::string stack = Field(id, "stacktrace");
  EXPECT_EQ(std::count(stack.begin(), stack.end(), '"') / 2, 3) << stack;
  EXPECT_THAT(stack, HasSubstr("Error: boom"));
}

TEST_F(BullConsumerTest, FailWithoutBackoffRetriesAtOnceAndHonoursStackTraceLimit) {
  const std::string id = Add("{}", R"({"attempts":2,"stackTraceLimit":1})");
  auto consumer = Consumer();
  std::vector<BullLease> leases = Fetch(*consumer, 1);
  ASSERT_THAT(leases, SizeIs(1));
  ASSERT_THAT(consumer->Fail(leases[0], "first"), IsOk());
  EXPECT_EQ(Redis({"LLEN", Key("wait")}).integer, 1);
  leases = Fetch(*consumer, 1);
  ASSERT_THAT(leases, SizeIs(1));
  ASSERT_THAT(consumer->Fail(leases[0], "second"), IsOk());
  EXPECT_EQ(Redis({"ZSCORE", Key("failed"), id}).type, RedisReply::Type::kString);
  const std::string stack = Field(id, "stacktrace");
  EXPECT_THAT(stack, HasSubstr("second"));
  EXPECT_THAT(stack, ::testing::Not(HasSubstr("first")));
}

// A global concurrency in the queue's meta that is not a number is no limit, not a script
// error that would stop every claim and leave a retried job out of every state.
TEST_F(BullConsumerTest, GarbledGlobalConcurrencyIsNoLimit) {
  Redis({"HSET", Key("meta"), "concurrency", "many"});
  const std::string id = Add("{}", R"({"attempts":2})");
  auto consumer = Consumer();
  std::vector<BullLease> leases = Fetch(*consumer, 1);
  ASSERT_THAT(leases, SizeIs(1));
  ASSERT_THAT(consumer->Fail(leases[0], "first"), IsOk());
  EXPECT_EQ(Redis({"LLEN", Key("wait")}).integer, 1);
  EXPECT_FALSE(InActive(id));
  Redis({"HDEL", Key("meta"), "concurrency"});
}

// A fetch whose reply is lost (the connection breaks after Redis claimed) fails, and the next
// fetch hands out what it claimed, found again by its token prefix (not left locked until a
// stalled check); what the next fetch cannot take goes back to wait unstarted.
TEST_F(BullConsumerTest, ClaimsOfAFetchWhoseReplyWasLostComeWithTheNextFetch) {
  std::unique_ptr<BullConsumer> consumer;
  ASSERT_NO_FATAL_FAILURE(LoseAFetchOfThreeOutOfFive(consumer));

  std::vector<BullLease> adopted = Fetch(*consumer, 2);
  ASSERT_THAT(adopted, SizeIs(2));
  EXPECT_EQ(Redis({"LLEN", Key("active")}).integer, 2);
  EXPECT_EQ(Redis({"LLEN", Key("wait")}).integer, 3);  // the third, back unstarted
  std::vector<BullLease> rest = Fetch(*consumer, 10);
  ASSERT_THAT(rest, SizeIs(3));
  std::vector<std::string> seen;
  for (const std::vector<BullLease>* leases : {&adopted, &rest}) {
    for (const BullLease& lease : *leases) {
      ASSERT_THAT(consumer->Complete(lease, "1"), IsOk()) << lease.job.data_json;
      EXPECT_EQ(Field(lease.job.id, "ats"), "1");
      seen.push_back(lease.job.data_json);
    }
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_THAT(seen, ElementsAre("0", "1", "2", "3", "4"));
  EXPECT_EQ(Redis({"ZCARD", Key("completed")}).integer, 5);
  EXPECT_EQ(Redis({"LLEN", Key("active")}).integer, 0);
}

// A claimed job whose key a foreign client broke (not a hash) does not stop the others of a
// lost call from being found again.
TEST_F(BullConsumerTest, ABrokenJobKeyDoesNotHideTheOtherLostClaims) {
  std::unique_ptr<BullConsumer> consumer;
  ASSERT_NO_FATAL_FAILURE(LoseAFetchOfThreeOutOfFive(consumer));
  RedisReply claimed = Redis({"LRANGE", Key("active"), "0", "-1"});
  ASSERT_THAT(claimed.elements, SizeIs(3));
  const std::string broken = claimed.elements[0].str;
  Redis({"DEL", Key(broken)});
  Redis({"SET", Key(broken), "not a hash"});

  std::vector<BullLease> leases = Fetch(*consumer, 10);
  ASSERT_THAT(leases, SizeIs(2));
  for (const BullLease& lease : leases) {
    EXPECT_NE(lease.job.id, broken);
    EXPECT_TRUE(InActive(lease.job.id));
    EXPECT_EQ(Field(lease.job.id, "ats"), "1") << "claimed once, by the lost call";
  }
  EXPECT_EQ(Redis({"LLEN", Key("wait")}).integer, 2);  // the fetch took the lost claims
  Redis({"DEL", Key(broken)});
}

TEST_F(BullConsumerTest, UnrecoverableFailureSkipsRetries) {
  const std::string id = Add("{}", R"({"attempts":5,"backoff":1000})");
  auto consumer = Consumer();
  std::vector<BullLease> leases = Fetch(*consumer, 1);
  ASSERT_THAT(leases, SizeIs(1));
  ASSERT_THAT(consumer->Fail(leases[0], "bad input", /*unrecoverable=*/true), IsOk());
  EXPECT_EQ(Redis({"ZSCORE", Key("failed"), id}).type, RedisReply::Type::kString);
  EXPECT_EQ(Field(id, "atm"), "1");
  EXPECT_EQ(Field(id, "failedReason"), "bad input");
  EXPECT_EQ(Redis({"ZCARD", Key("delayed")}).integer, 0);
}

TEST_F(BullConsumerTest, LostLockIsRefusedAndNothingIsWritten) {
  const std::string id = Add("{}", R"({"attempts":3})");
  auto consumer = Consumer();
  std::vector<BullLease> leases = Fetch(*consumer, 1);
  ASSERT_THAT(leases, SizeIs(1));
  Redis({"DEL", Key(id + ":lock")});
  EXPECT_THAT(consumer->Complete(leases[0], "1"),
              StatusIs(kLeaseLostCode, HasSubstr("lock expired")));
  EXPECT_THAT(consumer->Fail(leases[0], "x"), StatusIs(kLeaseLostCode));
  EXPECT_THAT(consumer->Release(leases[0]), StatusIs(kLeaseLostCode));
  EXPECT_THAT(consumer->ExtendLock(leases[0]), StatusIs(kLeaseLostCode, HasSubstr("lock lost")));
  EXPECT_TRUE(IsLeaseLost(consumer->Complete(leases[0], "1")));
  EXPECT_TRUE(InActive(id));
  EXPECT_EQ(Field(id, "returnvalue"), "");
  EXPECT_EQ(Field(id, "failedReason"), "");
  EXPECT_EQ(Field(id, "finishedOn"), "");
  EXPECT_EQ(Field(id, "atm"), "");
  EXPECT_EQ(Redis({"EXISTS", Key(id + ":lock")}).integer, 0);  // extend did not re-create it

  // Another claim's token holds the lock: refused too.
  Redis({"SET", Key(id + ":lock"), "someone-else"});
  EXPECT_THAT(consumer->Complete(leases[0], "1"),
              StatusIs(kLeaseLostCode, HasSubstr("another worker")));
  EXPECT_EQ(Redis({"GET", Key(id + ":lock")}).str, "someone-else");
}

TEST_F(BullConsumerTest, FinishOfADeletedJobIsNotFound) {
  const std::string id = Add("{}");
  auto consumer = Consumer();
  std::vector<BullLease> leases = Fetch(*consumer, 1);
  ASSERT_THAT(leases, SizeIs(1));
  Redis({"DEL", Key(id)});
  EXPECT_THAT(consumer->Complete(leases[0], "1"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("gone")));
}

TEST_F(BullConsumerTest, ReturnValueThatIsNotJsonIsRefusedAndNothingIsWritten) {
  const std::string id = Add("{}");
  auto consumer = Consumer();
  std::vector<BullLease> leases = Fetch(*consumer, 1);
  ASSERT_THAT(leases, SizeIs(1));
  EXPECT_THAT(consumer->Complete(leases[0], "{oops"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("return value is")));
  EXPECT_TRUE(InActive(id));
  EXPECT_EQ(Field(id, "returnvalue"), "");
  EXPECT_EQ(Redis({"GET", Key(id + ":lock")}).str, leases[0].token);
  // The lease is still good.
  EXPECT_THAT(consumer->Complete(leases[0], "[1]"), IsOk());
  EXPECT_EQ(Field(id, "returnvalue"), "[1]");
}

TEST_F(BullConsumerTest, PausedQueueFetchesNothingUntilResumed) {
  ASSERT_THAT(queue_->Pause(), IsOk());
  const std::string id = Add("{}");
  auto consumer = Consumer();
  EXPECT_THAT(Fetch(*consumer, 5, absl::Milliseconds(200)), IsEmpty());
  EXPECT_EQ(Redis({"LLEN", Key("active")}).integer, 0);
  ASSERT_THAT(queue_->Resume(), IsOk());
  std::vector<BullLease> leases = Fetch(*consumer, 5, absl::Seconds(30));
  ASSERT_THAT(leases, SizeIs(1));
  EXPECT_EQ(leases[0].job.id, id);
}

TEST_F(BullConsumerTest, ReleaseHandsTheJobBackWithoutUsingAnAttempt) {
  const std::string id = Add("{}");
  auto consumer = Consumer();
  std::vector<BullLease> leases = Fetch(*consumer, 1);
  ASSERT_THAT(leases, SizeIs(1));
  ASSERT_THAT(consumer->Release(leases[0]), IsOk());
  EXPECT_FALSE(InActive(id));
  EXPECT_EQ(Redis({"LLEN", Key("wait")}).integer, 1);
  EXPECT_EQ(Redis({"EXISTS", Key(id + ":lock")}).integer, 0);
  EXPECT_EQ(Field(id, "atm"), "");
  std::vector<BullLease> again = Fetch(*consumer, 1);
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_EQ(again[0].job.id, id);
  EXPECT_EQ(again[0].job.fields.at("ats"), "2");
}

// A prioritized job handed back goes ahead of the jobs of its level added meanwhile, as
// Node's pushBackJobWithPriority does: it was next, and still is.
TEST_F(BullConsumerTest, ReleasedPrioritizedJobKeepsItsPlaceInItsLevel) {
  const std::string first = Add(R"("first")", R"({"priority":2})");
  auto consumer = Consumer();
  std::vector<BullLease> leases = Fetch(*consumer, 1);
  ASSERT_THAT(leases, SizeIs(1));
  ASSERT_EQ(leases[0].job.id, first);
  Add(R"("second")", R"({"priority":2})");
  Add(R"("third")", R"({"priority":2})");
  ASSERT_THAT(consumer->Release(leases[0]), IsOk());
  EXPECT_THAT(Data(Fetch(*consumer, 3)), ElementsAre(R"("first")", R"("second")", R"("third")"));
}

TEST_F(BullConsumerTest, JobMarkedByTheStalledCheckIsFailedNotHandedOut) {
  const std::string marked = Add(R"("marked")", R"({"attempts":5})");
  const std::string fine = Add(R"("fine")");
  Redis({"HSET", Key(marked), "defa", "job stalled more than allowable limit"});
  auto consumer = Consumer();
  std::vector<BullLease> leases = Fetch(*consumer, 5);
  EXPECT_THAT(Data(leases), ElementsAre(R"("fine")"));
  EXPECT_EQ(Redis({"ZSCORE", Key("failed"), marked}).type, RedisReply::Type::kString);
  EXPECT_EQ(Field(marked, "failedReason"), "job stalled more than allowable limit");
  EXPECT_EQ(fine, leases[0].job.id);
}

TEST_F(BullConsumerTest, ConcurrentFetchersTakeEachJobOnce) {
  constexpr int kJobs = 200;
  for (int i = 0; i < kJobs; ++i) Add(absl::StrCat(i));
  auto consumer = Consumer();
  absl::Mutex mu;
  std::multiset<std::string> seen;
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      while (true) {
        absl::StatusOr<std::vector<BullLease>> leases = consumer->Fetch(7, absl::Milliseconds(50));
        if (!leases.ok()) {
          ++errors;
          return;
        }
        if (leases->empty()) return;
        for (const BullLease& lease : *leases) {
          if (!consumer->ExtendLock(lease).ok() || !consumer->Complete(lease, "null").ok()) {
            ++errors;
          }
          absl::MutexLock lock(&mu);
          seen.insert(lease.job.id);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(seen.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(Redis({"ZCARD", Key("completed")}).integer, kJobs);
}

TEST_F(BullConsumerTest, BadArgumentsAreRefused) {
  EXPECT_THAT(BullConsumer::Open(url_, "has:colon").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("queue name")));
  EXPECT_THAT(BullConsumer::Open(url_, "").status(), StatusIs(absl::StatusCode::kInvalidArgument));
  BullConsumerOptions options;
  options.lock_duration = absl::Milliseconds(1);
  EXPECT_THAT(BullConsumer::Open(url_, name_, options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lock duration")));
  options = {};
  options.name = "has space";
  EXPECT_THAT(BullConsumer::Open(url_, name_, options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("worker name")));
  auto consumer = Consumer();
  EXPECT_THAT(consumer->Fetch(0, absl::ZeroDuration()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1..1000")));
  EXPECT_THAT(consumer->Fetch(1, absl::Seconds(-1)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(consumer->Complete(BullLease{}, "1"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no job id")));
  EXPECT_EQ(consumer->queue(), name_);
}

}  // namespace
}  // namespace jobqueue
