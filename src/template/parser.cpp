#include "template/parser.h"

#include <initializer_list>

#include "core/error.h"
#include "template/lexer.h"

namespace canopy::jinja {

namespace {

template <typename T>
ExprPtr make_expr(int line, T node) {
  auto e = std::make_unique<Expr>();
  e->line = line;
  e->node = std::move(node);
  return e;
}

template <typename T>
StmtPtr make_stmt(int line, T node) {
  auto s = std::make_unique<Stmt>();
  s->line = line;
  s->node = std::move(node);
  return s;
}

std::string describe(const Token& t) {
  switch (t.type) {
    case TokenType::Data: return "template data";
    case TokenType::VariableBegin: return "begin of print statement '{{'";
    case TokenType::VariableEnd: return "end of print statement '}}'";
    case TokenType::BlockBegin: return "begin of statement block '{%'";
    case TokenType::BlockEnd: return "end of statement block '%}'";
    case TokenType::Eof: return "end of template";
    default: return fmt::format("'{}'", t.text);
  }
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Body parse() {
    Body body = subparse({});
    if (cur().type != TokenType::Eof) fail_here("unexpected {}", describe(cur()));
    return body;
  }

 private:
  std::vector<Token> toks_;
  size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<std::string> open_tags_;  // for "unexpected end of template" messages

  // Keeps the recursion of the parser (and so of the interpreter) within kMaxParseDepth.
  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > kMaxParseDepth) p.fail_here("expressions or blocks nested more than {} levels deep", kMaxParseDepth);
    }
    ~DepthGuard() { --p.depth_; }
  };

  template <typename... Args>
  [[noreturn]] void fail_at(int line, fmt::format_string<Args...> format, Args&&... args) const {
    canopy::fail("chat template syntax error: line {}: {}", line, fmt::format(format, std::forward<Args>(args)...));
  }
  template <typename... Args>
  [[noreturn]] void fail_here(fmt::format_string<Args...> format, Args&&... args) const {
    fail_at(cur().line, format, std::forward<Args>(args)...);
  }

  const Token& cur() const { return toks_[i_]; }
  const Token& look() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
  Token next() {
    Token t = toks_[i_];
    if (i_ + 1 < toks_.size()) ++i_;
    return t;
  }
  static bool is_op(const Token& t, std::string_view op) { return t.type == TokenType::Operator && t.text == op; }
  static bool is_name(const Token& t, std::string_view name) { return t.type == TokenType::Name && t.text == name; }
  bool skip_op(std::string_view op) {
    if (!is_op(cur(), op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(cur(), name)) return false;
    next();
    return true;
  }
  Token expect_op(std::string_view op) {
    if (!is_op(cur(), op)) fail_here("expected '{}', got {}", op, describe(cur()));
    return next();
  }
  Token expect_name() {
    if (cur().type != TokenType::Name) fail_here("expected a name, got {}", describe(cur()));
    return next();
  }
  void expect_name(std::string_view name) {
    if (!is_name(cur(), name)) fail_here("expected '{}', got {}", name, describe(cur()));
    next();
  }
  void expect(TokenType type) {
    if (cur().type != type) {
      Token wanted;
      wanted.type = type;
      fail_here("expected {}, got {}", describe(wanted), describe(cur()));
    }
    next();
  }

  // ---- statements ----------------------------------------------------------------------------

  // Statements and text up to a block whose first name is one of end_names (left as the current
  // token), or the end of the template when end_names is empty.
  Body subparse(std::initializer_list<std::string_view> end_names) {
    DepthGuard guard(*this);
    Body body;
    while (cur().type != TokenType::Eof) {
      const Token& t = cur();
      if (t.type == TokenType::Data) {
        body.push_back(make_stmt(t.line, TextStmt{t.text}));
        next();
      } else if (t.type == TokenType::VariableBegin) {
        const int line = next().line;
        body.push_back(make_stmt(line, PrintStmt{parse_tuple(true, {}, false)}));
        expect(TokenType::VariableEnd);
      } else if (t.type == TokenType::BlockBegin) {
        next();
        for (std::string_view end : end_names)
          if (is_name(cur(), end)) return body;
        body.push_back(parse_statement());
        expect(TokenType::BlockEnd);
      } else {
        fail_here("unexpected {}", describe(t));
      }
    }
    if (end_names.size() > 0) {
      std::string wanted;
      for (std::string_view end : end_names) wanted += (wanted.empty() ? "'" : " or '") + std::string(end) + "'";
      fail_here("unexpected end of template: looking for {} to close '{}'", wanted,
                open_tags_.empty() ? std::string("?") : open_tags_.back());
    }
    return body;
  }

  // The body of a block statement: "%}" then statements up to one of end_names. With
  // drop_needle the end name is consumed (its "%}" is left for the caller).
  Body parse_statements(std::initializer_list<std::string_view> end_names, bool drop_needle) {
    skip_op(":");
    expect(TokenType::BlockEnd);
    Body body = subparse(end_names);
    if (drop_needle) next();
    return body;
  }

  StmtPtr parse_statement() {
    const Token& t = cur();
    if (t.type != TokenType::Name) fail_here("tag name expected, got {}", describe(t));
    const std::string tag = t.text;
    const int line = t.line;
    open_tags_.push_back(tag);
    StmtPtr s;
    if (tag == "for") {
      s = parse_for();
    } else if (tag == "if") {
      s = parse_if();
    } else if (tag == "set") {
      s = parse_set();
    } else if (tag == "macro") {
      s = parse_macro();
    } else if (tag == "filter") {
      next();
      FilterBlockStmt f;
      f.filters = parse_filter_chain(true);
      f.body = parse_statements({"endfilter"}, true);
      s = make_stmt(line, std::move(f));
    } else if (tag == "with") {
      s = parse_with();
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail_here("'{}' outside a for loop", tag);
      next();
      s = tag == "break" ? make_stmt(line, BreakStmt{}) : make_stmt(line, ContinueStmt{});
    } else if (tag == "generation") {
      // Hugging Face's marker for assistant tokens: renders its body unchanged.
      next();
      s = make_stmt(line, BlockStmt{parse_statements({"endgeneration"}, true)});
    } else if (tag == "print") {
      next();
      BlockStmt block;
      while (cur().type != TokenType::BlockEnd) {
        if (!block.body.empty()) expect_op(",");
        const int l = cur().line;
        block.body.push_back(make_stmt(l, PrintStmt{parse_expression(true)}));
      }
      s = make_stmt(line, std::move(block));
    } else if (tag == "block" || tag == "extends" || tag == "include" || tag == "import" || tag == "from" ||
               tag == "call" || tag == "autoescape" || tag == "do") {
      fail_here("the '{}' tag is not supported in chat templates", tag);
    } else {
      fail_here("unknown tag '{}'", tag);
    }
    open_tags_.pop_back();
    return s;
  }

  StmtPtr parse_for() {
    const int line = next().line;
    ForStmt f;
    f.target = parse_target(false, "in");
    expect_name("in");
    f.iterable = parse_tuple(false, "recursive", false);
    if (skip_name("if")) f.condition = parse_expression(true);
    if (is_name(cur(), "recursive")) fail_here("recursive for loops are not supported in chat templates");
    ++loop_depth_;
    f.body = parse_statements({"endfor", "else"}, false);
    --loop_depth_;
    if (next().text == "else") f.else_body = parse_statements({"endfor"}, true);
    return make_stmt(line, std::move(f));
  }

  StmtPtr parse_if() {
    const int line = next().line;
    IfStmt s;
    while (true) {
      ExprPtr cond = parse_tuple(false, {}, false);
      Body body = parse_statements({"elif", "else", "endif"}, false);
      s.branches.emplace_back(std::move(cond), std::move(body));
      const Token t = next();
      if (t.text == "elif") continue;
      if (t.text == "else") s.else_body = parse_statements({"endif"}, true);
      break;
    }
    return make_stmt(line, std::move(s));
  }

  StmtPtr parse_set() {
    const int line = next().line;
    Target target = parse_target(true, {});
    if (skip_op("=")) return make_stmt(line, SetStmt{std::move(target), parse_tuple(true, {}, false)});
    SetBlockStmt block;
    block.target = std::move(target);
    block.filters = parse_filter_chain(false);
    block.body = parse_statements({"endset"}, true);
    return make_stmt(line, std::move(block));
  }

  StmtPtr parse_macro() {
    const int line = next().line;
    MacroStmt m;
    m.name = expect_name().text;
    expect_op("(");
    bool seen_default = false;
    while (!is_op(cur(), ")")) {
      if (!m.params.empty()) expect_op(",");
      MacroParam p;
      p.name = expect_name().text;
      if (skip_op("=")) {
        p.default_value = parse_expression(true);
        seen_default = true;
      } else if (seen_default) {
        fail_here("non-default argument follows default argument");
      }
      m.params.push_back(std::move(p));
    }
    expect_op(")");
    const int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;  // break/continue cannot reach a loop outside the macro
    const size_t body_begin = i_;
    m.body = parse_statements({"endmacro"}, true);
    loop_depth_ = saved_loop_depth;
    for (size_t k = body_begin; k < i_; ++k) {
      m.catches_varargs |= is_name(toks_[k], "varargs");
      m.catches_kwargs |= is_name(toks_[k], "kwargs");
    }
    return make_stmt(line, std::move(m));
  }

  StmtPtr parse_with() {
    const int line = next().line;
    WithStmt w;
    while (cur().type != TokenType::BlockEnd) {
      if (!w.assignments.empty()) expect_op(",");
      std::string name = expect_name().text;
      expect_op("=");
      w.assignments.emplace_back(std::move(name), parse_expression(true));
    }
    w.body = parse_statements({"endwith"}, true);
    return make_stmt(line, std::move(w));
  }

  // An assignment target: name, ns.attr (with_namespace), or names separated by commas,
  // optionally in parentheses. Stops at block ends, ')' and the name `end_name` ("in" for loops).
  Target parse_target(bool with_namespace, std::string_view end_name) {
    Target t;
    auto at_end = [&] {
      return cur().type == TokenType::BlockEnd || cur().type == TokenType::VariableEnd || is_op(cur(), ")") ||
             (!end_name.empty() && is_name(cur(), end_name));
    };
    auto target_name = [&] {
      const Token tok = expect_name();
      if (tok.text == "true" || tok.text == "false" || tok.text == "none" || tok.text == "True" ||
          tok.text == "False" || tok.text == "None")
        fail_at(tok.line, "can't assign to the constant '{}'", tok.text);
      return tok.text;
    };
    if (skip_op("(")) {
      while (!is_op(cur(), ")")) {
        if (!t.names.empty()) expect_op(",");
        if (is_op(cur(), ")")) break;
        t.names.push_back(target_name());
      }
      expect_op(")");
      t.tuple = true;
      return t;
    }
    while (true) {
      if (!t.names.empty()) expect_op(",");
      if (!t.names.empty() && at_end()) break;
      t.names.push_back(target_name());
      if (with_namespace && t.names.size() == 1 && !t.tuple && skip_op(".")) {
        t.attr = expect_name().text;
        return t;
      }
      if (!is_op(cur(), ",")) break;
      t.tuple = true;
    }
    return t;
  }

  std::vector<FilterCall> parse_filter_chain(bool start_inline) {
    std::vector<FilterCall> filters;
    while (is_op(cur(), "|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      FilterCall f;
      const Token name = expect_name();
      f.line = name.line;
      f.name = name.text;
      while (skip_op(".")) {
        f.name += '.';
        f.name += expect_name().text;
      }
      if (is_op(cur(), "(")) f.args = parse_call_args();
      filters.push_back(std::move(f));
    }
    return filters;
  }

  // ---- expressions ---------------------------------------------------------------------------

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    int line = cur().line;
    ExprPtr expr = parse_or();
    while (skip_name("if")) {
      ExprPtr condition = parse_or();
      ExprPtr otherwise;
      if (skip_name("else")) otherwise = parse_condexpr();
      expr = make_expr(line, CondExpr{std::move(condition), std::move(expr), std::move(otherwise)});
      line = cur().line;
    }
    return expr;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name(cur(), "or")) {
      const int line = next().line;
      left = make_expr(line, BinaryExpr{BinaryOp::Or, std::move(left), parse_and()});
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name(cur(), "and")) {
      const int line = next().line;
      left = make_expr(line, BinaryExpr{BinaryOp::And, std::move(left), parse_not()});
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name(cur(), "not")) {
      DepthGuard guard(*this);
      const int line = next().line;
      return make_expr(line, UnaryExpr{UnaryOp::Not, parse_not()});
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int line = cur().line;
    ExprPtr first = parse_math1();
    CompareExpr cmp;
    while (true) {
      const Token& t = cur();
      CompareOp op;
      if (t.type == TokenType::Operator && (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" ||
                                            t.text == ">" || t.text == ">=")) {
        op = t.text == "==" ? CompareOp::Eq
             : t.text == "!=" ? CompareOp::Ne
             : t.text == "<"  ? CompareOp::Lt
             : t.text == "<=" ? CompareOp::Le
             : t.text == ">"  ? CompareOp::Gt
                              : CompareOp::Ge;
        next();
      } else if (is_name(t, "in")) {
        op = CompareOp::In;
        next();
      } else if (is_name(t, "not") && is_name(look(), "in")) {
        op = CompareOp::NotIn;
        next();
        next();
      } else {
        break;
      }
      cmp.rest.emplace_back(op, parse_math1());
    }
    if (cmp.rest.empty()) return first;
    cmp.first = std::move(first);
    return make_expr(line, std::move(cmp));
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op(cur(), "+") || is_op(cur(), "-")) {
      const Token t = next();
      left = make_expr(t.line, BinaryExpr{t.text == "+" ? BinaryOp::Add : BinaryOp::Sub, std::move(left), parse_concat()});
    }
    return left;
  }

  ExprPtr parse_concat() {
    const int line = cur().line;
    ExprPtr first = parse_math2();
    if (!is_op(cur(), "~")) return first;
    ConcatExpr c;
    c.parts.push_back(std::move(first));
    while (skip_op("~")) c.parts.push_back(parse_math2());
    return make_expr(line, std::move(c));
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op(cur(), "*") || is_op(cur(), "/") || is_op(cur(), "//") || is_op(cur(), "%")) {
      const Token t = next();
      const BinaryOp op = t.text == "*"    ? BinaryOp::Mul
                          : t.text == "/"  ? BinaryOp::Div
                          : t.text == "//" ? BinaryOp::FloorDiv
                                           : BinaryOp::Mod;
      left = make_expr(t.line, BinaryExpr{op, std::move(left), parse_pow()});
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op(cur(), "**")) {
      const int line = next().line;
      left = make_expr(line, BinaryExpr{BinaryOp::Pow, std::move(left), parse_unary(true)});
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr node;
    if (is_op(cur(), "-") || is_op(cur(), "+")) {
      const Token t = next();
      node = make_expr(t.line, UnaryExpr{t.text == "-" ? UnaryOp::Neg : UnaryOp::Pos, parse_unary(false)});
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token t = cur();
    switch (t.type) {
      case TokenType::Name:
        next();
        if (t.text == "true" || t.text == "True") return make_expr(t.line, ConstExpr{Value::boolean(true)});
        if (t.text == "false" || t.text == "False") return make_expr(t.line, ConstExpr{Value::boolean(false)});
        if (t.text == "none" || t.text == "None") return make_expr(t.line, ConstExpr{Value::none()});
        return make_expr(t.line, NameExpr{t.text});
      case TokenType::String: {
        next();
        std::string s = t.text;
        while (cur().type == TokenType::String) s += next().text;  // adjacent literals concatenate
        return make_expr(t.line, ConstExpr{Value::string(std::move(s))});
      }
      case TokenType::Integer: next(); return make_expr(t.line, ConstExpr{Value::integer(t.int_value)});
      case TokenType::Float: next(); return make_expr(t.line, ConstExpr{Value::floating(t.float_value)});
      case TokenType::Operator:
        if (t.text == "(") {
          next();
          ExprPtr inner = parse_tuple(true, {}, true);
          expect_op(")");
          return inner;
        }
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        break;
      default: break;
    }
    fail_here("unexpected {}", describe(t));
  }

  // Comma-separated expressions; a tuple when there is a comma. `end_name` ends the tuple (as
  // "recursive" does after a loop's iterable).
  ExprPtr parse_tuple(bool with_condexpr, std::string_view end_name, bool explicit_parentheses) {
    const int line = cur().line;
    ListExpr tuple;
    tuple.tuple = true;
    bool is_tuple = false;
    auto at_end = [&] {
      return cur().type == TokenType::VariableEnd || cur().type == TokenType::BlockEnd || is_op(cur(), ")") ||
             (!end_name.empty() && is_name(cur(), end_name));
    };
    while (true) {
      if (!tuple.items.empty()) expect_op(",");
      if (at_end()) break;
      tuple.items.push_back(parse_expression(with_condexpr));
      if (is_op(cur(), ",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!tuple.items.empty()) return std::move(tuple.items.front());
      if (!explicit_parentheses) fail_here("expected an expression, got {}", describe(cur()));
    }
    return make_expr(line, std::move(tuple));
  }

  ExprPtr parse_list() {
    const int line = expect_op("[").line;
    ListExpr list;
    while (!is_op(cur(), "]")) {
      if (!list.items.empty()) expect_op(",");
      if (is_op(cur(), "]")) break;
      list.items.push_back(parse_expression(true));
    }
    expect_op("]");
    return make_expr(line, std::move(list));
  }

  ExprPtr parse_dict() {
    const int line = expect_op("{").line;
    DictExpr dict;
    while (!is_op(cur(), "}")) {
      if (!dict.items.empty()) expect_op(",");
      if (is_op(cur(), "}")) break;
      ExprPtr key = parse_expression(true);
      expect_op(":");
      dict.items.emplace_back(std::move(key), parse_expression(true));
    }
    expect_op("}");
    return make_expr(line, std::move(dict));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(cur(), ".") || is_op(cur(), "[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op(cur(), "(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op(cur(), "|")) {
        for (FilterCall& f : parse_filter_chain(false)) {
          const int line = f.line;
          node = make_expr(line, FilterExpr{std::move(node), std::move(f.name), std::move(f.args)});
        }
      } else if (is_name(cur(), "is")) {
        node = parse_test(std::move(node));
      } else if (is_op(cur(), "(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token t = next();
    if (t.text == ".") {
      const Token attr = next();
      if (attr.type == TokenType::Name) return make_expr(t.line, AttrExpr{std::move(node), attr.text});
      if (attr.type != TokenType::Integer) fail_at(attr.line, "expected a name or number after '.'");
      return make_expr(t.line, ItemExpr{std::move(node), make_expr(attr.line, ConstExpr{Value::integer(attr.int_value)})});
    }
    std::vector<ExprPtr> args;
    while (!is_op(cur(), "]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    if (args.empty()) fail_at(t.line, "expected a subscript expression");
    ExprPtr key;
    if (args.size() == 1) {
      key = std::move(args.front());
    } else {
      ListExpr tuple;
      tuple.tuple = true;
      tuple.items = std::move(args);
      key = make_expr(t.line, std::move(tuple));
    }
    return make_expr(t.line, ItemExpr{std::move(node), std::move(key)});
  }

  ExprPtr parse_subscribed() {
    const int line = cur().line;
    SliceExpr slice;
    if (is_op(cur(), ":")) {
      next();
    } else {
      ExprPtr start = parse_expression(true);
      if (!is_op(cur(), ":")) return start;
      next();
      slice.start = std::move(start);
    }
    auto at_slice_end = [&] { return is_op(cur(), "]") || is_op(cur(), ","); };
    if (!is_op(cur(), ":") && !at_slice_end()) slice.stop = parse_expression(true);
    if (skip_op(":")) {
      if (!at_slice_end()) slice.step = parse_expression(true);
    }
    return make_expr(line, std::move(slice));
  }

  Arguments parse_call_args() {
    const Token open = expect_op("(");
    Arguments args;
    bool require_comma = false;
    auto ensure = [&](bool ok) {
      if (!ok) fail_at(open.line, "invalid syntax for function call expression");
    };
    while (!is_op(cur(), ")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(cur(), ")")) break;  // trailing comma
      }
      if (skip_op("*")) {
        ensure(!args.star_args && !args.star_kwargs);
        args.star_args = parse_expression(true);
      } else if (skip_op("**")) {
        ensure(!args.star_kwargs);
        args.star_kwargs = parse_expression(true);
      } else if (cur().type == TokenType::Name && is_op(look(), "=")) {
        ensure(!args.star_kwargs);
        std::string key = next().text;
        next();
        args.keyword.emplace_back(std::move(key), parse_expression(true));
      } else {
        ensure(!args.star_args && !args.star_kwargs && args.keyword.empty());
        args.positional.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
    return args;
  }

  ExprPtr parse_call(ExprPtr callee) {
    const int line = cur().line;
    Arguments args = parse_call_args();
    return make_expr(line, CallExpr{std::move(callee), std::move(args)});
  }

  ExprPtr parse_test(ExprPtr node) {
    const int line = next().line;  // 'is'
    const bool negated = skip_name("not");
    std::string name = expect_name().text;
    while (skip_op(".")) {
      name += '.';
      name += expect_name().text;
    }
    Arguments args;
    const Token& t = cur();
    if (is_op(t, "(")) {
      args = parse_call_args();
    } else if ((t.type == TokenType::Name || t.type == TokenType::String || t.type == TokenType::Integer ||
                t.type == TokenType::Float || is_op(t, "[") || is_op(t, "{")) &&
               !is_name(t, "else") && !is_name(t, "or") && !is_name(t, "and")) {
      // `x is divisibleby 3`, `x is sameas none`: one argument without parentheses.
      if (is_name(t, "is")) fail_here("you cannot chain multiple tests with 'is'");
      args.positional.push_back(parse_postfix(parse_primary()));
    }
    ExprPtr test = make_expr(line, TestExpr{std::move(node), std::move(name), std::move(args)});
    if (negated) test = make_expr(line, UnaryExpr{UnaryOp::Not, std::move(test)});
    return test;
  }
};

}  // namespace

Body parse_template(std::string_view source) { return Parser(tokenize(source)).parse(); }

}  // namespace canopy::jinja
