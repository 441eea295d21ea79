#include "jobqueue/pg_queue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/notification.h"
#include "internal/resolve.h"
#include "jobqueue/json.h"
#include "pg/connection.h"
#include "pg/queue_sql.h"
#include "testing/eventually.h"
#include "testing/pg_fixture.h"
#include "testing/status_matchers.h"

namespace jobqueue {
namespace {

using ::jobqueue::testing::IsOk;
using ::jobqueue::testing::StatusIs;
using ::jobqueue::testing::TestSchema;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// A schema named as long as allowed (40 bytes): `base`'s name padded with `fill`. Dropped at
// the end of the test.
struct LongestSchema {
  LongestSchema(const testing::TestSchema& base, char fill) : base(base), name(base.name() + "_") {
    name.resize(40, fill);
  }
  ~LongestSchema() { base.Query("DROP SCHEMA IF EXISTS " + name + " CASCADE"); }
  const testing::TestSchema& base;
  std::string name;
};

bool ExecOk(PGconn* conn, const std::string& sql) {
  PGresult* result = PQexec(conn, sql.c_str());
  const bool ok =
      PQresultStatus(result) == PGRES_COMMAND_OK || PQresultStatus(result) == PGRES_TUPLES_OK;
  PQclear(result);
  return ok;
}

class PgQueueTest : public ::testing::Test {
 protected:
  NewJob Job(std::string type, std::string payload = R"({"n": 1})") {
    NewJob job;
    job.job_type = std::move(type);
    job.payload_json = std::move(payload);
    return job;
  }
  // Enqueues n jobs of `type`; their ids in order.
  std::vector<int64_t> EnqueueN(int n, const std::string& type = "t") {
    std::vector<int64_t> ids;
    for (int i = 0; i < n; ++i) {
      absl::StatusOr<EnqueueResult> added = queue_->Enqueue(Job(type));
      EXPECT_THAT(added.status(), IsOk());
      if (added.ok()) ids.push_back(added->id);
    }
    return ids;
  }
  // A queue on this schema whose connections start with a server setting (`name%3Dvalue`,
  // %-encoded for the URL's libpq options), named `app_prefix` + schema in pg_stat_activity.
  absl::StatusOr<std::unique_ptr<PgQueue>> OpenWithServerSetting(absl::string_view setting,
                                                                 absl::string_view app_prefix,
                                                                 PgOptions* options) {
    std::string url(testing::TestDatabaseUrl().Reveal());
    absl::StrAppend(&url, absl::StrContains(url, "?") ? "&" : "?", "options=-c%20", setting);
    options->schema = schema_.name();
    options->application_name = absl::StrCat(app_prefix, schema_.name());
    return PgQueue::Open(Secret(url), *options);
  }
  ClaimRequest Request(int limit = 1, std::string worker = "w1") {
    ClaimRequest request;
    request.worker_id = std::move(worker);
    request.limit = limit;
    return request;
  }
  // The reaper recovers `lease` alone (its heartbeat made an hour old) and `worker` claims the
  // job again (nothing else may be pending). Returns the new lease.
  Lease RecoverAndClaimAgain(const Lease& lease, const std::string& worker) {
    schema_.Query(absl::StrCat(
        "UPDATE ", schema_.name(),
        ".job_queue SET heartbeat_at = now() - interval '1 hour' WHERE id = ", lease.job_id));
    RecoverOptions recover;
    recover.stale_after = absl::Minutes(30);
    absl::StatusOr<RecoverResult> recovered = queue_->RecoverStale(recover);
    EXPECT_THAT(recovered, IsOk());
    EXPECT_EQ(recovered.ok() ? recovered->jobs.size() : 0u, 1u);
    absl::StatusOr<std::vector<Lease>> again = queue_->Claim(Request(1, worker));
    if (!again.ok() || again->size() != 1 || (*again)[0].job_id != lease.job_id) {
      ADD_FAILURE() << "not claimed again: " << again.status();
      return Lease();
    }
    return (*again)[0];
  }
  // 8 threads enqueue one job at a time, one of them sometimes a job Postgres refuses.
  void ExpectConcurrentEnqueuesShareStatements(std::unique_ptr<PgQueue> queue);
  TestSchema schema_;
  std::unique_ptr<PgQueue> queue_ = schema_.OpenQueue();
};

// libpq quotes what it cannot parse, which may be the password or the whole URL: the error
// says what is wrong without it, and a malformed string is bad input, not a server outage.
TEST(PgQueueOpenTest, MalformedConnectionStringsNeverEchoThePassword) {
  for (const char* url : {"postgresql://jobqueue:s3cr%zz-PASSWORD@127.0.0.1:1/x",
                          "postgresql://jobqueue:WRONGPASSWORD@[::1:1/x",
                          "host=127.0.0.1 port=1 password=abc PASSWORDTAIL",
                          "host=127.0.0.1 password='PASSWORD unterminated"}) {
    const absl::Status status = PgQueue::Open(Secret(url)).status();
    EXPECT_THAT(status,
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("connection string")))
        << url;
    EXPECT_THAT(status.message(), Not(HasSubstr("PASSWORD"))) << url;
  }
}

// libpq ends the user info at the first '@' or '/', the mask at the last '@': an unescaped
// '@' or '/' in a password would be read as host or port, resolved and shown. Refused.
TEST(PgQueueOpenTest, PasswordsThatNeedPercentEncodingAreRefusedUnshown) {
  for (const char* url :
       {"postgresql://app:Sup3r/SECRET@127.0.0.1:1/app",
        "postgresql://app:Sup3r@SECRET@127.0.0.1:1/app", "postgres://app:a/b@c@127.0.0.1:1/app"}) {
    const absl::Status status = PgQueue::Open(Secret(url)).status();
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("percent-encoded")))
        << url;
    EXPECT_THAT(status.message(), AllOf(Not(HasSubstr("SECRET")), Not(HasSubstr("Sup3r")))) << url;
  }
  // Percent-encoded, the same password reaches the server (which refuses it: wrong password).
  EXPECT_THAT(PgQueue::Open(Secret("postgresql://app:Sup3r%2FSECRET@127.0.0.1:1/app")).status(),
              StatusIs(absl::StatusCode::kUnavailable));
}

// libpq's connect_timeout does not cover the host name lookup; ours does. The stand-in lookup
// blocks until the test lets it go, so Open returning first is what bounds it.
TEST(PgQueueOpenTest, ASilentResolverIsBoundedByTheConnectTimeout) {
  auto release = std::make_shared<absl::Notification>();
  internal::SetLookupForTest([release](const char*, const char*, const addrinfo*, addrinfo**) {
    release->WaitForNotificationWithTimeout(absl::Seconds(60));
    return EAI_AGAIN;
  });
  PgOptions options;
  options.connect_timeout = absl::Seconds(1);
  const absl::Status status =
      PgQueue::Open(Secret("postgresql://app:HIDDEN@silent.invalid:5432/app"), options).status();
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("resolving silent.invalid")));
  EXPECT_THAT(status.message(), Not(HasSubstr("HIDDEN")));
  EXPECT_FALSE(release->HasBeenNotified());
  release->Notify();
  internal::SetLookupForTest(nullptr);
  // A name resolves through the real resolver, and libpq connects to what it found.
  std::string by_name(testing::TestDatabaseUrl().Reveal());
  ASSERT_TRUE(absl::StrContains(by_name, "127.0.0.1"));
  absl::StrReplaceAll({{"127.0.0.1", "localhost"}}, &by_name);
  // Open connects once, so a wrong address would fail it.
  EXPECT_THAT(PgQueue::Open(Secret(by_name)).status(), IsOk());
}

// A list of hosts is looked up all at once under the connect timeout too: names that do not
// answer in time, or do not exist, are left out, and the rest keep their own ports.
TEST(PgQueueOpenTest, HostListsAreLookedUpUnderTheConnectTimeout) {
  auto release = std::make_shared<absl::Notification>();
  auto silent_lookups = std::make_shared<std::atomic<int>>(0);
  internal::SetLookupForTest([release, silent_lookups](const char* host, const char* port,
                                                       const addrinfo* hints, addrinfo** out) {
    if (absl::StartsWith(host, "silent")) {
      ++*silent_lookups;
      release->WaitForNotificationWithTimeout(absl::Seconds(60));
      return EAI_AGAIN;
    }
    if (absl::StartsWith(host, "nowhere")) return EAI_NONAME;
    return getaddrinfo(host, port, hints, out);
  });
  PgOptions options;
  options.connect_timeout = absl::Seconds(1);
  const absl::Status status =
      PgQueue::Open(Secret("postgresql://app:HIDDEN@silent1.invalid:5432,silent2.invalid:5433/app"),
                    options)
          .status();
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("resolving silent1.invalid")));
  EXPECT_THAT(status.message(), Not(HasSubstr("HIDDEN")));
  EXPECT_EQ(silent_lookups->load(), 2);

  // The silent and the missing name are dropped with their ports (1, where nothing listens);
  // localhost keeps the server's.
  std::string listed(testing::TestDatabaseUrl().Reveal());
  ASSERT_TRUE(absl::StrContains(listed, "@127.0.0.1:"));
  absl::StrReplaceAll({{"@127.0.0.1:", "@silent3.invalid:1,nowhere.invalid:1,localhost:"}},
                      &listed);
  EXPECT_THAT(PgQueue::Open(Secret(listed), options).status(), IsOk());
  EXPECT_EQ(silent_lookups->load(), 3);
  EXPECT_FALSE(release->HasBeenNotified());
  release->Notify();
  internal::SetLookupForTest(nullptr);
}

// An option value libpq refuses before connecting is bad input too, not an outage to retry.
TEST(PgQueueOpenTest, OptionValuesLibpqRefusesAreInvalidArguments) {
  for (const char* url : {"postgresql://jobqueue:PASSWORD@127.0.0.1:1/x?sslmode=bogus",
                          "host=127.0.0.1 port=abc password=PASSWORD"}) {
    const absl::Status status = PgQueue::Open(Secret(url)).status();
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid"))) << url;
    EXPECT_THAT(status.message(), Not(HasSubstr("PASSWORD"))) << url;
  }
  // Nothing listens on port 1: that one is worth retrying.
  EXPECT_THAT(PgQueue::Open(Secret("postgresql://jobqueue@127.0.0.1:1/x")).status(),
              StatusIs(absl::StatusCode::kUnavailable));
}

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
  EXPECT_EQ(version, 5);
  // Migration 4: inserts notify in their own statements; the table has no trigger left.
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM pg_trigger WHERE tgrelid = '" + schema_.name() +
                          ".job_queue'::regclass"),
            "0");
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

// ReleaseOrphans keeps only the leases the worker holds: a job held under an older lease that
// the reaper recovered and a lost reply claimed again for the same worker is released (the
// lease it holds is refused anyway). Before, rows were kept by job id and that one waited for
// the reaper. Another worker's job and a job held under its current lease stay as they are.
TEST_F(PgQueueTest, ReleaseOrphansKeepsOnlyHeldLeases) {
  const std::vector<int64_t> ids = EnqueueN(3);
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> mine, queue_->Claim(Request(2, "w")));
  ASSERT_EQ(mine.size(), 2u);
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> theirs, queue_->Claim(Request(1, "other")));
  ASSERT_EQ(theirs.size(), 1u);
  RecoverAndClaimAgain(mine[1], "w");
  ASSERT_FALSE(HasFailure());

  JQ_ASSERT_OK_AND_ASSIGN(int64_t released, queue_->ReleaseOrphans("w", mine));
  EXPECT_EQ(released, 1);
  EXPECT_EQ(schema_.Query(absl::StrCat("SELECT string_agg(id || ':' || status || ':' || attempts "
                                       "|| ':' || coalesce(locked_by, '-'), ',' ORDER BY id) FROM ",
                                       schema_.name(), ".job_queue")),
            absl::StrCat(ids[0], ":processing:1:w,", ids[1], ":pending:1:-,", ids[2],
                         ":processing:1:other"));
  EXPECT_THAT(queue_->Complete(mine[0]), IsOk());
  EXPECT_THAT(queue_->ReleaseOrphans("", mine), StatusIs(absl::StatusCode::kInvalidArgument));
}

// ReleaseMany hands back the leases still held, attempts given back, and reports the one
// recovered and claimed by another worker meanwhile, whose row it leaves alone.
TEST_F(PgQueueTest, ReleaseManyGivesBackHeldLeasesAndSkipsLostOnes) {
  const std::vector<int64_t> ids = EnqueueN(3);
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> mine, queue_->Claim(Request(3, "stopping")));
  ASSERT_EQ(mine.size(), 3u);
  const Lease theirs = RecoverAndClaimAgain(mine[1], "other");
  ASSERT_FALSE(HasFailure());

  JQ_ASSERT_OK_AND_ASSIGN(std::vector<int64_t> lost, queue_->ReleaseMany(mine));
  EXPECT_THAT(lost, ElementsAre(mine[1].job_id));
  EXPECT_EQ(schema_.Query(absl::StrCat("SELECT string_agg(id || ':' || status || ':' || attempts "
                                       "|| ':' || coalesce(locked_by, '-'), ',' ORDER BY id) FROM ",
                                       schema_.name(), ".job_queue")),
            absl::StrCat(ids[0], ":pending:0:-,", ids[1], ":processing:2:other,", ids[2],
                         ":pending:0:-"));
  // Leases of two workers in one call: refused, nothing changed.
  EXPECT_THAT(queue_->ReleaseMany({theirs, mine[0]}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("one worker")));
  EXPECT_EQ(schema_.Query(absl::StrCat("SELECT count(*) FROM ", schema_.name(),
                                       ".job_queue WHERE status = 'processing'")),
            "1");
}

// Releases lock their rows in job id order, whatever order the caller passes and the plan
// reads them in, so two over the same leases queue instead of deadlocking. Heartbeats never
// wait for a row lock: a lease whose row is locked elsewhere (its completion in flight) is
// skipped and not lost, so a heartbeat cannot deadlock with a completion. Another session
// holds the third job's row. While a release waits for it, the rows the release has locked
// must be the two below; the rows' versions are laid out in descending id order first, so a
// release locking in the table's order would hold the three above instead.
TEST_F(PgQueueTest, ReleasesLockRowsInJobIdOrderAndHeartbeatsNeverWait) {
  const std::string table = schema_.name() + ".job_queue";
  const std::vector<int64_t> ids = EnqueueN(6);
  for (auto id = ids.rbegin(); id != ids.rend(); ++id) {
    schema_.Query(absl::StrCat("UPDATE ", table, " SET priority = 0 WHERE id = ", *id));
  }
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> leases, queue_->Claim(Request(6, "w1")));
  ASSERT_EQ(leases.size(), 6u);
  std::vector<Lease> shuffled;
  for (int i : {3, 0, 5, 1, 4, 2}) shuffled.push_back(leases[i]);
  // Runs `write` while another session holds ids[2]'s row; returns the rows of `ids` that were
  // locked (ids[2] included) once `write` waited for it.
  auto locked_while_waiting = [&](const std::function<void()>& write) {
    std::unique_ptr<PGconn, decltype(&PQfinish)> holder(schema_.Connect(), &PQfinish);
    EXPECT_TRUE(ExecOk(holder.get(), "BEGIN"));
    EXPECT_TRUE(ExecOk(holder.get(), absl::StrCat("SELECT 1 FROM ", table, " WHERE id = ", ids[2],
                                                  " FOR UPDATE")));
    std::thread writer(write);
    EXPECT_TRUE(testing::Eventually([&] {
      return schema_.Query(
                 absl::StrCat("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                              " AND query LIKE '%fenced AS%' AND query LIKE '%",
                              schema_.name(), "%'")) == "1";
    }));
    const std::string in = absl::StrJoin(ids, ",");
    std::unique_ptr<PGconn, decltype(&PQfinish)> probe(schema_.Connect(), &PQfinish);
    EXPECT_TRUE(ExecOk(probe.get(), "BEGIN"));
    PGresult* free_rows =
        PQexec(probe.get(), absl::StrCat("SELECT id FROM ", table, " WHERE id IN (", in,
                                         ") ORDER BY id FOR UPDATE SKIP LOCKED")
                                .c_str());
    std::set<int64_t> locked(ids.begin(), ids.end());
    EXPECT_EQ(PQresultStatus(free_rows), PGRES_TUPLES_OK) << PQerrorMessage(probe.get());
    for (int row = 0; row < PQntuples(free_rows); ++row) {
      locked.erase(std::stoll(PQgetvalue(free_rows, row, 0)));
    }
    PQclear(free_rows);
    EXPECT_TRUE(ExecOk(probe.get(), "ROLLBACK"));
    EXPECT_TRUE(ExecOk(holder.get(), "ROLLBACK"));
    writer.join();
    return absl::StrJoin(locked, ",");
  };

  schema_.Query("UPDATE " + table + " SET heartbeat_at = now() - interval '1 hour'");
  {
    std::unique_ptr<PGconn, decltype(&PQfinish)> holder(schema_.Connect(), &PQfinish);
    EXPECT_TRUE(ExecOk(holder.get(), "BEGIN"));
    EXPECT_TRUE(ExecOk(holder.get(), absl::StrCat("SELECT 1 FROM ", table, " WHERE id = ", ids[2],
                                                  " FOR UPDATE")));
    // A foreign key's check (a row of another table being written) must not stop a heartbeat.
    std::unique_ptr<PGconn, decltype(&PQfinish)> referrer(schema_.Connect(), &PQfinish);
    EXPECT_TRUE(ExecOk(referrer.get(), "BEGIN"));
    EXPECT_TRUE(ExecOk(referrer.get(), absl::StrCat("SELECT 1 FROM ", table, " WHERE id = ", ids[0],
                                                    " FOR KEY SHARE")));
    std::atomic<bool> returned{false};
    std::thread beat([&] {
      absl::StatusOr<std::vector<int64_t>> lost = queue_->HeartbeatMany(shuffled);
      EXPECT_THAT(lost, IsOk());
      EXPECT_TRUE(lost.ok() && lost->empty());
      returned = true;
    });
    EXPECT_TRUE(testing::Eventually([&] { return returned.load(); }))
        << "HeartbeatMany waited for the locked row";
    EXPECT_TRUE(ExecOk(holder.get(), "ROLLBACK"));
    EXPECT_TRUE(ExecOk(referrer.get(), "ROLLBACK"));
    beat.join();
  }
  EXPECT_EQ(schema_.Query(absl::StrCat("SELECT string_agg(id::text, ',' ORDER BY id) FROM ", table,
                                       " WHERE heartbeat_at > now() - interval '1 minute'")),
            absl::StrJoin(std::vector<int64_t>{ids[0], ids[1], ids[3], ids[4], ids[5]}, ","));

  EXPECT_EQ(locked_while_waiting([&] {
              absl::StatusOr<std::vector<int64_t>> lost = queue_->ReleaseMany(shuffled);
              EXPECT_THAT(lost, IsOk());
              EXPECT_TRUE(lost.ok() && lost->empty());
            }),
            absl::StrJoin(ids.begin(), ids.begin() + 3, ","));
  EXPECT_EQ(schema_.Query("SELECT string_agg(status, ',' ORDER BY id) FROM " + table),
            "pending,pending,pending,pending,pending,pending");
}

// A worker whose CompleteAndClaim reply was lost sends the completions again: one its lease
// already wrote is refused like any lost lease but marked as already completed; leases really
// lost (the job released and claimed again by the same worker at the same attempt, or
// recovered and claimed by another) are not.
TEST_F(PgQueueTest, CompletionSentAgainAfterALostReplyIsMarkedAlreadyCompleted) {
  const std::vector<int64_t> ids = EnqueueN(3);
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> leases, queue_->Claim(Request(3, "w1")));
  ASSERT_EQ(leases.size(), 3u);
  std::vector<PgQueue::Completion> first = {{leases[0], "1"}};
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::CompleteAndClaimResult written,
                          queue_->CompleteAndClaim(first, Request(0, "w1")));
  EXPECT_TRUE(written.lost_job_ids.empty());

  ASSERT_THAT(queue_->Release(leases[1]), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> again, queue_->Claim(Request(1, "w1")));
  ASSERT_EQ(again.size(), 1u);
  ASSERT_EQ(again[0].job_id, leases[1].job_id);
  ASSERT_EQ(again[0].attempt, leases[1].attempt);
  schema_.Query(absl::StrCat(
      "UPDATE ", schema_.name(),
      ".job_queue SET heartbeat_at = now() - interval '1 hour' WHERE id = ", leases[2].job_id));
  RecoverOptions recover;
  recover.stale_after = absl::Minutes(30);
  ASSERT_THAT(queue_->RecoverStale(recover).status(), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> theirs, queue_->Claim(Request(1, "other")));
  ASSERT_EQ(theirs.size(), 1u);

  std::vector<PgQueue::Completion> resent = {{leases[0], "1"}, {leases[1], "1"}, {leases[2], "1"}};
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::CompleteAndClaimResult result,
                          queue_->CompleteAndClaim(resent, Request(0, "w1")));
  EXPECT_THAT(result.lost_job_ids, ElementsAre(ids[0], ids[1], ids[2]));
  EXPECT_THAT(result.already_completed_job_ids, ElementsAre(ids[0]));
  EXPECT_EQ(schema_.Query(absl::StrCat(
                "SELECT string_agg(id || ':' || status || ':' || locked_by, ',' ORDER BY id) FROM ",
                schema_.name(), ".job_queue")),
            absl::StrCat(ids[0], ":completed:w1,", ids[1], ":processing:w1,", ids[2],
                         ":processing:other"));
}

// PgOptions::delete_completed: a completion deletes the row, under the same lease fence; a
// failure or a lost lease leaves the row as without it, and a resend finds the row gone.
TEST_F(PgQueueTest, DeleteCompletedDeletesOnlyRowsCompletedUnderTheirLease) {
  const std::vector<int64_t> ids = EnqueueN(4);
  PgOptions options;
  options.delete_completed = true;
  std::unique_ptr<PgQueue> deleting = schema_.OpenQueue(2, options);
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> leases, deleting->Claim(Request(3, "w1")));
  ASSERT_EQ(leases.size(), 3u);
  auto rows = [&] {
    return schema_.Query(
        absl::StrCat("SELECT string_agg(id || ':' || status || ':' || attempts || "
                     "':' || coalesce(locked_by, '-'), ',' ORDER BY id) FROM ",
                     schema_.name(), ".job_queue"));
  };

  EXPECT_THAT(deleting->Complete(leases[0], R"({"ok": 1})"), IsOk());
  EXPECT_THAT(deleting->Get(ids[0]), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(deleting->Complete(leases[0]), StatusIs(absl::StatusCode::kNotFound));
  std::vector<PgQueue::Completion> second = {{leases[1], "2"}};
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::CompleteAndClaimResult claimed,
                          deleting->CompleteAndClaim(second, Request(1, "w1")));
  EXPECT_TRUE(claimed.lost_job_ids.empty());
  ASSERT_EQ(claimed.claimed.size(), 1u);
  EXPECT_EQ(claimed.claimed[0].job_id, ids[3]);
  JQ_ASSERT_OK_AND_ASSIGN(FailOutcome failed, deleting->Fail(leases[2], "boom", absl::Hours(1)));
  EXPECT_TRUE(failed.will_retry);
  EXPECT_EQ(rows(), absl::StrCat(ids[2], ":pending:1:-,", ids[3], ":processing:1:w1"));

  // Recovered and claimed by another worker: the old lease deletes nothing.
  const Lease stale = claimed.claimed[0];
  const Lease current = RecoverAndClaimAgain(stale, "w2");
  ASSERT_FALSE(HasFailure());
  EXPECT_THAT(deleting->Complete(stale), StatusIs(kLeaseLostCode, HasSubstr("lease lost")));
  std::vector<PgQueue::Completion> late = {{stale, "null"}};
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::CompleteAndClaimResult fenced,
                          deleting->CompleteAndClaim(late, Request(0, "w1")));
  EXPECT_THAT(fenced.lost_job_ids, ElementsAre(ids[3]));
  EXPECT_TRUE(fenced.already_completed_job_ids.empty());
  EXPECT_EQ(rows(), absl::StrCat(ids[2], ":pending:1:-,", ids[3], ":processing:2:w2"));

  std::vector<PgQueue::Completion> done = {{current, "null"}};
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::CompleteAndClaimResult deleted,
                          deleting->CompleteAndClaim(done, Request(0, "w2")));
  EXPECT_TRUE(deleted.lost_job_ids.empty());
  // Sent again after a lost reply: the row is gone, so the job is done.
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::CompleteAndClaimResult resent,
                          deleting->CompleteAndClaim(done, Request(0, "w2")));
  EXPECT_THAT(resent.lost_job_ids, ElementsAre(ids[3]));
  EXPECT_THAT(resent.already_completed_job_ids, ElementsAre(ids[3]));
  EXPECT_EQ(rows(), absl::StrCat(ids[2], ":pending:1:-"));
}

// In short-job mode too: the settle deletes the completed rows and writes the others as usual.
TEST_F(PgQueueTest, DeleteCompletedHeldBatchDeletesItsCompletedRows) {
  const std::vector<int64_t> ids = EnqueueN(4);
  PgOptions options;
  options.delete_completed = true;
  std::unique_ptr<PgQueue> deleting = schema_.OpenQueue(2, options);
  JQ_ASSERT_OK_AND_ASSIGN(auto batch, deleting->ClaimHeld(Request(4, "w1")));
  ASSERT_EQ(batch->leases().size(), 4u);
  std::vector<PgQueue::HeldBatch::Outcome> outcomes = {
      {ids[0], true, R"({"ok": 1})"}, {ids[1], false, "boom"}, {ids[2], true, "null"}};
  const int64_t keep = ids[3];
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::HeldBatch::Settled settled,
                          batch->Settle(outcomes, absl::MakeConstSpan(&keep, 1)));
  EXPECT_EQ(settled.completed, 2);
  ASSERT_EQ(settled.failed.size(), 1u);
  EXPECT_TRUE(settled.failed[0].second.will_retry);
  EXPECT_EQ(settled.failed[0].second.attempts, 1);
  ASSERT_EQ(settled.kept.size(), 1u);
  EXPECT_EQ(schema_.Query(absl::StrCat("SELECT string_agg(id || ':' || status || ':' || attempts, "
                                       "',' ORDER BY id) FROM ",
                                       schema_.name(), ".job_queue")),
            absl::StrCat(ids[1], ":pending:1,", ids[3], ":processing:1"));
  EXPECT_THAT(deleting->Complete(settled.kept[0]), IsOk());
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + schema_.name() + ".job_queue"), "1");
}

// A held batch whose worker goes quiet without closing its socket (a lost host or network)
// is ended by the server after held_batch_idle_timeout: its jobs can be claimed again.
TEST_F(PgQueueTest, AHeldBatchLeftIdleIsEndedByTheServer) {
  const std::vector<int64_t> ids = EnqueueN(2);
  PgOptions options;
  options.held_batch_idle_timeout = absl::Seconds(1);
  std::unique_ptr<PgQueue> queue = schema_.OpenQueue(2, options);
  JQ_ASSERT_OK_AND_ASSIGN(auto batch, queue->ClaimHeld(Request(2, "quiet")));
  ASSERT_EQ(batch->leases().size(), 2u);
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> none, queue->Claim(Request(2, "other")));
  EXPECT_TRUE(none.empty());
  std::vector<Lease> taken;
  ASSERT_TRUE(testing::Eventually([&] {
    absl::StatusOr<std::vector<Lease>> claimed = queue->Claim(Request(2, "other"));
    if (claimed.ok()) taken.insert(taken.end(), claimed->begin(), claimed->end());
    return taken.size() == 2;
  }));
  EXPECT_EQ(taken[0].attempt, 1);
  std::vector<PgQueue::HeldBatch::Outcome> outcomes = {{ids[0], true, "null"}};
  EXPECT_FALSE(batch->Settle(outcomes, {}).ok());
  EXPECT_EQ(schema_.Query("SELECT string_agg(status || ':' || locked_by, ',') FROM " +
                          schema_.name() + ".job_queue"),
            "processing:other,processing:other");
}

TEST_F(PgQueueTest, HeldBatchSettlesOutcomesInOneWriteAndRollsBackWhenDropped) {
  const std::vector<int64_t> ids = EnqueueN(4);
  ASSERT_EQ(ids.size(), 4u);
  {
    JQ_ASSERT_OK_AND_ASSIGN(auto dropped, queue_->ClaimHeld(Request(4, "crashing")));
    ASSERT_EQ(dropped->leases().size(), 4u);
    EXPECT_EQ(dropped->leases()[0].attempt, 1);
    EXPECT_EQ(dropped->leases()[0].claimed_at_us, 0);
    // Held rows are locked, so nobody else can claim them meanwhile.
    JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> none, queue_->Claim(Request(4, "other")));
    EXPECT_TRUE(none.empty());
  }
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + schema_.name() +
                          ".job_queue WHERE status = 'pending' AND attempts = 0"),
            "4");

  JQ_ASSERT_OK_AND_ASSIGN(auto batch, queue_->ClaimHeld(Request(4, "w1")));
  ASSERT_EQ(batch->leases().size(), 4u);
  std::vector<PgQueue::HeldBatch::Outcome> outcomes = {
      {ids[0], true, R"({"ok": 1})"}, {ids[1], false, "boom"}, {ids[2], true, "{not json"}};
  const int64_t keep = ids[3];
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::HeldBatch::Settled settled,
                          batch->Settle(outcomes, absl::MakeConstSpan(&keep, 1)));
  EXPECT_EQ(settled.completed, 1);
  ASSERT_EQ(settled.failed.size(), 2u);
  EXPECT_TRUE(settled.failed[0].second.will_retry);
  ASSERT_EQ(settled.kept.size(), 1u);
  EXPECT_NE(settled.kept[0].claimed_at_us, 0);
  EXPECT_THAT(batch->Settle({}, {}), StatusIs(absl::StatusCode::kFailedPrecondition));

  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job done, queue_->Get(ids[0]));
  EXPECT_EQ(done.status, JobStatus::kCompleted);
  EXPECT_EQ(done.attempts, 1);
  EXPECT_EQ(done.locked_by, "w1");
  EXPECT_EQ(done.result_json, R"({"ok": 1})");
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job failed, queue_->Get(ids[1]));
  EXPECT_EQ(failed.status, JobStatus::kPending);
  EXPECT_EQ(failed.attempts, 1);
  EXPECT_EQ(failed.last_error, "boom");
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job bad_result, queue_->Get(ids[2]));
  EXPECT_THAT(bad_result.last_error, HasSubstr("not valid JSON"));
  // The kept job is an ordinary lease now: heartbeat and complete work, fenced as usual.
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job kept, queue_->Get(ids[3]));
  EXPECT_EQ(kept.status, JobStatus::kProcessing);
  EXPECT_THAT(queue_->Heartbeat(settled.kept[0]), IsOk());
  Lease stale = settled.kept[0];
  stale.claimed_at_us = 0;
  EXPECT_THAT(queue_->Complete(stale), StatusIs(kLeaseLostCode));
  EXPECT_THAT(queue_->Complete(settled.kept[0], "7"), IsOk());
}

// A settle refused for bad input (a job not in the batch, a job listed twice) writes nothing
// and leaves the batch to settle again. Before, the refusal already rolled the batch back: its
// finished jobs' outcomes were gone and every later settle said "already settled".
// A value Postgres refuses in a held batch's settle (here a trigger refuses one result) fails
// that job alone: the batch is locked again and settled row by row, each row under the
// attempt its lease names.
TEST_F(PgQueueTest, HeldSettleRefusedByPostgresSettlesRowByRowAndFailsOnlyTheRefusedJob) {
  const std::vector<int64_t> ids = EnqueueN(3);
  schema_.AddTrigger("refuse_poison", "BEFORE UPDATE", "FOR EACH ROW",
                     "IF NEW.result = '\"poison\"'::jsonb THEN RAISE EXCEPTION 'poison refused' "
                     "USING ERRCODE = '22023'; END IF; RETURN NEW;");
  JQ_ASSERT_OK_AND_ASSIGN(auto batch, queue_->ClaimHeld(Request(3, "w1")));
  ASSERT_EQ(batch->leases().size(), 3u);
  const std::vector<PgQueue::HeldBatch::Outcome> outcomes = {{ids[0], true, "1"},
                                                             {ids[1], true, "\"poison\""}};
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::HeldBatch::Settled settled,
                          batch->Settle(outcomes, absl::MakeConstSpan(&ids[2], 1)));
  EXPECT_EQ(settled.completed, 1);
  ASSERT_EQ(settled.failed.size(), 1u);
  EXPECT_EQ(settled.failed[0].first.job_id, ids[1]);
  EXPECT_TRUE(settled.failed[0].second.will_retry);
  ASSERT_EQ(settled.kept.size(), 1u);
  EXPECT_EQ(schema_.Query(absl::StrCat(
                "SELECT string_agg(id || ':' || status || ':' || attempts, ',' ORDER BY id) FROM ",
                schema_.name(), ".job_queue")),
            absl::StrCat(ids[0], ":completed:1,", ids[1], ":pending:1,", ids[2], ":processing:1"));
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job refused, queue_->Get(ids[1]));
  EXPECT_THAT(refused.last_error, HasSubstr("result refused by Postgres"));
  EXPECT_THAT(queue_->Heartbeat(settled.kept[0]), IsOk());
}

TEST_F(PgQueueTest, HeldBatchSettleRefusedForBadInputCanBeSettledAgain) {
  const std::vector<int64_t> ids = EnqueueN(2);
  ASSERT_EQ(ids.size(), 2u);
  JQ_ASSERT_OK_AND_ASSIGN(auto batch, queue_->ClaimHeld(Request(2, "w1")));
  ASSERT_EQ(batch->leases().size(), 2u);
  const std::vector<PgQueue::HeldBatch::Outcome> stranger = {{ids[0], true, "1"},
                                                             {ids[1] + 100, true, "2"}};
  EXPECT_THAT(batch->Settle(stranger, {}), StatusIs(absl::StatusCode::kInvalidArgument));
  const std::vector<PgQueue::HeldBatch::Outcome> twice = {{ids[0], true, "1"}};
  EXPECT_THAT(batch->Settle(twice, {ids[0]}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
  const std::vector<PgQueue::HeldBatch::Outcome> good = {{ids[0], true, "1"}, {ids[1], true, "2"}};
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::HeldBatch::Settled settled, batch->Settle(good, {}));
  EXPECT_EQ(settled.completed, 2);
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + schema_.name() +
                          ".job_queue WHERE status = 'completed' AND attempts = 1"),
            "2");
}

// Postgres refuses a locked_by that is not UTF-8, and a NUL would cut it short (two ids would
// then fence as one): such a worker id is bad input, not a reason to retry the claim forever.
TEST_F(PgQueueTest, ClaimRefusesAWorkerIdPostgresCannotStore) {
  ASSERT_THAT(queue_->Enqueue(Job("t")).status(), IsOk());
  for (const std::string& id : {std::string("w\xff"), std::string("w\0other", 7)}) {
    EXPECT_THAT(queue_->Claim(Request(1, id)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("worker id")));
    EXPECT_THAT(queue_->ClaimHeld(Request(1, id)).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("worker id")));
  }
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + schema_.name() +
                          ".job_queue WHERE status = 'pending' AND attempts = 0"),
            "1");
}

// 1,001 jobs go as five COPYs in one transaction: order, ids and all-or-nothing hold across them.
TEST_F(PgQueueTest, BulkEnqueueByCopyKeepsInputOrderAndIsAllOrNothing) {
  std::vector<NewJob> jobs;
  for (int i = 0; i < 1001; ++i) {
    NewJob job =
        Job(absl::StrCat("bulk_", i % 3), absl::StrCat(R"({"i": )", i, R"(, "s": "é\t\"q\""})"));
    job.options.queue = "bulkq";
    job.options.priority = i % 5 - 2;
    job.options.max_attempts = i % 4 + 1;
    jobs.push_back(std::move(job));
  }
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<EnqueueResult> added, queue_->EnqueueMany(jobs));
  ASSERT_EQ(added.size(), jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_TRUE(added[i].inserted);
    if (i > 0) {
      EXPECT_GT(added[i].id, added[i - 1].id);
    }
    JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job row, queue_->Get(added[i].id));
    EXPECT_EQ(row.job_type, jobs[i].job_type);
    EXPECT_EQ(row.queue, "bulkq");
    EXPECT_EQ(row.priority, jobs[i].options.priority);
    EXPECT_EQ(row.max_attempts, jobs[i].options.max_attempts);
    EXPECT_EQ(row.status, JobStatus::kPending);
    EXPECT_EQ(row.attempts, 0);
    EXPECT_LE(row.run_at, absl::Now() + absl::Seconds(1));
  }
  EXPECT_EQ(schema_.Query(absl::StrCat("SELECT payload->>'s' FROM ", schema_.name(),
                                       ".job_queue WHERE id = ", added[7].id)),
            "é\t\"q\"");
  EXPECT_EQ(schema_.Query(absl::StrCat("SELECT (payload->>'i')::int FROM ", schema_.name(),
                                       ".job_queue WHERE id = ", added[42].id)),
            "42");

  EXPECT_EQ(schema_.Query(absl::StrCat("SELECT (payload->>'i')::int FROM ", schema_.name(),
                                       ".job_queue WHERE id = ", added[1000].id)),
            "1000");

  // A row the server refuses in the last COPY: the COPYs before it are rolled back too.
  schema_.Query(
      absl::StrCat("ALTER TABLE ", schema_.name(),
                   ".job_queue ADD CONSTRAINT not_950 CHECK (payload->>'i' <> '950') NOT VALID"));
  absl::Status refused = queue_->EnqueueMany(jobs).status();
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not_950")));
  EXPECT_THAT(refused.message(), HasSubstr("nothing was enqueued"));
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + schema_.name() + ".job_queue"), "1001");

  // JSON that simdjson accepts but jsonb refuses (\u0000): refused before anything is sent.
  jobs[950].payload_json = R"({"s": "\u0000"})";
  EXPECT_THAT(queue_->EnqueueMany(jobs).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nothing was enqueued")));
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + schema_.name() + ".job_queue"), "1001");
}

// A bulk enqueue whose connection dies during COMMIT cannot know whether it committed: the
// error says so instead of "nothing was enqueued" (a deferred trigger ends the backend there).
TEST_F(PgQueueTest, BulkEnqueueLostAtCommitSaysTheOutcomeIsUnknown) {
  const std::string table = schema_.name() + ".job_queue";
  schema_.Query(absl::StrCat("CREATE FUNCTION ", schema_.name(),
                             ".die() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                             "PERFORM pg_terminate_backend(pg_backend_pid()); "
                             "PERFORM pg_sleep(5); RETURN NULL; END $$"));
  schema_.Query(absl::StrCat("CREATE CONSTRAINT TRIGGER die AFTER INSERT ON ", table,
                             " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ",
                             schema_.name(), ".die()"));
  const std::vector<NewJob> jobs(40, Job("bulk"));
  absl::Status status = queue_->EnqueueMany(jobs).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("outcome unknown")));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("nothing was enqueued")));
}

// A bulk enqueue whose connection dies before the server has its last COPY cannot have
// committed (COMMIT follows that COPY in the script): the error says nothing was enqueued.
TEST_F(PgQueueTest, BulkEnqueueLostBeforeItsLastCopySaysNothingWasEnqueued) {
  const std::string table = schema_.name() + ".job_queue";
  schema_.Query(absl::StrCat("CREATE FUNCTION ", schema_.name(),
                             ".die() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                             "IF NEW.payload->>'i' = '10' THEN "
                             "PERFORM pg_terminate_backend(pg_backend_pid()); "
                             "PERFORM pg_sleep(5); END IF; RETURN NEW; END $$"));
  schema_.Query(absl::StrCat("CREATE TRIGGER die BEFORE INSERT ON ", table,
                             " FOR EACH ROW EXECUTE FUNCTION ", schema_.name(), ".die()"));
  std::vector<NewJob> jobs;
  for (int i = 0; i < 1001; ++i) jobs.push_back(Job("bulk", absl::StrCat(R"({"i": )", i, "}")));
  absl::Status status = queue_->EnqueueMany(jobs).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("nothing was enqueued")));
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + table), "0");
  // The pool replaces the dead connection: the next batch goes in.
  schema_.Query("DROP TRIGGER die ON " + table);
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<EnqueueResult> added, queue_->EnqueueMany(jobs));
  EXPECT_EQ(added.size(), jobs.size());
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + table), "1001");
}

// The client's numeric range check gives the server's verdict, edges included, and a number
// out of range fails the batch before anything is sent, naming the job.
TEST_F(PgQueueTest, NumbersOutsideNumericAreRefusedBeforeSending) {
  for (const std::string& number : std::vector<std::string>{
           "1e131071", "1e131072", "10e131070", "10e131071", "0.01e131073", "0.01e131074",
           "1e-16383", "1e-16384", "0.1e-16383", "0.5e-16382", "0.0e-16383", "0e999999999",
           "0e1073741822", "0e1073741823", "-1e-1073741822", "1." + std::string(16383, '1'),
           "1." + std::string(16384, '1'), std::string(131072, '7'), std::string(131073, '7')}) {
    bool server_takes = true;
    try {
      schema_.Query("SELECT '" + number + "'::jsonb");
    } catch (const std::runtime_error&) {
      server_takes = false;
    }
    EXPECT_EQ(ValidateStorableJson(number).ok(), server_takes) << number.substr(0, 40);
  }
  std::vector<NewJob> jobs(40, Job("t", R"({"n": 1})"));
  jobs[17].payload_json = R"({"n": 1e-20000})";
  EXPECT_THAT(queue_->EnqueueMany(jobs).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("job 17 of the batch"), HasSubstr("numeric"))));
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + schema_.name() + ".job_queue"), "0");
}

void PgQueueTest::ExpectConcurrentEnqueuesShareStatements(std::unique_ptr<PgQueue> queue) {
  constexpr int kThreads = 8, kPerThread = 300;
  std::vector<std::vector<std::pair<int64_t, int>>> ids(kThreads);  // (id, i)
  std::vector<int> refused(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Every 50th job of thread 0 is one Postgres refuses: only that call may fail.
        const bool bad = t == 0 && i % 50 == 0;
        absl::StatusOr<EnqueueResult> added = queue->Enqueue(
            Job("combined",
                bad ? R"({"s": "\u0000"})" : absl::StrCat(R"({"t": )", t, R"(, "i": )", i, "}")));
        if (bad) {
          refused[t] += !added.ok() && absl::IsInvalidArgument(added.status());
        } else if (added.ok()) {
          ids[t].emplace_back(added->id, i);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(refused[0], kPerThread / 50);
  int64_t good = 0;
  for (int t = 0; t < kThreads; ++t) {
    const int expected = t == 0 ? kPerThread - kPerThread / 50 : kPerThread;
    ASSERT_EQ(ids[t].size(), static_cast<size_t>(expected)) << "thread " << t;
    good += expected;
    // Each call got the id of its own job (jsonb prints keys sorted).
    for (size_t k = 0; k < ids[t].size(); k += 37) {
      JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job row, queue->Get(ids[t][k].first));
      EXPECT_EQ(row.payload_json,
                absl::StrCat(R"({"i": )", ids[t][k].second, R"(, "t": )", t, "}"));
    }
  }
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + schema_.name() + ".job_queue"),
            absl::StrCat(good));
  EXPECT_EQ(schema_.Query("SELECT count(DISTINCT payload) FROM " + schema_.name() + ".job_queue"),
            absl::StrCat(good));
  // Calls did share statements: fewer inserting transactions than jobs.
  EXPECT_LT(std::stoll(schema_.Query("SELECT count(DISTINCT xmin::text) FROM " + schema_.name() +
                                     ".job_queue")),
            good);
}

// Limit 1 combines the most; the default 2 lets two lone callers overlap, and combines once
// more callers than that wait.
TEST_F(PgQueueTest, ConcurrentSingleEnqueuesShareStatementsAndEachGetsItsOwnJob) {
  for (int limit : {1, 2}) {
    SCOPED_TRACE(absl::StrCat("max_enqueue_statements ", limit));
    schema_.Query("DELETE FROM " + schema_.name() + ".job_queue");
    PgOptions options;
    options.max_enqueue_statements = limit;
    ExpectConcurrentEnqueuesShareStatements(schema_.OpenQueue(8, options));
  }
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

// A prepared statement goes generic after a few runs, and a generic plan guesses a `LIMIT $n`
// at a tenth of the rows. Joined to such a guess, a big backlog made every claim hash the
// whole table (490 ms instead of 9 ms per claim of 1,000 with 1,000,000 pending jobs).
TEST_F(PgQueueTest, GenericPlansOfBatchStatementsLookRowsUpByKey) {
  const std::string table = schema_.name() + ".job_queue";
  // Mostly backlog: the shape in which the guess is largest against the table.
  for (const auto& [status, rows] :
       {std::pair{"pending", 150000}, {"processing", 10000}, {"completed", 10000}}) {
    schema_.Query(absl::StrCat("INSERT INTO ", table,
                               " (job_type, status, attempts, locked_by, locked_at, heartbeat_at,"
                               " finished_at) SELECT 't', '",
                               status, "', 1, 'w', now(), now(), now()",
                               " FROM generate_series(1, ", rows, ")"));
  }
  schema_.Query("ANALYZE " + table);
  const internal::QueueSql sql(schema_.name());
  const struct {
    const internal::PgStatement& statement;
    std::string args;
  } cases[] = {
      {sql.claim, "'w', 'default', NULL, 1000"},
      {sql.complete_and_claim, "'w', 'default', NULL, 1000, '{1}', '{1}', '{null}', '{0}'"},
      {sql.recover_batch, "'{}', '{}', 0, 1000"},
      {sql.purge_batch, "'{completed}', 0, 1000"},
  };
  std::unique_ptr<PGconn, decltype(&PQfinish)> owned(schema_.Connect(), &PQfinish);
  PGconn* conn = owned.get();
  PGresult* set = PQexec(conn, "SET plan_cache_mode = force_generic_plan");
  ASSERT_EQ(PQresultStatus(set), PGRES_COMMAND_OK) << PQerrorMessage(conn);
  PQclear(set);
  for (const auto& c : cases) {
    PGresult* prepared =
        PQprepare(conn, c.statement.name.c_str(), c.statement.sql.c_str(), 0, nullptr);
    ASSERT_EQ(PQresultStatus(prepared), PGRES_COMMAND_OK) << PQerrorMessage(conn);
    PQclear(prepared);
    PGresult* plan =
        PQexec(conn, absl::StrCat("EXPLAIN EXECUTE ", c.statement.name, "(", c.args, ")").c_str());
    ASSERT_EQ(PQresultStatus(plan), PGRES_TUPLES_OK) << PQerrorMessage(conn);
    std::vector<std::string> lines;
    for (int row = 0; row < PQntuples(plan); ++row) lines.push_back(PQgetvalue(plan, row, 0));
    PQclear(plan);
    const std::string text = absl::StrJoin(lines, "\n");
    EXPECT_THAT(text, Not(HasSubstr("Seq Scan"))) << c.statement.name << ":\n" << text;
    // A primary key scan without a condition on id reads the whole table in id order.
    int key_scans = 0;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (!absl::StrContains(lines[i], "using job_queue_pkey")) continue;
      ++key_scans;
      EXPECT_TRUE(i + 1 < lines.size() && absl::StrContains(lines[i + 1], "Index Cond: (id = "))
          << c.statement.name << ":\n"
          << text;
    }
    EXPECT_GE(key_scans, 1) << c.statement.name << ":\n" << text;
  }
}

// Statistics taken while no job was processing (or pending) say such rows are rare, and a
// statement that finds its jobs by id could then read the whole partial index of that status
// and filter, which is every processing (or pending) row of the table, for each completion:
// 30,000 leases held elsewhere cost the no-op drain about 10% (pg_e2e --only work --held 30000).
TEST_F(PgQueueTest, StatementsByIdUseThePrimaryKeyWhateverTheStatisticsSay) {
  const std::string table = schema_.name() + ".job_queue";
  schema_.Query("ALTER TABLE " + table + " SET (autovacuum_enabled = false)");
  schema_.Query("INSERT INTO " + table +
                " (job_type, status, attempts, locked_by, locked_at, finished_at)"
                " SELECT 't', 'completed', 1, 'w', now(), now() FROM generate_series(1, 20000)");
  schema_.Query("ANALYZE " + table);
  schema_.Query("INSERT INTO " + table +
                " (job_type, status, attempts, locked_by, locked_at, heartbeat_at)"
                " SELECT 't', 'processing', 1, 'w', now(), now() FROM generate_series(1, 5000)");
  schema_.Query("INSERT INTO " + table + " (job_type) SELECT 't' FROM generate_series(1, 5000)");
  const auto ids_of = [&](const char* status) {
    return absl::StrCat(
        "'{",
        schema_.Query(absl::StrCat("SELECT string_agg(id::text, ',') FROM (SELECT id FROM ", table,
                                   " WHERE status = '", status, "' ORDER BY id LIMIT 1000) s")),
        "}'");
  };
  const auto repeat = [](const char* item) {
    std::vector<std::string> items(1000, item);
    return absl::StrCat("'{", absl::StrJoin(items, ","), "}'");
  };
  const std::string processing = ids_of("processing");
  const std::string pending = ids_of("pending");
  const std::string one_processing = processing.substr(2, processing.find(',') - 2);
  const std::string one_pending = pending.substr(2, pending.find(',') - 2);
  const std::string ones = repeat("1"), zeros = repeat("0");
  const internal::QueueSql sql(schema_.name());
  const struct {
    const internal::PgStatement& statement;
    std::string args;
  } cases[] = {
      {sql.complete, absl::StrCat(one_processing, ", 1, 'w', 'null', 0")},
      {sql.fail, absl::StrCat(one_processing, ", 1, 'w', 'e', 0, 0")},
      {sql.heartbeat_many, absl::StrCat("'w', ", processing, ", ", ones, ", ", zeros)},
      {sql.release_many, absl::StrCat("'w', ", processing, ", ", ones, ", ", zeros)},
      {sql.complete_and_claim, absl::StrCat("'w', 'default', NULL, 1000, ", processing, ", ", ones,
                                            ", ", repeat("null"), ", ", zeros)},
      {sql.cancel, one_pending},
      {sql.settle_held,
       absl::StrCat("'w', ", pending, ", ", repeat("c"), ", ", repeat("null"), ", ", zeros)},
      {sql.relock_held, pending},
  };
  std::unique_ptr<PGconn, decltype(&PQfinish)> owned(schema_.Connect(), &PQfinish);
  PGconn* conn = owned.get();
  for (const char* mode : {"auto", "force_generic_plan"}) {
    PGresult* set = PQexec(conn, absl::StrCat("SET plan_cache_mode = ", mode).c_str());
    ASSERT_EQ(PQresultStatus(set), PGRES_COMMAND_OK) << PQerrorMessage(conn);
    PQclear(set);
    for (const auto& c : cases) {
      const std::string name = absl::StrCat(c.statement.name, "_", mode);
      PGresult* prepared = PQprepare(conn, name.c_str(), c.statement.sql.c_str(), 0, nullptr);
      ASSERT_EQ(PQresultStatus(prepared), PGRES_COMMAND_OK) << PQerrorMessage(conn);
      PQclear(prepared);
      PGresult* plan =
          PQexec(conn, absl::StrCat("EXPLAIN EXECUTE ", name, "(", c.args, ")").c_str());
      ASSERT_EQ(PQresultStatus(plan), PGRES_TUPLES_OK) << PQerrorMessage(conn);
      std::vector<std::string> lines;
      for (int row = 0; row < PQntuples(plan); ++row) lines.push_back(PQgetvalue(plan, row, 0));
      PQclear(plan);
      const std::string text = absl::StrJoin(lines, "\n");
      EXPECT_THAT(text, Not(HasSubstr("job_queue_heartbeat_idx"))) << name << ":\n" << text;
      EXPECT_THAT(text, Not(HasSubstr("job_queue_finished_idx"))) << name << ":\n" << text;
      EXPECT_THAT(text, Not(HasSubstr("Seq Scan"))) << name << ":\n" << text;
      if (&c.statement != &sql.complete_and_claim) {  // its claim half reads the claim index
        EXPECT_THAT(text, Not(HasSubstr("job_queue_claim_idx"))) << name << ":\n" << text;
      }
    }
  }
}

TEST_F(PgQueueTest, DedupeKeyReturnsTheLiveJob) {
  NewJob job = Job("sync");
  job.options.dedupe_key = "customer-42";
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult first, queue_->Enqueue(job));
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult second, queue_->Enqueue(job));
  EXPECT_TRUE(first.inserted);
  EXPECT_FALSE(second.inserted);
  EXPECT_EQ(second.id, first.id);
  std::vector<NewJob> batch = {job, Job("other")};
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<EnqueueResult> many, queue_->EnqueueMany(batch));
  EXPECT_FALSE(many[0].inserted);
  EXPECT_EQ(many[0].id, first.id);
  EXPECT_TRUE(many[1].inserted);
  // Once the job is finished the key is free again.
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> leases, queue_->Claim(Request(10)));
  for (const Lease& lease : leases) ASSERT_THAT(queue_->Complete(lease), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult third, queue_->Enqueue(job));
  EXPECT_TRUE(third.inserted);
  EXPECT_NE(third.id, first.id);
}

TEST_F(PgQueueTest, ClaimsByPriorityThenRunAtThenId) {
  NewJob low = Job("t");
  low.options.priority = 5;
  NewJob high = Job("t");
  high.options.priority = -5;
  NewJob delayed = Job("t");
  delayed.options.delay = absl::Hours(1);
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult a, queue_->Enqueue(low));
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult b, queue_->Enqueue(Job("t")));
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult c, queue_->Enqueue(high));
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult d, queue_->Enqueue(Job("t")));
  ASSERT_THAT(queue_->Enqueue(delayed).status(), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> leases, queue_->Claim(Request(10)));
  ASSERT_EQ(leases.size(), 4u);  // the delayed job is not due
  EXPECT_EQ(leases[0].job_id, c.id);
  EXPECT_EQ(leases[1].job_id, b.id);
  EXPECT_EQ(leases[2].job_id, d.id);
  EXPECT_EQ(leases[3].job_id, a.id);
}

// Claims go priority by priority (each scanned up to its first job not yet due, so delayed
// jobs are never walked) and lock only the rows they return: a held batch leaves the rest of
// the next priority to other workers.
TEST_F(PgQueueTest, ClaimsAcrossPrioritiesLockOnlyWhatTheyTake) {
  auto at = [&](int priority, absl::Duration delay = absl::ZeroDuration()) {
    NewJob job = Job("t");
    job.options.priority = priority;
    job.options.delay = delay;
    absl::StatusOr<EnqueueResult> added = queue_->Enqueue(job);
    EXPECT_THAT(added.status(), IsOk());
    return added.ok() ? added->id : 0;
  };
  for (int i = 0; i < 50; ++i) at(-10, absl::Hours(24));
  const int64_t first = at(-5), second = at(-5), third = at(0), fourth = at(0), fifth = at(5);
  at(5, absl::Hours(24));
  auto ids = [](const std::vector<Lease>& leases) {
    std::vector<int64_t> out;
    for (const Lease& lease : leases) out.push_back(lease.job_id);
    return out;
  };
  JQ_ASSERT_OK_AND_ASSIGN(auto held, queue_->ClaimHeld(Request(3, "held")));
  EXPECT_THAT(ids(held->leases()), ElementsAre(first, second, third));
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> rest, queue_->Claim(Request(10, "other")));
  EXPECT_THAT(ids(rest), ElementsAre(fourth, fifth));
  held.reset();  // rolled back: pending again
  JQ_ASSERT_OK_AND_ASSIGN(rest, queue_->Claim(Request(10, "other")));
  EXPECT_THAT(ids(rest), ElementsAre(first, second, third));
  // Only delayed jobs are pending now, at two priorities.
  JQ_ASSERT_OK_AND_ASSIGN(std::optional<absl::Time> next, queue_->NextRunAt("default", {}));
  ASSERT_TRUE(next.has_value());
  EXPECT_GT(*next, absl::Now() + absl::Hours(23));
}

TEST_F(PgQueueTest, ClaimFiltersByQueueAndType) {
  NewJob other_queue = Job("t");
  other_queue.options.queue = "emails";
  ASSERT_THAT(queue_->Enqueue(other_queue).status(), IsOk());
  ASSERT_THAT(queue_->Enqueue(Job("a")).status(), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult b, queue_->Enqueue(Job("b")));
  ClaimRequest request = Request(10);
  request.job_types = {"b"};
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> leases, queue_->Claim(request));
  ASSERT_EQ(leases.size(), 1u);
  EXPECT_EQ(leases[0].job_id, b.id);
}

// Postgres text must be valid UTF-8 without NULs: a handler quoting raw Latin-1 input used to
// leave its failure unrecorded (the job stayed processing, and a held batch rolled back forever).
TEST_F(PgQueueTest, FailureTextThatIsNotUtf8IsRecordedWithReplacementCharacters) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue_->Enqueue(Job("t")));
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> claimed, queue_->Claim(Request()));
  ASSERT_EQ(claimed.size(), 1u);
  const std::string raw("bad line \"caf\xe9\" \0end", 20);
  JQ_ASSERT_OK_AND_ASSIGN(FailOutcome outcome, queue_->Fail(claimed[0], raw));
  EXPECT_TRUE(outcome.will_retry);
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job job, queue_->Get(added.id));
  EXPECT_EQ(job.status, JobStatus::kPending);
  EXPECT_EQ(job.last_error,
            "bad line \"caf\xEF\xBF\xBD\" \xEF\xBF\xBD"
            "end");

  schema_.Query("UPDATE " + schema_.name() + ".job_queue SET run_at = now()");
  JQ_ASSERT_OK_AND_ASSIGN(auto batch, queue_->ClaimHeld(Request(1, "w2")));
  ASSERT_EQ(batch->leases().size(), 1u);
  const std::vector<PgQueue::HeldBatch::Outcome> outcomes = {{added.id, false, "\xff\xfe"}};
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::HeldBatch::Settled settled, batch->Settle(outcomes, {}));
  ASSERT_EQ(settled.failed.size(), 1u);
  JQ_ASSERT_OK_AND_ASSIGN(job, queue_->Get(added.id));
  EXPECT_EQ(job.attempts, 2);
  EXPECT_EQ(job.last_error, "\xEF\xBF\xBD\xEF\xBF\xBD");
}

// An error text Postgres refuses (here an operator's CHECK on last_error) must not leave the
// failure unrecorded: the job stayed processing, and a held batch rolled back for good.
TEST_F(PgQueueTest, FailureTextPostgresRefusesIsRecordedWithoutIt) {
  schema_.Query("ALTER TABLE " + schema_.name() +
                ".job_queue ADD CONSTRAINT no_secrets CHECK (last_error NOT LIKE '%secret%')");
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue_->Enqueue(Job("t")));
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> claimed, queue_->Claim(Request()));
  ASSERT_EQ(claimed.size(), 1u);
  JQ_ASSERT_OK_AND_ASSIGN(FailOutcome outcome, queue_->Fail(claimed[0], "secret: 42"));
  EXPECT_TRUE(outcome.will_retry);
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job job, queue_->Get(added.id));
  EXPECT_EQ(job.status, JobStatus::kPending);
  EXPECT_EQ(job.attempts, 1);
  EXPECT_EQ(job.last_error, kErrorTextRefused);

  // In a held batch beside a completion: the batch goes row by row, both are written.
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult other, queue_->Enqueue(Job("t")));
  schema_.Query("UPDATE " + schema_.name() + ".job_queue SET run_at = now()");
  JQ_ASSERT_OK_AND_ASSIGN(auto batch, queue_->ClaimHeld(Request(2, "w2")));
  ASSERT_EQ(batch->leases().size(), 2u);
  const std::vector<PgQueue::HeldBatch::Outcome> outcomes = {{added.id, false, "secret: 43"},
                                                             {other.id, true, "1"}};
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::HeldBatch::Settled settled, batch->Settle(outcomes, {}));
  ASSERT_EQ(settled.failed.size(), 1u);
  EXPECT_EQ(settled.completed, 1);
  JQ_ASSERT_OK_AND_ASSIGN(job, queue_->Get(added.id));
  EXPECT_EQ(job.attempts, 2);
  EXPECT_EQ(job.last_error, kErrorTextRefused);
  JQ_ASSERT_OK_AND_ASSIGN(job, queue_->Get(other.id));
  EXPECT_EQ(job.status, JobStatus::kCompleted);
}

// A delay past what a timestamp holds (an uncapped policy, a handler's huge retry_delay) is
// capped at kMaxRetryDelay; it used to make the failure unrecordable.
TEST_F(PgQueueTest, HugeRetryDelaysAreCappedNotRefused) {
  RetryPolicy uncapped;
  uncapped.max_delay = absl::InfiniteDuration();
  ASSERT_THAT(uncapped.Validate(), IsOk());
  EXPECT_EQ(uncapped.DelayAfter(60, 0.5), kMaxRetryDelay);
  PgOptions options;
  options.retry = uncapped;
  std::unique_ptr<PgQueue> queue = schema_.OpenQueue(2, options);
  NewJob job = Job("t");
  job.options.max_attempts = 100;
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue->Enqueue(job));
  schema_.Query("UPDATE " + schema_.name() + ".job_queue SET attempts = 59");
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> claimed, queue->Claim(Request()));
  ASSERT_EQ(claimed.size(), 1u);
  JQ_ASSERT_OK_AND_ASSIGN(FailOutcome outcome, queue->Fail(claimed[0], "later"));
  EXPECT_TRUE(outcome.will_retry);
  schema_.Query("UPDATE " + schema_.name() + ".job_queue SET run_at = now()");
  JQ_ASSERT_OK_AND_ASSIGN(claimed, queue->Claim(Request()));
  ASSERT_EQ(claimed.size(), 1u);
  JQ_ASSERT_OK_AND_ASSIGN(outcome, queue->Fail(claimed[0], "much later", absl::Hours(1e9)));
  EXPECT_TRUE(outcome.will_retry);
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job stored, queue->Get(added.id));
  EXPECT_EQ(stored.status, JobStatus::kPending);
  EXPECT_GT(stored.run_at, absl::Now() + kMaxRetryDelay - absl::Hours(1));
  EXPECT_LT(stored.run_at, absl::Now() + kMaxRetryDelay + absl::Hours(1));
}

// An error from the database names the job it was about, not only the statement.
TEST_F(PgQueueTest, ErrorsOfOneJobNameTheJob) {
  ASSERT_THAT(queue_->Enqueue(Job("t")).status(), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> claimed, queue_->Claim(Request()));
  ASSERT_EQ(claimed.size(), 1u);
  const Lease& lease = claimed[0];
  schema_.Query(absl::StrCat("DROP TABLE ", schema_.name(), ".job_queue CASCADE"));
  const std::string job = absl::StrCat(" job ", lease.job_id, ": ");
  EXPECT_THAT(queue_->Complete(lease, "1"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("complete" + job)));
  EXPECT_THAT(queue_->Fail(lease, "boom").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("fail" + job)));
  EXPECT_THAT(queue_->Release(lease),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("release" + job)));
  EXPECT_THAT(queue_->Cancel(lease.job_id),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("cancel" + job)));
  EXPECT_THAT(queue_->Get(lease.job_id).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("get" + job)));
}

TEST_F(PgQueueTest, FailRetriesWithBackoffThenFails) {
  NewJob job = Job("t");
  job.options.max_attempts = 2;
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue_->Enqueue(job));
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> first, queue_->Claim(Request()));
  ASSERT_EQ(first.size(), 1u);
  const absl::Time failed_at = absl::Now();
  JQ_ASSERT_OK_AND_ASSIGN(FailOutcome retry, queue_->Fail(first[0], "timeout"));
  EXPECT_TRUE(retry.will_retry);
  EXPECT_EQ(retry.attempts, 1);
  // The policy's first delay is about a second: not claimable yet.
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> none, queue_->Claim(Request()));
  EXPECT_TRUE(none.empty());
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job pending, queue_->Get(added.id));
  EXPECT_EQ(pending.status, JobStatus::kPending);
  EXPECT_EQ(pending.last_error, "timeout");
  // At least the policy's 0.8 s (1 s less 20% jitter) after the failure, measured from before
  // the call: a bound on Now() at this line lost its margin on a slow machine.
  EXPECT_GE(pending.run_at, failed_at + absl::Milliseconds(750));
  schema_.Query("UPDATE " + schema_.name() + ".job_queue SET run_at = now()");
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> second, queue_->Claim(Request()));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].attempt, 2);
  // Overriding the delay is allowed, but attempts are spent: failed for good.
  JQ_ASSERT_OK_AND_ASSIGN(FailOutcome final, queue_->Fail(second[0], "timeout again"));
  EXPECT_FALSE(final.will_retry);
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job failed, queue_->Get(added.id));
  EXPECT_EQ(failed.status, JobStatus::kFailed);
  EXPECT_TRUE(failed.finished_at.has_value());
  // Operators can send it back.
  JQ_ASSERT_OK_AND_ASSIGN(int64_t moved, queue_->RetryFailed());
  EXPECT_EQ(moved, 1);
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job again, queue_->Get(added.id));
  EXPECT_EQ(again.status, JobStatus::kPending);
  EXPECT_EQ(again.attempts, 0);
}

TEST_F(PgQueueTest, HeartbeatAndCompleteAreFencedByTheLease) {
  ASSERT_THAT(queue_->Enqueue(Job("t")).status(), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> leases, queue_->Claim(Request()));
  ASSERT_EQ(leases.size(), 1u);
  EXPECT_THAT(queue_->Heartbeat(leases[0]), IsOk());
  Lease impostor = leases[0];
  impostor.worker_id = "someone-else";
  EXPECT_THAT(queue_->Complete(impostor), StatusIs(kLeaseLostCode, HasSubstr("lease lost")));
  Lease old_attempt = leases[0];
  old_attempt.attempt = 0;
  EXPECT_THAT(queue_->Heartbeat(old_attempt), StatusIs(kLeaseLostCode));
  Lease missing = leases[0];
  missing.job_id = 987654321;
  EXPECT_THAT(queue_->Complete(missing), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(queue_->Complete(leases[0], "{bad json"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(queue_->Complete(leases[0]), IsOk());
  EXPECT_THAT(queue_->Complete(leases[0]), StatusIs(kLeaseLostCode));
}

// Release gives the attempt back, so the next claim by the same worker has the same worker id
// and attempt number as the released one: only the claim time tells the two leases apart.
TEST_F(PgQueueTest, AReleasedLeaseIsFencedOffFromTheSameWorkersNextClaim) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue_->Enqueue(Job("t")));
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> first, queue_->Claim(Request()));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_GT(first[0].claimed_at_us, 0);
  ASSERT_THAT(queue_->Release(first[0]), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> second, queue_->Claim(Request()));
  ASSERT_EQ(second.size(), 1u);
  ASSERT_EQ(second[0].attempt, first[0].attempt);
  ASSERT_NE(second[0].claimed_at_us, first[0].claimed_at_us);
  EXPECT_THAT(queue_->Heartbeat(first[0]), StatusIs(kLeaseLostCode));
  EXPECT_THAT(queue_->Fail(first[0], "stale").status(), StatusIs(kLeaseLostCode));
  EXPECT_THAT(queue_->Release(first[0]), StatusIs(kLeaseLostCode));
  EXPECT_THAT(queue_->Complete(first[0], "1"), StatusIs(kLeaseLostCode));
  PgQueue::Completion stale{first[0], "1"};
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::CompleteAndClaimResult batch,
                          queue_->CompleteAndClaim({stale}, Request(0)));
  EXPECT_THAT(batch.lost_job_ids, ::testing::ElementsAre(added.id));
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job job, queue_->Get(added.id));
  EXPECT_EQ(job.status, JobStatus::kProcessing);
  EXPECT_THAT(queue_->Complete(second[0], "2"), IsOk());
}

TEST_F(PgQueueTest, CompleteAndClaimRejectsAResultThatIsNotJson) {
  ASSERT_THAT(queue_->Enqueue(Job("t")).status(), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> leases, queue_->Claim(Request()));
  ASSERT_EQ(leases.size(), 1u);
  PgQueue::Completion bad{leases[0], "{not json"};
  EXPECT_THAT(queue_->CompleteAndClaim({bad}, Request(0)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("result of job")));
  EXPECT_THAT(queue_->Complete(leases[0], "{\"ok\": 1}"), IsOk());
}

TEST_F(PgQueueTest, CancelOnlyPendingJobs) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult a, queue_->Enqueue(Job("t")));
  EXPECT_THAT(queue_->Cancel(a.id), IsOk());
  EXPECT_THAT(queue_->Cancel(a.id), StatusIs(absl::StatusCode::kFailedPrecondition));
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job job, queue_->Get(a.id));
  EXPECT_EQ(job.status, JobStatus::kCancelled);
  EXPECT_THAT(queue_->Cancel(123456789), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(PgQueueTest, CountsByQueueTypeAndStatus) {
  ASSERT_THAT(queue_->Enqueue(Job("a")).status(), IsOk());
  ASSERT_THAT(queue_->Enqueue(Job("a")).status(), IsOk());
  ASSERT_THAT(queue_->Enqueue(Job("b")).status(), IsOk());
  ClaimRequest request = Request();
  request.job_types = {"b"};
  ASSERT_THAT(queue_->Claim(request).status(), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<StatusCount> counts, queue_->Counts());
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0].job_type, "a");
  EXPECT_EQ(counts[0].status, JobStatus::kPending);
  EXPECT_EQ(counts[0].count, 2);
  EXPECT_EQ(counts[1].job_type, "b");
  EXPECT_EQ(counts[1].status, JobStatus::kProcessing);
  EXPECT_EQ(counts[1].count, 1);
}

TEST_F(PgQueueTest, ReaperFailsJobsWhoseAttemptsAreSpentAndHonorsPerTypeTimeouts) {
  NewJob last_try = Job("fragile");
  last_try.options.max_attempts = 1;
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult fragile, queue_->Enqueue(last_try));
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult patient, queue_->Enqueue(Job("patient")));
  ASSERT_THAT(queue_->Claim(Request(10, "gone")).status(), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<StaleJob> stale, queue_->ListStale(absl::ZeroDuration()));
  EXPECT_EQ(stale.size(), 2u);
  RecoverOptions options;
  options.stale_after = absl::ZeroDuration();
  options.stale_after_by_type = {{"patient", absl::Hours(2)}};
  JQ_ASSERT_OK_AND_ASSIGN(RecoverResult result, queue_->RecoverStale(options));
  EXPECT_TRUE(result.acted);
  ASSERT_EQ(result.jobs.size(), 1u);
  EXPECT_EQ(result.jobs[0].id, fragile.id);
  EXPECT_EQ(result.jobs[0].new_status, JobStatus::kFailed);
  EXPECT_EQ(result.jobs[0].previous_owner, "gone");
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job failed, queue_->Get(fragile.id));
  EXPECT_THAT(failed.last_error, HasSubstr("stale lock"));
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job still, queue_->Get(patient.id));
  EXPECT_EQ(still.status, JobStatus::kProcessing);

  // A type given two timeouts is ambiguous: refused before anything is recovered.
  options.stale_after_by_type = {{"patient", absl::Hours(2)}, {"patient", absl::ZeroDuration()}};
  EXPECT_THAT(queue_->RecoverStale(options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
  JQ_ASSERT_OK_AND_ASSIGN(still, queue_->Get(patient.id));
  EXPECT_EQ(still.status, JobStatus::kProcessing);
}

// The seed's own tooling marks rows processing without our heartbeat or lock columns: such a
// row is judged by updated_at (as the seed's stuck-job query does), not skipped forever.
TEST_F(PgQueueTest, ReaperRecoversProcessingRowsWrittenByOtherTools) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue_->Enqueue(Job("legacy")));
  schema_.Query(absl::StrCat("UPDATE ", schema_.name(),
                             ".job_queue SET status = 'processing', attempts = 1, "
                             "updated_at = now() - interval '2 hours' WHERE id = ",
                             added.id));
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<StaleJob> stale, queue_->ListStale(absl::Hours(1)));
  ASSERT_EQ(stale.size(), 1u);
  EXPECT_EQ(stale[0].id, added.id);
  EXPECT_GE(stale[0].heartbeat_age, absl::Hours(2));
  RecoverOptions options;
  options.stale_after = absl::Minutes(30);
  JQ_ASSERT_OK_AND_ASSIGN(RecoverResult result, queue_->RecoverStale(options));
  ASSERT_EQ(result.jobs.size(), 1u);
  EXPECT_EQ(result.jobs[0].new_status, JobStatus::kPending);
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job row, queue_->Get(added.id));
  EXPECT_EQ(row.status, JobStatus::kPending);
}

// A lock time left from an earlier run must not make a row another tool just picked up
// (updated_at now, no heartbeat) look hours old.
TEST_F(PgQueueTest, ReaperJudgesAHeartbeatlessRowByItsLatestSignOfLife) {
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue_->Enqueue(Job("legacy")));
  schema_.Query(absl::StrCat("UPDATE ", schema_.name(),
                             ".job_queue SET status = 'processing', attempts = 1, "
                             "locked_by = 'old-run', locked_at = now() - interval '2 hours', "
                             "updated_at = now() WHERE id = ",
                             added.id));
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<StaleJob> stale, queue_->ListStale(absl::Minutes(30)));
  EXPECT_TRUE(stale.empty());
  RecoverOptions options;
  options.stale_after = absl::Minutes(30);
  JQ_ASSERT_OK_AND_ASSIGN(RecoverResult result, queue_->RecoverStale(options));
  EXPECT_TRUE(result.jobs.empty());
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job row, queue_->Get(added.id));
  EXPECT_EQ(row.status, JobStatus::kProcessing);
}

// A sweep does at most max_batches batches (each committed on its own); the next sweep takes
// the rest.
TEST_F(PgQueueTest, ReaperSweepIsBoundedByMaxBatches) {
  for (int i = 0; i < 5; ++i) ASSERT_THAT(queue_->Enqueue(Job("t")).status(), IsOk());
  ASSERT_THAT(queue_->Claim(Request(10, "gone")).status(), IsOk());
  RecoverOptions options;
  options.stale_after = absl::ZeroDuration();
  options.batch_size = 2;
  options.max_batches = 2;
  JQ_ASSERT_OK_AND_ASSIGN(RecoverResult first, queue_->RecoverStale(options));
  EXPECT_EQ(first.jobs.size(), 4u);
  JQ_ASSERT_OK_AND_ASSIGN(RecoverResult second, queue_->RecoverStale(options));
  EXPECT_EQ(second.jobs.size(), 1u);
  options.max_batches = 0;
  EXPECT_THAT(queue_->RecoverStale(options).status(), StatusIs(absl::StatusCode::kInvalidArgument));
}

// A row trigger that lets the first statement's row through and refuses any row after it:
// the first batch commits, the second fails.
void RefuseAfterTheFirstRow(TestSchema& schema, const std::string& event) {
  schema.Query("CREATE TABLE " + schema.name() + ".seen (n int)");
  schema.AddTrigger("refuse_second", "BEFORE " + event, "FOR EACH ROW",
                    "IF EXISTS (SELECT 1 FROM {s}.seen) THEN "
                    "RAISE EXCEPTION 'second batch refused'; END IF; "
                    "INSERT INTO {s}.seen VALUES (1); "
                    "RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;");
}

// A sweep whose second batch fails says how many jobs its first batch recovered (committed
// and logged) instead of an error alone.
TEST_F(PgQueueTest, ReaperErrorCountsTheBatchesItCommitted) {
  for (int i = 0; i < 2; ++i) ASSERT_THAT(queue_->Enqueue(Job("t")).status(), IsOk());
  ASSERT_THAT(queue_->Claim(Request(2, "gone")).status(), IsOk());
  RefuseAfterTheFirstRow(schema_, "UPDATE");
  RecoverOptions options;
  options.stale_after = absl::ZeroDuration();
  options.batch_size = 1;
  EXPECT_THAT(queue_->RecoverStale(options).status(),
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("recovered 1 stale job(s) in earlier batches"),
                             HasSubstr("second batch refused"))));
  EXPECT_EQ(schema_.Query(absl::StrCat("SELECT string_agg(status, ',' ORDER BY status) FROM ",
                                       schema_.name(), ".job_queue")),
            "pending,processing");
}

TEST_F(PgQueueTest, PurgeErrorCountsTheBatchesItDeleted) {
  for (int i = 0; i < 2; ++i) ASSERT_THAT(queue_->Enqueue(Job("t")).status(), IsOk());
  schema_.Query(absl::StrCat("UPDATE ", schema_.name(),
                             ".job_queue SET status = 'completed', finished_at = now() - "
                             "interval '90 days'"));
  RefuseAfterTheFirstRow(schema_, "DELETE");
  PurgeOptions options;
  options.batch_size = 1;
  EXPECT_THAT(queue_->Purge(options).status(),
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("deleted 1 finished job(s) in earlier batches"),
                             HasSubstr("second batch refused"))));
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + schema_.name() + ".job_queue"), "1");
}

// Completed and failed jobs take turns: a backlog of one cannot starve the other.
TEST_F(PgQueueTest, PurgeGivesFailedJobsTheirTurn) {
  for (int i = 0; i < 12; ++i) ASSERT_THAT(queue_->Enqueue(Job("t")).status(), IsOk());
  schema_.Query(absl::StrCat("UPDATE ", schema_.name(),
                             ".job_queue SET status = CASE WHEN id % 6 = 0 THEN 'failed' ELSE "
                             "'completed' END, finished_at = now() - interval '90 days'"));
  PurgeOptions options;
  options.batch_size = 1;
  options.max_batches = 3;
  bool more = false;
  JQ_ASSERT_OK_AND_ASSIGN(int64_t deleted, queue_->Purge(options, &more));
  EXPECT_EQ(deleted, 3);
  EXPECT_TRUE(more);
  EXPECT_EQ(schema_.Query(absl::StrCat("SELECT count(*) FROM ", schema_.name(),
                                       ".job_queue WHERE status = 'failed'")),
            "1");
  options.max_batches = 100;
  JQ_ASSERT_OK_AND_ASSIGN(deleted, queue_->Purge(options, &more));
  EXPECT_EQ(deleted, 9);
  EXPECT_FALSE(more);
}

// "Keep for ever" ages (10,000 years, infinite) used to fail the whole pass with
// "timestamp out of range"; they now match nothing.
TEST_F(PgQueueTest, HugeAgesMeanNothingIsThatOld) {
  for (int i = 0; i < 4; ++i) ASSERT_THAT(queue_->Enqueue(Job("t")).status(), IsOk());
  schema_.Query(absl::StrCat("UPDATE ", schema_.name(),
                             ".job_queue SET status = CASE WHEN id % 2 = 0 THEN 'failed' ELSE "
                             "'completed' END, finished_at = now() - interval '90 days'"));
  for (absl::Duration forever : {absl::Hours(24 * 365 * 10000), absl::InfiniteDuration()}) {
    PurgeOptions options;
    options.completed_older_than = absl::Hours(24);
    options.failed_older_than = forever;
    JQ_ASSERT_OK_AND_ASSIGN(int64_t deleted, queue_->Purge(options));
    EXPECT_EQ(deleted, forever == absl::InfiniteDuration() ? 0 : 2);
    EXPECT_EQ(schema_.Query(absl::StrCat("SELECT count(*) FROM ", schema_.name(),
                                         ".job_queue WHERE status = 'failed'")),
              "2");
    JQ_ASSERT_OK_AND_ASSIGN(std::vector<StaleJob> stale, queue_->ListStale(forever));
    EXPECT_TRUE(stale.empty());
    RecoverOptions recover;
    recover.stale_after = forever;
    recover.stale_after_by_type = {{"t", forever}};
    EXPECT_THAT(queue_->RecoverStale(recover).status(), IsOk());
  }
}

TEST_F(PgQueueTest, OnlyOneReaperActsPerSweep) {
  // Hold the sweep lock in another session: a concurrent sweep must step aside.
  PGconn* holder = schema_.Connect();
  PQclear(PQexec(holder, "BEGIN"));
  PQclear(PQexec(holder, ("SELECT pg_advisory_xact_lock(hashtext('jobqueue_reaper'), hashtext('\"" +
                          schema_.name() + "\"'))")
                             .c_str()));
  RecoverOptions options;
  options.stale_after = absl::ZeroDuration();
  JQ_ASSERT_OK_AND_ASSIGN(RecoverResult blocked, queue_->RecoverStale(options));
  EXPECT_FALSE(blocked.acted);
  PQclear(PQexec(holder, "COMMIT"));
  PQfinish(holder);
  JQ_ASSERT_OK_AND_ASSIGN(RecoverResult free, queue_->RecoverStale(options));
  EXPECT_TRUE(free.acted);
}

TEST_F(PgQueueTest, ConcurrentMigratorsAreSafe) {
  TestSchema fresh;
  PgOptions options;
  options.schema = fresh.name();
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<int>> results(4, absl::UnknownError("not run"));
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      auto queue = PgQueue::Open(testing::TestDatabaseUrl(), options);
      results[i] = queue.ok() ? (*queue)->Migrate() : queue.status();
    });
  }
  for (std::thread& t : threads) t.join();
  for (const auto& result : results) {
    ASSERT_THAT(result.status(), IsOk());
    EXPECT_EQ(*result, 5);
  }
  EXPECT_EQ(fresh.Query("SELECT count(*) FROM " + fresh.name() + ".job_queue_migrations"), "5");
}

// Builds the schema as migration 1 alone left it, recorded at version 1.
void CreateAtVersionOne(PGconn* conn, const std::string& schema) {
  const std::vector<internal::Migration> migrations = internal::QueueMigrations(schema);
  ASSERT_GE(migrations.size(), 2u);
  ASSERT_TRUE(ExecOk(conn, migrations[0].sql));
  ASSERT_TRUE(ExecOk(conn, "CREATE TABLE " + schema +
                               ".job_queue_migrations (version integer PRIMARY KEY, name text "
                               "NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());"
                               "INSERT INTO " +
                               schema +
                               ".job_queue_migrations (version, name) VALUES (1, 'create "
                               "job_queue')"));
}

// A table filled at version 1 (table CHECK constraints) moves to the domains of version 2
// without a rewrite, keeps its rows and still refuses what the checks did.
TEST_F(PgQueueTest, MigrationTwoKeepsRowsIndexesAndGuards) {
  TestSchema fresh;
  const std::string s = fresh.name();
  PGconn* conn = fresh.Connect();
  auto exec = [&](const std::string& sql) { return ExecOk(conn, sql); };
  ASSERT_NO_FATAL_FAILURE(CreateAtVersionOne(conn, s));
  ASSERT_TRUE(exec("INSERT INTO " + s +
                   ".job_queue (job_type, payload, run_at) SELECT 'old', jsonb_build_object("
                   "'n', g), now() - interval '1 minute' FROM generate_series(1, 1000) g"));
  // A waiter row from before migration 3 stays, with no pid.
  ASSERT_TRUE(
      exec("INSERT INTO " + s + ".job_queue_waiters (worker_id, queue) VALUES ('old', 'q')"));
  const std::string table_file = "SELECT pg_relation_filenode('" + s + ".job_queue')";
  const std::string table_file_before = fresh.Query(table_file);

  PgOptions options;
  options.schema = s;
  // A process already running: its statements are prepared against the version 1 columns.
  options.pool_size = 1;
  JQ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PgQueue> running,
                          PgQueue::Open(testing::TestDatabaseUrl(), options));
  ASSERT_THAT(running->Get(1).status(), IsOk());
  ASSERT_THAT(running->Counts().status(), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> before, running->Claim(Request(1, "running")));
  ASSERT_EQ(before.size(), 1u);

  options.pool_size = 2;
  JQ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PgQueue> queue,
                          PgQueue::Open(testing::TestDatabaseUrl(), options));
  JQ_ASSERT_OK_AND_ASSIGN(int version, queue->Migrate());
  EXPECT_EQ(version, 5);
  EXPECT_EQ(fresh.Query(table_file), table_file_before);
  EXPECT_EQ(fresh.Query("SELECT coalesce(pid::text, 'none') FROM " + s +
                        ".job_queue_waiters WHERE worker_id = 'old'"),
            "none");
  EXPECT_EQ(fresh.Query("SELECT count(*) FROM " + s + ".job_queue WHERE status = 'pending'"),
            "999");
  // The running process goes on: its statements are prepared again for the new column types.
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job job, running->Get(1));
  EXPECT_EQ(job.status, JobStatus::kProcessing);
  EXPECT_THAT(running->Counts().status(), IsOk());
  EXPECT_THAT(running->Complete(before[0]), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> after, running->Claim(Request(1, "running")));
  ASSERT_EQ(after.size(), 1u);
  EXPECT_THAT(running->Complete(after[0]), IsOk());
  EXPECT_EQ(fresh.Query("SELECT count(*) FROM pg_constraint WHERE conrelid = '" + s +
                        ".job_queue'::regclass AND contype = 'c'"),
            "0");

  for (const char* bad :
       {"(job_type, status) VALUES ('t', 'procesing')", "(job_type) VALUES ('')",
        "(job_type, attempts) VALUES ('t', -1)", "(job_type, max_attempts) VALUES ('t', 0)",
        "(queue, job_type) VALUES (repeat('q', 129), 't')"}) {
    EXPECT_FALSE(exec(absl::StrCat("INSERT INTO ", s, ".job_queue ", bad))) << bad;
  }
  EXPECT_FALSE(exec("UPDATE " + s + ".job_queue SET status = 'done' WHERE id = 1"));
  EXPECT_EQ(fresh.Query("SELECT count(*) FROM " + s + ".job_queue"), "1000");
  PQfinish(conn);

  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue->Enqueue(Job("old")));
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> leases, queue->Claim(Request(1001)));
  ASSERT_EQ(leases.size(), 999u);
  EXPECT_EQ(leases.back().job_id, added.id);
  EXPECT_THAT(queue->Complete(leases.back()), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(int again, queue->Migrate());
  EXPECT_EQ(again, 5);
}

// A migration that cannot lock the table soon gives up, changes nothing, and works once the
// other transaction ends.
TEST_F(PgQueueTest, MigrationGivesUpOnABusyTable) {
  TestSchema fresh;
  const std::string s = fresh.name();
  PGconn* setup = fresh.Connect();
  ASSERT_NO_FATAL_FAILURE(CreateAtVersionOne(setup, s));
  PQfinish(setup);
  PGconn* reader = fresh.Connect();
  ASSERT_TRUE(ExecOk(reader, "BEGIN; SELECT count(*) FROM " + s + ".job_queue"));

  PgOptions options;
  options.schema = s;
  options.migrate_lock_timeout = absl::Milliseconds(200);
  JQ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<PgQueue> queue,
                          PgQueue::Open(testing::TestDatabaseUrl(), options));
  EXPECT_THAT(queue->Migrate().status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("run migrate again")));
  EXPECT_EQ(fresh.Query("SELECT max(version) FROM " + s + ".job_queue_migrations"), "1");
  EXPECT_EQ(fresh.Query("SELECT count(*) FROM pg_constraint WHERE conrelid = '" + s +
                        ".job_queue'::regclass AND contype = 'c'"),
            "5");

  ASSERT_TRUE(ExecOk(reader, "COMMIT"));
  PQfinish(reader);
  JQ_ASSERT_OK_AND_ASSIGN(int version, queue->Migrate());
  EXPECT_EQ(version, 5);

  options.migrate_lock_timeout = absl::ZeroDuration();
  EXPECT_THAT(PgQueue::Open(testing::TestDatabaseUrl(), options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("migrate_lock_timeout")));
}

// The keepalive setting `option` (SO_KEEPALIVE or a TCP_KEEP* option) of a connection made
// from `dsn` by the library, or -1 when it could not connect or read it.
int KeepaliveOption(const Secret& dsn, int option) {
  absl::StatusOr<std::unique_ptr<internal::PgConnection>> conn =
      internal::PgConnection::Connect(dsn, absl::Seconds(10), "jq_keepalive");
  EXPECT_THAT(conn.status(), IsOk());
  if (!conn.ok()) return -1;
  int value = -1;
  socklen_t size = sizeof(value);
  const int level = option == SO_KEEPALIVE ? SOL_SOCKET : IPPROTO_TCP;
  EXPECT_EQ(getsockopt(PQsocket((*conn)->raw()), level, option, &value, &size), 0);
  return value;
}

// A statement in flight to a host that went away fails in about a minute, through TCP
// keepalives on every connection, unless the DSN chooses its own.
TEST(PgConnectionTest, TcpKeepalivesAreOnUnlessTheDsnSetsThem) {
  auto keepalive = [](absl::string_view extra, int option) {
    std::string url(testing::TestDatabaseUrl().Reveal());
    if (!extra.empty()) absl::StrAppend(&url, absl::StrContains(url, "?") ? "&" : "?", extra);
    return KeepaliveOption(Secret(url), option);
  };
  EXPECT_EQ(keepalive("", SO_KEEPALIVE), 1);
  EXPECT_EQ(keepalive("", TCP_KEEPIDLE), 30);
  EXPECT_EQ(keepalive("", TCP_KEEPINTVL), 10);
  EXPECT_EQ(keepalive("", TCP_KEEPCNT), 3);
  EXPECT_EQ(keepalive("keepalives_idle=7", TCP_KEEPIDLE), 7);
  EXPECT_EQ(keepalive("keepalives=0", SO_KEEPALIVE), 0);
}

// A service file only fills what the connection's own keys leave unset, so with one in play
// its keepalive settings stand and the library adds none.
TEST(PgConnectionTest, AServiceFileKeepsItsOwnKeepalives) {
  const std::string url(testing::TestDatabaseUrl().Reveal());
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(url.c_str(), &error);
  ASSERT_NE(parsed, nullptr) << (error != nullptr ? error : "");
  std::string service = "[jq_keepalive]\nkeepalives_idle=11\n";
  for (const PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
    for (const char* key : {"host", "port", "user", "password", "dbname"}) {
      if (o->val != nullptr && std::strcmp(o->keyword, key) == 0) {
        absl::StrAppend(&service, key, "=", o->val, "\n");
      }
    }
  }
  PQconninfoFree(parsed);
  const std::string path = absl::StrCat(::testing::TempDir(), "/jq_pg_service_", getpid());
  {
    std::ofstream file(path);
    file << service;
  }
  ASSERT_EQ(setenv("PGSERVICEFILE", path.c_str(), 1), 0);
  const int idle = KeepaliveOption(Secret("service=jq_keepalive"), TCP_KEEPIDLE);
  unsetenv("PGSERVICEFILE");
  std::remove(path.c_str());
  EXPECT_EQ(idle, 11);
}

// Open() makes the connections asked for before it returns (one by default).
TEST_F(PgQueueTest, OpenMakesTheConnectionsAskedFor) {
  const std::string name = "jq_open_" + schema_.name();
  const std::string count = "SELECT count(*) FROM pg_stat_activity WHERE application_name = '";
  PgOptions options;
  options.application_name = name + "_1";
  std::unique_ptr<PgQueue> one = schema_.OpenQueue(3, options);
  EXPECT_EQ(schema_.Query(count + options.application_name + "'"), "1");

  options.application_name = name + "_3";
  options.connections_at_open = 3;
  std::unique_ptr<PgQueue> three = schema_.OpenQueue(3, options);
  EXPECT_EQ(schema_.Query(count + options.application_name + "'"), "3");

  for (int bad : {0, 4}) {
    options.connections_at_open = bad;
    options.pool_size = 3;
    options.schema = schema_.name();
    EXPECT_THAT(PgQueue::Open(testing::TestDatabaseUrl(), options).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("connections_at_open")))
        << bad;
  }
}

// A server that ended idle pooled connections (a restart, pg_terminate_backend) must not fail
// the next calls: each used to meet a dead connection once, with "outcome unknown".
TEST_F(PgQueueTest, IdleConnectionsTheServerEndedAreReplacedBeforeUse) {
  PgOptions options;
  options.application_name = "jq_idle_" + schema_.name();
  std::unique_ptr<PgQueue> queue = schema_.OpenQueue(3, options);
  // Three calls at once open all three connections; then they sit idle.
  std::vector<std::thread> callers;
  for (int i = 0; i < 3; ++i) {
    callers.emplace_back([&] { ASSERT_THAT(queue->Enqueue(Job("t")).status(), IsOk()); });
  }
  for (std::thread& t : callers) t.join();
  const std::string mine =
      "FROM pg_stat_activity WHERE application_name = '" + options.application_name + "'";
  ASSERT_NE(schema_.Query("SELECT count(*) " + mine), "0");
  ASSERT_NE(schema_.Query("SELECT count(pg_terminate_backend(pid)) " + mine), "0");
  ASSERT_TRUE(testing::Eventually([&] { return schema_.Query("SELECT count(*) " + mine) == "0"; }));
  for (int i = 0; i < 4; ++i) {
    EXPECT_THAT(queue->Enqueue(Job("t")).status(), IsOk()) << i;
  }
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + schema_.name() + ".job_queue"), "7");
}

// A server that takes no writes (a standby that a failover left behind the same name) is an
// outage to wait out, not an internal error, and the pool drops that connection instead of
// keeping it for every later write.
TEST_F(PgQueueTest, AReadOnlyServerIsUnavailableAndItsConnectionIsNotKept) {
  PgOptions options;
  options.pool_size = 1;
  JQ_ASSERT_OK_AND_ASSIGN(
      auto queue, OpenWithServerSetting("default_transaction_read_only%3Don", "jq_ro_", &options));
  EXPECT_THAT(queue->Enqueue(Job("t")).status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("takes no writes")));
  const std::string mine =
      "FROM pg_stat_activity WHERE application_name = '" + options.application_name + "'";
  EXPECT_TRUE(testing::Eventually([&] { return schema_.Query("SELECT count(*) " + mine) == "0"; }));
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + schema_.name() + ".job_queue"), "0");
}

// Statements are written for READ COMMITTED. With a role's or DSN's default of REPEATABLE READ,
// a completion that waited for another session's row lock failed with a serialization error
// once that session committed.
TEST_F(PgQueueTest, ConnectionsReadCommittedWhateverTheDefaultIsolation) {
  const std::vector<int64_t> ids = EnqueueN(1);
  ASSERT_EQ(ids.size(), 1u);
  PgOptions options;
  JQ_ASSERT_OK_AND_ASSIGN(
      auto queue, OpenWithServerSetting("default_transaction_isolation%3Drepeatable%5C%20read",
                                        "jq_iso_", &options));
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> leases, queue->Claim(Request(1, "w1")));
  ASSERT_EQ(leases.size(), 1u);
  PGconn* other = PQconnectdb(std::string(testing::TestDatabaseUrl().Reveal()).c_str());
  ASSERT_EQ(PQstatus(other), CONNECTION_OK);
  PQclear(PQexec(other, "BEGIN"));
  PGresult* touched =
      PQexec(other, absl::StrCat("UPDATE ", schema_.name(),
                                 ".job_queue SET updated_at = now() WHERE id = ", ids[0])
                        .c_str());
  EXPECT_EQ(PQresultStatus(touched), PGRES_COMMAND_OK);
  PQclear(touched);
  absl::Status completed;
  std::thread completer([&] { completed = queue->Complete(leases[0]); });
  EXPECT_TRUE(testing::Eventually([&] {
    return schema_.Query(
               "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
               "AND application_name = '" +
               options.application_name + "'") == "1";
  }));
  PQclear(PQexec(other, "COMMIT"));
  completer.join();
  PQfinish(other);
  EXPECT_THAT(completed, IsOk());
  EXPECT_EQ(schema_.Query(absl::StrCat("SELECT status FROM ", schema_.name(),
                                       ".job_queue WHERE id = ", ids[0])),
            "completed");
}

// Statement names and the notify channel derive from the schema; Postgres cuts identifiers
// at 63 bytes, and cut names collided (a 51-byte schema broke complete, a 55-byte one notify).
TEST_F(PgQueueTest, TheLongestSchemaNameWorksThroughoutAndALongerOneIsRefused) {
  const LongestSchema longest(schema_, 'x');
  PgOptions options;
  options.schema = longest.name + "x";
  EXPECT_THAT(PgQueue::Open(testing::TestDatabaseUrl(), options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1-40")));
  options.schema = longest.name;
  options.pool_size = 2;
  JQ_ASSERT_OK_AND_ASSIGN(auto queue, PgQueue::Open(testing::TestDatabaseUrl(), options));
  ASSERT_THAT(queue->Migrate().status(), IsOk());
  ASSERT_THAT(queue->SetWaiting("idle", "default", true), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult first, queue->Enqueue(Job("t")));
  ASSERT_THAT(queue->EnqueueMany({Job("t"), Job("t")}).status(), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> claimed, queue->Claim(Request(1)));
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].job_id, first.id);
  EXPECT_THAT(queue->Heartbeat(claimed[0]), IsOk());
  EXPECT_THAT(queue->Release(claimed[0]), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(claimed, queue->Claim(Request(2)));
  ASSERT_EQ(claimed.size(), 2u);
  EXPECT_THAT(queue->Complete(claimed[0], "{}"), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(FailOutcome outcome, queue->Fail(claimed[1], "boom"));
  EXPECT_TRUE(outcome.will_retry);
  EXPECT_THAT(queue->RecoverStale(RecoverOptions{}).status(), IsOk());
  EXPECT_THAT(queue->RetryFailed().status(), IsOk());
  EXPECT_THAT(queue->SetWaiting("idle", "default", false), IsOk());

  // The statements of delete_completed too.
  options.delete_completed = true;
  JQ_ASSERT_OK_AND_ASSIGN(auto deleting, PgQueue::Open(testing::TestDatabaseUrl(), options));
  ASSERT_THAT(deleting->EnqueueMany({Job("d"), Job("d"), Job("d")}).status(), IsOk());
  ClaimRequest d = Request(1);
  d.job_types = {"d"};
  JQ_ASSERT_OK_AND_ASSIGN(claimed, deleting->Claim(d));
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_THAT(deleting->Complete(claimed[0]), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(claimed, deleting->Claim(d));
  ASSERT_EQ(claimed.size(), 1u);
  const PgQueue::Completion done[] = {{claimed[0], "null"}};
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::CompleteAndClaimResult next,
                          deleting->CompleteAndClaim(done, d));
  EXPECT_TRUE(next.lost_job_ids.empty());
  ASSERT_EQ(next.claimed.size(), 1u);
  ASSERT_THAT(deleting->Release(next.claimed[0]), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(auto batch, deleting->ClaimHeld(d));
  ASSERT_EQ(batch->leases().size(), 1u);
  const std::vector<PgQueue::HeldBatch::Outcome> outcomes = {
      {batch->leases()[0].job_id, true, "null"}};
  JQ_ASSERT_OK_AND_ASSIGN(PgQueue::HeldBatch::Settled settled, batch->Settle(outcomes, {}));
  EXPECT_EQ(settled.completed, 1);
  EXPECT_EQ(
      schema_.Query("SELECT count(*) FROM " + longest.name + ".job_queue WHERE job_type = 'd'"),
      "0");
}

// A running process prepares its statements again each time operator DDL changes a result
// column's type. Under the longest schema name, the regenerated names of the longest
// statements were cut at 63 bytes, so the second regeneration collided with the first and
// every later call failed ("prepared statement ... already exists").
TEST_F(PgQueueTest, StatementsArePreparedAgainAfterEachColumnTypeChange) {
  const LongestSchema longest(schema_, 'y');
  PgOptions options;
  options.schema = longest.name;
  options.pool_size = 1;
  JQ_ASSERT_OK_AND_ASSIGN(auto queue, PgQueue::Open(testing::TestDatabaseUrl(), options));
  ASSERT_THAT(queue->Migrate().status(), IsOk());
  for (int i = 0; i < 4; ++i) ASSERT_THAT(queue->Enqueue(Job("t")).status(), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<Lease> held, queue->Claim(Request(1)));
  ASSERT_EQ(held.size(), 1u);
  for (const char* type : {"", "integer", "smallint"}) {
    if (*type != '\0') {
      schema_.Query(absl::StrCat("ALTER TABLE ", longest.name,
                                 ".job_queue ALTER COLUMN priority TYPE ", type));
    }
    const PgQueue::Completion done[] = {{held[0], "null"}};
    absl::StatusOr<PgQueue::CompleteAndClaimResult> next =
        queue->CompleteAndClaim(done, Request(1));
    ASSERT_THAT(next.status(), IsOk()) << type;
    EXPECT_TRUE(next->lost_job_ids.empty()) << type;
    ASSERT_EQ(next->claimed.size(), 1u) << type;
    held = next->claimed;
  }
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + longest.name +
                          ".job_queue WHERE status = 'completed'"),
            "3");
}

// A role with only the rights to use the queue can run migrate on an up-to-date schema (it
// does nothing). Postgres checks CREATE rights before IF NOT EXISTS, so it was refused.
TEST_F(PgQueueTest, AnUpToDateMigrateNeedsNoRightsToCreate) {
  JQ_ASSERT_OK_AND_ASSIGN(const int latest, queue_->Migrate());
  const std::string s = schema_.name();
  const std::string role = "jq_user_" + s;
  schema_.Query(absl::StrCat(
      "CREATE ROLE ", role, " LOGIN PASSWORD 'queue-user-pass'; ", "GRANT USAGE ON SCHEMA ", s,
      " TO ", role, "; ", "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ", s,
      " TO ", role, "; GRANT USAGE ON ALL SEQUENCES IN SCHEMA ", s, " TO ", role));
  struct DropRole {
    const testing::TestSchema& schema;
    std::string role;
    ~DropRole() { schema.Query("DROP OWNED BY " + role + "; DROP ROLE " + role); }
  } drop{schema_, role};
  std::string url(testing::TestDatabaseUrl().Reveal());
  const size_t from = url.find("://") + 3;
  url.replace(from, url.find('@') - from, role + ":queue-user-pass");
  PgOptions options;
  options.schema = s;
  JQ_ASSERT_OK_AND_ASSIGN(auto queue, PgQueue::Open(Secret(url), options));
  JQ_ASSERT_OK_AND_ASSIGN(const int version, queue->Migrate());
  EXPECT_EQ(version, latest);
  EXPECT_THAT(queue->Enqueue(Job("t")).status(), IsOk());
  // Registering as a waiter recounts the waiters with the migrator's rights.
  ASSERT_THAT(queue->SetWaiting("w", "default", true), IsOk());
  EXPECT_EQ(schema_.Query("SELECT last_value FROM " + s + ".job_queue_waiting"), "1");
  ASSERT_THAT(queue->SetWaiting("w", "default", false), IsOk());
  EXPECT_EQ(schema_.Query("SELECT last_value FROM " + s + ".job_queue_waiting"), "0");
}

// Postgres drops a connection sent a message over 1 GB, which read as an outage that every
// retry met again. A batch over 256 MiB is refused before anything is sent.
TEST_F(PgQueueTest, ABatchTooBigForOneMessageIsRefusedUpFront) {
  // 18 jobs of 15 MiB each (a job may carry up to 16 MiB).
  std::vector<NewJob> jobs(18, Job("t", "\"" + std::string(size_t{15} << 20, 'a') + "\""));
  jobs[1].options.delay = absl::Seconds(1);  // the unnest path, not COPY
  EXPECT_THAT(
      queue_->EnqueueMany(jobs).status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("at most 256 MiB per call"), HasSubstr("nothing was enqueued"))));
  jobs.resize(2);
  EXPECT_THAT(queue_->EnqueueMany(jobs).status(), IsOk());
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + schema_.name() + ".job_queue"), "2");
}

TEST_F(PgQueueTest, BadSchemaNamesAreRejected) {
  for (const char* bad : {"", "Ops", "1ops", "ops;drop", "o\"ps"}) {
    PgOptions options;
    options.schema = bad;
    EXPECT_THAT(PgQueue::Open(testing::TestDatabaseUrl(), options).status(),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
}

TEST_F(PgQueueTest, UnmigratedSchemaSaysRunMigrate) {
  PgOptions options;
  options.schema = "jq_never_migrated";
  JQ_ASSERT_OK_AND_ASSIGN(auto queue, PgQueue::Open(testing::TestDatabaseUrl(), options));
  EXPECT_THAT(queue->Enqueue(Job("t")).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("migrate")));
  EXPECT_THAT(queue->SchemaVersion().status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("migrate")));
}

// A library newer than the schema (migrate not run after an upgrade) says what to do.
TEST_F(PgQueueTest, SchemaBehindTheLibrarySaysRunMigrate) {
  schema_.Query(absl::StrCat("ALTER TABLE ", schema_.name(), ".job_queue_waiters DROP COLUMN pid"));
  EXPECT_THAT(queue_->SetWaiting("w", "default", true, 1234),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("jobqueue migrate")));
  schema_.Query(absl::StrCat("DROP SEQUENCE ", schema_.name(), ".job_queue_waiting"));
  EXPECT_THAT(queue_->Enqueue(Job("t")).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("jobqueue migrate")));
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + schema_.name() + ".job_queue"), "0");
}

// Workers registering and leaving at once: the count inserts read matches the table after.
TEST_F(PgQueueTest, TheWaitersCountStaysExactUnderConcurrentRegistrations) {
  PgOptions options;
  options.schema = schema_.name();
  options.pool_size = 4;
  JQ_ASSERT_OK_AND_ASSIGN(auto queue, PgQueue::Open(testing::TestDatabaseUrl(), options));
  std::vector<std::thread> threads;
  std::vector<absl::Status> failures(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 60 && failures[t].ok(); ++i) {
        // Thread t ends waiting with t workers: the last toggles of each id register it.
        const int worker = i % 4;
        const bool waiting = i >= 56 ? worker < t : i % 3 != 0;
        failures[t] = queue->SetWaiting(absl::StrCat("w", t, "-", worker), "default", waiting);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& failure : failures) ASSERT_THAT(failure, IsOk());
  const std::string s = schema_.name();
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + s + ".job_queue_waiters"), "6");
  EXPECT_EQ(schema_.Query("SELECT last_value FROM " + s + ".job_queue_waiting"), "6");
}

TEST_F(PgQueueTest, SchemaVersionOfAMigratedQueue) {
  JQ_ASSERT_OK_AND_ASSIGN(int version, queue_->SchemaVersion());
  EXPECT_EQ(version, static_cast<int>(internal::QueueMigrations(schema_.name()).size()));
}

TEST_F(PgQueueTest, JobAndCountsAsJson) {
  NewJob job = Job("t", R"({"a": "x\"y"})");
  job.options.dedupe_key = "k";
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult added, queue_->Enqueue(job));
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job got, queue_->Get(added.id));
  const std::string json = JobToJson(got);
  EXPECT_THAT(json, HasSubstr(absl::StrCat("{\"id\":", added.id, ",\"queue\":\"default\",")));
  EXPECT_THAT(json, HasSubstr(R"("payload":{"a": "x\"y"},"status":"pending")"));
  EXPECT_THAT(json, HasSubstr(R"("locked_by":null,"locked_at":null)"));
  EXPECT_THAT(json, HasSubstr(R"("dedupe_key":"k")"));
  EXPECT_THAT(json, HasSubstr(R"("finished_at":null})"));
  EXPECT_THAT(ValidateJson(json), IsOk());
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<StatusCount> counts, queue_->Counts());
  EXPECT_EQ(StatusCountsToJson(counts),
            R"([{"queue":"default","job_type":"t","status":"pending","count":1}])");
  EXPECT_EQ(StatusCountsToJson({}), "[]");
}

// jsonb keeps any JSON number exactly, so payloads with numbers past a double go in and come
// back digit for digit, one at a time and by COPY.
TEST_F(PgQueueTest, PayloadNumbersPastADoubleAreKeptExactly) {
  const std::string payload = R"({"big": 123456789012345678901234567890, "huge": 1e400})";
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult one, queue_->Enqueue(Job("t", payload)));
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<EnqueueResult> many,
                          queue_->EnqueueMany(std::vector<NewJob>(40, Job("t", payload))));
  for (int64_t id : {one.id, many.front().id, many.back().id}) {
    JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job got, queue_->Get(id));
    EXPECT_THAT(got.payload_json, HasSubstr("123456789012345678901234567890"));
    EXPECT_THAT(got.payload_json, HasSubstr("\"huge\": 1000000000000000000000"));
  }
}

// A key repeated within one batch is one job: the repeats get its id and are never written
// (they used to go in as extra jobs without a key).
TEST_F(PgQueueTest, EnqueueManyWritesARepeatedDedupeKeyOnce) {
  const std::string table = schema_.name() + ".job_queue";
  NewJob keyed = Job("sync", R"({"n": 1})");
  keyed.options.dedupe_key = "k";
  NewJob keyed2 = keyed;
  keyed2.payload_json = R"({"n": 2})";
  NewJob keyed3 = keyed;
  keyed3.payload_json = R"({"n": 3})";
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<EnqueueResult> added,
                          queue_->EnqueueMany({keyed, keyed2, keyed3}));
  ASSERT_EQ(added.size(), 3u);
  EXPECT_TRUE(added[0].inserted);
  EXPECT_FALSE(added[1].inserted);
  EXPECT_FALSE(added[2].inserted);
  EXPECT_EQ(added[1].id, added[0].id);
  EXPECT_EQ(added[2].id, added[0].id);
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + table), "1");
  EXPECT_EQ(schema_.Query("SELECT payload->>'n' FROM " + table), "1");

  // Mixed with plain jobs, another key, and the same key in another queue; "k" is live now.
  NewJob other = Job("sync", R"({"n": 4})");
  other.options.dedupe_key = "j";
  NewJob other_queue = keyed;
  other_queue.options.queue = "q2";
  std::vector<NewJob> batch = {Job("plain", R"({"p": 0})"),
                               keyed2,
                               other,
                               Job("plain", R"({"p": 1})"),
                               keyed3,
                               other,
                               other_queue,
                               Job("plain", R"({"p": 2})")};
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<EnqueueResult> mixed, queue_->EnqueueMany(batch));
  ASSERT_EQ(mixed.size(), batch.size());
  const std::vector<bool> inserted = {true, false, true, true, false, false, true, true};
  for (size_t i = 0; i < batch.size(); ++i) EXPECT_EQ(mixed[i].inserted, inserted[i]) << i;
  EXPECT_EQ(mixed[1].id, added[0].id);
  EXPECT_EQ(mixed[4].id, added[0].id);
  EXPECT_EQ(mixed[5].id, mixed[2].id);
  EXPECT_NE(mixed[6].id, added[0].id);
  for (size_t i : {0, 2, 3, 6, 7}) {
    JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job row, queue_->Get(mixed[i].id));
    EXPECT_EQ(row.payload_json, batch[i].payload_json) << i;
    EXPECT_EQ(row.queue, batch[i].options.queue) << i;
    EXPECT_EQ(row.dedupe_key, batch[i].options.dedupe_key) << i;
  }
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + table), "6");
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + table + " WHERE dedupe_key IS NULL"), "3");
}

// The first column of the first row of `sql` run on `conn` ("" when it fails or is empty).
std::string QueryOn(PGconn* conn, const std::string& sql) {
  PGresult* result = PQexec(conn, sql.c_str());
  std::string value;
  if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) > 0) {
    value = PQgetvalue(result, 0, 0);
  }
  PQclear(result);
  return value;
}

// Runs queue.EnqueueMany(batch) while another session holds an uncommitted job with dedupe
// key `key`, and commits that job once the batch waits for it: the batch statement's snapshot
// misses the twin, so the row takes the one-job path. *twin gets the other job's id.
absl::StatusOr<std::vector<EnqueueResult>> EnqueueManyAgainstALateTwin(
    PgQueue& queue, const TestSchema& schema, const std::vector<NewJob>& batch,
    const std::string& key, int64_t* twin) {
  PGconn* other = schema.Connect();
  EXPECT_TRUE(ExecOk(other, "BEGIN"));
  *twin = std::stoll(QueryOn(other, "INSERT INTO " + schema.name() +
                                        ".job_queue (job_type, dedupe_key) VALUES ('twin', '" +
                                        key + "') RETURNING id"));
  absl::StatusOr<std::vector<EnqueueResult>> result = absl::UnknownError("not run");
  std::thread enqueuer([&] { result = queue.EnqueueMany(batch); });
  const std::string waiting = absl::StrCat("SELECT count(*) FROM pg_stat_activity WHERE ",
                                           PQbackendPID(other), " = ANY (pg_blocking_pids(pid))");
  EXPECT_TRUE(testing::Eventually([&] { return schema.Query(waiting) == "1"; }));
  EXPECT_TRUE(ExecOk(other, "COMMIT"));
  enqueuer.join();
  PQfinish(other);
  return result;
}

TEST_F(PgQueueTest, EnqueueManyLooksUpALateDedupeTwinInsideItsOwnTransaction) {
  const std::string s = schema_.name();
  NewJob keyed = Job("sync", R"({"probe": 1})");
  keyed.options.dedupe_key = "late";
  int64_t twin = 0;
  absl::StatusOr<std::vector<EnqueueResult>> found = EnqueueManyAgainstALateTwin(
      *queue_, schema_, {keyed, Job("plain", R"({"batch": 1})")}, "late", &twin);
  ASSERT_THAT(found.status(), IsOk());
  ASSERT_EQ(found->size(), 2u);
  EXPECT_EQ((*found)[0].id, twin);
  EXPECT_FALSE((*found)[0].inserted);
  EXPECT_TRUE((*found)[1].inserted);

  // Now the one-job retry of a "probe" job fails (test-only trigger): the batch's other job,
  // written by the batch statement before, must not stay.
  PGconn* setup = schema_.Connect();
  ASSERT_TRUE(ExecOk(setup, "CREATE TABLE " + s + ".probe_seen (n int)"));
  ASSERT_TRUE(ExecOk(setup, "CREATE FUNCTION " + s +
                                ".fail_second_probe() RETURNS trigger LANGUAGE plpgsql AS $$ "
                                "BEGIN IF NEW.payload ? 'probe' THEN "
                                "IF EXISTS (SELECT 1 FROM " +
                                s +
                                ".probe_seen) THEN RAISE EXCEPTION 'probe written twice'; END IF; "
                                "INSERT INTO " +
                                s + ".probe_seen VALUES (1); END IF; RETURN NEW; END $$"));
  ASSERT_TRUE(ExecOk(setup, "CREATE TRIGGER fail_second_probe BEFORE INSERT ON " + s +
                                ".job_queue FOR EACH ROW EXECUTE FUNCTION " + s +
                                ".fail_second_probe()"));
  PQfinish(setup);
  keyed.options.dedupe_key = "late2";
  absl::StatusOr<std::vector<EnqueueResult>> failed = EnqueueManyAgainstALateTwin(
      *queue_, schema_, {keyed, Job("plain", R"({"batch": 2})")}, "late2", &twin);
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(failed.status().message(), HasSubstr("probe written twice"));
  EXPECT_THAT(failed.status().message(), HasSubstr("nothing was enqueued"));
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + s + ".job_queue WHERE payload ? 'batch'"), "1");
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + s + ".probe_seen"), "0");
  EXPECT_EQ(
      schema_.Query("SELECT status FROM " + s + ".job_queue WHERE id = " + absl::StrCat(twin)),
      "pending");
}

TEST_F(PgQueueTest, RetryFailedSkipsJobsWhoseDedupeKeyIsTaken) {
  const std::string table = schema_.name() + ".job_queue";
  auto fail_for_good = [&](NewJob job) -> int64_t {
    job.options.max_attempts = 1;
    absl::StatusOr<EnqueueResult> added = queue_->Enqueue(job);
    EXPECT_THAT(added.status(), IsOk());
    ClaimRequest request = Request(1);
    request.job_types = {job.job_type};
    absl::StatusOr<std::vector<Lease>> leases = queue_->Claim(request);
    EXPECT_TRUE(leases.ok() && leases->size() == 1u);
    EXPECT_THAT(queue_->Fail(leases->at(0), "boom").status(), IsOk());
    return added.ok() ? added->id : 0;
  };
  NewJob keyed = Job("keyed");
  keyed.options.dedupe_key = "k";
  NewJob twice = Job("twice");
  twice.options.dedupe_key = "m";
  const int64_t keyed_id = fail_for_good(keyed);
  const int64_t plain_id = fail_for_good(Job("plain"));
  const int64_t older_twice = fail_for_good(twice);
  const int64_t newer_twice = fail_for_good(twice);
  // "k" is live again; the plain job carries leftovers that a retry clears.
  JQ_ASSERT_OK_AND_ASSIGN(EnqueueResult live, queue_->Enqueue(keyed));
  ASSERT_TRUE(live.inserted);
  schema_.Query(
      absl::StrCat("UPDATE ", table,
                   " SET result = '{\"partial\": 1}', heartbeat_at = now() WHERE id = ", plain_id));

  JQ_ASSERT_OK_AND_ASSIGN(int64_t none, queue_->RetryFailed("keyed"));
  EXPECT_EQ(none, 0);
  JQ_ASSERT_OK_AND_ASSIGN(int64_t moved, queue_->RetryFailed());
  EXPECT_EQ(moved, 2);
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job plain, queue_->Get(plain_id));
  EXPECT_EQ(plain.status, JobStatus::kPending);
  EXPECT_EQ(plain.attempts, 0);
  EXPECT_FALSE(plain.result_json.has_value());
  EXPECT_FALSE(plain.heartbeat_at.has_value());
  EXPECT_EQ(plain.last_error, "");
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job still_failed, queue_->Get(keyed_id));
  EXPECT_EQ(still_failed.status, JobStatus::kFailed);
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job older, queue_->Get(older_twice));
  EXPECT_EQ(older.status, JobStatus::kFailed);
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job newer, queue_->Get(newer_twice));
  EXPECT_EQ(newer.status, JobStatus::kPending);
  JQ_ASSERT_OK_AND_ASSIGN(jobqueue::Job live_job, queue_->Get(live.id));
  EXPECT_EQ(live_job.status, JobStatus::kPending);
}

// Only a batch that writes a job wakes waiting workers: a batch of duplicates wakes nobody.
TEST_F(PgQueueTest, EnqueueManyOfDuplicatesWakesNobody) {
  PGconn* listener = schema_.Connect();
  PQclear(PQexec(listener, absl::StrCat("LISTEN \"jobqueue_", schema_.name(), "\"").c_str()));
  // A round trip on the listening connection: notifications committed before it come first.
  auto notifications = [&] {
    PQclear(PQexec(listener, "SELECT 1"));
    int count = 0;
    while (PGnotify* note = PQnotifies(listener)) {
      ++count;
      PQfreemem(note);
    }
    return count;
  };
  // Nobody registered as waiting: inserts send nothing.
  ASSERT_THAT(queue_->Enqueue(Job("sync")).status(), IsOk());
  ASSERT_THAT(queue_->EnqueueMany({Job("sync")}).status(), IsOk());
  EXPECT_EQ(notifications(), 0);
  ASSERT_THAT(queue_->SetWaiting("idle", "default", true, PQbackendPID(listener)), IsOk());
  ASSERT_THAT(queue_->Enqueue(Job("sync")).status(), IsOk());
  EXPECT_TRUE(testing::Eventually([&] { return notifications() > 0; }));
  NewJob a = Job("sync");
  a.options.dedupe_key = "a";
  NewJob b = Job("sync");
  b.options.dedupe_key = "b";
  ASSERT_THAT(queue_->EnqueueMany({a, b}).status(), IsOk());
  EXPECT_TRUE(testing::Eventually([&] { return notifications() > 0; }));
  JQ_ASSERT_OK_AND_ASSIGN(std::vector<EnqueueResult> again, queue_->EnqueueMany({a, b}));
  EXPECT_FALSE(again[0].inserted);
  EXPECT_FALSE(again[1].inserted);
  EXPECT_EQ(notifications(), 0);
  NewJob c = Job("sync");
  c.options.dedupe_key = "c";
  ASSERT_THAT(queue_->EnqueueMany({a, c}).status(), IsOk());
  EXPECT_TRUE(testing::Eventually([&] { return notifications() > 0; }));
  PQfinish(listener);
}

// A worker killed with SIGKILL never unregisters; its listening connection closes though, and
// the next registration drops the row (while any row exists, every insert sends NOTIFY).
TEST_F(PgQueueTest, RegisteringAWaiterDropsRowsOfDeadListeners) {
  const std::string waiters = schema_.name() + ".job_queue_waiters";
  PGconn* dead = schema_.Connect();
  PGconn* alive = schema_.Connect();
  const int dead_pid = PQbackendPID(dead);
  const int alive_pid = PQbackendPID(alive);
  ASSERT_THAT(queue_->SetWaiting("dead", "default", true, dead_pid), IsOk());
  ASSERT_THAT(queue_->SetWaiting("alive", "other", true, alive_pid), IsOk());
  // Rows without a pid (older versions) go once they are an hour old.
  ASSERT_THAT(queue_->SetWaiting("old-recent", "default", true), IsOk());
  ASSERT_THAT(queue_->SetWaiting("old-stale", "default", true), IsOk());
  schema_.Query("UPDATE " + waiters +
                " SET since = now() - interval '2 hours' WHERE worker_id = 'old-stale'");
  EXPECT_EQ(schema_.Query("SELECT pid FROM " + waiters + " WHERE worker_id = 'dead'"),
            absl::StrCat(dead_pid));
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + waiters), "4");
  // Inserts read the waiters' count from a sequence the table's trigger keeps.
  const std::string waiting = "SELECT last_value FROM " + schema_.name() + ".job_queue_waiting";
  EXPECT_EQ(schema_.Query(waiting), "4");

  PQfinish(dead);
  ASSERT_TRUE(testing::Eventually([&] {
    return schema_.Query(
               absl::StrCat("SELECT count(*) FROM pg_stat_activity WHERE pid = ", dead_pid)) == "0";
  }));
  ASSERT_THAT(queue_->SetWaiting("new", "default", true, alive_pid), IsOk());
  EXPECT_EQ(schema_.Query("SELECT string_agg(worker_id, ',' ORDER BY worker_id) FROM " + waiters),
            "alive,new,old-recent");
  EXPECT_EQ(schema_.Query(waiting), "3");
  EXPECT_THAT(queue_->SetWaiting("new", "default", true, -1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_THAT(queue_->SetWaiting("new", "default", false), IsOk());
  EXPECT_EQ(schema_.Query("SELECT count(*) FROM " + waiters), "2");
  EXPECT_EQ(schema_.Query(waiting), "2");
  schema_.Query("DELETE FROM " + waiters);
  EXPECT_EQ(schema_.Query(waiting), "0");
  PQfinish(alive);
}

}  // namespace
}  // namespace jobqueue
