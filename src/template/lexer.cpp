#include "template/lexer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "core/error.h"
#include "template/py_text.h"

namespace canopy::jinja {

namespace {

template <typename... Args>
[[noreturn]] void syntax_error(int line, fmt::format_string<Args...> format, Args&&... args) {
  fail("chat template syntax error: line {}: {}", line, fmt::format(format, std::forward<Args>(args)...));
}

int count_newlines(std::string_view s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

// Length in bytes of the run of (Python) whitespace starting at pos.
size_t whitespace_run(std::string_view s, size_t pos) {
  size_t i = pos;
  while (i < s.size()) {
    size_t next = i;
    if (!py::is_space(py::next_code_point(s, next))) break;
    i = next;
  }
  return i - pos;
}

// Python's str.rstrip() on whitespace.
std::string_view rstrip_whitespace(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t p = start;
    if (!py::is_space(py::next_code_point(s, p))) break;
    end = start;
  }
  return s.substr(0, end);
}

// lstrip_blocks: the text before a block tag or comment loses the spaces that precede the tag on
// its line, when nothing else precedes it there.
std::string_view lstrip_block_text(std::string_view text, bool line_starting) {
  const size_t last_newline = text.rfind('\n');
  const size_t line_start = last_newline == std::string_view::npos ? 0 : last_newline + 1;
  if (line_start == 0 && !line_starting) return text;
  const std::string_view tail = text.substr(line_start);
  if (tail.empty() || whitespace_run(tail, 0) != tail.size()) return text;
  return text.substr(0, line_start);
}

bool is_name_start(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_NL: return true;
    default: return false;
  }
}

bool is_name_continue(char32_t c) {
  if (is_name_start(c)) return true;
  if (c < 0x80) return c >= '0' && c <= '9';
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC: return true;
    default: return false;
  }
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes the body of a string literal the way Python's "unicode-escape" codec does, which is
// what jinja2 applies to string literals.
std::string decode_string_literal(std::string_view body, int line) {
  std::string out;
  out.reserve(body.size());
  size_t i = 0;
  while (i < body.size()) {
    const char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out.push_back(c);
      ++i;
      continue;
    }
    const char e = body[i + 1];
    i += 2;
    switch (e) {
      case '\n': break;  // line continuation
      case '\\': out.push_back('\\'); break;
      case '\'': out.push_back('\''); break;
      case '"': out.push_back('"'); break;
      case 'a': out.push_back('\a'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'v': out.push_back('\v'); break;
      case 'x':
      case 'u':
      case 'U': {
        const size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        char32_t cp = 0;
        for (size_t k = 0; k < digits; ++k) {
          const int h = i + k < body.size() ? hex_value(body[i + k]) : -1;
          if (h < 0) syntax_error(line, "truncated \\{} escape in a string literal", e);
          cp = cp * 16 + static_cast<char32_t>(h);
        }
        i += digits;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
          syntax_error(line, "escape \\{} names an invalid code point U+{:X}", e, static_cast<uint32_t>(cp));
        py::append_utf8(out, cp);
        break;
      }
      case 'N': syntax_error(line, "\\N{{...}} escapes are not supported in chat templates");
      default:
        if (e >= '0' && e <= '7') {
          char32_t cp = static_cast<char32_t>(e - '0');
          for (int k = 0; k < 2 && i < body.size() && body[i] >= '0' && body[i] <= '7'; ++k, ++i)
            cp = cp * 8 + static_cast<char32_t>(body[i] - '0');
          py::append_utf8(out, cp);
        } else {
          // Unknown escapes keep their backslash, as in Python.
          out.push_back('\\');
          out.push_back(e);
        }
        break;
    }
  }
  return out;
}

// Operators, longest first so that "//" wins over "/".
constexpr std::string_view kOperators[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*",
                                           "%",  "~",  "[",  "]",  "(",  ")",  "{", "}", ">",  "<",
                                           "=",  ".",  ":",  "|",  ",",  ";"};

class Lexer {
 public:
  explicit Lexer(std::string source) : src_(std::move(source)) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) lex_root();
    push(TokenType::Eof, "");
    return std::move(tokens_);
  }

 private:
  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;  // the previous match ended with a newline (or nothing came yet)
  std::vector<Token> tokens_;

  void push(TokenType type, std::string text) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    t.line = line_;
    tokens_.push_back(std::move(t));
  }

  bool at(std::string_view s, size_t pos) const { return std::string_view(src_).substr(pos, s.size()) == s; }

  // Text up to the next tag, then the tag itself.
  void lex_root() {
    const std::string_view src(src_);
    size_t tag = pos_;
    while (true) {
      tag = src.find('{', tag);
      if (tag == std::string_view::npos || tag + 1 >= src.size()) {
        tag = std::string_view::npos;
        break;
      }
      const char k = src[tag + 1];
      if (k == '{' || k == '%' || k == '#') break;
      ++tag;
    }
    if (tag == std::string_view::npos) {
      emit_data(src.substr(pos_));
      pos_ = src.size();
      return;
    }
    const char kind = src[tag + 1];
    const char sign = tag + 2 < src.size() && (src[tag + 2] == '-' || src[tag + 2] == '+') ? src[tag + 2] : 0;
    size_t after = tag + 2 + (sign ? 1 : 0);

    std::string_view text = src.substr(pos_, tag - pos_);
    const int text_lines = count_newlines(text);
    const size_t raw_end = kind == '%' ? match_raw_begin(after) : std::string_view::npos;
    if (sign == '-') {
      text = rstrip_whitespace(text);
    } else if (sign != '+' && kind != '{') {
      text = lstrip_block_text(text, line_starting_);
    }
    emit_data(text);
    line_ += text_lines;
    line_starting_ = false;

    if (raw_end != std::string_view::npos) {
      line_starting_ = src[raw_end - 1] == '\n';
      line_ += count_newlines(src.substr(after, raw_end - after));
      pos_ = raw_end;
      lex_raw_body();
    } else if (kind == '#') {
      pos_ = after;
      lex_comment();
    } else {
      pos_ = after;
      push(kind == '{' ? TokenType::VariableBegin : TokenType::BlockBegin, kind == '{' ? "{{" : "{%");
      lex_tag(kind == '{');
    }
  }

  void emit_data(std::string_view text) {
    if (!text.empty()) push(TokenType::Data, std::string(text));
  }

  // After "{%" and its sign: "\s*raw\s*" then "-%}\s*" or "%}". Returns the end of the match.
  size_t match_raw_begin(size_t p) const {
    const std::string_view src(src_);
    p += whitespace_run(src, p);
    if (!at("raw", p)) return std::string_view::npos;
    p += 3;
    p += whitespace_run(src, p);
    if (at("-%}", p)) return p + 3 + whitespace_run(src, p + 3);
    if (at("%}", p)) return p + 2;
    return std::string_view::npos;
  }

  // The end of a block tag at p ("+%}", "-%}\s*", "%}\n?"), or npos.
  size_t match_block_end(size_t p) const {
    if (at("+%}", p)) return p + 3;
    if (at("-%}", p)) return p + 3 + whitespace_run(src_, p + 3);
    if (at("%}", p)) return p + 2 + (at("\n", p + 2) ? 1 : 0);
    return std::string_view::npos;
  }

  void lex_raw_body() {
    const std::string_view src(src_);
    // The body ends at the first "{%[-+]?\s*endraw\s*" followed by a block end.
    for (size_t p = src.find("{%", pos_); p != std::string_view::npos; p = src.find("{%", p + 1)) {
      const char sign = p + 2 < src.size() && (src[p + 2] == '-' || src[p + 2] == '+') ? src[p + 2] : 0;
      size_t q = p + 2 + (sign ? 1 : 0);
      q += whitespace_run(src, q);
      if (!at("endraw", q)) continue;
      q += 6;
      q += whitespace_run(src, q);
      const size_t end = match_block_end(q);
      if (end == std::string_view::npos) continue;
      std::string_view body = src.substr(pos_, p - pos_);
      const int body_lines = count_newlines(body);
      if (sign == '-') {
        body = rstrip_whitespace(body);
      } else if (sign != '+') {
        body = lstrip_block_text(body, line_starting_);
      }
      emit_data(body);
      line_ += body_lines + count_newlines(src.substr(p, end - p));
      line_starting_ = src[end - 1] == '\n';
      pos_ = end;
      return;
    }
    syntax_error(line_, "missing end of raw directive");
  }

  void lex_comment() {
    const std::string_view src(src_);
    for (size_t p = pos_; p < src.size(); ++p) {
      size_t end = std::string_view::npos;
      if (at("+#}", p)) {
        end = p + 3;
      } else if (at("-#}", p)) {
        end = p + 3 + whitespace_run(src, p + 3);
      } else if (at("#}", p)) {
        end = p + 2 + (at("\n", p + 2) ? 1 : 0);
      }
      if (end == std::string_view::npos) continue;
      line_ += count_newlines(src.substr(pos_, end - pos_));
      line_starting_ = src[end - 1] == '\n';
      pos_ = end;
      return;
    }
    syntax_error(line_, "missing end of comment tag");
  }

  void lex_tag(bool variable) {
    const std::string_view src(src_);
    std::vector<char> balance;  // closing brackets expected
    while (true) {
      if (pos_ >= src.size()) return;  // the parser reports the unexpected end
      if (balance.empty()) {
        size_t end = std::string_view::npos;
        if (variable) {
          if (at("-}}", pos_)) {
            end = pos_ + 3 + whitespace_run(src, pos_ + 3);
          } else if (at("}}", pos_)) {
            end = pos_ + 2;
          }
        } else {
          end = match_block_end(pos_);
        }
        if (end != std::string_view::npos) {
          push(variable ? TokenType::VariableEnd : TokenType::BlockEnd, variable ? "}}" : "%}");
          line_ += count_newlines(src.substr(pos_, end - pos_));
          line_starting_ = src[end - 1] == '\n';
          pos_ = end;
          return;
        }
      }
      if (const size_t ws = whitespace_run(src, pos_); ws > 0) {
        const std::string_view run = src.substr(pos_, ws);
        line_ += count_newlines(run);
        line_starting_ = run.back() == '\n';
        pos_ += ws;
        continue;
      }
      line_starting_ = false;
      if (lex_number()) continue;
      size_t next = pos_;
      const char32_t c = py::next_code_point(src, next);
      if (is_name_start(c)) {
        size_t end = next;
        while (end < src.size()) {
          size_t after = end;
          if (!is_name_continue(py::next_code_point(src, after))) break;
          end = after;
        }
        push(TokenType::Name, std::string(src.substr(pos_, end - pos_)));
        pos_ = end;
        continue;
      }
      if (c == '\'' || c == '"') {
        lex_string(static_cast<char>(c));
        continue;
      }
      bool matched = false;
      for (std::string_view op : kOperators) {
        if (!at(op, pos_)) continue;
        if (op == "(" || op == "[" || op == "{") {
          balance.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
        } else if (op == ")" || op == "]" || op == "}") {
          if (balance.empty()) syntax_error(line_, "unexpected '{}'", op);
          if (balance.back() != op[0]) syntax_error(line_, "unexpected '{}', expected '{}'", op, balance.back());
          balance.pop_back();
        }
        push(TokenType::Operator, std::string(op));
        pos_ += op.size();
        matched = true;
        break;
      }
      if (!matched) syntax_error(line_, "unexpected character '{}'", std::string(src.substr(pos_, next - pos_)));
    }
  }

  void lex_string(char quote) {
    const std::string_view src(src_);
    size_t p = pos_ + 1;
    while (p < src.size() && src[p] != quote) p += src[p] == '\\' ? 2 : 1;
    if (p >= src.size()) syntax_error(line_, "unterminated string literal");
    const std::string_view body = src.substr(pos_ + 1, p - pos_ - 1);
    push(TokenType::String, decode_string_literal(body, line_));
    line_ += count_newlines(body);
    pos_ = p + 1;
  }

  // digits with optional single underscores between them, starting at p; returns the end or p.
  size_t digit_run(size_t p) const {
    const std::string_view src(src_);
    if (p >= src.size() || !is_digit(src[p])) return p;
    size_t q = p + 1;
    while (q < src.size()) {
      if (is_digit(src[q])) {
        ++q;
      } else if (src[q] == '_' && q + 1 < src.size() && is_digit(src[q + 1])) {
        q += 2;
      } else {
        break;
      }
    }
    return q;
  }

  bool lex_number() {
    const std::string_view src(src_);
    if (!is_digit(src[pos_])) return false;
    auto strip_underscores = [](std::string_view s) {
      std::string out;
      for (char c : s)
        if (c != '_') out.push_back(c);
      return out;
    };
    // A float: digits, then a fraction and/or an exponent (not right after a '.').
    const bool after_dot = pos_ > 0 && src[pos_ - 1] == '.';
    if (!after_dot) {
      const size_t int_end = digit_run(pos_);
      size_t end = int_end;
      bool has_fraction = false;
      if (end < src.size() && src[end] == '.') {
        const size_t frac_end = digit_run(end + 1);
        if (frac_end > end + 1) {
          end = frac_end;
          has_fraction = true;
        }
      }
      bool has_exponent = false;
      if (end < src.size() && (src[end] == 'e' || src[end] == 'E')) {
        size_t q = end + 1;
        if (q < src.size() && (src[q] == '+' || src[q] == '-')) ++q;
        const size_t exp_end = digit_run(q);
        if (exp_end > q) {
          end = exp_end;
          has_exponent = true;
        }
      }
      if (has_fraction || has_exponent) {
        const std::string spelling = strip_underscores(src.substr(pos_, end - pos_));
        Token t;
        t.type = TokenType::Float;
        t.text = spelling;
        t.float_value = std::strtod(spelling.c_str(), nullptr);
        t.line = line_;
        tokens_.push_back(std::move(t));
        pos_ = end;
        return true;
      }
    }
    // An integer: 0b / 0o / 0x prefixes, or decimal.
    int base = 10;
    size_t digits_begin = pos_;
    size_t end = pos_;
    if (src[pos_] == '0' && pos_ + 1 < src.size()) {
      const char p = static_cast<char>(src[pos_ + 1] | 0x20);
      if (p == 'b' || p == 'o' || p == 'x') base = p == 'b' ? 2 : p == 'o' ? 8 : 16;
    }
    if (base != 10) {
      auto valid = [base](char c) {
        const int h = hex_value(c);
        return h >= 0 && h < base;
      };
      digits_begin = pos_ + 2;
      end = digits_begin;
      while (end < src.size() && (valid(src[end]) || (src[end] == '_' && end + 1 < src.size() && valid(src[end + 1]))))
        ++end;
      if (end == digits_begin) {
        base = 10;  // "0x" without digits: just the integer 0
        digits_begin = pos_;
      }
    }
    if (base == 10) {
      if (src[pos_] == '0') {
        end = pos_ + 1;  // "0", "0_0", "00": zeros only
        while (end < src.size() && (src[end] == '0' || (src[end] == '_' && end + 1 < src.size() && src[end + 1] == '0')))
          ++end;
      } else {
        end = digit_run(pos_);
      }
    }
    const std::string digits = strip_underscores(src.substr(digits_begin, end - digits_begin));
    errno = 0;
    const long long value = std::strtoll(digits.c_str(), nullptr, base);
    if (errno == ERANGE) syntax_error(line_, "integer literal {} is too large", src.substr(pos_, end - pos_));
    Token t;
    t.type = TokenType::Integer;
    t.text = std::string(src.substr(pos_, end - pos_));
    t.int_value = value;
    t.line = line_;
    tokens_.push_back(std::move(t));
    pos_ = end;
    return true;
  }
};

// Line breaks become \n and one trailing newline goes, as jinja2 does before lexing.
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

std::vector<Token> tokenize(std::string_view source) {
  CANOPY_CHECK(py::is_valid_utf8(source), "chat template is not valid UTF-8");
  return Lexer(normalize_newlines(source)).run();
}

}  // namespace canopy::jinja
