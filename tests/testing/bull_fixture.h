// A fresh BullMQ queue per test on the real local Redis (REDIS_URL), deleted afterwards.
#ifndef JOBQUEUE_TESTS_TESTING_BULL_FIXTURE_H_
#define JOBQUEUE_TESTS_TESTING_BULL_FIXTURE_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "jobqueue/bull_queue.h"
#include "jobqueue/redis_client.h"

namespace jobqueue::testing {

class BullFixture : public ::testing::Test {
 protected:
  BullFixture() {
    const char* url = std::getenv("REDIS_URL");
    if (url == nullptr) throw std::runtime_error("REDIS_URL is not set");
    url_ = Secret::Url(url);
    static int counter = 0;
    name_ = absl::StrCat("jqtest-", getpid(), "-", counter++);
    auto queue = BullQueue::Open(url_, name_);
    if (!queue.ok()) throw std::runtime_error(queue.status().ToString());
    queue_ = *std::move(queue);
    redis_ = *RedisConnection::Connect(url_);
  }
  ~BullFixture() override {
    auto keys = redis_->Command({"KEYS", absl::StrCat("bull:", name_, ":*")});
    if (keys.ok() && !keys->elements.empty()) {
      std::vector<std::string> del = {"DEL"};
      for (const RedisReply& k : keys->elements) del.push_back(k.str);
      (void)redis_->Command(del);
    }
  }
  RedisReply Redis(const std::vector<std::string>& argv) {
    auto reply = redis_->Command(argv);
    if (!reply.ok()) throw std::runtime_error(reply.status().ToString());
    return *reply;
  }
  std::string Key(absl::string_view suffix) { return absl::StrCat("bull:", name_, ":", suffix); }
  BullJobOptions Opts(absl::string_view json) {
    auto parsed = ParseBullJobOptions(json);
    if (!parsed.ok()) throw std::runtime_error(parsed.status().ToString());
    return *parsed;
  }

  Secret url_;
  std::string name_;
  std::unique_ptr<BullQueue> queue_;
  std::unique_ptr<RedisConnection> redis_;
};

}  // namespace jobqueue::testing

#endif  // JOBQUEUE_TESTS_TESTING_BULL_FIXTURE_H_
