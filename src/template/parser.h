// Parses a chat template into its syntax tree, with jinja2's grammar and precedence:
//
//   expr    := or ('if' or ('else' expr)?)*
//   or      := and ('or' and)*            and := not ('and' not)*
//   not     := 'not' not | compare        compare := math1 (('=='|'!='|'<'|...|'in'|'not in') math1)*
//   math1   := concat (('+'|'-') concat)* concat := math2 ('~' math2)*
//   math2   := pow (('*'|'/'|'//'|'%') pow)*   pow := unary ('**' unary)*
//   unary   := ('-'|'+') unary | primary postfix* ('|' filter | 'is' test | call)*
//
// Statements: if/elif/else, for (with `if` filter and `else`), set (plain, tuple, namespace
// attribute, block), macro, filter, with, break/continue (jinja2's loopcontrols extension),
// raw, and Hugging Face's {% generation %}. Imports, includes, inheritance and call blocks are not
// part of the sandbox and are rejected with a message naming the tag.
#pragma once

#include <string_view>

#include "template/ast.h"

namespace canopy::jinja {

// Expressions and blocks may nest this deep; deeper input is rejected (it would only serve to
// exhaust the stack).
inline constexpr int kMaxParseDepth = 128;

// Throws canopy::Error "chat template syntax error: line N: ..." on malformed input.
Body parse_template(std::string_view source);

}  // namespace canopy::jinja
