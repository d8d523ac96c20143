// libFuzzer target: arbitrary bytes as a safetensors file. Parsing may refuse the input with
// canopy::Error; anything else (a crash, a sanitizer report, another exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_common.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace canopy;
  try {
    const auto source = open_safetensors_memory(std::span<const uint8_t>(data, size), "fuzz.safetensors");
    fuzz::decode_all(*source);
  } catch (const Error&) {
    // A refused input: fine.
  }
  return 0;
}
