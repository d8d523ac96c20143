// The CUDA backend: the forward pass on one NVIDIA GPU (Backend, backend/backend.h).
//
// Weights and activations are bf16 (norm weights, biases and rope frequencies f32, every kernel
// accumulates in f32); linear layers are cuBLASLt products (bias by the epilogue), attention is the
// fused forest kernel (forest_attention_runner.h), sampling runs on the GPU and only sampled ids
// and log-probabilities come back. Every op runs on one stream of the backend's own.
//
// Memory: the backend holds at most --gpu-memory-utilization of the device's memory, counting
// everything in use on the device (its own weights, buffers and workspaces, the CUDA context,
// other processes); an allocation past that fails with a canopy::Error naming the sizes.
// kv_cache_budget_bytes() is what is left of that share, less a reserve for the workspaces that
// grow with the step (attention partials, sampling and logits scratch).
#pragma once

#include <cstddef>
#include <memory>

#include "backend/backend.h"

namespace canopy {

struct CudaBackendOptions {
  int device = 0;
  // Share of the device's memory canopy may hold, in (0, 1].
  double gpu_memory_utilization = 0.9;
  // Replay decode steps as CUDA graphs (LlamaModel pads small steps to a few bucket sizes).
  bool cuda_graphs = true;
  // Kept out of the KV cache budget: workspaces that grow with the step (attention partials,
  // logits scratch) and the rounding of the KV cache's allocations to whole 2 MiB pages.
  size_t workspace_reserve_bytes = size_t{512} << 20;
};

// The number of CUDA devices this process can use; 0 when there is no driver or no device
// (never throws).
int cuda_device_count();

// Throws canopy::Error when no device is present, the device index is out of range or the
// options are out of range.
std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options = {});

}  // namespace canopy
