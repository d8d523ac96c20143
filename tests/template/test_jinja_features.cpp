// One Jinja feature per template, compared byte for byte with jinja2 in Hugging Face's setup
// (goldens: tests/data/template/jinja_features.json from tools/make_chat_template_goldens.py).
#include <gtest/gtest.h>

#include <cstring>

#include "template/interpreter.h"
#include "template/parser.h"
#include "template/py_text.h"
#include "template/template_error.h"
#include "template_testing.h"

namespace canopy {
namespace {

std::string render_with_context(const std::string& source, const nlohmann::ordered_json& context) {
  const jinja::Body body = jinja::parse_template(source);
  auto builtins = std::make_shared<jinja::Scope>(nullptr);
  jinja::add_builtins(*builtins);
  auto scope = std::make_shared<jinja::Scope>(builtins);
  for (const auto& [name, value] : context.items()) scope->set(name, jinja::from_json(value));
  jinja::Interpreter interpreter(jinja::RenderLimits{}, testing::golden_now());
  return interpreter.render(body, scope);
}

TEST(JinjaFeatures, MatchJinja2) {
  const auto golden = testing::load_template_golden("jinja_features.json");
  const auto& context = golden["context"];
  int outputs = 0, raised = 0, errors = 0;
  for (const auto& c : golden["cases"]) {
    const std::string source = c["source"];
    SCOPED_TRACE("template: " + source);
    if (c.contains("output")) {
      ++outputs;
      try {
        EXPECT_EQ(render_with_context(source, context), c["output"].get<std::string>());
      } catch (const std::exception& e) {
        ADD_FAILURE() << "unexpected error: " << e.what();
      }
    } else if (c.contains("raised")) {
      ++raised;
      try {
        render_with_context(source, context);
        ADD_FAILURE() << "expected raise_exception: " << c["raised"];
      } catch (const ChatTemplateRaised& e) {
        EXPECT_EQ(std::string(e.what()), c["raised"].get<std::string>());
      } catch (const std::exception& e) {
        ADD_FAILURE() << "expected raise_exception, got: " << e.what();
      }
    } else {
      ++errors;
      // jinja2 fails on this template; canopy must fail too, with a canopy::Error that names the
      // template (syntax or render error), not with raise_exception's error or a crash.
      try {
        const std::string out = render_with_context(source, context);
        ADD_FAILURE() << "expected an error like jinja2's (" << c["error"] << "), rendered: " << out;
      } catch (const ChatTemplateRaised& e) {
        ADD_FAILURE() << "expected a template error, got raise_exception: " << e.what();
      } catch (const Error& e) {
        EXPECT_NE(std::strstr(e.what(), "chat template"), nullptr) << e.what();
      }
    }
  }
  EXPECT_GT(outputs, 80);
  EXPECT_GT(errors, 20);
  EXPECT_GE(raised, 1);
}

TEST(JinjaFeatures, FloatReprMatchesPython) {
  const auto golden = testing::load_template_golden("jinja_features.json");
  int checked = 0;
  for (const auto& entry : golden["float_reprs"]) {
    const uint64_t bits = entry[0].get<uint64_t>();
    double value = 0;
    std::memcpy(&value, &bits, sizeof value);
    EXPECT_EQ(jinja::py::float_repr(value), entry[1].get<std::string>()) << "bits " << bits;
    ++checked;
  }
  EXPECT_GT(checked, 400);
}

}  // namespace
}  // namespace canopy
