#include "redis/bull_internal.h"

#include <openssl/sha.h>

#include <algorithm>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "jobqueue/status.h"

namespace jobqueue::internal {
namespace {

std::string Sha1Hex(absl::string_view text) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  std::string hex;
  for (unsigned char byte : digest) absl::StrAppendFormat(&hex, "%02x", byte);
  return hex;
}

const std::string& ShaOf(const LuaScript& script) {
  static const auto* shas = [] {
    auto* map = new std::vector<std::pair<const LuaScript*, std::string>>;
    for (size_t i = 0; i < kAllScriptCount; ++i) {
      map->emplace_back(kAllScripts[i], Sha1Hex(kAllScripts[i]->text));
    }
    return map;
  }();
  for (const auto& [s, sha] : *shas) {
    if (s == &script) return sha;
  }
  static const std::string unknown;
  return unknown;
}

bool IsNoScript(const RedisReply& reply) {
  return reply.is_error() && absl::StartsWith(reply.str, "NOSCRIPT");
}

}  // namespace

absl::Status ValidateBullQueueName(absl::string_view name) {
  if (name.empty() || name.size() > 256) {
    return absl::InvalidArgumentError("BullMQ queue name must be 1..256 bytes");
  }
  for (char c : name) {
    if (c == ':' || absl::ascii_isspace(static_cast<unsigned char>(c)) || c == '\0') {
      return absl::InvalidArgumentError(
          absl::StrCat("BullMQ queue name \"", absl::CHexEscape(name),
                       "\" may not contain ':' or whitespace (':' separates BullMQ's key parts)"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateBullPrefixAndName(absl::string_view prefix, absl::string_view name) {
  if (prefix.empty() || prefix.find_first_of(" \t\r\n") != absl::string_view::npos) {
    return absl::InvalidArgumentError("BullMQ prefix must be non-empty without whitespace");
  }
  if (name.size() > 256 || name.find_first_of(" \t\r\n") != absl::string_view::npos) {
    return absl::InvalidArgumentError("worker name must be at most 256 bytes without spaces");
  }
  return absl::OkStatus();
}

std::string BullWorkerClientName(absl::string_view prefix, absl::string_view queue,
                                 absl::string_view name) {
  std::string client = absl::StrCat(prefix, ":", absl::Base64Escape(queue));
  if (!name.empty()) absl::StrAppend(&client, ":w:", name);
  return client;
}

BullKeys::BullKeys(absl::string_view prefix, absl::string_view queue)
    : base_(absl::StrCat(prefix, ":", queue, ":")) {
  for (const char* suffix : {"wait", "active", "prioritized", "events", "stalled", "limiter",
                             "delayed", "meta", "pc", "marker", "completed", "failed"}) {
    worker_keys_.push_back(Key(suffix));
  }
}

std::vector<std::string> EvalSha(const LuaScript& script, const std::vector<std::string>& keys,
                                 std::vector<std::string> args) {
  std::vector<std::string> command;
  command.reserve(3 + keys.size() + args.size());
  command.push_back("EVALSHA");
  command.push_back(ShaOf(script));
  command.push_back(absl::StrCat(keys.size()));
  command.insert(command.end(), keys.begin(), keys.end());
  for (std::string& arg : args) command.push_back(std::move(arg));
  return command;
}

absl::StatusOr<std::vector<RedisReply>> RunScripts(
    RedisConnection& conn, const std::vector<std::vector<std::string>>& commands) {
  JQ_ASSIGN_OR_RETURN(std::vector<RedisReply> replies, conn.Pipeline(commands));
  std::vector<size_t> rerun;
  for (size_t i = 0; i < replies.size(); ++i) {
    if (IsNoScript(replies[i])) rerun.push_back(i);
  }
  if (rerun.empty()) return replies;
  std::vector<std::vector<std::string>> again;
  for (size_t i = 0; i < kAllScriptCount; ++i) {
    again.push_back({"SCRIPT", "LOAD", kAllScripts[i]->text});
  }
  for (size_t i : rerun) again.push_back(commands[i]);
  JQ_ASSIGN_OR_RETURN(std::vector<RedisReply> second, conn.Pipeline(again));
  for (size_t i = 0; i < kAllScriptCount; ++i) {
    JQ_RETURN_IF_ERROR(second[i].AsStatus(absl::StrCat("loading script ", kAllScripts[i]->name)));
  }
  for (size_t j = 0; j < rerun.size(); ++j) {
    replies[rerun[j]] = std::move(second[kAllScriptCount + j]);
  }
  return replies;
}

absl::StatusOr<RedisReply> RunScript(RedisConnection& conn, std::vector<std::string> command) {
  JQ_ASSIGN_OR_RETURN(std::vector<RedisReply> replies, RunScripts(conn, {std::move(command)}));
  return std::move(replies.front());
}

BullJob BullJobFromHash(absl::string_view id, const std::vector<RedisReply>& flat) {
  BullJob job;
  job.id = std::string(id);
  for (size_t i = 0; i + 1 < flat.size(); i += 2) job.fields[flat[i].str] = flat[i + 1].str;
  auto text = [&](const char* field) -> std::optional<std::string> {
    auto it = job.fields.find(field);
    if (it == job.fields.end()) return std::nullopt;
    return it->second;
  };
  auto number = [&](const char* field) -> std::optional<int64_t> {
    std::optional<std::string> value = text(field);
    int64_t n = 0;
    if (!value || !absl::SimpleAtoi(*value, &n)) return std::nullopt;
    return n;
  };
  job.name = text("name").value_or("");
  job.data_json = text("data").value_or("{}");
  job.opts_json = text("opts").value_or("{}");
  job.timestamp = number("timestamp").value_or(0);
  job.delay = number("delay").value_or(0);
  job.priority = number("priority").value_or(0);
  job.attempts_made = number("atm").value_or(0);
  job.processed_on = number("processedOn");
  job.finished_on = number("finishedOn");
  job.return_value_json = text("returnvalue");
  job.failed_reason = text("failedReason").value_or("");
  return job;
}

std::string BlockTimeoutArg(absl::Duration timeout) {
  return absl::StrFormat("%.3f", std::max(absl::ToDoubleSeconds(timeout), 0.002));
}

absl::Status CheckRedisVersionForWorkers(absl::string_view info) {
  for (absl::string_view line : absl::StrSplit(info, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&line, "redis_version:")) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, '.');
    int major = 0, minor = 0;
    if (parts.size() < 2 || !absl::SimpleAtoi(parts[0], &major) ||
        !absl::SimpleAtoi(parts[1], &minor)) {
      return absl::OkStatus();
    }
    if (major < 6 || (major == 6 && minor < 2)) {
      return absl::FailedPreconditionError(
          absl::StrCat("Redis ", line, ": BullMQ workers here need Redis 6.2 or newer"));
    }
    return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status CheckRedisVersionForWorkers(RedisConnection& conn) {
  absl::StatusOr<RedisReply> info = conn.Command({"INFO", "server"});
  if (!info.ok() || info->is_error()) return absl::OkStatus();
  return CheckRedisVersionForWorkers(info->str);
}

}  // namespace jobqueue::internal
