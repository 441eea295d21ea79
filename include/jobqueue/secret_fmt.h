// fmt (and so spdlog) support for jobqueue::Secret, kept out of secret.h so that including
// the library does not pull in fmt. Without this header fmt refuses to format a Secret.
#ifndef JOBQUEUE_SECRET_FMT_H_
#define JOBQUEUE_SECRET_FMT_H_

#include <fmt/format.h>

#include "jobqueue/secret.h"

template <>
struct fmt::formatter<jobqueue::Secret> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(const jobqueue::Secret& secret, FormatContext& ctx) const -> decltype(ctx.out()) {
    const std::string redacted = secret.Redacted();
    return fmt::formatter<fmt::string_view>::format(
        fmt::string_view(redacted.data(), redacted.size()), ctx);
  }
};

#endif  // JOBQUEUE_SECRET_FMT_H_
