// Matrix products on cuBLASLt for the linear layers: y [M, N] = x [M, K] @ w [N, K]^T (+ bias [N]),
// row-major, bf16 (or f16) inputs, f32 accumulation, bf16/f16/f32 output. The bias, when given, is
// added by cuBLASLt's epilogue and has the output's dtype.
//
// Plans (descriptors, layouts and the chosen algorithm) are cached per shape, dtype, bias and
// pointer alignment, so each distinct shape pays the heuristic once. For small products (M up to
// kTuneMaxRows: decode steps, where the heuristic's first pick was measured up to 6x slower than
// its others, e.g. the 1 x 128256 x 4096 logits product) the first call outside a graph capture
// also times the heuristic's candidates on the real operands and keeps the fastest.
// Thread-compatible (one stream at a time); the workspace is owned here.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include "cuda_util.h"

namespace canopy::cuda {

class CublasLtGemm {
 public:
  explicit CublasLtGemm(size_t workspace_bytes = size_t{32} << 20);
  ~CublasLtGemm();
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  // Asynchronous on `stream`. in_type: CUDA_R_16BF or CUDA_R_16F (x and w); out_type: the same
  // or CUDA_R_32F; bias (nullable) of out_type. Throws canopy::Error when cuBLASLt has no
  // algorithm for the shape or the call fails.
  void matmul(const void* x, const void* w, const void* bias, void* y, int64_t M, int64_t N, int64_t K,
              cudaDataType_t in_type, cudaDataType_t out_type, cudaStream_t stream);

  // Products with at most this many rows are tuned on first use.
  static constexpr int64_t kTuneMaxRows = 256;

  size_t workspace_bytes() const { return workspace_bytes_; }
  size_t cached_plans() const { return plans_.size(); }

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    std::vector<cublasLtMatmulAlgo_t> candidates;  // the heuristic's picks, best first, until tuned
  };
  // M, N, K, in type, out type, has bias, alignment of x, w, y (and bias) in bytes.
  using Key = std::tuple<int64_t, int64_t, int64_t, int, int, bool, int, int, int, int>;

  Plan& plan_for(const Key& key, const void* bias);
  // Times each candidate once warmed up and keeps the fastest in plan.algo (synchronizes `stream`).
  void tune(Plan& plan, const void* x, const void* w, void* y, cudaStream_t stream);
  static void destroy(Plan& plan);

  cublasLtHandle_t handle_ = nullptr;
  size_t workspace_bytes_ = 0;
  DeviceBuffer<unsigned char> workspace_;
  std::map<Key, Plan> plans_;
};

}  // namespace canopy::cuda
