// config.json from an untrusted folder: inputs the config fuzzer (tests/fuzz/fuzz_json_config)
// found or that it cannot reach with its small inputs. Each must end in a canopy::Error.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "model/config.h"

namespace canopy {
namespace {

std::string error_of(const std::string& config) {
  try {
    (void)parse_hf_config(config, "", "untrusted/config.json");
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no canopy::Error for " << config.substr(0, 80);
  return "";
}

// nlohmann throws out_of_range, not parse_error, for a number beyond double's range.
TEST(ModelConfigUntrusted, NumberOverflowIsAnError) {
  const std::string msg = error_of(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 1e400})");
  EXPECT_NE(msg.find("untrusted/config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1e400"), std::string::npos) << msg;
}

// A value nested a million arrays deep: named by its kind, not dumped (which would recurse a
// million frames deep and put megabytes into the message).
TEST(ModelConfigUntrusted, DeeplyNestedValueIsDescribedNotDumped) {
  const std::string deep = std::string(1 << 20, '[') + std::string(1 << 20, ']');
  const std::string msg = error_of(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": )" + deep + "}");
  EXPECT_NE(msg.find("hidden_size"), std::string::npos) << msg.substr(0, 200);
  EXPECT_NE(msg.find("a JSON array"), std::string::npos) << msg.substr(0, 200);
  EXPECT_LT(msg.size(), 500u);
}

}  // namespace
}  // namespace canopy
