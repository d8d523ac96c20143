#include "cublaslt_gemm.h"

#include "core/error.h"

// Throws canopy::Error naming the failed cuBLASLt call and its status.
#define CANOPY_CUBLAS_CHECK(expr)                                                                     \
  do {                                                                                                \
    const cublasStatus_t canopy_cublas_status_ = (expr);                                              \
    if (canopy_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                               \
      ::canopy::fail("cuBLASLt error {} ({}) in {} at {}:{}", cublasLtGetStatusName(canopy_cublas_status_), \
                     cublasLtGetStatusString(canopy_cublas_status_), #expr, __FILE__, __LINE__);      \
  } while (0)

namespace canopy::cuda {

namespace {

// The largest power of two (up to 256) dividing the address: cuBLASLt picks kernels by alignment.
int alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int align = 256;
  while (align > 1 && a % static_cast<uintptr_t>(align) != 0) align /= 2;
  return align;
}

}  // namespace

CublasLtGemm::CublasLtGemm(size_t workspace_bytes) : workspace_bytes_(workspace_bytes) {
  CANOPY_CUBLAS_CHECK(cublasLtCreate(&handle_));
  workspace_.reserve(workspace_bytes_);
}

CublasLtGemm::~CublasLtGemm() {
  for (auto& [key, plan] : plans_) destroy(plan);
  if (handle_ != nullptr) cublasLtDestroy(handle_);
}

void CublasLtGemm::destroy(Plan& plan) {
  if (plan.a != nullptr) cublasLtMatrixLayoutDestroy(plan.a);
  if (plan.b != nullptr) cublasLtMatrixLayoutDestroy(plan.b);
  if (plan.c != nullptr) cublasLtMatrixLayoutDestroy(plan.c);
  if (plan.desc != nullptr) cublasLtMatmulDescDestroy(plan.desc);
  plan = Plan{};
}

// Row-major y [M, N] = x [M, K] w[N, K]^T is, in cuBLASLt's column-major terms,
// C (N x M, ld N) = op(A) (N x K) * B (K x M) with A = w as a K x N matrix (ld K), op = transpose,
// and B = x as a K x M matrix (ld K). The bias epilogue adds a vector over C's rows: N.
CublasLtGemm::Plan& CublasLtGemm::plan_for(const Key& key, const void* bias) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  const auto [M, N, K, in_i, out_i, has_bias, align_x, align_w, align_y, align_bias_unused] = key;
  (void)align_bias_unused;
  const auto in_type = static_cast<cudaDataType_t>(in_i);
  const auto out_type = static_cast<cudaDataType_t>(out_i);

  Plan plan;
  try {
    CANOPY_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
    CANOPY_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)));
    CANOPY_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)));
    if (has_bias) {
      const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
      CANOPY_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
      const int32_t bias_type = out_i;
      CANOPY_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                         sizeof(bias_type)));
      // The heuristic reads the bias pointer's alignment (it is part of the cache key).
      CANOPY_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    }
    CANOPY_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.a, in_type, static_cast<uint64_t>(K),
                                                   static_cast<uint64_t>(N), K));
    CANOPY_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.b, in_type, static_cast<uint64_t>(K),
                                                   static_cast<uint64_t>(M), K));
    CANOPY_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.c, out_type, static_cast<uint64_t>(N),
                                                   static_cast<uint64_t>(M), N));

    cublasLtMatmulPreference_t pref = nullptr;
    CANOPY_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    constexpr int kCandidates = 8;
    cublasLtMatmulHeuristicResult_t results[kCandidates]{};
    int found = 0;
    const cublasStatus_t status = [&] {
      const uint64_t ws = workspace_bytes_;
      cublasStatus_t st =
          cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
      const uint32_t aligns[4] = {static_cast<uint32_t>(align_w), static_cast<uint32_t>(align_x),
                                  static_cast<uint32_t>(align_y), static_cast<uint32_t>(align_y)};
      const cublasLtMatmulPreferenceAttributes_t which[4] = {
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
      for (int i = 0; i < 4 && st == CUBLAS_STATUS_SUCCESS; ++i)
        st = cublasLtMatmulPreferenceSetAttribute(pref, which[i], &aligns[i], sizeof(aligns[i]));
      if (st != CUBLAS_STATUS_SUCCESS) return st;
      return cublasLtMatmulAlgoGetHeuristic(handle_, plan.desc, plan.a, plan.b, plan.c, plan.c, pref, kCandidates,
                                            results, &found);
    }();
    cublasLtMatmulPreferenceDestroy(pref);
    CANOPY_CUBLAS_CHECK(status);
    CANOPY_CHECK(found > 0, "cuBLASLt has no algorithm for a {}x{}x{} product ({} -> {}{})", M, N, K, in_i, out_i,
                 has_bias ? ", bias" : "");
    plan.algo = results[0].algo;
    if (M <= kTuneMaxRows && found > 1)
      for (int i = 0; i < found; ++i)
        if (results[i].state == CUBLAS_STATUS_SUCCESS) plan.candidates.push_back(results[i].algo);
  } catch (...) {
    destroy(plan);
    throw;
  }
  return plans_.emplace(key, plan).first->second;
}

void CublasLtGemm::matmul(const void* x, const void* w, const void* bias, void* y, int64_t M, int64_t N, int64_t K,
                          cudaDataType_t in_type, cudaDataType_t out_type, cudaStream_t stream) {
  CANOPY_ASSERT(M >= 1 && N >= 1 && K >= 1);
  CANOPY_ASSERT(in_type == CUDA_R_16BF || in_type == CUDA_R_16F);
  CANOPY_ASSERT(out_type == in_type || out_type == CUDA_R_32F);
  const Key key{M, N, K, static_cast<int>(in_type), static_cast<int>(out_type), bias != nullptr,
                alignment_of(x), alignment_of(w), alignment_of(y), bias != nullptr ? alignment_of(bias) : 0};
  Plan& plan = plan_for(key, bias);
  if (bias != nullptr)
    CANOPY_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  if (plan.candidates.size() > 1) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    CANOPY_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
    if (capture == cudaStreamCaptureStatusNone) tune(plan, x, w, y, stream);
  }
  const float alpha = 1.0f, beta = 0.0f;
  CANOPY_CUBLAS_CHECK(cublasLtMatmul(handle_, plan.desc, &alpha, w, plan.a, x, plan.b, &beta, y, plan.c, y, plan.c,
                                     &plan.algo, workspace_.data(), workspace_bytes_, stream));
}

void CublasLtGemm::tune(Plan& plan, const void* x, const void* w, void* y, cudaStream_t stream) {
  // y is the product's own output, overwritten by the real call that follows.
  cudaEvent_t start = nullptr, stop = nullptr;
  CANOPY_CUDA_CHECK(cudaEventCreate(&start));
  CANOPY_CUDA_CHECK(cudaEventCreate(&stop));
  const float alpha = 1.0f, beta = 0.0f;
  float best_ms = -1.0f;
  for (const cublasLtMatmulAlgo_t& algo : plan.candidates) {
    const auto run = [&] {
      return cublasLtMatmul(handle_, plan.desc, &alpha, w, plan.a, x, plan.b, &beta, y, plan.c, y, plan.c, &algo,
                            workspace_.data(), workspace_bytes_, stream);
    };
    if (run() != CUBLAS_STATUS_SUCCESS) continue;  // a candidate that cannot run here is skipped
    constexpr int kRuns = 3;
    CANOPY_CUDA_CHECK(cudaEventRecord(start, stream));
    bool ok = true;
    for (int r = 0; r < kRuns && ok; ++r) ok = run() == CUBLAS_STATUS_SUCCESS;
    CANOPY_CUDA_CHECK(cudaEventRecord(stop, stream));
    CANOPY_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    CANOPY_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (ok && (best_ms < 0.0f || ms < best_ms)) {
      best_ms = ms;
      plan.algo = algo;
    }
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  plan.candidates.clear();
  plan.candidates.shrink_to_fit();
}

}  // namespace canopy::cuda
