#include "attention/plan.h"

#include <fmt/format.h>

namespace canopy {

int64_t AttentionPlan::kv_tokens_read() const {
  int64_t total = 0;
  for (const auto& it : items) total += it.kv_len;
  return total;
}

std::string AttentionPlan::summary() const {
  int64_t max_rows = 0;
  for (const auto& it : items) max_rows = it.q_count > max_rows ? it.q_count : max_rows;
  return fmt::format("{} tokens, {} items, {} partial slots, {} KV tokens read, widest item {} queries",
                     num_tokens, items.size(), num_slots, kv_tokens_read(), max_rows);
}

}  // namespace canopy
