// canopy: an inference engine for LLM workloads with shared prefixes. See README.md.
#include <cstdio>
#include <exception>

#include "api/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"canopy: LLM inference built for shared prefixes", "canopy"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "canopy 0.1.0");
  int exit_code = 0;
  canopy::cli::add_info_command(app, exit_code);
  canopy::cli::add_generate_command(app, exit_code);
  canopy::cli::add_tokenize_command(app, exit_code);
  canopy::cli::add_run_batch_command(app, exit_code);
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
