// The device options shared by every subcommand that runs a model (api/commands.h).
#include "api/commands.h"

namespace canopy::cli {

void add_device_options(CLI::App& cmd, std::string& device, double& gpu_memory_utilization, bool& no_cuda_graphs,
                        bool& random_weights) {
  cmd.add_option("--device", device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd.add_option("--gpu-memory-utilization", gpu_memory_utilization,
                 "Share of the GPU's memory canopy may hold (weights, buffers, KV cache), in (0, 1]")
      ->check(CLI::Range(0.0, 1.0));
  cmd.add_flag("--no-cuda-graphs", no_cuda_graphs, "Run every GPU step op by op (no CUDA graphs)");
  cmd.add_flag("--random-weights", random_weights,
               "-m is a Hugging Face config.json; the weights are random, made on the device (benchmarks)");
}

void add_device_options(CLI::App& cmd, DeviceArgs& args) {
  add_device_options(cmd, args.device, args.gpu_memory_utilization, args.no_cuda_graphs, args.random_weights);
}

void apply_device_args(const DeviceArgs& args, EngineOptions& options) {
  options.device = args.device;
  options.gpu_memory_utilization = args.gpu_memory_utilization;
  options.cuda_graphs = !args.no_cuda_graphs;
  options.random_weights = args.random_weights;
}

}  // namespace canopy::cli
