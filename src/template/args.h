// Binds call arguments to a Python-style signature, for built-in filters, tests, methods and
// functions: f(a, b=..., c=...) called as f(1, c=2).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "template/value.h"

namespace canopy::jinja {

class BoundArgs {
 public:
  // Throws RenderError naming `function` for too many positional arguments, an unknown keyword,
  // or an argument given twice. With `variadic`, extra positional and keyword arguments are kept
  // in extra_positional / extra_keyword instead.
  BoundArgs(std::string_view function, CallArgs args, std::initializer_list<std::string_view> params,
            bool variadic = false)
      : values_(params.size()), given_(params.size(), false) {
    const std::vector<std::string_view> names(params);
    for (size_t i = 0; i < args.positional.size(); ++i) {
      if (i < names.size()) {
        values_[i] = std::move(args.positional[i]);
        given_[i] = true;
      } else if (variadic) {
        extra_positional.push_back(std::move(args.positional[i]));
      } else {
        render_fail("{}() takes at most {} argument(s) ({} given)", function, names.size(), args.positional.size());
      }
    }
    for (auto& [key, value] : args.keyword) {
      size_t index = names.size();
      for (size_t i = 0; i < names.size(); ++i)
        if (names[i] == key) index = i;
      if (index == names.size()) {
        if (!variadic) render_fail("{}() got an unexpected keyword argument '{}'", function, key);
        extra_keyword.emplace_back(std::move(key), std::move(value));
        continue;
      }
      if (given_[index]) render_fail("{}() got multiple values for argument '{}'", function, key);
      values_[index] = std::move(value);
      given_[index] = true;
    }
  }

  bool has(size_t i) const { return given_[i]; }
  // The argument, or `fallback` when it was not given.
  const Value& get(size_t i, const Value& fallback) const { return given_[i] ? values_[i] : fallback; }
  const Value& get(size_t i) const { return values_[i]; }

  std::vector<Value> extra_positional;
  std::vector<std::pair<std::string, Value>> extra_keyword;

 private:
  std::vector<Value> values_;
  std::vector<bool> given_;
};

}  // namespace canopy::jinja
