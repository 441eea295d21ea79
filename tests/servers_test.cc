// The local servers that scripts/services starts are reachable with the URLs it exports.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "testing/status_matchers.h"
#include "url.h"

namespace jobqueue {
namespace {

std::string RequireEnv(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

TEST(ServersTest, PostgresAcceptsDatabaseUrl) {
  const std::string url = RequireEnv("DATABASE_URL");
  ASSERT_FALSE(url.empty()) << "DATABASE_URL is not set: run eval \"$(scripts/services env)\"";
  PGconn* conn = PQconnectdb(url.c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  EXPECT_GE(PQserverVersion(conn), 150000);
  PGresult* result = PQexec(conn, "SELECT current_setting('listen_addresses')");
  ASSERT_EQ(PQresultStatus(result), PGRES_TUPLES_OK);
  EXPECT_STREQ(PQgetvalue(result, 0, 0), "127.0.0.1");
  PQclear(result);
  PQfinish(conn);
}

TEST(ServersTest, RedisRequiresThePasswordFromRedisUrl) {
  const std::string url = RequireEnv("REDIS_URL");
  ASSERT_FALSE(url.empty()) << "REDIS_URL is not set: run eval \"$(scripts/services env)\"";
  JQ_ASSERT_OK_AND_ASSIGN(internal::ParsedUrl parsed, internal::ParseUrl(url));
  ASSERT_EQ(parsed.host, "127.0.0.1");
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(parsed.port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  auto roundtrip = [fd](const std::string& request) {
    EXPECT_EQ(write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
    char buffer[256];
    const ssize_t n = read(fd, buffer, sizeof buffer);
    return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
  };
  EXPECT_EQ(roundtrip("*1\r\n$4\r\nPING\r\n").substr(0, 7), "-NOAUTH");
  const std::string password(parsed.password.Reveal());
  const std::string user = parsed.user.empty() ? "default" : parsed.user;
  EXPECT_EQ(roundtrip("*3\r\n$4\r\nAUTH\r\n$" + std::to_string(user.size()) + "\r\n" + user +
                      "\r\n$" + std::to_string(password.size()) + "\r\n" + password + "\r\n"),
            "+OK\r\n");
  EXPECT_EQ(roundtrip("*1\r\n$4\r\nPING\r\n"), "+PONG\r\n");
  close(fd);
}

}  // namespace
}  // namespace jobqueue
