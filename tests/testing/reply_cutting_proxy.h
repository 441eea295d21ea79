// A loopback TCP proxy that can lose one reply: the next command carrying a given text, on a
// connection that named itself (CLIENT SETNAME), reaches the server, and then both sides are
// closed before the reply comes back. What a broken network does between a call and its
// answer, on demand.
#ifndef JOBQUEUE_TESTS_TESTING_REPLY_CUTTING_PROXY_H_
#define JOBQUEUE_TESTS_TESTING_REPLY_CUTTING_PROXY_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "jobqueue/secret.h"

namespace jobqueue::testing {

class ReplyCuttingProxy {
 public:
  // Listens on 127.0.0.1 (a free port) and forwards to the port of `redis_url`
  // ("redis://user:password@127.0.0.1:port/db").
  static absl::StatusOr<std::unique_ptr<ReplyCuttingProxy>> Start(const Secret& redis_url);
  ~ReplyCuttingProxy();

  // `redis_url` through the proxy.
  const Secret& url() const { return url_; }
  // Cuts the next command from a named connection that contains `needle` but not `unless`.
  void CutNext(std::string needle, std::string unless);
  // Cuts the next reply to a named connection: dropped, and both sides closed.
  void CutNextReply();
  int cuts() const { return cuts_.load(); }

 private:
  ReplyCuttingProxy(int listen_fd, int target_port, Secret url);
  void AcceptLoop();
  void Pump(int client, int server);
  // True when the chunk is the armed command (disarming it).
  bool TakeCut(const std::string& chunk, bool named);
  bool TakeReplyCut(bool named);

  const int listen_fd_;
  const int target_port_;
  const Secret url_;
  std::atomic<bool> quit_{false};
  std::atomic<int> cuts_{0};
  absl::Mutex mu_;
  std::string needle_ ABSL_GUARDED_BY(mu_);
  std::string unless_ ABSL_GUARDED_BY(mu_);
  bool cut_reply_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::thread acceptor_;
};

}  // namespace jobqueue::testing

#endif  // JOBQUEUE_TESTS_TESTING_REPLY_CUTTING_PROXY_H_
