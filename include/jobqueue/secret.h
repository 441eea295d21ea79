// A value that must never reach a log, an error message or a debug string.
//
// Every formatting path (ostream, absl::StrFormat, AbslStringify, fmt/spdlog through
// <jobqueue/secret_fmt.h>, DebugString) prints the redacted form. The only way to the
// plain value is the explicitly named Reveal(). absl::StrCat does not accept a Secret at all
// with this Abseil (it predates AbslStringify), which is the safe failure.
#ifndef JOBQUEUE_SECRET_H_
#define JOBQUEUE_SECRET_H_

#include <ostream>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace jobqueue {

class Secret {
 public:
  // How the redacted form is made.
  enum class Kind {
    kOpaque,  // API keys, tokens: printed as "[redacted]".
    kUrl,     // DSNs and Redis URLs: printed with the password (and secret params) masked.
  };

  Secret() = default;
  explicit Secret(std::string value, Kind kind = Kind::kOpaque);
  static Secret Url(std::string value) { return Secret(std::move(value), Kind::kUrl); }

  Secret(const Secret&) = default;
  Secret& operator=(const Secret&);
  Secret(Secret&& other) noexcept;
  Secret& operator=(Secret&& other) noexcept;
  // Overwrites the value before releasing it.
  ~Secret();

  // The plain value. Call only where it goes to the wire (a connection, an HTTP header).
  absl::string_view Reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  Kind kind() const { return kind_; }

  // The form every printing path uses.
  std::string Redacted() const;

  friend bool operator==(const Secret& a, const Secret& b) { return a.value_ == b.value_; }

  friend std::ostream& operator<<(std::ostream& os, const Secret& secret) {
    return os << secret.Redacted();
  }

  template <typename Sink>
  friend void AbslStringify(Sink& sink, const Secret& secret) {
    sink.Append(secret.Redacted());
  }

  friend absl::FormatConvertResult<absl::FormatConversionCharSet::kString> AbslFormatConvert(
      const Secret& secret, const absl::FormatConversionSpec&, absl::FormatSink* sink) {
    sink->Append(secret.Redacted());
    return {true};
  }

 private:
  void Wipe();

  std::string value_;
  Kind kind_ = Kind::kOpaque;
};

inline constexpr absl::string_view kRedacted = "[redacted]";

// Masks the password of a connection string: URL forms (`postgresql://u:pw@h/db`,
// `redis://:pw@h:6379/0`, `rediss://...`), their secret query parameters (password, sslpassword,
// token, key, secret), and libpq key=value DSNs (`password=...`, quoted or not). In a URL the
// user info ends at the last '@', so a password holding '@' or '/' never shows; a URL with an
// '@' after a '?' or '#' (a password holding them, or an '@' in the query such as Azure's
// `?user=admin@server&password=...`) is fully redacted, as is anything it cannot parse.
std::string MaskUrl(absl::string_view url);

}  // namespace jobqueue

#endif  // JOBQUEUE_SECRET_H_
