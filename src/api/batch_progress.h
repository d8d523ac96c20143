// Progress of a batch on stderr: requests done out of the total, tokens generated and the rate,
// at most one line per interval (and one at the end), so a long batch shows it is alive without
// flooding a log.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>

namespace canopy::cli {

class BatchProgress {
 public:
  // out: nullptr for quiet.
  BatchProgress(std::ostream* out, int64_t total_requests, double interval_seconds);

  void token();           // one more generated token
  void request_done();    // every sample of one more request has finished
  void finish();          // prints the final line

 private:
  void maybe_print();
  void print(bool final);

  std::ostream* out_;
  int64_t total_;
  int64_t done_ = 0;
  int64_t tokens_ = 0;
  std::chrono::steady_clock::time_point start_, last_;
  std::chrono::duration<double> interval_;
};

}  // namespace canopy::cli
