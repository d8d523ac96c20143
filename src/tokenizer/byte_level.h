// The byte-level alphabet of GPT-2-style tokenizers.
//
// Byte-level BPE vocabularies are stored as text in which every byte is written as one printable
// code point: the printable Latin-1 bytes (! .. ~, ¡ .. ¬, ® .. ÿ) stand for themselves and the
// other 68 bytes (controls, space, DEL, NBSP, soft hyphen...) are written as U+0100, U+0101, ...
// in byte order, so a space is "Ġ" and a newline "Ċ". canopy converts such vocabularies to raw
// bytes once, at load time, and runs BPE on bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace canopy::byte_level {

char32_t byte_to_char(uint8_t b);
// The byte a code point of the alphabet stands for, or nullopt when it is not in the alphabet.
std::optional<uint8_t> char_to_byte(char32_t c);

// Raw bytes to byte-level text.
std::string encode(std::string_view raw);
// Byte-level text (valid UTF-8) to raw bytes; nullopt when some code point is outside the
// alphabet (such strings are taken verbatim by the callers, as Hugging Face's decoder does).
std::optional<std::string> decode(std::string_view text);

}  // namespace canopy::byte_level
