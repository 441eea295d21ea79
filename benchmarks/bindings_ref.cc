// The C++ side of benchmarks/bindings_bench.py: the same calls the Python and C API paths make,
// straight on PgQueue, so the difference is the bindings' cost. Enqueues --jobs jobs in
// batches of --enqueue-batch, then claims --batch at a time and completes each batch in one
// round trip until none is left. Prints one JSON line per phase.
//
//   build/benchmarks/bindings_ref --schema bench_bindings [--jobs 20000] [--batch 100]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "jobqueue/pg_queue.h"

namespace {

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "bindings_ref: %s\n", message.c_str());
  std::exit(1);
}

void Emit(const char* phase, int jobs, absl::Duration elapsed) {
  std::printf("{\"path\":\"c++\",\"phase\":\"%s\",\"jobs\":%d,\"seconds\":%.4f}\n", phase, jobs,
              absl::ToDoubleSeconds(elapsed));
}

}  // namespace

int main(int argc, char** argv) {
  int jobs = 20000, batch = 100, enqueue_batch = 1000;
  std::string schema;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--schema") {
      schema = argv[i + 1];
      continue;
    }
    int* target = flag == "--jobs"            ? &jobs
                  : flag == "--batch"         ? &batch
                  : flag == "--enqueue-batch" ? &enqueue_batch
                                              : nullptr;
    if (target == nullptr || !absl::SimpleAtoi(argv[i + 1], target) || *target < 1) {
      Die(absl::StrCat("bad flag ", flag, " (--schema S --jobs N --batch N --enqueue-batch N)"));
    }
  }
  const char* url = std::getenv("DATABASE_URL");
  if (url == nullptr || schema.empty()) Die("set DATABASE_URL and pass --schema");
  jobqueue::PgOptions options;
  options.schema = schema;
  auto queue = jobqueue::PgQueue::Open(jobqueue::Secret::Url(url), options);
  if (!queue.ok()) Die(queue.status().ToString());
  if (auto migrated = (*queue)->Migrate(); !migrated.ok()) Die(migrated.status().ToString());

  absl::Time start = absl::Now();
  std::vector<jobqueue::NewJob> chunk;
  for (int i = 0; i < jobs; ++i) {
    jobqueue::NewJob job;
    job.job_type = "bench";
    job.payload_json = absl::StrCat(R"({"n": )", i, R"(, "s": "hello world"})");
    chunk.push_back(std::move(job));
    if (static_cast<int>(chunk.size()) == enqueue_batch || i == jobs - 1) {
      if (auto added = (*queue)->EnqueueMany(chunk); !added.ok()) Die(added.status().ToString());
      chunk.clear();
    }
  }
  Emit("enqueue", jobs, absl::Now() - start);

  start = absl::Now();
  jobqueue::ClaimRequest claim;
  claim.worker_id = "bindings-ref";
  claim.limit = batch;
  jobqueue::ClaimRequest none = claim;
  none.limit = 0;
  int done = 0;
  while (true) {
    auto leases = (*queue)->Claim(claim);
    if (!leases.ok()) Die(leases.status().ToString());
    if (leases->empty()) break;
    std::vector<jobqueue::PgQueue::Completion> completions;
    for (jobqueue::Lease& lease : *leases) completions.push_back({std::move(lease), "null"});
    if (auto r = (*queue)->CompleteAndClaim(completions, none); !r.ok()) {
      Die(r.status().ToString());
    }
    done += static_cast<int>(completions.size());
  }
  Emit("claim+complete", done, absl::Now() - start);
  return done == jobs ? 0 : 1;
}
