// The values a chat template computes with, modelled on the Python objects jinja2 sees.
//
// A template only ever reaches the data passed to it (JSON: null, booleans, numbers, strings,
// arrays, objects), what it builds from them, and a few built-ins: there is no attribute access to
// anything else, which is what makes the interpreter a sandbox. Values are immutable and cheap to
// copy (containers are shared); the only mutable objects are namespaces, as in jinja2.
//
// Python behaviour that templates depend on is kept: ints and floats are distinct, True == 1,
// dicts keep insertion order, lists and tuples print differently, and an undefined name is a value
// of its own (jinja2's Undefined) that prints as nothing and fails when used as an object.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/error.h"

namespace canopy::jinja {

class Value;
class Dict;
class Object;
class Callable;
class Interpreter;

// How a sequence prints: Python prints lists, tuples and dict views differently.
enum class ListKind : uint8_t { List, Tuple, DictItems, DictKeys, DictValues };

// Containers nest at most this deep, so that every recursive walk over a value (printing,
// comparing, JSON, destruction) has a bounded depth whatever the template does.
inline constexpr int kMaxValueDepth = 200;

struct ListData {
  std::vector<Value> items;
  ListKind kind = ListKind::List;
  int depth = 1;  // 1 + the deepest item's depth
};

// A failure while rendering (type errors, undefined values used as objects, budgets). The
// interpreter adds the template line before it reaches the caller.
class RenderError : public Error {
 public:
  explicit RenderError(const std::string& what) : Error(what) {}
};

template <typename... Args>
[[noreturn]] void render_fail(fmt::format_string<Args...> format, Args&&... args) {
  throw RenderError(fmt::format(format, std::forward<Args>(args)...));
}

class Value {
 public:
  enum class Type : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Object, Callable };

  Value() = default;  // undefined, with no reason recorded
  // An undefined value that remembers why it is undefined ("'x' is undefined", "'dict object' has
  // no attribute 'y'"): the message of the error raised if it is later used as an object.
  static Value undefined(std::string reason);
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value floating(double f);
  static Value string(std::string s);
  static Value list(std::vector<Value> items, ListKind kind = ListKind::List);
  static Value dict(Dict d);
  static Value object(std::shared_ptr<Object> o);
  static Value callable(std::shared_ptr<const Callable> c);

  Type type() const { return type_; }
  bool is_undefined() const { return type_ == Type::Undefined; }
  bool is_none() const { return type_ == Type::None; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_int() const { return type_ == Type::Int; }
  bool is_float() const { return type_ == Type::Float; }
  // Python's numbers: bool is an int subclass.
  bool is_number() const { return type_ == Type::Bool || type_ == Type::Int || type_ == Type::Float; }
  bool is_integral() const { return type_ == Type::Bool || type_ == Type::Int; }
  bool is_string() const { return type_ == Type::String; }
  bool is_list() const { return type_ == Type::List; }
  bool is_dict() const { return type_ == Type::Dict; }
  bool is_object() const { return type_ == Type::Object; }
  bool is_callable() const { return type_ == Type::Callable; }

  bool as_bool() const { return std::get<bool>(data_); }
  // For Bool and Int.
  int64_t as_int() const;
  // For any number.
  double as_float() const;
  const std::string& str() const { return *std::get<StrRef>(data_); }
  const ListData& list_data() const { return *std::get<ListRef>(data_); }
  const std::vector<Value>& items() const { return list_data().items; }
  ListKind list_kind() const { return list_data().kind; }
  const Dict& dict() const { return *std::get<DictRef>(data_); }
  Object& object() const { return *std::get<ObjRef>(data_); }
  const Callable& callable() const { return *std::get<CallRef>(data_); }
  const void* identity() const;  // for `is sameas` on containers and objects

  // Why this undefined value is undefined (empty when unknown).
  std::string undefined_reason() const;
  // Throws the UndefinedError jinja2 raises when an undefined value is used as an object.
  [[noreturn]] void fail_undefined() const;

  bool truthy() const;
  // Python's type name, for error messages: 'str', 'int', 'list', 'dict', 'NoneType', ...
  std::string type_name() const;
  // Container nesting depth: 0 for scalars, 1 for a flat list or dict.
  int depth() const;

 private:
  using StrRef = std::shared_ptr<const std::string>;
  using ListRef = std::shared_ptr<const ListData>;
  using DictRef = std::shared_ptr<const Dict>;
  using ObjRef = std::shared_ptr<Object>;
  using CallRef = std::shared_ptr<const Callable>;

  Type type_ = Type::Undefined;
  // Undefined keeps its reason as a StrRef (null when none).
  std::variant<std::monostate, bool, int64_t, double, StrRef, ListRef, DictRef, ObjRef, CallRef> data_;
};

// A Python dict: insertion-ordered, keyed by hashable values (strings, numbers, None, tuples).
class Dict {
 public:
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  // Inserts or replaces. Throws for unhashable keys (lists, dicts), as Python does.
  void set(Value key, Value value);
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const std::vector<std::pair<Value, Value>>& entries() const { return entries_; }
  int depth() const { return depth_; }

 private:
  std::vector<std::pair<Value, Value>> entries_;
  int depth_ = 1;
  std::map<std::string, size_t, std::less<>> string_keys_;  // index into entries_
};

// Objects with attributes and reference semantics: namespaces and the loop variable.
class Object {
 public:
  virtual ~Object() = default;
  // The attribute, or an undefined value naming it when absent.
  virtual Value get_attr(std::string_view name) const = 0;
  // Only namespaces accept assignment; others throw.
  virtual void set_attr(std::string_view name, Value value);
  virtual std::string repr() const = 0;
  virtual std::string type_name() const = 0;
  virtual bool truthy() const { return true; }
};

// Arguments of a call: positional, then keyword (in source order).
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// Macros, built-in functions and bound methods.
class Callable {
 public:
  virtual ~Callable() = default;
  virtual Value call(Interpreter& interp, CallArgs args) const = 0;
  virtual std::string repr() const = 0;
};

// Python's ==.
bool equal(const Value& a, const Value& b);
// Python's <, for numbers, strings and sequences; throws a TypeError-like RenderError otherwise.
bool less(const Value& a, const Value& b);
// str(value): what {{ value }} prints. Undefined prints as nothing. Throws RenderError when the
// text would exceed max_bytes (printing a large nested value can multiply its size).
std::string to_str(const Value& v, size_t max_bytes = SIZE_MAX);
// repr(value), as Python prints values nested in containers.
std::string to_repr(const Value& v, size_t max_bytes = SIZE_MAX);

// JSON in, with object key order kept. Strings must be valid UTF-8; integers must fit int64.
Value from_json(const nlohmann::ordered_json& j);

// json.dumps(value, ensure_ascii=..., indent=..., separators=..., sort_keys=...), as the
// `tojson` filter of Hugging Face's chat template environment calls it.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // absent: one line
  std::optional<std::pair<std::string, std::string>> separators;
  bool sort_keys = false;
  size_t max_bytes = SIZE_MAX;  // throws RenderError past this size
};
std::string to_json(const Value& v, const JsonDumpOptions& options);

}  // namespace canopy::jinja
