#include "dotenv.h"

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace jobqueue::internal {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

class Parser {
 public:
  Parser(absl::string_view text, absl::string_view origin) : text_(text), origin_(origin) {}

  absl::StatusOr<std::vector<DotenvEntry>> Parse() {
    std::vector<DotenvEntry> entries;
    // Editors on Windows may start the file with a UTF-8 byte order mark.
    if (absl::StartsWith(text_, "\xEF\xBB\xBF")) pos_ = 3;
    while (pos_ < text_.size()) {
      SkipBlanks();
      if (AtLineEnd()) {
        NextLine();
        continue;
      }
      if (text_[pos_] == '#') {
        SkipToLineEnd();
        NextLine();
        continue;
      }
      const int entry_line = line_;
      if (absl::StartsWith(text_.substr(pos_), "export") && pos_ + 6 < text_.size() &&
          IsBlank(text_[pos_ + 6])) {
        pos_ += 6;
        SkipBlanks();
      }
      const size_t key_start = pos_;
      while (pos_ < text_.size() &&
             (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) {
        ++pos_;
      }
      std::string key(text_.substr(key_start, pos_ - key_start));
      SkipBlanks();
      if (!IsValidVariableName(key) || pos_ >= text_.size() || text_[pos_] != '=') {
        return Error(entry_line, "expected KEY=VALUE with KEY matching [A-Za-z_][A-Za-z0-9_]*");
      }
      ++pos_;
      SkipBlanks();
      std::string value;
      if (pos_ < text_.size() && (text_[pos_] == '"' || text_[pos_] == '\'')) {
        const char quote = text_[pos_++];
        bool closed = false;
        while (pos_ < text_.size()) {
          const char c = text_[pos_++];
          if (c == '\n') ++line_;
          // The CR of a CRLF line end is not part of the value.
          if (c == '\r' && pos_ < text_.size() && text_[pos_] == '\n') continue;
          if (c == quote) {
            closed = true;
            break;
          }
          if (quote == '"' && c == '\\' && pos_ < text_.size()) {
            const char e = text_[pos_++];
            switch (e) {
              case 'n':
                value.push_back('\n');
                break;
              case 't':
                value.push_back('\t');
                break;
              case 'r':
                value.push_back('\r');
                break;
              case '"':
                value.push_back('"');
                break;
              case '\\':
                value.push_back('\\');
                break;
              case '$':
                value.push_back('$');
                break;
              default:
                value.push_back('\\');
                value.push_back(e);
            }
            continue;
          }
          value.push_back(c);
        }
        if (!closed) return Error(entry_line, absl::StrCat("unterminated quoted value for ", key));
        SkipBlanks();
        if (!AtLineEnd() && text_[pos_] != '#') {
          return Error(line_, absl::StrCat("unexpected text after the quoted value of ", key));
        }
        SkipToLineEnd();
      } else {
        const size_t value_start = pos_;
        size_t value_end = pos_;
        while (!AtLineEnd()) {
          // The blank before '#' may be the one after '=': `KEY= # note` is empty.
          if (text_[pos_] == '#' && pos_ > 0 && IsBlank(text_[pos_ - 1])) break;
          ++pos_;
          value_end = pos_;
        }
        value = std::string(
            absl::StripTrailingAsciiWhitespace(text_.substr(value_start, value_end - value_start)));
        SkipToLineEnd();
      }
      entries.push_back({std::move(key), std::move(value), entry_line});
      NextLine();
    }
    return entries;
  }

 private:
  bool AtLineEnd() const {
    return pos_ >= text_.size() || text_[pos_] == '\n' ||
           (text_[pos_] == '\r' && (pos_ + 1 >= text_.size() || text_[pos_ + 1] == '\n'));
  }
  void SkipBlanks() {
    while (pos_ < text_.size() && IsBlank(text_[pos_])) ++pos_;
  }
  void SkipToLineEnd() {
    while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
  }
  void NextLine() {
    if (pos_ < text_.size() && text_[pos_] == '\r') ++pos_;
    if (pos_ < text_.size() && text_[pos_] == '\n') {
      ++pos_;
      ++line_;
    }
  }
  absl::Status Error(int line, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(origin_, ":", line, ": ", what));
  }

  absl::string_view text_;
  absl::string_view origin_;
  size_t pos_ = 0;
  int line_ = 1;
};

}  // namespace

bool IsValidVariableName(absl::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

absl::StatusOr<std::vector<DotenvEntry>> ParseDotenv(absl::string_view text,
                                                     absl::string_view origin) {
  return Parser(text, origin).Parse();
}

}  // namespace jobqueue::internal
