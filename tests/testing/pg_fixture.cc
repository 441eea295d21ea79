#include "testing/pg_fixture.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace jobqueue::testing {

Secret TestDatabaseUrl() {
  const char* url = std::getenv("DATABASE_URL");
  if (url == nullptr || *url == '\0') {
    throw std::runtime_error("DATABASE_URL is not set: run eval \"$(scripts/services env)\"");
  }
  return Secret::Url(url);
}

std::string TestWorkerBinary() {
  if (const char* env = std::getenv("JQ_TEST_WORKER"); env != nullptr && *env != '\0') return env;
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) throw std::runtime_error("cannot find the test binary's directory");
  std::string path(self, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/') + 1) + "jq_test_worker";
}

TestSchema::TestSchema() {
  static std::atomic<int> counter{0};
  name_ = absl::StrCat("t_", getpid(), "_", counter++);
  Query(absl::StrCat("DROP SCHEMA IF EXISTS ", name_, " CASCADE"));
}

TestSchema::~TestSchema() { Query(absl::StrCat("DROP SCHEMA IF EXISTS ", name_, " CASCADE")); }

std::unique_ptr<PgQueue> TestSchema::OpenQueue(int pool, PgOptions options) const {
  options.schema = name_;
  options.pool_size = pool;
  absl::StatusOr<std::unique_ptr<PgQueue>> queue = PgQueue::Open(TestDatabaseUrl(), options);
  if (!queue.ok()) throw std::runtime_error(queue.status().ToString());
  absl::StatusOr<int> version = (*queue)->Migrate();
  if (!version.ok()) throw std::runtime_error(version.status().ToString());
  return *std::move(queue);
}

PGconn* TestSchema::Connect() const {
  const Secret url = TestDatabaseUrl();
  PGconn* conn = PQconnectdb(std::string(url.Reveal()).c_str());
  if (PQstatus(conn) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(conn));
  return conn;
}

void TestSchema::AddTrigger(const std::string& name, const std::string& event,
                            const std::string& level, const std::string& body) const {
  const std::string function = absl::StrCat(name_, ".", name, "()");
  Query(absl::StrCat("CREATE FUNCTION ", function, " RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN ",
                     absl::StrReplaceAll(body, {{"{s}", name_}}), " END $$"));
  Query(absl::StrCat("CREATE TRIGGER ", name, " ", event, " ON ", name_, ".job_queue ", level,
                     " EXECUTE FUNCTION ", function));
}

std::string TestSchema::Query(const std::string& sql) const {
  PGconn* conn = Connect();
  PQclear(PQexec(conn, "SET client_min_messages = warning"));
  PGresult* result = PQexec(conn, sql.c_str());
  std::string out;
  const ExecStatusType status = PQresultStatus(result);
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    std::string message = PQresultErrorMessage(result);
    PQclear(result);
    PQfinish(conn);
    throw std::runtime_error("test query failed: " + message);
  }
  if (status == PGRES_TUPLES_OK && PQntuples(result) > 0) out = PQgetvalue(result, 0, 0);
  PQclear(result);
  PQfinish(conn);
  return out;
}

}  // namespace jobqueue::testing
