// Dequantization: every type against the gguf Python package's reference (bit-exact), hand-built
// blocks whose values follow from the GGML block definitions, and the multi-threaded path.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <random>

#include "io/gguf.h"
#include "io_test_util.h"

namespace canopy {
namespace {

using io_test::error_of;
using io_test::fixture;

uint32_t bits_of(float f) { return std::bit_cast<uint32_t>(f); }

class DequantizeGolden : public ::testing::TestWithParam<std::string> {};

// types.gguf holds "t.<TYPE>" (random blocks) and "expected.<TYPE>" (the gguf package's f32
// dequantization of them). canopy must reproduce them bit for bit: both round every product and
// sum to f32 in the same order.
TEST_P(DequantizeGolden, MatchesReferenceBitForBit) {
  const auto file = GgufFile::open(fixture("types.gguf"));
  const TensorInfo& t = file->get("t." + GetParam());
  const TensorInfo& e = file->get("expected." + GetParam());
  EXPECT_EQ(tensor_type_name(t.type), GetParam());
  ASSERT_EQ(e.type, TensorType::F32);
  ASSERT_EQ(t.shape, e.shape);
  std::vector<float> got(static_cast<size_t>(t.numel())), want(static_cast<size_t>(e.numel()));
  dequantize_to_f32(t, got.data());
  dequantize_to_f32(e, want.data());
  size_t mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (bits_of(got[i]) != bits_of(want[i]) && ++mismatches <= 5) {
      ADD_FAILURE() << GetParam() << " element " << i << ": got " << got[i] << " (0x" << std::hex
                    << bits_of(got[i]) << "), reference " << want[i] << " (0x" << bits_of(want[i]) << ")";
    }
  }
  EXPECT_EQ(mismatches, 0u);

  // A row decoded alone equals the same row of the whole tensor: rows start on block boundaries.
  const int64_t cols = t.shape.back();
  const uint64_t row_bytes = tensor_type_bytes(t.type, cols);
  std::vector<float> row(static_cast<size_t>(cols));
  dequantize_row(t.type, t.bytes.data() + row_bytes, row.data(), cols);
  for (int64_t i = 0; i < cols; ++i) ASSERT_EQ(bits_of(row[i]), bits_of(want[cols + i])) << i;
}

INSTANTIATE_TEST_SUITE_P(AllTypes, DequantizeGolden,
                         ::testing::Values("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
                                           "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"),
                         [](const auto& param_info) { return param_info.param; });

// Hand-built blocks: values derived on paper from the block layouts.
void put_f16(std::vector<uint8_t>& b, size_t at, float v) {
  const uint16_t h = f32_to_f16(v);
  b[at] = static_cast<uint8_t>(h & 0xff);
  b[at + 1] = static_cast<uint8_t>(h >> 8);
}

std::vector<float> decode(TensorType t, const std::vector<uint8_t>& block) {
  const int64_t n = tensor_type_block_elems(t);
  EXPECT_EQ(static_cast<int64_t>(block.size()), tensor_type_block_bytes(t));
  std::vector<float> out(static_cast<size_t>(n));
  dequantize_row(t, block.data(), out.data(), n);
  return out;
}

TEST(Dequantize, Q8_0ByHand) {
  std::vector<uint8_t> b(34);
  put_f16(b, 0, 0.5f);
  for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j * 8 - 128));
  const auto v = decode(TensorType::Q8_0, b);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(v[j], 0.5f * static_cast<float>(j * 8 - 128)) << j;
}

TEST(Dequantize, Q4_0ByHand) {
  std::vector<uint8_t> b(18);
  put_f16(b, 0, 2.0f);
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const auto v = decode(TensorType::Q4_0, b);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(v[j], 2.0f * static_cast<float>(j - 8)) << j;            // low nibbles first
    EXPECT_EQ(v[j + 16], 2.0f * static_cast<float>(15 - j - 8)) << j;  // then high nibbles
  }
}

TEST(Dequantize, Q4_1ByHand) {
  std::vector<uint8_t> b(20);
  put_f16(b, 0, 0.25f);
  put_f16(b, 2, -3.0f);
  for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<uint8_t>(j | (j << 4));
  const auto v = decode(TensorType::Q4_1, b);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(v[j], 0.25f * static_cast<float>(j) - 3.0f);
    EXPECT_EQ(v[j + 16], 0.25f * static_cast<float>(j) - 3.0f);
  }
}

TEST(Dequantize, Q5_0AndQ5_1ByHand) {
  // qh bit i is the fifth bit of element i: set it for the odd elements.
  std::vector<uint8_t> b0(22);
  put_f16(b0, 0, 1.0f);
  const uint32_t qh = 0xAAAAAAAAu;
  std::memcpy(b0.data() + 2, &qh, 4);
  for (int j = 0; j < 16; ++j) b0[6 + j] = static_cast<uint8_t>(3 | (5 << 4));
  const auto v0 = decode(TensorType::Q5_0, b0);
  for (int i = 0; i < 32; ++i) {
    const int low = i < 16 ? 3 : 5;
    EXPECT_EQ(v0[i], static_cast<float>(low + ((i % 2) ? 16 : 0) - 16)) << i;
  }
  std::vector<uint8_t> b1(24);
  put_f16(b1, 0, 0.5f);
  put_f16(b1, 2, 1.0f);
  std::memcpy(b1.data() + 4, &qh, 4);
  for (int j = 0; j < 16; ++j) b1[8 + j] = static_cast<uint8_t>(3 | (5 << 4));
  const auto v1 = decode(TensorType::Q5_1, b1);
  for (int i = 0; i < 32; ++i) {
    const int q = (i < 16 ? 3 : 5) + ((i % 2) ? 16 : 0);
    EXPECT_EQ(v1[i], 0.5f * static_cast<float>(q) + 1.0f) << i;
  }
}

TEST(Dequantize, Q4_KByHand) {
  // Sub-block j has scale j + 1 and min j (all below 16, so the packed top bits stay zero).
  std::vector<uint8_t> b(144);
  put_f16(b, 0, 1.0f);
  put_f16(b, 2, 0.5f);
  for (int j = 0; j < 4; ++j) {
    b[4 + j] = static_cast<uint8_t>(j + 1);                                   // scales 0..3
    b[4 + 4 + j] = static_cast<uint8_t>(j);                                   // mins 0..3
    b[4 + 8 + j] = static_cast<uint8_t>((j + 4 + 1) | ((j + 4) << 4));        // scale/min 4..7
  }
  // Element c*64 + s*32 + l is nibble s of qs[c*32 + l]: put l % 16 in both nibbles.
  for (int i = 0; i < 128; ++i) b[16 + i] = static_cast<uint8_t>((i % 16) | ((i % 16) << 4));
  const auto v = decode(TensorType::Q4_K, b);
  for (int i = 0; i < 256; ++i) {
    const int j = i / 32;
    const float q = static_cast<float>(i % 32 % 16);
    EXPECT_EQ(v[i], static_cast<float>(j + 1) * q - 0.5f * static_cast<float>(j)) << i;
  }
}

TEST(Dequantize, Q6_KByHand) {
  // Every 6-bit value is 40 (low nibble 8, high bits 2): value = d * scale_k * (40 - 32).
  std::vector<uint8_t> b(210);
  for (int i = 0; i < 128; ++i) b[i] = 0x88;
  for (int i = 0; i < 64; ++i) b[128 + i] = 0xAA;
  for (int k = 0; k < 16; ++k) b[192 + k] = static_cast<uint8_t>(static_cast<int8_t>(k - 8));
  put_f16(b, 208, 0.125f);
  const auto v = decode(TensorType::Q6_K, b);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(v[i], 0.125f * static_cast<float>(i / 16 - 8) * 8.0f) << i;
}

// F16 and BF16 decoding agree with core's scalar conversions on every one of the 65536 bit
// patterns (zeros, subnormals, normals, infinities, NaN payloads).
TEST(Dequantize, HalfTypesExhaustively) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> out(all.size());
  const auto* raw = reinterpret_cast<const uint8_t*>(all.data());
  dequantize_row(TensorType::F16, raw, out.data(), 65536);
  for (uint32_t i = 0; i < all.size(); ++i)
    ASSERT_EQ(bits_of(out[i]), bits_of(f16_to_f32(all[i]))) << "f16 0x" << std::hex << i;
  dequantize_row(TensorType::BF16, raw, out.data(), 65536);
  for (uint32_t i = 0; i < all.size(); ++i)
    ASSERT_EQ(bits_of(out[i]), bits_of(bf16_to_f32(all[i]))) << "bf16 0x" << std::hex << i;
}

// The threaded whole-tensor path equals one sequential decode, for a tensor large enough to be
// split into many chunks (and a block count that does not divide evenly into chunks).
TEST(Dequantize, ThreadedMatchesSequential) {
  std::mt19937_64 rng(canopy::testing::test_seed());
  for (const TensorType type : {TensorType::Q4_1, TensorType::Q6_K, TensorType::F16}) {
    const int64_t cols = 768, rows = 1001;
    TensorInfo info;
    info.name = "big";
    info.type = type;
    info.shape = {rows, cols};
    std::vector<uint8_t> raw(tensor_type_bytes(type, rows * cols));
    for (auto& x : raw) x = static_cast<uint8_t>(rng());
    // Keep f16 fields finite so that values compare with ==: clear the exponent's top bit of
    // every 16-bit word (harmless for the quantized bytes, which stay random elsewhere).
    for (size_t i = 1; i < raw.size(); i += 2) raw[i] &= 0xbf;
    info.bytes = raw;
    std::vector<float> threaded(static_cast<size_t>(rows * cols)), sequential(threaded.size());
    dequantize_to_f32(info, threaded.data());
    dequantize_row(type, raw.data(), sequential.data(), rows * cols);
    for (size_t i = 0; i < threaded.size(); ++i)
      ASSERT_EQ(bits_of(threaded[i]), bits_of(sequential[i])) << tensor_type_name(type) << " " << i;
  }
}

// dequantize_many decodes a whole file in one go, equal to decoding tensor by tensor; a bad job
// is refused before anything is written.
TEST(Dequantize, ManyEqualsOneByOne) {
  const auto file = GgufFile::open(fixture("types.gguf"));
  std::vector<std::vector<float>> one(file->tensors().size()), many(file->tensors().size());
  std::vector<DequantizeJob> jobs;
  for (size_t i = 0; i < file->tensors().size(); ++i) {
    const TensorInfo& t = file->tensors()[i];
    one[i].resize(static_cast<size_t>(t.numel()));
    many[i].assign(static_cast<size_t>(t.numel()), -1.0f);
    dequantize_to_f32(t, one[i].data());
    jobs.push_back({&t, many[i].data()});
  }
  dequantize_many(jobs);
  for (size_t i = 0; i < one.size(); ++i) {
    ASSERT_EQ(one[i].size(), many[i].size());
    for (size_t k = 0; k < one[i].size(); ++k)
      ASSERT_EQ(bits_of(one[i][k]), bits_of(many[i][k])) << file->tensors()[i].name << "[" << k << "]";
  }

  TensorInfo bad = file->tensors().front();
  bad.name = "broken";
  bad.bytes = bad.bytes.first(bad.bytes.size() - 1);
  std::vector<float> first(static_cast<size_t>(jobs.front().info->numel()), -7.0f), rest(static_cast<size_t>(bad.numel()));
  const std::vector<DequantizeJob> mixed = {{jobs.front().info, first.data()}, {&bad, rest.data()}};
  EXPECT_MESSAGE_HAS(error_of([&] { dequantize_many(mixed); }), "'broken'");
  EXPECT_TRUE(std::all_of(first.begin(), first.end(), [](float x) { return x == -7.0f; }));
}

TEST(Dequantize, RejectsUnsupportedTypesByName) {
  std::vector<uint8_t> raw(66);
  TensorInfo info;
  info.name = "blk.0.ffn_up.weight";
  info.file = "model.gguf";
  info.type = static_cast<TensorType>(16);  // IQ2_XXS: a known layout canopy does not decode
  info.shape = {256};
  info.bytes = raw;
  std::vector<float> out(256);
  EXPECT_MESSAGE_HAS(error_of([&] { dequantize_to_f32(info, out.data()); }), "blk.0.ffn_up.weight",
                     "model.gguf", "IQ2_XXS");
  EXPECT_MESSAGE_HAS(error_of([&] { dequantize_row(info.type, raw.data(), out.data(), 256); }), "IQ2_XXS");
  info.type = static_cast<TensorType>(99);
  EXPECT_MESSAGE_HAS(error_of([&] { dequantize_to_f32(info, out.data()); }), "unknown type id 99");
}

TEST(Dequantize, RejectsWrongByteCountsAndPartialBlocks) {
  std::vector<uint8_t> raw(40);
  TensorInfo info;
  info.name = "w";
  info.file = "f";
  info.type = TensorType::Q4_1;
  info.shape = {32};
  info.bytes = raw;  // 40 bytes, but one Q4_1 block is 20
  std::vector<float> out(64);
  EXPECT_MESSAGE_HAS(error_of([&] { dequantize_to_f32(info, out.data()); }), "'w'", "40 bytes", "need 20");
  EXPECT_MESSAGE_HAS(error_of([&] { dequantize_row(TensorType::Q4_1, raw.data(), out.data(), 31); }),
                     "31", "Q4_1");
}

}  // namespace
}  // namespace canopy
