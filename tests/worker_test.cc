#include "jobqueue/worker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <csignal>
#include <stdexcept>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "jobqueue/logging.h"
#include "jobqueue/maintenance.h"
#include "testing/eventually.h"
#include "testing/pg_fixture.h"
#include "testing/status_matchers.h"

namespace jobqueue {
namespace {

using ::jobqueue::testing::Eventually;
using ::jobqueue::testing::IsOk;
using ::jobqueue::testing::StatusIs;
using ::jobqueue::testing::TestDatabaseUrl;
using ::jobqueue::testing::TestSchema;
using ::testing::HasSubstr;

NewJob MakeJob(std::string type, std::string payload = "{}") {
  NewJob job;
  job.job_type = std::move(type);
  job.payload_json = std::move(payload);
  return job;
}

class WorkerTest : public ::testing::Test {
 protected:
  WorkerTest() {
    PgOptions options;
    options.retry.base_delay = absl::Milliseconds(1);
    options.retry.max_delay = absl::Milliseconds(5);
    queue_ = schema_.OpenQueue(8, options);
  }

  // For a Run() expected to return an error by itself: should it retry instead, the outage
  // counts as idle time and it returns OK (a failure) rather than hang.
  WorkerOptions GuardedOptions() {
    WorkerOptions options = Options();
    options.exit_when_idle = absl::Seconds(20);
    return options;
  }

  // Registers job type "one", whose handler returns 1.
  static void RegisterOne(Worker& worker) {
    ASSERT_THAT(
        worker.Register(
            "one", [](JobContext&) -> absl::StatusOr<std::string> { return std::string("1"); }),
        IsOk());
  }

  // Registers job type "slow": its first run waits for `release`; every run returns 1.
  static void RegisterSlowOnFirstRun(Worker& worker, absl::Notification& release,
                                     std::atomic<int>& runs) {
    ASSERT_THAT(worker.Register("slow",
                                [&](JobContext&) -> absl::StatusOr<std::string> {
                                  if (++runs == 1) release.WaitForNotification();
                                  return std::string("1");
                                }),
                IsOk());
  }

  void ExpectCompletedAt(int64_t id, int attempts, const std::string& result) {
    JQ_ASSERT_OK_AND_ASSIGN(Job row, queue_->Get(id));
    EXPECT_EQ(row.status, JobStatus::kCompleted) << id;
    EXPECT_EQ(row.attempts, attempts) << id;
    EXPECT_EQ(row.result_json, std::optional<std::string>(result)) << id;
  }

  static void ExpectCompletedOnlyWithNoneLost(Worker& worker, int64_t completed) {
    const WorkerStats stats = worker.stats();
    EXPECT_EQ(stats.completed, completed);
    EXPECT_EQ(stats.lost, 0);
    EXPECT_EQ(stats.failed, 0);
  }

  // Lets waiting handlers go whatever fails, so a stop does not wait for them forever.
  struct NotifyAtExit {
    std::vector<absl::Notification*> notifications;
    ~NotifyAtExit() {
      for (absl::Notification* n : notifications) {
        if (!n->HasBeenNotified()) n->Notify();
      }
    }
  };

  // Stop(), then StopNow() or two stop signals, while a handler runs (see its definition).
  void ExpectASecondStopReleasesRunningJobsAtOnce(bool by_signal);

  WorkerOptions Options(int concurrency = 2) {
    WorkerOptions options;
    options.concurrency = concurrency;
    options.poll_interval = absl::Milliseconds(200);
    options.log_startup = false;
    return options;
  }

  // A job of type "orphan" processing under `worker_id` that the worker never received (a claim
  // whose reply was lost), and a switch that refuses claims from connections named
  // `application_name` (an outage for claims only) while the schema's claims_refused table has
  // a row (it starts empty). Returns the job's id.
  int64_t ClaimUnderAndRefuseClaimsOf(const std::string& worker_id,
                                      const std::string& application_name) {
    absl::StatusOr<EnqueueResult> orphan = queue_->Enqueue(MakeJob("orphan"));
    if (!orphan.ok()) throw std::runtime_error(orphan.status().ToString());
    ClaimRequest request;
    request.worker_id = worker_id;
    request.limit = 1;
    absl::StatusOr<std::vector<Lease>> claimed = queue_->Claim(request);
    if (!claimed.ok() || claimed->size() != 1) throw std::runtime_error("orphan not claimed");
    schema_.Query(
        absl::StrCat("CREATE TABLE ", schema_.name(), ".claims_refused (refused boolean)"));
    schema_.AddTrigger("refuse_claims", "BEFORE UPDATE", "FOR EACH STATEMENT",
                       absl::StrCat("IF current_setting('application_name') = '", application_name,
                                    "' AND current_query() LIKE '%SKIP LOCKED%' AND EXISTS "
                                    "(SELECT 1 FROM {s}.claims_refused) THEN RAISE EXCEPTION "
                                    "'claims refused' USING ERRCODE = '57P03'; END IF; "
                                    "RETURN NULL;"));
    return orphan->id;
  }

  int64_t CountWhere(const std::string& where) {
    return std::stoll(schema_.Query(
        absl::StrCat("SELECT count(*) FROM ", schema_.name(), ".job_queue WHERE ", where)));
  }

  // Runs a worker on a thread until Stop(), which returns what Run() returned.
  class Running {
   public:
    explicit Running(Worker& worker)
        : worker_(worker), thread_([this] { status_ = worker_.Run(); }) {}
    ~Running() {
      if (thread_.joinable()) (void)Stop();
    }
    absl::Status Stop() {
      worker_.Stop();
      thread_.join();
      return status_;
    }

   private:
    Worker& worker_;
    absl::Status status_;
    std::thread thread_;
  };

  void StopOnceCompleted(Running& running, int64_t completed) {
    EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'completed'") == completed; },
                           absl::Seconds(10)));
    EXPECT_THAT(running.Stop(), IsOk());
  }

  // Runs the worker on a thread until `done` holds, then stops it.
  template <typename F>
  void RunUntil(Worker& worker, F done) {
    Running running(worker);
    EXPECT_TRUE(Eventually(done));
    EXPECT_THAT(running.Stop(), IsOk());
  }

  // 5,000 jobs through 8 handler threads; each must run and complete exactly once.
  // One job whose handler always fails, max_attempts 3: failed for good after three runs.
  void FailThreeTimes(absl::Duration transaction_budget,
                      absl::Status error = absl::UnavailableError("upstream said no"));
  // A handler fails while the table is away (renamed): the failure is written once it is
  // back, and the retries meanwhile back off. batch_size as WorkerOptions.
  void FailDuringAnOutage(int batch_size);
  // With delete_completed, on a queue that deletes completed rows: the table ends empty.
  void DrainExactlyOnce(int dispatchers, absl::Duration transaction_budget = absl::ZeroDuration(),
                        bool delete_completed = false);
  void UnstorableResultFailsOnlyItsJob(absl::Duration transaction_budget, std::string bad_result);
  // A handler for `type` that sets `started`, sleeps `duration` and returns `result`.
  static void RegisterSleeper(Worker& worker, const std::string& type, absl::Duration duration,
                              std::atomic<bool>& started, std::string result) {
    ASSERT_THAT(
        worker.Register(type,
                        [&started, duration, result](JobContext&) -> absl::StatusOr<std::string> {
                          started = true;
                          absl::SleepFor(duration);
                          return result;
                        }),
        IsOk());
  }
  // "slow" jobs run until `release` (at most 60 s): a fixed run time could end before the
  // checks that need them running, on a loaded machine.
  struct SlowJobs {
    std::atomic<int> runs{0};
    std::atomic<bool> release{false};
  };
  // One try of HeldJobTakenElsewhereDuringARowByRowSettleIsLetGo; false when it showed nothing.
  bool TakeAHeldJobDuringARowByRowSettle();
  // A worker of `options`, reconnecting at once, that runs "slow" jobs.
  std::unique_ptr<Worker> SlowHeldWorker(WorkerOptions options, SlowJobs& slow) {
    options.reconnect_min = absl::Milliseconds(10);
    absl::StatusOr<std::unique_ptr<Worker>> worker = Worker::Create(queue_.get(), options);
    if (!worker.ok()) throw std::runtime_error(worker.status().ToString());
    absl::Status registered =
        (*worker)->Register("slow", [&slow](JobContext&) -> absl::StatusOr<std::string> {
          ++slow.runs;
          const absl::Time cap = absl::Now() + absl::Seconds(60);
          while (!slow.release.load() && absl::Now() < cap) absl::SleepFor(absl::Milliseconds(5));
          return std::string("1");
        });
    if (!registered.ok()) throw std::runtime_error(registered.ToString());
    return *std::move(worker);
  }
  // Once the worker runs its first "slow" job, ends the connection of its held batch (the one
  // session idle in a transaction on this schema) and waits until it has reconnected.
  void EndHeldBatchMidRun(Worker& worker, const SlowJobs& slow) {
    ASSERT_TRUE(Eventually([&] { return slow.runs.load() == 1; }));
    EXPECT_EQ(schema_.Query(absl::StrCat(
                  "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE state = "
                  "'idle in transaction' AND pid <> pg_backend_pid() AND query LIKE '%",
                  schema_.name(), "%'")),
              "1");
    EXPECT_TRUE(Eventually([&] { return worker.stats().reconnects >= 1; }));
  }
  void RefuseResultInTheTable(const std::string& result_json) {
    schema_.Query(absl::StrCat("ALTER TABLE ", schema_.name(),
                               ".job_queue ADD CONSTRAINT refused_result CHECK (result IS DISTINCT "
                               "FROM '",
                               result_json, "'::jsonb)"));
  }

  TestSchema schema_;
  std::unique_ptr<PgQueue> queue_;
};

TEST_F(WorkerTest, ProcessesJobsWithRegisteredHandlers) {
  for (int i = 0; i < 50; ++i) {
    ASSERT_THAT(queue_->Enqueue(MakeJob("echo", absl::StrCat(R"({"n": )", i, "}"))).status(),
                IsOk());
  }
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), Options(4)));
  ASSERT_THAT(worker->Register("echo",
                               [](JobContext& job) -> absl::StatusOr<std::string> {
                                 return job.lease().payload_json;
                               }),
              IsOk());
  RunUntil(*worker, [&] { return CountWhere("status = 'completed'") == 50; });
  EXPECT_EQ(worker->stats().completed, 50);
  EXPECT_EQ(CountWhere("result = payload"), 50);
  EXPECT_EQ(CountWhere("status <> 'completed'"), 0);
}

void WorkerTest::FailThreeTimes(absl::Duration transaction_budget, absl::Status error) {
  NewJob job = MakeJob("flaky");
  job.options.max_attempts = 3;
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue_->Enqueue(job));
  WorkerOptions options = Options();
  options.transaction_budget = transaction_budget;
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  std::atomic<int> calls{0};
  ASSERT_THAT(worker->Register("flaky",
                               [&](JobContext&) -> absl::StatusOr<std::string> {
                                 ++calls;
                                 return error;
                               }),
              IsOk());
  RunUntil(*worker, [&] { return CountWhere("status = 'failed'") == 1; });
  EXPECT_EQ(calls.load(), 3);
  JQ_ASSERT_OK_AND_ASSIGN(Job row, queue_->Get(added.id));
  EXPECT_EQ(row.attempts, 3);
  EXPECT_THAT(row.last_error, HasSubstr(error.message()));
  EXPECT_TRUE(row.finished_at.has_value());
  EXPECT_EQ(worker->stats().failed, 3);
  EXPECT_EQ(worker->stats().lost, 0);
}

TEST_F(WorkerTest, FailingHandlerRetriesThenFails) { FailThreeTimes(absl::ZeroDuration()); }

TEST_F(WorkerTest, ThrowingHandlerFailsTheJobWithoutCrashing) {
  NewJob job = MakeJob("thrower");
  job.options.max_attempts = 1;
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue_->Enqueue(job));
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), Options()));
  ASSERT_THAT(worker->Register("thrower",
                               [](JobContext&) -> absl::StatusOr<std::string> {
                                 throw std::runtime_error("boom");
                               }),
              IsOk());
  RunUntil(*worker, [&] { return CountWhere("status = 'failed'") == 1; });
  JQ_ASSERT_OK_AND_ASSIGN(Job row, queue_->Get(added.id));
  EXPECT_THAT(row.last_error, HasSubstr("boom"));
}

TEST_F(WorkerTest, InvalidJsonResultFailsTheJob) {
  NewJob job = MakeJob("bad_result");
  job.options.max_attempts = 1;
  ASSERT_THAT(queue_->Enqueue(job).status(), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), Options()));
  ASSERT_THAT(worker->Register("bad_result",
                               [](JobContext&) -> absl::StatusOr<std::string> {
                                 return std::string("{not json");
                               }),
              IsOk());
  RunUntil(*worker, [&] { return CountWhere("status = 'failed'") == 1; });
  EXPECT_EQ(CountWhere("last_error LIKE '%result%'"), 1);
}

TEST_F(WorkerTest, NotificationWakesAnIdleWorkerLongBeforeItsPoll) {
  WorkerOptions options = Options();
  options.poll_interval = absl::Hours(1);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  ASSERT_THAT(
      worker->Register(
          "wake", [](JobContext&) -> absl::StatusOr<std::string> { return std::string("null"); }),
      IsOk());
  absl::Status run_status;
  std::thread runner([&] { run_status = worker->Run(); });
  const std::string waiters =
      absl::StrCat("SELECT count(*) FROM ", schema_.name(), ".job_queue_waiters");
  // Wait until the worker has gone idle and registered as a waiter.
  ASSERT_TRUE(Eventually([&] { return schema_.Query(waiters) == "1"; }));
  // The row names the listening session, so a killed worker's row can be cleaned up.
  EXPECT_EQ(schema_.Query(absl::StrCat("SELECT count(*) FROM ", schema_.name(),
                                       ".job_queue_waiters w JOIN pg_stat_activity a ON a.pid = "
                                       "w.pid AND a.pid <> pg_backend_pid()")),
            "1");
  ASSERT_THAT(queue_->Enqueue(MakeJob("wake")).status(), IsOk());
  // With a one-hour poll, only the notification can get this job done.
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'completed'") == 1; }));
  // A bulk enqueue (the COPY path) notifies as well.
  ASSERT_TRUE(Eventually([&] { return schema_.Query(waiters) == "1"; }));
  ASSERT_THAT(queue_->EnqueueMany(std::vector<NewJob>(100, MakeJob("wake"))).status(), IsOk());
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'completed'") == 101; }));
  // So do a small batch (one INSERT ... SELECT) and a job with a dedupe key (ON CONFLICT).
  ASSERT_TRUE(Eventually([&] { return schema_.Query(waiters) == "1"; }));
  ASSERT_THAT(queue_->EnqueueMany(std::vector<NewJob>(3, MakeJob("wake"))).status(), IsOk());
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'completed'") == 104; }));
  ASSERT_TRUE(Eventually([&] { return schema_.Query(waiters) == "1"; }));
  NewJob keyed = MakeJob("wake");
  keyed.options.dedupe_key = "k";
  ASSERT_THAT(queue_->Enqueue(keyed).status(), IsOk());
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'completed'") == 105; }));
  // Rows another tool inserts wake workers once an operator adds the trigger docs/postgres.md
  // shows.
  ASSERT_TRUE(Eventually([&] { return schema_.Query(waiters) == "1"; }));
  schema_.Query(absl::StrCat("CREATE TRIGGER job_queue_notify AFTER INSERT ON ", schema_.name(),
                             ".job_queue FOR EACH STATEMENT EXECUTE FUNCTION ", schema_.name(),
                             ".job_queue_notify()"));
  schema_.Query(absl::StrCat("INSERT INTO ", schema_.name(),
                             ".job_queue (job_type) VALUES ('wake') RETURNING id"));
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'completed'") == 106; }));
  worker->Stop();
  runner.join();
  EXPECT_THAT(run_status, IsOk());
  // A stopped worker no longer asks for notifications.
  EXPECT_EQ(schema_.Query(waiters), "0");
}

TEST_F(WorkerTest, DelayedJobRunsWhenDueWithoutWaitingForThePoll) {
  WorkerOptions options = Options();
  options.poll_interval = absl::Hours(1);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  ASSERT_THAT(
      worker->Register(
          "later", [](JobContext&) -> absl::StatusOr<std::string> { return std::string("null"); }),
      IsOk());
  NewJob job = MakeJob("later");
  job.options.delay = absl::Milliseconds(300);
  ASSERT_THAT(queue_->Enqueue(job).status(), IsOk());
  RunUntil(*worker, [&] { return CountWhere("status = 'completed'") == 1; });
  EXPECT_EQ(CountWhere("status = 'completed' AND finished_at >= run_at"), 1);
}

TEST_F(WorkerTest, GracefulStopReleasesUnfinishedJobs) {
  for (int i = 0; i < 6; ++i) ASSERT_THAT(queue_->Enqueue(MakeJob("slow")).status(), IsOk());
  WorkerOptions options = Options(2);
  options.batch_size = 6;
  options.shutdown_timeout = absl::Milliseconds(200);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  std::atomic<int> started{0};
  // Ignores stopping() on purpose: the deadline must release it anyway.
  ASSERT_THAT(worker->Register("slow",
                               [&](JobContext&) -> absl::StatusOr<std::string> {
                                 ++started;
                                 absl::SleepFor(absl::Seconds(1));
                                 return std::string("null");
                               }),
              IsOk());
  absl::Status run_status;
  std::thread runner([&] { run_status = worker->Run(); });
  ASSERT_TRUE(Eventually([&] { return started.load() == 2; }));
  // Each statement that hands jobs back logs how many: the four unstarted jobs go in one, the
  // two still running at the deadline in another (not a statement per job).
  const std::string s = schema_.name();
  schema_.Query(absl::StrCat("CREATE TABLE ", s, ".handed_back (jobs bigint)"));
  schema_.AddTrigger("log_hand_back", "AFTER UPDATE",
                     "REFERENCING NEW TABLE AS changed FOR EACH STATEMENT",
                     "INSERT INTO {s}.handed_back SELECT count(*) FROM changed "
                     "WHERE status = 'pending' HAVING count(*) > 0; RETURN NULL;");
  worker->Stop();
  runner.join();
  EXPECT_THAT(run_status, IsOk());
  EXPECT_EQ(CountWhere("status = 'processing'"), 0);
  EXPECT_EQ(CountWhere("status = 'pending' AND attempts = 0"), 6);
  EXPECT_EQ(worker->stats().released, 6);
  EXPECT_EQ(schema_.Query(absl::StrCat(
                "SELECT string_agg(jobs::text, ',' ORDER BY jobs DESC) FROM ", s, ".handed_back")),
            "4,2");
}

// StopNow() while stopping, or a second stop signal (a second Ctrl-C), releases the running
// job at once instead of waiting out a long shutdown_timeout; the handler's late result is
// dropped.
void WorkerTest::ExpectASecondStopReleasesRunningJobsAtOnce(bool by_signal) {
  ASSERT_THAT(queue_->Enqueue(MakeJob("stubborn")).status(), IsOk());
  WorkerOptions options = Options(1);
  options.shutdown_timeout = absl::Seconds(60);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  std::atomic<bool> started{false};
  absl::Notification finish;
  ASSERT_THAT(worker->Register("stubborn",
                               [&](JobContext&) -> absl::StatusOr<std::string> {
                                 started = true;
                                 finish.WaitForNotificationWithTimeout(absl::Seconds(60));
                                 return std::string("\"late\"");
                               }),
              IsOk());
  if (by_signal) StopWorkersOnSignals();
  absl::Status run_status;
  std::thread runner([&] { run_status = worker->Run(); });
  ASSERT_TRUE(Eventually([&] { return started.load(); }));
  if (by_signal) {
    // Twice at once, as a launcher forwarding the terminal's Ctrl-C does: one stop.
    std::raise(SIGTERM);
    std::raise(SIGTERM);
  } else {
    worker->Stop();
  }
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(CountWhere("status = 'processing'"), 1);  // the first stop waits for the handler
  if (by_signal) {
    absl::SleepFor(absl::Seconds(1));  // a second Ctrl-C comes a second or more later
    std::raise(SIGTERM);
  } else {
    worker->StopNow();
  }
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'pending' AND attempts = 0") == 1; }));
  finish.Notify();
  runner.join();
  EXPECT_THAT(run_status, IsOk());
  EXPECT_EQ(worker->stats().released, 1);
  EXPECT_EQ(CountWhere("status = 'pending' AND attempts = 0 AND result IS NULL"), 1);
}

TEST_F(WorkerTest, StopNowReleasesRunningJobsAtOnce) {
  ExpectASecondStopReleasesRunningJobsAtOnce(/*by_signal=*/false);
}

TEST_F(WorkerTest, ASecondStopSignalReleasesRunningJobsAtOnce) {
  ExpectASecondStopReleasesRunningJobsAtOnce(/*by_signal=*/true);
}

TEST_F(WorkerTest, HandlersSeeStoppingAndTheirJobsAreReleased) {
  ASSERT_THAT(queue_->Enqueue(MakeJob("polite")).status(), IsOk());
  WorkerOptions options = Options(1);
  options.shutdown_timeout = absl::Seconds(20);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  std::atomic<bool> started{false};
  ASSERT_THAT(worker->Register("polite",
                               [&](JobContext& job) -> absl::StatusOr<std::string> {
                                 started = true;
                                 while (!job.stopping()) absl::SleepFor(absl::Milliseconds(5));
                                 return absl::CancelledError("shutting down");
                               }),
              IsOk());
  absl::Status run_status;
  std::thread runner([&] { run_status = worker->Run(); });
  ASSERT_TRUE(Eventually([&] { return started.load(); }));
  worker->Stop();
  runner.join();
  EXPECT_EQ(CountWhere("status = 'pending' AND attempts = 0"), 1);
  EXPECT_EQ(worker->stats().failed, 0);
}

TEST_F(WorkerTest, ExitsWhenIdle) {
  ASSERT_THAT(queue_->Enqueue(MakeJob("one")).status(), IsOk());
  WorkerOptions options = Options();
  options.exit_when_idle = absl::Milliseconds(300);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  RegisterOne(*worker);
  // Returns by itself: no Stop() call.
  EXPECT_THAT(worker->Run(), IsOk());
  EXPECT_EQ(CountWhere("status = 'completed'"), 1);
}

// It used to retry a missing table forever, logged as an outage.
TEST_F(WorkerTest, WorkerOnASchemaNeverMigratedStopsWithTheReason) {
  PgOptions pg;
  pg.schema = schema_.name() + "_never";
  JQ_ASSERT_OK_AND_ASSIGN(auto unmigrated, PgQueue::Open(TestDatabaseUrl(), pg));
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(unmigrated.get(), GuardedOptions()));
  RegisterOne(*worker);
  EXPECT_THAT(worker->Run(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                      HasSubstr("run `jobqueue migrate` first")));
}

// A role without rights on the schema (42501) will not fix itself either.
TEST_F(WorkerTest, WorkerWithoutRightsStopsWithTheReason) {
  const std::string url(TestDatabaseUrl().Reveal());
  PgOptions pg;
  pg.schema = schema_.name();
  JQ_ASSERT_OK_AND_ASSIGN(
      auto unprivileged,
      PgQueue::Open(Secret(absl::StrCat(url, absl::StrContains(url, "?") ? "&" : "?",
                                        "options=-c%20role%3Dpg_monitor")),
                    pg));
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(unprivileged.get(), GuardedOptions()));
  RegisterOne(*worker);
  EXPECT_THAT(worker->Run(),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("grant the role rights")));
}

// A scaled-to-zero worker must not wait out an outage forever: it counts as idle time.
TEST_F(WorkerTest, AnOutageAfterWorkCountsAsIdleTime) {
  ASSERT_THAT(queue_->Enqueue(MakeJob("one")).status(), IsOk());
  WorkerOptions options = Options();
  options.exit_when_idle = absl::Seconds(3);
  options.reconnect_min = absl::Milliseconds(20);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  RegisterOne(*worker);
  std::atomic<bool> returned{false};
  absl::Status run_status;
  std::thread runner([&] {
    run_status = worker->Run();
    returned = true;
  });
  ASSERT_TRUE(Eventually([&] { return worker->stats().completed == 1; }));
  // Every round fails from here on: the table is gone.
  schema_.Query(absl::StrCat("DROP SCHEMA ", schema_.name(), " CASCADE"));
  const bool exited = Eventually([&] { return returned.load(); }, absl::Seconds(30));
  if (!exited) worker->Stop();
  runner.join();
  EXPECT_TRUE(exited);
  EXPECT_THAT(run_status, IsOk());
  EXPECT_GE(worker->stats().reconnects, 1);
}

TEST_F(WorkerTest, HeartbeatsKeepALongJobFromBeingReaped) {
  ASSERT_THAT(queue_->Enqueue(MakeJob("long")).status(), IsOk());
  WorkerOptions options = Options(1);
  options.heartbeat_interval = absl::Milliseconds(50);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  std::atomic<bool> started{false};
  RegisterSleeper(*worker, "long", absl::Milliseconds(1500), started, "\"done\"");
  RecoverOptions recover;
  recover.stale_after = absl::Milliseconds(500);
  StaleLockReaper reaper(queue_.get(), recover);
  absl::Status run_status;
  std::thread runner([&] { run_status = worker->Run(); });
  ASSERT_TRUE(Eventually([&] { return started.load(); }));
  int64_t recovered = 0;
  for (int i = 0; i < 10; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    JQ_ASSERT_OK_AND_ASSIGN(RecoverResult sweep, reaper.RunOnce());
    recovered += static_cast<int64_t>(sweep.jobs.size());
  }
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'completed'") == 1; }));
  worker->Stop();
  runner.join();
  EXPECT_EQ(recovered, 0);
  EXPECT_EQ(worker->stats().lost, 0);
}

// While shutdown waits for a running handler, heartbeats go on: before, none were sent then,
// and a shutdown_timeout longer than the stale timeout let the reaper take the job away.
TEST_F(WorkerTest, HeartbeatsGoOnWhileShutdownWaitsForAHandler) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult job, queue_->Enqueue(MakeJob("long")));
  WorkerOptions options = Options(1);
  options.heartbeat_interval = absl::Milliseconds(50);
  options.shutdown_timeout = absl::Seconds(10);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  std::atomic<bool> started{false};
  RegisterSleeper(*worker, "long", absl::Milliseconds(2500), started, "\"done\"");
  Running running(*worker);
  ASSERT_TRUE(Eventually([&] { return started.load(); }));
  worker->Stop();  // returns at once; shutdown waits for the handler
  RecoverOptions recover;
  recover.stale_after = absl::Milliseconds(500);
  int64_t recovered = 0;
  for (int i = 0; i < 15; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    JQ_ASSERT_OK_AND_ASSIGN(RecoverResult sweep, queue_->RecoverStale(recover));
    recovered += static_cast<int64_t>(sweep.jobs.size());
  }
  EXPECT_THAT(running.Stop(), IsOk());
  EXPECT_EQ(recovered, 0);
  JQ_ASSERT_OK_AND_ASSIGN(Job row, queue_->Get(job.id));
  EXPECT_EQ(row.status, JobStatus::kCompleted);
  EXPECT_EQ(row.attempts, 1);
}

// The reaper recovers a job this worker is still running and this worker claims it again:
// the run here carries on under the new lease. Before, the new lease was not recorded (held
// by job id, the old entry stayed), a second run started beside the first, both completions
// went out under the old lease and were refused, and the job stayed processing.
TEST_F(WorkerTest, AJobReclaimedWhileItRunsHereFinishesUnderTheNewLease) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult job, queue_->Enqueue(MakeJob("slow")));
  WorkerOptions options = Options(2);
  options.heartbeat_interval = absl::Seconds(60);
  options.poll_interval = absl::Milliseconds(50);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  absl::Notification release_first;
  std::atomic<int> runs{0};
  ASSERT_THAT(worker->Register("slow",
                               [&](JobContext&) -> absl::StatusOr<std::string> {
                                 const int run = ++runs;
                                 if (run == 1) release_first.WaitForNotification();
                                 return absl::StrCat(run);
                               }),
              IsOk());
  Running running(*worker);
  ASSERT_TRUE(Eventually([&] { return runs.load() == 1; }));
  RecoverOptions recover;
  recover.stale_after = absl::ZeroDuration();
  JQ_ASSERT_OK_AND_ASSIGN(RecoverResult recovered, queue_->RecoverStale(recover));
  ASSERT_EQ(recovered.jobs.size(), 1u);
  const std::string second_claim =
      absl::StrCat("id = ", job.id, " AND status = 'processing' AND attempts = 2");
  ASSERT_TRUE(Eventually([&] { return CountWhere(second_claim) == 1; }));
  release_first.Notify();
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'completed'") == 1; }));
  EXPECT_THAT(running.Stop(), IsOk());
  EXPECT_EQ(runs.load(), 1);
  ExpectCompletedAt(job.id, 2, "1");
  EXPECT_EQ(worker->stats().completed, 1);
  EXPECT_EQ(worker->stats().lost, 0);
}

// The same in short-job mode: the reaper recovers jobs this worker kept past a batch's budget
// (one running, one still queued) and a later held batch claims them again. Before, the queued
// one was queued a second time and its new lease was not recorded (the old one stayed): it ran
// twice, both completions were refused and the job stayed processing; the running one was left
// pending and ran again after its first run's result was refused.
TEST_F(WorkerTest, JobsReclaimedFromAHeldBatchRunOnceUnderTheNewLease) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult slow, queue_->Enqueue(MakeJob("slow")));
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult queued, queue_->Enqueue(MakeJob("queued")));
  WorkerOptions options = Options(1);
  options.batch_size = 4;
  options.transaction_budget = absl::Milliseconds(100);
  options.heartbeat_interval = absl::Seconds(60);
  options.poll_interval = absl::Milliseconds(50);
  options.shutdown_timeout = absl::Milliseconds(100);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  absl::Notification release_slow;
  std::atomic<int> slow_runs{0}, queued_runs{0};
  RegisterSlowOnFirstRun(*worker, release_slow, slow_runs);
  ASSERT_THAT(worker->Register("queued",
                               [&](JobContext&) -> absl::StatusOr<std::string> {
                                 ++queued_runs;
                                 return std::string("2");
                               }),
              IsOk());
  Running running(*worker);
  NotifyAtExit release{{&release_slow}};
  ASSERT_TRUE(
      Eventually([&] { return CountWhere("status = 'processing' AND attempts = 1") == 2; }));
  RecoverOptions recover;
  recover.stale_after = absl::ZeroDuration();
  JQ_ASSERT_OK_AND_ASSIGN(RecoverResult recovered, queue_->RecoverStale(recover));
  ASSERT_EQ(recovered.jobs.size(), 2u);
  ASSERT_TRUE(Eventually(
      [&] { return CountWhere(absl::StrCat("id = ", queued.id, " AND attempts = 2")) == 1; }));
  EXPECT_TRUE(Eventually(
      [&] {
        return CountWhere(absl::StrCat("id = ", slow.id,
                                       " AND status = 'processing' AND attempts = 2")) == 1;
      },
      absl::Seconds(5)));
  release_slow.Notify();
  StopOnceCompleted(running, 2);
  EXPECT_EQ(slow_runs.load(), 1);
  EXPECT_EQ(queued_runs.load(), 1);
  ExpectCompletedAt(slow.id, 2, "1");
  ExpectCompletedAt(queued.id, 2, "2");
  ExpectCompletedOnlyWithNoneLost(*worker, 2);
}

// Short-job mode with two dispatchers: a held batch claims again a job the reaper took from
// this worker (adopting it) and, while that batch waits out its budget, the job's first run
// ends. Before, the other dispatcher wrote the result under the old lease (refused: lost) and the
// job ran a second time under the new one.
TEST_F(WorkerTest, ARunEndingWhileItsJobIsAdoptedIsWrittenUnderTheNewLease) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult slow, queue_->Enqueue(MakeJob("slow")));
  WorkerOptions options = Options(3);
  options.dispatchers = 2;
  options.batch_size = 4;
  options.transaction_budget = absl::Seconds(1);
  options.heartbeat_interval = absl::Seconds(60);
  options.poll_interval = absl::Milliseconds(50);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  absl::Notification release_slow, release_hold;
  std::atomic<int> slow_runs{0}, hold_runs{0};
  RegisterSlowOnFirstRun(*worker, release_slow, slow_runs);
  ASSERT_THAT(worker->Register("hold",
                               [&](JobContext&) -> absl::StatusOr<std::string> {
                                 ++hold_runs;
                                 release_hold.WaitForNotification();
                                 return std::string("2");
                               }),
              IsOk());
  Running running(*worker);
  NotifyAtExit release{{&release_slow, &release_hold}};
  // Kept past its batch's budget: a processing lease.
  ASSERT_TRUE(Eventually([&] { return CountWhere("status = 'processing' AND attempts = 1") == 1; },
                         absl::Seconds(10)));
  // Recovered as the reaper does, in the statement that adds a job to keep the next batch open:
  // one batch claims both.
  schema_.Query(absl::StrCat(
      "WITH recovered AS (UPDATE ", schema_.name(),
      ".job_queue SET status = 'pending', locked_by = NULL, locked_at = NULL, heartbeat_at = "
      "NULL, updated_at = now() WHERE id = ",
      slow.id, " RETURNING id) INSERT INTO ", schema_.name(),
      ".job_queue (job_type) SELECT 'hold' FROM recovered RETURNING id"));
  ASSERT_TRUE(Eventually([&] { return hold_runs.load() == 1; }));
  release_slow.Notify();
  // The batch has settled: the job holding it open is a processing lease now.
  ASSERT_TRUE(
      Eventually([&] { return CountWhere("job_type = 'hold' AND status = 'processing'") == 1; },
                 absl::Seconds(10)));
  release_hold.Notify();
  StopOnceCompleted(running, 2);
  EXPECT_EQ(slow_runs.load(), 1);
  ExpectCompletedAt(slow.id, 2, "1");
  ExpectCompletedOnlyWithNoneLost(*worker, 2);
}

// A handler failure the database cannot take yet (the table is away) is written once it is
// back. Before, it was dropped, and a claim that failed in the same outage made the worker
// release the job as a lost claim with its attempt given back: a max_attempts=1 job ran twice.
void WorkerTest::FailDuringAnOutage(int batch_size) {
  NewJob once = MakeJob("once");
  once.options.max_attempts = 1;
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult job, queue_->Enqueue(once));
  WorkerOptions options = Options(1);
  options.batch_size = batch_size;
  options.poll_interval = absl::Milliseconds(100);
  options.reconnect_min = absl::Milliseconds(50);
  options.reconnect_max = absl::Milliseconds(100);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  absl::Notification fail_now;
  std::atomic<int> runs{0};
  ASSERT_THAT(worker->Register("once",
                               [&](JobContext&) -> absl::StatusOr<std::string> {
                                 if (++runs > 1) return std::string("\"ran again\"");
                                 fail_now.WaitForNotification();
                                 return absl::InternalError("boom");
                               }),
              IsOk());
  auto retries = std::make_shared<std::atomic<int>>(0);
  const int sink = AddLogSink([retries](LogLevel, absl::string_view line) {
    if (absl::StrContains(line, "cannot record its failure yet")) ++*retries;
  });
  Running running(*worker);
  ASSERT_TRUE(Eventually([&] { return runs.load() == 1; }));
  const std::string table = schema_.name() + ".job_queue";
  schema_.Query("ALTER TABLE " + table + " RENAME TO job_queue_away");
  fail_now.Notify();
  ASSERT_TRUE(Eventually([&] { return worker->stats().reconnects >= 2; }));
  absl::SleepFor(absl::Seconds(1));
  // With backoff of 50-100 ms, about ten tries a second (it tried thousands of times when
  // the worker was full and its rounds sent nothing).
  EXPECT_LT(retries->load(), 40);
  schema_.Query("ALTER TABLE " + schema_.name() + ".job_queue_away RENAME TO job_queue");
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'failed'") == 1; }));
  EXPECT_THAT(running.Stop(), IsOk());
  RemoveLogSink(sink);
  EXPECT_EQ(runs.load(), 1);
  JQ_ASSERT_OK_AND_ASSIGN(Job row, queue_->Get(job.id));
  EXPECT_EQ(row.status, JobStatus::kFailed);
  EXPECT_EQ(row.attempts, 1);
  EXPECT_THAT(row.last_error, HasSubstr("boom"));
  EXPECT_EQ(worker->stats().failed, 1);
}

TEST_F(WorkerTest, AFailureDuringAnOutageIsWrittenAfterIt) { FailDuringAnOutage(0); }

// Capacity 1, the job holding it: rounds send nothing, and the failure's retries are what
// meets the outage. They back off like claims.
TEST_F(WorkerTest, AFullWorkerBacksOffRetryingAFailureThroughAnOutage) { FailDuringAnOutage(1); }

void WorkerTest::DrainExactlyOnce(int dispatchers, absl::Duration transaction_budget,
                                  bool delete_completed) {
  constexpr int kJobs = 5000;
  std::vector<NewJob> jobs;
  for (int i = 0; i < kJobs; ++i) jobs.push_back(MakeJob("count", absl::StrCat(i)));
  ASSERT_THAT(queue_->EnqueueMany(jobs).status(), IsOk());
  WorkerOptions options = Options(8);
  options.batch_size = 64;
  options.dispatchers = dispatchers;
  options.transaction_budget = transaction_budget;
  PgOptions deleting;
  deleting.delete_completed = true;
  std::unique_ptr<PgQueue> queue = delete_completed ? schema_.OpenQueue(4, deleting) : nullptr;
  JQ_ASSERT_OK_AND_ASSIGN(auto worker,
                          Worker::Create(delete_completed ? queue.get() : queue_.get(), options));
  absl::Mutex mu;
  absl::flat_hash_map<int64_t, int> runs;
  ASSERT_THAT(worker->Register("count",
                               [&](JobContext& job) -> absl::StatusOr<std::string> {
                                 absl::MutexLock lock(&mu);
                                 ++runs[job.lease().job_id];
                                 return std::string("null");
                               }),
              IsOk());
  RunUntil(*worker, [&] {
    return delete_completed ? CountWhere("true") == 0 : CountWhere("status = 'completed'") == kJobs;
  });
  EXPECT_EQ(runs.size(), static_cast<size_t>(kJobs));
  for (const auto& [id, n] : runs) EXPECT_EQ(n, 1) << "job " << id;
  EXPECT_EQ(worker->stats().completed, kJobs);
  EXPECT_EQ(worker->stats().lost, 0);
}

TEST_F(WorkerTest, ManyThreadsCompleteEachJobExactlyOnce) { DrainExactlyOnce(1); }

TEST_F(WorkerTest, ParallelDispatchersCompleteEachJobExactlyOnce) { DrainExactlyOnce(3); }

TEST_F(WorkerTest, DeletingCompletedRowsCompletesEachJobExactlyOnce) {
  DrainExactlyOnce(2, absl::ZeroDuration(), /*delete_completed=*/true);
}

TEST_F(WorkerTest, HeldBatchesDeletingCompletedRowsCompleteEachJobExactlyOnce) {
  DrainExactlyOnce(2, absl::Seconds(1), /*delete_completed=*/true);
}

TEST_F(WorkerTest, HeldBatchesCompleteEachJobExactlyOnce) {
  DrainExactlyOnce(2, absl::Seconds(1));
  EXPECT_EQ(CountWhere("attempts = 1 AND locked_by IS NOT NULL AND finished_at IS NOT NULL"), 5000);
}

TEST_F(WorkerTest, HeldBatchesWriteEachJobOnce) {
  constexpr int kJobs = 300;
  std::vector<NewJob> jobs;
  for (int i = 0; i < kJobs; ++i)
    jobs.push_back(MakeJob("echo", absl::StrCat(R"({"n": )", i, "}")));
  ASSERT_THAT(queue_->EnqueueMany(jobs).status(), IsOk());
  WorkerOptions options = Options(4);
  options.batch_size = 50;
  options.transaction_budget = absl::Seconds(2);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  ASSERT_THAT(worker->Register("echo",
                               [](JobContext& job) -> absl::StatusOr<std::string> {
                                 return job.lease().payload_json;
                               }),
              IsOk());
  RunUntil(*worker, [&] { return CountWhere("status = 'completed'") == kJobs; });
  EXPECT_EQ(CountWhere(absl::StrCat("result = payload AND attempts = 1 AND heartbeat_at IS NULL",
                                    " AND locked_by = '", worker->worker_id(), "'")),
            kJobs);
  worker.reset();
  queue_.reset();  // the backends exit and flush their table statistics
  const std::string updates =
      absl::StrCat("SELECT n_tup_upd FROM pg_stat_user_tables WHERE schemaname = '", schema_.name(),
                   "' AND relname = 'job_queue'");
  EXPECT_TRUE(Eventually([&] { return std::stoll(schema_.Query(updates)) >= kJobs; }));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(std::stoll(schema_.Query(updates)), kJobs) << "one row write per job";
}

// A result jsonb refuses (valid JSON to simdjson) must fail its own job, not every batch
// it travels in: before, the batch's statement failed for good and the worker stopped working.
void WorkerTest::UnstorableResultFailsOnlyItsJob(absl::Duration transaction_budget,
                                                 std::string bad_result) {
  NewJob bad = MakeJob("bad");
  bad.options.max_attempts = 1;
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult bad_job, queue_->Enqueue(bad));
  for (int i = 0; i < 20; ++i) ASSERT_THAT(queue_->Enqueue(MakeJob("good")).status(), IsOk());
  WorkerOptions options = Options(2);
  options.transaction_budget = transaction_budget;
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  std::atomic<int> bad_runs{0};
  ASSERT_THAT(worker->Register("bad",
                               [&](JobContext&) -> absl::StatusOr<std::string> {
                                 ++bad_runs;
                                 return bad_result;
                               }),
              IsOk());
  ASSERT_THAT(
      worker->Register("good",
                       [](JobContext&) -> absl::StatusOr<std::string> { return std::string("1"); }),
      IsOk());
  RunUntil(*worker, [&] {
    return CountWhere("status = 'completed'") == 20 && CountWhere("status = 'failed'") == 1;
  });
  EXPECT_EQ(bad_runs.load(), 1);
  JQ_ASSERT_OK_AND_ASSIGN(Job row, queue_->Get(bad_job.id));
  EXPECT_EQ(row.status, JobStatus::kFailed);
  EXPECT_EQ(row.attempts, 1);
  EXPECT_THAT(row.last_error, HasSubstr("result"));
  EXPECT_EQ(worker->stats().completed, 20);
}

TEST_F(WorkerTest, NulEscapeInAResultFailsOnlyItsJob) {
  UnstorableResultFailsOnlyItsJob(absl::ZeroDuration(), R"({"s": "a\u0000b"})");
}

TEST_F(WorkerTest, NulEscapeInAHeldResultFailsOnlyItsJob) {
  UnstorableResultFailsOnlyItsJob(absl::Seconds(1), R"({"s": "a\u0000b"})");
}

// A number numeric cannot hold is caught before sending, like \u0000.
TEST_F(WorkerTest, NumberOutsideNumericInAResultFailsOnlyItsJob) {
  UnstorableResultFailsOnlyItsJob(absl::ZeroDuration(), "1." + std::string(20000, '9'));
}

// A value no client-side check catches (here an operator's CHECK on the table): the batch is
// retried one by one so the bad completion fails alone.
TEST_F(WorkerTest, ResultPostgresRefusesFailsOnlyItsJob) {
  RefuseResultInTheTable(R"("refused by a table check")");
  UnstorableResultFailsOnlyItsJob(absl::ZeroDuration(), R"("refused by a table check")");
}

TEST_F(WorkerTest, HeldResultPostgresRefusesFailsOnlyItsJob) {
  RefuseResultInTheTable(R"("refused by a table check")");
  UnstorableResultFailsOnlyItsJob(absl::Seconds(1), R"("refused by a table check")");
}

// A refused settle goes row by row, and in between another transaction can take a row (here a
// session waiting to lock the slow job's row): that job is not this worker's any more. Its run
// here must not be written (it was, under a lease the worker made up, and counted lost).
// Whether the waiting session or the settle's relock gets the row first is up to the scheduler;
// a try the relock won shows nothing, so it is tried again, up to five times.
TEST_F(WorkerTest, HeldJobTakenElsewhereDuringARowByRowSettleIsLetGo) {
  RefuseResultInTheTable(R"("refused by a table check")");
  for (int attempt = 1; attempt <= 5; ++attempt) {
    const bool shown = TakeAHeldJobDuringARowByRowSettle();
    if (HasFailure() || shown) return;
  }
  ADD_FAILURE() << "the settle's relock took the row first in all five tries";
}

bool WorkerTest::TakeAHeldJobDuringARowByRowSettle() {
  absl::StatusOr<EnqueueResult> bad = queue_->Enqueue(MakeJob("bad"));
  absl::StatusOr<EnqueueResult> slow_job = queue_->Enqueue(MakeJob("slow"));
  if (!bad.ok() || !slow_job.ok()) {
    ADD_FAILURE() << "enqueue: " << bad.status() << " " << slow_job.status();
    return false;
  }
  WorkerOptions options = Options(2);
  options.transaction_budget = absl::Seconds(1);
  SlowJobs slow;
  std::unique_ptr<Worker> worker = SlowHeldWorker(options, slow);
  EXPECT_THAT(worker->Register("bad",
                               [](JobContext&) -> absl::StatusOr<std::string> {
                                 return std::string(R"("refused by a table check")");
                               }),
              IsOk());
  Running running(*worker);
  EXPECT_TRUE(Eventually([&] { return slow.runs.load() == 1; }));

  // A session that waits for the slow job's row, locked by the held batch.
  absl::Notification let_go;
  std::atomic<bool> locked{false};
  std::thread locker([&] {
    PGconn* conn = PQconnectdb(std::string(TestDatabaseUrl().Reveal()).c_str());
    PQclear(PQexec(conn, "BEGIN"));
    PGresult* row = PQexec(conn, absl::StrCat("SELECT id FROM ", schema_.name(),
                                              ".job_queue WHERE id = ", slow_job->id, " FOR UPDATE")
                                     .c_str());
    locked = PQresultStatus(row) == PGRES_TUPLES_OK && PQntuples(row) == 1;
    PQclear(row);
    let_go.WaitForNotificationWithTimeout(absl::Seconds(60));
    PQclear(PQexec(conn, "ROLLBACK"));
    PQfinish(conn);
  });
  EXPECT_TRUE(Eventually([&] {
    return schema_.Query(absl::StrCat("SELECT count(*) FROM pg_stat_activity WHERE "
                                      "wait_event_type = 'Lock' AND query LIKE '%",
                                      schema_.name(), ".job_queue WHERE id = %'")) == "1";
  }));
  // At the budget the settle is refused (the bad result) and rolled back; the waiting session
  // takes the slow job's row before the rows are locked again, or the relock got there first
  // and kept it (processing).
  EXPECT_TRUE(Eventually([&] { return locked.load(); }));
  const std::string slow_id = absl::StrCat("id = ", slow_job->id);
  if (CountWhere(slow_id + " AND status = 'processing'") == 1) {
    slow.release = true;
    let_go.Notify();
    locker.join();
    EXPECT_THAT(running.Stop(), IsOk());
    return false;
  }
  EXPECT_TRUE(Eventually(
      [&] { return CountWhere(absl::StrCat("id = ", bad->id, " AND status = 'failed'")) == 1; }));
  absl::StatusOr<Job> bad_row = queue_->Get(bad->id);
  EXPECT_THAT(bad_row.ok() ? bad_row->last_error : "", HasSubstr("result refused"));
  slow.release = true;
  absl::SleepFor(absl::Milliseconds(300));  // its run ends and would be written by now
  EXPECT_EQ(worker->stats().lost, 0);
  EXPECT_THAT(running.Stop(), IsOk());
  let_go.Notify();
  locker.join();
  EXPECT_EQ(slow.runs.load(), 1);
  EXPECT_EQ(CountWhere(slow_id + " AND status = 'pending' AND attempts = 0"), 1);
  return true;
}

// A job handed back at a stop whose release fails is forgotten, processing under the worker's
// id: the stop's last look for orphans must release it (it never looked: the job waited for
// the reaper).
TEST_F(WorkerTest, AHandBackRefusedAtAStopIsReleasedByItsLastLook) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue_->Enqueue(MakeJob("polite")));
  WorkerOptions options = Options(1);
  options.reconnect_min = absl::Milliseconds(10);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  std::atomic<bool> started{false};
  ASSERT_THAT(worker->Register("polite",
                               [&](JobContext& context) -> absl::StatusOr<std::string> {
                                 started = true;
                                 const absl::Time cap = absl::Now() + absl::Seconds(60);
                                 while (!context.stopping() && absl::Now() < cap) {
                                   absl::SleepFor(absl::Milliseconds(5));
                                 }
                                 return absl::CancelledError("stopping");
                               }),
              IsOk());
  Running running(*worker);
  ASSERT_TRUE(Eventually([&] { return started.load(); }));
  // The first hand-back (release_many) fails as in an outage; later statements go through.
  schema_.Query(absl::StrCat("CREATE SEQUENCE ", schema_.name(), ".refuse_once"));
  schema_.AddTrigger("refuse_release_once", "BEFORE UPDATE", "FOR EACH STATEMENT",
                     "IF current_query() LIKE '%attempts = j.attempts - 1%' AND "
                     "nextval('{s}.refuse_once') = 1 THEN RAISE EXCEPTION 'release refused' "
                     "USING ERRCODE = '57P03'; END IF; RETURN NULL;");
  EXPECT_THAT(running.Stop(), IsOk());
  EXPECT_EQ(schema_.Query(absl::StrCat("SELECT last_value FROM ", schema_.name(), ".refuse_once")),
            "1");
  JQ_ASSERT_OK_AND_ASSIGN(Job row, queue_->Get(added.id));
  EXPECT_EQ(row.status, JobStatus::kPending);
  EXPECT_EQ(row.attempts, 0);
}

// A failure Postgres refuses for good (even without its error text) must not hold its slot and
// be retried forever: the worker lets it go (the reaper will find it) and works on. Capacity 1,
// so before, the next job never ran.
TEST_F(WorkerTest, AFailureThatCannotBeRecordedDoesNotHoldItsSlot) {
  schema_.Query("ALTER TABLE " + schema_.name() +
                ".job_queue ADD CONSTRAINT no_errors CHECK (last_error IS NULL)");
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult failing, queue_->Enqueue(MakeJob("boom")));
  WorkerOptions options = Options(1);
  options.batch_size = 1;
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  ASSERT_THAT(worker->Register("boom",
                               [](JobContext&) -> absl::StatusOr<std::string> {
                                 return absl::InternalError("boom");
                               }),
              IsOk());
  RegisterOne(*worker);
  Running running(*worker);
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'processing'") == 1; }));
  ASSERT_THAT(queue_->Enqueue(MakeJob("one")).status(), IsOk());
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'completed'") == 1; }));
  EXPECT_THAT(running.Stop(), IsOk());
  EXPECT_EQ(worker->stats().reconnects, 0);
  JQ_ASSERT_OK_AND_ASSIGN(Job row, queue_->Get(failing.id));
  EXPECT_EQ(row.status, JobStatus::kProcessing);
  EXPECT_EQ(row.attempts, 1);
}

// Only LeaseLostError() means a lost lease; a handler passing on some other ABORTED error (a
// deadlock, a serialization failure) fails its attempt like any error.
TEST_F(WorkerTest, AbortedHandlerErrorIsAFailureNotALostLease) {
  FailThreeTimes(absl::ZeroDuration(), absl::AbortedError("deadlock detected"));
}

TEST_F(WorkerTest, AbortedHandlerErrorInAHeldBatchIsAFailure) {
  FailThreeTimes(absl::Seconds(1), absl::AbortedError("deadlock detected"));
}

// A held job cannot lose its lease (its row is locked by the batch): a handler reporting a lost
// lease fails the attempt instead of leaving the job pending to be claimed again at once.
TEST_F(WorkerTest, LeaseLostFromAHeldJobCountsAsAnAttempt) {
  NewJob job = MakeJob("claims_lost");
  job.options.max_attempts = 2;
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue_->Enqueue(job));
  WorkerOptions options = Options(1);
  options.transaction_budget = absl::Seconds(1);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  std::atomic<int> runs{0};
  ASSERT_THAT(worker->Register("claims_lost",
                               [&](JobContext&) -> absl::StatusOr<std::string> {
                                 ++runs;
                                 return LeaseLostError("handler says so");
                               }),
              IsOk());
  RunUntil(*worker, [&] { return CountWhere("status = 'failed'") == 1; });
  EXPECT_EQ(runs.load(), 2);
  JQ_ASSERT_OK_AND_ASSIGN(Job row, queue_->Get(added.id));
  EXPECT_EQ(row.attempts, 2);
}

// The held batch's connection dies while a handler still runs: the batch rolls back (the job
// is pending again), the worker must not start it a second time while the first run goes on,
// and a stop with that handler past the deadline must not crash (it did: the job was not in
// held_).
TEST_F(WorkerTest, HeldBatchLostMidRunNeitherRunsTheJobTwiceNorCrashesTheStop) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue_->Enqueue(MakeJob("slow")));
  WorkerOptions options = Options(1);
  options.transaction_budget = absl::Seconds(1);
  options.shutdown_timeout = absl::Milliseconds(100);
  SlowJobs slow;  // runs until the test lets it go, past the stop's deadline
  std::unique_ptr<Worker> worker = SlowHeldWorker(options, slow);
  absl::Status run_status;
  std::thread runner([&] { run_status = worker->Run(); });
  EndHeldBatchMidRun(*worker, slow);
  // Pending again; later rounds claim it and must leave it alone while its run goes on.
  EXPECT_TRUE(Eventually([&] { return worker->stats().claims >= 3; }));
  worker->Stop();
  absl::SleepFor(absl::Milliseconds(300));  // past shutdown_timeout (100 ms) before it returns
  slow.release = true;
  runner.join();
  EXPECT_THAT(run_status, IsOk());
  EXPECT_EQ(slow.runs.load(), 1);
  JQ_ASSERT_OK_AND_ASSIGN(Job row, queue_->Get(added.id));
  EXPECT_EQ(row.status, JobStatus::kPending);
  EXPECT_EQ(row.attempts, 0);
}

// After a held batch rolled back, a handler of it that still runs keeps its thread: the worker
// must not claim jobs for that thread (they waited locked in its batch, then as leases, while
// another worker could have run them). Capacity 2 (concurrency 1): one slot is busy.
TEST_F(WorkerTest, HandlerOfARolledBackHeldBatchStillTakesASlot) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult first, queue_->Enqueue(MakeJob("slow")));
  WorkerOptions options = Options(1);
  options.transaction_budget = absl::Milliseconds(300);
  options.poll_interval = absl::Milliseconds(20);
  SlowJobs slow;
  std::unique_ptr<Worker> worker = SlowHeldWorker(options, slow);
  Running running(*worker);
  EndHeldBatchMidRun(*worker, slow);
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult second, queue_->Enqueue(MakeJob("slow")));
  // Rounds after the enqueue: each looked at both due jobs.
  const int64_t claims = worker->stats().claims;
  EXPECT_TRUE(Eventually([&] { return worker->stats().claims >= claims + 3; }));

  ClaimRequest request;
  request.worker_id = "test";
  request.limit = 2;
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> claimed, queue_->Claim(request));
  std::vector<int64_t> ids;
  for (const Lease& lease : claimed) ids.push_back(lease.job_id);
  EXPECT_THAT(ids, ::testing::UnorderedElementsAre(first.id, second.id));
  slow.release = true;
  EXPECT_THAT(running.Stop(), IsOk());
  EXPECT_EQ(slow.runs.load(), 1);
}

// While a held batch waits out its budget, this worker's other leases still get their heartbeats
// (the dispatcher used to wait the whole budget: with a short stale timeout, a kept lease that
// still ran was reaped).
TEST_F(WorkerTest, HeartbeatsGoOnWhileAHeldBatchWaits) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult first, queue_->Enqueue(MakeJob("slow")));
  WorkerOptions options = Options(2);
  options.transaction_budget = absl::Seconds(2);
  options.heartbeat_interval = absl::Milliseconds(100);
  SlowJobs slow;
  std::unique_ptr<Worker> worker = SlowHeldWorker(options, slow);
  Running running(*worker);
  // Past its batch's budget the first job is an ordinary lease; the second's batch then waits.
  ASSERT_TRUE(Eventually([&] { return CountWhere("status = 'processing'") == 1; }));
  ASSERT_THAT(queue_->Enqueue(MakeJob("slow")).status(), IsOk());
  ASSERT_TRUE(Eventually([&] { return slow.runs.load() == 2; }));
  const std::string heartbeat =
      absl::StrCat("SELECT heartbeat_at FROM ", schema_.name(), ".job_queue WHERE id = ", first.id);
  const std::string before = schema_.Query(heartbeat);
  absl::SleepFor(absl::Milliseconds(700));
  EXPECT_NE(schema_.Query(heartbeat), before);
  EXPECT_EQ(CountWhere("status = 'processing'"), 1);  // the second is still held
  slow.release = true;
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'completed'") == 2; }));
  EXPECT_THAT(running.Stop(), IsOk());
}

// A stop ends a held batch's wait: jobs running become leases and finish, jobs not started are
// left pending, untouched (they used to run at the stop, or be written and handed back).
TEST_F(WorkerTest, AStopLeavesAHeldBatchsUnstartedJobsUntouched) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult first, queue_->Enqueue(MakeJob("slow")));
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult second, queue_->Enqueue(MakeJob("slow")));
  WorkerOptions options = Options(1);
  options.batch_size = 2;
  options.transaction_budget = absl::Seconds(10);
  SlowJobs slow;
  std::unique_ptr<Worker> worker = SlowHeldWorker(options, slow);
  Running running(*worker);
  ASSERT_TRUE(Eventually([&] { return slow.runs.load() == 1; }));
  std::thread stopper([&] { EXPECT_THAT(running.Stop(), IsOk()); });
  // The settle turns the running job into a lease before it may finish.
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'processing'") == 1; }));
  slow.release = true;
  stopper.join();
  EXPECT_EQ(slow.runs.load(), 1);
  JQ_ASSERT_OK_AND_ASSIGN(Job ran, queue_->Get(first.id));
  EXPECT_EQ(ran.status, JobStatus::kCompleted);
  JQ_ASSERT_OK_AND_ASSIGN(Job left, queue_->Get(second.id));
  EXPECT_EQ(left.status, JobStatus::kPending);
  EXPECT_EQ(left.attempts, 0);
  EXPECT_EQ(left.updated_at, left.created_at);
}

// A due job locked by another worker's held batch: an idle worker must wait between looks, not
// spin (it made thousands of claim round trips a second).
TEST_F(WorkerTest, IdleWorkerDoesNotSpinOnADueJobLockedElsewhere) {
  ASSERT_THAT(queue_->Enqueue(MakeJob("held")).status(), IsOk());
  WorkerOptions holder_options = Options(1);
  holder_options.transaction_budget = absl::Seconds(3);
  JQ_ASSERT_OK_AND_ASSIGN(auto holder, Worker::Create(queue_.get(), holder_options));
  std::atomic<bool> started{false};
  RegisterSleeper(*holder, "held", absl::Milliseconds(1500), started, "1");
  absl::Status holder_status;
  std::thread holder_runner([&] { holder_status = holder->Run(); });
  ASSERT_TRUE(Eventually([&] { return started.load(); }));

  WorkerOptions idle_options = Options(1);
  idle_options.poll_interval = absl::Seconds(10);
  JQ_ASSERT_OK_AND_ASSIGN(auto idle, Worker::Create(queue_.get(), idle_options));
  ASSERT_THAT(
      idle->Register("held",
                     [](JobContext&) -> absl::StatusOr<std::string> { return std::string("2"); }),
      IsOk());
  absl::Status idle_status;
  std::thread idle_runner([&] { idle_status = idle->Run(); });
  absl::SleepFor(absl::Milliseconds(500));
  const int64_t claims = idle->stats().claims;
  idle->Stop();
  idle_runner.join();
  EXPECT_THAT(idle_status, IsOk());
  EXPECT_LT(claims, 100);
  EXPECT_EQ(idle->stats().completed, 0);
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'completed'") == 1; }));
  holder->Stop();
  holder_runner.join();
  EXPECT_THAT(holder_status, IsOk());
}

// A heartbeat that finds a queued job's lease gone (recovered and taken by another worker)
// drops it: it must not run here.
TEST_F(WorkerTest, QueuedJobWhoseLeaseIsLostIsNotStarted) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult first, queue_->Enqueue(MakeJob("first")));
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult second, queue_->Enqueue(MakeJob("second")));
  WorkerOptions options = Options(1);
  options.batch_size = 2;
  options.heartbeat_interval = absl::Milliseconds(50);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  std::atomic<bool> release{false};
  std::atomic<int> second_runs{0};
  ASSERT_THAT(worker->Register("first",
                               [&](JobContext&) -> absl::StatusOr<std::string> {
                                 while (!release.load()) absl::SleepFor(absl::Milliseconds(5));
                                 return std::string("1");
                               }),
              IsOk());
  ASSERT_THAT(worker->Register("second",
                               [&](JobContext&) -> absl::StatusOr<std::string> {
                                 ++second_runs;
                                 return std::string("2");
                               }),
              IsOk());
  absl::Status run_status;
  std::thread runner([&] { run_status = worker->Run(); });
  ASSERT_TRUE(Eventually([&] { return CountWhere("status = 'processing'") == 2; }));
  schema_.Query(absl::StrCat("UPDATE ", schema_.name(),
                             ".job_queue SET locked_by = 'another-worker' WHERE id = ", second.id));
  EXPECT_TRUE(Eventually([&] { return worker->stats().lost == 1; }));
  release = true;
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'completed'") == 1; }));
  worker->Stop();
  runner.join();
  EXPECT_THAT(run_status, IsOk());
  EXPECT_EQ(second_runs.load(), 0);
  JQ_ASSERT_OK_AND_ASSIGN(Job row, queue_->Get(second.id));
  EXPECT_EQ(row.status, JobStatus::kProcessing);
  EXPECT_EQ(row.locked_by, "another-worker");
  JQ_ASSERT_OK_AND_ASSIGN(Job done, queue_->Get(first.id));
  EXPECT_EQ(done.status, JobStatus::kCompleted);
}

// A claim the server committed but whose reply the worker never got (the connection broke)
// leaves a job processing under the worker's id that the worker does not hold. Once the
// database answers again the worker hands such jobs back instead of leaving them to the
// reaper's 30 minutes. Here the orphan is made by claiming under the worker's id directly.
TEST_F(WorkerTest, ClaimsLostInAnOutageAreReleasedWhenTheDatabaseAnswers) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult orphan, queue_->Enqueue(MakeJob("job")));
  WorkerOptions options = Options(1);
  options.worker_id = absl::StrCat("orphan-test-", schema_.name());
  options.poll_interval = absl::Milliseconds(50);
  options.reconnect_min = absl::Milliseconds(10);
  ClaimRequest request;
  request.worker_id = options.worker_id;
  request.limit = 1;
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> claimed, queue_->Claim(request));
  ASSERT_EQ(claimed.size(), 1u);

  PgOptions worker_queue_options;
  worker_queue_options.application_name = absl::StrCat("orphan-", schema_.name());
  std::unique_ptr<PgQueue> worker_queue = schema_.OpenQueue(4, worker_queue_options);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(worker_queue.get(), options));
  std::atomic<int> runs{0};
  ASSERT_THAT(worker->Register("job",
                               [&](JobContext&) -> absl::StatusOr<std::string> {
                                 ++runs;
                                 return std::string("1");
                               }),
              IsOk());
  absl::Status run_status;
  std::thread runner([&] { run_status = worker->Run(); });
  ASSERT_TRUE(Eventually([&] { return worker->stats().claims >= 2; }));
  EXPECT_EQ(runs.load(), 0);  // not ours as far as the worker knows
  // The outage must hit a claim in flight (one on an idle connection is simply redone): a
  // table lock holds the next claim until its backend is killed.
  PGconn* holder = schema_.Connect();
  PQclear(PQexec(holder, "BEGIN"));
  PQclear(PQexec(
      holder,
      absl::StrCat("LOCK TABLE ", schema_.name(), ".job_queue IN ACCESS EXCLUSIVE MODE").c_str()));
  const std::string worker_backends =
      absl::StrCat("FROM pg_stat_activity WHERE application_name = '",
                   worker_queue_options.application_name, "'");
  ASSERT_TRUE(Eventually([&] {
    // The idle worker's look for the next due job may be the one waiting: ending it makes no
    // outage (its error is ignored and the pool replaces the connection), so it is ended until
    // the claim itself waits. A claim is told by its CTE `next`: its SKIP LOCKED lies past the
    // 1 kB of query text pg_stat_activity keeps.
    schema_.Query(absl::StrCat("SELECT count(pg_terminate_backend(pid)) ", worker_backends,
                               " AND wait_event_type = 'Lock' AND query NOT LIKE '%next AS (%'"));
    return schema_.Query(absl::StrCat("SELECT count(*) ", worker_backends,
                                      " AND wait_event_type = 'Lock'",
                                      " AND query LIKE '%next AS (%'")) != "0";
  }));
  schema_.Query(absl::StrCat("SELECT count(pg_terminate_backend(pid)) ", worker_backends));
  PQclear(PQexec(holder, "COMMIT"));
  PQfinish(holder);
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'completed'") == 1; }));
  worker->Stop();
  runner.join();
  EXPECT_THAT(run_status, IsOk());
  EXPECT_EQ(runs.load(), 1);
  JQ_ASSERT_OK_AND_ASSIGN(Job row, queue_->Get(orphan.id));
  EXPECT_EQ(row.attempts, 1);  // the lost claim's attempt was given back
  EXPECT_GE(worker->stats().reconnects, 1);
}

// As above, the orphan made by claiming under the worker's id directly; here every claim of
// the worker fails until it stops (a trigger refuses its connections' claims while
// claims_refused has a row), so no round succeeds before the stop: the stop releases it.
TEST_F(WorkerTest, ClaimsLostInAnOutageStillGoingAtStopAreReleasedByTheStop) {
  const std::string s = schema_.name();
  const std::string worker_id = absl::StrCat("orphan-stop-", s);
  const int64_t orphan = ClaimUnderAndRefuseClaimsOf(worker_id, "orphan-stop");
  schema_.Query(absl::StrCat("INSERT INTO ", s, ".claims_refused VALUES (true)"));
  WorkerOptions options = Options(1);
  options.worker_id = worker_id;
  options.reconnect_min = absl::Milliseconds(10);
  PgOptions worker_queue_options;
  worker_queue_options.application_name = "orphan-stop";
  std::unique_ptr<PgQueue> worker_queue = schema_.OpenQueue(4, worker_queue_options);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(worker_queue.get(), options));
  RegisterOne(*worker);
  absl::Status run_status;
  std::thread runner([&] { run_status = worker->Run(); });
  ASSERT_TRUE(Eventually([&] { return worker->stats().reconnects >= 2; }));
  worker->Stop();
  runner.join();
  EXPECT_THAT(run_status, IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(Job row, queue_->Get(orphan));
  EXPECT_EQ(row.status, JobStatus::kPending);
  EXPECT_EQ(row.attempts, 0);
  EXPECT_EQ(worker->stats().completed, 0);
}

// While the statement that releases lost claims waits (here on a row lock a session holds on
// the orphan), the worker's running job still finishes and its completion is written.
TEST_F(WorkerTest, JobsFinishWhileLostClaimsWaitToBeReleased) {
  const std::string s = schema_.name();
  const std::string worker_id = absl::StrCat("orphan-wait-", s);
  const int64_t orphan = ClaimUnderAndRefuseClaimsOf(worker_id, "orphan-wait");
  PGconn* locker = schema_.Connect();
  PQclear(PQexec(locker, "BEGIN"));
  PQclear(PQexec(
      locker,
      absl::StrCat("SELECT id FROM ", s, ".job_queue WHERE id = ", orphan, " FOR UPDATE").c_str()));
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult job, queue_->Enqueue(MakeJob("job")));
  WorkerOptions options = Options(2);
  options.dispatchers = 2;
  options.worker_id = worker_id;
  options.poll_interval = absl::Milliseconds(50);
  options.reconnect_min = absl::Milliseconds(10);
  PgOptions worker_queue_options;
  worker_queue_options.application_name = "orphan-wait";
  std::unique_ptr<PgQueue> worker_queue = schema_.OpenQueue(6, worker_queue_options);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(worker_queue.get(), options));
  std::atomic<int> started{0};
  absl::Notification finish;
  ASSERT_THAT(worker->Register("job",
                               [&](JobContext&) -> absl::StatusOr<std::string> {
                                 ++started;
                                 finish.WaitForNotificationWithTimeout(absl::Seconds(60));
                                 return std::string("1");
                               }),
              IsOk());
  absl::Status run_status;
  std::thread runner([&] { run_status = worker->Run(); });
  ASSERT_TRUE(Eventually([&] { return started.load() == 1; }));
  // A claim fails while the job runs, so claims may have been lost; once claims work again
  // the worker releases such jobs, which waits for the locker.
  schema_.Query(absl::StrCat("INSERT INTO ", s, ".claims_refused VALUES (true)"));
  ASSERT_TRUE(Eventually([&] { return worker->stats().reconnects >= 1; }));
  schema_.Query(absl::StrCat("DELETE FROM ", s, ".claims_refused"));
  ASSERT_TRUE(Eventually([&] {
    return schema_.Query(absl::StrCat(
               "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'orphan-wait' "
               "AND wait_event_type = 'Lock' AND query LIKE '%NOT EXISTS%'")) == "1";
  }));
  finish.Notify();
  EXPECT_TRUE(Eventually(
      [&] { return CountWhere(absl::StrCat("id = ", job.id, " AND status = 'completed'")) == 1; },
      absl::Seconds(15)));
  EXPECT_EQ(CountWhere(absl::StrCat("id = ", orphan, " AND status = 'processing'")), 1);
  PQclear(PQexec(locker, "COMMIT"));
  PQfinish(locker);
  EXPECT_TRUE(Eventually([&] {
    return CountWhere(absl::StrCat("id = ", orphan, " AND status = 'pending' AND attempts = 0")) ==
           1;
  }));
  worker->Stop();
  runner.join();
  EXPECT_THAT(run_status, IsOk());
}

TEST_F(WorkerTest, HeldJobOutlivingTheBudgetBecomesAProcessingLease) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue_->Enqueue(MakeJob("long")));
  WorkerOptions options = Options(1);
  options.transaction_budget = absl::Milliseconds(100);
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), options));
  std::atomic<bool> release{false};
  ASSERT_THAT(worker->Register("long",
                               [&](JobContext&) -> absl::StatusOr<std::string> {
                                 while (!release.load()) absl::SleepFor(absl::Milliseconds(5));
                                 return std::string("\"late\"");
                               }),
              IsOk());
  absl::Status run_status;
  std::thread runner([&] { run_status = worker->Run(); });
  EXPECT_TRUE(Eventually([&] {
    return CountWhere(absl::StrCat("status = 'processing' AND attempts = 1 AND locked_by = '",
                                   worker->worker_id(), "' AND heartbeat_at IS NOT NULL")) == 1;
  }));
  release = true;
  EXPECT_TRUE(Eventually([&] { return CountWhere("status = 'completed'") == 1; }));
  worker->Stop();
  runner.join();
  EXPECT_THAT(run_status, IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(Job row, queue_->Get(added.id));
  EXPECT_EQ(row.result_json, "\"late\"");
  EXPECT_EQ(row.attempts, 1);
  EXPECT_EQ(worker->stats().completed, 1);
  EXPECT_EQ(worker->stats().lost, 0);
}

TEST_F(WorkerTest, HeldBatchFailuresRetryThenFail) { FailThreeTimes(absl::Seconds(1)); }

TEST_F(WorkerTest, RejectsBadOptionsAndRegistrations) {
  WorkerOptions options = Options();
  options.concurrency = 0;
  EXPECT_THAT(Worker::Create(queue_.get(), options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("concurrency")));
  options = Options();
  options.transaction_budget = absl::Seconds(11);
  EXPECT_THAT(Worker::Create(queue_.get(), options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("transaction budget")));
  {
    PgOptions short_idle;
    short_idle.held_batch_idle_timeout = absl::Seconds(2);
    std::unique_ptr<PgQueue> queue = schema_.OpenQueue(2, short_idle);
    options.transaction_budget = absl::Seconds(1);
    EXPECT_THAT(Worker::Create(queue.get(), options).status(), IsOk());
    options.transaction_budget = absl::Milliseconds(1500);
    EXPECT_THAT(Worker::Create(queue.get(), options).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("held_batch_idle_timeout")));
  }
  // Refused by Postgres on every claim: Run() retried that forever instead of saying so.
  for (const std::string& id : {std::string("w\xff"), std::string("w\0other", 7)}) {
    options = Options();
    options.worker_id = id;
    EXPECT_THAT(Worker::Create(queue_.get(), options).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("worker id")));
  }
  options = Options();
  options.queue = "bad queue'; --";
  EXPECT_THAT(Worker::Create(queue_.get(), options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  JQ_ASSERT_OK_AND_ASSIGN(auto worker, Worker::Create(queue_.get(), Options()));
  auto noop = [](JobContext&) -> absl::StatusOr<std::string> { return std::string("null"); };
  EXPECT_THAT(worker->Register("", noop), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(worker->Register("ok", noop), IsOk());
  EXPECT_THAT(worker->Register("ok", noop), StatusIs(absl::StatusCode::kAlreadyExists));
  JQ_ASSERT_OK_AND_ASSIGN(auto empty, Worker::Create(queue_.get(), Options()));
  EXPECT_THAT(empty->Run(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(WorkerTest, RetentionCleanerDeletesOnlyOldFinishedJobs) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult old_job, queue_->Enqueue(MakeJob("r")));
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult fresh_job, queue_->Enqueue(MakeJob("r")));
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult pending_job, queue_->Enqueue(MakeJob("r")));
  schema_.Query(absl::StrCat("UPDATE ", schema_.name(),
                             ".job_queue SET status = 'completed', finished_at = now() - "
                             "interval '10 days' WHERE id = ",
                             old_job.id));
  schema_.Query(absl::StrCat(
      "UPDATE ", schema_.name(),
      ".job_queue SET status = 'completed', finished_at = now() WHERE id = ", fresh_job.id));
  RetentionCleaner cleaner(queue_.get(), PurgeOptions{});
  JQ_ASSERT_OK_AND_ASSIGN(int64_t deleted, cleaner.RunOnce());
  EXPECT_EQ(deleted, 1);
  EXPECT_THAT(queue_->Get(old_job.id).status(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(queue_->Get(fresh_job.id).status(), IsOk());
  EXPECT_THAT(queue_->Get(pending_job.id).status(), IsOk());
}

// A pass stops at max_batches. The running cleaner starts the next pass at once, not an
// interval (an hour by default) later, so a backlog bigger than one pass still drains.
TEST_F(WorkerTest, RetentionCleanerDrainsABacklogBiggerThanOnePass) {
  for (int i = 0; i < 30; ++i) ASSERT_THAT(queue_->Enqueue(MakeJob("r")).status(), IsOk());
  schema_.Query(absl::StrCat("UPDATE ", schema_.name(),
                             ".job_queue SET status = 'completed', finished_at = now() - "
                             "interval '10 days'"));
  PurgeOptions options;
  options.batch_size = 2;
  options.max_batches = 3;
  RetentionCleaner cleaner(queue_.get(), options, absl::Hours(1));
  ASSERT_THAT(cleaner.Start(), IsOk());
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while ((cleaner.total_deleted() < 30 || cleaner.last_pass_left_more()) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  cleaner.Stop();
  EXPECT_EQ(cleaner.total_deleted(), 30);
  EXPECT_FALSE(cleaner.last_pass_left_more());
  EXPECT_GE(cleaner.passes(), 5);
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + schema_.name() + ".job_queue"), "0");
}

}  // namespace
}  // namespace jobqueue
