// Loads a configuration through the installed library and prints it masked.
#include <iostream>
#include <map>
#include <string>

#include "jobqueue/config.h"
#include "jobqueue/version.h"

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
  std::cout << "jobqueue " << JOBQUEUE_VERSION_STRING << ": " << config->database_url() << "\n";
  return 0;
}
