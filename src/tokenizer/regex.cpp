#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace canopy {
namespace {

// Unicode's White_Space property (PropList.txt), as Oniguruma's \s matches it.
constexpr std::string_view kWhiteSpace =
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof buffer) < 0) return "error " + std::to_string(code);
  return reinterpret_cast<const char*>(buffer);
}

// Per-thread match state: one match-data block (only the whole match is needed) and a JIT stack
// large enough for long runs of whitespace or punctuation.
struct MatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
  MatchState() {
    if (data == nullptr || context == nullptr || stack == nullptr) fail("out of memory creating regex match data");
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~MatchState() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

}  // namespace

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

std::string translate_whitespace_classes(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[i + 1];
      if (e == 's') {
        if (in_class)
          out.append(kWhiteSpace);
        else
          out.append("[").append(kWhiteSpace).append("]");
      } else if (e == 'S') {
        if (in_class) fail("regex {}: \\S inside a character class is not supported", pattern);
        out.append("[^").append(kWhiteSpace).append("]");
      } else {
        out.push_back(c);
        out.push_back(e);
      }
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal member of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out.push_back(pattern[++i]);
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out.push_back(pattern[++i]);
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out.push_back(c);
  }
  return out;
}

Regex::Regex(const std::string& pattern) : pattern_(pattern), code_(std::make_unique<Code>()) {
  const std::string translated = translate_whitespace_classes(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                              PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code_->code == nullptr)
    fail("cannot compile the regex {}: {} (at offset {} of {})", pattern, pcre2_message(error), offset, translated);
  code_->jit = pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

bool Regex::find(std::string_view subject, size_t start, size_t& begin, size_t& end) const {
  MatchState& state = match_state();
  const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
  // The tokenizer validates its input once, so PCRE2 need not check it again on every call.
  const int rc = code_->jit ? pcre2_jit_match(code_->code, text, subject.size(), start, PCRE2_NO_UTF_CHECK,
                                              state.data, state.context)
                            : pcre2_match(code_->code, text, subject.size(), start, PCRE2_NO_UTF_CHECK,
                                          state.data, state.context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  // rc == 0 means the ovector had no room for capture groups; the whole match is still there.
  if (rc < 0) fail("regex {} failed on a text of {} bytes: {}", pattern_, subject.size(), pcre2_message(rc));
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data);
  begin = ovector[0];
  end = ovector[1];
  return true;
}

size_t Regex::next_char(std::string_view subject, size_t pos) {
  if (pos >= subject.size()) return subject.size() + 1;
  return pos + utf8::sequence_length(static_cast<unsigned char>(subject[pos]));
}

std::string Regex::replace_all(std::string_view subject, std::string_view replacement) const {
  std::string out;
  size_t copied = 0;
  for_each_match(subject, [&](size_t begin, size_t end) {
    out.append(subject.substr(copied, begin - copied));
    out.append(replacement);
    copied = end;
  });
  out.append(subject.substr(copied));
  return out;
}

}  // namespace canopy
