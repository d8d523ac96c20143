// Safetensors reader: single files and sharded folders written by the safetensors package, and
// crafted files that are truncated, corrupted or unsupported.
#include <gtest/gtest.h>

#include <bit>
#include <filesystem>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "io_test_util.h"

namespace canopy {
namespace {

using namespace io_test;
namespace fs = std::filesystem;

std::vector<float> values_of(const TensorInfo& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  dequantize_to_f32(t, v.data());
  return v;
}

// Compares every tensor of `source` with st_expected.safetensors (its f32 values), bit for bit.
void expect_matches_expected(const TensorSource& source) {
  const auto expected = open_safetensors(fixture("st_expected.safetensors"));
  EXPECT_EQ(source.names(), expected->names());
  for (const std::string& name : expected->names()) {
    const TensorInfo& t = source.get(name);
    const TensorInfo& e = expected->get(name);
    EXPECT_EQ(t.shape, e.shape) << name;
    const auto got = values_of(t), want = values_of(e);
    ASSERT_EQ(got.size(), want.size()) << name;
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i])) << name << "[" << i << "]";
  }
}

TEST(Safetensors, SingleFileAndFolder) {
  const auto file = open_safetensors(fixture("st_single/model.safetensors"));
  EXPECT_EQ(file->names(), (std::vector<std::string>{"a.f32", "b.f16", "c.bf16", "empty", "scalar"}));
  EXPECT_EQ(file->get("a.f32").type, TensorType::F32);
  EXPECT_EQ(file->get("b.f16").type, TensorType::F16);
  EXPECT_EQ(file->get("c.bf16").type, TensorType::BF16);
  EXPECT_EQ(file->get("c.bf16").shape, (std::vector<int64_t>{2, 2, 8}));
  EXPECT_TRUE(file->get("scalar").shape.empty());
  EXPECT_EQ(values_of(file->get("scalar")), std::vector<float>{3.5f});
  EXPECT_EQ(file->get("empty").numel(), 0);
  EXPECT_EQ(file->get("a.f32").file, fixture("st_single/model.safetensors"));
  expect_matches_expected(*file);

  const auto folder = open_safetensors(fixture("st_single"));
  EXPECT_EQ(folder->description(), fixture("st_single"));
  expect_matches_expected(*folder);
  EXPECT_MESSAGE_HAS(error_of([&] { (void)folder->get("missing"); }), "'missing'", "st_single");
}

TEST(Safetensors, ShardedFolder) {
  const auto source = open_safetensors(fixture("st_sharded"));
  expect_matches_expected(*source);
  EXPECT_NE(source->get("a.f32").file.find("model-00001-of-00002.safetensors"), std::string::npos);
  EXPECT_NE(source->get("scalar").file.find("model-00002-of-00002.safetensors"), std::string::npos);
}

TEST(Safetensors, OpenCheckpointPicksTheFormat) {
  EXPECT_EQ(open_checkpoint(fixture("st_sharded"))->names().size(), 5u);
  EXPECT_EQ(open_checkpoint(fixture("st_single/model.safetensors"))->names().size(), 5u);
  EXPECT_NE(dynamic_cast<GgufFile*>(open_checkpoint(fixture("types.gguf")).get()), nullptr);
  EXPECT_MESSAGE_HAS(error_of([] { (void)open_checkpoint("/nonexistent/model"); }), "/nonexistent/model",
                     "does not exist");
  canopy::testing::TempDir dir;
  canopy::testing::write_file(dir.file("notes.txt"), "hello");
  EXPECT_MESSAGE_HAS(error_of([&] { (void)open_checkpoint(dir.file("notes.txt")); }), "notes.txt",
                     "neither a GGUF file");
}

TEST(SafetensorsFiles, MissingPathsAndFolders) {
  EXPECT_MESSAGE_HAS(error_of([] { (void)open_safetensors("/nonexistent/x.safetensors"); }),
                     "/nonexistent/x.safetensors", "does not exist");
  canopy::testing::TempDir dir;
  EXPECT_MESSAGE_HAS(error_of([&] { (void)open_safetensors(dir.path()); }), dir.path(),
                     "model.safetensors", "model.safetensors.index.json");
}

// ---- crafted single files ------------------------------------------------------------------

std::string open_error(const std::string& bytes, const std::string& name = "crafted.safetensors") {
  return error_of([&] { (void)open_safetensors_memory(as_bytes(bytes), name); });
}

TEST(SafetensorsCrafted, BaselineAndMetadata) {
  const std::string bytes = safetensors_bytes(
      R"({"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
      f32_bytes({1.5f, -2.0f}));
  const auto s = open_safetensors_memory(as_bytes(bytes), "ok.safetensors");
  EXPECT_EQ(s->names(), std::vector<std::string>{"w"});
  EXPECT_EQ(values_of(s->get("w")), (std::vector<float>{1.5f, -2.0f}));
}

TEST(SafetensorsCrafted, RejectsBadHeaders) {
  EXPECT_MESSAGE_HAS(open_error("abc"), "crafted.safetensors", "3 bytes");
  EXPECT_MESSAGE_HAS(open_error(Bytes().u64(uint64_t{1} << 62).bytes()), "crafted.safetensors",
                     "header length 4611686018427387904");
  EXPECT_MESSAGE_HAS(open_error(Bytes().u64(100).raw("{}").bytes()), "crafted.safetensors", "truncated",
                     "JSON header");
  EXPECT_MESSAGE_HAS(open_error(safetensors_bytes("{\"w\": ", "")), "crafted.safetensors", "JSON",
                     "does not parse");
  EXPECT_MESSAGE_HAS(open_error(safetensors_bytes("[1, 2]", "")), "not an object");
  EXPECT_MESSAGE_HAS(open_error(safetensors_bytes(R"({"w": 5})", "")), "'w'", "not a JSON object");
}

TEST(SafetensorsCrafted, RejectsBadEntries) {
  const auto entry = [](const std::string& body, const std::string& data = std::string(8, '\0')) {
    return open_error(safetensors_bytes("{\"w\": " + body + "}", data));
  };
  EXPECT_MESSAGE_HAS(entry(R"({"shape": [2], "data_offsets": [0, 8]})"), "'w'", "dtype");
  EXPECT_MESSAGE_HAS(entry(R"({"dtype": "F32", "data_offsets": [0, 8]})"), "'w'", "shape");
  EXPECT_MESSAGE_HAS(entry(R"({"dtype": "F32", "shape": [2]})"), "'w'", "data_offsets");
  EXPECT_MESSAGE_HAS(entry(R"({"dtype": "F32", "shape": [2], "data_offsets": [0]})"), "'w'", "data_offsets");
  EXPECT_MESSAGE_HAS(entry(R"({"dtype": "I64", "shape": [1], "data_offsets": [0, 8]})"), "'w'",
                     "crafted.safetensors", "dtype I64", "F32, F16 and BF16");
  EXPECT_MESSAGE_HAS(entry(R"({"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]})"), "F8_E4M3");
  EXPECT_MESSAGE_HAS(entry(R"({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]})"), "'w'", "-2");
  EXPECT_MESSAGE_HAS(entry(R"({"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]})"), "'w'", "2.5");
  EXPECT_MESSAGE_HAS(entry(R"({"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]})"), "'w'");
  EXPECT_MESSAGE_HAS(
      entry(R"({"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 8]})"),
      "'w'", "overflows");
  EXPECT_MESSAGE_HAS(entry(R"({"dtype": "F32", "shape": [2], "data_offsets": [0, 12]})"), "'w'",
                     "truncated", "[0, 12)", "8 bytes");
  EXPECT_MESSAGE_HAS(entry(R"({"dtype": "F32", "shape": [2], "data_offsets": [18446744073709551615, 8]})"),
                     "'w'", "end before they begin");
  EXPECT_MESSAGE_HAS(entry(R"({"dtype": "F32", "shape": [2], "data_offsets": [-1, 8]})"), "'w'",
                     "non-negative");
  EXPECT_MESSAGE_HAS(entry(R"({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]})"), "'w'", "need 12");
  EXPECT_MESSAGE_HAS(entry(R"({"dtype": "F32", "shape": [1], "data_offsets": [0, 8]})"), "'w'", "need 4");
  EXPECT_MESSAGE_HAS(
      entry(R"({"dtype": "F32", "shape": [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1], "data_offsets": [0, 4]})"),
      "'w'", "17 dimensions");

  // A value nested a million arrays deep: refused without recursing through it.
  const std::string deep = std::string(1 << 20, '[') + std::string(1 << 20, ']');
  EXPECT_MESSAGE_HAS(entry(R"({"dtype": "F32", "shape": [)" + deep + R"(], "data_offsets": [0, 8]})"), "'w'",
                     "a JSON array");

  // Two tensors sharing bytes.
  EXPECT_MESSAGE_HAS(
      open_error(safetensors_bytes(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                       "b": {"dtype": "F16", "shape": [2], "data_offsets": [6, 10]}})",
                                   std::string(10, '\0'))),
      "'a'", "'b'", "overlap");
}

TEST(SafetensorsTruncated, EveryPrefixOfTheFixture) {
  const std::string bytes = canopy::testing::read_file(fixture("st_single/model.safetensors"));
  for (size_t len = 0; len < bytes.size(); ++len) {
    const std::string msg =
        error_of([&] { (void)open_safetensors_memory(as_bytes(bytes).first(len), "cut.safetensors"); });
    ASSERT_NE(msg.find("cut.safetensors"), std::string::npos) << len << ": " << msg;
  }
  canopy::testing::TempDir dir;
  for (const size_t len : {size_t{0}, size_t{7}, size_t{8}, size_t{50}, bytes.size() - 1}) {
    canopy::testing::write_file(dir.file("cut.safetensors"), bytes.substr(0, len));
    EXPECT_MESSAGE_HAS(error_of([&] { (void)open_safetensors(dir.file("cut.safetensors")); }),
                       dir.file("cut.safetensors"));
  }
}

TEST(SafetensorsCorrupted, FlippedHeaderBytes) {
  const std::string original = canopy::testing::read_file(fixture("st_single/model.safetensors"));
  uint64_t header = 0;
  std::memcpy(&header, original.data(), 8);
  size_t refused = 0;
  for (size_t at = 0; at < 8 + header; ++at) {
    for (const uint8_t mask : {uint8_t{0x01}, uint8_t{0x20}, uint8_t{0x80}}) {
      std::string bytes = original;
      bytes[at] = static_cast<char>(bytes[at] ^ mask);
      try {
        const auto s = open_safetensors_memory(as_bytes(bytes), "flipped.safetensors");
        for (const auto& name : s->names()) (void)values_of(s->get(name));
      } catch (const Error& e) {
        ++refused;
        ASSERT_NE(std::string(e.what()).find("flipped.safetensors"), std::string::npos) << e.what();
      }
    }
  }
  EXPECT_GT(refused, header);
}

// ---- crafted sharded folders ---------------------------------------------------------------

class ShardedFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& entry : fs::directory_iterator(fixture("st_sharded")))
      fs::copy(entry.path(), fs::path(dir.path()) / entry.path().filename());
  }
  void write_index(const std::string& json) { canopy::testing::write_file(index(), json); }
  std::string index() const { return dir.file("model.safetensors.index.json"); }
  std::string open_error() const { return error_of([&] { (void)open_safetensors(dir.path()); }); }
  canopy::testing::TempDir dir;
};

TEST_F(ShardedFolder, CopyOpens) { expect_matches_expected(*open_safetensors(dir.path())); }

TEST_F(ShardedFolder, MissingShard) {
  fs::remove(dir.file("model-00002-of-00002.safetensors"));
  EXPECT_MESSAGE_HAS(open_error(), index(), "model-00002-of-00002.safetensors", "does not exist");
}

TEST_F(ShardedFolder, TensorNotInItsShard) {
  write_index(R"({"weight_map": {"a.f32": "model-00002-of-00002.safetensors"}})");
  EXPECT_MESSAGE_HAS(open_error(), index(), "'a.f32'", "does not hold it");
}

TEST_F(ShardedFolder, IndexSubsetExposesOnlyItsTensors) {
  write_index(R"({"weight_map": {"c.bf16": "model-00002-of-00002.safetensors"}})");
  EXPECT_EQ(open_safetensors(dir.path())->names(), std::vector<std::string>{"c.bf16"});
}

TEST_F(ShardedFolder, BadIndexFiles) {
  write_index("{not json");
  EXPECT_MESSAGE_HAS(open_error(), index(), "not valid JSON");
  write_index(R"({"metadata": {}})");
  EXPECT_MESSAGE_HAS(open_error(), index(), "weight_map");
  write_index(R"({"weight_map": {}})");
  EXPECT_MESSAGE_HAS(open_error(), index(), "empty");
  write_index(R"({"weight_map": {"a.f32": 7}})");
  EXPECT_MESSAGE_HAS(open_error(), index(), "'a.f32'", "7");
  write_index(R"({"weight_map": {"a.f32": "../model-00001-of-00002.safetensors"}})");
  EXPECT_MESSAGE_HAS(open_error(), index(), "'a.f32'", "not a file name in the same folder");
  write_index(R"({"weight_map": {"a.f32": ""}})");
  EXPECT_MESSAGE_HAS(open_error(), index(), "'a.f32'");
}

TEST_F(ShardedFolder, CorruptShard) {
  canopy::testing::write_file(dir.file("model-00001-of-00002.safetensors"), "garbage!garbage");
  EXPECT_MESSAGE_HAS(open_error(), "model-00001-of-00002.safetensors");
}

}  // namespace
}  // namespace canopy
