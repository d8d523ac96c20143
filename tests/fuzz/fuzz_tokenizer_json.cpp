// libFuzzer target: arbitrary bytes as a tokenizer.json. Loading may refuse the input with
// canopy::Error; a tokenizer that loads must then encode and decode a fixed text without failing.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace canopy;
  try {
    const Tokenizer tok =
        Tokenizer::from_hf_json_text(std::string_view(reinterpret_cast<const char*>(data), size), "", "fuzz.json");
    const auto ids = tok.encode("Hello, wörld! 12345 <s> \xF0\x9F\xA6\x99 \xFF", true, true);
    (void)tok.decode(ids);
    (void)tok.decode(ids, true);
  } catch (const Error&) {
    // A refused input: fine.
  }
  return 0;
}
