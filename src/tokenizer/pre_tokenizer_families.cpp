#include "tokenizer/pre_tokenizer_families.h"

#include <memory>

namespace canopy {

const char* const kGpt2SplitPattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

constexpr const char* kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kTekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kBloom = R"( ?[^(\s|.,!?…。，、।۔،)]+)";

// DeepSeek LLM splits out letters of the cased alphabets (Latin, Greek, Cyrillic, Armenian,
// Georgian, Cherokee, Glagolitic, Coptic, Deseret, Osage, Old Hungarian, Warang Citi, Adlam...)
// by an explicit list of ranges rather than \p{L}; code points are written out so that no editor
// or normalization can change them.
constexpr const char* kDeepSeekLetters =
    R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF})"
    R"(\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1})"
    R"(\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5})"
    R"(\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A})"
    R"(\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B})"
    R"(\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC})"
    R"(\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})"
    R"(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134})"
    R"(\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})"
    R"(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787})"
    R"(\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A})"
    R"(\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2})"
    R"(\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
constexpr const char* kDeepSeekPunctuation =
    R"(\s?[\x{21}-\x{2F}\x{3A}-\x{7E}\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";
constexpr const char* kDeepSeekCjk = R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
constexpr const char* kDeepSeek3Symbols =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

Splitter regex(const char* pattern) {
  Splitter s;
  s.kind = Splitter::Kind::Regex;
  s.regex = std::make_shared<Regex>(pattern);
  s.behavior = SplitBehavior::Isolated;
  return s;
}

Splitter digits(bool individual) {
  Splitter s;
  s.kind = Splitter::Kind::Numeric;
  s.behavior = individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous;
  return s;
}

struct Entry {
  std::vector<std::string_view> names;
  PreTokenizerFamily (*make)();
};

const std::vector<Entry>& entries() {
  static const std::vector<Entry> table = {
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral", "dbrx", "smaug-bpe", "chatglm-bpe"},
       [] { return PreTokenizerFamily{{regex(kLlama3)}, true}; }},
      {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"}, [] { return PreTokenizerFamily{{regex(kQwen2)}, false}; }},
      {{"gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais", "roberta-bpe"},
       [] { return PreTokenizerFamily{{regex(kGpt2SplitPattern)}, false}; }},
      {{"starcoder", "smollm", "refact", "command-r", "codeshell", "exaone", "minerva-7b"},
       [] { return PreTokenizerFamily{{digits(true), regex(kGpt2SplitPattern)}, false}; }},
      {{"deepseek-llm"},
       [] {
         return PreTokenizerFamily{{regex(R"([\r\n])"), regex(kDeepSeekLetters), regex(kDeepSeekPunctuation),
                                    regex(R"(\s+$)"), regex(kDeepSeekCjk), digits(false)},
                                   false};
       }},
      {{"deepseek-coder"},
       [] {
         return PreTokenizerFamily{
             {regex(R"([\r\n])"), regex(R"(\s?\p{L}+)"), regex(R"(\s?\p{P}+)"), regex(kDeepSeekCjk), digits(true)},
             false};
       }},
      {{"deepseek-v3"},
       [] {
         return PreTokenizerFamily{
             {regex(R"(\p{N}{1,3})"), regex(R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)"),
              regex(kDeepSeek3Symbols)},
             false};
       }},
      {{"falcon"},
       [] {
         return PreTokenizerFamily{{regex(R"([\p{P}\$\+<=>\^~\|`]+)"), regex(kGpt2SplitPattern),
                                    regex(R"([0-9][0-9][0-9])")},
                                   false};
       }},
      {{"bloom", "poro-chat", "gpt3-finnish"}, [] { return PreTokenizerFamily{{regex(kBloom)}, false}; }},
      {{"viking"}, [] { return PreTokenizerFamily{{regex(kBloom), digits(true)}, false}; }},
      {{"tekken"}, [] { return PreTokenizerFamily{{regex(kTekken)}, false}; }},
      {{"gpt-4o", "llama4"}, [] { return PreTokenizerFamily{{regex(kGpt4o)}, false}; }},
      // What llama.cpp applies to byte-level vocabularies that name no family.
      {{"default"},
       [] {
         return PreTokenizerFamily{{regex(R"([\p{P}\$\+<=>\^~\|]+)"), regex(kGpt2SplitPattern), regex(R"(\p{N}+)"),
                                    regex(R"([0-9][0-9][0-9])")},
                                   false};
       }},
  };
  return table;
}

}  // namespace

std::optional<PreTokenizerFamily> find_pre_tokenizer_family(std::string_view name) {
  for (const Entry& e : entries())
    for (std::string_view n : e.names)
      if (n == name) return e.make();
  return std::nullopt;
}

std::string known_pre_tokenizer_families() {
  std::string out;
  for (const Entry& e : entries())
    for (std::string_view n : e.names) {
      if (!out.empty()) out += ", ";
      out += n;
    }
  return out;
}

}  // namespace canopy
