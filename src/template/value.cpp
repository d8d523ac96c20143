#include "template/value.h"

#include <algorithm>
#include <cmath>

#include "template/py_text.h"

namespace canopy::jinja {

// ---- construction ----------------------------------------------------------------------------

Value Value::undefined(std::string reason) {
  Value v;
  v.data_ = std::make_shared<const std::string>(std::move(reason));
  return v;
}

Value Value::none() {
  Value v;
  v.type_ = Type::None;
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.type_ = Type::Bool;
  v.data_ = b;
  return v;
}

Value Value::integer(int64_t i) {
  Value v;
  v.type_ = Type::Int;
  v.data_ = i;
  return v;
}

Value Value::floating(double f) {
  Value v;
  v.type_ = Type::Float;
  v.data_ = f;
  return v;
}

Value Value::string(std::string s) {
  Value v;
  v.type_ = Type::String;
  v.data_ = std::make_shared<const std::string>(std::move(s));
  return v;
}

Value Value::list(std::vector<Value> items, ListKind kind) {
  int depth = 0;
  for (const auto& item : items) depth = std::max(depth, item.depth());
  if (depth + 1 > kMaxValueDepth) render_fail("values nested more than {} levels deep", kMaxValueDepth);
  Value v;
  v.type_ = Type::List;
  v.data_ = std::make_shared<const ListData>(ListData{std::move(items), kind, depth + 1});
  return v;
}

Value Value::dict(Dict d) {
  if (d.depth() > kMaxValueDepth) render_fail("values nested more than {} levels deep", kMaxValueDepth);
  Value v;
  v.type_ = Type::Dict;
  v.data_ = std::make_shared<const Dict>(std::move(d));
  return v;
}

Value Value::object(std::shared_ptr<Object> o) {
  Value v;
  v.type_ = Type::Object;
  v.data_ = std::move(o);
  return v;
}

Value Value::callable(std::shared_ptr<const Callable> c) {
  Value v;
  v.type_ = Type::Callable;
  v.data_ = std::move(c);
  return v;
}

// ---- accessors -------------------------------------------------------------------------------

int64_t Value::as_int() const {
  if (type_ == Type::Bool) return std::get<bool>(data_) ? 1 : 0;
  return std::get<int64_t>(data_);
}

double Value::as_float() const {
  if (type_ == Type::Float) return std::get<double>(data_);
  return static_cast<double>(as_int());
}

const void* Value::identity() const {
  switch (type_) {
    case Type::String: return std::get<StrRef>(data_).get();
    case Type::List: return std::get<ListRef>(data_).get();
    case Type::Dict: return std::get<DictRef>(data_).get();
    case Type::Object: return std::get<ObjRef>(data_).get();
    case Type::Callable: return std::get<CallRef>(data_).get();
    default: return nullptr;
  }
}

std::string Value::undefined_reason() const {
  if (type_ != Type::Undefined) return "";
  if (const auto* s = std::get_if<StrRef>(&data_); s != nullptr && *s != nullptr) return **s;
  return "";
}

void Value::fail_undefined() const {
  const std::string reason = undefined_reason();
  render_fail("{}", reason.empty() ? std::string("value is undefined") : reason);
}

bool Value::truthy() const {
  switch (type_) {
    case Type::Undefined:
    case Type::None: return false;
    case Type::Bool: return as_bool();
    case Type::Int: return std::get<int64_t>(data_) != 0;
    case Type::Float: return std::get<double>(data_) != 0.0;
    case Type::String: return !str().empty();
    case Type::List: return !items().empty();
    case Type::Dict: return !dict().empty();
    case Type::Object: return object().truthy();
    case Type::Callable: return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (type_) {
    case Type::Undefined: return "Undefined";
    case Type::None: return "NoneType";
    case Type::Bool: return "bool";
    case Type::Int: return "int";
    case Type::Float: return "float";
    case Type::String: return "str";
    case Type::List:
      switch (list_kind()) {
        case ListKind::List: return "list";
        case ListKind::Tuple: return "tuple";
        case ListKind::DictItems: return "dict_items";
        case ListKind::DictKeys: return "dict_keys";
        case ListKind::DictValues: return "dict_values";
      }
      return "list";
    case Type::Dict: return "dict";
    case Type::Object: return object().type_name();
    case Type::Callable: return "function";
  }
  return "object";
}

int Value::depth() const {
  switch (type_) {
    case Type::List: return list_data().depth;
    case Type::Dict: return dict().depth();
    case Type::Object: return 1;
    default: return 0;
  }
}

// ---- Dict ------------------------------------------------------------------------------------

namespace {

bool hashable(const Value& v) {
  switch (v.type()) {
    case Value::Type::List:
      if (v.list_kind() != ListKind::Tuple) return false;
      return std::all_of(v.items().begin(), v.items().end(), hashable);
    case Value::Type::Dict:
    case Value::Type::Object: return false;
    default: return true;
  }
}

}  // namespace

const Value* Dict::find(std::string_view key) const {
  auto it = string_keys_.find(key);
  return it == string_keys_.end() ? nullptr : &entries_[it->second].second;
}

const Value* Dict::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.str()));
  for (const auto& [k, v] : entries_)
    if (!k.is_string() && equal(k, key)) return &v;
  return nullptr;
}

void Dict::set(Value key, Value value) {
  if (!hashable(key)) render_fail("unhashable type: '{}'", key.type_name());
  depth_ = std::max(depth_, value.depth() + 1);
  if (key.is_string()) {
    auto it = string_keys_.find(std::string_view(key.str()));
    if (it != string_keys_.end()) {
      entries_[it->second].second = std::move(value);
      return;
    }
    string_keys_.emplace(key.str(), entries_.size());
    entries_.emplace_back(std::move(key), std::move(value));
    return;
  }
  for (auto& [k, v] : entries_) {
    if (!k.is_string() && equal(k, key)) {
      v = std::move(value);
      return;
    }
  }
  entries_.emplace_back(std::move(key), std::move(value));
}

void Object::set_attr(std::string_view name, Value) {
  render_fail("cannot assign attribute '{}' of a '{}' object", name, type_name());
}

// ---- comparison ------------------------------------------------------------------------------

namespace {

// Dict views compare like sets in Python; lists and tuples never equal each other.
bool same_sequence_kind(ListKind a, ListKind b) {
  if (a == b) return a != ListKind::DictValues;
  return false;
}

}  // namespace

bool equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() == b.as_int();
    return a.as_float() == b.as_float();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Value::Type::Undefined:
    case Value::Type::None: return true;
    case Value::Type::String: return a.str() == b.str();
    case Value::Type::List: {
      if (a.identity() == b.identity()) return true;
      if (!same_sequence_kind(a.list_kind(), b.list_kind())) return false;
      const auto& x = a.items();
      const auto& y = b.items();
      if (x.size() != y.size()) return false;
      if (a.list_kind() == ListKind::DictKeys || a.list_kind() == ListKind::DictItems) {
        // Set semantics: every element of one is in the other.
        for (const auto& item : x)
          if (std::none_of(y.begin(), y.end(), [&](const Value& o) { return equal(item, o); })) return false;
        return true;
      }
      for (size_t i = 0; i < x.size(); ++i)
        if (!equal(x[i], y[i])) return false;
      return true;
    }
    case Value::Type::Dict: {
      const Dict& x = a.dict();
      const Dict& y = b.dict();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.entries()) {
        const Value* other = y.find(k);
        if (other == nullptr || !equal(v, *other)) return false;
      }
      return true;
    }
    default: return a.identity() == b.identity();
  }
}

bool less(const Value& a, const Value& b) {
  if (a.is_undefined()) a.fail_undefined();
  if (b.is_undefined()) b.fail_undefined();
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() < b.as_int();
    return a.as_float() < b.as_float();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8 order is code point order
  if (a.is_list() && b.is_list() && a.list_kind() == b.list_kind() &&
      (a.list_kind() == ListKind::List || a.list_kind() == ListKind::Tuple)) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equal(x[i], y[i])) continue;
      return less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  render_fail("'<' not supported between instances of '{}' and '{}'", a.type_name(), b.type_name());
}

// ---- printing --------------------------------------------------------------------------------

namespace {

void check_size(const std::string& out, size_t max_bytes) {
  if (out.size() > max_bytes) render_fail("printing a value would take more than {} bytes", max_bytes);
}

void append_repr(std::string& out, const Value& v, size_t max_bytes);

void append_sequence(std::string& out, const std::vector<Value>& items, const char* open, const char* close,
                     bool one_tuple, size_t max_bytes) {
  out += open;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    append_repr(out, items[i], max_bytes);
    check_size(out, max_bytes);
  }
  if (one_tuple && items.size() == 1) out += ",";
  out += close;
}

void append_repr(std::string& out, const Value& v, size_t max_bytes) {
  switch (v.type()) {
    case Value::Type::Undefined: out += "Undefined"; return;
    case Value::Type::String: out += py::repr(v.str()); return;
    case Value::Type::List:
      switch (v.list_kind()) {
        case ListKind::List: append_sequence(out, v.items(), "[", "]", false, max_bytes); return;
        case ListKind::Tuple: append_sequence(out, v.items(), "(", ")", true, max_bytes); return;
        case ListKind::DictItems: append_sequence(out, v.items(), "dict_items([", "])", false, max_bytes); return;
        case ListKind::DictKeys: append_sequence(out, v.items(), "dict_keys([", "])", false, max_bytes); return;
        case ListKind::DictValues: append_sequence(out, v.items(), "dict_values([", "])", false, max_bytes); return;
      }
      return;
    case Value::Type::Dict: {
      out += "{";
      bool first = true;
      for (const auto& [k, val] : v.dict().entries()) {
        if (!first) out += ", ";
        first = false;
        append_repr(out, k, max_bytes);
        out += ": ";
        append_repr(out, val, max_bytes);
        check_size(out, max_bytes);
      }
      out += "}";
      return;
    }
    default: out += to_str(v); return;
  }
}

}  // namespace

std::string to_str(const Value& v, size_t max_bytes) {
  switch (v.type()) {
    case Value::Type::Undefined: return "";
    case Value::Type::None: return "None";
    case Value::Type::Bool: return v.as_bool() ? "True" : "False";
    case Value::Type::Int: return std::to_string(v.as_int());
    case Value::Type::Float: return py::float_repr(v.as_float());
    case Value::Type::String: return v.str();
    case Value::Type::Object: return v.object().repr();
    case Value::Type::Callable: return v.callable().repr();
    case Value::Type::List:
    case Value::Type::Dict: {
      std::string out;
      append_repr(out, v, max_bytes);
      check_size(out, max_bytes);
      return out;
    }
  }
  return "";
}

std::string to_repr(const Value& v, size_t max_bytes) {
  std::string out;
  append_repr(out, v, max_bytes);
  check_size(out, max_bytes);
  return out;
}

// ---- JSON ------------------------------------------------------------------------------------

namespace {

Value from_json_at(const nlohmann::ordered_json& j, int depth) {
  if (depth > kMaxValueDepth) fail("JSON input nested more than {} levels deep", kMaxValueDepth);
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::none();
    case nlohmann::ordered_json::value_t::boolean: return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const auto u = j.get<uint64_t>();
      CANOPY_CHECK(u <= static_cast<uint64_t>(INT64_MAX), "JSON integer {} is too large (chat templates take 64-bit integers)", u);
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value::floating(j.get<double>());
    case nlohmann::ordered_json::value_t::string: {
      const auto& s = j.get_ref<const std::string&>();
      CANOPY_CHECK(py::is_valid_utf8(s), "JSON string is not valid UTF-8");
      return Value::string(s);
    }
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& item : j) items.push_back(from_json_at(item, depth + 1));
      return Value::list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict d;
      for (const auto& [k, item] : j.items()) {
        CANOPY_CHECK(py::is_valid_utf8(k), "JSON object key is not valid UTF-8");
        d.set(Value::string(k), from_json_at(item, depth + 1));
      }
      return Value::dict(std::move(d));
    }
    default: fail("unsupported JSON value (binary data) in chat template input");
  }
}

void append_json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out.push_back('"');
  size_t pos = 0;
  char buf[16];
  while (pos < s.size()) {
    const char32_t c = py::next_code_point(s, pos);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (c < 0x20) {
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else if (c < 0x7F || !ensure_ascii) {
      py::append_utf8(out, c);
    } else if (c <= 0xFFFF) {
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      const char32_t v = c - 0x10000;
      std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 | (v >> 10)),
                    static_cast<unsigned>(0xDC00 | (v & 0x3FF)));
      out += buf;
    }
  }
  out.push_back('"');
}

std::string json_float(double f) {
  if (std::isnan(f)) return "NaN";
  if (std::isinf(f)) return f < 0 ? "-Infinity" : "Infinity";
  return py::float_repr(f);
}

struct JsonWriter {
  const JsonDumpOptions& options;
  std::string item_separator;
  std::string key_separator;
  std::string out;

  void newline(int level) {
    if (!options.indent) return;
    out.push_back('\n');
    for (int i = 0; i < level; ++i) out += *options.indent;
  }

  void key(const Value& k) {
    switch (k.type()) {
      case Value::Type::String: append_json_string(out, k.str(), options.ensure_ascii); return;
      case Value::Type::Bool: out += k.as_bool() ? "\"true\"" : "\"false\""; return;
      case Value::Type::Int: out += fmt::format("\"{}\"", k.as_int()); return;
      case Value::Type::Float: out += fmt::format("\"{}\"", json_float(k.as_float())); return;
      case Value::Type::None: out += "\"null\""; return;
      default: render_fail("keys must be str, int, float, bool or None, not {}", k.type_name());
    }
  }

  void write(const Value& v, int level) {
    switch (v.type()) {
      case Value::Type::None: out += "null"; return;
      case Value::Type::Bool: out += v.as_bool() ? "true" : "false"; return;
      case Value::Type::Int: out += std::to_string(v.as_int()); return;
      case Value::Type::Float: out += json_float(v.as_float()); return;
      case Value::Type::String: append_json_string(out, v.str(), options.ensure_ascii); return;
      case Value::Type::List: {
        if (v.list_kind() != ListKind::List && v.list_kind() != ListKind::Tuple) break;
        const auto& items = v.items();
        if (items.empty()) {
          out += "[]";
          return;
        }
        out.push_back('[');
        for (size_t i = 0; i < items.size(); ++i) {
          if (i > 0) out += item_separator;
          newline(level + 1);
          write(items[i], level + 1);
          check_size(out, options.max_bytes);
        }
        newline(level);
        out.push_back(']');
        return;
      }
      case Value::Type::Dict: {
        const auto& entries = v.dict().entries();
        if (entries.empty()) {
          out += "{}";
          return;
        }
        std::vector<const std::pair<Value, Value>*> order;
        order.reserve(entries.size());
        for (const auto& e : entries) order.push_back(&e);
        if (options.sort_keys)
          std::stable_sort(order.begin(), order.end(),
                           [](const auto* a, const auto* b) { return less(a->first, b->first); });
        out.push_back('{');
        for (size_t i = 0; i < order.size(); ++i) {
          if (i > 0) out += item_separator;
          newline(level + 1);
          key(order[i]->first);
          out += key_separator;
          write(order[i]->second, level + 1);
          check_size(out, options.max_bytes);
        }
        newline(level);
        out.push_back('}');
        return;
      }
      default: break;
    }
    render_fail("Object of type {} is not JSON serializable", v.type_name());
  }
};

}  // namespace

Value from_json(const nlohmann::ordered_json& j) { return from_json_at(j, 0); }

std::string to_json(const Value& v, const JsonDumpOptions& options) {
  JsonWriter w{options, options.indent ? "," : ", ", ": ", {}};
  if (options.separators) {
    w.item_separator = options.separators->first;
    w.key_separator = options.separators->second;
  }
  w.write(v, 0);
  check_size(w.out, options.max_bytes);
  return std::move(w.out);
}

}  // namespace canopy::jinja
