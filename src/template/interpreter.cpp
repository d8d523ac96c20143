#include "template/interpreter.h"

#include <algorithm>
#include <chrono>

#include "template/py_text.h"
#include "template/template_error.h"

namespace canopy::jinja {

// ---- scopes ----------------------------------------------------------------------------------

const Value* Scope::find(std::string_view name) const {
  for (const Scope* s = this; s != nullptr; s = s->parent.get())
    for (const auto& [key, value] : s->vars)
      if (key == name) return &value;
  return nullptr;
}

void Scope::set(std::string_view name, Value value) {
  for (auto& [key, v] : vars) {
    if (key == name) {
      v = std::move(value);
      return;
    }
  }
  vars.emplace_back(std::string(name), std::move(value));
}

// Bounds the recursion of eval/exec: every nested evaluation holds one of these.
struct NestingGuard {
  Interpreter& in;
  explicit NestingGuard(Interpreter& interp) : in(interp) {
    if (++in.nesting_ > in.limits_.max_nesting)
      render_fail("chat template evaluation nested more than {} levels deep", in.limits_.max_nesting);
  }
  ~NestingGuard() { --in.nesting_; }
  NestingGuard(const NestingGuard&) = delete;
  NestingGuard& operator=(const NestingGuard&) = delete;
};

namespace {

// The `loop` variable of one iteration of a for loop.
class LoopInfo : public Object {
 public:
  LoopInfo(std::shared_ptr<const std::vector<Value>> items, size_t index)
      : items_(std::move(items)), index_(index) {}
  void set_index(size_t index) { index_ = index; }

  Value get_attr(std::string_view name) const override {
    const auto n = static_cast<int64_t>(items_->size());
    const auto i = static_cast<int64_t>(index_);
    if (name == "index") return Value::integer(i + 1);
    if (name == "index0") return Value::integer(i);
    if (name == "revindex") return Value::integer(n - i);
    if (name == "revindex0") return Value::integer(n - i - 1);
    if (name == "first") return Value::boolean(i == 0);
    if (name == "last") return Value::boolean(i == n - 1);
    if (name == "length") return Value::integer(n);
    if (name == "depth") return Value::integer(1);
    if (name == "depth0") return Value::integer(0);
    if (name == "previtem")
      return i > 0 ? (*items_)[index_ - 1] : Value::undefined("there is no previous item");
    if (name == "nextitem")
      return i + 1 < n ? (*items_)[index_ + 1] : Value::undefined("there is no next item");
    if (name == "cycle") return Value::callable(std::make_shared<Cycle>(index_));
    return Value::undefined(fmt::format("'LoopContext object' has no attribute '{}'", name));
  }
  std::string repr() const override { return fmt::format("<LoopContext {}/{}>", index_ + 1, items_->size()); }
  std::string type_name() const override { return "LoopContext"; }

 private:
  // loop.cycle(a, b, ...): the argument at the iteration's index, round robin.
  class Cycle : public Callable {
   public:
    explicit Cycle(size_t index) : index_(index) {}
    Value call(Interpreter&, CallArgs args) const override {
      if (args.positional.empty()) render_fail("no items for cycling given");
      return args.positional[index_ % args.positional.size()];
    }
    std::string repr() const override { return "<bound method LoopContext.cycle>"; }

   private:
    size_t index_;
  };

  std::shared_ptr<const std::vector<Value>> items_;
  size_t index_;
};

class MacroValue : public Callable {
 public:
  MacroValue(const MacroStmt* macro, ScopePtr closure) : macro_(macro), closure_(std::move(closure)) {}
  Value call(Interpreter& in, CallArgs args) const override { return in.call_macro(*macro_, closure_, std::move(args)); }
  std::string repr() const override { return fmt::format("<Macro '{}'>", macro_->name); }

 private:
  const MacroStmt* macro_;
  ScopePtr closure_;
};

class BoundMethod : public Callable {
 public:
  BoundMethod(Value self, std::string name) : self_(std::move(self)), name_(std::move(name)) {}
  Value call(Interpreter& in, CallArgs args) const override { return call_method(in, self_, name_, std::move(args)); }
  std::string repr() const override {
    return fmt::format("<built-in method {} of {} object>", name_, self_.type_name());
  }

 private:
  Value self_;
  std::string name_;
};

// Python attributes that exist but that the immutable sandbox refuses (they mutate).
bool is_unsafe_method(const Value& obj, std::string_view name) {
  static constexpr std::string_view dict_methods[] = {"pop", "popitem", "setdefault", "update", "clear", "copy", "fromkeys"};
  static constexpr std::string_view list_methods[] = {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse", "copy"};
  if (obj.is_dict()) return std::find(std::begin(dict_methods), std::end(dict_methods), name) != std::end(dict_methods);
  if (obj.is_list()) return std::find(std::begin(list_methods), std::end(list_methods), name) != std::end(list_methods);
  return false;
}

// Methods of Python's str that canopy does not implement: named in the error instead of a
// misleading "has no attribute".
bool is_unsupported_str_method(std::string_view name) {
  static constexpr std::string_view names[] = {"encode", "expandtabs", "casefold", "translate", "maketrans", "format_map",
                                               "istitle", "isnumeric", "isdecimal", "isidentifier", "isprintable", "isascii"};
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

std::string object_description(const Value& obj) {
  return obj.is_none() ? std::string("None") : fmt::format("{} object", obj.type_name());
}

// Python's slice.indices(): normalised start, stop for a sequence of length n.
void adjust_slice(int64_t n, const std::optional<int64_t>& start_in, const std::optional<int64_t>& stop_in, int64_t step,
                  int64_t& start, int64_t& stop) {
  auto clamp = [&](const std::optional<int64_t>& v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < 0) x = step < 0 ? -1 : 0;
    } else if (x >= n) {
      x = step < 0 ? n - 1 : n;
    }
    return x;
  };
  start = clamp(start_in, step < 0 ? n - 1 : 0);
  stop = clamp(stop_in, step < 0 ? -1 : n);
}

}  // namespace

// ---- the interpreter -------------------------------------------------------------------------

Interpreter::Interpreter(const RenderLimits& limits, std::optional<std::tm> now) : limits_(limits), now_(now) {}

std::string Interpreter::render(const Body& body, const ScopePtr& globals) {
  std::string out;
  out_ = &out;
  scope_ = std::make_shared<Scope>(globals);
  // Macros hold their defining scope, and scopes hold macros: clear those scopes when done so
  // that nothing of this render outlives it.
  struct Cleanup {
    Interpreter& in;
    ~Cleanup() {
      for (auto& s : in.macro_scopes_) s->clear();
      in.macro_scopes_.clear();
      if (in.scope_) in.scope_->clear();
      in.scope_.reset();
      in.out_ = nullptr;
    }
  } cleanup{*this};
  try {
    exec(body);
  } catch (const ChatTemplateRaised&) {
    throw;
  } catch (const Error& e) {
    fail("chat template error: line {}: {}", line_, e.what());
  }
  return out;
}

void Interpreter::charge(uint64_t steps) {
  steps_ += steps;
  if (steps_ > limits_.max_steps)
    render_fail("chat template exceeded its budget of {} evaluation steps (a loop or recursion without end?)",
                limits_.max_steps);
}

void Interpreter::check_string_size(size_t bytes) const {
  if (bytes > limits_.max_output_bytes)
    render_fail("chat template built a string of {} bytes, over its budget of {} bytes", bytes, limits_.max_output_bytes);
}

void Interpreter::check_list_size(size_t items) const {
  if (items > limits_.max_list_items)
    render_fail("chat template built a list of {} items, over its budget of {} items", items, limits_.max_list_items);
}

std::string Interpreter::str(const Value& v) const { return to_str(v, limits_.max_output_bytes); }

std::tm Interpreter::now() const {
  if (now_) return *now_;
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm local{};
  localtime_r(&t, &local);
  return local;
}

void Interpreter::write(std::string_view text) {
  if (out_->size() + text.size() > limits_.max_output_bytes)
    render_fail("chat template output exceeds its budget of {} bytes", limits_.max_output_bytes);
  out_->append(text);
}

std::string Interpreter::capture(const Body& body, Flow& flow) {
  std::string buffer;
  std::string* saved = out_;
  out_ = &buffer;
  struct Restore {
    Interpreter& in;
    std::string* saved;
    ~Restore() { in.out_ = saved; }
  } restore{*this, saved};
  flow = exec(body);
  return buffer;
}

Interpreter::Flow Interpreter::exec(const Body& body) {
  for (const auto& stmt : body) {
    const Flow flow = exec(*stmt);
    if (flow != Flow::Normal) return flow;
  }
  return Flow::Normal;
}

Value Interpreter::apply_filters(const std::vector<FilterCall>& filters, Value value) {
  for (const FilterCall& f : filters) {
    line_ = f.line;
    value = apply_filter(*this, f.name, std::move(value), eval_args(f.args));
  }
  return value;
}

Interpreter::Flow Interpreter::exec(const Stmt& stmt) {
  charge(1);
  line_ = stmt.line;
  NestingGuard guard(*this);
  switch (stmt.node.index()) {
    case kStmtIndex<TextStmt>: write(std::get<TextStmt>(stmt.node).text); return Flow::Normal;
    case kStmtIndex<PrintStmt>: write(str(eval(*std::get<PrintStmt>(stmt.node).expr))); return Flow::Normal;
    case kStmtIndex<IfStmt>: {
      const auto& s = std::get<IfStmt>(stmt.node);
      for (const auto& [condition, body] : s.branches)
        if (eval(*condition).truthy()) return exec(body);
      return exec(s.else_body);
    }
    case kStmtIndex<ForStmt>: return exec_for(std::get<ForStmt>(stmt.node));
    case kStmtIndex<SetStmt>: {
      const auto& s = std::get<SetStmt>(stmt.node);
      assign(s.target, eval(*s.value));
      return Flow::Normal;
    }
    case kStmtIndex<SetBlockStmt>: {
      const auto& s = std::get<SetBlockStmt>(stmt.node);
      Flow flow = Flow::Normal;
      Value v = Value::string(capture(s.body, flow));
      assign(s.target, apply_filters(s.filters, std::move(v)));
      return flow;
    }
    case kStmtIndex<MacroStmt>: {
      const auto& m = std::get<MacroStmt>(stmt.node);
      scope_->set(m.name, Value::callable(std::make_shared<MacroValue>(&m, scope_)));
      if (macro_scopes_.empty() || macro_scopes_.back() != scope_) macro_scopes_.push_back(scope_);
      return Flow::Normal;
    }
    case kStmtIndex<FilterBlockStmt>: {
      const auto& s = std::get<FilterBlockStmt>(stmt.node);
      Flow flow = Flow::Normal;
      Value v = Value::string(capture(s.body, flow));
      write(str(apply_filters(s.filters, std::move(v))));
      return flow;
    }
    case kStmtIndex<WithStmt>: {
      const auto& s = std::get<WithStmt>(stmt.node);
      auto inner = std::make_shared<Scope>(scope_);
      for (const auto& [name, expr] : s.assignments) inner->set(name, eval(*expr));
      ScopePtr saved = scope_;
      scope_ = inner;
      const Flow flow = exec(s.body);
      scope_ = saved;
      return flow;
    }
    case kStmtIndex<BreakStmt>: return Flow::Break;
    case kStmtIndex<ContinueStmt>: return Flow::Continue;
    case kStmtIndex<BlockStmt>: return exec(std::get<BlockStmt>(stmt.node).body);
    default: break;
  }
  CANOPY_ASSERT(false);
}

Interpreter::Flow Interpreter::exec_for(const ForStmt& f) {
  std::vector<Value> items = iterate(eval(*f.iterable));
  charge(items.size());
  const ScopePtr outer = scope_;
  struct Restore {
    Interpreter& in;
    ScopePtr outer;
    ~Restore() { in.scope_ = outer; }
  } restore{*this, outer};
  if (f.condition) {
    std::vector<Value> kept;
    for (auto& item : items) {
      scope_ = std::make_shared<Scope>(outer);
      assign(f.target, item);
      const bool keep = eval(*f.condition).truthy();
      scope_ = outer;
      if (keep) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) return exec(f.else_body);
  const auto shared_items = std::make_shared<const std::vector<Value>>(std::move(items));
  // One scope and one loop object serve every iteration unless the body kept a reference to
  // them (a macro defined in the loop keeps its scope): then the next iteration gets new ones.
  ScopePtr iteration;
  std::shared_ptr<LoopInfo> loop;
  for (size_t i = 0; i < shared_items->size(); ++i) {
    if (iteration && iteration.use_count() == 1) {
      iteration->clear();
    } else {
      iteration = std::make_shared<Scope>(outer);
    }
    if (loop && loop.use_count() == 1) {
      loop->set_index(i);
    } else {
      loop = std::make_shared<LoopInfo>(shared_items, i);
    }
    scope_ = iteration;
    assign(f.target, (*shared_items)[i]);
    scope_->set("loop", Value::object(loop));
    const Flow flow = exec(f.body);
    scope_ = outer;
    if (flow == Flow::Break) break;
  }
  return Flow::Normal;
}

void Interpreter::assign(const Target& target, Value value) {
  if (!target.attr.empty()) {
    const Value* ns = scope_->find(target.names.front());
    if (ns == nullptr || !ns->is_object())
      render_fail("cannot assign attribute '{}' on '{}': it is not a namespace", target.attr, target.names.front());
    ns->object().set_attr(target.attr, std::move(value));
    return;
  }
  if (!target.tuple) {
    scope_->set(target.names.front(), std::move(value));
    return;
  }
  std::vector<Value> parts = iterate(value);
  if (parts.size() > target.names.size())
    render_fail("too many values to unpack (expected {})", target.names.size());
  if (parts.size() < target.names.size())
    render_fail("not enough values to unpack (expected {}, got {})", target.names.size(), parts.size());
  for (size_t i = 0; i < parts.size(); ++i) scope_->set(target.names[i], std::move(parts[i]));
}

Value Interpreter::call_macro(const MacroStmt& macro, const ScopePtr& closure, CallArgs args) {
  if (call_depth_ >= limits_.max_call_depth)
    render_fail("macro '{}' called recursively more than {} levels deep", macro.name, limits_.max_call_depth);
  ++call_depth_;
  auto scope = std::make_shared<Scope>(closure);
  scope->vars.reserve(macro.params.size() + 2);
  std::vector<bool> bound(macro.params.size(), false);
  std::vector<Value> varargs;
  for (size_t i = 0; i < args.positional.size(); ++i) {
    if (i < macro.params.size()) {
      scope->set(macro.params[i].name, std::move(args.positional[i]));
      bound[i] = true;
    } else if (macro.catches_varargs) {
      varargs.push_back(std::move(args.positional[i]));
    } else {
      render_fail("macro '{}' takes not more than {} argument(s)", macro.name, macro.params.size());
    }
  }
  Dict kwargs;
  for (auto& keyword : args.keyword) {
    const std::string& key = keyword.first;
    Value& value = keyword.second;
    auto it = std::find_if(macro.params.begin(), macro.params.end(), [&](const MacroParam& p) { return p.name == key; });
    if (it == macro.params.end()) {
      if (!macro.catches_kwargs) render_fail("macro '{}' takes no keyword argument '{}'", macro.name, key);
      kwargs.set(Value::string(key), std::move(value));
      continue;
    }
    const auto index = static_cast<size_t>(it - macro.params.begin());
    if (bound[index]) render_fail("macro '{}' got multiple values for argument '{}'", macro.name, key);
    scope->set(key, std::move(value));
    bound[index] = true;
  }
  // Like jinja2, `varargs` and `kwargs` exist only in macros that mention them.
  if (macro.catches_varargs) scope->set("varargs", Value::list(std::move(varargs), ListKind::Tuple));
  if (macro.catches_kwargs) scope->set("kwargs", Value::dict(std::move(kwargs)));

  const ScopePtr saved_scope = scope_;
  std::string* saved_out = out_;
  std::string buffer;
  struct Restore {
    Interpreter& in;
    ScopePtr scope;
    std::string* out;
    ~Restore() {
      in.scope_ = scope;
      in.out_ = out;
      --in.call_depth_;
    }
  } restore{*this, saved_scope, saved_out};
  scope_ = scope;
  // Defaults are evaluated at call time, in the macro's scope, so they can use earlier parameters.
  for (size_t i = 0; i < macro.params.size(); ++i) {
    if (bound[i]) continue;
    const MacroParam& p = macro.params[i];
    scope->set(p.name, p.default_value ? eval(*p.default_value)
                                       : Value::undefined(fmt::format("parameter '{}' was not provided", p.name)));
  }
  out_ = &buffer;
  exec(macro.body);
  return Value::string(std::move(buffer));
}

// ---- lookups ---------------------------------------------------------------------------------

Value Interpreter::call(const Value& callee, CallArgs args) {
  if (callee.is_callable()) return callee.callable().call(*this, std::move(args));
  if (callee.is_undefined()) callee.fail_undefined();
  render_fail("'{}' object is not callable", callee.type_name());
}

Value Interpreter::get_attr(const Value& obj, std::string_view name) {
  switch (obj.type()) {
    case Value::Type::Undefined: obj.fail_undefined();
    case Value::Type::Object: return obj.object().get_attr(name);
    case Value::Type::String:
    case Value::Type::Dict:
    case Value::Type::List: {
      if (has_method(obj, name)) return Value::callable(std::make_shared<BoundMethod>(obj, std::string(name)));
      if (is_unsafe_method(obj, name))
        return Value::undefined(fmt::format("access to attribute '{}' of '{}' object is unsafe.", name, obj.type_name()));
      if (obj.is_string() && is_unsupported_str_method(name))
        return Value::undefined(fmt::format("str.{}() is not supported in canopy's chat templates", name));
      if (obj.is_dict()) {
        if (const Value* v = obj.dict().find(name)) return *v;
      }
      break;
    }
    default: break;
  }
  return Value::undefined(fmt::format("'{}' has no attribute '{}'", object_description(obj), name));
}

Value Interpreter::get_item(const Value& obj, const Value& key) {
  switch (obj.type()) {
    case Value::Type::Undefined: obj.fail_undefined();
    case Value::Type::Dict:
      // An unhashable key (a list) just finds nothing, as jinja2 turns Python's TypeError into
      // an undefined value.
      if (const Value* v = obj.dict().find(key)) return *v;
      break;
    case Value::Type::List:
    case Value::Type::String:
      if (key.is_integral() && (obj.is_string() || obj.list_kind() == ListKind::List || obj.list_kind() == ListKind::Tuple)) {
        int64_t i = key.as_int();
        if (obj.is_list()) {
          const auto n = static_cast<int64_t>(obj.items().size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) return obj.items()[static_cast<size_t>(i)];
        } else {
          const std::string& s = obj.str();
          if (py::is_ascii(s)) {
            const auto n = static_cast<int64_t>(s.size());
            if (i < 0) i += n;
            if (i >= 0 && i < n) return Value::string(std::string(1, s[static_cast<size_t>(i)]));
          } else {
            const std::u32string text = py::decode(s);
            const auto n = static_cast<int64_t>(text.size());
            if (i < 0) i += n;
            if (i >= 0 && i < n) return Value::string(py::encode(std::u32string_view(text).substr(static_cast<size_t>(i), 1)));
          }
        }
        return Value::undefined(fmt::format("{} has no element {}", object_description(obj), key.as_int()));
      }
      break;
    default: break;
  }
  // jinja2 falls back to attribute lookup for string keys (so ns['x'] and d['items'] work).
  if (key.is_string()) return get_attr(obj, key.str());
  return Value::undefined(fmt::format("{} has no element {}", object_description(obj), to_repr(key)));
}

std::vector<Value> Interpreter::iterate(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined: return {};
    case Value::Type::List: return v.items();
    case Value::Type::Dict: {
      std::vector<Value> keys;
      keys.reserve(v.dict().size());
      for (const auto& [k, val] : v.dict().entries()) keys.push_back(k);
      return keys;
    }
    case Value::Type::String: {
      std::vector<Value> chars;
      const std::string& s = v.str();
      size_t pos = 0;
      while (pos < s.size()) {
        const size_t start = pos;
        py::next_code_point(s, pos);
        chars.push_back(Value::string(s.substr(start, pos - start)));
      }
      charge(chars.size());
      return chars;
    }
    default: break;
  }
  render_fail("'{}' object is not iterable", v.type_name());
}

// ---- expressions -----------------------------------------------------------------------------

CallArgs Interpreter::eval_args(const Arguments& args) {
  CallArgs out;
  out.positional.reserve(args.positional.size());
  for (const auto& e : args.positional) out.positional.push_back(eval(*e));
  if (args.star_args) {
    const Value extra = eval(*args.star_args);
    if (!extra.is_list()) render_fail("argument after * must be a list or tuple, not {}", extra.type_name());
    for (const auto& item : extra.items()) out.positional.push_back(item);
  }
  for (const auto& [name, e] : args.keyword) out.keyword.emplace_back(name, eval(*e));
  if (args.star_kwargs) {
    const Value extra = eval(*args.star_kwargs);
    if (!extra.is_dict()) render_fail("argument after ** must be a mapping, not {}", extra.type_name());
    for (const auto& [k, v] : extra.dict().entries()) {
      if (!k.is_string()) render_fail("keywords must be strings");
      out.keyword.emplace_back(k.str(), v);
    }
  }
  return out;
}

Value Interpreter::eval_call(const CallExpr& c) {
  if (const auto* attr = std::get_if<AttrExpr>(&c.callee->node)) {
    // obj.method(args): call the method directly instead of building a bound method value.
    const Value obj = eval(*attr->object);
    if ((obj.is_string() || obj.is_dict() || obj.is_list()) && has_method(obj, attr->attr))
      return call_method(*this, obj, attr->attr, eval_args(c.args));
    const Value callee = get_attr(obj, attr->attr);
    return call(callee, eval_args(c.args));
  }
  const Value callee = eval(*c.callee);
  return call(callee, eval_args(c.args));
}

Value Interpreter::eval_slice(const Value& obj, const SliceExpr& s) {
  auto bound = [&](const ExprPtr& e) -> std::optional<int64_t> {
    if (!e) return std::nullopt;
    const Value v = eval(*e);
    if (v.is_none()) return std::nullopt;
    if (!v.is_integral()) render_fail("slice indices must be integers or None");
    return v.as_int();
  };
  const auto start_in = bound(s.start);
  const auto stop_in = bound(s.stop);
  const auto step_in = bound(s.step);
  const int64_t step = step_in.value_or(1);
  if (step == 0) render_fail("slice step cannot be zero");
  if (obj.is_undefined()) obj.fail_undefined();
  auto pick = [&](int64_t n, auto&& take) {
    int64_t start = 0;
    int64_t stop = 0;
    adjust_slice(n, start_in, stop_in, step, start, stop);
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) take(static_cast<size_t>(i));
  };
  if (obj.is_list() && (obj.list_kind() == ListKind::List || obj.list_kind() == ListKind::Tuple)) {
    std::vector<Value> out;
    pick(static_cast<int64_t>(obj.items().size()), [&](size_t i) { out.push_back(obj.items()[i]); });
    charge(out.size());
    return Value::list(std::move(out), obj.list_kind());
  }
  if (obj.is_string()) {
    const std::u32string text = py::decode(obj.str());
    std::u32string out;
    pick(static_cast<int64_t>(text.size()), [&](size_t i) { out.push_back(text[i]); });
    charge(text.size() / 16);
    return Value::string(py::encode(out));
  }
  render_fail("'{}' object is not subscriptable", obj.type_name());
}

namespace {

bool compare(CompareOp op, const Value& a, const Value& b) {
  switch (op) {
    case CompareOp::Eq: return equal(a, b);
    case CompareOp::Ne: return !equal(a, b);
    case CompareOp::Lt: return less(a, b);
    case CompareOp::Gt: return less(b, a);
    case CompareOp::Le: return less(a, b) || equal(a, b);
    case CompareOp::Ge: return less(b, a) || equal(a, b);
    case CompareOp::In: return contains(b, a);
    case CompareOp::NotIn: return !contains(b, a);
  }
  return false;
}

}  // namespace

Value Interpreter::eval(const Expr& e) {
  charge(1);
  line_ = e.line;
  NestingGuard guard(*this);
  switch (e.node.index()) {
    case kExprIndex<ConstExpr>: return std::get<ConstExpr>(e.node).value;
    case kExprIndex<NameExpr>: {
      const auto& name = std::get<NameExpr>(e.node).name;
      if (const Value* v = scope_->find(name)) return *v;
      return Value::undefined(fmt::format("'{}' is undefined", name));
    }
    case kExprIndex<ListExpr>: {
      const auto& n = std::get<ListExpr>(e.node);
      std::vector<Value> items;
      items.reserve(n.items.size());
      for (const auto& item : n.items) items.push_back(eval(*item));
      return Value::list(std::move(items), n.tuple ? ListKind::Tuple : ListKind::List);
    }
    case kExprIndex<DictExpr>: {
      Dict d;
      for (const auto& [k, v] : std::get<DictExpr>(e.node).items) {
        Value key = eval(*k);
        d.set(std::move(key), eval(*v));
      }
      return Value::dict(std::move(d));
    }
    case kExprIndex<AttrExpr>: {
      const auto& n = std::get<AttrExpr>(e.node);
      const Value obj = eval(*n.object);
      return get_attr(obj, n.attr);
    }
    case kExprIndex<ItemExpr>: {
      const auto& n = std::get<ItemExpr>(e.node);
      const Value obj = eval(*n.object);
      if (const auto* slice = std::get_if<SliceExpr>(&n.key->node)) return eval_slice(obj, *slice);
      return get_item(obj, eval(*n.key));
    }
    case kExprIndex<SliceExpr>: render_fail("a slice can only be used as a subscript");
    case kExprIndex<CallExpr>: return eval_call(std::get<CallExpr>(e.node));
    case kExprIndex<FilterExpr>: {
      const auto& n = std::get<FilterExpr>(e.node);
      Value input = eval(*n.operand);
      CallArgs args = eval_args(n.args);
      line_ = e.line;
      return apply_filter(*this, n.name, std::move(input), std::move(args));
    }
    case kExprIndex<TestExpr>: {
      const auto& n = std::get<TestExpr>(e.node);
      const Value input = eval(*n.operand);
      CallArgs args = eval_args(n.args);
      line_ = e.line;
      return Value::boolean(apply_test(*this, n.name, input, std::move(args)));
    }
    case kExprIndex<UnaryExpr>: {
      const auto& n = std::get<UnaryExpr>(e.node);
      const Value v = eval(*n.operand);
      if (n.op == UnaryOp::Not) return Value::boolean(!v.truthy());
      if (v.is_undefined()) v.fail_undefined();
      if (v.is_float()) return Value::floating(n.op == UnaryOp::Neg ? -v.as_float() : v.as_float());
      if (v.is_integral()) {
        if (n.op == UnaryOp::Pos) return Value::integer(v.as_int());
        if (v.as_int() == INT64_MIN) render_fail("integer overflow");
        return Value::integer(-v.as_int());
      }
      render_fail("bad operand type for unary {}: '{}'", n.op == UnaryOp::Neg ? '-' : '+', v.type_name());
    }
    case kExprIndex<BinaryExpr>: {
      const auto& n = std::get<BinaryExpr>(e.node);
      if (n.op == BinaryOp::And || n.op == BinaryOp::Or) {
        Value left = eval(*n.left);
        if (left.truthy() == (n.op == BinaryOp::Or)) return left;
        return eval(*n.right);
      }
      const Value left = eval(*n.left);
      const Value right = eval(*n.right);
      line_ = e.line;
      return binary_op(*this, n.op, left, right);
    }
    case kExprIndex<CompareExpr>: {
      const auto& n = std::get<CompareExpr>(e.node);
      Value left = eval(*n.first);
      for (const auto& [op, expr] : n.rest) {
        Value right = eval(*expr);
        if (!compare(op, left, right)) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case kExprIndex<CondExpr>: {
      const auto& n = std::get<CondExpr>(e.node);
      if (eval(*n.condition).truthy()) return eval(*n.then);
      if (n.otherwise) return eval(*n.otherwise);
      return Value::undefined("the inline if-expression evaluated to false and no else section was defined.");
    }
    case kExprIndex<ConcatExpr>: {
      std::string s;
      for (const auto& part : std::get<ConcatExpr>(e.node).parts) {
        const std::string piece = str(eval(*part));
        check_string_size(s.size() + piece.size());
        s += piece;
      }
      return Value::string(std::move(s));
    }
    default: break;
  }
  CANOPY_ASSERT(false);
}

}  // namespace canopy::jinja
