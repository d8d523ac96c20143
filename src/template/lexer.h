// Splits a chat template into tokens, with jinja2's whitespace rules as Hugging Face configures
// them (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False):
//
//   - every line break (\r\n, \r, \n) becomes \n, and one trailing newline of the source is dropped;
//   - trim_blocks: the first newline after a block tag (%}) or a comment (#}) is removed;
//   - lstrip_blocks: spaces and tabs before a block tag or comment at the start of a line are removed;
//   - {%- / {{- / {#- strip all whitespace before the tag, -%} / -}} / -#} all whitespace after it;
//   - {%+ and +%} keep the whitespace that lstrip_blocks and trim_blocks would remove;
//   - {% raw %}...{% endraw %} is passed through as text.
//
// Whitespace is Python's: every Unicode space counts, as in jinja2's regular expressions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace canopy::jinja {

enum class TokenType : uint8_t {
  Data,           // text outside tags
  VariableBegin,  // {{
  VariableEnd,    // }}
  BlockBegin,     // {%
  BlockEnd,       // %}
  Name,           // identifiers and keywords (if, for, and, not, true, ...)
  String,         // a string literal, escapes decoded
  Integer,
  Float,
  Operator,       // + - * / // % ** ~ == != < <= > >= = . : | , ( ) [ ] { } ;
  Eof,
};

struct Token {
  TokenType type = TokenType::Eof;
  std::string text;  // Data text, Name, decoded String, Operator spelling, number spelling
  int64_t int_value = 0;
  double float_value = 0.0;
  int line = 1;
};

// Throws canopy::Error "chat template syntax error: line N: ..." for malformed input (an unclosed
// comment or string, an unexpected character, unbalanced brackets inside a tag).
std::vector<Token> tokenize(std::string_view source);

}  // namespace canopy::jinja
