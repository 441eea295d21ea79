// Service configuration from the process environment and `.env` files, with secret scopes.
//
// Sources, highest precedence first: the process environment, `.env.<service>`, `.env.local`,
// `.env` (in ConfigOptions::env_dir, which must exist). A `.env*` file readable by group or other
// gets a warning; one that exists but cannot be read is an error.
//
// Database URL precedence: when SUPABASE_MODE is set (dev|prod) the database is
// SUPABASE_DB_URL_<MODE>, and SUPABASE_URL_<MODE>, SUPABASE_SERVICE_ROLE_KEY_<MODE> and
// SUPABASE_DB_URL_<MODE> are all required; a DATABASE_URL beside it is ignored with a warning
// (falling back to it could silently point a service at the wrong database). Without
// SUPABASE_MODE the database is DATABASE_URL. REDIS_URL (redis://, rediss://, unix://) is read
// either way.
//
// Secret scopes: a manifest (deploy/secret-scopes.json, compiled in as the default) lists which
// variables are secrets and which service may hold which. A secret outside the service's scope
// makes Load() fail with PermissionDenied in prod (exit code kExitScopeViolation) and is a
// warning in dev and staging; in every environment its value is withheld (database_url(),
// redis_url(), supabase_service_role_key() stay empty, GetSecret() refuses it). Error messages
// name variables, never their values.
#ifndef JOBQUEUE_CONFIG_H_
#define JOBQUEUE_CONFIG_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "jobqueue/logging.h"
#include "jobqueue/secret.h"

namespace jobqueue {

enum class Environment { kDev, kStaging, kProd };
enum class SupabaseMode { kUnset, kDev, kProd };

absl::string_view EnvironmentName(Environment environment);
absl::string_view SupabaseModeName(SupabaseMode mode);

// Process exit codes for services and the CLI (sysexits.h values).
inline constexpr int kExitUsage = 64;           // bad command line
inline constexpr int kExitScopeViolation = 77;  // a secret outside the service's scope, in prod
inline constexpr int kExitConfigError = 78;     // any other configuration error
// The exit code a service should use when Config::Load fails with `status`.
int ExitCodeForConfigError(const absl::Status& status);

struct ConfigOptions {
  // The service whose secret scope applies ("api", "worker", "ingest", ...). Required.
  std::string service;
  // Folder with the .env files. Default: the current directory.
  std::string env_dir = ".";
  // Read .env, .env.local and .env.<service>. Default on.
  bool load_env_files = true;
  // Secret-scope manifest. Default: $JOBQUEUE_SECRET_SCOPES when set, else the built-in one.
  std::string scopes_path;
  // Variables this service needs beyond the manifest's. Default none.
  std::vector<std::string> required;
  // Permit SUPABASE_MODE=prod while ENVIRONMENT=dev (a dev box on the prod database). Default
  // off; JOBQUEUE_ALLOW_PROD_DB_IN_DEV=1 in the environment or a .env file does the same.
  bool allow_prod_database_in_dev = false;
  // Record scope violations without failing, even in prod (for `jobqueue config` reports). When
  // Load() fails for another reason, a violation makes it PermissionDenied (naming both), so a
  // report never hides it. Default off.
  bool report_only = false;
  // On success, apply LOG_LEVEL and LOG_FORMAT (ConfigureLogging(logging_options()), keeping the
  // current to_stderr) and then log warnings() at WARN, so they follow those settings. Off: the
  // logging setup is untouched and nothing is logged; the caller handles warnings(). Default on.
  bool configure_logging = true;
  // The process environment to read instead of `environ` (tests, embedders). Default: environ.
  const std::map<std::string, std::string>* environment = nullptr;
};

// One variable as the configuration saw it.
struct ConfigEntry {
  std::string name;
  std::string display_value;  // masked when secret; a password in a URL or DSN masked always
  std::string source;         // "environment", ".env", ".env.local", ".env.<service>"
  bool secret = false;        // a secret by the manifest or by its name
  bool in_scope = true;       // false: a secret this service may not hold
};

class Config {
 public:
  static absl::StatusOr<Config> Load(const ConfigOptions& options);

  const std::string& service() const { return service_; }
  Environment environment() const { return environment_; }
  SupabaseMode supabase_mode() const { return supabase_mode_; }

  // Empty when not configured or outside the service's scope. database_url_source() names the
  // variable it came from.
  const Secret& database_url() const { return database_url_; }
  const std::string& database_url_source() const { return database_url_source_; }
  const Secret& redis_url() const { return redis_url_; }
  // SUPABASE_URL_<MODE>; empty without SUPABASE_MODE.
  const std::string& supabase_url() const { return supabase_url_; }
  const Secret& supabase_service_role_key() const { return supabase_service_role_key_; }

  LogLevel log_level() const { return log_level_; }
  LogFormat log_format() const { return log_format_; }
  // LoggingOptions for ConfigureLogging(), tagged with the service name.
  LoggingOptions logging_options() const;
  // WORKER_POLL_INTERVAL: seconds (fractions allowed) or a duration such as "500ms".
  absl::Duration poll_interval() const { return poll_interval_; }

  // A plain (non-secret) variable, from any source.
  std::optional<std::string> Get(absl::string_view name) const;
  // A secret this service's scope allows. NotFound when unset; PermissionDenied when out of scope
  // (the value is never handed out, even in dev).
  absl::StatusOr<Secret> GetSecret(absl::string_view name) const;

  // Secrets present that this service may not hold (non-empty only outside prod, or in prod
  // with ConfigOptions::report_only).
  const std::vector<std::string>& scope_violations() const { return scope_violations_; }
  // Things worth a log line: out-of-scope secrets in dev, loose .env permissions, ignored
  // variables. Load() also logs each one at WARN (see ConfigOptions::configure_logging).
  const std::vector<std::string>& warnings() const { return warnings_; }
  // Every relevant variable with its masked value and source, sorted by name. Masked: secrets by
  // the manifest or by name (see docs/configuration.md), and passwords in connection strings.
  const std::vector<ConfigEntry>& entries() const { return entries_; }
  // Where the scope manifest came from.
  const std::string& scopes_origin() const { return scopes_origin_; }

  // Multi-line, secrets masked.
  std::string DebugString() const;

 private:
  Config() = default;

  struct Value {
    std::string value;
    std::string source;
  };

  std::string service_;
  Environment environment_ = Environment::kDev;
  SupabaseMode supabase_mode_ = SupabaseMode::kUnset;
  Secret database_url_;
  std::string database_url_source_;
  Secret redis_url_;
  std::string supabase_url_;
  Secret supabase_service_role_key_;
  LogLevel log_level_ = LogLevel::kInfo;
  LogFormat log_format_ = LogFormat::kText;
  absl::Duration poll_interval_ = absl::Seconds(10);
  std::map<std::string, Value, std::less<>> plain_;
  std::map<std::string, Secret, std::less<>> secrets_;  // in-scope secrets only
  std::vector<std::string> scope_violations_;
  std::vector<std::string> warnings_;
  std::vector<ConfigEntry> entries_;
  std::string scopes_origin_;
};

}  // namespace jobqueue

#endif  // JOBQUEUE_CONFIG_H_
