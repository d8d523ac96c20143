// `canopy info`: what this build of canopy can do (backends, devices).
#include <fmt/format.h>

#include "api/commands.h"

namespace canopy::cli {

void add_info_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("info", "Print what this build supports");
  cmd->callback([&exit_code] {
#ifdef CANOPY_HAVE_CUDA
    fmt::print("canopy 0.1.0\nbackends: cpu, cuda\n");
#else
    fmt::print("canopy 0.1.0\nbackends: cpu\n");
#endif
    exit_code = 0;
  });
}

}  // namespace canopy::cli
