#include "jobqueue/logging.h"

#include <spdlog/details/log_msg.h>
#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <chrono>
#include <map>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "internal/json_escape.h"
#include "internal/log.h"

namespace jobqueue {
namespace {

spdlog::level::level_enum ToSpdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return spdlog::level::trace;
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
    case LogLevel::kCritical:
      return spdlog::level::critical;
    case LogLevel::kOff:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

LogLevel FromSpdlog(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return LogLevel::kTrace;
    case spdlog::level::debug:
      return LogLevel::kDebug;
    case spdlog::level::info:
      return LogLevel::kInfo;
    case spdlog::level::warn:
      return LogLevel::kWarn;
    case spdlog::level::err:
      return LogLevel::kError;
    case spdlog::level::critical:
      return LogLevel::kCritical;
    default:
      return LogLevel::kOff;
  }
}

void AppendUtcTimestamp(std::chrono::system_clock::time_point tp, spdlog::memory_buf_t& dest) {
  const auto t = std::chrono::system_clock::to_time_t(tp);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  fmt::format_to(std::back_inserter(dest), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ms);
}

class JsonFormatter final : public spdlog::formatter {
 public:
  explicit JsonFormatter(std::string service) : service_(std::move(service)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string line = "{\"ts\":\"";
    dest.append(line.data(), line.data() + line.size());
    AppendUtcTimestamp(msg.time, dest);
    line = "\",\"level\":\"";
    absl::StrAppend(&line, LogLevelName(FromSpdlog(msg.level)));
    line.append("\"");
    if (!service_.empty()) {
      line.append(",\"service\":\"");
      internal::AppendJsonEscaped(service_, &line);
      line.append("\"");
    }
    line.append(",\"msg\":\"");
    internal::AppendJsonEscaped(absl::string_view(msg.payload.data(), msg.payload.size()), &line);
    line.append("\"}\n");
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>(service_);
  }

 private:
  const std::string service_;
};

std::unique_ptr<spdlog::formatter> MakeFormatter(const LoggingOptions& options) {
  if (options.format == LogFormat::kJson) return std::make_unique<JsonFormatter>(options.service);
  std::string pattern = "%Y-%m-%dT%H:%M:%S.%eZ %l ";
  if (!options.service.empty()) {
    pattern += "[" + absl::StrReplaceAll(options.service, {{"%", "%%"}}) + "] ";
  }
  pattern += "%v";
  return std::make_unique<spdlog::pattern_formatter>(pattern, spdlog::pattern_time_type::utc);
}

// Hands every formatted line to the registered functions.
class DispatchSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  int Add(LogSinkFunction fn) {
    std::lock_guard<std::mutex> lock(mutex_);
    const int id = next_id_++;
    sinks_.emplace(id, std::move(fn));
    return id;
  }
  void Remove(int id) {
    std::lock_guard<std::mutex> lock(mutex_);
    sinks_.erase(id);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (sinks_.empty()) return;
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    absl::string_view line(formatted.data(), formatted.size());
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    const LogLevel level = FromSpdlog(msg.level);
    for (auto& [id, fn] : sinks_) fn(level, line);
  }
  void flush_() override {}

 private:
  int next_id_ = 1;
  std::map<int, LogSinkFunction> sinks_;
};

struct LoggerState {
  std::shared_ptr<spdlog::sinks::stderr_sink_mt> stderr_sink =
      std::make_shared<spdlog::sinks::stderr_sink_mt>();
  std::shared_ptr<DispatchSink> dispatch_sink = std::make_shared<DispatchSink>();
  std::shared_ptr<spdlog::logger> logger;
  absl::Mutex mu;
  LoggingOptions options ABSL_GUARDED_BY(mu);

  LoggerState() {
    logger = std::make_shared<spdlog::logger>("jobqueue",
                                              spdlog::sinks_init_list{stderr_sink, dispatch_sink});
    Apply(LoggingOptions());
  }

  void Apply(const LoggingOptions& new_options) {
    absl::MutexLock lock(&mu);
    options = new_options;
    logger->set_level(ToSpdlog(options.level));
    logger->flush_on(spdlog::level::warn);
    stderr_sink->set_level(options.to_stderr ? spdlog::level::trace : spdlog::level::off);
    stderr_sink->set_formatter(MakeFormatter(options));
    dispatch_sink->set_formatter(MakeFormatter(options));
  }
};

LoggerState& State() {
  static LoggerState* state = new LoggerState();
  return *state;
}

}  // namespace

namespace internal {
std::shared_ptr<spdlog::logger> Logger() { return State().logger; }
}  // namespace internal

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (lower == "trace") return LogLevel::kTrace;
  if (lower == "debug") return LogLevel::kDebug;
  if (lower == "info") return LogLevel::kInfo;
  if (lower == "warn" || lower == "warning") return LogLevel::kWarn;
  if (lower == "error") return LogLevel::kError;
  if (lower == "critical" || lower == "fatal") return LogLevel::kCritical;
  if (lower == "off") return LogLevel::kOff;
  return absl::InvalidArgumentError(
      "unknown log level (expected trace, debug, info, warn, error, critical or off)");
}

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (lower == "text") return LogFormat::kText;
  if (lower == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError("unknown log format (expected text or json)");
}

absl::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return "trace";
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
    case LogLevel::kCritical:
      return "critical";
    case LogLevel::kOff:
      return "off";
  }
  return "info";
}

absl::string_view LogFormatName(LogFormat format) {
  return format == LogFormat::kJson ? "json" : "text";
}

void ConfigureLogging(const LoggingOptions& options) { State().Apply(options); }

LoggingOptions CurrentLoggingOptions() {
  LoggerState& state = State();
  absl::MutexLock lock(&state.mu);
  return state.options;
}

void Log(LogLevel level, absl::string_view message) {
  internal::Logger()->log(ToSpdlog(level), "{}", fmt::string_view(message.data(), message.size()));
}

int AddLogSink(LogSinkFunction sink) { return State().dispatch_sink->Add(std::move(sink)); }

void RemoveLogSink(int id) { State().dispatch_sink->Remove(id); }

}  // namespace jobqueue
