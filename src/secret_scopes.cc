#include <simdjson.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "dotenv.h"
#include "jobqueue/status.h"
#include "secret_scopes_internal.h"

namespace jobqueue::internal {
namespace {

// simdjson hands out std::string_view; this Abseil's string_view is a distinct type.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsValidServiceName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '-' && c != '_') return false;
  }
  return true;
}

bool IsValidPattern(absl::string_view pattern) {
  if (pattern.empty()) return false;
  for (char c : pattern) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '*') return false;
  }
  return true;
}

absl::Status ReadStringArray(simdjson::dom::element element, absl::string_view field,
                             absl::string_view where, bool patterns,
                             std::vector<std::string>* out) {
  simdjson::dom::array array;
  if (element.get_array().get(array) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": '", field, "' must be an array of strings"));
  }
  for (simdjson::dom::element item : array) {
    std::string_view text;
    if (item.get_string().get(text) != simdjson::SUCCESS) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": '", field, "' must hold only strings"));
    }
    if (patterns && !IsValidPattern(Av(text))) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": '", field, "' entry \"", Av(text),
                       "\" is not a variable name or pattern ([A-Za-z0-9_] and *)"));
    }
    out->emplace_back(text);
  }
  return absl::OkStatus();
}

}  // namespace

bool GlobMatch(absl::string_view pattern, absl::string_view text) {
  // Iterative matcher with one backtrack point: linear in practice for these short names.
  // Case-insensitive: a lower-case judit_api_key is the same secret to whoever reads it.
  size_t p = 0, t = 0, star = absl::string_view::npos, match = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      match = t;
    } else if (p < pattern.size() &&
               absl::ascii_toupper(pattern[p]) == absl::ascii_toupper(text[t])) {
      ++p;
      ++t;
    } else if (star != absl::string_view::npos) {
      p = star + 1;
      t = ++match;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool LooksLikeSecretName(absl::string_view name) {
  static constexpr absl::string_view kWords[] = {"KEY",   "SECRET",     "PASSWORD", "PASSWD",
                                                 "TOKEN", "CREDENTIAL", "PRIVATE",  "AUTH"};
  // These end ordinary words too (BYPASS, COMPASS): whole words only.
  static constexpr absl::string_view kWholeWordsOnly[] = {"PASS", "PWD"};
  const std::string upper = absl::AsciiStrToUpper(name);
  auto word_is = [](absl::string_view word, absl::string_view secret) {
    return word == secret || (word.size() == secret.size() + 1 && absl::StartsWith(word, secret) &&
                              word.back() == 'S');
  };
  for (absl::string_view word : absl::StrSplit(upper, '_', absl::SkipEmpty())) {
    for (absl::string_view secret : kWords) {
      if (word_is(word, secret)) return true;
    }
    for (absl::string_view secret : kWholeWordsOnly) {
      if (word_is(word, secret)) return true;
    }
  }
  for (absl::string_view secret : kWords) {
    if (absl::StartsWith(upper, secret) || absl::EndsWith(upper, secret) ||
        absl::EndsWith(upper, absl::StrCat(secret, "S"))) {
      return true;
    }
  }
  return false;
}

absl::StatusOr<SecretScopes> SecretScopes::Parse(absl::string_view json, absl::string_view origin) {
  SecretScopes scopes;
  scopes.origin_ = std::string(origin);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  const simdjson::padded_string padded(json.data(), json.size());
  if (auto error = parser.parse(padded).get(root); error != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": not valid JSON: ", simdjson::error_message(error)));
  }
  if (!root.is_object())
    return absl::InvalidArgumentError(absl::StrCat(origin, ": must be a JSON object"));
  int64_t version = 0;
  if (root["version"].get_int64().get(version) != simdjson::SUCCESS || version != 1) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": \"version\" must be 1"));
  }
  simdjson::dom::element secrets;
  if (root["secrets"].get(secrets) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": missing \"secrets\""));
  }
  JQ_RETURN_IF_ERROR(ReadStringArray(secrets, "secrets", origin, true, &scopes.secret_patterns_));
  if (simdjson::dom::element pub; root["public"].get(pub) == simdjson::SUCCESS) {
    JQ_RETURN_IF_ERROR(ReadStringArray(pub, "public", origin, true, &scopes.public_patterns_));
  }
  simdjson::dom::object services;
  if (root["services"].get_object().get(services) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": \"services\" must be an object"));
  }
  for (auto [key, value] : services) {
    const std::string where = absl::StrCat(origin, ": service \"", Av(key), "\"");
    if (!IsValidServiceName(Av(key))) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": service names are 1-64 of [a-z0-9_-]"));
    }
    if (!value.is_object())
      return absl::InvalidArgumentError(absl::StrCat(where, ": must be an object"));
    ServiceScope scope;
    scope.name = std::string(key);
    if (std::string_view description;
        value["description"].get_string().get(description) == simdjson::SUCCESS) {
      scope.description = std::string(description);
    }
    simdjson::dom::element field;
    if (value["secrets"].get(field) != simdjson::SUCCESS) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing \"secrets\""));
    }
    JQ_RETURN_IF_ERROR(ReadStringArray(field, "secrets", where, true, &scope.secrets));
    if (value["needs"].get(field) == simdjson::SUCCESS) {
      JQ_RETURN_IF_ERROR(ReadStringArray(field, "needs", where, false, &scope.needs));
      for (const std::string& need : scope.needs) {
        if (need != "database" && need != "redis") {
          return absl::InvalidArgumentError(absl::StrCat(
              where, ": unknown need \"", need, "\" (expected \"database\" or \"redis\")"));
        }
      }
    }
    if (value["required"].get(field) == simdjson::SUCCESS) {
      JQ_RETURN_IF_ERROR(ReadStringArray(field, "required", where, false, &scope.required));
      for (const std::string& name : scope.required) {
        if (!IsValidVariableName(name)) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": \"required\" entry \"", name, "\" is not a variable name"));
        }
      }
    }
    scopes.services_.emplace(scope.name, std::move(scope));
  }
  if (scopes.services_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": \"services\" is empty"));
  }
  return scopes;
}

absl::StatusOr<SecretScopes> SecretScopes::LoadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read secret-scope manifest ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return Parse(buffer.str(), path);
}

absl::StatusOr<SecretScopes> SecretScopes::BuiltIn() {
  return Parse(DefaultSecretScopesJson(), "built-in secret-scope manifest");
}

namespace {

// A pattern names a variable and its per-mode copies: X_DEV and X_PROD, the seeds' way of
// keeping both modes' values side by side, are as secret (and allowed where) X is.
bool MatchesWithModeSuffix(absl::string_view pattern, absl::string_view variable) {
  if (GlobMatch(pattern, variable)) return true;
  for (absl::string_view suffix : {"_DEV", "_PROD"}) {
    if (variable.size() > suffix.size() && absl::EndsWithIgnoreCase(variable, suffix) &&
        GlobMatch(pattern, variable.substr(0, variable.size() - suffix.size()))) {
      return true;
    }
  }
  return false;
}

}  // namespace

bool SecretScopes::IsPublic(absl::string_view variable) const {
  for (const std::string& pattern : public_patterns_) {
    if (GlobMatch(pattern, variable)) return true;
  }
  return false;
}

bool SecretScopes::IsSecret(absl::string_view variable) const {
  if (IsPublic(variable)) return false;
  for (const std::string& pattern : secret_patterns_) {
    if (MatchesWithModeSuffix(pattern, variable)) return true;
  }
  return false;
}

absl::StatusOr<const ServiceScope*> SecretScopes::Find(absl::string_view service) const {
  auto it = services_.find(service);
  if (it == services_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown service \"", service, "\" in ", origin_,
                                            " (known: ", absl::StrJoin(ServiceNames(), ", "), ")"));
  }
  return &it->second;
}

bool SecretScopes::Allows(const ServiceScope& scope, absl::string_view variable) {
  for (const std::string& pattern : scope.secrets) {
    if (MatchesWithModeSuffix(pattern, variable)) return true;
  }
  return false;
}

std::vector<std::string> SecretScopes::ServiceNames() const {
  std::vector<std::string> names;
  for (const auto& [name, scope] : services_) names.push_back(name);
  return names;
}

}  // namespace jobqueue::internal
