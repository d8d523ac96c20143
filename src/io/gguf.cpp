// GGUF reader: parses the header, metadata and tensor infos of a memory-mapped GGUF file.
#include "io/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "core/mapped_file.h"
#include "io/byte_reader.h"

namespace canopy {
namespace {

using io_detail::ByteReader;

// Limits that no real file comes near; they keep a corrupted count from driving a huge loop or
// allocation before the file's size would stop it.
constexpr uint64_t kMaxNameBytes = 1 << 16;      // a metadata key or tensor name
// Elements of one metadata array: real vocabularies and merge lists stay under a million. Each
// element costs a GgufValue (about 48 bytes), so with the check against the bytes left this keeps
// a corrupted length from asking for more than about 200 MB.
constexpr uint64_t kMaxArrayLength = 1 << 22;
constexpr int kMaxArrayDepth = 8;                // arrays of arrays of ...
constexpr uint64_t kMaxAlignment = 1 << 24;
constexpr uint32_t kMaxDims = 4;                 // GGML_MAX_DIMS
constexpr uint64_t kDefaultAlignment = 32;
// The smallest encodings: a metadata entry (empty key, type, one byte) and a tensor info (empty
// name, no dimension, type, offset).
constexpr uint64_t kMinMetadataBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::FLOAT64); }

// Bytes of the smallest possible encoding of one value of type t.
uint64_t min_value_bytes(GgufType t) {
  switch (t) {
    case GgufType::UINT8:
    case GgufType::INT8:
    case GgufType::BOOL: return 1;
    case GgufType::UINT16:
    case GgufType::INT16: return 2;
    case GgufType::UINT32:
    case GgufType::INT32:
    case GgufType::FLOAT32: return 4;
    case GgufType::UINT64:
    case GgufType::INT64:
    case GgufType::FLOAT64:
    case GgufType::STRING: return 8;
    case GgufType::ARRAY: return 4 + 8;
  }
  return 1;
}

std::string read_string(ByteReader& r, std::string_view what, uint64_t max_bytes) {
  const uint64_t length = r.u64(what);
  if (length > max_bytes) r.corrupt("{} length {} exceeds the limit of {} bytes", what, length, max_bytes);
  const auto bytes = r.take(length, what);
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

GgufValue read_value(ByteReader& r, GgufType type, int depth) {
  GgufValue out;
  out.type = type;
  switch (type) {
    case GgufType::UINT8: out.v = uint64_t{r.read<uint8_t>("uint8 value")}; break;
    case GgufType::INT8: out.v = int64_t{r.read<int8_t>("int8 value")}; break;
    case GgufType::UINT16: out.v = uint64_t{r.read<uint16_t>("uint16 value")}; break;
    case GgufType::INT16: out.v = int64_t{r.read<int16_t>("int16 value")}; break;
    case GgufType::UINT32: out.v = uint64_t{r.read<uint32_t>("uint32 value")}; break;
    case GgufType::INT32: out.v = int64_t{r.read<int32_t>("int32 value")}; break;
    case GgufType::UINT64: out.v = r.read<uint64_t>("uint64 value"); break;
    case GgufType::INT64: out.v = r.read<int64_t>("int64 value"); break;
    case GgufType::FLOAT32: out.v = double{r.read<float>("float32 value")}; break;
    case GgufType::FLOAT64: out.v = r.read<double>("float64 value"); break;
    case GgufType::BOOL: {
      const uint8_t b = r.u8("bool value");
      if (b > 1) r.corrupt("bool value {} is neither 0 nor 1", b);
      out.v = b == 1;
      break;
    }
    case GgufType::STRING:
      out.v = read_string(r, "string value", std::numeric_limits<uint64_t>::max());
      break;
    case GgufType::ARRAY: {
      const uint32_t elem_id = r.u32("array element type");
      if (!valid_value_type(elem_id)) r.corrupt("unknown array element type id {}", elem_id);
      const auto elem = static_cast<GgufType>(elem_id);
      if (elem == GgufType::ARRAY && depth + 1 >= kMaxArrayDepth)
        r.corrupt("arrays nested more than {} deep", kMaxArrayDepth);
      const uint64_t length = r.u64("array length");
      if (length > kMaxArrayLength) r.corrupt("array length {} exceeds the limit of {}", length, kMaxArrayLength);
      if (length > r.remaining() / min_value_bytes(elem)) {
        r.truncated("array of {} {} values cannot fit in the {} bytes left in the file", length,
                  gguf_type_name(elem), r.remaining());
      }
      GgufArray items;
      items.reserve(static_cast<size_t>(length));
      for (uint64_t i = 0; i < length; ++i) items.push_back(read_value(r, elem, depth + 1));
      out.v = std::move(items);
      break;
    }
    default: r.corrupt("unknown value type id {}", static_cast<uint32_t>(type));
  }
  return out;
}

std::string_view value_kind(const GgufValue& value) {
  if (value.type == GgufType::ARRAY) {
    const auto& items = std::get<GgufArray>(value.v);
    if (items.empty()) return "an empty array";
    switch (items.front().type) {
      case GgufType::STRING: return "an array of strings";
      case GgufType::ARRAY: return "an array of arrays";
      case GgufType::BOOL: return "an array of bools";
      case GgufType::FLOAT32:
      case GgufType::FLOAT64: return "an array of floats";
      default: return "an array of integers";
    }
  }
  return gguf_type_name(value.type);
}

std::optional<int64_t> as_int(const GgufValue& value) {
  if (const auto* u = std::get_if<uint64_t>(&value.v)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&value.v)) return *i;
  return std::nullopt;
}

std::optional<double> as_float(const GgufValue& value) {
  if (const auto* d = std::get_if<double>(&value.v)) return *d;
  if (const auto* u = std::get_if<uint64_t>(&value.v)) return static_cast<double>(*u);
  if (const auto* i = std::get_if<int64_t>(&value.v)) return static_cast<double>(*i);
  return std::nullopt;
}

}  // namespace

std::string_view gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::UINT8: return "uint8";
    case GgufType::INT8: return "int8";
    case GgufType::UINT16: return "uint16";
    case GgufType::INT16: return "int16";
    case GgufType::UINT32: return "uint32";
    case GgufType::INT32: return "int32";
    case GgufType::FLOAT32: return "float32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::UINT64: return "uint64";
    case GgufType::INT64: return "int64";
    case GgufType::FLOAT64: return "float64";
  }
  return "unknown";
}

bool is_gguf_magic(std::span<const uint8_t> first_bytes) {
  return first_bytes.size() >= 4 && std::memcmp(first_bytes.data(), "GGUF", 4) == 0;
}

struct GgufFile::Impl {
  std::optional<MappedFile> mapped;  // absent for open_memory
  std::span<const uint8_t> bytes;
  std::string name;
  uint32_t version = 0;
  uint64_t alignment = kDefaultAlignment;
  uint64_t data_offset = 0;
  std::map<std::string, GgufValue, std::less<>> metadata;
  std::vector<TensorInfo> tensors;
  std::map<std::string, size_t, std::less<>> by_name;

  void parse();
  void parse_header(ByteReader& r, uint64_t& tensor_count, uint64_t& metadata_count);
  void read_alignment();
  void parse_tensor_info(ByteReader& r, std::vector<uint64_t>& offsets);
  void place_tensors(const std::vector<uint64_t>& offsets);

  const GgufValue& value_or_throw(std::string_view key) const {
    auto it = metadata.find(key);
    CANOPY_CHECK(it != metadata.end(), "GGUF metadata key '{}' is missing from '{}'", key, name);
    return it->second;
  }
  [[noreturn]] void wrong_type(std::string_view key, const GgufValue& value, std::string_view expected) const {
    fail("GGUF metadata '{}' in '{}' is {} but {} was expected", key, name, value_kind(value), expected);
  }
};

void GgufFile::Impl::parse_header(ByteReader& r, uint64_t& tensor_count, uint64_t& metadata_count) {
  if (r.size() < 4 || !is_gguf_magic(r.take(4, "magic"))) {
    fail("'{}' is not a GGUF file: it does not start with the magic bytes \"GGUF\"", name);
  }
  version = r.u32("version");
  if (version == 1) {
    fail("'{}' is a GGUF version 1 file, which canopy does not read (versions 2 and 3 only); "
         "convert it again with a current llama.cpp",
         name);
  }
  if (version != 2 && version != 3) {
    const bool swapped = (version & 0xffffu) == 0 && (version >> 16) != 0;
    if (swapped) fail("'{}' is a big-endian GGUF file; canopy reads little-endian GGUF only", name);
    fail("'{}' has GGUF version {}; canopy reads versions 2 and 3", name, version);
  }
  tensor_count = r.u64("tensor count");
  metadata_count = r.u64("metadata count");
  if (metadata_count > r.remaining() / kMinMetadataBytes) {
    r.truncated("metadata count {} cannot fit in a file of {} bytes", metadata_count, r.size());
  }
  if (tensor_count > r.remaining() / kMinTensorInfoBytes) {
    r.truncated("tensor count {} cannot fit in a file of {} bytes", tensor_count, r.size());
  }
}

void GgufFile::Impl::read_alignment() {
  auto it = metadata.find("general.alignment");
  if (it == metadata.end()) return;
  const std::optional<int64_t> a = as_int(it->second);
  CANOPY_CHECK(a.has_value(), "'{}' is corrupted: general.alignment is {} but an integer was expected",
               name, value_kind(it->second));
  CANOPY_CHECK(*a > 0 && static_cast<uint64_t>(*a) <= kMaxAlignment && (*a & (*a - 1)) == 0,
               "'{}' is corrupted: general.alignment {} is not a power of two between 1 and {}", name,
               *a, kMaxAlignment);
  alignment = static_cast<uint64_t>(*a);
}

void GgufFile::Impl::parse_tensor_info(ByteReader& r, std::vector<uint64_t>& offsets) {
  TensorInfo info;
  info.file = name;
  info.name = read_string(r, "tensor name", kMaxNameBytes);
  r.set_context(fmt::format("tensor '{}'", info.name));
  const uint32_t n_dims = r.u32("dimension count");
  if (n_dims > kMaxDims) r.corrupt("{} dimensions, more than GGUF's {}", n_dims, kMaxDims);
  uint64_t ne[kMaxDims] = {};
  for (uint32_t d = 0; d < n_dims; ++d) {
    ne[d] = r.u64("dimension");
    if (ne[d] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      r.corrupt("dimension {} is {}, too large", d, ne[d]);
    }
  }
  info.shape.assign(n_dims, 0);
  for (uint32_t d = 0; d < n_dims; ++d) info.shape[n_dims - 1 - d] = static_cast<int64_t>(ne[d]);

  const uint32_t type_id = r.u32("type");
  info.type = static_cast<TensorType>(type_id);
  if (!tensor_type_known(info.type)) r.corrupt("unknown tensor type id {}", type_id);
  const uint64_t offset = r.u64("data offset");

  const int64_t block = tensor_type_block_elems(info.type);
  const int64_t row = n_dims == 0 ? 1 : static_cast<int64_t>(ne[0]);
  if (row % block != 0) {
    r.corrupt("its rows of {} elements are not a whole number of {} blocks ({} elements each)", row,
              tensor_type_name(info.type), block);
  }
  try {
    (void)tensor_type_bytes(info.type, shape_numel(info.shape));  // throws on overflow
  } catch (const Error& e) {
    r.corrupt("{}", e.what());
  }
  if (offset % alignment != 0) r.corrupt("data offset {} is not a multiple of the alignment {}", offset, alignment);
  offsets.push_back(offset);
  if (!by_name.emplace(info.name, tensors.size()).second) r.corrupt("the tensor name appears twice");
  tensors.push_back(std::move(info));
}

void GgufFile::Impl::place_tensors(const std::vector<uint64_t>& offsets) {
  const uint64_t size = bytes.size();
  std::vector<uint64_t> sizes(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    TensorInfo& t = tensors[i];
    const uint64_t nbytes = tensor_type_bytes(t.type, t.numel());
    sizes[i] = nbytes;
    const uint64_t offset = offsets[i];
    if (data_offset > size || offset > size - data_offset || nbytes > size - data_offset - offset) {
      fail("'{}' is truncated or corrupted: tensor '{}' ({} bytes at data offset {}) lies beyond "
           "the end of the file ({} bytes, data section at {})",
           name, t.name, nbytes, offset, size, data_offset);
    }
    t.bytes = bytes.subspan(static_cast<size_t>(data_offset + offset), static_cast<size_t>(nbytes));
  }
  // No two tensors may share bytes: a consumer writing through one must not see another change.
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return offsets[a] < offsets[b]; });
  const TensorInfo* previous = nullptr;
  uint64_t previous_end = 0;
  for (const size_t i : order) {
    if (sizes[i] == 0) continue;
    if (previous != nullptr && offsets[i] < previous_end) {
      fail("'{}' is corrupted: tensors '{}' and '{}' overlap in the data section", name,
           previous->name, tensors[i].name);
    }
    previous = &tensors[i];
    previous_end = offsets[i] + sizes[i];
  }
}

void GgufFile::Impl::parse() {
  ByteReader r(bytes, name);
  uint64_t tensor_count = 0, metadata_count = 0;
  parse_header(r, tensor_count, metadata_count);

  for (uint64_t i = 0; i < metadata_count; ++i) {
    r.set_context(fmt::format("metadata entry #{}", i));
    std::string key = read_string(r, "key", kMaxNameBytes);
    r.set_context(fmt::format("metadata '{}'", key));
    const uint32_t type_id = r.u32("value type");
    if (!valid_value_type(type_id)) r.corrupt("unknown value type id {}", type_id);
    GgufValue value = read_value(r, static_cast<GgufType>(type_id), 0);
    if (!metadata.emplace(std::move(key), std::move(value)).second) r.corrupt("the key appears twice");
  }
  read_alignment();

  std::vector<uint64_t> offsets;
  offsets.reserve(static_cast<size_t>(tensor_count));
  tensors.reserve(static_cast<size_t>(tensor_count));
  for (uint64_t i = 0; i < tensor_count; ++i) {
    r.set_context(fmt::format("tensor info #{}", i));
    parse_tensor_info(r, offsets);
  }
  // pos <= size < 2^63 and alignment <= 2^24: no overflow.
  data_offset = (r.pos() + alignment - 1) / alignment * alignment;
  place_tensors(offsets);
}

GgufFile::GgufFile() : impl_(std::make_unique<Impl>()) {}
GgufFile::~GgufFile() = default;

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->impl_->mapped.emplace(path);
  f->impl_->bytes = {f->impl_->mapped->data(), f->impl_->mapped->size()};
  f->impl_->name = path;
  f->impl_->parse();
  return f;
}

std::unique_ptr<GgufFile> GgufFile::open_memory(std::span<const uint8_t> bytes, std::string name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->impl_->bytes = bytes;
  f->impl_->name = std::move(name);
  f->impl_->parse();
  return f;
}

uint32_t GgufFile::version() const { return impl_->version; }
uint64_t GgufFile::alignment() const { return impl_->alignment; }
uint64_t GgufFile::data_offset() const { return impl_->data_offset; }
const std::map<std::string, GgufValue, std::less<>>& GgufFile::metadata() const { return impl_->metadata; }
bool GgufFile::has(std::string_view key) const { return impl_->metadata.find(key) != impl_->metadata.end(); }

const GgufValue* GgufFile::find_value(std::string_view key) const {
  auto it = impl_->metadata.find(key);
  return it == impl_->metadata.end() ? nullptr : &it->second;
}

std::string GgufFile::get_string(std::string_view key) const {
  const GgufValue& v = impl_->value_or_throw(key);
  if (const auto* s = std::get_if<std::string>(&v.v)) return *s;
  impl_->wrong_type(key, v, "a string");
}

int64_t GgufFile::get_int(std::string_view key) const {
  const GgufValue& v = impl_->value_or_throw(key);
  if (auto i = as_int(v)) return *i;
  impl_->wrong_type(key, v, "an integer (that fits in int64)");
}

double GgufFile::get_float(std::string_view key) const {
  const GgufValue& v = impl_->value_or_throw(key);
  if (auto d = as_float(v)) return *d;
  impl_->wrong_type(key, v, "a number");
}

bool GgufFile::get_bool(std::string_view key) const {
  const GgufValue& v = impl_->value_or_throw(key);
  if (const auto* b = std::get_if<bool>(&v.v)) return *b;
  impl_->wrong_type(key, v, "a bool");
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue& v = impl_->value_or_throw(key);
  const auto* items = std::get_if<GgufArray>(&v.v);
  if (items == nullptr) impl_->wrong_type(key, v, "an array of strings");
  std::vector<std::string> out;
  out.reserve(items->size());
  for (const GgufValue& item : *items) {
    const auto* s = std::get_if<std::string>(&item.v);
    if (s == nullptr) impl_->wrong_type(key, v, "an array of strings");
    out.push_back(*s);
  }
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
  const GgufValue& v = impl_->value_or_throw(key);
  const auto* items = std::get_if<GgufArray>(&v.v);
  if (items == nullptr) impl_->wrong_type(key, v, "an array of integers");
  std::vector<int64_t> out;
  out.reserve(items->size());
  for (const GgufValue& item : *items) {
    const auto i = as_int(item);
    if (!i) impl_->wrong_type(key, v, "an array of integers (that fit in int64)");
    out.push_back(*i);
  }
  return out;
}

std::vector<float> GgufFile::get_float_array(std::string_view key) const {
  const GgufValue& v = impl_->value_or_throw(key);
  const auto* items = std::get_if<GgufArray>(&v.v);
  if (items == nullptr) impl_->wrong_type(key, v, "an array of numbers");
  std::vector<float> out;
  out.reserve(items->size());
  for (const GgufValue& item : *items) {
    const auto d = as_float(item);
    if (!d) impl_->wrong_type(key, v, "an array of numbers");
    out.push_back(static_cast<float>(*d));
  }
  return out;
}

std::optional<std::string> GgufFile::find_string(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_string(key);
}
std::optional<int64_t> GgufFile::find_int(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_int(key);
}
std::optional<double> GgufFile::find_float(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_float(key);
}
std::optional<bool> GgufFile::find_bool(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_bool(key);
}

const std::vector<TensorInfo>& GgufFile::tensors() const { return impl_->tensors; }

const TensorInfo* GgufFile::find(std::string_view name) const {
  auto it = impl_->by_name.find(name);
  return it == impl_->by_name.end() ? nullptr : &impl_->tensors[it->second];
}

std::vector<std::string> GgufFile::names() const {
  std::vector<std::string> out;
  out.reserve(impl_->by_name.size());
  for (const auto& [name, index] : impl_->by_name) out.push_back(name);
  return out;
}

std::string GgufFile::description() const { return impl_->name; }

}  // namespace canopy
