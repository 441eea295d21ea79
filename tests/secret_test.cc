#include "jobqueue/secret.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "jobqueue/secret_fmt.h"

namespace jobqueue {
namespace {

constexpr char kValue[] = "sk-live-TOPSECRET-42";
constexpr char kUrl[] = "postgresql://app:pw-TOPSECRET@db.internal:5432/app";

// absl::StrCat has no AbslStringify in this Abseil; a Secret must not convert to AlphaNum at all.
static_assert(!std::is_convertible_v<const Secret&, absl::AlphaNum>);
static_assert(!std::is_convertible_v<const Secret&, absl::string_view>);
static_assert(!std::is_convertible_v<const Secret&, std::string>);

TEST(SecretTest, RevealGivesTheValue) {
  Secret secret(kValue);
  EXPECT_EQ(secret.Reveal(), kValue);
  EXPECT_FALSE(secret.empty());
  EXPECT_TRUE(Secret().empty());
}

TEST(SecretTest, OstreamIsRedacted) {
  std::ostringstream out;
  out << Secret(kValue) << " " << Secret::Url(kUrl);
  EXPECT_EQ(out.str(), "[redacted] postgresql://app:****@db.internal:5432/app");
}

TEST(SecretTest, StrFormatIsRedacted) {
  EXPECT_EQ(absl::StrFormat("key=%s", Secret(kValue)), "key=[redacted]");
}

TEST(SecretTest, AbslStringifyIsRedacted) {
  struct Sink {
    std::string out;
    void Append(absl::string_view s) { out.append(s.data(), s.size()); }
  } sink;
  AbslStringify(sink, Secret(kValue));
  EXPECT_EQ(sink.out, "[redacted]");
}

TEST(SecretTest, FmtAndSpdlogAreRedacted) {
  EXPECT_EQ(fmt::format("{}", Secret(kValue)), "[redacted]");
  EXPECT_EQ(fmt::format("{:>12}", Secret(kValue)), "  [redacted]");
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  spdlog::logger logger("secret_test", sink);
  logger.info("connecting with {} and {}", Secret(kValue), Secret::Url(kUrl));
  EXPECT_EQ(captured.str().find("TOPSECRET"), std::string::npos) << captured.str();
  EXPECT_NE(captured.str().find("[redacted]"), std::string::npos);
}

TEST(SecretTest, EmptySecretPrintsEmpty) { EXPECT_EQ(Secret().Redacted(), ""); }

TEST(SecretTest, CopiesAndMovesKeepTheValue) {
  Secret a(kValue);
  Secret b = a;
  EXPECT_EQ(b.Reveal(), kValue);
  Secret c = std::move(a);
  EXPECT_EQ(c.Reveal(), kValue);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from is wiped
  b = Secret::Url(kUrl);
  EXPECT_EQ(b.kind(), Secret::Kind::kUrl);
  EXPECT_TRUE(c == Secret(kValue));
}

}  // namespace
}  // namespace jobqueue
