// A worker process for the multi-process tests: runs jobqueue::Worker on DATABASE_URL and
// records each handler run to a file, so the tests can check exactly-once delivery and kill it
// mid-job.
//
//   jq_test_worker SCHEMA RECORD_FILE CONCURRENCY HANDLER_MS IDLE_EXIT_MS [STALE_MS [BUDGET_MS]]
//
// Every handler run appends "start <id> <attempt>" (flushed at once) and, when it returns,
// "done <id> <attempt>". HANDLER_MS is how long each handler sleeps. A StaleLockReaper with
// STALE_MS (default 3000) runs beside the worker. BUDGET_MS > 0 runs it in short-job mode
// (WorkerOptions::transaction_budget).
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "jobqueue/maintenance.h"
#include "jobqueue/worker.h"

namespace {

int Fail(const std::string& message) {
  std::cerr << "jq_test_worker: " << message << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) return Fail("usage: SCHEMA RECORD_FILE CONCURRENCY HANDLER_MS IDLE_EXIT_MS");
  int concurrency = 0, handler_ms = 0, idle_ms = 0, stale_ms = 3000, budget_ms = 0;
  if (!absl::SimpleAtoi(argv[3], &concurrency) || !absl::SimpleAtoi(argv[4], &handler_ms) ||
      !absl::SimpleAtoi(argv[5], &idle_ms) || (argc > 6 && !absl::SimpleAtoi(argv[6], &stale_ms)) ||
      (argc > 7 && !absl::SimpleAtoi(argv[7], &budget_ms))) {
    return Fail("bad number");
  }
  const char* url = std::getenv("DATABASE_URL");
  if (url == nullptr) return Fail("DATABASE_URL is not set");
  FILE* record = std::fopen(argv[2], "a");
  if (record == nullptr) return Fail("cannot open the record file");

  jobqueue::PgOptions pg;
  pg.schema = argv[1];
  pg.pool_size = 4;
  auto queue = jobqueue::PgQueue::Open(jobqueue::Secret::Url(url), pg);
  if (!queue.ok()) return Fail(queue.status().ToString());

  jobqueue::WorkerOptions options;
  options.name = "Test";
  options.concurrency = concurrency;
  options.batch_size = 4 * concurrency;
  options.poll_interval = absl::Milliseconds(500);
  options.heartbeat_interval = absl::Milliseconds(500);
  options.shutdown_timeout = absl::Seconds(5);
  if (idle_ms > 0) options.exit_when_idle = absl::Milliseconds(idle_ms);
  options.transaction_budget = absl::Milliseconds(budget_ms);
  auto worker = jobqueue::Worker::Create(queue->get(), options);
  if (!worker.ok()) return Fail(worker.status().ToString());

  absl::Mutex mu;
  auto handler = [&](jobqueue::JobContext& job) -> absl::StatusOr<std::string> {
    const jobqueue::Lease& lease = job.lease();
    {
      absl::MutexLock lock(&mu);
      absl::FPrintF(record, "start %d %d\n", lease.job_id, lease.attempt);
      std::fflush(record);
    }
    if (handler_ms > 0) absl::SleepFor(absl::Milliseconds(handler_ms));
    {
      absl::MutexLock lock(&mu);
      absl::FPrintF(record, "done %d %d\n", lease.job_id, lease.attempt);
      std::fflush(record);
    }
    return std::string("null");
  };
  for (const char* type : {"work", "slow"}) {
    if (auto s = (*worker)->Register(type, handler); !s.ok()) return Fail(s.ToString());
  }
  jobqueue::RecoverOptions recover;
  recover.stale_after = absl::Milliseconds(stale_ms);
  jobqueue::StaleLockReaper reaper(queue->get(), recover, absl::Milliseconds(500));
  if (auto s = reaper.Start(); !s.ok()) return Fail(s.ToString());
  jobqueue::StopWorkersOnSignals();
  absl::Status run = (*worker)->Run();
  reaper.Stop();
  std::fclose(record);
  if (!run.ok()) return Fail(run.ToString());
  return 0;
}
