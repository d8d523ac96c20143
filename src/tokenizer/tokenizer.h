// canopy's tokenizer: the token ids a model's own reference tokenizer produces, and back.
//
// Supported: BPE tokenizers of both families, byte-level (GPT-2, Llama 3, Qwen2/3, SmolLM2,
// StarCoder, DeepSeek...) and SentencePiece-style with byte fallback (Llama 2, Mistral,
// TinyLlama, Phi-3...), read from
//   - a Hugging Face tokenizer.json (+ tokenizer_config.json beside it),
//   - a GGUF file's tokenizer.ggml.* metadata,
//   - GPT-2's original encoder.json + vocab.bpe,
//   - a SentencePiece tokenizer.model (BPE models such as Llama 2).
//
// Encoding: added tokens (special or not) are found in the raw text first; the text between them
// is normalized, cut into pre-tokens and BPE-encoded. Input that is not valid UTF-8 is first
// repaired: each ill-formed maximal subpart becomes U+FFFD (see utf8.h), so the ids are those of
// the repaired text; nothing is dropped or read out of bounds.
//
// Decoding: each token stands for a fixed byte string (byte-level tokens for their bytes, <0xXX>
// tokens for one byte, "▁" read as a space, added tokens for their text verbatim); decode()
// concatenates them, drops the leading space that SentencePiece-style tokenizers add (when the
// tokenizer's decoder does), and repairs ill-formed UTF-8 as above. StreamDecoder produces the
// same text piece by piece, never emitting part of a character.
//
// A Tokenizer is immutable after loading and safe to use from several threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace canopy {

class GgufFile;
struct GgufValue;
using GgufMetadata = std::map<std::string, GgufValue, std::less<>>;

class Tokenizer {
 public:
  // A Hugging Face model folder (tokenizer.json [+ tokenizer_config.json, generation_config.json];
  // else tokenizer.model; else encoder.json + vocab.bpe), a tokenizer.json, tokenizer.model or
  // .gguf file.
  static Tokenizer load(const std::string& path);
  // tokenizer.json, with tokenizer_config.json when given (empty: none) for BOS/EOS and the
  // add_bos_token / add_eos_token flags.
  static Tokenizer from_hf_json(const std::string& tokenizer_json, const std::string& tokenizer_config = "");
  // The same from in-memory JSON text (for tests and embedded tokenizers); `source` names it in errors.
  static Tokenizer from_hf_json_text(std::string_view tokenizer_json, std::string_view tokenizer_config,
                                     const std::string& source);
  static Tokenizer from_gguf(const GgufFile& file);
  // The GGUF loader proper, on a metadata map (as GgufFile::metadata() returns it); `source`
  // names the file in errors.
  static Tokenizer from_gguf_metadata(const GgufMetadata& metadata, const std::string& source);
  // GPT-2's encoder.json (token -> id) and vocab.bpe (merges).
  static Tokenizer from_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe);
  // A SentencePiece tokenizer.model of a BPE model (Llama 2 and its kin). add_special adds BOS.
  static Tokenizer from_sentencepiece_model(const std::string& path);

  // Token ids of `text`. add_special: add what the tokenizer's post-processor adds (BOS, EOS...),
  // but never a second BOS when the text already starts with it (nor a second EOS at the end).
  // parse_special: special-token text such as "<|im_start|>" becomes its token; when false it is
  // tokenized as plain text (non-special added tokens are always recognized).
  std::vector<int32_t> encode(std::string_view text, bool add_special = false, bool parse_special = true) const;

  // Text of `ids`; skip_special leaves special tokens out. Throws canopy::Error for an id outside
  // [0, vocab_size()).
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // The token's string as the tokenizer file writes it (e.g. "Ġthe", "▁the", "<0x0A>", "<s>").
  const std::string& token_text(int32_t id) const;
  // The bytes the token stands for when decoded (may be part of a UTF-8 character).
  std::string_view token_bytes(int32_t id) const;
  // The id of a token given its file string (token_text), if any.
  std::optional<int32_t> find_token(std::string_view text) const;

  int32_t vocab_size() const;
  bool is_special(int32_t id) const;
  std::optional<int32_t> bos_id() const;
  // End-of-sequence tokens the tokenizer's files name (eos, end-of-turn...), first the main one.
  const std::vector<int32_t>& eos_ids() const;
  // Where the tokenizer was loaded from, and which kind it is (for messages and `canopy info`).
  const std::string& description() const;

  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl);
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<const Impl> impl_;
};

// Incremental detokenization for streaming: push ids as they are generated and emit what push()
// returns. The concatenation of all push() results and finish() equals decode() of all ids. A
// character split across tokens is held back until complete; bytes that can never complete a
// character are emitted as U+FFFD at once; finish() flushes the rest (an unfinished character
// becomes U+FFFD). Nothing is dropped.
//
// at_text_start = false tells the decoder that its ids continue a text (e.g. generated tokens
// after a prompt): the leading space that SentencePiece-style decoders strip from the start of a
// text is then kept, as it belongs between the prompt and the continuation.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false, bool at_text_start = true);
  std::string push(int32_t id);
  // Flushes what is pending; the decoder can then start over on a new text.
  std::string finish();

 private:
  Tokenizer tokenizer_;  // shares the immutable tokenizer, so the decoder may outlive the caller's copy
  bool skip_special_;
  bool at_text_start_;
  int strip_left_;       // leading spaces still to drop at the start of the output
  std::string pending_;  // bytes of an unfinished character
};

}  // namespace canopy
