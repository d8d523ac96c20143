// Python's arithmetic, `in` and printf-style `%` formatting, as jinja2 evaluates them.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "template/interpreter.h"
#include "template/py_text.h"

namespace canopy::jinja {

namespace {

[[noreturn]] void overflow() { render_fail("integer overflow (chat templates compute with 64-bit integers)"); }

int64_t int_floordiv(int64_t a, int64_t b) {
  if (b == 0) render_fail("integer division or modulo by zero");
  if (a == INT64_MIN && b == -1) overflow();
  int64_t q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t int_mod(int64_t a, int64_t b) {
  if (b == 0) render_fail("integer division or modulo by zero");
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

// CPython's float_divmod.
void float_divmod(double vx, double wx, double& floordiv, double& mod) {
  mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0.0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
}

int64_t int_pow(int64_t base, int64_t exp) {
  int64_t result = 1;
  while (exp > 0) {
    if ((exp & 1) && __builtin_mul_overflow(result, base, &result)) overflow();
    exp >>= 1;
    if (exp > 0 && __builtin_mul_overflow(base, base, &base)) overflow();
  }
  return result;
}

[[noreturn]] void unsupported(std::string_view op, const Value& a, const Value& b) {
  render_fail("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name());
}

bool is_plain_sequence(const Value& v) {
  return v.is_list() && (v.list_kind() == ListKind::List || v.list_kind() == ListKind::Tuple);
}

Value repeat(Interpreter& in, const Value& seq, int64_t times) {
  if (times <= 0) return seq.is_string() ? Value::string("") : Value::list({}, seq.list_kind());
  if (seq.is_string()) {
    const size_t n = seq.str().size();
    if (n > 0 && static_cast<uint64_t>(times) > in.max_string_bytes() / n) in.check_string_size(SIZE_MAX);
    in.check_string_size(n * static_cast<size_t>(times));
    in.charge(n * static_cast<size_t>(times) / 64);
    std::string out;
    out.reserve(n * static_cast<size_t>(times));
    for (int64_t i = 0; i < times; ++i) out += seq.str();
    return Value::string(std::move(out));
  }
  const size_t n = seq.items().size();
  if (n > 0 && static_cast<uint64_t>(times) > SIZE_MAX / n) in.check_list_size(SIZE_MAX);
  in.check_list_size(n * static_cast<size_t>(times));
  in.charge(n * static_cast<size_t>(times));
  std::vector<Value> out;
  out.reserve(n * static_cast<size_t>(times));
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), seq.items().begin(), seq.items().end());
  return Value::list(std::move(out), seq.list_kind());
}

}  // namespace

Value binary_op(Interpreter& in, BinaryOp op, const Value& a, const Value& b) {
  if (a.is_undefined()) a.fail_undefined();
  if (b.is_undefined()) b.fail_undefined();
  const bool numbers = a.is_number() && b.is_number();
  const bool ints = a.is_integral() && b.is_integral();
  switch (op) {
    case BinaryOp::Add:
      if (numbers) {
        if (!ints) return Value::floating(a.as_float() + b.as_float());
        int64_t r = 0;
        if (__builtin_add_overflow(a.as_int(), b.as_int(), &r)) overflow();
        return Value::integer(r);
      }
      if (a.is_string() && b.is_string()) {
        in.check_string_size(a.str().size() + b.str().size());
        in.charge((a.str().size() + b.str().size()) / 64);
        return Value::string(a.str() + b.str());
      }
      if (is_plain_sequence(a) && is_plain_sequence(b) && a.list_kind() == b.list_kind()) {
        in.check_list_size(a.items().size() + b.items().size());
        in.charge(a.items().size() + b.items().size());
        std::vector<Value> out = a.items();
        out.insert(out.end(), b.items().begin(), b.items().end());
        return Value::list(std::move(out), a.list_kind());
      }
      if (a.is_string()) render_fail("can only concatenate str (not \"{}\") to str", b.type_name());
      if (is_plain_sequence(a))
        render_fail("can only concatenate {} (not \"{}\") to {}", a.type_name(), b.type_name(), a.type_name());
      unsupported("+", a, b);
    case BinaryOp::Sub:
      if (!numbers) unsupported("-", a, b);
      if (!ints) return Value::floating(a.as_float() - b.as_float());
      {
        int64_t r = 0;
        if (__builtin_sub_overflow(a.as_int(), b.as_int(), &r)) overflow();
        return Value::integer(r);
      }
    case BinaryOp::Mul:
      if (numbers) {
        if (!ints) return Value::floating(a.as_float() * b.as_float());
        int64_t r = 0;
        if (__builtin_mul_overflow(a.as_int(), b.as_int(), &r)) overflow();
        return Value::integer(r);
      }
      if ((a.is_string() || is_plain_sequence(a)) && b.is_integral()) return repeat(in, a, b.as_int());
      if ((b.is_string() || is_plain_sequence(b)) && a.is_integral()) return repeat(in, b, a.as_int());
      if ((a.is_string() || is_plain_sequence(a)) && b.is_number())
        render_fail("can't multiply sequence by non-int of type '{}'", b.type_name());
      unsupported("*", a, b);
    case BinaryOp::Div:
      if (!numbers) unsupported("/", a, b);
      if (b.as_float() == 0.0) render_fail("division by zero");
      return Value::floating(a.as_float() / b.as_float());
    case BinaryOp::FloorDiv:
      if (!numbers) unsupported("//", a, b);
      if (ints) return Value::integer(int_floordiv(a.as_int(), b.as_int()));
      if (b.as_float() == 0.0) render_fail("float floor division by zero");
      {
        double q = 0, r = 0;
        float_divmod(a.as_float(), b.as_float(), q, r);
        return Value::floating(q);
      }
    case BinaryOp::Mod:
      if (a.is_string()) return Value::string(percent_format(in, a.str(), b));
      if (!numbers) unsupported("%", a, b);
      if (ints) return Value::integer(int_mod(a.as_int(), b.as_int()));
      if (b.as_float() == 0.0) render_fail("float modulo");
      {
        double q = 0, r = 0;
        float_divmod(a.as_float(), b.as_float(), q, r);
        return Value::floating(r);
      }
    case BinaryOp::Pow:
      if (!numbers) unsupported("** or pow()", a, b);
      if (ints && b.as_int() >= 0) return Value::integer(int_pow(a.as_int(), b.as_int()));
      {
        const double x = a.as_float();
        const double y = b.as_float();
        if (x == 0.0 && y < 0) render_fail("0.0 cannot be raised to a negative power");
        if (x < 0 && y != std::floor(y)) render_fail("a negative number raised to a fractional power is complex");
        return Value::floating(std::pow(x, y));
      }
    case BinaryOp::And:
    case BinaryOp::Or: break;  // short-circuit, evaluated by the interpreter
  }
  CANOPY_ASSERT(false);
}

bool contains(const Value& container, const Value& item) {
  switch (container.type()) {
    case Value::Type::Undefined: return false;  // iterating an undefined value yields nothing
    case Value::Type::String:
      if (!item.is_string())
        render_fail("'in <string>' requires string as left operand, not {}", item.type_name());
      return container.str().find(item.str()) != std::string::npos;
    case Value::Type::List:
      for (const auto& v : container.items())
        if (equal(v, item)) return true;
      return false;
    case Value::Type::Dict:
      if (item.is_list() && item.list_kind() != ListKind::Tuple) render_fail("unhashable type: '{}'", item.type_name());
      if (item.is_dict()) render_fail("unhashable type: 'dict'");
      return container.dict().find(item) != nullptr;
    default: break;
  }
  render_fail("argument of type '{}' is not iterable", container.type_name());
}

// ---- printf-style formatting -----------------------------------------------------------------

namespace {

struct Spec {
  bool left = false, plus = false, space = false, zero = false, alt = false;
  int width = -1;
  int precision = -1;
};

std::string pad(const std::string& s, const Spec& spec) {
  const auto len = static_cast<int>(py::length(s));
  if (spec.width <= len) return s;
  const std::string fill(static_cast<size_t>(spec.width - len), ' ');
  return spec.left ? s + fill : fill + s;
}

std::string c_format(const Spec& spec, char conv, const char* length, auto value) {
  std::string f = "%";
  if (spec.left) f += '-';
  if (spec.plus) f += '+';
  if (spec.space) f += ' ';
  if (spec.zero) f += '0';
  if (spec.alt) f += '#';
  if (spec.width >= 0) f += std::to_string(spec.width);
  if (spec.precision >= 0) {
    f += '.';
    f += std::to_string(spec.precision);
  }
  f += length;
  f += conv;
  const int n = std::snprintf(nullptr, 0, f.c_str(), value);
  std::string out(static_cast<size_t>(std::max(n, 0)), '\0');
  std::snprintf(out.data(), out.size() + 1, f.c_str(), value);
  return out;
}

}  // namespace

std::string percent_format(Interpreter& in, const std::string& format, const Value& args) {
  std::vector<Value> positional;
  const Dict* mapping = nullptr;
  if (args.is_list() && args.list_kind() == ListKind::Tuple) {
    positional = args.items();
  } else if (args.is_dict()) {
    mapping = &args.dict();
    positional.push_back(args);
  } else {
    positional.push_back(args);
  }
  size_t next_arg = 0;
  auto take = [&]() -> const Value& {
    if (next_arg >= positional.size()) render_fail("not enough arguments for format string");
    return positional[next_arg++];
  };
  std::string out;
  size_t i = 0;
  const size_t n = format.size();
  while (i < n) {
    const size_t pct = format.find('%', i);
    if (pct == std::string::npos) {
      out.append(format, i, std::string::npos);
      break;
    }
    out.append(format, i, pct - i);
    i = pct + 1;
    if (i >= n) render_fail("incomplete format");
    const Value* mapped = nullptr;
    if (format[i] == '(') {
      const size_t close = format.find(')', i);
      if (close == std::string::npos) render_fail("incomplete format key");
      if (mapping == nullptr) render_fail("format requires a mapping");
      mapped = mapping->find(std::string_view(format).substr(i + 1, close - i - 1));
      if (mapped == nullptr) render_fail("format key '{}' not found", format.substr(i + 1, close - i - 1));
      i = close + 1;
    }
    Spec spec;
    for (; i < n; ++i) {
      const char c = format[i];
      if (c == '-') spec.left = true;
      else if (c == '+') spec.plus = true;
      else if (c == ' ') spec.space = true;
      else if (c == '0') spec.zero = true;
      else if (c == '#') spec.alt = true;
      else break;
    }
    auto number = [&](int& field) {
      if (i < n && format[i] == '*') {
        const Value& v = take();
        if (!v.is_integral()) render_fail("* wants int");
        field = static_cast<int>(std::clamp<int64_t>(v.as_int(), -100000, 100000));
        if (field < 0) {
          spec.left = true;
          field = -field;
        }
        ++i;
        return;
      }
      int64_t v = -1;
      while (i < n && format[i] >= '0' && format[i] <= '9') {
        v = std::max<int64_t>(v, 0) * 10 + (format[i] - '0');
        if (v > 100000) render_fail("format width or precision too large");
        ++i;
      }
      if (v >= 0) field = static_cast<int>(v);
    };
    number(spec.width);
    if (i < n && format[i] == '.') {
      ++i;
      spec.precision = 0;
      number(spec.precision);
    }
    while (i < n && (format[i] == 'h' || format[i] == 'l' || format[i] == 'L')) ++i;
    if (i >= n) render_fail("incomplete format");
    const char conv = format[i++];
    if (conv == '%') {
      out += '%';
      continue;
    }
    const Value& v = mapped != nullptr ? *mapped : take();
    std::string piece;
    switch (conv) {
      case 's':
      case 'r':
      case 'a': {
        std::string s = conv == 's' ? in.str(v) : to_repr(v, in.max_string_bytes());
        if (spec.precision >= 0) {
          const std::u32string t = py::decode(s);
          if (t.size() > static_cast<size_t>(spec.precision)) s = py::encode(std::u32string_view(t).substr(0, static_cast<size_t>(spec.precision)));
        }
        piece = pad(s, spec);
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'o':
      case 'x':
      case 'X': {
        if (!v.is_number()) render_fail("%{} format: a real number is required, not {}", conv, v.type_name());
        const long long x = v.is_float() ? static_cast<long long>(std::trunc(v.as_float())) : v.as_int();
        piece = c_format(spec, conv == 'i' || conv == 'u' ? 'd' : conv, "ll", x);
        break;
      }
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G': {
        if (!v.is_number()) render_fail("must be real number, not {}", v.type_name());
        piece = c_format(spec, conv, "", v.as_float());
        break;
      }
      case 'c': {
        std::string s;
        if (v.is_integral()) {
          if (v.as_int() < 0 || v.as_int() > 0x10FFFF) render_fail("%c arg not in range(0x110000)");
          py::append_utf8(s, static_cast<char32_t>(v.as_int()));
        } else if (v.is_string() && py::length(v.str()) == 1) {
          s = v.str();
        } else {
          render_fail("%c requires int or char");
        }
        piece = pad(s, spec);
        break;
      }
      default: render_fail("unsupported format character '{}'", conv);
    }
    in.check_string_size(out.size() + piece.size());
    out += piece;
  }
  if (mapping == nullptr && next_arg < positional.size())
    render_fail("not all arguments converted during string formatting");
  return out;
}

}  // namespace canopy::jinja
