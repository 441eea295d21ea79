// End-to-end BullMQ benchmarks of libjobqueue on the local Redis, one JSON line per run, in
// the same shape as benchmarks/peers/bullmq_bench.mjs (Node bullmq) so scripts/bench-bull can
// put them side by side.
//
//   bull_e2e add1 JOBS            one add at a time from one thread
//   bull_e2e bulk JOBS            AddBulk in batches of 1000
//   bull_e2e process JOBS CONC [PREFETCH]
//                                 drain JOBS preloaded no-op jobs at concurrency CONC
//   bull_e2e latency SAMPLES [1 PREFETCH]
//                                 add -> handler start for an idle worker (concurrency 1)
//   bull_e2e preload JOBS QUEUE   (internal) what `process` runs in a child process
//
// Payload {"n": i, "s": "hello world"} as in shared/PEERS.md. `process` preloads from a child
// process, so the worker process' CPU and peak RSS are its own (PEERS.md measures a worker
// process), and its clock starts before the worker connects, as Node's does.
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "jobqueue/bull_queue.h"
#include "jobqueue/bull_worker.h"

namespace jobqueue {
namespace {

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Peak resident set size in MB (VmHWM).
double PeakRssMb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  }
  return 0;
}

void Die(const absl::Status& status) {
  std::fprintf(stderr, "bull_e2e: %s\n", status.ToString().c_str());
  std::exit(1);
}

std::unique_ptr<BullQueue> OpenQueue(const Secret& url, const std::string& name) {
  auto queue = BullQueue::Open(url, name);
  if (!queue.ok()) Die(queue.status());
  return *std::move(queue);
}

std::string Payload(int64_t i) { return absl::StrCat(R"({"n": )", i, R"(, "s": "hello world"})"); }

void Preload(BullQueue& queue, int64_t jobs) {
  for (int64_t done = 0; done < jobs;) {
    std::vector<BullQueue::NewBullJob> batch;
    for (; done < jobs && batch.size() < 1000; ++done) batch.push_back({"noop", Payload(done), {}});
    if (auto ids = queue.AddBulk(batch); !ids.ok()) Die(ids.status());
  }
}

// `bull_e2e preload JOBS QUEUE` in a child process, waited for.
void PreloadInChild(int64_t jobs, const std::string& name) {
  std::string self = "bull_e2e", mode = "preload", count = absl::StrCat(jobs), queue = name;
  char* child_argv[] = {self.data(), mode.data(), count.data(), queue.data(), nullptr};
  pid_t pid = 0;
  int status = 0;
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, child_argv, environ) != 0 ||
      waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    Die(absl::InternalError("preload child failed"));
  }
}

int Run(int argc, char** argv) {
  const char* url_env = std::getenv("REDIS_URL");
  if (url_env == nullptr || argc < 3) {
    std::fprintf(stderr, "usage: REDIS_URL=... bull_e2e add1|bulk|process|latency N [CONC]\n");
    return 64;
  }
  const Secret url = Secret::Url(url_env);
  const std::string mode = argv[1];
  if (mode == "preload" && argc == 4) {
    int64_t jobs = 0;
    if (!absl::SimpleAtoi(argv[2], &jobs) || jobs < 1) return 64;
    Preload(*OpenQueue(url, argv[3]), jobs);
    return 0;
  }
  int64_t jobs = 0;
  int concurrency = 1;
  if (!absl::SimpleAtoi(argv[2], &jobs) || jobs < 1) return 64;
  if (argc > 3 && !absl::SimpleAtoi(argv[3], &concurrency)) return 64;
  int prefetch = BullWorkerOptions().prefetch;
  if (argc > 4 && !absl::SimpleAtoi(argv[4], &prefetch)) return 64;
  const std::string name = absl::StrCat("bench-", mode, "-", getpid());
  std::unique_ptr<BullQueue> queue = OpenQueue(url, name);

  std::string extra;
  double seconds = 0;
  double cpu = 0;
  if (mode == "add1") {
    const double cpu0 = CpuSeconds();
    const absl::Time start = absl::Now();
    for (int64_t i = 0; i < jobs; ++i) {
      if (auto id = queue->Add("noop", Payload(i)); !id.ok()) Die(id.status());
    }
    seconds = absl::ToDoubleSeconds(absl::Now() - start);
    cpu = CpuSeconds() - cpu0;
  } else if (mode == "bulk") {
    const double cpu0 = CpuSeconds();
    const absl::Time start = absl::Now();
    Preload(*queue, jobs);
    seconds = absl::ToDoubleSeconds(absl::Now() - start);
    cpu = CpuSeconds() - cpu0;
  } else if (mode == "process") {
    PreloadInChild(jobs, name);
    std::atomic<int64_t> handled{0};
    BullWorker* worker_ptr = nullptr;
    BullWorkerOptions options;
    options.concurrency = concurrency;
    options.prefetch = prefetch;
    // From before the worker connects, as Node's clock starts before `new Worker`.
    const double cpu0 = CpuSeconds();
    const absl::Time start = absl::Now();
    auto worker = BullWorker::Create(
        url, name,
        [&](BullJobContext&) -> absl::StatusOr<std::string> {
          if (++handled == jobs) worker_ptr->Stop();
          return std::string("null");
        },
        options);
    if (!worker.ok()) Die(worker.status());
    worker_ptr = worker->get();
    if (absl::Status s = (*worker)->Run(); !s.ok()) Die(s);
    seconds = absl::ToDoubleSeconds(absl::Now() - start);
    cpu = CpuSeconds() - cpu0;
    auto counts = queue->Counts();
    if (!counts.ok()) Die(counts.status());
    if (counts->completed != jobs) {
      Die(absl::InternalError(absl::StrCat("completed ", counts->completed, " of ", jobs)));
    }
    extra = absl::StrCat(",\"concurrency\":", concurrency, ",\"prefetch\":", prefetch);
  } else if (mode == "latency") {
    absl::Mutex mu;
    absl::Time sent;
    std::vector<double> samples_ms;
    bool started = false;
    BullWorkerOptions latency_options;
    latency_options.prefetch = prefetch;
    auto worker = BullWorker::Create(
        url, name,
        [&](BullJobContext&) -> absl::StatusOr<std::string> {
          absl::MutexLock lock(&mu);
          samples_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - sent));
          started = true;
          return std::string("null");
        },
        latency_options);
    if (!worker.ok()) Die(worker.status());
    std::thread runner([&] { (*worker)->Run().IgnoreError(); });
    absl::SleepFor(absl::Milliseconds(200));  // the worker is blocked on the marker
    for (int64_t i = 0; i < jobs; ++i) {
      {
        absl::MutexLock lock(&mu);
        started = false;
        sent = absl::Now();
      }
      if (auto id = queue->Add("noop", Payload(i)); !id.ok()) Die(id.status());
      {
        absl::MutexLock lock(&mu);
        mu.Await(absl::Condition(&started));
      }
      absl::SleepFor(absl::Milliseconds(2));  // let the worker go idle again
    }
    (*worker)->Stop();
    runner.join();
    std::sort(samples_ms.begin(), samples_ms.end());
    auto pct = [&](double p) {
      return samples_ms[std::min(samples_ms.size() - 1,
                                 static_cast<size_t>(p * static_cast<double>(samples_ms.size())))];
    };
    std::printf(
        "{\"impl\":\"libjobqueue\",\"bench\":\"latency\",\"samples\":%lld,\"p50_ms\":%.3f,"
        "\"p99_ms\":%.3f,\"rss_mb\":%.1f}\n",
        static_cast<long long>(jobs), pct(0.50), pct(0.99), PeakRssMb());
    return 0;
  } else {
    std::fprintf(stderr, "bull_e2e: unknown mode %s\n", mode.c_str());
    return 64;
  }
  std::printf(
      "{\"impl\":\"libjobqueue\",\"bench\":\"%s\",\"jobs\":%lld,\"seconds\":%.3f,"
      "\"jobs_per_s\":%.0f,\"cpu_us_per_job\":%.2f,\"rss_mb\":%.1f%s}\n",
      mode.c_str(), static_cast<long long>(jobs), seconds, static_cast<double>(jobs) / seconds,
      cpu * 1e6 / static_cast<double>(jobs), PeakRssMb(), extra.c_str());
  return 0;
}

}  // namespace
}  // namespace jobqueue

int main(int argc, char** argv) { return jobqueue::Run(argc, argv); }
