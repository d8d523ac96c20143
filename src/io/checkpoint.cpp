// open_checkpoint: picks the reader for a path by what it holds.
#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "io/tensor_source.h"

namespace canopy {

std::unique_ptr<TensorSource> open_checkpoint(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  CANOPY_CHECK(fs::exists(path, ec), "model path '{}' does not exist", path);
  if (fs::is_directory(path, ec)) return open_safetensors(path);
  {
    const MappedFile probe(path);
    if (is_gguf_magic({probe.data(), probe.size()})) return GgufFile::open(path);
  }
  CANOPY_CHECK(fs::path(path).extension() == ".safetensors",
               "'{}' is neither a GGUF file (it lacks the \"GGUF\" magic) nor a .safetensors file "
               "nor a model folder",
               path);
  return open_safetensors(path);
}

}  // namespace canopy
