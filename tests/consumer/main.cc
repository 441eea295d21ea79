// Loads a configuration through the installed library and prints it masked; links the
// Postgres queue and worker too, so their dependencies must come with the package.
#include <iostream>
#include <map>
#include <string>

#include "jobqueue/config.h"
#include "jobqueue/pg_queue.h"
#include "jobqueue/version.h"
#include "jobqueue/worker.h"

int main() {
  const std::map<std::string, std::string> env = {
      {"DATABASE_URL", "postgresql://app:consumer-secret@db:5432/app"}};
  jobqueue::ConfigOptions options;
  options.service = "api";
  options.load_env_files = false;
  options.environment = &env;
  absl::StatusOr<jobqueue::Config> config = jobqueue::Config::Load(options);
  if (!config.ok()) {
    std::cerr << config.status() << "\n";
    return 1;
  }
  // No server here: a bad URL must come back as an error, not a crash.
  auto queue = jobqueue::PgQueue::Open(jobqueue::Secret::Url(""));
  auto worker = jobqueue::Worker::Create(nullptr, jobqueue::WorkerOptions{});
  if (queue.ok() || worker.ok()) return 1;
  std::cout << "jobqueue " << JOBQUEUE_VERSION_STRING << ": " << config->database_url() << "\n";
  return 0;
}
