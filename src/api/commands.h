// The `canopy` command line: one binary, one subcommand per file in this folder.
//
// Each add_*_command() registers its subcommand and options on `app`; when the subcommand runs,
// its callback stores the process exit status in `exit_code`. Errors a user can cause are thrown
// as canopy::Error and reported by main() as "canopy: error: <message>" with exit status 1.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "canopy/engine.h"

namespace canopy::cli {

// The options every model-running subcommand takes: --device, --gpu-memory-utilization,
// --no-cuda-graphs, --random-weights (device_options.cpp).
struct DeviceArgs {
  std::string device = "cpu";
  double gpu_memory_utilization = 0.9;
  bool no_cuda_graphs = false;
  bool random_weights = false;
};
void add_device_options(CLI::App& cmd, DeviceArgs& args);
void add_device_options(CLI::App& cmd, std::string& device, double& gpu_memory_utilization, bool& no_cuda_graphs,
                        bool& random_weights);
void apply_device_args(const DeviceArgs& args, EngineOptions& options);

void add_info_command(CLI::App& app, int& exit_code);
void add_generate_command(CLI::App& app, int& exit_code);
void add_tokenize_command(CLI::App& app, int& exit_code);
void add_run_batch_command(CLI::App& app, int& exit_code);

}  // namespace canopy::cli
