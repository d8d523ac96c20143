// The `canopy` command line: one binary, one subcommand per file in this folder.
//
// Each add_*_command() registers its subcommand and options on `app`; when the subcommand runs,
// its callback stores the process exit status in `exit_code`. Errors a user can cause are thrown
// as canopy::Error and reported by main() as "canopy: error: <message>" with exit status 1.
#pragma once

#include <CLI/CLI.hpp>

namespace canopy::cli {

void add_info_command(CLI::App& app, int& exit_code);
void add_generate_command(CLI::App& app, int& exit_code);
void add_tokenize_command(CLI::App& app, int& exit_code);
void add_run_batch_command(CLI::App& app, int& exit_code);

}  // namespace canopy::cli
