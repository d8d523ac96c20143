// The global functions of Hugging Face's chat template environment: jinja2's range, dict,
// namespace, joiner, plus raise_exception and strftime_now.
#include <ctime>

#include "template/args.h"
#include "template/interpreter.h"
#include "template/py_text.h"
#include "template/template_error.h"

namespace canopy::jinja {

namespace {

bool holds_object(const Value& v) {
  if (v.is_object()) return true;
  if (v.is_list()) return std::any_of(v.items().begin(), v.items().end(), holds_object);
  if (v.is_dict())
    for (const auto& [k, val] : v.dict().entries())
      if (holds_object(val)) return true;
  return false;
}

// namespace(...): the one mutable object, so that loops can carry state out of their scope.
class Namespace : public Object {
 public:
  Value get_attr(std::string_view name) const override {
    if (const Value* v = attrs_.find(name)) return *v;
    return Value::undefined(fmt::format("'Namespace object' has no attribute '{}'", name));
  }

  void set_attr(std::string_view name, Value value) override {
    if (!name.empty() && name.front() == '_')
      render_fail("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '{}'. "
                  "Please rename the attribute.", name);
    // A namespace holding a namespace (or the loop variable) could come to hold itself; refusing
    // it keeps every value acyclic, so printing and freeing values always terminate.
    if (holds_object(value)) render_fail("a namespace attribute cannot hold a namespace or loop object");
    attrs_.set(Value::string(std::string(name)), std::move(value));
  }

  std::string repr() const override { return fmt::format("<Namespace {}>", to_repr(Value::dict(attrs_))); }
  std::string type_name() const override { return "Namespace"; }

 private:
  Dict attrs_;
};

// A plain function of the environment.
class Builtin : public Callable {
 public:
  using Fn = Value (*)(Interpreter&, CallArgs);
  Builtin(std::string name, Fn fn) : name_(std::move(name)), fn_(fn) {}
  Value call(Interpreter& in, CallArgs args) const override {
    in.charge(1);
    return fn_(in, std::move(args));
  }
  std::string repr() const override { return fmt::format("<function {}>", name_); }

 private:
  std::string name_;
  Fn fn_;
};

// dict(mapping_or_pairs, **kwargs), as Python builds it.
Dict build_dict(Interpreter& in, CallArgs args, std::string_view function) {
  Dict d;
  if (args.positional.size() > 1) render_fail("{} expected at most 1 argument, got {}", function, args.positional.size());
  if (!args.positional.empty()) {
    const Value& source = args.positional.front();
    if (source.is_dict()) {
      d = source.dict();
    } else {
      for (const Value& pair : in.iterate(source)) {
        const std::vector<Value> kv = in.iterate(pair);
        if (kv.size() != 2) render_fail("{}: each element must be a pair", function);
        d.set(kv[0], kv[1]);
      }
    }
  }
  for (auto& [k, v] : args.keyword) d.set(Value::string(k), std::move(v));
  return d;
}

constexpr int64_t kMaxRange = 100000;  // jinja2's sandbox limit

Value fn_range(Interpreter& in, CallArgs args) {
  if (!args.keyword.empty()) render_fail("range() takes no keyword arguments");
  const auto& p = args.positional;
  if (p.empty() || p.size() > 3) render_fail("range expected 1 to 3 arguments, got {}", p.size());
  for (const auto& v : p)
    if (!v.is_integral()) render_fail("'{}' object cannot be interpreted as an integer", v.type_name());
  int64_t start = 0, stop = 0, step = 1;
  if (p.size() == 1) {
    stop = p[0].as_int();
  } else {
    start = p[0].as_int();
    stop = p[1].as_int();
    if (p.size() == 3) step = p[2].as_int();
  }
  if (step == 0) render_fail("range() arg 3 must not be zero");
  const int64_t span = step > 0 ? stop - start : start - stop;
  const int64_t count = span <= 0 ? 0 : (span + (step > 0 ? step : -step) - 1) / (step > 0 ? step : -step);
  if (count > kMaxRange)
    render_fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE ({}).", kMaxRange);
  in.charge(static_cast<uint64_t>(count));
  std::vector<Value> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) out.push_back(Value::integer(start + i * step));
  return Value::list(std::move(out));
}

Value fn_namespace(Interpreter& in, CallArgs args) {
  Dict initial = build_dict(in, std::move(args), "namespace");
  auto ns = std::make_shared<Namespace>();
  for (const auto& [k, v] : initial.entries()) {
    if (!k.is_string()) render_fail("namespace attribute names must be strings");
    ns->set_attr(k.str(), v);
  }
  return Value::object(std::move(ns));
}

Value fn_dict(Interpreter& in, CallArgs args) { return Value::dict(build_dict(in, std::move(args), "dict")); }

Value fn_raise_exception(Interpreter& in, CallArgs args) {
  BoundArgs a("raise_exception", std::move(args), {"message"});
  throw ChatTemplateRaised(in.str(a.get(0)));
}

// Python's datetime.strftime on a naive local time: %f is microseconds (0 here), %z and %Z are
// empty (a naive datetime has no zone); the rest is the C library's strftime.
Value fn_strftime_now(Interpreter& in, CallArgs args) {
  BoundArgs a("strftime_now", std::move(args), {"format"});
  if (!a.get(0).is_string()) render_fail("strftime_now() argument must be str, not {}", a.get(0).type_name());
  const std::string& format = a.get(0).str();
  std::string expanded;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] == '%' && i + 1 < format.size()) {
      const char c = format[i + 1];
      if (c == 'f') {
        expanded += "000000";
        ++i;
        continue;
      }
      if (c == 'z' || c == 'Z') {
        ++i;
        continue;
      }
      expanded += format.substr(i, 2);
      ++i;
      continue;
    }
    expanded += format[i];
  }
  const std::tm now = in.now();
  std::string out(64 + expanded.size() * 8, '\0');
  in.check_string_size(out.size());
  const size_t n = expanded.empty() ? 0 : std::strftime(out.data(), out.size(), expanded.c_str(), &now);
  if (n == 0 && !expanded.empty()) render_fail("strftime_now(): the formatted date is too long");
  out.resize(n);
  return Value::string(std::move(out));
}

// joiner(sep=", "): returns "" the first time it is called and `sep` afterwards.
class Joiner : public Callable {
 public:
  explicit Joiner(std::string sep) : sep_(std::move(sep)) {}
  Value call(Interpreter&, CallArgs) const override {
    if (!used_) {
      used_ = true;
      return Value::string("");
    }
    return Value::string(sep_);
  }
  std::string repr() const override { return "<Joiner>"; }

 private:
  std::string sep_;
  mutable bool used_ = false;
};

Value fn_joiner(Interpreter& in, CallArgs args) {
  BoundArgs a("joiner", std::move(args), {"sep"});
  return Value::callable(std::make_shared<Joiner>(in.str(a.get(0, Value::string(", ")))));
}

}  // namespace

void add_builtins(Scope& scope) {
  auto add = [&](const char* name, Builtin::Fn fn) {
    scope.set(name, Value::callable(std::make_shared<Builtin>(name, fn)));
  };
  add("range", fn_range);
  add("namespace", fn_namespace);
  add("dict", fn_dict);
  add("joiner", fn_joiner);
  add("raise_exception", fn_raise_exception);
  add("strftime_now", fn_strftime_now);
}

}  // namespace canopy::jinja
