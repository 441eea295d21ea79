#include "jobqueue/secret.h"

#include <string.h>

#include <utility>

namespace jobqueue {

Secret::Secret(std::string value, Kind kind) : value_(std::move(value)), kind_(kind) {}

Secret& Secret::operator=(const Secret& other) {
  if (this != &other) {
    Wipe();
    value_ = other.value_;
    kind_ = other.kind_;
  }
  return *this;
}

Secret::Secret(Secret&& other) noexcept : value_(std::move(other.value_)), kind_(other.kind_) {
  other.Wipe();
}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    Wipe();
    value_ = std::move(other.value_);
    kind_ = other.kind_;
    other.Wipe();
  }
  return *this;
}

Secret::~Secret() { Wipe(); }

void Secret::Wipe() {
  // Cover the whole buffer: a moved-from short string keeps its bytes in the inline buffer.
  // explicit_bzero is not elided by the optimizer, unlike memset before free.
  value_.resize(value_.capacity());
  explicit_bzero(value_.data(), value_.size());
  value_.clear();
}

std::string Secret::Redacted() const {
  if (value_.empty()) return "";
  if (kind_ == Kind::kUrl) return MaskUrl(value_);
  return std::string(kRedacted);
}

}  // namespace jobqueue
