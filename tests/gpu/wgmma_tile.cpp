#include "wgmma_tile.h"

#include "backend/cuda/cuda_util.h"
#include "wgmma_tile_kernel.h"

namespace canopy::testing {

WgmmaTileResult run_wgmma_tile(const std::vector<uint16_t>& q, const std::vector<uint16_t>& k,
                               const std::vector<uint16_t>& v, const std::vector<uint16_t>& p, int head_dim,
                               bool emulated) {
  WgmmaTileResult r;
  r.s.assign(64 * 64, 0.0f);
  r.o.assign(static_cast<size_t>(64) * head_dim, 0.0f);
  kernels::WgmmaTileParams prm{};
  if (emulated) {
    prm = {q.data(), k.data(), v.data(), p.data(), r.s.data(), r.o.data()};
    emulate_wgmma_tile(&prm, head_dim);
    return r;
  }
  cuda::DeviceBuffer<uint16_t> dq, dk, dv, dp;
  cuda::DeviceBuffer<float> ds(r.s.size()), dout(r.o.size());
  dq.upload(q, nullptr);
  dk.upload(k, nullptr);
  dv.upload(v, nullptr);
  dp.upload(p, nullptr);
  prm = {dq.data(), dk.data(), dv.data(), dp.data(), ds.data(), dout.data()};
  CANOPY_CUDA_CHECK(launch_wgmma_tile(&prm, head_dim));
  CANOPY_CUDA_CHECK(cudaDeviceSynchronize());
  r.s = ds.download(r.s.size());
  r.o = dout.download(r.o.size());
  return r;
}

}  // namespace canopy::testing
