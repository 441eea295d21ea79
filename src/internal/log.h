// Private logging helpers: fmt-style formatting into the library's spdlog logger.
#ifndef JOBQUEUE_SRC_INTERNAL_LOG_H_
#define JOBQUEUE_SRC_INTERNAL_LOG_H_

#include <spdlog/spdlog.h>

#include <memory>
#include <utility>

#include "absl/strings/string_view.h"
#include "jobqueue/secret_fmt.h"

// Debian's Abseil has its own string_view type, which fmt does not know.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};

namespace jobqueue::internal {

// Never null; replaced atomically by ConfigureLogging.
std::shared_ptr<spdlog::logger> Logger();

template <typename... Args>
void LogTrace(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  Logger()->trace(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void LogDebug(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  Logger()->debug(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void LogInfo(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  Logger()->info(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void LogWarn(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  Logger()->warn(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void LogError(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  Logger()->error(fmt, std::forward<Args>(args)...);
}

}  // namespace jobqueue::internal

#endif  // JOBQUEUE_SRC_INTERNAL_LOG_H_
