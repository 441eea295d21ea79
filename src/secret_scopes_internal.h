// The secret-scope manifest: which variables are secrets and which service may hold which.
#ifndef JOBQUEUE_SRC_SECRET_SCOPES_INTERNAL_H_
#define JOBQUEUE_SRC_SECRET_SCOPES_INTERNAL_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace jobqueue::internal {

// The manifest compiled in from deploy/secret-scopes.json.
const char* DefaultSecretScopesJson();

// `*` matches any run of characters; everything else matches itself.
bool GlobMatch(absl::string_view pattern, absl::string_view text);

// A name that reads like a secret: a `_`-separated word (any case, optional plural S) KEY,
// SECRET, PASSWORD, PASSWD, PASS, PWD, TOKEN, CREDENTIAL, PRIVATE or AUTH, or a name starting or
// ending with one of these but PASS and PWD (APIKEY, PGPASSWORD). For masking, not for scopes.
bool LooksLikeSecretName(absl::string_view name);

struct ServiceScope {
  std::string name;
  std::string description;
  std::vector<std::string> secrets;   // patterns this service may hold
  std::vector<std::string> needs;     // "database", "redis"
  std::vector<std::string> required;  // variable names
};

class SecretScopes {
 public:
  // `origin` names the source in errors (a path, or "built-in manifest").
  static absl::StatusOr<SecretScopes> Parse(absl::string_view json, absl::string_view origin);
  static absl::StatusOr<SecretScopes> LoadFile(const std::string& path);
  static absl::StatusOr<SecretScopes> BuiltIn();

  bool IsSecret(absl::string_view variable) const;
  // Matches a `public` pattern (NEXT_PUBLIC_*): never a secret, whatever its name says.
  bool IsPublic(absl::string_view variable) const;
  // NotFound naming the known services.
  absl::StatusOr<const ServiceScope*> Find(absl::string_view service) const;
  static bool Allows(const ServiceScope& scope, absl::string_view variable);
  std::vector<std::string> ServiceNames() const;
  const std::string& origin() const { return origin_; }

 private:
  std::string origin_;
  std::vector<std::string> secret_patterns_;
  std::vector<std::string> public_patterns_;
  std::map<std::string, ServiceScope, std::less<>> services_;
};

}  // namespace jobqueue::internal

#endif  // JOBQUEUE_SRC_SECRET_SCOPES_INTERNAL_H_
