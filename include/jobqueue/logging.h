// The library's log: text or JSON lines on stderr, at a level from LOG_LEVEL.
//
// spdlog does the work but stays private; callers configure and add sinks through this header.
#ifndef JOBQUEUE_LOGGING_H_
#define JOBQUEUE_LOGGING_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace jobqueue {

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError, kCritical, kOff };
enum class LogFormat { kText, kJson };

// Case-insensitive: trace, debug, info, warn|warning, error, critical|fatal, off.
absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view text);
// text | json, case-insensitive.
absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view text);
absl::string_view LogLevelName(LogLevel level);
absl::string_view LogFormatName(LogFormat format);

struct LoggingOptions {
  // Lines below this level are dropped. Default INFO, as in the seeds.
  LogLevel level = LogLevel::kInfo;
  // kText: `2026-11-22T12:00:00.123Z info [api] message`; kJson: one object a line with
  // ts, level, service and msg.
  LogFormat format = LogFormat::kText;
  // Added to every line so the API's and the workers' logs can be told apart. Default none.
  std::string service;
  // Write lines to stderr. Default on; sinks added below get lines either way.
  bool to_stderr = true;
};

// Applies to every line logged afterwards, by the library and through Log(). Thread-safe.
void ConfigureLogging(const LoggingOptions& options);
LoggingOptions CurrentLoggingOptions();

// Logs one line through the library's logger.
void Log(LogLevel level, absl::string_view message);

// Receives every formatted line (without the trailing newline) that passes the level. Used by
// tests to assert on all output and by bindings to forward lines. Returns an id for removal.
using LogSinkFunction = std::function<void(LogLevel level, absl::string_view line)>;
int AddLogSink(LogSinkFunction sink);
void RemoveLogSink(int id);

}  // namespace jobqueue

#endif  // JOBQUEUE_LOGGING_H_
