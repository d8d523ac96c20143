// Batch progress lines (batch_progress.h).
#include "api/batch_progress.h"

#include <fmt/format.h>

namespace canopy::cli {

BatchProgress::BatchProgress(std::ostream* out, int64_t total_requests, double interval_seconds)
    : out_(out),
      total_(total_requests),
      start_(std::chrono::steady_clock::now()),
      last_(start_),
      interval_(interval_seconds) {}

void BatchProgress::token() {
  ++tokens_;
  // Reading the clock per token costs nothing next to a model step, but skip it when quiet.
  if (out_ != nullptr) maybe_print();
}

void BatchProgress::request_done() {
  ++done_;
  if (out_ != nullptr) maybe_print();
}

void BatchProgress::finish() {
  if (out_ != nullptr) print(true);
}

void BatchProgress::maybe_print() {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_ < interval_) return;
  last_ = now;
  print(false);
}

void BatchProgress::print(bool final) {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = seconds > 0 ? static_cast<double>(tokens_) / seconds : 0.0;
  *out_ << fmt::format("run-batch: {}/{} requests done, {} tokens generated, {:.1f} tokens/s, {:.1f} s{}\n", done_,
                       total_, tokens_, rate, seconds, final ? " (finished)" : "");
  out_->flush();
}

}  // namespace canopy::cli
