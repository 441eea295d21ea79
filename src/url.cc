#include "url.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "jobqueue/status.h"

namespace jobqueue {
namespace {

constexpr absl::string_view kMask = "****";

bool IsSecretParam(absl::string_view key) {
  static constexpr absl::string_view kSecretKeys[] = {"password", "sslpassword",  "pass", "passwd",
                                                      "token",    "access_token", "key",  "apikey",
                                                      "api_key",  "secret",       "auth"};
  for (absl::string_view secret_key : kSecretKeys) {
    if (absl::EqualsIgnoreCase(key, secret_key)) return true;
  }
  return false;
}

// A `k=v` value whose keys are not all libpq's connection keywords (as the linked libpq lists
// them) is not a DSN: a base64 token padded with '=' would otherwise show whole.
bool IsLibpqKeyword(absl::string_view key) {
  static const absl::flat_hash_set<std::string>* const kKeywords = [] {
    auto* keywords = new absl::flat_hash_set<std::string>;
    PQconninfoOption* options = PQconndefaults();
    for (PQconninfoOption* o = options; o != nullptr && o->keyword != nullptr; ++o) {
      keywords->insert(absl::AsciiStrToLower(o->keyword));
    }
    PQconninfoFree(options);
    return keywords;
  }();
  return kKeywords->contains(absl::AsciiStrToLower(key));
}

// Masks values of secret keys in `k=v&k=v`.
std::string MaskQuery(absl::string_view query) {
  std::string out;
  bool first = true;
  for (absl::string_view part : absl::StrSplit(query, '&')) {
    if (!first) out.push_back('&');
    first = false;
    const size_t eq = part.find('=');
    if (eq != absl::string_view::npos && IsSecretParam(part.substr(0, eq))) {
      absl::StrAppend(&out, part.substr(0, eq + 1));
      absl::StrAppend(&out, kMask);
    } else {
      absl::StrAppend(&out, part);
    }
  }
  return out;
}

// libpq "host=... password='x y'" form. Returns false when it does not look like one.
bool MaskKeywordDsn(absl::string_view dsn, std::string* out) {
  size_t i = 0;
  bool any = false;
  while (i < dsn.size()) {
    while (i < dsn.size() && std::isspace(static_cast<unsigned char>(dsn[i])))
      out->push_back(dsn[i++]);
    if (i >= dsn.size()) break;
    const size_t key_start = i;
    while (i < dsn.size() && (std::isalnum(static_cast<unsigned char>(dsn[i])) || dsn[i] == '_'))
      ++i;
    const absl::string_view key = dsn.substr(key_start, i - key_start);
    size_t j = i;
    while (j < dsn.size() && dsn[j] == ' ') ++j;
    if (!IsLibpqKeyword(key) || j >= dsn.size() || dsn[j] != '=') return false;
    ++j;
    while (j < dsn.size() && dsn[j] == ' ') ++j;
    size_t value_end = j;
    if (value_end < dsn.size() && dsn[value_end] == '\'') {
      ++value_end;
      while (value_end < dsn.size() && dsn[value_end] != '\'') {
        if (dsn[value_end] == '\\') ++value_end;
        ++value_end;
      }
      if (value_end >= dsn.size()) return false;  // unterminated quote
      ++value_end;
    } else {
      // libpq honours backslash escapes here too: `a\ b` is one value.
      while (value_end < dsn.size() && !std::isspace(static_cast<unsigned char>(dsn[value_end]))) {
        if (dsn[value_end] == '\\' && value_end + 1 < dsn.size()) ++value_end;
        ++value_end;
      }
    }
    absl::StrAppend(out, dsn.substr(key_start, j - key_start));
    if (IsSecretParam(key)) {
      absl::StrAppend(out, kMask);
    } else {
      absl::StrAppend(out, dsn.substr(j, value_end - j));
    }
    any = true;
    i = value_end;
  }
  return any;
}

}  // namespace

std::string MaskUrl(absl::string_view url) {
  if (url.empty()) return "";
  const size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos) {
    std::string out;
    if (MaskKeywordDsn(url, &out)) return out;
    return std::string(kRedacted);
  }
  const absl::string_view scheme = url.substr(0, scheme_end);
  for (char c : scheme) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') {
      return std::string(kRedacted);
    }
  }
  const absl::string_view rest = url.substr(scheme_end + 3);
  std::string out(url.substr(0, scheme_end + 3));
  // A password may hold any of '@' '/' '?' '#' unescaped, so the user info ends at the last '@'
  // of the whole string. An '@' that was really in the path only over-masks. One after a '?' or
  // '#' may be in the query (libpq's `?user=admin@server&password=...`), where what follows it
  // is query text, secrets included: with both readings possible, nothing is shown.
  absl::string_view tail = rest;
  if (const size_t at = rest.rfind('@'); at != absl::string_view::npos) {
    const absl::string_view userinfo = rest.substr(0, at);
    if (userinfo.find_first_of("?#") != absl::string_view::npos) return std::string(kRedacted);
    const absl::string_view user = userinfo.substr(0, userinfo.find(':'));
    if (user.find_first_of("/?#@&=") != absl::string_view::npos) {
      absl::StrAppend(&out, kMask);  // not a plain user name: show none of it
    } else if (user.size() == userinfo.size()) {
      absl::StrAppend(&out, user);
    } else {
      absl::StrAppend(&out, user, ":", kMask);
    }
    out.push_back('@');
    tail = rest.substr(at + 1);
  }
  const size_t query_start = tail.find_first_of("?#");
  absl::StrAppend(&out, tail.substr(0, query_start));
  if (query_start != absl::string_view::npos && tail[query_start] == '?') {
    absl::string_view query = tail.substr(query_start + 1);
    query = query.substr(0, query.find('#'));
    out.push_back('?');
    out.append(MaskQuery(query));
  }
  // A fragment has no meaning in a connection URL; drop it rather than risk showing it.
  return out;
}

namespace internal {

absl::StatusOr<std::string> PercentDecode(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size() || !std::isxdigit(static_cast<unsigned char>(in[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      return absl::InvalidArgumentError("invalid percent-escape in URL");
    }
    auto hex = [](char c) {
      return std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10);
    };
    out.push_back(static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2])));
    i += 2;
  }
  return out;
}

absl::Status CheckLibpqUserInfo(absl::string_view url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "postgresql://") && !absl::ConsumePrefix(&rest, "postgres://")) {
    return absl::OkStatus();  // key=value strings, whatever their values hold
  }
  const size_t last_at = rest.rfind('@');
  const size_t first_stop = rest.find_first_of("@/");
  if (last_at == absl::string_view::npos || first_stop == last_at) return absl::OkStatus();
  // What libpq reads before its stop is its user info or its host. Without a ':' (or with only
  // a port after one) it holds no password: the later '@' is in the path or query (Azure's
  // ?user=admin@server) and nothing of a password can be misread.
  const absl::string_view head = rest.substr(0, first_stop);
  const size_t colon = head.rfind(':');
  if (colon == absl::string_view::npos) return absl::OkStatus();
  const absl::string_view port = head.substr(colon + 1);
  if (!port.empty() && std::all_of(port.begin(), port.end(), absl::ascii_isdigit)) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      "URL is ambiguous: '@' or '/' in the password must be percent-encoded (%40, %2F), as must "
      "an '@' after the host");
}

absl::StatusOr<ParsedUrl> ParseUrl(absl::string_view url) {
  ParsedUrl parsed;
  const size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos || scheme_end == 0) {
    return absl::InvalidArgumentError("URL has no scheme (expected scheme://...)");
  }
  parsed.scheme = absl::AsciiStrToLower(url.substr(0, scheme_end));
  absl::string_view rest = url.substr(scheme_end + 3);
  // MaskUrl hides everything up to the last '@'. In a Redis URL, a '?' or '#' before it is
  // either in the password (unescaped) or the '@' is in the query: parsed either way, a piece
  // of a password could become the host (in DNS lookups and errors), so neither is guessed.
  // Postgres URLs are only checked here; libpq parses them by its own rules.
  const bool redis =
      parsed.scheme == "redis" || parsed.scheme == "rediss" || parsed.scheme == "unix";
  if (const size_t at = rest.rfind('@');
      redis && at != absl::string_view::npos &&
      rest.substr(0, at).find_first_of("?#") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "URL is ambiguous: '?' or '#' before its last '@'; percent-encode them in the password "
        "(%3F, %23) or an '@' in the query (%40)");
  }
  if (parsed.scheme == "postgres" || parsed.scheme == "postgresql") {
    JQ_RETURN_IF_ERROR(CheckLibpqUserInfo(url));
  }
  if (const size_t hash = rest.find('#'); hash != absl::string_view::npos)
    rest = rest.substr(0, hash);
  absl::string_view query;
  if (const size_t q = rest.find('?'); q != absl::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (const size_t at = rest.rfind('@'); at != absl::string_view::npos) {
    const absl::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = userinfo.find(':');
    JQ_ASSIGN_OR_RETURN(parsed.user, PercentDecode(userinfo.substr(0, colon)));
    if (colon != absl::string_view::npos) {
      JQ_ASSIGN_OR_RETURN(std::string password, PercentDecode(userinfo.substr(colon + 1)));
      parsed.password = Secret(std::move(password));
      parsed.has_password = true;
    }
  }
  absl::string_view hostport = rest;
  if (const size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    hostport = rest.substr(0, slash);
    JQ_ASSIGN_OR_RETURN(parsed.path, PercentDecode(rest.substr(slash + 1)));
  }
  absl::string_view port;
  if (!hostport.empty() && hostport[0] == '[') {
    const size_t close = hostport.find(']');
    if (close == absl::string_view::npos)
      return absl::InvalidArgumentError("unterminated IPv6 host in URL");
    parsed.host = std::string(hostport.substr(1, close - 1));
    absl::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':')
        return absl::InvalidArgumentError("unexpected text after IPv6 host in URL");
      port = after.substr(1);
    }
  } else if (const size_t colon = hostport.rfind(':'); colon != absl::string_view::npos) {
    parsed.host = std::string(hostport.substr(0, colon));
    port = hostport.substr(colon + 1);
  } else {
    parsed.host = std::string(hostport);
  }
  if (!port.empty()) {
    int value = 0;
    if (!absl::SimpleAtoi(port, &value) || value <= 0 || value > 65535) {
      return absl::InvalidArgumentError("URL port is not a number in 1..65535");
    }
    parsed.port = value;
  }
  if (!query.empty()) {
    for (absl::string_view part : absl::StrSplit(query, '&', absl::SkipEmpty())) {
      const size_t eq = part.find('=');
      JQ_ASSIGN_OR_RETURN(std::string key, PercentDecode(part.substr(0, eq)));
      std::string value;
      if (eq != absl::string_view::npos) {
        JQ_ASSIGN_OR_RETURN(value, PercentDecode(part.substr(eq + 1)));
      }
      parsed.query.emplace_back(std::move(key), std::move(value));
    }
  }
  return parsed;
}

}  // namespace internal
}  // namespace jobqueue
