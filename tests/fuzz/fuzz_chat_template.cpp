// libFuzzer target for the chat template interpreter: the input is a template (chat templates come
// from model repositories, so they are untrusted input). It is parsed and rendered on a small
// conversation with tight budgets; any canopy::Error is an expected outcome, anything else
// (a crash, a sanitizer report, a hang past the budgets) is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "template/chat_template.h"

namespace {

const nlohmann::ordered_json& conversation() {
  static const auto messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "sys"},
    {"role": "user", "content": "héllo 👋", "name": "u"},
    {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": [1, 2.5, true]}}}]},
    {"role": "tool", "content": "{\"ok\": 1}"},
    {"role": "assistant", "content": "<think>x</think>done", "reasoning_content": "r"}])");
  return messages;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string source(reinterpret_cast<const char*>(data), size);
  try {
    const auto tmpl = canopy::ChatTemplate::from_string(source);
    canopy::ChatRenderOptions options;
    options.limits.max_steps = 100000;
    options.limits.max_output_bytes = 1 << 16;
    options.limits.max_call_depth = 20;
    options.now = std::tm{};
    options.special_tokens = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
    options.tools = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "f"}}])");
    options.variables = {{"enable_thinking", false}};
    tmpl.render(conversation(), options);
  } catch (const canopy::Error&) {
  }
  return 0;
}
