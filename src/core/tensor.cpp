#include "core/tensor.h"

#include <cstdlib>
#include <cstring>

namespace canopy {

Shape::Shape(std::initializer_list<int64_t> dims) {
  CANOPY_CHECK(dims.size() <= kMaxRank, "tensor rank {} exceeds the maximum of {}", dims.size(),
               kMaxRank);
  for (int64_t d : dims) {
    CANOPY_CHECK(d >= 0, "negative tensor dimension {}", d);
    dims_[static_cast<size_t>(rank_++)] = d;
  }
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<size_t>(i)];
  return n;
}

bool Shape::operator==(const Shape& other) const {
  if (rank_ != other.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[static_cast<size_t>(i)] != other.dims_[static_cast<size_t>(i)]) return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims_[static_cast<size_t>(i)]);
  }
  return s + "]";
}

void HostTensor::Free::operator()(void* p) const { std::free(p); }

HostTensor::HostTensor(DType dtype, Shape shape) {
  view_.dtype = dtype;
  view_.shape = shape;
  const size_t n = view_.bytes();
  const size_t rounded = (n + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  CANOPY_CHECK(p != nullptr, "out of host memory allocating {} bytes for a tensor of shape {}", n,
               shape.str());
  std::memset(p, 0, rounded == 0 ? 64 : rounded);
  buffer_.reset(p);
  view_.data = p;
}

}  // namespace canopy
