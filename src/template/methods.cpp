// The methods of Python's str, dict and list that chat templates call: message.content.strip(),
// text.split('</think>')[-1], message.get('tool_calls'), tool.items(), ...
//
// Only non-mutating methods exist here; jinja2's immutable sandbox refuses the others.
#include <algorithm>
#include <set>

#include "template/args.h"
#include "template/interpreter.h"
#include "template/py_text.h"

namespace canopy::jinja {

namespace {

const std::set<std::string_view, std::less<>>& str_methods() {
  static const std::set<std::string_view, std::less<>> names = {
      "capitalize", "center", "count", "endswith", "find", "format", "index", "isalnum", "isalpha", "isdigit", "islower",
      "isspace", "isupper", "join", "ljust", "lower", "lstrip", "partition", "removeprefix", "removesuffix",
      "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip",
      "swapcase", "title", "upper", "zfill"};
  return names;
}

std::optional<std::string> optional_string(Interpreter& in, const Value& v, std::string_view what) {
  if (v.is_none() || v.is_undefined()) return std::nullopt;
  if (!v.is_string()) render_fail("{} must be str or None, not {}", what, v.type_name());
  (void)in;
  return v.str();
}

const std::string& string_arg(const Value& v, std::string_view what) {
  if (!v.is_string()) render_fail("{} must be str, not {}", what, v.type_name());
  return v.str();
}

int64_t int_arg(const Value& v, std::string_view what) {
  if (!v.is_integral()) render_fail("{} must be an integer, not {}", what, v.type_name());
  return v.as_int();
}

// s[start:end] by code points, for the optional start/end of find, count, startswith.
struct Window {
  std::string text;
  int64_t offset = 0;  // code points before the window
};

Window window(const std::string& s, const Value& start, const Value& end) {
  if ((start.is_undefined() || start.is_none()) && (end.is_undefined() || end.is_none())) return {s, 0};
  const std::u32string t = py::decode(s);
  const auto n = static_cast<int64_t>(t.size());
  auto clamp = [n](const Value& v, int64_t dflt) {
    if (v.is_undefined() || v.is_none()) return dflt;
    int64_t x = int_arg(v, "slice index");
    if (x < 0) x = std::max<int64_t>(x + n, 0);
    return std::min(x, n);
  };
  const int64_t b = clamp(start, 0);
  const int64_t e = clamp(end, n);
  if (e <= b) return {"", b};
  return {py::encode(std::u32string_view(t).substr(static_cast<size_t>(b), static_cast<size_t>(e - b))), b};
}

std::string justify(Interpreter& in, const std::string& s, const Value& width_v, const Value& fill_v, char mode) {
  const int64_t width = int_arg(width_v, "width");
  std::string fill = " ";
  if (!fill_v.is_undefined()) {
    fill = string_arg(fill_v, "fillchar");
    if (py::length(fill) != 1) render_fail("The fill character must be exactly one character long");
  }
  const auto len = static_cast<int64_t>(py::length(s));
  if (width <= len) return s;
  in.check_string_size(s.size() + static_cast<size_t>(width - len) * fill.size());
  const int64_t marg = width - len;
  int64_t left = 0;
  if (mode == 'c') left = marg / 2 + (marg & width & 1);
  if (mode == 'r') left = marg;
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = 0; i < marg - left; ++i) out += fill;
  return out;
}

bool affix_match(const std::string& s, const Value& affix, bool prefix) {
  auto one = [&](const Value& v) {
    const std::string& a = string_arg(v, prefix ? "startswith first arg" : "endswith first arg");
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_list() && affix.list_kind() == ListKind::Tuple)
    return std::any_of(affix.items().begin(), affix.items().end(), one);
  return one(affix);
}

Value string_list(Interpreter& in, const std::vector<std::string>& parts) {
  in.check_list_size(parts.size());
  in.charge(parts.size());
  std::vector<Value> out;
  out.reserve(parts.size());
  for (const auto& p : parts) out.push_back(Value::string(p));
  return Value::list(std::move(out));
}

// str.format: {} {0} {name}, {{ and }}, conversions !r !s and a format spec for the common cases.
std::string format_spec(Interpreter& in, const Value& v, const std::string& spec);

std::string str_format(Interpreter& in, const std::string& format, const BoundArgs& a) {
  std::string out;
  size_t auto_index = 0;
  size_t i = 0;
  while (i < format.size()) {
    const char c = format[i];
    if (c == '}') {
      if (i + 1 < format.size() && format[i + 1] == '}') {
        out += '}';
        i += 2;
        continue;
      }
      render_fail("Single '}}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      ++i;
      continue;
    }
    if (i + 1 < format.size() && format[i + 1] == '{') {
      out += '{';
      i += 2;
      continue;
    }
    const size_t close = format.find('}', i);
    if (close == std::string::npos) render_fail("Single '{{' encountered in format string");
    std::string field = format.substr(i + 1, close - i - 1);
    i = close + 1;
    std::string spec;
    if (const size_t colon = field.find(':'); colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field.resize(colon);
    }
    char conversion = 0;
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      if (bang + 2 != field.size()) render_fail("invalid conversion in format string");
      conversion = field[bang + 1];
      field.resize(bang);
    }
    const Value* value = nullptr;
    if (field.empty()) {
      if (auto_index >= a.extra_positional.size()) render_fail("Replacement index {} out of range for positional args tuple", auto_index);
      value = &a.extra_positional[auto_index++];
    } else if (std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      const size_t index = std::stoul(field);
      if (index >= a.extra_positional.size()) render_fail("Replacement index {} out of range for positional args tuple", index);
      value = &a.extra_positional[index];
    } else {
      for (const auto& [k, v] : a.extra_keyword)
        if (k == field) value = &v;
      if (value == nullptr) render_fail("format: no argument named '{}'", field);
    }
    Value converted = *value;
    if (conversion == 'r' || conversion == 'a') converted = Value::string(to_repr(*value, in.max_string_bytes()));
    else if (conversion == 's') converted = Value::string(in.str(*value));
    else if (conversion != 0) render_fail("Unknown conversion specifier {}", conversion);
    out += format_spec(in, converted, spec);
    in.check_string_size(out.size());
  }
  return out;
}

// A format spec [[fill]align][sign][0][width][.precision][type], as format(value, spec).
std::string format_spec(Interpreter& in, const Value& v, const std::string& spec) {
  if (spec.empty()) return in.str(v);
  size_t i = 0;
  std::string fill = " ";
  char align = 0;
  auto is_align = [](char c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  {
    size_t after_first = 0;
    py::next_code_point(spec, after_first);
    if (after_first < spec.size() && is_align(spec[after_first])) {
      fill = spec.substr(0, after_first);
      align = spec[after_first];
      i = after_first + 1;
    } else if (is_align(spec[0])) {
      align = spec[0];
      i = 1;
    }
  }
  char sign = 0;
  if (i < spec.size() && (spec[i] == '+' || spec[i] == '-' || spec[i] == ' ')) sign = spec[i++];
  bool zero = false;
  if (i < spec.size() && spec[i] == '0') {
    zero = true;
    ++i;
  }
  int64_t width = 0;
  while (i < spec.size() && spec[i] >= '0' && spec[i] <= '9') width = std::min<int64_t>(width * 10 + (spec[i++] - '0'), 100000);
  int precision = -1;
  if (i < spec.size() && spec[i] == '.') {
    ++i;
    precision = 0;
    while (i < spec.size() && spec[i] >= '0' && spec[i] <= '9') precision = std::min(precision * 10 + (spec[i++] - '0'), 1000);
  }
  char type = 0;
  if (i < spec.size()) type = spec[i++];
  if (i != spec.size()) render_fail("Invalid format specifier '{}'", spec);

  std::string body;
  if (type == 0 || type == 's') {
    if (v.is_number() && type == 0 && precision < 0) {
      body = in.str(v);
    } else if (v.is_float() && type == 0) {
      body = fmt::format("{:.{}g}", v.as_float(), precision);
    } else {
      body = in.str(v);
      if (precision >= 0) {
        const std::u32string t = py::decode(body);
        if (t.size() > static_cast<size_t>(precision)) body = py::encode(std::u32string_view(t).substr(0, static_cast<size_t>(precision)));
      }
    }
  } else if (type == 'd' || type == 'x' || type == 'X' || type == 'o' || type == 'b') {
    if (!v.is_integral()) render_fail("Unknown format code '{}' for object of type '{}'", type, v.type_name());
    const int64_t x = v.as_int();
    const uint64_t mag = x < 0 ? 0 - static_cast<uint64_t>(x) : static_cast<uint64_t>(x);
    switch (type) {
      case 'd': body = fmt::format("{}", mag); break;
      case 'x': body = fmt::format("{:x}", mag); break;
      case 'X': body = fmt::format("{:X}", mag); break;
      case 'o': body = fmt::format("{:o}", mag); break;
      default: body = fmt::format("{:b}", mag); break;
    }
    if (x < 0) body.insert(0, 1, '-');
    else if (sign == '+') body.insert(0, 1, '+');
    else if (sign == ' ') body.insert(0, 1, ' ');
  } else if (type == 'f' || type == 'F' || type == 'e' || type == 'E' || type == 'g' || type == 'G' || type == '%') {
    if (!v.is_number()) render_fail("Unknown format code '{}' for object of type '{}'", type, v.type_name());
    double x = v.as_float();
    const int p = precision < 0 ? 6 : precision;
    char buf[1200];
    const char conv = type == '%' ? 'f' : type;
    if (type == '%') x *= 100;
    std::string c_format = "%";
    if (sign == '+' || sign == ' ') c_format += sign;
    c_format += ".*";
    c_format += conv;
    std::snprintf(buf, sizeof buf, c_format.c_str(), p, x);
    body = buf;
    if (type == '%') body += "%";
  } else {
    render_fail("Unknown format code '{}'", type);
  }
  const auto len = static_cast<int64_t>(py::length(body));
  if (width <= len) return body;
  in.check_string_size(body.size() + static_cast<size_t>(width - len) * fill.size());
  if (align == 0) align = (v.is_number() && !v.is_bool()) || type == 'd' ? '>' : '<';
  if (zero && align == '>' && fill == " " && v.is_number()) {
    fill = "0";
    align = '=';
  }
  const int64_t marg = width - len;
  std::string out;
  auto repeat = [&](int64_t k) {
    for (int64_t j = 0; j < k; ++j) out += fill;
  };
  if (align == '<') {
    out = body;
    repeat(marg);
  } else if (align == '^') {
    repeat(marg / 2);
    out += body;
    repeat(marg - marg / 2);
  } else if (align == '=' && !body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' ')) {
    out += body[0];
    repeat(marg);
    out += body.substr(1);
  } else {
    repeat(marg);
    out += body;
  }
  return out;
}

Value call_str_method(Interpreter& in, const std::string& s, std::string_view name, CallArgs args) {
  in.charge(1 + s.size() / 64);
  if (name == "startswith" || name == "endswith") {
    BoundArgs a(name, std::move(args), {"prefix", "start", "end"});
    if (!a.has(0)) render_fail("{}() takes at least 1 argument (0 given)", name);
    const Window w = window(s, a.get(1, Value()), a.get(2, Value()));
    return Value::boolean(affix_match(w.text, a.get(0), name == "startswith"));
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    BoundArgs a(name, std::move(args), {"chars"});
    const auto chars = optional_string(in, a.get(0, Value::none()), "chars");
    return Value::string(py::strip(s, chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    BoundArgs a(name, std::move(args), {"sep", "maxsplit"});
    const auto sep = optional_string(in, a.get(0, Value::none()), "sep");
    const int64_t maxsplit = int_arg(a.get(1, Value::integer(-1)), "maxsplit");
    return string_list(in, name == "split" ? py::split(s, sep, maxsplit) : py::rsplit(s, sep, maxsplit));
  }
  if (name == "splitlines") {
    BoundArgs a(name, std::move(args), {"keepends"});
    return string_list(in, py::splitlines(s, a.get(0, Value::boolean(false)).truthy()));
  }
  if (name == "replace") {
    BoundArgs a(name, std::move(args), {"old", "new", "count"});
    const std::string& old = string_arg(a.get(0), "replace() argument 1");
    const std::string& repl = string_arg(a.get(1), "replace() argument 2");
    const int64_t count = int_arg(a.get(2, Value::integer(-1)), "replace() count");
    const size_t occurrences = old.empty() ? py::length(s) + 1 : static_cast<size_t>(py::count(s, old));
    in.check_string_size(s.size() + occurrences * repl.size());
    return Value::string(py::replace(s, old, repl, count));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize" || name == "swapcase") {
    BoundArgs a(name, std::move(args), {});
    if (name == "upper") return Value::string(py::upper(s));
    if (name == "lower") return Value::string(py::lower(s));
    if (name == "title") return Value::string(py::title(s));
    if (name == "capitalize") return Value::string(py::capitalize(s));
    return Value::string(py::swapcase(s));
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "islower" ||
      name == "isupper") {
    BoundArgs a(name, std::move(args), {});
    if (name == "isdigit") return Value::boolean(py::is_digit(s));
    if (name == "isalpha") return Value::boolean(py::is_alpha(s));
    if (name == "isalnum") return Value::boolean(py::is_alnum(s));
    if (name == "isspace") return Value::boolean(py::is_space_string(s));
    if (name == "islower") return Value::boolean(py::is_lower(s));
    return Value::boolean(py::is_upper(s));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    BoundArgs a(name, std::move(args), {"sub", "start", "end"});
    const std::string& sub = string_arg(a.get(0), std::string(name) + "() argument 1");
    const Window w = window(s, a.get(1, Value()), a.get(2, Value()));
    if (name == "count") return Value::integer(py::count(w.text, sub));
    const int64_t at = py::find(w.text, sub, name == "rfind" || name == "rindex");
    if (at < 0 && (name == "index" || name == "rindex")) render_fail("substring not found");
    return Value::integer(at < 0 ? -1 : at + w.offset);
  }
  if (name == "join") {
    BoundArgs a(name, std::move(args), {"iterable"});
    const std::vector<Value> items = in.iterate(a.get(0));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string())
        render_fail("sequence item {}: expected str instance, {} found", i, items[i].type_name());
      in.check_string_size(out.size() + s.size() + items[i].str().size());
      if (i > 0) out += s;
      out += items[i].str();
    }
    return Value::string(std::move(out));
  }
  if (name == "format") {
    BoundArgs a(name, std::move(args), {}, true);
    return Value::string(str_format(in, s, a));
  }
  if (name == "center" || name == "ljust" || name == "rjust") {
    BoundArgs a(name, std::move(args), {"width", "fillchar"});
    return Value::string(justify(in, s, a.get(0), a.get(1, Value()), name == "center" ? 'c' : name == "ljust" ? 'l' : 'r'));
  }
  if (name == "zfill") {
    BoundArgs a(name, std::move(args), {"width"});
    const int64_t width = int_arg(a.get(0), "zfill width");
    const auto len = static_cast<int64_t>(py::length(s));
    if (width <= len) return Value::string(s);
    in.check_string_size(static_cast<size_t>(width));
    const std::string zeros(static_cast<size_t>(width - len), '0');
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) return Value::string(s.substr(0, 1) + zeros + s.substr(1));
    return Value::string(zeros + s);
  }
  if (name == "partition" || name == "rpartition") {
    BoundArgs a(name, std::move(args), {"sep"});
    const std::string& sep = string_arg(a.get(0), "partition separator");
    if (sep.empty()) render_fail("empty separator");
    const size_t at = name == "partition" ? s.find(sep) : s.rfind(sep);
    std::vector<Value> parts;
    if (at == std::string::npos) {
      if (name == "partition") parts = {Value::string(s), Value::string(""), Value::string("")};
      else parts = {Value::string(""), Value::string(""), Value::string(s)};
    } else {
      parts = {Value::string(s.substr(0, at)), Value::string(sep), Value::string(s.substr(at + sep.size()))};
    }
    return Value::list(std::move(parts), ListKind::Tuple);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    BoundArgs a(name, std::move(args), {"affix"});
    const std::string& affix = string_arg(a.get(0), std::string(name) + "() argument");
    if (name == "removeprefix" && s.compare(0, affix.size(), affix) == 0) return Value::string(s.substr(affix.size()));
    if (name == "removesuffix" && !affix.empty() && affix.size() <= s.size() &&
        s.compare(s.size() - affix.size(), affix.size(), affix) == 0)
      return Value::string(s.substr(0, s.size() - affix.size()));
    return Value::string(s);
  }
  render_fail("'str' object has no attribute '{}'", name);
}

Value call_dict_method(Interpreter& in, const Value& self, std::string_view name, CallArgs args) {
  const Dict& d = self.dict();
  in.charge(1 + d.size());
  if (name == "get") {
    BoundArgs a(name, std::move(args), {"key", "default"});
    if (!a.has(0)) render_fail("get expected at least 1 argument, got 0");
    const Value* v = d.find(a.get(0));
    return v != nullptr ? *v : a.get(1, Value::none());
  }
  BoundArgs a(name, std::move(args), {});
  std::vector<Value> out;
  out.reserve(d.size());
  if (name == "items") {
    for (const auto& [k, v] : d.entries()) out.push_back(Value::list({k, v}, ListKind::Tuple));
    return Value::list(std::move(out), ListKind::DictItems);
  }
  if (name == "keys") {
    for (const auto& [k, v] : d.entries()) out.push_back(k);
    return Value::list(std::move(out), ListKind::DictKeys);
  }
  if (name == "values") {
    for (const auto& [k, v] : d.entries()) out.push_back(v);
    return Value::list(std::move(out), ListKind::DictValues);
  }
  render_fail("'dict' object has no attribute '{}'", name);
}

Value call_list_method(Interpreter& in, const Value& self, std::string_view name, CallArgs args) {
  const auto& items = self.items();
  in.charge(1 + items.size());
  BoundArgs a(name, std::move(args), {"value"});
  if (!a.has(0)) render_fail("{}() takes exactly one argument (0 given)", name);
  if (name == "count")
    return Value::integer(std::count_if(items.begin(), items.end(), [&](const Value& v) { return equal(v, a.get(0)); }));
  for (size_t i = 0; i < items.size(); ++i)
    if (equal(items[i], a.get(0))) return Value::integer(static_cast<int64_t>(i));
  render_fail("{} is not in list", to_repr(a.get(0), 1000));
}

}  // namespace

bool has_method(const Value& self, std::string_view name) {
  if (self.is_string()) return str_methods().count(name) > 0;
  if (self.is_dict()) return name == "get" || name == "items" || name == "keys" || name == "values";
  if (self.is_list() && (self.list_kind() == ListKind::List || self.list_kind() == ListKind::Tuple))
    return name == "index" || name == "count";
  return false;
}

Value call_method(Interpreter& in, const Value& self, std::string_view name, CallArgs args) {
  if (self.is_string()) return call_str_method(in, self.str(), name, std::move(args));
  if (self.is_dict()) return call_dict_method(in, self, name, std::move(args));
  if (self.is_list()) return call_list_method(in, self, name, std::move(args));
  render_fail("'{}' object has no attribute '{}'", self.type_name(), name);
}

}  // namespace canopy::jinja
