// Page-locked host memory, for host <-> device copies that are truly asynchronous (step metadata,
// sampling parameters and results).
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <utility>

#include "cuda_util.h"

namespace canopy::cuda {

// Owns capacity() elements of pinned host memory; grows (never shrinks, contents lost) on reserve.
template <typename T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() { release(); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void reserve(size_t count) {
    if (count <= capacity_ && data_ != nullptr) return;
    release();
    void* p = nullptr;
    CANOPY_CUDA_CHECK(cudaMallocHost(&p, std::max<size_t>(count, 1) * sizeof(T)));
    data_ = static_cast<T*>(p);
    capacity_ = count;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t capacity() const { return capacity_; }

 private:
  void release() {
    if (data_ != nullptr) cudaFreeHost(data_);
    data_ = nullptr;
    capacity_ = 0;
  }
  T* data_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace canopy::cuda
