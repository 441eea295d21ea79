#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "jobqueue/config.h"
#include "jobqueue/json.h"
#include "jobqueue/logging.h"

namespace jobqueue::cli {
namespace {

std::string JsonReport(const Config& config, bool pass) {
  std::vector<std::string> entries;
  for (const ConfigEntry& e : config.entries()) {
    entries.push_back(absl::StrCat(
        "{\"name\":", JsonQuote(e.name), ",\"value\":", JsonQuote(e.display_value),
        ",\"source\":", JsonQuote(e.source), ",\"secret\":", e.secret ? "true" : "false",
        ",\"in_scope\":", e.in_scope ? "true" : "false", "}"));
  }
  std::vector<std::string> quoted_violations, quoted_warnings;
  for (const std::string& v : config.scope_violations()) quoted_violations.push_back(JsonQuote(v));
  for (const std::string& w : config.warnings()) quoted_warnings.push_back(JsonQuote(w));
  return absl::StrCat("{\"service\":", JsonQuote(config.service()),
                      ",\"environment\":", JsonQuote(EnvironmentName(config.environment())),
                      ",\"supabase_mode\":", JsonQuote(SupabaseModeName(config.supabase_mode())),
                      ",\"database_url\":", JsonQuote(config.database_url().Redacted()),
                      ",\"database_url_source\":", JsonQuote(config.database_url_source()),
                      ",\"redis_url\":", JsonQuote(config.redis_url().Redacted()),
                      ",\"log_level\":", JsonQuote(LogLevelName(config.log_level())),
                      ",\"log_format\":", JsonQuote(LogFormatName(config.log_format())),
                      ",\"poll_interval_seconds\":", absl::ToDoubleSeconds(config.poll_interval()),
                      ",\"scopes\":", JsonQuote(config.scopes_origin()), ",\"variables\":[",
                      absl::StrJoin(entries, ","), "]", ",\"scope_violations\":[",
                      absl::StrJoin(quoted_violations, ","), "]", ",\"warnings\":[",
                      absl::StrJoin(quoted_warnings, ","), "]",
                      ",\"verdict\":", pass ? "\"pass\"" : "\"fail\"", "}\n");
}

void PrintText(const Config& config, bool pass) {
  std::printf("%s", config.DebugString().c_str());
  std::printf("scopes: %s\n", config.scopes_origin().c_str());
  std::printf("variables:\n");
  for (const ConfigEntry& e : config.entries()) {
    std::printf("  %-32s %-12s %s%s\n", e.name.c_str(), e.source.c_str(), e.display_value.c_str(),
                e.in_scope ? "" : "  <- NOT ALLOWED for this service");
  }
  for (const std::string& w : config.warnings()) std::printf("warning: %s\n", w.c_str());
  if (pass) {
    std::printf("scope check: PASS (service \"%s\" holds only secrets in its scope)\n",
                config.service().c_str());
  } else {
    std::printf("scope check: FAIL (service \"%s\" holds %s outside its scope; %s)\n",
                config.service().c_str(), absl::StrJoin(config.scope_violations(), ", ").c_str(),
                config.environment() == Environment::kProd ? "it refuses to start in prod"
                                                           : "it would refuse to start in prod");
  }
}

}  // namespace

constexpr char kConfigHelp[] =
    "usage: jobqueue config --service NAME [--env-dir DIR] [--scopes FILE] [--json]\n"
    "Prints the service's effective configuration, secrets masked, and its secret-scope\n"
    "verdict. Exit 0 when it would start, 77 when it holds a secret outside its scope, 78 for\n"
    "a configuration error.\n";

int RunConfig(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = Args::Parse(argv, {"service", "env-dir", "scopes"}, {"json", "help"});
  if (!args.ok()) {
    std::fprintf(stderr, "jobqueue config: %s\n", std::string(args.status().message()).c_str());
    return kExitUsage;
  }
  if (args->Has("help")) return std::fputs(kConfigHelp, stdout), 0;
  absl::StatusOr<std::string> service = args->Require("service");
  if (!service.ok()) {
    std::fprintf(stderr, "jobqueue config: %s\n", std::string(service.status().message()).c_str());
    return kExitUsage;
  }
  ConfigOptions options;
  options.service = *service;
  options.env_dir = args->GetOr("env-dir", ".");
  options.scopes_path = args->GetOr("scopes", "");
  options.report_only = true;
  options.configure_logging = false;  // the report prints the warnings itself
  absl::StatusOr<Config> config = Config::Load(options);
  if (!config.ok()) {
    std::fprintf(stderr, "jobqueue config: %s\n", config.status().ToString().c_str());
    return ExitCodeForConfigError(config.status());
  }
  const bool pass = config->scope_violations().empty();
  if (args->Has("json")) {
    std::fputs(JsonReport(*config, pass).c_str(), stdout);
  } else {
    PrintText(*config, pass);
  }
  return pass ? 0 : kExitScopeViolation;
}

}  // namespace jobqueue::cli
