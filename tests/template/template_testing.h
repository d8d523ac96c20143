// Helpers shared by the chat template tests: golden files, the fixed clock of the goldens.
#pragma once

#include <nlohmann/json.hpp>

#include <ctime>
#include <string>

#include "testing/testing.h"

namespace canopy::testing {

// tests/data/template/<name>, parsed with object key order kept.
inline nlohmann::ordered_json load_template_golden(const std::string& name) {
  return nlohmann::ordered_json::parse(read_file(source_dir() + "/tests/data/template/" + name));
}

// The clock the goldens were rendered with (tools/make_chat_template_goldens.py: FIXED_NOW).
inline std::tm golden_now() {
  std::tm t{};
  t.tm_year = 2024 - 1900;
  t.tm_mon = 6;
  t.tm_mday = 26;
  t.tm_hour = 14;
  t.tm_min = 5;
  t.tm_sec = 9;
  const std::time_t seconds = timegm(&t);  // fills in the weekday and day of the year
  gmtime_r(&seconds, &t);
  return t;
}

}  // namespace canopy::testing
