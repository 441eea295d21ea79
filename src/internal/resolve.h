// Host name lookups bounded by a deadline. getaddrinfo() has no timeout of its own, and a
// resolver that does not answer would hold a connect past its connect_timeout.
#ifndef JOBQUEUE_SRC_INTERNAL_RESOLVE_H_
#define JOBQUEUE_SRC_INTERNAL_RESOLVE_H_

#include <netdb.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace jobqueue::internal {

struct AddrInfoFree {
  void operator()(addrinfo* list) const { freeaddrinfo(list); }
};
using AddrInfoList = std::unique_ptr<addrinfo, AddrInfoFree>;

// TCP addresses of host:port. A numeric address is parsed at once; a name is looked up on a
// thread of its own, which a caller whose deadline passes leaves behind to finish (it frees
// what it found). Errors: DeadlineExceeded past the deadline, Unavailable when the lookup
// fails; both name the host.
absl::StatusOr<AddrInfoList> ResolveTcp(const std::string& host, const std::string& port,
                                        absl::Time deadline);

// The same for several hosts at once, all under the one deadline: found[i] for hosts[i].
std::vector<absl::StatusOr<AddrInfoList>> ResolveTcpAll(const std::vector<std::string>& hosts,
                                                        const std::string& port,
                                                        absl::Time deadline);

// Tests put a lookup they control in place of getaddrinfo(); nullptr restores it.
using LookupFunction =
    std::function<int(const char* host, const char* port, const addrinfo* hints, addrinfo** out)>;
void SetLookupForTest(LookupFunction lookup);

}  // namespace jobqueue::internal

#endif  // JOBQUEUE_SRC_INTERNAL_RESOLVE_H_
