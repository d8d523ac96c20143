// Host-side CUDA helpers: error checks that throw canopy::Error, and a growable device buffer.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

#include "core/error.h"

// Throws canopy::Error naming the failed call and the CUDA error.
#define CANOPY_CUDA_CHECK(expr)                                                                         \
  do {                                                                                                  \
    const cudaError_t canopy_cuda_err_ = (expr);                                                        \
    if (canopy_cuda_err_ != cudaSuccess)                                                                \
      ::canopy::fail("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorName(canopy_cuda_err_),           \
                     cudaGetErrorString(canopy_cuda_err_), #expr, __FILE__, __LINE__);                  \
  } while (0)

namespace canopy::cuda {

// Owns count() elements of device memory; grows (never shrinks) on reserve.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) { reserve(count); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), capacity_(std::exchange(o.capacity_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      capacity_ = std::exchange(o.capacity_, 0);
    }
    return *this;
  }

  // Returns true when it reallocated (the contents are then undefined).
  bool reserve(size_t count) {
    if (count <= capacity_ && data_ != nullptr) return false;
    release();
    void* p = nullptr;
    CANOPY_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(count, 1) * sizeof(T)));
    data_ = static_cast<T*>(p);
    capacity_ = count;
    return true;
  }
  // Copies host data (stream-ordered; the host vector must outlive the copy when pinned).
  void upload(const std::vector<T>& host, cudaStream_t stream) {
    reserve(host.size());
    if (!host.empty())
      CANOPY_CUDA_CHECK(cudaMemcpyAsync(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice, stream));
  }
  std::vector<T> download(size_t count) const {
    std::vector<T> host(count);
    if (count > 0) CANOPY_CUDA_CHECK(cudaMemcpy(host.data(), data_, count * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t capacity() const { return capacity_; }

 private:
  void release() {
    if (data_ != nullptr) cudaFree(data_);
    data_ = nullptr;
    capacity_ = 0;
  }
  T* data_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace canopy::cuda
