// jinja2's built-in filters (the ones chat templates use), plus Hugging Face's tojson, with the
// same argument names, defaults and corner cases as jinja2 3.1.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include <utf8proc.h>

#include "template/args.h"
#include "template/interpreter.h"
#include "template/py_text.h"

namespace canopy::jinja {

namespace {

using FilterFn = Value (*)(Interpreter&, Value, CallArgs);

int64_t int_arg(const Value& v, std::string_view what) {
  if (!v.is_integral()) render_fail("{} must be an integer, not {}", what, v.type_name());
  return v.as_int();
}

std::string string_arg(Interpreter& in, const Value& v) { return in.str(v); }

// jinja2's make_attrgetter: "a.b.0" looks up a, then b, then item 0. With a fallback, an
// undefined step is replaced by it (and the lookup goes on from there, as in jinja2).
Value lookup_attribute(Interpreter& in, Value item, const Value& attribute, const Value* fallback = nullptr) {
  if (attribute.is_none() || attribute.is_undefined()) return item;
  if (!attribute.is_string()) {
    item = in.get_item(item, attribute);
    return fallback != nullptr && item.is_undefined() ? *fallback : item;
  }
  for (const std::string& part : py::split(attribute.str(), std::string("."), -1)) {
    const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    item = digits ? in.get_item(item, Value::integer(std::strtoll(part.c_str(), nullptr, 10)))
                  : in.get_item(item, Value::string(part));
    if (fallback != nullptr && item.is_undefined()) item = *fallback;
  }
  return item;
}

Value ignore_case(const Value& v, bool case_sensitive) {
  if (case_sensitive || !v.is_string()) return v;
  return Value::string(py::lower(v.str()));
}

// make_multi_attrgetter: "age,name" sorts by a list of keys.
Value sort_key(Interpreter& in, const Value& item, const Value& attribute, bool case_sensitive) {
  if (attribute.is_string() && attribute.str().find(',') != std::string::npos) {
    std::vector<Value> keys;
    for (const std::string& part : py::split(attribute.str(), std::string(","), -1))
      keys.push_back(ignore_case(lookup_attribute(in, item, Value::string(part)), case_sensitive));
    return Value::list(std::move(keys));
  }
  return ignore_case(lookup_attribute(in, item, attribute), case_sensitive);
}

std::vector<Value> items_of(Interpreter& in, const Value& v) {
  std::vector<Value> items = in.iterate(v);
  in.charge(items.size());
  return items;
}

Value make_list(Interpreter& in, std::vector<Value> items) {
  in.check_list_size(items.size());
  return Value::list(std::move(items));
}

size_t python_len(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined: return 0;
    case Value::Type::String: return py::length(v.str());
    case Value::Type::List: return v.items().size();
    case Value::Type::Dict: return v.dict().size();
    default: render_fail("object of type '{}' has no len()", v.type_name());
  }
}

// ---- the filters -----------------------------------------------------------------------------

Value f_abs(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("abs", std::move(args), {});
  if (v.is_float()) return Value::floating(std::fabs(v.as_float()));
  if (v.is_integral()) {
    if (v.as_int() == INT64_MIN) render_fail("integer overflow");
    return Value::integer(std::llabs(v.as_int()));
  }
  render_fail("bad operand type for abs(): '{}'", v.type_name());
}

Value f_attr(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("attr", std::move(args), {"name"});
  const std::string name = string_arg(in, a.get(0));
  // Only real attributes: dict keys are not attributes.
  if (v.is_object() || ((v.is_string() || v.is_dict() || v.is_list()) && has_method(v, name))) return in.get_attr(v, name);
  if (v.is_undefined()) v.fail_undefined();
  return Value::undefined(fmt::format("'{} object' has no attribute '{}'", v.type_name(), name));
}

Value f_batch(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("batch", std::move(args), {"linecount", "fill_with"});
  const int64_t count = int_arg(a.get(0), "batch linecount");
  if (count <= 0) render_fail("batch linecount must be positive");
  std::vector<Value> rows;
  std::vector<Value> row;
  for (auto& item : items_of(in, v)) {
    if (static_cast<int64_t>(row.size()) == count) {
      rows.push_back(Value::list(std::move(row)));
      row.clear();
    }
    row.push_back(std::move(item));
  }
  if (!row.empty()) {
    if (a.has(1) && !a.get(1).is_none())
      while (static_cast<int64_t>(row.size()) < count) row.push_back(a.get(1));
    rows.push_back(Value::list(std::move(row)));
  }
  return make_list(in, std::move(rows));
}

Value f_capitalize(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("capitalize", std::move(args), {});
  return Value::string(py::capitalize(in.str(v)));
}

std::string center(const std::string& s, int64_t width, const std::string& fill) {
  const auto len = static_cast<int64_t>(py::length(s));
  if (width <= len) return s;
  const int64_t marg = width - len;
  const int64_t left = marg / 2 + (marg & width & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = 0; i < marg - left; ++i) out += fill;
  return out;
}

Value f_center(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("center", std::move(args), {"width"});
  const int64_t width = int_arg(a.get(0, Value::integer(80)), "center width");
  in.check_string_size(static_cast<size_t>(std::max<int64_t>(width, 0)) * 4);
  return Value::string(center(in.str(v), width, " "));
}

Value f_default(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("default", std::move(args), {"default_value", "boolean"});
  const bool boolean = a.get(1, Value::boolean(false)).truthy();
  if (v.is_undefined() || (boolean && !v.truthy())) return a.get(0, Value::string(""));
  return v;
}

Value f_dictsort(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("dictsort", std::move(args), {"case_sensitive", "by", "reverse"});
  if (!v.is_dict()) render_fail("dictsort expects a mapping, not {}", v.type_name());
  const bool case_sensitive = a.get(0, Value::boolean(false)).truthy();
  const Value by = a.get(1, Value::string("key"));
  const bool reverse = a.get(2, Value::boolean(false)).truthy();
  size_t pos = 0;
  if (by.is_string() && by.str() == "value") {
    pos = 1;
  } else if (!by.is_string() || by.str() != "key") {
    render_fail("You can only sort by either \"key\" or \"value\"");
  }
  std::vector<std::pair<Value, Value>> entries = v.dict().entries();
  in.charge(entries.size() * 8);
  std::stable_sort(entries.begin(), entries.end(), [&](const auto& x, const auto& y) {
    const Value kx = ignore_case(pos == 0 ? x.first : x.second, case_sensitive);
    const Value ky = ignore_case(pos == 0 ? y.first : y.second, case_sensitive);
    return reverse ? less(ky, kx) : less(kx, ky);
  });
  std::vector<Value> out;
  for (auto& [k, val] : entries) out.push_back(Value::list({k, val}, ListKind::Tuple));
  return make_list(in, std::move(out));
}

Value f_escape(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("escape", std::move(args), {});
  const std::string s = in.str(v);
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  in.check_string_size(out.size());
  return Value::string(std::move(out));
}

Value f_first(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("first", std::move(args), {});
  if (v.is_list()) {
    if (!v.items().empty()) return v.items().front();
  } else {
    std::vector<Value> items = in.iterate(v);
    if (!items.empty()) return items.front();
  }
  return Value::undefined("No first item, sequence was empty.");
}

Value f_last(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("last", std::move(args), {});
  if (v.is_list()) {
    if (!v.items().empty()) return v.items().back();
  } else {
    std::vector<Value> items = in.iterate(v);
    if (!items.empty()) return items.back();
  }
  return Value::undefined("No last item, sequence was empty.");
}

// Python's float(str): surrounding whitespace, underscores between digits, inf and nan.
std::optional<double> parse_python_float(const std::string& text) {
  std::string s = py::strip(text, std::nullopt, true, true);
  std::string cleaned;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      const bool between = i > 0 && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i - 1])) &&
                           std::isdigit(static_cast<unsigned char>(s[i + 1]));
      if (!between) return std::nullopt;
      continue;
    }
    cleaned.push_back(s[i]);
  }
  if (cleaned.empty()) return std::nullopt;
  std::string lower = py::lower(cleaned);
  const char* p = lower.c_str();
  if (*p == '+' || *p == '-') ++p;
  const std::string_view body(p);
  if (body == "inf" || body == "infinity" || body == "nan") {
    const double x = body == "nan" ? NAN : INFINITY;
    return lower[0] == '-' ? -x : x;
  }
  for (char c : body)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == '+' || c == '-')) return std::nullopt;
  char* end = nullptr;
  const double x = std::strtod(lower.c_str(), &end);
  if (end == lower.c_str() || *end != '\0') return std::nullopt;
  return x;
}

// Python's int(str, base): whitespace, sign, underscores, optional prefix matching the base.
std::optional<int64_t> parse_python_int(const std::string& text, int64_t base) {
  std::string s = py::strip(text, std::nullopt, true, true);
  bool negative = false;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  if (base == 0 || base == 2 || base == 8 || base == 16) {
    if (i + 1 < s.size() && s[i] == '0') {
      const char p = static_cast<char>(s[i + 1] | 0x20);
      const int64_t prefixed = p == 'b' ? 2 : p == 'o' ? 8 : p == 'x' ? 16 : 0;
      if (prefixed != 0 && (base == 0 || base == prefixed)) {
        base = prefixed;
        i += 2;
        if (i < s.size() && s[i] == '_') ++i;
      }
    }
    if (base == 0) base = 10;
  }
  if (base < 2 || base > 36) render_fail("int() base must be >= 2 and <= 36, or 0");
  if (i >= s.size()) return std::nullopt;
  int64_t value = 0;
  bool last_underscore = true;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '_') {
      if (last_underscore) return std::nullopt;
      last_underscore = true;
      continue;
    }
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    else if (c >= 'a' && c <= 'z') digit = c - 'a' + 10;
    else if (c >= 'A' && c <= 'Z') digit = c - 'A' + 10;
    if (digit < 0 || digit >= base) return std::nullopt;
    if (__builtin_mul_overflow(value, base, &value) || __builtin_add_overflow(value, digit, &value))
      render_fail("integer too large (chat templates compute with 64-bit integers)");
    last_underscore = false;
  }
  if (last_underscore) return std::nullopt;
  return negative ? -value : value;
}

Value f_float(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("float", std::move(args), {"default"});
  const Value fallback = a.get(0, Value::floating(0.0));
  if (v.is_number()) return Value::floating(v.as_float());
  if (v.is_string()) {
    if (auto x = parse_python_float(v.str())) return Value::floating(*x);
  }
  return fallback;
}

Value f_int(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("int", std::move(args), {"default", "base"});
  const Value fallback = a.get(0, Value::integer(0));
  const int64_t base = int_arg(a.get(1, Value::integer(10)), "int base");
  if (v.is_integral()) return Value::integer(v.as_int());
  auto from_double = [&](double x) -> Value {
    if (std::isnan(x)) return fallback;
    if (std::isinf(x)) render_fail("cannot convert float infinity to integer");
    if (std::fabs(x) >= 9.2e18) render_fail("integer too large (chat templates compute with 64-bit integers)");
    return Value::integer(static_cast<int64_t>(std::trunc(x)));
  };
  if (v.is_float()) return from_double(v.as_float());
  if (v.is_string()) {
    if (auto i = parse_python_int(v.str(), base)) return Value::integer(*i);
    if (auto x = parse_python_float(v.str())) return from_double(*x);
  }
  return fallback;
}

Value f_format(Interpreter& in, Value v, CallArgs args) {
  if (!args.positional.empty() && !args.keyword.empty())
    render_fail("can't handle positional and keyword arguments at the same time");
  Value format_args;
  if (!args.keyword.empty()) {
    Dict d;
    for (auto& [k, val] : args.keyword) d.set(Value::string(k), std::move(val));
    format_args = Value::dict(std::move(d));
  } else {
    format_args = Value::list(std::move(args.positional), ListKind::Tuple);
  }
  return Value::string(percent_format(in, in.str(v), format_args));
}

Value f_indent(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("indent", std::move(args), {"width", "first", "blank"});
  const Value width = a.get(0, Value::integer(4));
  const bool first = a.get(1, Value::boolean(false)).truthy();
  const bool blank = a.get(2, Value::boolean(false)).truthy();
  std::string indention;
  if (width.is_string()) {
    indention = width.str();
  } else {
    const int64_t n = int_arg(width, "indent width");
    in.check_string_size(static_cast<size_t>(std::max<int64_t>(n, 0)));
    indention.assign(static_cast<size_t>(std::max<int64_t>(n, 0)), ' ');
  }
  if (v.is_undefined()) v.fail_undefined();
  if (!v.is_string()) render_fail("unsupported operand type(s) for +=: '{}' and 'str'", v.type_name());
  const std::vector<std::string> lines = py::splitlines(v.str() + "\n", false);
  in.check_string_size(v.str().size() + lines.size() * indention.size());
  std::string out;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) {
        out += '\n';
        out += indention;
      }
      out += lines[i];
    }
  } else {
    out = lines.empty() ? std::string() : lines.front();
    for (size_t i = 1; i < lines.size(); ++i) {
      out += "\n";
      if (!lines[i].empty()) out += indention;
      out += lines[i];
    }
  }
  if (first) out = indention + out;
  return Value::string(std::move(out));
}

Value f_items(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("items", std::move(args), {});
  if (v.is_undefined()) return Value::list({});
  if (!v.is_dict()) render_fail("Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, val] : v.dict().entries()) out.push_back(Value::list({k, val}, ListKind::Tuple));
  return make_list(in, std::move(out));
}

Value f_join(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("join", std::move(args), {"d", "attribute"});
  const std::string sep = in.str(a.get(0, Value::string("")));
  const Value attribute = a.get(1, Value::none());
  std::string out;
  bool first = true;
  for (const auto& item : items_of(in, v)) {
    const std::string piece = in.str(lookup_attribute(in, item, attribute));
    in.check_string_size(out.size() + sep.size() + piece.size());
    if (!first) out += sep;
    first = false;
    out += piece;
  }
  return Value::string(std::move(out));
}

Value f_length(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("length", std::move(args), {});
  return Value::integer(static_cast<int64_t>(python_len(v)));
}

Value f_list(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("list", std::move(args), {});
  return make_list(in, items_of(in, v));
}

Value f_lower(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("lower", std::move(args), {});
  return Value::string(py::lower(in.str(v)));
}

Value f_upper(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("upper", std::move(args), {});
  return Value::string(py::upper(in.str(v)));
}

Value f_map(Interpreter& in, Value v, CallArgs args) {
  std::vector<Value> out;
  if (!v.truthy()) return Value::list({});
  if (args.positional.empty()) {
    Value attribute;
    Value fallback = Value::none();
    bool has_attribute = false;
    for (auto& [k, val] : args.keyword) {
      if (k == "attribute") {
        attribute = val;
        has_attribute = true;
      } else if (k == "default") {
        fallback = val;
      } else {
        render_fail("Unexpected keyword argument '{}'", k);
      }
    }
    if (!has_attribute) render_fail("map requires a filter argument");
    for (const auto& item : items_of(in, v))
      out.push_back(lookup_attribute(in, item, attribute, fallback.is_none() ? nullptr : &fallback));
    return make_list(in, std::move(out));
  }
  if (!args.positional.front().is_string()) render_fail("map: the filter name must be a string");
  const std::string name = args.positional.front().str();
  for (const auto& item : items_of(in, v)) {
    CallArgs call;
    call.positional.assign(args.positional.begin() + 1, args.positional.end());
    call.keyword = args.keyword;
    out.push_back(apply_filter(in, name, item, std::move(call)));
  }
  return make_list(in, std::move(out));
}

Value min_or_max(Interpreter& in, Value v, CallArgs args, const char* name, bool want_max) {
  BoundArgs a(name, std::move(args), {"case_sensitive", "attribute"});
  const bool case_sensitive = a.get(0, Value::boolean(false)).truthy();
  const Value attribute = a.get(1, Value::none());
  const std::vector<Value> items = items_of(in, v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  Value best_key = ignore_case(lookup_attribute(in, items[0], attribute), case_sensitive);
  for (size_t i = 1; i < items.size(); ++i) {
    Value key = ignore_case(lookup_attribute(in, items[i], attribute), case_sensitive);
    if (want_max ? less(best_key, key) : less(key, best_key)) {
      best = i;
      best_key = std::move(key);
    }
  }
  return items[best];
}

Value f_max(Interpreter& in, Value v, CallArgs args) { return min_or_max(in, std::move(v), std::move(args), "max", true); }
Value f_min(Interpreter& in, Value v, CallArgs args) { return min_or_max(in, std::move(v), std::move(args), "min", false); }

// select / reject / selectattr / rejectattr.
Value select_or_reject(Interpreter& in, Value v, CallArgs args, bool keep_when, bool lookup_attr) {
  if (!v.truthy()) return Value::list({});
  size_t offset = 0;
  Value attribute;
  if (lookup_attr) {
    if (args.positional.empty()) render_fail("Missing parameter for attribute name");
    attribute = args.positional.front();
    offset = 1;
  }
  std::optional<std::string> test;
  std::vector<Value> test_args;
  if (args.positional.size() > offset) {
    if (!args.positional[offset].is_string()) render_fail("the test name must be a string");
    test = args.positional[offset].str();
    test_args.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(offset + 1), args.positional.end());
  }
  std::vector<Value> out;
  for (const auto& item : items_of(in, v)) {
    const Value subject = lookup_attr ? lookup_attribute(in, item, attribute) : item;
    bool passed = false;
    if (test) {
      CallArgs call;
      call.positional = test_args;
      call.keyword = args.keyword;
      passed = apply_test(in, *test, subject, std::move(call));
    } else {
      passed = subject.truthy();
    }
    if (passed == keep_when) out.push_back(item);
  }
  return make_list(in, std::move(out));
}

Value f_select(Interpreter& in, Value v, CallArgs args) { return select_or_reject(in, std::move(v), std::move(args), true, false); }
Value f_reject(Interpreter& in, Value v, CallArgs args) { return select_or_reject(in, std::move(v), std::move(args), false, false); }
Value f_selectattr(Interpreter& in, Value v, CallArgs args) { return select_or_reject(in, std::move(v), std::move(args), true, true); }
Value f_rejectattr(Interpreter& in, Value v, CallArgs args) { return select_or_reject(in, std::move(v), std::move(args), false, true); }

Value f_replace(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("replace", std::move(args), {"old", "new", "count"});
  const std::string s = in.str(v);
  const std::string old = in.str(a.get(0));
  const std::string repl = in.str(a.get(1));
  const Value count = a.get(2, Value::none());
  const int64_t n = count.is_none() ? -1 : int_arg(count, "replace count");
  // Bound the result before building it: every occurrence (or gap, for an empty `old`) may grow.
  const size_t occurrences = old.empty() ? py::length(s) + 1 : static_cast<size_t>(py::count(s, old));
  in.check_string_size(s.size() + occurrences * repl.size());
  return Value::string(py::replace(s, old, repl, n));
}

Value f_reverse(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("reverse", std::move(args), {});
  if (v.is_string()) {
    std::u32string t = py::decode(v.str());
    std::reverse(t.begin(), t.end());
    return Value::string(py::encode(t));
  }
  std::vector<Value> items = items_of(in, v);
  std::reverse(items.begin(), items.end());
  return make_list(in, std::move(items));
}

Value f_round(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("round", std::move(args), {"precision", "method"});
  const int64_t precision = int_arg(a.get(0, Value::integer(0)), "round precision");
  const Value method = a.get(1, Value::string("common"));
  if (!method.is_string() || (method.str() != "common" && method.str() != "ceil" && method.str() != "floor"))
    render_fail("method must be common, ceil or floor");
  if (!v.is_number()) render_fail("round() needs a number, not {}", v.type_name());
  if (precision < -308 || precision > 308) render_fail("round precision out of range");
  if (method.str() != "common") {
    const double scale = std::pow(10.0, static_cast<double>(precision));
    const double x = v.as_float() * scale;
    return Value::floating((method.str() == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
  }
  if (v.is_integral() && precision >= 0) return Value::integer(v.as_int());  // Python: round(int) is an int
  const double x = v.as_float();
  if (!std::isfinite(x)) return Value::floating(x);
  if (precision == 0) return Value::floating(std::nearbyint(x));  // half to even, as Python
  if (precision > 0) {
    // Correctly rounded decimal digits of the exact binary value, then read back: Python's method.
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(std::min<int64_t>(precision, 340)), x);
    return Value::floating(std::strtod(buf, nullptr));
  }
  const double scale = std::pow(10.0, static_cast<double>(-precision));
  return Value::floating(std::nearbyint(x / scale) * scale);
}

Value f_safe(Interpreter&, Value v, CallArgs args) {
  BoundArgs a("safe", std::move(args), {});
  return v;
}

Value f_sort(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("sort", std::move(args), {"reverse", "case_sensitive", "attribute"});
  const bool reverse = a.get(0, Value::boolean(false)).truthy();
  const bool case_sensitive = a.get(1, Value::boolean(false)).truthy();
  const Value attribute = a.get(2, Value::none());
  std::vector<Value> items = items_of(in, v);
  std::vector<std::pair<Value, size_t>> keyed;
  keyed.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) keyed.emplace_back(sort_key(in, items[i], attribute, case_sensitive), i);
  in.charge(items.size() * 8);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? less(y.first, x.first) : less(x.first, y.first);
  });
  std::vector<Value> out;
  out.reserve(items.size());
  for (const auto& [key, index] : keyed) out.push_back(items[index]);
  return make_list(in, std::move(out));
}

Value f_string(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("string", std::move(args), {});
  return Value::string(in.str(v));
}

Value f_sum(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("sum", std::move(args), {"attribute", "start"});
  const Value attribute = a.get(0, Value::none());
  Value total = a.get(1, Value::integer(0));
  for (const auto& item : items_of(in, v)) total = binary_op(in, BinaryOp::Add, total, lookup_attribute(in, item, attribute));
  return total;
}

Value f_title(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("title", std::move(args), {});
  // jinja2 splits on runs of [-\s({\[<] and capitalises the first letter of every piece.
  const std::u32string text = py::decode(in.str(v));
  auto is_separator = [](char32_t c) {
    return py::is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
  };
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i;
    const bool sep = is_separator(text[i]);
    while (j < text.size() && is_separator(text[j]) == sep) ++j;
    const std::string piece = py::encode(std::u32string_view(text).substr(i, j - i));
    if (sep) {
      out += piece;
    } else {
      size_t first_end = 0;
      py::next_code_point(piece, first_end);
      out += py::upper(piece.substr(0, first_end)) + py::lower(piece.substr(first_end));
    }
    i = j;
  }
  return Value::string(std::move(out));
}

Value f_tojson(Interpreter& in, Value v, CallArgs args) {
  // Hugging Face's override: json.dumps(x, ensure_ascii=False, indent=None, separators=None,
  // sort_keys=False), so non-ASCII text and <>&' stay as they are.
  BoundArgs a("tojson", std::move(args), {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions options;
  options.ensure_ascii = a.get(0, Value::boolean(false)).truthy();
  const Value indent = a.get(1, Value::none());
  if (indent.is_string()) {
    options.indent = indent.str();
  } else if (indent.is_integral()) {
    options.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(indent.as_int(), 0, 1024)), ' ');
  } else if (!indent.is_none()) {
    render_fail("tojson indent must be an integer or a string");
  }
  const Value separators = a.get(2, Value::none());
  if (!separators.is_none()) {
    if (!separators.is_list() || separators.items().size() != 2 || !separators.items()[0].is_string() ||
        !separators.items()[1].is_string())
      render_fail("tojson separators must be a pair of strings");
    options.separators = std::make_pair(separators.items()[0].str(), separators.items()[1].str());
  }
  options.sort_keys = a.get(3, Value::boolean(false)).truthy();
  options.max_bytes = in.max_string_bytes();
  return Value::string(to_json(v, options));
}

Value f_trim(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("trim", std::move(args), {"chars"});
  const Value chars = a.get(0, Value::none());
  std::optional<std::string> set;
  if (!chars.is_none()) set = in.str(chars);
  return Value::string(py::strip(in.str(v), set, true, true));
}

Value f_unique(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("unique", std::move(args), {"case_sensitive", "attribute"});
  const bool case_sensitive = a.get(0, Value::boolean(false)).truthy();
  const Value attribute = a.get(1, Value::none());
  std::vector<Value> out;
  std::vector<Value> seen;
  for (const auto& item : items_of(in, v)) {
    Value key = ignore_case(lookup_attribute(in, item, attribute), case_sensitive);
    in.charge(seen.size());
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equal(s, key); })) continue;
    seen.push_back(std::move(key));
    out.push_back(item);
  }
  return make_list(in, std::move(out));
}

Value f_wordcount(Interpreter& in, Value v, CallArgs args) {
  BoundArgs a("wordcount", std::move(args), {});
  // Runs of \w (letters, digits, underscore).
  const std::u32string text = py::decode(in.str(v));
  auto word_char = [](char32_t c) {
    if (c == '_') return true;
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
      case UTF8PROC_CATEGORY_LU:
      case UTF8PROC_CATEGORY_LL:
      case UTF8PROC_CATEGORY_LT:
      case UTF8PROC_CATEGORY_LM:
      case UTF8PROC_CATEGORY_LO:
      case UTF8PROC_CATEGORY_ND:
      case UTF8PROC_CATEGORY_NL:
      case UTF8PROC_CATEGORY_NO: return true;
      default: return false;
    }
  };
  int64_t words = 0;
  bool in_word = false;
  for (char32_t c : text) {
    const bool w = word_char(c);
    if (w && !in_word) ++words;
    in_word = w;
  }
  return Value::integer(words);
}

const std::map<std::string_view, FilterFn>& filter_table() {
  static const std::map<std::string_view, FilterFn> table = {
      {"abs", f_abs},
      {"attr", f_attr},
      {"batch", f_batch},
      {"capitalize", f_capitalize},
      {"center", f_center},
      {"count", f_length},
      {"d", f_default},
      {"default", f_default},
      {"dictsort", f_dictsort},
      {"e", f_escape},
      {"escape", f_escape},
      {"first", f_first},
      {"float", f_float},
      {"forceescape", f_escape},
      {"format", f_format},
      {"indent", f_indent},
      {"int", f_int},
      {"items", f_items},
      {"join", f_join},
      {"last", f_last},
      {"length", f_length},
      {"list", f_list},
      {"lower", f_lower},
      {"map", f_map},
      {"max", f_max},
      {"min", f_min},
      {"reject", f_reject},
      {"rejectattr", f_rejectattr},
      {"replace", f_replace},
      {"reverse", f_reverse},
      {"round", f_round},
      {"safe", f_safe},
      {"select", f_select},
      {"selectattr", f_selectattr},
      {"sort", f_sort},
      {"string", f_string},
      {"sum", f_sum},
      {"title", f_title},
      {"tojson", f_tojson},
      {"trim", f_trim},
      {"unique", f_unique},
      {"upper", f_upper},
      {"wordcount", f_wordcount},
  };
  return table;
}

}  // namespace

bool has_filter(std::string_view name) { return filter_table().count(name) > 0; }

Value apply_filter(Interpreter& in, std::string_view name, Value input, CallArgs args) {
  const auto& table = filter_table();
  auto it = table.find(name);
  if (it == table.end()) render_fail("No filter named '{}'.", name);
  in.charge(1);
  return it->second(in, std::move(input), std::move(args));
}

}  // namespace canopy::jinja
