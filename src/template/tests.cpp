// jinja2's built-in tests (`x is defined`, `x is string`, `n is divisibleby 3`, ...).
#include <map>

#include "template/args.h"
#include "template/interpreter.h"
#include "template/py_text.h"

namespace canopy::jinja {

namespace {

using TestFn = bool (*)(Interpreter&, const Value&, CallArgs);

const Value& one_arg(BoundArgs& a, std::string_view test) {
  if (!a.has(0)) render_fail("the test '{}' needs an argument", test);
  return a.get(0);
}

#define CANOPY_SIMPLE_TEST(fn, name, expr)                \
  bool fn(Interpreter&, const Value& v, CallArgs args) {  \
    BoundArgs a(name, std::move(args), {});               \
    return (expr);                                        \
  }

CANOPY_SIMPLE_TEST(t_defined, "defined", !v.is_undefined())
CANOPY_SIMPLE_TEST(t_undefined, "undefined", v.is_undefined())
CANOPY_SIMPLE_TEST(t_none, "none", v.is_none())
CANOPY_SIMPLE_TEST(t_boolean, "boolean", v.is_bool())
CANOPY_SIMPLE_TEST(t_false, "false", v.is_bool() && !v.as_bool())
CANOPY_SIMPLE_TEST(t_true, "true", v.is_bool() && v.as_bool())
CANOPY_SIMPLE_TEST(t_integer, "integer", v.is_int())
CANOPY_SIMPLE_TEST(t_float, "float", v.is_float())
CANOPY_SIMPLE_TEST(t_number, "number", v.is_number())
CANOPY_SIMPLE_TEST(t_string, "string", v.is_string())
CANOPY_SIMPLE_TEST(t_mapping, "mapping", v.is_dict())
// Undefined is iterable (it iterates as empty) and a sequence (it has a length of 0).
CANOPY_SIMPLE_TEST(t_iterable, "iterable", v.is_undefined() || v.is_string() || v.is_list() || v.is_dict())
CANOPY_SIMPLE_TEST(t_sequence, "sequence",
                   v.is_undefined() || v.is_string() || v.is_dict() ||
                       (v.is_list() && v.list_kind() != ListKind::DictItems && v.list_kind() != ListKind::DictKeys &&
                        v.list_kind() != ListKind::DictValues))
CANOPY_SIMPLE_TEST(t_callable, "callable", v.is_callable())
CANOPY_SIMPLE_TEST(t_escaped, "escaped", ((void)v, false))  // canopy has no Markup strings

#undef CANOPY_SIMPLE_TEST

bool t_lower(Interpreter& in, const Value& v, CallArgs args) {
  BoundArgs a("lower", std::move(args), {});
  return py::is_lower(in.str(v));
}

bool t_upper(Interpreter& in, const Value& v, CallArgs args) {
  BoundArgs a("upper", std::move(args), {});
  return py::is_upper(in.str(v));
}

bool parity(Interpreter& in, const Value& v, int64_t remainder) {
  const Value r = binary_op(in, BinaryOp::Mod, v, Value::integer(2));
  return equal(r, Value::integer(remainder));
}

bool t_odd(Interpreter& in, const Value& v, CallArgs args) {
  BoundArgs a("odd", std::move(args), {});
  return parity(in, v, 1);
}

bool t_even(Interpreter& in, const Value& v, CallArgs args) {
  BoundArgs a("even", std::move(args), {});
  return parity(in, v, 0);
}

bool t_divisibleby(Interpreter& in, const Value& v, CallArgs args) {
  BoundArgs a("divisibleby", std::move(args), {"num"});
  return equal(binary_op(in, BinaryOp::Mod, v, one_arg(a, "divisibleby")), Value::integer(0));
}

bool t_sameas(Interpreter&, const Value& v, CallArgs args) {
  BoundArgs a("sameas", std::move(args), {"other"});
  const Value& other = one_arg(a, "sameas");
  if (v.type() != other.type()) return false;
  switch (v.type()) {
    case Value::Type::Undefined: return false;  // two undefined values are different objects
    case Value::Type::None: return true;
    case Value::Type::Bool: return v.as_bool() == other.as_bool();
    case Value::Type::Int:
      // CPython caches small ints, so `1 is sameas 1` holds there.
      return v.as_int() == other.as_int() && v.as_int() >= -5 && v.as_int() <= 256;
    case Value::Type::Float: return false;
    default: return v.identity() == other.identity();
  }
}

template <CompareOp op>
bool t_compare(Interpreter&, const Value& v, CallArgs args) {
  BoundArgs a("comparison test", std::move(args), {"other"});
  const Value& other = one_arg(a, "comparison");
  switch (op) {
    case CompareOp::Eq: return equal(v, other);
    case CompareOp::Ne: return !equal(v, other);
    case CompareOp::Lt: return less(v, other);
    case CompareOp::Le: return less(v, other) || equal(v, other);
    case CompareOp::Gt: return less(other, v);
    case CompareOp::Ge: return less(other, v) || equal(v, other);
    default: return false;
  }
}

bool t_in(Interpreter&, const Value& v, CallArgs args) {
  BoundArgs a("in", std::move(args), {"seq"});
  return contains(one_arg(a, "in"), v);
}

bool t_filter(Interpreter&, const Value& v, CallArgs args) {
  BoundArgs a("filter", std::move(args), {});
  return v.is_string() && has_filter(v.str());
}

bool t_test(Interpreter&, const Value& v, CallArgs args) {
  BoundArgs a("test", std::move(args), {});
  return v.is_string() && has_test(v.str());
}

const std::map<std::string_view, TestFn>& test_table() {
  static const std::map<std::string_view, TestFn> table = {
      {"!=", t_compare<CompareOp::Ne>},
      {"<", t_compare<CompareOp::Lt>},
      {"<=", t_compare<CompareOp::Le>},
      {"==", t_compare<CompareOp::Eq>},
      {">", t_compare<CompareOp::Gt>},
      {">=", t_compare<CompareOp::Ge>},
      {"boolean", t_boolean},
      {"callable", t_callable},
      {"defined", t_defined},
      {"divisibleby", t_divisibleby},
      {"eq", t_compare<CompareOp::Eq>},
      {"equalto", t_compare<CompareOp::Eq>},
      {"escaped", t_escaped},
      {"even", t_even},
      {"false", t_false},
      {"filter", t_filter},
      {"float", t_float},
      {"ge", t_compare<CompareOp::Ge>},
      {"greaterthan", t_compare<CompareOp::Gt>},
      {"gt", t_compare<CompareOp::Gt>},
      {"in", t_in},
      {"integer", t_integer},
      {"iterable", t_iterable},
      {"le", t_compare<CompareOp::Le>},
      {"lessthan", t_compare<CompareOp::Lt>},
      {"lower", t_lower},
      {"lt", t_compare<CompareOp::Lt>},
      {"mapping", t_mapping},
      {"ne", t_compare<CompareOp::Ne>},
      {"none", t_none},
      {"number", t_number},
      {"odd", t_odd},
      {"sameas", t_sameas},
      {"sequence", t_sequence},
      {"string", t_string},
      {"test", t_test},
      {"true", t_true},
      {"undefined", t_undefined},
      {"upper", t_upper},
  };
  return table;
}

}  // namespace

bool has_test(std::string_view name) { return test_table().count(name) > 0; }

bool apply_test(Interpreter& in, std::string_view name, const Value& input, CallArgs args) {
  const auto& table = test_table();
  auto it = table.find(name);
  if (it == table.end()) render_fail("No test named '{}' found.", name);
  in.charge(1);
  return it->second(in, input, std::move(args));
}

}  // namespace canopy::jinja
