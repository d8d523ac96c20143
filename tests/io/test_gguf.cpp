// GGUF reader: the fixture written by the gguf Python package (metadata of every value type,
// shapes, alignment), and crafted files that are truncated, corrupted or unsupported.
#include <gtest/gtest.h>

#include <cmath>

#include "io/gguf.h"
#include "io_test_util.h"

namespace canopy {
namespace {

using namespace io_test;

TEST(Gguf, ReadsEveryMetadataValueType) {
  const auto f = GgufFile::open(fixture("types.gguf"));
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->get_string("general.architecture"), "canopytest");
  EXPECT_EQ(f->get_int("test.u8"), 200);
  EXPECT_EQ(f->get_int("test.i8"), -100);
  EXPECT_EQ(f->get_int("test.u16"), 60000);
  EXPECT_EQ(f->get_int("test.i16"), -30000);
  EXPECT_EQ(f->get_int("test.u32"), 4000000000);
  EXPECT_EQ(f->get_int("test.i32"), -2000000000);
  EXPECT_EQ(f->get_float("test.f32"), 0.15625);
  EXPECT_EQ(f->get_bool("test.bool_true"), true);
  EXPECT_EQ(f->get_bool("test.bool_false"), false);
  EXPECT_EQ(f->get_string("test.string"), "h\xc3\xa9llo w\xc3\xb6rld");
  EXPECT_EQ(f->get_string("test.empty_string"), "");
  EXPECT_EQ(f->get_int("test.i64"), -9000000000000000000);
  EXPECT_EQ(f->get_float("test.f64"), 2.718281828459045);
  EXPECT_EQ(f->get_float("test.u8"), 200.0);  // get_float accepts integers
  // A uint64 beyond int64 is readable as a raw value but not through get_int.
  const GgufValue* u64 = f->find_value("test.u64");
  ASSERT_NE(u64, nullptr);
  EXPECT_EQ(u64->type, GgufType::UINT64);
  EXPECT_EQ(std::get<uint64_t>(u64->v), 18000000000000000000ull);
  EXPECT_MESSAGE_HAS(error_of([&] { (void)f->get_int("test.u64"); }), "test.u64", "integer");

  EXPECT_EQ(f->find_value("test.u8")->type, GgufType::UINT8);
  EXPECT_EQ(f->find_value("test.f32")->type, GgufType::FLOAT32);
  EXPECT_EQ(f->get_string_array("test.strings"),
            (std::vector<std::string>{"a", "", "\xc3\x9f\xc3\xa7", "token with spaces"}));
  EXPECT_EQ(f->get_int_array("test.ints"), (std::vector<int64_t>{1, -2, 3, 2147483647}));
  EXPECT_EQ(f->get_float_array("test.floats"), (std::vector<float>{0.5f, -1.25f, 3.0f}));
  EXPECT_EQ(f->get_float_array("test.ints"), (std::vector<float>{1, -2, 3, 2147483647.0f}));
  const auto& bools = std::get<GgufArray>(f->find_value("test.bools")->v);
  ASSERT_EQ(bools.size(), 3u);
  EXPECT_TRUE(std::get<bool>(bools[0].v));
  EXPECT_FALSE(std::get<bool>(bools[1].v));

  const auto& nested = std::get<GgufArray>(f->find_value("test.nested")->v);
  ASSERT_EQ(nested.size(), 3u);
  EXPECT_EQ(nested[2].type, GgufType::ARRAY);
  const auto& inner = std::get<GgufArray>(nested[2].v);
  ASSERT_EQ(inner.size(), 3u);
  EXPECT_EQ(std::get<std::string>(inner[1].v), "v");
  const auto& nested_ints = std::get<GgufArray>(f->find_value("test.nested_ints")->v);
  EXPECT_EQ(std::get<int64_t>(std::get<GgufArray>(nested_ints[0].v)[1].v), 2);
}

TEST(Gguf, TypedAccessorsNameTheKeyAndTheMismatch) {
  const auto f = GgufFile::open(fixture("types.gguf"));
  EXPECT_FALSE(f->has("no.such.key"));
  EXPECT_EQ(f->find_int("no.such.key"), std::nullopt);
  EXPECT_EQ(f->find_string("no.such.key"), std::nullopt);
  EXPECT_EQ(f->find_float("no.such.key"), std::nullopt);
  EXPECT_EQ(f->find_bool("no.such.key"), std::nullopt);
  EXPECT_EQ(f->find_int("test.u32"), 4000000000);
  EXPECT_MESSAGE_HAS(error_of([&] { (void)f->get_int("no.such.key"); }), "no.such.key", "missing", "types.gguf");
  EXPECT_MESSAGE_HAS(error_of([&] { (void)f->get_string("test.u32"); }), "test.u32", "uint32", "a string");
  EXPECT_MESSAGE_HAS(error_of([&] { (void)f->get_int("test.string"); }), "test.string", "string", "integer");
  EXPECT_MESSAGE_HAS(error_of([&] { (void)f->get_bool("test.u8"); }), "test.u8", "a bool");
  EXPECT_MESSAGE_HAS(error_of([&] { (void)f->find_int("test.string"); }), "test.string");
  EXPECT_MESSAGE_HAS(error_of([&] { (void)f->get_string_array("test.ints"); }), "test.ints",
                     "an array of integers", "an array of strings");
  EXPECT_MESSAGE_HAS(error_of([&] { (void)f->get_int_array("test.strings"); }), "test.strings",
                     "an array of strings");
  EXPECT_MESSAGE_HAS(error_of([&] { (void)f->get_float_array("test.string"); }), "test.string");
  EXPECT_MESSAGE_HAS(error_of([&] { (void)f->get_int_array("test.nested"); }), "an array of arrays");
}

TEST(Gguf, ShapesAreOutermostFirst) {
  const auto f = GgufFile::open(fixture("types.gguf"));
  EXPECT_EQ(f->get("shape.1d").shape, (std::vector<int64_t>{7}));
  EXPECT_EQ(f->get("shape.3d").shape, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(f->get("shape.4d").shape, (std::vector<int64_t>{2, 1, 3, 32}));
  EXPECT_EQ(f->get("shape.q8_1d").shape, (std::vector<int64_t>{64}));
  EXPECT_EQ(f->get("t.Q4_K").shape, (std::vector<int64_t>{3, 512}));
  EXPECT_EQ(f->get("t.Q4_K").bytes.size(), 3u * 2 * 144);
  EXPECT_EQ(f->get("shape.3d").file, fixture("types.gguf"));
  // Row-major: element [1][2][3] of arange(24).reshape(2, 3, 4) is 1*12 + 2*4 + 3.
  const TensorInfo& t = f->get("shape.3d");
  std::vector<float> v(24);
  dequantize_to_f32(t, v.data());
  EXPECT_EQ(v[1 * 12 + 2 * 4 + 3], 23.0f);
  const TensorInfo& h = f->get("shape.4d");
  std::vector<float> w(static_cast<size_t>(h.numel()));
  dequantize_to_f32(h, w.data());
  for (size_t i = 0; i < w.size(); ++i) ASSERT_EQ(w[i], static_cast<float>(i));

  // names() is sorted and complete; tensors() is in file order; every tensor lies in the data
  // section, aligned.
  const auto names = f->names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(names.size(), f->tensors().size());
  EXPECT_EQ(f->tensors().front().name, "t.Q4_0");
  const auto base = f->tensors().front().bytes.data() - f->data_offset();
  for (const TensorInfo& ti : f->tensors()) {
    const auto offset = static_cast<uint64_t>(ti.bytes.data() - base);
    EXPECT_GE(offset, f->data_offset());
    EXPECT_EQ((offset - f->data_offset()) % 32, 0u) << ti.name;
  }
  EXPECT_EQ(f->find("nope"), nullptr);
  EXPECT_MESSAGE_HAS(error_of([&] { (void)f->get("nope"); }), "'nope'", "types.gguf");
}

TEST(Gguf, HonoursCustomAlignment) {
  const auto f = GgufFile::open(fixture("aligned64.gguf"));
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  std::vector<float> b(3);
  dequantize_to_f32(f->get("b"), b.data());
  EXPECT_EQ(b, (std::vector<float>{100, 101, 102}));
}

TEST(Gguf, OpenMemoryEqualsOpen) {
  const std::string bytes = canopy::testing::read_file(fixture("types.gguf"));
  const auto a = GgufFile::open(fixture("types.gguf"));
  const auto b = GgufFile::open_memory(as_bytes(bytes), "mem");
  EXPECT_EQ(a->names(), b->names());
  EXPECT_EQ(b->description(), "mem");
  for (const TensorInfo& t : a->tensors()) {
    const TensorInfo& u = b->get(t.name);
    EXPECT_EQ(t.shape, u.shape);
    EXPECT_EQ(t.type, u.type);
    EXPECT_TRUE(std::equal(t.bytes.begin(), t.bytes.end(), u.bytes.begin(), u.bytes.end())) << t.name;
  }
}

// ---- crafted files -------------------------------------------------------------------------

GgufSpec one_tensor_spec() {
  GgufSpec s;
  s.kvs = {kv_string("general.architecture", "llama"), kv_u32("llama.block_count", 2)};
  s.infos = {tensor_info("w", {4, 2}, 0, 0)};
  s.data = f32_bytes({1, 2, 3, 4, 5, 6, 7, 8});
  return s;
}

std::string open_error(const std::string& bytes, const std::string& name = "crafted.gguf") {
  return error_of([&] { (void)GgufFile::open_memory(as_bytes(bytes), name); });
}

TEST(GgufCrafted, BaselineParses) {
  const std::string bytes = one_tensor_spec().encode();
  const auto f = GgufFile::open_memory(as_bytes(bytes), "crafted.gguf");
  EXPECT_EQ(f->get_int("llama.block_count"), 2);
  EXPECT_EQ(f->get("w").shape, (std::vector<int64_t>{2, 4}));
  std::vector<float> v(8);
  dequantize_to_f32(f->get("w"), v.data());
  EXPECT_EQ(v[7], 8.0f);
}

TEST(GgufCrafted, Version2ReadsAndOtherVersionsAreRejected) {
  GgufSpec s = one_tensor_spec();
  s.version = 2;
  EXPECT_EQ(GgufFile::open_memory(as_bytes(s.encode()), "v2.gguf")->version(), 2u);
  s.version = 1;
  EXPECT_MESSAGE_HAS(open_error(s.encode(), "v1.gguf"), "v1.gguf", "version 1", "versions 2 and 3");
  s.version = 4;
  EXPECT_MESSAGE_HAS(open_error(s.encode(), "v4.gguf"), "v4.gguf", "version 4");
  s.version = 0x03000000;  // a big-endian file's version read little-endian
  EXPECT_MESSAGE_HAS(open_error(s.encode(), "be.gguf"), "be.gguf", "big-endian");
}

TEST(GgufCrafted, RejectsWrongMagicAndEmptyFiles) {
  std::string bytes = one_tensor_spec().encode();
  bytes[0] = 'X';
  EXPECT_MESSAGE_HAS(open_error(bytes), "crafted.gguf", "not a GGUF file", "magic");
  EXPECT_MESSAGE_HAS(open_error(""), "crafted.gguf", "not a GGUF file");
  EXPECT_MESSAGE_HAS(open_error("GGU"), "not a GGUF file");
}

TEST(GgufCrafted, RejectsAbsurdCounts) {
  GgufSpec s = one_tensor_spec();
  s.kv_count = uint64_t{1} << 62;
  EXPECT_MESSAGE_HAS(open_error(s.encode()), "crafted.gguf", "metadata count 4611686018427387904");
  s = one_tensor_spec();
  s.tensor_count = ~uint64_t{1};
  EXPECT_MESSAGE_HAS(open_error(s.encode()), "tensor count 18446744073709551614");
  s = one_tensor_spec();
  s.kv_count = 3;  // one more entry than present: the tensor info is read as metadata
  EXPECT_MESSAGE_HAS(open_error(s.encode()), "crafted.gguf", "corrupted");
}

TEST(GgufCrafted, RejectsAbsurdLengths) {
  GgufSpec s = one_tensor_spec();
  // A string value claiming 2^63 bytes.
  s.kvs.push_back(Bytes().str("k").u32(kString).u64(uint64_t{1} << 63).bytes());
  EXPECT_MESSAGE_HAS(open_error(s.encode()), "crafted.gguf", "metadata 'k'", "string value", "truncated");
  // A key claiming 2^40 bytes.
  s = one_tensor_spec();
  s.kvs.push_back(Bytes().u64(uint64_t{1} << 40).bytes());
  EXPECT_MESSAGE_HAS(open_error(s.encode()), "key length 1099511627776 exceeds");
  // An array of 2^60 uint32 values, and one of 2^20 that the file is too short for.
  s = one_tensor_spec();
  s.kvs.push_back(Bytes().str("arr").u32(kArray).u32(kU32).u64(uint64_t{1} << 60).bytes());
  EXPECT_MESSAGE_HAS(open_error(s.encode()), "metadata 'arr'", "array length");
  s = one_tensor_spec();
  s.kvs.push_back(Bytes().str("arr").u32(kArray).u32(kString).u64(1 << 20).bytes());
  EXPECT_MESSAGE_HAS(open_error(s.encode()), "metadata 'arr'", "cannot fit", "truncated");
  // A tensor name of 2^62 bytes.
  s = one_tensor_spec();
  s.infos = {Bytes().u64(uint64_t{1} << 62).bytes()};
  EXPECT_MESSAGE_HAS(open_error(s.encode()), "tensor info #0", "tensor name length");
}

TEST(GgufCrafted, RejectsBadValueTypes) {
  GgufSpec s = one_tensor_spec();
  s.kvs.push_back(kv_raw("odd", 13, "xxxx"));
  EXPECT_MESSAGE_HAS(open_error(s.encode()), "metadata 'odd'", "unknown value type id 13");
  s = one_tensor_spec();
  s.kvs.push_back(Bytes().str("arr").u32(kArray).u32(77).u64(1).bytes());
  EXPECT_MESSAGE_HAS(open_error(s.encode()), "metadata 'arr'", "unknown array element type id 77");
  s = one_tensor_spec();
  s.kvs.push_back(kv_raw("b", kBool, std::string(1, '\x02')));
  EXPECT_MESSAGE_HAS(open_error(s.encode()), "metadata 'b'", "bool value 2");
  s = one_tensor_spec();
  s.kvs.push_back(kv_u32("llama.block_count", 3));
  EXPECT_MESSAGE_HAS(open_error(s.encode()), "metadata 'llama.block_count'", "appears twice");
}

TEST(GgufCrafted, LimitsArrayNesting) {
  // Arrays nested 20 deep: refused before the recursion goes deeper than the limit.
  Bytes b;
  b.str("deep").u32(kArray);
  for (int i = 0; i < 20; ++i) b.u32(kArray).u64(1);
  b.u32(kU8).u64(1).u8(7);
  GgufSpec s = one_tensor_spec();
  s.kvs.push_back(b.bytes());
  EXPECT_MESSAGE_HAS(open_error(s.encode()), "metadata 'deep'", "nested");
  // An empty array of arrays is fine.
  s = one_tensor_spec();
  s.kvs.push_back(Bytes().str("empty").u32(kArray).u32(kArray).u64(0).bytes());
  const auto f = GgufFile::open_memory(as_bytes(s.encode()), "ok.gguf");
  EXPECT_TRUE(std::get<GgufArray>(f->find_value("empty")->v).empty());
}

TEST(GgufCrafted, RejectsBadAlignment) {
  for (const uint32_t a : {0u, 3u, 48u, 1u << 30}) {
    GgufSpec s = one_tensor_spec();
    s.kvs.push_back(kv_u32("general.alignment", a));
    EXPECT_MESSAGE_HAS(open_error(s.encode()), "crafted.gguf", "general.alignment", std::to_string(a));
  }
  GgufSpec s = one_tensor_spec();
  s.kvs.push_back(kv_string("general.alignment", "32"));
  EXPECT_MESSAGE_HAS(open_error(s.encode()), "general.alignment", "integer");
}

TEST(GgufCrafted, RejectsBadTensorInfos) {
  const auto with_info = [](const std::string& info) {
    GgufSpec s = one_tensor_spec();
    s.infos = {info};
    return open_error(s.encode());
  };
  EXPECT_MESSAGE_HAS(with_info(tensor_info("w", {1, 1, 1, 1, 8}, 0, 0)), "tensor 'w'", "5 dimensions");
  EXPECT_MESSAGE_HAS(with_info(tensor_info("w", {uint64_t{1} << 63}, 0, 0)), "tensor 'w'", "too large");
  EXPECT_MESSAGE_HAS(with_info(tensor_info("w", {1u << 31, 1u << 31, 1u << 31}, 0, 0)), "tensor 'w'",
                     "overflows");
  EXPECT_MESSAGE_HAS(with_info(tensor_info("w", {8}, 99, 0)), "tensor 'w'", "unknown tensor type id 99");
  EXPECT_MESSAGE_HAS(with_info(tensor_info("w", {48}, 2, 0)), "tensor 'w'", "48 elements", "Q4_0");
  EXPECT_MESSAGE_HAS(with_info(tensor_info("w", {8}, 0, 4)), "tensor 'w'", "offset 4", "alignment 32");
  EXPECT_MESSAGE_HAS(with_info(tensor_info("w", {8}, 0, uint64_t{1} << 60)), "tensor 'w'", "beyond the end");
  EXPECT_MESSAGE_HAS(with_info(tensor_info("w", {9}, 0, 0)), "tensor 'w'", "beyond the end", "36 bytes");
  EXPECT_MESSAGE_HAS(with_info(tensor_info("w", {uint64_t{1} << 61}, 0, 0)), "tensor 'w'");

  GgufSpec s = one_tensor_spec();
  s.infos.push_back(tensor_info("w", {4}, 0, 0));
  EXPECT_MESSAGE_HAS(open_error(s.encode()), "tensor 'w'", "appears twice");
  s = one_tensor_spec();
  s.infos.push_back(tensor_info("v", {4}, 0, 0));
  EXPECT_MESSAGE_HAS(open_error(s.encode()), "'w'", "'v'", "overlap");
}

TEST(GgufCrafted, OpensFilesWithUndecodableTypesButNotTheirTensors) {
  // IQ2_XXS (id 16): 66-byte blocks of 256. The file opens (its metadata stays readable); only
  // dequantizing the tensor fails, naming it and its type.
  GgufSpec s = one_tensor_spec();
  s.infos = {tensor_info("w", {256}, 16, 0)};
  s.data = std::string(66, '\0');
  const std::string bytes = s.encode();
  const auto f = GgufFile::open_memory(as_bytes(bytes), "iq.gguf");
  EXPECT_EQ(f->get_int("llama.block_count"), 2);
  EXPECT_FALSE(tensor_type_supported(f->get("w").type));
  std::vector<float> out(256);
  EXPECT_MESSAGE_HAS(error_of([&] { dequantize_to_f32(f->get("w"), out.data()); }), "'w'", "iq.gguf",
                     "IQ2_XXS");
}

TEST(GgufCrafted, ZeroTensorsAndScalars) {
  GgufSpec s;
  s.kvs = {kv_u32("a", 1)};
  std::string bytes = s.encode();
  EXPECT_EQ(GgufFile::open_memory(as_bytes(bytes), "m")->tensors().size(), 0u);
  s.infos = {tensor_info("scalar", {}, 0, 0), tensor_info("empty", {0, 5}, 0, 0)};
  s.data = f32_bytes({42});
  bytes = s.encode();
  const auto f = GgufFile::open_memory(as_bytes(bytes), "m");
  EXPECT_TRUE(f->get("scalar").shape.empty());
  EXPECT_EQ(f->get("scalar").numel(), 1);
  EXPECT_EQ(f->get("empty").numel(), 0);
  float v = 0;
  dequantize_to_f32(f->get("scalar"), &v);
  EXPECT_EQ(v, 42.0f);
}

TEST(GgufFiles, MissingPathAndDirectory) {
  EXPECT_MESSAGE_HAS(error_of([] { (void)GgufFile::open("/nonexistent/dir/model.gguf"); }),
                     "/nonexistent/dir/model.gguf");
  canopy::testing::TempDir dir;
  EXPECT_MESSAGE_HAS(error_of([&] { (void)GgufFile::open(dir.path()); }), dir.path(), "directory");
}

// Every proper prefix of a valid file that cuts into its tensors is refused with a message that
// names the file and says it is truncated; prefixes that cut only trailing padding still parse.
void expect_every_prefix_refused(const std::string& path, size_t stride_after_header) {
  const std::string bytes = canopy::testing::read_file(path);
  const auto full = GgufFile::open_memory(as_bytes(bytes), "full");
  size_t needed = 0;
  for (const TensorInfo& t : full->tensors())
    needed = std::max(needed, static_cast<size_t>(t.bytes.data() + t.bytes.size() -
                                                  reinterpret_cast<const uint8_t*>(bytes.data())));
  size_t checked = 0;
  for (size_t len = 0; len < bytes.size(); ++len) {
    if (len > full->data_offset() + 64 && len + 64 < needed && len % stride_after_header != 0) continue;
    const std::span<const uint8_t> prefix = as_bytes(bytes).first(len);
    ++checked;
    if (len >= needed) {
      EXPECT_NO_THROW((void)GgufFile::open_memory(prefix, "prefix.gguf")) << len;
      continue;
    }
    const std::string msg = error_of([&] { (void)GgufFile::open_memory(prefix, "prefix.gguf"); });
    ASSERT_NE(msg.find("prefix.gguf"), std::string::npos) << len << ": " << msg;
    if (len >= 4) {
      ASSERT_NE(msg.find("truncated"), std::string::npos) << len << ": " << msg;
    }
  }
  EXPECT_GT(checked, full->data_offset());
}

TEST(GgufTruncated, EveryPrefixOfTheFixtures) {
  expect_every_prefix_refused(fixture("aligned64.gguf"), 1);
  expect_every_prefix_refused(fixture("types.gguf"), 7);
}

TEST(GgufTruncated, TruncatedFilesOnDisk) {
  const std::string bytes = canopy::testing::read_file(fixture("types.gguf"));
  canopy::testing::TempDir dir;
  for (const size_t len : {size_t{0}, size_t{3}, size_t{10}, size_t{23}, size_t{100}, size_t{1000},
                           bytes.size() / 2, bytes.size() - 100}) {
    const std::string path = dir.file("cut.gguf");
    canopy::testing::write_file(path, bytes.substr(0, len));
    EXPECT_MESSAGE_HAS(error_of([&] { (void)GgufFile::open(path); }), path);
  }
}

// Flipping bits anywhere in the header (metadata and tensor infos) either leaves a file canopy
// reads consistently or gives a canopy::Error; never a crash, an out-of-bounds read (the
// sanitizer and fuzz builds check that) or another exception type.
TEST(GgufCorrupted, FlippedHeaderBytes) {
  const std::string original = canopy::testing::read_file(fixture("types.gguf"));
  const size_t header = GgufFile::open_memory(as_bytes(original), "x")->data_offset();
  size_t refused = 0, accepted = 0;
  std::vector<float> out;
  for (size_t at = 0; at < header; ++at) {
    for (const uint8_t mask : {uint8_t{0x01}, uint8_t{0x10}, uint8_t{0x80}, uint8_t{0xff}}) {
      std::string bytes = original;
      bytes[at] = static_cast<char>(bytes[at] ^ mask);
      try {
        const auto f = GgufFile::open_memory(as_bytes(bytes), "flipped.gguf");
        ++accepted;
        for (const TensorInfo& t : f->tensors()) {
          if (!tensor_type_supported(t.type)) continue;
          ASSERT_EQ(t.bytes.size(), tensor_type_bytes(t.type, t.numel()));
          out.resize(static_cast<size_t>(t.numel()));
          dequantize_to_f32(t, out.data());
        }
      } catch (const Error& e) {
        ++refused;
        ASSERT_NE(std::string(e.what()).find("flipped.gguf"), std::string::npos) << e.what();
      }
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_GT(accepted, 0u);  // flips inside string values or numbers stay valid files
}

}  // namespace
}  // namespace canopy
