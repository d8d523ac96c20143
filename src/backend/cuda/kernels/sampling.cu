// Host launcher of the sampling kernel (sampling.h, sampling.cuh).
#include "sampling.cuh"
#include "sampling.h"

namespace canopy::kernels {

int sampling_mass_shift(int32_t vocab) {
  int bits = 0;  // ceil(log2(vocab))
  while ((int64_t{1} << bits) < vocab) ++bits;
  return 62 - bits;
}

cudaError_t launch_sample(const SampleParams& p, cudaStream_t stream) {
  if (p.num_samples == 0) return cudaSuccess;
  if (p.num_samples < 0 || p.num_rows <= 0 || p.vocab <= 0 || p.mass_shift < 0 || p.mass_shift > 62)
    return cudaErrorInvalidValue;
  sample_kernel<<<static_cast<unsigned>(p.num_samples), kSampleThreads, kSampleSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace canopy::kernels
