#include "jobqueue/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "dotenv.h"
#include "internal/log.h"
#include "jobqueue/duration.h"
#include "jobqueue/redis_client.h"
#include "jobqueue/status.h"
#include "secret_scopes_internal.h"
#include "url.h"

extern char** environ;

namespace jobqueue {
namespace {

using internal::SecretScopes;
using internal::ServiceScope;

struct Sourced {
  std::string value;
  std::string source;
};
using VariableMap = std::map<std::string, Sourced, std::less<>>;

constexpr absl::string_view kProcessEnvironment = "environment";

// Variables shown by entries() even when they are not secrets.
bool IsConfigVariable(absl::string_view name) {
  static constexpr absl::string_view kNames[] = {
      "ENVIRONMENT",       "NODE_ENV",  "SUPABASE_MODE", "SUPABASE_URL_DEV",
      "SUPABASE_URL_PROD", "LOG_LEVEL", "LOG_FORMAT",    "WORKER_POLL_INTERVAL"};
  for (absl::string_view known : kNames) {
    if (name == known) return true;
  }
  return absl::StartsWith(name, "JOBQUEUE_");
}

bool IsUrlVariable(absl::string_view name) { return absl::StrContains(name, "URL"); }

// A value of a variable not known as a secret, for display: a connection string in it (a URL
// with user info or a query, or libpq key=value with a password) is shown masked all the same.
std::string MaskPlainValue(absl::string_view value) {
  // A URL with user info or a query (MaskUrl redacts whole what it cannot parse: jdbc:...).
  if (absl::StrContains(value, "://") &&
      (absl::StrContains(value, "@") || absl::StrContains(value, "?"))) {
    return MaskUrl(value);
  }
  // Otherwise, "://" or not, it may be a key=value string with a password.
  const std::string lower = absl::AsciiStrToLower(value);
  if ((absl::StrContains(lower, "pass") || absl::StrContains(lower, "token") ||
       absl::StrContains(lower, "secret") || absl::StrContains(lower, "key")) &&
      absl::StrContains(value, "=")) {
    return MaskUrl(value);  // masks the secret keys of a DSN, redacts anything else
  }
  return std::string(value);
}

// Non-secret values may appear in errors, but short and quoted, in case one was mistyped.
std::string Quote(absl::string_view value) {
  constexpr size_t kMax = 40;
  const std::string shown = MaskPlainValue(value);
  if (shown.size() > kMax) return absl::StrCat("\"", shown.substr(0, kMax), "...\"");
  return absl::StrCat("\"", shown, "\"");
}

// Safe by default: a secret by the manifest, or by its name, is never shown; URL-named ones
// show with the password masked.
std::string DisplayValue(absl::string_view name, absl::string_view value, bool scope_secret,
                         bool looks_secret, bool in_scope) {
  if (!in_scope) return std::string(kRedacted);
  if (scope_secret) return IsUrlVariable(name) ? MaskUrl(value) : std::string(kRedacted);
  if (looks_secret) {
    return IsUrlVariable(name) && absl::StrContains(value, "://") ? MaskUrl(value)
                                                                  : std::string(kRedacted);
  }
  return MaskPlainValue(value);
}

std::string ErrnoText(int error) { return std::generic_category().message(error); }

// A missing env dir would silently load nothing: most likely a typo.
absl::Status CheckEnvDir(const std::string& dir) {
  if (dir.empty()) return absl::OkStatus();
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    const int error = errno;
    return absl::FailedPreconditionError(
        absl::StrCat("env dir ", dir, " cannot be used: ", ErrnoText(error)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("env dir ", dir, " is not a directory"));
  }
  return absl::OkStatus();
}

// An empty ENVIRONMENT or NODE_ENV counts as unset: one exported empty by a deploy tool (or
// left empty in .env.local) must not turn .env's "prod" into the default "dev", and a prod
// service's scope refusals into warnings. Other variables keep plain precedence: an empty
// value in the environment still blanks a .env value.
bool EmptyMeansUnset(absl::string_view name) { return name == "ENVIRONMENT" || name == "NODE_ENV"; }

// Sets `name` from a source of higher precedence than those already read.
void Assign(VariableMap* variables, const std::string& name, Sourced value) {
  if (value.value.empty() && EmptyMeansUnset(name)) {
    auto it = variables->find(name);
    if (it != variables->end() && !it->second.value.empty()) return;
  }
  (*variables)[name] = std::move(value);
}

absl::Status ReadEnvFile(const std::string& dir, const std::string& file_name,
                         VariableMap* variables, std::vector<std::string>* warnings) {
  const std::string path = dir.empty() ? file_name : absl::StrCat(dir, "/", file_name);
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    const int error = errno;
    if (error == ENOENT) return absl::OkStatus();  // absent files are fine
    // Not PermissionDenied: that code means a scope violation (exit 77).
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read ", path, ": ", ErrnoText(error)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a regular file"));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    warnings->push_back(
        absl::StrFormat("%s is readable by group or other (mode %04o); run: chmod 600 %s", path,
                        st.st_mode & 07777, path));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read ", path, ": ", ErrnoText(error)));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::FailedPreconditionError(absl::StrCat("cannot read ", path));
  JQ_ASSIGN_OR_RETURN(std::vector<internal::DotenvEntry> entries,
                      internal::ParseDotenv(buffer.str(), path));
  // Within the file the last line wins; then the file as a whole goes over the ones before.
  VariableMap file;
  for (internal::DotenvEntry& entry : entries) {
    file[entry.key] = Sourced{std::move(entry.value), file_name};
  }
  for (auto& [name, value] : file) Assign(variables, name, std::move(value));
  return absl::OkStatus();
}

absl::StatusOr<Environment> ParseEnvironment(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "dev" || lower == "development") return Environment::kDev;
  if (lower == "staging") return Environment::kStaging;
  if (lower == "prod" || lower == "production") return Environment::kProd;
  return absl::InvalidArgumentError(
      absl::StrCat("ENVIRONMENT=", Quote(text), " is not one of dev, staging, prod"));
}

absl::StatusOr<absl::Duration> ParsePollInterval(absl::string_view text) {
  absl::StatusOr<absl::Duration> duration = ParseSecondsOrDuration(text);
  if (duration.ok() && *duration > absl::ZeroDuration() && *duration <= absl::Hours(24)) {
    return *duration;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("WORKER_POLL_INTERVAL=", Quote(text),
                   " is not a positive number of seconds (fractions allowed, at most 86400) or a "
                   "duration like 500ms"));
}

// A problem with a connection URL, or OK. Never quotes the value.
absl::Status CheckDatabaseUrl(absl::string_view name, absl::string_view url) {
  if (absl::StartsWith(url, "postgres://") || absl::StartsWith(url, "postgresql://")) {
    if (auto parsed = internal::ParseUrl(url); !parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " is malformed: ", parsed.status().message()));
    }
    return absl::OkStatus();
  }
  if (!absl::StrContains(url, "://") && absl::StrContains(url, "=")) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      name, " must be a postgres:// or postgresql:// URL or a libpq key=value string"));
}

absl::Status CheckRedisUrl(absl::string_view name, absl::string_view url) {
  if (!absl::StartsWith(url, "redis://") && !absl::StartsWith(url, "rediss://") &&
      !absl::StartsWith(url, "unix://")) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be a redis://, rediss:// or unix:// URL"));
  }
  // What a connection would refuse later (a database that is not a number, say) is refused now.
  if (absl::Status valid = ValidateRedisUrl(Secret::Url(std::string(url))); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(name, " is malformed: ", valid.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view EnvironmentName(Environment environment) {
  switch (environment) {
    case Environment::kDev:
      return "dev";
    case Environment::kStaging:
      return "staging";
    case Environment::kProd:
      return "prod";
  }
  return "dev";
}

absl::string_view SupabaseModeName(SupabaseMode mode) {
  switch (mode) {
    case SupabaseMode::kUnset:
      return "unset";
    case SupabaseMode::kDev:
      return "dev";
    case SupabaseMode::kProd:
      return "prod";
  }
  return "unset";
}

int ExitCodeForConfigError(const absl::Status& status) {
  if (status.ok()) return 0;
  return status.code() == absl::StatusCode::kPermissionDenied ? kExitScopeViolation
                                                              : kExitConfigError;
}

absl::StatusOr<Config> Config::Load(const ConfigOptions& options) {
  if (options.service.empty()) {
    return absl::InvalidArgumentError(
        "ConfigOptions.service is empty: name the service whose "
        "secret scope applies (e.g. api, worker)");
  }

  std::map<std::string, std::string> process;
  if (options.environment != nullptr) {
    process = *options.environment;
  } else {
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
      const absl::string_view kv(*entry);
      const size_t eq = kv.find('=');
      if (eq == absl::string_view::npos) continue;
      process.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
  }
  auto process_value = [&process](absl::string_view name) -> std::string {
    auto it = process.find(std::string(name));
    return it == process.end() ? std::string() : it->second;
  };

  std::string scopes_path = options.scopes_path;
  if (scopes_path.empty()) scopes_path = process_value("JOBQUEUE_SECRET_SCOPES");
  absl::StatusOr<SecretScopes> scopes =
      scopes_path.empty() ? SecretScopes::BuiltIn() : SecretScopes::LoadFile(scopes_path);
  if (!scopes.ok()) return scopes.status();
  JQ_ASSIGN_OR_RETURN(const ServiceScope* scope, scopes->Find(options.service));

  Config config;
  config.service_ = options.service;
  config.scopes_origin_ = scopes->origin();

  VariableMap variables;
  if (options.load_env_files) {
    JQ_RETURN_IF_ERROR(CheckEnvDir(options.env_dir));
    for (const std::string& file :
         {std::string(".env"), std::string(".env.local"), absl::StrCat(".env.", options.service)}) {
      JQ_RETURN_IF_ERROR(ReadEnvFile(options.env_dir, file, &variables, &config.warnings_));
    }
  }
  for (const auto& [name, value] : process) {
    Assign(&variables, name, Sourced{value, std::string(kProcessEnvironment)});
  }
  auto get = [&variables](absl::string_view name) -> const Sourced* {
    auto it = variables.find(name);
    if (it == variables.end() || it->second.value.empty()) return nullptr;
    return &it->second;
  };
  // An out-of-scope secret is never handed to the service, in any environment; it is not
  // "missing" either: the scope check below names it.
  auto allowed = [&](absl::string_view name) {
    return !scopes->IsSecret(name) || SecretScopes::Allows(*scope, name);
  };
  auto held = [&](absl::string_view name) -> const Sourced* {
    return allowed(name) ? get(name) : nullptr;
  };

  std::vector<std::string> problems;
  std::set<std::string> missing;

  if (const Sourced* env = get("ENVIRONMENT")) {
    absl::StatusOr<Environment> parsed = ParseEnvironment(env->value);
    if (parsed.ok()) {
      config.environment_ = *parsed;
    } else {
      problems.push_back(std::string(parsed.status().message()));
    }
  } else if (const Sourced* node_env = get("NODE_ENV");
             node_env && node_env->value == "production") {
    config.environment_ = Environment::kProd;
  }

  if (const Sourced* mode = get("SUPABASE_MODE")) {
    const std::string lower = absl::AsciiStrToLower(mode->value);
    if (lower == "dev") {
      config.supabase_mode_ = SupabaseMode::kDev;
    } else if (lower == "prod") {
      config.supabase_mode_ = SupabaseMode::kProd;
    } else {
      problems.push_back(absl::StrCat("SUPABASE_MODE=", Quote(mode->value), " is not dev or prod"));
    }
  }

  const Sourced* allow_prod = get("JOBQUEUE_ALLOW_PROD_DB_IN_DEV");  // .env files count too
  const bool allow_prod_in_dev =
      options.allow_prod_database_in_dev || (allow_prod != nullptr && allow_prod->value == "1");
  if (config.supabase_mode_ == SupabaseMode::kProd && config.environment_ == Environment::kDev) {
    if (allow_prod_in_dev) {
      config.warnings_.push_back(
          "SUPABASE_MODE=prod with ENVIRONMENT=dev: this dev process uses the production "
          "database (allowed by JOBQUEUE_ALLOW_PROD_DB_IN_DEV)");
    } else {
      problems.push_back(
          "SUPABASE_MODE=prod with ENVIRONMENT=dev would point a dev process at the production "
          "database; set ENVIRONMENT=prod, or JOBQUEUE_ALLOW_PROD_DB_IN_DEV=1 to allow it");
    }
  }
  if (config.supabase_mode_ == SupabaseMode::kDev && config.environment_ == Environment::kProd) {
    config.warnings_.push_back(
        "SUPABASE_MODE=dev with ENVIRONMENT=prod: a prod process is using "
        "the dev database");
  }

  if (config.supabase_mode_ != SupabaseMode::kUnset) {
    const std::string suffix = config.supabase_mode_ == SupabaseMode::kDev ? "DEV" : "PROD";
    const std::string url_name = "SUPABASE_URL_" + suffix;
    const std::string key_name = "SUPABASE_SERVICE_ROLE_KEY_" + suffix;
    const std::string db_name = "SUPABASE_DB_URL_" + suffix;
    for (const std::string& name : {url_name, key_name, db_name}) {
      if (get(name) == nullptr) missing.insert(name);
    }
    if (const Sourced* v = held(url_name)) config.supabase_url_ = v->value;
    if (const Sourced* v = held(key_name)) config.supabase_service_role_key_ = Secret(v->value);
    if (const Sourced* v = held(db_name)) {
      config.database_url_ = Secret::Url(v->value);
      config.database_url_source_ = db_name;
    }
    if (get("DATABASE_URL") != nullptr) {
      config.warnings_.push_back(absl::StrCat(
          "DATABASE_URL is ignored: SUPABASE_MODE=", SupabaseModeName(config.supabase_mode_),
          " selects ", db_name));
    }
  } else if (const Sourced* v = held("DATABASE_URL")) {
    config.database_url_ = Secret::Url(v->value);
    config.database_url_source_ = "DATABASE_URL";
  }
  if (!config.database_url_.empty()) {
    if (absl::Status s =
            CheckDatabaseUrl(config.database_url_source_, config.database_url_.Reveal());
        !s.ok()) {
      problems.push_back(std::string(s.message()));
    }
  }
  if (const Sourced* v = held("REDIS_URL")) {
    config.redis_url_ = Secret::Url(v->value);
    if (absl::Status s = CheckRedisUrl("REDIS_URL", v->value); !s.ok()) {
      problems.push_back(std::string(s.message()));
    }
  }
  for (const std::string& need : scope->needs) {
    if (need == "database" && config.supabase_mode_ == SupabaseMode::kUnset &&
        get("DATABASE_URL") == nullptr) {
      missing.insert("DATABASE_URL");
    }
    if (need == "redis" && get("REDIS_URL") == nullptr) missing.insert("REDIS_URL");
  }
  for (const std::vector<std::string>* names : {&scope->required, &options.required}) {
    for (const std::string& name : *names) {
      if (get(name) == nullptr) missing.insert(name);
    }
  }

  if (const Sourced* v = get("LOG_LEVEL")) {
    absl::StatusOr<LogLevel> level = ParseLogLevel(v->value);
    if (level.ok()) {
      config.log_level_ = *level;
    } else {
      problems.push_back(
          absl::StrCat("LOG_LEVEL=", Quote(v->value), ": ", level.status().message()));
    }
  }
  if (const Sourced* v = get("LOG_FORMAT")) {
    absl::StatusOr<LogFormat> format = ParseLogFormat(v->value);
    if (format.ok()) {
      config.log_format_ = *format;
    } else {
      problems.push_back(
          absl::StrCat("LOG_FORMAT=", Quote(v->value), ": ", format.status().message()));
    }
  }
  if (const Sourced* v = get("WORKER_POLL_INTERVAL")) {
    absl::StatusOr<absl::Duration> interval = ParsePollInterval(v->value);
    if (interval.ok()) {
      config.poll_interval_ = *interval;
    } else {
      problems.push_back(std::string(interval.status().message()));
    }
  }

  std::vector<std::string> violation_details;
  for (const auto& [name, sourced] : variables) {
    const bool secret = scopes->IsSecret(name);
    const bool in_scope = allowed(name);
    if (!secret) {
      config.plain_[name] = Config::Value{sourced.value, sourced.source};
    } else if (in_scope) {
      config.secrets_[name] =
          IsUrlVariable(name) ? Secret::Url(sourced.value) : Secret(sourced.value);
    } else if (!sourced.value.empty()) {
      config.scope_violations_.push_back(name);
      violation_details.push_back(absl::StrCat(name, " (from ", sourced.source, ")"));
    }
    if (secret || IsConfigVariable(name) || sourced.source != kProcessEnvironment) {
      ConfigEntry entry;
      entry.name = name;
      entry.source = sourced.source;
      const bool looks_secret =
          secret || (!scopes->IsPublic(name) && internal::LooksLikeSecretName(name));
      entry.secret = looks_secret;
      entry.in_scope = in_scope;
      entry.display_value = DisplayValue(name, sourced.value, secret, looks_secret, in_scope);
      config.entries_.push_back(std::move(entry));
    }
  }

  if (!missing.empty()) {
    problems.push_back(absl::StrCat("missing required variables: ", absl::StrJoin(missing, ", ")));
  }
  if (!violation_details.empty()) {
    const std::string what =
        absl::StrCat("service \"", options.service,
                     "\" holds secrets outside its scope: ", absl::StrJoin(violation_details, ", "),
                     " (scopes from ", scopes->origin(), ")");
    const bool prod = config.environment_ == Environment::kProd;
    const std::string also =
        problems.empty() ? "" : absl::StrCat("; also: ", absl::StrJoin(problems, "; "));
    if (prod && !options.report_only) {
      return absl::PermissionDeniedError(absl::StrCat(
          what, "; refusing to start in prod: remove them from this service's environment", also));
    }
    const std::string warning = absl::StrCat(
        what, prod ? "; refuses to start in prod" : "; this would refuse to start in prod");
    // A report (`jobqueue config`) fails on a violation in any environment: another error must
    // not hide it behind the generic configuration error.
    if (options.report_only && !problems.empty()) {
      return absl::PermissionDeniedError(absl::StrCat(warning, also));
    }
    if (!problems.empty()) problems.push_back(warning);
    config.warnings_.push_back(warning);
  }
  if (!problems.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("configuration for service \"", options.service,
                     "\" is invalid: ", absl::StrJoin(problems, "; ")));
  }
  if (options.configure_logging) {
    // Warnings follow LOG_LEVEL and LOG_FORMAT; where lines go stays the caller's choice.
    LoggingOptions logging = config.logging_options();
    logging.to_stderr = CurrentLoggingOptions().to_stderr;
    ConfigureLogging(logging);
    for (const std::string& warning : config.warnings_) internal::LogWarn("config: {}", warning);
  }
  return config;
}

LoggingOptions Config::logging_options() const {
  LoggingOptions options;
  options.level = log_level_;
  options.format = log_format_;
  options.service = service_;
  return options;
}

std::optional<std::string> Config::Get(absl::string_view name) const {
  auto it = plain_.find(name);
  if (it == plain_.end()) return std::nullopt;
  return it->second.value;
}

absl::StatusOr<Secret> Config::GetSecret(absl::string_view name) const {
  if (auto it = secrets_.find(name); it != secrets_.end()) return it->second;
  for (const std::string& violation : scope_violations_) {
    if (violation == name) {
      return absl::PermissionDeniedError(
          absl::StrCat("service \"", service_, "\" may not hold ", name));
    }
  }
  return absl::NotFoundError(absl::StrCat(name, " is not set"));
}

std::string Config::DebugString() const {
  std::string out;
  absl::StrAppend(&out, "service: ", service_, "\n");
  absl::StrAppend(&out, "environment: ", EnvironmentName(environment_), "\n");
  absl::StrAppend(&out, "supabase_mode: ", SupabaseModeName(supabase_mode_), "\n");
  absl::StrAppend(&out, "database_url: ", database_url_.Redacted(),
                  database_url_source_.empty() ? "" : absl::StrCat(" (", database_url_source_, ")"),
                  "\n");
  absl::StrAppend(&out, "redis_url: ", redis_url_.Redacted(), "\n");
  if (!supabase_url_.empty()) {
    absl::StrAppend(&out, "supabase_url: ", MaskPlainValue(supabase_url_), "\n");
  }
  if (!supabase_service_role_key_.empty()) {
    absl::StrAppend(&out, "supabase_service_role_key: ", supabase_service_role_key_.Redacted(),
                    "\n");
  }
  absl::StrAppend(&out, "log_level: ", LogLevelName(log_level_), "\n");
  absl::StrAppend(&out, "log_format: ", LogFormatName(log_format_), "\n");
  absl::StrAppend(&out, "poll_interval: ", absl::FormatDuration(poll_interval_), "\n");
  return out;
}

}  // namespace jobqueue
