// The few Unicode character properties the tokenizer needs outside regular expressions.
#pragma once

namespace canopy::unicode {

// Unicode's White_Space property (what Rust's char::is_whitespace and Oniguruma's \s test).
bool is_white_space(char32_t cp);
// General category N* (Nd, Nl, No), what Rust's char::is_numeric tests.
bool is_numeric(char32_t cp);
// Letters, numbers and '_' (a word character for single-word added tokens).
bool is_word_char(char32_t cp);

}  // namespace canopy::unicode
