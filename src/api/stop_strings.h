// Stop strings (OpenAI's "stop"): generated text is cut where the first stop string begins, and
// generation of that sample ends there.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace canopy::cli {

// Accumulates a sample's text piece by piece and watches for stop strings. A stop string may
// straddle pieces (tokens): after each append, the search covers only the new piece and the
// longest stop string's length minus one before it, so a whole sample costs time linear in its
// length.
class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);

  // Appends a piece of text; returns true when a stop string has now appeared. The text is then
  // cut where the earliest one begins, and later appends are ignored.
  bool append(std::string_view piece);
  bool stopped() const { return stopped_; }
  const std::string& text() const { return text_; }

 private:
  std::vector<std::string> stops_;
  size_t longest_ = 0;
  std::string text_;
  bool stopped_ = false;
};

}  // namespace canopy::cli
