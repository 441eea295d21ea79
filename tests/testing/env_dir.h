// A temporary folder for .env files and manifests, removed at the end of the test.
#ifndef JOBQUEUE_TESTS_TESTING_ENV_DIR_H_
#define JOBQUEUE_TESTS_TESTING_ENV_DIR_H_

#include <sys/types.h>

#include <string>

#include "absl/strings/string_view.h"

namespace jobqueue::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes `name` inside the folder with the given mode; returns its path.
  std::string Write(absl::string_view name, absl::string_view contents, mode_t mode = 0600) const;

 private:
  std::string path_;
};

// Runs a shell command, returning its exit code and filling stdout/stderr.
int RunCommand(const std::string& command, std::string* out);

}  // namespace jobqueue::testing

#endif  // JOBQUEUE_TESTS_TESTING_ENV_DIR_H_
