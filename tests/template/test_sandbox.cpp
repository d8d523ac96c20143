// The sandbox: templates that loop, recurse or grow without end stop at a budget with a clear
// error; syntax and runtime errors name their line; only the data passed in is reachable.
#include <gtest/gtest.h>
#include <pthread.h>

#include <memory>

#include <string>
#include <thread>
#include <vector>

#include "template/chat_template.h"
#include "template_testing.h"

namespace canopy {
namespace {

const nlohmann::ordered_json kHello = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hello"}])");

std::string render(const std::string& source, const ChatRenderOptions& options = {}) {
  return ChatTemplate::from_string(source).render(kHello, options);
}

// The message of the canopy::Error that rendering `source` throws ("" if it renders).
std::string error_of(const std::string& source, const ChatRenderOptions& options = {}) {
  try {
    render(source, options);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR_CONTAINS(source, needle)                                     \
  do {                                                                           \
    const std::string message = error_of(source);                                \
    EXPECT_NE(message.find(needle), std::string::npos) << "error: " << message;  \
  } while (0)

TEST(Sandbox, EndlessRecursionStopsAtTheCallDepth) {
  EXPECT_ERROR_CONTAINS("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "called recursively more than 100 levels");
  // Mutual recursion too.
  EXPECT_ERROR_CONTAINS("{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}",
                        "recursively");
}

TEST(Sandbox, ExponentialWorkStopsAtTheStepBudget) {
  // Each call makes two calls, 2^60 in all: bounded depth, unbounded work.
  EXPECT_ERROR_CONTAINS("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
                        "budget of 10000000 evaluation steps");
  // Nested loops over the largest ranges the sandbox allows.
  EXPECT_ERROR_CONTAINS("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                        "evaluation steps");
}

TEST(Sandbox, StepBudgetIsConfigurable) {
  ChatRenderOptions options;
  options.limits.max_steps = 1000;
  EXPECT_NE(error_of("{% for i in range(2000) %}{{ i }}{% endfor %}", options).find("budget of 1000 evaluation steps"),
            std::string::npos);
  EXPECT_EQ(render("{% for i in range(10) %}{{ i }}{% endfor %}", options), "0123456789");
}

TEST(Sandbox, OutputAndStringsStopAtTheSizeBudget) {
  EXPECT_ERROR_CONTAINS("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "output exceeds its budget");
  // A string that doubles at every step, never printed.
  EXPECT_ERROR_CONTAINS("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                        "over its budget");
  EXPECT_ERROR_CONTAINS("{{ 'x' * 100000000000 }}", "over its budget");
  EXPECT_ERROR_CONTAINS("{{ [1] * 100000000 }}", "over its budget");
  ChatRenderOptions small;
  small.limits.max_output_bytes = 10;
  EXPECT_NE(error_of("{{ 'abcdefghijk' }}", small).find("budget of 10 bytes"), std::string::npos);
  EXPECT_EQ(render("{{ 'abcdefghij' }}", small), "abcdefghij");
}

TEST(Sandbox, PrintingAHugeValueStopsAtTheBudget) {
  ChatRenderOptions options;
  options.limits.max_output_bytes = 1000;
  const std::string message = error_of("{% set big = range(10000)|list %}{{ big }}", options);
  EXPECT_NE(message.find("more than 1000 bytes"), std::string::npos) << message;
}

TEST(Sandbox, DeepNestingIsRejectedNotACrash) {
  std::string deep = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_NE(error_of(deep).find("nested more than"), std::string::npos);
  std::string deep_ifs;
  for (int i = 0; i < 1000; ++i) deep_ifs += "{% if true %}";
  EXPECT_NE(error_of(deep_ifs).find("nested more than"), std::string::npos);
  // Values nested without end: a list inside a list inside a list...
  EXPECT_ERROR_CONTAINS("{% set ns = namespace(v=[]) %}{% for i in range(1000) %}{% set ns.v = [ns.v] %}{% endfor %}",
                        "nested more than");
}

TEST(Sandbox, DeeplyNestedJsonInputIsRejectedNotACrash) {
  // Nested far beyond anything a recursive copy or print could survive.
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  const std::string conversation = R"([{"role": "user", "content": )" + deep + "}]";
  EXPECT_THROW(parse_conversation(conversation), Error);
  const auto messages = nlohmann::ordered_json::parse(conversation);
  try {
    ChatTemplate::from_string("{{ messages }}").render(messages);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nests more than"), std::string::npos) << e.what();
  }
}

// Runs `fn` on a thread with a small stack, as a server's worker might have.
template <typename Fn>
void on_small_stack(size_t bytes, Fn fn) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, bytes);
  pthread_t thread;
  auto* task = new Fn(std::move(fn));
  ASSERT_EQ(pthread_create(&thread, &attr, [](void* p) -> void* {
              std::unique_ptr<Fn> f(static_cast<Fn*>(p));
              (*f)();
              return nullptr;
            }, task), 0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
}

// Sanitizers pad every stack frame: give their builds more room.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kStackScale = 8;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr size_t kStackScale = 8;
#else
constexpr size_t kStackScale = 1;
#endif
#else
constexpr size_t kStackScale = 1;
#endif

TEST(Sandbox, WorstCaseNestingFitsInOneMegabyteOfStack) {
  // Macro recursion with the recursive call deep inside each level's expression: the evaluation
  // nesting budget (not the C++ stack) must be what stops it.
  for (int wrap : {0, 10, 40}) {
    std::string e = "f(n - 1)";
    for (int i = 0; i < wrap; ++i) e = "(" + e + " if true else 0)";
    const std::string source = "{% macro f(n) %}{% if n > 0 %}{{ " + e + " }}{% endif %}{% endmacro %}{{ f(1000) }}";
    std::string message;
    on_small_stack(kStackScale << 20, [&] { message = error_of(source); });
    EXPECT_TRUE(message.find("nested more than") != std::string::npos ||
                message.find("called recursively more than") != std::string::npos)
        << message;
  }
}

TEST(Sandbox, NamespacesCannotHoldThemselves) {
  EXPECT_ERROR_CONTAINS("{% set ns = namespace() %}{% set ns.me = ns %}", "cannot hold a namespace");
  EXPECT_ERROR_CONTAINS("{% set ns = namespace() %}{% set ns.me = [ns] %}", "cannot hold a namespace");
}

TEST(Sandbox, OnlyTheDataPassedInIsReachable) {
  // Python internals are not attributes of anything.
  EXPECT_EQ(render("{{ messages.__class__ }}|{{ ''.__class__ }}|{{ range.__globals__ }}|{{ messages|attr('__len__') }}"),
            "|||");
  EXPECT_ERROR_CONTAINS("{{ ''.__class__.__mro__ }}", "has no attribute");
  EXPECT_ERROR_CONTAINS("{{ messages.append(1) }}", "unsafe");
  EXPECT_ERROR_CONTAINS("{{ messages[0].update({}) }}", "unsafe");
  EXPECT_ERROR_CONTAINS("{{ cycler() }}", "is undefined");
  EXPECT_ERROR_CONTAINS("{% include 'x' %}", "not supported");
  EXPECT_ERROR_CONTAINS("{% import 'x' as y %}", "not supported");
  EXPECT_ERROR_CONTAINS("{% extends 'x' %}", "not supported");
}

TEST(Sandbox, UndefinedBehavesLikeJinja2) {
  EXPECT_EQ(render("[{{ nope }}]{{ nope is defined }}{{ nope|length }}{{ nope ~ 'x' }}{{ messages[0].nope is defined }}"),
            "[]False0xFalse");
  EXPECT_ERROR_CONTAINS("{{ nope.attr }}", "'nope' is undefined");
  EXPECT_ERROR_CONTAINS("{{ messages[0].nope.deeper }}", "'dict object' has no attribute 'nope'");
  EXPECT_ERROR_CONTAINS("{{ nope + 1 }}", "'nope' is undefined");
}

TEST(Sandbox, ErrorsNameTheLine) {
  EXPECT_ERROR_CONTAINS("line one\n{% if true %}\n{{ 1 + }}\n{% endif %}", "syntax error: line 3");
  EXPECT_ERROR_CONTAINS("a\nb\n{{ 'x' + 1 }}", "chat template error: line 3: can only concatenate str");
  EXPECT_ERROR_CONTAINS("{% for m in messages %}\n\n{{ m.content.nope() }}{% endfor %}", "line 3");
  EXPECT_ERROR_CONTAINS("{% for x in y %}\n{% endif %}", "line 2");
  EXPECT_ERROR_CONTAINS("{% if true %}\n\nno end", "looking for 'elif' or 'else' or 'endif'");
  EXPECT_ERROR_CONTAINS("{# never closed", "missing end of comment");
  EXPECT_ERROR_CONTAINS("{{ 'never closed }}", "unterminated string");
  EXPECT_ERROR_CONTAINS("{% nosuchtag %}", "unknown tag 'nosuchtag'");
  EXPECT_ERROR_CONTAINS("{{ x|nosuchfilter }}", "No filter named 'nosuchfilter'");
  EXPECT_ERROR_CONTAINS("{% break %}", "'break' outside a for loop");
  EXPECT_ERROR_CONTAINS("{% macro m(a=1, b) %}{% endmacro %}", "non-default argument follows default argument");
}

TEST(Sandbox, RaiseExceptionCarriesTheTemplatesMessage) {
  try {
    render("{% if messages|length < 2 %}{{ raise_exception('Need at least ' ~ 2 ~ ' messages') }}{% endif %}");
    FAIL() << "expected ChatTemplateRaised";
  } catch (const ChatTemplateRaised& e) {
    EXPECT_STREQ(e.what(), "Need at least 2 messages");
  }
}

TEST(Sandbox, InvalidUtf8IsRejected) {
  EXPECT_THROW(ChatTemplate::from_string("bad \xff byte"), Error);
  const auto bad = nlohmann::ordered_json::array({{{"role", "user"}, {"content", "bad \xc3"}}});
  EXPECT_THROW(ChatTemplate::from_string("{{ messages }}").render(bad), Error);
}

TEST(Sandbox, RendersConcurrentlyFromOneTemplate) {
  const auto tmpl = ChatTemplate::from_string(
      "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
      "<{{ m.role }}>{{ m.content }}{% endfor %}{{ ns.n }}");
  std::vector<std::thread> threads;
  std::vector<std::string> results(8);
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      auto messages = nlohmann::ordered_json::array();
      for (size_t i = 0; i <= t; ++i) messages.push_back({{"role", "user"}, {"content", std::to_string(i)}});
      for (int rep = 0; rep < 50; ++rep) results[t] = tmpl.render(messages);
    });
  }
  for (auto& th : threads) th.join();
  for (size_t t = 0; t < results.size(); ++t) {
    std::string expected;
    for (size_t i = 0; i <= t; ++i) expected += "<user>" + std::to_string(i);
    EXPECT_EQ(results[t], expected + std::to_string(t + 1));
  }
}

TEST(Sandbox, MessagesAreNormalizedLikeHuggingFace) {
  // Null values are dropped; reasoning shows under both names.
  const auto messages = nlohmann::ordered_json::parse(
      R"([{"role": "assistant", "content": null, "reasoning": "because"}])");
  EXPECT_EQ(ChatTemplate::from_string("{{ messages[0].content is defined }}|{{ messages[0]|tojson }}").render(messages),
            R"(False|{"thinking": "because", "role": "assistant", "reasoning": "because", "reasoning_content": "because"})");
  EXPECT_THROW(ChatTemplate::from_string("x").render(nlohmann::ordered_json::array()), Error);
  EXPECT_THROW(ChatTemplate::from_string("x").render(nlohmann::ordered_json::parse(R"([1])")), Error);
  ChatRenderOptions options;
  options.variables = {{"messages", 1}};
  EXPECT_THROW(render("x", options), Error);
}

TEST(Sandbox, VariablesAndSpecialTokens) {
  auto tmpl = ChatTemplate::from_string("{{ bos_token }}|{{ eos_token }}|{{ flag }}|{{ tools }}|{{ add_generation_prompt }}");
  tmpl.set_special_token("bos_token", "<s>");
  ChatRenderOptions options;
  options.special_tokens["eos_token"] = "</s>";
  options.variables = {{"flag", true}};
  options.add_generation_prompt = false;
  EXPECT_EQ(tmpl.render(kHello, options), "<s>|</s>|True|None|False");
}

}  // namespace
}  // namespace canopy
