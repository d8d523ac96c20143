// canopy: an inference engine for LLM workloads with shared prefixes. See README.md.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "api/commands.h"
#include "core/error.h"

namespace {

// OpenMP threads that spin at barriers while another process holds a core make the CPU backend
// 10-20x slower (a decode step runs hundreds of parallel regions). The OpenMP runtime reads its
// wait policy once, before main(), so canopy restarts itself with OMP_WAIT_POLICY=passive unless
// the user chose a policy.
void prefer_passive_openmp_waiting(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (::setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  ::execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
}

}  // namespace

int main(int argc, char** argv) {
  prefer_passive_openmp_waiting(argv);
  CLI::App app{"canopy: LLM inference built for shared prefixes", "canopy"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "canopy 0.1.0");
  int exit_code = 0;
  canopy::cli::add_info_command(app, exit_code);
  canopy::cli::add_generate_command(app, exit_code);
  canopy::cli::add_tokenize_command(app, exit_code);
  canopy::cli::add_run_batch_command(app, exit_code);
  canopy::cli::add_chat_template_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const canopy::Error& e) {
    std::fprintf(stderr, "canopy: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "canopy: internal error: %s\n", e.what());
    return 2;
  }
  return exit_code;
}
