#include "url.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "jobqueue/secret.h"
#include "testing/status_matchers.h"

namespace jobqueue {
namespace {

using ::jobqueue::testing::IsOk;
using ::jobqueue::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(MaskUrlTest, MasksPasswords) {
  EXPECT_EQ(MaskUrl("postgresql://user:pw@host:5432/db"), "postgresql://user:****@host:5432/db");
  EXPECT_EQ(MaskUrl("redis://:pw@127.0.0.1:6379/0"), "redis://:****@127.0.0.1:6379/0");
  EXPECT_EQ(MaskUrl("rediss://default:pw@x.upstash.io:6379"),
            "rediss://default:****@x.upstash.io:6379");
  EXPECT_EQ(MaskUrl("postgres://user@host/db"), "postgres://user@host/db");
  EXPECT_EQ(MaskUrl("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
}

TEST(MaskUrlTest, PasswordsWithAtSignsAndSlashes) {
  EXPECT_EQ(MaskUrl("postgresql://u:p@ss/w@rd@host/db"), "postgresql://u:****@host/db");
}

TEST(MaskUrlTest, AnAtSignAfterAQueryOrFragmentCharacterHidesEverything) {
  // A password holding '?' or '#', or an '@' in the query: either reading may hold a secret on
  // either side of the '@'.
  for (const char* url :
       {"postgresql://u:dev?SECRETPW@host/db", "postgresql://u:p#HASHSECRET@host/db",
        "redis://:a/b?c#SECRET@host:6379/0?db=1", "postgresql://u:SECRET@host/db?x=a@b",
        "postgresql://host/db?password=SECRET:x@y", "postgresql://host/db?password=SEC@RET",
        "postgresql://host/db?password=SECRET&x=a@y",
        // Azure's form: the user name holds the server's name.
        "postgresql://srv.postgres.database.azure.com:5432/db"
        "?user=admin@srv&password=SECRET"}) {
    EXPECT_EQ(MaskUrl(url), "[redacted]") << url;
  }
  // An '@' in the path only: the user info still ends at the last '@'.
  EXPECT_EQ(MaskUrl("postgresql://u:p@ss/w@rd@host/db?sslmode=require&password=x"),
            "postgresql://u:****@host/db?sslmode=require&password=****");
}

TEST(MaskUrlTest, MasksSecretQueryParameters) {
  EXPECT_EQ(MaskUrl("postgresql://host/db?sslmode=require&password=pw&sslpassword=x"),
            "postgresql://host/db?sslmode=require&password=****&sslpassword=****");
  EXPECT_EQ(MaskUrl("redis://host?token=abc#frag-secret"), "redis://host?token=****");
}

TEST(MaskUrlTest, KeywordDsns) {
  EXPECT_EQ(MaskUrl("host=h user=u password=pw dbname=d"), "host=h user=u password=**** dbname=d");
  EXPECT_EQ(MaskUrl("host=h password='p w\\' x' port=5432"), "host=h password=**** port=5432");
  EXPECT_EQ(MaskUrl("host=h password = 'a b c' dbname=d"), "host=h password = **** dbname=d");
  EXPECT_EQ(MaskUrl("PASSWORD=pw host=h"), "PASSWORD=**** host=h");
  // libpq reads `a\ b=c` as one escaped value: none of it may show.
  EXPECT_EQ(MaskUrl("password=a\\ b=SECRET host=h"), "password=**** host=h");
  // Not libpq syntax: redacted whole, never split into a shown part.
  EXPECT_EQ(MaskUrl("host=h password=\"a SECRET\""), "[redacted]");
}

TEST(MaskUrlTest, UnparseableIsFullyRedacted) {
  EXPECT_EQ(MaskUrl("just-a-token-value"), "[redacted]");
  // Shaped like key=value, but not libpq's keywords: a base64 secret, say.
  EXPECT_EQ(MaskUrl("dGhpc2lzc2VjcmV0MQ=="), "[redacted]");
  EXPECT_EQ(MaskUrl("host=h token=SECRET"), "[redacted]");
  EXPECT_EQ(MaskUrl("host='unterminated password=x"), "[redacted]");
  EXPECT_EQ(MaskUrl("we ird://u:p@h"), "[redacted]");
  EXPECT_EQ(MaskUrl(""), "");
}

TEST(ParseUrlTest, FullRedisUrl) {
  JQ_ASSERT_OK_AND_ASSIGN(
      internal::ParsedUrl url,
      internal::ParseUrl("rediss://us%3Aer:p%40ss@cache.local:6380/3?timeout=5"));
  EXPECT_EQ(url.scheme, "rediss");
  EXPECT_EQ(url.user, "us:er");
  EXPECT_TRUE(url.has_password);
  EXPECT_EQ(url.password.Reveal(), "p@ss");
  EXPECT_EQ(url.host, "cache.local");
  EXPECT_EQ(url.port, 6380);
  EXPECT_EQ(url.path, "3");
  ASSERT_EQ(url.query.size(), 1u);
  EXPECT_EQ(url.query[0].first, "timeout");
  EXPECT_EQ(url.query[0].second, "5");
}

TEST(ParseUrlTest, Ipv6AndDefaults) {
  JQ_ASSERT_OK_AND_ASSIGN(internal::ParsedUrl url, internal::ParseUrl("redis://[::1]:7000"));
  EXPECT_EQ(url.host, "::1");
  EXPECT_EQ(url.port, 7000);
  JQ_ASSERT_OK_AND_ASSIGN(internal::ParsedUrl bare, internal::ParseUrl("redis://localhost"));
  EXPECT_EQ(bare.port, 0);
  EXPECT_FALSE(bare.has_password);
}

TEST(ParseUrlTest, Errors) {
  EXPECT_THAT(internal::ParseUrl("localhost:6379"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(internal::ParseUrl("redis://h:port"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(internal::ParseUrl("redis://h:70000"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(internal::ParseUrl("redis://[::1"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(internal::ParseUrl("redis://u:%zz@h"), StatusIs(absl::StatusCode::kInvalidArgument));
}

// A '?' or '#' before the last '@' of a Redis URL: a password that was not percent-encoded,
// or an '@' in the query. Refused, so no piece of a password is taken for the host.
TEST(ParseUrlTest, RedisUrlsAmbiguousAboutTheirPasswordAreRefused) {
  for (const char* url : {"redis://:S3cret@Token?1@127.0.0.1:6379", "redis://:p@ss:w/rd?#x@h:1",
                          "rediss://u:a#b@h", "unix://:pw?x@/run/redis.sock"}) {
    absl::StatusOr<internal::ParsedUrl> parsed = internal::ParseUrl(url);
    EXPECT_THAT(parsed, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("percent-encode")))
        << url;
    EXPECT_THAT(parsed.status().message(), Not(HasSubstr("Token"))) << url;
  }
  JQ_ASSERT_OK_AND_ASSIGN(internal::ParsedUrl escaped,
                          internal::ParseUrl("redis://:p%40ss%3Aw%2Frd%3F%23x@127.0.0.1:6379"));
  EXPECT_EQ(escaped.password.Reveal(), "p@ss:w/rd?#x");
  EXPECT_EQ(escaped.host, "127.0.0.1");
  // Unescaped '@' and '/' in a password still parse (the user info ends at the last '@').
  JQ_ASSERT_OK_AND_ASSIGN(internal::ParsedUrl slash, internal::ParseUrl("redis://:a/b@c@h:1/2"));
  EXPECT_EQ(slash.password.Reveal(), "a/b@c");
  EXPECT_EQ(slash.host, "h");
  EXPECT_EQ(slash.path, "2");
}

TEST(ParseUrlTest, PostgresUserInfoMustSplitAsLibpqSplitsIt) {
  for (const char* url : {"postgresql://u:p/w@h/db", "postgresql://u:p@w@h/db",
                          "postgres://u:p:w/x@h/db", "postgresql://h:5432x/db?a=b@c"}) {
    EXPECT_THAT(internal::CheckLibpqUserInfo(url),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("percent-encoded")))
        << url;
    EXPECT_THAT(internal::ParseUrl(url), StatusIs(absl::StatusCode::kInvalidArgument)) << url;
  }
  for (const char* url :
       {"postgresql://u:p%2Fw%40x@h/db", "postgresql://u:p?w#x@h/db", "postgresql://h/db",
        "postgresql://u@h", "host=h password=a@b/c",
        // key=value strings are libpq's to parse, "://" in a value or not
        "host=db user=app password='p://x/y@z' dbname=app",
        "host=db dbname=app application_name=https://svc/x@y",
        // an '@' after the host where nothing before it is a password (Azure's user@server)
        "postgresql:///app?host=/var/run/postgresql&user=admin@myserver",
        "postgresql://h:5432/db?user=admin@server", "postgresql://[::1]:5432/db?user=a@b",
        "postgresql://u@h/db?application_name=a@b"}) {
    EXPECT_THAT(internal::CheckLibpqUserInfo(url), IsOk()) << url;
  }
}

}  // namespace
}  // namespace jobqueue
