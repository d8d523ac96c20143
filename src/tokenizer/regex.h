// Unicode regular expressions for pre-tokenizers, on PCRE2 (JIT-compiled).
//
// Tokenizer files write their split patterns for Oniguruma (Hugging Face `tokenizers`). The
// syntax canopy meets there (\p{L}, \p{N}, (?i:...), lookahead, possessive and bounded
// repeats) means the same in PCRE2 with UTF and UCP on, except \s: Oniguruma's \s is exactly
// Unicode's White_Space property, while PCRE2's also takes U+180E. Patterns are therefore
// rewritten so that \s and \S name White_Space explicitly.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace canopy {

class Regex {
 public:
  // Compiles `pattern` (UTF-8); throws canopy::Error quoting the pattern and PCRE2's message.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;

  const std::string& pattern() const { return pattern_; }

  // Calls on_match(begin, end) for each non-empty match in `subject` (valid UTF-8), left to right,
  // without overlap. Lookarounds see only `subject`. Throws canopy::Error if PCRE2 fails (e.g. it
  // runs out of its backtracking limits).
  template <typename OnMatch>
  void for_each_match(std::string_view subject, OnMatch&& on_match) const {
    size_t pos = 0;
    size_t begin = 0, end = 0;
    while (pos <= subject.size() && find(subject, pos, begin, end)) {
      if (end > begin) {
        on_match(begin, end);
        pos = end;
      } else {
        pos = next_char(subject, end);  // skip an empty match
      }
    }
  }

  // Replaces every match of this regex in `subject` with `replacement` (literal text).
  std::string replace_all(std::string_view subject, std::string_view replacement) const;

 private:
  // Finds the first match at or after `start`; false when there is none.
  bool find(std::string_view subject, size_t start, size_t& begin, size_t& end) const;
  static size_t next_char(std::string_view subject, size_t pos);

  std::string pattern_;
  struct Code;
  std::unique_ptr<Code> code_;
};

// Rewrites \s and \S in an Oniguruma-style pattern as explicit White_Space classes (see above).
std::string translate_whitespace_classes(std::string_view pattern);

}  // namespace canopy
