// Stop-string matching over streamed text (stop_strings.h).
#include "api/stop_strings.h"

#include <algorithm>

namespace canopy::cli {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const std::string& s : stops_) longest_ = std::max(longest_, s.size());
}

bool StopStringMatcher::append(std::string_view piece) {
  if (stopped_) return true;
  const size_t old_size = text_.size();
  text_.append(piece);
  if (stops_.empty() || piece.empty()) return false;
  // Earlier appends found no stop string: a match must end inside the new piece.
  const size_t from = old_size + 1 > longest_ ? old_size + 1 - longest_ : 0;
  size_t cut = std::string::npos;
  for (const std::string& s : stops_) cut = std::min(cut, text_.find(s, from));
  if (cut == std::string::npos) return false;
  text_.resize(cut);
  stopped_ = true;
  return true;
}

}  // namespace canopy::cli
