// A fresh schema per test on the real local Postgres (DATABASE_URL), dropped afterwards.
#ifndef JOBQUEUE_TESTS_TESTING_PG_FIXTURE_H_
#define JOBQUEUE_TESTS_TESTING_PG_FIXTURE_H_

#include <libpq-fe.h>

#include <memory>
#include <string>

#include "jobqueue/pg_queue.h"
#include "jobqueue/secret.h"

namespace jobqueue::testing {

// DATABASE_URL from the environment (scripts/services env); fails the test when unset.
Secret TestDatabaseUrl();

// The jq_test_worker executable: $JQ_TEST_WORKER, else beside the running test binary.
std::string TestWorkerBinary();

// A schema named t_<pid>_<n>; Drop() runs in the destructor.
class TestSchema {
 public:
  TestSchema();
  ~TestSchema();
  const std::string& name() const { return name_; }
  // Opens a queue on this schema (pool size `pool`) and migrates it.
  std::unique_ptr<PgQueue> OpenQueue(int pool = 4, PgOptions options = {}) const;
  // A plain libpq connection for checks written in SQL.
  PGconn* Connect() const;
  // Runs SQL on a fresh connection and returns the first column of the first row ("" if none).
  std::string Query(const std::string& sql) const;
  // Creates a plpgsql function <schema>.<name>() running `body` (the text between BEGIN and
  // END, naming the schema {s}) and a trigger <name> `event` ON job_queue `level`: say
  // "BEFORE INSERT", "FOR EACH ROW" or "AFTER UPDATE", "REFERENCING NEW TABLE AS n FOR EACH
  // STATEMENT".
  void AddTrigger(const std::string& name, const std::string& event, const std::string& level,
                  const std::string& body) const;

 private:
  std::string name_;
};

}  // namespace jobqueue::testing

#endif  // JOBQUEUE_TESTS_TESTING_PG_FIXTURE_H_
