// Python `str` semantics on UTF-8 text, for the chat template interpreter.
//
// Chat templates are written against Python's str: lengths, indices and slices count code points,
// strip() and split() treat every Unicode whitespace character as whitespace, repr() picks its
// quote the way Python does, floats print as Python prints them. These helpers reproduce that on
// UTF-8 std::strings so that canopy renders byte for byte what jinja2 renders.
//
// Every function here expects valid UTF-8: text is checked where it enters (template source,
// JSON input), so nothing below re-validates.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace canopy::jinja::py {

bool is_valid_utf8(std::string_view s);
std::u32string decode(std::string_view s);
std::string encode(std::u32string_view s);
void append_utf8(std::string& out, char32_t c);
// Decodes the code point at s[pos] and advances pos past it.
char32_t next_code_point(std::string_view s, size_t& pos);
// Number of code points.
size_t length(std::string_view s);
bool is_ascii(std::string_view s);

bool is_space(char32_t c);       // str.isspace()
bool is_line_break(char32_t c);  // a boundary of str.splitlines()

// str.strip / lstrip / rstrip; `chars` absent strips whitespace.
std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split / rsplit; `sep` absent splits on runs of whitespace and drops empty parts.
// maxsplit < 0 means no limit. An empty sep is an error (as in Python).
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep,
                               int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep,
                                int64_t maxsplit);
std::vector<std::string> splitlines(std::string_view s, bool keepends);
// str.replace; count < 0 replaces every occurrence.
std::string replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);
// str.find / rfind: code point index of the first (last) occurrence, or -1.
int64_t find(std::string_view s, std::string_view sub, bool last);
// str.count (non-overlapping).
int64_t count(std::string_view s, std::string_view sub);

std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string title(std::string_view s);       // str.title()
std::string capitalize(std::string_view s);  // str.capitalize()
std::string swapcase(std::string_view s);
bool is_lower(std::string_view s);  // str.islower()
bool is_upper(std::string_view s);  // str.isupper()
bool is_digit(std::string_view s);  // str.isdigit()
bool is_alpha(std::string_view s);  // str.isalpha()
bool is_alnum(std::string_view s);  // str.isalnum()
bool is_space_string(std::string_view s);  // str.isspace()

// repr() of a str: 'text' or "text" with Python's escapes.
std::string repr(std::string_view s);
// repr() of a float: the shortest string that reads back to the same double, in Python's layout
// (1.0, 0.1, 1e+16, 1.5e-05, inf, nan).
std::string float_repr(double v);

}  // namespace canopy::jinja::py
