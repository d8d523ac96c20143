// Runs a parsed chat template: a tree-walking interpreter with jinja2's semantics and a sandbox.
//
// The sandbox: names resolve only to the variables passed in, the template's own assignments and
// the built-ins (range, namespace, dict, raise_exception, strftime_now); attribute access reaches
// only dict keys, namespace attributes, the loop variable and a fixed list of safe str/dict/list
// methods. Every render runs under budgets: evaluation steps (so a loop or recursion without end
// stops), output and string sizes, macro call depth and evaluation nesting (so the C++ stack stays
// bounded). Exceeding one throws canopy::Error naming the budget.
//
// Scoping follows jinja2: `set` inside a for loop is local to the iteration, `if` does not open a
// scope, a macro sees the scope it was defined in (at call time) plus its arguments, and
// namespace() objects are how state crosses a loop boundary.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "template/ast.h"
#include "template/value.h"

namespace canopy::jinja {

struct RenderLimits {
  uint64_t max_steps = 10'000'000;          // expression and statement evaluations, plus bulk work
  size_t max_output_bytes = 16u << 20;      // the rendered text, and any single string or capture
  size_t max_list_items = 1u << 20;         // any single list built while rendering
  int max_call_depth = 100;                 // nested macro calls
  int max_nesting = 1000;                   // nested evaluations (expressions, blocks, calls): ~0.7 MB of stack
};

// Variables visible to the template: a chain of scopes, innermost first. A scope holds a handful
// of names (a loop iteration: the target and `loop`), so a flat vector beats a map.
struct Scope {
  explicit Scope(std::shared_ptr<Scope> parent_scope) : parent(std::move(parent_scope)) {}
  // The variable in this scope or the nearest enclosing one; null when no scope has it.
  const Value* find(std::string_view name) const;
  // Binds `name` in this scope.
  void set(std::string_view name, Value value);
  void clear() { vars.clear(); }

  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;
};
using ScopePtr = std::shared_ptr<Scope>;

// The built-in globals of Hugging Face's chat template environment.
void add_builtins(Scope& scope);

class Interpreter {
 public:
  // `now` fixes the clock of strftime_now (local time when absent).
  Interpreter(const RenderLimits& limits, std::optional<std::tm> now);

  // Renders `body` in a scope below `globals`. Errors carry the template line:
  // "chat template error: line N: ...". Errors raised by the template itself through
  // raise_exception() pass through unchanged.
  std::string render(const Body& body, const ScopePtr& globals);

  // ---- services for filters, tests, methods and built-ins ----
  // Counts `steps` units of work against the step budget.
  void charge(uint64_t steps);
  // Throws when a string (list) about to be built would exceed the size budget.
  void check_string_size(size_t bytes) const;
  void check_list_size(size_t items) const;
  // str(value), within the size budget.
  std::string str(const Value& v) const;
  size_t max_string_bytes() const { return limits_.max_output_bytes; }
  Value call(const Value& callee, CallArgs args);
  // jinja2's sandboxed attribute and item lookup (obj.name, obj[key]).
  Value get_attr(const Value& obj, std::string_view name);
  Value get_item(const Value& obj, const Value& key);
  // The items a for loop (or list()) walks: list items, dict keys, string characters.
  std::vector<Value> iterate(const Value& v);
  std::tm now() const;

  // Called by macro values.
  Value call_macro(const MacroStmt& macro, const ScopePtr& closure, CallArgs args);

 private:
  enum class Flow { Normal, Break, Continue };

  Flow exec(const Body& body);
  Flow exec(const Stmt& stmt);
  Flow exec_for(const ForStmt& f);
  void assign(const Target& target, Value value);
  // Runs `body` into a string of its own (set blocks, filter blocks); `flow` reports a break or
  // continue inside it.
  std::string capture(const Body& body, Flow& flow);
  void write(std::string_view text);
  Value apply_filters(const std::vector<FilterCall>& filters, Value value);

  Value eval(const Expr& e);
  CallArgs eval_args(const Arguments& args);
  Value eval_call(const CallExpr& c);
  Value eval_slice(const Value& obj, const SliceExpr& s);

  RenderLimits limits_;
  std::optional<std::tm> now_;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  int nesting_ = 0;
  int line_ = 0;  // line of the node being evaluated, for error messages
  ScopePtr scope_;
  std::string* out_ = nullptr;
  // Scopes in which a macro was defined: macros point back at them, so they are cleared after the
  // render to break the reference cycle.
  std::vector<ScopePtr> macro_scopes_;

  friend struct NestingGuard;
};

// Filters and tests by name (jinja2's built-ins plus Hugging Face's tojson).
Value apply_filter(Interpreter& in, std::string_view name, Value input, CallArgs args);
bool apply_test(Interpreter& in, std::string_view name, const Value& input, CallArgs args);
bool has_filter(std::string_view name);
bool has_test(std::string_view name);

// Methods of str, dict and list that templates may call (startswith, split, items, get, ...).
bool has_method(const Value& self, std::string_view name);
Value call_method(Interpreter& in, const Value& self, std::string_view name, CallArgs args);

// Python binary operators and `in` (jinja2 evaluates these with Python semantics).
Value binary_op(Interpreter& in, BinaryOp op, const Value& a, const Value& b);
bool contains(const Value& container, const Value& item);
// printf-style formatting: "%s, %d" % args (str % and the format filter).
std::string percent_format(Interpreter& in, const std::string& format, const Value& args);

}  // namespace canopy::jinja
