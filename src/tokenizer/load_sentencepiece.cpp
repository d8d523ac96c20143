// SentencePiece's tokenizer.model (a ModelProto protobuf) -> TokenizerSpec, for BPE models.
//
// Read by hand: only a few fields matter, and protobuf's wire format is small. ModelProto:
// pieces = 1 (repeated SentencePiece {piece = 1, score = 2 (float), type = 3}), trainer_spec = 2
// {model_type = 3, byte_fallback = 35, unk_id = 40, bos_id = 41, eos_id = 42}, normalizer_spec =
// 3 {name = 1, add_dummy_prefix = 3, remove_extra_whitespaces = 4, escape_whitespaces = 5}.
#include <cstring>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/tokenizer_impl.h"

namespace canopy {
namespace {

// One protobuf message's fields, read in order; every length is checked against the buffer.
class Wire {
 public:
  Wire(std::string_view bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  bool done() const { return pos_ >= bytes_.size(); }

  // The next field's number and wire type.
  std::pair<uint64_t, int> key() {
    const uint64_t k = varint();
    return {k >> 3, static_cast<int>(k & 7)};
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      CANOPY_CHECK(pos_ < bytes_.size(), "{}: truncated protobuf varint", source_);
      const auto b = static_cast<unsigned char>(bytes_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    fail("{}: malformed protobuf varint", source_);
  }
  std::string_view bytes() {
    const uint64_t n = varint();
    CANOPY_CHECK(n <= bytes_.size() - pos_, "{}: a protobuf field of {} bytes runs past the end", source_, n);
    const std::string_view v = bytes_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  float fixed32_float() {
    CANOPY_CHECK(bytes_.size() - pos_ >= 4, "{}: truncated protobuf float", source_);
    float f;
    std::memcpy(&f, bytes_.data() + pos_, 4);
    pos_ += 4;
    return f;
  }
  void skip(int wire_type) {
    switch (wire_type) {
      case 0:
        varint();
        break;
      case 1:
        CANOPY_CHECK(bytes_.size() - pos_ >= 8, "{}: truncated protobuf field", source_);
        pos_ += 8;
        break;
      case 2:
        bytes();
        break;
      case 5:
        CANOPY_CHECK(bytes_.size() - pos_ >= 4, "{}: truncated protobuf field", source_);
        pos_ += 4;
        break;
      default:
        fail("{}: unsupported protobuf wire type {}", source_, wire_type);
    }
  }
  void expect(int wire_type, int expected, const char* field) const {
    CANOPY_CHECK(wire_type == expected, "{}: {} has protobuf wire type {}, expected {}", source_, field, wire_type,
                 expected);
  }

 private:
  std::string_view bytes_;
  const std::string& source_;
  size_t pos_ = 0;
};

enum PieceType : uint64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

}  // namespace

TokenizerSpec parse_sentencepiece_model(std::string_view bytes, const std::string& source) {
  TokenizerSpec spec;
  spec.source = source;
  spec.kind = "SentencePiece model, BPE";
  std::vector<uint64_t> types;
  uint64_t model_type = 1;  // protobuf default: UNIGRAM
  bool byte_fallback = false, add_dummy_prefix = true, remove_extra_whitespaces = true, escape_whitespaces = true;
  int64_t unk_id = 0, bos_id = 1, eos_id = 2;
  std::string normalizer_name = "nmt_nfkc";
  auto as_id = [](uint64_t v) { return static_cast<int64_t>(static_cast<int32_t>(static_cast<uint32_t>(v))); };

  Wire model(bytes, source);
  while (!model.done()) {
    const auto [field, wire] = model.key();
    if (field == 1) {
      model.expect(wire, 2, "a piece");
      Wire piece(model.bytes(), source);
      std::string text;
      float score = 0;
      uint64_t type = kNormal;
      while (!piece.done()) {
        const auto [f, w] = piece.key();
        if (f == 1 && w == 2)
          text = piece.bytes();
        else if (f == 2 && w == 5)
          score = piece.fixed32_float();
        else if (f == 3 && w == 0)
          type = piece.varint();
        else
          piece.skip(w);
      }
      CANOPY_CHECK(spec.tokens.size() < static_cast<size_t>(kMaxVocabSize), "{}: too many pieces", source);
      spec.tokens.push_back(std::move(text));
      spec.scores.push_back(score);
      types.push_back(type);
    } else if (field == 2) {
      model.expect(wire, 2, "trainer_spec");
      Wire trainer(model.bytes(), source);
      while (!trainer.done()) {
        const auto [f, w] = trainer.key();
        if (w != 0) {
          trainer.skip(w);
          continue;
        }
        const uint64_t v = trainer.varint();
        if (f == 3) model_type = v;
        if (f == 35) byte_fallback = v != 0;
        if (f == 40) unk_id = as_id(v);
        if (f == 41) bos_id = as_id(v);
        if (f == 42) eos_id = as_id(v);
      }
    } else if (field == 3) {
      model.expect(wire, 2, "normalizer_spec");
      Wire normalizer(model.bytes(), source);
      while (!normalizer.done()) {
        const auto [f, w] = normalizer.key();
        if (f == 1 && w == 2) {
          normalizer_name = normalizer.bytes();
        } else if (w == 0 && (f == 3 || f == 4 || f == 5)) {
          const bool v = normalizer.varint() != 0;
          if (f == 3) add_dummy_prefix = v;
          if (f == 4) remove_extra_whitespaces = v;
          if (f == 5) escape_whitespaces = v;
        } else {
          normalizer.skip(w);
        }
      }
    } else {
      model.skip(wire);
    }
  }

  const auto n = static_cast<int64_t>(spec.tokens.size());
  CANOPY_CHECK(n > 0, "{}: no pieces (is this a SentencePiece model?)", source);
  CANOPY_CHECK(model_type == 2, "{}: unsupported SentencePiece model type {} (canopy supports BPE, type 2)", source,
               model_type == 1 ? "Unigram" : model_type == 3 ? "Word" : model_type == 4 ? "Char" : "unknown");
  CANOPY_CHECK(normalizer_name == "identity",
               "{}: unsupported SentencePiece normalizer '{}' (canopy supports 'identity')", source, normalizer_name);
  CANOPY_CHECK(escape_whitespaces, "{}: SentencePiece models without escape_whitespaces are not supported", source);

  spec.mergeable.resize(static_cast<size_t>(n));
  for (int64_t id = 0; id < n; ++id) {
    const uint64_t type = types[static_cast<size_t>(id)];
    spec.mergeable[static_cast<size_t>(id)] = type == kNormal || type == kUserDefined;
    if (type == kControl || type == kUserDefined || type == kUnknown) {
      AddedToken t;
      t.id = static_cast<int32_t>(id);
      t.content = spec.tokens[static_cast<size_t>(id)];
      t.special = type != kUserDefined;
      spec.added.push_back(std::move(t));
    }
  }
  auto id_or_none = [&](int64_t id) -> std::optional<int32_t> {
    if (id < 0) return std::nullopt;
    CANOPY_CHECK(id < n, "{}: special token id {} is outside the {} pieces", source, id, n);
    return static_cast<int32_t>(id);
  };
  spec.bpe.byte_fallback = byte_fallback;
  spec.bpe.unk_id = id_or_none(unk_id).value_or(-1);
  spec.bos = id_or_none(bos_id);
  if (auto eos = id_or_none(eos_id)) spec.eos = {*eos};
  if (spec.bos) spec.prefix = {*spec.bos};  // as Llama's tokenizers add BOS to every prompt

  if (remove_extra_whitespaces) {
    spec.normalizer.add({Normalizer::Kind::ReplaceRegex, {}, "", std::make_shared<Regex>("^ +| +$")});
    spec.normalizer.add({Normalizer::Kind::ReplaceRegex, {}, " ", std::make_shared<Regex>(" {2,}")});
  }
  if (add_dummy_prefix) spec.normalizer.add({Normalizer::Kind::Prepend, "\xE2\x96\x81", {}, {}});
  spec.normalizer.add({Normalizer::Kind::Replace, " ", "\xE2\x96\x81", {}});
  spec.decode_byte_fallback = byte_fallback;
  spec.decode_replacements.emplace_back("\xE2\x96\x81", " ");
  spec.strip_leading_spaces = add_dummy_prefix ? 1 : 0;
  return spec;
}

Tokenizer Tokenizer::from_sentencepiece_model(const std::string& path) {
  const MappedFile file(path);
  const std::string_view bytes(reinterpret_cast<const char*>(file.data()), file.size());
  return build_tokenizer(parse_sentencepiece_model(bytes, path));
}

}  // namespace canopy
