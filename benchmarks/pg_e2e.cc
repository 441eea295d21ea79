// End-to-end Postgres figures, measured as shared/PEERS.md measures the peers, printed as one
// JSON line per figure on stdout (the contract of benchmarks/peers/*.mjs); progress on stderr.
//
//   eval "$(scripts/services env)"
//   build/benchmarks/pg_e2e [--jobs 20000] [--only NAME] [--concurrency 8] [--batch 1000]
//                           [--dispatchers 2] [--seq-jobs 2000] [--transaction-budget-ms 0]
//                           [--enqueue-statements N] [--send-seconds S] [--send-threads 8]
//
// Measurements (--only NAME): send (one at a time from 1 thread, --seq-jobs), send-8 (from
// --send-threads threads), send-paired and send-paired-8 (only when named: 1 or --send-threads
// threads alternating with pgbench's one-row insert; with --paired-raw-ours, with our own insert
// statement sent by plain libpq, which leaves the library's client cost), insert (batches of 1,000;
// insert-2 from 2 threads), work (--jobs preloaded, no-op handler, from Run() until every job is
// completed), latency (1,000 jobs 2 ms apart to an idle worker: enqueue -> handler start),
// claim-delayed (only when named: 200 claims finding nothing due beside --jobs jobs a day ahead).
// Worker RSS is measured on the `jobqueue work` process by scripts/bench-pg. Schema bench_jobqueue,
// dropped and recreated before every measurement.
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "jobqueue/pg_queue.h"
#include "jobqueue/worker.h"

namespace {

using jobqueue::NewJob;
using jobqueue::PgQueue;

constexpr char kSchema[] = "bench_jobqueue";

struct Flags {
  int jobs = 20000;
  int seq_jobs = 2000;
  int concurrency = 8;
  int batch = 1000;
  int dispatchers = 2;
  int budget_ms = 0;              // WorkerOptions::transaction_budget; 0 = off
  bool delete_completed = false;  // PgOptions::delete_completed
  int send_seconds = 0;           // send/send-8 run this long instead of --seq-jobs per thread
  int send_threads = 8;           // the threads of send-8 and send-paired-8
  int enqueue_statements = -1;    // PgOptions::max_enqueue_statements; -1 = the default
  int backlog = 0;                // insert/insert-2: pending jobs in the table before timing
  int held = 0;                   // work: jobs of another queue left processing by another worker
  bool batch_times = false;       // insert/insert-2: each batch's milliseconds to stderr
  bool paired_ours_raw = false;   // send-paired: the raw blocks run our own statement by libpq
  bool warm = false;              // insert/insert-2: the same pass untimed first, then TRUNCATE
  std::string only;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "pg_e2e: %s\n", message.c_str());
  std::exit(1);
}

void Emit(const std::string& what, int64_t jobs, double seconds, const std::string& extra = "") {
  std::printf(
      "{\"peer\":\"libjobqueue\",\"what\":\"%s\",\"jobs\":%lld,\"seconds\":%.4f,"
      "\"jobs_per_s\":%.0f%s}\n",
      what.c_str(), static_cast<long long>(jobs), seconds, jobs / seconds, extra.c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "libjobqueue | %s | %lld jobs in %.3f s = %.0f jobs/s%s\n", what.c_str(),
               static_cast<long long>(jobs), seconds, jobs / seconds, extra.c_str());
}

const char* DatabaseUrl() {
  const char* url = std::getenv("DATABASE_URL");
  if (url == nullptr) Die("DATABASE_URL is not set (eval \"$(scripts/services env)\")");
  return url;
}

void Sql(const std::string& sql) {
  PGconn* conn = PQconnectdb(DatabaseUrl());
  if (PQstatus(conn) != CONNECTION_OK) Die(PQerrorMessage(conn));
  PQclear(PQexec(conn, "SET client_min_messages = warning"));
  PGresult* result = PQexec(conn, sql.c_str());
  const ExecStatusType status = PQresultStatus(result);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    Die(absl::StrCat(sql.substr(0, 60), ": ", PQresultErrorMessage(result)));
  }
  PQclear(result);
  PQfinish(conn);
}

NewJob Payload(int i) {
  NewJob job;
  job.job_type = "bench";
  job.payload_json = absl::StrCat(R"({"n": )", i, R"(, "s": "hello world"})");
  return job;
}

// An autovacuum worker left busy by an earlier measurement (or a peer's) takes a core of
// this 2-core machine from the next one: wait for it, at most a minute. The stats snapshot
// is per transaction, so each round clears it; other roles' backends show no backend_type
// without pg_read_all_stats. benchmarks/peers/common.mjs does the same.
void WaitForAutovacuum() {
  Sql(R"sql(DO $$ BEGIN
  IF NOT pg_has_role('pg_read_all_stats', 'USAGE') THEN
    RAISE WARNING 'this role cannot see autovacuum workers (needs pg_read_all_stats): not waiting';
    RETURN;
  END IF;
  FOR i IN 1..300 LOOP
    PERFORM pg_stat_clear_snapshot();
    EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'autovacuum worker');
    PERFORM pg_sleep(0.2);
  END LOOP;
END $$)sql");
}

// A fresh, migrated schema and a queue on it.
std::unique_ptr<PgQueue> FreshQueue(int pool_size, int enqueue_statements = -1,
                                    bool delete_completed = false) {
  Sql(absl::StrCat("DROP SCHEMA IF EXISTS ", kSchema, " CASCADE"));
  jobqueue::PgOptions options;
  options.schema = kSchema;
  options.pool_size = pool_size;
  // Timing starts with the pool open, as a running service's is (the peers open theirs first).
  options.connections_at_open = pool_size;
  if (enqueue_statements >= 0) options.max_enqueue_statements = enqueue_statements;
  options.delete_completed = delete_completed;
  auto queue = PgQueue::Open(jobqueue::Secret::Url(DatabaseUrl()), options);
  if (!queue.ok()) Die(queue.status().ToString());
  if (auto v = (*queue)->Migrate(); !v.ok()) Die(v.status().ToString());
  Sql("CHECKPOINT");
  WaitForAutovacuum();
  return *std::move(queue);
}

void Preload(PgQueue& queue, int n) {
  std::vector<NewJob> batch;
  for (int i = 0; i < n; ++i) {
    batch.push_back(Payload(i));
    if (batch.size() == 5000 || i == n - 1) {
      if (auto r = queue.EnqueueMany(batch); !r.ok()) Die(r.status().ToString());
      batch.clear();
    }
  }
  Sql(absl::StrCat("VACUUM ANALYZE ", kSchema, ".job_queue"));
}

// One job per Enqueue() call from `threads` threads: --seq-jobs each, or with --send-seconds
// as many as fit in that time (pgbench's way of measuring its insert ceiling).
void MeasureSend(const Flags& flags, int threads) {
  auto queue = FreshQueue(threads, flags.enqueue_statements);
  std::atomic<int> errors{0};
  std::atomic<int64_t> sent{0};
  const absl::Time t0 = absl::Now();
  const absl::Time deadline = t0 + absl::Seconds(flags.send_seconds);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0;; ++i) {
        if (flags.send_seconds > 0 ? absl::Now() >= deadline : i >= flags.seq_jobs) break;
        if (!queue->Enqueue(Payload(t * 1000000 + i)).ok()) ++errors;
        ++sent;
      }
    });
  }
  for (std::thread& w : workers) w.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  if (errors > 0) Die("enqueue errors during send");
  Emit(threads == 1 ? "send one at a time"
                    : absl::StrCat("send one at a time, ", threads, " threads"),
       sent.load(), seconds, absl::StrCat(",\"threads\":", threads));
}

// `threads` threads alternating pgbench's one-row insert (the statement of
// benchmarks/peers/pgbench/insert1.sql, prepared, on bench_raw.job_queue) with Enqueue(), in
// 100 ms blocks all threads share. Both see the disk of the same moment: fsync speed here
// drifts by up to 4x within minutes, so an insert ceiling and our rate taken in separate runs
// can mislead. Blocks, not single statements: a backend woken for each statement would add the
// same cost to both and flatter the ratio.
void MeasureSendPaired(const Flags& flags, int threads) {
  auto queue = FreshQueue(threads, flags.enqueue_statements);
  constexpr absl::Duration kBlock = absl::Milliseconds(100);
  // Blocks go raw, ours, ours, raw: neither always follows the other.
  auto is_raw_block = [](int64_t block) { return block % 4 == 0 || block % 4 == 3; };
  const int64_t blocks = 4 * std::max<int64_t>(1, flags.send_seconds * 10 / 4);
  std::atomic<int64_t> raw_jobs{0}, ours_jobs{0};
  std::atomic<int> n{0};
  std::vector<PGconn*> raws;
  for (int t = 0; t < threads; ++t) {
    PGconn* raw = PQconnectdb(DatabaseUrl());
    if (PQstatus(raw) != CONNECTION_OK) Die(PQerrorMessage(raw));
    // The library's one-job insert (QueueSql::enqueue_one_plain in src/pg/queue_sql.cc) as
    // the statement log shows it for schema bench_jobqueue.
    constexpr char kOurs[] = R"sql(
INSERT INTO "bench_jobqueue".job_queue (queue, job_type, payload, priority, run_at, max_attempts)
VALUES ($1, $2, $3::jsonb, $4, CASE WHEN $5::bigint IS NULL THEN now() + $6::bigint *
        interval '1 microsecond' ELSE to_timestamp($5::bigint / 1000000.0) END, $7)
RETURNING id, (SELECT pg_notify('jobqueue_bench_jobqueue', '')
                 FROM "bench_jobqueue".job_queue_waiters LIMIT 1))sql";
    constexpr char kPgbench[] = R"sql(
INSERT INTO bench_raw.job_queue (job_type, payload, status, attempts, run_at, created_at, updated_at)
VALUES ('bench', jsonb_build_object('n', CAST($1 AS bigint), 's', 'hello world'), 'pending', 0,
        now(), now(), now()))sql";
    PGresult* prepared =
        PQprepare(raw, "insert1", flags.paired_ours_raw ? kOurs : kPgbench, 0, nullptr);
    if (PQresultStatus(prepared) != PGRES_COMMAND_OK) {
      Die(
          absl::StrCat("send-paired needs bench_raw.job_queue (psql -v rows=0 -f "
                       "benchmarks/peers/pgbench/setup.sql): ",
                       PQresultErrorMessage(prepared)));
    }
    PQclear(prepared);
    raws.push_back(raw);
  }
  const absl::Time t0 = absl::Now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, raw = raws[t]] {
      for (;;) {
        const int64_t block = (absl::Now() - t0) / kBlock;
        if (block >= blocks) break;
        const int i = ++n;
        if (is_raw_block(block)) {
          PGresult* inserted;
          if (flags.paired_ours_raw) {
            // Our statement's parameters as the library sends them for a job without options.
            const std::string payload = Payload(i).payload_json;
            const char* values[] = {"default", "bench", payload.c_str(), "0", nullptr, "0", "5"};
            inserted = PQexecPrepared(raw, "insert1", 7, values, nullptr, nullptr, 0);
          } else {
            const std::string value = absl::StrCat(i);
            const char* values[] = {value.c_str()};
            inserted = PQexecPrepared(raw, "insert1", 1, values, nullptr, nullptr, 0);
          }
          const ExecStatusType want = flags.paired_ours_raw ? PGRES_TUPLES_OK : PGRES_COMMAND_OK;
          if (PQresultStatus(inserted) != want) Die(PQresultErrorMessage(inserted));
          PQclear(inserted);
          ++raw_jobs;
        } else {
          if (auto r = queue->Enqueue(Payload(i)); !r.ok()) Die(r.status().ToString());
          ++ours_jobs;
        }
      }
    });
  }
  for (std::thread& w : workers) w.join();
  for (PGconn* raw : raws) PQfinish(raw);
  const double each_seconds = absl::ToDoubleSeconds(kBlock) * static_cast<double>(blocks / 2);
  const double raw_rate = raw_jobs / each_seconds;
  const double ours_rate = ours_jobs / each_seconds;
  Emit(absl::StrCat("send paired with ",
                    flags.paired_ours_raw ? "our insert by libpq, " : "pgbench's insert, ", threads,
                    threads == 1 ? " thread" : " threads"),
       ours_jobs.load(), each_seconds,
       absl::StrFormat(",\"threads\":%d,\"insert1_jobs_per_s\":%.0f,\"share\":%.3f", threads,
                       raw_rate, ours_rate / raw_rate));
}

// Batches of 1,000 (EnqueueMany) from `threads` producers taking the next batch of --jobs as
// each finishes one (a fixed split left one producer idle while the other finished), into a
// fresh table or one already holding --backlog pending jobs (whose indexes have grown past
// their first splits). With --warm, the same pass first runs untimed on the same pool and the
// table is truncated: a new server backend page-faults on each shared buffer and WAL page it
// touches first, which on this VM cost a cold 20,000-job pass about a third of its time.
void MeasureInsert(const Flags& flags, int threads) {
  auto queue = FreshQueue(threads);
  if (flags.backlog > 0) {
    Preload(*queue, flags.backlog);
    Sql("CHECKPOINT");
  }
  constexpr int kBatch = 1000;
  const int batches = (flags.jobs + kBatch - 1) / kBatch;
  auto run_producers = [&](bool print_batch_times) {
    std::atomic<int> next_batch{0};
    std::vector<std::thread> producers;
    for (int t = 0; t < threads; ++t) {
      producers.emplace_back([&, t] {
        std::vector<NewJob> batch;
        for (int b = next_batch++; b < batches; b = next_batch++) {
          for (int i = b * kBatch; i < std::min(flags.jobs, (b + 1) * kBatch); ++i) {
            batch.push_back(Payload(i));
          }
          const absl::Time sent = absl::Now();
          if (auto r = queue->EnqueueMany(batch); !r.ok()) Die(r.status().ToString());
          if (print_batch_times) {
            std::fprintf(stderr, "batch %d (producer %d): %.2f ms\n", b, t,
                         absl::ToDoubleMilliseconds(absl::Now() - sent));
          }
          batch.clear();
        }
      });
    }
    for (std::thread& p : producers) p.join();
  };
  if (flags.warm) {
    run_producers(false);
    Sql(absl::StrCat("TRUNCATE ", kSchema, ".job_queue"));
    // TRUNCATE keeps the count of changed rows that makes an autoanalyze due.
    Sql(absl::StrCat("ANALYZE ", kSchema, ".job_queue"));
    Sql("CHECKPOINT");
    WaitForAutovacuum();
  }
  const absl::Time t0 = absl::Now();
  run_producers(flags.batch_times);
  std::string what = threads == 1 ? std::string("insert chunks=1000")
                                  : absl::StrCat("insert chunks=1000, ", threads, " threads");
  if (flags.backlog > 0) absl::StrAppend(&what, ", backlog ", flags.backlog);
  if (flags.warm) absl::StrAppend(&what, ", warm pool");
  Emit(what, flags.jobs, absl::ToDoubleSeconds(absl::Now() - t0),
       absl::StrCat(",\"threads\":", threads, ",\"backlog\":", flags.backlog,
                    ",\"warm\":", flags.warm ? "true" : "false"));
}

// Claims that find nothing due while --jobs jobs wait a day ahead (what an idle worker, or one
// keeping up with a trickle, does each round): they must not walk the delayed jobs.
void MeasureClaimDelayed(const Flags& flags) {
  auto queue = FreshQueue(1);
  std::vector<NewJob> batch;
  for (int i = 0; i < flags.jobs; ++i) {
    batch.push_back(Payload(i));
    batch.back().options.delay = absl::Hours(24);
    if (batch.size() == 5000 || i == flags.jobs - 1) {
      if (auto r = queue->EnqueueMany(batch); !r.ok()) Die(r.status().ToString());
      batch.clear();
    }
  }
  Sql(absl::StrCat("VACUUM ANALYZE ", kSchema, ".job_queue"));
  jobqueue::ClaimRequest request;
  request.worker_id = "bench";
  request.limit = 100;
  constexpr int kClaims = 200;
  const absl::Time t0 = absl::Now();
  for (int i = 0; i < kClaims; ++i) {
    auto claimed = queue->Claim(request);
    if (!claimed.ok()) Die(claimed.status().ToString());
    if (!claimed->empty()) Die("a delayed job was claimed");
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  Emit(absl::StrCat("empty claims, ", flags.jobs, " jobs delayed a day"), kClaims, seconds,
       absl::StrFormat(",\"ms_per_claim\":%.3f", seconds * 1000 / kClaims));
}

// Other workers' leases (another queue, long jobs): claimed after Preload's ANALYZE, as they
// are taken while a queue runs, so the planner's statistics do not count them.
void HoldElsewhere(PgQueue& queue, int n) {
  std::vector<NewJob> batch;
  for (int i = 0; i < n; ++i) {
    batch.push_back(Payload(i));
    batch.back().options.queue = "held";
  }
  if (n > 0) {
    if (auto r = queue.EnqueueMany(batch); !r.ok()) Die(r.status().ToString());
  }
  jobqueue::ClaimRequest request;
  request.worker_id = "elsewhere";
  request.queue = "held";
  request.limit = 5000;
  for (int claimed = 0; claimed < n;) {
    auto leases = queue.Claim(request);
    if (!leases.ok()) Die(leases.status().ToString());
    if (leases->empty()) Die("held jobs not claimable");
    claimed += static_cast<int>(leases->size());
  }
}

jobqueue::WorkerOptions BenchWorkerOptions(const Flags& flags) {
  jobqueue::WorkerOptions options;
  options.name = "Bench";
  options.concurrency = flags.concurrency;
  options.batch_size = flags.batch;
  options.dispatchers = flags.dispatchers;
  options.transaction_budget = absl::Milliseconds(flags.budget_ms);
  options.poll_interval = absl::Seconds(1);
  options.log_startup = false;
  return options;
}

void MeasureWork(const Flags& flags) {
  auto queue = FreshQueue(flags.dispatchers + 2, -1, flags.delete_completed);
  Preload(*queue, flags.jobs);
  HoldElsewhere(*queue, flags.held);
  auto worker = jobqueue::Worker::Create(queue.get(), BenchWorkerOptions(flags));
  if (!worker.ok()) Die(worker.status().ToString());
  (void)(*worker)->Register("bench", [](jobqueue::JobContext&) -> absl::StatusOr<std::string> {
    return std::string("null");
  });
  const absl::Time t0 = absl::Now();
  std::thread runner([&] { (void)(*worker)->Run(); });
  // Checked every 20 ms, as benchmarks/peers/*.mjs poll the database for the peers: the same
  // granularity at the end of the window. stats().completed counts committed completions.
  while ((*worker)->stats().completed < flags.jobs) absl::SleepFor(absl::Milliseconds(20));
  const double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  (*worker)->Stop();
  runner.join();
  Emit(absl::StrCat(
           "work concurrency=", flags.concurrency, " batch=", flags.batch,
           " dispatchers=", flags.dispatchers,
           flags.budget_ms > 0 ? absl::StrCat(" transaction_budget=", flags.budget_ms, "ms") : "",
           flags.delete_completed ? " delete_completed" : ""),
       flags.jobs, seconds, absl::StrCat(",\"claims\":", (*worker)->stats().claims));
}

void MeasureLatency(const Flags& flags) {
  auto queue = FreshQueue(4);
  jobqueue::WorkerOptions options = BenchWorkerOptions(flags);
  options.batch_size = 0;
  options.dispatchers = 1;
  options.poll_interval = absl::Seconds(10);  // wake-ups must come from NOTIFY
  auto worker = jobqueue::Worker::Create(queue.get(), options);
  if (!worker.ok()) Die(worker.status().ToString());
  constexpr int kJobs = 1000;
  std::vector<absl::Time> enqueued(kJobs);
  std::vector<double> started_ms(kJobs, -1);
  absl::Mutex mu;
  std::atomic<int> done{0};
  (void)(*worker)->Register("bench", [&](jobqueue::JobContext& job) -> absl::StatusOr<std::string> {
    const absl::Time now = absl::Now();
    // The payload's "n" is the index into `enqueued`.
    const std::string& p = job.lease().payload_json;
    int n = -1;
    const size_t at = p.find(':');
    (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(p.substr(at + 1, p.find(',') - at - 1)), &n);
    if (n >= 0 && n < kJobs) {
      absl::MutexLock lock(&mu);
      started_ms[n] = absl::ToDoubleMilliseconds(now - enqueued[n]);
    }
    ++done;
    return std::string("null");
  });
  std::thread runner([&] { (void)(*worker)->Run(); });
  absl::SleepFor(absl::Milliseconds(500));  // let it go idle and LISTEN
  for (int i = 0; i < kJobs; ++i) {
    {
      absl::MutexLock lock(&mu);
      enqueued[i] = absl::Now();
    }
    if (auto r = queue->Enqueue(Payload(i)); !r.ok()) Die(r.status().ToString());
    absl::SleepFor(absl::Milliseconds(2));
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (done < kJobs && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  (*worker)->Stop();
  runner.join();
  std::vector<double> ms;
  {
    absl::MutexLock lock(&mu);
    for (double v : started_ms) {
      if (v >= 0) ms.push_back(v);
    }
  }
  if (ms.size() != static_cast<size_t>(kJobs)) Die("latency: not every job started");
  std::sort(ms.begin(), ms.end());
  const double p50 = ms[ms.size() / 2];
  const double p99 = ms[ms.size() * 99 / 100];
  std::printf(
      "{\"peer\":\"libjobqueue\",\"what\":\"enqueue->start latency, idle worker\",\"jobs\":%d,"
      "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
      kJobs, p50, p99, ms.back());
  std::fflush(stdout);
  std::fprintf(stderr, "libjobqueue | latency | p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", p50, p99,
               ms.back());
}

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> int {
      int v = 0;
      if (i + 1 >= argc || !absl::SimpleAtoi(argv[++i], &v) || v < 0) {
        Die(absl::StrCat(arg, " needs a non-negative integer"));
      }
      return v;
    };
    if (arg == "--jobs")
      flags.jobs = value();
    else if (arg == "--seq-jobs")
      flags.seq_jobs = value();
    else if (arg == "--concurrency")
      flags.concurrency = value();
    else if (arg == "--batch")
      flags.batch = value();
    else if (arg == "--dispatchers")
      flags.dispatchers = value();
    else if (arg == "--delete-completed")
      flags.delete_completed = true;
    else if (arg == "--transaction-budget-ms")
      flags.budget_ms = value();
    else if (arg == "--send-seconds")
      flags.send_seconds = value();
    else if (arg == "--send-threads")
      flags.send_threads = value();
    else if (arg == "--enqueue-statements")
      flags.enqueue_statements = value();
    else if (arg == "--backlog")
      flags.backlog = value();
    else if (arg == "--held")
      flags.held = value();
    else if (arg == "--batch-times")
      flags.batch_times = true;
    else if (arg == "--warm")
      flags.warm = true;
    else if (arg == "--paired-raw-ours")
      flags.paired_ours_raw = true;
    else if (arg == "--only" && i + 1 < argc)
      flags.only = argv[++i];
    else
      Die(absl::StrCat("unknown argument ", arg));
  }
  // The warm pass's TRUNCATE would take the backlog with it.
  if (flags.warm && flags.backlog > 0) Die("--warm and --backlog do not go together");
  static const std::set<std::string> kKnown = {
      "",       "send",     "send-8", "send-paired", "send-paired-8",
      "insert", "insert-2", "work",   "latency",     "claim-delayed"};
  if (!kKnown.contains(flags.only)) {
    Die("--only: send, send-8, send-paired, send-paired-8, insert, insert-2, work, latency or "
        "claim-delayed");
  }
  if (flags.jobs < 1 || flags.seq_jobs < 1) Die("--jobs and --seq-jobs must be positive");
  if (flags.send_threads < 1) Die("--send-threads must be positive");
  return flags;
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  auto wants = [&](const char* name) { return flags.only.empty() || flags.only == name; };
  if (wants("insert")) MeasureInsert(flags, 1);
  if (wants("insert-2")) MeasureInsert(flags, 2);
  if (wants("send")) MeasureSend(flags, 1);
  if (wants("send-8")) MeasureSend(flags, flags.send_threads);
  // Only when asked: it needs pgbench's table (benchmarks/peers/pgbench/setup.sql).
  if (flags.only == "send-paired") MeasureSendPaired(flags, 1);
  if (flags.only == "send-paired-8") MeasureSendPaired(flags, flags.send_threads);
  if (wants("work")) MeasureWork(flags);
  if (wants("latency")) MeasureLatency(flags);
  // Only when asked: the default run keeps the peers' protocol.
  if (flags.only == "claim-delayed") MeasureClaimDelayed(flags);
  Sql(absl::StrCat("DROP SCHEMA IF EXISTS ", kSchema, " CASCADE"));
  return 0;
}
