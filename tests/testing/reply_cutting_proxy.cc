#include "testing/reply_cutting_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace jobqueue::testing {
namespace {

bool SendAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ReplyCuttingProxy>> ReplyCuttingProxy::Start(
    const Secret& redis_url) {
  const std::string plain(redis_url.Reveal());
  const size_t port_at = plain.rfind(':');
  const size_t path_at = plain.find('/', port_at == std::string::npos ? 0 : port_at);
  int target_port = 0;
  if (port_at == std::string::npos ||
      !absl::SimpleAtoi(plain.substr(port_at + 1, path_at - port_at - 1), &target_port)) {
    return absl::InvalidArgumentError("proxy: the Redis URL has no port");
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 64) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string error = std::strerror(errno);
    ::close(fd);
    return absl::InternalError(absl::StrCat("proxy listen: ", error));
  }
  const std::string rest = path_at == std::string::npos ? "" : plain.substr(path_at);
  Secret url = Secret::Url(absl::StrCat(plain.substr(0, port_at + 1), ntohs(addr.sin_port), rest));
  return std::unique_ptr<ReplyCuttingProxy>(new ReplyCuttingProxy(fd, target_port, std::move(url)));
}

ReplyCuttingProxy::ReplyCuttingProxy(int listen_fd, int target_port, Secret url)
    : listen_fd_(listen_fd), target_port_(target_port), url_(std::move(url)) {
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

ReplyCuttingProxy::~ReplyCuttingProxy() {
  quit_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
}

void ReplyCuttingProxy::CutNext(std::string needle, std::string unless) {
  absl::MutexLock lock(&mu_);
  needle_ = std::move(needle);
  unless_ = std::move(unless);
}

void ReplyCuttingProxy::CutNextReply() {
  absl::MutexLock lock(&mu_);
  cut_reply_ = true;
}

bool ReplyCuttingProxy::TakeReplyCut(bool named) {
  absl::MutexLock lock(&mu_);
  if (!named || !cut_reply_) return false;
  cut_reply_ = false;
  return true;
}

bool ReplyCuttingProxy::TakeCut(const std::string& chunk, bool named) {
  absl::MutexLock lock(&mu_);
  if (!named || needle_.empty() || !absl::StrContains(chunk, needle_)) return false;
  if (!unless_.empty() && absl::StrContains(chunk, unless_)) return false;
  needle_.clear();
  return true;
}

void ReplyCuttingProxy::AcceptLoop() {
  while (!quit_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(target_port_));
    if (server < 0 || ::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      if (server >= 0) ::close(server);
      ::close(client);
      continue;
    }
    absl::MutexLock lock(&mu_);
    threads_.emplace_back([this, client, server] { Pump(client, server); });
  }
}

void ReplyCuttingProxy::Pump(int client, int server) {
  bool named = false;
  char buffer[64 * 1024];
  while (!quit_.load()) {
    pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    if (::poll(fds, 2, 100) <= 0) continue;
    if (fds[0].revents != 0) {
      const ssize_t n = ::recv(client, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      const std::string chunk(buffer, static_cast<size_t>(n));
      if (absl::StrContains(chunk, "SETNAME")) named = true;
      const bool cut = TakeCut(chunk, named);
      if (!SendAll(server, buffer, static_cast<size_t>(n))) break;
      if (cut) {
        // The server has the command and runs it; its reply is dropped with the connection.
        absl::SleepFor(absl::Milliseconds(200));
        ++cuts_;
        break;
      }
    }
    if (fds[1].revents != 0) {
      const ssize_t n = ::recv(server, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      if (TakeReplyCut(named)) {
        ++cuts_;
        break;
      }
      if (!SendAll(client, buffer, static_cast<size_t>(n))) break;
    }
  }
  ::close(client);
  ::close(server);
}

}  // namespace jobqueue::testing
