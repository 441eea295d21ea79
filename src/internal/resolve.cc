#include "internal/resolve.h"

#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace jobqueue::internal {
namespace {

absl::Mutex lookup_mu;
LookupFunction* lookup_for_test ABSL_GUARDED_BY(lookup_mu) = nullptr;

LookupFunction CurrentLookup() {
  absl::MutexLock lock(&lookup_mu);
  if (lookup_for_test != nullptr) return *lookup_for_test;
  return [](const char* host, const char* port, const addrinfo* hints, addrinfo** out) {
    return getaddrinfo(host, port, hints, out);
  };
}

// Shared by the caller and the lookup thread; whichever lets go last frees it.
struct Lookup {
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  bool abandoned ABSL_GUARDED_BY(mu) = false;
  int rc ABSL_GUARDED_BY(mu) = 0;
  addrinfo* found ABSL_GUARDED_BY(mu) = nullptr;
};

absl::Status LookupFailed(const std::string& host, int rc) {
  return absl::UnavailableError(absl::StrCat("resolving ", host, ": ", gai_strerror(rc)));
}

}  // namespace

void SetLookupForTest(LookupFunction lookup) {
  absl::MutexLock lock(&lookup_mu);
  delete lookup_for_test;
  lookup_for_test = lookup ? new LookupFunction(std::move(lookup)) : nullptr;
}

namespace {

// A lookup under way (`lookup`), or its result already known (`ready`).
struct Pending {
  std::shared_ptr<Lookup> lookup;
  absl::StatusOr<AddrInfoList> ready = AddrInfoList();
};

Pending StartLookup(const std::string& host, const std::string& port) {
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) == 0) {
    return {nullptr, AddrInfoList(found)};
  }
  hints.ai_flags = 0;
  auto lookup = std::make_shared<Lookup>();
  LookupFunction resolve = CurrentLookup();
  try {
    std::thread([lookup, host, port, hints, resolve] {
      addrinfo* result = nullptr;
      const int rc = resolve(host.c_str(), port.c_str(), &hints, &result);
      absl::MutexLock lock(&lookup->mu);
      if (lookup->abandoned) {
        if (result != nullptr) freeaddrinfo(result);
        return;
      }
      lookup->rc = rc;
      lookup->found = result;
      lookup->done = true;
    }).detach();
  } catch (const std::system_error&) {
    // No thread to spare: look up here, unbounded, rather than fail.
    addrinfo* result = nullptr;
    const int rc = resolve(host.c_str(), port.c_str(), &hints, &result);
    if (rc != 0) return {nullptr, LookupFailed(host, rc)};
    return {nullptr, AddrInfoList(result)};
  }
  return {std::move(lookup)};
}

absl::StatusOr<AddrInfoList> AwaitLookup(Pending pending, const std::string& host,
                                         absl::Time deadline) {
  if (pending.lookup == nullptr) return std::move(pending.ready);
  Lookup& lookup = *pending.lookup;
  absl::MutexLock lock(&lookup.mu);
  if (!lookup.mu.AwaitWithDeadline(absl::Condition(&lookup.done), deadline)) {
    lookup.abandoned = true;
    return absl::DeadlineExceededError(
        absl::StrCat("resolving ", host, ": no answer within the connect timeout"));
  }
  if (lookup.rc != 0) return LookupFailed(host, lookup.rc);
  return AddrInfoList(lookup.found);
}

}  // namespace

absl::StatusOr<AddrInfoList> ResolveTcp(const std::string& host, const std::string& port,
                                        absl::Time deadline) {
  return AwaitLookup(StartLookup(host, port), host, deadline);
}

std::vector<absl::StatusOr<AddrInfoList>> ResolveTcpAll(const std::vector<std::string>& hosts,
                                                        const std::string& port,
                                                        absl::Time deadline) {
  std::vector<Pending> pending;
  pending.reserve(hosts.size());
  for (const std::string& host : hosts) pending.push_back(StartLookup(host, port));
  std::vector<absl::StatusOr<AddrInfoList>> found;
  found.reserve(hosts.size());
  for (size_t i = 0; i < hosts.size(); ++i) {
    found.push_back(AwaitLookup(std::move(pending[i]), hosts[i], deadline));
  }
  return found;
}

}  // namespace jobqueue::internal
