// libFuzzer target: arbitrary bytes as a GGUF file. Parsing may refuse the input with
// canopy::Error; anything else (a crash, a sanitizer report, another exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_common.h"
#include "io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace canopy;
  try {
    const auto file = GgufFile::open_memory(std::span<const uint8_t>(data, size), "fuzz.gguf");
    // Every typed accessor on every key: each returns a value or throws canopy::Error.
    for (const auto& entry : file->metadata()) {
      const std::string& key = entry.first;  // not a structured binding: clang 14 cannot capture those
      const auto attempt = [](auto&& get) {
        try {
          get();
        } catch (const Error&) {
        }
      };
      attempt([&] { (void)file->get_string(key); });
      attempt([&] { (void)file->get_int(key); });
      attempt([&] { (void)file->get_float(key); });
      attempt([&] { (void)file->get_bool(key); });
      attempt([&] { (void)file->get_string_array(key); });
      attempt([&] { (void)file->get_int_array(key); });
      attempt([&] { (void)file->get_float_array(key); });
    }
    fuzz::decode_all(*file);
  } catch (const Error&) {
    // A refused input: fine.
  }
  return 0;
}
