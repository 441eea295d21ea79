// Costs on paths that run per log line or per job: masking and redacting.
#include <benchmark/benchmark.h>

#include "jobqueue/json.h"
#include "jobqueue/secret.h"

namespace {

void BM_MaskUrl(benchmark::State& state) {
  const std::string url =
      "postgresql://jobqueue:s3cr3t-password@127.0.0.1:55432/jobqueue?sslmode=disable";
  for (auto _ : state) benchmark::DoNotOptimize(jobqueue::MaskUrl(url));
}
BENCHMARK(BM_MaskUrl);

void BM_JsonQuote(benchmark::State& state) {
  const std::string text = "{\"n\": 1, \"s\": \"hello world\"}";
  for (auto _ : state) benchmark::DoNotOptimize(jobqueue::JsonQuote(text));
}
BENCHMARK(BM_JsonQuote);

void BM_ValidateJson(benchmark::State& state) {
  const std::string text = "{\"n\": 1, \"s\": \"hello world\"}";
  for (auto _ : state) benchmark::DoNotOptimize(jobqueue::ValidateJson(text));
}
BENCHMARK(BM_ValidateJson);

}  // namespace
