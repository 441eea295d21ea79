#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "secret_scopes_internal.h"
#include "testing/status_matchers.h"

namespace jobqueue::internal {
namespace {

using ::jobqueue::testing::StatusIs;
using ::testing::HasSubstr;

TEST(GlobMatchTest, Stars) {
  EXPECT_TRUE(GlobMatch("*_KEY", "GOOGLE_API_KEY"));
  EXPECT_TRUE(GlobMatch("SUPABASE_*", "SUPABASE_DB_URL_PROD"));
  EXPECT_TRUE(GlobMatch("A*B*C", "AxxBxxC"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_FALSE(GlobMatch("*_KEY", "KEY_ID"));
  EXPECT_FALSE(GlobMatch("A*B*C", "AxxBxx"));
  EXPECT_FALSE(GlobMatch("EXACT", "EXACTLY"));
  EXPECT_TRUE(GlobMatch("JUDIT_API_KEY", "judit_api_key"));
  EXPECT_TRUE(GlobMatch("*_Secret_*", "aws_SECRET_access_key"));
}

TEST(SecretScopesTest, BuiltInManifestEncodesSeedRules) {
  JQ_ASSERT_OK_AND_ASSIGN(SecretScopes scopes, SecretScopes::BuiltIn());
  JQ_ASSERT_OK_AND_ASSIGN(const ServiceScope* api, scopes.Find("api"));
  JQ_ASSERT_OK_AND_ASSIGN(const ServiceScope* worker, scopes.Find("worker"));
  EXPECT_TRUE(scopes.IsSecret("JUDIT_API_KEY"));
  EXPECT_FALSE(SecretScopes::Allows(*api, "JUDIT_API_KEY"));
  EXPECT_TRUE(SecretScopes::Allows(*worker, "JUDIT_API_KEY"));
  for (const char* name : {"DATABASE_URL", "REDIS_URL", "GOOGLE_API_KEY",
                           "SUPABASE_SERVICE_ROLE_KEY_PROD", "SUPABASE_DB_URL_DEV"}) {
    EXPECT_TRUE(scopes.IsSecret(name)) << name;
    EXPECT_TRUE(SecretScopes::Allows(*api, name)) << name;
  }
  EXPECT_FALSE(scopes.IsSecret("NEXT_PUBLIC_SUPABASE_ANON_KEY"));
  EXPECT_FALSE(scopes.IsSecret("SUPABASE_URL_PROD"));
  EXPECT_FALSE(scopes.IsSecret("LOG_LEVEL"));
  // Common spellings of secrets nobody listed, in any case, are scoped: the API may not hold
  // them (they were handed to it).
  for (const char* name : {"AWS_SECRET_ACCESS_KEY", "SMTP_PASS", "LDAP_PASSWD", "judit_api_key",
                           "MINIO_SECRET_KEY", "Stripe_Secret_Key"}) {
    EXPECT_TRUE(scopes.IsSecret(name)) << name;
    EXPECT_FALSE(SecretScopes::Allows(*api, name)) << name;
  }
  EXPECT_TRUE(SecretScopes::Allows(*worker, "judit_api_key"));
  // Ordinary variables stay plain, those that only point at a secret included: a service in
  // prod refuses to start over an out-of-scope secret.
  for (const char* name :
       {"PWD", "OLDPWD", "SSH_AUTH_SOCK", "PASSWORD_MIN_LENGTH", "BYPASS",
        "GOOGLE_APPLICATION_CREDENTIALS", "DB_SECRET_ARN", "JWT_SECRET_FILE", "AWS_ACCESS_KEY_ID",
        "MINIO_ACCESS_KEY", "AWS_SECRET_NAME", "GITHUB_ACTIONS", "CI", "HOME", "PATH",
        "KUBERNETES_SERVICE_HOST", "DOCKER_HOST", "http_proxy", "TOKEN_EXPIRY_SECONDS"}) {
    EXPECT_FALSE(scopes.IsSecret(name)) << name;
  }
}

// A secret's per-mode copies (X_DEV, X_PROD) are scoped as X is. Before, JUDIT_API_KEY_PROD
// matched no pattern: a plain variable the API could read.
TEST(SecretScopesTest, PerModeCopiesOfASecretAreScopedAsItIs) {
  JQ_ASSERT_OK_AND_ASSIGN(SecretScopes scopes, SecretScopes::BuiltIn());
  JQ_ASSERT_OK_AND_ASSIGN(const ServiceScope* api, scopes.Find("api"));
  JQ_ASSERT_OK_AND_ASSIGN(const ServiceScope* worker, scopes.Find("worker"));
  for (const char* name :
       {"JUDIT_API_KEY_PROD", "JUDIT_API_KEY_DEV", "STRIPE_SECRET_KEY_prod", "SMTP_PASSWORD_DEV"}) {
    EXPECT_TRUE(scopes.IsSecret(name)) << name;
    EXPECT_FALSE(SecretScopes::Allows(*api, name)) << name;
  }
  EXPECT_TRUE(SecretScopes::Allows(*worker, "JUDIT_API_KEY_PROD"));
  EXPECT_TRUE(SecretScopes::Allows(*api, "GOOGLE_API_KEY_DEV"));
  for (const char* name : {"SUPABASE_URL_PROD", "LOG_LEVEL_DEV", "_PROD", "API_KEY_PROD_URL"}) {
    EXPECT_FALSE(scopes.IsSecret(name)) << name;
  }
}

TEST(SecretScopesTest, UnsuffixedSupabaseVariablesAreScopedToo) {
  JQ_ASSERT_OK_AND_ASSIGN(SecretScopes scopes, SecretScopes::BuiltIn());
  JQ_ASSERT_OK_AND_ASSIGN(const ServiceScope* api, scopes.Find("api"));
  JQ_ASSERT_OK_AND_ASSIGN(const ServiceScope* judit, scopes.Find("judit-worker"));
  for (const char* name : {"SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_DB_URL"}) {
    EXPECT_TRUE(scopes.IsSecret(name)) << name;
    EXPECT_TRUE(SecretScopes::Allows(*api, name)) << name;
    EXPECT_FALSE(SecretScopes::Allows(*judit, name)) << name;
  }
  EXPECT_TRUE(scopes.IsPublic("NEXT_PUBLIC_SUPABASE_ANON_KEY"));
  EXPECT_FALSE(scopes.IsPublic("SUPABASE_SERVICE_ROLE_KEY"));
}

TEST(LooksLikeSecretNameTest, WordsAndEnds) {
  for (const char* name :
       {"API_KEY", "SECRET_KEY", "AWS_SECRET_ACCESS_KEY", "SUPABASE_SERVICE_ROLE_KEY",
        "db_password", "DB_PASSWD", "DB_PASS", "MYSQL_PWD", "GITHUB_TOKEN",
        "GOOGLE_APPLICATION_CREDENTIALS", "SSH_PRIVATE_KEY", "AUTH_HEADER", "BASIC_AUTH", "APIKEY",
        "PGPASSWORD", "AUTHTOKEN", "SIGNING_KEYS", "SECRETS"}) {
    EXPECT_TRUE(LooksLikeSecretName(name)) << name;
  }
  for (const char* name : {"DATABASE_URL", "LOG_LEVEL", "PORT", "SUPABASE_URL_DEV", "BYPASS_CACHE",
                           "NODE_ENV", "PASSAGE"}) {
    EXPECT_FALSE(LooksLikeSecretName(name)) << name;
  }
}

TEST(SecretScopesTest, RejectsMalformedManifests) {
  EXPECT_THAT(SecretScopes::Parse("[]", "m.json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("m.json")));
  EXPECT_THAT(SecretScopes::Parse(R"({"version":2,"secrets":[],"services":{}})", "m"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("version")));
  EXPECT_THAT(SecretScopes::Parse(R"({"version":1,"secrets":["A B"],"services":{}})", "m"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a variable name")));
  EXPECT_THAT(SecretScopes::Parse(R"({"version":1,"secrets":[],"services":{}})", "m"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_THAT(
      SecretScopes::Parse(R"({"version":1,"secrets":[],"services":{"API":{"secrets":[]}}})", "m"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[a-z0-9_-]")));
  EXPECT_THAT(
      SecretScopes::Parse(
          R"({"version":1,"secrets":[],"services":{"a":{"secrets":[],"needs":["s3"]}}})", "m"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown need")));
  EXPECT_THAT(SecretScopes::Parse(R"({"version":1,"secrets":[1],"services":{}})", "m"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("only strings")));
}

}  // namespace
}  // namespace jobqueue::internal
