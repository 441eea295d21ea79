// Durable one-row statements compared under the same disk: one thread runs each statement file
// in turn for 100 ms blocks (order reversed every round), each on its own connection, and
// prints each one's rate and its share of the first file's. Separate runs minutes apart
// compare fsync speeds more than statements here (it drifts by up to 4x within minutes).
//
//   eval "$(scripts/services env)"
//   build/benchmarks/pg_statement_pairs SECONDS FIRST.sql [OTHER.sql ...]
//
// Each file holds one statement, prepared, whose only parameter $1 gets a fresh integer per
// call (the `n` of benchmarks/peers/pgbench/insert1.sql). benchmarks/peers/pgbench/
// insert_variants.sh writes such files for variants of our table.
#include <libpq-fe.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace {

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "pg_statement_pairs: %s\n", message.c_str());
  std::exit(1);
}

struct Statement {
  std::string file;
  PGconn* conn = nullptr;
  int64_t calls = 0;
  absl::Duration spent;
};

}  // namespace

int main(int argc, char** argv) {
  int seconds = 0;
  if (argc < 3 || !absl::SimpleAtoi(argv[1], &seconds) || seconds < 1) {
    Die("usage: pg_statement_pairs SECONDS FIRST.sql [OTHER.sql ...]");
  }
  const char* url = std::getenv("DATABASE_URL");
  if (url == nullptr) Die("DATABASE_URL is not set (eval \"$(scripts/services env)\")");
  std::vector<Statement> statements;
  for (int i = 2; i < argc; ++i) {
    std::ifstream in(argv[i]);
    if (!in) Die(absl::StrCat("cannot read ", argv[i]));
    std::stringstream sql;
    sql << in.rdbuf();
    Statement s;
    s.file = argv[i];
    s.conn = PQconnectdb(url);
    if (PQstatus(s.conn) != CONNECTION_OK) Die(PQerrorMessage(s.conn));
    PGresult* prepared = PQprepare(s.conn, "s", sql.str().c_str(), 0, nullptr);
    if (PQresultStatus(prepared) != PGRES_COMMAND_OK) {
      Die(absl::StrCat(s.file, ": ", PQresultErrorMessage(prepared)));
    }
    PQclear(prepared);
    statements.push_back(std::move(s));
  }
  constexpr absl::Duration kBlock = absl::Milliseconds(100);
  const size_t k = statements.size();
  int64_t n = 0;
  const absl::Time end = absl::Now() + absl::Seconds(seconds);
  for (int round = 0; absl::Now() < end; ++round) {
    for (size_t j = 0; j < k; ++j) {
      Statement& s = statements[round % 2 == 0 ? j : k - 1 - j];
      const absl::Time t0 = absl::Now();
      absl::Time now = t0;
      for (; now - t0 < kBlock; now = absl::Now()) {
        const std::string value = absl::StrCat(++n);
        const char* values[] = {value.c_str()};
        PGresult* result = PQexecPrepared(s.conn, "s", 1, values, nullptr, nullptr, 0);
        const ExecStatusType status = PQresultStatus(result);
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
          Die(absl::StrCat(s.file, ": ", PQresultErrorMessage(result)));
        }
        PQclear(result);
        ++s.calls;
      }
      s.spent += now - t0;
    }
  }
  auto rate = [](const Statement& s) { return s.calls / absl::ToDoubleSeconds(s.spent); };
  for (const Statement& s : statements) {
    std::printf("%-40s %8.0f /s  %5.1f%%\n", s.file.c_str(), rate(s),
                100 * rate(s) / rate(statements[0]));
    PQfinish(s.conn);
  }
  return 0;
}
