// Private logging helpers: fmt-style formatting into the library's spdlog logger.
#ifndef JOBQUEUE_SRC_INTERNAL_LOG_H_
#define JOBQUEUE_SRC_INTERNAL_LOG_H_

#include <spdlog/spdlog.h>

#include <memory>
#include <utility>

#include "jobqueue/secret_fmt.h"

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
