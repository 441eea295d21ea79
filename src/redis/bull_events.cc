#include "jobqueue/bull_events.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "internal/log.h"
#include "jobqueue/status.h"
#include "redis/bull_internal.h"

namespace jobqueue {
namespace {

absl::StatusOr<std::string> LastEntryId(RedisConnection& conn, const std::string& key) {
  JQ_ASSIGN_OR_RETURN(RedisReply reply, conn.Command({"XREVRANGE", key, "+", "-", "COUNT", "1"}));
  JQ_RETURN_IF_ERROR(reply.AsStatus("reading the events stream"));
  if (reply.elements.empty() || reply.elements[0].elements.empty()) return std::string("0-0");
  return reply.elements[0].elements[0].str;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BullQueueEvents>> BullQueueEvents::Open(
    const Secret& redis_url, absl::string_view queue, const BullQueueEventsOptions& options) {
  JQ_RETURN_IF_ERROR(internal::ValidateBullQueueName(queue));
  if (options.prefix.empty() || options.prefix.find_first_of(" \t\r\n") != std::string::npos) {
    return absl::InvalidArgumentError("BullMQ prefix must be non-empty without whitespace");
  }
  if (options.batch < 1 || options.batch > 100000) {
    return absl::InvalidArgumentError("events batch must be 1..100000");
  }
  if (options.last_event_id.empty()) {
    return absl::InvalidArgumentError("last_event_id must be \"$\", \"0\" or a stream entry id");
  }
  const std::string key = internal::BullKeys(options.prefix, queue).Key("events");
  JQ_ASSIGN_OR_RETURN(std::unique_ptr<RedisConnection> conn,
                      RedisConnection::Connect(redis_url, options.redis));
  auto events = std::unique_ptr<BullQueueEvents>(
      new BullQueueEvents(redis_url, key, options, std::move(conn)));
  // "$" is fixed now, so events between Open() and the first Read() are not missed.
  absl::MutexLock lock(&events->mu_);
  if (options.last_event_id == "$") {
    JQ_ASSIGN_OR_RETURN(events->last_id_, LastEntryId(*events->conn_, key));
  } else {
    events->last_id_ = options.last_event_id;
  }
  return events;
}

BullQueueEvents::BullQueueEvents(Secret url, std::string key, BullQueueEventsOptions options,
                                 std::unique_ptr<RedisConnection> conn)
    : url_(std::move(url)),
      key_(std::move(key)),
      options_(std::move(options)),
      conn_(std::move(conn)) {}

BullQueueEvents::~BullQueueEvents() = default;

std::string BullQueueEvents::last_event_id() const {
  absl::MutexLock lock(&mu_);
  return last_id_;
}

void BullQueueEvents::Stop() {
  stopped_.store(true);
  absl::MutexLock lock(&mu_);
  if (conn_ != nullptr) conn_->Interrupt();
}

absl::StatusOr<std::vector<BullEvent>> BullQueueEvents::Read(absl::Duration timeout) {
  absl::MutexLock read_lock(&read_mu_);
  if (stopped_.load()) return absl::CancelledError("the events reader was stopped");
  RedisConnection* conn;
  std::string after;
  {
    absl::MutexLock lock(&mu_);
    if (conn_ == nullptr || !conn_->ok()) {
      conn_.reset();
      JQ_ASSIGN_OR_RETURN(conn_, RedisConnection::Connect(url_, options_.redis));
      if (stopped_.load()) return absl::CancelledError("the events reader was stopped");
    }
    conn = conn_.get();
    after = last_id_;
  }
  // XREAD's BLOCK 0 would wait forever.
  const int64_t block_ms = std::max<int64_t>(absl::ToInt64Milliseconds(timeout), 1);
  absl::StatusOr<RedisReply> reply =
      conn->BlockingCommand({"XREAD", "COUNT", absl::StrCat(options_.batch), "BLOCK",
                             absl::StrCat(block_ms), "STREAMS", key_, after},
                            absl::Milliseconds(block_ms));
  if (stopped_.load()) return absl::CancelledError("the events reader was stopped");
  JQ_RETURN_IF_ERROR(reply.status());
  JQ_RETURN_IF_ERROR(reply->AsStatus("reading the events stream"));
  std::vector<BullEvent> events;
  if (reply->is_nil() || reply->elements.empty()) return events;
  const RedisReply& stream = reply->elements[0];
  if (stream.elements.size() != 2) {
    return absl::InternalError("XREAD returned an unexpected reply");
  }
  for (const RedisReply& entry : stream.elements[1].elements) {
    if (entry.elements.size() != 2) continue;
    BullEvent event;
    event.id = entry.elements[0].str;
    const std::vector<RedisReply>& flat = entry.elements[1].elements;
    for (size_t i = 0; i + 1 < flat.size(); i += 2) {
      event.fields[flat[i].str] = flat[i + 1].str;
    }
    if (auto it = event.fields.find("event"); it != event.fields.end()) event.event = it->second;
    if (auto it = event.fields.find("jobId"); it != event.fields.end()) event.job_id = it->second;
    events.push_back(std::move(event));
  }
  if (!events.empty()) {
    absl::MutexLock lock(&mu_);
    last_id_ = events.back().id;
  }
  return events;
}

absl::Status BullQueueEvents::Run(const std::function<void(const BullEvent&)>& on_event) {
  absl::Duration backoff = absl::Milliseconds(100);
  while (!stopped_.load()) {
    absl::StatusOr<std::vector<BullEvent>> events = Read(absl::Seconds(5));
    if (stopped_.load()) break;
    if (!events.ok()) {
      // A bad password or a missing permission will not fix itself.
      if (absl::IsUnauthenticated(events.status()) || absl::IsPermissionDenied(events.status())) {
        return events.status();
      }
      internal::LogWarn("BullMQ events on {}: {}; retrying in {} ms", key_,
                        events.status().message(), absl::ToInt64Milliseconds(backoff));
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(10));
      continue;
    }
    backoff = absl::Milliseconds(100);
    for (const BullEvent& event : *events) on_event(event);
  }
  return absl::OkStatus();
}

}  // namespace jobqueue
