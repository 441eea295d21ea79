// Google Benchmark micro-benchmarks of PgQueue against the real local Postgres (DATABASE_URL),
// in schema bench_micro (recreated per benchmark).
//
//   eval "$(scripts/services env)"; build/benchmarks/pg_bench [--benchmark_filter=Claim]
#include <benchmark/benchmark.h>
#include <libpq-fe.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "jobqueue/pg_queue.h"

namespace {

using jobqueue::NewJob;
using jobqueue::PgQueue;

constexpr char kSchema[] = "bench_micro";

void Sql(benchmark::State& state, const std::string& sql) {
  PGconn* conn = PQconnectdb(std::getenv("DATABASE_URL"));
  PQclear(PQexec(conn, "SET client_min_messages = warning"));
  PGresult* result = PQexec(conn, sql.c_str());
  const ExecStatusType status = PQresultStatus(result);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    state.SkipWithError(PQresultErrorMessage(result));
  }
  PQclear(result);
  PQfinish(conn);
}

std::unique_ptr<PgQueue> Fresh(benchmark::State& state) {
  if (std::getenv("DATABASE_URL") == nullptr) {
    state.SkipWithError("DATABASE_URL is not set");
    return nullptr;
  }
  Sql(state, absl::StrCat("DROP SCHEMA IF EXISTS ", kSchema, " CASCADE"));
  jobqueue::PgOptions options;
  options.schema = kSchema;
  auto queue = PgQueue::Open(jobqueue::Secret::Url(std::getenv("DATABASE_URL")), options);
  if (!queue.ok() || !(*queue)->Migrate().ok()) {
    state.SkipWithError("cannot open the queue");
    return nullptr;
  }
  return *std::move(queue);
}

NewJob Job(int64_t i) {
  NewJob job;
  job.job_type = "bench";
  job.payload_json = absl::StrCat(R"({"n": )", i, R"(, "s": "hello world"})");
  return job;
}

void BM_EnqueueOne(benchmark::State& state) {
  auto queue = Fresh(state);
  if (!queue) return;
  int64_t i = 0;
  for (auto _ : state) {
    if (!queue->Enqueue(Job(i++)).ok()) state.SkipWithError("enqueue failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EnqueueOne)->UseRealTime();

void BM_EnqueueBatch(benchmark::State& state) {
  auto queue = Fresh(state);
  if (!queue) return;
  std::vector<NewJob> batch;
  for (int64_t i = 0; i < state.range(0); ++i) batch.push_back(Job(i));
  for (auto _ : state) {
    if (!queue->EnqueueMany(batch).ok()) state.SkipWithError("enqueue failed");
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_EnqueueBatch)->Arg(100)->Arg(1000)->UseRealTime();

// Claim + complete at batch k, as the worker does it: complete the last batch and claim the
// next in one round trip. Arg 1: finished rows already in the table (0 or 1,000,000), to show
// the claim cost stays flat.
void BM_CompleteAndClaim(benchmark::State& state) {
  auto queue = Fresh(state);
  if (!queue) return;
  const int batch = static_cast<int>(state.range(0));
  if (state.range(1) > 0) {
    Sql(state, absl::StrCat("INSERT INTO ", kSchema,
                            ".job_queue (job_type, payload, status, attempts, finished_at) "
                            "SELECT 'bench', '{}', 'completed', 1, now() FROM generate_series(1, ",
                            state.range(1), ")"));
  }
  // Enough pending jobs for the whole run.
  const int64_t pending = 300000;
  std::vector<NewJob> chunk;
  for (int64_t i = 0; i < pending; ++i) {
    chunk.push_back(Job(i));
    if (chunk.size() == 5000) {
      (void)queue->EnqueueMany(chunk);
      chunk.clear();
    }
  }
  Sql(state, absl::StrCat("VACUUM ANALYZE ", kSchema, ".job_queue"));
  // The preload's WAL is flushed now, not by a checkpoint during the timed loop.
  Sql(state, "CHECKPOINT");
  jobqueue::ClaimRequest request;
  request.worker_id = "bench";
  request.limit = batch;
  std::vector<PgQueue::Completion> done;
  int64_t processed = 0;
  for (auto _ : state) {
    auto result = queue->CompleteAndClaim(done, request);
    if (!result.ok() || result->claimed.empty()) {
      state.SkipWithError("claim failed or the preload ran out");
      break;
    }
    processed += static_cast<int64_t>(done.size());
    done.clear();
    for (jobqueue::Lease& lease : result->claimed) done.push_back({std::move(lease), "null"});
  }
  state.SetItemsProcessed(processed);
  state.counters["finished_rows"] = static_cast<double>(state.range(1));
}
BENCHMARK(BM_CompleteAndClaim)
    ->ArgsProduct({{1, 10, 100}, {0}})
    ->Args({100, 1000000})
    ->UseRealTime()
    ->MinTime(3.0);

// The same work as two round trips (claim, then complete each lease), for comparison.
void BM_ClaimThenComplete(benchmark::State& state) {
  auto queue = Fresh(state);
  if (!queue) return;
  std::vector<NewJob> chunk;
  for (int64_t i = 0; i < 100000; ++i) {
    chunk.push_back(Job(i));
    if (chunk.size() == 5000) {
      (void)queue->EnqueueMany(chunk);
      chunk.clear();
    }
  }
  jobqueue::ClaimRequest request;
  request.worker_id = "bench";
  request.limit = static_cast<int>(state.range(0));
  int64_t processed = 0;
  for (auto _ : state) {
    auto leases = queue->Claim(request);
    if (!leases.ok() || leases->empty()) {
      state.SkipWithError("claim failed or the preload ran out");
      break;
    }
    for (const jobqueue::Lease& lease : *leases) (void)queue->Complete(lease);
    processed += static_cast<int64_t>(leases->size());
  }
  state.SetItemsProcessed(processed);
}
BENCHMARK(BM_ClaimThenComplete)->Arg(1)->Arg(10)->UseRealTime()->MinTime(3.0);

}  // namespace

BENCHMARK_MAIN();
