// `canopy run-batch`: the command's options and its implementation on streams, so that tests run
// it in-process (batch_runner.h does the work; this adds files, the summary and the flags).
#pragma once

#include <CLI/CLI.hpp>

#include <istream>
#include <ostream>
#include <string>

#include "api/batch_runner.h"

namespace canopy::cli {

struct RunBatchArgs {
  RunBatchOptions options;
  std::string input;   // a file, or "-" for stdin
  std::string output;  // a file (written whole, then renamed into place), or "-" for stdout
};

// Registers run-batch's options on `cmd`, storing them in `args`.
void add_run_batch_options(CLI::App& cmd, RunBatchArgs& args);

// Runs the command: results go to args.output (stdout for "-"), progress to `err`, and the
// summary JSON object is the last line of `out` (after the results when they go to stdout too).
// Returns the exit status: 0 when every line has its result line, whatever the lines' own
// errors. Throws canopy::Error for what fails the whole run (files, model, flags).
int run_batch_command(const RunBatchArgs& args, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace canopy::cli
