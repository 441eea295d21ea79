// Postgres restarts under running worker processes: they reconnect and nothing is lost.
// Runs alone (RUN_SERIAL): the restart would disturb other tests.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "jobqueue/pg_queue.h"
#include "testing/pg_fixture.h"
#include "testing/status_matchers.h"

extern char** environ;

namespace jobqueue {
namespace {

using ::jobqueue::testing::IsOk;
using ::jobqueue::testing::TestSchema;

pid_t Spawn(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
    throw std::runtime_error(absl::StrCat("cannot start ", args[0]));
  }
  return pid;
}

int Wait(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(PgRestartTest, WorkersReconnectAndNothingIsLost) {
  constexpr int kJobs = 20000;
  int64_t completed_before = 0;
  std::string schema_name;
  std::vector<pid_t> workers;
  {
    TestSchema schema;
    schema_name = schema.name();
    std::unique_ptr<PgQueue> queue = schema.OpenQueue();
    std::vector<NewJob> batch;
    for (int i = 0; i < kJobs; ++i) {
      NewJob job;
      job.job_type = "work";
      job.payload_json = absl::StrCat(i);
      batch.push_back(std::move(job));
    }
    ASSERT_THAT(queue->EnqueueMany(batch).status(), IsOk());
    const std::string record = absl::StrCat("/tmp/jq_restart_", getpid());
    for (int i = 0; i < 2; ++i) {
      // 1 ms per job keeps the run long enough to restart in the middle of it.
      workers.push_back(Spawn({testing::TestWorkerBinary(), schema_name,
                               absl::StrCat(record, "_", i), "8", "1", "4000"}));
    }
    auto completed = [&] {
      return std::stoll(schema.Query(absl::StrCat("SELECT count(*) FROM ", schema_name,
                                                  ".job_queue WHERE status = 'completed'")));
    };
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (completed() < 1000 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
    completed_before = completed();
    ASSERT_GE(completed_before, 1000);
    ASSERT_LT(completed_before, kJobs) << "the run ended before the restart";

    const std::string services =
        absl::StrCat(std::getenv("JOBQUEUE_SOURCE_DIR"), "/scripts/services");
    ASSERT_EQ(Wait(Spawn({"/bin/bash", services, "restart-postgres"})), 0);

    for (pid_t pid : workers) EXPECT_EQ(Wait(pid), 0);
    EXPECT_EQ(completed(), kJobs);
    EXPECT_EQ(schema.Query(absl::StrCat("SELECT count(*) FROM ", schema_name,
                                        ".job_queue WHERE status <> 'completed'")),
              "0");
    for (int i = 0; i < 2; ++i) std::remove(absl::StrCat(record, "_", i).c_str());
  }
}

}  // namespace
}  // namespace jobqueue
