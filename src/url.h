// Parsing of connection URLs (redis://, rediss://, unix://, postgresql://) shared by the
// backends and by masking.
#ifndef JOBQUEUE_SRC_URL_H_
#define JOBQUEUE_SRC_URL_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jobqueue/secret.h"

namespace jobqueue::internal {

struct ParsedUrl {
  std::string scheme;  // lower-case, without "://"
  std::string user;    // percent-decoded
  Secret password;     // percent-decoded
  bool has_password = false;
  std::string host;  // brackets of an IPv6 literal removed
  int port = 0;      // 0 when absent
  std::string path;  // percent-decoded, without the leading '/'
  std::vector<std::pair<std::string, std::string>> query;  // percent-decoded
};

// Parses `scheme://[user[:password]@]host[:port][/path][?k=v&...]`. Errors never quote the URL
// (it may hold a password); they name the part that is wrong.
absl::StatusOr<ParsedUrl> ParseUrl(absl::string_view url);

// libpq ends a postgres:// URL's user info at its first '@', looked for only before the first
// '/', while MaskUrl hides everything up to the last '@'. Where the two differ (an unescaped
// '@' or '/' in the password, or an '@' after the host), libpq would read a piece of the
// password as host, port or database, resolve it and name it in errors: InvalidArgument,
// without quoting the URL. OK for anything else: key=value strings, and an '@' in the path or
// query of a URL whose part before the host holds no password.
absl::Status CheckLibpqUserInfo(absl::string_view url);

// Decodes %XX escapes; an invalid escape is an error.
absl::StatusOr<std::string> PercentDecode(absl::string_view in);

}  // namespace jobqueue::internal

#endif  // JOBQUEUE_SRC_URL_H_
