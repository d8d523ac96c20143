// Safetensors reader: single files and sharded Hugging Face folders.
#include "io/safetensors.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "core/mapped_file.h"
#include "io/byte_reader.h"

namespace canopy {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// The reference implementation's cap on the JSON header; real headers are well under 1 MiB.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;
constexpr size_t kMaxDims = 16;

// One safetensors file: its bytes (mapped, or borrowed for open_safetensors_memory) and tensors.
struct Shard {
  std::optional<MappedFile> mapped;
  std::span<const uint8_t> bytes;
  std::string name;
  std::vector<TensorInfo> tensors;
};

std::optional<TensorType> parse_dtype_name(std::string_view dtype) {
  if (dtype == "F32") return TensorType::F32;
  if (dtype == "F16") return TensorType::F16;
  if (dtype == "BF16") return TensorType::BF16;
  return std::nullopt;
}

// A JSON value for a message: numbers and short strings as written, anything else by its kind
// (dumping an arbitrary value could recurse as deep as its nesting, which the file controls).
std::string describe(const json& j) {
  if (j.is_number() || (j.is_string() && j.get_ref<const std::string&>().size() <= 64)) return j.dump();
  return fmt::format("a JSON {}", j.type_name());
}

// A non-negative JSON integer, or nullopt.
std::optional<uint64_t> as_count(const json& j) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer() && j.get<int64_t>() >= 0) return static_cast<uint64_t>(j.get<int64_t>());
  return std::nullopt;
}

TensorInfo parse_entry(const Shard& shard, const std::string& tensor, const json& entry,
                       std::span<const uint8_t> data, uint64_t& begin_out) {
  const auto bad = [&](std::string_view problem) {
    fail("'{}' is corrupted: the header entry of tensor '{}' {}", shard.name, tensor, problem);
  };
  if (!entry.is_object()) bad("is not a JSON object");
  const auto dtype_it = entry.find("dtype");
  const auto shape_it = entry.find("shape");
  const auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || !dtype_it->is_string()) bad("has no \"dtype\" string");
  if (shape_it == entry.end() || !shape_it->is_array()) bad("has no \"shape\" array");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2)
    bad("has no \"data_offsets\" pair [begin, end]");

  TensorInfo info;
  info.name = tensor;
  info.file = shard.name;
  const std::string& dtype = dtype_it->get_ref<const std::string&>();
  const auto type = parse_dtype_name(dtype);
  CANOPY_CHECK(type.has_value(),
               "tensor '{}' in '{}' has dtype {}, which canopy does not read (F32, F16 and BF16 only)",
               tensor, shard.name, dtype);
  info.type = *type;

  if (shape_it->size() > kMaxDims) bad(fmt::format("has {} dimensions, more than {}", shape_it->size(), kMaxDims));
  for (const json& d : *shape_it) {
    const auto n = as_count(d);
    if (!n || *n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      bad(fmt::format("has a shape dimension {} that is not a non-negative integer", describe(d)));
    info.shape.push_back(static_cast<int64_t>(*n));
  }
  uint64_t expected = 0;
  try {
    expected = tensor_type_bytes(info.type, shape_numel(info.shape));
  } catch (const Error& e) {
    bad(fmt::format("has an impossible shape: {}", e.what()));
  }

  const auto begin = as_count((*offsets_it)[0]);
  const auto end = as_count((*offsets_it)[1]);
  if (!begin || !end) bad("has data_offsets that are not non-negative integers");
  if (*begin > *end) bad(fmt::format("has data_offsets [{}, {}) that end before they begin", *begin, *end));
  if (*end > data.size()) {
    fail("'{}' is truncated or corrupted: tensor '{}' has data_offsets [{}, {}) beyond the end of "
         "the data section ({} bytes)",
         shard.name, tensor, *begin, *end, data.size());
  }
  if (*end - *begin != expected) {
    bad(fmt::format("has data_offsets [{}, {}) holding {} bytes, but its shape and dtype {} need {}",
                    *begin, *end, *end - *begin, dtype, expected));
  }
  info.bytes = data.subspan(static_cast<size_t>(*begin), static_cast<size_t>(expected));
  begin_out = *begin;
  return info;
}

void parse_shard(Shard& shard) {
  io_detail::ByteReader r(shard.bytes, shard.name);
  if (r.size() < 8) {
    fail("'{}' is not a safetensors file: it has {} bytes, fewer than the 8-byte header length",
         shard.name, r.size());
  }
  const uint64_t header_bytes = r.u64("header length");
  CANOPY_CHECK(header_bytes <= kMaxHeaderBytes,
               "'{}' is not a safetensors file or is corrupted: its header length {} exceeds the "
               "limit of {} bytes",
               shard.name, header_bytes, kMaxHeaderBytes);
  const auto header = r.take(header_bytes, "JSON header");
  const std::span<const uint8_t> data = shard.bytes.subspan(static_cast<size_t>(r.pos()));

  json j;
  try {
    j = json::parse(header.begin(), header.end());
  } catch (const json::exception& e) {
    fail("'{}' is corrupted: its JSON header does not parse: {}", shard.name, e.what());
  }
  CANOPY_CHECK(j.is_object(), "'{}' is corrupted: its JSON header is not an object", shard.name);

  std::vector<std::pair<uint64_t, size_t>> starts;  // (data offset, tensor index)
  for (const auto& [tensor, entry] : j.items()) {
    if (tensor == "__metadata__") continue;
    uint64_t begin = 0;
    shard.tensors.push_back(parse_entry(shard, tensor, entry, data, begin));
    starts.emplace_back(begin, shard.tensors.size() - 1);
  }
  // No two tensors may share bytes.
  std::sort(starts.begin(), starts.end());
  const TensorInfo* previous = nullptr;
  uint64_t previous_end = 0;
  for (const auto& [begin, index] : starts) {
    const TensorInfo& t = shard.tensors[index];
    if (t.bytes.empty()) continue;
    CANOPY_CHECK(previous == nullptr || begin >= previous_end,
                 "'{}' is corrupted: tensors '{}' and '{}' overlap in the data section", shard.name,
                 previous != nullptr ? previous->name : "", t.name);
    previous = &t;
    previous_end = begin + t.bytes.size();
  }
}

class SafetensorsSource : public TensorSource {
 public:
  explicit SafetensorsSource(std::string description) : description_(std::move(description)) {}

  Shard& add_shard(std::string name, std::span<const uint8_t> bytes) {
    auto shard = std::make_unique<Shard>();
    shard->bytes = bytes;
    shard->name = std::move(name);
    parse_shard(*shard);
    shards_.push_back(std::move(shard));
    return *shards_.back();
  }

  Shard& add_mapped_shard(const std::string& path) {
    auto shard = std::make_unique<Shard>();
    shard->mapped.emplace(path);
    shard->bytes = {shard->mapped->data(), shard->mapped->size()};
    shard->name = path;
    parse_shard(*shard);
    shards_.push_back(std::move(shard));
    return *shards_.back();
  }

  void expose(const TensorInfo& t) {
    CANOPY_CHECK(by_name_.emplace(t.name, &t).second, "tensor '{}' appears twice in {}", t.name, description_);
  }
  void expose_all(const Shard& shard) {
    for (const TensorInfo& t : shard.tensors) expose(t);
  }

  const TensorInfo* find(std::string_view name) const override {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    out.reserve(by_name_.size());
    for (const auto& [name, info] : by_name_) out.push_back(name);
    return out;
  }
  std::string description() const override { return description_; }

 private:
  std::string description_;
  std::vector<std::unique_ptr<Shard>> shards_;  // stable addresses: by_name_ points into them
  std::map<std::string, const TensorInfo*, std::less<>> by_name_;
};

std::unique_ptr<TensorSource> open_sharded(const fs::path& folder, const fs::path& index_path) {
  const std::string index_name = index_path.string();
  json index;
  try {
    index = json::parse(read_text_file(index_name));
  } catch (const json::exception& e) {
    fail("'{}' is not valid JSON: {}", index_name, e.what());
  }
  CANOPY_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
               "'{}' has no \"weight_map\" object mapping tensor names to shard files", index_name);
  const json& weight_map = index["weight_map"];
  CANOPY_CHECK(!weight_map.empty(), "'{}' has an empty \"weight_map\"", index_name);

  auto source = std::make_unique<SafetensorsSource>(folder.string());
  std::map<std::string, Shard*> shards;
  for (auto item = weight_map.begin(); item != weight_map.end(); ++item) {
    const std::string& tensor = item.key();
    const json& file = item.value();
    CANOPY_CHECK(file.is_string(), "'{}' maps tensor '{}' to {}, not to a shard file name", index_name,
                 tensor, describe(file));
    const std::string& shard_name = file.get_ref<const std::string&>();
    // Shards live beside the index: a name that climbs out of the folder is refused.
    CANOPY_CHECK(!shard_name.empty() && shard_name != "." && shard_name != ".." &&
                     shard_name.find_first_of("/\\") == std::string::npos,
                 "'{}' maps tensor '{}' to '{}', which is not a file name in the same folder",
                 index_name, tensor, shard_name);
    auto it = shards.find(shard_name);
    if (it == shards.end()) {
      const fs::path shard_path = folder / shard_name;
      std::error_code ec;
      CANOPY_CHECK(fs::is_regular_file(shard_path, ec),
                   "'{}' maps tensor '{}' to shard '{}', but '{}' does not exist", index_name, tensor,
                   shard_name, shard_path.string());
      it = shards.emplace(shard_name, &source->add_mapped_shard(shard_path.string())).first;
    }
    const Shard& shard = *it->second;
    const auto found = std::find_if(shard.tensors.begin(), shard.tensors.end(),
                                    [&](const TensorInfo& t) { return t.name == tensor; });
    CANOPY_CHECK(found != shard.tensors.end(), "'{}' maps tensor '{}' to '{}', which does not hold it",
                 index_name, tensor, shard.name);
    source->expose(*found);
  }
  return source;
}

}  // namespace

std::unique_ptr<TensorSource> open_safetensors(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  CANOPY_CHECK(fs::exists(p, ec), "'{}' does not exist", path);
  if (fs::is_directory(p, ec)) {
    const fs::path single = p / "model.safetensors";
    const fs::path index = p / "model.safetensors.index.json";
    if (fs::is_regular_file(single, ec)) {
      auto source = std::make_unique<SafetensorsSource>(path);
      source->expose_all(source->add_mapped_shard(single.string()));
      return source;
    }
    if (fs::is_regular_file(index, ec)) return open_sharded(p, index);
    fail("'{}' holds no safetensors checkpoint: expected model.safetensors or "
         "model.safetensors.index.json in it",
         path);
  }
  auto source = std::make_unique<SafetensorsSource>(path);
  source->expose_all(source->add_mapped_shard(path));
  return source;
}

std::unique_ptr<TensorSource> open_safetensors_memory(std::span<const uint8_t> bytes, std::string name) {
  auto source = std::make_unique<SafetensorsSource>(name);
  source->expose_all(source->add_shard(std::move(name), bytes));
  return source;
}

}  // namespace canopy
