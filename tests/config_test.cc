#include "jobqueue/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "jobqueue/logging.h"
#include "testing/env_dir.h"
#include "testing/status_matchers.h"

namespace jobqueue {
namespace {

using ::jobqueue::testing::IsOk;
using ::jobqueue::testing::StatusIs;
using ::jobqueue::testing::TempDir;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kDbPassword[] = "pg-Pa55word-XYZZY";
constexpr char kRedisPassword[] = "redis-Pa55-QUUX";
constexpr char kJuditKey[] = "judit-key-SHOULD-NEVER-PRINT";
constexpr char kRoleKeyDev[] = "role-key-dev-SECRET-111";
constexpr char kRoleKeyProd[] = "role-key-prod-SECRET-222";
constexpr char kProdDbPassword[] = "prod-db-pw-SECRET-333";
constexpr char kUnlisted[] = "unlisted-SECRET-444";

// Every test captures all log output at TRACE and, at the end, checks that no secret value
// used anywhere in this file reached a log line.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LoggingOptions logging;
    logging.level = LogLevel::kTrace;
    logging.to_stderr = false;
    ConfigureLogging(logging);
    sink_ = AddLogSink([this](LogLevel, absl::string_view line) { lines_.emplace_back(line); });
  }

  void TearDown() override {
    RemoveLogSink(sink_);
    ConfigureLogging(LoggingOptions());
    for (const std::string& line : lines_) {
      for (const char* secret : {kDbPassword, kRedisPassword, kJuditKey, kRoleKeyDev, kRoleKeyProd,
                                 kProdDbPassword, kUnlisted}) {
        EXPECT_THAT(line, Not(HasSubstr(secret))) << "a log line leaked a secret";
      }
    }
  }

  absl::StatusOr<Config> Load(const std::string& service) {
    ConfigOptions options;
    options.service = service;
    options.env_dir = dir_.path();
    options.environment = &env_;
    return Load(options);
  }
  absl::StatusOr<Config> Load(const ConfigOptions& options) {
    absl::StatusOr<Config> config = Config::Load(options);
    if (!config.ok()) ExpectNoSecretIn(std::string(config.status().message()));
    if (config.ok()) ExpectNoSecretIn(config->DebugString());
    return config;
  }

  static void ExpectNoSecretIn(const std::string& text) {
    for (const char* secret : {kDbPassword, kRedisPassword, kJuditKey, kRoleKeyDev, kRoleKeyProd,
                               kProdDbPassword, kUnlisted}) {
      EXPECT_THAT(text, Not(HasSubstr(secret)));
    }
  }

  std::string DbUrl() const {
    return absl::StrFormat("postgresql://jobqueue:%s@127.0.0.1:5432/jobqueue", kDbPassword);
  }
  std::string RedisUrl() const {
    return absl::StrFormat("rediss://default:%s@cache.example.com:6380/0", kRedisPassword);
  }

  std::map<std::string, std::string> env_;
  TempDir dir_;
  std::vector<std::string> lines_;
  int sink_ = 0;
};

TEST_F(ConfigTest, DefaultsWithDatabaseUrl) {
  env_ = {{"DATABASE_URL", DbUrl()}};
  JQ_ASSERT_OK_AND_ASSIGN(Config config, Load("api"));
  EXPECT_EQ(config.environment(), Environment::kDev);
  EXPECT_EQ(config.supabase_mode(), SupabaseMode::kUnset);
  EXPECT_EQ(config.log_level(), LogLevel::kInfo);
  EXPECT_EQ(config.log_format(), LogFormat::kText);
  EXPECT_EQ(config.poll_interval(), absl::Seconds(10));
  EXPECT_EQ(config.database_url().Reveal(), DbUrl());
  EXPECT_EQ(config.database_url_source(), "DATABASE_URL");
  EXPECT_TRUE(config.redis_url().empty());
  EXPECT_TRUE(config.scope_violations().empty());
  EXPECT_THAT(config.DebugString(),
              HasSubstr("database_url: postgresql://jobqueue:****@127.0.0.1:5432/jobqueue"));
}

TEST_F(ConfigTest, ReadsLevelsIntervalAndRedis) {
  env_ = {{"DATABASE_URL", DbUrl()},
          {"REDIS_URL", RedisUrl()},
          {"LOG_LEVEL", "dEbUg"},
          {"LOG_FORMAT", "JSON"},
          {"WORKER_POLL_INTERVAL", "2.5"}};
  JQ_ASSERT_OK_AND_ASSIGN(Config config, Load("worker"));
  EXPECT_EQ(config.log_level(), LogLevel::kDebug);
  EXPECT_EQ(config.log_format(), LogFormat::kJson);
  EXPECT_EQ(config.poll_interval(), absl::Milliseconds(2500));
  EXPECT_EQ(config.redis_url().Reveal(), RedisUrl());
  EXPECT_EQ(config.redis_url().Redacted(), "rediss://default:****@cache.example.com:6380/0");
  EXPECT_EQ(config.logging_options().service, "worker");
}

TEST_F(ConfigTest, PollIntervalAcceptsDurationStrings) {
  env_ = {{"DATABASE_URL", DbUrl()}, {"WORKER_POLL_INTERVAL", "500ms"}};
  JQ_ASSERT_OK_AND_ASSIGN(Config config, Load("worker"));
  EXPECT_EQ(config.poll_interval(), absl::Milliseconds(500));
}

TEST_F(ConfigTest, NodeEnvProductionMeansProdOnlyWhenEnvironmentUnset) {
  env_ = {{"DATABASE_URL", DbUrl()}, {"NODE_ENV", "production"}};
  JQ_ASSERT_OK_AND_ASSIGN(Config prod, Load("api"));
  EXPECT_EQ(prod.environment(), Environment::kProd);

  env_["ENVIRONMENT"] = "staging";
  JQ_ASSERT_OK_AND_ASSIGN(Config staging, Load("api"));
  EXPECT_EQ(staging.environment(), Environment::kStaging);

  env_ = {{"DATABASE_URL", DbUrl()}, {"NODE_ENV", "test"}};
  JQ_ASSERT_OK_AND_ASSIGN(Config dev, Load("api"));
  EXPECT_EQ(dev.environment(), Environment::kDev);
}

TEST_F(ConfigTest, SupabaseModeSelectsSuffixedVariables) {
  env_ = {{"SUPABASE_MODE", "dev"},
          {"SUPABASE_URL_DEV", "https://dev.supabase.co"},
          {"SUPABASE_SERVICE_ROLE_KEY_DEV", kRoleKeyDev},
          {"SUPABASE_DB_URL_DEV", DbUrl()},
          {"SUPABASE_URL_PROD", "https://prod.supabase.co"},
          {"SUPABASE_SERVICE_ROLE_KEY_PROD", kRoleKeyProd},
          {"SUPABASE_DB_URL_PROD",
           absl::StrFormat("postgresql://postgres:%s@db.prod:5432/postgres", kProdDbPassword)}};
  JQ_ASSERT_OK_AND_ASSIGN(Config dev, Load("api"));
  EXPECT_EQ(dev.supabase_mode(), SupabaseMode::kDev);
  EXPECT_EQ(dev.supabase_url(), "https://dev.supabase.co");
  EXPECT_EQ(dev.supabase_service_role_key().Reveal(), kRoleKeyDev);
  EXPECT_EQ(dev.database_url().Reveal(), DbUrl());
  EXPECT_EQ(dev.database_url_source(), "SUPABASE_DB_URL_DEV");

  env_["SUPABASE_MODE"] = "PROD";
  env_["ENVIRONMENT"] = "prod";
  JQ_ASSERT_OK_AND_ASSIGN(Config prod, Load("api"));
  EXPECT_EQ(prod.supabase_mode(), SupabaseMode::kProd);
  EXPECT_EQ(prod.supabase_url(), "https://prod.supabase.co");
  EXPECT_EQ(prod.supabase_service_role_key().Reveal(), kRoleKeyProd);
  EXPECT_EQ(prod.database_url_source(), "SUPABASE_DB_URL_PROD");
  EXPECT_EQ(prod.database_url().Redacted(), "postgresql://postgres:****@db.prod:5432/postgres");
}

TEST_F(ConfigTest, SupabaseModeWinsOverDatabaseUrlWithAWarning) {
  env_ = {{"SUPABASE_MODE", "dev"},
          {"SUPABASE_URL_DEV", "https://dev.supabase.co"},
          {"SUPABASE_SERVICE_ROLE_KEY_DEV", kRoleKeyDev},
          {"SUPABASE_DB_URL_DEV", "postgresql://u@dev-db/app"},
          {"DATABASE_URL", DbUrl()}};
  JQ_ASSERT_OK_AND_ASSIGN(Config config, Load("api"));
  EXPECT_EQ(config.database_url().Reveal(), "postgresql://u@dev-db/app");
  EXPECT_THAT(config.warnings(), Contains(HasSubstr("DATABASE_URL is ignored")));
}

TEST_F(ConfigTest, MissingSupabaseVariablesAreListedInOneError) {
  env_ = {{"SUPABASE_MODE", "dev"}};
  EXPECT_THAT(Load("api"), StatusIs(absl::StatusCode::kInvalidArgument,
                                    HasSubstr("missing required variables: SUPABASE_DB_URL_DEV, "
                                              "SUPABASE_SERVICE_ROLE_KEY_DEV, SUPABASE_URL_DEV")));
}

TEST_F(ConfigTest, MissingDatabaseIsAnError) {
  EXPECT_THAT(Load("api"), StatusIs(absl::StatusCode::kInvalidArgument,
                                    HasSubstr("missing required variables: DATABASE_URL")));
}

TEST_F(ConfigTest, MissingRedisForARedisService) {
  EXPECT_THAT(Load("judit-worker"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("REDIS_URL")));
}

TEST_F(ConfigTest, ExtraRequiredVariablesAreCollectedWithTheOthers) {
  ConfigOptions options;
  options.service = "worker";
  options.env_dir = dir_.path();
  options.environment = &env_;
  options.required = {"JUDIT_API_BASE_URL", "JUDIT_API_KEY"};
  EXPECT_THAT(Load(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("missing required variables: DATABASE_URL, JUDIT_API_BASE_URL, "
                                 "JUDIT_API_KEY")));
}

TEST_F(ConfigTest, UnknownSupabaseModeNamesTheVariable) {
  env_ = {{"DATABASE_URL", DbUrl()}, {"SUPABASE_MODE", "staging"}};
  EXPECT_THAT(Load("api"), StatusIs(absl::StatusCode::kInvalidArgument,
                                    HasSubstr("SUPABASE_MODE=\"staging\" is not dev or prod")));
}

TEST_F(ConfigTest, UnknownEnvironmentNamesTheVariable) {
  env_ = {{"DATABASE_URL", DbUrl()}, {"ENVIRONMENT", "qa"}};
  EXPECT_THAT(Load("api"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ENVIRONMENT=\"qa\" is not one of dev, staging, prod")));
}

TEST_F(ConfigTest, BadPollIntervals) {
  for (const char* bad : {"abc", "-1", "0", "nan", "inf", "-5s", "1e9"}) {
    env_ = {{"DATABASE_URL", DbUrl()}, {"WORKER_POLL_INTERVAL", bad}};
    EXPECT_THAT(Load("worker"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("WORKER_POLL_INTERVAL")))
        << bad;
  }
}

TEST_F(ConfigTest, BadLogLevelAndFormat) {
  env_ = {{"DATABASE_URL", DbUrl()}, {"LOG_LEVEL", "loud"}, {"LOG_FORMAT", "xml"}};
  EXPECT_THAT(Load("api"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("LOG_LEVEL=\"loud\""), HasSubstr("LOG_FORMAT=\"xml\""))));
}

TEST_F(ConfigTest, BadUrlsAreNamedNotQuoted) {
  env_ = {{"DATABASE_URL", absl::StrFormat("mysql://root:%s@db/x", kDbPassword)},
          {"REDIS_URL", absl::StrFormat("http://:%s@cache", kRedisPassword)}};
  absl::StatusOr<Config> config = Load("api");
  EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr("DATABASE_URL must be a postgres://"),
                                     HasSubstr("REDIS_URL must be a redis://"))));
  env_ = {{"DATABASE_URL", absl::StrFormat("postgresql://u:%s@db:99999/x", kDbPassword)}};
  EXPECT_THAT(Load("api"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("DATABASE_URL is malformed")));
  // libpq would take "Sup3r" for the port: refused before it gets there, and not shown.
  env_ = {{"DATABASE_URL", "postgresql://app:Sup3r/SECRET@127.0.0.1:5432/app"}};
  absl::StatusOr<Config> ambiguous = Load("api");
  EXPECT_THAT(ambiguous, StatusIs(absl::StatusCode::kInvalidArgument,
                                  AllOf(HasSubstr("DATABASE_URL is malformed"),
                                        HasSubstr("percent-encoded"))));
  EXPECT_THAT(ambiguous.status().message(),
              AllOf(Not(HasSubstr("SECRET")), Not(HasSubstr("Sup3r"))));
  // What a Redis connection would refuse at its first use is refused at load.
  env_ = {{"DATABASE_URL", DbUrl()},
          {"REDIS_URL", absl::StrFormat("redis://:%s@127.0.0.1:6379/abc", kRedisPassword)}};
  absl::StatusOr<Config> bad_db = Load("api");
  EXPECT_THAT(bad_db, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr("REDIS_URL is malformed"),
                                     HasSubstr("database must be a non-negative number"))));
  EXPECT_THAT(bad_db.status().message(), Not(HasSubstr(kRedisPassword)));
}

TEST_F(ConfigTest, KeywordDsnIsAccepted) {
  env_ = {{"DATABASE_URL", absl::StrFormat("host=127.0.0.1 user=app password=%s", kDbPassword)}};
  JQ_ASSERT_OK_AND_ASSIGN(Config config, Load("api"));
  EXPECT_EQ(config.database_url().Redacted(), "host=127.0.0.1 user=app password=****");
}

TEST_F(ConfigTest, ProdDatabaseFromDevIsRefusedUnlessOverridden) {
  env_ = {{"SUPABASE_MODE", "prod"},
          {"SUPABASE_URL_PROD", "https://prod.supabase.co"},
          {"SUPABASE_SERVICE_ROLE_KEY_PROD", kRoleKeyProd},
          {"SUPABASE_DB_URL_PROD", DbUrl()}};
  EXPECT_THAT(Load("api"), StatusIs(absl::StatusCode::kInvalidArgument,
                                    HasSubstr("SUPABASE_MODE=prod with ENVIRONMENT=dev")));

  env_["JOBQUEUE_ALLOW_PROD_DB_IN_DEV"] = "1";
  JQ_ASSERT_OK_AND_ASSIGN(Config allowed, Load("api"));
  EXPECT_THAT(allowed.warnings(), Contains(HasSubstr("uses the production database")));

  env_.erase("JOBQUEUE_ALLOW_PROD_DB_IN_DEV");
  ConfigOptions options;
  options.service = "api";
  options.env_dir = dir_.path();
  options.environment = &env_;
  options.allow_prod_database_in_dev = true;
  EXPECT_THAT(Load(options), IsOk());
}

TEST_F(ConfigTest, ScopeViolationRefusesToStartInProd) {
  env_ = {{"ENVIRONMENT", "prod"}, {"DATABASE_URL", DbUrl()}, {"JUDIT_API_KEY", kJuditKey}};
  absl::StatusOr<Config> config = Load("api");
  EXPECT_THAT(config, StatusIs(absl::StatusCode::kPermissionDenied,
                               AllOf(HasSubstr("JUDIT_API_KEY (from environment)"),
                                     HasSubstr("refusing to start in prod"))));
  EXPECT_EQ(ExitCodeForConfigError(config.status()), kExitScopeViolation);
  EXPECT_EQ(kExitScopeViolation, 77);
}

TEST_F(ConfigTest, ScopeViolationWarnsInDevAndWithholdsTheSecret) {
  env_ = {{"DATABASE_URL", DbUrl()}, {"JUDIT_API_KEY", kJuditKey}};
  JQ_ASSERT_OK_AND_ASSIGN(Config config, Load("api"));
  EXPECT_THAT(config.scope_violations(), ElementsAre("JUDIT_API_KEY"));
  EXPECT_THAT(config.warnings(), Contains(HasSubstr("JUDIT_API_KEY")));
  EXPECT_THAT(config.GetSecret("JUDIT_API_KEY"), StatusIs(absl::StatusCode::kPermissionDenied));
  bool warned = false;
  for (const std::string& line : lines_) {
    if (line.find("JUDIT_API_KEY") != std::string::npos && line.find("warn") != std::string::npos) {
      warned = true;
    }
  }
  EXPECT_TRUE(warned) << "the dev warning was not logged";
}

TEST_F(ConfigTest, WorkersMayHoldTheJuditKey) {
  env_ = {{"ENVIRONMENT", "prod"}, {"DATABASE_URL", DbUrl()}, {"JUDIT_API_KEY", kJuditKey}};
  JQ_ASSERT_OK_AND_ASSIGN(Config config, Load("worker"));
  JQ_ASSERT_OK_AND_ASSIGN(Secret key, config.GetSecret("JUDIT_API_KEY"));
  EXPECT_EQ(key.Reveal(), kJuditKey);
  EXPECT_THAT(config.GetSecret("STRIPE_SECRET_KEY"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ConfigTest, PatternSecretsAreScopedTooButPublicOnesAreNot) {
  env_ = {{"ENVIRONMENT", "prod"},
          {"DATABASE_URL", DbUrl()},
          {"NEXT_PUBLIC_SUPABASE_ANON_KEY", "anon-key"},
          {"STRIPE_SECRET_KEY", kJuditKey}};
  EXPECT_THAT(Load("api"), StatusIs(absl::StatusCode::kPermissionDenied,
                                    AllOf(HasSubstr("STRIPE_SECRET_KEY"),
                                          Not(HasSubstr("NEXT_PUBLIC_SUPABASE_ANON_KEY")))));
}

TEST_F(ConfigTest, ScopeViolationFromAnEnvFileNamesTheFile) {
  env_ = {{"ENVIRONMENT", "prod"}, {"DATABASE_URL", DbUrl()}};
  dir_.Write(".env.local", absl::StrFormat("JUDIT_API_KEY=%s\n", kJuditKey));
  EXPECT_THAT(Load("api"), StatusIs(absl::StatusCode::kPermissionDenied,
                                    HasSubstr("JUDIT_API_KEY (from .env.local)")));
}

TEST_F(ConfigTest, ReportOnlyRecordsProdViolationsWithoutFailing) {
  env_ = {{"ENVIRONMENT", "prod"}, {"DATABASE_URL", DbUrl()}, {"JUDIT_API_KEY", kJuditKey}};
  ConfigOptions options;
  options.service = "api";
  options.env_dir = dir_.path();
  options.environment = &env_;
  options.report_only = true;
  JQ_ASSERT_OK_AND_ASSIGN(Config config, Load(options));
  EXPECT_THAT(config.scope_violations(), ElementsAre("JUDIT_API_KEY"));
  bool found = false;
  for (const ConfigEntry& entry : config.entries()) {
    if (entry.name != "JUDIT_API_KEY") continue;
    found = true;
    EXPECT_FALSE(entry.in_scope);
    EXPECT_EQ(entry.display_value, "[redacted]");
  }
  EXPECT_TRUE(found);
}

TEST_F(ConfigTest, UnknownServiceListsKnownOnes) {
  env_ = {{"DATABASE_URL", DbUrl()}};
  EXPECT_THAT(Load("billing"),
              StatusIs(absl::StatusCode::kNotFound, AllOf(HasSubstr("unknown service \"billing\""),
                                                          HasSubstr("api"), HasSubstr("worker"))));
  EXPECT_THAT(Load(""), StatusIs(absl::StatusCode::kInvalidArgument));
}

// An empty ENVIRONMENT in the process made .env's prod the default dev, and its scope refusals
// warnings.
TEST_F(ConfigTest, AnEmptyEnvironmentDoesNotHideALowerSourcesValue) {
  dir_.Write(".env", "ENVIRONMENT=prod\nDATABASE_URL=" + DbUrl() + "\nJUDIT_API_KEY=judit-key\n");
  // The last line of a file counts, an empty one included: it defers to .env.
  dir_.Write(".env.local", "ENVIRONMENT=staging\nENVIRONMENT=\n");
  env_ = {{"ENVIRONMENT", ""}};
  EXPECT_THAT(Load("api"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("JUDIT_API_KEY")));
  // Any other empty value blanks the variable: here it keeps .env's secret from the API.
  env_ = {{"ENVIRONMENT", ""}, {"JUDIT_API_KEY", ""}};
  JQ_ASSERT_OK_AND_ASSIGN(Config config, Load("api"));
  EXPECT_EQ(config.environment(), Environment::kProd);
  EXPECT_TRUE(config.scope_violations().empty());
}

TEST_F(ConfigTest, EnvFilePrecedence) {
  dir_.Write(".env", "LOG_LEVEL=error\nWORKER_POLL_INTERVAL=7\nLOG_FORMAT=json\nDATABASE_URL=" +
                         DbUrl() + "\n");
  dir_.Write(".env.local", "LOG_LEVEL=warn\nWORKER_POLL_INTERVAL=3\n");
  dir_.Write(".env.worker", "LOG_LEVEL=debug\n");
  env_ = {{"WORKER_POLL_INTERVAL", "1"}};
  JQ_ASSERT_OK_AND_ASSIGN(Config worker, Load("worker"));
  EXPECT_EQ(worker.log_level(), LogLevel::kDebug);      // .env.worker beats .env.local
  EXPECT_EQ(worker.poll_interval(), absl::Seconds(1));  // the process beats every file
  EXPECT_EQ(worker.log_format(), LogFormat::kJson);     // from .env
  EXPECT_EQ(worker.database_url().Reveal(), DbUrl());
  JQ_ASSERT_OK_AND_ASSIGN(Config api, Load("api"));
  EXPECT_EQ(api.log_level(), LogLevel::kWarn);  // .env.worker is not the api's
  bool saw_source = false;
  for (const ConfigEntry& entry : api.entries()) {
    if (entry.name == "LOG_LEVEL") {
      EXPECT_EQ(entry.source, ".env.local");
      saw_source = true;
    }
    if (entry.name == "DATABASE_URL") {
      EXPECT_EQ(entry.display_value, "postgresql://jobqueue:****@127.0.0.1:5432/jobqueue");
    }
  }
  EXPECT_TRUE(saw_source);
}

TEST_F(ConfigTest, LooseEnvFilePermissionsWarn) {
  dir_.Write(".env", "DATABASE_URL=" + DbUrl() + "\n", 0644);
  JQ_ASSERT_OK_AND_ASSIGN(Config config, Load("api"));
  EXPECT_THAT(config.warnings(), Contains(HasSubstr("readable by group or other (mode 0644)")));
  dir_.Write(".env", "DATABASE_URL=" + DbUrl() + "\n", 0600);
  JQ_ASSERT_OK_AND_ASSIGN(Config tight, Load("api"));
  EXPECT_THAT(tight.warnings(), Not(Contains(HasSubstr("readable by group"))));
}

TEST_F(ConfigTest, MalformedEnvFileNamesFileAndLineNotValue) {
  dir_.Write(".env.local", absl::StrFormat("OK=1\nthis line has %s but no equals\n", kJuditKey));
  EXPECT_THAT(Load("api"), StatusIs(absl::StatusCode::kInvalidArgument,
                                    AllOf(HasSubstr(".env.local:2"), Not(HasSubstr(kJuditKey)))));
}

TEST_F(ConfigTest, ManifestFromFileAndBadManifests) {
  const std::string good = dir_.Write("scopes.json", R"({"version": 1, "secrets": ["*_KEY"],
      "services": {"api": {"secrets": []}}})");
  env_ = {{"ENVIRONMENT", "prod"}, {"GOOGLE_API_KEY", kJuditKey}};
  ConfigOptions options;
  options.service = "api";
  options.env_dir = dir_.path();
  options.environment = &env_;
  options.scopes_path = good;
  EXPECT_THAT(Load(options),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("GOOGLE_API_KEY")));

  env_["JOBQUEUE_SECRET_SCOPES"] = dir_.Write("bad.json", "{not json");
  options.scopes_path.clear();
  EXPECT_THAT(Load(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad.json: not valid JSON")));
  options.scopes_path = dir_.path() + "/absent.json";
  EXPECT_THAT(Load(options), StatusIs(absl::StatusCode::kNotFound, HasSubstr("absent.json")));
}

TEST_F(ConfigTest, ExitCodes) {
  EXPECT_EQ(ExitCodeForConfigError(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCodeForConfigError(absl::InvalidArgumentError("x")), kExitConfigError);
  EXPECT_EQ(ExitCodeForConfigError(absl::PermissionDeniedError("x")), kExitScopeViolation);
}

TEST_F(ConfigTest, EntriesNeverShowSecretValues) {
  env_ = {{"DATABASE_URL", DbUrl()},
          {"REDIS_URL", RedisUrl()},
          {"GOOGLE_API_KEY", kJuditKey},
          {"PATH", "/usr/bin"}};
  JQ_ASSERT_OK_AND_ASSIGN(Config config, Load("worker"));
  std::ostringstream all;
  for (const ConfigEntry& entry : config.entries()) {
    all << entry.name << "=" << entry.display_value << "\n";
    EXPECT_NE(entry.name, "PATH") << "unrelated process variables are not listed";
  }
  ExpectNoSecretIn(all.str());
  EXPECT_THAT(all.str(), HasSubstr("GOOGLE_API_KEY=[redacted]"));
  EXPECT_EQ(config.Get("PATH"), "/usr/bin");
  EXPECT_EQ(config.Get("GOOGLE_API_KEY"), std::nullopt) << "secrets only through GetSecret";
}

TEST_F(ConfigTest, EntriesMaskSecretsTheManifestDoesNotList) {
  dir_.Write(".env", absl::StrFormat("DATABASE_URL=%s\n"
                                     "SUPABASE_SERVICE_ROLE_KEY=%s-1\n"
                                     "SUPABASE_DB_URL=postgresql://postgres:%s-2@db/postgres\n"
                                     "AWS_SECRET_ACCESS_KEY=%s-3\n"
                                     "SECRET_KEY=%s-4\n"
                                     "API_KEY=%s-5\n"
                                     "DIRECT_URL=postgresql://u:%s-6@host/db\n"
                                     "PG_DSN=\"host=h password='a %s-7' dbname=d\"\n"
                                     "HASH_URL=postgresql://u:p#%s-8@host/db\n"
                                     "EXTRA_DSN=host=db password=%s-9 note=http://example.com\n"
                                     "JDBC_URL_X=jdbc:postgresql://app:%s-10@db:5432/app\n"
                                     "NEXT_PUBLIC_SUPABASE_ANON_KEY=anon-public\n"
                                     "SUPABASE_URL_DEV=https://dev.supabase.co\n",
                                     DbUrl(), kUnlisted, kUnlisted, kUnlisted, kUnlisted, kUnlisted,
                                     kUnlisted, kUnlisted, kUnlisted, kUnlisted, kUnlisted));
  JQ_ASSERT_OK_AND_ASSIGN(Config config, Load("api"));
  std::map<std::string, ConfigEntry> by_name;
  std::ostringstream all;
  for (const ConfigEntry& entry : config.entries()) {
    by_name[entry.name] = entry;
    all << entry.name << "=" << entry.display_value << "\n";
  }
  ExpectNoSecretIn(all.str());
  for (const char* name :
       {"SUPABASE_SERVICE_ROLE_KEY", "AWS_SECRET_ACCESS_KEY", "SECRET_KEY", "API_KEY"}) {
    EXPECT_EQ(by_name[name].display_value, "[redacted]") << name;
    EXPECT_TRUE(by_name[name].secret) << name;
  }
  EXPECT_EQ(by_name["SUPABASE_DB_URL"].display_value, "postgresql://postgres:****@db/postgres");
  EXPECT_EQ(by_name["DIRECT_URL"].display_value, "postgresql://u:****@host/db");
  EXPECT_EQ(by_name["PG_DSN"].display_value, "host=h password=**** dbname=d");
  EXPECT_EQ(by_name["HASH_URL"].display_value, "[redacted]");
  // A "://" inside a key=value string does not make it a URL without user info: it was shown.
  EXPECT_EQ(by_name["EXTRA_DSN"].display_value, "[redacted]");
  // Not a plain scheme, still a URL with a password: redacted whole.
  EXPECT_EQ(by_name["JDBC_URL_X"].display_value, "[redacted]");
  EXPECT_EQ(by_name["NEXT_PUBLIC_SUPABASE_ANON_KEY"].display_value, "anon-public");
  EXPECT_EQ(by_name["SUPABASE_URL_DEV"].display_value, "https://dev.supabase.co");
  // The generic patterns scope AWS_SECRET_ACCESS_KEY (*_SECRET_*): not the API's to hold.
  EXPECT_THAT(config.scope_violations(), ElementsAre("AWS_SECRET_ACCESS_KEY"));
}

TEST_F(ConfigTest, UnsuffixedSupabaseKeyIsScoped) {
  env_ = {{"REDIS_URL", RedisUrl()}, {"SUPABASE_SERVICE_ROLE_KEY", kRoleKeyDev}};
  JQ_ASSERT_OK_AND_ASSIGN(Config config, Load("judit-worker"));
  EXPECT_THAT(config.scope_violations(), ElementsAre("SUPABASE_SERVICE_ROLE_KEY"));
}

TEST_F(ConfigTest, ErrorsQuotingAValueMaskItsPassword) {
  env_ = {{"DATABASE_URL", DbUrl()},
          {"ENVIRONMENT", absl::StrFormat("postgresql://u:%s@h/d", kProdDbPassword)}};
  EXPECT_THAT(Load("api"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ENVIRONMENT")));
}

TEST_F(ConfigTest, OutOfScopeSecretsAreWithheldInDev) {
  // ingest may not hold REDIS_URL; judit-worker may not hold the Supabase key.
  env_ = {{"DATABASE_URL", DbUrl()}, {"REDIS_URL", RedisUrl()}};
  JQ_ASSERT_OK_AND_ASSIGN(Config ingest, Load("ingest"));
  EXPECT_THAT(ingest.scope_violations(), ElementsAre("REDIS_URL"));
  EXPECT_TRUE(ingest.redis_url().empty());
  EXPECT_EQ(ingest.database_url().Reveal(), DbUrl());

  env_ = {{"SUPABASE_MODE", "dev"},
          {"SUPABASE_URL_DEV", "https://dev.supabase.co"},
          {"SUPABASE_SERVICE_ROLE_KEY_DEV", kRoleKeyDev},
          {"SUPABASE_DB_URL_DEV", DbUrl()},
          {"REDIS_URL", RedisUrl()}};
  JQ_ASSERT_OK_AND_ASSIGN(Config judit, Load("judit-worker"));
  EXPECT_THAT(judit.scope_violations(),
              ElementsAre("SUPABASE_DB_URL_DEV", "SUPABASE_SERVICE_ROLE_KEY_DEV"));
  EXPECT_TRUE(judit.supabase_service_role_key().empty());
  EXPECT_TRUE(judit.database_url().empty());
  EXPECT_EQ(judit.redis_url().Reveal(), RedisUrl());

  // A database URL outside the scope is withheld, not reported missing.
  const std::string manifest = dir_.Write("scopes.json", R"({"version": 1,
      "secrets": ["DATABASE_URL"], "services": {"lean": {"secrets": [], "needs": ["database"]}}})");
  env_ = {{"DATABASE_URL", DbUrl()}};
  ConfigOptions options;
  options.service = "lean";
  options.env_dir = dir_.path();
  options.environment = &env_;
  options.scopes_path = manifest;
  JQ_ASSERT_OK_AND_ASSIGN(Config lean, Load(options));
  EXPECT_TRUE(lean.database_url().empty());
  EXPECT_THAT(lean.scope_violations(), ElementsAre("DATABASE_URL"));
}

TEST_F(ConfigTest, ReportNamesAViolationBesideOtherErrors) {
  env_ = {{"ENVIRONMENT", "prod"}, {"JUDIT_API_KEY", kJuditKey}};  // and no DATABASE_URL
  ConfigOptions options;
  options.service = "api";
  options.env_dir = dir_.path();
  options.environment = &env_;
  options.report_only = true;
  absl::StatusOr<Config> prod = Load(options);
  EXPECT_THAT(prod, StatusIs(absl::StatusCode::kPermissionDenied,
                             AllOf(HasSubstr("JUDIT_API_KEY (from environment)"),
                                   HasSubstr("missing required variables: DATABASE_URL"))));
  EXPECT_EQ(ExitCodeForConfigError(prod.status()), kExitScopeViolation);

  env_.erase("ENVIRONMENT");
  EXPECT_THAT(Load(options),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("JUDIT_API_KEY"), HasSubstr("missing required variables"))));
  // A service in dev fails on the other error, and names the violation too.
  options.report_only = false;
  EXPECT_THAT(Load(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("JUDIT_API_KEY"), HasSubstr("missing required variables"))));
}

TEST_F(ConfigTest, WarningsFollowLogLevelAndFormatFromTheConfig) {
  dir_.Write(".env", "LOG_FORMAT=json\nLOG_LEVEL=error\nDATABASE_URL=" + DbUrl() + "\n", 0644);
  JQ_ASSERT_OK_AND_ASSIGN(Config quiet, Load("api"));
  EXPECT_THAT(quiet.warnings(), Contains(HasSubstr("readable by group or other")));
  for (const std::string& line : lines_) {
    EXPECT_THAT(line, Not(HasSubstr("readable by group"))) << "logged below LOG_LEVEL";
  }
  EXPECT_EQ(CurrentLoggingOptions().to_stderr, false) << "the caller's choice is kept";

  dir_.Write(".env", "LOG_FORMAT=json\nLOG_LEVEL=warn\nDATABASE_URL=" + DbUrl() + "\n", 0644);
  lines_.clear();
  JQ_ASSERT_OK_AND_ASSIGN(Config json, Load("api"));
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], AllOf(StartsWith("{"), HasSubstr("readable by group")));

  ConfigureLogging(LoggingOptions{LogLevel::kTrace, LogFormat::kText, "", false});
  lines_.clear();
  ConfigOptions options;
  options.service = "api";
  options.env_dir = dir_.path();
  options.environment = &env_;
  options.configure_logging = false;
  JQ_ASSERT_OK_AND_ASSIGN(Config untouched, Load(options));
  EXPECT_TRUE(lines_.empty());
  EXPECT_EQ(CurrentLoggingOptions().level, LogLevel::kTrace);
  EXPECT_FALSE(untouched.warnings().empty());
}

TEST_F(ConfigTest, MissingEnvDirIsAConfigError) {
  ConfigOptions options;
  options.service = "api";
  options.env_dir = dir_.path() + "/absent";
  options.environment = &env_;
  env_ = {{"DATABASE_URL", DbUrl()}};
  absl::StatusOr<Config> config = Load(options);
  EXPECT_THAT(config, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("absent")));
  EXPECT_EQ(ExitCodeForConfigError(config.status()), kExitConfigError);
  options.env_dir = dir_.Write("file", "");
  EXPECT_THAT(Load(options),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a directory")));
  options.load_env_files = false;
  EXPECT_THAT(Load(options), IsOk());
}

TEST_F(ConfigTest, UnreadableEnvFileIsAConfigErrorNotAScopeViolation) {
  env_ = {{"DATABASE_URL", DbUrl()}};
  // A symlink loop exists but cannot be read, even by root.
  std::filesystem::create_symlink(dir_.path() + "/.env", dir_.path() + "/.env");
  absl::StatusOr<Config> loop = Load("api");
  EXPECT_THAT(loop, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(".env")));
  EXPECT_EQ(ExitCodeForConfigError(loop.status()), kExitConfigError);
}

TEST_F(ConfigTest, AllowProdDatabaseInDevFromAnEnvFile) {
  env_ = {{"SUPABASE_MODE", "prod"},
          {"SUPABASE_URL_PROD", "https://prod.supabase.co"},
          {"SUPABASE_SERVICE_ROLE_KEY_PROD", kRoleKeyProd},
          {"SUPABASE_DB_URL_PROD", DbUrl()}};
  dir_.Write(".env.local", "JOBQUEUE_ALLOW_PROD_DB_IN_DEV=1\n");
  JQ_ASSERT_OK_AND_ASSIGN(Config config, Load("api"));
  EXPECT_THAT(config.warnings(), Contains(HasSubstr("uses the production database")));
}

}  // namespace
}  // namespace jobqueue
