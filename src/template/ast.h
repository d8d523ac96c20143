// The syntax tree of a chat template: expressions and statements, each with its source line.
//
// The shapes follow jinja2's own nodes (jinja2/nodes.py), so that precedence and scoping questions
// can be answered by reading jinja2's parser next to ours.
#pragma once

#include <cstddef>
#include <memory>
#include <type_traits>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "template/value.h"

namespace canopy::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

// Arguments of a call, filter or test: f(a, b, k=v, *args, **kwargs).
struct Arguments {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
  ExprPtr star_args;    // *args, or null
  ExprPtr star_kwargs;  // **kwargs, or null
};

enum class UnaryOp : uint8_t { Not, Neg, Pos };
enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, FloorDiv, Mod, Pow, And, Or };
enum class CompareOp : uint8_t { Eq, Ne, Lt, Le, Gt, Ge, In, NotIn };

struct ConstExpr { Value value; };
struct NameExpr { std::string name; };
struct ListExpr { std::vector<ExprPtr> items; bool tuple = false; };
struct DictExpr { std::vector<std::pair<ExprPtr, ExprPtr>> items; };
struct AttrExpr { ExprPtr object; std::string attr; };   // object.attr
struct ItemExpr { ExprPtr object; ExprPtr key; };        // object[key]
struct SliceExpr { ExprPtr start, stop, step; };         // only as an ItemExpr key; parts may be null
struct CallExpr { ExprPtr callee; Arguments args; };
struct FilterExpr { ExprPtr operand; std::string name; Arguments args; };  // operand | name(args)
struct TestExpr { ExprPtr operand; std::string name; Arguments args; };    // operand is name(args)
struct UnaryExpr { UnaryOp op; ExprPtr operand; };
struct BinaryExpr { BinaryOp op; ExprPtr left, right; };
struct CompareExpr { ExprPtr first; std::vector<std::pair<CompareOp, ExprPtr>> rest; };  // a < b < c
struct CondExpr { ExprPtr condition, then, otherwise; };  // then if condition else otherwise
struct ConcatExpr { std::vector<ExprPtr> parts; };        // a ~ b ~ c

struct Expr {
  int line = 0;
  std::variant<ConstExpr, NameExpr, ListExpr, DictExpr, AttrExpr, ItemExpr, SliceExpr, CallExpr,
               FilterExpr, TestExpr, UnaryExpr, BinaryExpr, CompareExpr, CondExpr, ConcatExpr>
      node;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// What `set` and `for` assign to: a name, a tuple of names, or a namespace attribute (ns.attr).
struct Target {
  std::vector<std::string> names;  // one name, or several for tuple unpacking
  bool tuple = false;
  std::string attr;  // set when assigning names[0].attr
};

// One filter of a `{% filter %}` block or a block `{% set x | filter %}`.
struct FilterCall {
  std::string name;
  Arguments args;
  int line = 0;
};

struct TextStmt { std::string text; };
struct PrintStmt { ExprPtr expr; };
struct IfStmt {
  std::vector<std::pair<ExprPtr, Body>> branches;  // if / elif ...
  Body else_body;
};
struct ForStmt {
  Target target;
  ExprPtr iterable;
  ExprPtr condition;  // for x in xs if condition; may be null
  Body body;
  Body else_body;     // runs when no item was iterated
};
struct SetStmt { Target target; ExprPtr value; };
struct SetBlockStmt { Target target; std::vector<FilterCall> filters; Body body; };
struct MacroParam { std::string name; ExprPtr default_value; };  // default may be null
struct MacroStmt {
  std::string name;
  std::vector<MacroParam> params;
  Body body;
  // Whether the body mentions `varargs` / `kwargs`: only then does the macro accept extra
  // positional / keyword arguments (as in jinja2).
  bool catches_varargs = false;
  bool catches_kwargs = false;
};
struct FilterBlockStmt { std::vector<FilterCall> filters; Body body; };
struct WithStmt { std::vector<std::pair<std::string, ExprPtr>> assignments; Body body; };
struct BreakStmt {};
struct ContinueStmt {};
// A body that renders as it is: Hugging Face's {% generation %} marker.
struct BlockStmt { Body body; };

struct Stmt {
  int line = 0;
  std::variant<TextStmt, PrintStmt, IfStmt, ForStmt, SetStmt, SetBlockStmt, MacroStmt,
               FilterBlockStmt, WithStmt, BreakStmt, ContinueStmt, BlockStmt>
      node;
};

// The index of a node type in Expr::node / Stmt::node, for switching on node.index() by name.
namespace detail {
template <typename T, typename... Ts>
constexpr size_t index_in() {
  constexpr bool matches[] = {std::is_same_v<T, Ts>...};
  size_t i = 0;
  while (i < sizeof...(Ts) && !matches[i]) ++i;
  return i;
}
template <typename T, typename Variant>
struct IndexOf;
template <typename T, typename... Ts>
struct IndexOf<T, std::variant<Ts...>> {
  static_assert((std::is_same_v<T, Ts> || ...), "not a node type of this variant");
  static constexpr size_t value = index_in<T, Ts...>();
};
}  // namespace detail
template <typename T>
inline constexpr size_t kExprIndex = detail::IndexOf<T, decltype(Expr::node)>::value;
template <typename T>
inline constexpr size_t kStmtIndex = detail::IndexOf<T, decltype(Stmt::node)>::value;

}  // namespace canopy::jinja
