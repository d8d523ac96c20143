// libFuzzer target: arbitrary bytes as a Hugging Face config.json (and, split at the first NUL
// byte, a generation_config.json), through the model layer's parser and checks. Refusing the
// input with canopy::Error is fine; anything else (a crash, a sanitizer report, another
// exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  const std::string config = input.substr(0, split);
  const std::string generation = split == std::string::npos ? "" : input.substr(split + 1);
  try {
    const canopy::ModelConfig c = canopy::parse_hf_config(config, generation, "fuzz/config.json");
    (void)c.max_context();
    (void)c.summary();
  } catch (const canopy::Error&) {
    // A refused input: fine.
  }
  return 0;
}
